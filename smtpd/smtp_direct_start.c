/*
 * smtp_direct_start.c — starting the SMTP worker's own deliverer, for
 * delivery before the 250 (smtp_direct.c).
 *
 * SECURITY
 *	Runs in the worker's process while it is still root, before the
 *	chroot and before it loads its TLS keys, as smtp_auth_start()
 *	does, so the child never holds a key.  The child keeps only its
 *	sockets to the commit threads and the log relay (priv_keep_fds:
 *	not the listeners, the master's channel, the AUTH socket or the
 *	client), confines itself to the domain's files (Landlock), and
 *	becomes the deliverer (deliverer.c): uid 0 OUTSIDE the domain's
 *	root, with only DELIVERER_CAPS.  It reads the network-facing
 *	worker's requests and decodes them strictly; what a compromised
 *	worker can get from it is written in deliverer.c.  It dies with
 *	the worker.

 *	In a file of its own: the static virtmail-sendmail links the
 *	session engine, and with it smtp_direct.c, but never this (nor
 *	OpenSSL).
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "privdrop.h"
#include "proctitle.h"
#include "runner.h"
#include "smtpd.h"
#include "xmalloc.h"

void
smtp_direct_start(struct smtpd_domain *sd, size_t n)
{
	const char	*err;
	pid_t		 pid, parent = getpid();
	size_t		 i, k;
	int		*fds_r, *theirs, sp[2];

	fds_r = xcalloc(n, sizeof(*fds_r));
	theirs = xcalloc(n, sizeof(*theirs));
	for (i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    sp) == -1) {
			log_warn("smtp direct delivery: socketpair");
			break;
		}
		fds_r[i] = sp[0];
		theirs[i] = sp[1];
	}
	if (i < n || (pid = fork()) == -1) {
		if (i == n)
			log_warn("smtp direct delivery: fork");
		for (k = 0; k < i; k++) {
			(void)close(fds_r[k]);
			(void)close(theirs[k]);
		}
		free(fds_r);
		free(theirs);
		return;
	}
	if (pid == 0) {
		/* Its own sockets, and nothing else of the worker's. */
		if (priv_keep_fds(theirs, n, &err) == -1)
			fatalx("smtp direct delivery: %s", err);
		sd->auth_fd = -1;
		log_set_procname(SMTPD_NAME "[deliver]");
		proctitle_set("deliverer %s", sd->name);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(0);
		/* The kernel keeps it, and all it forks, to the domain. */
		if (confine_to_root(sd->vd->dir, CONFINE_WRITE, &err) == -1)
			fatalx("smtp direct delivery: %s", err);
		deliverer_main(sd, theirs, n, -1);
	}
	for (i = 0; i < n; i++)
		(void)close(theirs[i]);
	free(theirs);
	sd->direct_fds = fds_r;
	sd->ndirect_fds = n;
}
