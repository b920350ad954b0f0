/*
 * pop3_ipc.c — the one request the login process sends up to the
 * privileged auth process: user, password, and the client's pipelined
 * input after the authenticating command.
 *
 * SECURITY
 *	pop3_ipc_decode() runs as root (chrooted) on a message from the
 *	less privileged login process: it trusts nothing, checks every
 *	length against the fixed fields and the message size exactly,
 *	and refuses NUL bytes inside user and password.  Any error drops
 *	the peer (STYLE.md: IPC fails closed).
 *
 * FORMAT
 *	Three 32-bit little-endian lengths (user, password, leftover),
 *	then the three byte strings, nothing after.
 */
#include <sys/types.h>

#include <stdint.h>
#include <string.h>

#include "pop3d.h"

static void
pop3_ipc_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t
pop3_ipc_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

ssize_t
pop3_ipc_encode(const struct pop3_auth_req *r, unsigned char *dst,
    size_t size)
{
	size_t	 ulen, plen, need;

	ulen = strnlen(r->user, sizeof(r->user));
	plen = strnlen(r->pass, sizeof(r->pass));
	if (ulen > POP3_USER_MAX || plen > POP3_PASS_MAX ||
	    r->leftlen > POP3_IN_MAX)
		return -1;
	need = 12 + ulen + plen + r->leftlen;
	if (need > size)
		return -1;
	pop3_ipc_put32(dst, (uint32_t)ulen);
	pop3_ipc_put32(dst + 4, (uint32_t)plen);
	pop3_ipc_put32(dst + 8, (uint32_t)r->leftlen);
	memcpy(dst + 12, r->user, ulen);
	memcpy(dst + 12 + ulen, r->pass, plen);
	memcpy(dst + 12 + ulen + plen, r->left, r->leftlen);
	return (ssize_t)need;
}

int
pop3_ipc_decode(const unsigned char *src, size_t len,
    struct pop3_auth_req *r)
{
	uint32_t	 ulen, plen, llen;

	memset(r, 0, sizeof(*r));
	if (len < 12)
		return -1;
	ulen = pop3_ipc_get32(src);
	plen = pop3_ipc_get32(src + 4);
	llen = pop3_ipc_get32(src + 8);
	if (ulen == 0 || ulen > POP3_USER_MAX || plen > POP3_PASS_MAX ||
	    llen > POP3_IN_MAX ||
	    (uint64_t)12 + ulen + plen + llen != (uint64_t)len)
		return -1;
	src += 12;
	if (memchr(src, '\0', ulen) != NULL ||
	    memchr(src + ulen, '\0', plen) != NULL)
		goto fail;
	memcpy(r->user, src, ulen);
	memcpy(r->pass, src + ulen, plen);
	memcpy(r->left, src + ulen + plen, llen);
	r->leftlen = llen;
	return 0;
 fail:
	explicit_bzero(r, sizeof(*r));
	return -1;
}
