/*
 * smtp_replies.c — the SMTP engine's reply texts, in one table, and
 * the functions that append them to a session's output.
 *
 * DESCRIPTION
 *	smtp_session_reply() appends a reply of the table.
 *	smtp_reply_verdict() appends the reply to a refusing answer of a
 *	filter, with the filter's own text when it is well-formed and of
 *	the class the verdict calls for, else the table's.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account, as part of the engine (smtp_session.c).
 *	Filter reply texts and SPF comments are untrusted: each line is
 *	checked for its code and cleaned to printable ASCII before it
 *	reaches the peer.
 *
 * STANDARDS
 *	RFC 5321 §4.2 (reply lines), RFC 2034 and RFC 3463 (enhanced
 *	status codes), RFC 3207, RFC 4954 and RFC 7372 (their replies).
 */
#include <ctype.h>
#include <string.h>

#include "buf.h"
#include "smtp_session.h"

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

/* Append one reply; extra (may be NULL) follows the table text. */
void
smtp_session_reply(struct smtp_session *s, enum smtp_reply r, const char *extra)
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

/* Printable ASCII only: peer and filter text goes into replies. */
void
smtp_text_clean(char *p)
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
		smtp_session_reply(s, def, NULL);
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
		smtp_text_clean(line);
		line[3] = *e != '\0' && e[1] != '\0' ? '-' : ' ';
		if (buf_printf(&b, "%.3s%c%s\r\n", line, line[3],
		    n > 4 ? line + 4 : "") == -1)
			bad = 1;
	}
	if (bad || b.len == 0) {
		buf_free(&b);
		smtp_session_reply(s, def, NULL);
		return;
	}
	if (buf_append(s->out, b.data, b.len) == -1)
		s->state = SMTP_STATE_QUIT;
	s->errors++;
	buf_free(&b);
}

/* The reply for a refusing answer; the default depends on the stage. */
void
smtp_reply_verdict(struct smtp_session *s, enum smtp_verdict v,
    const char *text, enum smtp_reply rej)
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

int
smtp_verdict_refuses(enum smtp_verdict v)
{
	return v == SMTP_V_REJECT || v == SMTP_V_TEMPFAIL ||
	    v == SMTP_V_SHUTDOWN;
}
