/* mqtt_source.c - Paho MQTTAsync subscriber: persistent session, auto-reconnect, resubscribe. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "mqtt_source.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

struct tg_mqtt_source {
        MQTTAsync client;
        tg_pipeline_t *pipeline;
        char *topics[TG_SUBSCRIPTIONS_MAX];
        int qos[TG_SUBSCRIPTIONS_MAX];
        int ntopics;
        _Atomic int ready;
        _Atomic int stopping;
        /* Reconnects are ours, not Paho's: Paho retries neither a first
         * connect that fails nor with jitter. After a failure or a lost
         * connection the next attempt is due at retry_at_ms, after a backoff
         * doubling from 1 s to 30 s, randomised by +-50 % so that gateways
         * that lost one broker do not return to it in step. */
        MQTTAsync_connectOptions conn;
        _Atomic int64_t retry_at_ms;   /* 0: none pending */
        int64_t backoff_ms;
        unsigned jitter_seed;
        _Atomic uint64_t connects, connection_lost, subscribed;
};

static void subscribe(struct tg_mqtt_source *src);

static void on_subscribe_ok(void *context, MQTTAsync_successData *resp) {
        struct tg_mqtt_source *src = context;
        int i, refused = 0;

        /* Brokers answer 0x80 in a granted QoS when they refuse that filter;
         * Paho gives one QoS for one filter, a list for several. */
        for (i = 0; resp && i < src->ntopics; i++) {
                int granted = src->ntopics == 1 ? resp->alt.qos
                              : resp->alt.qosList ? resp->alt.qosList[i]
                                                  : src->qos[i];

                if (granted == 0x80) {
                        tg_err("mqtt: subscription to '%s' refused by the broker",
                               src->topics[i]);
                        refused++;
                } else {
                        tg_info("mqtt: subscribed to '%s' (QoS %d)", src->topics[i],
                                granted);
                }
        }
        if (refused)
                return;
        atomic_fetch_add(&src->subscribed, 1);
        atomic_store(&src->ready, 1);
}

static void on_subscribe_fail(void *context, MQTTAsync_failureData *resp) {
        tg_err("mqtt: subscribe failed (code %d%s%s)", resp ? resp->code : 0,
               resp && resp->message ? ": " : "",
               resp && resp->message ? resp->message : "");
}

static void subscribe(struct tg_mqtt_source *src) {
        MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
        int rc;

        opts.onSuccess = on_subscribe_ok;
        opts.onFailure = on_subscribe_fail;
        opts.context = src;
        rc = MQTTAsync_subscribeMany(src->client, src->ntopics, src->topics, src->qos,
                                     &opts);
        if (rc != MQTTASYNC_SUCCESS)
                tg_err("mqtt: subscribe not sent: %s", MQTTAsync_strerror(rc));
}

/* Called on the first connection and on every automatic reconnection.
 * The broker keeps our subscription in the persistent session, but
 * subscribing again is harmless and repairs a session the broker lost
 * (restart without persistence, expiry): never a zombie connection that
 * receives nothing. */
static void on_connected(void *context, char *cause) {
        struct tg_mqtt_source *src = context;

        atomic_fetch_add(&src->connects, 1);
        tg_info("mqtt: connected%s%s", cause ? " " : "", cause ? cause : "");
        subscribe(src);
}

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

static void retry_later(struct tg_mqtt_source *src) {
        int64_t delay = src->backoff_ms / 2 +
                        (int64_t)(rand_r(&src->jitter_seed) % (unsigned)(src->backoff_ms + 1));

        if (atomic_load(&src->stopping))
                return;
        atomic_store(&src->retry_at_ms, tg_monotonic_ms() + delay);
        tg_info("mqtt: next connection attempt in %lld ms", (long long)delay);
        src->backoff_ms = src->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                               : src->backoff_ms * 2;
}

static void on_connect_fail(void *context, MQTTAsync_failureData *resp) {
        struct tg_mqtt_source *src = context;

        tg_warn("mqtt: connect failed (code %d%s%s)",
                resp ? resp->code : 0, resp && resp->message ? ": " : "",
                resp && resp->message ? resp->message : "");
        retry_later(src);
}

static void on_connection_lost(void *context, char *cause) {
        struct tg_mqtt_source *src = context;

        atomic_store(&src->ready, 0);
        atomic_fetch_add(&src->connection_lost, 1);
        tg_warn("mqtt: connection lost (%s)", cause ? cause : "no reason given");
        src->backoff_ms = BACKOFF_MIN_MS;
        retry_later(src);
}

static void on_connect_ok(void *context, MQTTAsync_successData *resp) {
        struct tg_mqtt_source *src = context;

        src->backoff_ms = BACKOFF_MIN_MS;
        on_connected(context, NULL);
}

void tg_mqtt_source_tick(tg_mqtt_source_t *src) {
        int64_t due = atomic_load(&src->retry_at_ms);
        int rc;

        if (!due || tg_monotonic_ms() < due || atomic_load(&src->stopping))
                return;
        atomic_store(&src->retry_at_ms, 0);
        rc = MQTTAsync_connect(src->client, &src->conn);
        if (rc != MQTTASYNC_SUCCESS) {
                tg_warn("mqtt: connect not started: %s", MQTTAsync_strerror(rc));
                retry_later(src);
        }
}

/* Paho sends the PUBACK when this returns, whatever it returns: the reading
 * must be fully handed on before returning. */
static int on_message(void *context, char *topic, int topic_len,
                      MQTTAsync_message *msg) {
        struct tg_mqtt_source *src = context;
        char name[512];

        snprintf(name, sizeof(name), "%.*s",
                 topic_len ? topic_len : (int)strlen(topic), topic);
        tg_pipeline_ingest(src->pipeline, name, msg->payload,
                           (size_t)msg->payloadlen, msg->dup);
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1;
}

/* Paho's own trace goes through our log at debug level. */
static void on_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message) {
        if (level >= MQTTASYNC_TRACE_ERROR)
                tg_warn("paho: %s", message);
        else
                tg_dbg("paho: %s", message);
}

static void source_free(struct tg_mqtt_source *src) {
        int i;

        for (i = 0; i < TG_SUBSCRIPTIONS_MAX; i++)
                free(src->topics[i]);
        free(src);
}

tg_mqtt_source_t *tg_mqtt_source_new(const struct tg_config *cfg,
                                     tg_pipeline_t *pipeline, char *errstr,
                                     size_t errstr_size) {
        MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer;
        struct tg_mqtt_source *src = calloc(1, sizeof(*src));
        struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
        int rc, i;

        if (!src) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        src->ntopics = (int)tg_config_subscriptions(cfg, subs);
        for (i = 0; i < src->ntopics; i++) {
                src->qos[i] = subs[i].qos;
                if (!(src->topics[i] = strdup(subs[i].value[TG_SUB_TOPIC]))) {
                        source_free(src);
                        snprintf(errstr, errstr_size, "out of memory");
                        return NULL;
                }
        }
        src->pipeline = pipeline;

        MQTTAsync_setTraceCallback(on_trace);
        MQTTAsync_setTraceLevel(tg_log_threshold >= TG_LOG_DEBUG
                                        ? MQTTASYNC_TRACE_PROTOCOL
                                        : MQTTASYNC_TRACE_ERROR);

        copts.MQTTVersion = MQTTVERSION_3_1_1;
        rc = MQTTAsync_createWithOptions(&src->client, cfg->mqtt_uri,
                                         cfg->mqtt_client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &copts);
        if (rc != MQTTASYNC_SUCCESS) {
                snprintf(errstr, errstr_size, "mqtt.uri '%s': %s", cfg->mqtt_uri,
                         MQTTAsync_strerror(rc));
                source_free(src);
                return NULL;
        }
        MQTTAsync_setCallbacks(src->client, src, on_connection_lost, on_message, NULL);

        /* A persistent session: while the gateway is away the broker queues
         * QoS 1 messages for this client id. */
        conn.cleansession = 0;
        conn.keepAliveInterval = (int)(cfg->mqtt_keepalive_ms / 1000);
        conn.automaticReconnect = 0; /* see retry_later() */
        conn.connectTimeout = 10;
        conn.onSuccess = on_connect_ok;
        conn.onFailure = on_connect_fail;
        conn.context = src;
        src->conn = conn;
        src->backoff_ms = BACKOFF_MIN_MS;
        src->jitter_seed = (unsigned)getpid() ^ (unsigned)tg_monotonic_ms();
        rc = MQTTAsync_connect(src->client, &src->conn);
        if (rc != MQTTASYNC_SUCCESS) {
                snprintf(errstr, errstr_size, "mqtt connect to %s: %s", cfg->mqtt_uri,
                         MQTTAsync_strerror(rc));
                MQTTAsync_destroy(&src->client);
                source_free(src);
                return NULL;
        }
        return src;
}

void tg_mqtt_source_destroy(tg_mqtt_source_t *src) {
        MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer;

        if (!src)
                return;
        atomic_store(&src->stopping, 1);
        opts.timeout = 2000;
        if (MQTTAsync_isConnected(src->client))
                MQTTAsync_disconnect(src->client, &opts);
        /* Let an in-progress callback finish before the client goes. */
        for (int i = 0; i < 50 && MQTTAsync_isConnected(src->client); i++)
                usleep(50 * 1000);
        MQTTAsync_destroy(&src->client);
        source_free(src);
}

int tg_mqtt_source_ready(const tg_mqtt_source_t *src) {
        return atomic_load(&src->ready);
}

void tg_mqtt_source_counters(const tg_mqtt_source_t *src,
                             struct tg_mqtt_counters *out) {
        out->connects = atomic_load(&src->connects);
        out->connection_lost = atomic_load(&src->connection_lost);
        out->subscribed = atomic_load(&src->subscribed);
}
