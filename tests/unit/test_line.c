/*
 * test_line.c — unit tests for the bounded line reader.
 *
 * Each case feeds chunks into a buffer as a network read would, drains
 * every line after each chunk, then calls line_finish at end of input.
 * The events are written as one string: "C:" CRLF, "L:" bare LF, "R:"
 * bare CR, "E:" end of input, each followed by the line and '|'; "T|"
 * is a line that was too long.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "line.h"
#include "test.h"

#define S(x)	{ x, sizeof(x) - 1 }

struct bytes {
	const char	*p;
	size_t		 len;
};

struct line_case {
	const char	*what;
	size_t		 max;
	int		 bare_cr;
	int		 bytewise;	/* feed one byte at a time */
	struct bytes	 in[4];		/* chunks; p == NULL ends */
	struct bytes	 want;
};

static const struct line_case cases[] = {
	{ "empty input", 10, 0, 0, { { NULL, 0 } }, S("") },
	{ "CRLF lines", 10, 0, 0, { S("a\r\nb\r\n") }, S("C:a|C:b|") },
	{ "bare LF lines", 10, 0, 0, { S("a\nb\n") }, S("L:a|L:b|") },
	{ "empty lines", 10, 0, 0, { S("\r\n\n\r\n") }, S("C:|L:|C:|") },
	{ "bare CR is data when not asked for", 10, 0, 0,
	    { S("a\rb\r\n") }, S("C:a\rb|") },
	{ "bare CR ends a line when asked for", 10, 1, 0,
	    { S("a\rb\r\n") }, S("R:a|C:b|") },
	{ "CR CR LF with bare_cr", 10, 1, 0, { S("\r\r\n") }, S("R:|C:|") },
	{ "CR LF split across appends", 10, 0, 0,
	    { S("abc\r"), S("\ndef\r\n") }, S("C:abc|C:def|") },
	{ "CR LF split across appends, bare_cr", 10, 1, 0,
	    { S("abc\r"), S("\ndef\r\n") }, S("C:abc|C:def|") },
	{ "bare CR at a chunk end, then data", 10, 1, 0,
	    { S("abc\r"), S("x\r\n") }, S("R:abc|C:x|") },
	{ "every byte its own append", 10, 1, 1,
	    { S("ab\r\ncd\nx\ry\r\n") }, S("C:ab|L:cd|R:x|C:y|") },
	{ "missing newline at EOF", 10, 0, 0,
	    { S("a\r\nlast") }, S("C:a|E:last|") },
	{ "only a partial line", 10, 0, 0, { S("abc") }, S("E:abc|") },
	{ "trailing CR at EOF is data", 10, 1, 0,
	    { S("abc\r") }, S("E:abc\r|") },
	{ "NUL bytes are data", 10, 0, 0,
	    { S("a\0b\r\n\0\n") }, S("C:a\0b|L:\0|") },
	{ "line of exactly max, CRLF", 4, 0, 0,
	    { S("abcd\r\n") }, S("C:abcd|") },
	{ "line of exactly max, LF", 4, 0, 0, { S("abcd\n") }, S("L:abcd|") },
	{ "line of exactly max, CR LF split", 4, 0, 0,
	    { S("abcd\r"), S("\n") }, S("C:abcd|") },
	{ "line of exactly max, bare CR", 4, 1, 0,
	    { S("abcd\rx\n") }, S("R:abcd|L:x|") },
	{ "max + 1 is too long", 4, 0, 0,
	    { S("abcde\nok\n") }, S("T|L:ok|") },
	{ "max + 1 with CRLF is too long", 4, 0, 0,
	    { S("abcde\r\nok\r\n") }, S("T|C:ok|") },
	{ "overlong line reported once across appends", 4, 0, 0,
	    { S("abcdef"), S("ghij"), S("kl\r\nok\n") }, S("T|L:ok|") },
	{ "overlong line, bytewise", 4, 0, 1,
	    { S("abcdefghij\r\nok\r\n") }, S("T|C:ok|") },
	{ "overlong line then lines in the same chunk", 3, 0, 0,
	    { S("aaaaaaaa\nbb\ncc\r\n") }, S("T|L:bb|C:cc|") },
	{ "overlong line cut by EOF", 4, 0, 0,
	    { S("abcdefgh") }, S("T|") },
	{ "overlong last line without newline", 4, 0, 0,
	    { S("ok\nabcde") }, S("L:ok|T|") },
	{ "EOF line of exactly max", 4, 0, 0, { S("abcd") }, S("E:abcd|") },
	{ "max 0: empty lines only", 0, 0, 0,
	    { S("\r\na\n\n") }, S("C:|T|L:|") },
	{ "overlong skip ends at LF, not at bare CR", 3, 1, 0,
	    { S("abcdef\rgh\nok\n") }, S("T|L:ok|") },
	{ "smuggling: bare LF dot", 10, 0, 0,
	    { S("x\n.\nQUIT\r\n") }, S("L:x|L:.|C:QUIT|") },
	{ "smuggling: bare CR dot", 10, 1, 0,
	    { S("x\r.\r\nQUIT\r\n") }, S("R:x|C:.|C:QUIT|") },
	{ "smuggling: LF CR dot CR LF", 10, 1, 0,
	    { S("x\n\r.\r\n") }, S("L:x|R:|C:.|") },
};

static void
record(struct buf *out, const struct line *l)
{
	static const char *const tag[] = { "C:", "L:", "R:", "E:" };

	(void)buf_puts(out, tag[l->end]);
	(void)buf_append(out, l->data, l->len);
	(void)buf_putc(out, '|');
}

static void
drain(struct line_reader *lr, struct buf *in, int bare_cr, struct buf *out)
{
	struct line		 l;
	enum line_status	 st;
	int			 guard = 0;

	while ((st = line_next(lr, in, bare_cr, &l)) != LINE_PARTIAL &&
	    guard++ < 1000) {
		if (st == LINE_TOOLONG) {
			(void)buf_puts(out, "T|");
			continue;
		}
		record(out, &l);
		buf_consume(in, l.consumed);
	}
}

static void
feed(struct line_reader *lr, struct buf *in, int bare_cr, struct buf *out,
    const char *p, size_t len)
{
	(void)buf_append(in, p, len);
	drain(lr, in, bare_cr, out);
}

static void
run_case(const struct line_case *c)
{
	struct line_reader	 lr;
	struct line		 l;
	struct buf		 in, out;
	enum line_status	 st;
	size_t			 i, j;
	int			 guard = 0;

	line_reader_init(&lr, c->max);
	buf_init(&in, 0);
	buf_init(&out, 0);
	for (i = 0; i < 4 && c->in[i].p != NULL; i++) {
		if (!c->bytewise) {
			feed(&lr, &in, c->bare_cr, &out, c->in[i].p,
			    c->in[i].len);
			continue;
		}
		for (j = 0; j < c->in[i].len; j++)
			feed(&lr, &in, c->bare_cr, &out, c->in[i].p + j, 1);
	}
	while ((st = line_finish(&lr, &in, &l)) != LINE_PARTIAL &&
	    guard++ < 1000) {
		if (st == LINE_TOOLONG) {
			(void)buf_puts(&out, "T|");
			continue;
		}
		record(&out, &l);
		buf_consume(&in, l.consumed);
	}
	CHECK(out.len == c->want.len &&
	    memcmp(buf_cstr(&out), c->want.p, out.len) == 0, c->what);
	if (out.len != c->want.len ||
	    memcmp(buf_cstr(&out), c->want.p, out.len) != 0)
		printf("# got \"%s\"\n", buf_cstr(&out));
	CHECK(in.len == 0 && lr.skipping == 0, "...and nothing is left over");
	buf_free(&in);
	buf_free(&out);
}

/* A huge line arriving in small reads never grows past the limit. */
static void
test_huge_line(void)
{
	struct line_reader	 lr;
	struct buf		 in, out;
	char			 chunk[512];
	size_t			 i, peak = 0;

	memset(chunk, 'x', sizeof(chunk));
	line_reader_init(&lr, 1000);
	buf_init(&in, 4096);
	buf_init(&out, 0);
	for (i = 0; i < 2000; i++) {
		feed(&lr, &in, 0, &out, chunk, sizeof(chunk));
		if (in.len > peak)
			peak = in.len;
	}
	feed(&lr, &in, 0, &out, "\r\nok\r\n", 6);
	CHECK_STR(buf_cstr(&out), "T|C:ok|",
	    "1 MB line: reported once, then back in step");
	CHECK(peak <= 1002 + sizeof(chunk),
	    "1 MB line: buffered bytes stay bounded by the limit");
	buf_free(&in);
	buf_free(&out);
}

/* line_next on an empty, never-allocated buffer. */
static void
test_unallocated(void)
{
	struct line_reader	 lr;
	struct line		 l;
	struct buf		 in;

	line_reader_init(&lr, 10);
	buf_init(&in, 0);
	CHECK(line_next(&lr, &in, 1, &l) == LINE_PARTIAL,
	    "line_next on an unallocated buffer");
	CHECK(line_finish(&lr, &in, &l) == LINE_PARTIAL,
	    "line_finish on an unallocated buffer");
}

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_huge_line();
	test_unallocated();
	return test_done();
}
