/* verify_downsample.h - tg-verify's check of topics.compressed against the truth: the series forward.mode promises, and nothing else. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_VERIFY_DOWNSAMPLE_H
#define TG_VERIFY_DOWNSAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "reading.h"

/** One value of a downsampled record, as read from the topic. */
struct vd_point {
        char sensor[TG_SENSOR_ID_MAX + 1];
        char field[TG_FIELD_NAME_MAX + 1];
        char mode[16];
        int out_of_order;
        int64_t ts;
        double v;
};

/**
 * @brief Append the values of one downsampled record (README, topics) to
 *        @p *pts (grown with realloc), counting in @p *n.
 * @return 0, or -1 when it is not such a record.
 */
int vd_parse(const char *text, size_t len, struct vd_point **pts, size_t *n, size_t *cap);

/**
 * @brief Check the points read from the topic against @p n truth readings
 *        (sensor, ts, fields, sorted by sensor then ts), all fields under
 *        one @p rule ("MODE,DEVIATION,MAX_SILENCE_MS"): exactly the points
 *        the compressor gives for those readings in that order (identical
 *        repeats allowed: replays), and, checked independently, every
 *        reading within the deviation of the value last sent (exception)
 *        or of the line through the kept points (swinging door).
 * @return mismatches found (each printed).
 */
int vd_check(const char *rule, const struct tg_reading *truth, size_t n, struct vd_point *got,
             size_t ngot);

#endif
