/* metrics.h - the operator's HTTP endpoint: /metrics (Prometheus text), /healthz and /readyz. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "kafka_sink.h"
#include "mqtt_source.h"
#include "pipeline.h"

typedef struct tg_metrics tg_metrics_t;

/**
 * @brief Listen on metrics.listen (host:port) of @p cfg, which also gives the
 *        status page's options (status.*, borrowed). Requests are
 *        served only from tg_metrics_serve_for(), on the caller's thread, so
 *        reading the components needs no locking beyond their own.
 * @param pipeline, sink, mqtt borrowed; must outlive the endpoint.
 * @return the endpoint, or NULL with the reason in @p errstr (address in
 *         use, ...).
 */
tg_metrics_t *tg_metrics_new(const struct tg_config *cfg, tg_pipeline_t *pipeline,
                             tg_kafka_sink_t *sink, tg_mqtt_source_t *mqtt,
                             char *errstr, size_t errstr_size);

/** @brief The port listened on (the one the kernel chose for port 0). */
int tg_metrics_port(const tg_metrics_t *m);

/**
 * @brief Wait @p ms milliseconds, answering requests as they arrive (the
 *        main loop's sleep between ticks). Returns early when a signal
 *        interrupts the wait. NULL is accepted: then it only sleeps.
 */
void tg_metrics_serve_for(tg_metrics_t *m, int ms);

/** @brief Close the listener and free. NULL is accepted. */
void tg_metrics_destroy(tg_metrics_t *m);

/** @brief Write every metric in Prometheus text format 0.0.4 to @p out. */
void tg_metrics_render(tg_pipeline_t *pipeline, tg_kafka_sink_t *sink,
                       tg_mqtt_source_t *mqtt, FILE *out);

/**
 * @brief Whether the gateway can do its work: MQTT connected and
 *        subscribed, Kafka reachable, and input not held for want of
 *        spool space.
 * @return 1 when ready; else 0 with what is missing in @p why.
 */
int tg_metrics_ready(tg_pipeline_t *pipeline, tg_kafka_sink_t *sink,
                     tg_mqtt_source_t *mqtt, char *why, size_t why_size);

#endif
