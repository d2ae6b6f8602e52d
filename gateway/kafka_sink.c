/* kafka_sink.c - librdkafka producer setup, produce with back-pressure, delivery accounting. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "kafka_sink.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "clock.h"
#include "log.h"

struct tg_kafka_sink {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt[TG_SINK__COUNT];
        _Atomic uint64_t produced[TG_SINK__COUNT];
        _Atomic uint64_t delivered[TG_SINK__COUNT];
        _Atomic uint64_t failed[TG_SINK__COUNT];
        _Atomic uint64_t queue_full;
        tg_sink_delivery_fn *on_delivered;
        void *on_delivered_opaque;

        /* event time to delivery of raw records: per bucket, the last one
         * past every bound; made cumulative when read */
        _Atomic uint64_t latency_in[TG_SINK_LATENCY_BUCKETS + 1];
        _Atomic uint64_t latency_count, latency_sum_ms;

        /* reachability: a broker known by id is UP (statistics), or a
         * delivery was confirmed since the last statistics said otherwise */
        _Atomic int reachable;

        /* stalled: records have waited TG_KAFKA_STALL_MS with none
         * confirmed, though a broker is up (a cluster short of in-sync
         * replicas, or without a partition leader). Statistics time it:
         * progress_ms is the last that found a new confirmation or nothing
         * waiting (the poll thread's alone, as the callbacks are). */
        int64_t progress_ms;
        uint64_t progress_delivered;
        _Atomic int stalled;

        /* topics.create: CreateTopics in flight on admin_q, or due again */
        rd_kafka_queue_t *admin_q;
        int create_pending;
        int64_t create_retry_ms;
        int create_partitions, create_replication;
        int create_warned;

        int capacity;            /* queue.buffering.max.messages, as configured */
};

const int64_t tg_sink_latency_bounds_ms[TG_SINK_LATENCY_BUCKETS] = {
        5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
        300000, 3600000,
};

/* A record's opaque: the caller's tag and the topic, in one pointer-sized
 * value (the tag shifted past the topic's 3 bits). */
#define TOPIC_BITS 3

/* librdkafka's own log lines (syslog levels) go through our sink. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
        enum tg_log_level l = level <= LOG_ERR       ? TG_LOG_ERROR
                              : level <= LOG_WARNING ? TG_LOG_WARN
                              : level <= LOG_INFO    ? TG_LOG_INFO
                                                     : TG_LOG_DEBUG;

        TG_LOG(l, "kafka: %s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
        /* Transport errors while a broker is down are expected and retried;
         * a fatal error (idempotence broken) is not. */
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char fatal[512];

                rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
                tg_err("kafka: fatal producer error: %s", fatal);
        } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
                /* Retried by librdkafka too, but no retry fixes it: say
                 * which options to look at. The reason names the broker
                 * and mechanism, never the password. */
                tg_err("kafka: authentication failed: %s; check kafka.sasl.username, "
                       "kafka.sasl.password and kafka.sasl.mechanism", reason);
        } else if (err == RD_KAFKA_RESP_ERR__SSL) {
                tg_err("kafka: TLS error: %s; check kafka.ssl.ca.location (the CA of the "
                       "brokers' certificates)", reason);
        } else {
                tg_warn("kafka: %s: %s", rd_kafka_err2name(err), reason);
        }
}

/* A raw record's timestamp is its reading's event time. */
static void latency_observe(struct tg_kafka_sink *sink, const rd_kafka_message_t *m) {
        rd_kafka_timestamp_type_t type;
        int64_t ts = rd_kafka_message_timestamp(m, &type), ms;
        int b;

        if (ts < 0 || type != RD_KAFKA_TIMESTAMP_CREATE_TIME)
                return;
        ms = tg_clock_now(&tg_clock_realtime) - ts;
        if (ms < 0)
                ms = 0; /* the sensor's clock is ahead of ours */
        for (b = 0; b < TG_SINK_LATENCY_BUCKETS && ms > tg_sink_latency_bounds_ms[b]; b++)
                ;
        atomic_fetch_add(&sink->latency_in[b], 1);
        atomic_fetch_add(&sink->latency_count, 1);
        atomic_fetch_add(&sink->latency_sum_ms, (uint64_t)ms);
}

/* librdkafka's statistics, every statistics.interval.ms: is any broker
 * that the cluster's metadata named (nodeid >= 0) up? */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
        struct tg_kafka_sink *sink = opaque;
        cJSON *root = cJSON_ParseWithLength(json, len), *b;
        uint64_t delivered;
        int64_t now;
        int up = 0, t;

        if (!root)
                return 0;
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(root, "brokers")) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "nodeid");
                const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "state");

                if (cJSON_IsNumber(id) && id->valuedouble >= 0 && cJSON_IsString(st) &&
                    !strcmp(st->valuestring, "UP"))
                        up = 1;
        }
        cJSON_Delete(root);
        atomic_store(&sink->reachable, up);
        now = tg_monotonic_ms();
        for (t = 0, delivered = 0; t < TG_SINK__COUNT; t++)
                delivered += atomic_load(&sink->delivered[t]);
        if (delivered != sink->progress_delivered || rd_kafka_outq_len(rk) == 0 ||
            !sink->progress_ms) {
                sink->progress_ms = now;
                sink->progress_delivered = delivered;
        }
        atomic_store(&sink->stalled, now - sink->progress_ms >= TG_KAFKA_STALL_MS);
        return 0; /* librdkafka frees json */
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        struct tg_kafka_sink *sink = opaque;
        uint64_t v = (uint64_t)(uintptr_t)m->_private;
        unsigned topic = (unsigned)(v & ((1u << TOPIC_BITS) - 1));

        if (topic >= TG_SINK__COUNT)
                return;
        if (m->err) {
                atomic_fetch_add(&sink->failed[topic], 1);
                tg_err_limited("kafka: delivery to %s failed: %s",
                       rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        } else {
                atomic_fetch_add(&sink->delivered[topic], 1);
                atomic_store(&sink->reachable, 1);
                atomic_store_explicit(&sink->stalled, 0, memory_order_relaxed);
                if (topic == TG_SINK_RAW)
                        latency_observe(sink, m);
        }
        if (sink->on_delivered)
                sink->on_delivered(sink->on_delivered_opaque, (enum tg_sink_topic)topic,
                                   v >> TOPIC_BITS, !m->err);
}

void tg_kafka_sink_on_delivery(tg_kafka_sink_t *sink, tg_sink_delivery_fn *fn,
                               void *opaque) {
        sink->on_delivered = fn;
        sink->on_delivered_opaque = opaque;
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    const char *origin, char *errstr, size_t errstr_size) {
        char err[256];

        if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        snprintf(errstr, errstr_size, "%s: kafka.%s: %s", origin, key, err);
        return -EINVAL;
}

/* Our settings first, then the user's kafka.* passthrough, which may
 * override all but the guarantees the gateway depends on. */
static rd_kafka_conf_t *build_conf(const struct tg_config *cfg, char *errstr,
                                   size_t errstr_size) {
        static const char *const guarded[] = {"enable.idempotence", "acks",
                                              "dr_msg_cb", NULL};
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        size_t i;

        if (conf_set(conf, "bootstrap.servers", cfg->kafka_bootstrap_servers,
                     "kafka.bootstrap.servers", errstr, errstr_size) ||
            conf_set(conf, "compression.type", cfg->kafka_compression,
                     "kafka.compression.type", errstr, errstr_size) ||
            /* Exactly once per partition, confirmed by every in-sync replica. */
            conf_set(conf, "enable.idempotence", "true", "built-in", errstr, errstr_size) ||
            conf_set(conf, "acks", "all", "built-in", errstr, errstr_size) ||
            /* Never give up on a record because a broker is down: an outage
             * of hours must not turn into loss. */
            conf_set(conf, "message.timeout.ms", "0", "built-in", errstr, errstr_size) ||
            conf_set(conf, "linger.ms", "20", "built-in", errstr, errstr_size) ||
            /* The spool, not this queue, holds readings through an outage:
             * the forwarder stops reading it at 90 % of the queue. A record
             * waiting here costs about 370 bytes of RSS (a 500 000-record
             * queue grew the gateway to 190 MB in an outage, and glibc kept
             * it). 10 000 records are a third of a second at 30 000
             * records/s, where a local broker confirms in milliseconds; the
             * 4 MiB bound is met first only by the burst of aggregates when
             * 10 000 sensors' windows close together, and takes 3 MiB off
             * the gateway's peak at 10 000 sensors (bench/RESULTS.md,
             * "Footprint floor"). */
            conf_set(conf, "queue.buffering.max.messages", "10000", "built-in",
                     errstr, errstr_size) ||
            conf_set(conf, "queue.buffering.max.kbytes", "4096", "built-in",
                     errstr, errstr_size) ||
            conf_set(conf, "client.id", "tumblegate", "built-in", errstr, errstr_size) ||
            /* /readyz and the queue metrics read them */
            conf_set(conf, "statistics.interval.ms", "2000", "built-in", errstr,
                     errstr_size))
                goto fail;
        /* With topics.create the gateway creates its topics as configured;
         * a metadata request must not have the broker create them first
         * with its defaults. */
        if (!strcmp(cfg->topics_create, "yes") &&
            conf_set(conf, "allow.auto.create.topics", "false", "built-in", errstr,
                     errstr_size))
                goto fail;

        for (i = 0; i < cfg->kafka_passthrough_cnt; i++) {
                const char *key = cfg->kafka_passthrough[i].key;
                size_t g;

                for (g = 0; guarded[g]; g++)
                        if (!strcmp(key, guarded[g]))
                                break;
                if (guarded[g]) {
                        snprintf(errstr, errstr_size,
                                 "%s: kafka.%s: fixed by tumblegate (its delivery "
                                 "guarantee depends on it)",
                                 cfg->kafka_passthrough[i].origin, key);
                        goto fail;
                }
                if (conf_set(conf, key, cfg->kafka_passthrough[i].value,
                             cfg->kafka_passthrough[i].origin, errstr, errstr_size))
                        goto fail;
        }
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

int tg_kafka_sink_check_config(const struct tg_config *cfg, char *errstr,
                               size_t errstr_size) {
        rd_kafka_conf_t *conf = build_conf(cfg, errstr, errstr_size);

        if (!conf)
                return -EINVAL;
        rd_kafka_conf_destroy(conf);
        return 0;
}

/* --- topics.create ------------------------------------------------------ */

#define CREATE_TIMEOUT_MS 15000
#define CREATE_RETRY_MS 30000

/* Ask for every configured topic; those that exist come back as
 * TOPIC_ALREADY_EXISTS. The answer is read by topics_create_poll(). */
static void topics_create(struct tg_kafka_sink *sink) {
        rd_kafka_NewTopic_t *nt[TG_SINK__COUNT];
        rd_kafka_AdminOptions_t *o;
        char err[256];
        size_t n = 0, i;
        int t;

        for (t = 0; t < TG_SINK__COUNT; t++) {
                if (!sink->rkt[t])
                        continue;
                nt[n] = rd_kafka_NewTopic_new(rd_kafka_topic_name(sink->rkt[t]),
                                              sink->create_partitions,
                                              sink->create_replication, err, sizeof(err));
                if (!nt[n]) {
                        tg_err("kafka: topic %s cannot be created: %s",
                               rd_kafka_topic_name(sink->rkt[t]), err);
                        continue;
                }
                n++;
        }
        o = rd_kafka_AdminOptions_new(sink->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(o, CREATE_TIMEOUT_MS, err, sizeof(err));
        rd_kafka_AdminOptions_set_operation_timeout(o, CREATE_TIMEOUT_MS, err, sizeof(err));
        rd_kafka_CreateTopics(sink->rk, nt, n, o, sink->admin_q);
        rd_kafka_AdminOptions_destroy(o);
        for (i = 0; i < n; i++)
                rd_kafka_NewTopic_destroy(nt[i]);
        sink->create_retry_ms = 0;
}

/* "-1" means the broker's default. */
static const char *count_text(int n, char *buf, size_t size) {
        if (n < 0)
                return "the broker's default";
        snprintf(buf, size, "%d", n);
        return buf;
}

static void topics_create_poll(struct tg_kafka_sink *sink) {
        char pbuf[16], rbuf[16];
        const rd_kafka_CreateTopics_result_t *res;
        const rd_kafka_topic_result_t **topics;
        rd_kafka_event_t *ev;
        size_t n, i;
        int again = 0;

        if (!sink->create_pending)
                return;
        if (sink->create_retry_ms) {
                if (tg_monotonic_ms() >= sink->create_retry_ms)
                        topics_create(sink);
                return;
        }
        if (!(ev = rd_kafka_queue_poll(sink->admin_q, 0)))
                return;
        if (rd_kafka_event_error(ev)) {
                /* The whole request failed: no broker or controller yet. */
                again = 1;
                if (!sink->create_warned++)
                        tg_warn("kafka: cannot create topics yet (%s); trying again every "
                                "%d s", rd_kafka_event_error_string(ev),
                                CREATE_RETRY_MS / 1000);
        } else if ((res = rd_kafka_event_CreateTopics_result(ev))) {
                topics = rd_kafka_CreateTopics_result_topics(res, &n);
                for (i = 0; i < n; i++) {
                        const char *name = rd_kafka_topic_result_name(topics[i]);
                        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(topics[i]);
                        const char *msg = rd_kafka_topic_result_error_string(topics[i]);

                        if (!e)
                                tg_info("kafka: created topic %s (%s partitions, "
                                        "replication factor %s)", name,
                                        count_text(sink->create_partitions, pbuf,
                                                   sizeof(pbuf)),
                                        count_text(sink->create_replication, rbuf,
                                                   sizeof(rbuf)));
                        else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                                tg_dbg("kafka: topic %s exists", name);
                        else if (e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ||
                                 e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
                                 e == RD_KAFKA_RESP_ERR_NOT_CONTROLLER)
                                again = 1;
                        else
                                tg_err("kafka: the broker refused to create topic %s: "
                                       "%s (%s). Create it yourself, grant this client "
                                       "CreateTopics, or set topics.create: no; records "
                                       "for it wait until it exists",
                                       name, rd_kafka_err2name(e), msg ? msg : "");
                }
        }
        rd_kafka_event_destroy(ev);
        if (again)
                sink->create_retry_ms = tg_monotonic_ms() + CREATE_RETRY_MS;
        else
                sink->create_pending = 0;
}

tg_kafka_sink_t *tg_kafka_sink_new(const struct tg_config *cfg, char *errstr,
                                   size_t errstr_size) {
        struct tg_kafka_sink *sink = calloc(1, sizeof(*sink));
        const char *names[TG_SINK__COUNT] = {cfg->topic_raw, cfg->topic_agg,
                                             cfg->topic_late, cfg->topic_dlq,
                                             cfg->topic_compressed};
        rd_kafka_conf_t *conf;
        int i;

        if (!sink) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (!(conf = build_conf(cfg, errstr, errstr_size))) {
                free(sink);
                return NULL;
        }
        {
                char v[32];
                size_t vn = sizeof(v);

                sink->capacity = rd_kafka_conf_get(conf, "queue.buffering.max.messages", v,
                                                   &vn) == RD_KAFKA_CONF_OK
                                         ? atoi(v)
                                         : 100000;
        }
        rd_kafka_conf_set_opaque(conf, sink);
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_log_cb(conf, on_log);
        rd_kafka_conf_set_stats_cb(conf, on_stats);

        if (!(sink->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
                rd_kafka_conf_destroy(conf);
                free(sink);
                return NULL;
        }
        for (i = 0; i < TG_SINK__COUNT; i++) {
                if (!names[i][0])
                        continue; /* optional topic, not configured */
                if (!(sink->rkt[i] = rd_kafka_topic_new(sink->rk, names[i], NULL))) {
                        snprintf(errstr, errstr_size, "topic %s: %s", names[i],
                                 rd_kafka_err2str(rd_kafka_last_error()));
                        tg_kafka_sink_destroy(sink, 0);
                        return NULL;
                }
        }
        if (!strcmp(cfg->topics_create, "yes")) {
                sink->admin_q = rd_kafka_queue_new(sink->rk);
                sink->create_pending = 1;
                sink->create_partitions = (int)cfg->topics_partitions;
                sink->create_replication = (int)cfg->topics_replication;
                topics_create(sink);
        }
        return sink;
}

int tg_kafka_sink_destroy(tg_kafka_sink_t *sink, int timeout_ms) {
        int left = 0, i;

        if (!sink)
                return 0;
        if (sink->rk) {
                rd_kafka_flush(sink->rk, timeout_ms);
                left = rd_kafka_outq_len(sink->rk);
                if (left > 0)
                        tg_warn("kafka: %d record(s) not confirmed when the producer "
                                "closed", left);
        }
        for (i = 0; i < TG_SINK__COUNT; i++)
                if (sink->rkt[i])
                        rd_kafka_topic_destroy(sink->rkt[i]);
        if (sink->admin_q)
                rd_kafka_queue_destroy(sink->admin_q);
        if (sink->rk)
                rd_kafka_destroy(sink->rk);
        free(sink);
        return left;
}

int tg_kafka_sink_produce(tg_kafka_sink_t *sink, enum tg_sink_topic topic,
                          const char *key, size_t key_len, const void *value,
                          size_t value_len, int64_t timestamp_ms,
                          const struct tg_sink_header *headers, size_t nheaders,
                          uint64_t tag) {
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_resp_err_t err;
        size_t h;

        if (!sink->rkt[topic])
                return 0;
        /* Headers are handed over with the message only on success. */
        if (nheaders) {
                hdrs = rd_kafka_headers_new(nheaders);
                for (h = 0; h < nheaders; h++)
                        rd_kafka_header_add(hdrs, headers[h].name, -1, headers[h].value,
                                            (ssize_t)headers[h].len);
        }
        err = rd_kafka_producev(
                sink->rk, RD_KAFKA_V_RKT(sink->rkt[topic]), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE((void *)value, value_len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(timestamp_ms),
                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)((tag << TOPIC_BITS) | (uint64_t)topic)),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err && hdrs)
                rd_kafka_headers_destroy(hdrs);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                /* Brokers slow or down: the caller keeps the record. */
                atomic_fetch_add(&sink->queue_full, 1);
                return -ENOBUFS;
        }
        if (err) {
                tg_err_limited("kafka: produce to %s failed: %s",
                       rd_kafka_topic_name(sink->rkt[topic]), rd_kafka_err2str(err));
                atomic_fetch_add(&sink->failed[topic], 1);
                return -EIO;
        }
        atomic_fetch_add(&sink->produced[topic], 1);
        return 0;
}

int tg_kafka_sink_has_topic(const tg_kafka_sink_t *sink, enum tg_sink_topic topic) {
        return sink->rkt[topic] != NULL;
}

int tg_kafka_sink_flush(tg_kafka_sink_t *sink, int timeout_ms) {
        rd_kafka_flush(sink->rk, timeout_ms > 0 ? timeout_ms : 0);
        return rd_kafka_outq_len(sink->rk);
}

void tg_kafka_sink_poll(tg_kafka_sink_t *sink, int timeout_ms) {
        rd_kafka_poll(sink->rk, timeout_ms);
        topics_create_poll(sink);
}

int tg_kafka_sink_reachable(const tg_kafka_sink_t *sink) {
        return atomic_load(&sink->reachable);
}

int tg_kafka_sink_stalled(const tg_kafka_sink_t *sink) {
        return atomic_load(&sink->stalled);
}

const char *tg_kafka_sink_topic_name(const tg_kafka_sink_t *sink,
                                     enum tg_sink_topic topic) {
        return sink->rkt[topic] ? rd_kafka_topic_name(sink->rkt[topic]) : NULL;
}

int tg_kafka_sink_in_flight(const tg_kafka_sink_t *sink) {
        return rd_kafka_outq_len(sink->rk);
}

void tg_kafka_sink_counters(const tg_kafka_sink_t *sink,
                            struct tg_sink_counters *out) {
        int i;

        for (i = 0; i < TG_SINK__COUNT; i++) {
                out->produced[i] = atomic_load(&sink->produced[i]);
                out->delivered[i] = atomic_load(&sink->delivered[i]);
                out->failed[i] = atomic_load(&sink->failed[i]);
        }
        out->queue_full = atomic_load(&sink->queue_full);
        for (i = 0; i < TG_SINK_LATENCY_BUCKETS; i++)
                out->latency_le[i] = (i ? out->latency_le[i - 1] : 0) +
                                     atomic_load(&sink->latency_in[i]);
        out->latency_count = atomic_load(&sink->latency_count);
        out->latency_sum_ms = atomic_load(&sink->latency_sum_ms);
}

/* --- struct tg_sink ---------------------------------------------------- */

static int iface_produce(void *ctx, enum tg_sink_topic topic, const char *key,
                         size_t key_len, const void *value, size_t len,
                         int64_t timestamp_ms, const struct tg_sink_header *headers,
                         size_t nheaders, uint64_t tag) {
        return tg_kafka_sink_produce(ctx, topic, key, key_len, value, len, timestamp_ms,
                                     headers, nheaders, tag);
}

static void iface_poll(void *ctx, int timeout_ms) {
        tg_kafka_sink_poll(ctx, timeout_ms);
}

static int iface_in_flight(void *ctx) {
        return tg_kafka_sink_in_flight(ctx);
}

static int iface_has_topic(void *ctx, enum tg_sink_topic topic) {
        return tg_kafka_sink_has_topic(ctx, topic);
}

static void iface_on_delivery(void *ctx, tg_sink_delivery_fn *fn, void *opaque) {
        tg_kafka_sink_on_delivery(ctx, fn, opaque);
}

void tg_kafka_sink_iface(tg_kafka_sink_t *sink, struct tg_sink *out) {
        *out = (struct tg_sink){
                .produce = iface_produce,
                .poll = iface_poll,
                .in_flight = iface_in_flight,
                .has_topic = iface_has_topic,
                .on_delivery = iface_on_delivery,
                .ctx = sink,
                .capacity = sink->capacity,
        };
}
