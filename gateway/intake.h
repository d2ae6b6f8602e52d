/* intake.h - the MQTT thread's side: a message is in the spool (or, with durability memory, handed to Kafka) before the callback returns. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_INTAKE_H
#define TG_INTAKE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "sink.h"
#include "spool.h"
#include "worker.h"

/* What the intake counted, and the spool's next sequence, at one instant. */
struct tg_intake_counts {
        uint64_t received[TG_SUBSCRIPTIONS_MAX]; /**< taken from MQTT, per subscription */
        uint64_t redeliveries;     /**< MQTT DUP copies of a message already spooled */
        uint64_t lost;             /**< acknowledged but not spooled (stopping while full, I/O error) */
        /** durability memory: handled on the MQTT thread, by outcome */
        uint64_t direct_forwarded, direct_dead_lettered, direct_failed;
        uint64_t spool_full_waits; /**< times acknowledging paused for spool space */
        uint64_t spool_dropped;    /**< messages dropped by spool.full: drop-oldest */
        uint64_t next_seq;         /**< the spool's */
};

struct tg_intake_conf {
        tg_spool_t *spool;
        tg_worker_t *worker;          /**< memory: used directly while holding worker_lock */
        pthread_mutex_t *worker_lock;
        const struct tg_sink *sink;
        const struct tg_clock *clock; /**< arrival times */
        int memory;                   /**< durability memory */
        int drop_oldest;              /**< spool.full: drop-oldest */
        const volatile int *stop;     /**< gives up a wait for spool space */
};

typedef struct tg_intake tg_intake_t;

/** @brief @p conf's pointers are borrowed. Remembers the spool's tail for
 *         redeliveries. @return NULL when out of memory. */
tg_intake_t *tg_intake_new(const struct tg_intake_conf *conf);

/** @brief Free; NULL is accepted. */
void tg_intake_destroy(tg_intake_t *in);

/**
 * @brief Take one MQTT message (the MQTT thread). With durability disk it
 *        is appended to the spool: a copy, no system call, no wake-up.
 *        With memory it is handled here while Kafka keeps up, else
 *        spooled until the forwarder has drained the spool again.
 * @param topic NUL-terminated, @p topic_len bytes.
 * @param props the message's MQTT 5 properties block (msgprops.h), kept
 *        with it; NULL and 0 when it has none.
 * @param qos the QoS it was delivered at: at 1 and 2 it is remembered for
 *        redeliveries; at 0 the broker never sends it again.
 * @param dup the MQTT DUP flag: a redelivery identical to a message spooled
 *        recently is acknowledged without being spooled twice.
 * @return 0 when taken (including refused as bad input); -ECANCELED when
 *         stopping interrupted a wait for spool space; another -errno when
 *         the message could not be kept (counted as lost).
 */
int tg_intake_take(tg_intake_t *in, const char *topic, size_t topic_len,
                   const void *props, size_t props_len, const void *payload, size_t len,
                   int qos, int dup);

/** @brief Any thread: one consistent set of counts. */
void tg_intake_counts(tg_intake_t *in, struct tg_intake_counts *out);

/** @brief 1 while acknowledging is paused for want of spool space. */
int tg_intake_held(const tg_intake_t *in);

/** @brief Forwarder: 1 once after a pause in acknowledging ended. */
int tg_intake_resumed(tg_intake_t *in);

/**
 * @brief Forwarder, holding the worker, memory mode: messages are being
 *        spooled and the forwarder has processed up to @p processed_next;
 *        once the spool is drained and Kafka keeps up, hand messages to
 *        the MQTT thread again.
 */
void tg_intake_try_direct(tg_intake_t *in, uint64_t processed_next);

/**
 * @brief memory mode: the sink holds as much as the direct path allows
 *        (Kafka slow or down); said once in the log until the spool is
 *        drained again. Either thread.
 */
void tg_intake_kafka_behind(tg_intake_t *in);

/** @brief memory mode: records in the sink beyond which messages wait in
 *         the spool (50 000, or half the sink's capacity). */
int tg_intake_queue_high(const tg_intake_t *in);

#endif
