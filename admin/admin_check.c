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
 *	    others;
 *	run_as's uid its own: no other account of the domain and no
 *	    other domain's run_as has it;
 *	TLS pairs through tls_server_load(), the loader the daemons use
 *	    (missing file, key that does not match, expired or not yet
 *	    valid certificate, key readable by group or others);
 *	mailboxes: for Maildir, the home of every account of passwd with
 *	    a uid other than 0 and a login shell (not .../nologin) but
 *	    run_as: inside the root, present, owned by the account, not
 *	    group- or world-writable, Maildir and Maildir/{new,cur,tmp}
 *	    owned by it when present (reported at the passwd line); for
 *	    mbox, var/spool/mail present, root's, not world-writable;
 *	milters: syntax by milter_conf_parse() (in smtpd_domain_load),
 *	    and a unix: socket present inside the root;
 *	the virtmail-drop group, when usr/sbin/virtmail-postdrop exists;
 *	ids (idrange.h): uids= ranges that overlap or hold a host
 *	    account's id (at their virtual.conf line); every uid and gid
 *	    of passwd and group outside the domain's range, of a host
 *	    account, in another domain's range or used by another legacy
 *	    domain (at its passwd or group line).
 *
 * SECURITY
 *	Runs as root on the host, reading files of domain trees.  A file
 *	is only parsed after lstat showed a regular root-owned file in a
 *	root-owned etc/, so no link planted by a domain points root at a
 *	host file; etc/virtmail.conf is read through conf.c's in-root
 *	open.  Paths a domain names (homes, sockets, certificates) are
 *	resolved inside its root (openat2 RESOLVE_IN_ROOT), as they would
 *	be chrooted, and only examined with fstat.  Parsers report,
 *	never exit.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "aliases.h"
#include "buf.h"
#include "diag.h"
#include "domain.h"
#include "group.h"
#include "idrange.h"
#include "passwd.h"
#include "privdrop.h"
#include "queue.h"
#include "shadow.h"
#include "smtpd.h"
#include "tls.h"
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

/* What one domain leaves for the checks across domains. */
struct ck_run_as {
	char		 conf[PATH_MAX];	/* DIR/etc/virtmail.conf */
	const char	*domain;
	int		 line;			/* of run_as */
	uid_t		 uid;
	int		 set;
};

/* A diag that prefixes a domain's root to the root-relative paths the
 * daemons' loaders name (tls.c reports "/etc/ssl/x.key: ..."). */
struct ck_in_root {
	struct diag	*d;
	const char	*dir;
};

static void
ck_print_in_root(void *ctx, const char *msg)
{
	struct ck_in_root	*r = ctx;
	char			 line[PATH_MAX + 1024];
	int			 n;

	n = msg[0] == '/' ? snprintf(line, sizeof(line), "%s%s", r->dir,
	    msg) : -1;
	if (n < 0 || (size_t)n >= sizeof(line))
		(void)snprintf(line, sizeof(line), "%s", msg);
	if (r->d->fn != NULL)
		r->d->fn(r->d->ctx, line);
	r->d->count++;
}

/*
 * fstat rel as the domain's processes see it, chrooted into dir: a
 * symlink resolves inside the root, ".." stops at it.  0, or -1 with
 * errno.
 */
static int
ck_stat_in_root(const char *dir, const char *rel, struct stat *st)
{
	struct open_how	 how;
	int		 dfd, fd, saved;

	rel += strspn(rel, "/");
	if (*rel == '\0')
		rel = ".";
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	if (fd == -1 && errno == ENOSYS)
		fd = openat(dfd, rel, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	saved = errno;
	(void)close(dfd);
	if (fd == -1) {
		errno = saved;
		return -1;
	}
	if (fstat(fd, st) == -1) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	(void)close(fd);
	return 0;
}

/* The next line of text at *pos into dst (cut at size - 1); NULL at the
 * end.  Overlong lines were reported by the file's own parser. */
static char *
ck_line_next(const char **pos, char *dst, size_t size)
{
	const char	*p = *pos, *nl;
	size_t		 n;

	if (*p == '\0')
		return NULL;
	nl = strchr(p, '\n');
	n = nl != NULL ? (size_t)(nl - p) : strlen(p);
	*pos = nl != NULL ? nl + 1 : p + n;
	if (n >= size)
		n = size - 1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return dst;
}

/* Split a "key value" line as config.c does; NULL for a comment. */
static char *
ck_conf_split(char *line, char **val_r)
{
	char	*key, *val, *end;

	key = line + strspn(line, " \t");
	if (*key == '\0' || *key == '#')
		return NULL;
	val = key + strcspn(key, " \t");
	if (*val != '\0')
		*val++ = '\0';
	val += strspn(val, " \t");
	end = val + strlen(val);
	while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	*val_r = val;
	return key;
}

/*
 * etc/virtmail.conf line by line: the line of run_as, and each milter
 * line's socket.  Syntax was reported by smtpd_domain_load() through
 * the same milter_conf_parse() the worker uses; here a unix: socket
 * must exist inside the root (inet: takes address literals only).
 */
static void
ck_conf_lines(struct diag *d, const char *dir, const char *path,
    const char *text, int *run_as_line)
{
	struct milter_conf	 mc;
	struct stat		 st;
	const char		*pos = text, *err;
	char			 line[4096], *key, *val;
	int			 lineno = 0;

	*run_as_line = 0;
	while (ck_line_next(&pos, line, sizeof(line)) != NULL) {
		lineno++;
		if ((key = ck_conf_split(line, &val)) == NULL)
			continue;
		if (strcmp(key, "run_as") == 0 && *run_as_line == 0)
			*run_as_line = lineno;
		if (strcmp(key, "milter") != 0 ||
		    milter_conf_parse(val, &mc, &err) == -1 ||
		    mc.family != AF_UNIX)
			continue;
		if (ck_stat_in_root(dir, mc.host, &st) == -1)
			diag_report(d, path, lineno, "milter unix:%s: %s "
			    "(%s%s)", mc.host, strerror(errno), dir, mc.host);
		else if (!S_ISSOCK(st.st_mode))
			diag_report(d, path, lineno, "milter unix:%s: not a "
			    "socket", mc.host);
	}
}

/* Whether a login shell: anything but .../nologin (mail accounts made
 * by "user add" have /bin/false and still get mail). */
static int
ck_shell_login(const char *shell)
{
	const char	*b = strrchr(shell, '/');

	b = b != NULL ? b + 1 : shell;
	return strcmp(b, "nologin") != 0;
}

/* One account's home and Maildir (Maildir delivery), reported at its
 * passwd line. */
static void
ck_home(struct diag *d, const char *dir, const char *path, int lineno,
    const struct passwd_entry *pw)
{
	static const char *subs[] = { "Maildir", "Maildir/new",
	    "Maildir/cur", "Maildir/tmp" };
	struct stat	 st;
	char		 rel[PATH_MAX];
	size_t		 i, n;

	n = strlen(pw->dir);
	if (pw->dir[0] != '/' || strstr(pw->dir, "/../") != NULL ||
	    (n >= 3 && strcmp(pw->dir + n - 3, "/..") == 0)) {
		diag_report(d, path, lineno, "user %s: home %s: not an "
		    "absolute path inside the root", pw->name, pw->dir);
		return;
	}
	if (ck_stat_in_root(dir, pw->dir, &st) == -1) {
		diag_report(d, path, lineno, "user %s: home %s%s: %s",
		    pw->name, dir, pw->dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		diag_report(d, path, lineno, "user %s: home %s%s: not a "
		    "directory", pw->name, dir, pw->dir);
		return;
	}
	if (st.st_uid != pw->uid)
		diag_report(d, path, lineno, "user %s: home %s%s: owned by "
		    "uid %lu, not by the user (uid %lu)", pw->name, dir,
		    pw->dir, (unsigned long)st.st_uid, (unsigned long)pw->uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		diag_report(d, path, lineno, "user %s: home %s%s: group or "
		    "world writable (mode %04o)", pw->name, dir, pw->dir,
		    (unsigned int)(st.st_mode & 07777));
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		n = (size_t)snprintf(rel, sizeof(rel), "%s/%s", pw->dir,
		    subs[i]);
		if (n >= sizeof(rel))
			return;
		if (ck_stat_in_root(dir, rel, &st) == -1) {
			if (errno != ENOENT)
				diag_report(d, path, lineno, "user %s: %s%s: "
				    "%s", pw->name, dir, rel, strerror(errno));
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			diag_report(d, path, lineno, "user %s: %s%s: not a "
			    "directory", pw->name, dir, rel);
		else if (st.st_uid != pw->uid)
			diag_report(d, path, lineno, "user %s: %s%s: owned by "
			    "uid %lu, not by the user (uid %lu)", pw->name,
			    dir, rel, (unsigned long)st.st_uid,
			    (unsigned long)pw->uid);
	}
}

/* Mailbox paths: var/spool/mail for mbox, each home for Maildir. */
static void
ck_mailboxes(struct diag *d, const char *dir, const struct smtpd_domain *sd,
    const struct passwd_file *pf, const char *path, const char *text)
{
	const struct passwd_entry	*pw;
	struct stat			 st;
	const char			*pos = text;
	char				 line[PASSWD_LINE_MAX + 1];
	char				 spool[PATH_MAX];
	unsigned char			*seen;
	int				 lineno = 0;

	if (sd->mailbox_mbox) {
		if (ck_path(spool, sizeof(spool), dir,
		    DELIVER_MBOX_DIR + 1) == -1)
			return;
		if (ck_stat_in_root(dir, DELIVER_MBOX_DIR, &st) == -1)
			diag_report(d, spool, 0, "%s (mailbox mbox needs it)",
			    strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			diag_report(d, spool, 0, "not a directory");
		else {
			if (st.st_uid != 0)
				diag_report(d, spool, 0, "not owned by root");
			if (st.st_mode & S_IWOTH)
				diag_report(d, spool, 0, "world writable "
				    "(mode %04o)", (unsigned int)
				    (st.st_mode & 07777));
		}
		return;
	}
	if (pf->n == 0 || (seen = calloc(pf->n, 1)) == NULL)
		return;
	while (ck_line_next(&pos, line, sizeof(line)) != NULL) {
		lineno++;
		line[strcspn(line, ":")] = '\0';
		/* The entry lookups use: the first of its name. */
		if ((pw = passwd_find(pf, line)) == NULL ||
		    seen[pw - pf->entries])
			continue;
		seen[pw - pf->entries] = 1;
		if (pw->uid == 0 || !ck_shell_login(pw->shell) ||
		    (sd->run_as != NULL && strcmp(pw->name, sd->run_as) == 0))
			continue;
		ck_home(d, dir, path, lineno, pw);
	}
	free(seen);
}

/* run_as's uid is its own in the domain. */
static void
ck_run_as_uid(struct diag *d, const struct passwd_file *pf,
    const struct passwd_entry *ra, const char *path, int line)
{
	size_t	 i;

	for (i = 0; i < pf->n; i++)
		if (&pf->entries[i] != ra && pf->entries[i].uid == ra->uid)
			diag_report(d, path, line, "run_as %s: uid %lu also "
			    "used by account %s", ra->name,
			    (unsigned long)ra->uid, pf->entries[i].name);
}

static void
ck_domain(const struct smtpd_conf *c, const struct idpolicy *pol,
    const struct domain *vd, struct diag *d, struct ck_run_as *ra)
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
	struct tls_server		*ts;
	struct ck_in_root		 ir;
	struct diag			 dr;
	struct buf			 conf_text, pw_text;
	struct stat			 st;
	const char			*err;
	char				 path[PATH_MAX], grpath[PATH_MAX];
	int				 ok[sizeof(files) / sizeof(files[0])];
	int				 gf_ok = 0, loaded = 0;
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
		loaded = 1;
	} else
		memset(&sd, 0, sizeof(sd));

	memset(&pf, 0, sizeof(pf));
	memset(&gf, 0, sizeof(gf));
	if (ok[1] == 1) {
		(void)ck_path(path, sizeof(path), vd->dir, "etc/passwd");
		if (passwd_load(&pf, path, d, &err) == -1)
			diag_report(d, path, 0, "%s", err);
	}
	if (ok[2] == 1) {
		(void)ck_path(path, sizeof(path), vd->dir, "etc/group");
		if (group_load(&gf, path, d, &err) == -1)
			diag_report(d, path, 0, "%s", err);
		else
			gf_ok = 1;
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

	/* Every uid and gid against the id policy, at its line. */
	if (pol != NULL && (ok[1] == 1 || gf_ok)) {
		(void)ck_path(path, sizeof(path), vd->dir, "etc/passwd");
		(void)ck_path(grpath, sizeof(grpath), vd->dir, "etc/group");
		(void)idpolicy_audit(pol, idpolicy_domain(pol, vd->dir),
		    ok[1] == 1 ? &pf : NULL, path, gf_ok ? &gf : NULL, grpath,
		    d);
	}

	/* etc/virtmail.conf's lines: run_as's line, milter sockets. */
	(void)ck_path(ra->conf, sizeof(ra->conf), vd->dir,
	    SMTPD_DOMAIN_CONF);
	ra->domain = vd->name;
	if (ok[0] == 1 && admin_file_read(ra->conf, &conf_text, 0) == 0) {
		ck_conf_lines(d, vd->dir, ra->conf, conf_text.data,
		    &ra->line);
		buf_free(&conf_text);
	}

	if (sd.run_as != NULL && ok[1] == 1) {
		if ((pw = passwd_find(&pf, sd.run_as)) == NULL)
			diag_report(d, ra->conf, 0, "run_as %s: no such "
			    "account in %s/etc/passwd", sd.run_as, vd->dir);
		else if (pw->uid == 0 || pw->gid == 0)
			diag_report(d, ra->conf, 0, "run_as %s: uid or gid 0",
			    sd.run_as);
		else {
			ck_queue(d, vd->dir, sd.run_as, &pf);
			ck_run_as_uid(d, &pf, pw, ra->conf, ra->line);
			ra->uid = pw->uid;
			ra->set = 1;
		}
	}

	/* TLS pairs: the loader the daemons' master uses, so the two
	 * never disagree; its paths are inside the root. */
	if (loaded && sd.ntls_pairs > 0) {
		ir.d = d;
		ir.dir = vd->dir;
		memset(&dr, 0, sizeof(dr));
		dr.fn = ck_print_in_root;
		dr.ctx = &ir;
		ts = tls_server_load(vd->dir, sd.tls_pairs, sd.ntls_pairs, &dr);
		tls_server_free(ts);
	}

	/* Mailboxes, reported at the account's passwd line. */
	if (loaded && ok[1] == 1) {
		(void)ck_path(path, sizeof(path), vd->dir, "etc/passwd");
		if (admin_file_read(path, &pw_text, 0) == 0) {
			ck_mailboxes(d, vd->dir, &sd, &pf, path, pw_text.data);
			buf_free(&pw_text);
		}
	}

	/* The drop writer runs setgid virtmail-drop (docs/SECURITY.md). */
	if (ck_path(path, sizeof(path), vd->dir, "usr/sbin/virtmail-postdrop")
	    == 0 && lstat(path, &st) == 0 && gf_ok &&
	    group_find(&gf, DROP_GROUP) == NULL) {
		(void)ck_path(path, sizeof(path), vd->dir, "etc/group");
		diag_report(d, path, 0, "no %s group, which "
		    "usr/sbin/virtmail-postdrop needs", DROP_GROUP);
	}
	if (gf_ok)
		group_free(&gf);
	passwd_free(&pf);
	smtpd_domain_free(&sd);
}

int
admin_check(const struct admin_opts *o, int argc, char **argv)
{
	struct domain_table	 t;
	struct smtpd_conf	 c;
	struct ck_run_as	*ra;
	struct idpolicy		 pol;
	struct diag		 d;
	const char		*err;
	size_t			 i, k, n = 0;
	int			 pol_ok;

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
	/* Ranges against each other and the host's accounts. */
	pol_ok = idpolicy_build(&pol, &t, IDPOLICY_HOST_PASSWD,
	    IDPOLICY_HOST_GROUP, &d, &err) == 0;
	if (!pol_ok)
		diag_report(&d, IDPOLICY_HOST_PASSWD, 0, "id policy: %s", err);

	if ((ra = calloc(t.ndomains + 1, sizeof(*ra))) == NULL) {
		admin_warnx("out of memory");
		domain_table_free(&t);
		return EX_OSERR;
	}
	for (i = 0; i < t.ndomains; i++) {
		for (k = 0; k < i; k++)
			if (strcmp(t.domains[k].dir, t.domains[i].dir) == 0)
				break;
		if (k < i)
			continue;
		ck_domain(&c, pol_ok ? &pol : NULL, &t.domains[i], &d, &ra[i]);
		n++;
		/* Each domain's run_as a uid of its own (docs/SECURITY.md):
		 * the chroot is all that keeps two domains apart. */
		for (k = 0; ra[i].set && k < i; k++)
			if (ra[k].set && ra[k].uid == ra[i].uid)
				diag_report(&d, ra[i].conf, ra[i].line,
				    "run_as uid %lu also used by domain %s",
				    (unsigned long)ra[i].uid, ra[k].domain);
	}
	free(ra);
	if (pol_ok)
		idpolicy_free(&pol);
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
