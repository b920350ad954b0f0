/*
 * test_proctitle.c — the title is written over the argv and environment
 * area, which proctitle_init() first copies: the arguments and the
 * environment keep their values, the title is cut to the area and the
 * rest of the area is cleared.
 */

#include <stdlib.h>
#include <string.h>

#include "proctitle.h"
#include "test.h"

extern char	**environ;

/* As the kernel lays them out: argument strings, then the environment. */
static char	 area[] = "/usr/sbin/prog\0-f\0/etc/x.conf\0HOME=/root\0"
			  "LANG=C";

int
main(void)
{
	char	*argv[4], *env[3], *end = area + sizeof(area);
	size_t	 i;
	int	 inside = 0, clear = 1;

	argv[0] = area;
	argv[1] = area + 15;
	argv[2] = area + 18;
	argv[3] = NULL;
	env[0] = area + 30;
	env[1] = area + 41;
	env[2] = NULL;
	environ = env;

	proctitle_set("before %s", "init");
	CHECK_STR(area, "/usr/sbin/prog", "without init nothing is written");

	proctitle_init(3, argv);
	for (i = 0; i < 3; i++)
		if (argv[i] >= area && argv[i] < end)
			inside = 1;
	CHECK(!inside, "the arguments are moved out of the area");
	CHECK_STR(argv[1], "-f", "argument 1 kept");
	CHECK_STR(argv[2], "/etc/x.conf", "argument 2 kept");
	CHECK(environ != env, "the environment is copied");
	CHECK_STR(getenv("HOME"), "/root", "getenv after init");
	CHECK_STR(getenv("LANG"), "C", "the last variable too");

	proctitle_set("worker %s", "alpha.test");
	CHECK_STR(area, "prog: worker alpha.test", "title in the area");
	for (i = strlen(area); i < sizeof(area); i++)
		if (area[i] != '\0')
			clear = 0;
	CHECK(clear, "the rest of the area is cleared");
	CHECK_STR(argv[2], "/etc/x.conf", "arguments untouched by the title");

	proctitle_set("%s", "a very long title that does not fit into "
	    "the forty-seven bytes of the area at all");
	CHECK(area[sizeof(area) - 1] == '\0' &&
	    strlen(area) == sizeof(area) - 1, "a long title is cut to fit");
	CHECK(strncmp(area, "prog: a very long", 17) == 0,
	    "the cut title keeps its start");
	return test_done();
}
