/*
 * test_mta.c — the SMTP client state machine over buffers, the body
 * encoding on the wire, and MX ordering.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd.h"
#include "test.h"

static int
msgfile(const char *text)
{
	char	 path[] = "/tmp/test_mta.XXXXXX";
	int	 fd;

	if ((fd = mkstemp(path)) == -1)
		return -1;
	(void)unlink(path);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	return fd;
}

/* What the client sent since the last call, as a C string. */
static char *
sent(struct mta_session *s)
{
	static char	 b[65536];
	size_t		 n = s->out.len < sizeof(b) - 1 ? s->out.len :
			    sizeof(b) - 1;

	if (n > 0)
		memcpy(b, s->out.data, n);
	b[n] = '\0';
	buf_consume(&s->out, s->out.len);
	(void)mta_session_pump(s);
	if (s->out.len > 0 && n + s->out.len < sizeof(b) - 1) {
		memcpy(b + n, s->out.data, s->out.len);
		b[n + s->out.len] = '\0';
		buf_consume(&s->out, s->out.len);
	}
	return b;
}

/* CHECK_STR evaluates its arguments twice. */
#define CHECK_SENT(s, want, what) do {					\
	const char *got_ = sent(s);					\
	CHECK_STR(got_, (want), (what));				\
} while (0)

static int
feed(struct mta_session *s, const char *text)
{
	return mta_session_input(s, text, strlen(text));
}

static void
test_pipelined(void)
{
	struct mta_session	 s;
	struct mta_rcpt		 r[3];
	int			 fd;

	memset(r, 0, sizeof(r));
	r[0].addr = "a@b.test";
	r[1].addr = "c@b.test";
	r[2].addr = "d@b.test";
	fd = msgfile("Subject: x\n\n.dot\nline\n..two\nlast");
	mta_session_init(&s, "mx.alpha.test", "s@alpha.test", r, 3, 40, 1,
	    fd);
	CHECK(feed(&s, "220 hi\r\n") == 0, "banner");
	CHECK_SENT(&s, "EHLO mx.alpha.test\r\n", "EHLO sent");
	CHECK(feed(&s, "250-beta\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
	    "250 8BITMIME\r\n") == 0, "EHLO reply");
	CHECK(s.pipelining && s.ext_8bitmime && s.size_max == 1000,
	    "extensions parsed");
	CHECK_SENT(&s, "MAIL FROM:<s@alpha.test> SIZE=40 BODY=8BITMIME"
	    "\r\nRCPT TO:<a@b.test>\r\nRCPT TO:<c@b.test>\r\n"
	    "RCPT TO:<d@b.test>\r\nDATA\r\n", "pipelined group");
	CHECK(feed(&s, "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n"
	    "451 4.3.0 try later\r\n354 go\r\n") == 0, "replies in order");
	CHECK_SENT(&s, "Subject: x\r\n\r\n..dot\r\nline\r\n...two\r\n"
	    "last\r\n.\r\n", "body CRLF, dot-stuffed, final dot");
	CHECK(feed(&s, "250 2.0.0 queued as X\r\n") == 0, "dot reply");
	CHECK_SENT(&s, "QUIT\r\n", "QUIT");
	CHECK(r[0].status == DELIVER_OK && strcmp(r[0].dsn, "2.0.0") == 0,
	    "accepted rcpt delivered");
	CHECK(r[1].status == DELIVER_PERMFAIL &&
	    strcmp(r[1].dsn, "5.1.1") == 0 &&
	    strcmp(r[1].reply, "550 5.1.1 no such user") == 0,
	    "550 rcpt bounced with its reply");
	CHECK(r[2].status == DELIVER_TEMPFAIL &&
	    strcmp(r[2].dsn, "4.3.0") == 0, "451 rcpt deferred");
	CHECK(feed(&s, "221 bye\r\n") == -1 && s.done, "done after QUIT");
	mta_session_free(&s);
	(void)close(fd);
}

static void
test_helo_fallback(void)
{
	struct mta_session	 s;
	struct mta_rcpt		 r[2];
	int			 fd;

	memset(r, 0, sizeof(r));
	r[0].addr = "a@b.test";
	r[1].addr = "c@b.test";
	fd = msgfile("x\n");
	mta_session_init(&s, "h.test", "", r, 2, 2, 0, fd);
	(void)feed(&s, "220-multi\r\n220 line\r\n");
	CHECK_SENT(&s, "EHLO h.test\r\n", "EHLO first");
	(void)feed(&s, "502 no\r\n");
	CHECK_SENT(&s, "HELO h.test\r\n", "HELO fallback");
	(void)feed(&s, "250 ok\r\n");
	CHECK_SENT(&s, "MAIL FROM:<>\r\n", "null sender, no SIZE");
	(void)feed(&s, "250 ok\r\n");
	CHECK_SENT(&s, "RCPT TO:<a@b.test>\r\n", "one RCPT at a time");
	(void)feed(&s, "550 no\r\n");
	CHECK_SENT(&s, "RCPT TO:<c@b.test>\r\n", "second RCPT");
	(void)feed(&s, "550 no\r\n");
	CHECK_SENT(&s, "QUIT\r\n", "no DATA without a recipient");
	CHECK(r[0].status == DELIVER_PERMFAIL &&
	    strcmp(r[0].dsn, "5.0.0") == 0, "derived enhanced code");
	mta_session_free(&s);
	(void)close(fd);
}

static void
test_size_and_abort(void)
{
	struct mta_session	 s;
	struct mta_rcpt		 r[1];
	int			 fd;

	memset(r, 0, sizeof(r));
	r[0].addr = "a@b.test";
	fd = msgfile("x\n");
	mta_session_init(&s, "h.test", "s@a.test", r, 1, 5000, 0, fd);
	(void)feed(&s, "220 hi\r\n");
	(void)sent(&s);
	(void)feed(&s, "250-x\r\n250 SIZE 100\r\n");
	CHECK_SENT(&s, "QUIT\r\n", "over SIZE: nothing sent");
	CHECK(r[0].status == DELIVER_PERMFAIL &&
	    strcmp(r[0].dsn, "5.3.4") == 0, "over SIZE bounces");
	mta_session_free(&s);

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 5, 0, fd);
	(void)feed(&s, "220 hi\r\n");
	CHECK(feed(&s, "250 x\r\n250 y\r\n") == 0 && s.state == MTA_RCPT,
	    "in RCPT");
	mta_session_abort(&s, "connection lost");
	CHECK(r[0].status == DELIVER_TEMPFAIL && s.done,
	    "abort defers open rcpts");
	mta_session_free(&s);

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 5, 0, fd);
	CHECK(feed(&s, "554 go away\r\n") == 0 && s.fail_status ==
	    DELIVER_PERMFAIL && r[0].status == -1,
	    "greeting refusal is a session failure");
	mta_session_free(&s);
	mta_session_init(&s, "h.test", "s@a.test", r, 1, 5, 0, fd);
	CHECK(feed(&s, "garbage\r\n") == -1 && s.done, "malformed reply");
	mta_session_free(&s);
	(void)close(fd);
}

static void
test_encode(void)
{
	struct buf	 b;
	int		 bol = 1;

	buf_init(&b, 0);
	CHECK(mta_body_encode(&b, "a\n.", 3, &bol) == 0 &&
	    mta_body_encode(&b, "b\n", 2, &bol) == 0 &&
	    strcmp(buf_cstr(&b), "a\r\n..b\r\n") == 0,
	    "dot-stuffing across pieces");
	buf_free(&b);
}

static unsigned int	 seq;

static unsigned int
rnd(void)
{
	return seq++;
}

static void
test_mx_sort(void)
{
	struct dns_mx	 mx[5] = {
		{ "c", 30 }, { "a", 10 }, { "b1", 20 }, { "b2", 20 },
		{ "z", 0 },
	};
	int		 b1first = 0, b2first = 0, i;
	struct dns_mx	 m[5];

	for (i = 0; i < 20; i++) {
		memcpy(m, mx, sizeof(m));
		seq = (unsigned int)i;
		dns_mx_sort(m, 5, rnd);
		if (m[0].pref != 0 || m[1].pref != 10 || m[2].pref != 20 ||
		    m[3].pref != 20 || m[4].pref != 30)
			break;
		if (strcmp(m[2].host, "b1") == 0)
			b1first = 1;
		else
			b2first = 1;
	}
	CHECK(i == 20, "sorted by preference");
	CHECK(b1first && b2first, "equal preferences shuffled");
}

/* STARTTLS (RFC 3207): when it is sent, what a refusal means per
 * policy, and that replies read in the clear after 220 are dropped. */
static void
test_starttls(void)
{
	struct mta_session	 s;
	struct mta_rcpt		 r[1];
	int			 fd;

	memset(r, 0, sizeof(r));
	r[0].addr = "a@b.test";
	fd = msgfile("x\n");

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 2, 0, fd);
	s.tls_policy = TLS_POLICY_MAY;
	(void)feed(&s, "220 hi\r\n");
	(void)sent(&s);
	(void)feed(&s, "250-x\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	CHECK_SENT(&s, "STARTTLS\r\n", "may: STARTTLS when offered");
	/* An injected reply after 220, in the same packet. */
	CHECK(feed(&s, "220 go ahead\r\n250 injected\r\n") == 0 &&
	    s.tls_start && s.in.len == 0, "220: wrap now, rest dropped");
	CHECK(mta_session_tls_started(&s) == 0 && s.tls &&
	    !s.pipelining && !s.starttls && s.state == MTA_EHLO,
	    "extensions forgotten");
	CHECK_SENT(&s, "EHLO h.test\r\n", "EHLO again");
	(void)feed(&s, "250-x\r\n250 STARTTLS\r\n");
	CHECK_SENT(&s, "MAIL FROM:<s@a.test>\r\n", "no second STARTTLS");
	mta_session_free(&s);

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 2, 0, fd);
	s.tls_policy = TLS_POLICY_MAY;
	(void)feed(&s, "220 hi\r\n");
	(void)feed(&s, "250-x\r\n250 STARTTLS\r\n");
	(void)sent(&s);
	(void)feed(&s, "454 4.7.0 not now\r\n");
	CHECK_SENT(&s, "MAIL FROM:<s@a.test>\r\n", "may: refused, clear");
	mta_session_free(&s);

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 2, 0, fd);
	s.tls_policy = TLS_POLICY_ENCRYPT;
	(void)feed(&s, "220 hi\r\n");
	(void)sent(&s);
	(void)feed(&s, "250-x\r\n250 SIZE 100\r\n");
	CHECK_SENT(&s, "QUIT\r\n", "encrypt: not offered, QUIT");
	CHECK(s.fail_status == DELIVER_TEMPFAIL &&
	    strcmp(s.fail_dsn, "4.7.4") == 0 && r[0].status == -1,
	    "encrypt: a temporary session failure");
	mta_session_free(&s);

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 2, 0, fd);
	s.tls_policy = TLS_POLICY_VERIFY;
	(void)feed(&s, "220 hi\r\n");
	(void)feed(&s, "500 what\r\n");
	(void)sent(&s);
	(void)feed(&s, "250 hello\r\n");
	CHECK_SENT(&s, "QUIT\r\n", "verify: HELO only, QUIT");
	CHECK(s.fail_status == DELIVER_TEMPFAIL, "verify: deferred");
	mta_session_free(&s);

	mta_session_init(&s, "h.test", "s@a.test", r, 1, 2, 0, fd);
	(void)feed(&s, "220 hi\r\n");
	(void)feed(&s, "250-x\r\n250 STARTTLS\r\n");
	CHECK(strstr(sent(&s), "STARTTLS") == NULL, "none: never");
	mta_session_free(&s);
	(void)close(fd);
}

int
main(void)
{
	test_pipelined();
	test_starttls();
	test_helo_fallback();
	test_size_and_abort();
	test_encode();
	test_mx_sort();
	return test_done();
}
