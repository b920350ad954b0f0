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
 *	answers together when the input runs dry.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "pop3d.h"

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
		pfd.fd = io->fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, (int)io->timeout * 1000);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return POP3_IO_ERROR;
		if (r == 0)
			return POP3_IO_TIMEOUT;
		room = io->in.max - io->in.len;
		if (room > sizeof(chunk))
			room = sizeof(chunk);
		if (room == 0)
			return POP3_IO_ERROR;	/* cannot happen: lines fit */
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
