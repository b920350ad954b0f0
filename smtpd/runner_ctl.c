/*
 * runner_ctl.c — the queue runner's control socket: `flush',
 * `delete ID' and `bounce ID' from virtmail queue (protocol in
 * smtpd.h, docs/queue.md).
 *
 * SECURITY
 *	Runs in the runner: the domain's run_as user, chrooted in the
 *	domain's root.  The socket is QUEUE_DIR "/control", mode 0600,
 *	so only root and run_as can connect.  A request is still parsed
 *	as untrusted: one line of at most RUNNER_CTL_LINE_MAX bytes within
 *	RUNNER_CTL_TIMEOUT seconds, a known command, a valid queue id;
 *	anything else is answered with an error and the connection is
 *	closed.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "log.h"
#include "queue.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

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

void
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
	ev_timer_cancel(runner.loop, &c->timer);
	(void)ev_del(runner.loop, c->fd);
	(void)close(c->fd);
	buf_free(&c->in);
	free(c);
}

void
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
		runner_schedule(m, time(NULL) + runner.retry_min);
		return;
	}
	log_info("%s removed by administrator", m->id);
	runner_forget(m);	/* answers ok */
}

void
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
		for (m = TAILQ_FIRST(&runner.wait); m != NULL; m = next) {
			next = TAILQ_NEXT(m, entry);
			m->flush = 1;
			runner_move(m, RM_READY);
		}
		TAILQ_FOREACH(m, &runner.ready, entry)
			m->flush = 1;
		TAILQ_FOREACH(m, &runner.active, entry)
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
	ev_timer_cancel(runner.loop, &c->timer);
	(void)ev_del(runner.loop, c->fd);
	/* Waiting ones now; an active one when its pass ends. */
	if (m->where == RM_WAIT)
		runner_move(m, RM_READY);
	if (m->where == RM_READY && runner.nactive < RUNNER_ACTIVE_MAX) {
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
	if (ev_add(runner.loop, s, EV_READ, runner_ctl_on_read, c) == -1) {
		(void)close(s);
		buf_free(&c->in);
		free(c);
		return;
	}
	ev_timer_set(runner.loop, &c->timer, RUNNER_CTL_TIMEOUT * 1000,
	    runner_ctl_on_timeout, c);
}

void
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
	    ev_add(runner.loop, runner_ctl_fd, EV_READ, runner_ctl_on_accept,
	    NULL) == -1)
		fatal("runner: control socket %s", RUNNER_CTL_SOCKET);
}
