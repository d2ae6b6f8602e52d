/* tg_test.h - the one CUnit runner every unit test executable uses, and the helpers they share. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_TEST_H
#define TG_TEST_H

#include <CUnit/Basic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

static inline void tg_check_at(int ok, const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Use tg_check(). The message is formatted only for a failure: some tests
 * check millions of values. CUnit copies it. */
static inline void tg_check_at(int ok, const char *file, int line, const char *fmt, ...) {
        char msg[768];
        va_list ap;

        if (ok) {
                CU_assertImplementation(CU_TRUE, (unsigned)line, "ok", file, "", CU_FALSE);
                return;
        }
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        CU_assertImplementation(CU_FALSE, (unsigned)line, msg, file, "", CU_FALSE);
}

/**
 * One assertion whose message is built at run time, so that a failure tells
 * what went in and what came out; @p line is the caller's (__LINE__ or a
 * helper's line argument).
 */
#define tg_check(ok, line, ...) tg_check_at((ok), __FILE__, (line), __VA_ARGS__)

/** @brief splitmix64: a fixed seed makes every run test the same values. */
static inline uint64_t tg_splitmix64(uint64_t *state) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/**
 * @brief Fill s[0..n) with text tg_text_valid() accepts: UTF-8 without
 *        NUL, mostly ASCII (control bytes, quotes and backslashes too), and
 *        2-, 3- and 4-byte sequences from the whole range but surrogates.
 */
static inline void tg_random_text(uint64_t (*next)(void), char *s, size_t n) {
        size_t i = 0;

        while (i < n) {
                uint64_t x = next();
                unsigned len = x % 8 < 5 ? 1 : (unsigned)(x % 8) - 3;
                uint32_t cp;

                x >>= 8;
                if (len > n - i)
                        len = 1;
                switch (len) {
                case 1:
                        s[i++] = (char)(1 + x % 0x7f);
                        break;
                case 2:
                        cp = 0x80 + (uint32_t)(x % (0x800 - 0x80));
                        s[i++] = (char)(0xc0 | cp >> 6);
                        s[i++] = (char)(0x80 | (cp & 0x3f));
                        break;
                case 3:
                        cp = 0x800 + (uint32_t)(x % (0x10000 - 0x800 - 0x800));
                        if (cp >= 0xd800)
                                cp += 0x800; /* past the surrogates */
                        s[i++] = (char)(0xe0 | cp >> 12);
                        s[i++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                        s[i++] = (char)(0x80 | (cp & 0x3f));
                        break;
                default:
                        cp = 0x10000 + (uint32_t)(x % 0x100000);
                        s[i++] = (char)(0xf0 | cp >> 18);
                        s[i++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                        s[i++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                        s[i++] = (char)(0x80 | (cp & 0x3f));
                        break;
                }
        }
}

/** @brief Whether @p a and @p b are the same double, bit for bit (-0, NaNs). */
static inline int tg_same_bits(double a, double b) {
        return !memcmp(&a, &b, sizeof(a));
}

/** @brief Whether @p s is a JSON number (RFC 8259): -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static inline int tg_is_json_number(const char *s) {
        if (*s == '-')
                s++;
        if (*s == '0') {
                s++;
        } else if (*s >= '1' && *s <= '9') {
                while (*s >= '0' && *s <= '9')
                        s++;
        } else {
                return 0;
        }
        if (*s == '.') {
                s++;
                if (!(*s >= '0' && *s <= '9'))
                        return 0;
                while (*s >= '0' && *s <= '9')
                        s++;
        }
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '+' || *s == '-')
                        s++;
                if (!(*s >= '0' && *s <= '9'))
                        return 0;
                while (*s >= '0' && *s <= '9')
                        s++;
        }
        return *s == '\0';
}

#endif
