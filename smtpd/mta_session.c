/*
 * mta_session.c — the SMTP client protocol (RFC 5321) as a state
 * machine over buffers: server bytes in (mta_session_input), client
 * bytes out (s->out), message bytes pulled from the queue file as the
 * output drains (mta_session_pump).  No sockets, no clock: mta.c owns
 * those, and the unit tests drive this file directly.
 *
 * WHO RUNS IT
 *	The domain's queue runner (chrooted, run_as).  Server replies are
 *	untrusted: lines are bounded (MTA_LINE_MAX), codes checked, text
 *	kept only up to MTA_REPLY_MAX for the log and the DSN.
 *
 * STANDARDS
 *	EHLO with HELO fallback (§3.2), PIPELINING (RFC 2920: MAIL, every
 *	RCPT and DATA in one write, replies taken in order), SIZE (RFC
 *	1870: refuse before sending when over the peer's limit), BODY=
 *	8BITMIME (RFC 6152) when the message was received as 8BITMIME
 *	and the peer offers it, enhanced status codes (RFC 3463, derived
 *	from the reply code when the peer sends none), dot-stuffing and
 *	CRLF line ends on the wire (§4.5.2), QUIT.
 *	XXX: an 8-bit message to a peer without 8BITMIME is sent as is
 *	(as Postfix does by default) rather than converted.
 *
 * STARTTLS (RFC 3207)
 *	After the EHLO reply, mta_session_after_ehlo() sends STARTTLS
 *	when the peer offers it and s->tls_policy is not "none".  On 220
 *	the session sets tls_start, drops whatever the server sent after
 *	that reply (bytes read in the clear must not count as replies
 *	inside TLS), and waits; the caller runs the handshake and calls
 *	mta_session_tls_started(), which forgets the extensions and says
 *	EHLO again (§4.2).  A refused STARTTLS, or no STARTTLS at all,
 *	continues in the clear under "may" and ends the session with a
 *	4.7.4 temporary failure under "encrypt" and "verify" (the caller
 *	then tries the next host, and defers when none is left).
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "smtpd.h"

#define MTA_IN_MAX	(MTA_LINE_MAX * 4)
#define MTA_OUT_MAX	(MTA_CHUNK * 3)

void
mta_session_init(struct mta_session *s, const char *helo, const char *sender,
    struct mta_rcpt *rcpts, size_t nrcpts, uint64_t size, int eightbit,
    int msgfd)
{
	size_t	 i;

	memset(s, 0, sizeof(*s));
	s->state = MTA_BANNER;
	s->helo = helo;
	s->sender = sender;
	s->rcpts = rcpts;
	s->nrcpts = nrcpts;
	s->size = size;
	s->eightbit = eightbit;
	s->msgfd = msgfd;
	s->bol = 1;
	s->fail_status = -1;
	buf_init(&s->in, MTA_IN_MAX);
	buf_init(&s->out, MTA_OUT_MAX);
	buf_init(&s->reply, MTA_REPLY_MAX * 2);
	for (i = 0; i < nrcpts; i++) {
		rcpts[i].status = -1;
		rcpts[i].accepted = 0;
		rcpts[i].dsn[0] = '\0';
		rcpts[i].reply[0] = '\0';
	}
}

void
mta_session_free(struct mta_session *s)
{
	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->reply);
}

int
mta_body_encode(struct buf *out, const char *data, size_t len, int *bol)
{
	size_t	 i, start = 0;

	for (i = 0; i < len; i++) {
		if (*bol && data[i] == '.') {
			/* §4.5.2: a line that starts with "." gets one more. */
			if (buf_append(out, data + start, i - start) == -1 ||
			    buf_putc(out, '.') == -1)
				return -1;
			start = i;
		}
		*bol = 0;
		if (data[i] == '\n') {
			if (buf_append(out, data + start, i - start) == -1 ||
			    buf_append(out, "\r\n", 2) == -1)
				return -1;
			start = i + 1;
			*bol = 1;
		}
	}
	return buf_append(out, data + start, len - start);
}

/* "X.Y.Z" at the start of text (RFC 3463 §2), into dsn. */
static int
mta_parse_dsn(const char *text, int code, char *dsn, size_t size)
{
	size_t	 n = 0, parts = 0, digits = 0;

	while (text[n] != '\0') {
		if (isdigit((unsigned char)text[n])) {
			if (++digits > 3)
				break;
		} else if (text[n] == '.' && digits > 0 && parts < 2) {
			parts++;
			digits = 0;
		} else
			break;
		n++;
	}
	if (parts == 2 && digits > 0 && (text[n] == ' ' || text[n] == '\0') &&
	    text[0] - '0' == code / 100 && n < size) {
		memcpy(dsn, text, n);
		dsn[n] = '\0';
		return 0;
	}
	(void)snprintf(dsn, size, "%d.0.0", code / 100);
	return -1;
}

static void
mta_rcpt_set(struct mta_rcpt *r, int code, const char *reply)
{
	const char	*text = reply + (strlen(reply) > 4 ? 4 : strlen(reply));

	r->status = code < 300 ? DELIVER_OK : code < 500 ? DELIVER_TEMPFAIL :
	    DELIVER_PERMFAIL;
	(void)mta_parse_dsn(text, code, r->dsn, sizeof(r->dsn));
	(void)strlcpy(r->reply, reply, sizeof(r->reply));
}

/* Give every open rcpt (or only the accepted ones) this result. */
static void
mta_rcpt_all(struct mta_session *s, int code, const char *reply,
    int accepted_only)
{
	size_t	 i;

	for (i = 0; i < s->nrcpts; i++)
		if (s->rcpts[i].status == -1 &&
		    (!accepted_only || s->rcpts[i].accepted))
			mta_rcpt_set(&s->rcpts[i], code, reply);
}

static int
mta_send(struct mta_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
mta_send(struct mta_session *s, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (r == -1)
		return -1;
	return buf_append(&s->out, "\r\n", 2);
}

static int
mta_quit(struct mta_session *s)
{
	s->state = MTA_QUIT;
	return mta_send(s, "QUIT");
}

static int
mta_send_rcpt(struct mta_session *s)
{
	return mta_send(s, "RCPT TO:<%s>", s->rcpts[s->rcpt_sent++].addr);
}

static int
mta_send_mail(struct mta_session *s)
{
	char	 size[40] = "";
	char	 reply[MTA_REPLY_MAX];

	if (s->size_max > 0 && s->size_max != UINT64_MAX &&
	    s->size > s->size_max) {
		(void)snprintf(reply, sizeof(reply), "552 5.3.4 message size "
		    "%" PRIu64 " exceeds the limit %" PRIu64 " of the "
		    "destination", s->size, s->size_max);
		mta_rcpt_all(s, 552, reply, 0);
		return mta_quit(s);
	}
	if (s->size_max > 0)
		(void)snprintf(size, sizeof(size), " SIZE=%" PRIu64, s->size);
	s->state = MTA_MAIL;
	if (mta_send(s, "MAIL FROM:<%s>%s%s", s->sender, size,
	    s->eightbit && s->ext_8bitmime ? " BODY=8BITMIME" : "") == -1)
		return -1;
	if (s->pipelining) {
		while (s->rcpt_sent < s->nrcpts)
			if (mta_send_rcpt(s) == -1)
				return -1;
		return mta_send(s, "DATA");
	}
	return 0;
}

static void
mta_ehlo_line(struct mta_session *s, const char *kw)
{
	const char	*arg;
	char		*end;
	unsigned long long v;

	if (strncasecmp(kw, "PIPELINING", 10) == 0 && kw[10] == '\0')
		s->pipelining = 1;
	else if (strncasecmp(kw, "8BITMIME", 8) == 0 && kw[8] == '\0')
		s->ext_8bitmime = 1;
	else if (strncasecmp(kw, "STARTTLS", 8) == 0 && kw[8] == '\0')
		s->starttls = 1;
	else if (strncasecmp(kw, "SIZE", 4) == 0 &&
	    (kw[4] == ' ' || kw[4] == '\0')) {
		arg = kw + 4;
		while (*arg == ' ')
			arg++;
		errno = 0;
		v = strtoull(arg, &end, 10);
		/* RFC 1870 §4: no number or 0 means no fixed limit. */
		if (*arg != '\0' && errno == 0 && *end == '\0' && v > 0)
			s->size_max = v;
		else
			s->size_max = UINT64_MAX;
	}
}

/* TLS was required and cannot be had: a temporary failure for all. */
static int
mta_tls_required(struct mta_session *s, const char *why)
{
	s->fail_status = DELIVER_TEMPFAIL;
	(void)strlcpy(s->fail_dsn, "4.7.4", sizeof(s->fail_dsn));
	(void)snprintf(s->fail_reply, sizeof(s->fail_reply), "TLS is "
	    "required (tls_policy) but %s", why);
	return mta_quit(s);
}

/* After EHLO or HELO: STARTTLS first, when wanted and offered. */
static int
mta_session_after_ehlo(struct mta_session *s)
{
	if (!s->tls && s->tls_policy != TLS_POLICY_NONE && s->starttls) {
		s->state = MTA_STARTTLS;
		return mta_send(s, "STARTTLS");
	}
	if (!s->tls && s->tls_policy >= TLS_POLICY_ENCRYPT)
		return mta_tls_required(s, "the server does not offer "
		    "STARTTLS");
	return mta_send_mail(s);
}

int
mta_session_tls_started(struct mta_session *s)
{
	/* RFC 3207 §4.2: everything learnt before TLS is forgotten. */
	s->tls = 1;
	s->tls_start = 0;
	s->esmtp = s->pipelining = s->ext_8bitmime = s->starttls = 0;
	s->size_max = 0;
	buf_reset(&s->in);
	buf_reset(&s->reply);
	s->state = MTA_EHLO;
	return mta_send(s, "EHLO %s", s->helo);
}

/* A complete reply: code and its text (lines joined by " / "). */
static int
mta_reply(struct mta_session *s, int code, const char *reply)
{
	struct mta_rcpt	*r;

	switch (s->state) {
	case MTA_BANNER:
		if (code / 100 != 2)
			goto session_fail;
		s->state = MTA_EHLO;
		return mta_send(s, "EHLO %s", s->helo);
	case MTA_EHLO:
		if (code / 100 != 2) {
			s->state = MTA_HELO;
			return mta_send(s, "HELO %s", s->helo);
		}
		s->esmtp = 1;
		return mta_session_after_ehlo(s);
	case MTA_HELO:
		if (code / 100 != 2)
			goto session_fail;
		return mta_session_after_ehlo(s);
	case MTA_STARTTLS:
		if (code == 220) {
			s->tls_start = 1;
			return 0;
		}
		if (s->tls_policy >= TLS_POLICY_ENCRYPT)
			return mta_tls_required(s, "STARTTLS was refused");
		return mta_send_mail(s);
	case MTA_MAIL:
		if (code / 100 != 2) {
			/* The sender is refused: every rcpt shares it. */
			mta_rcpt_all(s, code, reply, 0);
			return mta_quit(s);
		}
		s->state = MTA_RCPT;
		return s->pipelining ? 0 : mta_send_rcpt(s);
	case MTA_RCPT:
		r = &s->rcpts[s->rcpt_replied++];
		if (code / 100 == 2) {
			r->accepted = 1;
			s->accepted++;
			(void)strlcpy(r->reply, reply, sizeof(r->reply));
		} else
			mta_rcpt_set(r, code, reply);
		if (s->rcpt_replied < s->nrcpts)
			return s->pipelining ? 0 : mta_send_rcpt(s);
		if (s->pipelining) {
			s->state = MTA_DATA;
			return 0;
		}
		if (s->accepted == 0)
			return mta_quit(s);
		s->state = MTA_DATA;
		return mta_send(s, "DATA");
	case MTA_DATA:
		if (code != 354) {
			mta_rcpt_all(s, code, reply, 1);
			return mta_quit(s);
		}
		if (s->accepted == 0) {
			/* RFC 2920 §3.1: pipelined DATA got 354 anyway. */
			s->state = MTA_QUIT;
			return mta_send(s, ".\r\nQUIT");
		}
		s->state = MTA_BODY;
		return mta_session_pump(s);
	case MTA_BODY:
		/* A reply in the middle of the body: the peer gave up. */
		mta_rcpt_all(s, code / 100 == 5 ? code : 451, reply, 1);
		s->state = MTA_DONE;
		s->done = 1;
		return -1;
	case MTA_DOT:
		mta_rcpt_all(s, code, reply, 1);
		return mta_quit(s);
	case MTA_QUIT:
		if (code == 354)
			return mta_send(s, ".");
		s->state = MTA_DONE;
		s->done = 1;
		return -1;
	case MTA_DONE:
		return -1;
	}
	return -1;

session_fail:
	/* Nothing was tried yet: the caller may go to the next host. */
	s->fail_status = code / 100 == 5 ? DELIVER_PERMFAIL :
	    DELIVER_TEMPFAIL;
	(void)mta_parse_dsn(reply + 4, code, s->fail_dsn,
	    sizeof(s->fail_dsn));
	(void)strlcpy(s->fail_reply, reply, sizeof(s->fail_reply));
	if (mta_quit(s) == -1)
		return -1;
	return 0;
}

int
mta_session_input(struct mta_session *s, const char *data, size_t len)
{
	char	*nl, line[MTA_LINE_MAX + 1], text[MTA_REPLY_MAX];
	size_t	 n;
	int	 code;

	if (s->done)
		return -1;
	if (buf_append(&s->in, data, len) == -1) {
		mta_session_abort(s, "reply line too long");
		return -1;
	}
	while (s->in.len > 0 &&
	    (nl = memchr(s->in.data, '\n', s->in.len)) != NULL) {
		n = (size_t)(nl - s->in.data);
		if (n > 0 && s->in.data[n - 1] == '\r')
			n--;
		if (n > MTA_LINE_MAX) {
			mta_session_abort(s, "reply line too long");
			return -1;
		}
		memcpy(line, s->in.data, n);
		line[n] = '\0';
		buf_consume(&s->in, (size_t)(nl - s->in.data) + 1);
		if (n < 3 || !isdigit((unsigned char)line[0]) ||
		    line[0] < '2' || line[0] > '5' ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (n > 3 && line[3] != ' ' && line[3] != '-') ||
		    memchr(line, '\0', n) != NULL) {
			mta_session_abort(s, "malformed reply from server");
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (s->state == MTA_EHLO && s->reply.len > 0 && n > 4)
			mta_ehlo_line(s, line + 4);
		if (s->reply.len == 0)
			(void)buf_append(&s->reply, line, 3);
		if (n > 4 && s->reply.len < MTA_REPLY_MAX) {
			(void)buf_puts(&s->reply, s->reply.len == 3 ? " " :
			    " / ");
			(void)buf_append(&s->reply, line + 4, n - 4);
		}
		if (n > 3 && line[3] == '-')
			continue;
		(void)strlcpy(text, buf_cstr(&s->reply), sizeof(text));
		buf_reset(&s->reply);
		if (mta_reply(s, code, text) == -1) {
			if (!s->done)
				mta_session_abort(s, "output buffer full");
			return -1;
		}
		if (s->tls_start) {
			/* Nothing read in the clear survives (RFC 3207). */
			buf_reset(&s->in);
			return 0;
		}
	}
	if (s->in.len > MTA_LINE_MAX + 2) {
		mta_session_abort(s, "reply line too long");
		return -1;
	}
	return 0;
}

int
mta_session_pump(struct mta_session *s)
{
	char	 chunk[MTA_CHUNK];
	ssize_t	 n;

	if (s->state != MTA_BODY)
		return 0;
	while (s->out.len < MTA_CHUNK) {
		n = read(s->msgfd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			mta_session_abort(s, "cannot read the queue file");
			return -1;
		}
		if (n == 0) {
			if (!s->bol && buf_append(&s->out, "\r\n", 2) == -1)
				return -1;
			s->state = MTA_DOT;
			s->reached_data = 1;
			return buf_append(&s->out, ".\r\n", 3);
		}
		if (mta_body_encode(&s->out, chunk, (size_t)n, &s->bol) == -1)
			return -1;
	}
	return 0;
}

void
mta_session_abort(struct mta_session *s, const char *why)
{
	char	 reply[MTA_REPLY_MAX];
	size_t	 i;

	(void)snprintf(reply, sizeof(reply), "%s", why);
	if (s->state != MTA_QUIT && s->state != MTA_DONE) {
		for (i = 0; i < s->nrcpts; i++) {
			if (s->rcpts[i].status != -1)
				continue;
			s->rcpts[i].status = DELIVER_TEMPFAIL;
			(void)strlcpy(s->rcpts[i].dsn, "4.4.2",
			    sizeof(s->rcpts[i].dsn));
			(void)strlcpy(s->rcpts[i].reply, reply,
			    sizeof(s->rcpts[i].reply));
		}
	}
	s->state = MTA_DONE;
	s->done = 1;
}
