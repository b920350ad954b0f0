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

/*
 * Landlock (common/confine.c): rights and scopes newer than the kernel
 * headers of Debian 12 (uapi 6.1, Landlock ABI 2), and the ruleset
 * attributes with every field the running kernel may know; a kernel
 * that knows fewer accepts the extra fields while they are zero.
 */
#define COMPAT_LANDLOCK_ACCESS_FS_TRUNCATE	(1ULL << 14)	/* ABI 3 */
#define COMPAT_LANDLOCK_ACCESS_FS_IOCTL_DEV	(1ULL << 15)	/* ABI 5 */
#define COMPAT_LANDLOCK_SCOPE_ABSTRACT_UNIX	(1ULL << 0)	/* ABI 6 */
#define COMPAT_LANDLOCK_SCOPE_SIGNAL		(1ULL << 1)	/* ABI 6 */
struct compat_landlock_ruleset_attr {
	unsigned long long	 handled_access_fs;
	unsigned long long	 handled_access_net;		/* ABI 4 */
	unsigned long long	 scoped;			/* ABI 6 */
};

#endif
