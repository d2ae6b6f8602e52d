/* test_codec.c - CUnit tests of the reading model and the JSON/CBOR codecs: decode, reason codes, encode. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <cbor.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "reading.h"
#include "tg_test.h"

/* --- helpers ------------------------------------------------------------ */

static void expect_err(enum tg_decode_err want, enum tg_decode_err got,
                       const char *what, int line) {
        tg_check(got == want, line, "%.200s: got %s, want %s", what,
                 tg_decode_err_name(got), tg_decode_err_name(want));
}

#define EXPECT_ERR(want, got, what) expect_err((want), (got), (what), __LINE__)

static uint64_t rng_state = 0x7467617465ULL;

static uint64_t rng(void) {
        return tg_splitmix64(&rng_state);
}

static double random_finite_double(void) {
        double d;

        do {
                uint64_t bits = rng();

                memcpy(&d, &bits, sizeof(d));
        } while (!isfinite(d));
        return d;
}

/* An event time in [TG_TS_MIN, TG_TS_MAX]. */
static int64_t random_ts(void) {
        return TG_TS_MIN + (int64_t)(rng() % (uint64_t)TG_TS_MAX);
}

/* Decode from a heap copy of exactly @p len bytes, so ASan sees any read
 * past the end of the payload (MQTT payloads are not NUL-terminated). */
static enum tg_decode_err decode_exact(enum tg_format fmt, const void *p,
                                       size_t len, struct tg_reading *r) {
        unsigned char *copy = malloc(len ? len : 1);
        enum tg_decode_err e;

        CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
        if (len)
                memcpy(copy, p, len);
        e = tg_decode(fmt, copy, len, r);
        free(copy);
        return e;
}

static enum tg_decode_err json(const char *text, struct tg_reading *r) {
        return decode_exact(TG_FORMAT_JSON, text, strlen(text), r);
}

#define EXPECT_JSON(want, text)                                                \
        do {                                                                   \
                struct tg_reading r_;                                          \
                const char *t_ = (text);                                       \
                expect_err((want), json(t_, &r_), t_, __LINE__);               \
        } while (0)

/* printf into a static buffer big enough for payloads over the limit. */
static char jbuf[2 * TG_PAYLOAD_MAX + 64];

static const char *jf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *jf(const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(jbuf, sizeof(jbuf), fmt, ap);
        va_end(ap);
        CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(jbuf));
        return jbuf;
}

/* A string of @p n copies of @p c (n < 128). Two rotating slots. */
static const char *rep(char c, size_t n) {
        static char slots[2][128];
        static int which;
        char *s = slots[which ^= 1];

        CU_ASSERT_FATAL(n < sizeof(slots[0]));
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static const struct tg_field *field(const struct tg_reading *r,
                                    const char *name) {
        uint16_t i;

        for (i = 0; i < r->nfields; i++)
                if (r->fields[i].name_len == strlen(name) &&
                    !memcmp(r->fields[i].name, name, r->fields[i].name_len))
                        return &r->fields[i];
        return NULL;
}

#define EXPECT_FIELD(r, name, v)                                               \
        do {                                                                   \
                const struct tg_field *f_ = field((r), (name));                \
                tg_check(f_ && tg_same_bits(f_->value, (v)), __LINE__,         \
                         "field %s: got %s%.17g, want %.17g", (name),          \
                         f_ ? "" : "(absent) ", f_ ? f_->value : 0.0,          \
                         (double)(v));                                         \
        } while (0)

static void make_reading(struct tg_reading *r, const char *id, size_t idlen,
                         int64_t ts) {
        tg_reading_clear(r);
        CU_ASSERT_EQUAL_FATAL(tg_reading_set_sensor(r, id, idlen), 0);
        r->ts_ms = ts;
}

static void add(struct tg_reading *r, const char *name, double v) {
        CU_ASSERT_EQUAL_FATAL(tg_reading_add_field(r, name, strlen(name), v), 0);
}

/* Same id, timestamp and fields (in order, values bit for bit). */
static void expect_same_reading(const struct tg_reading *got,
                                const struct tg_reading *want, int line) {
        uint16_t i;
        int ok = got->sensor_len == want->sensor_len &&
                 !memcmp(got->sensor, want->sensor, want->sensor_len) &&
                 got->ts_ms == want->ts_ms && got->nfields == want->nfields;

        for (i = 0; ok && i < want->nfields; i++)
                ok = got->fields[i].name_len == want->fields[i].name_len &&
                     !memcmp(got->fields[i].name, want->fields[i].name,
                             want->fields[i].name_len) &&
                     tg_same_bits(got->fields[i].value, want->fields[i].value);
        tg_check(ok, line,
                 "reading differs: got id '%.*s' ts %" PRId64 " %u fields, want "
                 "id '%.*s' ts %" PRId64 " %u fields",
                 (int)got->sensor_len, got->sensor, got->ts_ms, got->nfields,
                 (int)want->sensor_len, want->sensor, want->ts_ms, want->nfields);
}

#define EXPECT_SAME_READING(got, want) expect_same_reading((got), (want), __LINE__)

/* --- CBOR builder over libcbor's encoders ------------------------------- */

struct cb {
        size_t n;
        uint8_t b[TG_PAYLOAD_MAX + 256];
};

#define ROOM(c) ((c)->b + (c)->n), (sizeof((c)->b) - (c)->n)

static void cb_add(struct cb *c, size_t written) {
        CU_ASSERT_FATAL(written > 0);
        c->n += written;
}

static void cb_raw(struct cb *c, const void *p, size_t len) {
        CU_ASSERT_FATAL(len <= sizeof(c->b) - c->n);
        memcpy(c->b + c->n, p, len);
        c->n += len;
}

static void cb_textn(struct cb *c, const char *s, size_t len) {
        cb_add(c, cbor_encode_string_start(len, ROOM(c)));
        cb_raw(c, s, len);
}

static void cb_text(struct cb *c, const char *s) { cb_textn(c, s, strlen(s)); }

static void cb_bytes(struct cb *c, const void *s, size_t len) {
        cb_add(c, cbor_encode_bytestring_start(len, ROOM(c)));
        cb_raw(c, s, len);
}

static void cb_uint(struct cb *c, uint64_t v) { cb_add(c, cbor_encode_uint(v, ROOM(c))); }
/* encodes -1 - u */
static void cb_negint(struct cb *c, uint64_t u) { cb_add(c, cbor_encode_negint(u, ROOM(c))); }
static void cb_double(struct cb *c, double v) { cb_add(c, cbor_encode_double(v, ROOM(c))); }
static void cb_single(struct cb *c, float v) { cb_add(c, cbor_encode_single(v, ROOM(c))); }
static void cb_map(struct cb *c, size_t n) { cb_add(c, cbor_encode_map_start(n, ROOM(c))); }
static void cb_map_indef(struct cb *c) { cb_add(c, cbor_encode_indef_map_start(ROOM(c))); }
static void cb_array(struct cb *c, size_t n) { cb_add(c, cbor_encode_array_start(n, ROOM(c))); }
static void cb_array_indef(struct cb *c) { cb_add(c, cbor_encode_indef_array_start(ROOM(c))); }
static void cb_break(struct cb *c) { cb_add(c, cbor_encode_break(ROOM(c))); }
static void cb_tag(struct cb *c, uint64_t t) { cb_add(c, cbor_encode_tag(t, ROOM(c))); }
static void cb_bool(struct cb *c, int v) { cb_add(c, cbor_encode_bool(v, ROOM(c))); }
static void cb_null(struct cb *c) { cb_add(c, cbor_encode_null(ROOM(c))); }
static void cb_undef(struct cb *c) { cb_add(c, cbor_encode_undef(ROOM(c))); }

/* A definite map of @p npairs with "sensor": id and "ts": ts first; the
 * caller appends the other npairs - 2 pairs. */
static void cb_head(struct cb *c, size_t npairs, const char *id, uint64_t ts) {
        c->n = 0;
        cb_map(c, npairs);
        cb_text(c, "sensor");
        cb_text(c, id);
        cb_text(c, "ts");
        cb_uint(c, ts);
}

static enum tg_decode_err cbor(const struct cb *c, struct tg_reading *r) {
        return decode_exact(TG_FORMAT_CBOR, c->b, c->n, r);
}

/* The map {"sensor": "dev", "ts": 1, "x": 1, <key>: <raw value bytes>}. */
static void cb_with_value(struct cb *c, const char *key, const void *raw,
                          size_t len) {
        cb_head(c, 4, "dev", 1);
        cb_text(c, "x");
        cb_uint(c, 1);
        cb_text(c, key);
        cb_raw(c, raw, len);
}

#define EXPECT_CBOR(want, c, what)                                             \
        do {                                                                   \
                struct tg_reading r_;                                          \
                expect_err((want), cbor((c), &r_), (what), __LINE__);          \
        } while (0)

static const char SIM_JSON[] =
        "{\"sensor\":\"node-0001\",\"ts\":1732530000123,\"temperature\":21.5,"
        "\"humidity\":40,\"pressure\":1013.25}";

/* The simulator's reading as CBOR, definite map. */
static void cb_sim(struct cb *c) {
        cb_head(c, 5, "node-0001", 1732530000123ULL);
        cb_text(c, "temperature");
        cb_double(c, 21.5);
        cb_text(c, "humidity");
        cb_uint(c, 40);
        cb_text(c, "pressure");
        cb_double(c, 1013.25);
}

static void expect_sim_reading(const struct tg_reading *r, int line) {
        struct tg_reading want;

        make_reading(&want, "node-0001", 9, 1732530000123LL);
        add(&want, "temperature", 21.5);
        add(&want, "humidity", 40.0);
        add(&want, "pressure", 1013.25);
        expect_same_reading(r, &want, line);
}

/* --- reading model ------------------------------------------------------ */

static void test_reading_model(void) {
        struct tg_reading r;

        tg_reading_clear(&r);
        CU_ASSERT_EQUAL(r.nfields, 0);
        CU_ASSERT_EQUAL(r.sensor_len, 0);
        CU_ASSERT_EQUAL(tg_reading_set_sensor(&r, "x", 0), -EINVAL);
        CU_ASSERT_EQUAL(tg_reading_set_sensor(&r, rep('i', 65), 65), -ENAMETOOLONG);
        CU_ASSERT_EQUAL(tg_reading_set_sensor(&r, rep('i', 64), 64), 0);
        CU_ASSERT_EQUAL(r.sensor_len, 64);
        CU_ASSERT_STRING_EQUAL(r.sensor, rep('i', 64));

        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "x", 0, 1.0), -EINVAL);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, rep('f', 33), 33, 1.0), -ENAMETOOLONG);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, rep('f', 32), 32, 1.0), 0);
        CU_ASSERT_EQUAL(r.nfields, 1);
        CU_ASSERT_EQUAL(r.fields[0].name_len, 32);
        CU_ASSERT_STRING_EQUAL(r.fields[0].name, rep('f', 32));

        /* names are compared by length and bytes: a prefix is another name */
        tg_reading_clear(&r);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "ab", 2, 1.0), 0);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "abc", 3, 2.0), 0);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "abc", 2, 3.0), -EEXIST); /* "ab" */
        CU_ASSERT_EQUAL(r.nfields, 2);
        EXPECT_FIELD(&r, "ab", 1.0);
        EXPECT_FIELD(&r, "abc", 2.0);
}

static void test_reading_add_field_refuses_repeats(void) {
        struct tg_reading r;
        char name[16];
        int i;

        tg_reading_clear(&r);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "x", 1, 1.0), 0);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "y", 1, 2.0), 0);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "x", 1, 3.0), -EEXIST);
        CU_ASSERT_EQUAL(r.nfields, 2);
        CU_ASSERT_STRING_EQUAL(r.fields[0].name, "x");
        CU_ASSERT_TRUE(tg_same_bits(r.fields[0].value, 1.0));
        CU_ASSERT_STRING_EQUAL(r.fields[1].name, "y");
        CU_ASSERT_TRUE(tg_same_bits(r.fields[1].value, 2.0));

        /* a full reading: a repeated name is still a repeat, a new one no room */
        tg_reading_clear(&r);
        for (i = 0; i < TG_READING_FIELDS_MAX; i++) {
                snprintf(name, sizeof(name), "f%d", i);
                CU_ASSERT_EQUAL(tg_reading_add_field(&r, name, strlen(name), i), 0);
        }
        CU_ASSERT_EQUAL(r.nfields, TG_READING_FIELDS_MAX);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "f15", 3, -1.0), -EEXIST);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "f0", 2, -2.0), -EEXIST);
        EXPECT_FIELD(&r, "f15", 15.0);
        EXPECT_FIELD(&r, "f0", 0.0);
        CU_ASSERT_EQUAL(tg_reading_add_field(&r, "f16", 3, 16.0), -ENOSPC);
        CU_ASSERT_EQUAL(r.nfields, TG_READING_FIELDS_MAX);
        CU_ASSERT_PTR_NULL(field(&r, "f16"));
}

/* --- members given twice (issue 12, item 7) ------------------------------- */

static enum tg_decode_err json_ex(const struct tg_decode_opts *o, const char *text,
                                  struct tg_reading *r) {
        return tg_decode_json_ex(text, strlen(text), o, r);
}

/* @p what is refused as duplicate_member by both JSON paths, and the
 * detail names member @p name. */
static void expect_json_duplicate(const struct tg_decode_opts *o, const char *text,
                                  const char *name, int line) {
        struct tg_reading a, b;
        enum tg_decode_err ea = tg_decode_json_ex(text, strlen(text), o, &a);
        char want[64];

        snprintf(want, sizeof(want), "member \"%s\" given more than once", name);
        tg_check(ea == TG_DECODE_DUPLICATE_MEMBER &&
                         !strcmp(tg_decode_err_detail(ea), want),
                 line, "%s: got %s '%s', want duplicate_member '%s'", text,
                 tg_decode_err_name(ea), tg_decode_err_detail(ea), want);
        ea = tg_decode_json_cjson_ex(text, strlen(text), o, &b);
        tg_check(ea == TG_DECODE_DUPLICATE_MEMBER &&
                         !strcmp(tg_decode_err_detail(ea), want),
                 line, "%s (cJSON path): got %s '%s', want duplicate_member '%s'", text,
                 tg_decode_err_name(ea), tg_decode_err_detail(ea), want);
}

#define EXPECT_JSON_DUPLICATE(o, text, name)                                   \
        expect_json_duplicate((o), (text), (name), __LINE__)

/* The same result from both CBOR walks. */
static void expect_cbor_both(const struct tg_decode_opts *o, const struct cb *c,
                             enum tg_decode_err want, const char *name,
                             const char *what, int line) {
        struct tg_reading a, b;
        enum tg_decode_err ea = tg_decode_cbor_ex(c->b, c->n, o, &a);
        enum tg_decode_err eb = tg_decode_cbor_general_ex(c->b, c->n, o, &b);
        char want_detail[64];

        tg_check(ea == want && eb == want, line, "%s: got %s (fast) %s (general), want %s",
                 what, tg_decode_err_name(ea), tg_decode_err_name(eb),
                 tg_decode_err_name(want));
        if (name) {
                snprintf(want_detail, sizeof(want_detail), "member \"%s\" given more than once",
                         name);
                tg_check(!strcmp(tg_decode_err_detail(eb), want_detail), line,
                         "%s: detail '%s', want '%s'", what, tg_decode_err_detail(eb),
                         want_detail);
        }
}

#define EXPECT_CBOR_BOTH(o, c, want, name, what)                               \
        expect_cbor_both((o), (c), (want), (name), (what), __LINE__)

static void test_json_duplicate_members(void) {
        static const char *const keep_y[] = {"y"};
        const struct tg_decode_opts *d = &tg_decode_defaults;
        struct tg_decode_opts o;
        struct tg_reading r;

        /* a field, the id, the timestamp: whatever the second value is */
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"y\":5,\"x\":2}", "x");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"x\":1}", "x");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"sensor\":\"a\",\"ts\":1,\"x\":1}", "sensor");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"sensor\":\"b\"}", "sensor");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"sensor\":5}", "sensor");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"sensor\":{}}", "sensor");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"ts\":1,\"x\":1}", "ts");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"ts\":\"z\"}", "ts");
        EXPECT_JSON_DUPLICATE(d, "{\"ts\":1,\"sensor\":\"a\",\"ts\":2,\"x\":1}", "ts");
        /* escapes are read before names are compared (the cJSON path) */
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"\\u0078\":2}", "x");
        EXPECT_JSON_DUPLICATE(d, "{\"sensor\":\"a\",\"sens\\u006fr\":\"b\",\"ts\":1,\"x\":1}",
                              "sensor");
        /* the first refusal in member order wins */
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":5,\"sensor\":\"a\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_TS_OUT_OF_RANGE, "{\"sensor\":\"a\",\"ts\":0,\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_NON_FINITE, "{\"sensor\":\"a\",\"ts\":1,\"x\":1e999,\"x\":1}");
        /* members nobody reads are not compared; nor is a field's name
         * given again to a member that is no field */
        EXPECT_JSON(TG_DECODE_OK, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"n\":\"p\",\"n\":\"q\"}");
        EXPECT_JSON(TG_DECODE_OK, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"x\":\"hot\"}");
        EXPECT_JSON(TG_DECODE_OK, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"x\":[2]}");
        EXPECT_ERR(TG_DECODE_OK, json("{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"x\":null}", &r), "x null");
        EXPECT_FIELD(&r, "x", 1.0);

        /* the mapping decides what is a field, the id, the timestamp */
        o = tg_decode_defaults;
        o.keep = keep_y;
        o.nkeep = 1;
        CU_ASSERT_EQUAL(json_ex(&o, "{\"sensor\":\"a\",\"ts\":1,\"y\":1,\"x\":1,\"x\":2}", &r),
                        TG_DECODE_OK);
        EXPECT_JSON_DUPLICATE(&o, "{\"sensor\":\"a\",\"ts\":1,\"y\":1,\"y\":2}", "y");
        o = tg_decode_defaults;
        o.sensor = "from-topic";
        o.sensor_len = 10;
        EXPECT_JSON_DUPLICATE(&o, "{\"ts\":1,\"sensor\":1,\"sensor\":2}", "sensor");
        o = tg_decode_defaults;
        o.id_key = "dev";
        o.ts_key = "time";
        o.ts_unit = TG_TS_UNIT_RFC3339;
        EXPECT_JSON_DUPLICATE(&o, "{\"dev\":\"a\",\"time\":\"2026-01-01T00:00:00Z\",\"x\":1,"
                                  "\"time\":\"2026-01-01T00:00:00Z\"}", "time");
        EXPECT_JSON_DUPLICATE(&o, "{\"dev\":\"a\",\"dev\":\"b\",\"time\":\"2026-01-01T00:00:00Z\"}",
                              "dev");
        CU_ASSERT_EQUAL(json_ex(&o, "{\"dev\":\"a\",\"time\":\"2026-01-01T00:00:00Z\",\"ts\":1,"
                                    "\"sensor\":1}", &r), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.nfields, 2);

        /* other reasons keep their sentence */
        CU_ASSERT_STRING_EQUAL(tg_decode_err_detail(TG_DECODE_BAD_ID),
                               tg_decode_err_message(TG_DECODE_BAD_ID));
}

static void test_cbor_duplicate_members(void) {
        static struct cb c;
        const struct tg_decode_opts *d = &tg_decode_defaults;
        struct tg_decode_opts o;

        /* a field twice: definite map (fast path), indefinite (general) */
        cb_head(&c, 5, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "y");
        cb_uint(&c, 5);
        cb_text(&c, "x");
        cb_double(&c, 2.5);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_DUPLICATE_MEMBER, "x", "field x twice");
        c.n = 0;
        cb_map_indef(&c);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_break(&c);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_DUPLICATE_MEMBER, "x", "field x twice, indefinite map");

        /* the id and the timestamp twice, whatever the second value */
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_DUPLICATE_MEMBER, "sensor", "id twice");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "sensor");
        cb_array(&c, 1);
        cb_uint(&c, 1);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_DUPLICATE_MEMBER, "sensor", "id twice, then an array");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_DUPLICATE_MEMBER, "ts", "ts twice");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "ts");
        cb_tag(&c, 1);
        cb_map(&c, 0);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_DUPLICATE_MEMBER, "ts", "ts twice, then a tagged map");

        /* the first refusal in item order: an invalid first ts */
        c.n = 0;
        cb_map(&c, 4);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        cb_text(&c, "ts");
        cb_negint(&c, 0);
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_TS_OUT_OF_RANGE, NULL, "ts -1, then ts 1");

        /* not compared: members nobody reads, a field name on a non-number */
        cb_head(&c, 5, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_text(&c, "hot");
        cb_text(&c, "x");
        cb_null(&c);
        EXPECT_CBOR_BOTH(d, &c, TG_DECODE_OK, NULL, "x, then x as text and null");

        /* with the id from the topic, "sensor" is a field like any other */
        o = tg_decode_defaults;
        o.sensor = "t";
        o.sensor_len = 1;
        c.n = 0;
        cb_map(&c, 3);
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "sensor");
        cb_uint(&c, 1);
        cb_text(&c, "sensor");
        cb_uint(&c, 2);
        EXPECT_CBOR_BOTH(&o, &c, TG_DECODE_DUPLICATE_MEMBER, "sensor", "numeric sensor twice");
}

/* --- reason names and formats -------------------------------------------- */

static void test_reason_names(void) {
        static const char *const want[TG_DECODE__COUNT] = {
                "ok", "not_decodable", "wrong_type", "missing_id", "bad_id",
                "missing_timestamp", "invalid_timestamp", "no_fields",
                "too_many_fields", "bad_field_name", "non_finite_value",
                "too_large", "too_deep", "string_too_long", "bad_senml",
                "timestamp_out_of_range", "duplicate_member",
        };
        int i, j;

        for (i = 0; i < TG_DECODE__COUNT; i++) {
                const char *n = tg_decode_err_name((enum tg_decode_err)i);

                CU_ASSERT_PTR_NOT_NULL_FATAL(n);
                tg_check(!strcmp(n, want[i]), __LINE__, "reason %d: '%s', want '%s'",
                         i, n, want[i]);
                for (j = 0; j < i; j++)
                        CU_ASSERT_STRING_NOT_EQUAL(n, tg_decode_err_name((enum tg_decode_err)j));
        }
        CU_ASSERT_STRING_EQUAL(tg_decode_err_name(TG_DECODE__COUNT), "unknown");
        CU_ASSERT_STRING_EQUAL(tg_decode_err_name((enum tg_decode_err)-1), "unknown");
}

static void test_format_parse(void) {
        enum tg_format f = (enum tg_format)99;

        CU_ASSERT_EQUAL(tg_format_parse("auto", &f), 0);
        CU_ASSERT_EQUAL(f, TG_FORMAT_AUTO);
        CU_ASSERT_EQUAL(tg_format_parse("json", &f), 0);
        CU_ASSERT_EQUAL(f, TG_FORMAT_JSON);
        CU_ASSERT_EQUAL(tg_format_parse("cbor", &f), 0);
        CU_ASSERT_EQUAL(f, TG_FORMAT_CBOR);
        f = TG_FORMAT_JSON;
        CU_ASSERT_EQUAL(tg_format_parse("CBOR", &f), -EINVAL);
        CU_ASSERT_EQUAL(tg_format_parse("", &f), -EINVAL);
        CU_ASSERT_EQUAL(tg_format_parse("jsonx", &f), -EINVAL);
        CU_ASSERT_EQUAL(f, TG_FORMAT_JSON); /* untouched on error */
        CU_ASSERT_STRING_EQUAL(tg_format_name(TG_FORMAT_AUTO), "auto");
        CU_ASSERT_STRING_EQUAL(tg_format_name(TG_FORMAT_JSON), "json");
        CU_ASSERT_STRING_EQUAL(tg_format_name(TG_FORMAT_CBOR), "cbor");
        CU_ASSERT_STRING_EQUAL(tg_format_name((enum tg_format)7), "unknown");
}

/* --- JSON decoding ------------------------------------------------------- */

static void test_json_simulator_shape(void) {
        struct tg_reading r;

        memset(&r, 0x5a, sizeof(r)); /* the decoder must overwrite all of it */
        EXPECT_ERR(TG_DECODE_OK, json(SIM_JSON, &r), SIM_JSON);
        CU_ASSERT_STRING_EQUAL(r.sensor, "node-0001");
        CU_ASSERT_EQUAL(r.sensor_len, 9);
        CU_ASSERT_EQUAL(r.ts_ms, INT64_C(1732530000123));
        CU_ASSERT_EQUAL_FATAL(r.nfields, 3);
        CU_ASSERT_STRING_EQUAL(r.fields[0].name, "temperature");
        CU_ASSERT_EQUAL(r.fields[0].name_len, 11);
        CU_ASSERT_TRUE(tg_same_bits(r.fields[0].value, 21.5));
        CU_ASSERT_STRING_EQUAL(r.fields[1].name, "humidity");
        CU_ASSERT_EQUAL(r.fields[1].name_len, 8);
        CU_ASSERT_TRUE(tg_same_bits(r.fields[1].value, 40.0));
        CU_ASSERT_STRING_EQUAL(r.fields[2].name, "pressure");
        CU_ASSERT_EQUAL(r.fields[2].name_len, 8);
        CU_ASSERT_TRUE(tg_same_bits(r.fields[2].value, 1013.25));

        memset(&r, 0x5a, sizeof(r));
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, SIM_JSON,
                                              strlen(SIM_JSON), &r), "auto");
        expect_sim_reading(&r, __LINE__);
        EXPECT_ERR(TG_DECODE_OK, tg_decode_json(SIM_JSON, strlen(SIM_JSON), &r),
                   "tg_decode_json");
        expect_sim_reading(&r, __LINE__);
}

static void test_json_ignores_non_numeric(void) {
        static const char p[] =
                "{\"unit\":\"C\",\"sensor\":\"s-1\",\"ok\":true,\"bad\":false,"
                "\"none\":null,\"meta\":{\"sensor\":\"other\",\"ts\":5,\"inner\":1},"
                "\"list\":[1,2,{\"deep\":3}],\"ts\":10,\"v\":-2.5e-3,\"emptyobj\":{},"
                "\"emptylist\":[],\"str\":\"12\",\"w\":1E2}";
        struct tg_reading r;

        EXPECT_ERR(TG_DECODE_OK, json(p, &r), p);
        CU_ASSERT_STRING_EQUAL(r.sensor, "s-1");
        CU_ASSERT_EQUAL(r.ts_ms, 10);
        CU_ASSERT_EQUAL(r.nfields, 2);
        EXPECT_FIELD(&r, "v", -0.0025);
        EXPECT_FIELD(&r, "w", 100.0);
        CU_ASSERT_PTR_NULL(field(&r, "inner"));
        CU_ASSERT_PTR_NULL(field(&r, "str"));
        CU_ASSERT_PTR_NULL(field(&r, "deep"));

        /* escapes in ids and names decode to the bytes they stand for */
        EXPECT_ERR(TG_DECODE_OK,
                   json("{\"sensor\":\"a\\\"b\\\\c\\u00e9\",\"ts\":7,\"t\\tab\":1}", &r),
                   "escapes");
        CU_ASSERT_STRING_EQUAL(r.sensor, "a\"b\\c\xc3\xa9");
        CU_ASSERT_EQUAL(r.sensor_len, 7);
        CU_ASSERT_EQUAL(r.ts_ms, 7);
        EXPECT_FIELD(&r, "t\tab", 1.0);
}

static void test_json_not_decodable(void) {
        static const char *const bad[] = {
                "", " ", "{", "}", "garbage", "\x01\x02\x03",
                "{sensor:\"a\",\"ts\":1,\"x\":1}",
                "{'sensor':'a','ts':1,'x':1}",
                "{\"sensor\":\"a\",\"ts\":1,\"x\":1,}",
                "{\"sensor\":\"a\",\"ts\":1,\"x\":NaN}",
                "{\"sensor\":\"a\",\"ts\":1,\"x\":Infinity}",
                "{\"sensor\":\"a\" \"ts\":1}",
                "{\"sensor\":\"a\",\"ts\":1,\"x\":1]",
                "{\"sensor\":\"unterminated,\"ts\":1,\"x\":1}",
        };
        char prefix[sizeof(SIM_JSON)];
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                EXPECT_JSON(TG_DECODE_NOT_DECODABLE, bad[i]);

        /* truncated: every strict prefix of a good payload */
        for (i = 0; i < strlen(SIM_JSON); i++) {
                struct tg_reading r;

                memcpy(prefix, SIM_JSON, i);
                EXPECT_ERR(TG_DECODE_NOT_DECODABLE,
                           decode_exact(TG_FORMAT_JSON, prefix, i, &r), "truncated JSON");
        }

        /* trailing white space is fine ... */
        EXPECT_JSON(TG_DECODE_OK, jf("%s \r\n\t", SIM_JSON));
        /* ... trailing bytes are not: the payload is not one JSON text */
        EXPECT_JSON(TG_DECODE_NOT_DECODABLE, jf("%sgarbage", SIM_JSON));
        EXPECT_JSON(TG_DECODE_NOT_DECODABLE, jf("%s}", SIM_JSON));
        EXPECT_JSON(TG_DECODE_NOT_DECODABLE, jf("%s%s", SIM_JSON, SIM_JSON));
}

static void test_json_wrong_type(void) {
        EXPECT_JSON(TG_DECODE_WRONG_TYPE, "[]");
        EXPECT_JSON(TG_DECODE_WRONG_TYPE, jf("[%s]", SIM_JSON));
        EXPECT_JSON(TG_DECODE_WRONG_TYPE, "1732530000123");
        EXPECT_JSON(TG_DECODE_WRONG_TYPE, "\"node-0001\"");
        EXPECT_JSON(TG_DECODE_WRONG_TYPE, "true");
        EXPECT_JSON(TG_DECODE_WRONG_TYPE, " null ");
}

static void test_json_missing_id(void) {
        EXPECT_JSON(TG_DECODE_MISSING_ID, "{\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_ID, "{\"Sensor\":\"a\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_ID, "{\"id\":\"a\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_ID,
                    "{\"meta\":{\"sensor\":\"a\"},\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_ID, "{}");
}

/* UTF-8 decoded the long way, for the test below: the code point of the
 * sequence at s[0..len), or -1 when it is no valid UTF-8 of one code
 * point (RFC 3629: shortest form, no surrogate, at most U+10FFFF). */
static long utf8_one(const unsigned char *s, size_t len) {
        static const long min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
        size_t lead = 0, i;
        long cp;

        while (lead < 8 && s[0] & (0x80 >> lead))
                lead++;
        if (lead == 0)
                return len == 1 ? s[0] : -1;
        if (lead == 1 || lead > 4 || len != lead)
                return -1;
        cp = s[0] & (0x7f >> lead);
        for (i = 1; i < len; i++) {
                if ((s[i] >> 6) != 2)
                        return -1;
                cp = cp * 64 + (s[i] & 0x3f);
        }
        if (cp < min_of[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return -1;
        return cp;
}

/* tg_text_valid() against utf8_one() on every string of 1, 2 and 3
 * bytes, on a 4-byte sample, and at every offset of the 8-byte steps. */
static void test_text_valid(void) {
        static const struct {
                const char *s;
                int valid;
        } cases[] = {
                {"node-0001", 1}, {"caf\xc3\xa9", 1}, {"\xe2\x82\xac", 1},
                {"\xf0\x9d\x84\x9e", 1}, {"\xf4\x8f\xbf\xbf", 1}, {"\xef\xbf\xbf", 1},
                {"\x7f\x01", 1}, {"", 1},
                {"\x80", 0}, {"caf\xc3", 0}, {"\xc0\xaf", 0}, {"\xc1\xbf", 0},
                {"\xe0\x80\xaf", 0}, {"\xe0\x9f\xbf", 0}, {"\xed\xa0\x80", 0},
                {"\xed\xbf\xbf", 0}, {"\xf0\x8f\xbf\xbf", 0}, {"\xf4\x90\x80\x80", 0},
                {"\xf5\x80\x80\x80", 0}, {"\xff", 0}, {"\xfe", 0}, {"\xc3\xa9\xa9", 0},
        };
        unsigned char b[24];
        unsigned long x, bad = 0;
        size_t i, at;

        for (i = 0; i < sizeof(cases) / sizeof(*cases); i++)
                tg_check(tg_text_valid(cases[i].s, strlen(cases[i].s)) == cases[i].valid,
                         __LINE__, "case %zu: want %d", i, cases[i].valid);
        CU_ASSERT(!tg_text_valid("a\0b", 3));
        CU_ASSERT(!tg_text_valid("\0", 1));

        for (x = 0; x < 0x1000000; x++) { /* 1, 2 and 3 bytes; longer ones lead with no NUL */
                size_t len = x < 0x100 ? 1 : x < 0x10000 ? 2 : 3;
                int want;

                for (i = 0; i < len; i++)
                        b[i] = (unsigned char)(x >> (8 * (len - 1 - i)));
                /* valid: one code point, or two or three in a row */
                want = utf8_one(b, len) > 0;
                if (!want && len >= 2)
                        want = (utf8_one(b, 1) > 0 && (len == 2 ? utf8_one(b + 1, 1) > 0
                                                               : (utf8_one(b + 1, 2) > 0 ||
                                                                  (utf8_one(b + 1, 1) > 0 &&
                                                                   utf8_one(b + 2, 1) > 0)))) ||
                               (len == 3 && utf8_one(b, 2) > 0 && utf8_one(b + 2, 1) > 0);
                if (tg_text_valid((const char *)b, len) != want && bad++ < 5)
                        tg_check(0, __LINE__, "%zu bytes %06lx: want %d", len, x, want);
        }
        for (x = 0; x < 4000000; x++) { /* 4-byte strings: a sample */
                uint64_t r = rng();

                for (i = 0; i < 4; i++)
                        b[i] = (unsigned char)(i == 0 ? 0xf0 + r % 8 : 0x80 + (r >> (8 * i)) % 64);
                if ((r >> 40) % 8 == 0)
                        b[1 + (r >> 43) % 3] = (unsigned char)(r >> 48);
                if (tg_text_valid((const char *)b, 4) != (utf8_one(b, 4) > 0) && bad++ < 5)
                        tg_check(0, __LINE__, "4 bytes %02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
        }
        for (at = 0; at < sizeof(b); at++) { /* one bad byte at every offset */
                memset(b, 'a', sizeof(b));
                CU_ASSERT(tg_text_valid((const char *)b, sizeof(b)));
                b[at] = 0;
                tg_check(!tg_text_valid((const char *)b, sizeof(b)), __LINE__, "NUL at %zu", at);
                b[at] = 0x80;
                tg_check(!tg_text_valid((const char *)b, sizeof(b)), __LINE__, "0x80 at %zu", at);
                if (at + 2 <= sizeof(b)) {
                        b[at] = (char)0xc3;
                        b[at + 1] = (char)0xa9;
                        tg_check(tg_text_valid((const char *)b, sizeof(b)), __LINE__,
                                 "U+00E9 at %zu", at);
                }
        }
        tg_check(bad == 0, __LINE__, "%lu strings judged wrong", bad);
}

static enum tg_decode_err json_with(const struct tg_decode_opts *o, const char *text,
                                    struct tg_reading *r) {
        return tg_decode_json_ex(text, strlen(text), o, r);
}

/*
 * What cannot be text in an id or a name is refused wherever it comes
 * from: invalid UTF-8 bytes in JSON or CBOR, and NUL, raw in CBOR or
 * escaped as \u0000 in JSON (which cJSON alone would have cut the string
 * at). Strings that nothing reads may hold either.
 */
static void test_text_in_payloads(void) {
        static const char *const keep[] = {"temp"};
        struct tg_decode_opts o = tg_decode_defaults;
        struct tg_reading r;
        struct cb c, v;

        /* JSON: escaped NUL */
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":\"node-1\\u0000x\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":\"\\u0000\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_FIELD_NAME, "{\"sensor\":\"a\",\"ts\":1,\"te\\u0000mp\":1}");
        /* a key holding NUL is no id or timestamp key */
        EXPECT_JSON(TG_DECODE_MISSING_ID, "{\"sensor\\u0000\":\"a\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_TS, "{\"sensor\":\"a\",\"ts\\u0000\":\"z\",\"x\":1}");
        /* strings nobody reads may hold it */
        EXPECT_ERR(TG_DECODE_OK,
                   json("{\"sensor\":\"a\",\"ts\":1,\"note\":\"x\\u0000y\",\"n\\u0000\":\"z\","
                        "\"x\":1,\"deep\":{\"k\\u0000\":[\"\\u0000\"]}}", &r),
                   "NUL in strings not read");
        CU_ASSERT_EQUAL(r.nfields, 1);
        CU_ASSERT_STRING_EQUAL(r.sensor, "a");
        /* an escaped backslash before u0000 is no NUL escape */
        EXPECT_ERR(TG_DECODE_OK, json("{\"sensor\":\"a\\\\u0000\",\"ts\":1,\"x\":1}", &r),
                   "escaped backslash");
        CU_ASSERT_STRING_EQUAL(r.sensor, "a\\u0000");
        /* other escapes still decode: U+0001 is text */
        EXPECT_ERR(TG_DECODE_OK, json("{\"sensor\":\"a\\u0001\",\"ts\":1,\"x\":1}", &r),
                   "U+0001");
        CU_ASSERT_EQUAL(r.sensor_len, 2);
        /* with a list of fields, "temp\u0000x" is not "temp" */
        o.keep = keep;
        o.nkeep = 1;
        EXPECT_ERR(TG_DECODE_NO_FIELDS,
                   json_with(&o, "{\"sensor\":\"a\",\"ts\":1,\"temp\\u0000x\":1}", &r),
                   "kept field with a NUL");
        o = tg_decode_defaults;
        o.ts_unit = TG_TS_UNIT_RFC3339;
        EXPECT_ERR(TG_DECODE_OK,
                   json_with(&o, "{\"sensor\":\"a\",\"ts\":\"2026-11-25T10:00:00Z\",\"x\":1}", &r),
                   "RFC 3339 ts");
        EXPECT_ERR(TG_DECODE_INVALID_TS,
                   json_with(&o, "{\"sensor\":\"a\",\"ts\":\"2026-11-25T10:00:00Z\\u0000\",\"x\":1}",
                             &r), "RFC 3339 ts with a NUL");

        /* JSON: invalid UTF-8 */
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":\"caf\xc3\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":\"\xed\xa0\x80\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":\"\xc0\xaf\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_FIELD_NAME, "{\"sensor\":\"a\",\"ts\":1,\"t\xff\":1}");
        EXPECT_JSON(TG_DECODE_BAD_FIELD_NAME,
                    "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"\xf4\x90\x80\x80\":2}");
        EXPECT_ERR(TG_DECODE_OK,
                   json("{\"sensor\":\"\xf0\x9d\x84\x9e\",\"ts\":1,\"\xe2\x82\xac\":1,"
                        "\"note\":\"\xff\"}", &r), "4- and 3-byte characters");
        CU_ASSERT_EQUAL(r.sensor_len, 4);
        CU_ASSERT_EQUAL(r.nfields, 1);

        /* CBOR: the same through text strings */
        c.n = 0;
        cb_map(&c, 3);
        cb_text(&c, "sensor");
        cb_text(&c, "caf\xc3");
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_ERR(TG_DECODE_BAD_ID, cbor(&c, &r), "CBOR id, cut UTF-8");
        v.n = 0;
        cb_uint(&v, 1);
        cb_with_value(&c, "\xed\xa0\x80", v.b, v.n);
        EXPECT_ERR(TG_DECODE_BAD_FIELD_NAME, cbor(&c, &r), "CBOR field name, a surrogate");
        cb_head(&c, 3, "dev", 1);
        cb_textn(&c, "t\0x", 3);
        cb_uint(&c, 1);
        EXPECT_ERR(TG_DECODE_BAD_FIELD_NAME, cbor(&c, &r), "CBOR field name with a NUL");
        v.n = 0;
        cb_text(&v, "\xff\xfe");
        cb_with_value(&c, "note", v.b, v.n);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "CBOR string nobody reads");
}

static void test_json_bad_id(void) {
        struct tg_reading r;

        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":1,\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":\"\",\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID,
                    jf("{\"sensor\":\"%s\",\"ts\":1,\"x\":1}", rep('i', 65)));
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":null,\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":true,\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":{},\"ts\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_BAD_ID, "{\"sensor\":[\"a\"],\"ts\":1,\"x\":1}");

        EXPECT_ERR(TG_DECODE_OK,
                   json(jf("{\"sensor\":\"%s\",\"ts\":1,\"x\":1}", rep('i', 64)), &r),
                   "64-byte id");
        CU_ASSERT_EQUAL(r.sensor_len, 64);
        CU_ASSERT_STRING_EQUAL(r.sensor, rep('i', 64));
        /* the limit counts bytes: 32 two-byte characters fit, 33 do not */
        {
                char id[80] = "";
                int i;

                for (i = 0; i < 32; i++)
                        strcat(id, "\xc3\xa9");
                EXPECT_ERR(TG_DECODE_OK,
                           json(jf("{\"sensor\":\"%s\",\"ts\":1,\"x\":1}", id), &r),
                           "64-byte UTF-8 id");
                CU_ASSERT_EQUAL(r.sensor_len, 64);
                strcat(id, "\xc3\xa9");
                EXPECT_JSON(TG_DECODE_BAD_ID,
                            jf("{\"sensor\":\"%s\",\"ts\":1,\"x\":1}", id));
        }
}

static void test_json_missing_ts(void) {
        EXPECT_JSON(TG_DECODE_MISSING_TS, "{\"sensor\":\"a\",\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_TS, "{\"sensor\":\"a\",\"TS\":1,\"x\":1}");
        EXPECT_JSON(TG_DECODE_MISSING_TS,
                    "{\"sensor\":\"a\",\"meta\":{\"ts\":1},\"x\":1}");
}

/* Issue 12, items 4 and 5: a time that is no time is invalid_timestamp;
 * a number outside [1 ms, 9999-12-31T23:59:59.999Z] timestamp_out_of_range,
 * both through the fast path and through cJSON. */
static void test_json_invalid_ts(void) {
        static const char *const invalid[] = {
                "\"1732530000123\"", "1.5", "-0.5", "0.5", "1732530000123.5",
                "null", "true", "{}", "[1]", "1.0000000000000002", "\"\"",
        };
        static const char *const out_of_range[] = {
                "0", "-0", "0e5", "-1", "-1732530000123",
                "253402300800000",     /* 9999-12-31T23:59:59.999Z + 1 ms */
                "9007199254740992",    /* 2^53 */
                "-9007199254740992", "9223372036854775807", "-9223372036854775808",
                "18446744073709551616", "1e300", "-1e300", "1.7976931348623157e308",
                "1e400", "-1e400",     /* beyond a double: infinities */
        };
        static const struct {
                const char *text;
                int64_t ts;
        } good[] = {
                {"1", 1},
                {"1.0", 1},
                {"1e3", 1000},
                {"1732530000123.0", INT64_C(1732530000123)},
                {"253402300799999", TG_TS_MAX},
                {"2.53402300799999e14", TG_TS_MAX},
        };
        struct tg_reading r, c;
        size_t i;

        for (i = 0; i < sizeof(invalid) / sizeof(*invalid); i++)
                EXPECT_JSON(TG_DECODE_INVALID_TS,
                            jf("{\"sensor\":\"a\",\"ts\":%s,\"x\":1}", invalid[i]));
        for (i = 0; i < sizeof(out_of_range) / sizeof(*out_of_range); i++) {
                const char *p = jf("{\"sensor\":\"a\",\"ts\":%s,\"x\":1}", out_of_range[i]);

                EXPECT_JSON(TG_DECODE_TS_OUT_OF_RANGE, p);
                EXPECT_ERR(TG_DECODE_TS_OUT_OF_RANGE,
                           tg_decode_json_cjson_ex(p, strlen(p), &tg_decode_defaults, &c), p);
        }
        for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
                const char *p = jf("{\"sensor\":\"a\",\"ts\":%s,\"x\":1}", good[i].text);

                EXPECT_ERR(TG_DECODE_OK, json(p, &r), p);
                tg_check(r.ts_ms == good[i].ts, __LINE__, "ts %s: got %" PRId64,
                         good[i].text, r.ts_ms);
                EXPECT_ERR(TG_DECODE_OK,
                           tg_decode_json_cjson_ex(p, strlen(p), &tg_decode_defaults, &c), p);
                CU_ASSERT_EQUAL(c.ts_ms, good[i].ts);
        }
}

static void test_json_no_fields(void) {
        EXPECT_JSON(TG_DECODE_NO_FIELDS, "{\"sensor\":\"a\",\"ts\":1}");
        EXPECT_JSON(TG_DECODE_NO_FIELDS,
                    "{\"sensor\":\"a\",\"ts\":1,\"s\":\"1\",\"b\":true,\"n\":null,"
                    "\"o\":{\"x\":1},\"l\":[1]}");
}

static const char *json_with_fields(int n, int repeat_first) {
        static char p[4096];
        size_t o;
        int i;

        o = (size_t)snprintf(p, sizeof(p), "{\"sensor\":\"a\",\"ts\":1");
        for (i = 0; i < n; i++)
                o += (size_t)snprintf(p + o, sizeof(p) - o, ",\"f%d\":%d", i, i);
        if (repeat_first)
                o += (size_t)snprintf(p + o, sizeof(p) - o, ",\"f0\":100");
        snprintf(p + o, sizeof(p) - o, "}");
        return p;
}

static void test_json_too_many_fields(void) {
        struct tg_reading r;
        int i;

        EXPECT_ERR(TG_DECODE_OK, json(json_with_fields(16, 0), &r), "16 fields");
        CU_ASSERT_EQUAL_FATAL(r.nfields, 16);
        for (i = 0; i < 16; i++)
                CU_ASSERT_TRUE(tg_same_bits(r.fields[i].value, i));
        EXPECT_JSON(TG_DECODE_TOO_MANY_FIELDS, json_with_fields(17, 0));
        EXPECT_JSON(TG_DECODE_TOO_MANY_FIELDS, json_with_fields(40, 0));
        /* 17 members, 16 distinct names: a field given twice */
        EXPECT_JSON(TG_DECODE_DUPLICATE_MEMBER, json_with_fields(16, 1));
}

static void test_json_bad_field_name(void) {
        struct tg_reading r;

        EXPECT_ERR(TG_DECODE_OK,
                   json(jf("{\"sensor\":\"a\",\"ts\":1,\"%s\":2}", rep('n', 32)), &r),
                   "32-byte name");
        CU_ASSERT_EQUAL(r.nfields, 1);
        CU_ASSERT_EQUAL(r.fields[0].name_len, 32);
        EXPECT_FIELD(&r, rep('n', 32), 2.0);
        EXPECT_JSON(TG_DECODE_BAD_FIELD_NAME,
                    jf("{\"sensor\":\"a\",\"ts\":1,\"%s\":2}", rep('n', 33)));
        EXPECT_JSON(TG_DECODE_BAD_FIELD_NAME, "{\"sensor\":\"a\",\"ts\":1,\"\":2}");
        /* a long name of a non-numeric member is ignored, not refused */
        EXPECT_JSON(TG_DECODE_OK,
                    jf("{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"%s\":\"s\"}", rep('n', 33)));
}

static void test_json_non_finite(void) {
        struct tg_reading r;
        enum tg_decode_err e;

        /* JSON has no NaN or Infinity; a number out of double range is the
         * only way in. Whatever the code answers, it must be a refusal. */
        e = json("{\"sensor\":\"a\",\"ts\":1,\"x\":1e400}", &r);
        tg_check(e == TG_DECODE_NON_FINITE || e == TG_DECODE_NOT_DECODABLE, __LINE__,
                 "1e400 decoded as %s", tg_decode_err_name(e));
        CU_ASSERT_EQUAL(e, TG_DECODE_NON_FINITE); /* what the code does today */
        e = json("{\"sensor\":\"a\",\"ts\":1,\"x\":-1e400}", &r);
        CU_ASSERT_EQUAL(e, TG_DECODE_NON_FINITE);
        e = json("{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"y\":123456789e999}", &r);
        CU_ASSERT_EQUAL(e, TG_DECODE_NON_FINITE);
        /* the largest finite double is fine */
        EXPECT_ERR(TG_DECODE_OK,
                   json("{\"sensor\":\"a\",\"ts\":1,\"x\":1.7976931348623157e308}", &r),
                   "DBL_MAX");
        EXPECT_FIELD(&r, "x", DBL_MAX);
}

/* {"sensor":"a","ts":1,"x":1,"pad":"..."} padded with spaces to @p total. */
static size_t json_of_size(char *p, size_t total) {
        size_t n = (size_t)snprintf(p, total + 1, "%s", SIM_JSON);

        CU_ASSERT_FATAL(n < total);
        memmove(p + (total - n), p, n); /* leading white space */
        memset(p, ' ', total - n);
        return total;
}

static void test_json_too_large(void) {
        static char p[TG_PAYLOAD_MAX + 16];
        struct tg_reading r;
        size_t n, o, zeros, len, bad;

        n = json_of_size(p, TG_PAYLOAD_MAX);
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_JSON, p, n, &r), "64 KiB");
        expect_sim_reading(&r, __LINE__);
        n = json_of_size(p, TG_PAYLOAD_MAX + 1);
        EXPECT_ERR(TG_DECODE_TOO_LARGE, decode_exact(TG_FORMAT_JSON, p, n, &r),
                   "64 KiB + 1");
        EXPECT_ERR(TG_DECODE_TOO_LARGE, decode_exact(TG_FORMAT_AUTO, p, n, &r),
                   "64 KiB + 1, auto");

        /* A small payload whose parse tree exceeds the arena: 30000 array
         * items in 60 KB. */
        o = (size_t)sprintf(p, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"a\":[0");
        for (zeros = 1; zeros < 30000; zeros++)
                o += (size_t)sprintf(p + o, ",0");
        o += (size_t)sprintf(p + o, "]}");
        CU_ASSERT_FATAL(o <= TG_PAYLOAD_MAX);
        EXPECT_ERR(TG_DECODE_TOO_LARGE, decode_exact(TG_FORMAT_JSON, p, o, &r),
                   "parse tree over the arena");
        /* the arena is reset for the next payload */
        EXPECT_ERR(TG_DECODE_OK, json(SIM_JSON, &r), "after an exhausted arena");
        expect_sim_reading(&r, __LINE__);

        /* Whatever exhausts the arena, a well-formed payload under the limit
         * is too large, never "not decodable". Here the arena fills with
         * array items and then a 30000-byte string no longer fits: swept
         * over the item count so the boundary is crossed whatever the size
         * of a cJSON node. */
        for (zeros = 4000, len = 0, bad = 0; zeros <= 8000; zeros += 5, len++) {
                enum tg_decode_err e;
                size_t i;

                o = (size_t)sprintf(p, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"a\":[0");
                for (i = 1; i < zeros; i++)
                        o += (size_t)sprintf(p + o, ",0");
                o += (size_t)sprintf(p + o, "],\"s\":\"");
                memset(p + o, 'y', 30000);
                o += 30000;
                o += (size_t)sprintf(p + o, "\"}");
                CU_ASSERT_FATAL(o <= TG_PAYLOAD_MAX);
                e = decode_exact(TG_FORMAT_JSON, p, o, &r);
                if (e != TG_DECODE_OK && e != TG_DECODE_TOO_LARGE && !bad++)
                        tg_check(0, __LINE__,
                                 "well-formed %zu-byte JSON (%zu array items + 30000-byte "
                                 "string) decoded as %s, want ok or too_large",
                                 o, zeros, tg_decode_err_name(e));
        }
        CU_ASSERT_EQUAL(len, 801);
        tg_check(bad == 0, __LINE__, "%zu of 801 such payloads misreported", bad);
}

/* {"sensor":"a","ts":1,"x":1,"deep":[[...[0]...]]} with @p depth arrays. */
static const char *json_nested(int depth) {
        static char p[8192];
        size_t o = (size_t)sprintf(p, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"deep\":");
        int i;

        CU_ASSERT_FATAL((size_t)depth * 2 + o + 8 < sizeof(p));
        for (i = 0; i < depth; i++)
                p[o++] = '[';
        p[o++] = '0';
        for (i = 0; i < depth; i++)
                p[o++] = ']';
        p[o++] = '}';
        p[o] = '\0';
        return p;
}

static void test_json_too_deep(void) {
        struct tg_reading r;

        /* The same structure is accepted in CBOR at 15 levels and refused
         * as too deep at 17 (test_cbor_too_deep); JSON must agree. */
        EXPECT_ERR(TG_DECODE_OK, json(json_nested(15), &r), "JSON arrays 15 deep");
        CU_ASSERT_EQUAL(r.nfields, 1);
        EXPECT_JSON(TG_DECODE_TOO_DEEP, json_nested(17));
        /* past cJSON's own nesting limit (1000) it is still a depth problem,
         * not a malformed payload */
        EXPECT_JSON(TG_DECODE_TOO_DEEP, json_nested(2000));
}

/* --- CBOR decoding ------------------------------------------------------- */

static void test_cbor_simulator_shape(void) {
        static struct cb c;
        struct tg_reading r;

        cb_sim(&c);
        CU_ASSERT_EQUAL(c.b[0], 0xa5); /* map of 5 */
        memset(&r, 0x5a, sizeof(r));
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "simulator shape as CBOR");
        expect_sim_reading(&r, __LINE__);
        memset(&r, 0x5a, sizeof(r));
        EXPECT_ERR(TG_DECODE_OK, tg_decode_cbor(c.b, c.n, &r), "tg_decode_cbor");
        expect_sim_reading(&r, __LINE__);
}

static void test_cbor_not_decodable(void) {
        static struct cb c, d;
        struct tg_reading r;
        size_t i, full;
        /* reserved additional information 28 */
        static const uint8_t reserved[] = {0x1c};
        /* a text string claiming 2^64-1 bytes */
        static const uint8_t huge_string[] = {0x7b, 0xff, 0xff, 0xff, 0xff,
                                              0xff, 0xff, 0xff, 0xff};
        /* a lone "break" outside any indefinite item */
        static const uint8_t lone_break[] = {0xff};

        EXPECT_ERR(TG_DECODE_NOT_DECODABLE, decode_exact(TG_FORMAT_CBOR, "", 0, &r),
                   "empty CBOR");
        EXPECT_ERR(TG_DECODE_NOT_DECODABLE,
                   decode_exact(TG_FORMAT_CBOR, reserved, sizeof(reserved), &r),
                   "reserved initial byte 0x1c");
        EXPECT_ERR(TG_DECODE_NOT_DECODABLE,
                   decode_exact(TG_FORMAT_CBOR, huge_string, sizeof(huge_string), &r),
                   "string longer than the payload");
        EXPECT_ERR(TG_DECODE_NOT_DECODABLE,
                   decode_exact(TG_FORMAT_CBOR, lone_break, sizeof(lone_break), &r),
                   "lone break byte 0xff");

        /* truncated: every strict prefix */
        cb_sim(&c);
        full = c.n;
        for (i = 0; i < full; i++) {
                c.n = i;
                EXPECT_ERR(TG_DECODE_NOT_DECODABLE, cbor(&c, &r), "truncated CBOR");
        }
        /* ... also of an indefinite map: missing its break */
        c.n = 0;
        cb_map_indef(&c);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR(TG_DECODE_NOT_DECODABLE, &c, "indefinite map without break");
        /* a key without its value before the break */
        cb_text(&c, "y");
        cb_break(&c);
        EXPECT_CBOR(TG_DECODE_NOT_DECODABLE, &c, "key without value before break");

        /* trailing bytes after a complete map */
        cb_sim(&c);
        cb_uint(&c, 0);
        EXPECT_CBOR(TG_DECODE_NOT_DECODABLE, &c, "trailing byte");
        cb_sim(&c);
        cb_sim(&d);
        cb_raw(&c, d.b, d.n);
        EXPECT_CBOR(TG_DECODE_NOT_DECODABLE, &c, "two maps back to back");

        /* a break inside a definite map */
        cb_head(&c, 3, "a", 1);
        cb_break(&c);
        EXPECT_CBOR(TG_DECODE_NOT_DECODABLE, &c, "break in a definite map");

        /* A chunk of an indefinite text string must be a definite text
         * string (RFC 8949 3.2.3): an integer chunk is malformed, even in a
         * value the decoder would otherwise ignore. */
        {
                static const uint8_t bad_chunk[] = {0x7f, 0x01, 0xff};

                cb_with_value(&c, "note", bad_chunk, sizeof(bad_chunk));
                EXPECT_CBOR(TG_DECODE_NOT_DECODABLE, &c,
                            "indefinite text string with an integer chunk");
        }
}

static void test_cbor_wrong_type(void) {
        static struct cb c;

        c.n = 0;
        cb_array(&c, 2);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "array at the top");
        c.n = 0;
        cb_array_indef(&c);
        cb_break(&c);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "indefinite array at the top");
        c.n = 0;
        cb_uint(&c, 5);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "integer at the top");
        c.n = 0;
        cb_text(&c, "{}");
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "text at the top");
        c.n = 0;
        cb_tag(&c, 55799);
        cb_array(&c, 0);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "tagged array at the top");

        /* keys that are not text */
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_uint(&c, 7);
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "integer key");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_negint(&c, 0);
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "negative integer key");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_bytes(&c, "y", 1);
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "byte string key");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_array(&c, 1);
        cb_text(&c, "y");
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "array key");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_map(&c, 0);
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "map key");
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_double(&c, 1.0);
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "float key");
        /* an integer key first, before anything else */
        c.n = 0;
        cb_map(&c, 1);
        cb_uint(&c, 1);
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_WRONG_TYPE, &c, "integer key only");
}

static void test_cbor_missing_id(void) {
        static struct cb c;

        c.n = 0;
        cb_map(&c, 2);
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR(TG_DECODE_MISSING_ID, &c, "no sensor");
        c.n = 0;
        cb_map(&c, 3);
        cb_text(&c, "Sensor");
        cb_text(&c, "a");
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR(TG_DECODE_MISSING_ID, &c, "Sensor (case)");
        c.n = 0;
        cb_map(&c, 0);
        EXPECT_CBOR(TG_DECODE_MISSING_ID, &c, "empty map");
        /* "sensor" inside a nested map does not count */
        c.n = 0;
        cb_map(&c, 3);
        cb_text(&c, "meta");
        cb_map(&c, 1);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        cb_text(&c, "ts");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR(TG_DECODE_MISSING_ID, &c, "nested sensor");
}

/* {"sensor": <raw>, "ts": 1, "x": 1} */
static void cb_id_value(struct cb *c, const void *raw, size_t len) {
        c->n = 0;
        cb_map(c, 3);
        cb_text(c, "sensor");
        cb_raw(c, raw, len);
        cb_text(c, "ts");
        cb_uint(c, 1);
        cb_text(c, "x");
        cb_uint(c, 1);
}

static void test_cbor_bad_id(void) {
        static struct cb c, v;
        struct tg_reading r;
        static const struct {
                const char *what;
                uint8_t raw[9];
                size_t len;
        } bad[] = {
                {"integer id", {0x05}, 1},
                {"negative id", {0x20}, 1},
                {"empty text id", {0x60}, 1},
                {"byte string id", {0x41, 'a'}, 2},
                {"indefinite text id", {0x7f, 0x61, 'a', 0xff}, 4},
                {"array id", {0x81, 0x61, 'a'}, 3},
                {"map id", {0xa0}, 1},
                {"null id", {0xf6}, 1},
                {"true id", {0xf5}, 1},
                {"double id", {0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, 9},
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                cb_id_value(&c, bad[i].raw, bad[i].len);
                EXPECT_CBOR(TG_DECODE_BAD_ID, &c, bad[i].what);
        }

        v.n = 0;
        cb_textn(&v, rep('i', 65), 65);
        cb_id_value(&c, v.b, v.n);
        EXPECT_CBOR(TG_DECODE_BAD_ID, &c, "65-byte id");
        v.n = 0;
        cb_textn(&v, rep('i', 64), 64);
        cb_id_value(&c, v.b, v.n);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "64-byte id");
        CU_ASSERT_EQUAL(r.sensor_len, 64);
        CU_ASSERT_STRING_EQUAL(r.sensor, rep('i', 64));
        /* CBOR carries any bytes in a text string, but an id with a NUL
         * would read differently to every strlen-based consumer: refused */
        v.n = 0;
        cb_textn(&v, "a\0b", 3);
        cb_id_value(&c, v.b, v.n);
        EXPECT_ERR(TG_DECODE_BAD_ID, cbor(&c, &r), "id with a NUL byte");
}

static void test_cbor_missing_ts(void) {
        static struct cb c;

        c.n = 0;
        cb_map(&c, 2);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR(TG_DECODE_MISSING_TS, &c, "no ts");
        c.n = 0;
        cb_map_indef(&c);
        cb_text(&c, "sensor");
        cb_text(&c, "a");
        cb_text(&c, "TS");
        cb_uint(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_break(&c);
        EXPECT_CBOR(TG_DECODE_MISSING_TS, &c, "TS (case)");
}

/* {"sensor": "a", "ts": <raw>, "x": 1} */
static void cb_ts_value(struct cb *c, const struct cb *v) {
        c->n = 0;
        cb_map(c, 3);
        cb_text(c, "sensor");
        cb_text(c, "a");
        cb_text(c, "ts");
        cb_raw(c, v->b, v->n);
        cb_text(c, "x");
        cb_uint(c, 1);
}

static void test_cbor_invalid_ts(void) {
        static struct cb c, v;
        struct tg_reading r;
        /* half-precision 1.5 */
        static const uint8_t half_1_5[] = {0xf9, 0x3e, 0x00};
        /* half-precision 2.0 and 0.0 */
        static const uint8_t half_2[] = {0xf9, 0x40, 0x00};
        static const uint8_t half_0[] = {0xf9, 0x00, 0x00};

#define BAD_TS(build, what)                                                    \
        do {                                                                   \
                v.n = 0;                                                       \
                build;                                                         \
                cb_ts_value(&c, &v);                                           \
                EXPECT_CBOR(TG_DECODE_INVALID_TS, &c, what);                   \
                EXPECT_ERR(TG_DECODE_INVALID_TS,                               \
                           tg_decode_cbor_general_ex(c.b, c.n, &tg_decode_defaults, &r), \
                           what);                                              \
        } while (0)
#define RANGE_TS(build, what)                                                  \
        do {                                                                   \
                v.n = 0;                                                       \
                build;                                                         \
                cb_ts_value(&c, &v);                                           \
                EXPECT_CBOR(TG_DECODE_TS_OUT_OF_RANGE, &c, what);              \
                EXPECT_ERR(TG_DECODE_TS_OUT_OF_RANGE,                          \
                           tg_decode_cbor_general_ex(c.b, c.n, &tg_decode_defaults, &r), \
                           what);                                              \
        } while (0)
#define GOOD_TS(build, want, what)                                             \
        do {                                                                   \
                v.n = 0;                                                       \
                build;                                                         \
                cb_ts_value(&c, &v);                                           \
                EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), what);                  \
                tg_check(r.ts_ms == (want), __LINE__, "%s: ts %" PRId64, what, \
                         r.ts_ms);                                             \
        } while (0)

        BAD_TS(cb_text(&v, "1732530000123"), "text ts");
        BAD_TS(cb_double(&v, 1.5), "fractional double ts");
        BAD_TS(cb_single(&v, 1.5f), "fractional single ts");
        BAD_TS(cb_raw(&v, half_1_5, sizeof(half_1_5)), "fractional half ts");
        BAD_TS(cb_double(&v, NAN), "NaN ts");
        BAD_TS(cb_null(&v), "null ts");
        BAD_TS(cb_bool(&v, 1), "true ts");
        BAD_TS((cb_array(&v, 1), cb_uint(&v, 1)), "array ts");
        BAD_TS(cb_map(&v, 0), "map ts");
        BAD_TS(cb_bytes(&v, "\x01", 1), "byte string ts");

        /* numbers outside [1, TG_TS_MAX]: the fast path and the walk agree */
        RANGE_TS(cb_uint(&v, 0), "ts 0");
        RANGE_TS(cb_negint(&v, 0), "ts -1");
        RANGE_TS(cb_uint(&v, (uint64_t)TG_TS_MAX + 1), "ts max + 1");
        RANGE_TS(cb_double(&v, 9007199254740992.0), "2^53 as a double");
        RANGE_TS(cb_double(&v, -9007199254740992.0), "-2^53 as a double");
        RANGE_TS(cb_double(&v, 0.0), "0.0");
        RANGE_TS(cb_double(&v, -0.0), "-0.0");
        RANGE_TS(cb_double(&v, -5.0), "negative double ts");
        RANGE_TS(cb_double(&v, 1e300), "1e300");
        RANGE_TS(cb_double(&v, -DBL_MAX), "-DBL_MAX");
        RANGE_TS(cb_double(&v, INFINITY), "Inf ts");
        RANGE_TS(cb_single(&v, -INFINITY), "-Inf single ts");
        RANGE_TS(cb_raw(&v, half_0, sizeof(half_0)), "half 0");
        RANGE_TS(cb_uint(&v, INT64_MAX), "ts INT64_MAX");
        RANGE_TS(cb_uint(&v, (uint64_t)INT64_MAX + 1), "uint 2^63");
        RANGE_TS(cb_uint(&v, UINT64_MAX), "uint 2^64-1");
        RANGE_TS(cb_negint(&v, INT64_MAX), "ts INT64_MIN");
        RANGE_TS(cb_negint(&v, (uint64_t)INT64_MAX + 1), "negint -2^63-1");
        RANGE_TS(cb_negint(&v, UINT64_MAX), "negint -2^64");

        GOOD_TS(cb_uint(&v, 1), 1, "ts 1");
        GOOD_TS(cb_uint(&v, 1732530000123ULL), INT64_C(1732530000123), "ts now");
        GOOD_TS(cb_uint(&v, (uint64_t)TG_TS_MAX), TG_TS_MAX, "ts max");
        GOOD_TS(cb_double(&v, 1732530000123.0), INT64_C(1732530000123), "double ts");
        GOOD_TS(cb_double(&v, (double)TG_TS_MAX), TG_TS_MAX, "max as a double");
        GOOD_TS(cb_raw(&v, half_2, sizeof(half_2)), 2, "integral half ts");
        GOOD_TS((cb_tag(&v, 1), cb_uint(&v, 7)), 7, "tagged integer ts");
#undef BAD_TS
#undef RANGE_TS
#undef GOOD_TS
}

static void test_cbor_no_fields(void) {
        static struct cb c;

        cb_head(&c, 2, "a", 1);
        EXPECT_CBOR(TG_DECODE_NO_FIELDS, &c, "sensor and ts only");
        cb_head(&c, 8, "a", 1);
        cb_text(&c, "s");
        cb_text(&c, "1");
        cb_text(&c, "b");
        cb_bool(&c, 0);
        cb_text(&c, "n");
        cb_null(&c);
        cb_text(&c, "u");
        cb_undef(&c);
        cb_text(&c, "l");
        cb_array(&c, 1);
        cb_uint(&c, 1);
        cb_text(&c, "o");
        cb_map(&c, 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        EXPECT_CBOR(TG_DECODE_NO_FIELDS, &c, "only non-numeric members");
}

static void cb_with_fields(struct cb *c, int n, int repeat_first) {
        char name[16];
        int i;

        cb_head(c, 2 + (size_t)n + (repeat_first ? 1 : 0), "a", 1);
        for (i = 0; i < n; i++) {
                snprintf(name, sizeof(name), "f%d", i);
                cb_text(c, name);
                cb_uint(c, (uint64_t)i);
        }
        if (repeat_first) {
                cb_text(c, "f0");
                cb_uint(c, 100);
        }
}

static void test_cbor_too_many_fields(void) {
        static struct cb c;
        struct tg_reading r;
        int i;

        cb_with_fields(&c, 16, 0);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "16 fields");
        CU_ASSERT_EQUAL_FATAL(r.nfields, 16);
        for (i = 0; i < 16; i++)
                CU_ASSERT_TRUE(tg_same_bits(r.fields[i].value, i));
        cb_with_fields(&c, 17, 0);
        EXPECT_CBOR(TG_DECODE_TOO_MANY_FIELDS, &c, "17 fields");
        cb_with_fields(&c, 16, 1);
        EXPECT_CBOR(TG_DECODE_DUPLICATE_MEMBER, &c, "16 fields + a repeat");
}

static void test_cbor_bad_field_name(void) {
        static struct cb c;
        struct tg_reading r;

        cb_head(&c, 3, "a", 1);
        cb_textn(&c, rep('n', 32), 32);
        cb_double(&c, 2.0);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "32-byte name");
        CU_ASSERT_EQUAL(r.fields[0].name_len, 32);
        EXPECT_FIELD(&r, rep('n', 32), 2.0);
        cb_head(&c, 3, "a", 1);
        cb_textn(&c, rep('n', 33), 33);
        cb_double(&c, 2.0);
        EXPECT_CBOR(TG_DECODE_BAD_FIELD_NAME, &c, "33-byte name");
        cb_head(&c, 3, "a", 1);
        cb_text(&c, "");
        cb_uint(&c, 2);
        EXPECT_CBOR(TG_DECODE_BAD_FIELD_NAME, &c, "empty name");
        /* a long name of a non-numeric member is ignored */
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 2);
        cb_textn(&c, rep('n', 33), 33);
        cb_text(&c, "text");
        EXPECT_CBOR(TG_DECODE_OK, &c, "33-byte name of a text member");
}

static void test_cbor_non_finite(void) {
        static struct cb c;
        static const struct {
                const char *what;
                uint8_t raw[9];
                size_t len;
        } bad[] = {
                {"double NaN", {0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}, 9},
                {"double +Inf", {0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, 9},
                {"double -Inf", {0xfb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}, 9},
                {"single NaN", {0xfa, 0x7f, 0xc0, 0, 0}, 5},
                {"single +Inf", {0xfa, 0x7f, 0x80, 0, 0}, 5},
                {"single -Inf", {0xfa, 0xff, 0x80, 0, 0}, 5},
                {"half NaN", {0xf9, 0x7e, 0x00}, 3},
                {"half NaN with payload", {0xf9, 0x7c, 0x01}, 3},
                {"half +Inf", {0xf9, 0x7c, 0x00}, 3},
                {"half -Inf", {0xf9, 0xfc, 0x00}, 3},
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                cb_with_value(&c, "v", bad[i].raw, bad[i].len);
                EXPECT_CBOR(TG_DECODE_NON_FINITE, &c, bad[i].what);
        }
        /* through libcbor's encoder as well */
        cb_head(&c, 3, "a", 1);
        cb_text(&c, "v");
        cb_double(&c, -INFINITY);
        EXPECT_CBOR(TG_DECODE_NON_FINITE, &c, "encoded -Inf");
        cb_head(&c, 3, "a", 1);
        cb_text(&c, "v");
        cb_single(&c, NAN);
        EXPECT_CBOR(TG_DECODE_NON_FINITE, &c, "encoded single NaN");
}

static void test_cbor_too_large(void) {
        static struct cb c;
        struct tg_reading r;
        size_t head, pad;

        /* {"sensor":"a","ts":1,"x":1,"pad":"yyy..."} of exactly N bytes */
        cb_head(&c, 4, "a", 1);
        cb_text(&c, "x");
        cb_uint(&c, 1);
        cb_text(&c, "pad");
        head = c.n;
        pad = TG_PAYLOAD_MAX - head - 3; /* 0x79 + 2-byte length */
        cb_add(&c, cbor_encode_string_start(pad, ROOM(&c)));
        CU_ASSERT_EQUAL_FATAL(c.n, head + 3);
        memset(c.b + c.n, 'y', pad);
        c.n += pad;
        CU_ASSERT_EQUAL_FATAL(c.n, TG_PAYLOAD_MAX);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "CBOR of exactly 64 KiB");
        CU_ASSERT_EQUAL(r.nfields, 1);

        c.n = head;
        cb_add(&c, cbor_encode_string_start(pad + 1, ROOM(&c)));
        memset(c.b + c.n, 'y', pad + 1);
        c.n += pad + 1;
        CU_ASSERT_EQUAL_FATAL(c.n, TG_PAYLOAD_MAX + 1);
        EXPECT_CBOR(TG_DECODE_TOO_LARGE, &c, "CBOR of 64 KiB + 1");
        EXPECT_ERR(TG_DECODE_TOO_LARGE, decode_exact(TG_FORMAT_AUTO, c.b, c.n, &r),
                   "CBOR of 64 KiB + 1, auto");
}

/* {"sensor":"a","ts":1,"x":1,"deep": <depth nested containers around 0>} */
static void cb_nested(struct cb *c, int depth, int kind) {
        int i;

        cb_head(c, 4, "a", 1);
        cb_text(c, "x");
        cb_uint(c, 1);
        cb_text(c, "deep");
        for (i = 0; i < depth; i++) {
                if (kind == 0) {
                        cb_array(c, 1);
                } else if (kind == 1) {
                        cb_array_indef(c);
                } else {
                        cb_map(c, 1);
                        cb_text(c, "k");
                }
        }
        cb_uint(c, 0);
        if (kind == 1)
                for (i = 0; i < depth; i++)
                        cb_break(c);
}

static void test_cbor_too_deep(void) {
        static struct cb c;
        static const char *const kinds[] = {"arrays", "indefinite arrays", "maps"};
        struct tg_reading r;
        char what[64];
        int kind;

        for (kind = 0; kind < 3; kind++) {
                cb_nested(&c, 15, kind);
                snprintf(what, sizeof(what), "%s 15 deep", kinds[kind]);
                EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), what);
                CU_ASSERT_EQUAL(r.nfields, 1);
                cb_nested(&c, 17, kind);
                snprintf(what, sizeof(what), "%s 17 deep", kinds[kind]);
                EXPECT_CBOR(TG_DECODE_TOO_DEEP, &c, what);
                cb_nested(&c, 5000, kind);
                snprintf(what, sizeof(what), "%s 5000 deep", kinds[kind]);
                EXPECT_CBOR(TG_DECODE_TOO_DEEP, &c, what);
        }
}

static void test_cbor_device_variants(void) {
        static struct cb c;
        struct tg_reading r;
        /* half-precision: 1.5, smallest subnormal 2^-24, largest 65504, -0.0 */
        static const uint8_t half_1_5[] = {0xf9, 0x3e, 0x00};
        static const uint8_t half_tiny[] = {0xf9, 0x00, 0x01};
        static const uint8_t half_max[] = {0xf9, 0x7b, 0xff};
        static const uint8_t half_neg0[] = {0xf9, 0x80, 0x00};
        /* uint 5 in the 8-byte form: valid, if not preferred, CBOR */
        static const uint8_t long_five[] = {0x1b, 0, 0, 0, 0, 0, 0, 0, 5};
        /* "note": indefinite text "ab" "cd" */
        static const uint8_t indef_text[] = {0x7f, 0x62, 'a', 'b', 0x62, 'c', 'd', 0xff};
        /* "blob": indefinite bytes */
        static const uint8_t indef_bytes[] = {0x5f, 0x41, 0x01, 0x42, 0x02, 0x03, 0xff};

        /* indefinite-length map, fields before the id and timestamp */
        c.n = 0;
        cb_map_indef(&c);
        cb_text(&c, "t");
        cb_single(&c, 21.5f);
        cb_text(&c, "sensor");
        cb_text(&c, "dev-7");
        cb_text(&c, "ts");
        cb_uint(&c, 1732530000123ULL);
        cb_text(&c, "h");
        cb_raw(&c, half_1_5, sizeof(half_1_5));
        cb_break(&c);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "indefinite map");
        CU_ASSERT_STRING_EQUAL(r.sensor, "dev-7");
        CU_ASSERT_EQUAL(r.ts_ms, INT64_C(1732530000123));
        CU_ASSERT_EQUAL(r.nfields, 2);
        EXPECT_FIELD(&r, "t", 21.5);
        EXPECT_FIELD(&r, "h", 1.5);

        /* every integer width, both signs, and floats of every width */
        c.n = 0;
        cb_map(&c, 2 + 16);
        cb_text(&c, "sensor");
        cb_text(&c, "ints");
        cb_text(&c, "ts");
        cb_add(&c, cbor_encode_uint64(1000, ROOM(&c)));
        cb_text(&c, "u0");
        cb_add(&c, cbor_encode_uint8(23, ROOM(&c))); /* immediate */
        cb_text(&c, "u8");
        cb_add(&c, cbor_encode_uint8(255, ROOM(&c)));
        cb_text(&c, "u16");
        cb_add(&c, cbor_encode_uint16(65535, ROOM(&c)));
        cb_text(&c, "u32");
        cb_add(&c, cbor_encode_uint32(4294967295u, ROOM(&c)));
        cb_text(&c, "u64");
        cb_add(&c, cbor_encode_uint64(9007199254740993ULL, ROOM(&c)));
        cb_text(&c, "umax");
        cb_add(&c, cbor_encode_uint64(UINT64_MAX, ROOM(&c)));
        cb_text(&c, "n0");
        cb_add(&c, cbor_encode_negint8(0, ROOM(&c))); /* -1 */
        cb_text(&c, "n8");
        cb_add(&c, cbor_encode_negint8(255, ROOM(&c))); /* -256 */
        cb_text(&c, "n16");
        cb_add(&c, cbor_encode_negint16(65535, ROOM(&c))); /* -65536 */
        cb_text(&c, "n32");
        cb_add(&c, cbor_encode_negint32(4294967295u, ROOM(&c))); /* -2^32 */
        cb_text(&c, "n64");
        cb_add(&c, cbor_encode_negint64(UINT64_MAX, ROOM(&c))); /* -2^64 */
        cb_text(&c, "long5");
        cb_raw(&c, long_five, sizeof(long_five));
        cb_text(&c, "f32");
        cb_single(&c, 0.1f);
        cb_text(&c, "htiny");
        cb_raw(&c, half_tiny, sizeof(half_tiny));
        cb_text(&c, "hmax");
        cb_raw(&c, half_max, sizeof(half_max));
        cb_text(&c, "hneg0");
        cb_raw(&c, half_neg0, sizeof(half_neg0));
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "integer and float widths");
        CU_ASSERT_EQUAL(r.ts_ms, 1000);
        CU_ASSERT_EQUAL(r.nfields, 16);
        EXPECT_FIELD(&r, "u0", 23.0);
        EXPECT_FIELD(&r, "u8", 255.0);
        EXPECT_FIELD(&r, "u16", 65535.0);
        EXPECT_FIELD(&r, "u32", 4294967295.0);
        EXPECT_FIELD(&r, "u64", (double)9007199254740993ULL);
        EXPECT_FIELD(&r, "umax", 18446744073709551616.0);
        EXPECT_FIELD(&r, "n0", -1.0);
        EXPECT_FIELD(&r, "n8", -256.0);
        EXPECT_FIELD(&r, "n16", -65536.0);
        EXPECT_FIELD(&r, "n32", -4294967296.0);
        EXPECT_FIELD(&r, "n64", -18446744073709551616.0);
        EXPECT_FIELD(&r, "long5", 5.0);
        EXPECT_FIELD(&r, "f32", (double)0.1f);
        EXPECT_FIELD(&r, "htiny", 5.9604644775390625e-08);
        EXPECT_FIELD(&r, "hmax", 65504.0);
        EXPECT_FIELD(&r, "hneg0", -0.0);

        /* self-described CBOR (tag 55799), through auto detection too */
        c.n = 0;
        cb_tag(&c, 55799);
        {
                static struct cb s;

                cb_sim(&s);
                cb_raw(&c, s.b, s.n);
        }
        CU_ASSERT_EQUAL(c.b[0], 0xd9);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "tag 55799 prefix");
        expect_sim_reading(&r, __LINE__);
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, c.b, c.n, &r),
                   "tag 55799 prefix, auto");
        expect_sim_reading(&r, __LINE__);

        /* values the decoder skips, of every container kind */
        cb_head(&c, 12, "skip", 5);
        cb_text(&c, "arr");
        cb_array(&c, 3);
        cb_uint(&c, 1);
        cb_double(&c, 2.5);
        cb_text(&c, "x");
        cb_text(&c, "note");
        cb_raw(&c, indef_text, sizeof(indef_text));
        cb_text(&c, "blob");
        cb_raw(&c, indef_bytes, sizeof(indef_bytes));
        cb_text(&c, "bytes");
        cb_bytes(&c, "\x00\x01", 2);
        cb_text(&c, "meta");
        cb_map(&c, 3);
        cb_text(&c, "sensor");
        cb_text(&c, "other");
        cb_text(&c, "ts");
        cb_uint(&c, 99);
        cb_text(&c, "inner");
        cb_uint(&c, 7);
        cb_text(&c, "list");
        cb_array_indef(&c);
        cb_map_indef(&c);
        cb_text(&c, "k");
        cb_array(&c, 0);
        cb_break(&c);
        cb_uint(&c, 1);
        cb_break(&c);
        cb_text(&c, "flag");
        cb_bool(&c, 1);
        cb_text(&c, "none");
        cb_null(&c);
        cb_text(&c, "undef");
        cb_undef(&c);
        cb_text(&c, "value");
        cb_double(&c, -3.25);
        EXPECT_ERR(TG_DECODE_OK, cbor(&c, &r), "skipped values");
        CU_ASSERT_STRING_EQUAL(r.sensor, "skip");
        CU_ASSERT_EQUAL(r.ts_ms, 5);
        CU_ASSERT_EQUAL(r.nfields, 1);
        EXPECT_FIELD(&r, "value", -3.25);
        CU_ASSERT_PTR_NULL(field(&r, "inner"));
}

/* --- CBOR encoding and round trips --------------------------------------- */

static void test_cbor_round_trip(void) {
        static const double values[] = {
                0.0, -0.0, 1e-310, 1.7976931348623157e308, -1.7976931348623157e308,
                DBL_MIN, 4.9406564584124654e-324, 0.1, -1.5, 1e300,
                9007199254740992.0, 9007199254740994.0, 123456789.123, M_PI,
                -1e-5, 21.5,
        };
        /* every width of CBOR integer head within the range */
        static const int64_t stamps[] = {
                1, 2, TG_TS_MAX, TG_TS_MAX - 1, INT64_C(1732530000123), 23, 24,
                255, 256, 65535, 65536, INT64_C(4294967295), INT64_C(4294967296),
        };
        static const char *const ids[] = {
                "node-0001", "a", "with \"quote\" \\ and\ttab", "caf\xc3\xa9",
        };
        uint8_t buf[4096];
        struct tg_reading in, out;
        enum tg_decode_err e;
        size_t i, n;
        char name[40];

        for (i = 0; i < sizeof(stamps) / sizeof(*stamps); i++) {
                const char *id = ids[i % (sizeof(ids) / sizeof(*ids))];
                size_t j;

                make_reading(&in, id, strlen(id), stamps[i]);
                for (j = 0; j < sizeof(values) / sizeof(*values); j++) {
                        /* names of every length up to 32 */
                        snprintf(name, sizeof(name), "%s%02zu", rep('v', 2 * j), j);
                        add(&in, name, values[(i + j) % (sizeof(values) / sizeof(*values))]);
                }
                CU_ASSERT_EQUAL(in.nfields, 16);
                n = tg_encode_cbor(&in, buf, sizeof(buf));
                CU_ASSERT_FATAL(n > 0);
                memset(&out, 0x5a, sizeof(out));
                EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_CBOR, buf, n, &out),
                           "round trip");
                EXPECT_SAME_READING(&out, &in);
                memset(&out, 0x5a, sizeof(out));
                EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, buf, n, &out),
                           "round trip, auto");
                EXPECT_SAME_READING(&out, &in);
        }
        /* -0.0 keeps its sign */
        make_reading(&in, "z", 1, 1);
        add(&in, "neg0", -0.0);
        n = tg_encode_cbor(&in, buf, sizeof(buf));
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_CBOR, buf, n, &out), "-0.0");
        CU_ASSERT_TRUE(signbit(out.fields[0].value));

        /* the longest id, a NUL byte in it, and random readings */
        make_reading(&in, rep('i', 64), 64, TG_TS_MAX);
        add(&in, rep('n', 32), 1.0);
        n = tg_encode_cbor(&in, buf, sizeof(buf));
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_CBOR, buf, n, &out), "64/32");
        EXPECT_SAME_READING(&out, &in);
        /* an id with a NUL byte cannot be set at all */
        tg_reading_clear(&in);
        CU_ASSERT_EQUAL(tg_reading_set_sensor(&in, "a\0b", 3), -EINVAL);

        for (i = 0; i < 20000; i++) {
                char id[TG_SENSOR_ID_MAX];
                size_t idlen = 1 + rng() % TG_SENSOR_ID_MAX;
                int nf = 1 + (int)(rng() % TG_READING_FIELDS_MAX), f, rc;

                tg_random_text(rng, id, idlen);
                make_reading(&in, id, idlen, random_ts());
                for (f = 0; f < nf; f++) {
                        size_t nlen = 1 + rng() % TG_FIELD_NAME_MAX;

                        do /* the id and timestamp members are no field names */
                                tg_random_text(rng, name, nlen);
                        while ((nlen == 2 && !memcmp(name, "ts", 2)) ||
                               (nlen == 6 && !memcmp(name, "sensor", 6)));
                        /* a short random name may come twice: kept once */
                        rc = tg_reading_add_field(&in, name, nlen, random_finite_double());
                        CU_ASSERT_FATAL(rc == 0 || rc == -EEXIST);
                }
                n = tg_encode_cbor(&in, buf, sizeof(buf));
                e = n ? decode_exact(TG_FORMAT_AUTO, buf, n, &out) : TG_DECODE_TOO_LARGE;
                if (e != TG_DECODE_OK) {
                        tg_check(0, __LINE__, "random reading %zu did not round trip: %s", i,
                                 n ? tg_decode_err_name(e) : "not encoded");
                        break;
                }
                EXPECT_SAME_READING(&out, &in);
        }
        CU_ASSERT_EQUAL(i, 20000);
}

static void test_cbor_encode_small_buffer(void) {
        uint8_t buf[4096 + 8];
        struct tg_reading in;
        size_t need, cap, k;
        int i;

        make_reading(&in, rep('i', 64), 64, INT64_MIN);
        for (i = 0; i < TG_READING_FIELDS_MAX; i++) {
                char name[40];

                snprintf(name, sizeof(name), "%s%d", rep('n', 29), i);
                add(&in, name, i * 0.5);
        }
        need = tg_encode_cbor(&in, buf, sizeof(buf));
        CU_ASSERT_FATAL(need > 0);
        for (cap = 0; cap < need; cap++) {
                int guard_ok = 1;

                memset(buf, 0xa5, sizeof(buf));
                if (tg_encode_cbor(&in, buf, cap) != 0) {
                        tg_check(0, __LINE__, "cap %zu of %zu: not 0", cap, need);
                        break;
                }
                for (k = cap; k < sizeof(buf); k++)
                        guard_ok &= buf[k] == 0xa5;
                if (!guard_ok) {
                        tg_check(0, __LINE__, "cap %zu: wrote past the cap", cap);
                        break;
                }
        }
        CU_ASSERT_EQUAL(cap, need);
        memset(buf, 0xa5, sizeof(buf));
        CU_ASSERT_EQUAL(tg_encode_cbor(&in, buf, need), need);
        CU_ASSERT_EQUAL(buf[need], 0xa5);
}

static void test_auto_detection(void) {
        static struct cb c;
        struct tg_reading r;
        char *p;

        /* CBOR, definite and indefinite map: chosen as CBOR (the same bytes
         * are not JSON) */
        cb_sim(&c);
        EXPECT_ERR(TG_DECODE_NOT_DECODABLE, decode_exact(TG_FORMAT_JSON, c.b, c.n, &r),
                   "CBOR fed to the JSON decoder");
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, c.b, c.n, &r), "auto CBOR");
        expect_sim_reading(&r, __LINE__);
        c.n = 0;
        cb_map_indef(&c);
        cb_text(&c, "sensor");
        cb_text(&c, "node-0001");
        cb_text(&c, "ts");
        cb_uint(&c, 1732530000123ULL);
        cb_text(&c, "temperature");
        cb_double(&c, 21.5);
        cb_text(&c, "humidity");
        cb_uint(&c, 40);
        cb_text(&c, "pressure");
        cb_double(&c, 1013.25);
        cb_break(&c);
        CU_ASSERT_EQUAL(c.b[0], 0xbf);
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, c.b, c.n, &r),
                   "auto indefinite CBOR map");
        expect_sim_reading(&r, __LINE__);

        /* JSON, also after leading white space: chosen as JSON (the same
         * bytes are not CBOR) */
        EXPECT_ERR(TG_DECODE_NOT_DECODABLE,
                   decode_exact(TG_FORMAT_CBOR, SIM_JSON, strlen(SIM_JSON), &r),
                   "JSON fed to the CBOR decoder");
        p = (char *)jf(" \t\r\n%s", SIM_JSON);
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, p, strlen(p), &r),
                   "auto JSON with leading white space");
        expect_sim_reading(&r, __LINE__);
        EXPECT_ERR(TG_DECODE_OK, decode_exact(TG_FORMAT_AUTO, SIM_JSON,
                                              strlen(SIM_JSON), &r), "auto JSON");
        expect_sim_reading(&r, __LINE__);

        EXPECT_ERR(TG_DECODE_NOT_DECODABLE, decode_exact(TG_FORMAT_AUTO, "", 0, &r),
                   "auto, empty payload");
        EXPECT_ERR(TG_DECODE_WRONG_TYPE, decode_exact(TG_FORMAT_AUTO, "[1]", 3, &r),
                   "auto, JSON array");
}

/* --- JSON encoding ------------------------------------------------------- */

static void test_json_encode_exact(void) {
        char buf[1024];
        struct tg_reading in, out;
        size_t n;

        make_reading(&in, "a", 1, 1);
        add(&in, "x", 1.5);
        n = tg_encode_json(&in, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "{\"sensor\":\"a\",\"ts\":1,\"x\":1.5}");
        CU_ASSERT_EQUAL(n, strlen(buf));
        n = tg_encode_raw_record(&in, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "{\"sensor\":\"a\",\"ts\":1,\"fields\":{\"x\":1.5}}");
        CU_ASSERT_EQUAL(n, strlen(buf));

        make_reading(&in, "node-0001", 9, 1732530000123LL);
        add(&in, "temperature", 21.5);
        add(&in, "humidity", 40);
        add(&in, "pressure", 1013.25);
        n = tg_encode_json(&in, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, SIM_JSON);
        CU_ASSERT_EQUAL(n, strlen(SIM_JSON));
        EXPECT_ERR(TG_DECODE_OK, json(buf, &out), buf);
        EXPECT_SAME_READING(&out, &in);

        make_reading(&in, "m", 1, INT64_MIN);
        add(&in, "x", -0.0);
        n = tg_encode_json(&in, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "{\"sensor\":\"m\",\"ts\":-9223372036854775808,\"x\":-0}");
        CU_ASSERT_EQUAL(n, strlen(buf));
}

/* The raw record parsed by cJSON: exactly sensor, ts and fields. */
static void expect_raw_record(const char *text, const struct tg_reading *in, int line) {
        cJSON *root = cJSON_Parse(text), *it, *fields;
        int ok = root && cJSON_IsObject(root) && cJSON_GetArraySize(root) == 3;
        uint16_t i;

        if (ok) {
                it = cJSON_GetObjectItemCaseSensitive(root, "sensor");
                ok = cJSON_IsString(it) && strlen(it->valuestring) == in->sensor_len &&
                     !memcmp(it->valuestring, in->sensor, in->sensor_len);
        }
        if (ok) {
                it = cJSON_GetObjectItemCaseSensitive(root, "ts");
                ok = cJSON_IsNumber(it) && it->valuedouble == (double)in->ts_ms;
        }
        fields = ok ? cJSON_GetObjectItemCaseSensitive(root, "fields") : NULL;
        ok = ok && cJSON_IsObject(fields) && cJSON_GetArraySize(fields) == in->nfields;
        for (i = 0, it = ok ? fields->child : NULL; ok && i < in->nfields;
             i++, it = it->next)
                ok = it && cJSON_IsNumber(it) &&
                     strlen(it->string) == in->fields[i].name_len &&
                     !memcmp(it->string, in->fields[i].name, in->fields[i].name_len) &&
                     tg_same_bits(it->valuedouble, in->fields[i].value);
        tg_check(ok, line, "raw record does not parse back: %.300s", text);
        cJSON_Delete(root);
}

static void test_json_encode_round_trip(void) {
        char buf[4096];
        struct tg_reading in, out;
        int i, f;

        for (i = 0; i < 20000; i++) {
                int nf = 1 + (int)(rng() % TG_READING_FIELDS_MAX);
                char id[16];
                int64_t ts = random_ts();

                snprintf(id, sizeof(id), "s%d", i);
                make_reading(&in, id, strlen(id), ts);
                for (f = 0; f < nf; f++) {
                        char name[16];

                        snprintf(name, sizeof(name), "f%d", f);
                        add(&in, name, random_finite_double());
                }
                if (!tg_encode_json(&in, buf, sizeof(buf)) ||
                    json(buf, &out) != TG_DECODE_OK) {
                        tg_check(0, __LINE__, "flat JSON does not decode: %.300s", buf);
                        break;
                }
                EXPECT_SAME_READING(&out, &in);
                if (!tg_encode_raw_record(&in, buf, sizeof(buf))) {
                        tg_check(0, __LINE__, "raw record did not fit");
                        break;
                }
                if (i < 2000)
                        expect_raw_record(buf, &in, __LINE__);
        }
        CU_ASSERT_EQUAL(i, 20000);
}

static void test_json_escaping(void) {
        /* quote, backslash, control bytes, DEL and UTF-8 pass through */
        static const char in_s[] = "a\"b\\c\n\x01\x1f\x7f\xc3\xa9/";
        static const char want[] =
                "\"a\\\"b\\\\c\\u000a\\u0001\\u001f\x7f\xc3\xa9/\"";
        char buf[256];
        size_t n;
        struct tg_reading in, out;
        static const char id[] = "id \"q\" \\ \t\r\n\x01\x1f end";
        static const char fname[] = "f\"\\\x02";

        n = tg_json_put_string(buf, sizeof(buf), in_s, strlen(in_s));
        CU_ASSERT_STRING_EQUAL(buf, want);
        CU_ASSERT_EQUAL(n, strlen(want));
        n = tg_json_put_string(buf, sizeof(buf), "a\0b", 3);
        CU_ASSERT_STRING_EQUAL(buf, "\"a\\u0000b\"");
        CU_ASSERT_EQUAL(n, 10);
        n = tg_json_put_string(buf, sizeof(buf), "", 0);
        CU_ASSERT_STRING_EQUAL(buf, "\"\"");
        CU_ASSERT_EQUAL(n, 2);

        make_reading(&in, id, strlen(id), 42);
        add(&in, fname, 3.5);
        add(&in, "plain", -1.0);
        CU_ASSERT_FATAL(tg_encode_json(&in, buf, sizeof(buf)) > 0);
        CU_ASSERT_PTR_NULL(strchr(buf, '\n')); /* raw control bytes never appear */
        CU_ASSERT_PTR_NULL(strchr(buf, '\x01'));
        EXPECT_ERR(TG_DECODE_OK, json(buf, &out), buf);
        EXPECT_SAME_READING(&out, &in);
        CU_ASSERT_FATAL(tg_encode_raw_record(&in, buf, sizeof(buf)) > 0);
        expect_raw_record(buf, &in, __LINE__);
}

/* A reading with no fields cannot come out of a decoder, but the encoders
 * take any reading: the text must still be JSON. */
static void test_json_encode_no_fields(void) {
        char buf[256];
        struct tg_reading in;
        cJSON *root;

        make_reading(&in, "a", 1, 1);
        CU_ASSERT_FATAL(tg_encode_raw_record(&in, buf, sizeof(buf)) > 0);
        CU_ASSERT_STRING_EQUAL(buf, "{\"sensor\":\"a\",\"ts\":1,\"fields\":{}}");
        CU_ASSERT_FATAL(tg_encode_json(&in, buf, sizeof(buf)) > 0);
        root = cJSON_Parse(buf);
        tg_check(root != NULL, __LINE__, "flat JSON of a reading without fields is "
                 "not JSON: %s", buf);
        cJSON_Delete(root);
}

static void test_put_double_random(void) {
        char buf[64];
        int i, bad = 0, tested = 0;

        for (i = 0; i < 100000; i++) {
                double v = random_finite_double(), back;
                size_t n = tg_json_put_double(buf, sizeof(buf), v);

                back = strtod(buf, NULL);
                if (!n || n != strlen(buf) || !tg_is_json_number(buf) ||
                    !tg_same_bits(back, v)) {
                        if (bad++ < 5)
                                tg_check(0, __LINE__, "%a printed as '%s' (n %zu), reads %a",
                                         v, buf, n, back);
                }
                tested++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(tested, 100000);
}

static void test_put_double_special(void) {
        static const struct {
                double v;
                const char *text; /* NULL: only the round trip is checked */
        } cases[] = {
                {0.0, "0"},
                {-0.0, "-0"},
                {1.5, "1.5"},
                {21.5, "21.5"},
                {1013.25, "1013.25"},
                {0.1, "0.1"},
                {-40, "-40"},
                {1e21, "1e+21"},
                {0.30000000000000004, "0.30000000000000004"},
                {1.7976931348623157e308, "1.7976931348623157e+308"},
                {4.9406564584124654e-324, NULL},
                {1e-310, NULL},
                {2.2250738585072014e-308, NULL},
                {9007199254740993.0, NULL},
                {123456789012345680.0, NULL},
        };
        char buf[64];
        size_t i, n;

        for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                double back;

                n = tg_json_put_double(buf, sizeof(buf), cases[i].v);
                back = strtod(buf, NULL);
                tg_check(n == strlen(buf) && tg_is_json_number(buf) &&
                         tg_same_bits(back, cases[i].v) &&
                         (!cases[i].text || !strcmp(buf, cases[i].text)), __LINE__,
                         "%a printed as '%s'", cases[i].v, buf);
        }
        n = tg_json_put_double(buf, sizeof(buf), NAN);
        CU_ASSERT_STRING_EQUAL(buf, "null");
        CU_ASSERT_EQUAL(n, 4);
        n = tg_json_put_double(buf, sizeof(buf), -NAN);
        CU_ASSERT_STRING_EQUAL(buf, "null");
        CU_ASSERT_EQUAL(n, 4);
        n = tg_json_put_double(buf, sizeof(buf), INFINITY);
        CU_ASSERT_STRING_EQUAL(buf, "null");
        CU_ASSERT_EQUAL(n, 4);
        n = tg_json_put_double(buf, sizeof(buf), -INFINITY);
        CU_ASSERT_STRING_EQUAL(buf, "null");
        CU_ASSERT_EQUAL(n, 4);
}

/* @p fn with every cap from 0 to @p need (the text length, excluding the
 * NUL) must return 0 and write nothing at or past the cap; need + 1 fits. */
typedef size_t (*text_writer)(char *buf, size_t cap, const void *arg);

static void expect_small_caps(text_writer fn, const void *arg, const char *what,
                              int line) {
        static char buf[8192];
        char want[8192];
        size_t need, cap, k;
        int ok = 1;

        need = fn(want, sizeof(want), arg);
        tg_check(need > 0 && need == strlen(want), line, "%s: %zu", what, need);
        for (cap = 0; ok && cap <= need; cap++) {
                memset(buf, 0xa5, sizeof(buf));
                if (fn(buf, cap, arg) != 0) {
                        tg_check(0, line, "%s: cap %zu of %zu did not return 0", what, cap,
                                 need);
                        ok = 0;
                }
                for (k = cap; ok && k < sizeof(buf); k++)
                        if ((unsigned char)buf[k] != 0xa5) {
                                tg_check(0, line, "%s: cap %zu wrote at %zu", what, cap, k);
                                ok = 0;
                        }
        }
        if (ok) {
                memset(buf, 0xa5, sizeof(buf));
                ok = fn(buf, need + 1, arg) == need && !strcmp(buf, want) &&
                     (unsigned char)buf[need + 1] == 0xa5;
                tg_check(ok, line, "%s: cap %zu (exact) failed", what, need + 1);
        }
        /* a heap buffer of exactly the cap, so ASan sees any overflow */
        for (cap = 0; cap <= need + 1; cap++) {
                char *h = malloc(cap ? cap : 1);

                CU_ASSERT_PTR_NOT_NULL_FATAL(h);
                CU_ASSERT_EQUAL(fn(h, cap, arg), cap == need + 1 ? need : 0);
                free(h);
        }
}

static size_t w_double(char *buf, size_t cap, const void *arg) {
        return tg_json_put_double(buf, cap, *(const double *)arg);
}

static size_t w_string(char *buf, size_t cap, const void *arg) {
        return tg_json_put_string(buf, cap, arg, strlen(arg));
}

static size_t w_json(char *buf, size_t cap, const void *arg) {
        return tg_encode_json(arg, buf, cap);
}

static size_t w_raw(char *buf, size_t cap, const void *arg) {
        return tg_encode_raw_record(arg, buf, cap);
}

static void test_small_buffers(void) {
        static const double doubles[] = {
                0.1, -1.7976931348623157e308, 4.9406564584124654e-324, 1.5, 0.0,
                0.30000000000000004, NAN, -INFINITY, 123456.0,
        };
        struct tg_reading r;
        size_t i;

        for (i = 0; i < sizeof(doubles) / sizeof(*doubles); i++)
                expect_small_caps(w_double, &doubles[i], "tg_json_put_double", __LINE__);
        expect_small_caps(w_string, "plain", "tg_json_put_string", __LINE__);
        expect_small_caps(w_string, "q\"\\\n\x01 end", "tg_json_put_string escapes",
                          __LINE__);
        expect_small_caps(w_string, "", "tg_json_put_string empty", __LINE__);

        make_reading(&r, "node\"0001\\", 10, -1732530000123LL);
        add(&r, "temperature", 21.5);
        add(&r, "tab\tname", 0.30000000000000004);
        add(&r, "pressure", -1.7976931348623157e308);
        expect_small_caps(w_json, &r, "tg_encode_json", __LINE__);
        expect_small_caps(w_raw, &r, "tg_encode_raw_record", __LINE__);
}

static void test_json_writer(void) {
        char buf[64];
        struct tg_jw w;

        tg_jw_init(&w, buf, sizeof(buf));
        tg_jw_raw(&w, "[");
        tg_jw_string(&w, "a\"", 2);
        tg_jw_raw(&w, ",");
        tg_jw_double(&w, 0.5);
        tg_jw_raw(&w, ",");
        tg_jw_int(&w, INT64_MIN);
        tg_jw_raw(&w, ",");
        tg_jw_int(&w, INT64_MAX);
        tg_jw_raw(&w, "]");
        CU_ASSERT_EQUAL(tg_jw_finish(&w), strlen(buf));
        CU_ASSERT_STRING_EQUAL(buf, "[\"a\\\"\",0.5,-9223372036854775808,9223372036854775807]");

        /* an overflow poisons the writer: later small writes do not help */
        tg_jw_init(&w, buf, 4);
        tg_jw_raw(&w, "abc");
        CU_ASSERT_EQUAL(tg_jw_finish(&w), 3);
        tg_jw_raw(&w, "d");
        CU_ASSERT_EQUAL(tg_jw_finish(&w), 0);
        tg_jw_raw(&w, "");
        CU_ASSERT_EQUAL(tg_jw_finish(&w), 0);
        tg_jw_init(&w, buf, 0);
        CU_ASSERT_EQUAL(tg_jw_finish(&w), 0);
        tg_jw_init(&w, buf, 3);
        tg_jw_double(&w, 1234.5);
        tg_jw_raw(&w, "");
        CU_ASSERT_EQUAL(tg_jw_finish(&w), 0);
        tg_jw_init(&w, buf, 3);
        tg_jw_string(&w, "ab", 2);
        CU_ASSERT_EQUAL(tg_jw_finish(&w), 0);
}

/* --- robustness ------------------------------------------------------------ */

static void expect_sane(enum tg_decode_err e, const struct tg_reading *r,
                        int *bad) {
        uint16_t i;
        int ok = (unsigned)e < TG_DECODE__COUNT;

        if (ok && e == TG_DECODE_OK) {
                ok = r->sensor_len >= 1 && r->sensor_len <= TG_SENSOR_ID_MAX &&
                     r->nfields >= 1 && r->nfields <= TG_READING_FIELDS_MAX;
                for (i = 0; ok && i < r->nfields; i++)
                        ok = r->fields[i].name_len >= 1 &&
                             r->fields[i].name_len <= TG_FIELD_NAME_MAX &&
                             isfinite(r->fields[i].value);
        }
        if (!ok)
                (*bad)++;
}

static void test_mutated_payloads(void) {
        static struct cb c;
        uint8_t buf[512];
        struct tg_reading r;
        int i, bad = 0, ok = 0, runs = 0;
        size_t jlen = strlen(SIM_JSON);

        cb_sim(&c);
        for (i = 0; i < 60000; i++) {
                int flips = 1 + (int)(rng() % 4), k;
                size_t len;
                enum tg_format fmt;
                enum tg_decode_err e;

                if (i % 3 == 0) {
                        len = c.n;
                        memcpy(buf, c.b, len);
                        fmt = TG_FORMAT_CBOR;
                } else if (i % 3 == 1) {
                        len = jlen;
                        memcpy(buf, SIM_JSON, len);
                        fmt = TG_FORMAT_JSON;
                } else {
                        len = rng() % 64;
                        for (k = 0; k < (int)len; k++)
                                buf[k] = (uint8_t)rng();
                        fmt = TG_FORMAT_AUTO;
                }
                for (k = 0; len && k < flips; k++)
                        buf[rng() % len] = (uint8_t)rng();
                if (len && rng() % 4 == 0)
                        len = rng() % len; /* and truncate */
                e = decode_exact(fmt, buf, len, &r);
                expect_sane(e, &r, &bad);
                ok += e == TG_DECODE_OK;
                runs++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(runs, 60000);
        CU_ASSERT(ok > 0); /* some mutations keep the payload valid */
}

/* --- the JSON fast path against cJSON alone ------------------------------ */

/* A random member value: mostly what devices send, sometimes what only
 * cJSON can decide (escapes, control bytes, containers, odd numbers). */
static void gen_value(char **o, const char *end) {
        static const char *const odd[] = {
                "\"a\\\"b\"", "\"t\\u0000x\"", "\"\x01\"", "[1,2]", "{\"x\":1}", "{}",
                "[]", "01", "1.", ".5", "+1", "-", "1e", "1e400", "-1e400", "0x10",
                "Infinity", "NaN", "nul", "tru", "true", "false", "null", "-0", "0e99999",
                "12345678901234567890123", "1.00000000000000000000001", "1e-400",
                "\"2026-11-25T10:00:00.123Z\"", "\"2026-13-25T10:00:00Z\"", "\"\"",
                "1730000000700", "1730000000.7", "-5", "4.5e3", "1E2", "9007199254740993",
                "0.00000000000000000000000000123", "\"node-0007\"", "\"\\u00e9\"",
                "1234567890123456789012345678901234567890123456789012345678901234567",
                /* exact, but longer than the 63 bytes cJSON hands to strtod */
                "0.00000000000000000000000000000000000000000000000000000000000000000",
                "2e000000000000000000000000000000000000000000000000000000000000001",
                "-1.5000000000000000e0000000000000000000000000000000000000000000000",
        };
        int kind = (int)(rng() % 10);

        if (kind < 4) {
                double v = (double)(rng() >> 11) / 9007199254740992.0 * 2000 - 1000;

                *o += snprintf(*o, (size_t)(end - *o), "%.*g", 1 + (int)(rng() % 17), v);
        } else if (kind < 5) {
                *o += snprintf(*o, (size_t)(end - *o), "%lld", (long long)(rng() >> (rng() % 64)));
        } else if (kind < 7) {
                *o += snprintf(*o, (size_t)(end - *o), "\"s%llu\"",
                               (unsigned long long)(rng() % 100000));
        } else {
                *o += snprintf(*o, (size_t)(end - *o), "%s", odd[rng() % (sizeof(odd) / sizeof(*odd))]);
        }
}

static void gen_ws(char **o, const char *end) {
        static const char *const ws[] = {" ", "\n  ", "\t", "\r\n"};
        static const char *const odd[] = {"\v", "\f", "\x01", " \x00"};
        unsigned k = (unsigned)(rng() % 400); /* mostly none; JSON's four; others */

        if (k < 40)
                *o += snprintf(*o, (size_t)(end - *o), "%s", ws[k % 4]);
        else if (k < 42)
                *o += snprintf(*o, (size_t)(end - *o), "%s", odd[k % 4]);
}

static size_t gen_object(char *buf, size_t cap) {
        static const char *const keys[] = {
                "sensor", "ts", "id", "time", "temperature", "humidity", "t", "f00", "f01",
                "x", "", "sensor", "ts", "a\\\"b", "k\\u0000", "\x7f", "\xc3\xa9t\xc3\xa9", "t\xc3", "\xed\xa0\x80",
                "0123456789012345678901234567890123", "pressure",
        };
        char *o = buf, *end = buf + cap - 64;
        int n = (int)(rng() % 8), i;

        if (rng() % 50 == 0)
                o += snprintf(o, (size_t)(end - o), "\xef\xbb\xbf");
        gen_ws(&o, end);
        *o++ = rng() % 100 ? '{' : '[';
        gen_ws(&o, end);
        if (rng() % 4) { /* most payloads have an id and a time to find */
                static const char *const ts[] = {"1730000000700", "1730000000700",
                                                 "1730000000.25",
                                                 "\"2026-11-25T10:00:00.123Z\""};

                o += snprintf(o, (size_t)(end - o), "\"%s\":\"node-%u\",\"%s\":%s",
                              rng() % 4 ? "sensor" : "id", (unsigned)(rng() % 100),
                              rng() % 4 ? "ts" : "time", ts[rng() % 4]);
                if (n)
                        *o++ = ',';
        }
        for (i = 0; i < n && o < end - 128; i++) {
                if (i) {
                        *o++ = rng() % 100 ? ',' : ';';
                        gen_ws(&o, end);
                }
                o += snprintf(o, (size_t)(end - o), "\"%s\"", keys[rng() % (sizeof(keys) / sizeof(*keys))]);
                gen_ws(&o, end);
                *o++ = rng() % 100 ? ':' : '=';
                gen_ws(&o, end);
                gen_value(&o, end);
                gen_ws(&o, end);
        }
        *o++ = rng() % 100 ? '}' : ']';
        gen_ws(&o, end);
        if (rng() % 50 == 0)
                o += snprintf(o, (size_t)(end - o), "%s", rng() & 1 ? "{}" : "x");
        return (size_t)(o - buf);
}

static int same_reading_bits(const struct tg_reading *a, const struct tg_reading *b) {
        uint16_t i;

        if (a->sensor_len != b->sensor_len || memcmp(a->sensor, b->sensor, a->sensor_len) ||
            a->ts_ms != b->ts_ms || a->ts_from_arrival != b->ts_from_arrival ||
            a->nfields != b->nfields)
                return 0;
        for (i = 0; i < a->nfields; i++)
                if (a->fields[i].name_len != b->fields[i].name_len ||
                    memcmp(a->fields[i].name, b->fields[i].name, a->fields[i].name_len) ||
                    !tg_same_bits(a->fields[i].value, b->fields[i].value))
                        return 0;
        return 1;
}

/*
 * tg_decode_json_ex() reads plain flat objects itself and leaves the rest
 * to cJSON: on every payload and mapping it must give what cJSON alone
 * gives (tg_decode_json_cjson_ex), the reading included, even the partial
 * one a refusal leaves. Generated objects of plain and odd members, then
 * byte mutations of them, under the mappings and limits a subscription can
 * set. The JSON fuzzer makes the same comparison.
 */
static void test_json_fast_path_agrees(void) {
        static const char *const keep[] = {"temperature", "t", "f00"};
        static const struct tg_decode_opts base[] = {
                {.id_key = "id", .ts_key = "time", .ts_unit = TG_TS_UNIT_S, .keep = keep,
                 .nkeep = 3, .max_payload = 1024, .max_depth = 4, .max_fields = 2,
                 .max_id = 8, .max_string = 12},
                {.id_key = "sensor", .sensor = "topic-id", .sensor_len = 8, .ts_key = "ts",
                 .ts_unit = TG_TS_UNIT_US, .ts_from_arrival = 1, .arrival_ms = 1732700000000LL},
                {.id_key = "sensor", .ts_key = "ts", .ts_unit = TG_TS_UNIT_RFC3339},
                {.id_key = "sensor", .ts_key = "ts", .max_depth = 0},
                {.id_key = NULL, .ts_key = NULL, .ts_from_arrival = 1},
        };
        struct tg_decode_opts opts[1 + sizeof(base) / sizeof(*base)];
        char buf[2048];
        struct tg_reading a, b;
        unsigned long i, bad = 0, ok = 0, runs = 0;
        size_t c;

        opts[0] = tg_decode_defaults;
        for (c = 0; c < sizeof(base) / sizeof(*base); c++) {
                opts[c + 1] = tg_decode_defaults;
                opts[c + 1].id_key = base[c].id_key;
                opts[c + 1].ts_key = base[c].ts_key;
                opts[c + 1].ts_unit = base[c].ts_unit;
                opts[c + 1].sensor = base[c].sensor;
                opts[c + 1].sensor_len = base[c].sensor_len;
                opts[c + 1].ts_from_arrival = base[c].ts_from_arrival;
                opts[c + 1].arrival_ms = base[c].arrival_ms;
                opts[c + 1].keep = base[c].keep;
                opts[c + 1].nkeep = base[c].nkeep;
                if (base[c].max_payload) {
                        opts[c + 1].max_payload = base[c].max_payload;
                        opts[c + 1].max_fields = base[c].max_fields;
                        opts[c + 1].max_id = base[c].max_id;
                        opts[c + 1].max_string = base[c].max_string;
                }
                if (c == 0 || c == 3)
                        opts[c + 1].max_depth = base[c].max_depth;
        }
        for (i = 0; i < 150000; i++) {
                size_t len = gen_object(buf, sizeof(buf)), k;

                if (i % 3 == 2) { /* byte mutations and truncation */
                        for (k = 1 + rng() % 3; len && k > 0; k--)
                                buf[rng() % len] = (char)rng();
                        if (len && rng() % 4 == 0)
                                len = rng() % len;
                }
                for (c = 0; c < sizeof(opts) / sizeof(*opts); c++) {
                        enum tg_decode_err ea, eb;

                        memset(&a, 0x5a, sizeof(a));
                        memset(&b, 0xa5, sizeof(b));
                        ea = tg_decode_json_ex(buf, len, &opts[c], &a);
                        eb = tg_decode_json_cjson_ex(buf, len, &opts[c], &b);
                        runs++;
                        ok += ea == TG_DECODE_OK;
                        if ((ea != eb || !same_reading_bits(&a, &b)) && bad++ < 5)
                                tg_check(0, __LINE__, "'%.*s' (mapping %zu): fast path %s, cJSON %s%s",
                                         (int)len, buf, c, tg_decode_err_name(ea),
                                         tg_decode_err_name(eb),
                                         ea == eb ? " (readings differ)" : "");
                }
        }
        tg_check(bad == 0, __LINE__, "%lu of %lu decodes differ", bad, runs);
        /* enough payloads are accepted to compare readings */
        tg_check(ok > runs / 50, __LINE__, "only %lu of %lu decodes accepted", ok, runs);
}

/* A random CBOR map: mostly flat maps of text keys and scalars, as
 * devices write, sometimes what only the general walk decides (tags,
 * containers, indefinite items, non-text keys, long strings). */
static void gen_cbor_map(struct cb *c) {
        static const char *const keys[] = {
                "sensor", "ts", "id", "time", "temperature", "humidity", "t", "f00",
                "f01", "x", "", "k\0z", "0123456789012345678901234567890123",
        };
        size_t n = rng() % 7, i;
        int indef = rng() % 20 == 0;

        c->n = 0;
        if (rng() % 30 == 0)
                cb_tag(c, 55799);
        if (indef)
                cb_map_indef(c);
        else
                cb_map(c, n + 2 + (rng() % 40 == 0)); /* sometimes one too many */
        cb_text(c, rng() % 4 ? "sensor" : "id");
        cb_text(c, rng() % 8 ? "node-7" : "");
        cb_text(c, rng() % 4 ? "ts" : "time");
        switch (rng() % 6) {
        case 0: cb_double(c, 1730000000.25); break;
        case 1: cb_text(c, "2026-11-25T10:00:00.123Z"); break;
        case 2: cb_negint(c, rng() % 1000); break;
        default: cb_uint(c, 1730000000700ULL); break;
        }
        for (i = 0; i < n; i++) {
                size_t k = rng() % (sizeof(keys) / sizeof(*keys));

                if (rng() % 40 == 0) {
                        cb_uint(c, 7); /* a key that is not text */
                } else if (rng() % 20 == 0) {
                        /* the length in a longer head than needed */
                        uint8_t h[3] = {0x79, 0, (uint8_t)strlen(keys[k])};

                        cb_raw(c, h, 3);
                        cb_raw(c, keys[k], strlen(keys[k]));
                } else {
                        cb_textn(c, keys[k], k == 11 ? 3 : strlen(keys[k]));
                }
                switch (rng() % 22) {
                case 0: cb_uint(c, rng() >> (rng() % 64)); break;
                case 1: cb_negint(c, rng() >> (rng() % 64)); break;
                case 2: cb_single(c, (float)(rng() % 1000) / 8); break;
                case 3: cb_double(c, rng() % 2 ? INFINITY : NAN); break;
                case 4: cb_text(c, "a string value"); break;
                case 5: cb_bytes(c, "\x01\x02", 2); break;
                case 6: cb_bool(c, 1); break;
                case 7: cb_null(c); break;
                case 8: cb_undef(c); break;
                case 9: cb_tag(c, 1); cb_uint(c, 5); break;
                case 10: cb_array(c, 1); cb_uint(c, 5); break;
                case 11: cb_map(c, 1); cb_text(c, "in"); cb_uint(c, 5); break;
                case 12: cb_array_indef(c); cb_break(c); break;
                case 13: { /* any half, subnormals, infinities and NaNs too */
                        uint64_t r = rng();
                        uint8_t h[3] = {0xf9, (uint8_t)(r >> 8), (uint8_t)r};

                        cb_raw(c, h, 3);
                        break;
                }
                case 14: { /* any single */
                        uint64_t r = rng();
                        uint8_t h[5] = {0xfa, (uint8_t)(r >> 24), (uint8_t)(r >> 16),
                                        (uint8_t)(r >> 8), (uint8_t)r};

                        cb_raw(c, h, 5);
                        break;
                }
                case 15: { /* an integer in a longer head than needed */
                        uint8_t h[9] = {(uint8_t)(rng() % 2 ? 0x1b : 0x3b), 0, 0, 0, 0,
                                        0, 0, 0, (uint8_t)rng()};

                        cb_raw(c, h, 9);
                        break;
                }
                case 16: { /* simple values: unassigned, two-byte, reserved heads */
                        static const uint8_t simple[][2] = {
                                {0xe0, 0}, {0xf3, 0}, {0xf8, 0x20}, {0xf8, 0x10},
                                {0xfc, 0}, {0x1c, 0}, {0x7f, 0}, {0xff, 0},
                        };
                        size_t w = rng() % 8;

                        cb_raw(c, simple[w], simple[w][0] == 0xf8 ? 2 : 1);
                        break;
                }
                default: cb_double(c, (double)(rng() >> 11) / 9007199254740992.0 * 100); break;
                }
        }
        if (indef)
                cb_break(c);
        if (rng() % 40 == 0)
                cb_uint(c, 0); /* trailing bytes */
}

/* The same comparison for CBOR: the fast path for flat maps against the
 * general walk alone (tg_decode_cbor_general_ex), on every payload and
 * mapping; the CBOR fuzzer makes it too. */
static void test_cbor_fast_path_agrees(void) {
        static const char *const keep[] = {"temperature", "t", "f00"};
        static struct cb c;
        struct tg_decode_opts opts[6];
        struct tg_reading a, b;
        unsigned long i, bad = 0, ok = 0, runs = 0;
        size_t m;

        for (m = 0; m < 6; m++)
                opts[m] = tg_decode_defaults;
        opts[1].id_key = "id";
        opts[1].ts_key = "time";
        opts[1].ts_unit = TG_TS_UNIT_S;
        opts[1].keep = keep;
        opts[1].nkeep = 3;
        opts[1].max_fields = 2;
        opts[1].max_id = 4;
        opts[1].max_string = 12;
        opts[1].max_depth = 1;
        opts[2].sensor = "topic-id";
        opts[2].sensor_len = 8;
        opts[2].ts_unit = TG_TS_UNIT_US;
        opts[2].ts_from_arrival = 1;
        opts[2].arrival_ms = 1732700000000LL;
        opts[3].ts_unit = TG_TS_UNIT_RFC3339;
        opts[4].max_depth = 0;
        opts[5].id_key = NULL;
        opts[5].ts_key = NULL;
        opts[5].ts_from_arrival = 1;
        for (i = 0; i < 150000; i++) {
                size_t len, k;

                gen_cbor_map(&c);
                len = c.n;
                if (i % 3 == 2) { /* byte mutations and truncation */
                        for (k = 1 + rng() % 3; len && k > 0; k--)
                                c.b[rng() % len] = (uint8_t)rng();
                        if (len && rng() % 4 == 0)
                                len = rng() % len;
                }
                for (m = 0; m < 6; m++) {
                        enum tg_decode_err ea, eb;

                        memset(&a, 0x5a, sizeof(a));
                        memset(&b, 0xa5, sizeof(b));
                        ea = tg_decode_cbor_ex(c.b, len, &opts[m], &a);
                        eb = tg_decode_cbor_general_ex(c.b, len, &opts[m], &b);
                        runs++;
                        ok += ea == TG_DECODE_OK;
                        if ((ea != eb || !same_reading_bits(&a, &b)) && bad++ < 5)
                                tg_check(0, __LINE__, "payload %lu (%zu bytes, mapping %zu): fast path %s, "
                                         "general %s%s", i, len, m, tg_decode_err_name(ea),
                                         tg_decode_err_name(eb), ea == eb ? " (readings differ)" : "");
                }
        }
        tg_check(bad == 0, __LINE__, "%lu of %lu decodes differ", bad, runs);
        tg_check(ok > runs / 50, __LINE__, "only %lu of %lu decodes accepted", ok, runs);
}

/* Each thread decodes its own payloads; the JSON arena is per thread. */
struct thread_job {
        int id, failures;
};

static void *decode_thread(void *arg) {
        struct thread_job *job = arg;
        char p[256], id[16];
        uint8_t cbuf[256];
        struct tg_reading in, out;
        int i;

        for (i = 0; i < 3000; i++) {
                size_t n;

                snprintf(id, sizeof(id), "t%d-%d", job->id, i);
                tg_reading_clear(&in);
                tg_reading_set_sensor(&in, id, strlen(id));
                in.ts_ms = i * 1000 + job->id + 1;
                tg_reading_add_field(&in, "v", 1, i + job->id / 10.0);
                tg_encode_json(&in, p, sizeof(p));
                if (tg_decode(TG_FORMAT_AUTO, p, strlen(p), &out) != TG_DECODE_OK ||
                    out.ts_ms != in.ts_ms || strcmp(out.sensor, id) ||
                    out.fields[0].value != in.fields[0].value)
                        job->failures++;
                n = tg_encode_cbor(&in, cbuf, sizeof(cbuf));
                if (tg_decode(TG_FORMAT_AUTO, cbuf, n, &out) != TG_DECODE_OK ||
                    out.ts_ms != in.ts_ms || strcmp(out.sensor, id))
                        job->failures++;
        }
        return NULL;
}

static void test_threads(void) {
        pthread_t th[4];
        struct thread_job jobs[4];
        int i;

        for (i = 0; i < 4; i++) {
                jobs[i].id = i;
                jobs[i].failures = 0;
                CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, decode_thread, &jobs[i]), 0);
        }
        for (i = 0; i < 4; i++) {
                CU_ASSERT_EQUAL(pthread_join(th[i], NULL), 0);
                CU_ASSERT_EQUAL(jobs[i].failures, 0);
        }
}

int main(void) {
        static const struct tg_test tests[] = {
                {"reading model bounds", test_reading_model},
                {"add_field refuses a repeated name", test_reading_add_field_refuses_repeats},
                {"JSON: a member given twice", test_json_duplicate_members},
                {"CBOR: a member given twice", test_cbor_duplicate_members},
                {"reason code names", test_reason_names},
                {"format names", test_format_parse},
                {"JSON: simulator shape", test_json_simulator_shape},
                {"JSON: non-numeric members ignored", test_json_ignores_non_numeric},
                {"JSON: not decodable (garbage, truncated, trailing)", test_json_not_decodable},
                {"JSON: wrong type", test_json_wrong_type},
                {"JSON: missing id", test_json_missing_id},
                {"text: UTF-8 without NUL", test_text_valid},
                {"text in payloads: invalid UTF-8, NUL", test_text_in_payloads},
                {"JSON: bad id", test_json_bad_id},
                {"JSON: missing ts", test_json_missing_ts},
                {"JSON: invalid ts", test_json_invalid_ts},
                {"JSON: no fields", test_json_no_fields},
                {"JSON: too many fields", test_json_too_many_fields},
                {"JSON: bad field name", test_json_bad_field_name},
                {"JSON: non-finite", test_json_non_finite},
                {"JSON: too large", test_json_too_large},
                {"JSON: too deep", test_json_too_deep},
                {"CBOR: simulator shape", test_cbor_simulator_shape},
                {"CBOR: not decodable", test_cbor_not_decodable},
                {"CBOR: wrong type", test_cbor_wrong_type},
                {"CBOR: missing id", test_cbor_missing_id},
                {"CBOR: bad id", test_cbor_bad_id},
                {"CBOR: missing ts", test_cbor_missing_ts},
                {"CBOR: invalid ts", test_cbor_invalid_ts},
                {"CBOR: no fields", test_cbor_no_fields},
                {"CBOR: too many fields", test_cbor_too_many_fields},
                {"CBOR: bad field name", test_cbor_bad_field_name},
                {"CBOR: non-finite", test_cbor_non_finite},
                {"CBOR: too large", test_cbor_too_large},
                {"CBOR: too deep", test_cbor_too_deep},
                {"CBOR: device variants", test_cbor_device_variants},
                {"CBOR: round trip", test_cbor_round_trip},
                {"CBOR: encode into small buffers", test_cbor_encode_small_buffer},
                {"auto detection", test_auto_detection},
                {"JSON encode: exact text", test_json_encode_exact},
                {"JSON encode: round trip", test_json_encode_round_trip},
                {"JSON encode: escaping", test_json_escaping},
                {"JSON encode: reading without fields", test_json_encode_no_fields},
                {"put_double: 100000 random doubles", test_put_double_random},
                {"put_double: special values", test_put_double_special},
                {"text writers: every too-small cap", test_small_buffers},
                {"JSON writer", test_json_writer},
                {"mutated payloads", test_mutated_payloads},
                {"JSON: fast path agrees with cJSON", test_json_fast_path_agrees},
                {"CBOR: fast path agrees with the general walk", test_cbor_fast_path_agrees},
                {"decoding on several threads", test_threads},
        };

        return TG_TEST_RUN("codec", tests);
}
