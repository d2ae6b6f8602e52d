/* bare_sub.c - the floor for bench/e2e.sh and bench/footprint.sh: a Paho MQTTAsync subscriber that receives, counts and discards. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage: bare_sub URI CLIENT_ID TOPIC QOS COUNT IDLE_S
 *
 * Subscribes the way gateway/mqtt_source.c does (same library, MQTT 3.1.1,
 * a persistent session: cleansession 0, no client-side persistence, the
 * message callback on Paho's receive thread, PUBACK when it returns) and
 * does nothing with a message but count it. It prints "subscribed" once the
 * broker has granted the subscription, then exits when it has COUNT
 * messages, or when IDLE_S seconds pass with none arriving (from the first
 * message on, or from subscribing if none came), printing
 *
 *   received N cpu_us U maxrss_kb R end_s T
 *
 * U is the process's user + system CPU (all threads, getrusage) from the
 * granted subscription to the end, R its peak resident set (ru_maxrss,
 * the same figure as /proc/PID/status VmHWM), T the wall-clock time
 * (CLOCK_REALTIME, seconds) at which the COUNTth message arrived, or, after
 * an idle timeout, when the last one was seen (to 0.1 s). bench/e2e.sh
 * measures the gateway over the same span from /proc, and takes the end of
 * the run from T rather than from the exit, which waits for the disconnect.
 *
 * Built a second time as floor_sub (TG_FLOOR), it also starts, and leaves
 * idle, what else the gateway links and starts: a librdkafka producer
 * configured as gateway/kafka_sink.c configures it, connected to the
 * brokers in TG_FLOOR_KAFKA, and a libmicrohttpd daemon on 127.0.0.1:0;
 * the gateway's other libraries are linked (so loaded) too. Its resident
 * memory is what the gateway's dependencies cost before any code of ours
 * (bench/footprint.sh).
 */
#include <MQTTAsync.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef TG_FLOOR
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>

static enum MHD_Result floor_answer(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *data, size_t *size, void **state) {
        (void)cls, (void)c, (void)url, (void)method, (void)version, (void)data, (void)size,
                (void)state;
        return MHD_NO;
}

/* The gateway's other libraries, started and left idle. */
static int floor_start(void) {
        static const char *const conf_kv[][2] = {
                {"compression.type", "lz4"},       {"enable.idempotence", "true"},
                {"acks", "all"},                   {"message.timeout.ms", "0"},
                {"linger.ms", "20"},               {"statistics.interval.ms", "2000"},
                {"queue.buffering.max.messages", "10000"},
                {"queue.buffering.max.kbytes", "4096"},
        };
        const char *brokers = getenv("TG_FLOOR_KAFKA");
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        size_t i;

        if (!brokers) {
                fprintf(stderr, "floor_sub: set TG_FLOOR_KAFKA to the Kafka brokers\n");
                return -1;
        }
        if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)))
                goto fail;
        for (i = 0; i < sizeof(conf_kv) / sizeof(conf_kv[0]); i++)
                if (rd_kafka_conf_set(conf, conf_kv[i][0], conf_kv[i][1], err, sizeof(err)))
                        goto fail;
        if (!rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))
                goto fail;
        if (!MHD_start_daemon(MHD_NO_FLAG, 0, NULL, NULL, floor_answer,
                              NULL, MHD_OPTION_END)) {
                fprintf(stderr, "floor_sub: libmicrohttpd did not start\n");
                return -1;
        }
        return 0;
fail:
        fprintf(stderr, "floor_sub: librdkafka: %s\n", err);
        return -1;
}
#endif

struct bare {
        MQTTAsync client;
        const char *topic;
        int qos;
};

static _Atomic unsigned long received;
static unsigned long want;
static _Atomic int subscribed, failed, done;
static struct timespec done_at; /* the COUNTth message's arrival; read once done is set */

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg) {
        (void)context;
        (void)topic_len;
        if (atomic_fetch_add_explicit(&received, 1, memory_order_relaxed) + 1 == want) {
                clock_gettime(CLOCK_REALTIME, &done_at);
                atomic_store_explicit(&done, 1, memory_order_release);
        }
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1;
}

static void on_subscribe_ok(void *context, MQTTAsync_successData *resp) {
        (void)context;
        if (resp && resp->alt.qos == 0x80) {
                fprintf(stderr, "bare_sub: subscription refused by the broker\n");
                atomic_store(&failed, 1);
                return;
        }
        atomic_store(&subscribed, 1);
}

static void on_fail(const char *what, MQTTAsync_failureData *resp) {
        fprintf(stderr, "bare_sub: %s failed (code %d%s%s)\n", what, resp ? resp->code : 0,
                resp && resp->message ? ": " : "", resp && resp->message ? resp->message : "");
        atomic_store(&failed, 1);
}

static void on_subscribe_fail(void *context, MQTTAsync_failureData *resp) {
        (void)context;
        on_fail("subscribe", resp);
}

static void on_connect_fail(void *context, MQTTAsync_failureData *resp) {
        (void)context;
        on_fail("connect", resp);
}

static void on_connect_ok(void *context, MQTTAsync_successData *resp) {
        struct bare *b = context;
        MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;

        (void)resp;
        opts.onSuccess = on_subscribe_ok;
        opts.onFailure = on_subscribe_fail;
        if (MQTTAsync_subscribe(b->client, b->topic, b->qos, &opts) != MQTTASYNC_SUCCESS)
                atomic_store(&failed, 1);
}

static void on_connection_lost(void *context, char *cause) {
        (void)context;
        fprintf(stderr, "bare_sub: connection lost%s%s\n", cause ? ": " : "", cause ? cause : "");
        atomic_store(&failed, 1);
}

static long long cpu_us(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
               ru.ru_stime.tv_usec;
}

static double now_s(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        struct bare b;
        MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer;
        MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
        unsigned long seen = 0, n;
        double idle_s, last, last_real, end;
        long long cpu0;
        struct rusage ru;
        int rc;

        if (argc != 7) {
                fprintf(stderr, "usage: bare_sub URI CLIENT_ID TOPIC QOS COUNT IDLE_S\n");
                return 2;
        }
        b.topic = argv[3];
        b.qos = atoi(argv[4]);
        want = strtoul(argv[5], NULL, 10);
        idle_s = atof(argv[6]);
#ifdef TG_FLOOR
        if (floor_start())
                return 1;
#endif

        copts.MQTTVersion = MQTTVERSION_3_1_1;
        rc = MQTTAsync_createWithOptions(&b.client, argv[1], argv[2], MQTTCLIENT_PERSISTENCE_NONE,
                                         NULL, &copts);
        if (rc != MQTTASYNC_SUCCESS) {
                fprintf(stderr, "bare_sub: %s: %s\n", argv[1], MQTTAsync_strerror(rc));
                return 1;
        }
        MQTTAsync_setCallbacks(b.client, NULL, on_connection_lost, on_message, NULL);
        conn.cleansession = 0;
        conn.keepAliveInterval = 30;
        conn.connectTimeout = 10;
        conn.onSuccess = on_connect_ok;
        conn.onFailure = on_connect_fail;
        conn.context = &b;
        if ((rc = MQTTAsync_connect(b.client, &conn)) != MQTTASYNC_SUCCESS) {
                fprintf(stderr, "bare_sub: connect: %s\n", MQTTAsync_strerror(rc));
                return 1;
        }
        while (!atomic_load(&subscribed)) {
                if (atomic_load(&failed))
                        return 1;
                usleep(10 * 1000);
        }
        cpu0 = cpu_us();
        printf("subscribed\n");
        fflush(stdout);

        /* Polling the counter 10 times a second costs nothing measurable
         * and keeps the receive path free of any signalling. */
        last = now_s(CLOCK_MONOTONIC);
        last_real = now_s(CLOCK_REALTIME);
        while (!atomic_load_explicit(&done, memory_order_acquire) && !atomic_load(&failed)) {
                n = atomic_load_explicit(&received, memory_order_relaxed);
                if (n != seen) {
                        seen = n;
                        last = now_s(CLOCK_MONOTONIC);
                        last_real = now_s(CLOCK_REALTIME);
                } else if (now_s(CLOCK_MONOTONIC) - last >= idle_s) {
                        break;
                }
                usleep(100 * 1000);
        }
        n = atomic_load_explicit(&received, memory_order_relaxed);
        end = atomic_load_explicit(&done, memory_order_acquire)
                      ? (double)done_at.tv_sec + (double)done_at.tv_nsec / 1e9
                      : last_real;
        printf("received %lu cpu_us %lld", n, cpu_us() - cpu0);
        getrusage(RUSAGE_SELF, &ru);
        printf(" maxrss_kb %ld end_s %.6f\n", ru.ru_maxrss, end);
        fflush(stdout);
        dopts.timeout = 1000;
        MQTTAsync_disconnect(b.client, &dopts);
        MQTTAsync_destroy(&b.client);
        return atomic_load(&failed) ? 1 : 0;
}
