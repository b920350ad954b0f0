/*
 * smtp_data.c — the DATA stream of the SMTP engine: from the 354 to
 * the end of data, and the commit of the message to the queue.
 *
 * DESCRIPTION
 *	smtp_data_input() consumes DATA bytes: it removes the leading
 *	period of stuffed lines (RFC 5321 §4.5.2), counts size, line
 *	lengths and Received: lines, splits the header into fields for
 *	the filters, asks the filters at each step (header, end of
 *	header, body chunks, end of message) and writes the message to
 *	the queue in SMTP_BODY_FLUSH batches.  smtp_data_end() refuses
 *	the message or asks the I/O layer for a commit, and
 *	smtp_session_commit() makes it durable before the 250.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account, as part of the engine (smtp_session.c).  Every
 *	DATA byte is untrusted and bounded by struct smtpd_limits.  Only
 *	<CRLF>.<CRLF> ends DATA; a bare CR, bare LF or NUL anywhere in the
 *	message makes the whole message refused at its real end, so no
 *	line end that another MTA reads differently can split one message
 *	into two (SMTP smuggling).  Authentication-Results: fields from
 *	outside that claim our authserv-id are removed (RFC 8601 §5).
 *	smtp_session_commit() may run in a commit thread: it calls no
 *	hook.
 *
 * STANDARDS
 *	RFC 5321 §2.3.8, §4.1.1.4, §4.5.2, §4.5.3.1.6; RFC 5322 §2.2.
 *
 * DIAGNOSTICS
 *	One log line per received or refused message, keyed by queue id.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "compat.h"
#include "log.h"
#include "queue.h"
#include "smtp_session.h"
#include "xmalloc.h"

void
smtp_body_flush(struct smtp_session *s)
{
	if (s->body.len == 0)
		return;
	if (!(s->data_err & SMTP_DATA_WRITE) &&
	    queue_writer_write(&s->w, s->body.data, s->body.len) == -1)
		s->data_err |= SMTP_DATA_WRITE;
	s->file_off += s->body.len;
	buf_reset(&s->body);
	s->body_mark = 0;
}

static void
body_put(struct smtp_session *s, const char *p, size_t len, int nl)
{
	if (s->data_err != 0)
		return;
	if (buf_append(&s->body, p, len) == -1 ||
	    (nl && buf_putc(&s->body, '\n') == -1))
		s->data_err |= SMTP_DATA_WRITE;
	else if (s->body.len >= SMTP_BODY_FLUSH)
		s->flush_pending = 1;
}

/* The message's filter verdict, from a DATA-phase answer. */
static void
filter_note(struct smtp_session *s)
{
	switch (s->ans.v) {
	case SMTP_V_CONTINUE:
		return;
	case SMTP_V_ACCEPT:
		break;
	default:
		if (s->fv == SMTP_V_CONTINUE) {
			s->fv = s->ans.v;
			free(s->fv_reply);
			s->fv_reply = s->ans.reply[0] != '\0' ?
			    xstrdup(s->ans.reply) : NULL;
		}
		break;
	}
	s->filtered = 0;
}

/* One DATA step's question: 1 while waiting, 0 once answered. */
static int
step_ask(struct smtp_session *s, enum smtp_ask what, const char *data,
    size_t len)
{
	if (s->asked) {
		s->asked = 0;
		filter_note(s);
		return 0;
	}
	if (!s->filtered || s->data_err != 0)
		return 0;
	if (smtp_session_ask(s, what, SMTP_PEND_STEP, data, len)) {
		s->asked = 1;
		return 1;
	}
	filter_note(s);
	return 0;
}

/* Whether an Authentication-Results value claims authserv-id id
 * (RFC 8601 §5: such fields from outside are removed). */
static int
authres_ours(const char *v, const char *id)
{
	size_t	 n = strlen(id);

	while (*v == ' ' || *v == '\t' || *v == '\n')
		v++;
	if (strncasecmp(v, id, n) != 0)
		return 0;
	v += n;
	return *v == '\0' || *v == ';' || *v == ' ' || *v == '\t' ||
	    *v == '\n' || *v == '(';
}

/* A field name: printable ASCII but ':' (RFC 5322 §2.2). */
static size_t
field_name_len(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (p[i] == ':')
			return i;
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] > '~')
			return 0;
	}
	return 0;
}

/* The field in hdr_cur is complete: drop, write and keep it. */
static void
header_field_done(struct smtp_session *s)
{
	struct smtp_header *h;
	const char	*p = s->hdr_cur.data;
	size_t		 len = s->hdr_cur.len, n;

	if (len == 0)
		return;
	n = field_name_len(p, len);
	if (s->spf_on && n == 22 &&
	    strncasecmp(p, "Authentication-Results", 22) == 0 &&
	    authres_ours(p + 23, smtp_session_hostname(s))) {
		log_info("%s smtp removed Authentication-Results claiming "
		    "authserv-id=%s client=%s", s->id, smtp_session_hostname(s),
		    s->client_addr);
		buf_reset(&s->hdr_cur);
		return;
	}
	body_put(s, p, len, 1);
	if (s->filtered && n > 0) {
		s->hdr_bytes += len;
		if (s->hdr_bytes > SMTP_HEADER_MAX)
			s->data_err |= SMTP_DATA_HEADER;
		else {
			s->hdrs = xreallocarray(s->hdrs, s->nhdrs + 1,
			    sizeof(*s->hdrs));
			h = &s->hdrs[s->nhdrs++];
			h->name = xmalloc(n + 1);
			memcpy(h->name, p, n);
			h->name[n] = '\0';
			h->value = xmalloc(len - n);
			memcpy(h->value, p + n + 1, len - n - 1);
			h->value[len - n - 1] = '\0';
			s->hdr_ready = 1;
		}
	}
	buf_reset(&s->hdr_cur);
}

/* The header ends; sep: with a blank line. */
static void
header_end(struct smtp_session *s, int sep)
{
	header_field_done(s);
	if (sep)
		body_put(s, "", 0, 1);
	s->hdr_sep = sep;
	s->body_off = s->file_off + s->body.len;
	s->body_mark = s->body.len;
	s->data_headers = 0;
	s->hdr_end = 1;
}

/* One whole header line (dot-unstuffed, no line end). */
static void
header_line(struct smtp_session *s, const char *p, size_t len)
{
	if (len == 0) {
		header_end(s, 1);
		return;
	}
	if ((p[0] == ' ' || p[0] == '\t') && s->hdr_cur.len > 0) {
		if (buf_putc(&s->hdr_cur, '\n') == -1 ||
		    buf_append(&s->hdr_cur, p, len) == -1)
			s->data_err |= SMTP_DATA_HEADER;
		return;
	}
	header_field_done(s);
	if (field_name_len(p, len) == 0) {
		/* Not a field: the body starts here, without a blank. */
		header_end(s, 0);
		body_put(s, p, len, 1);
		return;
	}
	if (buf_append(&s->hdr_cur, p, len) == -1)
		s->data_err |= SMTP_DATA_HEADER;
}

/*
 * A piece of the current text line: the whole rest of it when eol
 * (its CRLF already removed), else a fragment of a long line.  Any CR
 * or LF left in it is bare (RFC 5321 §2.3.8).
 */
static void
data_piece(struct smtp_session *s, const char *p, size_t len, int eol)
{
	int	 first = s->data_linelen == 0;

	s->data_linelen += len;
	if (memchr(p, '\n', len) != NULL)
		s->data_err |= SMTP_DATA_BARE_LF;
	if (memchr(p, '\r', len) != NULL)
		s->data_err |= SMTP_DATA_BARE_CR;
	if (memchr(p, '\0', len) != NULL)
		s->data_err |= SMTP_DATA_NUL;
	if (eol && s->data_linelen + 2 > smtp_limit_text_line(s))
		s->data_err |= SMTP_DATA_LONG_LINE;
	if (first && len > 0 && p[0] == '.') {
		/* §4.5.2: drop the first period of a line. */
		p++;
		len--;
	}
	if (first && s->data_headers) {
		if (eol && len == 0 && !s->hdr_mode)
			s->data_headers = 0;
		else if (len >= 9 && strncasecmp(p, "Received:", 9) == 0 &&
		    ++s->data_received > smtp_limit_received(s))
			s->data_err |= SMTP_DATA_LOOP;
	}
	s->data_size += len + (eol ? 1 : 0);
	if (s->data_size > smtp_limit_size(s))
		s->data_err |= SMTP_DATA_TOO_BIG;
	if (eol)
		s->data_linelen = 0;
	/* Once the message is doomed, stop writing it. */
	if (s->data_err != 0)
		return;
	if (s->hdr_mode && s->data_headers) {
		/* Whole lines: a field may be dropped or given to filters. */
		if (!eol || s->hdr_line.len > 0) {
			if (buf_append(&s->hdr_line, p, len) == -1) {
				s->data_err |= SMTP_DATA_HEADER;
				return;
			}
			if (!eol)
				return;
			header_line(s, s->hdr_line.data, s->hdr_line.len);
			buf_reset(&s->hdr_line);
		} else
			header_line(s, p, len);
		return;
	}
	body_put(s, p, len, eol);
}

/* Give the filters the body bytes in s->body, then write them. */
static int
step_flush(struct smtp_session *s)
{
	if (!s->data_headers && s->body.len > s->body_mark &&
	    step_ask(s, SMTP_ASK_BODY, s->body.data + s->body_mark,
	    s->body.len - s->body_mark))
		return 1;
	smtp_body_flush(s);
	return 0;
}

/*
 * The DATA steps that may wait for an answer, in protocol order: a
 * finished header field, the end of the header, a body chunk, and
 * after the end of data the rest of the body and the end of message.
 * 1 while waiting.
 */
static int
data_steps(struct smtp_session *s)
{
	if (s->hdr_ready) {
		if (step_ask(s, SMTP_ASK_HEADER, NULL, 0))
			return 1;
		s->hdr_ready = 0;
	}
	if (s->hdr_end) {
		if (step_ask(s, SMTP_ASK_EOH, NULL, 0))
			return 1;
		s->hdr_end = 0;
	}
	if (s->flush_pending) {
		if (step_flush(s))
			return 1;
		s->flush_pending = 0;
	}
	if (!s->data_done)
		return 0;
	if (s->data_done == 1) {
		/* The message ended inside its header. */
		if (s->hdr_mode && s->data_headers && s->data_err == 0) {
			if (s->hdr_line.len > 0) {
				header_line(s, s->hdr_line.data,
				    s->hdr_line.len);
				buf_reset(&s->hdr_line);
			}
			header_end(s, 0);
		}
		s->data_done = 2;
		return data_steps(s);
	}
	if (s->data_done == 2) {
		if (step_flush(s))
			return 1;
		s->data_done = 3;
	}
	if (s->data_done == 3) {
		if (step_ask(s, SMTP_ASK_EOM, NULL, 0))
			return 1;
		s->data_done = 4;
	}
	return 0;
}

/* The first CRLF in p[0..len), or NULL; memchr() is faster than
 * memmem() for this, and a lone CR is rare. */
static const char *
find_crlf(const char *p, size_t len)
{
	const char	*cr, *end = p + len;

	while ((cr = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (cr + 1 < end && cr[1] == '\n')
			return cr;
		p = cr + 1;
	}
	return NULL;
}

/*
 * Consume DATA bytes from in; 1 at the end of data, 2 while waiting
 * for an answer, 0 for more.  Lines are walked with an offset and
 * consumed together: one memmove per call, not one per line.
 */
int
smtp_data_input(struct smtp_session *s, struct buf *in)
{
	const char	*p, *crlf;
	size_t		 n, left, off = 0;
	int		 rv = 0;

	if (data_steps(s))
		return 2;
	if (s->data_done)
		return 1;
	while ((left = in->len - off) > 0) {
		p = in->data + off;
		crlf = find_crlf(p, left);
		if (crlf == NULL) {
			/*
			 * A long line: pass on all but the last byte, which
			 * may be the CR of a CRLF still to come.
			 */
			if (left <= SMTP_FRAGMENT)
				break;
			n = left - 1;
			data_piece(s, p, n, 0);
			off += n;
			if (data_steps(s)) {
				rv = 2;
				break;
			}
			continue;
		}
		n = (size_t)(crlf - p);
		/* §4.1.1.4: only <CRLF>.<CRLF> ends the data. */
		if (s->data_linelen == 0 && n == 1 && p[0] == '.') {
			off += 3;
			s->data_done = 1;
			rv = data_steps(s) ? 2 : 1;
			break;
		}
		data_piece(s, p, n, 1);
		off += n + 2;
		if (data_steps(s)) {
			rv = 2;
			break;
		}
	}
	if (off > 0)
		buf_consume(in, off);
	return rv;
}

/* The end of data: refuse, or ask the I/O layer for a commit. */
enum smtp_action
smtp_data_end(struct smtp_session *s)
{
	static const struct {
		unsigned int		 flag;
		enum smtp_reply		 r;
		const char		*reason;
	} refusals[] = {
		{ SMTP_DATA_NUL,	RPL_NUL,		"nul" },
		{ SMTP_DATA_BARE_LF,	RPL_BARE_LF,	"bare_lf" },
		{ SMTP_DATA_BARE_CR,	RPL_BARE_CR,	"bare_cr" },
		{ SMTP_DATA_LONG_LINE,	RPL_LONG_LINE,	"long_line" },
		{ SMTP_DATA_TOO_BIG,	RPL_TOO_BIG,	"size" },
		{ SMTP_DATA_LOOP,	RPL_LOOP,		"loop" },
		{ SMTP_DATA_HEADER,	RPL_HEADER_BIG,	"header_size" },
	};
	char	 from[512];
	size_t	 i;
	int	 err;

	if (s->data_err == 0)
		smtp_body_flush(s);
	(void)log_clean(from, sizeof(from), s->sender, strlen(s->sender));
	if (s->data_err == 0 && smtp_verdict_refuses(s->fv)) {
		log_info("%s smtp refused reason=filter from=<%s> size=%llu "
		    "client=%s", s->w.id, from,
		    (unsigned long long)s->data_size, s->client_addr);
		smtp_reply_verdict(s, s->fv, s->fv_reply, RPL_CONTENT_REJECT);
		smtp_transaction_reset(s);
		return s->state == SMTP_STATE_QUIT ? SMTP_ACT_CLOSE :
		    SMTP_ACT_CONTINUE;
	}
	if (s->data_err == 0 && (s->fv == SMTP_V_DISCARD || s->discard_all)) {
		log_info("%s smtp discarded by filter from=<%s> size=%llu "
		    "client=%s", s->w.id, from,
		    (unsigned long long)s->data_size, s->client_addr);
		smtp_session_reply(s, RPL_QUEUED_DISCARD, NULL);
		smtp_transaction_reset(s);
		return SMTP_ACT_CONTINUE;
	}
	if (s->data_err == 0 && smtp_mods_apply(s) &&
	    smtp_message_rewrite(s) == -1)
		s->data_err |= SMTP_DATA_WRITE;
	if (s->data_err == 0 && s->nrcpts == 0) {
		log_info("%s smtp discarded: filters removed every recipient "
		    "from=<%s>", s->w.id, from);
		smtp_session_reply(s, RPL_QUEUED_DISCARD, NULL);
		smtp_transaction_reset(s);
		return SMTP_ACT_CONTINUE;
	}
	if (s->data_err == 0) {
		s->state = SMTP_STATE_COMMIT;
		return SMTP_ACT_COMMIT;
	}
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		if (s->data_err & refusals[i].flag)
			break;
	if (i < sizeof(refusals) / sizeof(refusals[0])) {
		log_info("%s smtp refused reason=%s from=<%s> size=%llu "
		    "client=%s", s->w.id, refusals[i].reason, from,
		    (unsigned long long)s->data_size, s->client_addr);
		smtp_session_reply(s, refusals[i].r, NULL);
	} else {
		err = s->w.error;
		log_warnx("%s smtp queue write failed: %s", s->w.id,
		    strerror(err));
		smtp_session_reply(s, err == ENOSPC ||
		    err == EDQUOT ? RPL_DISK_FULL : RPL_QUEUE_FAIL, NULL);
	}
	smtp_transaction_reset(s);
	return SMTP_ACT_CONTINUE;
}

void
smtp_session_commit(struct smtp_session *s)
{
	struct queue_env e;
	const char	*error;
	char		 from[512], id[QUEUE_ID_LEN + 1];
	size_t		 i;
	int		 r, err;

	if (s->state != SMTP_STATE_COMMIT || !s->w_open)
		return;
	memset(&e, 0, sizeof(e));
	e.created = time(NULL);
	e.sender = s->sender;
	e.helo = s->helo;
	e.client_addr = s->client_addr;
	e.auth_user = s->auth_user;
	e.flags = s->flags;
	/* Quarantine: the envelope goes to hold/ (queue.h). */
	e.hold_reason = s->mods.quarantine;
	r = 0;
	for (i = 0; i < s->nrcpts && r == 0; i++)
		r = queue_env_add_rcpt(&e, s->rcpts[i], NULL);
	(void)strlcpy(id, s->w.id, sizeof(id));
	err = 0;
	if (r == 0 && e.hold_reason == NULL &&
	    (size_t)smtp_direct_deliver(s, &e) == e.nrcpts) {
		/* All in their mailboxes: nothing to queue. */
		queue_writer_recycle(&s->w);
	} else if (r == 0) {
		r = queue_writer_commit(&s->w, s->queue_dir, &e, &error);
		err = errno;
	} else {
		error = "out of memory";
		queue_writer_abort(&s->w);
	}
	/* A failed commit leaves nothing behind (queue.h). */
	s->w_open = 0;
	/* Ours, not the envelope's to free. */
	e.sender = e.helo = e.client_addr = e.auth_user = NULL;
	e.hold_reason = NULL;
	queue_env_free(&e);
	(void)log_clean(from, sizeof(from), s->sender, strlen(s->sender));
	if (r == -1) {
		log_warnx("%s smtp queue commit failed: %s", id, error);
		smtp_session_reply(s, err == ENOSPC ||
		    err == EDQUOT ? RPL_DISK_FULL : RPL_QUEUE_FAIL, NULL);
	} else {
		s->nmessages++;
		log_info("%s smtp message from=<%s> size=%llu nrcpt=%zu "
		    "client=%s%s", id, from, (unsigned long long)s->data_size,
		    s->nrcpts, s->client_addr, s->mods.quarantine != NULL ?
		    " held=quarantine" : "");
		smtp_session_reply(s, RPL_QUEUED, id);
	}
	s->state = SMTP_STATE_HELO;
	/* May run in a commit thread: no hooks from here. */
	smtp_transaction_clear(s);
}
