/*
 * fdpass.c — pass one descriptor and a few bytes over a Unix socket
 * (SCM_RIGHTS, unix(7)).
 *
 * SECURITY: used between the root master and a domain's worker and
 * between a queue runner and its privileged deliverer, in both
 * directions.  The receiver trusts nothing about what arrives:
 * descriptors are received close-on-exec (MSG_CMSG_CLOEXEC), only the
 * first one is kept and any others are closed at once (a peer cannot
 * make us leak descriptors), and a truncated control or data message
 * (MSG_CTRUNC, MSG_TRUNC) is an error after closing everything that
 * came: IPC fails closed.  Never exits.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fdpass.h"

/* Room for a few descriptors, so extras are seen and closed. */
#define FDPASS_MAX_FDS	8

union fdpass_cmsg {
	struct cmsghdr	 hdr;
	char		 buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX_FDS)];
};

int
fdpass_send(int sock, int fd, const void *data, size_t len)
{
	union fdpass_cmsg	 cm;
	struct msghdr		 msg;
	struct cmsghdr		*c;
	struct iovec		 iov;
	const char		*p = data;
	ssize_t			 n;

	/* A descriptor must ride on at least one byte of data. */
	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	while (len > 0) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = (void *)(uintptr_t)p;
		iov.iov_len = len;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (fd != -1) {
			memset(&cm, 0, sizeof(cm));
			msg.msg_control = cm.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int));
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
		}
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		/* Stream sockets may send short; the fd went with byte 1. */
		fd = -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
fdpass_recv(int sock, int *fd_r, void *data, size_t size)
{
	union fdpass_cmsg	 cm;
	struct msghdr		 msg;
	struct cmsghdr		*c;
	struct iovec		 iov;
	ssize_t			 n;
	size_t			 i, nfds;
	int			 fds[FDPASS_MAX_FDS], got = -1;

	*fd_r = -1;
	for (;;) {
		memset(&msg, 0, sizeof(msg));
		memset(&cm, 0, sizeof(cm));
		iov.iov_base = data;
		iov.iov_len = size;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (n != -1 || errno != EINTR)
			break;
	}
	if (n == -1)
		return -1;

	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		if (c->cmsg_len < CMSG_LEN(0))
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (nfds > FDPASS_MAX_FDS)
			nfds = FDPASS_MAX_FDS;
		memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
		for (i = 0; i < nfds; i++) {
			if (got == -1)
				got = fds[i];
			else
				(void)close(fds[i]);
		}
	}
	if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
		if (got != -1)
			(void)close(got);
		errno = EMSGSIZE;
		return -1;
	}
	if (n == 0 && got != -1) {
		/* No data, nothing to pair it with: refuse it. */
		(void)close(got);
		got = -1;
	}
	*fd_r = got;
	return n;
}
