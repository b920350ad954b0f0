/*
 * auth.c — the password check against a domain's own etc/passwd and
 * etc/shadow, shared by virtmail-pop3d (pop3d/auth.c) and the SMTP
 * AUTH service (smtpd/smtp_auth.c).
 *
 * SECURITY
 *	Runs as root in a process that never reads the network, outside
 *	the domain's root: both files are opened resolved inside the
 *	domain's root (file_open_in_root), so a symlink planted there
 *	cannot lead to a host file.  Its only input is a user name and a
 *	password from a less privileged process, both untrusted: the name
 *	is checked with passwd_name_valid() before any lookup.  crypt(3)
 *	runs for every attempt, against a dummy hash of the same kind when
 *	the user is unknown or locked, so timing and answer do not tell an
 *	unknown user from a wrong password; the result is compared in
 *	constant time; crypt's scratch space is wiped; nothing is logged.
 */
#include <sys/types.h>

#include <crypt.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "compat.h"
#include "diag.h"
#include "fileio.h"
#include "log.h"
#include "passwd.h"
#include "privbind.h"
#include "shadow.h"

/* Used when a domain has no usable hash at all: sha512-crypt. */
#define AUTH_DUMMY_HASH	"$6$vmdummysaltvalu$srIWP.94cFZgKZRcdI8iWtH96OE0f" \
			"An.kWkEk6B3xrKKoL7hcDA2WxhoybuJHdUcTZv7SVkEFIP.CQ" \
			"uBWYdSj1"

static int
auth_usable(const char *hash)
{
	return hash != NULL && !shadow_hash_locked(hash) &&
	    strcmp(hash, "x") != 0;
}

int
auth_equal(const char *a, const char *b)
{
	size_t		 i, la = strlen(a), lb = strlen(b);
	unsigned char	 d = 0;

	if (la != lb)
		return 0;
	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static void
auth_diag(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

/*
 * Read root's etc/passwd into pf or etc/shadow into sf, resolved inside
 * root (file_open_in_root): this may run as root outside the domain's
 * root.  A file that cannot be read leaves an empty table behind, so
 * every check fails.
 */
static void
auth_load(const char *root, const char *rel, struct passwd_file *pf,
    struct shadow_file *sf, struct diag *d)
{
	const char	*err;
	char		 name[PATH_MAX];
	int		 fd, n;

	n = snprintf(name, sizeof(name), "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= sizeof(name) ||
	    (fd = file_open_in_root(root, rel, O_RDONLY | O_NONBLOCK)) == -1)
		return;
	if (pf != NULL)
		(void)passwd_load_fd(pf, fd, name, d, &err);
	else
		(void)shadow_load_fd(sf, fd, name, d, &err);
	(void)close(fd);
}

int
auth_password_check(const char *root, const char *user, int valid,
    const char *pass, char name_r[PASSWD_NAME_MAX + 1])
{
	struct passwd_file		 pf;
	struct shadow_file		 sf;
	struct diag			 d = { auth_diag, NULL, 0 };
	const struct passwd_entry	*pw = NULL;
	const struct shadow_entry	*sh = NULL;
	struct crypt_data		*cd;
	const char			*hash = NULL, *dummy = AUTH_DUMMY_HASH;
	const char			*target, *out, *err;
	char				 pwname[PATH_MAX];
	size_t				 i;
	int				 usable, match, ok;

	name_r[0] = '\0';
	memset(&pf, 0, sizeof(pf));
	memset(&sf, 0, sizeof(sf));
	if (!passwd_name_valid(user))
		valid = 0;
	(void)snprintf(pwname, sizeof(pwname), "%s/etc/passwd", root);
	auth_load(root, "etc/passwd", &pf, NULL, &d);
	auth_load(root, "etc/shadow", NULL, &sf, &d);
	if (valid && (pw = passwd_find(&pf, user)) != NULL) {
		sh = shadow_find(&sf, user);
		hash = sh != NULL ? sh->hash : pw->passwd;
	}
	usable = auth_usable(hash);
	/* The dummy costs what a real hash of this domain costs. */
	for (i = 0; i < sf.n; i++)
		if (auth_usable(sf.entries[i].hash) &&
		    sf.entries[i].hash[0] == '$') {
			dummy = sf.entries[i].hash;
			break;
		}
	target = usable ? hash : dummy;

	if ((cd = calloc(1, sizeof(*cd))) == NULL) {
		match = 0;
		usable = 0;
	} else {
		out = crypt_rn(pass, target, cd, sizeof(*cd));
		match = out != NULL && out[0] != '*' && auth_equal(out, target);
		explicit_bzero(cd, sizeof(*cd));
		free(cd);
	}
	ok = valid && pw != NULL && usable && match && pw->uid != 0 &&
	    !(sh != NULL && shadow_expired(sh, (long)(time(NULL) / 86400)));
	/* An account with another domain's or the host's ids: no login. */
	if (ok && (priv_id_check(root, IDPOLICY_UID, (unsigned long)pw->uid,
	    user, pwname, pw->lineno, &err) == -1 || priv_id_check(root,
	    IDPOLICY_GID, (unsigned long)pw->gid, user, pwname, pw->lineno,
	    &err) == -1)) {
		log_warnx("auth refused: %s", err);
		ok = 0;
	}
	if (ok && strlcpy(name_r, user, PASSWD_NAME_MAX + 1) >=
	    PASSWD_NAME_MAX + 1)
		ok = 0;
	passwd_free(&pf);
	shadow_free(&sf);
	return ok;
}
