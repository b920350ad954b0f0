/*
 * postdrop.c — virtmail-postdrop, the one setgid step of local
 * submission: it copies one submission into the domain's drop
 * directory.
 *
 * DESCRIPTION
 *	Reads one drop submission (drop.h: envelope, empty line, message)
 *	on standard input, checks it again with drop_copy() while it
 *	writes it to QUEUE_DIR/drop/t.HEX, fsyncs the file, renames it to
 *	m.HEX, flushes the file system (the directory is not readable to
 *	fsync), and exits 0 only then.  virtmail-sendmail forms the
 *	submission and runs this program at DROP_POSTDROP_PATH; the
 *	domain's queue runner picks the file up (pickup.c).  Exit codes
 *	per sysexits.h; nothing is left in drop/ unless it exits 0.
 *
 * SECURITY
 *	Installed inside each domain's root, setgid virtmail-drop (the
 *	domain's own group), executable by every user of the domain.  The
 *	group only lets it create files in one directory (mode 1730).
 *	Its input is hostile: it takes no option at all, clears the
 *	environment, reads no configuration and no file but its standard
 *	input, parses the envelope with the runner's own parser
 *	(drop_parse), writes it again as drop_env_encode makes it, and
 *	bounds the envelope (DROP_ENV_MAX) and the message
 *	(DROP_MESSAGE_MAX, no NUL byte).  The submitting uid is the one
 *	the kernel records as the file's owner.  It never runs as root
 *	unless root starts it (virtmail-sendmail -d), refuses a setuid or
 *	setgid-root installation, and refuses to run outside a domain's
 *	root.  It links drop.c and a few modules of common/ only: no TLS,
 *	no SPF, no session engine (the Makefile checks the symbols).
 *	See docs/SECURITY.md.
 */

#include <sys/types.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "drop.h"

#define PD_NAME		"virtmail-postdrop"

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds: LeakSanitizer needs /proc, which a domain root
 * lacks. */
int	__lsan_is_turned_off(void);

int
__lsan_is_turned_off(void)
{
	return 1;
}
#endif

static void __attribute__((noreturn, format(printf, 2, 3)))
pd_die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "%s: ", PD_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/*
 * A caller may start us with 0, 1 or 2 closed, so that the drop file
 * would become our stderr: give each closed one /dev/null first.
 */
static void
pd_std_fds(void)
{
	int	 fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		if (open("/dev/null", O_RDWR) != fd)
			_exit(EX_OSERR);
	}
}

/* DROP_NAME_HEX random hex digits (unique; O_EXCL checks). */
static void
pd_name(char hex[DROP_NAME_HEX + 1])
{
	static const char	 digits[] = "0123456789abcdef";
	unsigned char		 r[DROP_NAME_HEX / 2];
	size_t			 got = 0, i;
	ssize_t			 n;

	while (got < sizeof(r)) {
		n = getrandom(r + got, sizeof(r) - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			pd_die(EX_OSERR, "getrandom: %s", n == 0 ? "no bytes" :
			    strerror(errno));
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(r); i++) {
		hex[2 * i] = digits[r[i] >> 4];
		hex[2 * i + 1] = digits[r[i] & 0x0f];
	}
	hex[DROP_NAME_HEX] = '\0';
}

/* Exit code for a failed write or create: a full disk is temporary. */
static int
pd_code(int err, int otherwise)
{
	if (err == ENOSPC || err == EDQUOT)
		return EX_TEMPFAIL;
	if (err == EACCES || err == EPERM)
		return EX_NOPERM;
	return otherwise;
}

int
main(int argc, char **argv)
{
	struct stat		 dst;
	char			 hex[DROP_NAME_HEX + 1], tmp[64], ready[64];
	char			 ebuf[128];
	const char		*err = "?";
	enum drop_copy_result	 r;
	int			 dfd, fd, saved, code;

	pd_std_fds();
	(void)clearenv();
	(void)umask(077);
	/* A file size limit is a write error to clean up, not a kill. */
	(void)signal(SIGXFSZ, SIG_IGN);
	(void)argv;
	if (argc > 1)
		pd_die(EX_USAGE, "takes no arguments; the submission comes "
		    "on standard input (run virtmail-sendmail instead)");
	/* setgid: only root may be root here, and the group is not 0. */
	if ((geteuid() == 0 && getuid() != 0) ||
	    (getegid() == 0 && getgid() != 0))
		pd_die(EX_NOPERM, "installed setuid or setgid root; it "
		    "must be setgid %s only", DROP_GROUP);
	if (drop_on_host())
		pd_die(EX_USAGE, "not inside a domain's root");

	/* O_PATH: the directory is not readable (mode 1730), only
	 * searchable and writable through the group. */
	if ((dfd = open(DROP_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		if (errno == EACCES)
			pd_die(EX_NOPERM, "%s: %s (is %s installed setgid "
			    "%s?)", DROP_DIR, strerror(errno), PD_NAME,
			    DROP_GROUP);
		pd_die(EX_UNAVAILABLE, "%s: %s (has the domain's queue "
		    "runner been started?)", DROP_DIR, strerror(errno));
	}
	if (fstat(dfd, &dst) == -1)
		pd_die(EX_OSERR, "fstat(%s): %s", DROP_DIR, strerror(errno));
	for (;;) {
		pd_name(hex);
		if (snprintf(tmp, sizeof(tmp), "%s%s", DROP_TMP_PREFIX,
		    hex) >= (int)sizeof(tmp) || snprintf(ready, sizeof(ready),
		    "%s%s", DROP_READY_PREFIX, hex) >= (int)sizeof(ready))
			pd_die(EX_SOFTWARE, "drop file name too long");
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0640);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		saved = errno;
		pd_die(pd_code(saved, EX_CANTCREAT), "%s/%s: %s%s", DROP_DIR,
		    tmp, strerror(saved), saved == EACCES || saved == EPERM ?
		    " (is " PD_NAME " installed setgid " DROP_GROUP "?)" : "");
	}
	/* Root's file (sendmail -d) must carry the group the runner
	 * reads by. */
	if (fchown(fd, (uid_t)-1, dst.st_gid) == -1 ||
	    fchmod(fd, 0640) == -1) {
		saved = errno;
		code = pd_code(saved, EX_IOERR);
		err = strerror(saved);
		goto fail;
	}
	r = drop_copy(STDIN_FILENO, fd, DROP_MESSAGE_MAX, &err);
	if (r != DROP_COPY_OK) {
		saved = errno;
		if (r == DROP_COPY_BAD) {
			code = EX_DATAERR;
			(void)snprintf(ebuf, sizeof(ebuf), "submission "
			    "refused: %s", err);
			err = ebuf;
		} else {
			code = r == DROP_COPY_EREAD ? EX_IOERR :
			    pd_code(saved, EX_IOERR);
			err = strerror(saved);
		}
		goto fail;
	}
	if (fsync(fd) == -1 || renameat(dfd, tmp, dfd, ready) == -1) {
		saved = errno;
		code = pd_code(saved, EX_IOERR);
		err = strerror(saved);
		goto fail;
	}
	/*
	 * The new name must be durable too.  We cannot open the
	 * directory to fsync it (no read permission, on purpose), so
	 * flush the file system it lives on.  XXX: heavier than an
	 * fsync of one directory; local submission is rare enough.
	 */
	if (syncfs(fd) == -1 || close(fd) == -1) {
		/* Renamed but maybe not durable: the runner may still
		 * take it, so it stays; the caller is told to retry. */
		pd_die(EX_TEMPFAIL, "%s/%s: %s", DROP_DIR, ready,
		    strerror(errno));
	}
	(void)close(dfd);
	return EX_OK;
 fail:
	(void)close(fd);
	(void)unlinkat(dfd, tmp, 0);
	(void)close(dfd);
	pd_die(code, "%s", err);
}
