/*
 * fsync_loop — how fast this disk makes small files durable, the
 * yardstick the SMTP figures of the issue came with ("a bare
 * create+write+fsync+rename+fsync-dir loop on the same disk does about
 * 2,260 per second for 1 KiB").
 *
 *	fsync_loop DIR COUNT SIZE
 *
 * In DIR (which must exist and be empty), COUNT times: create
 * tmp/N, write SIZE bytes, fsync, rename to new/N, fsync new/.  Prints
 * "files=COUNT seconds=S per_second=R".  The files are left for the
 * caller to remove (removing them here would slow whatever runs next
 * on this file system, docs/performance.md).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		err(1, "clock_gettime");
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	char	 tmp[4096], new[4096], *data;
	double	 t0, t;
	long	 count, size, i;
	int	 dfd, fd;

	if (argc != 4)
		errx(2, "usage: fsync_loop DIR COUNT SIZE");
	count = strtol(argv[2], NULL, 10);
	size = strtol(argv[3], NULL, 10);
	if (count <= 0 || size <= 0 || size > 64 * 1024 * 1024)
		errx(2, "bad COUNT or SIZE");
	if ((data = malloc((size_t)size)) == NULL)
		err(1, "malloc");
	memset(data, 'x', (size_t)size);
	if (chdir(argv[1]) == -1 || mkdir("tmp", 0700) == -1 ||
	    mkdir("new", 0700) == -1)
		err(1, "%s", argv[1]);
	if ((dfd = open("new", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "new");
	t0 = now();
	for (i = 0; i < count; i++) {
		(void)snprintf(tmp, sizeof(tmp), "tmp/%ld", i);
		(void)snprintf(new, sizeof(new), "new/%ld", i);
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
			err(1, "%s", tmp);
		if (write(fd, data, (size_t)size) != size || fsync(fd) == -1 ||
		    close(fd) == -1)
			err(1, "%s", tmp);
		if (rename(tmp, new) == -1 || fsync(dfd) == -1)
			err(1, "%s", new);
	}
	t = now() - t0;
	printf("files=%ld seconds=%.3f per_second=%.0f\n", count, t,
	    (double)count / t);
	free(data);
	return 0;
}
