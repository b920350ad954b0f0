/*
 * test_privdrop.c — domain root checks, account lookup in the root's own
 * etc/passwd and etc/group, and the chroot and privilege drop itself.
 *
 * Needs root.  Each case runs in a forked child (a drop cannot be
 * undone) and reports through its exit status: 0 is a pass, any other
 * value names the step that failed.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privdrop.h"
#include "test.h"

#define UID_BOB		2001
#define GID_BOB		2001

static char	 root[64];		/* a good domain root */
static char	 outside[128];		/* a file outside it */
static const char *case_arg;		/* the running case's argument */

static const char passwd_text[] =
    "# a domain's users\n"
    "root:x:0:0:root:/root:/bin/sh\n"
    "vmail:x:2000:2000::/var/empty:/bin/false\n"
    "bob:x:2001:2001:Bob:/home/bob:/bin/sh\n"
    "zed:x:2005:0::/home/zed:/bin/sh\n"
    "wheely:x:2006:2006::/home/wheely:/bin/sh\n";

static const char group_text[] =
    "root:x:0:wheely\n"
    "vmail:x:2000:\n"
    "bob:x:2001:\n"
    "mail:x:2002:bob\n"
    "staff:x:2003:vmail,bob\n"
    "wheely:x:2006:\n";

static int
write_file(const char *path, const char *text, mode_t mode)
{
	size_t	 len = strlen(text);
	int	 fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)) == -1)
		return -1;
	if (write(fd, text, len) != (ssize_t)len) {
		(void)close(fd);
		return -1;
	}
	return close(fd);
}

/* A root with etc/passwd and etc/group, and a root-only secret inside. */
static int
make_root(char *dir, size_t size, int with_group)
{
	char	 p[256];

	if ((size_t)snprintf(dir, size, "/tmp/vmroot.XXXXXX") >= size)
		return -1;
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) == -1)
		return -1;
	(void)snprintf(p, sizeof(p), "%s/etc", dir);
	if (mkdir(p, 0755) == -1)
		return -1;
	(void)snprintf(p, sizeof(p), "%s/etc/passwd", dir);
	if (write_file(p, passwd_text, 0644) == -1)
		return -1;
	if (with_group) {
		(void)snprintf(p, sizeof(p), "%s/etc/group", dir);
		if (write_file(p, group_text, 0644) == -1)
			return -1;
	}
	(void)snprintf(p, sizeof(p), "%s/secret", dir);
	return write_file(p, "root only\n", 0600);
}

static void
remove_root(const char *dir)
{
	char	 p[256];

	(void)snprintf(p, sizeof(p), "%s/etc/passwd", dir);
	(void)unlink(p);
	(void)snprintf(p, sizeof(p), "%s/etc/group", dir);
	(void)unlink(p);
	(void)snprintf(p, sizeof(p), "%s/secret", dir);
	(void)unlink(p);
	(void)snprintf(p, sizeof(p), "%s/etc", dir);
	(void)rmdir(p);
	(void)rmdir(dir);
}

/* Run fn in a child; its return value comes back as the exit status. */
static int
run_child(int (*fn)(void), const char *arg)
{
	pid_t	 pid;
	int	 status;

	case_arg = arg;
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0)
		_exit(fn());
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status))
		return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return WEXITSTATUS(status);
}

static int
case_root_ok(void)
{
	const char	*err = NULL;

	return priv_check_root(root, &err) == 0 ? 0 : 1;
}

/*
 * Build a bad root by changing a fresh copy, and expect refusal;
 * case_arg says how.
 */
static int
case_bad_root(void)
{
	char		 dir[64], file[128];
	const char	*err = NULL;
	int		 how, rv = 0;

	how = case_arg[0] - '0';
	if (make_root(dir, sizeof(dir), 1) == -1)
		return 10;
	switch (how) {
	case 0:
		rv = chmod(dir, 0775);
		break;
	case 1:
		rv = chmod(dir, 0757);
		break;
	case 2:
		rv = chown(dir, 2000, 0);
		break;
	case 3:
		/* A file, not a directory. */
		(void)snprintf(file, sizeof(file), "%s/etc/passwd", dir);
		if (priv_check_root(file, &err) != -1 || err == NULL)
			rv = 12;
		remove_root(dir);
		return rv;
	case 4:
		(void)snprintf(file, sizeof(file), "%s/missing", dir);
		if (priv_check_root(file, &err) != -1 || err == NULL)
			rv = 12;
		remove_root(dir);
		return rv;
	}
	if (rv == -1) {
		remove_root(dir);
		return 11;
	}
	if (priv_check_root(dir, &err) != -1 || err == NULL)
		rv = 12;
	/* And nothing enters it. */
	else if (priv_enter_root(dir, NULL, &err) != -1)
		rv = 13;
	remove_root(dir);
	return rv;
}

static int
case_lookup_bob(void)
{
	struct priv_user	 u;
	const char		*err = NULL;

	if (priv_lookup_user(root, "bob", &u, &err) == -1)
		return 1;
	if (strcmp(u.name, "bob") != 0 || strcmp(u.home, "/home/bob") != 0)
		return 2;
	if (u.uid != UID_BOB || u.gid != GID_BOB)
		return 3;
	if (u.ngroups != 3 || u.groups[0] != GID_BOB ||
	    u.groups[1] != 2002 || u.groups[2] != 2003)
		return 4;
	return 0;
}

static int
expect_lookup_fails(const char *dir, const char *user)
{
	struct priv_user	 u;
	const char		*err = NULL;

	if (priv_lookup_user(dir, user, &u, &err) != -1)
		return 1;
	return err != NULL && *err != '\0' ? 0 : 2;
}

/* case_arg names the user that must not be found or accepted. */
static int
case_lookup_fails(void)
{
	return expect_lookup_fails(root, case_arg);
}

static int
case_no_passwd(void)
{
	char	 dir[64], p[128];
	int	 rv;

	if (make_root(dir, sizeof(dir), 1) == -1)
		return 10;
	(void)snprintf(p, sizeof(p), "%s/etc/passwd", dir);
	(void)unlink(p);
	rv = expect_lookup_fails(dir, "bob");
	remove_root(dir);
	return rv;
}

/* No etc/group: the primary group alone. */
static int
case_no_group_file(void)
{
	struct priv_user	 u;
	const char		*err = NULL;
	char			 dir[64];
	int			 rv = 0;

	if (make_root(dir, sizeof(dir), 0) == -1)
		return 10;
	if (priv_lookup_user(dir, "bob", &u, &err) == -1)
		rv = 1;
	else if (u.ngroups != 1 || u.groups[0] != GID_BOB)
		rv = 2;
	remove_root(dir);
	return rv;
}

/* Whether db finds bob with uid and ngroups groups. */
static int
userdb_has_bob(struct priv_userdb *db, uid_t uid, size_t ngroups)
{
	struct priv_user	 u;
	const char		*err = NULL;

	return priv_userdb_lookup(db, "bob", &u, &err) == 0 &&
	    u.uid == uid && u.ngroups == ngroups;
}

/*
 * A cached user database sees every change to etc/passwd and etc/group,
 * even one that keeps the size, and a file that goes away.
 */
static int
case_userdb_reload(void)
{
	struct priv_userdb	 db;
	struct priv_user	 u;
	const char		*err = NULL;
	char			 dir[64], pw[128], gr[128];
	char			 text[sizeof(passwd_text)], *bob;
	int			 rv = 0;

	if (make_root(dir, sizeof(dir), 1) == -1)
		return 10;
	(void)snprintf(pw, sizeof(pw), "%s/etc/passwd", dir);
	(void)snprintf(gr, sizeof(gr), "%s/etc/group", dir);
	/* The same length: bob's uid 2001 becomes 2009. */
	memcpy(text, passwd_text, sizeof(text));
	bob = strstr(text, "bob:x:2001");
	bob[9] = '9';
	priv_userdb_init(&db, dir);
	if (!userdb_has_bob(&db, UID_BOB, 3))
		rv = 1;
	else if (write_file(pw, text, 0644) == -1 ||
	    !userdb_has_bob(&db, 2009, 3))
		rv = 2;
	else if (unlink(gr) == -1 || !userdb_has_bob(&db, 2009, 1))
		rv = 3;
	else if (unlink(pw) == -1 ||
	    priv_userdb_lookup(&db, "bob", &u, &err) != -1 ||
	    strstr(err, "etc/passwd") == NULL)
		rv = 4;
	else if (write_file(pw, passwd_text, 0644) == -1 ||
	    write_file(gr, group_text, 0644) == -1 ||
	    !userdb_has_bob(&db, UID_BOB, 3))
		rv = 5;
	else if (priv_userdb_lookup(&db, "zed", &u, &err) != -1)
		rv = 6;		/* gid 0, cached or not */
	priv_userdb_free(&db);
	remove_root(dir);
	return rv;
}

static int
case_lookup_group(void)
{
	const char	*err = NULL;
	gid_t		 gid = 0;

	if (priv_lookup_group(root, "mail", &gid, &err) == -1 || gid != 2002)
		return 1;
	if (priv_lookup_group(root, "nosuch", &gid, &err) != -1)
		return 2;
	if (priv_lookup_group(root, "root", &gid, &err) != -1)
		return 3;
	return 0;
}

/* The real thing: enter the root as bob and try to get out. */
static int
case_drop(void)
{
	struct priv_user	 u;
	struct stat		 st;
	const char		*err = NULL;
	gid_t			 g[PRIV_GROUPS_MAX];
	uid_t			 ru, eu, su;
	int			 n, fd;

	if (priv_lookup_user(root, "bob", &u, &err) == -1)
		return 1;
	if (priv_enter_root(root, &u, &err) == -1) {
		fprintf(stderr, "# drop: %s\n", err);
		return 2;
	}
	if (getuid() != UID_BOB || geteuid() != UID_BOB ||
	    getgid() != GID_BOB || getegid() != GID_BOB)
		return 3;
	if (getresuid(&ru, &eu, &su) == -1 || su != UID_BOB)
		return 4;
	n = getgroups(PRIV_GROUPS_MAX, g);
	if (n != 3 || g[0] != GID_BOB || g[1] != 2002 || g[2] != 2003)
		return 5;
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1)
		return 6;
	if (setgroups(0, NULL) != -1)
		return 7;
	/* The host's file is not there; the root's own files are. */
	if ((fd = open(outside, O_RDONLY)) != -1 || errno != ENOENT) {
		if (fd != -1)
			(void)close(fd);
		return 8;
	}
	if (stat("/etc/passwd", &st) == -1)
		return 9;
	/* Root-only file in the root: no longer readable. */
	if ((fd = open("/secret", O_RDONLY)) != -1 || errno != EACCES) {
		if (fd != -1)
			(void)close(fd);
		return 10;
	}
	/* ".." at the top of a chroot is the top. */
	if (chdir("../../..") == -1 || stat("etc/passwd", &st) == -1)
		return 11;
	if (chroot("/") != -1)
		return 12;
	return 0;
}

/* Without a user: chrooted, still root. */
static int
case_enter_only(void)
{
	const char	*err = NULL;
	struct stat	 st;
	char		 cwd[64];

	if (priv_enter_root(root, NULL, &err) == -1)
		return 1;
	if (getuid() != 0)
		return 2;
	if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") != 0)
		return 3;
	if (stat(outside, &st) != -1)
		return 4;
	return 0;
}

static int
case_drop_refuses_root(void)
{
	struct priv_user	 u;
	const char		*err = NULL;

	memset(&u, 0, sizeof(u));
	(void)snprintf(u.name, sizeof(u.name), "root");
	u.uid = 0;
	u.gid = 2000;
	u.groups[0] = 2000;
	u.ngroups = 1;
	if (priv_drop(&u, &err) != -1)
		return 1;
	u.uid = 2000;
	u.gid = 0;
	if (priv_drop(&u, &err) != -1)
		return 2;
	/* Nothing was changed by the refusals. */
	return getuid() == 0 && getgid() == 0 ? 0 : 3;
}

/* priv_keep_fds: kept ones at 3, 4, ...; a -1 slot stays -1 and closed. */
static int
case_keep_fds(void)
{
	const char	*err;
	int		 fds[3], a, b;

	if ((a = open("/dev/null", O_RDONLY)) == -1 ||
	    (b = open("/dev/null", O_RDONLY)) == -1 ||
	    dup2(a, 20) == -1 || dup2(b, 21) == -1)
		return 1;
	(void)close(a);
	(void)close(b);
	(void)dup2(20, 4);		/* something stale where -1 goes */
	fds[0] = 20;
	fds[1] = -1;
	fds[2] = 21;
	if (priv_keep_fds(fds, 3, &err) == -1)
		return 2;
	if (fds[0] != 3 || fds[1] != -1 || fds[2] != 5)
		return 3;
	if (fcntl(3, F_GETFD) == -1 || fcntl(5, F_GETFD) == -1)
		return 4;
	if (fcntl(4, F_GETFD) != -1 || fcntl(20, F_GETFD) != -1 ||
	    fcntl(21, F_GETFD) != -1)
		return 5;
	return 0;
}

static const struct {
	const char	*name;
	int		(*fn)(void);
	const char	*arg;
} cases[] = {
	{ "good root accepted", case_root_ok, NULL },
	{ "group-writable root refused", case_bad_root, "0" },
	{ "world-writable root refused", case_bad_root, "1" },
	{ "root not owned by root refused", case_bad_root, "2" },
	{ "non-directory root refused", case_bad_root, "3" },
	{ "missing root refused", case_bad_root, "4" },
	{ "user found in the root's passwd, with groups", case_lookup_bob,
	    NULL },
	{ "missing user refused", case_lookup_fails, "nobody" },
	{ "uid 0 user refused", case_lookup_fails, "root" },
	{ "gid 0 user refused", case_lookup_fails, "zed" },
	{ "member of group 0 refused", case_lookup_fails, "wheely" },
	{ "user name with a path refused", case_lookup_fails, "../bob" },
	{ "empty user name refused", case_lookup_fails, "" },
	{ "root without etc/passwd refused", case_no_passwd, NULL },
	{ "root without etc/group: primary group only", case_no_group_file,
	    NULL },
	{ "cached users: changes, missing files, same-size edits",
	    case_userdb_reload, NULL },
	{ "group lookup, missing group, gid 0 group", case_lookup_group,
	    NULL },
	{ "drop: ids, groups, no way back, no way out", case_drop, NULL },
	{ "chroot without a user stays root", case_enter_only, NULL },
	{ "priv_drop refuses uid 0 and gid 0", case_drop_refuses_root,
	    NULL },
	{ "keep_fds: kept in order, -1 stays -1, the rest closed",
	    case_keep_fds, NULL },
};

int
main(void)
{
	char	 what[160];
	size_t	 i;
	int	 rv;

	if (geteuid() != 0) {
		printf("not ok - test_privdrop needs root\n");
		return 1;
	}
	if (make_root(root, sizeof(root), 1) == -1) {
		printf("not ok - cannot build a test root\n");
		return 1;
	}
	(void)snprintf(outside, sizeof(outside), "%s.outside", root);
	if (write_file(outside, "outside\n", 0644) == -1) {
		printf("not ok - cannot write %s\n", outside);
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rv = run_child(cases[i].fn, cases[i].arg);
		if (rv != 0)
			(void)snprintf(what, sizeof(what), "%s (step %d)",
			    cases[i].name, rv);
		else
			(void)snprintf(what, sizeof(what), "%s",
			    cases[i].name);
		CHECK(rv == 0, what);
	}
	(void)unlink(outside);
	remove_root(root);
	return test_done();
}
