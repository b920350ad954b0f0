/*
 * auth.c — one POP3 session from accept to exit: the privileged step
 * between the login process and the user's session.
 *
 * SECURITY
 *	auth_session_main() runs in a fresh child of the master (or under
 *	inetd) as root and stays OUTSIDE the domain's root for the whole
 *	session: its root directory is the host's /, so nothing inside a
 *	domain's root is ever uid 0.  First it closes every descriptor but
 *	the client's and its two socketpairs (close_range), then forks the
 *	login process, then keeps only CAP_SETUID, CAP_SETGID and
 *	CAP_SYS_CHROOT (to start the user's session), CAP_KILL (to end its
 *	children) and CAP_CHOWN (to give the mbox rewrite's file to the
 *	user), in the bounding set too, and sets no_new_privs.  It never
 *	reads the network: its only input is one request per attempt from
 *	the login process, decoded exactly (pop3_ipc_decode) and re-checked
 *	here (the user name against the domain's own passwd; "@domain"
 *	against the domain's own names).  Before its first lookup it is
 *	bound to its domain's ids (priv_domain_bind: lookups refuse an
 *	account outside the domain's range, of the host or of another
 *	domain, and with a declared range a seccomp filter holds every
 *	set*id of this process and its children to it).  The domain's etc/passwd and
 *	etc/shadow are read by path under the domain's absolute directory
 *	(common/privdrop.c, common/auth.c).  It holds no TLS key, ever.
 *
 *	The login process: forked from here, still root outside the root,
 *	it loads its own domain's certificates and keys (only for a domain
 *	with TLS; common/tls.c opens them inside the root), closes what it
 *	does not need, then chroots and becomes the domain's run_as account
 *	in one step (priv_enter_root) with no_new_privs, and waits for
 *	this process's "ready" before it reads the client.  No other
 *	process of the session ever holds a key.
 *
 *	The user's session: after a success this process forks again; the
 *	child keeps the client (or, over TLS, its socketpair to the login
 *	process, which stays as the TLS proxy) and, for an mbox, the
 *	rewrite's file, then chroots and becomes the user in one step with
 *	no_new_privs.  Both log through the domain's relay (the master's
 *	socket, which stamps the domain) when there is one.
 *
 *	mbox (the spool scheme shared with delivery, spool.c): this process
 *	holds the dotlock through the spool directory's descriptor for the
 *	whole session and refreshes it, creates USER.pop3tmp for the
 *	session, and at the end renames it over USER only when the session
 *	asked (exit status POP3_EXIT_COMMIT) and it is still the same file.
 *	The session opens the mbox itself, as the user, with O_NOFOLLOW,
 *	and holds an fcntl lock on it (mailbox.c).
 *
 *	auth_check(): the check of common/auth.c (crypt(3) for every
 *	attempt, a dummy hash for unknown users, constant-time compare);
 *	the password is wiped after use and never logged.
 *
 * DIAGNOSTICS
 *	"ID pop3 connect peer=A local=B", "ID pop3 auth ok user=U",
 *	"ID pop3 tls: ...: private key: REASON (in DIR)" when the domain's
 *	keys do not load in the login process.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "compat.h"
#include "confine.h"
#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "log.h"
#include "passwd.h"
#include "pop3d.h"
#include "privbind.h"
#include "privdrop.h"
#include "proctitle.h"
#include "shadow.h"
#include "tls.h"

#define AUTH_LOCK_TOUCH		60	/* s; delivery calls 300 s stale */

/* The check itself is common/auth.c, shared with SMTP AUTH. */
void
auth_check(const struct smtpd_domain *sd, const char *root, const char *user,
    const char *pass, struct pop3_auth_result *res)
{
	char		 local[POP3_USER_MAX + 1], *at;
	int		 valid = 1;

	memset(res, 0, sizeof(res->name) + sizeof(res->ok));
	if (strlcpy(local, user, sizeof(local)) >= sizeof(local))
		valid = 0;
	/* "bob@alpha.test": only one of this domain's own names. */
	if ((at = strrchr(local, '@')) != NULL) {
		*at = '\0';
		if (!smtpd_domain_is_local(sd, at + 1))
			valid = 0;
	}
	res->ok = auth_password_check(root, local, valid, pass, res->name);
	explicit_bzero(local, sizeof(local));
}

static void
auth_refuse(int fd, const char *text)
{
	(void)send(fd, text, strlen(text), MSG_NOSIGNAL);
}

/*
 * 0 and 1 to /dev/null: under inetd they are the client, under -d a
 * terminal.  0, or -1 with *error_r.
 */
static int
auth_null_stdio(const char **error_r)
{
	int	 nul;

	if ((nul = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1 ||
	    dup2(nul, 0) == -1 || dup2(nul, 1) == -1) {
		*error_r = "cannot open /dev/null";
		return -1;
	}
	if (nul > 2)
		(void)close(nul);
	return 0;
}

static void
auth_diag_log(void *ctx, const char *msg)
{
	log_warnx("%s pop3 tls: %s", (const char *)ctx, msg);
}

/*
 * The login process: keys (its own domain's, as root outside the root),
 * then chroot and run_as in one step.  Never returns.
 */
static void __attribute__((noreturn))
auth_login_child(const struct smtpd_domain *sd, struct pop3_login_args *la,
    const struct priv_user *runas, int has_tls)
{
	static const int	 keep[] = { CAP_SETGID, CAP_SETUID,
				    CAP_SYS_CHROOT };
	struct diag		 d = { auth_diag_log, NULL, 0 };
	const char		*err;
	int			 fds[3];
	char			 go, id[16];
	ssize_t			 n;

	log_set_procname(POP3D_NAME "[login]");
	proctitle_set("login %s", sd->name);
	fds[0] = la->fd;
	fds[1] = la->auth_fd;
	fds[2] = la->proxy_fd;
	if (priv_keep_fds(fds, 3, &err) == -1)
		fatalx("%s pop3 login: %s", la->id, err);
	la->fd = fds[0];
	la->auth_fd = fds[1];
	la->proxy_fd = fds[2];
	(void)strlcpy(id, la->id, sizeof(id));
	d.ctx = id;
	if (has_tls && (la->tls = tls_server_load(sd->vd->dir, sd->tls_pairs,
	    sd->ntls_pairs, &d)) == NULL) {
		log_warnx("%s pop3 tls: the domain's keys do not load; "
		    "session refused", la->id);
		if (!la->tls_implicit)
			auth_refuse(la->fd, "-ERR [SYS/TEMP] service not "
			    "available (TLS keys)\r\n");
		_exit(1);
	}
	if (priv_limit_caps(keep, sizeof(keep) / sizeof(keep[0]), &err) ==
	    -1 || priv_enter_root(sd->vd->dir, runas, &err) == -1)
		fatalx("%s pop3 login: %s", la->id, err);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		fatal("%s pop3 login: prctl", la->id);
	/* The auth step has given up what it does not need: go. */
	do {
		n = recv(la->auth_fd, &go, 1, 0);
	} while (n == -1 && errno == EINTR);
	if (n != 1 || go != POP3_AUTH_READY)
		_exit(1);
	_exit(login_run(la));
}

/*
 * The user's session: chroot and the user in one step.  Never returns.
 */
static void __attribute__((noreturn))
auth_session_child(const struct smtpd_domain *sd, struct pop3_session_args *sa,
    const struct priv_user *u, pid_t parent)
{
	const char	*err;
	int		 fds[2];

	log_set_procname(POP3D_NAME "[session]");
	proctitle_set("session %s", sd->name);
	fds[0] = sa->fd;
	fds[1] = sa->mbox_tmpfd;
	if (priv_keep_fds(fds, 2, &err) == -1)
		fatalx("%s pop3 session: %s", sa->id, err);
	sa->fd = fds[0];
	sa->mbox_tmpfd = fds[1];
	if (priv_enter_root(sd->vd->dir, u, &err) == -1)
		fatalx("%s pop3 session: %s", sa->id, err);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		fatal("%s pop3 session: prctl", sa->id);
	if (getppid() != parent)
		_exit(1);
	_exit(session_run(sa));
}

/*
 * After a success: fork the session, wait for it (refreshing an mbox's
 * dotlock), commit or drop an mbox rewrite, wait for the TLS proxy.
 * Never returns.
 */
static void __attribute__((noreturn))
auth_serve(const struct smtpd_domain *sd, struct pop3_session_args *sa,
    const struct priv_user *u, int spoolfd, pid_t proxy)
{
	struct timespec	 ts;
	sigset_t	 set, old;
	const char	*err;
	pid_t		 pid, w;
	int		 sig, status = 0, commit;

	/* Signals wait for sigtimedwait() below, not for a handler. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGCHLD);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigprocmask(SIG_BLOCK, &set, &old);
	if ((pid = fork()) == -1) {
		auth_refuse(sa->fd, "-ERR [SYS/TEMP] try again later\r\n");
		status = -1;
	} else if (pid == 0) {
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		auth_session_child(sd, sa, u, getppid());
	}
	/* The session and the TLS proxy hold the connection now. */
	(void)close(sa->fd);
	while (pid > 0) {
		ts.tv_sec = AUTH_LOCK_TOUCH;
		ts.tv_nsec = 0;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			(void)kill(pid, SIGTERM);
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w == -1 && errno != EINTR))
			break;
		/* Still running: keep the lock fresh for delivery. */
		if (spoolfd != -1 && sig == -1 && errno == EAGAIN)
			spool_dotlock_touch(spoolfd, u->name);
	}
	if (spoolfd != -1) {
		commit = pid > 0 && WIFEXITED(status) &&
		    WEXITSTATUS(status) == POP3_EXIT_COMMIT;
		if (sa->mbox_tmpfd != -1 && spool_tmp_finish(spoolfd, u->name,
		    sa->mbox_tmpfd, commit, &err) == -1)
			log_warnx("%s pop3 mailbox user=%s: %s", sa->id,
			    u->name, err);
		spool_dotlock_release(spoolfd, u->name);
	}
	/* The TLS proxy ends once the session's socket has closed. */
	if (proxy > 0)
		while (waitpid(proxy, &status, 0) == -1 && errno == EINTR)
			;
	_exit(0);
}

void
auth_session_main(struct smtpd_domain *sd, const struct pop3_conf *pc,
    const struct pop3_conn *conn)
{
	/* Become the user (SETUID, SETGID, SYS_CHROOT), end children
	 * (KILL), give the mbox rewrite's file to the user (CHOWN). */
	static const int	 keep[] = { CAP_CHOWN, CAP_KILL, CAP_SETGID,
				    CAP_SETUID, CAP_SYS_CHROOT };
	struct pop3_login_args	 la;
	struct pop3_session_args sa;
	struct pop3_auth_req	*req;
	struct pop3_auth_result	 res;
	struct priv_user	 runas, u;
	struct sockaddr_storage	 local;
	socklen_t		 llen = sizeof(local);
	unsigned char		*msg;
	const char		*err = "out of memory";
	char			 id[16], pa[64], lo[64], path[PATH_MAX], ans;
	char			 mbox[PATH_MAX];
	unsigned int		 rnd = 0;
	ssize_t			 n;
	pid_t			 lpid, proxy = -1;
	int			 sp[2] = { -1, -1 }, pp[2] = { -1, -1 };
	int			 fds[5], spoolfd = -1, status, r, fd;
	int			 has_tls = conn->has_tls;

	fd = conn->fd;
	log_set_domain(sd->name);
	log_set_procname(POP3D_NAME "[auth]");
	proctitle_set("auth %s", sd->name);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)getpid() ^ (unsigned int)time(NULL);
	(void)snprintf(id, sizeof(id), "%08x", rnd);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1)
		memset(&local, 0, sizeof(local));
	log_info("%s pop3 connect peer=%s local=%s", id,
	    domain_addr_text((const struct sockaddr *)&conn->peer, pa,
	    sizeof(pa)),
	    domain_addr_text((struct sockaddr *)&local, lo, sizeof(lo)));

	/*
	 * Bound to this domain for good: every lookup below refuses an
	 * account outside its ids, and with a declared range the kernel
	 * lets no process of this session switch to another id.
	 */
	if (priv_domain_bind(conn->pol, sd->vd, 0, &err) == -1) {
		log_warnx("%s pop3 cannot bind to the domain: %s", id, err);
		auth_refuse(fd, "-ERR [SYS/TEMP] service not available\r\n");
		_exit(1);
	}
	req = calloc(1, sizeof(*req));
	msg = malloc(POP3_IPC_MAX);
	if (req == NULL || msg == NULL ||
	    priv_lookup_user(sd->vd->dir, sd->run_as, &runas, &err) == -1 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1 ||
	    (has_tls && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    pp) == -1)) {
		log_warnx("%s pop3 cannot start the session: %s", id, err);
		auth_refuse(fd, "-ERR [SYS/TEMP] service not available\r\n");
		_exit(1);
	}
	/* This process's lines too, and its children's: the master names
	 * the domain.  The relay's descriptor goes along below. */
	if (conn->relay_fd != -1)
		log_to_relay(conn->relay_fd);
	fds[0] = fd;
	fds[1] = sp[0];
	fds[2] = sp[1];
	fds[3] = pp[0];
	fds[4] = pp[1];
	if (priv_keep_fds(fds, 5, &err) == -1 || auth_null_stdio(&err) == -1) {
		log_warnx("%s pop3 cannot start the session: %s", id, err);
		auth_refuse(fds[0], "-ERR [SYS/TEMP] service not available"
		    "\r\n");
		_exit(1);
	}
	fd = fds[0];
	/* As accept4() gives it in daemon mode; inetd's may block, and a
	 * blocking SSL_read would stall the TLS proxy (login.c). */
	if ((r = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, r | O_NONBLOCK) == -1) {
		log_warn("%s pop3 client socket O_NONBLOCK", id);
		_exit(1);
	}
	sp[0] = fds[1];
	sp[1] = fds[2];
	pp[0] = fds[3];
	pp[1] = fds[4];

	memset(&la, 0, sizeof(la));
	la.id = id;
	la.hostname = sd->hostname;
	la.fd = fd;
	la.auth_fd = sp[1];
	la.timeout = pc->timeout;
	la.auth_delay = pc->auth_delay;
	la.failures_max = pc->auth_failures_max;
	la.tls = NULL;			/* the login process loads them */
	la.tls_implicit = conn->tls_implicit;
	la.allow_plaintext_auth = sd->allow_plaintext_auth;
	la.proxy_fd = pp[1];
	/*
	 * The kernel keeps this process and all it forks to the domain's
	 * files; the login process too, so that it may be signalled.
	 */
	if (confine_to_root(sd->vd->dir, CONFINE_WRITE, &err) == -1) {
		log_warnx("%s pop3 cannot confine the session: %s", id, err);
		auth_refuse(fd, "-ERR [SYS/TEMP] service not available\r\n");
		_exit(1);
	}
	if ((lpid = fork()) == -1) {
		auth_refuse(fd, "-ERR [SYS/TEMP] service busy\r\n");
		_exit(1);
	}
	if (lpid == 0)
		auth_login_child(sd, &la, &runas, has_tls);
	(void)close(sp[1]);
	if (pp[1] != -1)
		(void)close(pp[1]);
	explicit_bzero(&runas, sizeof(runas));
	/* Before the login process reads a byte: only what is needed. */
	if (priv_limit_caps(keep, sizeof(keep) / sizeof(keep[0]), &err) ==
	    -1 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warnx("%s pop3 cannot limit privileges: %s", id, err);
		(void)kill(lpid, SIGKILL);
		_exit(1);
	}
	ans = POP3_AUTH_READY;
	if (send(sp[0], &ans, 1, MSG_NOSIGNAL) != 1) {
		(void)waitpid(lpid, &status, 0);
		_exit(0);
	}

	for (;;) {
		do {
			n = recv(sp[0], msg, POP3_IPC_MAX, 0);
		} while (n == -1 && errno == EINTR);
		if (n <= 0) {
			/* The client left, or failed too often. */
			(void)waitpid(lpid, &status, 0);
			_exit(0);
		}
		if (pop3_ipc_decode(msg, (size_t)n, req) == -1) {
			log_warnx("%s pop3 bad request from the login process",
			    id);
			(void)kill(lpid, SIGKILL);
			_exit(1);
		}
		explicit_bzero(msg, (size_t)n);
		auth_check(sd, sd->vd->dir, req->user, req->pass, &res);
		explicit_bzero(req->pass, sizeof(req->pass));
		ans = POP3_AUTH_FAIL;
		if (res.ok) {
			if (priv_lookup_user(sd->vd->dir, res.name, &u,
			    &err) == -1) {
				log_warnx("%s pop3 %s", id, err);
				ans = POP3_AUTH_TEMP;
			} else if (!sd->mailbox_mbox)
				ans = POP3_AUTH_OK;
			else if ((spoolfd = spool_open(sd->vd->dir, &err)) ==
			    -1) {
				log_warnx("%s pop3 %s", id, err);
				ans = POP3_AUTH_TEMP;
			} else if ((r = spool_dotlock(spoolfd, u.name)) == 0)
				ans = POP3_AUTH_OK;
			else {
				ans = r == 1 ? POP3_AUTH_INUSE :
				    POP3_AUTH_TEMP;
				log_info("%s pop3 mailbox %s user=%s", id,
				    r == 1 ? "in use" : "lock failed", u.name);
				(void)close(spoolfd);
				spoolfd = -1;
			}
		}
		if (send(sp[0], &ans, 1, MSG_NOSIGNAL) != 1) {
			if (spoolfd != -1)
				spool_dotlock_release(spoolfd, u.name);
			_exit(1);
		}
		if (ans == POP3_AUTH_OK)
			break;
	}
	/*
	 * In the clear the login process exits without another byte to
	 * the client.  Over TLS it says POP3_AUTH_PROXY and stays; the
	 * session then reads and writes the socketpair, not the client.
	 */
	do {
		n = recv(sp[0], &ans, 1, 0);
	} while (n == -1 && errno == EINTR);
	if (n == 1 && ans == POP3_AUTH_PROXY && pp[0] != -1) {
		proxy = lpid;
		(void)close(fd);
		fd = pp[0];
	} else {
		while (waitpid(lpid, &status, 0) == -1 && errno == EINTR)
			;
		if (pp[0] != -1)
			(void)close(pp[0]);
	}
	(void)close(sp[0]);
	log_info("%s pop3 auth ok user=%s%s", id, u.name,
	    proxy != -1 ? " tls=yes" : "");

	memset(&sa, 0, sizeof(sa));
	sa.id = id;
	sa.user = u.name;
	sa.fd = fd;
	sa.left = req->left;
	sa.leftlen = req->leftlen;
	sa.timeout = pc->timeout;
	sa.uid = u.uid;
	sa.mbox_tmpfd = -1;
	if (sd->mailbox_mbox) {
		r = snprintf(mbox, sizeof(mbox), "%s/%s", POP3_MBOX_DIR,
		    u.name);
		if (r < 0 || (size_t)r >= sizeof(mbox) ||
		    (sa.mbox_tmpfd = spool_tmp_create(spoolfd, u.name, u.uid,
		    u.gid, &err)) == -1) {
			log_warnx("%s pop3 %s", id, r < 0 || (size_t)r >=
			    sizeof(mbox) ? "mailbox path too long" : err);
			auth_refuse(fd, "-ERR [SYS/TEMP] cannot prepare the "
			    "mailbox\r\n");
			spool_dotlock_release(spoolfd, u.name);
			_exit(1);
		}
		sa.mbox = 1;
		sa.mailbox = mbox;
	} else {
		r = snprintf(path, sizeof(path), "%s/Maildir", u.home);
		if (r < 0 || (size_t)r >= sizeof(path)) {
			auth_refuse(fd, "-ERR [SYS/PERM] home directory too "
			    "long\r\n");
			_exit(1);
		}
		sa.mailbox = path;
	}
	auth_serve(sd, &sa, &u, spoolfd, proxy);
}
