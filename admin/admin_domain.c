/*
 * admin_domain.c — "virtmail domain add|list|del": a domain's root and
 * its lines in virtual.conf.
 *
 * SECURITY
 *	Runs as root on the host.  virtual.conf is changed under its lock
 *	(virtual.conf.lock) and replaced atomically, so a daemon reloading
 *	at any moment reads the old table or the new one.  A root is
 *	removed (--purge) only when virtual.conf named it, only while no
 *	process of the domain runs (admin_procs.c), and by a walk that
 *	resolves no path a user of the domain controls (admin_rmtree.c).
 *
 * CHOICES
 *	The default root is ADMIN_ROOT_BASE/NAME; the banner name
 *	defaults to "mx.NAME", the name the domain's MX record should
 *	point at.  Each domain gets its own block of ADMIN_UID_BLOCK uids
 *	above every uid already used or declared (uids=) in any domain
 *	(ADMIN_UID_FIRST at least), so no two domains share a uid; the
 *	block is written on the domain's lines of virtual.conf as
 *	uids=FIRST-LAST, where the id policy (idrange.h) enforces it.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "passwd.h"
#include "virtmail.h"

unsigned long
admin_uid_base_next(const struct domain_table *t)
{
	struct passwd_file	 pf;
	struct diag		 d;
	const char		*err;
	char			 path[PATH_MAX];
	unsigned long		 top = 0, u;
	size_t			 i, k;

	memset(&d, 0, sizeof(d));
	for (i = 0; t != NULL && i < t->ndomains; i++) {
		/* A declared range is taken whole, used or not. */
		u = (unsigned long)t->domains[i].id_last;
		if (u < 60000 && u > top)
			top = u;
		if (admin_path(path, sizeof(path), t->domains[i].dir,
		    "etc/passwd") == -1)
			continue;
		memset(&pf, 0, sizeof(pf));
		if (passwd_load(&pf, path, &d, &err) == -1)
			continue;
		for (k = 0; k < pf.n; k++) {
			u = (unsigned long)pf.entries[k].uid;
			/* nobody and friends are not a block. */
			if (u < 60000 && u > top)
				top = u;
		}
		passwd_free(&pf);
	}
	if (top < ADMIN_UID_FIRST)
		return ADMIN_UID_FIRST;
	return (top / ADMIN_UID_BLOCK + 1) * ADMIN_UID_BLOCK;
}

/* Load virtual.conf (missing: empty), quietly; text in b. */
static int
domain_conf_read(const struct admin_opts *o, struct buf *b,
    struct domain_table *t)
{
	struct diag	 d;

	memset(&d, 0, sizeof(d));
	memset(t, 0, sizeof(*t));
	if (admin_file_read(o->virtual_conf, b, 1) == -1)
		return -1;
	if (domain_table_parse(t, o->virtual_conf, b->data, b->len, &d) ==
	    -1) {
		admin_warnx("%s: cannot parse", o->virtual_conf);
		buf_free(b);
		return -1;
	}
	return 0;
}

static int
domain_lock(const struct admin_opts *o)
{
	char	 path[PATH_MAX];
	int	 n;

	n = snprintf(path, sizeof(path), "%s.lock", o->virtual_conf);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		admin_warnx("%s: path too long", o->virtual_conf);
		return -1;
	}
	return admin_lock(path);
}

static int
domain_has_ip(const struct domain_table *t, const char *ip)
{
	size_t	 i, k;

	for (i = 0; i < t->ndomains; i++)
		for (k = 0; k < t->domains[i].naddrs; k++)
			if (strcmp(t->domains[i].addrs[k].text, ip) == 0)
				return 1;
	return 0;
}

static int
domain_add(const struct admin_opts *o, int argc, char **argv)
{
	struct admin_fs_spec	 s;
	struct domain_table	 t;
	struct buf		 b;
	struct stat		 st;
	char			 ips[ADMIN_IPS_MAX][64], dir[PATH_MAX];
	char			 host[300];
	const char		*ipv[ADMIN_IPS_MAX];
	const char		*root = NULL, *hostname = NULL;
	size_t			 nips = 0, i;
	int			 a, lk, n, rc = EX_CANTCREAT;

	memset(&s, 0, sizeof(s));
	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--root") == 0 && a + 1 < argc)
			root = argv[++a];
		else if (strcmp(argv[a], "--hostname") == 0 && a + 1 < argc)
			hostname = argv[++a];
		else if (strcmp(argv[a], "--sendmail") == 0 && a + 1 < argc)
			s.sendmail = argv[++a];
		else if (strcmp(argv[a], "--resolver") == 0 && a + 1 < argc)
			s.resolver = argv[++a];
		else if (argv[a][0] == '-')
			return admin_cmd_usage("domain");
		else if (s.name == NULL)
			s.name = argv[a];
		else if (nips < ADMIN_IPS_MAX) {
			if (admin_ip_canon(argv[a], ips[nips],
			    sizeof(ips[0])) == -1) {
				admin_warnx("%s: not an IP address", argv[a]);
				return EX_DATAERR;
			}
			ipv[nips] = ips[nips];
			nips++;
		} else
			return admin_cmd_usage("domain");
	}
	if (s.name == NULL || nips == 0)
		return admin_cmd_usage("domain");
	if (!admin_dns_name_valid(s.name) ||
	    (hostname != NULL && !admin_dns_name_valid(hostname)) ||
	    (s.resolver != NULL && admin_ip_canon(s.resolver, host,
	    sizeof(host)) == -1)) {
		admin_warnx("%s: not a valid domain name", s.name);
		return EX_DATAERR;
	}
	n = root != NULL ? snprintf(dir, sizeof(dir), "%s", root) :
	    snprintf(dir, sizeof(dir), "%s/%s", ADMIN_ROOT_BASE, s.name);
	if (n < 0 || (size_t)n >= sizeof(dir) || dir[0] != '/' ||
	    strstr(dir, "/..") != NULL || strchr(dir, '\n') != NULL ||
	    strpbrk(dir, " \t#") != NULL) {
		admin_warnx("%s: the root must be an absolute path without "
		    "\"..\", blanks or '#'", dir);
		return EX_DATAERR;
	}
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	if (hostname == NULL) {
		n = snprintf(host, sizeof(host), "mx.%s", s.name);
		if (n < 0 || (size_t)n >= sizeof(host) ||
		    !admin_dns_name_valid(host)) {
			admin_warnx("%s: name too long", s.name);
			return EX_DATAERR;
		}
		hostname = host;
	}
	s.dir = dir;
	s.hostname = hostname;
	s.ips = ipv;
	s.nips = nips;

	if ((lk = domain_lock(o)) == -1)
		return EX_CANTCREAT;
	if (domain_conf_read(o, &b, &t) == -1) {
		admin_unlock(lk);
		return EX_CONFIG;
	}
	if (domain_lookup_name(&t, s.name) != NULL ||
	    domain_lookup_name(&t, dir) != NULL) {
		admin_warnx("%s: already in %s", s.name, o->virtual_conf);
		rc = EX_DATAERR;
		goto out;
	}
	for (i = 0; i < nips; i++)
		if (domain_has_ip(&t, ipv[i])) {
			admin_warnx("%s: already in %s", ipv[i],
			    o->virtual_conf);
			rc = EX_DATAERR;
			goto out;
		}
	if (lstat(dir, &st) == 0) {
		admin_warnx("%s: already exists; remove it or choose another "
		    "--root", dir);
		rc = EX_CANTCREAT;
		goto out;
	}
	s.uid_base = admin_uid_base_next(&t);
	if (admin_fs_build(&s) == -1) {
		(void)admin_purge_tree(dir);
		goto out;
	}
	/* The block, recorded on the host side (virtual.conf.5). */
	for (i = 0; i < nips; i++)
		if (buf_printf(&b, "%s\t%s\tuids=%lu-%lu\n", ipv[i], dir,
		    s.uid_base, s.uid_base + ADMIN_UID_BLOCK - 1) == -1)
			goto out;
	if (admin_file_replace(o->virtual_conf, b.data, b.len, 0644) == -1) {
		(void)admin_purge_tree(dir);
		goto out;
	}
	printf("%s: root %s, uids %lu-%lu, banner %s\n", s.name, dir,
	    s.uid_base, s.uid_base + ADMIN_UID_BLOCK - 1, hostname);
	printf("%s: postmaster goes to root until you add a user and run "
	    "\"%s alias add %s postmaster USER\"\n", s.name, ADMIN_NAME,
	    s.name);
	rc = 0;
 out:
	domain_table_free(&t);
	buf_free(&b);
	admin_unlock(lk);
	if (rc == 0)
		admin_reload(o);
	return rc;
}

/* Drop every line of text whose DIR is dir; 1 when one was found. */
static int
domain_lines_drop(const char *text, const char *dir, struct buf *out)
{
	const char	*line, *next, *p, *f;
	size_t		 flen, dlen = strlen(dir);
	int		 found = 0;

	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next != NULL ? next + 1 : line + strlen(line);
		p = line + strspn(line, " \t");
		if (*p != '#' && *p != '\n') {
			p += strcspn(p, " \t\n");
			f = p + strspn(p, " \t");
			flen = strcspn(f, " \t\n#");
			while (flen > 1 && f[flen - 1] == '/')
				flen--;
			if (flen == dlen && memcmp(f, dir, dlen) == 0) {
				found = 1;
				continue;
			}
		}
		if (buf_append(out, line, (size_t)(next - line)) == -1)
			return -1;
	}
	return found;
}

/*
 * The DIR of the lines of text that name the domain key (DIR itself or
 * its basename), found textually: the table parser skips lines whose
 * DIR is gone, and such a domain must still be removable.  Only
 * absolute DIRs count.  0 with dst, 1 when none, -1 when ambiguous
 * (reported).
 */
static int
domain_dir_find(const char *text, const char *key, char *dst, size_t size)
{
	const char	*line, *next, *p, *f, *base;
	size_t		 flen, blen, klen = strlen(key);
	int		 found = 0;

	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next != NULL ? next + 1 : line + strlen(line);
		p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n')
			continue;
		p += strcspn(p, " \t\n");
		f = p + strspn(p, " \t");
		flen = strcspn(f, " \t\n#");
		while (flen > 1 && f[flen - 1] == '/')
			flen--;
		if (flen == 0 || f[0] != '/' || flen >= size)
			continue;
		for (base = f + flen; base > f && base[-1] != '/'; base--)
			;
		blen = (size_t)(f + flen - base);
		if (!(flen == klen && memcmp(f, key, klen) == 0) &&
		    !(blen == klen && memcmp(base, key, klen) == 0))
			continue;
		if (found && (strlen(dst) != flen ||
		    memcmp(dst, f, flen) != 0)) {
			admin_warnx("%s: names more than one root; give the "
			    "root itself", key);
			return -1;
		}
		memcpy(dst, f, flen);
		dst[flen] = '\0';
		found = 1;
	}
	return found ? 0 : 1;
}

static int
domain_del(const struct admin_opts *o, int argc, char **argv)
{
	struct domain_table	 t;
	const struct domain	*vd;
	struct buf		 b, nb;
	struct stat		 st;
	char			*dir = NULL, gone[PATH_MAX];
	pid_t			 daemons[ADMIN_DAEMONS];
	size_t			 n;
	int			 a, purge = 0, lk, rc = EX_CANTCREAT;
	const char		*name = NULL;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--purge") == 0)
			purge = 1;
		else if (argv[a][0] == '-' || name != NULL)
			return admin_cmd_usage("domain");
		else
			name = argv[a];
	}
	if (name == NULL)
		return admin_cmd_usage("domain");
	if ((lk = domain_lock(o)) == -1)
		return EX_CANTCREAT;
	if (domain_conf_read(o, &b, &t) == -1) {
		admin_unlock(lk);
		return EX_CONFIG;
	}
	buf_init(&nb, b.max);
	if ((vd = domain_lookup_name(&t, name)) != NULL)
		dir = strdup(vd->dir);
	else {
		/* Lines the parser skipped, e.g. for a root already gone. */
		switch (domain_dir_find(b.data, name, gone, sizeof(gone))) {
		case 0:
			dir = strdup(gone);
			break;
		case 1:
			admin_warnx("%s: no such domain in %s", name,
			    o->virtual_conf);
			rc = EX_NOHOST;
			goto out;
		default:
			rc = EX_DATAERR;
			goto out;
		}
	}
	if (dir == NULL || domain_lines_drop(b.data, dir, &nb) != 1 ||
	    buf_append(&nb, "", 1) == -1)
		goto out;
	/* Programs of the domain but the daemons' workers (which go
	 * with the reload) would lose their files: nothing changes. */
	if (purge && lstat(dir, &st) == 0) {
		n = admin_daemon_pids(o, daemons);
		if ((rc = admin_procs_domain_idle(dir, daemons, n, 0)) != 0) {
			admin_warnx("%s: stop them first; %s unchanged", name,
			    o->virtual_conf);
			goto out;
		}
		rc = EX_CANTCREAT;
	}
	if (admin_file_replace(o->virtual_conf, nb.data, nb.len - 1,
	    0644) == -1)
		goto out;
	printf("%s: removed from %s\n", name, o->virtual_conf);
	rc = 0;
 out:
	domain_table_free(&t);
	buf_free(&b);
	buf_free(&nb);
	admin_unlock(lk);
	if (rc == 0) {
		admin_reload(o);
		if (lstat(dir, &st) == -1 && errno == ENOENT)
			printf("%s: root %s already gone\n", name, dir);
		else if (purge) {
			/* The reload ends the daemons' workers there. */
			if ((rc = admin_procs_domain_idle(dir, NULL, 0,
			    ADMIN_PURGE_WAIT)) != 0)
				admin_warnx("%s: root %s kept", name, dir);
			else if (admin_purge_tree(dir) == -1)
				rc = EX_CANTCREAT;
			else
				printf("%s: removed %s\n", name, dir);
		} else
			printf("%s: root %s kept (--purge removes it)\n",
			    name, dir);
	}
	free(dir);
	return rc;
}

static long
domain_queue_size(const char *dir)
{
	struct dirent	*de;
	DIR		*dp;
	char		 path[PATH_MAX];
	long		 n = 0;
	int		 fd, efd;

	if (admin_path(path, sizeof(path), dir, QUEUE_DIR + 1) == -1)
		return -1;
	/* The queue is the runner's: follow no link it may have left. */
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	efd = openat(fd, "env", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	(void)close(fd);
	if (efd == -1)
		return errno == ENOENT ? 0 : -1;
	if ((dp = fdopendir(efd)) == NULL) {
		(void)close(efd);
		return -1;
	}
	while ((de = readdir(dp)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	(void)closedir(dp);
	return n;
}

static long
domain_user_count(const char *dir)
{
	struct passwd_file	 pf;
	struct diag		 d;
	const char		*err;
	char			 path[PATH_MAX];
	long			 n = 0;
	size_t			 i;

	memset(&d, 0, sizeof(d));
	memset(&pf, 0, sizeof(pf));
	if (admin_path(path, sizeof(path), dir, "etc/passwd") == -1 ||
	    passwd_load(&pf, path, &d, &err) == -1)
		return -1;
	for (i = 0; i < pf.n; i++)
		if (strncmp(pf.entries[i].dir, "/home/", 6) == 0)
			n++;
	passwd_free(&pf);
	return n;
}

static int
domain_list(const struct admin_opts *o)
{
	struct domain_table	 t;
	struct buf		 b, ips;
	const struct domain	*vd;
	size_t			 i, k;
	long			 users, queue;

	if (domain_conf_read(o, &b, &t) == -1)
		return EX_CONFIG;
	buf_free(&b);
	printf("%-24s %-32s %-32s %5s %5s\n", "DOMAIN", "ADDRESSES", "ROOT",
	    "USERS", "QUEUE");
	buf_init(&ips, 64 * 1024);
	for (i = 0; i < t.ndomains; i++) {
		vd = &t.domains[i];
		buf_reset(&ips);
		for (k = 0; k < vd->naddrs; k++)
			if (buf_printf(&ips, "%s%s", k ? "," : "",
			    vd->addrs[k].text) == -1)
				break;
		if (buf_append(&ips, "", 1) == -1)
			break;
		users = domain_user_count(vd->dir);
		queue = domain_queue_size(vd->dir);
		printf("%-24s %-32s %-32s %5ld %5ld\n", vd->name, ips.data,
		    vd->dir, users, queue);
	}
	buf_free(&ips);
	domain_table_free(&t);
	return 0;
}

int
admin_domain(const struct admin_opts *o, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return domain_add(o, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "del") == 0)
		return domain_del(o, argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return domain_list(o);
	if (argc == 1)
		return domain_list(o);
	return admin_cmd_usage("domain");
}
