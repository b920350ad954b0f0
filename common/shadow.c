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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colonfile.h"
#include "compat.h"
#include "diag.h"
#include "passwd.h"
#include "shadow.h"

#define SHADOW_FIELDS		9
#define SHADOW_DAYS_MAX		2147483647LL

static const char *const shadow_field_names[SHADOW_FIELDS] = {
	"name", "password", "lastchg", "min", "max", "warn", "inactive",
	"expire", "reserved",
};

/* An empty field is -1; otherwise digits only, within SHADOW_DAYS_MAX. */
static int
shadow_num_parse(const struct colon_field *f, long *v_r, const char **why_r)
{
	long long	v;

	if (f->len == 0) {
		*v_r = -1;
		return 0;
	}
	if (colon_number(f, SHADOW_DAYS_MAX, &v, why_r) == -1)
		return -1;
	*v_r = (long)v;
	return 0;
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

/* What the line walk carries for shadow_parse_line. */
struct shadow_walk {
	struct shadow_file	*f;
	size_t			 cap;
};

static int
shadow_parse_line(void *ctx, const char *file, int lineno, const char *s,
    size_t len, struct diag *d)
{
	struct shadow_walk	*w = ctx;
	struct shadow_file	*sf = w->f;
	size_t			*cap = &w->cap;
	struct colon_field	 f[SHADOW_FIELDS];
	struct shadow_entry	 e, *ne;
	long			*num[6];
	const char		*why;
	size_t			 i, n;

	if (colon_skip_line(file, lineno, s, len, d))
		return 0;
	if ((n = colon_split(s, len, f, SHADOW_FIELDS)) != SHADOW_FIELDS) {
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
	if ((ne = colon_grow(sf->entries, sf->n, cap, sizeof(*ne))) == NULL)
		goto oom;
	sf->entries = ne;
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
	struct diag		none = { NULL, NULL, 0 };
	struct shadow_walk	w;

	memset(f, 0, sizeof(*f));
	w.f = f;
	w.cap = 0;
	if (colonfile_walk(name, text, len, SHADOW_FILE_MAX, SHADOW_LINE_MAX,
	    d != NULL ? d : &none, shadow_parse_line, &w) == -1) {
		shadow_free(f);
		return -1;
	}
	return 0;
}

/* colonfile_parse_fn for shadow_load. */
static int
shadow_parse_file(void *f, const char *name, const char *text, size_t len,
    struct diag *d)
{
	return shadow_parse(f, name, text, len, d);
}

int
shadow_load(struct shadow_file *f, const char *path, struct diag *d,
    const char **error_r)
{
	memset(f, 0, sizeof(*f));
	return colonfile_load(path, SHADOW_FILE_MAX, 1, shadow_parse_file, f,
	    d, error_r);
}

int
shadow_load_fd(struct shadow_file *f, int fd, const char *name, struct diag *d,
    const char **error_r)
{
	memset(f, 0, sizeof(*f));
	return colonfile_load_fd(fd, name, SHADOW_FILE_MAX, 1, shadow_parse_file, f,
	    d, error_r);
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
