/*
 * line.c — bounded line reader over a struct buf.
 *
 * SECURITY: runs in the unprivileged protocol workers on raw peer
 * bytes.  It never looks further than max + 2 bytes for an ending, so
 * a peer cannot make it scan or keep an endless line, and it reports
 * exactly how each line ended (CRLF, bare LF, bare CR), so the SMTP
 * and POP3 parsers can refuse the bare endings that smuggling attacks
 * rely on.  It never exits and never allocates.
 */
#include <stdint.h>
#include <string.h>

#include "line.h"

void
line_reader_init(struct line_reader *lr, size_t max)
{
	lr->max = max;
	lr->skipping = 0;
}

/* Drop the rest of an overlong line; 1 once its LF has been consumed. */
static int
line_skip(struct line_reader *lr, struct buf *in)
{
	const char	*lf;

	if (in->len == 0)
		return 0;
	lf = memchr(in->data, '\n', in->len);
	if (lf == NULL) {
		buf_consume(in, in->len);
		return 0;
	}
	buf_consume(in, (size_t)(lf - in->data) + 1);
	lr->skipping = 0;
	return 1;
}

enum line_status
line_next(struct line_reader *lr, struct buf *in, int bare_cr,
    struct line *line_r)
{
	size_t		 i, n, limit, scan, clen, used;
	enum line_end	 end;
	const char	*p;

	if (lr->skipping && !line_skip(lr, in))
		return LINE_PARTIAL;
	if (in->len == 0)
		return LINE_PARTIAL;

	p = in->data;
	n = in->len;
	/* A line of max bytes plus CRLF; anything longer is too long. */
	limit = lr->max > SIZE_MAX - 2 ? SIZE_MAX : lr->max + 2;
	scan = n < limit ? n : limit;

	for (i = 0; i < scan; i++) {
		if (p[i] == '\n') {
			if (i > 0 && p[i - 1] == '\r') {
				clen = i - 1;
				end = LINE_END_CRLF;
			} else {
				clen = i;
				end = LINE_END_LF;
			}
			used = i + 1;
			goto found;
		}
		if (p[i] == '\r' && bare_cr) {
			/* A CR at the end may yet be followed by LF. */
			if (i + 1 == n)
				break;
			if (p[i + 1] == '\n')
				continue;
			clen = i;
			end = LINE_END_CR;
			used = i + 1;
			goto found;
		}
	}
	if (n < limit)
		return LINE_PARTIAL;

	/* No ending within the limit: report once, skip to the next LF. */
	lr->skipping = 1;
	(void)line_skip(lr, in);
	return LINE_TOOLONG;

 found:
	if (clen > lr->max) {
		buf_consume(in, used);
		return LINE_TOOLONG;
	}
	line_r->data = p;
	line_r->len = clen;
	line_r->end = end;
	line_r->consumed = used;
	return LINE_READY;
}

enum line_status
line_finish(struct line_reader *lr, struct buf *in, struct line *line_r)
{
	enum line_status	 st;

	/* Whole lines still buffered come first. */
	st = line_next(lr, in, 0, line_r);
	if (st != LINE_PARTIAL)
		return st;
	if (lr->skipping) {
		/* The tail of a line that was already reported. */
		buf_consume(in, in->len);
		lr->skipping = 0;
		return LINE_PARTIAL;
	}
	if (in->len == 0)
		return LINE_PARTIAL;
	if (in->len > lr->max) {
		buf_consume(in, in->len);
		return LINE_TOOLONG;
	}
	line_r->data = in->data;
	line_r->len = in->len;
	line_r->end = LINE_END_EOF;
	line_r->consumed = in->len;
	return LINE_READY;
}
