/*
 * address.c — SMTP paths and mail addresses (RFC 5321 §4.1.2,
 * RFC 6531 §3.3 for SMTPUTF8).
 *
 * SECURITY: parses network input (MAIL FROM, RCPT TO and their ESMTP
 * parameters) inside the unprivileged SMTP worker, and addresses given
 * to the sendmail injector by local users.  Nothing is trusted: every
 * part is length-checked against the RFC 5321 §4.5.3.1 limits, every
 * control character (C0, DEL and, in UTF-8, C1) is refused in every
 * part, quoted or not, so a parsed address can never carry a line break
 * into a header or a log line.  Non-ASCII is refused unless the caller
 * passes ADDR_UTF8, and then only well-formed UTF-8 (no overlongs, no
 * surrogates).  Pure functions on caller memory; never exits.
 *
 * Choices (where RFC 5321 allows more): an empty quoted local part
 * (""@example) is refused; general address literals ([tag:...]) are
 * refused, only IPv4 and IPv6 literals are accepted; a domain may not
 * end in a dot; ESMTP parameter values are printable ASCII only and a
 * keyword may not appear twice.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "address.h"

#define ADDR_LABEL_MAX	63	/* RFC 1035 §2.3.4 */

static const char atext_specials[] = "!#$%&'*+-/=?^_`{|}~";

static int
addr_is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
addr_is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
addr_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* RFC 5322 §3.2.3 atext, ASCII part. */
static int
addr_is_atext(int c)
{
	return addr_is_alpha(c) || addr_is_digit(c) ||
	    (c != '\0' && strchr(atext_specials, c) != NULL);
}

/*
 * Length of the well-formed UTF-8 sequence at p (at most avail bytes),
 * or 0.  RFC 3629 §4: no overlongs, no surrogates, nothing past
 * U+10FFFF; C1 controls (U+0080..U+009F) are refused as well.
 */
static size_t
addr_utf8_len(const unsigned char *p, size_t avail)
{
	unsigned char	 c = p[0];
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* past U+10FFFF */
	} else
		return 0;
	if (avail < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	/* C1 controls: U+0080..U+009F are C2 80..C2 9F. */
	if (c == 0xc2 && p[1] <= 0x9f)
		return 0;
	return n;
}

/*
 * Check a non-ASCII byte sequence at p; returns its length or 0 with
 * *error_r set.
 */
static size_t
addr_nonascii(const char *p, size_t avail, int flags, const char **error_r)
{
	size_t	 n;

	if (!(flags & ADDR_UTF8)) {
		*error_r = "non-ASCII address needs SMTPUTF8";
		return 0;
	}
	n = addr_utf8_len((const unsigned char *)p, avail);
	if (n == 0)
		*error_r = "invalid UTF-8 in address";
	return n;
}

static int
addr_is_ctl(int c)
{
	return (c >= 0 && c < 0x20) || c == 0x7f;
}

/*
 * Check one LDH (or U-label) domain of exactly len bytes at s.
 * Returns 0 or -1 with *error_r.
 */
static int
addr_check_name(const char *s, size_t len, int flags, const char **error_r)
{
	size_t		 i, label, n;
	unsigned char	 c, prev;

	if (len == 0) {
		*error_r = "empty domain";
		return -1;
	}
	if (len > ADDR_DOMAIN_MAX) {
		*error_r = "domain too long";
		return -1;
	}
	label = 0;
	prev = '.';
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0) {
				*error_r = "empty label in domain";
				return -1;
			}
			if (prev == '-') {
				*error_r = "label ends with hyphen";
				return -1;
			}
			label = 0;
			prev = c;
			continue;
		}
		if (c >= 0x80) {
			n = addr_nonascii(s + i, len - i, flags, error_r);
			if (n == 0)
				return -1;
			label += n;
			i += n - 1;
		} else if (addr_is_alpha(c) || addr_is_digit(c))
			label++;
		else if (c == '-') {
			if (label == 0) {
				*error_r = "label starts with hyphen";
				return -1;
			}
			label++;
		} else {
			*error_r = addr_is_ctl(c) ?
			    "control character in domain" :
			    "invalid character in domain";
			return -1;
		}
		if (label > ADDR_LABEL_MAX) {
			*error_r = "domain label too long";
			return -1;
		}
		prev = c;
	}
	if (label == 0) {
		*error_r = "domain ends with a dot";
		return -1;
	}
	if (prev == '-') {
		*error_r = "label ends with hyphen";
		return -1;
	}
	return 0;
}

/*
 * Check an address literal "[...]" of exactly len bytes at s
 * (RFC 5321 §4.1.3).  Returns 0 or -1 with *error_r.
 */
static int
addr_check_literal(const char *s, size_t len, const char **error_r)
{
	char		 tmp[ADDR_DOMAIN_MAX + 1];
	unsigned char	 a[sizeof(struct in6_addr)];
	size_t		 i;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' ||
	    len > ADDR_DOMAIN_MAX) {
		*error_r = "invalid address literal";
		return -1;
	}
	for (i = 1; i < len - 1; i++) {
		if (addr_is_ctl((unsigned char)s[i]) ||
		    (unsigned char)s[i] >= 0x80) {
			*error_r = "invalid character in address literal";
			return -1;
		}
	}
	if (len > 7 && strncasecmp(s + 1, "IPv6:", 5) == 0) {
		memcpy(tmp, s + 6, len - 7);
		tmp[len - 7] = '\0';
		if (inet_pton(AF_INET6, tmp, a) != 1) {
			*error_r = "invalid IPv6 address literal";
			return -1;
		}
		return 0;
	}
	memcpy(tmp, s + 1, len - 2);
	tmp[len - 2] = '\0';
	if (inet_pton(AF_INET, tmp, a) != 1) {
		*error_r = "invalid address literal";
		return -1;
	}
	return 0;
}

/*
 * Scan a domain or address literal at s, stopping at the first byte
 * that cannot belong to it.  Returns its length (0 on error, with
 * *error_r).
 */
static size_t
addr_scan_domain(const char *s, int flags, const char **error_r)
{
	size_t	 n;

	if (s[0] == '[') {
		for (n = 1; s[n] != '\0' && s[n] != ']'; n++) {
			if (n > ADDR_DOMAIN_MAX) {
				*error_r = "domain too long";
				return 0;
			}
		}
		if (s[n] != ']') {
			*error_r = "unterminated address literal";
			return 0;
		}
		n++;
		return addr_check_literal(s, n, error_r) == -1 ? 0 : n;
	}
	for (n = 0; s[n] != '\0'; n++) {
		if (n > ADDR_DOMAIN_MAX) {
			*error_r = "domain too long";
			return 0;
		}
		if (s[n] == '>' || s[n] == ',' || s[n] == ':' || s[n] == ' ')
			break;
	}
	if (addr_check_name(s, n, flags, error_r) == -1)
		return 0;
	return n;
}

/* Copy the domain of len bytes into dst, normalised (ASCII lower case,
 * literal tag written "IPv6:"). */
static void
addr_copy_domain(char *dst, const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		dst[i] = (char)addr_lower((unsigned char)s[i]);
	dst[len] = '\0';
	if (len > 6 && strncmp(dst, "[ipv6:", 6) == 0)
		memcpy(dst + 1, "IPv6:", 5);
}

/*
 * Parse the local part at s into local (unquoted).  Returns the number
 * of bytes consumed, 0 on error with *error_r.
 */
static size_t
addr_scan_local(const char *s, int flags, char *local, const char **error_r)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, o, n;
	int			 dot;

	o = 0;
	if (p[0] == '"') {
		/* RFC 5321 §4.1.2 Quoted-string, with quoted-pairSMTP. */
		for (i = 1; p[i] != '"'; i++) {
			if (i >= ADDR_LOCAL_MAX) {
				*error_r = "local part too long";
				return 0;
			}
			if (p[i] == '\0') {
				*error_r = "unterminated quoted local part";
				return 0;
			}
			if (p[i] == '\\') {
				i++;
				if (p[i] < 32 || p[i] > 126) {
					*error_r = "invalid quoted-pair";
					return 0;
				}
				local[o++] = (char)p[i];
				continue;
			}
			if (p[i] >= 0x80) {
				n = addr_nonascii(s + i, strnlen(s + i, 4),
				    flags, error_r);
				if (n == 0)
					return 0;
				if (i + n > ADDR_LOCAL_MAX) {
					*error_r = "local part too long";
					return 0;
				}
				memcpy(local + o, s + i, n);
				o += n;
				i += n - 1;
				continue;
			}
			if (addr_is_ctl(p[i])) {
				*error_r = "control character in local part";
				return 0;
			}
			local[o++] = (char)p[i];
		}
		i++;	/* closing quote */
		if (i > ADDR_LOCAL_MAX) {
			*error_r = "local part too long";
			return 0;
		}
		if (o == 0) {
			*error_r = "empty local part";
			return 0;
		}
		local[o] = '\0';
		return i;
	}

	/* Dot-string: atoms separated by single dots. */
	dot = 1;
	for (i = 0; p[i] != '\0' && p[i] != '@' && p[i] != '>'; i++) {
		if (i >= ADDR_LOCAL_MAX) {
			*error_r = "local part too long";
			return 0;
		}
		if (p[i] == '.') {
			if (dot) {
				*error_r = i == 0 ?
				    "local part starts with a dot" :
				    "two dots in local part";
				return 0;
			}
			dot = 1;
			local[o++] = '.';
			continue;
		}
		if (p[i] >= 0x80) {
			n = addr_nonascii(s + i, strnlen(s + i, 4), flags,
			    error_r);
			if (n == 0)
				return 0;
			if (i + n > ADDR_LOCAL_MAX) {
				*error_r = "local part too long";
				return 0;
			}
			memcpy(local + o, s + i, n);
			o += n;
			i += n - 1;
		} else if (addr_is_atext(p[i]))
			local[o++] = (char)p[i];
		else {
			*error_r = addr_is_ctl(p[i]) ?
			    "control character in local part" :
			    "invalid character in local part";
			return 0;
		}
		dot = 0;
	}
	if (i == 0) {
		*error_r = "empty local part";
		return 0;
	}
	if (dot) {
		*error_r = "local part ends with a dot";
		return 0;
	}
	local[o] = '\0';
	return i;
}

/*
 * Parse "local@domain" (or "postmaster" with ADDR_NO_DOMAIN) at s.
 * Returns the bytes consumed, 0 on error.
 */
static size_t
addr_scan_mailbox(const char *s, int flags, struct mailaddr *a,
    const char **error_r)
{
	size_t	 l, d;

	l = addr_scan_local(s, flags, a->local, error_r);
	if (l == 0)
		return 0;
	if (s[l] != '@') {
		/* RFC 5321 §4.1.1.3: "<Postmaster>", any case. */
		if ((flags & ADDR_NO_DOMAIN) && l == 10 &&
		    strncasecmp(s, "postmaster", 10) == 0) {
			a->domain[0] = '\0';
			return l;
		}
		*error_r = s[l] == '\0' || s[l] == '>' ?
		    "missing domain" : "invalid character in local part";
		return 0;
	}
	d = addr_scan_domain(s + l + 1, flags, error_r);
	if (d == 0)
		return 0;
	addr_copy_domain(a->domain, s + l + 1, d);
	return l + 1 + d;
}

int
addr_parse_path(const char *s, int flags, struct mailaddr *a,
    const char **rest_r, const char **error_r)
{
	const char	*p;
	size_t		 n;
	const char	*err = NULL;

	memset(a, 0, sizeof(*a));
	if (s[0] != '<') {
		err = "path must start with <";
		goto fail;
	}
	if (s[1] == '>') {
		if (!(flags & ADDR_NULL_OK)) {
			err = "null path not allowed here";
			goto fail;
		}
		*rest_r = s + 2;
		return 0;
	}
	p = s + 1;
	/* A-d-l (source route): "@dom,@dom:", checked and dropped. */
	if (*p == '@') {
		for (;;) {
			p++;
			if (*p == '[') {
				err = "invalid source route";
				goto fail;
			}
			n = addr_scan_domain(p, 0, &err);
			if (n == 0)
				goto fail;
			p += n;
			if (p - s > ADDR_PATH_MAX) {
				err = "path too long";
				goto fail;
			}
			if (*p == ':') {
				p++;
				break;
			}
			if (p[0] != ',' || p[1] != '@') {
				err = "invalid source route";
				goto fail;
			}
			p++;
		}
	}
	n = addr_scan_mailbox(p, flags, a, &err);
	if (n == 0)
		goto fail;
	p += n;
	if (*p != '>') {
		err = *p == '\0' ? "missing >" :
		    addr_is_ctl((unsigned char)*p) ?
		    "control character in address" :
		    "invalid character in address";
		goto fail;
	}
	p++;
	if (p - s > ADDR_PATH_MAX) {
		err = "path too long";
		goto fail;
	}
	*rest_r = p;
	return 0;

 fail:
	memset(a, 0, sizeof(*a));
	*error_r = err;
	return -1;
}

int
addr_parse(const char *s, int flags, struct mailaddr *a,
    const char **error_r)
{
	const char	*err = NULL;
	size_t		 n;

	memset(a, 0, sizeof(*a));
	if (s[0] == '\0') {
		if (flags & ADDR_NULL_OK)
			return 0;
		*error_r = "empty address";
		return -1;
	}
	n = addr_scan_mailbox(s, flags, a, &err);
	if (n == 0)
		goto fail;
	if (s[n] != '\0') {
		err = addr_is_ctl((unsigned char)s[n]) ?
		    "control character in address" :
		    "invalid character in address";
		goto fail;
	}
	if (n > ADDR_PATH_MAX - 2) {
		err = "address too long";
		goto fail;
	}
	return 0;

 fail:
	memset(a, 0, sizeof(*a));
	*error_r = err;
	return -1;
}

/* RFC 5321 §4.1.2 esmtp-keyword. */
static int
addr_keyword_valid(const char *k)
{
	size_t	 i;

	if (!addr_is_alpha((unsigned char)k[0]) &&
	    !addr_is_digit((unsigned char)k[0]))
		return 0;
	for (i = 1; k[i] != '\0'; i++)
		if (!addr_is_alpha((unsigned char)k[i]) &&
		    !addr_is_digit((unsigned char)k[i]) && k[i] != '-')
			return 0;
	return 1;
}

/* RFC 5321 §4.1.2 esmtp-value: 1*(%d33-60 / %d62-126). */
static int
addr_value_valid(const char *v)
{
	size_t	 i;

	if (v[0] == '\0')
		return 0;
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] < 33 || (unsigned char)v[i] > 126 ||
		    v[i] == '=')
			return 0;
	return 1;
}

int
addr_parse_params(char *s, struct esmtp_param *params, size_t max,
    const char **error_r)
{
	char	*p, *tok, *eq, *k;
	size_t	 n, i;

	n = 0;
	p = s;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		tok = p;
		while (*p != ' ' && *p != '\0')
			p++;
		if (*p == ' ')
			*p++ = '\0';
		if (n >= max) {
			*error_r = "too many parameters";
			return -1;
		}
		eq = strchr(tok, '=');
		if (eq != NULL)
			*eq++ = '\0';
		if (!addr_keyword_valid(tok)) {
			*error_r = "invalid parameter keyword";
			return -1;
		}
		if (eq != NULL && !addr_value_valid(eq)) {
			*error_r = "invalid parameter value";
			return -1;
		}
		for (k = tok; *k != '\0'; k++)
			if (*k >= 'a' && *k <= 'z')
				*k = (char)(*k - 'a' + 'A');
		for (i = 0; i < n; i++) {
			if (strcmp(params[i].keyword, tok) == 0) {
				*error_r = "duplicate parameter";
				return -1;
			}
		}
		params[n].keyword = tok;
		params[n].value = eq;
		n++;
	}
	return (int)n;
}

/* Whether the local part can be written as a dot-string. */
static int
addr_local_is_dotstring(const char *l)
{
	size_t	 i;
	int	 dot = 1;

	for (i = 0; l[i] != '\0'; i++) {
		if (l[i] == '.') {
			if (dot)
				return 0;
			dot = 1;
			continue;
		}
		/* Non-ASCII only got here through ADDR_UTF8: atext. */
		if ((unsigned char)l[i] < 0x80 &&
		    !addr_is_atext((unsigned char)l[i]))
			return 0;
		dot = 0;
	}
	return !dot;
}

int
addr_format(const struct mailaddr *a, char *dst, size_t size)
{
	size_t	 i, o;
	int	 r;

	if (size == 0)
		return -1;
	if (addr_is_null(a)) {
		dst[0] = '\0';
		return 0;
	}
	o = 0;
	if (addr_local_is_dotstring(a->local)) {
		r = snprintf(dst, size, "%s", a->local);
		if (r < 0 || (size_t)r >= size)
			return -1;
		o = (size_t)r;
	} else {
		/* Quoted-string: escape only '"' and '\' (§4.1.2). */
		if (o + 1 >= size)
			return -1;
		dst[o++] = '"';
		for (i = 0; a->local[i] != '\0'; i++) {
			if (a->local[i] == '"' || a->local[i] == '\\') {
				if (o + 1 >= size)
					return -1;
				dst[o++] = '\\';
			}
			if (o + 1 >= size)
				return -1;
			dst[o++] = a->local[i];
		}
		if (o + 1 >= size)
			return -1;
		dst[o++] = '"';
		dst[o] = '\0';
	}
	if (a->domain[0] == '\0')
		return 0;
	r = snprintf(dst + o, size - o, "@%s", a->domain);
	if (r < 0 || (size_t)r >= size - o)
		return -1;
	return 0;
}

int
addr_is_null(const struct mailaddr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

int
addr_domain_valid(const char *s, int flags)
{
	const char	*err;
	size_t		 len;

	len = strnlen(s, ADDR_DOMAIN_MAX + 1);
	if (len > ADDR_DOMAIN_MAX)
		return 0;
	if (s[0] == '[')
		return addr_check_literal(s, len, &err) == 0;
	return addr_check_name(s, len, flags, &err) == 0;
}

int
addr_domain_equal(const char *a, const char *b)
{
	size_t	 i;

	for (i = 0; a[i] != '\0' && b[i] != '\0'; i++)
		if (addr_lower((unsigned char)a[i]) !=
		    addr_lower((unsigned char)b[i]))
			return 0;
	return a[i] == b[i];
}
