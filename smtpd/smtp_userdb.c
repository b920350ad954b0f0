/*
 * smtp_userdb.c — the domain's users and aliases, as the SMTP engine
 * checks local recipients against them (smtp_envelope.c).
 *
 * DESCRIPTION
 *	Reads etc/passwd and etc/aliases inside the domain's root and
 *	reads them again whenever they change (struct file_id), so
 *	that users added with virtmail are known without a restart.  One
 *	struct smtp_userdb per worker, shared by its sessions.
 *
 * SECURITY
 *	Runs in the domain's worker, chrooted into the domain's root as
 *	its run_as account.  The files are the domain's own and are read
 *	through the checked parsers of common/passwd.c and
 *	common/aliases.c; the local part looked up comes from the peer
 *	and is refused unless it is a valid user name (no '/', "..", ':'
 *	or controls).  An unreadable passwd is a temporary failure, never
 *	an unknown user.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "aliases.h"
#include "compat.h"
#include "diag.h"
#include "log.h"
#include "passwd.h"
#include "smtp_session.h"

void
smtp_userdb_init(struct smtp_userdb *u)
{
	memset(u, 0, sizeof(*u));
	u->passwd_path = "/etc/passwd";
	u->aliases_path = "/etc/aliases";
}

void
smtp_userdb_free(struct smtp_userdb *u)
{
	if (u->pw_loaded)
		passwd_free(&u->pw);
	if (u->al_loaded)
		aliases_free(&u->al);
	u->pw_loaded = u->al_loaded = 0;
}

static void
userdb_diag(void *ctx, const char *msg)
{
	(void)ctx;
	log_warnx("%s", msg);
}

/*
 * Re-read passwd when it changed.  A missing or unreadable passwd is a
 * temporary failure (-1): better a retry than a wrong 550.
 */
static int
userdb_passwd(struct smtp_userdb *u)
{
	struct stat	 st;
	struct diag	 d = { userdb_diag, NULL, 0 };
	const char	*error;

	if (stat(u->passwd_path, &st) == -1) {
		log_warn("%s", u->passwd_path);
		return -1;
	}
	if (u->pw_loaded && file_id_same(&u->pw_id, &st))
		return 0;
	if (u->pw_loaded) {
		passwd_free(&u->pw);
		u->pw_loaded = 0;
	}
	memset(&u->pw, 0, sizeof(u->pw));
	if (passwd_load(&u->pw, u->passwd_path, &d, &error) == -1) {
		log_warnx("%s: %s", u->passwd_path, error);
		return -1;
	}
	u->pw_loaded = 1;
	file_id_of(&u->pw_id, &st);
	return 0;
}

/* Re-read aliases when changed; a missing file means no aliases. */
static int
userdb_aliases(struct smtp_userdb *u)
{
	struct stat	 st;
	struct diag	 d = { userdb_diag, NULL, 0 };
	const char	*error;

	if (stat(u->aliases_path, &st) == -1) {
		if (errno != ENOENT) {
			log_warn("%s", u->aliases_path);
			return -1;
		}
		if (u->al_loaded)
			aliases_free(&u->al);
		u->al_loaded = 0;
		return 0;
	}
	if (u->al_loaded && file_id_same(&u->al_id, &st))
		return 0;
	if (u->al_loaded) {
		aliases_free(&u->al);
		u->al_loaded = 0;
	}
	memset(&u->al, 0, sizeof(u->al));
	if (aliases_load(&u->al, u->aliases_path, &d, &error) == -1) {
		log_warnx("%s: %s", u->aliases_path, error);
		return -1;
	}
	u->al_loaded = 1;
	file_id_of(&u->al_id, &st);
	return 0;
}

int
smtp_userdb_refresh(struct smtp_userdb *u)
{
	if (userdb_passwd(u) == -1 || userdb_aliases(u) == -1)
		return -1;
	return 0;
}

int
smtp_userdb_lookup(struct smtp_userdb *u, const char *local, char *name_r,
    size_t size)
{
	char			 lower[ADDR_LOCAL_MAX + 1];
	const struct alias	*al;
	size_t			 i, n;

	n = strlen(local);
	if (n == 0 || n >= sizeof(lower))
		return 0;
	for (i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)local[i]);
	lower[n] = '\0';
	/* Refuses '/', "..", ':' and controls before any lookup. */
	if (!passwd_name_valid(lower))
		return 0;
	if (smtp_userdb_refresh(u) == -1)
		return -1;
	for (i = 0; i < u->pw.n; i++) {
		if (strcasecmp(u->pw.entries[i].name, lower) == 0) {
			if (strlcpy(name_r, u->pw.entries[i].name, size) >=
			    size)
				return 0;
			return 1;
		}
	}
	if (u->al_loaded && (al = aliases_find(&u->al, lower)) != NULL) {
		if (strlcpy(name_r, al->name, size) >= size)
			return 0;
		return 1;
	}
	return 0;
}
