/*
 * deliverer.c — a domain's privileged deliverer, which writes local
 * mailboxes on behalf of the domain's queue runner (its child) or of
 * the SMTP worker's commit threads (whose child it is: smtp_direct.c).
 *
 * PROCESS SHAPE
 *	runner_main() (runner.c) chroots into the domain's root as root,
 *	forks the runner and calls deliverer_main() in the parent, which
 *	stays uid 0 and chrooted with only the capabilities delivery
 *	needs (priv_limit_caps, PRIV_CAPS_MAILBOX).  It does nothing but
 *	answer requests "deliver message fd F to local user U" (struct
 *	deliver_req, deliver_local.c).  It re-checks U against the
 *	domain's etc/passwd (valid name, present, uid and gid not 0),
 *	which it reads again only when the file changed.  A
 *	Maildir delivery goes to one of U's long-lived writers
 *	(deliver_agent.c).  Otherwise (mbox, or no writer to be had) it
 *	forks one child per delivery, which closes every descriptor but
 *	the message and its result pipe.  For a Maildir that child calls
 *	setgroups/setresgid/setresuid to U's uid and gid from the
 *	domain's passwd (priv_drop) and writes the mailbox (deliver_local)
 *	itself.  For an mbox it takes the dotlock in the root-owned spool
 *	directory and forks a grandchild that drops to U and writes the
 *	mailbox.  The result comes back as a line of status ok/temp/perm
 *	and a reason, which the deliverer checks (strict decoding,
 *	control bytes replaced), bounded by a timeout, and relays to the
 *	client that asked.

 *	The master supervises the deliverer; SIGTERM to it is passed on
 *	to the runner, which finishes the deliveries in flight and exits;
 *	the deliverer exits when the runner's socket closes and its
 *	children are done.  The worker's deliverer serves one socket per
 *	commit thread the same way and ends when the worker's sockets
 *	close.
 *
 * SECURITY
 *	The deliverer trusts nothing from the runner or the worker: a
 *	request that does not decode exactly, or comes without a
 *	descriptor, closes that connection (fail closed; the runner is
 *	ended too).  It never opens a path a client names; the only
 *	paths are the user's home from the domain's passwd and
 *	/var/spool/mail/USER with a validated name.  A user that is not
 *	in passwd, or has uid or gid 0, gets a temporary failure.  Nor
 *	does it trust what a delivery child or writer answers (they
 *	answer as the user): the answer must
 *	decode exactly, its text is made printable, and a child that
 *	overruns DELIVERER_TIMEOUT is killed and reported as a temporary
 *	failure.  The runner trusts the deliverer (more privileged):
 *	anything malformed from it is fatal there.
 */

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/queue.h>
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
} D;

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

/*
 * The per-delivery child: root, chrooted.  Descriptor 3 is the
 * message, 4 the result pipe to the deliverer.
 */
static void __attribute__((noreturn))
deliverer_child(const struct deliver_req *req, const struct priv_user *u,
    const char *hostname)
{
	struct deliver_res	 res;
	struct sigaction	 sa;
	struct buf		 in;
	const char		*err;
	char			 chunk[1024];
	pid_t			 pid;
	ssize_t			 n;
	int			 p[2], status, locked = 0;

	memset(&res, 0, sizeof(res));
	res.reqid = req->reqid;
	res.status = DELIVER_TEMPFAIL;
	if (!req->mbox) {
		/*
		 * Maildir needs nothing of root here: become the user at
		 * once and answer the deliverer directly, which checks the
		 * answer and enforces the timeout.  One fork per delivery
		 * instead of two (docs/performance.md).
		 */
		if (priv_drop(u, &err) == -1) {
			(void)snprintf(res.reason, sizeof(res.reason), "%s",
			    err);
			deliverer_child_reply(4, &res);
		}
		/* Cleared by the change of credentials. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		deliver_local(req, u->home, u->uid, hostname, 3, &res);
		deliverer_child_reply(4, &res);
	}
	if (req->mbox) {
		if (deliver_mbox_prepare(req, u->uid, u->gid, &res) == -1)
			deliverer_child_reply(4, &res);
		locked = 1;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		(void)strlcpy(res.reason, "pipe failed", sizeof(res.reason));
		goto out;
	}
	if ((pid = fork()) == -1) {
		(void)strlcpy(res.reason, "fork failed", sizeof(res.reason));
		goto out;
	}
	if (pid == 0) {
		/* The grandchild: becomes the user for good. */
		(void)close(p[0]);
		(void)close(4);
		if (priv_drop(u, &err) == -1) {
			(void)snprintf(res.reason, sizeof(res.reason), "%s",
			    err);
			deliverer_child_reply(p[1], &res);
		}
		deliver_local(req, u->home, u->uid, hostname, 3, &res);
		deliverer_child_reply(p[1], &res);
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
	if (locked)
		deliver_mbox_unlock(req);
	deliverer_child_reply(4, &res);
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
	int			 msgfd = -1, p[2], a, b;

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
	    &err) == -1) {
		if (msgfd != -1)
			(void)close(msgfd);
		deliverer_drop_client(client, msgfd == -1 ?
		    "request without message" : err);
		return;
	}
	if (priv_userdb_lookup(&D.users, req.user, &u, &err) == -1) {
		log_warnx("deliverer: refusing user %s: %s", req.user, err);
		(void)close(msgfd);
		deliverer_reply(client, req.reqid, DELIVER_TEMPFAIL,
		    "recipient not valid for delivery");
		return;
	}
	/* Maildir: a long-lived writer of that user's, when there is one. */
	if (deliver_agent_deliver(&u, client, &req, msgfd) == 0) {
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
		/* Keep only the message (3) and the result pipe (4). */
		if ((a = fcntl(msgfd, F_DUPFD, 100)) == -1 ||
		    (b = fcntl(p[1], F_DUPFD, 100)) == -1 ||
		    dup2(a, 3) == -1 || dup2(b, 4) == -1)
			_exit(1);
		if (close_range(5, ~0U, 0) == -1) {
			for (a = 5; a < 1024; a++)
				(void)close(a);
		}
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		deliverer_child(&req, &u, D.sd->hostname);
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
	static const int keep[] = PRIV_CAPS_MAILBOX;
	const char	*err;
	size_t		 i;

	if (priv_limit_caps(keep, sizeof(keep) / sizeof(keep[0]), &err) == -1)
		fatalx("deliverer: %s", err);

	memset(&D, 0, sizeof(D));
	D.sd = sd;
	D.cfds = cfds;
	D.ncfds = D.nopen = ncfds;
	D.runner_pid = runner_pid;
	LIST_INIT(&D.children);
	priv_userdb_init(&D.users, "/");
	log_set_procname("smtpd-deliverer");
	if ((D.loop = ev_loop_new()) == NULL)
		fatal("deliverer: event loop");
	deliver_agent_init(D.loop, sd->hostname, deliverer_answer,
	    deliverer_maybe_exit);
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
