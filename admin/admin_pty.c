/*
 * admin_pty.c — run a program for "virtmail exec" in a session of its
 * own, on a terminal of its own, as su --pty, runuser -P and sudo's
 * use_pty do.
 *
 * SECURITY
 *	The parent runs as root on the host; the child becomes a program
 *	of a domain (a user, or the domain's root).  That program must
 *	not reach the administrator's terminal: with it on fds 0-2 and
 *	in the administrator's session, ioctl(TIOCSTI) types commands
 *	into the root shell that started virtmail, and TIOCSWINSZ,
 *	TIOCSETD and friends change its terminal.  So the child always
 *	starts a new session (setsid) before it runs anything of the
 *	domain, and never gets the administrator's terminal:
 *
 *	- When any of fds 0-2 is a terminal, the parent opens a new pty
 *	  (posix_openpt; the slave from the master with TIOCGPTPEER, so
 *	  no /dev/pts path is resolved) before the fork.  The child makes
 *	  the slave its controlling terminal and puts it on each of fds
 *	  0-2 that was a terminal; the others (pipes, files) are passed
 *	  as they are.  The parent stays outside the root, puts the
 *	  administrator's terminal in raw mode (restored when the child
 *	  has ended, whatever the way) and copies bytes between it and
 *	  the master; window size changes follow (SIGWINCH,
 *	  TIOCSWINSZ).  What the program injects with TIOCSTI lands in
 *	  its own pty's input.
 *	- When none is a terminal, the child only starts a new session,
 *	  without a controlling terminal.
 *
 *	Every descriptor above 2 is closed in the child before the
 *	function it runs (which chroots), so no directory of the host
 *	stays open for a program of the domain.  SIGINT, SIGTERM, SIGHUP
 *	and SIGQUIT sent to the parent are passed on to the child; the
 *	parent returns the child's status as a shell reports it.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "fileio.h"
#include "virtmail.h"

#define PTY_BUF		4096

#ifndef TIOCGPTPEER
#define TIOCGPTPEER	_IO('T', 0x41)
#endif

struct pty_session {
	int		 master;	/* -1: no pty */
	int		 slave;
	int		 term;		/* our first terminal of fds 0-2 */
	int		 in;		/* stdin when it is a terminal, or -1 */
	int		 out;		/* where the master's output goes */
	int		 on_slave[3];	/* fds 0-2 the child gets the slave on */
	struct termios	 saved;		/* the terminal as we found it */
	int		 raw;		/* saved is to be restored */
	pid_t		 child;
};

static int	pty_sigpipe[2] = { -1, -1 };

static const int pty_signals[] = {
	SIGCHLD, SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT
};
#define PTY_NSIGNALS	(sizeof(pty_signals) / sizeof(pty_signals[0]))

static void
pty_on_signal(int sig)
{
	unsigned char	 c = (unsigned char)sig;
	int		 saved = errno;

	/* Full pipe: the loop has signals to read already. */
	if (write(pty_sigpipe[1], &c, 1) == -1)
		errno = saved;
	errno = saved;
}

static void
pty_winsize(const struct pty_session *s)
{
	struct winsize	 ws;

	if (ioctl(s->term, TIOCGWINSZ, &ws) == 0)
		(void)ioctl(s->master, TIOCSWINSZ, &ws);
}

/* A new pty whose slave starts as a copy of our terminal. */
static int
pty_open(struct pty_session *s)
{
	struct termios	 t;
	const char	*name;

	if ((s->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1 ||
	    grantpt(s->master) == -1 || unlockpt(s->master) == -1) {
		admin_warnx("posix_openpt: %s", strerror(errno));
		return -1;
	}
	s->slave = ioctl(s->master, TIOCGPTPEER, O_RDWR | O_NOCTTY |
	    O_CLOEXEC);
	/* Kernels before 4.13: by name, still before any chroot. */
	if (s->slave == -1 && (errno == EINVAL || errno == ENOTTY) &&
	    (name = ptsname(s->master)) != NULL)
		s->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s->slave == -1) {
		admin_warnx("opening the pty's slave: %s", strerror(errno));
		return -1;
	}
	if (tcgetattr(s->term, &t) == 0)
		(void)tcsetattr(s->slave, TCSANOW, &t);
	pty_winsize(s);
	return 0;
}

static void
pty_raw(struct pty_session *s)
{
	struct termios	 t;

	if (s->in == -1 || tcgetattr(s->in, &s->saved) == -1)
		return;
	t = s->saved;
	cfmakeraw(&t);
	if (tcsetattr(s->in, TCSADRAIN, &t) == 0)
		s->raw = 1;
}

static void
pty_restore(struct pty_session *s)
{
	if (s->raw && tcsetattr(s->in, TCSADRAIN, &s->saved) == -1)
		admin_warnx("restoring the terminal: %s", strerror(errno));
	s->raw = 0;
}

/* In the child: a new session, then the pty's slave, then fn. */
static void __attribute__((noreturn))
pty_child(struct pty_session *s, int (*fn)(void *), void *arg,
    const sigset_t *mask)
{
	size_t	 i;
	int	 fd;

	for (i = 0; i < PTY_NSIGNALS; i++)
		(void)signal(pty_signals[i], SIG_DFL);
	(void)sigprocmask(SIG_SETMASK, mask, NULL);
	if (setsid() == -1) {
		admin_warnx("setsid: %s", strerror(errno));
		_exit(EX_OSERR);
	}
	if (s->master != -1) {
		if (ioctl(s->slave, TIOCSCTTY, 0) == -1) {
			admin_warnx("TIOCSCTTY: %s", strerror(errno));
			_exit(EX_OSERR);
		}
		for (fd = 0; fd < 3; fd++)
			if (s->on_slave[fd] && dup2(s->slave, fd) == -1) {
				admin_warnx("dup2: %s", strerror(errno));
				_exit(EX_OSERR);
			}
	}
	/* The master, the slave, the signal pipe, and whatever the
	 * administrator's shell left open: none follows into the root. */
	if (close_range(3, ~0U, 0) == -1) {
		admin_warnx("close_range: %s", strerror(errno));
		_exit(EX_OSERR);
	}
	_exit(fn(arg));
}

/* Copy what the terminal typed to the master, as far as it takes it. */
static void
pty_input(struct pty_session *s, char *buf, size_t *len, int *in_eof)
{
	ssize_t	 n;

	if (*len == 0) {
		n = read(s->in, buf, PTY_BUF);
		if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN)) {
			*in_eof = 1;
			return;
		}
		if (n <= 0)
			return;
		*len = (size_t)n;
	}
	n = write(s->master, buf, *len);
	if (n > 0) {
		memmove(buf, buf + n, *len - (size_t)n);
		*len -= (size_t)n;
	}
}

/* Copy the master's output to the terminal; 0 at its end (EIO). */
static int
pty_output(struct pty_session *s)
{
	char	 buf[PTY_BUF];
	ssize_t	 n;

	n = read(s->master, buf, sizeof(buf));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0)
		return 0;
	/* A terminal that went away just loses the output. */
	(void)write_all(s->out, buf, (size_t)n);
	return 1;
}

/* After the child: whatever its terminal still holds. */
static void
pty_drain(struct pty_session *s)
{
	struct pollfd	 p;

	p.fd = s->master;
	p.events = POLLIN;
	while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN) &&
	    pty_output(s) == 1)
		;
}

static int
pty_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EX_SOFTWARE;
}

/* Relay until the child has ended; its status. */
static int
pty_loop(struct pty_session *s)
{
	struct pollfd	 p[3];
	unsigned char	 sig[16];
	char		 inbuf[PTY_BUF];
	size_t		 inlen = 0, i;
	ssize_t		 n;
	int		 status, nfd, in_eof = s->in == -1;
	int		 master_eof = s->master == -1;

	for (;;) {
		nfd = 0;
		p[nfd].fd = pty_sigpipe[0];
		p[nfd++].events = POLLIN;
		if (!master_eof) {
			p[nfd].fd = s->master;
			p[nfd++].events = POLLIN | (inlen > 0 ? POLLOUT : 0);
		}
		if (!in_eof && !master_eof && inlen == 0) {
			p[nfd].fd = s->in;
			p[nfd++].events = POLLIN;
		}
		if (poll(p, (nfds_t)nfd, -1) == -1) {
			if (errno == EINTR)
				continue;
			admin_warnx("poll: %s", strerror(errno));
			(void)kill(s->child, SIGKILL);
			while (waitpid(s->child, &status, 0) == -1 &&
			    errno == EINTR)
				;
			break;
		}
		if (p[0].revents & POLLIN) {
			n = read(pty_sigpipe[0], sig, sizeof(sig));
			for (i = 0; n > 0 && i < (size_t)n; i++) {
				if (sig[i] == SIGWINCH && s->master != -1)
					pty_winsize(s);
				else if (sig[i] != SIGCHLD && sig[i] != SIGWINCH)
					(void)kill(s->child, sig[i]);
			}
			if (waitpid(s->child, &status, WNOHANG) == s->child)
				break;
		}
		for (i = 1; i < (size_t)nfd; i++) {
			if (p[i].revents == 0)
				continue;
			if (p[i].fd == s->master) {
				if ((p[i].revents & (POLLIN | POLLHUP |
				    POLLERR)) && pty_output(s) == 0)
					master_eof = 1;
				if (!master_eof && (p[i].revents & POLLOUT))
					pty_input(s, inbuf, &inlen, &in_eof);
			} else if (p[i].fd == s->in)
				pty_input(s, inbuf, &inlen, &in_eof);
		}
	}
	if (s->master != -1 && !master_eof)
		pty_drain(s);
	return pty_status(status);
}

int
admin_pty_run(int (*fn)(void *), void *arg)
{
	struct pty_session	 s;
	struct sigaction	 sa;
	sigset_t		 all, old;
	size_t			 i;
	int			 fd, rc;

	memset(&s, 0, sizeof(s));
	s.master = s.slave = s.term = s.in = -1;
	for (fd = 0; fd < 3; fd++) {
		s.on_slave[fd] = isatty(fd);
		if (s.on_slave[fd] && s.term == -1)
			s.term = fd;
	}
	if (s.term != -1) {
		if (pty_open(&s) == -1)
			goto fail;
		s.in = s.on_slave[0] ? 0 : -1;
		s.out = s.on_slave[1] ? 1 : s.on_slave[2] ? 2 : s.term;
		if (fcntl(s.master, F_SETFL, O_NONBLOCK) == -1) {
			admin_warnx("fcntl: %s", strerror(errno));
			goto fail;
		}
	}
	if (pipe2(pty_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		admin_warnx("pipe: %s", strerror(errno));
		goto fail;
	}
	/* Handlers in place before the child can end. */
	(void)sigfillset(&all);
	(void)sigprocmask(SIG_BLOCK, &all, &old);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pty_on_signal;
	(void)sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NOCLDSTOP;
	for (i = 0; i < PTY_NSIGNALS; i++)
		(void)sigaction(pty_signals[i], &sa, NULL);
	(void)fflush(NULL);
	if ((s.child = fork()) == -1) {
		admin_warnx("fork: %s", strerror(errno));
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		goto fail;
	}
	if (s.child == 0)
		pty_child(&s, fn, arg, &old);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	if (s.slave != -1)
		(void)close(s.slave);
	pty_raw(&s);
	rc = pty_loop(&s);
	pty_restore(&s);
	if (s.master != -1)
		(void)close(s.master);
	return rc;
 fail:
	if (s.slave != -1)
		(void)close(s.slave);
	if (s.master != -1)
		(void)close(s.master);
	return EX_OSERR;
}
