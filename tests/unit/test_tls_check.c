/*
 * test_tls_check.c — the master's checks of a domain's certificates and
 * keys: tls_files_check() (opened inside the root, regular files, key
 * readable by its owner only, identities) and tls_server_check() (the
 * pairs loaded in a child that reports back: subjects of good pairs,
 * file and reason for bad ones, no child left behind).
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "test.h"
#include "tls.h"

static char	 root[] = "/tmp/test_tls_check.XXXXXX";
static char	 msgs[4096];

static void
collect(void *ctx, const char *msg)
{
	(void)ctx;
	(void)strlcat(msgs, msg, sizeof(msgs));
	(void)strlcat(msgs, "\n", sizeof(msgs));
}

static void
path(char *dst, size_t size, const char *rel)
{
	(void)snprintf(dst, size, "%s/%s", root, rel);
}

static void
write_key(EVP_PKEY *k, const char *rel, mode_t mode)
{
	char	 p[256];
	FILE	*f;

	path(p, sizeof(p), rel);
	f = fopen(p, "w");
	if (f == NULL || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL,
	    NULL) != 1 || fclose(f) != 0 || chmod(p, mode) == -1)
		abort();
}

static void
write_cert(EVP_PKEY *k, const char *cn, const char *rel)
{
	X509		*x = X509_new();
	X509_NAME	*n;
	char		 p[256];
	FILE		*f;

	if (x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
	    X509_set_pubkey(x, k) != 1 || (n = X509_get_subject_name(x)) ==
	    NULL || X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, n) != 1 ||
	    X509_sign(x, k, EVP_sha256()) == 0)
		abort();
	path(p, sizeof(p), rel);
	if ((f = fopen(p, "w")) == NULL || PEM_write_X509(f, x) != 1 ||
	    fclose(f) != 0)
		abort();
	X509_free(x);
}

static int
no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

int
main(void)
{
	struct diag	 d = { collect, NULL, 0 };
	struct tls_pair	 good = { "/etc/ssl/a.crt", "/etc/ssl/a.key" };
	struct tls_pair	 p;
	struct file_id	 ids[2];
	struct stat	 st;
	struct buf	 subjects;
	EVP_PKEY	*k1, *k2;
	char		 f[256], host[256];

	if (mkdtemp(root) == NULL)
		abort();
	path(f, sizeof(f), "etc");
	(void)mkdir(f, 0755);
	path(f, sizeof(f), "etc/ssl");
	(void)mkdir(f, 0755);
	k1 = EVP_EC_gen("P-256");
	k2 = EVP_EC_gen("P-256");
	if (k1 == NULL || k2 == NULL)
		abort();
	write_cert(k1, "unit.test", "etc/ssl/a.crt");
	write_key(k1, "etc/ssl/a.key", 0600);
	write_key(k2, "etc/ssl/other.key", 0600);
	write_key(k1, "etc/ssl/open.key", 0644);
	f[0] = '\0';
	path(f, sizeof(f), "etc/ssl/garbage.key");
	if (file_write_atomic(f, "-----BEGIN PRIVATE KEY-----\nx\n"
	    "-----END PRIVATE KEY-----\n", 53, 0600) == -1)
		abort();

	/* tls_files_check: opens only. */
	CHECK(tls_files_check(root, &good, 1, ids, &d) == 0 && d.count == 0,
	    "a good pair passes the file check");
	path(f, sizeof(f), "etc/ssl/a.key");
	CHECK(stat(f, &st) == 0 && file_id_same(&ids[1], &st),
	    "the key's identity is returned");
	p = good;
	p.key = "/etc/ssl/open.key";
	msgs[0] = '\0';
	CHECK(tls_files_check(root, &p, 1, NULL, &d) == -1 &&
	    strstr(msgs, "/etc/ssl/open.key: private key: private key "
	    "readable by group or others") != NULL,
	    "a key readable by others is refused, with its file");
	/* An absolute symlink resolves inside the root: not the host file. */
	(void)snprintf(host, sizeof(host), "%s.host", root);
	if (file_write_atomic(host, "x", 1, 0600) == -1)
		abort();
	path(f, sizeof(f), "etc/ssl/link.key");
	if (symlink(host, f) == -1)
		abort();
	p.key = "/etc/ssl/link.key";
	msgs[0] = '\0';
	CHECK(tls_files_check(root, &p, 1, NULL, &d) == -1 &&
	    strstr(msgs, "link.key: private key: no such file") != NULL,
	    "a symlink out of the root is not followed");
	p = good;
	p.cert = "/etc/ssl";
	msgs[0] = '\0';
	CHECK(tls_files_check(root, &p, 1, NULL, &d) == -1 &&
	    strstr(msgs, "certificate: not a regular file") != NULL,
	    "a directory is not a certificate");

	/* tls_server_check: loaded in a child. */
	buf_init(&subjects, 4096);
	d.count = 0;
	msgs[0] = '\0';
	CHECK(tls_server_check(root, &good, 1, &subjects, &d) == 0 &&
	    d.count == 0 && subjects.data != NULL &&
	    strcmp(subjects.data, "/CN=unit.test\n") == 0,
	    "a good pair: its subject, no problem");
	CHECK(no_children(), "the checking child is reaped");
	p = good;
	p.key = "/etc/ssl/other.key";
	msgs[0] = '\0';
	CHECK(tls_server_check(root, &p, 1, NULL, &d) == -1 &&
	    strstr(msgs, "/etc/ssl/other.key: private key does not match "
	    "the certificate /etc/ssl/a.crt") != NULL,
	    "a key of another certificate: file and reason");
	p.key = "/etc/ssl/garbage.key";
	msgs[0] = '\0';
	CHECK(tls_server_check(root, &p, 1, NULL, &d) == -1 &&
	    strstr(msgs, "/etc/ssl/garbage.key: not a PEM private key") !=
	    NULL, "a broken key: file and reason");
	CHECK(no_children(), "no child left behind");

	buf_free(&subjects);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	(void)unlink(host);
	(void)snprintf(f, sizeof(f), "rm -rf '%s'", root);
	if (system(f) != 0)
		(void)fprintf(stderr, "cleanup of %s failed\n", root);
	return test_done();
}
