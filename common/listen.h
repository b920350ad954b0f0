/*
 * listen.h — listening sockets and inetd-mode refusals, shared by the
 * root masters of virtmail-smtpd and virtmail-pop3d.
 */
#ifndef VIRTMAIL_LISTEN_H
#define VIRTMAIL_LISTEN_H

#include <sys/socket.h>

#define LISTEN_BACKLOG		512

/*
 * A non-blocking, close-on-exec listening TCP socket bound to ss
 * (SO_REUSEADDR; IPv6 sockets are IPV6_V6ONLY, so each family has its
 * own).  The descriptor, or -1 with errno and *error_r naming the step.
 */
int	listen_bind(const struct sockaddr_storage *ss, socklen_t sslen,
	    const char **error_r);
/* Fill ss/len_r with the wildcard address of family (AF_INET/AF_INET6). */
void	listen_any_sockaddr(int family, int port, struct sockaddr_storage *ss,
	    socklen_t *len_r);
/* The port of a bound or connected address (0 for other families). */
int	listen_sockaddr_port(const struct sockaddr_storage *ss);
/*
 * inetd mode, after a refusal written to fd 1: shut down the write
 * side and let the client's pending input on fd 0 drain for a moment,
 * so that closing does not send a reset that could destroy the reply
 * before the client reads it.
 */
void	listen_inetd_linger(void);

#endif
