/*
 * fuzz_smtp_session.c — libFuzzer target for the SMTP session engine.
 *
 * The input is split at its first byte into two chunks (so partial
 * lines and pipelining are exercised), then fed to a session of a
 * domain with small limits; accepted messages go to a scratch queue
 * under /tmp (or $FUZZ_QUEUE_DIR).  The engine must never crash, never
 * exit, never grow without bound, and leave nothing in tmp/.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see the Makefile's
 * fuzz target); run: build-fuzz/fuzz_smtp_session -runs=N corpus/
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct smtpd_domain	 sd;
static struct smtp_userdb	 udb;
static char			*local_domains[] = { "alpha.test", NULL };
static char			 qdir[256];
static int			 ready;

static void
fuzz_setup(void)
{
	char		 dir[] = "/tmp/fuzz_smtp.XXXXXX";
	static char	 pw[300], al[300];
	const char	*error, *env;
	FILE		*f;

	log_init("fuzz_smtp_session", 0, 0);
	if ((env = getenv("FUZZ_QUEUE_DIR")) != NULL)
		(void)snprintf(dir, sizeof(dir), "%s", env);
	else if (mkdtemp(dir) == NULL)
		abort();
	if ((size_t)snprintf(qdir, sizeof(qdir), "%s/queue", dir) >=
	    sizeof(qdir) || queue_init(qdir, &error) == -1)
		abort();
	(void)snprintf(pw, sizeof(pw), "%s/passwd", dir);
	(void)snprintf(al, sizeof(al), "%s/aliases", dir);
	if ((f = fopen(pw, "w")) == NULL)
		abort();
	fputs("bob:x:2001:2001::/home/bob:/bin/sh\n", f);
	if (fclose(f) != 0 || (f = fopen(al, "w")) == NULL)
		abort();
	fputs("info: bob\n", f);
	if (fclose(f) != 0)
		abort();
	sd.name = "alpha.test";
	sd.hostname = "mx.alpha.test";
	sd.local_domains = local_domains;
	sd.nlocal_domains = 1;
	sd.limits.line_max = 512;
	sd.limits.text_line_max = 1000;
	sd.limits.message_size_max = 65536;
	sd.limits.rcpt_max = 5;
	sd.limits.errors_max = 50;
	smtp_userdb_init(&udb);
	udb.passwd_path = pw;
	udb.aliases_path = al;
	ready = 1;
}

static void
fuzz_feed(struct smtp_session *s, struct buf *in, const uint8_t *p,
    size_t n)
{
	enum smtp_action act;
	const char	*error;

	if (buf_append(in, p, n) == -1)
		return;
	for (;;) {
		act = smtp_session_input(s, in);
		if (act == SMTP_ACT_COMMIT) {
			smtp_session_commit(s);
			/* Keep the scratch queue small. */
			(void)queue_remove(qdir, s->w.id, &error);
			continue;
		}
		break;
	}
	/* The I/O layer would write the replies out here. */
	buf_reset(s->out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_session	 s;
	struct sockaddr_in	 sin;
	struct buf		 in, out;
	size_t			 cut;

	if (!ready)
		fuzz_setup();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	(void)inet_pton(AF_INET, "192.0.2.50", &sin.sin_addr);
	buf_init(&in, 1024 * 1024);
	buf_init(&out, 0);
	smtp_session_init(&s, &sd, &udb, LISTEN_SMTP,
	    (struct sockaddr *)&sin, sizeof(sin), &out);
	s.queue_dir = qdir;
	smtp_session_greet(&s);
	cut = size > 0 ? data[0] % (size + 1) : 0;
	if (size > 0) {
		data++;
		size--;
		if (cut > size)
			cut = size;
	}
	fuzz_feed(&s, &in, data, cut);
	fuzz_feed(&s, &in, data + cut, size - cut);
	smtp_session_eof(&s);
	smtp_session_free(&s);
	buf_free(&in);
	buf_free(&out);
	return 0;
}
