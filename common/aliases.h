/*
 * aliases.h — a domain's etc/aliases.
 *
 * "name: target, target, ..." with continuation lines that start with
 * a space or tab, '#' comments.  Targets are local names, addresses
 * (user@domain), or "|command" / "/file" / ":include:", which are
 * parsed and marked but which delivery refuses (not supported).  Names
 * are matched case-insensitively.  Expansion follows aliases recursively
 * with a depth limit and loop detection.
 */
#ifndef VIRTMAIL_ALIASES_H
#define VIRTMAIL_ALIASES_H

#include <stddef.h>

#include "diag.h"

#define ALIASES_LINE_MAX	65536	/* a logical line, continuations joined */
#define ALIASES_FILE_MAX	(64 * 1024 * 1024)
#define ALIASES_TARGETS_MAX	1000	/* targets of one alias */
#define ALIASES_DEPTH_MAX	10

enum alias_target_type {
	ALIAS_LOCAL,		/* a local user name (or another alias) */
	ALIAS_ADDRESS,		/* user@domain */
	ALIAS_COMMAND,		/* |command — refused by delivery */
	ALIAS_FILE,		/* /path — refused by delivery */
	ALIAS_INCLUDE,		/* :include:/path — refused by delivery */
};

struct alias_target {
	enum alias_target_type	 type;
	char			*value;
};

struct alias {
	char			*name;	/* lower case */
	struct alias_target	*targets;
	size_t			 ntargets;
	int			 lineno;
};

struct aliases {
	struct alias	*list;
	size_t		 n;
};

int	aliases_load(struct aliases *a, const char *path, struct diag *d,
	    const char **error_r);
int	aliases_parse(struct aliases *a, const char *name, const char *text,
	    size_t len, struct diag *d);
void	aliases_free(struct aliases *a);
const struct alias *aliases_find(const struct aliases *a, const char *name);

/*
 * Expand name recursively.  Calls fn for every final target (a local
 * name that is not an alias, or any non-local target); a name that
 * reaches itself stops at itself ("bob: bob, backup" delivers to bob).
 * Returns 0, or -1 with *error_r on a loop deeper than
 * ALIASES_DEPTH_MAX or more than ALIASES_TARGETS_MAX results.
 */
int	aliases_expand(const struct aliases *a, const char *name,
	    void (*fn)(void *ctx, const struct alias_target *t), void *ctx,
	    const char **error_r);

#endif
