/*
 * test_address.c — SMTP path, address and ESMTP parameter parsing:
 * valid paths with their expected parts, invalid ones (overlong parts,
 * control characters and header injection attempts, bad UTF-8, bad
 * literals), quoting round trips and parameters.
 */

#include <stdio.h>
#include <string.h>

#include "address.h"
#include "test.h"

struct path_case {
	const char	*in;
	int		 flags;
	const char	*local;		/* NULL: must fail */
	const char	*domain;
	const char	*rest;
};

#define U	ADDR_UTF8
#define N	ADDR_NULL_OK
#define P	ADDR_NO_DOMAIN

static const struct path_case path_cases[] = {
	{ "<bob@alpha.test>", 0, "bob", "alpha.test", "" },
	{ "<Bob@ALPHA.Test> SIZE=10", 0, "Bob", "alpha.test", " SIZE=10" },
	{ "<a.b.c@x>", 0, "a.b.c", "x", "" },
	{ "<!#$%&'*+-/=?^_`{|}~@x.y>", 0, "!#$%&'*+-/=?^_`{|}~", "x.y", "" },
	{ "<>", N, "", "", "" },
	{ "<> BODY=8BITMIME", N, "", "", " BODY=8BITMIME" },
	{ "<>", 0, NULL, NULL, NULL },
	{ "<postmaster>", P, "postmaster", "", "" },
	{ "<PostMaster>", P, "PostMaster", "", "" },
	{ "<postmaster>", 0, NULL, NULL, NULL },
	{ "<bob>", P, NULL, NULL, NULL },
	{ "<@a.test,@b.test:bob@c.test>", 0, "bob", "c.test", "" },
	{ "<@a.test:bob@c.test>", 0, "bob", "c.test", "" },
	{ "<@a.test,b.test:bob@c.test>", 0, NULL, NULL, NULL },
	{ "<@:bob@c.test>", 0, NULL, NULL, NULL },
	{ "<@a.test bob@c.test>", 0, NULL, NULL, NULL },
	{ "<\"bob smith\"@x.test>", 0, "bob smith", "x.test", "" },
	{ "<\"bob\"@x.test>", 0, "bob", "x.test", "" },
	{ "<\"a\\\"b\\\\c\"@x.test>", 0, "a\"b\\c", "x.test", "" },
	{ "<\"a@b\"@x.test>", 0, "a@b", "x.test", "" },
	{ "<\"\"@x.test>", 0, NULL, NULL, NULL },
	{ "<\"abc@x.test>", 0, NULL, NULL, NULL },
	{ "<bob@[192.0.2.1]>", 0, "bob", "[192.0.2.1]", "" },
	{ "<bob@[IPv6:2001:DB8::1]>", 0, "bob", "[IPv6:2001:db8::1]", "" },
	{ "<bob@[ipv6:::1]>", 0, "bob", "[IPv6:::1]", "" },
	{ "<bob@[192.0.2.256]>", 0, NULL, NULL, NULL },
	{ "<bob@[192.0.2]>", 0, NULL, NULL, NULL },
	{ "<bob@[IPv6:2001:db8::g]>", 0, NULL, NULL, NULL },
	{ "<bob@[2001:db8::1]>", 0, NULL, NULL, NULL },
	{ "<bob@[x-tag:foo]>", 0, NULL, NULL, NULL },
	{ "<bob@[192.0.2.1>", 0, NULL, NULL, NULL },
	{ "<bob@[]>", 0, NULL, NULL, NULL },
	/* dot-string rules */
	{ "<.bob@x>", 0, NULL, NULL, NULL },
	{ "<bob.@x>", 0, NULL, NULL, NULL },
	{ "<b..ob@x>", 0, NULL, NULL, NULL },
	{ "<bo b@x>", 0, NULL, NULL, NULL },
	{ "<bo(b@x>", 0, NULL, NULL, NULL },
	{ "<bob@@x>", 0, NULL, NULL, NULL },
	{ "<@x>", 0, NULL, NULL, NULL },
	/* domains */
	{ "<bob@>", 0, NULL, NULL, NULL },
	{ "<bob@x.>", 0, NULL, NULL, NULL },
	{ "<bob@.x>", 0, NULL, NULL, NULL },
	{ "<bob@x..y>", 0, NULL, NULL, NULL },
	{ "<bob@-x.y>", 0, NULL, NULL, NULL },
	{ "<bob@x-.y>", 0, NULL, NULL, NULL },
	{ "<bob@x_y.z>", 0, NULL, NULL, NULL },
	{ "<bob@a-b.c0>", 0, "bob", "a-b.c0", "" },
	/* structure */
	{ "bob@x", 0, NULL, NULL, NULL },
	{ " <bob@x>", 0, NULL, NULL, NULL },
	{ "<bob@x", 0, NULL, NULL, NULL },
	{ "<bob@x >", 0, NULL, NULL, NULL },
	{ "<bob>", 0, NULL, NULL, NULL },
	{ "<", 0, NULL, NULL, NULL },
	{ "", 0, NULL, NULL, NULL },
	/* control characters and header injection */
	{ "<bob@x\r\nBcc: eve@evil>", 0, NULL, NULL, NULL },
	{ "<bob\r\n@x>", 0, NULL, NULL, NULL },
	{ "<bob\n@x>", 0, NULL, NULL, NULL },
	{ "<bob@x\n>", 0, NULL, NULL, NULL },
	{ "<bo\tb@x>", 0, NULL, NULL, NULL },
	{ "<bob@x\ty>", 0, NULL, NULL, NULL },
	{ "<bo\x7f" "b@x>", 0, NULL, NULL, NULL },
	{ "<\"bo\rb\"@x>", 0, NULL, NULL, NULL },
	{ "<\"bo\nb\"@x>", 0, NULL, NULL, NULL },
	{ "<\"bo\tb\"@x>", 0, NULL, NULL, NULL },
	{ "<\"bo\\\rb\"@x>", 0, NULL, NULL, NULL },
	{ "<\"bo\\\nb\"@x>", 0, NULL, NULL, NULL },
	{ "<\"bo\x01" "b\"@x>", 0, NULL, NULL, NULL },
	{ "<bob@[192.0.2.1\n]>", 0, NULL, NULL, NULL },
	{ "<@a\r\n:bob@x>", 0, NULL, NULL, NULL },
	/* UTF-8 (RFC 6531) */
	{ "<j\xc3\xb8rn@x.test>", U, "j\xc3\xb8rn", "x.test", "" },
	{ "<j\xc3\xb8rn@x.test>", 0, NULL, NULL, NULL },
	{ "<bob@b\xc3\xbc" "cher.test>", U, "bob", "b\xc3\xbc" "cher.test",
	    "" },
	{ "<bob@B\xc3\xbc" "CHER.test>", U, "bob", "b\xc3\xbc" "cher.test",
	    "" },
	{ "<bob@b\xc3\xbc" "cher.test>", 0, NULL, NULL, NULL },
	{ "<\"j\xc3\xb8 rn\"@x>", U, "j\xc3\xb8 rn", "x", "" },
	{ "<\"j\xc3\xb8rn\"@x>", 0, NULL, NULL, NULL },
	{ "<\xe2\x82\xac@x>", U, "\xe2\x82\xac", "x", "" },
	{ "<\xf0\x9f\x98\x80@x>", U, "\xf0\x9f\x98\x80", "x", "" },
	{ "<\xc0\xaf@x>", U, NULL, NULL, NULL },	/* overlong '/' */
	{ "<\xc1\xbf@x>", U, NULL, NULL, NULL },	/* overlong */
	{ "<\xe0\x80\xaf@x>", U, NULL, NULL, NULL },	/* overlong */
	{ "<\xf0\x80\x80\xaf@x>", U, NULL, NULL, NULL },	/* overlong */
	{ "<\xed\xa0\x80@x>", U, NULL, NULL, NULL },	/* surrogate */
	{ "<\xf4\x90\x80\x80@x>", U, NULL, NULL, NULL },	/* > U+10FFFF */
	{ "<\xc2\x85@x>", U, NULL, NULL, NULL },	/* C1 NEL */
	{ "<\xc3@x>", U, NULL, NULL, NULL },		/* truncated */
	{ "<\xe2\x82@x>", U, NULL, NULL, NULL },	/* truncated */
	{ "<\x80@x>", U, NULL, NULL, NULL },		/* continuation */
	{ "<\xff@x>", U, NULL, NULL, NULL },
	{ "<bob@x\xc3>", U, NULL, NULL, NULL },
	{ "<bob@[192.0.2.\xc3\xa9]>", U, NULL, NULL, NULL },
};

static void
test_paths(void)
{
	const struct path_case	*c;
	struct mailaddr		 a;
	const char		*rest, *err;
	char			 what[200];
	size_t			 i;
	int			 r;

	for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		c = &path_cases[i];
		rest = NULL;
		err = NULL;
		r = addr_parse_path(c->in, c->flags, &a, &rest, &err);
		if (c->local == NULL) {
			(void)snprintf(what, sizeof(what),
			    "path case %zu rejected", i);
			CHECK(r == -1 && err != NULL && a.local[0] == '\0' &&
			    a.domain[0] == '\0', what);
			continue;
		}
		(void)snprintf(what, sizeof(what), "path case %zu parsed (%s)",
		    i, r == 0 ? "ok" : err);
		CHECK(r == 0, what);
		if (r != 0)
			continue;
		(void)snprintf(what, sizeof(what), "path case %zu parts", i);
		CHECK(strcmp(a.local, c->local) == 0 &&
		    strcmp(a.domain, c->domain) == 0 &&
		    strcmp(rest, c->rest) == 0, what);
	}
}

static void
test_limits(void)
{
	struct mailaddr	 a;
	const char	*rest, *err;
	char		 in[600], label[70], dom[300];
	int		 r;

	/* Local part: 64 octets fine, 65 not (RFC 5321 §4.5.3.1.1). */
	memset(in, 0, sizeof(in));
	in[0] = '<';
	memset(in + 1, 'a', 64);
	memcpy(in + 65, "@x>", 4);
	r = addr_parse_path(in, 0, &a, &rest, &err);
	CHECK(r == 0 && strlen(a.local) == 64, "64-octet local part");
	in[0] = '<';
	memset(in + 1, 'a', 65);
	memcpy(in + 66, "@x>", 4);
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == -1,
	    "65-octet local part rejected");
	/* Quoted: 64 octets including quotes. */
	in[0] = '<';
	in[1] = '"';
	memset(in + 2, 'a', 62);
	memcpy(in + 64, "\"@x>", 5);
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == 0 &&
	    strlen(a.local) == 62, "64-octet quoted local part");
	in[0] = '<';
	in[1] = '"';
	memset(in + 2, 'a', 63);
	memcpy(in + 65, "\"@x>", 5);
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == -1,
	    "65-octet quoted local part rejected");
	/* Labels: 63 fine, 64 not. */
	memset(label, 'l', 63);
	label[63] = '\0';
	(void)snprintf(in, sizeof(in), "<b@%s.test>", label);
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == 0, "63-octet label");
	memset(label, 'l', 64);
	label[64] = '\0';
	(void)snprintf(in, sizeof(in), "<b@%s.test>", label);
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == -1,
	    "64-octet label rejected");
	/* Domain: 255 fine alone, 256 not. */
	memset(dom, 0, sizeof(dom));
	memset(label, 'd', 63);
	label[63] = '\0';
	(void)snprintf(dom, sizeof(dom), "%s.%s.%s.%s", label, label, label,
	    label);				/* 255 */
	CHECK(strlen(dom) == 255 && addr_domain_valid(dom, 0),
	    "255-octet domain valid");
	dom[254] = '.';
	dom[255] = 'e';
	dom[256] = '\0';
	CHECK(!addr_domain_valid(dom, 0), "256-octet domain invalid");
	/* Path: 256 octets with brackets at most (§4.5.3.1.3). */
	memset(label, 'd', 61);
	label[61] = '\0';
	(void)snprintf(dom, sizeof(dom), "%s.%s.%s", label, label, label);
	memset(in, 0, sizeof(in));
	in[0] = '<';
	memset(in + 1, 'a', 64);
	in[65] = '@';
	memcpy(in + 66, dom, strlen(dom));		/* 185 */
	memcpy(in + 66 + strlen(dom), ">", 2);
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == 0,
	    "252-octet path");
	in[0] = '<';
	memset(label, 'd', 63);
	label[63] = '\0';
	(void)snprintf(dom, sizeof(dom), "%s.%s.%s", label, label, label);
	memset(in + 66, 0, sizeof(in) - 66);
	memcpy(in + 66, dom, strlen(dom));		/* 191 */
	memcpy(in + 66 + strlen(dom), ">", 2);
	r = addr_parse_path(in, 0, &a, &rest, &err);
	CHECK(r == -1 && err != NULL && strcmp(err, "path too long") == 0,
	    "258-octet path rejected");
	/* Very long garbage: bounded, rejected. */
	memset(in, 'a', sizeof(in) - 1);
	in[0] = '<';
	in[sizeof(in) - 1] = '\0';
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == -1,
	    "long garbage rejected");
}

static void
test_embedded_nul(void)
{
	struct mailaddr	 a;
	const char	*rest, *err;
	const char	 in[] = "<bob@x\0>";

	/* A NUL ends the C string: the path is unterminated. */
	CHECK(addr_parse_path(in, 0, &a, &rest, &err) == -1,
	    "NUL inside path rejected");
	CHECK(addr_parse_path("<bo\0b@x>", 0, &a, &rest, &err) == -1,
	    "NUL inside local part rejected");
	CHECK(addr_parse_path("<\"b\0\"@x>", 0, &a, &rest, &err) == -1,
	    "NUL inside quoted local part rejected");
}

struct plain_case {
	const char	*in;
	int		 flags;
	const char	*local;
	const char	*domain;
};

static const struct plain_case plain_cases[] = {
	{ "bob@alpha.test", 0, "bob", "alpha.test" },
	{ "Bob.Smith@ALPHA.test", 0, "Bob.Smith", "alpha.test" },
	{ "\"a b\"@x", 0, "a b", "x" },
	{ "", N, "", "" },
	{ "", 0, NULL, NULL },
	{ "postmaster", P, "postmaster", "" },
	{ "bob", 0, NULL, NULL },
	{ "<bob@x>", 0, NULL, NULL },
	{ "bob@x>", 0, NULL, NULL },
	{ "bob@x y", 0, NULL, NULL },
	{ "bob@x\n", 0, NULL, NULL },
	{ "bob@x\r\nTo: eve@y", 0, NULL, NULL },
	{ "bob@x,eve@y", 0, NULL, NULL },
	{ "bob@[192.0.2.1]", 0, "bob", "[192.0.2.1]" },
};

static void
test_plain(void)
{
	const struct plain_case	*c;
	struct mailaddr		 a;
	const char		*err;
	char			 what[100];
	size_t			 i;
	int			 r;

	for (i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		c = &plain_cases[i];
		r = addr_parse(c->in, c->flags, &a, &err);
		(void)snprintf(what, sizeof(what), "plain case %zu", i);
		if (c->local == NULL)
			CHECK(r == -1, what);
		else
			CHECK(r == 0 && strcmp(a.local, c->local) == 0 &&
			    strcmp(a.domain, c->domain) == 0, what);
	}
}

static void
test_format(void)
{
	static const struct {
		const char	*local, *domain, *out;
	} cases[] = {
		{ "bob", "x.test", "bob@x.test" },
		{ "", "", "" },
		{ "postmaster", "", "postmaster" },
		{ "a b", "x", "\"a b\"@x" },
		{ "a\"b\\c", "x", "\"a\\\"b\\\\c\"@x" },
		{ ".bob", "x", "\".bob\"@x" },
		{ "bob.", "x", "\"bob.\"@x" },
		{ "a..b", "x", "\"a..b\"@x" },
		{ "a@b", "x", "\"a@b\"@x" },
		{ "j\xc3\xb8rn", "x", "j\xc3\xb8rn@x" },
	};
	struct mailaddr	 a, b;
	const char	*err, *rest;
	char		 out[ADDR_PATH_MAX + 8], path[ADDR_PATH_MAX + 16];
	char		 what[100];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&a, 0, sizeof(a));
		(void)snprintf(a.local, sizeof(a.local), "%s", cases[i].local);
		(void)snprintf(a.domain, sizeof(a.domain), "%s",
		    cases[i].domain);
		(void)snprintf(what, sizeof(what), "format case %zu", i);
		CHECK(addr_format(&a, out, sizeof(out)) == 0 &&
		    strcmp(out, cases[i].out) == 0, what);
		if (cases[i].domain[0] == '\0')
			continue;
		/* Round trip: format, then parse back to the same parts. */
		(void)snprintf(path, sizeof(path), "<%s>", out);
		(void)snprintf(what, sizeof(what), "format round trip %zu", i);
		CHECK(addr_parse_path(path, ADDR_UTF8, &b, &rest, &err) == 0 &&
		    strcmp(a.local, b.local) == 0 &&
		    strcmp(a.domain, b.domain) == 0, what);
	}
	memset(&a, 0, sizeof(a));
	(void)snprintf(a.local, sizeof(a.local), "bob");
	(void)snprintf(a.domain, sizeof(a.domain), "x.test");
	CHECK(addr_format(&a, out, 11) == 0, "format fits exactly");
	CHECK(addr_format(&a, out, 10) == -1, "format too small");
	CHECK(addr_format(&a, out, 3) == -1, "format far too small");
	(void)snprintf(a.local, sizeof(a.local), "a b");
	CHECK(addr_format(&a, out, 13) == 0 &&
	    strcmp(out, "\"a b\"@x.test") == 0, "quoted format fits");
	CHECK(addr_format(&a, out, 12) == -1, "quoted format too small");
	CHECK(addr_format(&a, out, 4) == -1, "quoted format far too small");
	memset(&a, 0, sizeof(a));
	CHECK(addr_is_null(&a), "null address");
}

static void
test_domains(void)
{
	CHECK(addr_domain_valid("alpha.test", 0), "domain valid");
	CHECK(addr_domain_valid("[192.0.2.1]", 0), "literal valid");
	CHECK(addr_domain_valid("[IPv6:2001:db8::1]", 0), "v6 literal valid");
	CHECK(!addr_domain_valid("", 0), "empty domain invalid");
	CHECK(!addr_domain_valid("a..b", 0), "double dot invalid");
	CHECK(!addr_domain_valid("a.b\n", 0), "LF in domain invalid");
	CHECK(!addr_domain_valid("b\xc3\xbc.test", 0), "UTF-8 needs flag");
	CHECK(addr_domain_valid("b\xc3\xbc.test", ADDR_UTF8), "UTF-8 domain");
	CHECK(addr_domain_equal("Alpha.TEST", "alpha.test"), "domain equal");
	CHECK(!addr_domain_equal("alpha.test", "alpha.tes"), "domain differs");
	CHECK(!addr_domain_equal("alpha.tes", "alpha.test"),
	    "domain differs 2");
}

struct param_case {
	const char	*in;
	int		 count;		/* -1: must fail */
	const char	*k0, *v0, *k1, *v1;
};

static const struct param_case param_cases[] = {
	{ "", 0, NULL, NULL, NULL, NULL },
	{ "   ", 0, NULL, NULL, NULL, NULL },
	{ "SIZE=123", 1, "SIZE", "123", NULL, NULL },
	{ "size=123 body=8BITMIME", 2, "SIZE", "123", "BODY", "8BITMIME" },
	{ "SMTPUTF8", 1, "SMTPUTF8", NULL, NULL, NULL },
	{ " SIZE=1  SMTPUTF8 ", 2, "SIZE", "1", "SMTPUTF8", NULL },
	{ "ORCPT=rfc822;bob+2Bx@y", 1, "ORCPT", "rfc822;bob+2Bx@y", NULL,
	    NULL },
	{ "X-FOO=a", 1, "X-FOO", "a", NULL, NULL },
	{ "SIZE=", -1, NULL, NULL, NULL, NULL },
	{ "=1", -1, NULL, NULL, NULL, NULL },
	{ "-X=1", -1, NULL, NULL, NULL, NULL },
	{ "SI_ZE=1", -1, NULL, NULL, NULL, NULL },
	{ "SIZE=1=2", -1, NULL, NULL, NULL, NULL },
	{ "SIZE=1\r\n", -1, NULL, NULL, NULL, NULL },
	{ "SIZE=1\tBODY=7BIT", -1, NULL, NULL, NULL, NULL },
	{ "BODY=8BIT\x7f", -1, NULL, NULL, NULL, NULL },
	{ "BODY=\xc3\xa9", -1, NULL, NULL, NULL, NULL },
	{ "SIZE=1 size=2", -1, NULL, NULL, NULL, NULL },
	{ "A B C D E", -1, NULL, NULL, NULL, NULL },	/* max 4 */
	{ "A B C D", 4, "A", NULL, "B", NULL },
};

static void
test_params(void)
{
	const struct param_case	*c;
	struct esmtp_param	 p[4];
	char			 buf[200], what[100];
	const char		*err;
	size_t			 i;
	int			 r, ok;

	for (i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
		c = &param_cases[i];
		(void)snprintf(buf, sizeof(buf), "%s", c->in);
		r = addr_parse_params(buf, p, 4, &err);
		(void)snprintf(what, sizeof(what), "params case %zu", i);
		if (c->count == -1) {
			CHECK(r == -1, what);
			continue;
		}
		ok = r == c->count;
		if (ok && r >= 1)
			ok = strcmp(p[0].keyword, c->k0) == 0 &&
			    (c->v0 == NULL ? p[0].value == NULL :
			    p[0].value != NULL &&
			    strcmp(p[0].value, c->v0) == 0);
		if (ok && r >= 2)
			ok = strcmp(p[1].keyword, c->k1) == 0 &&
			    (c->v1 == NULL ? p[1].value == NULL :
			    p[1].value != NULL &&
			    strcmp(p[1].value, c->v1) == 0);
		CHECK(ok, what);
	}
	/* The rest of a parsed path feeds the parameter parser. */
	{
		struct mailaddr	 a;
		const char	*rest;
		char		 line[] = "<bob@x> SIZE=100 BODY=8BITMIME";

		CHECK(addr_parse_path(line, 0, &a, &rest, &err) == 0 &&
		    addr_parse_params(line + (rest - line), p, 4, &err) == 2 &&
		    strcmp(p[1].value, "8BITMIME") == 0,
		    "path then params");
	}
}

int
main(void)
{
	test_paths();
	test_limits();
	test_embedded_nul();
	test_plain();
	test_format();
	test_domains();
	test_params();
	return test_done();
}
