/*
 * passwd.h — a domain's etc/passwd, read from an explicit file (never
 * through NSS, which would read the host's).
 *
 * Seven colon-separated fields.  Lines longer than PASSWD_LINE_MAX, with
 * the wrong field count, NUL or control bytes, a bad uid/gid or an empty
 * name are reported through struct diag and skipped.  Comments ('#')
 * and blank lines are allowed.  Lookups return the first entry.
 */
#ifndef VIRTMAIL_PASSWD_H
#define VIRTMAIL_PASSWD_H

#include <sys/types.h>

#include <stddef.h>

#include "diag.h"

#define PASSWD_LINE_MAX		4096
#define PASSWD_FILE_MAX		(64 * 1024 * 1024)
#define PASSWD_NAME_MAX		64

struct passwd_entry {
	char	*name;
	char	*passwd;
	uid_t	 uid;
	gid_t	 gid;
	char	*gecos;
	char	*dir;
	char	*shell;
	int	 lineno;	/* of its file, for messages */
};

struct passwd_file {
	struct passwd_entry	*entries;
	size_t			 n;
};

/* Load path; -1 with *error_r when unreadable, else 0 (bad lines via d). */
int	passwd_load(struct passwd_file *f, const char *path, struct diag *d,
	    const char **error_r);
/* The same from an open descriptor; name is used in messages. */
int	passwd_load_fd(struct passwd_file *f, int fd, const char *name,
	    struct diag *d, const char **error_r);
int	passwd_parse(struct passwd_file *f, const char *name,
	    const char *text, size_t len, struct diag *d);
void	passwd_free(struct passwd_file *f);
const struct passwd_entry *passwd_find(const struct passwd_file *f,
	    const char *name);
const struct passwd_entry *passwd_find_uid(const struct passwd_file *f,
	    uid_t uid);
/*
 * Whether name is acceptable as a user name: 1..PASSWD_NAME_MAX bytes of
 * [A-Za-z0-9._-], not starting with '-' or '.'.  Refuses '/', "..",
 * ':', control characters and everything else.
 */
int	passwd_name_valid(const char *name);

#endif
