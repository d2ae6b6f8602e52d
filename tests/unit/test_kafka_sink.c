/* test_kafka_sink.c - the Kafka sink against librdkafka's mock cluster: reachability as brokers go down and up. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mock cluster is used here for what the real broker makes slow (taking
 * a broker down and up in seconds); the integration tests run the same
 * code against the real Kafka broker. (The mock answers neither CreateTopics
 * nor with record timestamps, so topic creation and the latency histogram
 * are tested there.)
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>

#include "clock.h"
#include "config.h"
#include "kafka_sink.h"
#include "tg_test.h"

/* A mock cluster of one broker, kept alive by its own handle. */
static rd_kafka_t *mock_handle(rd_kafka_mock_cluster_t **mc) {
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;

        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
        *mc = rd_kafka_mock_cluster_new(rk, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(*mc);
        return rk;
}

static struct tg_config *sink_config(const char *bootstrap, const char *prefix) {
        struct tg_config *cfg = tg_config_new();
        char err[256], name[64];

        CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.bootstrap.servers", bootstrap, "t", err,
                                      sizeof(err)), 0);
        snprintf(name, sizeof(name), "%s.raw", prefix);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "topics.raw", name, "t", err, sizeof(err)), 0);
        snprintf(name, sizeof(name), "%s.agg", prefix);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "topics.agg", name, "t", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "topics.dlq", "", "t", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "topics.create", "no", "t", err, sizeof(err)), 0);
        return cfg;
}

/* Reachable once a broker answered; not once it is down, within the 2 s
 * of librdkafka's statistics; reachable again when it is back. */
static void test_reachable(void) {
        rd_kafka_mock_cluster_t *mc;
        rd_kafka_t *rk = mock_handle(&mc);
        struct tg_config *cfg = sink_config(rd_kafka_mock_cluster_bootstraps(mc), "reach");
        struct tg_sink_counters k;
        char err[256];
        tg_kafka_sink_t *sink;
        int64_t end;

        sink = tg_kafka_sink_new(cfg, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(sink);
        CU_ASSERT_EQUAL(tg_kafka_sink_reachable(sink), 0);
        CU_ASSERT_EQUAL(tg_kafka_sink_produce(sink, TG_SINK_RAW, "s", 1, "{}", 2, 1, NULL, 0, 1),
                        0);
        CU_ASSERT_EQUAL(tg_kafka_sink_flush(sink, 10000), 0);
        tg_kafka_sink_counters(sink, &k);
        CU_ASSERT_EQUAL(k.delivered[TG_SINK_RAW], 1);
        CU_ASSERT_EQUAL(tg_kafka_sink_reachable(sink), 1);

        /* Broker gone: the next statistics (every 2 s) say so. */
        rd_kafka_mock_broker_set_down(mc, 1);
        end = tg_monotonic_ms() + 8000;
        while (tg_kafka_sink_reachable(sink) && tg_monotonic_ms() < end)
                tg_kafka_sink_poll(sink, 100);
        CU_ASSERT_EQUAL(tg_kafka_sink_reachable(sink), 0);
        rd_kafka_mock_broker_set_up(mc, 1);
        end = tg_monotonic_ms() + 8000;
        while (!tg_kafka_sink_reachable(sink) && tg_monotonic_ms() < end)
                tg_kafka_sink_poll(sink, 100);
        CU_ASSERT_EQUAL(tg_kafka_sink_reachable(sink), 1);

        tg_kafka_sink_destroy(sink, 0);
        tg_config_destroy(cfg);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"reachability follows the broker", test_reachable},
        };

        return TG_TEST_RUN("kafka_sink", tests);
}
