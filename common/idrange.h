/*
 * idrange.h — the id policy: which uids and gids a process may become
 * for a domain.
 *
 * Built once, as root on the host, from the domain table and the host's
 * own passwd and group files; the forked children inherit it.  For a
 * domain D, an id (uid or gid alike) is allowed when:
 *	it is not 0 and not (uid_t)-1;
 *	no account or group of the host has it;
 *	D declares a range (virtual.conf uids=): it is inside the range;
 *	D is a legacy domain (no range): it is in no other domain's
 *	    range, and no other legacy domain's etc/passwd or etc/group
 *	    uses it.
 *
 * Legacy domains are checked against each other's files as they were
 * when the policy was built (the last load or reload): a line added to
 * one afterwards is not seen until then.  Declared ranges are the real
 * protection, and the one the kernel enforces (privbind.h).
 *
 * Configuration errors found while building (ranges that overlap, a
 * range that holds a host account's id) are reported through struct
 * diag; a caller that enforces ids treats any report as failure.
 */
#ifndef VIRTMAIL_IDRANGE_H
#define VIRTMAIL_IDRANGE_H

#include <sys/types.h>

#include <stddef.h>

#include "diag.h"
#include "domain.h"
#include "group.h"
#include "passwd.h"

#define IDPOLICY_HOST_PASSWD	"/etc/passwd"
#define IDPOLICY_HOST_GROUP	"/etc/group"
#define IDPOLICY_WHY_MAX	512	/* longest refusal text */

enum idpolicy_kind {
	IDPOLICY_UID,
	IDPOLICY_GID,
};

/* One domain as the policy knows it (copied: the table may go). */
struct idpolicy_dom {
	char	*dir;
	char	*name;
	uid_t	 first, last;		/* 0 0: legacy */
	int	 line;			/* of virtual.conf */
};

/* One id in use: by the host (dom SIZE_MAX) or by a legacy domain. */
struct idpolicy_use {
	unsigned long	 id;
	size_t		 dom;
	const char	*file;		/* owned by the policy */
	int		 line;
	char		*name;
};

struct idpolicy {
	char			*conf;		/* virtual.conf, for messages */
	char			*host_files[2];	/* passwd, group */
	struct idpolicy_dom	*doms;		/* sorted by dir */
	size_t			 ndoms;
	size_t			*byfirst;	/* ranged doms sorted by first */
	size_t			 nranged;
	char			**files;	/* legacy domains' file names */
	size_t			 nfiles;
	struct idpolicy_use	*uses[2];	/* uids, gids; sorted by id */
	size_t			 nuses[2];
};

/*
 * Build p from t and the host's files (IDPOLICY_HOST_PASSWD and
 * IDPOLICY_HOST_GROUP, or test files).  Legacy domains' etc/passwd and
 * etc/group are read inside their roots (symlinks resolve in the root).
 * Returns -1 with *error_r when a host file cannot be read or memory
 * runs out (p empty); otherwise 0, configuration errors reported
 * through d.
 */
int	idpolicy_build(struct idpolicy *p, const struct domain_table *t,
	    const char *host_passwd, const char *host_group, struct diag *d,
	    const char **error_r);
void	idpolicy_free(struct idpolicy *p);
/* The domain whose root is dir (as in virtual.conf), or NULL. */
const struct idpolicy_dom *idpolicy_domain(const struct idpolicy *p,
	    const char *dir);
/*
 * Whether dom may use id as a uid or gid: 1 yes; 0 no, with why the
 * end of a sentence that starts "uid N of NAME ", e.g. "is outside
 * alpha.test's range 2000-2999 (/etc/virtmail/virtual.conf:3)".
 */
int	idpolicy_allows(const struct idpolicy *p,
	    const struct idpolicy_dom *dom, enum idpolicy_kind kind,
	    unsigned long id, char *why, size_t size);
/*
 * Report every id of a domain's passwd and group files that dom may not
 * use, as "file:line: uid N of NAME why".  Root (0) is left out: every
 * root has it and no switch ever accepts it.  Returns the count.
 */
int	idpolicy_audit(const struct idpolicy *p,
	    const struct idpolicy_dom *dom, const struct passwd_file *pf,
	    const char *pw_path, const struct group_file *gf,
	    const char *gr_path, struct diag *d);

#endif
