/*
 * test_idrange.c — the id policy (idrange.c) and its enforcement
 * (privbind.c, the checks in privdrop.c): ranges, host accounts,
 * other domains' ranges, legacy domains' files, and the seccomp filter
 * in a forked child.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "idrange.h"
#include "privbind.h"
#include "privdrop.h"
#include "test.h"

#define MSGS_MAX	16

struct msgs {
	char	msg[MSGS_MAX][512];
	int	n;
};

static char	tmp[128];

static void
collect(void *ctx, const char *msg)
{
	struct msgs	*m = ctx;

	if (m->n < MSGS_MAX)
		snprintf(m->msg[m->n], sizeof(m->msg[0]), "%s", msg);
	m->n++;
}

static void
put(const char *rel, const char *text)
{
	char	 path[256];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static void
mkroot(const char *name, const char *passwd, const char *group)
{
	char	 path[256];

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	(void)mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/etc", tmp, name);
	(void)mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/etc/passwd", name);
	put(path, passwd);
	snprintf(path, sizeof(path), "%s/etc/group", name);
	put(path, group);
}

/* Load a table of a b l1 l2 (text with '@' for tmp) and its policy. */
static int
build(struct domain_table *t, struct idpolicy *p, const char *conf,
    struct msgs *m)
{
	struct diag	 d = { collect, m, 0 };
	char		 text[2048], hp[256], hg[256];
	const char	*c, *err;
	size_t		 n = 0;

	memset(m, 0, sizeof(*m));
	for (c = conf; *c != '\0' && n + sizeof(tmp) < sizeof(text); c++) {
		if (*c == '@')
			n += (size_t)snprintf(text + n, sizeof(text) - n,
			    "%s", tmp);
		else
			text[n++] = *c;
	}
	text[n] = '\0';
	if (domain_table_parse(t, "v.conf", text, n, &d) == -1 || d.count)
		return -1;
	snprintf(hp, sizeof(hp), "%s/host.passwd", tmp);
	snprintf(hg, sizeof(hg), "%s/host.group", tmp);
	return idpolicy_build(p, t, hp, hg, &d, &err);
}

static const char *CONF =
    "192.0.2.1 @/a uids=2000-2999\n"
    "192.0.2.2 @/b uids=3000-3999\n"
    "192.0.2.3 @/l1\n"
    "192.0.2.4 @/l2\n";

static const struct idpolicy_dom *
dom(const struct idpolicy *p, const char *name)
{
	char	 dir[256];

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	return idpolicy_domain(p, dir);
}

static void
test_policy(void)
{
	struct domain_table	 t;
	struct idpolicy		 p;
	struct msgs		 m;
	const struct idpolicy_dom *a, *l1, *l2;
	char			 why[IDPOLICY_WHY_MAX], exp[512];

	CHECK(build(&t, &p, CONF, &m) == 0 && m.n == 0, "policy builds");
	a = dom(&p, "a");
	l1 = dom(&p, "l1");
	l2 = dom(&p, "l2");
	CHECK(a != NULL && l1 != NULL && l2 != NULL, "domains by dir");
	if (a == NULL || l1 == NULL || l2 == NULL)
		return;
	CHECK(idpolicy_allows(&p, a, IDPOLICY_UID, 2000, why, sizeof(why)) &&
	    idpolicy_allows(&p, a, IDPOLICY_GID, 2999, why, sizeof(why)),
	    "in range: allowed");
	CHECK(!idpolicy_allows(&p, a, IDPOLICY_UID, 3001, why, sizeof(why)) &&
	    strcmp(why, "is outside a's range 2000-2999 (v.conf:1)") == 0,
	    "out of range: refused, naming range and line");
	CHECK(!idpolicy_allows(&p, a, IDPOLICY_UID, 0, why, sizeof(why)),
	    "0 refused");
	snprintf(exp, sizeof(exp), "is the host's uid nobody "
	    "(%s/host.passwd:3)", tmp);
	CHECK(!idpolicy_allows(&p, l1, IDPOLICY_UID, 65534, why,
	    sizeof(why)) && strcmp(why, exp) == 0,
	    "host account id refused");
	CHECK(!idpolicy_allows(&p, l1, IDPOLICY_GID, 999, why, sizeof(why)),
	    "host group id refused");
	CHECK(!idpolicy_allows(&p, l1, IDPOLICY_UID, 3500, why, sizeof(why)) &&
	    strcmp(why, "is in b's range 3000-3999 (v.conf:2)") == 0,
	    "legacy domain: another domain's range refused");
	snprintf(exp, sizeof(exp), "is also l2's eve (%s/l2/etc/passwd:2)",
	    tmp);
	CHECK(!idpolicy_allows(&p, l1, IDPOLICY_UID, 5001, why,
	    sizeof(why)) && strcmp(why, exp) == 0,
	    "legacy domains: an id of another's passwd refused");
	CHECK(idpolicy_allows(&p, l1, IDPOLICY_UID, 5002, why, sizeof(why)),
	    "legacy domain: its own id allowed");
	CHECK(!idpolicy_allows(&p, l1, IDPOLICY_GID, 5100, why, sizeof(why)),
	    "legacy domains: a gid of another's group refused");
	idpolicy_free(&p);
	domain_table_free(&t);

	/* A range holding a host account's id is a configuration error. */
	CHECK(build(&t, &p, "192.0.2.1 @/a uids=60000-65534\n", &m) == 0 &&
	    m.n == 3 && strstr(m.msg[0], "v.conf:1: uids=60000-65534 of a "
	    "holds uid 65534 of the host's nobody") != NULL,
	    "range holding a host id reported");
	idpolicy_free(&p);
	domain_table_free(&t);
}

/* privdrop's lookups under a bound domain: file:line in the refusal. */
static int
child_lookups(void)
{
	struct domain_table	 t;
	struct idpolicy		 p;
	struct msgs		 m;
	struct priv_user	 u;
	const struct domain	*vd;
	const char		*err;
	char			 dir[256], exp[512];
	gid_t			 gid;

	if (build(&t, &p, CONF, &m) == -1)
		return 1;
	snprintf(dir, sizeof(dir), "%s/a", tmp);
	vd = domain_lookup_name(&t, "a");
	/* Unbound, policy set: checked against the domain of dir. */
	priv_policy_set(&p);
	if (priv_lookup_user(dir, "bob", &u, &err) == -1)
		return 2;
	snprintf(exp, sizeof(exp), "%s/etc/passwd:3: uid 3001 of mallory "
	    "is outside a's range 2000-2999 (v.conf:1)", dir);
	if (priv_lookup_user(dir, "mallory", &u, &err) != -1 ||
	    strcmp(err, exp) != 0) {
		printf("# %s\n", err);
		return 3;
	}
	if (priv_lookup_group(dir, "evil", &gid, &err) != -1 ||
	    strstr(err, "/etc/group:3: gid 65534 of evil is the host's") ==
	    NULL) {
		printf("# %s\n", err);
		return 4;
	}
	if (priv_lookup_user(dir, "carol", &u, &err) != -1 ||
	    strstr(err, "/etc/group:4: gid 3100 of carol is outside") ==
	    NULL) {
		printf("# %s\n", err);
		return 5;
	}
	/* priv_drop checks again, whatever the lookup said. */
	if (priv_domain_bind(&p, vd, 0, &err) == -1)
		return 6;
	memset(&u, 0, sizeof(u));
	(void)strlcpy(u.name, "x", sizeof(u.name));
	u.uid = 3001;
	u.gid = 2001;
	if (priv_drop(&u, &err) != -1 || strcmp(err, "uid 3001 of x is "
	    "outside a's range 2000-2999 (v.conf:1)") != 0) {
		printf("# %s\n", err);
		return 7;
	}
	return 0;
}

/* Under the filter: out of range EPERM, in range (as root) allowed. */
static int
child_filter(void)
{
	struct domain_table	 t;
	struct idpolicy		 p;
	struct msgs		 m;
	const char		*err;

	if (build(&t, &p, CONF, &m) == -1)
		return 1;
	if (priv_domain_bind(&p, domain_lookup_name(&t, "a"), 0, &err) ==
	    -1) {
		printf("# %s\n", err);
		return 2;
	}
	if (setresuid(3001, 3001, 3001) != -1 || errno != EPERM)
		return 3;
	if (setresgid(-1, 0, -1) != -1 || errno != EPERM)
		return 4;
	if (setreuid(-1, 1) != -1 || errno != EPERM)
		return 5;
	if (geteuid() != 0)
		return 0;	/* the rest needs root */
	if (setresgid(2001, 2001, 2001) == -1)
		return 6;
	if (setresuid(2001, -1, 2001) == -1)
		return 7;
	if (setuid(0) != -1 || errno != EPERM)
		return 8;
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == -1 ? -1 : 0;
}

static int
in_child(int (*fn)(void))
{
	pid_t	 pid;
	int	 status;

	fflush(stdout);
	if ((pid = fork()) == 0)
		_exit(fn());
	if (pid == -1 || waitpid(pid, &status, 0) == -1 ||
	    !WIFEXITED(status))
		return -1;
	if (WEXITSTATUS(status) != 0)
		printf("# child exited %d\n", WEXITSTATUS(status));
	return WEXITSTATUS(status);
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_idrange.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	put("host.passwd", "root:x:0:0::/root:/bin/sh\n"
	    "daemon:x:1:1::/:/bin/false\n"
	    "nobody:x:65534:65534::/:/bin/false\n");
	put("host.group", "root:x:0:\nsystemd:x:999:\nnogroup:x:65534:\n");
	mkroot("a", "root:x:0:0::/root:/bin/sh\n"
	    "bob:x:2001:2001::/home/bob:/bin/sh\n"
	    "mallory:x:3001:2001::/home/m:/bin/sh\n"
	    "carol:x:2002:2002::/home/c:/bin/sh\n",
	    "root:x:0:\nbob:x:2001:\nevil:x:65534:\nother:x:3100:carol\n");
	mkroot("b", "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n");
	mkroot("l1", "root:x:0:0::/root:/bin/sh\n"
	    "bob:x:5001:5001::/:/bin/sh\nann:x:5002:5002::/:/bin/sh\n",
	    "root:x:0:\n");
	mkroot("l2", "root:x:0:0::/root:/bin/sh\n"
	    "eve:x:5001:5001::/:/bin/sh\n", "root:x:0:\nstaff:x:5100:\n");

	test_policy();
	CHECK(in_child(child_lookups) == 0,
	    "lookups refuse out-of-range, host and group ids with file:line; "
	    "priv_drop re-checks");
	CHECK(in_child(child_filter) == 0,
	    "seccomp: set*id out of range EPERM in a forked child, in range "
	    "allowed");
	(void)nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return test_done();
}
