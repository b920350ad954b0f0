/*
 * test_milter.c — the milter packet codec and configuration lines,
 * with hostile input: zero, oversized and truncated lengths; the
 * SETSYMLIST macro lists of a negotiation reply.
 */
#include <arpa/inet.h>

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "compat.h"
#include "smtpd.h"
#include "test.h"

static void
test_packets(void)
{
	struct buf	 b;
	const char	*d;
	size_t		 len, used, i;
	int		 cmd;
	uint32_t	 n;
	char		 raw[16];

	buf_init(&b, 0);
	CHECK(milter_packet_put(&b, 'c', NULL, 0) == 0, "put empty");
	CHECK(milter_packet_put(&b, 'h', "X\0v\0", 4) == 0, "put data");
	CHECK(milter_packet_next(b.data, b.len, 1000, &cmd, &d, &len,
	    &used) == 1 && cmd == 'c' && len == 0 && used == 5, "first");
	CHECK(milter_packet_next(b.data + used, b.len - used, 1000, &cmd, &d,
	    &len, &used) == 1 && cmd == 'h' && len == 4 &&
	    memcmp(d, "X\0v\0", 4) == 0, "second");
	/* Truncated: every prefix wants more. */
	for (i = 0; i < 9; i++)
		CHECK(milter_packet_next(b.data + 5, i, 1000, &cmd, &d,
		    &len, &used) == 0, "truncated needs more");
	buf_free(&b);

	n = htonl(0);
	memcpy(raw, &n, 4);
	CHECK(milter_packet_next(raw, 4, 1000, &cmd, &d, &len, &used) == -1,
	    "zero length refused");
	n = htonl(0x7fffffff);
	memcpy(raw, &n, 4);
	raw[4] = 'O';
	CHECK(milter_packet_next(raw, 5, MILTER_LEN_MAX, &cmd, &d, &len,
	    &used) == -1, "oversized length refused");
	n = htonl(1001);
	memcpy(raw, &n, 4);
	CHECK(milter_packet_next(raw, 5, 1000, &cmd, &d, &len, &used) == -1,
	    "length past max refused");
	CHECK(milter_packet_next(raw, 3, 1000, &cmd, &d, &len, &used) == 0,
	    "short header needs more");
	buf_init(&b, 0);
	CHECK(milter_packet_put(&b, 'B', "x", MILTER_LEN_MAX) == -1,
	    "put refuses oversized");
	buf_free(&b);
}

static void
test_conf(void)
{
	struct milter_conf	 mc;
	const char		*e;

	CHECK(milter_conf_parse("inet:127.0.0.1:8891", &mc, &e) == 0 &&
	    mc.family == AF_INET && mc.port == 8891 &&
	    mc.defact == MILTER_ACT_TEMPFAIL, "inet defaults");
	CHECK(milter_conf_parse("inet6:[::1]:25 timeout=3s eom_timeout=500ms "
	    "connect_timeout=1 default=reject", &mc, &e) == 0 &&
	    mc.family == AF_INET6 && mc.cmd_ms == 3000 && mc.eom_ms == 500 &&
	    mc.connect_ms == 1000 && mc.defact == MILTER_ACT_REJECT,
	    "inet6 with options");
	CHECK(milter_conf_parse("unix:/run/m.sock default=accept", &mc,
	    &e) == 0 && mc.family == AF_UNIX, "unix");
	CHECK(milter_conf_parse("unix:relative", &mc, &e) == -1,
	    "unix relative refused");
	CHECK(milter_conf_parse("inet:host.example:25", &mc, &e) == -1,
	    "host names refused");
	CHECK(milter_conf_parse("inet:127.0.0.1:0", &mc, &e) == -1,
	    "port 0 refused");
	CHECK(milter_conf_parse("inet:127.0.0.1:25 timeout=0", &mc,
	    &e) == -1, "zero timeout refused");
	CHECK(milter_conf_parse("inet:127.0.0.1:25 default=maybe", &mc,
	    &e) == -1, "bad default refused");
	CHECK(milter_conf_parse("tcp:1.2.3.4:25", &mc, &e) == -1,
	    "unknown kind refused");
}

static void
test_spf_codec(void)
{
	struct spf_req	 q, q2;
	struct spf_res	 r, r2;
	char		 msg[SPF_MSG_MAX];
	size_t		 len;

	memset(&q, 0, sizeof(q));
	q.id = 7;
	(void)strlcpy(q.ip, "192.0.2.1", sizeof(q.ip));
	(void)strlcpy(q.helo, "h.example", sizeof(q.helo));
	(void)strlcpy(q.receiver, "mx.alpha.test", sizeof(q.receiver));
	CHECK(spf_req_encode(&q, msg, sizeof(msg), &len) == 0 &&
	    spf_req_decode(msg, len, &q2) == 0 && q2.id == 7 &&
	    strcmp(q2.helo, "h.example") == 0 && q2.sender[0] == '\0',
	    "spf request round trip");
	CHECK(spf_req_decode(msg, len - 1, &q2) == -1, "truncated request");
	memset(&r, 0, sizeof(r));
	r.id = 9;
	r.result = SPF_R_FAIL;
	(void)strlcpy(r.received, "fail (x)", sizeof(r.received));
	CHECK(spf_res_encode(&r, msg, sizeof(msg), &len) == 0 &&
	    spf_res_decode(msg, len, &r2) == 0 && r2.result == SPF_R_FAIL &&
	    strcmp(r2.received, "fail (x)") == 0, "spf reply round trip");
	msg[7] = 99;
	CHECK(spf_res_decode(msg, len, &r2) == -1, "bad result refused");
}

/* Append uint32 stage and len bytes of names to raw at *off. */
static void
sym_put(char *raw, size_t *off, uint32_t stage, const char *names,
    size_t len)
{
	uint32_t	 n = htonl(stage);

	memcpy(raw + *off, &n, 4);
	memcpy(raw + *off + 4, names, len);
	*off += 4 + len;
}

static void
test_symlist(void)
{
	static struct milter_symlist sl;
	static char	 raw[4 * MILTER_SYMLIST_MAX];
	char		 big[MILTER_SYMLIST_MAX + 1];
	const char	*error;
	size_t		 off = 0;

	sym_put(raw, &off, 0, "{if_addr} {client_addr}", 24);
	sym_put(raw, &off, 2, "{mail_addr},j", 14);
	sym_put(raw, &off, 6, "", 1);
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == 0 &&
	    sl.set == 0x45, "three stages");
	CHECK(milter_symlist_has(&sl, 0, "{client_addr}") &&
	    milter_symlist_has(&sl, 0, "if_addr") &&
	    !milter_symlist_has(&sl, 0, "j") &&
	    !milter_symlist_has(&sl, 0, "{client_add"), "connect names");
	CHECK(milter_symlist_has(&sl, 2, "{j}") &&
	    milter_symlist_has(&sl, 2, "mail_addr") &&
	    !milter_symlist_has(&sl, 1, "j") &&
	    !milter_symlist_has(&sl, 6, "i") &&
	    !milter_symlist_has(&sl, 7, "j") &&
	    !milter_symlist_has(&sl, -1, "j"), "other stages");
	CHECK(milter_symlist_parse(raw, 0, &sl, &error) == 0 &&
	    sl.set == 0, "no lists");

	off = 0;
	sym_put(raw, &off, 7, "j", 2);
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == -1 &&
	    strstr(error, "stage") != NULL, "unknown stage refused");
	off = 0;
	sym_put(raw, &off, 0xffffffffU, "j", 2);
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == -1,
	    "huge stage refused");
	off = 0;
	sym_put(raw, &off, 1, "j", 2);
	sym_put(raw, &off, 1, "i", 2);
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == -1,
	    "repeated stage refused");
	off = 0;
	sym_put(raw, &off, 3, "{rcpt_addr}", 11);
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == -1 &&
	    strstr(error, "NUL") != NULL, "missing NUL refused");
	off = 0;
	sym_put(raw, &off, 3, "j", 2);
	CHECK(milter_symlist_parse(raw, off + 3, &sl, &error) == -1,
	    "truncated stage refused");
	CHECK(milter_symlist_parse(raw, 2, &sl, &error) == -1,
	    "short stage refused");
	memset(big, 'x', sizeof(big));
	big[MILTER_SYMLIST_MAX] = '\0';
	off = 0;
	sym_put(raw, &off, 4, big, sizeof(big));
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == -1 &&
	    strstr(error, "long") != NULL, "overlong list refused");
	big[MILTER_SYMLIST_MAX - 1] = '\0';
	off = 0;
	sym_put(raw, &off, 4, big, MILTER_SYMLIST_MAX);
	CHECK(milter_symlist_parse(raw, off, &sl, &error) == 0 &&
	    strlen(sl.names[4]) == MILTER_SYMLIST_MAX - 1, "longest list");
}

int
main(void)
{
	test_packets();
	test_conf();
	test_spf_codec();
	test_symlist();
	return test_done();
}
