/*
 * deliver_spool.c — the deliverer's part of mbox delivery: the spool
 * directory of a domain, a missing mbox, and the dotlock.
 *
 * DESCRIPTION
 *	An mbox delivery is split in two.  Here, as root and outside the
 *	domain's root, the mbox delivery child of the deliverer opens
 *	var/spool/mail below the domain root's descriptor, creates a
 *	missing mailbox USER for the user and takes the dotlock
 *	USER.lock, waiting up to DELIVER_LOCK_WAIT seconds and breaking
 *	a lock older than DELIVER_LOCK_STALE.  Then a grandchild enters
 *	the root as the user, opens the mailbox itself (O_NOFOLLOW, a
 *	regular file with one link owned by the user), takes an fcntl()
 *	lock and appends (deliver_local.c).  The dotlock is removed here
 *	when the grandchild is done, killed or timed out.
 *
 * SECURITY
 *	Every operation goes through the spool directory's descriptor,
 *	which was opened with openat2(RESOLVE_IN_ROOT |
 *	RESOLVE_NO_MAGICLINKS) below an O_PATH descriptor of the domain's
 *	root (file_open_in_root) and refused
 *	unless it is a directory owned by root and writable by nobody
 *	else: no host path into the root is ever built, and no symlink a
 *	user plants leads root out of the spool.  Names are created only
 *	with O_CREAT | O_EXCL | O_NOFOLLOW; an existing mailbox is never
 *	opened here.  USER is a name checked by passwd_name_valid() and
 *	found in the domain's passwd by the caller.  The dotlock removed
 *	at the end is the one this process made (same device and inode).
 *	No group of the domain is involved: nothing inside the root needs
 *	to write the spool directory.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "fileio.h"
#include "passwd.h"
#include "runner.h"
#include "smtpd.h"

#define SPOOL_REL	"var/spool/mail"	/* DELIVER_MBOX_DIR, relative */

static char	 spool_errbuf[512];

int
deliver_spool_open(const char *dir, const char **error_r)
{
	struct stat	 st;
	int		 fd;

	fd = file_open_in_root(dir, SPOOL_REL, O_RDONLY | O_DIRECTORY);
	if (fd == -1) {
		(void)snprintf(spool_errbuf, sizeof(spool_errbuf),
		    "openat2(%s) in the domain's root failed: %s", SPOOL_REL,
		    strerror(errno));
		*error_r = spool_errbuf;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		(void)snprintf(spool_errbuf, sizeof(spool_errbuf),
		    "fstat(%s) failed: %s", SPOOL_REL, strerror(errno));
		*error_r = spool_errbuf;
		(void)close(fd);
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		(void)snprintf(spool_errbuf, sizeof(spool_errbuf),
		    "%s: not a directory owned by root and writable by root "
		    "alone", SPOOL_REL);
		*error_r = spool_errbuf;
		(void)close(fd);
		return -1;
	}
	return fd;
}

static void
spool_fail(struct deliver_res *res, const char *what, const char *name,
    int err)
{
	res->status = DELIVER_TEMPFAIL;
	if (err != 0)
		(void)snprintf(res->reason, sizeof(res->reason), "%s %s/%s: %s",
		    what, DELIVER_MBOX_DIR, name, strerror(err));
	else
		(void)snprintf(res->reason, sizeof(res->reason), "%s %s/%s",
		    what, DELIVER_MBOX_DIR, name);
}

/* Create user's missing mailbox, 0600, owned by uid:gid; 0 or -1. */
static int
spool_create(int spoolfd, const char *user, uid_t uid, gid_t gid,
    struct deliver_res *res)
{
	int	 fd, save;

	fd = openat(spoolfd, user, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY, 0600);
	if (fd == -1 && errno == EEXIST)
		return 0;	/* the user's side checks what it is */
	if (fd == -1) {
		spool_fail(res, "create mailbox", user, errno);
		return -1;
	}
	/* Mode first: once it is the user's, root (no CAP_FOWNER) can't. */
	if (fchmod(fd, 0600) == -1 || fchown(fd, uid, gid) == -1 ||
	    fsync(fd) == -1) {
		save = errno;
		(void)close(fd);
		(void)unlinkat(spoolfd, user, 0);
		spool_fail(res, "create mailbox", user, save);
		return -1;
	}
	if (close(fd) == -1 || fsync(spoolfd) == -1) {
		spool_fail(res, "create mailbox", user, errno);
		return -1;
	}
	return 0;
}

int
deliver_spool_lock(int spoolfd, const char *user, uid_t uid, gid_t gid,
    struct stat *lock_r, struct deliver_res *res)
{
	struct stat	 st;
	char		 lock[PASSWD_NAME_MAX + 8], pid[32];
	time_t		 deadline;
	int		 fd, n;

	if (!passwd_name_valid(user) ||
	    snprintf(lock, sizeof(lock), "%s.lock", user) >=
	    (int)sizeof(lock)) {
		spool_fail(res, "bad mailbox name", "?", 0);
		res->status = DELIVER_PERMFAIL;
		return -1;
	}
	if (spool_create(spoolfd, user, uid, gid, res) == -1)
		return -1;
	deadline = time(NULL) + DELIVER_LOCK_WAIT;
	for (;;) {
		fd = openat(spoolfd, lock, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd != -1)
			break;
		if (errno != EEXIST) {
			spool_fail(res, "dotlock", lock, errno);
			return -1;
		}
		if (fstatat(spoolfd, lock, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime + DELIVER_LOCK_STALE < time(NULL)) {
			(void)unlinkat(spoolfd, lock, 0);	/* stale */
			continue;
		}
		if (time(NULL) >= deadline) {
			spool_fail(res, "mailbox is locked:", lock, 0);
			return -1;
		}
		(void)usleep(100 * 1000);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (fstat(fd, lock_r) == -1 || write_all(fd, pid, (size_t)n) == -1) {
		spool_fail(res, "dotlock", lock, errno);
		(void)close(fd);
		(void)unlinkat(spoolfd, lock, 0);
		return -1;
	}
	(void)close(fd);
	return 0;
}

void
deliver_spool_unlock(int spoolfd, const char *user, const struct stat *held)
{
	struct stat	 st;
	char		 lock[PASSWD_NAME_MAX + 8];

	if (snprintf(lock, sizeof(lock), "%s.lock", user) >=
	    (int)sizeof(lock))
		return;
	/* Only our own: one broken as stale meanwhile is another's now. */
	if (fstatat(spoolfd, lock, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == held->st_dev && st.st_ino == held->st_ino)
		(void)unlinkat(spoolfd, lock, 0);
}
