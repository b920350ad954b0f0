/*
 * pop3_io.c — bounded line input and buffered output on the client
 * socket, with the idle timeout, for the login and session processes.
 *
 * SECURITY
 *	Runs unprivileged (login: run_as; session: the user).  Input is
 *	held in a struct buf with a hard maximum (POP3_IN_MAX); lines
 *	longer than POP3_LINE_MAX are reported and skipped by the line
 *	reader, never truncated.  Replies are collected and written in
 *	large writes: pipelined commands (RFC 2449 §6.6) get their
 *	answers together when the input runs dry.  Over TLS (the login
 *	process only) the same calls go through SSL_read/SSL_write;
 *	pop3_io_discard_input() is how STLS forgets what came before.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fileio.h"
#include "pop3d.h"
#include "tls.h"

/* Wait for ev on io->fd for at most ms; 1 ready, 0 timeout, -1 error. */
static int
pop3_io_wait(int fd, short ev, int ms)
{
	struct pollfd	 pfd;
	int		 r;

	pfd.fd = fd;
	pfd.events = ev;
	pfd.revents = 0;
	do {
		r = poll(&pfd, 1, ms);
	} while (r == -1 && errno == EINTR);
	return r;
}

/* SSL_write all of out; 0 or -1. */
static int
pop3_io_tls_flush(struct pop3_io *io)
{
	size_t	 off = 0;
	int	 n, e;

	while (off < io->out.len) {
		ERR_clear_error();
		n = SSL_write(io->ssl, io->out.data + off,
		    io->out.len - off > INT32_MAX ? INT32_MAX :
		    (int)(io->out.len - off));
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		e = SSL_get_error(io->ssl, n);
		if ((e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) ||
		    pop3_io_wait(io->fd, e == SSL_ERROR_WANT_READ ? POLLIN :
		    POLLOUT, (int)io->timeout * 1000) <= 0)
			return -1;
	}
	buf_reset(&io->out);
	return 0;
}

/* SSL_read; bytes, 0 at the end, -2 to poll again, -1 on error. */
static ssize_t
pop3_io_tls_read(struct pop3_io *io, char *dst, size_t room)
{
	int	 n, e;

	ERR_clear_error();
	n = SSL_read(io->ssl, dst, room > INT32_MAX ? INT32_MAX : (int)room);
	if (n > 0)
		return n;
	e = SSL_get_error(io->ssl, n);
	if (e == SSL_ERROR_WANT_READ)
		return -2;
	if (e == SSL_ERROR_WANT_WRITE)
		return pop3_io_wait(io->fd, POLLOUT, (int)io->timeout *
		    1000) > 0 ? -2 : -1;
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	return -1;
}

void
pop3_io_discard_input(struct pop3_io *io)
{
	explicit_bzero(io->in.data, io->in.len);
	buf_reset(&io->in);
	line_reader_init(&io->lr, POP3_LINE_MAX);
	memset(&io->line, 0, sizeof(io->line));
	io->pending = 0;
}

int
pop3_io_tls_accept(struct pop3_io *io, struct ssl_st *ssl,
    const char **error_r)
{
	struct timespec	 now;
	time_t		 deadline;
	int		 r, e, left;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	deadline = now.tv_sec + POP3_TLS_HANDSHAKE;
	for (;;) {
		ERR_clear_error();
		if ((r = SSL_accept(ssl)) == 1)
			break;
		e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			*error_r = e == SSL_ERROR_SYSCALL &&
			    ERR_peek_error() == 0 ? "connection closed" :
			    tls_error();
			return -1;
		}
		(void)clock_gettime(CLOCK_MONOTONIC, &now);
		left = (int)(deadline - now.tv_sec);
		if (left <= 0 || (r = pop3_io_wait(io->fd,
		    e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
		    left * 1000)) == 0) {
			*error_r = "handshake timeout";
			return -1;
		}
		if (r == -1) {
			*error_r = "poll error";
			return -1;
		}
	}
	io->ssl = ssl;
	return 0;
}

void
pop3_io_init(struct pop3_io *io, int fd, unsigned int timeout)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->timeout = timeout;
	buf_init(&io->in, POP3_IN_MAX);
	buf_init(&io->out, 0);
	line_reader_init(&io->lr, POP3_LINE_MAX);
}

void
pop3_io_free(struct pop3_io *io)
{
	buf_free_secret(&io->in);
	buf_free(&io->out);
}

int
pop3_io_flush(struct pop3_io *io)
{
	ssize_t	 n;
	size_t	 off = 0;

	if (io->ssl != NULL)
		return pop3_io_tls_flush(io);
	while (off < io->out.len) {
		n = send(io->fd, io->out.data + off, io->out.len - off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ENOTSOCK)
			n = write(io->fd, io->out.data + off,
			    io->out.len - off);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { io->fd, POLLOUT, 0 };

			if (poll(&pfd, 1, (int)io->timeout * 1000) <= 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	buf_reset(&io->out);
	return 0;
}

int
pop3_io_maybe_flush(struct pop3_io *io)
{
	return io->out.len >= POP3_OUT_FLUSH ? pop3_io_flush(io) : 0;
}

int
pop3_io_printf(struct pop3_io *io, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = buf_vprintf(&io->out, fmt, ap);
	va_end(ap);
	return r;
}

enum pop3_io_status
pop3_io_getline(struct pop3_io *io)
{
	struct pollfd		 pfd;
	enum line_status	 st;
	char			 chunk[4096];
	size_t			 room;
	ssize_t			 n;
	int			 r;

	if (io->pending) {
		buf_consume(&io->in, io->line.consumed);
		io->pending = 0;
	}
	for (;;) {
		st = line_next(&io->lr, &io->in, 0, &io->line);
		if (st == LINE_READY) {
			io->pending = 1;
			return POP3_IO_LINE;
		}
		if (st == LINE_TOOLONG)
			return POP3_IO_TOOLONG;
		/* Nothing more to answer until the client speaks. */
		if (pop3_io_flush(io) == -1)
			return POP3_IO_ERROR;
		/* Bytes OpenSSL already decrypted wake no poll. */
		if (io->ssl != NULL && SSL_pending(io->ssl) > 0)
			goto readit;
		pfd.fd = io->fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, (int)io->timeout * 1000);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return POP3_IO_ERROR;
		if (r == 0)
			return POP3_IO_TIMEOUT;
 readit:
		room = io->in.max - io->in.len;
		if (room > sizeof(chunk))
			room = sizeof(chunk);
		if (room == 0)
			return POP3_IO_ERROR;	/* cannot happen: lines fit */
		if (io->ssl != NULL) {
			if ((n = pop3_io_tls_read(io, chunk, room)) == -2)
				continue;
			if (n == -1)
				return POP3_IO_ERROR;
		} else
			n = read(io->fd, chunk, room);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n == 0 ? POP3_IO_EOF : POP3_IO_ERROR;
		if (buf_append(&io->in, chunk, (size_t)n) == -1)
			return POP3_IO_ERROR;
		explicit_bzero(chunk, (size_t)n);
	}
}
