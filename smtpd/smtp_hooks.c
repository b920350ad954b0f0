/*
 * smtp_hooks.c — the SMTP worker's answers to the questions its
 * sessions ask (struct smtp_hooks): AUTH to the domain's auth service,
 * SPF to the SPF checker, every other step to the milters.
 *
 * DESCRIPTION
 *	smtp_conn_ask() sends the question without blocking; the answer
 *	comes back through the event loop (smtp_server_auth_cb(), the SPF
 *	client's callback, the milter session's) and resumes the session.
 *	smtp_server_filters() sets up the domain's milters and SPF
 *	checker before the first session.
 *
 * SECURITY
 *	Runs in the worker, already chrooted into the domain's root and
 *	running as its run_as account.  AUTH credentials go to the
 *	domain's auth service (smtp_auth.c) and are wiped here once
 *	sent; a failure is answered only after the domain's auth_delay,
 *	the same for every failure.  Answers from the auth service are
 *	matched by id to a live session, and a lost service makes AUTH
 *	fail temporarily.  SPF and milter answers are checked by their
 *	clients (spf.c, milter.c) before they get here.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "event.h"
#include "log.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "xmalloc.h"

static void	conn_spf_cb(void *, const struct spf_res *);

/* AUTH: send user and password to the auth service; 1 when asked. */
static int
conn_auth_ask(struct conn *c, const char *data, size_t len)
{
	struct server		*srv = c->srv;
	struct smtp_auth_req	 r;
	char			 msg[SMTP_AUTH_MSG_MAX];
	size_t			 ul, n;
	int			 ok = 0;

	if (srv->auth_fd == -1 || (ul = strnlen(data, len)) >= len)
		return 0;
	memset(&r, 0, sizeof(r));
	if (++srv->auth_seq == 0)
		srv->auth_seq = 1;
	r.id = srv->auth_seq;
	if (strlcpy(r.ip, c->s.client_addr, sizeof(r.ip)) < sizeof(r.ip) &&
	    strlcpy(r.user, data, sizeof(r.user)) < sizeof(r.user) &&
	    strlcpy(r.pass, data + ul + 1, sizeof(r.pass)) < sizeof(r.pass) &&
	    smtp_auth_req_encode(&r, msg, sizeof(msg), &n) == 0 &&
	    send(srv->auth_fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT) ==
	    (ssize_t)n)
		ok = 1;
	explicit_bzero(&r, sizeof(r));
	explicit_bzero(msg, sizeof(msg));
	if (!ok)
		return 0;
	c->auth_id = srv->auth_seq;
	return 1;
}

static void
conn_auth_timer_cb(void *arg)
{
	struct conn		*c = arg;
	struct smtp_answer	 a = c->auth_ans;

	smtp_session_resume(&c->s, &a);
	(void)smtp_conn_run(c);
}

/* An answer from the auth service: "ID OK name", "ID FAIL", "ID TEMP". */
void
smtp_server_auth_cb(int fd, int events, void *arg)
{
	struct server	*srv = arg;
	struct conn	*c;
	char		 msg[128], *sp, *what, *name;
	unsigned long	 id;
	ssize_t		 n;

	(void)events;
	n = recv(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		log_warnx("smtp auth service gone; AUTH fails temporarily");
		(void)ev_del(srv->loop, fd);
		(void)close(fd);
		srv->auth_fd = -1;
		for (c = srv->conns; c != NULL; c = c->next)
			if (c->auth_id != 0) {
				c->auth_id = 0;
				memset(&c->auth_ans, 0, sizeof(c->auth_ans));
				c->auth_ans.v = SMTP_V_TEMPFAIL;
				ev_timer_set(srv->loop, &c->auth_timer, 0,
				    conn_auth_timer_cb, c);
			}
		return;
	}
	msg[n] = '\0';
	if ((sp = strchr(msg, ' ')) == NULL)
		return;
	*sp = '\0';
	what = sp + 1;
	if ((name = strchr(what, ' ')) != NULL)
		*name++ = '\0';
	errno = 0;
	id = strtoul(msg, NULL, 10);
	for (c = srv->conns; c != NULL; c = c->next)
		if (c->auth_id != 0 && c->auth_id == id)
			break;
	if (c == NULL)
		return;		/* the session is gone */
	c->auth_id = 0;
	memset(&c->auth_ans, 0, sizeof(c->auth_ans));
	if (strcmp(what, "OK") == 0 && name != NULL) {
		c->auth_ans.v = SMTP_V_ACCEPT;
		(void)strlcpy(c->auth_ans.reply, name,
		    sizeof(c->auth_ans.reply));
		conn_auth_timer_cb(c);
		return;
	}
	if (strcmp(what, "FAIL") == 0) {
		/* The same delay for every failure, known user or not. */
		c->auth_ans.v = SMTP_V_REJECT;
		ev_timer_set(srv->loop, &c->auth_timer,
		    srv->sd->auth_delay * 1000ULL, conn_auth_timer_cb, c);
		return;
	}
	c->auth_ans.v = SMTP_V_TEMPFAIL;
	conn_auth_timer_cb(c);
}

/*
 * RFC 7208 §2.3: the HELO identity is checked only when it is a
 * domain name (not an address literal, not a single label).
 */
static int
helo_checkable(const char *h)
{
	return h[0] != '\0' && h[0] != '[' && strchr(h, '.') != NULL;
}

/* The session asks: an SPF check, or a milter step. */
int
smtp_conn_ask(void *arg, struct smtp_session *s, enum smtp_ask what,
    const char *data, size_t len)
{
	struct conn	*c = arg;
	struct spf_req	 q;

	if (what == SMTP_ASK_AUTH)
		return conn_auth_ask(c, data, len);
	if (what == SMTP_ASK_SPF) {
		memset(&q, 0, sizeof(q));
		(void)strlcpy(q.ip, s->client_addr, sizeof(q.ip));
		(void)strlcpy(q.helo, s->helo, sizeof(q.helo));
		(void)strlcpy(q.sender, s->sender, sizeof(q.sender));
		(void)strlcpy(q.receiver, s->sd->hostname != NULL ?
		    s->sd->hostname : "localhost", sizeof(q.receiver));
		if (c->srv->spf == NULL || (c->spf_id =
		    spf_client_check(c->srv->spf, &q, conn_spf_cb, c)) == 0) {
			smtp_session_spf(s, SPF_R_TEMPERROR, "", "",
			    "SPF checker unavailable");
			return 0;
		}
		/* spf_helo: the HELO identity too, alongside (an empty
		 * sender makes the checker use the HELO name). */
		if (s->sd->spf_helo && s->sender[0] != '\0' &&
		    helo_checkable(s->helo)) {
			q.sender[0] = '\0';
			c->spf_helo_id = spf_client_check(c->srv->spf, &q,
			    conn_spf_cb, c);
			if (c->spf_helo_id == 0)
				smtp_session_spf_helo(s, SPF_R_TEMPERROR, "",
				    "", "SPF checker unavailable");
		}
		return 1;
	}
	if (c->milter == NULL)
		return 0;
	return milter_sess_ask(c->milter, what, data, len);
}

void
smtp_conn_abort(void *arg, struct smtp_session *s)
{
	struct conn	*c = arg;

	(void)s;
	if (c->milter != NULL)
		milter_sess_abort(c->milter);
}

static void
conn_spf_cb(void *arg, const struct spf_res *r)
{
	struct conn		*c = arg;
	struct smtp_answer	 a;

	if (c->spf_helo_id != 0 && r->id == c->spf_helo_id) {
		c->spf_helo_id = 0;
		smtp_session_spf_helo(&c->s, r->result, r->received,
		    r->authres, r->comment);
	} else {
		c->spf_id = 0;
		smtp_session_spf(&c->s, r->result, r->received, r->authres,
		    r->comment);
	}
	/* Resume once both identities have their answer. */
	if (c->spf_id != 0 || c->spf_helo_id != 0)
		return;
	memset(&a, 0, sizeof(a));
	smtp_session_resume(&c->s, &a);
	(void)smtp_conn_run(c);
}

void
smtp_conn_milter_done(void *arg)
{
	struct conn		*c = arg;
	struct smtp_answer	 a = c->s.ans;

	smtp_session_resume(&c->s, &a);
	(void)smtp_conn_run(c);
}

/*
 * The domain's milters, and its SPF checker, forked here before the
 * commit threads start and before the first session.
 */
void
smtp_server_filters(struct server *srv)
{
	const char	*error;
	size_t		 i, n = 0;

	while (srv->sd->milters != NULL && srv->sd->milters[n] != NULL)
		n++;
	srv->mconf = xcalloc(n + 1, sizeof(*srv->mconf));
	for (i = 0; i < n; i++) {
		if (milter_conf_parse(srv->sd->milters[i],
		    &srv->mconf[srv->nmconf], &error) == -1) {
			log_warnx("milter \"%s\": %s (ignored)",
			    srv->sd->milters[i], error);
			continue;
		}
		srv->nmconf++;
	}
	if (srv->sd->spf_mode != 0)
		srv->spf = spf_client_new(srv->loop, 0);
}
