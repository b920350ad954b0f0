/*
 * fuzz_pop3_cmd.c — libFuzzer target for virtmail-pop3d's parsers: the
 * command line parser, SASL PLAIN, the login → auth request decoder
 * (which runs as root), the mbox splitter and the wire-form writer.
 *
 * The input is cut into lines at LF; each line goes through
 * pop3_cmd_parse() and pop3_sasl_plain(); the whole input through
 * pop3_ipc_decode(), mailbox_mbox_parse() and pop3_stuff(), whose
 * output must be exactly pop3_wire_size() long.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pop3d.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pop3_cmd		 c;
	struct pop3_auth_req	*r;
	struct pop3_mailbox	 mb;
	struct buf		 b;
	const char		*p = (const char *)data, *end = p + size, *nl;
	const char		*err;
	char			 user[POP3_USER_MAX + 1];
	char			 pass[POP3_PASS_MAX + 1];
	size_t			 len, i;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (len <= POP3_LINE_MAX) {
			(void)pop3_cmd_parse(p, len, &c, &err);
			(void)pop3_sasl_plain(p, len, user, sizeof(user), pass,
			    sizeof(pass));
		}
		p += len + (nl != NULL);
	}
	if ((r = malloc(sizeof(*r))) != NULL) {
		(void)pop3_ipc_decode(data, size, r);
		free(r);
	}
	memset(&mb, 0, sizeof(mb));
	(void)mailbox_mbox_parse(&mb, (const char *)data, size);
	for (i = 0; i < mb.n; i++) {
		if (mb.msgs[i].off + mb.msgs[i].len > size)
			abort();
		free(mb.msgs[i].uid);
	}
	free(mb.msgs);
	buf_init(&b, 0);
	if (pop3_stuff((const char *)data, size, -1, &b, NULL) == 0 &&
	    b.len != pop3_wire_size((const char *)data, size))
		abort();
	buf_reset(&b);
	(void)pop3_stuff((const char *)data, size, 3, &b, NULL);
	buf_free(&b);
	return 0;
}
