/*
 * queue.h — the durable queue of one domain, shared by virtmail-smtpd,
 * virtmail-sendmail and the virtmail admin command.
 *
 * Layout under the queue directory (var/spool/virtmail inside the
 * domain's root, owned by the domain's run_as account, mode 0700):
 *
 *	tmp/	files being written (garbage after a crash)
 *	msg/ID	the message: our Received: line, then the headers and body
 *		as received, dot-unstuffed, LF line ends; never changes
 *	env/ID	the envelope; its presence commits the message
 *	hold/ID	envelopes put on hold (quarantine)
 *
 * A message is committed by: write msg in tmp/, fsync, rename to msg/,
 * fsync msg/; write env in tmp/, fsync, rename to env/, fsync env/.
 * Only then may the receiver acknowledge it.  Envelope updates write a new
 * file and rename it over the old one.  A finished message loses its
 * envelope first, then its body, so a crash leaves at worst an orphan
 * body, which queue_gc() removes.
 *
 * Envelope format: the line "VMQ 1\n", then records "T LEN:DATA\n"
 * (T a letter, LEN decimal length of DATA, DATA any bytes), closed by
 * the record "E 0:\n".  A file without E, with unknown record types, a
 * wrong version, trailing bytes or bad lengths is rejected whole.
 */
#ifndef VIRTMAIL_QUEUE_H
#define VIRTMAIL_QUEUE_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

#define QUEUE_DIR		"/var/spool/virtmail"
#define QUEUE_ID_LEN		16	/* hex characters */
#define QUEUE_VERSION		1
#define QUEUE_ENV_MAX		(4 * 1024 * 1024)
#define QUEUE_RCPT_MAX		100000

#define QUEUE_F_8BITMIME	0x01	/* BODY=8BITMIME */
#define QUEUE_F_SMTPUTF8	0x02
#define QUEUE_F_BOUNCE		0x04	/* a DSN we generated */
#define QUEUE_F_RECOVERED	0x08	/* in memory only: loaded after restart */
#define QUEUE_F_WARNED		0x10	/* the delay warning was sent */

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,	/* not yet delivered */
	QUEUE_RCPT_DONE,	/* delivered */
	QUEUE_RCPT_FAILED,	/* permanent failure; bounce owed or sent */
};

struct queue_rcpt {
	char			*addr;	/* "local@domain" */
	char			*orcpt;	/* DSN ORCPT, or NULL */
	enum queue_rcpt_state	 state;
	char			*diag;	/* last diagnostic, or NULL */
};

struct queue_env {
	char			 id[QUEUE_ID_LEN + 1];
	time_t			 created;
	char			*sender;	/* "" for the null sender */
	char			*helo;
	char			*client_addr;	/* "" for local injection */
	char			*auth_user;	/* NULL when not authenticated */
	uint64_t		 size;		/* bytes in msg/ID */
	unsigned int		 flags;		/* QUEUE_F_* */
	unsigned int		 attempts;
	time_t			 next_attempt;	/* 0: as soon as possible */
	char			*hold_reason;	/* NULL unless on hold */
	struct queue_rcpt	*rcpts;
	size_t			 nrcpts;
};

/* Encode e into out (appended).  0, or -1 with *error_r. */
int	queue_env_encode(const struct queue_env *e, struct buf *out,
	    const char **error_r);
/* Decode a whole envelope file; on failure e is left empty. */
int	queue_env_decode(const char *data, size_t len, struct queue_env *e,
	    const char **error_r);
/* Free what decode or the add helpers allocated; e may be reused. */
void	queue_env_free(struct queue_env *e);
/* Append a recipient (copies addr and orcpt). */
int	queue_env_add_rcpt(struct queue_env *e, const char *addr,
	    const char *orcpt);

/* Create qdir's tmp/, msg/, env/, hold/ if missing (mode 0700). */
int	queue_init(const char *qdir, const char **error_r);
/* A fresh random queue id (QUEUE_ID_LEN hex characters + NUL). */
void	queue_new_id(char id[QUEUE_ID_LEN + 1]);

/* Writing a new message. */
struct queue_writer {
	int	 fd;
	char	 id[QUEUE_ID_LEN + 1];
	char	 tmp_path[512];
	uint64_t size;
	uint64_t stale;		/* a spare's old length: bytes past size
				 * are not this message's (queue_writer_seal) */
	int	 failed;	/* a write failed: commit will refuse */
	int	 error;		/* errno of that failure (ENOSPC: 452) */
};

/* Start a message file in qdir/tmp; picks the id. */
int	queue_writer_open(struct queue_writer *w, const char *qdir,
	    const char **error_r);
/* Append body bytes; errors are remembered for commit. */
int	queue_writer_write(struct queue_writer *w, const void *data,
	    size_t len);
/*
 * Cut what a spare file held past this message (a no-op for a new
 * file): before anything reads the file.  Commit does it itself.
 */
int	queue_writer_seal(struct queue_writer *w);
/*
 * Make the message durable with envelope e (e->id and e->size are set
 * from w).  Returns 0 only when msg and env are on disk and fsynced;
 * -1 with *error_r and errno (ENOSPC, EDQUOT: the caller answers 452)
 * and nothing left behind.
 */
int	queue_writer_commit(struct queue_writer *w, const char *qdir,
	    struct queue_env *e, const char **error_r);
/* Throw away an uncommitted message. */
void	queue_writer_abort(struct queue_writer *w);
/* The same, keeping its file as a spare for a later queue_writer_open()
 * in this process (renamed and overwritten: no new inode). */
void	queue_writer_recycle(struct queue_writer *w);

/* Load env/ID (or hold/ID when held).  0, or -1 with *error_r. */
int	queue_env_load(const char *qdir, const char *id, struct queue_env *e,
	    const char **error_r);
/* Atomically replace env/ID (or hold/ID when e->hold_reason is set,
 * moving it between the two).  0, or -1 with *error_r. */
int	queue_env_update(const char *qdir, const struct queue_env *e,
	    const char **error_r);
/* Remove a finished message: env first, then msg. */
int	queue_remove(const char *qdir, const char *id, const char **error_r);
/* Open msg/ID read-only. -1 with errno on failure. */
int	queue_msg_open(const char *qdir, const char *id);
/*
 * List the ids in env/ (and hold/ when with_held) into *ids_r (array of
 * malloc'd strings), count in *n_r.  Names that are not ids are skipped.
 */
int	queue_list(const char *qdir, int with_held, char ***ids_r,
	    size_t *n_r, const char **error_r);
void	queue_list_free(char **ids, size_t n);
/* Remove tmp/ files and msg/ files without envelope older than age s. */
int	queue_gc(const char *qdir, time_t age);
/* Whether s is a well-formed queue id. */
int	queue_id_valid(const char *s);

#endif
