/*
 * smtp_envelope.c — the MAIL and RCPT commands of the SMTP engine:
 * the sender with its parameters and SPF check, and the recipients.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account, as part of the engine (smtp_session.c).  Both
 *	paths come from the peer and go through the checked address
 *	parser (common/address.c); every parameter is bounded, and an
 *	unknown one is refused.  Recipients of a local domain must exist
 *	in the domain's own etc/passwd or etc/aliases (smtp_userdb.c);
 *	every other domain, sibling domains of this host included, is
 *	relayed only for relay_from clients or authenticated users.  On
 *	submission ports MAIL needs AUTH first, and an authenticated user
 *	may be held to senders of the domain (sender_login_match).
 *
 * STANDARDS
 *	RFC 5321 §4.1.1.2-3, RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 *	RFC 6531 (SMTPUTF8), RFC 7208 (SPF), RFC 7372 (its replies).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "compat.h"
#include "log.h"
#include "passwd.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "xmalloc.h"

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

void
smtp_envelope_mail(struct smtp_session *s, char *arg)
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
		smtp_session_reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->state != SMTP_STATE_HELO) {
		smtp_session_reply(s, RPL_SEQ_NESTED, NULL);
		return;
	}
	if ((arg = arg_after(arg, "FROM:")) == NULL || *arg != '<') {
		smtp_session_reply(s, RPL_SYNTAX_MAIL, NULL);
		return;
	}
	if (addr_parse_path(arg, ADDR_NULL_OK | ADDR_UTF8, &a, &rest,
	    &error) == -1) {
		smtp_session_reply(s, RPL_BAD_SENDER, NULL);
		return;
	}
	while (*rest == ' ')
		rest++;
	np = 0;
	if (*rest != '\0') {
		if (strlcpy(pbuf, rest, sizeof(pbuf)) >= sizeof(pbuf) ||
		    (np = addr_parse_params(pbuf, params, ADDR_PARAMS_MAX,
		    &error)) == -1) {
			smtp_session_reply(s, RPL_PARAM, NULL);
			return;
		}
	}
	for (i = 0; i < np; i++) {
		if (strcmp(params[i].keyword, "SIZE") == 0) {
			if (parse_size(params[i].value, &size) == -1) {
				smtp_session_reply(s, RPL_PARAM, NULL);
				return;
			}
		} else if (strcmp(params[i].keyword, "BODY") == 0) {
			if (params[i].value == NULL) {
				smtp_session_reply(s, RPL_PARAM, NULL);
				return;
			}
			if (strcasecmp(params[i].value, "8BITMIME") == 0)
				flags |= QUEUE_F_8BITMIME;
			else if (strcasecmp(params[i].value, "7BIT") != 0) {
				smtp_session_reply(s, RPL_PARAM, NULL);
				return;
			}
		} else if (strcmp(params[i].keyword, "SMTPUTF8") == 0 &&
		    params[i].value == NULL) {
			flags |= QUEUE_F_SMTPUTF8;
		} else {
			smtp_session_reply(s, RPL_PARAM, NULL);
			return;
		}
	}
	/* RFC 6531 §3.4: UTF-8 in a path only with SMTPUTF8. */
	if ((has_8bit(a.local) || has_8bit(a.domain)) &&
	    !(flags & QUEUE_F_SMTPUTF8)) {
		smtp_session_reply(s, RPL_UTF8_REQUIRED, NULL);
		return;
	}
	/* RFC 1870 §6.2: refuse early what cannot fit. */
	if (size > smtp_limit_size(s)) {
		smtp_session_reply(s, RPL_SIZE_TOO_BIG, NULL);
		return;
	}
	if ((s->kind == LISTEN_SUBMISSION || s->kind == LISTEN_SMTPS) &&
	    !s->authenticated) {
		smtp_session_reply(s, RPL_AUTH_REQUIRED, NULL);
		return;
	}
	/* An authenticated user sends as an address of its own domain. */
	if (s->authenticated && s->sd->sender_login_match &&
	    !addr_is_null(&a) && !smtpd_domain_is_local(s->sd, a.domain)) {
		log_info("%s smtp refused reason=sender_login_mismatch "
		    "user=%s client=%s", s->id, s->auth_user, s->client_addr);
		smtp_session_reply(s, RPL_SENDER_LOGIN, NULL);
		return;
	}
	if (addr_format(&a, sender, sizeof(sender)) == -1) {
		smtp_session_reply(s, RPL_BAD_SENDER, NULL);
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
		if (smtp_session_ask(s, SMTP_ASK_SPF, SMTP_PEND_SPF, NULL, 0))
			return;
		smtp_envelope_spf_done(s);
		return;
	}
	if (smtp_session_ask(s, SMTP_ASK_MAIL, SMTP_PEND_MAIL, NULL, 0))
		return;
	smtp_envelope_mail_done(s);
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
spf_reply_text(const struct smtp_spf *p, char *dst, size_t size)
{
	const char *c = p->comment != NULL ? p->comment : "";

	(void)snprintf(dst, size, "%.300s", c[0] != '\0' ? c :
	    session_spf_name(p->result));
	return dst;
}

void
smtp_envelope_spf_done(struct smtp_session *s)
{
	char	 from[512], helo[512], text[320];

	if (!s->spf.done)
		smtp_session_spf(s, SPF_R_TEMPERROR, "", "",
		    "no answer from the SPF checker");
	(void)log_clean(from, sizeof(from), s->sender, strlen(s->sender));
	log_info("%s smtp spf result=%s from=<%s> client=%s", s->id,
	    session_spf_name(s->spf.result), from, s->client_addr);
	if (s->spf_helo.done) {
		(void)log_clean(helo, sizeof(helo), s->helo, strlen(s->helo));
		log_info("%s smtp spf identity=helo result=%s helo=%s "
		    "client=%s", s->id, session_spf_name(s->spf_helo.result),
		    helo, s->client_addr);
	}
	if (s->sd->spf_mode == 2 && (s->spf.result == SPF_R_FAIL ||
	    s->spf.result == SPF_R_TEMPERROR)) {
		log_info("%s smtp refused reason=spf_%s from=<%s> client=%s",
		    s->id, session_spf_name(s->spf.result), from,
		    s->client_addr);
		smtp_session_reply(s, s->spf.result == SPF_R_FAIL ?
		    RPL_SPF_FAIL : RPL_SPF_TEMPERROR,
		    spf_reply_text(&s->spf, text, sizeof(text)));
		smtp_transaction_reset(s);
		return;
	}
	/* spf_helo: a HELO fail refuses too; its temperror only tags
	 * (the MAIL FROM check decides then). */
	if (s->sd->spf_mode == 2 && s->spf_helo.done &&
	    s->spf_helo.result == SPF_R_FAIL) {
		log_info("%s smtp refused reason=spf_helo_fail helo=%s "
		    "from=<%s> client=%s", s->id, helo, from, s->client_addr);
		smtp_session_reply(s, RPL_SPF_FAIL,
		    spf_reply_text(&s->spf_helo, text, sizeof(text)));
		smtp_transaction_reset(s);
		return;
	}
	if (smtp_session_ask(s, SMTP_ASK_MAIL, SMTP_PEND_MAIL, NULL, 0))
		return;
	smtp_envelope_mail_done(s);
}

void
smtp_envelope_mail_done(struct smtp_session *s)
{
	if (smtp_verdict_refuses(s->ans.v)) {
		smtp_reply_verdict(s, s->ans.v, s->ans.reply,
		    RPL_FILTER_REJECT);
		smtp_transaction_reset(s);
		return;
	}
	s->filtered = s->hooks != NULL && s->hooks->milters &&
	    s->ans.v != SMTP_V_ACCEPT;
	if (s->ans.v == SMTP_V_DISCARD) {
		s->fv = SMTP_V_DISCARD;
		s->filtered = 0;
	}
	smtp_session_reply(s, RPL_MAIL_OK, NULL);
}

int
smtp_rcpt_known(struct smtp_session *s, const char *rcpt)
{
	size_t	 i;

	for (i = 0; i < s->nrcpts; i++)
		if (strcmp(s->rcpts[i], rcpt) == 0)
			return 1;
	return 0;
}

void
smtp_envelope_rcpt(struct smtp_session *s, char *arg)
{
	struct mailaddr	 a;
	const char	*rest, *error, *dom;
	char		 rcpt[2 * ADDR_PATH_MAX + 8];
	char		 name[PASSWD_NAME_MAX + 1];
	int		 r;

	if (s->state == SMTP_STATE_INIT) {
		smtp_session_reply(s, RPL_SEQ_HELO, NULL);
		return;
	}
	if (s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT) {
		smtp_session_reply(s, RPL_SEQ_MAIL, NULL);
		return;
	}
	if ((arg = arg_after(arg, "TO:")) == NULL || *arg != '<') {
		smtp_session_reply(s, RPL_SYNTAX_RCPT, NULL);
		return;
	}
	if (addr_parse_path(arg, ADDR_NO_DOMAIN | ADDR_UTF8, &a, &rest,
	    &error) == -1 || addr_is_null(&a)) {
		smtp_session_reply(s, RPL_BAD_RCPT, NULL);
		return;
	}
	while (*rest == ' ')
		rest++;
	/* No DSN advertised: no RCPT parameters are valid. */
	if (*rest != '\0') {
		smtp_session_reply(s, RPL_PARAM, NULL);
		return;
	}
	if ((has_8bit(a.local) || has_8bit(a.domain)) &&
	    !(s->flags & QUEUE_F_SMTPUTF8)) {
		smtp_session_reply(s, RPL_UTF8_REQUIRED, NULL);
		return;
	}
	if (s->nrcpts >= smtp_limit_rcpt(s)) {
		smtp_session_reply(s, RPL_RCPT_MAX, NULL);
		return;
	}
	if (a.domain[0] == '\0') {
		/* RFC 5321 §4.5.1: "<postmaster>" without a domain. */
		if (strcasecmp(a.local, "postmaster") != 0) {
			smtp_session_reply(s, RPL_BAD_RCPT, NULL);
			return;
		}
		dom = s->sd->nlocal_domains > 0 && s->sd->local_domains ?
		    s->sd->local_domains[0] : smtp_session_hostname(s);
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
				smtp_session_reply(s, RPL_USER_UNKNOWN, NULL);
				return;
			default:
				smtp_session_reply(s, RPL_TEMPFAIL, NULL);
				return;
			}
		}
		r = snprintf(rcpt, sizeof(rcpt), "%s@%s", name, a.domain);
	} else {
		/* Siblings on this host are remote too (DESIGN.md #3). */
		if (!s->authenticated && (s->peer_len == 0 ||
		    !smtpd_relay_allowed(s->sd,
		    (const struct sockaddr *)&s->peer))) {
			smtp_session_reply(s, RPL_RELAY, NULL);
			return;
		}
		r = addr_format(&a, rcpt, sizeof(rcpt)) == -1 ? -1 : 0;
	}
	if (r < 0 || (size_t)r >= sizeof(rcpt)) {
		smtp_session_reply(s, RPL_BAD_RCPT, NULL);
		return;
	}
	free(s->rcpt_asked);
	s->rcpt_asked = xstrdup(rcpt);
	if (s->filtered &&
	    smtp_session_ask(s, SMTP_ASK_RCPT, SMTP_PEND_RCPT, NULL, 0))
		return;
	smtp_envelope_rcpt_done(s);
}

void
smtp_envelope_rcpt_done(struct smtp_session *s)
{
	if (s->rcpt_asked == NULL)
		return;
	if (smtp_verdict_refuses(s->ans.v)) {
		smtp_reply_verdict(s, s->ans.v, s->ans.reply,
		    RPL_FILTER_REJECT);
		free(s->rcpt_asked);
		s->rcpt_asked = NULL;
		return;
	}
	if (s->ans.v == SMTP_V_DISCARD && s->fv == SMTP_V_CONTINUE)
		s->fv = SMTP_V_DISCARD;
	if (!smtp_rcpt_known(s, s->rcpt_asked)) {
		s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1,
		    sizeof(*s->rcpts));
		s->rcpts[s->nrcpts++] = s->rcpt_asked;
	} else
		free(s->rcpt_asked);
	s->rcpt_asked = NULL;
	s->state = SMTP_STATE_RCPT;
	smtp_session_reply(s, RPL_RCPT_OK, NULL);
}
