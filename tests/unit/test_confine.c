/*
 * test_confine.c — confine_to_root(): outside the directory nothing can
 * be read or written; inside, reads only, or writes too.
 */

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <linux/landlock.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confine.h"
#include "test.h"

static char	 top[] = "/tmp/test_confine.XXXXXX";
static char	 inside[256], outside[256];

/* Bits of what a confined child could do; -1 when it could not start. */
#define CAN_READ_IN	0x01
#define CAN_READ_OUT	0x02
#define CAN_WRITE_IN	0x04
#define CAN_WRITE_OUT	0x08
#define CAN_MKDIR_IN	0x10

static int
try_open(const char *dir, const char *name, int flags)
{
	char	 path[512];
	int	 fd;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, flags | O_CLOEXEC, 0600)) == -1)
		return 0;
	(void)close(fd);
	return 1;
}

static int
confined(int how)
{
	const char	*err;
	char		 path[512];
	pid_t		 pid;
	int		 st, r = 0;

	if ((pid = fork()) == 0) {
		if (confine_to_root(inside, how, &err) == -1)
			_exit(255);
		r |= try_open(inside, "file", O_RDONLY) ? CAN_READ_IN : 0;
		r |= try_open(outside, "file", O_RDONLY) ? CAN_READ_OUT : 0;
		r |= try_open(inside, "new", O_WRONLY | O_CREAT) ?
		    CAN_WRITE_IN : 0;
		r |= try_open(outside, "new", O_WRONLY | O_CREAT) ?
		    CAN_WRITE_OUT : 0;
		(void)snprintf(path, sizeof(path), "%s/d", inside);
		r |= mkdir(path, 0700) == 0 ? CAN_MKDIR_IN : 0;
		_exit(r);
	}
	if (pid == -1 || waitpid(pid, &st, 0) == -1 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) == 255)
		return -1;
	return WEXITSTATUS(st);
}

static int
landlock_here(void)
{
	return syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION) >= 1;
}

static void
cleanup(void)
{
	static const char *const names[] = { "in/file", "in/new", "in/d",
	    "out/file", "out/new", "in", "out", "" };
	char	 path[512];
	size_t	 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", top, names[i]);
		if (unlink(path) == -1)
			(void)rmdir(path);
	}
}

int
main(void)
{
	char	 path[512];
	int	 r, fd, ll;

	if (mkdtemp(top) == NULL)
		return 1;
	(void)snprintf(inside, sizeof(inside), "%s/in", top);
	(void)snprintf(outside, sizeof(outside), "%s/out", top);
	if (mkdir(inside, 0755) == -1 || mkdir(outside, 0755) == -1)
		return 1;
	(void)snprintf(path, sizeof(path), "%s/file", inside);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0644)) != -1)
		(void)close(fd);
	(void)snprintf(path, sizeof(path), "%s/file", outside);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0644)) != -1)
		(void)close(fd);

	ll = landlock_here();
	r = confined(CONFINE_READ);
	CHECK(r != -1, "confine_to_root succeeds, Landlock or not");
	if (ll == 1) {
		CHECK(r == CAN_READ_IN, "read-only: inside read, nothing "
		    "written, nothing outside read or written");
		r = confined(CONFINE_WRITE);
		CHECK(r == (CAN_READ_IN | CAN_WRITE_IN | CAN_MKDIR_IN),
		    "write: inside created and written, outside nothing");
	} else {
		CHECK(r & CAN_READ_OUT, "no Landlock: nothing refused");
	}
	cleanup();
	return test_done();
}
