/* sink.h - the narrow interface the data path produces through: Kafka in the daemon, a fake in the tests. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_SINK_H
#define TG_SINK_H

#include <stddef.h>
#include <stdint.h>

enum tg_sink_topic {
        TG_SINK_RAW = 0,
        TG_SINK_AGG,
        TG_SINK_LATE,   /**< optional (topics.late); producing to it when unset is a no-op */
        TG_SINK_DLQ,    /**< dead letters (topics.dlq); optional too */
        TG_SINK_COMPRESSED, /**< what forward.mode selects, when topics.compressed is set */
        TG_SINK__COUNT
};

/** One record header. */
struct tg_sink_header {
        const char *name;
        const void *value;
        size_t len;
};

/**
 * Called from the sink's poll for each record once the far side confirmed
 * it (@p ok) or gave up on it for good, with the tag it was produced with.
 */
typedef void (tg_sink_delivery_fn)(void *opaque, enum tg_sink_topic topic,
                                   uint64_t tag, int ok);

/*
 * What the pipeline needs of the far side, and nothing more. No call
 * waits: a sink that holds all it can takes nothing more (-ENOBUFS) until
 * poll has served deliveries, so the caller decides whether to wait, and
 * never does so while another thread waits on it.
 */
struct tg_sink {
        /** Hand one record over; key, value and headers are copied. @p tag
         *  (< 2^60) comes back in the delivery callback.
         *  @return 0; -ENOBUFS when the sink is full for now; -EIO when it
         *  refused the record for good. */
        int (*produce)(void *ctx, enum tg_sink_topic topic, const char *key,
                       size_t key_len, const void *value, size_t len,
                       int64_t timestamp_ms, const struct tg_sink_header *headers,
                       size_t nheaders, uint64_t tag);
        /** Serve delivery reports (and the sink's other events) for up to
         *  @p timeout_ms; returns early when there were some. */
        void (*poll)(void *ctx, int timeout_ms);
        /** Records handed over and neither confirmed nor failed yet. */
        int (*in_flight)(void *ctx);
        /** Whether @p topic is configured (optional topics may be unset). */
        int (*has_topic)(void *ctx, enum tg_sink_topic topic);
        /** Set the delivery callback, before anything is produced. */
        void (*on_delivery)(void *ctx, tg_sink_delivery_fn *fn, void *opaque);
        void *ctx;
        /** How many records the sink can hold in flight. */
        int capacity;
};

#endif
