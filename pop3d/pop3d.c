/*
 * pop3d.c — main() of virtmail-pop3d: the options and the start are
 * common/daemon_main.c's; the modes are the master's (master.c).
 */
#include "daemon_main.h"
#include "pop3d.h"

int
main(int argc, char *argv[])
{
	static const struct daemon_modes	 pop3d = {
		POP3D_NAME, pop3_master_check, pop3_master_inetd,
		pop3_master_run
	};

	return daemon_main(argc, argv, &pop3d);
}
