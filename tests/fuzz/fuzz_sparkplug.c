/* fuzz_sparkplug.c - libFuzzer target for the stateful Sparkplug B decoder: one input is a sequence of messages. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decoder keeps state between messages (births, aliases, seq, bdSeq),
 * so one input is a session: its first byte picks the configuration (bit 0:
 * a sensor per metric; bit 1: no rebirth requests), then messages follow,
 * each
 *
 *   u8  selector   bits 0-2: NBIRTH NDATA NDEATH DBIRTH DDATA DDEATH STATE
 *                            and, for 7, a topic that is not Sparkplug's;
 *                  bit 3: edge node "n1" or "n2"; bit 4: device "d1"/"d2";
 *                  bit 5: group "g" or a 40-byte group (ids near 64 bytes)
 *   u16 length     little-endian, then that many payload bytes (fewer if
 *                  the input ends)
 *
 * The tables are tiny (4 nodes and devices, 16 metrics, 256 bytes of
 * names) so overflow and the reuse of entries that are not alive are
 * reached; the arena is small, so too_large too. Besides the sanitizers,
 * an input fails (__builtin_trap()) when a reason or type is out of range,
 * a message is both refused and has readings, a reading breaks the
 * reading model (sensor and field names valid text within bounds, no field
 * twice, finite values, at most 16 fields), a raw or death record is not
 * JSON (cJSON parses it) or lacks its sensor, a rebirth topic is not the
 * node's NCMD topic, or the state does not survive snapshot -> restore ->
 * snapshot unchanged, or the same session decoded twice differs.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparkplug.h"

#define RECORD_MAX (1 << 20)
#define READINGS_MAX 64
#define ARRIVAL_MS 1732700000000LL

#define CHECK(cond, what)                                                                \
        do {                                                                             \
                if (!(cond)) {                                                           \
                        fprintf(stderr, "fuzz_sparkplug: check failed: %s (%s)\n", what, \
                                #cond);                                                  \
                        __builtin_trap();                                                \
                }                                                                        \
        } while (0)

static const unsigned char key[16] = "tumblegate-fuzz";
static char record[RECORD_MAX];
static struct tg_reading readings[READINGS_MAX];

static const char *const types[] = {"NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"};

static void topic_of(uint8_t sel, char *t, size_t cap) {
        const char *group = sel & 32 ? "gggggggggggggggggggggggggggggggggggggggg" : "g";
        const char *node = sel & 8 ? "n2" : "n1";
        const char *dev = sel & 16 ? "d2" : "d1";
        unsigned k = sel & 7;

        if (k == 6)
                snprintf(t, cap, "spBv1.0/STATE/host");
        else if (k == 7)
                snprintf(t, cap, sel & 64 ? "spBv1.0/%s/NBIRTH/%s/x/y" : "spBv1.0/%s/NOPE/%s",
                         group, node);
        else if (k >= 3)
                snprintf(t, cap, "spBv1.0/%s/%s/%s/%s", group, types[k], node, dev);
        else
                snprintf(t, cap, "spBv1.0/%s/%s/%s", group, types[k], node);
}

static int json_ok(const char *s, size_t n, const char *sensor) {
        cJSON *j = cJSON_ParseWithLength(s, n);
        const cJSON *sv;
        int ok;

        if (!j)
                return 0;
        sv = cJSON_GetObjectItemCaseSensitive(j, "sensor");
        ok = cJSON_IsString(sv) && !strcmp(sv->valuestring, sensor) &&
             cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "sparkplug"));
        cJSON_Delete(j);
        return ok;
}

static void check_reading(const struct tg_reading *r) {
        uint16_t i, k;

        CHECK(r->sensor_len && r->sensor_len <= TG_SENSOR_ID_MAX, "sensor length");
        CHECK(strlen(r->sensor) == r->sensor_len, "sensor NUL");
        CHECK(tg_text_valid(r->sensor, r->sensor_len), "sensor text");
        CHECK(r->nfields <= TG_READING_FIELDS_MAX, "fields");
        for (i = 0; i < r->nfields; i++) {
                const struct tg_field *f = &r->fields[i];

                CHECK(f->name_len && f->name_len <= TG_FIELD_NAME_MAX, "field name length");
                CHECK(tg_text_valid(f->name, f->name_len), "field name text");
                CHECK(isfinite(f->value), "finite value");
                for (k = 0; k < i; k++)
                        CHECK(strcmp(r->fields[k].name, f->name), "field twice");
        }
}

/* One session; the state's snapshot at its end into *snap. */
static void run(const uint8_t *data, size_t size, void **snap, size_t *snap_len,
                uint64_t *digest) {
        struct tg_sparkplug_conf c = {
                .max_nodes = 4,
                .max_metrics = 16,
                .name_bytes = 256, /* two 128-byte blocks: the name pool runs out too */
                .sensor_per_metric = size && (data[0] & 1),
                .max_payload = 4096,
                .arena_bytes = 64 << 10,
                .rebirth_interval_ms = size && (data[0] & 2) ? -1 : 5000,
        };
        char err[200], topic[200];
        tg_sparkplug_t *sp = tg_sparkplug_new(&c, err, sizeof(err)), *sp2;
        size_t off = 1;
        int64_t now = ARRIVAL_MS;
        uint64_t h = 1469598103934665603ULL;
        void *b2;
        size_t l2;

        CHECK(sp, "new");
        CHECK(!tg_sparkplug_set_hash_key(sp, key), "key");
        while (size && off + 3 <= size) {
                uint8_t sel = data[off];
                size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8, first, n, i;
                struct tg_sp_message m;
                enum tg_sp_reason r;

                off += 3;
                if (len > size - off)
                        len = size - off;
                topic_of(sel, topic, sizeof(topic));
                r = tg_sparkplug_decode(sp, topic, data + off, len, now, &m);
                off += len;
                now += 1000;
                CHECK((unsigned)r < TG_SP__REASONS && r == m.reason, "reason");
                CHECK((unsigned)m.type < TG_SP__TYPES, "type");
                {
                        struct tg_sp_counters sc;

                        tg_sparkplug_counters(sp, &sc);
                        CHECK(sc.nodes <= c.max_nodes && sc.metrics <= c.max_metrics, "tables");
                }
                CHECK(!m.refused || (m.reason != TG_SP_OK && m.readings == 0), "refused");
                CHECK(!m.death || (m.death_id_len && strlen(m.death_id) == m.death_id_len),
                      "death id");
                if (m.rebirth)
                        CHECK(!strncmp(m.rebirth_topic, "spBv1.0/", 8) &&
                                      strstr(m.rebirth_topic, "/NCMD/"),
                              "rebirth topic");
                h = (h ^ (uint64_t)r ^ (uint64_t)m.readings << 8 ^ (uint64_t)m.rebirth << 40 ^
                     (uint64_t)m.death << 41) * 1099511628211ULL;
                while ((n = tg_sparkplug_readings(sp, readings, READINGS_MAX, &first))) {
                        for (i = 0; i < n; i++) {
                                size_t k;

                                check_reading(&readings[i]);
                                k = tg_sparkplug_raw_record(sp, first + i, &readings[i], record,
                                                            sizeof(record));
                                CHECK(k, "raw record fits");
                                CHECK(json_ok(record, k, readings[i].sensor), "raw record JSON");
                                h = (h ^ k ^ (uint64_t)readings[i].nfields << 32) *
                                    1099511628211ULL;
                        }
                }
                if (m.death) {
                        size_t k = tg_sparkplug_death_record(sp, m.death_id, m.death_id_len,
                                                             record, sizeof(record));

                        CHECK(k && json_ok(record, k, m.death_id), "death record JSON");
                }
        }
        CHECK(!tg_sparkplug_snapshot(sp, snap, snap_len), "snapshot");
        /* The state round trip: restored, it snapshots to the same bytes. */
        sp2 = tg_sparkplug_new(&c, err, sizeof(err));
        CHECK(sp2, "new 2");
        CHECK(!tg_sparkplug_restore(sp2, *snap, *snap_len, err, sizeof(err)), "restore");
        CHECK(!tg_sparkplug_snapshot(sp2, &b2, &l2), "snapshot 2");
        CHECK(l2 == *snap_len && !memcmp(b2, *snap, l2), "state round trip");
        free(b2);
        tg_sparkplug_destroy(sp2);
        tg_sparkplug_destroy(sp);
        *digest = h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        void *s1, *s2;
        size_t l1, l2;
        uint64_t d1, d2;

        run(data, size, &s1, &l1, &d1);
        run(data, size, &s2, &l2, &d2);
        CHECK(d1 == d2 && l1 == l2 && !memcmp(s1, s2, l1), "deterministic");
        free(s1);
        free(s2);
        return 0;
}
