/*
 * tls.h — TLS contexts (OpenSSL 3) for the servers and the SMTP client.
 *
 * A domain's server contexts are loaded by that domain's own serving
 * process, as root before it enters the root and drops privileges, from
 * files inside the domain's root; the root master only checks the files
 * (tls_files_check) and has the pairs loaded in a throwaway child
 * (tls_server_check), so it never holds a private key and no domain's
 * process inherits another domain's.
 */
#ifndef VIRTMAIL_TLS_H
#define VIRTMAIL_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "diag.h"

#define TLS_PAIRS_MAX		8	/* cert/key pairs per domain */
#define TLS_FILE_MAX		(1024 * 1024)
#define TLS_TICKET_ROTATE	(12 * 3600)	/* s: a ticket key's life */

/* One certificate (optionally followed by its chain) and its key, as
 * paths inside a domain's root. */
struct tls_pair {
	const char	*cert;
	const char	*key;
};

struct tls_server;
struct file_id;

/*
 * Load the pairs (files under root dir) into server contexts: TLS 1.2
 * and 1.3 only, forward-secret AEAD suites, session tickets with keys
 * that rotate every TLS_TICKET_ROTATE seconds, and SNI choosing among
 * the pairs by the names their certificates carry (the first pair is
 * the default).  Pairs whose certificates carry the same names share a
 * context, so an RSA and an ECDSA certificate of one name are offered
 * side by side.  Every problem (missing file, key that does not match
 * its certificate, expired or not yet valid certificate, key readable
 * by group or others) is reported through d with the file at fault.
 * NULL when anything is wrong.
 */
struct tls_server *tls_server_load(const char *dir, const struct tls_pair *p,
	    size_t n, struct diag *d);
void	tls_server_free(struct tls_server *t);
/*
 * Without reading a byte of them: open each file of the pairs inside
 * root dir as tls_server_load() would, and check that it is a regular
 * file and that a key is readable by its owner only.  ids_r (2 * n
 * entries, certificate then key; may be NULL) gets each file's
 * identity, so that a renewed certificate can be told on reload.
 * Problems go through d; 0 or -1.
 */
int	tls_files_check(const char *dir, const struct tls_pair *p, size_t n,
	    struct file_id *ids_r, struct diag *d);
/*
 * Load the pairs as tls_server_load() would, in a child process that
 * exits at once (tls_check.c), so that the caller never holds a
 * private key.  Problems go through d as the child found them;
 * subjects_r (may be NULL) gets the certificates' subjects, one a
 * line.  0 when every pair is good, else -1.
 */
int	tls_server_check(const char *dir, const struct tls_pair *p, size_t n,
	    struct buf *subjects_r, struct diag *d);
/* A new server-side SSL for fd (not yet handshaking); NULL on error. */
SSL	*tls_server_ssl(struct tls_server *t, int fd);
/* The subject of the default certificate, for -t output. */
const char *tls_server_subject(const struct tls_server *t, size_t i);
size_t	tls_server_count(const struct tls_server *t);

/*
 * A client context: TLS 1.2 and up; with ca_pem (a CA bundle already
 * read into memory, may be NULL) peers can be verified.  NULL with
 * *error_r.
 */
SSL_CTX	*tls_client_ctx(const char *ca_pem, size_t ca_len,
	    const char **error_r);

/* The last OpenSSL error as text (the queue is cleared). */
const char *tls_error(void);

/* A short description of the connection: "TLSv1.3 TLS_AES_..." parts. */
const char *tls_version(const SSL *ssl);
const char *tls_cipher(const SSL *ssl);
int	tls_cipher_bits(const SSL *ssl);

#endif
