/*
 * pop3d.c — main() of virtmail-pop3d: parse the options, open the log,
 * and hand over to the master (master.c): run, check (-t) or serve one
 * inetd session (-i).
 *
 * SECURITY
 *	Started as root.  Reads only its command line here; every file is
 *	read by master.c and smtpd/conf.c.  See docs/SECURITY.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"
#include "pop3d.h"

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	(void)fprintf(stderr, "usage: %s [-dtv] [-i] [-C virtmail.conf] "
	    "[-f virtual.conf] [-p pidfile]\n", POP3D_NAME);
	exit(EX_USAGE);
}

int
main(int argc, char *argv[])
{
	struct pop3d_opts	 o = {
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
	/* Before any chroot; in inetd mode stderr may be the client. */
	log_init(POP3D_NAME, o.debug || check, o.verbose);
	if (geteuid() != 0 && !check) {
		(void)fprintf(stderr, "%s: must be started as root\n",
		    POP3D_NAME);
		return EX_NOPERM;
	}
	if (check)
		return pop3_master_check(&o);
	if (inetd)
		return pop3_master_inetd(&o);
	/* The pid file lets "virtmail" ask for a reload (SIGHUP). */
	if (pidfile == NULL && !o.debug)
		pidfile = PIDFILE_DIR "/" POP3D_NAME ".pid";
	if (pidfile != NULL && *pidfile != '\0' &&
	    pidfile_write(pidfile, POP3D_NAME, &err) == -1) {
		(void)fprintf(stderr, "%s: %s: %s\n", POP3D_NAME, pidfile,
		    err);
		return EX_OSERR;
	}
	rc = pop3_master_run(&o);
	if (pidfile != NULL && *pidfile != '\0')
		pidfile_remove(pidfile);
	return rc;
}
