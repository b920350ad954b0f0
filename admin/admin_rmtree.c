/*
 * admin_rmtree.c — remove a directory tree that users of a domain can
 * write to ("domain del --purge", "user del --purge").
 *
 * SECURITY
 *	Runs as root on the host, over trees whose every directory below
 *	the top may be a user's, who may rename, replace and create
 *	entries while we walk.  So no path a user controls is ever
 *	resolved: the walk holds a descriptor of each directory and
 *	names only single entries relative to it.  A directory is
 *	entered with openat(O_NOFOLLOW | O_DIRECTORY), then fstat must
 *	show the same device as the top (no mount is crossed) and the
 *	same inode that fstatat(AT_SYMLINK_NOFOLLOW) reported while
 *	listing (nothing was swapped in between).  Entries are removed
 *	with unlinkat, which never follows a symlink: a symlink is
 *	removed, never its target.  Whatever changed underneath is
 *	reported and left, never followed; a directory is listed again
 *	a few times, so that entries that moved within it are still
 *	removed.  The depth is bounded (RMTREE_DEPTH, one descriptor per
 *	level).
 *
 *	Only the top's parents are named by path, and those come from
 *	virtual.conf and the domain's etc/passwd (root's files); below
 *	the domain's root each of them is opened with O_NOFOLLOW too.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "virtmail.h"

#define RMTREE_DEPTH	256	/* levels below the top */
#define RMTREE_PASSES	4	/* listings of one directory */
#define RMTREE_OPEN	(O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct rmtree {
	dev_t		 dev;		/* the top's file system */
	char		 path[PATH_MAX];	/* for messages only */
	size_t		 plen;
	unsigned long	 left;		/* entries reported and kept */
};

static void	rmtree_dir(struct rmtree *, int, int);

/* Append "/name" to the message path; returns the old length. */
static size_t
rmtree_push(struct rmtree *t, const char *name)
{
	size_t	 old = t->plen;
	int	 n;

	n = snprintf(t->path + old, sizeof(t->path) - old, "/%s", name);
	if (n < 0 || (size_t)n >= sizeof(t->path) - old)
		t->plen = sizeof(t->path) - 1;
	else
		t->plen = old + (size_t)n;
	return old;
}

static void
rmtree_pop(struct rmtree *t, size_t old)
{
	t->plen = old;
	t->path[old] = '\0';
}

static void
rmtree_report(struct rmtree *t, const char *why)
{
	t->left++;
	admin_warnx("%s: %s", t->path, why);
}

enum rmtree_result {
	RMTREE_GONE,		/* removed, or gone already */
	RMTREE_KEPT,		/* left for good, and reported */
	RMTREE_CHANGED		/* changed underneath: list again */
};

/*
 * Remove name in dfd, a directory with everything below it.  What
 * changed underneath is reported only on the last listing (report).
 */
static enum rmtree_result
rmtree_entry(struct rmtree *t, int dfd, const char *name, int depth,
    int report)
{
	struct stat	 st, fst;
	unsigned long	 before;
	int		 fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return RMTREE_GONE;
		rmtree_report(t, strerror(errno));
		return RMTREE_KEPT;
	}
	if (st.st_dev != t->dev) {
		rmtree_report(t, "on another file system (a mount point); "
		    "not crossed");
		return RMTREE_KEPT;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
			return RMTREE_GONE;
		if (errno != EISDIR) {
			rmtree_report(t, strerror(errno));
			return RMTREE_KEPT;
		}
		/* It became a directory since the fstatat. */
		if (report)
			rmtree_report(t, "replaced by a directory during "
			    "removal");
		return RMTREE_CHANGED;
	}
	if (depth >= RMTREE_DEPTH) {
		rmtree_report(t, "too deep; not entered");
		return RMTREE_KEPT;
	}
	if ((fd = openat(dfd, name, RMTREE_OPEN)) == -1) {
		if (errno == ENOENT)
			return RMTREE_GONE;
		if (errno != ELOOP && errno != ENOTDIR) {
			rmtree_report(t, strerror(errno));
			return RMTREE_KEPT;
		}
		if (report)
			rmtree_report(t, "replaced by a non-directory during "
			    "removal; not followed");
		return RMTREE_CHANGED;
	}
	if (fstat(fd, &fst) == -1 || fst.st_dev != t->dev ||
	    fst.st_ino != st.st_ino) {
		(void)close(fd);
		if (report)
			rmtree_report(t, "replaced during removal; not "
			    "entered");
		return RMTREE_CHANGED;
	}
	before = t->left;
	rmtree_dir(t, fd, depth + 1);
	if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return RMTREE_GONE;
	if (errno != ENOTEMPTY && errno != EEXIST) {
		rmtree_report(t, strerror(errno));
		return RMTREE_KEPT;
	}
	/* What is left inside was reported already. */
	if (t->left > before)
		return RMTREE_KEPT;
	/* Entries appeared inside after its last listing. */
	if (report)
		rmtree_report(t, "entries created during removal");
	return RMTREE_CHANGED;
}

/*
 * Empty the directory fd (which this takes over and closes).  It is
 * listed again while entries changed underneath, RMTREE_PASSES times
 * at most; what is left for good is not tried again.
 */
static void
rmtree_dir(struct rmtree *t, int fd, int depth)
{
	struct dirent	*de;
	DIR		*dp;
	size_t		 old;
	int		 pass, changed;

	if ((dp = fdopendir(fd)) == NULL) {
		rmtree_report(t, strerror(errno));
		(void)close(fd);
		return;
	}
	for (pass = 0; pass < RMTREE_PASSES; pass++) {
		changed = 0;
		rewinddir(dp);
		errno = 0;
		while ((de = readdir(dp)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			old = rmtree_push(t, de->d_name);
			if (rmtree_entry(t, dirfd(dp), de->d_name, depth,
			    pass == RMTREE_PASSES - 1) == RMTREE_CHANGED)
				changed = 1;
			rmtree_pop(t, old);
			errno = 0;
		}
		if (errno != 0) {
			rmtree_report(t, strerror(errno));
			break;
		}
		if (!changed)
			break;
	}
	(void)closedir(dp);
}

int
admin_rmtree(const char *base, const char *rel)
{
	struct rmtree	 t;
	struct stat	 st, fst;
	char		 buf[PATH_MAX];
	char		*name, *slash;
	int		 dfd, fd, nfd;

	memset(&t, 0, sizeof(t));
	if (strlcpy(buf, rel, sizeof(buf)) >= sizeof(buf) || buf[0] == '\0' ||
	    buf[0] == '/') {
		admin_warnx("%s/%s: not a path to remove", base, rel);
		return -1;
	}
	if ((dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		admin_warnx("%s: %s", base, strerror(errno));
		return -1;
	}
	/* Down to the top's parent, one entry at a time, no symlink. */
	for (name = buf; (slash = strchr(name, '/')) != NULL;
	    name = slash + 1) {
		*slash = '\0';
		if (*name == '\0' || strcmp(name, ".") == 0 ||
		    strcmp(name, "..") == 0 ||
		    (nfd = openat(dfd, name, RMTREE_OPEN)) == -1) {
			admin_warnx("%s/%s: not a directory (or a symlink); "
			    "not removed", base, rel);
			(void)close(dfd);
			return -1;
		}
		(void)close(dfd);
		dfd = nfd;
	}
	if (*name == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 ||
	    fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISDIR(st.st_mode) ||
	    (fd = openat(dfd, name, RMTREE_OPEN)) == -1) {
		admin_warnx("%s/%s: not a directory (or a symlink); not "
		    "removed", base, rel);
		(void)close(dfd);
		return -1;
	}
	if (fstat(fd, &fst) == -1 || fst.st_ino != st.st_ino ||
	    fst.st_dev != st.st_dev) {
		admin_warnx("%s/%s: replaced while opening; not removed", base,
		    rel);
		(void)close(fd);
		(void)close(dfd);
		return -1;
	}
	t.dev = st.st_dev;
	(void)snprintf(t.path, sizeof(t.path), "%s/%s", strcmp(base, "/") ?
	    base : "", rel);
	t.plen = strlen(t.path);
	rmtree_dir(&t, fd, 0);
	if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) {
		(void)close(dfd);
		return 0;
	}
	if (t.left == 0)
		rmtree_report(&t, strerror(errno));
	(void)close(dfd);
	admin_warnx("%s/%s: not removed, %lu entr%s left (see above)", base,
	    rel, t.left, t.left == 1 ? "y" : "ies");
	return -1;
}

int
admin_purge_tree(const char *dir)
{
	char	 parent[PATH_MAX];
	char	*slash;

	/* Never "/", never a relative path, never a top-level directory. */
	if (dir[0] != '/' || strchr(dir + 1, '/') == NULL ||
	    strstr(dir, "/..") != NULL || strstr(dir, "/./") != NULL ||
	    strlcpy(parent, dir, sizeof(parent)) >= sizeof(parent) ||
	    (slash = strrchr(parent, '/')) == NULL || slash[1] == '\0') {
		admin_warnx("%s: refusing to remove", dir);
		return -1;
	}
	*slash = '\0';
	return admin_rmtree(parent, slash + 1);
}
