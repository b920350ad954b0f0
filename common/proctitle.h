/*
 * proctitle.h — name a process's role in ps(1) output, as setproctitle(3)
 * does on the BSDs: "virtmail-smtpd: worker alpha.test".
 */
#ifndef VIRTMAIL_PROCTITLE_H
#define VIRTMAIL_PROCTITLE_H

/*
 * Once, first thing in main(), before anything reads argv or environ:
 * moves the argument strings and the environment to the heap (argv[i]
 * and environ point at the copies afterwards) so that their original
 * area can hold the title.
 */
void	proctitle_init(int argc, char **argv);
/*
 * Set the title to the program's name, ": ", and the formatted text
 * (truncated to the area argv and environ had).  Does nothing without
 * proctitle_init().
 */
void	proctitle_set(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

#endif
