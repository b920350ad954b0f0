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
#include "smtpd.h"

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	(void)fprintf(stderr, "usage: %s [-dtv] [-i] [-C virtmail.conf] "
	    "[-f virtual.conf]\n", SMTPD_NAME);
	exit(EX_USAGE);
}

int
main(int argc, char *argv[])
{
	struct smtpd_opts	 o = {
		.virtual_conf = SMTPD_VIRTUAL_CONF,
		.global_conf = SMTPD_GLOBAL_CONF,
	};
	int			 ch, check = 0, inetd = 0;

	while ((ch = getopt(argc, argv, "C:df:itv")) != -1) {
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
	return master_run(&o);
}
