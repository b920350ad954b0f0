/*
 * deliver_agent.c — the deliverer's long-lived Maildir writers, one
 * process per user and delivery in flight, reused for later deliveries
 * to the same user instead of a fork and an exit per delivery.
 *
 * DESCRIPTION
 *	The deliverer (deliverer.c) hands a Maildir delivery for user U
 *	to an idle agent of U, or starts one: a child that closes every
 *	descriptor but its socket, chroots into the domain's root and
 *	becomes U for good in one step (deliverer_enter: priv_enter_root,
 *	no_new_privs) and then, for each request on its socket, runs
 *	deliver_local() on the message descriptor that came with it and
 *	answers.  An agent does one delivery at a time.  A user gets at
 *	most AGENT_PER_USER of them: a few let one delivery's fsyncs
 *	overlap another's work, but deliveries into one Maildir take its
 *	directories' locks in turn (creating a file there costs far more
 *	than writing it, docs/performance.md), and more writers would only
 *	spin on those locks.  Further deliveries wait, in order, for one
 *	of them.  There are at most AGENT_MAX agents in all (then
 *	an idle agent of another user is closed, or the caller forks as
 *	before).  An agent idle for AGENT_IDLE is closed, and so is one
 *	whose user's uid, gid, groups or home changed in etc/passwd or
 *	etc/group since it started.
 *
 * SECURITY
 *	An agent runs as its user only, inside the domain's root, with no
 *	capability and no_new_privs, and no descriptor but its socket and
 *	the message of the delivery at hand; it was never root inside the
 *	root, and its credentials changed from root, so the user cannot
 *	ptrace it.  It only ever gets that user's deliveries.  The
 *	deliverer trusts nothing it answers: the answer must decode
 *	exactly, its text is made printable by the caller, and an agent
 *	that overruns DELIVER_AGENT_TIMEOUT is killed and the delivery
 *	reported as a temporary failure.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "event.h"
#include "fdpass.h"
#include "log.h"
#include "privdrop.h"
#include "proctitle.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

#define AGENT_MAX		32	/* agents in all */
#define AGENT_PER_USER		4	/* see above */
#define AGENT_WAIT_MAX		256	/* deliveries waiting for an agent */
#define AGENT_IDLE		10000	/* ms without work: closed */

/* A delivery waiting for one of its user's agents. */
struct agent_wait {
	TAILQ_ENTRY(agent_wait)	 entry;
	struct priv_user	 u;
	size_t			 client;
	uint32_t		 reqid;
	int			 msgfd;
	size_t			 len;
	char			 msg[DELIVER_MSG_MAX];
};

struct agent {
	LIST_ENTRY(agent)	 entry;
	struct priv_user	 u;
	pid_t			 pid;
	int			 fd;		/* socket to the agent */
	int			 busy;
	size_t			 client;	/* who asked */
	uint32_t		 reqid;
	struct ev_timer		 timer;		/* timeout or idle */
};

static struct {
	struct ev_loop		*loop;
	const char		*dir;		/* the domain's root */
	const char		*domain;	/* its name, for ps */
	const char		*hostname;
	deliver_agent_reply_cb	*reply;
	void			(*done)(void);	/* after each answer */
	LIST_HEAD(, agent)	 list;
	size_t			 n, nbusy;
	TAILQ_HEAD(, agent_wait) waiting;
	size_t			 nwaiting;
} A;

void
deliver_agent_init(struct ev_loop *loop, const char *dir, const char *domain,
    const char *hostname, deliver_agent_reply_cb *reply, void (*done)(void))
{
	memset(&A, 0, sizeof(A));
	A.loop = loop;
	A.dir = dir;
	A.domain = domain;
	A.hostname = hostname;
	A.reply = reply;
	A.done = done;
	LIST_INIT(&A.list);
	TAILQ_INIT(&A.waiting);
}

size_t
deliver_agent_busy(void)
{
	return A.nbusy + A.nwaiting;
}

/* The agent process: one delivery per request, until its socket closes. */
static void __attribute__((noreturn))
agent_main(int fd, const struct priv_user *u)
{
	struct deliver_req	 req;
	struct deliver_res	 res;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX + 1];
	size_t			 len;
	ssize_t			 n;
	int			 msgfd;

	if (deliverer_enter(A.dir, u, SIGKILL, &err) == -1)
		fatalx("deliver agent: %s", err);
	for (;;) {
		msgfd = -1;
		n = fdpass_recv(fd, &msgfd, msg, sizeof(msg));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		memset(&res, 0, sizeof(res));
		if (msgfd == -1 || deliver_req_decode(msg, (size_t)n, &req,
		    &err) == -1)
			_exit(1);
		deliver_local(&req, u->home, u->uid, A.hostname, msgfd, &res);
		(void)close(msgfd);
		if (deliver_res_encode(&res, msg, sizeof(msg), &len) == -1 ||
		    fdpass_send(fd, -1, msg, len) == -1)
			_exit(1);
	}
}

static int
agent_same_user(const struct priv_user *a, const struct priv_user *b)
{
	size_t	 i;

	if (strcmp(a->name, b->name) != 0 || a->uid != b->uid ||
	    a->gid != b->gid || a->ngroups != b->ngroups ||
	    strcmp(a->home, b->home) != 0)
		return 0;
	for (i = 0; i < a->ngroups; i++)
		if (a->groups[i] != b->groups[i])
			return 0;
	return 1;
}

/* Close an agent: its socket's EOF ends it; SIGCHLD reaps it. */
static void
agent_close(struct agent *a)
{
	ev_timer_cancel(A.loop, &a->timer);
	(void)ev_del(A.loop, a->fd);
	(void)close(a->fd);
	if (a->busy)
		A.nbusy--;
	LIST_REMOVE(a, entry);
	A.n--;
	explicit_bzero(&a->u, sizeof(a->u));
	free(a);
}

static void
agent_fail(struct agent *a, const char *reason)
{
	struct deliver_res	 res;

	memset(&res, 0, sizeof(res));
	res.reqid = a->reqid;
	res.status = DELIVER_TEMPFAIL;
	(void)strlcpy(res.reason, reason, sizeof(res.reason));
	A.reply(a->client, &res);
}

static void	agent_wake(const struct priv_user *);

static void
agent_on_timer(void *arg)
{
	struct agent		*a = arg;
	struct priv_user	 u = a->u;

	if (a->busy) {
		if (kill(a->pid, SIGKILL) == -1 && errno != ESRCH)
			log_warn("deliver agent: kill %ld", (long)a->pid);
		agent_fail(a, "delivery timed out");
	}
	agent_close(a);
	agent_wake(&u);
	explicit_bzero(&u, sizeof(u));
	A.done();
}

/* Give agent a the delivery in msg; -1 (a closed) when it cannot. */
static int
agent_send(struct agent *a, size_t client, uint32_t reqid, int msgfd,
    const char *msg, size_t len)
{
	if (fdpass_send(a->fd, msgfd, msg, len) == -1) {
		agent_close(a);
		return -1;
	}
	(void)close(msgfd);
	a->busy = 1;
	a->client = client;
	a->reqid = reqid;
	A.nbusy++;
	ev_timer_set(A.loop, &a->timer, (DELIVER_AGENT_TIMEOUT) * 1000ULL,
	    agent_on_timer, a);
	return 0;
}

/* Answer a waiting delivery with a temporary failure and forget it. */
static void
agent_wait_fail(struct agent_wait *w)
{
	struct deliver_res	 res;

	(void)close(w->msgfd);
	memset(&res, 0, sizeof(res));
	res.reqid = w->reqid;
	res.status = DELIVER_TEMPFAIL;
	(void)strlcpy(res.reason, "delivery process failed",
	    sizeof(res.reason));
	A.reply(w->client, &res);
	explicit_bzero(&w->u, sizeof(w->u));
	free(w);
}

/* a is idle: the oldest delivery waiting for its user, if any. */
static void
agent_next(struct agent *a)
{
	struct agent_wait	*w;
	struct priv_user	 u;

	TAILQ_FOREACH(w, &A.waiting, entry)
		if (agent_same_user(&a->u, &w->u))
			break;
	if (w == NULL)
		return;
	TAILQ_REMOVE(&A.waiting, w, entry);
	A.nwaiting--;
	if (agent_send(a, w->client, w->reqid, w->msgfd, w->msg,
	    w->len) == -1) {
		/* a is closed: the others waiting need another agent. */
		u = w->u;
		agent_wait_fail(w);
		agent_wake(&u);
		explicit_bzero(&u, sizeof(u));
		return;
	}
	explicit_bzero(&w->u, sizeof(w->u));
	free(w);
}

static void
agent_on_answer(int fd, int events, void *arg)
{
	struct agent		*a = arg;
	struct deliver_res	 res;
	struct priv_user	 u;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX + 1];
	ssize_t			 n;
	int			 rfd = -1;

	(void)events;
	n = fdpass_recv(fd, &rfd, msg, sizeof(msg));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (rfd != -1)
		(void)close(rfd);
	if (!a->busy || n <= 0 || deliver_res_decode(msg, (size_t)n, &res,
	    &err) == -1) {
		/* Gone, or speaking out of turn: never used again. */
		if (a->busy)
			agent_fail(a, "delivery process failed");
		u = a->u;
		agent_close(a);
		agent_wake(&u);
		explicit_bzero(&u, sizeof(u));
		A.done();
		return;
	}
	res.reqid = a->reqid;
	a->busy = 0;
	A.nbusy--;
	A.reply(a->client, &res);
	ev_timer_set(A.loop, &a->timer, AGENT_IDLE, agent_on_timer, a);
	agent_next(a);
	A.done();
}

static struct agent *
agent_start(const struct priv_user *u)
{
	struct agent	*a;
	const char	*err;
	pid_t		 pid;
	int		 sp[2], fd;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1)
		return NULL;
	if ((pid = fork()) == -1) {
		(void)close(sp[0]);
		(void)close(sp[1]);
		return NULL;
	}
	if (pid == 0) {
		deliverer_child_signals();
		/* Nothing but the socket, as descriptor 3. */
		fd = sp[1];
		if (priv_keep_fds(&fd, 1, &err) == -1)
			_exit(1);
		proctitle_set("agent %s", A.domain);
		agent_main(fd, u);
	}
	(void)close(sp[1]);
	a = xcalloc(1, sizeof(*a));
	a->u = *u;
	a->pid = pid;
	a->fd = sp[0];
	if (fcntl(a->fd, F_SETFL, O_NONBLOCK) == -1 ||
	    ev_add(A.loop, a->fd, EV_READ, agent_on_answer, a) == -1)
		fatal("deliver agent: watch");
	LIST_INSERT_HEAD(&A.list, a, entry);
	A.n++;
	return a;
}

/*
 * An agent of u is gone: if deliveries wait for u and no agent of u is
 * left to take them, start one.
 */
static void
agent_wake(const struct priv_user *u)
{
	struct agent_wait	*w, *next;
	struct agent		*a;

	TAILQ_FOREACH(w, &A.waiting, entry)
		if (agent_same_user(&w->u, u))
			break;
	if (w == NULL)
		return;
	LIST_FOREACH(a, &A.list, entry)
		if (agent_same_user(&a->u, u))
			return;
	if (A.n < AGENT_MAX && (a = agent_start(u)) != NULL)
		agent_next(a);
	else {
		/* No agent to be had: they fail now, and are retried. */
		for (w = TAILQ_FIRST(&A.waiting); w != NULL; w = next) {
			next = TAILQ_NEXT(w, entry);
			if (!agent_same_user(&w->u, u))
				continue;
			TAILQ_REMOVE(&A.waiting, w, entry);
			A.nwaiting--;
			agent_wait_fail(w);
		}
	}
}

int
deliver_agent_deliver(const struct priv_user *u, size_t client,
    const struct deliver_req *req, int msgfd)
{
	struct agent_wait	*w;
	struct agent		*a, *next, *idle = NULL, *other = NULL;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len, busy = 0;

	if (req->mbox || deliver_req_encode(req, msg, sizeof(msg), &len) ==
	    -1)
		return -1;
	for (a = LIST_FIRST(&A.list); a != NULL; a = next) {
		next = LIST_NEXT(a, entry);
		if (agent_same_user(&a->u, u)) {
			if (!a->busy) {
				idle = a;
				break;
			}
			busy++;
		} else if (a->busy)
			continue;
		else if (strcmp(a->u.name, u->name) == 0)
			agent_close(a);		/* etc/passwd changed */
		else
			other = a;
	}
	if (idle == NULL && busy >= AGENT_PER_USER) {
		if (A.nwaiting >= AGENT_WAIT_MAX)
			return -1;
		w = xcalloc(1, sizeof(*w));
		w->u = *u;
		w->client = client;
		w->reqid = req->reqid;
		w->msgfd = msgfd;
		w->len = len;
		memcpy(w->msg, msg, len);
		TAILQ_INSERT_TAIL(&A.waiting, w, entry);
		A.nwaiting++;
		return 0;
	}
	if (idle == NULL) {
		if (A.n >= AGENT_MAX && other != NULL)
			agent_close(other);
		if (A.n >= AGENT_MAX || (idle = agent_start(u)) == NULL)
			return -1;
	}
	return agent_send(idle, client, req->reqid, msgfd, msg, len);
}

void
deliver_agent_close_all(void)
{
	struct agent	*a, *next;

	for (a = LIST_FIRST(&A.list); a != NULL; a = next) {
		next = LIST_NEXT(a, entry);
		if (!a->busy)
			agent_close(a);
	}
}
