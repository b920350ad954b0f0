/*
 * mailbox.c — the mailbox of a POP3 session: Maildir or mbox, listing,
 * sending messages in their wire form, and UPDATE.
 *
 * SECURITY
 *	Runs in the session process, as the user (uid/gid from the
 *	domain's passwd), chrooted into the domain: it can touch only
 *	what the user owns.  Mailbox contents are data, never trusted:
 *	names read from a Maildir are checked before use (no '/', no
 *	leading '.'), sizes are bounded by POP3_MSG_MAX messages, and
 *	file sizes come from fstat, not from names, when sending.
 *
 * CHOICES
 *	Maildir UIDs are the base name (up to the first ',' or ':'), or a
 *	hash of it when that is not a valid RFC 1939 §7 unique-id.  The
 *	wire size is learnt once and cached in the name as ",W=" (with
 *	",S=" the size on disk), as Dovecot does; a message from new/ is
 *	moved to cur/ at that moment.  Retrieved messages get the S flag
 *	when the session ends (QUIT or not): that is not a deletion.
 *	mbox UIDs are a 64-bit FNV-1a hash of the From_ line and the
 *	message, with "-N" for exact duplicates: stable as long as the
 *	message is, and nothing is written into the mailbox to keep
 *	them.  ">From " lines are sent as stored.
 *
 * STANDARDS
 *	RFC 1939 §3 (byte-stuffing, CRLF), §5 (octet counts), §7 (UIDL).
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "fileio.h"
#include "pop3d.h"

#define MAILBOX_MMAP_MIN	(1024 * 1024)	/* larger files are mapped */
#define MAILBOX_MSG_SIZE_MAX	((uint64_t)1 << 34)
#define MAILBOX_TMP_AGE		(36 * 3600)	/* s: tmp/ leftovers removed */
#define MAILBOX_LOCK_TRIES	40		/* mbox fcntl lock, 50 ms apart */

/* ---- wire form ---- */

uint64_t
pop3_wire_size(const char *data, size_t len)
{
	const char	*p = data, *end = data + len, *nl;
	uint64_t	 n = 0;
	size_t		 l;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (nl != NULL && l > 0 && p[l - 1] == '\r')
			l--;
		n += l + 2 + (l > 0 && p[0] == '.');
		p = nl != NULL ? nl + 1 : end;
	}
	return n;
}

int
pop3_stuff(const char *data, size_t len, long body_lines, struct buf *out,
    struct pop3_io *io)
{
	const char	*p = data, *end = data + len, *nl;
	size_t		 l;
	int		 in_body = 0;

	while (p < end) {
		if (in_body && body_lines >= 0 && body_lines-- == 0)
			break;
		nl = memchr(p, '\n', (size_t)(end - p));
		l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (nl != NULL && l > 0 && p[l - 1] == '\r')
			l--;
		if (buf_reserve(out, l + 3) == -1)
			return -1;
		if (l > 0 && p[0] == '.')
			out->data[out->len++] = '.';
		memcpy(out->data + out->len, p, l);
		out->len += l;
		out->data[out->len++] = '\r';
		out->data[out->len++] = '\n';
		out->data[out->len] = '\0';
		if (l == 0)
			in_body = 1;
		p = nl != NULL ? nl + 1 : end;
		if (io != NULL && out->len >= POP3_OUT_FLUSH &&
		    pop3_io_flush(io) == -1)
			return -1;
	}
	return 0;
}

/* ---- UIDs ---- */

static uint64_t
mailbox_fnv(uint64_t h, const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Whether s can be sent as an RFC 1939 unique-id (0x21..0x7e, ≤ 70). */
static int
mailbox_uid_valid(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > POP3_UID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static char *
mailbox_uid_hash(const char *p, size_t len)
{
	char	 hex[20];

	(void)snprintf(hex, sizeof(hex), "h%016llx", (unsigned long long)
	    mailbox_fnv(0xcbf29ce484222325ULL, p, len));
	return strdup(hex);
}

static int
mailbox_msg_cmp(const void *a, const void *b)
{
	const struct pop3_msg	*x = a, *y = b;

	return strcmp(x->uid, y->uid);
}

static int
mailbox_grow(struct pop3_mailbox *mb, size_t *cap)
{
	struct pop3_msg	*nm;
	size_t		 ncap;

	if (mb->n < *cap)
		return 0;
	if (mb->n >= POP3_MSG_MAX) {
		errno = EFBIG;
		return -1;
	}
	ncap = *cap == 0 ? 64 : *cap * 2;
	if ((nm = reallocarray(mb->msgs, ncap, sizeof(*nm))) == NULL)
		return -1;
	mb->msgs = nm;
	*cap = ncap;
	return 0;
}

/* ---- Maildir ---- */

/* ",W=123" in the base part of a Maildir name; 0 and *w_r, or -1. */
static int
mailbox_name_field(const char *name, char key, uint64_t *v_r)
{
	const char	*p, *end;
	uint64_t	 v = 0;

	end = strchr(name, ':');
	if (end == NULL)
		end = name + strlen(name);
	for (p = strchr(name, ','); p != NULL && p < end;
	    p = memchr(p + 1, ',', (size_t)(end - p - 1))) {
		if (p[1] != key || p[2] != '=')
			continue;
		p += 3;
		if (p >= end || *p < '0' || *p > '9')
			return -1;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (v > UINT64_MAX / 10 - 10)
				return -1;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		*v_r = v;
		return 0;
	}
	return -1;
}

/* Read path whole into mb->scratch; 0 or -1. */
static int
mailbox_read_file(struct pop3_mailbox *mb, int fd, size_t size)
{
	ssize_t	 n;
	size_t	 got = 0;

	buf_reset(&mb->scratch);
	if (buf_reserve(&mb->scratch, size + 1) == -1)
		return -1;
	while (got < size) {
		n = read(fd, mb->scratch.data + got, size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	mb->scratch.len = got;
	mb->scratch.data[got] = '\0';
	return 0;
}

/*
 * The wire size of a message without ",W=": read it once and rename it
 * into cur/ with ",S=" and ",W=" added, keeping the flags.
 */
static int
mailbox_maildir_learn(struct pop3_mailbox *mb, int dfd, const char *sub,
    const char *name, struct pop3_msg *m)
{
	struct stat	 st;
	char		 oldp[PATH_MAX], newp[PATH_MAX];
	const char	*colon, *info;
	size_t		 baselen;
	int		 fd, n;

	n = snprintf(oldp, sizeof(oldp), "%s/%s", sub, name);
	if (n < 0 || (size_t)n >= sizeof(oldp))
		return -1;
	if ((fd = openat(dfd, oldp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > MAILBOX_MSG_SIZE_MAX) {
		(void)close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size >= MAILBOX_MMAP_MIN) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ,
		    MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED) {
			(void)close(fd);
			return -1;
		}
		m->wire = pop3_wire_size(p, (size_t)st.st_size);
		(void)munmap(p, (size_t)st.st_size);
	} else {
		if (mailbox_read_file(mb, fd, (size_t)st.st_size) == -1) {
			(void)close(fd);
			return -1;
		}
		m->wire = pop3_wire_size(mb->scratch.data, mb->scratch.len);
	}
	(void)close(fd);
	m->len = (uint64_t)st.st_size;

	colon = strchr(name, ':');
	baselen = colon != NULL ? (size_t)(colon - name) : strlen(name);
	info = colon != NULL ? colon : ":2,";
	n = snprintf(newp, sizeof(newp), "cur/%.*s,S=%llu,W=%llu%s",
	    (int)baselen, name, (unsigned long long)m->len,
	    (unsigned long long)m->wire, info);
	if (n < 0 || (size_t)n >= sizeof(newp))
		return -1;
	/* Another session may have moved it first: then skip it. */
	if (renameat(dfd, oldp, dfd, newp) == -1)
		return -1;
	if ((m->name = strdup(newp)) == NULL)
		return -1;
	return 0;
}

static int
mailbox_maildir_scan(struct pop3_mailbox *mb, int dfd, const char *sub,
    size_t *cap)
{
	DIR		*d;
	struct dirent	*de;
	struct pop3_msg	*m;
	const char	*name;
	char		 rel[PATH_MAX];
	size_t		 baselen;
	int		 sfd, n, rv = -1;

	if ((sfd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return -1;
	if ((d = fdopendir(sfd)) == NULL) {
		(void)close(sfd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		name = de->d_name;
		if (name[0] == '.' || strchr(name, '/') != NULL)
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (mailbox_grow(mb, cap) == -1)
			goto done;
		m = &mb->msgs[mb->n];
		memset(m, 0, sizeof(*m));
		if (strcmp(sub, "cur") == 0 &&
		    mailbox_name_field(name, 'W', &m->wire) == 0 &&
		    mailbox_name_field(name, 'S', &m->len) == 0) {
			n = snprintf(rel, sizeof(rel), "cur/%s", name);
			if (n < 0 || (size_t)n >= sizeof(rel) ||
			    (m->name = strdup(rel)) == NULL)
				goto done;
		} else if (mailbox_maildir_learn(mb, dfd, sub, name, m) == -1) {
			if (errno == ENOMEM)
				goto done;
			free(m->name);
			continue;	/* vanished or unreadable: skip */
		}
		baselen = strcspn(name, ",:");
		m->uid = mailbox_uid_valid(name, baselen) ?
		    strndup(name, baselen) : mailbox_uid_hash(name, baselen);
		if (m->uid == NULL) {
			free(m->name);
			goto done;
		}
		mb->n++;
	}
	if (errno != 0)
		goto done;
	rv = 0;
 done:
	(void)closedir(d);
	return rv;
}

/*
 * Files left in tmp/ by a writer that died: the Maildir convention
 * (qmail's maildir(5)) lets a reader remove them after 36 hours.  A
 * writer at work changes its file's mtime.
 * Best effort: failures change nothing for the session.
 */
static void
mailbox_maildir_clean_tmp(int dfd)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	time_t		 cutoff = time(NULL) - MAILBOX_TMP_AGE;
	int		 tfd;

	if ((tfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return;
	if ((d = fdopendir(tfd)) == NULL) {
		(void)close(tfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(tfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode) || st.st_mtime > cutoff)
			continue;
		(void)unlinkat(tfd, de->d_name, 0);
	}
	(void)closedir(d);
}

int
mailbox_open_maildir(struct pop3_mailbox *mb, const char *dir,
    const char **error_r)
{
	size_t	 cap = 0;
	int	 dfd;

	memset(mb, 0, sizeof(*mb));
	mb->fd = -1;
	buf_init(&mb->scratch, 0);
	if ((mb->path = strdup(dir)) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		*error_r = "cannot open Maildir";
		return -1;
	}
	mb->fd = dfd;
	if (mailbox_maildir_scan(mb, dfd, "cur", &cap) == -1 ||
	    mailbox_maildir_scan(mb, dfd, "new", &cap) == -1) {
		*error_r = "cannot read Maildir";
		return -1;
	}
	/* Names start with the delivery time: oldest first. */
	if (mb->n > 1)
		qsort(mb->msgs, mb->n, sizeof(*mb->msgs), mailbox_msg_cmp);
	mailbox_maildir_clean_tmp(dfd);
	return 0;
}

/* ---- mbox ---- */

static const struct pop3_msg *mailbox_sort_base;

/* By UID, then by position: duplicates numbered in mailbox order. */
static int
mailbox_idx_cmp(const void *a, const void *b)
{
	size_t	 x = *(const size_t *)a, y = *(const size_t *)b;
	int	 c;

	c = strcmp(mailbox_sort_base[x].uid, mailbox_sort_base[y].uid);
	if (c != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* Exact duplicates get "-N" (2, 3, ...) in mailbox order. */
static int
mailbox_mbox_dups(struct pop3_mailbox *mb)
{
	size_t	*idx, i, first, run = 1;
	char	 hex[40], *u;

	if (mb->n < 2)
		return 0;
	if ((idx = calloc(mb->n, sizeof(*idx))) == NULL)
		return -1;
	for (i = 0; i < mb->n; i++)
		idx[i] = i;
	mailbox_sort_base = mb->msgs;
	qsort(idx, mb->n, sizeof(*idx), mailbox_idx_cmp);
	first = idx[0];
	for (i = 1; i < mb->n; i++) {
		if (strcmp(mb->msgs[idx[i]].uid, mb->msgs[first].uid) != 0) {
			first = idx[i];
			run = 1;
			continue;
		}
		run++;
		(void)snprintf(hex, sizeof(hex), "%.16s-%zu",
		    mb->msgs[idx[i]].uid, run);
		if ((u = strdup(hex)) == NULL) {
			free(idx);
			return -1;
		}
		free(mb->msgs[idx[i]].uid);
		mb->msgs[idx[i]].uid = u;
	}
	free(idx);
	return 0;
}

int
mailbox_mbox_parse(struct pop3_mailbox *mb, const char *data, size_t len)
{
	const char	*p, *end = data + len, *nl, *next, *f;
	struct pop3_msg	*m;
	size_t		 cap = 0;
	uint64_t	 h;
	char		 hex[32];

	/* A From_ line at the start or after a blank line (mboxo). */
	if (len >= 5 && memcmp(data, "From ", 5) == 0)
		p = data;
	else if ((f = memmem(data, len, "\n\nFrom ", 7)) != NULL)
		p = f + 2;	/* text before it is kept on rewrite */
	else
		p = end;
	mb->tailoff = len;
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			/* A torn From_ line: not a message, kept as is. */
			mb->tailoff = (size_t)(p - data);
			break;
		}
		f = memmem(nl, (size_t)(end - nl), "\n\nFrom ", 7);
		next = f != NULL ? f + 2 : end;
		if (mailbox_grow(mb, &cap) == -1)
			return -1;
		m = &mb->msgs[mb->n];
		memset(m, 0, sizeof(*m));
		m->rawoff = (uint64_t)(p - data);
		m->rawlen = (uint64_t)(next - p);
		m->off = (uint64_t)(nl + 1 - data);
		/* The separator blank line is not part of the message. */
		m->len = next > nl + 1 ? (uint64_t)(next - (nl + 1)) : 0;
		if (f != NULL && m->len > 0)
			m->len--;
		else if (f == NULL && m->len >= 2 && next[-1] == '\n' &&
		    next[-2] == '\n')
			m->len--;
		m->wire = pop3_wire_size(data + m->off, (size_t)m->len);
		h = mailbox_fnv(0xcbf29ce484222325ULL, p, (size_t)m->rawlen);
		(void)snprintf(hex, sizeof(hex), "%016llx",
		    (unsigned long long)h);
		if ((m->uid = strdup(hex)) == NULL)
			return -1;
		mb->n++;
		p = next;
	}
	return mailbox_mbox_dups(mb);
}

int
mailbox_open_mbox(struct pop3_mailbox *mb, const char *path, uid_t uid,
    int *inuse_r, const char **error_r)
{
	struct stat	 st;
	struct flock	 fl;
	void		*p;
	int		 tries;

	memset(mb, 0, sizeof(*mb));
	mb->mbox = 1;
	mb->fd = -1;
	*inuse_r = 0;
	buf_init(&mb->scratch, 0);
	if ((mb->path = strdup(path)) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	mb->fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (mb->fd == -1 && errno == ENOENT)
		return 0;		/* no mail yet */
	if (mb->fd == -1) {
		*error_r = "cannot open mailbox";
		return -1;
	}
	if (fstat(mb->fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != uid || st.st_nlink != 1) {
		*error_r = "mailbox is not a regular file owned by the user";
		return -1;
	}
	/*
	 * The fcntl lock as well as the dotlock the auth step holds
	 * (Dovecot and Postfix take both), for the whole session; a writer
	 * that honours only fcntl locks gets MAILBOX_LOCK_TRIES chances.
	 */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	for (tries = 0; fcntl(mb->fd, F_SETLK, &fl) == -1; tries++) {
		if ((errno != EAGAIN && errno != EACCES) ||
		    tries + 1 >= MAILBOX_LOCK_TRIES) {
			*inuse_r = errno == EAGAIN || errno == EACCES;
			*error_r = "mailbox is locked";
			return -1;
		}
		(void)usleep(50 * 1000);
	}
	if (st.st_size == 0)
		return 0;
	if ((uint64_t)st.st_size > SIZE_MAX / 2) {
		*error_r = "mailbox too large";
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, mb->fd, 0);
	if (p == MAP_FAILED) {
		*error_r = "cannot map mailbox";
		return -1;
	}
	mb->map = p;
	mb->maplen = (size_t)st.st_size;
	if (mailbox_mbox_parse(mb, mb->map, mb->maplen) == -1) {
		*error_r = "cannot read mailbox";
		return -1;
	}
	return 0;
}

/* ---- sending ---- */

static int
mailbox_send_ok(struct pop3_io *io, const struct pop3_msg *m, long lines)
{
	if (lines >= 0)
		return pop3_io_printf(io, "+OK\r\n");
	return pop3_io_printf(io, "+OK %llu octets\r\n",
	    (unsigned long long)m->wire);
}

int
mailbox_send(struct pop3_mailbox *mb, size_t i, long lines,
    struct pop3_io *io, const char **error_r)
{
	struct pop3_msg	*m = &mb->msgs[i];
	struct stat	 st;
	void		*map = NULL;
	const char	*data;
	size_t		 len;
	int		 fd, rv = -1;

	if (mb->mbox) {
		data = mb->map + m->off;
		len = (size_t)m->len;
		if (mailbox_send_ok(io, m, lines) == -1 ||
		    pop3_stuff(data, len, lines, &io->out, io) == -1)
			goto io_fail;
		goto end;
	}
	if ((fd = openat(mb->fd, m->name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		*error_r = "[SYS/TEMP] message vanished";
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		(void)close(fd);
		*error_r = "[SYS/TEMP] cannot read message";
		return -1;
	}
	len = (size_t)st.st_size;
	if (len >= MAILBOX_MMAP_MIN) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			(void)close(fd);
			*error_r = "[SYS/TEMP] cannot read message";
			return -1;
		}
		data = map;
	} else {
		if (mailbox_read_file(mb, fd, len) == -1) {
			(void)close(fd);
			*error_r = "[SYS/TEMP] cannot read message";
			return -1;
		}
		data = mb->scratch.data;
		len = mb->scratch.len;
	}
	(void)close(fd);
	if (mailbox_send_ok(io, m, lines) == -1 ||
	    pop3_stuff(data, len, lines, &io->out, io) == -1)
		goto io_fail;
 end:
	if (buf_puts(&io->out, ".\r\n") == -1 || pop3_io_maybe_flush(io) == -1)
		goto io_fail;
	rv = 0;
	goto done;
 io_fail:
	*error_r = NULL;	/* the connection is gone */
 done:
	if (map != NULL)
		(void)munmap(map, len);
	return rv;
}

/* ---- UPDATE ---- */

/* cur/NAME with "S" added to its flags; 0 or -1. */
static int
mailbox_seen_name(const char *name, char *dst, size_t size)
{
	const char	*colon;
	int		 n;

	colon = strstr(name, ":2,");
	if (colon != NULL && strchr(colon + 3, 'S') != NULL)
		return 1;	/* already seen */
	if (colon != NULL) {
		/* Flags stay in ASCII order (maildir(5)). */
		const char	*f = colon + 3;
		size_t		 k = strspn(f, "DFPR");

		n = snprintf(dst, size, "%.*sS%s", (int)(f + k - name), name,
		    f + k);
	} else
		n = snprintf(dst, size, "%s:2,S", name);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

void
mailbox_mark_seen(struct pop3_mailbox *mb)
{
	char	 np[PATH_MAX];
	size_t	 i;

	if (mb->mbox)
		return;
	for (i = 0; i < mb->n; i++) {
		if (!mb->msgs[i].seen || mb->msgs[i].deleted)
			continue;
		if (mailbox_seen_name(mb->msgs[i].name, np, sizeof(np)) == 0)
			(void)renameat(mb->fd, mb->msgs[i].name, mb->fd, np);
	}
}

int
mailbox_update(struct pop3_mailbox *mb, int tmpfd, int *commit_r,
    const char **error_r)
{
	struct stat	 st;
	size_t		 i, ndel = 0, kept = 0;
	uint64_t	 first;
	int		 rv = 0;

	*commit_r = 0;
	if (!mb->mbox) {
		for (i = 0; i < mb->n; i++) {
			if (!mb->msgs[i].deleted)
				continue;
			if (unlinkat(mb->fd, mb->msgs[i].name, 0) == -1 &&
			    errno != ENOENT) {
				*error_r = "[SYS/TEMP] some messages were not "
				    "deleted";
				rv = -1;
			}
		}
		mailbox_mark_seen(mb);
		if (fsync(mb->fd) == -1)
			rv = -1;
		return rv;
	}
	for (i = 0; i < mb->n; i++)
		ndel += mb->msgs[i].deleted != 0;
	if (ndel == 0 || mb->map == NULL)
		return 0;
	if (tmpfd == -1) {
		*error_r = "[SYS/TEMP] cannot rewrite the mailbox";
		return -1;
	}
	/* Text before the first message, then every kept message whole. */
	first = mb->n > 0 ? mb->msgs[0].rawoff : mb->maplen;
	if (first > 0 && write_all(tmpfd, mb->map, (size_t)first) == -1)
		goto fail;
	for (i = 0; i < mb->n; i++) {
		if (mb->msgs[i].deleted)
			continue;
		if (write_all(tmpfd, mb->map + mb->msgs[i].rawoff,
		    (size_t)mb->msgs[i].rawlen) == -1)
			goto fail;
		kept++;
	}
	if (mb->tailoff < mb->maplen && write_all(tmpfd, mb->map +
	    mb->tailoff, mb->maplen - mb->tailoff) == -1)
		goto fail;
	/* Anything appended by a writer that ignores the dotlock. */
	if (fstat(mb->fd, &st) == -1)
		goto fail;
	if ((uint64_t)st.st_size > mb->maplen) {
		char	 chunk[65536];
		off_t	 off = (off_t)mb->maplen;
		ssize_t	 n;

		while ((n = pread(mb->fd, chunk, sizeof(chunk), off)) > 0) {
			if (write_all(tmpfd, chunk, (size_t)n) == -1)
				goto fail;
			off += n;
		}
		if (n == -1)
			goto fail;
	}
	if (fsync(tmpfd) == -1)
		goto fail;
	*commit_r = 1;
	(void)kept;
	return 0;
 fail:
	*error_r = "[SYS/TEMP] cannot rewrite the mailbox";
	return -1;
}

void
mailbox_close(struct pop3_mailbox *mb)
{
	size_t	 i;

	for (i = 0; i < mb->n; i++) {
		free(mb->msgs[i].uid);
		free(mb->msgs[i].name);
	}
	free(mb->msgs);
	if (mb->map != NULL)
		(void)munmap(mb->map, mb->maplen);
	if (mb->fd != -1)
		(void)close(mb->fd);
	free(mb->path);
	buf_free(&mb->scratch);
	memset(mb, 0, sizeof(*mb));
	mb->fd = -1;
}
