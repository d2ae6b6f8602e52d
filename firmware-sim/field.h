/* field.h - field conditions of the simulator: reordering, late sends, clock skew and drift, outages with a backlog, abrupt disconnects, duplicates. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_SIM_FIELD_H
#define TG_SIM_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/*
 * A perfect sensor sends its reading at the step it takes it. Under field
 * conditions each reading is taken at its step (event time is the sensor's
 * own clock: true time plus a skew and a drift) and then *held* until the
 * step it leaves at:
 *
 *   reorder    held 0 .. reorder_ms, uniformly: bounded reordering
 *   late       a fraction held late_ms (past the gateway's grace)
 *   offline    one outage per chosen sensor: nothing leaves during it; when
 *              it ends the sensor sends its current reading, then the
 *              backlog of the outage, oldest first, one step later
 *   disconnect one abrupt disconnect per chosen sensor (the simulator drops
 *              its MQTT connection without DISCONNECT, so the broker
 *              publishes its will): readings taken meanwhile are lost, never
 *              sent and not in the truth; held ones leave after it
 *   duplicate  a fraction sent twice, the copy right after the original
 *
 * Every draw comes from per-sensor streams of --seed, apart from the signal
 * streams, so the same options give the same arrival order and the values
 * do not change when a condition is turned on. The module is the
 * publishing thread's alone.
 */

#define SIM_FIELD_VALUES 3

struct sim_field_opts {
        unsigned reorder_ms;
        double late;            /**< fraction of readings held late_ms */
        unsigned late_ms;
        unsigned skew_ms;       /**< per-sensor clock offset, uniform in +/- this */
        double drift_ppm;       /**< per-sensor clock rate error, uniform in +/- this */
        double offline;         /**< fraction of sensors with one outage */
        unsigned offline_ms;
        double disconnect;      /**< fraction of sensors with one abrupt disconnect */
        unsigned disconnect_ms;
        double duplicate;       /**< fraction of readings sent twice */
};

/** @brief Whether any condition is on. */
int sim_field_active(const struct sim_field_opts *o);

/** One reading taken and not yet sent. */
struct sim_held {
        int64_t send_at;        /**< the step offset (ms) it leaves at */
        uint64_t order;         /**< ties: in the order held */
        int64_t ts;             /**< event time on the sensor's clock */
        double v[SIM_FIELD_VALUES];
};

typedef struct sim_field sim_field_t;

/**
 * @brief Schedules for @p nsensors sensors stepping every @p step_ms over
 *        @p run_ms of event time (0: unbounded; outages then fall in the
 *        first minute).
 * @return NULL when out of memory.
 */
sim_field_t *sim_field_new(const struct sim_field_opts *o, unsigned nsensors, unsigned step_ms,
                           int64_t run_ms, uint64_t seed);

/** @brief Free; NULL is accepted. */
void sim_field_destroy(sim_field_t *f);

/** @brief The event time sensor @p i stamps on a reading taken at step offset @p at_ms. */
int64_t sim_field_ts(const sim_field_t *f, unsigned i, int64_t start_ms, int64_t at_ms);

/** @brief 1 when sensor @p i is disconnected at @p at_ms (its readings are lost). */
int sim_field_disconnected(const sim_field_t *f, unsigned i, int64_t at_ms);

/** @brief Sensor @p i's disconnect [from, to) as step offsets. @return 0 when it has none. */
int sim_field_disconnect_span(const sim_field_t *f, unsigned i, int64_t *from, int64_t *to);

/** @brief Sensor @p i's outage [from, to). @return 0 when it has none. */
int sim_field_offline_span(const sim_field_t *f, unsigned i, int64_t *from, int64_t *to);

/**
 * @brief Hold sensor @p i's reading taken at @p at_ms (and its duplicate,
 *        when drawn). @return 0, or -ENOBUFS when its queue is full.
 */
int sim_field_take(sim_field_t *f, unsigned i, int64_t at_ms, int64_t ts,
                   const double v[SIM_FIELD_VALUES]);

/**
 * @brief The next of sensor @p i's held readings due at @p now_ms (all of
 *        them when @p now_ms is INT64_MAX), into @p out.
 * @return 1 when one was taken off the queue, else 0.
 */
int sim_field_next_due(sim_field_t *f, unsigned i, int64_t now_ms, struct sim_held *out);

/** @brief Readings held for sensor @p i. */
size_t sim_field_held(const sim_field_t *f, unsigned i);

/** @brief The options as one JSON object, for the truth file's first line. @return its length, 0 if too small. */
size_t sim_field_describe(const struct sim_field_opts *o, uint64_t seed, char *buf, size_t cap);

#endif
