/*
 * smtp_direct.c — local delivery before the 250 (the worker's fast
 * path).
 *
 * DESCRIPTION
 *	A recipient that is a plain local user (in the domain's passwd,
 *	not an alias, not uid or gid 0: what the runner's routing in
 *	runner_local.c would deliver to that very user) gets the message
 *	in its mailbox while the client waits for the reply to its final
 *	dot.  When every recipient is delivered so, the message is never
 *	queued: one mailbox file per recipient instead of a queue body,
 *	an envelope, their renames and fsyncs, and the mailbox file
 *	later (docs/performance.md).  Any other recipient, and any whose
 *	delivery did not succeed now, goes into the queue as before with
 *	the delivered ones recorded as done; the 250 still comes only
 *	when everything is on disk.  A crash after a mailbox write and
 *	before the 250 delivers the message again when the client sends
 *	it again, as a crash between a queue commit and its 250 would
 *	(RFC 1047).
 *
 *	The commit threads ask a deliverer of the worker's own
 *	(deliverer.c: root outside the domain's root, whose writers enter
 *	the root as the user in one step), over one socket per thread;
 *	the requests and answers are those of the queue runner.  The
 *	request names no mailbox format: the deliverer takes the
 *	domain's.
 *
 * SECURITY
 *	The deliverer (started by smtp_direct_start.c) trusts nothing
 *	the worker sends (deliverer.c): a compromised worker gets no more
 *	from it than by queueing the same message for the runner.
 *	smtp_direct_plan() runs in the event loop, which owns the user
 *	database; smtp_direct_deliver() runs in a commit thread and
 *	touches only its session, its socket and the log.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "compat.h"
#include "fdpass.h"
#include "log.h"
#include "passwd.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "xmalloc.h"

#define DIRECT_WINDOW		16	/* requests in flight per commit */

/*
 * The passwd user a recipient goes to when it is a plain local user,
 * else NULL; dom_r gets its domain in lower case.
 */
static const struct passwd_entry *
direct_user(struct smtp_session *s, const char *rcpt, char *dom_r,
    size_t size)
{
	const struct passwd_entry	*pw;
	const char			*at;
	char				 local[PASSWD_NAME_MAX + 1];
	size_t				 n, k;

	if ((at = strrchr(rcpt, '@')) == NULL ||
	    (n = (size_t)(at - rcpt)) == 0 || n >= sizeof(local) ||
	    strlcpy(dom_r, at + 1, size) >= size)
		return NULL;
	for (k = 0; k < n; k++)
		local[k] = (char)tolower((unsigned char)rcpt[k]);
	local[n] = '\0';
	for (k = 0; dom_r[k] != '\0'; k++)
		dom_r[k] = (char)tolower((unsigned char)dom_r[k]);
	if (!smtpd_domain_is_local(s->sd, dom_r) ||
	    !passwd_name_valid(local) || !s->udb->pw_loaded)
		return NULL;
	if (s->udb->al_loaded && aliases_find(&s->udb->al, local) != NULL)
		return NULL;
	/* The runner's lookup: the name as given, then in lower case. */
	memcpy(local, rcpt, n);
	if ((pw = passwd_find(&s->udb->pw, local)) == NULL) {
		for (k = 0; k < n; k++)
			local[k] = (char)tolower((unsigned char)local[k]);
		pw = passwd_find(&s->udb->pw, local);
	}
	if (pw == NULL || pw->uid == 0 || pw->gid == 0)
		return NULL;
	return pw;
}

void
smtp_direct_plan(struct smtp_session *s)
{
	const struct passwd_entry	*pw;
	char				 dom[DELIVER_ADDR_MAX];
	char				 to[DELIVER_ADDR_MAX];
	size_t				 i;
	int				 n;

	smtp_direct_clear(s);
	if (s->mods.quarantine != NULL || s->nrcpts == 0)
		return;
	s->direct_to = xcalloc(s->nrcpts, sizeof(*s->direct_to));
	s->direct_user = xcalloc(s->nrcpts, sizeof(*s->direct_user));
	for (i = 0; i < s->nrcpts; i++) {
		if ((pw = direct_user(s, s->rcpts[i], dom, sizeof(dom))) ==
		    NULL)
			continue;
		n = snprintf(to, sizeof(to), "%s@%s", pw->name, dom);
		if (n < 0 || (size_t)n >= sizeof(to))
			continue;
		s->direct_to[i] = xstrdup(to);
		s->direct_user[i] = xstrdup(pw->name);
		s->ndirect++;
	}
}

void
smtp_direct_clear(struct smtp_session *s)
{
	size_t	 i;

	if (s->direct_to == NULL)
		return;
	for (i = 0; i < s->nrcpts; i++) {
		free(s->direct_to[i]);
		free(s->direct_user[i]);
	}
	free(s->direct_to);
	free(s->direct_user);
	s->direct_to = s->direct_user = NULL;
	s->ndirect = 0;
}

static void
direct_log(const char *id, const char *to, const char *orig,
    const struct deliver_res *res)
{
	char	 cto[DELIVER_ADDR_MAX * 4], corig[DELIVER_ADDR_MAX * 4];
	char	 creason[DELIVER_REASON_MAX * 4], cbox[DELIVER_MAILBOX_MAX * 4];
	int	 other = strcmp(to, orig) != 0;

	(void)log_clean(cto, sizeof(cto), to, strlen(to));
	(void)log_clean(corig, sizeof(corig), orig, strlen(orig));
	(void)log_clean(cbox, sizeof(cbox), res->mailbox,
	    strlen(res->mailbox));
	(void)log_clean(creason, sizeof(creason), res->reason,
	    strlen(res->reason));
	if (res->status == DELIVER_OK)
		log_info("%s delivery to=<%s>%s%s%s mailbox=%s status=sent "
		    "delay=0s", id, cto, other ? " orig_to=<" : "",
		    other ? corig : "", other ? ">" : "",
		    cbox[0] != '\0' ? cbox : "none");
	else
		log_info("%s delivery to=<%s>%s%s%s mailbox=none "
		    "status=queued reason=\"%s\"", id, cto,
		    other ? " orig_to=<" : "", other ? corig : "",
		    other ? ">" : "", creason);
}

/*
 * Ask for recipient i's delivery of the message on fd.  0 sent, 1 not
 * deliverable here (the runner will say why), -1 the channel failed.
 */
static int
direct_ask(struct smtp_session *s, const struct queue_env *e, size_t i,
    int fd)
{
	struct deliver_req	 req;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len;

	memset(&req, 0, sizeof(req));
	req.reqid = (uint32_t)i + 1;
	(void)strlcpy(req.queue_id, s->w.id, sizeof(req.queue_id));
	req.rcpt_index = (unsigned int)i;
	req.created = (long long)e->created;
	if (strlcpy(req.user, s->direct_user[i], sizeof(req.user)) >=
	    sizeof(req.user) ||
	    strlcpy(req.rcpt, s->direct_to[i], sizeof(req.rcpt)) >=
	    sizeof(req.rcpt) ||
	    strlcpy(req.sender, e->sender, sizeof(req.sender)) >=
	    sizeof(req.sender) ||
	    deliver_req_encode(&req, msg, sizeof(msg), &len) == -1)
		return 1;
	return fdpass_send(s->direct_fd, fd, msg, len) == -1 ? -1 : 0;
}

/*
 * Up to DIRECT_WINDOW requests in flight, the answers read as they
 * come: deliveries run in parallel, and neither side's socket buffer
 * can fill up while the other waits on it.
 */
int
smtp_direct_deliver(struct smtp_session *s, struct queue_env *e)
{
	struct deliver_res	 res;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 i, next = 0, inflight = 0;
	ssize_t			 n;
	int			 fd, rfd, r, ndone = 0;

	if (s->ndirect == 0 || s->direct_fd == -1 ||
	    queue_writer_seal(&s->w) == -1)
		return 0;
	/* Our own description: the writer's offset stays where it is. */
	if ((fd = open(s->w.tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1) {
		log_warn("%s direct delivery: open %s", s->w.id,
		    s->w.tmp_path);
		return 0;
	}
	for (;;) {
		while (inflight < DIRECT_WINDOW && next < s->nrcpts) {
			i = next++;
			if (s->direct_to[i] == NULL)
				continue;
			if ((r = direct_ask(s, e, i, fd)) == -1)
				goto broken;
			if (r == 0)
				inflight++;
		}
		if (inflight == 0)
			break;
		rfd = -1;
		n = fdpass_recv(s->direct_fd, &rfd, msg, sizeof(msg));
		if (n == -1 && errno == EINTR)
			continue;
		if (rfd != -1)
			(void)close(rfd);
		if (n <= 0 || deliver_res_decode(msg, (size_t)n, &res,
		    &err) == -1 || res.reqid == 0 ||
		    res.reqid > s->nrcpts ||
		    s->direct_to[res.reqid - 1] == NULL)
			goto broken;
		inflight--;
		i = res.reqid - 1;
		direct_log(s->w.id, s->direct_to[i], e->rcpts[i].addr, &res);
		if (res.status == DELIVER_OK &&
		    e->rcpts[i].state == QUEUE_RCPT_PENDING) {
			e->rcpts[i].state = QUEUE_RCPT_DONE;
			ndone++;
		}
	}
	(void)close(fd);
	return ndone;

 broken:
	/*
	 * The deliverer is gone or spoke garbage: this thread stops
	 * asking it.  What it delivered stays delivered; recipients not
	 * yet marked done are queued, and the deterministic Maildir name
	 * (deliver_local.c) keeps the runner from writing them twice.
	 */
	log_warnx("%s direct delivery: deliverer channel lost; queueing",
	    s->w.id);
	s->direct_fd = -1;
	(void)close(fd);
	return ndone;
}
