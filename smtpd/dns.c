/*
 * dns.c — next hops for a mail domain: MX, then AAAA and A
 * (RFC 5321 §5.1), with null MX (RFC 7505).
 *
 * WHO RUNS IT
 *	The domain's queue runner: chrooted into the domain's root, as
 *	its run_as account.  The resolver is glibc's libresolv, set up by
 *	res_ninit() for every lookup, so it reads the domain's own
 *	etc/resolv.conf (inside the root) and picks up changes to it.
 *
 * NOT BLOCKING THE RUNNER
 *	Lookups block, for up to the resolver's timeout times its
 *	attempts.  They run on DNS_THREADS resolver threads; the event
 *	loop hands them a struct dns_req pointer over a SOCK_SEQPACKET
 *	socketpair (one pointer per datagram, so any idle thread takes
 *	the next one) and gets the same pointer back, filled in, on the
 *	same pair.  The threads touch nothing but the request and their
 *	own resolver state; the request belongs to them until it comes
 *	back.  Threads were chosen over a resolver process because the
 *	request and answer are plain memory and the process is already
 *	chrooted with the right resolv.conf.
 *
 * INPUT
 *	DNS answers are untrusted: ns_initparse/ns_parserr check the
 *	message bounds, names go through ns_name_uncompress with a
 *	bounded buffer, counts are capped (DNS_MX_MAX, DNS_HOP_MAX).
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "event.h"
#include "log.h"
#include "smtpd.h"

#define DNS_ANSWER_MAX		65536

static int	 dns_fds[2] = { -1, -1 };	/* [0] loop, [1] threads */

void
dns_mx_sort(struct dns_mx *mx, size_t n, unsigned int (*rnd)(void))
{
	struct dns_mx	 t;
	size_t		 i, j, k, lo;

	/* Insertion sort: n is at most DNS_MX_MAX. */
	for (i = 1; i < n; i++) {
		t = mx[i];
		for (j = i; j > 0 && mx[j - 1].pref > t.pref; j--)
			mx[j] = mx[j - 1];
		mx[j] = t;
	}
	/* Equal preferences in random order (§5.1). */
	for (lo = 0; lo < n; lo = i) {
		for (i = lo + 1; i < n && mx[i].pref == mx[lo].pref; i++)
			;
		for (k = i - lo; k > 1; k--) {
			j = lo + rnd() % k;
			t = mx[lo + k - 1];
			mx[lo + k - 1] = mx[j];
			mx[j] = t;
		}
	}
}

static unsigned int
dns_random(void)
{
	return arc4random();
}

/* One query.  >0 answer length; 0 no data; -1 with *status set. */
static int
dns_query(res_state rs, const char *name, int type, unsigned char *ans,
    enum dns_status *status)
{
	int	 n;

	n = res_nquery(rs, name, ns_c_in, type, ans, DNS_ANSWER_MAX);
	if (n >= 0)
		return n;
	switch (rs->res_h_errno) {
	case HOST_NOT_FOUND:
		*status = DNS_PERMFAIL;
		return -1;
	case NO_DATA:
		return 0;
	default:
		*status = DNS_TEMPFAIL;
		return -1;
	}
}

/* Add name's addresses of type (AAAA or A) as hops. */
static int
dns_addrs(res_state rs, const char *name, unsigned int pref, int type,
    unsigned char *ans, struct dns_result *res, enum dns_status *status)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	struct dns_hop		*h;
	ns_msg			 msg;
	ns_rr			 rr;
	int			 n, i, count;

	if ((n = dns_query(rs, name, type, ans, status)) <= 0)
		return n;
	if (ns_initparse(ans, n, &msg) == -1) {
		*status = DNS_TEMPFAIL;
		return -1;
	}
	count = ns_msg_count(msg, ns_s_an);
	for (i = 0; i < count && res->nhops < DNS_HOP_MAX; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1)
			break;
		if ((int)ns_rr_type(rr) != type ||
		    ns_rr_class(rr) != ns_c_in)
			continue;
		h = &res->hops[res->nhops];
		memset(h, 0, sizeof(*h));
		if (type == ns_t_a && ns_rr_rdlen(rr) == 4) {
			sin = (struct sockaddr_in *)&h->ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, ns_rr_rdata(rr), 4);
			h->sslen = sizeof(*sin);
		} else if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
			sin6 = (struct sockaddr_in6 *)&h->ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, ns_rr_rdata(rr), 16);
			h->sslen = sizeof(*sin6);
		} else
			continue;
		(void)strlcpy(h->host, name, sizeof(h->host));
		h->pref = pref;
		res->nhops++;
	}
	return 1;
}

/* AAAA then A of one host; 0, or -1 with *status (temp or perm). */
static int
dns_host(res_state rs, const char *name, unsigned int pref,
    unsigned char *ans, struct dns_result *res, enum dns_status *status)
{
	enum dns_status	 s6 = DNS_OK, s4 = DNS_OK;
	int		 r6, r4;

	r6 = dns_addrs(rs, name, pref, ns_t_aaaa, ans, res, &s6);
	r4 = dns_addrs(rs, name, pref, ns_t_a, ans, res, &s4);
	if (r6 == -1 && r4 == -1) {
		*status = s6 == DNS_TEMPFAIL || s4 == DNS_TEMPFAIL ?
		    DNS_TEMPFAIL : DNS_PERMFAIL;
		return -1;
	}
	/* One family failed temporarily: use what the other gave. */
	return 0;
}

static void
dns_fail(struct dns_result *res, enum dns_status st, const char *what,
    const char *name)
{
	res->status = st;
	res->nhops = 0;
	(void)snprintf(res->error, sizeof(res->error), "%s %s", what, name);
}

void
dns_resolve(const char *domain, struct dns_result *res)
{
	struct __res_state	 rstate;
	struct dns_mx		 mx[DNS_MX_MAX];
	enum dns_status		 st = DNS_OK;
	unsigned char		*ans;
	ns_msg			 msg;
	ns_rr			 rr;
	size_t			 nmx = 0, i;
	int			 n, k, count, temp = 0;

	memset(res, 0, sizeof(*res));
	res->status = DNS_OK;
	if ((ans = malloc(DNS_ANSWER_MAX)) == NULL) {
		dns_fail(res, DNS_TEMPFAIL, "out of memory resolving",
		    domain);
		return;
	}
	memset(&rstate, 0, sizeof(rstate));
	if (res_ninit(&rstate) == -1) {
		dns_fail(res, DNS_TEMPFAIL, "resolver setup failed for",
		    domain);
		free(ans);
		return;
	}
	n = dns_query(&rstate, domain, ns_t_mx, ans, &st);
	if (n == -1) {
		dns_fail(res, st, st == DNS_PERMFAIL ?
		    "no such domain:" : "DNS lookup failed for MX of", domain);
		goto out;
	}
	if (n > 0) {
		if (ns_initparse(ans, n, &msg) == -1) {
			dns_fail(res, DNS_TEMPFAIL, "bad DNS answer for MX of",
			    domain);
			goto out;
		}
		count = ns_msg_count(msg, ns_s_an);
		for (k = 0; k < count && nmx < DNS_MX_MAX; k++) {
			if (ns_parserr(&msg, ns_s_an, k, &rr) == -1)
				break;
			if (ns_rr_type(rr) != ns_t_mx ||
			    ns_rr_rdlen(rr) < 3)
				continue;
			mx[nmx].pref = ns_get16(ns_rr_rdata(rr));
			if (ns_name_uncompress(ns_msg_base(msg),
			    ns_msg_end(msg), ns_rr_rdata(rr) + 2,
			    mx[nmx].host, sizeof(mx[nmx].host)) == -1)
				continue;
			nmx++;
		}
	}
	/* RFC 7505 §3: a single MX of "." says no mail, ever. */
	if (nmx == 1 && (mx[0].host[0] == '\0' ||
	    strcmp(mx[0].host, ".") == 0)) {
		dns_fail(res, DNS_NULLMX, "null MX: no mail accepted for",
		    domain);
		goto out;
	}
	if (nmx == 0) {
		/* §5.1: no MX, the domain itself is the exchanger. */
		if (dns_host(&rstate, domain, 0, ans, res, &st) == -1 ||
		    res->nhops == 0) {
			dns_fail(res, st == DNS_TEMPFAIL ? DNS_TEMPFAIL :
			    DNS_PERMFAIL, st == DNS_TEMPFAIL ?
			    "DNS lookup failed for" :
			    "no MX and no address for", domain);
		}
		goto out;
	}
	dns_mx_sort(mx, nmx, dns_random);
	for (i = 0; i < nmx; i++) {
		if (mx[i].host[0] == '\0' || strcmp(mx[i].host, ".") == 0)
			continue;
		st = DNS_OK;
		if (dns_host(&rstate, mx[i].host, mx[i].pref, ans, res,
		    &st) == -1 && st == DNS_TEMPFAIL)
			temp = 1;
	}
	if (res->nhops == 0)
		dns_fail(res, temp ? DNS_TEMPFAIL : DNS_PERMFAIL, temp ?
		    "DNS lookup failed for the MX hosts of" :
		    "no address for any MX host of", domain);
out:
	res_nclose(&rstate);
	free(ans);
}

static void *
dns_thread(void *arg)
{
	struct dns_req	*req;
	ssize_t		 n;

	(void)arg;
	for (;;) {
		n = recv(dns_fds[1], &req, sizeof(req), 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(req))
			return NULL;	/* the runner is going away */
		dns_resolve(req->domain, &req->res);
		while (send(dns_fds[1], &req, sizeof(req), 0) == -1)
			if (errno != EINTR)
				return NULL;
	}
}

static void
dns_on_answer(int fd, int events, void *arg)
{
	struct dns_req	*req;
	ssize_t		 n;

	(void)events;
	(void)arg;
	for (;;) {
		n = recv(fd, &req, sizeof(req), MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n != (ssize_t)sizeof(req))
			fatalx("dns: resolver threads went away");
		req->cb(req, req->arg);
	}
}

int
dns_async_init(struct ev_loop *loop)
{
	pthread_t	 t;
	sigset_t	 all, old;
	int		 i, e;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
	    dns_fds) == -1)
		return -1;
	/* The threads take no signals: the loop's signalfd gets them. */
	(void)sigfillset(&all);
	(void)pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < DNS_THREADS; i++) {
		if ((e = pthread_create(&t, NULL, dns_thread, NULL)) != 0) {
			(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
			errno = e;
			return -1;
		}
		(void)pthread_detach(t);
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ev_add(loop, dns_fds[0], EV_READ, dns_on_answer, NULL);
}

void
dns_async_submit(struct dns_req *req)
{
	while (send(dns_fds[0], &req, sizeof(req), 0) == -1)
		if (errno != EINTR)
			fatal("dns: submit");
}
