/*
 * smtp_sasl.c — the AUTH command of the SMTP engine (RFC 4954): the
 * SASL exchange of PLAIN and LOGIN, up to the question to the auth
 * service and its answer.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account, as part of the engine (smtp_session.c).  The
 *	peer's responses are untrusted: strict base64, bounded sizes, an
 *	authorization identity only when it equals the user.  Nothing is
 *	checked here: user and password go out through the session's
 *	hooks to the domain's auth service (smtp_auth.c), and every copy
 *	of them is wiped once sent.  AUTH is offered only under TLS unless
 *	the domain allows plaintext, and too many failures end the
 *	session.  Passwords are never logged.
 *
 * STANDARDS
 *	RFC 4954 (AUTH), RFC 4616 (PLAIN), RFC 4648 §4 (base64).
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "log.h"
#include "smtp_session.h"
#include "xmalloc.h"

/* Whether AUTH may be offered and used now. */
int
smtp_sasl_offered(const struct smtp_session *s)
{
	return s->tls || s->sd->allow_plaintext_auth;
}

void
smtp_sasl_clear(struct smtp_session *s)
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

	smtp_sasl_clear(s);
	if (ul == 0 || ul > 256 || pl > 512 || s->hooks == NULL) {
		s->ans.v = ul == 0 || ul > 256 || pl > 512 ? SMTP_V_REJECT :
		    SMTP_V_TEMPFAIL;
		s->ans.reply[0] = '\0';
		smtp_sasl_done(s);
		return;
	}
	data = xmalloc(ul + pl + 2);
	memcpy(data, user, ul + 1);
	memcpy(data + ul + 1, pass, pl + 1);
	if (!smtp_session_ask(s, SMTP_ASK_AUTH, SMTP_PEND_AUTH, data,
	    ul + pl + 1)) {
		/* Nobody to ask: a temporary failure. */
		s->ans.v = SMTP_V_TEMPFAIL;
		smtp_sasl_done(s);
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
		smtp_sasl_clear(s);
		smtp_session_reply(s, RPL_AUTH_DECODE, NULL);
		return;
	}
	buf[n] = '\0';
	authz = (const char *)buf;
	l1 = strlen(authz);
	if ((size_t)n < l1 + 2) {
		explicit_bzero(buf, sizeof(buf));
		smtp_sasl_clear(s);
		smtp_session_reply(s, RPL_AUTH_DECODE, NULL);
		return;
	}
	user = authz + l1 + 1;
	l2 = strlen(user);
	if ((size_t)n < l1 + l2 + 2 || l1 + l2 + 2 + strlen(user + l2 + 1) !=
	    (size_t)n || (l1 > 0 && strcmp(authz, user) != 0)) {
		explicit_bzero(buf, sizeof(buf));
		s->ans.v = SMTP_V_REJECT;
		smtp_sasl_clear(s);
		smtp_sasl_done(s);
		return;
	}
	pass = user + l2 + 1;
	auth_check(s, user, pass);
	explicit_bzero(buf, sizeof(buf));
}

/* A line of the SASL exchange (RFC 4954 §4). */
void
smtp_sasl_response(struct smtp_session *s, char *line, size_t len)
{
	unsigned char	 buf[600];
	ssize_t		 n;

	if (len == 1 && line[0] == '*') {
		smtp_sasl_clear(s);
		smtp_session_reply(s, RPL_AUTH_CANCEL, NULL);
		return;
	}
	switch (s->auth_step) {
	case SMTP_AUTH_PLAIN:
		auth_plain(s, line, len);
		return;
	case SMTP_AUTH_LOGIN_USER:
		n = b64_decode(line, len, buf, sizeof(buf) - 1);
		if (n <= 0 || memchr(buf, '\0', (size_t)n) != NULL) {
			smtp_sasl_clear(s);
			smtp_session_reply(s, RPL_AUTH_DECODE, NULL);
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
			smtp_sasl_clear(s);
			smtp_session_reply(s, RPL_AUTH_DECODE, NULL);
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
	smtp_sasl_clear(s);
}

void
smtp_sasl_cmd(struct smtp_session *s, char *arg)
{
	char	*mech, *ir = NULL;

	if (s->state == SMTP_STATE_INIT || !s->esmtp) {
		smtp_session_reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->authenticated) {
		smtp_session_reply(s, RPL_AUTH_ALREADY, NULL);
		return;
	}
	if (smtp_session_busy(s)) {
		smtp_session_reply(s, RPL_AUTH_SEQ, NULL);
		return;
	}
	if (arg == NULL) {
		smtp_session_reply(s, RPL_AUTH_MECH, NULL);
		return;
	}
	mech = arg;
	if ((ir = strchr(arg, ' ')) != NULL) {
		*ir++ = '\0';
		while (*ir == ' ')
			ir++;
	}
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
		smtp_session_reply(s, RPL_AUTH_MECH, NULL);
		return;
	}
	if (!smtp_sasl_offered(s)) {
		smtp_session_reply(s, RPL_AUTH_ENCRYPT, NULL);
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
		smtp_sasl_response(s, ir, strlen(ir));
		return;
	}
	s->auth_step = SMTP_AUTH_LOGIN_USER;
	b64_put(s, "334 ", "Username:");
}

void
smtp_sasl_done(struct smtp_session *s)
{
	switch (s->ans.v) {
	case SMTP_V_ACCEPT:
		if (s->ans.reply[0] == '\0' || s->authenticated) {
			smtp_session_reply(s, RPL_AUTH_TEMP, NULL);
			return;
		}
		free(s->auth_user);
		s->auth_user = xstrdup(s->ans.reply);
		smtp_text_clean(s->auth_user);
		s->authenticated = 1;
		log_info("%s smtp auth user=%s client=%s", s->id,
		    s->auth_user, s->client_addr);
		smtp_session_reply(s, RPL_AUTH_OK, NULL);
		return;
	case SMTP_V_TEMPFAIL:
		smtp_session_reply(s, RPL_AUTH_TEMP, NULL);
		return;
	default:
		s->auth_failures++;
		log_info("%s smtp auth failed client=%s failures=%u", s->id,
		    s->client_addr, s->auth_failures);
		if (s->auth_failures >= (s->sd->auth_failures_max != 0 ?
		    s->sd->auth_failures_max : 3)) {
			smtp_session_reply(s, RPL_AUTH_TOO_MANY, NULL);
			smtp_transaction_reset(s);
			s->state = SMTP_STATE_QUIT;
			return;
		}
		smtp_session_reply(s, RPL_AUTH_FAILED, NULL);
		return;
	}
}
