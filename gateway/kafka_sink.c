/* kafka_sink.c - librdkafka producer setup, produce with back-pressure, delivery accounting. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "kafka_sink.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

struct tg_kafka_sink {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt[TG_SINK__COUNT];
        _Atomic uint64_t produced[TG_SINK__COUNT];
        _Atomic uint64_t delivered[TG_SINK__COUNT];
        _Atomic uint64_t failed[TG_SINK__COUNT];
        _Atomic uint64_t queue_full_waits;
        tg_sink_delivery_fn *on_delivered;
        void *on_delivered_opaque;
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

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        struct tg_kafka_sink *sink = opaque;
        uint64_t v = (uint64_t)(uintptr_t)m->_private;
        unsigned topic = (unsigned)(v & ((1u << TOPIC_BITS) - 1));

        if (topic >= TG_SINK__COUNT)
                return;
        if (m->err) {
                atomic_fetch_add(&sink->failed[topic], 1);
                tg_err("kafka: delivery to %s failed: %s",
                       rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        } else {
                atomic_fetch_add(&sink->delivered[topic], 1);
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
            conf_set(conf, "queue.buffering.max.messages", "500000", "built-in",
                     errstr, errstr_size) ||
            conf_set(conf, "queue.buffering.max.kbytes", "262144", "built-in",
                     errstr, errstr_size) ||
            conf_set(conf, "client.id", "tumblegate", "built-in", errstr, errstr_size))
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

tg_kafka_sink_t *tg_kafka_sink_new(const struct tg_config *cfg, char *errstr,
                                   size_t errstr_size) {
        struct tg_kafka_sink *sink = calloc(1, sizeof(*sink));
        const char *names[TG_SINK__COUNT] = {cfg->topic_raw, cfg->topic_agg,
                                             cfg->topic_late, cfg->topic_dlq};
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
        rd_kafka_conf_set_opaque(conf, sink);
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_log_cb(conf, on_log);

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
                        tg_err("kafka: %d message(s) still undelivered after %d ms",
                               left, timeout_ms);
        }
        for (i = 0; i < TG_SINK__COUNT; i++)
                if (sink->rkt[i])
                        rd_kafka_topic_destroy(sink->rkt[i]);
        if (sink->rk)
                rd_kafka_destroy(sink->rk);
        free(sink);
        return left;
}

int tg_kafka_sink_produce(tg_kafka_sink_t *sink, enum tg_sink_topic topic,
                          const char *key, size_t key_len, const void *value,
                          size_t value_len, int64_t timestamp_ms, uint64_t tag,
                          const volatile int *stop) {
        return tg_kafka_sink_produce_headers(sink, topic, key, key_len, value,
                                             value_len, timestamp_ms, NULL, 0, tag,
                                             stop);
}

int tg_kafka_sink_produce_headers(tg_kafka_sink_t *sink, enum tg_sink_topic topic,
                                  const char *key, size_t key_len, const void *value,
                                  size_t value_len, int64_t timestamp_ms,
                                  const struct tg_sink_header *headers,
                                  size_t nheaders, uint64_t tag,
                                  const volatile int *stop) {
        rd_kafka_resp_err_t err;
        int waited = 0;

        if (!sink->rkt[topic])
                return 0;
        for (;;) {
                /* Headers are handed over with the message only on success,
                 * so they are built anew for each attempt. */
                rd_kafka_headers_t *hdrs = NULL;
                size_t h;

                if (nheaders) {
                        hdrs = rd_kafka_headers_new(nheaders);
                        for (h = 0; h < nheaders; h++)
                                rd_kafka_header_add(hdrs, headers[h].name, -1,
                                                    headers[h].value,
                                                    (ssize_t)headers[h].len);
                }
                err = rd_kafka_producev(
                        sink->rk, RD_KAFKA_V_RKT(sink->rkt[topic]),
                        RD_KAFKA_V_KEY(key, key_len),
                        RD_KAFKA_V_VALUE((void *)value, value_len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_TIMESTAMP(timestamp_ms),
                        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)((tag << TOPIC_BITS) |
                                                               (uint64_t)topic)),
                        RD_KAFKA_V_HEADERS(hdrs),
                        RD_KAFKA_V_END);
                if (err && hdrs)
                        rd_kafka_headers_destroy(hdrs);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                /* librdkafka's queue is full (brokers slow or down): wait
                 * here, which holds the MQTT callback and so the acks. */
                if (!waited++) {
                        atomic_fetch_add(&sink->queue_full_waits, 1);
                        tg_dbg("kafka: producer queue full, waiting for room");
                }
                if (stop && *stop)
                        return -ECANCELED;
                rd_kafka_poll(sink->rk, 10);
        }
        if (err) {
                tg_err("kafka: produce to %s failed: %s",
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
        out->queue_full_waits = atomic_load(&sink->queue_full_waits);
}
