/* downsample.h - what of the raw stream is forwarded: every reading, report by exception, or swinging-door compression. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_DOWNSAMPLE_H
#define TG_DOWNSAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "reading.h"

/*
 * The specification is docs/downsample.md; clause numbers in the code and
 * the tests refer to it. One compressor per (sensor, field), all in memory
 * allocated by tg_downsample_new(); adding a reading allocates nothing.
 * Not thread-safe: it belongs to whoever holds the worker, like the window
 * engine.
 */

/** How one field's values reach the raw (or compressed) topic. */
enum tg_raw_mode {
        TG_RAW_ALL = 0,          /**< every value */
        TG_RAW_EXCEPTION,        /**< a value further than the deadband from the last sent one */
        TG_RAW_SWINGING_DOOR,    /**< the kept points of swinging-door compression */
        TG_RAW_NONE,             /**< nothing: aggregates only */
        TG_RAW__COUNT
};

/** @brief "all", "exception", "swinging-door", "none". */
const char *tg_raw_mode_name(enum tg_raw_mode m);

/** @brief Parse a mode's name. @return 0 or -EINVAL. */
int tg_raw_mode_parse(const char *s, enum tg_raw_mode *out);

/** One field's rule, resolved from the configuration. */
struct tg_raw_rule {
        enum tg_raw_mode mode;
        double deviation;        /**< absolute: the deadband, or the compression deviation */
        int64_t max_silence_ms;  /**< a value is sent at least this often; 0: no limit */
};

/**
 * @brief Parse a deviation: a number ("0.5"), or a percentage of @p span
 *        ("2%"). @return 0, or -EINVAL (negative, not finite, or a
 *        percentage with no span > 0).
 */
int tg_raw_deviation_parse(const char *s, double span, double *out);

/** A subscription's rules: one for every field, and some fields' own. */
struct tg_raw_rules {
        struct tg_raw_rule def;
        size_t n;
        struct {
                char name[TG_FIELD_NAME_MAX + 1];
                size_t len;
                struct tg_raw_rule rule;
        } field[TG_READING_FIELDS_MAX];
};

/**
 * @brief Resolve a subscription's forward.* options into @p out: @p mode,
 *        @p deviation (of @p span, which may be ""), @p max_silence_ms, and
 *        @p fields, "NAME=MODE[:DEVIATION[:SPAN]]" separated by ',' or ' '.
 * @return 0, or -EINVAL with what is wrong in @p errstr.
 */
int tg_raw_rules_parse(struct tg_raw_rules *out, const char *mode, const char *deviation,
                       const char *span, int64_t max_silence_ms, const char *fields,
                       char *errstr, size_t errstr_size);

/** @brief The rule of each of @p r's fields, into @p out (room for r->nfields). */
void tg_raw_rules_for(const struct tg_raw_rules *rules, const struct tg_reading *r,
                      struct tg_raw_rule *out);

/** @brief Whether any field may be under exception or swinging-door: the rules need state. */
int tg_raw_rules_stateful(const struct tg_raw_rules *rules);

/** @brief Whether every field is under "all": the raw stream as it always was. */
int tg_raw_rules_all(const struct tg_raw_rules *rules);

/** A value the compressor forwards. */
struct tg_raw_point {
        uint16_t field;          /**< its index in the reading handed over */
        uint8_t mode;            /**< enum tg_raw_mode that produced it */
        uint8_t out_of_order;    /**< 1: not after the field's newest reading (2.3): outside the series */
        int64_t ts;
        double value;
};

/** At most this many points per reading: a held point and the reading's own, per field. */
#define TG_DOWNSAMPLE_POINTS_MAX (2 * TG_READING_FIELDS_MAX)

struct tg_downsample_counters {
        uint64_t points;         /**< values forwarded */
        uint64_t suppressed;     /**< values not forwarded (yet): exception, swinging door or none */
        uint64_t out_of_order;   /**< values forwarded out of order (2.3) */
        uint64_t untracked;      /**< values forwarded as is: no room in the table (2.5) */
        uint64_t rule_changes;   /**< field states restarted because their rule changed (4.3) */
        uint64_t sensors;        /**< sensors in the table */
};

typedef struct tg_downsample tg_downsample_t;

/**
 * @brief Room for @p max_sensors sensors of up to @p max_fields fields each,
 *        allocated now.
 * @return the table, or NULL with the reason in @p errstr.
 */
tg_downsample_t *tg_downsample_new(uint32_t max_sensors, uint32_t max_fields, char *errstr,
                                   size_t errstr_size);

/** @brief Free; NULL is accepted. */
void tg_downsample_destroy(tg_downsample_t *d);

/**
 * @brief Take reading @p r, field i under @p rules[i], and write the points
 *        to forward now to @p out (room for TG_DOWNSAMPLE_POINTS_MAX), in
 *        time order per field. Allocation-free.
 * @return the number of points written.
 */
size_t tg_downsample_add(tg_downsample_t *d, const struct tg_reading *r,
                         const struct tg_raw_rule *rules, struct tg_raw_point *out);

/** @brief A snapshot of the counters. */
void tg_downsample_counters(const tg_downsample_t *d, struct tg_downsample_counters *out);

/** @brief Bytes allocated at start-up. */
size_t tg_downsample_memory(const tg_downsample_t *d);

/**
 * @brief Every field's state (4.1) as bytes, in a buffer the caller frees:
 *        the window checkpoint carries it (tg_window_engine_save_with()).
 * @return 0 or -ENOMEM.
 */
int tg_downsample_snapshot(const tg_downsample_t *d, void **buf, size_t *len);

/**
 * @brief Replace the state with a snapshot's; @p len 0 empties the table.
 * @return 0, or -EINVAL with the reason in @p errstr (the table left empty).
 */
int tg_downsample_restore(tg_downsample_t *d, const void *buf, size_t len, char *errstr,
                          size_t errstr_size);

#endif
