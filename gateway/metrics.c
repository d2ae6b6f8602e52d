/* metrics.c - the HTTP endpoint (libmicrohttpd): every counter as Prometheus text, liveness and readiness. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "metrics.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "status_page.h"

#ifndef TG_VERSION
#define TG_VERSION "dev"
#endif

struct tg_metrics {
        struct MHD_Daemon *mhd;
        tg_pipeline_t *pipeline;
        tg_kafka_sink_t *sink;
        tg_mqtt_source_t *mqtt;
        int port;
        const struct tg_config *cfg;
        int loopback;                   /* bound to a loopback address only */
        struct tg_page_rates rates;     /* the status page's, main thread */
};

static const char *const sink_topic_names[TG_SINK__COUNT] = {"raw", "agg", "late", "dlq",
                                                                    "compressed"};

/* --- exposition ----------------------------------------------------------- */

static void head(FILE *out, const char *name, const char *type, const char *help) {
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric without labels. */
struct plain {
        const char *name, *type, *help;
        uint64_t value;
};

static void plain(FILE *out, const struct plain *rows, size_t n) {
        size_t i;

        for (i = 0; i < n; i++) {
                head(out, rows[i].name, rows[i].type, rows[i].help);
                fprintf(out, "%s %llu\n", rows[i].name, (unsigned long long)rows[i].value);
        }
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(FILE *out, const char *v) {
        fputc('"', out);
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        fprintf(out, "\\%c", *v);
                else if (*v == '\n')
                        fputs("\\n", out);
                else
                        fputc(*v, out);
        }
        fputc('"', out);
}

void tg_metrics_render(tg_pipeline_t *pipeline, tg_kafka_sink_t *sink,
                       tg_mqtt_source_t *mqtt, FILE *out) {
        struct tg_pipeline_messages m;
        struct tg_pipeline_counters c;
        struct tg_sink_counters k;
        struct tg_mqtt_counters q = {0};
        size_t i;
        int t;

        tg_pipeline_messages(pipeline, &m);
        tg_pipeline_counters(pipeline, &c);
        tg_kafka_sink_counters(sink, &k);
        if (mqtt)
                tg_mqtt_source_counters(mqtt, &q);

        head(out, "tumblegate_build_info", "gauge", "Version of the running gateway.");
        fprintf(out, "tumblegate_build_info{version=\"%s\"} 1\n", TG_VERSION);

        /* Messages: sum(received) - redelivered - lost + recovered =
         * forwarded + dead_lettered + failed + skipped + in_flight. */
        head(out, "tumblegate_messages_received_total", "counter",
             "MQTT messages taken, per subscription.");
        for (i = 0; i < m.nsubs; i++) {
                fprintf(out, "tumblegate_messages_received_total{subscription=\"%zu\",filter=",
                        i);
                label_value(out, tg_pipeline_sub_filter(pipeline, i));
                fprintf(out, "} %llu\n", (unsigned long long)m.received[i]);
        }
        {
                const struct plain rows[] = {
                        {"tumblegate_messages_redelivered_total", "counter",
                         "MQTT redeliveries (DUP) of messages already spooled: "
                         "acknowledged, not kept twice.", m.redeliveries},
                        {"tumblegate_messages_lost_total", "counter",
                         "Messages acknowledged but not spooled (stopping while the spool "
                         "was full, I/O error).", m.lost},
                        {"tumblegate_messages_recovered_total", "counter",
                         "Unconfirmed messages found in the spool at start.", m.recovered},
                        {"tumblegate_messages_forwarded_total", "counter",
                         "Messages whose readings Kafka confirmed on the raw topic.",
                         m.forwarded},
                        {"tumblegate_messages_dead_lettered_total", "counter",
                         "Messages with no valid reading, refused (and sent to the "
                         "dead-letter topic).", m.dead_lettered},
                        {"tumblegate_messages_failed_total", "counter",
                         "Messages with a record Kafka or librdkafka refused for good.",
                         m.failed},
                        {"tumblegate_messages_skipped_total", "counter",
                         "Spooled messages never read: dropped by spool.full drop-oldest, "
                         "or corrupt; or expired (MQTT 5).", m.skipped},
                        {"tumblegate_messages_in_flight", "gauge",
                         "Messages taken and not yet confirmed (spool sequence numbers).",
                         m.in_flight},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }

        {
                const struct plain rows[] = {
                        {"tumblegate_readings_decoded_total", "counter",
                         "Readings decoded from messages (a SenML pack may hold several).",
                         c.decoded},
                        {"tumblegate_readings_arrival_time_total", "counter",
                         "Readings without event time, stamped with their arrival time.",
                         c.ts_from_arrival},
                        {"tumblegate_readings_property_time_total", "counter",
                         "Readings without event time in the payload, timed by the MQTT 5 user "
                         "property timestamp.property names.", c.ts_from_property},
                        {"tumblegate_messages_expired_total", "counter",
                         "MQTT 5 messages whose Message Expiry Interval passed while they "
                         "waited in the spool: not forwarded (counted as skipped).",
                         c.expired},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }
        head(out, "tumblegate_refused_total", "counter",
             "Payloads or readings refused, per reason (the dead-letter header tg.reason).");
        for (i = 1; i < TG_DECODE__COUNT; i++)
                if (i != TG_DECODE_TS_OUT_OF_RANGE) /* one series with the engine's, below */
                        fprintf(out, "tumblegate_refused_total{reason=\"%s\"} %llu\n",
                                tg_decode_err_name((enum tg_decode_err)i),
                                (unsigned long long)c.decode_failed[i]);
        fprintf(out, "tumblegate_refused_total{reason=\"future_timestamp\"} %llu\n",
                (unsigned long long)c.window.future);
        fprintf(out, "tumblegate_refused_total{reason=\"timestamp_out_of_range\"} %llu\n",
                (unsigned long long)(c.window.out_of_range +
                                     c.decode_failed[TG_DECODE_TS_OUT_OF_RANGE]));
        if (c.sparkplug) { /* its anomalies, by their dead-letter reasons (docs/sparkplug.md 9) */
                static const enum tg_sp_reason own[] = {
                        TG_SP_BAD_TOPIC, TG_SP_NO_BIRTH, TG_SP_UNKNOWN_ALIAS, TG_SP_SEQ_GAP,
                        TG_SP_BDSEQ_MISMATCH, TG_SP_TABLE_FULL,
                };

                for (i = 0; i < sizeof(own) / sizeof(*own); i++)
                        fprintf(out, "tumblegate_refused_total{reason=\"%s\"} %llu\n",
                                tg_sp_reason_name(own[i]),
                                (unsigned long long)c.sp.anomalies[own[i]]);
                head(out, "tumblegate_sparkplug_messages_total", "counter",
                     "Sparkplug B messages read, per type (docs/sparkplug.md).");
                for (i = 0; i < TG_SP_STATE; i++)
                        if (i != TG_SP_NCMD && i != TG_SP_DCMD)
                                fprintf(out, "tumblegate_sparkplug_messages_total{type=\"%s\"} "
                                        "%llu\n", tg_sp_type_name((enum tg_sp_type)i),
                                        (unsigned long long)c.sp.messages[i]);
                head(out, "tumblegate_sparkplug_ignored_total", "counter",
                     "Sparkplug B messages ignored: primary hosts' STATE, commands.");
                for (i = TG_SP_NCMD; i <= TG_SP_STATE; i++)
                        fprintf(out, "tumblegate_sparkplug_ignored_total{type=\"%s\"} %llu\n",
                                tg_sp_type_name((enum tg_sp_type)i),
                                (unsigned long long)c.sp.messages[i]);
                {
                        const struct plain rows[] = {
                                {"tumblegate_sparkplug_rebirths_requested_total", "counter",
                                 "Rebirth requests (NCMD Node Control/Rebirth) published.",
                                 c.sp.rebirths_requested - c.sp_rebirths_failed},
                                {"tumblegate_sparkplug_rebirths_limited_total", "counter",
                                 "Rebirth requests held back by sparkplug.rebirth_interval.",
                                 c.sp.rebirths_limited},
                                {"tumblegate_sparkplug_rebirths_failed_total", "counter",
                                 "Rebirth requests the MQTT client could not send.",
                                 c.sp_rebirths_failed},
                                {"tumblegate_sparkplug_deaths_total", "counter",
                                 "Death records produced (NDEATH, DDEATH).", c.sp_deaths},
                                {"tumblegate_sparkplug_metrics_raw_only_total", "counter",
                                 "Metrics in raw records only: not numeric, null, or no "
                                 "field or sensor for their name.", c.sp.metrics_raw_only},
                                {"tumblegate_sparkplug_names_too_long_total", "counter",
                                 "Of those, numeric metrics whose name is too long for a "
                                 "field or a sensor id.", c.sp.names_too_long},
                                {"tumblegate_sparkplug_evictions_total", "counter",
                                 "Edge node and device entries reused for a new id with the "
                                 "table full: not alive, least recently seen (a node with "
                                 "its devices, each counted).", c.sp.evictions},
                                {"tumblegate_sparkplug_nodes", "gauge",
                                 "Edge nodes and devices in the table (sparkplug.max_nodes).",
                                 c.sp.nodes},
                                {"tumblegate_sparkplug_metrics", "gauge",
                                 "Metrics named by births in the table (sparkplug.max_metrics).",
                                 c.sp.metrics},
                        };

                        plain(out, rows, sizeof(rows) / sizeof(*rows));
                }
        }
        {
                const struct plain rows[] = {
                        {"tumblegate_dead_letters_total", "counter",
                         "Records produced to the dead-letter topic.", c.dead_lettered},
                        {"tumblegate_readings_late_total", "counter",
                         "Readings whose window had closed: forwarded raw, not aggregated.",
                         c.window.late},
                        {"tumblegate_windows_emitted_total", "counter",
                         "Final window results produced.", c.window.windows_emitted},
                        {"tumblegate_window_updates_emitted_total", "counter",
                         "Running window results produced (window.emit: update).",
                         c.window.updates_emitted},
                        {"tumblegate_sensors_active", "gauge",
                         "Sensors in the window table.", c.window.sensors_active},
                        {"tumblegate_sensors_evicted_total", "counter",
                         "Sensors evicted from a full table (their windows emitted first).",
                         c.window.evicted},
                        {"tumblegate_sensors_rejected_total", "counter",
                         "Readings not windowed because the sensor table was full.",
                         c.window.table_full},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }
        head(out, "tumblegate_raw_values_total", "counter",
             "Field values under forward.mode (docs/downsample.md): sent, held back "
             "(not sent, or not yet), sent out of order (2.3), sent whole for want of "
             "room (2.5).");
        {
                const uint64_t v[] = {c.raw_values.points, c.raw_values.suppressed,
                                      c.raw_values.out_of_order, c.raw_values.untracked};
                static const char *const names[] = {"sent", "held_back", "out_of_order",
                                                    "untracked"};

                for (i = 0; i < 4; i++)
                        fprintf(out, "tumblegate_raw_values_total{outcome=\"%s\"} %llu\n",
                                names[i], (unsigned long long)v[i]);
        }
        {
                const struct plain rows[] = {
                        {"tumblegate_downsampled_records_total", "counter",
                         "Records of what forward.mode selects (exception, swinging-door).",
                         c.downsampled},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }
        head(out, "tumblegate_window_fields_dropped_total", "counter",
             "Field values not aggregated, per window: window.max_fields or "
             "window.max_field_names reached, or no wide window free (window.wide_windows).");
        fprintf(out, "tumblegate_window_fields_dropped_total{reason=\"limits\"} %llu\n",
                (unsigned long long)(c.window.fields_dropped - c.window.wide_refused));
        fprintf(out, "tumblegate_window_fields_dropped_total{reason=\"wide_windows\"} %llu\n",
                (unsigned long long)c.window.wide_refused);

        for (t = 0; t < 3; t++) {
                static const char *const names[] = {"produced", "delivered", "failed"};
                static const char *const helps[] = {
                        "Records handed to librdkafka, per topic.",
                        "Records Kafka confirmed (acks=all), per topic.",
                        "Records that failed for good, per topic.",
                };
                char name[64];
                int j;

                snprintf(name, sizeof(name), "tumblegate_kafka_%s_total", names[t]);
                head(out, name, "counter", helps[t]);
                for (j = 0; j < TG_SINK__COUNT; j++) {
                        const char *topic = tg_kafka_sink_topic_name(sink, j);
                        const uint64_t *v = t == 0 ? k.produced : t == 1 ? k.delivered : k.failed;

                        if (!topic)
                                continue;
                        fprintf(out, "%s{topic=\"%s\",name=", name, sink_topic_names[j]);
                        label_value(out, topic);
                        fprintf(out, "} %llu\n", (unsigned long long)v[j]);
                }
        }
        {
                const struct plain rows[] = {
                        {"tumblegate_kafka_queue_messages", "gauge",
                         "Records in librdkafka's queue, not yet confirmed.",
                         (uint64_t)tg_kafka_sink_in_flight(sink)},
                        {"tumblegate_kafka_queue_full_total", "counter",
                         "Records librdkafka's queue had no room for at first (they waited).",
                         k.queue_full},
                        {"tumblegate_kafka_reachable", "gauge",
                         "1 when a Kafka broker is reachable.",
                         (uint64_t)tg_kafka_sink_reachable(sink)},
                        {"tumblegate_kafka_stalled", "gauge",
                         "1 when records have waited 10 s with none confirmed though a "
                         "broker is up (too few in-sync replicas, no partition leader).",
                         (uint64_t)tg_kafka_sink_stalled(sink)},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }

        head(out, "tumblegate_event_to_delivery_seconds", "histogram",
             "Raw records: from the reading's event time to Kafka's confirmation.");
        for (i = 0; i < TG_SINK_LATENCY_BUCKETS; i++)
                fprintf(out, "tumblegate_event_to_delivery_seconds_bucket{le=\"%g\"} %llu\n",
                        (double)tg_sink_latency_bounds_ms[i] / 1000.0,
                        (unsigned long long)k.latency_le[i]);
        fprintf(out, "tumblegate_event_to_delivery_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)k.latency_count);
        fprintf(out, "tumblegate_event_to_delivery_seconds_sum %.3f\n",
                (double)k.latency_sum_ms / 1000.0);
        fprintf(out, "tumblegate_event_to_delivery_seconds_count %llu\n",
                (unsigned long long)k.latency_count);

        {
                const struct plain rows[] = {
                        {"tumblegate_spool_bytes", "gauge",
                         "Bytes of records in the spool.", c.spool_bytes},
                        {"tumblegate_spool_allocated_bytes", "gauge",
                         "Bytes the spool's segments take on disk (allocated whole).",
                         c.spool_allocated},
                        {"tumblegate_spool_fsyncs_total", "counter",
                         "fdatasync calls on spool segments.", c.spool_fsyncs},
                        {"tumblegate_input_held", "gauge",
                         "1 while MQTT messages are not acknowledged for want of spool "
                         "space (spool.max_bytes or a full disk).",
                         (uint64_t)c.input_held},
                        {"tumblegate_spool_records", "gauge",
                         "Messages in the spool not yet released by a checkpoint.",
                         c.spool_records},
                        {"tumblegate_spool_appended_total", "counter",
                         "Messages appended to the spool.", c.spooled},
                        {"tumblegate_spool_corrupt_records_total", "counter",
                         "Spool records that failed their CRC and were set aside.",
                         c.spool_corrupt},
                        {"tumblegate_spool_dropped_total", "counter",
                         "Spooled messages dropped by spool.full: drop-oldest.",
                         c.spool_dropped},
                        {"tumblegate_spool_full_waits_total", "counter",
                         "Times acknowledging paused because the spool was full.",
                         c.spool_full_waits},
                        {"tumblegate_replayed_total", "counter",
                         "Spooled messages forwarded again after a restart.", c.replayed},
                        {"tumblegate_checkpoints_total", "counter",
                         "Window checkpoints written.", c.checkpoints},
                        {"tumblegate_state_rejected_total", "counter",
                         "Window state files not used at start (old version, corrupt).",
                         c.state_rejected},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }

        {
                const struct plain rows[] = {
                        {"tumblegate_mqtt_connected", "gauge",
                         "1 when connected to the MQTT broker and subscribed.",
                         (uint64_t)(mqtt && tg_mqtt_source_ready(mqtt))},
                        {"tumblegate_mqtt_connects_total", "counter",
                         "Successful MQTT connections, the first included.", q.connects},
                        {"tumblegate_mqtt_connection_lost_total", "counter",
                         "MQTT connections lost (each followed by reconnection attempts).",
                         q.connection_lost},
                        {"tumblegate_mqtt_session_takeovers_suspected_total", "counter",
                         "MQTT connections lost within 5 s of connecting, the third in a row "
                         "or later: most likely another client with the same mqtt.client_id.",
                         q.session_takeovers_suspected},
                        {"tumblegate_mqtt_properties_dropped_total", "counter",
                         "MQTT 5 messages whose properties took more than 8 KiB or 32 user "
                         "properties: forwarded without their mqtt.* headers.",
                         q.properties_dropped},
                };

                plain(out, rows, sizeof(rows) / sizeof(*rows));
        }
}

int tg_metrics_ready(tg_pipeline_t *pipeline, tg_kafka_sink_t *sink,
                     tg_mqtt_source_t *mqtt, char *why, size_t why_size) {
        int mqtt_ok = mqtt && tg_mqtt_source_ready(mqtt);
        int reachable = tg_kafka_sink_reachable(sink);
        int kafka_ok = reachable && !tg_kafka_sink_stalled(sink);
        int spool_ok = !tg_pipeline_input_held(pipeline);

        snprintf(why, why_size, "%s%s%s%s%s", mqtt_ok ? "" : "mqtt: not connected",
                 !mqtt_ok && !kafka_ok ? "; " : "",
                 kafka_ok    ? ""
                 : reachable ? "kafka: nothing confirmed for 10 s (too few in-sync "
                               "replicas or no partition leader)"
                             : "kafka: no broker reachable",
                 (!mqtt_ok || !kafka_ok) && !spool_ok ? "; " : "",
                 spool_ok ? "" : "spool: full (spool.max_bytes or the disk): input held");
        return mqtt_ok && kafka_ok && spool_ok;
}

/* --- HTTP ------------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body,
                             size_t len, enum MHD_ResponseMemoryMode mode,
                             const char *type) {
        struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
        enum MHD_Result ret;

        if (!r) {
                if (mode == MHD_RESPMEM_MUST_FREE)
                        free(body);
                return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

/* The status page shows the sensors' values, which /metrics does not: with
 * status.password set it asks for HTTP basic authentication, and without
 * one it is served on a loopback address only (docs/security.md). */
static enum MHD_Result status_page(struct tg_metrics *m, struct MHD_Connection *c) {
        static const char no_password[] =
                "403: the status page is not served on a non-loopback metrics.listen without "
                "status.password (docs/security.md)\n";
        const char *want = m->cfg->status_password;
        char *body = NULL;
        size_t len = 0;
        FILE *out;

        if (want[0]) {
                char *pass = NULL, *user = MHD_basic_auth_get_username_password(c, &pass);
                int ok = user && pass && strlen(pass) == strlen(want) &&
                         strlen(user) == strlen(m->cfg->status_user) &&
                         !sodium_memcmp(pass, want, strlen(want)) &&
                         !sodium_memcmp(user, m->cfg->status_user, strlen(user));

                MHD_free(user);
                MHD_free(pass);
                if (!ok) {
                        struct MHD_Response *r = MHD_create_response_from_buffer(
                                13, "unauthorized\n", MHD_RESPMEM_PERSISTENT);
                        enum MHD_Result ret;

                        if (!r)
                                return MHD_NO;
                        ret = MHD_queue_basic_auth_fail_response(c, "tumblegate", r);
                        MHD_destroy_response(r);
                        return ret;
                }
        } else if (!m->loopback) {
                return reply(c, MHD_HTTP_FORBIDDEN, (char *)no_password, sizeof(no_password) - 1,
                             MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8");
        }
        if (!(out = open_memstream(&body, &len)))
                return MHD_NO;
        tg_status_page_render(out, m->pipeline, m->sink, m->mqtt, &m->rates,
                              m->cfg->spool_max_bytes);
        if (fclose(out)) {
                free(body);
                return MHD_NO;
        }
        return reply(c, MHD_HTTP_OK, body, len, MHD_RESPMEM_MUST_FREE,
                     "text/html; charset=utf-8");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size,
                                  void **state) {
        struct tg_metrics *m = cls;
        static const char *const text = "text/plain; charset=utf-8";
        char line[256];

        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n", 9,
                             MHD_RESPMEM_PERSISTENT, text);
        if (!strcmp(url, "/metrics")) {
                char *body = NULL;
                size_t len = 0;
                FILE *out = open_memstream(&body, &len);

                if (!out)
                        return MHD_NO;
                tg_metrics_render(m->pipeline, m->sink, m->mqtt, out);
                if (fclose(out)) {
                        free(body);
                        return MHD_NO;
                }
                return reply(c, MHD_HTTP_OK, body, len, MHD_RESPMEM_MUST_FREE,
                             "text/plain; version=0.0.4; charset=utf-8");
        }
        if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
                return status_page(m, c);
        if (!strcmp(url, "/healthz"))
                return reply(c, MHD_HTTP_OK, "ok\n", 3, MHD_RESPMEM_PERSISTENT, text);
        if (!strcmp(url, "/readyz")) {
                char why[128];
                int ready = tg_metrics_ready(m->pipeline, m->sink, m->mqtt, why, sizeof(why));
                int n = ready ? snprintf(line, sizeof(line), "ready\n")
                              : snprintf(line, sizeof(line), "not ready: %s\n", why);

                return reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, line,
                             (size_t)n, MHD_RESPMEM_MUST_COPY, text);
        }
        return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /, /metrics, /healthz, /readyz\n",
                     46, MHD_RESPMEM_PERSISTENT, text);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char line[512];

        vsnprintf(line, sizeof(line), fmt, ap);
        tg_warn("metrics: %s", line);
}

/* 127.0.0.0/8 or ::1 (an IPv4-mapped loopback too). */
static int is_loopback(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

                return IN6_IS_ADDR_LOOPBACK(a) ||
                       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
        }
        return 0;
}

tg_metrics_t *tg_metrics_new(const struct tg_config *cfg, tg_pipeline_t *pipeline,
                             tg_kafka_sink_t *sink, tg_mqtt_source_t *mqtt,
                             char *errstr, size_t errstr_size) {
        const char *listen = cfg->metrics_listen;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct tg_metrics *m;
        struct addrinfo *ai = NULL;
        const union MHD_DaemonInfo *info;
        char host[256], port[8];
        int p, r;
        unsigned flags = MHD_USE_ERROR_LOG;

        if (tg_parse_listen(listen, host, sizeof(host), &p)) {
                snprintf(errstr, errstr_size, "metrics.listen '%s': not host:port", listen);
                return NULL;
        }
        snprintf(port, sizeof(port), "%d", p);
        if ((r = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai))) {
                snprintf(errstr, errstr_size, "metrics.listen '%s': %s", listen,
                         gai_strerror(r));
                return NULL;
        }
        if (!(m = calloc(1, sizeof(*m)))) {
                freeaddrinfo(ai);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        m->pipeline = pipeline;
        m->sink = sink;
        m->mqtt = mqtt;
        m->cfg = cfg;
        /* An empty host listens on every address: not loopback. */
        m->loopback = host[0] && is_loopback(ai->ai_addr);
        if (ai->ai_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        /* No thread of its own: tg_metrics_serve_for() answers from the main
         * loop, which already reads every component's counters. */
        m->mhd = MHD_start_daemon(flags, (uint16_t)p, NULL, NULL, on_request, m,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                  MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                  MHD_OPTION_CONNECTION_LIMIT, 16u,
                                  MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                  MHD_OPTION_END);
        freeaddrinfo(ai);
        if (!m->mhd) {
                snprintf(errstr, errstr_size,
                         "metrics.listen %s: cannot listen there (address in use or not "
                         "local?); set metrics.listen to a free host:port, or empty to "
                         "turn the endpoint off", listen);
                free(m);
                return NULL;
        }
        info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
        m->port = info ? info->port : p;
        tg_info("metrics: serving http://%s%s%s:%d/metrics, /healthz and /readyz",
                strchr(host, ':') ? "[" : "", host[0] ? host : "0.0.0.0",
                strchr(host, ':') ? "]" : "", m->port);
        tg_info("status page: http://%s%s%s:%d/ (%s)", strchr(host, ':') ? "[" : "",
                host[0] ? host : "0.0.0.0", strchr(host, ':') ? "]" : "", m->port,
                cfg->status_password[0] ? "basic authentication, status.user/status.password"
                : m->loopback ? "loopback, no authentication"
                              : "refused: not loopback and no status.password");
        return m;
}

int tg_metrics_port(const tg_metrics_t *m) {
        return m->port;
}

void tg_metrics_serve_for(tg_metrics_t *m, int ms) {
        int64_t end = tg_monotonic_ms() + ms, left;

        while ((left = end - tg_monotonic_ms()) > 0) {
                fd_set rs, ws, es;
                MHD_socket max = 0;
                MHD_UNSIGNED_LONG_LONG mhd_ms;
                struct timeval tv;

                FD_ZERO(&rs);
                FD_ZERO(&ws);
                FD_ZERO(&es);
                if (!m || MHD_get_fdset(m->mhd, &rs, &ws, &es, &max) != MHD_YES) {
                        /* no endpoint, or a socket beyond FD_SETSIZE: sleep */
                        usleep((useconds_t)left * 1000);
                        if (m)
                                MHD_run(m->mhd);
                        return;
                }
                if (MHD_get_timeout(m->mhd, &mhd_ms) == MHD_YES && mhd_ms < (uint64_t)left)
                        left = (int64_t)mhd_ms;
                tv.tv_sec = left / 1000;
                tv.tv_usec = (left % 1000) * 1000;
                if (select(max + 1, &rs, &ws, &es, &tv) < 0) {
                        if (errno == EINTR)
                                return; /* a signal: the caller looks at it */
                        FD_ZERO(&rs);
                        FD_ZERO(&ws);
                        FD_ZERO(&es);
                }
                MHD_run_from_select(m->mhd, &rs, &ws, &es);
        }
}

void tg_metrics_destroy(tg_metrics_t *m) {
        if (!m)
                return;
        MHD_stop_daemon(m->mhd);
        free(m);
}
