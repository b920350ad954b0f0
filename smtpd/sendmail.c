/*
 * sendmail.c — virtmail-sendmail, the sendmail-compatible injector.
 *
 * DESCRIPTION
 *	Installed inside a domain's root as /usr/sbin/sendmail, so that
 *	scripts of the domain can send mail: options -t, -i/-oi, -f, -F,
 *	recipients as arguments, the message on stdin.  It completes the
 *	header (sendmail_msg.c), forms a drop submission (drop.h) and
 *	pipes it into DROP_POSTDROP_PATH, the small setgid program that
 *	writes it into the domain's QUEUE_DIR/drop (postdrop.c); the
 *	domain's queue runner picks it up (pickup.c).  It exits with
 *	postdrop's exit code, 0 only once the file is durable.  Exit
 *	codes per sysexits.h.
 *
 * SECURITY
 *	Not privileged: it runs with the invoking user's own uid and
 *	groups, so its option, configuration, header and address
 *	parsing gives nothing away.  It cannot write drop/ itself; what
 *	it hands postdrop is checked again there with the runner's own
 *	parser.  The environment is ignored and postdrop starts with an
 *	empty one; every option value is checked (addresses by
 *	addr_parse, the -F name stripped of controls), no option names a
 *	file to read or write.  Inside the domain's chroot the only queue
 *	it can reach is its own domain's.  Outside a chroot it refuses to
 *	run, unless root names a domain root with -d DIR; it then chroots
 *	there first and runs that root's postdrop, after checking that
 *	the program is root's and writable by root only.  See
 *	docs/SECURITY.md.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "buf.h"
#include "compat.h"
#include "config.h"
#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "passwd.h"
#include "privdrop.h"
#include "queue.h"
#include "smtpd.h"
#include "xmalloc.h"

#define SM_NAME		"virtmail-sendmail"
#define SM_ADDR_MAX	(ADDR_PATH_MAX + ADDR_DOMAIN_MAX + 2)

struct sm_opts {
	int		 extract;	/* -t */
	int		 ignore_dots;	/* -i, -oi */
	const char	*from;		/* -f, -r */
	const char	*fullname;	/* -F */
	const char	*dir;		/* -d (root only) */
	char		**rcpts;
	int		 nrcpts;
};

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds: LeakSanitizer needs /proc, which a domain root
 * lacks, and cannot read ASAN_OPTIONS there either. */
int	__lsan_is_turned_off(void);

int
__lsan_is_turned_off(void)
{
	return 1;
}
#endif

static void __attribute__((noreturn, format(printf, 2, 3)))
sm_die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "%s: ", SM_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
sm_diag(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", SM_NAME, msg);
}

static void __attribute__((noreturn))
sm_usage(const char *why)
{
	sm_die(EX_USAGE, "%s\nusage: sendmail [-t] [-i] [-f sender] "
	    "[-F name] [-d domain-dir] [--] [recipient ...]", why);
}

/* Options that change nothing here (delivery mode, error mode, ...). */
static const char *const sm_ignored[] = {
	"-bm", "-m", "-n", "-U", "-v", "-om", "-oo", "-odb", "-odi",
	"-odq", "-odd", "-oem", "-oee", "-oep", "-oeq", "-oew", "-ob",
	"-oS",
};
/* Ignored options that take an argument (attached or next). */
static const char *const sm_ignored_arg[] = {
	"-B", "-N", "-R", "-V", "-h", "-L",
};

/* The value of a one-letter option: attached ("-fbob") or next. */
static const char *
sm_optarg(int argc, char **argv, int *i, size_t skip)
{
	if (argv[*i][skip] != '\0')
		return argv[*i] + skip;
	if (*i + 1 >= argc)
		sm_usage("option needs an argument");
	return argv[++*i];
}

static void
sm_parse_opts(int argc, char **argv, struct sm_opts *o)
{
	const char	*a;
	size_t		 k, n;
	int		 i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "-t") == 0)
			o->extract = 1;
		else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
			o->ignore_dots = 1;
		else if (a[1] == 'f' || a[1] == 'r')
			o->from = sm_optarg(argc, argv, &i, 2);
		else if (a[1] == 'F')
			o->fullname = sm_optarg(argc, argv, &i, 2);
		else if (a[1] == 'd' && a[2] == '\0')
			o->dir = sm_optarg(argc, argv, &i, 2);
		else {
			for (k = 0; k < sizeof(sm_ignored) /
			    sizeof(sm_ignored[0]); k++)
				if (strcmp(a, sm_ignored[k]) == 0)
					break;
			if (k < sizeof(sm_ignored) / sizeof(sm_ignored[0]))
				continue;
			for (k = 0; k < sizeof(sm_ignored_arg) /
			    sizeof(sm_ignored_arg[0]); k++) {
				n = strlen(sm_ignored_arg[k]);
				if (strncmp(a, sm_ignored_arg[k], n) == 0)
					break;
			}
			if (k < sizeof(sm_ignored_arg) /
			    sizeof(sm_ignored_arg[0])) {
				(void)sm_optarg(argc, argv, &i, 2);
				continue;
			}
			sm_usage("unknown or unsupported option");
		}
	}
	o->rcpts = argv + i;
	o->nrcpts = argc - i;
}

/* Read the message; without -i a line "." ends it (sendmail(8)). */
static void
sm_read(struct buf *in, size_t max, int ignore_dots)
{
	char	 chunk[65536];
	size_t	 scan = 0, k;
	ssize_t	 n;

	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			sm_die(EX_IOERR, "reading the message: %s",
			    strerror(errno));
		if (n == 0)
			return;
		if (buf_append(in, chunk, (size_t)n) == -1)
			sm_die(EX_DATAERR, "message too large (limit %zu "
			    "bytes)", max);
		if (ignore_dots)
			continue;
		for (k = scan; k < in->len; k++) {
			if (in->data[k] != '\n')
				continue;
			if ((k - scan == 1 && in->data[scan] == '.') ||
			    (k - scan == 2 && in->data[scan] == '.' &&
			    in->data[scan + 1] == '\r')) {
				in->len = scan;
				return;
			}
			scan = k + 1;
		}
	}
}

static int
sm_add(char ***v, size_t *n, const char *addr)
{
	size_t	 i;

	for (i = 0; i < *n; i++)
		if (strcmp((*v)[i], addr) == 0)
			return 0;
	if (*n >= DROP_RCPT_MAX)
		return -1;
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = xstrdup(addr);
	return 0;
}

/*
 * The program that writes the drop file must be root's own, or a
 * root that runs us with -d would run someone else's program.
 */
static void
sm_postdrop_check(void)
{
	struct stat	 st;

	if (lstat(DROP_POSTDROP_PATH, &st) == -1)
		sm_die(errno == ENOENT ? EX_UNAVAILABLE : EX_OSERR,
		    "%s: %s (local submission is not installed in this "
		    "domain)", DROP_POSTDROP_PATH, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		sm_die(EX_UNAVAILABLE, "%s: not a regular file of root's "
		    "that only root may change", DROP_POSTDROP_PATH);
}

/*
 * Hand the submission to virtmail-postdrop on a pipe, with an empty
 * environment, and return its exit code (EX_TEMPFAIL when it dies:
 * the message may or may not be in drop/).
 */
static int
sm_postdrop(const struct buf *env, const struct buf *msg)
{
	static char *const	 envp[] = { NULL };
	char *const		 args[] = {
		(char *)(uintptr_t)DROP_POSTDROP_PATH, NULL
	};
	posix_spawn_file_actions_t fa;
	struct sigaction	 sa, osa;
	pid_t			 pid;
	int			 p[2], st, werr = 0, r;

	sm_postdrop_check();
	if (pipe2(p, O_CLOEXEC) == -1)
		sm_die(EX_OSERR, "pipe: %s", strerror(errno));
	if ((r = posix_spawn_file_actions_init(&fa)) != 0 ||
	    (r = posix_spawn_file_actions_adddup2(&fa, p[0],
	    STDIN_FILENO)) != 0)
		sm_die(EX_OSERR, "posix_spawn_file_actions: %s", strerror(r));
	r = posix_spawn(&pid, DROP_POSTDROP_PATH, &fa, NULL, args, envp);
	(void)posix_spawn_file_actions_destroy(&fa);
	(void)close(p[0]);
	if (r != 0)
		sm_die(r == ENOENT || r == EACCES ? EX_UNAVAILABLE : EX_OSERR,
		    "cannot run %s: %s", DROP_POSTDROP_PATH, strerror(r));

	/* It may refuse before reading everything: EPIPE, not a kill. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGPIPE, &sa, &osa);
	if (write_all(p[1], env->data, env->len) == -1 ||
	    write_all(p[1], msg->data, msg->len) == -1)
		werr = errno;
	if (close(p[1]) == -1 && werr == 0)
		werr = errno;
	(void)sigaction(SIGPIPE, &osa, NULL);

	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			sm_die(EX_OSERR, "waitpid: %s", strerror(errno));
	if (WIFSIGNALED(st))
		sm_die(EX_TEMPFAIL, "%s killed by signal %d; the message may "
		    "not have been queued", DROP_POSTDROP_PATH, WTERMSIG(st));
	if (!WIFEXITED(st))
		sm_die(EX_TEMPFAIL, "%s ended abnormally", DROP_POSTDROP_PATH);
	/* postdrop has said why on our stderr. */
	if (WEXITSTATUS(st) != EX_OK)
		return WEXITSTATUS(st);
	if (werr != 0)
		sm_die(EX_IOERR, "writing to %s: %s", DROP_POSTDROP_PATH,
		    strerror(werr));
	return EX_OK;
}

int
main(int argc, char **argv)
{
	struct sm_opts			 o;
	struct smtpd_conf		 c;
	struct smtpd_domain		 sd;
	struct domain			 vd;
	struct passwd_file		 pf;
	const struct passwd_entry	*pw;
	struct sendmail_msg		 m;
	struct drop_env			 de;
	struct diag			 d;
	struct buf			 in, env;
	const char			*err, *domain, *user;
	char				 sender[SM_ADDR_MAX], addr[SM_ADDR_MAX];
	char				 gecos[SENDMAIL_NAME_MAX + 1], uname[32];
	char				**rcpts = NULL;
	size_t				 nrcpts = 0, max, i;
	int				 k, r;

	(void)umask(077);
	sm_parse_opts(argc, argv, &o);

	/* Where we are decides which queue we may reach. */
	if (o.dir != NULL) {
		if (getuid() != 0)
			sm_die(EX_NOPERM, "-d is for root only");
		if (priv_enter_root(o.dir, NULL, &err) == -1)
			sm_die(EX_NOPERM, "%s: %s", o.dir, err);
	} else if (drop_on_host())
		sm_die(EX_USAGE, "not inside a domain's root; as root, name "
		    "one with -d DOMAIN-DIR");

	memset(&d, 0, sizeof(d));
	d.fn = sm_diag;
	if (smtpd_conf_load(&c, NULL, &d) == -1)
		sm_die(EX_CONFIG, "configuration errors");
	memset(&vd, 0, sizeof(vd));
	vd.dir = (char *)(uintptr_t)"/";
	vd.name = (char *)(uintptr_t)"localhost";
	if (smtpd_domain_load(&sd, &vd, &c, &d) == -1 || d.count > 0)
		sm_die(EX_CONFIG, "the domain's configuration has errors");
	domain = sd.nlocal_domains > 0 ? sd.local_domains[0] : sd.hostname;

	/* The invoking user, from the domain's own passwd. */
	memset(&pf, 0, sizeof(pf));
	d.fn = NULL;
	pw = NULL;
	if (passwd_load(&pf, "/etc/passwd", &d, &err) == 0)
		pw = passwd_find_uid(&pf, getuid());
	if (pw != NULL)
		user = pw->name;
	else if (o.from != NULL) {
		(void)snprintf(uname, sizeof(uname), "uid%lu",
		    (unsigned long)getuid());
		user = uname;
	} else
		sm_die(EX_NOUSER, "uid %lu is not in the domain's /etc/passwd;"
		    " give a sender with -f", (unsigned long)getuid());
	if (o.fullname == NULL && pw != NULL && pw->gecos != NULL) {
		(void)strlcpy(gecos, pw->gecos, sizeof(gecos));
		gecos[strcspn(gecos, ",")] = '\0';
		o.fullname = gecos;
	}
	if (o.fullname != NULL && strlen(o.fullname) > SENDMAIL_NAME_MAX)
		sm_die(EX_USAGE, "-F: name too long");

	/* The envelope sender. */
	if (o.from != NULL && (strcmp(o.from, "") == 0 ||
	    strcmp(o.from, "<>") == 0))
		sender[0] = '\0';
	else if (o.from != NULL) {
		if (sendmail_addr_qualify(o.from, domain, sender,
		    sizeof(sender), &err) == -1)
			sm_die(EX_DATAERR, "-f: %s", err);
	} else if (snprintf(sender, sizeof(sender), "%s@%s", user, domain) >=
	    (int)sizeof(sender) || sendmail_addr_qualify(sender, domain,
	    sender, sizeof(sender), &err) == -1)
		sm_die(EX_DATAERR, "cannot make a sender address for %s",
		    user);

	for (k = 0; k < o.nrcpts; k++) {
		if (sendmail_addr_qualify(o.rcpts[k], domain, addr,
		    sizeof(addr), &err) == -1)
			sm_die(EX_DATAERR, "recipient: %s", err);
		if (sm_add(&rcpts, &nrcpts, addr) == -1)
			sm_die(EX_DATAERR, "too many recipients");
	}

	max = sd.limits.message_size_max > 0 ?
	    (size_t)sd.limits.message_size_max : (size_t)50 * 1024 * 1024;
	buf_init(&in, max);
	sm_read(&in, max, o.ignore_dots);

	memset(&m, 0, sizeof(m));
	m.user = user;
	m.fullname = o.fullname;
	m.sender = o.from != NULL ? sender : NULL;
	m.domain = domain;
	m.hostname = sd.hostname;
	m.extract = o.extract;
	m.now = time(NULL);
	if (sendmail_msg_prepare(&m, in.data != NULL ? in.data : "", in.len,
	    max, &err) == -1)
		sm_die(EX_DATAERR, "%s", err);
	buf_free(&in);
	for (i = 0; i < m.nrcpts; i++)
		if (sm_add(&rcpts, &nrcpts, m.rcpts[i]) == -1)
			sm_die(EX_DATAERR, "too many recipients");
	if (nrcpts == 0)
		sm_die(EX_USAGE, o.extract ? "no recipient addresses found "
		    "in the header" : "no recipients given");
	if (sd.limits.rcpt_max > 0 && nrcpts > sd.limits.rcpt_max)
		sm_die(EX_DATAERR, "too many recipients (limit %u)",
		    sd.limits.rcpt_max);

	de.sender = sender;
	de.rcpts = rcpts;
	de.nrcpts = nrcpts;
	buf_init(&env, DROP_ENV_MAX);
	if (drop_env_encode(&de, &env, &err) == -1)
		sm_die(EX_DATAERR, "%s", err);
	r = sm_postdrop(&env, &m.out);
	buf_free(&env);
	sendmail_msg_free(&m);
	for (i = 0; i < nrcpts; i++)
		free(rcpts[i]);
	free(rcpts);
	passwd_free(&pf);
	smtpd_domain_free(&sd);
	return r;
}
