/*
 * diag.c — collect "file:line: message" problems from parsers.
 *
 * SECURITY: parsers report through here instead of logging or exiting,
 * so they stay testable; the message is bounded and truncation is
 * marked, never an overflow.  Callers clean peer text before it gets
 * here (log_clean); this file adds nothing from the input itself.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"

#define DIAG_MSG_MAX	1024

void
diag_report(struct diag *d, const char *file, int line, const char *fmt, ...)
{
	char	 msg[DIAG_MSG_MAX];
	va_list	 ap;
	int	 n, m;

	d->count++;
	if (d->fn == NULL)
		return;
	if (file == NULL)
		file = "(unknown)";
	if (line > 0)
		n = snprintf(msg, sizeof(msg), "%s:%d: ", file, line);
	else
		n = snprintf(msg, sizeof(msg), "%s: ", file);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(msg)) {
		va_start(ap, fmt);
		m = vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
		va_end(ap);
		if (m < 0)
			msg[n] = '\0';
		else
			n += m;
	}
	/* Mark a truncated message rather than hide it. */
	if (n < 0 || (size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	d->fn(d->ctx, msg);
}
