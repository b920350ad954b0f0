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
 *	runner	  the domain's queue runner, chrooted as run_as (runner*.c)
 *	deliverer root outside the domain's root, few capabilities: forks
 *		  the writers that enter the root as the mailbox's user
 *		  (deliverer.c, deliver_agent.c, deliver_spool.c,
 *		  deliver_local.c); one for the runner, one for the worker
 */
#ifndef VIRTMAIL_SMTPD_H
#define VIRTMAIL_SMTPD_H

#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aliases.h"
#include "buf.h"
#include "daemon_main.h"
#include "domain.h"
#include "drop.h"
#include "fileio.h"
#include "passwd.h"
#include "queue.h"

#define SMTPD_NAME		"virtmail-smtpd"
#define SMTPD_DOMAIN_CONF	"etc/virtmail.conf"	/* inside the root */
/* What the master and -i answer a client they will not serve. */
#define SMTPD_REPLY_NO_SERVICE	"421 4.3.0 no service for this address\r\n"
#define SMTPD_REPLY_CONF_ERROR	"421 4.3.0 service not available " \
				    "(configuration error)\r\n"

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

/* tls_policy DOMAIN none|may|encrypt|verify (client side). */
enum tls_policy_level {
	TLS_POLICY_NONE,
	TLS_POLICY_MAY,
	TLS_POLICY_ENCRYPT,
	TLS_POLICY_VERIFY,
};

struct tls_policy {
	char			*domain;	/* lower case; "*" for any */
	enum tls_policy_level	 level;
};

struct tls_pair;
struct tls_server;

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
	int			 spf_helo;	/* check HELO for every message */
	char			**milters;	/* raw lines, NULL-ended */
	struct smtpd_limits	 limits;
	/* TLS and AUTH (smtp_auth.c, common/tls.c). */
	struct tls_pair		*tls_pairs;	/* tls_cert/tls_key first */
	size_t			 ntls_pairs;
	struct tls_server	*tls;		/* loaded by the master */
	int			 allow_plaintext_auth;
	int			 sender_login_match;
	int			 received_auth;	/* name the user in Received: */
	unsigned int		 auth_delay;	/* s after a failed AUTH */
	unsigned int		 auth_failures_max; /* per session */
	int			 auth_fd;	/* worker: the auth service */
	int			*direct_fds;	/* worker: its deliverer, one */
	size_t			 ndirect_fds;	/* per commit thread */
	struct tls_policy	*tls_policies;
	size_t			 ntls_policies;
	char			*tls_ca_file;	/* inside the root */
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
	int			 port_tls;	/* pop3s_port; 0 off */
};
int	smtpd_conf_load_pop3(struct pop3_conf *p, const char *path,
	    struct diag *d);

/* conf.c, for the TLS issue: the policy for a destination domain. */
enum tls_policy_level smtpd_tls_policy(const struct smtpd_domain *sd,
	    const char *domain);

/*
 * smtp_auth.c — the domain's SMTP AUTH service: a root process
 * chrooted into the domain's root that only answers "check user U
 * password P" from the worker, over a SOCK_SEQPACKET socketpair.
 * Request: "AUTH1" NUL id NUL client-ip NUL user NUL password NUL, one
 * datagram of at most SMTP_AUTH_MSG_MAX bytes, every field bounded.
 * Answer: "id OK name", "id FAIL" or "id TEMP".  See docs/SECURITY.md.
 */
#define SMTP_AUTH_MSG_MAX	1024
#define SMTP_AUTH_USER_MAX	256
#define SMTP_AUTH_PASS_MAX	512
#define SMTP_AUTH_IP_FAILS	10	/* failures per client IP ... */
#define SMTP_AUTH_IP_WINDOW	600	/* ... in this many seconds */

struct smtp_auth_req {
	uint32_t	 id;
	char		 ip[64];
	char		 user[SMTP_AUTH_USER_MAX + 1];
	char		 pass[SMTP_AUTH_PASS_MAX + 1];
};

int	smtp_auth_req_encode(const struct smtp_auth_req *r, char *dst,
	    size_t size, size_t *len_r);
/* Decode exactly; 0, or -1 when malformed. */
int	smtp_auth_req_decode(const char *src, size_t len,
	    struct smtp_auth_req *r);
/* In the worker's child, still root and not chrooted, before its keys
 * are loaded: fork the service; the worker's end of the socketpair, or
 * -1. */
int	smtp_auth_start(const struct smtpd_domain *sd);

/* smtp_server.c — runs in the worker, already chrooted and unprivileged. */
/*
 * Serve the domain: accept on listen_fds (kinds[i] says which port each
 * is), or receive accepted sockets from the master on master_fd
 * (wildcard mode; -1 when unused).  Returns only on shutdown.
 */
void	smtp_server_run(struct smtpd_domain *sd, const int *listen_fds,
	    const enum listener_kind *kinds, size_t nlisten, int master_fd);
/*
 * Inetd mode: the same server with no listeners and one session, read
 * from in (a socket) and written to out (the same, or a pipe); returns
 * when the session ends.
 */
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

/* master.c — the root master (common/daemon_main.c parses the options). */
/* -t: print what would be served; 0 when all is well, else 1. */
int	master_check(const struct daemon_opts *o);
/* master_inetd.c */
/* -i: one session on fds 0 and 1 (the worker's server, TLS, AUTH, SPF,
 * milters); returns an exit status on failure. */
int	master_inetd(const struct daemon_opts *o);
/* Run the master until SIGTERM; returns the exit status. */
int	master_run(const struct daemon_opts *o);

/*
 * smtp_direct.c — the SMTP worker's own deliverer, for delivery before
 * the 250.  Called as root before the chroot; sets sd->direct_fds to n
 * sockets (one per commit thread), or leaves none when it cannot.
 */
#define SMTPD_DIRECT_MAX	32	/* SMTP_COMMIT_THREADS */
void	smtp_direct_start(struct smtpd_domain *sd, size_t n);

/* runner.c — the queue runner; called in a fresh child of the master,
 * still root and not chrooted.  Never returns. */
void	runner_main(struct smtpd_domain *sd, const struct smtpd_conf *c)
	    __attribute__((noreturn));

/*
 * deliver_local.c — local delivery.  The queue runner asks the
 * domain's privileged deliverer (deliverer.c) with a deliver_req; the
 * deliverer re-checks it and forks a child that enters the domain's
 * root as the user and writes the mailbox; the answer is a
 * deliver_res.  Both travel as one
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
	int		 mbox;		/* 0: Maildir, 1: mbox; set by the
					   deliverer from the domain's
					   configuration, never sent */
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
	int			 status;	/* enum deliver_status; -1 open */
	int			 accepted;	/* 2xx to RCPT */
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
	uint64_t		 size_max;	/* 0 no SIZE; UINT64_MAX no limit */
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
	/* STARTTLS (RFC 3207); mta.c sets tls_policy before the banner. */
	int			 tls_policy;	/* enum tls_policy_level */
	int			 tls;		/* the connection is encrypted */
	int			 tls_start;	/* 220 to STARTTLS: wrap it now */
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

/* mta_session.c, STARTTLS: after the caller's handshake succeeded,
 * forget the extensions and say EHLO again (RFC 3207 §4.2). */
int	mta_session_tls_started(struct mta_session *s);

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

/* drop.c — the drop file format: see drop.h. */

/* pickup.c — the runner's side, run_as, chrooted in the domain root. */
/*
 * Create or check DROP_DIR (owner run_as, group virtmail-drop, mode
 * 1730) and the queue directory's traversal bit for that group; add
 * an inotify watch for it to ifd.  Returns the watch descriptor, or -1
 * when local submission is disabled (logged).
 */
int	pickup_init(const struct smtpd_domain *sd, int ifd);
/* Turn every ready drop file into a queued message; remove stale ones. */
void	pickup_scan(const struct smtpd_domain *sd);
/*
 * Convert one drop file already read into memory (uid: its owner) into
 * a committed queued message; its id in id_r.  0; -1 with *error_r on
 * a temporary (queue) failure; -2 with *error_r when the file is bad.
 */
int	pickup_convert(const struct smtpd_domain *sd, const char *data,
	    size_t len, uid_t uid, char id_r[QUEUE_ID_LEN + 1],
	    const char **error_r);

/* sendmail_msg.c — virtmail-sendmail's message handling (no I/O). */
#define SENDMAIL_HEADER_MAX	(1024 * 1024)	/* header section bytes */
#define SENDMAIL_FIELDS_MAX	1000		/* header fields */
#define SENDMAIL_NAME_MAX	128		/* -F full name */

struct sendmail_msg {
	const char	*user;		/* invoking user's name */
	const char	*fullname;	/* -F or gecos; may be NULL */
	const char	*sender;	/* envelope sender, "" for <> */
	const char	*domain;	/* first local domain, qualifies bare names */
	const char	*hostname;	/* for Message-ID */
	int		 extract;	/* -t */
	time_t		 now;
	/* Results. */
	struct buf	 out;		/* the message to queue */
	char		**rcpts;	/* -t recipients, qualified */
	size_t		 nrcpts;
};

/*
 * Normalise line ends (CRLF to LF), drop Bcc:, collect To/Cc/Bcc
 * recipients when extract, add Date:, Message-ID: and From: when
 * missing.  in is the whole message as read.  0, or -1 with *error_r.
 */
int	sendmail_msg_prepare(struct sendmail_msg *m, const char *in,
	    size_t len, size_t max, const char **error_r);
void	sendmail_msg_free(struct sendmail_msg *m);
/*
 * Parse one RFC 5322 address list (a To/Cc/Bcc field value, unfolded);
 * each address found, qualified with domain when it has none, is
 * passed to fn.  0, or -1 with *error_r.
 */
int	sendmail_addr_list(const char *value, const char *domain,
	    int (*fn)(void *, const char *), void *ctx, const char **error_r);
/* Qualify and check one address into dst ("local@domain").  0 or -1. */
int	sendmail_addr_qualify(const char *in, const char *domain, char *dst,
	    size_t size, const char **error_r);

/* spf.c — SPF checks (RFC 7208) with libspf2, in a child process of the
 * worker that may die or hang without harm; see docs/SECURITY.md. */
enum spf_result {
	SPF_R_NONE,
	SPF_R_NEUTRAL,
	SPF_R_PASS,
	SPF_R_FAIL,
	SPF_R_SOFTFAIL,
	SPF_R_TEMPERROR,
	SPF_R_PERMERROR,
};
#define SPF_MSG_MAX		8192	/* one request or reply datagram */
#define SPF_TIMEOUT_DEF		20	/* s: then temperror */

struct spf_req {
	uint32_t	 id;
	char		 ip[64];		/* client address */
	char		 helo[256];
	char		 sender[520];		/* "" for <> */
	char		 receiver[256];		/* our hostname */
};

struct spf_res {
	uint32_t	 id;
	int32_t		 result;		/* enum spf_result */
	char		 received[2048];	/* Received-SPF: value */
	char		 authres[1024];		/* RFC 8601 resinfo */
	char		 comment[512];		/* SMTP reply text */
};

struct ev_loop;
struct spf_client;
typedef void spf_done_cb(void *arg, const struct spf_res *res);

const char *spf_result_name(int result);
int	spf_req_encode(const struct spf_req *r, char *dst, size_t size,
	    size_t *len_r);
int	spf_req_decode(const char *src, size_t len, struct spf_req *r);
int	spf_res_encode(const struct spf_res *r, char *dst, size_t size,
	    size_t *len_r);
int	spf_res_decode(const char *src, size_t len, struct spf_res *r);
/* In the worker (chrooted, unprivileged): fork the checker child;
 * timeout in seconds (0: SPF_TIMEOUT_DEF). */
struct spf_client *spf_client_new(struct ev_loop *loop, unsigned int timeout);
/* Ask; cb is called exactly once (temperror on timeout or a dead
 * checker) unless cancelled.  Returns the request id (never 0). */
uint32_t spf_client_check(struct spf_client *c, const struct spf_req *r,
	    spf_done_cb *cb, void *arg);
void	spf_client_cancel(struct spf_client *c, uint32_t id);
void	spf_client_free(struct spf_client *c);

/* milter.c — the MTA side of the milter protocol, version 6. */
#define MILTER_ACT_ACCEPT	0
#define MILTER_ACT_TEMPFAIL	1
#define MILTER_ACT_REJECT	2

struct milter_conf {
	char		 spec[512];	/* the line, for logs */
	int		 family;	/* AF_INET, AF_INET6, AF_UNIX */
	char		 host[256];	/* address literal or unix path */
	int		 port;
	unsigned int	 connect_ms, cmd_ms, eom_ms;
	int		 defact;	/* MILTER_ACT_* */
};

/* Parse "inet:HOST:PORT|inet6:[ADDR]:PORT|unix:/PATH [connect=T]
 * [timeout=T] [eom_timeout=T] [default=accept|tempfail|reject]";
 * 0, or -1 with *error_r. */
int	milter_conf_parse(const char *line, struct milter_conf *mc,
	    const char **error_r);

struct smtp_session;
struct milter_sess;

/* The milters of one SMTP session; done(arg) when a question asked
 * with milter_sess_ask() has its answer in s->ans. */
struct milter_sess *milter_sess_new(struct ev_loop *loop,
	    const struct milter_conf *mc, size_t n, struct smtp_session *s,
	    void (*done)(void *), void *arg);
/* 1: wait for done(); 0: nothing to ask (s->ans is CONTINUE). */
int	milter_sess_ask(struct milter_sess *m, int what, const char *data,
	    size_t len);
/* The transaction was abandoned: SMFIC_ABORT, no reply. */
void	milter_sess_abort(struct milter_sess *m);
/* SMFIC_QUIT and close. */
void	milter_sess_free(struct milter_sess *m);

/* The packet codec (unit-tested with hostile input). */
#define MILTER_LEN_MAX		(1024 * 1024)	/* refuse larger packets */
/* 1 with a packet (cmd, data, len; consumed bytes in *used_r), 0 when
 * more bytes are needed, -1 when malformed (zero or oversized length). */
int	milter_packet_next(const char *in, size_t inlen, size_t max,
	    int *cmd_r, const char **data_r, size_t *len_r, size_t *used_r);
/* Append a packet; -1 when out is full. */
int	milter_packet_put(struct buf *out, int cmd, const void *data,
	    size_t len);

/* milter.c — SMFIF_SETSYMLIST: the macro lists a filter asks for in
 * its SMFIC_OPTNEG reply, after the three words (stages SMFIM_CONNECT
 * 0 .. SMFIM_EOH 6; names separated by blanks or commas). */
#define MILTER_STAGES		7
#define MILTER_SYMLIST_MAX	1024	/* one stage's list, with its NUL */
struct milter_symlist {
	unsigned int	 set;			/* bit per stage */
	char		 names[MILTER_STAGES][MILTER_SYMLIST_MAX];
};
/* Parse the pairs (uint32 stage, "names") in d; 0, or -1 with
 * *error_r (unknown or repeated stage, overlong list, no NUL). */
int	milter_symlist_parse(const char *d, size_t len,
	    struct milter_symlist *sl, const char **error_r);
/* 1 when name ("x", "{x}") is in the list of stage. */
int	milter_symlist_has(const struct milter_symlist *sl, int stage,
	    const char *name);

/*
 * smtp_userdb.c — a domain's etc/passwd and etc/aliases, re-read when
 * they change; shared by the SMTP worker (RCPT checks) and the queue
 * runner (delivery).
 */
struct smtp_userdb {
	const char		*passwd_path;	/* default "/etc/passwd" */
	const char		*aliases_path;	/* default "/etc/aliases" */
	struct passwd_file	 pw;
	struct aliases		 al;
	struct file_id		 pw_id, al_id;	/* as loaded */
	int			 pw_loaded, al_loaded;
};

/* Set up a user database with the default paths. */
void	smtp_userdb_init(struct smtp_userdb *u);
void	smtp_userdb_free(struct smtp_userdb *u);
/*
 * Look up a local part (case-insensitively) among users and aliases.
 * 1 and the canonical name in name_r, 0 when unknown, -1 on a
 * temporary failure (passwd unreadable).
 */
int	smtp_userdb_lookup(struct smtp_userdb *u, const char *local,
	    char *name_r, size_t size);
/*
 * Re-read whatever changed.  A missing or unreadable passwd is -1 (a
 * temporary failure, never "no such user"); no aliases file is none.
 */
int	smtp_userdb_refresh(struct smtp_userdb *u);

#endif
