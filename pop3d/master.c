/*
 * master.c — virtmail-pop3d's root master: loads the configuration,
 * binds pop3_port, and pop3s_port (implicit TLS, RFC 8314) for domains
 * with a certificate, on each domain's addresses (or the wildcard,
 * then getsockname() per connection), accepts, enforces the session
 * limits and forks one session per connection (auth.c).  Also -t, -i.
 *
 * SECURITY
 *	Runs as root, outside any chroot, and never reads a byte from the
 *	network: it accepts, asks the kernel which local address was hit,
 *	counts sessions per client address, and forks.  The session child
 *	(the auth step, auth.c) closes every descriptor but its client's
 *	with close_range before anything else.  A domain whose
 *	configuration is broken is logged and skipped.
 *	It never loads a private key, so no session process inherits
 *	another domain's: it only checks that the tls_cert/tls_key/tls_pair
 *	files exist inside the domain's root with an owner-only key mode
 *	(tls_files_check), which decides that the domain has TLS.
 *	At start, at reload and under -t a short-lived child loads each
 *	domain's keys once to report a broken one with its file and reason
 *	(tls_server_check); such a domain does not start.  Each session loads its
 *	own domain's keys in its login process (auth.c).
 *
 * DIAGNOSTICS
 *	"starting: N domains", "no service for this address local=A",
 *	"session limit peer=A", "reload: done domains=N".
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "diag.h"
#include "domain.h"
#include "event.h"
#include "fileio.h"
#include "idrange.h"
#include "listen.h"
#include "log.h"
#include "pop3d.h"
#include "privbind.h"
#include "privdrop.h"
#include "proctitle.h"
#include "relay_inetd.h"
#include "tls.h"
#include "xmalloc.h"

#define PM_ACCEPT_BURST		64
#define PM_NO_SERVICE		"-ERR [SYS/PERM] no service for this " \
				    "address\r\n"
#define PM_BUSY			"-ERR [SYS/TEMP] too many sessions, try " \
				    "again later\r\n"
#define PM_CONF_ERROR		"-ERR [SYS/TEMP] service not available " \
				    "(configuration error)\r\n"

struct pdomain;

struct plisten {
	int			 fd;
	int			 tls;		/* pop3s_port */
	struct pdomain		*md;		/* NULL: wildcard */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
};

struct pdomain {
	struct pdomain		*next;
	struct domain		 vd;
	struct smtpd_domain	 sd;
	struct plisten		*ls;
	size_t			 nls;
	int			 has_tls;	/* keys checked, never loaded */
	struct buf		 subjects;	/* from the key check, a line
						   each */
	int			 relay[2];	/* log relay: ours, the domain's */
};

struct psession {
	pid_t			 pid;
	unsigned char		 addr[16];	/* client, v4-mapped */
};

static struct {
	struct daemon_opts	 opts;
	struct smtpd_conf	 sc;
	struct pop3_conf	 pc;
	struct ev_loop		*loop;
	struct pdomain		*domains;
	struct plisten		 any[4];
	size_t			 nany;
	struct domain_table	 lookup;
	struct idpolicy		*pol;		/* uid/gid ranges, per load */
	struct pdomain		**lookup_md;
	struct psession		*sess;
	size_t			 nsess, capsess;
	int			 stopping;
} pm;

static void
pm_diag_log(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

static void
pm_diag_print(void *ctx, const char *msg)
{
	(void)ctx;
	(void)fprintf(stderr, "%s\n", msg);
}

static void
pm_domain_free(struct pdomain *md)
{
	size_t	 i;

	if (md == NULL)
		return;
	for (i = 0; i < md->nls; i++)
		if (md->ls[i].fd != -1) {
			if (pm.loop != NULL)
				(void)ev_del(pm.loop, md->ls[i].fd);
			(void)close(md->ls[i].fd);
		}
	free(md->ls);
	buf_free(&md->subjects);
	if (md->relay[0] != -1) {
		if (pm.loop != NULL)
			(void)ev_del(pm.loop, md->relay[0]);
		(void)close(md->relay[0]);
		(void)close(md->relay[1]);
	}
	smtpd_domain_free(&md->sd);
	free(md->vd.dir);
	free(md->vd.name);
	free(md->vd.addrs);
	free(md);
}

/* The key check's problems, each prefixed with the domain's root. */
struct pm_dir_diag {
	struct diag	*d;
	const char	*dir;
};

static void
pm_diag_dir(void *ctx, const char *msg)
{
	struct pm_dir_diag	*dd = ctx;

	diag_report(dd->d, dd->dir, 0, "%s", msg);
}

/*
 * check_keys: load the keys once in a throwaway child (tls_check.c) to
 * report a broken one now; inetd mode leaves that to the session's
 * login process, which is the only process that loads them anyway.
 */
static struct pdomain *
pm_domain_load(const struct domain *vd, const struct smtpd_conf *c,
    struct diag *d, int check_keys)
{
	struct pm_dir_diag	 dd;
	struct diag		 kd = { pm_diag_dir, &dd, 0 };
	struct pdomain		*md;
	struct priv_user	 u;
	const char		*err;

	md = xcalloc(1, sizeof(*md));
	md->relay[0] = md->relay[1] = -1;
	buf_init(&md->subjects, 0);
	md->vd.dir = xstrdup(vd->dir);
	md->vd.name = xstrdup(vd->name);
	md->vd.naddrs = vd->naddrs;
	md->vd.addrs = xcalloc(vd->naddrs + 1, sizeof(*vd->addrs));
	if (vd->naddrs > 0)
		memcpy(md->vd.addrs, vd->addrs, vd->naddrs *
		    sizeof(*vd->addrs));
	if (priv_check_root(md->vd.dir, &err) == -1) {
		diag_report(d, md->vd.dir, 0, "unsafe domain root: %s; this "
		    "domain does not start", err);
		goto fail;
	}
	if (smtpd_domain_load(&md->sd, &md->vd, c, d) == -1)
		goto fail;
	/* Never loaded here: a master holding keys would pass them on. */
	if (md->sd.ntls_pairs > 0) {
		dd.d = d;
		dd.dir = md->vd.dir;
		if (tls_files_check(md->vd.dir, md->sd.tls_pairs,
		    md->sd.ntls_pairs, NULL, d) == -1)
			goto fail;
		if (check_keys && tls_server_check(md->vd.dir,
		    md->sd.tls_pairs, md->sd.ntls_pairs, &md->subjects,
		    &kd) == -1)
			goto fail;
		md->has_tls = 1;
	}
	if (priv_lookup_user(md->vd.dir, md->sd.run_as, &u, &err) == -1) {
		diag_report(d, md->vd.dir, 0, "run_as %s: %s", md->sd.run_as,
		    err);
		goto fail;
	}
	return md;
 fail:
	pm_domain_free(md);
	return NULL;
}

/* The id policy of t; NULL when it cannot be built or t is in error. */
static struct idpolicy *
pm_policy(const struct domain_table *t, struct diag *d)
{
	struct idpolicy	*p;
	const char	*err;
	int		 before = d->count;

	p = xcalloc(1, sizeof(*p));
	if (idpolicy_build(p, t, IDPOLICY_HOST_PASSWD, IDPOLICY_HOST_GROUP, d,
	    &err) == -1) {
		diag_report(d, IDPOLICY_HOST_PASSWD, 0, "id policy: %s", err);
		free(p);
		return NULL;
	}
	/* Ranges in error: nothing could be held to them. */
	if (d->count > before) {
		idpolicy_free(p);
		free(p);
		return NULL;
	}
	return p;
}

static void
pm_policy_free(struct idpolicy *p)
{
	if (p != NULL) {
		idpolicy_free(p);
		free(p);
	}
}

/*
 * Read everything.  *pol_r: the id policy, set as this process's for
 * the lookups (run_as) and left set; the caller frees or keeps it.
 */
static int
pm_load(const struct daemon_opts *o, struct smtpd_conf *sc,
    struct pop3_conf *pc, struct pdomain **list_r, struct idpolicy **pol_r,
    struct diag *d)
{
	struct domain_table	 t;
	struct pdomain		*md, **tail = list_r;
	const char		*err;
	size_t			 i;

	*list_r = NULL;
	*pol_r = NULL;
	if (smtpd_conf_load(sc, o->global_conf, d) == -1 ||
	    smtpd_conf_load_pop3(pc, o->global_conf, d) == -1)
		return -1;
	if (domain_table_load(&t, o->virtual_conf, d, &err) == -1) {
		diag_report(d, o->virtual_conf, 0, "%s", err);
		return -1;
	}
	if ((*pol_r = pm_policy(&t, d)) == NULL) {
		domain_table_free(&t);
		return -1;
	}
	priv_policy_set(*pol_r);
	if (t.ndomains == 0)
		diag_report(d, o->virtual_conf, 0, "no domains");
	for (i = 0; i < t.ndomains; i++) {
		if ((md = pm_domain_load(&t.domains[i], sc, d, 1)) == NULL)
			continue;
		*tail = md;
		tail = &md->next;
	}
	domain_table_free(&t);
	return 0;
}

int
pop3_master_check(const struct daemon_opts *o)
{
	struct smtpd_conf	 sc;
	struct pop3_conf	 pc;
	struct pdomain		*list, *md, *next;
	struct idpolicy		*pol;
	struct diag		 d = { pm_diag_print, NULL, 0 };
	const char		*line, *nl;
	size_t			 i;

	if (pm_load(o, &sc, &pc, &list, &pol, &d) == -1) {
		(void)fprintf(stderr, "%s: configuration has errors\n",
		    POP3D_NAME);
		return 1;
	}
	priv_policy_set(NULL);
	pm_policy_free(pol);
	(void)printf("listen %s pop3_port %d pop3s_port %d\n",
	    pc.listen_any ? "any" : "per-address", pc.port, pc.port_tls);
	(void)printf("limits sessions %u per_ip %u timeout %us "
	    "auth_failures %u auth_delay %us\n", pc.sessions_max,
	    pc.sessions_per_ip_max, pc.timeout, pc.auth_failures_max,
	    pc.auth_delay);
	for (md = list; md != NULL; md = next) {
		next = md->next;
		(void)printf("domain %s\n\tdir %s\n\taddresses", md->sd.name,
		    md->vd.dir);
		for (i = 0; i < md->vd.naddrs; i++)
			(void)printf(" %s", md->vd.addrs[i].text);
		(void)printf("\n\thostname %s\n\tmailbox %s\n\trun_as %s\n",
		    md->sd.hostname, md->sd.mailbox_mbox ? "mbox" :
		    "maildir", md->sd.run_as);
		if (!md->has_tls)
			(void)printf("\ttls none (no STLS, no port %d)\n",
			    pc.port_tls);
		for (line = md->subjects.data; line != NULL && *line != '\0';
		    line = nl + 1) {
			if ((nl = strchr(line, '\n')) == NULL)
				break;
			(void)printf("\ttls certificate %.*s\n",
			    (int)(nl - line), line);
		}
		pm_domain_free(md);
	}
	if (d.count > 0) {
		(void)fprintf(stderr, "%s: %d configuration problem%s\n",
		    POP3D_NAME, d.count, d.count == 1 ? "" : "s");
		return 1;
	}
	(void)printf("configuration OK\n");
	return fflush(stdout) == EOF ? 1 : 0;
}

static int
pm_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

int
pop3_master_inetd(const struct daemon_opts *o)
{
	struct sockaddr_storage	 ss, peer;
	socklen_t		 sslen = sizeof(ss), plen = sizeof(peer);
	struct smtpd_conf	 sc;
	struct pop3_conf	 pc;
	struct domain_table	 t;
	struct pdomain		*md;
	struct diag		 d = { pm_diag_log, NULL, 0 };
	struct pop3_conn	 conn;
	struct idpolicy		*pol;
	const struct domain	*vd;
	const char		*err;
	char			 a[64];
	int			 tls;

	if (getsockname(0, (struct sockaddr *)&ss, &sslen) == -1) {
		log_warn("inetd: getsockname on fd 0 (not a socket?)");
		return EX_USAGE;
	}
	if (getpeername(0, (struct sockaddr *)&peer, &plen) == -1)
		memset(&peer, 0, sizeof(peer));
	if (smtpd_conf_load(&sc, o->global_conf, &d) == -1 ||
	    smtpd_conf_load_pop3(&pc, o->global_conf, &d) == -1 ||
	    domain_table_load(&t, o->virtual_conf, &d, &err) == -1) {
		log_warnx("inetd: configuration errors");
		(void)write_all(1, PM_CONF_ERROR, strlen(PM_CONF_ERROR));
		listen_inetd_linger();
		return EX_CONFIG;
	}
	if ((pol = pm_policy(&t, &d)) == NULL) {
		log_warnx("inetd: uid ranges in error, refusing to serve");
		(void)write_all(1, PM_CONF_ERROR, strlen(PM_CONF_ERROR));
		listen_inetd_linger();
		return EX_CONFIG;
	}
	priv_policy_set(pol);
	if ((vd = domain_lookup_addr(&t, (struct sockaddr *)&ss, sslen)) ==
	    NULL) {
		log_warnx("inetd: no service for address %s",
		    domain_addr_text((struct sockaddr *)&ss, a, sizeof(a)));
		(void)write_all(1, PM_NO_SERVICE, strlen(PM_NO_SERVICE));
		listen_inetd_linger();
		return EX_UNAVAILABLE;
	}
	if ((md = pm_domain_load(vd, &sc, &d, 0)) == NULL) {
		(void)write_all(1, PM_CONF_ERROR, strlen(PM_CONF_ERROR));
		listen_inetd_linger();
		return EX_CONFIG;
	}
	/* The port says whether the client starts with a ClientHello. */
	tls = pc.port_tls != 0 && pm_port(&ss) == pc.port_tls;
	if (tls && !md->has_tls) {
		log_warnx("inetd: %s has no certificate for port %d",
		    md->sd.name, pc.port_tls);
		return EX_CONFIG;
	}
	memset(&conn, 0, sizeof(conn));
	conn.fd = 0;
	conn.peer = peer;
	conn.has_tls = md->has_tls;
	conn.tls_implicit = tls;
	/* No master here: this process stays behind as the log relay. */
	conn.relay_fd = relay_inetd_start(md->sd.name, vd->dir);
	conn.pol = pol;
	auth_session_main(&md->sd, &pc, &conn);
}

static int
pm_ss_equal(const struct plisten *a, const struct plisten *b)
{
	return a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

static void	pm_accept(int, int, void *);

/* A line from one of md's processes: stamped with md's name. */
static void
pm_relay(int fd, int events, void *arg)
{
	struct pdomain	*md = arg;

	(void)events;
	(void)log_relay_read(fd, md->sd.name);
}

/*
 * md's log relay, taken over from the domain of the same root in old
 * (a reload: live sessions keep logging), else a new one.
 */
static void
pm_relay_domain(struct pdomain *md, struct pdomain *old)
{
	struct pdomain	*o;

	for (o = old; o != NULL; o = o->next)
		if (o->relay[0] != -1 && strcmp(o->vd.dir, md->vd.dir) == 0) {
			(void)ev_del(pm.loop, o->relay[0]);
			md->relay[0] = o->relay[0];
			md->relay[1] = o->relay[1];
			o->relay[0] = o->relay[1] = -1;
			break;
		}
	if (md->relay[0] == -1 && log_relay_pair(md->relay) == -1) {
		log_warn("%s: log relay", md->sd.name);
		md->relay[0] = md->relay[1] = -1;
		return;
	}
	if (ev_add(pm.loop, md->relay[0], EV_READ, pm_relay, md) == -1)
		fatal("ev_add");
}

/* Listeners for md, taking over equal ones from old (a reload):
 * pop3_port, and pop3s_port when the domain has a certificate. */
static void
pm_bind_domain(struct pdomain *md, struct pdomain *old)
{
	struct plisten	 l;
	struct pdomain	*o;
	const char	*err;
	size_t		 i, k;
	int		 p, port;

	if (pm.pc.listen_any)
		return;
	md->ls = xcalloc(2 * md->vd.naddrs + 1, sizeof(*md->ls));
	for (p = 0; p < 2; p++) {
		port = p == 0 ? pm.pc.port : pm.pc.port_tls;
		if (port == 0 || (p == 1 && !md->has_tls))
			continue;
		for (i = 0; i < md->vd.naddrs; i++) {
			memset(&l, 0, sizeof(l));
			l.fd = -1;
			l.md = md;
			l.tls = p == 1;
			domain_addr_sockaddr(&md->vd.addrs[i], port, &l.ss,
			    &l.sslen);
			for (o = old; o != NULL && l.fd == -1; o = o->next)
				for (k = 0; k < o->nls; k++)
					if (o->ls[k].fd != -1 &&
					    pm_ss_equal(&o->ls[k], &l)) {
						l.fd = o->ls[k].fd;
						(void)ev_del(pm.loop, l.fd);
						o->ls[k].fd = -1;
						break;
					}
			if (l.fd == -1 && (l.fd = listen_bind(&l.ss, l.sslen,
			    &err)) == -1) {
				log_warn("%s: %s %s port %d", md->sd.name, err,
				    md->vd.addrs[i].text, port);
				continue;
			}
			md->ls[md->nls] = l;
			if (ev_add(pm.loop, l.fd, EV_READ, pm_accept,
			    &md->ls[md->nls]) == -1)
				fatal("ev_add");
			md->nls++;
		}
	}
	if (md->nls == 0)
		log_warnx("%s: no listening socket", md->sd.name);
}

static void
pm_lookup_rebuild(void)
{
	struct pdomain	*md;
	size_t		 n = 0;

	free(pm.lookup.domains);
	free(pm.lookup_md);
	for (md = pm.domains; md != NULL; md = md->next)
		n++;
	pm.lookup.domains = xcalloc(n + 1, sizeof(*pm.lookup.domains));
	pm.lookup_md = xcalloc(n + 1, sizeof(*pm.lookup_md));
	pm.lookup.ndomains = 0;
	for (md = pm.domains; md != NULL; md = md->next) {
		pm.lookup.domains[pm.lookup.ndomains] = md->vd;
		pm.lookup_md[pm.lookup.ndomains++] = md;
	}
}

/* The client address as 16 bytes, IPv4 as v4-mapped. */
static void
pm_addr_key(const struct sockaddr_storage *ss, unsigned char *key)
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr,
		    4);
	} else if (ss->ss_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    16);
}

static void
pm_accept(int fd, int events, void *arg)
{
	struct plisten		*l = arg;
	struct pop3_conn	 conn;
	struct sockaddr_storage	 ss, peer;
	socklen_t		 sslen, plen;
	const struct domain	*vd;
	struct pdomain		*md;
	unsigned char		 key[16];
	char			 a[64];
	size_t			 i, same;
	pid_t			 pid;
	int			 cfd, k;

	(void)events;
	for (k = 0; k < PM_ACCEPT_BURST; k++) {
		plen = sizeof(peer);
		cfd = accept4(fd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		md = l->md;
		if (md == NULL) {
			sslen = sizeof(ss);
			if (getsockname(cfd, (struct sockaddr *)&ss, &sslen) ==
			    -1) {
				log_warn("getsockname");
				(void)close(cfd);
				continue;
			}
			vd = domain_lookup_addr(&pm.lookup,
			    (struct sockaddr *)&ss, sslen);
			md = vd != NULL ? pm.lookup_md[vd -
			    pm.lookup.domains] : NULL;
			if (md == NULL) {
				log_info("no service for this address "
				    "local=%s", domain_addr_text(
				    (struct sockaddr *)&ss, a, sizeof(a)));
				(void)send(cfd, PM_NO_SERVICE,
				    strlen(PM_NO_SERVICE), MSG_NOSIGNAL |
				    MSG_DONTWAIT);
				(void)close(cfd);
				continue;
			}
		}
		if (l->tls && !md->has_tls) {
			/* No plaintext reply on a TLS port. */
			log_info("%s: no certificate for port %d local "
			    "address", md->sd.name, pm.pc.port_tls);
			(void)close(cfd);
			continue;
		}
		pm_addr_key(&peer, key);
		for (i = 0, same = 0; i < pm.nsess; i++)
			same += memcmp(pm.sess[i].addr, key, 16) == 0;
		if (pm.nsess >= pm.pc.sessions_max ||
		    same >= pm.pc.sessions_per_ip_max) {
			log_info("%s: session limit peer=%s sessions=%zu "
			    "from_peer=%zu", md->sd.name, domain_addr_text(
			    (struct sockaddr *)&peer, a, sizeof(a)),
			    pm.nsess, same);
			(void)send(cfd, PM_BUSY, strlen(PM_BUSY),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)close(cfd);
			continue;
		}
		if ((pid = fork()) == -1) {
			log_warn("fork");
			(void)send(cfd, PM_BUSY, strlen(PM_BUSY),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)close(cfd);
			continue;
		}
		if (pid == 0) {
			/*
			 * Closes epoll and signalfd, restores the mask; the
			 * listeners and everything else but cfd go with
			 * close_range in auth_session_main.
			 */
			ev_loop_free(pm.loop);
			pm.loop = NULL;
			memset(&conn, 0, sizeof(conn));
			conn.fd = cfd;
			conn.peer = peer;
			conn.has_tls = md->has_tls;
			conn.tls_implicit = l->tls;
			conn.relay_fd = md->relay[1];
			conn.pol = pm.pol;
			auth_session_main(&md->sd, &pm.pc, &conn);
		}
		(void)close(cfd);
		if (pm.nsess == pm.capsess) {
			pm.capsess = pm.capsess ? pm.capsess * 2 : 64;
			pm.sess = xreallocarray(pm.sess, pm.capsess,
			    sizeof(*pm.sess));
		}
		pm.sess[pm.nsess].pid = pid;
		memcpy(pm.sess[pm.nsess].addr, key, 16);
		pm.nsess++;
	}
}

static void
pm_sigchld(int signo, void *arg)
{
	size_t	 i;
	pid_t	 pid;
	int	 status;

	(void)signo;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0 ||
	    (pid == -1 && errno == EINTR)) {
		for (i = 0; i < pm.nsess; i++)
			if (pm.sess[i].pid == pid) {
				pm.sess[i] = pm.sess[--pm.nsess];
				break;
			}
	}
}

static void
pm_sigterm(int signo, void *arg)
{
	size_t	 i;

	(void)arg;
	if (pm.stopping)
		return;
	pm.stopping = 1;
	log_info("signal %d: shutting down sessions=%zu", signo, pm.nsess);
	/* Sessions end without UPDATE: nothing is deleted. */
	for (i = 0; i < pm.nsess; i++)
		(void)kill(pm.sess[i].pid, SIGTERM);
	ev_loop_break(pm.loop);
}

/* SIGHUP: read everything again; live sessions are separate processes. */
static void
pm_sighup(int signo, void *arg)
{
	struct smtpd_conf	 sc;
	struct pop3_conf	 pc;
	struct diag		 d = { pm_diag_log, NULL, 0 };
	struct pdomain		*list, *md, *old;
	struct idpolicy		*pol;
	int			 n = 0;

	(void)signo;
	(void)arg;
	log_info("reload: reading %s and %s", pm.opts.virtual_conf,
	    pm.opts.global_conf);
	if (pm_load(&pm.opts, &sc, &pc, &list, &pol, &d) == -1) {
		log_warnx("reload: errors; configuration unchanged");
		priv_policy_set(pm.pol);
		pm_policy_free(pol);
		return;
	}
	pm_policy_free(pm.pol);
	pm.pol = pol;
	if (pc.port != pm.pc.port || pc.port_tls != pm.pc.port_tls ||
	    pc.listen_any != pm.pc.listen_any) {
		log_warnx("reload: pop3_port, pop3s_port and listen_any "
		    "change only on restart");
		pc.port = pm.pc.port;
		pc.port_tls = pm.pc.port_tls;
		pc.listen_any = pm.pc.listen_any;
	}
	pm.sc = sc;
	pm.pc = pc;
	old = pm.domains;
	pm.domains = list;
	for (md = list; md != NULL; md = md->next) {
		pm_relay_domain(md, old);
		pm_bind_domain(md, old);
		n++;
	}
	while ((md = old) != NULL) {
		old = md->next;
		pm_domain_free(md);
	}
	pm_lookup_rebuild();
	log_info("reload: done domains=%d", n);
}

int
pop3_master_run(const struct daemon_opts *o)
{
	struct diag	 d = { pm_diag_log, NULL, 0 };
	struct pdomain	*md;
	const char	*err;
	int		 n = 0, fam;

	memset(&pm, 0, sizeof(pm));
	pm.opts = *o;
	if (pm_load(o, &pm.sc, &pm.pc, &pm.domains, &pm.pol, &d) == -1) {
		log_warnx("fatal configuration errors; not starting");
		return EX_CONFIG;
	}
	if (d.count > 0)
		log_warnx("%d configuration problem%s; the domains concerned "
		    "do not start", d.count, d.count == 1 ? "" : "s");
	if (!o->debug && daemon(0, 0) == -1)
		fatal("daemon");
	proctitle_set("master");
	(void)signal(SIGPIPE, SIG_IGN);
	if ((pm.loop = ev_loop_new()) == NULL)
		fatal("ev_loop_new");
	if (ev_signal(pm.loop, SIGCHLD, pm_sigchld, NULL) == -1 ||
	    ev_signal(pm.loop, SIGTERM, pm_sigterm, NULL) == -1 ||
	    ev_signal(pm.loop, SIGINT, pm_sigterm, NULL) == -1 ||
	    ev_signal(pm.loop, SIGHUP, pm_sighup, NULL) == -1)
		fatal("ev_signal");
	for (fam = 0; pm.pc.listen_any && fam < 4; fam++) {
		struct plisten *l = &pm.any[pm.nany];
		int port = fam < 2 ? pm.pc.port : pm.pc.port_tls;

		if (port == 0)
			continue;
		l->tls = fam >= 2;
		listen_any_sockaddr(fam % 2 == 0 ? AF_INET : AF_INET6, port,
		    &l->ss, &l->sslen);
		if ((l->fd = listen_bind(&l->ss, l->sslen, &err)) == -1) {
			log_warn("%s wildcard port %d", err, port);
			if (fam % 2 == 0)
				fatalx("cannot listen on the wildcard "
				    "address");
			continue;
		}
		if (ev_add(pm.loop, l->fd, EV_READ, pm_accept, l) == -1)
			fatal("ev_add");
		pm.nany++;
	}
	for (md = pm.domains; md != NULL; md = md->next) {
		pm_relay_domain(md, NULL);
		pm_bind_domain(md, NULL);
		n++;
	}
	pm_lookup_rebuild();
	log_info("starting: %d domain%s, %s, port %d, tls port %d", n,
	    n == 1 ? "" : "s", pm.pc.listen_any ? "wildcard listeners" :
	    "per-address listeners", pm.pc.port, pm.pc.port_tls);
	if (ev_loop_run(pm.loop) == -1)
		log_warn("event loop");
	while ((md = pm.domains) != NULL) {
		pm.domains = md->next;
		pm_domain_free(md);
	}
	ev_loop_free(pm.loop);
	pm.loop = NULL;
	free(pm.lookup.domains);
	free(pm.lookup_md);
	free(pm.sess);
	priv_policy_set(NULL);
	pm_policy_free(pm.pol);
	log_info("stopped");
	return 0;
}
