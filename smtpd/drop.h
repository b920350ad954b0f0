/*
 * drop.h — the pickup ("maildrop") file: virtmail-sendmail forms it,
 * virtmail-postdrop checks it again and writes it into QUEUE_DIR
 * "/drop", and the runner turns it into a queued message (pickup.c).
 *
 * Format, LF line ends:
 *	"VMDROP 1"	version line
 *	"S sender"	exactly one; empty for the null sender
 *	"R rcpt"	one per recipient, local@domain, 1..DROP_RCPT_MAX
 *	""		an empty line ends the envelope
 *	then the message itself (headers, empty line, body; LF ends)
 * Files are written as DROP_TMP_PREFIX + 32 hex digits, fsynced, and
 * renamed to DROP_READY_PREFIX + the same digits; only the latter are
 * picked up.  virtmail-sendmail hands virtmail-postdrop exactly this
 * format on its standard input.  See docs/queue.md and
 * docs/SECURITY.md.
 *
 * This header is all virtmail-postdrop sees of smtpd: it names no
 * type of the session engine, so the setgid program links drop.c and
 * a few files of common/ only.
 */
#ifndef VIRTMAIL_DROP_H
#define VIRTMAIL_DROP_H

#include <stddef.h>

#include "buf.h"
#include "queue.h"

#define DROP_SUBDIR		"drop"
#define DROP_DIR		QUEUE_DIR "/" DROP_SUBDIR
#define DROP_GROUP		"virtmail-drop"
#define DROP_VERSION_LINE	"VMDROP 1"
#define DROP_TMP_PREFIX		"t."
#define DROP_READY_PREFIX	"m."
#define DROP_NAME_HEX		32
#define DROP_RCPT_MAX		10000
#define DROP_ENV_MAX		(DROP_RCPT_MAX * 264 + 512)	/* "R " path LF */
#define DROP_TMP_AGE		3600	/* s: an unfinished file is garbage */
/*
 * The largest message virtmail-postdrop copies, whatever the domain's
 * max_message_size (it reads no configuration); the injector and the
 * runner apply the domain's own limit.  XXX: a domain whose limit is
 * larger cannot submit larger messages locally (the runner reads a
 * drop file into memory anyway).
 */
#define DROP_MESSAGE_MAX	((size_t)1 << 30)
/* The setgid writer, at this path inside each domain's root. */
#define DROP_POSTDROP_PATH	"/usr/sbin/virtmail-postdrop"

struct drop_env {
	char		*sender;	/* "" for <> */
	char		**rcpts;
	size_t		 nrcpts;
};

/* Append the envelope part of a drop file to out.  0, or -1 (*error_r). */
int	drop_env_encode(const struct drop_env *e, struct buf *out,
	    const char **error_r);
/*
 * Parse a whole drop file: envelope into e (addresses re-checked with
 * addr_parse), *msg_off_r where the message starts.  0, or -1 with
 * *error_r and e empty.
 */
int	drop_parse(const char *data, size_t len, struct drop_env *e,
	    size_t *msg_off_r, const char **error_r);
void	drop_env_free(struct drop_env *e);
/* Whether name is "m." or "t." followed by DROP_NAME_HEX hex digits. */
int	drop_name_valid(const char *name, const char *prefix);

/*
 * Whether this process runs in the host's root rather than inside a
 * domain's: "/" is the root of process 1, or the host's domain table
 * exists, or the domain's own etc/virtmail.conf does not.  The
 * injector and virtmail-postdrop refuse to run there.
 */
int	drop_on_host(void);

enum drop_copy_result {
	DROP_COPY_OK,
	DROP_COPY_BAD,		/* the input is not a valid submission */
	DROP_COPY_EREAD,	/* reading infd failed (errno) */
	DROP_COPY_EWRITE,	/* writing outfd failed (errno) */
};
/*
 * Copy one submission from infd to outfd, checking it on the way: the
 * envelope (at most DROP_ENV_MAX bytes) is parsed with drop_parse and
 * written again as drop_env_encode makes it; the message that follows
 * is streamed, and must hold no NUL byte and at most msg_max bytes.
 * Reads infd to its end, or stops at the first fault.  On
 * DROP_COPY_BAD *error_r says why; on DROP_COPY_EREAD and
 * DROP_COPY_EWRITE errno is that of the failed call.  outfd holds
 * garbage after a failure: the caller removes it.
 */
enum drop_copy_result drop_copy(int infd, int outfd, size_t msg_max,
	    const char **error_r);

#endif
