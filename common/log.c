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

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <errno.h>
#include <fcntl.h>
#include <paths.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "compat.h"
#include "log.h"

#define LOG_LINE_MAX	8192
#define LOG_RELAY_WAIT_MS 2000	/* a full relay socket, at most */
#define LOG_RELAY_BURST	64	/* records per log_relay_read() */

static int	 log_initialized;
static int	 log_syslog;	/* a syslog socket was there at log_init() */
static int	 log_debug_stderr;
static int	 log_verbose;
/* openlog() keeps the pointer: this must stay valid and unchanged. */
static char	 log_ident[64] = "virtmail";
static char	 log_procname[64] = "virtmail";
static char	 log_domain[256];
static int	 log_relay_fd = -1;	/* a domain's process: lines go here */

static void	log_relay_send(int, const char *);
static void	log_relay_emit(int, const char *, const char *, long,
		    const char *);
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

int
log_relay_get(void)
{
	return log_relay_fd;
}

void
log_reconnect(void)
{
	int	 saved_errno = errno;

	if (log_initialized && log_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
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
 * One line to the relay: a SOCK_SEQPACKET record "P procname\0text",
 * P the syslog priority as one digit.  A relay that does not read for
 * LOG_RELAY_WAIT_MS costs the line, not the process.
 */
static void
log_relay_send(int pri, const char *msg)
{
	struct msghdr	 mh;
	struct iovec	 iov[3];
	struct pollfd	 pfd;
	char		 p;
	ssize_t		 n;

	/* Gathered, not copied: no second line buffer on the stack. */
	p = (char)('0' + (LOG_PRI(pri) & 7));
	iov[0].iov_base = &p;
	iov[0].iov_len = 1;
	iov[1].iov_base = log_procname;
	iov[1].iov_len = strnlen(log_procname, 63) + 1;
	iov[2].iov_base = (void *)(uintptr_t)msg;
	iov[2].iov_len = strnlen(msg, LOG_LINE_MAX - 1);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 3;
	for (;;) {
		n = sendmsg(log_relay_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return;
		pfd.fd = log_relay_fd;
		pfd.events = POLLOUT;
		if (errno == EAGAIN && poll(&pfd, 1, LOG_RELAY_WAIT_MS) <= 0)
			return;
	}
}

int
log_relay_pair(int sv[2])
{
	int	 on = 1;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	/* The kernel tells the relay each sender's pid. */
	if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) ==
	    -1 || fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1) {
		(void)close(sv[0]);
		(void)close(sv[1]);
		return -1;
	}
	return 0;
}

void
log_to_relay(int fd)
{
	struct stat	 st;
	int		 null, moved = log_relay_fd != -1;

	log_relay_fd = fd;
	/* Moved to another number: syslog and stderr are dealt with. */
	if (moved)
		return;
	closelog();
	log_syslog = 0;
#if !defined(__SANITIZE_ADDRESS__)
	/*
	 * Nor stderr: only the relay writes where the operator reads.
	 * A process confined to a domain's files (confine.h) cannot open
	 * /dev/null, but has it on 0 already.
	 */
	if (fstat(0, &st) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == makedev(1, 3))
		(void)dup2(0, 2);
	else if ((null = open("/dev/null", O_WRONLY | O_CLOEXEC)) != -1) {
		if (null != 2)
			(void)dup2(null, 2);
		if (null > 2)
			(void)close(null);
	}
#else
	/* The sanitizer's reports go to stderr: keep it. */
	(void)null;
	(void)st;
#endif
}

int
log_relay_read(int fd, const char *domain)
{
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*c;
	struct ucred	 cred;
	char		 rec[1 + 64 + LOG_LINE_MAX + 1];
	char		 proc[64 * 4 + 4], text[LOG_LINE_MAX];
	const char	*p;
	ssize_t		 n;
	size_t		 pl;
	int		 i, saved_errno = errno;

	for (i = 0; i < LOG_RELAY_BURST; i++) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = rec;
		iov.iov_len = sizeof(rec) - 1;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0 && i == 0) {
			/* Every sender has closed its end. */
			errno = saved_errno;
			return -1;
		}
		if (n <= 0)
			break;
		cred.pid = 0;
		for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_CREDENTIALS &&
			    c->cmsg_len == CMSG_LEN(sizeof(cred)))
				memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		rec[n] = '\0';
		/* Untrusted: a bad priority is a warning, text is cleaned. */
		if (n < 2 || rec[0] < '0' || rec[0] > '7' ||
		    (pl = strnlen(rec + 1, (size_t)n - 1)) >= (size_t)n - 1) {
			log_warnx("domain=%s log record from pid %ld "
			    "malformed", domain, (long)cred.pid);
			continue;
		}
		p = rec + 2 + pl;
		(void)log_clean(proc, sizeof(proc), rec + 1, pl);
		(void)log_clean(text, sizeof(text), p,
		    (size_t)n - 2 - pl);
		log_relay_emit(rec[0] - '0', domain, proc, (long)cred.pid,
		    text);
	}
	errno = saved_errno;
	return i;
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
	/* The relay names the domain itself: the process cannot. */
	if (log_domain[0] != '\0' && log_relay_fd == -1) {
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

	if (log_relay_fd != -1) {
		log_relay_send(pri, msg);
		return;
	}
	if (log_initialized && log_syslog)
		syslog(pri, "%s", msg);
	if (log_debug_stderr || !log_initialized)
		(void)fprintf(stderr, "%s[%ld]: %s\n", log_procname,
		    (long)getpid(), msg);
}

/* A relayed line, stamped with the domain whose socket it came on. */
static void
log_relay_emit(int pri, const char *domain, const char *proc, long pid,
    const char *text)
{
	if (log_initialized && log_syslog)
		syslog(pri, "domain=%s pid=%ld %s", domain, pid, text);
	if (log_debug_stderr || !log_initialized)
		(void)fprintf(stderr, "%s[%ld]: domain=%s %s\n", proc, pid,
		    domain, text);
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
