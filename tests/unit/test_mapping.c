/* test_mapping.c - CUnit tests of payload mapping: id and timestamp sources, units, kept fields, limits. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <cbor.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "tg_test.h"

static struct tg_reading r;

static enum tg_decode_err json(const struct tg_decode_opts *o, const char *text) {
        return tg_decode_json_ex(text, strlen(text), o, &r);
}

static void test_id_and_ts_keys(void) {
        struct tg_decode_opts o = tg_decode_defaults;

        o.id_key = "dev";
        o.ts_key = "time";
        CU_ASSERT_EQUAL(json(&o, "{\"dev\":\"m1\",\"time\":5,\"x\":1}"), TG_DECODE_OK);
        CU_ASSERT_STRING_EQUAL(r.sensor, "m1");
        CU_ASSERT_EQUAL(r.ts_ms, 5);
        /* the default names are now ordinary members: "ts" is a field */
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"m1\",\"ts\":5,\"x\":1}"), TG_DECODE_MISSING_ID);
        CU_ASSERT_EQUAL(json(&o, "{\"dev\":\"m1\",\"ts\":5,\"x\":1}"), TG_DECODE_MISSING_TS);
}

/* Issue 12, items 4 and 5: every unit refuses a time outside
 * [1 ms, 9999-12-31T23:59:59.999Z] as timestamp_out_of_range, and one that
 * is no time at all as invalid_timestamp; JSON and CBOR alike. */
static enum tg_decode_err cbor_ts(const struct tg_decode_opts *o, int neg, uint64_t v) {
        unsigned char cb[64];
        size_t n = cbor_encode_map_start(3, cb, sizeof(cb));

        n += cbor_encode_string_start(6, cb + n, sizeof(cb) - n);
        memcpy(cb + n, "sensor", 6), n += 6;
        n += cbor_encode_string_start(1, cb + n, sizeof(cb) - n);
        cb[n++] = 'a';
        n += cbor_encode_string_start(2, cb + n, sizeof(cb) - n);
        memcpy(cb + n, "ts", 2), n += 2;
        n += neg ? cbor_encode_negint(v, cb + n, sizeof(cb) - n)
                 : cbor_encode_uint(v, cb + n, sizeof(cb) - n);
        n += cbor_encode_string_start(1, cb + n, sizeof(cb) - n);
        cb[n++] = 'x';
        n += cbor_encode_uint(1, cb + n, sizeof(cb) - n);
        return tg_decode_cbor_ex(cb, n, o, &r);
}

#define TS_JSON(o, text) json((o), "{\"sensor\":\"a\",\"ts\":" text ",\"x\":1}")

static void test_ts_units(void) {
        struct tg_decode_opts o = tg_decode_defaults;
        int64_t ms;

        o.ts_unit = TG_TS_UNIT_S;
        CU_ASSERT_EQUAL(TS_JSON(&o, "1732530000.1234"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1732530000123);
        CU_ASSERT_EQUAL(TS_JSON(&o, "0.001"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1);
        CU_ASSERT_EQUAL(TS_JSON(&o, "253402300799.999"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, TG_TS_MAX);
        CU_ASSERT_EQUAL(TS_JSON(&o, "0"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "0.0004"), TG_DECODE_TS_OUT_OF_RANGE); /* 0 ms */
        CU_ASSERT_EQUAL(TS_JSON(&o, "-1.5"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "253402300800"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "9007199254740.992"), TG_DECODE_TS_OUT_OF_RANGE); /* 2^53 ms */
        CU_ASSERT_EQUAL(TS_JSON(&o, "1e300"), TG_DECODE_TS_OUT_OF_RANGE); /* * 1000 overflows */
        CU_ASSERT_EQUAL(TS_JSON(&o, "1.7976931348623157e308"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "-1e400"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"1\""), TG_DECODE_INVALID_TS);
        /* CBOR integers in s: the scaling must not overflow */
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 253402300799), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, INT64_C(253402300799000));
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 1), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1000);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 253402300800), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 0), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 1, 0), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, INT64_MAX / 1000 + 1), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, INT64_MAX), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, UINT64_MAX), TG_DECODE_TS_OUT_OF_RANGE);

        o.ts_unit = TG_TS_UNIT_US;
        CU_ASSERT_EQUAL(TS_JSON(&o, "1732530000123999"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1732530000123);
        CU_ASSERT_EQUAL(TS_JSON(&o, "1000"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1);
        CU_ASSERT_EQUAL(TS_JSON(&o, "999"), TG_DECODE_TS_OUT_OF_RANGE); /* floor: 0 ms */
        CU_ASSERT_EQUAL(TS_JSON(&o, "-1"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "0"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "9007199254740991"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, INT64_C(9007199254740));
        /* from 2^53 us (2255) a double skips integers: no exact time */
        CU_ASSERT_EQUAL(TS_JSON(&o, "9007199254740992"), TG_DECODE_INVALID_TS);
        CU_ASSERT_EQUAL(TS_JSON(&o, "253402300800000000"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "1e300"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "-1e300"), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "1.5"), TG_DECODE_INVALID_TS);
        /* CBOR integers in us are exact to the end of the range */
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 253402300799999999), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, TG_TS_MAX);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 9007199254740993), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, INT64_C(9007199254740));
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 253402300800000000), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 999), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 1, 0), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, INT64_MAX), TG_DECODE_TS_OUT_OF_RANGE);

        o.ts_unit = TG_TS_UNIT_RFC3339;
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"2024-11-25T10:00:00.123Z\""), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1732528800123);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"1970-01-01T00:00:00.001Z\""), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 1);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"9999-12-31T23:59:59.999Z\""), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, TG_TS_MAX);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"9999-12-31T23:59:60.999Z\""), TG_DECODE_OK); /* leap */
        CU_ASSERT_EQUAL(r.ts_ms, TG_TS_MAX);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"1970-01-01T00:00:00Z\""), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"1970-01-01T00:00:00.0009Z\""), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"1970-01-01T01:00:00+01:00\""), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"1969-12-31T23:59:59.999Z\""), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"0000-01-01T00:00:00Z\""), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"9999-12-31T23:59:59.999-00:01\""), TG_DECODE_TS_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(TS_JSON(&o, "1732528800123"), TG_DECODE_INVALID_TS);
        CU_ASSERT_EQUAL(TS_JSON(&o, "\"2024-02-30T00:00:00Z\""), TG_DECODE_INVALID_TS);
        CU_ASSERT_EQUAL(cbor_ts(&o, 0, 1), TG_DECODE_INVALID_TS);

        /* the parser itself knows no range: the decoders apply it */
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("1970-01-01T00:00:00Z", 20, &ms), 0);
        CU_ASSERT_EQUAL(ms, 0);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("1970-01-01T02:00:00+02:00", 25, &ms), 0);
        CU_ASSERT_EQUAL(ms, 0);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("1969-12-31T23:59:59.9999Z", 25, &ms), 0);
        CU_ASSERT_EQUAL(ms, -1);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2024-02-29T12:00:00Z", 20, &ms), 0);
        CU_ASSERT_EQUAL(ms, 1709208000000);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2023-02-29T12:00:00Z", 20, &ms), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2024-13-01T00:00:00Z", 20, &ms), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2024-01-01T00:00:00", 19, &ms), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2024-01-01T00:00:00.Z", 21, &ms), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2024-01-01T00:00:00Zx", 21, &ms), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_rfc3339_ms("2024-01-01T24:00:00Z", 20, &ms), -EINVAL);
}

static void test_ts_from_arrival(void) {
        struct tg_decode_opts o = tg_decode_defaults;

        o.ts_from_arrival = 1;
        o.arrival_ms = 777;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"x\":1}"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 777);
        CU_ASSERT_EQUAL(r.ts_from_arrival, 1);
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":5,\"x\":1}"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.ts_ms, 5);
        CU_ASSERT_EQUAL(r.ts_from_arrival, 0);
        /* a timestamp that is there but wrong is still refused */
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":\"x\",\"x\":1}"), TG_DECODE_INVALID_TS);
}

static void test_keep_and_topic_id(void) {
        static const char *const keep[] = {"temperature", "pressure"};
        struct tg_decode_opts o = tg_decode_defaults;
        const char *id;
        size_t len;

        o.keep = keep;
        o.nkeep = 2;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"temperature\":1,\"humidity\":2,"
                                 "\"pressure\":3}"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(r.nfields, 2);
        CU_ASSERT_STRING_EQUAL(r.fields[1].name, "pressure");
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"humidity\":2}"), TG_DECODE_NO_FIELDS);

        CU_ASSERT_EQUAL(tg_topic_sensor("sensors/{sensor}/telemetry", "sensors/m-7/telemetry",
                                        &id, &len), 0);
        CU_ASSERT_EQUAL(len, 3);
        CU_ASSERT_EQUAL(memcmp(id, "m-7", 3), 0);
        CU_ASSERT_EQUAL(tg_topic_sensor("+/x/{sensor}", "plant/x/p9", &id, &len), 0);
        CU_ASSERT_EQUAL(memcmp(id, "p9", 2), 0);
        CU_ASSERT_EQUAL(tg_topic_sensor("sensors/{sensor}/telemetry", "sensors/m-7", &id, &len), -1);
        CU_ASSERT_EQUAL(tg_topic_sensor("sensors/{sensor}", "sensors/m-7/extra", &id, &len), -1);
        CU_ASSERT_EQUAL(tg_topic_sensor("sensors/+", "sensors/m-7", &id, &len), -1);

        /* an id from the topic wins over the payload's */
        o = tg_decode_defaults;
        o.sensor = "from-topic";
        o.sensor_len = 10;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"from-payload\",\"ts\":1,\"x\":1}"), TG_DECODE_OK);
        CU_ASSERT_STRING_EQUAL(r.sensor, "from-topic");
        CU_ASSERT_EQUAL(json(&o, "{\"ts\":1,\"x\":1}"), TG_DECODE_OK);
}

static void test_limits(void) {
        struct tg_decode_opts o = tg_decode_defaults;
        unsigned char cb[512];
        size_t n;
        char big[300];

        o.max_string = 10;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"note\":\"0123456789\"}"),
                        TG_DECODE_OK);
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"note\":\"0123456789A\"}"),
                        TG_DECODE_STRING_TOO_LONG);
        /* the same in CBOR: a map with an 11-byte text value */
        n = cbor_encode_map_start(4, cb, sizeof(cb));
        n += cbor_encode_string_start(6, cb + n, sizeof(cb) - n);
        memcpy(cb + n, "sensor", 6), n += 6;
        n += cbor_encode_string_start(1, cb + n, sizeof(cb) - n);
        cb[n++] = 'a';
        n += cbor_encode_string_start(2, cb + n, sizeof(cb) - n);
        memcpy(cb + n, "ts", 2), n += 2;
        n += cbor_encode_uint(1, cb + n, sizeof(cb) - n);
        n += cbor_encode_string_start(1, cb + n, sizeof(cb) - n);
        cb[n++] = 'x';
        n += cbor_encode_uint(1, cb + n, sizeof(cb) - n);
        n += cbor_encode_string_start(4, cb + n, sizeof(cb) - n);
        memcpy(cb + n, "note", 4), n += 4;
        n += cbor_encode_string_start(11, cb + n, sizeof(cb) - n);
        memcpy(cb + n, "0123456789A", 11), n += 11;
        CU_ASSERT_EQUAL(tg_decode_cbor_ex(cb, n, &o, &r), TG_DECODE_STRING_TOO_LONG);
        o.max_string = 11;
        CU_ASSERT_EQUAL(tg_decode_cbor_ex(cb, n, &o, &r), TG_DECODE_OK);

        o = tg_decode_defaults;
        o.max_depth = 2;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"n\":[1]}"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"n\":[[1]]}"), TG_DECODE_TOO_DEEP);
        o = tg_decode_defaults;
        o.max_fields = 2;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"y\":2}"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"a\",\"ts\":1,\"x\":1,\"y\":2,\"z\":3}"),
                        TG_DECODE_TOO_MANY_FIELDS);
        o = tg_decode_defaults;
        o.max_id = 3;
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"abc\",\"ts\":1,\"x\":1}"), TG_DECODE_OK);
        CU_ASSERT_EQUAL(json(&o, "{\"sensor\":\"abcd\",\"ts\":1,\"x\":1}"), TG_DECODE_BAD_ID);
        o = tg_decode_defaults;
        o.max_payload = 100;
        memset(big, ' ', sizeof(big));
        memcpy(big, "{\"sensor\":\"a\",\"ts\":1,\"x\":1}", 27);
        CU_ASSERT_EQUAL(tg_decode_json_ex(big, 100, &o, &r), TG_DECODE_OK);
        CU_ASSERT_EQUAL(tg_decode_json_ex(big, 101, &o, &r), TG_DECODE_TOO_LARGE);
}

static void test_raw_record_units(void) {
        char buf[256];
        size_t n;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, "d", 1);
        r.ts_ms = 5;
        tg_reading_add_field(&r, "t", 1, 1.5);
        tg_reading_add_field(&r, "h", 1, 2);
        n = tg_encode_raw_record(&r, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "{\"sensor\":\"d\",\"ts\":5,\"fields\":{\"t\":1.5,\"h\":2}}");
        CU_ASSERT_EQUAL(n, strlen(buf));
        CU_ASSERT_EQUAL(tg_reading_set_unit(&r, 0, "Cel", 3), 0);
        n = tg_encode_raw_record(&r, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "{\"sensor\":\"d\",\"ts\":5,\"fields\":{\"t\":1.5,\"h\":2},"
                                    "\"units\":{\"t\":\"Cel\"}}");
        CU_ASSERT_EQUAL(tg_encode_raw_record(&r, buf, n), 0); /* no room for the NUL */
}

static void test_filter_match(void) {
        static const struct {
                const char *filter, *topic;
                int match;
        } cases[] = {
                {"sensors/+/telemetry", "sensors/a/telemetry", 1},
                {"sensors/+/telemetry", "sensors//telemetry", 1},
                {"sensors/+/telemetry", "sensors/a/b/telemetry", 0},
                {"sensors/+/telemetry", "sensors/a/telemetryx", 0},
                {"sensors/+/telemetry", "sensors/a", 0},
                {"sensors/#", "sensors", 1},
                {"sensors/#", "sensors/a/b/c", 1},
                {"sensors/#", "sensorsx/a", 0},
                {"#", "a/b", 1},
                {"#", "$SYS/x", 0},
                {"+/x", "$SYS/x", 0},
                {"$SYS/#", "$SYS/x", 1},
                {"a/b", "a/b", 1},
                {"a/b", "a/b/c", 0},
                {"a/b/c", "a/b", 0},
                {"+", "a", 1},
                {"+", "a/b", 0},
                {"a/+/+", "a/b/c", 1},
        };
        size_t i;

        for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                int got = tg_topic_filter_match(cases[i].filter, cases[i].topic);

                if (got != cases[i].match)
                        fprintf(stderr, "filter %s topic %s: %d, want %d\n",
                                cases[i].filter, cases[i].topic, got, cases[i].match);
                CU_ASSERT_EQUAL(got, cases[i].match);
        }
}

int main(void) {
        static const struct tg_test tests[] = {
                {"id and timestamp member names", test_id_and_ts_keys},
                {"timestamp units: s, us, RFC 3339", test_ts_units},
                {"missing timestamp: arrival time", test_ts_from_arrival},
                {"kept fields and id from the topic", test_keep_and_topic_id},
                {"limits: string, depth, fields, id, payload", test_limits},
                {"MQTT topic filters", test_filter_match},
                {"units in the raw record", test_raw_record_units},
        };

        return TG_TEST_RUN("mapping", tests);
}
