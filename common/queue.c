/*
 * queue.c — the durable per-domain queue: envelope encoding, atomic
 * commit of new messages, envelope updates, hold, listing and cleanup.
 *
 * SECURITY: runs inside a domain's root as the domain's run_as account
 * (SMTP worker, queue runner) and in the admin command.  Queue files
 * are written by those processes only, but the decoder treats them as
 * hostile anyway: every length is bounded and checked before use, the
 * file must be consumed exactly, the version must match, an END record
 * is required (so a torn file is refused whole, never half-read), and
 * strings may not hold control characters (they end up in headers).
 * Files are created 0600 with O_EXCL/O_NOFOLLOW.  Never exits.
 *
 * Envelope records ("T LEN:DATA\n", see queue.h), in this order:
 *
 *	I  id (QUEUE_ID_LEN hex)		required, first
 *	C  created, decimal seconds		required
 *	S  sender ("" for <>)			required
 *	H  HELO name				required
 *	A  client address ("" for local)	required
 *	U  AUTH user				optional
 *	Z  message size in bytes		required
 *	F  flags (QUEUE_F_*, decimal)		required
 *	N  delivery attempts			required
 *	T  next attempt, decimal seconds	required
 *	Q  hold reason				optional
 *	(TAB is allowed in H, Q and G; no other control anywhere)
 *	R  recipient address			one per recipient, >= 1
 *	O    its ORCPT				optional, after its R
 *	X    its state: 0 pending, 1 done, 2 failed	required, after O
 *	G    its last diagnostic		optional, after X
 *	E  end, length 0			required, last
 *
 * Crash guarantees (the order of steps in queue_writer_commit):
 *
 *	step				a crash after it leaves
 *	write+fsync tmp/ID.msg		tmp garbage (queue_gc)
 *	rename to msg/, fsync msg/	orphan msg/ID, no env (queue_gc)
 *	write+fsync tmp/ID.env		orphan msg/ID + tmp garbage
 *	rename to env/, fsync env/	a committed message: only now 250
 *
 * msg/ is fsynced before the envelope is renamed into env/, so an
 * envelope on disk always has its body on disk.  An envelope with a
 * hold_reason (a milter quarantine) is committed straight into hold/.
 * Commit also sets e->created when the caller left it 0.  Updates rewrite the
 * envelope where it is (tmp, fsync, rename, fsync dir) and then move it
 * between env/ and hold/ with one rename: a crash in between leaves it
 * in the old directory with the new contents, and the hold_reason in
 * the file, not the directory, is what counts.
 */
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "queue.h"

#define QUEUE_MAGIC		"VMQ "
#define QUEUE_LEN_DIGITS	8	/* QUEUE_ENV_MAX fits */
#define QUEUE_OPEN_TRIES	100
#define QUEUE_POOL_MAX		64	/* spare files kept by recycle */
#define QUEUE_F_STORED		(QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8 | \
				 QUEUE_F_BOUNCE | QUEUE_F_WARNED)

/* How strict a string field is about control characters. */
enum queue_str_kind {
	QUEUE_STR_STRICT,	/* no controls at all */
	QUEUE_STR_TEXT,		/* TAB allowed (diagnostics) */
};

/* --- encoding ----------------------------------------------------------- */

static int
queue_str_ok(const char *s, size_t len, enum queue_str_kind kind)
{
	size_t		 i;
	unsigned char	 c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '\t' && kind == QUEUE_STR_TEXT)
			continue;
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int
queue_put(struct buf *out, char type, const char *data, size_t len)
{
	if (buf_printf(out, "%c %zu:", type, len) == -1 ||
	    buf_append(out, data, len) == -1 ||
	    buf_putc(out, '\n') == -1)
		return -1;
	return 0;
}

static int
queue_put_str(struct buf *out, char type, const char *s,
    enum queue_str_kind kind, const char **error_r)
{
	size_t	 len;

	len = strlen(s);
	if (!queue_str_ok(s, len, kind)) {
		*error_r = "control character in envelope field";
		errno = EINVAL;
		return -1;
	}
	if (queue_put(out, type, s, len) == -1) {
		*error_r = "envelope too large";
		return -1;
	}
	return 0;
}

static int
queue_put_num(struct buf *out, char type, unsigned long long v,
    const char **error_r)
{
	char	 tmp[32];
	int	 r;

	r = snprintf(tmp, sizeof(tmp), "%llu", v);
	if (r < 0 || (size_t)r >= sizeof(tmp) ||
	    queue_put(out, type, tmp, (size_t)r) == -1) {
		*error_r = "envelope too large";
		return -1;
	}
	return 0;
}

int
queue_env_encode(const struct queue_env *e, struct buf *out,
    const char **error_r)
{
	const struct queue_rcpt	*r;
	const char		*err = "envelope too large";
	size_t			 oldlen, i;

	oldlen = out->len;
	if (!queue_id_valid(e->id)) {
		err = "invalid queue id";
		errno = EINVAL;
		goto fail;
	}
	if (e->sender == NULL || e->helo == NULL || e->client_addr == NULL ||
	    e->created < 0 || e->next_attempt < 0) {
		err = "incomplete envelope";
		errno = EINVAL;
		goto fail;
	}
	if (e->nrcpts == 0 || e->nrcpts > QUEUE_RCPT_MAX || e->rcpts == NULL) {
		err = "bad recipient count";
		errno = EINVAL;
		goto fail;
	}
	if (buf_printf(out, "%s%d\n", QUEUE_MAGIC, QUEUE_VERSION) == -1 ||
	    queue_put_str(out, 'I', e->id, QUEUE_STR_STRICT, &err) == -1 ||
	    queue_put_num(out, 'C', (unsigned long long)e->created,
	    &err) == -1 ||
	    queue_put_str(out, 'S', e->sender, QUEUE_STR_STRICT, &err) == -1 ||
	    queue_put_str(out, 'H', e->helo, QUEUE_STR_TEXT, &err) == -1 ||
	    queue_put_str(out, 'A', e->client_addr, QUEUE_STR_STRICT,
	    &err) == -1)
		goto fail;
	if (e->auth_user != NULL && queue_put_str(out, 'U', e->auth_user,
	    QUEUE_STR_STRICT, &err) == -1)
		goto fail;
	if (queue_put_num(out, 'Z', e->size, &err) == -1 ||
	    queue_put_num(out, 'F', e->flags & QUEUE_F_STORED, &err) == -1 ||
	    queue_put_num(out, 'N', e->attempts, &err) == -1 ||
	    queue_put_num(out, 'T', (unsigned long long)e->next_attempt,
	    &err) == -1)
		goto fail;
	if (e->hold_reason != NULL && queue_put_str(out, 'Q', e->hold_reason,
	    QUEUE_STR_TEXT, &err) == -1)
		goto fail;
	for (i = 0; i < e->nrcpts; i++) {
		r = &e->rcpts[i];
		if (r->addr == NULL || r->state < QUEUE_RCPT_PENDING ||
		    r->state > QUEUE_RCPT_FAILED) {
			err = "bad recipient";
			errno = EINVAL;
			goto fail;
		}
		if (queue_put_str(out, 'R', r->addr, QUEUE_STR_STRICT,
		    &err) == -1)
			goto fail;
		if (r->orcpt != NULL && queue_put_str(out, 'O', r->orcpt,
		    QUEUE_STR_STRICT, &err) == -1)
			goto fail;
		if (queue_put_num(out, 'X', (unsigned long long)r->state,
		    &err) == -1)
			goto fail;
		if (r->diag != NULL && queue_put_str(out, 'G', r->diag,
		    QUEUE_STR_TEXT, &err) == -1)
			goto fail;
	}
	if (queue_put(out, 'E', "", 0) == -1)
		goto fail;
	if (out->len - oldlen > QUEUE_ENV_MAX) {
		err = "envelope too large";
		errno = EMSGSIZE;
		goto fail;
	}
	return 0;

 fail:
	if (out->data != NULL) {
		out->len = oldlen;
		out->data[oldlen] = '\0';
	}
	*error_r = err;
	return -1;
}

/* --- decoding ----------------------------------------------------------- */

struct queue_reader {
	const char	*p;
	size_t		 len;
	size_t		 pos;
};

/*
 * Read one record: type, and data/dlen pointing into the input.
 * Returns 0 or -1 with *error_r.
 */
static int
queue_get(struct queue_reader *rd, char *type_r, const char **data_r,
    size_t *dlen_r, const char **error_r)
{
	size_t	 n, digits, left;

	left = rd->len - rd->pos;
	if (left < 5) {		/* "T 0:\n" */
		*error_r = "truncated envelope";
		return -1;
	}
	*type_r = rd->p[rd->pos];
	if (rd->p[rd->pos + 1] != ' ') {
		*error_r = "malformed record";
		return -1;
	}
	rd->pos += 2;
	n = 0;
	for (digits = 0; rd->pos < rd->len && rd->p[rd->pos] >= '0' &&
	    rd->p[rd->pos] <= '9'; digits++, rd->pos++) {
		if (digits == QUEUE_LEN_DIGITS ||
		    (digits == 1 && n == 0)) {
			*error_r = "malformed record length";
			return -1;
		}
		n = n * 10 + (size_t)(rd->p[rd->pos] - '0');
	}
	if (digits == 0 || rd->pos >= rd->len || rd->p[rd->pos] != ':') {
		*error_r = rd->pos >= rd->len ? "truncated envelope" :
		    "malformed record length";
		return -1;
	}
	rd->pos++;
	left = rd->len - rd->pos;
	if (n > left || left - n < 1) {
		*error_r = "truncated envelope";
		return -1;
	}
	if (rd->p[rd->pos + n] != '\n') {
		*error_r = "record length mismatch";
		return -1;
	}
	*data_r = rd->p + rd->pos;
	*dlen_r = n;
	rd->pos += n + 1;
	return 0;
}

static char *
queue_get_str(const char *data, size_t len, enum queue_str_kind kind,
    const char **error_r)
{
	char	*s;

	if (!queue_str_ok(data, len, kind)) {
		*error_r = "control character in envelope field";
		return NULL;
	}
	if ((s = strndup(data, len)) == NULL)
		*error_r = "out of memory";
	return s;
}

static int
queue_get_num(const char *data, size_t len, unsigned long long max,
    unsigned long long *v_r, const char **error_r)
{
	unsigned long long	 v = 0;
	size_t			 i;

	if (len == 0 || len > 20 || (len > 1 && data[0] == '0'))
		goto bad;
	for (i = 0; i < len; i++) {
		if (data[i] < '0' || data[i] > '9')
			goto bad;
		if (v > (ULLONG_MAX - (unsigned)(data[i] - '0')) / 10)
			goto bad;
		v = v * 10 + (unsigned)(data[i] - '0');
	}
	if (v > max)
		goto bad;
	*v_r = v;
	return 0;
 bad:
	*error_r = "bad number in envelope";
	return -1;
}

/* Required header records, as bits. */
#define QUEUE_SEEN(t)	(1u << ((t) - 'A'))
#define QUEUE_REQUIRED	(QUEUE_SEEN('I') | QUEUE_SEEN('C') | \
			 QUEUE_SEEN('S') | QUEUE_SEEN('H') | \
			 QUEUE_SEEN('A') | QUEUE_SEEN('Z') | \
			 QUEUE_SEEN('F') | QUEUE_SEEN('N') | QUEUE_SEEN('T'))

static const char queue_header_order[] = "ICSHAUZFNTQ";

int
queue_env_decode(const char *data, size_t len, struct queue_env *e,
    const char **error_r)
{
	struct queue_reader	 rd;
	struct queue_rcpt	*r = NULL, *nr;
	const char		*d, *err = "malformed envelope", *o;
	const char		*order = queue_header_order;
	char			 magic[16], type, **sp;
	unsigned long long	 v;
	unsigned int		 seen = 0;
	size_t			 dlen, cap = 0;
	int			 m, have_x = 0;

	memset(e, 0, sizeof(*e));
	if (len > QUEUE_ENV_MAX) {
		err = "envelope too large";
		goto fail;
	}
	m = snprintf(magic, sizeof(magic), "%s%d\n", QUEUE_MAGIC,
	    QUEUE_VERSION);
	if (m < 0 || (size_t)m >= sizeof(magic))
		goto fail;
	if (len < strlen(QUEUE_MAGIC) ||
	    memcmp(data, QUEUE_MAGIC, strlen(QUEUE_MAGIC)) != 0) {
		err = "not a queue envelope";
		goto fail;
	}
	if (len < (size_t)m || memcmp(data, magic, (size_t)m) != 0) {
		err = "unsupported envelope version";
		goto fail;
	}
	rd.p = data;
	rd.len = len;
	rd.pos = (size_t)m;

	for (;;) {
		if (queue_get(&rd, &type, &d, &dlen, &err) == -1)
			goto fail;
		if (type == 'E') {
			if (dlen != 0) {
				err = "malformed end record";
				goto fail;
			}
			break;
		}
		/* Header records: once each, in order, before any R. */
		if (e->nrcpts == 0 && (o = strchr(order, type)) != NULL &&
		    type != '\0') {
			order = o + 1;
			seen |= QUEUE_SEEN(type);
			switch (type) {
			case 'I':
				if (dlen != QUEUE_ID_LEN)
					goto badid;
				memcpy(e->id, d, QUEUE_ID_LEN);
				e->id[QUEUE_ID_LEN] = '\0';
				if (!queue_id_valid(e->id))
					goto badid;
				continue;
			case 'S':
				sp = &e->sender;
				break;
			case 'H':
				/* A client's HELO may hold a TAB: harmless. */
				if ((e->helo = queue_get_str(d, dlen,
				    QUEUE_STR_TEXT, &err)) == NULL)
					goto fail;
				continue;
			case 'A':
				sp = &e->client_addr;
				break;
			case 'U':
				sp = &e->auth_user;
				break;
			case 'Q':
				if ((e->hold_reason = queue_get_str(d, dlen,
				    QUEUE_STR_TEXT, &err)) == NULL)
					goto fail;
				continue;
			case 'C':
			case 'T':
				if (queue_get_num(d, dlen, LLONG_MAX, &v,
				    &err) == -1)
					goto fail;
				if (type == 'C')
					e->created = (time_t)v;
				else
					e->next_attempt = (time_t)v;
				continue;
			case 'Z':
				if (queue_get_num(d, dlen, UINT64_MAX, &v,
				    &err) == -1)
					goto fail;
				e->size = v;
				continue;
			case 'F':
				if (queue_get_num(d, dlen, QUEUE_F_STORED, &v,
				    &err) == -1)
					goto fail;
				if (v & ~(unsigned long long)QUEUE_F_STORED) {
					err = "unknown envelope flags";
					goto fail;
				}
				e->flags = (unsigned int)v;
				continue;
			case 'N':
				if (queue_get_num(d, dlen, UINT_MAX, &v,
				    &err) == -1)
					goto fail;
				e->attempts = (unsigned int)v;
				continue;
			default:
				goto fail;
			}
			if ((*sp = queue_get_str(d, dlen, QUEUE_STR_STRICT,
			    &err)) == NULL)
				goto fail;
			continue;
		}
		switch (type) {
		case 'R':
			if ((seen & QUEUE_REQUIRED) != QUEUE_REQUIRED) {
				err = "missing envelope field";
				goto fail;
			}
			if (e->nrcpts > 0 && !have_x) {
				err = "recipient without state";
				goto fail;
			}
			if (e->nrcpts >= QUEUE_RCPT_MAX) {
				err = "too many recipients";
				goto fail;
			}
			if (!queue_str_ok(d, dlen, QUEUE_STR_STRICT) ||
			    memchr(d, '\0', dlen) != NULL) {
				err = "control character in envelope field";
				goto fail;
			}
			/* Grow geometrically: up to QUEUE_RCPT_MAX here. */
			if (e->nrcpts == cap) {
				cap = cap ? cap * 2 : 8;
				nr = reallocarray(e->rcpts, cap, sizeof(*nr));
				if (nr == NULL) {
					err = "out of memory";
					goto fail;
				}
				e->rcpts = nr;
			}
			r = &e->rcpts[e->nrcpts];
			memset(r, 0, sizeof(*r));
			r->state = QUEUE_RCPT_PENDING;
			if ((r->addr = strndup(d, dlen)) == NULL) {
				err = "out of memory";
				goto fail;
			}
			e->nrcpts++;
			have_x = 0;
			continue;
		case 'O':
			if (r == NULL || have_x || r->orcpt != NULL)
				goto order;
			if ((r->orcpt = queue_get_str(d, dlen,
			    QUEUE_STR_STRICT, &err)) == NULL)
				goto fail;
			continue;
		case 'X':
			if (r == NULL || have_x)
				goto order;
			if (queue_get_num(d, dlen, QUEUE_RCPT_FAILED, &v,
			    &err) == -1)
				goto fail;
			r->state = (enum queue_rcpt_state)v;
			have_x = 1;
			continue;
		case 'G':
			if (r == NULL || !have_x || r->diag != NULL)
				goto order;
			if ((r->diag = queue_get_str(d, dlen, QUEUE_STR_TEXT,
			    &err)) == NULL)
				goto fail;
			continue;
		default:
			if (strchr(queue_header_order, type) != NULL &&
			    type != '\0')
				goto order;
			err = "unknown record type";
			goto fail;
		}
	}
	if (rd.pos != rd.len) {
		err = "trailing bytes after end record";
		goto fail;
	}
	if (e->nrcpts == 0 || !have_x) {
		err = e->nrcpts == 0 ? "no recipients" :
		    "recipient without state";
		goto fail;
	}
	return 0;

 badid:
	err = "invalid queue id";
	goto fail;
 order:
	err = "record out of order";
 fail:
	queue_env_free(e);
	*error_r = err;
	return -1;
}

void
queue_env_free(struct queue_env *e)
{
	size_t	 i;

	for (i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].diag);
	}
	free(e->rcpts);
	free(e->sender);
	free(e->helo);
	free(e->client_addr);
	free(e->auth_user);
	free(e->hold_reason);
	memset(e, 0, sizeof(*e));
}

int
queue_env_add_rcpt(struct queue_env *e, const char *addr, const char *orcpt)
{
	struct queue_rcpt	*n, *r;

	if (e->nrcpts >= QUEUE_RCPT_MAX) {
		errno = E2BIG;
		return -1;
	}
	/*
	 * XXX one realloc per recipient: callers may have built rcpts
	 * themselves, so no hidden capacity is assumed.  Fine for the
	 * per-message recipient limits of a session; the decoder, which
	 * may see QUEUE_RCPT_MAX, grows its array itself.
	 */
	n = reallocarray(e->rcpts, e->nrcpts + 1, sizeof(*n));
	if (n == NULL)
		return -1;
	e->rcpts = n;
	r = &n[e->nrcpts];
	memset(r, 0, sizeof(*r));
	r->state = QUEUE_RCPT_PENDING;
	if ((r->addr = strdup(addr)) == NULL)
		return -1;
	if (orcpt != NULL && (r->orcpt = strdup(orcpt)) == NULL) {
		free(r->addr);
		r->addr = NULL;
		return -1;
	}
	e->nrcpts++;
	return 0;
}

/* --- files -------------------------------------------------------------- */

static int
queue_path(char *dst, size_t size, const char *qdir, const char *sub,
    const char *id, const char *suffix)
{
	int	 r;

	r = snprintf(dst, size, "%s/%s%s%s%s", qdir, sub, id[0] ? "/" : "",
	    id, suffix);
	if (r < 0 || (size_t)r >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* fsync the directory qdir/sub. */
static int
queue_fsync_dir(const char *qdir, const char *sub)
{
	char	 path[PATH_MAX];
	int	 fd, saved;

	if (queue_path(path, sizeof(path), qdir, sub, "", "") == -1)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fsync(fd) == -1) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int
queue_init(const char *qdir, const char **error_r)
{
	static const char *const subs[] = { "tmp", "msg", "env", "hold" };
	char		 path[PATH_MAX];
	struct stat	 st;
	size_t		 i;
	int		 made = 0;

	if (mkdir(qdir, 0700) == 0)
		made = 1;
	else if (errno != EEXIST) {
		*error_r = "cannot create queue directory";
		return -1;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (queue_path(path, sizeof(path), qdir, subs[i], "",
		    "") == -1) {
			*error_r = "queue path too long";
			return -1;
		}
		if (mkdir(path, 0700) == 0) {
			made = 1;
			continue;
		}
		if (errno != EEXIST) {
			*error_r = "cannot create queue subdirectory";
			return -1;
		}
		if (lstat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			*error_r = "queue subdirectory is not a directory";
			return -1;
		}
	}
	if (made && queue_fsync_dir(qdir, ".") == -1) {
		*error_r = "cannot fsync queue directory";
		return -1;
	}
	return 0;
}

void
queue_new_id(char id[QUEUE_ID_LEN + 1])
{
	static const char	 hex[] = "0123456789abcdef";
	static unsigned int	 counter;
	unsigned char		 r[QUEUE_ID_LEN / 2];
	size_t			 got, i;
	ssize_t			 n;
	struct timespec		 ts;
	unsigned long long	 x;

	got = 0;
	while (got < sizeof(r)) {
		n = getrandom(r + got, sizeof(r) - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof(r)) {
		/* No getrandom(2): not secret, only unique; O_EXCL checks. */
		(void)clock_gettime(CLOCK_REALTIME, &ts);
		x = (unsigned long long)ts.tv_sec * 1000000007ULL ^
		    (unsigned long long)ts.tv_nsec ^
		    ((unsigned long long)getpid() << 32) ^ ++counter;
		for (i = 0; i < sizeof(r); i++, x >>= 8)
			r[i] = (unsigned char)x;
	}
	for (i = 0; i < sizeof(r); i++) {
		id[2 * i] = hex[r[i] >> 4];
		id[2 * i + 1] = hex[r[i] & 0xf];
	}
	id[QUEUE_ID_LEN] = '\0';
}

int
queue_id_valid(const char *s)
{
	size_t	 i;

	if (s == NULL)
		return 0;
	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[QUEUE_ID_LEN] == '\0';
}

/*
 * Spare message files (queue_writer_recycle): on a file system where
 * a new inode costs far more than a rename (ext4 without a journal
 * scans recently freed inodes, docs/performance.md), a file that was
 * never committed is renamed to the next message's name and written
 * over instead of being unlinked and created again.  It is not
 * truncated to zero: ext4 then writes the file out at its next close
 * (auto_da_alloc), which costs a disk write per message for a file
 * that is never meant to reach the disk.  queue_writer_seal() cuts
 * the old tail once the message is written.  Shared by the worker's
 * threads.
 */
static struct {
	pthread_mutex_t	 mu;
	int		 fd[QUEUE_POOL_MAX];
	uint64_t	 len[QUEUE_POOL_MAX];
	char		 path[QUEUE_POOL_MAX][512];
	size_t		 n;
} queue_pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A spare file renamed to path, its length in *len; -1: create one. */
static int
queue_pool_take(const char *path, uint64_t *len)
{
	char	 old[512];
	int	 fd = -1;

	if (pthread_mutex_lock(&queue_pool.mu) != 0)
		return -1;
	if (queue_pool.n > 0) {
		queue_pool.n--;
		fd = queue_pool.fd[queue_pool.n];
		*len = queue_pool.len[queue_pool.n];
		memcpy(old, queue_pool.path[queue_pool.n], sizeof(old));
	}
	(void)pthread_mutex_unlock(&queue_pool.mu);
	if (fd == -1)
		return -1;
	/* Never over another file (ids are checked by O_EXCL below). */
	if (renameat2(AT_FDCWD, old, AT_FDCWD, path, RENAME_NOREPLACE) ==
	    -1 || lseek(fd, 0, SEEK_SET) == -1) {
		/* queue_gc() may have removed an old spare: fine. */
		(void)close(fd);
		(void)unlink(old);
		return -1;
	}
	return fd;
}

int
queue_writer_open(struct queue_writer *w, const char *qdir,
    const char **error_r)
{
	char	 path[PATH_MAX];
	int	 tries, saved;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	for (tries = 0; tries < QUEUE_OPEN_TRIES; tries++) {
		queue_new_id(w->id);
		if (queue_path(w->tmp_path, sizeof(w->tmp_path), qdir, "tmp",
		    w->id, ".msg") == -1 ||
		    queue_path(path, sizeof(path), qdir, "msg", w->id,
		    "") == -1) {
			*error_r = "queue path too long";
			return -1;
		}
		w->stale = 0;
		if ((w->fd = queue_pool_take(w->tmp_path, &w->stale)) == -1)
			w->fd = open(w->tmp_path, O_WRONLY | O_CREAT |
			    O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w->fd == -1) {
			if (errno == EEXIST)
				continue;
			*error_r = "cannot create queue file";
			w->tmp_path[0] = '\0';
			return -1;
		}
		/*
		 * Holding tmp/ID.msg, check no committed message has the
		 * id: from open to removal, a message always has either
		 * tmp/ID.msg or msg/ID (rename is atomic).
		 */
		if (access(path, F_OK) == -1) {
			if (errno == ENOENT)
				return 0;
			saved = errno;
		} else
			saved = 0;	/* taken: try another id */
		(void)close(w->fd);
		(void)unlink(w->tmp_path);
		w->fd = -1;
		if (saved != 0) {
			w->tmp_path[0] = '\0';
			errno = saved;
			*error_r = "cannot check queue id";
			return -1;
		}
	}
	w->tmp_path[0] = '\0';
	errno = EEXIST;
	*error_r = "cannot find a free queue id";
	return -1;
}

int
queue_writer_write(struct queue_writer *w, const void *data, size_t len)
{
	if (w->failed) {
		errno = w->error;
		return -1;
	}
	if (w->fd == -1) {
		w->failed = 1;
		w->error = EBADF;
		errno = EBADF;
		return -1;
	}
	if (len > UINT64_MAX - w->size) {
		w->failed = 1;
		w->error = EFBIG;
		errno = EFBIG;
		return -1;
	}
	if (write_all(w->fd, data, len) == -1) {
		w->failed = 1;
		w->error = errno != 0 ? errno : EIO;
		return -1;
	}
	w->size += len;
	return 0;
}

int
queue_writer_seal(struct queue_writer *w)
{
	if (w->stale > w->size && w->fd != -1 && !w->failed &&
	    ftruncate(w->fd, (off_t)w->size) == -1) {
		w->failed = 1;
		w->error = errno != 0 ? errno : EIO;
		return -1;
	}
	w->stale = 0;
	return w->failed ? -1 : 0;
}

/* Write data to path (new, 0600), fsync and close. */
static int
queue_write_file(const char *path, int excl, const void *data, size_t len)
{
	int	 fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    (excl ? O_EXCL : O_TRUNC), 0600);
	if (fd == -1)
		return -1;
	if (write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int
queue_writer_commit(struct queue_writer *w, const char *qdir,
    struct queue_env *e, const char **error_r)
{
	char		 msgpath[PATH_MAX], envtmp[PATH_MAX];
	char		 envpath[PATH_MAX];
	const char	*err = NULL, *dir;
	struct buf	 b;
	int		 saved, msg_done = 0, envtmp_made = 0, env_done = 0;

	buf_init(&b, QUEUE_ENV_MAX);
	dir = e->hold_reason != NULL ? "hold" : "env";
	if (queue_path(msgpath, sizeof(msgpath), qdir, "msg", w->id,
	    "") == -1 ||
	    queue_path(envtmp, sizeof(envtmp), qdir, "tmp", w->id,
	    ".env") == -1 ||
	    queue_path(envpath, sizeof(envpath), qdir, dir, w->id, "") == -1) {
		err = "queue path too long";
		goto fail;
	}
	if (w->fd == -1 || queue_writer_seal(w) == -1) {
		errno = w->failed ? w->error : EBADF;
		err = "cannot write queue file";
		goto fail;
	}

	if (fsync(w->fd) == -1) {
		err = "cannot fsync queue file";
		goto fail;
	}
	if (close(w->fd) == -1) {
		w->fd = -1;
		err = "cannot close queue file";
		goto fail;
	}
	w->fd = -1;
	if (rename(w->tmp_path, msgpath) == -1) {
		err = "cannot rename queue file";
		goto fail;
	}
	msg_done = 1;
	/* The body must be on disk before the envelope that names it. */
	if (queue_fsync_dir(qdir, "msg") == -1) {
		err = "cannot fsync queue directory";
		goto fail;
	}

	memcpy(e->id, w->id, sizeof(e->id));
	e->size = w->size;
	if (e->created == 0)
		e->created = time(NULL);	/* see the table above */
	if (queue_env_encode(e, &b, &err) == -1)
		goto fail;
	envtmp_made = 1;
	if (queue_write_file(envtmp, 1, b.data, b.len) == -1) {
		if (errno == EEXIST)
			envtmp_made = 0;
		err = "cannot write envelope";
		goto fail;
	}
	if (rename(envtmp, envpath) == -1) {
		err = "cannot rename envelope";
		goto fail;
	}
	envtmp_made = 0;
	env_done = 1;
	if (queue_fsync_dir(qdir, dir) == -1) {
		err = "cannot fsync queue directory";
		goto fail;
	}
	buf_free(&b);
	w->tmp_path[0] = '\0';
	return 0;

 fail:
	saved = errno;
	buf_free(&b);
	/* Leave nothing behind: the client will be told 4xx and retry. */
	if (w->fd != -1) {
		(void)close(w->fd);
		w->fd = -1;
	}
	if (env_done) {
		(void)unlink(envpath);
		(void)queue_fsync_dir(qdir, dir);
	}
	if (envtmp_made)
		(void)unlink(envtmp);
	if (msg_done)
		(void)unlink(msgpath);
	else if (w->tmp_path[0] != '\0')
		(void)unlink(w->tmp_path);
	w->tmp_path[0] = '\0';
	*error_r = err;
	errno = saved;
	return -1;
}

void
queue_writer_recycle(struct queue_writer *w)
{
	int	 saved = errno, kept = 0;

	/* A failed write may have left bytes past w->size. */
	if (w->fd != -1 && w->tmp_path[0] != '\0' && !w->failed &&
	    pthread_mutex_lock(&queue_pool.mu) == 0) {
		if (queue_pool.n < QUEUE_POOL_MAX) {
			queue_pool.fd[queue_pool.n] = w->fd;
			queue_pool.len[queue_pool.n] = w->stale > w->size ?
			    w->stale : w->size;
			memcpy(queue_pool.path[queue_pool.n], w->tmp_path,
			    sizeof(queue_pool.path[0]));
			queue_pool.n++;
			kept = 1;
		}
		(void)pthread_mutex_unlock(&queue_pool.mu);
	}
	if (kept) {
		w->fd = -1;
		w->tmp_path[0] = '\0';
	} else
		queue_writer_abort(w);
	errno = saved;
}

void
queue_writer_abort(struct queue_writer *w)
{
	int	 saved = errno;

	if (w->fd != -1) {
		(void)close(w->fd);
		w->fd = -1;
	}
	if (w->tmp_path[0] != '\0') {
		(void)unlink(w->tmp_path);
		w->tmp_path[0] = '\0';
	}
	errno = saved;
}

/*
 * Find the envelope of id: "env" or "hold" in *dir_r, its path in path.
 * -1 with errno ENOENT when neither exists.
 */
static int
queue_env_find(const char *qdir, const char *id, char *path, size_t size,
    const char **dir_r)
{
	if (queue_path(path, size, qdir, "env", id, "") == -1)
		return -1;
	if (access(path, F_OK) == 0) {
		*dir_r = "env";
		return 0;
	}
	if (errno != ENOENT)
		return -1;
	if (queue_path(path, size, qdir, "hold", id, "") == -1)
		return -1;
	if (access(path, F_OK) == 0) {
		*dir_r = "hold";
		return 0;
	}
	return -1;
}

int
queue_env_load(const char *qdir, const char *id, struct queue_env *e,
    const char **error_r)
{
	char		 path[PATH_MAX];
	const char	*dir, *err;
	struct buf	 b;
	int		 saved;

	memset(e, 0, sizeof(*e));
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		*error_r = "invalid queue id";
		return -1;
	}
	if (queue_env_find(qdir, id, path, sizeof(path), &dir) == -1) {
		*error_r = "no such envelope";
		return -1;
	}
	buf_init(&b, QUEUE_ENV_MAX);
	if (file_read_all(path, QUEUE_ENV_MAX, &b, &err) == -1) {
		saved = errno;
		buf_free(&b);
		*error_r = err;
		errno = saved;
		return -1;
	}
	if (queue_env_decode(b.data != NULL ? b.data : "", b.len, e,
	    error_r) == -1) {
		buf_free(&b);
		errno = EINVAL;
		return -1;
	}
	buf_free(&b);
	if (strcmp(e->id, id) != 0) {
		queue_env_free(e);
		errno = EINVAL;
		*error_r = "envelope id does not match its name";
		return -1;
	}
	return 0;
}

int
queue_env_update(const char *qdir, const struct queue_env *e,
    const char **error_r)
{
	char		 cur[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX];
	char		 suffix[32];
	const char	*dir, *want, *err = NULL;
	struct buf	 b;
	int		 saved, r, tmp_made = 0;

	buf_init(&b, QUEUE_ENV_MAX);
	if (!queue_id_valid(e->id)) {
		errno = EINVAL;
		err = "invalid queue id";
		goto fail;
	}
	if (queue_env_find(qdir, e->id, cur, sizeof(cur), &dir) == -1) {
		/* Never resurrect a removed message. */
		err = "no such envelope";
		goto fail;
	}
	if (queue_env_encode(e, &b, &err) == -1)
		goto fail;
	r = snprintf(suffix, sizeof(suffix), ".%ld.upd", (long)getpid());
	if (r < 0 || (size_t)r >= sizeof(suffix) ||
	    queue_path(tmp, sizeof(tmp), qdir, "tmp", e->id, suffix) == -1) {
		errno = ENAMETOOLONG;
		err = "queue path too long";
		goto fail;
	}
	tmp_made = 1;
	if (queue_write_file(tmp, 0, b.data, b.len) == -1) {
		err = "cannot write envelope";
		goto fail;
	}
	/* Replace in place first, then move: see the table above. */
	if (rename(tmp, cur) == -1) {
		err = "cannot rename envelope";
		goto fail;
	}
	tmp_made = 0;
	if (queue_fsync_dir(qdir, dir) == -1) {
		err = "cannot fsync queue directory";
		goto fail;
	}
	want = e->hold_reason != NULL ? "hold" : "env";
	if (strcmp(want, dir) != 0) {
		if (queue_path(dst, sizeof(dst), qdir, want, e->id,
		    "") == -1) {
			err = "queue path too long";
			goto fail;
		}
		if (rename(cur, dst) == -1) {
			err = "cannot move envelope";
			goto fail;
		}
		if (queue_fsync_dir(qdir, want) == -1 ||
		    queue_fsync_dir(qdir, dir) == -1) {
			err = "cannot fsync queue directory";
			goto fail;
		}
	}
	buf_free(&b);
	return 0;

 fail:
	saved = errno;
	if (tmp_made)
		(void)unlink(tmp);
	buf_free(&b);
	*error_r = err;
	errno = saved;
	return -1;
}

int
queue_remove(const char *qdir, const char *id, const char **error_r)
{
	char		 path[PATH_MAX];
	const char	*dir;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		*error_r = "invalid queue id";
		return -1;
	}
	/* Envelope first: a crash then leaves an orphan body for gc. */
	if (queue_env_find(qdir, id, path, sizeof(path), &dir) == 0) {
		if (unlink(path) == -1 && errno != ENOENT) {
			*error_r = "cannot remove envelope";
			return -1;
		}
		if (queue_fsync_dir(qdir, dir) == -1) {
			*error_r = "cannot fsync queue directory";
			return -1;
		}
	} else if (errno != ENOENT) {
		*error_r = "cannot find envelope";
		return -1;
	}
	if (queue_path(path, sizeof(path), qdir, "msg", id, "") == -1) {
		*error_r = "queue path too long";
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		*error_r = "cannot remove message";
		return -1;
	}
	return 0;
}

int
queue_msg_open(const char *qdir, const char *id)
{
	char	 path[PATH_MAX];

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (queue_path(path, sizeof(path), qdir, "msg", id, "") == -1)
		return -1;
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
}

static int
queue_list_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
queue_list_dir(const char *qdir, const char *sub, char ***ids, size_t *n,
    size_t *cap)
{
	char		 path[PATH_MAX], **nids, *s;
	DIR		*d;
	struct dirent	*de;
	int		 saved;

	if (queue_path(path, sizeof(path), qdir, sub, "", "") == -1)
		return -1;
	if ((d = opendir(path)) == NULL)
		return -1;
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				goto fail;
			break;
		}
		if (!queue_id_valid(de->d_name))
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			nids = reallocarray(*ids, *cap, sizeof(*nids));
			if (nids == NULL)
				goto fail;
			*ids = nids;
		}
		if ((s = strdup(de->d_name)) == NULL)
			goto fail;
		(*ids)[(*n)++] = s;
	}
	return closedir(d);
 fail:
	saved = errno;
	(void)closedir(d);
	errno = saved;
	return -1;
}

int
queue_list(const char *qdir, int with_held, char ***ids_r, size_t *n_r,
    const char **error_r)
{
	char	**ids = NULL;
	size_t	  n = 0, cap = 0;
	int	  saved;

	if (queue_list_dir(qdir, "env", &ids, &n, &cap) == -1 ||
	    (with_held && queue_list_dir(qdir, "hold", &ids, &n,
	    &cap) == -1)) {
		saved = errno;
		queue_list_free(ids, n);
		*error_r = "cannot list queue";
		errno = saved;
		return -1;
	}
	if (n > 1)
		qsort(ids, n, sizeof(*ids), queue_list_cmp);
	*ids_r = ids;
	*n_r = n;
	return 0;
}

void
queue_list_free(char **ids, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Whether qdir/sub/name exists. */
static int
queue_exists(const char *qdir, const char *sub, const char *name)
{
	char	 path[PATH_MAX];

	if (queue_path(path, sizeof(path), qdir, sub, name, "") == -1)
		return 1;	/* when unsure, keep the body */
	return access(path, F_OK) == 0 || errno != ENOENT;
}

/*
 * Remove old files from qdir/sub: all regular files in tmp/, bodies
 * without envelope in msg/.  Returns the count removed or -1.
 */
static int
queue_gc_dir(const char *qdir, const char *sub, time_t cutoff)
{
	char		 path[PATH_MAX];
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	int		 count = 0, fd, saved, is_msg;

	is_msg = strcmp(sub, "msg") == 0;
	if (queue_path(path, sizeof(path), qdir, sub, "", "") == -1)
		return -1;
	if ((d = opendir(path)) == NULL)
		return -1;
	fd = dirfd(d);
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				goto fail;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (is_msg && (!queue_id_valid(de->d_name) ||
		    queue_exists(qdir, "env", de->d_name) ||
		    queue_exists(qdir, "hold", de->d_name)))
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno == ENOENT)
				continue;
			goto fail;
		}
		if (S_ISDIR(st.st_mode) || st.st_mtime > cutoff)
			continue;
		if (unlinkat(fd, de->d_name, 0) == -1) {
			if (errno == ENOENT)
				continue;
			goto fail;
		}
		count++;
	}
	if (closedir(d) == -1)
		return -1;
	return count;
 fail:
	saved = errno;
	(void)closedir(d);
	errno = saved;
	return -1;
}

int
queue_gc(const char *qdir, time_t age)
{
	time_t	 cutoff;
	int	 a, b;

	cutoff = time(NULL) - age;
	if ((a = queue_gc_dir(qdir, "tmp", cutoff)) == -1 ||
	    (b = queue_gc_dir(qdir, "msg", cutoff)) == -1)
		return -1;
	return a + b;
}
