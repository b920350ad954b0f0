/*
 * config.c — "key value" configuration files, declared by tables.
 *
 * SECURITY: read by the root master before anything else, and by
 * domain workers on files inside a domain root that the domain's own
 * administrator may write.  So every line is bounded (CONF_LINE_MAX),
 * the whole file is bounded (CONF_FILE_MAX), NUL bytes and control
 * characters are refused, numbers are overflow-checked and held to the
 * table's limits, and every problem is reported as "file:line: message"
 * before the load fails, never half-applied silently.  Never exits.
 *
 * Only whole-line comments exist: a '#' after a value is part of the
 * value, since values such as milter specs or paths may contain one.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "compat.h"
#include "config.h"
#include "fileio.h"

#define CONF_LINE_MAX	4096		/* bytes, newline excluded */
#define CONF_FILE_MAX	(1024 * 1024)
#define CONF_ERR_MAX	160

static int	conf_cmp(const void *, const void *);
static const struct conf_key *conf_find(const struct conf_key *, size_t,
		    const char *);
static void	conf_value_clear(struct conf_value *);
static int	conf_value_set(struct conf_value *, const struct conf_key *,
		    const char *, int, char *, size_t);
static int	conf_split(const char *, char ***, size_t *);
static int	conf_multi_add(struct conf_value *, const char *);
static void	conf_line(struct conf *, const char *, int, const char *,
		    size_t, struct diag *);

static char	*conf_empty_list[] = { NULL };
/* For callers that pass no struct diag: problems are only counted. */
static struct diag conf_nodiag;

static int
conf_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct conf_key *)elem)->name);
}

static const struct conf_key *
conf_find(const struct conf_key *table, size_t nkeys, const char *name)
{
	if (table == NULL || nkeys == 0)
		return NULL;
	return bsearch(name, table, nkeys, sizeof(*table), conf_cmp);
}

static void
conf_value_clear(struct conf_value *v)
{
	size_t	 i;

	free(v->text);
	v->text = NULL;
	if (v->list != NULL) {
		for (i = 0; i < v->nlist; i++)
			free(v->list[i]);
		free(v->list);
	}
	v->list = NULL;
	v->nlist = 0;
	v->num = 0;
	v->lineno = 0;
	v->set = 0;
}

/* Split on spaces, tabs and commas into a NULL-ended array. */
static int
conf_split(const char *s, char ***list_r, size_t *n_r)
{
	char		**list = NULL, **nl;
	size_t		  n = 0, wlen;
	const char	 *w;

	for (;;) {
		s += strspn(s, " \t,");
		if (*s == '\0')
			break;
		w = s;
		wlen = strcspn(s, " \t,");
		s += wlen;
		if ((nl = reallocarray(list, n + 2, sizeof(*list))) == NULL)
			goto oom;
		list = nl;
		if ((list[n] = strndup(w, wlen)) == NULL)
			goto oom;
		list[++n] = NULL;
	}
	*list_r = list;
	*n_r = n;
	return 0;

 oom:
	while (n > 0)
		free(list[--n]);
	free(list);
	return -1;
}

static int
conf_multi_add(struct conf_value *v, const char *s)
{
	char	**nl;

	if (v->nlist > SIZE_MAX / sizeof(*nl) - 2)
		return -1;
	if ((nl = reallocarray(v->list, v->nlist + 2, sizeof(*nl))) == NULL)
		return -1;
	v->list = nl;
	if ((nl[v->nlist] = strdup(s)) == NULL) {
		nl[v->nlist] = NULL;
		return -1;
	}
	nl[++v->nlist] = NULL;
	return 0;
}

/* Hold a parsed number to the key's [min, max]. */
static int
conf_bounds(const struct conf_key *k, long long num, char *err, size_t errsz)
{
	if (k->min == 0 && k->max == 0)
		return 0;
	if (num < k->min) {
		(void)snprintf(err, errsz, "too small (minimum %lld)",
		    k->min);
		return -1;
	}
	if (num > k->max) {
		(void)snprintf(err, errsz, "too large (maximum %lld)",
		    k->max);
		return -1;
	}
	return 0;
}

/*
 * Parse text for key k into v (which must be clear, or a MULTI value).
 * Returns 0, -1 with a message in err, or -2 when out of memory.
 */
static int
conf_value_set(struct conf_value *v, const struct conf_key *k,
    const char *text, int lineno, char *err, size_t errsz)
{
	const char	*e = NULL;
	long long	 num = 0, lo, hi;
	uint64_t	 u;
	int		 b;
	char		*t;

	switch (k->type) {
	case CONF_STR:
	case CONF_LIST:
	case CONF_MULTI:
		break;
	case CONF_INT:
		lo = k->min;
		hi = k->max;
		if (lo == 0 && hi == 0) {
			lo = LLONG_MIN;
			hi = LLONG_MAX;
		}
		num = strtonum(text, lo, hi, &e);
		if (e != NULL) {
			if (strcmp(e, "too small") == 0)
				(void)snprintf(err, errsz,
				    "too small (minimum %lld)", lo);
			else if (strcmp(e, "too large") == 0)
				(void)snprintf(err, errsz,
				    "too large (maximum %lld)", hi);
			else
				(void)snprintf(err, errsz, "invalid number");
			return -1;
		}
		break;
	case CONF_SIZE:
	case CONF_DURATION:
		if (k->type == CONF_SIZE)
			b = conf_parse_size(text, &u, &e);
		else
			b = conf_parse_duration(text, &u, &e);
		if (b == -1) {
			(void)snprintf(err, errsz, "%s", e);
			return -1;
		}
		if (u > LLONG_MAX) {
			(void)snprintf(err, errsz, "value too large");
			return -1;
		}
		num = (long long)u;
		if (conf_bounds(k, num, err, errsz) == -1)
			return -1;
		break;
	case CONF_BOOL:
		if (conf_parse_bool(text, &b, &e) == -1) {
			(void)snprintf(err, errsz, "%s", e);
			return -1;
		}
		num = b;
		break;
	default:
		(void)snprintf(err, errsz, "bad type in key table");
		return -1;
	}

	if (k->type == CONF_MULTI) {
		if ((t = strdup(text)) == NULL)
			return -2;
		if (conf_multi_add(v, text) == -1) {
			free(t);
			return -2;
		}
		free(v->text);
		v->text = t;
		v->lineno = lineno;
		return 0;
	}
	if (k->type == CONF_LIST) {
		if (conf_split(text, &v->list, &v->nlist) == -1)
			return -2;
		if (v->nlist == 0) {
			(void)snprintf(err, errsz, "empty list");
			return -1;
		}
	}
	if ((v->text = strdup(text)) == NULL)
		return -2;
	v->num = num;
	v->lineno = lineno;
	return 0;
}

/* One line, without its newline; lineno counts from 1. */
static void
conf_line(struct conf *c, const char *name, int lineno, const char *p,
    size_t len, struct diag *d)
{
	const struct conf_key	*k;
	struct conf_value	*v;
	char			 line[CONF_LINE_MAX + 1], err[CONF_ERR_MAX];
	char			*key, *val, *end;
	size_t			 i;
	int			 r;

	/* Files edited elsewhere may end lines with CRLF. */
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > CONF_LINE_MAX) {
		diag_report(d, name, lineno, "line too long (limit %d bytes)",
		    CONF_LINE_MAX);
		return;
	}
	for (i = 0; i < len; i++) {
		if (p[i] == '\0') {
			diag_report(d, name, lineno, "NUL byte in line");
			return;
		}
		if ((unsigned char)p[i] < 0x20 && p[i] != '\t') {
			diag_report(d, name, lineno,
			    "control character 0x%02x in line",
			    (unsigned char)p[i]);
			return;
		}
		if (p[i] == 0x7f) {
			diag_report(d, name, lineno,
			    "control character 0x7f in line");
			return;
		}
	}
	memcpy(line, p, len);
	line[len] = '\0';

	key = line + strspn(line, " \t");
	if (*key == '\0' || *key == '#')
		return;
	val = key + strcspn(key, " \t");
	if (*val != '\0')
		*val++ = '\0';
	val += strspn(val, " \t");
	end = val + strlen(val);
	while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';

	if ((k = conf_find(c->table, c->nkeys, key)) == NULL) {
		diag_report(d, name, lineno, "unknown key \"%.64s\"", key);
		return;
	}
	if (*val == '\0') {
		diag_report(d, name, lineno, "%s: missing value", k->name);
		return;
	}
	v = &c->values[k - c->table];
	if (v->set && k->type != CONF_MULTI) {
		diag_report(d, name, lineno,
		    "%s: given again (first on line %d)", k->name, v->lineno);
		return;
	}
	/* The first line in the file replaces the default. */
	if (!v->set)
		conf_value_clear(v);
	v->key = k->name;
	r = conf_value_set(v, k, val, lineno, err, sizeof(err));
	if (r == -2) {
		diag_report(d, name, lineno, "%s: out of memory", k->name);
		return;
	}
	if (r == -1) {
		diag_report(d, name, lineno, "%s: %s", k->name, err);
		/* Keep the key unset rather than half-parsed. */
		if (k->type != CONF_MULTI)
			conf_value_clear(v);
		return;
	}
	v->set = 1;
}

int
conf_parse(struct conf *c, const struct conf_key *table, size_t nkeys,
    const char *name, const char *text, size_t len, struct diag *d)
{
	char		 err[CONF_ERR_MAX];
	const char	*p, *nl;
	size_t		 i, left;
	int		 before, lineno, r;

	memset(c, 0, sizeof(*c));
	if (d == NULL)
		d = &conf_nodiag;
	before = d->count;
	c->table = table;
	c->nkeys = nkeys;
	if (name == NULL)
		name = "(config)";
	if ((c->path = strdup(name)) == NULL)
		goto oom;
	if (nkeys > 0 && (c->values = calloc(nkeys, sizeof(*c->values))) ==
	    NULL)
		goto oom;

	/* bsearch needs a sorted table: catch a programming error early. */
	for (i = 0; i + 1 < nkeys; i++) {
		if (strcmp(table[i].name, table[i + 1].name) >= 0) {
			diag_report(d, name, 0, "key table not sorted at "
			    "\"%s\"", table[i + 1].name);
			return -1;
		}
	}
	for (i = 0; i < nkeys; i++) {
		c->values[i].key = table[i].name;
		if (table[i].def == NULL)
			continue;
		r = conf_value_set(&c->values[i], &table[i], table[i].def, 0,
		    err, sizeof(err));
		if (r == -2)
			goto oom;
		if (r == -1) {
			diag_report(d, name, 0, "%s: bad default: %s",
			    table[i].name, err);
			conf_value_clear(&c->values[i]);
		}
	}

	p = text;
	left = text == NULL ? 0 : len;
	lineno = 0;
	while (left > 0) {
		if (lineno == INT_MAX) {
			diag_report(d, name, lineno, "too many lines");
			break;
		}
		lineno++;
		nl = memchr(p, '\n', left);
		if (nl == NULL) {
			/* Last line without a newline: still a line. */
			conf_line(c, name, lineno, p, left, d);
			break;
		}
		conf_line(c, name, lineno, p, (size_t)(nl - p), d);
		left -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	return d->count > before ? -1 : 0;

 oom:
	diag_report(d, name, 0, "out of memory");
	return -1;
}

int
conf_load(struct conf *c, const struct conf_key *table, size_t nkeys,
    const char *path, int missing_ok, struct diag *d)
{
	struct buf	 b;
	const char	*err;
	int		 r, saved;

	if (d == NULL)
		d = &conf_nodiag;
	buf_init(&b, CONF_FILE_MAX);
	if (file_read_all(path, CONF_FILE_MAX, &b, &err) == -1) {
		saved = errno;
		/* Set up the defaults either way, so conf_free is safe. */
		r = conf_parse(c, table, nkeys, path, NULL, 0, d);
		if (saved == ENOENT && missing_ok)
			return r;
		diag_report(d, path, 0, "%s: %s", err, strerror(saved));
		return -1;
	}
	r = conf_parse(c, table, nkeys, path, b.data, b.len, d);
	buf_free(&b);
	return r;
}

void
conf_free(struct conf *c)
{
	size_t	 i;

	if (c->values != NULL) {
		for (i = 0; i < c->nkeys; i++)
			conf_value_clear(&c->values[i]);
		free(c->values);
	}
	free(c->path);
	memset(c, 0, sizeof(*c));
}

const struct conf_value *
conf_get(const struct conf *c, const char *key)
{
	const struct conf_key	*k;
	const struct conf_value	*v;

	if (c->values == NULL)
		return NULL;
	if ((k = conf_find(c->table, c->nkeys, key)) == NULL)
		return NULL;
	v = &c->values[k - c->table];
	if (v->text == NULL && v->list == NULL)
		return NULL;
	return v;
}

const char *
conf_str(const struct conf *c, const char *key)
{
	const struct conf_value	*v;

	if ((v = conf_get(c, key)) == NULL)
		return NULL;
	return v->text;
}

long long
conf_int(const struct conf *c, const char *key)
{
	const struct conf_value	*v;

	if ((v = conf_get(c, key)) == NULL)
		return 0;
	return v->num;
}

int
conf_bool(const struct conf *c, const char *key)
{
	const struct conf_value	*v;

	if ((v = conf_get(c, key)) == NULL)
		return 0;
	return v->num != 0;
}

char * const *
conf_list(const struct conf *c, const char *key, size_t *n_r)
{
	const struct conf_value	*v;

	if ((v = conf_get(c, key)) == NULL || v->list == NULL) {
		if (n_r != NULL)
			*n_r = 0;
		return conf_empty_list;
	}
	if (n_r != NULL)
		*n_r = v->nlist;
	return v->list;
}

int
conf_isset(const struct conf *c, const char *key)
{
	const struct conf_value	*v;

	if ((v = conf_get(c, key)) == NULL)
		return 0;
	return v->set;
}

/* Digits, then an optional one-letter unit; overflow-checked. */
static int
conf_parse_scaled(const char *s, const char *units, const uint64_t *mult,
    uint64_t *val_r)
{
	uint64_t	 n = 0, digit;
	const char	*u;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		digit = (uint64_t)(*s - '0');
		if (n > (UINT64_MAX - digit) / 10)
			return -2;
		n = n * 10 + digit;
	}
	if (*s != '\0') {
		if (s[1] != '\0' || (u = strchr(units, *s)) == NULL)
			return -1;
		if (n > UINT64_MAX / mult[u - units])
			return -2;
		n *= mult[u - units];
	}
	*val_r = n;
	return 0;
}

int
conf_parse_size(const char *s, uint64_t *bytes_r, const char **error_r)
{
	/* Binary units, as admins expect from "50M". */
	static const uint64_t mult[] = {
		1ULL << 10, 1ULL << 10, 1ULL << 20, 1ULL << 20,
		1ULL << 30, 1ULL << 30, 1ULL << 40, 1ULL << 40,
	};

	switch (conf_parse_scaled(s, "kKmMgGtT", mult, bytes_r)) {
	case 0:
		return 0;
	case -2:
		*error_r = "size too large";
		return -1;
	default:
		*error_r = "invalid size (use bytes or a number with k, M, "
		    "G or T)";
		return -1;
	}
}

int
conf_parse_duration(const char *s, uint64_t *seconds_r, const char **error_r)
{
	static const uint64_t mult[] = {
		1, 60, 3600, 86400, 604800,
	};

	/* Lower case only: "5M" could be minutes or months. */
	switch (conf_parse_scaled(s, "smhdw", mult, seconds_r)) {
	case 0:
		return 0;
	case -2:
		*error_r = "duration too large";
		return -1;
	default:
		*error_r = "invalid duration (use seconds or a number with "
		    "s, m, h, d or w)";
		return -1;
	}
}

int
conf_parse_bool(const char *s, int *bool_r, const char **error_r)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	size_t	 i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*bool_r = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*bool_r = 0;
			return 0;
		}
	}
	*error_r = "invalid boolean (use yes or no)";
	return -1;
}
