/* codec.c - format selection and reason names shared by the codecs. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "codec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const decode_err_names[TG_DECODE__COUNT] = {
        [TG_DECODE_OK] = "ok",
        [TG_DECODE_NOT_DECODABLE] = "not_decodable",
        [TG_DECODE_WRONG_TYPE] = "wrong_type",
        [TG_DECODE_MISSING_ID] = "missing_id",
        [TG_DECODE_BAD_ID] = "bad_id",
        [TG_DECODE_MISSING_TS] = "missing_timestamp",
        [TG_DECODE_INVALID_TS] = "invalid_timestamp",
        [TG_DECODE_NO_FIELDS] = "no_fields",
        [TG_DECODE_TOO_MANY_FIELDS] = "too_many_fields",
        [TG_DECODE_BAD_FIELD_NAME] = "bad_field_name",
        [TG_DECODE_NON_FINITE] = "non_finite_value",
        [TG_DECODE_TOO_LARGE] = "too_large",
        [TG_DECODE_TOO_DEEP] = "too_deep",
        [TG_DECODE_STRING_TOO_LONG] = "string_too_long",
        [TG_DECODE_BAD_SENML] = "bad_senml",
        [TG_DECODE_TS_OUT_OF_RANGE] = "timestamp_out_of_range",
        [TG_DECODE_DUPLICATE_MEMBER] = "duplicate_member",
};

static const char *const decode_err_messages[TG_DECODE__COUNT] = {
        [TG_DECODE_OK] = "ok",
        [TG_DECODE_NOT_DECODABLE] = "the payload is not well-formed JSON or CBOR",
        [TG_DECODE_WRONG_TYPE] = "the payload is not an object/map with text keys",
        [TG_DECODE_MISSING_ID] = "the payload has no sensor id",
        [TG_DECODE_BAD_ID] = "the sensor id is not UTF-8 text (without NUL) of 1 to the maximum number of bytes",
        [TG_DECODE_MISSING_TS] = "the payload has no event timestamp",
        [TG_DECODE_INVALID_TS] = "the timestamp is not a number or text of the configured unit",
        [TG_DECODE_NO_FIELDS] = "the payload has no numeric field to keep",
        [TG_DECODE_TOO_MANY_FIELDS] = "the payload has more numeric fields than the limit",
        [TG_DECODE_BAD_FIELD_NAME] = "a field name is empty, longer than the limit, or not UTF-8 text (without NUL)",
        [TG_DECODE_NON_FINITE] = "a value is NaN or infinite",
        [TG_DECODE_TOO_LARGE] = "the payload is larger than the limit",
        [TG_DECODE_TOO_DEEP] = "the payload nests deeper than the limit",
        [TG_DECODE_STRING_TOO_LONG] = "a string in the payload is longer than the limit",
        [TG_DECODE_BAD_SENML] = "not a SenML pack of a version this gateway reads",
        [TG_DECODE_TS_OUT_OF_RANGE] = "the timestamp is not between 1970-01-01T00:00:00.001Z "
                                      "and 9999-12-31T23:59:59.999Z",
        [TG_DECODE_DUPLICATE_MEMBER] = "the payload gives the id, the timestamp or a field "
                                       "(in SenML, a label of one record) more than once",
};

/* The calling thread's last duplicate_member refusal, in words. */
static __thread char duplicate_detail[160];

const char *tg_decode_err_message(enum tg_decode_err err) {
        if ((unsigned)err >= TG_DECODE__COUNT)
                return "unknown error";
        return decode_err_messages[err];
}

enum tg_decode_err tg_decode_duplicate(const char *what, const char *name, size_t len) {
        /* Names are valid UTF-8 here (a field's was checked; the id and
         * timestamp keys and SenML labels are the configuration's or ours):
         * a long one is cut at a character boundary. */
        if (len > 64) {
                len = 64;
                while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
                        len--;
        }
        snprintf(duplicate_detail, sizeof(duplicate_detail),
                 "%s \"%.*s\" given more than once", what, (int)len, name);
        return TG_DECODE_DUPLICATE_MEMBER;
}

const char *tg_decode_err_detail(enum tg_decode_err err) {
        if (err == TG_DECODE_DUPLICATE_MEMBER && duplicate_detail[0])
                return duplicate_detail;
        return tg_decode_err_message(err);
}

const char *tg_decode_err_name(enum tg_decode_err err) {
        if ((unsigned)err >= TG_DECODE__COUNT)
                return "unknown";
        return decode_err_names[err];
}

static const char *const format_names[] = {
        [TG_FORMAT_AUTO] = "auto",
        [TG_FORMAT_JSON] = "json",
        [TG_FORMAT_CBOR] = "cbor",
        [TG_FORMAT_SENML_JSON] = "senml-json",
        [TG_FORMAT_SENML_CBOR] = "senml-cbor",
        [TG_FORMAT_SPARKPLUG] = "sparkplug",
};

enum tg_format tg_format_detect(enum tg_format fmt, const void *payload, size_t len) {
        const unsigned char *p = payload;
        size_t i = 0;

        if (fmt != TG_FORMAT_AUTO)
                return fmt;
        if (len && p[0] >= 0x80 && p[0] <= 0x9f)
                return TG_FORMAT_SENML_CBOR; /* a CBOR array */
        if (len && p[0] >= 0xa0 && p[0] <= 0xdb)
                return TG_FORMAT_CBOR;       /* a CBOR map (or a tag before one) */
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
                i++;
        return i < len && p[i] == '[' ? TG_FORMAT_SENML_JSON : TG_FORMAT_JSON;
}

int tg_format_parse(const char *s, enum tg_format *out) {
        size_t i;

        for (i = 0; i < sizeof(format_names) / sizeof(*format_names); i++) {
                if (!strcmp(s, format_names[i])) {
                        *out = (enum tg_format)i;
                        return 0;
                }
        }
        return -EINVAL;
}

const char *tg_format_name(enum tg_format f) {
        return (unsigned)f < sizeof(format_names) / sizeof(*format_names)
                       ? format_names[f]
                       : "unknown";
}

/* A JSON object starts with '{' (after optional white space); a CBOR map
 * starts with major type 5 (0xa0-0xbf) or a tag (0xc0-0xdb). No valid JSON
 * text starts with those bytes, so one look decides. */
const struct tg_decode_opts tg_decode_defaults = {
        .id_key = "sensor",
        .ts_key = "ts",
        .ts_unit = TG_TS_UNIT_MS,
        .max_payload = TG_PAYLOAD_MAX,
        .max_depth = TG_DEPTH_MAX,
        .max_fields = TG_READING_FIELDS_MAX,
        .max_id = TG_SENSOR_ID_MAX,
        .max_string = TG_PAYLOAD_MAX,
};

enum tg_decode_err tg_decode_ex(enum tg_format fmt, const void *payload,
                                size_t len, const struct tg_decode_opts *opts,
                                struct tg_reading *out) {
        const unsigned char *p = payload;

        /* Flat readings only: an array is not one (SenML has its own decoders). */
        if (fmt == TG_FORMAT_AUTO)
                fmt = len && p[0] >= 0xa0 && p[0] <= 0xdb ? TG_FORMAT_CBOR
                                                          : TG_FORMAT_JSON;
        if (fmt == TG_FORMAT_CBOR || fmt == TG_FORMAT_SENML_CBOR)
                return tg_decode_cbor_ex(payload, len, opts, out);
        return tg_decode_json_ex(payload, len, opts, out);
}

enum tg_decode_err tg_decode(enum tg_format fmt, const void *payload,
                             size_t len, struct tg_reading *out) {
        return tg_decode_ex(fmt, payload, len, &tg_decode_defaults, out);
}

enum tg_decode_err tg_decode_json(const void *payload, size_t len,
                                  struct tg_reading *out) {
        return tg_decode_json_ex(payload, len, &tg_decode_defaults, out);
}

enum tg_decode_err tg_decode_cbor(const void *payload, size_t len,
                                  struct tg_reading *out) {
        return tg_decode_cbor_ex(payload, len, &tg_decode_defaults, out);
}

enum tg_decode_err tg_decode_finish(const struct tg_decode_opts *o,
                                    struct tg_reading *out, int have_id,
                                    int have_ts) {
        if (o->sensor) {
                if (o->sensor_len > o->max_id ||
                    tg_reading_set_sensor(out, o->sensor, o->sensor_len))
                        return TG_DECODE_BAD_ID;
                have_id = 1;
        }
        if (!have_id)
                return TG_DECODE_MISSING_ID;
        if (!have_ts) {
                if (!o->ts_from_arrival)
                        return TG_DECODE_MISSING_TS;
                out->ts_ms = o->arrival_ms;
                out->ts_from_arrival = 1;
        }
        if (out->nfields == 0)
                return TG_DECODE_NO_FIELDS;
        return TG_DECODE_OK;
}

int tg_decode_key_is(const char *key, size_t klen, const char *want) {
        return want && strlen(want) == klen && !memcmp(key, want, klen);
}

int tg_decode_keep_field(const struct tg_decode_opts *o, const char *name,
                         size_t len) {
        size_t i;

        if (!o->keep)
                return 1;
        for (i = 0; i < o->nkeep; i++)
                if (tg_decode_key_is(name, len, o->keep[i]))
                        return 1;
        return 0;
}

#define EXACT_DOUBLE_MAX 9007199254740992.0 /* 2^53 */

enum tg_decode_err tg_ts_from_int(int64_t v, enum tg_ts_unit u, int64_t *out) {
        int64_t ms;

        switch (u) {
        case TG_TS_UNIT_MS:
                ms = v;
                break;
        case TG_TS_UNIT_US:
                ms = v / 1000 - (v % 1000 < 0); /* floor, like the windows */
                break;
        case TG_TS_UNIT_S:
                if (v < 1 || v > TG_TS_MAX / 1000)
                        return TG_DECODE_TS_OUT_OF_RANGE;
                ms = v * 1000;
                break;
        default:
                return TG_DECODE_INVALID_TS;
        }
        if (!tg_ts_valid(ms))
                return TG_DECODE_TS_OUT_OF_RANGE;
        *out = ms;
        return TG_DECODE_OK;
}

enum tg_decode_err tg_ts_from_double(double d, enum tg_ts_unit u, int64_t *out) {
        double ms;

        if (isnan(d))
                return TG_DECODE_INVALID_TS;
        switch (u) {
        case TG_TS_UNIT_MS:
                if (d != floor(d)) /* infinities pass: out of range below */
                        return TG_DECODE_INVALID_TS;
                ms = d;
                break;
        case TG_TS_UNIT_US:
                if (d != floor(d))
                        return TG_DECODE_INVALID_TS;
                /* floor(d / 1000) within the range; both bounds are exact */
                if (!(d >= TG_TS_MIN * 1000.0 && d < (TG_TS_MAX + 1) * 1000.0))
                        return TG_DECODE_TS_OUT_OF_RANGE;
                /* From 2^53 on (2255-06-05) a double skips integers: a JSON
                 * number there may not be the one the sender wrote. */
                if (d >= EXACT_DOUBLE_MAX)
                        return TG_DECODE_INVALID_TS;
                return tg_ts_from_int((int64_t)d, u, out);
        case TG_TS_UNIT_S:
                ms = round(d * 1000.0); /* an overflow is infinite: out of range */
                break;
        default:
                return TG_DECODE_INVALID_TS;
        }
        if (!(ms >= TG_TS_MIN && ms <= TG_TS_MAX))
                return TG_DECODE_TS_OUT_OF_RANGE;
        *out = (int64_t)ms;
        return TG_DECODE_OK;
}

enum tg_decode_err tg_ts_from_rfc3339(const char *s, size_t len, int64_t *out) {
        int64_t ms;

        if (tg_parse_rfc3339_ms(s, len, &ms))
                return TG_DECODE_INVALID_TS;
        if (!tg_ts_valid(ms))
                return TG_DECODE_TS_OUT_OF_RANGE; /* 0000-01-01, or the epoch itself */
        *out = ms;
        return TG_DECODE_OK;
}

static const char *const ts_unit_names[] = {"ms", "s", "us", "rfc3339"};

int tg_ts_unit_parse(const char *s, enum tg_ts_unit *out) {
        size_t i;

        for (i = 0; i < sizeof(ts_unit_names) / sizeof(*ts_unit_names); i++) {
                if (!strcmp(s, ts_unit_names[i])) {
                        *out = (enum tg_ts_unit)i;
                        return 0;
                }
        }
        return -EINVAL;
}

static int digits(const char *s, size_t n, int *out) {
        int v = 0;
        size_t i;

        for (i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return 0;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no timegm() and no time zone state is involved. */
static int64_t days_from_civil(int64_t y, int m, int d) {
        int64_t era, yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

int tg_parse_rfc3339_ms(const char *s, size_t len, int64_t *out) {
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int Y, M, D, h, m, sec, ms = 0, off = 0, oh, om, leap;
        size_t i = 19;

        /* YYYY-MM-DDTHH:MM:SS */
        if (len < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) ||
            s[7] != '-' || digits(s + 8, 2, &D) ||
            (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
            digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) ||
            s[16] != ':' || digits(s + 17, 2, &sec))
                return -EINVAL;
        leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
        if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || (M == 2 && D == 29 && !leap) ||
            h > 23 || m > 59 || sec > 60)
                return -EINVAL;
        if (s[i] == '.') {
                int n = 0;

                for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
                        if (n < 3)
                                ms = ms * 10 + (s[i] - '0');
                if (n == 0)
                        return -EINVAL;
                for (; n < 3; n++)
                        ms *= 10;
        }
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
                i++;
        } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') &&
                   !digits(s + i + 1, 2, &oh) && s[i + 3] == ':' &&
                   !digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
                off = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
                i += 6;
        } else {
                return -EINVAL;
        }
        if (i != len)
                return -EINVAL;
        if (sec == 60)
                sec = 59; /* a leap second: the last ms of the minute */
        *out = ((days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec) -
                (int64_t)off * 60) * 1000 + ms;
        return 0;
}

int tg_topic_sensor(const char *pattern, const char *topic, const char **id,
                    size_t *id_len) {
        *id = NULL;
        for (;;) {
                const char *pe = strchr(pattern, '/'), *te = strchr(topic, '/');
                size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
                size_t tl = te ? (size_t)(te - topic) : strlen(topic);

                if (pl == 8 && !memcmp(pattern, "{sensor}", 8)) {
                        *id = topic;
                        *id_len = tl;
                } else if (!(pl == 1 && pattern[0] == '+') &&
                           (pl != tl || memcmp(pattern, topic, pl))) {
                        return -1;
                }
                if (!pe || !te)
                        return pe || te ? -1 : (*id ? 0 : -1);
                pattern = pe + 1;
                topic = te + 1;
        }
}

int tg_topic_filter_match(const char *filter, const char *topic) {
        if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
                return 0;
        for (;;) {
                if (filter[0] == '#' && filter[1] == '\0')
                        return 1; /* also matches the parent level itself */
                if (filter[0] == '+' && (filter[1] == '/' || filter[1] == '\0')) {
                        while (*topic && *topic != '/')
                                topic++;
                        filter++;
                } else {
                        while (*filter && *filter != '/' && *filter == *topic) {
                                filter++;
                                topic++;
                        }
                        if ((*filter && *filter != '/') || (*topic && *topic != '/'))
                                return 0;
                }
                if (!*filter && !*topic)
                        return 1;
                if (*filter != '/')
                        return 0;
                filter++;
                if (*topic != '/')
                        /* "a/#" matches "a" */
                        return filter[0] == '#' && filter[1] == '\0' && !*topic;
                topic++;
        }
}
