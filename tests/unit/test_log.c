/*
 * test_log.c — log_clean() on hostile peer text, the stderr line format,
 * the domain tag, errno kept across calls, fatal and ASSERT, and the
 * relay that stamps a domain's lines with the domain it serves.
 */

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "test.h"

static const struct {
	const char	*in;
	size_t		 len;
	size_t		 size;
	const char	*out;
	const char	*what;
} clean_cases[] = {
	{ "hello world", 11, 64, "hello world", "printable kept" },
	{ "EHLO x\r\n", 8, 64, "EHLO x\\x0d\\x0a", "CR LF escaped" },
	{ "a\0b", 3, 64, "a\\x00b", "NUL escaped, length honoured" },
	{ "\xff\x80~", 3, 64, "\\xff\\x80~", "high bytes escaped" },
	{ "a\\x41", 5, 64, "a\\x5cx41", "backslash escaped" },
	{ "\x1b[2J", 4, 64, "\\x1b[2J", "escape sequence defused" },
	{ "abc", 3, 4, "abc", "exact fit not truncated" },
	{ "abcdefghij", 10, 8, "abcd...", "truncated with dots" },
	{ "ab\x01" "cdef", 7, 8, "ab...", "escape never cut in half" },
	{ "abcd", 4, 4, "...", "nothing fits but the dots" },
	{ "abcdef", 6, 3, "..", "tiny buffer" },
	{ "abcdef", 6, 1, "", "one byte: empty string" },
	{ "", 0, 8, "", "empty input" },
	{ NULL, 5, 8, "", "NULL input" },
};

static void
test_clean(void)
{
	char	 dst[80], canary[4];
	size_t	 i;

	for (i = 0; i < sizeof(clean_cases) / sizeof(clean_cases[0]); i++) {
		memset(dst, 'Z', sizeof(dst));
		CHECK(log_clean(dst, clean_cases[i].size, clean_cases[i].in,
		    clean_cases[i].len) == dst && strcmp(dst,
		    clean_cases[i].out) == 0 &&
		    dst[clean_cases[i].size] == 'Z' ? 1 : 0,
		    clean_cases[i].what);
	}
	memcpy(canary, "QQQ", 4);
	(void)log_clean(canary, 0, "abc", 3);
	CHECK(strcmp(canary, "QQQ") == 0, "size 0 writes nothing");
}

/* Run fn with stderr on a pipe; returns what it wrote. */
static char *
capture(void (*fn)(void), char *out, size_t size)
{
	int	 p[2], saved;
	ssize_t	 n;
	size_t	 got = 0;

	out[0] = '\0';
	fflush(stderr);
	if (pipe(p) == -1 || (saved = dup(2)) == -1)
		return out;
	if (dup2(p[1], 2) == -1)
		return out;
	close(p[1]);
	fn();
	fflush(stderr);
	(void)dup2(saved, 2);
	close(saved);
	while (got < size - 1 &&
	    (n = read(p[0], out + got, size - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(p[0]);
	return out;
}

static void
emit_lines(void)
{
	log_set_domain("alpha.test");
	log_warnx("hello %d", 5);
	log_debug("not shown");
	log_set_domain(NULL);
	log_info("no domain");
	errno = ENOENT;
	log_warn("open %s", "x");
	log_set_procname("smtpd[alpha]");
	log_info("renamed");
}

static void
test_lines(void)
{
	char	 got[1024], want[1024];
	long	 pid = (long)getpid();

	log_init("test_log", 1, 0);
	capture(emit_lines, got, sizeof(got));
	(void)snprintf(want, sizeof(want),
	    "test_log[%ld]: domain=alpha.test hello 5\n"
	    "test_log[%ld]: no domain\n"
	    "test_log[%ld]: open x: %s\n"
	    "smtpd[alpha][%ld]: renamed\n", pid, pid, pid, strerror(ENOENT),
	    pid);
	CHECK_STR(got, want, "stderr lines: prefix, domain, strerror");
}

static void
test_errno(void)
{
	errno = EACCES;
	log_info("keep errno");
	CHECK(errno == EACCES, "log_info keeps errno");
	errno = EPIPE;
	log_warn("keep errno");
	CHECK(errno == EPIPE, "log_warn keeps errno");
	errno = EINTR;
	log_set_domain("beta.test");
	log_set_domain(NULL);
	CHECK(errno == EINTR, "log_set_domain keeps errno");
}

static int
child_status(int what)
{
	pid_t	 pid;
	int	 status, fd;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		/* Keep the expected failure out of the test output. */
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			(void)dup2(fd, 2);
		if (what == 0)
			fatalx("expected");
		errno = ENOENT;
		if (what == 1)
			fatal("expected");
		ASSERT(what == 3);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		return -1;
	return status;
}

static void
test_fatal(void)
{
	int	 st;

	st = child_status(0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "fatalx exits 1");
	st = child_status(1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "fatal exits 1");
	st = child_status(2);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
	    "failed ASSERT aborts");
	st = child_status(3);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "true ASSERT passes");
}

static int	 relay_fd = -1;
static pid_t	 relay_child;

/*
 * A child that claims to be beta.test, forges a syslog-like line and
 * sends a malformed record; read in the parent as alpha.test's relay.
 */
static void
relay_lines(void)
{
	int	 sv[2], status;

	if (log_relay_pair(sv) == -1)
		return;
	fflush(stderr);
	if ((relay_child = fork()) == 0) {
		close(sv[0]);
		log_to_relay(sv[1]);
		log_set_domain("beta.test");
		log_set_procname("worker");
		log_info("claims beta\nfake[1]: domain=beta.test x");
		(void)send(sv[1], "9bad", 4, 0);
		_exit(0);
	}
	close(sv[1]);
	(void)waitpid(relay_child, &status, 0);
	relay_fd = sv[0];
	(void)log_relay_read(sv[0], "alpha.test");
	close(sv[0]);
}

static void
test_relay(void)
{
	char	 got[2048], want[1024];

	capture(relay_lines, got, sizeof(got));
	(void)snprintf(want, sizeof(want),
	    "worker[%ld]: domain=alpha.test claims beta\\x0afake[1]: "
	    "domain=beta.test x\n", (long)relay_child);
	CHECK(strncmp(got, want, strlen(want)) == 0,
	    "relayed line: the relay's domain, the kernel's pid, cleaned");
	CHECK(strstr(got, "log record from pid") != NULL &&
	    strstr(got, "malformed") != NULL,
	    "malformed record reported, not logged as sent");
	CHECK(relay_fd != -1, "relay pair made");
}

int
main(void)
{
	test_clean();
	test_lines();
	test_errno();
	test_fatal();
	test_relay();
	return test_done();
}
