/*
 * admin_exec.c — "virtmail exec [-u USER] DOMAIN COMMAND [ARGS...]":
 * run a command inside a domain's root (the successor of virtexec).
 *
 * SECURITY
 *	Runs as root on the host; the command runs chrooted into the
 *	domain's root, as root of that root or, with -u, as a user of the
 *	domain's own etc/passwd (never uid 0: priv_lookup_user refuses
 *	it, nor an id the id policy of idrange.h refuses the domain),
 *	through the one chroot-and-drop sequence of privdrop.c.  The
 *	environment is rebuilt from nothing but TERM, so no variable of
 *	the administrator's session (LD_PRELOAD, PATH with host-only
 *	directories, credentials) follows into the domain.  The command
 *	is looked up in the domain's PATH, not the host's.
 *
 *	The command runs in a new session, on a pty of its own when the
 *	administrator's fds 0-2 include a terminal, never on that
 *	terminal (admin_pty.c): it cannot type into the shell that
 *	started it (TIOCSTI).  It gets no descriptor above 2.
 *
 *	Without -u, "root of the domain" keeps only EXEC_ROOT_CAPS, in
 *	every set including the bounding set, so neither it nor what it
 *	runs can chroot again, mount, ptrace, mknod, load modules, open
 *	by handle or reach raw I/O: the ways out of a chroot.
 *
 * CHOICES
 *	Root of a domain still has uid 0: it can signal the host's root
 *	processes and, with CAP_SETUID, become any uid.  docs/SECURITY.md
 *	and virtmail(8) say so.  Use -u for anything that need not be
 *	root.
 */
#include <sys/types.h>

#include <linux/capability.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "privbind.h"
#include "privdrop.h"
#include "virtmail.h"

#define EXEC_PATH	"/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:" \
			"/usr/sbin:/sbin"

/* What root of a domain keeps: files, users and signals of the
 * domain, as a container's root; nothing that leaves a chroot. */
#define EXEC_ROOT_CAPS	{ CAP_AUDIT_WRITE, CAP_CHOWN, CAP_DAC_OVERRIDE, \
			  CAP_FOWNER, CAP_FSETID, CAP_KILL, \
			  CAP_NET_BIND_SERVICE, CAP_SETGID, CAP_SETUID }

/* What the child needs to become the command. */
struct exec_job {
	const char		*dir;
	const struct priv_user	*user;		/* NULL: root of the root */
	const struct idpolicy	*pol;		/* with user */
	const struct domain	*vd;
	char			**argv;
	char			**envp;
};

/* In the new session: enter the root, become the user, run. */
static int
exec_child(void *arg)
{
	static const int	 keep[] = EXEC_ROOT_CAPS;
	const struct exec_job	*j = arg;
	const char		*err;
	int			 rc;

	/*
	 * The user's domain's ids only, kernel-enforced for a domain with
	 * a range; setuid and setgid programs still work (postdrop).
	 */
	if (j->user != NULL && priv_domain_bind(j->pol, j->vd,
	    PRIV_BIND_SETID_EXEC, &err) == -1) {
		admin_warnx("%s: %s", j->dir, err);
		return EX_NOPERM;
	}
	if (priv_enter_root(j->dir, j->user, &err) == -1) {
		admin_warnx("%s: %s", j->dir, err);
		return EX_NOPERM;
	}
	if (j->user == NULL && priv_limit_caps(keep, sizeof(keep) /
	    sizeof(keep[0]), &err) == -1) {
		admin_warnx("%s: %s", j->dir, err);
		return EX_OSERR;
	}
	/* The user's home when it has one; priv_enter_root left us in /. */
	if (j->user != NULL && chdir(j->user->home) == -1 && errno != ENOENT)
		admin_warnx("%s: %s", j->user->home, strerror(errno));
	environ = j->envp;
	execvp(j->argv[0], j->argv);
	rc = errno == ENOENT ? 127 : 126;
	admin_warnx("%s: %s (inside %s)", j->argv[0], strerror(errno), j->dir);
	return rc;
}

int
admin_exec(const struct admin_opts *o, int argc, char **argv)
{
	struct admin_ctx	 x;
	struct priv_user	 u;
	struct exec_job		 j;
	struct idpolicy		 pol;
	const struct domain	*vd;
	const char		*user = NULL, *err, *term;
	char			 home[1100], uenv[100], lenv[100];
	char			 tenv[200];
	char			*envp[8];
	size_t			 ne = 0;
	int			 a = 1, rc;

	if (a + 1 < argc && strcmp(argv[a], "-u") == 0) {
		user = argv[a + 1];
		a += 2;
	}
	if (a >= argc)
		return admin_cmd_usage("exec");
	if ((rc = admin_ctx_load(&x, o)) != 0)
		return rc;
	if ((vd = admin_domain_find(&x, argv[a])) == NULL) {
		admin_warnx("%s: no such domain", argv[a]);
		admin_ctx_free(&x);
		return EX_NOHOST;
	}
	a++;
	/* Also "exec DOMAIN -u USER COMMAND", the virtexec order. */
	if (user == NULL && a + 1 < argc && strcmp(argv[a], "-u") == 0) {
		user = argv[a + 1];
		a += 2;
	}
	if (a >= argc) {
		admin_ctx_free(&x);
		return admin_cmd_usage("exec");
	}
	memset(&u, 0, sizeof(u));
	/* The user's ids pass the id policy (idrange.h) in the lookup. */
	if (user != NULL && (rc = admin_idpolicy_load(&x, &pol)) != 0) {
		admin_ctx_free(&x);
		return rc;
	}
	if (user != NULL)
		priv_policy_set(&pol);
	if (user != NULL && priv_lookup_user(vd->dir, user, &u, &err) == -1) {
		admin_warnx("%s: %s: %s", vd->name, user, err);
		priv_policy_set(NULL);
		idpolicy_free(&pol);
		admin_ctx_free(&x);
		return EX_NOUSER;
	}
	if (snprintf(home, sizeof(home), "HOME=%s", user != NULL ?
	    u.home : "/root") >= (int)sizeof(home) ||
	    snprintf(uenv, sizeof(uenv), "USER=%s", user != NULL ? u.name :
	    "root") >= (int)sizeof(uenv) ||
	    snprintf(lenv, sizeof(lenv), "LOGNAME=%s", user != NULL ?
	    u.name : "root") >= (int)sizeof(lenv)) {
		admin_ctx_free(&x);
		return EX_SOFTWARE;
	}
	envp[ne++] = "PATH=" EXEC_PATH;
	envp[ne++] = home;
	envp[ne++] = uenv;
	envp[ne++] = lenv;
	if ((term = getenv("TERM")) != NULL &&
	    snprintf(tenv, sizeof(tenv), "TERM=%s", term) < (int)sizeof(tenv))
		envp[ne++] = tenv;
	envp[ne] = NULL;
	j.dir = vd->dir;
	j.user = user != NULL ? &u : NULL;
	j.pol = &pol;
	j.vd = vd;
	j.argv = argv + a;
	j.envp = envp;
	rc = admin_pty_run(exec_child, &j);
	admin_ctx_free(&x);
	return rc;
}
