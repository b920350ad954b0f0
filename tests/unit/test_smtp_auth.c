/*
 * test_smtp_auth.c — the AUTH service's request codec with hostile
 * input: every field bounded, exact framing, no stray bytes.
 */
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "smtpd.h"
#include "test.h"

static int
decode(const char *src, size_t len)
{
	struct smtp_auth_req	 r;

	return smtp_auth_req_decode(src, len, &r);
}

int
main(void)
{
	struct smtp_auth_req	 r, d;
	char			 buf[SMTP_AUTH_MSG_MAX + 64], big[700];
	size_t			 n;

	memset(&r, 0, sizeof(r));
	r.id = 4294967295U;
	(void)strlcpy(r.ip, "2001:db8::10", sizeof(r.ip));
	(void)strlcpy(r.user, "bob@alpha.test", sizeof(r.user));
	(void)strlcpy(r.pass, "p\xc3\xa4ss word", sizeof(r.pass));
	CHECK(smtp_auth_req_encode(&r, buf, sizeof(buf), &n) == 0, "encode");
	CHECK(smtp_auth_req_decode(buf, n, &d) == 0, "decode");
	CHECK(d.id == r.id && strcmp(d.ip, r.ip) == 0 &&
	    strcmp(d.user, r.user) == 0 && strcmp(d.pass, r.pass) == 0,
	    "round trip");
	CHECK(decode(buf, n - 1) == -1, "last NUL missing");
	CHECK(decode(buf, 0) == -1, "empty");

#define M(s)	decode(s, sizeof(s) - 1)
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4\0" "bob\0" "pw\0") == 0, "valid");
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4\0" "bob\0" "\0") == 0,
	    "empty password");
	CHECK(M("AUTH2\0" "1\0" "1.2.3.4\0" "bob\0" "pw\0") == -1, "magic");
	CHECK(M("AUTH1\0" "\0" "1.2.3.4\0" "bob\0" "pw\0") == -1, "no id");
	CHECK(M("AUTH1\0" "4294967296\0" "1.2.3.4\0" "bob\0" "pw\0") == -1,
	    "id over 32 bits");
	CHECK(M("AUTH1\0" "1x\0" "1.2.3.4\0" "bob\0" "pw\0") == -1,
	    "id not decimal");
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4 x\0" "bob\0" "pw\0") == -1,
	    "address with a blank");
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4\0" "\0" "pw\0") == -1, "no user");
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4\0" "b\nob\0" "pw\0") == -1,
	    "control in user");
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4\0" "bob\0" "pw\0" "x\0") == -1,
	    "a sixth field");
	CHECK(M("AUTH1\0" "1\0" "1.2.3.4\0" "bob\0") == -1, "four fields");
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	n = (size_t)snprintf(buf, sizeof(buf), "AUTH1%c1%c1.2.3.4%cbob%c%s",
	    0, 0, 0, 0, big);
	CHECK(decode(buf, n + 1) == -1, "password over the limit");
	CHECK(decode(buf, SMTP_AUTH_MSG_MAX + 1) == -1, "oversized datagram");
	memset(&r, 0, sizeof(r));
	r.id = 1;
	memset(r.user, 'u', SMTP_AUTH_USER_MAX);
	memset(r.pass, 'p', SMTP_AUTH_PASS_MAX);
	CHECK(smtp_auth_req_encode(&r, buf, 100, &n) == -1,
	    "encode refuses a small buffer");
	return test_done();
}
