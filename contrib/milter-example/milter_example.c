/*
 * milter_example.c — a small content filter built with libmilter, the
 * reference implementation of the milter protocol, to exercise
 * virtmail-smtpd's MTA side (and as an example of a filter).
 *
 * Runs as whatever user starts it; trusts its command line, and
 * treats what the MTA sends as data only.  Every behaviour is chosen
 * by a flag (see virtmail-testmilter in docs/MILTER.md):
 *
 *	-p SOCKET	libmilter socket (inet:PORT@ADDR, unix:PATH)
 *	-a NAME:VALUE	add a header to every message
 *	-i NAME:VALUE	insert a header at the top
 *	-r ADDR		reject RCPT TO:<ADDR>
 *	-t ADDR		tempfail MAIL FROM:<ADDR>
 *	-x ADDR		discard messages for ADDR
 *	-s WORD		Subject containing WORD: rewrite it to "[WORD] ..."
 *	-d NAME		delete the first header NAME
 *	-c REPLY	at end of message, reject with this reply
 *			("550 5.7.0 text"; "\n" separates lines)
 *	-H WORD		reject a message with a header containing WORD
 *	-A ADDR		add recipient ADDR
 *	-D ADDR		delete recipient ADDR
 *	-b WORD		body containing WORD: replace the body
 *	-f ADDR		change the envelope sender to ADDR
 *	-q WORD		body containing WORD: quarantine the message
 *	-g		send progress packets before answering end of message
 *	-w STAGE	hang at STAGE (connect, mail, rcpt, header, eom)
 *	-k STAGE	exit at STAGE
 *	-M STAGE:NAMES	ask for only these macros at STAGE (connect, helo,
 *			mail, rcpt, data, eom, eoh) with smfi_setsymlist(),
 *			and add "X-Milter-Macros:" listing, per stage,
 *			the macros that first became visible there
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static const char *opt_sock, *opt_add, *opt_ins, *opt_rej_rcpt,
    *opt_tmp_from, *opt_disc_rcpt, *opt_subj, *opt_del, *opt_code,
    *opt_hdr_rej, *opt_addrcpt, *opt_delrcpt, *opt_body, *opt_from,
    *opt_quar, *opt_hang, *opt_die;
static int opt_progress;

/* -M: the macro lists, by SMFIM_* stage. */
static const char *const stage_names[] = { "connect", "helo", "mail",
    "rcpt", "data", "eom", "eoh" };
#define NSTAGES	(sizeof(stage_names) / sizeof(stage_names[0]))
static const char *opt_syms[NSTAGES];
static int opt_nsyms;

/* The macros an MTA may send; each one found is reported once. */
static const char *const probe[] = { "j", "_", "{daemon_name}",
    "{if_name}", "{if_addr}", "{client_addr}", "{client_name}",
    "{client_port}", "{tls_version}", "{auth_type}", "{auth_authen}",
    "{mail_mailer}", "{mail_addr}", "{rcpt_mailer}", "{rcpt_addr}", "i" };
#define NPROBE	(sizeof(probe) / sizeof(probe[0]))

struct priv {
	int	 reject_hdr;
	int	 body_hit, quar_hit;
	int	 subj_seen;
	char	 subject[1024];
	int	 discard;
	/* -M: kept for the connection, not reset per message. */
	unsigned long	 seen;
	char		 macros[2048];
};

static void
stage(const char *name)
{
	if (opt_die != NULL && strcmp(opt_die, name) == 0)
		_exit(3);
	if (opt_hang != NULL && strcmp(opt_hang, name) == 0)
		for (;;)
			pause();
}

static struct priv *
priv(SMFICTX *ctx)
{
	struct priv *p = smfi_getpriv(ctx);

	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return NULL;
		(void)smfi_setpriv(ctx, p);
	}
	return p;
}

/* -M: note the macros visible now that were not before. */
static void
see_macros(SMFICTX *ctx, struct priv *p, const char *stage)
{
	size_t	 i, o;
	char	*v;
	int	 first = 1;

	if (opt_nsyms == 0 || p == NULL)
		return;
	for (i = 0; i < NPROBE; i++) {
		if (p->seen & (1UL << i) ||
		    (v = smfi_getsymval(ctx, (char *)probe[i])) == NULL)
			continue;
		p->seen |= 1UL << i;
		o = strlen(p->macros);
		/* "connect: a=1, b=2; mail: c=3" */
		(void)snprintf(p->macros + o, sizeof(p->macros) - o,
		    "%s%s%s%s=%s", first && o > 0 ? "; " : "",
		    first ? stage : "", first ? ": " : ", ", probe[i], v);
		first = 0;
	}
}

static sfsistat
ex_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
    unsigned long f2, unsigned long f3, unsigned long *pf0,
    unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	size_t	 i;

	(void)f2;
	(void)f3;
	if (!(f0 & SMFIF_SETSYMLIST))
		return SMFIS_REJECT;
	for (i = 0; i < NSTAGES; i++)
		if (opt_syms[i] != NULL && smfi_setsymlist(ctx, (int)i,
		    (char *)opt_syms[i]) == MI_FAILURE)
			return SMFIS_REJECT;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT | SMFIF_CHGBODY | SMFIF_CHGFROM | SMFIF_QUARANTINE |
	    SMFIF_SETSYMLIST);
	*pf1 = f1 & (SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA |
	    SMFIP_NOEOH);
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

/* "<a@b>" or "a@b" equal to addr, case-insensitively. */
static int
addr_is(const char *arg, const char *addr)
{
	size_t	 n = strlen(addr);

	if (arg[0] == '<')
		arg++;
	return strncasecmp(arg, addr, n) == 0 && (arg[n] == '\0' ||
	    arg[n] == '>');
}

static sfsistat
ex_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
	(void)host;
	(void)sa;
	stage("connect");
	if (priv(ctx) == NULL)
		return SMFIS_TEMPFAIL;
	see_macros(ctx, priv(ctx), "connect");
	return SMFIS_CONTINUE;
}

static sfsistat
ex_envfrom(SMFICTX *ctx, char **argv)
{
	struct priv *p = priv(ctx);
	struct priv keep;

	stage("mail");
	if (p == NULL)
		return SMFIS_TEMPFAIL;
	keep = *p;
	memset(p, 0, sizeof(*p));
	p->seen = keep.seen;
	memcpy(p->macros, keep.macros, sizeof(p->macros));
	see_macros(ctx, p, "mail");
	if (opt_tmp_from != NULL && addr_is(argv[0], opt_tmp_from))
		return SMFIS_TEMPFAIL;
	return SMFIS_CONTINUE;
}

static sfsistat
ex_envrcpt(SMFICTX *ctx, char **argv)
{
	struct priv *p = priv(ctx);

	stage("rcpt");
	see_macros(ctx, p, "rcpt");
	if (opt_rej_rcpt != NULL && addr_is(argv[0], opt_rej_rcpt)) {
		(void)smfi_setreply(ctx, "550", "5.7.1",
		    "Recipient refused by the example milter");
		return SMFIS_REJECT;
	}
	if (p != NULL && opt_disc_rcpt != NULL &&
	    addr_is(argv[0], opt_disc_rcpt))
		p->discard = 1;
	return SMFIS_CONTINUE;
}

static sfsistat
ex_header(SMFICTX *ctx, char *name, char *value)
{
	struct priv *p = priv(ctx);

	stage("header");
	if (p == NULL)
		return SMFIS_TEMPFAIL;
	if (opt_hdr_rej != NULL && strstr(value, opt_hdr_rej) != NULL)
		p->reject_hdr = 1;
	if (strcasecmp(name, "Subject") == 0 && !p->subj_seen) {
		p->subj_seen = 1;
		(void)snprintf(p->subject, sizeof(p->subject), "%s", value);
	}
	return SMFIS_CONTINUE;
}

static sfsistat
ex_body(SMFICTX *ctx, unsigned char *b, size_t len)
{
	struct priv *p = priv(ctx);

	if (p == NULL)
		return SMFIS_TEMPFAIL;
	if (opt_body != NULL && memmem(b, len, opt_body,
	    strlen(opt_body)) != NULL)
		p->body_hit = 1;
	if (opt_quar != NULL && memmem(b, len, opt_quar,
	    strlen(opt_quar)) != NULL)
		p->quar_hit = 1;
	return SMFIS_CONTINUE;
}

/* "Name:value" into name and value. */
static int
split_header(const char *spec, char *name, size_t size, const char **value)
{
	const char	*c = strchr(spec, ':');

	if (c == NULL || (size_t)(c - spec) >= size)
		return -1;
	memcpy(name, spec, (size_t)(c - spec));
	name[c - spec] = '\0';
	*value = c + 1;
	while (**value == ' ')
		(*value)++;
	return 0;
}

static sfsistat
ex_eom(SMFICTX *ctx)
{
	struct priv	*p = priv(ctx);
	char		 name[256], subj[1200], l1[512], *nl;
	const char	*value;
	static char	 body[] = "This body was replaced by the example "
	    "milter.\r\n";

	stage("eom");
	if (p == NULL)
		return SMFIS_TEMPFAIL;
	if (opt_progress) {
		(void)smfi_progress(ctx);
		(void)smfi_progress(ctx);
	}
	if (p->discard)
		return SMFIS_DISCARD;
	if (p->reject_hdr)
		return SMFIS_REJECT;
	if (opt_code != NULL) {
		(void)snprintf(l1, sizeof(l1), "%s", opt_code);
		if ((nl = strchr(l1, '\n')) != NULL) {
			*nl = '\0';
			(void)smfi_setmlreply(ctx, "550", "5.7.0", l1 + 10,
			    nl + 1 + 10, (char *)NULL);
		} else
			(void)smfi_setreply(ctx, "550", "5.7.0", l1 + 10);
		return SMFIS_REJECT;
	}
	see_macros(ctx, p, "eom");
	if (opt_nsyms > 0)
		(void)smfi_addheader(ctx, "X-Milter-Macros", p->macros);
	if (opt_add != NULL && split_header(opt_add, name, sizeof(name),
	    &value) == 0)
		(void)smfi_addheader(ctx, name, (char *)value);
	if (opt_ins != NULL && split_header(opt_ins, name, sizeof(name),
	    &value) == 0)
		(void)smfi_insheader(ctx, 0, name, (char *)value);
	if (opt_subj != NULL && strstr(p->subject, opt_subj) != NULL) {
		(void)snprintf(subj, sizeof(subj), "[%s] %s", opt_subj,
		    p->subject);
		(void)smfi_chgheader(ctx, "Subject", 1, subj);
	}
	if (opt_del != NULL)
		(void)smfi_chgheader(ctx, (char *)opt_del, 1, NULL);
	if (opt_addrcpt != NULL)
		(void)smfi_addrcpt(ctx, (char *)opt_addrcpt);
	if (opt_delrcpt != NULL)
		(void)smfi_delrcpt(ctx, (char *)opt_delrcpt);
	if (opt_from != NULL)
		(void)smfi_chgfrom(ctx, (char *)opt_from, NULL);
	if (p->body_hit)
		(void)smfi_replacebody(ctx, (unsigned char *)body,
		    (int)strlen(body));
	if (p->quar_hit)
		(void)smfi_quarantine(ctx, "marked by the example milter");
	return SMFIS_ACCEPT;
}

static sfsistat
ex_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	(void)smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

int
main(int argc, char **argv)
{
	struct smfiDesc	 d;
	const char	*c;
	size_t		 i;
	int		 ch;

	while ((ch = getopt(argc, argv, "p:a:i:r:t:x:s:d:c:H:A:D:b:f:q:gw:k:M:"))
	    != -1) {
		switch (ch) {
		case 'p': opt_sock = optarg; break;
		case 'a': opt_add = optarg; break;
		case 'i': opt_ins = optarg; break;
		case 'r': opt_rej_rcpt = optarg; break;
		case 't': opt_tmp_from = optarg; break;
		case 'x': opt_disc_rcpt = optarg; break;
		case 's': opt_subj = optarg; break;
		case 'd': opt_del = optarg; break;
		case 'c': opt_code = optarg; break;
		case 'H': opt_hdr_rej = optarg; break;
		case 'A': opt_addrcpt = optarg; break;
		case 'D': opt_delrcpt = optarg; break;
		case 'b': opt_body = optarg; break;
		case 'f': opt_from = optarg; break;
		case 'q': opt_quar = optarg; break;
		case 'g': opt_progress = 1; break;
		case 'w': opt_hang = optarg; break;
		case 'k': opt_die = optarg; break;
		case 'M':
			c = strchr(optarg, ':');
			for (i = 0; c != NULL && i < NSTAGES; i++)
				if (strlen(stage_names[i]) ==
				    (size_t)(c - optarg) && strncmp(optarg,
				    stage_names[i], (size_t)(c - optarg)) == 0)
					break;
			if (c == NULL || i == NSTAGES) {
				fprintf(stderr, "%s: -M STAGE:NAMES\n",
				    argv[0]);
				return 64;
			}
			opt_syms[i] = c + 1;
			opt_nsyms++;
			break;
		default:
			fprintf(stderr, "usage: %s -p SOCKET [rules]\n",
			    argv[0]);
			return 64;
		}
	}
	if (opt_sock == NULL || (opt_code != NULL && strlen(opt_code) < 11)) {
		fprintf(stderr, "%s: -p SOCKET required; -c needs "
		    "\"550 5.7.0 text\"\n", argv[0]);
		return 64;
	}
	memset(&d, 0, sizeof(d));
	d.xxfi_name = "virtmail-example";
	d.xxfi_version = SMFI_VERSION;
	d.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT | SMFIF_CHGBODY | SMFIF_CHGFROM | SMFIF_QUARANTINE;
	d.xxfi_connect = ex_connect;
	d.xxfi_envfrom = ex_envfrom;
	d.xxfi_envrcpt = ex_envrcpt;
	d.xxfi_header = ex_header;
	d.xxfi_body = ex_body;
	d.xxfi_eom = ex_eom;
	d.xxfi_close = ex_close;
	if (opt_nsyms > 0)
		d.xxfi_negotiate = ex_negotiate;
	if (smfi_setconn((char *)opt_sock) == MI_FAILURE ||
	    smfi_register(d) == MI_FAILURE) {
		fprintf(stderr, "%s: cannot set up libmilter\n", argv[0]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
