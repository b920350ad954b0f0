/*
 * colonfile.c — the line walk and field split shared by the readers of
 * a domain's etc/passwd, etc/shadow and etc/group.
 *
 * SECURITY: these files belong to a domain's administrator and are read
 * by root (the masters, the deliverer, the auth services) as well as by
 * unprivileged workers.  Every limit is checked before use; problems
 * are reported through struct diag and the line skipped, never
 * truncated.  Never exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "colonfile.h"
#include "compat.h"
#include "fileio.h"

int
colonfile_walk(const char *file, const char *text, size_t len,
    size_t file_max, size_t line_max, struct diag *d,
    colonfile_line_fn *fn, void *ctx)
{
	const char	*s, *nl;
	size_t		 off, n;
	int		 lineno = 0;

	if (len > file_max) {
		diag_report(d, file, 0, "file too large (max %zu bytes)",
		    file_max);
		errno = EFBIG;
		return -1;
	}
	for (off = 0; off < len; off += n + (nl != NULL)) {
		lineno++;
		s = text + off;
		nl = memchr(s, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - s) : len - off;
		if (n > line_max) {
			diag_report(d, file, lineno,
			    "line too long (max %zu bytes)", line_max);
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			diag_report(d, file, lineno, "NUL byte in line");
			continue;
		}
		if (fn(ctx, file, lineno, s,
		    n > 0 && s[n - 1] == '\r' ? n - 1 : n, d) == -1) {
			errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

size_t
colon_split(const char *s, size_t len, struct colon_field *f, size_t max)
{
	const char	*c;
	size_t		 n = 0;

	for (;;) {
		c = memchr(s, ':', len);
		if (n < max) {
			f[n].p = s;
			f[n].len = c != NULL ? (size_t)(c - s) : len;
		}
		n++;
		if (c == NULL)
			return n;
		len -= c - s + 1;
		s = c + 1;
	}
}

int
colon_number(const struct colon_field *f, long long max, long long *v_r,
    const char **why_r)
{
	char	buf[24];
	size_t	i;

	if (f->len == 0) {
		*why_r = "empty";
		return -1;
	}
	for (i = 0; i < f->len; i++) {
		if (f->p[i] < '0' || f->p[i] > '9') {
			*why_r = "invalid";
			return -1;
		}
	}
	if (f->len >= sizeof(buf)) {
		*why_r = "too large";
		return -1;
	}
	memcpy(buf, f->p, f->len);
	buf[f->len] = '\0';
	*v_r = strtonum(buf, 0, max, why_r);
	return *why_r == NULL ? 0 : -1;
}

int
colon_skip_line(const char *file, int lineno, const char *s, size_t len,
    struct diag *d)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			diag_report(d, file, lineno,
			    "control character 0x%02x", (unsigned char)s[i]);
			return 1;
		}
	}
	for (i = 0; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	return i == len || s[i] == '#';
}

void *
colon_grow(void *arr, size_t n, size_t *cap, size_t size)
{
	size_t	 ncap;
	void	*na;

	if (n < *cap)
		return arr;
	ncap = *cap ? *cap * 2 : 16;
	if ((na = reallocarray(arr, ncap, size)) == NULL)
		return NULL;
	*cap = ncap;
	return na;
}

int
colonfile_load(const char *path, size_t max, int secret,
    colonfile_parse_fn *parse, void *f, struct diag *d,
    const char **error_r)
{
	int	 fd, rv, saved;

	do {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	} while (fd == -1 && errno == EINTR);
	if (fd == -1) {
		*error_r = "cannot open";
		return -1;
	}
	rv = colonfile_load_fd(fd, path, max, secret, parse, f, d, error_r);
	saved = errno;
	(void)close(fd);
	errno = saved;
	return rv;
}

int
colonfile_load_fd(int fd, const char *name, size_t max, int secret,
    colonfile_parse_fn *parse, void *f, struct diag *d,
    const char **error_r)
{
	struct buf	b;
	int		r = -1;

	buf_init(&b, max);
	if (file_read_fd(fd, max, &b, error_r) == 0 &&
	    (r = parse(f, name, buf_cstr(&b), b.len, d)) == -1)
		*error_r = errno == EFBIG ? "file too large" : "out of memory";
	if (secret)
		buf_free_secret(&b);
	else
		buf_free(&b);
	return r;
}
