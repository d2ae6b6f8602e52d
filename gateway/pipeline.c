/* pipeline.c - the gateway's data path: spool before the ack, then decode, window and forward. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "pipeline.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "codec_senml.h"
#include "log.h"
#include "spool.h"

/*
 * Two ways through, chosen by `durability`:
 *
 * disk (default): the MQTT callback appends the message to the spool and
 * returns only once it is there (Paho acknowledges on return). A forwarder
 * thread reads the spool in order and does the work: decode, forward raw,
 * windows, aggregates. Every Kafka record carries the spool sequence number
 * of the message it came from; a message is done when all its records are
 * confirmed. Every checkpoint.interval the window state is snapshotted with
 * the sequence P it covers, and written once everything up to P is
 * confirmed; then the spool up to P is released. After a crash the gateway
 * restores the last checkpoint and replays the spool after P: windows come
 * out as in an uninterrupted run, and raw records of the replayed messages
 * may be sent twice (counted as replayed).
 *
 * memory: the callback does the work itself; a message is acknowledged once
 * its records are in librdkafka's queue.
 */

/* Big enough for a window of TG_READING_FIELDS_MAX fields with the longest
 * names and ids; larger would mean a bug, and is counted as a failure. */
#define AGG_JSON_MAX 8192
#define RAW_JSON_MAX 4096
#define KEEP_MAX TG_READING_FIELDS_MAX
#define READINGS_MAX 64          /* readings one SenML pack may hold */
#define TRACK_RING (1u << 20)    /* messages in flight to Kafka at most */
#define RECORD_BUF (TG_SPOOL_RECORD_HEADER + TG_SPOOL_TOPIC_MAX + TG_PAYLOAD_MAX + 2)
#define TICK_MS 100
#define RECENT_MAX 4096        /* spooled messages remembered for redeliveries */
/* durability memory: records in librdkafka's queue beyond which messages go
 * to the spool instead (Kafka down or slow), and below which, once the spool
 * is drained, they are handled directly again. A crash loses at most the
 * high-water mark of readings. */
#define MEMORY_QUEUE_HIGH 50000
#define MEMORY_QUEUE_LOW 1000

/* How one subscription's payloads become readings. */
struct sub_state {
        char *filter;                  /* the MQTT topic filter */
        enum tg_format format;
        struct tg_decode_opts opts;    /* arrival_ms and sensor set per message */
        struct tg_senml_opts senml;
        const char *topic_pattern;     /* sensor_id = topic:<pattern>, or NULL */
        char *strings;                 /* copies the options point into */
        const char *keep[KEEP_MAX];
};

struct tg_pipeline {
        struct sub_state subs[TG_SUBSCRIPTIONS_MAX];
        size_t nsubs;
        tg_kafka_sink_t *sink;
        const struct tg_clock *clock;
        tg_window_engine_t *engine;
        const volatile int *stop;
        char state_path[4096];

        /* the spool: every message with durability disk; with memory, only
         * while Kafka does not keep up (store-and-forward) */
        tg_spool_t *spool;
        int memory_mode;
        _Atomic int spooling;          /* memory mode: messages go to the spool */
        int drop_oldest;
        pthread_t forwarder;
        int forwarder_running;
        _Atomic int forwarder_stop;
        _Atomic int input_held;        /* the MQTT side waits for spool space */
        _Atomic int input_resumed;     /* ... and has just stopped waiting */
        _Atomic uint32_t *pending;     /* per sequence (mod TRACK_RING): records unconfirmed + 1 while in work */
        _Atomic uint8_t *outcome;      /* per sequence (mod TRACK_RING): OUTCOME_* bits */
        uint64_t processed_next;       /* forwarder: next sequence to process */
        _Atomic uint64_t confirmed_next; /* every sequence below is done */
        uint64_t replay_until;         /* sequences below were in the spool at start */
        int64_t checkpoint_interval_ms, next_checkpoint_ms;
        void *snap;                    /* a checkpoint waiting for its confirmations */
        size_t snap_len;
        uint64_t snap_pos, checkpoint_pos;
        unsigned char *record_buf;
        /* Messages spooled most recently, to know a broker's redelivery
         * (DUP flag) of one already in the spool: after a crash, the broker
         * resends what it had sent but saw no PUBACK for. */
        struct recent {
                uint32_t topic_crc, payload_crc, len;
        } recent[RECENT_MAX];
        unsigned recent_next;

        /* Message accounting (struct tg_pipeline_messages). Taking a
         * message (counting it and appending it to the spool) happens under
         * count_lock, its outcome under lock, so that a reader holding both
         * sees the two sides of the equation at one instant. */
        pthread_mutex_t count_lock;
        struct tg_pipeline_messages m;

        /* The engine and scratch buffers belong to whoever holds the lock:
         * the forwarder (disk) or the MQTT thread (memory). */
        pthread_mutex_t lock;
        uint64_t cur_tag;              /* sequence of the message in work */
        unsigned cur_outcome;          /* OUTCOME_* of the message in work */
        struct tg_pipeline_counters c;
        struct tg_reading readings[READINGS_MAX];
        char raw_json[RAW_JSON_MAX];
        char agg_json[AGG_JSON_MAX];
};

/* What became of a message: bits, since a delivery failure reported on
 * the polling thread may meet the forwarder's verdict. */
#define OUTCOME_FORWARDED 1u /* at least one raw record */
#define OUTCOME_REFUSED 2u   /* no valid reading: dead-lettered */
#define OUTCOME_FAILED 4u    /* a record could not be produced or delivered */
#define OUTCOME_SKIPPED 8u   /* never read: dropped by spool.full or corrupt */

/* --- producing, with delivery tracking ------------------------------- */

static int emit(tg_pipeline_t *p, enum tg_sink_topic topic, const char *key,
                size_t key_len, const void *value, size_t len, int64_t ts,
                const struct tg_sink_header *h, size_t nh) {
        _Atomic uint32_t *slot = p->pending && p->cur_tag ? &p->pending[p->cur_tag % TRACK_RING]
                                                          : NULL;
        int r;

        /* An optional topic that is not configured: nothing is produced,
         * so nothing may be waited for either. */
        if (!tg_kafka_sink_has_topic(p->sink, topic))
                return 0;
        if (slot)
                atomic_fetch_add(slot, 1);
        r = tg_kafka_sink_produce_headers(p->sink, topic, key, key_len, value, len, ts,
                                          h, nh, p->cur_tag, p->stop);
        if (r && slot)
                atomic_fetch_sub(slot, 1);
        if (r)
                p->cur_outcome |= OUTCOME_FAILED;
        return r;
}

/* Delivery reports, on the thread polling Kafka. */
static void on_delivered(void *opaque, enum tg_sink_topic topic, uint64_t tag,
                         int ok) {
        tg_pipeline_t *p = opaque;

        if (p->pending && tag) {
                if (!ok)
                        atomic_fetch_or(&p->outcome[tag % TRACK_RING], OUTCOME_FAILED);
                atomic_fetch_sub(&p->pending[tag % TRACK_RING], 1);
        }
}

static void outcome_count(tg_pipeline_t *p, unsigned o) {
        if (o & OUTCOME_FAILED)
                p->m.failed++;
        else if (o & OUTCOME_FORWARDED)
                p->m.forwarded++;
        else if (o & OUTCOME_REFUSED)
                p->m.dead_lettered++;
        else
                p->m.skipped++;
}

/* Under lock: messages whose records are all confirmed are done, in order. */
static uint64_t confirmations_advance(tg_pipeline_t *p) {
        uint64_t conf = atomic_load(&p->confirmed_next);

        while (conf < p->processed_next && atomic_load(&p->pending[conf % TRACK_RING]) == 0) {
                outcome_count(p, atomic_load(&p->outcome[conf % TRACK_RING]));
                conf++;
        }
        atomic_store(&p->confirmed_next, conf);
        return conf;
}

static size_t aggregate_json(tg_pipeline_t *p, const struct tg_window_result *w) {
        struct tg_jw j;
        char num[32];
        uint32_t i;

        tg_jw_init(&j, p->agg_json, sizeof(p->agg_json));
        tg_jw_raw(&j, "{\"id\":");
        snprintf(num, sizeof(num), "/%lld", (long long)w->start);
        {
                char id[TG_SENSOR_ID_MAX + 32];
                int n = snprintf(id, sizeof(id), "%.*s%s", (int)w->sensor_len,
                                 w->sensor, num);

                tg_jw_string(&j, id, (size_t)n);
        }
        tg_jw_raw(&j, ",\"sensor\":");
        tg_jw_string(&j, w->sensor, w->sensor_len);
        tg_jw_raw(&j, ",\"window_start\":");
        tg_jw_int(&j, w->start);
        tg_jw_raw(&j, ",\"window_end\":");
        tg_jw_int(&j, w->end);
        tg_jw_raw(&j, ",\"count\":");
        tg_jw_int(&j, w->count);
        if (w->final) {
                tg_jw_raw(&j, ",\"final\":true,\"late\":");
                tg_jw_int(&j, (int64_t)w->late);
        } else {
                tg_jw_raw(&j, ",\"final\":false");
        }
        tg_jw_raw(&j, ",\"fields\":{");
        for (i = 0; i < w->nfields; i++) {
                const struct tg_field_stats *f = &w->fields[i];
                const char *name = tg_window_field_name(p->engine, f->field);

                if (i)
                        tg_jw_raw(&j, ",");
                tg_jw_string(&j, name, strlen(name));
                tg_jw_raw(&j, ":");
                tg_jw_field_stats(&j, f); /* {"count":..,...}, "overflow":true if any is null */
        }
        tg_jw_raw(&j, "}}");
        return tg_jw_finish(&j);
}

/* Called by the engine, under p->lock, for each window that closes. */
static void on_window(void *opaque, const struct tg_window_result *w) {
        tg_pipeline_t *p = opaque;
        size_t n = aggregate_json(p, w);

        if (!n) {
                tg_err("window %.*s/%lld: aggregate record too large, not sent",
                       (int)w->sensor_len, w->sensor, (long long)w->start);
                p->c.forward_failed++;
                p->cur_outcome |= OUTCOME_FAILED;
                return;
        }
        /* Kafka cannot carry a time <= 0 (docs/windows.md 1.2): a window
         * starting at or before the epoch is stamped TG_TS_MIN, its earliest reading's. */
        if (emit(p, TG_SINK_AGG, w->sensor, w->sensor_len, p->agg_json, n,
                 w->start > TG_TS_MIN ? w->start : TG_TS_MIN, NULL, 0) == 0)
                p->c.aggregates++;
        else
                p->c.forward_failed++;
}

/* Everything that cannot become a valid reading goes to the dead-letter
 * topic with its bytes unchanged and the reason in headers. */
static void dead_letter(tg_pipeline_t *p, const char *mqtt_topic,
                        const void *payload, size_t len, const char *reason,
                        const char *message, int64_t arrival_ms) {
        char arrival[24];
        struct tg_sink_header h[4] = {
                {"tg.reason", reason, strlen(reason)},
                {"tg.error", message, strlen(message)},
                {"tg.mqtt_topic", mqtt_topic, strlen(mqtt_topic)},
                {"tg.arrival_ms", arrival, 0},
        };

        if (!tg_kafka_sink_has_topic(p->sink, TG_SINK_DLQ))
                return; /* topics.dlq unset: logged and counted per reason only */
        h[3].len = (size_t)snprintf(arrival, sizeof(arrival), "%lld",
                                    (long long)arrival_ms);
        if (emit(p, TG_SINK_DLQ, mqtt_topic, strlen(mqtt_topic), payload, len,
                 arrival_ms, h, 4) == 0)
                p->c.dead_lettered++;
        else
                p->c.forward_failed++;
}

static int sub_init(struct sub_state *st, const struct tg_config *cfg,
                    const struct tg_subscription *sub, char *errstr,
                    size_t errstr_size) {
        const char *id = sub->value[TG_SUB_SENSOR_ID];
        size_t lt = strlen(sub->value[TG_SUB_TOPIC]) + 1, li = strlen(id) + 1,
               lf = strlen(sub->value[TG_SUB_TS_FIELD]) + 1,
               lk = strlen(sub->value[TG_SUB_FIELDS]) + 1;
        struct tg_decode_opts *o = &st->opts;
        char *save = NULL, *tok, *idc, *keep;

        if (!(st->strings = malloc(lt + li + lf + lk))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -ENOMEM;
        }
        st->filter = memcpy(st->strings, sub->value[TG_SUB_TOPIC], lt);
        idc = memcpy(st->strings + lt, id, li);
        *o = tg_decode_defaults;
        o->ts_key = memcpy(st->strings + lt + li, sub->value[TG_SUB_TS_FIELD], lf);
        keep = memcpy(st->strings + lt + li + lf, sub->value[TG_SUB_FIELDS], lk);
        if (!strncmp(idc, "topic:", 6)) {
                st->topic_pattern = idc + 6;
                o->id_key = NULL;
        } else {
                o->id_key = idc + 8; /* payload: */
        }
        tg_format_parse(sub->value[TG_SUB_FORMAT], &st->format);
        tg_ts_unit_parse(sub->value[TG_SUB_TS_UNIT], &o->ts_unit);
        o->ts_from_arrival = !strcmp(sub->value[TG_SUB_TS_MISSING], "arrival");
        st->senml.names = strcmp(sub->value[TG_SUB_SENML_NAMES], "sensor")
                                  ? TG_SENML_NAME_IS_FIELD
                                  : TG_SENML_NAME_IS_SENSOR;
        st->senml.max_string = (size_t)cfg->limit_string;
        o->max_payload = (size_t)cfg->limit_payload;
        o->max_depth = (size_t)cfg->limit_depth;
        o->max_fields = (size_t)cfg->limit_fields;
        o->max_id = (size_t)cfg->limit_id;
        o->max_string = (size_t)cfg->limit_string;
        for (tok = strtok_r(keep, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                if (o->nkeep == KEEP_MAX) {
                        snprintf(errstr, errstr_size, "fields: more than %d names",
                                 KEEP_MAX);
                        return -EINVAL;
                }
                st->keep[o->nkeep++] = tok;
        }
        if (o->nkeep)
                o->keep = st->keep;
        return 0;
}

/* The subscription a message came through: the first whose filter
 * matches its topic (the broker does not say). */
static size_t sub_index(const tg_pipeline_t *p, const char *topic) {
        size_t i;

        if (p->nsubs == 1) /* the usual case: nothing to match */
                return 0;
        for (i = 0; i < p->nsubs; i++)
                if (tg_topic_filter_match(p->subs[i].filter, topic))
                        return i;
        return 0;
}

static struct sub_state *sub_for(tg_pipeline_t *p, const char *topic) {
        return &p->subs[sub_index(p, topic)];
}


/* --- the work on one message (under p->lock) ------------------------- */

static enum tg_decode_err decode(tg_pipeline_t *p, struct sub_state *sub,
                                 const char *topic, const void *payload,
                                 size_t len, int64_t arrival_ms, size_t *n) {
        enum tg_format fmt = tg_format_detect(sub->format, payload, len);

        *n = 0;
        sub->opts.arrival_ms = arrival_ms;
        sub->senml.now_ms = arrival_ms;
        if (fmt == TG_FORMAT_SENML_JSON)
                return tg_decode_senml_json(payload, len, &sub->senml, p->readings,
                                            READINGS_MAX, n);
        if (fmt == TG_FORMAT_SENML_CBOR)
                return tg_decode_senml_cbor(payload, len, &sub->senml, p->readings,
                                            READINGS_MAX, n);
        if (sub->topic_pattern &&
            tg_topic_sensor(sub->topic_pattern, topic, &sub->opts.sensor,
                            &sub->opts.sensor_len))
                return TG_DECODE_MISSING_ID; /* the topic has no {sensor} level */
        *n = 1;
        return tg_decode_ex(fmt, payload, len, &sub->opts, &p->readings[0]);
}

/* One reading the engine has taken, with its verdict @p v. */
static void forward_reading(tg_pipeline_t *p, const char *topic,
                            const void *payload, size_t len,
                            struct tg_reading *r, enum tg_window_verdict v,
                            int64_t arrival_ms) {
        size_t n;

        p->c.decoded++;
        if (r->ts_from_arrival)
                p->c.ts_from_arrival++;
        switch (v) {
        case TG_WINDOW_FUTURE:
                tg_warn("sensor %s: timestamp %lld is in the future: refused",
                        r->sensor, (long long)r->ts_ms);
                dead_letter(p, topic, payload, len, "future_timestamp",
                            "the timestamp is further ahead of the gateway's clock "
                            "than window.max_future", arrival_ms);
                return;
        case TG_WINDOW_OUT_OF_RANGE:
                tg_warn("sensor %s: timestamp %lld out of range: refused",
                        r->sensor, (long long)r->ts_ms);
                dead_letter(p, topic, payload, len, "timestamp_out_of_range",
                            "the timestamp lies outside the range windows can hold",
                            arrival_ms);
                return;
        case TG_WINDOW_TABLE_FULL:
                tg_warn("sensor %s: sensor table full (window.max_sensors): "
                        "reading forwarded but not windowed", r->sensor);
                break;
        case TG_WINDOW_LATE:
                tg_dbg("sensor %s: late reading at %lld", r->sensor,
                       (long long)r->ts_ms);
                break;
        case TG_WINDOW_ACCEPTED:
                break;
        }

        /* Every valid reading is forwarded, late ones included. */
        n = tg_encode_raw_record(r, p->raw_json, sizeof(p->raw_json));
        if (!n) {
                p->c.forward_failed++;
                p->cur_outcome |= OUTCOME_FAILED;
                tg_err("sensor %s: raw record too large", r->sensor);
                return;
        }
        if (emit(p, TG_SINK_RAW, r->sensor, r->sensor_len, p->raw_json, n, r->ts_ms,
                 NULL, 0) == 0) {
                p->c.forwarded++;
                p->cur_outcome |= OUTCOME_FORWARDED;
        }
        else {
                p->c.forward_failed++;
        }
        if (v == TG_WINDOW_LATE)
                emit(p, TG_SINK_LATE, r->sensor, r->sensor_len, p->raw_json, n,
                     r->ts_ms, NULL, 0);
}

/* One message of subscription @p sub (see sub_for()). */
static void process(tg_pipeline_t *p, struct sub_state *sub, const char *topic,
                    const void *payload, size_t len, int64_t arrival_ms) {
        enum tg_window_verdict verdicts[READINGS_MAX];
        enum tg_decode_err derr;
        size_t n, i;

        p->c.received++;
        p->cur_outcome = 0;
        derr = decode(p, sub, topic, payload, len, arrival_ms, &n);
        if (derr) {
                p->c.decode_failed[derr]++;
                tg_warn("mqtt %s: payload of %zu bytes refused: %s", topic, len,
                        tg_decode_err_name(derr));
                dead_letter(p, topic, payload, len, tg_decode_err_name(derr),
                            tg_decode_err_detail(derr), arrival_ms);
                p->cur_outcome |= OUTCOME_REFUSED;
                return;
        }
        /* A SenML pack's readings (often of many sensors) go to the engine
         * together, which fetches the next ones' memory while adding one;
         * windows they close are produced before their raw records, which
         * go to another topic. */
        tg_window_engine_add_batch(p->engine, p->readings, n, verdicts);
        for (i = 0; i < n; i++)
                forward_reading(p, topic, payload, len, &p->readings[i], verdicts[i],
                                arrival_ms);
        if (!(p->cur_outcome & OUTCOME_FORWARDED))
                p->cur_outcome |= OUTCOME_REFUSED; /* every reading refused */
}

/* --- the forwarder (disk durability) ---------------------------------- */

static void checkpoint_step(tg_pipeline_t *p, int force) {
        uint64_t conf = confirmations_advance(p);
        int64_t now = tg_monotonic_ms();
        int r;

        if (p->memory_mode) {
                /* No checkpoints: confirmed messages simply leave the spool. */
                if (conf - 1 > p->checkpoint_pos) {
                        p->checkpoint_pos = conf - 1;
                        tg_spool_release(p->spool, p->checkpoint_pos);
                }
                return;
        }

        if (!p->snap && p->processed_next - 1 > p->checkpoint_pos &&
            (force || now >= p->next_checkpoint_ms)) {
                p->snap_pos = p->processed_next - 1;
                if (tg_window_engine_snapshot(p->engine, p->snap_pos, &p->snap,
                                              &p->snap_len))
                        p->snap = NULL;
                p->next_checkpoint_ms = now + p->checkpoint_interval_ms;
        }
        if (p->snap && conf > p->snap_pos) {
                r = tg_window_state_write(p->state_path, p->snap, p->snap_len);
                if (r) {
                        tg_err("checkpoint %s: %s; the spool is kept", p->state_path,
                               strerror(-r));
                } else {
                        p->checkpoint_pos = p->snap_pos;
                        p->c.checkpoints++;
                        tg_spool_release(p->spool, p->checkpoint_pos);
                }
                free(p->snap);
                p->snap = NULL;
        }
}

static void *forwarder_main(void *arg) {
        tg_pipeline_t *p = arg;
        struct tg_spool_record rec;
        uint64_t cursor = p->processed_next;
        int64_t next_tick = 0;
        int r;
        char topic[TG_SPOOL_TOPIC_MAX + 1];

        while (!atomic_load(&p->forwarder_stop)) {
                int64_t now = tg_monotonic_ms();

                pthread_mutex_lock(&p->lock);
                /* No idle close while our own input is held back (5.2). */
                if (atomic_exchange(&p->input_resumed, 0))
                        tg_window_engine_touch_all(p->engine);
                if (now >= next_tick && !atomic_load(&p->input_held)) {
                        tg_window_engine_tick(p->engine);
                        next_tick = now + TICK_MS;
                }
                checkpoint_step(p, 0);
                pthread_mutex_unlock(&p->lock);

                /* Too many messages unconfirmed: wait for Kafka. */
                if (cursor - atomic_load(&p->confirmed_next) >= TRACK_RING - 1) {
                        usleep(10 * 1000);
                        continue;
                }
                if (!tg_spool_wait(p->spool, cursor, TICK_MS))
                        continue;
                r = tg_spool_read(p->spool, &cursor, &rec, p->record_buf, RECORD_BUF);
                if (r == -EAGAIN)
                        continue;
                if (r) {
                        /* Cannot happen for what ingest spools; never spin on it. */
                        tg_err("spool: message %llu unreadable (%s): skipped",
                               (unsigned long long)cursor, strerror(-r));
                        cursor++;
                        continue;
                }
                memcpy(topic, rec.topic, rec.topic_len);
                topic[rec.topic_len] = '\0';

                pthread_mutex_lock(&p->lock);
                /* Sequences skipped by the read (corrupt, set aside) are done. */
                for (; p->processed_next < rec.seq; p->processed_next++) {
                        atomic_store(&p->outcome[p->processed_next % TRACK_RING],
                                     OUTCOME_SKIPPED);
                        atomic_store(&p->pending[p->processed_next % TRACK_RING], 0);
                }
                p->cur_tag = rec.seq;
                atomic_store(&p->outcome[rec.seq % TRACK_RING], 0);
                atomic_store(&p->pending[rec.seq % TRACK_RING], 1); /* in work */
                if (rec.seq < p->replay_until)
                        p->c.replayed++;
                process(p, sub_for(p, topic), topic, rec.payload, rec.len, rec.arrival_ms);
                atomic_fetch_or(&p->outcome[rec.seq % TRACK_RING], p->cur_outcome);
                atomic_fetch_sub(&p->pending[rec.seq % TRACK_RING], 1);
                p->processed_next = rec.seq + 1;
                pthread_mutex_unlock(&p->lock);
        }
        return NULL;
}


static void state_load(tg_pipeline_t *p, uint64_t *position) {
        char err[256];
        int r = tg_window_engine_load(p->engine, p->state_path, position, err,
                                      sizeof(err));

        if (r == 0)
                tg_info("restored open windows from %s (spool position %llu)",
                        p->state_path, (unsigned long long)*position);
        else if (r == -ENOENT)
                tg_info("no window state at %s: starting with no open windows",
                        p->state_path);
        else if (r == -EINVAL)
                tg_warn("window state %s not used (%s): starting with no open windows",
                        p->state_path, err);
        else
                tg_warn("window state %s not readable (%s): starting with no open windows",
                        p->state_path, strerror(-r));
        if (r && r != -ENOENT)
                p->c.state_rejected++;
        if (r)
                *position = 0;
}

static void recent_add(tg_pipeline_t *p, const char *topic, size_t topic_len,
                       const void *payload, size_t len) {
        struct recent *x = &p->recent[p->recent_next++ % RECENT_MAX];

        x->topic_crc = (uint32_t)crc32(0L, (const Bytef *)topic, (uInt)topic_len);
        x->payload_crc = (uint32_t)crc32(0L, payload, (uInt)len);
        x->len = (uint32_t)len;
}

static int recent_has(const tg_pipeline_t *p, const char *topic, const void *payload,
                      size_t len) {
        uint32_t tc = (uint32_t)crc32(0L, (const Bytef *)topic, (uInt)strlen(topic));
        uint32_t pc = (uint32_t)crc32(0L, payload, (uInt)len);
        unsigned i;

        for (i = 0; i < RECENT_MAX; i++)
                if (p->recent[i].len == len && p->recent[i].payload_crc == pc &&
                    p->recent[i].topic_crc == tc && (len || p->recent[i].topic_crc))
                        return 1;
        return 0;
}

static int spool_start(tg_pipeline_t *p, const struct tg_config *cfg,
                       uint64_t position, char *errstr, size_t errstr_size) {
        char dir[4200];
        struct tg_spool_conf sc = {
                .dir = dir,
                .segment_bytes = (size_t)cfg->spool_segment_bytes,
                .max_bytes = (uint64_t)cfg->spool_max_bytes,
                .fsync = p->memory_mode                      ? TG_SPOOL_FSYNC_NEVER
                         : !strcmp(cfg->spool_fsync, "always")  ? TG_SPOOL_FSYNC_ALWAYS
                         : !strcmp(cfg->spool_fsync, "never") ? TG_SPOOL_FSYNC_NEVER
                                                              : TG_SPOOL_FSYNC_INTERVAL,
                .fsync_interval_ms = cfg->spool_fsync_interval_ms,
                /* Numbers up to the checkpoint are taken, even if a power loss
                 * took their records from the spool. */
                .seq_floor = position + 1,
        };
        int r;

        snprintf(dir, sizeof(dir), "%s/spool", cfg->state_dir);
        if (!(p->spool = tg_spool_open(&sc, errstr, errstr_size)))
                return -EIO;
        p->pending = calloc(TRACK_RING, sizeof(*p->pending));
        p->outcome = calloc(TRACK_RING, sizeof(*p->outcome));
        p->record_buf = malloc(RECORD_BUF);
        if (!p->pending || !p->outcome || !p->record_buf) {
                snprintf(errstr, errstr_size, "out of memory");
                return -ENOMEM;
        }
        p->drop_oldest = !strcmp(cfg->spool_full, "drop-oldest");
        p->checkpoint_interval_ms = cfg->checkpoint_interval_ms;
        if (p->memory_mode) /* whatever a crash left in the spool goes out first */
                position = tg_spool_first_seq(p->spool) - 1;
        p->checkpoint_pos = position;
        p->processed_next = position + 1;
        atomic_store(&p->confirmed_next, position + 1);
        p->replay_until = tg_spool_next_seq(p->spool);
        p->m.recovered = p->replay_until - (position + 1);
        if (p->replay_until > position + 1)
                tg_info("spool: replaying messages %llu..%llu after the checkpoint",
                        (unsigned long long)position + 1,
                        (unsigned long long)p->replay_until - 1);
        /* Remember the spool's tail for redeliveries after a crash. */
        {
                uint64_t next = tg_spool_next_seq(p->spool), cur = tg_spool_first_seq(p->spool);
                struct tg_spool_record rec;

                if (next > RECENT_MAX && cur < next - RECENT_MAX)
                        cur = next - RECENT_MAX;
                while (cur < next &&
                       tg_spool_read(p->spool, &cur, &rec, p->record_buf, RECORD_BUF) == 0)
                        recent_add(p, rec.topic, rec.topic_len, rec.payload, rec.len);
        }
        tg_kafka_sink_on_delivery(p->sink, on_delivered, p);
        if ((r = pthread_create(&p->forwarder, NULL, forwarder_main, p))) {
                snprintf(errstr, errstr_size, "forwarder thread: %s", strerror(r));
                return -r;
        }
        p->forwarder_running = 1;
        return 0;
}

tg_pipeline_t *tg_pipeline_new(const struct tg_config *cfg,
                               tg_kafka_sink_t *sink, const struct tg_clock *clock,
                               const volatile int *stop, char *errstr,
                               size_t errstr_size) {
        struct tg_window_conf wc = {
                .size_ms = cfg->window_size_ms,
                .hop_ms = cfg->window_hop_ms ? cfg->window_hop_ms : cfg->window_size_ms,
                .grace_ms = cfg->window_grace_ms,
                .idle_timeout_ms = cfg->window_idle_timeout_ms,
                .max_future_ms = cfg->window_max_future_ms,
                .max_sensors = (uint32_t)cfg->window_max_sensors,
                .max_fields = (uint32_t)cfg->window_max_fields,
                .max_field_names = (uint32_t)cfg->window_max_field_names,
                .close = strcmp(cfg->window_close, "global") ? TG_CLOSE_PER_SENSOR
                                                             : TG_CLOSE_GLOBAL,
                .evict_after_ms = cfg->window_evict_after_ms,
                .update_interval_ms = strcmp(cfg->window_emit, "update")
                                              ? 0
                                              : cfg->window_update_interval_ms,
        };
        struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
        tg_pipeline_t *p = calloc(1, sizeof(*p));
        uint64_t position = 0;
        size_t i;

        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        p->sink = sink;
        p->clock = clock;
        p->stop = stop;
        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->count_lock, NULL);
        snprintf(p->state_path, sizeof(p->state_path), "%s/windows.state",
                 cfg->state_dir);
        p->nsubs = tg_config_subscriptions(cfg, subs);
        for (i = 0; i < p->nsubs; i++)
                if (sub_init(&p->subs[i], cfg, &subs[i], errstr, errstr_size))
                        goto fail;
        if (!(p->engine = tg_window_engine_new(&wc, clock, on_window, p, errstr,
                                               errstr_size)))
                goto fail;
        tg_info("window engine: %zu bytes for %u sensors",
                tg_window_engine_memory(p->engine), wc.max_sensors);
        state_load(p, &position);
        p->memory_mode = !strcmp(cfg->durability, "memory");
        if (p->memory_mode)
                position = 0; /* a state file saved at shutdown covers no spool */
        if (spool_start(p, cfg, position, errstr, errstr_size))
                goto fail;
        return p;
fail:
        tg_pipeline_destroy(p, tg_monotonic_ms());
        return NULL;
}

/* Disk durability at shutdown: forward what the spool still holds, let
 * Kafka confirm it, and checkpoint exactly there, so the next start
 * replays nothing. What Kafka cannot confirm in time stays in the spool. */
static void spool_stop(tg_pipeline_t *p, int64_t deadline) {
        uint64_t end = tg_spool_next_seq(p->spool);

        while (p->forwarder_running && tg_monotonic_ms() < deadline) {
                pthread_mutex_lock(&p->lock);
                int drained = p->processed_next >= end;
                pthread_mutex_unlock(&p->lock);
                if (drained)
                        break;
                usleep(20 * 1000);
        }
        if (p->forwarder_running) {
                atomic_store(&p->forwarder_stop, 1);
                pthread_join(p->forwarder, NULL);
                p->forwarder_running = 0;
        }
        if (p->engine) {
                int left = tg_kafka_sink_flush(p->sink, tg_ms_until(deadline));

                free(p->snap);
                p->snap = NULL;
                checkpoint_step(p, 1);
                checkpoint_step(p, 0);
                if (p->memory_mode) {
                        int r = tg_window_engine_save(p->engine, p->state_path, 0);

                        if (r)
                                tg_err("cannot save open windows to %s: %s; they are lost",
                                       p->state_path, strerror(-r));
                        else
                                tg_info("saved open windows to %s", p->state_path);
                } else if (p->checkpoint_pos + 1 == p->processed_next)
                        tg_info("checkpoint at spool position %llu: nothing to replay",
                                (unsigned long long)p->checkpoint_pos);
                else
                        tg_warn("%d Kafka record(s) unconfirmed: spool messages after "
                                "%llu stay on disk and are forwarded at the next start",
                                left, (unsigned long long)p->checkpoint_pos);
        }
        tg_spool_close(p->spool);
        p->spool = NULL;
}

void tg_pipeline_destroy(tg_pipeline_t *p, int64_t deadline_ms) {
        size_t i;

        if (!p)
                return;
        if (p->spool)
                spool_stop(p, deadline_ms);
        tg_window_engine_destroy(p->engine);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->count_lock);
        for (i = 0; i < TG_SUBSCRIPTIONS_MAX; i++)
                free(p->subs[i].strings);
        free(p->pending);
        free(p->outcome);
        free(p->record_buf);
        free(p->snap);
        free(p);
}

/* A message taken but not kept: counted with what became of it. */
static void count_taken(tg_pipeline_t *p, size_t sub, uint64_t *what) {
        pthread_mutex_lock(&p->count_lock);
        p->m.received[sub]++;
        (*what)++;
        pthread_mutex_unlock(&p->count_lock);
}

int tg_pipeline_ingest(tg_pipeline_t *p, const char *mqtt_topic,
                       const void *payload, size_t len, int dup) {
        int64_t arrival_ms = tg_clock_now(p->clock);
        size_t sub = sub_index(p, mqtt_topic);
        int waited = 0, r;

        if (p->memory_mode) {
                int direct = 0;

                /* Handled here while Kafka keeps up; spooled (without fsync)
                 * while it does not, until the spool is drained again, so
                 * readings stay in order. */
                pthread_mutex_lock(&p->lock);
                if (!atomic_load(&p->spooling)) {
                        direct = tg_kafka_sink_in_flight(p->sink) < MEMORY_QUEUE_HIGH;
                        if (!direct) {
                                atomic_store(&p->spooling, 1);
                                tg_warn("Kafka is not keeping up: spooling messages "
                                        "until it does (durability memory)");
                        }
                } else if (p->processed_next >= tg_spool_next_seq(p->spool) &&
                           tg_kafka_sink_in_flight(p->sink) < MEMORY_QUEUE_LOW) {
                        atomic_store(&p->spooling, 0);
                        tg_info("spool drained: handling messages directly again");
                        direct = 1;
                }
                if (direct) {
                        /* Not from the spool: done once handed to librdkafka. */
                        p->cur_tag = 0;
                        process(p, &p->subs[sub], mqtt_topic, payload, len, arrival_ms);
                        p->m.received[sub]++;
                        outcome_count(p, p->cur_outcome);
                        pthread_mutex_unlock(&p->lock);
                        return 0;
                }
                pthread_mutex_unlock(&p->lock);
        }
        /* A payload over the decoders' limit is dead-lettered as too large;
         * only its first TG_PAYLOAD_MAX + 1 bytes are kept for that. */
        if (len > TG_PAYLOAD_MAX + 1)
                len = TG_PAYLOAD_MAX + 1;
        if (dup && recent_has(p, mqtt_topic, payload, len)) {
                count_taken(p, sub, &p->m.redeliveries);
                __atomic_fetch_add(&p->c.mqtt_redeliveries, 1, __ATOMIC_RELAXED);
                tg_dbg("mqtt %s: redelivery of a message already spooled", mqtt_topic);
                return 0;
        }
        /* Durable before Paho acknowledges: when the spool is full (bound or
         * disk), hold the callback and so the acks; the broker keeps the
         * persistent session's queue meanwhile. */
        for (;;) {
                pthread_mutex_lock(&p->count_lock);
                r = tg_spool_append(p->spool, mqtt_topic, strlen(mqtt_topic), payload,
                                    len, arrival_ms, NULL);
                if (!r)
                        p->m.received[sub]++;
                pthread_mutex_unlock(&p->count_lock);
                if (r != -ENOSPC && r != -EFBIG && r != -EIO && r != -EDQUOT)
                        break;
                if (p->drop_oldest) {
                        uint64_t end = tg_spool_oldest_end(p->spool);
                        uint64_t first = tg_spool_first_seq(p->spool);

                        if (end >= first) {
                                /* spool.full: drop-oldest: the oldest segment
                                 * goes, forwarded or not. */
                                tg_spool_release(p->spool, end);
                                __atomic_fetch_add(&p->c.spool_dropped, end - first + 1,
                                                   __ATOMIC_RELAXED);
                                tg_err("spool full: dropped spooled messages %llu..%llu "
                                       "(spool.full: drop-oldest)",
                                       (unsigned long long)first, (unsigned long long)end);
                                continue;
                        }
                }
                if (!waited++) {
                        atomic_store(&p->input_held, 1);
                        __atomic_fetch_add(&p->c.spool_full_waits, 1, __ATOMIC_RELAXED);
                        tg_warn("spool full (%s): not acknowledging MQTT messages "
                                "until space returns", strerror(-r));
                }
                if (*p->stop) {
                        count_taken(p, sub, &p->m.lost);
                        __atomic_fetch_add(&p->c.lost_at_shutdown, 1, __ATOMIC_RELAXED);
                        tg_err("mqtt %s: stopping while the spool is full: this "
                               "message is acknowledged but not kept", mqtt_topic);
                        return -ECANCELED;
                }
                usleep(50 * 1000);
        }
        if (r) {
                count_taken(p, sub, &p->m.lost);
                __atomic_fetch_add(&p->c.lost_at_shutdown, 1, __ATOMIC_RELAXED);
                tg_err("mqtt %s: cannot spool a message of %zu bytes: %s", mqtt_topic,
                       len, strerror(-r));
                return r;
        }
        if (waited) {
                atomic_store(&p->input_held, 0);
                atomic_store(&p->input_resumed, 1);
                tg_info("spool has room again: acknowledging MQTT messages");
        }
        recent_add(p, mqtt_topic, strlen(mqtt_topic), payload, len);
        return 0;
}

void tg_pipeline_tick(tg_pipeline_t *p) {
        tg_spool_tick(p->spool); /* the forwarder ticks the engine */
}

void tg_pipeline_messages(tg_pipeline_t *p, struct tg_pipeline_messages *out) {
        pthread_mutex_lock(&p->count_lock);
        pthread_mutex_lock(&p->lock);
        *out = p->m;
        out->nsubs = p->nsubs;
        /* From sequence numbers, not from the counters: taken into the
         * spool (or found there at start) and not yet confirmed. */
        out->in_flight = p->spool ? tg_spool_next_seq(p->spool) -
                                            atomic_load(&p->confirmed_next)
                                  : 0;
        pthread_mutex_unlock(&p->lock);
        pthread_mutex_unlock(&p->count_lock);
}

const char *tg_pipeline_sub_filter(const tg_pipeline_t *p, size_t i) {
        return i < p->nsubs ? p->subs[i].filter : NULL;
}

void tg_pipeline_counters(tg_pipeline_t *p, struct tg_pipeline_counters *out) {
        pthread_mutex_lock(&p->lock);
        *out = p->c;
        tg_window_engine_counters(p->engine, &out->window);
        pthread_mutex_unlock(&p->lock);
        if (p->spool) {
                struct tg_spool_counters sc;

                tg_spool_counters(p->spool, &sc);
                out->spooled = sc.appended;
                out->spool_bytes = sc.bytes;
                out->spool_records = sc.records_pending;
                out->spool_corrupt = sc.corrupt_records;
        }
}
