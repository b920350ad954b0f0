/*
 * session.c — POP3 TRANSACTION and UPDATE states (RFC 1939 §5, §6),
 * once the client has authenticated.
 *
 * SECURITY
 *	Runs as the user (uid/gid from the domain's passwd), chrooted
 *	into the domain, with no capability and no_new_privs, forked from
 *	the auth step, which never held a key: no privilege and no
 *	secret but the user's own mail.  Commands are
 *	parsed by pop3_cmd_parse(); message numbers are checked against
 *	the listing taken at login.  A dropped connection or a timeout
 *	deletes nothing (RFC 1939 §6).
 *
 * DIAGNOSTICS
 *	"ID pop3 login user=U messages=N octets=M", then
 *	"ID pop3 logout user=U retr=N dele=N" or "... disconnect ...".
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3d.h"

struct session {
	const struct pop3_session_args *a;
	struct pop3_io		 io;
	struct pop3_mailbox	 mb;
	unsigned int		 nretr, ndele, errors;
};

static void
session_stat(struct session *s, size_t *n_r, uint64_t *octets_r)
{
	size_t	 i;

	*n_r = 0;
	*octets_r = 0;
	for (i = 0; i < s->mb.n; i++)
		if (!s->mb.msgs[i].deleted) {
			(*n_r)++;
			*octets_r += s->mb.msgs[i].wire;
		}
}

/* Message n (1-based) when it exists and is not deleted, else NULL. */
static struct pop3_msg *
session_msg(struct session *s, unsigned long n)
{
	if (n == 0 || n > s->mb.n || s->mb.msgs[n - 1].deleted) {
		(void)pop3_io_printf(&s->io, "-ERR no such message\r\n");
		return NULL;
	}
	return &s->mb.msgs[n - 1];
}

static int
session_list(struct session *s, const struct pop3_cmd *c, int uidl)
{
	struct pop3_msg	*m;
	struct buf	*o = &s->io.out;
	size_t		 i, n;
	uint64_t	 oct;

	if (c->nargs == 1) {
		if ((m = session_msg(s, c->n1)) == NULL)
			return 0;
		if (uidl)
			return pop3_io_printf(&s->io, "+OK %lu %s\r\n", c->n1,
			    m->uid);
		return pop3_io_printf(&s->io, "+OK %lu %llu\r\n", c->n1,
		    (unsigned long long)m->wire);
	}
	session_stat(s, &n, &oct);
	if (uidl ? buf_puts(o, "+OK\r\n") : buf_printf(o,
	    "+OK %zu messages (%llu octets)\r\n", n,
	    (unsigned long long)oct) == -1)
		return -1;
	for (i = 0; i < s->mb.n; i++) {
		m = &s->mb.msgs[i];
		if (m->deleted)
			continue;
		if ((uidl ? buf_printf(o, "%zu %s\r\n", i + 1, m->uid) :
		    buf_printf(o, "%zu %llu\r\n", i + 1,
		    (unsigned long long)m->wire)) == -1)
			return -1;
	}
	if (buf_puts(o, ".\r\n") == -1)
		return -1;
	return pop3_io_maybe_flush(&s->io);
}

static int
session_send(struct session *s, const struct pop3_cmd *c, long lines)
{
	struct pop3_msg	*m;
	const char	*err = NULL;

	if ((m = session_msg(s, c->n1)) == NULL)
		return 0;
	if (mailbox_send(&s->mb, c->n1 - 1, lines, &s->io, &err) == -1) {
		if (err == NULL)
			return -1;
		return pop3_io_printf(&s->io, "-ERR %s\r\n", err);
	}
	if (lines < 0) {
		m->seen = 1;
		s->nretr++;
	}
	return 0;
}

/* UPDATE; returns the exit status. */
static int
session_quit(struct session *s)
{
	const char	*err = "";
	int		 commit = 0, rv;

	rv = mailbox_update(&s->mb, s->a->mbox_tmpfd, &commit, &err);
	if (rv == -1) {
		log_warnx("%s pop3 update failed user=%s: %s", s->a->id,
		    s->a->user, err);
		(void)pop3_io_printf(&s->io, "-ERR %s\r\n", err);
	} else
		(void)pop3_io_printf(&s->io, "+OK bye\r\n");
	(void)pop3_io_flush(&s->io);
	log_info("%s pop3 logout user=%s retr=%u dele=%u", s->a->id,
	    s->a->user, s->nretr, rv == 0 ? s->ndele : 0);
	return commit ? POP3_EXIT_COMMIT : 0;
}

static int
session_loop(struct session *s)
{
	struct pop3_cmd		 c;
	enum pop3_io_status	 st;
	const char		*err;
	size_t			 i, n;
	uint64_t		 oct;
	int			 r = 0;

	for (;;) {
		if (r == -1)
			break;
		st = pop3_io_getline(&s->io);
		if (st == POP3_IO_TIMEOUT) {
			(void)pop3_io_printf(&s->io, "-ERR autologout: idle "
			    "for too long\r\n");
			(void)pop3_io_flush(&s->io);
			log_info("%s pop3 timeout user=%s", s->a->id,
			    s->a->user);
			break;
		}
		if (st == POP3_IO_EOF || st == POP3_IO_ERROR)
			break;
		if (st == POP3_IO_TOOLONG) {
			r = pop3_io_printf(&s->io, "-ERR line too long\r\n");
			goto bad;
		}
		if (pop3_cmd_parse(s->io.line.data, s->io.line.len, &c,
		    &err) == -1) {
			r = pop3_io_printf(&s->io, "-ERR %s\r\n", err);
			goto bad;
		}
		switch (c.verb) {
		case POP3_STAT:
			session_stat(s, &n, &oct);
			r = pop3_io_printf(&s->io, "+OK %zu %llu\r\n", n,
			    (unsigned long long)oct);
			break;
		case POP3_LIST:
			r = session_list(s, &c, 0);
			break;
		case POP3_UIDL:
			r = session_list(s, &c, 1);
			break;
		case POP3_RETR:
			r = session_send(s, &c, -1);
			break;
		case POP3_TOP:
			r = session_send(s, &c, (long)c.n2);
			break;
		case POP3_DELE:
			if (session_msg(s, c.n1) == NULL)
				break;
			s->mb.msgs[c.n1 - 1].deleted = 1;
			s->ndele++;
			r = pop3_io_printf(&s->io, "+OK message %lu deleted\r\n",
			    c.n1);
			break;
		case POP3_NOOP:
			r = pop3_io_printf(&s->io, "+OK\r\n");
			break;
		case POP3_RSET:
			for (i = 0; i < s->mb.n; i++)
				s->mb.msgs[i].deleted = 0;
			s->ndele = 0;
			session_stat(s, &n, &oct);
			r = pop3_io_printf(&s->io, "+OK %zu messages\r\n", n);
			break;
		case POP3_CAPA:
			r = login_capa(&s->io, 1);
			break;
		case POP3_QUIT:
			return session_quit(s);
		default:
			r = pop3_io_printf(&s->io, "-ERR command not valid in "
			    "this state\r\n");
			goto bad;
		}
		continue;
 bad:
		if (++s->errors >= POP3_ERRORS_MAX) {
			(void)pop3_io_printf(&s->io, "-ERR too many errors\r\n");
			(void)pop3_io_flush(&s->io);
			break;
		}
	}
	/* RFC 1939 §6: no QUIT, no UPDATE. */
	mailbox_mark_seen(&s->mb);
	log_info("%s pop3 disconnect user=%s retr=%u dele=0", s->a->id,
	    s->a->user, s->nretr);
	return 0;
}

int
session_run(const struct pop3_session_args *a)
{
	struct session	 s;
	const char	*err = "";
	size_t		 n;
	uint64_t	 oct;
	int		 inuse = 0, r, rv;

	memset(&s, 0, sizeof(s));
	s.a = a;
	pop3_io_init(&s.io, a->fd, a->timeout);
	if (a->leftlen > 0 && buf_append(&s.io.in, a->left, a->leftlen) == -1)
		return 1;
	if (a->mbox)
		r = mailbox_open_mbox(&s.mb, a->mailbox, a->uid, &inuse, &err);
	else
		r = mailbox_open_maildir(&s.mb, a->mailbox, &err);
	if (r == -1) {
		log_warnx("%s pop3 mailbox user=%s: %s: %s", a->id, a->user,
		    err, strerror(errno));
		(void)pop3_io_printf(&s.io, "-ERR %s %s\r\n", inuse ?
		    "[IN-USE]" : "[SYS/TEMP]", inuse ? "mailbox in use by "
		    "another session" : "cannot open the mailbox");
		(void)pop3_io_flush(&s.io);
		mailbox_close(&s.mb);
		pop3_io_free(&s.io);
		return 1;
	}
	session_stat(&s, &n, &oct);
	log_info("%s pop3 login user=%s messages=%zu octets=%llu", a->id,
	    a->user, n, (unsigned long long)oct);
	(void)pop3_io_printf(&s.io, "+OK %zu messages (%llu octets)\r\n", n,
	    (unsigned long long)oct);
	rv = session_loop(&s);
	mailbox_close(&s.mb);
	pop3_io_free(&s.io);
	return rv;
}
