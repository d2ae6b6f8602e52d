/* forwarder.h - the thread that reads the spool in order, has the worker process each message, and serves Kafka's deliveries. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_FORWARDER_H
#define TG_FORWARDER_H

#include <pthread.h>
#include <stdint.h>

#include "checkpoint.h"
#include "intake.h"
#include "ledger.h"
#include "sink.h"
#include "spool.h"
#include "worker.h"

struct tg_forwarder_conf {
        tg_spool_t *spool;
        tg_worker_t *worker;
        pthread_mutex_t *worker_lock;
        tg_ledger_t *ledger;
        tg_checkpoint_t *checkpoint;
        const struct tg_sink *sink;
        tg_intake_t *intake;
        int memory;                /**< durability memory */
        uint64_t start;            /**< first sequence to read */
        uint64_t replay_until;     /**< sequences below were in the spool at start */
        const _Atomic int *stop;   /**< ends the thread (also the worker's waits) */
};

typedef struct tg_forwarder tg_forwarder_t;

/**
 * @brief Start the thread. It wakes every few milliseconds or when the sink
 *        has deliveries, takes everything the spool has, and sleeps in the
 *        sink's poll: appends never wake it. While the sink holds all it
 *        can (Kafka slow or down) it reads nothing more, so the spool, not
 *        the sink, absorbs an outage.
 * @return NULL with the reason in @p errstr.
 */
tg_forwarder_t *tg_forwarder_start(const struct tg_forwarder_conf *conf, char *errstr,
                                   size_t errstr_size);

/** @brief Any thread: every spool sequence below this has been processed. */
uint64_t tg_forwarder_processed(const tg_forwarder_t *f);

/** @brief Any thread: messages processed again after a restart. */
uint64_t tg_forwarder_replayed(const tg_forwarder_t *f);

/**
 * @brief Join the thread (conf->stop must be set) and free.
 * @return 1 when a message was left half done (a wait for the sink
 *         abandoned): then no final checkpoint may cover it.
 */
int tg_forwarder_join(tg_forwarder_t *f);

#endif
