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
/* Name the domain in every following line; NULL to stop. */
void	log_set_domain(const char *domain);
/* Change the ident used on stderr lines (after fork: "smtpd[alpha]"). */
void	log_set_procname(const char *name);

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
