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

#include "buf.h"
#include "domain.h"
#include "passwd.h"
#include "queue.h"

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
	/* Added for smtp_session.c; 0 means the built-in default. */
	unsigned int	 received_max;		/* Received: lines, else loop */
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

/*
 * Wildcard mode: the master hands each accepted connection to the
 * domain's worker over master_fd (a SOCK_SEQPACKET socketpair) with
 * fdpass_send(), the data being one struct smtpd_pass.
 */
struct smtpd_pass {
	int32_t			 kind;		/* enum listener_kind */
};

/* master.c — the root master (smtpd.c parses the options). */
struct smtpd_opts {
	const char		*virtual_conf;	/* -f */
	const char		*global_conf;	/* -C */
	int			 debug;		/* -d: foreground, stderr */
	int			 verbose;	/* -v */
};
/* -t: print what would be served; 0 when all is well, else 1. */
int	master_check(const struct smtpd_opts *o);
/* -i: one session on fds 0 and 1; returns an exit status on failure. */
int	master_inetd(const struct smtpd_opts *o);
/* Run the master until SIGTERM; returns the exit status. */
int	master_run(const struct smtpd_opts *o);

/* runner.c — the queue runner; called in a fresh child of the master,
 * still root and not chrooted.  Never returns. */
void	runner_main(struct smtpd_domain *sd, const struct smtpd_conf *c)
	    __attribute__((noreturn));

/*
 * deliver_local.c — local delivery.  The queue runner asks the
 * domain's privileged deliverer (runner.c) with a deliver_req; the
 * deliverer re-checks it and forks a child that becomes the user and
 * writes the mailbox; the answer is a deliver_res.  Both travel as one
 * datagram of at most DELIVER_MSG_MAX bytes (see deliver_local.c).
 */
#define DELIVER_MSG_MAX		4096
#define DELIVER_ADDR_MAX	512	/* an address, NUL included */
#define DELIVER_MAILBOX_MAX	1024
#define DELIVER_REASON_MAX	256
#define DELIVER_MBOX_DIR	"/var/spool/mail"
#define DELIVER_LOCK_STALE	300	/* s: a dotlock older than this is stale */
#define DELIVER_LOCK_WAIT	60	/* s: give up waiting for a lock */

enum deliver_status {
	DELIVER_OK,
	DELIVER_TEMPFAIL,
	DELIVER_PERMFAIL,
};

struct deliver_req {
	uint32_t	 reqid;
	int		 mbox;		/* 0: Maildir, 1: mbox */
	int		 recovered;	/* look for an earlier copy first */
	char		 queue_id[QUEUE_ID_LEN + 1];
	unsigned int	 rcpt_index;
	long long	 created;	/* envelope time: part of the file name */
	char		 user[PASSWD_NAME_MAX + 1];
	char		 rcpt[DELIVER_ADDR_MAX];	/* Delivered-To: */
	char		 sender[DELIVER_ADDR_MAX];	/* Return-Path:; "" null */
};

struct deliver_res {
	uint32_t		 reqid;
	enum deliver_status	 status;
	char			 mailbox[DELIVER_MAILBOX_MAX];
	char			 reason[DELIVER_REASON_MAX];
};

/* mbox ">From " quoting state, for data that arrives in pieces. */
struct deliver_quote {
	int		 match;		/* bytes of "From " seen at line start,
					   -1 inside a line */
	int		 lastc;		/* last byte written, '\n' at start */
};

/* Encode r into dst (size bytes); 0 with *len_r, or -1 when bad/too long. */
int	deliver_req_encode(const struct deliver_req *r, char *dst,
	    size_t size, size_t *len_r);
/* Decode and validate a request exactly; -1 with *error_r. */
int	deliver_req_decode(const char *src, size_t len, struct deliver_req *r,
	    const char **error_r);
int	deliver_res_encode(const struct deliver_res *r, char *dst,
	    size_t size, size_t *len_r);
int	deliver_res_decode(const char *src, size_t len, struct deliver_res *r,
	    const char **error_r);
/* The deterministic Maildir base name of recipient idx of message qid. */
int	deliver_maildir_name(char *dst, size_t size, long long created,
	    const char *qid, unsigned int idx, const char *host);
void	deliver_quote_init(struct deliver_quote *q);
/* Append data to out with "From " lines quoted; -1 when out is full. */
int	deliver_quote(struct deliver_quote *q, struct buf *out,
	    const char *data, size_t len);
/* Flush a pending partial "From" and end with a newline and a blank line. */
int	deliver_quote_end(struct deliver_quote *q, struct buf *out);
/* Root, in the delivery child: create the mbox owned by the user if
 * missing and take the dotlock.  0, or -1 with res filled. */
int	deliver_mbox_prepare(const struct deliver_req *r, uid_t uid,
	    gid_t gid, struct deliver_res *res);
void	deliver_mbox_unlock(const struct deliver_req *r);
/* As the user: write the message from msgfd into the mailbox. */
void	deliver_local(const struct deliver_req *r, const char *home,
	    uid_t uid, const char *hostname, int msgfd,
	    struct deliver_res *res);

#endif
