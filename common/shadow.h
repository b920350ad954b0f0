/*
 * shadow.h — a domain's etc/shadow, read from an explicit file.
 *
 * Nine colon-separated fields; numeric fields may be empty (-1 here).
 * Malformed lines are reported through struct diag and skipped.
 */
#ifndef VIRTMAIL_SHADOW_H
#define VIRTMAIL_SHADOW_H

#include <stddef.h>

#include "diag.h"

#define SHADOW_LINE_MAX		4096
#define SHADOW_FILE_MAX		(64 * 1024 * 1024)

struct shadow_entry {
	char	*name;
	char	*hash;		/* crypt(3) hash, or "!..."/"*" when locked */
	long	 lastchg;	/* days since epoch; -1 empty */
	long	 min, max, warn, inactive;
	long	 expire;	/* account expiry, days since epoch; -1 never */
};

struct shadow_file {
	struct shadow_entry	*entries;
	size_t			 n;
};

int	shadow_load(struct shadow_file *f, const char *path, struct diag *d,
	    const char **error_r);
/* The same from an open descriptor; name is used in messages. */
int	shadow_load_fd(struct shadow_file *f, int fd, const char *name,
	    struct diag *d, const char **error_r);
int	shadow_parse(struct shadow_file *f, const char *name,
	    const char *text, size_t len, struct diag *d);
/* Free, wiping the hashes first. */
void	shadow_free(struct shadow_file *f);
const struct shadow_entry *shadow_find(const struct shadow_file *f,
	    const char *name);
/* Whether the hash is a locked/disabled marker ("!", "*", "!hash", ""). */
int	shadow_hash_locked(const char *hash);
/* Whether the account has expired as of today (days since epoch). */
int	shadow_expired(const struct shadow_entry *e, long today);

#endif
