/*
 * confine.c — keep a root process outside a domain's root to that root's
 * files (Landlock).
 *
 * SECURITY
 *	The processes that must stay uid 0 (the deliverers, the SMTP AUTH
 *	service, the POP3 auth step) live outside every domain's root and
 *	keep few capabilities, but uid 0 still owns the host's files: a
 *	process taken over could write root's files by owner permission
 *	alone.  confine_to_root() asks the kernel to refuse, for the
 *	process and every child, any file access outside the domain's
 *	directory (reads and, unless asked for, writes inside it too), and
 *	signals and abstract sockets that leave the process's own tree.
 *	Landlock needs no privilege and cannot be undone.  A kernel
 *	without it (before 5.13, or Landlock not enabled) keeps the other
 *	defences: that is logged once, not fatal.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <linux/landlock.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "confine.h"
#include "log.h"

#define CONFINE_FS_V1	((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)

static char	 confine_err[256];

/* The file system rights the running kernel knows, by Landlock ABI. */
static uint64_t
confine_fs_known(int abi)
{
	uint64_t	 r = CONFINE_FS_V1;

	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= COMPAT_LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		r |= COMPAT_LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return r;
}

int
confine_to_root(const char *dir, int how, const char **error_r)
{
	struct compat_landlock_ruleset_attr ra;
	struct landlock_path_beneath_attr pb;
	uint64_t			 known, allow;
	int				 abi, rfd = -1, dfd = -1;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		log_debug("confine %s: Landlock not available (%s); other "
		    "defences only", dir, strerror(errno));
		return 0;
	}
	known = confine_fs_known(abi);
	memset(&ra, 0, sizeof(ra));
	ra.handled_access_fs = known;
	if (abi >= 6)
		ra.scoped = COMPAT_LANDLOCK_SCOPE_SIGNAL |
		    COMPAT_LANDLOCK_SCOPE_ABSTRACT_UNIX;
	allow = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	if (how & CONFINE_WRITE)
		allow = known & ~(uint64_t)(LANDLOCK_ACCESS_FS_EXECUTE |
		    LANDLOCK_ACCESS_FS_MAKE_CHAR |
		    LANDLOCK_ACCESS_FS_MAKE_BLOCK);
	memset(&pb, 0, sizeof(pb));
	pb.allowed_access = allow & known;
	if ((rfd = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof(ra),
	    0)) == -1) {
		(void)snprintf(confine_err, sizeof(confine_err),
		    "landlock_create_ruleset: %s", strerror(errno));
		goto fail;
	}
	if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		(void)snprintf(confine_err, sizeof(confine_err), "open %s: %s",
		    dir, strerror(errno));
		goto fail;
	}
	pb.parent_fd = dfd;
	if (syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH,
	    &pb, 0) == -1) {
		(void)snprintf(confine_err, sizeof(confine_err),
		    "landlock_add_rule %s: %s", dir, strerror(errno));
		goto fail;
	}
	/* Without it an unprivileged caller may not restrict itself. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    syscall(SYS_landlock_restrict_self, rfd, 0) == -1) {
		(void)snprintf(confine_err, sizeof(confine_err),
		    "landlock_restrict_self: %s", strerror(errno));
		goto fail;
	}
	(void)close(dfd);
	(void)close(rfd);
	return 0;

 fail:
	if (dfd != -1)
		(void)close(dfd);
	if (rfd != -1)
		(void)close(rfd);
	*error_r = confine_err;
	return -1;
}
