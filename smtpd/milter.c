/*
 * milter.c — the MTA side of the milter protocol (version 6), as
 * sendmail and Postfix speak it to content filters.
 *
 * DESCRIPTION
 *	Each SMTP session of a domain with "milter" lines gets one
 *	connection per milter, opened when the session starts, in the
 *	worker's event loop with non-blocking sockets.  The session
 *	engine asks a question at each step (smtp_session.h: connect,
 *	HELO, MAIL, RCPT, DATA, each header field, end of header, body
 *	chunks, end of message); milter_sess_ask() sends it, with its
 *	macros, to each milter in configuration order, and the answer
 *	(continue, accept, reject, tempfail, discard, a reply code) goes
 *	back through done().  At the end of message the modifications
 *	the filters send (headers, recipients, sender, body, quarantine)
 *	are collected into the session's struct smtp_mods; the session
 *	applies them before it commits the message.
 *
 *	Packet: uint32 length (network order, counting the command byte)
 *	· command byte · data.  Steps the filter declined at negotiation
 *	(SMFIP_NO*) are not sent; steps it will not answer (SMFIP_NR_*)
 *	are not waited for.
 *
 * SECURITY
 *	Runs in the worker, chrooted and unprivileged.  A milter is a
 *	configured peer but its packets are still parsed as untrusted:
 *	lengths are bounded (MILTER_LEN_MAX), every reply is checked
 *	against the negotiated actions and the step it answers, and a
 *	milter that dies, stalls past its timeout, or sends anything
 *	malformed is dropped for the rest of the session with its
 *	default action (accept, tempfail or reject) applied and logged.
 *	Nothing here blocks: the other sessions of the domain go on.
 *
 * STANDARDS
 *	sendmail libmilter mfdef.h (command and reply letters, flags);
 *	Postfix MILTER_README (macros, defaults).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "event.h"
#include "log.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "xmalloc.h"

#define MILTER_VERSION		6
#define MILTER_CHUNK		65535	/* MILTER_CHUNK_SIZE */

/* Actions we allow (SMFIF_*): all nine. */
#define MF_ADDHDRS	0x01
#define MF_CHGBODY	0x02
#define MF_ADDRCPT	0x04
#define MF_DELRCPT	0x08
#define MF_CHGHDRS	0x10
#define MF_QUARANTINE	0x20
#define MF_CHGFROM	0x40
#define MF_ADDRCPT_PAR	0x80
#define MF_SETSYMLIST	0x100
#define MF_ALL		0x1ff

/* Protocol steps (SMFIP_*). */
#define MP_NOCONNECT	0x1
#define MP_NOHELO	0x2
#define MP_NOMAIL	0x4
#define MP_NORCPT	0x8
#define MP_NOBODY	0x10
#define MP_NOHDRS	0x20
#define MP_NOEOH	0x40
#define MP_NR_HDR	0x80
#define MP_NOUNKNOWN	0x100
#define MP_NODATA	0x200
#define MP_SKIP		0x400
#define MP_NR_CONN	0x1000
#define MP_NR_HELO	0x2000
#define MP_NR_MAIL	0x4000
#define MP_NR_RCPT	0x8000
#define MP_NR_DATA	0x10000
#define MP_NR_UNKN	0x20000
#define MP_NR_EOH	0x40000
#define MP_NR_BODY	0x80000
/* All we honour: not RCPT_REJ, not HDR_LEADSPC. */
#define MP_OFFER	0x0ff7ff

enum mstate {
	M_IDLE,		/* not connected yet */
	M_CONNECTING,
	M_NEGOTIATE,	/* OPTNEG sent */
	M_READY,
	M_DEAD,
};

struct milter {
	struct milter_sess	*ms;
	const struct milter_conf *mc;
	int			 fd;
	enum mstate		 st;
	uint32_t		 actions, proto;
	int			 accept_conn;	/* accepted the connection */
	int			 accept_msg;	/* accepted this message */
	int			 skip_body;
	int			 replbody;	/* replaced the body */
	int			 waiting;	/* a reply is due */
	int			 failed_act;	/* default action to apply */
	struct milter_symlist	*syms;		/* SETSYMLIST, or NULL */
	struct buf		 in, out;
	struct ev_timer		 timer;
};

struct milter_sess {
	struct ev_loop		*loop;
	struct smtp_session	*s;
	void			(*done)(void *);
	void			*arg;
	struct milter		*m;
	size_t			 n;
	/* The question under way. */
	int			 what;		/* enum smtp_ask; -1 none */
	size_t			 cur;		/* milter being asked */
	int			 sent;		/* to m[cur] */
	const char		*data;		/* body chunk */
	size_t			 len, off;
	struct smtp_answer	 ans;
	int			 in_msg;
	int			 dead_act;	/* a failed milter's verdict */
	int			 in_callback;
};

/* ------------------------------------------------------------------ */
/* The configuration line. */

static int
milter_time(const char *v, unsigned int *ms_r)
{
	unsigned long	 n = 0;
	const char	*p;

	for (p = v; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (unsigned long)(*p - '0');
		if (n > 3600)
			return -1;
	}
	if (p == v)
		return -1;
	if (strcmp(p, "ms") == 0)
		*ms_r = (unsigned int)n;
	else if (*p == '\0' || strcmp(p, "s") == 0)
		*ms_r = (unsigned int)n * 1000;
	else
		return -1;
	return *ms_r == 0 ? -1 : 0;
}

static int
milter_port(const char *p, int *port_r)
{
	int	 n = 0;

	if (*p == '\0')
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
		if (n > 65535)
			return -1;
	}
	*port_r = n;
	return n == 0 ? -1 : 0;
}

int
milter_conf_parse(const char *line, struct milter_conf *mc,
    const char **error_r)
{
	char	 copy[512], *tok, *save, *p, *e;
	struct in_addr	 a4;
	struct in6_addr	 a6;

	memset(mc, 0, sizeof(*mc));
	mc->connect_ms = 5000;
	mc->cmd_ms = 10000;
	mc->eom_ms = 30000;
	mc->defact = MILTER_ACT_TEMPFAIL;
	if (strlcpy(copy, line, sizeof(copy)) >= sizeof(copy)) {
		*error_r = "line too long";
		return -1;
	}
	(void)strlcpy(mc->spec, line, sizeof(mc->spec));
	if ((tok = strtok_r(copy, " \t", &save)) == NULL) {
		*error_r = "no socket";
		return -1;
	}
	if (strncmp(tok, "unix:", 5) == 0) {
		mc->family = AF_UNIX;
		p = tok + 5;
		if (p[0] != '/' || strstr(p, "/../") != NULL ||
		    strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			*error_r = "unix: needs an absolute path inside the "
			    "domain root";
			return -1;
		}
		(void)strlcpy(mc->host, p, sizeof(mc->host));
	} else if (strncmp(tok, "inet6:[", 7) == 0) {
		mc->family = AF_INET6;
		p = tok + 7;
		if ((e = strchr(p, ']')) == NULL || e[1] != ':') {
			*error_r = "use inet6:[ADDRESS]:PORT";
			return -1;
		}
		*e = '\0';
		if (inet_pton(AF_INET6, p, &a6) != 1 ||
		    milter_port(e + 2, &mc->port) == -1) {
			*error_r = "use inet6:[ADDRESS]:PORT";
			return -1;
		}
		(void)strlcpy(mc->host, p, sizeof(mc->host));
	} else if (strncmp(tok, "inet:", 5) == 0) {
		mc->family = AF_INET;
		p = tok + 5;
		if ((e = strrchr(p, ':')) == NULL) {
			*error_r = "use inet:ADDRESS:PORT";
			return -1;
		}
		*e = '\0';
		if (strcmp(p, "localhost") == 0)
			p = "127.0.0.1";
		if (inet_pton(AF_INET, p, &a4) != 1 ||
		    milter_port(e + 1, &mc->port) == -1) {
			*error_r = "use inet:IPv4-ADDRESS:PORT (no host names: "
			    "the worker resolves nothing)";
			return -1;
		}
		(void)strlcpy(mc->host, p, sizeof(mc->host));
	} else {
		*error_r = "use inet:HOST:PORT, inet6:[ADDR]:PORT or "
		    "unix:/PATH";
		return -1;
	}
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if ((p = strchr(tok, '=')) == NULL) {
			*error_r = "options are KEY=VALUE";
			return -1;
		}
		*p++ = '\0';
		if (strcmp(tok, "connect_timeout") == 0) {
			if (milter_time(p, &mc->connect_ms) == -1)
				goto badtime;
		} else if (strcmp(tok, "timeout") == 0) {
			if (milter_time(p, &mc->cmd_ms) == -1)
				goto badtime;
		} else if (strcmp(tok, "eom_timeout") == 0) {
			if (milter_time(p, &mc->eom_ms) == -1)
				goto badtime;
		} else if (strcmp(tok, "default") == 0) {
			if (strcmp(p, "accept") == 0)
				mc->defact = MILTER_ACT_ACCEPT;
			else if (strcmp(p, "tempfail") == 0)
				mc->defact = MILTER_ACT_TEMPFAIL;
			else if (strcmp(p, "reject") == 0)
				mc->defact = MILTER_ACT_REJECT;
			else {
				*error_r = "default: accept, tempfail or reject";
				return -1;
			}
		} else {
			*error_r = "unknown option (connect_timeout, timeout, "
			    "eom_timeout, default)";
			return -1;
		}
	}
	return 0;
 badtime:
	*error_r = "bad time (N, Ns or Nms, at most 3600s)";
	return -1;
}

/* ------------------------------------------------------------------ */
/* Packets. */

int
milter_packet_next(const char *in, size_t inlen, size_t max, int *cmd_r,
    const char **data_r, size_t *len_r, size_t *used_r)
{
	uint32_t	 n;

	if (inlen < 4)
		return 0;
	memcpy(&n, in, 4);
	n = ntohl(n);
	if (n == 0 || n > max)
		return -1;
	if (inlen - 4 < n)
		return 0;
	*cmd_r = (unsigned char)in[4];
	*data_r = in + 5;
	*len_r = n - 1;
	*used_r = 4 + (size_t)n;
	return 1;
}

int
milter_packet_put(struct buf *out, int cmd, const void *data, size_t len)
{
	uint32_t	 n;
	char		 c = (char)cmd;

	if (len >= MILTER_LEN_MAX)
		return -1;
	n = htonl((uint32_t)len + 1);
	if (buf_reserve(out, len + 5) == -1 ||
	    buf_append(out, &n, 4) == -1 || buf_append(out, &c, 1) == -1 ||
	    buf_append(out, data, len) == -1)
		return -1;
	return 0;
}

/*
 * The macro lists of an SMFIC_OPTNEG reply (SMFIF_SETSYMLIST): pairs
 * of uint32 stage and NUL-terminated names.  Like Postfix, an unknown
 * stage is an error, not something to skip.
 */
int
milter_symlist_parse(const char *d, size_t len, struct milter_symlist *sl,
    const char **error_r)
{
	const char	*e;
	uint32_t	 st;
	size_t		 l;

	memset(sl, 0, sizeof(*sl));
	while (len > 0) {
		if (len < 4) {
			*error_r = "truncated macro stage";
			return -1;
		}
		memcpy(&st, d, 4);
		st = ntohl(st);
		d += 4;
		len -= 4;
		if (st >= MILTER_STAGES) {
			*error_r = "unknown macro stage";
			return -1;
		}
		if (sl->set & (1U << st)) {
			*error_r = "macro stage listed twice";
			return -1;
		}
		if ((e = memchr(d, '\0', len)) == NULL) {
			*error_r = "macro list without NUL";
			return -1;
		}
		l = (size_t)(e - d);
		if (l >= MILTER_SYMLIST_MAX) {
			*error_r = "macro list too long";
			return -1;
		}
		memcpy(sl->names[st], d, l + 1);
		sl->set |= 1U << st;
		d += l + 1;
		len -= l + 1;
	}
	return 0;
}

/* Name without its braces: "{x}" and "x" are the same macro. */
static size_t
symname(const char *p, size_t n, const char **name_r)
{
	if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
		p++;
		n -= 2;
	}
	*name_r = p;
	return n;
}

#define SYM_SEP		" ,\t"

int
milter_symlist_has(const struct milter_symlist *sl, int stage,
    const char *name)
{
	const char	*p, *a, *b;
	size_t		 n, an, bn;

	if (stage < 0 || stage >= MILTER_STAGES ||
	    !(sl->set & (1U << stage)))
		return 0;
	an = symname(name, strlen(name), &a);
	for (p = sl->names[stage]; *p != '\0'; p += n) {
		p += strspn(p, SYM_SEP);
		n = strcspn(p, SYM_SEP);
		bn = symname(p, n, &b);
		if (n > 0 && an == bn && memcmp(a, b, an) == 0)
			return 1;
	}
	return 0;
}

/* Append a NUL-terminated string to b. */
static void
put_str(struct buf *b, const char *s)
{
	(void)buf_append(b, s, strlen(s) + 1);
}

static void
put_u32(struct buf *b, uint32_t v)
{
	v = htonl(v);
	(void)buf_append(b, &v, 4);
}

/* ------------------------------------------------------------------ */

static void	ms_finish(struct milter_sess *);
static int	ms_advance(struct milter_sess *);
static void	m_io(int, int, void *);
static void	m_timeout(void *);

static const char *
defact_name(int a)
{
	return a == MILTER_ACT_ACCEPT ? "accept" : a == MILTER_ACT_REJECT ?
	    "reject" : "tempfail";
}

static void
m_close(struct milter *m)
{
	if (m->fd != -1) {
		(void)ev_del(m->ms->loop, m->fd);
		(void)close(m->fd);
		m->fd = -1;
	}
	ev_timer_cancel(m->ms->loop, &m->timer);
	buf_free(&m->in);
	buf_free(&m->out);
	free(m->syms);
	m->syms = NULL;
	m->waiting = 0;
}

/* The milter misbehaved: drop it for the session, default action. */
static void
m_fail(struct milter *m, const char *why)
{
	struct milter_sess *ms = m->ms;

	log_warnx("%s milter %s failed: %s, default=%s", ms->s->id,
	    m->mc->spec, why, defact_name(m->mc->defact));
	m_close(m);
	m->st = M_DEAD;
	if (m->mc->defact != MILTER_ACT_ACCEPT && ms->dead_act == 0)
		ms->dead_act = m->mc->defact == MILTER_ACT_REJECT ?
		    SMTP_V_REJECT : SMTP_V_TEMPFAIL;
}

static void
m_timer(struct milter *m, unsigned int ms)
{
	ev_timer_set(m->ms->loop, &m->timer, ms, m_timeout, m);
}

static void
m_events(struct milter *m)
{
	if (m->fd == -1)
		return;
	if (ev_mod(m->ms->loop, m->fd, EV_READ |
	    (m->out.len > 0 || m->st == M_CONNECTING ? EV_WRITE : 0)) == -1)
		log_warn("ev_mod milter");
}

static void
m_send(struct milter *m, int cmd, const struct buf *b)
{
	if (milter_packet_put(&m->out, cmd, b != NULL ? b->data : NULL,
	    b != NULL ? b->len : 0) == -1)
		m_fail(m, "packet too big");
}

static void
m_connect(struct milter *m)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)&ss;
	socklen_t		 len;
	const struct milter_conf *mc = m->mc;

	memset(&ss, 0, sizeof(ss));
	if (mc->family == AF_UNIX) {
		sun->sun_family = AF_UNIX;
		(void)strlcpy(sun->sun_path, mc->host, sizeof(sun->sun_path));
		len = sizeof(*sun);
	} else if (mc->family == AF_INET6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)mc->port);
		(void)inet_pton(AF_INET6, mc->host, &sin6->sin6_addr);
		len = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)mc->port);
		(void)inet_pton(AF_INET, mc->host, &sin->sin_addr);
		len = sizeof(*sin);
	}
	buf_init(&m->in, MILTER_LEN_MAX + 8);
	buf_init(&m->out, 0);
	m->fd = socket(mc->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (m->fd == -1) {
		m_fail(m, strerror(errno));
		return;
	}
	if (ev_add(m->ms->loop, m->fd, 0, m_io, m) == -1) {
		(void)close(m->fd);
		m->fd = -1;
		m_fail(m, "ev_add");
		return;
	}
	m->st = M_CONNECTING;
	if (connect(m->fd, (struct sockaddr *)&ss, len) == -1 &&
	    errno != EINPROGRESS) {
		m_fail(m, strerror(errno));
		return;
	}
	m_timer(m, mc->connect_ms);
	m_events(m);
}

/* Connected: offer version 6, all actions, the steps we honour. */
static void
m_negotiate(struct milter *m)
{
	struct buf	 b;

	buf_init(&b, 0);
	put_u32(&b, MILTER_VERSION);
	put_u32(&b, MF_ALL);
	put_u32(&b, MP_OFFER);
	m_send(m, 'O', &b);
	buf_free(&b);
	if (m->st == M_DEAD)
		return;
	m->st = M_NEGOTIATE;
	m->waiting = 1;
	m_timer(m, m->mc->connect_ms);
	m_events(m);
}

/* ------------------------------------------------------------------ */
/* Steps, macros, commands. */

struct step {
	int		 cmd;
	uint32_t	 no;	/* SMFIP_NO* */
	uint32_t	 nr;	/* SMFIP_NR_* */
	int		 msg;	/* a message step: skipped after accept */
};

static const struct step steps[] = {
	[SMTP_ASK_CONNECT] =	{ 'C', MP_NOCONNECT, MP_NR_CONN, 0 },
	[SMTP_ASK_HELO] =	{ 'H', MP_NOHELO, MP_NR_HELO, 0 },
	[SMTP_ASK_SPF] =	{ 0, 0, 0, 0 },
	[SMTP_ASK_MAIL] =	{ 'M', MP_NOMAIL, MP_NR_MAIL, 1 },
	[SMTP_ASK_RCPT] =	{ 'R', MP_NORCPT, MP_NR_RCPT, 1 },
	[SMTP_ASK_DATA] =	{ 'T', MP_NODATA, MP_NR_DATA, 1 },
	[SMTP_ASK_HEADER] =	{ 'L', MP_NOHDRS, MP_NR_HDR, 1 },
	[SMTP_ASK_EOH] =	{ 'N', MP_NOEOH, MP_NR_EOH, 1 },
	[SMTP_ASK_BODY] =	{ 'B', MP_NOBODY, MP_NR_BODY, 1 },
	[SMTP_ASK_EOM] =	{ 'E', 0, 0, 1 },
};

/* Stage of a step in SMFIR_SETSYMLIST numbering (SMFIM_*). */
static int
m_stage(int what)
{
	switch (what) {
	case SMTP_ASK_CONNECT:
		return 0;
	case SMTP_ASK_HELO:
		return 1;
	case SMTP_ASK_MAIL:
		return 2;
	case SMTP_ASK_RCPT:
		return 3;
	case SMTP_ASK_DATA:
		return 4;
	case SMTP_ASK_EOM:
		return 5;
	case SMTP_ASK_EOH:
		return 6;
	default:
		return -1;
	}
}

/* The macros sent at each stage unless the filter chose (Postfix's
 * defaults, those we have values for). */
static const char *const m_default[MILTER_STAGES] = {
	"j _ {daemon_name} {if_name} {if_addr} {client_addr} {client_name} "
	    "{client_port}",
	"{tls_version}",
	"{auth_type} {auth_authen} {mail_mailer} {mail_addr}",
	"{rcpt_mailer} {rcpt_addr}",
	"i",
	"i",
	"i",
};

/* The value of macro name (braces optional) now; NULL when unset. */
static const char *
m_value(struct milter *m, const char *p, size_t len, char *tmp,
    size_t size)
{
	struct smtp_session *s = m->ms->s;
	const char	*n, *host = s->sd->hostname != NULL ?
	    s->sd->hostname : "localhost";
	int		 auth = s->authenticated && s->auth_user != NULL;
	size_t		 l = symname(p, len, &n);

#define IS(x)	(l == sizeof(x) - 1 && memcmp(n, x, l) == 0)
	if (IS("j") || IS("if_name"))
		return host;
	if (IS("_")) {
		(void)snprintf(tmp, size, "%s [%s]", s->client_name,
		    s->client_addr);
		return tmp;
	}
	if (IS("daemon_name"))
		return SMTPD_NAME;
	if (IS("if_addr"))
		return s->local_addr[0] != '\0' ? s->local_addr : NULL;
	if (IS("client_addr"))
		return s->client_addr;
	if (IS("client_name"))
		return s->client_name;
	if (IS("client_port")) {
		if (s->peer.ss_family != AF_INET &&
		    s->peer.ss_family != AF_INET6)
			return NULL;
		(void)snprintf(tmp, size, "%u", ntohs(
		    s->peer.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&s->peer)->sin_port :
		    ((struct sockaddr_in6 *)&s->peer)->sin6_port));
		return tmp;
	}
	if (IS("tls_version"))
		return s->tls ? "TLSv1.3" : NULL;
	if (IS("auth_type"))
		return auth ? "PLAIN" : NULL;
	if (IS("auth_authen"))
		return auth ? s->auth_user : NULL;
	if (IS("mail_mailer"))
		return s->sender != NULL ? "smtp" : NULL;
	if (IS("mail_addr"))
		return s->sender;
	if (IS("rcpt_mailer"))
		return s->rcpt_asked != NULL ? "smtp" : NULL;
	if (IS("rcpt_addr"))
		return s->rcpt_asked;
	if (IS("i"))
		return s->w.id[0] != '\0' ? s->w.id : NULL;
#undef IS
	return NULL;
}

/* The macros sent before each command: the filter's list for that
 * stage (SMFIF_SETSYMLIST), else our defaults; names as listed. */
static void
m_macros(struct milter *m, int what)
{
	struct buf	 b;
	char		 tmp[600];
	const char	*list, *p, *v;
	size_t		 n;
	int		 stage = m_stage(what);

	if (stage < 0)
		return;
	list = m->syms != NULL && (m->syms->set & (1U << stage)) ?
	    m->syms->names[stage] : m_default[stage];
	buf_init(&b, 0);
	(void)buf_putc(&b, steps[what].cmd);
	for (p = list; *p != '\0'; p += n) {
		p += strspn(p, SYM_SEP);
		if ((n = strcspn(p, SYM_SEP)) == 0)
			continue;
		if ((v = m_value(m, p, n, tmp, sizeof(tmp))) == NULL)
			continue;
		(void)buf_append(&b, p, n);
		(void)buf_putc(&b, '\0');
		put_str(&b, v);
	}
	m_send(m, 'D', &b);
	buf_free(&b);
}

/* Send the current question to m (one body part at a time). */
static void
m_command(struct milter *m)
{
	struct milter_sess *ms = m->ms;
	struct smtp_session *s = ms->s;
	const struct smtp_header *h;
	struct buf	 b;
	const char	*p;
	size_t		 i;
	uint16_t	 port;
	int		 what = ms->what;

	buf_init(&b, 0);
	if (ms->off == 0 || what != SMTP_ASK_BODY)
		m_macros(m, what);
	switch (what) {
	case SMTP_ASK_CONNECT:
		put_str(&b, s->client_name);
		if (s->peer.ss_family == AF_INET ||
		    s->peer.ss_family == AF_INET6) {
			(void)buf_putc(&b, s->peer.ss_family == AF_INET ?
			    '4' : '6');
			port = s->peer.ss_family == AF_INET ?
			    ((struct sockaddr_in *)&s->peer)->sin_port :
			    ((struct sockaddr_in6 *)&s->peer)->sin6_port;
			(void)buf_append(&b, &port, 2);
			put_str(&b, s->client_addr);
		} else
			(void)buf_putc(&b, 'U');
		break;
	case SMTP_ASK_HELO:
		put_str(&b, s->helo);
		break;
	case SMTP_ASK_MAIL:
		(void)buf_printf(&b, "<%s>", s->sender);
		(void)buf_putc(&b, '\0');
		if (s->mail_args != NULL) {
			char	 copy[1024], *t, *save;

			(void)strlcpy(copy, s->mail_args, sizeof(copy));
			for (t = strtok_r(copy, " ", &save); t != NULL;
			    t = strtok_r(NULL, " ", &save))
				put_str(&b, t);
		}
		break;
	case SMTP_ASK_RCPT:
		(void)buf_printf(&b, "<%s>", s->rcpt_asked);
		(void)buf_putc(&b, '\0');
		break;
	case SMTP_ASK_HEADER:
		h = &s->hdrs[s->nhdrs - 1];
		put_str(&b, h->name);
		p = h->value;
		/* Without SMFIP_HDR_LEADSPC the blanks after ':' go. */
		while (*p == ' ' || *p == '\t')
			p++;
		put_str(&b, p);
		break;
	case SMTP_ASK_BODY:
		/* LF to CRLF, at most MILTER_CHUNK bytes per packet. */
		for (i = ms->off; i < ms->len && b.len < MILTER_CHUNK - 1;
		    i++) {
			if (ms->data[i] == '\n')
				(void)buf_putc(&b, '\r');
			(void)buf_putc(&b, ms->data[i]);
		}
		ms->off = i;
		break;
	default:
		break;
	}
	m_send(m, steps[what].cmd, &b);
	buf_free(&b);
	if (m->st == M_DEAD)
		return;
	ms->sent = 1;
	m->waiting = !(m->proto & steps[what].nr);
	if (m->waiting)
		m_timer(m, what == SMTP_ASK_EOM ? m->mc->eom_ms :
		    m->mc->cmd_ms);
	m_events(m);
}

/* Whether the current question goes to m at all. */
static int
m_wants(struct milter *m, int what)
{
	if (m->st == M_DEAD || m->accept_conn)
		return 0;
	if (steps[what].msg && m->accept_msg)
		return 0;
	if (what == SMTP_ASK_BODY && m->skip_body)
		return 0;
	if (m->proto & steps[what].no)
		return 0;
	return 1;
}

static void
ans_set(struct milter_sess *ms, enum smtp_verdict v, const char *reply)
{
	ms->ans.v = v;
	(void)strlcpy(ms->ans.reply, reply != NULL ? reply : "",
	    sizeof(ms->ans.reply));
}

/* Move the question along; 1 while waiting, 0 when answered. */
static int
ms_advance(struct milter_sess *ms)
{
	struct milter	*m;

	if (ms->what < 0)
		return 0;
	while (ms->cur < ms->n) {
		m = &ms->m[ms->cur];
		if (ms->what == SMTP_ASK_CONNECT && m->st == M_IDLE) {
			m_connect(m);
			if (m->st != M_DEAD)
				return 1;
		}
		if (m->st == M_CONNECTING || m->st == M_NEGOTIATE)
			return 1;
		if (!m_wants(m, ms->what)) {
			ms->cur++;
			ms->sent = 0;
			ms->off = 0;
			continue;
		}
		if (m->waiting || m->out.len > 0)
			return 1;
		if (ms->sent && (ms->what != SMTP_ASK_BODY ||
		    ms->off >= ms->len)) {
			ms->cur++;
			ms->sent = 0;
			ms->off = 0;
			continue;
		}
		m_command(m);
		if (m->st == M_DEAD)
			continue;
		if (m->waiting || m->out.len > 0)
			return 1;
	}
	/* A failed milter with default tempfail/reject decides. */
	if (ms->ans.v == SMTP_V_CONTINUE && ms->dead_act != 0)
		ans_set(ms, (enum smtp_verdict)ms->dead_act, NULL);
	if (ms->what == SMTP_ASK_MAIL)
		ms->in_msg = 1;
	else if (ms->what == SMTP_ASK_EOM)
		ms->in_msg = 0;
	ms->what = -1;
	return 0;
}

/* The question is answered (a final verdict or all milters done). */
static void
ms_finish(struct milter_sess *ms)
{
	ms->cur = ms->n;
}

/* Hand the answer to the session's I/O layer; touch ms no more. */
static void
ms_done(struct milter_sess *ms)
{
	ms->s->ans = ms->ans;
	ms->done(ms->arg);
}

static int
want_action(struct milter *m, uint32_t act)
{
	if (m->actions & act)
		return 1;
	m_fail(m, "modification not negotiated");
	return 0;
}

/* Split data into exactly n NUL-terminated strings (the last may be
 * followed by more when rest_ok). */
static int
strs(const char *d, size_t len, const char **v, size_t n, int rest_ok)
{
	const char	*e;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if ((e = memchr(d, '\0', len)) == NULL)
			return -1;
		v[i] = d;
		len -= (size_t)(e - d) + 1;
		d = e + 1;
	}
	return len == 0 || rest_ok ? 0 : -1;
}

/* One reply packet from m; -1 after m_fail. */
static int
m_reply(struct milter *m, int cmd, const char *d, size_t len)
{
	struct milter_sess *ms = m->ms;
	struct smtp_mods *mods = &ms->s->mods;
	const char	*v[3], *error;
	char		 text[SMTP_REPLY_MAX];
	uint32_t	 u[3];
	size_t		 i, j;

	if (m->st == M_NEGOTIATE) {
		if (cmd != 'O' || len < 12) {
			m_fail(m, "bad negotiation reply");
			return -1;
		}
		memcpy(u, d, 12);
		for (i = 0; i < 3; i++)
			u[i] = ntohl(u[i]);
		if (u[0] < 2 || u[0] > MILTER_VERSION || (u[1] & ~MF_ALL)) {
			m_fail(m, "unsupported version or actions");
			return -1;
		}
		/* Macro lists (SMFIF_SETSYMLIST, which we offer) may
		 * follow: then only those macros at those stages. */
		if (len > 12) {
			m->syms = xmalloc(sizeof(*m->syms));
			if (milter_symlist_parse(d + 12, len - 12, m->syms,
			    &error) == -1) {
				m_fail(m, error);
				return -1;
			}
		}
		m->actions = u[1];
		m->proto = u[2] & MP_OFFER;
		m->st = M_READY;
		m->waiting = 0;
		ev_timer_cancel(ms->loop, &m->timer);
		return 0;
	}
	if (!m->waiting) {
		m_fail(m, "unexpected packet");
		return -1;
	}
	if (cmd == 'p') {
		/* Progress: keep waiting, with a fresh timer. */
		m_timer(m, ms->what == SMTP_ASK_EOM ? m->mc->eom_ms :
		    m->mc->cmd_ms);
		return 0;
	}
	if (cmd != 0 && strchr("him+2-beq", cmd) != NULL) {
		if (ms->what != SMTP_ASK_EOM) {
			m_fail(m, "modification outside end of message");
			return -1;
		}
		switch (cmd) {
		case 'h':
			if (!want_action(m, MF_ADDHDRS))
				return -1;
			if (strs(d, len, v, 2, 0) == -1 || v[0][0] == '\0')
				goto bad;
			smtp_mods_add(mods, SMTP_MOD_HDR_ADD, 0, v[0], v[1]);
			break;
		case 'i':
		case 'm':
			if (!want_action(m, cmd == 'i' ? MF_ADDHDRS :
			    MF_CHGHDRS))
				return -1;
			if (len < 4 || strs(d + 4, len - 4, v, 2, 0) == -1 ||
			    v[0][0] == '\0')
				goto bad;
			memcpy(u, d, 4);
			smtp_mods_add(mods, cmd == 'i' ? SMTP_MOD_HDR_INSERT :
			    SMTP_MOD_HDR_CHANGE, ntohl(u[0]), v[0], v[1]);
			break;
		case '+':
		case '2':
			if (!want_action(m, cmd == '+' ? MF_ADDRCPT :
			    MF_ADDRCPT_PAR))
				return -1;
			if (strs(d, len, v, 1, cmd == '2') == -1)
				goto bad;
			smtp_mods_add(mods, SMTP_MOD_RCPT_ADD, 0, NULL, v[0]);
			break;
		case '-':
			if (!want_action(m, MF_DELRCPT))
				return -1;
			if (strs(d, len, v, 1, 0) == -1)
				goto bad;
			smtp_mods_add(mods, SMTP_MOD_RCPT_DEL, 0, NULL, v[0]);
			break;
		case 'e':
			if (!want_action(m, MF_CHGFROM))
				return -1;
			if (strs(d, len, v, 1, 1) == -1)
				goto bad;
			smtp_mods_add(mods, SMTP_MOD_SENDER, 0, NULL, v[0]);
			break;
		case 'q':
			if (!want_action(m, MF_QUARANTINE))
				return -1;
			if (strs(d, len, v, 1, 0) == -1)
				goto bad;
			(void)log_clean(text, 256, v[0], strlen(v[0]));
			free(mods->quarantine);
			mods->quarantine = xstrdup(text[0] != '\0' ? text :
			    "quarantined by milter");
			break;
		case 'b':
			if (!want_action(m, MF_CHGBODY))
				return -1;
			if (!m->replbody) {
				/* A new replacement from this milter. */
				buf_reset(&mods->body);
				mods->body_set = 1;
				m->replbody = 1;
			}
			for (i = 0; i < len; i++) {
				if (d[i] == '\r' && i + 1 < len &&
				    d[i + 1] == '\n')
					continue;
				if (buf_putc(&mods->body, d[i]) == -1)
					goto bad;
			}
			break;
		}
		return 0;
	}
	m->waiting = 0;
	ev_timer_cancel(ms->loop, &m->timer);
	switch (cmd) {
	case 'c':
		return 0;
	case 's':
		if (ms->what != SMTP_ASK_BODY)
			goto bad;
		m->skip_body = 1;
		ms->off = ms->len;
		return 0;
	case 'a':
		if (steps[ms->what].msg)
			m->accept_msg = 1;
		else
			m->accept_conn = 1;
		return 0;
	case 'r':
	case 't':
	case 'd':
	case '4':
	case 'f':
		ans_set(ms, cmd == 'r' ? SMTP_V_REJECT : cmd == 't' ?
		    SMTP_V_TEMPFAIL : cmd == 'd' ? SMTP_V_DISCARD :
		    SMTP_V_SHUTDOWN, NULL);
		ms_finish(ms);
		return 0;
	case 'y':
		if (len == 0 || d[len - 1] != '\0' || len > sizeof(text))
			goto bad;
		/* libmilter doubles '%' for sendmail's printf. */
		for (i = 0, j = 0; d[i] != '\0' && j + 1 < sizeof(text); i++) {
			text[j++] = d[i];
			if (d[i] == '%' && d[i + 1] == '%')
				i++;
		}
		text[j] = '\0';
		ans_set(ms, text[0] == '5' ? SMTP_V_REJECT : text[0] == '4' ?
		    SMTP_V_TEMPFAIL : SMTP_V_CONTINUE, text);
		if (ms->ans.v == SMTP_V_CONTINUE)
			goto bad;
		ms_finish(ms);
		return 0;
	}
 bad:
	m_fail(m, "malformed or unexpected reply");
	return -1;
}

static void
m_timeout(void *arg)
{
	struct milter	*m = arg;
	struct milter_sess *ms = m->ms;

	m_fail(m, m->st == M_CONNECTING ? "connect timeout" :
	    "timeout waiting for a reply");
	if (ms_advance(ms) == 0)
		ms_done(ms);
}

static void
m_io(int fd, int events, void *arg)
{
	struct milter	*m = arg;
	struct milter_sess *ms = m->ms;
	const char	*d;
	size_t		 len, used;
	ssize_t		 n;
	int		 cmd, r, err;
	socklen_t	 el = sizeof(err);

	if (m->st == M_CONNECTING) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 ||
		    err != 0) {
			m_fail(m, err != 0 ? strerror(err) : "connect");
			goto out;
		}
		m_negotiate(m);
		goto out;
	}
	if ((events & (EV_WRITE | EV_ERROR)) && m->out.len > 0) {
		n = write(fd, m->out.data, m->out.len);
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			m_fail(m, strerror(errno));
			goto out;
		}
		if (n > 0)
			buf_consume(&m->out, (size_t)n);
	}
	if (events & (EV_READ | EV_ERROR)) {
		if (buf_reserve(&m->in, 65536) == -1) {
			m_fail(m, "reply too big");
			goto out;
		}
		n = read(fd, m->in.data + m->in.len, 65536);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			m_fail(m, n == 0 ? "connection closed" :
			    strerror(errno));
			goto out;
		}
		if (n > 0)
			m->in.len += (size_t)n;
		while (m->st != M_DEAD && (r = milter_packet_next(m->in.data,
		    m->in.len, MILTER_LEN_MAX, &cmd, &d, &len, &used)) != 0) {
			if (r == -1) {
				m_fail(m, "bad packet length");
				break;
			}
			r = m_reply(m, cmd, d, len);
			if (m->st == M_DEAD)
				break;
			buf_consume(&m->in, used);
		}
	}
	if (m->st != M_DEAD)
		m_events(m);
 out:
	if (ms->what >= 0 && ms_advance(ms) == 0)
		ms_done(ms);
}

/* ------------------------------------------------------------------ */

struct milter_sess *
milter_sess_new(struct ev_loop *loop, const struct milter_conf *mc,
    size_t n, struct smtp_session *s, void (*done)(void *), void *arg)
{
	struct milter_sess *ms;
	size_t		 i;

	ms = xcalloc(1, sizeof(*ms));
	ms->loop = loop;
	ms->s = s;
	ms->done = done;
	ms->arg = arg;
	ms->what = -1;
	ms->m = xcalloc(n, sizeof(*ms->m));
	ms->n = n;
	for (i = 0; i < n; i++) {
		ms->m[i].ms = ms;
		ms->m[i].mc = &mc[i];
		ms->m[i].fd = -1;
	}
	return ms;
}

int
milter_sess_ask(struct milter_sess *ms, int what, const char *data,
    size_t len)
{
	size_t	 i;

	memset(&ms->ans, 0, sizeof(ms->ans));
	if (what < 0 || what > SMTP_ASK_EOM || steps[what].cmd == 0)
		return 0;
	for (i = 0; i < ms->n; i++) {
		if (what == SMTP_ASK_MAIL)
			ms->m[i].accept_msg = ms->m[i].skip_body = 0;
		if (what == SMTP_ASK_EOM)
			ms->m[i].replbody = 0;
	}
	/* A milter that failed earlier answers with its default. */
	if (ms->dead_act != 0 && what != SMTP_ASK_CONNECT &&
	    what != SMTP_ASK_HELO) {
		ans_set(ms, (enum smtp_verdict)ms->dead_act, NULL);
		ms->s->ans = ms->ans;
		return 0;
	}
	ms->what = what;
	ms->cur = 0;
	ms->sent = 0;
	ms->data = data;
	ms->len = len;
	ms->off = 0;
	if (ms_advance(ms) == 1)
		return 1;
	ms->s->ans = ms->ans;
	return 0;
}

void
milter_sess_abort(struct milter_sess *ms)
{
	size_t	 i;

	if (!ms->in_msg)
		return;
	ms->in_msg = 0;
	for (i = 0; i < ms->n; i++) {
		if (ms->m[i].st != M_READY)
			continue;
		ms->m[i].accept_msg = ms->m[i].skip_body = 0;
		m_send(&ms->m[i], 'A', NULL);
		m_events(&ms->m[i]);
	}
}

void
milter_sess_free(struct milter_sess *ms)
{
	struct milter	*m;
	size_t		 i;

	if (ms == NULL)
		return;
	for (i = 0; i < ms->n; i++) {
		m = &ms->m[i];
		if (m->st == M_READY && m->fd != -1 &&
		    milter_packet_put(&m->out, 'Q', NULL, 0) == 0)
			/* Best effort: the socket is non-blocking. */
			if (write(m->fd, m->out.data, m->out.len) == -1)
				log_debug("milter quit: %s", strerror(errno));
		if (m->st != M_IDLE && m->st != M_DEAD)
			m_close(m);
		else
			ev_timer_cancel(ms->loop, &m->timer);
	}
	free(ms->m);
	free(ms);
}
