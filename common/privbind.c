/*
 * privbind.c — tie a process to the ids of one domain: the process's id
 * policy, its bound domain, and the seccomp filter on set*id.
 *
 * SECURITY
 *	Runs as root, outside or just inside a domain's root, before any
 *	switch to a user.  The policy and the bound domain are process
 *	state, set once by the process itself and inherited by fork; no
 *	input from a domain reaches them.  The filter is the kernel's
 *	copy of the rule, so that a process taken over after the bind
 *	still cannot become an id outside its domain's range, whatever
 *	its capabilities: seccomp filters can be added, never removed,
 *	and pass to every child and across execve.
 *
 *	Each id argument is compared on its low 32 bits, which is what
 *	the kernel reads of a uid_t or gid_t argument (the high half of
 *	the register is ignored by the system call), so a value with
 *	junk in the high half is judged as the kernel will use it.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "domain.h"
#include "idrange.h"
#include "privbind.h"
#include "privdrop.h"

#if defined(__x86_64__)
#define PRIV_AUDIT_ARCH		AUDIT_ARCH_X86_64
#define PRIV_X32_BIT		0x40000000U	/* __X32_SYSCALL_BIT */
#elif defined(__aarch64__)
#define PRIV_AUDIT_ARCH		AUDIT_ARCH_AARCH64
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PRIV_ARG_LO(i)	(offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define PRIV_ARG_LO(i)	(offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

#define PRIV_FILTER_MAX		128	/* instructions */

static const struct idpolicy		*priv_policy;
static const struct idpolicy_dom	*priv_bound;
static char				 priv_bind_err[1024];

static const char *const priv_kind_name[] = { "uid", "gid" };

void
priv_policy_set(const struct idpolicy *p)
{
	priv_policy = p;
}

const struct idpolicy_dom *
priv_bound_domain(void)
{
	return priv_bound;
}

#ifdef PRIV_AUDIT_ARCH
/* The set*id calls and how many id arguments each takes. */
static const struct {
	int	nr;
	int	nargs;
} priv_setid_calls[] = {
	{ SYS_setuid, 1 },
	{ SYS_setgid, 1 },
	{ SYS_setreuid, 2 },
	{ SYS_setregid, 2 },
	{ SYS_setresuid, 3 },
	{ SYS_setresgid, 3 },
	{ SYS_setfsuid, 1 },
	{ SYS_setfsgid, 1 },
};

static int
priv_filter_put(struct sock_filter *f, size_t *n, struct sock_filter ins)
{
	if (*n >= PRIV_FILTER_MAX)
		return -1;
	f[(*n)++] = ins;
	return 0;
}

#define PUT(ins)	do {						\
	if (priv_filter_put(f, &n, ins) == -1)				\
		return -1;						\
} while (0)

/*
 * The program: a foreign ABI gets EPERM for everything; each set*id call
 * jumps to its block, which checks its id arguments one by one (-1
 * passes, else first <= id <= last, else EPERM); all else is allowed.
 * Returns the length, or -1 if it would not fit.
 */
static int
priv_filter_build(struct sock_filter *f, uint32_t first, uint32_t last)
{
	const size_t	 ncalls = sizeof(priv_setid_calls) /
			    sizeof(priv_setid_calls[0]);
	size_t		 n = 0, i, block;
	int		 a;

	PUT(((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch))));
	PUT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    PRIV_AUDIT_ARCH, 1, 0)));
	PUT(((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))));
	PUT(((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr))));
#ifdef PRIV_X32_BIT
	PUT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
	    PRIV_X32_BIT, 0, 1)));
	PUT(((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))));
#endif
	/* Dispatch: call i's block starts after the table and ALLOW. */
	block = n + ncalls + 1;
	for (i = 0; i < ncalls; i++) {
		size_t	 jt = block - (n + 1);

		if (jt > 255)
			return -1;
		PUT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    (uint32_t)priv_setid_calls[i].nr, (uint8_t)jt, 0)));
		block += (size_t)priv_setid_calls[i].nargs * 5 + 1;
	}
	PUT(((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ALLOW)));
	for (i = 0; i < ncalls; i++) {
		for (a = 0; a < priv_setid_calls[i].nargs; a++) {
			PUT(((struct sock_filter)BPF_STMT(BPF_LD | BPF_W |
			    BPF_ABS, (uint32_t)PRIV_ARG_LO(a))));
			/* -1: this id unchanged; on to the next argument. */
			PUT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
			    BPF_K, 0xffffffffU, 3, 0)));
			PUT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE |
			    BPF_K, first, 0, 1)));
			PUT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT |
			    BPF_K, last, 0, 1)));
			PUT(((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
			    SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))));
		}
		PUT(((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		    SECCOMP_RET_ALLOW)));
	}
	return (int)n;
}
#undef PUT

static int
priv_filter_install(uid_t first, uid_t last, int flags,
    const char **error_r)
{
	struct sock_filter	 f[PRIV_FILTER_MAX];
	struct sock_fprog	 prog;
	int			 n;

	if ((n = priv_filter_build(f, (uint32_t)first, (uint32_t)last)) ==
	    -1) {
		*error_r = "seccomp filter too long";
		return -1;
	}
	if ((flags & PRIV_BIND_SETID_EXEC) == 0 &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		(void)snprintf(priv_bind_err, sizeof(priv_bind_err),
		    "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		*error_r = priv_bind_err;
		return -1;
	}
	memset(&prog, 0, sizeof(prog));
	prog.len = (unsigned short)n;
	prog.filter = f;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == -1) {
		(void)snprintf(priv_bind_err, sizeof(priv_bind_err),
		    "seccomp(SECCOMP_SET_MODE_FILTER) for uids %lu-%lu: %s",
		    (unsigned long)first, (unsigned long)last,
		    strerror(errno));
		*error_r = priv_bind_err;
		return -1;
	}
	return 0;
}
#else
static int
priv_filter_install(uid_t first, uid_t last, int flags,
    const char **error_r)
{
	(void)first;
	(void)last;
	(void)flags;
	*error_r = "no seccomp id filter for this architecture (x86_64 and "
	    "aarch64 only): refusing to serve a domain with a uids= range "
	    "without it";
	return -1;
}
#endif

int
priv_domain_bind(const struct idpolicy *p, const struct domain *vd,
    int flags, const char **error_r)
{
	const struct idpolicy_dom	*dom;

	if (priv_bound != NULL) {
		*error_r = "process already bound to a domain";
		return -1;
	}
	if ((dom = idpolicy_domain(p, vd->dir)) == NULL) {
		(void)snprintf(priv_bind_err, sizeof(priv_bind_err),
		    "%s: not a domain of the id policy", vd->dir);
		*error_r = priv_bind_err;
		return -1;
	}
	if (dom->first != 0 && priv_filter_install(dom->first, dom->last,
	    flags, error_r) == -1)
		return -1;
	priv_policy = p;
	priv_bound = dom;
	return 0;
}

/* "uid N of NAME why" for dom, into priv_bind_err; 1 allowed, 0 not. */
static int
priv_id_judge(const struct idpolicy *p, const struct idpolicy_dom *dom,
    enum idpolicy_kind kind, unsigned long id, const char *name,
    const char *file, int line)
{
	char	 why[IDPOLICY_WHY_MAX];

	if (idpolicy_allows(p, dom, kind, id, why, sizeof(why)))
		return 1;
	if (file != NULL)
		(void)snprintf(priv_bind_err, sizeof(priv_bind_err),
		    "%s:%d: %s %lu of %s %s", file, line,
		    priv_kind_name[kind], id, name, why);
	else
		(void)snprintf(priv_bind_err, sizeof(priv_bind_err),
		    "%s %lu of %s %s", priv_kind_name[kind], id, name, why);
	return 0;
}

int
priv_id_check(const char *dir, enum idpolicy_kind kind, unsigned long id,
    const char *name, const char *file, int line, const char **error_r)
{
	const struct idpolicy_dom	*dom;

	if (priv_policy == NULL)
		return 0;
	dom = priv_bound != NULL ? priv_bound :
	    idpolicy_domain(priv_policy, dir);
	if (dom == NULL)
		return 0;
	if (priv_id_judge(priv_policy, dom, kind, id, name, file, line))
		return 0;
	*error_r = priv_bind_err;
	return -1;
}

/* u's uid, gid and groups against dom. */
static int
priv_user_judge(const struct idpolicy *p, const struct idpolicy_dom *dom,
    const struct priv_user *u, const char **error_r)
{
	size_t	 i;

	if (!priv_id_judge(p, dom, IDPOLICY_UID, (unsigned long)u->uid,
	    u->name, NULL, 0) || !priv_id_judge(p, dom, IDPOLICY_GID,
	    (unsigned long)u->gid, u->name, NULL, 0)) {
		*error_r = priv_bind_err;
		return -1;
	}
	for (i = 0; i < u->ngroups && i < PRIV_GROUPS_MAX; i++)
		if (!priv_id_judge(p, dom, IDPOLICY_GID,
		    (unsigned long)u->groups[i], u->name, NULL, 0)) {
			*error_r = priv_bind_err;
			return -1;
		}
	return 0;
}

int
priv_user_allowed(const struct idpolicy *p, const struct domain *vd,
    const struct priv_user *u, const char **error_r)
{
	const struct idpolicy_dom	*dom;

	if ((dom = idpolicy_domain(p, vd->dir)) == NULL) {
		(void)snprintf(priv_bind_err, sizeof(priv_bind_err),
		    "%s: not a domain of the id policy", vd->dir);
		*error_r = priv_bind_err;
		return -1;
	}
	return priv_user_judge(p, dom, u, error_r);
}

int
priv_bound_user_check(const struct priv_user *u, const char **error_r)
{
	if (priv_bound == NULL)
		return 0;
	return priv_user_judge(priv_policy, priv_bound, u, error_r);
}
