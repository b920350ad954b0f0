/*
 * test.h — the smallest unit test harness.
 *
 * Each CHECK prints "ok - ..." or "not ok - ..." (a TAP subset that
 * tests/run.py counts); test_done() prints the totals and returns the
 * exit status.
 */
#ifndef VIRTMAIL_TEST_H
#define VIRTMAIL_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

static inline void
test_result(int ok, const char *what, const char *file, int line)
{
	if (ok) {
		test_passed++;
		printf("ok - %s\n", what);
	} else {
		test_failed++;
		printf("not ok - %s (%s:%d)\n", what, file, line);
	}
	fflush(stdout);
}

#define CHECK(cond, what)	test_result(!!(cond), (what), __FILE__, __LINE__)
#define CHECK_STR(a, b, what) \
	test_result((a) != NULL && (b) != NULL && strcmp((a), (b)) == 0, \
	    (what), __FILE__, __LINE__)

static inline int
test_done(void)
{
	fprintf(stderr, "%d passed, %d failed\n", test_passed, test_failed);
	return test_failed ? 1 : 0;
}

#endif
