/*
 * admin_user.c — a domain's users and aliases: "virtmail user
 * add|del|list", "passwd", "alias add|del|list", "newaliases".
 *
 * SECURITY
 *	Runs as root on the host.  Every change to a domain's etc/passwd,
 *	etc/shadow, etc/group and etc/aliases happens under the domain's
 *	etc/.pwd.lock (admin_lock_domain) and replaces the file
 *	atomically (admin_edit.c).  Names are checked before they reach
 *	a file or a path: passwd_name_valid (no '/', "..", ':', control
 *	characters, at most PASSWD_NAME_MAX bytes), and lower case only,
 *	since mail addresses are matched without case.  A home directory
 *	is made with mkdirat/fchownat under a descriptor of the root-owned
 *	home/, never through a path a domain user could have replaced by
 *	a symlink.  Passwords are read from stdin or the terminal, hashed
 *	with yescrypt and wiped (explicit_bzero); never printed or logged.
 *
 * CHOICES
 *	A user's uid is one more than the highest uid of the domain's
 *	block (run_as's uid + 1 .. + ADMIN_UID_BLOCK - 2) in use, never a
 *	freed one, so a new user never inherits the files of a deleted
 *	one.  Each user gets a group of its own name and number.  Without
 *	a password (no terminal, no --password-stdin) the account is made
 *	locked ("!") until "virtmail passwd".  User shells are /bin/false:
 *	these are mail accounts.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "group.h"
#include "passwd.h"
#include "shadow.h"
#include "virtmail.h"

#define USER_PASS_MAX	1024
#define USER_SHELL	"/bin/false"

/* The domain being edited: its root and its run_as uid. */
struct user_dom {
	struct admin_ctx	 x;
	const struct domain	*vd;
	uid_t			 base;
	char			*run_as;
};

static void
user_stderr(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

static int
user_dom_open(struct user_dom *u, const struct admin_opts *o,
    const char *key)
{
	struct smtpd_domain	 sd;
	struct passwd_file	 pf;
	const struct passwd_entry *pw;
	struct diag		 d;
	const char		*err;
	char			 path[PATH_MAX];
	int			 rc;

	memset(u, 0, sizeof(*u));
	if ((rc = admin_ctx_load(&u->x, o)) != 0)
		return rc;
	if ((u->vd = admin_domain_find(&u->x, key)) == NULL) {
		admin_warnx("%s: no such domain", key);
		admin_ctx_free(&u->x);
		return EX_NOHOST;
	}
	memset(&d, 0, sizeof(d));
	d.fn = user_stderr;
	memset(&pf, 0, sizeof(pf));
	if (smtpd_domain_load(&sd, u->vd, &u->x.conf, &d) == -1 ||
	    sd.run_as == NULL || (u->run_as = strdup(sd.run_as)) == NULL ||
	    admin_path(path, sizeof(path), u->vd->dir, "etc/passwd") == -1 ||
	    passwd_load(&pf, path, &d, &err) == -1 ||
	    (pw = passwd_find(&pf, u->run_as)) == NULL || pw->uid == 0) {
		admin_warnx("%s: no run_as account (see \"virtmail check\")",
		    key);
		smtpd_domain_free(&sd);
		passwd_free(&pf);
		free(u->run_as);
		admin_ctx_free(&u->x);
		return EX_CONFIG;
	}
	u->base = pw->uid;
	passwd_free(&pf);
	smtpd_domain_free(&sd);
	return 0;
}

static void
user_dom_close(struct user_dom *u)
{
	free(u->run_as);
	admin_ctx_free(&u->x);
}

static int
user_name_ok(const char *name)
{
	const char	*p;

	if (!passwd_name_valid(name)) {
		admin_warnx("\"%s\": not a valid name (letters, digits, '.', "
		    "'_', '-'; at most %d)", name, PASSWD_NAME_MAX);
		return 0;
	}
	for (p = name; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z') {
			admin_warnx("%s: names are lower case", name);
			return 0;
		}
	return 1;
}

/* Read one line without echo from the terminal. */
static int
user_prompt(const char *prompt, char *dst, size_t size)
{
	struct termios	 t, saved;
	FILE		*tty;
	int		 ok;

	if ((tty = fopen("/dev/tty", "r+e")) == NULL)
		return -1;
	if (tcgetattr(fileno(tty), &saved) == -1) {
		(void)fclose(tty);
		return -1;
	}
	t = saved;
	t.c_lflag &= ~(tcflag_t)ECHO;
	(void)tcsetattr(fileno(tty), TCSAFLUSH, &t);
	fputs(prompt, tty);
	fflush(tty);
	ok = fgets(dst, (int)size, tty) != NULL;
	(void)tcsetattr(fileno(tty), TCSAFLUSH, &saved);
	fputc('\n', tty);
	(void)fclose(tty);
	if (!ok)
		return -1;
	dst[strcspn(dst, "\r\n")] = '\0';
	return 0;
}

/*
 * A yescrypt hash of a password from stdin (from_stdin) or typed twice
 * on the terminal, into hash; 0, 1 when there is none to be had, or -1.
 */
static int
user_password_hash(int from_stdin, char *hash, size_t size)
{
	struct crypt_data	*cd;
	char			 pw[USER_PASS_MAX], again[USER_PASS_MAX];
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	int			 rc = -1;

	if (from_stdin) {
		if (fgets(pw, sizeof(pw), stdin) == NULL) {
			admin_warnx("no password on stdin");
			return -1;
		}
		pw[strcspn(pw, "\r\n")] = '\0';
	} else if (isatty(0)) {
		if (user_prompt("New password: ", pw, sizeof(pw)) == -1 ||
		    user_prompt("Again: ", again, sizeof(again)) == -1)
			return -1;
		if (strcmp(pw, again) != 0) {
			explicit_bzero(pw, sizeof(pw));
			explicit_bzero(again, sizeof(again));
			admin_warnx("the passwords differ");
			return -1;
		}
		explicit_bzero(again, sizeof(again));
	} else
		return 1;
	if (pw[0] == '\0') {
		admin_warnx("empty password refused");
		goto out;
	}
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		goto out;
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) ==
	    NULL || crypt_rn(pw, salt, cd, sizeof(*cd)) == NULL ||
	    cd->output[0] == '*' ||
	    strlcpy(hash, cd->output, size) >= size)
		admin_warnx("crypt: %s", strerror(errno));
	else
		rc = 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
 out:
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

/* Read a domain file under dir into b (NUL-terminated text). */
static int
user_read(const struct user_dom *u, const char *rel, char *path,
    size_t size, struct buf *b)
{
	if (admin_path(path, size, u->vd->dir, rel) == -1)
		return -1;
	return admin_file_read(path, b, 0);
}

/*
 * Copy text into out without the lines whose first ':'-field is name;
 * in group files (members) also take name out of member lists.
 * Returns the number of lines dropped, or -1.
 */
static int
user_text_drop(const char *text, const char *name, int members,
    struct buf *out)
{
	const char	*line, *next, *m, *mend, *end;
	size_t		 nlen = strlen(name);
	int		 n = 0, first;

	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next != NULL ? next + 1 : line + strlen(line);
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
			n++;
			continue;
		}
		/* The fourth field of a group line: "a,b,c". */
		m = line;
		if (members && (m = strchr(m, ':')) != NULL &&
		    (m = strchr(m + 1, ':')) != NULL &&
		    (m = strchr(m + 1, ':')) != NULL) {
			m++;
			if (buf_append(out, line, (size_t)(m - line)) == -1)
				return -1;
			end = next[-1] == '\n' ? next - 1 : next;
			for (first = 1; m < end; m = mend + 1) {
				mend = memchr(m, ',', (size_t)(end - m));
				if (mend == NULL)
					mend = end;
				if ((size_t)(mend - m) == nlen &&
				    memcmp(m, name, nlen) == 0)
					continue;
				if ((!first && buf_append(out, ",", 1) == -1) ||
				    buf_append(out, m, (size_t)(mend - m)) ==
				    -1)
					return -1;
				first = 0;
			}
			if (buf_append(out, "\n", 1) == -1)
				return -1;
			continue;
		}
		if (buf_append(out, line, (size_t)(next - line)) == -1)
			return -1;
	}
	return n;
}

static int
user_mkdir(int dfd, const char *name, uid_t uid)
{
	if (mkdirat(dfd, name, 0700) == -1 ||
	    fchownat(dfd, name, uid, (gid_t)uid, AT_SYMLINK_NOFOLLOW) == -1) {
		admin_warnx("%s: %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

/* home/NAME/Maildir/{cur,new,tmp}, 0700, owned by the user. */
static int
user_make_home(const struct user_dom *u, const char *name, uid_t uid)
{
	static const char *const subs[] = {
		"Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"
	};
	char	 path[PATH_MAX];
	size_t	 i;
	int	 hfd, ufd, rc = -1;

	if (admin_path(path, sizeof(path), u->vd->dir, "home") == -1)
		return -1;
	if ((hfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	if (user_mkdir(hfd, name, uid) == -1) {
		if (errno == EEXIST)
			admin_warnx("%s/%s: left by an earlier user; remove "
			    "it first", path, name);
		(void)close(hfd);
		return -1;
	}
	ufd = openat(hfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	(void)close(hfd);
	if (ufd == -1)
		return -1;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (user_mkdir(ufd, subs[i], uid) == -1)
			goto out;
	rc = 0;
 out:
	(void)close(ufd);
	return rc;
}

static int
user_add(const struct admin_opts *o, int argc, char **argv)
{
	struct user_dom		 u;
	struct passwd_file	 pf;
	struct group_file	 gf;
	struct diag		 d;
	struct buf		 pw, sh, gr;
	char			 hash[CRYPT_OUTPUT_SIZE] = "!";
	char			 ppath[PATH_MAX], spath[PATH_MAX];
	char			 gpath[PATH_MAX];
	const char		*name;
	unsigned long		 uid, top;
	size_t			 i;
	int			 from_stdin = 0, lk, rc, h;

	if (argc == 4 && strcmp(argv[3], "--password-stdin") == 0)
		from_stdin = 1;
	else if (argc != 3)
		return admin_cmd_usage("user");
	name = argv[2];
	if (!user_name_ok(name))
		return EX_DATAERR;
	if ((rc = user_dom_open(&u, o, argv[1])) != 0)
		return rc;
	if ((h = user_password_hash(from_stdin, hash, sizeof(hash))) == -1) {
		user_dom_close(&u);
		return EX_DATAERR;
	}
	if ((lk = admin_lock_domain(u.vd->dir)) == -1) {
		user_dom_close(&u);
		return EX_CANTCREAT;
	}
	rc = EX_CANTCREAT;
	memset(&d, 0, sizeof(d));
	memset(&pf, 0, sizeof(pf));
	memset(&gf, 0, sizeof(gf));
	buf_init(&sh, 0);
	buf_init(&gr, 0);
	if (user_read(&u, "etc/passwd", ppath, sizeof(ppath), &pw) == -1)
		goto out_unlock;
	if (user_read(&u, "etc/shadow", spath, sizeof(spath), &sh) == -1 ||
	    user_read(&u, "etc/group", gpath, sizeof(gpath), &gr) == -1 ||
	    passwd_parse(&pf, ppath, pw.data, pw.len, &d) == -1 ||
	    group_parse(&gf, gpath, gr.data, gr.len, &d) == -1)
		goto out;
	if (passwd_find(&pf, name) != NULL || group_find(&gf, name) != NULL) {
		admin_warnx("%s: already in %s or %s", name, ppath, gpath);
		rc = EX_DATAERR;
		goto out;
	}
	top = (unsigned long)u.base;
	for (i = 0; i < pf.n; i++)
		if (pf.entries[i].uid > top && pf.entries[i].uid <
		    u.base + ADMIN_UID_BLOCK - 1)
			top = pf.entries[i].uid;
	for (i = 0; i < gf.n; i++)
		if (gf.entries[i].gid > top && gf.entries[i].gid <
		    u.base + ADMIN_UID_BLOCK - 1)
			top = gf.entries[i].gid;
	uid = top + 1;
	if (uid >= (unsigned long)u.base + ADMIN_UID_BLOCK - 1) {
		admin_warnx("%s: the domain's uids %lu-%lu are all used",
		    u.vd->name, (unsigned long)u.base + 1,
		    (unsigned long)u.base + ADMIN_UID_BLOCK - 2);
		goto out;
	}
	if (user_make_home(&u, name, (uid_t)uid) == -1)
		goto out;
	/* group, then shadow, then passwd: until the last rename the user
	 * does not exist, and a crash leaves only harmless extra lines. */
	if (buf_printf(&gr, "%s:x:%lu:\n", name, uid) == -1 ||
	    buf_printf(&sh, "%s:%s:%ld:0:99999:7:::\n", name, hash,
	    (long)(time(NULL) / 86400)) == -1 ||
	    buf_printf(&pw, "%s:x:%lu:%lu:%s:/home/%s:%s\n", name, uid, uid,
	    name, name, USER_SHELL) == -1)
		goto out;
	if (admin_file_replace(gpath, gr.data, gr.len, 0644) == -1 ||
	    admin_file_replace(spath, sh.data, sh.len, 0600) == -1 ||
	    admin_file_replace(ppath, pw.data, pw.len, 0644) == -1)
		goto out;
	printf("%s@%s: uid %lu, home /home/%s%s\n", name, u.vd->name, uid,
	    name, h == 1 ? ", no password yet (locked; see \"virtmail "
	    "passwd\")" : "");
	rc = 0;
 out:
	explicit_bzero(hash, sizeof(hash));
	buf_free_secret(&sh);
	buf_free(&gr);
	buf_free(&pw);
	passwd_free(&pf);
	group_free(&gf);
 out_unlock:
	admin_unlock(lk);
	user_dom_close(&u);
	return rc;
}

static int
user_del(const struct admin_opts *o, int argc, char **argv)
{
	struct user_dom		 u;
	struct passwd_file	 pf;
	const struct passwd_entry *e;
	struct diag		 d;
	struct buf		 pw, sh, gr, npw, nsh, ngr;
	char			 ppath[PATH_MAX], spath[PATH_MAX];
	char			 gpath[PATH_MAX], home[PATH_MAX];
	const char		*name;
	int			 purge = 0, lk, rc;

	if (argc == 4 && strcmp(argv[3], "--purge") == 0)
		purge = 1;
	else if (argc != 3)
		return admin_cmd_usage("user");
	name = argv[2];
	if (!user_name_ok(name))
		return EX_DATAERR;
	if ((rc = user_dom_open(&u, o, argv[1])) != 0)
		return rc;
	if ((lk = admin_lock_domain(u.vd->dir)) == -1) {
		user_dom_close(&u);
		return EX_CANTCREAT;
	}
	rc = EX_CANTCREAT;
	memset(&d, 0, sizeof(d));
	memset(&pf, 0, sizeof(pf));
	buf_init(&pw, 0);
	buf_init(&sh, 0);
	buf_init(&gr, 0);
	buf_init(&npw, 64 * 1024 * 1024);
	buf_init(&nsh, 64 * 1024 * 1024);
	buf_init(&ngr, 64 * 1024 * 1024);
	if (user_read(&u, "etc/passwd", ppath, sizeof(ppath), &pw) == -1 ||
	    user_read(&u, "etc/shadow", spath, sizeof(spath), &sh) == -1 ||
	    user_read(&u, "etc/group", gpath, sizeof(gpath), &gr) == -1 ||
	    passwd_parse(&pf, ppath, pw.data, pw.len, &d) == -1)
		goto out;
	if ((e = passwd_find(&pf, name)) == NULL) {
		admin_warnx("%s: no such user in %s", name, ppath);
		rc = EX_NOUSER;
		goto out;
	}
	if (e->uid == 0 || strcmp(name, u.run_as) == 0 ||
	    strncmp(e->dir, "/home/", 6) != 0) {
		admin_warnx("%s: not a mail user of the domain; refused",
		    name);
		rc = EX_NOPERM;
		goto out;
	}
	/* Refused before anything changes, so it can be run again. */
	if (purge && (rc = admin_procs_user_idle(name, e->uid)) != 0) {
		admin_warnx("%s: stop them first; %s unchanged", name, ppath);
		goto out;
	}
	rc = EX_CANTCREAT;
	if (admin_path(home, sizeof(home), u.vd->dir, e->dir + 1) == -1 ||
	    user_text_drop(pw.data, name, 0, &npw) == -1 ||
	    user_text_drop(sh.data, name, 0, &nsh) == -1 ||
	    user_text_drop(gr.data, name, 1, &ngr) == -1 ||
	    buf_append(&npw, "", 1) == -1 || buf_append(&nsh, "", 1) == -1 ||
	    buf_append(&ngr, "", 1) == -1)
		goto out;
	/* passwd first: from then on the user is gone. */
	if (admin_file_replace(ppath, npw.data, npw.len - 1, 0644) == -1 ||
	    admin_file_replace(spath, nsh.data, nsh.len - 1, 0600) == -1 ||
	    admin_file_replace(gpath, ngr.data, ngr.len - 1, 0644) == -1)
		goto out;
	printf("%s@%s: removed\n", name, u.vd->name);
	rc = 0;
	if (purge) {
		/* From the domain's root down: no symlink on the way. */
		if (admin_rmtree(u.vd->dir, e->dir + 1) == -1)
			rc = EX_CANTCREAT;
	} else
		printf("%s: kept (--purge removes it)\n", home);
 out:
	buf_free(&pw);
	buf_free_secret(&sh);
	buf_free_secret(&nsh);
	buf_free(&gr);
	buf_free(&npw);
	buf_free(&ngr);
	passwd_free(&pf);
	admin_unlock(lk);
	user_dom_close(&u);
	return rc;
}

static int
user_list(const struct admin_opts *o, int argc, char **argv)
{
	struct user_dom		 u;
	struct passwd_file	 pf;
	struct shadow_file	 sf;
	const struct shadow_entry *s;
	struct diag		 d;
	const char		*err, *state;
	char			 path[PATH_MAX];
	size_t			 i;
	int			 rc;

	if (argc != 2)
		return admin_cmd_usage("user");
	if ((rc = user_dom_open(&u, o, argv[1])) != 0)
		return rc;
	memset(&d, 0, sizeof(d));
	d.fn = user_stderr;
	memset(&pf, 0, sizeof(pf));
	memset(&sf, 0, sizeof(sf));
	if (admin_path(path, sizeof(path), u.vd->dir, "etc/passwd") == -1 ||
	    passwd_load(&pf, path, &d, &err) == -1 ||
	    admin_path(path, sizeof(path), u.vd->dir, "etc/shadow") == -1 ||
	    shadow_load(&sf, path, &d, &err) == -1) {
		admin_warnx("%s: %s", path, "cannot read");
		passwd_free(&pf);
		user_dom_close(&u);
		return EX_NOINPUT;
	}
	printf("%-20s %8s  %-30s %s\n", "USER", "UID", "HOME", "PASSWORD");
	for (i = 0; i < pf.n; i++) {
		if (strncmp(pf.entries[i].dir, "/home/", 6) != 0)
			continue;
		s = shadow_find(&sf, pf.entries[i].name);
		state = s == NULL ? "missing" : shadow_hash_locked(s->hash) ?
		    "locked" : "set";
		printf("%-20s %8lu  %-30s %s\n", pf.entries[i].name,
		    (unsigned long)pf.entries[i].uid, pf.entries[i].dir, state);
	}
	passwd_free(&pf);
	shadow_free(&sf);
	user_dom_close(&u);
	return 0;
}

int
admin_user(const struct admin_opts *o, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return user_add(o, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "del") == 0)
		return user_del(o, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return user_list(o, argc - 1, argv + 1);
	return admin_cmd_usage("user");
}

int
admin_passwd(const struct admin_opts *o, int argc, char **argv)
{
	struct user_dom		 u;
	struct passwd_file	 pf;
	const struct passwd_entry *e;
	struct diag		 d;
	struct buf		 pw, sh, nsh;
	char			 hash[CRYPT_OUTPUT_SIZE];
	char			 ppath[PATH_MAX], spath[PATH_MAX];
	int			 from_stdin = 0, lk, rc;

	if (argc == 4 && strcmp(argv[3], "--password-stdin") == 0)
		from_stdin = 1;
	else if (argc != 3)
		return admin_cmd_usage("passwd");
	if (!user_name_ok(argv[2]))
		return EX_DATAERR;
	if ((rc = user_dom_open(&u, o, argv[1])) != 0)
		return rc;
	if (user_password_hash(from_stdin, hash, sizeof(hash)) != 0) {
		admin_warnx("no password (use a terminal or "
		    "--password-stdin)");
		user_dom_close(&u);
		return EX_DATAERR;
	}
	if ((lk = admin_lock_domain(u.vd->dir)) == -1) {
		explicit_bzero(hash, sizeof(hash));
		user_dom_close(&u);
		return EX_CANTCREAT;
	}
	rc = EX_CANTCREAT;
	memset(&d, 0, sizeof(d));
	memset(&pf, 0, sizeof(pf));
	buf_init(&pw, 0);
	buf_init(&sh, 0);
	buf_init(&nsh, 64 * 1024 * 1024);
	if (user_read(&u, "etc/passwd", ppath, sizeof(ppath), &pw) == -1 ||
	    user_read(&u, "etc/shadow", spath, sizeof(spath), &sh) == -1 ||
	    passwd_parse(&pf, ppath, pw.data, pw.len, &d) == -1)
		goto out;
	if ((e = passwd_find(&pf, argv[2])) == NULL || e->uid == 0) {
		admin_warnx("%s: no such user in %s", argv[2], ppath);
		rc = EX_NOUSER;
		goto out;
	}
	if (user_text_drop(sh.data, argv[2], 0, &nsh) == -1 ||
	    buf_printf(&nsh, "%s:%s:%ld:0:99999:7:::\n", argv[2], hash,
	    (long)(time(NULL) / 86400)) == -1 ||
	    admin_file_replace(spath, nsh.data, nsh.len, 0600) == -1)
		goto out;
	printf("%s@%s: password changed\n", argv[2], u.vd->name);
	rc = 0;
 out:
	explicit_bzero(hash, sizeof(hash));
	buf_free(&pw);
	buf_free_secret(&sh);
	buf_free_secret(&nsh);
	passwd_free(&pf);
	admin_unlock(lk);
	user_dom_close(&u);
	return rc;
}

/* ---- aliases ---- */

/* A target "alias add" accepts: a local name or user@domain. */
static int
alias_target_ok(const char *t)
{
	const char	*at;

	if ((at = strchr(t, '@')) == NULL)
		return passwd_name_valid(t);
	if (at == t || strchr(at + 1, '@') != NULL ||
	    !admin_dns_name_valid(at + 1))
		return 0;
	for (; t < at; t++)
		if ((unsigned char)*t <= ' ' || *t == ',' || *t == ':' ||
		    *t == '"' || *t == '\\' || *t == '|' || *t == '/' ||
		    *t == 0x7f)
			return 0;
	return 1;
}

/*
 * Copy text into out without the record (first line and continuation
 * lines) of alias name; 1 when it was there, 0 when not, -1.
 */
static int
alias_text_drop(const char *text, const char *name, struct buf *out)
{
	const char	*line, *next, *p;
	size_t		 nlen = strlen(name), k;
	int		 found = 0, skipping = 0;

	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next != NULL ? next + 1 : line + strlen(line);
		if (*line == ' ' || *line == '\t') {
			if (skipping)
				continue;
		} else {
			skipping = 0;
			p = line + strcspn(line, ":\n");
			k = (size_t)(p - line);
			while (k > 0 && (line[k - 1] == ' ' ||
			    line[k - 1] == '\t'))
				k--;
			if (*p == ':' && k == nlen &&
			    strncasecmp(line, name, nlen) == 0) {
				skipping = found = 1;
				continue;
			}
		}
		if (buf_append(out, line, (size_t)(next - line)) == -1)
			return -1;
	}
	return found;
}

static int
alias_edit(const struct admin_opts *o, int argc, char **argv, int add)
{
	struct user_dom	 u;
	struct aliases	 al;
	const struct alias *old;
	struct diag	 d;
	struct buf	 b, nb;
	char		 path[PATH_MAX];
	const char	*name;
	size_t		 k;
	int		 i, lk, rc;

	if ((add && argc < 4) || (!add && argc != 3))
		return admin_cmd_usage("alias");
	name = argv[2];
	if (!user_name_ok(name))
		return EX_DATAERR;
	for (i = 3; i < argc; i++)
		if (!alias_target_ok(argv[i])) {
			admin_warnx("\"%s\": not a local name or user@domain "
			    "(commands and files are not supported)",
			    argv[i]);
			return EX_DATAERR;
		}
	if ((rc = user_dom_open(&u, o, argv[1])) != 0)
		return rc;
	if ((lk = admin_lock_domain(u.vd->dir)) == -1) {
		user_dom_close(&u);
		return EX_CANTCREAT;
	}
	rc = EX_CANTCREAT;
	memset(&al, 0, sizeof(al));
	memset(&d, 0, sizeof(d));
	buf_init(&nb, 64 * 1024 * 1024);
	if (admin_path(path, sizeof(path), u.vd->dir, "etc/aliases") == -1 ||
	    admin_file_read(path, &b, 1) == -1)
		goto out_nob;
	if (aliases_parse(&al, path, b.data, b.len, &d) == -1)
		goto out;
	old = aliases_find(&al, name);
	if ((i = alias_text_drop(b.data, name, &nb)) == -1)
		goto out;
	if (!add && i == 0) {
		admin_warnx("%s: no such alias in %s", name, path);
		rc = EX_NOUSER;
		goto out;
	}
	if (add) {
		/* Adding to an alias keeps its targets, in order. */
		if (buf_printf(&nb, "%s: ", name) == -1)
			goto out;
		/* "root" is a new domain's placeholder for postmaster:
		 * the first real target replaces it. */
		for (k = 0; old != NULL && k < old->ntargets; k++)
			if (strcmp(old->targets[k].value, "root") != 0 &&
			    buf_printf(&nb, "%s, ", old->targets[k].value) ==
			    -1)
				goto out;
		for (i = 3; i < argc; i++)
			if (buf_printf(&nb, "%s%s", argv[i], i + 1 < argc ?
			    ", " : "\n") == -1)
				goto out;
	}
	if (buf_append(&nb, "", 1) == -1 ||
	    admin_file_replace(path, nb.data, nb.len - 1, 0644) == -1)
		goto out;
	printf("%s@%s: alias %s\n", name, u.vd->name, add ? "set" :
	    "removed");
	rc = 0;
 out:
	buf_free(&b);
 out_nob:
	buf_free(&nb);
	aliases_free(&al);
	admin_unlock(lk);
	user_dom_close(&u);
	return rc;
}

/* Print the aliases; with check, also report local targets that are
 * neither a user nor an alias.  An exit status. */
static int
alias_show(const struct admin_opts *o, const char *key, int check)
{
	struct user_dom		 u;
	struct aliases		 al;
	struct passwd_file	 pf;
	const struct alias_target *t;
	struct diag		 d;
	const char		*err;
	char			 path[PATH_MAX];
	size_t			 i, k;
	int			 rc, bad = 0;

	if ((rc = user_dom_open(&u, o, key)) != 0)
		return rc;
	memset(&d, 0, sizeof(d));
	d.fn = user_stderr;
	memset(&al, 0, sizeof(al));
	memset(&pf, 0, sizeof(pf));
	if (admin_path(path, sizeof(path), u.vd->dir, "etc/passwd") == -1 ||
	    passwd_load(&pf, path, &d, &err) == -1 ||
	    admin_path(path, sizeof(path), u.vd->dir, "etc/aliases") == -1 ||
	    aliases_load(&al, path, &d, &err) == -1) {
		admin_warnx("%s: cannot read", path);
		passwd_free(&pf);
		user_dom_close(&u);
		return EX_NOINPUT;
	}
	for (i = 0; i < al.n; i++) {
		if (!check)
			printf("%s:", al.list[i].name);
		for (k = 0; k < al.list[i].ntargets; k++) {
			t = &al.list[i].targets[k];
			if (!check)
				printf("%s %s", k ? "," : "", t->value);
			else if (t->type == ALIAS_LOCAL &&
			    passwd_find(&pf, t->value) == NULL &&
			    aliases_find(&al, t->value) == NULL) {
				fprintf(stderr, "%s:%d: %s: no such user or "
				    "alias\n", path, al.list[i].lineno,
				    t->value);
				bad++;
			} else if (t->type != ALIAS_LOCAL &&
			    t->type != ALIAS_ADDRESS) {
				fprintf(stderr, "%s:%d: %s: commands, files "
				    "and includes are not delivered\n", path,
				    al.list[i].lineno, t->value);
				bad++;
			}
		}
		if (!check)
			printf("\n");
	}
	if (check && d.count + bad == 0)
		printf("%s: %zu aliases OK\n", path, al.n);
	rc = d.count + bad > 0 ? EX_DATAERR : 0;
	aliases_free(&al);
	passwd_free(&pf);
	user_dom_close(&u);
	return rc;
}

int
admin_alias(const struct admin_opts *o, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return alias_edit(o, argc - 1, argv + 1, 1);
	if (argc >= 2 && strcmp(argv[1], "del") == 0)
		return alias_edit(o, argc - 1, argv + 1, 0);
	if (argc == 3 && strcmp(argv[1], "list") == 0)
		return alias_show(o, argv[2], 0);
	return admin_cmd_usage("alias");
}

int
admin_newaliases(const struct admin_opts *o, int argc, char **argv)
{
	if (argc != 2)
		return admin_cmd_usage("newaliases");
	return alias_show(o, argv[1], 1);
}
