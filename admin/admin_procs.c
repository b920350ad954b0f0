/*
 * admin_procs.c — find the running processes of a domain or of one of
 * its users, so that a purge is refused while they run.
 *
 * SECURITY
 *	Runs as root on the host and reads /proc only: a process belongs
 *	to a domain when its root directory is the domain's root (same
 *	device and inode through /proc/PID/root), or when any of its
 *	real, effective, saved or file-system uids is one of the
 *	domain's accounts (the uids of its etc/passwd but 0).  A process
 *	could fork between the scan and the purge; the purge does not
 *	depend on this check for its safety (admin_rmtree.c), it only
 *	keeps an administrator from removing files under a live program.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "passwd.h"
#include "virtmail.h"

#define PROCS_UIDS_MAX		65536	/* accounts of one domain */
#define PROCS_ANCESTORS		64	/* parents followed up to a daemon */
#define PROCS_POLL_MS		100

struct procs_match {
	const struct stat	*root;		/* NULL: any root */
	const uid_t		*uids;
	size_t			 nuids;
	const pid_t		*spare;		/* and their descendants */
	size_t			 nspare;
	pid_t			 found[ADMIN_PROCS_SHOWN];
	size_t			 nfound;
};

/* The parent of pid from /proc/PID/stat; -1 when unknown. */
static pid_t
procs_parent(pid_t pid)
{
	char	 path[64], data[1024], *p;
	long	 ppid;
	FILE	*fp;
	size_t	 n;

	(void)snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "re")) == NULL)
		return -1;
	n = fread(data, 1, sizeof(data) - 1, fp);
	(void)fclose(fp);
	data[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold anything but ends at
	 * the last ')'. */
	if ((p = strrchr(data, ')')) == NULL ||
	    sscanf(p + 1, " %*c %ld", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

static int
procs_spared(const struct procs_match *m, pid_t pid)
{
	size_t	 i;
	int	 depth;

	for (depth = 0; pid > 1 && depth < PROCS_ANCESTORS; depth++) {
		for (i = 0; i < m->nspare; i++)
			if (m->spare[i] == pid)
				return 1;
		pid = procs_parent(pid);
	}
	return 0;
}

static int
procs_uid_matches(const struct procs_match *m, pid_t pid)
{
	char		 path[64], line[256];
	unsigned long	 id[4];
	FILE		*fp;
	size_t		 i, k;
	int		 hit = 0;

	if (m->nuids == 0)
		return 0;
	(void)snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "Uid:", 4) != 0)
			continue;
		if (sscanf(line + 4, "%lu %lu %lu %lu", &id[0], &id[1],
		    &id[2], &id[3]) != 4)
			break;
		for (k = 0; k < 4 && !hit; k++)
			for (i = 0; i < m->nuids && !hit; i++)
				hit = id[k] == (unsigned long)m->uids[i];
		break;
	}
	(void)fclose(fp);
	return hit;
}

static int
procs_root_matches(const struct procs_match *m, pid_t pid)
{
	struct stat	 st;
	char		 path[64];

	if (m->root == NULL)
		return 0;
	(void)snprintf(path, sizeof(path), "/proc/%ld/root", (long)pid);
	/* The magic link leads to the process's root directory. */
	return stat(path, &st) == 0 && st.st_dev == m->root->st_dev &&
	    st.st_ino == m->root->st_ino;
}

static int
procs_scan(struct procs_match *m)
{
	struct dirent	*de;
	DIR		*dp;
	pid_t		 self = getpid();
	long		 pid;
	char		*end;

	m->nfound = 0;
	if ((dp = opendir("/proc")) == NULL) {
		admin_warnx("/proc: %s", strerror(errno));
		return -1;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		errno = 0;
		pid = strtol(de->d_name, &end, 10);
		if (errno != 0 || *end != '\0' || pid <= 0 || pid == self)
			continue;
		if (!procs_root_matches(m, (pid_t)pid) &&
		    !procs_uid_matches(m, (pid_t)pid))
			continue;
		if (m->nspare > 0 && procs_spared(m, (pid_t)pid))
			continue;
		if (m->nfound < ADMIN_PROCS_SHOWN)
			m->found[m->nfound] = (pid_t)pid;
		m->nfound++;
	}
	(void)closedir(dp);
	return 0;
}

/* Scan until nothing matches or wait_s seconds passed; 0 when idle. */
static int
procs_wait(struct procs_match *m, const char *what, int wait_s)
{
	struct timespec	 ts = { 0, PROCS_POLL_MS * 1000000L };
	char		 list[ADMIN_PROCS_SHOWN * 12 + 16];
	size_t		 i, n, len = 0;
	int		 k, tries = wait_s * (1000 / PROCS_POLL_MS);

	for (k = 0;; k++) {
		if (procs_scan(m) == -1)
			return EX_OSERR;
		if (m->nfound == 0)
			return 0;
		if (k >= tries)
			break;
		(void)nanosleep(&ts, NULL);
	}
	n = m->nfound < ADMIN_PROCS_SHOWN ? m->nfound : ADMIN_PROCS_SHOWN;
	list[0] = '\0';
	for (i = 0; i < n; i++) {
		k = snprintf(list + len, sizeof(list) - len, "%s%ld",
		    i ? " " : "", (long)m->found[i]);
		if (k < 0 || (size_t)k >= sizeof(list) - len)
			break;
		len += (size_t)k;
	}
	admin_warnx("%s: %zu process%s still run%s (pid %s%s); refusing to "
	    "purge", what, m->nfound, m->nfound == 1 ? "" : "es",
	    m->nfound == 1 ? "s" : "", list,
	    m->nfound > n ? " ..." : "");
	return EX_TEMPFAIL;
}

/* The uids of dir/etc/passwd but 0, into a new array. */
static int
procs_domain_uids(const char *dir, uid_t **uids_r, size_t *n_r)
{
	struct passwd_file	 pf;
	struct diag		 d;
	const char		*err;
	char			 path[PATH_MAX];
	uid_t			*uids;
	size_t			 i, n = 0;

	*uids_r = NULL;
	*n_r = 0;
	memset(&d, 0, sizeof(d));
	memset(&pf, 0, sizeof(pf));
	if (admin_path(path, sizeof(path), dir, "etc/passwd") == -1)
		return -1;
	if (passwd_load(&pf, path, &d, &err) == -1) {
		/* A root without a passwd has no accounts to look for. */
		if (access(path, F_OK) == -1 && errno == ENOENT)
			return 0;
		admin_warnx("%s: %s", path, err);
		return -1;
	}
	if (pf.n > PROCS_UIDS_MAX ||
	    (uids = calloc(pf.n + 1, sizeof(*uids))) == NULL) {
		admin_warnx("%s: too many accounts", path);
		passwd_free(&pf);
		return -1;
	}
	for (i = 0; i < pf.n; i++)
		if (pf.entries[i].uid != 0)
			uids[n++] = pf.entries[i].uid;
	passwd_free(&pf);
	*uids_r = uids;
	*n_r = n;
	return 0;
}

int
admin_procs_domain_idle(const char *dir, const pid_t *spare,
    size_t nspare, int wait_s)
{
	struct procs_match	 m;
	struct stat		 root;
	uid_t			*uids;
	size_t			 nuids;
	int			 rc;

	memset(&m, 0, sizeof(m));
	if (stat(dir, &root) == -1) {
		admin_warnx("%s: %s", dir, strerror(errno));
		return EX_OSERR;
	}
	if (procs_domain_uids(dir, &uids, &nuids) == -1)
		return EX_DATAERR;
	m.root = &root;
	m.uids = uids;
	m.nuids = nuids;
	m.spare = spare;
	m.nspare = nspare;
	rc = procs_wait(&m, dir, wait_s);
	free(uids);
	return rc;
}

int
admin_procs_user_idle(const char *name, uid_t uid)
{
	struct procs_match	 m;

	memset(&m, 0, sizeof(m));
	m.uids = &uid;
	m.nuids = 1;
	return procs_wait(&m, name, 0);
}
