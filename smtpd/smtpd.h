/*
 * smtpd.h — types shared by the parts of virtmail-smtpd.
 *
 * Processes (see docs/SECURITY.md):
 *	master	  root, not chrooted: reads the configuration, binds the
 *		  listeners, forks and supervises one worker and one queue
 *		  runner per domain (master.c, smtpd.c)
 *	worker	  chrooted into the domain's root as its run_as account
 *		  before it reads the network; every SMTP session of the
 *		  domain in one event loop (smtp_server.c, smtp_session.c)
 *	runner	  the domain's queue runner (runner.c, deliver_local.c)
 */
#ifndef VIRTMAIL_SMTPD_H
#define VIRTMAIL_SMTPD_H

#include <sys/socket.h>

#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>

#include "domain.h"

#define SMTPD_NAME		"virtmail-smtpd"
#define SMTPD_CONF_DIR		"/etc/virtmail"
#define SMTPD_VIRTUAL_CONF	SMTPD_CONF_DIR "/virtual.conf"
#define SMTPD_GLOBAL_CONF	SMTPD_CONF_DIR "/virtmail.conf"
#define SMTPD_DOMAIN_CONF	"etc/virtmail.conf"	/* inside the root */

enum listener_kind {
	LISTEN_SMTP,		/* port 25: MX traffic */
	LISTEN_SUBMISSION,	/* port 587: AUTH required before MAIL */
	LISTEN_SMTPS,		/* port 465: implicit TLS (TLS issue) */
};

/* A network in relay_from: address and prefix length. */
struct netmask {
	int		 family;
	uint8_t		 addr[16];
	unsigned int	 bits;
};

/* A static next hop: "route DOMAIN [IP]:PORT". */
struct route {
	char		*domain;	/* lower case; "*" for any */
	char		*host;		/* IP literal */
	int		 port;
};

/* Limits; global values from virtmail.conf, a domain may override. */
struct smtpd_limits {
	size_t		 line_max;		/* command line, CRLF included */
	size_t		 text_line_max;		/* DATA line */
	uint64_t	 message_size_max;
	unsigned int	 rcpt_max;		/* per message */
	unsigned int	 errors_max;		/* per session */
	unsigned int	 sessions_max;		/* per domain worker */
	unsigned int	 sessions_per_ip_max;
	unsigned int	 timeout_cmd;		/* s, RFC 5321 §4.5.3.2 */
	unsigned int	 timeout_data_block;	/* s, waiting for DATA bytes */
	unsigned int	 timeout_session;	/* s, whole session deadline */
	unsigned int	 timeout_data_total;	/* s, whole DATA deadline */
};

/* One domain, as loaded by the master from virtual.conf and the
 * domain's own etc/virtmail.conf. */
struct smtpd_domain {
	const struct domain	*vd;		/* dir, addresses */
	char			*name;		/* log name (basename of dir) */
	char			*hostname;	/* banner and HELO name */
	char			**local_domains; /* lower case, NULL-ended */
	size_t			 nlocal_domains;
	int			 mailbox_mbox;	/* 0: Maildir, 1: mbox */
	char			*run_as;
	struct netmask		*relay_from;
	size_t			 nrelay_from;
	struct route		*routes;
	size_t			 nroutes;
	char			*tls_cert, *tls_key;
	int			 spf_mode;	/* 0 off, 1 tag, 2 reject */
	char			**milters;	/* raw lines, NULL-ended */
	struct smtpd_limits	 limits;
};

/* Global settings from virtmail.conf. */
struct smtpd_conf {
	int			 port_smtp;
	int			 port_submission;
	int			 port_smtps;
	int			 listen_any;	/* wildcard + getsockname() */
	unsigned int		 queue_lifetime;	/* s */
	unsigned int		 retry_min, retry_max;	/* s */
	unsigned int		 delay_warning;		/* s; 0 off */
	int			 verbose;
	struct smtpd_limits	 limits;
};

/* conf.c */
int	smtpd_conf_load(struct smtpd_conf *c, const char *path,
	    struct diag *d);
int	smtpd_domain_load(struct smtpd_domain *sd, const struct domain *vd,
	    const struct smtpd_conf *c, struct diag *d);
void	smtpd_domain_free(struct smtpd_domain *sd);
/* Whether domain (lower case) is one of sd's local domains. */
int	smtpd_domain_is_local(const struct smtpd_domain *sd,
	    const char *domain);
/* Whether sa is inside one of sd's relay_from networks. */
int	smtpd_relay_allowed(const struct smtpd_domain *sd,
	    const struct sockaddr *sa);

/* smtp_server.c — runs in the worker, already chrooted and unprivileged. */
/*
 * Serve the domain: accept on listen_fds (kinds[i] says which port each
 * is), or receive accepted sockets from the master on master_fd
 * (wildcard mode; -1 when unused).  Returns only on shutdown.
 */
void	smtp_server_run(struct smtpd_domain *sd, const int *listen_fds,
	    const enum listener_kind *kinds, size_t nlisten, int master_fd);
/* Serve one session on fd in, fd out (inetd mode), then return. */
void	smtp_server_inetd(struct smtpd_domain *sd, int in, int out,
	    enum listener_kind kind);

/* runner.c — the queue runner; called in a fresh child of the master,
 * still root and not chrooted.  Never returns. */
void	runner_main(struct smtpd_domain *sd, const struct smtpd_conf *c)
	    __attribute__((noreturn));

#endif
