/* codec_senml.h - SenML (RFC 8428) packs in JSON or CBOR to readings; one reading out as a pack. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CODEC_SENML_H
#define TG_CODEC_SENML_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "reading.h"

/** How a SenML record's resolved name maps onto a reading. */
enum tg_senml_names {
        /** The base name, less one trailing ':' '/' '.' or '-', is the
         *  sensor id and the record's name ("n") is the field; a record
         *  without a name gives field "value". A record without a base name
         *  has no sensor id (TG_DECODE_MISSING_ID). */
        TG_SENML_NAME_IS_FIELD = 0,
        /** Base name + name is the sensor id; the value is field "value". */
        TG_SENML_NAME_IS_SENSOR,
};

/** Decoder settings; the caller owns them and may share them across threads. */
struct tg_senml_opts {
        enum tg_senml_names names;
        /** "Now", in ms since the epoch, for relative times: a resolved time
         *  (bt + t) under 2^28 s is an offset in seconds from now (RFC 8428
         *  §4.5.3). Injected so tests and replays are deterministic. */
        int64_t now_ms;
        /** Longest string value of a SenML label (bn, n, bu, u, vs, vd)
         *  accepted, in bytes; longer fails with TG_DECODE_STRING_TOO_LONG.
         *  0: no limit beyond the payload's size. */
        size_t max_string;
};

/**
 * @brief Decode a SenML pack (application/senml+json) into readings.
 *
 * Base fields (bn, bt, bu, bv) apply to the record that holds them and to
 * every later record until changed. Each record with a numeric value ("v",
 * plus the base value) becomes one field of the reading of its (sensor,
 * resolved time): records of a (sensor, time) already decoded in this pack
 * merge into its reading, fields in order, a repeated field keeping the
 * last record's value and unit; a new (sensor, time) starts the next
 * reading. The unit is the record's "u", else the base unit. Records with
 * only a string, boolean, data value or sum are checked and skipped. Time
 * is bt + t seconds, rounded to the nearest ms (halves away from zero);
 * a missing bt or t counts as 0, so a record without either is "now". A
 * reading whose time is relative to now has ts_from_arrival set.
 *
 * Allocation-free: the JSON is parsed in the calling thread's arena.
 *
 * @param payload the pack (need not be NUL-terminated).
 * @param opts    settings; NULL means field mapping, now = 0, no string limit.
 * @param out     caller storage for up to @p cap readings.
 * @param n       set to the number of readings filled; 0 on any error.
 * @return TG_DECODE_OK, or why the pack was refused:
 *         TOO_LARGE (payload over TG_PAYLOAD_MAX), TOO_DEEP (nesting over
 *         TG_DEPTH_MAX), NOT_DECODABLE (malformed), BAD_SENML (not an array
 *         of objects, bver not an integer 1..10, a label ending in "_", a
 *         label of the wrong type, more than one value field),
 *         DUPLICATE_MEMBER (a label given twice in one record), MISSING_ID,
 *         BAD_ID, BAD_FIELD_NAME, STRING_TOO_LONG (over max_string, or a
 *         unit over TG_UNIT_MAX), INVALID_TS (a time that is NaN),
 *         TS_OUT_OF_RANGE (a resolved time, relative ones included, outside
 *         [TG_TS_MIN, TG_TS_MAX]), NON_FINITE, TOO_MANY_FIELDS (over
 *         @p cap readings or TG_READING_FIELDS_MAX fields in one), NO_FIELDS
 *         (no record with a numeric value).
 */
enum tg_decode_err tg_decode_senml_json(const void *payload, size_t len,
                                        const struct tg_senml_opts *opts,
                                        struct tg_reading *out, size_t cap,
                                        size_t *n);

/**
 * @brief Decode a SenML pack (application/senml+cbor) into readings.
 *
 * As tg_decode_senml_json(), with RFC 8428 §6's integer labels (bver -1,
 * bn -2, bt -3, bu -4, bv -5, bs -6, n 0, u 1, v 2, vs 3, vb 4, s 5, t 6,
 * ut 7, vd 8); the JSON text labels are accepted as well. Numbers may be
 * integers, floats of any width or decimal fractions (tag 4); bver must be
 * an unsigned integer; string values must be definite-length. An unknown
 * negative label (a base field we do not know, which could change how later
 * records resolve) is BAD_SENML; other unknown labels are skipped unless
 * they are text ending in "_". Streamed with libcbor: no allocation.
 */
enum tg_decode_err tg_decode_senml_cbor(const void *payload, size_t len,
                                        const struct tg_senml_opts *opts,
                                        struct tg_reading *out, size_t cap,
                                        size_t *n);

/**
 * @brief Encode @p r as a SenML JSON pack: bn = sensor id + ":", bt = the
 *        whole seconds of ts_ms (an integer), then one record per field
 *        with n, u (when set), v and t = the remaining ms / 1000.0 (when
 *        not 0). NUL-terminated.
 *
 * Decoding with TG_SENML_NAME_IS_FIELD gives back @p r exactly (values to
 * the bit) for every ts_ms in [2^28 * 1000, TG_TS_MAX]: SenML cannot carry
 * an absolute time before 2^28 s (1978-07-04), which it reads as relative.
 *
 * @return bytes written (excluding NUL), or 0 if @p cap is too small or
 *         @p r cannot be represented (empty sensor, ts_ms outside the range
 *         above, a non-finite value).
 */
size_t tg_encode_senml_json(const struct tg_reading *r, char *buf, size_t cap);

/**
 * @brief Encode @p r as a SenML CBOR pack, the same records as
 *        tg_encode_senml_json() with integer labels (bt an unsigned
 *        integer, v and t doubles).
 * @return bytes written, or 0 if @p cap is too small or @p r cannot be
 *         represented.
 */
size_t tg_encode_senml_cbor(const struct tg_reading *r, uint8_t *buf,
                            size_t cap);

#endif
