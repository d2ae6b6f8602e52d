/* watch.c - tumblegate-watch: a live terminal table, one row per sensor, of the aggregates arriving in Kafka. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#ifndef TG_VERSION
#define TG_VERSION "dev"
#endif

#define MAX_ROWS 256 /* (sensor, field) pairs */

struct row {
        char sensor[65];
        char field[33];
        long long start, end, count;
        double min, max, mean;
};

static volatile int stop;
static struct row rows[MAX_ROWS];
static int nrows;
static long long total;

static void on_signal(int sig) {
        stop = 1;
}

static void fmt_time(long long ms, char *buf, size_t size) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, "%H:%M:%S", &tm);
}

/* Keep the newest window per (sensor, field); the table is small and the
 * order stable, sorted by sensor then field. */
static void upsert(const struct row *r) {
        int i;

        for (i = 0; i < nrows; i++) {
                int c = strcmp(rows[i].sensor, r->sensor);

                if (!c)
                        c = strcmp(rows[i].field, r->field);
                if (!c) {
                        if (r->start >= rows[i].start)
                                rows[i] = *r;
                        return;
                }
                if (c > 0)
                        break;
        }
        if (nrows == MAX_ROWS) {
                if (i == MAX_ROWS)
                        return;
                nrows--;
        }
        memmove(&rows[i + 1], &rows[i], (size_t)(nrows - i) * sizeof(*rows));
        rows[i] = *r;
        nrows++;
}

static int parse(const char *payload, size_t len, struct row *out, int max_out) {
        cJSON *root = cJSON_ParseWithLength(payload, len), *fields, *f;
        const cJSON *sensor, *start, *end, *count;
        int n = 0;

        if (!root)
                return 0;
        sensor = cJSON_GetObjectItemCaseSensitive(root, "sensor");
        start = cJSON_GetObjectItemCaseSensitive(root, "window_start");
        end = cJSON_GetObjectItemCaseSensitive(root, "window_end");
        count = cJSON_GetObjectItemCaseSensitive(root, "count");
        fields = cJSON_GetObjectItemCaseSensitive(root, "fields");
        if (!cJSON_IsString(sensor) || !cJSON_IsNumber(start) || !cJSON_IsNumber(end) ||
            !cJSON_IsNumber(count) || !cJSON_IsObject(fields)) {
                cJSON_Delete(root);
                return 0;
        }
        cJSON_ArrayForEach(f, fields) {
                struct row *r = &out[n];

                if (n == max_out)
                        break;
                snprintf(r->sensor, sizeof(r->sensor), "%s", sensor->valuestring);
                snprintf(r->field, sizeof(r->field), "%s", f->string);
                r->start = (long long)start->valuedouble;
                r->end = (long long)end->valuedouble;
                r->count = (long long)count->valuedouble;
                r->min = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "min"));
                r->max = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "max"));
                r->mean = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "mean"));
                n++;
        }
        cJSON_Delete(root);
        return n;
}

static void print_row(const struct row *r) {
        char s[16], e[16];

        fmt_time(r->start, s, sizeof(s));
        fmt_time(r->end, e, sizeof(e));
        printf("%-16s %s-%s %6lld  %-12s %10.3f %10.3f %10.3f\n", r->sensor, s, e,
               r->count, r->field, r->min, r->max, r->mean);
}

/* Like top: the cursor goes home and each line is rewritten and cleared
 * to its end, so the table changes in place without flicker; one row per
 * sensor, its fields side by side (the first three), newest window. */
static void redraw(const char *topic) {
        int i, nf = 0;
        char s[16], e[16];

        printf("\033[H");
        printf("tumblegate-watch: topic %s, %lld aggregate(s) so far (Ctrl-C to quit)\033[K\n"
               "\033[K\n", topic, total);
        printf("%-16s %-17s %6s", "sensor", "window (UTC)", "count");
        printf("  %s\033[K\n", "field: mean [min, max] ...");
        for (i = 0; i < nrows; i++) {
                if (i == 0 || strcmp(rows[i].sensor, rows[i - 1].sensor)) {
                        if (i)
                                printf("\033[K\n");
                        fmt_time(rows[i].start, s, sizeof(s));
                        fmt_time(rows[i].end, e, sizeof(e));
                        printf("%-16s %s-%s %6lld", rows[i].sensor, s, e, rows[i].count);
                        nf = 0;
                }
                if (nf++ < 3)
                        printf("  %s %.2f [%.2f, %.2f]", rows[i].field, rows[i].mean,
                               rows[i].min, rows[i].max);
        }
        printf("\033[K\n\033[J");
        fflush(stdout);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"from-beginning", no_argument, NULL, 'B'},
                {"lines", no_argument, NULL, 'l'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {NULL, 0, NULL, 0},
        };
        const char *brokers = "127.0.0.1:9092", *topic = "sensors.agg";
        int from_beginning = 0, lines = !isatty(STDOUT_FILENO), opt, dirty = 0;
        char errstr[512], group[64];
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *subs;
        rd_kafka_t *rk;
        int64_t last_draw = 0;

        while ((opt = getopt_long(argc, argv, "b:t:Blh", longopts, NULL)) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 't': topic = optarg; break;
                case 'B': from_beginning = 1; break;
                case 'l': lines = 1; break;
                case 'V': printf("tumblegate-watch %s\n", TG_VERSION); return 0;
                case 'h':
                        printf("Usage: tumblegate-watch [-b BROKERS] [-t TOPIC] [--from-beginning] [--lines]\n"
                               "A table refreshed in place, one row per sensor (like top): its newest\n"
                               "closed window, each field's mean [min, max].\n"
                               "  -b, --brokers      Kafka bootstrap servers (127.0.0.1:9092)\n"
                               "  -t, --topic        aggregates topic (sensors.agg)\n"
                               "  -B, --from-beginning  read the topic from its start\n"
                               "  -l, --lines        one line per window and field as it arrives, for\n"
                               "                     piping (the default when stdout is not a terminal)\n");
                        return 0;
                default:
                        return 2;
                }
        }

        conf = rd_kafka_conf_new();
        snprintf(group, sizeof(group), "tumblegate-watch-%d", (int)getpid());
        if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "auto.offset.reset",
                              from_beginning ? "earliest" : "latest", errstr, sizeof(errstr))) {
                fprintf(stderr, "tumblegate-watch: %s\n", errstr);
                return 2;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
                fprintf(stderr, "tumblegate-watch: %s\n", errstr);
                return 1;
        }
        rd_kafka_poll_set_consumer(rk);
        subs = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, subs);
        rd_kafka_topic_partition_list_destroy(subs);

        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        if (!lines) {
                printf("\033[2J"); /* once; redraw() then rewrites in place */
                redraw(topic);
        }
        while (!stop) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

                if (m) {
                        struct row got[16];
                        int n, i;

                        if (!m->err) {
                                n = parse(m->payload, m->len, got, 16);
                                if (n)
                                        total++;
                                for (i = 0; i < n; i++) {
                                        if (lines)
                                                print_row(&got[i]);
                                        else
                                                upsert(&got[i]);
                                }
                                dirty |= n > 0;
                                if (lines)
                                        fflush(stdout);
                        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                fprintf(stderr, "tumblegate-watch: %s\n",
                                        rd_kafka_message_errstr(m));
                        }
                        rd_kafka_message_destroy(m);
                }
                /* Redraw at most a few times a second: a burst of closing
                 * windows becomes one refresh. */
                if (!lines && dirty && tg_monotonic_ms() - last_draw > 300) {
                        redraw(topic);
                        dirty = 0;
                        last_draw = tg_monotonic_ms();
                }
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return 0;
}
