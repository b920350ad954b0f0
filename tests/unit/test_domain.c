/*
 * test_domain.c — virtual.conf parsing and address lookup.
 *
 * Domain directories live under a mkdtemp() directory; "@" in a test
 * text stands for that directory.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "domain.h"
#include "test.h"

#define MSGS_MAX	16

struct msgs {
	char	msg[MSGS_MAX][512];
	int	n;
};

static char	tmpdir[256];

static void
collect(void *ctx, const char *msg)
{
	struct msgs	*m = ctx;

	if (m->n < MSGS_MAX)
		snprintf(m->msg[m->n], sizeof(m->msg[0]), "%s", msg);
	m->n++;
}

/* Replace each '@' in tmpl with tmpdir. */
static char *
expand(const char *tmpl)
{
	struct buf	b;
	char		*s;

	buf_init(&b, 0);
	for (; *tmpl != '\0'; tmpl++) {
		if (*tmpl == '@')
			buf_puts(&b, tmpdir);
		else
			buf_putc(&b, *tmpl);
	}
	s = strdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

static int
parse(struct domain_table *t, const char *tmpl, struct msgs *m)
{
	struct diag	 d = { collect, m, 0 };
	char		*text;
	int		 r;

	memset(m, 0, sizeof(*m));
	text = expand(tmpl);
	r = domain_table_parse(t, "v.conf", text, strlen(text), &d);
	free(text);
	return r;
}

static const struct {
	const char	*text;
	const char	*error;		/* prefix "v.conf:N: " then this */
} bad[] = {
	{ "192.0.2.1\n", "v.conf:1: expected \"IP DIR\"" },
	{ "# c\n192.0.2.1 @/a uids=1-2 extra\n",
	    "v.conf:2: extra field \"extra\"" },
	{ "192.0.2.1 @/a extra\n",
	    "v.conf:1: \"extra\": expected uids=FIRST-LAST" },
	{ "192.0.2.1 @/a uids=\n", "v.conf:1: \"uids=\": expected" },
	{ "192.0.2.1 @/a uids=5\n", "v.conf:1: \"uids=5\": expected" },
	{ "192.0.2.1 @/a uids=5-\n", "v.conf:1: \"uids=5-\": expected" },
	{ "192.0.2.1 @/a uids=-5\n", "v.conf:1: \"uids=-5\": expected" },
	{ "192.0.2.1 @/a uids=+1-5\n", "v.conf:1: \"uids=+1-5\": expected" },
	{ "192.0.2.1 @/a uids=1-5x\n", "v.conf:1: \"uids=1-5x\": expected" },
	{ "192.0.2.1 @/a uids=0-999\n",
	    "v.conf:1: \"uids=0-999\": expected uids=FIRST-LAST, each a "
	    "number from 1 to 4294967294 (0 is never in a range)" },
	{ "192.0.2.1 @/a uids=1-4294967295\n",
	    "v.conf:1: \"uids=1-4294967295\": expected" },
	{ "192.0.2.1 @/a uids=2000-1999\n",
	    "v.conf:1: \"uids=2000-1999\": uids=FIRST-LAST with FIRST above "
	    "LAST" },
	{ "192.0.2.1 @/a uids=2000-2999\n192.0.2.2 @/a uids=2000-3000\n",
	    "v.conf:2: uids=2000-3000 for @/a disagrees with uids=2000-2999 "
	    "on line 1" },
	{ "192.0.2.1 @/a uids=2000-2999\n192.0.2.2 @/b uids=2999-3999\n",
	    "v.conf:2: uids=2999-3999 of @/b overlaps uids=2000-2999 of @/a "
	    "on line 1" },
	{ "192.0.2.1 @/a uids=2000-2999\n192.0.2.2 @/b uids=1000-5000\n",
	    "v.conf:1: uids=2000-2999 of @/a overlaps uids=1000-5000 of @/b "
	    "on line 2" },
	{ "192.0.2.300 @/a\n", "v.conf:1: invalid IP address \"192.0.2.300\"" },
	{ "fe80::1%lo @/a\n", "v.conf:1: invalid IP address" },
	{ "localhost @/a\n", "v.conf:1: invalid IP address" },
	{ "192.0.2.1 srv/a\n", "v.conf:1: directory must be an absolute path" },
	{ "192.0.2.1 @/nope\n", "v.conf:1: " },
	{ "192.0.2.1 @/file\n", "v.conf:1: " },
	{ "192.0.2.1 /\n", "v.conf:1: directory must not be /" },
	{ "192.0.2.1 @/a/../b\n", "v.conf:1: directory must not have . or .." },
	{ "192.0.2.1 @/a\n\n192.0.2.1 @/b\n",
	    "v.conf:3: duplicate address 192.0.2.1, already on line 1" },
	{ "2001:db8::1 @/a\n2001:DB8:0::1 @/b\n",
	    "v.conf:2: duplicate address 2001:db8::1, already on line 1" },
	{ "192.0.2.9 @/a\n::ffff:192.0.2.9 @/b\n",
	    "v.conf:2: duplicate address 192.0.2.9, already on line 1" },
	{ "192.0.2.1 @/a\r\r\n", "v.conf:1: control character 0x0d" },
	{ "192.0.2.1\r@/a\n", "v.conf:1: control character 0x0d" },
	{ "192.0.2.1 @/a\n192.0.2.2 @/x/a\n",
	    "v.conf:2: domain name \"a\" already used by" },
};

static void
test_bad(void)
{
	struct domain_table	 t;
	struct msgs		 m;
	size_t			 i;
	char			 what[128];

	char			*err;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = expand(bad[i].error);
		snprintf(what, sizeof(what), "bad line %zu: %s", i,
		    bad[i].error);
		CHECK(parse(&t, bad[i].text, &m) == 0 && m.n == 1 &&
		    strncmp(m.msg[0], err, strlen(err)) == 0, what);
		if (m.n != 1 || strncmp(m.msg[0], err, strlen(err)) != 0)
			printf("# got %d: %s\n", m.n, m.msg[0]);
		free(err);
		domain_table_free(&t);
	}
}

/* uids= ranges: declared, given on some lines of a DIR only, absent. */
static void
test_ranges(void)
{
	struct domain_table	 t;
	struct msgs		 m;
	const struct domain	*a, *b, *c;

	CHECK(parse(&t, "192.0.2.1 @/a\n"
	    "192.0.2.2\t@/a\tuids=2000-2999 # alpha\n"
	    "192.0.2.3 @/a uids=2000-2999\n"
	    "192.0.2.4 @/b uids=3000-3000\n"
	    "192.0.2.5 @/c\n", &m) == 0 && m.n == 0, "ranges parse");
	a = domain_lookup_name(&t, "a");
	b = domain_lookup_name(&t, "b");
	c = domain_lookup_name(&t, "c");
	CHECK(a != NULL && a->id_first == 2000 && a->id_last == 2999 &&
	    a->id_line == 2 && domain_has_range(a),
	    "range from the second line of a DIR");
	CHECK(b != NULL && b->id_first == 3000 && b->id_last == 3000,
	    "one-id range");
	CHECK(c != NULL && c->id_first == 0 && c->id_last == 0 &&
	    !domain_has_range(c), "plain line: no range");
	domain_table_free(&t);

	CHECK(parse(&t, "192.0.2.1 @/a uids=1-4294967294\n", &m) == 0 &&
	    m.n == 0 && t.ndomains == 1 && t.domains[0].id_first == 1 &&
	    t.domains[0].id_last == 4294967294U, "widest range");
	domain_table_free(&t);

	/* Touching is not overlapping; three overlaps, three reports. */
	CHECK(parse(&t, "192.0.2.1 @/a uids=2000-2999\n"
	    "192.0.2.2 @/b uids=3000-3999\n", &m) == 0 && m.n == 0,
	    "adjacent ranges");
	domain_table_free(&t);
	CHECK(parse(&t, "192.0.2.1 @/a uids=2000-2999\n"
	    "192.0.2.2 @/b uids=2500-2600\n"
	    "192.0.2.3 @/c uids=2900-3100\n", &m) == 0 && m.n == 2,
	    "nested and crossing ranges both reported");
	domain_table_free(&t);
}

static void
test_valid(void)
{
	struct domain_table	 t;
	struct msgs		 m;
	const struct domain	*a, *b;
	char			*dir;

	CHECK(parse(&t,
	    "# virtual.conf\n"
	    "\n"
	    "   \t\n"
	    "192.0.2.10\t@/a   # alpha\n"
	    "  2001:db8::10   @/a/ \n"
	    "192.0.2.20 @//b//\r\n"
	    "2001:0db8:0:0::20 @/b# no space before comment\n"
	    "192.0.2.30 @/c", &m) == 0, "valid file parses");
	CHECK(m.n == 0, "valid file: no diagnostics");
	CHECK(t.ndomains == 3, "three domains");
	CHECK_STR(t.path, "v.conf", "path kept");
	a = domain_lookup_name(&t, "a");
	b = domain_lookup_name(&t, "b");
	CHECK(a != NULL && a->naddrs == 2, "a has two addresses");
	CHECK(b != NULL && b->naddrs == 2, "b has two addresses");
	if (a != NULL && a->naddrs == 2) {
		CHECK_STR(a->addrs[0].text, "192.0.2.10", "a addr 0 text");
		CHECK_STR(a->addrs[1].text, "2001:db8::10", "a addr 1 text");
		CHECK(a->addrs[0].family == AF_INET, "a addr 0 is v4");
		CHECK(a->addrs[1].family == AF_INET6, "a addr 1 is v6");
		CHECK(a->addrs[1].lineno == 5, "a addr 1 line number");
		dir = expand("@/a");
		CHECK_STR(a->dir, dir, "a dir without trailing slash");
		free(dir);
	}
	if (b != NULL && b->naddrs == 2) {
		CHECK_STR(b->addrs[1].text, "2001:db8::20", "canonical v6");
		dir = expand("@/b");
		CHECK_STR(b->dir, dir, "b dir: slashes collapsed");
		CHECK(domain_lookup_name(&t, dir) == b, "lookup by dir");
		free(dir);
	}
	dir = expand("@/c/");
	CHECK(domain_lookup_name(&t, dir) != NULL,
	    "lookup by dir with trailing slash");
	free(dir);
	CHECK(domain_lookup_name(&t, "nope") == NULL, "unknown name");
	domain_table_free(&t);

	CHECK(parse(&t, "", &m) == 0 && t.ndomains == 0 && m.n == 0,
	    "empty file");
	domain_table_free(&t);
	CHECK(parse(&t, "# only\n\n", &m) == 0 && t.ndomains == 0 &&
	    m.n == 0, "comments only");
	domain_table_free(&t);
}

static void
sa4(struct sockaddr_in *sin, const char *ip)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

static void
sa6(struct sockaddr_in6 *sin6, const char *ip)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
}

static void
test_lookup(void)
{
	struct domain_table	 t;
	struct msgs		 m;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	struct sockaddr_storage	 ss;
	const struct domain	*dm;
	socklen_t		 len;
	char			 text[64];

	CHECK(parse(&t,
	    "192.0.2.10 @/a\n"
	    "2001:db8::10 @/b\n"
	    "::ffff:192.0.2.30 @/c\n", &m) == 0 && m.n == 0,
	    "lookup table parses");
	sa4(&sin, "192.0.2.10");
	dm = domain_lookup_addr(&t, (struct sockaddr *)&sin, sizeof(sin));
	CHECK(dm != NULL && strcmp(dm->name, "a") == 0, "v4 lookup");
	sa6(&sin6, "::ffff:192.0.2.10");
	dm = domain_lookup_addr(&t, (struct sockaddr *)&sin6, sizeof(sin6));
	CHECK(dm != NULL && strcmp(dm->name, "a") == 0,
	    "mapped v6 socket finds v4 entry");
	sa6(&sin6, "2001:db8::10");
	dm = domain_lookup_addr(&t, (struct sockaddr *)&sin6, sizeof(sin6));
	CHECK(dm != NULL && strcmp(dm->name, "b") == 0, "v6 lookup");
	sa4(&sin, "192.0.2.30");
	dm = domain_lookup_addr(&t, (struct sockaddr *)&sin, sizeof(sin));
	CHECK(dm != NULL && strcmp(dm->name, "c") == 0,
	    "mapped v6 entry matches v4 socket");
	CHECK(dm != NULL && dm->addrs[0].family == AF_INET &&
	    strcmp(dm->addrs[0].text, "192.0.2.30") == 0,
	    "mapped entry stored as v4");
	sa4(&sin, "192.0.2.11");
	CHECK(domain_lookup_addr(&t, (struct sockaddr *)&sin,
	    sizeof(sin)) == NULL, "unknown v4 address");
	sa6(&sin6, "::192.0.2.10");
	CHECK(domain_lookup_addr(&t, (struct sockaddr *)&sin6,
	    sizeof(sin6)) == NULL, "v4-compatible is not mapped");
	CHECK(domain_lookup_addr(&t, (struct sockaddr *)&sin6, 8) == NULL,
	    "short sockaddr refused");

	sa6(&sin6, "::ffff:192.0.2.10");
	CHECK_STR(domain_addr_text((struct sockaddr *)&sin6, text,
	    sizeof(text)), "192.0.2.10", "mapped shown as v4");
	sa6(&sin6, "2001:db8:0::1");
	CHECK_STR(domain_addr_text((struct sockaddr *)&sin6, text,
	    sizeof(text)), "2001:db8::1", "v6 text");
	CHECK(domain_addr_text((struct sockaddr *)&sin6, text, 4) == NULL,
	    "text too small");

	dm = domain_lookup_name(&t, "b");
	if (dm != NULL) {
		domain_addr_sockaddr(&dm->addrs[0], 25, &ss, &len);
		CHECK(ss.ss_family == AF_INET6 && len == sizeof(sin6) &&
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 25,
		    "sockaddr for bind, v6");
	}
	dm = domain_lookup_name(&t, "a");
	if (dm != NULL) {
		domain_addr_sockaddr(&dm->addrs[0], 587, &ss, &len);
		CHECK(ss.ss_family == AF_INET && len == sizeof(sin) &&
		    ntohs(((struct sockaddr_in *)&ss)->sin_port) == 587,
		    "sockaddr for bind, v4");
	}
	domain_table_free(&t);
}

static void
test_hostile(void)
{
	struct domain_table	 t;
	struct msgs		 m;
	struct diag		 d = { collect, &m, 0 };
	struct buf		 b;
	char			*dir, *text;
	size_t			 i, n;
	int			 ok;

	/* Overlong line: reported, never truncated into a good one. */
	dir = expand("192.0.2.1 @/a ");
	buf_init(&b, 0);
	buf_puts(&b, dir);
	for (i = 0; i < DOMAIN_LINE_MAX; i++)
		buf_putc(&b, '#');
	buf_puts(&b, "\n192.0.2.2 ");
	free(dir);
	dir = expand("@/b\n");
	buf_puts(&b, dir);
	free(dir);
	memset(&m, 0, sizeof(m));
	CHECK(domain_table_parse(&t, "v.conf", b.data, b.len, &d) == 0,
	    "overlong: parses");
	CHECK(m.n == 1 && strcmp(m.msg[0],
	    "v.conf:1: line too long (max 4096 bytes)") == 0,
	    "overlong: reported");
	CHECK(t.ndomains == 1 && strcmp(t.domains[0].name, "b") == 0,
	    "overlong: next line loads");
	domain_table_free(&t);
	buf_free(&b);

	/* NUL byte in the middle of a line. */
	text = expand("192.0.2.1 @/a\n192.0.2.2 @/b\n");
	text[5] = '\0';
	memset(&m, 0, sizeof(m));
	d.count = 0;
	CHECK(domain_table_parse(&t, "v.conf", text, strlen(text + 6) + 6,
	    &d) == 0 && m.n == 1 &&
	    strcmp(m.msg[0], "v.conf:1: NUL byte in line") == 0 &&
	    t.ndomains == 1, "NUL: reported, other line loads");
	CHECK(d.count == 1, "diag count");
	domain_table_free(&t);
	free(text);

	/* Many thousands of lines, all grouped into a few domains. */
	buf_init(&b, 0);
	for (i = 0; i < 20000; i++) {
		dir = expand(i % 2 ? "@/a" : "@/b");
		buf_printf(&b, "10.%zu.%zu.%zu %s # line\n", i >> 16,
		    (i >> 8) & 255, i & 255, dir);
		free(dir);
	}
	memset(&m, 0, sizeof(m));
	d.count = 0;
	ok = domain_table_parse(&t, "v.conf", b.data, b.len, &d) == 0;
	CHECK(ok && m.n == 0 && t.ndomains == 2 &&
	    t.domains[0].naddrs + t.domains[1].naddrs == 20000,
	    "huge file: 20000 addresses in 2 domains");
	domain_table_free(&t);

	/* The same again appended: every second half line a duplicate. */
	/* Not b.data itself: the buffer moves when it grows. */
	n = b.len;
	text = malloc(n);
	memcpy(text, b.data, n);
	buf_append(&b, text, n);
	free(text);
	memset(&m, 0, sizeof(m));
	d.count = 0;
	ok = domain_table_parse(&t, "v.conf", b.data, b.len, &d) == 0;
	CHECK(ok && d.count == 20000 && strncmp(m.msg[0],
	    "v.conf:20001: duplicate address 10.0.0.0, already on line 1",
	    60) == 0, "huge file: 20000 duplicates reported");
	domain_table_free(&t);
	buf_free(&b);
}

static void
test_load(void)
{
	struct domain_table	 t;
	struct msgs		 m;
	struct diag		 d = { collect, &m, 0 };
	const char		*error = NULL;
	char			 path[512], *text;
	FILE			*f;

	snprintf(path, sizeof(path), "%s/virtual.conf", tmpdir);
	CHECK(domain_table_load(&t, path, &d, &error) == -1 &&
	    error != NULL, "load: missing file is an error");
	domain_table_free(&t);
	text = expand("192.0.2.1 @/a\nbad\n");
	if ((f = fopen(path, "w")) != NULL) {
		fputs(text, f);
		fclose(f);
	}
	free(text);
	memset(&m, 0, sizeof(m));
	CHECK(domain_table_load(&t, path, &d, &error) == 0 &&
	    t.ndomains == 1 && m.n == 1, "load: file read and parsed");
	CHECK(m.n == 1 && strstr(m.msg[0], "virtual.conf:2: ") != NULL,
	    "load: messages name the file");
	domain_table_free(&t);
	unlink(path);
}

int
main(void)
{
	char	path[512];
	FILE	*f;

	snprintf(tmpdir, sizeof(tmpdir), "%s/vm-domain-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/a", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/b", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/c", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/x", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/x/a", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	if ((f = fopen(path, "w")) != NULL)
		fclose(f);

	test_bad();
	test_ranges();
	test_valid();
	test_lookup();
	test_hostile();
	test_load();

	unlink(path);
	snprintf(path, sizeof(path), "%s/x/a", tmpdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/x", tmpdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/a", tmpdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/b", tmpdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/c", tmpdir);
	rmdir(path);
	rmdir(tmpdir);
	return test_done();
}
