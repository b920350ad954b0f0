/*
 * admin_exec.c — "virtmail exec [-u USER] DOMAIN COMMAND [ARGS...]":
 * run a command inside a domain's root (the successor of virtexec).
 *
 * SECURITY
 *	Runs as root on the host; the command runs chrooted into the
 *	domain's root, as root of that root or, with -u, as a user of the
 *	domain's own etc/passwd (never uid 0: priv_lookup_user refuses
 *	it), through the one chroot-and-drop sequence of privdrop.c.  The
 *	environment is rebuilt from nothing but TERM, so no variable of
 *	the administrator's session (LD_PRELOAD, PATH with host-only
 *	directories, credentials) follows into the domain.  The command
 *	is looked up in the domain's PATH, not the host's.
 *
 * CHOICES
 *	Root of a domain is still host root (it can mknod, mount, ptrace
 *	outside); docs/ADMIN.md says so.  Use -u for anything that need
 *	not be root.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "privdrop.h"
#include "virtmail.h"

#define EXEC_PATH	"/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:" \
			"/usr/sbin:/sbin"

int
admin_exec(const struct admin_opts *o, int argc, char **argv)
{
	struct admin_ctx	 x;
	struct priv_user	 u;
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
	if (user != NULL && priv_lookup_user(vd->dir, user, &u, &err) == -1) {
		admin_warnx("%s: %s: %s", vd->name, user, err);
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
	fflush(stdout);
	if (priv_enter_root(vd->dir, user != NULL ? &u : NULL, &err) == -1) {
		admin_warnx("%s: %s", vd->dir, err);
		admin_ctx_free(&x);
		return EX_NOPERM;
	}
	/* The user's home when it has one; priv_enter_root left us in /. */
	if (user != NULL && chdir(u.home) == -1 && errno != ENOENT)
		admin_warnx("%s: %s", u.home, strerror(errno));
	environ = envp;
	execvp(argv[a], argv + a);
	rc = errno == ENOENT ? 127 : 126;
	admin_warnx("%s: %s (inside %s)", argv[a], strerror(errno), vd->dir);
	/* Inside the root: no exit handlers (a sanitizer's leak check
	 * would look for /proc, which the root lacks). */
	_exit(rc);
}
