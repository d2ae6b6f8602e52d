/* status_page.h - the operator's status page at /: one HTML document, inline SVG charts, no external assets. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_STATUS_PAGE_H
#define TG_STATUS_PAGE_H

#include <stdint.h>
#include <stdio.h>

#include "kafka_sink.h"
#include "mqtt_source.h"
#include "pipeline.h"

/** Rates over the interval between two renders, kept by the caller. */
struct tg_page_rates {
        int64_t at_ms;                  /**< monotonic time of the last sample */
        uint64_t decoded, refused;      /**< totals then */
        double decoded_per_s, refused_per_s;
};

/**
 * @brief Write the status page to @p out: connections, spool, rates,
 *        totals (the same numbers as /metrics) and a row per tracked
 *        sensor with the last reading and a chart of its last windows.
 *        It reads only published copies, so Kafka being down changes
 *        nothing but what it says.
 * @param rates updated with this render's sample.
 * @param spool_max_bytes spool.max_bytes, for the fill.
 */
void tg_status_page_render(FILE *out, tg_pipeline_t *pipeline, tg_kafka_sink_t *sink,
                           tg_mqtt_source_t *mqtt, struct tg_page_rates *rates,
                           int64_t spool_max_bytes);

#endif
