/*
 * keycheck.c — load a domain's certificates and keys once, in a
 * short-lived child of the master, to report a broken key at start,
 * at reload and under -t with the file and the reason.
 *
 * SECURITY
 *	The master never loads a private key: it forks this child, which
 *	loads the one domain's pairs (common/tls.c: files opened inside
 *	the domain's root with RESOLVE_IN_ROOT, keys readable by their
 *	owner only), writes one line per problem and one per certificate
 *	subject to a pipe, frees everything and exits.  It reads nothing
 *	from the network and no other domain's file.  The master reads
 *	the pipe with a bound and trusts only that the text is text: the
 *	lines go to the log or to -t's output, nothing else.
 *
 * DIAGNOSTICS
 *	The problems of tls_server_load(), as "FILE: private key: REASON
 *	(in DIR)"; "DIR: key check failed (status N)".
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "pop3d.h"
#include "tls.h"

#define KEYCHECK_OUT_MAX	65536

/* In the child: one line "E text", newlines and controls flattened. */
static void
keycheck_child_diag(void *ctx, const char *msg)
{
	char	 line[1024];
	size_t	 i;
	int	 n;

	n = snprintf(line, sizeof(line), "E %s\n", msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	for (i = 2; i + 1 < (size_t)n; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	(void)write_all(*(int *)ctx, line, (size_t)n);
}

static void __attribute__((noreturn))
keycheck_child(int fd, const char *dir, const struct tls_pair *p, size_t n)
{
	struct diag		 d = { keycheck_child_diag, &fd, 0 };
	struct tls_server	*t;
	char			 line[300];
	size_t			 i;
	int			 k;

	if ((t = tls_server_load(dir, p, n, &d)) == NULL) {
		if (d.count == 0)
			keycheck_child_diag(&fd, "cannot load the keys");
		_exit(1);
	}
	for (i = 0; tls_server_subject(t, i)[0] != '\0'; i++) {
		k = snprintf(line, sizeof(line), "S %s\n",
		    tls_server_subject(t, i));
		if (k > 0 && (size_t)k < sizeof(line))
			(void)write_all(fd, line, (size_t)k);
	}
	tls_server_free(t);
	_exit(0);
}

int
keycheck_domain(const char *dir, const struct tls_pair *p, size_t n,
    struct diag *d, struct keycheck_result *res)
{
	struct buf	 out;
	char		 chunk[4096], *line, *nl;
	ssize_t		 r;
	pid_t		 pid;
	int		 fds[2], status, bad = 0;

	memset(res, 0, sizeof(*res));
	if (n == 0)
		return 0;
	if (pipe2(fds, O_CLOEXEC) == -1) {
		diag_report(d, dir, 0, "key check: pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		diag_report(d, dir, 0, "key check: fork: %s", strerror(errno));
		(void)close(fds[0]);
		(void)close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		(void)close(fds[0]);
		keycheck_child(fds[1], dir, p, n);
	}
	(void)close(fds[1]);
	buf_init(&out, KEYCHECK_OUT_MAX);
	for (;;) {
		r = read(fds[0], chunk, sizeof(chunk));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf_append(&out, chunk, (size_t)r) == -1)
			bad = 1;	/* keep reading until EOF */
	}
	(void)close(fds[0]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	if (buf_append(&out, "", 1) == -1)
		bad = 1;
	for (line = out.data; !bad && line != NULL && *line != '\0';
	    line = nl) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl++ = '\0';
		if (line[0] == 'E' && line[1] == ' ') {
			diag_report(d, dir, 0, "%s", line + 2);
			res->problems++;
		} else if (line[0] == 'S' && line[1] == ' ' &&
		    res->nsubjects < sizeof(res->subjects) /
		    sizeof(res->subjects[0]))
			(void)strlcpy(res->subjects[res->nsubjects++],
			    line + 2, sizeof(res->subjects[0]));
	}
	buf_free(&out);
	if (bad || status != 0 || res->problems > 0) {
		if (res->problems == 0)
			diag_report(d, dir, 0, "key check failed (status %d)",
			    status);
		return -1;
	}
	return 0;
}
