/*
 * runner_local.c — local recipients in the queue runner: resolution
 * through etc/aliases and etc/passwd, and their delivery requests to
 * the deliverer.
 *
 * SECURITY
 *	Runs in the runner: the domain's run_as user, chrooted in the
 *	domain's root.  It reads the domain's etc/passwd and etc/aliases
 *	(owned by the domain's administrator) and the queue.  What it
 *	sends the deliverer is checked again there (deliverer.c); what
 *	the deliverer answers is trusted (more privileged) and anything
 *	malformed from it is fatal.
 *
 * DELIVERY POLICY
 *	Local recipients (smtpd_domain_is_local) are expanded through
 *	etc/aliases (loop-safe, common/aliases.c).  A local name must be
 *	a passwd user, matched case-insensitively; uid 0 (root) is never
 *	delivered to: such mail is deferred until root is aliased to a
 *	real user, and expires with the queue lifetime.  An unaliased
 *	postmaster that is no user is a permanent failure (logged).
 *	|command, /file and :include: targets are permanent failures
 *	("not supported").  Remote recipients and remote alias targets go
 *	to runner_remote.c.  At most RUNNER_PARALLEL deliveries are in
 *	flight to the deliverer; each names its recipient index, so the
 *	deliverer can find an earlier copy after a restart.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aliases.h"
#include "compat.h"
#include "diag.h"
#include "fdpass.h"
#include "log.h"
#include "passwd.h"
#include "queue.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

/*
 * Reload etc/passwd and etc/aliases when they changed; -1 when passwd
 * cannot be read (local recipients then wait: a temporary failure).
 */
int
runner_local_load(void)
{
	return smtp_userdb_refresh(&runner.udb);
}

struct runner_exp {
	const struct runner_exp	*parent;	/* the alias that led here */
	const char		*name;
	struct rmsg		*m;
	size_t			 i;
	const char		*domain;	/* of the recipient */
	int			 depth;
	struct alias_target	*t;
	size_t			 nt;
};

static void
runner_exp_collect(void *ctx, const struct alias_target *t)
{
	struct runner_exp	*x = ctx;

	x->t = xreallocarray(x->t, x->nt + 1, sizeof(*x->t));
	x->t[x->nt].type = t->type;
	x->t[x->nt].value = xstrdup(t->value);
	x->nt++;
}

static void
runner_add_task(struct rmsg *m, size_t i, const struct passwd_entry *pw,
    const char *domain)
{
	struct rtask	*t;
	size_t		 k;
	int		 n;

	for (k = 0; k < m->ntasks; k++)
		if (m->tasks[k].rcpt == i &&
		    strcmp(m->tasks[k].user, pw->name) == 0)
			return;		/* once per user and recipient */
	m->tasks = xreallocarray(m->tasks, m->ntasks + 1, sizeof(*m->tasks));
	t = &m->tasks[m->ntasks];
	memset(t, 0, sizeof(*t));
	t->m = m;
	t->rcpt = i;
	n = snprintf(t->addr, sizeof(t->addr), "%s@%s", pw->name, domain);
	if (strlcpy(t->user, pw->name, sizeof(t->user)) >= sizeof(t->user) ||
	    n < 0 || (size_t)n >= sizeof(t->addr)) {
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
		    "address too long");
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL,
		    "address too long");
		return;
	}
	m->ntasks++;
	m->rs[i].outstanding++;
}

static const struct passwd_entry *
runner_user(const char *name)
{
	const struct passwd_entry	*pw;
	char				 low[PASSWD_NAME_MAX + 1];
	size_t				 k;

	if (!passwd_name_valid(name))
		return NULL;
	if ((pw = passwd_find(&runner.udb.pw, name)) != NULL)
		return pw;
	/* Local parts are matched case-insensitively. */
	for (k = 0; name[k] != '\0' && k < PASSWD_NAME_MAX; k++)
		low[k] = (char)tolower((unsigned char)name[k]);
	low[k] = '\0';
	return passwd_find(&runner.udb.pw, low);
}

static void	runner_expand(struct rmsg *m, size_t i, const char *local,
		    const char *domain, const struct runner_exp *parent);

static void
runner_target(struct runner_exp *x, const struct alias_target *t)
{
	struct rmsg			*m = x->m;
	size_t				 i = x->i;
	const struct passwd_entry	*pw;
	const struct runner_exp		*p;
	const char			*at, *reason;
	char				 local[PASSWD_NAME_MAX + 2];
	char				 dom[DELIVER_ADDR_MAX];
	size_t				 k;

	switch (t->type) {
	case ALIAS_LOCAL:
		if (!runner.udb.pw_loaded) {
			/* Unreadable passwd: wait, never "no such user". */
			reason = "cannot read /etc/passwd";
			runner_log(m, i, m->env.rcpts[i].addr, NULL,
			    "deferred", reason);
			runner_note_result(&m->rs[i], DELIVER_TEMPFAIL, reason);
		} else if ((pw = runner_user(t->value)) == NULL) {
			reason = strcasecmp(t->value, "postmaster") == 0 ?
			    "postmaster is neither an alias nor a user" :
			    "no such user";
			runner_log(m, i, m->env.rcpts[i].addr, NULL,
			    "bounced", reason);
			runner_note_result(&m->rs[i], DELIVER_PERMFAIL, reason);
		} else if (pw->uid == 0 || pw->gid == 0) {
			reason = "no delivery as uid 0; alias root to a user";
			if (!m->remote_logged[i])
				runner_log(m, i, m->env.rcpts[i].addr, NULL,
				    "deferred", reason);
			m->remote_logged[i] = 1;
			runner_note_result(&m->rs[i], DELIVER_TEMPFAIL, reason);
		} else
			runner_add_task(m, i, pw, x->domain);
		return;
	case ALIAS_ADDRESS:
		if ((at = strrchr(t->value, '@')) == NULL)
			break;
		if (strlcpy(dom, at + 1, sizeof(dom)) >= sizeof(dom))
			break;
		for (k = 0; dom[k] != '\0'; k++)
			dom[k] = (char)tolower((unsigned char)dom[k]);
		if (smtpd_domain_is_local(runner.sd, dom)) {
			if ((size_t)(at - t->value) >= sizeof(local) ||
			    at == t->value)
				break;
			memcpy(local, t->value, (size_t)(at - t->value));
			local[at - t->value] = '\0';
			for (p = x; p != NULL; p = p->parent)
				if (strcasecmp(p->name, local) == 0)
					break;
			if (p != NULL || x->depth >= ALIASES_DEPTH_MAX) {
				reason = "alias loop";
				runner_log(m, i, m->env.rcpts[i].addr, NULL,
				    "bounced", reason);
				runner_note_result(&m->rs[i],
				    DELIVER_PERMFAIL, reason);
				return;
			}
			runner_expand(m, i, local, dom, x);
			return;
		}
		runner_remote_add(m, i, t->value);
		return;
	case ALIAS_COMMAND:
	case ALIAS_FILE:
	case ALIAS_INCLUDE:
		reason = t->type == ALIAS_COMMAND ?
		    "delivery to a command not supported" :
		    t->type == ALIAS_FILE ? "delivery to a file not supported" :
		    ":include: not supported";
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
		    reason);
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL, reason);
		return;
	}
	runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced",
	    "bad alias target");
	runner_note_result(&m->rs[i], DELIVER_PERMFAIL, "bad alias target");
}

static void
runner_expand(struct rmsg *m, size_t i, const char *local,
    const char *domain, const struct runner_exp *parent)
{
	struct runner_exp	 x;
	struct aliases		 empty;
	const char		*err;
	size_t			 k;

	memset(&x, 0, sizeof(x));
	memset(&empty, 0, sizeof(empty));
	x.m = m;
	x.i = i;
	x.domain = domain;
	x.parent = parent;
	x.name = local;
	x.depth = parent != NULL ? parent->depth + 1 : 0;
	if (aliases_expand(runner.udb.al_loaded ? &runner.udb.al : &empty, local,
	    runner_exp_collect, &x, &err) == -1) {
		runner_log(m, i, m->env.rcpts[i].addr, NULL, "bounced", err);
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL, err);
	}
	for (k = 0; k < x.nt; k++) {
		runner_target(&x, &x.t[k]);
		free(x.t[k].value);
	}
	free(x.t);
}

/*
 * Route pending recipient i of m: a remote address to runner_remote.c,
 * a local one through etc/aliases to delivery tasks.
 */
void
runner_local_route(struct rmsg *m, size_t i)
{
	const char	*at;
	char		 dom[DELIVER_ADDR_MAX], local[128];
	size_t		 k;

	at = strrchr(m->env.rcpts[i].addr, '@');
	if (at == NULL || at == m->env.rcpts[i].addr ||
	    (size_t)(at - m->env.rcpts[i].addr) >= sizeof(local) ||
	    strlcpy(dom, at + 1, sizeof(dom)) >= sizeof(dom)) {
		runner_log(m, i, m->env.rcpts[i].addr, NULL,
		    "bounced", "bad recipient address");
		runner_note_result(&m->rs[i], DELIVER_PERMFAIL,
		    "bad recipient address");
		return;
	}
	memcpy(local, m->env.rcpts[i].addr,
	    (size_t)(at - m->env.rcpts[i].addr));
	local[at - m->env.rcpts[i].addr] = '\0';
	for (k = 0; dom[k] != '\0'; k++)
		dom[k] = (char)tolower((unsigned char)dom[k]);
	if (!smtpd_domain_is_local(runner.sd, dom)) {
		runner_remote_add(m, i, m->env.rcpts[i].addr);
		return;
	}
	runner_expand(m, i, local, dom, NULL);
}

static void
runner_local_done(struct rtask *t, const struct deliver_res *res)
{
	struct rmsg	*m = t->m;
	const char	*status;

	status = res->status == DELIVER_OK ? "sent" :
	    res->status == DELIVER_TEMPFAIL ? "deferred" : "bounced";
	runner_log(m, t->rcpt, t->addr, res->mailbox, status,
	    res->status == DELIVER_OK && res->reason[0] == '\0' ? NULL :
	    res->reason);
	runner_note_result(&m->rs[t->rcpt], res->status, res->reason);
	m->rs[t->rcpt].outstanding--;
	m->inflight--;
	runner_decide(m, t->rcpt);
	if (m->inflight == 0 && m->next == m->ntasks && m->rjobs == 0)
		runner_pass_finish(m);
}

void
runner_local_start(struct rtask *t)
{
	struct rmsg		*m = t->m;
	struct deliver_req	 req;
	struct deliver_res	 res;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len, s;
	int			 fd;

	memset(&req, 0, sizeof(req));
	req.reqid = ++runner.reqid;
	req.recovered = m->recovered || m->tried[t->rcpt];
	(void)strlcpy(req.queue_id, m->id, sizeof(req.queue_id));
	req.rcpt_index = (unsigned int)t->rcpt;
	req.created = (long long)m->env.created;
	(void)strlcpy(req.user, t->user, sizeof(req.user));
	(void)strlcpy(req.rcpt, t->addr, sizeof(req.rcpt));
	m->tried[t->rcpt] = 1;
	m->inflight++;
	memset(&res, 0, sizeof(res));
	res.status = DELIVER_TEMPFAIL;
	if (strlcpy(req.sender, m->env.sender, sizeof(req.sender)) >=
	    sizeof(req.sender) ||
	    deliver_req_encode(&req, msg, sizeof(msg), &len) == -1) {
		res.status = DELIVER_PERMFAIL;
		(void)strlcpy(res.reason, "address not deliverable",
		    sizeof(res.reason));
		runner_local_done(t, &res);
		return;
	}
	if ((fd = queue_msg_open(QUEUE_DIR, m->id)) == -1) {
		(void)snprintf(res.reason, sizeof(res.reason),
		    "message file: %s", strerror(errno));
		runner_local_done(t, &res);
		return;
	}
	if (fdpass_send(runner.dfd, fd, msg, len) == -1)
		fatal("runner: send to deliverer");
	(void)close(fd);
	for (s = 0; s < RUNNER_PARALLEL; s++)
		if (runner.slots[s] == NULL)
			break;
	ASSERT(s < RUNNER_PARALLEL);
	runner.slots[s] = t;
	runner.slot_reqid[s] = req.reqid;
	runner.inflight++;
}

void
runner_local_on_reply(int fd, int events, void *arg)
{
	struct deliver_res	 res;
	struct rtask		*t;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX + 1];
	ssize_t			 n;
	size_t			 s;
	int			 xfd = -1;

	(void)events;
	(void)arg;
	n = fdpass_recv(fd, &xfd, msg, sizeof(msg));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == -1)
		fatal("runner: receive from deliverer");
	if (n == 0)
		fatalx("runner: deliverer went away");
	if (xfd != -1)
		fatalx("runner: unexpected descriptor from deliverer");
	if (deliver_res_decode(msg, (size_t)n, &res, &err) == -1)
		fatalx("runner: deliverer: %s", err);
	for (s = 0; s < RUNNER_PARALLEL; s++)
		if (runner.slots[s] != NULL &&
		    runner.slot_reqid[s] == res.reqid)
			break;
	if (s == RUNNER_PARALLEL)
		fatalx("runner: deliverer answered unknown request %u",
		    res.reqid);
	t = runner.slots[s];
	runner.slots[s] = NULL;
	runner.inflight--;
	runner_local_done(t, &res);
	runner_maybe_exit();
	runner_kick();
}
