/*
 * test_bounce.c — the DSN (RFC 3464) against a golden layout.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "smtpd.h"
#include "test.h"

int
main(void)
{
	struct bounce_info	 bi;
	struct bounce_rcpt	 r[2];
	struct buf		 out, hdr;
	const char		*s;
	char			 path[] = "/tmp/test_bounce.XXXXXX";
	int			 fd;

	memset(&bi, 0, sizeof(bi));
	bi.queue_id = "0123456789abcdef";
	bi.reporting_mta = "mx.alpha.test";
	bi.from_domain = "alpha.test";
	bi.to = "bob@alpha.test";
	bi.arrival = 1700000000;
	bi.now = 1700000100;
	bi.boundary = "BOUNDARY";
	memset(r, 0, sizeof(r));
	r[0].addr = "x@beta.test";
	r[0].failed = 1;
	r[0].status = "5.1.1";
	r[0].rmta = "mx.beta.test";
	r[0].diag = "550 5.1.1 no such\r\nInjected: yes";
	r[0].diag_smtp = 1;
	r[1].addr = "y@alpha.test";
	r[1].orcpt = "rfc822;list@alpha.test";
	r[1].failed = 1;
	r[1].status = "5.0.0";
	r[1].diag = "no such user";
	buf_init(&out, 0);
	CHECK(bounce_build(&out, &bi, r, 2, "Subject: hi\nFrom: b\n", 20) ==
	    0, "built");
	s = buf_cstr(&out);
	CHECK(strstr(s, "From: Mail Delivery System "
	    "<MAILER-DAEMON@alpha.test>\n") == s, "From: MAILER-DAEMON");
	CHECK(strstr(s, "\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"BOUNDARY\"\n") != NULL,
	    "multipart/report");
	CHECK(strstr(s, "\n--BOUNDARY\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\nReporting-MTA: dns; "
	    "mx.alpha.test\n") != NULL, "Reporting-MTA first");
	CHECK(strstr(s, "\nFinal-Recipient: rfc822; x@beta.test\nAction: "
	    "failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.beta.test\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such??Injected: yes\n") !=
	    NULL, "per-recipient fields, CRLF neutered");
	CHECK(strstr(s, "\nInjected:") == NULL, "no header injection");
	CHECK(strstr(s, "\nOriginal-Recipient: rfc822;list@alpha.test\n"
	    "Final-Recipient: rfc822; y@alpha.test\n") != NULL,
	    "Original-Recipient");
	CHECK(strstr(s, "Diagnostic-Code: X-Virtmail; no such user\n") !=
	    NULL, "local diagnostic");
	CHECK(strstr(s, "Content-Type: text/rfc822-headers\n\nSubject: hi\n"
	    "From: b\n\n--BOUNDARY--\n") != NULL, "original headers, end");
	buf_free(&out);

	fd = mkstemp(path);
	(void)unlink(path);
	CHECK(fd != -1 && write(fd, "Received: x\nSubject: y\n\nbody\n\n", 30)
	    == 30, "message file");
	buf_init(&hdr, 0);
	CHECK(bounce_read_headers(fd, &hdr) == 0 &&
	    strcmp(buf_cstr(&hdr), "Received: x\nSubject: y\n") == 0,
	    "header block read");
	buf_free(&hdr);
	return test_done();
}
