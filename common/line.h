/*
 * line.h — bounded line reader over a struct buf.
 *
 * Finds the next line at the front of a buffer of received bytes and
 * says how it ended: CRLF, a bare LF, or (only when the caller asks for
 * it) a bare CR.  A line longer than the limit is reported once as
 * LINE_TOOLONG and its remaining bytes are skipped up to and including
 * the next LF, so one overlong line never desynchronises the stream.
 * The line never includes its terminator.
 */
#ifndef VIRTMAIL_LINE_H
#define VIRTMAIL_LINE_H

#include <stddef.h>

#include "buf.h"

enum line_status {
	LINE_READY,		/* a whole line is available */
	LINE_PARTIAL,		/* need more bytes */
	LINE_TOOLONG,		/* a line passed the limit; being skipped */
};

enum line_end {
	LINE_END_CRLF,
	LINE_END_LF,		/* bare LF */
	LINE_END_CR,		/* bare CR followed by something else */
	LINE_END_EOF,		/* line_reader_finish: data with no ending */
};

struct line_reader {
	size_t	 max;		/* longest line, terminator excluded */
	int	 skipping;	/* discarding the rest of an overlong line */
};

struct line {
	const char	*data;	/* points into the buffer: valid until consumed */
	size_t		 len;
	enum line_end	 end;
	size_t		 consumed; /* bytes to buf_consume, terminator included */
};

/* Set up a reader for lines of at most max bytes. */
void	line_reader_init(struct line_reader *lr, size_t max);
/*
 * Look for the next line at the front of in.  On LINE_READY, *line_r
 * describes it; call buf_consume(in, line_r->consumed) when done.  On
 * LINE_TOOLONG the bytes seen so far were already consumed.  A bare CR
 * is only a line end with bare_cr set; otherwise it is data.
 */
enum line_status line_next(struct line_reader *lr, struct buf *in,
	    int bare_cr, struct line *line_r);
/*
 * At end of input: hand out what is left as a last line with
 * LINE_END_EOF.  Returns LINE_PARTIAL when nothing is left.
 */
enum line_status line_finish(struct line_reader *lr, struct buf *in,
	    struct line *line_r);

#endif
