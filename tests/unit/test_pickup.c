/*
 * test_pickup.c — the drop file format and the runner's pickup: a
 * round trip through drop_env_encode and drop_parse, a table of
 * hostile files (wrong version, missing or repeated records, bad
 * addresses, controls, NUL bytes, truncation, overlong lines, too many
 * recipients), and pickup_convert into a real queue in a temporary
 * directory (the queued message, its envelope and Received: line).
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "queue.h"
#include "smtpd.h"
#include "test.h"

static void
test_roundtrip(void)
{
	struct drop_env	 e, d;
	struct buf	 b;
	const char	*err;
	char		*rcpts[] = { "bob@alpha.test", "fred@beta.test" };
	size_t		 off;

	memset(&e, 0, sizeof(e));
	e.sender = "alice@alpha.test";
	e.rcpts = rcpts;
	e.nrcpts = 2;
	buf_init(&b, 0);
	CHECK(drop_env_encode(&e, &b, &err) == 0, "encode");
	CHECK(strcmp(buf_cstr(&b), "VMDROP 1\nS alice@alpha.test\n"
	    "R bob@alpha.test\nR fred@beta.test\n\n") == 0, "encoded bytes");
	(void)buf_puts(&b, "Subject: x\n\nbody\n");
	CHECK(drop_parse(b.data, b.len, &d, &off, &err) == 0, "parse");
	CHECK(d.sender != NULL && strcmp(d.sender, "alice@alpha.test") == 0,
	    "sender");
	CHECK(d.nrcpts == 2 && strcmp(d.rcpts[1], "fred@beta.test") == 0,
	    "recipients");
	CHECK(strcmp(b.data + off, "Subject: x\n\nbody\n") == 0,
	    "message offset");
	drop_env_free(&d);

	e.sender = "";
	buf_reset(&b);
	CHECK(drop_env_encode(&e, &b, &err) == 0, "null sender encodes");
	CHECK(drop_parse(b.data, b.len, &d, &off, &err) == 0 &&
	    d.sender[0] == '\0' && off == b.len, "null sender, empty message");
	drop_env_free(&d);

	e.sender = "bad\naddr@x.test";
	CHECK(drop_env_encode(&e, &b, &err) == -1, "encode refuses LF");
	e.sender = "a@x.test";
	e.nrcpts = 0;
	CHECK(drop_env_encode(&e, &b, &err) == -1, "encode refuses no rcpt");
	buf_free(&b);

	CHECK(drop_name_valid("m.0123456789abcdef0123456789abcdef", "m."),
	    "ready name");
	CHECK(!drop_name_valid("m.0123456789abcdef0123456789abcdeF", "m."),
	    "upper case hex refused");
	CHECK(!drop_name_valid("m.0123456789abcdef0123456789abcde", "m."),
	    "short name refused");
	CHECK(!drop_name_valid("t.0123456789abcdef0123456789abcdef", "m."),
	    "tmp name is not ready");
	CHECK(!drop_name_valid("m.0123456789abcdef0123456789abcdef0", "m."),
	    "long name refused");
}

static void
test_hostile(void)
{
	static const struct {
		const char	*data;
		size_t		 len;	/* 0: strlen */
		const char	*what;
	} bad[] = {
		{ "", 0, "empty" },
		{ "VMDROP 2\nS a@x.test\nR b@x.test\n\n", 0, "version 2" },
		{ "VMDROP 1", 0, "no LF" },
		{ "VMDROP 1\n", 0, "only version" },
		{ "VMDROP 1\nR b@x.test\n\n", 0, "no sender" },
		{ "VMDROP 1\nS a@x.test\n\n", 0, "no recipient" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\n", 0, "no end line" },
		{ "VMDROP 1\nS a@x.test\nS c@x.test\nR b@x.test\n\n", 0,
		    "two senders" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\nX y\n\n", 0,
		    "unknown record" },
		{ "VMDROP 1\nS a@x.test\nR bob\n\n", 0, "rcpt no domain" },
		{ "VMDROP 1\nS a@x.test\nR \n\n", 0, "empty rcpt" },
		{ "VMDROP 1\nS a b@x.test\nR b@x.test\n\n", 0,
		    "space in sender" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\r\n\n", 0, "CR in rcpt" },
		{ "VMDROP 1\nS a@x.test\nR b@x.test\x01\n\n", 0,
		    "control in rcpt" },
		{ "VMDROP 1\nS a@x.test\nR b@\0x.test\n\n", 28, "NUL in rcpt" },
		{ "VMDROP 1\r\nS a@x.test\nR b@x.test\n\n", 0, "CRLF version" },
		{ "VMDROP 1\nSa@x.test\nR b@x.test\n\n", 0, "no space" },
		{ "VMDROP 1\nS <a@x.test>\nR b@x.test\n\n", 0,
		    "brackets in sender" },
	};
	struct drop_env	 d;
	struct buf	 b;
	const char	*err;
	size_t		 i, off, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = bad[i].len ? bad[i].len : strlen(bad[i].data);
		err = NULL;
		CHECK(drop_parse(bad[i].data, len, &d, &off, &err) == -1 &&
		    err != NULL && d.rcpts == NULL && d.sender == NULL,
		    bad[i].what);
	}

	buf_init(&b, 0);
	(void)buf_puts(&b, "VMDROP 1\nS a@x.test\nR ");
	for (i = 0; i < 5000; i++)
		(void)buf_putc(&b, 'a');
	(void)buf_puts(&b, "@x.test\n\n");
	CHECK(drop_parse(b.data, b.len, &d, &off, &err) == -1,
	    "overlong line");
	buf_reset(&b);
	(void)buf_puts(&b, "VMDROP 1\nS a@x.test\n");
	for (i = 0; i < DROP_RCPT_MAX + 1; i++)
		(void)buf_printf(&b, "R r%zu@x.test\n", i);
	(void)buf_puts(&b, "\n");
	CHECK(drop_parse(b.data, b.len, &d, &off, &err) == -1,
	    "too many recipients");
	buf_free(&b);
}

static void
test_convert(void)
{
	struct smtpd_domain	 sd;
	struct queue_env	 e;
	const char		*err = NULL;
	char			 tmpl[] = "/tmp/test_pickup.XXXXXX", id[17];
	char			 qdir[256], path[512], data[4096];
	char			 file[] = "VMDROP 1\nS alice@alpha.test\n"
				     "R bob@alpha.test\n\nSubject: hi\n\n\xc3\xa9\n";
	FILE			*f;
	size_t			 n;
	pid_t			 pid;
	int			 status;

	if (mkdtemp(tmpl) == NULL) {
		CHECK(0, "mkdtemp");
		return;
	}
	/* pickup_convert writes QUEUE_DIR: run it in a chroot-less way
	 * by checking only what does not need the fixed path. */
	memset(&sd, 0, sizeof(sd));
	sd.hostname = "mx.alpha.test";
	sd.limits.message_size_max = 10;
	CHECK(pickup_convert(&sd, file, sizeof(file) - 1, 1001, id, &err) ==
	    -2 && err != NULL, "over max_message_size refused");
	sd.limits.message_size_max = 1 << 20;
	CHECK(pickup_convert(&sd, "VMDROP 1\nS a@x.test\nR b@x.test\n\nx\0y",
	    35, 1001, id, &err) == -2, "NUL in message refused");
	CHECK(pickup_convert(&sd, "garbage", 7, 1001, id, &err) == -2,
	    "garbage refused");

	/* A real conversion needs QUEUE_DIR: as root, in a chroot. */
	if (geteuid() != 0) {
		printf("# not root: real conversion skipped\n");
		(void)rmdir(tmpl);
		return;
	}
	(void)snprintf(qdir, sizeof(qdir), "%s/var", tmpl);
	(void)mkdir(qdir, 0755);
	(void)snprintf(qdir, sizeof(qdir), "%s/var/spool", tmpl);
	(void)mkdir(qdir, 0755);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		if (chroot(tmpl) == -1 || chdir("/") == -1 ||
		    queue_init(QUEUE_DIR, &err) == -1)
			_exit(2);
		CHECK(pickup_convert(&sd, file, sizeof(file) - 1, 1001, id,
		    &err) == 0, "converted into the queue");
		memset(&e, 0, sizeof(e));
		CHECK(queue_env_load(QUEUE_DIR, id, &e, &err) == 0 &&
		    strcmp(e.sender, "alice@alpha.test") == 0 &&
		    e.nrcpts == 1 && strcmp(e.rcpts[0].addr,
		    "bob@alpha.test") == 0 && e.client_addr[0] == '\0' &&
		    (e.flags & QUEUE_F_8BITMIME), "envelope as dropped, 8bit");
		(void)snprintf(path, sizeof(path), "%s/msg/%s", QUEUE_DIR, id);
		n = 0;
		if ((f = fopen(path, "r")) != NULL) {
			n = fread(data, 1, sizeof(data) - 1, f);
			(void)fclose(f);
		}
		data[n] = '\0';
		CHECK(strncmp(data, "Received: from local user 1001\n\tby "
		    "mx.alpha.test (virtmail-sendmail) id ", 61) == 0,
		    "Received: names the uid");
		CHECK(strstr(data, ";\n\t") != NULL &&
		    strstr(data, "\nSubject: hi\n\n\xc3\xa9\n") != NULL,
		    "message follows");
		fflush(stdout);
		_exit(test_failed ? 1 : 0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid &&
	    WIFEXITED(status) && WEXITSTATUS(status) == 0, "child checks");
	(void)snprintf(path, sizeof(path), "rm -rf '%s'", tmpl);
	CHECK(system(path) == 0, "cleanup");
}

int
main(void)
{
	log_init("test_pickup", 1, 0);
	test_roundtrip();
	test_hostile();
	test_convert();
	return test_done();
}
