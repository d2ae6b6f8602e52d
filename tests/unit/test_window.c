/* test_window.c - CUnit tests of the window engine: boundaries, grace, late, idle, table, state file. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "codec.h"
#include "window.h"
#include "tg_test.h"

#define MAX_EMITS 4096

struct emitted {
        char sensor[TG_SENSOR_ID_MAX + 1];
        int64_t start, end;
        uint32_t count, nfields;
        int final;
        uint64_t late;
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
        e->final = w->final;
        e->late = w->late;
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

/* The engine reads its clock at creation and at each tick (1.3). */
static void set_now(tg_window_engine_t *e, int64_t now) {
        fake_now = now;
        tg_window_engine_tick(e);
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
        set_now(e, 100000);
        /* 10000 and 19999 share [10000, 20000); 20000 starts the next window
         * and, with no grace, closes [10000, 20000) at once. */
        CU_ASSERT_EQUAL(add(e, "a", 10000, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", 19999, 3.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(nemits, 0);
        CU_ASSERT_EQUAL(add(e, "a", 20000, 5.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].start, 10000);
        CU_ASSERT_EQUAL(emits[0].end, 20000);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT_EQUAL(emits[0].fields[0].count, 2);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].min, 1.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].max, 3.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].mean, 2.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].sum, 4.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].first, 1.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].last, 3.0, 0);
        /* 19999 now falls in a closed window: late, and nothing emitted again. */
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL(nemits, 2);
        tg_window_engine_destroy(e);
}

/* 1.2, 2.2: the first ms after the epoch is the earliest time; its windows
 * are aligned to the epoch like any other, and with hops one starts before
 * it (boundaries round toward minus infinity). */
static void test_first_windows(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.grace_ms = 0;
        e = engine(&c);
        set_now(e, 0);
        CU_ASSERT_EQUAL(add(e, "a", 0, 9.0), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(add(e, "a", -1, 9.0), TG_WINDOW_OUT_OF_RANGE);
        set_now(e, 100000);
        CU_ASSERT_EQUAL(add(e, "a", 1, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", 9999, 2.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", 10000, 3.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].start, 0);
        CU_ASSERT_EQUAL(emits[0].end, 10000);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].first, 1.0, 0);
        tg_window_engine_destroy(e);

        c.hop_ms = 5000; /* 1 lies in [-5000, 5000) and [0, 10000) */
        e = engine(&c);
        set_now(e, 100000);
        CU_ASSERT_EQUAL(add(e, "a", 1, 1.0), TG_WINDOW_ACCEPTED);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 2);
        CU_ASSERT_EQUAL(emits[0].start, -5000);
        CU_ASSERT_EQUAL(emits[0].end, 5000);
        CU_ASSERT_EQUAL(emits[1].start, 0);
        CU_ASSERT_EQUAL(emits[0].count, 1);
        CU_ASSERT_EQUAL(emits[1].count, 1);
        tg_window_engine_destroy(e);
}

static void test_grace_edges(void) {
        struct tg_window_conf c = base_conf(); /* W 10 s, G 2 s */
        tg_window_engine_t *e = engine(&c);

        set_now(e, 100000);
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

        set_now(e, 1000000);
        CU_ASSERT_EQUAL(add(e, "a", fake_now + c.max_future_ms, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "a", fake_now + c.max_future_ms + 1, 1), TG_WINDOW_FUTURE);
        CU_ASSERT_EQUAL(add(e, "a", INT64_MAX, 1), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(add(e, "a", INT64_MIN, 1), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(add(e, "b", TG_TS_MIN, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "b", TG_TS_MIN - 1, 1), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(add(e, "b", -1, 1), TG_WINDOW_OUT_OF_RANGE);
        /* the range is checked before the future (1.2, then 1.3) */
        CU_ASSERT_EQUAL(add(e, "b", TG_TS_MAX + 1, 1), TG_WINDOW_OUT_OF_RANGE);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.future, 1);
        CU_ASSERT_EQUAL(k.out_of_range, 5);
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
        set_now(e, 1000000);
        add(e, "a", 995000, 1.0);
        set_now(e, 1000000 + 29999);
        CU_ASSERT_EQUAL(nemits, 0);
        set_now(e, 1000000 + 30000);
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
        set_now(e, 1000000);
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
        set_now(e, 1000000);
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
        set_now(e, 1000000);
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

        set_now(e, 1000000);
        for (i = 0; i < 4; i++)
                add(e, "a", 1000 + i, v[i]);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].mean, 1e9 + 10, 1e-6);
        /* population variance of 4, 7, 13, 16 is 22.5 */
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].m2 / 4, 22.5, 1e-6);
        tg_window_engine_destroy(e);
}

/* The emitted window of sensor @p id. */
static const struct emitted *emitted_of(const char *id) {
        int i;

        for (i = 0; i < nemits; i++)
                if (!strcmp(emits[i].sensor, id))
                        return &emits[i];
        return NULL;
}

/* What the aggregate record holds for field 0 of @p id's window. */
static const char *field_json(const char *id) {
        static char text[512];
        const struct emitted *w = emitted_of(id);
        struct tg_jw j;

        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        tg_jw_init(&j, text, sizeof(text));
        tg_jw_field_stats(&j, &w->fields[0]);
        CU_ASSERT_FATAL(tg_jw_finish(&j) > 0);
        return text;
}

#define EXPECT_FIELD_JSON(id, want)                                            \
        do {                                                                   \
                const char *got_ = field_json(id);                             \
                tg_check(!strcmp(got_, (want)), __LINE__, "%s:\n got  %s\n want %s", \
                         (id), got_, (want));                                  \
        } while (0)

/* 6.2 and the README's record format (issue 12, item 6): the mean and the
 * standard deviation stay finite whenever the values are; a sum past the
 * largest double is written null, and the field says "overflow":true. */
static void test_overflowing_statistics(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e = engine(&c);
        const struct emitted *w;

        set_now(e, 1000000);
        add(e, "max", 10000, DBL_MAX);
        add(e, "max", 10001, DBL_MAX);
        add(e, "-max", 10000, -DBL_MAX);
        add(e, "-max", 10001, -DBL_MAX);
        add(e, "both", 10000, DBL_MAX); /* x - mean overflows */
        add(e, "both", 10001, -DBL_MAX);
        add(e, "big", 10000, 1e200);    /* the squares overflow */
        add(e, "big", 10001, -1e200);
        add(e, "big", 10002, 3e200);
        add(e, "small", 10000, 4);      /* and the common case, unchanged */
        add(e, "small", 10001, 8);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 5);

        EXPECT_FIELD_JSON("max", "{\"count\":2,\"min\":1.7976931348623157e+308,"
                                 "\"max\":1.7976931348623157e+308,\"mean\":1.7976931348623157e+308,"
                                 "\"sum\":null,\"stddev\":0,\"first\":1.7976931348623157e+308,"
                                 "\"last\":1.7976931348623157e+308,\"overflow\":true}");
        EXPECT_FIELD_JSON("-max", "{\"count\":2,\"min\":-1.7976931348623157e+308,"
                                  "\"max\":-1.7976931348623157e+308,\"mean\":-1.7976931348623157e+308,"
                                  "\"sum\":null,\"stddev\":0,\"first\":-1.7976931348623157e+308,"
                                  "\"last\":-1.7976931348623157e+308,\"overflow\":true}");
        /* mean 0 (it was -infinity), and sigma of {max, -max} is max itself */
        EXPECT_FIELD_JSON("both", "{\"count\":2,\"min\":-1.7976931348623157e+308,"
                                  "\"max\":1.7976931348623157e+308,\"mean\":0,\"sum\":0,"
                                  "\"stddev\":1.7976931348623157e+308,"
                                  "\"first\":1.7976931348623157e+308,"
                                  "\"last\":-1.7976931348623157e+308}");
        EXPECT_FIELD_JSON("small", "{\"count\":2,\"min\":4,\"max\":8,\"mean\":6,\"sum\":12,"
                                   "\"stddev\":2,\"first\":4,\"last\":8}");

        /* {1e200, -1e200, 3e200}: mean 1e200, sigma sqrt(8/3) e200 */
        w = emitted_of("big");
        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        CU_ASSERT(w->fields[0].m2 < 0); /* the wide form */
        CU_ASSERT_DOUBLE_EQUAL(w->fields[0].mean / 1e200, 1.0, 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(tg_field_stats_stddev(&w->fields[0]) / 1e200, sqrt(8.0 / 3.0), 1e-15);
        CU_ASSERT(isfinite(w->fields[0].sum));
        CU_ASSERT_PTR_NULL(strstr(field_json("big"), "null"));
        CU_ASSERT_PTR_NULL(strstr(field_json("big"), "overflow"));
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
        set_now(e, 1000000);
        add(e, "a", 1000, 1.0);
        add(e, "a", 2000, 2.0);
        add(e, "b", 5000, 7.0);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e, path, 4242, NULL), 0);
        tg_window_engine_destroy(e);

        e2 = engine(&c);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_load(e2, path, NULL, err, sizeof(err)), 0);
        add(e2, "a", 3000, 3.0);
        CU_ASSERT_EQUAL(add(e2, "a", 12000, 9.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_STRING_EQUAL(emits[0].sensor, "a");
        CU_ASSERT_EQUAL(emits[0].count, 3);
        CU_ASSERT_DOUBLE_EQUAL(emits[0].fields[0].mean, 2.0, 1e-12);
        tg_window_engine_flush(e2);
        CU_ASSERT_EQUAL(nemits, 3);

        /* Flip one byte: CRC refuses the file and the engine starts empty. */
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e2, path, 0, NULL), 0);
        f = fopen(path, "r+b");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fseek(f, 20, SEEK_SET);
        fputc(0x5a ^ 0xff, f);
        fclose(f);
        tg_window_engine_destroy(e2);
        e2 = engine(&c);
        CU_ASSERT_EQUAL(tg_window_engine_load(e2, path, NULL, err, sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "CRC"));
        tg_window_engine_flush(e2);
        CU_ASSERT_EQUAL(nemits, 0);
        tg_window_engine_destroy(e2);

        /* Another window size: refused, not misread. */
        e = engine(&c);
        add(e, "a", 1000, 1.0);
        CU_ASSERT_EQUAL(tg_window_engine_save(e, path, 0, NULL), 0);
        tg_window_engine_destroy(e);
        c.size_ms = 5000;
        c.hop_ms = 5000;
        e2 = engine(&c);
        CU_ASSERT_EQUAL(tg_window_engine_load(e2, path, NULL, err, sizeof(err)), -EINVAL);
        unlink(path);
        CU_ASSERT_EQUAL(tg_window_engine_load(e2, path, NULL, err, sizeof(err)), -ENOENT);
        tg_window_engine_destroy(e2);
}

/* 1.2, 2.2: windows at the ends of the accepted range (1 ms to the end of 9999). */
static void test_range_ends(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e = engine(&c);
        int64_t start_max = (TG_TS_MAX / 10000) * 10000;

        set_now(e, TG_TS_MAX);
        CU_ASSERT_EQUAL(add(e, "hi", TG_TS_MAX, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "hi", TG_TS_MAX - 1, 2.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "lo", TG_TS_MIN, 3.0), TG_WINDOW_ACCEPTED);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 2);
        CU_ASSERT_EQUAL(emits[0].start, start_max);
        CU_ASSERT_EQUAL(emits[0].end, start_max + 10000);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT(emits[1].start <= TG_TS_MIN && emits[1].end > TG_TS_MIN);
        CU_ASSERT_EQUAL(emits[1].start % 10000, 0);
        tg_window_engine_destroy(e);
}

/* 7.1, 7.3: a sensor runs through its small ring hundreds of times; every
 * window comes out once, in order, with the right count. */
static void test_ring_wrap_around(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        int64_t t;
        int i;

        c.size_ms = c.hop_ms = 1000;
        c.grace_ms = 2500; /* ring of (1000 + 2500) / 1000 + 2 = 5 slots */
        e = engine(&c);
        set_now(e, 10000000);
        for (t = 1000000; t < 2000000; t += 100) {
                CU_ASSERT_EQUAL(add(e, "a", t, (double)t), TG_WINDOW_ACCEPTED);
                /* an out-of-order reading 2 s back: still within grace */
                if (t >= 1002000 && t % 700 == 0)
                        CU_ASSERT_EQUAL(add(e, "a", t - 2000 + 50, 0.5), TG_WINDOW_ACCEPTED);
        }
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 1000);
        for (i = 0; i < nemits; i++) {
                CU_ASSERT_EQUAL(emits[i].start, 1000000 + (int64_t)i * 1000);
                CU_ASSERT(emits[i].count >= 10 && emits[i].count <= 12);
        }
        tg_window_engine_destroy(e);
}

/* 7.2: eviction of the least recently active sensor once silent long enough. */
static void test_eviction(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        struct tg_window_counters k;

        c.max_sensors = 2;
        c.evict_after_ms = 10000;
        e = engine(&c);
        set_now(e, 1000000);
        add(e, "a", 1000, 1.0);
        add(e, "b", 1000, 2.0);
        set_now(e, 1005000);
        CU_ASSERT_EQUAL(add(e, "c", 1000, 3.0), TG_WINDOW_TABLE_FULL);
        CU_ASSERT_EQUAL(nemits, 0);
        set_now(e, 1010000);
        /* a and b are equally silent; a was active first, so it goes. */
        CU_ASSERT_EQUAL(add(e, "c", 1000, 3.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_STRING_EQUAL(emits[0].sensor, "a");
        CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, "a", 1), -1);
        /* b is still silent: a comes back as a new sensor in b's place, and
         * its old window is not late: its close mark was forgotten. */
        CU_ASSERT_EQUAL(add(e, "a", 1500, 4.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(nemits, 2);
        CU_ASSERT_STRING_EQUAL(emits[1].sensor, "b");
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.evicted, 2);
        CU_ASSERT_EQUAL(k.table_full, 1);
        CU_ASSERT_EQUAL(k.sensors_active, 2);
        tg_window_engine_destroy(e);
}

/* 7.2 with thousands of ids: the hash index stays consistent through
 * evictions (every surviving sensor is still found). */
static void test_eviction_churn(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        char id[32];
        int i;

        c.max_sensors = 64;
        c.evict_after_ms = 1;
        e = engine(&c);
        for (i = 0; i < 3000; i++) {
                set_now(e, 1000000 + i);
                snprintf(id, sizeof(id), "flood-%d", i);
                CU_ASSERT_EQUAL_FATAL(add(e, id, 1000, 1.0), TG_WINDOW_ACCEPTED);
        }
        for (i = 3000 - 64; i < 3000; i++) {
                snprintf(id, sizeof(id), "flood-%d", i);
                CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, id, strlen(id)), 0);
        }
        snprintf(id, sizeof(id), "flood-%d", 3000 - 65);
        CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, id, strlen(id)), -1);
        CU_ASSERT_EQUAL(nemits, 3000 - 64);
        tg_window_engine_destroy(e);
}

/* Section 7 knows no id too short: an empty one (which tg_reading_set_sensor
 * refuses, but a caller may fill the struct itself) is an id like any other,
 * and ids that differ in their last byte only, short and long, stay apart. */
static void test_ids_empty_and_long(void) {
        struct tg_window_conf c = base_conf();
        static const size_t lens[] = {1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 27, 28, 29, 30, 63, 64};
        char id[TG_SENSOR_ID_MAX + 1];
        tg_window_engine_t *e;
        struct tg_reading r;
        size_t i, k;

        c.max_sensors = 64;
        c.idle_timeout_ms = 1000;
        e = engine(&c);
        set_now(e, 100000);
        tg_reading_clear(&r);
        tg_reading_add_field(&r, "x", 1, 1.0);
        r.ts_ms = 1000;
        r.sensor_len = 0;
        CU_ASSERT_EQUAL(tg_window_engine_add(e, &r), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(tg_window_engine_add(e, &r), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, "", 0), 0);
        for (i = 0; i < sizeof(lens) / sizeof(*lens); i++) {
                for (k = 0; k < 2; k++) {
                        memset(id, 'a', lens[i]);
                        id[lens[i] - 1] = (char)('0' + k);
                        tg_reading_set_sensor(&r, id, lens[i]);
                        r.ts_ms = 1000 + (int64_t)k;
                        r.fields[0].value = (double)lens[i] * 10 + (double)k;
                        CU_ASSERT_EQUAL(tg_window_engine_add(e, &r), TG_WINDOW_ACCEPTED);
                }
        }
        set_now(e, 200000); /* idle: every window closes, one per id */
        CU_ASSERT_EQUAL_FATAL(nemits, 1 + 2 * (int)(sizeof(lens) / sizeof(*lens)));
        CU_ASSERT_EQUAL(emits[0].sensor[0], '\0');
        CU_ASSERT_EQUAL(emits[0].count, 2);
        for (i = 1; i < (size_t)nemits; i++) {
                size_t len = strlen(emits[i].sensor);

                CU_ASSERT_EQUAL(emits[i].count, 1);
                CU_ASSERT_DOUBLE_EQUAL(emits[i].fields[0].sum,
                                       (double)len * 10 + (emits[i].sensor[len - 1] - '0'), 0);
        }
        tg_window_engine_destroy(e);
}

/* 5.4: running results at most every U, only when changed; final at close. */
static void test_update_mode(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.update_interval_ms = 1000;
        c.grace_ms = 0;
        e = engine(&c);
        set_now(e, 1000000);
        add(e, "a", 1000, 1.0);
        set_now(e, 1000100);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].final, 0);
        CU_ASSERT_EQUAL(emits[0].count, 1);
        set_now(e, 1002000); /* unchanged: nothing */
        CU_ASSERT_EQUAL(nemits, 1);
        add(e, "a", 2000, 3.0);
        set_now(e, 1002100); /* changed, and 2000 ms since the last update */
        CU_ASSERT_EQUAL_FATAL(nemits, 2);
        CU_ASSERT_EQUAL(emits[1].count, 2);
        add(e, "a", 3000, 5.0);
        set_now(e, 1002600); /* changed, but only 500 ms since the last */
        CU_ASSERT_EQUAL(nemits, 2);
        add(e, "a", 10000, 7.0); /* closes [0, 10000) */
        CU_ASSERT_EQUAL_FATAL(nemits, 3);
        CU_ASSERT_EQUAL(emits[2].final, 1);
        CU_ASSERT_EQUAL(emits[2].count, 3);
        CU_ASSERT_DOUBLE_EQUAL(emits[2].fields[0].mean, 3.0, 0);
        tg_window_engine_destroy(e);
}

/* 4.2, 6.3: late readings counted per sensor and reported with the next final result. */
static void test_late_counts(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        struct tg_window_counters k;

        c.grace_ms = 0;
        e = engine(&c);
        set_now(e, 1000000);
        add(e, "a", 100000, 1.0);
        add(e, "a", 110000, 1.0);
        CU_ASSERT_EQUAL(emits[0].late, 0);
        CU_ASSERT_EQUAL(add(e, "a", 100005, 9.0), TG_WINDOW_LATE);
        CU_ASSERT_EQUAL(add(e, "a", 109999, 9.0), TG_WINDOW_LATE);
        CU_ASSERT_EQUAL(add(e, "b", 100005, 9.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, "a", 1), 2);
        CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, "b", 1), 0);
        add(e, "a", 120000, 1.0);
        CU_ASSERT_EQUAL_FATAL(nemits, 2);
        CU_ASSERT_EQUAL(emits[1].start, 110000);
        CU_ASSERT_EQUAL(emits[1].count, 1);
        CU_ASSERT_EQUAL(emits[1].late, 2);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.late, 2);
        tg_window_engine_destroy(e);
}

/* 5.2: silence closes windows, old timestamps arriving steadily do not. */
static void test_idle_is_silence_not_age(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        int i;

        c.idle_timeout_ms = 30000;
        e = engine(&c);
        set_now(e, 1000000000);
        /* a backlog from long ago, one reading every 5 s of wall time */
        for (i = 0; i < 20; i++) {
                add(e, "a", 1000 + i * 100, 1.0);
                set_now(e, 1000000000 + (i + 1) * 5000);
        }
        CU_ASSERT_EQUAL(nemits, 0);
        set_now(e, 1000000000 + 19 * 5000 + 30000);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].count, 20);
        tg_window_engine_destroy(e);
}

/* 6.5: field limits. */
static void test_fields_dropped(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;
        struct tg_window_counters k;
        struct tg_reading r;

        c.max_fields = 2;
        c.max_field_names = 3;
        e = engine(&c);
        set_now(e, 1000000);
        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, "a", 1);
        r.ts_ms = 1000;
        tg_reading_add_field(&r, "x", 1, 1);
        tg_reading_add_field(&r, "y", 1, 2);
        tg_reading_add_field(&r, "z", 1, 3);
        CU_ASSERT_EQUAL(tg_window_engine_add(e, &r), TG_WINDOW_ACCEPTED);
        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, "a", 1);
        r.ts_ms = 1001;
        tg_reading_add_field(&r, "w", 1, 4); /* a 4th name: no room in the table */
        CU_ASSERT_EQUAL(tg_window_engine_add(e, &r), TG_WINDOW_ACCEPTED);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_EQUAL(emits[0].count, 2);
        CU_ASSERT_EQUAL(emits[0].nfields, 2);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.fields_dropped, 2);
        tg_window_engine_destroy(e);
}

/* A reading of sensor @p id at @p ts with fields f0..f<n-1> of values base + i. */
static enum tg_window_verdict add_wide(tg_window_engine_t *e, const char *id, int64_t ts,
                                       int n, double base) {
        static const char *const names[] = {"f0", "f1", "f2", "f3"};
        struct tg_reading r;
        int i;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, id, strlen(id));
        r.ts_ms = ts;
        for (i = 0; i < n; i++)
                tg_reading_add_field(&r, names[i], 2, base + i);
        return tg_window_engine_add(e, &r);
}

/* The emitted window of @p id starting at @p start, or NULL. */
static const struct emitted *emitted_window(const char *id, int64_t start) {
        int i;

        for (i = 0; i < nemits; i++)
                if (!strcmp(emits[i].sensor, id) && emits[i].start == start && emits[i].final)
                        return &emits[i];
        return NULL;
}

/* Fields f0..f<n-1> with count @p count and values base + i .. */
static void expect_fields(const struct emitted *w, int n, uint32_t count, double base) {
        int i;

        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        CU_ASSERT_EQUAL_FATAL(w->nfields, (uint32_t)n);
        for (i = 0; i < n; i++) {
                CU_ASSERT_EQUAL(w->fields[i].count, count);
                CU_ASSERT_DOUBLE_EQUAL(w->fields[i].min, base + i, 0);
                CU_ASSERT_DOUBLE_EQUAL(w->fields[i].last, base + i, 0);
        }
}

/* 6.5: past window.reserved_fields a window's fields take a wide block
 * from a pool of window.wide_windows; with none free they are dropped and
 * counted, and the block is free again once its window closes. */
static void test_wide_windows(void) {
        struct tg_window_conf c = base_conf();
        struct tg_window_counters k;
        tg_window_engine_t *e;

        c.reserved_fields = 2;
        c.wide_windows = 1;
        e = engine(&c);
        set_now(e, 1000000);
        CU_ASSERT_EQUAL(add_wide(e, "a", 1000, 4, 10), TG_WINDOW_ACCEPTED); /* takes the block */
        CU_ASSERT_EQUAL(add_wide(e, "b", 1000, 4, 20), TG_WINDOW_ACCEPTED); /* none left */
        CU_ASSERT_EQUAL(add_wide(e, "b", 1001, 4, 20), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add_wide(e, "c", 1000, 2, 30), TG_WINDOW_ACCEPTED); /* needs none */
        CU_ASSERT_EQUAL(add_wide(e, "a", 1001, 4, 10), TG_WINDOW_ACCEPTED);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.fields_dropped, 4); /* b's f2 and f3, twice */
        CU_ASSERT_EQUAL(k.wide_refused, 4);
        /* a's window closes (watermark at end + grace) and frees the block:
         * b's next window gets all four fields. */
        CU_ASSERT_EQUAL(add_wide(e, "a", 12000, 1, 0), TG_WINDOW_ACCEPTED);
        expect_fields(emitted_window("a", 0), 4, 2, 10);
        CU_ASSERT_EQUAL(add_wide(e, "b", 12000, 4, 40), TG_WINDOW_ACCEPTED);
        expect_fields(emitted_window("b", 0), 2, 2, 20);
        tg_window_engine_flush(e);
        expect_fields(emitted_window("b", 10000), 4, 1, 40);
        expect_fields(emitted_window("c", 0), 2, 1, 30);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.fields_dropped, 4);
        tg_window_engine_destroy(e);
}

/* 8.1: a window with a wide block survives the state file; an engine with
 * no wide block to give keeps its reserved fields and counts the rest. */
static void test_state_wide_windows(void) {
        struct tg_window_conf c = base_conf();
        char path[] = "/tmp/tg-window-state-XXXXXX", err[256];
        struct tg_window_counters k;
        tg_window_engine_t *e;
        int fd = mkstemp(path);

        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
        c.reserved_fields = 2;
        c.wide_windows = 4;
        e = engine(&c);
        set_now(e, 1000000);
        add_wide(e, "a", 1000, 4, 10);
        add_wide(e, "a", 1001, 4, 10);
        add_wide(e, "n", 1000, 1, 50);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e, path, 7, NULL), 0);
        tg_window_engine_destroy(e);

        e = engine(&c);
        set_now(e, 1000000);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_load(e, path, NULL, err, sizeof(err)), 0);
        tg_window_engine_flush(e);
        expect_fields(emitted_window("a", 0), 4, 2, 10);
        expect_fields(emitted_window("n", 0), 1, 1, 50);
        tg_window_engine_destroy(e);

        c.wide_windows = 0;
        e = engine(&c);
        set_now(e, 1000000);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_load(e, path, NULL, err, sizeof(err)), 0);
        tg_window_engine_flush(e);
        expect_fields(emitted_window("a", 0), 2, 2, 10);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.fields_dropped, 2);
        CU_ASSERT_EQUAL(k.wide_refused, 2);
        tg_window_engine_destroy(e);
        unlink(path);
}

/* 7.1: what a sensor costs with the gateway's defaults (10 000 sensors, 10 s
 * windows, 2 s grace, 3 reserved of 8 fields, 1 000 wide windows): a ring
 * of 2 slots of 3 field statistics; at most 800 bytes (issue 13). */
static void test_sensor_bytes(void) {
        struct tg_window_conf c = base_conf();
        tg_window_engine_t *e;

        c.max_sensors = 10000;
        c.max_fields = 8;
        c.max_field_names = 64;
        c.reserved_fields = 3;
        c.wide_windows = 1000;
        e = engine(&c);
        CU_ASSERT(tg_window_engine_sensor_bytes(e) <= 800);
        CU_ASSERT(tg_window_engine_memory(e) >= 10000 * tg_window_engine_sensor_bytes(e));
        printf("\n  %zu bytes per sensor, %zu in all ", tg_window_engine_sensor_bytes(e),
               tg_window_engine_memory(e));
        tg_window_engine_destroy(e);
}

/* 8.2: a file of another version is refused by its version, not its CRC. */
static void test_state_other_version(void) {
        struct tg_window_conf c = base_conf();
        char path[] = "/tmp/tg-window-state-XXXXXX", err[256];
        unsigned char buf[65536];
        tg_window_engine_t *e = engine(&c);
        uint32_t version = 2, crc;
        size_t n;
        FILE *f;
        int fd = mkstemp(path);

        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
        set_now(e, 1000000);
        add(e, "a", 1000, 1.0);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e, path, 0, NULL), 0);
        f = fopen(path, "rb");
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        CU_ASSERT_FATAL(n > 16);
        memcpy(buf + 8, &version, 4);
        crc = (uint32_t)crc32(0L, buf, (uInt)(n - 4));
        memcpy(buf + n - 4, &crc, 4);
        f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        CU_ASSERT_EQUAL(tg_window_engine_load(e, path, NULL, err, sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "version"));
        nemits = 0;
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL(nemits, 0); /* started clean */
        unlink(path);
        tg_window_engine_destroy(e);
}

/* 5.5: closing on request, one sensor or every sensor under a prefix. */
static void test_close_sensors(void) {
        struct tg_window_conf c = base_conf();
        struct tg_window_counters k;
        tg_window_engine_t *e = engine(&c);
        int i, seen_gn = 0, seen_gnd = 0, seen_gnd2 = 0;

        set_now(e, 100000);
        CU_ASSERT_EQUAL(add(e, "g/n", 10000, 1.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "g/n/d", 10000, 2.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "g/n/d", 21000, 3.0), TG_WINDOW_ACCEPTED); /* 2 open */
        CU_ASSERT_EQUAL(add(e, "g/n/d2", 10000, 4.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(add(e, "g/nx", 10000, 5.0), TG_WINDOW_ACCEPTED);  /* not under g/n */
        CU_ASSERT_EQUAL(add(e, "g/n/d/m", 10000, 6.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(nemits, 0);

        /* One sensor: exactly it, none under it. */
        CU_ASSERT_EQUAL(tg_window_engine_close_sensors(e, "g/n/d2", 6, 0), 1);
        CU_ASSERT_EQUAL_FATAL(nemits, 1);
        CU_ASSERT_STRING_EQUAL(emits[0].sensor, "g/n/d2");
        CU_ASSERT(emits[0].final);
        CU_ASSERT_EQUAL(emits[0].start, 10000);
        CU_ASSERT_EQUAL(tg_window_engine_close_sensors(e, "g/n/d2", 6, 0), 0); /* none left */
        CU_ASSERT_EQUAL(tg_window_engine_close_sensors(e, "nobody", 6, 0), 0);

        /* A prefix: g/n itself and everything under g/n/, in start order per sensor. */
        nemits = 0;
        CU_ASSERT_EQUAL(tg_window_engine_close_sensors(e, "g/n", 3, 1), 3);
        CU_ASSERT_EQUAL_FATAL(nemits, 4);
        for (i = 0; i < nemits; i++) {
                CU_ASSERT(emits[i].final);
                if (!strcmp(emits[i].sensor, "g/n"))
                        seen_gn++;
                else if (!strcmp(emits[i].sensor, "g/n/d")) {
                        CU_ASSERT_EQUAL(emits[i].start, seen_gnd ? 20000 : 10000);
                        seen_gnd++;
                } else if (!strcmp(emits[i].sensor, "g/n/d/m"))
                        seen_gnd2++;
                else
                        CU_FAIL("closed a sensor not under the prefix");
        }
        CU_ASSERT_EQUAL(seen_gn, 1);
        CU_ASSERT_EQUAL(seen_gnd, 2);
        CU_ASSERT_EQUAL(seen_gnd2, 1);
        tg_window_engine_counters(e, &k);
        CU_ASSERT_EQUAL(k.death_closes, 4);
        CU_ASSERT_EQUAL(k.windows_emitted, 5);

        /* The sensors stay: a later reading opens a window as usual. */
        nemits = 0;
        CU_ASSERT_EQUAL(add(e, "g/n/d", 31000, 7.0), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(nemits, 0);
        tg_window_engine_flush(e);
        CU_ASSERT_EQUAL(nemits, 2); /* g/n/d [30000,..) and g/nx, which was never closed */
        tg_window_engine_destroy(e);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"1.2/1.3 future and out-of-range timestamps refused", test_future_and_range},
                {"1.2/2.2 windows at the ends of the range", test_range_ends},
                {"2.2 boundaries at kW, (k+1)W-1 and (k+1)W", test_boundaries},
                {"1.2/2.2 the first windows after the epoch", test_first_windows},
                {"2.3 hopping windows", test_hopping},
                {"3.4 grace: one ms before and at end + G", test_grace_edges},
                {"3.5/5.3 gateway-wide watermark", test_global_close},
                {"4.2/6.3 late readings counted per sensor", test_late_counts},
                {"5.2 idle close by the wall clock", test_idle_close},
                {"5.2 idle is silence, not old timestamps", test_idle_is_silence_not_age},
                {"5.4 update mode", test_update_mode},
                {"5.5 closing one sensor or a prefix on request", test_close_sensors},
                {"6.2 Welford mean and variance", test_welford},
                {"6.2 statistics near the largest double", test_overflowing_statistics},
                {"6.5 fields dropped when full", test_fields_dropped},
                {"6.5 fields past the reserved ones in wide blocks", test_wide_windows},
                {"8.1 wide blocks in the state file", test_state_wide_windows},
                {"7.1 bytes per sensor with the defaults", test_sensor_bytes},
                {"7.1/7.3 ring wrap-around", test_ring_wrap_around},
                {"7.2 sensor table full", test_table_full},
                {"7.2 eviction of the least recently active", test_eviction},
                {"7.2 eviction churn keeps the index consistent", test_eviction_churn},
                {"7 empty ids, and ids differing in their last byte", test_ids_empty_and_long},
                {"8 state file round trip, corruption, mismatch", test_state_round_trip},
                {"8.2 state file of another version", test_state_other_version},
        };

        return TG_TEST_RUN("window", tests);
}
