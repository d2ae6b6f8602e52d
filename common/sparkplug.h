/* sparkplug.h - the Sparkplug B input: topics, payloads, births, aliases and deaths, in memory fixed at start-up. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_SPARKPLUG_H
#define TG_SPARKPLUG_H

#include <stddef.h>
#include <stdint.h>

#include "reading.h"

/*
 * A stateful decoder (docs/sparkplug.md): each message is read against what
 * the births before it said (the metrics' names and datatypes behind their
 * aliases, each edge node's seq and bdSeq), and changes that state. Its
 * output is readings (one per sensor and event time), the Sparkplug context
 * of each for the raw record, and events: a dead letter's reason, a
 * rebirth request, windows to close.
 *
 * Memory: the node/device table, the metric table and the payload arena
 * are allocated by tg_sparkplug_new() and never grow. One thread at a time
 * (the worker's holder).
 */

/** Message types, by the topic's third level (plus STATE). */
enum tg_sp_type {
        TG_SP_NBIRTH = 0,
        TG_SP_NDATA,
        TG_SP_NDEATH,
        TG_SP_DBIRTH,
        TG_SP_DDATA,
        TG_SP_DDEATH,
        TG_SP_NCMD,
        TG_SP_DCMD,
        TG_SP_STATE,
        TG_SP__TYPES
};

/** Why a message (or part of it) is dead-lettered. Stable: the names are
 *  reason codes in dead-letter headers and counters. */
enum tg_sp_reason {
        TG_SP_OK = 0,
        TG_SP_BAD_TOPIC,       /**< sparkplug_bad_topic */
        TG_SP_NOT_DECODABLE,   /**< not_decodable: protobuf unpack failed */
        TG_SP_TOO_LARGE,       /**< too_large: over limits.payload or the arena */
        TG_SP_NO_BIRTH,        /**< sparkplug_no_birth */
        TG_SP_UNKNOWN_ALIAS,   /**< sparkplug_unknown_alias */
        TG_SP_SEQ_GAP,         /**< sparkplug_seq_gap */
        TG_SP_BDSEQ_MISMATCH,  /**< sparkplug_bdseq_mismatch */
        TG_SP_TABLE_FULL,      /**< sparkplug_table_full */
        TG_SP__REASONS
};

/** @brief "NBIRTH", ... "STATE". */
const char *tg_sp_type_name(enum tg_sp_type t);
/** @brief The reason code, e.g. "sparkplug_seq_gap". */
const char *tg_sp_reason_name(enum tg_sp_reason r);
/** @brief A sentence for the dead letter's tg.error header. */
const char *tg_sp_reason_message(enum tg_sp_reason r);
/** @brief The specification's name of a datatype ("Int8", "Float", ...), "Unknown" past them. */
const char *tg_sp_datatype_name(uint32_t datatype);

struct tg_sparkplug_conf {
        uint32_t max_nodes;       /**< edge nodes + devices remembered */
        uint32_t max_metrics;     /**< metrics (name, alias, datatype) remembered, in all */
        size_t name_bytes;        /**< the metrics' names' pool; 0: 32 per metric */
        int sensor_per_metric;    /**< 1: sensor G/N[/D]/<metric>, field "value" */
        size_t max_payload;       /**< bytes; larger payloads are too_large */
        size_t arena_bytes;       /**< the unpacked payload's memory; 0: 32 x max_payload, >= 1 MiB */
        int64_t rebirth_interval_ms; /**< per edge node; < 0: never request a rebirth */
};

/** What one message was, and what the caller should do about it. */
struct tg_sp_message {
        enum tg_sp_type type;
        /** The first anomaly, TG_SP_OK if none: the message is dead-lettered
         *  with it. With @p refused, nothing of it was used; otherwise its
         *  readings are still to be taken (seq gap, an unknown alias, ...). */
        enum tg_sp_reason reason;
        int refused;
        char detail[160];         /**< a sentence on the anomaly, for logs and tg.error */
        /** A rebirth request is due (allowed by the rate limit): publish
         *  tg_sparkplug_rebirth_payload() to @p rebirth_topic. */
        int rebirth;
        char rebirth_topic[300];
        /** A valid death: close the windows of @p death_id and, for a node,
         *  of every sensor under it (prefix); and send the death record. */
        int death;
        char death_id[TG_SENSOR_ID_MAX + 1];
        size_t death_id_len;
        int64_t ts_ms;            /**< the payload's timestamp, else arrival */
        size_t readings;          /**< readings it holds (tg_sparkplug_readings()) */
        uint32_t metrics_raw_only;/**< metrics that became no field */
};

struct tg_sp_counters {
        uint64_t messages[TG_SP__TYPES];
        uint64_t anomalies[TG_SP__REASONS];
        uint64_t rebirths_requested;
        uint64_t rebirths_limited;   /**< wanted, held back by the rate limit */
        uint64_t metrics_raw_only;   /**< not numeric, null, or no field for them */
        uint64_t names_too_long;     /**< of those: the name cannot be a field or sensor */
        uint64_t evictions;          /**< entries not alive, reused for a new id (table full) */
        uint64_t nodes, metrics;     /**< table entries in use now */
};

typedef struct tg_sparkplug tg_sparkplug_t;

/**
 * @brief Allocate the tables and the arena.
 * @return the decoder, or NULL with the reason in @p errstr.
 */
tg_sparkplug_t *tg_sparkplug_new(const struct tg_sparkplug_conf *conf, char *errstr,
                                 size_t errstr_size);

/** @brief Free; NULL is accepted. */
void tg_sparkplug_destroy(tg_sparkplug_t *sp);

/** @brief Bytes allocated at start-up. */
size_t tg_sparkplug_memory(const tg_sparkplug_t *sp);

/** @brief Of those, the metric names' pool (conf.name_bytes, or its default). */
size_t tg_sparkplug_name_bytes(const tg_sparkplug_t *sp);

/**
 * @brief Read one message of MQTT topic @p topic, update the state, and say
 *        what it was in @p out. Allocation-free. The payload is kept
 *        (decoded, in the arena) until the next call, for
 *        tg_sparkplug_readings() and the records.
 * @param arrival_ms wall-clock arrival: the event time when neither the
 *        metric nor the payload has one, and the rebirth rate limit's clock.
 * @return @p out->reason.
 */
enum tg_sp_reason tg_sparkplug_decode(tg_sparkplug_t *sp, const char *topic,
                                      const void *payload, size_t len, int64_t arrival_ms,
                                      struct tg_sp_message *out);

/**
 * @brief The next readings of the last message: at most @p cap, in @p r;
 *        call until it returns 0. A reading with no field holds only
 *        metrics for the raw record (not to be windowed).
 * @param first set to the index of r[0] among the message's readings (for
 *        tg_sparkplug_raw_record()).
 * @return how many were written.
 */
size_t tg_sparkplug_readings(tg_sparkplug_t *sp, struct tg_reading *r, size_t cap,
                             size_t *first);

/**
 * @brief The raw record of the last message's reading @p i (its sensor as
 *        in @p r, which the caller may have prefixed), with the Sparkplug
 *        context (docs/sparkplug.md 7).
 * @return its length, or 0 when it does not fit in @p cap.
 */
size_t tg_sparkplug_raw_record(const tg_sparkplug_t *sp, size_t i, const struct tg_reading *r,
                               char *buf, size_t cap);

/**
 * @brief The death record of the last message (a valid NDEATH/DDEATH) for
 *        sensor @p sensor (the death id, prefixed as the caller's readings).
 * @return its length, or 0 when it does not fit.
 */
size_t tg_sparkplug_death_record(const tg_sparkplug_t *sp, const char *sensor, size_t len,
                                 char *buf, size_t cap);

/** Rebirth requests of all nodes together in one second of arrival time, at most. */
#define TG_SP_REBIRTHS_PER_S 10

/** Bytes a rebirth request's payload takes at most. */
#define TG_SP_REBIRTH_MAX 64

/**
 * @brief The NCMD payload asking an edge node to rebirth: one metric
 *        "Node Control/Rebirth", Boolean true, stamped @p now_ms.
 * @return its length (<= TG_SP_REBIRTH_MAX), 0 if @p cap is too small.
 */
size_t tg_sparkplug_rebirth_payload(int64_t now_ms, uint8_t *buf, size_t cap);

/** @brief A snapshot of the counters. */
void tg_sparkplug_counters(const tg_sparkplug_t *sp, struct tg_sp_counters *out);

/**
 * @brief The nodes', devices' and metrics' state as bytes in a buffer the
 *        caller frees: the window checkpoint carries it.
 * @return 0 or -ENOMEM.
 */
int tg_sparkplug_snapshot(const tg_sparkplug_t *sp, void **buf, size_t *len);

/**
 * @brief Replace the state with a snapshot's; @p len 0 empties it.
 * @return 0, or -EINVAL with the reason in @p errstr (the state left empty).
 */
int tg_sparkplug_restore(tg_sparkplug_t *sp, const void *buf, size_t len, char *errstr,
                         size_t errstr_size);

/**
 * @brief For tests and benchmarks: replace the tables' random hash key.
 * @return 0, -EBUSY when the tables hold entries.
 */
int tg_sparkplug_set_hash_key(tg_sparkplug_t *sp, const unsigned char key[16]);

#endif
