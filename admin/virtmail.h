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

#include <sys/types.h>

#include <stddef.h>

#include "buf.h"

#include "domain.h"
#include "idrange.h"
#include "smtpd.h"

#define ADMIN_NAME		"virtmail"
#define ADMIN_CTL_WAIT		60	/* s to wait for a runner's answer */

struct admin_opts {
	const char		*virtual_conf;	/* -f */
	const char		*global_conf;	/* -C */
	const char		*run_dir;	/* -P: the daemons' pid files */
	int			 verbose;	/* -v */
};

#define ADMIN_ROOT_BASE		"/srv/virtmail"	/* default DIR/NAME */
#define ADMIN_UID_FIRST		10000	/* lowest uid block of a new domain */
#define ADMIN_UID_BLOCK		1000	/* uids of one domain */
#define ADMIN_IPS_MAX		64	/* addresses of one "domain add" */

/* What "domain add" and "fs build" make (admin_fs.c). */
struct admin_fs_spec {
	const char		*dir;		/* the new root */
	const char		*name;		/* mail domain */
	const char		*hostname;	/* banner name */
	const char		**ips;		/* canonical text */
	size_t			 nips;
	unsigned long		 uid_base;	/* run_as uid */
	const char		*sendmail;	/* injector; NULL: ours */
	const char		*resolver;	/* NULL: the host's */
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

/*
 * Build the id policy (idrange.h) of x's table against the host's
 * passwd and group; problems are reported.  An exit status or 0.
 */
int	admin_idpolicy_load(const struct admin_ctx *x, struct idpolicy *p);

/* Print the usage of one subcommand; returns EX_USAGE. */
int	admin_cmd_usage(const char *name);

/* admin_edit.c */
/* snprintf "dir/rel" into dst; -1 (reported) when too long. */
int	admin_path(char *dst, size_t size, const char *dir, const char *rel);
/* Open and fcntl-lock path (waits); the descriptor, or -1 (reported). */
int	admin_lock(const char *path);
void	admin_unlock(int fd);
/* Lock a domain's etc/.pwd.lock after checking etc/ is root's. */
int	admin_lock_domain(const char *dir);
/* A regular file (no symlink) into b, NUL-terminated, ending in '\n'
 * unless empty; a missing file is empty when missing_ok. */
int	admin_file_read(const char *path, struct buf *b, int missing_ok);
/* Replace path atomically, keeping an existing file's mode and owner. */
int	admin_file_replace(const char *path, const char *data, size_t len,
	    mode_t mode);
int	admin_dns_name_valid(const char *name);
/* Canonical text of an IPv4 or IPv6 literal; -1 when it is none. */
int	admin_ip_canon(const char *text, char *dst, size_t size);
/* SIGHUP the running daemons named by their pid files in run_dir. */
void	admin_reload(const struct admin_opts *o);
/* The pids of the running daemons (-1 for one not running). */
#define ADMIN_DAEMONS		2	/* virtmail-smtpd, virtmail-pop3d */
size_t	admin_daemon_pids(const struct admin_opts *o,
	    pid_t pids[ADMIN_DAEMONS]);

/* admin_domain.c */
int	admin_domain(const struct admin_opts *o, int argc, char **argv);
/* The run_as uid for a new domain: a block above every uid in use. */
unsigned long admin_uid_base_next(const struct domain_table *t);

/* admin_exec.c */
int	admin_exec(const struct admin_opts *o, int argc, char **argv);

/* admin_pty.c */
/*
 * Fork a child that starts a new session and calls fn(arg), which
 * should exec and otherwise returns an exit status.  When any of fds
 * 0-2 is a terminal, the child gets a new pty instead (its controlling
 * terminal), and this relays between the two until the child ends.
 * Returns the child's status as a shell does (128 + signal), or an
 * exit status of its own.
 */
int	admin_pty_run(int (*fn)(void *), void *arg);

/* admin_fs.c */
int	admin_fs(const struct admin_opts *o, int argc, char **argv);
/* Build a minimal root (docs/ADMIN.md); 0, or -1 (reported). */
int	admin_fs_build(const struct admin_fs_spec *s);

/* admin_procs.c */
#define ADMIN_PROCS_SHOWN	16	/* pids named in a refusal */
#define ADMIN_PURGE_WAIT	30	/* s for a domain's daemons to go */
/*
 * 0 when no process runs whose root is dir or whose uid is one of the
 * domain's accounts (its etc/passwd's but 0), but for descendants of
 * the nspare pids in spare; waits up to wait_s seconds for them to end.
 * Otherwise an exit status, with a message that names the pids.
 */
int	admin_procs_domain_idle(const char *dir, const pid_t *spare,
	    size_t nspare, int wait_s);
/* The same for the processes of one uid; name is for the message. */
int	admin_procs_user_idle(const char *name, uid_t uid);

/* admin_rmtree.c */
/*
 * Remove the directory rel (relative, no "." or "..") under base and
 * everything below it, without resolving a path a user controls:
 * openat(O_NOFOLLOW) from descriptors, device and inode checks,
 * unlinkat; never crossing a mount.  What changed underneath is
 * reported and left.  0 when rel is gone, -1 (reported) otherwise.
 */
int	admin_rmtree(const char *base, const char *rel);
/* The same for an absolute dir below a top-level directory. */
int	admin_purge_tree(const char *dir);

/* admin_user.c */
int	admin_user(const struct admin_opts *o, int argc, char **argv);
int	admin_passwd(const struct admin_opts *o, int argc, char **argv);
int	admin_alias(const struct admin_opts *o, int argc, char **argv);
int	admin_newaliases(const struct admin_opts *o, int argc, char **argv);

/* admin_check.c */
int	admin_check(const struct admin_opts *o, int argc, char **argv);

/* admin_queue.c */
int	admin_queue(const struct admin_opts *o, int argc, char **argv);
int	admin_flush(const struct admin_opts *o, int argc, char **argv);

#endif
