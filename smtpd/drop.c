/*
 * drop.c — the drop file format (drop.h) shared by virtmail-sendmail
 * (which forms it), virtmail-postdrop (which checks it and writes it
 * into drop/) and the queue runner's pickup (which reads it).
 *
 * SECURITY
 *	The writer is any local user of the domain, through the setgid
 *	virtmail-postdrop; the reader is the domain's runner (run_as).
 *	So drop_parse() treats the file as hostile: a bounded number of
 *	bounded lines, exactly the records documented in drop.h, every
 *	address re-checked with addr_parse() (which refuses control
 *	characters, so nothing here can inject an envelope record or a
 *	header line later).  drop_copy() runs in virtmail-postdrop with
 *	the drop group, on input from any local user: the same parser,
 *	a bounded envelope, a bounded message without NUL bytes.
 *	Nothing here exits or logs; the caller reports the error it
 *	returns.  This file links into the setgid program: it may use
 *	only drop.h and the small modules of common/ (address, buf,
 *	fileio, xmalloc).
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "buf.h"
#include "daemon_main.h"
#include "drop.h"
#include "fileio.h"
#include "xmalloc.h"

#define DROP_LINE_MAX	(ADDR_PATH_MAX + 8)
/* SMTPD_DOMAIN_CONF as seen from inside the domain's root. */
#define DROP_DOMAIN_CONF	"/etc/virtmail.conf"

int
drop_on_host(void)
{
	struct stat	 a, b;

	if (stat("/", &a) == 0 && stat("/proc/1/root/.", &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return 1;
	/* The host has the domain table; a domain has its own conf. */
	return access(DAEMON_VIRTUAL_CONF, F_OK) == 0 ||
	    access(DROP_DOMAIN_CONF, F_OK) == -1;
}

int
drop_name_valid(const char *name, const char *prefix)
{
	size_t	 n = strlen(prefix), i;

	if (strncmp(name, prefix, n) != 0)
		return 0;
	for (i = 0; i < DROP_NAME_HEX; i++)
		if (!((name[n + i] >= '0' && name[n + i] <= '9') ||
		    (name[n + i] >= 'a' && name[n + i] <= 'f')))
			return 0;
	return name[n + DROP_NAME_HEX] == '\0';
}

static int
drop_addr_ok(const char *s, int sender)
{
	struct mailaddr	 a;
	const char	*err;

	if (sender && *s == '\0')
		return 1;
	if (strlen(s) >= ADDR_PATH_MAX)
		return 0;
	return addr_parse(s, ADDR_UTF8, &a, &err) == 0 && a.domain[0] != '\0';
}

int
drop_env_encode(const struct drop_env *e, struct buf *out,
    const char **error_r)
{
	size_t	 i;

	if (e->nrcpts == 0 || e->nrcpts > DROP_RCPT_MAX) {
		*error_r = e->nrcpts == 0 ? "no recipients" :
		    "too many recipients";
		return -1;
	}
	if (!drop_addr_ok(e->sender, 1)) {
		*error_r = "bad sender address";
		return -1;
	}
	if (buf_printf(out, "%s\nS %s\n", DROP_VERSION_LINE, e->sender) == -1)
		goto full;
	for (i = 0; i < e->nrcpts; i++) {
		if (!drop_addr_ok(e->rcpts[i], 0)) {
			*error_r = "bad recipient address";
			return -1;
		}
		if (buf_printf(out, "R %s\n", e->rcpts[i]) == -1)
			goto full;
	}
	if (buf_putc(out, '\n') == -1)
		goto full;
	return 0;
 full:
	*error_r = "envelope too large";
	return -1;
}

void
drop_env_free(struct drop_env *e)
{
	size_t	 i;

	free(e->sender);
	for (i = 0; i < e->nrcpts; i++)
		free(e->rcpts[i]);
	free(e->rcpts);
	memset(e, 0, sizeof(*e));
}

int
drop_parse(const char *data, size_t len, struct drop_env *e,
    size_t *msg_off_r, const char **error_r)
{
	char		 line[DROP_LINE_MAX + 1];
	const char	*nl, *err = NULL;
	size_t		 off = 0, n, lineno = 0;

	memset(e, 0, sizeof(*e));
	for (;;) {
		if (off >= len) {
			err = "truncated envelope";
			goto fail;
		}
		nl = memchr(data + off, '\n', len - off);
		if (nl == NULL) {
			err = "truncated envelope";
			goto fail;
		}
		n = (size_t)(nl - (data + off));
		if (n > DROP_LINE_MAX) {
			err = "envelope line too long";
			goto fail;
		}
		if (memchr(data + off, '\0', n) != NULL) {
			err = "NUL byte in envelope";
			goto fail;
		}
		memcpy(line, data + off, n);
		line[n] = '\0';
		off += n + 1;
		lineno++;

		if (lineno == 1) {
			if (strcmp(line, DROP_VERSION_LINE) != 0) {
				err = "not a drop file of version 1";
				goto fail;
			}
			continue;
		}
		if (lineno == 2) {
			if (strncmp(line, "S ", 2) != 0) {
				err = "sender record missing";
				goto fail;
			}
			if (!drop_addr_ok(line + 2, 1)) {
				err = "bad sender address";
				goto fail;
			}
			e->sender = xstrdup(line + 2);
			continue;
		}
		if (n == 0)
			break;
		if (strncmp(line, "R ", 2) != 0) {
			err = "unknown envelope record";
			goto fail;
		}
		if (e->nrcpts >= DROP_RCPT_MAX) {
			err = "too many recipients";
			goto fail;
		}
		if (!drop_addr_ok(line + 2, 0)) {
			err = "bad recipient address";
			goto fail;
		}
		e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1,
		    sizeof(*e->rcpts));
		e->rcpts[e->nrcpts++] = xstrdup(line + 2);
	}
	if (e->nrcpts == 0) {
		err = "no recipients";
		goto fail;
	}
	*msg_off_r = off;
	return 0;
 fail:
	drop_env_free(e);
	*error_r = err;
	return -1;
}

/* read(2) that retries on EINTR. */
static ssize_t
drop_read(int fd, void *p, size_t n)
{
	ssize_t	 r;

	while ((r = read(fd, p, n)) == -1 && errno == EINTR)
		;
	return r;
}

/* Write a message chunk after checking it; DROP_COPY_* result. */
static enum drop_copy_result
drop_copy_chunk(int outfd, const char *p, size_t n, size_t *total,
    size_t msg_max, const char **error_r)
{
	if (memchr(p, '\0', n) != NULL) {
		*error_r = "NUL byte in the message";
		return DROP_COPY_BAD;
	}
	if (n > msg_max - *total) {
		*error_r = "message too large";
		return DROP_COPY_BAD;
	}
	*total += n;
	if (n > 0 && write_all(outfd, p, n) == -1)
		return DROP_COPY_EWRITE;
	return DROP_COPY_OK;
}

enum drop_copy_result
drop_copy(int infd, int outfd, size_t msg_max, const char **error_r)
{
	char			 chunk[65536];
	struct drop_env		 e;
	struct buf		 in, env;
	const char		*end;
	size_t			 envlen, off, total = 0;
	ssize_t			 n;
	int			 saved;
	enum drop_copy_result	 r = DROP_COPY_BAD;

	buf_init(&in, DROP_ENV_MAX + sizeof(chunk));
	buf_init(&env, DROP_ENV_MAX);
	memset(&e, 0, sizeof(e));

	/* The envelope ends at the first empty line. */
	for (;;) {
		end = in.len > 0 ? memmem(in.data, in.len, "\n\n", 2) : NULL;
		if (end != NULL)
			break;
		if (in.len > DROP_ENV_MAX) {
			*error_r = "envelope too large";
			goto out;
		}
		if ((n = drop_read(infd, chunk, sizeof(chunk))) == -1) {
			r = DROP_COPY_EREAD;
			goto out;
		}
		if (n == 0) {
			*error_r = "truncated envelope";
			goto out;
		}
		if (buf_append(&in, chunk, (size_t)n) == -1) {
			*error_r = "envelope too large";
			goto out;
		}
	}
	envlen = (size_t)(end - in.data) + 2;
	if (envlen > DROP_ENV_MAX) {
		*error_r = "envelope too large";
		goto out;
	}
	if (drop_parse(in.data, envlen, &e, &off, error_r) == -1)
		goto out;
	/* What we write is what we would have made ourselves. */
	if (off != envlen || drop_env_encode(&e, &env, error_r) == -1) {
		if (off != envlen)
			*error_r = "malformed envelope";
		goto out;
	}
	if (write_all(outfd, env.data, env.len) == -1) {
		r = DROP_COPY_EWRITE;
		goto out;
	}
	if ((r = drop_copy_chunk(outfd, in.data + envlen, in.len - envlen,
	    &total, msg_max, error_r)) != DROP_COPY_OK)
		goto out;
	for (;;) {
		if ((n = drop_read(infd, chunk, sizeof(chunk))) == -1) {
			r = DROP_COPY_EREAD;
			goto out;
		}
		if (n == 0)
			break;
		if ((r = drop_copy_chunk(outfd, chunk, (size_t)n, &total,
		    msg_max, error_r)) != DROP_COPY_OK)
			goto out;
	}
	r = DROP_COPY_OK;
 out:
	saved = errno;
	drop_env_free(&e);
	buf_free(&env);
	buf_free(&in);
	errno = saved;
	return r;
}
