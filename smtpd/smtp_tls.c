/*
 * smtp_tls.c — TLS for the SMTP worker's connections: the handshake
 * (STARTTLS, or before the greeting on port 465) and non-blocking
 * reads and writes.
 *
 * DESCRIPTION
 *	TLS lives here, below the session engine, which only ever sees
 *	plaintext: non-blocking SSL_read/SSL_write, with OpenSSL's
 *	WANT_READ/WANT_WRITE turned into the events the loop waits for
 *	(smtp_conn_events() in smtp_server.c).  Port 465 handshakes before
 *	the greeting (RFC 8314 §3.3).  Once the handshake is done the
 *	session starts over (RFC 3207 §4.2).
 *
 * SECURITY
 *	Runs in the worker, already chrooted into the domain's root and
 *	running as its run_as account; the peer's bytes are untrusted and
 *	go to OpenSSL only.  The server contexts come from the master
 *	(common/tls.c); this process never opens a key file.  Before the
 *	handshake starts, every byte read in the clear has been thrown
 *	away (smtp_conn_run(), RFC 3207 §6, the CVE-2011-0411 class).  A
 *	handshake must finish within SMTP_TLS_HANDSHAKE_MS, and its
 *	failure ends that session only.
 *
 * STANDARDS
 *	RFC 3207 (STARTTLS), RFC 8314 (implicit TLS).
 */
#include <sys/types.h>

#include <stdint.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "event.h"
#include "log.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "tls.h"

/* SSL_write; bytes, -2 to wait, -1 on error. */
ssize_t
smtp_tls_write(struct conn *c)
{
	int	 n, e;

	c->wr_want_r = 0;
	ERR_clear_error();
	n = SSL_write(c->ssl, c->out.data, c->out.len > INT32_MAX ?
	    INT32_MAX : (int)c->out.len);
	if (n > 0)
		return n;
	switch ((e = SSL_get_error(c->ssl, n))) {
	case SSL_ERROR_WANT_WRITE:
		return -2;
	case SSL_ERROR_WANT_READ:
		c->wr_want_r = 1;
		return -2;
	default:
		log_debug("%s tls write: error %d %s", c->s.id, e,
		    tls_error());
		return -1;
	}
}

/* SSL_read; bytes, 0 at the end, -2 to wait, -1 on error. */
ssize_t
smtp_tls_read(struct conn *c, char *dst, size_t room)
{
	int	 n, e;

	c->rd_want_w = 0;
	ERR_clear_error();
	n = SSL_read(c->ssl, dst, room > INT32_MAX ? INT32_MAX : (int)room);
	if (n > 0)
		return n;
	switch ((e = SSL_get_error(c->ssl, n))) {
	case SSL_ERROR_WANT_READ:
		return -2;
	case SSL_ERROR_WANT_WRITE:
		c->rd_want_w = 1;
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0)
			return 0;	/* the peer closed without close_notify */
		/* FALLTHROUGH */
	default:
		log_debug("%s tls read: error %d %s", c->s.id, e,
		    tls_error());
		return -1;
	}
}

/* Drive the handshake; on success the session starts over (RFC 3207).
 * -1 when the connection was closed. */
int
smtp_tls_handshake(struct conn *c)
{
	int	 r, e;

	ERR_clear_error();
	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		c->tls_hs = 0;
		c->tls_hs_events = 0;
		c->activity = ev_now_ms();
		c->armed = 0;
		log_info("%s smtp tls client=%s version=%s cipher=%s sni=%s",
		    c->s.id, c->s.client_addr, tls_version(c->ssl),
		    tls_cipher(c->ssl), SSL_get_servername(c->ssl,
		    TLSEXT_NAMETYPE_host_name) != NULL ? "yes" : "no");
		smtp_session_tls(&c->s, tls_version(c->ssl),
		    tls_cipher(c->ssl), tls_cipher_bits(c->ssl));
		if (c->s.state == SMTP_STATE_GREETING) {
			if (c->srv->stopping)
				smtp_session_shutdown(&c->s);
			else
				smtp_session_greet(&c->s);
		}
		return smtp_conn_run(c);
	}
	switch ((e = SSL_get_error(c->ssl, r))) {
	case SSL_ERROR_WANT_READ:
		c->tls_hs_events = EV_READ;
		break;
	case SSL_ERROR_WANT_WRITE:
		c->tls_hs_events = EV_WRITE;
		break;
	default:
		log_info("%s smtp tls handshake failed client=%s error=%s",
		    c->s.id, c->s.client_addr, e == SSL_ERROR_SYSCALL &&
		    ERR_peek_error() == 0 ? "connection closed" :
		    tls_error());
		smtp_conn_close(c);
		return -1;
	}
	smtp_conn_events(c);
	smtp_conn_timer_update(c);
	return 0;
}

/* Start the handshake; -1 when the connection was closed. */
int
smtp_tls_start(struct conn *c)
{
	c->ssl = tls_server_ssl(c->srv->sd->tls, c->rfd);
	/* Inetd mode may write to another descriptor than it reads. */
	if (c->ssl != NULL && c->wfd != c->rfd &&
	    SSL_set_wfd(c->ssl, c->wfd) != 1) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->ssl == NULL) {
		log_warnx("%s smtp tls: cannot start: %s", c->s.id,
		    tls_error());
		smtp_conn_close(c);
		return -1;
	}
	c->tls_hs = 1;
	c->activity = ev_now_ms();
	c->armed = 0;
	ev_timer_cancel(c->srv->loop, &c->timer);
	return smtp_tls_handshake(c);
}
