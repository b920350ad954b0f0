/*
 * log.h — logging, named as in OpenBSD log.h.
 *
 * log_init() opens syslog with LOG_NDELAY, so the socket to /dev/log is
 * connected before any chroot and chrooted processes keep logging with
 * nothing inside their root.  With debug set, every line also goes to
 * stderr.  log_set_domain() sets the domain that every later line of
 * this process names ("domain=alpha.test"), for per-domain workers.
 *
 * fatal()/fatalx() log and exit(1).  The 'x' variants do not append
 * strerror(errno).
 */
#ifndef VIRTMAIL_LOG_H
#define VIRTMAIL_LOG_H

#include <stdarg.h>

/* Open syslog as ident (facility mail); debug: also stderr; verbose: log_debug on. */
void	log_init(const char *ident, int debug, int verbose);
/*
 * The log relay's descriptor in a process that logs there
 * (log_to_relay below), else -1: a child that closes its descriptors
 * by range keeps it.
 */
int	log_relay_get(void);
/* Name the domain in every following line; NULL to stop. */
void	log_set_domain(const char *domain);
/*
 * Connect to syslog again, as log_init() did, for a process that
 * closed every descriptor (closelog(), then close_range) and is not
 * chrooted: /dev/log must be reachable.
 */
void	log_reconnect(void);
/* Change the ident used on stderr lines (after fork: "smtpd[alpha]"). */
void	log_set_procname(const char *name);

/*
 * The log relay: a domain's processes do not hold the host's syslog
 * socket, and cannot write a line that names another domain.  The
 * root master makes one pair per domain (log_relay_pair: sv[0] its
 * end, non-blocking, with SO_PASSCRED); each of the domain's
 * processes calls log_to_relay(sv[1]) before it enters the root, and
 * from then on sends its lines there (called again with another
 * number, for the same socket moved, it only records the number).  The master calls
 * log_relay_read(sv[0], name) when sv[0] is readable: each line is
 * cleaned and logged as "domain=NAME pid=PID text", with the pid the
 * kernel vouches for.  Returns how many lines it read, or -1 once
 * every process that held the other end has closed it.
 */
int	log_relay_pair(int sv[2]);
void	log_to_relay(int fd);
int	log_relay_read(int fd, const char *domain);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* "Cannot happen": log file and line, then abort. */
#define ASSERT(cond) do { \
	if (!(cond)) \
		log_assert_failed(#cond, __FILE__, __LINE__); \
} while (0)
void	log_assert_failed(const char *, const char *, int)
	    __attribute__((noreturn));

/*
 * Copy peer text into dst (size bytes) for logging: printable ASCII kept,
 * everything else as \xHH, truncated with "..." to fit.  Returns dst.
 */
char	*log_clean(char *dst, size_t size, const char *src, size_t len);

#endif
