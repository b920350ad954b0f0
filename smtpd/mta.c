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
 * TLS
 *	STARTTLS when the peer offers it (RFC 3207), per destination
 *	tls_policy (smtpd_tls_policy()): "none" never, "may" (default)
 *	when offered, "encrypt" defers unless the session is encrypted,
 *	"verify" also needs the peer's certificate to chain to
 *	tls_ca_file and to carry the MX host name (SSL_set1_host; with a
 *	route, the destination domain).  The name goes out as SNI.  Under
 *	"may" a failed handshake is retried once in the clear on the same
 *	address, as Postfix does.  The handshake and the records run
 *	non-blocking in the runner's event loop.  Each session logs its
 *	outcome: "ID smtp relay=R tls=TLSv1.3/CIPHER verified",
 *	"... unverified" or "tls=none".  The CA file is read once, in
 *	mta_init(), inside the chroot.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "log.h"
#include "queue.h"
#include "smtpd.h"
#include "tls.h"
#include "xmalloc.h"

#define MTA_CA_MAX	(1024 * 1024)	/* tls_ca_file bytes */

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
	/* STARTTLS */
	SSL			*ssl;
	int			 tls_hs;	/* handshake under way */
	int			 tls_policy;	/* enum tls_policy_level */
	size_t			 notls_cur;	/* cur of a retry in the clear */
	int			 want_write;	/* SSL_read wants writable */
	char			 tls_desc[128];	/* for the log; "" no session */
};

TAILQ_HEAD(mta_conn_list, mta_conn);

static struct {
	struct ev_loop			*loop;
	const struct smtpd_domain	*sd;
	const struct smtpd_conf		*conf;
	struct mta_conn_list		 waiting, running;
	size_t				 nrunning;
	struct ev_timer			 kick;
	SSL_CTX				*tls_ctx;	/* NULL: no TLS */
	int				 tls_ca;	/* CA file loaded */
} M;

static void	mta_next_hop(struct mta_conn *c);
static void	mta_dispatch(void *arg);

/*
 * The client context, with tls_ca_file (a path inside the root; we are
 * chrooted there) as the only trust anchors.  Failures are logged:
 * "may" then goes in the clear, "encrypt" and "verify" defer.
 */
static void
mta_tls_init(void)
{
	struct buf	 ca;
	const char	*err = NULL;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd = -1;

	buf_init(&ca, MTA_CA_MAX);
	if (M.sd->tls_ca_file != NULL) {
		if ((fd = open(M.sd->tls_ca_file, O_RDONLY | O_CLOEXEC)) ==
		    -1)
			err = strerror(errno);
		while (fd != -1 && (n = read(fd, chunk, sizeof(chunk))) != 0) {
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 || buf_append(&ca, chunk, (size_t)n) == -1) {
				err = n == -1 ? strerror(errno) : "too large";
				break;
			}
		}
		if (fd != -1)
			(void)close(fd);
		if (err != NULL) {
			log_warnx("mta: tls_ca_file %s: %s; no certificate "
			    "can be verified", M.sd->tls_ca_file, err);
			buf_reset(&ca);
		}
	}
	M.tls_ctx = tls_client_ctx(ca.len > 0 ? ca.data : NULL, ca.len,
	    &err);
	if (M.tls_ctx == NULL)
		log_warnx("mta: no TLS client context: %s", err);
	M.tls_ca = M.tls_ctx != NULL && ca.len > 0;
	buf_free(&ca);
}

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
	/* OpenSSL writes with write(2): a gone peer is an error. */
	(void)signal(SIGPIPE, SIG_IGN);
	mta_tls_init();
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
mta_tls_free(struct mta_conn *c)
{
	if (c->ssl == NULL)
		return;
	if (!c->tls_hs)
		(void)SSL_shutdown(c->ssl);	/* best effort */
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->tls_hs = 0;
	c->want_write = 0;
}

static void
mta_finish(struct mta_conn *c)
{
	struct mta_job	*job = c->job;

	ev_timer_cancel(M.loop, &c->timer);
	if (c->tls_desc[0] != '\0')
		log_info("%s smtp relay=%s tls=%s", job->id, job->relay,
		    c->tls_desc);
	mta_tls_free(c);
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
	char	 text[MTA_REPLY_MAX], dsn[16] = "4.4.1";

	(void)snprintf(text, sizeof(text), "%s: %s", c->job->relay, why);
	log_info("%s smtp relay=%s failed: %s", c->job->id, c->job->relay,
	    why);
	/* TLS required but not to be had (4.7.4) says so in the DSN. */
	if (c->in_session && c->s.fail_status == DELIVER_TEMPFAIL &&
	    strncmp(c->s.fail_dsn, "4.7.", 4) == 0)
		(void)strlcpy(dsn, c->s.fail_dsn, sizeof(dsn));
	ev_timer_cancel(M.loop, &c->timer);
	if (c->tls_desc[0] != '\0')
		log_info("%s smtp relay=%s tls=%s", c->job->id, c->job->relay,
		    c->tls_desc);
	c->tls_desc[0] = '\0';
	mta_tls_free(c);
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
	(void)strlcpy(c->last_dsn, dsn, sizeof(c->last_dsn));
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
	c->tls_policy = smtpd_tls_policy(M.sd, c->job->domain);
	/* "may" without a context, or the retry after a failed handshake. */
	c->s.tls_policy = c->cur == c->notls_cur ||
	    (c->tls_policy == TLS_POLICY_MAY && M.tls_ctx == NULL) ?
	    TLS_POLICY_NONE : c->tls_policy;
	(void)strlcpy(c->tls_desc, "none", sizeof(c->tls_desc));
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

/* read or SSL_read: bytes, 0 at the end, -2 to wait, -1 (errno). */
static ssize_t
mta_read(struct mta_conn *c, char *dst, size_t len)
{
	ssize_t	 n;
	int	 r, e;

	if (c->ssl == NULL) {
		n = read(c->fd, dst, len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			return -2;
		return n;
	}
	ERR_clear_error();
	if ((r = SSL_read(c->ssl, dst, (int)len)) > 0)
		return r;
	switch ((e = SSL_get_error(c->ssl, r))) {
	case SSL_ERROR_WANT_READ:
		return -2;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = 1;
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		errno = EPROTO;
		return -1;
	}
}

/* send or SSL_write: bytes, -2 to wait, -1 (errno). */
static ssize_t
mta_write(struct mta_conn *c, const char *src, size_t len)
{
	ssize_t	 n;
	int	 r;

	if (c->ssl == NULL) {
		n = send(c->fd, src, len, MSG_NOSIGNAL);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			return -2;
		return n;
	}
	ERR_clear_error();
	if ((r = SSL_write(c->ssl, src, len > INT32_MAX ? INT32_MAX :
	    (int)len)) > 0)
		return r;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return -2;	/* EV_READ is always on */
	case SSL_ERROR_WANT_WRITE:
		return -2;
	default:
		errno = EPIPE;
		return -1;
	}
}

/* Write what the session has; 0, or -1 when the connection is over. */
static int
mta_flush(struct mta_conn *c)
{
	ssize_t	 n;

	while (c->s.out.len > 0) {
		if ((n = mta_write(c, c->s.out.data, c->s.out.len)) == -2)
			break;
		if (n == -1) {
			mta_broken(c, strerror(errno));
			return -1;
		}
		buf_consume(&c->s.out, (size_t)n);
		if (c->s.out.len == 0 && mta_session_pump(&c->s) == -1) {
			mta_session_end(c);
			return -1;
		}
		mta_arm(c);
	}
	if (ev_mod(M.loop, c->fd, c->s.out.len > 0 || c->want_write ?
	    EV_READ | EV_WRITE : EV_READ) == -1)
		fatal("mta: event mod");
	return 0;
}

/* The handshake failed: under "may" once more in the clear. */
static void
mta_tls_failed(struct mta_conn *c, const char *why)
{
	char	 text[MTA_REPLY_MAX];

	(void)snprintf(text, sizeof(text), "TLS handshake failed: %s", why);
	if (c->s.tls_policy == TLS_POLICY_MAY && c->notls_cur != c->cur) {
		c->notls_cur = c->cur;
		c->cur--;
	}
	c->tls_desc[0] = '\0';
	mta_hop_failed(c, text);
}

static void
mta_tls_handshake(struct mta_conn *c)
{
	long	 vr;
	int	 r, e, verified;

	ERR_clear_error();
	if ((r = SSL_connect(c->ssl)) != 1) {
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (ev_mod(M.loop, c->fd, e == SSL_ERROR_WANT_READ ?
			    EV_READ : EV_WRITE) == -1)
				fatal("mta: event mod");
			return;
		}
		vr = c->s.tls_policy == TLS_POLICY_VERIFY ?
		    SSL_get_verify_result(c->ssl) : X509_V_OK;
		mta_tls_failed(c, vr != X509_V_OK ?
		    X509_verify_cert_error_string(vr) :
		    e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 ?
		    "connection closed" : tls_error());
		return;
	}
	c->tls_hs = 0;
	verified = M.tls_ca && SSL_get0_peer_certificate(c->ssl) != NULL &&
	    SSL_get_verify_result(c->ssl) == X509_V_OK;
	(void)snprintf(c->tls_desc, sizeof(c->tls_desc), "%s/%s %s",
	    tls_version(c->ssl), tls_cipher(c->ssl), verified ? "verified" :
	    "unverified");
	if (mta_session_tls_started(&c->s) == -1) {
		mta_session_abort(&c->s, "output buffer full");
		mta_session_end(c);
		return;
	}
	mta_arm(c);
	(void)mta_flush(c);
}

/* The name the certificate must carry: the MX host, or with a route
 * (an address) the destination domain. */
static const char *
mta_tls_name(struct mta_conn *c)
{
	if (c->routed || c->cur == 0)
		return c->job->domain;
	return c->req.res.hops[c->cur - 1].host;
}

/* 220 to STARTTLS: wrap the connection. */
static void
mta_tls_start(struct mta_conn *c)
{
	const char	*name = mta_tls_name(c);

	if (M.tls_ctx == NULL || (c->ssl = SSL_new(M.tls_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		mta_tls_failed(c, M.tls_ctx == NULL ? "no TLS context" :
		    tls_error());
		return;
	}
	SSL_set_connect_state(c->ssl);
	(void)SSL_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* RFC 6066 §3: no IP literals in SNI. */
	if (strchr(name, ':') == NULL && strspn(name, "0123456789.") !=
	    strlen(name))
		(void)SSL_set_tlsext_host_name(c->ssl, name);
	if (SSL_set1_host(c->ssl, name) != 1) {
		mta_tls_failed(c, "bad host name");
		return;
	}
	if (c->s.tls_policy == TLS_POLICY_VERIFY) {
		if (!M.tls_ca) {
			mta_tls_failed(c, "tls_policy verify without a usable "
			    "tls_ca_file");
			return;
		}
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	} else
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
	c->tls_hs = 1;
	mta_arm(c);
	mta_tls_handshake(c);
}

static void
mta_on_io(int fd, int events, void *arg)
{
	struct mta_conn	*c = arg;
	char		 chunk[4096];
	ssize_t		 n;

	(void)fd;
	if (!c->in_session) {
		mta_connected(c);
		return;
	}
	if (c->tls_hs) {
		mta_tls_handshake(c);
		return;
	}
	c->want_write = 0;
	/* With TLS, either event may be what OpenSSL waited for. */
	while (c->ssl != NULL || (events & (EV_READ | EV_ERROR))) {
		if ((n = mta_read(c, chunk, sizeof(chunk))) == -2)
			break;
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
		if (c->s.tls_start) {
			mta_tls_start(c);
			return;
		}
		if (c->ssl == NULL)
			break;
	}
	(void)mta_flush(c);
}
