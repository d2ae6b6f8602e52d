/* codec_senml.c - SenML (RFC 8428) packs in, JSON and CBOR, allocation-free; one reading out as a pack. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "codec_senml.h"

#include <cbor.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_event.h"

/*
 * From codec_json.c: parse into the calling thread's cJSON arena, with
 * tg_decode_json()'s default size and depth limits and its trailing-text
 * check. The tree lives until tg_json_arena_release(), on the same thread.
 */
struct cJSON *tg_json_parse_arena(const char *text, size_t len,
                                  enum tg_decode_err *err);
void tg_json_arena_release(void);

/* RFC 8428 §4.5.3: a resolved time under 2^28 s is relative to "now". */
#define RELATIVE_LIMIT_S 268435456.0
#define ABSOLUTE_MIN_MS (INT64_C(268435456) * 1000)

/* --- labels --------------------------------------------------------------- */

enum label {
        L_BVER, L_BN, L_BT, L_BU, L_BV, L_BS,
        L_N, L_U, L_V, L_VS, L_VB, L_S, L_T, L_UT, L_VD,
        L__COUNT,
        L_IGNORED, /* an extension we may skip */
};

#define BIT(l) (1u << (l))

enum label_type { T_STRING, T_NUMBER, T_BOOL, T_DATA, T_VERSION };

/* RFC 8428 §4.3 (labels) and §6 Table 4 (CBOR labels: a closed set, as
 * extensions use text labels). Base fields have the negative CBOR labels. */
static const struct {
        const char *text;
        int cbor;
        enum label_type type;
} labels[L__COUNT] = {
        [L_BVER] = {"bver", -1, T_VERSION},
        [L_BN] = {"bn", -2, T_STRING},
        [L_BT] = {"bt", -3, T_NUMBER},
        [L_BU] = {"bu", -4, T_STRING},
        [L_BV] = {"bv", -5, T_NUMBER},
        [L_BS] = {"bs", -6, T_NUMBER},
        [L_N] = {"n", 0, T_STRING},
        [L_U] = {"u", 1, T_STRING},
        [L_V] = {"v", 2, T_NUMBER},
        [L_VS] = {"vs", 3, T_STRING},
        [L_VB] = {"vb", 4, T_BOOL},
        [L_S] = {"s", 5, T_NUMBER},
        [L_T] = {"t", 6, T_NUMBER},
        [L_UT] = {"ut", 7, T_NUMBER},
        [L_VD] = {"vd", 8, T_DATA},
};

/* The newest base version this decoder reads (RFC 8428 §4.4: a reader MUST
 * NOT use a pack of a newer version). */
#define SENML_VERSION 10

/* @return the label, L_IGNORED for an extension, or L__COUNT for a
 * must-understand extension (its label ends in "_", RFC 8428 §4.4). */
static enum label label_from_text(const char *s, size_t len) {
        int l;

        for (l = 0; l < L__COUNT; l++)
                if (strlen(labels[l].text) == len &&
                    !memcmp(labels[l].text, s, len))
                        return (enum label)l;
        return len && s[len - 1] == '_' ? L__COUNT : L_IGNORED;
}

/* --- from records to readings ---------------------------------------------- */

struct text {
        const char *s;
        size_t len;
};

/* One record's fields as read, before base fields resolve them. Strings
 * point into the payload (CBOR) or the cJSON arena (JSON), both stable for
 * the whole decode, so nothing is copied until a reading is filled. */
struct record {
        unsigned seen; /* BIT(label) for each label present */
        struct text str[L__COUNT];
        double num[L__COUNT];
};

struct decoder {
        struct tg_senml_opts opts;
        struct tg_reading *out;
        size_t cap, n;
        /* base fields in force */
        struct text bn, bu;
        double bt, bv;
        int has_bv;
};

static void decoder_init(struct decoder *d, const struct tg_senml_opts *opts,
                         struct tg_reading *out, size_t cap) {
        memset(d, 0, sizeof(*d));
        if (opts)
                d->opts = *opts;
        d->out = out;
        d->cap = out ? cap : 0;
        d->bn = d->bu = (struct text){"", 0};
}

static enum tg_decode_err check_string(const struct decoder *d, size_t len) {
        if (d->opts.max_string && len > d->opts.max_string)
                return TG_DECODE_STRING_TOO_LONG;
        return TG_DECODE_OK;
}

/*
 * round(1000 * (a + b)) as if computed exactly, halves away from zero as
 * llround() does (0.0625 s is exactly 62.5 ms). The plain double expression
 * rounds twice (the sum, then the product) and at large magnitudes misses by
 * a ms; TwoSum and an fma recover both rounding errors, so an integer bt plus
 * a t of ms / 1000.0 always reads back as the same ms.
 * @return 0, or -1 if the result is beyond ±2^62.
 */
static int seconds_to_ms(double a, double b, int64_t *out) {
        double s = a + b, bb, e, p, pe, tail, whole;
        int64_t ms;
        int neg;

        if (!isfinite(s))
                return -1;
        bb = s - a;
        e = (a - (s - bb)) + (b - bb); /* s + e == a + b exactly */
        p = s * 1000.0;
        if (!(fabs(p) < 0x1p62))
                return -1;
        pe = fma(s, 1000.0, -p); /* p + pe == s * 1000 exactly */
        tail = pe + e * 1000.0;
        neg = p < 0 || (p == 0 && tail < 0);
        if (neg) {
                p = -p;
                tail = -tail;
        }
        whole = floor(p);
        /* p - whole is exact; below 2^53 the tail is under an ulp of it. */
        ms = (int64_t)whole + llround((p - whole) + tail);
        *out = neg ? -ms : ms;
        return 0;
}

/* The event time of a record: bt + t seconds, to the nearest ms. Under
 * 2^28 s it is an offset from now (*relative set). Like the flat decoders',
 * it must lie in [TG_TS_MIN, TG_TS_MAX], relative or not: NaN is no time
 * (INVALID_TS), anything else outside, infinities included, is
 * TS_OUT_OF_RANGE. */
static enum tg_decode_err resolve_time(const struct decoder *d, double t,
                                       int64_t *out, int *relative) {
        int64_t ms;

        if (isnan(d->bt) || isnan(t))
                return TG_DECODE_INVALID_TS;
        if (seconds_to_ms(d->bt, t, &ms))
                return TG_DECODE_TS_OUT_OF_RANGE; /* infinite, or beyond ±2^62 ms */
        *relative = d->bt + t < RELATIVE_LIMIT_S;
        if (*relative && __builtin_add_overflow(ms, d->opts.now_ms, &ms))
                return TG_DECODE_TS_OUT_OF_RANGE;
        if (!tg_ts_valid(ms))
                return TG_DECODE_TS_OUT_OF_RANGE;
        *out = ms;
        return TG_DECODE_OK;
}

/* The reading of (sensor, ts) already decoded from this pack, or the next
 * free one; NULL when the caller's storage is full. */
static struct tg_reading *reading_for(struct decoder *d, const char *sensor,
                                      size_t len, int64_t ts, int relative) {
        struct tg_reading *r;
        size_t i = d->n;

        while (i-- > 0) { /* newest first: packs are mostly in time order */
                r = &d->out[i];
                if (r->ts_ms == ts && r->sensor_len == len &&
                    !memcmp(r->sensor, sensor, len))
                        return r;
        }
        if (d->n == d->cap)
                return NULL;
        r = &d->out[d->n++];
        tg_reading_clear(r);
        tg_reading_set_sensor(r, sensor, len); /* 1..TG_SENSOR_ID_MAX bytes */
        r->ts_ms = ts;
        r->ts_from_arrival = (uint8_t)relative; /* "now" is the arrival time */
        return r;
}

/* A record with a numeric value: resolve its name, unit, value and time
 * against the base fields and add it to its reading. */
static enum tg_decode_err record_to_reading(struct decoder *d,
                                            const struct record *rec) {
        static const struct text value_field = {"value", 5};
        struct text name = rec->seen & BIT(L_N) ? rec->str[L_N]
                                                : (struct text){"", 0};
        struct text unit = rec->seen & BIT(L_U) ? rec->str[L_U] : d->bu;
        struct text field = value_field;
        char sensor[TG_SENSOR_ID_MAX];
        size_t sensor_len;
        double value = rec->num[L_V];
        int64_t ts;
        struct tg_reading *r;
        enum tg_decode_err err;
        uint16_t i;
        int rc, relative;

        if (d->bn.len + name.len == 0)
                return TG_DECODE_MISSING_ID;
        if (d->opts.names == TG_SENML_NAME_IS_SENSOR) {
                sensor_len = d->bn.len + name.len;
                if (sensor_len > TG_SENSOR_ID_MAX)
                        return TG_DECODE_BAD_ID;
                memcpy(sensor, d->bn.s, d->bn.len);
                memcpy(sensor + d->bn.len, name.s, name.len);
        } else {
                /* The separator ends the base name only to join it to the
                 * name, so it is no part of the sensor id. */
                sensor_len = d->bn.len;
                if (sensor_len && memchr(":/.-", d->bn.s[sensor_len - 1], 4))
                        sensor_len--;
                if (sensor_len == 0)
                        return TG_DECODE_MISSING_ID;
                if (sensor_len > TG_SENSOR_ID_MAX)
                        return TG_DECODE_BAD_ID;
                memcpy(sensor, d->bn.s, sensor_len);
                if (name.len)
                        field = name;
                if (field.len > TG_FIELD_NAME_MAX)
                        return TG_DECODE_BAD_FIELD_NAME;
        }
        if (unit.len > TG_UNIT_MAX)
                return TG_DECODE_STRING_TOO_LONG;
        if (d->has_bv)
                value = d->bv + value;
        if (!isfinite(value))
                return TG_DECODE_NON_FINITE;
        if ((err = resolve_time(d, rec->seen & BIT(L_T) ? rec->num[L_T] : 0.0,
                                &ts, &relative)))
                return err;

        if (!tg_text_valid(sensor, sensor_len))
                return TG_DECODE_BAD_ID; /* tg_reading_set_sensor() would refuse it */
        if (!tg_text_valid(unit.s, unit.len))
                return TG_DECODE_BAD_SENML; /* and tg_reading_set_unit() this */
        if (!(r = reading_for(d, sensor, sensor_len, ts, relative)))
                return TG_DECODE_TOO_MANY_FIELDS;
        rc = tg_reading_add_field(r, field.s, field.len, value);
        if (rc == -ENOSPC)
                return TG_DECODE_TOO_MANY_FIELDS;
        if (rc && rc != -EEXIST)
                return TG_DECODE_BAD_FIELD_NAME;
        for (i = 0; i < r->nfields; i++)
                if (r->fields[i].name_len == field.len &&
                    !memcmp(r->fields[i].name, field.s, field.len))
                        break;
        /* A field an earlier record of the pack gave at the same time takes
         * the later record's value and unit (records merge; only a label
         * repeated within one record is a duplicate). */
        r->fields[i].value = value;
        tg_reading_set_unit(r, i, unit.s, unit.len);
        return TG_DECODE_OK;
}

/* A record is read whole before it is applied, so the order of its fields
 * does not matter: its base fields apply to it as well as to later ones. */
static enum tg_decode_err record_apply(struct decoder *d,
                                       const struct record *rec) {
        unsigned values = rec->seen & (BIT(L_V) | BIT(L_VS) | BIT(L_VB) |
                                       BIT(L_VD));

        if (values & (values - 1))
                return TG_DECODE_BAD_SENML; /* RFC 8428 §4.2: at most one value */
        if (rec->seen & BIT(L_BN))
                d->bn = rec->str[L_BN];
        if (rec->seen & BIT(L_BU))
                d->bu = rec->str[L_BU];
        if (rec->seen & BIT(L_BT))
                d->bt = rec->num[L_BT];
        if (rec->seen & BIT(L_BV)) {
                d->bv = rec->num[L_BV];
                d->has_bv = 1;
        }
        if (!(rec->seen & BIT(L_V)))
                return TG_DECODE_OK; /* string, boolean, data or sum only */
        return record_to_reading(d, rec);
}

static enum tg_decode_err decoder_finish(const struct decoder *d, size_t *n) {
        if (d->n == 0)
                return TG_DECODE_NO_FIELDS;
        *n = d->n;
        return TG_DECODE_OK;
}

/* --- JSON ------------------------------------------------------------------ */

static enum tg_decode_err json_record(struct decoder *d, const cJSON *obj) {
        struct record rec;
        const cJSON *it;
        enum tg_decode_err err;

        if (!cJSON_IsObject(obj))
                return TG_DECODE_BAD_SENML;
        memset(&rec, 0, sizeof(rec));
        cJSON_ArrayForEach(it, obj) {
                enum label l = label_from_text(it->string, strlen(it->string));
                size_t len;
                double v;

                if (l == L_IGNORED)
                        continue;
                if (l == L__COUNT)
                        return TG_DECODE_BAD_SENML; /* must-understand */
                if (rec.seen & BIT(l))
                        return tg_decode_duplicate("SenML label", labels[l].text,
                                                   strlen(labels[l].text));
                rec.seen |= BIT(l);
                switch (labels[l].type) {
                case T_STRING:
                case T_DATA:
                        if (!cJSON_IsString(it))
                                return TG_DECODE_BAD_SENML;
                        len = strlen(it->valuestring);
                        if ((err = check_string(d, len)))
                                return err;
                        rec.str[l] = (struct text){it->valuestring, len};
                        break;
                case T_NUMBER:
                        if (!cJSON_IsNumber(it))
                                return TG_DECODE_BAD_SENML;
                        rec.num[l] = it->valuedouble;
                        break;
                case T_BOOL:
                        if (!cJSON_IsBool(it))
                                return TG_DECODE_BAD_SENML;
                        break;
                case T_VERSION:
                        if (!cJSON_IsNumber(it))
                                return TG_DECODE_BAD_SENML;
                        v = it->valuedouble;
                        if (v != floor(v) || v < 1 || v > SENML_VERSION)
                                return TG_DECODE_BAD_SENML;
                        break;
                }
        }
        return record_apply(d, &rec);
}

enum tg_decode_err tg_decode_senml_json(const void *payload, size_t len,
                                        const struct tg_senml_opts *opts,
                                        struct tg_reading *out, size_t cap,
                                        size_t *n) {
        struct decoder d;
        const cJSON *root, *it;
        enum tg_decode_err err = TG_DECODE_OK;

        *n = 0;
        if (len > TG_PAYLOAD_MAX)
                return TG_DECODE_TOO_LARGE;
        if (!payload || !len)
                return TG_DECODE_NOT_DECODABLE;
        decoder_init(&d, opts, out, cap);
        if (!(root = tg_json_parse_arena(payload, len, &err)))
                return err;
        /* RFC 8428 §3: a pack is an array of one or more records. */
        if (!cJSON_IsArray(root) || !root->child) {
                err = TG_DECODE_BAD_SENML;
        } else {
                cJSON_ArrayForEach(it, root) {
                        if ((err = json_record(&d, it)))
                                break;
                }
        }
        tg_json_arena_release();
        return err ? err : decoder_finish(&d, n);
}

/* --- CBOR ------------------------------------------------------------------ */

/*
 * As in codec_cbor.c, libcbor's streaming decoder reports one item header
 * (or one whole definite string) per call and allocates nothing; the
 * callbacks only record it. The pack is walked by recursive descent, at most
 * TG_DEPTH_MAX calls deep.
 */
struct cbor_reader {
        const unsigned char *p;
        size_t len, pos;
};

/* Read the next item's header, folding the tags in front of it into it. */
static enum tg_decode_err cbor_next(struct cbor_reader *r,
                                    struct cbor_event *ev) {
        int tagged = 0;
        uint64_t tag = 0;

        for (;;) {
                struct cbor_decoder_result res;

                ev->type = EV_NONE;
                if (r->pos >= r->len)
                        return TG_DECODE_NOT_DECODABLE; /* truncated */
                res = cbor_stream_decode(r->p + r->pos, r->len - r->pos,
                                         &tg_cbor_event_callbacks, ev);
                if (res.status != CBOR_DECODER_FINISHED || res.read == 0 ||
                    ev->type == EV_NONE)
                        return TG_DECODE_NOT_DECODABLE;
                r->pos += res.read;
                if (ev->type != EV_TAG)
                        break;
                tagged = 1;
                tag = ev->u;
        }
        if (tagged && ev->type == EV_BREAK)
                return TG_DECODE_NOT_DECODABLE; /* a tag must tag an item */
        ev->tagged = tagged;
        ev->tag = tag;
        return TG_DECODE_OK;
}

/* Skip the item whose header is @p ev, inside @p depth containers, checking
 * that it is well-formed and not nested deeper than TG_DEPTH_MAX. */
static enum tg_decode_err cbor_skip(struct cbor_reader *r,
                                    const struct cbor_event *ev, int depth) {
        struct cbor_event child;
        enum tg_decode_err err;
        enum ev_type chunk;
        uint64_t i, items;
        int indefinite, is_map;

        switch (ev->type) {
        case EV_ARRAY:
        case EV_ARRAY_INDEF:
        case EV_MAP:
        case EV_MAP_INDEF:
                if (depth + 1 > TG_DEPTH_MAX)
                        return TG_DECODE_TOO_DEEP;
                indefinite = ev->type == EV_ARRAY_INDEF ||
                             ev->type == EV_MAP_INDEF;
                is_map = ev->type == EV_MAP || ev->type == EV_MAP_INDEF;
                items = ev->type != EV_MAP ? ev->u
                        : ev->u > UINT64_MAX / 2 ? UINT64_MAX
                                                 : 2 * ev->u;
                /* Each item takes a byte at least, so a count larger than
                 * the payload ends at its end, as NOT_DECODABLE. */
                for (i = 0; indefinite || i < items; i++) {
                        if ((err = cbor_next(r, &child)))
                                return err;
                        if (child.type == EV_BREAK)
                                return indefinite && !(is_map && i % 2)
                                               ? TG_DECODE_OK
                                               : TG_DECODE_NOT_DECODABLE;
                        if ((err = cbor_skip(r, &child, depth + 1)))
                                return err;
                }
                return TG_DECODE_OK;
        case EV_STRING_START:
        case EV_BYTES_START:
                /* An indefinite string holds definite strings of its own
                 * kind, untagged, and nothing else. */
                chunk = ev->type == EV_STRING_START ? EV_STRING : EV_BYTES;
                for (;;) {
                        if ((err = cbor_next(r, &child)))
                                return err;
                        if (child.type == EV_BREAK)
                                return TG_DECODE_OK;
                        if (child.type != chunk || child.tagged)
                                return TG_DECODE_NOT_DECODABLE;
                }
        case EV_BREAK:
                return TG_DECODE_NOT_DECODABLE; /* outside an indefinite item */
        default:
                return TG_DECODE_OK;
        }
}

/* A CBOR integer's decimal text: "-18446744073709551616" at most. */
static void cbor_int_text(const struct cbor_event *ev, char *buf, size_t cap) {
        if (ev->type == EV_UINT)
                snprintf(buf, cap, "%" PRIu64, ev->u);
        else if (ev->u == UINT64_MAX)
                snprintf(buf, cap, "-18446744073709551616");
        else
                snprintf(buf, cap, "-%" PRIu64, ev->u + 1);
}

/* A decimal fraction (tag 4, RFC 8949 §3.4.4): [exponent, mantissa], both
 * integers (bignum mantissas are not read), worth mantissa * 10^exponent.
 * strtod() of its decimal text gives the correctly rounded double. */
static enum tg_decode_err cbor_decimal_fraction(struct cbor_reader *r,
                                                const struct cbor_event *head,
                                                double *out) {
        struct cbor_event exponent, mantissa;
        char e[24], m[24], text[64];
        enum tg_decode_err err;

        if (head->type != EV_ARRAY || head->u != 2)
                return TG_DECODE_BAD_SENML;
        if ((err = cbor_next(r, &exponent)))
                return err;
        if (exponent.type != EV_UINT && exponent.type != EV_NEGINT)
                return exponent.type == EV_BREAK ? TG_DECODE_NOT_DECODABLE
                                                 : TG_DECODE_BAD_SENML;
        if ((err = cbor_next(r, &mantissa)))
                return err;
        if (mantissa.type != EV_UINT && mantissa.type != EV_NEGINT)
                return mantissa.type == EV_BREAK ? TG_DECODE_NOT_DECODABLE
                                                 : TG_DECODE_BAD_SENML;
        cbor_int_text(&exponent, e, sizeof(e));
        cbor_int_text(&mantissa, m, sizeof(m));
        snprintf(text, sizeof(text), "%se%s", m, e);
        *out = strtod(text, NULL); /* digits and 'e' only: no locale issue */
        return TG_DECODE_OK;
}

/* @return the label of a record's key, L_IGNORED for a skippable one. */
static enum tg_decode_err cbor_label(const struct cbor_event *key,
                                     enum label *out) {
        int64_t value;
        int l;

        if (key->type == EV_STRING) {
                *out = label_from_text((const char *)key->s, key->len);
                return *out == L__COUNT ? TG_DECODE_BAD_SENML : TG_DECODE_OK;
        }
        if (key->type != EV_UINT && key->type != EV_NEGINT)
                return TG_DECODE_BAD_SENML; /* labels are integers or text */
        *out = L_IGNORED;
        if (key->u <= 64) { /* the table's labels are -6..8 */
                value = key->type == EV_UINT ? (int64_t)key->u
                                             : -1 - (int64_t)key->u;
                for (l = 0; l < L__COUNT; l++)
                        if (labels[l].cbor == value)
                                *out = (enum label)l;
        }
        /* An unknown negative label is a base field we cannot resolve (it
         * may change every later record); an unknown regular one is ignored
         * like any unknown field. */
        if (*out == L_IGNORED && key->type == EV_NEGINT)
                return TG_DECODE_BAD_SENML;
        return TG_DECODE_OK;
}

static enum tg_decode_err cbor_value(struct decoder *d, struct cbor_reader *r,
                                     enum label l, const struct cbor_event *ev,
                                     struct record *rec) {
        enum tg_decode_err err;

        switch (labels[l].type) {
        case T_STRING:
                /* RFC 8428 §6: strings are definite-length text. */
                if (ev->type != EV_STRING)
                        return TG_DECODE_BAD_SENML;
                if ((err = check_string(d, ev->len)))
                        return err;
                rec->str[l] = (struct text){(const char *)ev->s, ev->len};
                return TG_DECODE_OK;
        case T_DATA:
                if (ev->type != EV_BYTES && ev->type != EV_STRING)
                        return TG_DECODE_BAD_SENML;
                return check_string(d, ev->len);
        case T_BOOL:
                return ev->type == EV_BOOL ? TG_DECODE_OK : TG_DECODE_BAD_SENML;
        case T_VERSION:
                /* RFC 8428 §6: only an unsigned integer. */
                return ev->type == EV_UINT && ev->u >= 1 &&
                                       ev->u <= SENML_VERSION
                               ? TG_DECODE_OK
                               : TG_DECODE_BAD_SENML;
        case T_NUMBER:
                if (ev->tagged && ev->tag == 4)
                        return cbor_decimal_fraction(r, ev, &rec->num[l]);
                if (ev->type == EV_UINT)
                        rec->num[l] = (double)ev->u;
                else if (ev->type == EV_NEGINT)
                        rec->num[l] = -1.0 - (double)ev->u;
                else if (ev->type == EV_FLOAT)
                        rec->num[l] = ev->d;
                else
                        return TG_DECODE_BAD_SENML;
                return TG_DECODE_OK;
        }
        return TG_DECODE_BAD_SENML;
}

static enum tg_decode_err cbor_record(struct decoder *d, struct cbor_reader *r,
                                      const struct cbor_event *head) {
        int indefinite = head->type == EV_MAP_INDEF;
        struct cbor_event key, val;
        struct record rec;
        enum tg_decode_err err;
        enum label l;
        uint64_t i;

        memset(&rec, 0, sizeof(rec));
        for (i = 0; indefinite || i < head->u; i++) {
                if ((err = cbor_next(r, &key)))
                        return err;
                if (key.type == EV_BREAK) {
                        if (!indefinite)
                                return TG_DECODE_NOT_DECODABLE;
                        break;
                }
                if ((err = cbor_label(&key, &l)))
                        return err;
                if ((err = cbor_next(r, &val)))
                        return err;
                if (val.type == EV_BREAK)
                        return TG_DECODE_NOT_DECODABLE; /* key without value */
                if (l == L_IGNORED) {
                        if ((err = cbor_skip(r, &val, 2)))
                                return err;
                        continue;
                }
                if (rec.seen & BIT(l)) /* also "v" and 2, the same label */
                        return tg_decode_duplicate("SenML label", labels[l].text,
                                                   strlen(labels[l].text));
                rec.seen |= BIT(l);
                if ((err = cbor_value(d, r, l, &val, &rec)))
                        return err;
        }
        return record_apply(d, &rec);
}

enum tg_decode_err tg_decode_senml_cbor(const void *payload, size_t len,
                                        const struct tg_senml_opts *opts,
                                        struct tg_reading *out, size_t cap,
                                        size_t *n) {
        struct cbor_reader r = {.p = payload, .len = len};
        struct cbor_event pack, rec;
        struct decoder d;
        enum tg_decode_err err;
        int indefinite;
        uint64_t i;

        *n = 0;
        if (len > TG_PAYLOAD_MAX)
                return TG_DECODE_TOO_LARGE;
        if (!payload || !len)
                return TG_DECODE_NOT_DECODABLE;
        decoder_init(&d, opts, out, cap);

        if ((err = cbor_next(&r, &pack))) /* tags first, e.g. 55799 */
                return err;
        if (pack.type == EV_BREAK)
                return TG_DECODE_NOT_DECODABLE;
        if (pack.type != EV_ARRAY && pack.type != EV_ARRAY_INDEF)
                return TG_DECODE_BAD_SENML;
        /* Streamed SenML (RFC 8428 §4.8) uses an indefinite array: read as a
         * whole pack, it means the same. */
        indefinite = pack.type == EV_ARRAY_INDEF;
        if (!indefinite && pack.u == 0)
                return TG_DECODE_BAD_SENML;
        for (i = 0; indefinite || i < pack.u; i++) {
                if ((err = cbor_next(&r, &rec)))
                        return err;
                if (rec.type == EV_BREAK) {
                        if (!indefinite)
                                return TG_DECODE_NOT_DECODABLE;
                        if (i == 0)
                                return TG_DECODE_BAD_SENML;
                        break;
                }
                if (rec.type != EV_MAP && rec.type != EV_MAP_INDEF)
                        return TG_DECODE_BAD_SENML;
                if ((err = cbor_record(&d, &r, &rec)))
                        return err;
        }
        if (r.pos != len)
                return TG_DECODE_NOT_DECODABLE; /* trailing bytes */
        return decoder_finish(&d, n);
}

/* --- encoders -------------------------------------------------------------- */

/* SenML reads times under 2^28 s as relative, and readings keep ts within
 * TG_TS_MAX: only times in between can make the round trip. */
static int encodable(const struct tg_reading *r) {
        uint16_t i;

        if (r->sensor_len == 0 || r->sensor_len > TG_SENSOR_ID_MAX ||
            r->nfields > TG_READING_FIELDS_MAX || r->ts_ms < ABSOLUTE_MIN_MS ||
            r->ts_ms > TG_TS_MAX)
                return 0;
        for (i = 0; i < r->nfields; i++)
                if (!isfinite(r->fields[i].value) ||
                    r->fields[i].name_len == 0 ||
                    r->fields[i].name_len > TG_FIELD_NAME_MAX ||
                    strnlen(r->fields[i].unit, TG_UNIT_MAX + 1) > TG_UNIT_MAX)
                        return 0;
        return 1;
}

size_t tg_encode_senml_json(const struct tg_reading *r, char *buf, size_t cap) {
        /* bt is whole seconds (exact), t the rest: see seconds_to_ms(). */
        int64_t secs = r->ts_ms / 1000, ms = r->ts_ms % 1000;
        char bn[TG_SENSOR_ID_MAX + 1];
        struct tg_jw w;
        uint16_t i;

        if (!encodable(r)) {
                if (cap)
                        buf[0] = '\0';
                return 0;
        }
        memcpy(bn, r->sensor, r->sensor_len);
        bn[r->sensor_len] = ':';

        tg_jw_init(&w, buf, cap);
        tg_jw_raw(&w, "[{\"bn\":");
        tg_jw_string(&w, bn, r->sensor_len + 1u);
        tg_jw_raw(&w, ",\"bt\":");
        tg_jw_int(&w, secs);
        for (i = 0; i < r->nfields; i++) {
                const struct tg_field *f = &r->fields[i];

                tg_jw_raw(&w, i ? "},{\"n\":" : ",\"n\":");
                tg_jw_string(&w, f->name, f->name_len);
                if (f->unit[0]) {
                        tg_jw_raw(&w, ",\"u\":");
                        tg_jw_string(&w, f->unit, strlen(f->unit));
                }
                tg_jw_raw(&w, ",\"v\":");
                tg_jw_double(&w, f->value);
                if (ms) {
                        tg_jw_raw(&w, ",\"t\":");
                        tg_jw_double(&w, (double)ms / 1000.0);
                }
        }
        tg_jw_raw(&w, "}]");
        return tg_jw_finish(&w);
}

size_t tg_encode_senml_cbor(const struct tg_reading *r, uint8_t *buf,
                            size_t cap) {
        int64_t secs = r->ts_ms / 1000, ms = r->ts_ms % 1000;
        size_t o = 0, n, records, entries;
        uint16_t i;

#define PUT_LABEL(l)                                                           \
        TG_CBOR_PUT(labels[l].cbor < 0                                         \
                            ? cbor_encode_negint((uint64_t)(-1 - labels[l].cbor), \
                                                 buf + o, cap - o)             \
                            : cbor_encode_uint((uint64_t)labels[l].cbor,       \
                                               buf + o, cap - o))

        if (!encodable(r))
                return 0;
        records = r->nfields ? r->nfields : 1;
        TG_CBOR_PUT(cbor_encode_array_start(records, buf + o, cap - o));
        for (i = 0; i < records; i++) {
                const struct tg_field *f = i < r->nfields ? &r->fields[i] : NULL;

                entries = (i == 0 ? 2 : 0) +
                          (f ? 2 + (f->unit[0] != '\0') + (ms != 0) : 0);
                TG_CBOR_PUT(cbor_encode_map_start(entries, buf + o, cap - o));
                if (i == 0) {
                        PUT_LABEL(L_BN);
                        TG_CBOR_PUT(cbor_encode_string_start(r->sensor_len + 1u,
                                                     buf + o, cap - o));
                        TG_CBOR_PUT_BYTES(r->sensor, r->sensor_len);
                        TG_CBOR_PUT_BYTES(":", 1);
                        PUT_LABEL(L_BT);
                        TG_CBOR_PUT(cbor_encode_uint((uint64_t)secs, buf + o, cap - o));
                }
                if (!f)
                        break;
                PUT_LABEL(L_N);
                TG_CBOR_PUT(cbor_encode_string_start(f->name_len, buf + o, cap - o));
                TG_CBOR_PUT_BYTES(f->name, f->name_len);
                if (f->unit[0]) {
                        size_t ulen = strlen(f->unit);

                        PUT_LABEL(L_U);
                        TG_CBOR_PUT(cbor_encode_string_start(ulen, buf + o, cap - o));
                        TG_CBOR_PUT_BYTES(f->unit, ulen);
                }
                PUT_LABEL(L_V);
                TG_CBOR_PUT(cbor_encode_double(f->value, buf + o, cap - o));
                if (ms) {
                        PUT_LABEL(L_T);
                        TG_CBOR_PUT(cbor_encode_double((double)ms / 1000.0, buf + o,
                                               cap - o));
                }
        }
#undef PUT_LABEL
        return o;
}
