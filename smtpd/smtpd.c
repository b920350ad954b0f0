/*
 * smtpd.c — main() of virtmail-smtpd: parse the options, open the log,
 * and hand over to the master (master.c): run, check (-t) or serve one
 * inetd session (-i).
 *
 * SECURITY
 *	Started as root.  Reads only its command line here; every file is
 *	read by master.c and conf.c.  See docs/SECURITY.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"
#include "smtpd.h"

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	(void)fprintf(stderr, "usage: %s [-dtv] [-i] [-C virtmail.conf] "
	    "[-f virtual.conf] [-p pidfile]\n", SMTPD_NAME);
	exit(EX_USAGE);
}

int
main(int argc, char *argv[])
{
	struct smtpd_opts	 o = {
		.virtual_conf = SMTPD_VIRTUAL_CONF,
		.global_conf = SMTPD_GLOBAL_CONF,
	};
	const char		*pidfile = NULL, *err;
	int			 ch, check = 0, inetd = 0, rc;

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
			usage();
		}
	}
	if (optind != argc || (check && inetd))
		usage();

	/*
	 * First, before any chroot.  In inetd mode fd 2 may be the
	 * client's socket, so only -d sends log lines to stderr.
	 */
	log_init(SMTPD_NAME, o.debug || check, o.verbose);
	if (geteuid() != 0 && !check) {
		(void)fprintf(stderr, "%s: must be started as root\n",
		    SMTPD_NAME);
		return EX_NOPERM;
	}
	if (check)
		return master_check(&o);
	if (inetd)
		return master_inetd(&o);
	/* The pid file lets "virtmail" ask for a reload (SIGHUP). */
	if (pidfile == NULL && !o.debug)
		pidfile = PIDFILE_DIR "/" SMTPD_NAME ".pid";
	if (pidfile != NULL && *pidfile != '\0' &&
	    pidfile_write(pidfile, SMTPD_NAME, &err) == -1) {
		(void)fprintf(stderr, "%s: %s: %s\n", SMTPD_NAME, pidfile,
		    err);
		return EX_OSERR;
	}
	rc = master_run(&o);
	if (pidfile != NULL && *pidfile != '\0')
		pidfile_remove(pidfile);
	return rc;
}
