/*
 * runner.c — a domain's queue runner and its privileged deliverer.
 *
 * PROCESS SHAPE
 *	runner_main() is called by the master (root, not chrooted) in a
 *	fresh child.  It looks up the domain's run_as account in the
 *	domain's own etc/passwd, chroots into the domain's root, and
 *	forks:
 *
 *	runner	  (the child) drops to run_as and does all the queue
 *		  work: reads envelopes, expands etc/aliases, decides, logs,
 *		  retries, updates and removes envelopes.  It opens each
 *		  message file itself and passes the descriptor.
 *	deliverer (the parent, still root, chrooted) does nothing but
 *		  answer the runner's requests "deliver message fd F to
 *		  local user U" (struct deliver_req, deliver_local.c).  It
 *		  re-checks U against the domain's etc/passwd (valid name,
 *		  present, uid and gid not 0) and forks one child per
 *		  delivery.  That child (root) closes every descriptor but
 *		  the message and its result pipe.  For a Maildir it then
 *		  calls setgroups/setresgid/setresuid to U's uid and gid
 *		  from the domain's passwd (priv_drop) and writes the
 *		  mailbox (deliver_local) itself.  For an mbox it takes
 *		  the dotlock in the root-owned spool directory and forks
 *		  a grandchild that drops to U and writes the mailbox.  The
 *		  result comes back as a line of status ok/temp/perm and a
 *		  reason, which the deliverer checks (strict decoding,
 *		  control bytes replaced), bounded by a timeout, and relays.
 *
 *	The master supervises the deliverer; SIGTERM to it is passed on
 *	to the runner, which finishes the deliveries in flight and exits;
 *	the deliverer exits when the runner's socket closes and its
 *	children are done.
 *
 * SECURITY
 *	The deliverer trusts nothing from the runner: a request that does
 *	not decode exactly, or comes without a descriptor, closes the
 *	connection (fail closed) and ends the runner.  It never opens a
 *	path the runner names; the only paths are the user's home from
 *	the domain's passwd and /var/spool/mail/USER with a validated
 *	name.  A user that is not in passwd, or has uid or gid 0, gets a
 *	temporary failure.  The runner trusts the deliverer (more
 *	privileged): anything malformed from it is fatal.
 *
 * DELIVERY POLICY
 *	Local recipients (smtpd_domain_is_local) are expanded through
 *	etc/aliases (loop-safe, common/aliases.c).  A local name must be
 *	a passwd user; uid 0 (root) is never delivered to: such mail is
 *	deferred until root is aliased to a real user, and expires with
 *	the queue lifetime.  An unaliased postmaster that is no user is a
 *	permanent failure (logged).  |command, /file and :include:
 *	targets are permanent failures ("not supported").  Remote
 *	recipients and alias targets go to mta.c (remote delivery);
 *	failures get a DSN (bounce.c); the control socket is described
 *	in smtpd.h and docs/queue.md.
 *
 *	Exactly once: each recipient result is written to the envelope
 *	before the next decision; the deliveries themselves are
 *	idempotent (deliver_local.c), and every delivery after a restart
 *	or a retry asks the deliverer to look for an earlier copy first.
 *	XXX: a list recipient with a failed member is retried as a whole;
 *	the members that already have it are found as copies, unless the
 *	user has meanwhile deleted the message.
 */

#include <sys/types.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "buf.h"
#include "compat.h"
#include "event.h"
#include "fdpass.h"
#include "fileio.h"
#include "log.h"
#include "passwd.h"
#include "privdrop.h"
#include "queue.h"
#include "smtpd.h"
#include "xmalloc.h"

#define RUNNER_PARALLEL		8	/* deliveries in flight */
#define RUNNER_ACTIVE_MAX	32	/* messages being worked on */
#define RUNNER_RESCAN		60	/* s between full rescans */
#define RUNNER_HASH		4096
#define DELIVERER_CHILDREN_MAX	16
#define DELIVERER_TIMEOUT	600	/* s for one delivery */

enum rmsg_where {
	RM_READY,
	RM_WAIT,
	RM_ACTIVE,
};

struct rmsg;

struct rtask {
	struct rmsg	*m;
	size_t		 rcpt;
	char		 user[PASSWD_NAME_MAX + 1];
	char		 addr[DELIVER_ADDR_MAX];	/* Delivered-To */
};

struct rrcpt {
	size_t		 outstanding;
	int		 ok, temp, perm, remote, decided;
	char		 reason[DELIVER_REASON_MAX];
	/* For the DSN: owed once the recipient failed for good. */
	int		 bounce, diag_smtp;
	char		 dsn[16];
	char		 rmta[DNS_NAME_MAX];
};

/* A remote recipient (or remote alias target) of this pass. */
struct rremote {
	size_t		 rcpt;
	char		*addr;
};

struct rctl;

enum runner_admin {
	RUNNER_ADMIN_NONE,
	RUNNER_ADMIN_DELETE,
	RUNNER_ADMIN_BOUNCE,
};

struct rmsg {
	TAILQ_ENTRY(rmsg)	 entry;
	struct rmsg		*hnext;
	char			 id[QUEUE_ID_LEN + 1];
	enum rmsg_where		 where;
	time_t			 next_try;
	int			 recovered;
	unsigned char		*tried;		/* per recipient */
	unsigned char		*remote_logged;
	size_t			 nflags;
	/* The pass in progress (RM_ACTIVE). */
	struct queue_env	 env;
	int			 loaded;
	struct rtask		*tasks;
	size_t			 ntasks, next, inflight;
	struct rrcpt		*rs;
	struct rremote		*remote;
	size_t			 nremote, rjobs;	/* jobs in mta.c */
	/* Across passes. */
	int			 warned;	/* delay warning sent */
	int			 flush;		/* ignore next_attempt once */
	enum runner_admin	 admin;		/* from the control socket */
	struct rctl		*ctl;		/* waits for the answer */
};

TAILQ_HEAD(rmsg_list, rmsg);

struct runner {
	struct smtpd_domain	*sd;
	const struct smtpd_conf	*conf;
	struct ev_loop		*loop;
	int			 dfd;		/* to the deliverer */
	int			 ifd;		/* inotify */
	int			 drop_wd;	/* pickup.c's watch; -1: none */
	struct rmsg_list	 ready, wait, active;
	size_t			 nactive;
	struct rmsg		*hash[RUNNER_HASH];
	struct rtask		*slots[RUNNER_PARALLEL];
	uint32_t		 slot_reqid[RUNNER_PARALLEL];
	size_t			 inflight;
	uint32_t		 reqid;
	int			 stopping;
	struct ev_timer		 tick;
	unsigned int		 ticks;
	/* The domain's files, reloaded when they change. */
	struct passwd_file	 pw;
	struct aliases		 al;
	struct timespec		 pw_mtime, al_mtime;
	int			 pw_loaded, al_loaded;
	unsigned int		 retry_min, retry_max, lifetime;
};

static struct runner	 R;

/* ------------------------------------------------------------------ */
/* The deliverer: root, chrooted. */

struct dchild {
	LIST_ENTRY(dchild)	 entry;
	pid_t			 pid;
	int			 fd;		/* result pipe */
	uint32_t		 reqid;
	struct buf		 in;
	struct ev_timer		 timer;		/* DELIVERER_TIMEOUT */
	int			 timed_out;
};

LIST_HEAD(dchild_list, dchild);

static struct {
	struct ev_loop		*loop;
	struct smtpd_domain	*sd;
	int			 rfd;		/* to the runner; -1 when gone */
	pid_t			 runner_pid;
	struct dchild_list	 children;
	size_t			 nchildren;
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

static void
deliverer_reply(uint32_t reqid, enum deliver_status st, const char *reason)
{
	struct deliver_res	 res;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len;

	memset(&res, 0, sizeof(res));
	res.reqid = reqid;
	res.status = st;
	(void)strlcpy(res.reason, reason, sizeof(res.reason));
	if (D.rfd == -1)
		return;
	if (deliver_res_encode(&res, msg, sizeof(msg), &len) == -1 ||
	    fdpass_send(D.rfd, -1, msg, len) == -1)
		log_warn("runner: reply");
}

static void
deliverer_maybe_exit(void)
{
	int	 status;

	if (D.rfd != -1 || D.nchildren > 0)
		return;
	if (D.runner_pid > 0) {
		while (waitpid(D.runner_pid, &status, 0) == -1 &&
		    errno == EINTR)
			;
	}
	log_debug("deliverer: done");
	exit(0);
}

static void
deliverer_drop_runner(const char *why)
{
	if (D.rfd == -1)
		return;
	if (why != NULL) {
		log_warnx("deliverer: %s; closing the runner's connection",
		    why);
		if (D.runner_pid > 0)
			(void)kill(D.runner_pid, SIGTERM);
	}
	(void)ev_del(D.loop, D.rfd);
	(void)close(D.rfd);
	D.rfd = -1;
	deliverer_maybe_exit();
}

static void
deliverer_on_child(int fd, int events, void *arg)
{
	struct dchild		*c = arg;
	struct deliver_res	 res;
	const char		*err;
	char			 chunk[DELIVER_MSG_MAX];
	size_t			 len;
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
	/* A Maildir child answers as the user: nothing is trusted. */
	deliverer_clean(res.mailbox);
	deliverer_clean(res.reason);
	res.reqid = c->reqid;
	if (D.rfd != -1 && (deliver_res_encode(&res, chunk, sizeof(chunk),
	    &len) == -1 || fdpass_send(D.rfd, -1, chunk, len) == -1))
		log_warn("deliverer: reply to runner");
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
	sigset_t		 none;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX + 1];
	ssize_t			 n;
	pid_t			 pid;
	int			 msgfd = -1, p[2], a, b;

	(void)events;
	(void)arg;
	n = fdpass_recv(fd, &msgfd, msg, sizeof(msg));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		deliverer_drop_runner(n == 0 ? NULL : "receive failed");
		return;
	}
	if (msgfd == -1 || deliver_req_decode(msg, (size_t)n, &req,
	    &err) == -1) {
		if (msgfd != -1)
			(void)close(msgfd);
		deliverer_drop_runner(msgfd == -1 ? "request without message"
		    : err);
		return;
	}
	if (priv_lookup_user("/", req.user, &u, &err) == -1) {
		log_warnx("deliverer: refusing user %s: %s", req.user, err);
		(void)close(msgfd);
		deliverer_reply(req.reqid, DELIVER_TEMPFAIL,
		    "recipient not valid for delivery");
		return;
	}
	if (D.nchildren >= DELIVERER_CHILDREN_MAX) {
		(void)close(msgfd);
		deliverer_reply(req.reqid, DELIVER_TEMPFAIL, "deliverer busy");
		return;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		(void)close(msgfd);
		deliverer_reply(req.reqid, DELIVER_TEMPFAIL, "pipe failed");
		return;
	}
	if ((pid = fork()) == -1) {
		(void)close(msgfd);
		(void)close(p[0]);
		(void)close(p[1]);
		deliverer_reply(req.reqid, DELIVER_TEMPFAIL, "fork failed");
		return;
	}
	if (pid == 0) {
		/* Keep only the message (3) and the result pipe (4). */
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)signal(SIGTERM, SIG_DFL);
		(void)signal(SIGINT, SIG_DFL);
		(void)signal(SIGCHLD, SIG_DFL);
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
		return;
	}
	/* SIGTERM/SIGINT: the runner finishes its deliveries first. */
	if (D.runner_pid > 0)
		(void)kill(D.runner_pid, SIGTERM);
}

static void __attribute__((noreturn))
deliverer_main(struct smtpd_domain *sd, int rfd, pid_t runner_pid)
{
	memset(&D, 0, sizeof(D));
	D.sd = sd;
	D.rfd = rfd;
	D.runner_pid = runner_pid;
	LIST_INIT(&D.children);
	log_set_procname("smtpd-deliverer");
	if ((D.loop = ev_loop_new()) == NULL)
		fatal("deliverer: event loop");
	if (ev_signal(D.loop, SIGCHLD, deliverer_on_signal, NULL) == -1 ||
	    ev_signal(D.loop, SIGTERM, deliverer_on_signal, NULL) == -1 ||
	    ev_signal(D.loop, SIGINT, deliverer_on_signal, NULL) == -1 ||
	    ev_add(D.loop, rfd, EV_READ, deliverer_on_request, NULL) == -1)
		fatal("deliverer: event setup");
	(void)ev_loop_run(D.loop);
	fatalx("deliverer: event loop ended");
}

/* ------------------------------------------------------------------ */
/* The runner: run_as, chrooted. */

static void	runner_kick(void);
static void	runner_pass_finish(struct rmsg *m);
static void	runner_remote_clear(struct rmsg *m);
static void	runner_add_remote(struct rmsg *m, size_t i, const char *addr);
static void	runner_remote_start(struct rmsg *m);
static void	runner_bounce_owed(struct rmsg *m);
static void	runner_delay_warning(struct rmsg *m);
static void	runner_admin_delete(struct rmsg *m);
static void	runner_admin_bounce(struct rmsg *m);
static void	runner_ctl_answer(struct rctl *c, const char *error);
static void	runner_ctl_init(void);

static unsigned int
runner_hash(const char *id)
{
	unsigned int	 h = 0;

	for (; *id != '\0'; id++)
		h = h * 31 + (unsigned char)*id;
	return h % RUNNER_HASH;
}

static struct rmsg *
runner_find(const char *id)
{
	struct rmsg	*m;

	for (m = R.hash[runner_hash(id)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static void
runner_move(struct rmsg *m, enum rmsg_where to)
{
	struct rmsg_list *from;

	from = m->where == RM_READY ? &R.ready : m->where == RM_WAIT ?
	    &R.wait : &R.active;
	TAILQ_REMOVE(from, m, entry);
	if (m->where == RM_ACTIVE)
		R.nactive--;
	m->where = to;
	if (to == RM_READY)
		TAILQ_INSERT_TAIL(&R.ready, m, entry);
	else if (to == RM_WAIT)
		TAILQ_INSERT_TAIL(&R.wait, m, entry);
	else {
		TAILQ_INSERT_TAIL(&R.active, m, entry);
		R.nactive++;
	}
}

/* A message we have not seen: ready at once. */
static void
runner_note(const char *id, int recovered)
{
	struct rmsg	*m;
	unsigned int	 h;

	if (!queue_id_valid(id) || runner_find(id) != NULL)
		return;
	m = xcalloc(1, sizeof(*m));
	(void)strlcpy(m->id, id, sizeof(m->id));
	m->recovered = recovered;
	m->where = RM_READY;
	TAILQ_INSERT_TAIL(&R.ready, m, entry);
	h = runner_hash(id);
	m->hnext = R.hash[h];
	R.hash[h] = m;
}

static void
runner_pass_clear(struct rmsg *m)
{
	if (m->loaded)
		queue_env_free(&m->env);
	m->loaded = 0;
	free(m->tasks);
	free(m->rs);
	m->tasks = NULL;
	m->rs = NULL;
	m->ntasks = m->next = m->inflight = 0;
	runner_remote_clear(m);
}

static void
runner_forget(struct rmsg *m)
{
	struct rmsg	**pp;

	runner_pass_clear(m);
	if (m->ctl != NULL)
		runner_ctl_answer(m->ctl, NULL);	/* it is gone */
	for (pp = &R.hash[runner_hash(m->id)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == m) {
			*pp = m->hnext;
			break;
		}
	}
	if (m->where == RM_ACTIVE)
		R.nactive--;
	TAILQ_REMOVE(m->where == RM_READY ? &R.ready : m->where == RM_WAIT ?
	    &R.wait : &R.active, m, entry);
	free(m->tried);
	free(m->remote_logged);
	free(m);
}

static void
runner_rescan(int recovered)
{
	char		**ids;
	const char	*err;
	size_t		 n, i;

	if (queue_list(QUEUE_DIR, 0, &ids, &n, &err) == -1) {
		log_warnx("queue scan: %s", err);
		return;
	}
	for (i = 0; i < n; i++)
		runner_note(ids[i], recovered);
	queue_list_free(ids, n);
	pickup_scan(R.sd);
}

/* Reload etc/passwd and etc/aliases when they changed. */
static void
runner_load_files(void)
{
	struct stat	 st;
	struct diag	 d;
	const char	*err;

	memset(&d, 0, sizeof(d));
	if (stat("/etc/passwd", &st) == 0 && (!R.pw_loaded ||
	    st.st_mtim.tv_sec != R.pw_mtime.tv_sec ||
	    st.st_mtim.tv_nsec != R.pw_mtime.tv_nsec)) {
		struct passwd_file	 pf;

		memset(&pf, 0, sizeof(pf));
		if (passwd_load(&pf, "/etc/passwd", &d, &err) == -1)
			log_warnx("/etc/passwd: %s", err);
		else {
			if (R.pw_loaded)
				passwd_free(&R.pw);
			R.pw = pf;
			R.pw_loaded = 1;
			R.pw_mtime = st.st_mtim;
		}
	}
	if (stat("/etc/aliases", &st) == -1) {
		if (R.al_loaded)
			aliases_free(&R.al);
		R.al_loaded = 0;
		return;
	}
	if (!R.al_loaded || st.st_mtim.tv_sec != R.al_mtime.tv_sec ||
	    st.st_mtim.tv_nsec != R.al_mtime.tv_nsec) {
		struct aliases	 a;

		memset(&a, 0, sizeof(a));
		if (aliases_load(&a, "/etc/aliases", &d, &err) == -1)
			log_warnx("/etc/aliases: %s", err);
		else {
			if (R.al_loaded)
				aliases_free(&R.al);
			R.al = a;
			R.al_loaded = 1;
			R.al_mtime = st.st_mtim;
		}
	}
}

static long long
runner_delay(const struct rmsg *m)
{
	time_t	 now = time(NULL);

	return now > m->env.created ? (long long)(now - m->env.created) : 0;
}

/* The one log line per delivery. */
static void
runner_log(struct rmsg *m, size_t i, const char *to, const char *mailbox,
    const char *status, const char *reason)
{
	char	 cto[DELIVER_ADDR_MAX * 4], corig[DELIVER_ADDR_MAX * 4];
	char	 creason[DELIVER_REASON_MAX * 4];
	const char *orig = m->env.rcpts[i].addr;

	(void)log_clean(cto, sizeof(cto), to, strlen(to));
	(void)log_clean(corig, sizeof(corig), orig, strlen(orig));
	(void)log_clean(creason, sizeof(creason), reason != NULL ? reason :
	    "", reason != NULL ? strlen(reason) : 0);
	log_info("%s delivery to=<%s>%s%s%s mailbox=%s status=%s delay=%llds"
	    "%s%s%s", m->id, cto, strcmp(to, orig) != 0 ? " orig_to=<" : "",
	    strcmp(to, orig) != 0 ? corig : "",
	    strcmp(to, orig) != 0 ? ">" : "",
	    mailbox != NULL && *mailbox != '\0' ? mailbox : "none", status,
	    runner_delay(m), reason != NULL ? " reason=\"" : "",
	    reason != NULL ? creason : "", reason != NULL ? "\"" : "");
}

static void
runner_note_result(struct rrcpt *rs, enum deliver_status st,
    const char *reason)
{
	if (st == DELIVER_OK)
		rs->ok++;
	else if (st == DELIVER_TEMPFAIL)
		rs->temp++;
	else
		rs->perm++;
	if (st != DELIVER_OK && reason != NULL)
		(void)strlcpy(rs->reason, reason, sizeof(rs->reason));
}

static size_t
runner_pending(const struct queue_env *e)
{
	size_t	 i, n = 0;

	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == QUEUE_RCPT_PENDING)
			n++;
	return n;
}

/* All results for recipient i are in: record its new state. */
static void
runner_decide(struct rmsg *m, size_t i)
{
	struct rrcpt		*rs = &m->rs[i];
	struct queue_rcpt	*r = &m->env.rcpts[i];
	const char		*err;
	enum queue_rcpt_state	 st;

	if (rs->decided || rs->outstanding > 0)
		return;
	rs->decided = 1;
	if (rs->temp > 0 || rs->remote > 0) {
		if (rs->temp == 0 || (time_t)(m->env.created + R.lifetime) >
		    time(NULL))
			return;		/* stays pending */
		runner_log(m, i, r->addr, NULL, "bounced",
		    "queue lifetime expired");
		(void)strlcpy(rs->dsn, "4.4.7", sizeof(rs->dsn));
		st = QUEUE_RCPT_FAILED;
	} else if (rs->perm > 0)
		st = QUEUE_RCPT_FAILED;
	else
		st = QUEUE_RCPT_DONE;
	/* A failure stays pending until its DSN is queued (pass end). */
	if (st == QUEUE_RCPT_FAILED)
		rs->bounce = 1;
	else
		r->state = st;
	free(r->diag);
	r->diag = rs->reason[0] != '\0' ? xstrdup(rs->reason) : NULL;
	/* The last one: removing the message says it all. */
	if (runner_pending(&m->env) == 0)
		return;
	if (queue_env_update(QUEUE_DIR, &m->env, &err) == -1)
		log_warnx("%s: envelope update: %s", m->id, err);
}

struct runner_exp {
	const struct runner_exp	*parent;	/* the alias that led here */
	const char		*name;
	struct rmsg		*m;
	size_t			 i;
	const char		*domain;	/* of the recipient */
	int			 depth;
	struct alias_target	*t;
	size_t			 nt;
};

static void
runner_exp_collect(void *ctx, const struct alias_target *t)
{
	struct runner_exp	*x = ctx;

	x->t = xreallocarray(x->t, x->nt + 1, sizeof(*x->t));
	x->t[x->nt].type = t->type;
	x->t[x->nt].value = xstrdup(t->value);
	x->nt++;
}

static void
runner_add_task(struct rmsg *m, size_t i, const struct passwd_entry *pw,
    const char *domain)
{
	struct rtask	*t;
	size_t		 k;
	int		 n;

	for (k = 0; k < m->ntasks; k++)
		if (m->tasks[k].rcpt == i &&
		    strcmp(m->tasks[k].user, pw->name) == 0)
			return;		/* once per user and recipient */
	m->tasks = xreallocarray(m->tasks, m->ntasks + 1, sizeof(*m->tasks));
	t = &m->tasks[m->ntasks];
	memset(t, 0, sizeof(*t));
	t->m = m;
	t->rcpt = i;
	n = snprintf(t->addr, sizeof(t->addr), "%s@%s", pw->name, domain);
	if (strlcpy(t->user, pw->name, sizeof(t->user)) >= sizeof(t->user) ||
	    n < 0 || (size_t)n >= sizeof(t->addr)) {
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
		    "address too long");
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL,
		    "address too long");
		return;
	}
	m->ntasks++;
	m->rs[i].outstanding++;
}

static const struct passwd_entry *
runner_user(const char *name)
{
	const struct passwd_entry	*pw;
	char				 low[PASSWD_NAME_MAX + 1];
	size_t				 k;

	if (!R.pw_loaded || !passwd_name_valid(name))
		return NULL;
	if ((pw = passwd_find(&R.pw, name)) != NULL)
		return pw;
	/* Local parts are matched case-insensitively. */
	for (k = 0; name[k] != '\0' && k < PASSWD_NAME_MAX; k++)
		low[k] = (char)tolower((unsigned char)name[k]);
	low[k] = '\0';
	return passwd_find(&R.pw, low);
}

static void	runner_expand(struct rmsg *m, size_t i, const char *local,
		    const char *domain, const struct runner_exp *parent);

static void
runner_target(struct runner_exp *x, const struct alias_target *t)
{
	struct rmsg			*m = x->m;
	size_t				 i = x->i;
	const struct passwd_entry	*pw;
	const struct runner_exp		*p;
	const char			*at, *reason;
	char				 local[PASSWD_NAME_MAX + 2];
	char				 dom[DELIVER_ADDR_MAX];
	size_t				 k;

	switch (t->type) {
	case ALIAS_LOCAL:
		if ((pw = runner_user(t->value)) == NULL) {
			reason = strcasecmp(t->value, "postmaster") == 0 ?
			    "postmaster is neither an alias nor a user" :
			    "no such user";
			runner_log(m, i, m->env.rcpts[i].addr, NULL,
			    "bounced", reason);
			runner_note_result(&m->rs[i], DELIVER_PERMFAIL, reason);
		} else if (pw->uid == 0 || pw->gid == 0) {
			reason = "no delivery as uid 0; alias root to a user";
			if (!m->remote_logged[i])
				runner_log(m, i, m->env.rcpts[i].addr, NULL,
				    "deferred", reason);
			m->remote_logged[i] = 1;
			runner_note_result(&m->rs[i], DELIVER_TEMPFAIL, reason);
		} else
			runner_add_task(m, i, pw, x->domain);
		return;
	case ALIAS_ADDRESS:
		if ((at = strrchr(t->value, '@')) == NULL)
			break;
		if (strlcpy(dom, at + 1, sizeof(dom)) >= sizeof(dom))
			break;
		for (k = 0; dom[k] != '\0'; k++)
			dom[k] = (char)tolower((unsigned char)dom[k]);
		if (smtpd_domain_is_local(R.sd, dom)) {
			if ((size_t)(at - t->value) >= sizeof(local) ||
			    at == t->value)
				break;
			memcpy(local, t->value, (size_t)(at - t->value));
			local[at - t->value] = '\0';
			for (p = x; p != NULL; p = p->parent)
				if (strcasecmp(p->name, local) == 0)
					break;
			if (p != NULL || x->depth >= ALIASES_DEPTH_MAX) {
				reason = "alias loop";
				runner_log(m, i, m->env.rcpts[i].addr, NULL,
				    "bounced", reason);
				runner_note_result(&m->rs[i],
				    DELIVER_PERMFAIL, reason);
				return;
			}
			runner_expand(m, i, local, dom, x);
			return;
		}
		runner_add_remote(m, i, t->value);
		return;
	case ALIAS_COMMAND:
	case ALIAS_FILE:
	case ALIAS_INCLUDE:
		reason = t->type == ALIAS_COMMAND ?
		    "delivery to a command not supported" :
		    t->type == ALIAS_FILE ? "delivery to a file not supported" :
		    ":include: not supported";
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
		    reason);
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL, reason);
		return;
	}
	runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
	    "bad alias target");
	runner_note_result(&m->rs[i], DELIVER_PERMFAIL, "bad alias target");
}

static void
runner_expand(struct rmsg *m, size_t i, const char *local,
    const char *domain, const struct runner_exp *parent)
{
	struct runner_exp	 x;
	struct aliases		 empty;
	const char		*err;
	size_t			 k;

	memset(&x, 0, sizeof(x));
	memset(&empty, 0, sizeof(empty));
	x.m = m;
	x.i = i;
	x.domain = domain;
	x.parent = parent;
	x.name = local;
	x.depth = parent != NULL ? parent->depth + 1 : 0;
	if (aliases_expand(R.al_loaded ? &R.al : &empty, local,
	    runner_exp_collect, &x, &err) == -1) {
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced", err);
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL, err);
	}
	for (k = 0; k < x.nt; k++) {
		runner_target(&x, &x.t[k]);
		free(x.t[k].value);
	}
	free(x.t);
}

static void
runner_schedule(struct rmsg *m, time_t when)
{
	m->next_try = when;
	runner_move(m, RM_WAIT);
}

static void
runner_pass_start(struct rmsg *m)
{
	const char	*err, *at;
	char		 path[PATH_MAX], dom[DELIVER_ADDR_MAX], local[128];
	size_t		 i, k;

	runner_move(m, RM_ACTIVE);
	if (queue_env_load(QUEUE_DIR, m->id, &m->env, &err) == -1) {
		(void)snprintf(path, sizeof(path), "%s/env/%s", QUEUE_DIR,
		    m->id);
		if (access(path, F_OK) == -1 && errno == ENOENT) {
			runner_forget(m);	/* finished or held */
			return;
		}
		log_warnx("%s: envelope: %s", m->id, err);
		runner_schedule(m, time(NULL) + R.retry_max);
		return;
	}
	m->loaded = 1;
	if (m->env.hold_reason != NULL) {
		runner_forget(m);
		return;
	}
	if (m->admin == RUNNER_ADMIN_DELETE) {
		runner_admin_delete(m);
		return;
	}
	if (m->env.next_attempt > time(NULL) && !m->flush &&
	    m->admin == RUNNER_ADMIN_NONE) {
		runner_pass_clear(m);
		runner_schedule(m, m->env.next_attempt);
		return;
	}
	m->flush = 0;
	if (m->nflags != m->env.nrcpts) {
		free(m->tried);
		free(m->remote_logged);
		m->tried = xcalloc(m->env.nrcpts + 1, 1);
		m->remote_logged = xcalloc(m->env.nrcpts + 1, 1);
		m->nflags = m->env.nrcpts;
	}
	m->rs = xcalloc(m->env.nrcpts + 1, sizeof(*m->rs));
	if (m->admin == RUNNER_ADMIN_BOUNCE) {
		runner_admin_bounce(m);
		return;
	}
	runner_load_files();
	for (i = 0; i < m->env.nrcpts; i++) {
		if (m->env.rcpts[i].state != QUEUE_RCPT_PENDING) {
			m->rs[i].decided = 1;
			continue;
		}
		at = strrchr(m->env.rcpts[i].addr, '@');
		if (at == NULL || at == m->env.rcpts[i].addr ||
		    (size_t)(at - m->env.rcpts[i].addr) >= sizeof(local) ||
		    strlcpy(dom, at + 1, sizeof(dom)) >= sizeof(dom)) {
			runner_log(m, i, m->env.rcpts[i].addr, NULL,
			    "bounced", "bad recipient address");
			runner_note_result(&m->rs[i], DELIVER_PERMFAIL,
			    "bad recipient address");
			continue;
		}
		memcpy(local, m->env.rcpts[i].addr,
		    (size_t)(at - m->env.rcpts[i].addr));
		local[at - m->env.rcpts[i].addr] = '\0';
		for (k = 0; dom[k] != '\0'; k++)
			dom[k] = (char)tolower((unsigned char)dom[k]);
		if (!smtpd_domain_is_local(R.sd, dom)) {
			runner_add_remote(m, i, m->env.rcpts[i].addr);
			continue;
		}
		runner_expand(m, i, local, dom, NULL);
	}
	runner_remote_start(m);
	for (i = 0; i < m->env.nrcpts; i++)
		runner_decide(m, i);
	if (m->ntasks == 0 && m->rjobs == 0)
		runner_pass_finish(m);
}

static unsigned int
runner_backoff(unsigned int attempts)
{
	unsigned long long	 d = R.retry_min;

	while (attempts-- > 0 && d < R.retry_max)
		d *= 2;
	return d > R.retry_max ? R.retry_max : (unsigned int)d;
}

static void
runner_pass_finish(struct rmsg *m)
{
	const char	*err;
	size_t		 i;
	int		 temp = 0;

	runner_bounce_owed(m);
	if (runner_pending(&m->env) == 0) {
		if (queue_remove(QUEUE_DIR, m->id, &err) == -1) {
			log_warnx("%s: remove: %s", m->id, err);
			runner_pass_clear(m);
			runner_schedule(m, time(NULL) + R.retry_max);
			return;
		}
		log_info("%s removed", m->id);
		runner_forget(m);
		return;
	}
	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == QUEUE_RCPT_PENDING &&
		    m->rs[i].temp > 0)
			temp = 1;
	if (temp) {
		m->env.next_attempt = time(NULL) +
		    runner_backoff(m->env.attempts);
		m->env.attempts++;
		if (queue_env_update(QUEUE_DIR, &m->env, &err) == -1)
			log_warnx("%s: envelope update: %s", m->id, err);
		m->next_try = m->env.next_attempt;
		runner_delay_warning(m);
	} else
		m->next_try = time(NULL) + R.retry_max;
	runner_pass_clear(m);
	runner_schedule(m, m->next_try);
	if (m->admin != RUNNER_ADMIN_NONE || m->flush)
		runner_move(m, RM_READY);
}

static void
runner_task_done(struct rtask *t, const struct deliver_res *res)
{
	struct rmsg	*m = t->m;
	const char	*status;

	status = res->status == DELIVER_OK ? "sent" :
	    res->status == DELIVER_TEMPFAIL ? "deferred" : "bounced";
	runner_log(m, t->rcpt, t->addr, res->mailbox, status,
	    res->status == DELIVER_OK && res->reason[0] == '\0' ? NULL :
	    res->reason);
	runner_note_result(&m->rs[t->rcpt], res->status, res->reason);
	m->rs[t->rcpt].outstanding--;
	m->inflight--;
	runner_decide(m, t->rcpt);
	if (m->inflight == 0 && m->next == m->ntasks && m->rjobs == 0)
		runner_pass_finish(m);
}

static void
runner_task_start(struct rtask *t)
{
	struct rmsg		*m = t->m;
	struct deliver_req	 req;
	struct deliver_res	 res;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len, s;
	int			 fd;

	memset(&req, 0, sizeof(req));
	req.reqid = ++R.reqid;
	req.mbox = R.sd->mailbox_mbox;
	req.recovered = m->recovered || m->tried[t->rcpt];
	(void)strlcpy(req.queue_id, m->id, sizeof(req.queue_id));
	req.rcpt_index = (unsigned int)t->rcpt;
	req.created = (long long)m->env.created;
	(void)strlcpy(req.user, t->user, sizeof(req.user));
	(void)strlcpy(req.rcpt, t->addr, sizeof(req.rcpt));
	m->tried[t->rcpt] = 1;
	m->inflight++;
	memset(&res, 0, sizeof(res));
	res.status = DELIVER_TEMPFAIL;
	if (strlcpy(req.sender, m->env.sender, sizeof(req.sender)) >=
	    sizeof(req.sender) ||
	    deliver_req_encode(&req, msg, sizeof(msg), &len) == -1) {
		res.status = DELIVER_PERMFAIL;
		(void)strlcpy(res.reason, "address not deliverable",
		    sizeof(res.reason));
		runner_task_done(t, &res);
		return;
	}
	if ((fd = queue_msg_open(QUEUE_DIR, m->id)) == -1) {
		(void)snprintf(res.reason, sizeof(res.reason),
		    "message file: %s", strerror(errno));
		runner_task_done(t, &res);
		return;
	}
	if (fdpass_send(R.dfd, fd, msg, len) == -1)
		fatal("runner: send to deliverer");
	(void)close(fd);
	for (s = 0; s < RUNNER_PARALLEL; s++)
		if (R.slots[s] == NULL)
			break;
	ASSERT(s < RUNNER_PARALLEL);
	R.slots[s] = t;
	R.slot_reqid[s] = req.reqid;
	R.inflight++;
}

static void
runner_kick(void)
{
	struct rmsg	*m;
	int		 progress = 1;

	while (!R.stopping && progress) {
		progress = 0;
		TAILQ_FOREACH(m, &R.active, entry) {
			if (R.inflight >= RUNNER_PARALLEL)
				return;
			if (m->next < m->ntasks) {
				runner_task_start(&m->tasks[m->next++]);
				progress = 1;
				break;	/* the list may have changed */
			}
		}
		if (progress || R.inflight >= RUNNER_PARALLEL)
			continue;
		if ((m = TAILQ_FIRST(&R.ready)) != NULL &&
		    R.nactive < RUNNER_ACTIVE_MAX) {
			runner_pass_start(m);
			progress = 1;
		}
	}
}

static void
runner_maybe_exit(void)
{
	if (R.stopping && R.inflight == 0) {
		log_debug("runner: done");
		exit(0);
	}
}

static void
runner_on_reply(int fd, int events, void *arg)
{
	struct deliver_res	 res;
	struct rtask		*t;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX + 1];
	ssize_t			 n;
	size_t			 s;
	int			 xfd = -1;

	(void)events;
	(void)arg;
	n = fdpass_recv(fd, &xfd, msg, sizeof(msg));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == -1)
		fatal("runner: receive from deliverer");
	if (n == 0)
		fatalx("runner: deliverer went away");
	if (xfd != -1)
		fatalx("runner: unexpected descriptor from deliverer");
	if (deliver_res_decode(msg, (size_t)n, &res, &err) == -1)
		fatalx("runner: deliverer: %s", err);
	for (s = 0; s < RUNNER_PARALLEL; s++)
		if (R.slots[s] != NULL && R.slot_reqid[s] == res.reqid)
			break;
	if (s == RUNNER_PARALLEL)
		fatalx("runner: deliverer answered unknown request %u",
		    res.reqid);
	t = R.slots[s];
	R.slots[s] = NULL;
	R.inflight--;
	runner_task_done(t, &res);
	runner_maybe_exit();
	runner_kick();
}

static void
runner_on_inotify(int fd, int events, void *arg)
{
	char				 ev[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event	*ie;
	ssize_t				 n;
	size_t				 off;
	int				 pickup = 0;

	(void)events;
	(void)arg;
	for (;;) {
		n = read(fd, ev, sizeof(ev));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (off = 0; off + sizeof(*ie) <= (size_t)n;
		    off += sizeof(*ie) + ie->len) {
			ie = (const struct inotify_event *)(ev + off);
			if (ie->mask & IN_Q_OVERFLOW)
				runner_rescan(0);
			else if (ie->wd == R.drop_wd)
				pickup = 1;
			else if (ie->len > 0)
				runner_note(ie->name, 0);
		}
	}
	if (pickup)
		pickup_scan(R.sd);
	runner_kick();
}

static void
runner_on_tick(void *arg)
{
	struct rmsg	*m, *next;
	time_t		 now = time(NULL);

	(void)arg;
	for (m = TAILQ_FIRST(&R.wait); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->next_try <= now)
			runner_move(m, RM_READY);
	}
	if (++R.ticks % RUNNER_RESCAN == 0)
		runner_rescan(0);
	runner_kick();
	ev_timer_set(R.loop, &R.tick, 1000, runner_on_tick, NULL);
}

static void
runner_on_signal(int signo, void *arg)
{
	(void)arg;
	(void)signo;
	R.stopping = 1;
	runner_maybe_exit();
}

/* ------------------------------------------------------------------ */
/* Remote delivery (mta.c), DSNs (bounce.c), the control socket. */

struct rjob {
	struct mta_job		 job;
	struct rmsg		*m;
	size_t			*idx;		/* recipient of each rcpt */
};

static void
runner_remote_clear(struct rmsg *m)
{
	size_t	 k;

	for (k = 0; k < m->nremote; k++)
		free(m->remote[k].addr);
	free(m->remote);
	m->remote = NULL;
	m->nremote = 0;
}

static void
runner_add_remote(struct rmsg *m, size_t i, const char *addr)
{
	m->remote = xreallocarray(m->remote, m->nremote + 1,
	    sizeof(*m->remote));
	m->remote[m->nremote].rcpt = i;
	m->remote[m->nremote].addr = xstrdup(addr);
	m->nremote++;
	m->rs[i].outstanding++;
}

/* The one log line per remote delivery attempt. */
static void
runner_log_remote(struct rmsg *m, size_t i, const char *to,
    const struct mta_job *job, const struct mta_rcpt *r)
{
	char		 cto[DELIVER_ADDR_MAX * 4], corig[DELIVER_ADDR_MAX * 4];
	char		 crelay[sizeof(job->relay) * 4];
	char		 creason[MTA_REPLY_MAX * 4];
	const char	*orig = m->env.rcpts[i].addr;
	int		 other = strcmp(to, orig) != 0;

	(void)log_clean(cto, sizeof(cto), to, strlen(to));
	(void)log_clean(corig, sizeof(corig), orig, strlen(orig));
	(void)log_clean(crelay, sizeof(crelay), job->relay,
	    strlen(job->relay));
	(void)log_clean(creason, sizeof(creason), r->reply, strlen(r->reply));
	log_info("%s delivery to=<%s>%s%s%s relay=%s status=%s delay=%llds "
	    "dsn=%s reason=\"%s\"", m->id, cto, other ? " orig_to=<" : "",
	    other ? corig : "", other ? ">" : "", crelay,
	    r->status == DELIVER_OK ? "sent" : r->status == DELIVER_TEMPFAIL ?
	    "deferred" : "bounced", runner_delay(m), r->dsn, creason);
}

static void
runner_job_done(struct mta_job *job, void *arg)
{
	struct rjob		*j = arg;
	struct rmsg		*m = j->m;
	struct mta_rcpt		*r;
	struct rrcpt		*rs;
	size_t			 k;

	for (k = 0; k < job->nrcpts; k++) {
		r = &job->rcpts[k];
		rs = &m->rs[j->idx[k]];
		runner_log_remote(m, j->idx[k], r->addr, job, r);
		runner_note_result(rs, (enum deliver_status)r->status,
		    r->reply);
		if (r->status != DELIVER_OK) {
			(void)strlcpy(rs->dsn, r->dsn, sizeof(rs->dsn));
			(void)strlcpy(rs->rmta, job->rmta, sizeof(rs->rmta));
			/* A reply of the peer, or our own words? */
			rs->diag_smtp = strlen(r->reply) >= 4 &&
			    r->reply[0] >= '2' && r->reply[0] <= '5' &&
			    r->reply[3] == ' ' && job->rmta[0] != '\0' &&
			    strchr(r->reply, ':') != r->reply + 3;
		}
		rs->outstanding--;
		runner_decide(m, j->idx[k]);
	}
	free(j->idx);
	free(job->rcpts);
	free(j);
	m->rjobs--;
	if (m->inflight == 0 && m->next == m->ntasks && m->rjobs == 0)
		runner_pass_finish(m);
	runner_kick();
}

/* One job per destination domain, at most MTA_RCPT_MAX rcpts each. */
static void
runner_remote_start(struct rmsg *m)
{
	struct rjob	*j;
	unsigned char	*taken;
	const char	*at;
	size_t		 k, l, n;

	if (m->nremote == 0)
		return;
	taken = xcalloc(m->nremote, 1);
	for (k = 0; k < m->nremote; k++) {
		if (taken[k])
			continue;
		j = xcalloc(1, sizeof(*j));
		j->m = m;
		j->job.rcpts = xcalloc(MTA_RCPT_MAX, sizeof(*j->job.rcpts));
		j->idx = xcalloc(MTA_RCPT_MAX, sizeof(*j->idx));
		at = strrchr(m->remote[k].addr, '@');
		(void)strlcpy(j->job.domain, at != NULL ? at + 1 : "",
		    sizeof(j->job.domain));
		for (n = 0; j->job.domain[n] != '\0'; n++)
			j->job.domain[n] = (char)tolower(
			    (unsigned char)j->job.domain[n]);
		for (l = k, n = 0; l < m->nremote && n < MTA_RCPT_MAX; l++) {
			at = strrchr(m->remote[l].addr, '@');
			if (taken[l] || at == NULL ||
			    strcasecmp(at + 1, j->job.domain) != 0)
				continue;
			taken[l] = 1;
			j->job.rcpts[n].addr = m->remote[l].addr;
			j->idx[n++] = m->remote[l].rcpt;
		}
		j->job.nrcpts = n;
		(void)strlcpy(j->job.id, m->id, sizeof(j->job.id));
		j->job.sender = m->env.sender;
		j->job.size = m->env.size;
		j->job.eightbit = (m->env.flags & QUEUE_F_8BITMIME) != 0;
		j->job.done = runner_job_done;
		j->job.arg = j;
		m->rjobs++;
		mta_submit(&j->job);
	}
	free(taken);
}

/* Queue a DSN for the recipients in list (failed or delayed). */
static int
runner_dsn(struct rmsg *m, const size_t *list, size_t n, int failed)
{
	struct bounce_info	 bi;
	struct bounce_rcpt	*br;
	struct rrcpt		*rs;
	const char		*err;
	char			 id[QUEUE_ID_LEN + 1], cto[DELIVER_ADDR_MAX * 4];
	size_t			 k;
	int			 fd, r;

	memset(&bi, 0, sizeof(bi));
	bi.queue_id = m->id;
	bi.reporting_mta = R.sd->hostname;
	bi.from_domain = R.sd->nlocal_domains > 0 ? R.sd->local_domains[0] :
	    R.sd->hostname;
	bi.to = m->env.sender;
	bi.arrival = m->env.created;
	bi.now = time(NULL);
	br = xcalloc(n, sizeof(*br));
	for (k = 0; k < n; k++) {
		rs = &m->rs[list[k]];
		br[k].addr = m->env.rcpts[list[k]].addr;
		br[k].orcpt = m->env.rcpts[list[k]].orcpt;
		br[k].failed = failed;
		if (rs->dsn[0] == '\0')
			(void)strlcpy(rs->dsn, !failed ? "4.0.0" :
			    strcmp(rs->reason, "no such user") == 0 ?
			    "5.1.1" : "5.0.0", sizeof(rs->dsn));
		br[k].status = rs->dsn;
		br[k].rmta = rs->rmta[0] != '\0' ? rs->rmta : NULL;
		br[k].diag = rs->reason[0] != '\0' ? rs->reason :
		    "unknown error";
		br[k].diag_smtp = rs->diag_smtp;
	}
	fd = queue_msg_open(QUEUE_DIR, m->id);
	r = bounce_inject(QUEUE_DIR, &bi, br, n, fd, id, &err);
	if (fd != -1)
		(void)close(fd);
	free(br);
	(void)log_clean(cto, sizeof(cto), m->env.sender,
	    strlen(m->env.sender));
	if (r == -1)
		log_warnx("%s dsn to=<%s> failed: %s", m->id, cto, err);
	else
		log_info("%s dsn %s to=<%s> id=%s nrcpt=%zu", m->id,
		    failed ? "bounce" : "delay", cto, id, n);
	return r;
}

/* Send the DSN owed for failed recipients, then mark them failed. */
static void
runner_bounce_owed(struct rmsg *m)
{
	const char	*err;
	size_t		*list, n = 0, i;

	list = xcalloc(m->env.nrcpts + 1, sizeof(*list));
	for (i = 0; i < m->env.nrcpts; i++)
		if (m->rs[i].bounce &&
		    m->env.rcpts[i].state == QUEUE_RCPT_PENDING)
			list[n++] = i;
	if (n == 0) {
		free(list);
		return;
	}
	/* Never a bounce to <> (RFC 5321 §4.5.5): log and drop. */
	if (m->env.sender[0] == '\0')
		log_info("%s dsn dropped: null sender nrcpt=%zu", m->id, n);
	else if (runner_dsn(m, list, n, 1) == -1) {
		/* Keep them pending: tried again, bounced again. */
		for (i = 0; i < n; i++) {
			m->rs[list[i]].bounce = 0;
			m->rs[list[i]].temp++;
		}
		free(list);
		return;
	}
	for (i = 0; i < n; i++)
		m->env.rcpts[list[i]].state = QUEUE_RCPT_FAILED;
	free(list);
	if (runner_pending(&m->env) > 0 &&
	    queue_env_update(QUEUE_DIR, &m->env, &err) == -1)
		log_warnx("%s: envelope update: %s", m->id, err);
}

/*
 * delay_warning: one "delayed" DSN once a message waits that long.
 * XXX: remembered in memory only, so a restarted runner warns again.
 */
static void
runner_delay_warning(struct rmsg *m)
{
	size_t	*list, n = 0, i;

	if (R.conf->delay_warning == 0 || m->warned ||
	    m->env.sender[0] == '\0' ||
	    time(NULL) - m->env.created < (time_t)R.conf->delay_warning)
		return;
	m->warned = 1;
	list = xcalloc(m->env.nrcpts + 1, sizeof(*list));
	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == QUEUE_RCPT_PENDING)
			list[n++] = i;
	if (n > 0)
		(void)runner_dsn(m, list, n, 0);
	free(list);
}

/*
 * The control socket (protocol in smtpd.h).  The runner owns the
 * queue: the admin's changes are made here, between deliveries, so
 * the files and the runner's memory always agree.
 */
struct rctl {
	int		 fd;
	struct buf	 in;
	struct ev_timer	 timer;
	struct rmsg	*m;
};

static int	 runner_ctl_fd = -1;

static void
runner_ctl_answer(struct rctl *c, const char *error)
{
	char	 line[RUNNER_CTL_LINE_MAX + 64];
	int	 n;

	if (c->m != NULL)
		c->m->ctl = NULL;
	n = error == NULL ? snprintf(line, sizeof(line), "%s\n",
	    RUNNER_CTL_OK) : snprintf(line, sizeof(line), "%s %s\n",
	    RUNNER_CTL_ERROR, error);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	ev_timer_cancel(R.loop, &c->timer);
	(void)ev_del(R.loop, c->fd);
	(void)close(c->fd);
	buf_free(&c->in);
	free(c);
}

static void
runner_admin_delete(struct rmsg *m)
{
	struct rctl	*c = m->ctl;
	const char	*err;

	if (queue_remove(QUEUE_DIR, m->id, &err) == -1) {
		log_warnx("%s: remove: %s", m->id, err);
		if (c != NULL)
			runner_ctl_answer(c, err);
		m->admin = RUNNER_ADMIN_NONE;
		runner_pass_clear(m);
		runner_schedule(m, time(NULL) + R.retry_min);
		return;
	}
	log_info("%s removed by administrator", m->id);
	runner_forget(m);	/* answers ok */
}

static void
runner_admin_bounce(struct rmsg *m)
{
	struct rctl	*c = m->ctl;
	size_t		 i;

	m->admin = RUNNER_ADMIN_NONE;
	m->ctl = NULL;
	if (c != NULL)
		c->m = NULL;
	for (i = 0; i < m->env.nrcpts; i++) {
		if (m->env.rcpts[i].state != QUEUE_RCPT_PENDING) {
			m->rs[i].decided = 1;
			continue;
		}
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
		    "bounced by administrator");
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL,
		    "bounced by administrator");
		(void)strlcpy(m->rs[i].dsn, "5.0.0", sizeof(m->rs[i].dsn));
		runner_decide(m, i);
	}
	runner_pass_finish(m);
	if (c != NULL)
		runner_ctl_answer(c, NULL);
}

static void
runner_ctl_command(struct rctl *c, char *line)
{
	struct rmsg	*m, *next;
	char		*arg;
	char		 path[PATH_MAX];

	if ((arg = strchr(line, ' ')) != NULL)
		*arg++ = '\0';
	if (strcmp(line, RUNNER_CTL_FLUSH) == 0 && arg == NULL) {
		for (m = TAILQ_FIRST(&R.wait); m != NULL; m = next) {
			next = TAILQ_NEXT(m, entry);
			m->flush = 1;
			runner_move(m, RM_READY);
		}
		TAILQ_FOREACH(m, &R.ready, entry)
			m->flush = 1;
		TAILQ_FOREACH(m, &R.active, entry)
			m->flush = 1;
		log_info("queue flush by administrator");
		runner_ctl_answer(c, NULL);
		runner_kick();
		return;
	}
	if ((strcmp(line, RUNNER_CTL_DELETE) != 0 &&
	    strcmp(line, RUNNER_CTL_BOUNCE) != 0) || arg == NULL) {
		runner_ctl_answer(c, "unknown command");
		return;
	}
	if (!queue_id_valid(arg)) {
		runner_ctl_answer(c, "bad queue id");
		return;
	}
	if ((m = runner_find(arg)) == NULL) {
		/* Committed, but inotify has not told us yet? */
		(void)snprintf(path, sizeof(path), "%s/env/%s", QUEUE_DIR, arg);
		if (access(path, F_OK) == 0)
			runner_note(arg, 0);
		m = runner_find(arg);
	}
	if (m == NULL) {
		runner_ctl_answer(c, "no such message");
		return;
	}
	if (m->ctl != NULL) {
		runner_ctl_answer(c, "another request for it is pending");
		return;
	}
	m->admin = strcmp(line, RUNNER_CTL_DELETE) == 0 ?
	    RUNNER_ADMIN_DELETE : RUNNER_ADMIN_BOUNCE;
	m->ctl = c;
	c->m = m;
	ev_timer_cancel(R.loop, &c->timer);
	(void)ev_del(R.loop, c->fd);
	/* Waiting ones now; an active one when its pass ends. */
	if (m->where == RM_WAIT)
		runner_move(m, RM_READY);
	if (m->where == RM_READY && R.nactive < RUNNER_ACTIVE_MAX) {
		runner_pass_start(m);
		return;
	}
	runner_kick();
}

static void
runner_ctl_on_timeout(void *arg)
{
	runner_ctl_answer(arg, "timeout");
}

static void
runner_ctl_on_read(int fd, int events, void *arg)
{
	struct rctl	*c = arg;
	char		 chunk[RUNNER_CTL_LINE_MAX + 1];
	char		*nl;
	ssize_t		 n;

	(void)events;
	n = read(fd, chunk, sizeof(chunk));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		runner_ctl_answer(c, "no request");
		return;
	}
	if (buf_append(&c->in, chunk, (size_t)n) == -1) {
		runner_ctl_answer(c, "request too long");
		return;
	}
	if ((nl = memchr(c->in.data, '\n', c->in.len)) == NULL)
		return;
	*nl = '\0';
	if (nl > c->in.data && nl[-1] == '\r')
		nl[-1] = '\0';
	runner_ctl_command(c, c->in.data);
}

static void
runner_ctl_on_accept(int fd, int events, void *arg)
{
	struct rctl	*c;
	int		 s;

	(void)events;
	(void)arg;
	if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	c = xcalloc(1, sizeof(*c));
	c->fd = s;
	buf_init(&c->in, RUNNER_CTL_LINE_MAX);
	if (ev_add(R.loop, s, EV_READ, runner_ctl_on_read, c) == -1) {
		(void)close(s);
		buf_free(&c->in);
		free(c);
		return;
	}
	ev_timer_set(R.loop, &c->timer, RUNNER_CTL_TIMEOUT * 1000,
	    runner_ctl_on_timeout, c);
}

static void
runner_ctl_init(void)
{
	struct sockaddr_un	 sun;
	mode_t			 old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, RUNNER_CTL_SOCKET, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		fatalx("runner: control socket path too long");
	if (unlink(RUNNER_CTL_SOCKET) == -1 && errno != ENOENT)
		fatal("runner: unlink %s", RUNNER_CTL_SOCKET);
	if ((runner_ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("runner: control socket");
	old = umask(0177);
	if (bind(runner_ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("runner: bind %s", RUNNER_CTL_SOCKET);
	(void)umask(old);
	if (chmod(RUNNER_CTL_SOCKET, 0600) == -1 ||
	    listen(runner_ctl_fd, 16) == -1 ||
	    ev_add(R.loop, runner_ctl_fd, EV_READ, runner_ctl_on_accept,
	    NULL) == -1)
		fatal("runner: control socket %s", RUNNER_CTL_SOCKET);
}

static void __attribute__((noreturn))
runner_run(struct smtpd_domain *sd, const struct smtpd_conf *conf, int dfd)
{
	const char	*err;

	memset(&R, 0, sizeof(R));
	R.sd = sd;
	R.conf = conf;
	R.dfd = dfd;
	TAILQ_INIT(&R.ready);
	TAILQ_INIT(&R.wait);
	TAILQ_INIT(&R.active);
	R.retry_min = conf->retry_min > 0 ? conf->retry_min : 60;
	R.retry_max = conf->retry_max >= R.retry_min ? conf->retry_max :
	    R.retry_min * 60;
	R.lifetime = conf->queue_lifetime > 0 ? conf->queue_lifetime :
	    5 * 24 * 3600;
	log_set_procname("smtpd-runner");

	if (queue_init(QUEUE_DIR, &err) == -1)
		fatalx("queue %s: %s", QUEUE_DIR, err);
	(void)queue_gc(QUEUE_DIR, 3600);
	if ((R.loop = ev_loop_new()) == NULL)
		fatal("runner: event loop");
	if ((R.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(R.ifd, QUEUE_DIR "/env",
	    IN_MOVED_TO | IN_CLOSE_WRITE) == -1)
		fatal("runner: inotify on %s/env", QUEUE_DIR);
	R.drop_wd = pickup_init(sd, R.ifd);	/* virtmail-sendmail */
	mta_init(R.loop, sd, conf);
	runner_ctl_init();
	if (ev_add(R.loop, R.ifd, EV_READ, runner_on_inotify, NULL) == -1 ||
	    ev_add(R.loop, dfd, EV_READ, runner_on_reply, NULL) == -1 ||
	    ev_signal(R.loop, SIGTERM, runner_on_signal, NULL) == -1 ||
	    ev_signal(R.loop, SIGINT, runner_on_signal, NULL) == -1)
		fatal("runner: event setup");
	(void)signal(SIGPIPE, SIG_IGN);

	/* Whatever is queued now may have been mid-delivery before. */
	runner_rescan(1);
	log_info("runner started queue=%s", QUEUE_DIR);
	ev_timer_set(R.loop, &R.tick, 1000, runner_on_tick, NULL);
	runner_kick();
	(void)ev_loop_run(R.loop);
	fatalx("runner: event loop ended");
}

void
runner_main(struct smtpd_domain *sd, const struct smtpd_conf *conf)
{
	struct priv_user	 u;
	const char		*err;
	pid_t			 pid;
	int			 sp[2];

	log_set_domain(sd->name);
	/* Before the chroot: the account from the domain's own passwd. */
	if (priv_lookup_user(sd->vd->dir, sd->run_as, &u, &err) == -1)
		fatalx("runner: run_as %s: %s", sd->run_as, err);
	if (priv_enter_root(sd->vd->dir, NULL, &err) == -1)
		fatalx("runner: %s", err);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1)
		fatal("runner: socketpair");
	if ((pid = fork()) == -1)
		fatal("runner: fork");
	if (pid == 0) {
		(void)close(sp[0]);
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (priv_drop(&u, &err) == -1)
			fatalx("runner: %s", err);
		runner_run(sd, conf, sp[1]);
	}
	(void)close(sp[1]);
	deliverer_main(sd, sp[0], pid);
}
