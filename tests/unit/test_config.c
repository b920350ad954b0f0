/*
 * test_config.c — unit tests for the table-driven config parser.
 *
 * Each case parses a text against one key table and compares every
 * reported message, joined by newlines, with the expected text: the
 * exact "file:line: message" that an administrator would read.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "diag.h"
#include "fileio.h"
#include "test.h"

#define S(x)	x, sizeof(x) - 1

/* Sorted by name, as conf_parse requires. */
static const struct conf_key keys[] = {
	{ "domains", CONF_LIST, NULL, 0, 0 },
	{ "hostname", CONF_STR, NULL, 0, 0 },
	{ "log_debug", CONF_BOOL, "no", 0, 0 },
	{ "max_message_size", CONF_SIZE, "50M", 1, 1024LL * 1024 * 1024 },
	{ "milter", CONF_MULTI, NULL, 0, 0 },
	{ "port", CONF_INT, "25", 1, 65535 },
	{ "queue_lifetime", CONF_DURATION, "5d", 60, 4 * 604800 },
	{ "retry", CONF_DURATION, NULL, 0, 0 },
	{ "size_any", CONF_SIZE, NULL, 0, 0 },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static void
collect(void *ctx, const char *msg)
{
	struct buf	*b = ctx;

	(void)buf_puts(b, msg);
	(void)buf_putc(b, '\n');
}

struct conf_case {
	const char	*what;
	const char	*text;
	size_t		 len;
	int		 rc;
	const char	*errors;	/* every message, '\n' after each */
	const char	*key;		/* then check this key, if not NULL */
	const char	*text_want;	/* its text (NULL: unset) */
	long long	 num_want;
};

static const struct conf_case cases[] = {
	{ "empty file", S(""), 0, "", "port", "25", 25 },
	{ "newline only", S("\n"), 0, "", "hostname", NULL, 0 },
	{ "string", S("hostname mx.alpha.test\n"), 0, "",
	    "hostname", "mx.alpha.test", 0 },
	{ "blanks, tabs, comments", S("  # comment\n\n\t\n#port 1\n"
	    "\thostname \t mx  \t\n"), 0, "", "hostname", "mx", 0 },
	{ "value keeps inner blanks and '#'", S("hostname a b#c\n"), 0, "",
	    "hostname", "a b#c", 0 },
	{ "CRLF line ends", S("port 587\r\n"), 0, "", "port", "587", 587 },
	{ "no newline at EOF", S("port 26"), 0, "", "port", "26", 26 },
	{ "unknown key", S("bogus 1\n"), -1, "t:1: unknown key \"bogus\"\n",
	    NULL, NULL, 0 },
	{ "key is case sensitive", S("Port 1\n"), -1,
	    "t:1: unknown key \"Port\"\n", NULL, NULL, 0 },
	{ "missing value", S("hostname\n"), -1,
	    "t:1: hostname: missing value\n", "hostname", NULL, 0 },
	{ "blank value", S("hostname \t \n"), -1,
	    "t:1: hostname: missing value\n", NULL, NULL, 0 },
	{ "repeated key", S("port 1\nport 2\n"), -1,
	    "t:2: port: given again (first on line 1)\n", "port", "1", 1 },
	{ "all errors reported, with line numbers",
	    S("bogus\nport x\nport 99999\nhostname a\nlog_debug maybe\n"), -1,
	    "t:1: unknown key \"bogus\"\n"
	    "t:2: port: invalid number\n"
	    "t:3: port: too large (maximum 65535)\n"
	    "t:5: log_debug: invalid boolean (use yes or no)\n",
	    "hostname", "a", 0 },
	{ "NUL byte", S("hostname a\0b\nport 2\n"), -1,
	    "t:1: NUL byte in line\n", "port", "2", 2 },
	{ "bare CR inside a line", S("hostname a\rb\n"), -1,
	    "t:1: control character 0x0d in line\n", "hostname", NULL, 0 },
	{ "escape character", S("hostname \033[2J\n"), -1,
	    "t:1: control character 0x1b in line\n", NULL, NULL, 0 },
	{ "DEL character", S("hostname a\177\n"), -1,
	    "t:1: control character 0x7f in line\n", NULL, NULL, 0 },
	{ "bare CR as line end is not a line end", S("port 1\rport 2\n"),
	    -1, "t:1: control character 0x0d in line\n", NULL, NULL, 0 },
	{ "UTF-8 in a value", S("hostname \xc3\xa9t\xc3\xa9\n"), 0, "",
	    "hostname", "\xc3\xa9t\xc3\xa9", 0 },
	{ "int: negative below min", S("port -1\n"), -1,
	    "t:1: port: too small (minimum 1)\n", NULL, NULL, 0 },
	{ "int: overflow", S("port 99999999999999999999999999\n"), -1,
	    "t:1: port: too large (maximum 65535)\n", NULL, NULL, 0 },
	{ "int: hex refused", S("port 0x19\n"), -1,
	    "t:1: port: invalid number\n", NULL, NULL, 0 },
	{ "size: k", S("max_message_size 10k\n"), 0, "",
	    "max_message_size", "10k", 10240 },
	{ "size: M", S("max_message_size 50M\n"), 0, "",
	    "max_message_size", "50M", 52428800 },
	{ "size: G at max", S("max_message_size 1G\n"), 0, "",
	    "max_message_size", "1G", 1073741824 },
	{ "size: plain bytes", S("max_message_size 12345\n"), 0, "",
	    "max_message_size", "12345", 12345 },
	{ "size: default", S(""), 0, "", "max_message_size", "50M",
	    52428800 },
	{ "size: over max", S("max_message_size 2G\n"), -1,
	    "t:1: max_message_size: too large (maximum 1073741824)\n",
	    NULL, NULL, 0 },
	{ "size: under min", S("max_message_size 0\n"), -1,
	    "t:1: max_message_size: too small (minimum 1)\n", NULL, NULL, 0 },
	{ "size: bad unit", S("max_message_size 10x\n"), -1,
	    "t:1: max_message_size: invalid size (use bytes or a number "
	    "with k, M, G or T)\n", NULL, NULL, 0 },
	{ "size: unit without number", S("size_any k\n"), -1,
	    "t:1: size_any: invalid size (use bytes or a number with k, M, "
	    "G or T)\n", NULL, NULL, 0 },
	{ "size: blank before unit", S("size_any 10 k\n"), -1,
	    "t:1: size_any: invalid size (use bytes or a number with k, M, "
	    "G or T)\n", NULL, NULL, 0 },
	{ "size: negative", S("size_any -1\n"), -1,
	    "t:1: size_any: invalid size (use bytes or a number with k, M, "
	    "G or T)\n", NULL, NULL, 0 },
	{ "size: digits overflow", S("size_any 99999999999999999999\n"), -1,
	    "t:1: size_any: size too large\n", NULL, NULL, 0 },
	{ "size: unit overflow", S("size_any 16777216T\n"), -1,
	    "t:1: size_any: size too large\n", NULL, NULL, 0 },
	{ "size: past long long", S("size_any 16777215T\n"), -1,
	    "t:1: size_any: value too large\n", NULL, NULL, 0 },
	{ "size: largest that fits", S("size_any 8388607T\n"), 0, "",
	    "size_any", "8388607T", 9223370937343148032LL },
	{ "duration: seconds", S("retry 30s\n"), 0, "", "retry", "30s", 30 },
	{ "duration: minutes", S("retry 5m\n"), 0, "", "retry", "5m", 300 },
	{ "duration: hours", S("retry 2h\n"), 0, "", "retry", "2h", 7200 },
	{ "duration: days", S("retry 5d\n"), 0, "", "retry", "5d", 432000 },
	{ "duration: weeks", S("retry 1w\n"), 0, "", "retry", "1w", 604800 },
	{ "duration: plain", S("retry 45\n"), 0, "", "retry", "45", 45 },
	{ "duration: default", S(""), 0, "", "queue_lifetime", "5d",
	    432000 },
	{ "duration: upper case refused", S("retry 5M\n"), -1,
	    "t:1: retry: invalid duration (use seconds or a number with s, "
	    "m, h, d or w)\n", NULL, NULL, 0 },
	{ "duration: two units refused", S("retry 1h30m\n"), -1,
	    "t:1: retry: invalid duration (use seconds or a number with s, "
	    "m, h, d or w)\n", NULL, NULL, 0 },
	{ "duration: overflow", S("retry 99999999999999999999w\n"), -1,
	    "t:1: retry: duration too large\n", NULL, NULL, 0 },
	{ "duration: unit overflow", S("retry 30500568904944w\n"), -1,
	    "t:1: retry: duration too large\n", NULL, NULL, 0 },
	{ "duration: under min", S("queue_lifetime 30s\n"), -1,
	    "t:1: queue_lifetime: too small (minimum 60)\n", NULL, NULL, 0 },
	{ "duration: over max", S("queue_lifetime 5w\n"), -1,
	    "t:1: queue_lifetime: too large (maximum 2419200)\n",
	    NULL, NULL, 0 },
	{ "bool: yes", S("log_debug yes\n"), 0, "", "log_debug", "yes", 1 },
	{ "bool: On", S("log_debug On\n"), 0, "", "log_debug", "On", 1 },
	{ "bool: TRUE", S("log_debug TRUE\n"), 0, "", "log_debug", "TRUE",
	    1 },
	{ "bool: 0", S("log_debug 0\n"), 0, "", "log_debug", "0", 0 },
	{ "bool: off", S("log_debug off\n"), 0, "", "log_debug", "off", 0 },
	{ "bool: default", S(""), 0, "", "log_debug", "no", 0 },
	{ "list: empty", S("domains , ,\n"), -1,
	    "t:1: domains: empty list\n", "domains", NULL, 0 },
};

static int
run_parse(struct conf *c, const char *text, size_t len, struct buf *errs)
{
	struct diag	 d = { collect, errs, 0 };

	return conf_parse(c, keys, NKEYS, "t", text, len, &d);
}

static void
run_case(const struct conf_case *tc)
{
	struct conf	 c;
	struct buf	 errs;
	const char	*t;
	char		 what[160];
	int		 rc;

	buf_init(&errs, 0);
	rc = run_parse(&c, tc->text, tc->len, &errs);
	(void)snprintf(what, sizeof(what), "%s: result", tc->what);
	CHECK(rc == tc->rc, what);
	(void)snprintf(what, sizeof(what), "%s: messages", tc->what);
	CHECK_STR(buf_cstr(&errs), tc->errors, what);
	if (strcmp(buf_cstr(&errs), tc->errors) != 0)
		printf("# got \"%s\"\n", buf_cstr(&errs));
	if (tc->key != NULL) {
		t = conf_str(&c, tc->key);
		(void)snprintf(what, sizeof(what), "%s: %s", tc->what,
		    tc->key);
		if (tc->text_want == NULL)
			CHECK(t == NULL, what);
		else
			CHECK(t != NULL && strcmp(t, tc->text_want) == 0 &&
			    conf_int(&c, tc->key) == tc->num_want, what);
	}
	conf_free(&c);
	buf_free(&errs);
}

static void
test_values(void)
{
	struct conf	 c;
	struct buf	 errs;
	char * const	*l;
	size_t		 n;
	static const char text[] =
	    "domains alpha.test, beta.test,gamma.test\tdelta.test\n"
	    "milter inet:127.0.0.1:8891 timeout=5s\n"
	    "hostname mx\n"
	    "milter unix:/run/m.sock\n";

	buf_init(&errs, 0);
	CHECK(run_parse(&c, text, sizeof(text) - 1, &errs) == 0,
	    "values: parse");
	l = conf_list(&c, "domains", &n);
	CHECK(n == 4 && strcmp(l[0], "alpha.test") == 0 &&
	    strcmp(l[1], "beta.test") == 0 && strcmp(l[2], "gamma.test") == 0 &&
	    strcmp(l[3], "delta.test") == 0 && l[4] == NULL,
	    "list: split on commas and blanks, NULL-ended");
	l = conf_list(&c, "milter", &n);
	CHECK(n == 2 && strcmp(l[0], "inet:127.0.0.1:8891 timeout=5s") == 0 &&
	    strcmp(l[1], "unix:/run/m.sock") == 0 && l[2] == NULL,
	    "multi: every line kept in order");
	CHECK(conf_get(&c, "milter") != NULL &&
	    conf_get(&c, "milter")->lineno == 4, "multi: last line number");
	CHECK(conf_isset(&c, "hostname") && !conf_isset(&c, "port"),
	    "isset: file versus default");
	CHECK(conf_get(&c, "port") != NULL &&
	    conf_get(&c, "port")->lineno == 0, "default has line 0");
	CHECK(conf_int(&c, "port") == 25, "int default");
	CHECK(conf_bool(&c, "log_debug") == 0, "bool default");
	l = conf_list(&c, "nonexistent", &n);
	CHECK(l != NULL && l[0] == NULL && n == 0,
	    "list of an unknown key: empty, never NULL");
	CHECK(conf_get(&c, "nonexistent") == NULL, "unknown key: NULL");
	CHECK(conf_get(&c, "retry") == NULL && conf_int(&c, "retry") == 0,
	    "unset key without default: NULL");
	l = conf_list(&c, "hostname", &n);
	CHECK(l != NULL && l[0] == NULL && n == 0,
	    "list of a string key: empty");
	conf_free(&c);
	conf_free(&c);
	CHECK(c.values == NULL, "conf_free twice is safe");
	buf_free(&errs);
}

static const struct conf_key unsorted[] = {
	{ "b", CONF_STR, NULL, 0, 0 },
	{ "a", CONF_STR, NULL, 0, 0 },
};

static const struct conf_key dupkeys[] = {
	{ "a", CONF_STR, NULL, 0, 0 },
	{ "a", CONF_INT, NULL, 0, 0 },
};

static const struct conf_key baddef[] = {
	{ "n", CONF_INT, "12x", 0, 0 },
	{ "s", CONF_SIZE, "5G", 0, 1024 },
};

static const struct conf_key multidef[] = {
	{ "m", CONF_MULTI, "first", 0, 0 },
};

static void
test_tables(void)
{
	struct conf	 c;
	struct buf	 errs;
	struct diag	 d = { collect, NULL, 0 };
	char * const	*l;
	size_t		 n;

	buf_init(&errs, 0);
	d.ctx = &errs;
	CHECK(conf_parse(&c, unsorted, 2, "t", S(""), &d) == -1 &&
	    strcmp(buf_cstr(&errs), "t: key table not sorted at \"a\"\n") == 0,
	    "unsorted table is refused");
	conf_free(&c);
	buf_reset(&errs);
	CHECK(conf_parse(&c, dupkeys, 2, "t", S(""), &d) == -1,
	    "table with a repeated key is refused");
	conf_free(&c);
	buf_reset(&errs);
	CHECK(conf_parse(&c, baddef, 2, "t", S(""), &d) == -1 &&
	    strcmp(buf_cstr(&errs), "t: n: bad default: invalid number\n"
	    "t: s: bad default: too large (maximum 1024)\n") == 0,
	    "bad defaults are reported");
	conf_free(&c);
	buf_reset(&errs);

	CHECK(conf_parse(&c, multidef, 1, "t", S(""), &d) == 0,
	    "multi default");
	l = conf_list(&c, "m", &n);
	CHECK(n == 1 && strcmp(l[0], "first") == 0, "multi default kept");
	conf_free(&c);
	CHECK(conf_parse(&c, multidef, 1, "t", S("m x\nm y\n"), &d) == 0,
	    "multi replaced");
	l = conf_list(&c, "m", &n);
	CHECK(n == 2 && strcmp(l[0], "x") == 0 && strcmp(l[1], "y") == 0,
	    "the file replaces a multi default, not appends to it");
	conf_free(&c);

	/* No callback: problems are only counted. */
	d.fn = NULL;
	d.count = 0;
	CHECK(conf_parse(&c, keys, NKEYS, "t", S("a\nb\nport x\n"), &d) ==
	    -1 && d.count == 3, "diag without a callback counts");
	conf_free(&c);
	buf_free(&errs);
}

static void
test_long_lines(void)
{
	struct conf	 c;
	struct buf	 text, errs;
	size_t		 i;

	buf_init(&text, 0);
	buf_init(&errs, 0);
	/* "hostname " + 4087 bytes: exactly 4096. */
	(void)buf_puts(&text, "hostname ");
	for (i = 0; i < 4087; i++)
		(void)buf_putc(&text, 'a');
	(void)buf_puts(&text, "\n");
	CHECK(run_parse(&c, text.data, text.len, &errs) == 0 &&
	    conf_str(&c, "hostname") != NULL &&
	    strlen(conf_str(&c, "hostname")) == 4087,
	    "line of exactly 4096 bytes");
	conf_free(&c);

	buf_reset(&text);
	buf_reset(&errs);
	(void)buf_puts(&text, "hostname ");
	for (i = 0; i < 4087; i++)
		(void)buf_putc(&text, 'a');
	(void)buf_puts(&text, "\r\nport 2\n");
	CHECK(run_parse(&c, text.data, text.len, &errs) == 0,
	    "4096 bytes plus CRLF is still fine");
	conf_free(&c);
	buf_reset(&text);
	buf_reset(&errs);
	(void)buf_puts(&text, "hostname ");
	for (i = 0; i < 4088; i++)
		(void)buf_putc(&text, 'a');
	CHECK(run_parse(&c, text.data, text.len, &errs) == -1 &&
	    strcmp(buf_cstr(&errs), "t:1: line too long (limit 4096 bytes)\n")
	    == 0, "4097 bytes without a newline is too long");
	conf_free(&c);

	buf_reset(&text);
	buf_reset(&errs);
	(void)buf_puts(&text, "port 1\nhostname ");
	for (i = 0; i < 100000; i++)
		(void)buf_putc(&text, 'a');
	(void)buf_puts(&text, "\nport 2\nbogus");
	CHECK(run_parse(&c, text.data, text.len, &errs) == -1,
	    "overlong line fails the load");
	CHECK_STR(buf_cstr(&errs),
	    "t:2: line too long (limit 4096 bytes)\n"
	    "t:3: port: given again (first on line 1)\n"
	    "t:4: unknown key \"bogus\"\n",
	    "overlong line: reported, and later lines still checked");
	conf_free(&c);

	/* An unknown key is quoted shortened, not in full. */
	buf_reset(&text);
	buf_reset(&errs);
	for (i = 0; i < 200; i++)
		(void)buf_putc(&text, 'k');
	CHECK(run_parse(&c, text.data, text.len, &errs) == -1 &&
	    errs.len < 100, "a long unknown key is shortened in the message");
	conf_free(&c);
	buf_free(&text);
	buf_free(&errs);
}

static void
test_load(void)
{
	char		 dir[] = "/tmp/virtmail-conf-XXXXXX";
	char		 path[256], big[256], missing[256], want[512];
	struct conf	 c;
	struct buf	 errs, data;
	struct diag	 d = { collect, NULL, 0 };
	size_t		 i;

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp");
		return;
	}
	buf_init(&errs, 0);
	d.ctx = &errs;
	(void)snprintf(path, sizeof(path), "%s/virtmail.conf", dir);
	(void)snprintf(big, sizeof(big), "%s/big.conf", dir);
	(void)snprintf(missing, sizeof(missing), "%s/missing.conf", dir);

	CHECK(conf_load(&c, keys, NKEYS, missing, 1, &d) == 0 &&
	    conf_int(&c, "port") == 25 && errs.len == 0,
	    "load: missing file is fine when allowed; defaults apply");
	conf_free(&c);
	CHECK(conf_load(&c, keys, NKEYS, missing, 0, &d) == -1,
	    "load: missing file is an error otherwise");
	(void)snprintf(want, sizeof(want),
	    "%s: cannot open: No such file or directory\n", missing);
	CHECK_STR(buf_cstr(&errs), want, "load: the message names the file");
	conf_free(&c);
	buf_reset(&errs);

	CHECK(file_write_atomic(path, S("port 2525\nbogus x\n"), 0600) == 0,
	    "load: write the file");
	CHECK(conf_load(&c, keys, NKEYS, path, 0, &d) == -1 &&
	    conf_int(&c, "port") == 2525, "load: parse the file");
	(void)snprintf(want, sizeof(want), "%s:2: unknown key \"bogus\"\n",
	    path);
	CHECK_STR(buf_cstr(&errs), want, "load: file:line: message");
	conf_free(&c);
	buf_reset(&errs);

	CHECK(conf_load(&c, keys, NKEYS, dir, 1, &d) == -1 && errs.len > 0,
	    "load: a directory is an error even when missing_ok");
	conf_free(&c);
	buf_reset(&errs);

	/* Comments only, but past the 1 MiB file limit. */
	buf_init(&data, 0);
	for (i = 0; i < 20000; i++)
		(void)buf_puts(&data, "# a comment line of sixty bytes, "
		    "give or take a few..\n");
	CHECK(file_write_atomic(big, data.data, data.len, 0600) == 0,
	    "load: write a big file");
	CHECK(conf_load(&c, keys, NKEYS, big, 0, &d) == -1,
	    "load: a file over 1 MiB is refused");
	(void)snprintf(want, sizeof(want), "%s: file too large: ", big);
	CHECK(strncmp(buf_cstr(&errs), want, strlen(want)) == 0,
	    "load: and says why");
	conf_free(&c);
	buf_free(&data);
	buf_free(&errs);

	(void)unlink(path);
	(void)unlink(big);
	CHECK(rmdir(dir) == 0, "load: temp files cleaned up");
}

static const struct {
	const char	*in;
	int		 ok;
	uint64_t	 want;
} size_cases[] = {
	{ "0", 1, 0 },
	{ "1k", 1, 1024 },
	{ "1K", 1, 1024 },
	{ "3m", 1, 3 * 1048576 },
	{ "2g", 1, 2ULL << 30 },
	{ "1T", 1, 1ULL << 40 },
	{ "18446744073709551615", 1, UINT64_MAX },
	{ "18446744073709551616", 0, 0 },
	{ "17179869184G", 0, 0 },
	{ "", 0, 0 },
	{ "+1", 0, 0 },
	{ " 1", 0, 0 },
	{ "1kk", 0, 0 },
	{ "1.5M", 0, 0 },
	{ "1kB", 0, 0 },
};

static const struct {
	const char	*in;
	int		 ok;
	uint64_t	 want;
} duration_cases[] = {
	{ "0", 1, 0 },
	{ "30s", 1, 30 },
	{ "1w", 1, 604800 },
	{ "18446744073709551615", 1, UINT64_MAX },
	{ "18446744073709551615s", 1, UINT64_MAX },
	{ "18446744073709551615m", 0, 0 },
	{ "s", 0, 0 },
	{ "-5s", 0, 0 },
	{ "5 s", 0, 0 },
	{ "5y", 0, 0 },
	{ "", 0, 0 },
};

static void
test_value_parsers(void)
{
	const char	*err;
	uint64_t	 v;
	char		 what[128];
	size_t		 i;
	int		 r, b;

	for (i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		v = 12345;
		err = NULL;
		r = conf_parse_size(size_cases[i].in, &v, &err);
		(void)snprintf(what, sizeof(what), "conf_parse_size \"%s\"",
		    size_cases[i].in);
		if (size_cases[i].ok)
			CHECK(r == 0 && v == size_cases[i].want, what);
		else
			CHECK(r == -1 && err != NULL, what);
	}
	for (i = 0; i < sizeof(duration_cases) / sizeof(duration_cases[0]);
	    i++) {
		v = 12345;
		err = NULL;
		r = conf_parse_duration(duration_cases[i].in, &v, &err);
		(void)snprintf(what, sizeof(what),
		    "conf_parse_duration \"%s\"", duration_cases[i].in);
		if (duration_cases[i].ok)
			CHECK(r == 0 && v == duration_cases[i].want, what);
		else
			CHECK(r == -1 && err != NULL, what);
	}
	CHECK(conf_parse_bool("Yes", &b, &err) == 0 && b == 1, "bool Yes");
	CHECK(conf_parse_bool("FALSE", &b, &err) == 0 && b == 0, "bool FALSE");
	CHECK(conf_parse_bool("", &b, &err) == -1, "bool empty");
	CHECK(conf_parse_bool("yess", &b, &err) == -1, "bool yess");
	CHECK(conf_parse_bool("2", &b, &err) == -1, "bool 2");
}

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_values();
	test_tables();
	test_long_lines();
	test_load();
	test_value_parsers();
	return test_done();
}
