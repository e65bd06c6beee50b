/*
 * runner.c - the one CUnit runner of the unit-test programs: suites from
 * tables, an optional suite name on the command line, and the
 * "N passed, M failed" line tests/summary.sh reads.
 */
#include "tests/unit/runner.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_add_suite(const char *name, const struct test_case *cases)
{
	CU_pSuite s = CU_add_suite(name, NULL, NULL);
	if (!s) {
		fprintf(stderr, "cannot add suite %s: %s\n", name, CU_get_error_msg());
		exit(2);
	}
	for (; cases->name; cases++) {
		if (!CU_add_test(s, cases->name, cases->fn)) {
			fprintf(stderr, "cannot add test %s: %s\n", cases->name, CU_get_error_msg());
			exit(2);
		}
	}
}

/* Runs what is registered. An optional argv[1] runs only the suite of
 * that name. */
static int runner_run_registered(int argc, char **argv)
{
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (argc > 1) {
		CU_pSuite s = CU_get_suite(argv[1]);
		if (!s) {
			fprintf(stderr, "no suite %s\n", argv[1]);
			CU_cleanup_registry();
			return 2;
		}
		CU_basic_run_suite(s);
	} else {
		CU_basic_run_tests();
	}
	unsigned run = CU_get_number_of_tests_run();
	unsigned failed = CU_get_number_of_tests_failed();
	unsigned asserts_failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	printf("\n%u passed, %u failed\n", run - failed, failed);
	return (failed || asserts_failed) ? 1 : 0;
}

int test_runner_run(int argc, char **argv, const struct test_suite *suites)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (; suites->name; suites++)
		test_add_suite(suites->name, suites->cases);
	return runner_run_registered(argc, argv);
}
