/*
 * shadow.c — read a domain's etc/shadow from an explicit file.
 *
 * SECURITY
 *	Read by the small root step that checks a POP3 or AUTH password,
 *	from a file the domain's administrator controls.  Each line is
 *	bounded and checked (length, NUL and control bytes, nine fields,
 *	a valid user name, numeric fields in range) and skipped when bad:
 *	a bad line never yields an entry, so it can never let anyone in.
 *	Hashes are wiped before they are freed.
 *
 * DIAGNOSTICS
 *	"file:line: message" through struct diag; the line is skipped.
 *	Messages never quote the hash field.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "passwd.h"
#include "shadow.h"

#define SHADOW_FIELDS		9
#define SHADOW_DAYS_MAX		2147483647LL

struct shadow_field {
	const char	*p;
	size_t		 len;
};

static const char *const shadow_field_names[SHADOW_FIELDS] = {
	"name", "password", "lastchg", "min", "max", "warn", "inactive",
	"expire", "reserved",
};

static size_t
shadow_split(const char *s, size_t len, struct shadow_field *f, size_t max)
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

/* An empty field is -1; otherwise digits only, within SHADOW_DAYS_MAX. */
static int
shadow_num_parse(const struct shadow_field *f, long *v_r, const char **why_r)
{
	char	buf[24];
	size_t	i;

	if (f->len == 0) {
		*v_r = -1;
		return 0;
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
	*v_r = (long)strtonum(buf, 0, SHADOW_DAYS_MAX, why_r);
	return *why_r == NULL ? 0 : -1;
}

static void
shadow_entry_free(struct shadow_entry *e)
{
	free(e->name);
	if (e->hash != NULL) {
		explicit_bzero(e->hash, strlen(e->hash));
		free(e->hash);
	}
}

static int
shadow_parse_line(struct shadow_file *sf, size_t *cap, const char *file,
    int lineno, const char *s, size_t len, struct diag *d)
{
	struct shadow_field	 f[SHADOW_FIELDS];
	struct shadow_entry	 e, *ne;
	long			*num[6];
	const char		*why;
	size_t			 i, n, ncap;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			diag_report(d, file, lineno,
			    "control character 0x%02x", (unsigned char)s[i]);
			return 0;
		}
	}
	for (i = 0; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	if (i == len || s[i] == '#')
		return 0;
	if ((n = shadow_split(s, len, f, SHADOW_FIELDS)) != SHADOW_FIELDS) {
		diag_report(d, file, lineno,
		    "expected %d fields, found %zu", SHADOW_FIELDS, n);
		return 0;
	}
	if (f[0].len == 0) {
		diag_report(d, file, lineno, "empty user name");
		return 0;
	}
	memset(&e, 0, sizeof(e));
	num[0] = &e.lastchg;
	num[1] = &e.min;
	num[2] = &e.max;
	num[3] = &e.warn;
	num[4] = &e.inactive;
	num[5] = &e.expire;
	if ((e.name = strndup(f[0].p, f[0].len)) == NULL)
		return -1;
	if (!passwd_name_valid(e.name)) {
		diag_report(d, file, lineno, "invalid user name \"%.64s\"",
		    e.name);
		goto skip;
	}
	for (i = 0; i < 6; i++) {
		if (shadow_num_parse(&f[i + 2], num[i], &why) == -1) {
			diag_report(d, file, lineno, "%s \"%.*s\": %s",
			    shadow_field_names[i + 2],
			    (int)(f[i + 2].len > 32 ? 32 : f[i + 2].len),
			    f[i + 2].p, why);
			goto skip;
		}
	}
	if ((e.hash = strndup(f[1].p, f[1].len)) == NULL)
		goto oom;
	if (sf->n == *cap) {
		ncap = *cap ? *cap * 2 : 16;
		if ((ne = reallocarray(sf->entries, ncap, sizeof(*ne))) ==
		    NULL)
			goto oom;
		sf->entries = ne;
		*cap = ncap;
	}
	sf->entries[sf->n++] = e;
	return 0;
skip:
	shadow_entry_free(&e);
	return 0;
oom:
	shadow_entry_free(&e);
	return -1;
}

/*
 * Parse text into f (overwritten; free with shadow_free).  Returns 0,
 * or -1 with errno ENOMEM (f empty) or EFBIG (reported through d).
 * The caller wipes text.
 */
int
shadow_parse(struct shadow_file *f, const char *name, const char *text,
    size_t len, struct diag *d)
{
	struct diag	 none = { NULL, NULL, 0 };
	const char	*s, *nl;
	size_t		 off, n, cap = 0;
	int		 lineno = 0;

	memset(f, 0, sizeof(*f));
	if (d == NULL)
		d = &none;
	if (len > SHADOW_FILE_MAX) {
		diag_report(d, name, 0, "file too large (max %d bytes)",
		    SHADOW_FILE_MAX);
		errno = EFBIG;
		return -1;
	}
	for (off = 0; off < len; off += n + (nl != NULL)) {
		lineno++;
		s = text + off;
		nl = memchr(s, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - s) : len - off;
		if (n > SHADOW_LINE_MAX) {
			diag_report(d, name, lineno,
			    "line too long (max %d bytes)", SHADOW_LINE_MAX);
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			diag_report(d, name, lineno, "NUL byte in line");
			continue;
		}
		if (shadow_parse_line(f, &cap, name, lineno, s,
		    n > 0 && s[n - 1] == '\r' ? n - 1 : n, d) == -1) {
			shadow_free(f);
			errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

int
shadow_load(struct shadow_file *f, const char *path, struct diag *d,
    const char **error_r)
{
	struct buf	b;
	int		r;

	memset(f, 0, sizeof(*f));
	buf_init(&b, SHADOW_FILE_MAX);
	if (file_read_all(path, SHADOW_FILE_MAX, &b, error_r) == -1) {
		buf_free_secret(&b);
		return -1;
	}
	r = shadow_parse(f, path, buf_cstr(&b), b.len, d);
	buf_free_secret(&b);
	if (r == -1)
		*error_r = errno == EFBIG ? "file too large" : "out of memory";
	return r;
}

void
shadow_free(struct shadow_file *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		shadow_entry_free(&f->entries[i]);
	free(f->entries);
	memset(f, 0, sizeof(*f));
}

const struct shadow_entry *
shadow_find(const struct shadow_file *f, const char *name)
{
	size_t	i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < f->n; i++)
		if (strcmp(f->entries[i].name, name) == 0)
			return &f->entries[i];
	return NULL;
}

/*
 * "" (no password) counts as locked: an empty hash must never let an
 * empty password in.  "!..." and "*..." are the usual lock markers.
 */
int
shadow_hash_locked(const char *hash)
{
	if (hash == NULL || hash[0] == '\0' || hash[0] == '!' ||
	    hash[0] == '*')
		return 1;
	return 0;
}

/*
 * As pam_unix: expired on or after the expire day (0 included), or
 * once the password is older than max + inactive days.
 */
int
shadow_expired(const struct shadow_entry *e, long today)
{
	if (e->expire != -1 && today >= e->expire)
		return 1;
	if (e->lastchg > 0 && e->max != -1 && e->inactive != -1 &&
	    (long long)today > (long long)e->lastchg + e->max + e->inactive)
		return 1;
	return 0;
}
