/* forwarder.c - the forwarder thread: spool to worker to sink, in batches, with no wake-up per message. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "forwarder.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "log.h"

#define IDLE_MS 5      /* sleep in the sink's poll when the spool has nothing more */
#define BATCH 1024     /* messages per round before serving deliveries */
#define RECORD_BUF (TG_SPOOL_TOPIC_MAX + TG_PAYLOAD_MAX + 2)

struct tg_forwarder {
        struct tg_forwarder_conf conf;
        pthread_t thread;
        uint64_t cursor;                /* next sequence to read */
        int room;                       /* read more only while the sink holds fewer */
        int held_back;                  /* spooled messages wait for room in the sink */
        int abandoned;
        unsigned char *buf;             /* a record's topic and payload */
        char topic[TG_SPOOL_TOPIC_MAX + 1];
        _Atomic uint64_t processed, replayed;
};

/* Process what the spool holds, up to a batch; holding the worker. @return
 * 1 when more is waiting. */
static int forward_batch(tg_forwarder_t *f) {
        const struct tg_sink *s = f->conf.sink;
        struct tg_spool_record rec;
        int n;

        for (n = 0; n < BATCH; n++) {
                unsigned o;
                int r;

                if (atomic_load(f->conf.stop) || f->cursor >= tg_spool_next_seq(f->conf.spool))
                        return 0;
                /* Kafka behind: leave the rest in the spool for now, and
                 * let no sensor look idle meanwhile (windows.md 5.2). */
                if (tg_ledger_full(f->conf.ledger) || s->in_flight(s->ctx) >= f->room) {
                        if (f->conf.memory)
                                tg_intake_kafka_behind(f->conf.intake);
                        f->held_back = 1;
                        return 0;
                }
                if (f->held_back) {
                        tg_worker_touch_all(f->conf.worker);
                        f->held_back = 0;
                }
                r = tg_spool_read(f->conf.spool, &f->cursor, &rec, f->buf, RECORD_BUF);
                if (r == -EAGAIN)
                        return 0;
                if (r) {
                        /* Cannot happen for what intake spools; never spin on it. */
                        tg_err_limited("spool: message %llu unreadable (%s): skipped",
                               (unsigned long long)f->cursor, strerror(-r));
                        f->cursor++;
                        continue;
                }
                memcpy(f->topic, rec.topic, rec.topic_len);
                f->topic[rec.topic_len] = '\0';
                /* Sequences the read skipped (corrupt, dropped) are done. */
                tg_ledger_begin(f->conf.ledger, rec.seq);
                if (rec.seq < f->conf.replay_until)
                        atomic_fetch_add_explicit(&f->replayed, 1, memory_order_relaxed);
                o = tg_worker_process(f->conf.worker,
                                      tg_worker_sub_index(f->conf.worker, f->topic), f->topic,
                                      rec.payload, rec.len, rec.arrival_ms, rec.seq, 1);
                tg_ledger_end(f->conf.ledger, rec.seq, o);
                if ((o & TG_OUTCOME_FAILED) && atomic_load(f->conf.stop))
                        f->abandoned = 1;
        }
        return 1;
}

static void *forwarder_main(void *arg) {
        tg_forwarder_t *f = arg;
        const struct tg_sink *s = f->conf.sink;

        while (!atomic_load(f->conf.stop)) {
                int64_t now = tg_monotonic_ms();
                int more = 0, resumed = tg_intake_resumed(f->conf.intake);
                int work = f->cursor < tg_spool_next_seq(f->conf.spool);
                uint64_t confirmed;

                /* With durability memory the MQTT thread has the worker
                 * while it handles messages directly, and ticks it too:
                 * take it only for the spool, or when the MQTT side has
                 * been quiet for a tick. */
                if (!f->conf.memory || work || resumed ||
                    tg_worker_tick_overdue(f->conf.worker, now, TG_WORKER_TICK_MS)) {
                        pthread_mutex_lock(f->conf.worker_lock);
                        /* No idle close while our own input was held (5.2). */
                        if (resumed)
                                tg_worker_touch_all(f->conf.worker);
                        if (!tg_intake_held(f->conf.intake) && !f->held_back)
                                tg_worker_tick(f->conf.worker, now, 1);
                        if (work)
                                more = forward_batch(f);
                        if (f->conf.memory)
                                tg_intake_try_direct(f->conf.intake,
                                                     tg_ledger_next(f->conf.ledger));
                        confirmed = tg_ledger_advance(f->conf.ledger);
                        tg_checkpoint_step(f->conf.checkpoint, tg_worker_engine(f->conf.worker),
                                           tg_worker_downsample(f->conf.worker),
                                           tg_worker_sparkplug(f->conf.worker), f->conf.spool, tg_ledger_next(f->conf.ledger),
                                           confirmed, 0, now);
                        tg_worker_publish(f->conf.worker);
                        pthread_mutex_unlock(f->conf.worker_lock);
                } else {
                        confirmed = tg_ledger_advance(f->conf.ledger);
                        tg_checkpoint_step(f->conf.checkpoint, NULL, NULL, NULL, f->conf.spool,
                                           tg_ledger_next(f->conf.ledger), confirmed, 0, now);
                }
                atomic_store(&f->processed, tg_ledger_next(f->conf.ledger));
                /* Deliveries, and the sleep: appends wake nobody. */
                s->poll(s->ctx, more ? 0 : IDLE_MS);
        }
        return NULL;
}

tg_forwarder_t *tg_forwarder_start(const struct tg_forwarder_conf *conf, char *errstr,
                                   size_t errstr_size) {
        tg_forwarder_t *f = calloc(1, sizeof(*f));
        int r;

        if (!f || !(f->buf = malloc(RECORD_BUF))) {
                free(f);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        f->conf = *conf;
        f->cursor = conf->start;
        atomic_store(&f->processed, conf->start);
        /* Leave a tenth of the sink for the aggregates a tick may close;
         * with durability memory, what is beyond the direct path's bound
         * waits in the spool, not in memory. */
        f->room = conf->memory ? tg_intake_queue_high(conf->intake)
                               : conf->sink->capacity - conf->sink->capacity / 10;
        if (f->room < 1)
                f->room = 1;
        if ((r = pthread_create(&f->thread, NULL, forwarder_main, f))) {
                snprintf(errstr, errstr_size, "forwarder thread: %s", strerror(r));
                free(f->buf);
                free(f);
                return NULL;
        }
        return f;
}

uint64_t tg_forwarder_processed(const tg_forwarder_t *f) {
        return atomic_load(&((tg_forwarder_t *)f)->processed);
}

uint64_t tg_forwarder_replayed(const tg_forwarder_t *f) {
        return atomic_load(&((tg_forwarder_t *)f)->replayed);
}

int tg_forwarder_join(tg_forwarder_t *f) {
        int abandoned;

        pthread_join(f->thread, NULL);
        abandoned = f->abandoned;
        free(f->buf);
        free(f);
        return abandoned;
}
