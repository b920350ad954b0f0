/*
 * proctitle.c — the process title that ps(1) shows, on Linux: the
 * kernel shows the bytes of the area that held argv (and, when the last
 * byte is not a NUL, of the environment after it), so the title is
 * written over that area, as OpenSSH's compat setproctitle() and
 * sendmail's do.
 *
 * SECURITY
 *	Runs in every process of the daemons, privileged or not.  It
 *	writes only inside the area it measured at proctitle_init(), with
 *	a bounded vsnprintf, and the text it writes comes from the
 *	program (role and domain names from the configuration).  The
 *	title is public: it never holds a user name or a client address.
 *	glibc's program_invocation_name points into the area: it is
 *	moved to the heap with the arguments, so err(3) and getopt keep
 *	the program's name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "proctitle.h"
#include "xmalloc.h"

extern char	**environ;

static char	*proctitle_area;	/* argv[0] in the original area */
static size_t	 proctitle_size;	/* bytes usable, NUL included */
static char	 proctitle_name[64];
static char	**proctitle_argv;	/* the arguments' copies */

void
proctitle_init(int argc, char **argv)
{
	char	**env;
	char	 *start, *end, *base;
	size_t	  i, n;

	if (proctitle_area != NULL || argc < 1 || argv == NULL ||
	    argv[0] == NULL)
		return;
	/* The area: contiguous strings from argv[0] on, environ after. */
	start = end = argv[0];
	for (i = 0; i < (size_t)argc && argv[i] != NULL; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	for (i = 0; environ != NULL && environ[i] != NULL; i++)
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;

	for (n = 0; environ != NULL && environ[n] != NULL; n++)
		;
	env = xcalloc(n + 1, sizeof(*env));
	for (i = 0; i < n; i++)
		env[i] = xstrdup(environ[i]);
	environ = env;
	/* Kept here too: argv itself sits in the area we write over. */
	proctitle_argv = xcalloc((size_t)argc + 1, sizeof(*proctitle_argv));
	for (i = 0; i < (size_t)argc && argv[i] != NULL; i++)
		argv[i] = proctitle_argv[i] = xstrdup(argv[i]);
	program_invocation_name = argv[0];
	base = strrchr(argv[0], '/');
	program_invocation_short_name = base != NULL ? base + 1 : argv[0];
	(void)strlcpy(proctitle_name, program_invocation_short_name,
	    sizeof(proctitle_name));

	proctitle_area = start;
	proctitle_size = (size_t)(end - start);
}

void
proctitle_set(const char *fmt, ...)
{
	va_list	 ap;
	char	 title[512];
	int	 n, saved_errno = errno;
	size_t	 len;

	if (proctitle_area == NULL || proctitle_size < 2)
		return;
	n = snprintf(title, sizeof(title), "%s: ", proctitle_name);
	if (n < 0 || (size_t)n >= sizeof(title))
		return;
	va_start(ap, fmt);
	(void)vsnprintf(title + n, sizeof(title) - (size_t)n, fmt, ap);
	va_end(ap);
	len = strlen(title);
	if (len > proctitle_size - 1)
		len = proctitle_size - 1;
	memcpy(proctitle_area, title, len);
	memset(proctitle_area + len, '\0', proctitle_size - len);
	errno = saved_errno;
}
