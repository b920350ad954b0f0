/*
 * conf.c — virtmail-smtpd's configuration: the global virtmail.conf and
 * each domain's etc/virtmail.conf, read through declarative tables
 * (common/config.h), checked, and turned into struct smtpd_conf and
 * struct smtpd_domain.
 *
 * SECURITY
 *	Runs in the root master (and in -t and -i before the chroot).
 *	The global file is trusted as root's.  A domain's files live in a
 *	tree its own administrator may change, so they are opened
 *	relative to the domain root as if chrooted there (openat2
 *	RESOLVE_IN_ROOT: a symlinked etc/virtmail.conf cannot make root
 *	read a host file and echo it back in an error), must be regular
 *	files, are size-bounded, and every value is checked before use.
 *	Nothing here exits; problems go to the caller's struct diag as
 *	"file:line: message", all of them, before the load fails.
 *
 * CHOICES
 *	run_as has no default: DESIGN.md names "virtmail" as the usual
 *	account but also says a domain without run_as does not start, so
 *	that two domains never share a uid by accident.  A missing run_as
 *	is an error naming the file.
 *	text_line_max defaults to 8192 bytes, not RFC 5321's 1000
 *	(§4.5.3.1.6): real mail carries longer lines, and refusing them
 *	loses mail for no security gain while a bound still exists.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "config.h"
#include "diag.h"
#include "domain.h"
#include "smtpd.h"
#include "tls.h"

#define CONF_DOMAIN_FILE_MAX	(1024 * 1024)
#define CONF_MAILNAME_MAX	(64 * 1024)
#define CONF_HOSTNAME_MAX	253		/* RFC 1035 §2.3.4 */
#define CONF_LOCAL_DOMAINS_MAX	10000

/*
 * The limit keys, shared by both tables.  Bounds: line_max at least
 * RFC 5321's 512 (§4.5.3.1.4), text_line_max at least 1000
 * (§4.5.3.1.6), recipients at least 100 (§4.5.3.1.8).
 */
#define CONF_LIMIT_LINE_MAX(def)	"line_max", CONF_SIZE, def, 512, 1 << 20
#define CONF_LIMIT_ERRORS(def)		"max_errors", CONF_INT, def, 1, 100000
#define CONF_LIMIT_SIZE(def)		"max_message_size", CONF_SIZE, def, \
					    1024, (1LL << 40)
#define CONF_LIMIT_RECEIVED(def)	"max_received", CONF_INT, def, 1, 10000
#define CONF_LIMIT_RCPT(def)		"max_recipients", CONF_INT, def, 100, \
					    1000000
#define CONF_LIMIT_SESSIONS(def)	"max_sessions", CONF_INT, def, 1, \
					    1000000
#define CONF_LIMIT_PER_IP(def)		"max_sessions_per_ip", CONF_INT, def, \
					    1, 1000000
#define CONF_LIMIT_TEXT_LINE(def)	"text_line_max", CONF_SIZE, def, \
					    1000, 1 << 20
#define CONF_LIMIT_T_CMD(def)		"timeout_command", CONF_DURATION, \
					    def, 1, 86400
#define CONF_LIMIT_T_DATA(def)		"timeout_data", CONF_DURATION, def, \
					    1, 86400
#define CONF_LIMIT_T_BLOCK(def)		"timeout_data_block", \
					    CONF_DURATION, def, 1, 86400
#define CONF_LIMIT_T_SESSION(def)	"timeout_session", CONF_DURATION, \
					    def, 1, 7 * 86400

/* virtmail.conf; sorted by name for bsearch. */
static const struct conf_key conf_global_keys[] = {
	{ "delay_warning", CONF_DURATION, "0", 0, 365 * 86400 },
	{ CONF_LIMIT_LINE_MAX("2048") },
	{ "listen_any", CONF_BOOL, "no", 0, 0 },
	{ "log_level", CONF_STR, "info", 0, 0 },
	{ CONF_LIMIT_ERRORS("20") },
	{ CONF_LIMIT_SIZE("50M") },
	{ CONF_LIMIT_RECEIVED("50") },
	{ CONF_LIMIT_RCPT("1000") },
	{ CONF_LIMIT_SESSIONS("1000") },
	{ CONF_LIMIT_PER_IP("20") },
	/* virtmail-pop3d; RFC 1939 §3: the idle timer is at least 10 min. */
	{ "pop3_auth_delay", CONF_DURATION, "2s", 0, 60 },
	{ "pop3_max_auth_failures", CONF_INT, "3", 1, 100 },
	{ "pop3_max_sessions", CONF_INT, "1000", 1, 1000000 },
	{ "pop3_max_sessions_per_ip", CONF_INT, "20", 1, 1000000 },
	{ "pop3_port", CONF_INT, "110", 0, 65535 },
	{ "pop3_timeout", CONF_DURATION, "10m", 1, 86400 },
	{ "pop3s_port", CONF_INT, "995", 0, 65535 },
	/* Seconds are allowed for tests; production values are days. */
	{ "queue_lifetime", CONF_DURATION, "5d", 1, 365 * 86400 },
	{ "retry_max", CONF_DURATION, "1h", 1, 7 * 86400 },
	{ "retry_min", CONF_DURATION, "5m", 1, 7 * 86400 },
	{ "smtp_port", CONF_INT, "25", 0, 65535 },
	{ "smtps_port", CONF_INT, "465", 0, 65535 },
	{ "submission_port", CONF_INT, "587", 0, 65535 },
	{ CONF_LIMIT_TEXT_LINE("8192") },
	{ CONF_LIMIT_T_CMD("300s") },
	{ CONF_LIMIT_T_DATA("30m") },
	{ CONF_LIMIT_T_BLOCK("180s") },
	{ CONF_LIMIT_T_SESSION("1h") },
};

/* A domain's etc/virtmail.conf; sorted by name.  Limits override. */
static const struct conf_key conf_domain_keys[] = {
	{ "allow_plaintext_auth", CONF_BOOL, "no", 0, 0 },
	{ "auth_delay", CONF_DURATION, "2s", 0, 60 },
	{ "auth_max_failures", CONF_INT, "3", 1, 100 },
	{ "domains", CONF_LIST, NULL, 0, 0 },
	{ "hostname", CONF_STR, NULL, 0, 0 },
	{ CONF_LIMIT_LINE_MAX(NULL) },
	{ "mailbox", CONF_STR, "maildir", 0, 0 },
	{ CONF_LIMIT_ERRORS(NULL) },
	{ CONF_LIMIT_SIZE(NULL) },
	{ CONF_LIMIT_RECEIVED(NULL) },
	{ CONF_LIMIT_RCPT(NULL) },
	{ CONF_LIMIT_SESSIONS(NULL) },
	{ CONF_LIMIT_PER_IP(NULL) },
	{ "milter", CONF_MULTI, NULL, 0, 0 },
	{ "received_auth_user", CONF_BOOL, "no", 0, 0 },
	{ "relay_from", CONF_LIST, NULL, 0, 0 },
	{ "route", CONF_MULTI, NULL, 0, 0 },
	{ "run_as", CONF_STR, NULL, 0, 0 },
	{ "sender_login_match", CONF_BOOL, "yes", 0, 0 },
	{ "spf", CONF_STR, "off", 0, 0 },
	{ "spf_helo", CONF_BOOL, "no", 0, 0 },
	{ CONF_LIMIT_TEXT_LINE(NULL) },
	{ CONF_LIMIT_T_CMD(NULL) },
	{ CONF_LIMIT_T_DATA(NULL) },
	{ CONF_LIMIT_T_BLOCK(NULL) },
	{ CONF_LIMIT_T_SESSION(NULL) },
	{ "tls_ca_file", CONF_STR, NULL, 0, 0 },
	{ "tls_cert", CONF_STR, NULL, 0, 0 },
	{ "tls_key", CONF_STR, NULL, 0, 0 },
	{ "tls_pair", CONF_MULTI, NULL, 0, 0 },
	{ "tls_policy", CONF_MULTI, NULL, 0, 0 },
};

#define NKEYS(t)	(sizeof(t) / sizeof((t)[0]))

static void	conf_limits_get(const struct conf *, struct smtpd_limits *,
		    int);
static int	conf_hostname_valid(const char *);
static int	conf_netmask_parse(const char *, struct netmask *);
static int	conf_route_parse(const char *, struct route *);
static int	conf_path_inside(const char *);
static int	conf_tls(struct smtpd_domain *, const struct conf *,
		    const char *, struct diag *);
static int	conf_read_in_root(const char *, const char *, size_t,
		    struct buf *, const char **);
static char	*conf_lower(const char *);

/* Copy the limit keys into l; only_set: leave unset keys alone. */
static void
conf_limits_get(const struct conf *cf, struct smtpd_limits *l, int only_set)
{
#define LIMIT(key, field, type) do {					\
	if (!only_set || conf_isset(cf, key))				\
		l->field = (type)conf_int(cf, key);			\
} while (0)
	LIMIT("line_max", line_max, size_t);
	LIMIT("text_line_max", text_line_max, size_t);
	LIMIT("max_message_size", message_size_max, uint64_t);
	LIMIT("max_recipients", rcpt_max, unsigned int);
	LIMIT("max_errors", errors_max, unsigned int);
	LIMIT("max_sessions", sessions_max, unsigned int);
	LIMIT("max_sessions_per_ip", sessions_per_ip_max, unsigned int);
	LIMIT("max_received", received_max, unsigned int);
	LIMIT("timeout_command", timeout_cmd, unsigned int);
	LIMIT("timeout_data_block", timeout_data_block, unsigned int);
	LIMIT("timeout_session", timeout_session, unsigned int);
	LIMIT("timeout_data", timeout_data_total, unsigned int);
#undef LIMIT
}

int
smtpd_conf_load(struct smtpd_conf *c, const char *path, struct diag *d)
{
	struct conf	 cf;
	const char	*lvl;
	int		 rv;

	memset(c, 0, sizeof(*c));
	if (path == NULL)
		path = DAEMON_GLOBAL_CONF;
	/* The global file is optional: every key has a default. */
	rv = conf_load(&cf, conf_global_keys, NKEYS(conf_global_keys), path,
	    1, d);

	c->port_smtp = (int)conf_int(&cf, "smtp_port");
	c->port_submission = (int)conf_int(&cf, "submission_port");
	c->port_smtps = (int)conf_int(&cf, "smtps_port");
	c->listen_any = conf_bool(&cf, "listen_any");
	c->queue_lifetime = (unsigned int)conf_int(&cf, "queue_lifetime");
	c->retry_min = (unsigned int)conf_int(&cf, "retry_min");
	c->retry_max = (unsigned int)conf_int(&cf, "retry_max");
	c->delay_warning = (unsigned int)conf_int(&cf, "delay_warning");
	conf_limits_get(&cf, &c->limits, 0);

	lvl = conf_str(&cf, "log_level");
	if (lvl != NULL && strcmp(lvl, "debug") == 0)
		c->verbose = 1;
	else if (lvl != NULL && strcmp(lvl, "info") != 0) {
		diag_report(d, path, conf_get(&cf, "log_level")->lineno,
		    "log_level: must be info or debug");
		rv = -1;
	}
	if (c->retry_min > c->retry_max) {
		diag_report(d, path, conf_get(&cf, "retry_min")->lineno,
		    "retry_min: larger than retry_max");
		rv = -1;
	}
	if (c->port_smtp != 0 && (c->port_smtp == c->port_submission ||
	    c->port_smtp == c->port_smtps)) {
		diag_report(d, path, conf_get(&cf, "smtp_port")->lineno,
		    "smtp_port: same as another port");
		rv = -1;
	} else if (c->port_submission != 0 &&
	    c->port_submission == c->port_smtps) {
		diag_report(d, path,
		    conf_get(&cf, "submission_port")->lineno,
		    "submission_port: same as smtps_port");
		rv = -1;
	}
	conf_free(&cf);
	return rv;
}

int
smtpd_conf_load_pop3(struct pop3_conf *p, const char *path, struct diag *d)
{
	struct conf	 cf;
	const char	*lvl;
	int		 rv;

	memset(p, 0, sizeof(*p));
	if (path == NULL)
		path = DAEMON_GLOBAL_CONF;
	rv = conf_load(&cf, conf_global_keys, NKEYS(conf_global_keys), path,
	    1, d);
	p->port = (int)conf_int(&cf, "pop3_port");
	p->listen_any = conf_bool(&cf, "listen_any");
	p->sessions_max = (unsigned int)conf_int(&cf, "pop3_max_sessions");
	p->sessions_per_ip_max = (unsigned int)conf_int(&cf,
	    "pop3_max_sessions_per_ip");
	p->timeout = (unsigned int)conf_int(&cf, "pop3_timeout");
	p->auth_delay = (unsigned int)conf_int(&cf, "pop3_auth_delay");
	p->auth_failures_max = (unsigned int)conf_int(&cf,
	    "pop3_max_auth_failures");
	lvl = conf_str(&cf, "log_level");
	p->verbose = lvl != NULL && strcmp(lvl, "debug") == 0;
	p->port_tls = (int)conf_int(&cf, "pop3s_port");
	conf_free(&cf);
	return rv;
}

/* RFC 1035 letters-digits-hyphen labels; a single trailing dot is not. */
static int
conf_hostname_valid(const char *s)
{
	size_t	 len, label = 0;
	const char *p;

	len = strlen(s);
	if (len == 0 || len > CONF_HOSTNAME_MAX)
		return 0;
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
		if (*p == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && p[-1] != '-';
}

static char *
conf_lower(const char *s)
{
	char	*t, *p;

	if ((t = strdup(s)) == NULL)
		return NULL;
	for (p = t; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return t;
}

/* "192.0.2.0/24", "2001:db8::/32", or a bare address (a host). */
static int
conf_netmask_parse(const char *s, struct netmask *m)
{
	char		 addr[INET6_ADDRSTRLEN + 1];
	const char	*slash, *e;
	size_t		 alen, i, maxbits;
	long long	 bits;

	memset(m, 0, sizeof(*m));
	slash = strchr(s, '/');
	alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, m->addr) == 1) {
		m->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, m->addr) == 1) {
		m->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	if (slash != NULL) {
		bits = strtonum(slash + 1, 0, (long long)maxbits, &e);
		if (e != NULL)
			return -1;
		m->bits = (unsigned int)bits;
	} else
		m->bits = (unsigned int)maxbits;
	/* Clear host bits, so matching is a plain compare. */
	for (i = 0; i < 16; i++) {
		if (i * 8 >= m->bits)
			m->addr[i] = 0;
		else if (i * 8 + 8 > m->bits)
			m->addr[i] &= (uint8_t)(0xff00 >> (m->bits - i * 8));
	}
	return 0;
}

/* "DOMAIN [IP]:PORT" or "DOMAIN [IP]" (port 25). */
static int
conf_route_parse(const char *s, struct route *r)
{
	char		 dom[CONF_HOSTNAME_MAX + 1], ip[INET6_ADDRSTRLEN + 1];
	unsigned char	 tmp[16];
	const char	*p, *close, *e;
	size_t		 n;
	long long	 port = 25;

	memset(r, 0, sizeof(*r));
	n = strcspn(s, " \t");
	if (n == 0 || n >= sizeof(dom))
		return -1;
	memcpy(dom, s, n);
	dom[n] = '\0';
	if (strcmp(dom, "*") != 0 && !conf_hostname_valid(dom))
		return -1;
	p = s + n;
	p += strspn(p, " \t");
	if (*p != '[' || (close = strchr(p, ']')) == NULL)
		return -1;
	n = (size_t)(close - p - 1);
	if (n == 0 || n >= sizeof(ip))
		return -1;
	memcpy(ip, p + 1, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, tmp) != 1 &&
	    inet_pton(AF_INET6, ip, tmp) != 1)
		return -1;
	p = close + 1;
	if (*p == ':') {
		port = strtonum(p + 1, 1, 65535, &e);
		if (e != NULL)
			return -1;
	} else if (*p != '\0')
		return -1;
	if ((r->domain = conf_lower(dom)) == NULL ||
	    (r->host = strdup(ip)) == NULL) {
		free(r->domain);
		r->domain = NULL;
		return -2;
	}
	r->port = (int)port;
	return 0;
}

/* An absolute path inside the root, without ".." components. */
static int
conf_path_inside(const char *p)
{
	const char	*c;

	if (p[0] != '/')
		return 0;
	for (c = p; (c = strstr(c, "..")) != NULL; c += 2)
		if (c[-1] == '/' && (c[2] == '/' || c[2] == '\0'))
			return 0;
	return 1;
}

/*
 * Read rel (relative to root dir) as if chrooted there: symlinks are
 * resolved inside the root, never to a host file.  Regular files only,
 * at most max bytes.  0, or -1 with errno and *error_r.
 */
static int
conf_read_in_root(const char *dir, const char *rel, size_t max,
    struct buf *out, const char **error_r)
{
	int	 fd, rv, saved;

	if ((fd = file_open_in_root(dir, rel, O_RDONLY | O_NONBLOCK)) ==
	    -1) {
		*error_r = "cannot open";
		return -1;
	}
	rv = file_read_fd(fd, max, out, error_r);
	saved = errno;
	(void)close(fd);
	errno = saved;
	return rv;
}

/* Append s to a NULL-ended array of strings; -1 on OOM. */
static int
conf_strv_add(char ***v, size_t *n, const char *s)
{
	char	**nv;

	if ((nv = reallocarray(*v, *n + 2, sizeof(*nv))) == NULL)
		return -1;
	*v = nv;
	if ((nv[*n] = conf_lower(s)) == NULL) {
		nv[*n] = NULL;
		return -1;
	}
	nv[++*n] = NULL;
	return 0;
}

/*
 * Parse etc/mailname: the first line is the default hostname, every
 * word in it is a default local domain.  A missing file is fine.
 */
static int
conf_mailname(struct smtpd_domain *sd, const char *dir, const char *path,
    int want_host, int want_domains, struct diag *d)
{
	struct buf	 b;
	const char	*err;
	char		*p, *line, *w, *save = NULL;
	int		 lineno = 0, rv = 0;

	buf_init(&b, CONF_MAILNAME_MAX);
	if (conf_read_in_root(dir, "etc/mailname", CONF_MAILNAME_MAX, &b,
	    &err) == -1) {
		if (errno != ENOENT) {
			diag_report(d, path, 0, "%s: %s", err,
			    strerror(errno));
			rv = -1;
		}
		buf_free(&b);
		return rv;
	}
	if (b.len == 0 || memchr(b.data, '\0', b.len) != NULL) {
		if (b.len != 0) {
			diag_report(d, path, 0, "NUL byte in file");
			rv = -1;
		}
		buf_free(&b);
		return rv;
	}
	p = b.data;
	while ((line = strsep(&p, "\n")) != NULL) {
		lineno++;
		line[strcspn(line, "#")] = '\0';
		for (w = strtok_r(line, " \t\r,", &save); w != NULL;
		    w = strtok_r(NULL, " \t\r,", &save)) {
			if (!conf_hostname_valid(w)) {
				diag_report(d, path, lineno,
				    "invalid domain name");
				rv = -1;
				continue;
			}
			if (want_host && sd->hostname == NULL &&
			    (sd->hostname = conf_lower(w)) == NULL)
				goto oom;
			if (want_domains) {
				if (sd->nlocal_domains >=
				    CONF_LOCAL_DOMAINS_MAX) {
					diag_report(d, path, lineno,
					    "too many domains");
					rv = -1;
					break;
				}
				if (conf_strv_add(&sd->local_domains,
				    &sd->nlocal_domains, w) == -1)
					goto oom;
			}
		}
	}
	buf_free(&b);
	return rv;

 oom:
	diag_report(d, path, lineno, "out of memory");
	buf_free(&b);
	return -1;
}

int
smtpd_domain_load(struct smtpd_domain *sd, const struct domain *vd,
    const struct smtpd_conf *c, struct diag *d)
{
	struct milter_conf	 mc;
	const char		*merr;
	struct conf		 cf;
	struct buf		 b;
	const struct conf_value	*v;
	const char		*s, *err;
	char			 path[PATH_MAX], mpath[PATH_MAX];
	char * const		*list;
	size_t			 i, n;
	int			 before, r, n1, n2;

	memset(sd, 0, sizeof(*sd));
	before = d->count;
	sd->vd = vd;
	sd->limits = c->limits;
	n1 = snprintf(path, sizeof(path), "%s/%s", vd->dir, SMTPD_DOMAIN_CONF);
	n2 = snprintf(mpath, sizeof(mpath), "%s/etc/mailname", vd->dir);
	if (n1 < 0 || (size_t)n1 >= sizeof(path) || n2 < 0 ||
	    (size_t)n2 >= sizeof(mpath)) {
		diag_report(d, vd->dir, 0, "domain root path too long");
		return -1;
	}
	if ((sd->name = strdup(vd->name)) == NULL)
		goto oom;

	buf_init(&b, CONF_DOMAIN_FILE_MAX);
	if (conf_read_in_root(vd->dir, SMTPD_DOMAIN_CONF,
	    CONF_DOMAIN_FILE_MAX, &b, &err) == -1) {
		diag_report(d, path, 0, "%s: %s", err, strerror(errno));
		buf_free(&b);
		(void)conf_parse(&cf, conf_domain_keys,
		    NKEYS(conf_domain_keys), path, NULL, 0, d);
		conf_free(&cf);
		return -1;
	}
	(void)conf_parse(&cf, conf_domain_keys, NKEYS(conf_domain_keys),
	    path, b.data, b.len, d);
	buf_free(&b);

	conf_limits_get(&cf, &sd->limits, 1);

	if ((s = conf_str(&cf, "hostname")) != NULL) {
		if (!conf_hostname_valid(s))
			diag_report(d, path, conf_get(&cf, "hostname")->lineno,
			    "hostname: invalid host name");
		else if ((sd->hostname = conf_lower(s)) == NULL)
			goto oom_conf;
	}
	list = conf_list(&cf, "domains", &n);
	if (n > CONF_LOCAL_DOMAINS_MAX)
		diag_report(d, path, conf_get(&cf, "domains")->lineno,
		    "domains: too many (limit %d)", CONF_LOCAL_DOMAINS_MAX);
	else
		for (i = 0; i < n; i++) {
			if (!conf_hostname_valid(list[i])) {
				diag_report(d, path,
				    conf_get(&cf, "domains")->lineno,
				    "domains: invalid domain \"%.64s\"",
				    list[i]);
				continue;
			}
			if (conf_strv_add(&sd->local_domains,
			    &sd->nlocal_domains, list[i]) == -1)
				goto oom_conf;
		}
	/* Defaults from etc/mailname, as Debian's MTAs do. */
	(void)conf_mailname(sd, vd->dir, mpath, sd->hostname == NULL,
	    !conf_isset(&cf, "domains"), d);
	if (sd->hostname == NULL && (sd->hostname = conf_lower(vd->name)) ==
	    NULL)
		goto oom_conf;
	if (sd->local_domains == NULL &&
	    (sd->local_domains = calloc(1, sizeof(char *))) == NULL)
		goto oom_conf;

	s = conf_str(&cf, "mailbox");
	if (strcmp(s, "maildir") == 0)
		sd->mailbox_mbox = 0;
	else if (strcmp(s, "mbox") == 0)
		sd->mailbox_mbox = 1;
	else
		diag_report(d, path, conf_get(&cf, "mailbox")->lineno,
		    "mailbox: must be maildir or mbox");

	s = conf_str(&cf, "spf");
	if (strcmp(s, "off") == 0)
		sd->spf_mode = 0;
	else if (strcmp(s, "tag") == 0)
		sd->spf_mode = 1;
	else if (strcmp(s, "reject") == 0)
		sd->spf_mode = 2;
	else
		diag_report(d, path, conf_get(&cf, "spf")->lineno,
		    "spf: must be off, tag or reject");

	if ((s = conf_str(&cf, "run_as")) == NULL)
		diag_report(d, path, 0, "run_as not set: this domain does "
		    "not start (set run_as to an account of the domain's own "
		    "etc/passwd, e.g. \"run_as virtmail\")");
	else if (strchr(s, ' ') != NULL || strchr(s, ':') != NULL ||
	    strchr(s, '/') != NULL || strlen(s) > 32)
		diag_report(d, path, conf_get(&cf, "run_as")->lineno,
		    "run_as: invalid account name");
	else if (strcmp(s, "root") == 0)
		diag_report(d, path, conf_get(&cf, "run_as")->lineno,
		    "run_as: must not be root");
	else if ((sd->run_as = strdup(s)) == NULL)
		goto oom_conf;

	for (i = 0; i < 2; i++) {
		const char *key = i == 0 ? "tls_cert" : "tls_key";
		char **dst = i == 0 ? &sd->tls_cert : &sd->tls_key;

		if ((s = conf_str(&cf, key)) == NULL)
			continue;
		if (!conf_path_inside(s))
			diag_report(d, path, conf_get(&cf, key)->lineno,
			    "%s: must be an absolute path inside the domain "
			    "root, without \"..\"", key);
		else if ((*dst = strdup(s)) == NULL)
			goto oom_conf;
	}
	if (conf_isset(&cf, "tls_cert") != conf_isset(&cf, "tls_key"))
		diag_report(d, path, conf_get(&cf, conf_isset(&cf, "tls_cert") ?
		    "tls_cert" : "tls_key")->lineno,
		    "tls_cert and tls_key go together");
	if (conf_tls(sd, &cf, path, d) == -1)
		goto oom_conf;

	list = conf_list(&cf, "relay_from", &n);
	if (n > 0 && (sd->relay_from = calloc(n, sizeof(*sd->relay_from))) ==
	    NULL)
		goto oom_conf;
	for (i = 0; i < n; i++) {
		if (conf_netmask_parse(list[i],
		    &sd->relay_from[sd->nrelay_from]) == -1) {
			diag_report(d, path,
			    conf_get(&cf, "relay_from")->lineno,
			    "relay_from: invalid network \"%.64s\" (use "
			    "ADDRESS/BITS)", list[i]);
			continue;
		}
		sd->nrelay_from++;
	}

	list = conf_list(&cf, "route", &n);
	if (n > 0 && (sd->routes = calloc(n, sizeof(*sd->routes))) == NULL)
		goto oom_conf;
	v = conf_get(&cf, "route");
	for (i = 0; i < n; i++) {
		r = conf_route_parse(list[i], &sd->routes[sd->nroutes]);
		if (r == -2)
			goto oom_conf;
		if (r == -1) {
			/* MULTI keeps only the last line number. */
			diag_report(d, path, v != NULL ? v->lineno : 0,
			    "route: \"%.80s\": use DOMAIN [IP]:PORT",
			    list[i]);
			continue;
		}
		sd->nroutes++;
	}

	list = conf_list(&cf, "milter", &n);
	if ((sd->milters = calloc(n + 1, sizeof(char *))) == NULL)
		goto oom_conf;
	v = conf_get(&cf, "milter");
	for (i = 0; i < n; i++) {
		if (milter_conf_parse(list[i], &mc, &merr) == -1) {
			/* Syntax: docs/virtmail.conf.5, milter.c. */
			diag_report(d, path, v != NULL ? v->lineno : 0,
			    "milter: \"%.80s\": %s", list[i], merr);
			continue;
		}
		if ((sd->milters[i] = strdup(list[i])) == NULL)
			goto oom_conf;
	}
	/* Keep the array dense after a skipped entry. */
	for (i = 0, n1 = 0; i < n; i++)
		if (sd->milters[i] != NULL)
			sd->milters[n1++] = sd->milters[i];
	sd->milters[n1] = NULL;

	conf_free(&cf);
	return d->count > before ? -1 : 0;

 oom_conf:
	conf_free(&cf);
 oom:
	diag_report(d, path, 0, "out of memory");
	return -1;
}

/*
 * The TLS and AUTH keys of a domain: certificate pairs (tls_cert and
 * tls_key first, then each "tls_pair CERT KEY"), the CA file, the
 * client's per-destination policies, and the AUTH settings.  -1 only
 * when out of memory; problems are reported through d.
 */
static int
conf_tls(struct smtpd_domain *sd, const struct conf *cf, const char *path,
    struct diag *d)
{
	static const char *levels[] = { "none", "may", "encrypt", "verify" };
	const struct conf_value	*v;
	char * const		*list;
	char			 a[PATH_MAX], b[PATH_MAX], extra;
	const char		*s;
	size_t			 i, k, n;
	int			 line;

	sd->auth_fd = -1;
	sd->allow_plaintext_auth = conf_bool(cf, "allow_plaintext_auth");
	sd->sender_login_match = conf_bool(cf, "sender_login_match");
	sd->spf_helo = conf_bool(cf, "spf_helo");
	sd->received_auth = conf_bool(cf, "received_auth_user");
	sd->auth_delay = (unsigned int)conf_int(cf, "auth_delay");
	sd->auth_failures_max = (unsigned int)conf_int(cf,
	    "auth_max_failures");

	list = conf_list(cf, "tls_pair", &n);
	v = conf_get(cf, "tls_pair");
	line = v != NULL ? v->lineno : 0;
	if ((sd->tls_pairs = calloc(n + 1, sizeof(*sd->tls_pairs))) == NULL)
		return -1;
	if (sd->tls_cert != NULL && sd->tls_key != NULL) {
		if ((sd->tls_pairs[0].cert = strdup(sd->tls_cert)) == NULL ||
		    (sd->tls_pairs[0].key = strdup(sd->tls_key)) == NULL)
			return -1;
		sd->ntls_pairs = 1;
	}
	for (i = 0; i < n; i++) {
		/* XXX paths with blanks are not supported here. */
		if (sscanf(list[i], "%4095s %4095s %c", a, b, &extra) != 2 ||
		    !conf_path_inside(a) || !conf_path_inside(b)) {
			diag_report(d, path, line, "tls_pair: \"%.80s\": use "
			    "CERT KEY, absolute paths inside the domain root",
			    list[i]);
			continue;
		}
		k = sd->ntls_pairs;
		if ((sd->tls_pairs[k].cert = strdup(a)) == NULL ||
		    (sd->tls_pairs[k].key = strdup(b)) == NULL)
			return -1;
		sd->ntls_pairs++;
	}
	if (sd->ntls_pairs > TLS_PAIRS_MAX)
		diag_report(d, path, line, "tls_pair: at most %d pairs",
		    TLS_PAIRS_MAX);

	if ((s = conf_str(cf, "tls_ca_file")) != NULL) {
		if (!conf_path_inside(s))
			diag_report(d, path, conf_get(cf, "tls_ca_file")->lineno,
			    "tls_ca_file: must be an absolute path inside the "
			    "domain root");
		else if ((sd->tls_ca_file = strdup(s)) == NULL)
			return -1;
	}

	list = conf_list(cf, "tls_policy", &n);
	v = conf_get(cf, "tls_policy");
	line = v != NULL ? v->lineno : 0;
	if (n > 0 && (sd->tls_policies = calloc(n,
	    sizeof(*sd->tls_policies))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (sscanf(list[i], "%255s %15s %c", a, b, &extra) != 2 ||
		    (strcmp(a, "*") != 0 && !conf_hostname_valid(a))) {
			k = 4;
		} else
			for (k = 0; k < 4; k++)
				if (strcmp(b, levels[k]) == 0)
					break;
		if (k == 4) {
			diag_report(d, path, line, "tls_policy: \"%.80s\": "
			    "use DOMAIN none|may|encrypt|verify", list[i]);
			continue;
		}
		if (k == TLS_POLICY_VERIFY && sd->tls_ca_file == NULL)
			diag_report(d, path, line, "tls_policy %s verify: "
			    "needs tls_ca_file", a);
		if ((sd->tls_policies[sd->ntls_policies].domain =
		    conf_lower(a)) == NULL)
			return -1;
		sd->tls_policies[sd->ntls_policies++].level =
		    (enum tls_policy_level)k;
	}
	return 0;
}

enum tls_policy_level
smtpd_tls_policy(const struct smtpd_domain *sd, const char *domain)
{
	enum tls_policy_level	 any = TLS_POLICY_MAY;
	size_t			 i;

	for (i = 0; i < sd->ntls_policies; i++) {
		if (strcasecmp(sd->tls_policies[i].domain, domain) == 0)
			return sd->tls_policies[i].level;
		if (strcmp(sd->tls_policies[i].domain, "*") == 0)
			any = sd->tls_policies[i].level;
	}
	return any;
}

void
smtpd_domain_free(struct smtpd_domain *sd)
{
	size_t	 i;

	if (sd == NULL)
		return;
	free(sd->name);
	free(sd->hostname);
	if (sd->local_domains != NULL)
		for (i = 0; sd->local_domains[i] != NULL; i++)
			free(sd->local_domains[i]);
	free(sd->local_domains);
	free(sd->run_as);
	free(sd->relay_from);
	for (i = 0; i < sd->nroutes; i++) {
		free(sd->routes[i].domain);
		free(sd->routes[i].host);
	}
	free(sd->routes);
	free(sd->tls_cert);
	free(sd->tls_key);
	for (i = 0; i < sd->ntls_pairs; i++) {
		free((char *)(uintptr_t)sd->tls_pairs[i].cert);
		free((char *)(uintptr_t)sd->tls_pairs[i].key);
	}
	free(sd->tls_pairs);
	for (i = 0; i < sd->ntls_policies; i++)
		free(sd->tls_policies[i].domain);
	free(sd->tls_policies);
	free(sd->tls_ca_file);
	if (sd->milters != NULL)
		for (i = 0; sd->milters[i] != NULL; i++)
			free(sd->milters[i]);
	free(sd->milters);
	memset(sd, 0, sizeof(*sd));
}

int
smtpd_domain_is_local(const struct smtpd_domain *sd, const char *domain)
{
	size_t	 i, len;

	if (domain == NULL || sd->local_domains == NULL)
		return 0;
	/* "alpha.test." is the same domain (RFC 1034 §3.1). */
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0)
		return 0;
	for (i = 0; i < sd->nlocal_domains; i++)
		if (strlen(sd->local_domains[i]) == len &&
		    strncasecmp(sd->local_domains[i], domain, len) == 0)
			return 1;
	return 0;
}

int
smtpd_relay_allowed(const struct smtpd_domain *sd, const struct sockaddr *sa)
{
	static const uint8_t	 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				    0xff, 0xff };
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;
	const struct netmask		*m;
	uint8_t			 a[16];
	int			 fam;
	size_t			 i, full, rest;

	if (sa == NULL)
		return 0;
	memset(a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(a, &s4->sin_addr, 4);
		fam = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (memcmp(s6->sin6_addr.s6_addr, mapped, 12) == 0) {
			/* ::ffff:a.b.c.d is the IPv4 client a.b.c.d. */
			memcpy(a, s6->sin6_addr.s6_addr + 12, 4);
			fam = AF_INET;
		} else {
			memcpy(a, s6->sin6_addr.s6_addr, 16);
			fam = AF_INET6;
		}
	} else
		return 0;

	for (i = 0; i < sd->nrelay_from; i++) {
		m = &sd->relay_from[i];
		if (m->family != fam)
			continue;
		full = m->bits / 8;
		rest = m->bits % 8;
		if (memcmp(a, m->addr, full) != 0)
			continue;
		if (rest != 0 && (a[full] & (uint8_t)(0xff00 >> rest)) !=
		    m->addr[full])
			continue;
		return 1;
	}
	return 0;
}
