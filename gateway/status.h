/* status.h - what the status page shows per sensor: the last reading and the last closed windows, in memory fixed at start-up. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_STATUS_H
#define TG_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "reading.h"
#include "window.h"

/*
 * The worker thread notes each final window here (tg_status_window) in rows
 * it alone writes: a sensor gets a row with its first closed window. At
 * each tick it reads each row's last reading and late count from the
 * window engine and copies the rows that changed to a published copy under
 * a lock (tg_status_publish), and the HTTP side reads that copy a row at a
 * time (tg_status_row). Nothing is allocated after tg_status_new(), and a
 * reading costs nothing here: the page reads what the engine holds anyway.
 *
 * The table tracks the first status.sensors sensors whose windows close;
 * further ones' windows are counted (untracked) and not shown. Each row
 * keeps the last status.windows final windows of the sensor's first field
 * (mean, min, max) for the page's chart.
 */

/** One closed window, as the chart needs it. */
struct tg_status_window {
        int64_t start;
        uint32_t count, late;
        float mean, min, max;
};

/** One sensor's row, as published. */
struct tg_status_row {
        char id[TG_SENSOR_ID_MAX + 1];
        char field[TG_FIELD_NAME_MAX + 1]; /**< the charted field: first of the last window */
        int64_t last_ts;                   /**< the latest event time taken */
        int64_t last_arrival_ms;           /**< the engine's clock when it was taken */
        double last_value;                 /**< first field of the newest open window */
        char last_field[TG_FIELD_NAME_MAX + 1]; /**< at its latest event time */
        uint64_t windows_closed, late;     /**< since the sensor entered the table */
        uint32_t nwindows;                 /**< in windows[], oldest first */
        struct tg_status_window *windows;  /**< caller's room for status.windows */
};

typedef struct tg_status tg_status_t;

/**
 * @brief Room for @p sensors rows of @p windows windows each, both copies.
 * @return the table, or NULL with the reason in @p errstr.
 */
tg_status_t *tg_status_new(uint32_t sensors, uint32_t windows, char *errstr, size_t errstr_size);

/** @brief Free; NULL is accepted. */
void tg_status_destroy(tg_status_t *st);

/** @brief Bytes allocated, and of them what one tracked sensor costs. */
size_t tg_status_memory(const tg_status_t *st);
size_t tg_status_sensor_bytes(const tg_status_t *st);

/** @brief Worker: a final window, @p field the name of its first field (or NULL). */
void tg_status_window(tg_status_t *st, const struct tg_window_result *w, const char *field);

/** @brief Worker: refresh the rows from @p engine (its last readings, late
 *         counts) and copy those that changed to the published copy. */
void tg_status_publish(tg_status_t *st, const tg_window_engine_t *engine);

/** @brief Any thread: rows in the published copy, and sensors not tracked. */
uint32_t tg_status_rows(tg_status_t *st, uint64_t *untracked);

/** @brief The windows a row holds at most. */
uint32_t tg_status_windows_max(const tg_status_t *st);

/**
 * @brief Any thread: copy published row @p i into @p out, whose windows
 *        points to room for tg_status_windows_max() of them.
 * @return 0, or -ENOENT past the last row.
 */
int tg_status_row(tg_status_t *st, uint32_t i, struct tg_status_row *out);

#endif
