/*
 * runner_dsn.c — the queue runner's delivery status notifications:
 * the bounce owed for failed recipients at the end of a pass, and the
 * optional delay warning (RFC 3464; composed by bounce.c).
 *
 * SECURITY
 *	Runs in the runner: the domain's run_as user, chrooted in the
 *	domain's root.  A DSN goes into the domain's own queue only, to
 *	the message's envelope sender; never to the null sender (RFC 5321
 *	§4.5.5), so DSNs cannot loop.  Remote reply texts in it were
 *	received by mta.c; bounce.c quotes them as the Diagnostic-Code.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "log.h"
#include "queue.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

/* Queue a DSN for the recipients in list (failed or delayed). */
static int
runner_dsn_queue(struct rmsg *m, const size_t *list, size_t n, int failed)
{
	struct bounce_info	 bi;
	struct bounce_rcpt	*br;
	struct rrcpt		*rs;
	const char		*err;
	char			 id[QUEUE_ID_LEN + 1], cto[DELIVER_ADDR_MAX * 4];
	size_t			 k;
	int			 fd, r;

	memset(&bi, 0, sizeof(bi));
	bi.queue_id = m->id;
	bi.reporting_mta = runner.sd->hostname;
	bi.from_domain = runner.sd->nlocal_domains > 0 ?
	    runner.sd->local_domains[0] : runner.sd->hostname;
	bi.to = m->env.sender;
	bi.arrival = m->env.created;
	bi.now = time(NULL);
	br = xcalloc(n, sizeof(*br));
	for (k = 0; k < n; k++) {
		rs = &m->rs[list[k]];
		br[k].addr = m->env.rcpts[list[k]].addr;
		br[k].orcpt = m->env.rcpts[list[k]].orcpt;
		br[k].failed = failed;
		if (rs->dsn[0] == '\0')
			(void)strlcpy(rs->dsn, !failed ? "4.0.0" :
			    strcmp(rs->reason, "no such user") == 0 ?
			    "5.1.1" : "5.0.0", sizeof(rs->dsn));
		br[k].status = rs->dsn;
		br[k].rmta = rs->rmta[0] != '\0' ? rs->rmta : NULL;
		br[k].diag = rs->reason[0] != '\0' ? rs->reason :
		    "unknown error";
		br[k].diag_smtp = rs->diag_smtp;
	}
	fd = queue_msg_open(QUEUE_DIR, m->id);
	r = bounce_inject(QUEUE_DIR, &bi, br, n, fd, id, &err);
	if (fd != -1)
		(void)close(fd);
	free(br);
	(void)log_clean(cto, sizeof(cto), m->env.sender,
	    strlen(m->env.sender));
	if (r == -1)
		log_warnx("%s dsn to=<%s> failed: %s", m->id, cto, err);
	else
		log_info("%s dsn %s to=<%s> id=%s nrcpt=%zu", m->id,
		    failed ? "bounce" : "delay", cto, id, n);
	return r;
}

/* Send the DSN owed for failed recipients, then mark them failed. */
void
runner_dsn_owed(struct rmsg *m)
{
	const char	*err;
	size_t		*list, n = 0, i;

	list = xcalloc(m->env.nrcpts + 1, sizeof(*list));
	for (i = 0; i < m->env.nrcpts; i++)
		if (m->rs[i].bounce &&
		    m->env.rcpts[i].state == QUEUE_RCPT_PENDING)
			list[n++] = i;
	if (n == 0) {
		free(list);
		return;
	}
	/* Never a bounce to <> (RFC 5321 §4.5.5): log and drop. */
	if (m->env.sender[0] == '\0')
		log_info("%s dsn dropped: null sender nrcpt=%zu", m->id, n);
	else if (runner_dsn_queue(m, list, n, 1) == -1) {
		/* Keep them pending: tried again, bounced again. */
		for (i = 0; i < n; i++) {
			m->rs[list[i]].bounce = 0;
			m->rs[list[i]].temp++;
		}
		free(list);
		return;
	}
	for (i = 0; i < n; i++)
		m->env.rcpts[list[i]].state = QUEUE_RCPT_FAILED;
	free(list);
	if (runner_pending(&m->env) > 0 &&
	    queue_env_update(QUEUE_DIR, &m->env, &err) == -1)
		log_warnx("%s: envelope update: %s", m->id, err);
}

/*
 * delay_warning: one "delayed" DSN once a message waits that long,
 * recorded in the envelope (QUEUE_F_WARNED) once the DSN is queued: a
 * restarted runner does not warn again, and a crash in between warns
 * twice rather than never.
 */
void
runner_dsn_delay_warning(struct rmsg *m)
{
	const char	*err;
	size_t		*list, n = 0, i;

	if (runner.conf->delay_warning == 0 ||
	    (m->env.flags & QUEUE_F_WARNED) || m->env.sender[0] == '\0' ||
	    time(NULL) - m->env.created < (time_t)runner.conf->delay_warning)
		return;
	list = xcalloc(m->env.nrcpts + 1, sizeof(*list));
	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == QUEUE_RCPT_PENDING)
			list[n++] = i;
	if (n == 0 || runner_dsn_queue(m, list, n, 0) == 0) {
		m->env.flags |= QUEUE_F_WARNED;
		if (queue_env_update(QUEUE_DIR, &m->env, &err) == -1)
			log_warnx("%s: envelope update: %s", m->id, err);
	}
	free(list);
}
