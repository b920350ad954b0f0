/*
 * admin_fs.c — virtfs: build a domain's minimal root, and copy a
 * program with the shared libraries it needs into a root.
 *
 * SECURITY
 *	Runs as root on the host.  The root is built from nothing: no
 *	file of the host's /etc is copied but the nameserver lines of
 *	resolv.conf, so a domain sees neither the host's shadow, its ssh
 *	keys nor the names of the other domains.  Every file is created
 *	with O_EXCL | O_NOFOLLOW in directories root made a moment ago.
 *	Programs are copied (or hard-linked on the same file system) from
 *	paths root names on the command line; ldd runs on those host
 *	files, never on a file of a domain.
 *
 * CHOICES
 *	Layout and modes are in docs/ADMIN.md ("The domain's root").  The
 *	run_as account gets the first uid of the domain's block of
 *	ADMIN_UID_BLOCK, users the next ones, the virtmail-drop group the
 *	last (as in the tests' roots).  The injector goes to
 *	usr/sbin/sendmail, mode 0755 root:root, and the drop writer found
 *	next to it to usr/sbin/virtmail-postdrop, mode 2755
 *	root:virtmail-drop, the one setgid file of the root
 *	(docs/SECURITY.md).
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "virtmail.h"

#define FS_LDD		"/usr/bin/ldd"
#define FS_LDD_MAX	(256 * 1024)

static int
fs_mkdir(const char *root, const char *rel, mode_t mode, uid_t uid,
    gid_t gid)
{
	char	 path[PATH_MAX];

	if (admin_path(path, sizeof(path), root, rel) == -1)
		return -1;
	if (mkdir(path, mode) == -1) {
		/* An existing directory is left as it is. */
		if (errno == EEXIST)
			return 0;
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	if (lchown(path, uid, gid) == -1 || chmod(path, mode) == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
fs_write(const char *root, const char *rel, const char *text, mode_t mode)
{
	char	 path[PATH_MAX];
	int	 fd;

	if (admin_path(path, sizeof(path), root, rel) == -1)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd == -1 || fchmod(fd, mode) == -1 ||
	    write_all(fd, text, strlen(text)) == -1 || fsync(fd) == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return -1;
	}
	if (close(fd) == -1) {
		admin_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
fs_mknod(const char *root, const char *rel, unsigned int maj,
    unsigned int min)
{
	char	 path[PATH_MAX];

	if (admin_path(path, sizeof(path), root, rel) == -1)
		return -1;
	if (mknod(path, S_IFCHR | 0666, makedev(maj, min)) == -1 ||
	    chmod(path, 0666) == -1) {
		admin_warnx("%s: mknod: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The nameserver lines of the host's resolv.conf, else localhost. */
static int
fs_resolv(struct buf *b, const char *resolver)
{
	char	 line[512];
	FILE	*fp;
	size_t	 before = b->len;

	if (resolver != NULL)
		return buf_printf(b, "nameserver %s\n", resolver);
	if ((fp = fopen("/etc/resolv.conf", "re")) != NULL) {
		while (fgets(line, sizeof(line), fp) != NULL)
			if (strncmp(line, "nameserver", 10) == 0 &&
			    strchr(line, '\n') != NULL &&
			    buf_append(b, line, strlen(line)) == -1) {
				(void)fclose(fp);
				return -1;
			}
		(void)fclose(fp);
	}
	if (b->len == before)
		return buf_printf(b, "nameserver 127.0.0.1\n");
	return 0;
}

/* Create every missing directory of rel (a path inside root). */
static int
fs_mkparents(const char *root, const char *rel)
{
	char	 sub[PATH_MAX];
	char	*p;

	if (strlcpy(sub, rel, sizeof(sub)) >= sizeof(sub))
		return -1;
	for (p = sub + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (fs_mkdir(root, sub, 0755, 0, 0) == -1)
			return -1;
		*p = '/';
	}
	return 0;
}

static int
fs_copy_file(const char *src, const char *dst, mode_t mode)
{
	char	 data[65536];
	ssize_t	 n;
	int	 in, out;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		admin_warnx("%s: %s", src, strerror(errno));
		return -1;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (out == -1) {
		admin_warnx("%s: %s", dst, strerror(errno));
		(void)close(in);
		return -1;
	}
	for (;;) {
		n = read(in, data, sizeof(data));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write_all(out, data, (size_t)n) == -1) {
			n = -1;
			break;
		}
	}
	if (n == -1 || fchmod(out, mode) == -1 || fsync(out) == -1) {
		admin_warnx("%s: %s", dst, strerror(errno));
		(void)close(in);
		(void)close(out);
		(void)unlink(dst);
		return -1;
	}
	(void)close(in);
	if (close(out) == -1) {
		admin_warnx("%s: %s", dst, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Put the host file src at the same path inside root: a hard link on
 * the same file system, else a copy.  An existing file is left alone.
 */
static int
fs_install_one(const char *root, const char *src, int quiet)
{
	struct stat	 st, rst;
	char		 dst[PATH_MAX];

	if (src[0] != '/' || strstr(src, "/../") != NULL) {
		admin_warnx("%s: not an absolute path", src);
		return -1;
	}
	if (stat(src, &st) == -1 || !S_ISREG(st.st_mode)) {
		admin_warnx("%s: not a regular file", src);
		return -1;
	}
	if (admin_path(dst, sizeof(dst), root, src + 1) == -1 ||
	    fs_mkparents(root, src) == -1)
		return -1;
	if (lstat(dst, &rst) == 0) {
		if (!quiet)
			printf("%s: already there\n", dst);
		return 0;
	}
	if (stat(root, &rst) == 0 && rst.st_dev == st.st_dev &&
	    linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0) {
		if (!quiet)
			printf("%s: linked\n", dst);
		return 0;
	}
	if (fs_copy_file(src, dst, st.st_mode & 0755) == -1)
		return -1;
	if (!quiet)
		printf("%s: copied\n", dst);
	return 0;
}

/* The shared objects ldd lists for path, appended to libs as lines. */
static int
fs_ldd(const char *path, struct buf *libs)
{
	struct buf	 out;
	char		*line, *next, *p, *end;
	char		 data[4096];
	ssize_t		 n;
	pid_t		 pid;
	int		 pfd[2], status, fd;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		(void)close(pfd[0]);
		(void)close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		(void)dup2(pfd[1], 1);
		/* "not a dynamic executable" goes nowhere. */
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			(void)dup2(fd, 2);
		execl(FS_LDD, "ldd", path, (char *)NULL);
		_exit(127);
	}
	(void)close(pfd[1]);
	buf_init(&out, FS_LDD_MAX);
	for (;;) {
		n = read(pfd[0], data, sizeof(data));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || buf_append(&out, data, (size_t)n) == -1)
			break;
	}
	(void)close(pfd[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (buf_append(&out, "", 1) == -1) {
		buf_free(&out);
		return -1;
	}
	/* "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
	 * "/lib64/ld-linux-x86-64.so.2 (0x...)"; static: no paths. */
	for (line = out.data; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((p = strstr(line, "=> ")) != NULL)
			p += 3;
		else
			p = line + strspn(line, " \t");
		if (*p != '/')
			continue;
		end = p + strcspn(p, " \t(");
		*end = '\0';
		if (buf_printf(libs, "%s\n", p) == -1) {
			buf_free(&out);
			return -1;
		}
	}
	buf_free(&out);
	return 0;
}

/* The shared libraries of the host program src, into root. */
static int
fs_install_libs(const char *root, const char *src, int quiet)
{
	struct buf	 libs;
	char		*p, *next;
	int		 rc = 0;

	buf_init(&libs, FS_LDD_MAX);
	if (fs_ldd(src, &libs) == -1 || buf_append(&libs, "", 1) == -1) {
		admin_warnx("%s: ldd failed", src);
		buf_free(&libs);
		return -1;
	}
	for (p = libs.data; *p != '\0'; p = next) {
		next = strchr(p, '\n');
		*next++ = '\0';
		if (fs_install_one(root, p, quiet) == -1)
			rc = -1;
	}
	buf_free(&libs);
	return rc;
}

static int
fs_install_program(const char *root, const char *src, int quiet)
{
	if (fs_install_one(root, src, quiet) == -1)
		return -1;
	return fs_install_libs(root, src, quiet);
}

/* Our own injector: virtmail-sendmail next to this program. */
static const char *
fs_default_sendmail(char *dst, size_t size)
{
	char	 self[PATH_MAX];
	ssize_t	 n;
	int	 k;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		return NULL;
	self[n] = '\0';
	k = snprintf(dst, size, "%s/virtmail-sendmail", dirname(self));
	if (k < 0 || (size_t)k >= size)
		return NULL;
	return dst;
}

/* The drop writer that goes with the injector src: its sibling. */
static int
fs_postdrop_of(const char *src, char *dst, size_t size)
{
	char	 dir[PATH_MAX];
	int	 k;

	if (strlcpy(dir, src, sizeof(dir)) >= sizeof(dir))
		return -1;
	k = snprintf(dst, size, "%s/virtmail-postdrop", dirname(dir));
	return k < 0 || (size_t)k >= size ? -1 : 0;
}

/*
 * usr/sbin/sendmail without any privilege, and usr/sbin/virtmail-
 * postdrop (DROP_POSTDROP_PATH) setgid virtmail-drop.
 */
static int
fs_install_sendmail(const char *root, const char *src, gid_t drop_gid)
{
	char	 dst[PATH_MAX], pd[PATH_MAX];

	if (admin_path(dst, sizeof(dst), root, "usr/sbin/sendmail") == -1)
		return -1;
	if (fs_copy_file(src, dst, 0755) == -1 || lchown(dst, 0, 0) == -1) {
		admin_warnx("%s: %s", dst, strerror(errno));
		return -1;
	}
	if (fs_postdrop_of(src, pd, sizeof(pd)) == -1 ||
	    access(pd, X_OK) == -1) {
		admin_warnx("no virtmail-postdrop next to %s; scripts in the "
		    "domain cannot send mail", src);
		return fs_install_libs(root, src, 1);
	}
	if (admin_path(dst, sizeof(dst), root, DROP_POSTDROP_PATH + 1) == -1)
		return -1;
	if (fs_copy_file(pd, dst, 0755) == -1)
		return -1;
	/* chown first: it clears the setgid bit. */
	if (lchown(dst, 0, drop_gid) == -1 || chmod(dst, 02755) == -1) {
		admin_warnx("%s: %s", dst, strerror(errno));
		return -1;
	}
	/* A sanitizer build is not static: its libraries come along. */
	if (fs_install_libs(root, src, 1) == -1)
		return -1;
	return fs_install_libs(root, pd, 1);
}

int
admin_fs_build(const struct admin_fs_spec *s)
{
	static const char *const qsubs[] = {
		QUEUE_DIR "/env", QUEUE_DIR "/hold", QUEUE_DIR "/msg",
		QUEUE_DIR "/tmp"
	};
	struct buf	 b;
	char		 sm[PATH_MAX];
	const char	*sendmail = s->sendmail;
	long		 days = (long)(time(NULL) / 86400);
	unsigned long	 base = (unsigned long)s->uid_base;
	unsigned long	 drop = base + ADMIN_UID_BLOCK - 1;
	size_t		 i;
	int		 rc = -1;

	buf_init(&b, 1024 * 1024);
	/* The parents as "mkdir -p" would, then the root itself. */
	if (fs_mkparents("", s->dir) == -1 ||
	    mkdir(s->dir, 0755) == -1 || chmod(s->dir, 0755) == -1) {
		admin_warnx("%s: %s", s->dir, strerror(errno));
		goto out;
	}
	if (fs_mkdir(s->dir, "etc", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "dev", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "home", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "tmp", 01777, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "usr", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "usr/sbin", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "var", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "var/spool", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "var/spool/mail", 0755, 0, 0) == -1 ||
	    fs_mkdir(s->dir, "var/spool/virtmail", 0710, (uid_t)base,
	    (gid_t)drop) == -1)
		goto out;
	/* The queue's own directories (queue_init), so "virtmail queue"
	 * works before the first run. */
	for (i = 0; i < sizeof(qsubs) / sizeof(qsubs[0]); i++)
		if (fs_mkdir(s->dir, qsubs[i], 0700, (uid_t)base,
		    (gid_t)base) == -1)
			goto out;
	if (buf_printf(&b, "root:x:0:0:root:/root:/bin/sh\n"
	    "virtmail:x:%lu:%lu:virtmail run_as:%s:/bin/false\n",
	    base, base, QUEUE_DIR) == -1 ||
	    fs_write(s->dir, "etc/passwd", b.data, 0644) == -1)
		goto out;
	buf_reset(&b);
	if (buf_printf(&b, "root:*:%ld:0:99999:7:::\n"
	    "virtmail:*:%ld:0:99999:7:::\n", days, days) == -1 ||
	    fs_write(s->dir, "etc/shadow", b.data, 0600) == -1)
		goto out;
	buf_reset(&b);
	if (buf_printf(&b, "root:x:0:\nvirtmail:x:%lu:\n"
	    "%s:x:%lu:virtmail\n", base, DROP_GROUP, drop) == -1 ||
	    fs_write(s->dir, "etc/group", b.data, 0644) == -1)
		goto out;
	buf_reset(&b);
	if (buf_printf(&b, "%s\n", s->name) == -1 ||
	    fs_write(s->dir, "etc/mailname", b.data, 0644) == -1)
		goto out;
	buf_reset(&b);
	if (buf_printf(&b, "# %s's settings; see virtmail.conf(5).\n"
	    "hostname %s\nrun_as virtmail\n"
	    "#tls_cert /etc/ssl/%s.crt\n#tls_key /etc/ssl/%s.key\n",
	    s->name, s->hostname, s->hostname, s->hostname) == -1 ||
	    fs_write(s->dir, "etc/virtmail.conf", b.data, 0644) == -1)
		goto out;
	buf_reset(&b);
	/* RFC 5321 §4.5.1: postmaster must exist.  No user yet: root. */
	if (buf_printf(&b, "# name: target, target ...; see aliases(5).\n"
	    "postmaster: root\n") == -1 ||
	    fs_write(s->dir, "etc/aliases", b.data, 0644) == -1)
		goto out;
	buf_reset(&b);
	if (fs_resolv(&b, s->resolver) == -1 ||
	    fs_write(s->dir, "etc/resolv.conf", b.data, 0644) == -1)
		goto out;
	buf_reset(&b);
	if (buf_printf(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost\n") == -1)
		goto out;
	for (i = 0; i < s->nips; i++)
		if (buf_printf(&b, "%s\t%s %s\n", s->ips[i], s->hostname,
		    s->name) == -1)
			goto out;
	if (fs_write(s->dir, "etc/hosts", b.data, 0644) == -1 ||
	    fs_mknod(s->dir, "dev/null", 1, 3) == -1 ||
	    fs_mknod(s->dir, "dev/urandom", 1, 9) == -1)
		goto out;
	if (sendmail == NULL)
		sendmail = fs_default_sendmail(sm, sizeof(sm));
	if (sendmail == NULL || access(sendmail, X_OK) == -1)
		admin_warnx("%s: no injector at %s; scripts in the domain "
		    "cannot send mail", s->name, sendmail ? sendmail : "?");
	else if (fs_install_sendmail(s->dir, sendmail, (gid_t)drop) == -1)
		goto out;
	rc = 0;
 out:
	buf_free(&b);
	return rc;
}

static void __attribute__((noreturn))
fs_usage(void)
{
	fprintf(stderr, "usage: %s fs build DIR NAME [IP ...]\n"
	    "       %s fs add-program DOMAIN PATH ...\n", ADMIN_NAME,
	    ADMIN_NAME);
	exit(EX_USAGE);
}

int
admin_fs(const struct admin_opts *o, int argc, char **argv)
{
	struct admin_fs_spec	 s;
	struct admin_ctx	 x;
	const struct domain	*vd;
	char			 ips[ADMIN_IPS_MAX][64];
	const char		*ipv[ADMIN_IPS_MAX], *err;
	struct domain_table	 t;
	struct diag		 d;
	char			 host[300];
	int			 i, rc;

	if (argc >= 3 && strcmp(argv[1], "add-program") == 0) {
		if ((rc = admin_ctx_load(&x, o)) != 0)
			return rc;
		if ((vd = admin_domain_find(&x, argv[2])) == NULL) {
			admin_warnx("%s: no such domain", argv[2]);
			admin_ctx_free(&x);
			return EX_NOHOST;
		}
		rc = 0;
		for (i = 3; i < argc; i++)
			if (fs_install_program(vd->dir, argv[i], 0) == -1)
				rc = EX_CANTCREAT;
		admin_ctx_free(&x);
		return rc;
	}
	if (argc < 4 || strcmp(argv[1], "build") != 0 ||
	    argc - 4 > ADMIN_IPS_MAX)
		fs_usage();
	memset(&s, 0, sizeof(s));
	s.dir = argv[2];
	s.name = argv[3];
	if (s.dir[0] != '/' || !admin_dns_name_valid(s.name)) {
		admin_warnx("need an absolute DIR and a domain NAME");
		return EX_DATAERR;
	}
	for (i = 4; i < argc; i++) {
		if (admin_ip_canon(argv[i], ips[i - 4], sizeof(ips[0])) == -1) {
			admin_warnx("%s: not an IP address", argv[i]);
			return EX_DATAERR;
		}
		ipv[i - 4] = ips[i - 4];
	}
	s.ips = ipv;
	s.nips = (size_t)(argc - 4);
	if (snprintf(host, sizeof(host), "mx.%s", s.name) >=
	    (int)sizeof(host) || !admin_dns_name_valid(host)) {
		admin_warnx("%s: name too long", s.name);
		return EX_DATAERR;
	}
	s.hostname = host;
	/* Above the uids of the domains virtual.conf already has. */
	memset(&d, 0, sizeof(d));
	memset(&t, 0, sizeof(t));
	if (domain_table_load(&t, o->virtual_conf, &d, &err) == -1)
		memset(&t, 0, sizeof(t));
	s.uid_base = admin_uid_base_next(&t);
	domain_table_free(&t);
	if (admin_fs_build(&s) == -1)
		return EX_CANTCREAT;
	printf("%s: root %s, uids %lu-%lu; add its lines to %s\n", s.name,
	    s.dir, s.uid_base, s.uid_base + ADMIN_UID_BLOCK - 1,
	    o->virtual_conf);
	return 0;
}
