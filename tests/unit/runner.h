/*
 * runner.h - the one CUnit runner every unit-test program uses.
 * A test program lists its suites in a table and ends with
 * TEST_RUNNER_MAIN(table), or calls test_runner_run() from its own main()
 * when it needs set-up around the run. The last line printed is
 * "N passed, M failed" (tests, not assertions), which tests/summary.sh adds up.
 */
#ifndef MIDGE_TEST_RUNNER_H
#define MIDGE_TEST_RUNNER_H

#include <CUnit/CUnit.h>

/* One test: its name (the normative statement id first, where there is
 * one) and its function. Tables of them end with {NULL, NULL}. */
struct test_case {
	const char *name;
	CU_TestFunc fn;
};

/* One suite of a program: its name and its NULL-terminated cases. */
struct test_suite {
	const char *name;
	const struct test_case *cases;
};

/* Registers every suite of the table (ended by a NULL name) and runs
 * them; an optional argv[1] runs only the suite of that name. Returns
 * the process exit status: 0 when every test passed. */
int test_runner_run(int argc, char **argv, const struct test_suite *suites);

/* The whole main() of a program that needs nothing around the run. */
#define TEST_RUNNER_MAIN(suites)                              \
	int main(int argc, char **argv)                       \
	{                                                     \
		return test_runner_run(argc, argv, (suites)); \
	}

#endif
