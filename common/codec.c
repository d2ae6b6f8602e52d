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
