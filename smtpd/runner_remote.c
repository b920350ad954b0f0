/*
 * runner_remote.c — remote recipients in the queue runner: grouped
 * into one mta.c job per destination domain, results logged and fed
 * back into the pass.
 *
 * SECURITY
 *	Runs in the runner: the domain's run_as user, chrooted in the
 *	domain's root.  The replies in a finished job come from remote
 *	peers (through mta.c): they are logged only through log_clean()
 *	and kept as the diagnostic of a DSN, never interpreted further
 *	than their reply code.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat.h"
#include "log.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

struct rjob {
	struct mta_job		 job;
	struct rmsg		*m;
	size_t			*idx;		/* recipient of each rcpt */
};

void
runner_remote_clear(struct rmsg *m)
{
	size_t	 k;

	for (k = 0; k < m->nremote; k++)
		free(m->remote[k].addr);
	free(m->remote);
	m->remote = NULL;
	m->nremote = 0;
}

void
runner_remote_add(struct rmsg *m, size_t i, const char *addr)
{
	m->remote = xreallocarray(m->remote, m->nremote + 1,
	    sizeof(*m->remote));
	m->remote[m->nremote].rcpt = i;
	m->remote[m->nremote].addr = xstrdup(addr);
	m->nremote++;
	m->rs[i].outstanding++;
}

/* The one log line per remote delivery attempt. */
static void
runner_log_remote(struct rmsg *m, size_t i, const char *to,
    const struct mta_job *job, const struct mta_rcpt *r)
{
	char		 cto[DELIVER_ADDR_MAX * 4], corig[DELIVER_ADDR_MAX * 4];
	char		 crelay[sizeof(job->relay) * 4];
	char		 creason[MTA_REPLY_MAX * 4];
	const char	*orig = m->env.rcpts[i].addr;
	int		 other = strcmp(to, orig) != 0;

	(void)log_clean(cto, sizeof(cto), to, strlen(to));
	(void)log_clean(corig, sizeof(corig), orig, strlen(orig));
	(void)log_clean(crelay, sizeof(crelay), job->relay,
	    strlen(job->relay));
	(void)log_clean(creason, sizeof(creason), r->reply, strlen(r->reply));
	log_info("%s delivery to=<%s>%s%s%s relay=%s status=%s delay=%llds "
	    "dsn=%s reason=\"%s\"", m->id, cto, other ? " orig_to=<" : "",
	    other ? corig : "", other ? ">" : "", crelay,
	    r->status == DELIVER_OK ? "sent" : r->status == DELIVER_TEMPFAIL ?
	    "deferred" : "bounced", runner_delay(m), r->dsn, creason);
}

static void
runner_job_done(struct mta_job *job, void *arg)
{
	struct rjob		*j = arg;
	struct rmsg		*m = j->m;
	struct mta_rcpt		*r;
	struct rrcpt		*rs;
	size_t			 k;

	for (k = 0; k < job->nrcpts; k++) {
		r = &job->rcpts[k];
		rs = &m->rs[j->idx[k]];
		runner_log_remote(m, j->idx[k], r->addr, job, r);
		runner_note_result(rs, (enum deliver_status)r->status,
		    r->reply);
		if (r->status != DELIVER_OK) {
			(void)strlcpy(rs->dsn, r->dsn, sizeof(rs->dsn));
			(void)strlcpy(rs->rmta, job->rmta, sizeof(rs->rmta));
			/* A reply of the peer, or our own words? */
			rs->diag_smtp = strlen(r->reply) >= 4 &&
			    r->reply[0] >= '2' && r->reply[0] <= '5' &&
			    r->reply[3] == ' ' && job->rmta[0] != '\0' &&
			    strchr(r->reply, ':') != r->reply + 3;
		}
		rs->outstanding--;
		runner_decide(m, j->idx[k]);
	}
	free(j->idx);
	free(job->rcpts);
	free(j);
	m->rjobs--;
	if (m->inflight == 0 && m->next == m->ntasks && m->rjobs == 0)
		runner_pass_finish(m);
	runner_kick();
}

/* One job per destination domain, at most MTA_RCPT_MAX rcpts each. */
void
runner_remote_start(struct rmsg *m)
{
	struct rjob	*j;
	unsigned char	*taken;
	const char	*at;
	size_t		 k, l, n;

	if (m->nremote == 0)
		return;
	taken = xcalloc(m->nremote, 1);
	for (k = 0; k < m->nremote; k++) {
		if (taken[k])
			continue;
		j = xcalloc(1, sizeof(*j));
		j->m = m;
		j->job.rcpts = xcalloc(MTA_RCPT_MAX, sizeof(*j->job.rcpts));
		j->idx = xcalloc(MTA_RCPT_MAX, sizeof(*j->idx));
		at = strrchr(m->remote[k].addr, '@');
		(void)strlcpy(j->job.domain, at != NULL ? at + 1 : "",
		    sizeof(j->job.domain));
		for (n = 0; j->job.domain[n] != '\0'; n++)
			j->job.domain[n] = (char)tolower(
			    (unsigned char)j->job.domain[n]);
		for (l = k, n = 0; l < m->nremote && n < MTA_RCPT_MAX; l++) {
			at = strrchr(m->remote[l].addr, '@');
			if (taken[l] || at == NULL ||
			    strcasecmp(at + 1, j->job.domain) != 0)
				continue;
			taken[l] = 1;
			j->job.rcpts[n].addr = m->remote[l].addr;
			j->idx[n++] = m->remote[l].rcpt;
		}
		j->job.nrcpts = n;
		(void)strlcpy(j->job.id, m->id, sizeof(j->job.id));
		j->job.sender = m->env.sender;
		j->job.size = m->env.size;
		j->job.eightbit = (m->env.flags & QUEUE_F_8BITMIME) != 0;
		j->job.done = runner_job_done;
		j->job.arg = j;
		m->rjobs++;
		mta_submit(&j->job);
	}
	free(taken);
}
