/* kafka_sink.h - the Kafka side: an idempotent librdkafka producer for the raw and aggregate topics. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_KAFKA_SINK_H
#define TG_KAFKA_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sink.h"

/** Upper bounds (ms) of the event-to-delivery latency histogram's buckets. */
#define TG_SINK_LATENCY_BUCKETS 15
extern const int64_t tg_sink_latency_bounds_ms[TG_SINK_LATENCY_BUCKETS];

struct tg_sink_counters {
        uint64_t produced[TG_SINK__COUNT];  /**< handed to librdkafka */
        uint64_t delivered[TG_SINK__COUNT]; /**< confirmed by the brokers (acks=all) */
        uint64_t failed[TG_SINK__COUNT];    /**< permanently failed deliveries */
        uint64_t queue_full;                /**< produce calls refused: librdkafka's queue full */
        /** raw records: wall clock at delivery minus event time; cumulative
         *  (le[i]: at most tg_sink_latency_bounds_ms[i]) */
        uint64_t latency_le[TG_SINK_LATENCY_BUCKETS];
        uint64_t latency_count, latency_sum_ms;
};

typedef struct tg_kafka_sink tg_kafka_sink_t;

/**
 * @brief Create the producer from @p cfg (bootstrap servers, compression,
 *        kafka.* passthrough). Does not wait for the brokers.
 * @return the sink, or NULL with the reason in @p errstr.
 */
tg_kafka_sink_t *tg_kafka_sink_new(const struct tg_config *cfg, char *errstr,
                                   size_t errstr_size);

/**
 * @brief Check that every kafka.* property is one librdkafka accepts,
 *        without creating a producer (for --check-config).
 * @return 0 or -EINVAL with the reason in @p errstr.
 */
int tg_kafka_sink_check_config(const struct tg_config *cfg, char *errstr,
                               size_t errstr_size);

/**
 * @brief Flush what is in flight (up to @p timeout_ms), then free. NULL is accepted.
 * @return messages still undelivered when it gave up.
 */
int tg_kafka_sink_destroy(tg_kafka_sink_t *sink, int timeout_ms);

/**
 * @brief Produce one record; key, value and headers are copied; @p tag
 *        (< 2^60) comes back in the delivery callback. Never waits: when
 *        librdkafka's queue (kafka.queue.buffering.max.messages) is full
 *        it returns -ENOBUFS and counts it, and the caller decides.
 * @return 0, -ENOBUFS, or -EIO when librdkafka refused the record.
 */
int tg_kafka_sink_produce(tg_kafka_sink_t *sink, enum tg_sink_topic topic,
                          const char *key, size_t key_len, const void *value,
                          size_t value_len, int64_t timestamp_ms,
                          const struct tg_sink_header *headers, size_t nheaders,
                          uint64_t tag);

/** @brief Set the delivery callback (before producing anything). */
void tg_kafka_sink_on_delivery(tg_kafka_sink_t *sink, tg_sink_delivery_fn *fn,
                               void *opaque);

/**
 * @brief The producer as the pipeline sees it (struct tg_sink), borrowing
 *        @p sink.
 */
void tg_kafka_sink_iface(tg_kafka_sink_t *sink, struct tg_sink *out);

/**
 * @brief Wait up to @p timeout_ms for every record in flight to be confirmed.
 * @return records still unconfirmed.
 */
int tg_kafka_sink_flush(tg_kafka_sink_t *sink, int timeout_ms);

/** @brief Whether @p topic is configured (optional topics may be unset). */
int tg_kafka_sink_has_topic(const tg_kafka_sink_t *sink, enum tg_sink_topic topic);

/**
 * @brief Serve delivery reports and logs for up to @p timeout_ms, and
 *        topics.create's answer (creation is retried while no broker
 *        answers).
 */
void tg_kafka_sink_poll(tg_kafka_sink_t *sink, int timeout_ms);

/**
 * @brief Whether Kafka is reachable: a broker the cluster named is up
 *        (librdkafka's statistics, every 2 s) or a delivery was confirmed
 *        since they last said otherwise.
 */
int tg_kafka_sink_reachable(const tg_kafka_sink_t *sink);

/** Records waiting this long with none confirmed make the sink stalled. */
#define TG_KAFKA_STALL_MS 10000

/**
 * @brief Whether writes are stalled though a broker is up: records have
 *        waited TG_KAFKA_STALL_MS with none confirmed (a replicated
 *        cluster with fewer in-sync replicas than min.insync.replicas, or
 *        a partition without a leader). Read from librdkafka's statistics
 *        (every 2 s); a confirmation clears it at once.
 */
int tg_kafka_sink_stalled(const tg_kafka_sink_t *sink);

/** @brief The name of @p topic, or NULL when not configured. */
const char *tg_kafka_sink_topic_name(const tg_kafka_sink_t *sink,
                                     enum tg_sink_topic topic);

/** @brief Messages produced but not yet confirmed or failed. */
int tg_kafka_sink_in_flight(const tg_kafka_sink_t *sink);

void tg_kafka_sink_counters(const tg_kafka_sink_t *sink,
                            struct tg_sink_counters *out);

#endif
