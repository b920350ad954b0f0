/*
 * auth.h — the password check shared by virtmail-pop3d and the SMTP
 * AUTH service of virtmail-smtpd.  Runs as root (it reads etc/shadow),
 * normally chrooted into the domain's root.
 */
#ifndef VIRTMAIL_AUTH_H
#define VIRTMAIL_AUTH_H

#include <stddef.h>

#include "passwd.h"

/*
 * Check local user (a bare name, already stripped of any "@domain")
 * and pass against root's etc/passwd and etc/shadow (root is "" once
 * chrooted).  valid 0 says the caller already refused the name: the
 * check still costs the same.  crypt(3) runs for every attempt, against
 * a dummy hash of the same kind when the user is unknown, locked or
 * malformed, and the result is compared in constant time, so neither
 * the answer nor its timing tells an unknown user from a wrong
 * password.  Locked, expired and uid-0 accounts fail.  1 with the
 * user's name in name_r (PASSWD_NAME_MAX + 1 bytes), else 0.  Never
 * logs the password; the caller wipes it.
 */
int	auth_password_check(const char *root, const char *user, int valid,
	    const char *pass, char name_r[PASSWD_NAME_MAX + 1]);
/* Compare two strings in time that depends on the length of a only. */
int	auth_equal(const char *a, const char *b);

#endif
