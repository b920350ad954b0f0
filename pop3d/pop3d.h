/*
 * pop3d.h — types shared by the parts of virtmail-pop3d.
 *
 * Processes (see docs/SECURITY.md):
 *	master	 root, not chrooted: reads the configuration, binds the
 *		 listeners, accepts, enforces the session limits and forks
 *		 one auth step per connection (master.c, pop3d.c); never
 *		 loads a private key (a short-lived child checks them,
 *		 tls_server_check)
 *	auth	 the session's first process: root, NOT chrooted (its root
 *		 directory is the host's /), only CAP_SETUID, SETGID,
 *		 SYS_CHROOT, KILL and CHOWN, no_new_privs; never reads the
 *		 network.  Checks the password the login process sends up
 *		 against the domain's shadow, forks the user's session, and
 *		 for an mbox holds the dotlock through the spool directory's
 *		 descriptor (auth.c, spool.c)
 *	login	 forked from auth: loads its own domain's TLS keys (only
 *		 for a domain with TLS), then chroots and becomes the
 *		 domain's run_as account in one step; does TLS (STLS, 995)
 *		 and speaks POP3 until the client has authenticated; over
 *		 TLS it then stays as the session's TLS proxy (login.c)
 *	session  forked from auth: chroots and becomes the user in one
 *		 step; opens the mailbox and serves TRANSACTION and UPDATE
 *		 (session.c, mailbox.c)
 */
#ifndef VIRTMAIL_POP3D_H
#define VIRTMAIL_POP3D_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "line.h"
#include "smtpd.h"

#define POP3D_NAME		"virtmail-pop3d"
#define POP3_LINE_MAX		1024	/* command line; RFC 2449 §4 says 255,
					   RFC 5034 §4 lets SASL go longer */
#define POP3_IN_MAX		16384	/* pipelined input held at once */
#define POP3_OUT_FLUSH		(256 * 1024) /* write when this much waits */
#define POP3_USER_MAX		256	/* USER / authcid, bytes */
#define POP3_PASS_MAX		512	/* password, bytes */
#define POP3_ERRORS_MAX		20	/* bad commands, then close */
#define POP3_UID_MAX		70	/* RFC 1939 §7 unique-id length */
#define POP3_MSG_MAX		1000000	/* messages in one mailbox */
#define POP3_IMPLEMENTATION	"virtmail"
#define POP3_MBOX_DIR		"/var/spool/mail"
#define POP3_EXIT_COMMIT	10	/* session: "rename the new mbox" */
#define POP3_TLS_HANDSHAKE	30	/* s: a stalled handshake ends here */
#define POP3_PROXY_BUF		16384	/* TLS proxy: bytes held each way */
#define POP3_AUTH_PROXY		'P'	/* login → auth after POP3_AUTH_OK:
					   "I stay on as the TLS proxy" */
#define POP3_AUTH_READY		'R'	/* auth → login, once: privileges
					   limited, the client may be read */

/* ---- pop3_cmd.c: the command parser (pure; unit tested, fuzzed) ---- */

enum pop3_verb {
	POP3_NONE,
	POP3_APOP, POP3_AUTH, POP3_CAPA, POP3_DELE, POP3_LIST, POP3_NOOP,
	POP3_PASS, POP3_QUIT, POP3_RETR, POP3_RSET, POP3_STAT, POP3_STLS,
	POP3_TOP, POP3_UIDL, POP3_USER,
};

struct pop3_cmd {
	enum pop3_verb	 verb;
	int		 nargs;		/* numeric arguments present */
	unsigned long	 n1, n2;	/* LIST/RETR/DELE/UIDL n; TOP n m */
	const char	*arg;		/* USER/PASS/AUTH text; points into
					   the caller's line */
	size_t		 arglen;
};

/*
 * Parse one command line (terminator removed).  The verb is
 * case-insensitive (RFC 1939 §3); arguments are checked per verb:
 * message numbers are 1..POP3_MSG_MAX decimal, TOP's line count
 * 0..LONG_MAX, USER/PASS/AUTH text may not hold NUL or control bytes.
 * 0, or -1 with *error_r (a reply text for "-ERR").
 */
int	pop3_cmd_parse(const char *line, size_t len, struct pop3_cmd *c,
	    const char **error_r);
/*
 * Decode a SASL PLAIN response (RFC 4616) given in base64: authzid,
 * authcid, password.  authzid must be empty or equal authcid.  0, or
 * -1.  The decoded secret is wiped from scratch space.
 */
int	pop3_sasl_plain(const char *b64, size_t len, char *user,
	    size_t usersize, char *pass, size_t passsize);
/* Standard base64 decode into dst; the length or -1 when invalid. */
ssize_t	pop3_base64_decode(const char *src, size_t len, unsigned char *dst,
	    size_t size);

/* ---- pop3_ipc.c: login → auth request, auth → login answer ---- */

enum pop3_auth_answer {
	POP3_AUTH_OK = 'K',	/* login exits; the session says +OK */
	POP3_AUTH_FAIL = 'F',
	POP3_AUTH_INUSE = 'U',
	POP3_AUTH_TEMP = 'T',
};

struct pop3_auth_req {
	char		 user[POP3_USER_MAX + 1];
	char		 pass[POP3_PASS_MAX + 1];
	size_t		 leftlen;	/* pipelined input after the command */
	char		 left[POP3_IN_MAX];
};

#define POP3_IPC_MAX	(12 + POP3_USER_MAX + POP3_PASS_MAX + POP3_IN_MAX)

/* Encode r into dst; the length, or -1 when it does not fit. */
ssize_t	pop3_ipc_encode(const struct pop3_auth_req *r, unsigned char *dst,
	    size_t size);
/* Decode exactly len bytes, checking every length; 0 or -1. */
int	pop3_ipc_decode(const unsigned char *src, size_t len,
	    struct pop3_auth_req *r);

/* ---- pop3_io.c: buffered, bounded line I/O with an idle timeout ---- */

enum pop3_io_status {
	POP3_IO_LINE,
	POP3_IO_TOOLONG,
	POP3_IO_EOF,
	POP3_IO_TIMEOUT,
	POP3_IO_ERROR,
};

struct ssl_st;

struct pop3_io {
	int			 fd;
	unsigned int		 timeout;	/* s, idle */
	struct buf		 in, out;
	struct line_reader	 lr;
	struct line		 line;		/* the last LINE */
	int			 pending;	/* line not yet consumed */
	struct ssl_st		*ssl;		/* set once TLS is up */
};

void	pop3_io_init(struct pop3_io *io, int fd, unsigned int timeout);
void	pop3_io_free(struct pop3_io *io);
/*
 * Next command line: writes pending output first when no whole line
 * is buffered, so pipelined replies leave in one write.
 */
enum pop3_io_status pop3_io_getline(struct pop3_io *io);
int	pop3_io_printf(struct pop3_io *io, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Write everything pending; 0 or -1. */
int	pop3_io_flush(struct pop3_io *io);
/* Flush if POP3_OUT_FLUSH bytes wait; 0 or -1. */
int	pop3_io_maybe_flush(struct pop3_io *io);
/*
 * Forget every byte of input read so far (RFC 2595 §4, the
 * CVE-2011-0411 class: nothing pipelined in the clear survives STLS).
 */
void	pop3_io_discard_input(struct pop3_io *io);
/*
 * Run the server handshake of ssl on io->fd within POP3_TLS_HANDSHAKE
 * seconds; from then on io reads and writes through ssl.  0, or -1
 * with *error_r (io->ssl stays NULL; the caller frees ssl).
 */
int	pop3_io_tls_accept(struct pop3_io *io, struct ssl_st *ssl,
	    const char **error_r);

/* ---- mailbox.c: Maildir and mbox, as the user ---- */

struct pop3_msg {
	char		*uid;
	char		*name;		/* Maildir: path below the Maildir */
	uint64_t	 off;		/* mbox: content offset in the map */
	uint64_t	 len;		/* bytes on disk (content) */
	uint64_t	 rawoff, rawlen; /* mbox: From_ line to separator */
	uint64_t	 wire;		/* octets as sent: CRLF, stuffing */
	int		 deleted;
	int		 seen;		/* retrieved in this session */
};

struct pop3_mailbox {
	int		 mbox;
	char		*path;		/* Maildir dir or mbox file */
	int		 fd;		/* mbox: locked descriptor */
	char		*map;		/* mbox: the mapped file */
	size_t		 maplen;
	size_t		 tailoff;	/* mbox: a torn last From_ line */
	struct pop3_msg	*msgs;
	size_t		 n;
	struct buf	 scratch;	/* Maildir: one message's bytes */
};

/*
 * Open a Maildir (dir holds new/ cur/ tmp/): list new/ and cur/,
 * learn each message's wire size once (cached in the file name as
 * ",W=", the way Dovecot does; a new/ message moves to cur/ then).
 * 0, or -1 with *error_r.
 */
int	mailbox_open_maildir(struct pop3_mailbox *mb, const char *dir,
	    const char **error_r);
/*
 * Open and fcntl-lock an mbox (the caller holds the dotlock); *inuse_r
 * set when another process holds the lock.  0, or -1 with *error_r.
 */
int	mailbox_open_mbox(struct pop3_mailbox *mb, const char *path,
	    uid_t uid, int *inuse_r, const char **error_r);
/* Parse a mapped mbox into messages (also for tests); 0 or -1. */
int	mailbox_mbox_parse(struct pop3_mailbox *mb, const char *data,
	    size_t len);
/*
 * Send message i (0-based) to io: all of it (lines < 0), or the
 * headers, the blank line and lines body lines (TOP).  CRLF line ends,
 * dot-stuffed, then the terminating ".".  0, or -1 with *error_r.
 */
int	mailbox_send(struct pop3_mailbox *mb, size_t i, long lines,
	    struct pop3_io *io, const char **error_r);
/*
 * UPDATE (RFC 1939 §6).  Maildir: unlink deleted messages, mark
 * retrieved ones seen (cur/ with the S flag).  mbox: when anything was
 * deleted, write the kept messages to tmpfd and fsync; *commit_r says
 * the caller must rename it over the mailbox.  0, or -1 with *error_r.
 */
int	mailbox_update(struct pop3_mailbox *mb, int tmpfd, int *commit_r,
	    const char **error_r);
/* After a disconnect: only mark retrieved messages seen (Maildir). */
void	mailbox_mark_seen(struct pop3_mailbox *mb);
void	mailbox_close(struct pop3_mailbox *mb);

/*
 * The wire form of data: LF (or CRLF) line ends as CRLF, lines that
 * start with '.' doubled, a last line without LF ended; body_lines >=
 * 0 stops after that many lines past the header's blank line.  Appends
 * to out, flushing through io when io is not NULL.  0 or -1.
 */
int	pop3_stuff(const char *data, size_t len, long body_lines,
	    struct buf *out, struct pop3_io *io);
/* The octet count pop3_stuff would produce for the whole message. */
uint64_t pop3_wire_size(const char *data, size_t len);

/* ---- session.c: TRANSACTION and UPDATE, as the user ---- */

struct pop3_session_args {
	const char	*id;		/* log id */
	const char	*user;
	int		 fd;		/* the client */
	const char	*left;		/* pipelined input after auth */
	size_t		 leftlen;
	unsigned int	 timeout;
	int		 mbox;
	const char	*mailbox;	/* Maildir dir or mbox path */
	uid_t		 uid;
	int		 mbox_tmpfd;	/* mbox: where UPDATE writes */
};

/* Serve the session; returns the process exit status. */
int	session_run(const struct pop3_session_args *a);

/* ---- login.c: AUTHORIZATION, as the domain's run_as account ---- */

struct tls_server;

struct pop3_login_args {
	const char	*id;
	const char	*hostname;
	int		 fd;		/* the client */
	int		 auth_fd;	/* SEQPACKET to the auth process */
	unsigned int	 timeout;
	unsigned int	 auth_delay;	/* s */
	unsigned int	 failures_max;
	/* TLS: NULL when the domain has no certificate. */
	struct tls_server *tls;
	int		 tls_implicit;	/* port 995: handshake first */
	int		 allow_plaintext_auth;
	int		 proxy_fd;	/* stream to the session; -1 none */
};

/*
 * Run AUTHORIZATION; returns the exit status (0 after POP3_AUTH_OK).
 * Over TLS, after POP3_AUTH_OK, it tells the auth process
 * POP3_AUTH_PROXY and stays on as the session's TLS proxy: bytes
 * between the TLS connection and proxy_fd, until either side ends.
 */
int	login_run(const struct pop3_login_args *a);
/* The CAPA reply body lines (RFC 2449 §5), for either state. */
int	login_capa(struct pop3_io *io, int authorized);

/* ---- auth.c: the privileged step ---- */

struct pop3_auth_result {
	int		 ok;
	char		 name[PASSWD_NAME_MAX + 1];	/* the local user */
};

/*
 * Check user/pass against root's etc/passwd and etc/shadow (root is
 * the domain's absolute directory: the auth step is not chrooted): crypt(3) of the password against the user's hash,
 * or against a dummy hash of the same kind for an unknown, locked or
 * malformed account, so both cost the same; the result compared in
 * constant time.  "bob@alpha.test" is accepted when the domain is one
 * of sd's.  Locked and expired accounts fail.  Never logs the password.
 */
void	auth_check(const struct smtpd_domain *sd, const char *root,
	    const char *user, const char *pass, struct pop3_auth_result *res);
struct idpolicy;

/* One accepted connection, as the master hands it to the auth step. */
struct pop3_conn {
	int			 fd;		/* the client */
	struct sockaddr_storage	 peer;
	int			 has_tls;	/* the domain has certificates;
						   the login process loads them */
	int			 tls_implicit;	/* pop3s_port: handshake first */
	int			 relay_fd;	/* the domain's log relay (the
						   master's); -1 under inetd */
	const struct idpolicy	*pol;		/* uid/gid ranges of every
						   domain (common/idrange.h) */
};

/*
 * The whole session, in a fresh child of the master (root, not
 * chrooted, holding no key): login process, password check, then the
 * session as the user.  Never returns.
 */
void	auth_session_main(struct smtpd_domain *sd,
	    const struct pop3_conf *pc, const struct pop3_conn *conn)
	    __attribute__((noreturn));

/* ---- spool.c: the mbox spool's directory, as root outside the root ---- */

/*
 * The spool directory of the domain root dir (var/spool/mail, resolved
 * inside dir), refused unless a directory owned by root and closed to
 * group and others.  The descriptor, or -1 with *error_r.
 */
int	spool_open(const char *dir, const char **error_r);
/* Take USER.lock in sfd: 0, 1 when held by another, -1 on error. */
int	spool_dotlock(int sfd, const char *user);
/* Keep USER.lock fresh (older than DELIVER_LOCK_STALE is stale). */
void	spool_dotlock_touch(int sfd, const char *user);
void	spool_dotlock_release(int sfd, const char *user);
/*
 * Create USER.pop3tmp (replacing a leftover), owned by uid/gid, with
 * the mode of USER when USER is the user's.  The descriptor (read and
 * write), or -1 with *error_r.
 */
int	spool_tmp_create(int sfd, const char *user, uid_t uid, gid_t gid,
	    const char **error_r);
/*
 * When USER.pop3tmp is still the file tmpfd refers to: rename it over
 * USER and fsync the spool (commit), or remove it.  0, or -1 with
 * *error_r.
 */
int	spool_tmp_finish(int sfd, const char *user, int tmpfd, int commit,
	    const char **error_r);

/* ---- master.c ---- */

int	pop3_master_check(const struct daemon_opts *o);
int	pop3_master_inetd(const struct daemon_opts *o);
int	pop3_master_run(const struct daemon_opts *o);

#endif
