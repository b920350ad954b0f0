/*
 * pickup.c — the queue runner's pickup: turns the files virtmail-postdrop
 * leaves in QUEUE_DIR/drop (for virtmail-sendmail) into normal queued
 * messages.
 *
 * SECURITY
 *	Runs in the domain's queue runner: chrooted into the domain's root
 *	as its run_as account, which must be a member of the domain's
 *	group virtmail-drop.  The drop directory is run_as:virtmail-drop,
 *	mode 1730: only the setgid virtmail-postdrop (and root) can create
 *	files there, nobody but run_as can list or read it, and the sticky
 *	bit keeps one user from removing another's file.  The queue directory
 *	above it becomes run_as:virtmail-drop 0710 so postdrop can
 *	reach drop/ and nothing else (tmp/, msg/, env/, hold/ stay 0700).
 *
 *	A drop file is hostile input from a local user.  It is opened
 *	without following links and without blocking, and taken only when
 *	it is a regular file with one link (no hard link to a file of the
 *	runner's), group virtmail-drop (so it was made through
 *	postdrop or by root) and within the size limit.  Its envelope is
 *	parsed strictly (drop.c), the message must hold no NUL byte and
 *	fit max_message_size.  The submitting uid is the file's owner as
 *	the kernel recorded it, never a claim from the file; it goes into
 *	our Received: line and the log.
 *
 *	Exactly-once: the drop file is removed only after the queued copy
 *	is committed (fsynced), so a crash loses nothing.  XXX: a crash
 *	between the commit and the unlink queues the message twice.
 */

#include <sys/types.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "log.h"
#include "privdrop.h"
#include "queue.h"
#include "smtpd.h"

static struct {
	int	 enabled;
	gid_t	 gid;		/* virtmail-drop */
} P;

static int
pickup_member(gid_t gid)
{
	gid_t	 groups[PRIV_GROUPS_MAX * 2];
	int	 n, i;

	if (getegid() == gid)
		return 1;
	if ((n = getgroups(PRIV_GROUPS_MAX * 2, groups)) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/* Give a directory we own group gid and mode; refuse anything else. */
static int
pickup_fix_dir(const char *path, gid_t gid, mode_t mode)
{
	struct stat	 st;
	int		 fd, r = -1;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		log_warn("pickup: %s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || st.st_uid != geteuid()) {
		log_warnx("pickup: %s is not owned by the runner", path);
		goto out;
	}
	if ((st.st_gid != gid && fchown(fd, (uid_t)-1, gid) == -1) ||
	    ((st.st_mode & 07777) != mode && fchmod(fd, mode) == -1)) {
		log_warn("pickup: %s: set group and mode", path);
		goto out;
	}
	r = 0;
 out:
	if (close(fd) == -1)
		r = -1;
	return r;
}

int
pickup_init(const struct smtpd_domain *sd, int ifd)
{
	const char	*err;
	gid_t		 gid;
	int		 wd;

	(void)sd;
	P.enabled = 0;
	if (priv_lookup_group("/", DROP_GROUP, &gid, &err) == -1) {
		log_warnx("pickup: local submission disabled: group %s: %s",
		    DROP_GROUP, err);
		return -1;
	}
	if (!pickup_member(gid)) {
		log_warnx("pickup: local submission disabled: run_as is not "
		    "a member of group %s", DROP_GROUP);
		return -1;
	}
	if (mkdir(DROP_DIR, 0700) == -1 && errno != EEXIST) {
		log_warn("pickup: local submission disabled: %s", DROP_DIR);
		return -1;
	}
	if (pickup_fix_dir(DROP_DIR, gid, 01730) == -1 ||
	    pickup_fix_dir(QUEUE_DIR, gid, 0710) == -1 ||
	    file_fsync_dir(QUEUE_DIR) == -1) {
		log_warnx("pickup: local submission disabled");
		return -1;
	}
	if ((wd = inotify_add_watch(ifd, DROP_DIR, IN_MOVED_TO |
	    IN_CLOSE_WRITE)) == -1) {
		log_warn("pickup: inotify on %s", DROP_DIR);
		wd = -1;	/* still picked up at each rescan */
	}
	P.gid = gid;
	P.enabled = 1;
	return wd;
}

int
pickup_convert(const struct smtpd_domain *sd, const char *data, size_t len,
    uid_t uid, char id_r[QUEUE_ID_LEN + 1], const char **error_r)
{
	struct drop_env		 de;
	struct queue_writer	 w;
	struct queue_env	 e;
	struct buf		 rcv;
	struct tm		 tm;
	const char		*msg;
	char			 date[64];
	time_t			 now;
	size_t			 off, mlen, i;
	int			 r = -1;

	if (drop_parse(data, len, &de, &off, error_r) == -1)
		return -2;
	msg = data + off;
	mlen = len - off;
	if (memchr(msg, '\0', mlen) != NULL) {
		*error_r = "message contains NUL bytes";
		drop_env_free(&de);
		return -2;
	}
	if (sd->limits.message_size_max > 0 &&
	    mlen > sd->limits.message_size_max) {
		*error_r = "message too large";
		drop_env_free(&de);
		return -2;
	}
	memset(&e, 0, sizeof(e));
	buf_init(&rcv, 4096);
	if (queue_writer_open(&w, QUEUE_DIR, error_r) == -1) {
		drop_env_free(&de);
		return -1;
	}
	now = time(NULL);
	if (localtime_r(&now, &tm) == NULL || strftime(date, sizeof(date),
	    "%a, %d %b %Y %H:%M:%S %z", &tm) == 0 ||
	    buf_printf(&rcv, "Received: from local user %lu\n\tby %s "
	    "(virtmail-sendmail) id %s;\n\t%s\n", (unsigned long)uid,
	    sd->hostname, w.id, date) == -1) {
		*error_r = "cannot format Received:";
		goto fail;
	}
	if (queue_writer_write(&w, rcv.data, rcv.len) == -1 ||
	    queue_writer_write(&w, msg, mlen) == -1) {
		*error_r = "cannot write queue file";
		goto fail;
	}
	e.sender = de.sender;
	e.helo = (char *)(uintptr_t)"localhost";
	e.client_addr = (char *)(uintptr_t)"";
	e.created = now;
	for (i = 0; i < mlen; i++)
		if ((unsigned char)msg[i] >= 0x80) {
			e.flags |= QUEUE_F_8BITMIME;
			break;
		}
	for (i = 0; i < de.nrcpts; i++)
		if (queue_env_add_rcpt(&e, de.rcpts[i], NULL) == -1) {
			*error_r = "cannot add recipient";
			goto fail;
		}
	if (queue_writer_commit(&w, QUEUE_DIR, &e, error_r) == -1)
		goto done;
	memcpy(id_r, w.id, QUEUE_ID_LEN + 1);
	r = 0;
	goto done;
 fail:
	queue_writer_abort(&w);
 done:
	e.sender = NULL;
	e.helo = NULL;
	e.client_addr = NULL;
	queue_env_free(&e);
	drop_env_free(&de);
	buf_free(&rcv);
	return r;
}

static void
pickup_file(const struct smtpd_domain *sd, int dfd, const char *name)
{
	struct stat	 st;
	struct buf	 b;
	const char	*err = NULL;
	char		 chunk[65536], id[QUEUE_ID_LEN + 1], ebuf[128];
	uint64_t	 max;
	ssize_t		 n;
	long		 owner = -1;
	int		 fd, r, drop = 1;

	max = (sd->limits.message_size_max > 0 ?
	    sd->limits.message_size_max : (uint64_t)50 * 1024 * 1024) +
	    DROP_ENV_MAX + 4096;
	buf_init(&b, (size_t)max);
	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT) {
			buf_free(&b);
			return;		/* already taken */
		}
		(void)snprintf(ebuf, sizeof(ebuf), "cannot open: %s",
		    strerror(errno));
		err = ebuf;
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		err = "cannot stat";
		drop = 0;
		goto out;
	}
	owner = (long)st.st_uid;
	if (!S_ISREG(st.st_mode)) {
		err = "not a regular file";
		goto out;
	}
	if (st.st_nlink != 1) {
		err = "has more than one link";
		goto out;
	}
	if (st.st_gid != P.gid) {
		err = "not made by virtmail-sendmail (wrong group)";
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		err = "too large";
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err = "read error";
			drop = 0;
			goto out;
		}
		if (n == 0)
			break;
		if (buf_append(&b, chunk, (size_t)n) == -1) {
			err = "too large";
			goto out;
		}
	}
	(void)close(fd);
	fd = -1;
	r = pickup_convert(sd, b.data != NULL ? b.data : "", b.len,
	    st.st_uid, id, &err);
	if (r == -1) {
		drop = 0;
		goto out;
	}
	if (r == 0) {
		log_info("%s pickup uid=%lu file=%s size=%zu", id,
		    (unsigned long)st.st_uid, name, b.len);
		err = NULL;
	}
 out:
	if (fd != -1)
		(void)close(fd);
	if (err != NULL)
		log_warnx("pickup: %s uid=%ld: %s%s", name, owner, err,
		    drop ? "; removed" : "; will retry");
	if (drop) {
		if (unlinkat(dfd, name, 0) == -1 && errno != ENOENT)
			log_warn("pickup: remove %s", name);
		else if (fsync(dfd) == -1)
			log_warn("pickup: fsync %s", DROP_DIR);
	}
	buf_free(&b);
}

void
pickup_scan(const struct smtpd_domain *sd)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*dir;
	time_t		 now;
	int		 dfd, lfd;

	if (!P.enabled)
		return;
	if ((dfd = open(DROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		log_warn("pickup: %s", DROP_DIR);
		return;
	}
	if ((lfd = dup(dfd)) == -1 || (dir = fdopendir(lfd)) == NULL) {
		log_warn("pickup: %s", DROP_DIR);
		if (lfd != -1)
			(void)close(lfd);
		(void)close(dfd);
		return;
	}
	now = time(NULL);
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (drop_name_valid(de->d_name, DROP_READY_PREFIX)) {
			pickup_file(sd, dfd, de->d_name);
			continue;
		}
		/* Unfinished or foreign files: removed once stale. */
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime + DROP_TMP_AGE < now) {
			if (unlinkat(dfd, de->d_name, 0) == 0)
				log_info("pickup: removed stale %s uid=%lu",
				    drop_name_valid(de->d_name,
				    DROP_TMP_PREFIX) ? de->d_name : "file",
				    (unsigned long)st.st_uid);
		}
	}
	(void)closedir(dir);
	(void)close(dfd);
}
