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

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "passwd.h"

#define PASSWD_FIELDS		7
#define PASSWD_ID_MAX		4294967294LL	/* (uid_t)-1 means "none" */

struct passwd_field {
	const char	*p;
	size_t		 len;
};

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

/* Split s on ':' into at most max fields; returns the count found. */
static size_t
passwd_split(const char *s, size_t len, struct passwd_field *f, size_t max)
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

/* Digits only, then strtonum for the range: no sign, space or "0x". */
static int
passwd_id_parse(const struct passwd_field *f, long long *id_r,
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
	*id_r = strtonum(buf, 0, PASSWD_ID_MAX, why_r);
	return *why_r == NULL ? 0 : -1;
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
static int
passwd_parse_line(struct passwd_file *pf, size_t *cap, const char *file,
    int lineno, const char *s, size_t len, struct diag *d)
{
	struct passwd_field	 f[PASSWD_FIELDS];
	struct passwd_entry	 e, *ne;
	const char		*why;
	long long		 uid, gid;
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
	if ((n = passwd_split(s, len, f, PASSWD_FIELDS)) != PASSWD_FIELDS) {
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
	if (passwd_id_parse(&f[2], &uid, &why) == -1) {
		diag_report(d, file, lineno, "uid \"%.*s\": %s",
		    (int)(f[2].len > 32 ? 32 : f[2].len), f[2].p, why);
		goto skip;
	}
	if (passwd_id_parse(&f[3], &gid, &why) == -1) {
		diag_report(d, file, lineno, "gid \"%.*s\": %s",
		    (int)(f[3].len > 32 ? 32 : f[3].len), f[3].p, why);
		goto skip;
	}
	e.uid = (uid_t)uid;
	e.gid = (gid_t)gid;
	if ((e.passwd = strndup(f[1].p, f[1].len)) == NULL ||
	    (e.gecos = strndup(f[4].p, f[4].len)) == NULL ||
	    (e.dir = strndup(f[5].p, f[5].len)) == NULL ||
	    (e.shell = strndup(f[6].p, f[6].len)) == NULL)
		goto oom;
	if (pf->n == *cap) {
		ncap = *cap ? *cap * 2 : 16;
		if ((ne = reallocarray(pf->entries, ncap, sizeof(*ne))) ==
		    NULL)
			goto oom;
		pf->entries = ne;
		*cap = ncap;
	}
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
	struct diag	 none = { NULL, NULL, 0 };
	const char	*s, *nl;
	size_t		 off, n, cap = 0;
	int		 lineno = 0;

	memset(f, 0, sizeof(*f));
	if (d == NULL)
		d = &none;
	if (len > PASSWD_FILE_MAX) {
		diag_report(d, name, 0, "file too large (max %d bytes)",
		    PASSWD_FILE_MAX);
		errno = EFBIG;
		return -1;
	}
	for (off = 0; off < len; off += n + (nl != NULL)) {
		lineno++;
		s = text + off;
		nl = memchr(s, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - s) : len - off;
		if (n > PASSWD_LINE_MAX) {
			diag_report(d, name, lineno,
			    "line too long (max %d bytes)", PASSWD_LINE_MAX);
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			diag_report(d, name, lineno, "NUL byte in line");
			continue;
		}
		if (passwd_parse_line(f, &cap, name, lineno, s,
		    n > 0 && s[n - 1] == '\r' ? n - 1 : n, d) == -1) {
			passwd_free(f);
			errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

int
passwd_load(struct passwd_file *f, const char *path, struct diag *d,
    const char **error_r)
{
	struct buf	b;
	int		r;

	memset(f, 0, sizeof(*f));
	buf_init(&b, PASSWD_FILE_MAX);
	if (file_read_all(path, PASSWD_FILE_MAX, &b, error_r) == -1) {
		buf_free(&b);
		return -1;
	}
	r = passwd_parse(f, path, buf_cstr(&b), b.len, d);
	buf_free(&b);
	if (r == -1)
		*error_r = errno == EFBIG ? "file too large" : "out of memory";
	return r;
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
