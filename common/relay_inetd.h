/*
 * relay_inetd.h — a log relay for one session under inetd (log.h says
 * what a relay is for).
 */
#ifndef VIRTMAIL_RELAY_INETD_H
#define VIRTMAIL_RELAY_INETD_H

/*
 * Fork: the parent becomes the relay for domain (whose root is dir) and
 * exits, with the child's status, once every process of the session
 * has gone; the child returns the relay's descriptor, to which its
 * lines already go (log_to_relay).  Call it after the client's
 * descriptors are where the session wants them and before anything of
 * the session starts.  -1 when no relay could be made: the caller
 * logs as before.
 */
int	relay_inetd_start(const char *domain, const char *dir);

#endif
