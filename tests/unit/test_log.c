/* test_log.c - rate-limited log lines: exact counts and summary text, with an injected clock. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "tg_test.h"

#define MAX_LINES 512

static _Atomic int64_t fake_ms;
static int64_t fake_now(void *opaque) {
        (void)opaque;
        return atomic_load(&fake_ms);
}
static const struct tg_clock fake_clock = {.now_ms = fake_now};

static char log_path[] = "/tmp/test_log.XXXXXX";
static char *lines[MAX_LINES];
static size_t nlines;

/* Start a test: an empty log, the clock at @p ms. Each test starts later
 * than the one before ended (its windows have expired), and what a failed
 * one left unflushed is thrown away here. */
static void begin(int64_t ms) {
        tg_log_limited_flush_all();
        CU_ASSERT_FATAL(truncate(log_path, 0) == 0);
        atomic_store(&fake_ms, ms);
        tg_log_set_level(TG_LOG_INFO);
}

/* Read the log back, each line without its timestamp ("warn: ..."). */
static void read_lines(void) {
        static char buf[1 << 20];
        FILE *f = fopen(log_path, "r");
        size_t n;
        char *p;

        CU_ASSERT_FATAL(f != NULL);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        nlines = 0;
        for (p = buf; *p && nlines < MAX_LINES;) {
                char *nl = strchr(p, '\n'), *msg = strstr(p, " test_log ");

                if (nl)
                        *nl = '\0';
                lines[nlines++] = msg ? msg + 10 : p;
                p = nl ? nl + 1 : p + strlen(p);
        }
}

static void expect_lines(int line, const char *const *want, size_t n) {
        size_t i;

        read_lines();
        tg_check(nlines == n, line, "%zu lines, want %zu (first: %s)", nlines, n,
                 nlines ? lines[0] : "none");
        for (i = 0; i < n && i < nlines; i++)
                tg_check(!strcmp(lines[i], want[i]), line, "line %zu: '%s', want '%s'", i,
                         lines[i], want[i]);
}

/* Each function is one call site, so one limit. */
static void refused(int i) {
        tg_warn_limited("payload %d refused", i);
}

static void table_full(int i) {
        tg_warn_limited("sensor s%d: table full", i);
}

static void delivery_failed(int i) {
        tg_err_limited("delivery %d failed", i);
}

static void test_burst_then_summary_at_flush(void) {
        static const char *const want[] = {
                "warn: payload 0 refused", "warn: payload 1 refused",
                "warn: payload 2 refused", "warn: payload 3 refused",
                "warn: payload 4 refused", "warn: payload 5 refused",
                "warn: payload 6 refused", "warn: payload 7 refused",
                "warn: payload 8 refused", "warn: payload 9 refused",
                "warn: 15 more like this in the last 60 s: \"payload %d refused\"",
        };
        int i;

        begin(1000);
        for (i = 0; i < 25; i++)
                refused(i);
        expect_lines(__LINE__, want, 10);
        /* Not before the window has ended. */
        atomic_store(&fake_ms, 1000 + TG_LOG_LIMIT_INTERVAL_MS - 1);
        tg_log_limited_flush();
        expect_lines(__LINE__, want, 10);
        atomic_store(&fake_ms, 1000 + TG_LOG_LIMIT_INTERVAL_MS);
        tg_log_limited_flush();
        expect_lines(__LINE__, want, 11);
        /* Once only. */
        tg_log_limited_flush();
        tg_log_limited_flush_all();
        expect_lines(__LINE__, want, 11);
}

static void test_next_line_closes_window(void) {
        static const char *const want[] = {
                "warn: payload 0 refused", "warn: payload 1 refused",
                "warn: payload 2 refused", "warn: payload 3 refused",
                "warn: payload 4 refused", "warn: payload 5 refused",
                "warn: payload 6 refused", "warn: payload 7 refused",
                "warn: payload 8 refused", "warn: payload 9 refused",
                /* at 65 s: the summary first, then the line that opened
                 * the next window and nine more in full */
                "warn: 3 more like this in the last 65 s: \"payload %d refused\"",
                "warn: payload 100 refused", "warn: payload 101 refused",
                "warn: payload 102 refused", "warn: payload 103 refused",
                "warn: payload 104 refused", "warn: payload 105 refused",
                "warn: payload 106 refused", "warn: payload 107 refused",
                "warn: payload 108 refused", "warn: payload 109 refused",
                /* at exit, 5 s into that window */
                "warn: 4 more like this in the last 5 s: \"payload %d refused\"",
        };
        int i;

        begin(100000);
        for (i = 0; i < 12; i++)
                refused(i);
        atomic_store(&fake_ms, 100000 + TG_LOG_LIMIT_INTERVAL_MS - 1);
        refused(12); /* still the first window */
        atomic_store(&fake_ms, 165000);
        for (i = 100; i < 114; i++)
                refused(i);
        atomic_store(&fake_ms, 170000);
        tg_log_limited_flush(); /* the second window has not ended */
        expect_lines(__LINE__, want, 21);
        tg_log_limited_flush_all();
        expect_lines(__LINE__, want, 22);
}

static void test_quiet_window_has_no_summary(void) {
        static const char *const want[] = {
                "warn: sensor s0: table full", "warn: sensor s1: table full",
                "warn: sensor s2: table full", "warn: sensor s3: table full",
                "warn: sensor s4: table full", "warn: sensor s5: table full",
                "warn: sensor s6: table full", "warn: sensor s7: table full",
                "warn: sensor s8: table full", "warn: sensor s9: table full",
                "warn: sensor s10: table full",
        };
        int i;

        begin(200000);
        for (i = 0; i < 10; i++)
                table_full(i);
        atomic_store(&fake_ms, 200000 + 2 * TG_LOG_LIMIT_INTERVAL_MS);
        tg_log_limited_flush();
        table_full(10);
        tg_log_limited_flush_all();
        expect_lines(__LINE__, want, 11);
}

static int evaluated;
static int count_evaluation(int i) {
        evaluated++;
        return i;
}

static void test_level_checked_before_arguments(void) {
        static const char *const want[] = {
                "warn: payload 0 refused", "warn: payload 1 refused",
                "warn: payload 2 refused", "warn: payload 3 refused",
                "warn: payload 4 refused", "warn: payload 5 refused",
                "warn: payload 6 refused", "warn: payload 7 refused",
                "warn: payload 8 refused", "warn: payload 9 refused",
                "warn: 90 more like this in the last 1 s: \"payload %d refused\"",
        };
        int i;

        begin(400000);
        tg_log_set_level(TG_LOG_WARN);
        evaluated = 0;
        for (i = 0; i < 100; i++)
                tg_info_limited("info %d", count_evaluation(i));
        tg_check(evaluated == 0, __LINE__, "a disabled level evaluated %d arguments", evaluated);
        /* A suppressed line does not evaluate its arguments either. */
        for (i = 0; i < 100; i++)
                tg_warn_limited("payload %d refused", count_evaluation(i));
        tg_check(evaluated == 10, __LINE__, "%d arguments evaluated, want 10", evaluated);
        tg_log_limited_flush_all();
        expect_lines(__LINE__, want, 11);
}

static void test_each_site_its_own_budget_and_level(void) {
        static const char *const want[] = {
                "warn: payload 0 refused",   "error: delivery 0 failed",
                "warn: payload 1 refused",   "error: delivery 1 failed",
                "warn: payload 2 refused",   "error: delivery 2 failed",
                "warn: payload 3 refused",   "error: delivery 3 failed",
                "warn: payload 4 refused",   "error: delivery 4 failed",
                "warn: payload 5 refused",   "error: delivery 5 failed",
                "warn: payload 6 refused",   "error: delivery 6 failed",
                "warn: payload 7 refused",   "error: delivery 7 failed",
                "warn: payload 8 refused",   "error: delivery 8 failed",
                "warn: payload 9 refused",   "error: delivery 9 failed",
                /* flush walks the limits most recently listed first */
                "error: 7 more like this in the last 60 s: \"delivery %d failed\"",
                "warn: 5 more like this in the last 60 s: \"payload %d refused\"",
        };
        int i;

        begin(500000);
        for (i = 0; i < 17; i++) {
                if (i < 15)
                        refused(i);
                delivery_failed(i);
        }
        atomic_store(&fake_ms, 500000 + TG_LOG_LIMIT_INTERVAL_MS);
        tg_log_limited_flush();
        expect_lines(__LINE__, want, 22);
}

/* Threads: the lines in full plus the summaries' counts are the calls. */
#define THREADS 4
#define CALLS 50000

static void flood(void) {
        tg_warn_limited("flood %d", 1);
}

static void *flood_thread(void *arg) {
        int advance = *(const int *)arg, i;

        for (i = 0; i < CALLS; i++) {
                if (advance)
                        atomic_fetch_add(&fake_ms, advance);
                flood();
        }
        return NULL;
}

static void flood_threads(int advance_ms, unsigned long long *full,
                          unsigned long long *summed, size_t *summaries) {
        pthread_t t[THREADS];
        int zero = 0, i;
        size_t k;

        for (i = 0; i < THREADS; i++)
                CU_ASSERT_FATAL(pthread_create(&t[i], NULL, flood_thread,
                                               i ? &zero : &advance_ms) == 0);
        for (i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        tg_log_limited_flush_all();
        read_lines();
        *full = *summed = 0;
        *summaries = 0;
        for (k = 0; k < nlines; k++) {
                unsigned long long n;

                if (!strcmp(lines[k], "warn: flood 1"))
                        ++*full;
                else if (sscanf(lines[k], "warn: %llu more like this", &n) == 1) {
                        *summed += n;
                        ++*summaries;
                } else
                        tg_check(0, __LINE__, "unexpected line '%s'", lines[k]);
        }
}

static void test_threads_count_exactly(void) {
        unsigned long long full, summed;
        size_t summaries;

        /* One window: exactly the burst in full, the rest in one summary. */
        begin(1000000);
        flood_threads(0, &full, &summed, &summaries);
        tg_check(full == TG_LOG_LIMIT_BURST, __LINE__, "%llu lines in full", full);
        tg_check(summed == THREADS * CALLS - TG_LOG_LIMIT_BURST && summaries == 1, __LINE__,
                 "%zu summaries of %llu lines", summaries, summed);

        /* The clock moving 12 ms per call of one thread: 600 s, ten
         * windows opened and closed by any of the threads. */
        begin(2000000);
        flood_threads(12, &full, &summed, &summaries);
        tg_check(full + summed == THREADS * CALLS, __LINE__,
                 "%llu in full + %llu summed, want %d", full, summed, THREADS * CALLS);
        tg_check(full >= 10 * TG_LOG_LIMIT_BURST && full <= 11 * TG_LOG_LIMIT_BURST, __LINE__,
                 "%llu lines in full over 10 windows of %d", full, TG_LOG_LIMIT_BURST);
        tg_check(summaries >= 10 && summaries <= 11, __LINE__, "%zu summaries", summaries);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"burst then summary at flush", test_burst_then_summary_at_flush},
                {"next line closes the window", test_next_line_closes_window},
                {"quiet window has no summary", test_quiet_window_has_no_summary},
                {"level checked before arguments", test_level_checked_before_arguments},
                {"each site its own budget and level", test_each_site_its_own_budget_and_level},
                {"threads count exactly", test_threads_count_exactly},
        };
        int fd = mkstemp(log_path), rc;

        if (fd < 0)
                return 2;
        close(fd);
        tg_log_set_ident("test_log");
        tg_log_set_clock(&fake_clock);
        if (tg_log_open(log_path))
                return 2;
        rc = TG_TEST_RUN("log", tests);
        tg_log_open(NULL);
        unlink(log_path);
        return rc;
}
