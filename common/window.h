/* window.h - event-time tumbling and hopping windows per sensor, in memory fixed at start-up. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_WINDOW_H
#define TG_WINDOW_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "reading.h"

/* Timestamps outside [TG_TS_MIN, TG_TS_MAX] (reading.h: 1 ms after the epoch
 * to the end of year 9999) are refused, which keeps every boundary
 * computation (start, end, end + grace) free of overflow. */
/* Window sizes, hops, grace and timeouts are capped far below the range. */
#define TG_DURATION_MAX ((int64_t)1 << 40) /* ~35 years of ms */

enum tg_window_close {
        TG_CLOSE_PER_SENSOR = 0, /**< watermark: the sensor's own max event time */
        TG_CLOSE_GLOBAL,         /**< watermark: max event time over all sensors */
};

struct tg_window_conf {
        int64_t size_ms;         /**< W: window length */
        int64_t hop_ms;          /**< H: window advance; == W for tumbling, must divide W */
        int64_t grace_ms;        /**< G: a window closes when the watermark reaches end + G */
        int64_t idle_timeout_ms; /**< close a silent sensor's windows after this much wall time; 0 = never */
        int64_t max_future_ms;   /**< refuse readings this far ahead of the wall clock */
        uint32_t max_sensors;    /**< sensor table capacity */
        uint32_t max_fields;     /**< distinct fields kept per window */
        /** Fields every window has room for (0: max_fields); up to
         *  max_fields, a window's further fields take a wide block from a
         *  pool of wide_windows shared by all sensors. */
        uint32_t reserved_fields;
        uint32_t wide_windows;   /**< windows that can hold more than reserved_fields at once */
        uint32_t max_field_names;/**< distinct field names over the gateway's life */
        enum tg_window_close close;
        int64_t evict_after_ms;  /**< table full: evict the least recently active sensor if silent this long; 0 = never */
        int64_t update_interval_ms; /**< > 0: also emit running results of open windows at most this often */
};

/** The wide form of m2 (docs/windows.md 6.2) holds the sum of squared
 *  deviations times 2^(-2 * TG_STATS_WIDE_HALF). */
#define TG_STATS_WIDE_HALF 550

/** Statistics of one field over one window. */
struct tg_field_stats {
        uint32_t field;          /**< interned name, see tg_window_field_name() */
        uint32_t count;
        double min, max, sum;    /**< sum is infinite when it overflows */
        double mean;             /**< Welford's running mean: finite, as the values are */
        /** Welford's sum of squared deviations; once it passes the largest
         *  double, negative: -m2 is the sum times 2^(-2 * TG_STATS_WIDE_HALF).
         *  Read it through tg_field_stats_stddev(). */
        double m2;
        double first, last;      /**< values at the earliest and latest event time */
        int64_t first_ts, last_ts;
};

/**
 * @brief The population standard deviation of @p f's values, sqrt(m2 / count),
 *        from either form of m2: finite whenever it is representable.
 */
static inline double tg_field_stats_stddev(const struct tg_field_stats *f) {
        if (!f->count)
                return 0.0;
        if (!(f->m2 < 0))
                return sqrt(f->m2 / f->count);
        return ldexp(sqrt(-f->m2 / f->count), TG_STATS_WIDE_HALF);
}

/** A closed (or, in update mode, running) window handed to the emit callback. */
struct tg_window_result {
        const char *sensor;
        size_t sensor_len;
        int64_t start, end;      /**< [start, end) in event-time ms */
        uint32_t count;          /**< readings in the window */
        int final;               /**< 1: the window has closed; 0: a running result (update mode) */
        uint64_t late;           /**< final only: the sensor's late readings since its previous final result */
        uint32_t nfields;
        const struct tg_field_stats *fields;
};

/** Called for each window as it closes; the result is valid during the call only. */
typedef void (tg_window_emit_fn)(void *opaque, const struct tg_window_result *w);

/** What happened to one reading. */
enum tg_window_verdict {
        TG_WINDOW_ACCEPTED = 0,
        TG_WINDOW_LATE,          /**< (one of) its window(s) had closed: not counted there */
        TG_WINDOW_FUTURE,        /**< beyond now + max_future_ms: refused */
        TG_WINDOW_OUT_OF_RANGE,  /**< outside [TG_TS_MIN, TG_TS_MAX]: refused */
        TG_WINDOW_TABLE_FULL,    /**< new sensor and no room: refused */
};

/** Counters; monotonic except sensors_active. */
struct tg_window_counters {
        uint64_t accepted, late, future, out_of_range, table_full;
        uint64_t fields_dropped; /**< field values not kept: window or name table full */
        uint64_t wide_refused;   /**< ... of which: every wide block was taken (also in fields_dropped) */
        uint64_t windows_emitted;/**< final results */
        uint64_t updates_emitted;/**< running results (update mode) */
        uint64_t idle_closes;    /**< sensors whose windows closed by the idle timeout */
        uint64_t death_closes;   /**< sensors whose windows closed by tg_window_engine_close_sensors() */
        uint64_t evicted;        /**< sensors removed to make room */
        uint64_t sensors_active;
};

typedef struct tg_window_engine tg_window_engine_t;

/**
 * @brief Allocate the engine and all the memory it will ever use.
 * @param clock wall clock for the future check, idle close and eviction
 *        (borrowed); read at creation and at each tick only (docs/windows.md 1.3).
 * @return the engine, or NULL with a reason in @p errstr.
 */
tg_window_engine_t *tg_window_engine_new(const struct tg_window_conf *conf,
                                         const struct tg_clock *clock,
                                         tg_window_emit_fn *emit, void *opaque,
                                         char *errstr, size_t errstr_size);

/** @brief Free the engine without emitting anything. NULL is accepted. */
void tg_window_engine_destroy(tg_window_engine_t *e);

/**
 * @brief Add one reading; windows it makes closable are emitted first.
 *        Allocation-free and lock-free; not thread-safe (one caller at a time).
 */
enum tg_window_verdict tg_window_engine_add(tg_window_engine_t *e,
                                            const struct tg_reading *r);

/**
 * @brief Add @p n readings, in order: the same verdicts, windows and
 *        counters as @p n calls of tg_window_engine_add(), faster when the
 *        readings are of many sensors (the memory of the next ones is
 *        fetched while one is added). Allocation-free; not thread-safe.
 * @param verdicts room for @p n verdicts, filled in reading order; or NULL.
 */
void tg_window_engine_add_batch(tg_window_engine_t *e, const struct tg_reading *r,
                                size_t n, enum tg_window_verdict *verdicts);
/** Defined when the engine has tg_window_engine_add_batch(). */
#define TG_WINDOW_HAVE_BATCH 1

/**
 * @brief Read the wall clock, then close windows of idle sensors, close
 *        windows the global watermark made closable, and emit running
 *        results in update mode (docs/windows.md section 5).
 */
void tg_window_engine_tick(tg_window_engine_t *e);

/**
 * @brief Late readings of sensor @p id since it entered the table.
 * @return the count, or -1 if the sensor is not in the table.
 */
int64_t tg_window_engine_sensor_late(const tg_window_engine_t *e, const char *id,
                                     size_t len);

/** What the engine holds of one sensor now, for a status display. */
struct tg_window_sensor_info {
        int64_t watermark;       /**< the latest event time taken (3.1) */
        int64_t last_arrival_ms; /**< the engine's clock at the last reading taken (5.2) */
        uint64_t late;           /**< late readings since it entered the table */
        uint32_t open;           /**< open windows */
        int has_value;           /**< field and value are set: a window is open */
        uint32_t field;          /**< the newest open window's first field (interned) */
        double value;            /**< its value at that window's latest event time */
};

/**
 * @brief What the engine holds of sensor @p id, by the engine's thread
 *        (one table lookup, nothing allocated).
 * @return 0, or -ENOENT if the sensor is not in the table.
 */
int tg_window_engine_sensor_info(const tg_window_engine_t *e, const char *id, size_t len,
                                 struct tg_window_sensor_info *out);

/** Bytes of the sensor table's hash key. */
#define TG_WINDOW_HASH_KEY_BYTES 16

/**
 * @brief Replace the key of the sensor table's hash (SipHash-2-4), which
 *        tg_window_engine_new() draws from getrandom(2): for tests and
 *        benchmarks that must place ids the same way every run. A gateway
 *        never calls it: a key known outside the process lets devices pick
 *        ids that share a bucket (issue 13).
 * @return 0; -EBUSY if the table holds sensors (their buckets follow the old key).
 */
int tg_window_engine_set_hash_key(tg_window_engine_t *e,
                                  const unsigned char key[TG_WINDOW_HASH_KEY_BYTES]);

/**
 * @brief The hash the sensor table files @p id under (its buckets take the
 *        low bits): for tests and diagnostics.
 */
uint32_t tg_window_engine_id_hash(const tg_window_engine_t *e, const char *id, size_t len);

/**
 * @brief Treat every sensor as having just sent a reading, for the idle
 *        timeout only: after the gateway itself held its input back (a full
 *        spool), the silence was its own, not the sensors'.
 */
void tg_window_engine_touch_all(tg_window_engine_t *e);

/**
 * @brief Close at once, and emit final through the callback, every open
 *        window of sensor @p id (@p len bytes), or with @p prefix of every
 *        sensor whose id is @p id or starts with @p id followed by '/'
 *        (docs/windows.md 5.5: a Sparkplug death certificate). The sensors
 *        stay in the table, watermarks unchanged. O(1) for one sensor,
 *        O(table) for a prefix. Allocation-free.
 * @return the sensors that had open windows.
 */
uint32_t tg_window_engine_close_sensors(tg_window_engine_t *e, const char *id, size_t len,
                                        int prefix);

/** @brief Close and emit every open window (e.g. at shutdown without a state file). */
void tg_window_engine_flush(tg_window_engine_t *e);

/** @brief Name of an interned field. */
const char *tg_window_field_name(const tg_window_engine_t *e, uint32_t field);

/** @brief A snapshot of the counters. */
void tg_window_engine_counters(const tg_window_engine_t *e,
                               struct tg_window_counters *out);

/** @brief Bytes allocated at start-up: what the engine costs in memory. */
size_t tg_window_engine_memory(const tg_window_engine_t *e);

/** @brief Of tg_window_engine_memory(), the bytes that grow with the sensor
 *         table, divided by its size: what one sensor costs. */
size_t tg_window_engine_sensor_bytes(const tg_window_engine_t *e);

/**
 * @brief Write the open windows to @p path atomically and durably
 *        (temporary file, fsync, rename, fsync of the directory), versioned
 *        and CRC-checked, with @p position, a number of the caller's (the
 *        last input the state covers). Streamed through a 32 KiB buffer on
 *        the stack: nothing is allocated, whatever the state's size.
 * @param bytes if not NULL, the bytes written.
 * @return 0 or -errno.
 */
int tg_window_engine_save(const tg_window_engine_t *e, const char *path,
                          uint64_t position, uint64_t *bytes);

/** @brief The bytes tg_window_engine_save() would write now (counted
 *         without writing). */
uint64_t tg_window_engine_state_bytes(const tg_window_engine_t *e);

/**
 * @brief rename(2) a saved state file @p from to @p to, durably (the
 *        directory synced). @return 0 or -errno.
 */
int tg_window_state_rename(const char *from, const char *to);

/**
 * @brief tg_window_engine_save() carrying @p attachment_len bytes of another
 *        module's state (NULL: none), which must cover the same input: one
 *        file, one rename, so a crash never splits them.
 * @return 0 or -errno (-EFBIG for an attachment over 4 GiB).
 */
int tg_window_engine_save_with(const tg_window_engine_t *e, const char *path,
                               uint64_t position, const void *attachment,
                               size_t attachment_len, uint64_t *bytes);

/**
 * @brief Restore open windows written by tg_window_engine_save() into an
 *        empty engine with the same window size, hop and field limits, and
 *        the position saved with them (into @p position unless NULL).
 * @return 0; -ENOENT when there is no file; -EINVAL (with @p errstr) when the
 *         file is corrupt, of another version or of other settings, in which
 *         case the engine is left empty.
 */
int tg_window_engine_load(tg_window_engine_t *e, const char *path,
                          uint64_t *position, char *errstr, size_t errstr_size);

/** Handed a state file's attachment (NULL, 0 when it has none) once the rest
 *  has loaded; non-zero rejects the whole file, with a reason in @p errstr. */
typedef int (tg_window_attachment_fn)(void *opaque, const void *attachment, size_t len,
                                      char *errstr, size_t errstr_size);

/** @brief tg_window_engine_load() that hands the attachment to @p attached. */
int tg_window_engine_load_with(tg_window_engine_t *e, const char *path, uint64_t *position,
                               tg_window_attachment_fn *attached, void *opaque,
                               char *errstr, size_t errstr_size);

#endif
