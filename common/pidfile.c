/*
 * pidfile.c — the daemons' pid files.
 *
 * SECURITY
 *	Written by the root master before it forks anything, in a
 *	root-owned directory (/run by default).  Read by "virtmail" as
 *	root: a pid is trusted only when /proc/PID/comm names the daemon,
 *	so a stale file never sends a signal to an unrelated process.
 */
#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "fileio.h"
#include "pidfile.h"

#define PIDFILE_MAX	64

static pid_t
pidfile_parse(const char *path)
{
	struct buf	 b;
	const char	*err;
	long long	 n;
	size_t		 len;

	buf_init(&b, PIDFILE_MAX + 1);
	if (file_read_all(path, PIDFILE_MAX, &b, &err) == -1 ||
	    buf_append(&b, "", 1) == -1) {
		buf_free(&b);
		return -1;
	}
	len = strcspn(b.data, "\n");
	b.data[len] = '\0';
	n = strtonum(b.data, 1, 0x7fffffff, &err);
	buf_free(&b);
	return err != NULL ? -1 : (pid_t)n;
}

static int
pidfile_comm_is(pid_t pid, const char *comm)
{
	char	 path[64], line[64];
	FILE	*fp;
	int	 ok;

	if (snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid) >=
	    (int)sizeof(path))
		return 0;
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	ok = fgets(line, sizeof(line), fp) != NULL;
	(void)fclose(fp);
	if (!ok)
		return 0;
	line[strcspn(line, "\n")] = '\0';
	/* The kernel keeps 15 bytes of the name. */
	return strncmp(line, comm, 15) == 0;
}

pid_t
pidfile_read(const char *path, const char *comm)
{
	pid_t	 pid;

	if ((pid = pidfile_parse(path)) == -1)
		return -1;
	if (kill(pid, 0) == -1 && errno != EPERM)
		return -1;
	return pidfile_comm_is(pid, comm) ? pid : -1;
}

int
pidfile_write(const char *path, const char *comm, const char **error_r)
{
	char	 text[32];
	pid_t	 other;
	int	 n;

	if ((other = pidfile_read(path, comm)) != -1 && other != getpid()) {
		*error_r = "another instance is running (see its pid file)";
		return -1;
	}
	n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(text)) {
		*error_r = "pid too long";
		return -1;
	}
	if (file_write_atomic(path, text, (size_t)n, 0644) == -1) {
		*error_r = strerror(errno);
		return -1;
	}
	return 0;
}

void
pidfile_remove(const char *path)
{
	if (pidfile_parse(path) == getpid())
		(void)unlink(path);
}
