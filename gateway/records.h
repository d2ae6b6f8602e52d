/* records.h - the record formats the gateway writes: the aggregate of a closed window (raw records: tg_encode_raw_record). */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_RECORDS_H
#define TG_RECORDS_H

#include <stddef.h>

#include "downsample.h"
#include "window.h"

/** Big enough for a window of TG_READING_FIELDS_MAX fields with the longest
 *  names and ids; larger would mean a bug. */
#define TG_RECORD_AGG_MAX 8192

/**
 * @brief Write window @p w as the aggregate record's JSON value (README,
 *        "Topics and record formats") into @p buf.
 * @param engine names the fields.
 * @return its length, or 0 when it does not fit in @p cap.
 */
size_t tg_record_aggregate(const tg_window_engine_t *engine, const struct tg_window_result *w,
                           char *buf, size_t cap);

/**
 * @brief Write the downsampled record (README, "Topics and record formats")
 *        of @p n points of reading @p r that share a time, a mode and
 *        out_of_order, into @p buf.
 * @return its length, or 0 when it does not fit in @p cap.
 */
size_t tg_record_downsampled(const struct tg_reading *r, const struct tg_raw_point *p, size_t n,
                             char *buf, size_t cap);

#endif
