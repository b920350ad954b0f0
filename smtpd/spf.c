/*
 * spf.c — SPF checks (RFC 7208) for a domain's SMTP worker.
 *
 * DESCRIPTION
 *	libspf2 does the check, in a child process of the worker (the
 *	"checker"): its DNS lookups block, and its error path ends in
 *	abort(), so it must not run in the event loop that serves every
 *	session of the domain.  The worker forks the checker before it
 *	enters its loop and again whenever it dies; they talk over a
 *	SOCK_SEQPACKET socketpair, one datagram per request or reply:
 *
 *	request	 uint32 id, then NUL-terminated client ip, HELO name,
 *		 MAIL FROM address ("" for <>), receiver (our hostname)
 *	reply	 uint32 id, int32 result, then NUL-terminated
 *		 Received-SPF value, Authentication-Results resinfo,
 *		 SMTP comment
 *
 *	The worker never waits on the checker: each request has a timer,
 *	and a check that does not come back in time is answered
 *	temperror (RFC 7208 §4.4, §2.6.6); the checker is then killed and
 *	started again, as after a crash, and every other request in
 *	flight is answered temperror too.
 *
 * SECURITY
 *	Both sides run chrooted in the domain's root as its run_as
 *	account.  The checker keeps only its end of the socketpair and
 *	stdio: nothing of the worker's sessions.  It resolves through the
 *	root's etc/resolv.conf (libspf2's resolver, with its cache and the
 *	RFC 7208 §4.6.4 lookup limits).  Each side decodes the other's
 *	datagrams strictly (exact field count, bounded lengths).  See
 *	docs/SECURITY.md for the state of the libspf2 CVE fixes.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <spf2/spf.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "log.h"
#include "privdrop.h"
#include "smtpd.h"
#include "xmalloc.h"

#define SPF_RESTART_MS		1000	/* after a quick death */
#define SPF_INFLIGHT_MAX	256

struct spf_pending {
	struct spf_pending	*next;
	struct spf_client	*c;
	uint32_t		 id;
	spf_done_cb		*cb;
	void			*arg;
	struct ev_timer		 timer;
};

struct spf_client {
	struct ev_loop		*loop;
	int			 fd;
	pid_t			 pid;
	unsigned int		 timeout;	/* s */
	uint32_t		 next_id;
	uint64_t		 started;
	struct spf_pending	*pending;
	unsigned int		 npending;
	struct ev_timer		 restart;
};

static const char *spf_names[] = {
	[SPF_R_NONE] = "none",
	[SPF_R_NEUTRAL] = "neutral",
	[SPF_R_PASS] = "pass",
	[SPF_R_FAIL] = "fail",
	[SPF_R_SOFTFAIL] = "softfail",
	[SPF_R_TEMPERROR] = "temperror",
	[SPF_R_PERMERROR] = "permerror",
};

const char *
spf_result_name(int result)
{
	if (result < 0 || result > SPF_R_PERMERROR)
		return "temperror";
	return spf_names[result];
}

/* ------------------------------------------------------------------ */
/* The datagrams. */

static int
put_strs(char *dst, size_t size, size_t *off, const char **v, size_t n)
{
	size_t	 i, len;

	for (i = 0; i < n; i++) {
		len = strlen(v[i]) + 1;
		if (len > size - *off)
			return -1;
		memcpy(dst + *off, v[i], len);
		*off += len;
	}
	return 0;
}

/* Split src into exactly n NUL-terminated strings into dsts. */
static int
get_strs(const char *src, size_t len, char **dsts, const size_t *sizes,
    size_t n)
{
	const char	*e;
	size_t		 i, l;

	for (i = 0; i < n; i++) {
		if ((e = memchr(src, '\0', len)) == NULL)
			return -1;
		l = (size_t)(e - src);
		if (l >= sizes[i])
			return -1;
		memcpy(dsts[i], src, l + 1);
		src += l + 1;
		len -= l + 1;
	}
	return len == 0 ? 0 : -1;
}

int
spf_req_encode(const struct spf_req *r, char *dst, size_t size,
    size_t *len_r)
{
	const char	*v[4] = { r->ip, r->helo, r->sender, r->receiver };
	uint32_t	 id = htonl(r->id);
	size_t		 off = sizeof(id);

	if (size < off)
		return -1;
	memcpy(dst, &id, sizeof(id));
	if (put_strs(dst, size, &off, v, 4) == -1)
		return -1;
	*len_r = off;
	return 0;
}

int
spf_req_decode(const char *src, size_t len, struct spf_req *r)
{
	char		*d[4] = { r->ip, r->helo, r->sender, r->receiver };
	const size_t	 sz[4] = { sizeof(r->ip), sizeof(r->helo),
	    sizeof(r->sender), sizeof(r->receiver) };
	uint32_t	 id;

	memset(r, 0, sizeof(*r));
	if (len < sizeof(id))
		return -1;
	memcpy(&id, src, sizeof(id));
	r->id = ntohl(id);
	return get_strs(src + sizeof(id), len - sizeof(id), d, sz, 4);
}

int
spf_res_encode(const struct spf_res *r, char *dst, size_t size,
    size_t *len_r)
{
	const char	*v[3] = { r->received, r->authres, r->comment };
	uint32_t	 id = htonl(r->id), res = htonl((uint32_t)r->result);
	size_t		 off = sizeof(id) + sizeof(res);

	if (size < off)
		return -1;
	memcpy(dst, &id, sizeof(id));
	memcpy(dst + sizeof(id), &res, sizeof(res));
	if (put_strs(dst, size, &off, v, 3) == -1)
		return -1;
	*len_r = off;
	return 0;
}

int
spf_res_decode(const char *src, size_t len, struct spf_res *r)
{
	char		*d[3] = { r->received, r->authres, r->comment };
	const size_t	 sz[3] = { sizeof(r->received), sizeof(r->authres),
	    sizeof(r->comment) };
	uint32_t	 id, res;

	memset(r, 0, sizeof(*r));
	if (len < sizeof(id) + sizeof(res))
		return -1;
	memcpy(&id, src, sizeof(id));
	memcpy(&res, src + sizeof(id), sizeof(res));
	r->id = ntohl(id);
	r->result = (int32_t)ntohl(res);
	if (r->result < SPF_R_NONE || r->result > SPF_R_PERMERROR)
		return -1;
	return get_strs(src + 8, len - 8, d, sz, 3);
}

/* ------------------------------------------------------------------ */
/* The checker (child). */

static int
spf_map(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return SPF_R_PASS;
	case SPF_RESULT_FAIL:
		return SPF_R_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_R_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return SPF_R_NEUTRAL;
	case SPF_RESULT_NONE:
		return SPF_R_NONE;
	case SPF_RESULT_PERMERROR:
		return SPF_R_PERMERROR;
	default:
		return SPF_R_TEMPERROR;
	}
}

/* An RFC 8601 §2.7.2 property value: a dot-atom, else quoted. */
static void
authres_value(char *dst, size_t size, const char *v)
{
	const char	*p;
	size_t		 o = 0;
	int		 atom = v[0] != '\0';

	for (p = v; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr(".@-_+=", *p) != NULL))
			atom = 0;
	if (atom) {
		(void)snprintf(dst, size, "%s", v);
		return;
	}
	if (size < 3)
		return;
	dst[o++] = '"';
	for (p = v; *p != '\0' && o + 3 < size; p++) {
		if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
			continue;
		if (*p == '"' || *p == '\\')
			dst[o++] = '\\';
		dst[o++] = *p;
	}
	dst[o++] = '"';
	dst[o] = '\0';
}

static void
spf_check(SPF_server_t *srv, const struct spf_req *q, struct spf_res *a)
{
	SPF_request_t	*req;
	SPF_response_t	*resp = NULL;
	const char	*v;
	char		 id[600];
	size_t		 o;
	int		 bad;
	SPF_errcode_t	 err;

	memset(a, 0, sizeof(*a));
	a->id = q->id;
	a->result = SPF_R_NONE;
	if (SPF_server_set_rec_dom(srv, q->receiver) != SPF_E_SUCCESS) {
		a->result = SPF_R_TEMPERROR;
		(void)snprintf(a->comment, sizeof(a->comment),
		    "bad receiver name");
		return;
	}
	if ((req = SPF_request_new(srv)) == NULL) {
		a->result = SPF_R_TEMPERROR;
		return;
	}
	bad = strchr(q->ip, ':') != NULL ?
	    SPF_request_set_ipv6_str(req, q->ip) :
	    SPF_request_set_ipv4_str(req, q->ip);
	/* Order matters: an empty sender becomes the HELO name. */
	if (bad == 0)
		(void)SPF_request_set_helo_dom(req, q->helo);
	if (bad == 0 && SPF_request_set_env_from(req, q->sender) != 0)
		bad = 1;
	if (bad != 0) {
		(void)snprintf(a->comment, sizeof(a->comment),
		    "no checkable identity");
		SPF_request_free(req);
		return;
	}
	err = SPF_request_query_mailfrom(req, &resp);
	if (resp != NULL) {
		a->result = spf_map(SPF_response_result(resp));
		/* A record that does not compile: RFC 7208 §4.6. */
		if (SPF_response_result(resp) == SPF_RESULT_INVALID &&
		    err != SPF_E_DNS_ERROR)
			a->result = SPF_R_PERMERROR;
		if ((v = SPF_response_get_received_spf_value(resp)) != NULL)
			(void)snprintf(a->received, sizeof(a->received),
			    "%s", v);
		if ((v = SPF_response_get_smtp_comment(resp)) != NULL)
			(void)snprintf(a->comment, sizeof(a->comment), "%s",
			    v);
		else if ((v = SPF_response_get_header_comment(resp)) != NULL)
			(void)snprintf(a->comment, sizeof(a->comment), "%s",
			    v);
		SPF_response_free(resp);
	} else
		a->result = SPF_R_TEMPERROR;
	if (a->received[0] == '\0')
		/* RFC 7208 §9.1, when libspf2 made none. */
		(void)snprintf(a->received, sizeof(a->received),
		    "%s (%s) client-ip=%s; envelope-from=\"%s\"; helo=%s; "
		    "receiver=%s;", spf_result_name(a->result),
		    a->comment[0] != '\0' ? a->comment : "no result",
		    q->ip, q->sender, q->helo, q->receiver);
	/* RFC 7208 §9.1 keys libspf2 leaves out; "" is the HELO check
	 * (<>, or spf_helo's own request). */
	o = strlen(a->received);
	if (strstr(a->received, "receiver=") == NULL)
		o += (size_t)snprintf(a->received + o,
		    sizeof(a->received) - o, " receiver=%s;", q->receiver);
	if (o < sizeof(a->received) &&
	    strstr(a->received, "identity=") == NULL)
		(void)snprintf(a->received + o, sizeof(a->received) - o,
		    " identity=%s;", q->sender[0] != '\0' ? "mailfrom" :
		    "helo");
	/* RFC 8601 §2.7.2: smtp.mailfrom, or smtp.helo for <>. */
	authres_value(id, sizeof(id), q->sender[0] != '\0' ? q->sender :
	    q->helo);
	(void)snprintf(a->authres, sizeof(a->authres), "spf=%s smtp.%s=%s",
	    spf_result_name(a->result), q->sender[0] != '\0' ? "mailfrom" :
	    "helo", id);
	SPF_request_free(req);
}

static void __attribute__((noreturn))
spf_child_main(int fd)
{
	SPF_server_t	*srv;
	struct spf_req	 q;
	struct spf_res	 a;
	char		 msg[SPF_MSG_MAX];
	sigset_t	 all;
	ssize_t		 n;
	size_t		 len;

	/* The worker's loop blocked signals for its signalfd. */
	(void)sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	(void)signal(SIGPIPE, SIG_DFL);
	(void)signal(SIGTERM, SIG_DFL);
	if ((srv = SPF_server_new(SPF_DNS_CACHE, 0)) == NULL)
		_exit(1);
	for (;;) {
		n = recv(fd, msg, sizeof(msg), 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (spf_req_decode(msg, (size_t)n, &q) == -1)
			continue;
		spf_check(srv, &q, &a);
		if (spf_res_encode(&a, msg, sizeof(msg), &len) == -1)
			continue;
		while (send(fd, msg, len, 0) == -1 && errno == EINTR)
			;
	}
	SPF_server_free(srv);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* The worker's side. */

static void	spf_client_read(int, int, void *);
static void	spf_client_restart_cb(void *);

static int
spf_client_spawn(struct spf_client *c)
{
	const char	*err;
	int		 sv[2], fd;
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("spf: socketpair");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("spf: fork");
		(void)close(sv[0]);
		(void)close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* Keep stdio and our end only: no session's socket. */
		fd = sv[1];
		if (priv_keep_fds(&fd, 1, &err) == -1)
			_exit(1);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		spf_child_main(fd);
	}
	(void)close(sv[1]);
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    ev_add(c->loop, sv[0], EV_READ, spf_client_read, c) == -1) {
		log_warn("spf: checker socket");
		(void)close(sv[0]);
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		return -1;
	}
	c->fd = sv[0];
	c->pid = pid;
	c->started = ev_now_ms();
	log_debug("spf checker started pid=%ld", (long)pid);
	return 0;
}

static void
spf_pending_answer(struct spf_pending *p, const char *why)
{
	struct spf_res	 r;

	memset(&r, 0, sizeof(r));
	r.id = p->id;
	r.result = SPF_R_TEMPERROR;
	(void)snprintf(r.comment, sizeof(r.comment), "%s", why);
	p->cb(p->arg, &r);
}

static struct spf_pending *
spf_pending_take(struct spf_client *c, uint32_t id)
{
	struct spf_pending **pp, *p;

	for (pp = &c->pending; (p = *pp) != NULL; pp = &p->next)
		if (p->id == id) {
			*pp = p->next;
			c->npending--;
			ev_timer_cancel(c->loop, &p->timer);
			return p;
		}
	return NULL;
}

/* The checker died or hangs: kill it, fail what is in flight, and
 * start another one (at once, or after a pause if it died young). */
static void
spf_client_reset(struct spf_client *c, const char *why)
{
	struct spf_pending *p;
	int		 status;

	if (c->fd != -1) {
		(void)ev_del(c->loop, c->fd);
		(void)close(c->fd);
		c->fd = -1;
	}
	if (c->pid > 0) {
		(void)kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &status, 0) == -1 && errno == EINTR)
			;
		log_warnx("spf checker pid=%ld stopped: %s", (long)c->pid,
		    why);
		c->pid = 0;
	}
	while ((p = c->pending) != NULL) {
		(void)spf_pending_take(c, p->id);
		spf_pending_answer(p, why);
		free(p);
	}
	if (ev_now_ms() - c->started < SPF_RESTART_MS)
		ev_timer_set(c->loop, &c->restart, SPF_RESTART_MS,
		    spf_client_restart_cb, c);
	else
		(void)spf_client_spawn(c);
}

static void
spf_client_restart_cb(void *arg)
{
	struct spf_client *c = arg;

	if (c->fd == -1)
		(void)spf_client_spawn(c);
}

static void
spf_client_read(int fd, int events, void *arg)
{
	struct spf_client *c = arg;
	struct spf_pending *p;
	struct spf_res	 r;
	char		 msg[SPF_MSG_MAX];
	ssize_t		 n;

	(void)events;
	for (;;) {
		n = recv(fd, msg, sizeof(msg), 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			spf_client_reset(c, "SPF checker died");
			return;
		}
		if (spf_res_decode(msg, (size_t)n, &r) == -1) {
			spf_client_reset(c, "bad answer from the SPF checker");
			return;
		}
		if ((p = spf_pending_take(c, r.id)) == NULL)
			continue;	/* answered already (timeout) */
		p->cb(p->arg, &r);
		free(p);
		/* The callback may have reset us. */
		if (c->fd != fd)
			return;
	}
}

static void
spf_pending_timeout(void *arg)
{
	struct spf_pending *p = arg;
	struct spf_client *c = p->c;

	(void)spf_pending_take(c, p->id);
	spf_pending_answer(p, "SPF check timed out");
	free(p);
	/* Requests are answered in order: it hangs for every one. */
	spf_client_reset(c, "SPF check timed out");
}

struct spf_client *
spf_client_new(struct ev_loop *loop, unsigned int timeout)
{
	struct spf_client *c;

	c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = -1;
	c->timeout = timeout == 0 ? SPF_TIMEOUT_DEF : timeout;
	c->next_id = 1;
	if (spf_client_spawn(c) == -1)
		ev_timer_set(loop, &c->restart, SPF_RESTART_MS,
		    spf_client_restart_cb, c);
	return c;
}

uint32_t
spf_client_check(struct spf_client *c, const struct spf_req *r,
    spf_done_cb *cb, void *arg)
{
	struct spf_pending *p;
	struct spf_req	 q;
	char		 msg[SPF_MSG_MAX];
	size_t		 len;

	if (c->fd == -1 || c->npending >= SPF_INFLIGHT_MAX)
		return 0;
	q = *r;
	if (++c->next_id == 0)
		c->next_id = 1;
	q.id = c->next_id;
	if (spf_req_encode(&q, msg, sizeof(msg), &len) == -1)
		return 0;
	if (send(c->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		log_warn("spf: send to checker");
		return 0;
	}
	p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->id = q.id;
	p->cb = cb;
	p->arg = arg;
	p->next = c->pending;
	c->pending = p;
	c->npending++;
	ev_timer_set(c->loop, &p->timer, c->timeout * 1000ULL,
	    spf_pending_timeout, p);
	return q.id;
}

void
spf_client_cancel(struct spf_client *c, uint32_t id)
{
	struct spf_pending *p;

	if (c != NULL && id != 0 && (p = spf_pending_take(c, id)) != NULL)
		free(p);
}

void
spf_client_free(struct spf_client *c)
{
	struct spf_pending *p;

	if (c == NULL)
		return;
	while ((p = c->pending) != NULL) {
		(void)spf_pending_take(c, p->id);
		free(p);
	}
	ev_timer_cancel(c->loop, &c->restart);
	if (c->fd != -1) {
		(void)ev_del(c->loop, c->fd);
		(void)close(c->fd);
	}
	if (c->pid > 0) {
		(void)kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	free(c);
}
