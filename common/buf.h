/*
 * buf.h — the one growable byte buffer.
 *
 * Binary-safe, counts its length, keeps a NUL after the data so it can
 * be read as a C string, checks growth for overflow, and has a hard
 * maximum: an append that would pass it fails with errno EMSGSIZE and
 * leaves the buffer unchanged.
 *
 * Sharp edge: data moves when the buffer grows.  Keep no pointer into
 * it across an append; keep offsets instead.
 */
#ifndef VIRTMAIL_BUF_H
#define VIRTMAIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;		/* NULL until the first append */
	size_t	 len;		/* bytes in use, not counting the NUL */
	size_t	 cap;		/* bytes allocated */
	size_t	 max;		/* hard maximum for len; 0 = SIZE_MAX/2 */
};

/* Initialise an empty buffer that may hold at most max bytes (0: no limit). */
void	buf_init(struct buf *b, size_t max);
/* Free the data and reset to empty (max is kept). */
void	buf_free(struct buf *b);
/* Wipe the contents with explicit_bzero, then free. */
void	buf_free_secret(struct buf *b);
/* Forget the contents but keep the allocation. */
void	buf_reset(struct buf *b);
/* Append len bytes; -1 and errno EMSGSIZE past max, ENOMEM on OOM. */
int	buf_append(struct buf *b, const void *data, size_t len);
/* Append a C string. */
int	buf_puts(struct buf *b, const char *s);
/* Append one byte. */
int	buf_putc(struct buf *b, int c);
/* Append formatted text; -1 as for buf_append. */
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n > len drops all). */
void	buf_consume(struct buf *b, size_t n);
/* Make sure n more bytes fit without another allocation; -1 past max. */
int	buf_reserve(struct buf *b, size_t n);
/* The data as a NUL-terminated string ("" when empty). */
const char *buf_cstr(const struct buf *b);

#endif
