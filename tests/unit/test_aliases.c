/*
 * test_aliases.c — etc/aliases parsing and expansion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "buf.h"
#include "diag.h"
#include "test.h"

#define MSGS_MAX	8

struct msgs {
	char	msg[MSGS_MAX][512];
	int	n;
};

struct got {
	char	text[2048];
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

/* Record each result as "TYPE:value " for easy comparison. */
static void
record(void *ctx, const struct alias_target *t)
{
	static const char	 type[] = "LACFI";
	struct got		*g = ctx;
	size_t			 len = strlen(g->text);

	snprintf(g->text + len, sizeof(g->text) - len, "%c:%s ",
	    type[t->type], t->value);
	g->n++;
}

static int
one_msg(const struct msgs *m, const char *want)
{
	if (m->n == 1 && strncmp(m->msg[0], want, strlen(want)) == 0)
		return 1;
	printf("# got %d message(s): %s\n", m->n, m->n ? m->msg[0] : "");
	return 0;
}

static const struct {
	const char	*text;
	const char	*error;
} bad[] = {
	{ "postmaster root\n", "a:1: missing ':' after alias name" },
	{ ": root\n", "a:1: empty alias name" },
	{ "../x: root\n", "a:1: invalid alias name \"../x\"" },
	{ "a/b: root\n", "a:1: invalid alias name \"a/b\"" },
	{ "x:\n", "a:1: no targets for \"x\"" },
	{ "x: a,, b\n", "a:1: empty target" },
	{ "x: a, b,\n", "a:1: empty target" },
	{ "x: ../etc\n", "a:1: invalid local name \"../etc\"" },
	{ "x: a/b\n", "a:1: invalid local name \"a/b\"" },
	{ "x: bob smith\n", "a:1: invalid local name \"bob smith\"" },
	{ "x: bob@\n", "a:1: invalid address \"bob@\"" },
	{ "x: @example.org\n", "a:1: invalid address" },
	{ "x: a@b@c\n", "a:1: invalid address" },
	{ "x: <a@b>\n", "a:1: invalid address" },
	{ "x: a@exa mple.org\n", "a:1: invalid address" },
	{ "x: \"|cmd\n", "a:1: unterminated quote" },
	{ "x: \"a\" b\n", "a:1: text after closing quote" },
	{ "x: a\"b\n", "a:1: quote inside unquoted target" },
	{ "x: |\n", "a:1: empty command" },
	{ "x: :include:etc/list\n", "a:1: :include: needs an absolute path" },
	{ "  bob\n", "a:1: continuation line without an alias" },
	{ "# c\nx: a\x01\n", "a:2: control character 0x01" },
	{ "x: a\rb\n", "a:1: control character 0x0d" },
	{ "x: a\n  b\x1b\n", "a:2: control character 0x1b" },
	{ "x: a\nX: b\n", "a:2: duplicate alias \"x\", first on line 1" },
};

static void
test_bad(void)
{
	struct aliases	 a;
	struct msgs	 m;
	struct diag	 d = { collect, &m, 0 };
	char		 what[128];
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		snprintf(what, sizeof(what), "aliases bad %zu: %s", i,
		    bad[i].error);
		CHECK(aliases_parse(&a, "a", bad[i].text, strlen(bad[i].text),
		    &d) == 0 && one_msg(&m, bad[i].error), what);
		aliases_free(&a);
	}
}

static void
test_valid(void)
{
	struct aliases		 a;
	const struct alias	*al;
	struct msgs		 m;
	struct diag		 d = { collect, &m, 0 };
	const char		*text;

	text = "# aliases\n"
	    "Postmaster: root\n"
	    "root:\tbob, carol@example.org,\n"
	    "\t\"|/usr/bin/filter -x\",\n"
	    "# a comment inside continuations\n"
	    "    /var/mail/archive, :include:/etc/list\r\n"
	    "\n"
	    "quoted: \"bob\", \"|/bin/echo \\\"hi\\\"\"\n"
	    "cmd: |/bin/true\n"
	    "last: bob";
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", text, strlen(text), &d) == 0 &&
	    m.n == 0, "valid aliases parse");
	if (m.n != 0)
		printf("# %s\n", m.msg[0]);
	CHECK(a.n == 5, "five aliases");
	al = aliases_find(&a, "POSTMASTER");
	CHECK(al != NULL && strcmp(al->name, "postmaster") == 0 &&
	    al->lineno == 2, "names lower case, found case-insensitively");
	al = aliases_find(&a, "root");
	CHECK(al != NULL && al->ntargets == 5, "root has five targets");
	if (al != NULL && al->ntargets == 5) {
		CHECK(al->targets[0].type == ALIAS_LOCAL &&
		    strcmp(al->targets[0].value, "bob") == 0, "local target");
		CHECK(al->targets[1].type == ALIAS_ADDRESS &&
		    strcmp(al->targets[1].value, "carol@example.org") == 0,
		    "address target");
		CHECK(al->targets[2].type == ALIAS_COMMAND &&
		    strcmp(al->targets[2].value, "/usr/bin/filter -x") == 0,
		    "quoted command target");
		CHECK(al->targets[3].type == ALIAS_FILE &&
		    strcmp(al->targets[3].value, "/var/mail/archive") == 0,
		    "file target");
		CHECK(al->targets[4].type == ALIAS_INCLUDE &&
		    strcmp(al->targets[4].value, "/etc/list") == 0,
		    "include target, CRLF stripped");
	}
	al = aliases_find(&a, "quoted");
	CHECK(al != NULL && al->ntargets == 2 &&
	    al->targets[0].type == ALIAS_LOCAL &&
	    al->targets[1].type == ALIAS_COMMAND &&
	    strcmp(al->targets[1].value, "/bin/echo \"hi\"") == 0,
	    "quoted targets, escaped quote");
	al = aliases_find(&a, "cmd");
	CHECK(al != NULL && al->targets[0].type == ALIAS_COMMAND &&
	    strcmp(al->targets[0].value, "/bin/true") == 0,
	    "unquoted command");
	CHECK(aliases_find(&a, "last") != NULL,
	    "last line without newline");
	CHECK(aliases_find(&a, "nobody") == NULL, "unknown alias");
	aliases_free(&a);
}

static void
test_expand(void)
{
	struct aliases	 a;
	struct msgs	 m;
	struct diag	 d = { collect, &m, 0 };
	struct got	 g;
	struct buf	 b;
	const char	*text, *error;
	size_t		 i;

	text = "bob: bob, backup\n"
	    "team: bob, carol, team-b\n"
	    "team-b: dave, Carol, x@example.org\n"
	    "loop1: loop2\n"
	    "loop2: loop1, eve\n"
	    "ops: |/bin/pager\n";
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", text, strlen(text), &d) == 0 &&
	    m.n == 0 && a.n == 6, "expansion table parses");

	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "bob", record, &g, &error) == 0 &&
	    strcmp(g.text, "L:bob L:backup ") == 0,
	    "bob: bob, backup delivers to bob");
	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "TEAM", record, &g, &error) == 0 &&
	    strcmp(g.text, "L:bob L:backup L:carol L:dave "
	    "A:x@example.org ") == 0, "nested expansion, deduplicated");
	if (strcmp(g.text, "L:bob L:backup L:carol L:dave "
	    "A:x@example.org ") != 0)
		printf("# got %s\n", g.text);
	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "loop1", record, &g, &error) == 0 &&
	    strcmp(g.text, "L:loop1 L:eve ") == 0,
	    "loop stops at the name it reaches");
	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "zed", record, &g, &error) == 0 &&
	    strcmp(g.text, "L:zed ") == 0, "not an alias: itself");
	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "ops", record, &g, &error) == 0 &&
	    strcmp(g.text, "C:/bin/pager ") == 0, "command passed on, marked");
	aliases_free(&a);

	/* A chain deeper than ALIASES_DEPTH_MAX. */
	buf_init(&b, 0);
	for (i = 0; i < ALIASES_DEPTH_MAX + 1; i++)
		buf_printf(&b, "a%zu: a%zu\n", i, i + 1);
	CHECK(aliases_parse(&a, "a", b.data, b.len, &d) == 0,
	    "deep chain parses");
	memset(&g, 0, sizeof(g));
	error = NULL;
	CHECK(aliases_expand(&a, "a0", record, &g, &error) == -1 &&
	    error != NULL && g.n == 0, "too deep: error, nothing delivered");
	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "a1", record, &g, &error) == 0 &&
	    strcmp(g.text, "L:a11 ") == 0, "chain of exactly the limit");
	aliases_free(&a);
	buf_reset(&b);

	/* Fan-out: 40 aliases of 40 targets each, 1600 results. */
	buf_puts(&b, "all: ");
	for (i = 0; i < 40; i++)
		buf_printf(&b, "%sg%zu", i ? ", " : "", i);
	buf_putc(&b, '\n');
	for (i = 0; i < 40 * 40; i++) {
		if (i % 40 == 0)
			buf_printf(&b, "g%zu: ", i / 40);
		buf_printf(&b, "%su%zu", i % 40 ? ", " : "", i);
		if (i % 40 == 39)
			buf_putc(&b, '\n');
	}
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", b.data, b.len, &d) == 0 && m.n == 0 &&
	    a.n == 41, "fan-out table parses");
	memset(&g, 0, sizeof(g));
	error = NULL;
	CHECK(aliases_expand(&a, "all", record, &g, &error) == -1 &&
	    error != NULL && g.n == 0, "too many results: error");
	memset(&g, 0, sizeof(g));
	CHECK(aliases_expand(&a, "g3", record, &g, &error) == 0 &&
	    g.n == 40, "one group expands");
	aliases_free(&a);
	buf_free(&b);
}

static const char nul_text[] = "x: a\0b\ny: c\n";

static void
test_hostile(void)
{
	struct aliases	 a;
	struct msgs	 m;
	struct diag	 d = { collect, &m, 0 };
	struct buf	 b;
	size_t		 i;

	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", nul_text, sizeof(nul_text) - 1,
	    &d) == 0 && a.n == 1 && aliases_find(&a, "y") != NULL &&
	    one_msg(&m, "a:1: NUL byte in line"), "NUL byte");
	aliases_free(&a);

	/* One physical line over the limit. */
	buf_init(&b, 0);
	buf_puts(&b, "x: ");
	for (i = 0; i < ALIASES_LINE_MAX; i++)
		buf_putc(&b, 'a');
	buf_puts(&b, "\ny: c\n");
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", b.data, b.len, &d) == 0 && a.n == 1 &&
	    one_msg(&m, "a:1: line too long (max 65536 bytes)"),
	    "overlong line");
	aliases_free(&a);
	buf_reset(&b);

	/* Continuations that add up past the limit. */
	buf_puts(&b, "x: a\n");
	for (i = 0; i < ALIASES_LINE_MAX / 1000 + 1; i++) {
		buf_puts(&b, "  ");
		while (b.len % 1000 != 999)
			buf_putc(&b, 'b');
		buf_putc(&b, '\n');
	}
	buf_puts(&b, "y: c\n");
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", b.data, b.len, &d) == 0 && a.n == 1 &&
	    aliases_find(&a, "y") != NULL &&
	    one_msg(&m, "a:1: alias too long"),
	    "joined continuations over the limit");
	aliases_free(&a);
	buf_reset(&b);

	/* Too many targets. */
	buf_puts(&b, "x: u0");
	for (i = 1; i <= ALIASES_TARGETS_MAX; i++)
		buf_printf(&b, ",u%zu", i);
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", b.data, b.len, &d) == 0 && a.n == 0 &&
	    one_msg(&m, "a:1: too many targets (max 1000)"),
	    "too many targets, no final newline");
	aliases_free(&a);
	buf_reset(&b);

	/* A big file. */
	for (i = 0; i < 20000; i++)
		buf_printf(&b, "alias%zu: user%zu, user%zu@example.org\n",
		    i, i, i);
	memset(&m, 0, sizeof(m));
	CHECK(aliases_parse(&a, "a", b.data, b.len, &d) == 0 && m.n == 0 &&
	    a.n == 20000 && aliases_find(&a, "ALIAS19999") != NULL,
	    "20000 aliases");
	aliases_free(&a);
	buf_free(&b);
}

int
main(void)
{
	test_bad();
	test_valid();
	test_expand();
	test_hostile();
	return test_done();
}
