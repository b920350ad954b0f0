/*
 * test_drop.c — drop_copy(), the check virtmail-postdrop makes while it
 * copies a submission into drop/: a good submission comes out as the
 * runner's parser reads it; a bad envelope, a NUL byte, an envelope or
 * a message over its bound, a truncated envelope and a read error are
 * refused with the right result.  Also drop_on_host() on the host.
 */

#include <sys/mman.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "drop.h"
#include "test.h"

/* A descriptor that reads len bytes of data, from the start. */
static int
memfd_with(const char *data, size_t len)
{
	int	 fd;

	if ((fd = memfd_create("in", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		exit(2);
	}
	if (len > 0 && write(fd, data, len) != (ssize_t)len) {
		perror("write");
		exit(2);
	}
	(void)lseek(fd, 0, SEEK_SET);
	return fd;
}

/* Copy data through drop_copy; what was written in out. */
static enum drop_copy_result
copy(const char *data, size_t len, size_t max, struct buf *out,
    const char **err)
{
	enum drop_copy_result	 r;
	char			 chunk[4096];
	ssize_t			 n;
	int			 in, o;

	in = memfd_with(data, len);
	o = memfd_with("", 0);
	*err = NULL;
	r = drop_copy(in, o, max, err);
	(void)lseek(o, 0, SEEK_SET);
	buf_reset(out);
	while ((n = read(o, chunk, sizeof(chunk))) > 0)
		(void)buf_append(out, chunk, (size_t)n);
	(void)close(in);
	(void)close(o);
	return r;
}

static void
test_good(void)
{
	static const char	 sub[] = "VMDROP 1\nS a@x.test\nR b@x.test\n"
	    "R c@y.test\n\nSubject: hi\n\nbody\n\nmore\n";
	struct drop_env		 e;
	struct buf		 out, big;
	const char		*err;
	size_t			 off, i;

	buf_init(&out, 0);
	CHECK(copy(sub, sizeof(sub) - 1, 1000, &out, &err) == DROP_COPY_OK,
	    "good submission copied");
	CHECK(out.len == sizeof(sub) - 1 && memcmp(out.data, sub,
	    out.len) == 0, "written byte for byte");
	CHECK(drop_parse(out.data, out.len, &e, &off, &err) == 0 &&
	    e.nrcpts == 2, "the runner's parser reads it");
	drop_env_free(&e);

	CHECK(copy("VMDROP 1\nS \nR b@x.test\n\n", 24, 10, &out, &err) ==
	    DROP_COPY_OK && out.len == 24, "null sender, empty message");

	/* A message of exactly the bound, then one byte over. */
	buf_init(&big, 0);
	(void)buf_puts(&big, "VMDROP 1\nS a@x.test\nR b@x.test\n\n");
	for (i = 0; i < 200000; i++)
		(void)buf_putc(&big, 'a' + (int)(i % 26));
	CHECK(copy(big.data, big.len, 200000, &out, &err) == DROP_COPY_OK &&
	    out.len == big.len, "message at the bound, over many reads");
	CHECK(copy(big.data, big.len, 199999, &out, &err) == DROP_COPY_BAD &&
	    err != NULL && strcmp(err, "message too large") == 0,
	    "message one byte over the bound");
	buf_free(&big);
	buf_free(&out);
}

static void
test_bad(void)
{
	static const struct {
		const char	*data;
		size_t		 len;	/* 0: strlen */
		const char	*err;
	} bad[] = {
		{ "", 0, "truncated envelope" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\n", 0,
		    "truncated envelope" },
		{ "VMDROP 2\nS a@x.test\nR b@x.test\n\nx", 0,
		    "not a drop file of version 1" },
		{ "VMDROP 1\nS a@x.test\n\nx", 0, "no recipients" },
		{ "VMDROP 1\nS a@x.test\nR bob\n\nx", 0,
		    "bad recipient address" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\r\n\nx", 0,
		    "bad recipient address" },
		{ "VMDROP 1\nS a@\0.test\nR b@x.test\n\nx", 33,
		    "NUL byte in envelope" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\n\nSubject: a\0b\n", 45,
		    "NUL byte in the message" },
		{ "VMDROP 1\nS a@x.test\nX y\n\nx", 0,
		    "unknown envelope record" },
	};
	struct buf	 out, b;
	const char	*err;
	size_t		 i, len;

	buf_init(&out, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = bad[i].len ? bad[i].len : strlen(bad[i].data);
		CHECK(copy(bad[i].data, len, 1000, &out, &err) ==
		    DROP_COPY_BAD && err != NULL && strcmp(err,
		    bad[i].err) == 0, bad[i].err);
	}

	/* An envelope that never ends stops at DROP_ENV_MAX. */
	buf_init(&b, 0);
	(void)buf_puts(&b, "VMDROP 1\nS a@x.test\n");
	while (b.len <= DROP_ENV_MAX + 70000)
		(void)buf_puts(&b, "R b@x.test\n");
	CHECK(copy(b.data, b.len, 1000, &out, &err) == DROP_COPY_BAD &&
	    strcmp(err, "envelope too large") == 0 && out.len == 0,
	    "endless envelope refused, nothing written");
	buf_reset(&b);
	(void)buf_puts(&b, "VMDROP 1\nS a@x.test\n");
	for (i = 0; i < DROP_RCPT_MAX + 1; i++)
		(void)buf_printf(&b, "R r%zu@x.test\n", i);
	(void)buf_puts(&b, "\nx\n");
	CHECK(copy(b.data, b.len, 1000, &out, &err) == DROP_COPY_BAD &&
	    strcmp(err, "too many recipients") == 0 && out.len == 0,
	    "too many recipients");
	buf_free(&b);
	buf_free(&out);
}

static void
test_io_errors(void)
{
	const char	*err = NULL;
	int		 p[2], o;

	/* Reading a write-only descriptor fails: EREAD with errno. */
	if (pipe(p) == -1)
		exit(2);
	o = memfd_with("", 0);
	errno = 0;
	CHECK(drop_copy(p[1], o, 1000, &err) == DROP_COPY_EREAD &&
	    errno == EBADF, "read error reported with its errno");
	(void)close(p[0]);
	(void)close(p[1]);
	(void)close(o);

	/* Writing to a read-end: EWRITE. */
	if (pipe(p) == -1)
		exit(2);
	o = memfd_with("VMDROP 1\nS a@x.test\nR b@x.test\n\nx\n", 34);
	CHECK(drop_copy(o, p[0], 1000, &err) == DROP_COPY_EWRITE &&
	    errno == EBADF, "write error reported with its errno");
	(void)close(p[0]);
	(void)close(p[1]);
	(void)close(o);
}

int
main(void)
{
	test_good();
	test_bad();
	test_io_errors();
	/* The unit tests run on the host: postdrop would refuse here. */
	CHECK(drop_on_host() == 1, "drop_on_host on the host");
	return test_done();
}
