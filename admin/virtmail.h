/*
 * virtmail.h — the virtmail admin command's private types.
 *
 * Processes: virtmail runs as root on the host.  Whatever reads or
 * talks to a domain's queue does it in a child that has chrooted into
 * the domain's root and become its run_as account (admin_domain_enter),
 * so a symlink or a socket planted in a domain's queue directory
 * cannot make root act on a host file.
 */
#ifndef VIRTMAIL_ADMIN_H
#define VIRTMAIL_ADMIN_H

#include <stddef.h>

#include "domain.h"
#include "smtpd.h"

#define ADMIN_NAME		"virtmail"
#define ADMIN_CTL_WAIT		60	/* s to wait for a runner's answer */

struct admin_opts {
	const char		*virtual_conf;	/* -f */
	const char		*global_conf;	/* -C */
	int			 verbose;	/* -v */
};

/* A subcommand: argv[0] is its name.  Returns an exit status. */
struct admin_cmd {
	const char	*name;
	int		(*fn)(const struct admin_opts *, int, char **);
	const char	*usage;
	const char	*help;
};

/* The configuration every subcommand but check starts from. */
struct admin_ctx {
	struct domain_table	 table;
	struct smtpd_conf	 conf;
};

/* virtmail.c */
void	admin_warnx(const char *fmt, ...) __attribute__((format(printf, 1,
	    2)));
/* Load virtual.conf and virtmail.conf strictly; an exit status or 0. */
int	admin_ctx_load(struct admin_ctx *x, const struct admin_opts *o);
void	admin_ctx_free(struct admin_ctx *x);
/* The domain named key: its name (basename of DIR), DIR, or one of its
 * mail domains.  NULL when none. */
const struct domain *admin_domain_find(const struct admin_ctx *x,
	    const char *key);
/*
 * Fork a child that chroots into vd's root as its run_as account and
 * calls fn(arg) there; returns fn's value as the exit status, or an
 * exit status of its own when the child could not get there.
 */
int	admin_in_domain(const struct admin_ctx *x, const struct domain *vd,
	    int (*fn)(const struct domain *, void *), void *arg);

/* admin_check.c */
int	admin_check(const struct admin_opts *o, int argc, char **argv);

/* admin_queue.c */
int	admin_queue(const struct admin_opts *o, int argc, char **argv);
int	admin_flush(const struct admin_opts *o, int argc, char **argv);

#endif
