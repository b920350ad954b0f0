/*
 * pop3_cmd.c — the POP3 command parser and SASL PLAIN decoding.
 *
 * SECURITY
 *	Runs in the login process (chrooted, the domain's run_as account)
 *	and in the session (the user).  Input is the peer's: every line
 *	is bounded by the caller (POP3_LINE_MAX), and here every byte is
 *	checked: NUL and control bytes are refused, numbers are range
 *	checked, nothing is copied without a length.  Never exits.
 *
 * STANDARDS
 *	RFC 1939 §3 (keywords, arguments), RFC 2449 (CAPA), RFC 5034
 *	(AUTH), RFC 4616 (PLAIN), RFC 4648 §4 (base64).
 */
#include <sys/types.h>

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "pop3d.h"

struct pop3_verb_def {
	const char	*name;
	enum pop3_verb	 verb;
	int		 nmin, nmax;	/* numeric arguments */
	int		 text;		/* takes text instead: 1 opt, 2 req */
};

/* Sorted by name. */
static const struct pop3_verb_def pop3_verbs[] = {
	{ "APOP", POP3_APOP, 0, 0, 1 },
	{ "AUTH", POP3_AUTH, 0, 0, 1 },
	{ "CAPA", POP3_CAPA, 0, 0, 0 },
	{ "DELE", POP3_DELE, 1, 1, 0 },
	{ "LIST", POP3_LIST, 0, 1, 0 },
	{ "NOOP", POP3_NOOP, 0, 0, 0 },
	{ "PASS", POP3_PASS, 0, 0, 2 },
	{ "QUIT", POP3_QUIT, 0, 0, 0 },
	{ "RETR", POP3_RETR, 1, 1, 0 },
	{ "RSET", POP3_RSET, 0, 0, 0 },
	{ "STAT", POP3_STAT, 0, 0, 0 },
	{ "STLS", POP3_STLS, 0, 0, 0 },
	{ "TOP", POP3_TOP, 2, 2, 0 },
	{ "UIDL", POP3_UIDL, 0, 1, 0 },
	{ "USER", POP3_USER, 0, 0, 2 },
};

#define NVERBS	(sizeof(pop3_verbs) / sizeof(pop3_verbs[0]))

/* Decimal without sign or leading junk, within [min, max]. */
static int
pop3_number(const char *s, size_t len, unsigned long min, unsigned long max,
    unsigned long *n_r)
{
	unsigned long	 n = 0;
	size_t		 i;

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (unsigned long)(s[i] - '0');
	}
	if (n < min || n > max)
		return -1;
	*n_r = n;
	return 0;
}

int
pop3_cmd_parse(const char *line, size_t len, struct pop3_cmd *c,
    const char **error_r)
{
	const struct pop3_verb_def	*v = NULL;
	const char			*p, *end = line + len, *w;
	char				 kw[5];
	size_t				 klen, i, wlen;
	unsigned long			 n;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
			*error_r = "invalid character in command";
			return -1;
		}
	/* RFC 1939 §3: keywords are 3 or 4 characters. */
	for (klen = 0; klen < len && line[klen] != ' '; klen++)
		;
	if (klen < 3 || klen > 4) {
		*error_r = "unknown command";
		return -1;
	}
	for (i = 0; i < klen; i++)
		kw[i] = (char)toupper((unsigned char)line[i]);
	kw[klen] = '\0';
	for (i = 0; i < NVERBS; i++)
		if (strcmp(pop3_verbs[i].name, kw) == 0) {
			v = &pop3_verbs[i];
			break;
		}
	if (v == NULL) {
		*error_r = "unknown command";
		return -1;
	}
	c->verb = v->verb;
	p = line + klen;
	if (v->text) {
		/* The rest of the line, after one space: passwords may
		 * hold spaces (RFC 1939 §7 PASS discussion). */
		if (p < end)
			p++;
		c->arg = p;
		c->arglen = (size_t)(end - p);
		if (v->text == 2 && c->arglen == 0) {
			*error_r = "argument required";
			return -1;
		}
		return 0;
	}
	while (p < end) {
		if (*p != ' ') {
			*error_r = "syntax error";
			return -1;
		}
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		w = p;
		while (p < end && *p != ' ')
			p++;
		wlen = (size_t)(p - w);
		if (c->nargs >= v->nmax) {
			*error_r = "too many arguments";
			return -1;
		}
		if (c->nargs == 1 && c->verb == POP3_TOP) {
			if (pop3_number(w, wlen, 0, LONG_MAX, &n) == -1) {
				*error_r = "invalid line count";
				return -1;
			}
			c->n2 = n;
		} else {
			if (pop3_number(w, wlen, 1, POP3_MSG_MAX, &n) == -1) {
				*error_r = "invalid message number";
				return -1;
			}
			c->n1 = n;
		}
		c->nargs++;
	}
	if (c->nargs < v->nmin) {
		*error_r = "argument required";
		return -1;
	}
	return 0;
}

static int
pop3_b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

ssize_t
pop3_base64_decode(const char *src, size_t len, unsigned char *dst,
    size_t size)
{
	size_t		 i, o = 0, pad = 0;
	uint32_t	 acc = 0;
	int		 v, k = 0;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (src[i] == '=') {
			/* Only at the end, at most two. */
			if (i < len - 2 || (i == len - 2 && src[i + 1] != '='))
				return -1;
			pad++;
			v = 0;
		} else if ((v = pop3_b64val((unsigned char)src[i])) == -1)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if (++k == 4) {
			if (o + 3 - pad > size)
				return -1;
			dst[o++] = (unsigned char)(acc >> 16);
			if (pad < 2)
				dst[o++] = (unsigned char)(acc >> 8);
			if (pad < 1)
				dst[o++] = (unsigned char)acc;
			acc = 0;
			k = 0;
		}
	}
	return (ssize_t)o;
}

int
pop3_sasl_plain(const char *b64, size_t len, char *user, size_t usersize,
    char *pass, size_t passsize)
{
	unsigned char	 raw[POP3_LINE_MAX];
	const unsigned char *z1, *z2, *end;
	ssize_t		 n;
	size_t		 zlen, clen, plen;
	int		 rv = -1;

	if ((n = pop3_base64_decode(b64, len, raw, sizeof(raw))) <= 0)
		goto done;
	end = raw + n;
	if ((z1 = memchr(raw, '\0', (size_t)n)) == NULL ||
	    (z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1))) == NULL)
		goto done;
	zlen = (size_t)(z1 - raw);
	clen = (size_t)(z2 - z1 - 1);
	plen = (size_t)(end - z2 - 1);
	if (memchr(z2 + 1, '\0', plen) != NULL || clen == 0 ||
	    clen >= usersize || plen >= passsize)
		goto done;
	/* We act only as ourselves: no proxy authorisation. */
	if (zlen != 0 && (zlen != clen || memcmp(raw, z1 + 1, clen) != 0))
		goto done;
	memcpy(user, z1 + 1, clen);
	user[clen] = '\0';
	memcpy(pass, z2 + 1, plen);
	pass[plen] = '\0';
	rv = 0;
 done:
	explicit_bzero(raw, sizeof(raw));
	return rv;
}
