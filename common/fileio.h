/*
 * fileio.h — small, checked file helpers: read a whole file with a size
 * limit, write a file atomically (temp file, fsync, rename, fsync dir),
 * tell whether a file changed.
 */
#ifndef VIRTMAIL_FILEIO_H
#define VIRTMAIL_FILEIO_H

#include <sys/stat.h>
#include <sys/types.h>

#include <stddef.h>
#include <time.h>

#include "buf.h"

/*
 * Read all of path into out (appending), refusing files over max bytes.
 * Returns 0, or -1 with errno set (ENOENT, EFBIG, ...) and *error_r a
 * static description.
 */
int	file_read_all(const char *path, size_t max, struct buf *out,
	    const char **error_r);
/* The same for an open descriptor, which stays open. */
int	file_read_fd(int fd, size_t max, struct buf *out, const char **error_r);
/*
 * Open rel inside the directory tree root as if root were "/": ".."
 * and symlinks, absolute ones included, cannot lead out of root, and
 * /proc magic links are refused (openat2 RESOLVE_IN_ROOT).  This is
 * how a process outside a domain's root reads a file the domain's
 * administrator controls.  root NULL or "" is "/".  A descriptor
 * (close-on-exec), or -1 with errno.
 */
int	file_open_in_root(const char *root, const char *rel, int flags);
/*
 * Replace path with data atomically: write path.tmp.PID with mode, fsync,
 * rename over path, fsync the directory.  Returns 0 or -1 with errno.
 */
int	file_write_atomic(const char *path, const void *data, size_t len,
	    mode_t mode);
/* fsync the directory that holds path; 0 or -1 with errno. */
int	file_fsync_dir(const char *path);
/*
 * One version of a file, for caches that read a file again only when it
 * changed: any write, rename over it or chmod makes file_id_same() 0.
 */
struct file_id {
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime, ctime;
};
void	file_id_of(struct file_id *id, const struct stat *st);
int	file_id_same(const struct file_id *id, const struct stat *st);
/* write(2) all of len bytes, retrying on EINTR; 0 or -1 with errno. */
int	write_all(int fd, const void *data, size_t len);

#endif
