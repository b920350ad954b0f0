/*
 * test_smtp_session.c — the SMTP engine driven with byte strings, no
 * sockets: a table of conversations and the reply codes they must get,
 * each fed whole (pipelining) and one byte at a time; smuggling, NUL,
 * overlong lines, SIZE, limits; what lands in the queue.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "log.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "test.h"

static char			 qdir[256];
static char			 passwd_path[300], aliases_path[300];
static struct smtpd_domain	 sd;
static struct smtp_userdb	 udb;
static char			*local_domains[] = { "alpha.test", NULL };
static struct netmask		 relay_net;

/* Everything the engine answered, and the codes of final reply lines. */
struct result {
	struct buf	 out;
	char		 codes[1024];
	int		 closed;
};

static void
write_file(const char *path, const char *text)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	if (fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static size_t
count_dir(const char *sub)
{
	char		 path[512];
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0;

	(void)snprintf(path, sizeof(path), "%s/%s", qdir, sub);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The body of the only message in msg/ (the newest when several). */
static char *
last_message(void)
{
	static char	 text[65536];
	char		 path[512], best[512] = "";
	struct stat	 st;
	time_t		 bt = 0;
	DIR		*d;
	struct dirent	*de;
	int		 fd;
	ssize_t		 n;

	(void)snprintf(path, sizeof(path), "%s/msg", qdir);
	if ((d = opendir(path)) == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/msg/%s", qdir,
		    de->d_name) >= sizeof(path))
			continue;
		if (stat(path, &st) == 0 && st.st_mtime >= bt) {
			bt = st.st_mtime;
			(void)snprintf(best, sizeof(best), "%s", path);
		}
	}
	closedir(d);
	if (best[0] == '\0' || (fd = open(best, O_RDONLY)) == -1)
		return NULL;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	text[n] = '\0';
	return text;
}

static void
clear_queue(void)
{
	static const char *subs[] = { "msg", "env", "tmp" };
	char		 path[512];
	DIR		*d;
	struct dirent	*de;
	size_t		 i;

	for (i = 0; i < 3; i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", qdir, subs[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s",
			    qdir, subs[i], de->d_name) < sizeof(path))
				(void)unlink(path);
		}
		closedir(d);
	}
}

static void
collect_codes(struct result *r)
{
	const char	*p = buf_cstr(&r->out), *nl;
	size_t		 o = 0;

	r->codes[0] = '\0';
	while (*p != '\0' && (nl = strstr(p, "\r\n")) != NULL) {
		/* Only the last line of a multi-line reply ("250 "). */
		if (nl - p >= 4 && p[3] == ' ' && o + 5 < sizeof(r->codes)) {
			if (o > 0)
				r->codes[o++] = ' ';
			memcpy(r->codes + o, p, 3);
			o += 3;
			r->codes[o] = '\0';
		}
		p = nl + 2;
	}
}

/*
 * Run one conversation from peer ip; step 0 feeds everything at once,
 * else step bytes at a time.  eof: the peer closes after the input.
 */
static void
converse(struct result *r, const char *input, size_t len, size_t step,
    const char *ip, int eof)
{
	struct smtp_session	 s;
	struct sockaddr_in	 sin;
	struct buf		 in;
	enum smtp_action	 act = SMTP_ACT_CONTINUE;
	size_t			 off = 0, n;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	(void)inet_pton(AF_INET, ip, &sin.sin_addr);
	buf_init(&r->out, 0);
	buf_init(&in, 0);
	r->closed = 0;
	smtp_session_init(&s, &sd, &udb, LISTEN_SMTP,
	    (struct sockaddr *)&sin, sizeof(sin), &r->out);
	s.queue_dir = qdir;
	smtp_session_greet(&s);
	while (off < len && act != SMTP_ACT_CLOSE) {
		n = step == 0 || len - off < step ? len - off : step;
		(void)buf_append(&in, input + off, n);
		off += n;
		for (;;) {
			act = smtp_session_input(&s, &in);
			if (act != SMTP_ACT_COMMIT)
				break;
			smtp_session_commit(&s);
		}
	}
	if (act == SMTP_ACT_CLOSE)
		r->closed = 1;
	else if (eof)
		smtp_session_eof(&s);
	smtp_session_free(&s);
	buf_free(&in);
	collect_codes(r);
}

struct conv {
	const char	*name;
	const char	*input;
	const char	*codes;		/* expected final reply codes */
	size_t		 queued;	/* messages committed */
	const char	*ip;		/* NULL: 192.0.2.50, no relay */
};

#define HELLO		"EHLO client.example\r\n"
#define FROM		"MAIL FROM:<sender@example.org>\r\n"
#define TO_BOB		"RCPT TO:<bob@alpha.test>\r\n"
#define ENVELOPE	HELLO FROM TO_BOB "DATA\r\n"

static const struct conv convs[] = {
	{ "simple message, pipelined",
	  ENVELOPE "Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 250 221", 1, NULL },
	{ "HELO, two messages in one session",
	  "HELO c\r\n" FROM TO_BOB "DATA\r\nx\r\n.\r\n"
	  FROM TO_BOB "DATA\r\ny\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 250 250 250 354 250 221", 2, NULL },
	{ "commands before EHLO",
	  FROM TO_BOB "DATA\r\nQUIT\r\n", "220 503 503 503 221", 0, NULL },
	{ "RCPT and DATA before MAIL",
	  HELLO TO_BOB "DATA\r\n", "220 250 503 503", 0, NULL },
	{ "nested MAIL", HELLO FROM FROM, "220 250 250 503", 0, NULL },
	{ "DATA without recipients", HELLO FROM "DATA\r\n",
	  "220 250 250 554", 0, NULL },
	{ "refused DATA: the body is read as commands",
	  HELLO FROM "RCPT TO:<nobody@alpha.test>\r\nDATA\r\n"
	  "NOOP\r\n.\r\n", "220 250 250 550 554 250 500", 0, NULL },
	{ "unknown command", HELLO "FOO bar\r\n", "220 250 500", 0, NULL },
	{ "EHLO without argument", "EHLO\r\n", "220 501", 0, NULL },
	{ "MAIL syntax", HELLO "MAIL FROM:bob\r\nMAIL TO:<a@b>\r\n",
	  "220 250 501 501", 0, NULL },
	{ "bad address", HELLO "MAIL FROM:<a b@c>\r\n", "220 250 501", 0,
	  NULL },
	{ "RSET NOOP VRFY HELP EXPN",
	  HELLO FROM "RSET\r\nNOOP x\r\nVRFY bob\r\nHELP\r\nEXPN x\r\n"
	  "RCPT TO:<bob@alpha.test>\r\n",
	  "220 250 250 250 250 252 214 502 503", 0, NULL },
	{ "RSET with argument", HELLO "RSET x\r\n", "220 250 501", 0, NULL },
	{ "unknown user", HELLO FROM "RCPT TO:<carol@alpha.test>\r\n",
	  "220 250 250 550", 0, NULL },
	{ "user lookup is case-insensitive",
	  HELLO FROM "RCPT TO:<BoB@Alpha.Test>\r\n", "220 250 250 250", 0,
	  NULL },
	{ "alias", HELLO FROM "RCPT TO:<Info@alpha.test>\r\n",
	  "220 250 250 250", 0, NULL },
	{ "postmaster, with and without domain",
	  HELLO FROM "RCPT TO:<postmaster@alpha.test>\r\n"
	  "RCPT TO:<Postmaster>\r\nRCPT TO:<bob>\r\n",
	  "220 250 250 250 250 501", 0, NULL },
	{ "path traversal in local part",
	  HELLO FROM "RCPT TO:<\"../bob\"@alpha.test>\r\n"
	  "RCPT TO:<../bob@alpha.test>\r\n", "220 250 250 550 501",
	  0, NULL },
	{ "sibling domain is relay", HELLO FROM "RCPT TO:<bob@beta.test>\r\n",
	  "220 250 250 554", 0, NULL },
	{ "relay_from client may relay",
	  HELLO FROM "RCPT TO:<bob@beta.test>\r\nDATA\r\nx\r\n.\r\n",
	  "220 250 250 250 354 250", 1, "192.0.2.99" },
	{ "recipient limit",
	  HELLO FROM TO_BOB "RCPT TO:<alice@alpha.test>\r\n"
	  "RCPT TO:<info@alpha.test>\r\nRCPT TO:<postmaster@alpha.test>\r\n",
	  "220 250 250 250 250 250 452", 0, NULL },
	{ "error limit",
	  "FOO\r\nFOO\r\nFOO\r\nFOO\r\nFOO\r\nFOO\r\nNOOP\r\nNOOP\r\n",
	  "220 500 500 500 500 500 500 421", 0, NULL },
	{ "SIZE within the limit", HELLO "MAIL FROM:<a@b.c> SIZE=100\r\n",
	  "220 250 250", 0, NULL },
	{ "SIZE over the limit", HELLO "MAIL FROM:<a@b.c> SIZE=20000\r\n",
	  "220 250 552", 0, NULL },
	{ "SIZE malformed", HELLO "MAIL FROM:<a@b.c> SIZE=1x\r\n",
	  "220 250 555", 0, NULL },
	{ "unknown MAIL parameter", HELLO "MAIL FROM:<a@b.c> FOO=1\r\n",
	  "220 250 555", 0, NULL },
	{ "BODY=8BITMIME", HELLO "MAIL FROM:<a@b.c> BODY=8BITMIME\r\n",
	  "220 250 250", 0, NULL },
	{ "UTF-8 sender needs SMTPUTF8",
	  HELLO "MAIL FROM:<j\xc3\xb6rg@b.c>\r\n"
	  "MAIL FROM:<j\xc3\xb6rg@b.c> SMTPUTF8\r\n", "220 250 553 250", 0,
	  NULL },
	{ "bare LF ends commands (tolerated)", "NOOP\nEHLO x\n",
	  "220 250 250", 0, NULL },
	{ "control character in command", "NOOP\x01\r\n", "220 500", 0,
	  NULL },
	{ "smuggling <LF>.<LF>",
	  ENVELOPE "a\r\n\n.\n" FROM TO_BOB "DATA\r\nevil\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 550 221", 0, NULL },
	{ "smuggling <CR>.<CR>",
	  ENVELOPE "a\r\n\r.\r" FROM TO_BOB "DATA\r\nevil\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 550 221", 0, NULL },
	{ "smuggling <CRLF>.<LF>",
	  ENVELOPE "a\r\n.\n" FROM TO_BOB "DATA\r\nevil\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 550 221", 0, NULL },
	{ "smuggling <LF>.<CRLF>",
	  ENVELOPE "a\n.\r\n" FROM TO_BOB "DATA\r\nevil\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 550 221", 0, NULL },
	{ "smuggling <CRLF>.<CR>",
	  ENVELOPE "a\r\n.\r" FROM TO_BOB "DATA\r\nevil\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 550 221", 0, NULL },
	{ "smuggling <CR><CRLF>.<CRLF>: bare CR, one message refused",
	  ENVELOPE "a\r\r\n.\r\nQUIT\r\n", "220 250 250 250 354 550 221", 0,
	  NULL },
	{ "NUL in data", ENVELOPE "a\0b\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 550 221", 0, NULL },
	{ "dot-stuffed lines do not end data",
	  ENVELOPE "..\r\n. \r\n.x\r\n.\r\n", "220 250 250 250 354 250", 1,
	  NULL },
	{ "only the real end ends data",
	  ENVELOPE "x\r\n.\r\r\n.\r\n", "220 250 250 250 354 550", 0, NULL },
	{ "EOF in the middle of data", ENVELOPE "partial\r\n",
	  "220 250 250 250 354", 0, NULL },
};

static void
test_conversations(void)
{
	static const size_t steps[] = { 0, 1, 7 };
	struct result	 r;
	const struct conv *c;
	size_t		 i, j, before, len;
	char		 what[512];

	for (i = 0; i < sizeof(convs) / sizeof(convs[0]); i++) {
		c = &convs[i];
		/* The input with a NUL: its length from the literal. */
		len = strlen(c->input);
		if (strcmp(c->name, "NUL in data") == 0)
			len = sizeof(ENVELOPE "a\0b\r\n.\r\nQUIT\r\n") - 1;
		for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
			before = count_dir("env");
			converse(&r, c->input, len, steps[j],
			    c->ip ? c->ip : "192.0.2.50", 1);
			(void)snprintf(what, sizeof(what),
			    "%s (step %zu): codes %s", c->name, steps[j],
			    c->codes);
			CHECK(strcmp(r.codes, c->codes) == 0, what);
			if (strcmp(r.codes, c->codes) != 0)
				printf("# got: %s\n# %s", r.codes,
				    buf_cstr(&r.out));
			(void)snprintf(what, sizeof(what),
			    "%s (step %zu): %zu queued", c->name, steps[j],
			    c->queued);
			CHECK(count_dir("env") - before == c->queued, what);
			(void)snprintf(what, sizeof(what),
			    "%s (step %zu): nothing left in tmp/", c->name,
			    steps[j]);
			CHECK(count_dir("tmp") == 0, what);
			buf_free(&r.out);
		}
	}
}

static void
test_ehlo(void)
{
	struct result	 r;
	const char	*o;

	converse(&r, "EHLO x\r\n", 8, 0, "192.0.2.50", 0);
	o = buf_cstr(&r.out);
	CHECK(strncmp(o, "220 mx.alpha.test ESMTP\r\n", 25) == 0,
	    "greeting names the domain's hostname");
	CHECK(strstr(o, "250-mx.alpha.test\r\n") != NULL, "EHLO hostname");
	CHECK(strstr(o, "250-PIPELINING\r\n") != NULL, "EHLO PIPELINING");
	CHECK(strstr(o, "250-SIZE 10000\r\n") != NULL, "EHLO SIZE limit");
	CHECK(strstr(o, "250-8BITMIME\r\n") != NULL, "EHLO 8BITMIME");
	CHECK(strstr(o, "250-ENHANCEDSTATUSCODES\r\n") != NULL,
	    "EHLO ENHANCEDSTATUSCODES");
	CHECK(strstr(o, "250 SMTPUTF8\r\n") != NULL, "EHLO SMTPUTF8 last");
	CHECK(strstr(o, "STARTTLS") == NULL, "no STARTTLS without TLS");
	buf_free(&r.out);

	converse(&r, "FOO\r\n", 5, 0, "192.0.2.50", 0);
	CHECK(strstr(buf_cstr(&r.out), "500 5.5.2 ") != NULL,
	    "enhanced status code on 500");
	buf_free(&r.out);
}

static void
test_content(void)
{
	struct result	 r;
	const char	*in, *m;

	clear_queue();
	in = ENVELOPE "Subject: dots\r\n\r\n..leading\r\n.\r\n";
	converse(&r, in, strlen(in), 0, "192.0.2.50", 0);
	CHECK(strstr(buf_cstr(&r.out), "250 2.0.0 Ok: queued as ") != NULL,
	    "250 2.0.0 Ok: queued as ID");
	buf_free(&r.out);
	m = last_message();
	CHECK(m != NULL, "message file exists");
	if (m == NULL)
		return;
	CHECK(strncmp(m, "Received: from client.example (unknown "
	    "[192.0.2.50])\n\tby mx.alpha.test (virtmail) with ESMTP id ",
	    96) == 0, "Received: line first");
	CHECK(strstr(m, "\n\tfor <bob@alpha.test>;\n\t") != NULL,
	    "Received: for <rcpt> with one recipient");
	CHECK(strstr(m, "\nSubject: dots\n\n.leading\n") != NULL,
	    "LF line ends, dot-unstuffed");
	CHECK(strchr(m, '\r') == NULL, "no CR in the queue file");

	clear_queue();
	in = HELLO FROM TO_BOB "RCPT TO:<alice@alpha.test>\r\n"
	    "DATA\r\nx\r\n.\r\n";
	converse(&r, in, strlen(in), 0, "192.0.2.50", 0);
	buf_free(&r.out);
	m = last_message();
	CHECK(m != NULL && strstr(m, "\tfor <") == NULL,
	    "no for <rcpt> with two recipients");
}

static void
test_big(void)
{
	struct result	 r;
	struct buf	 in;
	size_t		 i, before;

	/* A command line over line_max, then the stream is in step. */
	buf_init(&in, 0);
	(void)buf_puts(&in, "NOOP ");
	for (i = 0; i < 600; i++)
		(void)buf_putc(&in, 'x');
	(void)buf_puts(&in, "\r\nNOOP\r\n");
	converse(&r, in.data, in.len, 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 500 250") == 0, "overlong command: 500");
	CHECK(strstr(buf_cstr(&r.out), "500 5.5.2 Line too long") != NULL,
	    "overlong command: text");
	buf_free(&r.out);
	buf_free(&in);

	/* A text line over text_line_max: refused at the end. */
	buf_init(&in, 0);
	(void)buf_puts(&in, ENVELOPE);
	for (i = 0; i < 1200; i++)
		(void)buf_putc(&in, 'y');
	(void)buf_puts(&in, "\r\n.\r\nNOOP\r\n");
	before = count_dir("env");
	converse(&r, in.data, in.len, 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 250 354 550 250") == 0,
	    "overlong text line: 550 at end of data");
	CHECK(count_dir("env") == before, "overlong text line: not queued");
	buf_free(&r.out);
	buf_free(&in);

	/* A single huge line with no CRLF stays bounded and is refused. */
	buf_init(&in, 0);
	(void)buf_puts(&in, ENVELOPE);
	for (i = 0; i < 30000; i++)
		(void)buf_putc(&in, 'z');
	(void)buf_puts(&in, "\r\n.\r\n");
	converse(&r, in.data, in.len, 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 250 354 550") == 0,
	    "huge line without CRLF: refused");
	buf_free(&r.out);
	buf_free(&in);

	/* Over message_size_max in DATA (lines of 100 bytes). */
	buf_init(&in, 0);
	(void)buf_puts(&in, ENVELOPE);
	for (i = 0; i < 150; i++)
		(void)buf_puts(&in, "0123456789012345678901234567890123456789"
		    "01234567890123456789012345678901234567890123456789"
		    "01234567\r\n");
	(void)buf_puts(&in, ".\r\n");
	before = count_dir("env");
	converse(&r, in.data, in.len, 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 250 354 552") == 0,
	    "message over the size limit: 552");
	CHECK(strstr(buf_cstr(&r.out), "552 5.3.4 ") != NULL,
	    "message over the size limit: 5.3.4");
	CHECK(count_dir("env") == before, "message over the limit: not queued");
	buf_free(&r.out);
	buf_free(&in);

	/* More Received: lines than the limit: a loop. */
	buf_init(&in, 0);
	(void)buf_puts(&in, ENVELOPE);
	for (i = 0; i < 51; i++)
		(void)buf_puts(&in, "Received: from x by y; now\r\n");
	(void)buf_puts(&in, "\r\nbody\r\n.\r\n");
	sd.limits.message_size_max = 100000;
	converse(&r, in.data, in.len, 0, "192.0.2.50", 0);
	CHECK(strstr(buf_cstr(&r.out), "554 5.4.6 ") != NULL,
	    "51 Received: lines: 554 5.4.6");
	buf_free(&r.out);
	buf_free(&in);

	/* 50 are fine, and Received: in the body does not count. */
	buf_init(&in, 0);
	(void)buf_puts(&in, ENVELOPE);
	for (i = 0; i < 50; i++)
		(void)buf_puts(&in, "Received: from x by y; now\r\n");
	(void)buf_puts(&in, "\r\n");
	for (i = 0; i < 10; i++)
		(void)buf_puts(&in, "Received: in the body\r\n");
	(void)buf_puts(&in, ".\r\n");
	converse(&r, in.data, in.len, 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 250 354 250") == 0,
	    "50 Received: lines accepted");
	buf_free(&r.out);
	buf_free(&in);
	sd.limits.message_size_max = 10000;
}

static void
test_userdb_reload(void)
{
	struct result	 r;
	const char	*in = HELLO FROM "RCPT TO:<dave@alpha.test>\r\n";

	converse(&r, in, strlen(in), 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 550") == 0, "dave unknown");
	buf_free(&r.out);
	/* A different size makes the change visible within one second. */
	write_file(passwd_path,
	    "bob:x:2001:2001::/home/bob:/bin/sh\n"
	    "alice:x:2002:2002::/home/alice:/bin/sh\n"
	    "dave:x:2003:2003::/home/dave:/bin/sh\n");
	converse(&r, in, strlen(in), 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 250") == 0,
	    "passwd re-read when changed");
	buf_free(&r.out);

	(void)unlink(passwd_path);
	converse(&r, in, strlen(in), 0, "192.0.2.50", 0);
	CHECK(strcmp(r.codes, "220 250 250 451") == 0,
	    "missing passwd: 451 4.3.0");
	buf_free(&r.out);
	write_file(passwd_path,
	    "bob:x:2001:2001::/home/bob:/bin/sh\n"
	    "alice:x:2002:2002::/home/alice:/bin/sh\n");
}

static void
test_queue_failure(void)
{
	struct result	 r;
	const char	*in = ENVELOPE "x\r\n.\r\n";
	char		 saved[256];

	(void)snprintf(saved, sizeof(saved), "%s", qdir);
	if ((size_t)snprintf(qdir, sizeof(qdir), "%s/nonexistent", saved) >=
	    sizeof(qdir))
		return;
	converse(&r, in, strlen(in), 0, "192.0.2.50", 0);
	CHECK(strstr(buf_cstr(&r.out), "451 4.3.0 ") != NULL,
	    "queue unavailable: 451 4.3.0 at DATA");
	CHECK(strstr(buf_cstr(&r.out), "250 2.0.0 Ok: queued") == NULL,
	    "queue unavailable: never 250");
	buf_free(&r.out);
	(void)snprintf(qdir, sizeof(qdir), "%s", saved);
}

/* The message a "250 ... queued as ID" reply names. */
static char *
queued_message(const char *reply)
{
	static char	 text[65536];
	const char	*p = strstr(reply, "queued as ");
	char		 path[512];
	ssize_t		 n;
	int		 fd;

	if (p == NULL)
		return NULL;
	(void)snprintf(path, sizeof(path), "%s/msg/%.16s", qdir, p + 10);
	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	n = read(fd, text, sizeof(text) - 1);
	(void)close(fd);
	if (n < 0)
		return NULL;
	text[n] = '\0';
	return text;
}

/* Fake hooks: every question waits; the test answers by hand. */
static int	 hook_asks[SMTP_ASK_EOM + 1];
static int	 hook_aborts;

static int
hook_ask(void *arg, struct smtp_session *s, enum smtp_ask what,
    const char *data, size_t len)
{
	(void)arg;
	(void)s;
	(void)data;
	(void)len;
	hook_asks[what]++;
	return 1;
}

static void
hook_abort(void *arg, struct smtp_session *s)
{
	(void)arg;
	(void)s;
	hook_aborts++;
}

/* Resume with v until the session stops asking; the last action. */
static enum smtp_action
answer_all(struct smtp_session *s, struct buf *in, enum smtp_verdict v)
{
	struct smtp_answer	 a;
	enum smtp_action	 act;
	int			 n = 0;

	memset(&a, 0, sizeof(a));
	a.v = v;
	act = smtp_session_input(s, in);
	while (act == SMTP_ACT_WAIT && n++ < 100) {
		smtp_session_resume(s, &a);
		act = smtp_session_input(s, in);
	}
	return act;
}

static void
test_suspension(void)
{
	struct smtp_hooks	 h = { hook_ask, hook_abort, NULL, 1 };
	struct smtp_session	 s;
	struct smtp_answer	 a;
	struct buf		 in, out;
	enum smtp_action	 act;
	const char		*m;

	memset(hook_asks, 0, sizeof(hook_asks));
	buf_init(&in, 0);
	buf_init(&out, 0);
	smtp_session_init(&s, &sd, &udb, LISTEN_SMTP, NULL, 0, &out);
	s.queue_dir = qdir;
	s.hooks = &h;
	smtp_session_greet(&s);
	CHECK(out.len == 0 && hook_asks[SMTP_ASK_CONNECT] == 1,
	    "suspend: no greeting before the connect answer");
	CHECK(smtp_session_input(&s, &in) == SMTP_ACT_WAIT,
	    "suspend: input waits");
	memset(&a, 0, sizeof(a));
	smtp_session_resume(&s, &a);
	CHECK(strncmp(buf_cstr(&out), "220 ", 4) == 0,
	    "suspend: greeting after continue");
	buf_reset(&out);
	(void)buf_puts(&in, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<bob@alpha.test>\r\n");
	act = smtp_session_input(&s, &in);
	CHECK(act == SMTP_ACT_WAIT && out.len == 0 && in.len > 0,
	    "suspend: EHLO waits, pipelined commands stay unread");
	act = answer_all(&s, &in, SMTP_V_CONTINUE);
	CHECK(act == SMTP_ACT_CONTINUE && strstr(buf_cstr(&out),
	    "250 2.1.5") != NULL, "suspend: HELO, MAIL, RCPT answered");
	CHECK(hook_asks[SMTP_ASK_MAIL] == 1 && hook_asks[SMTP_ASK_RCPT] == 1,
	    "suspend: MAIL and RCPT asked once");
	buf_reset(&out);
	(void)buf_puts(&in, "RCPT TO:<alice@alpha.test>\r\n");
	act = smtp_session_input(&s, &in);
	memset(&a, 0, sizeof(a));
	a.v = SMTP_V_REJECT;
	(void)strlcpy(a.reply, "550 5.7.1 no alice\r\n550 5.7.1 really",
	    sizeof(a.reply));
	smtp_session_resume(&s, &a);
	CHECK(strcmp(buf_cstr(&out), "550-5.7.1 no alice\r\n"
	    "550 5.7.1 really\r\n") == 0, "suspend: custom multi-line reply");
	buf_reset(&out);
	(void)buf_puts(&in, "DATA\r\nSubject: x\r\nX-A: 1\r\n\r\nbody\r\n"
	    ".\r\n");
	act = answer_all(&s, &in, SMTP_V_CONTINUE);
	CHECK(hook_asks[SMTP_ASK_DATA] == 1 && hook_asks[SMTP_ASK_HEADER] ==
	    2 && hook_asks[SMTP_ASK_EOH] == 1 && hook_asks[SMTP_ASK_BODY] ==
	    1 && hook_asks[SMTP_ASK_EOM] == 1, "suspend: every DATA step");
	CHECK(act == SMTP_ACT_COMMIT, "suspend: commit after EOM");
	smtp_session_commit(&s);
	CHECK(strstr(buf_cstr(&out), "250 2.0.0 Ok: queued") != NULL,
	    "suspend: queued");
	m = queued_message(buf_cstr(&out));
	CHECK(m != NULL && strstr(m, "Subject: x\nX-A: 1\n\nbody\n") != NULL,
	    "suspend: message stored");

	/* Modifications at EOM rewrite the file before the commit. */
	buf_reset(&out);
	(void)buf_puts(&in, "MAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<bob@alpha.test>\r\nDATA\r\nSubject: y\r\nX-Del: 1\r\n"
	    "\r\nold body\r\n.\r\n");
	act = smtp_session_input(&s, &in);
	while (act == SMTP_ACT_WAIT) {
		memset(&a, 0, sizeof(a));
		if (s.pend == SMTP_PEND_STEP && s.data_done == 3) {
			smtp_mods_add(&s.mods, SMTP_MOD_HDR_ADD, 0, "X-New",
			    "added");
			smtp_mods_add(&s.mods, SMTP_MOD_HDR_CHANGE, 1, "X-Del",
			    "");
			smtp_mods_add(&s.mods, SMTP_MOD_HDR_INSERT, 0, "X-Top",
			    "top");
			s.mods.body_set = 1;
			(void)buf_puts(&s.mods.body, "new body\n");
		}
		smtp_session_resume(&s, &a);
		act = smtp_session_input(&s, &in);
	}
	CHECK(act == SMTP_ACT_COMMIT, "mods: commit");
	buf_reset(&out);
	smtp_session_commit(&s);
	m = queued_message(buf_cstr(&out));
	CHECK(m != NULL && strstr(m, "X-Top: top\nSubject: y\nX-New: added\n"
	    "\nnew body\n") != NULL, "mods: header and body rewritten");

	/* A reject at a header is the reply at the end of data. */
	buf_reset(&out);
	hook_aborts = 0;
	(void)buf_puts(&in, "MAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<bob@alpha.test>\r\nDATA\r\nSubject: z\r\n\r\nb\r\n"
	    ".\r\n");
	act = answer_all(&s, &in, SMTP_V_CONTINUE);
	CHECK(act == SMTP_ACT_COMMIT, "reject: reached commit");
	smtp_session_commit(&s);
	(void)buf_puts(&in, "RSET\r\n");
	buf_reset(&out);
	act = answer_all(&s, &in, SMTP_V_CONTINUE);
	(void)buf_puts(&in, "MAIL FROM:<a@example.org>\r\nRSET\r\n");
	act = answer_all(&s, &in, SMTP_V_CONTINUE);
	CHECK(hook_aborts == 1, "abort: RSET after MAIL tells the filters");
	buf_reset(&out);
	(void)buf_puts(&in, "MAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<bob@alpha.test>\r\nDATA\r\nSubject: z\r\n\r\nb\r\n"
	    ".\r\n");
	act = smtp_session_input(&s, &in);
	while (act == SMTP_ACT_WAIT) {
		memset(&a, 0, sizeof(a));
		if (s.pend == SMTP_PEND_STEP && s.hdr_ready)
			a.v = SMTP_V_REJECT;
		smtp_session_resume(&s, &a);
		act = smtp_session_input(&s, &in);
	}
	CHECK(strstr(buf_cstr(&out), "550 5.7.1 Message content rejected") !=
	    NULL, "reject: 550 at the end of data");
	smtp_session_free(&s);
	buf_free(&in);
	buf_free(&out);
}

int
main(void)
{
	const char	*error;
	char		 tmpl[] = "/tmp/test_smtp_session.XXXXXX";

	log_init("test_smtp_session", 0, 0);
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	(void)snprintf(qdir, sizeof(qdir), "%s/queue", tmpl);
	if (queue_init(qdir, &error) == -1) {
		fprintf(stderr, "queue_init: %s\n", error);
		return 1;
	}
	(void)snprintf(passwd_path, sizeof(passwd_path), "%s/passwd", tmpl);
	(void)snprintf(aliases_path, sizeof(aliases_path), "%s/aliases",
	    tmpl);
	write_file(passwd_path,
	    "bob:x:2001:2001::/home/bob:/bin/sh\n"
	    "alice:x:2002:2002::/home/alice:/bin/sh\n");
	write_file(aliases_path, "info: bob\n");

	memset(&sd, 0, sizeof(sd));
	sd.name = "alpha.test";
	sd.hostname = "mx.alpha.test";
	sd.local_domains = local_domains;
	sd.nlocal_domains = 1;
	memset(&relay_net, 0, sizeof(relay_net));
	relay_net.family = AF_INET;
	(void)inet_pton(AF_INET, "192.0.2.99", relay_net.addr);
	relay_net.bits = 32;
	sd.relay_from = &relay_net;
	sd.nrelay_from = 1;
	sd.limits.line_max = 512;
	sd.limits.text_line_max = 1000;
	sd.limits.message_size_max = 10000;
	sd.limits.rcpt_max = 3;
	sd.limits.errors_max = 5;

	smtp_userdb_init(&udb);
	udb.passwd_path = passwd_path;
	udb.aliases_path = aliases_path;

	test_conversations();
	test_ehlo();
	test_content();
	test_big();
	test_userdb_reload();
	test_queue_failure();
	test_suspension();

	smtp_userdb_free(&udb);
	clear_queue();
	{
		char cmd[512];

		(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpl);
	}
	return test_done();
}
