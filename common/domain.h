/*
 * domain.h — the domain table, virtual.conf.
 *
 * The classic format: one "IP DIR" line per address; '#' comments and
 * blank lines ignored; any amount of spaces or tabs; IPv4 and IPv6
 * literals; several IPs may name the same DIR, which is then one domain.
 * DIR must be absolute and exist as a directory.  Bad lines (malformed,
 * overlong, duplicate IP, relative or missing DIR, NUL bytes) are
 * reported through a struct diag and skipped; the other lines still
 * load.  A strict caller treats any report as failure.
 *
 * An optional third field "uids=FIRST-LAST" declares the domain's
 * uid and gid range, held here on the host side, out of the domain's
 * reach.  The range covers uids and gids alike; 0 is never in it.  When
 * several lines name one DIR, the ranges they give must agree (lines
 * without one take the domain's).  Two domains whose ranges overlap are
 * both reported.  A domain with no range (0-0) is a legacy domain; see
 * idrange.h for what protects it.
 *
 * The domain's name is the basename of DIR until the domain's own
 * configuration says otherwise.
 */
#ifndef VIRTMAIL_DOMAIN_H
#define VIRTMAIL_DOMAIN_H

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <stddef.h>

#include "diag.h"

#define DOMAIN_LINE_MAX		4096	/* longest line of virtual.conf */
#define DOMAIN_FILE_MAX		(16 * 1024 * 1024)
#define DOMAIN_MAX		100000	/* domains in one table */
#define DOMAIN_ID_MAX		4294967294UL	/* highest id in a range */

struct domain_addr {
	int			 family;	/* AF_INET or AF_INET6 */
	union {
		struct in_addr	 v4;
		struct in6_addr	 v6;
	} a;
	char			 text[64];	/* canonical, e.g. "2001:db8::10" */
	int			 lineno;
};

struct domain {
	char			*dir;		/* absolute root, no trailing '/' */
	char			*name;		/* basename of dir */
	struct domain_addr	*addrs;
	size_t			 naddrs;
	uid_t			 id_first;	/* uids= range; 0 0: none */
	uid_t			 id_last;
	int			 id_line;	/* line that declared it */
};

struct domain_table {
	struct domain		*domains;
	size_t			 ndomains;
	char			*path;
};

/*
 * Load path into t.  Returns -1 (with *error_r) when the file cannot be
 * read at all; otherwise 0, with every bad line reported through d
 * (d->count tells how many).
 */
int	domain_table_load(struct domain_table *t, const char *path,
	    struct diag *d, const char **error_r);
/* Parse text already in memory; name is used in messages. */
int	domain_table_parse(struct domain_table *t, const char *name,
	    const char *text, size_t len, struct diag *d);
/* Free everything. */
void	domain_table_free(struct domain_table *t);

/*
 * The domain that owns the local address sa (IPv4, IPv6, or IPv4-mapped
 * IPv6 such as ::ffff:192.0.2.10, which matches 192.0.2.10), or NULL.
 */
const struct domain *domain_lookup_addr(const struct domain_table *t,
	    const struct sockaddr *sa, socklen_t salen);
/* Whether vd declared a uids= range. */
static inline int
domain_has_range(const struct domain *vd)
{
	return vd->id_first != 0;
}
/* The domain whose name or dir is key, or NULL. */
const struct domain *domain_lookup_name(const struct domain_table *t,
	    const char *key);
/* Format sa's address (without port) into dst; IPv4-mapped shown as IPv4. */
const char *domain_addr_text(const struct sockaddr *sa, char *dst,
	    size_t size);
/* Fill ss/len_r with addr and port for bind(2). */
void	domain_addr_sockaddr(const struct domain_addr *addr, int port,
	    struct sockaddr_storage *ss, socklen_t *len_r);

#endif
