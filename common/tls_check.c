/*
 * tls_check.c — check a domain's certificates and private keys in a
 * throwaway process, so that the process that asks (a root master)
 * never holds a private key.
 *
 * SECURITY
 *	Called by the root masters, outside any root, at start, on reload
 *	and for -t.  The child is a fork of the caller (root, not
 *	chrooted, holding no other domain's key because the caller holds
 *	none): it loads the pairs with tls_server_load() (in-root opens,
 *	key mode check, key/certificate match, validity dates), writes
 *	what it found to a pipe as text lines and _exits, so the key bytes
 *	die with its memory.  The parent reads at most TLS_CHECK_OUT_MAX
 *	bytes, accepts only "E" lines (a problem, already "file: message")
 *	and "S" lines (a certificate subject), and calls the pairs good
 *	only when the child exited 0 and reported no problem.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "fileio.h"
#include "tls.h"

#define TLS_CHECK_OUT_MAX	(64 * 1024)
#define TLS_CHECK_LINE_MAX	1100

/* In the child: one "E" line per problem. */
static void
tls_check_diag(void *ctx, const char *msg)
{
	char	 line[TLS_CHECK_LINE_MAX];
	int	 fd = *(int *)ctx, n;

	n = snprintf(line, sizeof(line), "E%s\n", msg);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = snprintf(line, sizeof(line), "E(message too long)\n");
	if (n > 0 && write_all(fd, line, (size_t)n) == -1)
		_exit(2);
}

static void __attribute__((noreturn))
tls_check_child(const char *dir, const struct tls_pair *p, size_t n, int fd)
{
	struct diag		 cd = { tls_check_diag, &fd, 0 };
	struct tls_server	*t;
	char			 line[TLS_CHECK_LINE_MAX];
	size_t			 i;
	int			 len;

	t = tls_server_load(dir, p, n, &cd);
	for (i = 0; t != NULL && tls_server_subject(t, i)[0] != '\0'; i++) {
		len = snprintf(line, sizeof(line), "S%s\n",
		    tls_server_subject(t, i));
		if (len > 0 && (size_t)len < sizeof(line) &&
		    write_all(fd, line, (size_t)len) == -1)
			_exit(2);
	}
	_exit(t != NULL && cd.count == 0 ? 0 : 1);
}

/* Report to d as it stands: the child formatted "file: message". */
static void
tls_check_report(struct diag *d, const char *msg)
{
	d->count++;
	if (d->fn != NULL)
		d->fn(d->ctx, msg);
}

int
tls_server_check(const char *dir, const struct tls_pair *p, size_t n,
    struct buf *subjects_r, struct diag *d)
{
	struct buf	 out;
	char		 chunk[4096], *line, *nl;
	ssize_t		 r;
	pid_t		 pid;
	int		 fds[2], status, before = d->count, bad = 0;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		diag_report(d, dir, 0, "TLS check: pipe: %s",
		    strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		diag_report(d, dir, 0, "TLS check: fork: %s",
		    strerror(errno));
		(void)close(fds[0]);
		(void)close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		(void)close(fds[0]);
		tls_check_child(dir, p, n, fds[1]);
	}
	(void)close(fds[1]);
	buf_init(&out, TLS_CHECK_OUT_MAX);
	for (;;) {
		r = read(fds[0], chunk, sizeof(chunk));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf_append(&out, chunk, (size_t)r) == -1) {
			bad = 1;
			break;
		}
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
		if ((nl = strchr(line, '\n')) == NULL)
			break;		/* a torn last line: the status says */
		*nl++ = '\0';
		if (line[0] == 'E')
			tls_check_report(d, line + 1);
		else if (line[0] == 'S' && subjects_r != NULL)
			(void)buf_printf(subjects_r, "%s\n", line + 1);
		else if (line[0] != 'S')
			bad = 1;
	}
	buf_free(&out);
	if (bad || status == -1 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		if (d->count == before)
			diag_report(d, dir, 0, "TLS check: the checking "
			    "process failed");
		return -1;
	}
	return d->count > before ? -1 : 0;
}
