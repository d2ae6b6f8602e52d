/* test_status.c - the status page's rows: fixed capacity, the last windows oldest first, seen only once published. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "status.h"

#include <string.h>

#include "tg_test.h"

static struct tg_reading reading(const char *id, int64_t ts, double v) {
        struct tg_reading r;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, id, strlen(id));
        r.ts_ms = ts;
        tg_reading_add_field(&r, "temperature", 11, v);
        return r;
}

static struct tg_window_result window(const char *id, int64_t start, double mean) {
        static struct tg_field_stats f;
        struct tg_window_result w = {.sensor = id, .sensor_len = strlen(id), .start = start,
                                     .end = start + 10, .count = 3, .final = 1, .late = 1,
                                     .nfields = 1, .fields = &f};

        memset(&f, 0, sizeof(f));
        f.count = 3;
        f.mean = mean;
        f.min = mean - 1;
        f.max = mean + 1;
        return w;
}

/* Nothing is visible before tg_status_publish(); then each row as written. */
static void test_published_copy(void) {
        char err[128];
        tg_status_t *st = tg_status_new(4, 3, err, sizeof(err));
        struct tg_status_window ws[3];
        struct tg_status_row row = {.windows = ws};
        struct tg_reading r = reading("a", 1000, 21.5);
        struct tg_window_result w = window("a", 0, 20.0);

        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        tg_status_reading(st, &r, 1, 5000);
        tg_status_window(st, &w, "temperature");
        CU_ASSERT_EQUAL(tg_status_rows(st, NULL), 0);
        tg_status_publish(st);
        CU_ASSERT_EQUAL(tg_status_rows(st, NULL), 1);
        CU_ASSERT_EQUAL(tg_status_row(st, 0, &row), 0);
        CU_ASSERT_STRING_EQUAL(row.id, "a");
        CU_ASSERT_STRING_EQUAL(row.last_field, "temperature");
        CU_ASSERT_EQUAL(row.last_ts, 1000);
        CU_ASSERT_EQUAL(row.last_arrival_ms, 5000);
        CU_ASSERT_DOUBLE_EQUAL(row.last_value, 21.5, 0);
        CU_ASSERT_EQUAL(row.readings, 1);
        CU_ASSERT_EQUAL(row.late, 1);
        CU_ASSERT_EQUAL(row.nwindows, 1);
        CU_ASSERT_DOUBLE_EQUAL(ws[0].mean, 20.0, 1e-6);
        CU_ASSERT_EQUAL(tg_status_row(st, 1, &row), -ENOENT);
        tg_status_destroy(st);
}

/* Of more windows than it keeps, a row has the last ones, oldest first. */
static void test_last_windows(void) {
        char err[128];
        tg_status_t *st = tg_status_new(2, 3, err, sizeof(err));
        struct tg_status_window ws[3];
        struct tg_status_row row = {.windows = ws};
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        for (k = 0; k < 5; k++) {
                struct tg_window_result w = window("b", k * 10, k);

                tg_status_window(st, &w, "temperature");
        }
        tg_status_publish(st);
        CU_ASSERT_EQUAL_FATAL(tg_status_row(st, 0, &row), 0);
        CU_ASSERT_EQUAL(row.nwindows, 3);
        for (k = 0; k < 3; k++)
                CU_ASSERT_EQUAL(ws[k].start, (k + 2) * 10);
        tg_status_destroy(st);
}

/* The table holds the first status.sensors sensors; others are counted. */
static void test_capacity(void) {
        char err[128], id[8];
        tg_status_t *st = tg_status_new(3, 2, err, sizeof(err));
        uint64_t untracked = 0;
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        for (k = 0; k < 5; k++) {
                struct tg_reading r;

                snprintf(id, sizeof(id), "s%d", k);
                r = reading(id, 1, 1);
                tg_status_reading(st, &r, 0, 1);
                tg_status_reading(st, &r, 0, 2);
        }
        tg_status_publish(st);
        CU_ASSERT_EQUAL(tg_status_rows(st, &untracked), 3);
        CU_ASSERT_EQUAL(untracked, 4);
        CU_ASSERT(tg_status_sensor_bytes(st) > 0);
        CU_ASSERT(tg_status_memory(st) >= 3 * tg_status_sensor_bytes(st) / 2);
        tg_status_destroy(st);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"published_copy", test_published_copy},
                {"last_windows", test_last_windows},
                {"capacity", test_capacity},
        };

        return tg_test_run("status", tests, sizeof(tests) / sizeof(*tests));
}
