/* mqtt_source.h - the MQTT side: a persistent-session Paho subscriber handing each message to a callback. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_MQTT_SOURCE_H
#define TG_MQTT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct tg_mqtt_source tg_mqtt_source_t;

/** Called on Paho's thread for each message; Paho sends the PUBACK when it returns.
 *  @p topic is @p topic_len bytes, not NUL-terminated; @p qos is the QoS the
 *  broker delivered it at, @p dup its DUP flag. */
typedef void (tg_mqtt_message_fn)(void *opaque, const char *topic, size_t topic_len,
                                  const void *payload, size_t len, int qos, int dup);

struct tg_mqtt_counters {
        uint64_t connects;     /**< successful connections, the first included */
        uint64_t connection_lost;
        uint64_t subscribed;   /**< successful subscribe calls */
        /** connections lost soon after connecting, from the third in a row
         *  on: most likely another client with our client id */
        uint64_t session_takeovers_suspected;
};

/**
 * @brief Create the client and start connecting (asynchronously; failed or
 *        lost connections are retried from tg_mqtt_source_tick() with an
 *        exponential backoff of 1 s to 30 s and +-50 % jitter).
 * @param on_message called for every message, with @p opaque; the
 *        message must be fully handed on when it returns (the broker then
 *        has its acknowledgement). @p topic and @p payload are valid only
 *        during the call.
 * @return the source, or NULL with the reason in @p errstr.
 */
tg_mqtt_source_t *tg_mqtt_source_new(const struct tg_config *cfg, tg_mqtt_message_fn *on_message,
                                     void *opaque, char *errstr, size_t errstr_size);

/**
 * @brief Stop taking messages: disconnect (keeping the broker-side
 *        session, so what arrives meanwhile waits there), then free.
 *        NULL is accepted.
 */
void tg_mqtt_source_destroy(tg_mqtt_source_t *src);

/** @brief Periodic work (the main loop's tick): a reconnection when one is due. */
void tg_mqtt_source_tick(tg_mqtt_source_t *src);

/** @brief Non-zero while connected and subscribed. */
int tg_mqtt_source_ready(const tg_mqtt_source_t *src);

void tg_mqtt_source_counters(const tg_mqtt_source_t *src,
                             struct tg_mqtt_counters *out);

/**
 * @brief Publish one message, QoS 0, not retained (a Sparkplug rebirth
 *        request). Any thread; returns without waiting for the network.
 * @return 0; -ENOTCONN while not connected or stopping; -EIO when Paho
 *         refused it (logged).
 */
int tg_mqtt_source_publish(tg_mqtt_source_t *src, const char *topic, const void *payload,
                           size_t len);

#endif
