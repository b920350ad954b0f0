/*
 * pidfile.h — the daemons' pid files, read by "virtmail" to signal a
 * reload (SIGHUP) after it changed the configuration.
 */
#ifndef VIRTMAIL_PIDFILE_H
#define VIRTMAIL_PIDFILE_H

#include <sys/types.h>

/* Where the daemons put NAME.pid unless told otherwise (-p). */
#define PIDFILE_DIR	"/run"

/*
 * Write our pid to path (atomically: temp file, fsync, rename).  Refuses
 * when path names a live process whose command name is comm (another
 * instance).  0, or -1 with *error_r.
 */
int	pidfile_write(const char *path, const char *comm,
	    const char **error_r);
/* Remove path if it still holds our pid. */
void	pidfile_remove(const char *path);
/*
 * The pid in path if that process is alive and its command name
 * (/proc/PID/comm) is comm; else -1 (no file, stale, or someone
 * else's pid, which must never get a signal).
 */
pid_t	pidfile_read(const char *path, const char *comm);

#endif
