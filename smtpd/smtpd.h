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

/* conf.c, for virtmail-pop3d: the pop3_* keys of virtmail.conf. */
struct pop3_conf {
	int			 port;		/* pop3_port; 0 off */
	int			 listen_any;
	unsigned int		 sessions_max;
	unsigned int		 sessions_per_ip_max;
	unsigned int		 timeout;	/* s, idle */
	unsigned int		 auth_delay;	/* s after a failed login */
	unsigned int		 auth_failures_max;
	int			 verbose;
};
int	smtpd_conf_load_pop3(struct pop3_conf *p, const char *path,
	    struct diag *d);

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

/*
 * dns.c — next hops for a mail domain (RFC 5321 §5.1).  dns_resolve()
 * blocks and runs on the resolver threads only; the runner submits
 * requests with dns_async_submit() and gets them back in its event
 * loop.  The resolver reads etc/resolv.conf inside the domain's root.
 */
#define DNS_NAME_MAX		256	/* a host name, NUL included */
#define DNS_MX_MAX		16	/* exchangers kept per domain */
#define DNS_HOP_MAX		64	/* addresses kept per domain */
#define DNS_THREADS		4

enum dns_status {
	DNS_OK,
	DNS_TEMPFAIL,		/* try again later */
	DNS_PERMFAIL,		/* no such domain, or no address at all */
	DNS_NULLMX,		/* RFC 7505: the domain takes no mail */
};

struct dns_mx {
	char			 host[DNS_NAME_MAX];
	unsigned int		 pref;
};

/* One address to try, in order. */
struct dns_hop {
	char			 host[DNS_NAME_MAX];	/* exchanger name */
	unsigned int		 pref;
	struct sockaddr_storage	 ss;			/* port not set */
	socklen_t		 sslen;
};

struct dns_result {
	enum dns_status		 status;
	char			 error[128];
	struct dns_hop		 hops[DNS_HOP_MAX];
	size_t			 nhops;
};

struct dns_req;
typedef void dns_done_cb(struct dns_req *req, void *arg);

struct dns_req {
	char			 domain[DNS_NAME_MAX];
	struct dns_result	 res;
	dns_done_cb		*cb;
	void			*arg;
};

struct ev_loop;
/* Sort by preference, shuffling equal preferences with rnd(). */
void	dns_mx_sort(struct dns_mx *mx, size_t n, unsigned int (*rnd)(void));
/* Resolve domain's next hops into res (blocking). */
void	dns_resolve(const char *domain, struct dns_result *res);
/* Start the resolver threads; 0, or -1 with errno. */
int	dns_async_init(struct ev_loop *loop);
/* Resolve req->domain off the event loop; req->cb is called from it. */
void	dns_async_submit(struct dns_req *req);

/*
 * mta_session.c — the SMTP client protocol as a state machine over
 * buffers, independent of sockets (unit-tested): feed it the server's
 * bytes, send what it puts in its output buffer.
 */
#define MTA_LINE_MAX		2048	/* a reply line we accept */
#define MTA_REPLY_MAX		512	/* a reply kept for the DSN */
#define MTA_RCPT_MAX		100	/* recipients per transaction */
#define MTA_CHUNK		65536	/* message bytes read at a time */

enum mta_state {
	MTA_BANNER,
	MTA_EHLO,
	MTA_HELO,
	MTA_STARTTLS,		/* reserved for the TLS issue */
	MTA_MAIL,
	MTA_RCPT,
	MTA_DATA,
	MTA_BODY,
	MTA_DOT,
	MTA_QUIT,
	MTA_DONE,
};

struct mta_rcpt {
	const char		*addr;
	int			 status;	/* enum deliver_status */
	char			 dsn[16];	/* X.Y.Z */
	char			 reply[MTA_REPLY_MAX];	/* "" when none */
};

struct mta_session {
	enum mta_state		 state;
	const char		*helo;		/* our name */
	const char		*sender;	/* "" for <> */
	struct mta_rcpt		*rcpts;
	size_t			 nrcpts;
	uint64_t		 size;		/* queue file bytes */
	int			 eightbit;	/* BODY=8BITMIME wanted */
	int			 msgfd;		/* LF-ended queue file */
	/* What the server offered. */
	int			 esmtp, pipelining, ext_8bitmime, starttls;
	uint64_t		 size_max;	/* 0: no SIZE limit */
	/* Progress. */
	size_t			 rcpt_sent, rcpt_replied, accepted;
	int			 body_eof, bol, body_dot;
	struct buf		 in, out;
	struct buf		 reply;		/* the reply being collected */
	/* Session end: a failure that applies to every pending rcpt. */
	int			 fail_status;	/* enum deliver_status */
	char			 fail_dsn[16];
	char			 fail_reply[MTA_REPLY_MAX];
	int			 done;		/* MTA_DONE reached */
	int			 reached_data;	/* '.' sent: duplicate risk */
};

void	mta_session_init(struct mta_session *s, const char *helo,
	    const char *sender, struct mta_rcpt *rcpts, size_t nrcpts,
	    uint64_t size, int eightbit, int msgfd);
void	mta_session_free(struct mta_session *s);
/* Server bytes arrived; 0, or -1 when the session is over (s->done). */
int	mta_session_input(struct mta_session *s, const char *data,
	    size_t len);
/* The output buffer drained: refill the body; 0 or -1. */
int	mta_session_pump(struct mta_session *s);
/* The connection broke or timed out: every open rcpt is deferred. */
void	mta_session_abort(struct mta_session *s, const char *why);
/* Append len LF-ended bytes to out as CRLF with dot-stuffing
 * (RFC 5321 §4.5.2); *bol tracks the start of a line. */
int	mta_body_encode(struct buf *out, const char *data, size_t len,
	    int *bol);

/*
 * mta.c — remote delivery in the runner: next hops, source address,
 * loops, concurrency, timeouts.  A job is one message's recipients in
 * one destination domain; done() is called once with every rcpt's
 * result filled in.
 */
#define MTA_PARALLEL		16	/* sessions per domain runner */
#define MTA_PER_DEST		4	/* sessions per destination domain */
#define MTA_TIMEOUT_CONNECT	30	/* s */
#define MTA_TIMEOUT_CMD		300	/* s, RFC 5321 §4.5.3.2 */
#define MTA_TIMEOUT_DOT		600	/* s, §4.5.3.2.6 */

struct mta_job;
typedef void mta_done_cb(struct mta_job *job, void *arg);

struct mta_job {
	char			 id[QUEUE_ID_LEN + 1];
	const char		*sender;
	char			 domain[DNS_NAME_MAX];	/* lower case */
	uint64_t		 size;
	int			 eightbit;
	struct mta_rcpt		*rcpts;
	size_t			 nrcpts;
	char			 relay[DNS_NAME_MAX + 80]; /* HOST[IP]:PORT */
	char			 rmta[DNS_NAME_MAX];	/* for Remote-MTA */
	mta_done_cb		*done;
	void			*arg;
	void			*priv;		/* mta.c's */
};

void	mta_init(struct ev_loop *loop, const struct smtpd_domain *sd,
	    const struct smtpd_conf *c);
/* Queue job for delivery; job->done is always called later, never
 * from inside mta_submit. */
void	mta_submit(struct mta_job *job);
/* Sessions connected or connecting. */
size_t	mta_active(void);

/*
 * bounce.c — delivery status notifications (RFC 3464, RFC 3462).
 */
#define BOUNCE_HEADERS_MAX	(64 * 1024)	/* original headers quoted */

struct bounce_rcpt {
	const char		*addr;		/* Final-Recipient */
	const char		*orcpt;		/* Original-Recipient or NULL */
	int			 failed;	/* 1 failed, 0 delayed */
	const char		*status;	/* X.Y.Z */
	const char		*rmta;		/* Remote-MTA or NULL */
	const char		*diag;		/* Diagnostic-Code text */
	int			 diag_smtp;	/* diag is an SMTP reply */
};

struct bounce_info {
	const char		*queue_id;
	const char		*reporting_mta;	/* our hostname */
	const char		*from_domain;	/* MAILER-DAEMON@ */
	const char		*to;		/* the original sender */
	time_t			 arrival;
	time_t			 now;
	const char		*boundary;	/* NULL: derived from the id */
};

/* Build the DSN into out; headers are the original message's header
 * block (LF line ends).  0, or -1 when out is full. */
int	bounce_build(struct buf *out, const struct bounce_info *bi,
	    const struct bounce_rcpt *rcpts, size_t n, const char *headers,
	    size_t hlen);
/* Copy the header block of the queue file at fd into out (at most
 * BOUNCE_HEADERS_MAX bytes).  0 or -1. */
int	bounce_read_headers(int fd, struct buf *out);
/* Build and commit the DSN into qdir from <> to bi->to; its queue id
 * in id_r.  0, or -1 with *error_r. */
int	bounce_inject(const char *qdir, const struct bounce_info *bi,
	    const struct bounce_rcpt *rcpts, size_t n, int msgfd,
	    char id_r[QUEUE_ID_LEN + 1], const char **error_r);

/*
 * The runner's control socket, QUEUE_DIR "/control" inside the
 * domain's root (mode 0600, owned by run_as; the virtmail command
 * connects as root).  One request line, one answer line, then the
 * runner closes the connection:
 *	flush			retry every deferred message now
 *	delete ID		remove message ID from the queue
 *	bounce ID		bounce every pending recipient of ID
 *				("bounced by administrator")
 * Answers: "ok" or "error TEXT".  Lines end in LF; a request longer
 * than RUNNER_CTL_LINE_MAX is refused.  The answer to delete and
 * bounce comes once the queue files reflect it.
 */
#define RUNNER_CTL_SOCKET	QUEUE_DIR "/control"
#define RUNNER_CTL_LINE_MAX	128
#define RUNNER_CTL_TIMEOUT	30	/* s for a client to send its line */
#define RUNNER_CTL_FLUSH	"flush"
#define RUNNER_CTL_DELETE	"delete"
#define RUNNER_CTL_BOUNCE	"bounce"
#define RUNNER_CTL_OK		"ok"
#define RUNNER_CTL_ERROR	"error"

#endif
