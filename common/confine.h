/*
 * confine.h — the kernel keeps a process to one directory tree
 * (Landlock), for the root processes that serve a domain from outside
 * its root.
 */
#ifndef VIRTMAIL_CONFINE_H
#define VIRTMAIL_CONFINE_H

#define CONFINE_READ	0x00	/* read files and list directories */
#define CONFINE_WRITE	0x01	/* also create, write, rename, remove */

/*
 * From now on, for this process and its children: no file access
 * outside dir (not even a read), inside it reads only or, with
 * CONFINE_WRITE, everything but executing and making devices; no
 * signal to a process outside the caller's tree, no abstract socket
 * outside it (kernels with Landlock ABI 6).  Sets no_new_privs.  Open
 * what is needed outside dir before.  A kernel without Landlock: 0,
 * with a debug line.  0, or -1 with *error_r.
 */
int	confine_to_root(const char *dir, int how, const char **error_r);

#endif
