/* codec.h - payload codecs: JSON and CBOR readings in, JSON records out. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CODEC_H
#define TG_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reading.h"

/** Payload formats a subscription may carry. */
enum tg_format {
        TG_FORMAT_AUTO = 0,     /**< by the first byte: JSON object or array (SenML), CBOR map or array (SenML) */
        TG_FORMAT_JSON,
        TG_FORMAT_CBOR,
        TG_FORMAT_SENML_JSON, /**< RFC 8428 pack, JSON */
        TG_FORMAT_SENML_CBOR, /**< RFC 8428 pack, CBOR */
        TG_FORMAT_SPARKPLUG,  /**< Sparkplug B (sparkplug.h): stateful, decoded by the worker */
};

/** Why a payload could not become a reading. Stable: these names are the
 *  reason codes operators see in logs, counters and dead-letter headers. */
enum tg_decode_err {
        TG_DECODE_OK = 0,
        TG_DECODE_NOT_DECODABLE,   /**< not well-formed JSON/CBOR */
        TG_DECODE_WRONG_TYPE,      /**< top level not an object/map, or a key of the wrong type */
        TG_DECODE_MISSING_ID,      /**< no sensor id */
        TG_DECODE_BAD_ID,          /**< id empty, too long or not a string */
        TG_DECODE_MISSING_TS,      /**< no event timestamp */
        TG_DECODE_INVALID_TS,      /**< timestamp not a number or text of its unit (NaN, a fraction of a ms) */
        TG_DECODE_NO_FIELDS,       /**< no numeric field */
        TG_DECODE_TOO_MANY_FIELDS,
        TG_DECODE_BAD_FIELD_NAME,  /**< field name empty or too long */
        TG_DECODE_NON_FINITE,      /**< NaN or infinity */
        TG_DECODE_TOO_LARGE,       /**< payload or its parse tree over the limit */
        TG_DECODE_TOO_DEEP,        /**< containers nested deeper than the limit */
        TG_DECODE_STRING_TOO_LONG, /**< a string member over the limit */
        TG_DECODE_BAD_SENML,       /**< not a SenML pack of a version we read (RFC 8428) */
        TG_DECODE_TS_OUT_OF_RANGE, /**< a timestamp outside [TG_TS_MIN, TG_TS_MAX] (reading.h) */
        TG_DECODE_DUPLICATE_MEMBER,/**< the id, the timestamp or a field given twice; a SenML label twice in a record */
        TG_DECODE__COUNT
};

/** @brief Stable reason code for @p err, e.g. "missing_id". */
const char *tg_decode_err_name(enum tg_decode_err err);

/** @brief A sentence for people saying what is wrong, e.g. for dead letters. */
const char *tg_decode_err_message(enum tg_decode_err err);

/**
 * @brief tg_decode_err_message(@p err), except that for
 *        TG_DECODE_DUPLICATE_MEMBER it names the member (or SenML label)
 *        given twice in the last payload the calling thread's decoders
 *        refused for it. Call it on the thread that decoded, before its
 *        next decode. The text lives until then.
 */
const char *tg_decode_err_detail(enum tg_decode_err err);

/** @brief Parse "auto", "json", "cbor", "senml-json", "senml-cbor" or "sparkplug". @return 0 or -EINVAL. */
int tg_format_parse(const char *s, enum tg_format *out);
const char *tg_format_name(enum tg_format f);

/** Units of a payload's event timestamp. */
enum tg_ts_unit {
        TG_TS_UNIT_MS = 0,  /**< integer milliseconds since the epoch */
        TG_TS_UNIT_S,       /**< seconds since the epoch, fractions allowed */
        TG_TS_UNIT_US,      /**< integer microseconds since the epoch */
        TG_TS_UNIT_RFC3339, /**< text such as 2026-11-25T10:00:00.123Z */
};

/** @brief Parse "ms", "s", "us" or "rfc3339". @return 0 or -EINVAL. */
int tg_ts_unit_parse(const char *s, enum tg_ts_unit *out);

/**
 * How a flat JSON object or CBOR map becomes a reading, and the limits
 * enforced before any other work. Strings are borrowed.
 */
struct tg_decode_opts {
        const char *id_key;        /**< member holding the sensor id */
        const char *sensor;        /**< id from the MQTT topic: overrides id_key when set */
        size_t sensor_len;
        const char *ts_key;        /**< member holding the event time */
        enum tg_ts_unit ts_unit;
        int ts_from_arrival;       /**< no timestamp member: use arrival_ms */
        int64_t arrival_ms;
        const char *const *keep;   /**< only these fields; NULL: every numeric member */
        size_t nkeep;
        size_t max_payload;        /**< bytes, <= TG_PAYLOAD_MAX */
        size_t max_depth;          /**< <= TG_DEPTH_MAX */
        size_t max_fields;         /**< <= TG_READING_FIELDS_MAX */
        size_t max_id;             /**< <= TG_SENSOR_ID_MAX */
        size_t max_string;         /**< longest string member of any kind */
};

/** The defaults: "sensor", "ts" in ms, every numeric field, the hard limits. */
extern const struct tg_decode_opts tg_decode_defaults;

/** For the decoders: the mapping's two key names with their lengths,
 *  measured once a payload rather than once a key. */
struct tg_decode_keys {
        const char *id, *ts; /**< id NULL when the id comes from the topic */
        size_t id_len, ts_len;
};

static inline void tg_decode_keys_init(struct tg_decode_keys *k,
                                       const struct tg_decode_opts *o) {
        k->id = o->sensor ? NULL : o->id_key;
        k->id_len = k->id ? strlen(k->id) : 0;
        k->ts = o->ts_key;
        k->ts_len = k->ts ? strlen(k->ts) : 0;
}

/** Largest payload the decoders accept; larger ones fail with TOO_LARGE. */
#define TG_PAYLOAD_MAX (64 * 1024)
/** Deepest nesting of arrays/maps the decoders accept (TOO_DEEP beyond). */
#define TG_DEPTH_MAX 16

/**
 * @brief Decode one payload into @p out (caller storage, fully overwritten).
 *
 * The payload is an object/map with a text member "sensor" (the id), an
 * integer member "ts" (event time in ms since the epoch, within
 * [TG_TS_MIN, TG_TS_MAX]) and any number of numeric members, each becoming a
 * field. Members of other types are ignored. The id, the timestamp or a
 * field given twice is TG_DECODE_DUPLICATE_MEMBER.
 * Allocation-free: JSON is parsed in a thread-local arena.
 *
 * @return TG_DECODE_OK or the reason the payload was refused.
 */
enum tg_decode_err tg_decode(enum tg_format fmt, const void *payload,
                             size_t len, struct tg_reading *out);

enum tg_decode_err tg_decode_json(const void *payload, size_t len,
                                  struct tg_reading *out);
enum tg_decode_err tg_decode_cbor(const void *payload, size_t len,
                                  struct tg_reading *out);

/**
 * @brief The format of @p payload when @p fmt is AUTO: a JSON object or a
 *        CBOR map is a flat reading, a JSON or CBOR array a SenML pack.
 */
enum tg_format tg_format_detect(enum tg_format fmt, const void *payload, size_t len);

/** @brief tg_decode() with a mapping and limits. */
enum tg_decode_err tg_decode_ex(enum tg_format fmt, const void *payload,
                                size_t len, const struct tg_decode_opts *opts,
                                struct tg_reading *out);
enum tg_decode_err tg_decode_json_ex(const void *payload, size_t len,
                                     const struct tg_decode_opts *opts,
                                     struct tg_reading *out);
enum tg_decode_err tg_decode_cbor_ex(const void *payload, size_t len,
                                     const struct tg_decode_opts *opts,
                                     struct tg_reading *out);

/**
 * @brief tg_decode_json_ex() without its fast path: the prescan and cJSON
 *        decide every payload. The two agree on every input (same result,
 *        same reading); the tests and the JSON fuzzer compare them.
 */
enum tg_decode_err tg_decode_json_cjson_ex(const void *payload, size_t len,
                                           const struct tg_decode_opts *opts,
                                           struct tg_reading *out);

/**
 * @brief tg_decode_cbor_ex() without its fast path for flat maps: the
 *        general walk decides every payload. The two agree on every input;
 *        the tests and the CBOR fuzzer compare them.
 */
enum tg_decode_err tg_decode_cbor_general_ex(const void *payload, size_t len,
                                             const struct tg_decode_opts *opts,
                                             struct tg_reading *out);

/**
 * @brief Parse an RFC 3339 date-time ("2026-11-25T10:00:00.123Z",
 *        "...+02:00") to ms since the epoch; fractions beyond ms are dropped
 *        (rounded toward minus infinity).
 * @return 0 or -EINVAL.
 */
int tg_parse_rfc3339_ms(const char *s, size_t len, int64_t *out);

/**
 * @brief Take the sensor id from an MQTT topic: @p pattern is matched level
 *        by level ('+' matches any one level, "{sensor}" any one level and
 *        captures it), e.g. "sensors/{sensor}/telemetry".
 * @return 0 with the id (pointing into @p topic), or -1 if it does not match.
 */
int tg_topic_sensor(const char *pattern, const char *topic, const char **id,
                    size_t *id_len);

/**
 * @brief Whether an MQTT topic matches a subscription's topic filter
 *        ('+' one level, '#' the rest; topics starting with '$' match no
 *        filter starting with a wildcard, as MQTT 3.1.1 §4.7.2 says).
 */
int tg_topic_filter_match(const char *filter, const char *topic);

/**
 * Shared by the decoders: a timestamp in unit @p u to ms, checked against
 * [TG_TS_MIN, TG_TS_MAX]. TG_DECODE_INVALID_TS when it is no time at all
 * (NaN; a fraction of a ms or us; in us, a double of 2^53 or more, which
 * cannot hold every integer; text that is not RFC 3339), and
 * TG_DECODE_TS_OUT_OF_RANGE when it is a time outside the range (infinities
 * included); *out is set only on TG_DECODE_OK.
 */
enum tg_decode_err tg_ts_from_int(int64_t v, enum tg_ts_unit u, int64_t *out);
enum tg_decode_err tg_ts_from_double(double d, enum tg_ts_unit u, int64_t *out);
enum tg_decode_err tg_ts_from_rfc3339(const char *s, size_t len, int64_t *out);

/**
 * Shared by the decoders: refuse a payload for giving a member twice,
 * keeping the sentence tg_decode_err_detail() returns.
 * @param what "member" or "SenML label"; @p name its name (@p len bytes).
 * @return TG_DECODE_DUPLICATE_MEMBER.
 */
enum tg_decode_err tg_decode_duplicate(const char *what, const char *name, size_t len);

/** Shared by the decoders: id from the topic, arrival time, final checks. */
enum tg_decode_err tg_decode_finish(const struct tg_decode_opts *o,
                                    struct tg_reading *out, int have_id,
                                    int have_ts);

/** Shared by the decoders: the member is the id, the timestamp, a field? */
int tg_decode_key_is(const char *key, size_t klen, const char *want);
int tg_decode_keep_field(const struct tg_decode_opts *o, const char *name,
                         size_t len);

/**
 * @brief Encode @p r as a CBOR map of the shape tg_decode() accepts.
 * @return bytes written, or 0 if @p cap is too small.
 */
size_t tg_encode_cbor(const struct tg_reading *r, uint8_t *buf, size_t cap);

/**
 * @brief Encode @p r as a flat JSON object of the shape tg_decode() accepts:
 *        {"sensor":"id","ts":ms,"temperature":21.5,...}. NUL-terminated.
 * @return bytes written (excluding NUL), or 0 if @p cap is too small.
 */
size_t tg_encode_json(const struct tg_reading *r, char *buf, size_t cap);

/**
 * @brief Encode @p r as the raw-topic record:
 *        {"sensor":"id","ts":ms,"fields":{"temperature":21.5,...}}, with
 *        "units":{"temperature":"Cel"} after "fields" when any field has one.
 *        Numbers are printed so that they parse back to the same double.
 * @return bytes written (excluding NUL), or 0 if @p cap is too small.
 */
size_t tg_encode_raw_record(const struct tg_reading *r, char *buf, size_t cap);

/**
 * A bounded JSON text writer over caller storage. Any overflow poisons it, so
 * a caller checks once, at the end, with tg_jw_finish().
 */
struct tg_jw {
        char *buf;
        size_t cap, len;
        int overflow;
};

void tg_jw_init(struct tg_jw *w, char *buf, size_t cap);
void tg_jw_raw(struct tg_jw *w, const char *s);      /**< verbatim text */
void tg_jw_string(struct tg_jw *w, const char *s, size_t len);
void tg_jw_double(struct tg_jw *w, double v);
void tg_jw_int(struct tg_jw *w, int64_t v);
/** @return the text length (NUL-terminated in the buffer), or 0 on overflow. */
size_t tg_jw_finish(const struct tg_jw *w);

/**
 * @brief Write @p r's raw record (tg_encode_raw_record()) but for its
 *        closing brace, so that a format can add members of its own after
 *        "fields" (and "units").
 */
void tg_jw_raw_record_open(struct tg_jw *w, const struct tg_reading *r);

struct tg_field_stats; /* window.h */

/**
 * @brief Write one field's window statistics as the aggregate record's
 *        object: {"count":N,"min":..,"max":..,"mean":..,"sum":..,
 *        "stddev":..,"first":..,"last":..}. A statistic that is not a
 *        finite double (a sum past the largest double) is written as null,
 *        and the object then ends with "overflow":true, so a consumer can
 *        tell it from a missing value.
 */
void tg_jw_field_stats(struct tg_jw *w, const struct tg_field_stats *f);

/**
 * @brief Append @p s (of @p len bytes) to @p buf as a quoted JSON string.
 * @return bytes written, or 0 if @p cap is too small.
 */
size_t tg_json_put_string(char *buf, size_t cap, const char *s, size_t len);

/**
 * @brief Append @p v as a JSON number that parses back to the same double.
 *        Non-finite values are written as null.
 * @return bytes written, or 0 if @p cap is too small.
 */
size_t tg_json_put_double(char *buf, size_t cap, double v);

#endif
