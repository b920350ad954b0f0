/*
 * diag.h — how parsers report problems without exiting or logging.
 *
 * A parser that finds a bad line calls diag_report(), which formats
 * "file:line: message" and hands it to the caller's function (which may
 * log it, print it or collect it for a test) and counts it.  Parsers go
 * on past a bad line, so all problems are reported before failing.
 */
#ifndef VIRTMAIL_DIAG_H
#define VIRTMAIL_DIAG_H

typedef void diag_fn(void *ctx, const char *msg);

struct diag {
	diag_fn	*fn;		/* may be NULL: only count */
	void	*ctx;
	int	 count;		/* problems reported so far */
};

/* Report one problem; line 0 leaves out the line number. */
void	diag_report(struct diag *d, const char *file, int line,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
