/*
 * colonfile.h — what the readers of etc/passwd, etc/shadow and etc/group
 * share: the walk over lines with the file and line limits, and the
 * split of a line into colon-separated fields.
 */
#ifndef VIRTMAIL_COLONFILE_H
#define VIRTMAIL_COLONFILE_H

#include <stddef.h>

#include "diag.h"

struct colon_field {
	const char	*p;
	size_t		 len;
};

/*
 * Called for each line that passed the limits, without its LF (or
 * CRLF).  Returns 0 (added, skipped or reported), or -1 out of memory.
 */
typedef int colonfile_line_fn(void *ctx, const char *file, int lineno,
	    const char *s, size_t len, struct diag *d);

/*
 * Walk text line by line: a file over file_max is refused whole
 * (errno EFBIG), a line over line_max or holding a NUL is reported and
 * skipped.  Returns 0, or -1 with errno (EFBIG, ENOMEM from fn).
 */
int	colonfile_walk(const char *file, const char *text, size_t len,
	    size_t file_max, size_t line_max, struct diag *d,
	    colonfile_line_fn *fn, void *ctx);
/*
 * Split s into fields at ':'; fills at most max of f and returns how
 * many fields the line has (more than max when it has too many).
 */
size_t	colon_split(const char *s, size_t len, struct colon_field *f,
	    size_t max);
/*
 * A decimal number in [0, max]: digits only (no sign, space or "0x").
 * 0, or -1 with *why_r ("empty", "invalid", "too large").
 */
int	colon_number(const struct colon_field *f, long long max,
	    long long *v_r, const char **why_r);
/*
 * Whether the line is blank or a '#' comment, after checking it for
 * control characters (reported: returns 1 so the caller skips it).
 */
int	colon_skip_line(const char *file, int lineno, const char *s,
	    size_t len, struct diag *d);

/*
 * The array arr (n elements of size bytes, room for *cap) with room
 * for one more: arr itself, or a larger copy (*cap updated), or NULL
 * when out of memory (arr is left as it was).
 */
void	*colon_grow(void *arr, size_t n, size_t *cap, size_t size);

typedef int colonfile_parse_fn(void *f, const char *name, const char *text,
	    size_t len, struct diag *d);
/*
 * Read path (refusing more than max bytes) and hand it to parse.  With
 * secret set the bytes read are wiped afterwards.  0, or -1 with
 * *error_r.
 */
int	colonfile_load(const char *path, size_t max, int secret,
	    colonfile_parse_fn *parse, void *f, struct diag *d,
	    const char **error_r);
/* The same from an open descriptor; name is used in messages. */
int	colonfile_load_fd(int fd, const char *name, size_t max, int secret,
	    colonfile_parse_fn *parse, void *f, struct diag *d,
	    const char **error_r);

#endif
