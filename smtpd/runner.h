/*
 * runner.h — private to a domain's queue runner (runner*.c) and its
 * privileged deliverer (deliverer.c).
 *
 * The runner is one process (run_as, chrooted in the domain's root)
 * with one state, `runner', defined in runner.c.  A message the
 * runner knows is a struct rmsg in exactly one of three lists; while
 * active it carries the pass in progress: its envelope, the local
 * delivery tasks (runner_local.c), the remote recipients (runner_
 * remote.c) and one result record per recipient (struct rrcpt), from
 * which runner_decide() records the recipient's new state.
 */
#ifndef VIRTMAIL_RUNNER_H
#define VIRTMAIL_RUNNER_H

#include <sys/types.h>
#include <sys/queue.h>

#include <linux/capability.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aliases.h"
#include "event.h"
#include "passwd.h"
#include "queue.h"
#include "smtpd.h"

#define RUNNER_PARALLEL		8	/* deliveries in flight */
#define RUNNER_ACTIVE_MAX	32	/* messages being worked on */
#define RUNNER_RESCAN		60	/* s between full rescans */
#define RUNNER_HASH		4096

enum rmsg_where {
	RM_READY,
	RM_WAIT,
	RM_ACTIVE,
};

struct rmsg;

/* One local delivery: recipient rcpt of m to passwd user `user'. */
struct rtask {
	struct rmsg	*m;
	size_t		 rcpt;
	char		 user[PASSWD_NAME_MAX + 1];
	char		 addr[DELIVER_ADDR_MAX];	/* Delivered-To */
};

struct rrcpt {
	size_t		 outstanding;
	int		 ok, temp, perm, remote, decided;
	char		 reason[DELIVER_REASON_MAX];
	/* For the DSN: owed once the recipient failed for good. */
	int		 bounce, diag_smtp;
	char		 dsn[16];
	char		 rmta[DNS_NAME_MAX];
};

/* A remote recipient (or remote alias target) of this pass. */
struct rremote {
	size_t		 rcpt;
	char		*addr;
};

struct rctl;

enum runner_admin {
	RUNNER_ADMIN_NONE,
	RUNNER_ADMIN_DELETE,
	RUNNER_ADMIN_BOUNCE,
};

struct rmsg {
	TAILQ_ENTRY(rmsg)	 entry;
	struct rmsg		*hnext;
	char			 id[QUEUE_ID_LEN + 1];
	enum rmsg_where		 where;
	time_t			 next_try;
	int			 recovered;
	unsigned char		*tried;		/* per recipient */
	unsigned char		*remote_logged;
	size_t			 nflags;
	/* The pass in progress (RM_ACTIVE). */
	struct queue_env	 env;
	int			 loaded;
	struct rtask		*tasks;
	size_t			 ntasks, next, inflight;
	struct rrcpt		*rs;
	struct rremote		*remote;
	size_t			 nremote, rjobs;	/* jobs in mta.c */
	/* Across passes. */
	int			 flush;		/* ignore next_attempt once */
	enum runner_admin	 admin;		/* from the control socket */
	struct rctl		*ctl;		/* waits for the answer */
};

TAILQ_HEAD(rmsg_list, rmsg);

struct runner {
	struct smtpd_domain	*sd;
	const struct smtpd_conf	*conf;
	struct ev_loop		*loop;
	int			 dfd;		/* to the deliverer */
	int			 ifd;		/* inotify */
	int			 drop_wd;	/* pickup.c's watch; -1: none */
	struct rmsg_list	 ready, wait, active;
	size_t			 nactive;
	struct rmsg		*hash[RUNNER_HASH];
	struct rtask		*slots[RUNNER_PARALLEL];
	uint32_t		 slot_reqid[RUNNER_PARALLEL];
	size_t			 inflight;
	uint32_t		 reqid;
	int			 stopping;
	struct ev_timer		 tick;
	unsigned int		 ticks;
	/* The domain's files, reloaded when they change. */
	struct smtp_userdb	 udb;
	unsigned int		 retry_min, retry_max, lifetime;
};

/* deliver_agent.c — the deliverer's long-lived Maildir writers. */
struct priv_user;
#define DELIVER_AGENT_TIMEOUT	600	/* s for one delivery */
typedef void	deliver_agent_reply_cb(size_t client, struct deliver_res *res);
/* dir: the domain's root, which each agent enters as its user;
 * domain: its name, in the agents' ps titles. */
void	deliver_agent_init(struct ev_loop *loop, const char *dir,
	    const char *domain, const char *hostname,
	    deliver_agent_reply_cb *reply, void (*done)(void));
/* Hand a Maildir delivery to an agent of u: 0 (msgfd is closed, the
 * answer comes through reply), or -1: the caller delivers itself. */
int	deliver_agent_deliver(const struct priv_user *u, size_t client,
	    const struct deliver_req *req, int msgfd);
size_t	deliver_agent_busy(void);
/* Close every idle agent. */
void	deliver_agent_close_all(void);

/* deliver_spool.c — root, outside the root: the mbox spool. */
struct stat;
/* var/spool/mail inside the domain's root dir (file_open_in_root),
 * refused unless a directory of root's writable by root alone; the
 * descriptor, or -1 with *error_r. */
int	deliver_spool_open(const char *dir, const char **error_r);
/* Create user's mbox if missing (0600, uid:gid), then take the dotlock
 * USER.lock (waits, breaks a stale one); *lock_r identifies it.  0, or
 * -1 with res filled. */
int	deliver_spool_lock(int spoolfd, const char *user, uid_t uid,
	    gid_t gid, struct stat *lock_r, struct deliver_res *res);
/* Remove the dotlock if it is still the one held. */
void	deliver_spool_unlock(int spoolfd, const char *user,
	    const struct stat *held);

/* deliverer.c */
/*
 * What a deliverer keeps of root, outside the domain's root: become a
 * user (SETUID, SETGID) inside the root (SYS_CHROOT) in its children,
 * hand a new mbox to its user (CHOWN), stop a child that overran
 * (KILL).  The spool is root's own: no DAC_OVERRIDE.
 */
#define DELIVERER_CAPS		{ CAP_CHOWN, CAP_KILL, CAP_SETGID, \
				  CAP_SETUID, CAP_SYS_CHROOT }
/* In a child of the deliverer: default signal handling, none blocked. */
void	deliverer_child_signals(void);
/*
 * In a child, outside the root: chroot into dir and become u in one
 * step (priv_enter_root), then no_new_privs and the death signal
 * deathsig.  Nothing in the root may be touched before.  0, or -1 with
 * *error_r.
 */
int	deliverer_enter(const char *dir, const struct priv_user *u,
	    int deathsig, const char **error_r);
void	deliverer_main(struct smtpd_domain *sd, int *cfds, size_t ncfds,
	    pid_t runner_pid)
	    __attribute__((noreturn));

/* runner.c */
extern struct runner	 runner;
struct rmsg	*runner_find(const char *id);
void	runner_note(const char *id, int recovered);
void	runner_move(struct rmsg *m, enum rmsg_where to);
void	runner_forget(struct rmsg *m);
void	runner_schedule(struct rmsg *m, time_t when);
void	runner_pass_start(struct rmsg *m);
void	runner_pass_clear(struct rmsg *m);
void	runner_pass_finish(struct rmsg *m);
void	runner_kick(void);
void	runner_maybe_exit(void);
long long runner_delay(const struct rmsg *m);
void	runner_log(struct rmsg *m, size_t i, const char *to,
	    const char *mailbox, const char *status, const char *reason);
void	runner_note_result(struct rrcpt *rs, enum deliver_status st,
	    const char *reason);
size_t	runner_pending(const struct queue_env *e);
void	runner_decide(struct rmsg *m, size_t i);

/* runner_ctl.c */
void	runner_ctl_init(void);
void	runner_ctl_answer(struct rctl *c, const char *error);
void	runner_admin_delete(struct rmsg *m);
void	runner_admin_bounce(struct rmsg *m);

/* runner_dsn.c */
void	runner_dsn_owed(struct rmsg *m);
void	runner_dsn_delay_warning(struct rmsg *m);

/* runner_local.c */
int	runner_local_load(void);
void	runner_local_route(struct rmsg *m, size_t i);
void	runner_local_start(struct rtask *t);
void	runner_local_on_reply(int fd, int events, void *arg);

/* runner_remote.c */
void	runner_remote_add(struct rmsg *m, size_t i, const char *addr);
void	runner_remote_clear(struct rmsg *m);
void	runner_remote_start(struct rmsg *m);

#endif
