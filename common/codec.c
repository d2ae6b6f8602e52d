/* codec.c - format selection and reason names shared by the codecs. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "codec.h"

#include <errno.h>
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
};

static const char *const decode_err_messages[TG_DECODE__COUNT] = {
        [TG_DECODE_OK] = "ok",
        [TG_DECODE_NOT_DECODABLE] = "the payload is not well-formed JSON or CBOR",
        [TG_DECODE_WRONG_TYPE] = "the payload is not an object/map with text keys",
        [TG_DECODE_MISSING_ID] = "the payload has no sensor id",
        [TG_DECODE_BAD_ID] = "the sensor id is not a text of 1 to the maximum number of bytes",
        [TG_DECODE_MISSING_TS] = "the payload has no event timestamp",
        [TG_DECODE_INVALID_TS] = "the timestamp is not a valid time in the configured unit",
        [TG_DECODE_NO_FIELDS] = "the payload has no numeric field to keep",
        [TG_DECODE_TOO_MANY_FIELDS] = "the payload has more numeric fields than the limit",
        [TG_DECODE_BAD_FIELD_NAME] = "a field name is empty or longer than the limit",
        [TG_DECODE_NON_FINITE] = "a value is NaN or infinite",
        [TG_DECODE_TOO_LARGE] = "the payload is larger than the limit",
        [TG_DECODE_TOO_DEEP] = "the payload nests deeper than the limit",
        [TG_DECODE_STRING_TOO_LONG] = "a string in the payload is longer than the limit",
        [TG_DECODE_BAD_SENML] = "not a SenML pack of a version this gateway reads",
};

const char *tg_decode_err_message(enum tg_decode_err err) {
        if ((unsigned)err >= TG_DECODE__COUNT)
                return "unknown error";
        return decode_err_messages[err];
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
};

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
enum tg_decode_err tg_decode(enum tg_format fmt, const void *payload,
                             size_t len, struct tg_reading *out) {
        const unsigned char *p = payload;

        if (fmt == TG_FORMAT_AUTO)
                fmt = len && p[0] >= 0xa0 && p[0] <= 0xdb ? TG_FORMAT_CBOR
                                                          : TG_FORMAT_JSON;
        if (fmt == TG_FORMAT_CBOR)
                return tg_decode_cbor(payload, len, out);
        return tg_decode_json(payload, len, out);
}
