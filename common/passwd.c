/*
 * passwd.c — read a domain's etc/passwd from an explicit file.
 *
 * SECURITY
 *	The file belongs to the domain's administrator, not to us, and
 *	is read by root-side code (mailbox owner, password check), so
 *	each line is bounded and checked: length, NUL and control bytes,
 *	exactly seven fields, a user name that cannot name a path outside
 *	its directory, and uid/gid in range.  NSS is never used: it would
 *	read the host's accounts, not the domain's.
 *
 * DIAGNOSTICS
 *	"file:line: message" through struct diag; the line is skipped.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colonfile.h"
#include "compat.h"
#include "diag.h"
#include "passwd.h"

#define PASSWD_FIELDS		7
#define PASSWD_ID_MAX		4294967294LL	/* (uid_t)-1 means "none" */

int
passwd_name_valid(const char *name)
{
	size_t	i;
	char	c;

	if (name == NULL || name[0] == '\0' || name[0] == '-' ||
	    name[0] == '.')
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= PASSWD_NAME_MAX)
			return 0;
		c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-'))
			return 0;
		if (c == '.' && name[i + 1] == '.')
			return 0;
	}
	return 1;
}

static void
passwd_entry_free(struct passwd_entry *e)
{
	free(e->name);
	free(e->passwd);
	free(e->gecos);
	free(e->dir);
	free(e->shell);
}

/* One line, no terminator; 0 added or reported, -1 out of memory. */
/* What the line walk carries for passwd_parse_line. */
struct passwd_walk {
	struct passwd_file	*f;
	size_t			 cap;
};

static int
passwd_parse_line(void *ctx, const char *file, int lineno, const char *s,
    size_t len, struct diag *d)
{
	struct passwd_walk	*w = ctx;
	struct passwd_file	*pf = w->f;
	size_t			*cap = &w->cap;
	struct colon_field	 f[PASSWD_FIELDS];
	struct passwd_entry	 e, *ne;
	const char		*why;
	long long		 uid, gid;
	size_t			 n;

	if (colon_skip_line(file, lineno, s, len, d))
		return 0;
	if ((n = colon_split(s, len, f, PASSWD_FIELDS)) != PASSWD_FIELDS) {
		diag_report(d, file, lineno,
		    "expected %d fields, found %zu", PASSWD_FIELDS, n);
		return 0;
	}
	if (f[0].len == 0) {
		diag_report(d, file, lineno, "empty user name");
		return 0;
	}
	memset(&e, 0, sizeof(e));
	if ((e.name = strndup(f[0].p, f[0].len)) == NULL)
		return -1;
	if (!passwd_name_valid(e.name)) {
		diag_report(d, file, lineno, "invalid user name \"%.64s\"",
		    e.name);
		goto skip;
	}
	if (colon_number(&f[2], PASSWD_ID_MAX, &uid, &why) == -1) {
		diag_report(d, file, lineno, "uid \"%.*s\": %s",
		    (int)(f[2].len > 32 ? 32 : f[2].len), f[2].p, why);
		goto skip;
	}
	if (colon_number(&f[3], PASSWD_ID_MAX, &gid, &why) == -1) {
		diag_report(d, file, lineno, "gid \"%.*s\": %s",
		    (int)(f[3].len > 32 ? 32 : f[3].len), f[3].p, why);
		goto skip;
	}
	e.uid = (uid_t)uid;
	e.gid = (gid_t)gid;
	e.lineno = lineno;
	if ((e.passwd = strndup(f[1].p, f[1].len)) == NULL ||
	    (e.gecos = strndup(f[4].p, f[4].len)) == NULL ||
	    (e.dir = strndup(f[5].p, f[5].len)) == NULL ||
	    (e.shell = strndup(f[6].p, f[6].len)) == NULL)
		goto oom;
	if ((ne = colon_grow(pf->entries, pf->n, cap, sizeof(*ne))) == NULL)
		goto oom;
	pf->entries = ne;
	pf->entries[pf->n++] = e;
	return 0;
skip:
	passwd_entry_free(&e);
	return 0;
oom:
	passwd_entry_free(&e);
	return -1;
}

/*
 * Parse text into f (overwritten; free with passwd_free).  Returns 0,
 * or -1 with errno ENOMEM (f empty) or EFBIG (reported through d).
 */
int
passwd_parse(struct passwd_file *f, const char *name, const char *text,
    size_t len, struct diag *d)
{
	struct diag		none = { NULL, NULL, 0 };
	struct passwd_walk	w;

	memset(f, 0, sizeof(*f));
	w.f = f;
	w.cap = 0;
	if (colonfile_walk(name, text, len, PASSWD_FILE_MAX, PASSWD_LINE_MAX,
	    d != NULL ? d : &none, passwd_parse_line, &w) == -1) {
		passwd_free(f);
		return -1;
	}
	return 0;
}

/* colonfile_parse_fn for passwd_load. */
static int
passwd_parse_file(void *f, const char *name, const char *text, size_t len,
    struct diag *d)
{
	return passwd_parse(f, name, text, len, d);
}

int
passwd_load(struct passwd_file *f, const char *path, struct diag *d,
    const char **error_r)
{
	memset(f, 0, sizeof(*f));
	return colonfile_load(path, PASSWD_FILE_MAX, 0, passwd_parse_file, f,
	    d, error_r);
}

int
passwd_load_fd(struct passwd_file *f, int fd, const char *name, struct diag *d,
    const char **error_r)
{
	memset(f, 0, sizeof(*f));
	return colonfile_load_fd(fd, name, PASSWD_FILE_MAX, 0, passwd_parse_file, f,
	    d, error_r);
}

void
passwd_free(struct passwd_file *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		passwd_entry_free(&f->entries[i]);
	free(f->entries);
	memset(f, 0, sizeof(*f));
}

const struct passwd_entry *
passwd_find(const struct passwd_file *f, const char *name)
{
	size_t	i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < f->n; i++)
		if (strcmp(f->entries[i].name, name) == 0)
			return &f->entries[i];
	return NULL;
}

const struct passwd_entry *
passwd_find_uid(const struct passwd_file *f, uid_t uid)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		if (f->entries[i].uid == uid)
			return &f->entries[i];
	return NULL;
}
