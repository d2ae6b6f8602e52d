/* mqtt_source.c - Paho MQTTAsync subscriber: persistent session, auto-reconnect, resubscribe. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "mqtt_source.h"

#include <MQTTAsync.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

struct tg_mqtt_source {
        MQTTAsync client;
        tg_mqtt_message_fn *on_message;
        void *opaque;
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
        MQTTAsync_SSLOptions ssl;      /* conn.ssl points here for ssl:// */
        _Atomic int64_t retry_at_ms;   /* 0: none pending */
        int64_t backoff_ms;
        unsigned jitter_seed;
        _Atomic uint64_t connects, connection_lost, subscribed, takeovers_suspected;
        /* Flapping (see on_connection_lost()); Paho's threads only, which
         * call us one at a time. */
        int64_t connected_at_ms;
        int short_lived;               /* connections in a row lost soon after connecting */
        int64_t flap_reported_ms;      /* 0: never */
        /* What a failure message needs: the broker, and which of our
         * options the operator should look at. Our own copies, since Paho
         * reads them again on every reconnection. */
        char *uri, *client_id, *username, *password, *key_password;
        const char *ca_file, *cert_file, *key_file; /* borrowed from the config */
        int tls, verify;
        /* What went wrong in the current attempt, gathered on Paho's
         * threads and read when the attempt fails: OpenSSL's errors (from
         * ssl_error_cb), and from Paho's protocol trace whether the broker
         * asked for a client certificate, sent a TLS alert, or presented a
         * certificate that does not name the host of mqtt.uri. */
        pthread_mutex_t tls_lock;
        char tls_error[512];
        char tls_alert[128];
        _Atomic int cert_requested, host_mismatch;
};

/* Paho's trace callback has no context pointer; a gateway has one source. */
static struct tg_mqtt_source *_Atomic trace_src;
static enum MQTTASYNC_TRACE_LEVELS trace_level_base = MQTTASYNC_TRACE_ERROR;

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

/* Paho's "connected" callback: called for every connection Paho makes,
 * ours or (should it ever make one) its own, so none goes unsubscribed.
 * The broker keeps our subscription in the persistent session, but
 * subscribing again is harmless and repairs a session the broker lost
 * (restart without persistence, expiry): never a zombie connection that
 * receives nothing. */
static void on_connected(void *context, char *cause) {
        struct tg_mqtt_source *src = context;

        (void)cause; /* Paho's words for which of the two it was */
        src->connected_at_ms = tg_monotonic_ms();
        atomic_fetch_add(&src->connects, 1);
        tg_info("mqtt: connected to %s", src->uri);
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

/* Append @p r to a "; "-separated list of reasons, unless it is there. */
static void reason_add(char *list, size_t size, const char *r) {
        size_t n = strlen(list), len = strlen(r);
        const char *p;

        for (p = list; (p = strstr(p, r)); p += len)
                if ((p == list || p[-1] == ' ') && (!p[len] || p[len] == ';'))
                        return;
        if (n + len + 3 < size)
                snprintf(list + n, size - n, "%s%s", n ? "; " : "", r);
}

/*
 * Paho hands OpenSSL's error queue to this, one line per error, when a TLS
 * handshake or loading the certificates fails. OpenSSL 3 writes
 * "thread:error:code:library:function:reason:file:line:data"; the reason and
 * data are what a reader needs, the rest goes to the debug log only.
 */
static int on_ssl_error(const char *str, size_t len, void *u) {
        struct tg_mqtt_source *src = u;
        const char *f[9] = {0};
        char line[512];
        char reason[300];
        int nf = 0;
        char *p;

        snprintf(line, sizeof(line), "%.*s", (int)len, str);
        line[strcspn(line, "\r\n")] = '\0';
        tg_dbg("mqtt: openssl: %s", line);
        for (p = line; nf < 9; nf++) {
                f[nf] = p;
                if (nf == 8 || !(p = strchr(p, ':')))
                        break;
                *p++ = '\0';
        }
        if (nf >= 5 && !strcmp(f[1], "error"))
                snprintf(reason, sizeof(reason), "%s%s%s", f[5],
                         nf >= 8 && f[8][0] ? ": " : "", nf >= 8 ? f[8] : "");
        else
                snprintf(reason, sizeof(reason), "%.*s", (int)len, str);
        pthread_mutex_lock(&src->tls_lock);
        reason_add(src->tls_error, sizeof(src->tls_error), reason);
        pthread_mutex_unlock(&src->tls_lock);
        return 1; /* go on with the next error in the queue */
}

/*
 * @p message without the "YYYYMMDD HHMMSS.mmm " Paho puts before most trace
 * lines: Paho reads the clock only every 20th line (Log_pretrace()), so the
 * first ones say 19700101 000000.000 and later ones may be stale, and in
 * local time. Our log sink stamps every line itself.
 */
static char *paho_unstamped(char *message) {
        static const char shape[] = "99999999 999999.999 ";
        size_t i;

        for (i = 0; i < sizeof(shape) - 1; i++)
                if (shape[i] == '9' ? !isdigit((unsigned char)message[i])
                                    : message[i] != shape[i])
                        return message; /* no stamp: Paho's start-up banner */
        return message + i;
}

/*
 * Paho's trace, which also tells what OpenSSL's error queue cannot: in
 * TLS 1.3 the client's handshake is over before the broker has checked the
 * client's certificate, so a broker that wants one (mosquitto's
 * require_certificate) answers with an alert on the first read, which
 * Paho reports as a plain socket error. The protocol-level lines are only
 * traced while a TLS connection is being made (see attempt_start()).
 */
static void on_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message) {
        struct tg_mqtt_source *src = atomic_load(&trace_src);
        const char *alert;

        message = paho_unstamped(message);
        if (level >= MQTTASYNC_TRACE_ERROR)
                tg_warn("paho: %s", message);
        else
                tg_dbg("paho: %s", message);
        if (!src || !src->tls)
                return;
        if (strstr(message, "read server certificate request"))
                atomic_store(&src->cert_requested, 1);
        /* Paho checks the name, then the IP address; a CONNECT sent after
         * a failed name check means the address matched. */
        else if (strstr(message, "X509_check_host for hostname") && strstr(message, "failed"))
                atomic_store(&src->host_mismatch, 1);
        else if (strstr(message, " -> CONNECT "))
                atomic_store(&src->host_mismatch, 0);
        else if ((alert = strstr(message, "SSL alert read:"))) {
                pthread_mutex_lock(&src->tls_lock);
                snprintf(src->tls_alert, sizeof(src->tls_alert), "%s", alert + 15);
                pthread_mutex_unlock(&src->tls_lock);
        }
}

/* Before each connection attempt: forget the last one's errors and, for
 * TLS, have Paho trace the handshake (a few dozen lines per attempt). */
static void attempt_start(struct tg_mqtt_source *src) {
        pthread_mutex_lock(&src->tls_lock);
        src->tls_error[0] = src->tls_alert[0] = '\0';
        pthread_mutex_unlock(&src->tls_lock);
        atomic_store(&src->cert_requested, 0);
        atomic_store(&src->host_mismatch, 0);
        if (src->tls)
                MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_PROTOCOL);
}

/* After it, connected or not: back to the usual trace level. */
static void attempt_end(struct tg_mqtt_source *src) {
        if (src->tls)
                MQTTAsync_setTraceLevel(trace_level_base);
}

/* MQTT 3.1.1 CONNACK return codes 1..5 (a refusal by the broker). */
static const char *connack_text(int code) {
        static const char *const text[] = {
                NULL, "unacceptable protocol version", "client identifier rejected",
                "server unavailable", "bad user name or password", "not authorized"};

        return code > 0 && code <= 5 ? text[code] : NULL;
}

/*
 * One line per failed attempt that says what failed and which option to
 * look at; OpenSSL's own words follow in brackets, so nothing is lost in
 * the translation. Nothing here can print a secret: only option names,
 * file paths and the broker's URI.
 */
static void log_connect_failure(struct tg_mqtt_source *src, const char *what, int code,
                                const char *paho_msg) {
        char ssl_err[sizeof(src->tls_error)], alert[sizeof(src->tls_alert)];
        char detail[sizeof(ssl_err) + sizeof(alert) + 48];
        const char *refusal = connack_text(code);
        const char *uri = src->uri;

        pthread_mutex_lock(&src->tls_lock);
        memcpy(ssl_err, src->tls_error, sizeof(ssl_err));
        memcpy(alert, src->tls_alert, sizeof(alert));
        pthread_mutex_unlock(&src->tls_lock);
        detail[0] = '\0';
        if (ssl_err[0] || alert[0])
                snprintf(detail, sizeof(detail), " [%s%s%s%s%s]",
                         ssl_err[0] ? "openssl: " : "", ssl_err,
                         ssl_err[0] && alert[0] ? "; " : "",
                         alert[0] ? "TLS alert from the broker: " : "", alert);

        if (refusal) {
                const char *hint = code == 4 || code == 5
                                           ? src->username[0]
                                                     ? "; check mqtt.username and mqtt.password"
                                                     : "; the broker wants credentials: set "
                                                       "mqtt.username and mqtt.password"
                                   : code == 2 ? "; check mqtt.client_id"
                                               : "";

                tg_err("mqtt: %s %s refused by the broker: %s (CONNACK %d)%s", what, uri,
                       refusal, code, hint);
        } else if (strstr(ssl_err, "certificate verify failed")) {
                tg_err("mqtt: %s %s failed: certificate verify failed: the broker's "
                       "certificate is not signed by a CA in mqtt.tls.ca_file (%s)%s", what,
                       uri, src->ca_file[0] ? src->ca_file : "empty: the system's CAs",
                       detail);
        } else if (strstr(ssl_err, "bad decrypt") || strstr(ssl_err, "wrong password") ||
                   strstr(ssl_err, "problems getting password") ||
                   strstr(ssl_err, "key values mismatch") || strstr(ssl_err, "PEM lib") ||
                   strstr(ssl_err, "no start line")) {
                tg_err("mqtt: %s %s failed: cannot load the client certificate or key (%s); "
                       "check mqtt.tls.cert_file, mqtt.tls.key_file and "
                       "mqtt.tls.key_password%s", what, uri,
                       src->key_file[0] ? src->key_file : src->cert_file, detail);
        } else if (atomic_load(&src->host_mismatch)) {
                tg_err("mqtt: %s %s failed: the broker's certificate does not name the "
                       "host of mqtt.uri (subjectAltName DNS or IP)%s", what, uri, detail);
        } else if (atomic_load(&src->cert_requested) && !src->cert_file[0]) {
                tg_err("mqtt: %s %s failed: the broker requires a client certificate "
                       "(mutual TLS) and none is configured: set mqtt.tls.cert_file and "
                       "mqtt.tls.key_file%s", what, uri, detail);
        } else if (atomic_load(&src->cert_requested) && alert[0]) {
                tg_err("mqtt: %s %s failed: the broker refused the client certificate in "
                       "mqtt.tls.cert_file (%s): is it signed by a CA the broker trusts, "
                       "and still valid?%s", what, uri, src->cert_file, detail);
        } else if (detail[0]) {
                tg_err("mqtt: %s %s failed: TLS error%s", what, uri, detail);
        } else {
                tg_warn("mqtt: %s %s failed (code %d%s%s)", what, uri, code,
                        paho_msg ? ": " : "", paho_msg ? paho_msg : "");
        }
}

static void on_connect_fail(void *context, MQTTAsync_failureData *resp) {
        struct tg_mqtt_source *src = context;

        attempt_end(src);
        log_connect_failure(src, "connect to", resp ? resp->code : 0,
                            resp ? resp->message : NULL);
        retry_later(src);
}

#define FLAP_WINDOW_MS 5000     /* lost sooner than this after connecting: short-lived */
#define FLAP_COUNT 3            /* this many short-lived connections in a row: flapping */
#define FLAP_REPORT_MS 60000    /* the explanation at most this often */

/*
 * A broker closes a connection without a word when another client connects
 * with the same client id (MQTT 3.1.1 3.1.4), and Paho then says only
 * "connection lost". Two gateways sharing mqtt.client_id take the session
 * from each other at every reconnection, about once a second, for ever.
 * Connections that keep dying within seconds of being made are that,
 * most likely: say so in one line, at most once a minute, and count each.
 */
static void check_flapping(struct tg_mqtt_source *src, int64_t now) {
        int64_t lived = now - src->connected_at_ms;

        if (!src->connected_at_ms || lived >= FLAP_WINDOW_MS) {
                src->short_lived = 0;
                return;
        }
        if (++src->short_lived < FLAP_COUNT)
                return;
        atomic_fetch_add(&src->takeovers_suspected, 1);
        if (src->flap_reported_ms && now - src->flap_reported_ms < FLAP_REPORT_MS)
                return;
        src->flap_reported_ms = now;
        tg_err("mqtt: %d connections in a row lost within %d s of connecting (the last "
               "after %lld ms): most likely another client, such as a second gateway, "
               "connects with the same client id '%s' and the broker hands the session "
               "to the newest connection each time; give each gateway its own "
               "mqtt.client_id (counted in "
               "tumblegate_mqtt_session_takeovers_suspected_total; said again at most "
               "once a minute)", src->short_lived, FLAP_WINDOW_MS / 1000, (long long)lived,
               src->client_id);
}

static void on_connection_lost(void *context, char *cause) {
        struct tg_mqtt_source *src = context;

        atomic_store(&src->ready, 0);
        atomic_fetch_add(&src->connection_lost, 1);
        tg_warn("mqtt: connection lost (%s)", cause ? cause : "no reason given");
        check_flapping(src, tg_monotonic_ms());
        src->backoff_ms = BACKOFF_MIN_MS;
        retry_later(src);
}

/* Our own attempt succeeded; on_connected() follows, as for any connection. */
static void on_connect_ok(void *context, MQTTAsync_successData *resp) {
        struct tg_mqtt_source *src = context;

        (void)resp;
        attempt_end(src);
        src->backoff_ms = BACKOFF_MIN_MS;
}

void tg_mqtt_source_tick(tg_mqtt_source_t *src) {
        int64_t due = atomic_load(&src->retry_at_ms);
        int rc;

        if (!due || tg_monotonic_ms() < due || atomic_load(&src->stopping))
                return;
        atomic_store(&src->retry_at_ms, 0);
        attempt_start(src);
        rc = MQTTAsync_connect(src->client, &src->conn);
        if (rc != MQTTASYNC_SUCCESS) {
                attempt_end(src);
                tg_warn("mqtt: connect not started: %s", MQTTAsync_strerror(rc));
                retry_later(src);
        }
}

/* Paho sends the PUBACK when this returns: the reading must be fully handed
 * on before returning. That holds because this always returns 1. Paho 1.3's
 * receive thread (MQTTProtocol_handlePublishes) calls it from
 * Protocol_processPublication while the client's message queue is empty and
 * the client connected, and sends the PUBACK after; a message that finds the
 * queue non-empty is queued and acknowledged at once, delivered later. The
 * queue only fills when a callback returns 0 ("retry later"), so returning 0
 * would let later messages be acknowledged before they are kept. Paho gives
 * topic_len 0 when the topic is NUL-terminated (it may hold a NUL otherwise). */
static int on_paho_message(void *context, char *topic, int topic_len,
                           MQTTAsync_message *msg) {
        struct tg_mqtt_source *src = context;

        src->on_message(src->opaque, topic, topic_len > 0 ? (size_t)topic_len : strlen(topic),
                        msg->payload, (size_t)msg->payloadlen, msg->qos, msg->dup);
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1;
}

/* Overwrite a secret before its memory goes back to the allocator. */
static void free_secret(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

static void source_free(struct tg_mqtt_source *src) {
        int i;

        for (i = 0; i < TG_SUBSCRIPTIONS_MAX; i++)
                free(src->topics[i]);
        free(src->uri);
        free(src->client_id);
        free(src->username);
        free_secret(src->password);
        free_secret(src->key_password);
        pthread_mutex_destroy(&src->tls_lock);
        free(src);
}

/*
 * TLS for ssl:// and mqtts:// brokers: the CA file (or the system's CAs),
 * an optional client certificate and key for mutual TLS, and, unless
 * mqtt.tls.verify is no, verification of the broker's certificate chain
 * and of its host name (or IP address) against the URI.
 */
static void tls_setup(struct tg_mqtt_source *src, const struct tg_config *cfg) {
        MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;

        ssl.trustStore = cfg->mqtt_tls_ca_file[0] ? cfg->mqtt_tls_ca_file : NULL;
        ssl.keyStore = cfg->mqtt_tls_cert_file[0] ? cfg->mqtt_tls_cert_file : NULL;
        ssl.privateKey = cfg->mqtt_tls_key_file[0] ? cfg->mqtt_tls_key_file : NULL;
        ssl.privateKeyPassword = src->key_password[0] ? src->key_password : NULL;
        ssl.enableServerCertAuth = src->verify;
        ssl.verify = src->verify; /* host name / IP address in the certificate */
        ssl.sslVersion = MQTT_SSL_VERSION_DEFAULT;
        ssl.ssl_error_cb = on_ssl_error;
        ssl.ssl_error_context = src;
        src->ssl = ssl;
}

tg_mqtt_source_t *tg_mqtt_source_new(const struct tg_config *cfg, tg_mqtt_message_fn *on_message,
                                     void *opaque, char *errstr, size_t errstr_size) {
        MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer;
        struct tg_mqtt_source *src = calloc(1, sizeof(*src));
        struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
        int rc, i;

        if (!src) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        pthread_mutex_init(&src->tls_lock, NULL);
        if (!(src->uri = strdup(cfg->mqtt_uri)) ||
            !(src->client_id = strdup(cfg->mqtt_client_id)) ||
            !(src->username = strdup(cfg->mqtt_username)) ||
            !(src->password = strdup(cfg->mqtt_password)) ||
            !(src->key_password = strdup(cfg->mqtt_tls_key_password))) {
                source_free(src);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        src->ca_file = cfg->mqtt_tls_ca_file;
        src->cert_file = cfg->mqtt_tls_cert_file;
        src->key_file = cfg->mqtt_tls_key_file;
        src->tls = !strncmp(cfg->mqtt_uri, "ssl://", 6) || !strncmp(cfg->mqtt_uri, "mqtts://", 8);
        src->verify = strcmp(cfg->mqtt_tls_verify, "no") != 0;
        src->ntopics = (int)tg_config_subscriptions(cfg, subs);
        for (i = 0; i < src->ntopics; i++) {
                src->qos[i] = subs[i].qos;
                if (!(src->topics[i] = strdup(subs[i].value[TG_SUB_TOPIC]))) {
                        source_free(src);
                        snprintf(errstr, errstr_size, "out of memory");
                        return NULL;
                }
        }
        src->on_message = on_message;
        src->opaque = opaque;

        trace_level_base = tg_log_threshold >= TG_LOG_DEBUG ? MQTTASYNC_TRACE_PROTOCOL
                                                            : MQTTASYNC_TRACE_ERROR;
        atomic_store(&trace_src, src);
        MQTTAsync_setTraceCallback(on_trace);
        MQTTAsync_setTraceLevel(trace_level_base);

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
        MQTTAsync_setCallbacks(src->client, src, on_connection_lost, on_paho_message, NULL);
        MQTTAsync_setConnected(src->client, src, on_connected);

        /* A persistent session: while the gateway is away the broker queues
         * QoS 1 messages for this client id. */
        conn.cleansession = 0;
        conn.keepAliveInterval = (int)(cfg->mqtt_keepalive_ms / 1000);
        conn.automaticReconnect = 0; /* see retry_later() */
        /* Not MQTTVERSION_DEFAULT: with it, Paho answers a lost 3.1.1
         * connection by connecting again at once with MQTT 3.1 ("more to
         * try"), on its own, with the connect callbacks it cleared after the
         * first success. When that connection won the race with ours nobody
         * was told: no subscription, no retry pending, connected 0 for good.
         * One version, no fallback: every reconnection is retry_later()'s. */
        conn.MQTTVersion = MQTTVERSION_3_1_1;
        conn.connectTimeout = 10;
        conn.onSuccess = on_connect_ok;
        conn.onFailure = on_connect_fail;
        conn.context = src;
        if (src->username[0]) {
                conn.username = src->username;
                conn.password = src->password[0] ? src->password : NULL;
        }
        src->conn = conn;
        if (src->tls) {
                tls_setup(src, cfg);
                src->conn.ssl = &src->ssl;
                if (!src->verify)
                        tg_warn("mqtt: mqtt.tls.verify is no: the broker's certificate is "
                                "not checked, anyone on the path can read and forge the "
                                "traffic");
        }
        src->backoff_ms = BACKOFF_MIN_MS;
        src->jitter_seed = (unsigned)getpid() ^ (unsigned)tg_monotonic_ms();
        attempt_start(src);
        rc = MQTTAsync_connect(src->client, &src->conn);
        if (rc != MQTTASYNC_SUCCESS) {
                attempt_end(src);
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
        atomic_store(&trace_src, NULL);
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
        out->session_takeovers_suspected = atomic_load(&src->takeovers_suspected);
}

/* Sparkplug rebirth requests (docs/sparkplug.md 5.5): QoS 0, not retained.
 * Paho copies the payload and sends from its own thread; nothing waits. */
int tg_mqtt_source_publish(tg_mqtt_source_t *src, const char *topic, const void *payload,
                           size_t len) {
        MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        int rc;

        if (!src || atomic_load(&src->stopping) || !MQTTAsync_isConnected(src->client))
                return -ENOTCONN;
        if (len > 0x7fffffffu) /* Paho takes an int */
                return -EMSGSIZE;
        msg.payload = (void *)payload;
        msg.payloadlen = (int)len;
        msg.qos = 0;
        msg.retained = 0;
        rc = MQTTAsync_sendMessage(src->client, topic, &msg, &opts);
        if (rc != MQTTASYNC_SUCCESS) {
                tg_warn_limited("mqtt: publish to %s not sent: %s", topic,
                                MQTTAsync_strerror(rc));
                return -EIO;
        }
        return 0;
}
