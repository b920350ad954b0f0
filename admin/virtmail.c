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
 *	The subcommand table below is the one place new commands go
 *	(issue 8: domain, user, passwd, alias, exec).  Global options come
 *	before the subcommand, as with postfix(1).  When invoked under
 *	another name (the classic "virtmailq" symlink), that name picks
 *	the subcommand.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "diag.h"
#include "domain.h"
#include "log.h"
#include "privdrop.h"
#include "smtpd.h"
#include "virtmail.h"

static const struct admin_cmd admin_cmds[] = {
	{ "check", admin_check, "check",
	    "validate virtual.conf, virtmail.conf and every domain" },
	{ "flush", admin_flush, "flush [DOMAIN]",
	    "retry deferred mail now" },
	{ "queue", admin_queue,
	    "queue [DOMAIN] | queue delete|bounce DOMAIN ID",
	    "list queued mail, or delete or bounce one message" },
	/* Issue 8, later: domain, user, passwd, alias, exec. */
};

/* Classic names (symlinks to virtmail) and the subcommand they mean. */
static const struct {
	const char	*argv0;
	const char	*cmd;
} admin_aliases[] = {
	{ "virtmailq", "queue" },
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
	    "command [args]\ncommands:\n", ADMIN_NAME);
	for (i = 0; i < NCMDS; i++)
		fprintf(stderr, "    %-46s %s\n", admin_cmds[i].usage,
		    admin_cmds[i].help);
	exit(EX_USAGE);
}

int
main(int argc, char **argv)
{
	struct admin_opts	 o;
	const char		*base, *cmd = NULL;
	size_t			 i;
	int			 ch;

	memset(&o, 0, sizeof(o));
	o.virtual_conf = SMTPD_VIRTUAL_CONF;
	o.global_conf = SMTPD_GLOBAL_CONF;
	(void)signal(SIGPIPE, SIG_IGN);

	base = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	for (i = 0; i < sizeof(admin_aliases) / sizeof(admin_aliases[0]); i++)
		if (strcmp(base, admin_aliases[i].argv0) == 0)
			cmd = admin_aliases[i].cmd;

	while ((ch = getopt(argc, argv, "+C:f:hv")) != -1) {
		switch (ch) {
		case 'C':
			o.global_conf = optarg;
			break;
		case 'f':
			o.virtual_conf = optarg;
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
	if (cmd == NULL) {
		if (argc < 1)
			admin_usage();
		cmd = argv[0];
	} else {
		/* Symlink form: the arguments follow the name. */
		argc++;
		argv--;
	}
	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmd, admin_cmds[i].name) == 0)
			return admin_cmds[i].fn(&o, argc, argv);
	admin_warnx("unknown command \"%s\"", cmd);
	admin_usage();
}
