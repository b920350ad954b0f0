/*
 * master_inetd.c — virtmail-smtpd -i: one session on the connection
 * inetd accepted, served as the domain's worker would serve it.
 *
 * SECURITY
 *	Runs as root, outside any root, until it has found the domain from
 *	getsockname(0), bound itself to the domain's ids (privbind.h), left
 *	its parent behind as the session's log relay (relay_inetd.c),
 *	started the AUTH service and the deliverer (before the keys are
 *	loaded: neither holds one) and loaded the domain's own keys; then
 *	it chroots, becomes run_as and sets no_new_privs before it reads
 *	the first byte of the client.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "diag.h"
#include "domain.h"
#include "fileio.h"
#include "idrange.h"
#include "listen.h"
#include "log.h"
#include "privbind.h"
#include "privdrop.h"
#include "proctitle.h"
#include "relay_inetd.h"
#include "tls.h"
#include "smtpd.h"

static void
inetd_diag_log(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

static int
inetd_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * Inetd mode: move the client's descriptors above stdio (close-on-exec)
 * and put /dev/null on 0 and 1 (and on 2 when inetd passed the socket
 * there too), so that no child (the AUTH service, the SPF checker,
 * which keep stdio) holds the client's connection.  Fds 0 and 1 being
 * one socket, as inetd passes it, become one descriptor.  Root, before
 * the chroot (/dev/null).
 */
static int
inetd_fds(int *rfd, int *wfd)
{
	struct stat	 st0, st1, st2;
	int		 null;

	*rfd = *wfd = -1;
	if (fstat(0, &st0) == -1 || fstat(1, &st1) == -1)
		return -1;
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		return -1;
	if ((*rfd = fcntl(0, F_DUPFD_CLOEXEC, 3)) == -1)
		goto fail;
	if (inetd_same_file(&st0, &st1))
		*wfd = *rfd;
	else if ((*wfd = fcntl(1, F_DUPFD_CLOEXEC, 3)) == -1)
		goto fail;
	if (dup2(null, 0) == -1 || dup2(null, 1) == -1 ||
	    (fstat(2, &st2) == 0 && inetd_same_file(&st0, &st2) &&
	    dup2(null, 2) == -1))
		goto fail;
	if (null > 2 && close(null) == -1)
		return -1;
	return 0;

 fail:
	if (null > 2)
		(void)close(null);
	return -1;
}

/* Inetd mode: a reply to a client that will not be served, then exit. */
static int
inetd_refuse(const char *reply, int status)
{
	(void)write_all(1, reply, strlen(reply));
	listen_inetd_linger();
	return status;
}

/*
 * -i: serve the one connection inetd accepted on fds 0 and 1 as the
 * domain's worker would (master_child): the AUTH service and the
 * deliverer started, then this domain's TLS contexts loaded as root,
 * then the domain's root and run_as account, then the worker's
 * event-loop server with that one session.
 */
int
master_inetd(const struct daemon_opts *o)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	struct smtpd_conf	 c;
	struct domain_table	 t;
	struct smtpd_domain	 sd;
	struct priv_user	 u;
	struct idpolicy		 policy;
	struct diag		 d = { inetd_diag_log, NULL, 0 };
	const struct domain	*vd;
	enum listener_kind	 kind = LISTEN_SMTP;
	const char		*err;
	char			 a[INET6_ADDRSTRLEN];
	int			 port = 0, fds[2];

	if (getsockname(0, (struct sockaddr *)&ss, &sslen) == -1) {
		log_warn("inetd: getsockname on fd 0 (not a socket?)");
		return EX_USAGE;
	}
	if (smtpd_conf_load(&c, o->global_conf, &d) == -1 ||
	    domain_table_load(&t, o->virtual_conf, &d, &err) == -1) {
		log_warnx("inetd: configuration errors");
		return inetd_refuse(SMTPD_REPLY_CONF_ERROR, EX_CONFIG);
	}
	if ((vd = domain_lookup_addr(&t, (struct sockaddr *)&ss, sslen)) ==
	    NULL) {
		log_warnx("inetd: no service for address %s",
		    domain_addr_text((struct sockaddr *)&ss, a, sizeof(a)));
		return inetd_refuse(SMTPD_REPLY_NO_SERVICE, EX_UNAVAILABLE);
	}
	/* As the master's children: this domain's ids only (privbind.h). */
	if (idpolicy_build(&policy, &t, IDPOLICY_HOST_PASSWD,
	    IDPOLICY_HOST_GROUP, &d, &err) == -1 || d.count > 0 ||
	    priv_domain_bind(&policy, vd, 0, &err) == -1) {
		log_warnx("inetd: uid ranges: %s", d.count > 0 ?
		    "configuration errors" : err);
		return inetd_refuse(SMTPD_REPLY_CONF_ERROR, EX_CONFIG);
	}
	if (priv_check_root(vd->dir, &err) == -1 ||
	    smtpd_domain_load(&sd, vd, &c, &d) == -1 ||
	    priv_lookup_user(vd->dir, sd.run_as, &u, &err) == -1) {
		if (d.count == 0)
			log_warnx("inetd: %s", err);
		return inetd_refuse(SMTPD_REPLY_CONF_ERROR, EX_CONFIG);
	}
	log_set_domain(sd.name);
	proctitle_set("inetd %s", sd.name);
	port = listen_sockaddr_port(&ss);
	if (port != 0 && port == c.port_smtps)
		kind = LISTEN_SMTPS;
	else if (port != 0 && port == c.port_submission)
		kind = LISTEN_SUBMISSION;
	if (inetd_fds(&fds[0], &fds[1]) == -1)
		fatal("inetd: the client's descriptors");
	/* No master here: this process stays behind as the log relay. */
	(void)relay_inetd_start(sd.name, vd->dir);
	/* Both forked before the keys are loaded: neither holds one. */
	sd.auth_fd = smtp_auth_start(&sd);
	/* Its one session commits one message at a time. */
	smtp_direct_start(&sd, 1);
	/* This domain's keys only, as root, before the root. */
	if (sd.ntls_pairs > 0 && (sd.tls = tls_server_load(vd->dir,
	    sd.tls_pairs, sd.ntls_pairs, &d)) == NULL)
		return inetd_refuse(SMTPD_REPLY_CONF_ERROR, EX_CONFIG);
	/* Before reading a byte from the client. */
	if (priv_enter_root(vd->dir, &u, &err) == -1)
		fatalx("inetd: %s", err);
	explicit_bzero(&u, sizeof(u));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("inetd: PR_SET_NO_NEW_PRIVS");
	smtp_server_inetd(&sd, fds[0], fds[1], kind);
	/*
	 * Leave with _exit(): atexit handlers (a sanitizer's leak check)
	 * may need files the domain's root does not have.  Replies and
	 * log lines are already written.
	 */
	_exit(0);
}
