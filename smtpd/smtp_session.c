/*
 * smtp_session.c — the SMTP protocol engine (RFC 5321) of one session.
 *
 * DESCRIPTION
 *	A state machine (enum smtp_state) over buffers: the I/O layer
 *	hands in received bytes, the engine consumes every complete
 *	command line in order (RFC 2920 pipelining), appends the replies
 *	to an output buffer, and streams DATA into the domain's queue.
 *	It never touches a socket and never exits, so unit tests and the
 *	fuzzer drive it directly.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account.  Every byte from the peer is untrusted:
 *	command lines, DATA lines, message size, recipients and errors
 *	are all bounded by struct smtpd_limits.  Only <CRLF>.<CRLF> ends
 *	DATA; a bare CR, bare LF or NUL anywhere in the message makes the
 *	whole message refused at its real end, so no line end that another
 *	MTA reads differently can split one message into two (SMTP
 *	smuggling).  Recipients of a local domain must exist in the
 *	domain's own etc/passwd or etc/aliases; every other domain,
 *	sibling domains of this host included, is relayed only for
 *	relay_from clients (or, later, authenticated users).
 *
 * STANDARDS
 *	RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 2034 and 3463 (enhanced
 *	status codes), RFC 2920 (PIPELINING), RFC 6152 (8BITMIME),
 *	RFC 6531 (SMTPUTF8), RFC 3848 (Received: protocol names).
 *
 * DIAGNOSTICS
 *	One log line per received or refused message, keyed by queue id.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "aliases.h"
#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "log.h"
#include "passwd.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "xmalloc.h"

/*
 * Every reply text, in one table.  RFC 2034 §3: enhanced codes on all
 * 2xx/4xx/5xx replies except the greeting and the EHLO/HELO replies;
 * 3xx replies (354) carry none.
 */
enum smtp_reply {
	RPL_OK,
	RPL_MAIL_OK,
	RPL_RCPT_OK,
	RPL_QUEUED,
	RPL_VRFY,
	RPL_HELP,
	RPL_BYE,
	RPL_DATA,
	RPL_SHUTDOWN,
	RPL_TIMEOUT,
	RPL_TOO_MANY_ERRORS,
	RPL_TOO_MANY_SESSIONS,
	RPL_TEMPFAIL,
	RPL_QUEUE_FAIL,
	RPL_DISK_FULL,
	RPL_RCPT_MAX,
	RPL_LINE_TOO_LONG,
	RPL_UNKNOWN_CMD,
	RPL_BAD_CHARS,
	RPL_SYNTAX_HELO,
	RPL_SYNTAX_MAIL,
	RPL_SYNTAX_RCPT,
	RPL_SYNTAX_NOARG,
	RPL_SYNTAX_VRFY,
	RPL_BAD_SENDER,
	RPL_BAD_RCPT,
	RPL_NOT_IMPL,
	RPL_SEQ_HELO,
	RPL_SEQ_NESTED,
	RPL_SEQ_MAIL,
	RPL_SEQ_RCPT,
	RPL_NO_RCPT,
	RPL_AUTH_REQUIRED,
	RPL_USER_UNKNOWN,
	RPL_BARE_LF,
	RPL_BARE_CR,
	RPL_NUL,
	RPL_LONG_LINE,
	RPL_TOO_BIG,
	RPL_SIZE_TOO_BIG,
	RPL_PARAM,
	RPL_UTF8_REQUIRED,
	RPL_RELAY,
	RPL_LOOP,
	RPL_QUEUED_DISCARD,
	RPL_CONN_REJECT,
	RPL_CONN_TEMPFAIL,
	RPL_FILTER_REJECT,
	RPL_FILTER_TEMPFAIL,
	RPL_FILTER_SHUTDOWN,
	RPL_CONTENT_REJECT,
	RPL_SPF_FAIL,
	RPL_SPF_TEMPERROR,
	RPL_HEADER_BIG,
	RPL_TLS_READY,
	RPL_TLS_ACTIVE,
	RPL_TLS_UNAVAILABLE,
	RPL_AUTH_OK,
	RPL_AUTH_FAILED,
	RPL_AUTH_TEMP,
	RPL_AUTH_ENCRYPT,
	RPL_AUTH_MECH,
	RPL_AUTH_CANCEL,
	RPL_AUTH_DECODE,
	RPL_AUTH_ALREADY,
	RPL_AUTH_SEQ,
	RPL_AUTH_TOO_MANY,
	RPL_SENDER_LOGIN,
};

struct smtp_reply_text {
	int		 code;
	const char	*enh;		/* NULL: none */
	const char	*text;
};

static const struct smtp_reply_text smtp_replies[] = {
	[RPL_OK] =
	    { 250, "2.0.0", "Ok" },
	[RPL_MAIL_OK] =
	    { 250, "2.1.0", "Ok" },
	[RPL_RCPT_OK] =
	    { 250, "2.1.5", "Ok" },
	[RPL_QUEUED] =
	    { 250, "2.0.0", "Ok: queued as" },
	[RPL_VRFY] =
	    { 252, "2.5.0", "Cannot VRFY user, but will accept message and "
		"attempt delivery" },
	[RPL_HELP] =
	    { 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT "
		"VRFY HELP" },
	[RPL_BYE] =
	    { 221, "2.0.0", "Bye" },
	[RPL_DATA] =
	    { 354, NULL, "End data with <CR><LF>.<CR><LF>" },
	[RPL_SHUTDOWN] =
	    { 421, "4.3.2", "Service shutting down, closing connection" },
	[RPL_TIMEOUT] =
	    { 421, "4.4.2", "Timeout, closing connection" },
	[RPL_TOO_MANY_ERRORS] =
	    { 421, "4.7.0", "Too many errors, closing connection" },
	[RPL_TOO_MANY_SESSIONS] =
	    { 421, "4.7.0", "Too many connections, try again later" },
	[RPL_TEMPFAIL] =
	    { 451, "4.3.0", "Temporary local failure, try again later" },
	[RPL_QUEUE_FAIL] =
	    { 451, "4.3.0", "Could not queue the message, try again later" },
	[RPL_DISK_FULL] =
	    { 452, "4.3.1", "Insufficient system storage" },
	[RPL_RCPT_MAX] =
	    { 452, "4.5.3", "Too many recipients" },
	[RPL_LINE_TOO_LONG] =
	    { 500, "5.5.2", "Line too long" },
	[RPL_UNKNOWN_CMD] =
	    { 500, "5.5.2", "Command not recognized" },
	[RPL_BAD_CHARS] =
	    { 500, "5.5.2", "Invalid characters in command" },
	[RPL_SYNTAX_HELO] =
	    { 501, "5.5.4", "Syntax: EHLO hostname" },
	[RPL_SYNTAX_MAIL] =
	    { 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	[RPL_SYNTAX_RCPT] =
	    { 501, "5.5.4", "Syntax: RCPT TO:<address>" },
	[RPL_SYNTAX_NOARG] =
	    { 501, "5.5.4", "No arguments allowed" },
	[RPL_SYNTAX_VRFY] =
	    { 501, "5.5.4", "Syntax: VRFY address" },
	[RPL_BAD_SENDER] =
	    { 501, "5.1.7", "Bad sender address syntax" },
	[RPL_BAD_RCPT] =
	    { 501, "5.1.3", "Bad recipient address syntax" },
	[RPL_NOT_IMPL] =
	    { 502, "5.5.1", "Command not implemented" },
	[RPL_SEQ_HELO] =
	    { 503, "5.5.1", "Send EHLO or HELO first" },
	[RPL_SEQ_NESTED] =
	    { 503, "5.5.1", "Nested MAIL command" },
	[RPL_SEQ_MAIL] =
	    { 503, "5.5.1", "Send MAIL first" },
	[RPL_SEQ_RCPT] =
	    { 503, "5.5.1", "Send RCPT first" },
	[RPL_NO_RCPT] =
	    { 554, "5.5.1", "No valid recipients" },
	[RPL_AUTH_REQUIRED] =
	    { 530, "5.7.0", "Authentication required" },
	[RPL_USER_UNKNOWN] =
	    { 550, "5.1.1", "Recipient address rejected: user unknown" },
	[RPL_BARE_LF] =
	    { 550, "5.5.2", "Message refused: bare LF in data "
		"(RFC 5321 2.3.8)" },
	[RPL_BARE_CR] =
	    { 550, "5.5.2", "Message refused: bare CR in data "
		"(RFC 5321 2.3.8)" },
	[RPL_NUL] =
	    { 550, "5.6.0", "Message refused: NUL byte in data" },
	[RPL_LONG_LINE] =
	    { 550, "5.6.0", "Message refused: text line too long (RFC 5321 "
		"4.5.3.1.6)" },
	[RPL_TOO_BIG] =
	    { 552, "5.3.4", "Message size exceeds fixed limit" },
	[RPL_SIZE_TOO_BIG] =
	    { 552, "5.3.4", "Message size exceeds fixed limit" },
	[RPL_PARAM] =
	    { 555, "5.5.4", "Unsupported or bad parameter" },
	[RPL_UTF8_REQUIRED] =
	    { 553, "5.6.7", "Non-ASCII address requires SMTPUTF8" },
	[RPL_RELAY] =
	    { 554, "5.7.1", "Relay access denied" },
	[RPL_LOOP] =
	    { 554, "5.4.6", "Too many Received: headers, mail loop" },
	[RPL_QUEUED_DISCARD] =
	    { 250, "2.0.0", "Ok: discarded" },
	[RPL_CONN_REJECT] =
	    { 554, "5.7.1", "Connection rejected" },
	[RPL_CONN_TEMPFAIL] =
	    { 421, "4.7.0", "Service unavailable, closing connection" },
	[RPL_FILTER_REJECT] =
	    { 550, "5.7.1", "Command rejected" },
	[RPL_FILTER_TEMPFAIL] =
	    { 451, "4.7.1", "Service unavailable, try again later" },
	[RPL_FILTER_SHUTDOWN] =
	    { 421, "4.7.0", "Service unavailable, closing connection" },
	[RPL_CONTENT_REJECT] =
	    { 550, "5.7.1", "Message content rejected" },
	/* RFC 7372 §3.2 */
	[RPL_SPF_FAIL] =
	    { 550, "5.7.23", "SPF check failed:" },
	[RPL_SPF_TEMPERROR] =
	    { 451, "4.7.24", "SPF check temporarily failed:" },
	[RPL_HEADER_BIG] =
	    { 552, "5.3.4", "Message header too big to filter" },
	/* RFC 3207 §4 */
	[RPL_TLS_READY] =
	    { 220, "2.0.0", "Ready to start TLS" },
	[RPL_TLS_ACTIVE] =
	    { 503, "5.5.1", "TLS already active" },
	[RPL_TLS_UNAVAILABLE] =
	    { 454, "4.7.0", "TLS not available" },
	/* RFC 4954 §4, §6 */
	[RPL_AUTH_OK] =
	    { 235, "2.7.0", "Authentication successful" },
	[RPL_AUTH_FAILED] =
	    { 535, "5.7.8", "Authentication credentials invalid" },
	[RPL_AUTH_TEMP] =
	    { 454, "4.7.0", "Temporary authentication failure" },
	[RPL_AUTH_ENCRYPT] =
	    { 538, "5.7.11", "Encryption required for requested "
		"authentication mechanism" },
	[RPL_AUTH_MECH] =
	    { 504, "5.5.4", "Unrecognized authentication type" },
	[RPL_AUTH_CANCEL] =
	    { 501, "5.0.0", "Authentication cancelled" },
	[RPL_AUTH_DECODE] =
	    { 501, "5.5.2", "Cannot decode response" },
	[RPL_AUTH_ALREADY] =
	    { 503, "5.5.1", "Already authenticated" },
	[RPL_AUTH_SEQ] =
	    { 503, "5.5.1", "AUTH not allowed now" },
	[RPL_AUTH_TOO_MANY] =
	    { 421, "4.7.0", "Too many authentication failures" },
	[RPL_SENDER_LOGIN] =
	    { 553, "5.7.1", "Sender address not owned by the authenticated "
		"user" },
};

/* The SASL exchange under way (s->auth_step). */
#define SMTP_AUTH_NONE		0
#define SMTP_AUTH_PLAIN		1	/* 334 sent, waiting for PLAIN */
#define SMTP_AUTH_LOGIN_USER	2	/* 334 "Username:" sent */
#define SMTP_AUTH_LOGIN_PASS	3	/* 334 "Password:" sent */

struct smtp_cmd {
	const char	*name;
	void		(*fn)(struct smtp_session *, char *);
};

static void	cmd_auth(struct smtp_session *, char *);
static int	auth_offered(const struct smtp_session *);
static void	auth_clear(struct smtp_session *);
static void	auth_response(struct smtp_session *, char *, size_t);
static void	cmd_data(struct smtp_session *, char *);
static void	cmd_ehlo(struct smtp_session *, char *);
static void	cmd_expn(struct smtp_session *, char *);
static void	cmd_helo(struct smtp_session *, char *);
static void	cmd_help(struct smtp_session *, char *);
static void	cmd_mail(struct smtp_session *, char *);
static void	cmd_noop(struct smtp_session *, char *);
static void	cmd_quit(struct smtp_session *, char *);
static void	cmd_rcpt(struct smtp_session *, char *);
static void	cmd_rset(struct smtp_session *, char *);
static void	cmd_starttls(struct smtp_session *, char *);
static void	cmd_vrfy(struct smtp_session *, char *);

/* Sorted by name for bsearch. */
static const struct smtp_cmd smtp_cmds[] = {
	{ "AUTH",	cmd_auth },
	{ "DATA",	cmd_data },
	{ "EHLO",	cmd_ehlo },
	{ "EXPN",	cmd_expn },
	{ "HELO",	cmd_helo },
	{ "HELP",	cmd_help },
	{ "MAIL",	cmd_mail },
	{ "NOOP",	cmd_noop },
	{ "QUIT",	cmd_quit },
	{ "RCPT",	cmd_rcpt },
	{ "RSET",	cmd_rset },
	{ "STARTTLS",	cmd_starttls },
	{ "TURN",	cmd_expn },
	{ "VRFY",	cmd_vrfy },
};

static unsigned int	smtp_session_serial;

static size_t
limit_line(const struct smtp_session *s)
{
	size_t	 v = s->sd->limits.line_max;

	return v < 64 ? SMTP_DEF_LINE_MAX : v;
}

static size_t
limit_text_line(const struct smtp_session *s)
{
	size_t	 v = s->sd->limits.text_line_max;

	return v == 0 ? SMTP_DEF_TEXT_LINE_MAX : v;
}

static uint64_t
limit_size(const struct smtp_session *s)
{
	uint64_t v = s->sd->limits.message_size_max;

	return v == 0 ? SMTP_DEF_SIZE_MAX : v;
}

static unsigned int
limit_rcpt(const struct smtp_session *s)
{
	unsigned int v = s->sd->limits.rcpt_max;

	return v == 0 ? SMTP_DEF_RCPT_MAX : v;
}

static unsigned int
limit_errors(const struct smtp_session *s)
{
	unsigned int v = s->sd->limits.errors_max;

	return v == 0 ? SMTP_DEF_ERRORS_MAX : v;
}

static unsigned int
limit_received(const struct smtp_session *s)
{
	unsigned int v = s->sd->limits.received_max;

	return v == 0 ? SMTP_RECEIVED_MAX : v;
}

static const char *
session_hostname(const struct smtp_session *s)
{
	return s->sd->hostname != NULL ? s->sd->hostname : "localhost";
}

/* Append one reply; extra (may be NULL) follows the table text. */
static void
reply(struct smtp_session *s, enum smtp_reply r, const char *extra)
{
	const struct smtp_reply_text *t = &smtp_replies[r];
	int	 rv;

	if (t->enh != NULL)
		rv = buf_printf(s->out, "%d %s %s%s%s\r\n", t->code, t->enh,
		    t->text, extra ? " " : "", extra ? extra : "");
	else
		rv = buf_printf(s->out, "%d %s\r\n", t->code, t->text);
	if (rv == -1)
		s->state = SMTP_STATE_QUIT;
	if (t->code >= 400)
		s->errors++;
}

static void	transaction_clear(struct smtp_session *);

/* Forget the transaction, telling the filters it is abandoned. */
static void
transaction_reset(struct smtp_session *s)
{
	if (s->sender != NULL && s->hooks != NULL && s->hooks->abort != NULL)
		s->hooks->abort(s->hooks->arg, s);
	transaction_clear(s);
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
static void
transaction_clear(struct smtp_session *s)
{
	size_t	 i;

	free(s->rcpt_asked);
	s->rcpt_asked = NULL;
	free(s->mail_args);
	s->mail_args = NULL;
	spf_clear(&s->spf);
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
	s->state = SMTP_STATE_GREETING;
	s->sd = sd;
	s->udb = udb;
	s->kind = kind;
	s->queue_dir = QUEUE_DIR;
	s->out = out;
	buf_init(&s->body, 0);
	buf_init(&s->hdr_cur, SMTP_HEADER_MAX);
	buf_init(&s->hdr_line, SMTP_HEADER_MAX);
	buf_init(&s->mods.body, 0);
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
	line_reader_init(&s->lr, limit_line(s) - 2);
}

/*
 * Ask the hooks; 1 when the answer comes later (s->pend set), 0 when
 * it is already in s->ans (CONTINUE when nothing was asked).
 */
static int
ask(struct smtp_session *s, enum smtp_ask what, enum smtp_pend pend,
    const char *data, size_t len)
{
	memset(&s->ans, 0, sizeof(s->ans));
	if (s->hooks == NULL || s->hooks->ask == NULL)
		return 0;
	if (s->hooks->ask(s->hooks->arg, s, what, data, len) == 0)
		return 0;
	s->pend = pend;
	return 1;
}

/* Printable ASCII only: peer and filter text goes into replies. */
static void
text_clean(char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
			*p = '?';
}

/*
 * A filter's own reply text, when it is well-formed and of the class
 * the verdict calls for (RFC 5321 §4.2: every line "NNN-", the last
 * "NNN "); else the default reply def.
 */
static void
reply_custom(struct smtp_session *s, const char *text, enum smtp_reply def)
{
	const struct smtp_reply_text *t = &smtp_replies[def];
	char	 line[SMTP_REPLY_MAX];
	const char *p, *e;
	struct buf b;
	size_t	 n;
	int	 bad = 0;

	if (text == NULL || text[0] == '\0') {
		reply(s, def, NULL);
		return;
	}
	buf_init(&b, SMTP_REPLY_MAX * 2);
	for (p = text; *p != '\0' && !bad; p = *e ? e + 1 : e) {
		if ((e = strchr(p, '\n')) == NULL)
			e = p + strlen(p);
		n = (size_t)(e - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n < 3 || n >= sizeof(line) || p[0] != '0' + t->code / 100 ||
		    !isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]) ||
		    (n > 3 && p[3] != ' ' && p[3] != '-')) {
			bad = 1;
			break;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		text_clean(line);
		line[3] = *e != '\0' && e[1] != '\0' ? '-' : ' ';
		if (buf_printf(&b, "%.3s%c%s\r\n", line, line[3],
		    n > 4 ? line + 4 : "") == -1)
			bad = 1;
	}
	if (bad || b.len == 0) {
		buf_free(&b);
		reply(s, def, NULL);
		return;
	}
	if (buf_append(s->out, b.data, b.len) == -1)
		s->state = SMTP_STATE_QUIT;
	s->errors++;
	buf_free(&b);
}

/* The reply for a refusing answer; the default depends on the stage. */
static void
reply_verdict(struct smtp_session *s, enum smtp_verdict v, const char *text,
    enum smtp_reply rej)
{
	switch (v) {
	case SMTP_V_TEMPFAIL:
		reply_custom(s, text, rej == RPL_CONN_REJECT ?
		    RPL_CONN_TEMPFAIL : RPL_FILTER_TEMPFAIL);
		break;
	case SMTP_V_SHUTDOWN:
		reply_custom(s, text, RPL_FILTER_SHUTDOWN);
		s->state = SMTP_STATE_QUIT;
		break;
	default:
		reply_custom(s, text, rej);
		break;
	}
}

static int
verdict_refuses(enum smtp_verdict v)
{
	return v == SMTP_V_REJECT || v == SMTP_V_TEMPFAIL ||
	    v == SMTP_V_SHUTDOWN;
}

static void
connect_done(struct smtp_session *s)
{
	if (verdict_refuses(s->ans.v)) {
		log_info("%s smtp refused client=%s reason=filter stage=connect",
		    s->id, s->client_addr);
		reply_verdict(s, s->ans.v, s->ans.reply, RPL_CONN_REJECT);
		s->state = SMTP_STATE_QUIT;
		return;
	}
	if (s->ans.v == SMTP_V_DISCARD)
		s->discard_all = 1;
	/* RFC 5321 §4.3.1; no enhanced code in the greeting (RFC 2034). */
	if (buf_printf(s->out, "220 %s ESMTP\r\n", session_hostname(s)) == -1)
		s->state = SMTP_STATE_QUIT;
	else
		s->state = SMTP_STATE_INIT;
}

void
smtp_session_greet(struct smtp_session *s)
{
	if (ask(s, SMTP_ASK_CONNECT, SMTP_PEND_CONNECT, NULL, 0))
		return;
	connect_done(s);
}

static void	helo_done(struct smtp_session *);
static void	spf_done(struct smtp_session *);
static void	mail_done(struct smtp_session *);
static void	rcpt_done(struct smtp_session *);
static void	data_cmd_done(struct smtp_session *);
static void	auth_done(struct smtp_session *);

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
		spf_done(s);
		break;
	case SMTP_PEND_MAIL:
		mail_done(s);
		break;
	case SMTP_PEND_RCPT:
		rcpt_done(s);
		break;
	case SMTP_PEND_DATA:
		data_cmd_done(s);
		break;
	case SMTP_PEND_AUTH:
		auth_done(s);
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
	text_clean(s->spf.received);
	text_clean(s->spf.authres);
	text_clean(s->spf.comment);
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
	transaction_reset(s);
	s->pend = SMTP_PEND_NONE;
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_timeout(struct smtp_session *s)
{
	log_info("%s smtp timeout client=%s state=%d", s->id, s->client_addr,
	    (int)s->state);
	transaction_reset(s);
	s->pend = SMTP_PEND_NONE;
	reply(s, RPL_TIMEOUT, NULL);
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	transaction_reset(s);
	s->pend = SMTP_PEND_NONE;
	reply(s, RPL_SHUTDOWN, NULL);
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_refuse(struct smtp_session *s)
{
	reply(s, RPL_TOO_MANY_SESSIONS, NULL);
	s->state = SMTP_STATE_QUIT;
}

void
smtp_session_free(struct smtp_session *s)
{
	transaction_reset(s);
	buf_free(&s->body);
	buf_free(&s->hdr_cur);
	buf_free(&s->hdr_line);
	buf_free(&s->mods.body);
	free(s->auth_user);
	s->auth_user = NULL;
	auth_clear(s);
}

/* ------------------------------------------------------------------ */
/* Users and aliases of the domain. */

void
smtp_userdb_init(struct smtp_userdb *u)
{
	memset(u, 0, sizeof(*u));
	u->passwd_path = "/etc/passwd";
	u->aliases_path = "/etc/aliases";
}

void
smtp_userdb_free(struct smtp_userdb *u)
{
	if (u->pw_loaded)
		passwd_free(&u->pw);
	if (u->al_loaded)
		aliases_free(&u->al);
	u->pw_loaded = u->al_loaded = 0;
}

static void
userdb_diag(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

/*
 * Re-read passwd when it changed.  A missing or unreadable passwd is a
 * temporary failure (-1): better a retry than a wrong 550.
 */
static int
userdb_passwd(struct smtp_userdb *u)
{
	struct stat	 st;
	struct diag	 d = { userdb_diag, NULL, 0 };
	const char	*error;

	if (stat(u->passwd_path, &st) == -1) {
		log_warn("%s", u->passwd_path);
		return -1;
	}
	if (u->pw_loaded && st.st_mtim.tv_sec == u->pw_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == u->pw_mtime.tv_nsec &&
	    st.st_size == u->pw_size && st.st_ino == u->pw_ino)
		return 0;
	if (u->pw_loaded) {
		passwd_free(&u->pw);
		u->pw_loaded = 0;
	}
	memset(&u->pw, 0, sizeof(u->pw));
	if (passwd_load(&u->pw, u->passwd_path, &d, &error) == -1) {
		log_warnx("%s: %s", u->passwd_path, error);
		return -1;
	}
	u->pw_loaded = 1;
	u->pw_mtime = st.st_mtim;
	u->pw_size = st.st_size;
	u->pw_ino = st.st_ino;
	return 0;
}

/* Re-read aliases when changed; a missing file means no aliases. */
static int
userdb_aliases(struct smtp_userdb *u)
{
	struct stat	 st;
	struct diag	 d = { userdb_diag, NULL, 0 };
	const char	*error;

	if (stat(u->aliases_path, &st) == -1) {
		if (errno != ENOENT) {
			log_warn("%s", u->aliases_path);
			return -1;
		}
		if (u->al_loaded)
			aliases_free(&u->al);
		u->al_loaded = 0;
		return 0;
	}
	if (u->al_loaded && st.st_mtim.tv_sec == u->al_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == u->al_mtime.tv_nsec &&
	    st.st_size == u->al_size && st.st_ino == u->al_ino)
		return 0;
	if (u->al_loaded) {
		aliases_free(&u->al);
		u->al_loaded = 0;
	}
	memset(&u->al, 0, sizeof(u->al));
	if (aliases_load(&u->al, u->aliases_path, &d, &error) == -1) {
		log_warnx("%s: %s", u->aliases_path, error);
		return -1;
	}
	u->al_loaded = 1;
	u->al_mtime = st.st_mtim;
	u->al_size = st.st_size;
	u->al_ino = st.st_ino;
	return 0;
}

int
smtp_userdb_lookup(struct smtp_userdb *u, const char *local, char *name_r,
    size_t size)
{
	char			 lower[ADDR_LOCAL_MAX + 1];
	const struct alias	*al;
	size_t			 i, n;

	n = strlen(local);
	if (n == 0 || n >= sizeof(lower))
		return 0;
	for (i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)local[i]);
	lower[n] = '\0';
	/* Refuses '/', "..", ':' and controls before any lookup. */
	if (!passwd_name_valid(lower))
		return 0;
	if (userdb_passwd(u) == -1 || userdb_aliases(u) == -1)
		return -1;
	for (i = 0; i < u->pw.n; i++) {
		if (strcasecmp(u->pw.entries[i].name, lower) == 0) {
			if (strlcpy(name_r, u->pw.entries[i].name, size) >=
			    size)
				return 0;
			return 1;
		}
	}
	if (u->al_loaded && (al = aliases_find(&u->al, lower)) != NULL) {
		if (strlcpy(name_r, al->name, size) >= size)
			return 0;
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Commands. */

/* The argument after "KEYWORD:" (case-insensitive), blanks skipped. */
static char *
arg_after(char *arg, const char *keyword)
{
	size_t	 n = strlen(keyword);

	if (arg == NULL || strncasecmp(arg, keyword, n) != 0)
		return NULL;
	arg += n;
	/* Not RFC 5321, but common: "MAIL FROM: <a@b>". */
	while (*arg == ' ')
		arg++;
	return arg;
}

static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

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
		reply(s, RPL_SYNTAX_HELO, NULL);
		return;
	}
	/* RFC 5321 §4.1.4: EHLO/HELO also resets any transaction. */
	transaction_reset(s);
	(void)strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	s->state = SMTP_STATE_HELO;
}

static void
helo_done(struct smtp_session *s)
{
	int	 r = 0;

	if (verdict_refuses(s->ans.v)) {
		reply_verdict(s, s->ans.v, s->ans.reply, RPL_FILTER_REJECT);
		if (s->state != SMTP_STATE_QUIT)
			s->state = SMTP_STATE_INIT;
		return;
	}
	if (!s->esmtp) {
		if (buf_printf(s->out, "250 %s\r\n", session_hostname(s)) == -1)
			s->state = SMTP_STATE_QUIT;
		return;
	}
	r |= buf_printf(s->out, "250-%s\r\n", session_hostname(s));
	r |= buf_puts(s->out, "250-PIPELINING\r\n");
	r |= buf_printf(s->out, "250-SIZE %llu\r\n",
	    (unsigned long long)limit_size(s));
	r |= buf_puts(s->out, "250-8BITMIME\r\n");
	r |= buf_puts(s->out, "250-ENHANCEDSTATUSCODES\r\n");
	/* RFC 3207; RFC 4954: AUTH only under TLS unless allowed. */
	if (s->tls_available && !s->tls)
		r |= buf_puts(s->out, "250-STARTTLS\r\n");
	if (!s->authenticated && auth_offered(s))
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
	if (ask(s, SMTP_ASK_HELO, SMTP_PEND_HELO, NULL, 0))
		return;
	helo_done(s);
}

static void
cmd_ehlo(struct smtp_session *s, char *arg)
{
	helo_common(s, arg, 1);
	if (s->state != SMTP_STATE_HELO)
		return;
	if (ask(s, SMTP_ASK_HELO, SMTP_PEND_HELO, NULL, 0))
		return;
	helo_done(s);
}

/* ------------------------------------------------------------------ */
/* STARTTLS (RFC 3207) and AUTH (RFC 4954). */

static void
cmd_starttls(struct smtp_session *s, char *arg)
{
	if (arg != NULL) {
		reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	if (s->tls) {
		reply(s, RPL_TLS_ACTIVE, NULL);
		return;
	}
	if (!s->tls_available) {
		reply(s, RPL_TLS_UNAVAILABLE, NULL);
		return;
	}
	if (smtp_session_busy(s)) {
		reply(s, RPL_SEQ_NESTED, NULL);
		return;
	}
	reply(s, RPL_TLS_READY, NULL);
	s->tls_start = 1;
}

void
smtp_session_tls(struct smtp_session *s, const char *version,
    const char *cipher, int bits)
{
	/* RFC 3207 §4.2: discard any knowledge obtained from the client. */
	transaction_reset(s);
	auth_clear(s);
	s->tls = 1;
	s->tls_start = 0;
	s->tls_available = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	line_reader_init(&s->lr, limit_line(s) - 2);
	if (s->state != SMTP_STATE_GREETING && s->state != SMTP_STATE_QUIT)
		s->state = SMTP_STATE_INIT;
	(void)snprintf(s->tls_info, sizeof(s->tls_info),
	    "using %.16s with cipher %.64s (%d/%d bits)", version, cipher,
	    bits, bits);
	text_clean(s->tls_info);
}

/* Whether AUTH may be offered and used now. */
static int
auth_offered(const struct smtp_session *s)
{
	return s->tls || s->sd->allow_plaintext_auth;
}

static void
auth_clear(struct smtp_session *s)
{
	if (s->auth_login != NULL) {
		explicit_bzero(s->auth_login, strlen(s->auth_login));
		free(s->auth_login);
		s->auth_login = NULL;
	}
	s->auth_step = SMTP_AUTH_NONE;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (RFC 4648 §4, padding required); length or -1. */
static ssize_t
b64_decode(const char *src, size_t len, unsigned char *dst, size_t size)
{
	size_t	 i, n = 0;
	int	 v[4], k, pad;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		for (k = 0; k < 4; k++) {
			if (src[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 ||
			    (v[k] = b64_value((unsigned char)src[i + k])) < 0)
				return -1;
		}
		if (n + 3 - (size_t)pad > size)
			return -1;
		dst[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			dst[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			dst[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (ssize_t)n;
}

static void
b64_put(struct smtp_session *s, const char *prefix, const char *text)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)text;
	size_t	 n = strlen(text), i;
	char	 out[64];
	size_t	 o = 0;

	for (i = 0; i < n && o + 4 < sizeof(out); i += 3) {
		unsigned int v = (unsigned int)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned int)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	if (buf_printf(s->out, "%s%s\r\n", prefix, out) == -1)
		s->state = SMTP_STATE_QUIT;
}

/* Send user and password (user NUL password) out for checking. */
static void
auth_check(struct smtp_session *s, const char *user, const char *pass)
{
	char	*data;
	size_t	 ul = strlen(user), pl = strlen(pass);

	auth_clear(s);
	if (ul == 0 || ul > 256 || pl > 512 || s->hooks == NULL) {
		s->ans.v = ul == 0 || ul > 256 || pl > 512 ? SMTP_V_REJECT :
		    SMTP_V_TEMPFAIL;
		s->ans.reply[0] = '\0';
		auth_done(s);
		return;
	}
	data = xmalloc(ul + pl + 2);
	memcpy(data, user, ul + 1);
	memcpy(data + ul + 1, pass, pl + 1);
	if (!ask(s, SMTP_ASK_AUTH, SMTP_PEND_AUTH, data, ul + pl + 1)) {
		/* Nobody to ask: a temporary failure. */
		s->ans.v = SMTP_V_TEMPFAIL;
		auth_done(s);
	}
	explicit_bzero(data, ul + pl + 2);
	free(data);
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; authzid empty or the same. */
static void
auth_plain(struct smtp_session *s, const char *b64, size_t len)
{
	unsigned char	 buf[1024];
	const char	*authz, *user, *pass;
	ssize_t		 n;
	size_t		 l1, l2;

	n = b64_decode(b64, len, buf, sizeof(buf) - 1);
	if (n < 0) {
		auth_clear(s);
		reply(s, RPL_AUTH_DECODE, NULL);
		return;
	}
	buf[n] = '\0';
	authz = (const char *)buf;
	l1 = strlen(authz);
	if ((size_t)n < l1 + 2) {
		explicit_bzero(buf, sizeof(buf));
		auth_clear(s);
		reply(s, RPL_AUTH_DECODE, NULL);
		return;
	}
	user = authz + l1 + 1;
	l2 = strlen(user);
	if ((size_t)n < l1 + l2 + 2 || l1 + l2 + 2 + strlen(user + l2 + 1) !=
	    (size_t)n || (l1 > 0 && strcmp(authz, user) != 0)) {
		explicit_bzero(buf, sizeof(buf));
		s->ans.v = SMTP_V_REJECT;
		auth_clear(s);
		auth_done(s);
		return;
	}
	pass = user + l2 + 1;
	auth_check(s, user, pass);
	explicit_bzero(buf, sizeof(buf));
}

/* A line of the SASL exchange (RFC 4954 §4). */
static void
auth_response(struct smtp_session *s, char *line, size_t len)
{
	unsigned char	 buf[600];
	ssize_t		 n;

	if (len == 1 && line[0] == '*') {
		auth_clear(s);
		reply(s, RPL_AUTH_CANCEL, NULL);
		return;
	}
	switch (s->auth_step) {
	case SMTP_AUTH_PLAIN:
		auth_plain(s, line, len);
		return;
	case SMTP_AUTH_LOGIN_USER:
		n = b64_decode(line, len, buf, sizeof(buf) - 1);
		if (n <= 0 || memchr(buf, '\0', (size_t)n) != NULL) {
			auth_clear(s);
			reply(s, RPL_AUTH_DECODE, NULL);
			return;
		}
		buf[n] = '\0';
		s->auth_login = xstrdup((char *)buf);
		s->auth_step = SMTP_AUTH_LOGIN_PASS;
		b64_put(s, "334 ", "Password:");
		return;
	case SMTP_AUTH_LOGIN_PASS:
		n = b64_decode(line, len, buf, sizeof(buf) - 1);
		if (n < 0 || memchr(buf, '\0', (size_t)n) != NULL) {
			explicit_bzero(buf, sizeof(buf));
			auth_clear(s);
			reply(s, RPL_AUTH_DECODE, NULL);
			return;
		}
		buf[n] = '\0';
		{
			char	*user = s->auth_login;

			s->auth_login = NULL;
			auth_check(s, user, (char *)buf);
			explicit_bzero(user, strlen(user));
			free(user);
		}
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	auth_clear(s);
}

static void
cmd_auth(struct smtp_session *s, char *arg)
{
	char	*mech, *ir = NULL;

	if (s->state == SMTP_STATE_INIT || !s->esmtp) {
		reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->authenticated) {
		reply(s, RPL_AUTH_ALREADY, NULL);
		return;
	}
	if (smtp_session_busy(s)) {
		reply(s, RPL_AUTH_SEQ, NULL);
		return;
	}
	if (arg == NULL) {
		reply(s, RPL_AUTH_MECH, NULL);
		return;
	}
	mech = arg;
	if ((ir = strchr(arg, ' ')) != NULL) {
		*ir++ = '\0';
		while (*ir == ' ')
			ir++;
	}
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
		reply(s, RPL_AUTH_MECH, NULL);
		return;
	}
	if (!auth_offered(s)) {
		reply(s, RPL_AUTH_ENCRYPT, NULL);
		return;
	}
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (ir == NULL || *ir == '\0') {
			s->auth_step = SMTP_AUTH_PLAIN;
			if (buf_puts(s->out, "334 \r\n") == -1)
				s->state = SMTP_STATE_QUIT;
			return;
		}
		/* RFC 4954 §4: "=" is an empty initial response. */
		s->auth_step = SMTP_AUTH_PLAIN;
		auth_plain(s, ir, strcmp(ir, "=") == 0 ? 0 : strlen(ir));
		explicit_bzero(ir, strlen(ir));
		return;
	}
	if (ir != NULL && *ir != '\0') {
		/* RFC 4954 §4: LOGIN with the user name as initial response. */
		s->auth_step = SMTP_AUTH_LOGIN_USER;
		auth_response(s, ir, strlen(ir));
		return;
	}
	s->auth_step = SMTP_AUTH_LOGIN_USER;
	b64_put(s, "334 ", "Username:");
}

static void
auth_done(struct smtp_session *s)
{
	switch (s->ans.v) {
	case SMTP_V_ACCEPT:
		if (s->ans.reply[0] == '\0' || s->authenticated) {
			reply(s, RPL_AUTH_TEMP, NULL);
			return;
		}
		free(s->auth_user);
		s->auth_user = xstrdup(s->ans.reply);
		text_clean(s->auth_user);
		s->authenticated = 1;
		log_info("%s smtp auth user=%s client=%s", s->id,
		    s->auth_user, s->client_addr);
		reply(s, RPL_AUTH_OK, NULL);
		return;
	case SMTP_V_TEMPFAIL:
		reply(s, RPL_AUTH_TEMP, NULL);
		return;
	default:
		s->auth_failures++;
		log_info("%s smtp auth failed client=%s failures=%u", s->id,
		    s->client_addr, s->auth_failures);
		if (s->auth_failures >= (s->sd->auth_failures_max != 0 ?
		    s->sd->auth_failures_max : 3)) {
			reply(s, RPL_AUTH_TOO_MANY, NULL);
			transaction_reset(s);
			s->state = SMTP_STATE_QUIT;
			return;
		}
		reply(s, RPL_AUTH_FAILED, NULL);
		return;
	}
}

/* Decimal SIZE= value; -1 when malformed. */
static int
parse_size(const char *v, uint64_t *size_r)
{
	uint64_t n = 0;
	size_t	 i;

	if (v == NULL || *v == '\0' || strlen(v) > 20)
		return -1;
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*size_r = n;
	return 0;
}

static void
cmd_mail(struct smtp_session *s, char *arg)
{
	struct esmtp_param	 params[ADDR_PARAMS_MAX];
	struct mailaddr		 a;
	const char		*rest, *error;
	char			 sender[2 * ADDR_PATH_MAX + 8];
	char			 pbuf[1024];
	unsigned int		 flags = 0;
	uint64_t		 size = 0;
	int			 np, i;

	if (s->state == SMTP_STATE_INIT) {
		reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->state != SMTP_STATE_HELO) {
		reply(s, RPL_SEQ_NESTED, NULL);
		return;
	}
	if ((arg = arg_after(arg, "FROM:")) == NULL || *arg != '<') {
		reply(s, RPL_SYNTAX_MAIL, NULL);
		return;
	}
	if (addr_parse_path(arg, ADDR_NULL_OK | ADDR_UTF8, &a, &rest,
	    &error) == -1) {
		reply(s, RPL_BAD_SENDER, NULL);
		return;
	}
	while (*rest == ' ')
		rest++;
	np = 0;
	if (*rest != '\0') {
		if (strlcpy(pbuf, rest, sizeof(pbuf)) >= sizeof(pbuf) ||
		    (np = addr_parse_params(pbuf, params, ADDR_PARAMS_MAX,
		    &error)) == -1) {
			reply(s, RPL_PARAM, NULL);
			return;
		}
	}
	for (i = 0; i < np; i++) {
		if (strcmp(params[i].keyword, "SIZE") == 0) {
			if (parse_size(params[i].value, &size) == -1) {
				reply(s, RPL_PARAM, NULL);
				return;
			}
		} else if (strcmp(params[i].keyword, "BODY") == 0) {
			if (params[i].value == NULL) {
				reply(s, RPL_PARAM, NULL);
				return;
			}
			if (strcasecmp(params[i].value, "8BITMIME") == 0)
				flags |= QUEUE_F_8BITMIME;
			else if (strcasecmp(params[i].value, "7BIT") != 0) {
				reply(s, RPL_PARAM, NULL);
				return;
			}
		} else if (strcmp(params[i].keyword, "SMTPUTF8") == 0 &&
		    params[i].value == NULL) {
			flags |= QUEUE_F_SMTPUTF8;
		} else {
			reply(s, RPL_PARAM, NULL);
			return;
		}
	}
	/* RFC 6531 §3.4: UTF-8 in a path only with SMTPUTF8. */
	if ((has_8bit(a.local) || has_8bit(a.domain)) &&
	    !(flags & QUEUE_F_SMTPUTF8)) {
		reply(s, RPL_UTF8_REQUIRED, NULL);
		return;
	}
	/* RFC 1870 §6.2: refuse early what cannot fit. */
	if (size > limit_size(s)) {
		reply(s, RPL_SIZE_TOO_BIG, NULL);
		return;
	}
	if ((s->kind == LISTEN_SUBMISSION || s->kind == LISTEN_SMTPS) &&
	    !s->authenticated) {
		reply(s, RPL_AUTH_REQUIRED, NULL);
		return;
	}
	/* An authenticated user sends as an address of its own domain. */
	if (s->authenticated && s->sd->sender_login_match &&
	    !addr_is_null(&a) && !smtpd_domain_is_local(s->sd, a.domain)) {
		log_info("%s smtp refused reason=sender_login_mismatch "
		    "user=%s client=%s", s->id, s->auth_user, s->client_addr);
		reply(s, RPL_SENDER_LOGIN, NULL);
		return;
	}
	if (addr_format(&a, sender, sizeof(sender)) == -1) {
		reply(s, RPL_BAD_SENDER, NULL);
		return;
	}
	s->sender = xstrdup(sender);
	s->flags = flags;
	s->size_declared = size;
	s->state = SMTP_STATE_MAIL;
	s->mail_args = xstrdup(rest);
	/* RFC 7208 §2.4: unauthenticated mail from the outside only. */
	s->spf_on = s->sd->spf_mode != 0 && s->kind == LISTEN_SMTP &&
	    !s->authenticated && s->hooks != NULL;
	if (s->spf_on) {
		if (ask(s, SMTP_ASK_SPF, SMTP_PEND_SPF, NULL, 0))
			return;
		spf_done(s);
		return;
	}
	if (ask(s, SMTP_ASK_MAIL, SMTP_PEND_MAIL, NULL, 0))
		return;
	mail_done(s);
}

/* enum spf_result as text; here so that programs linking the session
 * engine without the checker (spf.c, libspf2) still link. */
static const char *
session_spf_name(int r)
{
	static const char *names[] = { "none", "neutral", "pass", "fail",
	    "softfail", "temperror", "permerror" };

	return r >= 0 && r <= SPF_R_PERMERROR ? names[r] : "temperror";
}

/* Shorten a checker's comment for an SMTP reply line. */
static const char *
spf_reply_text(struct smtp_session *s, char *dst, size_t size)
{
	const char *c = s->spf.comment != NULL ? s->spf.comment : "";

	(void)snprintf(dst, size, "%.300s", c[0] != '\0' ? c :
	    session_spf_name(s->spf.result));
	return dst;
}

static void
spf_done(struct smtp_session *s)
{
	char	 from[512], text[320];

	if (!s->spf.done)
		smtp_session_spf(s, SPF_R_TEMPERROR, "", "",
		    "no answer from the SPF checker");
	(void)log_clean(from, sizeof(from), s->sender, strlen(s->sender));
	log_info("%s smtp spf result=%s from=<%s> client=%s", s->id,
	    session_spf_name(s->spf.result), from, s->client_addr);
	if (s->sd->spf_mode == 2 && (s->spf.result == SPF_R_FAIL ||
	    s->spf.result == SPF_R_TEMPERROR)) {
		log_info("%s smtp refused reason=spf_%s from=<%s> client=%s",
		    s->id, session_spf_name(s->spf.result), from,
		    s->client_addr);
		reply(s, s->spf.result == SPF_R_FAIL ? RPL_SPF_FAIL :
		    RPL_SPF_TEMPERROR, spf_reply_text(s, text, sizeof(text)));
		transaction_reset(s);
		return;
	}
	if (ask(s, SMTP_ASK_MAIL, SMTP_PEND_MAIL, NULL, 0))
		return;
	mail_done(s);
}

static void
mail_done(struct smtp_session *s)
{
	if (verdict_refuses(s->ans.v)) {
		reply_verdict(s, s->ans.v, s->ans.reply, RPL_FILTER_REJECT);
		transaction_reset(s);
		return;
	}
	s->filtered = s->hooks != NULL && s->hooks->milters &&
	    s->ans.v != SMTP_V_ACCEPT;
	if (s->ans.v == SMTP_V_DISCARD) {
		s->fv = SMTP_V_DISCARD;
		s->filtered = 0;
	}
	reply(s, RPL_MAIL_OK, NULL);
}

static int
rcpt_known(struct smtp_session *s, const char *rcpt)
{
	size_t	 i;

	for (i = 0; i < s->nrcpts; i++)
		if (strcmp(s->rcpts[i], rcpt) == 0)
			return 1;
	return 0;
}

static void
cmd_rcpt(struct smtp_session *s, char *arg)
{
	struct mailaddr	 a;
	const char	*rest, *error, *dom;
	char		 rcpt[2 * ADDR_PATH_MAX + 8];
	char		 name[PASSWD_NAME_MAX + 1];
	int		 r;

	if (s->state == SMTP_STATE_INIT) {
		reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT) {
		reply(s, RPL_SEQ_MAIL, NULL);
		return;
	}
	if ((arg = arg_after(arg, "TO:")) == NULL || *arg != '<') {
		reply(s, RPL_SYNTAX_RCPT, NULL);
		return;
	}
	if (addr_parse_path(arg, ADDR_NO_DOMAIN | ADDR_UTF8, &a, &rest,
	    &error) == -1 || addr_is_null(&a)) {
		reply(s, RPL_BAD_RCPT, NULL);
		return;
	}
	while (*rest == ' ')
		rest++;
	/* No DSN advertised: no RCPT parameters are valid. */
	if (*rest != '\0') {
		reply(s, RPL_PARAM, NULL);
		return;
	}
	if ((has_8bit(a.local) || has_8bit(a.domain)) &&
	    !(s->flags & QUEUE_F_SMTPUTF8)) {
		reply(s, RPL_UTF8_REQUIRED, NULL);
		return;
	}
	if (s->nrcpts >= limit_rcpt(s)) {
		reply(s, RPL_RCPT_MAX, NULL);
		return;
	}
	if (a.domain[0] == '\0') {
		/* RFC 5321 §4.5.1: "<postmaster>" without a domain. */
		if (strcasecmp(a.local, "postmaster") != 0) {
			reply(s, RPL_BAD_RCPT, NULL);
			return;
		}
		dom = s->sd->nlocal_domains > 0 && s->sd->local_domains ?
		    s->sd->local_domains[0] : session_hostname(s);
		r = snprintf(rcpt, sizeof(rcpt), "postmaster@%s", dom);
	} else if (smtpd_domain_is_local(s->sd, a.domain)) {
		if (strcasecmp(a.local, "postmaster") == 0) {
			(void)strlcpy(name, "postmaster", sizeof(name));
		} else {
			switch (smtp_userdb_lookup(s->udb, a.local, name,
			    sizeof(name))) {
			case 1:
				break;
			case 0:
				reply(s, RPL_USER_UNKNOWN, NULL);
				return;
			default:
				reply(s, RPL_TEMPFAIL, NULL);
				return;
			}
		}
		r = snprintf(rcpt, sizeof(rcpt), "%s@%s", name, a.domain);
	} else {
		/* Siblings on this host are remote too (DESIGN.md #3). */
		if (!s->authenticated && (s->peer_len == 0 ||
		    !smtpd_relay_allowed(s->sd,
		    (const struct sockaddr *)&s->peer))) {
			reply(s, RPL_RELAY, NULL);
			return;
		}
		r = addr_format(&a, rcpt, sizeof(rcpt)) == -1 ? -1 : 0;
	}
	if (r < 0 || (size_t)r >= sizeof(rcpt)) {
		reply(s, RPL_BAD_RCPT, NULL);
		return;
	}
	free(s->rcpt_asked);
	s->rcpt_asked = xstrdup(rcpt);
	if (s->filtered && ask(s, SMTP_ASK_RCPT, SMTP_PEND_RCPT, NULL, 0))
		return;
	rcpt_done(s);
}

static void
rcpt_done(struct smtp_session *s)
{
	if (s->rcpt_asked == NULL)
		return;
	if (verdict_refuses(s->ans.v)) {
		reply_verdict(s, s->ans.v, s->ans.reply, RPL_FILTER_REJECT);
		free(s->rcpt_asked);
		s->rcpt_asked = NULL;
		return;
	}
	if (s->ans.v == SMTP_V_DISCARD && s->fv == SMTP_V_CONTINUE)
		s->fv = SMTP_V_DISCARD;
	if (!rcpt_known(s, s->rcpt_asked)) {
		s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1,
		    sizeof(*s->rcpts));
		s->rcpts[s->nrcpts++] = s->rcpt_asked;
	} else
		free(s->rcpt_asked);
	s->rcpt_asked = NULL;
	s->state = SMTP_STATE_RCPT;
	reply(s, RPL_RCPT_OK, NULL);
}

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
static int
received_write(struct smtp_session *s)
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
	    session_hostname(s), received_protocol(s), s->w.id);
	if (s->nrcpts == 1)
		r |= buf_printf(&b, "\n\tfor <%s>", s->rcpts[0]);
	r |= buf_printf(&b, ";\n\t%s\n", date);
	/* RFC 7208 §9.1 and RFC 8601 §2.2, right under our Received:. */
	if (s->spf_on && s->spf.done) {
		if (s->spf.received[0] != '\0')
			r |= buf_printf(&b, "Received-SPF: %s\n",
			    s->spf.received);
		if (s->spf.authres[0] != '\0')
			r |= buf_printf(&b, "Authentication-Results: %s;\n"
			    "\t%s\n", session_hostname(s), s->spf.authres);
	}
	if (r == 0)
		r = buf_append(&s->body, b.data, b.len);
	buf_free(&b);
	return r;
}

static void
cmd_data(struct smtp_session *s, char *arg)
{
	const char	*error;

	if (s->state == SMTP_STATE_INIT) {
		reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->state == SMTP_STATE_HELO) {
		reply(s, RPL_SEQ_MAIL, NULL);
		return;
	}
	if (s->state == SMTP_STATE_MAIL) {
		/* RFC 5321 §3.3: 554 when no recipient was accepted. */
		reply(s, s->nrcpts == 0 ? RPL_NO_RCPT : RPL_SEQ_RCPT, NULL);
		return;
	}
	if (arg != NULL) {
		reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	if (queue_writer_open(&s->w, s->queue_dir, &error) == -1) {
		log_warnx("%s smtp queue open failed: %s", s->id, error);
		reply(s, errno == ENOSPC || errno == EDQUOT ? RPL_DISK_FULL :
		    RPL_QUEUE_FAIL, NULL);
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
	if (received_write(s) == -1)
		s->data_err |= SMTP_DATA_WRITE;
	s->prefix_len = s->body.len;
	if (s->filtered && ask(s, SMTP_ASK_DATA, SMTP_PEND_DATA, NULL, 0))
		return;
	data_cmd_done(s);
}

static void
data_cmd_done(struct smtp_session *s)
{
	if (verdict_refuses(s->ans.v)) {
		reply_verdict(s, s->ans.v, s->ans.reply, RPL_FILTER_REJECT);
		transaction_reset(s);
		return;
	}
	if (s->ans.v == SMTP_V_ACCEPT)
		s->filtered = 0;
	else if (s->ans.v == SMTP_V_DISCARD) {
		s->fv = SMTP_V_DISCARD;
		s->filtered = 0;
	}
	s->state = SMTP_STATE_DATA;
	reply(s, RPL_DATA, NULL);
}

static void
cmd_rset(struct smtp_session *s, char *arg)
{
	if (arg != NULL) {
		reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	transaction_reset(s);
	reply(s, RPL_OK, NULL);
}

static void
cmd_noop(struct smtp_session *s, char *arg)
{
	(void)arg;		/* RFC 5321 §4.1.1.9: parameter ignored */
	reply(s, RPL_OK, NULL);
}

static void
cmd_quit(struct smtp_session *s, char *arg)
{
	if (arg != NULL) {
		reply(s, RPL_SYNTAX_NOARG, NULL);
		return;
	}
	transaction_reset(s);
	reply(s, RPL_BYE, NULL);
	s->state = SMTP_STATE_QUIT;
}

static void
cmd_vrfy(struct smtp_session *s, char *arg)
{
	/* RFC 5321 §3.5.3: 252 says nothing about who exists. */
	reply(s, arg == NULL ? RPL_SYNTAX_VRFY : RPL_VRFY, NULL);
}

static void
cmd_expn(struct smtp_session *s, char *arg)
{
	(void)arg;
	reply(s, RPL_NOT_IMPL, NULL);
}

static void
cmd_help(struct smtp_session *s, char *arg)
{
	(void)arg;
	reply(s, RPL_HELP, NULL);
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
			reply(s, RPL_BAD_CHARS, NULL);
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
		reply(s, RPL_UNKNOWN_CMD, NULL);
		return;
	}
	c->fn(s, arg);
}

/* ------------------------------------------------------------------ */
/* DATA. */

static void
body_flush(struct smtp_session *s)
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
	if (ask(s, what, SMTP_PEND_STEP, data, len)) {
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
	    authres_ours(p + 23, session_hostname(s))) {
		log_info("%s smtp removed Authentication-Results claiming "
		    "authserv-id=%s client=%s", s->id, session_hostname(s),
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
	if (eol && s->data_linelen + 2 > limit_text_line(s))
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
		    ++s->data_received > limit_received(s))
			s->data_err |= SMTP_DATA_LOOP;
	}
	s->data_size += len + (eol ? 1 : 0);
	if (s->data_size > limit_size(s))
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
	body_flush(s);
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
static int
mods_apply(struct smtp_session *s)
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
			    rcpt_known(s, a)) {
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
static int
message_rewrite(struct smtp_session *s)
{
	struct queue_writer	 nw;
	struct buf		 b;
	const char		*error;
	size_t			 i;
	int			 r = 0;

	body_flush(s);
	if (s->data_err != 0)
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

/* Consume DATA bytes from in; 1 at the end of data, 2 while waiting
 * for an answer, 0 for more. */
static int
data_input(struct smtp_session *s, struct buf *in)
{
	const char	*p, *crlf;
	size_t		 n;

	if (data_steps(s))
		return 2;
	if (s->data_done)
		return 1;
	while (in->len > 0) {
		p = in->data;
		crlf = memmem(p, in->len, "\r\n", 2);
		if (crlf == NULL) {
			/*
			 * A long line: pass on all but the last byte, which
			 * may be the CR of a CRLF still to come.
			 */
			if (in->len <= SMTP_FRAGMENT)
				return 0;
			n = in->len - 1;
			data_piece(s, p, n, 0);
			buf_consume(in, n);
			if (data_steps(s))
				return 2;
			continue;
		}
		n = (size_t)(crlf - p);
		/* §4.1.1.4: only <CRLF>.<CRLF> ends the data. */
		if (s->data_linelen == 0 && n == 1 && p[0] == '.') {
			buf_consume(in, 3);
			s->data_done = 1;
			return data_steps(s) ? 2 : 1;
		}
		data_piece(s, p, n, 1);
		buf_consume(in, n + 2);
		if (data_steps(s))
			return 2;
	}
	return 0;
}

/* The end of data: refuse, or ask the I/O layer for a commit. */
static enum smtp_action
data_end(struct smtp_session *s)
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
		body_flush(s);
	(void)log_clean(from, sizeof(from), s->sender, strlen(s->sender));
	if (s->data_err == 0 && verdict_refuses(s->fv)) {
		log_info("%s smtp refused reason=filter from=<%s> size=%llu "
		    "client=%s", s->w.id, from,
		    (unsigned long long)s->data_size, s->client_addr);
		reply_verdict(s, s->fv, s->fv_reply, RPL_CONTENT_REJECT);
		transaction_reset(s);
		return s->state == SMTP_STATE_QUIT ? SMTP_ACT_CLOSE :
		    SMTP_ACT_CONTINUE;
	}
	if (s->data_err == 0 && (s->fv == SMTP_V_DISCARD || s->discard_all)) {
		log_info("%s smtp discarded by filter from=<%s> size=%llu "
		    "client=%s", s->w.id, from,
		    (unsigned long long)s->data_size, s->client_addr);
		reply(s, RPL_QUEUED_DISCARD, NULL);
		transaction_reset(s);
		return SMTP_ACT_CONTINUE;
	}
	if (s->data_err == 0 && mods_apply(s) && message_rewrite(s) == -1)
		s->data_err |= SMTP_DATA_WRITE;
	if (s->data_err == 0 && s->nrcpts == 0) {
		log_info("%s smtp discarded: filters removed every recipient "
		    "from=<%s>", s->w.id, from);
		reply(s, RPL_QUEUED_DISCARD, NULL);
		transaction_reset(s);
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
		reply(s, refusals[i].r, NULL);
	} else {
		err = s->w.error;
		log_warnx("%s smtp queue write failed: %s", s->w.id,
		    strerror(err));
		reply(s, err == ENOSPC || err == EDQUOT ? RPL_DISK_FULL :
		    RPL_QUEUE_FAIL, NULL);
	}
	transaction_reset(s);
	return SMTP_ACT_CONTINUE;
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
		if (s->errors > limit_errors(s)) {
			log_info("%s smtp too many errors client=%s", s->id,
			    s->client_addr);
			transaction_reset(s);
			reply(s, RPL_TOO_MANY_ERRORS, NULL);
			s->state = SMTP_STATE_QUIT;
			return SMTP_ACT_CLOSE;
		}
		/* Back-pressure: a client that does not read its replies. */
		if (s->out->len > SMTP_OUT_HIGH)
			return SMTP_ACT_CONTINUE;
		if (s->state == SMTP_STATE_DATA) {
			switch (data_input(s, in)) {
			case 0:
				return SMTP_ACT_CONTINUE;
			case 2:
				return SMTP_ACT_WAIT;
			}
			if (data_end(s) == SMTP_ACT_COMMIT)
				return SMTP_ACT_COMMIT;
			continue;
		}
		switch (line_next(&s->lr, in, 0, &line)) {
		case LINE_PARTIAL:
			return SMTP_ACT_CONTINUE;
		case LINE_TOOLONG:
			/* RFC 5321 §4.5.3.1.4 */
			reply(s, RPL_LINE_TOO_LONG, NULL);
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
			auth_response(s, copy, line.len);
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
	if (r == 0) {
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
		reply(s, err == ENOSPC || err == EDQUOT ? RPL_DISK_FULL :
		    RPL_QUEUE_FAIL, NULL);
	} else {
		s->nmessages++;
		log_info("%s smtp message from=<%s> size=%llu nrcpt=%zu "
		    "client=%s%s", id, from, (unsigned long long)s->data_size,
		    s->nrcpts, s->client_addr, s->mods.quarantine != NULL ?
		    " held=quarantine" : "");
		reply(s, RPL_QUEUED, id);
	}
	s->state = SMTP_STATE_HELO;
	/* May run in a commit thread: no hooks from here. */
	transaction_clear(s);
}
