/*
 * tls.c — TLS contexts with OpenSSL 3: per-domain server contexts with
 * several certificates and SNI, rotating session ticket keys, and the
 * SMTP client's context.
 *
 * SECURITY
 *	tls_server_load() runs as root, not chrooted, in the one process
 *	that will serve the domain (its SMTP worker, after the fork from
 *	the master and before it enters the root) or in a throwaway
 *	checking child (tls_check.c); never in the master, so no domain's
 *	process inherits another domain's key.  It reads certificates and
 *	keys from paths inside the domain's root as if chrooted there
 *	(file_open_in_root: a symlink cannot lead to a host file), refuses
 *	key files readable by group or others, and checks every pair
 *	before anything is served.  tls_files_check() only opens and
 *	fstat()s the files: the master's own check.  Session ticket
 *	keys are made on first use in each serving process (a worker's
 *	keys are its own, never shared with another domain's worker) and
 *	replaced every TLS_TICKET_ROTATE seconds; the previous key still
 *	decrypts for one period and asks for a fresh ticket.  Protocols:
 *	TLS 1.2 and 1.3 only (RFC 8996, RFC 9325), forward-secret AEAD
 *	suites, no renegotiation, no compression.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "tls.h"
#include "xmalloc.h"

/* RFC 9325 §4.2: ECDHE with AEAD for TLS 1.2; 1.3 suites are all fine. */
#define TLS_CIPHERS_12	"ECDHE-ECDSA-AES128-GCM-SHA256:" \
			"ECDHE-RSA-AES128-GCM-SHA256:" \
			"ECDHE-ECDSA-AES256-GCM-SHA384:" \
			"ECDHE-RSA-AES256-GCM-SHA384:" \
			"ECDHE-ECDSA-CHACHA20-POLY1305:" \
			"ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_NAMES_MAX	1024

struct tls_group {
	SSL_CTX		*ctx;
	X509		*certs[TLS_PAIRS_MAX];
	int		 types[TLS_PAIRS_MAX];	/* EVP_PKEY base ids */
	size_t		 ncerts;
	char		 names[TLS_NAMES_MAX];
	char		 subject[256];
};

struct tls_server {
	struct tls_group groups[TLS_PAIRS_MAX];
	size_t		 ngroups;
};

struct tls_ticket_key {
	unsigned char	 name[16];
	unsigned char	 aes[32];
	unsigned char	 hmac[32];
	time_t		 created;
	int		 set;
};

static struct tls_ticket_key	tls_tk_cur, tls_tk_prev;
static char			tls_errbuf[256];

const char *
tls_error(void)
{
	unsigned long	 e;

	e = ERR_peek_last_error();
	if (e == 0)
		(void)strlcpy(tls_errbuf, "unknown TLS error",
		    sizeof(tls_errbuf));
	else
		ERR_error_string_n(e, tls_errbuf, sizeof(tls_errbuf));
	ERR_clear_error();
	return tls_errbuf;
}

/*
 * Open rel inside root dir as if chrooted there: a regular file, and
 * with secret one that neither group nor others may read.  The
 * descriptor, with its stat in *st; -1 with *error_r.
 */
static int
tls_open_in_root(const char *dir, const char *rel, int secret,
    struct stat *st, const char **error_r)
{
	int	 fd;

	if ((fd = file_open_in_root(dir, rel, O_RDONLY | O_NONBLOCK)) ==
	    -1) {
		*error_r = errno == ENOENT ? "no such file" : "cannot open";
		return -1;
	}
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode))
		*error_r = "not a regular file";
	else if (secret && (st->st_mode & 077) != 0)
		*error_r = "private key readable by group or others "
		    "(chmod 600)";
	else
		return fd;
	(void)close(fd);
	return -1;
}

/* Read rel inside root dir (tls_open_in_root); 0, or -1 with *error_r. */
static int
tls_read_in_root(const char *dir, const char *rel, int secret,
    struct buf *out, const char **error_r)
{
	struct stat	 st;
	int		 fd, rv;

	if ((fd = tls_open_in_root(dir, rel, secret, &st, error_r)) == -1)
		return -1;
	rv = file_read_fd(fd, TLS_FILE_MAX, out, error_r);
	(void)close(fd);
	return rv;
}

int
tls_files_check(const char *dir, const struct tls_pair *p, size_t n,
    struct file_id *ids_r, struct diag *d)
{
	struct stat	 st;
	const char	*err;
	size_t		 i;
	int		 fd, before = d->count;

	if (n > TLS_PAIRS_MAX) {
		diag_report(d, dir, 0, "too many certificates (limit %d)",
		    TLS_PAIRS_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((fd = tls_open_in_root(dir, p[i].cert, 0, &st,
		    &err)) == -1) {
			diag_report(d, p[i].cert, 0, "certificate: %s (in %s)",
			    err, dir);
			continue;
		}
		if (ids_r != NULL)
			file_id_of(&ids_r[2 * i], &st);
		(void)close(fd);
		if ((fd = tls_open_in_root(dir, p[i].key, 1, &st,
		    &err)) == -1) {
			diag_report(d, p[i].key, 0, "private key: %s (in %s)",
			    err, dir);
			continue;
		}
		if (ids_r != NULL)
			file_id_of(&ids_r[2 * i + 1], &st);
		(void)close(fd);
	}
	return d->count > before ? -1 : 0;
}

/* The DNS names of x (subjectAltName, else the CN), comma-separated. */
static void
tls_cert_names(X509 *x, char *dst, size_t size)
{
	GENERAL_NAMES		*gens;
	const GENERAL_NAME	*g;
	const unsigned char	*p;
	X509_NAME		*sn;
	char			 cn[256];
	int			 i, len;

	dst[0] = '\0';
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		p = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (dst[0] != '\0')
			(void)strlcat(dst, ",", size);
		(void)snprintf(cn, sizeof(cn), "%.*s", len, (const char *)p);
		(void)strlcat(dst, cn, size);
	}
	GENERAL_NAMES_free(gens);
	if (dst[0] != '\0')
		return;
	sn = X509_get_subject_name(x);
	if (sn != NULL && X509_NAME_get_text_by_NID(sn, NID_commonName, cn,
	    sizeof(cn)) > 0)
		(void)strlcpy(dst, cn, size);
}

static int
tls_ticket_new(struct tls_ticket_key *k)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return -1;
	k->created = time(NULL);
	k->set = 1;
	return 0;
}

/* Rotate when the current key is older than TLS_TICKET_ROTATE. */
static int
tls_ticket_rotate(void)
{
	time_t	 now = time(NULL);

	if (tls_tk_cur.set && now - tls_tk_cur.created < TLS_TICKET_ROTATE &&
	    now >= tls_tk_cur.created)
		return 0;
	if (tls_tk_cur.set)
		tls_tk_prev = tls_tk_cur;
	return tls_ticket_new(&tls_tk_cur);
}

static int
tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_ticket_key	*k;
	OSSL_PARAM		 params[2];

	(void)ssl;
	if (tls_ticket_rotate() == -1)
		return -1;
	if (enc) {
		k = &tls_tk_cur;
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			return -1;
		memcpy(key_name, k->name, sizeof(k->name));
	} else {
		if (memcmp(key_name, tls_tk_cur.name, 16) == 0)
			k = &tls_tk_cur;
		else if (tls_tk_prev.set &&
		    memcmp(key_name, tls_tk_prev.name, 16) == 0)
			k = &tls_tk_prev;
		else
			return 0;	/* unknown key: full handshake */
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)(uintptr_t)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params) != 1)
		return -1;
	if (enc) {
		if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes,
		    iv) != 1)
			return -1;
		return 1;
	}
	if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes,
	    iv) != 1)
		return -1;
	return k == &tls_tk_prev ? 2 : 1;
}

/* RFC 6066 §3: pick the context whose certificates carry the name. */
static int
tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_server	*t = arg;
	const char		*name;
	size_t			 g, i;

	(void)alert;
	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL || t->ngroups < 2)
		return SSL_TLSEXT_ERR_OK;
	for (g = 0; g < t->ngroups; g++)
		for (i = 0; i < t->groups[g].ncerts; i++)
			if (X509_check_host(t->groups[g].certs[i], name, 0, 0,
			    NULL) == 1) {
				if (SSL_set_SSL_CTX(ssl, t->groups[g].ctx) ==
				    NULL)
					return SSL_TLSEXT_ERR_ALERT_FATAL;
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK;	/* the default certificate */
}

static SSL_CTX *
tls_server_ctx(struct tls_server *t, const char *dir)
{
	SSL_CTX		*ctx;
	unsigned char	 sid[SSL_MAX_SID_CTX_LENGTH];
	size_t		 n;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1)
		goto fail;
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* The output buffer may move between retries of a write. */
	(void)SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* Sessions of one domain resume in that domain only. */
	n = strlen(dir);
	if (n > sizeof(sid))
		n = sizeof(sid);
	memcpy(sid, dir + strlen(dir) - n, n);
	if (SSL_CTX_set_session_id_context(ctx, sid, (unsigned int)n) != 1)
		goto fail;
	(void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb) != 1)
		goto fail;
	(void)SSL_CTX_set_tlsext_servername_callback(ctx, tls_sni_cb);
	(void)SSL_CTX_set_tlsext_servername_arg(ctx, t);
	return ctx;

 fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Read and check one pair; 0 with the certificate chain and key. */
static int
tls_pair_read(const char *dir, const struct tls_pair *p, X509 **x_r,
    STACK_OF(X509) **chain_r, EVP_PKEY **key_r, struct diag *d)
{
	struct buf	 cb, kb;
	BIO		*bio = NULL;
	X509		*x = NULL, *c;
	STACK_OF(X509)	*chain = NULL;
	EVP_PKEY	*key = NULL;
	const char	*err;
	char		 date[64];
	int		 r = -1;
	BIO		*mb;

	buf_init(&cb, TLS_FILE_MAX);
	buf_init(&kb, TLS_FILE_MAX);
	if (tls_read_in_root(dir, p->cert, 0, &cb, &err) == -1) {
		diag_report(d, p->cert, 0, "certificate: %s (in %s)", err, dir);
		goto out;
	}
	if (tls_read_in_root(dir, p->key, 1, &kb, &err) == -1) {
		diag_report(d, p->key, 0, "private key: %s (in %s)", err, dir);
		goto out;
	}
	if ((bio = BIO_new_mem_buf(cb.data, (int)cb.len)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		diag_report(d, p->cert, 0, "not a PEM certificate: %s",
		    tls_error());
		goto out;
	}
	chain = sk_X509_new_null();
	while (chain != NULL &&
	    (c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(chain, c) == 0) {
			X509_free(c);
			break;
		}
	ERR_clear_error();
	BIO_free(bio);
	bio = NULL;
	if ((bio = BIO_new_mem_buf(kb.data, (int)kb.len)) == NULL ||
	    (key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		diag_report(d, p->key, 0, "not a PEM private key: %s",
		    tls_error());
		goto out;
	}
	if (X509_check_private_key(x, key) != 1) {
		ERR_clear_error();
		diag_report(d, p->key, 0, "private key does not match the "
		    "certificate %s", p->cert);
		goto out;
	}
	date[0] = '\0';
	if ((mb = BIO_new(BIO_s_mem())) != NULL) {
		int	 n;

		if (ASN1_TIME_print(mb, X509_get0_notAfter(x)) == 1 &&
		    (n = BIO_read(mb, date, sizeof(date) - 1)) > 0)
			date[n] = '\0';
		BIO_free(mb);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		diag_report(d, p->cert, 0, "certificate expired (not after "
		    "%s)", date);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
		diag_report(d, p->cert, 0, "certificate not yet valid");
		goto out;
	}
	*x_r = x;
	*chain_r = chain;
	*key_r = key;
	x = NULL;
	chain = NULL;
	key = NULL;
	r = 0;

 out:
	BIO_free(bio);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	buf_free_secret(&kb);
	buf_free(&cb);
	return r;
}

struct tls_server *
tls_server_load(const char *dir, const struct tls_pair *p, size_t n,
    struct diag *d)
{
	struct tls_server	*t;
	struct tls_group	*g;
	X509			*x;
	STACK_OF(X509)		*chain;
	EVP_PKEY		*key;
	X509_NAME		*sn;
	char			 names[TLS_NAMES_MAX];
	size_t			 i, k, j;
	int			 type, before = d->count, ok;

	if (n == 0)
		return NULL;
	if (n > TLS_PAIRS_MAX) {
		diag_report(d, dir, 0, "too many certificates (limit %d)",
		    TLS_PAIRS_MAX);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	for (i = 0; i < n; i++) {
		x = NULL;
		chain = NULL;
		key = NULL;
		if (tls_pair_read(dir, &p[i], &x, &chain, &key, d) == -1)
			continue;
		tls_cert_names(x, names, sizeof(names));
		type = EVP_PKEY_get_base_id(key);
		/* Same names, another key type: the same context. */
		for (k = 0; k < t->ngroups; k++) {
			g = &t->groups[k];
			if (strcmp(g->names, names) != 0)
				continue;
			for (j = 0; j < g->ncerts; j++)
				if (g->types[j] == type)
					break;
			if (j == g->ncerts)
				break;
		}
		if (k == t->ngroups) {
			g = &t->groups[t->ngroups];
			if ((g->ctx = tls_server_ctx(t, dir)) == NULL) {
				diag_report(d, p[i].cert, 0, "TLS context: %s",
				    tls_error());
				goto next;
			}
			(void)strlcpy(g->names, names, sizeof(g->names));
			sn = X509_get_subject_name(x);
			if (sn == NULL || X509_NAME_oneline(sn, g->subject,
			    sizeof(g->subject)) == NULL)
				g->subject[0] = '\0';
			t->ngroups++;
		}
		g = &t->groups[k];
		ok = SSL_CTX_use_certificate(g->ctx, x) == 1 &&
		    SSL_CTX_use_PrivateKey(g->ctx, key) == 1 &&
		    SSL_CTX_set1_chain(g->ctx, chain) == 1 &&
		    SSL_CTX_check_private_key(g->ctx) == 1;
		if (!ok) {
			diag_report(d, p[i].cert, 0, "cannot use the "
			    "certificate: %s", tls_error());
			goto next;
		}
		X509_up_ref(x);
		g->certs[g->ncerts] = x;
		g->types[g->ncerts++] = type;
 next:
		X509_free(x);
		sk_X509_pop_free(chain, X509_free);
		EVP_PKEY_free(key);
	}
	if (d->count > before || t->ngroups == 0) {
		tls_server_free(t);
		return NULL;
	}
	return t;
}

void
tls_server_free(struct tls_server *t)
{
	size_t	 g, i;

	if (t == NULL)
		return;
	for (g = 0; g < t->ngroups; g++) {
		for (i = 0; i < t->groups[g].ncerts; i++)
			X509_free(t->groups[g].certs[i]);
		SSL_CTX_free(t->groups[g].ctx);
	}
	free(t);
}

SSL *
tls_server_ssl(struct tls_server *t, int fd)
{
	SSL	*ssl;

	if (t == NULL || t->ngroups == 0 ||
	    (ssl = SSL_new(t->groups[0].ctx)) == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

size_t
tls_server_count(const struct tls_server *t)
{
	size_t	 g, n = 0;

	for (g = 0; t != NULL && g < t->ngroups; g++)
		n += t->groups[g].ncerts;
	return n;
}

const char *
tls_server_subject(const struct tls_server *t, size_t i)
{
	if (t == NULL || i >= t->ngroups)
		return "";
	return t->groups[i].subject;
}

SSL_CTX *
tls_client_ctx(const char *ca_pem, size_t ca_len, const char **error_r)
{
	SSL_CTX		*ctx;
	X509_STORE	*st;
	BIO		*bio;
	X509		*x;
	int		 n = 0;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*error_r = tls_error();
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		*error_r = tls_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION);
	(void)SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ca_pem != NULL && ca_len > 0) {
		st = SSL_CTX_get_cert_store(ctx);
		if ((bio = BIO_new_mem_buf(ca_pem, (int)ca_len)) == NULL) {
			*error_r = tls_error();
			SSL_CTX_free(ctx);
			return NULL;
		}
		while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) !=
		    NULL) {
			if (X509_STORE_add_cert(st, x) == 1)
				n++;
			X509_free(x);
		}
		ERR_clear_error();
		BIO_free(bio);
		if (n == 0) {
			*error_r = "no certificate in the CA file";
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

const char *
tls_version(const SSL *ssl)
{
	return SSL_get_version(ssl);
}

const char *
tls_cipher(const SSL *ssl)
{
	const char	*c = SSL_get_cipher_name(ssl);

	return c != NULL ? c : "unknown";
}

int
tls_cipher_bits(const SSL *ssl)
{
	return SSL_get_cipher_bits(ssl, NULL);
}
