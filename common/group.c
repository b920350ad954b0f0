/*
 * group.c — read a domain's etc/group from an explicit file.
 *
 * SECURITY
 *	The file is the domain administrator's; its gids end up in
 *	setgroups(2) for that domain's users, so each line is bounded
 *	and checked (length, NUL and control bytes, four fields, valid
 *	group and member names, gid in range, member count) and skipped
 *	when bad.  NSS is never used.
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
#include "group.h"
#include "passwd.h"

#define GROUP_FIELDS		4
#define GROUP_ID_MAX		4294967294LL	/* (gid_t)-1 means "none" */

static void
group_entry_free(struct group_entry *e)
{
	size_t	i;

	free(e->name);
	if (e->members != NULL)
		for (i = 0; i < e->nmembers; i++)
			free(e->members[i]);
	free(e->members);
}

/*
 * Split the member list into e; 0 ok, 1 reported, -1 out of memory.
 * An empty field means no members; an empty name between commas is
 * an error rather than silently dropped.
 */
static int
group_members_parse(struct group_entry *e, const struct colon_field *f,
    const char *file, int lineno, struct diag *d)
{
	const char	*s, *c;
	size_t		 n, len, i;
	char		*m;

	n = 1;
	for (i = 0; i < f->len; i++)
		if (f->p[i] == ',')
			n++;
	if (f->len == 0)
		n = 0;
	if (n > GROUP_MEMBERS_MAX) {
		diag_report(d, file, lineno, "too many members (max %d)",
		    GROUP_MEMBERS_MAX);
		return 1;
	}
	if ((e->members = calloc(n + 1, sizeof(*e->members))) == NULL)
		return -1;
	s = f->p;
	len = f->len;
	while (e->nmembers < n) {
		c = memchr(s, ',', len);
		i = c != NULL ? (size_t)(c - s) : len;
		if ((m = strndup(s, i)) == NULL)
			return -1;
		e->members[e->nmembers++] = m;
		if (m[0] == '\0') {
			diag_report(d, file, lineno, "empty member name");
			return 1;
		}
		if (!passwd_name_valid(m)) {
			diag_report(d, file, lineno,
			    "invalid member name \"%.64s\"", m);
			return 1;
		}
		if (c == NULL)
			break;
		len -= i + 1;
		s = c + 1;
	}
	return 0;
}

/* What the line walk carries for group_parse_line. */
struct group_walk {
	struct group_file	*f;
	size_t			 cap;
};

static int
group_parse_line(void *ctx, const char *file, int lineno, const char *s,
    size_t len, struct diag *d)
{
	struct group_walk	*w = ctx;
	struct group_file	*gf = w->f;
	size_t			*cap = &w->cap;
	struct colon_field	 f[GROUP_FIELDS];
	struct group_entry	 e, *ne;
	const char		*why;
	long long		 gid;
	size_t			 n;
	int			 r;

	if (colon_skip_line(file, lineno, s, len, d))
		return 0;
	if ((n = colon_split(s, len, f, GROUP_FIELDS)) != GROUP_FIELDS) {
		diag_report(d, file, lineno,
		    "expected %d fields, found %zu", GROUP_FIELDS, n);
		return 0;
	}
	if (f[0].len == 0) {
		diag_report(d, file, lineno, "empty group name");
		return 0;
	}
	memset(&e, 0, sizeof(e));
	if ((e.name = strndup(f[0].p, f[0].len)) == NULL)
		return -1;
	if (!passwd_name_valid(e.name)) {
		diag_report(d, file, lineno, "invalid group name \"%.64s\"",
		    e.name);
		goto skip;
	}
	if (colon_number(&f[2], GROUP_ID_MAX, &gid, &why) == -1) {
		diag_report(d, file, lineno, "gid \"%.*s\": %s",
		    (int)(f[2].len > 32 ? 32 : f[2].len), f[2].p, why);
		goto skip;
	}
	e.gid = (gid_t)gid;
	e.lineno = lineno;
	if ((r = group_members_parse(&e, &f[3], file, lineno, d)) == -1)
		goto oom;
	if (r == 1)
		goto skip;
	if ((ne = colon_grow(gf->entries, gf->n, cap, sizeof(*ne))) == NULL)
		goto oom;
	gf->entries = ne;
	gf->entries[gf->n++] = e;
	return 0;
skip:
	group_entry_free(&e);
	return 0;
oom:
	group_entry_free(&e);
	return -1;
}

/*
 * Parse text into f (overwritten; free with group_free).  Returns 0,
 * or -1 with errno ENOMEM (f empty) or EFBIG (reported through d).
 */
int
group_parse(struct group_file *f, const char *name, const char *text,
    size_t len, struct diag *d)
{
	struct diag		none = { NULL, NULL, 0 };
	struct group_walk	w;

	memset(f, 0, sizeof(*f));
	w.f = f;
	w.cap = 0;
	if (colonfile_walk(name, text, len, GROUP_FILE_MAX, GROUP_LINE_MAX,
	    d != NULL ? d : &none, group_parse_line, &w) == -1) {
		group_free(f);
		return -1;
	}
	return 0;
}

/* colonfile_parse_fn for group_load. */
static int
group_parse_file(void *f, const char *name, const char *text, size_t len,
    struct diag *d)
{
	return group_parse(f, name, text, len, d);
}

int
group_load(struct group_file *f, const char *path, struct diag *d,
    const char **error_r)
{
	memset(f, 0, sizeof(*f));
	return colonfile_load(path, GROUP_FILE_MAX, 0, group_parse_file, f,
	    d, error_r);
}

int
group_load_fd(struct group_file *f, int fd, const char *name, struct diag *d,
    const char **error_r)
{
	memset(f, 0, sizeof(*f));
	return colonfile_load_fd(fd, name, GROUP_FILE_MAX, 0, group_parse_file, f,
	    d, error_r);
}

void
group_free(struct group_file *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		group_entry_free(&f->entries[i]);
	free(f->entries);
	memset(f, 0, sizeof(*f));
}

const struct group_entry *
group_find(const struct group_file *f, const char *name)
{
	size_t	i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < f->n; i++)
		if (strcmp(f->entries[i].name, name) == 0)
			return &f->entries[i];
	return NULL;
}

static int
group_has_gid(const gid_t *gids, size_t n, gid_t gid)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (gids[i] == gid)
			return 1;
	return 0;
}

/* Primary first, then each group naming user, without duplicates. */
size_t
group_list_for(const struct group_file *f, const char *user, gid_t primary,
    gid_t *gids, size_t max)
{
	const struct group_entry	*e;
	size_t				 i, j, n = 0;

	if (max == 0)
		return 0;
	gids[n++] = primary;
	for (i = 0; i < f->n && n < max; i++) {
		e = &f->entries[i];
		for (j = 0; j < e->nmembers; j++) {
			if (strcmp(e->members[j], user) != 0)
				continue;
			if (!group_has_gid(gids, n, e->gid))
				gids[n++] = e->gid;
			break;
		}
	}
	return n;
}
