/* pipeline.c - the data path put together: spool before the ack, then the forwarder; start-up, drain, and the accounting. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "clock.h"
#include "forwarder.h"
#include "intake.h"
#include "ledger.h"
#include "log.h"
#include "spool.h"
#include "worker.h"

/*
 * Two ways through, chosen by `durability`:
 *
 * disk (default): the MQTT callback appends the message to the spool and
 * returns only once it is there (Paho acknowledges on return). The
 * forwarder reads the spool in order and does the work: decode, forward
 * raw, windows, aggregates. Every Kafka record carries the spool sequence
 * number of the message it came from; a message is done when all its
 * records are confirmed. Checkpoints tie the window state to a spool
 * position confirmed up to it; after a crash the gateway restores the last
 * one and replays the spool after it: windows come out as in an
 * uninterrupted run, and raw records of the replayed messages may be sent
 * twice (counted as replayed).
 *
 * memory: the callback does the work itself while Kafka keeps up; a
 * message is acknowledged once its records are in the sink. While Kafka
 * does not keep up, messages go to the spool (no fsync) and the forwarder
 * drains it.
 */

struct tg_pipeline {
        const struct tg_sink *sink;
        int memory;
        _Atomic int forwarder_stop;
        pthread_mutex_t worker_lock;   /* the worker belongs to whoever holds it */
        tg_worker_t *worker;
        tg_ledger_t *ledger;
        tg_checkpoint_t *checkpoint;
        tg_spool_t *spool;
        tg_intake_t *intake;
        tg_forwarder_t *forwarder;
        uint64_t recovered;            /* found in the spool at start, unconfirmed */
};

/* Delivery reports, on the thread polling the sink (the forwarder). */
static void on_delivered(void *opaque, enum tg_sink_topic topic, uint64_t tag, int ok) {
        tg_pipeline_t *p = opaque;

        (void)topic;
        if (tag)
                tg_ledger_delivered(p->ledger, tag, ok);
}

static int spool_start(tg_pipeline_t *p, const struct tg_config *cfg, uint64_t position,
                       char *errstr, size_t errstr_size) {
        char dir[4200];
        struct tg_spool_conf sc = {
                .dir = dir,
                .segment_bytes = (size_t)cfg->spool_segment_bytes,
                .max_bytes = (uint64_t)cfg->spool_max_bytes,
                .fsync = p->memory                             ? TG_SPOOL_FSYNC_NEVER
                         : !strcmp(cfg->spool_fsync, "always") ? TG_SPOOL_FSYNC_ALWAYS
                         : !strcmp(cfg->spool_fsync, "never")  ? TG_SPOOL_FSYNC_NEVER
                                                               : TG_SPOOL_FSYNC_INTERVAL,
                .fsync_interval_ms = cfg->spool_fsync_interval_ms,
                /* Numbers up to the checkpoint are taken, even if a power loss
                 * took their records from the spool. */
                .seq_floor = position + 1,
                /* Room for a first checkpoint before any has told its size. */
                .reserve_bytes = (uint64_t)1 << 20,
        };

        snprintf(dir, sizeof(dir), "%s/spool", cfg->state_dir);
        if (!(p->spool = tg_spool_open(&sc, errstr, errstr_size)))
                return -EIO;
        return 0;
}

tg_pipeline_t *tg_pipeline_new(const struct tg_config *cfg, const struct tg_sink *sink,
                               const struct tg_clock *clock, const volatile int *stop,
                               char *errstr, size_t errstr_size) {
        tg_pipeline_t *p = calloc(1, sizeof(*p));
        struct tg_forwarder_conf fc;
        struct tg_intake_conf ic;
        uint64_t position, next;

        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        p->sink = sink;
        p->memory = !strcmp(cfg->durability, "memory");
        pthread_mutex_init(&p->worker_lock, NULL);
        if (!(p->ledger = tg_ledger_new(1)) ||
            !(p->checkpoint = tg_checkpoint_new(cfg->state_dir, cfg->checkpoint_interval_ms,
                                                p->memory))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!(p->worker = tg_worker_new(cfg, sink, p->ledger, clock, &p->forwarder_stop, errstr,
                                        errstr_size)))
                goto fail;
        position = tg_checkpoint_restore(p->checkpoint, tg_worker_engine(p->worker),
                                         tg_worker_downsample(p->worker),
                                         tg_worker_sparkplug(p->worker));
        if (spool_start(p, cfg, position, errstr, errstr_size))
                goto fail;
        if (p->memory) /* whatever a crash left in the spool goes out first */
                position = tg_spool_first_seq(p->spool) - 1;
        next = tg_spool_next_seq(p->spool);
        tg_ledger_start_at(p->ledger, position + 1);
        p->recovered = next - (position + 1);
        if (next > position + 1)
                tg_info("spool: replaying messages %llu..%llu after the checkpoint",
                        (unsigned long long)position + 1, (unsigned long long)next - 1);

        ic = (struct tg_intake_conf){
                .spool = p->spool,
                .worker = p->worker,
                .worker_lock = &p->worker_lock,
                .sink = sink,
                .clock = clock,
                .memory = p->memory,
                .drop_oldest = !strcmp(cfg->spool_full, "drop-oldest"),
                .stop = stop,
        };
        if (!(p->intake = tg_intake_new(&ic))) {
                snprintf(errstr, errstr_size, "intake: out of memory, or no random key (logged)");
                goto fail;
        }
        sink->on_delivery(sink->ctx, on_delivered, p);
        fc = (struct tg_forwarder_conf){
                .spool = p->spool,
                .worker = p->worker,
                .worker_lock = &p->worker_lock,
                .ledger = p->ledger,
                .checkpoint = p->checkpoint,
                .sink = sink,
                .intake = p->intake,
                .memory = p->memory,
                .start = position + 1,
                .replay_until = next,
                .stop = &p->forwarder_stop,
        };
        if (!(p->forwarder = tg_forwarder_start(&fc, errstr, errstr_size)))
                goto fail;
        return p;
fail:
        tg_pipeline_destroy(p, tg_monotonic_ms());
        return NULL;
}

/* Serve deliveries until the sink holds nothing or the deadline passes. */
static int flush(const struct tg_sink *s, int64_t deadline) {
        int left;

        while ((left = s->in_flight(s->ctx)) > 0 && tg_monotonic_ms() < deadline)
                s->poll(s->ctx, 50);
        return left;
}

int tg_pipeline_destroy(tg_pipeline_t *p, int64_t deadline_ms) {
        int left = 0, abandoned = 0;

        if (!p)
                return 0;
        if (p->forwarder) {
                /* Forward what the spool still holds, let Kafka confirm it,
                 * and checkpoint exactly there, so the next start replays
                 * nothing. What Kafka cannot confirm in time stays in the
                 * spool. */
                uint64_t end = tg_spool_next_seq(p->spool);

                while (tg_forwarder_processed(p->forwarder) < end &&
                       tg_monotonic_ms() < deadline_ms)
                        usleep(20 * 1000);
                atomic_store(&p->forwarder_stop, 1);
                abandoned = tg_forwarder_join(p->forwarder);
                p->forwarder = NULL;
                left = flush(p->sink, deadline_ms);
                if (abandoned)
                        tg_warn("stopped in the middle of a message: the last checkpoint "
                                "stays, and the spool after it is forwarded at the next start");
                else
                        tg_checkpoint_final(p->checkpoint, tg_worker_engine(p->worker),
                                            tg_worker_downsample(p->worker),
                                            tg_worker_sparkplug(p->worker), p->spool,
                                            tg_ledger_next(p->ledger),
                                            tg_ledger_advance(p->ledger), left);
        }
        tg_spool_close(p->spool);
        tg_intake_destroy(p->intake);
        tg_worker_destroy(p->worker);
        tg_checkpoint_destroy(p->checkpoint);
        tg_ledger_destroy(p->ledger);
        pthread_mutex_destroy(&p->worker_lock);
        free(p);
        return left;
}

int tg_pipeline_ingest(tg_pipeline_t *p, const char *topic, size_t topic_len,
                       const void *payload, size_t len, int qos, int dup) {
        return tg_intake_take(p->intake, topic, topic_len, NULL, 0, payload, len, qos, dup);
}

int tg_pipeline_ingest_props(tg_pipeline_t *p, const char *topic, size_t topic_len,
                             const void *props, size_t props_len, const void *payload,
                             size_t len, int qos, int dup) {
        return tg_intake_take(p->intake, topic, topic_len, props, props_len, payload, len, qos,
                              dup);
}

void tg_pipeline_tick(tg_pipeline_t *p) {
        tg_spool_tick(p->spool);
}

void tg_pipeline_messages(tg_pipeline_t *p, struct tg_pipeline_messages *out) {
        struct tg_ledger_counts l;
        struct tg_intake_counts in;
        size_t i;

        /* The outcomes first, then what was taken: a message confirmed in
         * between is in neither, one taken in between is in flight. */
        tg_ledger_counts(p->ledger, &l);
        tg_intake_counts(p->intake, &in);
        memset(out, 0, sizeof(*out));
        out->nsubs = tg_worker_nsubs(p->worker);
        for (i = 0; i < out->nsubs; i++)
                out->received[i] = in.received[i];
        out->redeliveries = in.redeliveries;
        out->lost = in.lost;
        out->recovered = p->recovered;
        out->forwarded = l.forwarded + in.direct_forwarded;
        out->dead_lettered = l.dead_lettered + in.direct_dead_lettered;
        out->failed = l.failed + in.direct_failed;
        out->skipped = l.skipped;
        /* From sequence numbers, not from counters: taken into the spool
         * (or found there at start) and not yet confirmed. */
        out->in_flight = in.next_seq - l.confirmed_next;
}

const char *tg_pipeline_sub_filter(const tg_pipeline_t *p, size_t i) {
        return tg_worker_sub_filter(p->worker, i);
}

void tg_pipeline_set_publish(tg_pipeline_t *p, tg_worker_publish_fn *fn, void *opaque) {
        tg_worker_set_publish(p->worker, fn, opaque);
}

int tg_pipeline_input_held(const tg_pipeline_t *p) {
        return tg_intake_held(p->intake);
}

tg_status_t *tg_pipeline_status(tg_pipeline_t *p) {
        return tg_worker_status(p->worker);
}

void tg_pipeline_counters(tg_pipeline_t *p, struct tg_pipeline_counters *out) {
        struct tg_worker_counters w;
        struct tg_intake_counts in;
        struct tg_spool_counters sc;

        memset(out, 0, sizeof(*out));
        tg_worker_counters(p->worker, &w);
        tg_intake_counts(p->intake, &in);
        tg_spool_counters(p->spool, &sc);
        out->received = w.received;
        out->decoded = w.decoded;
        out->ts_from_arrival = w.ts_from_arrival;
        out->ts_from_property = w.ts_from_property;
        out->expired = w.expired;
        memcpy(out->decode_failed, w.decode_failed, sizeof(out->decode_failed));
        out->dead_lettered = w.dead_lettered;
        out->forwarded = w.forwarded;
        out->forward_failed = w.forward_failed;
        out->aggregates = w.aggregates;
        out->downsampled = w.downsampled;
        out->raw_values = w.raw_values;
        out->sink_full_waits = w.sink_full_waits;
        out->window = w.window;
        out->last_arrival_ms = w.last_arrival_ms;
        out->sparkplug = tg_worker_sparkplug(p->worker) != NULL;
        out->sp = w.sparkplug;
        out->sp_deaths = w.sp_deaths;
        out->sp_rebirths_failed = w.sp_rebirths_failed;
        tg_checkpoint_counts(p->checkpoint, &out->checkpoints, &out->state_rejected);
        out->replayed = p->forwarder ? tg_forwarder_replayed(p->forwarder) : 0;
        out->spooled = sc.appended;
        out->spool_bytes = sc.bytes;
        out->spool_allocated = sc.allocated_bytes;
        out->spool_records = sc.records_pending;
        out->spool_corrupt = sc.corrupt_records;
        out->spool_fsyncs = sc.fsyncs;
        out->spool_full_waits = in.spool_full_waits;
        out->spool_dropped = in.spool_dropped;
        out->lost_at_shutdown = in.lost;
        out->mqtt_redeliveries = in.redeliveries;
        out->input_held = tg_intake_held(p->intake);
}
