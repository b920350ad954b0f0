/*
 * daemon_main.h — the main() that virtmail-smtpd and virtmail-pop3d
 * share: the same options, the same start as root, the same pid file;
 * only the three things a master can do differ.
 */
#ifndef VIRTMAIL_DAEMON_MAIN_H
#define VIRTMAIL_DAEMON_MAIN_H

#define DAEMON_CONF_DIR		"/etc/virtmail"
#define DAEMON_VIRTUAL_CONF	DAEMON_CONF_DIR "/virtual.conf"
#define DAEMON_GLOBAL_CONF	DAEMON_CONF_DIR "/virtmail.conf"

/* What the command line sets. */
struct daemon_opts {
	const char	*virtual_conf;	/* -f */
	const char	*global_conf;	/* -C */
	int		 debug;		/* -d: foreground, stderr */
	int		 verbose;	/* -v */
};

/* A daemon: its name, and its master's three modes (exit statuses). */
struct daemon_modes {
	const char	*name;
	int		(*check)(const struct daemon_opts *);	/* -t */
	int		(*inetd)(const struct daemon_opts *);	/* -i */
	int		(*run)(const struct daemon_opts *);	/* until SIGTERM */
};

/*
 * "name [-dtv] [-i] [-C virtmail.conf] [-f virtual.conf] [-p pidfile]":
 * parse, open the log, refuse to run other than as root (except -t),
 * write the pid file around run.  Returns the exit status.
 */
int	daemon_main(int argc, char *argv[], const struct daemon_modes *m);

#endif
