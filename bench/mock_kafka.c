/* mock_kafka.c - a librdkafka mock cluster in a process of its own, for bench/e2e.sh --mock. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage: mock_kafka [-p PARTITIONS] TOPIC...
 *
 * Starts a one-broker mock cluster (rdkafka_mock.h), creates every TOPIC
 * (the mock broker does not take the CreateTopics admin request, so the
 * gateway must run with topics.create=no and find its raw, agg and dlq
 * topics already there), prints its bootstrap servers on one line and
 * serves until SIGTERM or SIGINT. Its own process, so that the broker's
 * CPU is never counted as the gateway's.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
        (void)sig;
        stop = 1;
}

int main(int argc, char **argv) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_mock_cluster_t *mcluster;
        rd_kafka_t *rk;
        int partitions = 3, opt, i;

        while ((opt = getopt(argc, argv, "p:")) != -1) {
                if (opt != 'p') {
                        fprintf(stderr, "usage: mock_kafka [-p PARTITIONS] TOPIC...\n");
                        return 2;
                }
                partitions = atoi(optarg);
        }
        if (optind == argc || partitions < 1) {
                fprintf(stderr, "usage: mock_kafka [-p PARTITIONS] TOPIC...\n");
                return 2;
        }
        /* The cluster needs a handle for its bookkeeping; the handle itself
         * sends nothing. */
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "mock_kafka: %s\n", errstr);
                return 1;
        }
        mcluster = rd_kafka_mock_cluster_new(rk, 1);
        if (!mcluster) {
                fprintf(stderr, "mock_kafka: rd_kafka_mock_cluster_new failed\n");
                rd_kafka_destroy(rk);
                return 1;
        }
        for (i = optind; i < argc; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mcluster, argv[i],
                                                                     partitions, 1);
                if (err) {
                        fprintf(stderr, "mock_kafka: topic %s: %s\n", argv[i],
                                rd_kafka_err2str(err));
                        rd_kafka_mock_cluster_destroy(mcluster);
                        rd_kafka_destroy(rk);
                        return 1;
                }
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
        fflush(stdout);
        while (!stop)
                sleep(1); /* not pause(): a signal between the test and it would be missed */
        rd_kafka_mock_cluster_destroy(mcluster);
        rd_kafka_destroy(rk);
        return 0;
}
