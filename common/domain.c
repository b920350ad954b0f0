/*
 * domain.c — the domain table, virtual.conf.
 *
 * SECURITY
 *	The root master reads this file before anything else, so every
 *	line is checked and bounded: length, NUL and control bytes, field
 *	count, address syntax, and a DIR that is absolute and exists as a
 *	directory.  A bad line is reported and skipped, never half-used.
 *	An address belongs to at most one domain (a duplicate is an
 *	error), so the domain chosen for a connection is never ambiguous.
 *	IPv4-mapped IPv6 entries are stored as IPv4, so "::ffff:192.0.2.1"
 *	and "192.0.2.1" are the same address for duplicates and lookups.
 *	A uids= range is digits only, never holds 0 or (uid_t)-1, agrees
 *	across the lines of one DIR, and overlaps no other domain's (both
 *	lines named): the id policy (idrange.c) relies on all four.
 *
 * DIAGNOSTICS
 *	"file:line: message" through struct diag, one per bad line.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "fileio.h"

#define DOMAIN_FIELDS_MAX	4	/* we only need to know "more than 3" */
#define DOMAIN_RANGE_PREFIX	"uids="

/* One good line while parsing; turned into struct domain at the end. */
struct domain_rec {
	struct domain_addr	 addr;
	size_t			 dom;
};

/* Open-addressing index of record or domain numbers (stored plus one). */
struct domain_index {
	size_t	*slot;
	size_t	 cap;		/* power of two, or 0 */
	size_t	 n;
};

enum domain_key {
	DOMAIN_KEY_ADDR,
	DOMAIN_KEY_DIR,
	DOMAIN_KEY_NAME,
};

struct domain_parse {
	const char		*file;
	struct diag		*d;
	struct domain_rec	*recs;
	size_t			 nrecs, caprecs;
	struct domain		*doms;
	size_t			 ndoms, capdoms;
	int			*domline;	/* first line of each domain */
	struct domain_index	 byaddr, bydir, byname;
};

static uint64_t
domain_hash(const void *p, size_t len)
{
	const unsigned char	*s = p;
	uint64_t		 h = 14695981039346656037ULL;
	size_t			 i;

	for (i = 0; i < len; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t
domain_addr_len(int family)
{
	return family == AF_INET ? sizeof(struct in_addr) :
	    sizeof(struct in6_addr);
}

static int
domain_addr_equal(const struct domain_addr *a, const struct domain_addr *b)
{
	return a->family == b->family &&
	    memcmp(&a->a, &b->a, domain_addr_len(a->family)) == 0;
}

static uint64_t
domain_key_hash(const struct domain_parse *p, enum domain_key k, size_t i)
{
	const struct domain_addr	*a;
	const char			*s;

	switch (k) {
	case DOMAIN_KEY_ADDR:
		a = &p->recs[i].addr;
		return domain_hash(&a->a, domain_addr_len(a->family)) ^
		    (uint64_t)a->family;
	case DOMAIN_KEY_DIR:
		s = p->doms[i].dir;
		break;
	default:
		s = p->doms[i].name;
		break;
	}
	return domain_hash(s, strlen(s));
}

static int
domain_key_equal(const struct domain_parse *p, enum domain_key k, size_t i,
    const void *key)
{
	switch (k) {
	case DOMAIN_KEY_ADDR:
		return domain_addr_equal(&p->recs[i].addr, key);
	case DOMAIN_KEY_DIR:
		return strcmp(p->doms[i].dir, key) == 0;
	default:
		return strcmp(p->doms[i].name, key) == 0;
	}
}

static struct domain_index *
domain_index_of(struct domain_parse *p, enum domain_key k)
{
	switch (k) {
	case DOMAIN_KEY_ADDR:
		return &p->byaddr;
	case DOMAIN_KEY_DIR:
		return &p->bydir;
	default:
		return &p->byname;
	}
}

/* Find key (hashed as h); returns its number or SIZE_MAX. */
static size_t
domain_index_find(struct domain_parse *p, enum domain_key k, uint64_t h,
    const void *key)
{
	struct domain_index	*ix = domain_index_of(p, k);
	size_t			 j;

	if (ix->cap == 0)
		return SIZE_MAX;
	for (j = h & (ix->cap - 1); ix->slot[j] != 0;
	    j = (j + 1) & (ix->cap - 1)) {
		if (domain_key_equal(p, k, ix->slot[j] - 1, key))
			return ix->slot[j] - 1;
	}
	return SIZE_MAX;
}

static void
domain_index_put(struct domain_parse *p, enum domain_key k, size_t i)
{
	struct domain_index	*ix = domain_index_of(p, k);
	size_t			 j;

	j = domain_key_hash(p, k, i) & (ix->cap - 1);
	while (ix->slot[j] != 0)
		j = (j + 1) & (ix->cap - 1);
	ix->slot[j] = i + 1;
	ix->n++;
}

/* Add number i under its key; the caller checked it is not there. */
static int
domain_index_add(struct domain_parse *p, enum domain_key k, size_t i)
{
	struct domain_index	*ix = domain_index_of(p, k);
	struct domain_index	 old = *ix;
	size_t			 j, ncap;

	/* Keep the load under one half so probes stay short. */
	if ((ix->n + 1) * 2 > ix->cap) {
		ncap = ix->cap ? ix->cap * 2 : 64;
		if (ncap < ix->cap)
			return -1;
		if ((ix->slot = calloc(ncap, sizeof(*ix->slot))) == NULL) {
			*ix = old;
			return -1;
		}
		ix->cap = ncap;
		ix->n = 0;
		for (j = 0; j < old.cap; j++)
			if (old.slot[j] != 0)
				domain_index_put(p, k, old.slot[j] - 1);
		free(old.slot);
	}
	domain_index_put(p, k, i);
	return 0;
}

/*
 * Parse an address literal.  IPv4-mapped IPv6 becomes IPv4 so that one
 * address has one form.  Zone ids ("%eth0") are refused.
 */
static int
domain_addr_parse(const char *s, struct domain_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->a.v4) == 1)
		a->family = AF_INET;
	else if (strchr(s, ':') != NULL &&
	    inet_pton(AF_INET6, s, &a->a.v6) == 1) {
		a->family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED(&a->a.v6)) {
			memcpy(&a->a.v4, &a->a.v6.s6_addr[12], 4);
			memset(&a->a.v6.s6_addr[4], 0, 12);
			a->family = AF_INET;
		}
	} else
		return -1;
	if (inet_ntop(a->family, &a->a, a->text, sizeof(a->text)) == NULL)
		return -1;
	return 0;
}

/*
 * Normalise an absolute DIR into a new string: repeated and trailing
 * slashes go; "." and ".." components and "/" itself are refused so
 * that one directory has one spelling and the basename is a real name.
 */
static char *
domain_dir_clean(const char *s, const char **why_r)
{
	char		*out, *o;
	const char	*c, *e;
	size_t		 n;

	if (s[0] != '/') {
		*why_r = "directory must be an absolute path";
		return NULL;
	}
	/* *why_r NULL: out of memory. */
	if ((out = malloc(strlen(s) + 1)) == NULL) {
		*why_r = NULL;
		return NULL;
	}
	o = out;
	for (c = s; *c != '\0'; c = e) {
		while (*c == '/')
			c++;
		if (*c == '\0')
			break;
		for (e = c; *e != '\0' && *e != '/'; e++)
			;
		n = e - c;
		if ((n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.')) {
			free(out);
			*why_r = "directory must not have . or .. components";
			return NULL;
		}
		*o++ = '/';
		memcpy(o, c, n);
		o += n;
	}
	*o = '\0';
	if (o == out) {
		free(out);
		*why_r = "directory must not be /";
		return NULL;
	}
	return out;
}

/* One id of a range: digits only, 1..DOMAIN_ID_MAX. */
static int
domain_id_parse(const char *s, size_t n, uid_t *id_r)
{
	char		 num[16];
	const char	*err;
	long long	 v;

	if (n == 0 || n >= sizeof(num) || strspn(s, "0123456789") < n)
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	v = strtonum(num, 1, (long long)DOMAIN_ID_MAX, &err);
	if (err != NULL)
		return -1;
	*id_r = (uid_t)v;
	return 0;
}

/*
 * "uids=FIRST-LAST" into *first_r, *last_r; NULL, or why it is refused.
 */
static const char *
domain_range_parse(const char *s, uid_t *first_r, uid_t *last_r)
{
	const char	*dash;
	size_t		 plen = strlen(DOMAIN_RANGE_PREFIX);

	if (strncmp(s, DOMAIN_RANGE_PREFIX, plen) != 0)
		return "expected uids=FIRST-LAST";
	s += plen;
	if ((dash = strchr(s, '-')) == NULL ||
	    domain_id_parse(s, (size_t)(dash - s), first_r) == -1 ||
	    domain_id_parse(dash + 1, strlen(dash + 1), last_r) == -1)
		return "expected uids=FIRST-LAST, each a number from 1 to "
		    "4294967294 (0 is never in a range)";
	if (*first_r > *last_r)
		return "uids=FIRST-LAST with FIRST above LAST";
	return NULL;
}

/* Give domain dom the range of line lineno, or report a disagreement. */
static void
domain_range_set(struct domain_parse *p, size_t dom, uid_t first,
    uid_t last, int lineno)
{
	struct domain	*dm = &p->doms[dom];

	if (!domain_has_range(dm)) {
		dm->id_first = first;
		dm->id_last = last;
		dm->id_line = lineno;
		return;
	}
	if (dm->id_first != first || dm->id_last != last)
		diag_report(p->d, p->file, lineno, "uids=%lu-%lu for %s "
		    "disagrees with uids=%lu-%lu on line %d",
		    (unsigned long)first, (unsigned long)last, dm->dir,
		    (unsigned long)dm->id_first, (unsigned long)dm->id_last,
		    dm->id_line);
}

static int
domain_rec_add(struct domain_parse *p, const struct domain_addr *a,
    size_t dom)
{
	struct domain_rec	*nr;
	size_t			 ncap;

	if (p->nrecs == p->caprecs) {
		ncap = p->caprecs ? p->caprecs * 2 : 16;
		nr = reallocarray(p->recs, ncap, sizeof(*nr));
		if (nr == NULL)
			return -1;
		p->recs = nr;
		p->caprecs = ncap;
	}
	p->recs[p->nrecs].addr = *a;
	p->recs[p->nrecs].dom = dom;
	if (domain_index_add(p, DOMAIN_KEY_ADDR, p->nrecs) == -1)
		return -1;
	p->nrecs++;
	return 0;
}

/* A new domain for dir (ownership passes); returns its number or -1. */
static int
domain_new(struct domain_parse *p, char *dir, int lineno, size_t *dom_r)
{
	struct domain	*nd;
	int		*nl;
	size_t		 ncap, other;
	char		*name;
	const char	*base;

	base = strrchr(dir, '/') + 1;
	other = domain_index_find(p, DOMAIN_KEY_NAME,
	    domain_hash(base, strlen(base)), base);
	if (other != SIZE_MAX) {
		diag_report(p->d, p->file, lineno,
		    "domain name \"%s\" already used by %s on line %d",
		    base, p->doms[other].dir, p->domline[other]);
		free(dir);
		return 1;
	}
	if (p->ndoms >= DOMAIN_MAX) {
		diag_report(p->d, p->file, lineno,
		    "too many domains (max %d)", DOMAIN_MAX);
		free(dir);
		return 1;
	}
	if (p->ndoms == p->capdoms) {
		ncap = p->capdoms ? p->capdoms * 2 : 16;
		if ((nd = reallocarray(p->doms, ncap, sizeof(*nd))) == NULL)
			goto fail;
		p->doms = nd;
		if ((nl = reallocarray(p->domline, ncap, sizeof(*nl))) == NULL)
			goto fail;
		p->domline = nl;
		p->capdoms = ncap;
	}
	if ((name = strdup(base)) == NULL)
		goto fail;
	memset(&p->doms[p->ndoms], 0, sizeof(p->doms[0]));
	p->doms[p->ndoms].dir = dir;
	p->doms[p->ndoms].name = name;
	p->domline[p->ndoms] = lineno;
	p->ndoms++;
	if (domain_index_add(p, DOMAIN_KEY_DIR, p->ndoms - 1) == -1 ||
	    domain_index_add(p, DOMAIN_KEY_NAME, p->ndoms - 1) == -1)
		return -1;	/* dir now owned by the table */
	*dom_r = p->ndoms - 1;
	return 0;
fail:
	free(dir);
	return -1;
}

/*
 * One line, without its terminator, known to hold no NUL and to be
 * within the limit.  Returns 0 (added or reported) or -1 on OOM.
 */
static int
domain_parse_line(struct domain_parse *p, char *s, int lineno)
{
	char			*field[DOMAIN_FIELDS_MAX], *c, *dir;
	struct domain_addr	 a;
	struct stat		 st;
	const char		*why;
	size_t			 nf, other, dom;
	uid_t			 first = 0, last = 0;
	int			 r;

	if ((c = strchr(s, '#')) != NULL)
		*c = '\0';
	for (c = s; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 && *c != '\t') {
			diag_report(p->d, p->file, lineno,
			    "control character 0x%02x", (unsigned char)*c);
			return 0;
		}
		if (*c == 0x7f) {
			diag_report(p->d, p->file, lineno,
			    "control character 0x7f");
			return 0;
		}
	}
	nf = 0;
	for (c = s; *c != '\0';) {
		while (*c == ' ' || *c == '\t')
			*c++ = '\0';
		if (*c == '\0')
			break;
		if (nf == DOMAIN_FIELDS_MAX)
			break;
		field[nf++] = c;
		while (*c != '\0' && *c != ' ' && *c != '\t')
			c++;
	}
	if (nf == 0)
		return 0;
	if (nf == 1) {
		diag_report(p->d, p->file, lineno,
		    "expected \"IP DIR\", directory missing");
		return 0;
	}
	if (nf > 3) {
		diag_report(p->d, p->file, lineno,
		    "extra field \"%.64s\" after %.64s", field[3], field[2]);
		return 0;
	}
	if (nf == 3 && (why = domain_range_parse(field[2], &first,
	    &last)) != NULL) {
		diag_report(p->d, p->file, lineno, "\"%.64s\": %s",
		    field[2], why);
		return 0;
	}
	if (domain_addr_parse(field[0], &a) == -1) {
		diag_report(p->d, p->file, lineno,
		    "invalid IP address \"%.64s\"", field[0]);
		return 0;
	}
	a.lineno = lineno;
	other = domain_index_find(p, DOMAIN_KEY_ADDR,
	    domain_hash(&a.a, domain_addr_len(a.family)) ^
	    (uint64_t)a.family, &a);
	if (other != SIZE_MAX) {
		diag_report(p->d, p->file, lineno,
		    "duplicate address %s, already on line %d",
		    a.text, p->recs[other].addr.lineno);
		return 0;
	}
	if ((dir = domain_dir_clean(field[1], &why)) == NULL) {
		if (why == NULL)
			return -1;
		diag_report(p->d, p->file, lineno, "%s: %.256s", why,
		    field[1]);
		return 0;
	}
	dom = domain_index_find(p, DOMAIN_KEY_DIR,
	    domain_hash(dir, strlen(dir)), dir);
	if (dom != SIZE_MAX)
		free(dir);
	else {
		if (stat(dir, &st) == -1) {
			diag_report(p->d, p->file, lineno, "%.256s: %s", dir,
			    strerror(errno));
			free(dir);
			return 0;
		}
		if (!S_ISDIR(st.st_mode)) {
			diag_report(p->d, p->file, lineno,
			    "%.256s: not a directory", dir);
			free(dir);
			return 0;
		}
		if ((r = domain_new(p, dir, lineno, &dom)) != 0)
			return r == 1 ? 0 : -1;
	}
	if (first != 0)
		domain_range_set(p, dom, first, last, lineno);
	return domain_rec_add(p, &a, dom);
}

static int
domain_range_cmp(const void *a, const void *b)
{
	const struct domain	*x = *(const struct domain *const *)a;
	const struct domain	*y = *(const struct domain *const *)b;

	if (x->id_first != y->id_first)
		return x->id_first < y->id_first ? -1 : 1;
	return x->id_line < y->id_line ? -1 : x->id_line > y->id_line;
}

/*
 * Report every domain whose range overlaps an earlier one (sorted by
 * FIRST, each is compared with the one reaching highest so far), naming
 * both lines.  XXX the overlap is reported, not removed: callers that
 * enforce ids refuse a table with problems, and idpolicy_build()
 * refuses overlapping ranges again.
 */
static int
domain_ranges_check(struct domain_parse *p)
{
	struct domain	**v, *top = NULL;
	size_t		  i, n = 0;

	if ((v = calloc(p->ndoms + 1, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < p->ndoms; i++)
		if (domain_has_range(&p->doms[i]))
			v[n++] = &p->doms[i];
	qsort(v, n, sizeof(*v), domain_range_cmp);
	for (i = 0; i < n; i++) {
		if (top != NULL && v[i]->id_first <= top->id_last)
			diag_report(p->d, p->file, v[i]->id_line,
			    "uids=%lu-%lu of %s overlaps uids=%lu-%lu of %s "
			    "on line %d", (unsigned long)v[i]->id_first,
			    (unsigned long)v[i]->id_last, v[i]->dir,
			    (unsigned long)top->id_first,
			    (unsigned long)top->id_last, top->dir,
			    top->id_line);
		if (top == NULL || v[i]->id_last > top->id_last)
			top = v[i];
	}
	free(v);
	return 0;
}

/* Move the records into their domains. */
static int
domain_parse_finish(struct domain_parse *p, struct domain_table *t)
{
	struct domain	*dm;
	size_t		 i;

	if (domain_ranges_check(p) == -1)
		return -1;

	for (i = 0; i < p->nrecs; i++)
		p->doms[p->recs[i].dom].naddrs++;
	for (i = 0; i < p->ndoms; i++) {
		dm = &p->doms[i];
		if ((dm->addrs = calloc(dm->naddrs, sizeof(*dm->addrs))) ==
		    NULL)
			return -1;
		dm->naddrs = 0;
	}
	for (i = 0; i < p->nrecs; i++) {
		dm = &p->doms[p->recs[i].dom];
		dm->addrs[dm->naddrs++] = p->recs[i].addr;
	}
	t->domains = p->doms;
	t->ndomains = p->ndoms;
	p->doms = NULL;
	p->ndoms = 0;
	return 0;
}

static void
domain_parse_free(struct domain_parse *p)
{
	size_t	i;

	for (i = 0; i < p->ndoms; i++) {
		free(p->doms[i].dir);
		free(p->doms[i].name);
		free(p->doms[i].addrs);
	}
	free(p->doms);
	free(p->domline);
	free(p->recs);
	free(p->byaddr.slot);
	free(p->bydir.slot);
	free(p->byname.slot);
}

/*
 * Parse text into t (which is overwritten; free it with
 * domain_table_free).  Returns 0, or -1 with errno ENOMEM (t empty)
 * or EFBIG (over DOMAIN_FILE_MAX, reported through d).
 */
int
domain_table_parse(struct domain_table *t, const char *name,
    const char *text, size_t len, struct diag *d)
{
	struct domain_parse	 p;
	struct diag		 none = { NULL, NULL, 0 };
	char			 line[DOMAIN_LINE_MAX + 1];
	const char		*s, *nl;
	size_t			 off, n;
	int			 lineno;

	memset(t, 0, sizeof(*t));
	memset(&p, 0, sizeof(p));
	p.file = name;
	p.d = d != NULL ? d : &none;
	if ((t->path = strdup(name)) == NULL)
		return -1;
	if (len > DOMAIN_FILE_MAX) {
		diag_report(p.d, name, 0, "file too large (max %d bytes)",
		    DOMAIN_FILE_MAX);
		errno = EFBIG;
		return -1;
	}
	lineno = 0;
	for (off = 0; off < len; off += n + (nl != NULL)) {
		lineno++;
		s = text + off;
		nl = memchr(s, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - s) : len - off;
		if (n > DOMAIN_LINE_MAX) {
			diag_report(p.d, name, lineno,
			    "line too long (max %d bytes)", DOMAIN_LINE_MAX);
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			diag_report(p.d, name, lineno, "NUL byte in line");
			continue;
		}
		memcpy(line, s, n);
		/* Tolerate CRLF; a CR anywhere else is a control byte. */
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';
		if (domain_parse_line(&p, line, lineno) == -1)
			goto oom;
	}
	if (domain_parse_finish(&p, t) == -1)
		goto oom;
	domain_parse_free(&p);
	return 0;
oom:
	domain_parse_free(&p);
	domain_table_free(t);
	errno = ENOMEM;
	return -1;
}

int
domain_table_load(struct domain_table *t, const char *path,
    struct diag *d, const char **error_r)
{
	struct buf	b;
	int		r;

	memset(t, 0, sizeof(*t));
	buf_init(&b, DOMAIN_FILE_MAX);
	if (file_read_all(path, DOMAIN_FILE_MAX, &b, error_r) == -1) {
		buf_free(&b);
		return -1;
	}
	r = domain_table_parse(t, path, buf_cstr(&b), b.len, d);
	buf_free(&b);
	if (r == -1)
		*error_r = errno == EFBIG ? "file too large" : "out of memory";
	return r;
}

void
domain_table_free(struct domain_table *t)
{
	size_t	i;

	for (i = 0; i < t->ndomains; i++) {
		free(t->domains[i].dir);
		free(t->domains[i].name);
		free(t->domains[i].addrs);
	}
	free(t->domains);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/* sa's address as a domain_addr key, IPv4-mapped turned into IPv4. */
static int
domain_addr_from_sa(const struct sockaddr *sa, socklen_t salen,
    struct domain_addr *a)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	memset(a, 0, sizeof(*a));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET && salen >= sizeof(*sin)) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		a->family = AF_INET;
		a->a.v4 = sin->sin_addr;
		return 0;
	}
	if (sa->sa_family == AF_INET6 && salen >= sizeof(*sin6)) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			a->family = AF_INET;
			memcpy(&a->a.v4, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			a->family = AF_INET6;
			a->a.v6 = sin6->sin6_addr;
		}
		return 0;
	}
	return -1;
}

/*
 * XXX linear: called once per connection in wildcard mode only, and a
 * table of a few thousand addresses is scanned in microseconds.
 */
const struct domain *
domain_lookup_addr(const struct domain_table *t, const struct sockaddr *sa,
    socklen_t salen)
{
	struct domain_addr	a;
	size_t			i, j;

	if (domain_addr_from_sa(sa, salen, &a) == -1)
		return NULL;
	for (i = 0; i < t->ndomains; i++)
		for (j = 0; j < t->domains[i].naddrs; j++)
			if (domain_addr_equal(&t->domains[i].addrs[j], &a))
				return &t->domains[i];
	return NULL;
}

const struct domain *
domain_lookup_name(const struct domain_table *t, const char *key)
{
	size_t	i, klen;

	if (key == NULL)
		return NULL;
	klen = strlen(key);
	/* "/srv/a/" names the same dir as "/srv/a". */
	if (key[0] == '/')
		while (klen > 1 && key[klen - 1] == '/')
			klen--;
	for (i = 0; i < t->ndomains; i++) {
		if (strcmp(t->domains[i].name, key) == 0)
			return &t->domains[i];
		if (strlen(t->domains[i].dir) == klen &&
		    memcmp(t->domains[i].dir, key, klen) == 0)
			return &t->domains[i];
	}
	return NULL;
}

const char *
domain_addr_text(const struct sockaddr *sa, char *dst, size_t size)
{
	struct domain_addr	a;

	if (domain_addr_from_sa(sa, sizeof(struct sockaddr_storage), &a) ==
	    -1)
		return NULL;
	if (size > 0 && size <= INT32_MAX)
		return inet_ntop(a.family, &a.a, dst, (socklen_t)size);
	return NULL;
}

void
domain_addr_sockaddr(const struct domain_addr *addr, int port,
    struct sockaddr_storage *ss, socklen_t *len_r)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	memset(ss, 0, sizeof(*ss));
	if (addr->family == AF_INET) {
		sin = (struct sockaddr_in *)(void *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr = addr->a.v4;
		*len_r = sizeof(*sin);
	} else {
		sin6 = (struct sockaddr_in6 *)(void *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = addr->a.v6;
		*len_r = sizeof(*sin6);
	}
}
