/*
 * ttyprobe.c — a test program for "virtmail exec", built static so it
 * runs inside a minimal domain root.  It reports its session and, for
 * each of fds 0-2, whether it is a terminal, which one, whether it is
 * the controlling terminal, and whether ioctl(TIOCSTI) could push
 * "INJECTED\n" into its input; then the same for /dev/tty.
 *
 *	ttyprobe [-w] [-x STATUS]
 *	-w	after the report, read stdin until a line "q" (or EOF)
 *	-x	exit with STATUS
 *
 * Lines: "pid=N sid=N uid=N", "fdN tty=0|1 rdev=N ctty=0|1 sti=ok|ERR",
 * "devtty=ok|ERR sti=ok|ERR|-", "winsize=ROWSxCOLS" (fd 0's, or 0x0),
 * and with -w "got q" or "got eof".
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char inject[] = "INJECTED\n";

static const char *
probe_sti(int fd)
{
	size_t	 i;

	for (i = 0; i < sizeof(inject) - 1; i++)
		if (ioctl(fd, TIOCSTI, &inject[i]) == -1)
			return strerror(errno);
	return "ok";
}

int
main(int argc, char **argv)
{
	struct stat	 st;
	struct winsize	 ws;
	pid_t		 pg;
	char		 line[256];
	int		 c, fd, wait_q = 0, status = 0, tty;

	while ((c = getopt(argc, argv, "wx:")) != -1) {
		switch (c) {
		case 'w':
			wait_q = 1;
			break;
		case 'x':
			status = atoi(optarg);
			break;
		default:
			return 64;
		}
	}
	printf("pid=%ld sid=%ld uid=%ld\n", (long)getpid(), (long)getsid(0),
	    (long)getuid());
	for (fd = 0; fd < 3; fd++) {
		tty = isatty(fd);
		printf("fd%d tty=%d rdev=%lu ctty=%d sti=%s\n", fd, tty,
		    fstat(fd, &st) == 0 && tty ? (unsigned long)st.st_rdev : 0UL,
		    ioctl(fd, TIOCGPGRP, &pg) == 0, probe_sti(fd));
	}
	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY)) == -1)
		printf("devtty=%s sti=-\n", strerror(errno));
	else {
		printf("devtty=ok sti=%s\n", probe_sti(fd));
		(void)close(fd);
	}
	if (ioctl(0, TIOCGWINSZ, &ws) == -1)
		memset(&ws, 0, sizeof(ws));
	printf("winsize=%ux%u\n", ws.ws_row, ws.ws_col);
	fflush(stdout);
	if (wait_q) {
		while (fgets(line, sizeof(line), stdin) != NULL)
			if (strcmp(line, "q\n") == 0 || strcmp(line, "q\r\n") == 0)
				break;
		printf("got %s\n", feof(stdin) ? "eof" : "q");
	}
	return status;
}
