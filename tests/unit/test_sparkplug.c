/* test_sparkplug.c - CUnit tests of the Sparkplug B decoder: topics, births, aliases, datatypes, seq, bdSeq, deaths, tables, state, rebirths. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Payloads are made by protobuf-c's generated packer (protobuf-c's encoder,
 * not ours), and a few are written out byte by byte from the protobuf wire
 * format and the specification's field numbers, so that the decoder is
 * held to the wire, not to our .proto alone. Test names cite
 * docs/sparkplug.md's clauses.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparkplug.h"
#include "sparkplug_b.pb-c.h"
#include "tg_test.h"

typedef Tumblegate__Sparkplug__Payload Payload;
typedef Tumblegate__Sparkplug__Payload__Metric Metric;
#define VC(x) TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_##x

#define T0 1732700000000LL
#define NOW 1732700100000LL

static Metric pool[64];
static Metric *ptrs[64];
static size_t npool;
static uint8_t wire[8192];
static struct tg_reading rd[64];
static char rec[65536];

static void reset_metrics(void) {
        npool = 0;
}

static Metric *m_new(const char *name, int64_t alias, int dt) {
        Metric *m = &pool[npool];

        tumblegate__sparkplug__payload__metric__init(m);
        ptrs[npool++] = m;
        m->name = (char *)name;
        if (alias >= 0) {
                m->has_alias = 1;
                m->alias = (uint64_t)alias;
        }
        if (dt >= 0) {
                m->has_datatype = 1;
                m->datatype = (uint32_t)dt;
        }
        return m;
}

static Metric *m_double(const char *name, int64_t alias, int dt, double v) {
        Metric *m = m_new(name, alias, dt);

        m->value_case = VC(DOUBLE_VALUE);
        m->double_value = v;
        return m;
}

static Metric *m_float(const char *name, int64_t alias, int dt, float v) {
        Metric *m = m_new(name, alias, dt);

        m->value_case = VC(FLOAT_VALUE);
        m->float_value = v;
        return m;
}

static Metric *m_int(const char *name, int64_t alias, int dt, uint32_t v) {
        Metric *m = m_new(name, alias, dt);

        m->value_case = VC(INT_VALUE);
        m->int_value = v;
        return m;
}

static Metric *m_long(const char *name, int64_t alias, int dt, uint64_t v) {
        Metric *m = m_new(name, alias, dt);

        m->value_case = VC(LONG_VALUE);
        m->long_value = v;
        return m;
}

static Metric *m_str(const char *name, int64_t alias, int dt, const char *v) {
        Metric *m = m_new(name, alias, dt);

        m->value_case = VC(STRING_VALUE);
        m->string_value = (char *)v;
        return m;
}

/* The metrics made since reset_metrics(), packed with @p ts and @p seq (< 0: none). */
static size_t pack(int64_t ts, int seq) {
        Payload p = TUMBLEGATE__SPARKPLUG__PAYLOAD__INIT;

        if (ts >= 0) {
                p.has_timestamp = 1;
                p.timestamp = (uint64_t)ts;
        }
        if (seq >= 0) {
                p.has_seq = 1;
                p.seq = (uint64_t)seq;
        }
        p.n_metrics = npool;
        p.metrics = ptrs;
        CU_ASSERT_FATAL(tumblegate__sparkplug__payload__get_packed_size(&p) <= sizeof(wire));
        return tumblegate__sparkplug__payload__pack(&p, wire);
}

static tg_sparkplug_t *decoder(int per_metric, uint32_t nodes, uint32_t metrics) {
        struct tg_sparkplug_conf c = {
                .max_nodes = nodes,
                .max_metrics = metrics,
                .sensor_per_metric = per_metric,
                .max_payload = 65536,
                .rebirth_interval_ms = 5000,
        };
        char err[200];
        tg_sparkplug_t *sp = tg_sparkplug_new(&c, err, sizeof(err));

        CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
        return sp;
}

static enum tg_sp_reason msg(tg_sparkplug_t *sp, const char *topic, size_t len, int64_t now,
                             struct tg_sp_message *m) {
        return tg_sparkplug_decode(sp, topic, wire, len, now, m);
}

/* All readings of the last message into rd[]. */
static size_t readings(tg_sparkplug_t *sp) {
        size_t first, n = tg_sparkplug_readings(sp, rd, 64, &first);

        CU_ASSERT_EQUAL(first, 0);
        return n;
}

static const struct tg_field *field(const struct tg_reading *r, const char *name) {
        uint16_t i;

        for (i = 0; i < r->nfields; i++)
                if (!strcmp(r->fields[i].name, name))
                        return &r->fields[i];
        return NULL;
}

static cJSON *raw(tg_sparkplug_t *sp, size_t i) {
        size_t n = tg_sparkplug_raw_record(sp, i, &rd[i], rec, sizeof(rec));
        cJSON *j;

        CU_ASSERT_FATAL(n > 0);
        j = cJSON_ParseWithLength(rec, n);
        tg_check(j != NULL, __LINE__, "raw record is JSON: %s", rec);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        return j;
}

static const cJSON *path(const cJSON *j, const char *a, const char *b) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);

        return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

/* The metric named @p name in the raw record's "metrics". */
static const cJSON *raw_metric(const cJSON *j, const char *name) {
        const cJSON *ms = path(j, "sparkplug", "metrics"), *m;

        cJSON_ArrayForEach(m, ms) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");

                if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
                        return m;
        }
        return NULL;
}

/* NBIRTH of G/N: bdSeq 7, Temp (alias 1, Float), Mode (alias 2, String). */
static size_t nbirth(int seq) {
        reset_metrics();
        m_long("bdSeq", -1, 4, 7);
        m_new("Node Control/Rebirth", -1, 11)->value_case = VC(BOOLEAN_VALUE);
        m_float("Temp", 1, 9, 21.5f);
        m_str("Mode", 2, 12, "auto");
        return pack(T0, seq);
}

/* DBIRTH of a device: Speed (alias 10, Double), Count (alias 11, UInt32). */
static size_t dbirth(int seq) {
        reset_metrics();
        m_double("Speed", 10, 10, 3.5);
        m_int("Count", 11, 7, 42);
        return pack(T0, seq);
}

static void born(tg_sparkplug_t *sp) {
        struct tg_sp_message m;

        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/N/D", dbirth(1), NOW, &m), TG_SP_OK);
}

/* 2: topics. */
static void test_topics(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;
        size_t n = nbirth(0);
        static const char *const bad[] = {
                "spBv1.0/G/NBIRTH",        "spBv1.0/G/NBIRTH/N/D", "spBv1.0/G/DBIRTH/N",
                "spBv1.0/G/XBIRTH/N",      "spBv1.0//NBIRTH/N",    "spBv1.0/G/NBIRTH/",
                "spAv1.0/G/NBIRTH/N",      "spBv1.0/G/NBIRTH/N/D/E", "spBv1.0/G+/NBIRTH/N",
                "spBv1.0/G/NBIRTH/" "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                tg_check(msg(sp, bad[i], n, NOW, &m) == TG_SP_BAD_TOPIC && m.refused, __LINE__,
                         "%s refused as bad topic", bad[i]);
        }
        CU_ASSERT_STRING_EQUAL(tg_sp_reason_name(TG_SP_BAD_TOPIC), "sparkplug_bad_topic");
        /* STATE, NCMD, DCMD: ignored, counted, nothing decoded. */
        CU_ASSERT_EQUAL(tg_sparkplug_decode(sp, "spBv1.0/STATE/host1", "{\"online\":true}", 15,
                                            NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(m.type, TG_SP_STATE);
        CU_ASSERT_EQUAL(m.readings, 0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NCMD/N", n, NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(m.readings, 0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DCMD/N/D", n, NOW, &m), TG_SP_OK);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.messages[TG_SP_STATE], 1);
        CU_ASSERT_EQUAL(c.messages[TG_SP_NCMD], 1);
        CU_ASSERT_EQUAL(c.messages[TG_SP_DCMD], 1);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_BAD_TOPIC], sizeof(bad) / sizeof(*bad));
        CU_ASSERT_EQUAL(c.nodes, 0); /* none of it created state */
        tg_sparkplug_destroy(sp);
}

/* 3/4: births name metrics; data resolves aliases; the raw record's context. */
static void test_births_and_aliases(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        const struct tg_field *f;
        cJSON *j;
        const cJSON *x;

        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(m.type, TG_SP_NBIRTH);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_STRING_EQUAL(rd[0].sensor, "G/N");
        CU_ASSERT_EQUAL(rd[0].ts_ms, T0);
        /* Temp is a field; bdSeq and Node Control/... are control metrics, Mode a string. */
        CU_ASSERT_EQUAL(rd[0].nfields, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f = field(&rd[0], "Temp"));
        CU_ASSERT_DOUBLE_EQUAL(f->value, 21.5, 0);
        CU_ASSERT_EQUAL(m.metrics_raw_only, 3);
        j = raw(sp, 0);
        CU_ASSERT_STRING_EQUAL(path(j, "sparkplug", "message")->valuestring, "NBIRTH");
        CU_ASSERT_STRING_EQUAL(path(j, "sparkplug", "group")->valuestring, "G");
        CU_ASSERT_STRING_EQUAL(path(j, "sparkplug", "node")->valuestring, "N");
        CU_ASSERT_PTR_NULL(path(j, "sparkplug", "device"));
        CU_ASSERT_EQUAL(path(j, "sparkplug", "seq")->valueint, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x = raw_metric(j, "Mode"));
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(x, "value")->valuestring, "auto");
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(x, "datatype")->valuestring, "String");
        CU_ASSERT_EQUAL(cJSON_GetObjectItem(x, "alias")->valueint, 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x = raw_metric(j, "bdSeq"));
        CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(x, "alias"));
        CU_ASSERT_DOUBLE_EQUAL(path(j, "fields", "Temp")->valuedouble, 21.5, 0);
        cJSON_Delete(j);

        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/N/D", dbirth(1), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_STRING_EQUAL(rd[0].sensor, "G/N/D");
        CU_ASSERT_EQUAL(rd[0].nfields, 2);

        /* DDATA by alias only, no datatype: names and datatypes from the birth. */
        reset_metrics();
        m_double(NULL, 10, -1, 4.25);
        m_int(NULL, 11, -1, 43);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0 + 1000, 2), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_STRING_EQUAL(rd[0].sensor, "G/N/D");
        CU_ASSERT_EQUAL(rd[0].ts_ms, T0 + 1000);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Speed")->value, 4.25, 0);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Count")->value, 43, 0);
        j = raw(sp, 0);
        CU_ASSERT_STRING_EQUAL(path(j, "sparkplug", "device")->valuestring, "D");
        CU_ASSERT_STRING_EQUAL(path(j, "sparkplug", "message")->valuestring, "DDATA");
        CU_ASSERT_EQUAL(path(j, "sparkplug", "seq")->valueint, 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x = raw_metric(j, "Count"));
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(x, "datatype")->valuestring, "UInt32");
        CU_ASSERT_EQUAL(cJSON_GetObjectItem(x, "alias")->valueint, 11);
        cJSON_Delete(j);

        /* NDATA by name, datatype from the birth. */
        reset_metrics();
        m_float("Temp", -1, -1, 22.0f);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + 2000, 3), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_STRING_EQUAL(rd[0].sensor, "G/N");
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Temp")->value, 22.0, 0);
        tg_sparkplug_destroy(sp);
}

/* 4.2: every datatype; numbers become fields, the rest raw only. */
static void test_every_datatype(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        static const struct {
                const char *name;
                double v;
        } num[] = {
                {"i8", -5}, {"i16", -300}, {"i32", -70000}, {"i64", -1099511627776.0},
                {"u8", 200}, {"u16", 60000}, {"u32", 4000000000.0},
                {"u64", 18446744073709551615.0}, {"f", 1.5}, {"d", 2.25}, {"b", 1},
        };
        static const char *const raw_only[] = {"s", "dt", "t", "uuid", "by", "nul", "nan"};
        ProtobufCBinaryData bytes = {3, (uint8_t *)"\x00\x01\xff"};
        const cJSON *x;
        cJSON *j;
        size_t i;

        born(sp);
        reset_metrics();
        m_int("i8", -1, 1, (uint32_t)-5);
        m_int("i16", -1, 2, (uint32_t)-300);
        m_int("i32", -1, 3, (uint32_t)-70000);
        m_long("i64", -1, 4, (uint64_t)-1099511627776LL);
        m_int("u8", -1, 5, 200);
        m_int("u16", -1, 6, 60000);
        m_int("u32", -1, 7, 4000000000u);
        m_long("u64", -1, 8, UINT64_MAX);
        m_float("f", -1, 9, 1.5f);
        m_double("d", -1, 10, 2.25);
        m_new("b", -1, 11)->value_case = VC(BOOLEAN_VALUE);
        pool[npool - 1].boolean_value = 1;
        m_str("s", -1, 12, "hello");
        m_long("dt", -1, 13, (uint64_t)T0);
        m_str("t", -1, 14, "text");
        m_str("uuid", -1, 15, "8c2e0b9a");
        m_new("by", -1, 17)->value_case = VC(BYTES_VALUE);
        pool[npool - 1].bytes_value = bytes;
        m_new("nul", -1, 10)->has_is_null = 1;
        pool[npool - 1].is_null = 1;
        m_double("nan", -1, 10, 0.0 / 0.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0, 2), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].nfields, sizeof(num) / sizeof(*num));
        for (i = 0; i < sizeof(num) / sizeof(*num); i++) {
                const struct tg_field *f = field(&rd[0], num[i].name);

                tg_check(f && f->value == num[i].v, __LINE__, "%s = %.17g", num[i].name, num[i].v);
        }
        CU_ASSERT_EQUAL(m.metrics_raw_only, sizeof(raw_only) / sizeof(*raw_only));
        for (i = 0; i < sizeof(raw_only) / sizeof(*raw_only); i++)
                tg_check(!field(&rd[0], raw_only[i]), __LINE__, "%s is raw only", raw_only[i]);
        j = raw(sp, 0);
        CU_ASSERT_STRING_EQUAL(raw_metric(j, "s")->child->next->valuestring, "String");
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(raw_metric(j, "s"), "value")->valuestring,
                               "hello");
        x = raw_metric(j, "dt");
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(x, "datatype")->valuestring, "DateTime");
        CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(x, "value")->valuedouble, (double)T0, 0);
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(raw_metric(j, "by"), "value")->valuestring,
                               "AAH/");
        CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(raw_metric(j, "nul"), "value")));
        CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(raw_metric(j, "nan"), "value")));
        CU_ASSERT_EQUAL(cJSON_GetObjectItem(raw_metric(j, "i8"), "value")->valueint, -5);
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(raw_metric(j, "u8"), "datatype")->valuestring,
                               "UInt8");
        CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(raw_metric(j, "b"), "value")));
        cJSON_Delete(j);
        tg_sparkplug_destroy(sp);
}

/* 4.3/4.4: the metric's time, else the payload's, else arrival; historical. */
static void test_timestamps_and_historical(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        const cJSON *x;
        cJSON *j;
        size_t n, i;
        int seen = 0;

        born(sp);
        reset_metrics();
        m_double(NULL, 10, -1, 1.0)->has_timestamp = 1;
        pool[0].timestamp = T0 + 100;
        m_int(NULL, 11, -1, 5);                          /* the payload's time */
        m_double(NULL, 10, -1, 0.5)->has_timestamp = 1;  /* historical, older */
        pool[2].timestamp = T0 - 60000;
        pool[2].has_is_historical = pool[2].is_historical = 1;
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0 + 500, 2), NOW, &m), TG_SP_OK);
        n = readings(sp);
        CU_ASSERT_EQUAL_FATAL(n, 3);
        for (i = 0; i < n; i++) {
                CU_ASSERT_STRING_EQUAL(rd[i].sensor, "G/N/D");
                CU_ASSERT_EQUAL(rd[i].nfields, 1);
                CU_ASSERT_FALSE(rd[i].ts_from_arrival);
                if (rd[i].ts_ms == T0 + 100) {
                        CU_ASSERT_DOUBLE_EQUAL(field(&rd[i], "Speed")->value, 1.0, 0);
                        seen |= 1;
                } else if (rd[i].ts_ms == T0 + 500) {
                        CU_ASSERT_DOUBLE_EQUAL(field(&rd[i], "Count")->value, 5, 0);
                        seen |= 2;
                } else if (rd[i].ts_ms == T0 - 60000) {
                        j = raw(sp, i);
                        x = raw_metric(j, "Speed");
                        CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(x, "historical")));
                        cJSON_Delete(j);
                        seen |= 4;
                }
        }
        CU_ASSERT_EQUAL(seen, 7);
        /* No time anywhere: arrival, marked. */
        reset_metrics();
        m_double(NULL, 10, -1, 2.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(-1, 3), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].ts_ms, NOW);
        CU_ASSERT(rd[0].ts_from_arrival);
        tg_sparkplug_destroy(sp);
}

/* 5.1: seq runs 0..255 and wraps; a gap is counted, the values still used. */
static void test_seq_wrap_and_gap(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;
        int s;

        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", nbirth(0), NOW, &m), TG_SP_OK);
        for (s = 1; s < 600; s++) {
                reset_metrics();
                m_float(NULL, 1, -1, (float)s);
                if (msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + s, s & 255), NOW, &m) != TG_SP_OK) {
                        tg_check(0, __LINE__, "seq %d refused: %s", s & 255, m.detail);
                        break;
                }
        }
        /* 87 after 599 & 255 = 87: a gap to 90. */
        reset_metrics();
        m_float(NULL, 1, -1, 7.0f);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + 700, 90), NOW, &m), TG_SP_SEQ_GAP);
        CU_ASSERT_FALSE(m.refused);
        CU_ASSERT_PTR_NOT_NULL(strstr(m.detail, "expected 88, got 90"));
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Temp")->value, 7.0, 0);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_STRING_EQUAL(m.rebirth_topic, "spBv1.0/G/NCMD/N");
        /* Counting resumes from the message after the gap. */
        reset_metrics();
        m_float(NULL, 1, -1, 8.0f);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + 701, 91), NOW, &m), TG_SP_OK);
        /* 255 -> 0 is no gap, 255 -> 1 is. */
        reset_metrics();
        m_float(NULL, 1, -1, 8.0f);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + 702, 255), NOW, &m), TG_SP_SEQ_GAP);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + 703, 0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0 + 704, 2), NOW, &m), TG_SP_SEQ_GAP);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_SEQ_GAP], 3);
        CU_ASSERT_EQUAL(c.messages[TG_SP_NDATA], 604);
        tg_sparkplug_destroy(sp);
}

/* 5.2/6: NDEATH with the birth's bdSeq closes; another bdSeq is a stale will. */
static void test_deaths_and_bdseq(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        size_t n;

        born(sp);
        reset_metrics();
        m_long("bdSeq", -1, 4, 6);
        n = pack(T0 + 5, -1);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDEATH/N", n, NOW, &m), TG_SP_BDSEQ_MISMATCH);
        CU_ASSERT(m.refused);
        CU_ASSERT_FALSE(m.death);
        CU_ASSERT_FALSE(m.rebirth);
        /* Still alive: its data still reads. */
        reset_metrics();
        m_double(NULL, 10, -1, 1.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW, &m), TG_SP_OK);
        /* DDEATH: the device alone. */
        reset_metrics();
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDEATH/N/D", pack(T0 + 6, 3), NOW, &m), TG_SP_OK);
        CU_ASSERT(m.death);
        CU_ASSERT_STRING_EQUAL(m.death_id, "G/N/D");
        n = tg_sparkplug_death_record(sp, "G/N/D", 5, rec, sizeof(rec));
        CU_ASSERT_STRING_EQUAL(rec, "{\"sensor\":\"G/N/D\",\"ts\":1732700000006,\"sparkplug\":"
                                    "{\"group\":\"G\",\"node\":\"N\",\"device\":\"D\","
                                    "\"message\":\"DDEATH\",\"seq\":3}}");
        reset_metrics();
        m_double(NULL, 10, -1, 1.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 4), NOW, &m), TG_SP_NO_BIRTH);
        /* NDEATH with the right bdSeq. */
        reset_metrics();
        m_long("bdSeq", -1, 4, 7);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDEATH/N", pack(T0 + 9, -1), NOW, &m), TG_SP_OK);
        CU_ASSERT(m.death);
        CU_ASSERT_STRING_EQUAL(m.death_id, "G/N");
        CU_ASSERT_EQUAL(m.readings, 0);
        n = tg_sparkplug_death_record(sp, "site/G/N", 8, rec, sizeof(rec));
        CU_ASSERT(n > 0);
        CU_ASSERT_STRING_EQUAL(rec, "{\"sensor\":\"site/G/N\",\"ts\":1732700000009,\"sparkplug\":"
                                    "{\"group\":\"G\",\"node\":\"N\",\"message\":\"NDEATH\","
                                    "\"bdSeq\":7}}");
        /* Dead: its data is before a birth again; a second NDEATH is no_birth. */
        reset_metrics();
        m_float(NULL, 1, -1, 1.0f);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0, 5), NOW + 10000, &m),
                        TG_SP_NO_BIRTH);
        reset_metrics();
        m_long("bdSeq", -1, 4, 7);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDEATH/N", pack(T0 + 9, -1), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_FALSE(m.death);
        tg_sparkplug_destroy(sp);
}

/* 5.3: data before its birth; device data before its DBIRTH. */
static void test_data_before_birth(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;

        reset_metrics();
        m_float(NULL, 1, -1, 1.0f);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0, 1), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.refused);
        CU_ASSERT_EQUAL(m.readings, 0);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_STRING_EQUAL(m.rebirth_topic, "spBv1.0/G/NCMD/N");
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/N/D", dbirth(1), NOW + 6000, &m),
                        TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", nbirth(0), NOW, &m), TG_SP_OK);
        reset_metrics();
        m_double(NULL, 10, -1, 1.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 1), NOW + 20000, &m),
                        TG_SP_NO_BIRTH);
        CU_ASSERT(m.refused);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDEATH/N/D", pack(T0, 2), NOW + 40000, &m),
                        TG_SP_NO_BIRTH);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_NO_BIRTH], 4);
        CU_ASSERT_EQUAL(c.rebirths_requested, 4);
        tg_sparkplug_destroy(sp);
}

/* 5.4: an alias no birth named; the other metrics still used. */
static void test_unknown_alias(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        cJSON *j;
        const cJSON *x, *ms;

        born(sp);
        reset_metrics();
        m_double(NULL, 10, -1, 1.0);
        m_double(NULL, 99, -1, 2.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW, &m),
                        TG_SP_UNKNOWN_ALIAS);
        CU_ASSERT_FALSE(m.refused);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].nfields, 1);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Speed")->value, 1.0, 0);
        j = raw(sp, 0);
        ms = path(j, "sparkplug", "metrics");
        CU_ASSERT_EQUAL(cJSON_GetArraySize(ms), 2);
        x = cJSON_GetArrayItem(ms, 1);
        CU_ASSERT_EQUAL(cJSON_GetObjectItem(x, "alias")->valueint, 99);
        CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(x, "unknown_alias")));
        CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(x, "name"));
        cJSON_Delete(j);
        tg_sparkplug_destroy(sp);
}

/* 8: the tables are bounded; overflow counted, never a crash or a wrong name. */
static void test_table_overflow(void) {
        tg_sparkplug_t *sp = decoder(0, 2, 3);
        struct tg_sp_message m;
        struct tg_sp_counters c;

        /* 3 metric entries: the NBIRTH's 4 named metrics overflow. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", nbirth(0), NOW, &m), TG_SP_TABLE_FULL);
        CU_ASSERT_FALSE(m.refused);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1); /* the birth's own values are named */
        CU_ASSERT_PTR_NOT_NULL(field(&rd[0], "Temp"));
        /* Mode (alias 2) had no room: an alias the table cannot know is
         * table_full, and no rebirth is asked (it would overflow again). */
        reset_metrics();
        m_str(NULL, 2, -1, "x");
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0, 1), NOW, &m), TG_SP_TABLE_FULL);
        CU_ASSERT_FALSE(m.rebirth);
        /* 2 entities: G/N and one device; a second device has no room. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/N/D1", dbirth(2), NOW, &m), TG_SP_TABLE_FULL);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/N/D2", dbirth(3), NOW, &m), TG_SP_TABLE_FULL);
        CU_ASSERT(m.refused);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N2", nbirth(0), NOW, &m), TG_SP_TABLE_FULL);
        CU_ASSERT(m.refused);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.nodes, 2);
        CU_ASSERT_EQUAL(c.metrics, 3);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_TABLE_FULL], 5);
        /* A rebirth frees the node's entries and its devices': room again. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", nbirth(0), NOW, &m), TG_SP_TABLE_FULL);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.metrics, 3);
        tg_sparkplug_destroy(sp);
}

/* 4.1: names too long for a field or a sensor id: raw only, counted. */
static void test_long_names_and_metric_mode(void) {
        tg_sparkplug_t *sp = decoder(1, 16, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;
        const char *longname = "a-metric-name-far-too-long-for-a-sensor-id-of-64-bytes-in-all";
        size_t n, i;
        int seen = 0;

        born(sp);
        reset_metrics();
        m_double("Speed", -1, 10, 1.0);
        m_double(longname, -1, 10, 2.0);
        m_int("Count", -1, 7, 3);
        m_str("Label", -1, 12, "x");
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW, &m), TG_SP_OK);
        n = readings(sp);
        CU_ASSERT_EQUAL_FATAL(n, 4); /* Speed, Count, Label (no field); D's for the long name */
        for (i = 0; i < n; i++) {
                if (!strcmp(rd[i].sensor, "G/N/D/Speed")) {
                        CU_ASSERT_EQUAL(rd[i].nfields, 1);
                        CU_ASSERT_STRING_EQUAL(rd[i].fields[0].name, "value");
                        CU_ASSERT_DOUBLE_EQUAL(rd[i].fields[0].value, 1.0, 0);
                        seen |= 1;
                } else if (!strcmp(rd[i].sensor, "G/N/D/Count")) {
                        CU_ASSERT_DOUBLE_EQUAL(rd[i].fields[0].value, 3, 0);
                        seen |= 2;
                } else if (!strcmp(rd[i].sensor, "G/N/D")) {
                        cJSON *j = raw(sp, i);

                        CU_ASSERT_EQUAL(rd[i].nfields, 0);
                        CU_ASSERT_PTR_NOT_NULL(raw_metric(j, longname));
                        cJSON_Delete(j);
                        seen |= 4;
                } else if (!strcmp(rd[i].sensor, "G/N/D/Label")) {
                        CU_ASSERT_EQUAL(rd[i].nfields, 0);
                        seen |= 8;
                }
        }
        CU_ASSERT_EQUAL(seen, 15);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.names_too_long, 1);
        tg_sparkplug_destroy(sp);

        /* Device mode: a name over 32 bytes is no field, the rest stand. */
        sp = decoder(0, 16, 64);
        born(sp);
        reset_metrics();
        m_double("Speed", -1, 10, 1.0);
        m_double("a-name-of-thirty-three-bytes-xyzw", -1, 10, 2.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].nfields, 1);
        CU_ASSERT_EQUAL(m.metrics_raw_only, 1);
        tg_sparkplug_destroy(sp);
}

/* 7: the state round trip, as the checkpoint carries it. */
static void test_state_round_trip(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64), *sp2;
        struct tg_sp_message m;
        void *b1, *b2;
        size_t l1, l2;
        char err[200];

        born(sp);
        CU_ASSERT_EQUAL(tg_sparkplug_snapshot(sp, &b1, &l1), 0);
        sp2 = decoder(0, 16, 64);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp2, b1, l1, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_sparkplug_snapshot(sp2, &b2, &l2), 0);
        CU_ASSERT_EQUAL(l1, l2);
        CU_ASSERT(!memcmp(b1, b2, l1));
        free(b2);
        /* The restored decoder knows the aliases and the seq. */
        reset_metrics();
        m_double(NULL, 10, -1, 9.0);
        CU_ASSERT_EQUAL(msg(sp2, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp2), 1);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Speed")->value, 9.0, 0);
        /* Too small a table, a truncated or a foreign snapshot: refused, empty. */
        tg_sparkplug_destroy(sp2);
        sp2 = decoder(0, 1, 64);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp2, b1, l1, err, sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "max_nodes"));
        tg_sparkplug_destroy(sp2);
        sp2 = decoder(0, 16, 64);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp2, b1, l1 - 1, err, sizeof(err)), -EINVAL);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp2, "TGDSTATE........", 16, err, sizeof(err)),
                        -EINVAL);
        CU_ASSERT_EQUAL(msg(sp2, "spBv1.0/G/DDATA/N/D", pack(T0, 3), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp2, NULL, 0, err, sizeof(err)), 0);
        free(b1);
        tg_sparkplug_destroy(sp2);
        tg_sparkplug_destroy(sp);
}

/* 5.5: at most one rebirth request per node per interval. */
static void test_rebirth_rate_limit(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;
        uint8_t buf[TG_SP_REBIRTH_MAX];
        size_t n;
        Payload *p;

        reset_metrics();
        m_float(NULL, 1, -1, 1.0f);
        n = pack(T0, 1);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", n, NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", n, NOW + 4999, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_FALSE(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N2", n, NOW + 4999, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth); /* another node */
        CU_ASSERT_STRING_EQUAL(m.rebirth_topic, "spBv1.0/G/NCMD/N2");
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", n, NOW + 5000, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.rebirths_requested, 3);
        CU_ASSERT_EQUAL(c.rebirths_limited, 1);
        /* The request itself, read back by protobuf-c. */
        n = tg_sparkplug_rebirth_payload(NOW, buf, sizeof(buf));
        CU_ASSERT_FATAL(n > 0);
        p = tumblegate__sparkplug__payload__unpack(NULL, n, buf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL(p->n_metrics, 1);
        CU_ASSERT_STRING_EQUAL(p->metrics[0]->name, "Node Control/Rebirth");
        CU_ASSERT_EQUAL(p->metrics[0]->datatype, 11);
        CU_ASSERT_EQUAL(p->metrics[0]->value_case, VC(BOOLEAN_VALUE));
        CU_ASSERT(p->metrics[0]->boolean_value);
        CU_ASSERT_EQUAL(p->timestamp, (uint64_t)NOW);
        tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        tg_sparkplug_destroy(sp);
}

/* The wire itself, written out from the specification's field numbers. */
static void test_hand_written_bytes(void) {
        tg_sparkplug_t *sp = decoder(0, 16, 64);
        struct tg_sp_message m;
        /* Payload{timestamp 1000 (field 1), metrics [Metric{name "Temp" (1),
         * alias 1 (2), datatype 9 Float (4), float_value 21.5 (12, fixed32
         * 0x41ac0000)}] (2), seq 0 (3)} */
        static const uint8_t birth[] = {
                0x08, 0xe8, 0x07,
                0x12, 0x0f, 0x0a, 0x04, 'T', 'e', 'm', 'p', 0x10, 0x01, 0x20, 0x09,
                0x65, 0x00, 0x00, 0xac, 0x41,
                0x18, 0x00,
        };
        /* Payload{timestamp 2000, metrics [Metric{alias 1, float_value 22.0}], seq 1} */
        static const uint8_t data[] = {
                0x08, 0xd0, 0x0f,
                0x12, 0x07, 0x10, 0x01, 0x65, 0x00, 0x00, 0xb0, 0x41,
                0x18, 0x01,
        };
        /* The metric's timestamp (field 3) 1500 and is_historical (5) true,
         * double_value (13, fixed64) -1.0, seq 2. */
        static const uint8_t hist[] = {
                0x08, 0xd0, 0x0f,
                0x12, 0x10, 0x10, 0x01, 0x18, 0xdc, 0x0b, 0x28, 0x01,
                0x69, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0xbf,
                0x18, 0x02,
        };
        /* A length running past the end: not decodable. */
        static const uint8_t cut[] = {0x08, 0xe8, 0x07, 0x12, 0x0f, 0x0a, 0x04, 'T'};
        /* The rebirth request, NCMD: metrics [Metric{name "Node Control/Rebirth",
         * datatype 11, boolean_value (14) true}], no timestamp. */
        static const uint8_t rebirth[] = {
                0x12, 0x1a, 0x0a, 0x14, 'N', 'o', 'd', 'e', ' ', 'C', 'o', 'n', 't', 'r', 'o',
                'l', '/', 'R', 'e', 'b', 'i', 'r', 't', 'h', 0x20, 0x0b, 0x70, 0x01,
        };
        uint8_t out[TG_SP_REBIRTH_MAX];

        CU_ASSERT_EQUAL(tg_sparkplug_decode(sp, "spBv1.0/G/NBIRTH/N", birth, sizeof(birth), NOW,
                                            &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].ts_ms, 1000);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Temp")->value, 21.5, 0);
        CU_ASSERT_EQUAL(tg_sparkplug_decode(sp, "spBv1.0/G/NDATA/N", data, sizeof(data), NOW,
                                            &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].ts_ms, 2000);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Temp")->value, 22.0, 0);
        /* The birth said Float; the value came as a double: still a number. */
        CU_ASSERT_EQUAL(tg_sparkplug_decode(sp, "spBv1.0/G/NDATA/N", hist, sizeof(hist), NOW,
                                            &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_EQUAL(rd[0].ts_ms, 1500);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Temp")->value, -1.0, 0);
        CU_ASSERT_EQUAL(tg_sparkplug_decode(sp, "spBv1.0/G/NDATA/N", cut, sizeof(cut), NOW, &m),
                        TG_SP_NOT_DECODABLE);
        CU_ASSERT(m.refused);
        CU_ASSERT_EQUAL(tg_sparkplug_rebirth_payload(0, out, sizeof(out)), sizeof(rebirth));
        CU_ASSERT(!memcmp(out, rebirth, sizeof(rebirth)));
        tg_sparkplug_destroy(sp);
}

/* 8: a payload whose decoded form is over the arena is too_large. */
static void test_arena_too_large(void) {
        struct tg_sparkplug_conf c = {.max_nodes = 4, .max_metrics = 4, .max_payload = 65536,
                                      .arena_bytes = 4096, .rebirth_interval_ms = 5000};
        char err[100];
        tg_sparkplug_t *sp = tg_sparkplug_new(&c, err, sizeof(err));
        struct tg_sp_message m;
        int i;

        CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
        reset_metrics();
        for (i = 0; i < 60; i++)
                m_double("x", -1, 10, i);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", pack(T0, 0), NOW, &m), TG_SP_TOO_LARGE);
        CU_ASSERT(m.refused);
        tg_sparkplug_destroy(sp);
}

static tg_sparkplug_t *decoder_names(uint32_t nodes, uint32_t metrics, size_t name_bytes) {
        struct tg_sparkplug_conf c = {
                .max_nodes = nodes,
                .max_metrics = metrics,
                .name_bytes = name_bytes,
                .max_payload = 65536,
                .rebirth_interval_ms = 5000,
        };
        char err[200];
        tg_sparkplug_t *sp = tg_sparkplug_new(&c, err, sizeof(err));

        CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
        return sp;
}

/* NDEATH of G/<node> with bdSeq 7 (nbirth()'s). */
static size_t ndeath(void) {
        reset_metrics();
        m_long("bdSeq", -1, 4, 7);
        return pack(T0, -1);
}

/* NDATA of one known alias (Temp, 1) at @p seq. */
static size_t ndata(int seq) {
        reset_metrics();
        m_float(NULL, 1, -1, 22.5f);
        return pack(T0, seq);
}

/* 8.1: a flood of made-up node ids takes entries that are not alive; they
 * are reused, and a real node after the flood is served. */
static void test_flood_of_unknown_nodes(void) {
        enum { NODES = 8, FLOOD = 5000 };
        tg_sparkplug_t *sp = decoder(0, NODES, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;
        char topic[64];
        size_t n = ndata(5);
        int i, refused = 0, rebirths = 0, want, in_second;

        for (i = 0; i < FLOOD; i++) {
                snprintf(topic, sizeof(topic), "spBv1.0/G/NDATA/fake-%d", i);
                refused += msg(sp, topic, n, NOW + i, &m) == TG_SP_NO_BIRTH && m.refused;
                rebirths += m.rebirth;
        }
        CU_ASSERT_EQUAL(refused, FLOOD);
        /* Each id is its own entry, with a request of its own, but at most
         * TG_SP_REBIRTHS_PER_S of them in a second of arrival (5.5). */
        for (i = 0, want = 0, in_second = 0; i < FLOOD; i++) {
                if (i && (NOW + i) / 1000 != (NOW + i - 1) / 1000)
                        in_second = 0;
                if (in_second < TG_SP_REBIRTHS_PER_S)
                        want++, in_second++;
        }
        CU_ASSERT(want < FLOOD);
        CU_ASSERT_EQUAL(rebirths, want);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_NO_BIRTH], FLOOD);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_TABLE_FULL], 0);
        CU_ASSERT_EQUAL(c.evictions, FLOOD - NODES);
        CU_ASSERT_EQUAL(c.nodes, NODES);
        /* The real node: NBIRTH, DBIRTH, DDATA by alias, decoded. */
        born(sp);
        reset_metrics();
        m_double(NULL, 10, -1, 7.25);
        m_int(NULL, 11, -1, 43);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW + FLOOD, &m), TG_SP_OK);
        CU_ASSERT_FALSE(m.refused);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_STRING_EQUAL(rd[0].sensor, "G/N/D");
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Speed")->value, 7.25, 0);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Count")->value, 43, 0);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, FLOOD - NODES + 2); /* the node's entry, the device's */
        CU_ASSERT_EQUAL(c.nodes, NODES);
        /* A second flood does not take the live ones. */
        for (i = 0; i < FLOOD; i++) {
                snprintf(topic, sizeof(topic), "spBv1.0/G/NDATA/more-%d", i);
                CU_ASSERT_EQUAL(msg(sp, topic, ndata(5), NOW + FLOOD + i, &m), TG_SP_NO_BIRTH);
        }
        reset_metrics();
        m_double(NULL, 10, -1, 8.5);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 3), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", ndata(4), NOW, &m), TG_SP_OK);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 2 * FLOOD - NODES + 2);
        tg_sparkplug_destroy(sp);
}

/* 8.1: live entries are never taken; a full table of them refuses. */
static void test_live_entries_kept(void) {
        tg_sparkplug_t *sp = decoder(0, 4, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;
        char topic[64];
        int i;

        for (i = 0; i < 4; i++) {
                snprintf(topic, sizeof(topic), "spBv1.0/G/NBIRTH/N%d", i);
                CU_ASSERT_EQUAL(msg(sp, topic, nbirth(0), NOW, &m), TG_SP_OK);
        }
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N4", nbirth(0), NOW, &m), TG_SP_TABLE_FULL);
        CU_ASSERT(m.refused);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X", ndata(0), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.refused);
        CU_ASSERT_FALSE(m.rebirth); /* no room to remember the request */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/N0/D", dbirth(1), NOW, &m), TG_SP_TABLE_FULL);
        /* Each still alive, its seq (the refused DBIRTH took none) and aliases kept. */
        for (i = 0; i < 4; i++) {
                snprintf(topic, sizeof(topic), "spBv1.0/G/NDATA/N%d", i);
                CU_ASSERT_EQUAL(msg(sp, topic, ndata(1), NOW, &m), TG_SP_OK);
                CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
                CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Temp")->value, 22.5, 0);
        }
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 0);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_TABLE_FULL], 2);
        CU_ASSERT_EQUAL(c.nodes, 4);
        tg_sparkplug_destroy(sp);
}

/* 8.1: a dead node's entry is taken with its devices' and the node's next
 * birth starts clean; a dead device alone is taken while its node lives;
 * the least recently seen goes first. */
static void test_dead_entries_reused(void) {
        tg_sparkplug_t *sp = decoder(0, 3, 64);
        struct tg_sp_message m;
        struct tg_sp_counters c;

        /* A and its device, then B: full. A dies (with A/D). */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/A", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/A/D", dbirth(1), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/B", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDEATH/A", ndeath(), NOW, &m), TG_SP_OK);
        CU_ASSERT(m.death);
        /* C takes A's entry and A/D's with it. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/C", nbirth(0), NOW, &m), TG_SP_OK);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 2);
        CU_ASSERT_EQUAL(c.nodes, 2);
        /* A is born again in the free entry, clean: its old device unknown,
         * seq counted from the new birth, no eviction needed. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/A", nbirth(10), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/A", ndata(11), NOW, &m), TG_SP_OK);
        reset_metrics();
        m_double(NULL, 10, -1, 1.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/A/D", pack(T0, 12), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/A/D", dbirth(13), NOW, &m), TG_SP_TABLE_FULL);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 2);
        CU_ASSERT_EQUAL(c.nodes, 3);

        /* A device dead, its node alive: the device alone is taken. */
        tg_sparkplug_destroy(sp);
        sp = decoder(0, 3, 64);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/A", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/A/D1", dbirth(1), NOW, &m), TG_SP_OK);
        reset_metrics();
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDEATH/A/D1", pack(T0, 2), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/A/D2", dbirth(3), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DBIRTH/A/D3", dbirth(4), NOW, &m), TG_SP_OK);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 1);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/A", ndata(5), NOW, &m), TG_SP_OK);
        reset_metrics();
        m_double(NULL, 10, -1, 2.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/A/D2", pack(T0, 6), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/A/D1", pack(T0, 7), NOW, &m), TG_SP_NO_BIRTH);
        tg_sparkplug_destroy(sp);

        /* Least recently seen first: X1, X2 unknown; X1 seen again; X3
         * takes X2's entry, so X1 still remembers its rebirth request and
         * X2 gets a new one. */
        sp = decoder(0, 2, 64);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X1", ndata(0), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X2", ndata(0), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X1", ndata(0), NOW + 1, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_FALSE(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X3", ndata(0), NOW + 2, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X1", ndata(0), NOW + 3, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_FALSE(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X2", ndata(0), NOW + 4, &m), TG_SP_NO_BIRTH);
        CU_ASSERT(m.rebirth); /* forgotten: taken by X3 */
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 2); /* X2 by X3, then X3 by X2 (X1 seen at +3) */
        tg_sparkplug_destroy(sp);
}

/* 7.5: the LRU order survives the checkpoint, and a state written by
 * c31feb5 (before entries were reclaimed) loads and snapshots the same. */
static void test_state_lru_and_old_file(void) {
        /* c31feb5's tg_sparkplug_snapshot() of: NBIRTH G/N (bdSeq 7, Temp
         * alias 1 Float), DBIRTH G/N/D (Speed alias 10 Double), NDATA from
         * G/X (no birth; a rebirth request at NOW). */
        static const unsigned char old[] =
                "\x54\x47\x53\x50\x53\x54\x41\x54\x01\x00\x00\x00\x03\x00\x00\x00"
                "\x03\x00\x47\x2f\x4e\x00\x01\x01\x01\x01\x00\x00\x00\x00\x00\x07"
                "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x02"
                "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00"
                "\x05\x62\x64\x53\x65\x71\x01\x01\x00\x00\x00\x00\x00\x00\x00\x09"
                "\x00\x00\x00\x04\x54\x65\x6d\x70\x05\x00\x47\x2f\x4e\x2f\x44\x01"
                "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                "\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x01\x0a\x00"
                "\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x05\x53\x70\x65\x65\x64"
                "\x03\x00\x47\x2f\x58\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00"
                "\x00\x00\x00\x00\x00\x00\x00\xa0\x55\xf9\x6c\x93\x01\x00\x00\x00"
                "\x00\x00\x00";
        tg_sparkplug_t *sp = decoder(0, 3, 64), *sp2;
        struct tg_sp_message m;
        struct tg_sp_counters c;
        char err[200];
        void *b1, *b2;
        size_t l1, l2;
        unsigned char bad[sizeof(old)];

        CU_ASSERT_EQUAL_FATAL(tg_sparkplug_restore(sp, old, sizeof(old) - 1, err, sizeof(err)),
                              0);
        CU_ASSERT_EQUAL(tg_sparkplug_snapshot(sp, &b1, &l1), 0);
        CU_ASSERT_EQUAL(l1, sizeof(old) - 1);
        CU_ASSERT(!memcmp(b1, old, l1));
        free(b1);
        /* G/X's request remembered; G/N and G/N/D alive: G/Y takes G/X. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/X", ndata(0), NOW + 1, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_FALSE(m.rebirth);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/Y", nbirth(0), NOW, &m), TG_SP_OK);
        reset_metrics();
        m_double(NULL, 10, -1, 4.5);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/DDATA/N/D", pack(T0, 2), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_DOUBLE_EQUAL(field(&rd[0], "Speed")->value, 4.5, 0);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.evictions, 1);
        tg_sparkplug_destroy(sp);

        /* Dead and never-born entries, in an order of their own, through a
         * checkpoint: the same bytes, the same entry taken first. */
        sp = decoder(0, 4, 64);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/A", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/U", ndata(0), NOW, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/B", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDEATH/A", ndeath(), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/U", ndata(0), NOW + 1, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/C", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(tg_sparkplug_snapshot(sp, &b1, &l1), 0);
        sp2 = decoder(0, 4, 64);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp2, b1, l1, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_sparkplug_snapshot(sp2, &b2, &l2), 0);
        CU_ASSERT(l1 == l2 && !memcmp(b1, b2, l1));
        free(b2);
        /* Full (A dead, U seen after A's death, B and C alive): D takes
         * A, so U still remembers its request. */
        CU_ASSERT_EQUAL(msg(sp2, "spBv1.0/G/NBIRTH/D", nbirth(0), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(msg(sp2, "spBv1.0/G/NDATA/U", ndata(0), NOW + 2, &m), TG_SP_NO_BIRTH);
        CU_ASSERT_FALSE(m.rebirth);
        tg_sparkplug_counters(sp2, &c);
        CU_ASSERT_EQUAL(c.evictions, 1);
        CU_ASSERT_EQUAL(c.nodes, 4);
        tg_sparkplug_destroy(sp2);
        free(b1);
        tg_sparkplug_destroy(sp);

        /* A live device under a dead node is no state this decoder makes:
         * refused as corrupt (G/N's born byte cleared in the old file). */
        memcpy(bad, old, sizeof(old));
        bad[22] = 0;
        sp = decoder(0, 3, 64);
        CU_ASSERT_EQUAL(tg_sparkplug_restore(sp, bad, sizeof(old) - 1, err, sizeof(err)),
                        -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "corrupt"));
        tg_sparkplug_destroy(sp);
}

/* 8.1: names from a fixed pool; freed blocks merge for longer names; a
 * name with no room is table_full. */
static void test_name_pool(void) {
        tg_sparkplug_t *sp = decoder_names(4, 64, 256); /* two 128-byte blocks */
        struct tg_sp_message m;
        struct tg_sp_counters c;
        char names[17][20], longname[3][128];
        int i;

        CU_ASSERT_EQUAL(tg_sparkplug_name_bytes(sp), 256);
        reset_metrics();
        for (i = 0; i < 16; i++) { /* 16 names of 16 bytes: the pool exactly */
                snprintf(names[i], sizeof(names[i]), "metric-%09d", i);
                m_double(names[i], i, 10, i);
        }
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", pack(T0, 0), NOW, &m), TG_SP_OK);
        reset_metrics();
        m_double(NULL, 15, -1, 9.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0, 1), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        CU_ASSERT_PTR_NOT_NULL(field(&rd[0], "metric-000000015"));
        /* One more name: no room. */
        snprintf(names[16], sizeof(names[16]), "metric-%09d", 16);
        reset_metrics();
        for (i = 0; i < 17; i++)
                m_double(names[i], i, 10, i);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", pack(T0, 0), NOW, &m), TG_SP_TABLE_FULL);
        /* The next birth gives the 16-byte blocks back; merged, they hold
         * two names of 127 bytes, not three. */
        reset_metrics();
        for (i = 0; i < 3; i++) {
                memset(longname[i], 'a' + i, 127);
                longname[i][127] = '\0';
                m_double(longname[i], 100 + i, 10, i);
        }
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", pack(T0, 0), NOW, &m), TG_SP_TABLE_FULL);
        reset_metrics();
        m_double(NULL, 100, -1, 1.0);
        m_double(NULL, 101, -1, 2.0);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDATA/N", pack(T0, 1), NOW, &m), TG_SP_OK);
        CU_ASSERT_EQUAL(m.metrics_raw_only, 2); /* over 32 bytes: no field, but named */
        CU_ASSERT_EQUAL_FATAL(readings(sp), 1);
        {
                cJSON *j = raw(sp, 0);

                CU_ASSERT_PTR_NOT_NULL(raw_metric(j, longname[0]));
                CU_ASSERT_PTR_NOT_NULL(raw_metric(j, longname[1]));
                cJSON_Delete(j);
        }
        /* After a death, the whole pool again: 16 short names fit. */
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NDEATH/N", ndeath(), NOW, &m), TG_SP_OK);
        reset_metrics();
        for (i = 0; i < 16; i++)
                m_double(names[i], i, 10, i);
        CU_ASSERT_EQUAL(msg(sp, "spBv1.0/G/NBIRTH/N", pack(T0, 0), NOW, &m), TG_SP_OK);
        tg_sparkplug_counters(sp, &c);
        CU_ASSERT_EQUAL(c.metrics, 16);
        CU_ASSERT_EQUAL(c.anomalies[TG_SP_TABLE_FULL], 2);
        tg_sparkplug_destroy(sp);
}

/* 8: the defaults' cost (docs/sparkplug.md 8.3). */
static void test_default_memory(void) {
        tg_sparkplug_t *sp = decoder(0, 1000, 50000);

        printf("\n    tg_sparkplug_memory(1000 nodes, 50000 metrics) = %zu\n",
               tg_sparkplug_memory(sp));
        CU_ASSERT(tg_sparkplug_memory(sp) < 6500000);
        CU_ASSERT_EQUAL(tg_sparkplug_name_bytes(sp), 50000 * 32);
        tg_sparkplug_destroy(sp);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"2 topics, STATE and commands", test_topics},
                {"3/4 births, aliases, the raw record's context", test_births_and_aliases},
                {"4.2 every datatype", test_every_datatype},
                {"4.3/4.4 metric and payload timestamps, historical", test_timestamps_and_historical},
                {"4.1 long names, a sensor per metric", test_long_names_and_metric_mode},
                {"5.1 seq wraps 255 -> 0; gaps", test_seq_wrap_and_gap},
                {"5.2/6 deaths and bdSeq", test_deaths_and_bdseq},
                {"5.3 data before birth", test_data_before_birth},
                {"5.4 unknown alias", test_unknown_alias},
                {"5.5 rebirth requests, rate-limited", test_rebirth_rate_limit},
                {"7 state round trip", test_state_round_trip},
                {"8 table overflow", test_table_overflow},
                {"8 the arena bounds a payload's decoded form", test_arena_too_large},
                {"wire bytes written from the specification", test_hand_written_bytes},
                {"8.1 a flood of unknown node ids, then a real node", test_flood_of_unknown_nodes},
                {"8.1 live entries are never taken", test_live_entries_kept},
                {"8.1 dead entries reused, least recently seen first", test_dead_entries_reused},
                {"7.5 the LRU order and c31feb5's state through a checkpoint",
                 test_state_lru_and_old_file},
                {"8.1 the name pool", test_name_pool},
                {"8.3 the defaults' memory", test_default_memory},
        };

        return TG_TEST_RUN("sparkplug", tests);
}
