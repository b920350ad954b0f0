/*
 * smtp_commit.c — the commit thread pool of the SMTP worker (group
 * commit).
 *
 * DESCRIPTION
 *	A session that reaches the end of its DATA is handed to a small
 *	pool of threads that run smtp_session_commit() (delivery to plain
 *	local users through the thread's own socket to the worker's
 *	deliverer, smtp_direct.c, and the queue writes and their fsyncs,
 *	then the 250 or 4xx appended to the session's output).  Meanwhile the event loop serves everyone else and does
 *	not touch that session at all: its descriptor is out of the epoll
 *	set, its timer only re-arms, nothing of its output is written.
 *	Only when the thread is done does the loop flush the output, so
 *	no 250 leaves before queue_writer_commit() has returned, i.e.
 *	before the message and envelope files and their directories are
 *	fsynced.  Sessions that commit at the same time fsync at the same
 *	time, and the file system merges those into one journal commit
 *	(ext4/jbd2): that is the batching, with the durability argument
 *	of queue.c unchanged.  See docs/performance.md.
 *
 * SECURITY
 *	Runs in the worker, already chrooted into the domain's root and
 *	running as its run_as account; reads nothing from the network.
 *	A thread touches only the conn it took from the pool (its session
 *	and output buffer), the queue files and the log; the pool's lists
 *	are under its mutex, and a broken lock or thread call is fatal.
 */
#include <sys/eventfd.h>
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "smtp_server.h"
#include "smtp_session.h"

#define SMTP_COMMIT_STACK	(256 * 1024)

/* master.c starts one deliverer socket per thread. */
_Static_assert(SMTPD_DIRECT_MAX == SMTP_COMMIT_THREADS,
    "one direct delivery socket per commit thread");

static void
commit_lock(struct commit_pool *p)
{
	int	 r;

	if ((r = pthread_mutex_lock(&p->mu)) != 0) {
		errno = r;
		fatal("pthread_mutex_lock");
	}
}

static void
commit_unlock(struct commit_pool *p)
{
	int	 r;

	if ((r = pthread_mutex_unlock(&p->mu)) != 0) {
		errno = r;
		fatal("pthread_mutex_unlock");
	}
}

/*
 * A commit thread.  It touches nothing but the conn it took from todo
 * (its session and output buffer, which the loop leaves alone until
 * the conn is back on done), the queue files and the log.
 */
static void *
commit_thread(void *arg)
{
	struct commit_slot	*slot = arg;
	struct commit_pool	*p = slot->pool;
	struct conn		*c;
	uint64_t		 one = 1;
	ssize_t			 n;
	int			 r;

	for (;;) {
		commit_lock(p);
		while (p->todo == NULL && !p->quit) {
			if ((r = pthread_cond_wait(&p->cv, &p->mu)) != 0) {
				errno = r;
				fatal("pthread_cond_wait");
			}
		}
		if ((c = p->todo) == NULL) {
			commit_unlock(p);
			return NULL;
		}
		if ((p->todo = c->cnext) == NULL)
			p->todo_tail = &p->todo;
		commit_unlock(p);

		/* Returns once the message is durable, or failed. */
		c->s.direct_fd = slot->direct_fd;
		smtp_session_commit(&c->s);
		if (c->s.direct_fd == -1 && slot->direct_fd != -1) {
			/* Lost (smtp_direct.c): queue from now on. */
			(void)close(slot->direct_fd);
			slot->direct_fd = -1;
		}
		c->s.direct_fd = -1;

		commit_lock(p);
		c->cnext = p->done;
		p->done = c;
		commit_unlock(p);
		do {
			n = write(p->efd, &one, sizeof(one));
		} while (n == -1 && errno == EINTR);
		/* EAGAIN: the counter is saturated, the loop is woken. */
		if (n == -1 && errno != EAGAIN)
			fatal("commit: eventfd");
	}
}

/*
 * Hand c to a commit thread.  -1 when there is no pool: the caller
 * commits synchronously.
 */
int
smtp_commit_submit(struct conn *c)
{
	struct server		*srv = c->srv;
	struct commit_pool	*p = &srv->pool;
	int			 r;

	if (p->nthreads == 0)
		return -1;
	/* Out of epoll: a hang-up must not spin the loop meanwhile. */
	(void)ev_del(srv->loop, c->rfd);
	if (c->wfd != c->rfd)
		(void)ev_del(srv->loop, c->wfd);
	c->committing = 1;
	c->cnext = NULL;
	p->inflight++;
	commit_lock(p);
	*p->todo_tail = c;
	p->todo_tail = &c->cnext;
	if ((r = pthread_cond_signal(&p->cv)) != 0) {
		errno = r;
		fatal("pthread_cond_signal");
	}
	commit_unlock(p);
	return 0;
}

/* Take back the conns whose commit is done; NULL when none. */
static struct conn *
commit_take_done(struct commit_pool *p)
{
	struct conn	*list;

	commit_lock(p);
	list = p->done;
	p->done = NULL;
	commit_unlock(p);
	return list;
}

static void
commit_done_cb(int fd, int events, void *arg)
{
	struct server	*srv = arg;
	struct conn	*c, *next;
	uint64_t	 v;

	(void)events;
	if (read(fd, &v, sizeof(v)) == -1 && errno != EAGAIN &&
	    errno != EINTR)
		log_warn("commit: eventfd");
	for (c = commit_take_done(&srv->pool); c != NULL; c = next) {
		next = c->cnext;
		c->cnext = NULL;
		c->committing = 0;
		srv->pool.inflight--;
		if (ev_add(srv->loop, c->rfd, 0, smtp_conn_io_cb, c) == -1 ||
		    (c->wfd != c->rfd && ev_add(srv->loop, c->wfd, 0,
		    smtp_conn_io_cb, c) == -1)) {
			log_warn("ev_add");
			smtp_conn_close(c);
			continue;
		}
		/* The 250 (or 4xx) goes out now, then pipelined input. */
		(void)smtp_conn_run(c);
	}
}

void
smtp_commit_pool_start(struct server *srv)
{
	struct commit_pool	*p = &srv->pool;
	pthread_attr_t		 attr;
	size_t			 i;
	int			 r;

	p->todo = NULL;
	p->todo_tail = &p->todo;
	p->efd = -1;
	if ((r = pthread_mutex_init(&p->mu, NULL)) != 0 ||
	    (r = pthread_cond_init(&p->cv, NULL)) != 0) {
		errno = r;
		fatal("commit pool");
	}
	if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    ev_add(srv->loop, p->efd, EV_READ, commit_done_cb, srv) == -1) {
		log_warn("commit pool: eventfd; committing synchronously");
		if (p->efd != -1)
			(void)close(p->efd);
		p->efd = -1;
		return;
	}
	if ((r = pthread_attr_init(&attr)) != 0 ||
	    (r = pthread_attr_setstacksize(&attr, SMTP_COMMIT_STACK)) != 0) {
		errno = r;
		fatal("commit pool: thread attributes");
	}
	/* Signals stay blocked in the threads (ev_signal blocked them). */
	/* One session (inetd) commits one message at a time. */
	for (i = 0; i < (srv->oneshot ? 1 : SMTP_COMMIT_THREADS); i++) {
		p->slots[i].pool = p;
		p->slots[i].direct_fd = i < srv->sd->ndirect_fds ?
		    srv->sd->direct_fds[i] : -1;
		if ((r = pthread_create(&p->threads[i], &attr, commit_thread,
		    &p->slots[i])) != 0) {
			errno = r;
			log_warn("commit pool: %zu threads", i);
			break;
		}
		p->nthreads++;
	}
	(void)pthread_attr_destroy(&attr);
}

/* Let the threads finish what they have, then join them. */
void
smtp_commit_pool_stop(struct server *srv)
{
	struct commit_pool	*p = &srv->pool;
	struct conn		*c, *next;
	size_t			 i;
	int			 r;

	commit_lock(p);
	p->quit = 1;
	if ((r = pthread_cond_broadcast(&p->cv)) != 0) {
		errno = r;
		fatal("pthread_cond_broadcast");
	}
	commit_unlock(p);
	for (i = 0; i < p->nthreads; i++)
		if ((r = pthread_join(p->threads[i], NULL)) != 0) {
			errno = r;
			fatal("pthread_join");
		}
	p->nthreads = 0;
	for (c = commit_take_done(p); c != NULL; c = next) {
		next = c->cnext;
		c->cnext = NULL;
		c->committing = 0;
		p->inflight--;
		/* One try to hand over the 250, then close regardless. */
		smtp_conn_set_closing(c);
		if (smtp_conn_flush(c) == 0)
			smtp_conn_close(c);
	}
	if (p->efd != -1) {
		(void)ev_del(srv->loop, p->efd);
		(void)close(p->efd);
		p->efd = -1;
	}
	(void)pthread_cond_destroy(&p->cv);
	(void)pthread_mutex_destroy(&p->mu);
}
