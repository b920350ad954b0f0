/*
 * spool.c — the mbox spool's directory operations for a POP3 session:
 * the dotlock, the rewrite's temporary file and its rename over the
 * mailbox (the mbox spool scheme shared with smtpd delivery).
 *
 * SECURITY
 *	Runs in the auth step: root, outside every domain root, with only
 *	CAP_CHOWN of the file capabilities.  The spool directory is never
 *	named by a host path: spool_open() opens var/spool/mail with
 *	file_open_in_root (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
 *	from the domain root: a symlink planted inside the root resolves
 *	inside it), and refuses a spool that is not a
 *	directory owned by root and closed to group and others, so no
 *	user can add, remove or swap names in it.  Every later operation
 *	is relative to that descriptor, with O_NOFOLLOW / AT_SYMLINK_
 *	NOFOLLOW.  User names reach here only after the domain's passwd
 *	found them (passwd_name_valid: no '/', no dot names).  The mbox
 *	itself is never opened here: the user's session opens it, chrooted
 *	and as the user.
 *
 * DIAGNOSTICS
 *	Errors come back as whole strings for the caller to log.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "passwd.h"
#include "pop3d.h"

#define SPOOL_LOCK_WAIT_MS	1000	/* a delivery holds it briefly */

static char	 spool_errbuf[512];

static const char *
spool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
spool_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(spool_errbuf, sizeof(spool_errbuf), fmt, ap);
	va_end(ap);
	return spool_errbuf;
}

static int
spool_name(char *dst, size_t size, const char *user, const char *sfx)
{
	int	 n;

	if (!passwd_name_valid(user))
		return -1;
	n = snprintf(dst, size, "%s%s", user, sfx);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
spool_open(const char *dir, const char **error_r)
{
	struct stat	 st;
	int		 fd;

	if ((fd = file_open_in_root(dir, POP3_MBOX_DIR, O_RDONLY |
	    O_DIRECTORY)) == -1) {
		*error_r = spool_error("open %s inside %s: %s", POP3_MBOX_DIR,
		    dir, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		*error_r = spool_error("%s inside %s: not a directory owned by "
		    "root and closed to group and others", POP3_MBOX_DIR, dir);
		(void)close(fd);
		return -1;
	}
	return fd;
}

int
spool_dotlock(int sfd, const char *user)
{
	char		 lock[PASSWD_NAME_MAX + 16], pid[32];
	struct stat	 st;
	int		 fd, n, waited = 0;

	if (spool_name(lock, sizeof(lock), user, ".lock") == -1)
		return -1;
	for (;;) {
		fd = openat(sfd, lock, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1)
			break;
		if (errno != EEXIST)
			return -1;
		if (fstatat(sfd, lock, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime + DELIVER_LOCK_STALE < time(NULL)) {
			(void)unlinkat(sfd, lock, 0);
			continue;
		}
		if (waited >= SPOOL_LOCK_WAIT_MS)
			return 1;
		(void)usleep(50 * 1000);
		waited += 50;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	(void)write_all(fd, pid, (size_t)n);
	(void)close(fd);
	return 0;
}

void
spool_dotlock_touch(int sfd, const char *user)
{
	char	 lock[PASSWD_NAME_MAX + 16];

	if (spool_name(lock, sizeof(lock), user, ".lock") == 0)
		(void)utimensat(sfd, lock, NULL, AT_SYMLINK_NOFOLLOW);
}

void
spool_dotlock_release(int sfd, const char *user)
{
	char	 lock[PASSWD_NAME_MAX + 16];

	if (spool_name(lock, sizeof(lock), user, ".lock") == 0)
		(void)unlinkat(sfd, lock, 0);
}

int
spool_tmp_create(int sfd, const char *user, uid_t uid, gid_t gid,
    const char **error_r)
{
	char		 tmp[PASSWD_NAME_MAX + 16];
	struct stat	 st;
	mode_t		 mode = 0600;
	int		 fd;

	if (spool_name(tmp, sizeof(tmp), user, ".pop3tmp") == -1) {
		*error_r = "invalid user name";
		return -1;
	}
	/* The mode of the mailbox it will replace, when that is the user's. */
	if (fstatat(sfd, user, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_uid == uid)
		mode = st.st_mode & 0666;
	/* A leftover of a crash: ours to replace, we hold the lock. */
	(void)unlinkat(sfd, tmp, 0);
	fd = openat(sfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1) {
		*error_r = spool_error("openat %s/%s: %s", POP3_MBOX_DIR, tmp,
		    strerror(errno));
		return -1;
	}
	/* fchmod first: once the user owns it, root needs CAP_FOWNER. */
	if (fchmod(fd, mode) == -1 || fchown(fd, uid, gid) == -1) {
		*error_r = spool_error("fchown/fchmod %s/%s: %s", POP3_MBOX_DIR,
		    tmp, strerror(errno));
		(void)unlinkat(sfd, tmp, 0);
		(void)close(fd);
		return -1;
	}
	return fd;
}

/* Whether the name tmp in sfd is still the file tmpfd refers to. */
static int
spool_tmp_same(int sfd, const char *tmp, int tmpfd)
{
	struct stat	 a, b;

	return fstat(tmpfd, &a) == 0 &&
	    fstatat(sfd, tmp, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(b.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int
spool_tmp_finish(int sfd, const char *user, int tmpfd, int commit,
    const char **error_r)
{
	char	 tmp[PASSWD_NAME_MAX + 16];
	int	 rv = 0;

	if (spool_name(tmp, sizeof(tmp), user, ".pop3tmp") == -1) {
		*error_r = "invalid user name";
		return -1;
	}
	if (!spool_tmp_same(sfd, tmp, tmpfd)) {
		*error_r = spool_error("%s/%s is no longer the file made for "
		    "this session; mailbox unchanged", POP3_MBOX_DIR, tmp);
		return -1;
	}
	if (!commit)
		return unlinkat(sfd, tmp, 0) == -1 && errno != ENOENT ? -1 : 0;
	if (renameat(sfd, tmp, sfd, user) == -1) {
		*error_r = spool_error("rename %s/%s: %s", POP3_MBOX_DIR, tmp,
		    strerror(errno));
		rv = -1;
	} else if (fsync(sfd) == -1) {
		*error_r = spool_error("fsync %s: %s", POP3_MBOX_DIR,
		    strerror(errno));
		rv = -1;
	}
	return rv;
}
