/*
 * test_pop3_mailbox.c — unit tests for the POP3 wire form (CRLF,
 * byte-stuffing, TOP), wire sizes, and the mbox parser (message
 * boundaries, separators, stable and unique UIDs), with hostile input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3d.h"
#include "test.h"

#define S(x)	x, sizeof(x) - 1

struct stuff_case {
	const char	*what;
	const char	*in;
	size_t		 len;
	long		 lines;
	const char	*want;
};

static const struct stuff_case stuff_cases[] = {
	{ "empty", S(""), -1, "" },
	{ "LF to CRLF", S("a\nb\n"), -1, "a\r\nb\r\n" },
	{ "CRLF kept", S("a\r\nb\r\n"), -1, "a\r\nb\r\n" },
	{ "last line without LF", S("a\nb"), -1, "a\r\nb\r\n" },
	{ "dot stuffed", S(".\n..x\n.y\n"), -1, "..\r\n...x\r\n..y\r\n" },
	{ "dot not at start", S("a.b\n"), -1, "a.b\r\n" },
	{ "bare CR is data", S("a\rb\n"), -1, "a\rb\r\n" },
	{ "NUL and 8-bit kept", S("\0\xe9\xff\n"), -1, "\0\xe9\xff\r\n" },
	{ "blank lines", S("\n\n"), -1, "\r\n\r\n" },
	{ "TOP 0", S("H: 1\nH: 2\n\nb1\nb2\n"), 0, "H: 1\r\nH: 2\r\n\r\n" },
	{ "TOP 1", S("H: 1\n\nb1\nb2\n"), 1, "H: 1\r\n\r\nb1\r\n" },
	{ "TOP more than body", S("H: 1\n\nb1\n"), 5, "H: 1\r\n\r\nb1\r\n" },
	{ "TOP no body", S("H: 1\nH: 2\n"), 0, "H: 1\r\nH: 2\r\n" },
	{ "TOP stuffed body", S("H: 1\n\n.x\n"), 1, "H: 1\r\n\r\n..x\r\n" },
};

/* The expected strings above may hold NUL: compare by computed length. */
static size_t
want_len(const struct stuff_case *t)
{
	if (strcmp(t->what, "NUL and 8-bit kept") == 0)
		return 5;
	return strlen(t->want);
}

static void
test_stuff(void)
{
	struct buf	 b;
	char		 what[128];
	size_t		 i;

	for (i = 0; i < sizeof(stuff_cases) / sizeof(stuff_cases[0]); i++) {
		const struct stuff_case *t = &stuff_cases[i];

		buf_init(&b, 0);
		(void)snprintf(what, sizeof(what), "stuff: %s", t->what);
		CHECK(pop3_stuff(t->in, t->len, t->lines, &b, NULL) == 0 &&
		    b.len == want_len(t) && memcmp(buf_cstr(&b), t->want,
		    b.len) == 0, what);
		if (t->lines < 0) {
			(void)snprintf(what, sizeof(what), "wire size: %s",
			    t->what);
			CHECK(pop3_wire_size(t->in, t->len) == b.len, what);
		}
		buf_free(&b);
	}
}

static void
test_stuff_big(void)
{
	struct buf	 b;
	char		*in;
	size_t		 i, n = 300000;

	/* Every other line starts with a dot; a multi-buffer message. */
	in = malloc(n);
	if (in == NULL)
		abort();
	for (i = 0; i < n; i++)
		in[i] = i % 4 == 0 ? '.' : i % 4 == 3 ? '\n' : 'x';
	buf_init(&b, 0);
	CHECK(pop3_stuff(in, n, -1, &b, NULL) == 0 &&
	    b.len == pop3_wire_size(in, n) && b.len == n + n / 4 * 2,
	    "large message size exact");
	buf_free(&b);
	free(in);
}

static void
mb_free(struct pop3_mailbox *mb)
{
	size_t	 i;

	for (i = 0; i < mb->n; i++)
		free(mb->msgs[i].uid);
	free(mb->msgs);
	memset(mb, 0, sizeof(*mb));
}

static void
test_mbox(void)
{
	struct pop3_mailbox	 mb, mb2;
	static const char	 box[] =
	    "From a@x Mon Jan  1 00:00:00 2024\n"
	    "Subject: one\n\nbody one\n\n"
	    "From b@x Mon Jan  1 00:00:01 2024\n"
	    "Subject: two\n\n>From here\n.dot\n\n";
	static const char	 dup[] =
	    "From a@x Mon Jan  1 00:00:00 2024\nS: 1\n\nx\n\n"
	    "From a@x Mon Jan  1 00:00:00 2024\nS: 1\n\nx\n\n"
	    "From a@x Mon Jan  1 00:00:00 2024\nS: 1\n\nx\n\n";
	static const char	 pre[] = "garbage\n\nFrom a@x d\nS: 1\n\nx\n\n";
	static const char	 torn[] = "From a@x d\nS: 1\n\nx\n\nFrom tor";
	static const char	 empty_msg[] = "From a@x d\n\nFrom b@x d\nS\n\n";

	memset(&mb, 0, sizeof(mb));
	CHECK(mailbox_mbox_parse(&mb, box, sizeof(box) - 1) == 0 &&
	    mb.n == 2, "mbox two messages");
	if (mb.n == 2) {
		CHECK(mb.msgs[0].len == strlen("Subject: one\n\nbody one\n") &&
		    memcmp(box + mb.msgs[0].off, "Subject: one", 12) == 0,
		    "mbox first message bounds");
		CHECK(mb.msgs[1].wire == pop3_wire_size(box + mb.msgs[1].off,
		    (size_t)mb.msgs[1].len) && mb.msgs[1].len ==
		    strlen("Subject: two\n\n>From here\n.dot\n"),
		    "mbox last message bounds");
		CHECK(mb.msgs[0].rawoff == 0 && mb.msgs[1].rawoff +
		    mb.msgs[1].rawlen == sizeof(box) - 1,
		    "mbox raw ranges cover the file");
		CHECK(strcmp(mb.msgs[0].uid, mb.msgs[1].uid) != 0 &&
		    strlen(mb.msgs[0].uid) == 16, "mbox uids differ");
	}
	memset(&mb2, 0, sizeof(mb2));
	(void)mailbox_mbox_parse(&mb2, box, sizeof(box) - 1);
	CHECK(mb2.n == 2 && mb.n == 2 &&
	    strcmp(mb.msgs[1].uid, mb2.msgs[1].uid) == 0,
	    "mbox uids stable across parses");
	mb_free(&mb2);
	/* Deleting the first leaves the second's UID unchanged. */
	(void)mailbox_mbox_parse(&mb2, box + mb.msgs[1].rawoff,
	    (size_t)mb.msgs[1].rawlen);
	CHECK(mb2.n == 1 && strcmp(mb2.msgs[0].uid, mb.msgs[1].uid) == 0,
	    "mbox uid survives deletion of another message");
	mb_free(&mb2);
	mb_free(&mb);

	CHECK(mailbox_mbox_parse(&mb, dup, sizeof(dup) - 1) == 0 &&
	    mb.n == 3, "mbox duplicates parsed");
	if (mb.n == 3)
		CHECK(strlen(mb.msgs[0].uid) == 16 &&
		    strncmp(mb.msgs[1].uid, mb.msgs[0].uid, 16) == 0 &&
		    strcmp(mb.msgs[1].uid + 16, "-2") == 0 &&
		    strcmp(mb.msgs[2].uid + 16, "-3") == 0,
		    "mbox duplicate uids numbered");
	mb_free(&mb);

	CHECK(mailbox_mbox_parse(&mb, pre, sizeof(pre) - 1) == 0 &&
	    mb.n == 1 && mb.msgs[0].rawoff == 9, "mbox preamble skipped");
	mb_free(&mb);
	CHECK(mailbox_mbox_parse(&mb, torn, sizeof(torn) - 1) == 0 &&
	    mb.n == 1 && mb.tailoff == sizeof(torn) - 1 - 8 &&
	    mb.msgs[0].rawlen == mb.tailoff,
	    "mbox torn From_ line at the end kept apart");
	mb_free(&mb);
	CHECK(mailbox_mbox_parse(&mb, empty_msg, sizeof(empty_msg) - 1) ==
	    0 && mb.n == 2 && mb.msgs[0].len == 0 && mb.msgs[0].wire == 0,
	    "mbox empty message");
	mb_free(&mb);
	CHECK(mailbox_mbox_parse(&mb, S("no from line at all\n")) == 0 &&
	    mb.n == 0, "mbox without From_ line");
	mb_free(&mb);
	CHECK(mailbox_mbox_parse(&mb, S("")) == 0 && mb.n == 0,
	    "mbox empty");
	mb_free(&mb);
	CHECK(mailbox_mbox_parse(&mb, S("From \0\0\0\n\0\n\nFrom \n")) == 0 &&
	    mb.n == 2, "mbox with NUL bytes");
	mb_free(&mb);
}

int
main(void)
{
	test_stuff();
	test_stuff_big();
	test_mbox();
	return test_done();
}
