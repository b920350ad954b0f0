/*
 * mta.c — remote delivery in the domain's queue runner: next hops,
 * the connection from the domain's own address, loops, concurrency
 * and timeouts around the protocol engine in mta_session.c.
 *
 * WHO RUNS IT
 *	The domain's queue runner, chrooted into the domain's root as its
 *	run_as account.  It trusts the runner's jobs; DNS answers and
 *	server replies are untrusted (dns.c, mta_session.c).
 *
 * NEXT HOP (RFC 5321 §5.1)
 *	A "route DOMAIN [IP]:PORT" line of the domain (exact domain
 *	first, then "*") replaces DNS.  Otherwise the MX records in
 *	preference order (equal ones shuffled), each exchanger's AAAA
 *	then A addresses; without MX the domain's own AAAA/A; a null MX
 *	(RFC 7505) bounces at once with 5.1.10.
 *
 * SOURCE ADDRESS AND LOOPS
 *	Every connection binds the domain's first address of the
 *	destination's family; a destination of a family the domain has
 *	no address of is skipped.  A next hop that is one of the domain's
 *	own addresses (on port_smtp) is a loop: it and every exchanger
 *	with the same or a worse preference are dropped (§5.1); when
 *	nothing is left the recipients bounce with "mail for DOMAIN loops
 *	back to myself" (5.4.6).  A sibling domain's address is not ours:
 *	that is how mail between domains of one host travels.
 *
 * CONCURRENCY
 *	At most MTA_PARALLEL sessions per runner and MTA_PER_DEST per
 *	destination domain; further jobs wait in order.  DNS runs on the
 *	resolver threads; sockets are non-blocking in the runner's event
 *	loop, with a timeout per step (MTA_TIMEOUT_*).
 *
 * FAILURES
 *	A connection that fails before any recipient got an answer
 *	(refused, unreachable, timeout, a greeting or HELO refusal) moves
 *	on to the next address; when all are used up the recipients are
 *	deferred with the last error.  Once the server answered for a
 *	recipient, that answer stands: 2xx after the final dot delivered,
 *	4xx deferred, 5xx bounced.  A connection lost after the final dot
 *	and before its reply is deferred, and may cause a duplicate at
 *	the peer (RFC 1047); nothing better is possible in SMTP.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "log.h"
#include "queue.h"
#include "smtpd.h"
#include "xmalloc.h"

struct mta_conn {
	TAILQ_ENTRY(mta_conn)	 entry;
	struct mta_job		*job;
	struct dns_req		 req;		/* hops live in req.res */
	size_t			 cur;		/* next hop to try */
	int			 port;
	int			 routed;
	int			 started;
	int			 fd, msgfd;
	int			 in_session;
	struct mta_session	 s;
	struct ev_timer		 timer;
	char			 last_error[MTA_REPLY_MAX];
	int			 last_status;	/* for the last error */
	char			 last_dsn[16];
};

TAILQ_HEAD(mta_conn_list, mta_conn);

static struct {
	struct ev_loop			*loop;
	const struct smtpd_domain	*sd;
	const struct smtpd_conf		*conf;
	struct mta_conn_list		 waiting, running;
	size_t				 nrunning;
	struct ev_timer			 kick;
} M;

static void	mta_next_hop(struct mta_conn *c);
static void	mta_dispatch(void *arg);

void
mta_init(struct ev_loop *loop, const struct smtpd_domain *sd,
    const struct smtpd_conf *c)
{
	memset(&M, 0, sizeof(M));
	M.loop = loop;
	M.sd = sd;
	M.conf = c;
	TAILQ_INIT(&M.waiting);
	TAILQ_INIT(&M.running);
	if (dns_async_init(loop) == -1)
		fatal("mta: resolver threads");
}

size_t
mta_active(void)
{
	return M.nrunning;
}

void
mta_submit(struct mta_job *job)
{
	struct mta_conn	*c;
	size_t		 i;

	c = xcalloc(1, sizeof(*c));
	c->job = job;
	c->fd = c->msgfd = -1;
	c->last_status = DELIVER_TEMPFAIL;
	(void)strlcpy(c->last_dsn, "4.4.1", sizeof(c->last_dsn));
	(void)strlcpy(c->last_error, "no connection attempted",
	    sizeof(c->last_error));
	for (i = 0; i < job->nrcpts; i++) {
		job->rcpts[i].status = -1;
		job->rcpts[i].accepted = 0;
		job->rcpts[i].dsn[0] = job->rcpts[i].reply[0] = '\0';
	}
	(void)strlcpy(job->relay, "none", sizeof(job->relay));
	job->rmta[0] = '\0';
	job->priv = c;
	TAILQ_INSERT_TAIL(&M.waiting, c, entry);
	ev_timer_set(M.loop, &M.kick, 0, mta_dispatch, NULL);
}

static size_t
mta_dest_count(const char *domain)
{
	struct mta_conn	*c;
	size_t		 n = 0;

	TAILQ_FOREACH(c, &M.running, entry)
		if (strcmp(c->job->domain, domain) == 0)
			n++;
	return n;
}

/* Every rcpt still open gets status, dsn, text. */
static void
mta_fill(struct mta_job *job, int status, const char *dsn, const char *text)
{
	size_t	 i;

	for (i = 0; i < job->nrcpts; i++) {
		if (job->rcpts[i].status != -1)
			continue;
		job->rcpts[i].status = status;
		(void)strlcpy(job->rcpts[i].dsn, dsn,
		    sizeof(job->rcpts[i].dsn));
		(void)strlcpy(job->rcpts[i].reply, text,
		    sizeof(job->rcpts[i].reply));
	}
}

static void
mta_finish(struct mta_conn *c)
{
	struct mta_job	*job = c->job;

	ev_timer_cancel(M.loop, &c->timer);
	if (c->fd != -1) {
		(void)ev_del(M.loop, c->fd);
		(void)close(c->fd);
	}
	if (c->msgfd != -1)
		(void)close(c->msgfd);
	if (c->in_session)
		mta_session_free(&c->s);
	mta_fill(job, c->last_status, c->last_dsn, c->last_error);
	TAILQ_REMOVE(&M.running, c, entry);
	M.nrunning--;
	free(c);
	job->priv = NULL;
	job->done(job, job->arg);
	ev_timer_set(M.loop, &M.kick, 0, mta_dispatch, NULL);
}

static void
mta_fail_all(struct mta_conn *c, int status, const char *dsn,
    const char *text)
{
	c->last_status = status;
	(void)strlcpy(c->last_dsn, dsn, sizeof(c->last_dsn));
	(void)strlcpy(c->last_error, text, sizeof(c->last_error));
	mta_finish(c);
}

static int
mta_addr_equal(const struct domain_addr *a, const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin = (const void *)sa;
	const struct sockaddr_in6	*sin6 = (const void *)sa;

	if (a->family != sa->sa_family)
		return 0;
	if (a->family == AF_INET)
		return memcmp(&a->a.v4, &sin->sin_addr, 4) == 0;
	return memcmp(&a->a.v6, &sin6->sin6_addr, 16) == 0;
}

static int
mta_is_own(const struct sockaddr *sa)
{
	size_t	 i;

	for (i = 0; i < M.sd->vd->naddrs; i++)
		if (mta_addr_equal(&M.sd->vd->addrs[i], sa))
			return 1;
	return 0;
}

static const struct domain_addr *
mta_source(int family)
{
	size_t	 i;

	for (i = 0; i < M.sd->vd->naddrs; i++)
		if (M.sd->vd->addrs[i].family == family)
			return &M.sd->vd->addrs[i];
	return NULL;
}

/* Drop own addresses (§5.1) and families we cannot send from. */
static void
mta_filter_hops(struct mta_conn *c)
{
	struct dns_result	*res = &c->req.res;
	struct dns_hop		*h;
	size_t			 i, k = 0;
	char			 text[MTA_REPLY_MAX];
	int			 loop = 0, nofamily = 0;

	for (i = 0; i < res->nhops; i++) {
		h = &res->hops[i];
		if (mta_is_own((struct sockaddr *)&h->ss) &&
		    c->port == M.conf->port_smtp) {
			/* This and every worse exchanger are gone. */
			while (k > 0 && !c->routed &&
			    res->hops[k - 1].pref >= h->pref)
				k--;
			loop = 1;
			break;
		}
		if (mta_source(h->ss.ss_family) == NULL) {
			nofamily = 1;
			continue;
		}
		res->hops[k++] = *h;
	}
	res->nhops = k;
	if (k > 0)
		return;
	if (loop) {
		(void)snprintf(text, sizeof(text),
		    "mail for %s loops back to myself", c->job->domain);
		mta_fail_all(c, DELIVER_PERMFAIL, "5.4.6", text);
	} else if (nofamily) {
		(void)snprintf(text, sizeof(text), "no source address of the "
		    "address family of any next hop for %s", c->job->domain);
		mta_fail_all(c, DELIVER_TEMPFAIL, "4.4.4", text);
	} else
		mta_fail_all(c, DELIVER_TEMPFAIL, "4.4.4", "no next hop");
}

static void
mta_on_dns(struct dns_req *req, void *arg)
{
	struct mta_conn	*c = arg;

	(void)req;
	switch (c->req.res.status) {
	case DNS_OK:
		break;
	case DNS_NULLMX:
		mta_fail_all(c, DELIVER_PERMFAIL, "5.1.10", c->req.res.error);
		return;
	case DNS_PERMFAIL:
		mta_fail_all(c, DELIVER_PERMFAIL, "5.1.2", c->req.res.error);
		return;
	case DNS_TEMPFAIL:
		mta_fail_all(c, DELIVER_TEMPFAIL, "4.4.3", c->req.res.error);
		return;
	}
	mta_filter_hops(c);
	if (c->req.res.nhops > 0)
		mta_next_hop(c);
}

static const struct route *
mta_route(const char *domain)
{
	size_t	 i;

	for (i = 0; i < M.sd->nroutes; i++)
		if (strcasecmp(M.sd->routes[i].domain, domain) == 0)
			return &M.sd->routes[i];
	for (i = 0; i < M.sd->nroutes; i++)
		if (strcmp(M.sd->routes[i].domain, "*") == 0)
			return &M.sd->routes[i];
	return NULL;
}

static void
mta_start(struct mta_conn *c)
{
	const struct route	*rt;
	struct dns_hop		*h;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	c->started = 1;
	c->port = M.conf->port_smtp > 0 ? M.conf->port_smtp : 25;
	if ((rt = mta_route(c->job->domain)) == NULL) {
		(void)strlcpy(c->req.domain, c->job->domain,
		    sizeof(c->req.domain));
		c->req.cb = mta_on_dns;
		c->req.arg = c;
		dns_async_submit(&c->req);
		return;
	}
	c->routed = 1;
	c->port = rt->port;
	h = &c->req.res.hops[0];
	memset(h, 0, sizeof(*h));
	(void)strlcpy(h->host, rt->host, sizeof(h->host));
	sin = (struct sockaddr_in *)&h->ss;
	sin6 = (struct sockaddr_in6 *)&h->ss;
	if (inet_pton(AF_INET, rt->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		h->sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, rt->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		h->sslen = sizeof(*sin6);
	} else {
		mta_fail_all(c, DELIVER_TEMPFAIL, "4.3.5", "bad route");
		return;
	}
	c->req.res.nhops = 1;
	mta_filter_hops(c);
	if (c->req.res.nhops > 0)
		mta_next_hop(c);
}

static void
mta_dispatch(void *arg)
{
	struct mta_conn	*c, *next;

	(void)arg;
	for (c = TAILQ_FIRST(&M.waiting); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (M.nrunning >= MTA_PARALLEL)
			return;
		if (mta_dest_count(c->job->domain) >= MTA_PER_DEST)
			continue;
		TAILQ_REMOVE(&M.waiting, c, entry);
		TAILQ_INSERT_TAIL(&M.running, c, entry);
		M.nrunning++;
		mta_start(c);
		/* mta_start may have finished c and changed the lists. */
		next = TAILQ_FIRST(&M.waiting);
	}
}

static void
mta_relay_text(struct mta_conn *c, const struct dns_hop *h)
{
	char	 ip[INET6_ADDRSTRLEN];
	const void *a;

	a = h->ss.ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)&h->ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)&h->ss)->sin6_addr;
	if (inet_ntop(h->ss.ss_family, a, ip, sizeof(ip)) == NULL)
		(void)strlcpy(ip, "?", sizeof(ip));
	(void)snprintf(c->job->relay, sizeof(c->job->relay), "%s[%s]:%d",
	    h->host, ip, c->port);
	/* Remote-MTA: a route names no host, only its address. */
	if (c->routed)
		(void)snprintf(c->job->rmta, sizeof(c->job->rmta), "[%s]",
		    h->host);
	else
		(void)strlcpy(c->job->rmta, h->host, sizeof(c->job->rmta));
}

/* The connection to the current hop is over; what next? */
static void
mta_hop_failed(struct mta_conn *c, const char *why)
{
	char	 text[MTA_REPLY_MAX];

	(void)snprintf(text, sizeof(text), "%s: %s", c->job->relay, why);
	log_info("%s smtp relay=%s failed: %s", c->job->id, c->job->relay,
	    why);
	ev_timer_cancel(M.loop, &c->timer);
	if (c->fd != -1) {
		(void)ev_del(M.loop, c->fd);
		(void)close(c->fd);
		c->fd = -1;
	}
	if (c->msgfd != -1) {
		(void)close(c->msgfd);
		c->msgfd = -1;
	}
	if (c->in_session) {
		mta_session_free(&c->s);
		c->in_session = 0;
	}
	c->last_status = DELIVER_TEMPFAIL;
	(void)strlcpy(c->last_dsn, "4.4.1", sizeof(c->last_dsn));
	(void)strlcpy(c->last_error, text, sizeof(c->last_error));
	mta_next_hop(c);
}

static void	mta_on_io(int fd, int events, void *arg);

static void
mta_on_timeout(void *arg)
{
	struct mta_conn	*c = arg;
	size_t		 i;

	if (!c->in_session) {
		mta_hop_failed(c, "connection timed out");
		return;
	}
	for (i = 0; i < c->job->nrcpts; i++)
		if (c->job->rcpts[i].status != -1 ||
		    c->job->rcpts[i].accepted)
			break;
	if (i == c->job->nrcpts && !c->s.reached_data) {
		mta_hop_failed(c, "timeout waiting for the server");
		return;
	}
	mta_session_abort(&c->s, "timeout waiting for the server");
	c->last_status = DELIVER_TEMPFAIL;
	mta_finish(c);
}

static void
mta_arm(struct mta_conn *c)
{
	unsigned int	 t;

	t = !c->in_session ? MTA_TIMEOUT_CONNECT :
	    c->s.state == MTA_DOT ? MTA_TIMEOUT_DOT : MTA_TIMEOUT_CMD;
	ev_timer_set(M.loop, &c->timer, (uint64_t)t * 1000, mta_on_timeout,
	    c);
}

static void
mta_next_hop(struct mta_conn *c)
{
	const struct domain_addr	*src;
	struct dns_hop			*h;
	struct sockaddr_storage		 ss;
	socklen_t			 sslen;

	while (c->cur < c->req.res.nhops) {
		h = &c->req.res.hops[c->cur++];
		mta_relay_text(c, h);
		src = mta_source(h->ss.ss_family);
		if (src == NULL)
			continue;
		domain_addr_sockaddr(src, 0, &ss, &sslen);
		if (h->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&h->ss)->sin_port =
			    htons((uint16_t)c->port);
		else
			((struct sockaddr_in6 *)&h->ss)->sin6_port =
			    htons((uint16_t)c->port);
		c->fd = socket(h->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (c->fd == -1) {
			mta_hop_failed(c, strerror(errno));
			return;
		}
		if (bind(c->fd, (struct sockaddr *)&ss, sslen) == -1) {
			mta_hop_failed(c, "cannot bind the domain's address");
			return;
		}
		if (connect(c->fd, (struct sockaddr *)&h->ss, h->sslen) ==
		    -1 && errno != EINPROGRESS) {
			mta_hop_failed(c, strerror(errno));
			return;
		}
		if (ev_add(M.loop, c->fd, EV_WRITE, mta_on_io, c) == -1)
			fatal("mta: event add");
		mta_arm(c);
		return;
	}
	mta_finish(c);
}

static void
mta_session_end(struct mta_conn *c)
{
	size_t	 i;
	int	 decided = 0;

	for (i = 0; i < c->job->nrcpts; i++)
		if (c->job->rcpts[i].status != -1)
			decided = 1;
	if (!decided && c->s.fail_status != -1) {
		/* Refused at the greeting or HELO: try the next hop. */
		mta_hop_failed(c, c->s.fail_reply);
		return;
	}
	mta_finish(c);
}

static void
mta_connected(struct mta_conn *c)
{
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		mta_hop_failed(c, strerror(err));
		return;
	}
	if ((c->msgfd = queue_msg_open(QUEUE_DIR, c->job->id)) == -1) {
		mta_fail_all(c, DELIVER_TEMPFAIL, "4.3.0",
		    "cannot open the queue file");
		return;
	}
	mta_session_init(&c->s, M.sd->hostname, c->job->sender,
	    c->job->rcpts, c->job->nrcpts, c->job->size, c->job->eightbit,
	    c->msgfd);
	c->in_session = 1;
	if (ev_mod(M.loop, c->fd, EV_READ) == -1)
		fatal("mta: event mod");
	mta_arm(c);
}

/* Lost the connection: next hop when nothing was said yet. */
static void
mta_broken(struct mta_conn *c, const char *why)
{
	size_t	 i;

	for (i = 0; i < c->job->nrcpts; i++)
		if (c->job->rcpts[i].status != -1 ||
		    c->job->rcpts[i].accepted)
			break;
	if (i == c->job->nrcpts && !c->s.reached_data &&
	    c->s.state != MTA_QUIT) {
		mta_hop_failed(c, why);
		return;
	}
	mta_session_abort(&c->s, why);
	mta_session_end(c);
}

static void
mta_on_io(int fd, int events, void *arg)
{
	struct mta_conn	*c = arg;
	char		 chunk[4096];
	ssize_t		 n;

	if (!c->in_session) {
		mta_connected(c);
		return;
	}
	if (events & (EV_READ | EV_ERROR)) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			return;
		if (n <= 0) {
			mta_broken(c, n == 0 ? "connection closed by the "
			    "server" : strerror(errno));
			return;
		}
		if (mta_session_input(&c->s, chunk, (size_t)n) == -1) {
			mta_session_end(c);
			return;
		}
		mta_arm(c);
	}
	while (c->s.out.len > 0) {
		n = send(fd, c->s.out.data, c->s.out.len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n == -1) {
			mta_broken(c, strerror(errno));
			return;
		}
		buf_consume(&c->s.out, (size_t)n);
		if (c->s.out.len == 0 && mta_session_pump(&c->s) == -1) {
			mta_session_end(c);
			return;
		}
		mta_arm(c);
	}
	if (ev_mod(M.loop, fd, c->s.out.len > 0 ? EV_READ | EV_WRITE :
	    EV_READ) == -1)
		fatal("mta: event mod");
}
