/*
 * event.c — the event loop: epoll for descriptors, a sorted timer list
 * and one signalfd for signals.
 *
 * SECURITY
 *	Runs in every process, mostly unprivileged and chrooted, around
 *	sessions driven by the network.  It reads nothing from peers
 *	itself.  Its one safety duty: a registration deleted by a callback
 *	(often with its context freed) is never touched again, so a peer
 *	that makes a session die in the middle of a round cannot turn it
 *	into a use after free.  Deleted registrations are only marked and
 *	moved aside, and freed once the round is over.
 *
 *	A loop belongs to the process that created it: after fork(), the
 *	child builds its own (epoll and signalfd do not follow a fork
 *	well).
 */

#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"

#define EV_BATCH	64

struct ev_fd {
	int		 fd;
	int		 events;
	ev_fd_cb	*cb;
	void		*arg;
	int		 deleted;
	struct ev_fd	*next;		/* on the dead list once deleted */
};

struct ev_sig {
	ev_signal_cb	*cb;
	void		*arg;
};

struct ev_loop {
	int		 epfd;
	struct ev_fd	**fds;		/* live registrations by fd */
	size_t		 nfds;		/* size of fds */
	size_t		 nlive;		/* live registrations */
	struct ev_fd	*dead;		/* deleted, freed after the round */
	struct ev_timer	*timers;	/* armed, by deadline */
	struct ev_timer	*due;		/* taken off timers, firing now */
	int		 sigfd;
	struct ev_fd	*sigreg;
	sigset_t	 sigmask;	/* signals routed to sigfd */
	sigset_t	 oldmask;	/* the mask before our first block */
	int		 sigsaved;
	size_t		 nsigs;
	struct ev_sig	 sigs[_NSIG];
	int		 broken;
};

uint64_t
ev_now_ms(void)
{
	struct timespec	 ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct ev_loop *
ev_loop_new(void)
{
	struct ev_loop	*loop;

	if ((loop = calloc(1, sizeof(*loop))) == NULL)
		return NULL;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	if ((loop->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		free(loop);
		return NULL;
	}
	return loop;
}

static void
ev_reap(struct ev_loop *loop)
{
	struct ev_fd	*r;

	while ((r = loop->dead) != NULL) {
		loop->dead = r->next;
		free(r);
	}
}

void
ev_loop_free(struct ev_loop *loop)
{
	size_t	 i;
	int	 saved_errno = errno;

	if (loop == NULL)
		return;
	for (i = 0; i < loop->nfds; i++)
		free(loop->fds[i]);
	free(loop->fds);
	free(loop->sigreg);
	ev_reap(loop);
	(void)close(loop->epfd);
	if (loop->sigfd != -1)
		(void)close(loop->sigfd);
	/* Give the process back the signal mask it had. */
	if (loop->sigsaved)
		(void)sigprocmask(SIG_SETMASK, &loop->oldmask, NULL);
	free(loop);
	errno = saved_errno;
}

static uint32_t
ev_to_epoll(int events)
{
	uint32_t	 ev = 0;

	if (events & EV_READ)
		ev |= EPOLLIN;
	if (events & EV_WRITE)
		ev |= EPOLLOUT;
	return ev;
}

int
ev_add(struct ev_loop *loop, int fd, int events, ev_fd_cb *cb, void *arg)
{
	struct epoll_event	  ee;
	struct ev_fd		 *r, **nf;
	size_t			  n;

	if (fd < 0 || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)fd < loop->nfds && loop->fds[fd] != NULL) {
		errno = EEXIST;
		return -1;
	}
	if ((size_t)fd >= loop->nfds) {
		n = loop->nfds ? loop->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		if ((nf = reallocarray(loop->fds, n, sizeof(*nf))) == NULL)
			return -1;
		memset(nf + loop->nfds, 0, (n - loop->nfds) * sizeof(*nf));
		loop->fds = nf;
		loop->nfds = n;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->fd = fd;
	r->events = events & (EV_READ | EV_WRITE);
	r->cb = cb;
	r->arg = arg;

	memset(&ee, 0, sizeof(ee));
	ee.events = ev_to_epoll(r->events);
	ee.data.ptr = r;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) == -1) {
		free(r);
		return -1;
	}
	loop->fds[fd] = r;
	loop->nlive++;
	return 0;
}

static struct ev_fd *
ev_find(struct ev_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || loop->fds[fd] == NULL) {
		errno = ENOENT;
		return NULL;
	}
	return loop->fds[fd];
}

int
ev_mod(struct ev_loop *loop, int fd, int events)
{
	struct epoll_event	 ee;
	struct ev_fd		*r;

	if ((r = ev_find(loop, fd)) == NULL)
		return -1;
	events &= EV_READ | EV_WRITE;
	if (events == r->events)
		return 0;
	memset(&ee, 0, sizeof(ee));
	ee.events = ev_to_epoll(events);
	ee.data.ptr = r;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ee) == -1)
		return -1;
	r->events = events;
	return 0;
}

int
ev_del(struct ev_loop *loop, int fd)
{
	struct ev_fd	*r;

	if ((r = ev_find(loop, fd)) == NULL)
		return -1;
	/*
	 * A descriptor already closed has left the epoll set by itself:
	 * the registration goes all the same.
	 */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) == -1 &&
	    errno != EBADF && errno != ENOENT)
		return -1;
	loop->fds[fd] = NULL;
	loop->nlive--;
	r->deleted = 1;
	r->next = loop->dead;
	loop->dead = r;
	return 0;
}

/* Unlink t from the list at *head; 1 if it was there. */
static int
ev_timer_unlink(struct ev_timer **head, struct ev_timer *t)
{
	struct ev_timer	**pp;

	for (pp = head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			t->next = NULL;
			return 1;
		}
	}
	return 0;
}

void
ev_timer_cancel(struct ev_loop *loop, struct ev_timer *t)
{
	if (t->when == 0)
		return;
	if (!ev_timer_unlink(&loop->timers, t))
		(void)ev_timer_unlink(&loop->due, t);
	t->when = 0;
}

void
ev_timer_set(struct ev_loop *loop, struct ev_timer *t, uint64_t ms,
    ev_timer_cb *cb, void *arg)
{
	struct ev_timer	**pp;
	uint64_t	  now;

	ev_timer_cancel(loop, t);
	now = ev_now_ms();
	t->when = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
	if (t->when == 0)
		t->when = 1;		/* 0 means "not armed" */
	t->cb = cb;
	t->arg = arg;
	/* After any timer with the same deadline: equal ones fire in order. */
	for (pp = &loop->timers; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->when > t->when)
			break;
	t->next = *pp;
	*pp = t;
}

static void
ev_signal_read(int fd, int events, void *arg)
{
	struct ev_loop		*loop = arg;
	struct signalfd_siginfo	 si;
	struct ev_sig		*s;
	ssize_t			 n;

	(void)events;
	for (;;) {
		n = read(fd, &si, sizeof(si));
		if (n == -1 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			return;		/* EAGAIN: drained */
		if (si.ssi_signo >= _NSIG)
			continue;
		s = &loop->sigs[si.ssi_signo];
		if (s->cb != NULL)
			s->cb((int)si.ssi_signo, s->arg);
		if (loop->broken)
			return;
	}
}

int
ev_signal(struct ev_loop *loop, int signo, ev_signal_cb *cb, void *arg)
{
	struct epoll_event	 ee;
	sigset_t		 one, mask;
	int			 fd;

	if (signo <= 0 || signo >= _NSIG || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	mask = loop->sigmask;
	if (sigaddset(&mask, signo) == -1)
		return -1;
	/*
	 * Block first: a signal that arrives from here on stays pending
	 * and is read from the signalfd, instead of killing the process.
	 */
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, loop->sigsaved ? NULL :
	    &loop->oldmask) == -1)
		return -1;
	loop->sigsaved = 1;
	fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		return -1;
	if (loop->sigfd == -1) {
		if ((loop->sigreg = calloc(1, sizeof(*loop->sigreg))) ==
		    NULL) {
			(void)close(fd);
			return -1;
		}
		loop->sigreg->fd = fd;
		loop->sigreg->events = EV_READ;
		loop->sigreg->cb = ev_signal_read;
		loop->sigreg->arg = loop;
		memset(&ee, 0, sizeof(ee));
		ee.events = EPOLLIN;
		ee.data.ptr = loop->sigreg;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) == -1) {
			(void)close(fd);
			free(loop->sigreg);
			loop->sigreg = NULL;
			return -1;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	if (loop->sigs[signo].cb == NULL)
		loop->nsigs++;
	loop->sigs[signo].cb = cb;
	loop->sigs[signo].arg = arg;
	return 0;
}

static int
ev_timeout(struct ev_loop *loop)
{
	uint64_t	 now;

	if (loop->timers == NULL)
		return -1;
	now = ev_now_ms();
	if (loop->timers->when <= now)
		return 0;
	if (loop->timers->when - now > INT_MAX)
		return INT_MAX;
	return (int)(loop->timers->when - now);
}

/*
 * Fire every timer due now.  They are first moved to the due list, so a
 * callback that re-arms its timer for 0 ms waits for the next round
 * instead of spinning here, and one that cancels another due timer
 * stops it from firing.
 */
static void
ev_timers_run(struct ev_loop *loop)
{
	struct ev_timer	*t, **tail;
	uint64_t	 now;

	now = ev_now_ms();
	tail = &loop->due;
	while ((t = loop->timers) != NULL && t->when <= now) {
		loop->timers = t->next;
		t->next = NULL;
		*tail = t;
		tail = &t->next;
	}
	while ((t = loop->due) != NULL && !loop->broken) {
		loop->due = t->next;
		t->next = NULL;
		t->when = 0;
		t->cb(t->arg);
	}
	/* Broken off: whatever is left waits for the next run. */
	while ((t = loop->due) != NULL) {
		loop->due = t->next;
		t->next = NULL;
		t->when = 0;
		ev_timer_set(loop, t, 0, t->cb, t->arg);
	}
}

static int
ev_dispatch(struct ev_fd *r, uint32_t ee)
{
	int	 events = 0;

	if (ee & EPOLLIN)
		events |= EV_READ;
	if (ee & EPOLLOUT)
		events |= EV_WRITE;
	/* On error or hangup, let the reader or writer find out itself. */
	if (ee & (EPOLLERR | EPOLLHUP))
		events |= EV_ERROR | r->events;
	return events;
}

int
ev_loop_run(struct ev_loop *loop)
{
	struct epoll_event	 ev[EV_BATCH];
	struct ev_fd		*r;
	int			 i, n;

	for (;;) {
		ev_reap(loop);
		if (loop->broken)
			break;
		if (loop->nlive == 0 && loop->timers == NULL &&
		    loop->nsigs == 0)
			break;
		n = epoll_wait(loop->epfd, ev, EV_BATCH, ev_timeout(loop));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (i = 0; i < n && !loop->broken; i++) {
			r = ev[i].data.ptr;
			if (r->deleted)
				continue;
			r->cb(r->fd, ev_dispatch(r, ev[i].events), r->arg);
		}
		if (!loop->broken)
			ev_timers_run(loop);
	}
	ev_reap(loop);
	loop->broken = 0;
	return 0;
}

void
ev_loop_break(struct ev_loop *loop)
{
	loop->broken = 1;
}
