/*
 * test_sendmail.c — virtmail-sendmail's message handling: added Date:,
 * Message-ID: and From:, kept ones, Bcc: removal, -t extraction from
 * To/Cc/Bcc with display names, comments, groups and folding, bare
 * names qualified, CRLF turned into LF, a body without header, and
 * hostile input (NUL bytes, controls in -F, too many fields, huge
 * headers, malformed address lists).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtpd.h"
#include "test.h"

static int
prep(struct sendmail_msg *m, const char *in, int extract, const char **err)
{
	memset(m, 0, sizeof(*m));
	m->user = "bob";
	m->fullname = NULL;
	m->sender = NULL;
	m->domain = "alpha.test";
	m->hostname = "mx.alpha.test";
	m->extract = extract;
	m->now = 1700000000;
	return sendmail_msg_prepare(m, in, strlen(in), 1 << 20, err);
}

static const char *
out(struct sendmail_msg *m)
{
	return buf_cstr(&m->out);
}

static void
test_added(void)
{
	struct sendmail_msg	 m;
	const char		*err = NULL, *o;

	CHECK(prep(&m, "Subject: hi\n\nbody\n", 0, &err) == 0, "plain ok");
	o = out(&m);
	CHECK(strncmp(o, "Subject: hi\n", 12) == 0, "existing field first");
	CHECK(strstr(o, "\nFrom: <bob@alpha.test>\n") != NULL, "From added");
	CHECK(strstr(o, "\nDate: ") != NULL, "Date added");
	CHECK(strstr(o, "\nMessage-ID: <1700000000.") != NULL &&
	    strstr(o, "@mx.alpha.test>\n") != NULL, "Message-ID added");
	CHECK(strstr(o, ">\n\nbody\n") != NULL, "body after empty line");
	sendmail_msg_free(&m);

	CHECK(prep(&m, "From: x@y.test\nDate: today\nMessage-Id: <a@b>\n\nb\n",
	    0, &err) == 0, "complete ok");
	CHECK(strcmp(out(&m), "From: x@y.test\nDate: today\n"
	    "Message-Id: <a@b>\n\nb\n") == 0, "complete header unchanged");
	sendmail_msg_free(&m);

	memset(&m, 0, sizeof(m));
	m.user = "bob";
	m.fullname = "Bob \"B\" Evil\nBcc: x@y";
	m.sender = "list-owner@alpha.test";
	m.domain = "alpha.test";
	m.hostname = "h";
	m.now = 1;
	CHECK(sendmail_msg_prepare(&m, "x", 1, 1024, &err) == 0,
	    "name with controls ok");
	o = out(&m);
	CHECK(strstr(o, "From: \"Bob \\\"B\\\" EvilBcc: x@y\" "
	    "<list-owner@alpha.test>\n") != NULL, "name quoted, controls gone");
	CHECK(strstr(o, "\nBcc:") == NULL, "no header injected by -F");
	CHECK(strstr(o, "\n\nx\n") != NULL, "no header: all body, LF added");
	sendmail_msg_free(&m);
}

static void
test_crlf_bcc(void)
{
	struct sendmail_msg	 m;
	const char		*err = NULL, *o;

	CHECK(prep(&m, "To: a@x.test\r\nBcc: hidden@x.test,\r\n more@x.test"
	    "\r\nSubject: s\r\n\r\nline\r\nbare\rcr\r\n", 1, &err) == 0,
	    "crlf ok");
	o = out(&m);
	CHECK(strstr(o, "\r\n") == NULL, "CRLF became LF");
	CHECK(strstr(o, "bare\rcr\n") != NULL, "bare CR kept");
	CHECK(strstr(o, "Bcc") == NULL && strstr(o, "hidden") == NULL &&
	    strstr(o, "more@") == NULL, "Bcc and its continuation removed");
	CHECK(strstr(o, "To: a@x.test\nSubject: s\n") != NULL,
	    "other fields kept in order");
	CHECK(m.nrcpts == 3, "three recipients");
	CHECK(m.nrcpts == 3 && strcmp(m.rcpts[0], "a@x.test") == 0 &&
	    strcmp(m.rcpts[1], "hidden@x.test") == 0 &&
	    strcmp(m.rcpts[2], "more@x.test") == 0, "To, Bcc, folded Bcc");
	sendmail_msg_free(&m);

	CHECK(prep(&m, "Bcc: h@x.test\n\nb\n", 0, &err) == 0, "no -t ok");
	CHECK(m.nrcpts == 0, "without -t nothing is extracted");
	CHECK(strstr(out(&m), "h@x.test") == NULL, "Bcc removed without -t");
	sendmail_msg_free(&m);
}

struct collect {
	char	*v[16];
	size_t	 n;
};

static int
collect(void *ctx, const char *a)
{
	struct collect	*c = ctx;

	if (c->n >= 16)
		return -1;
	c->v[c->n++] = strdup(a);
	return 0;
}

static void
collect_free(struct collect *c)
{
	while (c->n > 0)
		free(c->v[--c->n]);
}

static void
test_lists(void)
{
	static const struct {
		const char	*in;
		const char	*want;	/* space-separated; NULL: error */
	} cases[] = {
		{ "bob", "bob@alpha.test" },
		{ "Bob Smith <bob@x.test>", "bob@x.test" },
		{ "\"Smith, Bob\" <bob@x.test>, carol@y.test",
		    "bob@x.test carol@y.test" },
		{ "bob@x.test (Bob, the builder), c@y.test",
		    "bob@x.test c@y.test" },
		{ "friends: a@x.test, b@x.test;, c@x.test",
		    "a@x.test b@x.test c@x.test" },
		{ "undisclosed-recipients:;", "" },
		{ "<@relay.test:bob@x.test>", "bob@x.test" },
		{ "  ,  , bob@x.test ,", "bob@x.test" },
		{ "a@x.test, ", "a@x.test" },
		{ "\"quoted local\"@x.test", "\"quoted local\"@x.test" },
		{ "<bob@x.test", NULL },
		{ "bob@x.test>", NULL },
		{ "\"open", NULL },
		{ "(open comment", NULL },
		{ "<a@x.test> trailing", NULL },
		{ "<<a@x.test>>", NULL },
		{ "a@@x.test", NULL },
		{ "a@x.test\001", NULL },
		{ "a\nb@x.test", NULL },
		{ "a@-bad-.test", NULL },
	};
	struct collect	 c;
	struct buf	 got;
	const char	*err;
	char		 what[160];
	size_t		 i, k;
	int		 r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&c, 0, sizeof(c));
		err = NULL;
		r = sendmail_addr_list(cases[i].in, "alpha.test", collect, &c,
		    &err);
		(void)snprintf(what, sizeof(what), "address list %zu: %s", i,
		    cases[i].in);
		for (k = 0; what[k] != '\0'; k++)
			if ((unsigned char)what[k] < 0x20)
				what[k] = '?';
		if (cases[i].want == NULL) {
			CHECK(r == -1 && err != NULL, what);
			collect_free(&c);
			continue;
		}
		buf_init(&got, 4096);
		for (k = 0; k < c.n; k++)
			(void)buf_printf(&got, "%s%s", k ? " " : "", c.v[k]);
		CHECK(r == 0 && strcmp(buf_cstr(&got), cases[i].want) == 0,
		    what);
		if (r != 0 || strcmp(buf_cstr(&got), cases[i].want) != 0)
			printf("# got r=%d \"%s\" err=%s\n", r, buf_cstr(&got),
			    err ? err : "");
		buf_free(&got);
		collect_free(&c);
	}
}

static void
test_hostile(void)
{
	struct sendmail_msg	 m;
	struct buf		 big;
	const char		*err;
	size_t			 i;
	char			 nul[] = "Subject: a\n\nb\0c\n";

	memset(&m, 0, sizeof(m));
	m.user = "bob";
	m.domain = "alpha.test";
	m.hostname = "h";
	err = NULL;
	CHECK(sendmail_msg_prepare(&m, nul, sizeof(nul) - 1, 1024, &err) ==
	    -1 && err != NULL, "NUL byte refused");

	buf_init(&big, 0);
	for (i = 0; i < SENDMAIL_FIELDS_MAX + 5; i++)
		(void)buf_printf(&big, "X-F%zu: v\n", i);
	(void)buf_puts(&big, "\nbody\n");
	CHECK(prep(&m, buf_cstr(&big), 0, &err) == -1, "too many fields");
	buf_reset(&big);
	(void)buf_puts(&big, "Subject: ");
	for (i = 0; i < SENDMAIL_HEADER_MAX / 64 + 10; i++)
		(void)buf_puts(&big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxx\n ");
	(void)buf_puts(&big, "\n\nbody\n");
	memset(&m, 0, sizeof(m));
	m.user = "bob";
	m.domain = "alpha.test";
	m.hostname = "h";
	CHECK(sendmail_msg_prepare(&m, big.data, big.len, 4 << 20, &err) ==
	    -1, "huge folded header refused");
	memset(&m, 0, sizeof(m));
	m.user = "bob";
	m.domain = "alpha.test";
	m.hostname = "h";
	CHECK(sendmail_msg_prepare(&m, big.data, big.len, 1000, &err) == -1,
	    "over the size limit refused");
	buf_free(&big);

	CHECK(prep(&m, "To: <a@x.test\n\nb\n", 1, &err) == -1,
	    "-t with a broken To refused");
	sendmail_msg_free(&m);
	CHECK(prep(&m, " leading: continuation\nSubject: x\n\nb\n", 0,
	    &err) == 0, "leading blank line start is body");
	CHECK(strncmp(out(&m), "From: ", 6) == 0 &&
	    strstr(out(&m), "\n\n leading: continuation\nSubject: x\n") !=
	    NULL, "it stays in the body");
	sendmail_msg_free(&m);
	CHECK(prep(&m, "", 0, &err) == 0, "empty message ok");
	CHECK(strstr(out(&m), "From: ") != NULL, "empty message gets From");
	sendmail_msg_free(&m);
}

static void
test_qualify(void)
{
	char		 dst[300];
	const char	*err;

	CHECK(sendmail_addr_qualify("bob", "alpha.test", dst, sizeof(dst),
	    &err) == 0 && strcmp(dst, "bob@alpha.test") == 0, "bare name");
	CHECK(sendmail_addr_qualify("<Bob@X.Test>", "a", dst, sizeof(dst),
	    &err) == 0 && strcmp(dst, "Bob@x.test") == 0,
	    "brackets dropped, domain lower-cased");
	CHECK(sendmail_addr_qualify("", "a", dst, sizeof(dst), &err) == -1,
	    "empty refused");
	CHECK(sendmail_addr_qualify("a b@x.test", "a", dst, sizeof(dst),
	    &err) == -1, "space refused");
	CHECK(sendmail_addr_qualify("a@x.test\r\nRCPT", "a", dst,
	    sizeof(dst), &err) == -1, "CRLF refused");
}

int
main(void)
{
	test_added();
	test_crlf_bcc();
	test_lists();
	test_hostile();
	test_qualify();
	return test_done();
}
