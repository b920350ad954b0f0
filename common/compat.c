/*
 * compat.c — small versions of libc functions some platforms lack.
 *
 * SECURITY: strlcpy/strlcat always NUL-terminate and report the length
 * they needed, so callers can detect truncation; strtonum is the one
 * bounded number parser (no atoi anywhere).  Pure functions on caller
 * memory; no privilege.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"

#ifndef HAVE_STRLCPY
size_t
strlcpy(char *dst, const char *src, size_t size)
{
	size_t	 srclen;

	srclen = strlen(src);
	if (size > 0) {
		size_t	 n = srclen < size - 1 ? srclen : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return srclen;
}

size_t
strlcat(char *dst, const char *src, size_t size)
{
	size_t	 dstlen, srclen;

	/* Like OpenBSD: an unterminated dst counts as size bytes long. */
	dstlen = strnlen(dst, size);
	srclen = strlen(src);
	if (dstlen == size)
		return size + srclen;
	if (srclen < size - dstlen) {
		memcpy(dst + dstlen, src, srclen + 1);
	} else {
		memcpy(dst + dstlen, src, size - dstlen - 1);
		dst[size - 1] = '\0';
	}
	return dstlen + srclen;
}
#endif

long long
strtonum(const char *nptr, long long minval, long long maxval,
    const char **errstr)
{
	long long	 ll;
	char		*ep;
	int		 saved;

	if (minval > maxval || nptr == NULL || *nptr == '\0') {
		*errstr = "invalid";
		return 0;
	}
	saved = errno;
	errno = 0;
	ll = strtoll(nptr, &ep, 10);
	if (ep == nptr || *ep != '\0') {
		*errstr = "invalid";
		ll = 0;
	} else if ((ll == LLONG_MIN && errno == ERANGE) || ll < minval) {
		*errstr = "too small";
		ll = 0;
	} else if ((ll == LLONG_MAX && errno == ERANGE) || ll > maxval) {
		*errstr = "too large";
		ll = 0;
	} else
		*errstr = NULL;
	errno = saved;
	return ll;
}
