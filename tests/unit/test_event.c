/*
 * test_event.c — the event loop: descriptor readiness, timers, signals,
 * and registrations deleted (and freed) from inside callbacks.
 */

#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "test.h"

struct fdctx {
	struct ev_loop	*loop;
	int		 fd;
	int		 calls;
	int		 events;
	struct fdctx	*other;		/* deleted and freed by this one */
	int		*other_called;
};

/* Short reads and writes in callbacks; counted, checked at the end. */
static int		 io_errors;

static void
io_read(int fd, void *b, size_t len)
{
	if (read(fd, b, len) <= 0)
		io_errors++;
}

static void
io_write(int fd, const void *b, size_t len)
{
	if (write(fd, b, len) != (ssize_t)len)
		io_errors++;
}

/* A watchdog, so that a broken loop fails a test instead of hanging. */
static struct ev_timer	 watchdog;
static int		 watchdog_fired;

static void
watchdog_cb(void *arg)
{
	watchdog_fired = 1;
	ev_loop_break(arg);
}

static void
watchdog_arm(struct ev_loop *loop)
{
	watchdog_fired = 0;
	memset(&watchdog, 0, sizeof(watchdog));
	ev_timer_set(loop, &watchdog, 2000, watchdog_cb, loop);
}

static void
read_once_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;
	char		 b[16];

	c->calls++;
	c->events = events;
	io_read(fd, b, sizeof(b));
	(void)ev_del(c->loop, fd);
	ev_timer_cancel(c->loop, &watchdog);
}

static void
test_read(void)
{
	struct ev_loop	*loop;
	struct fdctx	 c;
	int		 p[2];

	loop = ev_loop_new();
	CHECK(loop != NULL, "loop created");
	CHECK(pipe(p) == 0, "pipe");
	memset(&c, 0, sizeof(c));
	c.loop = loop;
	CHECK(ev_add(loop, p[0], EV_READ, read_once_cb, &c) == 0,
	    "ev_add read");
	CHECK(ev_add(loop, p[0], EV_READ, read_once_cb, &c) == -1 &&
	    errno == EEXIST, "ev_add twice is EEXIST");
	CHECK(ev_del(loop, p[1]) == -1 && errno == ENOENT,
	    "ev_del unknown is ENOENT");
	CHECK(write(p[1], "x", 1) == 1, "write");
	watchdog_arm(loop);
	CHECK(ev_loop_run(loop) == 0, "run ends when nothing is left");
	CHECK(c.calls == 1 && c.events == EV_READ, "read callback once");
	CHECK(!watchdog_fired, "no watchdog");
	close(p[0]);
	close(p[1]);
	ev_loop_free(loop);
}

static void
write_then_read_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;
	char		 b[16];

	c->calls++;
	if (c->calls == 1) {
		c->events = events;
		/* Writable first; switch to reading our own echo. */
		io_write(fd, "ping", 4);
		(void)ev_mod(c->loop, fd, EV_READ);
		return;
	}
	if (events & EV_READ) {
		io_read(fd, b, sizeof(b));
		c->events = events;
		(void)ev_del(c->loop, fd);
		ev_timer_cancel(c->loop, &watchdog);
	}
}

static void
echo_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;
	char		 b[16];
	ssize_t		 n;

	(void)events;
	n = read(fd, b, sizeof(b));
	if (n > 0)
		io_write(fd, b, (size_t)n);
	c->calls++;
	(void)ev_del(c->loop, fd);
}

static void
test_write_mod(void)
{
	struct ev_loop	*loop;
	struct fdctx	 a, e;
	int		 sv[2];

	loop = ev_loop_new();
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	memset(&a, 0, sizeof(a));
	memset(&e, 0, sizeof(e));
	a.loop = e.loop = loop;
	CHECK(ev_add(loop, sv[0], EV_WRITE, write_then_read_cb, &a) == 0,
	    "ev_add write");
	CHECK(ev_add(loop, sv[1], EV_READ, echo_cb, &e) == 0, "ev_add echo");
	watchdog_arm(loop);
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(a.calls >= 2, "writer called, then reader after ev_mod");
	CHECK(a.events == EV_READ, "last event was the echo");
	CHECK(e.calls == 1, "echo called once");
	CHECK(!watchdog_fired, "no watchdog");
	close(sv[0]);
	close(sv[1]);
	ev_loop_free(loop);
}

static void
hup_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;

	c->calls++;
	c->events = events;
	(void)ev_del(c->loop, fd);
}

static void
test_hangup(void)
{
	struct ev_loop	*loop;
	struct fdctx	 c;
	int		 p[2];

	loop = ev_loop_new();
	CHECK(pipe(p) == 0, "pipe");
	memset(&c, 0, sizeof(c));
	c.loop = loop;
	CHECK(ev_add(loop, p[0], EV_READ, hup_cb, &c) == 0, "ev_add");
	close(p[1]);
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(c.calls == 1 && (c.events & EV_ERROR) && (c.events & EV_READ),
	    "hangup reported as EV_ERROR with EV_READ");
	close(p[0]);
	ev_loop_free(loop);
}

/*
 * Both pipes are readable in the same round; whichever runs first
 * deletes the other and frees its context.  Under ASan, any touch of
 * the freed registration or context would abort.
 */
static void
killer_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;
	struct ev_loop	*loop = c->loop;
	char		 b[16];

	(void)events;
	if (c->other_called != NULL)
		(*c->other_called)++;
	io_read(fd, b, sizeof(b));
	(void)ev_del(loop, fd);
	if (c->other != NULL) {
		(void)ev_del(loop, c->other->fd);
		c->other->other = NULL;
		free(c->other);
	}
	free(c);
}

static void
test_delete_other(void)
{
	struct ev_loop	*loop;
	struct fdctx	*a, *b;
	int		 p[2], q[2], calls = 0;

	loop = ev_loop_new();
	CHECK(pipe(p) == 0 && pipe(q) == 0, "pipes");
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	CHECK(a != NULL && b != NULL, "alloc");
	a->loop = b->loop = loop;
	a->fd = p[0];
	b->fd = q[0];
	a->other = b;
	b->other = a;
	a->other_called = b->other_called = &calls;
	CHECK(ev_add(loop, p[0], EV_READ, killer_cb, a) == 0, "add a");
	CHECK(ev_add(loop, q[0], EV_READ, killer_cb, b) == 0, "add b");
	CHECK(write(p[1], "x", 1) == 1 && write(q[1], "y", 1) == 1,
	    "both readable");
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(calls == 1, "the deleted one was never called");
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	ev_loop_free(loop);
}

/* Delete itself and register the same fd again from the callback. */
static void
readd_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;
	char		 b[1];

	(void)events;
	c->calls++;
	if (c->calls == 1) {
		(void)ev_del(c->loop, fd);
		(void)ev_add(c->loop, fd, EV_READ, readd_cb, c);
		return;
	}
	io_read(fd, b, sizeof(b));
	(void)ev_del(c->loop, fd);
}

static void
test_readd(void)
{
	struct ev_loop	*loop;
	struct fdctx	 c;
	int		 p[2];

	loop = ev_loop_new();
	CHECK(pipe(p) == 0, "pipe");
	memset(&c, 0, sizeof(c));
	c.loop = loop;
	CHECK(ev_add(loop, p[0], EV_READ, readd_cb, &c) == 0, "add");
	CHECK(write(p[1], "x", 1) == 1, "write");
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(c.calls == 2, "re-added registration fires again");
	close(p[0]);
	close(p[1]);
	ev_loop_free(loop);
}

struct tctx {
	struct ev_loop	*loop;
	int		*order;
	int		*n;
	int		 id;
	struct ev_timer	*victim;	/* cancelled when this fires */
	struct ev_timer	*self;
	int		 rearm;		/* times left to re-arm for 0 ms */
};

static void
timer_cb(void *arg)
{
	struct tctx	*t = arg;

	t->order[(*t->n)++] = t->id;
	if (t->victim != NULL)
		ev_timer_cancel(t->loop, t->victim);
	if (t->rearm > 0) {
		t->rearm--;
		ev_timer_set(t->loop, t->self, 0, timer_cb, t);
	}
}

static void
test_timers(void)
{
	struct ev_loop	*loop;
	struct ev_timer	 t[5];
	struct tctx	 c[5];
	int		 order[16], n = 0, i;
	uint64_t	 start, el;

	loop = ev_loop_new();
	memset(t, 0, sizeof(t));
	memset(c, 0, sizeof(c));
	for (i = 0; i < 5; i++) {
		c[i].loop = loop;
		c[i].order = order;
		c[i].n = &n;
		c[i].id = i;
		c[i].self = &t[i];
	}
	start = ev_now_ms();
	ev_timer_set(loop, &t[0], 60, timer_cb, &c[0]);
	ev_timer_set(loop, &t[1], 20, timer_cb, &c[1]);
	ev_timer_set(loop, &t[2], 40, timer_cb, &c[2]);
	ev_timer_set(loop, &t[3], 30, timer_cb, &c[3]);
	ev_timer_cancel(loop, &t[3]);
	CHECK(t[3].when == 0, "cancelled timer is disarmed");
	ev_timer_cancel(loop, &t[3]);	/* harmless twice */
	ev_timer_set(loop, &t[4], 10, timer_cb, &c[4]);
	ev_timer_set(loop, &t[4], 50, timer_cb, &c[4]);	/* re-arm later */
	CHECK(ev_loop_run(loop) == 0, "run");
	el = ev_now_ms() - start;
	CHECK(n == 4, "four timers fired");
	CHECK(n == 4 && order[0] == 1 && order[1] == 2 && order[2] == 4 &&
	    order[3] == 0, "in deadline order, re-armed one moved");
	CHECK(el >= 60 && el < 1000, "took about the longest delay");
	ev_loop_free(loop);
}

/* Two timers due in the same round: the first cancels the second. */
static void
test_timer_cancel_due(void)
{
	struct ev_loop	*loop;
	struct ev_timer	 t[2];
	struct tctx	 c[2];
	int		 order[4], n = 0;

	loop = ev_loop_new();
	memset(t, 0, sizeof(t));
	memset(c, 0, sizeof(c));
	c[0].loop = c[1].loop = loop;
	c[0].order = c[1].order = order;
	c[0].n = c[1].n = &n;
	c[0].id = 0;
	c[1].id = 1;
	c[0].victim = &t[1];
	c[1].victim = &t[0];
	ev_timer_set(loop, &t[0], 5, timer_cb, &c[0]);
	ev_timer_set(loop, &t[1], 5, timer_cb, &c[1]);
	usleep(20000);
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(n == 1 && order[0] == 0, "cancelled due timer did not fire");
	CHECK(t[1].when == 0, "and is disarmed");
	ev_loop_free(loop);
}

/* A timer re-armed for 0 ms from its callback must not spin in place. */
static void
rearm_fd_cb(int fd, int events, void *arg)
{
	struct fdctx	*c = arg;
	char		 b[1];

	(void)events;
	c->calls++;
	io_read(fd, b, sizeof(b));
	(void)ev_del(c->loop, fd);
}

static void
test_timer_rearm(void)
{
	struct ev_loop	*loop;
	struct ev_timer	 t;
	struct tctx	 c;
	struct fdctx	 f;
	int		 order[16], n = 0, p[2];

	loop = ev_loop_new();
	memset(&t, 0, sizeof(t));
	memset(&c, 0, sizeof(c));
	memset(&f, 0, sizeof(f));
	c.loop = f.loop = loop;
	c.order = order;
	c.n = &n;
	c.self = &t;
	c.rearm = 5;
	CHECK(pipe(p) == 0, "pipe");
	CHECK(write(p[1], "x", 1) == 1, "write");
	CHECK(ev_add(loop, p[0], EV_READ, rearm_fd_cb, &f) == 0, "add");
	ev_timer_set(loop, &t, 0, timer_cb, &c);
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(n == 6, "timer re-armed from its callback fired each time");
	CHECK(f.calls == 1, "descriptors still served between rounds");
	close(p[0]);
	close(p[1]);
	ev_loop_free(loop);
}

static int	 sig_seen[3];

static void
sig_cb(int signo, void *arg)
{
	struct ev_loop	*loop = arg;

	if (signo == SIGUSR1)
		sig_seen[0]++;
	else if (signo == SIGUSR2)
		sig_seen[1]++;
	if (sig_seen[0] && sig_seen[1]) {
		ev_timer_cancel(loop, &watchdog);
		ev_loop_break(loop);
	}
}

static void
test_signals(void)
{
	struct ev_loop	*loop;
	sigset_t	 cur;

	loop = ev_loop_new();
	CHECK(ev_signal(loop, SIGUSR1, sig_cb, loop) == 0, "ev_signal USR1");
	CHECK(ev_signal(loop, SIGUSR2, sig_cb, loop) == 0, "ev_signal USR2");
	CHECK(ev_signal(loop, 0, sig_cb, loop) == -1, "signal 0 refused");
	CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 &&
	    sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGUSR2),
	    "signals blocked");
	/* Blocked: these stay pending until the loop reads them. */
	CHECK(kill(getpid(), SIGUSR1) == 0, "kill USR1");
	CHECK(kill(getpid(), SIGUSR2) == 0, "kill USR2");
	watchdog_arm(loop);
	CHECK(ev_loop_run(loop) == 0, "run");
	CHECK(sig_seen[0] == 1 && sig_seen[1] == 1,
	    "both signals delivered once");
	CHECK(!watchdog_fired, "no watchdog");
	ev_loop_free(loop);
	CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 &&
	    !sigismember(&cur, SIGUSR1), "mask restored by ev_loop_free");
}

static volatile sig_atomic_t	 alarmed;

static void
alarm_handler(int signo)
{
	(void)signo;
	alarmed = 1;
}

/* A real signal handler interrupts epoll_wait: the loop goes on. */
static void
test_eintr(void)
{
	struct ev_loop		*loop;
	struct ev_timer		 t;
	struct tctx		 c;
	struct sigaction	 sa;
	struct itimerval	 it;
	int			 order[2], n = 0;

	loop = ev_loop_new();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = alarm_handler;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
	memset(&it, 0, sizeof(it));
	it.it_value.tv_usec = 20000;
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
	memset(&t, 0, sizeof(t));
	memset(&c, 0, sizeof(c));
	c.loop = loop;
	c.order = order;
	c.n = &n;
	ev_timer_set(loop, &t, 100, timer_cb, &c);
	CHECK(ev_loop_run(loop) == 0, "run through EINTR");
	CHECK(alarmed && n == 1, "interrupted, then the timer fired");
	sa.sa_handler = SIG_DFL;
	(void)sigaction(SIGALRM, &sa, NULL);
	ev_loop_free(loop);
}

static void
breaker_cb(void *arg)
{
	ev_loop_break(arg);
}

static void
test_break(void)
{
	struct ev_loop	*loop;
	struct ev_timer	 t;
	struct fdctx	 c;
	int		 p[2];

	loop = ev_loop_new();
	CHECK(pipe(p) == 0, "pipe");
	memset(&c, 0, sizeof(c));
	c.loop = loop;
	/* Never readable: only the break ends this run. */
	CHECK(ev_add(loop, p[0], EV_READ, hup_cb, &c) == 0, "add");
	memset(&t, 0, sizeof(t));
	ev_timer_set(loop, &t, 10, breaker_cb, loop);
	CHECK(ev_loop_run(loop) == 0, "run ends on ev_loop_break");
	CHECK(c.calls == 0, "idle fd not called");
	CHECK(ev_del(loop, p[0]) == 0, "ev_del outside the loop");
	close(p[0]);
	close(p[1]);
	ev_loop_free(loop);
}

int
main(void)
{
	test_read();
	test_write_mod();
	test_hangup();
	test_delete_other();
	test_readd();
	test_timers();
	test_timer_cancel_due();
	test_timer_rearm();
	test_signals();
	test_eintr();
	test_break();
	CHECK(io_errors == 0, "no failed read or write in callbacks");
	return test_done();
}
