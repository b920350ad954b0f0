/*
 * deliverer.c — a domain's privileged deliverer, which writes local
 * mailboxes on behalf of the domain's queue runner (its child) or of
 * the SMTP worker's commit threads (whose child it is: smtp_direct.c).
 *
 * PROCESS SHAPE
 *	runner_main() (runner.c) forks the runner, which chroots into the
 *	domain's root and becomes run_as in one step, and calls
 *	deliverer_main() in the parent.  The deliverer stays uid 0 and
 *	OUTSIDE the domain's root (its root directory is the host's /),
 *	with only DELIVERER_CAPS (priv_limit_caps).  It reads the
 *	domain's etc/passwd and etc/group (priv_userdb, given the
 *	domain's directory) and the spool directory only through in-root
 *	opens (file_open_in_root: an O_PATH descriptor of the root, then
 *	openat2 RESOLVE_IN_ROOT), never by a host path into the root.  It
 *	does nothing but answer requests "deliver message fd F to local
 *	user U" (struct deliver_req, deliver_local.c).  It re-checks U
 *	against the domain's etc/passwd (valid name, present, uid and
 *	gid not 0), which it reads again only when the file changed, and
 *	takes the mailbox format from the domain's configuration (struct
 *	smtpd_domain), never from the request.
 *
 *	Every process it forks that touches the domain's files first
 *	closes every descriptor but its own (close_range), then chroots
 *	into the domain's root and becomes U in one step (priv_enter_
 *	root), sets no_new_privs, and only then opens anything in the
 *	root: no process inside a domain's root is uid 0 or holds a
 *	capability.  A Maildir delivery goes to one of U's long-lived
 *	writers (deliver_agent.c), or, when none can be had, to a child
 *	that writes it and exits.  An mbox delivery goes to a child that
 *	stays root outside the root (the same capabilities), creates a
 *	missing mbox for U and takes the dotlock through the spool
 *	directory's descriptor (deliver_spool.c), forks a grandchild that
 *	enters the root as U, fcntl()-locks and appends to the mbox, and
 *	removes the dotlock when the grandchild is done, killed or timed
 *	out.  The result comes back as a line of status ok/temp/perm and
 *	a reason, which the deliverer checks (strict decoding, control
 *	bytes replaced), bounded by a timeout, and relays to the client
 *	that asked.
 *
 *	The master supervises the deliverer; SIGTERM to it is passed on
 *	to the runner, which finishes the deliveries in flight and exits;
 *	the deliverer exits when the runner's socket closes and its
 *	children are done.  The worker's deliverer (smtp_direct_start.c)
 *	serves one socket per commit thread the same way and ends when
 *	the worker's sockets close.
 *
 * SECURITY
 *	The deliverer reads no network input, but its clients are
 *	unprivileged: the runner, and the network-facing SMTP worker.  It
 *	trusts nothing from either: a request that does not decode
 *	exactly, comes without a descriptor, or with a descriptor that is
 *	not a regular file opened read-only, closes that connection (fail
 *	closed; the runner is ended too).  It never opens a path a client
 *	names; the only paths are the user's home from the domain's
 *	passwd (opened by the user, inside the root) and var/spool/mail/
 *	USER with a validated name.  A user that is not in passwd, or has
 *	uid or gid 0, gets a temporary failure.  So a compromised worker
 *	(or runner) gets nothing beyond what it could get by queueing the
 *	message: delivery of bytes it already had, into the mailbox of a
 *	user of its own domain, written as that user.  It cannot choose
 *	the mailbox format, a path, another domain, or a uid.  Nor does
 *	the deliverer trust what a delivery child or writer answers (they
 *	answer as the user): the answer must decode exactly, its text is
 *	made printable, and a child that overruns DELIVERER_TIMEOUT is
 *	killed and reported as a temporary failure.  The runner trusts
 *	the deliverer (more privileged): anything malformed from it is
 *	fatal there.
 */

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "fdpass.h"
#include "fileio.h"
#include "log.h"
#include "privdrop.h"
#include "proctitle.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

#define DELIVERER_CHILDREN_MAX	16
#define DELIVERER_TIMEOUT	600	/* s for one delivery */

struct dchild {
	LIST_ENTRY(dchild)	 entry;
	pid_t			 pid;
	int			 fd;		/* result pipe */
	size_t			 client;	/* who asked: index in D.cfds */
	uint32_t		 reqid;
	struct buf		 in;
	struct ev_timer		 timer;		/* DELIVERER_TIMEOUT */
	int			 timed_out;
};

LIST_HEAD(dchild_list, dchild);

static struct {
	struct ev_loop		*loop;
	struct smtpd_domain	*sd;
	int			*cfds;		/* clients; -1 when gone */
	size_t			 ncfds, nopen;
	pid_t			 runner_pid;	/* -1: the worker's deliverer */
	struct dchild_list	 children;
	size_t			 nchildren;
	struct priv_userdb	 users;		/* etc/passwd, etc/group */
	const char		*dir;		/* the domain's root */
} D;

static char	 deliverer_errbuf[256];

static volatile sig_atomic_t	 deliver_alarm;

static void
deliverer_on_alarm(int sig)
{
	(void)sig;
	deliver_alarm = 1;
}

/* Replace what the untrusted grandchild wrote with printable text. */
static void
deliverer_clean(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == '"')
			*s = '?';
}

static void __attribute__((noreturn))
deliverer_child_reply(int fd, struct deliver_res *res)
{
	char	 msg[DELIVER_MSG_MAX];
	size_t	 len;

	if (deliver_res_encode(res, msg, sizeof(msg), &len) == -1 ||
	    write_all(fd, msg, len) == -1)
		_exit(1);
	_exit(0);
}

int
deliverer_enter(const char *dir, const struct priv_user *u, int deathsig,
    const char **error_r)
{
	if (priv_enter_root(dir, u, error_r) == -1)
		return -1;
	/* Nothing in the root can give back what was just given up. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		(void)snprintf(deliverer_errbuf, sizeof(deliverer_errbuf),
		    "prctl(PR_SET_NO_NEW_PRIVS) failed: %s", strerror(errno));
		*error_r = deliverer_errbuf;
		return -1;
	}
	/* Cleared by the change of credentials: set again. */
	if (prctl(PR_SET_PDEATHSIG, deathsig) == -1) {
		(void)snprintf(deliverer_errbuf, sizeof(deliverer_errbuf),
		    "prctl(PR_SET_PDEATHSIG) failed: %s", strerror(errno));
		*error_r = deliverer_errbuf;
		return -1;
	}
	return 0;
}

/*
 * A child that enters the root as u and writes the mailbox: a Maildir
 * for the deliverer, an mbox for deliverer_mbox_child().  Its
 * descriptors: 3 the message, 4 the result pipe, and nothing else.
 */
static void __attribute__((noreturn))
deliverer_user_child(const struct deliver_req *req, const struct priv_user *u,
    const char *hostname)
{
	struct deliver_res	 res;
	const char		*err;

	proctitle_set("delivery %s", D.sd->name);
	memset(&res, 0, sizeof(res));
	res.reqid = req->reqid;
	res.status = DELIVER_TEMPFAIL;
	if (deliverer_enter(D.dir, u, SIGKILL, &err) == -1) {
		(void)snprintf(res.reason, sizeof(res.reason), "%s", err);
		deliverer_child_reply(4, &res);
	}
	deliver_local(req, u->home, u->uid, hostname, 3, &res);
	deliverer_child_reply(4, &res);
}

/*
 * The mbox delivery child: root, outside the root, with the deliverer's
 * capabilities.  Descriptors: 3 the message, 4 the result pipe to the
 * deliverer.  It makes a missing mbox and
 * takes the dotlock, forks the child that writes as the user, and
 * removes the dotlock when that child is done (or killed on timeout).
 */
static void __attribute__((noreturn))
deliverer_mbox_child(const struct deliver_req *req, const struct priv_user *u,
    const char *hostname)
{
	struct deliver_res	 res;
	struct sigaction	 sa;
	struct stat		 held;
	struct buf		 in;
	const char		*err;
	char			 chunk[1024];
	pid_t			 pid;
	ssize_t			 n;
	int			 p[2], keep[2], status, spoolfd;

	memset(&res, 0, sizeof(res));
	res.reqid = req->reqid;
	res.status = DELIVER_TEMPFAIL;
	if ((spoolfd = deliver_spool_open(D.dir, &err)) == -1) {
		(void)snprintf(res.reason, sizeof(res.reason), "%s", err);
		deliverer_child_reply(4, &res);
	}
	if (deliver_spool_lock(spoolfd, u->name, u->uid, u->gid, &held,
	    &res) == -1)
		deliverer_child_reply(4, &res);
	if (pipe2(p, O_CLOEXEC) == -1) {
		(void)strlcpy(res.reason, "pipe failed", sizeof(res.reason));
		goto out;
	}
	if ((pid = fork()) == -1) {
		(void)strlcpy(res.reason, "fork failed", sizeof(res.reason));
		goto out;
	}
	if (pid == 0) {
		/* Neither the spool nor the deliverer's pipe goes along. */
		keep[0] = 3;
		keep[1] = p[1];
		if (priv_keep_fds(keep, 2, &err) == -1)
			_exit(1);
		deliverer_user_child(req, u, hostname);
	}
	(void)close(p[1]);
	(void)close(3);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = deliverer_on_alarm;
	(void)sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART */
	(void)alarm(DELIVERER_TIMEOUT);
	buf_init(&in, DELIVER_MSG_MAX);
	for (;;) {
		n = read(p[0], chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR) {
			if (deliver_alarm)
				(void)kill(pid, SIGKILL);
			continue;
		}
		if (n <= 0)
			break;
		if (buf_append(&in, chunk, (size_t)n) == -1) {
			(void)kill(pid, SIGKILL);
			break;
		}
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		if (deliver_alarm)
			(void)kill(pid, SIGKILL);
	(void)alarm(0);
	if (deliver_alarm) {
		memset(&res, 0, sizeof(res));
		res.status = DELIVER_TEMPFAIL;
		(void)strlcpy(res.reason, "delivery timed out",
		    sizeof(res.reason));
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    deliver_res_decode(in.data, in.len, &res, &err) == -1) {
		memset(&res, 0, sizeof(res));
		res.status = DELIVER_TEMPFAIL;
		(void)strlcpy(res.reason, "delivery process failed",
		    sizeof(res.reason));
	}
	buf_free(&in);
	res.reqid = req->reqid;
	deliverer_clean(res.mailbox);
	deliverer_clean(res.reason);
out:
	deliver_spool_unlock(spoolfd, u->name, &held);
	deliverer_child_reply(4, &res);
}

/* A message descriptor must be a regular file, opened read-only. */
static int
deliverer_check_msgfd(int fd, const char **error_r)
{
	struct stat	 st;
	int		 fl;

	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*error_r = "message descriptor is not a regular file";
		return -1;
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1 || (fl & O_PATH) != 0 ||
	    (fl & O_ACCMODE) != O_RDONLY) {
		*error_r = "message descriptor is not opened read-only";
		return -1;
	}
	return 0;
}

void
deliverer_child_signals(void)
{
	sigset_t	 none;

	/* The event loop blocked them (ev_signal). */
	(void)sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGTERM, SIG_DFL);
	(void)signal(SIGINT, SIG_DFL);
	(void)signal(SIGCHLD, SIG_DFL);
}

static void
deliverer_reply(size_t client, uint32_t reqid, enum deliver_status st,
    const char *reason)
{
	struct deliver_res	 res;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len;

	memset(&res, 0, sizeof(res));
	res.reqid = reqid;
	res.status = st;
	(void)strlcpy(res.reason, reason, sizeof(res.reason));
	if (D.cfds[client] == -1)
		return;
	if (deliver_res_encode(&res, msg, sizeof(msg), &len) == -1 ||
	    fdpass_send(D.cfds[client], -1, msg, len) == -1)
		log_warn("deliverer: reply");
}

static void
deliverer_maybe_exit(void)
{
	int	 status;

	if (D.nopen > 0 || D.nchildren > 0 || deliver_agent_busy() > 0)
		return;
	deliver_agent_close_all();
	if (D.runner_pid > 0) {
		while (waitpid(D.runner_pid, &status, 0) == -1 &&
		    errno == EINTR)
			;
	}
	log_debug("deliverer: done");
	exit(0);
}

static void
deliverer_drop_client(size_t client, const char *why)
{
	if (D.cfds[client] == -1)
		return;
	if (why != NULL) {
		log_warnx("deliverer: %s; closing the %s's connection", why,
		    D.runner_pid != -1 ? "runner" : "worker");
		if (D.runner_pid > 0)
			(void)kill(D.runner_pid, SIGTERM);
	}
	(void)ev_del(D.loop, D.cfds[client]);
	(void)close(D.cfds[client]);
	D.cfds[client] = -1;
	D.nopen--;
	deliverer_maybe_exit();
}

/* Relay an answer to the client that asked (a child's or an agent's:
 * both answer as the user, so nothing in it is trusted). */
static void
deliverer_answer(size_t client, struct deliver_res *res)
{
	char	 msg[DELIVER_MSG_MAX];
	size_t	 len;

	deliverer_clean(res->mailbox);
	deliverer_clean(res->reason);
	if (D.cfds[client] != -1 && (deliver_res_encode(res, msg,
	    sizeof(msg), &len) == -1 || fdpass_send(D.cfds[client], -1, msg,
	    len) == -1))
		log_warn("deliverer: reply");
}

static void
deliverer_on_child(int fd, int events, void *arg)
{
	struct dchild		*c = arg;
	struct deliver_res	 res;
	const char		*err;
	char			 chunk[DELIVER_MSG_MAX];
	ssize_t			 n;

	(void)events;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n > 0 && buf_append(&c->in, chunk, (size_t)n) == 0)
			continue;
		break;
	}
	/* EOF (or garbage): the child is done. */
	ev_timer_cancel(D.loop, &c->timer);
	if (c->timed_out || deliver_res_decode(c->in.data, c->in.len, &res,
	    &err) == -1) {
		memset(&res, 0, sizeof(res));
		res.status = DELIVER_TEMPFAIL;
		(void)strlcpy(res.reason, c->timed_out ? "delivery timed out" :
		    "delivery process failed", sizeof(res.reason));
	}
	res.reqid = c->reqid;
	deliverer_answer(c->client, &res);
	(void)ev_del(D.loop, fd);
	(void)close(fd);
	buf_free(&c->in);
	LIST_REMOVE(c, entry);
	D.nchildren--;
	free(c);
	deliverer_maybe_exit();
}

static void
deliverer_on_timeout(void *arg)
{
	struct dchild	*c = arg;

	/* The pipe's EOF reports it; SIGCHLD reaps it. */
	c->timed_out = 1;
	if (kill(c->pid, SIGKILL) == -1 && errno != ESRCH)
		log_warn("deliverer: kill %ld", (long)c->pid);
}

static void
deliverer_on_request(int fd, int events, void *arg)
{
	struct deliver_req	 req;
	struct priv_user	 u;
	struct dchild		*c;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX + 1];
	size_t			 client = (size_t)((int *)arg - D.cfds);
	ssize_t			 n;
	pid_t			 pid;
	int			 msgfd = -1, p[2], keep[2];

	(void)events;
	n = fdpass_recv(fd, &msgfd, msg, sizeof(msg));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		deliverer_drop_client(client, n == 0 ? NULL :
		    "receive failed");
		return;
	}
	if (msgfd == -1 || deliver_req_decode(msg, (size_t)n, &req,
	    &err) == -1 || deliverer_check_msgfd(msgfd, &err) == -1) {
		if (msgfd != -1)
			(void)close(msgfd);
		deliverer_drop_client(client, msgfd == -1 ?
		    "request without message" : err);
		return;
	}
	/* The domain's choice, not the client's. */
	req.mbox = D.sd->mailbox_mbox;
	if (priv_userdb_lookup(&D.users, req.user, &u, &err) == -1) {
		log_warnx("deliverer: refusing user %s: %s", req.user, err);
		(void)close(msgfd);
		deliverer_reply(client, req.reqid, DELIVER_TEMPFAIL,
		    "recipient not valid for delivery");
		return;
	}
	/* Maildir: a long-lived writer of that user's, when there is one. */
	if (!req.mbox && deliver_agent_deliver(&u, client, &req, msgfd) == 0) {
		explicit_bzero(&u, sizeof(u));
		return;
	}
	/* Each of the worker's threads waits for its answer. */
	if (D.nchildren >= DELIVERER_CHILDREN_MAX &&
	    D.nchildren >= D.ncfds) {
		(void)close(msgfd);
		deliverer_reply(client, req.reqid, DELIVER_TEMPFAIL,
		    "deliverer busy");
		return;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		(void)close(msgfd);
		deliverer_reply(client, req.reqid, DELIVER_TEMPFAIL,
		    "pipe failed");
		return;
	}
	if ((pid = fork()) == -1) {
		(void)close(msgfd);
		(void)close(p[0]);
		(void)close(p[1]);
		deliverer_reply(client, req.reqid, DELIVER_TEMPFAIL, "fork failed");
		return;
	}
	if (pid == 0) {
		deliverer_child_signals();
		/* The message (3), the result pipe (4), nothing else. */
		keep[0] = msgfd;
		keep[1] = p[1];
		if (priv_keep_fds(keep, 2, &err) == -1)
			_exit(1);
		if (!req.mbox)
			deliverer_user_child(&req, &u, D.sd->hostname);
		proctitle_set("mbox %s", D.sd->name);
		/* Cleared when its child changes credentials, not here. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		deliverer_mbox_child(&req, &u, D.sd->hostname);
	}
	(void)close(msgfd);
	(void)close(p[1]);
	explicit_bzero(&u, sizeof(u));
	c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->fd = p[0];
	c->reqid = req.reqid;
	c->client = client;
	buf_init(&c->in, DELIVER_MSG_MAX);
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1 ||
	    ev_add(D.loop, c->fd, EV_READ, deliverer_on_child, c) == -1)
		fatal("deliverer: watch child");
	/* The mbox child has its own alarm; this covers both. */
	ev_timer_set(D.loop, &c->timer, (DELIVERER_TIMEOUT + 5) * 1000ULL,
	    deliverer_on_timeout, c);
	LIST_INSERT_HEAD(&D.children, c, entry);
	D.nchildren++;
}

static void
deliverer_on_signal(int signo, void *arg)
{
	int	 status;
	pid_t	 pid;

	(void)arg;
	if (signo == SIGCHLD) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == D.runner_pid) {
				if (!WIFEXITED(status) ||
				    WEXITSTATUS(status) != 0)
					log_warnx("deliverer: runner ended "
					    "with status %d", status);
				D.runner_pid = -1;
			}
		}
		deliverer_maybe_exit();
		return;
	}
	/* SIGTERM/SIGINT: the runner finishes its deliveries first. */
	if (D.runner_pid > 0)
		(void)kill(D.runner_pid, SIGTERM);
}

void __attribute__((noreturn))
deliverer_main(struct smtpd_domain *sd, int *cfds, size_t ncfds,
    pid_t runner_pid)
{
	static const int keep[] = DELIVERER_CAPS;
	const char	*err;
	size_t		 i;

	if (priv_limit_caps(keep, sizeof(keep) / sizeof(keep[0]), &err) == -1)
		fatalx("deliverer: %s", err);

	memset(&D, 0, sizeof(D));
	D.sd = sd;
	D.cfds = cfds;
	D.ncfds = D.nopen = ncfds;
	D.runner_pid = runner_pid;
	D.dir = sd->vd->dir;
	LIST_INIT(&D.children);
	/* Outside the root: nothing of the domain's is the way out. */
	if (chdir("/") == -1)
		fatal("deliverer: chdir /");
	if (priv_check_root(D.dir, &err) == -1)
		fatalx("deliverer: %s", err);
	priv_userdb_init(&D.users, D.dir);
	log_set_procname("smtpd-deliverer");
	if ((D.loop = ev_loop_new()) == NULL)
		fatal("deliverer: event loop");
	deliver_agent_init(D.loop, D.dir, sd->name, sd->hostname,
	    deliverer_answer, deliverer_maybe_exit);
	if (ev_signal(D.loop, SIGCHLD, deliverer_on_signal, NULL) == -1 ||
	    ev_signal(D.loop, SIGTERM, deliverer_on_signal, NULL) == -1 ||
	    ev_signal(D.loop, SIGINT, deliverer_on_signal, NULL) == -1)
		fatal("deliverer: event setup");
	for (i = 0; i < ncfds; i++)
		if (ev_add(D.loop, cfds[i], EV_READ, deliverer_on_request,
		    &cfds[i]) == -1)
			fatal("deliverer: event setup");
	(void)ev_loop_run(D.loop);
	fatalx("deliverer: event loop ended");
}
