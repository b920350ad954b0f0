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

/* What the I/O layer does after smtp_session_input(). */
enum smtp_action {
	SMTP_ACT_CONTINUE,	/* write the output, read more */
	SMTP_ACT_CLOSE,		/* write the output, then close */
	SMTP_ACT_COMMIT,	/* smtp_session_commit(), then input again */
};

/* Why a message in DATA is going to be refused at its end. */
#define SMTP_DATA_BARE_LF	0x01
#define SMTP_DATA_BARE_CR	0x02
#define SMTP_DATA_NUL		0x04
#define SMTP_DATA_LONG_LINE	0x08
#define SMTP_DATA_TOO_BIG	0x10
#define SMTP_DATA_LOOP		0x20
#define SMTP_DATA_WRITE		0x40	/* writing the queue file failed */

/*
 * The domain's users and aliases, read from files inside the root and
 * re-read when their mtime, size or inode changes.  One per worker,
 * shared by its sessions.
 */
struct smtp_userdb {
	const char		*passwd_path;	/* default "/etc/passwd" */
	const char		*aliases_path;	/* default "/etc/aliases" */
	struct passwd_file	 pw;
	struct aliases		 al;
	struct timespec		 pw_mtime, al_mtime;
	off_t			 pw_size, al_size;
	ino_t			 pw_ino, al_ino;
	int			 pw_loaded, al_loaded;
};

struct smtp_session {
	enum smtp_state		 state;
	struct smtpd_domain	*sd;
	struct smtp_userdb	*udb;
	enum listener_kind	 kind;
	const char		*queue_dir;	/* default QUEUE_DIR */
	char			 id[24];	/* for log lines */
	char			 client_addr[64]; /* "" when unknown */
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
	char			 helo[SMTP_HELO_MAX + 1];
	unsigned int		 errors;
	unsigned int		 nmessages;

	/* The transaction. */
	char			*sender;	/* "" for <> */
	char			**rcpts;	/* "local@domain" */
	size_t			 nrcpts;
	unsigned int		 flags;		/* QUEUE_F_* */
	uint64_t		 size_declared;

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
/* Free everything the session owns (not out, not udb). */
void	smtp_session_free(struct smtp_session *s);

/* Set up a user database with default paths. */
void	smtp_userdb_init(struct smtp_userdb *u);
void	smtp_userdb_free(struct smtp_userdb *u);
/*
 * Look up a local part (case-insensitively) among users and aliases.
 * 1 and the canonical name in name_r, 0 when unknown, -1 on a
 * temporary failure (passwd unreadable).
 */
int	smtp_userdb_lookup(struct smtp_userdb *u, const char *local,
	    char *name_r, size_t size);

#endif
