/*
 * config.h — "key value" configuration files, declared by tables.
 *
 * Each program declares its keys once in a table (name, type, default,
 * limits), sorted by name.  conf_load() reads a file against the table:
 * '#' comments and blank lines are ignored, a key and its value are
 * separated by spaces or tabs, the value runs to the end of the line
 * (trailing blanks dropped).  Unknown keys, bad values and repeated
 * single-valued keys are reported as "file:line: message" through a
 * struct diag, all of them, and the load fails.
 *
 * Values: CONF_STR (any text), CONF_INT (decimal in [min,max]),
 * CONF_SIZE ("50M", "10k", "1G", plain bytes), CONF_DURATION ("30s",
 * "5m", "2h", "5d", "1w", plain seconds), CONF_BOOL (yes/no, on/off,
 * true/false, 1/0), CONF_LIST (words split on spaces and commas),
 * CONF_MULTI (the key may repeat; every line's value is kept in order).
 */
#ifndef VIRTMAIL_CONFIG_H
#define VIRTMAIL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

enum conf_type {
	CONF_STR,
	CONF_INT,
	CONF_SIZE,
	CONF_DURATION,
	CONF_BOOL,
	CONF_LIST,
	CONF_MULTI,
};

struct conf_key {
	const char	*name;
	enum conf_type	 type;
	const char	*def;		/* default as text; NULL = unset */
	long long	 min, max;	/* INT, SIZE, DURATION bounds; 0,0 = any */
};

struct conf_value {
	const char	*key;		/* points into the table */
	char		*text;		/* as written (or the default) */
	int		 lineno;	/* 0 for a default */
	int		 set;		/* 1 when given in the file */
	long long	 num;		/* INT, SIZE (bytes), DURATION (s), BOOL */
	char		**list;		/* LIST words / MULTI values, NULL-ended */
	size_t		 nlist;
};

struct conf {
	const struct conf_key	*table;
	size_t			 nkeys;
	struct conf_value	*values;	/* one per table key */
	char			*path;
};

/*
 * Load path against table (nkeys entries, sorted by name).  A missing
 * file is fine when missing_ok (defaults apply).  Returns 0, or -1 when
 * any problem was reported through d or the file could not be read.
 */
int	conf_load(struct conf *c, const struct conf_key *table, size_t nkeys,
	    const char *path, int missing_ok, struct diag *d);
/* The same on text already in memory; name is used in messages. */
int	conf_parse(struct conf *c, const struct conf_key *table, size_t nkeys,
	    const char *name, const char *text, size_t len, struct diag *d);
/* Release everything conf_load allocated. */
void	conf_free(struct conf *c);

/* The value of key (which must be in the table), or NULL when unset. */
const struct conf_value *conf_get(const struct conf *c, const char *key);
/* Typed getters; key must be in the table with that type. */
const char	*conf_str(const struct conf *c, const char *key);
long long	 conf_int(const struct conf *c, const char *key);
int		 conf_bool(const struct conf *c, const char *key);
/* LIST and MULTI: a NULL-terminated array (never NULL), count in *n_r. */
char * const	*conf_list(const struct conf *c, const char *key, size_t *n_r);
/* Whether the key was given in the file. */
int		 conf_isset(const struct conf *c, const char *key);

/* Value parsers, also used by the loader.  0, or -1 with *error_r. */
int	conf_parse_size(const char *s, uint64_t *bytes_r, const char **error_r);
int	conf_parse_duration(const char *s, uint64_t *seconds_r,
	    const char **error_r);
int	conf_parse_bool(const char *s, int *bool_r, const char **error_r);

#endif
