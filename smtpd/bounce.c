/*
 * bounce.c — delivery status notifications: non-delivery reports and
 * delay warnings as RFC 3464 multipart/report messages (RFC 6522),
 * injected into the sending domain's own queue.
 *
 * WHO RUNS IT
 *	The domain's queue runner (chrooted, run_as), the owner of the
 *	queue.  The DSN goes from the null sender <> (RFC 5321 §4.5.5)
 *	to the original sender, with From: MAILER-DAEMON@DOMAIN, and is
 *	flagged QUEUE_F_BOUNCE; the runner never bounces a message from
 *	<>, so a DSN that cannot be delivered is logged and dropped.
 *
 * INPUT
 *	Recipient addresses come from our own envelope (checked by the
 *	SMTP session); diagnostic texts may come from remote servers, so
 *	every byte outside printable ASCII becomes '?' before it reaches
 *	a header field of the report.  The original header block is
 *	quoted as text/rfc822-headers, at most BOUNCE_HEADERS_MAX bytes.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "queue.h"
#include "smtpd.h"
#include "xmalloc.h"

#define BOUNCE_MAX	(BOUNCE_HEADERS_MAX + 1024 * 1024)

static int
bounce_date(char *dst, size_t size, time_t t)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(dst, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		return -1;
	return 0;
}

/* Append s with anything but printable ASCII replaced. */
static int
bounce_put_clean(struct buf *out, const char *s)
{
	int	 r = 0;

	for (; *s != '\0' && r == 0; s++)
		r = buf_putc(out, (unsigned char)*s >= 0x20 &&
		    (unsigned char)*s < 0x7f ? *s : '?');
	return r;
}

static int
bounce_field(struct buf *out, const char *name, const char *type,
    const char *value)
{
	int	 r;

	r = buf_printf(out, "%s: ", name);
	if (type != NULL)
		r |= buf_printf(out, "%s; ", type);
	r |= bounce_put_clean(out, value);
	r |= buf_putc(out, '\n');
	return r == 0 ? 0 : -1;
}

int
bounce_build(struct buf *out, const struct bounce_info *bi,
    const struct bounce_rcpt *rcpts, size_t n, const char *headers,
    size_t hlen)
{
	char		 now[64], arrival[64], bnd[80];
	const char	*semi;
	size_t		 i;
	int		 r = 0, failed = 0;

	if (bounce_date(now, sizeof(now), bi->now) == -1 ||
	    bounce_date(arrival, sizeof(arrival), bi->arrival) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (rcpts[i].failed)
			failed = 1;
	if (bi->boundary != NULL)
		(void)strlcpy(bnd, bi->boundary, sizeof(bnd));
	else
		(void)snprintf(bnd, sizeof(bnd), "%s.%lld/%s", bi->queue_id,
		    (long long)bi->now, bi->reporting_mta);

	/* RFC 5322 header; Auto-Submitted per RFC 3834 §5. */
	r |= buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\n",
	    bi->from_domain);
	r |= buf_printf(out, "To: <%s>\n", bi->to);
	r |= buf_printf(out, "Subject: %s\n", failed ?
	    "Undelivered Mail Returned to Sender" :
	    "Delayed Mail (still being retried)");
	r |= buf_printf(out, "Date: %s\n", now);
	r |= buf_printf(out, "Message-ID: <%s.%lld.dsn@%s>\n", bi->queue_id,
	    (long long)bi->now, bi->reporting_mta);
	r |= buf_puts(out, "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
	r |= buf_printf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s\"\n\n", bnd);
	r |= buf_puts(out, "This is a MIME-encapsulated message.\n\n");

	/* The human-readable part. */
	r |= buf_printf(out, "--%s\nContent-Description: Notification\n"
	    "Content-Type: text/plain; charset=us-ascii\n\n", bnd);
	r |= buf_printf(out, "This is the mail system at host %s.\n\n",
	    bi->reporting_mta);
	if (failed)
		r |= buf_puts(out, "Your message could not be delivered to "
		    "one or more recipients.\nIt is attached below.\n\n");
	else
		r |= buf_puts(out, "Your message could not be delivered yet "
		    "to one or more recipients.\nDelivery will be tried "
		    "again; you need not send it again.\n\n");
	for (i = 0; i < n; i++) {
		r |= buf_putc(out, '<');
		r |= bounce_put_clean(out, rcpts[i].addr);
		r |= buf_puts(out, ">: ");
		r |= bounce_put_clean(out, rcpts[i].diag != NULL ?
		    rcpts[i].diag : "unknown error");
		r |= buf_puts(out, "\n");
	}

	/* The machine-readable part, RFC 3464 §2. */
	r |= buf_printf(out, "\n--%s\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n", bnd);
	r |= bounce_field(out, "Reporting-MTA", "dns", bi->reporting_mta);
	r |= bounce_field(out, "X-Virtmail-Queue-ID", NULL, bi->queue_id);
	r |= bounce_field(out, "Arrival-Date", NULL, arrival);
	for (i = 0; i < n; i++) {
		r |= buf_putc(out, '\n');
		if (rcpts[i].orcpt != NULL) {
			semi = strchr(rcpts[i].orcpt, ';');
			r |= bounce_field(out, "Original-Recipient",
			    semi == NULL ? "rfc822" : NULL, rcpts[i].orcpt);
		}
		r |= bounce_field(out, "Final-Recipient", "rfc822",
		    rcpts[i].addr);
		r |= bounce_field(out, "Action", NULL, rcpts[i].failed ?
		    "failed" : "delayed");
		r |= bounce_field(out, "Status", NULL, rcpts[i].status);
		if (rcpts[i].rmta != NULL)
			r |= bounce_field(out, "Remote-MTA", "dns",
			    rcpts[i].rmta);
		r |= bounce_field(out, "Diagnostic-Code", rcpts[i].diag_smtp ?
		    "smtp" : "X-Virtmail", rcpts[i].diag != NULL ?
		    rcpts[i].diag : "unknown error");
		r |= bounce_field(out, "Last-Attempt-Date", NULL, now);
	}

	/* The original headers, RFC 6522 §3 / RFC 3462. */
	r |= buf_printf(out, "\n--%s\nContent-Description: Undelivered "
	    "Message Headers\nContent-Type: text/rfc822-headers\n\n", bnd);
	r |= buf_append(out, headers, hlen);
	if (hlen > 0 && headers[hlen - 1] != '\n')
		r |= buf_putc(out, '\n');
	r |= buf_printf(out, "\n--%s--\n", bnd);
	return r == 0 ? 0 : -1;
}

int
bounce_read_headers(int fd, struct buf *out)
{
	char		 chunk[8192];
	const char	*end;
	ssize_t		 n;
	off_t		 off = 0;

	for (;;) {
		n = pread(fd, chunk, sizeof(chunk), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			return 0;
		off += n;
		if (buf_append(out, chunk, (size_t)n) == -1)
			return -1;
		/* The header block ends at the first empty line. */
		if (out->len >= 1 && out->data[0] == '\n') {
			out->len = 0;
			return 0;
		}
		if ((end = memmem(out->data, out->len, "\n\n", 2)) != NULL) {
			out->len = (size_t)(end - out->data) + 1;
			out->data[out->len] = '\0';
			return 0;
		}
		if (out->len >= BOUNCE_HEADERS_MAX) {
			/* Cut at a line end so no header is half. */
			end = memrchr(out->data, '\n', BOUNCE_HEADERS_MAX);
			out->len = end != NULL ? (size_t)(end - out->data) + 1 :
			    0;
			return 0;
		}
	}
}

int
bounce_inject(const char *qdir, const struct bounce_info *bi,
    const struct bounce_rcpt *rcpts, size_t n, int msgfd,
    char id_r[QUEUE_ID_LEN + 1], const char **error_r)
{
	struct queue_writer	 w;
	struct queue_env	 e;
	struct buf		 hdr, msg;
	size_t			 i;
	int			 r = -1;

	buf_init(&hdr, BOUNCE_HEADERS_MAX + 8192);
	buf_init(&msg, BOUNCE_MAX);
	memset(&e, 0, sizeof(e));
	if (msgfd != -1 && bounce_read_headers(msgfd, &hdr) == -1) {
		*error_r = "cannot read the original message";
		goto out;
	}
	if (bounce_build(&msg, bi, rcpts, n, hdr.data != NULL ? hdr.data :
	    "", hdr.len) == -1) {
		*error_r = "report too large";
		goto out;
	}
	if (queue_writer_open(&w, qdir, error_r) == -1)
		goto out;
	if (queue_writer_write(&w, msg.data, msg.len) == -1) {
		/* The writer remembers it; commit refuses. */
	}
	e.created = bi->now;
	e.sender = xstrdup("");
	e.helo = xstrdup(bi->reporting_mta);
	e.client_addr = xstrdup("");
	e.flags = QUEUE_F_BOUNCE;
	/* The quoted headers may carry 8-bit text (RFC 6152). */
	for (i = 0; i < hdr.len; i++)
		if ((unsigned char)hdr.data[i] >= 0x80)
			e.flags |= QUEUE_F_8BITMIME;
	if (queue_env_add_rcpt(&e, bi->to, NULL) == -1) {
		*error_r = "bad recipient";
		queue_writer_abort(&w);
		goto out;
	}
	if (queue_writer_commit(&w, qdir, &e, error_r) == -1)
		goto out;
	(void)strlcpy(id_r, e.id, QUEUE_ID_LEN + 1);
	r = 0;
out:
	queue_env_free(&e);
	buf_free(&hdr);
	buf_free(&msg);
	return r;
}
