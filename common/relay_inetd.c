/*
 * relay_inetd.c — the log relay of a session started by inetd, where
 * there is no master to read it.
 *
 * SECURITY
 *	The process inetd started splits in two before it serves.  The
 *	child goes on as the session, with log_to_relay(): neither it nor
 *	anything it forks holds the host's syslog socket, so none of them
 *	can write a line that names another domain.  The parent becomes
 *	the relay: it keeps only the relay's read end, stderr and its
 *	syslog socket, gives up every capability, keeps to reading the
 *	domain's directory (confine.h), and logs each line it reads
 *	stamped with the domain it was started for, until the last process
 *	of the session has closed its end.  It reads nothing but those
 *	records, which log_relay_read() decodes strictly and cleans.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <syslog.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "privdrop.h"
#include "proctitle.h"
#include "relay_inetd.h"

/* The parent's life: relay until every sender is gone. */
static void __attribute__((noreturn))
relay_inetd_run(int fd, pid_t child, const char *domain, const char *dir)
{
	struct pollfd	 pfd;
	const char	*err;
	int		 null, status;

	/* 0 and 1 may be the client's socket: not the relay's. */
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1 ||
	    dup2(null, 0) == -1 || dup2(null, 1) == -1 ||
	    dup2(fd, 3) == -1)
		_exit(1);
	closelog();
	if (close_range(4, ~0U, 0) == -1)
		_exit(1);
	log_reconnect();
	fd = 3;
	proctitle_set("log relay %s", domain);
	if (confine_to_root(dir, CONFINE_READ, &err) == -1 ||
	    priv_limit_caps(NULL, 0, &err) == -1)
		log_warnx("log relay: %s", err);
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			break;
		if (log_relay_read(fd, domain) == -1)
			break;
	}
	while (waitpid(child, &status, 0) == -1 && errno == EINTR)
		;
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int
relay_inetd_start(const char *domain, const char *dir)
{
	pid_t	 pid;
	int	 sv[2];

	if (log_relay_pair(sv) == -1) {
		log_warn("log relay");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("log relay: fork");
		(void)close(sv[0]);
		(void)close(sv[1]);
		return -1;
	}
	if (pid != 0) {
		(void)close(sv[1]);
		relay_inetd_run(sv[0], pid, domain, dir);
	}
	(void)close(sv[0]);
	log_to_relay(sv[1]);
	return sv[1];
}
