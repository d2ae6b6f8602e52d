/* pipeline.h - the gateway's data path put together: intake, spool, forwarder, worker, ledger, checkpoints. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_PIPELINE_H
#define TG_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "downsample.h"
#include "sink.h"
#include "status.h"
#include "window.h"
#include "worker.h"

struct tg_pipeline_counters {
        uint64_t received;                     /**< MQTT messages taken */
        uint64_t decoded;                      /**< became a reading */
        uint64_t ts_from_arrival;              /**< of those, stamped with arrival time */
        uint64_t ts_from_property;             /**< of those, timed by an MQTT 5 user property */
        uint64_t expired;                      /**< past their MQTT 5 expiry in the spool: not forwarded */
        uint64_t decode_failed[TG_DECODE__COUNT];
        uint64_t dead_lettered;                /**< produced to the dead-letter topic */
        uint64_t forwarded;                    /**< raw records produced */
        uint64_t forward_failed;
        uint64_t aggregates;                   /**< aggregate records produced */
        uint64_t downsampled;                  /**< records of what forward.mode selects */
        struct tg_downsample_counters raw_values; /**< values forward.mode sent and held back */
        uint64_t state_rejected;               /**< window state files not used at start */
        uint64_t checkpoints;                  /**< window checkpoints written */
        uint64_t replayed;                     /**< spooled messages forwarded again after a restart */
        uint64_t spooled, spool_bytes, spool_records, spool_corrupt;
        uint64_t spool_full_waits;             /**< times the MQTT side waited for spool space */
        uint64_t spool_allocated;              /**< bytes the spool's segments take on disk */
        uint64_t spool_fsyncs;                 /**< fdatasync calls on spool segments */
        uint64_t sink_full_waits;              /**< times a record waited for room in the sink */
        int input_held;                        /**< 1 while acknowledging waits for spool space */
        uint64_t spool_dropped;                /**< messages dropped by spool.full: drop-oldest */
        uint64_t lost_at_shutdown;             /**< acknowledged but not spooled (stopping while full) */
        uint64_t mqtt_redeliveries;            /**< DUP messages already in the spool, not spooled again */
        int64_t last_arrival_ms;               /**< arrival time of the last message processed */
        struct tg_window_counters window;
        int sparkplug;                         /**< a subscription reads Sparkplug B */
        struct tg_sp_counters sp;              /**< its decoder's counters */
        uint64_t sp_deaths, sp_rebirths_failed;
};

/*
 * What became of every MQTT message, in messages (a SenML pack is one).
 * At any instant:
 *
 *   sum(received) - redeliveries - lost + recovered
 *       = forwarded + dead_lettered + failed + skipped + in_flight
 *
 * With durability disk a message is forwarded or dead-lettered once Kafka
 * has confirmed all its records; with memory, once they are handed to
 * librdkafka (unless Kafka fell behind and the message was spooled).
 */
struct tg_pipeline_messages {
        uint64_t received[TG_SUBSCRIPTIONS_MAX]; /**< taken from MQTT, per subscription */
        size_t nsubs;
        uint64_t redeliveries;   /**< MQTT DUP copies of a message already spooled */
        uint64_t lost;           /**< acknowledged but not spooled (stopping while full, I/O error) */
        uint64_t recovered;      /**< found in the spool at start, unconfirmed */
        uint64_t forwarded;      /**< at least one reading, on the raw topic */
        uint64_t dead_lettered;  /**< no valid reading: refused (dead-letter topic) */
        uint64_t failed;         /**< a record that Kafka or librdkafka refused for good */
        uint64_t skipped;        /**< in the spool but never read: dropped (spool.full) or corrupt;
                                      or expired there (MQTT 5 message expiry) */
        uint64_t in_flight;      /**< taken, not yet confirmed (from spool sequence numbers) */
};

typedef struct tg_pipeline tg_pipeline_t;

/*
 * Threads. The MQTT thread takes messages (intake.c): with durability disk
 * it appends each to the spool, a copy into mapped memory. The forwarder
 * thread (forwarder.c) reads the spool in batches, has the worker
 * (worker.c) decode, window and produce each message through the sink,
 * serves the sink's delivery reports into the ledger (ledger.c), and
 * writes checkpoints (checkpoint.c). Data flows one way; each thread owns
 * its state, and what others read (counters) is published, never shared
 * under a lock that anyone holds while waiting.
 */

/**
 * @brief Build the worker from @p cfg, restore the last checkpoint, open
 *        the spool and start the forwarder.
 * @param sink borrowed; must outlive the pipeline. Its delivery callback
 *        is set here, and only the forwarder polls it from now on.
 * @param stop set non-zero (SIGTERM) to abandon waits for spool space.
 * @return the pipeline, or NULL with the reason in @p errstr.
 */
tg_pipeline_t *tg_pipeline_new(const struct tg_config *cfg, const struct tg_sink *sink,
                               const struct tg_clock *clock, const volatile int *stop,
                               char *errstr, size_t errstr_size);

/**
 * @brief Drain and free. NULL is accepted. With durability disk, what the
 *        spool holds is forwarded and confirmed until @p deadline_ms
 *        (monotonic clock), then the checkpoint is written; with memory,
 *        open windows go to the state file. Either way a restart does not
 *        split a window. The MQTT side must be stopped first.
 * @return records the sink still held unconfirmed.
 */
int tg_pipeline_destroy(tg_pipeline_t *p, int64_t deadline_ms);

/**
 * @brief Take one MQTT payload (the MQTT thread). With durability disk it
 *        is appended to the spool (durable per spool.fsync) and forwarded
 *        by the forwarder thread; with memory it is decoded, windowed and
 *        handed to the sink here while Kafka keeps up. Allocation-free.
 * @param topic @p topic_len bytes, NUL-terminated.
 * @param qos the QoS it was delivered at: at 1 and 2 it is remembered for
 *        redeliveries; at 0 the broker never sends it again.
 * @param dup the MQTT DUP flag: a redelivery identical to a message spooled
 *        recently is acknowledged without being spooled twice.
 * @return 0 when the payload was taken (including refused as bad input),
 *         -ECANCELED when stopping interrupted a wait for spool space.
 */
int tg_pipeline_ingest(tg_pipeline_t *p, const char *topic, size_t topic_len,
                       const void *payload, size_t len, int qos, int dup);

/**
 * @brief tg_pipeline_ingest() of a message with MQTT 5 properties: @p props
 *        is its block (msgprops.h, @p props_len bytes, 0 for none), kept
 *        with the message in the spool and read by the worker.
 */
int tg_pipeline_ingest_props(tg_pipeline_t *p, const char *topic, size_t topic_len,
                             const void *props, size_t props_len, const void *payload,
                             size_t len, int qos, int dup);

/** @brief Periodic work on the caller's thread: the spool's interval fsync. */
void tg_pipeline_tick(tg_pipeline_t *p);

/** @brief Any thread: the counters as last published. */
void tg_pipeline_counters(tg_pipeline_t *p, struct tg_pipeline_counters *out);

/** @brief Any thread: the message accounting, one consistent snapshot. */
void tg_pipeline_messages(tg_pipeline_t *p, struct tg_pipeline_messages *out);

/** @brief Subscription @p i's topic filter, or NULL. */
const char *tg_pipeline_sub_filter(const tg_pipeline_t *p, size_t i);

/** @brief Any thread: the status page's rows (status.h), or NULL when off. */
tg_status_t *tg_pipeline_status(tg_pipeline_t *p);

/**
 * @brief Where the worker publishes Sparkplug rebirth requests (worker.h);
 *        NULL to stop, which must happen before the publisher goes away.
 *        Never waits for the worker's message (a forwarder waiting for
 *        Kafka may hold the worker through a long outage).
 */
void tg_pipeline_set_publish(tg_pipeline_t *p, tg_worker_publish_fn *fn, void *opaque);

/** @brief 1 while acknowledging waits for spool space (/readyz says so). */
int tg_pipeline_input_held(const tg_pipeline_t *p);

#endif
