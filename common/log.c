/*
 * log.c — syslog logging with an optional copy on stderr.
 *
 * SECURITY
 *	Used by every process, privileged or not.  log_init() connects the
 *	syslog socket (LOG_NDELAY) before any chroot, so nothing from the
 *	host's /dev/log has to exist inside a domain's root.  Messages are
 *	formatted by the caller; text that came from a peer must go through
 *	log_clean() first, so it cannot forge lines or smuggle control
 *	bytes into the log.  Every entry point preserves errno.
 */

#include <sys/stat.h>

#include <errno.h>
#include <paths.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "compat.h"
#include "log.h"

#define LOG_LINE_MAX	8192

static int	 log_initialized;
static int	 log_syslog;	/* a syslog socket was there at log_init() */
static int	 log_debug_stderr;
static int	 log_verbose;
/* openlog() keeps the pointer: this must stay valid and unchanged. */
static char	 log_ident[64] = "virtmail";
static char	 log_procname[64] = "virtmail";
static char	 log_domain[256];

static void	log_vlog(int, const char *, const char *, const char *,
		    va_list) __attribute__((format(printf, 4, 0)));
static void	log_assert_msg(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

void
log_init(const char *ident, int debug, int verbose)
{
	struct stat	 st;
	int		 saved_errno = errno;

	if (ident == NULL || *ident == '\0')
		ident = "virtmail";
	(void)strlcpy(log_ident, ident, sizeof(log_ident));
	(void)strlcpy(log_procname, ident, sizeof(log_procname));
	log_debug_stderr = debug;
	log_verbose = verbose;
	/*
	 * LOG_NDELAY: connect now, while /dev/log is still reachable.
	 * XXX if syslogd restarts, a chrooted process cannot reconnect.
	 */
	openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_initialized = 1;
	/*
	 * Without a syslog socket, syslog() would try to connect again on
	 * every line (a socket and a failed connect each time): skip it.
	 */
	log_syslog = stat(_PATH_LOG, &st) == 0 && S_ISSOCK(st.st_mode);
	errno = saved_errno;
}

void
log_set_domain(const char *domain)
{
	if (domain == NULL)
		log_domain[0] = '\0';
	else if (strlcpy(log_domain, domain, sizeof(log_domain)) >=
	    sizeof(log_domain))
		log_domain[0] = '\0';	/* never log a truncated name */
}

void
log_set_procname(const char *name)
{
	if (name == NULL || *name == '\0')
		name = log_ident;
	(void)strlcpy(log_procname, name, sizeof(log_procname));
}

/*
 * Format "[domain=NAME ][prefix]message[: strerror]" and send it to
 * syslog, and to stderr in debug mode or before log_init() (tools,
 * tests).
 */
static void
log_vlog(int pri, const char *prefix, const char *errstr, const char *fmt,
    va_list ap)
{
	char	 msg[LOG_LINE_MAX];
	size_t	 off = 0;
	int	 n;

	msg[0] = '\0';
	if (log_domain[0] != '\0') {
		n = snprintf(msg, sizeof(msg), "domain=%s ", log_domain);
		if (n > 0 && (size_t)n < sizeof(msg))
			off = (size_t)n;
	}
	if (prefix != NULL) {
		n = snprintf(msg + off, sizeof(msg) - off, "%s", prefix);
		if (n > 0 && (size_t)n < sizeof(msg) - off)
			off += (size_t)n;
	}
	if (fmt != NULL) {
		n = vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
		if (n > 0)
			off += (size_t)n;
		if (off >= sizeof(msg))
			off = sizeof(msg) - 1;
	}
	if (errstr != NULL) {
		/* Truncation is acceptable in a log line. */
		(void)snprintf(msg + off, sizeof(msg) - off, "%s%s",
		    fmt != NULL ? ": " : "", errstr);
	}

	if (log_initialized && log_syslog)
		syslog(pri, "%s", msg);
	if (log_debug_stderr || !log_initialized)
		(void)fprintf(stderr, "%s[%ld]: %s\n", log_procname,
		    (long)getpid(), msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, NULL, strerror(saved_errno), fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, NULL, NULL, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, NULL, NULL, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vlog(LOG_DEBUG, NULL, NULL, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, "fatal: ", strerror(saved_errno), fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, "fatal: ", NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

static void
log_assert_msg(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, NULL, NULL, fmt, ap);
	va_end(ap);
}

void
log_assert_failed(const char *cond, const char *file, int line)
{
	log_assert_msg("assertion failed: %s (%s:%d)", cond, file, line);
	abort();
}

/*
 * Printable ASCII is kept, except the backslash, which is escaped too
 * so that an escape in the output always means a byte in the input.
 * An escape is never cut in half: when the text does not fit, output
 * stops at a whole character and "..." follows.
 */
char *
log_clean(char *dst, size_t size, const char *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i, o = 0, w, lastfit = 0;
	char			 tmp[4];
	int			 truncated = 0;

	if (size == 0)
		return dst;
	if (src == NULL)
		len = 0;
	for (i = 0; i < len; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
			tmp[0] = (char)s[i];
			w = 1;
		} else {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[s[i] >> 4];
			tmp[3] = hex[s[i] & 0x0f];
			w = 4;
		}
		if (o + w > size - 1) {
			truncated = 1;
			break;
		}
		memcpy(dst + o, tmp, w);
		o += w;
		/* Remember where "..." would still fit after this char. */
		if (size > 3 && o <= size - 4)
			lastfit = o;
	}
	if (truncated) {
		o = lastfit;
		for (i = 0; i < 3 && o < size - 1; i++)
			dst[o++] = '.';
	}
	dst[o] = '\0';
	return dst;
}
