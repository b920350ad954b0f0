/*
 * smtpd.c — main() of virtmail-smtpd: the options and the start are
 * common/daemon_main.c's; the modes are the master's (master.c).
 */
#include "daemon_main.h"
#include "smtpd.h"

int
main(int argc, char *argv[])
{
	static const struct daemon_modes	 smtpd = {
		SMTPD_NAME, master_check, master_inetd, master_run
	};

	return daemon_main(argc, argv, &smtpd);
}
