/*
 * smtp_server.c — the I/O layer of a domain's SMTP worker.
 *
 * DESCRIPTION
 *	Accepts connections on the domain's listening sockets (or takes
 *	them from the master over a socketpair in wildcard mode), and
 *	runs every session of the domain in one event loop: reads into a
 *	bounded buffer, feeds the session engine (smtp_session.c), writes
 *	the replies with back-pressure, and enforces the idle timeouts of
 *	RFC 5321 §4.5.3.2 plus deadlines for the whole session and the
 *	whole DATA phase, and the limits on concurrent sessions in total
 *	and per client address.  SIGTERM stops accepting, lets sessions in
 *	a transaction finish it for a short grace period, then says 421.
 *	smtp_server_inetd() runs the same server with no listeners and
 *	one session, the one inetd accepted, and returns when it ends.
 *
 * GROUP COMMIT, TLS, HOOKS
 *	The end of DATA is committed by a pool of threads (smtp_commit.c);
 *	TLS is done below the session engine (smtp_tls.c); the session's
 *	questions go to the auth service, the SPF checker and the milters
 *	(smtp_hooks.c).
 *
 * SECURITY
 *	Runs in the worker, already chrooted into the domain's root and
 *	running as its run_as account; trusts nothing read from the
 *	network.  Memory per session is bounded: the input buffer never
 *	grows past SMTP_SERVER_IN_MAX, and a client that does not read its
 *	replies is not read from either once SMTP_OUT_HIGH bytes wait.
 *	From the master it trusts only what struct smtpd_pass says.
 *	After the 220 to STARTTLS is written, every byte of input already
 *	read is thrown away before the handshake starts (RFC 3207 §6, the
 *	CVE-2011-0411 class): bytes the client pipelined after STARTTLS
 *	either were in that buffer or reach OpenSSL as a broken
 *	ClientHello.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "fdpass.h"
#include "log.h"
#include "queue.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "tls.h"
#include "xmalloc.h"

#define SMTP_SERVER_READ	16384
#define SMTP_SERVER_IN_MAX	(SMTP_FRAGMENT + 2 * SMTP_SERVER_READ)
#define SMTP_SERVER_GRACE_MS	10000	/* SIGTERM: finish transactions */
#define SMTP_SERVER_FLUSH_MS	10000	/* closing: time to take the 421 */
#define SMTP_SERVER_ACCEPT_MAX	64	/* accepts per wakeup */
#define SMTP_TLS_HANDSHAKE_MS	30000	/* a stalled handshake ends here */

/* Used when a timeout in struct smtpd_limits is 0 (seconds). */
#define SMTP_DEF_TIMEOUT_CMD	300	/* RFC 5321 §4.5.3.2.7 */
#define SMTP_DEF_TIMEOUT_BLOCK	180	/* §4.5.3.2.5 */
#define SMTP_DEF_TIMEOUT_SESS	3600
#define SMTP_DEF_TIMEOUT_DATA	1800
#define SMTP_DEF_SESSIONS	1000
#define SMTP_DEF_SESSIONS_IP	20

static unsigned int
lim(unsigned int v, unsigned int def)
{
	return v == 0 ? def : v;
}

static int
set_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return 0;
}

static void
server_maybe_done(struct server *srv)
{
	if ((srv->stopping || srv->oneshot) && srv->nconns == 0)
		ev_loop_break(srv->loop);
}

void
smtp_conn_close(struct conn *c)
{
	struct server	*srv = c->srv;

	log_info("%s smtp disconnect client=%s messages=%u", c->s.id,
	    c->s.client_addr, c->s.nmessages);
	smtp_session_eof(&c->s);
	if (c->spf_id != 0)
		spf_client_cancel(srv->spf, c->spf_id);
	if (c->spf_helo_id != 0)
		spf_client_cancel(srv->spf, c->spf_helo_id);
	milter_sess_free(c->milter);
	c->milter = NULL;
	c->s.hooks = NULL;
	smtp_session_free(&c->s);
	ev_timer_cancel(srv->loop, &c->timer);
	ev_timer_cancel(srv->loop, &c->kick);
	ev_timer_cancel(srv->loop, &c->auth_timer);
	if (c->ssl != NULL) {
		if (!c->tls_hs)
			(void)SSL_shutdown(c->ssl);	/* best effort */
		SSL_free(c->ssl);
		ERR_clear_error();
		c->ssl = NULL;
	}
	(void)ev_del(srv->loop, c->rfd);
	if (close(c->rfd) == -1)
		log_warn("close");
	if (c->wfd != c->rfd) {
		(void)ev_del(srv->loop, c->wfd);
		if (close(c->wfd) == -1)
			log_warn("close");
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->nconns--;
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
	server_maybe_done(srv);
}

/* The earliest deadline of the connection, monotonic ms. */
static uint64_t
conn_deadline(const struct conn *c)
{
	const struct smtpd_limits *l = &c->srv->sd->limits;
	uint64_t	 d, t;

	if (c->closing)
		return c->close_by;
	if (c->tls_hs)
		return c->activity + SMTP_TLS_HANDSHAKE_MS;
	if (c->s.state == SMTP_STATE_DATA)
		d = c->activity + lim(l->timeout_data_block,
		    SMTP_DEF_TIMEOUT_BLOCK) * 1000ULL;
	else
		d = c->activity +
		    lim(l->timeout_cmd, SMTP_DEF_TIMEOUT_CMD) * 1000ULL;
	t = c->start + lim(l->timeout_session, SMTP_DEF_TIMEOUT_SESS) *
	    1000ULL;
	if (t < d)
		d = t;
	if (c->data_start != 0) {
		t = c->data_start + lim(l->timeout_data_total,
		    SMTP_DEF_TIMEOUT_DATA) * 1000ULL;
		if (t < d)
			d = t;
	}
	return d;
}

static void	conn_timer_cb(void *);

/*
 * Arm the timer only when the deadline moved earlier: activity moves it
 * later, and the callback re-arms for the later one when it fires, so
 * a busy session does not touch the sorted timer list on every read.
 */
void
smtp_conn_timer_update(struct conn *c)
{
	uint64_t	 d, now;

	d = conn_deadline(c);
	if (c->armed != 0 && c->armed <= d)
		return;
	now = ev_now_ms();
	c->armed = d;
	ev_timer_set(c->srv->loop, &c->timer, d > now ? d - now : 0,
	    conn_timer_cb, c);
}

static void
conn_timer_cb(void *arg)
{
	struct conn	*c = arg;
	uint64_t	 now = ev_now_ms();

	c->armed = 0;
	if (c->committing) {
		/* The session is the commit thread's; look again later. */
		c->armed = now + 1000;
		ev_timer_set(c->srv->loop, &c->timer, 1000, conn_timer_cb, c);
		return;
	}
	if (now < conn_deadline(c)) {
		smtp_conn_timer_update(c);
		return;
	}
	if (c->closing) {
		/* The client would not take its last reply. */
		smtp_conn_close(c);
		return;
	}
	if (c->tls_hs) {
		log_info("%s smtp tls handshake timeout client=%s", c->s.id,
		    c->s.client_addr);
		smtp_conn_close(c);
		return;
	}
	smtp_session_timeout(&c->s);
	(void)smtp_conn_run(c);
}

void
smtp_conn_set_closing(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->close_by = ev_now_ms() + SMTP_SERVER_FLUSH_MS;
	c->armed = 0;
	ev_timer_cancel(c->srv->loop, &c->timer);
}

/* Which events the connection waits for now. */
void
smtp_conn_events(struct conn *c)
{
	int	 r, w;

	r = !c->closing && !c->eof && c->in.len < SMTP_SERVER_IN_MAX &&
	    c->out.len <= SMTP_OUT_HIGH && !c->s.tls_start;
	w = c->out.len > 0;
	if (c->ssl != NULL) {
		r = r || c->wr_want_r;
		w = w || c->rd_want_w;
		if (c->tls_hs) {
			r = (c->tls_hs_events & EV_READ) != 0;
			w = (c->tls_hs_events & EV_WRITE) != 0;
		}
	}
	if (c->rfd == c->wfd) {
		if (ev_mod(c->srv->loop, c->rfd,
		    (r ? EV_READ : 0) | (w ? EV_WRITE : 0)) == -1)
			log_warn("ev_mod");
		return;
	}
	if (ev_mod(c->srv->loop, c->rfd, r ? EV_READ : 0) == -1 ||
	    ev_mod(c->srv->loop, c->wfd, w ? EV_WRITE : 0) == -1)
		log_warn("ev_mod");
}

/* Write what can be written; -1 when the connection was closed. */
int
smtp_conn_flush(struct conn *c)
{
	ssize_t	 n;

	while (c->out.len > 0) {
		if (c->ssl != NULL) {
			if ((n = smtp_tls_write(c)) == -2)
				return 0;
			if (n == -1) {
				smtp_conn_close(c);
				return -1;
			}
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		n = write(c->wfd, c->out.data, c->out.len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			log_debug("%s write: %s", c->s.id, strerror(errno));
			smtp_conn_close(c);
			return -1;
		}
		buf_consume(&c->out, (size_t)n);
	}
	if (c->closing) {
		smtp_conn_close(c);
		return -1;
	}
	return 0;
}

/* Feed the input to the session until it can go no further. */
static void
conn_feed(struct conn *c)
{
	struct server	*srv = c->srv;
	enum smtp_action act;

	for (;;) {
		act = smtp_session_input(&c->s, &c->in);
		if (act != SMTP_ACT_COMMIT)
			break;
		/* The user database is the loop's: look up here. */
		smtp_direct_plan(&c->s);
		if (smtp_commit_submit(c) == 0)
			return;		/* resumes in commit_done_cb() */
		smtp_session_commit(&c->s);
	}
	if (c->s.state == SMTP_STATE_DATA) {
		if (c->data_start == 0)
			c->data_start = ev_now_ms();
	} else
		c->data_start = 0;
	if (act == SMTP_ACT_CONTINUE && c->eof) {
		/* Half-closed: what was complete is answered, the rest
		 * (a message without its end) is dropped. */
		smtp_session_eof(&c->s);
		act = SMTP_ACT_CLOSE;
	}
	if (act == SMTP_ACT_CONTINUE && srv->stopping &&
	    !smtp_session_busy(&c->s)) {
		smtp_session_shutdown(&c->s);
		act = SMTP_ACT_CLOSE;
	}
	if (act == SMTP_ACT_CLOSE)
		smtp_conn_set_closing(c);
}

static void	conn_kick_cb(void *);

/* Feed, write, repeat while that makes progress; -1 when closed. */
int
smtp_conn_run(struct conn *c)
{
	size_t	 before;

	if (c->committing)
		return 0;
	for (;;) {
		before = c->in.len;
		if (!c->closing)
			conn_feed(c);
		if (c->committing)
			return 0;
		if (smtp_conn_flush(c) == -1)
			return -1;
		if (c->closing || c->in.len == 0 || c->in.len == before ||
		    c->out.len > 0)
			break;
	}
	if (c->s.tls_start && c->ssl == NULL && c->out.len == 0 &&
	    !c->closing) {
		/* RFC 3207 §6: nothing read in the clear survives. */
		buf_reset(&c->in);
		return smtp_tls_start(c);
	}
	smtp_conn_events(c);
	smtp_conn_timer_update(c);
	/* Decrypted bytes OpenSSL holds wake no epoll: come back for them. */
	if (c->ssl != NULL && !c->tls_hs && SSL_pending(c->ssl) > 0 &&
	    !c->eof && !c->closing && c->in.len < SMTP_SERVER_IN_MAX)
		ev_timer_set(c->srv->loop, &c->kick, 0, conn_kick_cb, c);
	return 0;
}

static void
conn_read(struct conn *c)
{
	ssize_t	 n;
	size_t	 room;

	if (c->committing || c->in.len >= SMTP_SERVER_IN_MAX)
		return;
	room = SMTP_SERVER_IN_MAX - c->in.len;
	if (room > SMTP_SERVER_READ)
		room = SMTP_SERVER_READ;
	if (buf_reserve(&c->in, room) == -1) {
		log_warn("%s input buffer", c->s.id);
		smtp_conn_close(c);
		return;
	}
	if (c->ssl != NULL) {
		n = smtp_tls_read(c, c->in.data + c->in.len, room);
		if (n == -2) {
			smtp_conn_events(c);
			return;
		}
		if (n == -1) {
			smtp_conn_close(c);
			return;
		}
	} else
		n = read(c->rfd, c->in.data + c->in.len, room);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		log_debug("%s read: %s", c->s.id, strerror(errno));
		smtp_conn_close(c);
		return;
	}
	if (n == 0)
		c->eof = 1;
	else {
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		c->activity = ev_now_ms();
	}
	(void)smtp_conn_run(c);
}

static void
conn_kick_cb(void *arg)
{
	conn_read(arg);
}

void
smtp_conn_io_cb(int fd, int events, void *arg)
{
	struct conn	*c = arg;

	if (c->ssl != NULL) {
		(void)fd;
		(void)events;
		if (c->tls_hs) {
			(void)smtp_tls_handshake(c);
			return;
		}
		/* Either direction may be what OpenSSL was waiting for. */
		if (smtp_conn_run(c) == -1)
			return;
		conn_read(c);
		return;
	}
	if (fd == c->wfd && (events & (EV_WRITE | EV_ERROR))) {
		if (smtp_conn_run(c) == -1)
			return;
	}
	if (fd == c->rfd && (events & (EV_READ | EV_ERROR)))
		conn_read(c);
}

static unsigned int
server_count_ip(const struct server *srv, const char *ip)
{
	const struct conn	*c;
	unsigned int		 n = 0;

	if (ip[0] == '\0')
		return 0;
	for (c = srv->conns; c != NULL; c = c->next)
		if (c->counted && strcmp(c->s.client_addr, ip) == 0)
			n++;
	return n;
}

/* The local address that accepted fd, for filters ({if_addr}). */
static void
smtp_conn_local_addr(struct smtp_session *s, int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    domain_addr_text((struct sockaddr *)&ss, s->local_addr,
	    sizeof(s->local_addr)) == NULL)
		s->local_addr[0] = '\0';
}

/* A new session on fds rfd/wfd (the same for a socket). */
static void
conn_new(struct server *srv, int rfd, int wfd, enum listener_kind kind)
{
	const struct smtpd_limits *l = &srv->sd->limits;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	struct conn		*c;
	int			 refuse = 0;

	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->rfd = rfd;
	c->wfd = wfd;
	buf_init(&c->in, SMTP_SERVER_IN_MAX);
	buf_init(&c->out, 0);
	if (getpeername(rfd, (struct sockaddr *)&ss, &sslen) == -1)
		sslen = 0;
	smtp_session_init(&c->s, srv->sd, &srv->udb, kind,
	    sslen > 0 ? (struct sockaddr *)&ss : NULL, sslen, &c->out);
	smtp_conn_local_addr(&c->s, rfd);
	c->start = c->activity = ev_now_ms();
	/* Always: AUTH asks through the hooks too. */
	c->hooks.ask = smtp_conn_ask;
	c->hooks.abort = smtp_conn_abort;
	c->hooks.arg = c;
	c->hooks.milters = srv->nmconf > 0;
	c->s.hooks = &c->hooks;
	if (srv->nmconf > 0)
		c->milter = milter_sess_new(srv->loop, srv->mconf,
		    srv->nmconf, &c->s, smtp_conn_milter_done, c);
	c->s.tls_available = srv->sd->tls != NULL && kind != LISTEN_SMTPS;

	if (srv->nconns >= lim(l->sessions_max, SMTP_DEF_SESSIONS) ||
	    server_count_ip(srv, c->s.client_addr) >=
	    lim(l->sessions_per_ip_max, SMTP_DEF_SESSIONS_IP)) {
		log_info("%s smtp refused client=%s reason=too_many_sessions",
		    c->s.id, c->s.client_addr);
		refuse = 1;
	} else
		c->counted = 1;

	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;

	if (ev_add(srv->loop, rfd, 0, smtp_conn_io_cb, c) == -1 ||
	    (wfd != rfd &&
	    ev_add(srv->loop, wfd, 0, smtp_conn_io_cb, c) == -1)) {
		log_warn("ev_add");
		smtp_conn_close(c);
		return;
	}
	if (!refuse)
		log_info("%s smtp connect client=%s", c->s.id,
		    c->s.client_addr);
	if (kind == LISTEN_SMTPS && (refuse || srv->sd->tls == NULL)) {
		/* No plaintext reply on a TLS port. */
		if (srv->sd->tls == NULL)
			log_warnx("%s smtp smtps connection but no "
			    "certificate configured", c->s.id);
		smtp_conn_close(c);
		return;
	}
	if (kind == LISTEN_SMTPS) {
		/* RFC 8314 §3.3: the greeting comes after the handshake. */
		(void)smtp_tls_start(c);
		return;
	}
	if (refuse) {
		smtp_session_refuse(&c->s);
		smtp_conn_set_closing(c);
	} else if (srv->stopping) {
		smtp_session_shutdown(&c->s);
		smtp_conn_set_closing(c);
	} else
		smtp_session_greet(&c->s);
	(void)smtp_conn_run(c);
}

static void	server_listen(struct server *, int);

/*
 * Each session holds a descriptor: raise the soft RLIMIT_NOFILE to fit
 * max_sessions of them, the commit threads' queue files and direct
 * delivery sockets, the spare queue files (queue.c) and a margin.
 * Only the hard limit (set by whoever starts the master) bounds it;
 * below it we log how many sessions can be served.
 */
static void
server_raise_nofile(const struct smtpd_limits *l)
{
	struct rlimit	 rl;
	rlim_t		 want;

	want = (rlim_t)lim(l->sessions_max, SMTP_DEF_SESSIONS) +
	    4 * SMTP_COMMIT_THREADS + 128;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit");
		return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
		return;
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		log_warnx("max_sessions needs %llu descriptors, the hard "
		    "limit is %llu", (unsigned long long)want,
		    (unsigned long long)rl.rlim_max);
		want = rl.rlim_max;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit RLIMIT_NOFILE");
}

static void
server_resume_cb(void *arg)
{
	struct server	*srv = arg;

	srv->accept_paused = 0;
	if (!srv->stopping)
		server_listen(srv, 1);
}

static void
server_accept_cb(int fd, int events, void *arg)
{
	struct server	*srv = arg;
	size_t		 i, k;
	int		 cfd;

	(void)events;
	for (k = 0; k < srv->nlisten; k++)
		if (srv->lfds[k] == fd)
			break;
	if (k == srv->nlisten)
		return;
	for (i = 0; i < SMTP_SERVER_ACCEPT_MAX && !srv->stopping; i++) {
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: back off a second
				 * instead of spinning on a ready socket. */
				log_warn("accept");
				server_listen(srv, 0);
				srv->accept_paused = 1;
				ev_timer_set(srv->loop, &srv->resume, 1000,
				    server_resume_cb, srv);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept");
			return;
		}
		conn_new(srv, cfd, cfd, srv->kinds[k]);
	}
}

static void
server_listen(struct server *srv, int on)
{
	size_t	 i;

	for (i = 0; i < srv->nlisten; i++)
		if (ev_mod(srv->loop, srv->lfds[i], on ? EV_READ : 0) == -1)
			log_warn("ev_mod listener");
}

static void	server_stop(struct server *);

static void
server_master_cb(int fd, int events, void *arg)
{
	struct server		*srv = arg;
	struct smtpd_pass	 pass;
	ssize_t			 n;
	int			 cfd = -1;

	(void)events;
	memset(&pass, 0, sizeof(pass));
	n = fdpass_recv(fd, &cfd, &pass, sizeof(pass));
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		log_warn("receiving from the master");
		server_stop(srv);
		return;
	}
	if (n == 0) {
		log_info("master closed the channel, shutting down");
		server_stop(srv);
		return;
	}
	if (cfd == -1)
		return;
	/* The master is more privileged, but check what we rely on. */
	if ((size_t)n != sizeof(pass) || pass.kind < LISTEN_SMTP ||
	    pass.kind > LISTEN_SMTPS) {
		log_warnx("bad connection message from the master");
		(void)close(cfd);
		return;
	}
	if (set_nonblock(cfd) == -1) {
		log_warn("O_NONBLOCK");
		(void)close(cfd);
		return;
	}
	if (srv->stopping) {
		(void)close(cfd);
		return;
	}
	conn_new(srv, cfd, cfd, (enum listener_kind)pass.kind);
}

/* After the grace period: 421 to everyone still here, then exit. */
static void
server_grace_cb(void *arg)
{
	struct server	*srv = arg;
	struct conn	*c, *next;

	for (c = srv->conns; c != NULL; c = next) {
		next = c->next;
		if (c->committing)
			continue;	/* smtp_commit_pool_stop() closes it */
		if (!c->closing) {
			smtp_session_shutdown(&c->s);
			smtp_conn_set_closing(c);
		}
		/* One try to deliver the 421, then close regardless. */
		if (smtp_conn_flush(c) == 0)
			smtp_conn_close(c);
	}
	ev_loop_break(srv->loop);
}

static void
server_stop(struct server *srv)
{
	struct conn	*c, *next;
	size_t		 i;

	if (srv->stopping)
		return;
	srv->stopping = 1;
	for (i = 0; i < srv->nlisten; i++) {
		(void)ev_del(srv->loop, srv->lfds[i]);
		if (close(srv->lfds[i]) == -1)
			log_warn("close listener");
	}
	srv->nlisten = 0;
	if (srv->accept_paused)
		ev_timer_cancel(srv->loop, &srv->resume);
	if (srv->master_fd != -1) {
		(void)ev_del(srv->loop, srv->master_fd);
		(void)close(srv->master_fd);
		srv->master_fd = -1;
	}
	/* Idle sessions go now; a transaction may finish first. */
	for (c = srv->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->closing && !c->committing &&
		    !smtp_session_busy(&c->s)) {
			smtp_session_shutdown(&c->s);
			smtp_conn_set_closing(c);
			(void)smtp_conn_run(c);
		}
	}
	ev_timer_set(srv->loop, &srv->grace, SMTP_SERVER_GRACE_MS,
	    server_grace_cb, srv);
	server_maybe_done(srv);
}

static void
server_signal_cb(int signo, void *arg)
{
	struct server	*srv = arg;

	if (signo == SIGHUP)
		return;		/* the master reloads; users re-read by mtime */
	if (srv->stopping) {
		server_grace_cb(srv);
		return;
	}
	log_info("shutting down (signal %d), %u sessions", signo,
	    srv->nconns);
	server_stop(srv);
}

/*
 * The server of both modes.  The worker passes its listeners and the
 * master's channel; inetd mode passes none of them and the one session
 * it was started for on rfd/wfd (-1 otherwise), and the loop ends with
 * that session.
 */
static void
server_main(struct smtpd_domain *sd, const int *listen_fds,
    const enum listener_kind *kinds, size_t nlisten, int master_fd,
    int rfd, int wfd, enum listener_kind kind)
{
	struct server	 srv;
	const char	*error;
	size_t		 i;

	memset(&srv, 0, sizeof(srv));
	srv.sd = sd;
	srv.lfds = listen_fds;
	srv.kinds = kinds;
	srv.nlisten = nlisten;
	srv.master_fd = master_fd;
	srv.auth_fd = sd->auth_fd;
	srv.oneshot = rfd != -1;
	smtp_userdb_init(&srv.udb);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal");
	if ((srv.loop = ev_loop_new()) == NULL)
		fatal("ev_loop_new");
	if (queue_init(QUEUE_DIR, &error) == -1)
		log_warnx("queue %s: %s", QUEUE_DIR, error);
	if (ev_signal(srv.loop, SIGTERM, server_signal_cb, &srv) == -1 ||
	    ev_signal(srv.loop, SIGINT, server_signal_cb, &srv) == -1 ||
	    ev_signal(srv.loop, SIGHUP, server_signal_cb, &srv) == -1)
		fatal("ev_signal");
	smtp_server_filters(&srv);
	smtp_commit_pool_start(&srv);
	if (!srv.oneshot)
		server_raise_nofile(&sd->limits);
	for (i = 0; i < nlisten; i++) {
		if (set_nonblock(listen_fds[i]) == -1)
			fatal("O_NONBLOCK");
		if (ev_add(srv.loop, listen_fds[i], EV_READ, server_accept_cb,
		    &srv) == -1)
			fatal("ev_add listener");
	}
	if (srv.auth_fd > 0 && ev_add(srv.loop, srv.auth_fd, EV_READ,
	    smtp_server_auth_cb, &srv) == -1)
		fatal("ev_add auth");
	if (master_fd != -1) {
		if (set_nonblock(master_fd) == -1)
			fatal("O_NONBLOCK");
		if (ev_add(srv.loop, master_fd, EV_READ, server_master_cb,
		    &srv) == -1)
			fatal("ev_add master");
	}
	if (srv.oneshot) {
		if (set_nonblock(rfd) == -1 ||
		    (wfd != rfd && set_nonblock(wfd) == -1))
			fatal("O_NONBLOCK");
		conn_new(&srv, rfd, wfd, kind);
	} else
		log_info("smtp worker ready listeners=%zu", nlisten);
	/* An inetd session may have ended in conn_new() already. */
	if ((!srv.oneshot || srv.nconns > 0) && ev_loop_run(srv.loop) == -1)
		log_warn("event loop");
	smtp_commit_pool_stop(&srv);
	while (srv.conns != NULL)
		smtp_conn_close(srv.conns);
	spf_client_free(srv.spf);
	free(srv.mconf);
	smtp_userdb_free(&srv.udb);
	ev_loop_free(srv.loop);
}

void
smtp_server_run(struct smtpd_domain *sd, const int *listen_fds,
    const enum listener_kind *kinds, size_t nlisten, int master_fd)
{
	server_main(sd, listen_fds, kinds, nlisten, master_fd, -1, -1,
	    LISTEN_SMTP);
}

/*
 * Inetd mode: the one session the process was started for, in the
 * same server as the worker's (TLS, AUTH, SPF, milters).  in must be a
 * socket; out may be another descriptor epoll takes (a socket or a
 * pipe, not a regular file).
 */
void
smtp_server_inetd(struct smtpd_domain *sd, int in, int out,
    enum listener_kind kind)
{
	server_main(sd, NULL, NULL, 0, -1, in, out, kind);
}
