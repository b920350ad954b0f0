/*
 * group.h — a domain's etc/group, read from an explicit file.
 * Four fields: name, password, gid, comma-separated members.
 */
#ifndef VIRTMAIL_GROUP_H
#define VIRTMAIL_GROUP_H

#include <sys/types.h>

#include <stddef.h>

#include "diag.h"

#define GROUP_LINE_MAX		65536
#define GROUP_FILE_MAX		(64 * 1024 * 1024)
#define GROUP_MEMBERS_MAX	65536

struct group_entry {
	char	*name;
	gid_t	 gid;
	char	**members;	/* NULL-terminated */
	size_t	 nmembers;
	int	 lineno;	/* of its file, for messages */
};

struct group_file {
	struct group_entry	*entries;
	size_t			 n;
};

int	group_load(struct group_file *f, const char *path, struct diag *d,
	    const char **error_r);
/* The same from an open descriptor; name is used in messages. */
int	group_load_fd(struct group_file *f, int fd, const char *name,
	    struct diag *d, const char **error_r);
int	group_parse(struct group_file *f, const char *name,
	    const char *text, size_t len, struct diag *d);
void	group_free(struct group_file *f);
const struct group_entry *group_find(const struct group_file *f,
	    const char *name);
/*
 * Supplementary gids of user (every group listing it as a member) plus
 * primary, at most max; returns the count written to gids.
 */
size_t	group_list_for(const struct group_file *f, const char *user,
	    gid_t primary, gid_t *gids, size_t max);

#endif
