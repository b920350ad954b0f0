/*
 * deliver_local.c — local delivery into a Maildir or an mbox, and the
 * request/reply format between the queue runner and the deliverer.
 *
 * SECURITY
 *	deliver_req_decode() runs in the privileged deliverer (root,
 *	outside the domain's root) on requests from the unprivileged
 *	runner or SMTP worker: it trusts nothing, checks every field and
 *	its length, and refuses control bytes in anything that becomes a
 *	header (Return-Path:, Delivered-To:) or a path (the user name,
 *	checked again against the domain's passwd by the caller).  The
 *	request does not name the mailbox format: the deliverer takes it
 *	from the domain's configuration.
 *
 *	deliver_local() runs in a process that has chrooted into the
 *	domain's root and become the recipient in one step (uid/gid from
 *	the domain's passwd, no_new_privs): it can do no more than the
 *	user can.  It reads the message from the descriptor it was given
 *	and writes the mailbox.  An mbox is opened with O_NOFOLLOW and
 *	used only when it is a regular file with one link owned by the
 *	user; the root part of mbox delivery (creating a missing mbox,
 *	the dotlock) is the deliverer's, outside the root
 *	(deliver_spool.c).

 * STANDARDS
 *	Maildir: tmp/ → fsync → link into new/ → fsync new/ (the D. J.
 *	Bernstein maildir(5) convention, "time.unique.host" names), the
 *	file in tmp/ unnamed where the kernel allows (maildir_create()).
 *	mbox: "From " separator, ">From " quoting of lines that start
 *	with "From " (mboxo, as Postfix writes), blank line after each
 *	message, dotlock plus fcntl() lock.
 *
 * EXACTLY ONCE
 *	The file name (Maildir) or an X-Virtmail-Queue-ID: header (mbox)
 *	is derived from the queue id and the recipient index, so a second
 *	delivery of the same recipient after a crash finds the first copy
 *	and reports success without writing again.
 */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "fileio.h"
#include "passwd.h"
#include "queue.h"
#include "smtpd.h"

#define DELIVER_REQ_FIELDS	9
#define DELIVER_RES_FIELDS	5
#define DELIVER_CHUNK		65536

/* ---- the request and reply datagrams ----
 *
 * Fields separated by NUL, the first one a tag and version, the last
 * one followed by a NUL that ends the datagram exactly:
 *	"D2" reqid 0|1 qid idx created user rcpt sender
 * (version 1 had the mailbox format after reqid: the deliverer now
 * takes it from the domain's configuration, never from its client)
 *	"R1" reqid ok|temp|perm mailbox reason
 */

static int
deliver_put(char *dst, size_t size, size_t *off, const char *s)
{
	size_t	 n;

	n = strlen(s) + 1;
	if (n > size - *off)
		return -1;
	memcpy(dst + *off, s, n);
	*off += n;
	return 0;
}

/* Split src into exactly n NUL-ended fields. */
static int
deliver_split(const char *src, size_t len, const char **f, size_t n)
{
	size_t	 i, off = 0;
	const char *nul;

	for (i = 0; i < n; i++) {
		if (off >= len)
			return -1;
		if ((nul = memchr(src + off, '\0', len - off)) == NULL)
			return -1;
		f[i] = src + off;
		off = (size_t)(nul - src) + 1;
	}
	return off == len ? 0 : -1;
}

/* Text that may go into a header line: no controls, no brackets. */
static int
deliver_text_ok(const char *s, size_t max, int empty_ok)
{
	size_t	 n = 0;

	for (; *s != '\0'; s++, n++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '<' ||
		    *s == '>')
			return 0;
	}
	return n < max && (empty_ok || n > 0);
}

static int
deliver_num(const char *s, long long max, long long *v_r)
{
	const char	*errstr;

	if (*s == '\0' || *s == '+' || *s == '-')
		return -1;
	*v_r = strtonum(s, 0, max, &errstr);
	return errstr == NULL ? 0 : -1;
}

int
deliver_req_encode(const struct deliver_req *r, char *dst, size_t size,
    size_t *len_r)
{
	char	 reqid[16], idx[16], created[32];
	size_t	 off = 0;

	if (!deliver_text_ok(r->rcpt, sizeof(r->rcpt), 0) ||
	    !deliver_text_ok(r->sender, sizeof(r->sender), 1) ||
	    !passwd_name_valid(r->user) || !queue_id_valid(r->queue_id))
		return -1;
	(void)snprintf(reqid, sizeof(reqid), "%u", r->reqid);
	(void)snprintf(idx, sizeof(idx), "%u", r->rcpt_index);
	(void)snprintf(created, sizeof(created), "%lld", r->created);
	if (deliver_put(dst, size, &off, "D2") == -1 ||
	    deliver_put(dst, size, &off, reqid) == -1 ||
	    deliver_put(dst, size, &off, r->recovered ? "1" : "0") == -1 ||
	    deliver_put(dst, size, &off, r->queue_id) == -1 ||
	    deliver_put(dst, size, &off, idx) == -1 ||
	    deliver_put(dst, size, &off, created) == -1 ||
	    deliver_put(dst, size, &off, r->user) == -1 ||
	    deliver_put(dst, size, &off, r->rcpt) == -1 ||
	    deliver_put(dst, size, &off, r->sender) == -1)
		return -1;
	*len_r = off;
	return 0;
}

int
deliver_req_decode(const char *src, size_t len, struct deliver_req *r,
    const char **error_r)
{
	const char	*f[DELIVER_REQ_FIELDS];
	long long	 v;

	memset(r, 0, sizeof(*r));
	if (len > DELIVER_MSG_MAX ||
	    deliver_split(src, len, f, DELIVER_REQ_FIELDS) == -1) {
		*error_r = "malformed request";
		return -1;
	}
	if (strcmp(f[0], "D2") != 0) {
		*error_r = "unknown request type";
		return -1;
	}
	if (deliver_num(f[1], UINT32_MAX, &v) == -1) {
		*error_r = "bad request id";
		return -1;
	}
	r->reqid = (uint32_t)v;
	if (strcmp(f[2], "0") != 0 && strcmp(f[2], "1") != 0) {
		*error_r = "bad recovered flag";
		return -1;
	}
	r->recovered = f[2][0] == '1';
	if (!queue_id_valid(f[3]) ||
	    strlcpy(r->queue_id, f[3], sizeof(r->queue_id)) >=
	    sizeof(r->queue_id)) {
		*error_r = "bad queue id";
		return -1;
	}
	if (deliver_num(f[4], QUEUE_RCPT_MAX, &v) == -1) {
		*error_r = "bad recipient index";
		return -1;
	}
	r->rcpt_index = (unsigned int)v;
	if (deliver_num(f[5], LLONG_MAX, &v) == -1) {
		*error_r = "bad creation time";
		return -1;
	}
	r->created = v;
	if (!passwd_name_valid(f[6]) ||
	    strlcpy(r->user, f[6], sizeof(r->user)) >= sizeof(r->user)) {
		*error_r = "bad user name";
		return -1;
	}
	if (!deliver_text_ok(f[7], sizeof(r->rcpt), 0) ||
	    strlcpy(r->rcpt, f[7], sizeof(r->rcpt)) >= sizeof(r->rcpt)) {
		*error_r = "bad recipient address";
		return -1;
	}
	if (!deliver_text_ok(f[8], sizeof(r->sender), 1) ||
	    strlcpy(r->sender, f[8], sizeof(r->sender)) >=
	    sizeof(r->sender)) {
		*error_r = "bad sender address";
		return -1;
	}
	return 0;
}

static const char *const deliver_status_names[] = { "ok", "temp", "perm" };

int
deliver_res_encode(const struct deliver_res *r, char *dst, size_t size,
    size_t *len_r)
{
	char	 reqid[16];
	size_t	 off = 0;

	if ((unsigned int)r->status > DELIVER_PERMFAIL)
		return -1;
	(void)snprintf(reqid, sizeof(reqid), "%u", r->reqid);
	if (deliver_put(dst, size, &off, "R1") == -1 ||
	    deliver_put(dst, size, &off, reqid) == -1 ||
	    deliver_put(dst, size, &off,
	    deliver_status_names[r->status]) == -1 ||
	    deliver_put(dst, size, &off, r->mailbox) == -1 ||
	    deliver_put(dst, size, &off, r->reason) == -1)
		return -1;
	*len_r = off;
	return 0;
}

int
deliver_res_decode(const char *src, size_t len, struct deliver_res *r,
    const char **error_r)
{
	const char	*f[DELIVER_RES_FIELDS];
	long long	 v;
	int		 i;

	memset(r, 0, sizeof(*r));
	if (len > DELIVER_MSG_MAX ||
	    deliver_split(src, len, f, DELIVER_RES_FIELDS) == -1 ||
	    strcmp(f[0], "R1") != 0) {
		*error_r = "malformed reply";
		return -1;
	}
	if (deliver_num(f[1], UINT32_MAX, &v) == -1) {
		*error_r = "bad reply id";
		return -1;
	}
	r->reqid = (uint32_t)v;
	for (i = 0; i <= DELIVER_PERMFAIL; i++)
		if (strcmp(f[2], deliver_status_names[i]) == 0)
			break;
	if (i > DELIVER_PERMFAIL) {
		*error_r = "bad reply status";
		return -1;
	}
	r->status = (enum deliver_status)i;
	if (strlcpy(r->mailbox, f[3], sizeof(r->mailbox)) >=
	    sizeof(r->mailbox) ||
	    strlcpy(r->reason, f[4], sizeof(r->reason)) >= sizeof(r->reason)) {
		*error_r = "reply field too long";
		return -1;
	}
	return 0;
}

/* ---- pure helpers ---- */

int
deliver_maildir_name(char *dst, size_t size, long long created,
    const char *qid, unsigned int idx, const char *host)
{
	struct buf	 b;
	int		 rv = -1;

	/* maildir(5): '/' and ':' in the host part become \057, \072. */
	buf_init(&b, size > 0 ? size - 1 : 0);
	if (size == 0 || !queue_id_valid(qid) ||
	    buf_printf(&b, "%lld.V%sI%u.", created, qid, idx) == -1)
		goto done;
	for (; *host != '\0'; host++) {
		if (*host == '/') {
			if (buf_puts(&b, "\\057") == -1)
				goto done;
		} else if (*host == ':') {
			if (buf_puts(&b, "\\072") == -1)
				goto done;
		} else if ((unsigned char)*host <= 0x20 || *host == 0x7f) {
			goto done;
		} else if (buf_putc(&b, *host) == -1)
			goto done;
	}
	if (strlcpy(dst, buf_cstr(&b), size) < size)
		rv = 0;
done:
	buf_free(&b);
	return rv;
}

void
deliver_quote_init(struct deliver_quote *q)
{
	q->match = 0;
	q->lastc = '\n';
}

int
deliver_quote(struct deliver_quote *q, struct buf *out, const char *data,
    size_t len)
{
	static const char from[] = "From ";
	size_t		 i, start = 0;
	char		 c;

	for (i = 0; i < len; i++) {
		c = data[i];
		if (q->match < 0) {
			if (c == '\n') {
				if (buf_append(out, data + start,
				    i + 1 - start) == -1)
					return -1;
				start = i + 1;
				q->match = 0;
			}
			continue;
		}
		/* At a line start: hold back a possible "From ". */
		if (c == from[q->match]) {
			q->match++;
			start = i + 1;
			if (q->match == 5) {
				if (buf_puts(out, ">From ") == -1)
					return -1;
				q->match = -1;
			}
			continue;
		}
		if (buf_append(out, from, (size_t)q->match) == -1)
			return -1;
		start = i;
		q->match = c == '\n' ? 0 : -1;
		if (c == '\n') {
			if (buf_putc(out, '\n') == -1)
				return -1;
			start = i + 1;
		}
	}
	if (q->match < 0 && start < len &&
	    buf_append(out, data + start, len - start) == -1)
		return -1;
	if (len > 0)
		q->lastc = (unsigned char)data[len - 1];
	return 0;
}

int
deliver_quote_end(struct deliver_quote *q, struct buf *out)
{
	if (q->match > 0 && buf_append(out, "From ", (size_t)q->match) == -1)
		return -1;
	q->match = 0;
	if (q->lastc != '\n' && buf_putc(out, '\n') == -1)
		return -1;
	q->lastc = '\n';
	return buf_putc(out, '\n');
}

/* ---- results ---- */

static void
deliver_fail(struct deliver_res *res, enum deliver_status st, int err,
    const char *what)
{
	res->status = st;
	if (err != 0)
		(void)snprintf(res->reason, sizeof(res->reason), "%s: %s",
		    what, strerror(err));
	else
		(void)strlcpy(res->reason, what, sizeof(res->reason));
}

/* Full disk and quota are temporary; so is almost everything else. */
static void
deliver_fail_errno(struct deliver_res *res, const char *what)
{
	deliver_fail(res, DELIVER_TEMPFAIL, errno, what);
}

/* ---- the mbox path, inside the root ---- */

static int
deliver_mbox_path(const struct deliver_req *r, const char *suffix,
    char *dst, size_t size)
{
	int	 n;

	n = snprintf(dst, size, "%s/%s%s", DELIVER_MBOX_DIR, r->user, suffix);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* ---- writing, as the user ---- */

/* The headers we add: Return-Path: (RFC 5321 §4.4), Delivered-To:. */
static int
deliver_headers(const struct deliver_req *r, int with_id, struct buf *out)
{
	if (buf_printf(out, "Return-Path: <%s>\nDelivered-To: %s\n",
	    r->sender, r->rcpt) == -1)
		return -1;
	if (with_id && buf_printf(out, "X-Virtmail-Queue-ID: %s.%u\n",
	    r->queue_id, r->rcpt_index) == -1)
		return -1;
	return 0;
}

/*
 * Copy the message from msgfd to fd, with hdr first; with q set,
 * ">From "-quote and end mbox-style.  0, or -1 with errno.
 */
static int
deliver_copy(int msgfd, int fd, struct buf *hdr, struct deliver_quote *q)
{
	struct buf	 out;
	char		*chunk;
	off_t		 off = 0;
	ssize_t		 n;
	int		 rv = -1, save;

	chunk = malloc(DELIVER_CHUNK);
	buf_init(&out, 0);
	if (chunk == NULL)
		return -1;
	if (write_all(fd, hdr->data, hdr->len) == -1)
		goto done;
	for (;;) {
		n = pread(msgfd, chunk, DELIVER_CHUNK, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto done;
		if (n == 0)
			break;
		off += n;
		if (q == NULL) {
			if (write_all(fd, chunk, (size_t)n) == -1)
				goto done;
			continue;
		}
		buf_reset(&out);
		if (deliver_quote(q, &out, chunk, (size_t)n) == -1 ||
		    write_all(fd, out.data, out.len) == -1)
			goto done;
	}
	if (q != NULL) {
		buf_reset(&out);
		if (deliver_quote_end(q, &out) == -1 ||
		    write_all(fd, out.data, out.len) == -1)
			goto done;
	}
	rv = 0;
done:
	save = errno;
	free(chunk);
	buf_free(&out);
	errno = save;
	return rv;
}

static int
deliver_mkdir(const char *path)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * Maildir message files are made unnamed in tmp/ (O_TMPFILE) and
 * given their name in new/ with linkat(AT_EMPTY_PATH) once written
 * and fsynced.  Nothing is ever visible half-written, as with the
 * tmp/NAME of maildir(5), but creating the file takes no lock on
 * tmp/ (concurrent deliveries to one user queued there, and on ext4
 * the holder may scan many inodes, docs/performance.md), there is no
 * unlink afterwards, and a crash leaves no name behind.  Where the
 * file system or the kernel refuses either call, tmp/NAME is used
 * from then on.
 */
static int	maildir_tmpfile = 1;

/* Whether errno says unnamed files cannot be used here. */
static int
maildir_tmpfile_refused(int e)
{
	/* ENOENT: linkat(AT_EMPTY_PATH) without CAP_DAC_READ_SEARCH
	 * before Linux 6.10 (maildir_link() made new/ already). */
	return e == EOPNOTSUPP || e == EISDIR || e == EINVAL ||
	    e == ENOENT || e == EPERM;
}

/*
 * Open the message file: unnamed (*named 0) or tmp/NAME (*named 1);
 * the folders are created if missing.  -1 with errno.
 */
static int
maildir_create(const char *md, const char *dtmp, const char *dnew,
    const char *dcur, const char *tpath, int *named)
{
	int	 fd, made;

	/*
	 * The folders are created only when missing: a mkdir() that finds
	 * one takes its parent's lock all the same, which concurrent
	 * deliveries to one user would queue on.
	 */
	for (made = 0;;) {
		*named = !maildir_tmpfile;
		if (maildir_tmpfile) {
			fd = open(dtmp, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
			if (fd == -1 && errno != ENOENT &&
			    maildir_tmpfile_refused(errno)) {
				maildir_tmpfile = 0;
				continue;
			}
		} else
			fd = open(tpath, O_WRONLY | O_CREAT | O_TRUNC |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != ENOENT || made)
			return fd;
		if (deliver_mkdir(md) == -1 || deliver_mkdir(dtmp) == -1 ||
		    deliver_mkdir(dnew) == -1 || deliver_mkdir(dcur) == -1)
			return -1;
		made = 1;
	}
}

/*
 * Give the written file its name in new/: link, not rename, so that
 * an existing new/NAME (our earlier copy) is kept (-1, EEXIST).
 */
static int
maildir_link(int fd, const char *tpath, const char *npath, const char *dnew,
    const char *dcur)
{
	int	 made, r;

	for (made = 0;; made = 1) {
		r = tpath != NULL ? link(tpath, npath) :
		    linkat(fd, "", AT_FDCWD, npath, AT_EMPTY_PATH);
		if (r == 0 || errno != ENOENT || made)
			return r;
		if (deliver_mkdir(dnew) == -1 || deliver_mkdir(dcur) == -1)
			return -1;
	}
}

/* Whether cur/ holds name with an info suffix (":2,..."). */
static int
deliver_in_cur(const char *cur, const char *name)
{
	DIR		*d;
	struct dirent	*de;
	size_t		 n = strlen(name);
	int		 found = 0;

	if ((d = opendir(cur)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, name, n) == 0 &&
		    (de->d_name[n] == ':' || de->d_name[n] == '\0')) {
			found = 1;
			break;
		}
	}
	(void)closedir(d);
	return found;
}

static void
deliver_maildir(const struct deliver_req *r, const char *home,
    const char *hostname, int msgfd, struct deliver_res *res)
{
	char		 md[PATH_MAX], dtmp[PATH_MAX], dnew[PATH_MAX];
	char		 dcur[PATH_MAX], name[NAME_MAX + 1];
	char		 tpath[PATH_MAX], npath[PATH_MAX];
	struct buf	 hdr;
	struct stat	 st;
	int		 fd = -1, named = 1, n1, n2, n3, n4;

	buf_init(&hdr, 0);
	if (*home != '/') {
		deliver_fail(res, DELIVER_PERMFAIL, 0,
		    "home directory is not absolute");
		goto done;
	}
	n1 = snprintf(md, sizeof(md), "%s%sMaildir", home,
	    home[strlen(home) - 1] == '/' ? "" : "/");
	(void)strlcpy(res->mailbox, md, sizeof(res->mailbox));
	n2 = snprintf(dtmp, sizeof(dtmp), "%s/tmp", md);
	n3 = snprintf(dnew, sizeof(dnew), "%s/new", md);
	n4 = snprintf(dcur, sizeof(dcur), "%s/cur", md);
	if (n1 < 0 || (size_t)n1 >= sizeof(md) || n2 < 0 ||
	    (size_t)n2 >= sizeof(dtmp) || n3 < 0 ||
	    (size_t)n3 >= sizeof(dnew) || n4 < 0 ||
	    (size_t)n4 >= sizeof(dcur) ||
	    deliver_maildir_name(name, sizeof(name), r->created, r->queue_id,
	    r->rcpt_index, hostname) == -1) {
		deliver_fail(res, DELIVER_PERMFAIL, 0, "Maildir path too long");
		goto done;
	}
	n1 = snprintf(tpath, sizeof(tpath), "%s/%s", dtmp, name);
	n2 = snprintf(npath, sizeof(npath), "%s/%s", dnew, name);
	if (n1 < 0 || (size_t)n1 >= sizeof(tpath) || n2 < 0 ||
	    (size_t)n2 >= sizeof(npath)) {
		deliver_fail(res, DELIVER_PERMFAIL, 0, "Maildir path too long");
		goto done;
	}
	/* An earlier incarnation may have finished before it could say so. */
	if (r->recovered && (lstat(npath, &st) == 0 ||
	    deliver_in_cur(dcur, name))) {
		res->status = DELIVER_OK;
		(void)strlcpy(res->reason, "already delivered",
		    sizeof(res->reason));
		(void)unlink(tpath);	/* left by a crash after the link */
		goto done;
	}
	if (deliver_headers(r, 0, &hdr) == -1) {
		deliver_fail_errno(res, "headers");
		goto done;
	}
	for (;;) {
		if ((fd = maildir_create(md, dtmp, dnew, dcur, tpath,
		    &named)) == -1) {
			deliver_fail_errno(res, "create in Maildir/tmp");
			goto done;
		}
		if (deliver_copy(msgfd, fd, &hdr, NULL) == -1 ||
		    fsync(fd) == -1) {
			deliver_fail_errno(res, "write to Maildir/tmp");
			goto fail;
		}
		if (maildir_link(fd, named ? tpath : NULL, npath, dnew,
		    dcur) == 0 || errno == EEXIST)
			break;
		if (named || !maildir_tmpfile_refused(errno)) {
			deliver_fail_errno(res, "link into Maildir/new");
			goto fail;
		}
		/* linkat() of an unnamed file refused: name it from now on. */
		maildir_tmpfile = 0;
		(void)close(fd);
	}
	if (close(fd) == -1) {
		fd = -1;
		deliver_fail_errno(res, "write to Maildir/tmp");
		goto fail;
	}
	fd = -1;
	if (named && unlink(tpath) == -1 && errno != ENOENT) {
		deliver_fail_errno(res, "unlink from Maildir/tmp");
		goto done;
	}
	if (file_fsync_dir(npath) == -1) {
		deliver_fail_errno(res, "fsync Maildir/new");
		goto done;
	}
	res->status = DELIVER_OK;
	goto done;
fail:
	if (fd != -1)
		(void)close(fd);
	if (named)
		(void)unlink(tpath);
done:
	buf_free(&hdr);
}

/*
 * Whether the mbox already holds our X-Virtmail-Queue-ID line in the
 * headers of one of its messages.  Reads with pread(): closing a dup of
 * fd would drop our fcntl() lock.  1, 0, or -1 with errno.
 */
static int
deliver_mbox_has(int fd, const struct deliver_req *r)
{
	char	*chunk, want[128];
	char	 line[160];
	size_t	 wlen, llen = 0;
	off_t	 off = 0;
	ssize_t	 n, i;
	int	 in_hdr = 0, blank = 1, longline = 0, found = 0;

	(void)snprintf(want, sizeof(want), "X-Virtmail-Queue-ID: %s.%u",
	    r->queue_id, r->rcpt_index);
	wlen = strlen(want);
	if ((chunk = malloc(DELIVER_CHUNK)) == NULL)
		return -1;
	while (!found) {
		n = pread(fd, chunk, DELIVER_CHUNK, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(chunk);
			return -1;
		}
		if (n == 0)
			break;
		off += n;
		for (i = 0; i < n && !found; i++) {
			if (chunk[i] != '\n') {
				if (llen < sizeof(line))
					line[llen++] = chunk[i];
				else
					longline = 1;
				continue;
			}
			/* One whole line (only its start when long). */
			if (blank && llen >= 5 && memcmp(line, "From ", 5) == 0)
				in_hdr = 1;
			else if (in_hdr && llen == 0)
				in_hdr = 0;
			else if (in_hdr && !longline && llen == wlen &&
			    memcmp(line, want, wlen) == 0)
				found = 1;
			blank = llen == 0;
			llen = 0;
			longline = 0;
		}
	}
	free(chunk);
	return found;
}

static void
deliver_mbox(const struct deliver_req *r, uid_t uid, int msgfd,
    struct deliver_res *res)
{
	char			 path[PATH_MAX], date[64];
	struct buf		 hdr;
	struct deliver_quote	 q;
	struct flock		 fl;
	struct stat		 st;
	time_t			 now, deadline;
	off_t			 oldsize = -1;
	int			 fd = -1, found;

	buf_init(&hdr, 0);
	if (deliver_mbox_path(r, "", path, sizeof(path)) == -1) {
		deliver_fail(res, DELIVER_PERMFAIL, 0, "mailbox path too long");
		goto done;
	}
	(void)strlcpy(res->mailbox, path, sizeof(res->mailbox));
	fd = open(path, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		deliver_fail_errno(res, "open mailbox");
		goto done;
	}
	if (fstat(fd, &st) == -1) {
		deliver_fail_errno(res, "stat mailbox");
		goto done;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != uid || st.st_nlink != 1) {
		deliver_fail(res, DELIVER_TEMPFAIL, 0,
		    "mailbox is not a regular file owned by the user");
		goto done;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	deadline = time(NULL) + DELIVER_LOCK_WAIT;
	while (fcntl(fd, F_SETLK, &fl) == -1) {
		if ((errno != EAGAIN && errno != EACCES && errno != EINTR) ||
		    time(NULL) >= deadline) {
			deliver_fail_errno(res, "lock mailbox");
			goto done;
		}
		(void)usleep(50 * 1000);
	}
	if (r->recovered) {
		if ((found = deliver_mbox_has(fd, r)) == -1) {
			deliver_fail_errno(res, "read mailbox");
			goto done;
		}
		if (found) {
			res->status = DELIVER_OK;
			(void)strlcpy(res->reason, "already delivered",
			    sizeof(res->reason));
			goto done;
		}
	}
	if (fstat(fd, &st) == -1) {
		deliver_fail_errno(res, "stat mailbox");
		goto done;
	}
	oldsize = st.st_size;
	now = time(NULL);
	if (ctime_r(&now, date) == NULL) {
		deliver_fail(res, DELIVER_TEMPFAIL, 0, "clock");
		goto done;
	}
	date[strcspn(date, "\n")] = '\0';
	deliver_quote_init(&q);
	if (buf_printf(&hdr, "From %s %s\n", *r->sender != '\0' ?
	    r->sender : "MAILER-DAEMON", date) == -1 ||
	    deliver_headers(r, 1, &hdr) == -1) {
		deliver_fail_errno(res, "headers");
		goto done;
	}
	if (deliver_copy(msgfd, fd, &hdr, &q) == -1 || fsync(fd) == -1) {
		deliver_fail_errno(res, "write mailbox");
		/* No partial message: back to the old size. */
		if (ftruncate(fd, oldsize) == -1 || fsync(fd) == -1)
			(void)strlcat(res->reason, " (truncate failed)",
			    sizeof(res->reason));
		goto done;
	}
	res->status = DELIVER_OK;
done:
	if (fd != -1 && close(fd) == -1 && res->status == DELIVER_OK)
		deliver_fail_errno(res, "close mailbox");
	buf_free(&hdr);
}

void
deliver_local(const struct deliver_req *r, const char *home, uid_t uid,
    const char *hostname, int msgfd, struct deliver_res *res)
{
	res->reqid = r->reqid;
	res->status = DELIVER_TEMPFAIL;
	res->reason[0] = '\0';
	res->mailbox[0] = '\0';
	(void)umask(077);
	if (r->mbox)
		deliver_mbox(r, uid, msgfd, res);
	else
		deliver_maildir(r, home, hostname, msgfd, res);
}
