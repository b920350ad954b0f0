/*
 * test_deliver.c — local delivery's pure parts: the deliverer request
 * and reply datagrams (valid, truncated, extra bytes, control bytes,
 * bad names), the deterministic Maildir name, ">From " quoting fed in
 * pieces, and a real Maildir and mbox delivery in a temporary root
 * (as the current user, with the recovered-copy check), also where a
 * seccomp filter makes the kernel refuse unnamed Maildir files; and the
 * deliverer's side of the mbox spool (deliver_spool.c): the spool
 * directory's checks, a new mbox, the dotlock, a stale one, a
 * dangling symlink in the mbox's place.
 */

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "runner.h"
#include "smtpd.h"
#include "test.h"

static void
fill_req(struct deliver_req *r)
{
	memset(r, 0, sizeof(*r));
	r->reqid = 7;
	r->mbox = 1;
	r->recovered = 1;
	(void)strlcpy(r->queue_id, "0123456789abcdef", sizeof(r->queue_id));
	r->rcpt_index = 3;
	r->created = 1700000000;
	(void)strlcpy(r->user, "bob", sizeof(r->user));
	(void)strlcpy(r->rcpt, "bob@alpha.test", sizeof(r->rcpt));
	(void)strlcpy(r->sender, "", sizeof(r->sender));
}

static void
test_req(void)
{
	struct deliver_req	 r, d;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX], bad[DELIVER_MSG_MAX];
	size_t			 len;

	fill_req(&r);
	CHECK(deliver_req_encode(&r, msg, sizeof(msg), &len) == 0,
	    "req: encode");
	CHECK(deliver_req_decode(msg, len, &d, &err) == 0, "req: decode");
	/* The format is the deliverer's (the domain's), never sent. */
	CHECK(d.reqid == 7 && d.mbox == 0 && d.recovered == 1 &&
	    d.rcpt_index == 3 && d.created == 1700000000,
	    "req: numbers round-trip");
	CHECK_STR(d.queue_id, r.queue_id, "req: queue id");
	CHECK_STR(d.user, "bob", "req: user");
	CHECK_STR(d.rcpt, "bob@alpha.test", "req: rcpt");
	CHECK_STR(d.sender, "", "req: null sender");

	CHECK(deliver_req_decode(msg, len - 1, &d, &err) == -1,
	    "req: truncated refused");
	memcpy(bad, msg, len);
	bad[len] = 'x';
	CHECK(deliver_req_decode(bad, len + 1, &d, &err) == -1,
	    "req: trailing bytes refused");
	bad[len] = '\0';
	CHECK(deliver_req_decode(bad, len + 1, &d, &err) == -1,
	    "req: extra field refused");
	CHECK(deliver_req_decode("", 0, &d, &err) == -1, "req: empty");
	memcpy(bad, msg, len);
	bad[0] = 'X';
	CHECK(deliver_req_decode(bad, len, &d, &err) == -1,
	    "req: wrong tag refused");

	fill_req(&r);
	(void)strlcpy(r.user, "../etc", sizeof(r.user));
	CHECK(deliver_req_encode(&r, msg, sizeof(msg), &len) == -1,
	    "req: traversal user not encoded");
	fill_req(&r);
	(void)strlcpy(r.rcpt, "bob@alpha.test\nX-Evil: 1", sizeof(r.rcpt));
	CHECK(deliver_req_encode(&r, msg, sizeof(msg), &len) == -1,
	    "req: newline in rcpt not encoded");
	fill_req(&r);
	(void)strlcpy(r.sender, "a>b", sizeof(r.sender));
	CHECK(deliver_req_encode(&r, msg, sizeof(msg), &len) == -1,
	    "req: '>' in sender not encoded");

	/* Hand-made requests: what a compromised runner could send. */
	{
		static const struct {
			const char	*text;
			size_t		 len;
			const char	*what;
		} t[] = {
#define R(s, w)	{ s, sizeof(s) - 1, w }
		R("D2\0" "1\0" "0\0" "0123456789abcdef\0" "0\0" "5\0"
		    "bob\0bob@a\0s@b\0", "req: hand-made ok"),
		R("D2\0" "1\0" "0\0" "0123456789abcdef\0" "0\0" "5\0"
		    "root/x\0bob@a\0s@b\0", "req: slash in user"),
		R("D2\0" "1\0" "2\0" "0123456789abcdef\0" "0\0" "5\0"
		    "bob\0bob@a\0s@b\0", "req: bad flag"),
		R("D2\0" "1\0" "0\0" "0123456789ABCDEX\0" "0\0" "5\0"
		    "bob\0bob@a\0s@b\0", "req: bad queue id"),
		R("D2\0" "-1\0" "0\0" "0123456789abcdef\0" "0\0" "5\0"
		    "bob\0bob@a\0s@b\0", "req: negative id"),
		R("D2\0" "1\0" "0\0" "0123456789abcdef\0" "0\0" "5\0"
		    "bob\0bob@a\r\0s@b\0", "req: CR in rcpt"),
		R("D1\0" "1\0maildir\0" "0\0" "0123456789abcdef\0" "0\0"
		    "5\0bob\0bob@a\0s@b\0", "req: version 1 (client's "
		    "mailbox format) refused"),
		R("D2\0" "1\0mbox\0" "0\0" "0123456789abcdef\0" "0\0"
		    "5\0bob\0bob@a\0s@b\0", "req: a mailbox format "
		    "field refused"),
		R("D2\0" "1\0" "0\0" "0123456789abcdef\0" "0\0" "5\0"
		    "bob\0\0s@b\0", "req: empty rcpt"),
#undef R
		};
		size_t	 i;

		for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
			CHECK((deliver_req_decode(t[i].text, t[i].len, &d,
			    &err) == 0) == (i == 0), t[i].what);
	}
}

static void
test_res(void)
{
	struct deliver_res	 r, d;
	const char		*err;
	char			 msg[DELIVER_MSG_MAX];
	size_t			 len;

	memset(&r, 0, sizeof(r));
	r.reqid = 42;
	r.status = DELIVER_TEMPFAIL;
	(void)strlcpy(r.mailbox, "/home/bob/Maildir", sizeof(r.mailbox));
	(void)strlcpy(r.reason, "write: No space left on device",
	    sizeof(r.reason));
	CHECK(deliver_res_encode(&r, msg, sizeof(msg), &len) == 0,
	    "res: encode");
	CHECK(deliver_res_decode(msg, len, &d, &err) == 0, "res: decode");
	CHECK(d.reqid == 42 && d.status == DELIVER_TEMPFAIL,
	    "res: id and status");
	CHECK_STR(d.mailbox, r.mailbox, "res: mailbox");
	CHECK_STR(d.reason, r.reason, "res: reason");
	CHECK(deliver_res_decode("R1\0" "1\0maybe\0\0\0", 15, &d, &err) == -1,
	    "res: unknown status refused");
	CHECK(deliver_res_decode(msg, len - 2, &d, &err) == -1,
	    "res: truncated refused");
}

static void
test_name(void)
{
	char	 name[256];

	CHECK(deliver_maildir_name(name, sizeof(name), 1700000000,
	    "0123456789abcdef", 2, "mx.alpha.test") == 0, "name: ok");
	CHECK_STR(name, "1700000000.V0123456789abcdefI2.mx.alpha.test",
	    "name: format");
	CHECK(deliver_maildir_name(name, sizeof(name), 1, "0123456789abcdef",
	    0, "a/b:c") == 0, "name: special host ok");
	CHECK_STR(name, "1.V0123456789abcdefI0.a\\057b\\072c",
	    "name: '/' and ':' escaped");
	CHECK(deliver_maildir_name(name, 10, 1, "0123456789abcdef", 0,
	    "h") == -1, "name: too long refused");
	CHECK(deliver_maildir_name(name, sizeof(name), 1, "../x", 0,
	    "h") == -1, "name: bad queue id refused");
	CHECK(deliver_maildir_name(name, sizeof(name), 1, "0123456789abcdef",
	    0, "a b") == -1, "name: space in host refused");
}

/* Quote in all split points; each must give the same result. */
static void
test_quote_one(const char *in, const char *want, const char *what)
{
	struct deliver_quote	 q;
	struct buf		 out;
	size_t			 len = strlen(in), cut;
	int			 ok = 1;

	for (cut = 0; cut <= len; cut++) {
		buf_init(&out, 0);
		deliver_quote_init(&q);
		if (deliver_quote(&q, &out, in, cut) == -1 ||
		    deliver_quote(&q, &out, in + cut, len - cut) == -1 ||
		    deliver_quote_end(&q, &out) == -1 ||
		    strcmp(buf_cstr(&out), want) != 0)
			ok = 0;
		buf_free(&out);
	}
	CHECK(ok, what);
}

static void
test_quote(void)
{
	test_quote_one("", "\n", "quote: empty message");
	test_quote_one("a\n", "a\n\n", "quote: one line");
	test_quote_one("a", "a\n\n", "quote: no final newline");
	test_quote_one("From me\n", ">From me\n\n", "quote: first line");
	test_quote_one("x\nFrom y\nz\n", "x\n>From y\nz\n\n",
	    "quote: body line");
	test_quote_one("x\n>From y\n", "x\n>From y\n\n",
	    "quote: >From left alone (mboxo)");
	test_quote_one("Fro\nFrom\nFromage\n From x\n",
	    "Fro\nFrom\nFromage\n From x\n\n", "quote: near misses");
	test_quote_one("a\nFrom ", "a\n>From \n\n", "quote: at the end");
	test_quote_one("a\nFro", "a\nFro\n\n", "quote: partial at the end");
	test_quote_one("x From y\n", "x From y\n\n", "quote: mid-line");
	test_quote_one("\n\nFrom a\n\n", "\n\n>From a\n\n\n",
	    "quote: after blank lines");
}

static int
read_file(const char *path, struct buf *out)
{
	char	 chunk[4096];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		(void)buf_append(out, chunk, (size_t)n);
	(void)close(fd);
	return n == 0 ? 0 : -1;
}

static int
count_dir(const char *path)
{
	char	 cmd[1024];
	FILE	*p;
	int	 n = -1;

	(void)snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	(void)pclose(p);
	return n;
}

static void
test_maildir(void)
{
	struct deliver_req	 r;
	struct deliver_res	 res;
	struct buf		 b;
	char			 dir[] = "/tmp/test_deliver.XXXXXX";
	char			 path[1024], cmd[1200];
	static const char	 body[] = "Subject: hi\n\nFrom here\n";
	int			 fd;

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "maildir: mkdtemp");
		return;
	}
	(void)snprintf(path, sizeof(path), "%s/msg", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd != -1 && write(fd, body, sizeof(body) - 1) ==
	    (ssize_t)sizeof(body) - 1, "maildir: message file");
	fill_req(&r);
	r.mbox = 0;
	r.recovered = 0;
	(void)strlcpy(r.sender, "alice@beta.test", sizeof(r.sender));
	deliver_local(&r, dir, getuid(), "mx.alpha.test", fd, &res);
	CHECK(res.status == DELIVER_OK, "maildir: delivered");
	(void)snprintf(path, sizeof(path), "%s/Maildir/new/"
	    "1700000000.V0123456789abcdefI3.mx.alpha.test", dir);
	buf_init(&b, 0);
	CHECK(read_file(path, &b) == 0, "maildir: file in new/");
	CHECK_STR(buf_cstr(&b), "Return-Path: <alice@beta.test>\n"
	    "Delivered-To: bob@alpha.test\nSubject: hi\n\nFrom here\n",
	    "maildir: exact bytes");
	buf_free(&b);
	(void)snprintf(path, sizeof(path), "%s/Maildir/tmp", dir);
	CHECK(count_dir(path) == 0, "maildir: tmp/ empty");

	/* Again (as after a crash): no second copy. */
	deliver_local(&r, dir, getuid(), "mx.alpha.test", fd, &res);
	CHECK(res.status == DELIVER_OK, "maildir: redelivery ok");
	(void)snprintf(path, sizeof(path), "%s/Maildir/new", dir);
	CHECK(count_dir(path) == 1, "maildir: still one copy");

	/* The user has read it (moved to cur/): recovered finds it. */
	(void)snprintf(cmd, sizeof(cmd), "mv %s/Maildir/new/* "
	    "%s/Maildir/cur/1700000000.V0123456789abcdefI3.mx.alpha.test:2,S",
	    dir, dir);
	CHECK(system(cmd) == 0, "maildir: move to cur");
	r.recovered = 1;
	deliver_local(&r, dir, getuid(), "mx.alpha.test", fd, &res);
	CHECK(res.status == DELIVER_OK, "maildir: recovered ok");
	CHECK(count_dir(path) == 0, "maildir: no copy in new/ after read");

	(void)close(fd);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "maildir: clean up");
}

/*
 * Make this process see the kernel refuse unnamed Maildir files: refuse
 * (errno e) linkat() with AT_EMPTY_PATH (Linux before 6.10, without
 * CAP_DAC_READ_SEARCH: ENOENT), or openat() with O_TMPFILE when
 * tmpfile_errno is not 0 (a file system without it: EOPNOTSUPP).
 */
static int
refuse_unnamed(int link_errno, int tmpfile_errno)
{
	struct sock_filter	 f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_linkat, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, args[4])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, AT_EMPTY_PATH, 0, 5),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO |
		    ((unsigned int)link_errno & SECCOMP_RET_DATA)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, O_TMPFILE & ~O_DIRECTORY,
		    0, 1),
		BPF_STMT(BPF_RET | BPF_K, tmpfile_errno == 0 ?
		    SECCOMP_RET_ALLOW : SECCOMP_RET_ERRNO |
		    ((unsigned int)tmpfile_errno & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog	 prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/*
 * In a child that the kernel refuses unnamed files: two deliveries
 * land in new/ all the same, through tmp/NAME (which is left empty).
 * Its exit status: 0, or the step that failed.
 */
static int
maildir_named_child(const char *dir, int fd, int link_errno,
    int tmpfile_errno)
{
	struct deliver_req	 r;
	struct deliver_res	 res;
	char			 path[1024];
	int			 i;

	if (refuse_unnamed(link_errno, tmpfile_errno) == -1)
		return 1;
	fill_req(&r);
	r.mbox = 0;
	r.recovered = 0;
	for (i = 0; i < 2; i++) {
		r.rcpt_index = 10 + (uint32_t)i;
		deliver_local(&r, dir, getuid(), "mx.alpha.test", fd, &res);
		if (res.status != DELIVER_OK) {
			fprintf(stderr, "# %s\n", res.reason);
			return 2 + i;
		}
		(void)snprintf(path, sizeof(path), "%s/Maildir/new/"
		    "1700000000.V0123456789abcdefI%d.mx.alpha.test", dir,
		    10 + i);
		if (access(path, F_OK) == -1)
			return 4 + i;
	}
	(void)snprintf(path, sizeof(path), "%s/Maildir/tmp", dir);
	return count_dir(path) == 0 ? 0 : 6;
}

static void
test_maildir_named(int link_errno, int tmpfile_errno, const char *what)
{
	char	 dir[] = "/tmp/test_deliver.XXXXXX";
	char	 path[1024], cmd[1200], msg[160];
	pid_t	 pid;
	int	 fd, status = -1;

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "named: mkdtemp");
		return;
	}
	(void)snprintf(path, sizeof(path), "%s/msg", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd != -1 && write(fd, "Subject: x\n\nx\n", 15) == 15,
	    "named: message file");
	if ((pid = fork()) == 0)
		_exit(maildir_named_child(dir, fd, link_errno, tmpfile_errno));
	if (pid == -1 || waitpid(pid, &status, 0) == -1)
		status = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		(void)snprintf(msg, sizeof(msg), "named: %s", what);
	else
		(void)snprintf(msg, sizeof(msg), "named: %s (step %d)", what,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, msg);
	(void)close(fd);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "named: clean up");
}

static int
spool_exists(int dfd, const char *name, struct stat *st)
{
	return fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
test_spool(void)
{
	struct deliver_res	 res;
	struct stat		 held, held2, st;
	struct timespec		 old[2];
	const char		*err;
	char			 dir[] = "/tmp/test_deliver.XXXXXX";
	char			 path[1024], cmd[4096], spool[1100];
	int			 dfd, sfd;

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "spool: mkdtemp");
		return;
	}
	(void)snprintf(spool, sizeof(spool), "%s/var/spool/mail", dir);
	(void)snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", spool);
	CHECK(system(cmd) == 0, "spool: mkdir");

	/* The spool directory: writable by others is refused; and a
	 * symlink in its place resolves inside the root, not the host. */
	CHECK(chmod(spool, 0777) == 0 && deliver_spool_open(dir, &err) ==
	    -1, "spool: world-writable spool refused");
	(void)snprintf(cmd, sizeof(cmd), "rmdir '%s' && mkdir -p '%s/x' && "
	    "ln -s /x '%s'", spool, dir, spool);
	CHECK(system(cmd) == 0, "spool: symlinked spool made");
	sfd = deliver_spool_open(dir, &err);
	if (sfd != -1) {
		(void)snprintf(path, sizeof(path), "%s/x", dir);
		CHECK(fstat(sfd, &st) == 0 && stat(path, &held2) == 0 &&
		    st.st_ino == held2.st_ino,
		    "spool: /x of the root, not of the host");
		(void)close(sfd);
	} else
		CHECK(getuid() != 0, "spool: root-owned spool opened");
	(void)snprintf(cmd, sizeof(cmd), "rm '%s' && mkdir '%s' && chmod 755 "
	    "'%s'", spool, spool, spool);
	CHECK(system(cmd) == 0, "spool: spool again");

	/* The lock operations work on any directory descriptor. */
	if ((dfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		CHECK(0, "spool: open");
		return;
	}
	memset(&res, 0, sizeof(res));
	CHECK(deliver_spool_lock(dfd, "bob", getuid(), getgid(), &held,
	    &res) == 0, "spool: lock");
	CHECK(spool_exists(dfd, "bob", &st) && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600 && st.st_size == 0 &&
	    st.st_uid == getuid(), "spool: missing mbox made, 0600");
	CHECK(spool_exists(dfd, "bob.lock", &st) && st.st_ino == held.st_ino,
	    "spool: dotlock taken");
	deliver_spool_unlock(dfd, "bob", &held);
	CHECK(!spool_exists(dfd, "bob.lock", &st), "spool: dotlock removed");

	/* A stale lock (older than DELIVER_LOCK_STALE) is broken. */
	CHECK(deliver_spool_lock(dfd, "bob", getuid(), getgid(), &held,
	    &res) == 0, "spool: lock again");
	old[0].tv_sec = old[1].tv_sec = time(NULL) - DELIVER_LOCK_STALE - 60;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	CHECK(utimensat(dfd, "bob.lock", old, AT_SYMLINK_NOFOLLOW) == 0,
	    "spool: age the lock");
	CHECK(deliver_spool_lock(dfd, "bob", getuid(), getgid(), &held2,
	    &res) == 0, "spool: stale lock broken");
	/* The first holder's unlock leaves the new holder's lock alone. */
	deliver_spool_unlock(dfd, "bob", &held);
	CHECK(held.st_ino == held2.st_ino ||
	    spool_exists(dfd, "bob.lock", &st), "spool: only its own lock");
	deliver_spool_unlock(dfd, "bob", &held2);
	CHECK(!spool_exists(dfd, "bob.lock", &st), "spool: unlock");

	/* A dangling symlink as the mbox: nothing is made through it. */
	(void)snprintf(path, sizeof(path), "%s/target", dir);
	CHECK(symlinkat(path, dfd, "eve") == 0, "spool: symlink made");
	CHECK(deliver_spool_lock(dfd, "eve", getuid(), getgid(), &held,
	    &res) == 0, "spool: lock next to a symlink");
	CHECK(access(path, F_OK) == -1 && errno == ENOENT,
	    "spool: symlink not followed");
	deliver_spool_unlock(dfd, "eve", &held);

	/* A name that is not a user's is refused. */
	CHECK(deliver_spool_lock(dfd, "../x", getuid(), getgid(), &held,
	    &res) == -1 && res.status == DELIVER_PERMFAIL,
	    "spool: bad name refused");
	(void)close(dfd);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "spool: clean up");
}

int
main(void)
{
	test_req();
	test_res();
	test_name();
	test_quote();
	test_maildir();
	test_spool();
	test_maildir_named(ENOENT, 0, "kernel refuses linkat(AT_EMPTY_PATH)");
	test_maildir_named(ENOENT, EOPNOTSUPP, "file system without "
	    "O_TMPFILE");
	return test_done();
}
