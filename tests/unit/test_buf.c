/*
 * test_buf.c — unit tests for the byte buffer, the compat string and
 * number functions, and the bounded file helpers.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "fileio.h"
#include "test.h"

static void
test_basic(void)
{
	struct buf	 b;

	buf_init(&b, 0);
	CHECK(b.data == NULL && b.len == 0, "init: empty, no allocation");
	CHECK_STR(buf_cstr(&b), "", "init: cstr is \"\"");
	CHECK(buf_append(&b, "", 0) == 0, "append of nothing succeeds");
	CHECK(b.len == 0, "append of nothing adds nothing");
	CHECK(buf_puts(&b, "hello") == 0, "puts");
	CHECK(buf_putc(&b, ' ') == 0, "putc");
	CHECK(buf_printf(&b, "%s %d", "world", 42) == 0, "printf");
	CHECK_STR(buf_cstr(&b), "hello world 42", "contents");
	CHECK(b.len == 14, "length counts bytes");
	CHECK(buf_putc(&b, 0x1ff) == 0 && b.data[14] == (char)0xff,
	    "putc keeps only the low byte");
	buf_consume(&b, 6);
	CHECK(b.len == 9 && memcmp(b.data, "world 42\xff", 9) == 0,
	    "consume drops the front");
	CHECK(b.data[b.len] == '\0', "consume keeps the NUL");
	buf_consume(&b, 0);
	CHECK(b.len == 9, "consume 0 is a no-op");
	buf_consume(&b, 1000);
	CHECK(b.len == 0 && b.data != NULL && b.data[0] == '\0',
	    "consume past len empties, keeps allocation");
	buf_reset(&b);
	CHECK(b.len == 0 && b.cap > 0, "reset keeps the allocation");
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0, "free resets");
	buf_free(&b);
	CHECK(b.data == NULL, "double free is safe");
	buf_reset(&b);
	CHECK(b.len == 0, "reset of an unallocated buffer is safe");
	buf_consume(&b, 5);
	CHECK(b.len == 0, "consume of an unallocated buffer is safe");
}

static void
test_binary(void)
{
	struct buf	 b;
	static const char bin[] = "a\0b\r\n\0\xff";

	buf_init(&b, 0);
	CHECK(buf_append(&b, bin, sizeof(bin)) == 0, "binary append");
	CHECK(b.len == sizeof(bin) && memcmp(b.data, bin, sizeof(bin)) == 0,
	    "NUL bytes are data");
	buf_consume(&b, 2);
	CHECK(b.len == sizeof(bin) - 2 &&
	    memcmp(b.data, bin + 2, sizeof(bin) - 2) == 0,
	    "consume across NUL bytes");
	buf_free_secret(&b);
	CHECK(b.data == NULL && b.len == 0, "free_secret resets");
	buf_free_secret(&b);
	CHECK(b.data == NULL, "free_secret of an empty buffer is safe");
}

static void
test_limits(void)
{
	struct buf	 b;
	char		 big[100];
	size_t		 cap;

	buf_init(&b, 8);
	CHECK(buf_append(&b, "12345678", 8) == 0, "max: fill exactly");
	errno = 0;
	CHECK(buf_putc(&b, 'x') == -1 && errno == EMSGSIZE,
	    "max: one more byte is EMSGSIZE");
	CHECK(b.len == 8 && strcmp(b.data, "12345678") == 0,
	    "max: failed append leaves the buffer unchanged");
	buf_consume(&b, 4);
	CHECK(buf_puts(&b, "abcd") == 0, "max: room again after consume");
	errno = 0;
	CHECK(buf_printf(&b, "%d", 1) == -1 && errno == EMSGSIZE,
	    "max: printf past max is EMSGSIZE");
	CHECK(b.len == 8 && strcmp(b.data, "5678abcd") == 0,
	    "max: failed printf leaves the buffer unchanged");
	errno = 0;
	CHECK(buf_append(&b, big, SIZE_MAX) == -1 && errno == EMSGSIZE,
	    "max: SIZE_MAX append cannot wrap");
	errno = 0;
	CHECK(buf_reserve(&b, SIZE_MAX) == -1 && errno == EMSGSIZE,
	    "max: SIZE_MAX reserve cannot wrap");
	CHECK(b.cap <= 9, "max: never allocates past max + 1");
	buf_free(&b);
	CHECK(b.max == 8, "free keeps max");

	buf_init(&b, 10);
	errno = 0;
	CHECK(buf_printf(&b, "%s", "0123456789abc") == -1 &&
	    errno == EMSGSIZE, "max: long printf on empty buffer fails");
	CHECK(b.len == 0 && buf_cstr(&b)[0] == '\0',
	    "max: and leaves it empty");
	CHECK(buf_printf(&b, "%s", "0123456789") == 0 && b.len == 10,
	    "max: printf to exactly max");
	buf_free(&b);

	/* max 0 means SIZE_MAX / 2; the check comes before allocating. */
	buf_init(&b, 0);
	errno = 0;
	CHECK(buf_append(&b, big, SIZE_MAX / 2 + 1) == -1 &&
	    errno == EMSGSIZE, "no max: SIZE_MAX/2 + 1 refused");
	CHECK(b.data == NULL, "no max: nothing allocated");
	CHECK(buf_putc(&b, 'a') == 0, "no max: ordinary append");
	errno = 0;
	CHECK(buf_append(&b, big, SIZE_MAX / 2) == -1 && errno == EMSGSIZE,
	    "no max: len + SIZE_MAX/2 refused");
	CHECK(buf_reserve(&b, 50) == 0, "reserve");
	cap = b.cap;
	memset(big, 'z', 50);
	CHECK(buf_append(&b, big, 50) == 0 && b.cap == cap,
	    "reserved space needs no new allocation");
	buf_free(&b);

	buf_init(&b, 1);
	CHECK(buf_putc(&b, 'a') == 0 && buf_putc(&b, 'b') == -1,
	    "max 1: one byte only");
	buf_free(&b);
}

static void
test_growth(void)
{
	struct buf	 b;
	char		*s;
	size_t		 i;
	int		 ok = 1;

	buf_init(&b, 0);
	for (i = 0; i < 100000; i++)
		if (buf_putc(&b, 'a' + (int)(i % 26)) == -1)
			ok = 0;
	for (i = 0; i < 100000 && ok; i++)
		if (b.data[i] != 'a' + (int)(i % 26))
			ok = 0;
	CHECK(ok && b.len == 100000 && b.data[b.len] == '\0',
	    "100000 single-byte appends");
	buf_free(&b);

	if ((s = malloc(5000)) == NULL)
		return;
	memset(s, 'q', 4999);
	s[4999] = '\0';
	buf_init(&b, 0);
	CHECK(buf_puts(&b, "x") == 0, "small first");
	CHECK(buf_printf(&b, "<%s>", s) == 0 && b.len == 5002,
	    "printf that must grow the buffer");
	CHECK(b.data[1] == '<' && b.data[5001] == '>' &&
	    b.data[5002] == '\0', "printf after growth is whole");
	buf_free(&b);
	free(s);
}

static const struct {
	const char	*in;
	long long	 min, max, want;
	const char	*err;
} strtonum_cases[] = {
	{ "0", 0, 10, 0, NULL },
	{ "10", 0, 10, 10, NULL },
	{ "11", 0, 10, 0, "too large" },
	{ "-1", 0, 10, 0, "too small" },
	{ "-5", -10, 10, -5, NULL },
	{ "", 0, 10, 0, "invalid" },
	{ "abc", 0, 10, 0, "invalid" },
	{ "5x", 0, 10, 0, "invalid" },
	{ "5 ", 0, 10, 0, "invalid" },
	{ "0x10", 0, 100, 0, "invalid" },
	{ "9223372036854775807", 0, LLONG_MAX, LLONG_MAX, NULL },
	{ "9223372036854775808", 0, LLONG_MAX, 0, "too large" },
	{ "99999999999999999999999", 0, LLONG_MAX, 0, "too large" },
	{ "-9223372036854775808", LLONG_MIN, 0, LLONG_MIN, NULL },
	{ "-99999999999999999999999", LLONG_MIN, 0, 0, "too small" },
	{ "5", 10, 0, 0, "invalid" },		/* min > max */
};

static void
test_compat(void)
{
	const char	*err;
	char		 msg[128], small[4];
	long long	 v;
	size_t		 i;
	int		 ok;

	for (i = 0; i < sizeof(strtonum_cases) / sizeof(strtonum_cases[0]);
	    i++) {
		err = "unset";
		v = strtonum(strtonum_cases[i].in, strtonum_cases[i].min,
		    strtonum_cases[i].max, &err);
		if (strtonum_cases[i].err == NULL)
			ok = err == NULL && v == strtonum_cases[i].want;
		else
			ok = err != NULL &&
			    strcmp(err, strtonum_cases[i].err) == 0 && v == 0;
		(void)snprintf(msg, sizeof(msg), "strtonum \"%s\"",
		    strtonum_cases[i].in);
		CHECK(ok, msg);
	}

	CHECK(strlcpy(small, "ab", sizeof(small)) == 2 &&
	    strcmp(small, "ab") == 0, "strlcpy fits");
	CHECK(strlcpy(small, "abcdef", sizeof(small)) == 6 &&
	    strcmp(small, "abc") == 0, "strlcpy truncates and terminates");
	CHECK(strlcpy(small, "zz", 0) == 2 && strcmp(small, "abc") == 0,
	    "strlcpy size 0 writes nothing");
	CHECK(strlcat(small, "", sizeof(small)) == 3, "strlcat empty");
	(void)strlcpy(small, "a", sizeof(small));
	CHECK(strlcat(small, "bcdef", sizeof(small)) == 6 &&
	    strcmp(small, "abc") == 0, "strlcat truncates and terminates");
	(void)strlcpy(small, "a", sizeof(small));
	CHECK(strlcat(small, "b", sizeof(small)) == 2 &&
	    strcmp(small, "ab") == 0, "strlcat fits");
	memcpy(small, "abcd", 4);	/* unterminated */
	CHECK(strlcat(small, "xy", sizeof(small)) == 6 &&
	    memcmp(small, "abcd", 4) == 0,
	    "strlcat on an unterminated dst writes nothing");
}

static void
test_fileio(void)
{
	char		 dir[] = "/tmp/virtmail-test-XXXXXX";
	char		 path[256], fifo[256], big[256];
	struct buf	 b;
	struct stat	 st;
	const char	*err;
	char		*data;
	int		 pfd[2];
	char		 rd[16];

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp");
		return;
	}
	(void)snprintf(path, sizeof(path), "%s/f", dir);
	(void)snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	(void)snprintf(big, sizeof(big), "%s/big", dir);

	CHECK(file_write_atomic(path, "hello\n", 6, 0640) == 0,
	    "write_atomic");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640,
	    "write_atomic sets the mode exactly");
	buf_init(&b, 0);
	CHECK(buf_puts(&b, "pre:") == 0, "prefix");
	CHECK(file_read_all(path, 6, &b, &err) == 0 &&
	    strcmp(buf_cstr(&b), "pre:hello\n") == 0,
	    "read_all appends; a file of exactly max is fine");
	errno = 0;
	CHECK(file_read_all(path, 5, &b, &err) == -1 && errno == EFBIG &&
	    err != NULL, "read_all: one byte over max is EFBIG");
	CHECK(strcmp(buf_cstr(&b), "pre:hello\n") == 0,
	    "read_all: failure leaves out unchanged");
	errno = 0;
	CHECK(file_read_all(path, 0, &b, &err) == -1 && errno == EFBIG,
	    "read_all: max 0 refuses a non-empty file");
	buf_free(&b);

	CHECK(file_write_atomic(path, "new", 3, 0600) == 0,
	    "write_atomic replaces");
	buf_init(&b, 0);
	CHECK(file_read_all(path, 100, &b, NULL) == 0 &&
	    strcmp(buf_cstr(&b), "new") == 0, "replaced contents");
	buf_free(&b);

	CHECK(file_write_atomic(path, "", 0, 0600) == 0, "empty file");
	buf_init(&b, 0);
	CHECK(file_read_all(path, 0, &b, &err) == 0 && b.len == 0,
	    "read_all of an empty file with max 0");
	buf_free(&b);

	/* Bigger than one read chunk: many short reads. */
	if ((data = malloc(100000)) != NULL) {
		memset(data, 'x', 100000);
		data[99999] = '\0';
		CHECK(file_write_atomic(big, data, 100000, 0600) == 0,
		    "write 100000 bytes");
		buf_init(&b, 0);
		CHECK(file_read_all(big, 100000, &b, &err) == 0 &&
		    b.len == 100000 && memcmp(b.data, data, 100000) == 0,
		    "read 100000 bytes back");
		buf_free(&b);
		buf_init(&b, 0);
		errno = 0;
		CHECK(file_read_all(big, 99999, &b, &err) == -1 &&
		    errno == EFBIG, "read_all: big file over max");
		buf_free(&b);
		buf_init(&b, 5000);
		CHECK(file_read_all(big, 200000, &b, &err) == -1 &&
		    errno == EMSGSIZE && b.len == 0,
		    "read_all: the buffer's own max still applies");
		buf_free(&b);
		free(data);
	}

	buf_init(&b, 0);
	errno = 0;
	CHECK(file_read_all(dir, 100, &b, &err) == -1 && errno == EISDIR,
	    "read_all refuses a directory");
	if (mkfifo(fifo, 0600) == 0) {
		errno = 0;
		CHECK(file_read_all(fifo, 100, &b, &err) == -1 &&
		    errno == EINVAL, "read_all refuses a FIFO, no hang");
		(void)unlink(fifo);
	}
	errno = 0;
	CHECK(file_read_all("/nonexistent/x", 100, &b, &err) == -1 &&
	    errno == ENOENT && err != NULL, "read_all: missing file ENOENT");
	CHECK(file_read_all("/dev/null", 100, &b, &err) == -1 &&
	    errno == EINVAL, "read_all refuses a device");
	buf_free(&b);

	CHECK(file_fsync_dir(path) == 0, "fsync_dir");
	CHECK(file_fsync_dir("relative-name") == 0, "fsync_dir of a bare name");
	CHECK(file_fsync_dir("/etc") == 0, "fsync_dir of a top-level name");
	errno = 0;
	CHECK(file_write_atomic("/nonexistent/dir/f", "x", 1, 0600) == -1 &&
	    errno == ENOENT, "write_atomic into a missing directory fails");

	if (pipe(pfd) == 0) {
		CHECK(write_all(pfd[1], "abc", 3) == 0, "write_all");
		CHECK(read(pfd[0], rd, sizeof(rd)) == 3 &&
		    memcmp(rd, "abc", 3) == 0, "write_all wrote it all");
		(void)close(pfd[0]);
		CHECK(write_all(pfd[1], "abc", 3) == -1 && errno == EPIPE,
		    "write_all reports a closed pipe");
		(void)close(pfd[1]);
	}

	(void)unlink(path);
	(void)unlink(big);
	CHECK(rmdir(dir) == 0, "no temp files left behind");
}

int
main(void)
{
	/* write_all to a closed pipe must fail, not kill the test. */
	(void)signal(SIGPIPE, SIG_IGN);
	test_basic();
	test_binary();
	test_limits();
	test_growth();
	test_compat();
	test_fileio();
	return test_done();
}
