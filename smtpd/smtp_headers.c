/*
 * smtp_headers.c — the header side of a received message: our trace
 * headers, and the changes filters ask for at its end.
 *
 * DESCRIPTION
 *	smtp_received_write() puts our Received: line (and, with SPF on,
 *	Received-SPF: and Authentication-Results:) at the top of the
 *	queue file.  At the end of the message smtp_mods_apply() applies
 *	the milters' envelope and header changes, and when the header or
 *	the body changed smtp_message_rewrite() writes the message anew
 *	from our trace headers, the new header and the old or new body.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account, as part of the engine (smtp_session.c).  The
 *	peer's HELO and the TLS and SPF texts were cleaned before they
 *	get here.  Filters are trusted to filter, not to write the queue:
 *	their header values are made safe (LF line ends, continuation
 *	lines indented, controls blanked) and their addresses checked
 *	before use.
 *
 * STANDARDS
 *	RFC 5321 §4.4 (Received:), RFC 3848 and RFC 6531 §3.7.3
 *	(protocol names), RFC 7208 §9.1 (Received-SPF:), RFC 8601
 *	(Authentication-Results:).
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "buf.h"
#include "log.h"
#include "queue.h"
#include "smtp_session.h"
#include "xmalloc.h"

/* The protocol name for Received: (RFC 3848, RFC 6531 §3.7.3). */
static const char *
received_protocol(const struct smtp_session *s)
{
	static const char *names[] = {
		"ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA",
		"UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA",
	};
	int	 i = 0;

	if (!s->esmtp)
		return "SMTP";
	if (s->authenticated)
		i |= 1;
	if (s->tls)
		i |= 2;
	if (s->flags & QUEUE_F_SMTPUTF8)
		i |= 4;
	return names[i];
}

/* Our Received: line, RFC 5321 §4.4, LF line ends as in the queue. */
int
smtp_received_write(struct smtp_session *s)
{
	struct buf	 b;
	struct tm	 tm;
	time_t		 now;
	char		 date[64];
	int		 r = 0;

	now = time(NULL);
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		return -1;
	buf_init(&b, 16384);
	r |= buf_printf(&b, "Received: from %s", s->helo);
	if (s->client_addr[0] != '\0')
		r |= buf_printf(&b, " (%s [%s])", s->client_name,
		    s->client_addr);
	/* RFC 3848 names; Postfix-style comments for TLS and the user. */
	if (s->tls && s->tls_info[0] != '\0')
		r |= buf_printf(&b, "\n\t(%s)", s->tls_info);
	if (s->authenticated && s->sd->received_auth && s->auth_user != NULL)
		r |= buf_printf(&b, "\n\t(Authenticated sender: %s)",
		    s->auth_user);
	r |= buf_printf(&b, "\n\tby %s (virtmail) with %s id %s",
	    smtp_session_hostname(s), received_protocol(s), s->w.id);
	if (s->nrcpts == 1)
		r |= buf_printf(&b, "\n\tfor <%s>", s->rcpts[0]);
	r |= buf_printf(&b, ";\n\t%s\n", date);
	/* RFC 7208 §9.1 and RFC 8601 §2.2, right under our Received:. */
	if (s->spf_on && s->spf.done) {
		if (s->spf.received[0] != '\0')
			r |= buf_printf(&b, "Received-SPF: %s\n",
			    s->spf.received);
		/* spf_helo: its own field (identity=helo, §9.1). */
		if (s->spf_helo.done && s->spf_helo.received[0] != '\0')
			r |= buf_printf(&b, "Received-SPF: %s\n",
			    s->spf_helo.received);
		if (s->spf.authres[0] != '\0')
			r |= buf_printf(&b, "Authentication-Results: %s;\n"
			    "\t%s", smtp_session_hostname(s), s->spf.authres);
		/* RFC 8601 §2.2: one resinfo per identity. */
		if (s->spf.authres[0] != '\0' && s->spf_helo.done &&
		    s->spf_helo.authres[0] != '\0')
			r |= buf_printf(&b, ";\n\t%s", s->spf_helo.authres);
		if (s->spf.authres[0] != '\0')
			r |= buf_printf(&b, "\n");
	}
	if (r == 0)
		r = buf_append(&s->body, b.data, b.len);
	buf_free(&b);
	return r;
}

/* A header value from a filter, made safe for the queue: LF line
 * ends, every continuation line starting with a blank. */
static char *
header_value_clean(const char *v)
{
	struct buf	 b;
	char		*r;

	buf_init(&b, SMTP_HEADER_MAX);
	for (; *v != '\0'; v++) {
		if (*v == '\r')
			continue;
		if (*v == '\n') {
			if (v[1] == '\0' || v[1] == '\r')
				break;
			(void)buf_putc(&b, '\n');
			if (v[1] != ' ' && v[1] != '\t')
				(void)buf_putc(&b, '\t');
			continue;
		}
		(void)buf_putc(&b, (unsigned char)*v < ' ' && *v != '\t' ?
		    ' ' : *v);
	}
	r = xmalloc(b.len + 2);
	r[0] = ' ';
	memcpy(r + 1, buf_cstr(&b), b.len + 1);
	buf_free(&b);
	return r;
}

static void
header_insert(struct smtp_session *s, size_t at, const char *name,
    const char *value)
{
	if (at > s->nhdrs)
		at = s->nhdrs;
	s->hdrs = xreallocarray(s->hdrs, s->nhdrs + 1, sizeof(*s->hdrs));
	memmove(&s->hdrs[at + 1], &s->hdrs[at],
	    (s->nhdrs - at) * sizeof(*s->hdrs));
	s->hdrs[at].name = xstrdup(name);
	s->hdrs[at].value = header_value_clean(value);
	s->nhdrs++;
}

/* An address from a filter, without angle brackets; NULL when bad. */
static char *
mod_addr(const char *v)
{
	size_t	 n, i;
	char	*r;

	while (*v == ' ')
		v++;
	n = strlen(v);
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v++;
		n -= 2;
	}
	if (n > ADDR_PATH_MAX)
		return NULL;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == '<' || v[i] == '>' ||
		    (unsigned char)v[i] == 0x7f)
			return NULL;
	r = xmalloc(n + 1);
	memcpy(r, v, n);
	r[n] = '\0';
	return r;
}

/* Apply envelope and header modifications; 1 when the file must be
 * rewritten. */
int
smtp_mods_apply(struct smtp_session *s)
{
	struct smtp_mod	*m;
	size_t		 i, j, k;
	unsigned int	 seen;
	char		*a, from[512];
	int		 rewrite = s->mods.body_set;

	for (i = 0; i < s->mods.n; i++) {
		m = &s->mods.v[i];
		switch (m->type) {
		case SMTP_MOD_HDR_ADD:
			header_insert(s, s->nhdrs, m->name, m->value);
			rewrite = 1;
			break;
		case SMTP_MOD_HDR_INSERT:
			header_insert(s, m->index, m->name, m->value);
			rewrite = 1;
			break;
		case SMTP_MOD_HDR_CHANGE:
			seen = 0;
			for (j = 0; j < s->nhdrs; j++)
				if (strcasecmp(s->hdrs[j].name, m->name) == 0 &&
				    ++seen == m->index)
					break;
			rewrite = 1;
			if (j == s->nhdrs) {
				/* libmilter: past the last, it is added. */
				if (m->value[0] != '\0')
					header_insert(s, s->nhdrs, m->name,
					    m->value);
				break;
			}
			if (m->value[0] == '\0') {
				free(s->hdrs[j].name);
				free(s->hdrs[j].value);
				memmove(&s->hdrs[j], &s->hdrs[j + 1],
				    (s->nhdrs - j - 1) * sizeof(*s->hdrs));
				s->nhdrs--;
			} else {
				free(s->hdrs[j].value);
				s->hdrs[j].value = header_value_clean(m->value);
			}
			break;
		case SMTP_MOD_RCPT_ADD:
			if ((a = mod_addr(m->value)) == NULL || a[0] == '\0' ||
			    smtp_rcpt_known(s, a)) {
				free(a);
				break;
			}
			s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1,
			    sizeof(*s->rcpts));
			s->rcpts[s->nrcpts++] = a;
			break;
		case SMTP_MOD_RCPT_DEL:
			if ((a = mod_addr(m->value)) == NULL)
				break;
			for (j = 0, k = 0; j < s->nrcpts; j++) {
				if (strcasecmp(s->rcpts[j], a) == 0)
					free(s->rcpts[j]);
				else
					s->rcpts[k++] = s->rcpts[j];
			}
			s->nrcpts = k;
			free(a);
			break;
		case SMTP_MOD_SENDER:
			if ((a = mod_addr(m->value)) == NULL)
				break;
			(void)log_clean(from, sizeof(from), a, strlen(a));
			log_info("%s smtp filter changed sender to <%s>",
			    s->w.id, from);
			free(s->sender);
			s->sender = a;
			break;
		}
	}
	return rewrite;
}

/* Copy at most max bytes from offset off of the file at path to w. */
static int
file_copy(struct queue_writer *w, const char *path, uint64_t off,
    uint64_t max)
{
	char	 b[16384];
	ssize_t	 n;
	int	 fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (off > 0 && lseek(fd, (off_t)off, SEEK_SET) == -1) {
		(void)close(fd);
		return -1;
	}
	while (max > 0 && (n = read(fd, b, max < sizeof(b) ? (size_t)max :
	    sizeof(b))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			r = -1;
			break;
		}
		if (queue_writer_write(w, b, (size_t)n) == -1) {
			r = -1;
			break;
		}
		max -= (uint64_t)n;
	}
	if (close(fd) == -1)
		r = -1;
	return r;
}

/*
 * The filters changed the header or the body: write the message anew
 * (our trace headers, the new header, the old or new body) and drop
 * the first file.  Only modified messages pay for the copy.
 */
int
smtp_message_rewrite(struct smtp_session *s)
{
	struct queue_writer	 nw;
	struct buf		 b;
	const char		*error;
	size_t			 i;
	int			 r = 0;

	smtp_body_flush(s);
	if (s->data_err != 0 || queue_writer_seal(&s->w) == -1)
		return -1;
	if (queue_writer_open(&nw, s->queue_dir, &error) == -1) {
		log_warnx("%s smtp queue open failed: %s", s->id, error);
		return -1;
	}
	buf_init(&b, 0);
	for (i = 0; i < s->nhdrs && r == 0; i++)
		r = buf_printf(&b, "%s:%s\n", s->hdrs[i].name,
		    s->hdrs[i].value);
	if (r == 0 && (s->hdr_sep || (s->mods.body_set &&
	    s->mods.body.len > 0)))
		r = buf_putc(&b, '\n');
	if (r == 0)
		r = file_copy(&nw, s->w.tmp_path, 0, s->prefix_len);
	if (r == 0)
		r = queue_writer_write(&nw, b.data, b.len);
	if (r == 0) {
		if (s->mods.body_set)
			r = queue_writer_write(&nw, s->mods.body.data,
			    s->mods.body.len);
		else
			r = file_copy(&nw, s->w.tmp_path, s->body_off,
			    UINT64_MAX);
	}
	buf_free(&b);
	if (r == -1) {
		queue_writer_abort(&nw);
		return -1;
	}
	queue_writer_abort(&s->w);
	s->w = nw;
	s->data_size = nw.size;
	return 0;
}
