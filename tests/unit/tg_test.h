/* tg_test.h - the one CUnit runner every unit test executable uses. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_TEST_H
#define TG_TEST_H

#include <CUnit/Basic.h>
#include <stddef.h>

struct tg_test {
        const char *name;
        void (*fn)(void);
};

/**
 * @brief Run @p tests as one verbose CUnit suite.
 * @return the process exit status: 0 when all passed, 1 when an assertion or
 *         a test failed, 2 when CUnit itself failed.
 */
static inline int tg_test_run(const char *suite_name, const struct tg_test *tests,
                              size_t n) {
        CU_pSuite suite;
        unsigned failed;
        size_t i;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 2;
        suite = CU_add_suite(suite_name, NULL, NULL);
        for (i = 0; suite && i < n; i++)
                if (!CU_add_test(suite, tests[i].name, tests[i].fn))
                        suite = NULL;
        if (!suite) {
                CU_cleanup_registry();
                return 2;
        }
        CU_basic_set_mode(CU_BRM_VERBOSE);
        if (CU_basic_run_tests() != CUE_SUCCESS || CU_get_error() != CUE_SUCCESS) {
                CU_cleanup_registry();
                return 2;
        }
        failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        return failed ? 1 : 0;
}

#define TG_TEST_RUN(suite_name, tests)                                         \
        tg_test_run((suite_name), (tests), sizeof(tests) / sizeof(*(tests)))

#endif
