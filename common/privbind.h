/*
 * privbind.h — tie a process to the ids of one domain.
 *
 * A root process that serves one domain calls priv_domain_bind() once,
 * before it looks up or becomes any user.  From then on, for the rest
 * of its life and in every child:
 *	the lookups of privdrop.h (priv_lookup_user, priv_userdb_lookup,
 *	    priv_lookup_group) refuse an account whose uid, gid or
 *	    supplementary gid the id policy (idrange.h) does not allow the
 *	    domain, with "file:line: uid N of NAME why";
 *	priv_drop() checks the ids again before it switches;
 *	when the domain declares a range, the kernel enforces it (a legacy
 *	    domain, without one, gets the checks above only): a
 *	    seccomp filter makes setuid, setgid, setreuid, setregid,
 *	    setresuid, setresgid, setfsuid and setfsgid fail with EPERM
 *	    unless every id argument is in the range or -1 ("unchanged").
 *
 * setgroups cannot be filtered (its ids are behind a pointer, which
 * seccomp cannot read): the groups are checked in priv_drop, and once
 * the process has dropped root it lacks CAP_SETGID to change them.
 *
 * The filter is built for x86_64 and aarch64; elsewhere binding a
 * domain that declares a range fails (the process refuses to serve
 * rather than run without the kernel's check).  A process of another
 * ABI on the same kernel (i386 or x32 on x86_64, arm32 on aarch64) gets
 * EPERM from every system call under the filter: programs of a bound
 * domain must be native.
 *
 * A process serving many domains (the master, the admin command) does
 * not bind; it may set the policy with priv_policy_set(), after which
 * the lookups check the account against the domain whose root is the
 * directory they are given, and it checks explicitly with
 * priv_user_allowed().
 */
#ifndef VIRTMAIL_PRIVBIND_H
#define VIRTMAIL_PRIVBIND_H

#include <sys/types.h>

#include "domain.h"
#include "idrange.h"
#include "privdrop.h"

/*
 * Do not set no_new_privs: setuid and setgid programs inside the root
 * (the setgid virtmail-sendmail) keep working.  Installing the filter
 * then needs CAP_SYS_ADMIN, so bind before giving up root.
 */
#define PRIV_BIND_SETID_EXEC	0x01

/*
 * The policy the lookups of this process check against, or NULL (the
 * default: only ids 0 are refused).  p must live as long as it is set.
 */
void	priv_policy_set(const struct idpolicy *p);
/*
 * Bind this process to vd under p (which must outlive the process's
 * use of it) for good: sets the policy, records the domain, and when vd
 * declares a range sets no_new_privs (unless PRIV_BIND_SETID_EXEC) and
 * installs the seccomp filter.  Once only.  0, or -1 with *error_r.
 */
int	priv_domain_bind(const struct idpolicy *p, const struct domain *vd,
	    int flags, const char **error_r);
/* The domain this process is bound to, or NULL. */
const struct idpolicy_dom *priv_bound_domain(void);
/*
 * Whether p lets vd's account u become u's uid, gid and groups.  0, or
 * -1 with *error_r "uid N of NAME why".
 */
int	priv_user_allowed(const struct idpolicy *p, const struct domain *vd,
	    const struct priv_user *u, const char **error_r);
/*
 * For privdrop.c: whether the process's policy lets the account name of
 * the domain at dir (or of the bound domain, whatever dir) use id.  No
 * policy, or dir no domain of it: yes.  0, or -1 with *error_r
 * "file:line: uid N of NAME why".
 */
int	priv_id_check(const char *dir, enum idpolicy_kind kind,
	    unsigned long id, const char *name, const char *file, int line,
	    const char **error_r);
/* For priv_drop: u against the bound domain, if any; 0 or -1. */
int	priv_bound_user_check(const struct priv_user *u, const char **error_r);

#endif
