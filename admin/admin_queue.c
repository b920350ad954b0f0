/*
 * admin_queue.c — "virtmail queue [DOMAIN]", "virtmail flush [DOMAIN]",
 * "virtmail queue delete DOMAIN ID" and "virtmail queue bounce DOMAIN
 * ID".
 *
 * SECURITY
 *	Every step that touches a domain's queue runs in a child chrooted
 *	into the domain's root as its run_as account (admin_in_domain):
 *	the queue belongs to that account, and nothing in it can make
 *	root open a host file or connect to a host socket.  Queue ids
 *	from the command line are checked with queue_id_valid() before
 *	they are sent or used in a path.  Envelope text (senders,
 *	recipients, diagnostics from remote servers) is cleaned with
 *	log_clean() before it reaches the terminal.
 *
 * CONSISTENCY
 *	The listing reads env/ and hold/ (queue_list) and then each
 *	envelope; the runner replaces envelopes atomically (rename), so
 *	each message is shown in one consistent state; one that left the
 *	queue between the two steps is skipped.
 *
 * CONTROL
 *	flush, delete and bounce are one line to the runner's control
 *	socket (RUNNER_CTL_SOCKET, protocol in smtpd.h).  When no runner
 *	answers, flush and bounce fail (EX_UNAVAILABLE); delete then
 *	removes the files itself (queue_remove: envelope first), which is
 *	safe because no runner is there to be working on them.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "fileio.h"
#include "log.h"
#include "queue.h"
#include "smtpd.h"
#include "virtmail.h"

#define AQ_TEXT_MAX	1024	/* printed field, before cleaning */

struct aq_ctl {
	const char	*cmd;		/* RUNNER_CTL_FLUSH, ... */
	const char	*id;		/* NULL for flush */
};

/* Print s cleaned of control characters, at most AQ_TEXT_MAX bytes. */
static const char *
aq_clean(char *dst, size_t size, const char *s)
{
	size_t	 n;

	if (s == NULL)
		return "";
	n = strlen(s);
	if (n > AQ_TEXT_MAX)
		n = AQ_TEXT_MAX;
	return log_clean(dst, size, s, n);
}

static const char *
aq_time(time_t t, char *dst, size_t size)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(dst, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		(void)snprintf(dst, size, "%lld", (long long)t);
	return dst;
}

static const char *
aq_state(const struct queue_env *e, const struct queue_rcpt *r)
{
	switch (r->state) {
	case QUEUE_RCPT_DONE:
		return "delivered";
	case QUEUE_RCPT_FAILED:
		return "bounced";
	case QUEUE_RCPT_PENDING:
		break;
	}
	if (e->hold_reason != NULL)
		return "held";
	return e->attempts > 0 || r->diag != NULL ? "deferred" : "queued";
}

/* In the domain's root as run_as: list its queue. */
static int
aq_list(const struct domain *vd, void *arg)
{
	struct queue_env	 e;
	const char		*err;
	char			**ids, when[64], next[64];
	char			 c1[AQ_TEXT_MAX * 4 + 1], c2[AQ_TEXT_MAX * 4 + 1];
	size_t			 n, i, k, shown = 0;

	(void)arg;
	if (queue_list(QUEUE_DIR, 1, &ids, &n, &err) == -1) {
		admin_warnx("%s: queue: %s", vd->name, err);
		return EX_IOERR;
	}
	printf("domain %s root %s\n", vd->name, vd->dir);
	for (i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		if (queue_env_load(QUEUE_DIR, ids[i], &e, &err) == -1) {
			if (errno != ENOENT)
				printf("%s  (unreadable envelope: %s)\n", ids[i],
				    err);
			continue;
		}
		printf("%s  %s  %llu  <%s>", e.id, aq_time(e.created, when,
		    sizeof(when)), (unsigned long long)e.size,
		    aq_clean(c1, sizeof(c1), e.sender));
		if (e.hold_reason != NULL)
			printf("  held: %s", aq_clean(c2, sizeof(c2),
			    e.hold_reason));
		else if (e.next_attempt > 0)
			printf("  attempts=%u next=%s", e.attempts,
			    aq_time(e.next_attempt, next, sizeof(next)));
		putchar('\n');
		for (k = 0; k < e.nrcpts; k++) {
			printf("    <%s>  %s", aq_clean(c1, sizeof(c1),
			    e.rcpts[k].addr), aq_state(&e, &e.rcpts[k]));
			if (e.rcpts[k].diag != NULL)
				printf("  (%s)", aq_clean(c2, sizeof(c2),
				    e.rcpts[k].diag));
			putchar('\n');
		}
		queue_env_free(&e);
		shown++;
	}
	printf("%zu message%s\n", shown, shown == 1 ? "" : "s");
	queue_list_free(ids, n);
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

/*
 * Send one request to the runner and read its answer line into ans.
 * 0 when answered; -1 with errno ECONNREFUSED/ENOENT when no runner
 * listens, other errno for other failures.
 */
static int
aq_ctl_send(const char *req, char *ans, size_t size)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv;
	size_t			 got = 0;
	ssize_t			 n;
	int			 fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, RUNNER_CTL_SOCKET, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	tv.tv_sec = ADMIN_CTL_WAIT;
	tv.tv_usec = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    write_all(fd, req, strlen(req)) == -1)
		goto fail;
	for (;;) {
		if (got + 1 >= size) {
			errno = EPROTO;
			goto fail;
		}
		n = read(fd, ans + got, size - got - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
		if (memchr(ans, '\n', got) != NULL)
			break;
	}
	ans[got] = '\0';
	if (got == 0 || ans[got - 1] != '\n') {
		errno = EPROTO;
		goto fail;
	}
	ans[got - 1] = '\0';
	(void)close(fd);
	return 0;
 fail:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return -1;
}

/* In the domain's root as run_as: one control request. */
static int
aq_control(const struct domain *vd, void *arg)
{
	const struct aq_ctl	*c = arg;
	struct queue_env	 e;
	const char		*err;
	char			 req[RUNNER_CTL_LINE_MAX + 1];
	char			 ans[RUNNER_CTL_LINE_MAX * 4];
	char			 clean[RUNNER_CTL_LINE_MAX * 16];
	int			 r;

	r = c->id != NULL ? snprintf(req, sizeof(req), "%s %s\n", c->cmd,
	    c->id) : snprintf(req, sizeof(req), "%s\n", c->cmd);
	if (r < 0 || (size_t)r >= sizeof(req))
		return EX_SOFTWARE;
	if (aq_ctl_send(req, ans, sizeof(ans)) == -1) {
		if (errno != ECONNREFUSED && errno != ENOENT) {
			admin_warnx("%s: %s: %s", vd->name, RUNNER_CTL_SOCKET,
			    strerror(errno));
			return EX_TEMPFAIL;
		}
		if (strcmp(c->cmd, RUNNER_CTL_DELETE) != 0) {
			admin_warnx("%s: the queue runner is not running",
			    vd->name);
			return EX_UNAVAILABLE;
		}
		/* No runner: nobody else touches the files now. */
		memset(&e, 0, sizeof(e));
		if (queue_env_load(QUEUE_DIR, c->id, &e, &err) == -1 &&
		    errno == ENOENT) {
			admin_warnx("%s: %s: no such message", vd->name,
			    c->id);
			return EX_DATAERR;
		}
		queue_env_free(&e);
		if (queue_remove(QUEUE_DIR, c->id, &err) == -1) {
			admin_warnx("%s: %s: %s", vd->name, c->id,
			    errno == ENOENT ? "no such message" : err);
			return errno == ENOENT ? EX_DATAERR : EX_IOERR;
		}
		printf("%s: %s: deleted (runner not running)\n", vd->name,
		    c->id);
		return EX_OK;
	}
	(void)log_clean(clean, sizeof(clean), ans, strlen(ans));
	if (strcmp(ans, RUNNER_CTL_OK) == 0) {
		if (c->id != NULL)
			printf("%s: %s: %s\n", vd->name, c->id,
			    strcmp(c->cmd, RUNNER_CTL_DELETE) == 0 ? "deleted" :
			    "bounced");
		else
			printf("%s: flushed\n", vd->name);
		return EX_OK;
	}
	if (strncmp(ans, RUNNER_CTL_ERROR " ", strlen(RUNNER_CTL_ERROR) + 1) ==
	    0) {
		admin_warnx("%s: %s%s%s", vd->name, c->id != NULL ? c->id : "",
		    c->id != NULL ? ": " : "", clean +
		    strlen(RUNNER_CTL_ERROR) + 1);
		return strstr(ans, "no such") != NULL ? EX_DATAERR :
		    EX_UNAVAILABLE;
	}
	admin_warnx("%s: unexpected answer from the runner: %s", vd->name,
	    clean);
	return EX_PROTOCOL;
}

/* Run fn in one named domain, or in every domain when key is NULL. */
static int
aq_each(const struct admin_ctx *x, const char *key,
    int (*fn)(const struct domain *, void *), void *arg)
{
	const struct domain	*vd;
	size_t			 i, k;
	int			 r, worst = EX_OK;

	if (key != NULL) {
		if ((vd = admin_domain_find(x, key)) == NULL) {
			admin_warnx("%s: no such domain", key);
			return EX_NOHOST;
		}
		return admin_in_domain(x, vd, fn, arg);
	}
	for (i = 0; i < x->table.ndomains; i++) {
		vd = &x->table.domains[i];
		/* Several addresses may name one root: once per root. */
		for (k = 0; k < i; k++)
			if (strcmp(x->table.domains[k].dir, vd->dir) == 0)
				break;
		if (k < i)
			continue;
		if ((r = admin_in_domain(x, vd, fn, arg)) != EX_OK)
			worst = r;
	}
	return worst;
}

static int
aq_usage(void)
{
	admin_warnx("usage: virtmail queue [DOMAIN] | "
	    "virtmail queue delete|bounce DOMAIN ID");
	return EX_USAGE;
}

int
admin_queue(const struct admin_opts *o, int argc, char **argv)
{
	struct admin_ctx	 x;
	struct aq_ctl		 c;
	const char		*key = NULL;
	int			 r;

	memset(&c, 0, sizeof(c));
	if (argc >= 2 && (strcmp(argv[1], "delete") == 0 ||
	    strcmp(argv[1], "bounce") == 0)) {
		if (argc != 4)
			return aq_usage();
		c.cmd = strcmp(argv[1], "delete") == 0 ? RUNNER_CTL_DELETE :
		    RUNNER_CTL_BOUNCE;
		key = argv[2];
		c.id = argv[3];
		if (!queue_id_valid(c.id)) {
			admin_warnx("%.64s: not a queue id", c.id);
			return EX_DATAERR;
		}
	} else if (argc == 2)
		key = argv[1];
	else if (argc > 2)
		return aq_usage();
	if ((r = admin_ctx_load(&x, o)) != 0)
		return r;
	if (c.cmd != NULL)
		r = aq_each(&x, key, aq_control, &c);
	else
		r = aq_each(&x, key, aq_list, NULL);
	admin_ctx_free(&x);
	return r;
}

int
admin_flush(const struct admin_opts *o, int argc, char **argv)
{
	struct admin_ctx	 x;
	struct aq_ctl		 c;
	int			 r;

	if (argc > 2) {
		admin_warnx("usage: virtmail flush [DOMAIN]");
		return EX_USAGE;
	}
	if ((r = admin_ctx_load(&x, o)) != 0)
		return r;
	c.cmd = RUNNER_CTL_FLUSH;
	c.id = NULL;
	r = aq_each(&x, argc == 2 ? argv[1] : NULL, aq_control, &c);
	admin_ctx_free(&x);
	return r;
}
