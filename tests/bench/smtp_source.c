/*
 * smtp_source.c — SMTP load generator for make bench, in the spirit of
 * Postfix's smtp-source.
 *
 *	smtp_source [-c sessions] [-m messages] [-s size] [-r rcpt]
 *	    [-f sender] [-i idle] [-w seconds] host port
 *
 * Sends -m messages of -s bytes over -c concurrent sessions (one thread
 * each, several messages per session), then prints one line of figures:
 * "sent=N failed=N seconds=S rate=R".  With -i N it instead opens N
 * connections, reads each banner, holds them for -w seconds and prints
 * "idle=N open=N".  Test tool only: it trusts its peer.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include <netdb.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char	*opt_host, *opt_port;
static const char	*opt_sender = "bench@source.test";
static const char	*opt_rcpt = "bob@alpha.test";
static long		 opt_messages = 100, opt_size = 1024;
static long		 opt_sessions = 1;

static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
static long		 next_msg, sent, failed;
static char		*body;
static size_t		 body_len;

static int
conn_open(void)
{
	struct addrinfo	 hints, *res, *ai;
	int		 fd = -1, error;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if ((error = getaddrinfo(opt_host, opt_port, &hints, &res)) != 0) {
		fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(error));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype, 0)) == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

struct reader {
	int	 fd;
	char	 buf[8192];
	size_t	 len;
};

/* Read one whole reply (all continuation lines); returns its code. */
static int
reply_read(struct reader *r)
{
	char	*nl;
	ssize_t	 n;
	int	 code;

	for (;;) {
		while ((nl = memchr(r->buf, '\n', r->len)) != NULL) {
			size_t linelen = (size_t)(nl - r->buf) + 1;
			int last = linelen < 4 || r->buf[3] != '-';

			code = (linelen >= 3) ? (r->buf[0] - '0') * 100 +
			    (r->buf[1] - '0') * 10 + (r->buf[2] - '0') : -1;
			memmove(r->buf, r->buf + linelen, r->len - linelen);
			r->len -= linelen;
			if (last)
				return code;
		}
		if (r->len == sizeof(r->buf))
			return -1;
		n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n <= 0)
			return -1;
		r->len += (size_t)n;
	}
}

static int
send_all(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
message_send(struct reader *r, long seq)
{
	char	cmd[1024];
	char	*msg;
	int	len;
	size_t	hlen;
	int	rc = -1;

	/* MAIL, RCPT and DATA in one packet (PIPELINING). */
	len = snprintf(cmd, sizeof(cmd),
	    "MAIL FROM:<%s> SIZE=%zu\r\nRCPT TO:<%s>\r\nDATA\r\n",
	    opt_sender, body_len + 128, opt_rcpt);
	if (len < 0 || (size_t)len >= sizeof(cmd) ||
	    send_all(r->fd, cmd, (size_t)len) == -1)
		return -1;
	if (reply_read(r) != 250 || reply_read(r) != 250 ||
	    reply_read(r) != 354)
		return -1;
	len = snprintf(cmd, sizeof(cmd),
	    "From: <%s>\r\nTo: <%s>\r\nSubject: bench %ld\r\n"
	    "Message-ID: <bench.%ld.%ld@source.test>\r\n\r\n",
	    opt_sender, opt_rcpt, seq, (long)getpid(), seq);
	if (len < 0 || (size_t)len >= sizeof(cmd))
		return -1;
	/* The whole message in one write, so Nagle never holds the dot. */
	hlen = (size_t)len;
	if ((msg = malloc(hlen + body_len + 3)) == NULL)
		return -1;
	memcpy(msg, cmd, hlen);
	memcpy(msg + hlen, body, body_len);
	memcpy(msg + hlen + body_len, ".\r\n", 3);
	if (send_all(r->fd, msg, hlen + body_len + 3) == 0 &&
	    reply_read(r) == 250)
		rc = 0;
	free(msg);
	return rc;
}

static void *
session_run(void *arg)
{
	struct reader	 r;
	long		 seq;
	int		 ok = 0;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		seq = next_msg < opt_messages ? next_msg++ : -1;
		pthread_mutex_unlock(&lock);
		if (seq == -1)
			break;
		if (!ok) {
			memset(&r, 0, sizeof(r));
			if ((r.fd = conn_open()) == -1 || reply_read(&r) != 220 ||
			    send_all(r.fd, "EHLO source.test\r\n", 18) == -1 ||
			    reply_read(&r) != 250) {
				if (r.fd != -1)
					close(r.fd);
				pthread_mutex_lock(&lock);
				failed++;
				pthread_mutex_unlock(&lock);
				continue;
			}
			ok = 1;
		}
		if (message_send(&r, seq) == 0) {
			pthread_mutex_lock(&lock);
			sent++;
			pthread_mutex_unlock(&lock);
		} else {
			pthread_mutex_lock(&lock);
			failed++;
			pthread_mutex_unlock(&lock);
			close(r.fd);
			ok = 0;
		}
	}
	if (ok) {
		(void)send_all(r.fd, "QUIT\r\n", 6);
		(void)reply_read(&r);
		close(r.fd);
	}
	return NULL;
}

/* A body of about size bytes in 76-character lines. */
static void
body_make(long size)
{
	size_t	i = 0;

	body = malloc((size_t)size + 80);
	if (body == NULL) {
		perror("malloc");
		exit(1);
	}
	while (i < (size_t)size) {
		size_t j;

		for (j = 0; j < 74; j++)
			body[i++] = 'a' + (char)(j % 26);
		body[i++] = '\r';
		body[i++] = '\n';
	}
	body_len = i;
}

static int
idle_run(long count, long seconds)
{
	struct reader	*rs;
	struct rlimit	 rl;
	long		 i, open = 0;

	if ((rs = calloc((size_t)count, sizeof(*rs))) == NULL)
		return 1;
	/* One descriptor per connection: up to the hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)count + 16) {
		rl.rlim_cur = (rlim_t)count + 16;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			perror("setrlimit");
	}
	for (i = 0; i < count; i++) {
		if ((rs[i].fd = conn_open()) == -1)
			break;
		if (reply_read(&rs[i]) != 220) {
			close(rs[i].fd);
			rs[i].fd = -1;
			break;
		}
		open++;
	}
	printf("idle=%ld open=%ld\n", count, open);
	fflush(stdout);
	sleep((unsigned int)seconds);
	for (i = 0; i < count; i++)
		if (rs[i].fd > 0)
			close(rs[i].fd);
	free(rs);
	return open == count ? 0 : 1;
}

static long
number(const char *s)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0) {
		fprintf(stderr, "bad number: %s\n", s);
		exit(64);
	}
	return v;
}

int
main(int argc, char *argv[])
{
	struct timespec	 t0, t1;
	pthread_t	*threads;
	long		 i, idle = 0, wait_s = 5;
	double		 secs;
	int		 ch;

	while ((ch = getopt(argc, argv, "c:f:i:m:r:s:w:")) != -1) {
		switch (ch) {
		case 'c': opt_sessions = number(optarg); break;
		case 'f': opt_sender = optarg; break;
		case 'i': idle = number(optarg); break;
		case 'm': opt_messages = number(optarg); break;
		case 'r': opt_rcpt = optarg; break;
		case 's': opt_size = number(optarg); break;
		case 'w': wait_s = number(optarg); break;
		default:
			fprintf(stderr, "usage: smtp_source [-c sessions] "
			    "[-m messages] [-s size] [-r rcpt] [-f sender] "
			    "[-i idle [-w seconds]] host port\n");
			return 64;
		}
	}
	if (argc - optind != 2 || opt_sessions < 1)
		return 64;
	opt_host = argv[optind];
	opt_port = argv[optind + 1];
	if (idle > 0)
		return idle_run(idle, wait_s);

	body_make(opt_size);
	if ((threads = calloc((size_t)opt_sessions, sizeof(*threads))) == NULL)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < opt_sessions; i++)
		if (pthread_create(&threads[i], NULL, session_run, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
	for (i = 0; i < opt_sessions; i++)
		pthread_join(threads[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("sent=%ld failed=%ld seconds=%.3f rate=%.1f\n", sent, failed,
	    secs, secs > 0 ? (double)sent / secs : 0.0);
	return failed ? 1 : 0;
}
