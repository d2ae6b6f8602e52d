/* fuzz_decode.c - libFuzzer target for the payload decoders; FUZZ_<TARGET> picks the decoder. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One source, one decoder per build, chosen by exactly one macro:
 *
 *   FUZZ_JSON        tg_decode_json(), then tg_decode_json_ex()
 *   FUZZ_CBOR        tg_decode_cbor(), then tg_decode_cbor_ex()
 *   FUZZ_AUTO        tg_decode(TG_FORMAT_AUTO, ...), then tg_decode_ex(AUTO)
 *   FUZZ_SENML_JSON  tg_decode_senml_json()   (needs TG_HAVE_SENML)
 *   FUZZ_SENML_CBOR  tg_decode_senml_cbor()   (needs TG_HAVE_SENML)
 *
 * Every input is decoded once per configuration of the target: the defaults
 * first (the payload shape the simulator sends), then the mappings and
 * limits a subscription may set (timestamps in s, us or RFC 3339, other
 * key names, the id from the topic, arrival time, kept fields, tight
 * limits); for SenML, both name mappings.
 *
 * Besides the sanitizers' own findings, an input fails (__builtin_trap())
 * when the decoder returns a code outside enum tg_decode_err, when a reading
 * it accepted breaks the reading model's invariants (its event time within
 * [TG_TS_MIN, TG_TS_MAX] among them) or the configuration's limits, when
 * decoding the same bytes twice gives two different answers, or when an
 * accepted reading does not survive tg_encode_cbor -> tg_decode_cbor and
 * tg_encode_json -> tg_decode_json unchanged; for JSON and CBOR also when
 * the decoder's fast path and its general path alone
 * (tg_decode_json_cjson_ex, tg_decode_cbor_general_ex) differ in result or
 * reading, even the partial one a refusal leaves. SenML readings
 * must also come back exactly, units included, through
 * tg_encode_senml_json/cbor and the decoder under test when the encoder
 * can represent them. Each trap first
 * prints one line saying which check failed and on what.
 *
 * Built with clang -fsanitize=fuzzer it is a fuzzer; linked with
 * replay_main.c it replays a corpus directory under any compiler.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "reading.h"

#if defined(FUZZ_SENML_JSON) || defined(FUZZ_SENML_CBOR)
#ifndef TG_HAVE_SENML
#error "FUZZ_SENML_* needs the SenML decoder: define TG_HAVE_SENML and link common/codec_senml.c"
#endif
#define FUZZ_SENML 1
#endif

#ifdef TG_HAVE_SENML
#include "codec_senml.h"
#endif

#if defined(FUZZ_JSON)
#define FUZZ_TARGET "json"
#elif defined(FUZZ_CBOR)
#define FUZZ_TARGET "cbor"
#elif defined(FUZZ_AUTO)
#define FUZZ_TARGET "auto"
#elif defined(FUZZ_SENML_JSON)
#define FUZZ_TARGET "senml_json"
#elif defined(FUZZ_SENML_CBOR)
#define FUZZ_TARGET "senml_cbor"
#else
#error "define one of FUZZ_JSON, FUZZ_CBOR, FUZZ_AUTO, FUZZ_SENML_JSON, FUZZ_SENML_CBOR"
#endif

/* Largest encodings of a reading within the model's bounds: every byte of
 * the id and of 16 names escaped as \u00XX (6 bytes), 17-digit numbers;
 * a SenML pack adds a unit and a time per field. */
#define CBOR_OUT_MAX 2048
#define JSON_OUT_MAX 8192

#define ARRIVAL_MS 1732700000000LL       /* "now" of every configuration */

#ifdef FUZZ_SENML
#define READINGS_MAX 64 /* what the gateway passes (gateway/pipeline.c) */
/* SenML carries units; the flat CBOR/JSON encoders do not. */
#define FLAT_COMPARE_UNITS 0

static const struct tg_senml_opts configs[] = {
        {.names = TG_SENML_NAME_IS_FIELD, .now_ms = ARRIVAL_MS, .max_string = 0},
        {.names = TG_SENML_NAME_IS_SENSOR, .now_ms = ARRIVAL_MS, .max_string = 64},
};
#else
#define READINGS_MAX 1
#define FLAT_COMPARE_UNITS 1

static const char *const keep_fields[] = {"temperature", "humidity", "t", "f00", "f01"};

static const struct tg_decode_opts configs[] = {
        /* [0] is tg_decode_defaults, through the plain entry points. */
        {0},
        /* Seconds, other key names, kept fields, tight limits. */
        {.id_key = "id", .ts_key = "time", .ts_unit = TG_TS_UNIT_S,
         .keep = keep_fields, .nkeep = sizeof(keep_fields) / sizeof(*keep_fields),
         .max_payload = 1024, .max_depth = 4, .max_fields = 2, .max_id = 16,
         .max_string = 40},
        /* Microseconds, id from the topic, arrival time when ts is missing. */
        {.id_key = "sensor", .sensor = "topic/id", .sensor_len = 8, .ts_key = "ts",
         .ts_unit = TG_TS_UNIT_US, .ts_from_arrival = 1, .arrival_ms = ARRIVAL_MS,
         .max_payload = TG_PAYLOAD_MAX, .max_depth = TG_DEPTH_MAX,
         .max_fields = TG_READING_FIELDS_MAX, .max_id = TG_SENSOR_ID_MAX,
         .max_string = TG_PAYLOAD_MAX},
        /* RFC 3339 text timestamps. */
        {.id_key = "sensor", .ts_key = "ts", .ts_unit = TG_TS_UNIT_RFC3339,
         .max_payload = TG_PAYLOAD_MAX, .max_depth = TG_DEPTH_MAX,
         .max_fields = TG_READING_FIELDS_MAX, .max_id = TG_SENSOR_ID_MAX,
         .max_string = TG_PAYLOAD_MAX},
};
#endif

#define NCONFIGS ((int)(sizeof(configs) / sizeof(*configs)))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *check, int config, const struct tg_reading *r)
        __attribute__((noreturn));

static void fail(const char *check, int config, const struct tg_reading *r) {
        fprintf(stderr, "fuzz_decode(" FUZZ_TARGET ", config %d): %s", config, check);
        if (r)
                fprintf(stderr, " (sensor_len %u, ts %lld, nfields %u)",
                        (unsigned)r->sensor_len, (long long)r->ts_ms,
                        (unsigned)r->nfields);
        fputc('\n', stderr);
        fflush(stderr);
        __builtin_trap();
}

#define CHECK(cond, what, r)                                                   \
        do {                                                                   \
                if (!(cond))                                                   \
                        fail((what), config, (r));                             \
        } while (0)

/* What every accepted reading promises its consumers (reading.h). */
static void check_invariants(int config, const struct tg_reading *r) {
        uint16_t i, j;

        CHECK(r->sensor_len >= 1 && r->sensor_len <= TG_SENSOR_ID_MAX,
              "sensor_len out of 1..TG_SENSOR_ID_MAX", r);
        CHECK(tg_ts_valid(r->ts_ms), "event time outside [TG_TS_MIN, TG_TS_MAX]", r);
        CHECK(r->sensor[r->sensor_len] == '\0', "sensor not NUL-terminated", r);
        CHECK(tg_text_valid(r->sensor, r->sensor_len), "sensor not UTF-8 text without NUL", r);
        CHECK(r->nfields >= 1 && r->nfields <= TG_READING_FIELDS_MAX,
              "nfields out of 1..TG_READING_FIELDS_MAX", r);
        for (i = 0; i < r->nfields; i++) {
                const struct tg_field *f = &r->fields[i];

                CHECK(f->name_len >= 1 && f->name_len <= TG_FIELD_NAME_MAX,
                      "field name_len out of 1..TG_FIELD_NAME_MAX", r);
                CHECK(f->name[f->name_len] == '\0', "field name not NUL-terminated", r);
                CHECK(memchr(f->unit, '\0', sizeof(f->unit)) != NULL,
                      "field unit not NUL-terminated", r);
                CHECK(tg_text_valid(f->name, f->name_len) &&
                              tg_text_valid(f->unit, strlen(f->unit)),
                      "field name or unit not UTF-8 text without NUL", r);
                CHECK(isfinite(f->value), "field value not finite", r);
                for (j = 0; j < i; j++)
                        CHECK(r->fields[j].name_len != f->name_len ||
                                      memcmp(r->fields[j].name, f->name, f->name_len),
                              "field name present twice", r);
        }
}

#ifndef FUZZ_SENML
/* What the configuration promised on top. */
static void check_config(int config, const struct tg_reading *r) {
        const struct tg_decode_opts *o = config ? &configs[config] : &tg_decode_defaults;
        uint16_t i;
        size_t k;

        if (o->sensor)
                CHECK(r->sensor_len == o->sensor_len &&
                              !memcmp(r->sensor, o->sensor, o->sensor_len),
                      "id is not the topic's", r);
        else
                CHECK(r->sensor_len <= o->max_id, "id longer than max_id", r);
        CHECK(r->nfields <= o->max_fields, "more fields than max_fields", r);
        CHECK(!r->ts_from_arrival || (o->ts_from_arrival && r->ts_ms == o->arrival_ms),
              "arrival time used where it should not be", r);
        for (i = 0; o->keep && i < r->nfields; i++) {
                for (k = 0; k < o->nkeep; k++)
                        if (strlen(o->keep[k]) == r->fields[i].name_len &&
                            !memcmp(o->keep[k], r->fields[i].name, r->fields[i].name_len))
                                break;
                CHECK(k < o->nkeep, "a field not in the keep list", r);
        }
}
#endif

/* Same id, time, fields in the same order, same names and the same bits of
 * every value (so -0.0 and 0.0 differ). */
static int same_reading(const struct tg_reading *a, const struct tg_reading *b,
                        int units) {
        uint16_t i;

        if (a->sensor_len != b->sensor_len ||
            memcmp(a->sensor, b->sensor, a->sensor_len) || a->ts_ms != b->ts_ms ||
            a->nfields != b->nfields)
                return 0;
        for (i = 0; i < a->nfields; i++) {
                const struct tg_field *fa = &a->fields[i], *fb = &b->fields[i];

                if (fa->name_len != fb->name_len ||
                    memcmp(fa->name, fb->name, fa->name_len) ||
                    memcmp(&fa->value, &fb->value, sizeof(fa->value)))
                        return 0;
                if (units && strcmp(fa->unit, fb->unit))
                        return 0;
        }
        return 1;
}

/* A field the flat shape cannot carry: its name is one of the default keys
 * the flat encoders write the id and time under. Decoders configured with
 * other key names (or with the id from the topic) may keep such a field. */
static int has_key_named_field(const struct tg_reading *r) {
        uint16_t i;

        for (i = 0; i < r->nfields; i++)
                if (!strcmp(r->fields[i].name, "sensor") || !strcmp(r->fields[i].name, "ts"))
                        return 1;
        return 0;
}

/* The flat encoders write the default shape ("sensor", "ts" in ms), so the
 * default decoders must give the reading back, however it was decoded. */
static void check_round_trips(int config, const struct tg_reading *r) {
        static uint8_t cbor[CBOR_OUT_MAX];
        static char json[JSON_OUT_MAX];
        static struct tg_reading back;
        size_t n;

        if (has_key_named_field(r))
                return;
        n = tg_encode_cbor(r, cbor, sizeof(cbor));
        CHECK(n > 0, "tg_encode_cbor refused an accepted reading", r);
        CHECK(tg_decode_cbor(cbor, n, &back) == TG_DECODE_OK,
              "tg_decode_cbor refused tg_encode_cbor's output", r);
        CHECK(same_reading(r, &back, FLAT_COMPARE_UNITS),
              "reading changed through tg_encode_cbor -> tg_decode_cbor", r);

        n = tg_encode_json(r, json, sizeof(json));
        CHECK(n > 0, "tg_encode_json refused an accepted reading", r);
        CHECK(tg_decode_json(json, n, &back) == TG_DECODE_OK,
              "tg_decode_json refused tg_encode_json's output", r);
        CHECK(same_reading(r, &back, FLAT_COMPARE_UNITS),
              "reading changed through tg_encode_json -> tg_decode_json", r);
}

/* Decode with configuration @p config into @p out; @p n readings filled. */
static enum tg_decode_err decode(const uint8_t *data, size_t size, int config,
                                 struct tg_reading *out, size_t *n) {
        enum tg_decode_err err;

#if defined(FUZZ_SENML_JSON)
        err = tg_decode_senml_json(data, size, &configs[config], out, READINGS_MAX, n);
#elif defined(FUZZ_SENML_CBOR)
        err = tg_decode_senml_cbor(data, size, &configs[config], out, READINGS_MAX, n);
#elif defined(FUZZ_JSON)
        err = config ? tg_decode_json_ex(data, size, &configs[config], out)
                     : tg_decode_json(data, size, out);
#elif defined(FUZZ_CBOR)
        err = config ? tg_decode_cbor_ex(data, size, &configs[config], out)
                     : tg_decode_cbor(data, size, out);
#else
        err = config ? tg_decode_ex(TG_FORMAT_AUTO, data, size, &configs[config], out)
                     : tg_decode(TG_FORMAT_AUTO, data, size, out);
#endif
#ifndef FUZZ_SENML
        *n = err == TG_DECODE_OK;
#endif
        return err;
}

#ifdef FUZZ_SENML
/* The pack encoders promise an exact round trip (values, units) through
 * the decoder of the same encoding, field mapping. */
static void check_senml_round_trip(int config, const struct tg_reading *r) {
        static uint8_t pack[JSON_OUT_MAX];
        static struct tg_reading back[READINGS_MAX];
        size_t len, n = 0;
        enum tg_decode_err err;

#if defined(FUZZ_SENML_JSON)
        len = tg_encode_senml_json(r, (char *)pack, sizeof(pack));
#else
        len = tg_encode_senml_cbor(r, pack, sizeof(pack));
#endif
        if (!len)
                return; /* not representable as SenML (documented) */
#if defined(FUZZ_SENML_JSON)
        err = tg_decode_senml_json(pack, len, &configs[0], back, READINGS_MAX, &n);
#else
        err = tg_decode_senml_cbor(pack, len, &configs[0], back, READINGS_MAX, &n);
#endif
        CHECK(err == TG_DECODE_OK && n == 1, "SenML decoder refused the SenML encoder's pack", r);
        CHECK(same_reading(r, &back[0], 1), "reading changed through SenML encode -> decode", r);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct tg_reading r[READINGS_MAX], again[READINGS_MAX];
        enum tg_decode_err err, err2;
        size_t n, n2, i;
        int config;

        for (config = 0; config < NCONFIGS; config++) {
                n = n2 = (size_t)-1;
                err = decode(data, size, config, r, &n);
                CHECK((unsigned)err < TG_DECODE__COUNT, "decoder returned an unknown code", NULL);
                CHECK(err == TG_DECODE_OK ? n >= 1 && n <= READINGS_MAX : n == 0,
                      "reading count does not match the result", NULL);
                /* Decoding keeps no state between payloads (the JSON arena
                 * is reset per parse): the same bytes give the same answer. */
                err2 = decode(data, size, config, again, &n2);
                CHECK(err2 == err && n2 == n, "same payload decoded twice gave two answers", NULL);
                for (i = 0; i < n; i++) {
                        CHECK(same_reading(&r[i], &again[i], 1) &&
                                      r[i].ts_from_arrival == again[i].ts_from_arrival,
                              "same payload decoded twice gave two readings", &r[i]);
                        check_invariants(config, &r[i]);
#ifdef FUZZ_SENML
                        check_senml_round_trip(config, &r[i]);
#else
                        check_config(config, &r[i]);
#endif
                        check_round_trips(config, &r[i]);
                }
#if defined(FUZZ_JSON) || defined(FUZZ_CBOR)
                /* The fast path and the general decoder agree on everything. */
#if defined(FUZZ_JSON)
                err2 = tg_decode_json_cjson_ex(data, size,
                                               config ? &configs[config] : &tg_decode_defaults,
                                               again);
#else
                err2 = tg_decode_cbor_general_ex(data, size,
                                                 config ? &configs[config] : &tg_decode_defaults,
                                                 again);
#endif
                CHECK(err2 == err, "the fast path and the general decoder gave two answers",
                      NULL);
                CHECK(same_reading(&r[0], &again[0], 1) &&
                              r[0].ts_from_arrival == again[0].ts_from_arrival,
                      "the fast path and the general decoder gave two readings", &r[0]);
#endif
        }
        return 0;
}
