/* test_status.c - the status page's rows: fixed capacity, the last windows oldest first, the engine's last readings, seen only once published. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "status.h"

#include <string.h>

#include "tg_test.h"

#define NOW_MS INT64_C(1000000)

static int64_t fixed_now(void *opaque) {
        (void)opaque;
        return NOW_MS;
}

static const struct tg_clock fixed_clock = {.now_ms = fixed_now};

/* The engine's final windows go to the status rows, as the worker does. */
static tg_status_t *status;
static tg_window_engine_t *engine;

static void on_window(void *opaque, const struct tg_window_result *w) {
        (void)opaque;
        if (w->final)
                tg_status_window(status, w,
                                 w->nfields ? tg_window_field_name(engine, w->fields[0].field)
                                            : NULL);
}

static tg_window_engine_t *engine_new(void) {
        struct tg_window_conf c = {
                .size_ms = 10000, .hop_ms = 10000, .grace_ms = 0,
                .max_future_ms = 300000, .max_sensors = 16, .max_fields = 4,
                .max_field_names = 8,
        };
        char err[256];
        tg_window_engine_t *e = tg_window_engine_new(&c, &fixed_clock, on_window, NULL, err,
                                                     sizeof(err));

        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        return e;
}

static enum tg_window_verdict add(const char *id, int64_t ts, double v) {
        struct tg_reading r;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, id, strlen(id));
        r.ts_ms = ts;
        tg_reading_add_field(&r, "temperature", 11, v);
        return tg_window_engine_add(engine, &r);
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

/* A sensor gets its row with its first closed window; the row's last
 * reading and late count are the engine's, read at publishing; nothing is
 * visible before tg_status_publish(). */
static void test_published_copy(void) {
        char err[128];
        struct tg_status_window ws[3];
        struct tg_status_row row = {.windows = ws};

        status = tg_status_new(4, 3, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(status);
        engine = engine_new();
        CU_ASSERT_EQUAL(add("a", 1000, 20.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add("a", 5000, 21.5), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add("a", 12000, 30.0), TG_WINDOW_ACCEPTED); /* closes [0, 10 s) */
        CU_ASSERT_EQUAL(add("a", 2000, 99.0), TG_WINDOW_LATE);
        CU_ASSERT_EQUAL(add("b", 3000, 5.0), TG_WINDOW_ACCEPTED);   /* no window closed */
        CU_ASSERT_EQUAL(tg_status_rows(status, NULL), 0);
        tg_status_publish(status, engine);
        CU_ASSERT_EQUAL_FATAL(tg_status_rows(status, NULL), 1);
        CU_ASSERT_EQUAL_FATAL(tg_status_row(status, 0, &row), 0);
        CU_ASSERT_STRING_EQUAL(row.id, "a");
        CU_ASSERT_STRING_EQUAL(row.last_field, "temperature");
        CU_ASSERT_EQUAL(row.last_ts, 12000);
        CU_ASSERT_EQUAL(row.last_arrival_ms, NOW_MS);
        CU_ASSERT_DOUBLE_EQUAL(row.last_value, 30.0, 0);
        CU_ASSERT_EQUAL(row.windows_closed, 1);
        CU_ASSERT_EQUAL(row.late, 1);
        CU_ASSERT_EQUAL(row.nwindows, 1);
        CU_ASSERT_DOUBLE_EQUAL(ws[0].mean, 20.75, 1e-9);
        CU_ASSERT_EQUAL(ws[0].count, 2);
        CU_ASSERT_EQUAL(tg_status_row(status, 1, &row), -ENOENT);

        /* a later reading shows at the next publishing, not before */
        CU_ASSERT_EQUAL(add("a", 13000, 31.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(tg_status_row(status, 0, &row), 0);
        CU_ASSERT_EQUAL(row.last_ts, 12000);
        tg_status_publish(status, engine);
        CU_ASSERT_EQUAL(tg_status_row(status, 0, &row), 0);
        CU_ASSERT_EQUAL(row.last_ts, 13000);
        CU_ASSERT_DOUBLE_EQUAL(row.last_value, 31.0, 0);
        tg_window_engine_destroy(engine);
        tg_status_destroy(status);
}

/* Of more windows than it keeps, a row has the last ones, oldest first. */
static void test_last_windows(void) {
        char err[128];
        tg_status_t *st = tg_status_new(2, 3, err, sizeof(err));
        struct tg_status_window ws[3];
        struct tg_status_row row = {.windows = ws};
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        engine = engine_new();
        for (k = 0; k < 5; k++) {
                struct tg_window_result w = window("b", k * 10, k);

                tg_status_window(st, &w, "temperature");
        }
        tg_status_publish(st, engine);
        CU_ASSERT_EQUAL_FATAL(tg_status_row(st, 0, &row), 0);
        CU_ASSERT_EQUAL(row.nwindows, 3);
        for (k = 0; k < 3; k++)
                CU_ASSERT_EQUAL(ws[k].start, (k + 2) * 10);
        CU_ASSERT_EQUAL(row.windows_closed, 5);
        tg_window_engine_destroy(engine);
        tg_status_destroy(st);
}

/* The table holds the first status.sensors sensors; others' windows are
 * counted. */
static void test_capacity(void) {
        char err[128], id[8];
        tg_status_t *st = tg_status_new(3, 2, err, sizeof(err));
        uint64_t untracked = 0;
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        engine = engine_new();
        for (k = 0; k < 5; k++) {
                struct tg_window_result w;

                snprintf(id, sizeof(id), "s%d", k);
                w = window(id, 0, 1);
                tg_status_window(st, &w, "temperature");
                w = window(id, 10, 1);
                tg_status_window(st, &w, "temperature");
        }
        tg_status_publish(st, engine);
        CU_ASSERT_EQUAL(tg_status_rows(st, &untracked), 3);
        CU_ASSERT_EQUAL(untracked, 4);
        CU_ASSERT(tg_status_sensor_bytes(st) > 0);
        CU_ASSERT(tg_status_memory(st) >= 3 * tg_status_sensor_bytes(st) / 2);
        tg_window_engine_destroy(engine);
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
