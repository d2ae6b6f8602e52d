/* test_senml.c - CUnit tests of the SenML codec: RFC 8428 examples, reason codes, mappings, time, round trips. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <cbor.h>
#include <cjson/cJSON.h>
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
#include "codec_senml.h"
#include "reading.h"
#include "tg_test.h"

/* --- helpers ------------------------------------------------------------ */

#define NOW_MS INT64_C(1700000000000)
#define CAP 32

static uint64_t rng_state = 0x53656e4d4cULL;

static uint64_t rng(void) {
        return tg_splitmix64(&rng_state);
}

static struct tg_senml_opts opts_of(enum tg_senml_names names) {
        struct tg_senml_opts o = {.names = names, .now_ms = NOW_MS,
                                  .max_string = 256};

        return o;
}

static const struct tg_senml_opts FIELD = {TG_SENML_NAME_IS_FIELD, NOW_MS, 256};
static const struct tg_senml_opts SENSOR = {TG_SENML_NAME_IS_SENSOR, NOW_MS, 256};

enum fmt { JSON, CBOR };

/* Decode from a heap copy of exactly @p len bytes, so ASan sees any read
 * past the end of the payload (MQTT payloads are not NUL-terminated). */
static enum tg_decode_err decode(enum fmt f, const void *p, size_t len,
                                 const struct tg_senml_opts *o,
                                 struct tg_reading *out, size_t cap, size_t *n) {
        unsigned char *copy = malloc(len ? len : 1);
        enum tg_decode_err e;

        CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
        if (len)
                memcpy(copy, p, len);
        e = f == JSON ? tg_decode_senml_json(copy, len, o, out, cap, n)
                      : tg_decode_senml_cbor(copy, len, o, out, cap, n);
        free(copy);
        return e;
}

static size_t hex_to_bytes(const char *hex, uint8_t *out, size_t cap) {
        size_t n = 0;
        unsigned v;

        while (*hex) {
                if (*hex == ' ' || *hex == '\n') {
                        hex++;
                        continue;
                }
                CU_ASSERT_FATAL(sscanf(hex, "%2x", &v) == 1 && n < cap);
                out[n++] = (uint8_t)v;
                hex += 2;
        }
        return n;
}

/*
 * A test-only JSON -> SenML CBOR translator (it allocates; the decoders do
 * not): RFC 8428 labels of a record become their integer labels, integral
 * numbers become integers, "vd" strings byte strings; everything else keeps
 * its shape, so every JSON case can be checked in CBOR too.
 */
static const struct {
        const char *text;
        int label;
} cbor_labels[] = {
        {"bver", -1}, {"bn", -2}, {"bt", -3}, {"bu", -4}, {"bv", -5},
        {"bs", -6}, {"n", 0}, {"u", 1}, {"v", 2}, {"vs", 3}, {"vb", 4},
        {"s", 5}, {"t", 6}, {"ut", 7}, {"vd", 8},
};

struct cw {
        uint8_t *buf;
        size_t cap, len;
        int overflow;
};

static void cw_put(struct cw *w, size_t n) {
        if (!n)
                w->overflow = 1;
        w->len += n;
}

static void cw_bytes(struct cw *w, const void *p, size_t n) {
        if (w->overflow || n > w->cap - w->len) {
                w->overflow = 1;
                return;
        }
        memcpy(w->buf + w->len, p, n);
        w->len += n;
}

static void cw_int(struct cw *w, int64_t v) {
        if (w->overflow)
                return;
        cw_put(w, v >= 0 ? cbor_encode_uint((uint64_t)v, w->buf + w->len,
                                            w->cap - w->len)
                         : cbor_encode_negint((uint64_t)(-1 - v),
                                              w->buf + w->len,
                                              w->cap - w->len));
}

static void cw_text(struct cw *w, const char *s, size_t n, int bytes) {
        if (w->overflow)
                return;
        cw_put(w, bytes ? cbor_encode_bytestring_start(n, w->buf + w->len,
                                                       w->cap - w->len)
                        : cbor_encode_string_start(n, w->buf + w->len,
                                                   w->cap - w->len));
        cw_bytes(w, s, n);
}

static void cw_item(struct cw *w, const cJSON *it, int record_level,
                    int as_bytes) {
        const cJSON *c;
        size_t i, count = 0;

        if (w->overflow)
                return;
        if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
                cJSON_ArrayForEach(c, it) count++;
                cw_put(w, cJSON_IsArray(it)
                                  ? cbor_encode_array_start(count, w->buf + w->len, w->cap - w->len)
                                  : cbor_encode_map_start(count, w->buf + w->len, w->cap - w->len));
                cJSON_ArrayForEach(c, it) {
                        int label = 0, known = 0, vd = 0;

                        if (cJSON_IsObject(it)) {
                                for (i = 0; record_level && i < sizeof(cbor_labels) / sizeof(*cbor_labels); i++)
                                        if (!strcmp(c->string, cbor_labels[i].text)) {
                                                label = cbor_labels[i].label;
                                                known = 1;
                                                vd = label == 8;
                                        }
                                if (known)
                                        cw_int(w, label);
                                else
                                        cw_text(w, c->string, strlen(c->string), 0);
                        }
                        cw_item(w, c, cJSON_IsArray(it) && record_level == 0, vd);
                }
        } else if (cJSON_IsNumber(it)) {
                double d = it->valuedouble;

                if (d == floor(d) && fabs(d) < 9.2e18 && !(d == 0 && signbit(d)))
                        cw_int(w, (int64_t)d);
                else
                        cw_put(w, cbor_encode_double(d, w->buf + w->len, w->cap - w->len));
        } else if (cJSON_IsString(it)) {
                cw_text(w, it->valuestring, strlen(it->valuestring), as_bytes);
        } else if (cJSON_IsBool(it)) {
                cw_put(w, cbor_encode_bool(cJSON_IsTrue(it), w->buf + w->len, w->cap - w->len));
        } else {
                cw_put(w, cbor_encode_null(w->buf + w->len, w->cap - w->len));
        }
}

/* The pack's top array is level 0; its objects are records (level 1). */
static size_t json_to_cbor(const char *text, uint8_t *buf, size_t cap) {
        cJSON *root = cJSON_Parse(text);
        struct cw w = {buf, cap, 0, 0};

        CU_ASSERT_PTR_NOT_NULL_FATAL(root);
        cw_item(&w, root, 0, 0);
        cJSON_Delete(root);
        CU_ASSERT_FATAL(!w.overflow);
        return w.len;
}

/* Expected readings, written compactly. ts == NOW means NOW_MS (relative). */
#define NOW INT64_MIN
struct want_field {
        const char *name;
        double value;
        const char *unit;
};
struct want {
        const char *sensor;
        int64_t ts;
        int nfields;
        struct want_field f[4];
};

static void check_readings(const struct tg_reading *out, size_t n,
                           const struct want *w, size_t nw, const char *what,
                           int line) {
        size_t i;
        int j;

        tg_check(n == nw, line, "%s: %zu readings, want %zu", what, n, nw);
        for (i = 0; i < n && i < nw; i++) {
                const struct tg_reading *r = &out[i];
                int64_t ts = w[i].ts == NOW ? NOW_MS : w[i].ts;

                tg_check(!strcmp(r->sensor, w[i].sensor) &&
                              r->sensor_len == strlen(w[i].sensor),
                         line, "%s: reading %zu sensor \"%s\", want \"%s\"", what,
                         i, r->sensor, w[i].sensor);
                tg_check(r->ts_ms == ts, line,
                         "%s: reading %zu ts %" PRId64 ", want %" PRId64, what, i,
                         r->ts_ms, ts);
                tg_check(r->ts_from_arrival == (w[i].ts == NOW), line,
                         "%s: reading %zu ts_from_arrival %d", what, i,
                         r->ts_from_arrival);
                tg_check(r->nfields == w[i].nfields, line,
                         "%s: reading %zu has %u fields, want %d", what, i,
                         r->nfields, w[i].nfields);
                for (j = 0; j < r->nfields && j < w[i].nfields; j++) {
                        const struct tg_field *f = &r->fields[j];

                        tg_check(!strcmp(f->name, w[i].f[j].name) &&
                                      f->name_len == strlen(w[i].f[j].name),
                                 line, "%s: reading %zu field %d \"%s\", want \"%s\"",
                                 what, i, j, f->name, w[i].f[j].name);
                        tg_check(f->value == w[i].f[j].value, line,
                                 "%s: reading %zu field %s = %.17g, want %.17g",
                                 what, i, f->name, f->value, w[i].f[j].value);
                        tg_check(!strcmp(f->unit, w[i].f[j].unit ? w[i].f[j].unit : ""),
                                 line, "%s: reading %zu field %s unit \"%s\", want \"%s\"",
                                 what, i, f->name, f->unit,
                                 w[i].f[j].unit ? w[i].f[j].unit : "");
                }
        }
}

/* Decode @p json as JSON and, translated, as CBOR; both must give @p w. */
static void expect_pack(const char *json, const struct tg_senml_opts *o,
                        const struct want *w, size_t nw, const char *what,
                        int line) {
        struct tg_reading out[CAP];
        uint8_t cb[8192];
        size_t n = 99, cblen = json_to_cbor(json, cb, sizeof(cb));
        enum tg_decode_err e;
        char label[160];

        e = decode(JSON, json, strlen(json), o, out, CAP, &n);
        snprintf(label, sizeof(label), "%s (json)", what);
        tg_check(e == TG_DECODE_OK, line, "%s: %s", label, tg_decode_err_name(e));
        if (e == TG_DECODE_OK)
                check_readings(out, n, w, nw, label, line);
        n = 99;
        e = decode(CBOR, cb, cblen, o, out, CAP, &n);
        snprintf(label, sizeof(label), "%s (cbor)", what);
        tg_check(e == TG_DECODE_OK, line, "%s: %s", label, tg_decode_err_name(e));
        if (e == TG_DECODE_OK)
                check_readings(out, n, w, nw, label, line);
}

#define EXPECT_PACK(json, o, w, what)                                          \
        expect_pack((json), (o), (w), sizeof(w) / sizeof(*(w)), (what), __LINE__)

/* Both formats must refuse @p json (CBOR: its translation) with @p want. */
static void expect_refused(const char *json, const struct tg_senml_opts *o,
                           size_t cap, enum tg_decode_err want, int line) {
        struct tg_reading out[CAP];
        uint8_t cb[80000];
        size_t n = 99, cblen = json_to_cbor(json, cb, sizeof(cb));
        enum tg_decode_err e;

        e = decode(JSON, json, strlen(json), o, out, cap, &n);
        tg_check(e == want && n == 0, line, "json %.200s: got %s (n %zu), want %s",
                 json, tg_decode_err_name(e), n, tg_decode_err_name(want));
        n = 99;
        e = decode(CBOR, cb, cblen, o, out, cap, &n);
        tg_check(e == want && n == 0, line, "cbor of %.200s: got %s (n %zu), want %s",
                 json, tg_decode_err_name(e), n, tg_decode_err_name(want));
}

#define EXPECT_REFUSED(json, o, want) expect_refused((json), (o), CAP, (want), __LINE__)

/* One format only, for texts the translator cannot take (malformed JSON). */
static void expect_refused_raw(enum fmt f, const char *p, enum tg_decode_err want, int line) {
        struct tg_reading out[CAP];
        size_t n = 99;
        enum tg_decode_err e = decode(f, p, strlen(p), &FIELD, out, CAP, &n);

        tg_check(e == want && n == 0, line, "%.200s: got %s, want %s", p, tg_decode_err_name(e),
                 tg_decode_err_name(want));
}

#define EXPECT_REFUSED_RAW(f, p, want) expect_refused_raw((f), (p), (want), __LINE__)

/* CBOR given as hex, one format only. */
static void expect_cbor_hex(const char *hex, const struct tg_senml_opts *o,
                            enum tg_decode_err want, int line) {
        struct tg_reading out[CAP];
        uint8_t b[256];
        size_t n = 99, len = hex_to_bytes(hex, b, sizeof(b));
        enum tg_decode_err e = decode(CBOR, b, len, o, out, CAP, &n);

        tg_check(e == want && (e != TG_DECODE_OK) == (n == 0), line,
                 "cbor %s: got %s (n %zu), want %s", hex, tg_decode_err_name(e), n,
                 tg_decode_err_name(want));
}

#define EXPECT_CBOR(hex, want) expect_cbor_hex((hex), &FIELD, (want), __LINE__)

/* --- the examples of RFC 8428 §5.1 and §6 --------------------------------- */

/* §5.1.1 Single Datapoint */
static const char ex_single[] =
        "[\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"Cel\",\"v\":23.1}\n"
        "]";

/* §5.1.2 Multiple Datapoints: now, then with times */
static const char ex_multi[] =
        "[\n"
        "  {\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"n\":\"voltage\",\"u\":\"V\",\"v\":120.1},\n"
        "  {\"n\":\"current\",\"u\":\"A\",\"v\":1.2}\n"
        "]";

static const char ex_multi_time[] =
        "[\n"
        "  {\"bn\":\"urn:dev:ow:10e2073a0108006:\",\"bt\":1.276020076001e+09,\n"
        "   \"bu\":\"A\",\"bver\":5,\n"
        "   \"n\":\"voltage\",\"u\":\"V\",\"v\":120.1},\n"
        "  {\"n\":\"current\",\"t\":-5,\"v\":1.2},\n"
        "  {\"n\":\"current\",\"t\":-4,\"v\":1.3},\n"
        "  {\"n\":\"current\",\"t\":-3,\"v\":1.4},\n"
        "  {\"n\":\"current\",\"t\":-2,\"v\":1.5},\n"
        "  {\"n\":\"current\",\"t\":-1,\"v\":1.6},\n"
        "  {\"n\":\"current\",\"v\":1.7}\n"
        "]";

/* §5.1.3 Multiple Measurements */
static const char ex_measurements[] =
        "[\n"
        "  {\"bn\":\"urn:dev:ow:10e2073a01080063\",\"bt\":1.320067464e+09,\n"
        "   \"bu\":\"%RH\",\"v\":20},\n"
        "  {\"u\":\"lon\",\"v\":24.30621},\n"
        "  {\"u\":\"lat\",\"v\":60.07965},\n"
        "  {\"t\":60,\"v\":20.3},\n"
        "  {\"u\":\"lon\",\"t\":60,\"v\":24.30622},\n"
        "  {\"u\":\"lat\",\"t\":60,\"v\":60.07965},\n"
        "  {\"t\":120,\"v\":20.7},\n"
        "  {\"u\":\"lon\",\"t\":120,\"v\":24.30623},\n"
        "  {\"u\":\"lat\",\"t\":120,\"v\":60.07966},\n"
        "  {\"u\":\"%EL\",\"t\":150,\"v\":98},\n"
        "  {\"t\":180,\"v\":21.2},\n"
        "  {\"u\":\"lon\",\"t\":180,\"v\":24.30628},\n"
        "  {\"u\":\"lat\",\"t\":180,\"v\":60.07967}\n"
        "]";

/* §5.1.4 Resolved Data: the previous example resolved */
static const char ex_resolved[] =
        "[\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"%RH\",\"t\":1.320067464e+09,\"v\":20},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lon\",\"t\":1.320067464e+09,\"v\":24.30621},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lat\",\"t\":1.320067464e+09,\"v\":60.07965},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"%RH\",\"t\":1.320067524e+09,\"v\":20.3},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lon\",\"t\":1.320067524e+09,\"v\":24.30622},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lat\",\"t\":1.320067524e+09,\"v\":60.07965},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"%RH\",\"t\":1.320067584e+09,\"v\":20.7},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lon\",\"t\":1.320067584e+09,\"v\":24.30623},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lat\",\"t\":1.320067584e+09,\"v\":60.07966},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"%EL\",\"t\":1.320067614e+09,\"v\":98},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"%RH\",\"t\":1.320067644e+09,\"v\":21.2},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lon\",\"t\":1.320067644e+09,\"v\":24.30628},\n"
        "  {\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"lat\",\"t\":1.320067644e+09,\"v\":60.07967}\n"
        "]";

/* §5.1.5 Multiple Data Types */
static const char ex_types[] =
        "[\n"
        "  {\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"n\":\"temp\",\"u\":\"Cel\",\"v\":23.1},\n"
        "  {\"n\":\"label\",\"vs\":\"Machine Room\"},\n"
        "  {\"n\":\"open\",\"vb\":false},\n"
        "  {\"n\":\"nfc-reader\",\"vd\":\"aGkgCg\"}\n"
        "]";

/* §5.1.6 Collection of Resources: the last record keeps the 3rd record's
 * base name and the 1st record's base time. */
static const char ex_collection[] =
        "[\n"
        "  {\"bn\":\"2001:db8::2/\",\"bt\":1.320078429e+09,\n"
        "   \"n\":\"temperature\",\"u\":\"Cel\",\"v\":25.2},\n"
        "  {\"n\":\"humidity\",\"u\":\"%RH\",\"v\":30},\n"
        "  {\"bn\":\"2001:db8::1/\",\"n\":\"temperature\",\"u\":\"Cel\",\"v\":12.3},\n"
        "  {\"n\":\"humidity\",\"u\":\"%RH\",\"v\":67}\n"
        "]";

/* §5.1.7 Setting an Actuator: a thermostat, and two lights dimmed now and
 * switched off 100 ms later. */
static const char ex_thermostat[] =
        "[\n"
        "  {\"bn\":\"urn:dev:ow:10e2073a01080063:\"},\n"
        "  {\"n\":\"temp\",\"u\":\"Cel\",\"v\":23.1},\n"
        "  {\"n\":\"heat\",\"u\":\"/\",\"v\":1},\n"
        "  {\"n\":\"fan\",\"u\":\"/\",\"v\":0}\n"
        "]";

static const char ex_lights[] =
        "[\n"
        "  {\"bt\":1.320078429e+09,\"bu\":\"/\",\"n\":\"2001:db8::3\",\"v\":0.5},\n"
        "  {\"n\":\"2001:db8::4\",\"v\":0.5},\n"
        "  {\"n\":\"2001:db8::3\",\"t\":0.1,\"v\":0},\n"
        "  {\"n\":\"2001:db8::4\",\"t\":0.1,\"v\":0}\n"
        "]";

/* §6: the second example of §5.1.2 in CBOR, as the RFC dumps it. */
static const char ex_cbor_hex[] =
        "87 a7 21 78 1b 75 72 6e 3a 64 65 76 3a 6f 77 3a"
        "31 30 65 32 30 37 33 61 30 31 30 38 30 30 36 3a"
        "22 fb 41 d3 03 a1 5b 00 10 62 23 61 41 20 05 00"
        "67 76 6f 6c 74 61 67 65 01 61 56 02 fb 40 5e 06"
        "66 66 66 66 66 a3 00 67 63 75 72 72 65 6e 74 06"
        "24 02 fb 3f f3 33 33 33 33 33 33 a3 00 67 63 75"
        "72 72 65 6e 74 06 23 02 fb 3f f4 cc cc cc cc cc"
        "cd a3 00 67 63 75 72 72 65 6e 74 06 22 02 fb 3f"
        "f6 66 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e"
        "74 06 21 02 f9 3e 00 a3 00 67 63 75 72 72 65 6e"
        "74 06 20 02 fb 3f f9 99 99 99 99 99 9a a3 00 67"
        "63 75 72 72 65 6e 74 06 00 02 fb 3f fb 33 33 33"
        "33 33 33";

static const char *const examples[] = {
        ex_single, ex_multi, ex_multi_time, ex_measurements, ex_resolved,
        ex_types, ex_collection, ex_thermostat, ex_lights,
};
#define NEXAMPLES (sizeof(examples) / sizeof(*examples))

static void test_rfc_single_datapoint(void) {
        static const struct want sensor[] = {
                {"urn:dev:ow:10e2073a01080063", NOW, 1, {{"value", 23.1, "Cel"}}},
        };

        EXPECT_PACK(ex_single, &SENSOR, sensor, "§5.1.1 sensor mapping");
        /* No base name: the field mapping has no sensor id. */
        EXPECT_REFUSED(ex_single, &FIELD, TG_DECODE_MISSING_ID);
}

static void test_rfc_multiple_datapoints(void) {
        static const struct want field[] = {
                {"urn:dev:ow:10e2073a01080063", NOW, 2,
                 {{"voltage", 120.1, "V"}, {"current", 1.2, "A"}}},
        };
        static const struct want sensor[] = {
                {"urn:dev:ow:10e2073a01080063:voltage", NOW, 1, {{"value", 120.1, "V"}}},
                {"urn:dev:ow:10e2073a01080063:current", NOW, 1, {{"value", 1.2, "A"}}},
        };

        EXPECT_PACK(ex_multi, &FIELD, field, "§5.1.2 field mapping");
        EXPECT_PACK(ex_multi, &SENSOR, sensor, "§5.1.2 sensor mapping");
}

/* bt = 1.276020076001e9 s; the record without t is at bt, so it merges
 * into the first reading. */
static const struct want multi_time_field[] = {
        {"urn:dev:ow:10e2073a0108006", INT64_C(1276020076001), 2,
         {{"voltage", 120.1, "V"}, {"current", 1.7, "A"}}},
        {"urn:dev:ow:10e2073a0108006", INT64_C(1276020071001), 1, {{"current", 1.2, "A"}}},
        {"urn:dev:ow:10e2073a0108006", INT64_C(1276020072001), 1, {{"current", 1.3, "A"}}},
        {"urn:dev:ow:10e2073a0108006", INT64_C(1276020073001), 1, {{"current", 1.4, "A"}}},
        {"urn:dev:ow:10e2073a0108006", INT64_C(1276020074001), 1, {{"current", 1.5, "A"}}},
        {"urn:dev:ow:10e2073a0108006", INT64_C(1276020075001), 1, {{"current", 1.6, "A"}}},
};
static const struct want multi_time_sensor[] = {
        {"urn:dev:ow:10e2073a0108006:voltage", INT64_C(1276020076001), 1, {{"value", 120.1, "V"}}},
        {"urn:dev:ow:10e2073a0108006:current", INT64_C(1276020071001), 1, {{"value", 1.2, "A"}}},
        {"urn:dev:ow:10e2073a0108006:current", INT64_C(1276020072001), 1, {{"value", 1.3, "A"}}},
        {"urn:dev:ow:10e2073a0108006:current", INT64_C(1276020073001), 1, {{"value", 1.4, "A"}}},
        {"urn:dev:ow:10e2073a0108006:current", INT64_C(1276020074001), 1, {{"value", 1.5, "A"}}},
        {"urn:dev:ow:10e2073a0108006:current", INT64_C(1276020075001), 1, {{"value", 1.6, "A"}}},
        {"urn:dev:ow:10e2073a0108006:current", INT64_C(1276020076001), 1, {{"value", 1.7, "A"}}},
};

static void test_rfc_multiple_datapoints_time(void) {
        EXPECT_PACK(ex_multi_time, &FIELD, multi_time_field, "§5.1.2 with times, field mapping");
        EXPECT_PACK(ex_multi_time, &SENSOR, multi_time_sensor, "§5.1.2 with times, sensor mapping");
}

static void test_rfc_cbor_example(void) {
        struct tg_reading out[CAP];
        uint8_t b[256];
        size_t n, len = hex_to_bytes(ex_cbor_hex, b, sizeof(b));
        enum tg_decode_err e;

        CU_ASSERT_EQUAL(len, 0xc3); /* the RFC's dump ends at 00c3 */
        e = decode(CBOR, b, len, &FIELD, out, CAP, &n);
        tg_check(e == TG_DECODE_OK, __LINE__, "§6 field: %s", tg_decode_err_name(e));
        if (!e)
                check_readings(out, n, multi_time_field,
                               sizeof(multi_time_field) / sizeof(*multi_time_field),
                               "§6 field", __LINE__);
        e = decode(CBOR, b, len, &SENSOR, out, CAP, &n);
        tg_check(e == TG_DECODE_OK, __LINE__, "§6 sensor: %s", tg_decode_err_name(e));
        if (!e)
                check_readings(out, n, multi_time_sensor,
                               sizeof(multi_time_sensor) / sizeof(*multi_time_sensor),
                               "§6 sensor", __LINE__);
        /* A CBOR pack is not JSON. */
        CU_ASSERT_EQUAL(decode(JSON, b, len, &FIELD, out, CAP, &n), TG_DECODE_NOT_DECODABLE);
}

/* Records of one (sensor, time) told apart only by unit merge into one
 * "value" field, the last record winning: that is the reading model. */
static const struct want measurements[] = {
        {"urn:dev:ow:10e2073a01080063", INT64_C(1320067464000), 1, {{"value", 60.07965, "lat"}}},
        {"urn:dev:ow:10e2073a01080063", INT64_C(1320067524000), 1, {{"value", 60.07965, "lat"}}},
        {"urn:dev:ow:10e2073a01080063", INT64_C(1320067584000), 1, {{"value", 60.07966, "lat"}}},
        {"urn:dev:ow:10e2073a01080063", INT64_C(1320067614000), 1, {{"value", 98, "%EL"}}},
        {"urn:dev:ow:10e2073a01080063", INT64_C(1320067644000), 1, {{"value", 60.07967, "lat"}}},
};

static void test_rfc_multiple_measurements(void) {
        /* The base name ends in no separator and the records have no name:
         * both mappings give the sensor's "value". */
        EXPECT_PACK(ex_measurements, &FIELD, measurements, "§5.1.3 field mapping");
        EXPECT_PACK(ex_measurements, &SENSOR, measurements, "§5.1.3 sensor mapping");
}

static void test_rfc_resolved(void) {
        /* The resolved form reads exactly as the pack it came from. */
        EXPECT_PACK(ex_resolved, &SENSOR, measurements, "§5.1.4 sensor mapping");
        EXPECT_REFUSED(ex_resolved, &FIELD, TG_DECODE_MISSING_ID);
}

static void test_rfc_multiple_types(void) {
        static const struct want field[] = {
                {"urn:dev:ow:10e2073a01080063", NOW, 1, {{"temp", 23.1, "Cel"}}},
        };
        static const struct want sensor[] = {
                {"urn:dev:ow:10e2073a01080063:temp", NOW, 1, {{"value", 23.1, "Cel"}}},
        };

        EXPECT_PACK(ex_types, &FIELD, field, "§5.1.5 field mapping");
        EXPECT_PACK(ex_types, &SENSOR, sensor, "§5.1.5 sensor mapping");
}

static void test_rfc_collection(void) {
        static const struct want field[] = {
                {"2001:db8::2", INT64_C(1320078429000), 2,
                 {{"temperature", 25.2, "Cel"}, {"humidity", 30, "%RH"}}},
                {"2001:db8::1", INT64_C(1320078429000), 2,
                 {{"temperature", 12.3, "Cel"}, {"humidity", 67, "%RH"}}},
        };
        static const struct want sensor[] = {
                {"2001:db8::2/temperature", INT64_C(1320078429000), 1, {{"value", 25.2, "Cel"}}},
                {"2001:db8::2/humidity", INT64_C(1320078429000), 1, {{"value", 30, "%RH"}}},
                {"2001:db8::1/temperature", INT64_C(1320078429000), 1, {{"value", 12.3, "Cel"}}},
                {"2001:db8::1/humidity", INT64_C(1320078429000), 1, {{"value", 67, "%RH"}}},
        };

        EXPECT_PACK(ex_collection, &FIELD, field, "§5.1.6 field mapping");
        EXPECT_PACK(ex_collection, &SENSOR, sensor, "§5.1.6 sensor mapping");
}

static void test_rfc_actuators(void) {
        static const struct want thermostat[] = {
                {"urn:dev:ow:10e2073a01080063", NOW, 3,
                 {{"temp", 23.1, "Cel"}, {"heat", 1, "/"}, {"fan", 0, "/"}}},
        };
        static const struct want lights[] = {
                {"2001:db8::3", INT64_C(1320078429000), 1, {{"value", 0.5, "/"}}},
                {"2001:db8::4", INT64_C(1320078429000), 1, {{"value", 0.5, "/"}}},
                {"2001:db8::3", INT64_C(1320078429100), 1, {{"value", 0, "/"}}},
                {"2001:db8::4", INT64_C(1320078429100), 1, {{"value", 0, "/"}}},
        };

        /* The first record holds only a base name: it yields nothing. */
        EXPECT_PACK(ex_thermostat, &FIELD, thermostat, "§5.1.7 thermostat");
        EXPECT_PACK(ex_lights, &SENSOR, lights, "§5.1.7 lights");
}

/* --- mappings, base fields, units, merging --------------------------------- */

static void test_field_mapping_names(void) {
        static const struct want colon[] = {{"dev", NOW, 1, {{"a", 1, NULL}}}};
        static const struct want two[] = {{"dev:", NOW, 1, {{"a", 1, NULL}}}};
        static const struct want plain[] = {{"dev", NOW, 1, {{"value", 1, NULL}}}};
        char json[512], bn[80], name[40];

        /* One trailing separator of each kind is dropped. */
        EXPECT_PACK("[{\"bn\":\"dev:\",\"n\":\"a\",\"v\":1}]", &FIELD, colon, "colon");
        EXPECT_PACK("[{\"bn\":\"dev/\",\"n\":\"a\",\"v\":1}]", &FIELD, colon, "slash");
        EXPECT_PACK("[{\"bn\":\"dev.\",\"n\":\"a\",\"v\":1}]", &FIELD, colon, "dot");
        EXPECT_PACK("[{\"bn\":\"dev-\",\"n\":\"a\",\"v\":1}]", &FIELD, colon, "dash");
        EXPECT_PACK("[{\"bn\":\"dev\",\"n\":\"a\",\"v\":1}]", &FIELD, colon, "no separator");
        EXPECT_PACK("[{\"bn\":\"dev::\",\"n\":\"a\",\"v\":1}]", &FIELD, two, "only one dropped");
        /* No name: the base name alone names the sensor (RFC 8428 §4.2). */
        EXPECT_PACK("[{\"bn\":\"dev:\",\"v\":1}]", &FIELD, plain, "no name");
        EXPECT_PACK("[{\"bn\":\"dev\",\"n\":\"\",\"v\":1}]", &FIELD, plain, "empty name");

        EXPECT_REFUSED("[{\"n\":\"a\",\"v\":1}]", &FIELD, TG_DECODE_MISSING_ID);
        EXPECT_REFUSED("[{\"bn\":\":\",\"n\":\"a\",\"v\":1}]", &FIELD, TG_DECODE_MISSING_ID);
        EXPECT_REFUSED("[{\"v\":1}]", &FIELD, TG_DECODE_MISSING_ID);

        /* Lengths: sensor TG_SENSOR_ID_MAX (after the separator), field
         * TG_FIELD_NAME_MAX. */
        memset(bn, 's', TG_SENSOR_ID_MAX);
        bn[TG_SENSOR_ID_MAX] = ':';
        bn[TG_SENSOR_ID_MAX + 1] = '\0';
        memset(name, 'f', TG_FIELD_NAME_MAX);
        name[TG_FIELD_NAME_MAX] = '\0';
        snprintf(json, sizeof(json), "[{\"bn\":\"%s\",\"n\":\"%s\",\"v\":1}]", bn, name);
        {
                struct tg_reading out[2];
                size_t n;

                CU_ASSERT_EQUAL(decode(JSON, json, strlen(json), &FIELD, out, 2, &n), TG_DECODE_OK);
                CU_ASSERT_EQUAL(out[0].sensor_len, TG_SENSOR_ID_MAX);
                CU_ASSERT_EQUAL(out[0].fields[0].name_len, TG_FIELD_NAME_MAX);
        }
        bn[TG_SENSOR_ID_MAX] = 's'; /* 65 bytes, no separator */
        snprintf(json, sizeof(json), "[{\"bn\":\"%s\",\"n\":\"a\",\"v\":1}]", bn);
        EXPECT_REFUSED(json, &FIELD, TG_DECODE_BAD_ID);
        snprintf(json, sizeof(json), "[{\"bn\":\"d:\",\"n\":\"%sf\",\"v\":1}]", name);
        EXPECT_REFUSED(json, &FIELD, TG_DECODE_BAD_FIELD_NAME);
}

static void test_sensor_mapping_names(void) {
        static const struct want joined[] = {{"dev:a", NOW, 1, {{"value", 1, NULL}}}};
        static const struct want bn_only[] = {{"dev:", NOW, 1, {{"value", 1, NULL}}}};
        char json[512], id[80];

        EXPECT_PACK("[{\"bn\":\"dev:\",\"n\":\"a\",\"v\":1}]", &SENSOR, joined, "bn + n");
        EXPECT_PACK("[{\"n\":\"dev:a\",\"v\":1}]", &SENSOR, joined, "n only");
        EXPECT_PACK("[{\"bn\":\"dev:\",\"v\":1}]", &SENSOR, bn_only, "bn only, kept whole");
        EXPECT_REFUSED("[{\"v\":1}]", &SENSOR, TG_DECODE_MISSING_ID);
        EXPECT_REFUSED("[{\"bn\":\"\",\"n\":\"\",\"v\":1}]", &SENSOR, TG_DECODE_MISSING_ID);

        memset(id, 'x', 40);
        id[40] = '\0';
        snprintf(json, sizeof(json), "[{\"bn\":\"%s\",\"n\":\"%.24s\",\"v\":1}]", id, id);
        {
                struct tg_reading out[2];
                size_t n;

                CU_ASSERT_EQUAL(decode(JSON, json, strlen(json), &SENSOR, out, 2, &n), TG_DECODE_OK);
                CU_ASSERT_EQUAL(out[0].sensor_len, 64);
        }
        snprintf(json, sizeof(json), "[{\"bn\":\"%s\",\"n\":\"%.25s\",\"v\":1}]", id, id);
        EXPECT_REFUSED(json, &SENSOR, TG_DECODE_BAD_ID);
        /* Field names do not come from the payload in this mapping. */
        snprintf(json, sizeof(json), "[{\"bn\":\"d\",\"n\":\"%s\",\"v\":1}]", id);
        EXPECT_PACK(json, &SENSOR, ((const struct want[]){{"dxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NOW, 1, {{"value", 1, NULL}}}}), "long n");
}

static void test_base_fields(void) {
        /* A base field applies to its own record (whatever the member
         * order) and to every later one until changed. */
        static const struct want order[] = {{"d", INT64_C(1600000000000), 1, {{"a", 11, "W"}}}};
        static const struct want persist[] = {
                {"d", INT64_C(1600000000000), 2, {{"a", 11, "W"}, {"b", 12, "W"}}},
                {"e", INT64_C(1600000001000), 2, {{"a", 102, "W"}, {"c", 3, "J"}}},
        };
        static const struct want novalue[] = {{"d", INT64_C(1600000000000), 1, {{"a", 1, NULL}}}};

        EXPECT_PACK("[{\"v\":1,\"n\":\"a\",\"bv\":10,\"bu\":\"W\",\"bt\":1600000000,\"bn\":\"d:\"}]",
                    &FIELD, order, "members after the value");
        EXPECT_PACK("[{\"bn\":\"d:\",\"bt\":1600000000,\"bu\":\"W\",\"bv\":10,\"n\":\"a\",\"v\":1},"
                    "{\"n\":\"b\",\"v\":2},"
                    "{\"bn\":\"e:\",\"bt\":1600000001,\"bv\":100,\"n\":\"a\",\"v\":2},"
                    "{\"n\":\"c\",\"bu\":\"J\",\"bv\":0,\"v\":3}]",
                    &FIELD, persist, "changed base fields");
        /* A record with no value still sets the base fields. */
        EXPECT_PACK("[{\"bn\":\"d:\"},{\"bt\":1600000000},{\"n\":\"a\",\"v\":1}]", &FIELD, novalue,
                    "base fields alone");
        /* bs and s are read and ignored; a sum-only record yields nothing. */
        EXPECT_PACK("[{\"bn\":\"d:\",\"bt\":1600000000,\"bs\":5,\"n\":\"b\",\"s\":3},"
                    "{\"n\":\"a\",\"v\":1,\"s\":7,\"ut\":30}]",
                    &FIELD, novalue, "sums");
        /* Unknown labels not ending in "_" are ignored, whatever their value. */
        EXPECT_PACK("[{\"bn\":\"d:\",\"bt\":1600000000,\"n\":\"a\",\"v\":1,\"x\":{\"y\":[1,\"z\",null]},"
                    "\"bfoo\":7,\"ct\":\"60\"}]",
                    &FIELD, novalue, "extensions");
}

/* Names and units must be text (tg_text_valid()): invalid UTF-8 is
 * refused from both formats, and JSON's escaped NUL too, where cJSON alone
 * would have ended the string at it. */
static void test_text(void) {
        static const struct want plain[] = {{"dev", 1700000000000, 1, {{"t", 1.5, ""}}}};

        EXPECT_REFUSED("[{\"bn\":\"caf\xc3:\",\"bt\":1700000000,\"n\":\"t\",\"v\":1.5}]", &FIELD,
                       TG_DECODE_BAD_ID);
        EXPECT_REFUSED("[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"t\xed\xa0\x80\",\"v\":1.5}]",
                       &FIELD, TG_DECODE_BAD_FIELD_NAME);
        EXPECT_REFUSED("[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"\xff\",\"v\":1.5}]", &SENSOR,
                       TG_DECODE_BAD_ID);
        EXPECT_REFUSED("[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"t\",\"u\":\"\xc0\xaf\","
                       "\"v\":1.5}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"t\\u0000\",\"v\":1.5}]",
                           TG_DECODE_BAD_FIELD_NAME);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"d\\u0000ev:\",\"bt\":1700000000,\"n\":\"t\",\"v\":1.5}]",
                           TG_DECODE_BAD_ID);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"t\",\"u\":\"\\u0000\","
                           "\"v\":1.5}]", TG_DECODE_BAD_SENML);
        /* "n\u0000" is no "n" label but an unknown one, ignored (RFC 8428
         * 4.4): the value is the base name's field "value" */
        {
                static const char pack[] =
                        "[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\\u0000\":\"t\",\"v\":1.5}]";
                struct tg_reading out[CAP];
                size_t n = 0;

                CU_ASSERT_EQUAL(decode(JSON, pack, strlen(pack), &FIELD, out, CAP, &n),
                                TG_DECODE_OK);
                CU_ASSERT(n == 1 && out[0].nfields == 1 &&
                          !strcmp(out[0].fields[0].name, "value"));
        }
        /* a string value nobody reads may hold either */
        EXPECT_PACK("[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"t\",\"v\":1.5},"
                    "{\"n\":\"note\",\"vs\":\"\xff\"}]", &FIELD, plain, "invalid UTF-8 in vs");
        {
                static const char pack[] = "[{\"bn\":\"dev:\",\"bt\":1700000000,\"n\":\"t\",\"v\":1.5},"
                                           "{\"n\":\"note\",\"vs\":\"a\\u0000b\"}]";
                struct tg_reading out[CAP];
                size_t n = 0;

                CU_ASSERT_EQUAL(decode(JSON, pack, strlen(pack), &FIELD, out, CAP, &n),
                                TG_DECODE_OK);
                CU_ASSERT_EQUAL(n, 1);
        }
}

static void test_units(void) {
        static const struct want w[] = {
                {"d", NOW, 4, {{"a", 1, "Cel"}, {"b", 2, "V"}, {"c", 3, NULL}, {"e", 4, "K"}}},
        };
        char json[256];

        EXPECT_PACK("[{\"bn\":\"d:\",\"bu\":\"Cel\",\"n\":\"a\",\"v\":1},"
                    "{\"n\":\"b\",\"u\":\"V\",\"v\":2},"       /* u overrides bu */
                    "{\"n\":\"c\",\"u\":\"\",\"v\":3},"        /* even when empty */
                    "{\"n\":\"e\",\"bu\":\"K\",\"v\":4}]",     /* bu changes */
                    &FIELD, w, "units");
        /* TG_UNIT_MAX bytes fit; one more is refused. */
        snprintf(json, sizeof(json), "[{\"bn\":\"d:\",\"n\":\"a\",\"u\":\"%.*s\",\"v\":1}]",
                 TG_UNIT_MAX, "0123456789abcdefghij");
        {
                struct tg_reading out[1];
                size_t n;

                CU_ASSERT_EQUAL(decode(JSON, json, strlen(json), &FIELD, out, 1, &n), TG_DECODE_OK);
                CU_ASSERT_EQUAL(strlen(out[0].fields[0].unit), TG_UNIT_MAX);
        }
        snprintf(json, sizeof(json), "[{\"bn\":\"d:\",\"n\":\"a\",\"u\":\"%.*s\",\"v\":1}]",
                 TG_UNIT_MAX + 1, "0123456789abcdefghij");
        EXPECT_REFUSED(json, &FIELD, TG_DECODE_STRING_TOO_LONG);
        snprintf(json, sizeof(json), "[{\"bn\":\"d:\",\"bu\":\"%.*s\",\"n\":\"a\",\"v\":1}]",
                 TG_UNIT_MAX + 1, "0123456789abcdefghij");
        EXPECT_REFUSED(json, &FIELD, TG_DECODE_STRING_TOO_LONG);
        /* A long unit on a record that gives no field is not used. */
        snprintf(json, sizeof(json), "[{\"bn\":\"d:\",\"n\":\"a\",\"u\":\"%.*s\",\"vs\":\"x\"},{\"n\":\"b\",\"v\":1}]",
                 TG_UNIT_MAX + 1, "0123456789abcdefghij");
        EXPECT_PACK(json, &FIELD, ((const struct want[]){{"d", NOW, 1, {{"b", 1, NULL}}}}), "unused long unit");
}

static void test_merging(void) {
        /* Same (sensor, time): one reading, fields in order, a repeated
         * field taking the last value and unit. A (sensor, time) seen
         * before takes records that come back to it later. */
        static const struct want w[] = {
                {"a", INT64_C(1600000000000), 3, {{"x", 5, "K"}, {"y", 2, NULL}, {"z", 6, NULL}}},
                {"b", INT64_C(1600000000000), 1, {{"x", 3, NULL}}},
                {"a", INT64_C(1600000001000), 1, {{"x", 4, NULL}}},
        };
        static const struct want sensor[] = {
                {"a", INT64_C(1600000000000), 1, {{"value", 3, "B"}}},
                {"b", INT64_C(1600000000000), 1, {{"value", 2, NULL}}},
        };

        EXPECT_PACK("[{\"bn\":\"a:\",\"bt\":1600000000,\"n\":\"x\",\"v\":1},"
                    "{\"n\":\"y\",\"v\":2},"
                    "{\"bn\":\"b:\",\"n\":\"x\",\"v\":3},"
                    "{\"bn\":\"a:\",\"n\":\"x\",\"t\":1,\"v\":4},"
                    "{\"n\":\"x\",\"u\":\"K\",\"v\":5},"
                    "{\"n\":\"z\",\"t\":0,\"v\":6}]",
                    &FIELD, w, "merging");
        EXPECT_PACK("[{\"n\":\"a\",\"bt\":1600000000,\"u\":\"A\",\"v\":1},"
                    "{\"n\":\"b\",\"v\":2},"
                    "{\"n\":\"a\",\"u\":\"B\",\"v\":3}]",
                    &SENSOR, sensor, "merging, sensor mapping");
}

/* --- time ---------------------------------------------------------------- */

static int64_t one_ts(const char *json, int64_t now, enum tg_decode_err *e) {
        struct tg_senml_opts o = opts_of(TG_SENML_NAME_IS_FIELD);
        struct tg_reading out[2];
        uint8_t cb[512];
        size_t n, len = json_to_cbor(json, cb, sizeof(cb));
        enum tg_decode_err ec;
        int64_t tj;

        o.now_ms = now;
        *e = decode(JSON, json, strlen(json), &o, out, 2, &n);
        tj = *e ? INT64_MIN : out[0].ts_ms;
        ec = decode(CBOR, cb, len, &o, out, 2, &n);
        tg_check(ec == *e && (ec || out[0].ts_ms == tj), __LINE__,
                 "%s: cbor gave %s %" PRId64 ", json %s %" PRId64, json,
                 tg_decode_err_name(ec), ec ? 0 : out[0].ts_ms,
                 tg_decode_err_name(*e), tj);
        return tj;
}

#define EXPECT_TS(json, now, want)                                             \
        do {                                                                   \
                enum tg_decode_err e_;                                         \
                int64_t got_ = one_ts((json), (now), &e_);                     \
                tg_check(e_ == TG_DECODE_OK && got_ == (want), __LINE__,       \
                         "%s: %s %" PRId64 ", want %" PRId64, (json),          \
                         tg_decode_err_name(e_), got_, (int64_t)(want));       \
        } while (0)

#define EXPECT_TS_ERR(json, now, want)                                         \
        do {                                                                   \
                enum tg_decode_err e_;                                         \
                one_ts((json), (now), &e_);                                    \
                tg_check(e_ == (want), __LINE__, "%s: %s, want %s", (json),    \
                         tg_decode_err_name(e_), tg_decode_err_name(want));    \
        } while (0)

static void test_relative_time(void) {
        const int64_t now = INT64_C(1750000000123);

        EXPECT_TS("[{\"bn\":\"d\",\"v\":1}]", now, now);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":0,\"v\":1}]", now, now);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":-5,\"v\":1}]", now, now - 5000);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":-0.25,\"v\":1}]", now, now - 250);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":100,\"v\":1}]", now, now + 100000); /* the future */
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":-10,\"t\":2.5,\"v\":1}]", now, now - 7500);
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":-10,\"v\":1}]", now, now - 10000);
        /* The boundary: 2^28 s is absolute, just under it relative. */
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":268435456,\"v\":1}]", now, INT64_C(268435456000));
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":268435455,\"t\":0.999,\"v\":1}]", now,
                  now + INT64_C(268435455999));
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":268435455,\"t\":1,\"v\":1}]", now, INT64_C(268435456000));
        /* Relative times count from the injected now, and must land in
         * the range (1 ms after the epoch at the earliest) like any other. */
        EXPECT_TS("[{\"bn\":\"d\",\"t\":-1,\"v\":1}]", 1001, 1);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"t\":-1,\"v\":1}]", 1000, TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"v\":1}]", 0, TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"t\":-1,\"v\":1}]", -5000, TG_DECODE_TS_OUT_OF_RANGE);
        /* 317 years before now: before the epoch */
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":-1e10,\"v\":1}]", now, TG_DECODE_TS_OUT_OF_RANGE);

        {
                struct tg_reading out[2];
                size_t n;
                struct tg_senml_opts o = opts_of(TG_SENML_NAME_IS_FIELD);
                static const char mixed[] = "[{\"bn\":\"d\",\"n\":\"a\",\"v\":1},"
                                            "{\"n\":\"b\",\"t\":1600000000,\"v\":2}]";

                o.now_ms = now;
                CU_ASSERT_EQUAL_FATAL(decode(JSON, mixed, strlen(mixed), &o, out, 2, &n), TG_DECODE_OK);
                CU_ASSERT_EQUAL(n, 2);
                CU_ASSERT_EQUAL(out[0].ts_from_arrival, 1);
                CU_ASSERT_EQUAL(out[1].ts_from_arrival, 0);
        }
}

static void test_time_rounding(void) {
        const int64_t base = INT64_C(1000000000000);

        /* To the nearest ms; exact halves (62.5 ms is 0.0625 s, exactly)
         * away from zero, as llround() does. */
        EXPECT_TS("[{\"bn\":\"d\",\"t\":0.0004999,\"v\":1}]", base, base);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":0.0005001,\"v\":1}]", base, base + 1);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":-0.0004999,\"v\":1}]", base, base);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":-0.0005001,\"v\":1}]", base, base - 1);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":0.0625,\"v\":1}]", base, base + 63);
        EXPECT_TS("[{\"bn\":\"d\",\"t\":-0.0625,\"v\":1}]", base, base - 63);
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":1.276020076001e+09,\"v\":1}]", 0, INT64_C(1276020076001));
        /* bt + t is rounded once, not twice (seconds_to_ms()): the last ms
         * of the range, and the ms before the top's last second. */
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":253402300799,\"t\":0.999,\"v\":1}]", 0,
                  TG_TS_MAX);
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":253402300799.999,\"v\":1}]", 0, TG_TS_MAX);
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":253402300799,\"t\":-0.001,\"v\":1}]", 0,
                  TG_TS_MAX - 1000);
}

static void test_time_errors(void) {
        struct tg_reading out[2];
        size_t n;
        struct tg_senml_opts o = opts_of(TG_SENML_NAME_IS_FIELD);

        /* Past the range (9999-12-31T23:59:59.999Z), infinities included. */
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":253402300800,\"v\":1}]", 0,
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":253402300799,\"t\":1,\"v\":1}]", 0,
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":9007199254740.992,\"v\":1}]", 0, /* 2^53 ms */
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":1e300,\"v\":1}]", 0, TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":-1e300,\"v\":1}]", 0, TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"t\":1e999,\"v\":1}]", 0, /* cJSON: infinity */
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":1e308,\"t\":1e308,\"v\":1}]", 0,
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"t\":-9007199254740,\"v\":1}]", -1000, /* now - beyond */
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"t\":1,\"v\":1}]", INT64_MAX, /* overflow */
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"t\":-1,\"v\":1}]", INT64_MIN,
                      TG_DECODE_TS_OUT_OF_RANGE);
        /* At or before the epoch: absolute times cannot say so (they start
         * at 2^28 s), relative ones can. */
        EXPECT_TS_ERR("[{\"bn\":\"d\",\"bt\":-1700000000,\"v\":1}]", INT64_C(1700000000000),
                      TG_DECODE_TS_OUT_OF_RANGE);
        EXPECT_TS("[{\"bn\":\"d\",\"bt\":-1699999999.999,\"v\":1}]", INT64_C(1700000000000), 1);
        /* Non-finite times in CBOR: t NaN is no time at all, bt -infinity
         * a time out of range. */
        EXPECT_CBOR("81 a3 21 61 64 02 01 06 f9 7e 00", TG_DECODE_INVALID_TS);
        EXPECT_CBOR("81 a3 21 61 64 02 01 22 f9 fc 00", TG_DECODE_TS_OUT_OF_RANGE);
        /* A bad base time only matters to records that use it. */
        {
                static const char unused[] = "[{\"bn\":\"d\",\"bt\":1e300,\"vs\":\"x\"},{\"bt\":0,\"v\":1}]";

                o.now_ms = INT64_C(1700000000000);
                CU_ASSERT_EQUAL(decode(JSON, unused, strlen(unused), &o, out, 2, &n), TG_DECODE_OK);
        }
}

/* --- reason codes ---------------------------------------------------------- */

static void test_reason_codes(void) {
        struct tg_senml_opts small = opts_of(TG_SENML_NAME_IS_FIELD);

        /* bad_senml */
        EXPECT_REFUSED("{}", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("{\"bn\":\"d\",\"v\":1}", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("1", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("\"x\"", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[1]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1},[]]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1},null]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bver\":11,\"bn\":\"d\",\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1},{\"bver\":11}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bver\":0,\"bn\":\"d\",\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bver\":-3,\"bn\":\"d\",\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bver\":9.5,\"bn\":\"d\",\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bver\":\"10\",\"bn\":\"d\",\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1,\"foo_\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1},{\"vs\":\"x\",\"_\":{}}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":\"1\"}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":null}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"n\":1,\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":[],\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"t\":\"0\",\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"bu\":true,\"v\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"vb\":1}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"vs\":false}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"vd\":{}}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"s\":\"x\"}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1,\"v\":2}]", &FIELD, TG_DECODE_DUPLICATE_MEMBER);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"bn\":\"e\",\"v\":1}]", &FIELD, TG_DECODE_DUPLICATE_MEMBER);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1,\"vs\":\"x\"}]", &FIELD, TG_DECODE_BAD_SENML);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"vb\":true,\"vd\":\"aa\"}]", &FIELD, TG_DECODE_BAD_SENML);

        /* missing_id, bad_id, bad_field_name: see the mapping tests too */
        EXPECT_REFUSED("[{\"v\":1}]", &SENSOR, TG_DECODE_MISSING_ID);
        EXPECT_REFUSED("[{\"n\":\"a\",\"v\":1}]", &FIELD, TG_DECODE_MISSING_ID);
        EXPECT_REFUSED("[{\"bn\":\"0123456789012345678901234567890123456789\","
                       "\"n\":\"0123456789012345678901234\",\"v\":1}]", &SENSOR, TG_DECODE_BAD_ID);
        EXPECT_REFUSED("[{\"bn\":\"0123456789012345678901234567890123456789012345678901234567890123X\","
                       "\"n\":\"a\",\"v\":1}]", &FIELD, TG_DECODE_BAD_ID);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"n\":\"0123456789012345678901234567890123\",\"v\":1}]",
                       &FIELD, TG_DECODE_BAD_FIELD_NAME);

        /* string_too_long: max_string bounds every SenML string value */
        small.max_string = 8;
        EXPECT_REFUSED("[{\"bn\":\"d\",\"n\":\"abcdefghi\",\"v\":1}]", &small, TG_DECODE_STRING_TOO_LONG);
        EXPECT_REFUSED("[{\"bn\":\"abcdefghi\",\"v\":1}]", &small, TG_DECODE_STRING_TOO_LONG);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1},{\"vs\":\"abcdefghi\"}]", &small, TG_DECODE_STRING_TOO_LONG);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1},{\"vd\":\"abcdefghi\"}]", &small, TG_DECODE_STRING_TOO_LONG);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1,\"bu\":\"abcdefghi\"}]", &small, TG_DECODE_STRING_TOO_LONG);
        /* a unit longer than the reading model holds */
        EXPECT_REFUSED("[{\"bn\":\"d\",\"n\":\"a\",\"u\":\"0123456789abcdef\",\"v\":1}]", &FIELD,
                       TG_DECODE_STRING_TOO_LONG);
        {
                static const struct want w[] = {{"d", NOW, 1, {{"abcdefgh", 1, NULL}}}};

                /* Exactly max_string is fine; extensions are not measured. */
                EXPECT_PACK("[{\"bn\":\"d\",\"n\":\"abcdefgh\",\"v\":1,\"x\":\"a long extension\"}]",
                            &small, w, "max_string exactly");
                small.max_string = 0; /* no limit but the payload's */
                EXPECT_PACK("[{\"bn\":\"d\",\"n\":\"abcdefgh\",\"v\":1},{\"vs\":\"0123456789abcdef\"}]",
                            &small, w, "max_string 0");
        }
}

static void test_reason_codes_2(void) {
        struct tg_senml_opts o = opts_of(TG_SENML_NAME_IS_FIELD);
        struct tg_reading out[CAP];
        char json[4096];
        size_t n, len;
        char *big;
        int i;

        /* non_finite_value */
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":1e999}]", &FIELD, TG_DECODE_NON_FINITE);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"v\":-1e999}]", &FIELD, TG_DECODE_NON_FINITE);
        EXPECT_REFUSED("[{\"bn\":\"d\",\"bv\":1e308,\"v\":1e308}]", &FIELD, TG_DECODE_NON_FINITE);
        EXPECT_CBOR("81 a2 21 61 64 02 f9 7e 00", TG_DECODE_NON_FINITE);
        EXPECT_CBOR("81 a2 21 61 64 02 fa 7f 80 00 00", TG_DECODE_NON_FINITE);

        /* timestamp_out_of_range, invalid_timestamp: see test_time_errors */
        EXPECT_REFUSED("[{\"bn\":\"d\",\"bt\":1e300,\"v\":1}]", &FIELD, TG_DECODE_TS_OUT_OF_RANGE);

        /* too_many_fields: fields in one reading, readings in the storage */
        len = (size_t)snprintf(json, sizeof(json), "[{\"bn\":\"d\",\"n\":\"f0\",\"v\":0}");
        for (i = 1; i <= TG_READING_FIELDS_MAX; i++)
                len += (size_t)snprintf(json + len, sizeof(json) - len, ",{\"n\":\"f%d\",\"v\":%d}", i, i);
        snprintf(json + len, sizeof(json) - len, "]");
        EXPECT_REFUSED(json, &FIELD, TG_DECODE_TOO_MANY_FIELDS);
        json[len - 1 - strlen(",{\"n\":\"f16\",\"v\":16}") + 1] = '\0';
        strcat(json, "]");
        CU_ASSERT_EQUAL(decode(JSON, json, strlen(json), &FIELD, out, 1, &n), TG_DECODE_OK);
        CU_ASSERT_EQUAL(out[0].nfields, TG_READING_FIELDS_MAX);
        {
                static const char two[] = "[{\"bn\":\"d\",\"v\":1},{\"t\":-1,\"v\":2}]";

                CU_ASSERT_EQUAL(decode(JSON, two, strlen(two), &FIELD, out, 2, &n), TG_DECODE_OK);
                CU_ASSERT_EQUAL(n, 2);
                expect_refused(two, &FIELD, 1, TG_DECODE_TOO_MANY_FIELDS, __LINE__);
                expect_refused(two, &FIELD, 0, TG_DECODE_TOO_MANY_FIELDS, __LINE__);
                CU_ASSERT_EQUAL(tg_decode_senml_json(two, strlen(two), &FIELD, NULL, 5, &n),
                                TG_DECODE_TOO_MANY_FIELDS);
        }

        /* no_fields: a pack with no numeric value */
        EXPECT_REFUSED("[{\"bn\":\"d\",\"vs\":\"x\"},{\"vb\":true},{\"vd\":\"aa\"},{\"s\":1}]", &FIELD,
                       TG_DECODE_NO_FIELDS);
        EXPECT_REFUSED("[{\"bn\":\"d\"}]", &FIELD, TG_DECODE_NO_FIELDS);

        /* too_deep: TG_DEPTH_MAX levels of containers, pack and record
         * included, are read; one more is refused. */
        for (i = TG_DEPTH_MAX - 2; i <= TG_DEPTH_MAX - 1; i++) {
                len = (size_t)snprintf(json, sizeof(json), "[{\"bn\":\"d\",\"v\":1,\"x\":");
                memset(json + len, '[', (size_t)i);
                memset(json + len + i, ']', (size_t)i);
                strcpy(json + len + 2 * i, "}]");
                if (i == TG_DEPTH_MAX - 2) {
                        static const struct want w[] = {{"d", NOW, 1, {{"value", 1, NULL}}}};

                        EXPECT_PACK(json, &FIELD, w, "TG_DEPTH_MAX deep");
                } else {
                        EXPECT_REFUSED(json, &FIELD, TG_DECODE_TOO_DEEP);
                }
        }

        /* too_large */
        big = malloc(TG_PAYLOAD_MAX + 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, ' ', TG_PAYLOAD_MAX + 1);
        memcpy(big, "[{\"bn\":\"d\",\"v\":1}]", 18);
        CU_ASSERT_EQUAL(decode(JSON, big, TG_PAYLOAD_MAX, &o, out, CAP, &n), TG_DECODE_OK);
        CU_ASSERT_EQUAL(decode(JSON, big, TG_PAYLOAD_MAX + 1, &o, out, CAP, &n), TG_DECODE_TOO_LARGE);
        CU_ASSERT_EQUAL(decode(CBOR, big, TG_PAYLOAD_MAX + 1, &o, out, CAP, &n), TG_DECODE_TOO_LARGE);
        free(big);

        /* not_decodable */
        EXPECT_REFUSED_RAW(JSON, "", TG_DECODE_NOT_DECODABLE);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"d\",\"v\":1}", TG_DECODE_NOT_DECODABLE);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"d\",\"v\":1}] x", TG_DECODE_NOT_DECODABLE);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"d\",\"v\":1}][]", TG_DECODE_NOT_DECODABLE);
        EXPECT_REFUSED_RAW(JSON, "[{\"bn\":\"d\",\"v\":NaN}]", TG_DECODE_NOT_DECODABLE);
        CU_ASSERT_EQUAL(tg_decode_senml_json(NULL, 0, &FIELD, out, CAP, &n), TG_DECODE_NOT_DECODABLE);
        CU_ASSERT_EQUAL(tg_decode_senml_cbor(NULL, 0, &FIELD, out, CAP, &n), TG_DECODE_NOT_DECODABLE);
        /* White space around the pack is fine. */
        {
                static const char ws[] = " \n[{\"bn\":\"d\",\"v\":1}]\r\n\t ";

                CU_ASSERT_EQUAL(decode(JSON, ws, strlen(ws), &FIELD, out, CAP, &n), TG_DECODE_OK);
        }
}


/* Issue 12, item 7: a label given twice in one record is duplicate_member,
 * with a detail that names it; records of a pack merge, so a field given
 * again by a later record is no duplicate. */
static void expect_duplicate_label(const char *json, const char *label, int line) {
        char want[64];

        snprintf(want, sizeof(want), "SenML label \"%s\" given more than once", label);
        expect_refused(json, &FIELD, CAP, TG_DECODE_DUPLICATE_MEMBER, line);
        tg_check(!strcmp(tg_decode_err_detail(TG_DECODE_DUPLICATE_MEMBER), want), line,
                 "%s: detail '%s', want '%s'", json,
                 tg_decode_err_detail(TG_DECODE_DUPLICATE_MEMBER), want);
}

static void test_duplicate_labels(void) {
        static const struct want merged[] = {
                {"d", INT64_C(1700000000000), 1, {{"a", 2, ""}}},
        };

        expect_duplicate_label("[{\"bn\":\"d\",\"v\":1,\"v\":2}]", "v", __LINE__);
        expect_duplicate_label("[{\"bn\":\"d\",\"bn\":\"d\",\"v\":1}]", "bn", __LINE__);
        expect_duplicate_label("[{\"bn\":\"d\",\"v\":1},{\"n\":\"a\",\"t\":1,\"t\":1,\"v\":1}]", "t",
                               __LINE__);
        expect_duplicate_label("[{\"bn\":\"d\",\"n\":\"a\",\"u\":\"Cel\",\"u\":\"K\",\"v\":1}]", "u",
                               __LINE__);
        expect_duplicate_label("[{\"bn\":\"d\",\"bt\":1,\"bt\":1,\"v\":1}]", "bt", __LINE__);
        /* CBOR: text "v" and integer 2 are one label */
        expect_cbor_hex("81 a4 21 62 64 3a 00 61 61 02 01 61 76 02", &FIELD,
                        TG_DECODE_DUPLICATE_MEMBER, __LINE__);
        CU_ASSERT_STRING_EQUAL(tg_decode_err_detail(TG_DECODE_DUPLICATE_MEMBER),
                               "SenML label \"v\" given more than once");
        /* the first refusal in the record wins */
        EXPECT_REFUSED("[{\"bn\":\"d\",\"bver\":99,\"v\":1,\"v\":2}]", &FIELD, TG_DECODE_BAD_SENML);
        /* extension labels are not read, so not compared */
        EXPECT_PACK("[{\"bn\":\"d\",\"n\":\"a\",\"bt\":1700000000,\"x\":1,\"x\":2,\"v\":2}]",
                    &FIELD, merged, "extension twice");
        /* two records of one (sensor, time): the later one's value */
        EXPECT_PACK("[{\"bn\":\"d\",\"n\":\"a\",\"bt\":1700000000,\"v\":1},{\"n\":\"a\",\"v\":2}]",
                    &FIELD, merged, "a field in two records");
}

/* CBOR has cases JSON cannot express. The base record, [{-2: "d:", 0: "a",
 * 2: 1}], is 81 a3 21 62 64 3a 00 61 61 02 01. */
static void test_cbor_specifics(void) {
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 01", TG_DECODE_OK);
        /* text labels are read as well */
        EXPECT_CBOR("81 a3 62 62 6e 62 64 3a 61 6e 61 61 61 76 01", TG_DECODE_OK);
        /* labels: unknown negative refused, unknown positive skipped */
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 26 00", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 38 63 00", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 00", TG_DECODE_OK);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 18 64 82 01 a1 01 02", TG_DECODE_OK);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 1b ff ff ff ff ff ff ff ff 00", TG_DECODE_OK);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 3b ff ff ff ff ff ff ff ff 00", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 62 78 5f 00", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 f9 3c 00 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 41 78 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 7f 61 78 ff 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 80 01", TG_DECODE_BAD_SENML);
        /* the same label twice, as an integer and as text */
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 61 76 02", TG_DECODE_DUPLICATE_MEMBER);
        /* bver: an unsigned integer 1..10 only */
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 20 0a", TG_DECODE_OK);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 20 0b", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 20 20", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 20 f9 49 00", TG_DECODE_BAD_SENML);
        /* strings must be definite; vd is bytes (text tolerated); vb a bool */
        EXPECT_CBOR("81 a3 21 62 64 3a 00 7f 61 61 ff 02 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 41 61 02 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 a1 08 42 68 69", TG_DECODE_OK);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 a1 08 62 68 69", TG_DECODE_OK);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 a1 08 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 a1 04 f5", TG_DECODE_OK);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 a1 04 f6", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 a1 04 01", TG_DECODE_BAD_SENML);
        /* numbers: every width, half floats, decimal fractions (tag 4) */
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 3b 7f ff ff ff ff ff ff ff", TG_DECODE_OK);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 82 21 19 6a b3", TG_DECODE_OK);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 82 00 3b ff ff ff ff ff ff ff ff", TG_DECODE_OK);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 82 1b 7f ff ff ff ff ff ff ff 01",
                    TG_DECODE_NON_FINITE);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 83 21 01 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 82 21 c2 41 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 82 f9 3c 00 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c4 9f 21 01 ff", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c2 41 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 c1 01", TG_DECODE_OK); /* other tags ignored */
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 f6", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 f7", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 81 01", TG_DECODE_BAD_SENML);
        /* the pack and its records */
        EXPECT_CBOR("9f a3 21 62 64 3a 00 61 61 02 01 ff", TG_DECODE_OK);
        EXPECT_CBOR("81 bf 21 62 64 3a 00 61 61 02 01 ff", TG_DECODE_OK);
        EXPECT_CBOR("d9 d9 f7 81 a3 21 62 64 3a 00 61 61 02 01", TG_DECODE_OK);
        EXPECT_CBOR("80", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("9f ff", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("a1 00 61 61", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("61 61", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 01", TG_DECODE_BAD_SENML);
        EXPECT_CBOR("81 81 01", TG_DECODE_BAD_SENML);
        /* malformed */
        EXPECT_CBOR("ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 01 00", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a3 21 62 64", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("82 a3 21 62 64 3a 00 61 61 02 01 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a3 21 62 64 3a 00 61 61 02 01 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 bf 21 62 64 3a 00 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 bf 21 62 64 3a 00 61 61 02 01", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("9f a3 21 62 64 3a 00 61 61 02 01 c0 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 bb ff ff ff ff ff ff ff ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 9b ff ff ff ff ff ff ff ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 bb ff ff ff ff ff ff ff ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 5f 41 61 ff", TG_DECODE_OK);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 5f 61 61 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 5f c0 41 61 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 bf 01 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 82 01 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 ff", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 fc", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 c0", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a4 21 62 64 3a 00 61 61 02 01 09 1c", TG_DECODE_NOT_DECODABLE);
        EXPECT_CBOR("81 a2 21 62 64 3a 02", TG_DECODE_NOT_DECODABLE);
}

/* The decoded values of the CBOR number cases above. */
static void test_cbor_numbers(void) {
        static const struct {
                const char *hex;
                double want;
        } cases[] = {
                {"81 a3 21 62 64 3a 00 61 61 02 01", 1},
                {"81 a3 21 62 64 3a 00 61 61 02 20", -1},
                {"81 a3 21 62 64 3a 00 61 61 02 3b 7f ff ff ff ff ff ff ff", -9223372036854775808.0},
                {"81 a3 21 62 64 3a 00 61 61 02 1b ff ff ff ff ff ff ff ff", 18446744073709551615.0},
                {"81 a3 21 62 64 3a 00 61 61 02 3b ff ff ff ff ff ff ff ff", -18446744073709551616.0},
                {"81 a3 21 62 64 3a 00 61 61 02 f9 3e 00", 1.5},
                {"81 a3 21 62 64 3a 00 61 61 02 f9 80 00", -0.0},
                {"81 a3 21 62 64 3a 00 61 61 02 fa 3f c0 00 00", 1.5},
                {"81 a3 21 62 64 3a 00 61 61 02 fb 40 5e 06 66 66 66 66 66", 120.1},
                {"81 a3 21 62 64 3a 00 61 61 02 c4 82 21 19 6a b3", 273.15},
                {"81 a3 21 62 64 3a 00 61 61 02 c4 82 00 3b ff ff ff ff ff ff ff ff", -18446744073709551616.0},
                {"81 a3 21 62 64 3a 00 61 61 02 c4 82 3b 7f ff ff ff ff ff ff ff 01", 0},
                {"81 a3 21 62 64 3a 00 61 61 02 c4 82 22 38 1f", -0.032},
                /* bv is added: 0.1 + 0.2 as doubles */
                {"81 a4 21 62 64 3a 24 fb 3f b9 99 99 99 99 99 9a 00 61 61 02 fb 3f c9 99 99 99 99 99 9a",
                 0.1 + 0.2},
        };
        struct tg_reading out[2];
        uint8_t b[64];
        size_t i, n, len;
        enum tg_decode_err e;

        for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                len = hex_to_bytes(cases[i].hex, b, sizeof(b));
                e = decode(CBOR, b, len, &FIELD, out, 2, &n);
                tg_check(e == TG_DECODE_OK && n == 1 && tg_same_bits(out[0].fields[0].value, cases[i].want),
                         __LINE__, "%s: %s, %.17g, want %.17g", cases[i].hex, tg_decode_err_name(e),
                         e ? 0.0 : out[0].fields[0].value, cases[i].want);
        }
}

static void test_null_opts(void) {
        static const char json[] = "[{\"bn\":\"d:\",\"n\":\"a\",\"bt\":1600000000,\"t\":-1,\"v\":1,"
                                   "\"vs_x\":\"0123456789\"}]";
        static const char relative[] = "[{\"bn\":\"d:\",\"t\":-1,\"v\":1}]";
        struct tg_reading out[1];
        uint8_t cb[128];
        size_t n, len = json_to_cbor(json, cb, sizeof(cb));

        /* NULL: field mapping, now = 0, no string limit */
        CU_ASSERT_EQUAL_FATAL(tg_decode_senml_json(json, strlen(json), NULL, out, 1, &n), TG_DECODE_OK);
        CU_ASSERT_STRING_EQUAL(out[0].sensor, "d");
        CU_ASSERT_STRING_EQUAL(out[0].fields[0].name, "a");
        CU_ASSERT_EQUAL(out[0].ts_ms, INT64_C(1599999999000));
        CU_ASSERT_EQUAL_FATAL(tg_decode_senml_cbor(cb, len, NULL, out, 1, &n), TG_DECODE_OK);
        CU_ASSERT_EQUAL(out[0].ts_ms, INT64_C(1599999999000));
        /* now = 0: a relative time lands before the epoch */
        CU_ASSERT_EQUAL(tg_decode_senml_json(relative, strlen(relative), NULL, out, 1, &n),
                        TG_DECODE_TS_OUT_OF_RANGE);
}

/* --- encoders -------------------------------------------------------------- */

static void reading_fill(struct tg_reading *r, const char *sensor, int64_t ts) {
        tg_reading_clear(r);
        CU_ASSERT_EQUAL_FATAL(tg_reading_set_sensor(r, sensor, strlen(sensor)), 0);
        r->ts_ms = ts;
}

static void test_encode_json_text(void) {
        struct tg_reading r;
        char buf[512];
        size_t len;

        reading_fill(&r, "urn:dev:ow:10e2073a01080063", INT64_C(1276020076001));
        tg_reading_add_field(&r, "voltage", 7, 120.1);
        tg_reading_set_unit(&r, 0, "V", 1);
        tg_reading_add_field(&r, "current", 7, 1.2);
        len = tg_encode_senml_json(&r, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf,
                "[{\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"bt\":1276020076,"
                "\"n\":\"voltage\",\"u\":\"V\",\"v\":120.1,\"t\":0.001},"
                "{\"n\":\"current\",\"v\":1.2,\"t\":0.001}]");
        CU_ASSERT_EQUAL(len, strlen(buf));

        /* whole seconds: no t; no fields: bn and bt only */
        reading_fill(&r, "d", INT64_C(1600000000000));
        tg_reading_add_field(&r, "x", 1, -0.5);
        tg_reading_set_unit(&r, 0, "%RH", 3);
        tg_encode_senml_json(&r, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "[{\"bn\":\"d:\",\"bt\":1600000000,\"n\":\"x\",\"u\":\"%RH\",\"v\":-0.5}]");
        r.nfields = 0;
        tg_encode_senml_json(&r, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "[{\"bn\":\"d:\",\"bt\":1600000000}]");

        /* strings are escaped */
        reading_fill(&r, "a\"b\\c", INT64_C(1600000000250));
        tg_reading_add_field(&r, "\x01", 1, 3);
        tg_encode_senml_json(&r, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "[{\"bn\":\"a\\\"b\\\\c:\",\"bt\":1600000000,"
                                    "\"n\":\"\\u0001\",\"v\":3,\"t\":0.25}]");
}

static void test_encode_cbor_bytes(void) {
        struct tg_reading r;
        uint8_t buf[256], want[256];
        size_t len, wlen;

        reading_fill(&r, "d", INT64_C(1600000000250));
        tg_reading_add_field(&r, "x", 1, 1.5);
        tg_reading_set_unit(&r, 0, "W", 1);
        tg_reading_add_field(&r, "y", 1, 2);
        len = tg_encode_senml_cbor(&r, buf, sizeof(buf));
        /* [{-2: "d:", -3: 1600000000, 0: "x", 1: "W", 2: 1.5, 6: 0.25},
         *  {0: "y", 2: 2.0, 6: 0.25}] */
        wlen = hex_to_bytes("82 a6 21 62 64 3a 22 1a 5f 5e 10 00 00 61 78 01 61 57"
                            " 02 fb 3f f8 00 00 00 00 00 00 06 fb 3f d0 00 00 00 00 00 00"
                            " a3 00 61 79 02 fb 40 00 00 00 00 00 00 00 06 fb 3f d0 00 00 00 00 00 00",
                            want, sizeof(want));
        CU_ASSERT_EQUAL(len, wlen);
        CU_ASSERT(len == wlen && !memcmp(buf, want, len));

        r.nfields = 0;
        r.ts_ms = INT64_C(1600000000000);
        len = tg_encode_senml_cbor(&r, buf, sizeof(buf));
        wlen = hex_to_bytes("81 a2 21 62 64 3a 22 1a 5f 5e 10 00", want, sizeof(want));
        CU_ASSERT(len == wlen && !memcmp(buf, want, len));
}

/* Every cap short of the need is refused; the exact need works. */
static void test_encode_caps(void) {
        struct tg_reading r;
        char jbuf[1024], *jh;
        uint8_t cbuf[1024], *ch;
        size_t jneed, cneed, cap;

        reading_fill(&r, "sensor-7", INT64_C(1700000000123));
        tg_reading_add_field(&r, "temperature", 11, 21.5);
        tg_reading_set_unit(&r, 0, "Cel", 3);
        tg_reading_add_field(&r, "humidity", 8, 40.25);
        jneed = tg_encode_senml_json(&r, jbuf, sizeof(jbuf));
        cneed = tg_encode_senml_cbor(&r, cbuf, sizeof(cbuf));
        CU_ASSERT_FATAL(jneed > 0 && cneed > 0);
        for (cap = 0; cap <= jneed + 1; cap++) {
                jh = malloc(cap ? cap : 1);
                CU_ASSERT_EQUAL(tg_encode_senml_json(&r, jh, cap), cap == jneed + 1 ? jneed : 0);
                free(jh);
        }
        for (cap = 0; cap <= cneed; cap++) {
                ch = malloc(cap ? cap : 1);
                CU_ASSERT_EQUAL(tg_encode_senml_cbor(&r, ch, cap), cap == cneed ? cneed : 0);
                free(ch);
        }
}

static void test_encode_refuses(void) {
        struct tg_reading r;
        char jbuf[512];
        uint8_t cbuf[512];

#define REFUSED(what)                                                          \
        do {                                                                   \
                CU_ASSERT_EQUAL(tg_encode_senml_json(&r, jbuf, sizeof(jbuf)), 0); \
                CU_ASSERT_STRING_EQUAL(jbuf, "");                              \
                CU_ASSERT_EQUAL(tg_encode_senml_cbor(&r, cbuf, sizeof(cbuf)), 0); \
        } while (0)

        /* before 2^28 s SenML reads the time as relative */
        reading_fill(&r, "d", INT64_C(268435456000) - 1);
        tg_reading_add_field(&r, "x", 1, 1);
        REFUSED("before 2^28 s");
        r.ts_ms = INT64_C(268435456000);
        CU_ASSERT(tg_encode_senml_json(&r, jbuf, sizeof(jbuf)) > 0);
        r.ts_ms = TG_TS_MAX;
        CU_ASSERT(tg_encode_senml_cbor(&r, cbuf, sizeof(cbuf)) > 0);
        r.ts_ms = TG_TS_MAX + 1;
        REFUSED("after 9999");
        r.ts_ms = -1;
        REFUSED("negative");
        r.ts_ms = INT64_C(1600000000000);
        r.fields[0].value = NAN;
        REFUSED("NaN");
        r.fields[0].value = -INFINITY;
        REFUSED("infinity");
        r.fields[0].value = 1;
        r.sensor_len = 0;
        r.sensor[0] = '\0';
        REFUSED("no sensor");
#undef REFUSED
}

static int readings_equal(const struct tg_reading *a, const struct tg_reading *b) {
        uint16_t i;

        if (a->sensor_len != b->sensor_len || memcmp(a->sensor, b->sensor, a->sensor_len) ||
            a->ts_ms != b->ts_ms || a->nfields != b->nfields)
                return 0;
        for (i = 0; i < a->nfields; i++)
                if (a->fields[i].name_len != b->fields[i].name_len ||
                    memcmp(a->fields[i].name, b->fields[i].name, a->fields[i].name_len) ||
                    strcmp(a->fields[i].unit, b->fields[i].unit) ||
                    !tg_same_bits(a->fields[i].value, b->fields[i].value))
                        return 0;
        return 1;
}

static void random_bytes(char *s, size_t n) {
        static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-:._/";
        size_t i;

        if (rng() % 4 == 0) { /* mostly RFC 8428 name characters, sometimes any text */
                tg_random_text(rng, s, n);
                return;
        }
        for (i = 0; i < n; i++)
                s[i] = safe[rng() % (sizeof(safe) - 1)];
}

static double random_value(void) {
        static const double special[] = {0.0, -0.0, 1.0, -1.0, DBL_MAX, -DBL_MAX, DBL_MIN,
                                         4.9406564584124654e-324, 0.1, 1e-300, 123456789.125};
        uint64_t x = rng();
        double d;

        if (x % 8 == 0)
                return special[(x >> 8) % (sizeof(special) / sizeof(*special))];
        if (x % 8 == 1)
                return (double)(int64_t)(rng() % 2000001) - 1000000.0;
        do {
                uint64_t bits = rng();

                memcpy(&d, &bits, sizeof(d));
        } while (!isfinite(d));
        return d;
}

static int64_t random_ts(void) {
        const int64_t lo = INT64_C(268435456000), hi = TG_TS_MAX + 1;
        uint64_t x = rng();

        switch (x % 6) {
        case 0: /* the edges */
                return (x >> 8) % 2 ? lo + (int64_t)((x >> 9) % 1000) : hi - 1 - (int64_t)((x >> 9) % 1000);
        case 1: /* around now */
                return INT64_C(1700000000000) + (int64_t)(rng() % INT64_C(1000000000000));
        case 2: /* the top octave of the range */
                return (hi >> 1) + (int64_t)(rng() % (uint64_t)(hi >> 1));
        default:
                return lo + (int64_t)(rng() % (uint64_t)(hi - lo));
        }
}

static void random_reading(struct tg_reading *r) {
        char s[TG_SENSOR_ID_MAX], name[TG_FIELD_NAME_MAX], unit[TG_UNIT_MAX];
        size_t len;
        int nf = (int)(rng() % (TG_READING_FIELDS_MAX + 1)), tries = 0;

        tg_reading_clear(r);
        len = 1 + rng() % TG_SENSOR_ID_MAX;
        random_bytes(s, len);
        tg_reading_set_sensor(r, s, len);
        r->ts_ms = random_ts();
        while (r->nfields < nf && tries++ < 100) {
                uint16_t before = r->nfields;

                len = 1 + rng() % TG_FIELD_NAME_MAX;
                random_bytes(name, len);
                tg_reading_add_field(r, name, len, random_value());
                if (r->nfields > before && rng() % 2) {
                        len = 1 + rng() % TG_UNIT_MAX;
                        random_bytes(unit, len);
                        tg_reading_set_unit(r, before, unit, len);
                }
        }
}

/* reading -> JSON -> reading -> CBOR -> reading -> JSON: all equal. */
static void test_round_trips(void) {
        static char jbuf[16384];
        static uint8_t cbuf[16384];
        struct tg_reading in, a[2], b[2], c[2];
        size_t jlen, clen, n, i, bad = 0, tested = 0, empty = 0;
        enum tg_decode_err e1, e2, e3;

        for (i = 0; i < 20000; i++) {
                random_reading(&in);
                jlen = tg_encode_senml_json(&in, jbuf, sizeof(jbuf));
                clen = tg_encode_senml_cbor(&in, cbuf, sizeof(cbuf));
                CU_ASSERT_FATAL(jlen > 0 && clen > 0);
                if (in.nfields == 0) {
                        e1 = decode(JSON, jbuf, jlen, &FIELD, a, 2, &n);
                        e2 = decode(CBOR, cbuf, clen, &FIELD, b, 2, &n);
                        if (e1 != TG_DECODE_NO_FIELDS || e2 != TG_DECODE_NO_FIELDS)
                                bad++;
                        empty++;
                        continue;
                }
                tested++;
                e1 = decode(JSON, jbuf, jlen, &FIELD, a, 2, &n);
                if (e1 || n != 1 || !readings_equal(&in, &a[0]) || a[0].ts_from_arrival) {
                        if (bad++ < 5)
                                tg_check(0, __LINE__, "json round trip: %s, %.300s", tg_decode_err_name(e1), jbuf);
                        continue;
                }
                clen = tg_encode_senml_cbor(&a[0], cbuf, sizeof(cbuf));
                e2 = decode(CBOR, cbuf, clen, &FIELD, b, 2, &n);
                if (e2 || n != 1 || !readings_equal(&in, &b[0])) {
                        if (bad++ < 5)
                                tg_check(0, __LINE__, "cbor round trip: %s, ts %" PRId64,
                                         tg_decode_err_name(e2), in.ts_ms);
                        continue;
                }
                jlen = tg_encode_senml_json(&b[0], jbuf, sizeof(jbuf));
                e3 = decode(JSON, jbuf, jlen, &FIELD, c, 2, &n);
                if (e3 || n != 1 || !readings_equal(&in, &c[0]))
                        bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(tested > 15000 && empty > 0);
}

/* The exact ms of every boundary and of a sweep of each octave. */
static void test_round_trip_time_range(void) {
        struct tg_reading in, out[1];
        char jbuf[256];
        uint8_t cbuf[256];
        size_t n, jlen, clen;
        int k, i, bad = 0;

        reading_fill(&in, "d", 0);
        tg_reading_add_field(&in, "x", 1, 1);
        for (k = 38; k <= 48; k++) {
                for (i = 0; i < 20000; i++) {
                        int64_t lo = INT64_C(1) << (k - 1), hi = INT64_C(1) << k;

                        if (lo < INT64_C(268435456000))
                                lo = INT64_C(268435456000);
                        if (hi > TG_TS_MAX + 1)
                                hi = TG_TS_MAX + 1;
                        in.ts_ms = i == 0 ? lo : i == 1 ? hi - 1 : lo + (int64_t)(rng() % (uint64_t)(hi - lo));
                        jlen = tg_encode_senml_json(&in, jbuf, sizeof(jbuf));
                        clen = tg_encode_senml_cbor(&in, cbuf, sizeof(cbuf));
                        if (decode(JSON, jbuf, jlen, &FIELD, out, 1, &n) || out[0].ts_ms != in.ts_ms)
                                bad++;
                        if (decode(CBOR, cbuf, clen, &FIELD, out, 1, &n) || out[0].ts_ms != in.ts_ms)
                                bad++;
                }
        }
        CU_ASSERT_EQUAL(bad, 0);
}

/* --- robustness ------------------------------------------------------------ */

/* Every prefix of every valid pack is refused, never read past its end. */
static void test_truncations(void) {
        static uint8_t cb[8192];
        uint8_t rfc[256];
        struct tg_reading out[CAP];
        size_t i, len, cut, n, bad = 0, tested = 0;
        enum tg_decode_err e;

        for (i = 0; i <= NEXAMPLES; i++) {
                const uint8_t *p;

                if (i < NEXAMPLES) {
                        for (int f = 0; f < 2; f++) {
                                const char *json = examples[i];

                                len = f == JSON ? strlen(json) : json_to_cbor(json, cb, sizeof(cb));
                                p = f == JSON ? (const uint8_t *)json : cb;
                                for (cut = 0; cut < len; cut++, tested++) {
                                        e = decode((enum fmt)f, p, cut, &SENSOR, out, CAP, &n);
                                        if (e != TG_DECODE_NOT_DECODABLE || n != 0) {
                                                if (bad++ < 5)
                                                        tg_check(0, __LINE__, "example %zu %s prefix %zu: %s",
                                                                 i, f == JSON ? "json" : "cbor", cut,
                                                                 tg_decode_err_name(e));
                                        }
                                }
                                CU_ASSERT_EQUAL(decode((enum fmt)f, p, len, &SENSOR, out, CAP, &n),
                                                TG_DECODE_OK);
                        }
                } else {
                        len = hex_to_bytes(ex_cbor_hex, rfc, sizeof(rfc));
                        for (cut = 0; cut < len; cut++, tested++)
                                if (decode(CBOR, rfc, cut, &FIELD, out, CAP, &n) != TG_DECODE_NOT_DECODABLE)
                                        bad++;
                }
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(tested > 4000);
        printf("(%zu prefixes) ", tested);
}

static int sane(enum tg_decode_err e, const struct tg_reading *out, size_t n, size_t cap) {
        size_t i;

        if ((unsigned)e >= TG_DECODE__COUNT)
                return 0;
        if (e != TG_DECODE_OK)
                return n == 0;
        if (n == 0 || n > cap)
                return 0;
        for (i = 0; i < n; i++)
                if (out[i].sensor_len == 0 || out[i].sensor_len > TG_SENSOR_ID_MAX ||
                    out[i].nfields == 0 || out[i].nfields > TG_READING_FIELDS_MAX ||
                    out[i].ts_ms <= -(INT64_C(1) << 53) || out[i].ts_ms >= INT64_C(1) << 53)
                        return 0;
        return 1;
}

/* Random byte flips, insertions and cuts of every example: no crash, no
 * read outside the payload (ASan), a sane answer every time. */
static void test_mutations(void) {
        static uint8_t base[8192], buf[8300];
        struct tg_reading out[CAP];
        size_t i, k, len, blen, n, runs = 0, bad = 0, ok = 0;
        enum tg_decode_err e;

        for (i = 0; i < 2 * NEXAMPLES + 1; i++) {
                enum fmt f = i < NEXAMPLES ? JSON : CBOR;

                if (i < NEXAMPLES) {
                        blen = strlen(examples[i]);
                        memcpy(base, examples[i], blen);
                } else if (i < 2 * NEXAMPLES) {
                        blen = json_to_cbor(examples[i - NEXAMPLES], base, sizeof(base));
                } else {
                        blen = hex_to_bytes(ex_cbor_hex, base, sizeof(base));
                }
                for (k = 0; k < 3000; k++, runs++) {
                        uint64_t x = rng();
                        int m, flips = 1 + (int)(x % 4);

                        memcpy(buf, base, blen);
                        len = blen;
                        for (m = 0; m < flips; m++) {
                                size_t at = (size_t)(rng() % len);

                                switch (rng() % 4) {
                                case 0:
                                        buf[at] = (uint8_t)rng();
                                        break;
                                case 1:
                                        buf[at] ^= (uint8_t)(1u << (rng() % 8));
                                        break;
                                case 2:
                                        if (len < sizeof(buf) - 1) {
                                                memmove(buf + at + 1, buf + at, len - at);
                                                buf[at] = (uint8_t)rng();
                                                len++;
                                        }
                                        break;
                                default:
                                        if (len > 1) {
                                                memmove(buf + at, buf + at + 1, len - at - 1);
                                                len--;
                                        }
                                }
                        }
                        e = decode(f, buf, len, k % 2 ? &FIELD : &SENSOR, out, CAP, &n);
                        if (!sane(e, out, n, CAP))
                                bad++;
                        ok += e == TG_DECODE_OK;
                }
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(ok > 0);
        CU_ASSERT_EQUAL(runs, (2 * NEXAMPLES + 1) * 3000);
}

/* Each thread parses JSON in its own arena. */
struct job {
        int failures;
};

static void *decode_thread(void *arg) {
        struct job *job = arg;
        struct tg_reading out[CAP];
        size_t n;
        int i;

        for (i = 0; i < 3000; i++) {
                if (tg_decode_senml_json(ex_collection, strlen(ex_collection), &FIELD, out, CAP, &n) ||
                    n != 2 || strcmp(out[1].sensor, "2001:db8::1") || out[1].fields[1].value != 67)
                        job->failures++;
                if (tg_decode_senml_json(ex_multi_time, strlen(ex_multi_time), &SENSOR, out, CAP, &n) ||
                    n != 7 || out[6].fields[0].value != 1.7)
                        job->failures++;
        }
        return NULL;
}

static void test_threads(void) {
        pthread_t th[4];
        struct job jobs[4] = {{0}};
        int i;

        for (i = 0; i < 4; i++)
                CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, decode_thread, &jobs[i]), 0);
        for (i = 0; i < 4; i++) {
                CU_ASSERT_EQUAL(pthread_join(th[i], NULL), 0);
                CU_ASSERT_EQUAL(jobs[i].failures, 0);
        }
}

/* --- registration ---------------------------------------------------------- */

int main(void) {
        static const struct tg_test tests[] = {
                {"RFC 8428 5.1.1 single datapoint", test_rfc_single_datapoint},
                {"RFC 8428 5.1.2 multiple datapoints", test_rfc_multiple_datapoints},
                {"RFC 8428 5.1.2 multiple datapoints with times", test_rfc_multiple_datapoints_time},
                {"RFC 8428 6 CBOR example bytes", test_rfc_cbor_example},
                {"RFC 8428 5.1.3 multiple measurements", test_rfc_multiple_measurements},
                {"RFC 8428 5.1.4 resolved records", test_rfc_resolved},
                {"RFC 8428 5.1.5 multiple data types", test_rfc_multiple_types},
                {"RFC 8428 5.1.6 collection of resources", test_rfc_collection},
                {"RFC 8428 5.1.7 actuators", test_rfc_actuators},
                {"field mapping: names", test_field_mapping_names},
                {"sensor mapping: names", test_sensor_mapping_names},
                {"base fields", test_base_fields},
                {"units", test_units},
                {"names and units are text", test_text},
                {"merging", test_merging},
                {"relative time and injected now", test_relative_time},
                {"time rounding", test_time_rounding},
                {"time errors", test_time_errors},
                {"reason codes", test_reason_codes},
                {"reason codes 2", test_reason_codes_2},
                {"CBOR specifics", test_cbor_specifics},
                {"a label twice in one record: duplicate_member", test_duplicate_labels},
                {"CBOR numbers", test_cbor_numbers},
                {"NULL options", test_null_opts},
                {"encode JSON text", test_encode_json_text},
                {"encode CBOR bytes", test_encode_cbor_bytes},
                {"encode: every cap", test_encode_caps},
                {"encode: unrepresentable readings", test_encode_refuses},
                {"round trips JSON <-> CBOR (random readings)", test_round_trips},
                {"round trips: exact ms over the whole range", test_round_trip_time_range},
                {"truncations of every example", test_truncations},
                {"mutations of every example", test_mutations},
                {"threads", test_threads},
        };

        return TG_TEST_RUN("senml", tests);
}
