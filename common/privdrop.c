/*
 * privdrop.c — enter a domain's root and give up root.
 *
 * SECURITY
 *	Runs as root, in the master's children, just before they serve a
 *	domain; everything after it runs unprivileged inside the root.
 *	The account is looked up in the domain's own etc/passwd and
 *	etc/group (never through NSS, which would read the host's files
 *	and could load modules after the chroot), and uid 0 or gid 0 is
 *	refused.  The order is fixed: chroot → chdir("/") → setgroups →
 *	setresgid → setresuid, then a check that neither uid nor gid can
 *	go back to 0.  Any failure is returned; the caller treats it as
 *	fatal.
 *
 *	The domain root itself must be owned by root and writable by no
 *	one else, or its owner could plant files (etc/passwd, a
 *	hard-linked target) that root then trusts.  Its parents are not
 *	checked (XXX: they should be root-owned too, as for OpenSSH's
 *	ChrootDirectory; that is the administrator's part).
 */

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "group.h"
#include "log.h"
#include "idrange.h"
#include "passwd.h"
#include "privbind.h"
#include "privdrop.h"

static char	 priv_errbuf[1024];

static const char *
priv_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Format an error into a static buffer, for *error_r. */
static const char *
priv_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(priv_errbuf, sizeof(priv_errbuf), fmt, ap);
	va_end(ap);
	return priv_errbuf;
}

/* "path: what: strerror", errno as the loader left it. */
static const char *
priv_load_error(const char *path, const char *err)
{
	return priv_error("%s: %s: %s", path, err != NULL ? err : "error",
	    strerror(errno));
}

/* Bad lines in a domain's passwd or group file: worth a warning. */
static void
priv_diag(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

static int
priv_path(char *dst, size_t size, const char *dir, const char *file)
{
	size_t	 len = strlen(dir);
	int	 n;

	/* "/" and "" (inside the root) both give "/etc/...". */
	n = snprintf(dst, size, "%.*s/%s", (int)(len > 0 && dir[len - 1] ==
	    '/' ? len - 1 : len), dir, file);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
priv_check_root(const char *dir, const char **error_r)
{
	struct stat	 st;

	if (dir == NULL || *dir == '\0') {
		*error_r = "empty domain root";
		return -1;
	}
	if (stat(dir, &st) == -1) {
		*error_r = priv_error("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*error_r = priv_error("%s: not a directory", dir);
		return -1;
	}
	if (st.st_uid != 0) {
		*error_r = priv_error("%s: not owned by root", dir);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		*error_r = priv_error("%s: group or world writable", dir);
		return -1;
	}
	return 0;
}

void
priv_userdb_init(struct priv_userdb *db, const char *dir)
{
	memset(db, 0, sizeof(*db));
	db->dir = dir;
}

void
priv_userdb_free(struct priv_userdb *db)
{
	if (db->pw_loaded)
		passwd_free(&db->pw);
	if (db->gr_state == PRIV_GR_LOADED)
		group_free(&db->gr);
	db->pw_loaded = 0;
	db->gr_state = PRIV_GR_UNKNOWN;
}

/*
 * Open dir's etc/FILE the way root outside the root must: resolved
 * inside dir (file_open_in_root), so a symlink planted in the domain
 * cannot make us read a host file.  The descriptor, or -1 with errno.
 */
static int
priv_open_etc(const char *dir, const char *file)
{
	char	 rel[64];
	int	 n;

	n = snprintf(rel, sizeof(rel), "etc/%s", file);
	if (n < 0 || (size_t)n >= sizeof(rel)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return file_open_in_root(dir, rel, O_RDONLY | O_NONBLOCK);
}

/*
 * Read etc/passwd and etc/group again if either changed since they were
 * read (a root without etc/group has the primary groups alone).  Each
 * file is opened once, inside the root, and its descriptor both
 * compared and read: a change after the open is seen at the next call.
 * 0, or -1 with *error_r.
 */
static int
priv_userdb_load(struct priv_userdb *db, const char **error_r)
{
	struct diag	 d = { priv_diag, NULL, 0 };
	struct stat	 pst, gst;
	const char	*err;
	char		 pw[PATH_MAX], gr[PATH_MAX];
	int		 pfd = -1, gfd = -1, rv = -1;

	if (priv_path(pw, sizeof(pw), db->dir, "etc/passwd") == -1 ||
	    priv_path(gr, sizeof(gr), db->dir, "etc/group") == -1) {
		*error_r = priv_error("%s: path too long", db->dir);
		return -1;
	}
	if ((pfd = priv_open_etc(db->dir, "passwd")) == -1 ||
	    fstat(pfd, &pst) == -1) {
		*error_r = priv_load_error(pw, "open");
		goto done;
	}
	if ((gfd = priv_open_etc(db->dir, "group")) == -1 ? errno != ENOENT :
	    fstat(gfd, &gst) == -1) {
		*error_r = priv_load_error(gr, "open");
		goto done;
	}
	rv = 0;
	if (db->pw_loaded && file_id_same(&db->pw_id, &pst) &&
	    (gfd == -1 ? db->gr_state == PRIV_GR_ABSENT :
	    db->gr_state == PRIV_GR_LOADED && file_id_same(&db->gr_id,
	    &gst)))
		goto done;
	priv_userdb_free(db);
	if (passwd_load_fd(&db->pw, pfd, pw, &d, &err) == -1) {
		*error_r = priv_load_error(pw, err);
		rv = -1;
		goto done;
	}
	db->pw_loaded = 1;
	file_id_of(&db->pw_id, &pst);
	if (gfd == -1)
		db->gr_state = PRIV_GR_ABSENT;
	else if (group_load_fd(&db->gr, gfd, gr, &d, &err) == 0) {
		db->gr_state = PRIV_GR_LOADED;
		file_id_of(&db->gr_id, &gst);
	} else {
		*error_r = priv_load_error(gr, err);
		priv_userdb_free(db);
		rv = -1;
	}

 done:
	if (pfd != -1)
		(void)close(pfd);
	if (gfd != -1)
		(void)close(gfd);
	return rv;
}

/* The line of the group of gf with gid that lists user, or 0. */
static int
priv_group_line(const struct group_file *gf, const char *user, gid_t gid)
{
	size_t	 i, k;

	for (i = 0; i < gf->n; i++) {
		if (gf->entries[i].gid != gid)
			continue;
		for (k = 0; k < gf->entries[i].nmembers; k++)
			if (strcmp(gf->entries[i].members[k], user) == 0)
				return gf->entries[i].lineno;
	}
	return 0;
}

/*
 * The account's ids against the process's id policy (privbind.h):
 * uid and gid at their passwd line, each other group at its group line.
 */
static int
priv_userdb_ids_check(const struct priv_userdb *db,
    const struct passwd_entry *pw, const struct priv_user *u,
    const char **error_r)
{
	char	 pwp[PATH_MAX], grp[PATH_MAX];
	size_t	 i;

	if (priv_path(pwp, sizeof(pwp), db->dir, "etc/passwd") == -1 ||
	    priv_path(grp, sizeof(grp), db->dir, "etc/group") == -1) {
		*error_r = priv_error("%s: path too long", db->dir);
		return -1;
	}
	if (priv_id_check(db->dir, IDPOLICY_UID, (unsigned long)pw->uid,
	    pw->name, pwp, pw->lineno, error_r) == -1 ||
	    priv_id_check(db->dir, IDPOLICY_GID, (unsigned long)pw->gid,
	    pw->name, pwp, pw->lineno, error_r) == -1)
		return -1;
	for (i = 1; i < u->ngroups; i++)
		if (priv_id_check(db->dir, IDPOLICY_GID,
		    (unsigned long)u->groups[i], pw->name, grp,
		    priv_group_line(&db->gr, pw->name, u->groups[i]),
		    error_r) == -1)
			return -1;
	return 0;
}

int
priv_userdb_lookup(struct priv_userdb *db, const char *user,
    struct priv_user *u, const char **error_r)
{
	const struct passwd_entry	*pw;
	gid_t				 gids[PRIV_GROUPS_MAX];
	size_t				 i, j, n = 0;

	memset(u, 0, sizeof(*u));
	if (user == NULL || !passwd_name_valid(user)) {
		*error_r = priv_error("invalid user name");
		return -1;
	}
	if (priv_userdb_load(db, error_r) == -1)
		return -1;
	if ((pw = passwd_find(&db->pw, user)) == NULL) {
		*error_r = priv_error("%s/etc/passwd: no user %s", db->dir,
		    user);
		return -1;
	}
	if (pw->uid == 0 || pw->gid == 0) {
		*error_r = priv_error("%s/etc/passwd: user %s has uid or gid "
		    "0", db->dir, user);
		return -1;
	}
	if (strlcpy(u->name, pw->name, sizeof(u->name)) >= sizeof(u->name) ||
	    strlcpy(u->home, pw->dir != NULL ? pw->dir : "",
	    sizeof(u->home)) >= sizeof(u->home)) {
		*error_r = priv_error("%s/etc/passwd: user %s: name or home "
		    "too long", db->dir, user);
		goto fail;
	}
	u->uid = pw->uid;
	u->gid = pw->gid;
	if (db->gr_state == PRIV_GR_LOADED)
		n = group_list_for(&db->gr, user, u->gid, gids,
		    PRIV_GROUPS_MAX);

	/* Primary first, then each other gid once; never group 0. */
	u->groups[0] = u->gid;
	u->ngroups = 1;
	for (i = 0; i < n; i++) {
		if (gids[i] == 0) {
			*error_r = priv_error("%s/etc/group: user %s is in "
			    "group 0", db->dir, user);
			goto fail;
		}
		for (j = 0; j < u->ngroups; j++)
			if (u->groups[j] == gids[i])
				break;
		if (j < u->ngroups)
			continue;
		if (u->ngroups == PRIV_GROUPS_MAX) {
			*error_r = priv_error("%s/etc/group: user %s: too many "
			    "groups", db->dir, user);
			goto fail;
		}
		u->groups[u->ngroups++] = gids[i];
	}
	if (priv_userdb_ids_check(db, pw, u, error_r) == -1)
		goto fail;
	return 0;
fail:
	memset(u, 0, sizeof(*u));
	return -1;
}

int
priv_lookup_user(const char *dir, const char *user, struct priv_user *u,
    const char **error_r)
{
	struct priv_userdb	 db;
	int			 rv;

	priv_userdb_init(&db, dir);
	rv = priv_userdb_lookup(&db, user, u, error_r);
	priv_userdb_free(&db);
	return rv;
}

int
priv_lookup_group(const char *dir, const char *group, gid_t *gid_r,
    const char **error_r)
{
	struct group_file		 gf;
	struct diag			 d;
	const struct group_entry	*gr;
	const char			*err;
	char				 path[PATH_MAX];
	int				 fd, rv = -1;

	memset(&gf, 0, sizeof(gf));
	memset(&d, 0, sizeof(d));
	d.fn = priv_diag;
	if (group == NULL || *group == '\0') {
		*error_r = priv_error("empty group name");
		return -1;
	}
	if (priv_path(path, sizeof(path), dir, "etc/group") == -1) {
		*error_r = priv_error("%s: path too long", dir);
		return -1;
	}
	if ((fd = priv_open_etc(dir, "group")) == -1) {
		*error_r = priv_load_error(path, "open");
		return -1;
	}
	rv = group_load_fd(&gf, fd, path, &d, &err);
	(void)close(fd);
	if (rv == -1) {
		*error_r = priv_load_error(path, err);
		return -1;
	}
	rv = -1;
	if ((gr = group_find(&gf, group)) == NULL)
		*error_r = priv_error("%s: no group %s", path, group);
	else if (gr->gid == 0)
		*error_r = priv_error("%s: group %s has gid 0", path, group);
	else if (priv_id_check(dir, IDPOLICY_GID, (unsigned long)gr->gid,
	    gr->name, path, gr->lineno, error_r) == 0) {
		*gid_r = gr->gid;
		rv = 0;
	}
	group_free(&gf);
	return rv;
}

int
priv_enter_root(const char *dir, const struct priv_user *u,
    const char **error_r)
{
	if (priv_check_root(dir, error_r) == -1)
		return -1;
	if (chroot(dir) == -1) {
		*error_r = priv_error("chroot %s: %s", dir, strerror(errno));
		return -1;
	}
	/* Without this, the old working directory is a way out. */
	if (chdir("/") == -1) {
		*error_r = priv_error("chdir / in %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (u != NULL)
		return priv_drop(u, error_r);
	return 0;
}

int
priv_drop(const struct priv_user *u, const char **error_r)
{
	uid_t	 ru, eu, su;
	gid_t	 rg, eg, sg;
	gid_t	 cur[PRIV_GROUPS_MAX + 1];
	int	 n;

	if (u->uid == 0 || u->gid == 0) {
		*error_r = priv_error("refusing to run %s as uid or gid 0",
		    u->name);
		return -1;
	}
	/* Bound to a domain: its ids only, checked once more here. */
	if (priv_bound_user_check(u, error_r) == -1)
		return -1;
	if (u->ngroups > PRIV_GROUPS_MAX) {
		*error_r = priv_error("%s: too many groups", u->name);
		return -1;
	}
	/* Groups first: only root may change them. */
	if (setgroups(u->ngroups ? u->ngroups : 1,
	    u->ngroups ? u->groups : &u->gid) == -1) {
		*error_r = priv_error("setgroups for %s: %s", u->name,
		    strerror(errno));
		return -1;
	}
	if (setresgid(u->gid, u->gid, u->gid) == -1) {
		*error_r = priv_error("setresgid %lu: %s",
		    (unsigned long)u->gid, strerror(errno));
		return -1;
	}
	if (setresuid(u->uid, u->uid, u->uid) == -1) {
		*error_r = priv_error("setresuid %lu: %s",
		    (unsigned long)u->uid, strerror(errno));
		return -1;
	}

	/* Trust nothing: each of these must now fail or match. */
	if (setgid(0) != -1 || setegid(0) != -1) {
		*error_r = "could regain gid 0 after dropping privileges";
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1) {
		*error_r = "could regain uid 0 after dropping privileges";
		return -1;
	}
	if (getresuid(&ru, &eu, &su) == -1 || ru != u->uid ||
	    eu != u->uid || su != u->uid) {
		*error_r = "uids do not match after dropping privileges";
		return -1;
	}
	if (getresgid(&rg, &eg, &sg) == -1 || rg != u->gid ||
	    eg != u->gid || sg != u->gid) {
		*error_r = "gids do not match after dropping privileges";
		return -1;
	}
	n = getgroups(PRIV_GROUPS_MAX + 1, cur);
	if (n == -1 || (size_t)n != (u->ngroups ? u->ngroups : 1)) {
		*error_r = "groups do not match after dropping privileges";
		return -1;
	}
	while (n-- > 0) {
		if (cur[n] == 0) {
			*error_r = "still in group 0 after dropping privileges";
			return -1;
		}
	}
	return 0;
}

int
priv_limit_caps(const int *keep, size_t nkeep, const char **error_r)
{
	struct __user_cap_header_struct	 hdr;
	struct __user_cap_data_struct	 data[2], got[2];
	size_t				 i;
	int				 cap, kept;

	memset(data, 0, sizeof(data));
	for (i = 0; i < nkeep; i++) {
		if (keep[i] < 0 || keep[i] >= 64) {
			*error_r = "bad capability number";
			return -1;
		}
		data[keep[i] / 32].permitted |= 1U << (keep[i] % 32);
		data[keep[i] / 32].effective |= 1U << (keep[i] % 32);
	}
	/* The bounding set first, while CAP_SETPCAP is still effective. */
	for (cap = 0; cap < 64; cap++) {
		kept = (data[cap / 32].permitted >> (cap % 32)) & 1;
		if (kept)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == -1) {
			if (errno == EINVAL)
				break;		/* past the kernel's last one */
			*error_r = priv_error("dropping capability %d: %s", cap,
			    strerror(errno));
			return -1;
		}
	}
	memset(&hdr, 0, sizeof(hdr));
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	hdr.pid = 0;
	if (syscall(SYS_capset, &hdr, data) == -1) {
		*error_r = priv_error("capset: %s", strerror(errno));
		return -1;
	}
	/* Trust nothing: read back what the kernel now holds. */
	memset(got, 0, sizeof(got));
	if (syscall(SYS_capget, &hdr, got) == -1) {
		*error_r = priv_error("capget: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < 2; i++) {
		if (got[i].permitted != data[i].permitted ||
		    got[i].effective != data[i].effective ||
		    got[i].inheritable != 0) {
			*error_r = "capabilities do not match after capset";
			return -1;
		}
	}
	return 0;
}

int
priv_keep_fds(int *fds, size_t n, const char **error_r)
{
	size_t	 i;
	int	 fd, relay, last;

	/* The log relay, when there is one, goes along as 3 + n. */
	relay = log_relay_get();
	/* Without one, glibc's syslog descriptor is about to be reused. */
	if (relay == -1)
		closelog();
	last = (int)(3 + n) + (relay != -1);
	for (i = 0; i < n; i++) {
		if (fds[i] == -1)
			continue;
		if ((fd = fcntl(fds[i], F_DUPFD_CLOEXEC, last)) == -1) {
			*error_r = "fcntl(F_DUPFD_CLOEXEC) failed";
			return -1;
		}
		fds[i] = fd;
	}
	if (relay != -1 &&
	    (relay = fcntl(relay, F_DUPFD_CLOEXEC, last)) == -1) {
		*error_r = "fcntl(F_DUPFD_CLOEXEC) failed";
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (fds[i] == -1) {
			(void)close((int)(3 + i));
			continue;
		}
		if (dup3(fds[i], (int)(3 + i), O_CLOEXEC) == -1) {
			*error_r = "dup3 failed";
			return -1;
		}
		fds[i] = (int)(3 + i);
	}
	if (relay != -1) {
		if (dup3(relay, (int)(3 + n), O_CLOEXEC) == -1) {
			*error_r = "dup3 failed";
			return -1;
		}
		log_to_relay((int)(3 + n));
	}
	if (close_range((unsigned int)last, ~0U, 0) == -1) {
		*error_r = "close_range failed";
		return -1;
	}
	log_reconnect();
	return 0;
}
