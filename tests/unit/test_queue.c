/*
 * test_queue.c — the queue envelope format (round trip, every
 * truncation and corruption refused), the commit/abort/update/hold/
 * list/gc/remove file operations and their failure paths (ENOSPC via
 * /dev/full, a directory we may not write), and descriptor passing.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fdpass.h"
#include "queue.h"
#include "test.h"

static char	*xs(const char *s)
{
	char	*d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

/* snprintf that must not truncate (test paths). */
static void __attribute__((format(printf, 3, 4)))
fmt(char *dst, size_t size, const char *f, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, f);
	r = vsnprintf(dst, size, f, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= size)
		abort();
}

static void
env_sample(struct queue_env *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->id, "0123456789abcdef", QUEUE_ID_LEN + 1);
	e->created = 1700000000;
	e->sender = xs("alice@alpha.test");
	e->helo = xs("client.example");
	e->client_addr = xs("192.0.2.99");
	e->auth_user = xs("alice");
	e->size = 12345;
	e->flags = QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8 | QUEUE_F_WARNED |
	    QUEUE_F_RECOVERED;
	e->attempts = 3;
	e->next_attempt = 1700000600;
	if (queue_env_add_rcpt(e, "bob@alpha.test", "rfc822;bob@alpha.test")
	    == -1 || queue_env_add_rcpt(e, "carol@beta.test", NULL) == -1 ||
	    queue_env_add_rcpt(e, "\"d e\"@beta.test", NULL) == -1)
		abort();
	e->rcpts[1].state = QUEUE_RCPT_DONE;
	e->rcpts[2].state = QUEUE_RCPT_FAILED;
	e->rcpts[2].diag = xs("550 5.1.1 no\tsuch user");
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
env_equal(const struct queue_env *a, const struct queue_env *b)
{
	size_t	 i;

	if (strcmp(a->id, b->id) != 0 || a->created != b->created ||
	    !str_eq(a->sender, b->sender) || !str_eq(a->helo, b->helo) ||
	    !str_eq(a->client_addr, b->client_addr) ||
	    !str_eq(a->auth_user, b->auth_user) || a->size != b->size ||
	    (a->flags & ~QUEUE_F_RECOVERED) !=
	    (b->flags & ~QUEUE_F_RECOVERED) ||
	    a->attempts != b->attempts || a->next_attempt != b->next_attempt ||
	    !str_eq(a->hold_reason, b->hold_reason) || a->nrcpts != b->nrcpts)
		return 0;
	for (i = 0; i < a->nrcpts; i++)
		if (!str_eq(a->rcpts[i].addr, b->rcpts[i].addr) ||
		    !str_eq(a->rcpts[i].orcpt, b->rcpts[i].orcpt) ||
		    !str_eq(a->rcpts[i].diag, b->rcpts[i].diag) ||
		    a->rcpts[i].state != b->rcpts[i].state)
			return 0;
	return 1;
}

static int
decode_str(const char *s, const char **err)
{
	struct queue_env	 e;
	int			 r;

	r = queue_env_decode(s, strlen(s), &e, err);
	queue_env_free(&e);
	return r;
}

static void
test_codec(void)
{
	struct queue_env	 e, d;
	struct buf		 b, c;
	const char		*err;
	size_t			 i, bad, pos;
	int			 ok, k;
	static const char	 flips[] = { 'X', '\n', '9', '0', '\0', ':',
	    ' ', 'E' };

	env_sample(&e);
	buf_init(&b, 0);
	CHECK(queue_env_encode(&e, &b, &err) == 0, "encode");
	CHECK(b.len > 6 && memcmp(b.data, "VMQ 1\n", 6) == 0, "magic line");
	CHECK(b.len > 5 && memcmp(b.data + b.len - 5, "E 0:\n", 5) == 0,
	    "end record last");
	/* 8BITMIME|SMTPUTF8|WARNED = 19; RECOVERED stays in memory. */
	CHECK(strstr(b.data, "F 2:19\n") != NULL, "in-memory flag not stored");
	CHECK(queue_env_decode(b.data, b.len, &d, &err) == 0, "decode");
	CHECK(env_equal(&e, &d), "round trip equal");
	CHECK(d.rcpts[2].diag != NULL &&
	    strcmp(d.rcpts[2].diag, "550 5.1.1 no\tsuch user") == 0,
	    "diagnostic with tab kept");
	queue_env_free(&d);

	/* Held, no auth user, null sender. */
	free(e.auth_user);
	e.auth_user = NULL;
	free(e.sender);
	e.sender = xs("");
	e.hold_reason = xs("milter: quarantine");
	buf_init(&c, 0);
	CHECK(queue_env_encode(&e, &c, &err) == 0 &&
	    queue_env_decode(c.data, c.len, &d, &err) == 0 &&
	    env_equal(&e, &d) && d.auth_user == NULL &&
	    strcmp(d.sender, "") == 0, "round trip held, null sender");
	queue_env_free(&d);
	buf_free(&c);

	/* Every truncation is refused, and leaves e empty. */
	bad = 0;
	for (i = 0; i < b.len; i++) {
		if (queue_env_decode(b.data, i, &d, &err) != -1 ||
		    d.rcpts != NULL || d.sender != NULL)
			bad++;
		queue_env_free(&d);
	}
	CHECK(bad == 0, "every truncation rejected");

	/* Trailing garbage. */
	buf_init(&c, 0);
	if (buf_append(&c, b.data, b.len) == -1 || buf_puts(&c, "x") == -1)
		abort();
	CHECK(queue_env_decode(c.data, c.len, &d, &err) == -1,
	    "trailing byte rejected");
	buf_reset(&c);
	if (buf_append(&c, b.data, b.len) == -1 ||
	    buf_puts(&c, "E 0:\n") == -1)
		abort();
	CHECK(queue_env_decode(c.data, c.len, &d, &err) == -1,
	    "second end record rejected");
	buf_free(&c);

	/* Single-byte corruption anywhere: never a crash, never a leak. */
	buf_init(&c, 0);
	ok = 1;
	for (pos = 0; pos < b.len; pos++) {
		for (k = 0; k < (int)sizeof(flips); k++) {
			buf_reset(&c);
			if (buf_append(&c, b.data, b.len) == -1)
				abort();
			c.data[pos] = flips[k];
			if (queue_env_decode(c.data, c.len, &d, &err) == 0) {
				/* Only changes inside data may still parse. */
				if (d.nrcpts != 3)
					ok = 0;
			}
			queue_env_free(&d);
		}
	}
	CHECK(ok, "byte corruptions handled");
	buf_free(&c);
	buf_free(&b);
	queue_env_free(&e);
}

static void
test_codec_bad(void)
{
	static const char	*hdr = "VMQ 1\nI 16:0123456789abcdef\n"
	    "C 1:1\nS 0:\nH 1:h\nA 0:\nZ 1:5\nF 1:0\nN 1:0\nT 1:0\n";
	static const struct {
		const char	*body;	/* after hdr, or whole */
		int		 whole;
		const char	*what;
	} cases[] = {
		{ "R 1:a\nX 1:0\nE 0:\n", 0, "minimal envelope accepted" },
		{ "VMQ 2\nE 0:\n", 1, "wrong version" },
		{ "VMQ 10\n", 1, "wrong version 10" },
		{ "XMQ 1\n", 1, "bad magic" },
		{ "", 1, "empty file" },
		{ "R 1:a\nX 1:0\n", 0, "missing end record" },
		{ "R 1:a\nX 1:0\nE 1:x\n", 0, "end with data" },
		{ "R 1:a\nX 1:0\nW 1:x\nE 0:\n", 0, "unknown type" },
		{ "R 1:a\nX 1:0\nr 1:x\nE 0:\n", 0, "lower-case type" },
		{ "R 2:a\nX 1:0\nE 0:\n", 0, "length too long" },
		{ "R 0:a\nX 1:0\nE 0:\n", 0, "length too short" },
		{ "R 01:a\nX 1:0\nE 0:\n", 0, "leading zero length" },
		{ "R 99999999:a\nX 1:0\nE 0:\n", 0, "huge length" },
		{ "R 123456789:a\nX 1:0\nE 0:\n", 0, "too many digits" },
		{ "R -1:a\nX 1:0\nE 0:\n", 0, "negative length" },
		{ "R :a\nX 1:0\nE 0:\n", 0, "missing length" },
		{ "R 1a\nX 1:0\nE 0:\n", 0, "missing colon" },
		{ "R1:a\nX 1:0\nE 0:\n", 0, "missing space" },
		{ "R 1:a X 1:0\nE 0:\n", 0, "missing newline" },
		{ "E 0:\n", 0, "no recipients" },
		{ "R 1:a\nE 0:\n", 0, "recipient without state" },
		{ "R 1:a\nR 1:b\nX 1:0\nE 0:\n", 0, "first without state" },
		{ "R 1:a\nX 1:3\nE 0:\n", 0, "bad state" },
		{ "R 1:a\nX 1:0\nX 1:1\nE 0:\n", 0, "state twice" },
		{ "R 1:a\nX 1:0\nO 1:o\nE 0:\n", 0, "orcpt after state" },
		{ "R 1:a\nG 1:g\nX 1:0\nE 0:\n", 0, "diag before state" },
		{ "X 1:0\nR 1:a\nX 1:0\nE 0:\n", 0, "state before rcpt" },
		{ "R 1:a\nX 1:0\nS 1:s\nE 0:\n", 0, "header after rcpt" },
		{ "S 1:s\nR 1:a\nX 1:0\nE 0:\n", 0, "header twice" },
		{ "R 3:a\rb\nX 1:0\nE 0:\n", 0, "CR in recipient" },
		{ "R 3:a\nb\nX 1:0\nE 0:\n", 0, "LF in recipient" },
		{ "R 3:a\tb\nX 1:0\nE 0:\n", 0, "TAB in recipient" },
		{ "R 1:a\nX 1:0\nG 3:a\rb\nE 0:\n", 0, "CR in diagnostic" },
		{ "R 1:a\nX 2:00\nE 0:\n", 0, "leading zero number" },
		{ "R 1:a\nX 0:\nE 0:\n", 0, "empty number" },
		{ "R 1:a\nX 2:+1\nE 0:\n", 0, "signed number" },
	};
	struct queue_env	 e;
	struct buf		 b;
	const char		*err;
	size_t			 i;
	int			 r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_init(&b, 0);
		if ((!cases[i].whole && buf_puts(&b, hdr) == -1) ||
		    buf_puts(&b, cases[i].body) == -1)
			abort();
		r = decode_str(buf_cstr(&b), &err);
		CHECK(i == 0 ? r == 0 : r == -1, cases[i].what);
		buf_free(&b);
	}

	/* NUL inside a string field. */
	buf_init(&b, 0);
	if (buf_puts(&b, hdr) == -1 ||
	    buf_append(&b, "R 3:a\0b\nX 1:0\nE 0:\n", 19) == -1)
		abort();
	CHECK(queue_env_decode(b.data, b.len, &e, &err) == -1,
	    "NUL in recipient");
	queue_env_free(&e);
	buf_free(&b);

	/* Field-level checks. */
	CHECK(decode_str("VMQ 1\nI 16:0123456789ABCDEF\nC 1:1\nS 0:\nH 1:h\n"
	    "A 0:\nZ 1:5\nF 1:0\nN 1:0\nT 1:0\nR 1:a\nX 1:0\nE 0:\n",
	    &err) == -1, "upper-case id");
	CHECK(decode_str("VMQ 1\nI 16:0123456789abcdef\nC 1:1\nS 0:\nH 1:h\n"
	    "A 0:\nZ 1:5\nF 1:8\nN 1:0\nT 1:0\nR 1:a\nX 1:0\nE 0:\n",
	    &err) == -1, "unknown flag");
	CHECK(decode_str("VMQ 1\nI 16:0123456789abcdef\nC 1:1\nS 0:\nH 1:h\n"
	    "A 0:\nZ 20:99999999999999999999\nF 1:0\nN 1:0\nT 1:0\nR 1:a\n"
	    "X 1:0\nE 0:\n", &err) == -1, "size overflow");
	CHECK(decode_str("VMQ 1\nI 16:0123456789abcdef\nC 1:1\nS 0:\nH 1:h\n"
	    "A 0:\nZ 1:5\nF 1:0\nN 10:4294967296\nT 1:0\nR 1:a\nX 1:0\n"
	    "E 0:\n", &err) == -1, "attempts overflow");
	CHECK(decode_str("VMQ 1\nC 1:1\nS 0:\nH 1:h\n"
	    "A 0:\nZ 1:5\nF 1:0\nN 1:0\nT 1:0\nR 1:a\nX 1:0\nE 0:\n",
	    &err) == -1, "missing id");
	CHECK(decode_str("VMQ 1\nI 16:0123456789abcdef\nS 0:\nH 1:h\n"
	    "A 0:\nZ 1:5\nF 1:0\nN 1:0\nT 1:0\nR 1:a\nX 1:0\nE 0:\n",
	    &err) == -1, "missing created");
	CHECK(decode_str("VMQ 1\nI 16:0123456789abcdef\nC 1:1\nS 0:\nH 1:h\n"
	    "A 0:\nZ 1:5\nF 1:0\nN 1:0\nT 1:0\nU 1:u\nR 1:a\nX 1:0\nE 0:\n",
	    &err) == -1, "header out of order");

	/* Recipient limit: QUEUE_RCPT_MAX accepted, one more refused. */
	{
		struct buf	 big;
		size_t		 n;

		buf_init(&big, 0);
		if (buf_puts(&big, hdr) == -1)
			abort();
		for (n = 0; n < QUEUE_RCPT_MAX; n++)
			if (buf_puts(&big, "R 1:a\nX 1:0\n") == -1)
				abort();
		if (buf_puts(&big, "E 0:\n") == -1)
			abort();
		r = queue_env_decode(big.data, big.len, &e, &err);
		CHECK(r == 0 && e.nrcpts == QUEUE_RCPT_MAX,
		    "QUEUE_RCPT_MAX recipients accepted");
		queue_env_free(&e);
		big.len -= 5;
		if (buf_puts(&big, "R 1:a\nX 1:0\nE 0:\n") == -1)
			abort();
		CHECK(queue_env_decode(big.data, big.len, &e, &err) == -1,
		    "QUEUE_RCPT_MAX + 1 recipients rejected");
		queue_env_free(&e);
		CHECK(queue_env_decode(big.data, QUEUE_ENV_MAX + 1, &e,
		    &err) == -1, "over QUEUE_ENV_MAX rejected");
		buf_free(&big);
	}

	/* The encoder refuses what the decoder would refuse. */
	env_sample(&e);
	free(e.sender);
	e.sender = xs("a@b\r\nBcc: x@y");
	buf_init(&b, 0);
	CHECK(queue_env_encode(&e, &b, &err) == -1 && b.len == 0,
	    "encode refuses CRLF, buffer unchanged");
	queue_env_free(&e);
	env_sample(&e);
	e.id[0] = 'X';
	CHECK(queue_env_encode(&e, &b, &err) == -1, "encode refuses bad id");
	queue_env_free(&e);
	env_sample(&e);
	queue_env_free(&e);
	memcpy(e.id, "0123456789abcdef", QUEUE_ID_LEN + 1);
	e.sender = xs("");
	e.helo = xs("h");
	e.client_addr = xs("");
	CHECK(queue_env_encode(&e, &b, &err) == -1,
	    "encode refuses no recipients");
	queue_env_free(&e);
	buf_free(&b);
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_ids(void)
{
	char	 ids[1000][QUEUE_ID_LEN + 1];
	int	 i, ok = 1;

	for (i = 0; i < 1000; i++) {
		queue_new_id(ids[i]);
		if (!queue_id_valid(ids[i]))
			ok = 0;
	}
	CHECK(ok, "new ids valid");
	qsort(ids, 1000, sizeof(ids[0]), id_cmp);
	for (i = 1; i < 1000; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			ok = 0;
	CHECK(ok, "new ids distinct");
	CHECK(!queue_id_valid("0123456789abcde"), "short id invalid");
	CHECK(!queue_id_valid("0123456789abcdef0"), "long id invalid");
	CHECK(!queue_id_valid("../23456789abcdef"), "traversal id invalid");
	CHECK(!queue_id_valid(NULL), "NULL id invalid");
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in qdir/sub, sorted, joined with spaces, into out. */
static void
dir_names(const char *qdir, const char *sub, char *out, size_t size)
{
	char		 path[PATH_MAX], *names[64];
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0, i;

	out[0] = '\0';
	fmt(path, sizeof(path), "%s/%s", qdir, sub);
	if ((d = opendir(path)) == NULL) {
		(void)snprintf(out, size, "?");
		return;
	}
	while ((de = readdir(d)) != NULL && n < 64)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			names[n++] = xs(de->d_name);
	(void)closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0)
			(void)strncat(out, " ", size - strlen(out) - 1);
		(void)strncat(out, names[i], size - strlen(out) - 1);
		free(names[i]);
	}
}

static int
file_mode(const char *qdir, const char *sub, const char *id)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	fmt(path, sizeof(path), "%s/%s/%s", qdir, sub, id);
	if (lstat(path, &st) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

static void
rcpt_env(struct queue_env *e)
{
	memset(e, 0, sizeof(*e));
	e->sender = xs("alice@alpha.test");
	e->helo = xs("h.example");
	e->client_addr = xs("192.0.2.1");
	if (queue_env_add_rcpt(e, "bob@alpha.test", NULL) == -1)
		abort();
}

static void
test_files(const char *qdir)
{
	struct queue_writer	 w;
	struct queue_env	 e, l;
	const char		*err;
	char			 names[512], id[QUEUE_ID_LEN + 1], buf[64];
	char			 path[PATH_MAX], **ids;
	size_t			 n;
	ssize_t			 got;
	int			 fd, r;

	CHECK(queue_init(qdir, &err) == 0, "queue_init");
	CHECK(queue_init(qdir, &err) == 0, "queue_init again");
	CHECK(file_mode(qdir, ".", "tmp") == 0700, "tmp/ mode 0700");

	/* Commit. */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "writer open");
	CHECK(file_mode(qdir, "tmp", "") != -1, "tmp exists");
	CHECK(queue_writer_write(&w, "Subject: x\n\nhello\n", 18) == 0,
	    "writer write");
	rcpt_env(&e);
	CHECK(queue_writer_commit(&w, qdir, &e, &err) == 0, "commit");
	memcpy(id, w.id, sizeof(id));
	CHECK(strcmp(e.id, id) == 0 && e.size == 18 && e.created != 0,
	    "commit sets id, size, created");
	dir_names(qdir, "env", names, sizeof(names));
	CHECK(strcmp(names, id) == 0, "commit creates env/ID only");
	dir_names(qdir, "msg", names, sizeof(names));
	CHECK(strcmp(names, id) == 0, "commit creates msg/ID only");
	dir_names(qdir, "tmp", names, sizeof(names));
	CHECK(names[0] == '\0', "commit leaves tmp/ empty");
	CHECK(file_mode(qdir, "env", id) == 0600 &&
	    file_mode(qdir, "msg", id) == 0600, "queue files mode 0600");
	fd = queue_msg_open(qdir, id);
	got = fd == -1 ? -1 : read(fd, buf, sizeof(buf));
	CHECK(got == 18 && memcmp(buf, "Subject: x\n\nhello\n", 18) == 0,
	    "message body stored");
	if (fd != -1)
		(void)close(fd);
	CHECK(queue_msg_open(qdir, "../../etc/passwd") == -1 &&
	    errno == EINVAL, "msg open refuses bad id");

	CHECK(queue_env_load(qdir, id, &l, &err) == 0 && env_equal(&e, &l),
	    "load equals committed");
	queue_env_free(&l);

	/* Update. */
	e.rcpts[0].state = QUEUE_RCPT_DONE;
	e.attempts = 1;
	CHECK(queue_env_update(qdir, &e, &err) == 0, "update");
	CHECK(queue_env_load(qdir, id, &l, &err) == 0 && env_equal(&e, &l) &&
	    l.rcpts[0].state == QUEUE_RCPT_DONE, "update persisted");
	queue_env_free(&l);
	dir_names(qdir, "tmp", names, sizeof(names));
	CHECK(names[0] == '\0', "update leaves tmp/ empty");

	/* Hold and release. */
	e.hold_reason = xs("admin");
	CHECK(queue_env_update(qdir, &e, &err) == 0, "hold");
	CHECK(file_mode(qdir, "hold", id) == 0600 &&
	    file_mode(qdir, "env", id) == -1, "held envelope moved to hold/");
	CHECK(queue_list(qdir, 0, &ids, &n, &err) == 0 && n == 0,
	    "held not listed");
	queue_list_free(ids, n);
	CHECK(queue_list(qdir, 1, &ids, &n, &err) == 0 && n == 1 &&
	    strcmp(ids[0], id) == 0, "held listed with_held");
	queue_list_free(ids, n);
	CHECK(queue_env_load(qdir, id, &l, &err) == 0 && l.hold_reason &&
	    strcmp(l.hold_reason, "admin") == 0, "load held");
	queue_env_free(&l);
	free(e.hold_reason);
	e.hold_reason = NULL;
	CHECK(queue_env_update(qdir, &e, &err) == 0 &&
	    file_mode(qdir, "hold", id) == -1 &&
	    file_mode(qdir, "env", id) == 0600, "release back to env/");

	/* Listing skips names that are not ids. */
	fmt(path, sizeof(path), "%s/env/not-an-id", qdir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd != -1)
		(void)close(fd);
	fmt(path, sizeof(path), "%s/env/0123456789ABCDEF", qdir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd != -1)
		(void)close(fd);
	CHECK(queue_list(qdir, 1, &ids, &n, &err) == 0 && n == 1 &&
	    strcmp(ids[0], id) == 0, "list skips non-ids");
	queue_list_free(ids, n);

	/* An envelope whose id does not match its name is refused. */
	fmt(path, sizeof(path), "%s/env/%s", qdir,
	    "aaaaaaaaaaaaaaaa");
	{
		char	 src[PATH_MAX];

		fmt(src, sizeof(src), "%s/env/%s", qdir, id);
		r = link(src, path);
	}
	CHECK(r == 0 && queue_env_load(qdir, "aaaaaaaaaaaaaaaa", &l,
	    &err) == -1, "id mismatch refused");
	(void)unlink(path);

	/* Update of a removed message never resurrects it. */
	CHECK(queue_remove(qdir, id, &err) == 0, "remove");
	CHECK(file_mode(qdir, "env", id) == -1 &&
	    file_mode(qdir, "msg", id) == -1, "remove deletes env and msg");
	CHECK(queue_remove(qdir, id, &err) == 0, "remove is idempotent");
	CHECK(queue_env_update(qdir, &e, &err) == -1 && errno == ENOENT &&
	    file_mode(qdir, "env", id) == -1, "update does not resurrect");
	CHECK(queue_env_load(qdir, id, &l, &err) == -1, "load removed");
	queue_env_free(&e);

	/* Commit straight into hold (quarantine at end of DATA). */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "writer open 2");
	rcpt_env(&e);
	e.hold_reason = xs("milter quarantine");
	CHECK(queue_writer_write(&w, "x\n", 2) == 0 &&
	    queue_writer_commit(&w, qdir, &e, &err) == 0 &&
	    file_mode(qdir, "hold", w.id) == 0600 &&
	    file_mode(qdir, "env", w.id) == -1, "commit into hold/");
	CHECK(queue_remove(qdir, w.id, &err) == 0 &&
	    file_mode(qdir, "hold", w.id) == -1, "remove held");
	queue_env_free(&e);

	/* Abort. */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "writer open 3");
	CHECK(queue_writer_write(&w, "partial", 7) == 0, "write partial");
	queue_writer_abort(&w);
	queue_writer_abort(&w);
	dir_names(qdir, "tmp", names, sizeof(names));
	CHECK(names[0] == '\0', "abort leaves nothing");
	dir_names(qdir, "msg", names, sizeof(names));
	CHECK(names[0] == '\0', "abort leaves no msg");

	/* ENOSPC: writes fail, commit refuses, errno survives. */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "writer open 4");
	fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd != -1) {
		(void)dup2(fd, w.fd);
		(void)close(fd);
		CHECK(queue_writer_write(&w, "x", 1) == -1 && errno == ENOSPC,
		    "write to full disk fails with ENOSPC");
		CHECK(queue_writer_write(&w, "y", 1) == -1 && errno == ENOSPC,
		    "later writes keep failing");
		rcpt_env(&e);
		errno = 0;
		r = queue_writer_commit(&w, qdir, &e, &err);
		CHECK(r == -1 && errno == ENOSPC, "commit fails with ENOSPC");
		queue_env_free(&e);
		dir_names(qdir, "tmp", names, sizeof(names));
		CHECK(names[0] == '\0', "failed commit leaves no tmp file");
		dir_names(qdir, "msg", names, sizeof(names));
		CHECK(names[0] == '\0', "failed commit leaves no msg");
	} else {
		printf("# skip: no /dev/full\n");
		queue_writer_abort(&w);
	}
}

static void
touch_old(const char *qdir, const char *sub, const char *name, int old)
{
	char		 path[PATH_MAX];
	struct timespec	 ts[2];
	int		 fd;

	fmt(path, sizeof(path), "%s/%s/%s", qdir, sub, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		return;
	if (old) {
		ts[0].tv_sec = ts[1].tv_sec = time(NULL) - 7200;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		(void)futimens(fd, ts);
	}
	(void)close(fd);
}

static void
test_gc(const char *qdir)
{
	char	 names[512];

	touch_old(qdir, "tmp", "1111111111111111.msg", 1); /* goes */
	touch_old(qdir, "tmp", "2222222222222222.msg", 0); /* fresh */
	touch_old(qdir, "msg", "3333333333333333", 1); /* orphan */
	touch_old(qdir, "msg", "4444444444444444", 0); /* fresh */
	touch_old(qdir, "msg", "5555555555555555", 1); /* has env */
	touch_old(qdir, "env", "5555555555555555", 1);
	touch_old(qdir, "msg", "6666666666666666", 1); /* held */
	touch_old(qdir, "hold", "6666666666666666", 1);
	touch_old(qdir, "msg", "not-an-id", 1); /* not ours */
	CHECK(queue_gc(qdir, 3600) == 2, "gc removes two");
	dir_names(qdir, "tmp", names, sizeof(names));
	CHECK(strcmp(names, "2222222222222222.msg") == 0, "gc tmp/");
	dir_names(qdir, "msg", names, sizeof(names));
	CHECK(strcmp(names, "4444444444444444 5555555555555555 "
	    "6666666666666666 not-an-id") == 0, "gc msg/");
	CHECK(queue_gc(qdir, 3600) == 0, "gc again removes nothing");
}

/*
 * A recycled file comes back, renamed to the next id, as the same
 * inode, not truncated (ext4 would write it out at close); seal and
 * commit cut the old tail.  One that queue_gc() removed meanwhile is
 * replaced; one whose write failed is not kept.
 */
static void
test_recycle(const char *qdir)
{
	struct queue_writer	 w;
	struct queue_env	 e;
	struct stat		 st;
	const char		*err;
	char			 names[512], old[512], path[PATH_MAX];
	char			 data[64];
	ino_t			 ino;
	int			 fd;
	ssize_t			 n;

	CHECK(queue_writer_open(&w, qdir, &err) == 0, "recycle: open");
	CHECK(queue_writer_write(&w, "first message\n", 14) == 0,
	    "recycle: write");
	CHECK(fstat(w.fd, &st) == 0, "recycle: fstat");
	ino = st.st_ino;
	memcpy(old, w.tmp_path, sizeof(old));
	queue_writer_recycle(&w);
	CHECK(w.fd == -1 && w.tmp_path[0] == '\0', "recycle: writer empty");
	CHECK(access(old, F_OK) == 0, "recycle: file kept");

	CHECK(queue_writer_open(&w, qdir, &err) == 0, "recycle: reopen");
	CHECK(fstat(w.fd, &st) == 0 && st.st_ino == ino && st.st_size == 14 &&
	    w.stale == 14, "recycle: same inode, old length known");
	CHECK(access(old, F_OK) == -1 && access(w.tmp_path, F_OK) == 0,
	    "recycle: renamed to the new id");
	CHECK(queue_writer_write(&w, "second\n", 7) == 0, "recycle: write 2");
	memset(&e, 0, sizeof(e));
	e.sender = (char *)"";
	e.helo = (char *)"h";
	e.client_addr = (char *)"";
	CHECK(queue_env_add_rcpt(&e, "bob@alpha.test", NULL) == 0,
	    "recycle: rcpt");
	CHECK(queue_writer_commit(&w, qdir, &e, &err) == 0,
	    "recycle: commit");
	fmt(path, sizeof(path), "%s/msg/%s", qdir, e.id);
	fd = open(path, O_RDONLY);
	n = fd == -1 ? -1 : read(fd, data, sizeof(data));
	CHECK(n == 7 && memcmp(data, "second\n", 7) == 0,
	    "recycle: only the new message");
	if (fd != -1)
		(void)close(fd);
	CHECK(queue_remove(qdir, e.id, &err) == 0, "recycle: remove");
	e.sender = e.helo = e.client_addr = NULL;
	queue_env_free(&e);

	/* Seal, as direct delivery does before the deliverer reads. */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "recycle: open long");
	CHECK(queue_writer_write(&w, "a longer message\n", 17) == 0,
	    "recycle: write long");
	queue_writer_recycle(&w);
	CHECK(queue_writer_open(&w, qdir, &err) == 0 && w.stale == 17,
	    "recycle: reopen long");
	CHECK(queue_writer_write(&w, "short\n", 6) == 0 &&
	    queue_writer_seal(&w) == 0 && w.stale == 0,
	    "recycle: write and seal");
	CHECK(fstat(w.fd, &st) == 0 && st.st_size == 6, "recycle: sealed "
	    "to the message's length");
	CHECK(queue_writer_seal(&w) == 0, "recycle: seal again is a no-op");
	queue_writer_recycle(&w);

	/* A writer whose write failed gives up its file. */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "recycle: open failed");
	memcpy(old, w.tmp_path, sizeof(old));
	w.failed = 1;
	w.error = EIO;
	CHECK(queue_writer_seal(&w) == -1, "recycle: seal of a failed writer");
	queue_writer_recycle(&w);
	CHECK(access(old, F_OK) == -1 && errno == ENOENT,
	    "recycle: failed writer's file removed");

	/* A spare that vanished (queue_gc) is replaced by a new file. */
	CHECK(queue_writer_open(&w, qdir, &err) == 0, "recycle: open 3");
	memcpy(old, w.tmp_path, sizeof(old));
	queue_writer_recycle(&w);
	CHECK(unlink(old) == 0, "recycle: spare removed");
	CHECK(queue_writer_open(&w, qdir, &err) == 0 && w.fd != -1,
	    "recycle: open without the spare");
	CHECK(queue_writer_write(&w, "x", 1) == 0, "recycle: write 3");
	queue_writer_abort(&w);
	dir_names(qdir, "tmp", names, sizeof(names));
	CHECK(strcmp(names, "") == 0, "recycle: tmp/ empty");
}

/*
 * A commit whose envelope cannot be renamed into env/ must remove the
 * body it already moved into msg/.  Run as an unprivileged child so
 * that directory permissions apply.
 */
static void
test_commit_cleanup(void)
{
	struct queue_writer	 w;
	struct queue_env	 e;
	const char		*err;
	char			 qdir[] = "/tmp/vmq-perm.XXXXXX";
	char			 names[512];
	char			 path[PATH_MAX];
	pid_t			 pid;
	int			 status, code;

	pid = fork();
	if (pid == -1) {
		CHECK(0, "fork");
		return;
	}
	if (pid == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) == -1 ||
		    setresgid(65534, 65534, 65534) == -1 ||
		    setresuid(65534, 65534, 65534) == -1))
			_exit(99);
		if (mkdtemp(qdir) == NULL)
			_exit(98);
		code = 0;
		fmt(path, sizeof(path), "%s/q", qdir);
		if (queue_init(path, &err) == -1)
			_exit(97);
		fmt(names, sizeof(names), "%s/env", path);
		if (chmod(names, 0500) == -1)
			_exit(96);
		if (queue_writer_open(&w, path, &err) == -1 ||
		    queue_writer_write(&w, "x\n", 2) == -1)
			_exit(95);
		rcpt_env(&e);
		errno = 0;
		if (queue_writer_commit(&w, path, &e, &err) != -1)
			code |= 1;
		if (errno != EACCES)
			code |= 2;
		dir_names(path, "msg", names, sizeof(names));
		if (names[0] != '\0')
			code |= 4;
		dir_names(path, "tmp", names, sizeof(names));
		if (names[0] != '\0')
			code |= 8;
		queue_env_free(&e);
		fmt(names, sizeof(names), "rm -rf %s", qdir);
		if (system(names) != 0)
			code |= 16;
		_exit(code);
	}
	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status)) {
		CHECK(0, "permission child");
		return;
	}
	code = WEXITSTATUS(status);
	if (code >= 95) {
		printf("# skip: cannot set up unwritable env/ (%d)\n", code);
		return;
	}
	CHECK(!(code & 1), "commit into unwritable env/ fails");
	CHECK(!(code & 2), "commit failure keeps errno EACCES");
	CHECK(!(code & 4), "failed commit removes renamed msg/ID");
	CHECK(!(code & 8), "failed commit removes tmp files");
}

static int
count_fds(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	(void)closedir(d);
	return n;
}

static void
test_fdpass(void)
{
	int		 sv[2], p[2], q[2], fd, before, two[2];
	char		 buf[16];
	ssize_t		 n;
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	 hdr;
		char		 b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct cmsghdr	*c;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 || pipe(p) == -1 ||
	    pipe(q) == -1) {
		CHECK(0, "fdpass setup");
		return;
	}
	CHECK(fdpass_send(sv[0], p[1], "hello", 5) == 0, "fdpass send");
	n = fdpass_recv(sv[1], &fd, buf, sizeof(buf));
	CHECK(n == 5 && memcmp(buf, "hello", 5) == 0 && fd != -1,
	    "fdpass recv data and fd");
	CHECK(fd != -1 && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
	    "received fd is close-on-exec");
	if (fd != -1) {
		CHECK(write(fd, "x", 1) == 1 && read(p[0], buf, 1) == 1 &&
		    buf[0] == 'x', "received fd works");
		(void)close(fd);
	}
	CHECK(fdpass_send(sv[0], -1, "ab", 2) == 0, "send data only");
	n = fdpass_recv(sv[1], &fd, buf, sizeof(buf));
	CHECK(n == 2 && fd == -1, "recv data only");
	CHECK(fdpass_send(sv[0], p[1], "", 0) == -1 && errno == EINVAL,
	    "fd without data refused");

	/* Two descriptors: the first is kept, the other closed. */
	before = count_fds();
	two[0] = p[1];
	two[1] = q[1];
	memset(&msg, 0, sizeof(msg));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = buf;
	iov.iov_len = 1;
	buf[0] = 'z';
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.b;
	msg.msg_controllen = sizeof(cm.b);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), two, sizeof(two));
	CHECK(sendmsg(sv[0], &msg, 0) == 1, "raw send of two fds");
	n = fdpass_recv(sv[1], &fd, buf, sizeof(buf));
	CHECK(n == 1 && fd != -1, "recv keeps one of two");
	CHECK(count_fds() == before + 1, "extra descriptor closed");
	if (fd != -1)
		(void)close(fd);

	/* More than fit: MSG_CTRUNC, everything closed, an error. */
	{
		int		 many[12];
		union {
			struct cmsghdr	 hdr;
			char		 b[CMSG_SPACE(sizeof(many))];
		} cm2;
		size_t		 i;

		for (i = 0; i < 12; i++)
			many[i] = p[1];
		memset(&msg, 0, sizeof(msg));
		memset(&cm2, 0, sizeof(cm2));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm2.b;
		msg.msg_controllen = sizeof(cm2.b);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(many));
		memcpy(CMSG_DATA(c), many, sizeof(many));
		before = count_fds();
		CHECK(sendmsg(sv[0], &msg, 0) == 1, "raw send of 12 fds");
		n = fdpass_recv(sv[1], &fd, buf, sizeof(buf));
		CHECK(n == -1 && errno == EMSGSIZE && fd == -1,
		    "too many descriptors refused");
		CHECK(count_fds() == before, "all received descriptors closed");
	}

	(void)close(sv[0]);
	n = fdpass_recv(sv[1], &fd, buf, sizeof(buf));
	CHECK(n == 0 && fd == -1, "recv EOF");
	(void)close(sv[1]);
	(void)close(p[0]);
	(void)close(p[1]);
	(void)close(q[0]);
	(void)close(q[1]);
}

int
main(void)
{
	char	 base[] = "/tmp/vmq-test.XXXXXX", qdir[PATH_MAX];
	char	 cmd[PATH_MAX + 16];

	test_codec();
	test_codec_bad();
	test_ids();
	if (mkdtemp(base) == NULL) {
		CHECK(0, "mkdtemp");
		return test_done();
	}
	fmt(qdir, sizeof(qdir), "%s/queue", base);
	test_files(qdir);
	test_recycle(qdir);
	test_gc(qdir);
	test_commit_cleanup();
	test_fdpass();
	fmt(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", base);
	return test_done();
}
