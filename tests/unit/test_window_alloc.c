/* test_window_alloc.c - proves the window engine's per-reading path allocates nothing (malloc wrapped at link time). */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "downsample.h"
#include "window.h"
#include "tg_test.h"

/*
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free:
 * every call to those from the objects linked into this executable, the
 * engine's included, lands in __wrap_* below, which counts it while
 * `counting` is set and forwards it to the C library. (Allocations made
 * inside shared libraries, libc's own strdup for instance, are not seen;
 * the engine calls none that allocate.)
 *
 * docs/windows.md 7.1: "Processing a reading allocates nothing." The engine
 * is created with counting off; then a million readings with everything the
 * engine can do on the way (late readings, ticks, idle closes, running
 * results, evictions, table-full refusals, refusals by range and time) run
 * with counting on, and the count must be 0.
 */

void *__real_malloc(size_t size);
void *__real_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *ptr, size_t size);
void __real_free(void *ptr);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void __wrap_free(void *ptr);

static int counting;
static unsigned long n_malloc, n_calloc, n_realloc, n_free;

void *__wrap_malloc(size_t size) {
        if (counting)
                n_malloc++;
        return __real_malloc(size);
}

void *__wrap_calloc(size_t nmemb, size_t size) {
        if (counting)
                n_calloc++;
        return __real_calloc(nmemb, size);
}

void *__wrap_realloc(void *ptr, size_t size) {
        if (counting)
                n_realloc++;
        return __real_realloc(ptr, size);
}

void __wrap_free(void *ptr) {
        if (counting)
                n_free++;
        __real_free(ptr);
}

static void count_start(void) {
        n_malloc = n_calloc = n_realloc = n_free = 0;
        counting = 1;
}

static unsigned long count_stop(void) {
        counting = 0;
        return n_malloc + n_calloc + n_realloc + n_free;
}

/* ------------------------------------------------------------ the stream */

static int64_t fake_now;

static int64_t fake_clock_now(void *opaque) {
        (void)opaque;
        return fake_now;
}

static const struct tg_clock fake_clock = {.now_ms = fake_clock_now};

static uint64_t finals, updates, checksum;

static void count_emits(void *opaque, const struct tg_window_result *w) {
        (void)opaque;
        if (w->final)
                finals++;
        else
                updates++;
        checksum += w->count + w->nfields;
}

static uint64_t rng_state;

static uint64_t rng_below(uint64_t n) {
        return tg_splitmix64(&rng_state) % n;
}

/* "s<n>" without the C library's formatting. */
static size_t sensor_id(char *buf, uint32_t n) {
        char digits[12];
        size_t len = 0, i = 0;

        do {
                digits[i++] = (char)('0' + n % 10);
                n /= 10;
        } while (n);
        buf[len++] = 's';
        while (i)
                buf[len++] = digits[--i];
        return len;
}

#define NSENSORS 10000
#define NHOT 5000

/* Per sensor: newest ts sent, and the wall time until which it is silent. */
static int64_t max_ts[NSENSORS], silent_until[NSENSORS];

/* > 0: readings go through tg_window_engine_add_batch() in batches of this
 * many (the last one before each tick shorter). */
#define BATCH_MAX 16
static size_t batch_size, npending;
static struct tg_reading pending[BATCH_MAX];

static void flush_pending(tg_window_engine_t *e) {
        enum tg_window_verdict v[BATCH_MAX];

        if (npending)
                tg_window_engine_add_batch(e, pending, npending, npending % 2 ? v : NULL);
        npending = 0;
}

static void add(tg_window_engine_t *e, const struct tg_reading *r) {
        if (!batch_size) {
                tg_window_engine_add(e, r);
                return;
        }
        pending[npending++] = *r;
        if (npending == batch_size)
                flush_pending(e);
}

static void run_stream(tg_window_engine_t *e, const struct tg_window_conf *c, uint64_t n) {
        static const char *const names[] = {"temp", "hum", "pres", "co2", "volt"};
        const int64_t G = c->grace_ms, W = c->size_ms;
        struct tg_window_counters k;
        struct tg_reading r, last;
        int64_t tick_now = fake_now;
        uint64_t i, until_tick = 100;
        char id[16];
        size_t id_len = 0;
        int has_last = 0;

        for (i = 0; i < NSENSORS; i++)
                max_ts[i] = INT64_MIN;
        for (i = 0; i < n; i++) {
                uint32_t s = rng_below(10) < 8 ? (uint32_t)rng_below(NHOT)
                                               : (uint32_t)rng_below(NSENSORS);
                uint64_t dice = rng_below(1000);
                int f;

                if (rng_below(1000) == 0)      /* falls silent past the idle timeout */
                        silent_until[rng_below(NSENSORS)] =
                                fake_now + c->idle_timeout_ms + (int64_t)rng_below(30000);
                if (fake_now < silent_until[s])
                        s = (s + 1) % NSENSORS;
                if (has_last && dice < 10) {
                        add(e, &last); /* exact duplicate */
                        continue;
                }
                tg_reading_clear(&r);
                id_len = sensor_id(id, s);
                tg_reading_set_sensor(&r, id, id_len);
                if (dice < 60 && max_ts[s] != INT64_MIN)
                        r.ts_ms = max_ts[s] - G - 1 - (int64_t)rng_below((uint64_t)(2 * W));
                else if (dice < 160 && max_ts[s] != INT64_MIN)
                        r.ts_ms = max_ts[s] - (int64_t)rng_below((uint64_t)G + 1);
                else if (dice < 165)
                        r.ts_ms = tick_now + c->max_future_ms + 1 + (int64_t)rng_below(1000);
                else if (dice < 167)
                        r.ts_ms = rng_below(2) ? INT64_MIN : TG_TS_MAX + 1;
                else
                        r.ts_ms = fake_now - (int64_t)rng_below(300);
                if (dice >= 167 && r.ts_ms > max_ts[s])
                        max_ts[s] = r.ts_ms;
                for (f = 0; f < 3; f++) {
                        const char *name = names[(s + (uint32_t)f +
                                                  (rng_below(50) == 0 ? 1u : 0u)) % 5];

                        if (f == 2 && rng_below(4) == 0)
                                continue; /* a missing field */
                        tg_reading_add_field(&r, name, strlen(name),
                                             (double)rng_below(100000) / 977.0);
                }
                add(e, &r);
                last = r;
                has_last = 1;

                fake_now += (int64_t)rng_below(4);
                if (--until_tick == 0) {
                        flush_pending(e);
                        tick_now = fake_now;
                        tg_window_engine_tick(e);
                        until_tick = 50 + rng_below(101);
                        /* The read-only calls a metrics endpoint would make. */
                        tg_window_engine_counters(e, &k);
                        checksum += k.accepted +
                                    (uint64_t)tg_window_engine_sensor_late(e, id, id_len);
                        checksum += strlen(tg_window_field_name(e, 0));
                }
        }
        flush_pending(e);
        tg_window_engine_tick(e);
}

/* ----------------------------------------------------------------- tests */

static void test_wrappers_count(void) {
        void *(*volatile alloc)(size_t) = malloc; /* not optimized away */
        void (*volatile release)(void *) = free;
        unsigned long n;

        count_start();
        release(alloc(64));
        n = count_stop();
        CU_ASSERT_EQUAL(n, 2);
        if (n != 2)
                printf("\n    the malloc wrappers saw %lu calls, not 2: link with "
                       "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free\n", n);
}

static void check_engine(const char *what, const struct tg_window_conf *c, uint64_t n) {
        struct tg_window_counters k;
        tg_window_engine_t *e;
        unsigned long allocs;
        char err[256];

        fake_now = INT64_C(1764000000000);
        rng_state = (uint64_t)c->close + 1;
        finals = updates = 0;
        memset(silent_until, 0, sizeof(silent_until));
        e = tg_window_engine_new(c, &fake_clock, count_emits, NULL, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);

        count_start();
        run_stream(e, c, n);
        allocs = count_stop();

        tg_window_engine_counters(e, &k);
        printf("\n    [%s] %llu readings: malloc %lu calloc %lu realloc %lu free %lu; "
               "accepted %llu late %llu future %llu out_of_range %llu table_full %llu "
               "evicted %llu idle_closes %llu finals %llu updates %llu\n",
               what, (unsigned long long)n, n_malloc, n_calloc, n_realloc, n_free,
               (unsigned long long)k.accepted, (unsigned long long)k.late,
               (unsigned long long)k.future, (unsigned long long)k.out_of_range,
               (unsigned long long)k.table_full, (unsigned long long)k.evicted,
               (unsigned long long)k.idle_closes, (unsigned long long)finals,
               (unsigned long long)updates);
        CU_ASSERT_EQUAL(allocs, 0);
        /* The stream did what it claims to. */
        CU_ASSERT(k.late > 0);
        CU_ASSERT(k.future > 0);
        CU_ASSERT(k.out_of_range > 0);
        CU_ASSERT(k.table_full > 0);
        CU_ASSERT(k.evicted > 0);
        CU_ASSERT(k.idle_closes > 0);
        CU_ASSERT(finals > 0);
        CU_ASSERT(updates > 0);
        tg_window_engine_destroy(e);
}

/* Hopping windows, per-sensor watermark, update mode. */
static const struct tg_window_conf hopping = {
        .size_ms = 10000, .hop_ms = 2000, .grace_ms = 2000,
        .idle_timeout_ms = 30000, .max_future_ms = 300000,
        .max_sensors = 8000, .max_fields = 3, .max_field_names = 16,
        .close = TG_CLOSE_PER_SENSOR, .evict_after_ms = 100000,
        .update_interval_ms = 1000,
};

static void test_hopping_per_sensor(void) {
        check_engine("hopping, per-sensor, update mode", &hopping, 1000000);
}

static void test_tumbling_global(void) {
        struct tg_window_conf c = {
                .size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                .idle_timeout_ms = 4000, .max_future_ms = 5000,
                .max_sensors = 8000, .max_fields = 2, .max_field_names = 4,
                .close = TG_CLOSE_GLOBAL, .evict_after_ms = 100000,
                .update_interval_ms = 500,
        };

        check_engine("tumbling, global, update mode, names overflowing", &c, 300000);
}

static void test_batches(void) {
        batch_size = BATCH_MAX;
        check_engine("hopping, per-sensor, update mode, batches of 16", &hopping, 500000);
        batch_size = 0;
}

/* The count is not vacuous: creating an engine allocates its tables. Saving
 * the state then allocates nothing, however many sensors it holds: the file
 * is streamed through a buffer on the stack, never built whole in memory. */
static void test_save_allocates_nothing(void) {
        struct tg_window_conf c = {
                .size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                .max_future_ms = 300000, .max_sensors = 4096, .max_fields = 4,
                .max_field_names = 8,
        };
        char path[] = "/tmp/tg-window-alloc-XXXXXX", id[16];
        tg_window_engine_t *e;
        struct tg_reading r;
        unsigned long allocs;
        uint64_t bytes = 0;
        char err[256];
        int fd = mkstemp(path), rc, i;

        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
        fake_now = 1000000;
        count_start();
        e = tg_window_engine_new(&c, &fake_clock, count_emits, NULL, err, sizeof(err));
        allocs = count_stop();
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT(allocs > 0);
        printf("\n    tg_window_engine_new: %lu calls to the malloc family", allocs);
        for (i = 0; i < 4000; i++) {
                tg_reading_clear(&r);
                tg_reading_set_sensor(&r, id, (size_t)snprintf(id, sizeof(id), "s%d", i));
                r.ts_ms = 1000;
                tg_reading_add_field(&r, "x", 1, 1.0);
                tg_reading_add_field(&r, "y", 1, 2.0);
                tg_window_engine_add(e, &r);
        }

        count_start();
        rc = tg_window_engine_save(e, path, 0, &bytes);
        allocs = count_stop();
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT(bytes > 4000 * 100);   /* larger than the writer's buffer */
        CU_ASSERT_EQUAL(allocs, 0);
        printf("\n    tg_window_engine_save of %llu bytes: %lu calls to the malloc family\n",
               (unsigned long long)bytes, allocs);
        tg_window_engine_destroy(e);
        unlink(path);
}

/* docs/downsample.md 2.5: the compressors allocate nothing per reading,
 * through new sensors, new series, out-of-order readings, a full table. */
static void test_downsample(void) {
        static const char *const names[] = {"temp", "hum", "pres", "co2", "volt"};
        struct tg_raw_rule rules[5] = {{TG_RAW_SWINGING_DOOR, 0.1, 5000},
                                       {TG_RAW_EXCEPTION, 0.2, 5000},
                                       {TG_RAW_ALL, 0, 0},
                                       {TG_RAW_NONE, 0, 0},
                                       {TG_RAW_SWINGING_DOOR, 0.3, 0}};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        struct tg_reading r;
        tg_downsample_t *d;
        uint64_t st = 15, points = 0;
        unsigned long allocs;
        char err[128], id[16];
        int i, f;

        d = tg_downsample_new(900, 3, err, sizeof(err)); /* fewer than the ids: full */
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        count_start();
        for (i = 0; i < 1000000; i++) {
                int n = snprintf(id, sizeof(id), "s%d", i % 1000);

                tg_reading_clear(&r);
                tg_reading_set_sensor(&r, id, (size_t)n);
                r.ts_ms = 1000000 + (int64_t)(i / 1000) * 100 - (i % 97 == 0 ? 500 : 0);
                for (f = 0; f < 5; f++)
                        tg_reading_add_field(&r, names[f], strlen(names[f]),
                                             (double)(tg_splitmix64(&st) % 1000) / 100.0);
                points += tg_downsample_add(d, &r, rules, p);
        }
        allocs = count_stop();
        CU_ASSERT_EQUAL(allocs, 0);
        CU_ASSERT(points > 1000000);
        tg_downsample_destroy(d);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"the malloc wrappers see allocations", test_wrappers_count},
                {"7.1: 1 M readings, hopping, per-sensor, update mode: no allocation",
                 test_hopping_per_sensor},
                {"7.1: readings, tumbling, global, update mode: no allocation",
                 test_tumbling_global},
                {"7.1: readings in batches: no allocation", test_batches},
                {"the count is not vacuous; saving state allocates nothing", test_save_allocates_nothing},
                {"downsample 2.5: 1 M readings through the compressors: no allocation",
                 test_downsample},
        };

        return TG_TEST_RUN("window allocation", tests);
}
