/*
 * auth.c — one POP3 session from accept to exit: the privileged step
 * between the login process and the user's session.
 *
 * SECURITY
 *	auth_session_main() starts in a fresh child of the master, as
 *	root.  Before anything else it chroots into the domain's root
 *	(still root: it must read etc/shadow there), then forks the login
 *	process, which becomes the domain's run_as account before it
 *	reads the client.  This process never reads the network: its
 *	only input is one request per attempt from the login process,
 *	decoded exactly (pop3_ipc_decode) and re-checked here (the user
 *	name against the domain's own passwd; "@domain" against the
 *	domain's own names).  On success it waits for the login process
 *	to exit, then becomes the user (priv_drop: setgroups, setresgid,
 *	setresuid, checked) before the mailbox is opened.
 *
 *	TLS: when the domain has a certificate, the contexts (keys in
 *	memory, from the master) go to the login process, which does
 *	every handshake; this process frees its own copy right after
 *	that fork (OpenSSL wipes private key material when freeing), so
 *	the user's session, forked from here or become from here, holds
 *	no key.  Over TLS the session talks to the login process through
 *	a socketpair, never to the client's socket (login.c).
 *
 *	For an mbox only, a root parent stays behind the user's session:
 *	it holds the dotlock in the root-owned spool (the user cannot
 *	create or remove files there), refreshes it, and at the end
 *	renames the rewritten mailbox into place (fixed paths, the temp
 *	file checked to be the one it created) and removes the lock.
 *
 *	auth_check(): the check of common/auth.c (crypt(3) for every
 *	attempt, a dummy hash for unknown users, constant-time compare);
 *	the password is wiped after use and never logged.
 *
 * DIAGNOSTICS
 *	"ID pop3 connect peer=A local=B", "ID pop3 auth ok user=U" ...
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "log.h"
#include "passwd.h"
#include "pop3d.h"
#include "privdrop.h"
#include "shadow.h"
#include "tls.h"

#define AUTH_LOCK_WAIT_MS	1000	/* a delivery holds it briefly */
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

static int
auth_spool_path(char *dst, size_t size, const char *user, const char *sfx)
{
	int	 n;

	n = snprintf(dst, size, "%s/%s%s", POP3_MBOX_DIR, user, sfx);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/*
 * The mbox dotlock, as deliver_local.c takes it: O_EXCL in the spool,
 * stale after DELIVER_LOCK_STALE.  0, 1 when in use, -1 on error.
 */
static int
auth_dotlock(const char *user)
{
	char		 lock[PATH_MAX], pid[32];
	struct stat	 st;
	int		 fd, n, waited = 0;

	if (auth_spool_path(lock, sizeof(lock), user, ".lock") == -1)
		return -1;
	for (;;) {
		fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd != -1)
			break;
		if (errno != EEXIST)
			return -1;
		if (lstat(lock, &st) == 0 &&
		    st.st_mtime + DELIVER_LOCK_STALE < time(NULL)) {
			(void)unlink(lock);
			continue;
		}
		if (waited >= AUTH_LOCK_WAIT_MS)
			return 1;
		(void)usleep(50 * 1000);
		waited += 50;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	(void)write_all(fd, pid, (size_t)n);
	(void)close(fd);
	return 0;
}

/*
 * mbox: stay root behind the user's session; hold and refresh the
 * dotlock, then commit the rewrite or drop it.  Never returns.
 */
static void
auth_mbox_session(const char *id, const struct priv_user *u,
    struct pop3_session_args *sa, pid_t proxy)
{
	char		 mbox[PATH_MAX], lock[PATH_MAX], tmp[PATH_MAX];
	struct stat	 a, b;
	struct timespec	 ts;
	sigset_t	 set, old;
	const char	*err;
	pid_t		 pid, w;
	int		 tmpfd, sig, status = 0;

	if (auth_spool_path(mbox, sizeof(mbox), u->name, "") == -1 ||
	    auth_spool_path(lock, sizeof(lock), u->name, ".lock") == -1 ||
	    auth_spool_path(tmp, sizeof(tmp), u->name, ".pop3tmp") == -1)
		_exit(1);
	/* A leftover of a crash: ours to replace, we hold the lock. */
	(void)unlink(tmp);
	tmpfd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (tmpfd == -1 || fchown(tmpfd, u->uid, u->gid) == -1) {
		log_warn("%s pop3 %s", id, tmp);
		auth_refuse(sa->fd, "-ERR [SYS/TEMP] cannot prepare the "
		    "mailbox\r\n");
		(void)unlink(lock);
		_exit(1);
	}
	sa->mbox_tmpfd = tmpfd;
	sa->mailbox = mbox;
	sa->mbox = 1;
	/* Signals wait for sigtimedwait() below, not for a handler. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGCHLD);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigprocmask(SIG_BLOCK, &set, &old);
	if ((pid = fork()) == -1) {
		auth_refuse(sa->fd, "-ERR [SYS/TEMP] try again later\r\n");
		(void)unlink(tmp);
		(void)unlink(lock);
		_exit(1);
	}
	if (pid == 0) {
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		if (priv_drop(u, &err) == -1)
			fatalx("%s pop3 %s", id, err);
		_exit(session_run(sa));
	}
	(void)close(sa->fd);
	for (;;) {
		ts.tv_sec = AUTH_LOCK_TOUCH;
		ts.tv_nsec = 0;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			(void)kill(pid, SIGTERM);
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w == -1 && errno != EINTR))
			break;
		/* Still running: keep the lock fresh for delivery. */
		if (sig == -1 && errno == EAGAIN)
			(void)utimensat(AT_FDCWD, lock, NULL,
			    AT_SYMLINK_NOFOLLOW);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == POP3_EXIT_COMMIT &&
	    fstat(tmpfd, &a) == 0 && lstat(tmp, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		if (rename(tmp, mbox) == -1 || file_fsync_dir(mbox) == -1)
			log_warn("%s pop3 rename %s", id, tmp);
	} else
		(void)unlink(tmp);
	(void)close(tmpfd);
	(void)unlink(lock);
	/* The TLS proxy ends once the session's socket has closed. */
	if (proxy > 0)
		while (waitpid(proxy, &status, 0) == -1 && errno == EINTR)
			;
	_exit(0);
}

void
auth_session_main(struct smtpd_domain *sd, const struct pop3_conf *pc,
    int fd, const struct sockaddr_storage *peer, int tls_implicit)
{
	/* Root for the user's session, an mbox's lock; nothing else. */
	static const int	 keep[] = PRIV_CAPS_MAILBOX;
	struct pop3_login_args	 la;
	struct pop3_session_args sa;
	struct pop3_auth_req	*req;
	struct pop3_auth_result	 res;
	struct priv_user	 runas, u;
	struct sockaddr_storage	 local;
	socklen_t		 llen = sizeof(local);
	unsigned char		*msg;
	const char		*err;
	char			 id[16], pa[64], lo[64], path[PATH_MAX], ans;
	unsigned int		 rnd = 0;
	ssize_t			 n;
	pid_t			 lpid, proxy = -1;
	int			 sp[2], pp[2] = { -1, -1 }, status, r;

	log_set_domain(sd->name);
	log_set_procname(POP3D_NAME "[session]");
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)getpid() ^ (unsigned int)time(NULL);
	(void)snprintf(id, sizeof(id), "%08x", rnd);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1)
		memset(&local, 0, sizeof(local));
	log_info("%s pop3 connect peer=%s local=%s", id,
	    domain_addr_text((const struct sockaddr *)peer, pa, sizeof(pa)),
	    domain_addr_text((struct sockaddr *)&local, lo, sizeof(lo)));

	req = calloc(1, sizeof(*req));
	msg = malloc(POP3_IPC_MAX);
	if (req == NULL || msg == NULL ||
	    priv_lookup_user(sd->vd->dir, sd->run_as, &runas, &err) == -1 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1 ||
	    (sd->tls != NULL && socketpair(AF_UNIX, SOCK_STREAM |
	    SOCK_CLOEXEC, 0, pp) == -1) ||
	    priv_enter_root(sd->vd->dir, NULL, &err) == -1 ||
	    priv_limit_caps(keep, sizeof(keep) / sizeof(keep[0]), &err) ==
	    -1) {
		log_warnx("%s pop3 cannot start the session", id);
		auth_refuse(fd, "-ERR [SYS/TEMP] service not available\r\n");
		_exit(1);
	}

	memset(&la, 0, sizeof(la));
	la.id = id;
	la.hostname = sd->hostname;
	la.fd = fd;
	la.auth_fd = sp[1];
	la.timeout = pc->timeout;
	la.auth_delay = pc->auth_delay;
	la.failures_max = pc->auth_failures_max;
	la.tls = sd->tls;
	la.tls_implicit = tls_implicit;
	la.allow_plaintext_auth = sd->allow_plaintext_auth;
	la.proxy_fd = pp[1];
	if ((lpid = fork()) == -1) {
		auth_refuse(fd, "-ERR [SYS/TEMP] service busy\r\n");
		_exit(1);
	}
	if (lpid == 0) {
		(void)close(sp[0]);
		if (pp[0] != -1)
			(void)close(pp[0]);
		if (priv_drop(&runas, &err) == -1)
			fatalx("%s pop3 login: %s", id, err);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		log_set_procname(POP3D_NAME "[login]");
		_exit(login_run(&la));
	}
	(void)close(sp[1]);
	if (pp[1] != -1)
		(void)close(pp[1]);
	/* Only the login process does TLS: no key stays here. */
	tls_server_free(sd->tls);
	sd->tls = NULL;

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
		auth_check(sd, "", req->user, req->pass, &res);
		explicit_bzero(req->pass, sizeof(req->pass));
		ans = POP3_AUTH_FAIL;
		if (res.ok) {
			if (priv_lookup_user("", res.name, &u, &err) == -1) {
				log_warnx("%s pop3 %s", id, err);
				ans = POP3_AUTH_TEMP;
			} else if (!sd->mailbox_mbox)
				ans = POP3_AUTH_OK;
			else if ((r = auth_dotlock(u.name)) == 0)
				ans = POP3_AUTH_OK;
			else {
				ans = r == 1 ? POP3_AUTH_INUSE :
				    POP3_AUTH_TEMP;
				log_info("%s pop3 mailbox %s user=%s", id,
				    r == 1 ? "in use" : "lock failed", u.name);
			}
		}
		if (send(sp[0], &ans, 1, MSG_NOSIGNAL) != 1)
			_exit(1);
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
	if (sd->mailbox_mbox)
		auth_mbox_session(id, &u, &sa, proxy);
	r = snprintf(path, sizeof(path), "%s/Maildir", u.home);
	if (r < 0 || (size_t)r >= sizeof(path)) {
		auth_refuse(fd, "-ERR [SYS/PERM] home directory too long\r\n");
		_exit(1);
	}
	sa.mailbox = path;
	if (priv_drop(&u, &err) == -1)
		fatalx("%s pop3 %s", id, err);
	r = session_run(&sa);
	/* Let the TLS proxy flush the last reply (it is our child). */
	(void)close(fd);
	if (proxy != -1)
		while (waitpid(proxy, &status, 0) == -1 && errno == EINTR)
			;
	_exit(r);
}
