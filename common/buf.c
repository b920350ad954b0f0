/*
 * buf.c — the one growable byte buffer.
 *
 * SECURITY: every length that comes from outside passes through here.
 * Growth is checked for size_t overflow before any arithmetic is used,
 * and a hard per-buffer maximum turns a flood into a clean EMSGSIZE
 * instead of unbounded memory use.  A failed append leaves the buffer
 * exactly as it was.  Never exits: out of memory is ENOMEM.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_MIN_CAP	64

static size_t
buf_limit(const struct buf *b)
{
	return b->max == 0 ? SIZE_MAX / 2 : b->max;
}

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_free_secret(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 limit, need, ncap;
	char	*p;

	limit = buf_limit(b);
	/* Written as subtraction so that a huge n cannot wrap. */
	if (b->len > limit || n > limit - b->len) {
		errno = EMSGSIZE;
		return -1;
	}
	need = b->len + n + 1;		/* limit <= SIZE_MAX/2: no wrap */
	if (need <= b->cap)
		return 0;
	ncap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (ncap < need)
		ncap = ncap <= SIZE_MAX / 2 ? ncap * 2 : need;
	/* Never allocate much past what the maximum allows. */
	if (ncap > limit + 1)
		ncap = limit + 1;
	if ((p = realloc(b->data, ncap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (b->data == NULL)
		p[0] = '\0';
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len) == -1)
		return -1;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, int c)
{
	unsigned char	 ch = (unsigned char)c;

	return buf_append(b, &ch, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list	 ap2;
	size_t	 room;
	int	 n;

	if (buf_reserve(b, 0) == -1)
		return -1;
	room = b->cap - b->len;
	va_copy(ap2, ap);
	n = vsnprintf(b->data + b->len, room, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->data[b->len] = '\0';
		errno = EINVAL;
		return -1;
	}
	if ((size_t)n >= room) {
		/* Did not fit: grow to the exact size and format again. */
		b->data[b->len] = '\0';
		if (buf_reserve(b, (size_t)n) == -1)
			return -1;
		room = b->cap - b->len;
		va_copy(ap2, ap);
		n = vsnprintf(b->data + b->len, room, fmt, ap2);
		va_end(ap2);
		if (n < 0 || (size_t)n >= room) {
			b->data[b->len] = '\0';
			errno = EINVAL;
			return -1;
		}
	}
	if ((size_t)n > buf_limit(b) - b->len) {
		/* Fitted in the slack of the allocation but passes max. */
		b->data[b->len] = '\0';
		errno = EMSGSIZE;
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *
buf_cstr(const struct buf *b)
{
	return b->data == NULL ? "" : b->data;
}
