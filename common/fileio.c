/*
 * fileio.c — checked file helpers: bounded whole-file reads and atomic
 * replacement (temp file, fsync, rename, fsync the directory).
 *
 * SECURITY: used on config, passwd/shadow and queue files, by root
 * before the chroot and by workers inside it.  Reads are bounded by the
 * caller's maximum even if the file grows while read, and only regular
 * files are read, so a FIFO or device planted in a domain root cannot
 * hang or flood a daemon.  The read buffer on the stack is wiped, since
 * it may have held shadow hashes.  Never exits.
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "fileio.h"

#define FILEIO_CHUNK	8192

int
file_read_all(const char *path, size_t max, struct buf *out,
    const char **error_r)
{
	int	 fd, rv, saved;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	do {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	} while (fd == -1 && errno == EINTR);
	if (fd == -1) {
		if (error_r != NULL)
			*error_r = "cannot open";
		return -1;
	}
	rv = file_read_fd(fd, max, out, error_r);
	saved = errno;
	if (close(fd) == -1 && rv == 0) {
		if (error_r != NULL)
			*error_r = "close error";
		return -1;
	}
	errno = saved;
	return rv;
}

int
file_read_fd(int fd, size_t max, struct buf *out, const char **error_r)
{
	struct stat	 st;
	char		 tmp[FILEIO_CHUNK];
	const char	*err = NULL;
	size_t		 oldlen, got, want;
	ssize_t		 n;
	int		 saved;

	oldlen = out->len;
	got = 0;
	if (fstat(fd, &st) == -1) {
		err = "cannot stat";
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		err = "is a directory";
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		err = "not a regular file";
		goto fail;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
		errno = EFBIG;
		err = "file too large";
		goto fail;
	}
	/* A hint only: the file may change size while we read. */
	(void)buf_reserve(out, (size_t)st.st_size);

	for (;;) {
		/* Ask for one byte past max, to see a file that grew. */
		want = max - got < sizeof(tmp) ? max - got + 1 : sizeof(tmp);
		n = read(fd, tmp, want);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err = "read error";
			goto fail;
		}
		if (n == 0)
			break;
		if ((size_t)n > max - got) {
			errno = EFBIG;
			err = "file too large";
			goto fail;
		}
		if (buf_append(out, tmp, (size_t)n) == -1) {
			err = errno == ENOMEM ? "out of memory" :
			    "buffer limit reached";
			goto fail;
		}
		got += (size_t)n;
	}
	explicit_bzero(tmp, sizeof(tmp));
	if (error_r != NULL)
		*error_r = NULL;
	return 0;

 fail:
	saved = errno;
	explicit_bzero(tmp, sizeof(tmp));
	/* Leave out as it was; wipe what was appended. */
	if (out->len > oldlen) {
		explicit_bzero(out->data + oldlen, out->len - oldlen);
		out->len = oldlen;
		out->data[oldlen] = '\0';
	}
	if (error_r != NULL)
		*error_r = err;
	errno = saved;
	return -1;
}

int
file_open_in_root(const char *root, const char *rel, int flags)
{
	struct open_how	 how;
	int		 dfd, fd, saved;

	if (root == NULL || *root == '\0')
		root = "/";
	while (*rel == '/')
		rel++;
	if ((dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	do {
		fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	} while (fd == -1 && (errno == EINTR || errno == EAGAIN));
	if (fd == -1 && errno == ENOSYS) {
		/* XXX kernels before 5.6: refuse a symlink at the end only. */
		fd = openat(dfd, rel, flags | O_CLOEXEC | O_NOCTTY |
		    O_NOFOLLOW);
	}
	saved = errno;
	(void)close(dfd);
	errno = saved;
	return fd;
}

int
write_all(int fd, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
file_fsync_dir(const char *path)
{
	char		 dir[PATH_MAX];
	const char	*slash;
	size_t		 dlen;
	int		 fd, r, saved;

	slash = strrchr(path, '/');
	if (slash == NULL) {
		if (strlcpy(dir, ".", sizeof(dir)) >= sizeof(dir))
			goto toolong;
	} else {
		dlen = slash == path ? 1 : (size_t)(slash - path);
		if (dlen >= sizeof(dir))
			goto toolong;
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
	}
	do {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} while (fd == -1 && errno == EINTR);
	if (fd == -1)
		return -1;
	r = fsync(fd);
	/* Some file systems cannot fsync a directory; nothing to gain. */
	if (r == -1 && errno == EINVAL)
		r = 0;
	saved = errno;
	if (close(fd) == -1 && r == 0)
		return -1;
	errno = saved;
	return r;

 toolong:
	errno = ENAMETOOLONG;
	return -1;
}

int
file_write_atomic(const char *path, const void *data, size_t len,
    mode_t mode)
{
	char	 tmp[PATH_MAX];
	int	 fd, n, saved, tries;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (tries = 0;; tries++) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, mode);
		if (fd != -1)
			break;
		if (errno == EINTR)
			continue;
		/* Left over by a crashed process that had our pid. */
		if (errno == EEXIST && tries == 0 && unlink(tmp) == 0)
			continue;
		return -1;
	}
	/* The mode asked for, whatever the umask. */
	if (fchmod(fd, mode) == -1)
		goto fail;
	if (write_all(fd, data, len) == -1)
		goto fail;
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	return file_fsync_dir(path);

 fail:
	saved = errno;
	if (fd != -1)
		(void)close(fd);
	(void)unlink(tmp);
	errno = saved;
	return -1;
}

void
file_id_of(struct file_id *id, const struct stat *st)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

int
file_id_same(const struct file_id *id, const struct stat *st)
{
	return id->dev == st->st_dev && id->ino == st->st_ino &&
	    id->size == st->st_size &&
	    id->mtime.tv_sec == st->st_mtim.tv_sec &&
	    id->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	    id->ctime.tv_sec == st->st_ctim.tv_sec &&
	    id->ctime.tv_nsec == st->st_ctim.tv_nsec;
}
