/*
 * master.c — virtmail-smtpd's root master: loads the configuration,
 * binds the listeners, forks one SMTP worker and one queue runner per
 * domain, and supervises them (restart with backoff, reload on SIGHUP,
 * clean shutdown on SIGTERM).  Also the -t check (-i: master_inetd.c).
 *
 * SECURITY
 *	Runs as root, outside any chroot, and never reads a byte from the
 *	network: in wildcard mode it only accepts, asks the kernel which
 *	local address was hit (getsockname), and passes the descriptor
 *	on.  It never loads a private key: it opens each configured
 *	certificate and key file in the domain's root (tls_files_check)
 *	and has the pairs loaded by a throwaway child (tls_server_check),
 *	at start, on reload and for -t, so a broken key is reported with
 *	its file and reason and no forked process inherits another
 *	domain's key.  It builds the id policy (idrange.h) at start and on
 *	every reload, and refuses ranges that overlap or hold host ids.
 *	Each new worker or runner first keeps only its own descriptors
 *	(close_range), sends its log lines to its domain's relay, which
 *	the master reads and stamps with the domain (log.h), and binds
 *	itself to its domain's ids (privbind.h).  The worker then starts
 *	its AUTH service and deliverer, loads its own keys as root, and
 *	chroots into the domain's root as its run_as account
 *	(priv_enter_root) before it is handed to smtp_server_run(); so one
 *	domain's worker never holds another's listener or key.  The runner
 *	holds no server key at all.
 *	A domain whose configuration is broken (no run_as, unsafe root,
 *	unknown account) is logged and skipped; the others start.
 *
 * DIAGNOSTICS
 *	Configuration problems as "file:line: message"; process events as
 *	one log line each ("worker started", "worker exited ... restart
 *	in Ns", "reload", "no service for this address").
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "event.h"
#include "fdpass.h"
#include "fileio.h"
#include "idrange.h"
#include "listen.h"
#include "log.h"
#include "privbind.h"
#include "privdrop.h"
#include "proctitle.h"
#include "tls.h"
#include "smtpd.h"
#include "xmalloc.h"

#define MASTER_BACKOFF_MAX	60	/* s between restarts, at most */
#define MASTER_STABLE_MS	60000	/* a child that ran this long was fine */
#define MASTER_GRACE_MS		10000	/* SIGTERM to SIGKILL at shutdown */
#define MASTER_ACCEPT_BURST	64
#define MASTER_BUSY		"421 4.3.2 service busy, try again later\r\n"

enum master_role {
	MASTER_WORKER,
	MASTER_RUNNER,
};

struct mdomain;

struct mchild {
	struct mdomain		*md;
	enum master_role	 role;
	pid_t			 pid;		/* 0: not running */
	uint64_t		 started;	/* ms, monotonic */
	unsigned int		 backoff;	/* s before the next restart */
	struct ev_timer		 restart;
};

struct mlisten {
	int			 fd;
	enum listener_kind	 kind;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
};

struct mdomain {
	struct mdomain		*next;
	struct domain		 vd;		/* own copy: outlives tables */
	struct smtpd_domain	 sd;		/* sd.vd points at vd */
	struct priv_user	 user;
	struct buf		 ident;		/* unchanged ident: keep on HUP */
	struct mlisten		*ls;
	size_t			 nls;
	int			 pass[2];	/* wildcard: master, worker end */
	int			 log[2];	/* log relay: master, domain end */
	struct mchild		 worker, runner;
	int			 retired;
	/* The key files as checked, and their certificates' subjects. */
	struct file_id		 tls_ids[2 * TLS_PAIRS_MAX];
	struct buf		 tls_subjects;
};

struct master {
	struct daemon_opts	 opts;
	struct smtpd_conf	 conf;
	struct ev_loop		*loop;
	struct mdomain		*domains;
	struct mdomain		*retired;	/* stopping; freed once reaped */
	struct mlisten		 any[6];	/* wildcard listeners */
	size_t			 nany;
	struct idpolicy		 policy;	/* ids each domain may use */
	struct domain_table	 lookup;	/* shallow copies, for lookups */
	struct mdomain		**lookup_md;
	pid_t			 pid;
	int			 stopping;
	struct ev_timer		 grace;
};

static struct master	 m;

static void	master_diag_log(void *, const char *);
static void	master_diag_print(void *, const char *);
static struct mdomain *master_domain_load(const struct domain *,
		    const struct smtpd_conf *, struct diag *);
static void	master_domain_free(struct mdomain *);
static int	master_load(const struct daemon_opts *, struct smtpd_conf *,
		    struct idpolicy *, struct mdomain **, struct diag *);
static void	master_bind_domain(struct mdomain *, struct mdomain *);
static void	master_lookup_rebuild(void);
static void	master_spawn(struct mchild *);
static void	master_child(struct mchild *) __attribute__((noreturn));
static void	master_accept(int, int, void *);
static void	master_sigchld(int, void *);
static void	master_sigterm(int, void *);
static void	master_sighup(int, void *);
static void	master_restart_cb(void *);
static void	master_grace_cb(void *);
static void	master_log_cb(int, int, void *);

static const char *
master_role_name(enum master_role r)
{
	return r == MASTER_WORKER ? "worker" : "runner";
}

static void
master_diag_log(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

static void
master_diag_print(void *ctx, const char *msg)
{
	(void)ctx;
	(void)fprintf(stderr, "%s\n", msg);
}

/*
 * What a running domain depends on, as text: when a reload produces the
 * same text, the domain's processes are kept as they are.
 */
static int
master_ident(struct mdomain *md, const struct smtpd_conf *c)
{
	const struct smtpd_domain	*sd = &md->sd;
	const struct smtpd_limits	*l = &sd->limits;
	const struct file_id		*id;
	struct buf			*b = &md->ident;
	char				 a[INET6_ADDRSTRLEN];
	size_t				 i, j;
	int				 r = 0;

	buf_init(b, 1 << 20);
	r |= buf_printf(b, "dir %s\nports %d %d %d any %d\nids %lu-%lu\n",
	    md->vd.dir, c->port_smtp, c->port_submission, c->port_smtps,
	    c->listen_any, (unsigned long)md->vd.id_first,
	    (unsigned long)md->vd.id_last);
	for (i = 0; i < md->vd.naddrs; i++)
		r |= buf_printf(b, "addr %s\n", md->vd.addrs[i].text);
	r |= buf_printf(b, "hostname %s\nmailbox %d\nspf %d\n",
	    sd->hostname, sd->mailbox_mbox, sd->spf_mode);
	for (i = 0; i < sd->nlocal_domains; i++)
		r |= buf_printf(b, "domain %s\n", sd->local_domains[i]);
	r |= buf_printf(b, "run_as %s %lu %lu %s\n", sd->run_as,
	    (unsigned long)md->user.uid, (unsigned long)md->user.gid,
	    md->user.home);
	for (i = 0; i < md->user.ngroups; i++)
		r |= buf_printf(b, "group %lu\n",
		    (unsigned long)md->user.groups[i]);
	for (i = 0; i < sd->nrelay_from; i++) {
		if (inet_ntop(sd->relay_from[i].family,
		    sd->relay_from[i].addr, a, sizeof(a)) == NULL)
			a[0] = '\0';
		r |= buf_printf(b, "relay_from %s/%u\n", a,
		    sd->relay_from[i].bits);
	}
	for (i = 0; i < sd->nroutes; i++)
		r |= buf_printf(b, "route %s [%s]:%d\n", sd->routes[i].domain,
		    sd->routes[i].host, sd->routes[i].port);
	for (i = 0; sd->milters != NULL && sd->milters[i] != NULL; i++)
		r |= buf_printf(b, "milter %s\n", sd->milters[i]);
	/* A renewed certificate or key (new inode, size or times) too. */
	for (i = 0; i < sd->ntls_pairs && i < TLS_PAIRS_MAX; i++)
		for (j = 0; j < 2; j++) {
			id = &md->tls_ids[2 * i + j];
			r |= buf_printf(b, "tls %s %lu %lu %lld %lld.%09ld "
			    "%lld.%09ld\n", j == 0 ? sd->tls_pairs[i].cert :
			    sd->tls_pairs[i].key, (unsigned long)id->dev,
			    (unsigned long)id->ino, (long long)id->size,
			    (long long)id->mtime.tv_sec, id->mtime.tv_nsec,
			    (long long)id->ctime.tv_sec, id->ctime.tv_nsec);
		}
	r |= buf_printf(b, "auth %d %d %d %u %u ca %s\n",
	    sd->allow_plaintext_auth, sd->sender_login_match,
	    sd->received_auth, sd->auth_delay, sd->auth_failures_max,
	    sd->tls_ca_file != NULL ? sd->tls_ca_file : "-");
	for (i = 0; i < sd->ntls_policies; i++)
		r |= buf_printf(b, "tls_policy %s %d\n",
		    sd->tls_policies[i].domain, (int)sd->tls_policies[i].level);
	r |= buf_printf(b, "limits %zu %zu %llu %u %u %u %u %u %u %u %u %u\n",
	    l->line_max, l->text_line_max,
	    (unsigned long long)l->message_size_max, l->rcpt_max,
	    l->errors_max, l->sessions_max, l->sessions_per_ip_max,
	    l->timeout_cmd, l->timeout_data_block, l->timeout_session,
	    l->timeout_data_total, l->received_max);
	r |= buf_printf(b, "queue %u %u %u %u\n", c->queue_lifetime,
	    c->retry_min, c->retry_max, c->delay_warning);
	return r == 0 ? 0 : -1;
}

static void
master_domain_copy(struct domain *dst, const struct domain *src)
{
	dst->dir = xstrdup(src->dir);
	dst->name = xstrdup(src->name);
	dst->naddrs = src->naddrs;
	dst->id_first = src->id_first;
	dst->id_last = src->id_last;
	dst->id_line = src->id_line;
	dst->addrs = xcalloc(src->naddrs ? src->naddrs : 1,
	    sizeof(*dst->addrs));
	if (src->naddrs > 0)
		memcpy(dst->addrs, src->addrs,
		    src->naddrs * sizeof(*dst->addrs));
}

/*
 * Load one domain: a safe root, its etc/virtmail.conf, its certificates
 * and keys, its run_as account.  NULL when anything is wrong (reported
 * through d).
 */
static struct mdomain *
master_domain_load(const struct domain *vd, const struct smtpd_conf *c,
    struct diag *d)
{
	struct mdomain	*md;
	const char	*err;
	char		 path[1024];
	int		 n;

	md = xcalloc(1, sizeof(*md));
	md->pass[0] = md->pass[1] = -1;
	md->log[0] = md->log[1] = -1;
	md->worker.md = md->runner.md = md;
	md->worker.role = MASTER_WORKER;
	md->runner.role = MASTER_RUNNER;
	master_domain_copy(&md->vd, vd);
	buf_init(&md->ident, 1 << 20);
	buf_init(&md->tls_subjects, 64 * 1024);

	/* Reading files in a root its owner controls would be unsafe. */
	if (priv_check_root(md->vd.dir, &err) == -1) {
		diag_report(d, md->vd.dir, 0, "unsafe domain root: %s; this "
		    "domain does not start", err);
		goto fail;
	}
	if (smtpd_domain_load(&md->sd, &md->vd, c, d) == -1)
		goto fail;
	/*
	 * The master never loads a private key: it only opens the files
	 * here, and a throwaway child loads the pairs to report a broken
	 * one now.  The domain's worker loads its own (master_child).
	 */
	if (md->sd.ntls_pairs > 0 && (tls_files_check(md->vd.dir,
	    md->sd.tls_pairs, md->sd.ntls_pairs, md->tls_ids, d) == -1 ||
	    tls_server_check(md->vd.dir, md->sd.tls_pairs,
	    md->sd.ntls_pairs, &md->tls_subjects, d) == -1))
		goto fail;
	if (priv_lookup_user(md->vd.dir, md->sd.run_as, &md->user,
	    &err) == -1) {
		n = snprintf(path, sizeof(path), "%s/%s", md->vd.dir,
		    SMTPD_DOMAIN_CONF);
		diag_report(d, n > 0 && (size_t)n < sizeof(path) ? path :
		    md->vd.dir, 0, "run_as %s: %s", md->sd.run_as, err);
		goto fail;
	}
	if (master_ident(md, c) == -1) {
		diag_report(d, md->vd.dir, 0, "out of memory");
		goto fail;
	}
	return md;

 fail:
	master_domain_free(md);
	return NULL;
}

static void
master_domain_free(struct mdomain *md)
{
	size_t	 i;

	if (md == NULL)
		return;
	for (i = 0; i < md->nls; i++)
		if (md->ls[i].fd != -1)
			(void)close(md->ls[i].fd);
	free(md->ls);
	for (i = 0; i < 2; i++)
		if (md->pass[i] != -1)
			(void)close(md->pass[i]);
	if (md->log[0] != -1) {
		/* What the domain's last processes said, then the socket. */
		(void)log_relay_read(md->log[0], md->sd.name);
		if (m.loop != NULL)
			(void)ev_del(m.loop, md->log[0]);
		(void)close(md->log[0]);
	}
	if (md->log[1] != -1)
		(void)close(md->log[1]);
	if (m.loop != NULL) {
		ev_timer_cancel(m.loop, &md->worker.restart);
		ev_timer_cancel(m.loop, &md->runner.restart);
	}
	tls_server_free(md->sd.tls);
	md->sd.tls = NULL;
	smtpd_domain_free(&md->sd);
	buf_free(&md->ident);
	buf_free(&md->tls_subjects);
	free(md->vd.dir);
	free(md->vd.name);
	free(md->vd.addrs);
	explicit_bzero(&md->user, sizeof(md->user));
	free(md);
}

/*
 * Read the global file, virtual.conf and every domain.  Good domains go
 * to *list_r in table order; bad ones are reported and left out.
 * Returns -1 only when the global file or virtual.conf cannot be used
 * at all.
 */
static int
master_load(const struct daemon_opts *o, struct smtpd_conf *c,
    struct idpolicy *policy, struct mdomain **list_r, struct diag *d)
{
	struct domain_table	 t;
	struct mdomain		*md, **tail = list_r;
	const char		*err;
	size_t			 i;
	int			 before;

	*list_r = NULL;
	if (smtpd_conf_load(c, o->global_conf, d) == -1)
		return -1;
	if (domain_table_load(&t, o->virtual_conf, d, &err) == -1) {
		diag_report(d, o->virtual_conf, 0, "%s", err);
		return -1;
	}
	if (t.ndomains == 0)
		diag_report(d, o->virtual_conf, 0, "no domains");
	/* Ranges that overlap or hold host ids protect nothing: refuse. */
	before = d->count;
	if (idpolicy_build(policy, &t, IDPOLICY_HOST_PASSWD,
	    IDPOLICY_HOST_GROUP, d, &err) == -1 || d->count > before) {
		if (d->count == before)
			diag_report(d, o->virtual_conf, 0, "%s", err);
		idpolicy_free(policy);
		domain_table_free(&t);
		return -1;
	}
	/* Every account a domain names passes the policy (privbind.h). */
	priv_policy_set(policy);
	for (i = 0; i < t.ndomains; i++) {
		if ((md = master_domain_load(&t.domains[i], c, d)) == NULL)
			continue;
		*tail = md;
		tail = &md->next;
	}
	domain_table_free(&t);
	return 0;
}

int
master_check(const struct daemon_opts *o)
{
	struct smtpd_conf	 c;
	struct mdomain		*list, *md, *next;
	struct diag		 d = { master_diag_print, NULL, 0 };
	const char		*s, *nl;
	size_t			 i;

	if (master_load(o, &c, &m.policy, &list, &d) == -1) {
		(void)fprintf(stderr, "%s: configuration has errors\n",
		    SMTPD_NAME);
		return 1;
	}
	(void)printf("listen %s smtp_port %d submission_port %d "
	    "smtps_port %d\n", c.listen_any ? "any" : "per-address",
	    c.port_smtp, c.port_submission, c.port_smtps);
	for (md = list; md != NULL; md = next) {
		next = md->next;
		(void)printf("domain %s\n\tdir %s\n\taddresses", md->sd.name,
		    md->vd.dir);
		for (i = 0; i < md->vd.naddrs; i++)
			(void)printf(" %s", md->vd.addrs[i].text);
		(void)printf("\n\thostname %s\n\tlocal domains",
		    md->sd.hostname);
		if (md->sd.nlocal_domains == 0)
			(void)printf(" (none: relay only)");
		for (i = 0; i < md->sd.nlocal_domains; i++)
			(void)printf(" %s", md->sd.local_domains[i]);
		(void)printf("\n\trun_as %s (uid %lu, gid %lu)\n",
		    md->sd.run_as, (unsigned long)md->user.uid,
		    (unsigned long)md->user.gid);
		if (md->sd.ntls_pairs == 0)
			(void)printf("\ttls none (no STARTTLS, no port %d)\n",
			    c.port_smtps);
		for (s = md->tls_subjects.data; s != NULL && *s != '\0';
		    s = nl + 1) {
			if ((nl = strchr(s, '\n')) == NULL)
				break;
			(void)printf("\ttls certificate %.*s\n",
			    (int)(nl - s), s);
		}
		master_domain_free(md);
	}
	if (d.count > 0) {
		(void)fprintf(stderr, "%s: %d configuration problem%s\n",
		    SMTPD_NAME, d.count, d.count == 1 ? "" : "s");
		return 1;
	}
	(void)printf("configuration OK\n");
	if (fflush(stdout) == EOF)
		return 1;
	return 0;
}

/* Write a one-line reply to a client we will not serve, best effort. */
static void
master_refuse(int fd, const char *reply)
{
	(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int
master_ss_equal(const struct mlisten *a, const struct mlisten *b)
{
	return a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

/*
 * Give md its listeners: one per address and port.  A listener that
 * some domain in old (being replaced) already holds is taken over, so
 * a reload never has to bind an address twice.
 */
static void
master_bind_domain(struct mdomain *md, struct mdomain *old)
{
	struct mlisten		 l;
	struct mdomain		*o;
	const char		*err;
	size_t			 i, j, k;
	int			 p, ports[3];
	enum listener_kind	 kinds[3] = { LISTEN_SMTP, LISTEN_SUBMISSION,
				    LISTEN_SMTPS };

	if (m.conf.listen_any) {
		/* SEQPACKET: one connection per message, never merged. */
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    md->pass) == -1) {
			log_warn("%s: socketpair", md->sd.name);
			md->pass[0] = md->pass[1] = -1;
		} else if (fcntl(md->pass[0], F_SETFL, O_NONBLOCK) == -1)
			log_warn("%s: O_NONBLOCK", md->sd.name);
		return;
	}
	ports[0] = m.conf.port_smtp;
	ports[1] = m.conf.port_submission;
	/* Implicit TLS only for a domain with a certificate. */
	ports[2] = md->sd.ntls_pairs > 0 ? m.conf.port_smtps : 0;
	md->ls = xcalloc(md->vd.naddrs * 3 + 1, sizeof(*md->ls));
	for (i = 0; i < md->vd.naddrs; i++) {
		for (p = 0; p < 3; p++) {
			if (ports[p] == 0)
				continue;
			memset(&l, 0, sizeof(l));
			l.fd = -1;
			l.kind = kinds[p];
			domain_addr_sockaddr(&md->vd.addrs[i], ports[p], &l.ss,
			    &l.sslen);
			for (o = old; o != NULL && l.fd == -1; o = o->next)
				for (k = 0; k < o->nls; k++)
					if (o->ls[k].fd != -1 &&
					    master_ss_equal(&o->ls[k], &l)) {
						l.fd = o->ls[k].fd;
						o->ls[k].fd = -1;
						break;
					}
			if (l.fd == -1 &&
			    (l.fd = listen_bind(&l.ss, l.sslen, &err)) ==
			    -1) {
				log_warn("%s: %s %s port %d", md->sd.name, err,
				    md->vd.addrs[i].text, ports[p]);
				continue;
			}
			md->ls[md->nls++] = l;
		}
	}
	if (md->nls == 0)
		log_warnx("%s: no listening socket; the domain receives no "
		    "mail", md->sd.name);
	for (j = 0; j < md->nls; j++)
		log_debug("%s: listening fd=%d kind=%d", md->sd.name,
		    md->ls[j].fd, md->ls[j].kind);
}

/* The wildcard listeners: 0.0.0.0 and :: on each port. */
static int
master_bind_any(void)
{
	struct mlisten		*l;
	const char		*err;
	int			 fam, p, ports[3];
	enum listener_kind	 kinds[3] = { LISTEN_SMTP, LISTEN_SUBMISSION,
				    LISTEN_SMTPS };

	ports[0] = m.conf.port_smtp;
	ports[1] = m.conf.port_submission;
	ports[2] = m.conf.port_smtps;
	for (p = 0; p < 3; p++) {
		if (ports[p] == 0)
			continue;
		for (fam = 0; fam < 2; fam++) {
			l = &m.any[m.nany];
			memset(l, 0, sizeof(*l));
			l->kind = kinds[p];
			listen_any_sockaddr(fam == 0 ? AF_INET : AF_INET6,
			    ports[p], &l->ss, &l->sslen);
			if ((l->fd = listen_bind(&l->ss, l->sslen, &err)) ==
			    -1) {
				log_warn("%s %s port %d", err, fam == 0 ?
				    "0.0.0.0" : "::", ports[p]);
				if (fam == 0)
					return -1;
				continue;	/* a host without IPv6 */
			}
			if (ev_add(m.loop, l->fd, EV_READ, master_accept, l) ==
			    -1) {
				log_warn("ev_add");
				return -1;
			}
			m.nany++;
		}
	}
	return 0;
}

/* The shallow domain table that wildcard accepts look addresses up in. */
/*
 * md's log relay (log.h): its processes log through the master, which
 * names the domain for them.  Made once per domain; a replaced domain's
 * processes keep the old one until they are gone.
 */
static void
master_log_open(struct mdomain *md)
{
	if (log_relay_pair(md->log) == -1) {
		log_warn("%s: log relay", md->sd.name);
		md->log[0] = md->log[1] = -1;
		return;
	}
	if (ev_add(m.loop, md->log[0], EV_READ, master_log_cb, md) == -1)
		log_warn("%s: log relay", md->sd.name);
}

static void
master_log_cb(int fd, int events, void *arg)
{
	struct mdomain	*md = arg;

	(void)events;
	(void)log_relay_read(fd, md->sd.name);
}

static void
master_lookup_rebuild(void)
{
	struct mdomain	*md;
	size_t		 n = 0;

	free(m.lookup.domains);
	free(m.lookup_md);
	for (md = m.domains; md != NULL; md = md->next)
		n++;
	m.lookup.domains = xcalloc(n + 1, sizeof(*m.lookup.domains));
	m.lookup_md = xcalloc(n + 1, sizeof(*m.lookup_md));
	m.lookup.ndomains = 0;
	for (md = m.domains; md != NULL; md = md->next) {
		m.lookup.domains[m.lookup.ndomains] = md->vd;
		m.lookup_md[m.lookup.ndomains++] = md;
	}
}

static void
master_accept(int fd, int events, void *arg)
{
	struct mlisten		*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct smtpd_pass	 pass;
	const struct domain	*vd;
	struct mdomain		*md;
	char			 a[INET6_ADDRSTRLEN];
	int			 cfd, i;

	(void)events;
	for (i = 0; i < MASTER_ACCEPT_BURST; i++) {
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		sslen = sizeof(ss);
		if (getsockname(cfd, (struct sockaddr *)&ss, &sslen) == -1) {
			log_warn("getsockname");
			(void)close(cfd);
			continue;
		}
		vd = domain_lookup_addr(&m.lookup, (struct sockaddr *)&ss,
		    sslen);
		md = vd != NULL ? m.lookup_md[vd - m.lookup.domains] : NULL;
		if (md == NULL || md->pass[0] == -1) {
			/* DESIGN: never a default domain. */
			log_info("no service for this address local=%s",
			    domain_addr_text((struct sockaddr *)&ss, a,
			    sizeof(a)));
			master_refuse(cfd, SMTPD_REPLY_NO_SERVICE);
			(void)close(cfd);
			continue;
		}
		memset(&pass, 0, sizeof(pass));
		pass.kind = (int32_t)l->kind;
		if (fdpass_send(md->pass[0], cfd, &pass, sizeof(pass)) == -1) {
			log_warn("%s: passing a connection to the worker",
			    md->sd.name);
			master_refuse(cfd, MASTER_BUSY);
		}
		(void)close(cfd);
	}
}

/*
 * In the new child: keep only what is its own (the worker: its
 * listeners and the master's channel; both: the log relay, which goes
 * to the relay's descriptor in log.c), close every other descriptor
 * with close_range, and point md at the new numbers.
 */
static void
master_child_close(struct mdomain *md, enum master_role role)
{
	const char	*err;
	int		*fds;
	size_t		 i, n = 0;

	/* Closes the epoll and signal descriptors, restores the mask. */
	ev_loop_free(m.loop);
	m.loop = NULL;
	if (md->log[1] != -1)
		log_to_relay(md->log[1]);
	fds = xcalloc(md->nls + 1, sizeof(*fds));
	if (role == MASTER_WORKER) {
		for (i = 0; i < md->nls; i++)
			fds[n++] = md->ls[i].fd;
		if (md->pass[1] != -1)
			fds[n++] = md->pass[1];
	}
	if (priv_keep_fds(fds, n, &err) == -1)
		fatalx("%s: %s", master_role_name(role), err);
	n = 0;
	for (i = 0; i < md->nls; i++)
		md->ls[i].fd = role == MASTER_WORKER ? fds[n++] : -1;
	md->pass[0] = md->log[0] = md->log[1] = -1;
	if (md->pass[1] != -1)
		md->pass[1] = role == MASTER_WORKER ? fds[n++] : -1;
	free(fds);
}

static void
master_child(struct mchild *ch)
{
	struct mdomain		*md = ch->md;
	struct priv_user	 u;
	struct diag		 d = { master_diag_log, NULL, 0 };
	enum listener_kind	*kinds;
	const char		*err;
	char			 procname[64];
	int			*fds;
	size_t			 i;

	master_child_close(md, ch->role);
	(void)signal(SIGPIPE, SIG_IGN);
	log_set_domain(md->sd.name);
	/* Every process of the domain: its ids only (privbind.h). */
	if (priv_domain_bind(&m.policy, &md->vd, 0, &err) == -1)
		fatalx("%s: %s", master_role_name(ch->role), err);
	(void)snprintf(procname, sizeof(procname), "%s[%s]", SMTPD_NAME,
	    master_role_name(ch->role));
	log_set_procname(procname);
	proctitle_set("%s %s", master_role_name(ch->role), md->sd.name);

	/* The master holds no private key: neither does the runner. */
	if (ch->role == MASTER_RUNNER) {
		/* Dies with the master; cleared again if it drops privileges. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != m.pid)
			_exit(0);
		runner_main(&md->sd, &m.conf);
	}

	/* The account is read afresh: etc/passwd may have changed. */
	if (priv_lookup_user(md->vd.dir, md->sd.run_as, &u, &err) == -1)
		fatalx("worker: %s", err);
	/*
	 * The AUTH service and the deliverer are forked before the keys
	 * are loaded, so that neither ever holds one.
	 */
	md->sd.auth_fd = smtp_auth_start(&md->sd);
	smtp_direct_start(&md->sd, SMTPD_DIRECT_MAX);
	/*
	 * This domain's keys, read here and by no other domain's process:
	 * as root, before the root.  The master checked them in a
	 * throwaway child; a key broken since then stops the worker with
	 * the file and the reason, and the master retries with backoff.
	 */
	if (md->sd.ntls_pairs > 0 && (md->sd.tls = tls_server_load(md->vd.dir,
	    md->sd.tls_pairs, md->sd.ntls_pairs, &d)) == NULL)
		fatalx("worker: cannot load the TLS certificates and keys");
	if (priv_enter_root(md->vd.dir, &u, &err) == -1)
		fatalx("worker: %s", err);
	explicit_bzero(&u, sizeof(u));
	/* Nothing the worker starts needs a setuid program. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("worker: PR_SET_NO_NEW_PRIVS");
	/* After the uid change, which clears it. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		fatal("prctl");
	if (getppid() != m.pid)
		_exit(0);

	fds = xcalloc(md->nls + 1, sizeof(*fds));
	kinds = xcalloc(md->nls + 1, sizeof(*kinds));
	for (i = 0; i < md->nls; i++) {
		fds[i] = md->ls[i].fd;
		kinds[i] = md->ls[i].kind;
	}
	smtp_server_run(&md->sd, fds, kinds, md->nls, md->pass[1]);
	exit(0);
}

static void
master_spawn(struct mchild *ch)
{
	pid_t	 pid;

	if (m.stopping || ch->md->retired || ch->pid != 0)
		return;
	if ((pid = fork()) == -1) {
		log_warn("%s: fork %s", ch->md->sd.name,
		    master_role_name(ch->role));
		ch->backoff = ch->backoff == 0 ? 1 : ch->backoff;
		ev_timer_set(m.loop, &ch->restart, ch->backoff * 1000ULL,
		    master_restart_cb, ch);
		return;
	}
	if (pid == 0)
		master_child(ch);
	ch->pid = pid;
	ch->started = ev_now_ms();
	log_info("%s: %s started pid=%ld", ch->md->sd.name,
	    master_role_name(ch->role), (long)pid);
}

static void
master_restart_cb(void *arg)
{
	master_spawn(arg);
}

static void
master_start_domain(struct mdomain *md)
{
	master_spawn(&md->worker);
	master_spawn(&md->runner);
}

/* Ask md's children to stop; md is freed once both are reaped. */
static void
master_retire(struct mdomain *md)
{
	size_t	 i;

	md->retired = 1;
	ev_timer_cancel(m.loop, &md->worker.restart);
	ev_timer_cancel(m.loop, &md->runner.restart);
	for (i = 0; i < md->nls; i++)
		if (md->ls[i].fd != -1) {
			(void)close(md->ls[i].fd);
			md->ls[i].fd = -1;
		}
	if (md->worker.pid != 0)
		(void)kill(md->worker.pid, SIGTERM);
	if (md->runner.pid != 0)
		(void)kill(md->runner.pid, SIGTERM);
	if (md->worker.pid == 0 && md->runner.pid == 0) {
		master_domain_free(md);
		return;
	}
	md->next = m.retired;
	m.retired = md;
}

static struct mchild *
master_find_child(pid_t pid, struct mdomain ***prev_r)
{
	struct mdomain	**pp;
	int		 j;

	for (j = 0; j < 2; j++)
		for (pp = j == 0 ? &m.domains : &m.retired; *pp != NULL;
		    pp = &(*pp)->next) {
			if ((*pp)->worker.pid == pid || (*pp)->runner.pid ==
			    pid) {
				*prev_r = pp;
				return (*pp)->worker.pid == pid ?
				    &(*pp)->worker : &(*pp)->runner;
			}
		}
	return NULL;
}

static int
master_children_left(void)
{
	struct mdomain	*md;

	if (m.retired != NULL)
		return 1;
	for (md = m.domains; md != NULL; md = md->next)
		if (md->worker.pid != 0 || md->runner.pid != 0)
			return 1;
	return 0;
}

static void
master_sigchld(int signo, void *arg)
{
	struct mchild	 *ch;
	struct mdomain	**pp, *md;
	uint64_t	  ran;
	pid_t		  pid;
	int		  status;
	char		  how[64];

	(void)signo;
	(void)arg;
	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		if ((ch = master_find_child(pid, &pp)) == NULL)
			continue;
		md = ch->md;
		ch->pid = 0;
		if (WIFSIGNALED(status))
			(void)snprintf(how, sizeof(how), "killed by signal %d",
			    WTERMSIG(status));
		else
			(void)snprintf(how, sizeof(how), "exited status=%d",
			    WEXITSTATUS(status));
		if (m.stopping || md->retired) {
			log_info("%s: %s pid=%ld %s", md->sd.name,
			    master_role_name(ch->role), (long)pid, how);
			if (md->retired && md->worker.pid == 0 &&
			    md->runner.pid == 0) {
				*pp = md->next;
				master_domain_free(md);
			}
			continue;
		}
		/* Backoff 1s, 2s, 4s ... 60s; reset after a good run. */
		ran = ev_now_ms() - ch->started;
		if (ran >= MASTER_STABLE_MS || ch->backoff == 0)
			ch->backoff = 1;
		else if ((ch->backoff *= 2) > MASTER_BACKOFF_MAX)
			ch->backoff = MASTER_BACKOFF_MAX;
		log_warnx("%s: %s pid=%ld %s after %llus; restart in %us",
		    md->sd.name, master_role_name(ch->role), (long)pid, how,
		    (unsigned long long)(ran / 1000), ch->backoff);
		ev_timer_set(m.loop, &ch->restart, ch->backoff * 1000ULL,
		    master_restart_cb, ch);
	}
	if (m.stopping && !master_children_left())
		ev_loop_break(m.loop);
}

static void
master_grace_cb(void *arg)
{
	struct mdomain	*md, *lists[2];
	int		 j;

	(void)arg;
	lists[0] = m.domains;
	lists[1] = m.retired;
	for (j = 0; j < 2; j++)
		for (md = lists[j]; md != NULL; md = md->next) {
			if (md->worker.pid != 0) {
				log_warnx("%s: worker pid=%ld did not stop; "
				    "killing it", md->sd.name,
				    (long)md->worker.pid);
				(void)kill(md->worker.pid, SIGKILL);
			}
			if (md->runner.pid != 0) {
				log_warnx("%s: runner pid=%ld did not stop; "
				    "killing it", md->sd.name,
				    (long)md->runner.pid);
				(void)kill(md->runner.pid, SIGKILL);
			}
		}
}

static void
master_sigterm(int signo, void *arg)
{
	struct mdomain	*md, *lists[2];
	size_t		 i;
	int		 j;

	(void)arg;
	if (m.stopping)
		return;
	m.stopping = 1;
	log_info("signal %d: shutting down", signo);
	for (i = 0; i < m.nany; i++) {
		(void)ev_del(m.loop, m.any[i].fd);
		(void)close(m.any[i].fd);
	}
	m.nany = 0;
	lists[0] = m.domains;
	lists[1] = m.retired;
	for (j = 0; j < 2; j++)
		for (md = lists[j]; md != NULL; md = md->next) {
			ev_timer_cancel(m.loop, &md->worker.restart);
			ev_timer_cancel(m.loop, &md->runner.restart);
			if (md->worker.pid != 0)
				(void)kill(md->worker.pid, SIGTERM);
			if (md->runner.pid != 0)
				(void)kill(md->runner.pid, SIGTERM);
		}
	if (!master_children_left()) {
		ev_loop_break(m.loop);
		return;
	}
	ev_timer_set(m.loop, &m.grace, MASTER_GRACE_MS, master_grace_cb, NULL);
}

/*
 * SIGHUP: read everything again.  A domain whose ident is unchanged
 * keeps its processes and live sessions; a changed one is replaced; a
 * removed one is stopped; a new one starts.  A domain whose new
 * configuration is broken keeps running with the old one.
 */
static void
master_sighup(int signo, void *arg)
{
	struct smtpd_conf	 c;
	struct domain_table	 t;
	struct diag		 d = { master_diag_log, NULL, 0 };
	struct mdomain		*old, *nlist = NULL, **tail = &nlist;
	struct mdomain		*md, *cand, **pp, *start = NULL, **stail;
	struct idpolicy		 policy;
	const char		*err;
	size_t			 i;
	int			 kept = 0, added = 0, replaced = 0, removed = 0;

	(void)signo;
	(void)arg;
	if (m.stopping)
		return;
	log_info("reload: reading %s and %s", m.opts.virtual_conf,
	    m.opts.global_conf);
	if (smtpd_conf_load(&c, m.opts.global_conf, &d) == -1) {
		log_warnx("reload: %s has errors; configuration unchanged",
		    m.opts.global_conf);
		return;
	}
	if (c.listen_any != m.conf.listen_any ||
	    c.port_smtp != m.conf.port_smtp ||
	    c.port_submission != m.conf.port_submission ||
	    c.port_smtps != m.conf.port_smtps) {
		log_warnx("reload: ports and listen_any change only on "
		    "restart; keeping the old ones");
		c.listen_any = m.conf.listen_any;
		c.port_smtp = m.conf.port_smtp;
		c.port_submission = m.conf.port_submission;
		c.port_smtps = m.conf.port_smtps;
	}
	if (domain_table_load(&t, m.opts.virtual_conf, &d, &err) == -1) {
		log_warnx("reload: %s: %s; configuration unchanged",
		    m.opts.virtual_conf, err);
		return;
	}
	if (d.count > 0) {
		log_warnx("reload: %s has errors; configuration unchanged",
		    m.opts.virtual_conf);
		domain_table_free(&t);
		return;
	}
	if (idpolicy_build(&policy, &t, IDPOLICY_HOST_PASSWD,
	    IDPOLICY_HOST_GROUP, &d, &err) == -1 || d.count > 0) {
		if (d.count == 0)
			log_warnx("reload: %s", err);
		log_warnx("reload: uid ranges have errors; configuration "
		    "unchanged");
		idpolicy_free(&policy);
		domain_table_free(&t);
		return;
	}
	/* Loads below, and children forked from now on, use the new one. */
	idpolicy_free(&m.policy);
	m.policy = policy;
	priv_policy_set(&m.policy);

	old = m.domains;
	m.domains = NULL;
	stail = &start;
	for (i = 0; i < t.ndomains; i++) {
		for (pp = &old; *pp != NULL; pp = &(*pp)->next)
			if (strcmp((*pp)->vd.dir, t.domains[i].dir) == 0)
				break;
		cand = master_domain_load(&t.domains[i], &c, &d);
		if (cand == NULL && *pp != NULL) {
			log_warnx("reload: %s: bad configuration; keeping the "
			    "running one", (*pp)->sd.name);
			md = *pp;
			*pp = md->next;
			kept++;
		} else if (cand == NULL) {
			log_warnx("reload: %s: bad configuration; not "
			    "started", t.domains[i].name);
			continue;
		} else if (*pp != NULL && (*pp)->ident.len ==
		    cand->ident.len && memcmp((*pp)->ident.data,
		    cand->ident.data, cand->ident.len) == 0) {
			master_domain_free(cand);
			md = *pp;
			*pp = md->next;
			kept++;
		} else {
			if (*pp != NULL)
				replaced++;
			else
				added++;
			/* Listeners are taken over below, once old is final. */
			cand->next = NULL;
			*stail = cand;
			stail = &cand->next;
			continue;
		}
		md->next = NULL;
		*tail = md;
		tail = &md->next;
	}
	domain_table_free(&t);
	m.conf = c;

	/* New and changed domains: bind (or take over) and start. */
	while ((md = start) != NULL) {
		start = md->next;
		md->next = NULL;
		master_bind_domain(md, old);
		master_log_open(md);
		*tail = md;
		tail = &md->next;
	}
	m.domains = nlist;
	while ((md = old) != NULL) {
		old = md->next;
		md->next = NULL;
		removed++;
		log_info("reload: %s: stopping", md->sd.name);
		master_retire(md);
	}
	removed -= replaced;
	master_lookup_rebuild();
	for (md = m.domains; md != NULL; md = md->next)
		if (md->worker.pid == 0 && md->runner.pid == 0 &&
		    md->worker.restart.when == 0 &&
		    md->runner.restart.when == 0)
			master_start_domain(md);
	log_info("reload: done kept=%d added=%d replaced=%d removed=%d",
	    kept, added, replaced, removed);
}

/* Without -d: leave the terminal, stdio to /dev/null. */
static void
master_daemonize(void)
{
	if (daemon(0, 0) == -1)
		fatal("daemon");
}

int
master_run(const struct daemon_opts *o)
{
	struct diag	 d = { master_diag_log, NULL, 0 };
	struct mdomain	*md;
	int		 n = 0;

	memset(&m, 0, sizeof(m));
	m.opts = *o;
	if (master_load(o, &m.conf, &m.policy, &m.domains, &d) == -1) {
		log_warnx("fatal configuration errors; not starting");
		return EX_CONFIG;
	}
	if (d.count > 0)
		log_warnx("%d configuration problem%s; the domains concerned "
		    "do not start", d.count, d.count == 1 ? "" : "s");
	if (!o->debug)
		master_daemonize();
	m.pid = getpid();
	proctitle_set("master");
	(void)signal(SIGPIPE, SIG_IGN);
	if ((m.loop = ev_loop_new()) == NULL)
		fatal("ev_loop_new");
	if (ev_signal(m.loop, SIGCHLD, master_sigchld, NULL) == -1 ||
	    ev_signal(m.loop, SIGTERM, master_sigterm, NULL) == -1 ||
	    ev_signal(m.loop, SIGINT, master_sigterm, NULL) == -1 ||
	    ev_signal(m.loop, SIGHUP, master_sighup, NULL) == -1)
		fatal("ev_signal");
	if (m.conf.listen_any && master_bind_any() == -1)
		fatalx("cannot listen on the wildcard addresses");
	for (md = m.domains; md != NULL; md = md->next) {
		master_bind_domain(md, NULL);
		master_log_open(md);
		n++;
	}
	master_lookup_rebuild();
	log_info("starting: %d domain%s, %s", n, n == 1 ? "" : "s",
	    m.conf.listen_any ? "wildcard listeners" : "per-address "
	    "listeners");
	for (md = m.domains; md != NULL; md = md->next)
		master_start_domain(md);

	if (ev_loop_run(m.loop) == -1)
		log_warn("event loop");
	while ((md = m.domains) != NULL) {
		m.domains = md->next;
		master_domain_free(md);
	}
	while ((md = m.retired) != NULL) {
		m.retired = md->next;
		master_domain_free(md);
	}
	ev_timer_cancel(m.loop, &m.grace);
	ev_loop_free(m.loop);
	m.loop = NULL;
	free(m.lookup.domains);
	free(m.lookup_md);
	log_info("stopped");
	return 0;
}
