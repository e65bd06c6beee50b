/*
 * runner.h - the one CUnit runner every unit-test program uses.
 * A test program defines its suites in a register function and calls
 * test_runner_main() from main(). The last line printed is
 * "N passed, M failed" (tests, not assertions), which tests/summary.sh adds up.
 */
#ifndef MIDGE_TEST_RUNNER_H
#define MIDGE_TEST_RUNNER_H

#include <CUnit/CUnit.h>

/* register_fn adds suites with CU_add_suite / CU_add_test. Returns the
 * process exit status: 0 when every test passed. */
int test_runner_main(int argc, char **argv, void (*register_fn)(void));

/* Adds a suite and its tests from a NULL-terminated table. */
struct test_case {
	const char *name;
	CU_TestFunc fn;
};
void test_add_suite(const char *name, const struct test_case *cases);

#endif
