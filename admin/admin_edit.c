/*
 * admin_edit.c — how virtmail changes a file: under a lock, by writing
 * the whole new text to a temporary file, fsync, rename over the old
 * one, fsync the directory.  A reader (or a crash) sees the old file or
 * the new one, never a mix.  Also the name checks every subcommand
 * shares, and the reload signal to the running daemons.
 *
 * SECURITY
 *	Runs as root on the host.  The files edited here (virtual.conf, a
 *	domain's etc/passwd, etc/shadow, etc/group, etc/aliases) live in
 *	root-owned directories; a domain's etc/ that is a symlink, not a
 *	directory or not root's is refused, and files are opened with
 *	O_NOFOLLOW, so no domain process can point an edit elsewhere.
 *
 * CHOICES
 *	The lock is fcntl(F_SETLKW) on a separate file: virtual.conf.lock
 *	next to virtual.conf, and a domain's etc/.pwd.lock, the file
 *	lckpwdf(3) uses, so tools run inside the domain (virtmail exec
 *	DOMAIN passwd) and virtmail exclude each other.  The lock goes
 *	when the process ends, so a killed virtmail leaves none behind.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "fileio.h"
#include "pidfile.h"
#include "virtmail.h"

#define ADMIN_FILE_MAX	(64 * 1024 * 1024)

int
admin_path(char *dst, size_t size, const char *dir, const char *rel)
{
	int	 n;

	n = snprintf(dst, size, "%s/%s", dir, rel);
	if (n < 0 || (size_t)n >= size) {
		admin_warnx("%s/%s: path too long", dir, rel);
		return -1;
	}
	return 0;
}

int
admin_lock(const char *path)
{
	struct flock	 fl;
	int		 fd;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLKW, &fl) == -1) {
		if (errno == EINTR)
			continue;
		admin_warnx("%s: lock: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	return fd;
}

void
admin_unlock(int fd)
{
	if (fd != -1)
		(void)close(fd);
}

int
admin_lock_domain(const char *dir)
{
	struct stat	 st;
	char		 path[PATH_MAX];

	if (admin_path(path, sizeof(path), dir, "etc") == -1)
		return -1;
	if (lstat(path, &st) == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		admin_warnx("%s: not a directory owned and writable only by "
		    "root; refusing to edit in it", path);
		return -1;
	}
	if (admin_path(path, sizeof(path), dir, "etc/.pwd.lock") == -1)
		return -1;
	return admin_lock(path);
}

int
admin_file_read(const char *path, struct buf *b, int missing_ok)
{
	struct stat	 st;
	const char	*err;

	buf_init(b, ADMIN_FILE_MAX + 1);
	if (lstat(path, &st) == -1) {
		if (errno == ENOENT && missing_ok) {
			if (buf_append(b, "", 1) == -1)
				return -1;
			b->len = 0;
			return 0;
		}
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		admin_warnx("%s: not a regular file", path);
		return -1;
	}
	if (file_read_all(path, ADMIN_FILE_MAX, b, &err) == -1) {
		admin_warnx("%s: %s", path, err);
		buf_free(b);
		return -1;
	}
	if (memchr(b->data, '\0', b->len) != NULL) {
		admin_warnx("%s: contains a NUL byte", path);
		buf_free(b);
		return -1;
	}
	/* A text that ends in a newline, NUL-terminated (not counted). */
	if (b->len > 0 && b->data[b->len - 1] != '\n' &&
	    buf_append(b, "\n", 1) == -1) {
		buf_free(b);
		return -1;
	}
	if (buf_append(b, "", 1) == -1) {
		buf_free(b);
		return -1;
	}
	b->len--;
	return 0;
}

int
admin_file_replace(const char *path, const char *data, size_t len,
    mode_t mode)
{
	struct stat	 st;
	uid_t		 uid = 0;
	gid_t		 gid = 0;

	/* An existing file keeps its mode and owner. */
	if (lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			admin_warnx("%s: not a regular file", path);
			return -1;
		}
		mode = st.st_mode & 07777;
		uid = st.st_uid;
		gid = st.st_gid;
	}
	if (file_write_atomic(path, data, len, mode) == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	if ((uid != 0 || gid != 0) && lchown(path, uid, gid) == -1) {
		admin_warnx("%s: chown: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
admin_dns_name_valid(const char *name)
{
	size_t	 i, label = 0;
	char	 c;

	if (name == NULL || name[0] == '\0' || name[0] == '.' ||
	    strlen(name) > 253)
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		c = name[i];
		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && name[i - 1] != '-';
}

int
admin_ip_canon(const char *text, char *dst, size_t size)
{
	unsigned char	 a[sizeof(struct in6_addr)];
	int		 fam;

	fam = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(fam, text, a) != 1)
		return -1;
	return inet_ntop(fam, a, dst, (socklen_t)size) == NULL ? -1 : 0;
}

static const char *const admin_daemons[ADMIN_DAEMONS] = {
	"virtmail-smtpd", "virtmail-pop3d"
};

size_t
admin_daemon_pids(const struct admin_opts *o, pid_t pids[ADMIN_DAEMONS])
{
	char	 path[PATH_MAX];
	size_t	 i;
	int	 n;

	for (i = 0; i < ADMIN_DAEMONS; i++) {
		pids[i] = -1;
		n = snprintf(path, sizeof(path), "%s/%s.pid", o->run_dir,
		    admin_daemons[i]);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		pids[i] = pidfile_read(path, admin_daemons[i]);
	}
	return ADMIN_DAEMONS;
}

void
admin_reload(const struct admin_opts *o)
{
	pid_t	 pids[ADMIN_DAEMONS];
	size_t	 i;

	(void)admin_daemon_pids(o, pids);
	for (i = 0; i < ADMIN_DAEMONS; i++) {
		if (pids[i] == -1) {
			if (o->verbose)
				printf("%s: not running (no live pid in "
				    "%s/%s.pid)\n", admin_daemons[i],
				    o->run_dir, admin_daemons[i]);
			continue;
		}
		if (kill(pids[i], SIGHUP) == -1)
			admin_warnx("%s: kill %ld: %s", admin_daemons[i],
			    (long)pids[i], strerror(errno));
		else
			printf("%s: reloading (pid %ld)\n", admin_daemons[i],
			    (long)pids[i]);
	}
}
