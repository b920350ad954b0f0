/*
 * compat.h — platform differences, keyed by feature, never by OS name.
 *
 * Debian 12's glibc (2.36) lacks strlcpy, strlcat and strtonum; the
 * Makefile defines HAVE_STRLCPY where libc has it.
 */
#ifndef VIRTMAIL_COMPAT_H
#define VIRTMAIL_COMPAT_H

#include <stddef.h>

#ifndef HAVE_STRLCPY
/* Copy src into dst of size bytes, always NUL-terminated; returns strlen(src). */
size_t	strlcpy(char *dst, const char *src, size_t size);
/* Append src to dst of size bytes, always NUL-terminated; returns the length tried. */
size_t	strlcat(char *dst, const char *src, size_t size);
#endif

/*
 * Convert a decimal string to a number within [minval, maxval], as in
 * OpenBSD.  On error returns 0 and sets *errstr to "invalid",
 * "too small" or "too large"; on success *errstr is NULL.
 */
long long strtonum(const char *nptr, long long minval, long long maxval,
    const char **errstr);

#endif
