/*
 * fdpass.h — pass a descriptor with a few bytes of data over a Unix
 * socket (SCM_RIGHTS), as the master hands accepted connections to a
 * domain's worker and the queue runner hands a message to the
 * privileged deliverer.
 */
#ifndef VIRTMAIL_FDPASS_H
#define VIRTMAIL_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Send len bytes of data with fd (fd -1: data only).  0 or -1 with errno. */
int	fdpass_send(int sock, int fd, const void *data, size_t len);
/*
 * Receive up to size bytes into data and at most one descriptor into
 * *fd_r (-1 when none came; extra descriptors are closed).  Returns the
 * byte count (0 at EOF) or -1 with errno.
 */
ssize_t	fdpass_recv(int sock, int *fd_r, void *data, size_t size);

#endif
