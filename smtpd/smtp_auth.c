/*
 * smtp_auth.c — the domain's SMTP AUTH service (RFC 4954): checks a
 * user name and password for the worker, and nothing else.
 *
 * SECURITY
 *	smtp_auth_start() runs in the worker's process while it is still
 *	root, outside the domain's root, before the worker loads its TLS
 *	keys (so the service never holds one) and before it chroots and
 *	drops privileges.  The service it forks first keeps only its
 *	socket, stdio and the log relay (priv_keep_fds), then gives up
 *	every capability (bounding, permitted, effective and inheritable
 *	sets empty), sets no_new_privs, and stays uid 0 outside any root:
 *	uid 0 only so that it may open etc/shadow, which root owns with
 *	mode 0600 or 0640.  It is not chrooted, so nothing it holds is
 *	reachable from inside a domain's root, and it reads the domain's
 *	etc/passwd and etc/shadow only through in-root opens (common/
 *	auth.c, file_open_in_root from the domain's absolute directory):
 *	a symlink the domain's administrator plants cannot lead to a host
 *	file.  uid 0 still owns root's files on the host: so the kernel
 *	keeps the service to reading its domain's directory (Landlock,
 *	confine_to_root), and it inherits the worker's binding to the
 *	domain's ids (privbind.h), which common/auth.c checks for every
 *	account that passes.  The service never reads the
 *	network.  Its only input is requests from the worker
 *	(unprivileged, and so untrusted) over a SOCK_SEQPACKET
 *	socketpair; each request is decoded exactly (smtp_auth_req_
 *	decode: five NUL-ended fields, each bounded and checked) and a
 *	malformed one ends the service, which the worker sees as a
 *	temporary failure.  The name is checked again here against the
 *	domain's own passwd (common/auth.c: constant time, a dummy hash for
 *	unknown users, one answer for unknown user and wrong password).
 *	Failures are counted per client address over a window
 *	(SMTP_AUTH_IP_FAILS in SMTP_AUTH_IP_WINDOW seconds): past that,
 *	every attempt from the address fails without a check, whatever
 *	the worker asks.  Passwords are wiped once checked and never
 *	logged.  The service dies with the worker (PR_SET_PDEATHSIG).
 *
 * DIAGNOSTICS
 *	"smtp auth ok user=U client=A", "smtp auth failed user=U client=A",
 *	"smtp auth refused client=A reason=too_many_failures".
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "compat.h"
#include "confine.h"
#include "log.h"
#include "passwd.h"
#include "privdrop.h"
#include "proctitle.h"
#include "smtpd.h"

#define SMTP_AUTH_MAGIC		"AUTH1"
#define SMTP_AUTH_IPS		256	/* client addresses remembered */

struct auth_ip {
	char		 ip[64];
	unsigned int	 fails;
	time_t		 since;
};

static struct auth_ip	auth_ips[SMTP_AUTH_IPS];

int
smtp_auth_req_encode(const struct smtp_auth_req *r, char *dst, size_t size,
    size_t *len_r)
{
	char	 id[16];
	size_t	 n = 0, i, l;
	const char *f[5];

	(void)snprintf(id, sizeof(id), "%u", (unsigned int)r->id);
	f[0] = SMTP_AUTH_MAGIC;
	f[1] = id;
	f[2] = r->ip;
	f[3] = r->user;
	f[4] = r->pass;
	for (i = 0; i < 5; i++) {
		l = strlen(f[i]);
		if (n + l + 1 > size)
			return -1;
		memcpy(dst + n, f[i], l + 1);
		n += l + 1;
	}
	*len_r = n;
	return 0;
}

static int
auth_field_ok(const char *f, size_t len, size_t min, size_t max, int text)
{
	size_t	 i;

	if (len < min || len > max)
		return 0;
	for (i = 0; text && i < len; i++)
		if ((unsigned char)f[i] < 0x20 || f[i] == 0x7f)
			return 0;
	return 1;
}

int
smtp_auth_req_decode(const char *src, size_t len, struct smtp_auth_req *r)
{
	const char	*f[5];
	size_t		 fl[5], i, off = 0;
	unsigned long	 id = 0;
	const char	*e;

	memset(r, 0, sizeof(*r));
	if (len == 0 || len > SMTP_AUTH_MSG_MAX || src[len - 1] != '\0')
		return -1;
	for (i = 0; i < 5; i++) {
		if (off >= len)
			return -1;
		f[i] = src + off;
		if ((e = memchr(f[i], '\0', len - off)) == NULL)
			return -1;
		fl[i] = (size_t)(e - f[i]);
		off += fl[i] + 1;
	}
	if (off != len || strcmp(f[0], SMTP_AUTH_MAGIC) != 0)
		return -1;
	if (fl[1] == 0 || fl[1] > 10)
		return -1;
	for (i = 0; i < fl[1]; i++) {
		if (f[1][i] < '0' || f[1][i] > '9')
			return -1;
		id = id * 10 + (unsigned long)(f[1][i] - '0');
	}
	if (id > UINT32_MAX)
		return -1;
	if (!auth_field_ok(f[2], fl[2], 0, sizeof(r->ip) - 1, 1) ||
	    strspn(f[2], "0123456789abcdefABCDEF:.") != fl[2] ||
	    !auth_field_ok(f[3], fl[3], 1, SMTP_AUTH_USER_MAX, 1) ||
	    !auth_field_ok(f[4], fl[4], 0, SMTP_AUTH_PASS_MAX, 0))
		return -1;
	r->id = (uint32_t)id;
	memcpy(r->ip, f[2], fl[2] + 1);
	memcpy(r->user, f[3], fl[3] + 1);
	memcpy(r->pass, f[4], fl[4] + 1);
	return 0;
}

/* The slot of ip, reset when its window is over; the oldest reused. */
static struct auth_ip *
auth_ip_slot(const char *ip, time_t now)
{
	struct auth_ip	*a, *old = &auth_ips[0];
	size_t		 i;

	for (i = 0; i < SMTP_AUTH_IPS; i++) {
		a = &auth_ips[i];
		if (strcmp(a->ip, ip) == 0) {
			if (now - a->since > SMTP_AUTH_IP_WINDOW ||
			    now < a->since) {
				a->fails = 0;
				a->since = now;
			}
			return a;
		}
		if (a->since < old->since)
			old = a;
	}
	(void)strlcpy(old->ip, ip, sizeof(old->ip));
	old->fails = 0;
	old->since = now;
	return old;
}

static void
auth_answer(int fd, uint32_t id, const char *what, const char *name)
{
	char	 msg[64 + PASSWD_NAME_MAX];
	int	 n;

	n = snprintf(msg, sizeof(msg), "%u %s%s%s", (unsigned int)id, what,
	    name != NULL ? " " : "", name != NULL ? name : "");
	if (n < 0 || (size_t)n >= sizeof(msg) ||
	    send(fd, msg, (size_t)n, MSG_NOSIGNAL) != n)
		_exit(1);
}

static void __attribute__((noreturn))
auth_service(const struct smtpd_domain *sd, int fd)
{
	struct smtp_auth_req	 r;
	struct auth_ip		*a;
	char			 msg[SMTP_AUTH_MSG_MAX + 1];
	char			 name[PASSWD_NAME_MAX + 1], user[512], *at;
	ssize_t			 n;
	time_t			 now;
	int			 valid, ok;

	for (;;) {
		do {
			n = recv(fd, msg, sizeof(msg), 0);
		} while (n == -1 && errno == EINTR);
		if (n <= 0)
			_exit(0);	/* the worker is gone */
		if (smtp_auth_req_decode(msg, (size_t)n, &r) == -1) {
			explicit_bzero(msg, sizeof(msg));
			log_warnx("smtp auth: malformed request from the "
			    "worker; stopping");
			_exit(1);
		}
		explicit_bzero(msg, sizeof(msg));
		now = time(NULL);
		a = auth_ip_slot(r.ip, now);
		(void)log_clean(user, sizeof(user), r.user, strlen(r.user));
		if (a->fails >= SMTP_AUTH_IP_FAILS) {
			explicit_bzero(r.pass, sizeof(r.pass));
			log_info("smtp auth refused client=%s "
			    "reason=too_many_failures user=%s", r.ip, user);
			auth_answer(fd, r.id, "FAIL", NULL);
			continue;
		}
		/* "bob@alpha.test": only one of this domain's own names. */
		valid = 1;
		if ((at = strrchr(r.user, '@')) != NULL) {
			*at = '\0';
			if (!smtpd_domain_is_local(sd, at + 1))
				valid = 0;
		}
		/* In-root opens from the domain's absolute directory. */
		ok = auth_password_check(sd->vd->dir, r.user, valid, r.pass,
		    name);
		explicit_bzero(r.pass, sizeof(r.pass));
		if (ok) {
			log_info("smtp auth ok user=%s client=%s", name, r.ip);
			auth_answer(fd, r.id, "OK", name);
		} else {
			a->fails++;
			log_info("smtp auth failed user=%s client=%s", user,
			    r.ip);
			auth_answer(fd, r.id, "FAIL", NULL);
		}
	}
}

int
smtp_auth_start(const struct smtpd_domain *sd)
{
	const char	*err;
	pid_t		 pid, parent = getpid();
	int		 sp[2], fd;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1) {
		log_warn("smtp auth: socketpair");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("smtp auth: fork");
		(void)close(sp[0]);
		(void)close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		/* Not the listeners, the master's channel nor the client. */
		fd = sp[1];
		if (priv_keep_fds(&fd, 1, &err) == -1)
			_exit(1);
		log_set_procname(SMTPD_NAME "[auth]");
		proctitle_set("auth %s", sd->name);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(0);
		/* uid 0 for etc/shadow's owner check, and nothing more. */
		if (chdir("/") == -1)
			fatal("smtp auth: chdir /");
		/* It reads the domain's etc/ files and nothing else. */
		if (confine_to_root(sd->vd->dir, CONFINE_READ, &err) == -1 ||
		    priv_limit_caps(NULL, 0, &err) == -1)
			fatalx("smtp auth: %s", err);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
			fatal("smtp auth: PR_SET_NO_NEW_PRIVS");
		auth_service(sd, fd);
	}
	(void)close(sp[1]);
	return sp[0];
}
