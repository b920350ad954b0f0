/*
 * aliases.c — read and expand a domain's etc/aliases.
 *
 * SECURITY
 *	The file is the domain administrator's and is read by the queue
 *	runner of that domain.  Lines are bounded (a logical line, with
 *	its continuations, is at most ALIASES_LINE_MAX), NUL and control
 *	bytes are refused, names and local targets must be plain names
 *	(no '/', no "..": they end up in mailbox paths), and addresses
 *	are limited to characters that cannot break an SMTP envelope or
 *	a header.  Commands, files and includes are parsed and marked so
 *	that delivery can refuse them by type; nothing here runs them.
 *	Expansion is bounded in depth and in results, and visits each
 *	alias once, so a hostile file cannot make it loop or explode.
 *
 * DIAGNOSTICS
 *	"file:line: message" through struct diag; the alias is skipped.
 *	Duplicates are reported after the other problems.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "buf.h"
#include "diag.h"
#include "fileio.h"

#define ALIASES_NAME_MAX	64

struct aliases_parse {
	const char	*file;
	struct diag	*d;
	struct aliases	*a;
	size_t		 cap;
	char		*logical;	/* the current logical line */
	size_t		 len;
	int		 lineno;	/* its first line; 0: none */
	int		 bad;		/* already reported: drop it */
};

/* Alias names and local targets: [A-Za-z0-9._+-], not starting '.'/'-'. */
static int
aliases_name_valid(const char *s)
{
	size_t	i;
	char	c;

	if (s[0] == '\0' || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= ALIASES_NAME_MAX)
			return 0;
		c = s[i];
		if (!isalnum((unsigned char)c) && c != '.' && c != '_' &&
		    c != '-' && c != '+')
			return 0;
		if (c == '.' && s[i + 1] == '.')
			return 0;
	}
	return 1;
}

/*
 * user@domain with an RFC 5322 dot-atom-ish local part and a domain of
 * letters, digits, '.', '-' (or an address literal in brackets).
 */
static int
aliases_address_valid(const char *s)
{
	const char	*at, *c;

	if ((at = strchr(s, '@')) == NULL || at == s || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL)
		return 0;
	for (c = s; c < at; c++)
		if (!isalnum((unsigned char)*c) &&
		    strchr("!#$%&'*+-/=?^_`{|}~.", *c) == NULL)
			return 0;
	c = at + 1;
	if (*c == '[') {
		for (c++; *c != '\0' && *c != ']'; c++)
			if (!isxdigit((unsigned char)*c) &&
			    strchr(".:Pv", *c) == NULL)
				return 0;
		return c[0] == ']' && c[1] == '\0';
	}
	for (; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-')
			return 0;
	return 1;
}

/* Classify and check one target (t->value owned); NULL ok, else why. */
static const char *
aliases_target_classify(struct alias_target *t)
{
	char	*v = t->value;
	size_t	 len = strlen(v);

	if (v[0] == '|') {
		t->type = ALIAS_COMMAND;
		memmove(v, v + 1, len);
		return v[0] == '\0' ? "empty command" : NULL;
	}
	if (len >= 9 && strncasecmp(v, ":include:", 9) == 0) {
		t->type = ALIAS_INCLUDE;
		memmove(v, v + 9, len - 9 + 1);
		return v[0] == '/' ? NULL : ":include: needs an absolute path";
	}
	if (v[0] == '/') {
		t->type = ALIAS_FILE;
		return NULL;
	}
	if (strchr(v, '@') != NULL) {
		t->type = ALIAS_ADDRESS;
		return aliases_address_valid(v) ? NULL : "invalid address";
	}
	t->type = ALIAS_LOCAL;
	return aliases_name_valid(v) ? NULL : "invalid local name";
}

static void
aliases_alias_free(struct alias *al)
{
	size_t	i;

	free(al->name);
	for (i = 0; i < al->ntargets; i++)
		free(al->targets[i].value);
	free(al->targets);
}

/*
 * Cut the next target from *sp: quoted ("..." with \" and \\) or up to
 * the next ','.  Returns 1 with *out_r (malloced), 0 at the end, -1 out
 * of memory, 2 with *why_r on a syntax error.
 */
static int
aliases_target_next(char **sp, char **out_r, const char **why_r)
{
	char	*s = *sp, *o, *start, *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return 0;
	if (*s == '"') {
		if ((*out_r = o = malloc(strlen(s) + 1)) == NULL)
			return -1;
		for (s++; *s != '"'; s++) {
			if (*s == '\0') {
				*why_r = "unterminated quote";
				return 2;
			}
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			*o++ = *s;
		}
		*o = '\0';
		for (s++; *s == ' ' || *s == '\t'; s++)
			;
		if (*s != ',' && *s != '\0') {
			*why_r = "text after closing quote";
			return 2;
		}
	} else {
		start = s;
		while (*s != ',' && *s != '\0') {
			if (*s == '"') {
				*why_r = "quote inside unquoted target";
				*out_r = NULL;
				return 2;
			}
			s++;
		}
		for (end = s; end > start && (end[-1] == ' ' ||
		    end[-1] == '\t'); end--)
			;
		if ((*out_r = strndup(start, end - start)) == NULL)
			return -1;
	}
	if (*s == ',') {
		s++;
		/* "a, b," ends with an empty target: refuse it. */
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0') {
			*why_r = "empty target";
			*sp = s;
			return 2;
		}
	}
	*sp = s;
	if ((*out_r)[0] == '\0') {
		*why_r = "empty target";
		return 2;
	}
	return 1;
}

/* Parse the logical line p->logical; 0 done or reported, -1 OOM. */
static int
aliases_parse_logical(struct aliases_parse *p)
{
	struct alias		 al, *nl;
	struct alias_target	*nt;
	char			*s, *colon, *end, *v, *c;
	const char		*why;
	size_t			 tcap = 0, ncap;
	int			 r;

	s = p->logical;
	if ((colon = strchr(s, ':')) == NULL) {
		diag_report(p->d, p->file, p->lineno,
		    "missing ':' after alias name");
		return 0;
	}
	*colon = '\0';
	for (end = colon; end > s && (end[-1] == ' ' || end[-1] == '\t');)
		end--;
	*end = '\0';
	if (s[0] == '\0') {
		diag_report(p->d, p->file, p->lineno, "empty alias name");
		return 0;
	}
	if (!aliases_name_valid(s)) {
		diag_report(p->d, p->file, p->lineno,
		    "invalid alias name \"%.64s\"", s);
		return 0;
	}
	memset(&al, 0, sizeof(al));
	al.lineno = p->lineno;
	if ((al.name = strdup(s)) == NULL)
		return -1;
	for (c = al.name; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	s = colon + 1;
	while ((r = aliases_target_next(&s, &v, &why)) == 1) {
		if (al.ntargets == ALIASES_TARGETS_MAX) {
			free(v);
			diag_report(p->d, p->file, p->lineno,
			    "too many targets (max %d)", ALIASES_TARGETS_MAX);
			goto skip;
		}
		if (al.ntargets == tcap) {
			tcap = tcap ? tcap * 2 : 4;
			nt = reallocarray(al.targets, tcap, sizeof(*nt));
			if (nt == NULL) {
				free(v);
				goto oom;
			}
			al.targets = nt;
		}
		al.targets[al.ntargets].value = v;
		if ((why = aliases_target_classify(&al.targets[al.ntargets]))
		    != NULL) {
			diag_report(p->d, p->file, p->lineno,
			    "%s \"%.64s\"", why, v);
			free(v);
			goto skip;
		}
		al.ntargets++;
	}
	if (r == -1)
		goto oom;
	if (r == 2) {
		free(v);
		diag_report(p->d, p->file, p->lineno, "%s", why);
		goto skip;
	}
	if (al.ntargets == 0) {
		diag_report(p->d, p->file, p->lineno, "no targets for \"%s\"",
		    al.name);
		goto skip;
	}
	if (p->a->n == p->cap) {
		ncap = p->cap ? p->cap * 2 : 16;
		if ((nl = reallocarray(p->a->list, ncap, sizeof(*nl))) == NULL)
			goto oom;
		p->a->list = nl;
		p->cap = ncap;
	}
	p->a->list[p->a->n++] = al;
	return 0;
skip:
	aliases_alias_free(&al);
	return 0;
oom:
	aliases_alias_free(&al);
	return -1;
}

static int
aliases_flush(struct aliases_parse *p)
{
	int	r = 0;

	if (p->lineno != 0 && !p->bad) {
		p->logical[p->len] = '\0';
		r = aliases_parse_logical(p);
	}
	p->lineno = 0;
	p->len = 0;
	p->bad = 0;
	return r;
}

/* One physical line (no NUL, within the limit); 0 or -1 on OOM. */
static int
aliases_parse_physical(struct aliases_parse *p, const char *s, size_t n,
    int lineno)
{
	size_t	i;
	int	cont;

	for (i = 0; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	/* Postfix: comment and blank lines do not end a logical line. */
	if (i == n || s[i] == '#')
		return 0;
	cont = i > 0;
	if (!cont && aliases_flush(p) == -1)
		return -1;
	if (cont && p->lineno == 0) {
		diag_report(p->d, p->file, lineno,
		    "continuation line without an alias");
		return 0;
	}
	if (!cont)
		p->lineno = lineno;
	if (p->bad)
		return 0;
	for (i = 0; i < n; i++) {
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') ||
		    s[i] == 0x7f) {
			diag_report(p->d, p->file, lineno,
			    "control character 0x%02x", (unsigned char)s[i]);
			p->bad = 1;
			return 0;
		}
	}
	if (p->len + n + 1 > ALIASES_LINE_MAX) {
		diag_report(p->d, p->file, p->lineno,
		    "alias too long (max %d bytes)", ALIASES_LINE_MAX);
		p->bad = 1;
		return 0;
	}
	if (cont)
		p->logical[p->len++] = ' ';
	memcpy(p->logical + p->len, s, n);
	p->len += n;
	return 0;
}

static int
aliases_cmp(const void *x, const void *y)
{
	const struct alias	*a = x, *b = y;
	int			 r;

	if ((r = strcmp(a->name, b->name)) != 0)
		return r;
	return (a->lineno > b->lineno) - (a->lineno < b->lineno);
}

/* Sort for aliases_find; report and drop all but the first of a name. */
static void
aliases_dedup(struct aliases_parse *p)
{
	struct aliases	*a = p->a;
	size_t		 i, j, first;

	if (a->n == 0)
		return;
	qsort(a->list, a->n, sizeof(a->list[0]), aliases_cmp);
	first = 0;
	for (i = 1, j = 1; i < a->n; i++) {
		if (strcmp(a->list[i].name, a->list[first].name) == 0) {
			diag_report(p->d, p->file, a->list[i].lineno,
			    "duplicate alias \"%s\", first on line %d",
			    a->list[i].name, a->list[first].lineno);
			aliases_alias_free(&a->list[i]);
			continue;
		}
		a->list[j] = a->list[i];
		first = j++;
	}
	a->n = j;
}

/*
 * Parse text into a (overwritten; free with aliases_free).  Returns 0,
 * or -1 with errno ENOMEM (a empty) or EFBIG (reported through d).
 */
int
aliases_parse(struct aliases *a, const char *name, const char *text,
    size_t len, struct diag *d)
{
	struct aliases_parse	 p;
	struct diag		 none = { NULL, NULL, 0 };
	const char		*s, *nl;
	size_t			 off, n;
	int			 lineno = 0;

	memset(a, 0, sizeof(*a));
	memset(&p, 0, sizeof(p));
	p.file = name;
	p.d = d != NULL ? d : &none;
	p.a = a;
	if (len > ALIASES_FILE_MAX) {
		diag_report(p.d, name, 0, "file too large (max %d bytes)",
		    ALIASES_FILE_MAX);
		errno = EFBIG;
		return -1;
	}
	if ((p.logical = malloc(ALIASES_LINE_MAX + 1)) == NULL)
		return -1;
	for (off = 0; off < len; off += n + (nl != NULL)) {
		lineno++;
		s = text + off;
		nl = memchr(s, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - s) : len - off;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n > ALIASES_LINE_MAX || memchr(s, '\0', n) != NULL) {
			/* Drop the whole alias this line belongs to. */
			if ((s[0] != ' ' && s[0] != '\t') &&
			    aliases_flush(&p) == -1)
				goto oom;
			if (n > ALIASES_LINE_MAX)
				diag_report(p.d, name, lineno,
				    "line too long (max %d bytes)",
				    ALIASES_LINE_MAX);
			else
				diag_report(p.d, name, lineno,
				    "NUL byte in line");
			if (p.lineno == 0)
				p.lineno = lineno;
			p.bad = 1;
			continue;
		}
		if (aliases_parse_physical(&p, s, n, lineno) == -1)
			goto oom;
	}
	if (aliases_flush(&p) == -1)
		goto oom;
	free(p.logical);
	aliases_dedup(&p);
	return 0;
oom:
	free(p.logical);
	aliases_free(a);
	errno = ENOMEM;
	return -1;
}

int
aliases_load(struct aliases *a, const char *path, struct diag *d,
    const char **error_r)
{
	struct buf	b;
	int		r;

	memset(a, 0, sizeof(*a));
	buf_init(&b, ALIASES_FILE_MAX);
	if (file_read_all(path, ALIASES_FILE_MAX, &b, error_r) == -1) {
		buf_free(&b);
		return -1;
	}
	r = aliases_parse(a, path, buf_cstr(&b), b.len, d);
	buf_free(&b);
	if (r == -1)
		*error_r = errno == EFBIG ? "file too large" : "out of memory";
	return r;
}

void
aliases_free(struct aliases *a)
{
	size_t	i;

	for (i = 0; i < a->n; i++)
		aliases_alias_free(&a->list[i]);
	free(a->list);
	memset(a, 0, sizeof(*a));
}

static int
aliases_find_cmp(const void *key, const void *elem)
{
	const struct alias	*al = elem;

	return strcasecmp(key, al->name);
}

const struct alias *
aliases_find(const struct aliases *a, const char *name)
{
	if (name == NULL || a->n == 0)
		return NULL;
	return bsearch(name, a->list, a->n, sizeof(a->list[0]),
	    aliases_find_cmp);
}

enum aliases_state {
	ALIASES_NEW,
	ALIASES_ON_PATH,	/* being expanded: reaching it stops there */
	ALIASES_DONE,		/* expanded: its results are already in */
};

struct aliases_exp {
	const struct aliases		 *a;
	unsigned char			 *state;
	const struct alias_target	**res;
	size_t				  nres;
	const char			 *error;
};

static int
aliases_result_add(struct aliases_exp *x, const struct alias_target *t)
{
	const struct alias_target	*r;
	size_t				 i;

	for (i = 0; i < x->nres; i++) {
		r = x->res[i];
		if (r->type != t->type)
			continue;
		if (t->type == ALIAS_LOCAL ?
		    strcasecmp(r->value, t->value) == 0 :
		    strcmp(r->value, t->value) == 0)
			return 0;
	}
	if (x->nres == ALIASES_TARGETS_MAX) {
		x->error = "alias expands to too many targets";
		return -1;
	}
	x->res[x->nres++] = t;
	return 0;
}

static int
aliases_expand_one(struct aliases_exp *x, const struct alias *al, int depth)
{
	const struct alias_target	*t;
	const struct alias		*sub;
	size_t				 i, k;

	if (depth > ALIASES_DEPTH_MAX) {
		x->error = "alias nesting too deep";
		return -1;
	}
	x->state[al - x->a->list] = ALIASES_ON_PATH;
	for (i = 0; i < al->ntargets; i++) {
		t = &al->targets[i];
		sub = t->type == ALIAS_LOCAL ? aliases_find(x->a, t->value) :
		    NULL;
		if (sub == NULL) {
			if (aliases_result_add(x, t) == -1)
				return -1;
			continue;
		}
		k = sub - x->a->list;
		if (x->state[k] == ALIASES_ON_PATH) {
			/* "bob: bob, backup": bob is a mailbox too. */
			if (aliases_result_add(x, t) == -1)
				return -1;
		} else if (x->state[k] == ALIASES_NEW) {
			if (aliases_expand_one(x, sub, depth + 1) == -1)
				return -1;
		}
	}
	x->state[al - x->a->list] = ALIASES_DONE;
	return 0;
}

/*
 * Collect every result first, so that fn sees nothing when the
 * expansion fails half way.
 */
int
aliases_expand(const struct aliases *a, const char *name,
    void (*fn)(void *ctx, const struct alias_target *t), void *ctx,
    const char **error_r)
{
	struct aliases_exp	 x;
	struct alias_target	 self;
	const struct alias	*al;
	size_t			 i;
	int			 r = -1;

	if (name == NULL || name[0] == '\0') {
		*error_r = "empty name";
		return -1;
	}
	if ((al = aliases_find(a, name)) == NULL) {
		self.type = ALIAS_LOCAL;
		if ((self.value = strdup(name)) == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		fn(ctx, &self);
		free(self.value);
		return 0;
	}
	memset(&x, 0, sizeof(x));
	x.a = a;
	x.state = calloc(a->n, 1);
	x.res = calloc(ALIASES_TARGETS_MAX, sizeof(*x.res));
	if (x.state == NULL || x.res == NULL) {
		*error_r = "out of memory";
		goto done;
	}
	if (aliases_expand_one(&x, al, 1) == -1) {
		*error_r = x.error;
		goto done;
	}
	for (i = 0; i < x.nres; i++)
		fn(ctx, x.res[i]);
	r = 0;
done:
	free(x.state);
	free(x.res);
	return r;
}
