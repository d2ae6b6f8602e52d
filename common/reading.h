/* reading.h - the reading model: one sensor's numeric sample at one event time. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_READING_H
#define TG_READING_H

#include <stddef.h>
#include <stdint.h>

/* Hard upper bounds of the in-memory reading. A reading lives in caller
 * storage (stack or a preallocated slot), so decoding allocates nothing.
 * Configurable limits (see config.h) may only be tighter than these. */
#define TG_SENSOR_ID_MAX 64     /**< bytes, excluding the terminating NUL */
#define TG_FIELD_NAME_MAX 32    /**< bytes, excluding the terminating NUL */
#define TG_READING_FIELDS_MAX 16
#define TG_UNIT_MAX 15          /**< bytes of a unit (SenML "u"), excluding the NUL */

/*
 * The event times a reading may carry (docs/windows.md 1.2), in ms since the
 * Unix epoch: 1970-01-01T00:00:00.001Z to 9999-12-31T23:59:59.999Z, the range
 * RFC 3339 text can express. Nothing at or before the epoch: Kafka cannot
 * carry it (librdkafka takes a timestamp of 0 as "now", and Kafka reads -1
 * as "no timestamp"), so such a reading would be stamped wrongly. The
 * decoders refuse times outside as timestamp_out_of_range, and the window
 * engine does too; the bound also keeps every window boundary computation
 * far from overflow.
 */
#define TG_TS_MIN INT64_C(1)
#define TG_TS_MAX INT64_C(253402300799999)

/** @brief Whether @p ts_ms is an event time a reading may carry. */
static inline int tg_ts_valid(int64_t ts_ms) {
        return ts_ms >= TG_TS_MIN && ts_ms <= TG_TS_MAX;
}

struct tg_field {
        char name[TG_FIELD_NAME_MAX + 1];
        uint8_t name_len;
        char unit[TG_UNIT_MAX + 1]; /**< "" when the payload gave none */
        double value;
};

struct tg_reading {
        char sensor[TG_SENSOR_ID_MAX + 1];
        uint16_t sensor_len;
        int64_t ts_ms;          /**< event time, ms since the Unix epoch */
        uint8_t ts_from_arrival; /**< the payload had none: arrival time used */
        uint16_t nfields;
        struct tg_field fields[TG_READING_FIELDS_MAX];
};

/**
 * @brief Whether @p len bytes are text an id, a name or a unit may be:
 *        UTF-8 (RFC 3629: no overlong form, surrogate or code point past
 *        U+10FFFF) without NUL.
 */
int tg_text_valid(const char *text, size_t len);

/** @brief Empty a reading so it can be filled again. */
void tg_reading_clear(struct tg_reading *r);

/**
 * @brief Set the sensor id (copied).
 * @return 0, or -ENAMETOOLONG if it exceeds TG_SENSOR_ID_MAX, -EINVAL if empty
 *         or not tg_text_valid().
 */
int tg_reading_set_sensor(struct tg_reading *r, const char *id, size_t len);

/**
 * @brief Put @p prefix (@p len bytes, valid text) before the sensor id, in
 *        place.
 * @return 0, or -ENAMETOOLONG if the result would exceed TG_SENSOR_ID_MAX
 *         (the reading is then unchanged).
 */
int tg_reading_prefix_sensor(struct tg_reading *r, const char *prefix, size_t len);

/**
 * @brief Append a numeric field (name copied). A reading never holds one
 *        field twice: a name already present is refused, the reading left
 *        as it was (a payload giving a field twice is refused as a
 *        duplicate; a SenML pack's later record sets the value itself).
 * @return 0, -ENAMETOOLONG (name), -EINVAL (empty name, or one not
 *         tg_text_valid()), -EEXIST (name present), -ENOSPC (too many
 *         fields), checked in that order.
 */
int tg_reading_add_field(struct tg_reading *r, const char *name, size_t len,
                         double value);

/**
 * @brief Set the unit of field @p i (copied; truncated units are refused).
 * @return 0, -ENAMETOOLONG or -EINVAL (no such field, or not tg_text_valid()).
 */
int tg_reading_set_unit(struct tg_reading *r, uint16_t i, const char *unit,
                        size_t len);

#endif
