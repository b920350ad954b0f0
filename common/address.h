/*
 * address.h — mail addresses and SMTP paths (RFC 5321 §4.1.2, RFC 6531).
 *
 * Parses "<local@domain>" reverse- and forward-paths as they come in
 * MAIL FROM and RCPT TO, with the ESMTP parameters that follow.  This is
 * network input: every part has a limit, control characters (CR, LF,
 * NUL, ...) are refused everywhere so nothing parsed here can inject a
 * header line, and the result is normalised (domain lower-cased).
 */
#ifndef VIRTMAIL_ADDRESS_H
#define VIRTMAIL_ADDRESS_H

#include <stddef.h>

#define ADDR_LOCAL_MAX		64	/* RFC 5321 §4.5.3.1.1 */
#define ADDR_DOMAIN_MAX		255	/* §4.5.3.1.2 */
#define ADDR_PATH_MAX		256	/* §4.5.3.1.3, brackets included */
#define ADDR_PARAMS_MAX		16	/* ESMTP parameters after a path */

#define ADDR_UTF8	0x01	/* SMTPUTF8: allow UTF-8 in local and domain */
#define ADDR_NULL_OK	0x02	/* "<>" is acceptable (reverse-path) */
#define ADDR_NO_DOMAIN	0x04	/* "<postmaster>" without a domain is ok */

struct mailaddr {
	char	local[ADDR_LOCAL_MAX + 1];	/* as sent (quotes removed) */
	char	domain[ADDR_DOMAIN_MAX + 1];	/* lower case; "" for <> */
};

struct esmtp_param {
	char	*keyword;	/* upper case */
	char	*value;		/* NULL when absent */
};

/*
 * Parse a path at s (starting at '<'), e.g. "<bob@alpha.test> SIZE=10".
 * Source routes ("<@a,@b:bob@c>") are accepted and dropped (§4.1.2).
 * On success fills *a and returns a pointer just past '>' in *rest_r.
 * Returns 0, or -1 with *error_r a short reason fit for a 501 reply.
 * Null path "<>" gives empty local and domain (ADDR_NULL_OK).
 */
int	addr_parse_path(const char *s, int flags, struct mailaddr *a,
	    const char **rest_r, const char **error_r);
/*
 * Parse "local@domain" without brackets (for the sendmail injector and
 * configuration).  Same rules as addr_parse_path.
 */
int	addr_parse(const char *s, int flags, struct mailaddr *a,
	    const char **error_r);
/*
 * Split ESMTP parameters "KEY=VALUE KEY ..." (spaces between) into
 * params (at most max); keywords are upper-cased in place, values are
 * checked for xtext-safe characters (no controls, no '=' in keywords).
 * Modifies s.  Returns the count, or -1 with *error_r.
 */
int	addr_parse_params(char *s, struct esmtp_param *params, size_t max,
	    const char **error_r);
/* Format a as "local@domain" (quoting the local part when needed) into
 * dst; "" for the null address.  -1 when it does not fit. */
int	addr_format(const struct mailaddr *a, char *dst, size_t size);
/* Whether a is the null address <>. */
int	addr_is_null(const struct mailaddr *a);
/* Whether s is a syntactically valid domain name (or [literal]). */
int	addr_domain_valid(const char *s, int flags);
/* Case-insensitive domain equality (ASCII). */
int	addr_domain_equal(const char *a, const char *b);

#endif
