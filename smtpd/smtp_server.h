/*
 * smtp_server.h — the I/O layer of virtmail-smtpd's worker: its
 * connection and server types, private to smtp_server.c and the files
 * it is split into (smtp_commit.c, smtp_tls.c, smtp_hooks.c).
 *
 * Kept apart from smtp_session.h, which the unit tests and the fuzzer
 * include: nothing below the session engine needs OpenSSL, threads or
 * the event loop.
 */
#ifndef VIRTMAIL_SMTP_SERVER_H
#define VIRTMAIL_SMTP_SERVER_H

#include <sys/types.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "event.h"
#include "smtp_session.h"
#include "smtpd.h"

#define SMTP_COMMIT_THREADS	32	/* commits (fsyncs) in flight */

struct server;

/* One SMTP connection: its descriptors, buffers, session and timers. */
struct conn {
	struct server		*srv;
	struct conn		*prev, *next;
	int			 rfd, wfd;
	struct buf		 in, out;
	struct smtp_session	 s;
	struct ev_timer		 timer;
	uint64_t		 armed;		/* the timer's deadline */
	uint64_t		 start;		/* ms */
	uint64_t		 activity;
	uint64_t		 data_start;	/* 0 unless in DATA */
	uint64_t		 close_by;	/* 0 unless closing */
	int			 closing;	/* write out, then close */
	int			 eof;
	int			 counted;	/* in the per-IP count */
	int			 committing;	/* owned by a commit thread */
	struct conn		*cnext;		/* commit queues */
	/* Questions the session asks (SPF, milters): smtp_session.h. */
	struct smtp_hooks	 hooks;
	struct milter_sess	*milter;
	uint32_t		 spf_id;	/* 0: no SPF check out */
	uint32_t		 spf_helo_id;	/* the HELO one (spf_helo) */
	/* TLS: ssl set once the handshake starts. */
	SSL			*ssl;
	int			 tls_hs;	/* handshake under way */
	int			 tls_hs_events;	/* what it waits for */
	int			 rd_want_w;	/* SSL_read wants writable */
	int			 wr_want_r;	/* SSL_write wants readable */
	struct ev_timer		 kick;		/* SSL_pending data left */
	/* AUTH: the question out to the auth service. */
	uint32_t		 auth_id;
	struct ev_timer		 auth_timer;	/* delays a failure */
	struct smtp_answer	 auth_ans;
};

/*
 * The commit pool.  The loop appends to todo and reads done; threads
 * take from todo, run the commit, append to done and wake the loop
 * through the eventfd.  A conn on either list belongs to the pool.
 */
struct commit_pool {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct conn		*todo, **todo_tail;
	struct conn		*done;
	pthread_t		 threads[SMTP_COMMIT_THREADS];
	struct commit_slot {
		struct commit_pool	*pool;
		int			 direct_fd;	/* or -1 */
	}			 slots[SMTP_COMMIT_THREADS];
	size_t			 nthreads;
	unsigned int		 inflight;	/* loop's count */
	int			 efd;
	int			 quit;
};

struct server {
	struct ev_loop		*loop;
	struct smtpd_domain	*sd;
	struct smtp_userdb	 udb;
	const int		*lfds;
	const enum listener_kind *kinds;
	size_t			 nlisten;
	int			 master_fd;
	struct conn		*conns;
	unsigned int		 nconns;
	int			 stopping;
	int			 oneshot;	/* inetd: ends with its session */
	int			 accept_paused;
	struct ev_timer		 grace;
	struct ev_timer		 resume;
	struct commit_pool	 pool;
	struct spf_client	*spf;		/* NULL with spf off */
	struct milter_conf	*mconf;
	size_t			 nmconf;
	int			 auth_fd;	/* the auth service; -1 none */
	uint32_t		 auth_seq;
};

/* smtp_server.c */
void	smtp_conn_close(struct conn *c);
int	smtp_conn_run(struct conn *c);
int	smtp_conn_flush(struct conn *c);
void	smtp_conn_events(struct conn *c);
void	smtp_conn_timer_update(struct conn *c);
void	smtp_conn_set_closing(struct conn *c);
void	smtp_conn_io_cb(int fd, int events, void *arg);

/* smtp_commit.c */
void	smtp_commit_pool_start(struct server *srv);
void	smtp_commit_pool_stop(struct server *srv);
int	smtp_commit_submit(struct conn *c);

/* smtp_tls.c */
ssize_t	smtp_tls_write(struct conn *c);
ssize_t	smtp_tls_read(struct conn *c, char *dst, size_t room);
int	smtp_tls_handshake(struct conn *c);
int	smtp_tls_start(struct conn *c);

/* smtp_hooks.c */
int	smtp_conn_ask(void *arg, struct smtp_session *s, enum smtp_ask what,
	    const char *data, size_t len);
void	smtp_conn_abort(void *arg, struct smtp_session *s);
void	smtp_conn_milter_done(void *arg);
void	smtp_server_auth_cb(int fd, int events, void *arg);
void	smtp_server_filters(struct server *srv);

#endif
