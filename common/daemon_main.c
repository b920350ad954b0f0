/*
 * daemon_main.c — main() of virtmail-smtpd and virtmail-pop3d: parse
 * the options, open the log, and hand over to the daemon's master: run,
 * check (-t) or serve one inetd session (-i).
 *
 * SECURITY
 *	Started as root.  Reads only its command line here; every file is
 *	read by the masters and smtpd/conf.c.  See docs/SECURITY.md.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "daemon_main.h"
#include "log.h"
#include "pidfile.h"
#include "proctitle.h"

static void __attribute__((noreturn))
usage(const char *name)
{
	(void)fprintf(stderr, "usage: %s [-dtv] [-i] [-C virtmail.conf] "
	    "[-f virtual.conf] [-p pidfile]\n", name);
	exit(EX_USAGE);
}

int
daemon_main(int argc, char *argv[], const struct daemon_modes *m)
{
	struct daemon_opts	 o = {
		.virtual_conf = DAEMON_VIRTUAL_CONF,
		.global_conf = DAEMON_GLOBAL_CONF,
	};
	const char		*pidfile = NULL, *err;
	char			 pidbuf[PATH_MAX];
	int			 ch, check = 0, inetd = 0, rc, n;

	/* Before getopt: optarg points into the copies. */
	proctitle_init(argc, argv);
	while ((ch = getopt(argc, argv, "C:df:ip:tv")) != -1) {
		switch (ch) {
		case 'C':
			o.global_conf = optarg;
			break;
		case 'd':
			o.debug = 1;
			break;
		case 'f':
			o.virtual_conf = optarg;
			break;
		case 'i':
			inetd = 1;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'v':
			o.verbose = 1;
			break;
		default:
			usage(m->name);
		}
	}
	if (optind != argc || (check && inetd))
		usage(m->name);

	/*
	 * First, before any chroot.  In inetd mode fd 2 may be the
	 * client's socket, so only -d sends log lines to stderr.
	 */
	log_init(m->name, o.debug || check, o.verbose);
	if (geteuid() != 0 && !check) {
		(void)fprintf(stderr, "%s: must be started as root\n",
		    m->name);
		return EX_NOPERM;
	}
	if (check)
		return m->check(&o);
	if (inetd)
		return m->inetd(&o);
	/* The pid file lets "virtmail" ask for a reload (SIGHUP). */
	if (pidfile == NULL && !o.debug) {
		n = snprintf(pidbuf, sizeof(pidbuf), "%s/%s.pid",
		    PIDFILE_DIR, m->name);
		if (n < 0 || (size_t)n >= sizeof(pidbuf))
			return EX_SOFTWARE;
		pidfile = pidbuf;
	}
	if (pidfile != NULL && *pidfile != '\0' &&
	    pidfile_write(pidfile, m->name, &err) == -1) {
		(void)fprintf(stderr, "%s: %s: %s\n", m->name, pidfile, err);
		return EX_OSERR;
	}
	rc = m->run(&o);
	if (pidfile != NULL && *pidfile != '\0')
		pidfile_remove(pidfile);
	return rc;
}
