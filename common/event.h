/*
 * event.h — the event loop: epoll for descriptors, a timer list, and
 * signals through signalfd, all delivered as callbacks with a context
 * pointer.  One loop per process; not thread-safe.
 *
 * Callbacks may add, modify or delete any descriptor or timer,
 * including their own, and may free the context of a descriptor they
 * delete: the loop never touches a deleted registration again.
 */
#ifndef VIRTMAIL_EVENT_H
#define VIRTMAIL_EVENT_H

#include <stdint.h>

#define EV_READ		0x01
#define EV_WRITE	0x02
#define EV_ERROR	0x04	/* reported only: EPOLLERR / EPOLLHUP */

struct ev_loop;

typedef void ev_fd_cb(int fd, int events, void *arg);
typedef void ev_timer_cb(void *arg);
typedef void ev_signal_cb(int signo, void *arg);

struct ev_timer {
	uint64_t	 when;		/* monotonic ms; 0 = not armed */
	ev_timer_cb	*cb;
	void		*arg;
	struct ev_timer	*next;		/* private to the loop */
};

/* A new loop; NULL with errno on failure. */
struct ev_loop *ev_loop_new(void);
void	ev_loop_free(struct ev_loop *loop);
/* Watch fd for events (EV_READ|EV_WRITE); 0 or -1 with errno. */
int	ev_add(struct ev_loop *loop, int fd, int events, ev_fd_cb *cb,
	    void *arg);
/* Change the events watched on fd. */
int	ev_mod(struct ev_loop *loop, int fd, int events);
/* Stop watching fd (does not close it). */
int	ev_del(struct ev_loop *loop, int fd);
/* Arm t to call cb(arg) in ms milliseconds (re-arms if armed). */
void	ev_timer_set(struct ev_loop *loop, struct ev_timer *t, uint64_t ms,
	    ev_timer_cb *cb, void *arg);
/* Disarm t; harmless when not armed. */
void	ev_timer_cancel(struct ev_loop *loop, struct ev_timer *t);
/* Block signo and deliver it through the loop; 0 or -1 with errno. */
int	ev_signal(struct ev_loop *loop, int signo, ev_signal_cb *cb,
	    void *arg);
/* Run until ev_loop_break() or nothing is left to wait for; 0 or -1. */
int	ev_loop_run(struct ev_loop *loop);
void	ev_loop_break(struct ev_loop *loop);
/* Monotonic clock in milliseconds. */
uint64_t ev_now_ms(void);

#endif
