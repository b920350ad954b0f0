/*
 * login.c — POP3 AUTHORIZATION state (RFC 1939 §4, RFC 5034): the
 * greeting, CAPA, USER/PASS and AUTH PLAIN, up to the moment the
 * password has been checked.
 *
 * SECURITY
 *	Runs chrooted into the domain as the domain's run_as account,
 *	from before the first byte is read until authentication ends: the
 *	network parser never runs as root.  It holds no secret but the
 *	password being typed, which it hands to the auth process over a
 *	socketpair (pop3_ipc.c) and wipes.  The auth process decides; a
 *	compromised login process can only lie about its own client.
 *	After POP3_AUTH_OK it exits without writing, so the session
 *	owns the connection from then on.
 *
 * DIAGNOSTICS
 *	"ID pop3 auth failed user=U" (cleaned; never the password),
 *	"ID pop3 too many failures", "ID pop3 timeout".
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "compat.h"
#include "log.h"
#include "pop3d.h"

int
login_capa(struct pop3_io *io, int authorized)
{
	/* RFC 2449 §5; STLS arrives with TLS. */
	return pop3_io_printf(io, "+OK capability list follows\r\n"
	    "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	    "%s"
	    "IMPLEMENTATION %s\r\n.\r\n",
	    authorized ? "" : "USER\r\nSASL PLAIN\r\n", POP3_IMPLEMENTATION);
}

/*
 * Ask the auth process.  The answer byte, or -1 when it is gone.
 * left: the pipelined input after the current line goes along, in case
 * the session takes over.
 */
static int
login_ask(const struct pop3_login_args *a, struct pop3_io *io,
    const char *user, const char *pass)
{
	struct pop3_auth_req	*r;
	unsigned char		*msg;
	ssize_t			 n;
	char			 ans;
	size_t			 left;
	int			 rv = -1;

	r = calloc(1, sizeof(*r));
	msg = malloc(POP3_IPC_MAX);
	if (r == NULL || msg == NULL)
		goto done;
	if (strlcpy(r->user, user, sizeof(r->user)) >= sizeof(r->user) ||
	    strlcpy(r->pass, pass, sizeof(r->pass)) >= sizeof(r->pass) ||
	    *user == '\0') {
		rv = POP3_AUTH_FAIL;
		goto done;
	}
	left = io->in.len - io->line.consumed;
	memcpy(r->left, io->in.data + io->line.consumed, left);
	r->leftlen = left;
	if ((n = pop3_ipc_encode(r, msg, POP3_IPC_MAX)) == -1)
		goto done;
	/* Replies to earlier pipelined commands go first. */
	if (pop3_io_flush(io) == -1)
		goto done;
	if (send(a->auth_fd, msg, (size_t)n, MSG_NOSIGNAL) != n)
		goto done;
	do {
		n = recv(a->auth_fd, &ans, 1, 0);
	} while (n == -1 && errno == EINTR);
	if (n != 1)
		goto done;
	rv = (unsigned char)ans;
 done:
	if (r != NULL) {
		explicit_bzero(r, sizeof(*r));
		free(r);
	}
	if (msg != NULL) {
		explicit_bzero(msg, POP3_IPC_MAX);
		free(msg);
	}
	return rv;
}

int
login_run(const struct pop3_login_args *a)
{
	struct pop3_io		 io;
	struct pop3_cmd		 c;
	enum pop3_io_status	 st;
	const char		*err;
	char			 user[POP3_USER_MAX + 1] = "";
	char			 pass[POP3_PASS_MAX + 1];
	char			 clean[96];
	int			 have_user = 0, failures = 0, errors = 0;
	int			 ans, rv = 0, sasl_wait = 0;

	pop3_io_init(&io, a->fd, a->timeout);
	/* RFC 1939 §4; no APOP, so no timestamp. */
	(void)pop3_io_printf(&io, "+OK %s POP3 server ready\r\n", a->hostname);
	for (;;) {
		st = pop3_io_getline(&io);
		if (st == POP3_IO_TIMEOUT) {
			(void)pop3_io_printf(&io, "-ERR autologout: idle for "
			    "too long\r\n");
			(void)pop3_io_flush(&io);
			log_info("%s pop3 timeout", a->id);
			break;
		}
		if (st == POP3_IO_EOF || st == POP3_IO_ERROR)
			break;
		if (st == POP3_IO_TOOLONG) {
			sasl_wait = 0;
			(void)pop3_io_printf(&io, "-ERR line too long\r\n");
			goto bad;
		}
		if (sasl_wait) {
			/* RFC 5034 §4: the client's response line. */
			sasl_wait = 0;
			if (io.line.len == 1 && io.line.data[0] == '*') {
				(void)pop3_io_printf(&io, "-ERR authentication "
				    "cancelled\r\n");
				continue;
			}
			c.verb = POP3_AUTH;
			c.arg = io.line.data;
			c.arglen = io.line.len;
			goto plain;
		}
		if (pop3_cmd_parse(io.line.data, io.line.len, &c, &err) ==
		    -1) {
			(void)pop3_io_printf(&io, "-ERR %s\r\n", err);
			goto bad;
		}
		switch (c.verb) {
		case POP3_CAPA:
			(void)login_capa(&io, 0);
			continue;
		case POP3_QUIT:
			(void)pop3_io_printf(&io, "+OK bye\r\n");
			(void)pop3_io_flush(&io);
			goto out;
		case POP3_USER:
			if (c.arglen > POP3_USER_MAX) {
				(void)pop3_io_printf(&io, "-ERR user name too "
				    "long\r\n");
				goto bad;
			}
			memcpy(user, c.arg, c.arglen);
			user[c.arglen] = '\0';
			have_user = 1;
			/* Same answer for every name (RFC 1939 §13). */
			(void)pop3_io_printf(&io, "+OK\r\n");
			continue;
		case POP3_PASS:
			if (!have_user) {
				(void)pop3_io_printf(&io, "-ERR USER first\r\n");
				goto bad;
			}
			have_user = 0;
			if (c.arglen > POP3_PASS_MAX) {
				ans = POP3_AUTH_FAIL;
				goto answer;
			}
			memcpy(pass, c.arg, c.arglen);
			pass[c.arglen] = '\0';
			goto ask;
		case POP3_AUTH:
			if (c.arglen == 0) {
				(void)pop3_io_printf(&io, "+OK\r\nPLAIN\r\n"
				    ".\r\n");
				continue;
			}
			{
				const char *sp = memchr(c.arg, ' ', c.arglen);
				size_t mlen = sp != NULL ?
				    (size_t)(sp - c.arg) : c.arglen;

				if (mlen != 5 || strncasecmp(c.arg, "PLAIN",
				    5) != 0) {
					(void)pop3_io_printf(&io, "-ERR "
					    "unsupported mechanism\r\n");
					goto bad;
				}
				if (sp == NULL) {
					(void)pop3_io_printf(&io, "+ \r\n");
					sasl_wait = 1;
					continue;
				}
				c.arg = sp + 1;
				c.arglen -= mlen + 1;
			}
 plain:
			/* "=" is an empty initial response (RFC 5034 §4). */
			if (pop3_sasl_plain(c.arg, c.arglen, user,
			    sizeof(user), pass, sizeof(pass)) == -1) {
				(void)pop3_io_printf(&io, "-ERR [AUTH] invalid "
				    "SASL PLAIN response\r\n");
				ans = -2;
				goto answer;
			}
			goto ask;
		case POP3_STLS:
			/* XXX the TLS issue adds STLS (RFC 2595 §4). */
			(void)pop3_io_printf(&io, "-ERR STLS not available\r\n");
			goto bad;
		default:
			(void)pop3_io_printf(&io, "-ERR command not valid in "
			    "this state\r\n");
			goto bad;
		}
 ask:
		ans = login_ask(a, &io, user, pass);
		explicit_bzero(pass, sizeof(pass));
 answer:
		switch (ans) {
		case POP3_AUTH_OK:
			/* The session answers +OK once the mailbox is open. */
			buf_reset(&io.out);
			goto out;
		case POP3_AUTH_INUSE:
			(void)pop3_io_printf(&io, "-ERR [IN-USE] mailbox in "
			    "use by another session\r\n");
			continue;
		case POP3_AUTH_TEMP:
			(void)pop3_io_printf(&io, "-ERR [SYS/TEMP] temporary "
			    "failure, try again later\r\n");
			continue;
		case -1:
			(void)pop3_io_printf(&io, "-ERR [SYS/TEMP] "
			    "authentication unavailable\r\n");
			(void)pop3_io_flush(&io);
			rv = 1;
			goto out;
		default:
			break;
		}
		log_info("%s pop3 auth failed user=%s", a->id,
		    log_clean(clean, sizeof(clean), user, strlen(user)));
		/* Slow down guessing, the same for every kind of failure. */
		if (a->auth_delay > 0) {
			(void)pop3_io_flush(&io);
			(void)sleep(a->auth_delay);
		}
		if (++failures >= (int)a->failures_max) {
			(void)pop3_io_printf(&io, "-ERR [AUTH] too many "
			    "failures\r\n");
			(void)pop3_io_flush(&io);
			log_info("%s pop3 too many failures", a->id);
			goto out;
		}
		if (ans != -2)
			(void)pop3_io_printf(&io, "-ERR [AUTH] invalid user "
			    "name or password\r\n");
		continue;
 bad:
		if (++errors >= POP3_ERRORS_MAX) {
			(void)pop3_io_printf(&io, "-ERR too many errors\r\n");
			(void)pop3_io_flush(&io);
			break;
		}
	}
 out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(user, sizeof(user));
	pop3_io_free(&io);
	return rv;
}
