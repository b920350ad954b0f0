/*
 * virtuald.c — run a service inside the root of the domain that owns the
 * local address of its connection.
 *
 * DESCRIPTION
 *	virtuald [-dRv] [-u user [-g group]] [-s | -l [addr:]port [-m max]]
 *	    conf program [arg ...]
 *
 *	The generic chroot wrapper for inetd, systemd socket activation
 *	(-s, Accept=yes) or its own accept loop (-l).  For each connection
 *	it reads the local address with getsockname(2), finds the domain's
 *	DIR in conf (virtual.conf), enters DIR, becomes an account of the
 *	domain's own etc/passwd (-u user, else the domain's run_as from
 *	its etc/virtmail.conf), and executes program, a path inside DIR,
 *	with the connection on fds 0 and 1.  -R runs program as root of
 *	the root instead, with few capabilities (dangerous: see below).
 *
 * SECURITY
 *	Runs as root (it must chroot).  The only input from the network is
 *	the pair of socket addresses, which the kernel supplies; virtuald
 *	never reads a byte of the connection.  The configuration file is
 *	trusted (root-owned).  The domain root is checked by
 *	priv_enter_root() (root-owned, not group- or world-writable) before
 *	chroot; with -u the account is looked up in DIR/etc/passwd before
 *	the chroot, uid 0 is refused, and privileges are dropped so that
 *	root cannot be regained before program runs.  The account is
 *	-u's, else run_as of the domain's etc/virtmail.conf (read inside
 *	the root); with neither, the connection is refused and logged.
 *
 *	Every account passes the id policy (idrange.h): its uid and gids
 *	are not the host's, are inside the domain's uids= range when it
 *	has one, and belong to no other domain.  The process is bound to
 *	the domain (priv_domain_bind) before the lookup, so with a range
 *	the kernel refuses set*id outside it in program and its children.
 *	no_new_privs is not set for an account (PRIV_BIND_SETID_EXEC):
 *	the setgid virtmail-sendmail inside a root must keep working.
 *	Instead the bounding set is emptied before the switch, so a
 *	setuid-root file in the root would give euid 0 but no capability
 *	(it still owns root's files there: keep roots free of them).
 *
 *	-R (dangerous) runs program as uid 0 of the root, as the classic
 *	virtuald did, but never with a capability that reaches outside:
 *	it keeps CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID and
 *	CAP_NET_BIND_SERVICE, plus CAP_SETUID and CAP_SETGID only for a
 *	domain with a range (where the filter holds them to it), in the
 *	bounding, permitted and effective sets; none inheritable, and
 *	no_new_privs.  Still, uid 0 owns every root-owned file of the
 *	root and may signal other uid-0 processes of the host.
 *
 *	An address in no domain is never served from a default: the
 *	connection is closed.
 *
 * DIAGNOSTICS
 *	Through syslog (opened before the chroot), with -d also stderr.
 *	Exit status: sysexits.h codes for usage and configuration errors,
 *	126/127 when program cannot be executed, 0 otherwise (in -l mode,
 *	after SIGTERM).
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/capability.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "idrange.h"
#include "log.h"
#include "passwd.h"
#include "privbind.h"
#include "privdrop.h"

#define VIRTUALD_MAX_CHILDREN	64
#define VIRTUALD_CHILDREN_LIMIT	100000
#define VIRTUALD_BACKLOG	128
#define VIRTUALD_LISTEN_FD	3	/* SD_LISTEN_FDS_START */
#define VIRTUALD_ADDR_MAX	128
#define VIRTUALD_CONF		"etc/virtmail.conf"	/* in the root */
#define VIRTUALD_CONF_MAX	(1024 * 1024)

struct virtuald_opts {
	const char	 *conf;
	char		**argv;		/* program and its arguments */
	const char	 *user;
	const char	 *group;
	const char	 *listen;
	int		  socket_act;
	int		  as_root;	/* -R */
	int		  debug;
	int		  verbose;
	long long	  max_children;
};

static volatile sig_atomic_t	 got_sigchld;
static volatile sig_atomic_t	 got_sigterm;

static void	usage(void) __attribute__((noreturn));
static void	conf_warn(void *, const char *);
static void	sock_text(int, int, char *, size_t);
static void	serve(const struct virtuald_opts *) __attribute__((noreturn));
static int	socket_activation(void);
static int	listen_open(const char *);
static void	listen_loop(const struct virtuald_opts *, int)
		    __attribute__((noreturn));
static void	sig_handler(int);

static void
usage(void)
{
	fprintf(stderr, "usage: virtuald [-dRv] [-u user [-g group]] "
	    "[-s | -l [addr:]port [-m max]]\n"
	    "                conf program [arg ...]\n");
	exit(EX_USAGE);
}

/* Report a bad line of conf; the others still work. */
static void
conf_warn(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

/*
 * The local (peer == 0) or remote (peer == 1) address of fd as text, or
 * "unknown".  IPv4-mapped IPv6 addresses are shown as IPv4.
 */
static void
sock_text(int fd, int peer, char *dst, size_t size)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 r;

	if (peer)
		r = getpeername(fd, (struct sockaddr *)&ss, &len);
	else
		r = getsockname(fd, (struct sockaddr *)&ss, &len);
	if (r == -1 || domain_addr_text((struct sockaddr *)&ss, dst,
	    size) == NULL)
		(void)strlcpy(dst, "unknown", size);
}

/*
 * The first run_as of the domain's etc/virtmail.conf, read inside the
 * root, into dst; 0, or -1 (none, or unreadable) with *why_r.
 */
static int
run_as_read(const char *dir, char *dst, size_t size, const char **why_r)
{
	struct buf	 b;
	const char	*line, *next, *err;
	char		 val[PASSWD_NAME_MAX + 1];
	size_t		 kn, vn;
	int		 fd, rv = -1;

	if ((fd = file_open_in_root(dir, VIRTUALD_CONF, O_RDONLY |
	    O_NONBLOCK)) == -1) {
		*why_r = errno == ENOENT ? "no " VIRTUALD_CONF :
		    "cannot open " VIRTUALD_CONF;
		return -1;
	}
	buf_init(&b, VIRTUALD_CONF_MAX);
	if (file_read_fd(fd, VIRTUALD_CONF_MAX, &b, &err) == -1) {
		*why_r = "cannot read " VIRTUALD_CONF;
		goto out;
	}
	*why_r = "no run_as in " VIRTUALD_CONF;
	for (line = buf_cstr(&b); *line != '\0'; line = next) {
		next = line + strcspn(line, "\n");
		if (*next == '\n')
			next++;
		line += strspn(line, " \t");
		kn = strcspn(line, " \t\r\n#");
		if (kn != strlen("run_as") || strncmp(line, "run_as", kn) != 0)
			continue;
		line += kn + strspn(line + kn, " \t");
		vn = strcspn(line, " \t\r\n#");
		if (vn == 0 || vn >= sizeof(val)) {
			*why_r = "bad run_as in " VIRTUALD_CONF;
			goto out;
		}
		memcpy(val, line, vn);
		val[vn] = '\0';
		if (!passwd_name_valid(val) || strlcpy(dst, val, size) >=
		    size) {
			*why_r = "bad run_as in " VIRTUALD_CONF;
			goto out;
		}
		rv = 0;
		break;
	}
 out:
	buf_free(&b);
	(void)close(fd);
	return rv;
}

/* Empty the bounding set: nothing exec'd may gain a capability. */
static int
caps_bound_clear(void)
{
	int	 cap;

	for (cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == -1) {
			if (errno == EINVAL)
				break;
			return -1;
		}
	return 0;
}

/*
 * -R: keep root's capabilities for files of the root only (see the
 * header), set/getid ones only where a range holds them.
 */
static int
caps_root_limit(const struct domain *dom, const char **error_r)
{
	int	 keep[8];
	size_t	 n = 0;

	keep[n++] = CAP_CHOWN;
	keep[n++] = CAP_DAC_OVERRIDE;
	keep[n++] = CAP_FOWNER;
	keep[n++] = CAP_FSETID;
	keep[n++] = CAP_NET_BIND_SERVICE;
	if (domain_has_range(dom)) {
		keep[n++] = CAP_SETGID;
		keep[n++] = CAP_SETUID;
	}
	if (priv_limit_caps(keep, n, error_r) == -1)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		*error_r = "prctl(PR_SET_NO_NEW_PRIVS) failed";
		return -1;
	}
	return 0;
}

/*
 * Serve the connection on fd 0: find the domain, enter its root, become
 * the account (-u, else run_as; -R: stay root with few capabilities),
 * exec the program.  Never returns.
 */
static void
serve(const struct virtuald_opts *o)
{
	struct domain_table	 t;
	struct diag		 d;
	struct sockaddr_storage	 ss;
	struct priv_user	 u;
	struct idpolicy		 pol;
	struct diag		 pd;
	const struct domain	*dom;
	const char		*error, *user = o->user;
	char			 local[VIRTUALD_ADDR_MAX];
	char			 run_as[PASSWD_NAME_MAX + 1];
	char			 peer[VIRTUALD_ADDR_MAX];
	socklen_t		 len = sizeof(ss);
	gid_t			 gid;
	int			 save;

	memset(&t, 0, sizeof(t));
	memset(&d, 0, sizeof(d));
	d.fn = conf_warn;

	if (getsockname(STDIN_FILENO, (struct sockaddr *)&ss, &len) == -1) {
		log_warn("getsockname on fd 0 (not a socket?)");
		exit(EX_OSERR);
	}
	sock_text(STDIN_FILENO, 0, local, sizeof(local));
	sock_text(STDIN_FILENO, 1, peer, sizeof(peer));

	if (domain_table_load(&t, o->conf, &d, &error) == -1) {
		log_warnx("peer=%s local=%s: cannot load %s: %s", peer, local,
		    o->conf, error);
		exit(EX_NOINPUT);
	}
	dom = domain_lookup_addr(&t, (struct sockaddr *)&ss, len);
	if (dom == NULL) {
		log_warnx("peer=%s local=%s: no domain for this address "
		    "in %s, closing", peer, local, o->conf);
		exit(EX_CONFIG);
	}
	log_set_domain(dom->name);

	/*
	 * The id policy, as of this connection's table, and this process
	 * bound to the domain for good: the lookup below and the kernel
	 * (with a range) hold the ids to the domain's.
	 */
	memset(&pd, 0, sizeof(pd));
	pd.fn = conf_warn;
	if (idpolicy_build(&pol, &t, IDPOLICY_HOST_PASSWD,
	    IDPOLICY_HOST_GROUP, &pd, &error) == -1) {
		log_warnx("peer=%s local=%s: id policy: %s", peer, local,
		    error);
		exit(EX_OSERR);
	}
	if (pd.count > 0) {
		log_warnx("peer=%s local=%s: %s: uid ranges in error, "
		    "refusing to serve", peer, local, o->conf);
		exit(EX_CONFIG);
	}
	if (priv_domain_bind(&pol, dom, o->as_root ? 0 :
	    PRIV_BIND_SETID_EXEC, &error) == -1) {
		log_warnx("peer=%s local=%s dir=%s: %s", peer, local,
		    dom->dir, error);
		exit(EX_OSERR);
	}

	if (user == NULL && !o->as_root) {
		if (run_as_read(dom->dir, run_as, sizeof(run_as), &error) ==
		    -1) {
			log_warnx("peer=%s local=%s dir=%s: %s and no -u: "
			    "refusing to run %s as root (-R)", peer, local,
			    dom->dir, error, o->argv[0]);
			exit(EX_NOUSER);
		}
		user = run_as;
	}
	if (user != NULL) {
		if (priv_lookup_user(dom->dir, user, &u, &error) == -1) {
			log_warnx("peer=%s local=%s dir=%s: user %s: %s",
			    peer, local, dom->dir, user, error);
			exit(EX_NOUSER);
		}
		if (o->group != NULL) {
			if (priv_lookup_group(dom->dir, o->group, &gid,
			    &error) == -1) {
				log_warnx("peer=%s local=%s dir=%s: "
				    "group %s: %s", peer, local, dom->dir,
				    o->group, error);
				exit(EX_NOUSER);
			}
			/* -g replaces the primary group, listed first. */
			u.gid = gid;
			if (u.ngroups == 0)
				u.ngroups = 1;
			u.groups[0] = gid;
		}
	}

	log_info("connection peer=%s local=%s dir=%s program=%s user=%s",
	    peer, local, dom->dir, o->argv[0],
	    user != NULL ? user : "root (-R)");

	if (user != NULL && caps_bound_clear() == -1) {
		log_warn("peer=%s local=%s: dropping the bounding set", peer,
		    local);
		exit(EX_OSERR);
	}
	/* The service gets 0-2 and nothing else of ours (syslog stays). */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {
		log_warn("peer=%s local=%s: close_range", peer, local);
		exit(EX_OSERR);
	}
	if (priv_enter_root(dom->dir, user != NULL ? &u : NULL,
	    &error) == -1) {
		log_warnx("peer=%s local=%s: cannot enter %s: %s", peer,
		    local, dom->dir, error);
		/* Perhaps already chrooted: see below. */
		_exit(EX_OSERR);
	}
	/*
	 * Inside the root from here on: leave with _exit(), since atexit
	 * handlers (a sanitizer's leak check, say) may need files that
	 * the root does not have.  Nothing is buffered: syslog and stderr
	 * are written at once.
	 */
	if (user == NULL && caps_root_limit(dom, &error) == -1) {
		log_warnx("peer=%s local=%s: -R: %s", peer, local, error);
		_exit(EX_OSERR);
	}
	if (user != NULL) {
		if (setenv("HOME", u.home, 1) == -1 ||
		    setenv("USER", u.name, 1) == -1 ||
		    setenv("LOGNAME", u.name, 1) == -1) {
			log_warn("setenv");
			_exit(EX_OSERR);
		}
	}
	execv(o->argv[0], o->argv);
	save = errno;
	log_warn("peer=%s local=%s: cannot execute %s inside the root",
	    peer, local, o->argv[0]);
	_exit(save == ENOENT ? 127 : 126);
}

/*
 * systemd socket activation with Accept=yes: the connection is fd 3.
 * Move it to fds 0 and 1 and clear the variables meant for us.
 */
static int
socket_activation(void)
{
	const char	*s, *errstr;
	long long	 pid;

	if ((s = getenv("LISTEN_PID")) == NULL) {
		log_warnx("-s: LISTEN_PID not set");
		return -1;
	}
	pid = strtonum(s, 1, INT_MAX, &errstr);
	if (errstr != NULL || (pid_t)pid != getpid()) {
		log_warnx("-s: LISTEN_PID=%s is not this process", s);
		return -1;
	}
	if ((s = getenv("LISTEN_FDS")) == NULL) {
		log_warnx("-s: LISTEN_FDS not set");
		return -1;
	}
	(void)strtonum(s, 1, 1, &errstr);
	if (errstr != NULL) {
		log_warnx("-s: LISTEN_FDS=%s, need exactly 1 (Accept=yes)",
		    s);
		return -1;
	}
	if (fcntl(VIRTUALD_LISTEN_FD, F_GETFD) == -1) {
		log_warn("-s: fd %d", VIRTUALD_LISTEN_FD);
		return -1;
	}
	if (dup2(VIRTUALD_LISTEN_FD, STDIN_FILENO) == -1 ||
	    dup2(VIRTUALD_LISTEN_FD, STDOUT_FILENO) == -1) {
		log_warn("-s: dup2");
		return -1;
	}
	if (close(VIRTUALD_LISTEN_FD) == -1) {
		log_warn("-s: close");
		return -1;
	}
	if (unsetenv("LISTEN_PID") == -1 || unsetenv("LISTEN_FDS") == -1 ||
	    unsetenv("LISTEN_FDNAMES") == -1) {
		log_warn("-s: unsetenv");
		return -1;
	}
	return 0;
}

/*
 * Open the listening socket for "[addr:]port": "25", "192.0.2.10:25",
 * "[2001:db8::10]:25", "*:25".  Without an address, bind the IPv6
 * wildcard with IPV6_V6ONLY off (IPv4 arrives as ::ffff:a.b.c.d), or
 * the IPv4 wildcard where IPv6 is missing.  -1 on error (logged).
 */
static int
listen_open(const char *spec)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	char		 host[VIRTUALD_ADDR_MAX];
	const char	*port, *errstr, *colon;
	int		 fd = -1, on = 1, off = 0, r, wildcard = 0;
	size_t		 n;

	host[0] = '\0';
	if (spec[0] == '[') {
		if ((colon = strstr(spec, "]:")) == NULL) {
			log_warnx("-l %s: expected [addr]:port", spec);
			return -1;
		}
		n = colon - (spec + 1);
		if (n == 0 || n >= sizeof(host)) {
			log_warnx("-l %s: bad address", spec);
			return -1;
		}
		memcpy(host, spec + 1, n);
		host[n] = '\0';
		port = colon + 2;
	} else if ((colon = strrchr(spec, ':')) != NULL) {
		n = colon - spec;
		if (n == 0 || n >= sizeof(host)) {
			log_warnx("-l %s: bad address", spec);
			return -1;
		}
		memcpy(host, spec, n);
		host[n] = '\0';
		port = colon + 1;
		if (strchr(host, ':') != NULL) {
			log_warnx("-l %s: write IPv6 as [addr]:port", spec);
			return -1;
		}
	} else
		port = spec;
	(void)strtonum(port, 1, 65535, &errstr);
	if (errstr != NULL) {
		log_warnx("-l %s: port is %s", spec, errstr);
		return -1;
	}
	if (host[0] == '\0' || strcmp(host, "*") == 0) {
		wildcard = 1;
		(void)strlcpy(host, "::", sizeof(host));
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
again:
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		log_warnx("-l %s: %s", spec, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on)) == -1 ||
		    (wildcard && ai->ai_family == AF_INET6 &&
		    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off,
		    sizeof(off)) == -1) ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
		    listen(fd, VIRTUALD_BACKLOG) == -1) {
			log_warn("-l %s", spec);
			(void)close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	freeaddrinfo(res);
	res = NULL;
	if (fd == -1 && wildcard && strcmp(host, "::") == 0) {
		/* No IPv6 here: fall back to the IPv4 wildcard. */
		(void)strlcpy(host, "0.0.0.0", sizeof(host));
		goto again;
	}
	if (fd == -1)
		log_warnx("-l %s: cannot listen", spec);
	return fd;
}

static void
sig_handler(int sig)
{
	if (sig == SIGCHLD)
		got_sigchld = 1;
	else
		got_sigterm = 1;
}

/*
 * Standalone mode: accept, fork one child per connection (at most
 * o->max_children at once), reap on SIGCHLD, stop on SIGTERM/SIGINT.
 * Signals are blocked except inside ppoll(), so none is lost between
 * the check and the wait.  Children already serving are left to
 * finish, as inetd does.
 */
static void
listen_loop(const struct virtuald_opts *o, int lfd)
{
	struct sigaction	 sa;
	struct pollfd		 pfd;
	sigset_t		 block, waitmask;
	pid_t			 pid;
	long long		 children = 0;
	int			 fd, status;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_handler;
	if (sigemptyset(&sa.sa_mask) == -1 ||
	    sigemptyset(&block) == -1 ||
	    sigaddset(&block, SIGCHLD) == -1 ||
	    sigaddset(&block, SIGTERM) == -1 ||
	    sigaddset(&block, SIGINT) == -1 ||
	    sigprocmask(SIG_BLOCK, &block, &waitmask) == -1 ||
	    sigaction(SIGCHLD, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1)
		fatal("signals");
	if (sigdelset(&waitmask, SIGCHLD) == -1 ||
	    sigdelset(&waitmask, SIGTERM) == -1 ||
	    sigdelset(&waitmask, SIGINT) == -1)
		fatal("sigdelset");
	log_info("listening on %s, program=%s, max children %lld",
	    o->listen, o->argv[0], o->max_children);

	for (;;) {
		if (got_sigchld) {
			got_sigchld = 0;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				children--;
				if (WIFEXITED(status))
					log_debug("child %ld exited %d",
					    (long)pid, WEXITSTATUS(status));
				else if (WIFSIGNALED(status))
					log_debug("child %ld killed by "
					    "signal %d", (long)pid,
					    WTERMSIG(status));
			}
		}
		if (got_sigterm) {
			log_info("stopping, %lld connections still open",
			    children);
			(void)close(lfd);
			exit(0);
		}
		pfd.fd = children < o->max_children ? lfd : -1;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd == -1)
			log_debug("limit of %lld children reached, waiting",
			    o->max_children);
		if (ppoll(&pfd, 1, NULL, &waitmask) == -1) {
			if (errno == EINTR)
				continue;
			fatal("ppoll");
		}
		if ((pfd.revents & POLLIN) == 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1) {
			if (errno != EINTR && errno != EAGAIN &&
			    errno != ECONNABORTED)
				log_warn("accept");
			continue;
		}
		switch ((pid = fork())) {
		case -1:
			log_warn("fork");
			(void)close(fd);
			break;
		case 0:
			(void)close(lfd);
			sa.sa_handler = SIG_DFL;
			if (sigaction(SIGCHLD, &sa, NULL) == -1 ||
			    sigaction(SIGTERM, &sa, NULL) == -1 ||
			    sigaction(SIGINT, &sa, NULL) == -1 ||
			    sigprocmask(SIG_UNBLOCK, &block, NULL) == -1)
				fatal("child signals");
			/* dup2 clears FD_CLOEXEC on the copies. */
			if (dup2(fd, STDIN_FILENO) == -1 ||
			    dup2(fd, STDOUT_FILENO) == -1)
				fatal("dup2");
			if (close(fd) == -1)
				fatal("close");
			serve(o);
			/* NOTREACHED */
		default:
			children++;
			if (close(fd) == -1)
				log_warn("close");
			break;
		}
	}
}

int
main(int argc, char *argv[])
{
	struct virtuald_opts	 o;
	struct domain_table	 t;
	struct diag		 d;
	const char		*errstr, *error;
	int			 ch, lfd;

	memset(&o, 0, sizeof(o));
	o.max_children = VIRTUALD_MAX_CHILDREN;

	/* '+': options end at conf, so program keeps its own options. */
	while ((ch = getopt(argc, argv, "+dg:l:m:Rsu:v")) != -1) {
		switch (ch) {
		case 'd':
			o.debug = 1;
			break;
		case 'g':
			o.group = optarg;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 'm':
			o.max_children = strtonum(optarg, 1,
			    VIRTUALD_CHILDREN_LIMIT, &errstr);
			if (errstr != NULL) {
				fprintf(stderr, "virtuald: -m %s: %s\n",
				    optarg, errstr);
				usage();
			}
			break;
		case 'R':
			o.as_root = 1;
			break;
		case 's':
			o.socket_act = 1;
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'v':
			o.verbose = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2 || (o.socket_act && o.listen != NULL) ||
	    (o.group != NULL && o.user == NULL) ||
	    (o.as_root && o.user != NULL))
		usage();
	o.conf = argv[0];
	o.argv = argv + 1;
	if (o.argv[0][0] != '/') {
		fprintf(stderr, "virtuald: %s: program must be an absolute "
		    "path inside the domain root\n", o.argv[0]);
		exit(EX_USAGE);
	}

	/* Before any chroot: the syslog socket stays open across it. */
	log_init("virtuald", o.debug, o.verbose);

	if (o.socket_act && socket_activation() == -1)
		exit(EX_OSERR);
	if (o.listen == NULL)
		serve(&o);

	/* Standalone: check the table once now, reload it per connection. */
	memset(&t, 0, sizeof(t));
	memset(&d, 0, sizeof(d));
	d.fn = conf_warn;
	if (domain_table_load(&t, o.conf, &d, &error) == -1) {
		log_warnx("cannot load %s: %s", o.conf, error);
		exit(EX_NOINPUT);
	}
	domain_table_free(&t);
	if ((lfd = listen_open(o.listen)) == -1)
		exit(EX_UNAVAILABLE);
	listen_loop(&o, lfd);
}
