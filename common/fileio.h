/*
 * fileio.h — small, checked file helpers: read a whole file with a size
 * limit, write a file atomically (temp file, fsync, rename, fsync dir).
 */
#ifndef VIRTMAIL_FILEIO_H
#define VIRTMAIL_FILEIO_H

#include <sys/types.h>

#include <stddef.h>

#include "buf.h"

/*
 * Read all of path into out (appending), refusing files over max bytes.
 * Returns 0, or -1 with errno set (ENOENT, EFBIG, ...) and *error_r a
 * static description.
 */
int	file_read_all(const char *path, size_t max, struct buf *out,
	    const char **error_r);
/*
 * Replace path with data atomically: write path.tmp.PID with mode, fsync,
 * rename over path, fsync the directory.  Returns 0 or -1 with errno.
 */
int	file_write_atomic(const char *path, const void *data, size_t len,
	    mode_t mode);
/* fsync the directory that holds path; 0 or -1 with errno. */
int	file_fsync_dir(const char *path);
/* write(2) all of len bytes, retrying on EINTR; 0 or -1 with errno. */
int	write_all(int fd, const void *data, size_t len);

#endif
