/*
 * listen.c — listening sockets for the root masters, and the inetd
 * refusal drain.
 *
 * SECURITY
 *	Runs as root in a master.  Binds and listens only; never reads
 *	from a client except to discard input after a refusal.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"

#define LISTEN_DRAIN_MAX	65536	/* bytes discarded after a refusal */
#define LISTEN_DRAIN_MS		2000

int
listen_bind(const struct sockaddr_storage *ss, socklen_t sslen,
    const char **error_r)
{
	int	 fd, on = 1, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		*error_r = "socket";
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) {
		*error_r = "SO_REUSEADDR";
		goto fail;
	}
	/* Each family its own socket: no IPv4-mapped surprises. */
	if (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) {
		*error_r = "IPV6_V6ONLY";
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)ss, sslen) == -1) {
		*error_r = "bind";
		goto fail;
	}
	if (listen(fd, LISTEN_BACKLOG) == -1) {
		*error_r = "listen";
		goto fail;
	}
	return fd;

 fail:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return -1;
}

void
listen_any_sockaddr(int family, int port, struct sockaddr_storage *ss,
    socklen_t *len_r)
{
	struct sockaddr_in	*s4;
	struct sockaddr_in6	*s6;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		*len_r = sizeof(*s4);
	} else {
		s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_any;
		*len_r = sizeof(*s6);
	}
}

int
listen_sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

void
listen_inetd_linger(void)
{
	struct pollfd	 pfd;
	char		 junk[4096];
	ssize_t		 n;
	size_t		 total = 0;

	(void)shutdown(1, SHUT_WR);
	pfd.fd = 0;
	pfd.events = POLLIN;
	while (total < LISTEN_DRAIN_MAX &&
	    poll(&pfd, 1, LISTEN_DRAIN_MS) == 1) {
		if ((n = read(0, junk, sizeof(junk))) <= 0)
			break;
		total += (size_t)n;
	}
}
