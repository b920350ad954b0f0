/*
 * test_pop3_spool.c — unit tests for the mbox spool's directory
 * operations (pop3d/spool.c): the spool is found inside the domain's
 * root only and refused when others may write it, the dotlock is
 * exclusive and a stale one is taken over, the rewrite's file gets the
 * user and the mailbox's mode, and it replaces the mailbox only while
 * it is still the file that was made.  Needs root (chown); without it
 * only the refusals are checked.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "fileio.h"
#include "pop3d.h"
#include "test.h"

#define UID	4321

static char	 root[128];

static const char *
p(const char *rel)
{
	static char	 bufs[2][PATH_MAX];	/* two per call, as rename's */
	static int	 k;
	char		*buf = bufs[k++ % 2];
	int		 n;

	n = snprintf(buf, PATH_MAX, "%s/%s", root, rel);
	if (n < 0 || n >= PATH_MAX)
		abort();
	return buf;
}

static void
write_file(const char *rel, const char *text, mode_t mode)
{
	int	 fd;

	fd = open(p(rel), O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd == -1 || write_all(fd, text, strlen(text)) == -1 ||
	    fchmod(fd, mode) == -1 || fchown(fd, UID, UID) == -1 ||
	    close(fd) == -1) {
		perror(rel);
		exit(1);
	}
}

static int
file_is(const char *rel, const char *text)
{
	char	 buf[256];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(p(rel), O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strcmp(buf, text) == 0;
}

static void
test_open(void)
{
	const char	*err = NULL;
	int		 fd;

	fd = spool_open(root, &err);
	CHECK(fd != -1, "spool_open: a root-owned 0755 spool");
	if (fd != -1)
		(void)close(fd);
	(void)chmod(p("var/spool/mail"), 0775);
	CHECK(spool_open(root, &err) == -1 && strstr(err, "not a directory "
	    "owned by root") != NULL, "spool_open: group-writable refused");
	(void)chmod(p("var/spool/mail"), 0755);
	/* A symlink resolves inside the root: not the host's /etc. */
	(void)rename(p("var/spool/mail"), p("var/spool/real"));
	CHECK(symlink("/etc", p("var/spool/mail")) == 0 &&
	    spool_open(root, &err) == -1,
	    "spool_open: a symlink to /etc stays inside the root");
	(void)unlink(p("var/spool/mail"));
	(void)rename(p("var/spool/real"), p("var/spool/mail"));
}

static void
test_dotlock(int sfd)
{
	struct timespec	 ts[2];
	struct stat	 st;

	CHECK(spool_dotlock(sfd, "bob") == 0, "dotlock: taken");
	CHECK(lstat(p("var/spool/mail/bob.lock"), &st) == 0 &&
	    st.st_uid == 0 && (st.st_mode & 0777) == 0600,
	    "dotlock: bob.lock, root's, 0600");
	CHECK(spool_dotlock(sfd, "bob") == 1, "dotlock: held, in use");
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - DELIVER_LOCK_STALE - 10;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	(void)utimensat(AT_FDCWD, p("var/spool/mail/bob.lock"), ts, 0);
	CHECK(spool_dotlock(sfd, "bob") == 0, "dotlock: a stale one taken "
	    "over");
	spool_dotlock_touch(sfd, "bob");
	CHECK(lstat(p("var/spool/mail/bob.lock"), &st) == 0 &&
	    st.st_mtime + 5 >= time(NULL), "dotlock: touch refreshes");
	spool_dotlock_release(sfd, "bob");
	CHECK(access(p("var/spool/mail/bob.lock"), F_OK) == -1,
	    "dotlock: released");
	CHECK(spool_dotlock(sfd, "../bob") == -1 &&
	    spool_dotlock(sfd, "") == -1, "dotlock: invalid names refused");
}

static void
test_tmp(int sfd)
{
	struct stat	 st;
	const char	*err = NULL;
	int		 fd;

	write_file("var/spool/mail/bob", "old\n", 0640);
	fd = spool_tmp_create(sfd, "bob", UID, UID, &err);
	CHECK(fd != -1 && fstat(fd, &st) == 0 && st.st_uid == UID &&
	    st.st_gid == UID && (st.st_mode & 0777) == 0640,
	    "tmp: the user's, with the mailbox's mode");
	CHECK(fd != -1 && write_all(fd, "new\n", 4) == 0, "tmp: written");
	CHECK(fd != -1 && spool_tmp_finish(sfd, "bob", fd, 1, &err) == 0 &&
	    file_is("var/spool/mail/bob", "new\n") &&
	    access(p("var/spool/mail/bob.pop3tmp"), F_OK) == -1,
	    "tmp: committed over the mailbox");
	if (fd != -1)
		(void)close(fd);

	fd = spool_tmp_create(sfd, "bob", UID, UID, &err);
	CHECK(fd != -1 && spool_tmp_finish(sfd, "bob", fd, 0, &err) == 0 &&
	    file_is("var/spool/mail/bob", "new\n") &&
	    access(p("var/spool/mail/bob.pop3tmp"), F_OK) == -1,
	    "tmp: dropped without commit, mailbox unchanged");
	if (fd != -1)
		(void)close(fd);

	/* Swapped for another file: never renamed over the mailbox. */
	fd = spool_tmp_create(sfd, "bob", UID, UID, &err);
	(void)rename(p("var/spool/mail/bob.pop3tmp"),
	    p("var/spool/mail/moved"));
	write_file("var/spool/mail/bob.pop3tmp", "evil\n", 0600);
	CHECK(fd != -1 && spool_tmp_finish(sfd, "bob", fd, 1, &err) == -1 &&
	    strstr(err, "no longer the file") != NULL &&
	    file_is("var/spool/mail/bob", "new\n"),
	    "tmp: a swapped file is refused");
	if (fd != -1)
		(void)close(fd);
}

int
main(void)
{
	const char	*err = NULL;
	char		 tmpl[] = "/tmp/test_pop3_spool.XXXXXX";
	char		 cmd[256];
	int		 sfd;

	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	(void)strlcpy(root, tmpl, sizeof(root));
	(void)chmod(root, 0755);
	if (mkdir(p("var"), 0755) == -1 || mkdir(p("var/spool"), 0755) == -1 ||
	    mkdir(p("var/spool/mail"), 0755) == -1) {
		perror("mkdir");
		return 1;
	}
	if (geteuid() != 0) {
		CHECK(spool_open(root, &err) == -1,
		    "spool_open: a spool not owned by root is refused");
		printf("# not root: the rest needs chown\n");
	} else {
		test_open();
		if ((sfd = spool_open(root, &err)) == -1) {
			printf("not ok - spool_open: %s\n", err);
			return 1;
		}
		test_dotlock(sfd);
		test_tmp(sfd);
		(void)close(sfd);
	}
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	return test_done();
}
