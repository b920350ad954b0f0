/*
 * runner.c — a domain's queue runner: process setup and scheduling.
 *
 * PROCESS SHAPE
 *	runner_main() is called by the master (root, not chrooted) in a
 *	fresh child.  It looks up the domain's run_as account in the
 *	domain's own etc/passwd and forks:
 *
 *	runner	  (the child) closes every descriptor but its socket to
 *		  the deliverer, chroots into the domain's root and drops
 *		  to run_as in one step, with no_new_privs, and does all
 *		  the queue work: reads envelopes, expands etc/aliases,
 *		  decides, logs, retries, updates and removes envelopes.
 *		  It opens each message file itself (read-only) and
 *		  passes the descriptor.
 *	deliverer (the parent, still root, outside the root, with few
 *		  capabilities; deliverer.c) writes local mailboxes on the
 *		  runner's requests.

 *	The runner's other parts: runner_local.c (local recipients,
 *	aliases, requests to the deliverer), runner_remote.c (remote
 *	recipients, handed to mta.c), runner_dsn.c (bounces and delay
 *	warnings, bounce.c), runner_ctl.c (the control socket).
 *
 * SECURITY
 *	Runs as the domain's run_as user, chrooted in the domain's root,
 *	with no capability and no_new_privs; it was never root inside the
 *	root, and it can touch nothing outside that domain.  It trusts its queue
 *	(written by the domain's own processes) only as far as
 *	queue_env_load() checks it: an envelope that does not load is
 *	logged and retried later, never half-read.  The deliverer is more
 *	privileged and trusted (deliverer.c says what it checks).
 *
 * SCHEDULING
 *	Each known message is in one of three lists: ready (to start a
 *	pass now), wait (next_try in the future) or active (a pass in
 *	progress, at most RUNNER_ACTIVE_MAX).  inotify on the queue's
 *	env/ directory notes new messages at once; a one-second tick
 *	moves due messages from wait to ready, and every RUNNER_RESCAN
 *	ticks the queue is listed again in case an event was lost.  A
 *	pass routes every pending recipient (local or remote), records
 *	each recipient's result as it comes (runner_decide), and at its
 *	end sends the DSNs owed, removes a finished message or schedules
 *	the next try with exponential backoff between retry_min and
 *	retry_max; a recipient still deferred after queue_lifetime
 *	bounces (4.4.7).
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

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "confine.h"
#include "event.h"
#include "log.h"
#include "privdrop.h"
#include "proctitle.h"
#include "queue.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

struct runner	 runner;

static unsigned int
runner_hash(const char *id)
{
	unsigned int	 h = 0;

	for (; *id != '\0'; id++)
		h = h * 31 + (unsigned char)*id;
	return h % RUNNER_HASH;
}

struct rmsg *
runner_find(const char *id)
{
	struct rmsg	*m;

	for (m = runner.hash[runner_hash(id)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

void
runner_move(struct rmsg *m, enum rmsg_where to)
{
	struct rmsg_list *from;

	from = m->where == RM_READY ? &runner.ready : m->where == RM_WAIT ?
	    &runner.wait : &runner.active;
	TAILQ_REMOVE(from, m, entry);
	if (m->where == RM_ACTIVE)
		runner.nactive--;
	m->where = to;
	if (to == RM_READY)
		TAILQ_INSERT_TAIL(&runner.ready, m, entry);
	else if (to == RM_WAIT)
		TAILQ_INSERT_TAIL(&runner.wait, m, entry);
	else {
		TAILQ_INSERT_TAIL(&runner.active, m, entry);
		runner.nactive++;
	}
}

/* A message we have not seen: ready at once. */
void
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
	TAILQ_INSERT_TAIL(&runner.ready, m, entry);
	h = runner_hash(id);
	m->hnext = runner.hash[h];
	runner.hash[h] = m;
}

void
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

void
runner_forget(struct rmsg *m)
{
	struct rmsg	**pp;

	runner_pass_clear(m);
	if (m->ctl != NULL)
		runner_ctl_answer(m->ctl, NULL);	/* it is gone */
	for (pp = &runner.hash[runner_hash(m->id)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == m) {
			*pp = m->hnext;
			break;
		}
	}
	if (m->where == RM_ACTIVE)
		runner.nactive--;
	TAILQ_REMOVE(m->where == RM_READY ? &runner.ready :
	    m->where == RM_WAIT ? &runner.wait : &runner.active, m, entry);
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
	pickup_scan(runner.sd);
}

long long
runner_delay(const struct rmsg *m)
{
	time_t	 now = time(NULL);

	return now > m->env.created ? (long long)(now - m->env.created) : 0;
}

/* The one log line per delivery. */
void
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

void
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

size_t
runner_pending(const struct queue_env *e)
{
	size_t	 i, n = 0;

	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == QUEUE_RCPT_PENDING)
			n++;
	return n;
}

/* All results for recipient i are in: record its new state. */
void
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
		if (rs->temp == 0 ||
		    (time_t)(m->env.created + runner.lifetime) > time(NULL))
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

void
runner_schedule(struct rmsg *m, time_t when)
{
	m->next_try = when;
	runner_move(m, RM_WAIT);
}

void
runner_pass_start(struct rmsg *m)
{
	const char	*err;
	char		 path[PATH_MAX];
	size_t		 i;

	runner_move(m, RM_ACTIVE);
	if (queue_env_load(QUEUE_DIR, m->id, &m->env, &err) == -1) {
		(void)snprintf(path, sizeof(path), "%s/env/%s", QUEUE_DIR,
		    m->id);
		if (access(path, F_OK) == -1 && errno == ENOENT) {
			runner_forget(m);	/* finished or held */
			return;
		}
		log_warnx("%s: envelope: %s", m->id, err);
		runner_schedule(m, time(NULL) + runner.retry_max);
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
	(void)runner_local_load();	/* failure: local recipients wait */
	for (i = 0; i < m->env.nrcpts; i++) {
		if (m->env.rcpts[i].state != QUEUE_RCPT_PENDING) {
			m->rs[i].decided = 1;
			continue;
		}
		runner_local_route(m, i);
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
	unsigned long long	 d = runner.retry_min;

	while (attempts-- > 0 && d < runner.retry_max)
		d *= 2;
	return d > runner.retry_max ? runner.retry_max : (unsigned int)d;
}

void
runner_pass_finish(struct rmsg *m)
{
	const char	*err;
	size_t		 i;
	int		 temp = 0;

	runner_dsn_owed(m);
	if (runner_pending(&m->env) == 0) {
		if (queue_remove(QUEUE_DIR, m->id, &err) == -1) {
			log_warnx("%s: remove: %s", m->id, err);
			runner_pass_clear(m);
			runner_schedule(m, time(NULL) + runner.retry_max);
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
		runner_dsn_delay_warning(m);
	} else
		m->next_try = time(NULL) + runner.retry_max;
	runner_pass_clear(m);
	runner_schedule(m, m->next_try);
	if (m->admin != RUNNER_ADMIN_NONE || m->flush)
		runner_move(m, RM_READY);
}

void
runner_kick(void)
{
	struct rmsg	*m;
	int		 progress = 1;

	while (!runner.stopping && progress) {
		progress = 0;
		TAILQ_FOREACH(m, &runner.active, entry) {
			if (runner.inflight >= RUNNER_PARALLEL)
				return;
			if (m->next < m->ntasks) {
				runner_local_start(&m->tasks[m->next++]);
				progress = 1;
				break;	/* the list may have changed */
			}
		}
		if (progress || runner.inflight >= RUNNER_PARALLEL)
			continue;
		if ((m = TAILQ_FIRST(&runner.ready)) != NULL &&
		    runner.nactive < RUNNER_ACTIVE_MAX) {
			runner_pass_start(m);
			progress = 1;
		}
	}
}

void
runner_maybe_exit(void)
{
	if (runner.stopping && runner.inflight == 0) {
		log_debug("runner: done");
		exit(0);
	}
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
			else if (ie->wd == runner.drop_wd)
				pickup = 1;
			else if (ie->len > 0)
				runner_note(ie->name, 0);
		}
	}
	if (pickup)
		pickup_scan(runner.sd);
	runner_kick();
}

static void
runner_on_tick(void *arg)
{
	struct rmsg	*m, *next;
	time_t		 now = time(NULL);

	(void)arg;
	for (m = TAILQ_FIRST(&runner.wait); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->next_try <= now)
			runner_move(m, RM_READY);
	}
	if (++runner.ticks % RUNNER_RESCAN == 0)
		runner_rescan(0);
	runner_kick();
	ev_timer_set(runner.loop, &runner.tick, 1000, runner_on_tick, NULL);
}

static void
runner_on_signal(int signo, void *arg)
{
	(void)arg;
	(void)signo;
	runner.stopping = 1;
	runner_maybe_exit();
}

static void __attribute__((noreturn))
runner_run(struct smtpd_domain *sd, const struct smtpd_conf *conf, int dfd)
{
	const char	*err;

	memset(&runner, 0, sizeof(runner));
	smtp_userdb_init(&runner.udb);
	runner.sd = sd;
	runner.conf = conf;
	runner.dfd = dfd;
	TAILQ_INIT(&runner.ready);
	TAILQ_INIT(&runner.wait);
	TAILQ_INIT(&runner.active);
	runner.retry_min = conf->retry_min > 0 ? conf->retry_min : 60;
	runner.retry_max = conf->retry_max >= runner.retry_min ?
	    conf->retry_max : runner.retry_min * 60;
	runner.lifetime = conf->queue_lifetime > 0 ? conf->queue_lifetime :
	    5 * 24 * 3600;
	log_set_procname("smtpd-runner");

	if (queue_init(QUEUE_DIR, &err) == -1)
		fatalx("queue %s: %s", QUEUE_DIR, err);
	(void)queue_gc(QUEUE_DIR, 3600);
	if ((runner.loop = ev_loop_new()) == NULL)
		fatal("runner: event loop");
	if ((runner.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(runner.ifd, QUEUE_DIR "/env",
	    IN_MOVED_TO | IN_CLOSE_WRITE) == -1)
		fatal("runner: inotify on %s/env", QUEUE_DIR);
	runner.drop_wd = pickup_init(sd, runner.ifd);	/* virtmail-sendmail */
	mta_init(runner.loop, sd, conf);
	runner_ctl_init();
	if (ev_add(runner.loop, runner.ifd, EV_READ, runner_on_inotify,
	    NULL) == -1 ||
	    ev_add(runner.loop, dfd, EV_READ, runner_local_on_reply,
	    NULL) == -1 ||
	    ev_signal(runner.loop, SIGTERM, runner_on_signal, NULL) == -1 ||
	    ev_signal(runner.loop, SIGINT, runner_on_signal, NULL) == -1)
		fatal("runner: event setup");
	(void)signal(SIGPIPE, SIG_IGN);

	/* Whatever is queued now may have been mid-delivery before. */
	runner_rescan(1);
	log_info("runner started queue=%s", QUEUE_DIR);
	ev_timer_set(runner.loop, &runner.tick, 1000, runner_on_tick, NULL);
	runner_kick();
	(void)ev_loop_run(runner.loop);
	fatalx("runner: event loop ended");
}

void
runner_main(struct smtpd_domain *sd, const struct smtpd_conf *conf)
{
	struct priv_user	 u;
	const char		*err;
	pid_t			 pid;
	int			 sp[2], fd;

	log_set_domain(sd->name);
	/* From outside the root: the account from the domain's passwd. */
	if (priv_check_root(sd->vd->dir, &err) == -1)
		fatalx("runner: %s", err);
	if (priv_lookup_user(sd->vd->dir, sd->run_as, &u, &err) == -1)
		fatalx("runner: run_as %s: %s", sd->run_as, err);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1)
		fatal("runner: socketpair");
	/*
	 * The kernel keeps the deliverer, and all it forks, to this
	 * domain's files; the runner too, so that it may be signalled.
	 */
	if (confine_to_root(sd->vd->dir, CONFINE_WRITE, &err) == -1)
		fatalx("deliverer: %s", err);
	if ((pid = fork()) == -1)
		fatal("runner: fork");
	if (pid == 0) {
		/* Into the root as run_as in one step, nothing else open. */
		fd = sp[1];
		if (priv_keep_fds(&fd, 1, &err) == -1 ||
		    deliverer_enter(sd->vd->dir, &u, SIGTERM, &err) == -1)
			fatalx("runner: %s", err);
		explicit_bzero(&u, sizeof(u));
		runner_run(sd, conf, fd);
	}
	explicit_bzero(&u, sizeof(u));
	fd = sp[0];
	if (priv_keep_fds(&fd, 1, &err) == -1)
		fatalx("deliverer: %s", err);
	proctitle_set("deliverer %s", sd->name);
	deliverer_main(sd, &fd, 1, pid);
}
