/*
 * test_pop3_cmd.c — unit tests for the POP3 command parser, base64,
 * SASL PLAIN and the login → auth request format: table-driven, with
 * hostile input (NUL, control bytes, overlong numbers, bad padding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "pop3d.h"
#include "test.h"

#define S(x)	x, sizeof(x) - 1

struct cmd_case {
	const char	*in;
	size_t		 len;
	int		 ok;
	enum pop3_verb	 verb;
	int		 nargs;
	unsigned long	 n1, n2;
	const char	*arg;		/* expected text argument */
};

static const struct cmd_case cases[] = {
	{ S("STAT"), 1, POP3_STAT, 0, 0, 0, NULL },
	{ S("stat"), 1, POP3_STAT, 0, 0, 0, NULL },
	{ S("StAt"), 1, POP3_STAT, 0, 0, 0, NULL },
	{ S("LIST"), 1, POP3_LIST, 0, 0, 0, NULL },
	{ S("LIST 3"), 1, POP3_LIST, 1, 3, 0, NULL },
	{ S("LIST  3"), 1, POP3_LIST, 1, 3, 0, NULL },
	{ S("LIST 3 "), 1, POP3_LIST, 1, 3, 0, NULL },
	{ S("LIST 0"), 0, 0, 0, 0, 0, NULL },
	{ S("LIST -1"), 0, 0, 0, 0, 0, NULL },
	{ S("LIST +1"), 0, 0, 0, 0, 0, NULL },
	{ S("LIST 1x"), 0, 0, 0, 0, 0, NULL },
	{ S("LIST 99999999999999999999999"), 0, 0, 0, 0, 0, NULL },
	{ S("LIST 1000001"), 0, 0, 0, 0, 0, NULL },
	{ S("LIST 1 2"), 0, 0, 0, 0, 0, NULL },
	{ S("RETR"), 0, 0, 0, 0, 0, NULL },
	{ S("RETR 1"), 1, POP3_RETR, 1, 1, 0, NULL },
	{ S("DELE 12"), 1, POP3_DELE, 1, 12, 0, NULL },
	{ S("TOP 1 0"), 1, POP3_TOP, 2, 1, 0, NULL },
	{ S("TOP 2 10"), 1, POP3_TOP, 2, 2, 10, NULL },
	{ S("TOP 1"), 0, 0, 0, 0, 0, NULL },
	{ S("TOP 1 2 3"), 0, 0, 0, 0, 0, NULL },
	{ S("UIDL"), 1, POP3_UIDL, 0, 0, 0, NULL },
	{ S("UIDL 7"), 1, POP3_UIDL, 1, 7, 0, NULL },
	{ S("NOOP"), 1, POP3_NOOP, 0, 0, 0, NULL },
	{ S("NOOP x"), 0, 0, 0, 0, 0, NULL },
	{ S("RSET"), 1, POP3_RSET, 0, 0, 0, NULL },
	{ S("QUIT"), 1, POP3_QUIT, 0, 0, 0, NULL },
	{ S("CAPA"), 1, POP3_CAPA, 0, 0, 0, NULL },
	{ S("STLS"), 1, POP3_STLS, 0, 0, 0, NULL },
	{ S("USER bob"), 1, POP3_USER, 0, 0, 0, "bob" },
	{ S("user bob@alpha.test"), 1, POP3_USER, 0, 0, 0, "bob@alpha.test" },
	{ S("USER"), 0, 0, 0, 0, 0, NULL },
	{ S("USER "), 0, 0, 0, 0, 0, NULL },
	{ S("PASS secret with spaces"), 1, POP3_PASS, 0, 0, 0,
	    "secret with spaces" },
	{ S("AUTH"), 1, POP3_AUTH, 0, 0, 0, "" },
	{ S("AUTH PLAIN"), 1, POP3_AUTH, 0, 0, 0, "PLAIN" },
	{ S("AUTH PLAIN AGJvYgBwdw=="), 1, POP3_AUTH, 0, 0, 0,
	    "PLAIN AGJvYgBwdw==" },
	{ S(""), 0, 0, 0, 0, 0, NULL },
	{ S("ST"), 0, 0, 0, 0, 0, NULL },
	{ S("STATS"), 0, 0, 0, 0, 0, NULL },
	{ S("XYZZ"), 0, 0, 0, 0, 0, NULL },
	{ S(" STAT"), 0, 0, 0, 0, 0, NULL },
	{ S("STAT\0"), 0, 0, 0, 0, 0, NULL },
	{ S("US\0R bob"), 0, 0, 0, 0, 0, NULL },
	{ S("USER b\0b"), 0, 0, 0, 0, 0, NULL },
	{ S("PASS a\rb"), 0, 0, 0, 0, 0, NULL },
	{ S("RETR\t1"), 0, 0, 0, 0, 0, NULL },
	{ S("RETR 1\x7f"), 0, 0, 0, 0, 0, NULL },
	{ S("\xff\xfe\xfd"), 0, 0, 0, 0, 0, NULL },
	{ S("GET / HTTP/1.0"), 0, 0, 0, 0, 0, NULL },
};

static void
test_cmds(void)
{
	struct pop3_cmd	 c;
	const char	*err;
	char		 what[160];
	size_t		 i;
	int		 r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct cmd_case *t = &cases[i];

		err = NULL;
		r = pop3_cmd_parse(t->in, t->len, &c, &err);
		(void)snprintf(what, sizeof(what), "parse case %zu %s", i,
		    t->ok ? "accepted" : "refused");
		if (!t->ok) {
			CHECK(r == -1 && err != NULL, what);
			continue;
		}
		CHECK(r == 0 && c.verb == t->verb && c.nargs == t->nargs &&
		    c.n1 == t->n1 && c.n2 == t->n2, what);
		if (t->arg != NULL)
			CHECK(c.arglen == strlen(t->arg) &&
			    memcmp(c.arg, t->arg, c.arglen) == 0, what);
	}
}

static void
test_base64(void)
{
	unsigned char	 out[64];

	CHECK(pop3_base64_decode(S("Zm9vYmFy"), out, sizeof(out)) == 6 &&
	    memcmp(out, "foobar", 6) == 0, "base64 no padding");
	CHECK(pop3_base64_decode(S("Zm9vYg=="), out, sizeof(out)) == 4 &&
	    memcmp(out, "foob", 4) == 0, "base64 two pads");
	CHECK(pop3_base64_decode(S("Zm9vYmE="), out, sizeof(out)) == 5,
	    "base64 one pad");
	CHECK(pop3_base64_decode(S(""), out, sizeof(out)) == 0,
	    "base64 empty");
	CHECK(pop3_base64_decode(S("Zm9"), out, sizeof(out)) == -1,
	    "base64 bad length");
	CHECK(pop3_base64_decode(S("Zm=v"), out, sizeof(out)) == -1,
	    "base64 pad in the middle");
	CHECK(pop3_base64_decode(S("Z==="), out, sizeof(out)) == -1,
	    "base64 three pads");
	CHECK(pop3_base64_decode(S("Zm9v!mFy"), out, sizeof(out)) == -1,
	    "base64 bad character");
	CHECK(pop3_base64_decode(S("Zm9vYmFy"), out, 5) == -1,
	    "base64 output too small");
}

static void
test_plain(void)
{
	char	 user[POP3_USER_MAX + 1], pass[POP3_PASS_MAX + 1];

	/* "\0bob\0pw" */
	CHECK(pop3_sasl_plain(S("AGJvYgBwdw=="), user, sizeof(user), pass,
	    sizeof(pass)) == 0 && strcmp(user, "bob") == 0 &&
	    strcmp(pass, "pw") == 0, "PLAIN without authzid");
	/* "bob\0bob\0pw" */
	CHECK(pop3_sasl_plain(S("Ym9iAGJvYgBwdw=="), user, sizeof(user), pass,
	    sizeof(pass)) == 0 && strcmp(user, "bob") == 0,
	    "PLAIN with authzid = authcid");
	/* "eve\0bob\0pw" */
	CHECK(pop3_sasl_plain(S("ZXZlAGJvYgBwdw=="), user, sizeof(user), pass,
	    sizeof(pass)) == -1, "PLAIN proxy authzid refused");
	/* "\0bob" (one NUL only) */
	CHECK(pop3_sasl_plain(S("AGJvYg=="), user, sizeof(user), pass,
	    sizeof(pass)) == -1, "PLAIN missing password field");
	/* "\0\0pw" */
	CHECK(pop3_sasl_plain(S("AABwdw=="), user, sizeof(user), pass,
	    sizeof(pass)) == -1, "PLAIN empty authcid");
	/* "\0bob\0p\0w" */
	CHECK(pop3_sasl_plain(S("AGJvYgBwAHc="), user, sizeof(user), pass,
	    sizeof(pass)) == -1, "PLAIN NUL in password");
	CHECK(pop3_sasl_plain(S("="), user, sizeof(user), pass,
	    sizeof(pass)) == -1, "PLAIN empty response");
	CHECK(pop3_sasl_plain(S("AGJvYgBwdw=="), user, 3, pass,
	    sizeof(pass)) == -1, "PLAIN user too long for buffer");
}

static void
test_ipc(void)
{
	struct pop3_auth_req	*a, *b;
	unsigned char		*msg;
	ssize_t			 n;

	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	msg = malloc(POP3_IPC_MAX);
	if (a == NULL || b == NULL || msg == NULL)
		abort();
	(void)strlcpy(a->user, "bob@alpha.test", sizeof(a->user));
	(void)strlcpy(a->pass, "p w", sizeof(a->pass));
	memcpy(a->left, "STAT\r\n", 6);
	a->leftlen = 6;
	n = pop3_ipc_encode(a, msg, POP3_IPC_MAX);
	CHECK(n == 12 + 14 + 3 + 6, "ipc encode length");
	CHECK(pop3_ipc_decode(msg, (size_t)n, b) == 0 &&
	    strcmp(b->user, a->user) == 0 && strcmp(b->pass, a->pass) == 0 &&
	    b->leftlen == 6 && memcmp(b->left, "STAT\r\n", 6) == 0,
	    "ipc round trip");
	CHECK(pop3_ipc_decode(msg, (size_t)n - 1, b) == -1,
	    "ipc short message refused");
	CHECK(pop3_ipc_decode(msg, 11, b) == -1, "ipc header cut refused");
	msg[12] = '\0';
	CHECK(pop3_ipc_decode(msg, (size_t)n, b) == -1,
	    "ipc NUL in user refused");
	msg[12] = 'b';
	msg[0] = 0xff;
	msg[1] = 0xff;
	msg[2] = 0xff;
	msg[3] = 0xff;
	CHECK(pop3_ipc_decode(msg, (size_t)n, b) == -1,
	    "ipc huge length refused");
	memset(msg, 0, 12);
	CHECK(pop3_ipc_decode(msg, 12, b) == -1, "ipc empty user refused");
	a->leftlen = POP3_IN_MAX + 1;
	CHECK(pop3_ipc_encode(a, msg, POP3_IPC_MAX) == -1,
	    "ipc encode refuses overlong leftover");
	free(a);
	free(b);
	free(msg);
}

int
main(void)
{
	test_cmds();
	test_base64();
	test_plain();
	test_ipc();
	return test_done();
}
