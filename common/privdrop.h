/*
 * privdrop.h — enter a domain's root and give up root, in one order:
 * look up the account in DIR's own etc/passwd and etc/group (before the
 * chroot, without NSS) → chroot(DIR) → chdir("/") → setgroups →
 * setresgid → setresuid → check that root cannot be regained.
 *
 * Written once here; every process that serves a domain uses it.
 */
#ifndef VIRTMAIL_PRIVDROP_H
#define VIRTMAIL_PRIVDROP_H

#include <sys/types.h>

#include <linux/capability.h>

#include <stddef.h>
#include "fileio.h"
#include "group.h"
#include "passwd.h"

#define PRIV_GROUPS_MAX		64

struct priv_user {
	char	 name[64];
	uid_t	 uid;
	gid_t	 gid;
	gid_t	 groups[PRIV_GROUPS_MAX];	/* supplementary, primary first */
	size_t	 ngroups;
	char	 home[1024];			/* inside the root */
};

/*
 * Refuse a domain root that is not a directory, not owned by root, or
 * group- or world-writable.  0, or -1 with *error_r.
 */
int	priv_check_root(const char *dir, const char **error_r);
/*
 * Look user up in dir/etc/passwd (and dir/etc/group for supplementary
 * groups).  Refuses uid 0.  0, or -1 with *error_r.
 */
int	priv_lookup_user(const char *dir, const char *user,
	    struct priv_user *u, const char **error_r);
/*
 * The same for a process that looks users up again and again: the
 * files are read again only when their inode, size, mtime or ctime
 * changed.  dir must outlive db.
 */
struct priv_userdb {
	const char		*dir;
	struct passwd_file	 pw;
	struct group_file	 gr;
	int			 pw_loaded;
	enum { PRIV_GR_UNKNOWN, PRIV_GR_LOADED, PRIV_GR_ABSENT } gr_state;
	struct file_id		 pw_id, gr_id;
};
void	priv_userdb_init(struct priv_userdb *db, const char *dir);
int	priv_userdb_lookup(struct priv_userdb *db, const char *user,
	    struct priv_user *u, const char **error_r);
void	priv_userdb_free(struct priv_userdb *db);
/* Look up a group by name in dir/etc/group; 0, or -1 with *error_r. */
int	priv_lookup_group(const char *dir, const char *group, gid_t *gid_r,
	    const char **error_r);
/*
 * chroot(dir), chdir("/"), then priv_drop(u) when u is not NULL.
 * Checks the root first with priv_check_root.  0, or -1 with *error_r.
 */
int	priv_enter_root(const char *dir, const struct priv_user *u,
	    const char **error_r);
/*
 * setgroups, setresgid, setresuid to u, then verify that neither the
 * uid nor the gid can go back to 0.  0, or -1 with *error_r.
 */
int	priv_drop(const struct priv_user *u, const char **error_r);
/*
 * For a process that must stay root inside a root (the deliverers):
 * keep only the capabilities in keep (CAP_* numbers) in the bounding,
 * permitted and effective sets, none inheritable.  Whatever else made
 * root root (chroot, mknod, mount, ptrace, open_by_handle_at, ...) is
 * gone for good, for the process and its children.  0, or -1 with
 * *error_r.
 */
int	priv_limit_caps(const int *keep, size_t nkeep, const char **error_r);
/*
 * What writing mailboxes needs of root: become the user (SETUID,
 * SETGID), signal children that did (KILL), create an mbox for its
 * user and hold its dotlock in the spool (CHOWN, DAC_OVERRIDE).
 */
#define PRIV_CAPS_MAILBOX	{ CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_KILL, \
				  CAP_SETGID, CAP_SETUID }

/*
 * In a new child: keep only the n descriptors in fds (and 0-2), moved
 * to 3, 4, ... in their order (fds is updated; an entry of -1 stays -1),
 * and the log relay's if there is one (as 3 + n); close every other
 * with close_range, and connect to syslog again if that is where lines
 * go.  0, or -1 with *error_r.
 */
int	priv_keep_fds(int *fds, size_t n, const char **error_r);

#endif
