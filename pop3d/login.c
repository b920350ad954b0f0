/*
 * login.c — POP3 AUTHORIZATION state (RFC 1939 §4, RFC 5034): the
 * greeting, CAPA, STLS (RFC 2595 §4) or implicit TLS (RFC 8314), USER/
 * PASS and AUTH PLAIN, up to the moment the password has been checked;
 * over TLS, then the session's TLS proxy.
 *
 * SECURITY
 *	Runs chrooted into the domain as the domain's run_as account,
 *	with no capability and no_new_privs, from before the first byte
 *	is read until the session ends: the network parser never runs as
 *	root.  It holds no secret but the password being typed, which it
 *	hands to the auth process over a socketpair (pop3_ipc.c) and
 *	wipes, and its own domain's TLS contexts, which this process
 *	loaded itself just before it entered the root (auth.c); no other
 *	domain's key was ever in its memory.  The auth process decides;
 *	a compromised login process can only lie about its own client.  After POP3_AUTH_OK in the clear it exits
 *	without writing, so the session owns the connection from then
 *	on; over TLS it stays as a byte pump between the TLS connection
 *	and the session's socketpair, so the session, running as the
 *	user, never holds a private key or the TLS state.
 *
 *	STLS: the +OK is written, every byte read so far is discarded,
 *	then the handshake runs (bytes the client pipelined after STLS
 *	either were in that buffer or reach OpenSSL as a broken
 *	ClientHello).  A handshake must end within POP3_TLS_HANDSHAKE
 *	seconds; a failure ends this session (this process) only.  While
 *	the domain has a certificate, USER, PASS and AUTH are refused
 *	before TLS unless allow_plaintext_auth is set (the smtpd key).
 *
 * DIAGNOSTICS
 *	"ID pop3 auth failed user=U" (cleaned; never the password),
 *	"ID pop3 too many failures", "ID pop3 timeout",
 *	"ID pop3 tls version=V cipher=C", "ID pop3 tls handshake failed".
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "compat.h"
#include "log.h"
#include "pop3d.h"
#include "tls.h"

/* RFC 2449 §5: STLS only before TLS (RFC 2595 §4), USER and SASL only
 * where a login may be tried now. */
static int
login_capa_list(struct pop3_io *io, int stls, int userok)
{
	return pop3_io_printf(io, "+OK capability list follows\r\n"
	    "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	    "%s%s"
	    "IMPLEMENTATION %s\r\n.\r\n", stls ? "STLS\r\n" : "",
	    userok ? "USER\r\nSASL PLAIN\r\n" : "", POP3_IMPLEMENTATION);
}

int
login_capa(struct pop3_io *io, int authorized)
{
	return login_capa_list(io, 0, !authorized);
}

/* Whether a login may be tried now (not in the clear when TLS is
 * there to be had, unless allow_plaintext_auth). */
static int
login_allowed(const struct pop3_login_args *a, const struct pop3_io *io)
{
	return io->ssl != NULL || a->tls == NULL || a->allow_plaintext_auth;
}

/* The handshake on a->fd; 0, or -1 when this session is over. */
static int
login_tls(const struct pop3_login_args *a, struct pop3_io *io)
{
	SSL		*ssl;
	const char	*err;

	if ((ssl = tls_server_ssl(a->tls, a->fd)) == NULL) {
		log_warnx("%s pop3 tls: cannot start: %s", a->id,
		    tls_error());
		return -1;
	}
	/* A ticket key lives in this process only: none would resume. */
	(void)SSL_set_options(ssl, SSL_OP_NO_TICKET);
	if (pop3_io_tls_accept(io, ssl, &err) == -1) {
		log_info("%s pop3 tls handshake failed error=%s", a->id, err);
		SSL_free(ssl);
		return -1;
	}
	log_info("%s pop3 tls version=%s cipher=%s sni=%s", a->id,
	    tls_version(ssl), tls_cipher(ssl),
	    SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) != NULL ?
	    "yes" : "no");
	return 0;
}

/* One SSL_read into b; sets *ev to what OpenSSL waits for, *eof. */
static int
login_proxy_tls_in(SSL *ssl, struct buf *b, short *ev, int *eof)
{
	char	 chunk[4096];
	size_t	 room = b->max - b->len;
	int	 r, e;

	if (room > sizeof(chunk))
		room = sizeof(chunk);
	ERR_clear_error();
	r = SSL_read(ssl, chunk, (int)room);
	if (r > 0) {
		r = buf_append(b, chunk, (size_t)r);
		explicit_bzero(chunk, sizeof(chunk));
		return r == -1 ? -1 : 1;
	}
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		*ev |= POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		*ev |= POLLOUT;
	else
		*eof = 1;
	return 0;
}

/*
 * After POP3_AUTH_OK over TLS: copy bytes both ways between the TLS
 * connection and the session until one side ends.  The session keeps
 * its own idle timer; here a timeout only ends a side that has bytes
 * nobody takes.  Returns the exit status.
 */
static int
login_proxy(const struct pop3_login_args *a, struct pop3_io *io)
{
	struct buf	 up, down;	/* up: client to session */
	struct pollfd	 pfd[2];
	SSL		*ssl = io->ssl;
	char		 chunk[4096];
	size_t		 room;
	ssize_t		 n;
	short		 cev;
	int		 r, e, ssl_eof = 0, sess_eof = 0, progress;

	buf_init(&up, POP3_PROXY_BUF);
	buf_init(&down, POP3_PROXY_BUF);
	if (fcntl(a->proxy_fd, F_SETFL, O_NONBLOCK) == -1)
		goto done;
	for (;;) {
		do {
			progress = 0;
			cev = 0;
			if (!ssl_eof && up.len < up.max) {
				if ((r = login_proxy_tls_in(ssl, &up, &cev,
				    &ssl_eof)) == -1)
					goto done;
				progress |= r;
			}
			if (up.len > 0) {
				n = send(a->proxy_fd, up.data, up.len,
				    MSG_NOSIGNAL);
				if (n > 0) {
					buf_consume(&up, (size_t)n);
					progress = 1;
				} else if (errno != EAGAIN && errno != EINTR)
					goto done;
			}
			room = down.max - down.len;
			if (room > sizeof(chunk))
				room = sizeof(chunk);
			if (!sess_eof && room > 0) {
				n = recv(a->proxy_fd, chunk, room, 0);
				if (n > 0) {
					if (buf_append(&down, chunk,
					    (size_t)n) == -1)
						goto done;
					progress = 1;
				} else if (n == 0 || (errno != EAGAIN &&
				    errno != EINTR))
					sess_eof = 1;
			}
			if (down.len > 0) {
				ERR_clear_error();
				r = SSL_write(ssl, down.data, (int)down.len);
				if (r > 0) {
					buf_consume(&down, (size_t)r);
					progress = 1;
				} else if ((e = SSL_get_error(ssl, r)) ==
				    SSL_ERROR_WANT_READ)
					cev |= POLLIN;
				else if (e == SSL_ERROR_WANT_WRITE)
					cev |= POLLOUT;
				else
					goto done;
			}
		} while (progress);
		if (sess_eof && down.len == 0) {
			(void)SSL_shutdown(ssl);
			break;
		}
		if (ssl_eof && up.len == 0)
			break;
		pfd[0].fd = cev != 0 ? a->fd : -1;
		pfd[0].events = cev;
		pfd[1].fd = a->proxy_fd;
		pfd[1].events = (up.len > 0 ? POLLOUT : 0) |
		    (!sess_eof && down.len < down.max ? POLLIN : 0);
		if (pfd[1].events == 0)
			pfd[1].fd = -1;
		pfd[0].revents = pfd[1].revents = 0;
		r = poll(pfd, 2, (int)a->timeout * 1000);
		if (r == -1 && errno != EINTR)
			break;
		if (r == 0 && (up.len > 0 || down.len > 0))
			break;
	}
 done:
	explicit_bzero(chunk, sizeof(chunk));
	buf_free_secret(&up);
	buf_free_secret(&down);
	(void)close(a->proxy_fd);
	return 0;
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

	/* OpenSSL writes with write(2): a gone client is an error. */
	(void)signal(SIGPIPE, SIG_IGN);
	pop3_io_init(&io, a->fd, a->timeout);
	/* RFC 8314 §3.3: on 995 the handshake comes first. */
	if (a->tls_implicit && login_tls(a, &io) == -1) {
		rv = 1;
		goto out;
	}
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
		if ((c.verb == POP3_USER || c.verb == POP3_PASS ||
		    c.verb == POP3_AUTH) && !login_allowed(a, &io)) {
			/* RFC 2595 §4 permits this; Dovecot's wording. */
			have_user = 0;
			(void)pop3_io_printf(&io, "-ERR [AUTH] plaintext "
			    "authentication disallowed on non-secure "
			    "connections, use STLS first\r\n");
			goto bad;
		}
		switch (c.verb) {
		case POP3_CAPA:
			(void)login_capa_list(&io, a->tls != NULL &&
			    io.ssl == NULL, login_allowed(a, &io));
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
			if (a->tls == NULL || io.ssl != NULL) {
				(void)pop3_io_printf(&io, "-ERR %s\r\n",
				    io.ssl != NULL ? "already using TLS" :
				    "STLS not available");
				goto bad;
			}
			(void)pop3_io_printf(&io, "+OK begin TLS "
			    "negotiation\r\n");
			if (pop3_io_flush(&io) == -1)
				goto out;
			/* RFC 2595 §4: nothing from before survives. */
			pop3_io_discard_input(&io);
			have_user = 0;
			explicit_bzero(user, sizeof(user));
			if (login_tls(a, &io) == -1) {
				rv = 1;
				goto out;
			}
			continue;
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
			if (io.ssl != NULL && a->proxy_fd != -1) {
				char	 p = POP3_AUTH_PROXY;

				if (send(a->auth_fd, &p, 1, MSG_NOSIGNAL) !=
				    1) {
					rv = 1;
					goto out;
				}
				(void)close(a->auth_fd);
				rv = login_proxy(a, &io);
			}
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
	if (io.ssl != NULL) {
		(void)SSL_shutdown(io.ssl);
		SSL_free(io.ssl);
	}
	pop3_io_free(&io);
	return rv;
}
