/*
 * virtmail.c — the virtmail admin command: global options, the table
 * of subcommands, and what they share (loading the configuration,
 * finding a domain, running a function inside a domain's root).
 *
 * SECURITY
 *	Run by root on the host.  virtual.conf and virtmail.conf are
 *	root's and trusted.  A domain's tree is not: anything that reads
 *	its queue or talks to its runner does so in a child chrooted into
 *	the domain's root as the domain's run_as account (privdrop.h), so
 *	a link or socket planted there by a compromised runner reaches
 *	nothing outside.  Text from a domain (queue diagnostics, runner
 *	answers) is cleaned of control characters before it is printed.
 *
 * CHOICES
 *	The subcommand table below is the one place new commands go.
 *	Global options come before the subcommand, as with postfix(1).
 *	When invoked under another name (the classic virtmailq,
 *	virtpasswd, virtadduser, virtnewaliases, virtexec and virtfs
 *	symlinks), that name picks the subcommand, and -d DOMAIN (or a
 *	numbered menu on a terminal) the domain.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "idrange.h"
#include "log.h"
#include "pidfile.h"
#include "privdrop.h"
#include "smtpd.h"
#include "virtmail.h"

static const struct admin_cmd admin_cmds[] = {
	{ "alias", admin_alias,
	    "alias add DOMAIN NAME TARGET... | del DOMAIN NAME | list DOMAIN",
	    "a domain's aliases" },
	{ "check", admin_check, "check",
	    "validate virtual.conf, virtmail.conf and every domain" },
	{ "domain", admin_domain,
	    "domain add NAME IP... [--root DIR] [--hostname H] | list | "
	    "del NAME [--purge]", "domains and their roots" },
	{ "exec", admin_exec, "exec [-u USER] DOMAIN COMMAND [ARGS...]",
	    "run a command inside a domain's root" },
	{ "flush", admin_flush, "flush [DOMAIN]",
	    "retry deferred mail now" },
	{ "fs", admin_fs,
	    "fs build DIR NAME [IP...] | fs add-program DOMAIN PATH...",
	    "build a minimal root; copy a program and its libraries in" },
	{ "newaliases", admin_newaliases, "newaliases DOMAIN",
	    "check a domain's aliases" },
	{ "passwd", admin_passwd, "passwd DOMAIN USER [--password-stdin]",
	    "set a user's password (yescrypt)" },
	{ "queue", admin_queue,
	    "queue [DOMAIN] | queue delete|bounce DOMAIN ID",
	    "list queued mail, or delete or bounce one message" },
	{ "user", admin_user,
	    "user add DOMAIN USER [--password-stdin] | del DOMAIN USER "
	    "[--purge] | list DOMAIN", "a domain's users" },
};

/*
 * Classic names (symlinks to virtmail): the subcommand and words they
 * stand for.  Those that need a domain take it from -d DOMAIN, or from
 * a numbered menu on a terminal.
 */
static const struct {
	const char	*argv0;
	const char	*words[3];
	int		 domain;	/* 1: needs one; 2: optional */
} admin_aliases[] = {
	{ "virtadduser", { "user", "add", NULL }, 1 },
	{ "virtexec", { "exec", NULL, NULL }, 1 },
	{ "virtfs", { "fs", NULL, NULL }, 0 },
	{ "virtmailq", { "queue", NULL, NULL }, 2 },
	{ "virtnewaliases", { "newaliases", NULL, NULL }, 1 },
	{ "virtpasswd", { "passwd", NULL, NULL }, 1 },
};

#define NCMDS	(sizeof(admin_cmds) / sizeof(admin_cmds[0]))

void
admin_warnx(const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "%s: ", ADMIN_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
admin_diag(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

int
admin_ctx_load(struct admin_ctx *x, const struct admin_opts *o)
{
	struct diag	 d;
	const char	*err;

	memset(x, 0, sizeof(*x));
	memset(&d, 0, sizeof(d));
	d.fn = admin_diag;
	if (domain_table_load(&x->table, o->virtual_conf, &d, &err) == -1) {
		admin_warnx("%s: %s", o->virtual_conf, err);
		return EX_CONFIG;
	}
	if (smtpd_conf_load(&x->conf, o->global_conf, &d) == -1 ||
	    d.count > 0) {
		admin_warnx("configuration errors (see \"virtmail check\")");
		domain_table_free(&x->table);
		return EX_CONFIG;
	}
	return 0;
}

void
admin_ctx_free(struct admin_ctx *x)
{
	domain_table_free(&x->table);
}

int
admin_idpolicy_load(const struct admin_ctx *x, struct idpolicy *p)
{
	struct diag	 d;
	const char	*err;

	memset(&d, 0, sizeof(d));
	d.fn = admin_diag;
	if (idpolicy_build(p, &x->table, IDPOLICY_HOST_PASSWD,
	    IDPOLICY_HOST_GROUP, &d, &err) == -1) {
		admin_warnx("id policy: %s", err);
		return EX_OSERR;
	}
	if (d.count > 0) {
		admin_warnx("uid ranges in error (see \"virtmail check\")");
		idpolicy_free(p);
		return EX_CONFIG;
	}
	return 0;
}

const struct domain *
admin_domain_find(const struct admin_ctx *x, const char *key)
{
	const struct domain	*vd;
	struct smtpd_domain	 sd;
	struct diag		 d;
	size_t			 i, k;
	int			 hit;

	if ((vd = domain_lookup_name(&x->table, key)) != NULL)
		return vd;
	memset(&d, 0, sizeof(d));
	for (i = 0; i < x->table.ndomains; i++) {
		vd = &x->table.domains[i];
		if (smtpd_domain_load(&sd, vd, &x->conf, &d) == -1) {
			smtpd_domain_free(&sd);
			continue;
		}
		hit = sd.hostname != NULL && strcasecmp(sd.hostname, key) == 0;
		for (k = 0; !hit && k < sd.nlocal_domains; k++)
			hit = strcasecmp(sd.local_domains[k], key) == 0;
		smtpd_domain_free(&sd);
		if (hit)
			return vd;
	}
	return NULL;
}

int
admin_in_domain(const struct admin_ctx *x, const struct domain *vd,
    int (*fn)(const struct domain *, void *), void *arg)
{
	struct smtpd_domain	 sd;
	struct priv_user	 u;
	struct diag		 d;
	const char		*err;
	pid_t			 pid;
	int			 status;

	memset(&d, 0, sizeof(d));
	d.fn = admin_diag;
	if (smtpd_domain_load(&sd, vd, &x->conf, &d) == -1 ||
	    sd.run_as == NULL) {
		smtpd_domain_free(&sd);
		admin_warnx("%s: configuration errors", vd->name);
		return EX_CONFIG;
	}
	if (priv_lookup_user(vd->dir, sd.run_as, &u, &err) == -1) {
		admin_warnx("%s: run_as %s: %s", vd->name, sd.run_as, err);
		smtpd_domain_free(&sd);
		return EX_CONFIG;
	}
	smtpd_domain_free(&sd);
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		admin_warnx("fork: %s", strerror(errno));
		return EX_OSERR;
	}
	if (pid == 0) {
		if (priv_enter_root(vd->dir, &u, &err) == -1) {
			admin_warnx("%s: %s", vd->name, err);
			_exit(EX_NOPERM);
		}
		status = fn(vd, arg);
		fflush(stdout);
		fflush(stderr);
		_exit(status);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			admin_warnx("waitpid: %s", strerror(errno));
			return EX_OSERR;
		}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	admin_warnx("%s: child ended by signal %d", vd->name,
	    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return EX_SOFTWARE;
}

static void __attribute__((noreturn))
admin_usage(void)
{
	size_t	 i;

	fprintf(stderr, "usage: %s [-v] [-f virtual.conf] [-C virtmail.conf] "
	    "[-P piddir] command [args]\ncommands:\n", ADMIN_NAME);
	for (i = 0; i < NCMDS; i++)
		fprintf(stderr, "    %s\n\t%s\n", admin_cmds[i].usage,
		    admin_cmds[i].help);
	exit(EX_USAGE);
}

int
admin_cmd_usage(const char *name)
{
	size_t	 i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(admin_cmds[i].name, name) == 0)
			fprintf(stderr, "usage: %s %s\n", ADMIN_NAME,
			    admin_cmds[i].usage);
	return EX_USAGE;
}

/* A numbered menu of the domains on the terminal; the name chosen. */
static char *
admin_menu(const struct admin_opts *o)
{
	struct admin_ctx	 x;
	const char		*err;
	char			 line[64], *name = NULL;
	long long		 n;
	size_t			 i;

	if (admin_ctx_load(&x, o) != 0)
		return NULL;
	for (i = 0; i < x.table.ndomains; i++)
		fprintf(stderr, "%3zu) %-30s %s\n", i + 1,
		    x.table.domains[i].name, x.table.domains[i].dir);
	fprintf(stderr, "domain number: ");
	if (x.table.ndomains > 0 && fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		n = strtonum(line, 1, (long long)x.table.ndomains, &err);
		if (err == NULL)
			name = strdup(x.table.domains[n - 1].name);
		else
			admin_warnx("\"%s\": %s", line, err);
	}
	admin_ctx_free(&x);
	return name;
}

/*
 * The symlink form: "virtpasswd [-d DOMAIN] USER" becomes "passwd
 * DOMAIN USER", and so on.  Returns the new argv (argc in *argc_r).
 */
static char **
admin_alias_argv(const struct admin_opts *o, size_t k, const char *domain,
    const char *user, int argc, char **argv, int *argc_r)
{
	char	**nv, *menu = NULL;
	int	 n = 0, i;

	if (admin_aliases[k].domain == 1 && domain == NULL) {
		if (!isatty(0)) {
			admin_warnx("%s: -d DOMAIN is needed",
			    admin_aliases[k].argv0);
			exit(EX_USAGE);
		}
		if ((menu = admin_menu(o)) == NULL)
			exit(EX_USAGE);
		domain = menu;
	}
	if ((nv = calloc((size_t)argc + 8, sizeof(*nv))) == NULL) {
		admin_warnx("out of memory");
		exit(EX_OSERR);
	}
	for (i = 0; i < 3 && admin_aliases[k].words[i] != NULL; i++)
		nv[n++] = (char *)(uintptr_t)admin_aliases[k].words[i];
	/* virtfs -d DOMAIN --add-program PATH... */
	if (strcmp(admin_aliases[k].argv0, "virtfs") == 0 && argc > 0 &&
	    strcmp(argv[0], "--add-program") == 0) {
		nv[n++] = (char *)(uintptr_t)"add-program";
		argc--;
		argv++;
	} else if (strcmp(admin_aliases[k].argv0, "virtfs") == 0)
		nv[n++] = (char *)(uintptr_t)"build";
	if (user != NULL) {
		nv[n++] = (char *)(uintptr_t)"-u";
		nv[n++] = (char *)(uintptr_t)user;
	}
	if (domain != NULL)
		nv[n++] = (char *)(uintptr_t)domain;
	for (i = 0; i < argc; i++)
		nv[n++] = argv[i];
	nv[n] = NULL;
	*argc_r = n;
	return nv;
}

int
main(int argc, char **argv)
{
	struct admin_opts	 o;
	const char		*base, *domain = NULL, *user = NULL;
	char			**nv = NULL;
	size_t			 i, alias = (size_t)-1;
	int			 ch, rc;

	memset(&o, 0, sizeof(o));
	o.virtual_conf = DAEMON_VIRTUAL_CONF;
	o.global_conf = DAEMON_GLOBAL_CONF;
	o.run_dir = PIDFILE_DIR;
	(void)signal(SIGPIPE, SIG_IGN);

	base = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	for (i = 0; i < sizeof(admin_aliases) / sizeof(admin_aliases[0]); i++)
		if (strcmp(base, admin_aliases[i].argv0) == 0)
			alias = i;

	/* "virtfs -d DOMAIN --add-program PATH": the long word ends the
	 * options. */
	while ((optind >= argc ||
	    strcmp(argv[optind], "--add-program") != 0) &&
	    (ch = getopt(argc, argv, alias != (size_t)-1 ?
	    "+C:d:f:hP:u:v" : "+C:f:hP:v")) != -1) {
		switch (ch) {
		case 'C':
			o.global_conf = optarg;
			break;
		case 'd':
			domain = optarg;
			break;
		case 'f':
			o.virtual_conf = optarg;
			break;
		case 'P':
			o.run_dir = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'v':
			o.verbose++;
			break;
		default:
			admin_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (alias != (size_t)-1)
		argv = nv = admin_alias_argv(&o, alias, domain, user, argc,
		    argv, &argc);
	if (argc < 1)
		admin_usage();
	for (i = 0; i < NCMDS; i++)
		if (strcmp(argv[0], admin_cmds[i].name) == 0) {
			rc = admin_cmds[i].fn(&o, argc, argv);
			free(nv);
			return rc;
		}
	admin_warnx("unknown command \"%s\"", argv[0]);
	admin_usage();
}
