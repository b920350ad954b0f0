/*
 * smtp_session.h — one SMTP session (RFC 5321) as a state machine over
 * buffers, private to virtmail-smtpd's worker.
 *
 * The I/O layer (smtp_server.c, or a unit test, or a fuzzer) appends
 * received bytes to a struct buf and calls smtp_session_input(), which
 * consumes every complete command line (or DATA bytes), appends the
 * replies to the session's output buffer and says what to do next.
 * Nothing here touches a socket, sleeps or exits.
 */
#ifndef VIRTMAIL_SMTP_SESSION_H
#define VIRTMAIL_SMTP_SESSION_H

#include <sys/socket.h>
#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aliases.h"
#include "buf.h"
#include "line.h"
#include "passwd.h"
#include "queue.h"
#include "smtpd.h"

#define SMTP_HELO_MAX		255	/* EHLO argument */
#define SMTP_CLIENT_NAME_MAX	255
#define SMTP_RECEIVED_MAX	50	/* Received: lines before 554 5.4.6 */
#define SMTP_OUT_HIGH		(256 * 1024) /* stop parsing past this */
#define SMTP_FRAGMENT		4096	/* DATA bytes handled without CRLF */
#define SMTP_BODY_FLUSH		(64 * 1024) /* queue write size */

/* Used when a limit in struct smtpd_limits is 0. */
#define SMTP_DEF_LINE_MAX	2048		/* §4.5.3.1.4: at least 512 */
#define SMTP_DEF_TEXT_LINE_MAX	1000		/* §4.5.3.1.6 */
#define SMTP_DEF_SIZE_MAX	(50ULL * 1024 * 1024)
#define SMTP_DEF_RCPT_MAX	100		/* §4.5.3.1.8 */
#define SMTP_DEF_ERRORS_MAX	20

enum smtp_state {
	SMTP_STATE_GREETING,	/* connected, 220 not sent yet */
	SMTP_STATE_INIT,	/* greeted, waiting for EHLO/HELO */
	SMTP_STATE_HELO,	/* EHLO/HELO done, no transaction */
	SMTP_STATE_MAIL,	/* MAIL accepted, no recipient yet */
	SMTP_STATE_RCPT,	/* at least one recipient accepted */
	SMTP_STATE_DATA,	/* 354 sent, receiving the message */
	SMTP_STATE_COMMIT,	/* end of data seen, waiting for commit */
	SMTP_STATE_QUIT,	/* closing: nothing more is parsed */
};

/* What a suspended session resumes with (smtp_session.c). */
enum smtp_pend {
	SMTP_PEND_NONE,
	SMTP_PEND_CONNECT,
	SMTP_PEND_HELO,
	SMTP_PEND_SPF,
	SMTP_PEND_MAIL,
	SMTP_PEND_RCPT,
	SMTP_PEND_DATA,
	SMTP_PEND_STEP,		/* a step inside DATA */
	SMTP_PEND_AUTH,		/* AUTH credentials out for checking */
};

/* What the I/O layer does after smtp_session_input(). */
enum smtp_action {
	SMTP_ACT_CONTINUE,	/* write the output, read more */
	SMTP_ACT_CLOSE,		/* write the output, then close */
	SMTP_ACT_COMMIT,	/* smtp_session_commit(), then input again */
	SMTP_ACT_WAIT,		/* a question is out: smtp_session_resume() */
	/* Write the output (the 220 to STARTTLS), throw away every byte
	 * of input left (RFC 3207 §6), start the TLS handshake, then
	 * smtp_session_tls(). */
	SMTP_ACT_STARTTLS,
};

/*
 * The questions the session asks outside itself, at each step of the
 * transaction, so that SPF checks and milters (smtp_hooks.c,
 * spf.c, milter.c) never block the engine.  With hooks set, the
 * session calls hooks->ask(); when that returns 1 the session is
 * suspended (every call returns SMTP_ACT_WAIT) until the I/O layer
 * calls smtp_session_resume() with the answer.
 */
enum smtp_ask {
	SMTP_ASK_CONNECT,	/* before the greeting */
	SMTP_ASK_HELO,		/* s->helo */
	SMTP_ASK_SPF,		/* check s->sender / s->helo */
	SMTP_ASK_MAIL,		/* s->sender, s->mail_args */
	SMTP_ASK_RCPT,		/* s->rcpt_asked */
	SMTP_ASK_DATA,		/* DATA, queue id known */
	SMTP_ASK_HEADER,	/* s->hdrs[s->nhdrs - 1] */
	SMTP_ASK_EOH,
	SMTP_ASK_BODY,		/* data, len: body bytes, LF line ends */
	SMTP_ASK_EOM,		/* modifications go to s->mods */
	/* data: "user\0password" (len bytes); answer ACCEPT with the
	 * canonical user name in reply, REJECT or TEMPFAIL.  Wipe data. */
	SMTP_ASK_AUTH,
};

enum smtp_verdict {
	SMTP_V_CONTINUE,
	SMTP_V_ACCEPT,		/* no more questions for this message */
	SMTP_V_REJECT,		/* 5xx */
	SMTP_V_TEMPFAIL,	/* 4xx */
	SMTP_V_DISCARD,		/* say 250, keep nothing */
	SMTP_V_SHUTDOWN,	/* 421 and close */
};

#define SMTP_REPLY_MAX		2048

struct smtp_answer {
	enum smtp_verdict	 v;
	/* A whole reply ("550 5.7.1 text", lines joined by CRLF, no final
	 * CRLF) to use instead of the default one; "" for none. */
	char			 reply[SMTP_REPLY_MAX];
};

struct smtp_session;

struct smtp_hooks {
	/* 1: the answer comes later; 0: nothing asked, go on. */
	int	(*ask)(void *arg, struct smtp_session *s, enum smtp_ask what,
		    const char *data, size_t len);
	/* The transaction ended before its end of message. */
	void	(*abort)(void *arg, struct smtp_session *s);
	void	*arg;
	int	 milters;	/* ask the filter steps at all */
};

/* A header field of the message: name, and the raw text after the
 * colon (folded lines joined with LF). */
struct smtp_header {
	char		*name;
	char		*value;
};

/* End-of-message modifications asked by a filter (milter.c). */
enum smtp_mod_type {
	SMTP_MOD_HDR_ADD,	/* name, value */
	SMTP_MOD_HDR_INSERT,	/* index (0: first), name, value */
	SMTP_MOD_HDR_CHANGE,	/* index (1-based among name), name, value;
				   "" value deletes */
	SMTP_MOD_RCPT_ADD,	/* value: address */
	SMTP_MOD_RCPT_DEL,	/* value: address */
	SMTP_MOD_SENDER,	/* value: address, "" for <> */
};

struct smtp_mod {
	enum smtp_mod_type	 type;
	unsigned int		 index;
	char			*name;
	char			*value;
};

struct smtp_mods {
	struct smtp_mod		*v;
	size_t			 n;
	int			 body_set;	/* body replaced by body */
	struct buf		 body;		/* LF line ends */
	char			*quarantine;	/* hold reason, or NULL */
};

/* SPF result as the checker reports it (spf.c). */
struct smtp_spf {
	int			 done;
	int			 result;	/* enum spf_result */
	char			*received;	/* Received-SPF: value */
	char			*authres;	/* "spf=pass smtp.mailfrom=..." */
	char			*comment;	/* for the 5xx/4xx text */
};

/* Why a message in DATA is going to be refused at its end. */
#define SMTP_DATA_BARE_LF	0x01
#define SMTP_DATA_BARE_CR	0x02
#define SMTP_DATA_NUL		0x04
#define SMTP_DATA_LONG_LINE	0x08
#define SMTP_DATA_TOO_BIG	0x10
#define SMTP_DATA_LOOP		0x20
#define SMTP_DATA_WRITE		0x40	/* writing the queue file failed */
#define SMTP_DATA_HEADER	0x80	/* header section too big to filter */

#define SMTP_HEADER_MAX		(1024 * 1024)	/* header kept for filters */

/*
 * The domain's users and aliases, read from files inside the root and
 * re-read when their mtime, size or inode changes.  One per worker,
 * shared by its sessions.
 */
struct smtp_session {
	enum smtp_state		 state;
	struct smtpd_domain	*sd;
	struct smtp_userdb	*udb;
	enum listener_kind	 kind;
	const char		*queue_dir;	/* default QUEUE_DIR */
	char			 id[24];	/* for log lines */
	char			 client_addr[64]; /* "" when unknown */
	char			 local_addr[64]; /* that accepted us; "" unknown */
	char			 client_name[SMTP_CLIENT_NAME_MAX + 1];
	struct sockaddr_storage	 peer;
	socklen_t		 peer_len;
	struct buf		*out;		/* replies go here */
	struct line_reader	 lr;

	int			 esmtp;		/* EHLO rather than HELO */
	int			 tls;		/* hook: STARTTLS done */
	int			 tls_available;	/* hook: advertise STARTTLS */
	int			 authenticated;	/* hook: AUTH done */
	char			*auth_user;
	int			 tls_start;	/* 220 to STARTTLS sent */
	char			 tls_info[128];	/* for Received: */
	int			 auth_step;	/* SASL exchange: SMTP_AUTH_* */
	unsigned int		 auth_failures;
	char			*auth_login;	/* LOGIN: the user name */
	char			 helo[SMTP_HELO_MAX + 1];
	unsigned int		 errors;
	unsigned int		 nmessages;

	/* The transaction. */
	char			*sender;	/* "" for <> */
	char			**rcpts;	/* "local@domain" */
	size_t			 nrcpts;
	unsigned int		 flags;		/* QUEUE_F_* */
	uint64_t		 size_declared;

	/* Delivery before the 250 (smtp_direct.c), per recipient. */
	char			**direct_to;	/* "user@domain", or NULL */
	char			**direct_user;	/* passwd name, or NULL */
	size_t			 ndirect;
	int			 direct_fd;	/* the commit thread's; -1 */

	/* DATA. */
	struct queue_writer	 w;
	int			 w_open;
	unsigned int		 data_err;	/* SMTP_DATA_* */
	uint64_t		 data_size;	/* bytes written or counted */
	size_t			 data_linelen;	/* bytes of the current line */
	int			 data_headers;	/* still in the header */
	unsigned int		 data_received;	/* Received: lines seen */
	time_t			 data_start;
	struct buf		 body;		/* batches queue writes */

	/* Suspension (SMTP_ACT_WAIT); NULL hooks: never suspends. */
	const struct smtp_hooks	*hooks;
	enum smtp_pend		 pend;
	struct smtp_answer	 ans;		/* the last answer */
	int			 asked;		/* the DATA step in pend asked */
	char			*rcpt_asked;	/* RCPT waiting for its answer */
	char			*mail_args;	/* ESMTP parameters of MAIL */
	struct smtp_spf		 spf;
	struct smtp_spf		 spf_helo;	/* spf_helo yes: RFC 7208 §2.3 */
	int			 spf_on;	/* checked and filtered */
	int			 discard_all;	/* connect-stage discard */

	/* DATA with filters: the header kept, answers, modifications. */
	int			 hdr_mode;	/* parse header fields */
	struct buf		 hdr_cur;	/* the field being read */
	int			 hdr_ready;	/* hdr_cur holds a whole field */
	int			 hdr_end;	/* 1 blank line, 2 body line */
	struct buf		 hdr_line;	/* a long header line */
	int			 flush_pending;	/* body is due for the queue */
	struct smtp_header	*hdrs;
	size_t			 nhdrs;
	size_t			 hdr_bytes;
	uint64_t		 file_off;	/* bytes already written */
	uint64_t		 prefix_len;	/* our trace headers */
	uint64_t		 body_off;	/* where the body starts */
	int			 hdr_sep;	/* a blank line before the body */
	size_t			 body_mark;	/* body bytes in body start here */
	int			 data_done;	/* <CRLF>.<CRLF> seen */
	int			 eom_asked;
	int			 filtered;	/* filters still asked */
	enum smtp_verdict	 fv;		/* the message's filter verdict */
	char			*fv_reply;
	struct smtp_mods	 mods;
};

/* Set up a fresh session; out receives the replies. */
void	smtp_session_init(struct smtp_session *s, struct smtpd_domain *sd,
	    struct smtp_userdb *udb, enum listener_kind kind,
	    const struct sockaddr *peer, socklen_t peer_len, struct buf *out);
/* Append the 220 greeting. */
void	smtp_session_greet(struct smtp_session *s);
/*
 * Consume what can be consumed from in (complete command lines, DATA
 * bytes), appending replies to s->out.  Stops after an end of data
 * that needs a commit (SMTP_ACT_COMMIT), when the session must close,
 * or when s->out passes SMTP_OUT_HIGH.
 */
enum smtp_action smtp_session_input(struct smtp_session *s, struct buf *in);
/*
 * Make the received message durable and reply 250 (or 451/452).
 * Call only after SMTP_ACT_COMMIT; the I/O layer may batch or defer it.
 */
void	smtp_session_commit(struct smtp_session *s);
/* smtp_direct.c.  In the event loop, before the commit: which
 * recipients may be delivered before the 250. */
void	smtp_direct_plan(struct smtp_session *s);
void	smtp_direct_clear(struct smtp_session *s);
/* In the commit: deliver them; returns how many were marked done in e. */
int	smtp_direct_deliver(struct smtp_session *s, struct queue_env *e);
/* The peer closed its side: drop any message being received. */
void	smtp_session_eof(struct smtp_session *s);
/* A timeout or deadline passed: append 421 4.4.2, the session is over. */
void	smtp_session_timeout(struct smtp_session *s);
/* The server is shutting down: append 421 4.3.2, the session is over. */
void	smtp_session_shutdown(struct smtp_session *s);
/* Too many sessions: append 421 4.7.0 instead of the greeting. */
void	smtp_session_refuse(struct smtp_session *s);
/* Whether a mail transaction is under way (MAIL given, not finished). */
int	smtp_session_busy(const struct smtp_session *s);
/*
 * Resume a session suspended with SMTP_ACT_WAIT with the answer to
 * its question; then call smtp_session_input() again.
 */
void	smtp_session_resume(struct smtp_session *s,
	    const struct smtp_answer *a);
/* Record the SPF result (before resuming an SMTP_ASK_SPF question). */
void	smtp_session_spf(struct smtp_session *s, int result,
	    const char *received, const char *authres, const char *comment);
/* The same for the HELO identity, checked too with spf_helo yes. */
void	smtp_session_spf_helo(struct smtp_session *s, int result,
	    const char *received, const char *authres, const char *comment);
/* Add a modification to s->mods (copies the strings). */
void	smtp_mods_add(struct smtp_mods *m, enum smtp_mod_type type,
	    unsigned int index, const char *name, const char *value);
void	smtp_mods_free(struct smtp_mods *m);
/* Free everything the session owns (not out, not udb). */
void	smtp_session_free(struct smtp_session *s);

/*
 * The TLS handshake is done (after SMTP_ACT_STARTTLS, or before the
 * greeting on an implicit-TLS port): forget everything the client said
 * before it (RFC 3207 §4.2: EHLO again) and note version and cipher
 * for Received:.
 */
void	smtp_session_tls(struct smtp_session *s, const char *version,
	    const char *cipher, int bits);


/*
 * The rest is private to the engine's own files: smtp_session.c (state
 * machine, dispatch), smtp_envelope.c (MAIL, RCPT), smtp_sasl.c (AUTH),
 * smtp_data.c (DATA), smtp_headers.c (trace headers, filter changes),
 * smtp_replies.c (reply texts), smtp_userdb.c (users and aliases).
 */

/* The SASL exchange under way (s->auth_step). */
#define SMTP_AUTH_NONE		0
#define SMTP_AUTH_PLAIN		1	/* 334 sent, waiting for PLAIN */
#define SMTP_AUTH_LOGIN_USER	2	/* 334 "Username:" sent */
#define SMTP_AUTH_LOGIN_PASS	3	/* 334 "Password:" sent */

/*
 * Every reply text, in one table.  RFC 2034 §3: enhanced codes on all
 * 2xx/4xx/5xx replies except the greeting and the EHLO/HELO replies;
 * 3xx replies (354) carry none.
 */
enum smtp_reply {
	RPL_OK,
	RPL_MAIL_OK,
	RPL_RCPT_OK,
	RPL_QUEUED,
	RPL_VRFY,
	RPL_HELP,
	RPL_BYE,
	RPL_DATA,
	RPL_SHUTDOWN,
	RPL_TIMEOUT,
	RPL_TOO_MANY_ERRORS,
	RPL_TOO_MANY_SESSIONS,
	RPL_TEMPFAIL,
	RPL_QUEUE_FAIL,
	RPL_DISK_FULL,
	RPL_RCPT_MAX,
	RPL_LINE_TOO_LONG,
	RPL_UNKNOWN_CMD,
	RPL_BAD_CHARS,
	RPL_SYNTAX_HELO,
	RPL_SYNTAX_MAIL,
	RPL_SYNTAX_RCPT,
	RPL_SYNTAX_NOARG,
	RPL_SYNTAX_VRFY,
	RPL_BAD_SENDER,
	RPL_BAD_RCPT,
	RPL_NOT_IMPL,
	RPL_SEQ_HELO,
	RPL_SEQ_NESTED,
	RPL_SEQ_MAIL,
	RPL_SEQ_RCPT,
	RPL_NO_RCPT,
	RPL_AUTH_REQUIRED,
	RPL_USER_UNKNOWN,
	RPL_BARE_LF,
	RPL_BARE_CR,
	RPL_NUL,
	RPL_LONG_LINE,
	RPL_TOO_BIG,
	RPL_SIZE_TOO_BIG,
	RPL_PARAM,
	RPL_UTF8_REQUIRED,
	RPL_RELAY,
	RPL_LOOP,
	RPL_QUEUED_DISCARD,
	RPL_CONN_REJECT,
	RPL_CONN_TEMPFAIL,
	RPL_FILTER_REJECT,
	RPL_FILTER_TEMPFAIL,
	RPL_FILTER_SHUTDOWN,
	RPL_CONTENT_REJECT,
	RPL_SPF_FAIL,
	RPL_SPF_TEMPERROR,
	RPL_HEADER_BIG,
	RPL_TLS_READY,
	RPL_TLS_ACTIVE,
	RPL_TLS_UNAVAILABLE,
	RPL_AUTH_OK,
	RPL_AUTH_FAILED,
	RPL_AUTH_TEMP,
	RPL_AUTH_ENCRYPT,
	RPL_AUTH_MECH,
	RPL_AUTH_CANCEL,
	RPL_AUTH_DECODE,
	RPL_AUTH_ALREADY,
	RPL_AUTH_SEQ,
	RPL_AUTH_TOO_MANY,
	RPL_SENDER_LOGIN,
};

/* The limits of struct smtpd_limits, or their defaults when 0. */
static inline size_t
smtp_limit_line(const struct smtp_session *s)
{
	size_t	 v = s->sd->limits.line_max;

	return v < 64 ? SMTP_DEF_LINE_MAX : v;
}

static inline size_t
smtp_limit_text_line(const struct smtp_session *s)
{
	size_t	 v = s->sd->limits.text_line_max;

	return v == 0 ? SMTP_DEF_TEXT_LINE_MAX : v;
}

static inline uint64_t
smtp_limit_size(const struct smtp_session *s)
{
	uint64_t v = s->sd->limits.message_size_max;

	return v == 0 ? SMTP_DEF_SIZE_MAX : v;
}

static inline unsigned int
smtp_limit_rcpt(const struct smtp_session *s)
{
	unsigned int v = s->sd->limits.rcpt_max;

	return v == 0 ? SMTP_DEF_RCPT_MAX : v;
}

static inline unsigned int
smtp_limit_errors(const struct smtp_session *s)
{
	unsigned int v = s->sd->limits.errors_max;

	return v == 0 ? SMTP_DEF_ERRORS_MAX : v;
}

static inline unsigned int
smtp_limit_received(const struct smtp_session *s)
{
	unsigned int v = s->sd->limits.received_max;

	return v == 0 ? SMTP_RECEIVED_MAX : v;
}

static inline const char *
smtp_session_hostname(const struct smtp_session *s)
{
	return s->sd->hostname != NULL ? s->sd->hostname : "localhost";
}

/* smtp_session.c */
int	smtp_session_ask(struct smtp_session *s, enum smtp_ask what,
	    enum smtp_pend pend, const char *data, size_t len);
void	smtp_transaction_reset(struct smtp_session *s);
void	smtp_transaction_clear(struct smtp_session *s);

/* smtp_envelope.c */
void	smtp_envelope_mail(struct smtp_session *s, char *arg);
void	smtp_envelope_spf_done(struct smtp_session *s);
void	smtp_envelope_mail_done(struct smtp_session *s);
void	smtp_envelope_rcpt(struct smtp_session *s, char *arg);
void	smtp_envelope_rcpt_done(struct smtp_session *s);
int	smtp_rcpt_known(struct smtp_session *s, const char *rcpt);

/* smtp_sasl.c */
int	smtp_sasl_offered(const struct smtp_session *s);
void	smtp_sasl_clear(struct smtp_session *s);
void	smtp_sasl_cmd(struct smtp_session *s, char *arg);
void	smtp_sasl_response(struct smtp_session *s, char *line, size_t len);
void	smtp_sasl_done(struct smtp_session *s);

/* smtp_data.c */
void	smtp_body_flush(struct smtp_session *s);
int	smtp_data_input(struct smtp_session *s, struct buf *in);
enum smtp_action smtp_data_end(struct smtp_session *s);

/* smtp_headers.c */
int	smtp_received_write(struct smtp_session *s);
int	smtp_mods_apply(struct smtp_session *s);
int	smtp_message_rewrite(struct smtp_session *s);

/* smtp_replies.c */
void	smtp_session_reply(struct smtp_session *s, enum smtp_reply r,
	    const char *extra);
void	smtp_reply_verdict(struct smtp_session *s, enum smtp_verdict v,
	    const char *text, enum smtp_reply rej);
int	smtp_verdict_refuses(enum smtp_verdict v);
void	smtp_text_clean(char *p);

#endif
