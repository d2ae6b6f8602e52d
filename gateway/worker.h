/* worker.h - the work on one message: decode, windows, raw and aggregate records to the sink. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_WORKER_H
#define TG_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "downsample.h"
#include "ledger.h"
#include "sink.h"
#include "sparkplug.h"
#include "status.h"
#include "window.h"

/*
 * The window engine, the subscriptions' decoders and the scratch buffers
 * belong to one thread at a time: the forwarder, and with durability
 * memory also the MQTT thread while it handles messages directly. Whoever
 * calls tg_worker_process(), tick or publish must hold the worker (see
 * the pipeline); anyone may read the published counters.
 */

struct tg_worker_counters {
        uint64_t received;                     /**< messages processed */
        uint64_t decoded;                      /**< readings */
        uint64_t ts_from_arrival;              /**< of those, stamped with arrival time */
        uint64_t ts_from_property;             /**< of those, timed by an MQTT 5 user property */
        uint64_t expired;                      /**< messages past their MQTT 5 expiry: not forwarded */
        uint64_t decode_failed[TG_DECODE__COUNT];
        uint64_t dead_lettered;                /**< produced to the dead-letter topic */
        uint64_t forwarded;                    /**< raw records produced */
        uint64_t forward_failed;
        uint64_t aggregates;                   /**< aggregate records produced */
        uint64_t downsampled;                  /**< records of what forward.mode selects */
        struct tg_downsample_counters raw_values; /**< the values forward.mode kept and held back */
        uint64_t sink_full_waits;              /**< times a record waited for room in the sink */
        int64_t last_arrival_ms;               /**< arrival time of the last message processed */
        struct tg_window_counters window;
        struct tg_sp_counters sparkplug;       /**< all zero when no subscription reads Sparkplug */
        uint64_t sp_deaths;                    /**< Sparkplug death records produced */
        uint64_t sp_rebirths_failed;           /**< rebirth requests the MQTT client refused */
};

typedef struct tg_worker tg_worker_t;

/**
 * @brief The subscriptions' decoders and the window engine, from @p cfg.
 * @param sink borrowed; @p ledger borrowed, tracks what tagged messages produce.
 * @param stop set non-zero to abandon a wait for room in the sink.
 * @return the worker, or NULL with the reason in @p errstr.
 */
tg_worker_t *tg_worker_new(const struct tg_config *cfg, const struct tg_sink *sink,
                           tg_ledger_t *ledger, const struct tg_clock *clock,
                           const _Atomic int *stop, char *errstr, size_t errstr_size);

/** @brief Free; NULL is accepted. */
void tg_worker_destroy(tg_worker_t *w);

/** @brief The subscription a topic came through: the first whose filter
 *         matches (the broker does not say). Any thread. */
size_t tg_worker_sub_index(const tg_worker_t *w, const char *topic);

/** @brief Subscriptions, and subscription @p i's filter (NULL past the end). Any thread. */
size_t tg_worker_nsubs(const tg_worker_t *w);
const char *tg_worker_sub_filter(const tg_worker_t *w, size_t i);

/**
 * @brief Decode one message, window its readings and produce its records
 *        (raw, late, aggregates of the windows it closes, or a dead
 *        letter). Allocation-free.
 * @param props the message's MQTT 5 properties block (msgprops.h): its
 *        entries become the raw and dead-letter records' mqtt.* headers,
 *        a subscription's timestamp.property its event time when the
 *        payload has none, its expiry a reason not to forward it. NULL and
 *        0 when it has none.
 * @param tag the spool sequence the records carry (0: not tracked).
 * @param may_wait 1: when the sink is full, wait for room serving its
 *        deliveries (the forwarder); 0: give up after a moment and count
 *        the record as failed (a thread that must not block).
 * @return TG_OUTCOME_* bits; with TG_OUTCOME_FAILED when a wait for room
 *         was abandoned because stop was set.
 */
unsigned tg_worker_process(tg_worker_t *w, size_t sub_index, const char *topic,
                           const void *props, size_t props_len, const void *payload,
                           size_t len, int64_t arrival_ms, uint64_t tag, int may_wait);

/** Every this often the engine's periodic work is due. */
#define TG_WORKER_TICK_MS 100

/**
 * @brief Holder: the engine's periodic work (idle close, eviction, update
 *        emits) when it is due at @p now_ms (monotonic), whichever thread
 *        holds the worker; @p may_wait as for tg_worker_process().
 * @return 1 when it ran.
 */
int tg_worker_tick(tg_worker_t *w, int64_t now_ms, int may_wait);

/** @brief Any thread: the periodic work has been due for @p late_ms at
 *         @p now_ms (nobody holding the worker did it). */
int tg_worker_tick_overdue(const tg_worker_t *w, int64_t now_ms, int64_t late_ms);

/** @brief After input was held: no sensor counts as idle for the pause. */
void tg_worker_touch_all(tg_worker_t *w);

/** @brief The engine, for checkpoints (holder only). */
tg_window_engine_t *tg_worker_engine(tg_worker_t *w);

/** @brief The status page's rows (status.h): the worker writes them, anyone reads. */
tg_status_t *tg_worker_status(tg_worker_t *w);
/** @brief The raw-forwarding compressors, for checkpoints (holder only);
 *         NULL when every subscription forwards every reading. */
tg_downsample_t *tg_worker_downsample(tg_worker_t *w);

/** @brief The Sparkplug decoder's state, for checkpoints (holder only);
 *         NULL when no subscription reads Sparkplug. */
tg_sparkplug_t *tg_worker_sparkplug(tg_worker_t *w);

/**
 * Publishes one MQTT message (QoS 0, not retained): a Sparkplug rebirth
 * request. Called by the worker's holder thread; must not block for long.
 * @return 0, or a negative errno when it was not sent.
 */
typedef int (tg_worker_publish_fn)(void *opaque, const char *topic, const void *payload,
                                   size_t len);

/** @brief Where rebirth requests go (none until set; NULL again before the
 *         publisher goes away). Any thread, at any time: it waits only for
 *         a request being handed over, never for the worker's message.
 *         @p fn must not block. */
void tg_worker_set_publish(tg_worker_t *w, tg_worker_publish_fn *fn, void *opaque);

/** @brief Holder: publish the counters for tg_worker_counters(). */
void tg_worker_publish(tg_worker_t *w);

/** @brief Any thread: the counters as last published. */
void tg_worker_counters(tg_worker_t *w, struct tg_worker_counters *out);

#endif
