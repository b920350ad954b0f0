/*
 * sendmail_msg.c — virtmail-sendmail's message handling: line ends,
 * the header section, -t recipient extraction, Bcc: removal, and the
 * Date:, Message-ID: and From: fields added when missing (RFC 5322
 * §3.6: Date and From are required; Message-ID should be there).
 *
 * SECURITY
 *	Runs in the injector, as the invoking user without any privilege
 *	(virtmail-postdrop alone is setgid), on a message the user wrote:
 *	the input is trusted only to be the user's own mail.  Everything
 *	here is bounded (the caller's size limit, SENDMAIL_HEADER_MAX,
 *	SENDMAIL_FIELDS_MAX) and nothing exits or does I/O, so the unit
 *	tests feed it hostile input.  Text we add (the -F name, addresses)
 *	is stripped of control characters or checked by addr_parse(), so
 *	no option can add a header line of its own.
 *
 * CHOICES
 *	Like Postfix, recipients given as arguments are added to those
 *	found with -t, not removed.  Resent- fields are not used for -t.
 *	A first line that is not a header field ends the header section
 *	(an empty line is inserted before it).  Added fields go after
 *	the existing ones.  XXX: a non-ASCII -F name is written as is,
 *	not RFC 2047 encoded.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "address.h"
#include "buf.h"
#include "compat.h"
#include "queue.h"
#include "smtpd.h"
#include "xmalloc.h"

#define SM_HAS_DATE	0x01
#define SM_HAS_MSGID	0x02
#define SM_HAS_FROM	0x04

int
sendmail_addr_qualify(const char *in, const char *domain, char *dst,
    size_t size, const char **error_r)
{
	struct mailaddr	 a;
	char		 tmp[ADDR_PATH_MAX + ADDR_DOMAIN_MAX + 2];
	size_t		 n;
	int		 r;

	while (*in == ' ' || *in == '\t')
		in++;
	n = strlen(in);
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
		n--;
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (n == 0 || n >= ADDR_PATH_MAX) {
		*error_r = n == 0 ? "empty address" : "address too long";
		return -1;
	}
	if (memchr(in, '@', n) != NULL)
		r = snprintf(tmp, sizeof(tmp), "%.*s", (int)n, in);
	else
		r = snprintf(tmp, sizeof(tmp), "%.*s@%s", (int)n, in, domain);
	if (r < 0 || (size_t)r >= sizeof(tmp)) {
		*error_r = "address too long";
		return -1;
	}
	if (addr_parse(tmp, ADDR_UTF8, &a, error_r) == -1)
		return -1;
	if (a.domain[0] == '\0') {
		*error_r = "address without domain";
		return -1;
	}
	if (addr_format(&a, dst, size) == -1) {
		*error_r = "address too long";
		return -1;
	}
	return 0;
}

/* One element of an address list, collected by sendmail_addr_list. */
struct sm_elem {
	struct buf	 plain;		/* outside <> and comments */
	struct buf	 angle;		/* inside <> */
	int		 has_angle;
};

static int
sm_elem_flush(struct sm_elem *el, const char *domain,
    int (*fn)(void *, const char *), void *ctx, const char **error_r)
{
	char		 addr[ADDR_PATH_MAX + ADDR_DOMAIN_MAX + 2];
	const char	*src, *colon;
	struct buf	*b;
	size_t		 i, j;
	int		 r = 0, q;

	b = el->has_angle ? &el->angle : &el->plain;
	/* Drop white space; an addr-spec has none outside quotes. */
	for (i = j = 0, q = 0; i < b->len; i++) {
		if (b->data[i] == '"' && (i == 0 || b->data[i - 1] != '\\'))
			q = !q;
		if (q || (b->data[i] != ' ' && b->data[i] != '\t'))
			b->data[j++] = b->data[i];
	}
	b->len = j;
	src = buf_cstr(b);
	if (b->data != NULL)
		b->data[j] = '\0';
	/* A source route "@a,@b:local@domain" (RFC 5322 obs-route). */
	if (el->has_angle && src[0] == '@' &&
	    (colon = strchr(src, ':')) != NULL)
		src = colon + 1;
	if (*src != '\0') {
		if (sendmail_addr_qualify(src, domain, addr, sizeof(addr),
		    error_r) == -1)
			r = -1;
		else if (fn(ctx, addr) == -1) {
			*error_r = "too many recipients";
			r = -1;
		}
	}
	buf_reset(&el->plain);
	buf_reset(&el->angle);
	el->has_angle = 0;
	return r;
}

int
sendmail_addr_list(const char *value, const char *domain,
    int (*fn)(void *, const char *), void *ctx, const char **error_r)
{
	struct sm_elem	 el;
	struct buf	*cur;
	const char	*p;
	int		 depth = 0, quoted = 0, in_angle = 0, r = -1;

	memset(&el, 0, sizeof(el));
	buf_init(&el.plain, ADDR_PATH_MAX * 4);
	buf_init(&el.angle, ADDR_PATH_MAX * 4);
	for (p = value; *p != '\0'; p++) {
		cur = in_angle ? &el.angle : &el.plain;
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			*error_r = "control character in address list";
			goto out;
		}
		if (depth > 0) {
			/* Inside a comment (RFC 5322 §3.2.2): skipped. */
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			continue;
		}
		if (quoted) {
			if (*p == '\\' && p[1] != '\0') {
				if (buf_putc(cur, *p++) == -1)
					goto long_;
			} else if (*p == '"')
				quoted = 0;
			if (buf_putc(cur, *p) == -1)
				goto long_;
			continue;
		}
		switch (*p) {
		case '(':
			depth = 1;
			break;
		case '"':
			quoted = 1;
			if (buf_putc(cur, *p) == -1)
				goto long_;
			break;
		case '<':
			if (in_angle) {
				*error_r = "nested <";
				goto out;
			}
			in_angle = 1;
			el.has_angle = 1;
			buf_reset(&el.angle);
			break;
		case '>':
			if (!in_angle) {
				*error_r = "unbalanced >";
				goto out;
			}
			in_angle = 0;
			break;
		case ':':
			if (in_angle) {
				if (buf_putc(cur, *p) == -1)
					goto long_;
				break;
			}
			/* A group: what came before was its name. */
			buf_reset(&el.plain);
			break;
		case ',':
		case ';':
			if (in_angle) {
				if (buf_putc(cur, *p) == -1)
					goto long_;
				break;
			}
			if (sm_elem_flush(&el, domain, fn, ctx, error_r) == -1)
				goto out;
			break;
		default:
			if (el.has_angle && !in_angle) {
				/* Text after <addr>: only blanks are fine. */
				if (*p != ' ' && *p != '\t') {
					*error_r = "text after <address>";
					goto out;
				}
				break;
			}
			if (buf_putc(cur, *p) == -1)
				goto long_;
		}
	}
	if (depth > 0 || quoted || in_angle) {
		*error_r = depth > 0 ? "unbalanced (" : quoted ?
		    "unbalanced quote" : "unbalanced <";
		goto out;
	}
	r = sm_elem_flush(&el, domain, fn, ctx, error_r);
	goto out;
 long_:
	*error_r = "address too long";
 out:
	buf_free(&el.plain);
	buf_free(&el.angle);
	return r;
}

static int
sm_add_rcpt(void *ctx, const char *addr)
{
	struct sendmail_msg	*m = ctx;
	size_t			 i;

	for (i = 0; i < m->nrcpts; i++)
		if (strcmp(m->rcpts[i], addr) == 0)
			return 0;
	if (m->nrcpts >= DROP_RCPT_MAX)
		return -1;
	m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof(*m->rcpts));
	m->rcpts[m->nrcpts++] = xstrdup(addr);
	return 0;
}

/* Length of a field name at p (before ':'), 0 when not a field line. */
static size_t
sm_field_name(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (p[i] == ':')
			return i;
		/* RFC 5322 §3.6.8: printable US-ASCII but ':'. */
		if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
			return 0;
	}
	return 0;
}

static int
sm_name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* The value of a field (after the colon), unfolded, as a C string. */
static char *
sm_unfold(const char *p, size_t n)
{
	char	*s;
	size_t	 i, j;

	s = xmalloc(n + 1);
	for (i = j = 0; i < n; i++)
		if (p[i] != '\n')
			s[j++] = p[i];
	s[j] = '\0';
	return s;
}

/* Append a display name as an RFC 5322 quoted-string, minus controls. */
static int
sm_put_name(struct buf *out, const char *name)
{
	size_t	 i, n = 0;
	int	 r = 0;

	r |= buf_putc(out, '"');
	for (i = 0; name[i] != '\0' && n < SENDMAIL_NAME_MAX; i++) {
		if ((unsigned char)name[i] < 0x20 ||
		    (unsigned char)name[i] == 0x7f)
			continue;
		if (name[i] == '"' || name[i] == '\\')
			r |= buf_putc(out, '\\');
		r |= buf_putc(out, name[i]);
		n++;
	}
	r |= buf_puts(out, "\" ");
	return r;
}

static int
sm_add_fields(struct sendmail_msg *m, unsigned int have, struct buf *out)
{
	struct tm	 tm;
	char		 date[64], rnd[QUEUE_ID_LEN + 1];
	const char	*addr;
	int		 r = 0;

	if (!(have & SM_HAS_FROM)) {
		r |= buf_puts(out, "From: ");
		if (m->fullname != NULL && m->fullname[0] != '\0')
			r |= sm_put_name(out, m->fullname);
		addr = m->sender;
		if (addr == NULL || *addr == '\0')
			r |= buf_printf(out, "<%s@%s>\n", m->user, m->domain);
		else
			r |= buf_printf(out, "<%s>\n", addr);
	}
	if (!(have & SM_HAS_DATE)) {
		if (localtime_r(&m->now, &tm) == NULL || strftime(date,
		    sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
			return -1;
		r |= buf_printf(out, "Date: %s\n", date);
	}
	if (!(have & SM_HAS_MSGID)) {
		queue_new_id(rnd);
		r |= buf_printf(out, "Message-ID: <%lld.%s@%s>\n",
		    (long long)m->now, rnd, m->hostname);
	}
	return r;
}

/* A whole field [f, end) is known: copy it out, collect -t recipients. */
static int
sm_field_done(struct sendmail_msg *m, const char *f, const char *end,
    size_t fname, const char **error_r)
{
	const char	*err = NULL;
	char		*value;
	int		 r = 0;

	if (!sm_name_is(f, fname, "bcc") &&
	    buf_append(&m->out, f, (size_t)(end - f)) == -1) {
		*error_r = "message too large";
		return -1;
	}
	if (!m->extract || !(sm_name_is(f, fname, "to") ||
	    sm_name_is(f, fname, "cc") || sm_name_is(f, fname, "bcc")))
		return 0;
	value = sm_unfold(f + fname + 1, (size_t)(end - f) - fname - 1);
	if (sendmail_addr_list(value, m->domain, sm_add_rcpt, m, &err) == -1) {
		*error_r = err;
		r = -1;
	}
	free(value);
	return r;
}

int
sendmail_msg_prepare(struct sendmail_msg *m, const char *in, size_t len,
    size_t max, const char **error_r)
{
	struct buf	 norm;
	const char	*p, *nl, *line, *fstart = NULL;
	size_t		 i, n, off, fname = 0, nfields = 0;
	unsigned int	 have = 0;
	int		 cont, r = -1;

	buf_init(&m->out, max + 4096);
	buf_init(&norm, max + 1);
	/* Line ends: CRLF becomes LF (the queue stores LF). */
	for (i = 0; i < len; i++) {
		if (in[i] == '\0') {
			*error_r = "message contains NUL bytes";
			goto out;
		}
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			continue;
		if (buf_putc(&norm, in[i]) == -1)
			goto big;
	}
	if (norm.len > 0 && norm.data[norm.len - 1] != '\n' &&
	    buf_putc(&norm, '\n') == -1)
		goto big;
	p = norm.data != NULL ? norm.data : "";

	/* The header section: fields and their continuation lines. */
	for (off = 0;; off += n + 1) {
		line = p + off;
		nl = off < norm.len ? memchr(line, '\n', norm.len - off) : NULL;
		n = nl != NULL ? (size_t)(nl - line) : 0;
		cont = n > 0 && (line[0] == ' ' || line[0] == '\t');
		if (off > SENDMAIL_HEADER_MAX) {
			*error_r = "header section too large";
			goto out;
		}
		if (cont && fstart != NULL)
			continue;
		if (fstart != NULL && sm_field_done(m, fstart, line, fname,
		    error_r) == -1)
			goto out;
		fstart = NULL;
		if (nl == NULL || n == 0 || cont ||
		    (fname = sm_field_name(line, n)) == 0)
			break;
		if (++nfields > SENDMAIL_FIELDS_MAX) {
			*error_r = "too many header fields";
			goto out;
		}
		fstart = line;
		if (sm_name_is(line, fname, "date"))
			have |= SM_HAS_DATE;
		else if (sm_name_is(line, fname, "message-id"))
			have |= SM_HAS_MSGID;
		else if (sm_name_is(line, fname, "from"))
			have |= SM_HAS_FROM;
	}
	if (nl != NULL && n == 0)
		off++;			/* the empty line that ended it */
	if (sm_add_fields(m, have, &m->out) == -1 ||
	    buf_putc(&m->out, '\n') == -1 ||
	    buf_append(&m->out, p + off, norm.len - off) == -1)
		goto big;
	r = 0;
	goto out;
 big:
	*error_r = "message too large";
 out:
	buf_free(&norm);
	if (r == -1)
		buf_free(&m->out);
	return r;
}

void
sendmail_msg_free(struct sendmail_msg *m)
{
	size_t	 i;

	buf_free(&m->out);
	for (i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	m->rcpts = NULL;
	m->nrcpts = 0;
}
