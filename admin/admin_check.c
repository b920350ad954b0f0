/*
 * admin_check.c — "virtmail check": validate virtual.conf, virtmail.conf
 * and every domain, printing one "file:line: message" per problem (as
 * postfix check does); exit 0 only when there is none.
 *
 * What is checked for each domain root DIR:
 *	DIR and DIR/etc: directories owned by root, not group- or
 *	    world-writable (privdrop.h refuses to chroot otherwise);
 *	etc/virtmail.conf, etc/passwd, etc/group, etc/shadow: present,
 *	    regular files (not links) owned by root and not writable by
 *	    others; etc/shadow readable by root only; etc/aliases and
 *	    etc/mailname the same when present;
 *	etc/virtmail.conf keys and values (smtpd_domain_load), run_as
 *	    present, an account of the domain's passwd, not uid 0;
 *	passwd, shadow, group and aliases syntax, line by line;
 *	the queue directory: present, owned by run_as, no access for
 *	    others.
 * Later (issue 8): mailbox paths, TLS pairs and expiry, milters.
 *
 * SECURITY
 *	Runs as root on the host, reading files of domain trees.  A file
 *	is only parsed after lstat showed a regular root-owned file in a
 *	root-owned etc/, so no link planted by a domain points root at a
 *	host file; etc/virtmail.conf is read through conf.c's in-root
 *	open.  Parsers report, never exit.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "aliases.h"
#include "diag.h"
#include "domain.h"
#include "group.h"
#include "passwd.h"
#include "privdrop.h"
#include "queue.h"
#include "shadow.h"
#include "smtpd.h"
#include "virtmail.h"

enum ck_kind {
	CK_REQUIRED,
	CK_OPTIONAL,
	CK_SECRET,		/* required, root-only */
};

static void
ck_print(void *ctx, const char *msg)
{
	(void)ctx;
	printf("%s\n", msg);
}

static int
ck_path(char *dst, size_t size, const char *dir, const char *rel)
{
	int	 n;

	n = snprintf(dst, size, "%s/%s", dir, rel);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* A directory owned by root, not writable by group or others. */
static int
ck_root_dir(struct diag *d, const char *path)
{
	struct stat	 st;

	if (lstat(path, &st) == -1) {
		diag_report(d, path, 0, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		diag_report(d, path, 0, "not a directory");
		return -1;
	}
	if (st.st_uid != 0) {
		diag_report(d, path, 0, "not owned by root");
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		diag_report(d, path, 0, "group or world writable (mode %04o)",
		    (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* A file of etc/: 1 when present and fit to parse, 0 absent, -1 bad. */
static int
ck_file(struct diag *d, const char *path, enum ck_kind kind)
{
	struct stat	 st;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT && kind == CK_OPTIONAL)
			return 0;
		diag_report(d, path, 0, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		diag_report(d, path, 0, "not a regular file");
		return -1;
	}
	if (st.st_uid != 0) {
		diag_report(d, path, 0, "not owned by root");
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		diag_report(d, path, 0, "group or world writable (mode %04o)",
		    (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	if (kind == CK_SECRET && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		diag_report(d, path, 0, "readable by group or others (mode "
		    "%04o); it holds password hashes", (unsigned int)
		    (st.st_mode & 07777));
		return -1;
	}
	return 1;
}

static void
ck_queue(struct diag *d, const char *dir, const char *run_as,
    const struct passwd_file *pf)
{
	const struct passwd_entry	*pw;
	struct stat			 st;
	char				 path[PATH_MAX];

	if (ck_path(path, sizeof(path), dir, QUEUE_DIR + 1) == -1)
		return;
	if (lstat(path, &st) == -1) {
		diag_report(d, path, 0, "%s (create it owned by %s, mode 0700)",
		    strerror(errno), run_as);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		diag_report(d, path, 0, "not a directory");
		return;
	}
	if ((pw = passwd_find(pf, run_as)) != NULL && st.st_uid != pw->uid)
		diag_report(d, path, 0, "owned by uid %lu, not by run_as %s "
		    "(uid %lu)", (unsigned long)st.st_uid, run_as,
		    (unsigned long)pw->uid);
	if (st.st_mode & S_IRWXO)
		diag_report(d, path, 0, "accessible to others (mode %04o)",
		    (unsigned int)(st.st_mode & 07777));
}

static void
ck_domain(const struct smtpd_conf *c, const struct domain *vd,
    struct diag *d)
{
	static const struct {
		const char	*rel;
		enum ck_kind	 kind;
	} files[] = {
		{ SMTPD_DOMAIN_CONF, CK_REQUIRED },
		{ "etc/passwd", CK_REQUIRED },
		{ "etc/group", CK_REQUIRED },
		{ "etc/shadow", CK_SECRET },
		{ "etc/aliases", CK_OPTIONAL },
		{ "etc/mailname", CK_OPTIONAL },
	};
	const struct passwd_entry	*pw;
	struct smtpd_domain		 sd;
	struct passwd_file		 pf;
	struct shadow_file		 sf;
	struct group_file		 gf;
	struct aliases			 al;
	const char			*err;
	char				 path[PATH_MAX];
	int				 ok[sizeof(files) / sizeof(files[0])];
	size_t				 i;

	if (ck_root_dir(d, vd->dir) == -1)
		return;
	if (ck_path(path, sizeof(path), vd->dir, "etc") == -1 ||
	    ck_root_dir(d, path) == -1)
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (ck_path(path, sizeof(path), vd->dir, files[i].rel) == -1) {
			diag_report(d, vd->dir, 0, "path too long");
			return;
		}
		ok[i] = ck_file(d, path, files[i].kind);
	}

	/* etc/virtmail.conf and etc/mailname (in-root reads). */
	if (ok[0] == 1 && ok[5] != -1) {
		(void)smtpd_domain_load(&sd, vd, c, d);
	} else
		memset(&sd, 0, sizeof(sd));

	memset(&pf, 0, sizeof(pf));
	if (ok[1] == 1) {
		(void)ck_path(path, sizeof(path), vd->dir, "etc/passwd");
		if (passwd_load(&pf, path, d, &err) == -1)
			diag_report(d, path, 0, "%s", err);
	}
	if (ok[2] == 1) {
		memset(&gf, 0, sizeof(gf));
		(void)ck_path(path, sizeof(path), vd->dir, "etc/group");
		if (group_load(&gf, path, d, &err) == -1)
			diag_report(d, path, 0, "%s", err);
		else
			group_free(&gf);
	}
	if (ok[3] == 1) {
		memset(&sf, 0, sizeof(sf));
		(void)ck_path(path, sizeof(path), vd->dir, "etc/shadow");
		if (shadow_load(&sf, path, d, &err) == -1)
			diag_report(d, path, 0, "%s", err);
		else
			shadow_free(&sf);
	}
	if (ok[4] == 1) {
		memset(&al, 0, sizeof(al));
		(void)ck_path(path, sizeof(path), vd->dir, "etc/aliases");
		if (aliases_load(&al, path, d, &err) == -1)
			diag_report(d, path, 0, "%s", err);
		else
			aliases_free(&al);
	}

	if (sd.run_as != NULL && ok[1] == 1) {
		(void)ck_path(path, sizeof(path), vd->dir, SMTPD_DOMAIN_CONF);
		if ((pw = passwd_find(&pf, sd.run_as)) == NULL)
			diag_report(d, path, 0, "run_as %s: no such account "
			    "in %s/etc/passwd", sd.run_as, vd->dir);
		else if (pw->uid == 0 || pw->gid == 0)
			diag_report(d, path, 0, "run_as %s: uid or gid 0",
			    sd.run_as);
		else
			ck_queue(d, vd->dir, sd.run_as, &pf);
	}
	passwd_free(&pf);
	smtpd_domain_free(&sd);
}

int
admin_check(const struct admin_opts *o, int argc, char **argv)
{
	struct domain_table	 t;
	struct smtpd_conf	 c;
	struct diag		 d;
	const char		*err;
	size_t			 i, k, n = 0;

	(void)argv;
	if (argc != 1) {
		admin_warnx("usage: virtmail check");
		return EX_USAGE;
	}
	memset(&d, 0, sizeof(d));
	d.fn = ck_print;
	if (domain_table_load(&t, o->virtual_conf, &d, &err) == -1) {
		diag_report(&d, o->virtual_conf, 0, "%s", err);
		memset(&t, 0, sizeof(t));
	} else if (t.ndomains == 0)
		diag_report(&d, o->virtual_conf, 0, "no domains");
	(void)smtpd_conf_load(&c, o->global_conf, &d);

	for (i = 0; i < t.ndomains; i++) {
		for (k = 0; k < i; k++)
			if (strcmp(t.domains[k].dir, t.domains[i].dir) == 0)
				break;
		if (k < i)
			continue;
		ck_domain(&c, &t.domains[i], &d);
		n++;
	}
	domain_table_free(&t);
	if (d.count > 0) {
		printf("%s check: %d problem%s\n", ADMIN_NAME, d.count,
		    d.count == 1 ? "" : "s");
		(void)fflush(stdout);
		return 1;
	}
	printf("%s check: configuration OK, %zu domain%s\n", ADMIN_NAME, n,
	    n == 1 ? "" : "s");
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}
