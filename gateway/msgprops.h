/* msgprops.h - an MQTT 5 message's properties as one compact block: built on the MQTT thread, spooled, read by the worker. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_MSGPROPS_H
#define TG_MSGPROPS_H

#include <stddef.h>
#include <stdint.h>

#include "sink.h"

/*
 * The block is what the worker needs of a message's MQTT 5 properties and
 * nothing else: the Message Expiry Interval, Content Type, Response Topic,
 * Correlation Data and the User Properties in the order they came
 * (repeats kept). Entries back to back, integers little-endian:
 *
 *   type (1)  length (2)  data (length bytes)
 *
 *   1 expiry            data: u32 seconds, as the broker sent it
 *   2 content type      data: the UTF-8 string
 *   3 response topic    data: the topic
 *   4 correlation data  data: the bytes
 *   5 user property     data: key length (2), key, value
 *
 * An unknown type is skipped by its length, so a later gateway may add
 * entries. A message without any of these has no block at all (length 0):
 * the MQTT 3.1.1 path and plain MQTT 5 messages never build or read one.
 * The block lives in caller storage of TG_MSGPROPS_MAX bytes; nothing here
 * allocates.
 */

#define TG_MSGPROPS_MAX 8192      /**< bytes of one block */
#define TG_MSGPROPS_USER_MAX 32   /**< user properties one block may hold */
/** Kafka headers one block can become: three singles and the user properties. */
#define TG_MSGPROPS_HEADERS_MAX (3 + TG_MSGPROPS_USER_MAX)
/** Bytes of header names those headers need ("mqtt.user." + key + NUL each). */
#define TG_MSGPROPS_NAMES_MAX (TG_MSGPROPS_MAX + TG_MSGPROPS_USER_MAX * 11 + 64)

enum tg_msgprop_type {
        TG_MSGPROP_EXPIRY = 1,
        TG_MSGPROP_CONTENT_TYPE = 2,
        TG_MSGPROP_RESPONSE_TOPIC = 3,
        TG_MSGPROP_CORRELATION_DATA = 4,
        TG_MSGPROP_USER = 5,
};

/** A block being built: @p buf is the caller's, TG_MSGPROPS_MAX bytes. */
struct tg_msgprops_builder {
        unsigned char *buf;
        size_t len;
        unsigned nuser;
};

/** One entry as read; pointers into the block. */
struct tg_msgprop {
        enum tg_msgprop_type type;
        const char *key;       /**< user property: its key; else NULL */
        size_t key_len;
        const char *value;     /**< the string or bytes (not NUL-terminated) */
        size_t len;
        uint32_t expiry_s;     /**< TG_MSGPROP_EXPIRY: the interval */
};

/** @brief Start an empty block in @p buf (TG_MSGPROPS_MAX bytes). */
void tg_msgprops_begin(struct tg_msgprops_builder *b, unsigned char *buf);

/**
 * @brief Append one entry: @p a / @p alen is the value, or for
 *        TG_MSGPROP_USER the key with @p v / @p vlen the value.
 * @return 0; -ENOSPC when it does not fit in TG_MSGPROPS_MAX bytes or is
 *         the (TG_MSGPROPS_USER_MAX + 1)th user property (the block is left
 *         as it was).
 */
int tg_msgprops_add(struct tg_msgprops_builder *b, enum tg_msgprop_type type,
                    const void *a, size_t alen, const void *v, size_t vlen);

/** @brief Append the Message Expiry Interval. @return as tg_msgprops_add(). */
int tg_msgprops_add_expiry(struct tg_msgprops_builder *b, uint32_t seconds);

/**
 * @brief The entry at *@p off of a block of @p len bytes; advances *off.
 * @return 1 with @p out filled; 0 at the end; -EINVAL when the block is
 *         malformed (the spool's CRC makes that a bug, not damage).
 */
int tg_msgprops_next(const void *block, size_t len, size_t *off, struct tg_msgprop *out);

/** @brief The expiry interval in seconds, if the block has one: 1, else 0. */
int tg_msgprops_expiry(const void *block, size_t len, uint32_t *seconds);

/** @brief The first user property named @p name: 1 with its value, else 0. */
int tg_msgprops_user(const void *block, size_t len, const char *name, size_t name_len,
                     const char **value, size_t *value_len);

/**
 * @brief The block as Kafka headers, in its order: mqtt.content_type,
 *        mqtt.response_topic, mqtt.correlation_data and mqtt.user.<key> for
 *        each user property. Names are written into @p names (cap bytes,
 *        TG_MSGPROPS_NAMES_MAX is enough), values point into the block.
 * @return the number of headers written to @p h (at most @p hmax).
 */
size_t tg_msgprops_headers(const void *block, size_t len, struct tg_sink_header *h,
                           size_t hmax, char *names, size_t cap);

#endif
