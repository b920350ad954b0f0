/*
 * smtp_session.c — the SMTP protocol engine (RFC 5321) of one session:
 * its state machine and the dispatch of command lines.
 *
 * DESCRIPTION
 *	A state machine (enum smtp_state) over buffers: the I/O layer
 *	hands in received bytes, the engine consumes every complete
 *	command line in order (RFC 2920 pipelining), appends the replies
 *	to an output buffer, and hands DATA to smtp_data.c, which streams
 *	it into the domain's queue.  It never touches a socket and never
 *	exits, so unit tests and the fuzzer drive it directly.  This file
 *	holds the session's life (init, suspension and resume, timeout,
 *	shutdown, free), EHLO/HELO, STARTTLS and the small commands; MAIL
 *	and RCPT are in smtp_envelope.c, AUTH in smtp_sasl.c, the reply
 *	texts in smtp_replies.c.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account.  Every byte from the peer is untrusted:
 *	command lines, errors and the output waiting for the peer are
 *	bounded by struct smtpd_limits, and a line with controls is
 *	refused before dispatch.  After STARTTLS nothing read in the
 *	clear is parsed (RFC 3207 §6), and what the client said before
 *	is forgotten.  SASL lines are wiped from the input once read.
 *
 * STANDARDS
 *	RFC 5321 (SMTP), RFC 2920 (PIPELINING), RFC 3207 (STARTTLS),
 *	RFC 2034 and 3463 (enhanced status codes).
 *
 * DIAGNOSTICS
 *	"smtp refused ... stage=connect", "smtp timeout", "smtp too many
 *	errors", "smtp disconnect during data".
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "domain.h"
#include "line.h"
#include "log.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "xmalloc.h"

struct smtp_cmd {
	const char	*name;
	void		(*fn)(struct smtp_session *, char *);
};

static void	cmd_data(struct smtp_session *, char *);
static void	cmd_ehlo(struct smtp_session *, char *);
static void	cmd_expn(struct smtp_session *, char *);
static void	cmd_helo(struct smtp_session *, char *);
static void	cmd_help(struct smtp_session *, char *);
static void	cmd_noop(struct smtp_session *, char *);
static void	cmd_quit(struct smtp_session *, char *);
static void	cmd_rset(struct smtp_session *, char *);
static void	cmd_starttls(struct smtp_session *, char *);
static void	cmd_vrfy(struct smtp_session *, char *);

/* Sorted by name for bsearch. */
static const struct smtp_cmd smtp_cmds[] = {
	{ "AUTH",	smtp_sasl_cmd },
	{ "DATA",	cmd_data },
	{ "EHLO",	cmd_ehlo },
	{ "EXPN",	cmd_expn },
	{ "HELO",	cmd_helo },
	{ "HELP",	cmd_help },
	{ "MAIL",	smtp_envelope_mail },
	{ "NOOP",	cmd_noop },
	{ "QUIT",	cmd_quit },
	{ "RCPT",	smtp_envelope_rcpt },
	{ "RSET",	cmd_rset },
	{ "STARTTLS",	cmd_starttls },
	{ "TURN",	cmd_expn },
	{ "VRFY",	cmd_vrfy },
};

static unsigned int	smtp_session_serial;

/* Forget the transaction, telling the filters it is abandoned. */
void
smtp_transaction_reset(struct smtp_session *s)
{
	if (s->sender != NULL && s->hooks != NULL && s->hooks->abort != NULL)
		s->hooks->abort(s->hooks->arg, s);
	smtp_transaction_clear(s);
}

static void
headers_free(struct smtp_session *s)
{
	size_t	 i;

	for (i = 0; i < s->nhdrs; i++) {
		free(s->hdrs[i].name);
		free(s->hdrs[i].value);
	}
	free(s->hdrs);
	s->hdrs = NULL;
	s->nhdrs = 0;
	s->hdr_bytes = 0;
}

static void
spf_clear(struct smtp_spf *p)
{
	free(p->received);
	free(p->authres);
	free(p->comment);
	memset(p, 0, sizeof(*p));
}

/* Forget the transaction; no hook is called (commit threads). */
void
smtp_transaction_clear(struct smtp_session *s)
{
	size_t	 i;

	free(s->rcpt_asked);
	s->rcpt_asked = NULL;
	free(s->mail_args);
	s->mail_args = NULL;
	spf_clear(&s->spf);
	spf_clear(&s->spf_helo);
	headers_free(s);
	buf_reset(&s->hdr_cur);
	buf_reset(&s->hdr_line);
	s->hdr_ready = s->hdr_end = s->hdr_sep = 0;
	s->hdr_mode = s->flush_pending = 0;
	s->file_off = s->prefix_len = s->body_off = 0;
	s->body_mark = 0;
	s->data_done = s->eom_asked = s->asked = 0;
	s->filtered = 0;
	s->fv = SMTP_V_CONTINUE;
	free(s->fv_reply);
	s->fv_reply = NULL;
	smtp_mods_free(&s->mods);
	if (s->w_open) {
		queue_writer_abort(&s->w);
		s->w_open = 0;
	}
	free(s->sender);
	s->sender = NULL;
	smtp_direct_clear(s);
	for (i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->flags = 0;
	s->size_declared = 0;
	s->data_err = 0;
	s->data_size = 0;
	s->data_linelen = 0;
	s->data_headers = 0;
	s->data_received = 0;
	buf_reset(&s->body);
	if (s->state != SMTP_STATE_QUIT && s->state != SMTP_STATE_GREETING &&
	    s->state != SMTP_STATE_INIT)
		s->state = SMTP_STATE_HELO;
}

void
smtp_session_init(struct smtp_session *s, struct smtpd_domain *sd,
    struct smtp_userdb *udb, enum listener_kind kind,
    const struct sockaddr *peer, socklen_t peer_len, struct buf *out)
{
	memset(s, 0, sizeof(*s));
	s->direct_fd = -1;
	s->state = SMTP_STATE_GREETING;
	s->sd = sd;
	s->udb = udb;
	s->kind = kind;
	s->queue_dir = QUEUE_DIR;
	s->out = out;
	buf_init(&s->body, 0);
	buf_init(&s->hdr_cur, SMTP_HEADER_MAX);
	buf_init(&s->hdr_line, SMTP_HEADER_MAX);
	/* A milter's replacement body obeys the message size limit too. */
	buf_init(&s->mods.body, (size_t)smtp_limit_size(s));
	(void)snprintf(s->id, sizeof(s->id), "%x.%u", (unsigned)getpid(),
	    ++smtp_session_serial);
	if (peer != NULL && peer_len > 0 &&
	    (size_t)peer_len <= sizeof(s->peer)) {
		memcpy(&s->peer, peer, peer_len);
		s->peer_len = peer_len;
		if (domain_addr_text(peer, s->client_addr,
		    sizeof(s->client_addr)) == NULL)
			s->client_addr[0] = '\0';
	}
	(void)strlcpy(s->client_name, "unknown", sizeof(s->client_name));
	line_reader_init(&s->lr, smtp_limit_line(s) - 2);
}

/*
 * Ask the hooks; 1 when the answer comes later (s->pend set), 0 when
 * it is already in s->ans (CONTINUE when nothing was asked).
 */
int
smtp_session_ask(struct smtp_session *s, enum smtp_ask what,
    enum smtp_pend pend, const char *data, size_t len)
{
	memset(&s->ans, 0, sizeof(s->ans));
	if (s->hooks == NULL || s->hooks->ask == NULL)
		return 0;
	if (s->hooks->ask(s->hooks->arg, s, what, data, len) == 0)
		return 0;
	s->pend = pend;
	return 1;
}

static void
connect_done(struct smtp_session *s)
{
	if (smtp_verdict_refuses(s->ans.v)) {
		log_info("%s smtp refused client=%s reason=filter "
		    "stage=connect", s->id, s->client_addr);
		smtp_reply_verdict(s, s->ans.v, s->ans.reply, RPL_CONN_REJECT);
		s->state = SMTP_STATE_QUIT;
		return;
	}
	if (s->ans.v == SMTP_V_DISCARD)
		s->discard_all = 1;
	/* RFC 5321 §4.3.1; no enhanced code in the greeting (RFC 2034). */
	if (buf_printf(s->out, "220 %s ESMTP\r\n",
	    smtp_session_hostname(s)) == -1)
		s->state = SMTP_STATE_QUIT;
	else
		s->state = SMTP_STATE_INIT;
}

void
smtp_session_greet(struct smtp_session *s)
{
	if (smtp_session_ask(s, SMTP_ASK_CONNECT, SMTP_PEND_CONNECT, NULL, 0))
		return;
	connect_done(s);
}

static void	helo_done(struct smtp_session *);
static void	data_cmd_done(struct smtp_session *);

void
smtp_session_resume(struct smtp_session *s, const struct smtp_answer *a)
{
	enum smtp_pend	 p = s->pend;

	if (p == SMTP_PEND_NONE)
		return;
	s->ans = *a;
	s->ans.reply[sizeof(s->ans.reply) - 1] = '\0';
	s->pend = SMTP_PEND_NONE;
	switch (p) {
	case SMTP_PEND_CONNECT:
		connect_done(s);
		break;
	case SMTP_PEND_HELO:
		helo_done(s);
		break;
	case SMTP_PEND_SPF:
		smtp_envelope_spf_done(s);
		break;
	case SMTP_PEND_MAIL:
		smtp_envelope_mail_done(s);
		break;
	case SMTP_PEND_RCPT:
		smtp_envelope_rcpt_done(s);
		break;
	case SMTP_PEND_DATA:
		data_cmd_done(s);
		break;
	case SMTP_PEND_AUTH:
		smtp_sasl_done(s);
		break;
	case SMTP_PEND_STEP:
	case SMTP_PEND_NONE:
		/* s->asked tells the DATA step it has its answer. */
		break;
	}
}

void
smtp_session_spf(struct smtp_session *s, int result, const char *received,
    const char *authres, const char *comment)
{
	spf_clear(&s->spf);
	s->spf.done = 1;
	s->spf.result = result;
	s->spf.received = xstrdup(received != NULL ? received : "");
	s->spf.authres = xstrdup(authres != NULL ? authres : "");
	s->spf.comment = xstrdup(comment != NULL ? comment : "");
	smtp_text_clean(s->spf.received);
	smtp_text_clean(s->spf.authres);
	smtp_text_clean(s->spf.comment);
}

void
smtp_session_spf_helo(struct smtp_session *s, int result,
    const char *received, const char *authres, const char *comment)
{
	struct smtp_spf	 keep = s->spf;

	/* Same cleaning, into the other slot. */
	memset(&s->spf, 0, sizeof(s->spf));
	smtp_session_spf(s, result, received, authres, comment);
	spf_clear(&s->spf_helo);
	s->spf_helo = s->spf;
	s->spf = keep;
}

void
smtp_mods_add(struct smtp_mods *m, enum smtp_mod_type type,
    unsigned int index, const char *name, const char *value)
{
	struct smtp_mod	*d;

	m->v = xreallocarray(m->v, m->n + 1, sizeof(*m->v));
	d = &m->v[m->n++];
	d->type = type;
	d->index = index;
	d->name = name != NULL ? xstrdup(name) : NULL;
	d->value = value != NULL ? xstrdup(value) : NULL;
}

void
smtp_mods_free(struct smtp_mods *m)
{
	size_t	 i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].name);
		free(m->v[i].value);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
	m->body_set = 0;
	buf_reset(&m->body);
	free(m->quarantine);
	m->quarantine = NULL;
}

int
smtp_session_busy(const struct smtp_session *s)
{
	return s->pend != SMTP_PEND_NONE ||
	    s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_RCPT ||
	    s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_COMMIT;
}

void
smtp_session_eof(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_COMMIT)
		log_info("%s smtp disconnect during data client=%s size=%llu",
		    s->id, s->client_addr, (unsigned long long)s->data_size);
	smtp_transaction_reset(s);
	s->pend = SMTP_PEND_NONE;
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_timeout(struct smtp_session *s)
{
	log_info("%s smtp timeout client=%s state=%d", s->id, s->client_addr,
	    (int)s->state);
	smtp_transaction_reset(s);
	s->pend = SMTP_PEND_NONE;
	smtp_session_reply(s, RPL_TIMEOUT, NULL);
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	smtp_transaction_reset(s);
	s->pend = SMTP_PEND_NONE;
	smtp_session_reply(s, RPL_SHUTDOWN, NULL);
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_refuse(struct smtp_session *s)
{
	smtp_session_reply(s, RPL_TOO_MANY_SESSIONS, NULL);
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_free(struct smtp_session *s)
{
	smtp_transaction_reset(s);
	buf_free(&s->body);
	buf_free(&s->hdr_cur);
	buf_free(&s->hdr_line);
	buf_free(&s->mods.body);
	free(s->auth_user);
	s->auth_user = NULL;
	smtp_sasl_clear(s);
}

/* ------------------------------------------------------------------ */
/* Commands. */

/* Parse a hostname-ish argument of HELO/EHLO: printable, no spaces. */
static int
helo_valid(const char *arg)
{
	size_t	 n;

	if (arg == NULL || (n = strlen(arg)) == 0 || n > SMTP_HELO_MAX)
		return 0;
	for (; *arg != '\0'; arg++)
		if ((unsigned char)*arg <= ' ' || (unsigned char)*arg >= 0x7f)
			return 0;
	return 1;
}

static void
helo_common(struct smtp_session *s, char *arg, int esmtp)
{
	if (!helo_valid(arg)) {
		smtp_session_reply(s, RPL_SYNTAX_HELO, NULL);
		return;
	}
	/* RFC 5321 §4.1.4: EHLO/HELO also resets any transaction. */
	smtp_transaction_reset(s);
	(void)strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	s->state = SMTP_STATE_HELO;
}

static void
helo_done(struct smtp_session *s)
{
	int	 r = 0;

	if (smtp_verdict_refuses(s->ans.v)) {
		smtp_reply_verdict(s, s->ans.v, s->ans.reply,
		    RPL_FILTER_REJECT);
		if (s->state != SMTP_STATE_QUIT)
			s->state = SMTP_STATE_INIT;
		return;
	}
	if (!s->esmtp) {
		if (buf_printf(s->out, "250 %s\r\n",
		    smtp_session_hostname(s)) == -1)
			s->state = SMTP_STATE_QUIT;
		return;
	}
	r |= buf_printf(s->out, "250-%s\r\n", smtp_session_hostname(s));
	r |= buf_puts(s->out, "250-PIPELINING\r\n");
	r |= buf_printf(s->out, "250-SIZE %llu\r\n",
	    (unsigned long long)smtp_limit_size(s));
	r |= buf_puts(s->out, "250-8BITMIME\r\n");
	r |= buf_puts(s->out, "250-ENHANCEDSTATUSCODES\r\n");
	/* RFC 3207; RFC 4954: AUTH only under TLS unless allowed. */
	if (s->tls_available && !s->tls)
		r |= buf_puts(s->out, "250-STARTTLS\r\n");
	if (!s->authenticated && smtp_sasl_offered(s))
		r |= buf_puts(s->out, "250-AUTH PLAIN LOGIN\r\n");
	r |= buf_puts(s->out, "250 SMTPUTF8\r\n");
	if (r != 0)
		s->state = SMTP_STATE_QUIT;
}

static void
cmd_helo(struct smtp_session *s, char *arg)
{
	helo_common(s, arg, 0);
	if (s->state != SMTP_STATE_HELO)
		return;
	if (smtp_session_ask(s, SMTP_ASK_HELO, SMTP_PEND_HELO, NULL, 0))
		return;
	helo_done(s);
}

static void
cmd_ehlo(struct smtp_session *s, char *arg)
{
	helo_common(s, arg, 1);
	if (s->state != SMTP_STATE_HELO)
		return;
	if (smtp_session_ask(s, SMTP_ASK_HELO, SMTP_PEND_HELO, NULL, 0))
		return;
	helo_done(s);
}

/* ------------------------------------------------------------------ */
/* STARTTLS (RFC 3207) and AUTH (RFC 4954). */

static void
cmd_starttls(struct smtp_session *s, char *arg)
{
	if (arg != NULL) {
		smtp_session_reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	if (s->tls) {
		smtp_session_reply(s, RPL_TLS_ACTIVE, NULL);
		return;
	}
	if (!s->tls_available) {
		smtp_session_reply(s, RPL_TLS_UNAVAILABLE, NULL);
		return;
	}
	if (smtp_session_busy(s)) {
		smtp_session_reply(s, RPL_SEQ_NESTED, NULL);
		return;
	}
	smtp_session_reply(s, RPL_TLS_READY, NULL);
	s->tls_start = 1;
}

void
smtp_session_tls(struct smtp_session *s, const char *version,
    const char *cipher, int bits)
{
	/* RFC 3207 §4.2: discard any knowledge obtained from the client. */
	smtp_transaction_reset(s);
	smtp_sasl_clear(s);
	s->tls = 1;
	s->tls_start = 0;
	s->tls_available = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	line_reader_init(&s->lr, smtp_limit_line(s) - 2);
	if (s->state != SMTP_STATE_GREETING && s->state != SMTP_STATE_QUIT)
		s->state = SMTP_STATE_INIT;
	(void)snprintf(s->tls_info, sizeof(s->tls_info),
	    "using %.16s with cipher %.64s (%d/%d bits)", version, cipher,
	    bits, bits);
	smtp_text_clean(s->tls_info);
}

static void
cmd_data(struct smtp_session *s, char *arg)
{
	const char	*error;

	if (s->state == SMTP_STATE_INIT) {
		smtp_session_reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->state == SMTP_STATE_HELO) {
		smtp_session_reply(s, RPL_SEQ_MAIL, NULL);
		return;
	}
	if (s->state == SMTP_STATE_MAIL) {
		/* RFC 5321 §3.3: 554 when no recipient was accepted. */
		smtp_session_reply(s, s->nrcpts == 0 ? RPL_NO_RCPT :
		    RPL_SEQ_RCPT, NULL);
		return;
	}
	if (arg != NULL) {
		smtp_session_reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	if (queue_writer_open(&s->w, s->queue_dir, &error) == -1) {
		log_warnx("%s smtp queue open failed: %s", s->id, error);
		smtp_session_reply(s, errno == ENOSPC ||
		    errno == EDQUOT ? RPL_DISK_FULL : RPL_QUEUE_FAIL, NULL);
		return;
	}
	s->w_open = 1;
	s->data_err = 0;
	s->data_size = 0;
	s->data_linelen = 0;
	s->data_headers = 1;
	s->data_received = 0;
	s->data_start = time(NULL);
	buf_reset(&s->body);
	buf_reset(&s->hdr_cur);
	s->hdr_mode = s->filtered || s->spf_on;
	if (smtp_received_write(s) == -1)
		s->data_err |= SMTP_DATA_WRITE;
	s->prefix_len = s->body.len;
	if (s->filtered &&
	    smtp_session_ask(s, SMTP_ASK_DATA, SMTP_PEND_DATA, NULL, 0))
		return;
	data_cmd_done(s);
}

static void
data_cmd_done(struct smtp_session *s)
{
	if (smtp_verdict_refuses(s->ans.v)) {
		smtp_reply_verdict(s, s->ans.v, s->ans.reply,
		    RPL_FILTER_REJECT);
		smtp_transaction_reset(s);
		return;
	}
	if (s->ans.v == SMTP_V_ACCEPT)
		s->filtered = 0;
	else if (s->ans.v == SMTP_V_DISCARD) {
		s->fv = SMTP_V_DISCARD;
		s->filtered = 0;
	}
	s->state = SMTP_STATE_DATA;
	smtp_session_reply(s, RPL_DATA, NULL);
}

static void
cmd_rset(struct smtp_session *s, char *arg)
{
	if (arg != NULL) {
		smtp_session_reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	smtp_transaction_reset(s);
	smtp_session_reply(s, RPL_OK, NULL);
}

static void
cmd_noop(struct smtp_session *s, char *arg)
{
	(void)arg;		/* RFC 5321 §4.1.1.9: parameter ignored */
	smtp_session_reply(s, RPL_OK, NULL);
}

static void
cmd_quit(struct smtp_session *s, char *arg)
{
	if (arg != NULL) {
		smtp_session_reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	smtp_transaction_reset(s);
	smtp_session_reply(s, RPL_BYE, NULL);
	s->state = SMTP_STATE_QUIT;
}

static void
cmd_vrfy(struct smtp_session *s, char *arg)
{
	/* RFC 5321 §3.5.3: 252 says nothing about who exists. */
	smtp_session_reply(s, arg == NULL ? RPL_SYNTAX_VRFY : RPL_VRFY, NULL);
}

static void
cmd_expn(struct smtp_session *s, char *arg)
{
	(void)arg;
	smtp_session_reply(s, RPL_NOT_IMPL, NULL);
}

static void
cmd_help(struct smtp_session *s, char *arg)
{
	(void)arg;
	smtp_session_reply(s, RPL_HELP, NULL);
}

static int
cmd_compare(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct smtp_cmd *)elem)->name);
}

/* One command line (terminator removed, NUL-terminated copy). */
static void
session_command(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_cmd	*c;
	char			*arg, *sp;
	size_t			 i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
			smtp_session_reply(s, RPL_BAD_CHARS, NULL);
			return;
		}
	}
	/* Trailing blanks are a common client quirk; drop them. */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	arg = NULL;
	if ((sp = strchr(line, ' ')) != NULL) {
		*sp = '\0';
		arg = sp + 1;
		while (*arg == ' ')
			arg++;
		if (*arg == '\0')
			arg = NULL;
	}
	c = bsearch(line, smtp_cmds, sizeof(smtp_cmds) / sizeof(smtp_cmds[0]),
	    sizeof(smtp_cmds[0]), cmd_compare);
	if (c == NULL) {
		smtp_session_reply(s, RPL_UNKNOWN_CMD, NULL);
		return;
	}
	c->fn(s, arg);
}

enum smtp_action
smtp_session_input(struct smtp_session *s, struct buf *in)
{
	struct line	 line;
	char		*copy;

	for (;;) {
		if (s->pend != SMTP_PEND_NONE)
			return SMTP_ACT_WAIT;
		if (s->state == SMTP_STATE_QUIT)
			return SMTP_ACT_CLOSE;
		if (s->state == SMTP_STATE_COMMIT)
			return SMTP_ACT_COMMIT;
		if (s->state == SMTP_STATE_GREETING)
			return SMTP_ACT_CONTINUE;
		/* Nothing after STARTTLS is read in the clear (RFC 3207 §6). */
		if (s->tls_start)
			return SMTP_ACT_STARTTLS;
		if (s->errors > smtp_limit_errors(s)) {
			log_info("%s smtp too many errors client=%s", s->id,
			    s->client_addr);
			smtp_transaction_reset(s);
			smtp_session_reply(s, RPL_TOO_MANY_ERRORS, NULL);
			s->state = SMTP_STATE_QUIT;
			return SMTP_ACT_CLOSE;
		}
		/* Back-pressure: a client that does not read its replies. */
		if (s->out->len > SMTP_OUT_HIGH)
			return SMTP_ACT_CONTINUE;
		if (s->state == SMTP_STATE_DATA) {
			switch (smtp_data_input(s, in)) {
			case 0:
				return SMTP_ACT_CONTINUE;
			case 2:
				return SMTP_ACT_WAIT;
			}
			if (smtp_data_end(s) == SMTP_ACT_COMMIT)
				return SMTP_ACT_COMMIT;
			continue;
		}
		switch (line_next(&s->lr, in, 0, &line)) {
		case LINE_PARTIAL:
			return SMTP_ACT_CONTINUE;
		case LINE_TOOLONG:
			/* RFC 5321 §4.5.3.1.4 */
			smtp_session_reply(s, RPL_LINE_TOO_LONG, NULL);
			continue;
		case LINE_READY:
			break;
		}
		copy = xmalloc(line.len + 1);
		memcpy(copy, line.data, line.len);
		copy[line.len] = '\0';
		if (s->auth_step != SMTP_AUTH_NONE) {
			/* A SASL response: it may hold a password. */
			explicit_bzero(in->data, line.consumed);
			buf_consume(in, line.consumed);
			smtp_sasl_response(s, copy, line.len);
			explicit_bzero(copy, line.len);
		} else if (line.len >= 4 &&
		    strncasecmp(line.data, "AUTH", 4) == 0) {
			/* An initial response may hold a password. */
			explicit_bzero(in->data, line.consumed);
			buf_consume(in, line.consumed);
			session_command(s, copy, line.len);
			explicit_bzero(copy, line.len);
		} else {
			buf_consume(in, line.consumed);
			session_command(s, copy, line.len);
		}
		free(copy);
	}
}
