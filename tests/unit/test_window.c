/* test_window.c - CUnit tests of the window engine: boundaries, grace, late, idle, table, state file. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "window.h"

#define MAX_EMITS 4096

struct emitted {
        char sensor[TG_SENSOR_ID_MAX + 1];
        int64_t start, end;
        uint32_t count, nfields;
        struct tg_field_stats fields[TG_READING_FIELDS_MAX];
};

static struct emitted emits[MAX_EMITS];
static int nemits;
static int64_t fake_now;

static int64_t fake_clock_now(void *opaque) {
        (void)opaque;
        return fake_now;
}

static const struct tg_clock fake_clock = {.now_ms = fake_clock_now};

static void collect(void *opaque, const struct tg_window_result *w) {
        struct emitted *e;

        (void)opaque;
        CU_ASSERT_FATAL(nemits < MAX_EMITS);
        e = &emits[nemits++];
        memcpy(e->sensor, w->sensor, w->sensor_len);
        e->sensor[w->sensor_len] = '\0';
        e->start = w->start;
        e->end = w->end;
        e->count = w->count;
        e->nfields = w->nfields;
        memcpy(e->fields, w->fields, w->nfields * sizeof(*w->fields));
}

static struct tg_window_conf base_conf(void) {
        struct tg_window_conf c = {
                .size_ms = 10000,
                .hop_ms = 10000,
                .grace_ms = 2000,
                .idle_timeout_ms = 0,
                .max_future_ms = 300000,
                .max_sensors = 16,
                .max_fields = 4,
                .max_field_names = 8,
                .close = TG_CLOSE_PER_SENSOR,
        };
        return c;
}

static tg_window_engine_t *engine(const struct tg_window_conf *c) {
        char err[256];
        tg_window_engine_t *e = tg_window_engine_new(c, &fake_clock, collect, NULL,
                                                     err, sizeof(err));

        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        nemits = 0;
        return e;
}

static enum tg_window_verdict add(tg_window_engine_t *e, const char *sensor,
                                  int64_t ts, double v) {
        struct tg_reading r;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, sensor, strlen(sensor));
        r.ts_ms = ts;
        tg_reading_add_field(&r, "x", 1, v);
        return tg_window_engine_add(e, &r);
}

static void test_boundaries(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.grace_ms = 0;
        e = engine(&c);
        fake_now = 100000;
        /* 0 and 9999 share [0, 10000); 10000 starts the next window and,
         * with no grace, closes [0, 10000) at once. */
        CU_ASSERT_EQUAL(add(e, "a", 0, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", 9999, 3.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(nemits, 0);
        CU_ASSERT_EQUAL(add(e, "a", 10000, 5.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].start, 0);
        CU_ASSERT_EQUAL(emits[0].end, 10000);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT_EQUAL(emits[0].fields[0].count, 2);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].min, 1.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].max, 3.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].mean, 2.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].sum, 4.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].first, 1.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].last, 3.0, 0);
        /* 9999 now falls in a closed window: late, and nothing emitted again. */
        CU_ASSERT_EQUAL(add(e, "a", 9999, 100.0), TG_WINDOW_LATE);
        CU_ASSERT_EQUAL(nemits, 1);
        tg_window_engine_destroy(e);
}

static void test_negative_timestamps(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.grace_ms = 0;
        e = engine(&c);
        fake_now = 0;
        /* -1 belongs to [-10000, 0), not [0, 10000). */
        CU_ASSERT_EQUAL(add(e, "a", -1, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", -10000, 2.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", 0, 3.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].start, -10000);
        CU_ASSERT_EQUAL(emits[0].end, 0);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].first, 2.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].last, 1.0, 0);
        tg_window_engine_destroy(e);
}

static void test_grace_edges(void) {
        struct tg_window_conf c = base_conf(); /* W 10 s, G 2 s */
        tg_window_engine_t *e = engine(&c);

        fake_now = 100000;
        CU_ASSERT_EQUAL(add(e, "a", 5000, 1.0), TG_WINDOW_ACCEPTED);
        /* Watermark 11999 = end + G - 1: still open, a reading at 9999 counts. */
        CU_ASSERT_EQUAL(add(e, "a", 11999, 2.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(nemits, 0);
        CU_ASSERT_EQUAL(add(e, "a", 9999, 3.0), TG_WINDOW_ACCEPTED);
        /* Watermark 12000 = end + G: closes [0, 10000). */
        CU_ASSERT_EQUAL(add(e, "a", 12000, 4.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].last, 3.0, 0);
        CU_ASSERT_EQUAL(add(e, "a", 9999, 5.0), TG_WINDOW_LATE);
        tg_window_engine_destroy(e);
}

static void test_future_and_range(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e = engine(&c);
        struct tg_window_counters k;

        fake_now = 1000000;
        CU_ASSERT_EQUAL(add(e, "a", fake_now + c.max_future_ms, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", fake_now + c.max_future_ms + 1, 1), TG_WINDOW_FUTURE);
        CU_ASSERT_EQUAL(add(e, "a", INT64_MAX, 1), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(add(e, "a", INT64_MIN, 1), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(add(e, "b", TG_TS_MIN, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "b", TG_TS_MIN - 1, 1), TG_WINDOW_OUT_OF_RANGE);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.future, 1);
        CU_ASSERT_EQUAL(k.out_of_range, 3);
        CU_ASSERT_EQUAL(k.accepted, 2);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL(nemits, 2);
        tg_window_engine_destroy(e);
}

static void test_idle_close(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.idle_timeout_ms = 30000;
        e = engine(&c);
        fake_now = 1000000;
        add(e, "a", 995000, 1.0);
        fake_now += 29999;
        tg_window_engine_tick(e);
        CU_ASSERT_EQUAL(nemits, 0);
        fake_now += 1;
        tg_window_engine_tick(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].start, 990000);
        /* The closed window stays closed: a reading for it is late. */
        CU_ASSERT_EQUAL(add(e, "a", 995001, 2.0), TG_WINDOW_LATE);
        tg_window_engine_destroy(e);
}

static void test_table_full(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        char id[16];
        int i;

        c.max_sensors = 3;
        e = engine(&c);
        fake_now = 1000000;
        for (i = 0; i < 3; i++) {
                snprintf(id, sizeof(id), "s%d", i);
                CU_ASSERT_EQUAL(add(e, id, 1000, 1), TG_WINDOW_ACCEPTED);
        }
        CU_ASSERT_EQUAL(add(e, "s3", 1000, 1), TG_WINDOW_TABLE_FULL);
        CU_ASSERT_EQUAL(add(e, "s0", 1001, 1), TG_WINDOW_ACCEPTED);
        tg_window_engine_destroy(e);
}

static void test_hopping(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        int i;

        c.size_ms = 10000;
        c.hop_ms = 5000;
        c.grace_ms = 0;
        e = engine(&c);
        fake_now = 1000000;
        /* 7000 lies in [0, 10000) and [5000, 15000). */
        CU_ASSERT_EQUAL(add(e, "a", 7000, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", 12000, 2.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].start, 0);
        CU_ASSERT_EQUAL(emits[0].count, 1);
        CU_ASSERT_EQUAL(add(e, "a", 20000, 3.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 3);
        CU_ASSERT_EQUAL(emits[1].start, 5000);
        CU_ASSERT_EQUAL(emits[1].count, 2);
        CU_ASSERT_EQUAL(emits[2].start, 10000);
        CU_ASSERT_EQUAL(emits[2].count, 1);
        for (i = 1; i < nemits; i++)
                CU_ASSERT(emits[i].start > emits[i - 1].start);
        tg_window_engine_destroy(e);
}

static void test_global_close(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.close = TG_CLOSE_GLOBAL;
        c.grace_ms = 0;
        e = engine(&c);
        fake_now = 1000000;
        add(e, "a", 1000, 1.0);
        add(e, "b", 25000, 1.0);
        /* a's window is closable by the global watermark; tick emits it. */
        tg_window_engine_tick(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_STRING_EQUAL(emits[0].sensor, "a");
        CU_ASSERT_EQUAL(add(e, "a", 2000, 1.0), TG_WINDOW_LATE);
        tg_window_engine_destroy(e);
}

static void test_welford(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e = engine(&c);
        const double v[] = {1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16};
        int i;

        fake_now = 1000000;
        for (i = 0; i < 4; i++)
                add(e, "a", 1000 + i, v[i]);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].mean, 1e9 + 10, 1e-6);
        /* population variance of 4, 7, 13, 16 is 22.5 */
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].m2 / 4, 22.5, 1e-6);
        tg_window_engine_destroy(e);
}

static void test_state_round_trip(void) {
        struct tg_window_conf c = base_conf();
        char path[] = "/tmp/tg-window-state-XXXXXX", err[256];
        tg_window_engine_t *e = engine(&c), *e2;
        int fd = mkstemp(path);
        FILE *f;

        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
        fake_now = 1000000;
        add(e, "a", 1000, 1.0);
        add(e, "a", 2000, 2.0);
        add(e, "b", 5000, 7.0);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e, path), 0);
        tg_window_engine_destroy(e);

        e2 = engine(&c);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_load(e2, path, err, sizeof(err)), 0);
        add(e2, "a", 3000, 3.0);
        CU_ASSERT_EQUAL(add(e2, "a", 12000, 9.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_STRING_EQUAL(emits[0].sensor, "a");
        CU_ASSERT_EQUAL(emits[0].count, 3);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].mean, 2.0, 1e-12);
        tg_window_engine_flush(e2);
        CU_ASSERT_EQUAL(nemits, 3);

        /* Flip one byte: CRC refuses the file and the engine starts empty. */
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e2, path), 0);
        f = fopen(path, "r+b");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fseek(f, 20, SEEK_SET);
        fputc(0x5a ^ 0xff, f);
        fclose(f);
        tg_window_engine_destroy(e2);
        e2 = engine(&c);
        CU_ASSERT_EQUAL(tg_window_engine_load(e2, path, err, sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "CRC"));
        tg_window_engine_flush(e2);
        CU_ASSERT_EQUAL(nemits, 0);
        tg_window_engine_destroy(e2);

        /* Another window size: refused, not misread. */
        e = engine(&c);
        add(e, "a", 1000, 1.0);
        CU_ASSERT_EQUAL(tg_window_engine_save(e, path), 0);
        tg_window_engine_destroy(e);
        c.size_ms = 5000;
        c.hop_ms = 5000;
        e2 = engine(&c);
        CU_ASSERT_EQUAL(tg_window_engine_load(e2, path, err, sizeof(err)), -EINVAL);
        unlink(path);
        CU_ASSERT_EQUAL(tg_window_engine_load(e2, path, err, sizeof(err)), -ENOENT);
        tg_window_engine_destroy(e2);
}

int main(void) {
        static const struct {
                const char *name;
                void (*fn)(void);
        } tests[] = {
                {"boundaries at 0, W-1 and W", test_boundaries},
                {"negative timestamps floor to earlier windows", test_negative_timestamps},
                {"grace: one ms before and at end + G", test_grace_edges},
                {"future and out-of-range timestamps refused", test_future_and_range},
                {"idle close by the wall clock", test_idle_close},
                {"sensor table full", test_table_full},
                {"hopping windows", test_hopping},
                {"gateway-wide watermark", test_global_close},
                {"Welford mean and variance", test_welford},
                {"state file round trip, corruption, mismatch", test_state_round_trip},
        };
        CU_pSuite suite;
        unsigned failed;
        size_t i;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        suite = CU_add_suite("window", NULL, NULL);
        for (i = 0; suite && i < sizeof(tests) / sizeof(*tests); i++)
                if (!CU_add_test(suite, tests[i].name, tests[i].fn))
                        suite = NULL;
        if (!suite) {
                CU_cleanup_registry();
                return 1;
        }
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        return failed ? 1 : 0;
}
