/*
 * idrange.c — the id policy: which uids and gids a process may become
 * for a domain (see idrange.h for the rules).
 *
 * SECURITY
 *	Built as root on the host, by the root master (or virtuald, or
 *	the admin command) after it loads virtual.conf, and inherited by
 *	the children it forks.  The host's passwd and group are read from
 *	the paths given (trusted: root's own files).  A legacy domain's
 *	etc/passwd and etc/group are the domain's to write, so they are
 *	opened inside its root (file_open_in_root: no symlink leads out)
 *	and only their ids, names and line numbers are kept; a file that
 *	is missing or unreadable contributes nothing, and its ids are
 *	then not known to be taken (XXX: declare a range).  Refusals name
 *	the rule and its source (file:line), never guess.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "group.h"
#include "idrange.h"
#include "passwd.h"

#define IDPOLICY_HOST	SIZE_MAX	/* idpolicy_use.dom of the host */

static const char *const idpolicy_kind_name[] = { "uid", "gid" };

static int
idpolicy_dom_cmp(const void *a, const void *b)
{
	const struct idpolicy_dom	*x = a, *y = b;

	return strcmp(x->dir, y->dir);
}

static int
idpolicy_use_cmp(const void *a, const void *b)
{
	const struct idpolicy_use	*x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	if (x->dom != y->dom)
		return x->dom < y->dom ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Append one use of id; -1 when out of memory. */
static int
idpolicy_use_add(struct idpolicy *p, enum idpolicy_kind k, size_t *cap,
    unsigned long id, size_t dom, const char *file, int line,
    const char *name)
{
	struct idpolicy_use	*nu;
	size_t			 ncap;

	if (p->nuses[k] == *cap) {
		ncap = *cap ? *cap * 2 : 64;
		if ((nu = reallocarray(p->uses[k], ncap, sizeof(*nu))) == NULL)
			return -1;
		p->uses[k] = nu;
		*cap = ncap;
	}
	nu = &p->uses[k][p->nuses[k]];
	memset(nu, 0, sizeof(*nu));
	if ((nu->name = strdup(name)) == NULL)
		return -1;
	nu->id = id;
	nu->dom = dom;
	nu->file = file;
	nu->line = line;
	p->nuses[k]++;
	return 0;
}

/* Every uid and gid of a passwd and a group file, as uses by dom. */
static int
idpolicy_add_files(struct idpolicy *p, size_t cap[2], size_t dom,
    const struct passwd_file *pf, const char *pw_path,
    const struct group_file *gf, const char *gr_path)
{
	size_t	 i;

	for (i = 0; pf != NULL && i < pf->n; i++) {
		if (idpolicy_use_add(p, IDPOLICY_UID, &cap[0],
		    (unsigned long)pf->entries[i].uid, dom, pw_path,
		    pf->entries[i].lineno, pf->entries[i].name) == -1 ||
		    idpolicy_use_add(p, IDPOLICY_GID, &cap[1],
		    (unsigned long)pf->entries[i].gid, dom, pw_path,
		    pf->entries[i].lineno, pf->entries[i].name) == -1)
			return -1;
	}
	for (i = 0; gf != NULL && i < gf->n; i++)
		if (idpolicy_use_add(p, IDPOLICY_GID, &cap[1],
		    (unsigned long)gf->entries[i].gid, dom, gr_path,
		    gf->entries[i].lineno, gf->entries[i].name) == -1)
			return -1;
	return 0;
}

/* A file name kept by the policy; NULL when out of memory. */
static const char *
idpolicy_file(struct idpolicy *p, const char *dir, const char *rel)
{
	char	**nf, *s;

	if ((nf = reallocarray(p->files, p->nfiles + 1, sizeof(*nf))) == NULL)
		return NULL;
	p->files = nf;
	if (asprintf(&s, "%s/%s", dir, rel) == -1)
		return NULL;
	p->files[p->nfiles++] = s;
	return s;
}

/*
 * A legacy domain's etc/passwd and etc/group, read inside its root.
 * Bad lines are the daemons' and "virtmail check"'s to report.
 */
static int
idpolicy_add_legacy(struct idpolicy *p, size_t cap[2], size_t dom)
{
	struct passwd_file	 pf;
	struct group_file	 gf;
	struct diag		 quiet = { NULL, NULL, 0 };
	const char		*pw_path, *gr_path, *err;
	int			 fd, pw_ok = 0, gr_ok = 0, rv = -1;

	memset(&pf, 0, sizeof(pf));
	memset(&gf, 0, sizeof(gf));
	if ((pw_path = idpolicy_file(p, p->doms[dom].dir, "etc/passwd")) ==
	    NULL || (gr_path = idpolicy_file(p, p->doms[dom].dir,
	    "etc/group")) == NULL)
		return -1;
	if ((fd = file_open_in_root(p->doms[dom].dir, "etc/passwd",
	    O_RDONLY | O_NONBLOCK)) != -1) {
		pw_ok = passwd_load_fd(&pf, fd, pw_path, &quiet, &err) == 0;
		(void)close(fd);
	}
	if ((fd = file_open_in_root(p->doms[dom].dir, "etc/group",
	    O_RDONLY | O_NONBLOCK)) != -1) {
		gr_ok = group_load_fd(&gf, fd, gr_path, &quiet, &err) == 0;
		(void)close(fd);
	}
	rv = idpolicy_add_files(p, cap, dom, pw_ok ? &pf : NULL, pw_path,
	    gr_ok ? &gf : NULL, gr_path);
	if (pw_ok)
		passwd_free(&pf);
	if (gr_ok)
		group_free(&gf);
	return rv;
}

static int
idpolicy_add_host(struct idpolicy *p, size_t cap[2], const char **error_r)
{
	struct passwd_file	 pf;
	struct group_file	 gf;
	struct diag		 quiet = { NULL, NULL, 0 };
	int			 rv;

	if (passwd_load(&pf, p->host_files[0], &quiet, error_r) == -1)
		return -1;
	if (group_load(&gf, p->host_files[1], &quiet, error_r) == -1) {
		passwd_free(&pf);
		return -1;
	}
	rv = idpolicy_add_files(p, cap, IDPOLICY_HOST, &pf,
	    p->host_files[0], &gf, p->host_files[1]);
	if (rv == -1)
		*error_r = "out of memory";
	passwd_free(&pf);
	group_free(&gf);
	return rv;
}

static int
idpolicy_first_cmp(const void *a, const void *b, void *ctx)
{
	const struct idpolicy		*p = ctx;
	const struct idpolicy_dom	*x, *y;

	x = &p->doms[*(const size_t *)a];
	y = &p->doms[*(const size_t *)b];
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return 0;
}

/* The ranged domain whose range holds id, or NULL. */
static const struct idpolicy_dom *
idpolicy_range_of(const struct idpolicy *p, unsigned long id)
{
	size_t	 lo = 0, hi = p->nranged, mid;
	const struct idpolicy_dom	*dm;

	/* The last range whose first is <= id; ranges do not overlap. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((unsigned long)p->doms[p->byfirst[mid]].first <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	dm = &p->doms[p->byfirst[lo - 1]];
	return id <= (unsigned long)dm->last ? dm : NULL;
}

/* The first use of id in kind k, or NULL. */
static const struct idpolicy_use *
idpolicy_use_first(const struct idpolicy *p, enum idpolicy_kind k,
    unsigned long id)
{
	size_t	 lo = 0, hi = p->nuses[k], mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (p->uses[k][mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < p->nuses[k] && p->uses[k][lo].id == id)
		return &p->uses[k][lo];
	return NULL;
}

/* Configuration errors: overlaps, host ids inside a range. */
static void
idpolicy_report(const struct idpolicy *p, struct diag *d)
{
	const struct idpolicy_dom	*a, *b, *dm;
	const struct idpolicy_use	*u;
	size_t				 i, k;

	for (i = 1; i < p->nranged; i++) {
		a = &p->doms[p->byfirst[i - 1]];
		b = &p->doms[p->byfirst[i]];
		if (b->first <= a->last)
			diag_report(d, p->conf, b->line, "uids=%lu-%lu of %s "
			    "overlaps uids=%lu-%lu of %s (line %d)",
			    (unsigned long)b->first, (unsigned long)b->last,
			    b->name, (unsigned long)a->first,
			    (unsigned long)a->last, a->name, a->line);
	}
	for (k = 0; k < 2; k++)
		for (i = 0; i < p->nuses[k]; i++) {
			u = &p->uses[k][i];
			if (u->dom != IDPOLICY_HOST ||
			    (dm = idpolicy_range_of(p, u->id)) == NULL)
				continue;
			diag_report(d, p->conf, dm->line, "uids=%lu-%lu of %s "
			    "holds %s %lu of the host's %s (%s:%d)",
			    (unsigned long)dm->first, (unsigned long)dm->last,
			    dm->name, idpolicy_kind_name[k], u->id, u->name,
			    u->file, u->line);
		}
}

int
idpolicy_build(struct idpolicy *p, const struct domain_table *t,
    const char *host_passwd, const char *host_group, struct diag *d,
    const char **error_r)
{
	const struct domain	*vd;
	size_t			 cap[2] = { 0, 0 }, i;

	memset(p, 0, sizeof(*p));
	if ((p->conf = strdup(t->path != NULL ? t->path : "virtual.conf")) ==
	    NULL || (p->host_files[0] = strdup(host_passwd)) == NULL ||
	    (p->host_files[1] = strdup(host_group)) == NULL ||
	    (p->doms = calloc(t->ndomains + 1, sizeof(*p->doms))) == NULL ||
	    (p->byfirst = calloc(t->ndomains + 1, sizeof(size_t))) == NULL)
		goto oom;
	for (i = 0; i < t->ndomains; i++) {
		vd = &t->domains[i];
		if ((p->doms[i].dir = strdup(vd->dir)) == NULL ||
		    (p->doms[i].name = strdup(vd->name)) == NULL)
			goto oom;
		p->doms[i].first = vd->id_first;
		p->doms[i].last = vd->id_last;
		p->doms[i].line = vd->id_line;
		p->ndoms++;
	}
	qsort(p->doms, p->ndoms, sizeof(*p->doms), idpolicy_dom_cmp);
	for (i = 0; i < p->ndoms; i++)
		if (p->doms[i].first != 0)
			p->byfirst[p->nranged++] = i;
	qsort_r(p->byfirst, p->nranged, sizeof(size_t), idpolicy_first_cmp,
	    p);

	if (idpolicy_add_host(p, cap, error_r) == -1) {
		idpolicy_free(p);
		return -1;
	}
	for (i = 0; i < p->ndoms; i++)
		if (p->doms[i].first == 0 && idpolicy_add_legacy(p, cap, i) ==
		    -1)
			goto oom;
	for (i = 0; i < 2; i++)
		qsort(p->uses[i], p->nuses[i], sizeof(*p->uses[i]),
		    idpolicy_use_cmp);
	idpolicy_report(p, d);
	return 0;
oom:
	idpolicy_free(p);
	*error_r = "out of memory";
	return -1;
}

void
idpolicy_free(struct idpolicy *p)
{
	size_t	 i, k;

	for (i = 0; i < p->ndoms; i++) {
		free(p->doms[i].dir);
		free(p->doms[i].name);
	}
	for (k = 0; k < 2; k++) {
		for (i = 0; i < p->nuses[k]; i++)
			free(p->uses[k][i].name);
		free(p->uses[k]);
	}
	for (i = 0; i < p->nfiles; i++)
		free(p->files[i]);
	free(p->files);
	free(p->doms);
	free(p->byfirst);
	free(p->conf);
	free(p->host_files[0]);
	free(p->host_files[1]);
	memset(p, 0, sizeof(*p));
}

const struct idpolicy_dom *
idpolicy_domain(const struct idpolicy *p, const char *dir)
{
	struct idpolicy_dom	 key;
	char			 clean[PATH_MAX];
	size_t			 n;

	if (dir == NULL || p->ndoms == 0)
		return NULL;
	/* "/srv/a/" is the root "/srv/a" of virtual.conf. */
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n >= sizeof(clean))
		return NULL;
	memcpy(clean, dir, n);
	clean[n] = '\0';
	key.dir = clean;
	return bsearch(&key, p->doms, p->ndoms, sizeof(*p->doms),
	    idpolicy_dom_cmp);
}

int
idpolicy_allows(const struct idpolicy *p, const struct idpolicy_dom *dom,
    enum idpolicy_kind kind, unsigned long id, char *why, size_t size)
{
	const struct idpolicy_dom	*other;
	const struct idpolicy_use	*u, *end;

	if (id == 0 || id > DOMAIN_ID_MAX) {
		(void)snprintf(why, size, "is %s", id == 0 ? "root's" :
		    "not a valid id");
		return 0;
	}
	end = p->uses[kind] + p->nuses[kind];
	for (u = idpolicy_use_first(p, kind, id); u != NULL && u < end &&
	    u->id == id; u++)
		if (u->dom == IDPOLICY_HOST) {
			(void)snprintf(why, size, "is the host's %s %s "
			    "(%s:%d)", idpolicy_kind_name[kind], u->name,
			    u->file, u->line);
			return 0;
		}
	if (dom->first != 0) {
		if (id >= (unsigned long)dom->first &&
		    id <= (unsigned long)dom->last)
			return 1;
		(void)snprintf(why, size, "is outside %s's range %lu-%lu "
		    "(%s:%d)", dom->name, (unsigned long)dom->first,
		    (unsigned long)dom->last, p->conf, dom->line);
		return 0;
	}
	if ((other = idpolicy_range_of(p, id)) != NULL) {
		(void)snprintf(why, size, "is in %s's range %lu-%lu (%s:%d)",
		    other->name, (unsigned long)other->first,
		    (unsigned long)other->last, p->conf, other->line);
		return 0;
	}
	for (u = idpolicy_use_first(p, kind, id); u != NULL && u < end &&
	    u->id == id; u++)
		if (&p->doms[u->dom] != dom) {
			(void)snprintf(why, size, "is also %s's %s (%s:%d)",
			    p->doms[u->dom].name, u->name, u->file, u->line);
			return 0;
		}
	return 1;
}

/* One id of a domain's file: reported when refused. */
static int
idpolicy_audit_one(const struct idpolicy *p, const struct idpolicy_dom *dom,
    enum idpolicy_kind kind, unsigned long id, const char *name,
    const char *file, int line, struct diag *d)
{
	char	 why[IDPOLICY_WHY_MAX];

	if (id == 0 || idpolicy_allows(p, dom, kind, id, why, sizeof(why)))
		return 0;
	diag_report(d, file, line, "%s %lu of %s %s",
	    idpolicy_kind_name[kind], id, name, why);
	return 1;
}

int
idpolicy_audit(const struct idpolicy *p, const struct idpolicy_dom *dom,
    const struct passwd_file *pf, const char *pw_path,
    const struct group_file *gf, const char *gr_path, struct diag *d)
{
	const struct passwd_entry	*pw;
	size_t				 i;
	int				 n = 0;

	for (i = 0; pf != NULL && i < pf->n; i++) {
		pw = &pf->entries[i];
		n += idpolicy_audit_one(p, dom, IDPOLICY_UID,
		    (unsigned long)pw->uid, pw->name, pw_path, pw->lineno, d);
		n += idpolicy_audit_one(p, dom, IDPOLICY_GID,
		    (unsigned long)pw->gid, pw->name, pw_path, pw->lineno, d);
	}
	for (i = 0; gf != NULL && i < gf->n; i++)
		n += idpolicy_audit_one(p, dom, IDPOLICY_GID,
		    (unsigned long)gf->entries[i].gid, gf->entries[i].name,
		    gr_path, gf->entries[i].lineno, d);
	return n;
}
