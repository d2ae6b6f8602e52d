/* test_window_hash.c - CUnit tests of the sensor table's keyed hash: ids crafted to collide under the old hash (issue 13). */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../bench/flood_ids.h"
#include "keyed_hash.h"
#include "window.h"
#include "tg_test.h"

#define NCRAFTED 1000

static char crafted[NCRAFTED][FLOOD_ID_LEN + 1];
static int64_t fake_now;
static uint64_t emitted_final;

static int64_t fake_clock_now(void *opaque) {
        (void)opaque;
        return fake_now;
}

static const struct tg_clock fake_clock = {.now_ms = fake_clock_now};

static void count_emit(void *opaque, const struct tg_window_result *w) {
        (void)opaque;
        emitted_final += w->final;
}

static const unsigned char key_a[TG_WINDOW_HASH_KEY_BYTES] = "0123456789abcdef";
static const unsigned char key_b[TG_WINDOW_HASH_KEY_BYTES] = "fedcba9876543210";

static tg_window_engine_t *engine(uint32_t max_sensors, const unsigned char *key) {
        struct tg_window_conf c = {
                .size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                .max_future_ms = 300000, .evict_after_ms = 1000,
                .max_sensors = max_sensors, .max_fields = 4, .max_field_names = 8,
        };
        char err[256];
        tg_window_engine_t *e = tg_window_engine_new(&c, &fake_clock, count_emit, NULL, err,
                                                     sizeof(err));

        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        if (key)
                CU_ASSERT_EQUAL(tg_window_engine_set_hash_key(e, key), 0);
        emitted_final = 0;
        return e;
}

static enum tg_window_verdict add(tg_window_engine_t *e, const char *id, int64_t ts) {
        struct tg_reading r;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, id, strlen(id));
        r.ts_ms = ts;
        tg_reading_add_field(&r, "x", 1, 1.0);
        return tg_window_engine_add(e, &r);
}

/* The ids every test uses: NCRAFTED ids of one old hash. */
static void test_crafted_ids_collide_under_old_hash(void) {
        int i;

        CU_ASSERT_EQUAL_FATAL(flood_craft_ids(crafted[0], sizeof(crafted[0]), NCRAFTED),
                              NCRAFTED);
        for (i = 0; i < NCRAFTED; i++) {
                crafted[i][FLOOD_ID_LEN] = '\0';
                CU_ASSERT_EQUAL(strlen(crafted[i]), FLOOD_ID_LEN);
                CU_ASSERT_EQUAL(flood_old_hash_id(crafted[i], FLOOD_ID_LEN), FLOOD_HASH);
                CU_ASSERT(i == 0 || strcmp(crafted[i], crafted[i - 1]));
        }
}

static void test_hash_is_siphash_of_the_key(void) {
        tg_window_engine_t *e = engine(4, key_a);
        static const char id[] = "press-07";

        CU_ASSERT_EQUAL(tg_window_engine_id_hash(e, id, strlen(id)),
                        (uint32_t)tg_hash_keyed(key_a, id, strlen(id)));
        CU_ASSERT_EQUAL(tg_window_engine_id_hash(e, "", 0), (uint32_t)tg_hash_keyed(key_a, "", 0));
        /* The key cannot change under sensors filed with the old one. */
        CU_ASSERT_EQUAL(add(e, id, 1000), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(tg_window_engine_set_hash_key(e, key_b), -EBUSY);
        CU_ASSERT_EQUAL(tg_window_engine_id_hash(e, id, strlen(id)),
                        (uint32_t)tg_hash_keyed(key_a, id, strlen(id)));
        tg_window_engine_destroy(e);
}

/* The function is SipHash-2-4 as its paper defines it (appendix A: key
 * 00..0f, message 00..0e), as the engine's key placement test assumes. */
static void test_keyed_hash_test_vector(void) {
        unsigned char key[TG_HASH_KEY_BYTES], msg[15];
        size_t i;

        for (i = 0; i < sizeof(key); i++)
                key[i] = (unsigned char)i;
        for (i = 0; i < sizeof(msg); i++)
                msg[i] = (unsigned char)i;
        CU_ASSERT_EQUAL(tg_hash_keyed(key, msg, sizeof(msg)), 0xa129ca6149be45e5ULL);
}

/* Engines draw their own keys: two of them file the same ids differently
 * (all 16 agreeing by chance: 2^-512). */
static void test_engines_draw_different_keys(void) {
        tg_window_engine_t *e1 = engine(4, NULL), *e2 = engine(4, NULL);
        int i, differ = 0;

        for (i = 0; i < 16; i++)
                differ += tg_window_engine_id_hash(e1, crafted[i], FLOOD_ID_LEN) !=
                          tg_window_engine_id_hash(e2, crafted[i], FLOOD_ID_LEN);
        CU_ASSERT(differ > 0);
        tg_window_engine_destroy(e1);
        tg_window_engine_destroy(e2);
}

/* Number of distinct values of hash & mask over the crafted ids. */
static int homes(const tg_window_engine_t *e, uint32_t mask) {
        static unsigned char seen[1u << 16];
        int i, n = 0;

        memset(seen, 0, sizeof(seen));
        for (i = 0; i < NCRAFTED; i++) {
                uint32_t b = tg_window_engine_id_hash(e, crafted[i], FLOOD_ID_LEN) & mask;

                n += !seen[b];
                seen[b] = 1;
        }
        return n;
}

/* All in one bucket under the old hash; under a key, spread like random
 * ids: 1000 ids into the 2048 buckets of a 1000-sensor table fill about
 * 2048 (1 - e^(-1000/2048)) = 797 of them. */
static void test_crafted_ids_spread_under_any_key(void) {
        tg_window_engine_t *a = engine(NCRAFTED, key_a), *b = engine(NCRAFTED, key_b);
        int i, same = 0, ha = homes(a, 2047), hb = homes(b, 2047);

        CU_ASSERT(ha > 700);
        CU_ASSERT(hb > 700);
        /* and differently under two keys */
        for (i = 0; i < NCRAFTED; i++)
                same += (tg_window_engine_id_hash(a, crafted[i], FLOOD_ID_LEN) & 2047) ==
                        (tg_window_engine_id_hash(b, crafted[i], FLOOD_ID_LEN) & 2047);
        CU_ASSERT(same < 10); /* about 1000 / 2048 by chance */
        tg_window_engine_destroy(a);
        tg_window_engine_destroy(b);
}

/* Each crafted id finds its own sensor: sensor i has i % 3 late readings. */
static void test_every_crafted_id_found(void) {
        tg_window_engine_t *e = engine(NCRAFTED, NULL);
        struct tg_window_counters c;
        int i, k;

        fake_now = 100000;
        tg_window_engine_tick(e);
        for (i = 0; i < NCRAFTED; i++)
                CU_ASSERT_EQUAL(add(e, crafted[i], 50000), TG_WINDOW_ACCEPTED);
        for (i = 0; i < NCRAFTED; i++)
                for (k = 0; k < i % 3; k++)
                        CU_ASSERT_EQUAL(add(e, crafted[i], 1000), TG_WINDOW_LATE);
        tg_window_engine_counters(e, &c);
        CU_ASSERT_EQUAL(c.sensors_active, NCRAFTED);
        CU_ASSERT_EQUAL(c.table_full, 0);
        for (i = 0; i < NCRAFTED; i++)
                tg_check(tg_window_engine_sensor_late(e, crafted[i], FLOOD_ID_LEN) == i % 3, __LINE__,
                         "crafted id %d: %lld late", i,
                         (long long)tg_window_engine_sensor_late(e, crafted[i], FLOOD_ID_LEN));
        CU_ASSERT_EQUAL(tg_window_engine_sensor_late(e, "absent", 6), -1);
        tg_window_engine_destroy(e);
}

/* A full table of crafted ids replaced by more crafted ids: the old ones are
 * evicted (windows emitted) and gone from the index, the new ones found. */
static void test_lookups_after_eviction(void) {
        const int half = NCRAFTED / 2;
        tg_window_engine_t *e = engine((uint32_t)half, NULL);
        struct tg_window_counters c;
        int i;

        fake_now = 100000;
        tg_window_engine_tick(e);
        for (i = 0; i < half; i++)
                CU_ASSERT_EQUAL(add(e, crafted[i], 50000), TG_WINDOW_ACCEPTED);
        fake_now += 2000; /* past evict_after */
        tg_window_engine_tick(e);
        for (i = half; i < NCRAFTED; i++)
                CU_ASSERT_EQUAL(add(e, crafted[i], 50000), TG_WINDOW_ACCEPTED);
        tg_window_engine_counters(e, &c);
        CU_ASSERT_EQUAL(c.evicted, (uint64_t)half);
        CU_ASSERT_EQUAL(c.sensors_active, (uint64_t)half);
        CU_ASSERT_EQUAL(emitted_final, (uint64_t)half);
        for (i = 0; i < half; i++)
                tg_check(tg_window_engine_sensor_late(e, crafted[i], FLOOD_ID_LEN) == -1, __LINE__,
                         "evicted crafted id %d still found", i);
        for (i = half; i < NCRAFTED; i++) {
                tg_check(tg_window_engine_sensor_late(e, crafted[i], FLOOD_ID_LEN) == 0, __LINE__,
                         "crafted id %d not found after the evictions", i);
                CU_ASSERT_EQUAL(add(e, crafted[i], 1000), TG_WINDOW_LATE);
                tg_check(tg_window_engine_sensor_late(e, crafted[i], FLOOD_ID_LEN) == 1, __LINE__,
                         "crafted id %d: its late reading went elsewhere", i);
        }
        tg_window_engine_counters(e, &c);
        CU_ASSERT_EQUAL(c.sensors_active, (uint64_t)half);
        CU_ASSERT_EQUAL(c.evicted, (uint64_t)half);
        tg_window_engine_destroy(e);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"crafted ids share one hash under the old function", test_crafted_ids_collide_under_old_hash},
                {"the hash is SipHash-2-4 under the engine's key", test_hash_is_siphash_of_the_key},
                {"SipHash-2-4's test vector", test_keyed_hash_test_vector},
                {"two engines draw different keys", test_engines_draw_different_keys},
                {"crafted ids spread under any key, differently", test_crafted_ids_spread_under_any_key},
                {"7.2 every crafted id finds its own sensor", test_every_crafted_id_found},
                {"7.2 lookups of crafted ids after eviction", test_lookups_after_eviction},
        };

        return TG_TEST_RUN("window hash", tests);
}
