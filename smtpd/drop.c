/*
 * drop.c — the drop file format shared by virtmail-sendmail (which
 * writes it) and the queue runner's pickup (which reads it).
 *
 * SECURITY
 *	The writer is any local user of the domain, through the setgid
 *	injector; the reader is the domain's runner (run_as).  So
 *	drop_parse() treats the file as hostile: a bounded number of
 *	bounded lines, exactly the records documented in smtpd.h, every
 *	address re-checked with addr_parse() (which refuses control
 *	characters, so nothing here can inject an envelope record or a
 *	header line later).  It never exits and never logs; the caller
 *	logs the error it returns.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "smtpd.h"
#include "xmalloc.h"

#define DROP_LINE_MAX	(ADDR_PATH_MAX + 8)

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
