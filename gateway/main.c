/* main.c - the tumblegate daemon: options, start-up, the main loop and an orderly shutdown. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "clock.h"
#include "config.h"
#include "kafka_sink.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_source.h"
#include "pipeline.h"
#include "spool.h"

#ifndef TG_VERSION
#define TG_VERSION "dev"
#endif

#define STATS_INTERVAL_MS 10000
#define TICK_MS 100

static volatile int stop_requested;
static volatile int reopen_log;

static void on_signal(int sig) {
        if (sig == SIGHUP)
                reopen_log = 1;
        else
                stop_requested = 1;
}

static void usage(FILE *out) {
        fprintf(out,
                "Usage: tumblegate [OPTION]...\n"
                "MQTT-to-Kafka edge gateway: forwards every sensor reading and the\n"
                "aggregates of event-time tumbling windows per sensor.\n"
                "\n"
                "  -c, --config FILE      YAML configuration file\n"
                "  -s, --set KEY=VALUE    set one option (after the file; repeatable)\n"
                "      --check-config     validate the configuration, print it, exit\n"
                "      --help-config      list every option (Markdown), exit\n"
                "  -h, --help             this help\n"
                "  -V, --version          version\n"
                "\n"
                "With no configuration the gateway subscribes at tcp://127.0.0.1:1883\n"
                "and produces to 127.0.0.1:9092. Signals: SIGTERM/SIGINT stop (open\n"
                "windows are saved to state.dir and restored at the next start),\n"
                "SIGHUP reopens log.file.\n");
}

/* Topics longer than the spool takes (MQTT allows no longer, so never,
 * short of a broker that breaks the protocol): refused, not cut short. */
static _Atomic unsigned long long topics_too_long;

/* The worker's Sparkplug rebirth requests go out through the MQTT client. */
static int publish_message(void *opaque, const char *topic, const void *payload, size_t len) {
        return tg_mqtt_source_publish(opaque, topic, payload, len);
}

/* mqtt_source's message callback: the pipeline wants a NUL-terminated
 * topic. On Paho's thread. */
static void ingest_message(void *opaque, const char *topic, size_t topic_len,
                           const void *payload, size_t len, int qos, int dup) {
        char name[TG_SPOOL_TOPIC_MAX + 1];

        if (topic_len > TG_SPOOL_TOPIC_MAX) {
                tg_err("mqtt: a message with a %zu-byte topic refused: the longest taken is "
                       "%u bytes (%llu refused so far)", topic_len, TG_SPOOL_TOPIC_MAX,
                       ++topics_too_long);
                return;
        }
        memcpy(name, topic, topic_len);
        name[topic_len] = '\0';
        tg_pipeline_ingest(opaque, name, topic_len, payload, len, qos, dup);
}

/* The state directory must exist and be writable before anything is taken
 * from MQTT: a gateway that cannot save its state says so at once. */
static int state_dir_ready(const char *dir, char *errstr, size_t size) {
        char path[4096];
        char *p;

        snprintf(path, sizeof(path), "%s", dir);
        for (p = path + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(path, 0750) && errno != EEXIST)
                        goto fail;
                *p = '/';
        }
        if (mkdir(path, 0750) && errno != EEXIST)
                goto fail;
        if (access(dir, W_OK | X_OK))
                goto fail;
        return 0;
fail:
        snprintf(errstr, size, "state.dir %s: %s (set state.dir to a writable directory)",
                 dir, strerror(errno));
        return -errno;
}

static void log_stats(tg_pipeline_t *p, tg_kafka_sink_t *sink,
                      tg_mqtt_source_t *mqtt) {
        struct tg_pipeline_counters c;
        struct tg_sink_counters k;
        struct tg_mqtt_counters m = {0};
        uint64_t refused = 0;
        int i;

        tg_pipeline_counters(p, &c);
        tg_kafka_sink_counters(sink, &k);
        if (mqtt)
                tg_mqtt_source_counters(mqtt, &m);
        for (i = 1; i < TG_DECODE__COUNT; i++)
                refused += c.decode_failed[i];
        tg_info("stats: received=%llu decoded=%llu refused=%llu dead_lettered=%llu "
                "late=%llu future=%llu "
                "forwarded=%llu windows=%llu delivered_raw=%llu delivered_agg=%llu "
                "failed=%llu in_flight=%d sensors=%llu evicted=%llu table_full=%llu "
                "mqtt_connects=%llu spooled=%llu spool_bytes=%llu replayed=%llu "
                "checkpoints=%llu",
                (unsigned long long)c.received, (unsigned long long)c.decoded,
                (unsigned long long)refused, (unsigned long long)c.dead_lettered,
                (unsigned long long)c.window.late,
                (unsigned long long)c.window.future, (unsigned long long)c.forwarded,
                (unsigned long long)c.window.windows_emitted,
                (unsigned long long)k.delivered[TG_SINK_RAW],
                (unsigned long long)k.delivered[TG_SINK_AGG],
                (unsigned long long)(k.failed[TG_SINK_RAW] + k.failed[TG_SINK_AGG] +
                                     c.forward_failed),
                tg_kafka_sink_in_flight(sink), (unsigned long long)c.window.sensors_active,
                (unsigned long long)c.window.evicted, (unsigned long long)c.window.table_full,
                (unsigned long long)m.connects, (unsigned long long)c.spooled,
                (unsigned long long)c.spool_bytes, (unsigned long long)c.replayed,
                (unsigned long long)c.checkpoints);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                {"config", required_argument, NULL, 'c'},
                {"set", required_argument, NULL, 's'},
                {"check-config", no_argument, NULL, 'C'},
                {"help-config", no_argument, NULL, 'H'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {NULL, 0, NULL, 0},
        };
        struct tg_config *cfg;
        tg_kafka_sink_t *sink = NULL;
        struct tg_sink sink_iface;
        tg_pipeline_t *pipeline = NULL;
        tg_mqtt_source_t *mqtt = NULL;
        tg_metrics_t *metrics = NULL;
        const char *config_path = NULL;
        char errstr[1024];
        int check_only = 0, opt, i, rc = 1, left;
        enum tg_log_level level;
        struct sigaction sa;
        int64_t next_stats, drain_deadline;

        tg_log_set_ident("tumblegate");
        if (!(cfg = tg_config_new())) {
                fprintf(stderr, "tumblegate: out of memory\n");
                return 1;
        }

        /* First pass: options that end at once, and the file. */
        while ((opt = getopt_long(argc, argv, "c:s:hV", longopts, NULL)) != -1) {
                switch (opt) {
                case 'c':
                        config_path = optarg;
                        break;
                case 's':
                        break;
                case 'C':
                        check_only = 1;
                        break;
                case 'H':
                        tg_config_reference(stdout);
                        tg_config_destroy(cfg);
                        return 0;
                case 'h':
                        usage(stdout);
                        tg_config_destroy(cfg);
                        return 0;
                case 'V':
                        printf("tumblegate %s\n", TG_VERSION);
                        tg_config_destroy(cfg);
                        return 0;
                default:
                        usage(stderr);
                        tg_config_destroy(cfg);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "tumblegate: unexpected argument '%s'\n", argv[optind]);
                tg_config_destroy(cfg);
                return 2;
        }
        if (config_path && tg_config_load_file(cfg, config_path, errstr, sizeof(errstr))) {
                fprintf(stderr, "tumblegate: %s\n", errstr);
                tg_config_destroy(cfg);
                return 2;
        }
        /* Second pass: --set, in order, over the file. */
        optind = 1;
        while ((opt = getopt_long(argc, argv, "c:s:hV", longopts, NULL)) != -1) {
                char *eq, origin[16];

                if (opt != 's')
                        continue;
                if (!(eq = strchr(optarg, '='))) {
                        fprintf(stderr, "tumblegate: --set %s: expected KEY=VALUE\n", optarg);
                        tg_config_destroy(cfg);
                        return 2;
                }
                *eq = '\0';
                snprintf(origin, sizeof(origin), "--set");
                if (tg_config_set(cfg, optarg, eq + 1, origin, errstr, sizeof(errstr))) {
                        fprintf(stderr, "tumblegate: %s\n", errstr);
                        tg_config_destroy(cfg);
                        return 2;
                }
                *eq = '=';
        }
        if (tg_config_validate(cfg, errstr, sizeof(errstr)) ||
            tg_kafka_sink_check_config(cfg, errstr, sizeof(errstr)) ||
            tg_config_check_files(cfg, errstr, sizeof(errstr))) {
                fprintf(stderr, "tumblegate: %s\n", errstr);
                tg_config_destroy(cfg);
                return 2;
        }
        if (check_only) {
                tg_config_dump(cfg, stdout);
                printf("# configuration OK\n");
                tg_config_destroy(cfg);
                return 0;
        }

        tg_log_level_parse(cfg->log_level, &level);
        tg_log_set_level(level);
        if (cfg->log_file[0] && (i = tg_log_open(cfg->log_file))) {
                fprintf(stderr, "tumblegate: log.file %s: %s\n", cfg->log_file,
                        strerror(-i));
                tg_config_destroy(cfg);
                return 1;
        }

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        tg_info("tumblegate %s starting: mqtt %s -> kafka %s (raw '%s', agg '%s', dlq '%s')",
                TG_VERSION, cfg->mqtt_uri, cfg->kafka_bootstrap_servers,
                cfg->topic_raw, cfg->topic_agg, cfg->topic_dlq);

        if (state_dir_ready(cfg->state_dir, errstr, sizeof(errstr)) ||
            !(sink = tg_kafka_sink_new(cfg, errstr, sizeof(errstr))) ||
            (tg_kafka_sink_iface(sink, &sink_iface),
             !(pipeline = tg_pipeline_new(cfg, &sink_iface, &tg_clock_realtime, &stop_requested,
                                          errstr, sizeof(errstr)))) ||
            !(mqtt = tg_mqtt_source_new(cfg, ingest_message, pipeline, errstr,
                                        sizeof(errstr))) ||
            (cfg->metrics_listen[0] &&
             !(metrics = tg_metrics_new(cfg, pipeline, sink, mqtt, errstr,
                                        sizeof(errstr))))) {
                tg_err("cannot start: %s", errstr);
                goto out;
        }
        tg_pipeline_set_publish(pipeline, publish_message, mqtt);

        next_stats = tg_monotonic_ms() + STATS_INTERVAL_MS;
        while (!stop_requested) {
                /* Kafka's deliveries are the forwarder's to serve. */
                tg_metrics_serve_for(metrics, TICK_MS);
                tg_pipeline_tick(pipeline);
                tg_mqtt_source_tick(mqtt);
                tg_log_limited_flush();
                if (reopen_log) {
                        reopen_log = 0;
                        if (cfg->log_file[0] && (i = tg_log_open(cfg->log_file)))
                                tg_err("log.file %s: cannot reopen: %s", cfg->log_file,
                                       strerror(-i));
                }
                if (tg_monotonic_ms() >= next_stats) {
                        log_stats(pipeline, sink, mqtt);
#ifdef __GLIBC__
                        /* glibc keeps what the threads free (Paho's message
                         * copies, librdkafka's records) in per-thread arenas
                         * and returns little of it by itself: RSS crept up
                         * by 2-3 MiB over 10 minutes of churning sensor ids
                         * (bench/soak.sh). Give the free pages back. */
                        malloc_trim(0);
#endif
                        next_stats += STATS_INTERVAL_MS;
                }
        }
        tg_info("stopping: no new messages taken; draining to Kafka and saving "
                "open windows (shutdown.timeout %lld ms)", (long long)cfg->shutdown_timeout_ms);
        rc = 0;
out:
        /* Order matters: stop the input first, so nothing arrives while the
         * windows are saved and the producer drains. */
        drain_deadline = tg_monotonic_ms() + cfg->shutdown_timeout_ms;
        tg_metrics_destroy(metrics);
        if (pipeline) {
                log_stats(pipeline, sink, mqtt);
                tg_pipeline_set_publish(pipeline, NULL, NULL); /* before the client goes */
        }
        tg_mqtt_source_destroy(mqtt);
        left = tg_pipeline_destroy(pipeline, drain_deadline);
        left += tg_kafka_sink_destroy(sink, tg_ms_until(drain_deadline));
        /* With durability disk what Kafka did not confirm is still in the
         * spool: a drain cut short loses nothing. With memory it is lost. */
        if (left > 0 && !strcmp(cfg->durability, "memory")) {
                tg_err("up to %d record(s) lost: Kafka did not confirm them within "
                       "shutdown.timeout (durability memory)", left);
                rc = 1;
        }
        tg_log_limited_flush_all();
        tg_info("stopped");
        tg_config_destroy(cfg);
        return rc;
}
