/*
 * test_passwd.c — etc/passwd, etc/shadow and etc/group parsing.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diag.h"
#include "group.h"
#include "passwd.h"
#include "shadow.h"
#include "test.h"

#define MSGS_MAX	8

struct msgs {
	char	msg[MSGS_MAX][512];
	int	n;
};

static void
collect(void *ctx, const char *msg)
{
	struct msgs	*m = ctx;

	if (m->n < MSGS_MAX)
		snprintf(m->msg[m->n], sizeof(m->msg[0]), "%s", msg);
	m->n++;
}

/* Expect exactly one message that starts with want. */
static int
one_msg(const struct msgs *m, const char *want)
{
	if (m->n == 1 && strncmp(m->msg[0], want, strlen(want)) == 0)
		return 1;
	printf("# got %d message(s): %s\n", m->n, m->n ? m->msg[0] : "");
	return 0;
}

static const struct {
	const char	*line;
	const char	*error;
} passwd_bad[] = {
	{ "bob:x:1000:1000::/home/bob\n", "p:1: expected 7 fields, found 6" },
	{ "bob:x:1000:1000::/home/bob:/bin/sh:x\n",
	    "p:1: expected 7 fields, found 8" },
	{ ":x:1000:1000::/home/bob:/bin/sh\n", "p:1: empty user name" },
	{ "../x:x:1000:1000::/:/bin/sh\n", "p:1: invalid user name \"../x\"" },
	{ "a/b:x:1000:1000::/:/bin/sh\n", "p:1: invalid user name \"a/b\"" },
	{ "-bob:x:1000:1000::/:/bin/sh\n", "p:1: invalid user name" },
	{ "bob:x:-1:1000::/:/bin/sh\n", "p:1: uid \"-1\": invalid" },
	{ "bob:x: 1:1000::/:/bin/sh\n", "p:1: uid \" 1\": invalid" },
	{ "bob:x:0x10:1000::/:/bin/sh\n", "p:1: uid \"0x10\": invalid" },
	{ "bob:x::1000::/:/bin/sh\n", "p:1: uid \"\": empty" },
	{ "bob:x:4294967295:1000::/:/bin/sh\n",
	    "p:1: uid \"4294967295\": too large" },
	{ "bob:x:99999999999999999999999:1::/:/bin/sh\n",
	    "p:1: uid \"99999999999999999999999\": too large" },
	{ "bob:x:1000:1e3::/:/bin/sh\n", "p:1: gid \"1e3\": invalid" },
	{ "# c\nbob:x:1000:1000:\x1b[31m:/:/bin/sh\n",
	    "p:2: control character 0x1b" },
	{ "bob:x:1000:1000::/:/bin/sh\r\r\n", "p:1: control character 0x0d" },
	{ "bob:x:1000:1000::/:/bin/\rsh\n", "p:1: control character 0x0d" },
	{ "bob:x:1000:1000:\x7f:/:/bin/sh\n", "p:1: control character 0x7f" },
};

static void
test_passwd_name(void)
{
	char	longname[PASSWD_NAME_MAX + 2];

	CHECK(passwd_name_valid("bob"), "name bob");
	CHECK(passwd_name_valid("Bob.Smith_2-x"), "name with . _ -");
	CHECK(!passwd_name_valid(""), "empty name refused");
	CHECK(!passwd_name_valid(NULL), "NULL name refused");
	CHECK(!passwd_name_valid("../x"), "../x refused");
	CHECK(!passwd_name_valid("a/b"), "a/b refused");
	CHECK(!passwd_name_valid(".."), ".. refused");
	CHECK(!passwd_name_valid("a..b"), "a..b refused");
	CHECK(!passwd_name_valid(".bob"), "leading dot refused");
	CHECK(!passwd_name_valid("-bob"), "leading dash refused");
	CHECK(!passwd_name_valid("bob:x"), "colon refused");
	CHECK(!passwd_name_valid("bob\n"), "newline refused");
	CHECK(!passwd_name_valid("b ob"), "space refused");
	CHECK(!passwd_name_valid("b\xc3\xa9"), "non-ASCII refused");
	memset(longname, 'a', sizeof(longname));
	longname[PASSWD_NAME_MAX] = '\0';
	CHECK(passwd_name_valid(longname), "name of PASSWD_NAME_MAX bytes");
	longname[PASSWD_NAME_MAX] = 'a';
	longname[PASSWD_NAME_MAX + 1] = '\0';
	CHECK(!passwd_name_valid(longname), "name over PASSWD_NAME_MAX");
}

static const char nul_text[] =
    "eve:x:1:1::/:/bin/sh\0x\n"
    "bob:x:2:2::/:/bin/sh\n";

static void
test_passwd(void)
{
	struct passwd_file		 f;
	const struct passwd_entry	*e;
	struct msgs			 m;
	struct diag			 d = { collect, &m, 0 };
	struct buf			 b;
	char				 what[128];
	size_t				 i;
	const char			*text;

	text = "# users\n"
	    "\n"
	    "root:x:0:0:root:/root:/bin/sh\n"
	    "bob:x:1000:100:Bob B,,,:/home/bob:/bin/sh\r\n"
	    "bob:y:1001:100::/other:/bin/sh\n"
	    "carol::4294967294:0:::";
	memset(&m, 0, sizeof(m));
	CHECK(passwd_parse(&f, "p", text, strlen(text), &d) == 0 &&
	    m.n == 0 && f.n == 4, "passwd: valid file");
	e = passwd_find(&f, "bob");
	CHECK(e != NULL && e->uid == 1000 && e->gid == 100 &&
	    strcmp(e->gecos, "Bob B,,,") == 0 &&
	    strcmp(e->dir, "/home/bob") == 0 &&
	    strcmp(e->shell, "/bin/sh") == 0 && strcmp(e->passwd, "x") == 0,
	    "passwd: fields of bob, CRLF stripped");
	CHECK(e != NULL && e == passwd_find_uid(&f, 1000),
	    "passwd: find by uid");
	CHECK(passwd_find_uid(&f, 1001) != NULL &&
	    strcmp(passwd_find_uid(&f, 1001)->dir, "/other") == 0,
	    "passwd: second bob kept, first returned by name");
	e = passwd_find(&f, "carol");
	CHECK(e != NULL && e->uid == 4294967294U && e->shell[0] == '\0',
	    "passwd: last line without newline, empty fields");
	CHECK(passwd_find(&f, "Bob") == NULL, "passwd: names case-sensitive");
	CHECK(passwd_find(&f, "nobody") == NULL, "passwd: unknown user");
	passwd_free(&f);

	for (i = 0; i < sizeof(passwd_bad) / sizeof(passwd_bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		snprintf(what, sizeof(what), "passwd bad %zu: %s", i,
		    passwd_bad[i].error);
		CHECK(passwd_parse(&f, "p", passwd_bad[i].line,
		    strlen(passwd_bad[i].line), &d) == 0 && f.n == 0 &&
		    one_msg(&m, passwd_bad[i].error), what);
		passwd_free(&f);
	}

	/* NUL inside a line; the next line still loads. */
	memset(&m, 0, sizeof(m));
	CHECK(passwd_parse(&f, "p", nul_text, sizeof(nul_text) - 1,
	    &d) == 0 && f.n == 1 &&
	    one_msg(&m, "p:1: NUL byte in line"), "passwd: NUL byte");
	passwd_free(&f);

	/* Overlong line, then a good one. */
	buf_init(&b, 0);
	buf_puts(&b, "eve:x:1:1:");
	for (i = 0; i < PASSWD_LINE_MAX; i++)
		buf_putc(&b, 'g');
	buf_puts(&b, ":/:/bin/sh\nbob:x:2:2::/:/bin/sh\n");
	memset(&m, 0, sizeof(m));
	CHECK(passwd_parse(&f, "p", b.data, b.len, &d) == 0 && f.n == 1 &&
	    one_msg(&m, "p:1: line too long (max 4096 bytes)"),
	    "passwd: overlong line");
	passwd_free(&f);
	buf_reset(&b);

	/* A big file. */
	for (i = 0; i < 30000; i++)
		buf_printf(&b, "user%zu:x:%zu:100::/home/user%zu:/bin/sh\n",
		    i, i + 1000, i);
	memset(&m, 0, sizeof(m));
	CHECK(passwd_parse(&f, "p", b.data, b.len, &d) == 0 &&
	    f.n == 30000 && m.n == 0, "passwd: 30000 lines");
	e = passwd_find(&f, "user29999");
	CHECK(e != NULL && e->uid == 30999, "passwd: last of 30000 found");
	passwd_free(&f);
	buf_free(&b);
}

static const struct {
	const char	*line;
	const char	*error;
} shadow_bad[] = {
	{ "bob:$6$s$h:19000:0:99999:7::\n", "s:1: expected 9 fields, found 8" },
	{ ":$6$s$h:19000:0:99999:7:::\n", "s:1: empty user name" },
	{ "a/b:*:1::::::\n", "s:1: invalid user name \"a/b\"" },
	{ "bob:*:x::::::\n", "s:1: lastchg \"x\": invalid" },
	{ "bob:*::-1:::::\n", "s:1: min \"-1\": invalid" },
	{ "bob:*:::99999999999::::\n", "s:1: max \"99999999999\": too large" },
	{ "bob:*:::: 7:::\n", "s:1: warn \" 7\": invalid" },
	{ "bob:*:::::1.5::\n", "s:1: inactive \"1.5\": invalid" },
	{ "bob:*::::::+1:\n", "s:1: expire \"+1\": invalid" },
	{ "bob:$6$\x01:::::::\n", "s:1: control character 0x01" },
};

static void
test_shadow(void)
{
	struct shadow_file		 f;
	const struct shadow_entry	*e;
	struct msgs			 m;
	struct diag			 d = { collect, &m, 0 };
	char				 what[128];
	size_t				 i;
	const char			*text;

	text = "root:*:19000:0:99999:7:::\n"
	    "bob:$6$salt$hash:19000:0:99999:7:30:20000:\n"
	    "# comment\n"
	    "eve:!$6$salt$hash::::::1:\n"
	    "nopw::::::::";
	memset(&m, 0, sizeof(m));
	CHECK(shadow_parse(&f, "s", text, strlen(text), &d) == 0 &&
	    m.n == 0 && f.n == 4, "shadow: valid file");
	e = shadow_find(&f, "bob");
	CHECK(e != NULL && strcmp(e->hash, "$6$salt$hash") == 0 &&
	    e->lastchg == 19000 && e->min == 0 && e->max == 99999 &&
	    e->warn == 7 && e->inactive == 30 && e->expire == 20000,
	    "shadow: fields of bob");
	CHECK(e != NULL && !shadow_hash_locked(e->hash),
	    "shadow: bob not locked");
	CHECK(e != NULL && !shadow_expired(e, 19500),
	    "shadow: bob not expired on day 19500");
	CHECK(e != NULL && shadow_expired(e, 20000),
	    "shadow: bob expired on the expire day");
	e = shadow_find(&f, "eve");
	CHECK(e != NULL && e->lastchg == -1 && e->expire == 1 &&
	    shadow_hash_locked(e->hash) && shadow_expired(e, 2),
	    "shadow: eve locked and expired");
	e = shadow_find(&f, "nopw");
	CHECK(e != NULL && shadow_hash_locked(e->hash) &&
	    e->expire == -1 && !shadow_expired(e, 100000),
	    "shadow: empty hash counts as locked, never expires");
	CHECK(shadow_hash_locked("*") && shadow_hash_locked("!") &&
	    shadow_hash_locked("") && shadow_hash_locked(NULL),
	    "shadow: lock markers");
	shadow_free(&f);

	text = "old:$6$s$h:100:0:10:7:5::\n";
	CHECK(shadow_parse(&f, "s", text, strlen(text), &d) == 0 &&
	    f.n == 1 && !shadow_expired(&f.entries[0], 115) &&
	    shadow_expired(&f.entries[0], 116),
	    "shadow: inactive after max + inactive days");
	shadow_free(&f);

	for (i = 0; i < sizeof(shadow_bad) / sizeof(shadow_bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		snprintf(what, sizeof(what), "shadow bad %zu: %s", i,
		    shadow_bad[i].error);
		CHECK(shadow_parse(&f, "s", shadow_bad[i].line,
		    strlen(shadow_bad[i].line), &d) == 0 && f.n == 0 &&
		    one_msg(&m, shadow_bad[i].error), what);
		shadow_free(&f);
	}
	memset(&m, 0, sizeof(m));
	CHECK(shadow_parse(&f, "s", "bob:$6$\0:::::::\n", 16, &d) == 0 &&
	    f.n == 0 && one_msg(&m, "s:1: NUL byte in line"),
	    "shadow: NUL byte");
	shadow_free(&f);
}

static void
test_group(void)
{
	struct group_file		 f;
	const struct group_entry	*e;
	struct msgs			 m;
	struct diag			 d = { collect, &m, 0 };
	struct buf			 b;
	gid_t				 gids[8];
	size_t				 i, n;
	const char			*text;

	text = "root:x:0:\n"
	    "mail:x:8:bob,carol\n"
	    "users:x:100:bob\n"
	    "# comment\n"
	    "staff:*:50:carol,bob,dave";
	memset(&m, 0, sizeof(m));
	CHECK(group_parse(&f, "g", text, strlen(text), &d) == 0 &&
	    m.n == 0 && f.n == 4, "group: valid file");
	e = group_find(&f, "mail");
	CHECK(e != NULL && e->gid == 8 && e->nmembers == 2 &&
	    strcmp(e->members[0], "bob") == 0 &&
	    strcmp(e->members[1], "carol") == 0 && e->members[2] == NULL,
	    "group: members of mail");
	e = group_find(&f, "root");
	CHECK(e != NULL && e->nmembers == 0 && e->members[0] == NULL,
	    "group: no members");
	n = group_list_for(&f, "bob", 100, gids, 8);
	CHECK(n == 3 && gids[0] == 100 && gids[1] == 8 && gids[2] == 50,
	    "group: bob's gids, primary first, no duplicate");
	n = group_list_for(&f, "bob", 100, gids, 2);
	CHECK(n == 2, "group: list capped at max");
	n = group_list_for(&f, "zed", 7, gids, 8);
	CHECK(n == 1 && gids[0] == 7, "group: only primary");
	group_free(&f);

	text = "a:x:1\n"
	    ":x:1:\n"
	    "a/b:x:1:\n"
	    "a:x:-1:\n"
	    "a:x:1:bob,,carol\n"
	    "a:x:1:bob,../x\n"
	    "a:x:1:bob,\n"
	    "ok:x:2:bob\n";
	memset(&m, 0, sizeof(m));
	CHECK(group_parse(&f, "g", text, strlen(text), &d) == 0 &&
	    f.n == 1 && m.n == 7, "group: 7 bad lines, 1 good");
	CHECK_STR(m.msg[0], "g:1: expected 4 fields, found 3",
	    "group: field count");
	CHECK_STR(m.msg[1], "g:2: empty group name", "group: empty name");
	CHECK_STR(m.msg[2], "g:3: invalid group name \"a/b\"",
	    "group: bad name");
	CHECK_STR(m.msg[3], "g:4: gid \"-1\": invalid", "group: bad gid");
	CHECK_STR(m.msg[4], "g:5: empty member name", "group: empty member");
	CHECK_STR(m.msg[5], "g:6: invalid member name \"../x\"",
	    "group: traversal member");
	CHECK_STR(m.msg[6], "g:7: empty member name",
	    "group: trailing comma");
	group_free(&f);

	/* More members than allowed. */
	buf_init(&b, 0);
	buf_puts(&b, "big:x:3:");
	for (i = 0; i <= GROUP_MEMBERS_MAX; i++)
		buf_puts(&b, i ? ",u" : "u");
	buf_putc(&b, '\n');
	memset(&m, 0, sizeof(m));
	CHECK(group_parse(&f, "g", b.data, b.len, &d) == 0 && f.n == 0 &&
	    one_msg(&m, "g:1: line too long"),
	    "group: overlong member list refused");
	group_free(&f);
	buf_free(&b);
}

int
main(void)
{
	test_passwd_name();
	test_passwd();
	test_shadow();
	test_group();
	return test_done();
}
