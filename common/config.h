/* config.h - every gateway option in one table: defaults, bounds, docs, YAML file and --set overrides. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TG_CONFIG_PASSTHROUGH_MAX 64
#define TG_SUBSCRIPTIONS_MAX 8

/** Per-subscription settings, each inheriting the top-level option. */
enum tg_sub_key {
        TG_SUB_TOPIC = 0,       /**< mqtt.topic */
        TG_SUB_QOS,             /**< mqtt.qos */
        TG_SUB_FORMAT,          /**< mqtt.format */
        TG_SUB_SENSOR_ID,       /**< input.sensor_id */
        TG_SUB_TS_FIELD,        /**< input.timestamp.field */
        TG_SUB_TS_UNIT,         /**< input.timestamp.unit */
        TG_SUB_TS_MISSING,      /**< input.timestamp.missing */
        TG_SUB_FIELDS,          /**< input.fields */
        TG_SUB_SENML_NAMES,     /**< input.senml_names */
        TG_SUB_FWD_MODE,        /**< forward.mode */
        TG_SUB_FWD_DEVIATION,   /**< forward.deviation */
        TG_SUB_FWD_SPAN,        /**< forward.span */
        TG_SUB_FWD_MAX_SILENCE, /**< forward.max_silence (NULL: inherited, read the int) */
        TG_SUB_FWD_FIELDS,      /**< forward.fields */
        TG_SUB_TS_PROPERTY,     /**< input.timestamp.property */
        TG_SUB__COUNT
};

/** One resolved subscription: its own settings or the top-level ones. */
struct tg_subscription {
        const char *value[TG_SUB__COUNT]; /**< as text, borrowed from the config */
        int qos;
};

/** The gateway's settings. Strings are owned by the config. */
struct tg_config {
        /* MQTT side */
        char *mqtt_uri;
        char *mqtt_client_id;
        char *mqtt_topic;
        int mqtt_topic_set;     /**< mqtt.topic was given (else sparkplug's default applies) */
        int64_t mqtt_qos;
        char *mqtt_format;
        int64_t mqtt_keepalive_ms;
        char *mqtt_username;
        char *mqtt_password;
        char *mqtt_tls_ca_file;
        char *mqtt_tls_cert_file;
        char *mqtt_tls_key_file;
        char *mqtt_tls_key_password;
        char *mqtt_tls_verify;
        char *mqtt_version;            /* "5" or "3.1.1" */
        int64_t mqtt_session_expiry_ms;
        char *mqtt_receive_maximum;    /* "auto" or 1..65535 */
        /* how payloads become readings */
        char *input_sensor_id;
        char *input_sensor_prefix;
        char *input_ts_field;
        char *input_ts_unit;
        char *input_ts_missing;
        char *input_ts_property;
        char *input_fields;
        char *input_senml_names;
        int64_t limit_payload;
        int64_t limit_depth;
        int64_t limit_fields;
        int64_t limit_id;
        int64_t limit_string;
        /* Sparkplug B (docs/sparkplug.md) */
        char *sp_sensor;
        char *sp_rebirth;
        int64_t sp_rebirth_interval_ms;
        int64_t sp_max_nodes;
        int64_t sp_max_metrics;
        int64_t sp_name_bytes;
        /* Kafka side */
        char *kafka_bootstrap_servers;
        char *kafka_compression;
        char *topic_raw;
        char *topic_agg;
        char *topic_late;
        char *topic_dlq;
        char *topics_create;
        int64_t topics_partitions;
        int64_t topics_replication;
        /* windows */
        int64_t window_size_ms;
        int64_t window_hop_ms;
        int64_t window_grace_ms;
        int64_t window_idle_timeout_ms;
        int64_t window_max_future_ms;
        int64_t window_max_sensors;
        int64_t window_max_fields;
        int64_t window_reserved_fields;
        int64_t window_wide_windows;
        int64_t window_max_field_names;
        char *window_close;
        char *window_emit;
        int64_t window_update_interval_ms;
        int64_t window_evict_after_ms;
        /* what of the raw stream is forwarded (docs/downsample.md) */
        char *fwd_mode;
        char *fwd_deviation;
        char *fwd_span;
        int64_t fwd_max_silence_ms;
        char *fwd_fields;
        int64_t fwd_max_fields;
        char *topic_compressed;
        /* durability */
        char *durability;
        int64_t spool_max_bytes;
        int64_t spool_segment_bytes;
        char *spool_fsync;
        int64_t spool_fsync_interval_ms;
        char *spool_full;
        int64_t checkpoint_interval_ms;
        /* process */
        char *state_dir;
        char *log_level;
        char *log_file;
        int64_t shutdown_timeout_ms;
        char *metrics_listen;
        int64_t status_sensors;
        int64_t status_windows;
        char *status_user;
        char *status_password;

        /* subscriptions.N.<key>: overrides, NULL where inherited */
        char *subs[TG_SUBSCRIPTIONS_MAX][TG_SUB__COUNT];
        size_t nsubs;

        /* kafka.* keys that are not options of ours go to librdkafka as is */
        struct {
                char *key;   /**< without the "kafka." prefix */
                char *value;
                char origin[256];
        } kafka_passthrough[TG_CONFIG_PASSTHROUGH_MAX];
        size_t kafka_passthrough_cnt;
};

enum tg_option_type {
        TG_OPT_STRING,
        TG_OPT_INT,
        TG_OPT_DURATION, /**< "250ms", "10s", "5m", "1h" or a plain number of ms */
        TG_OPT_ENUM,
};

/** One row of the option table. */
struct tg_option {
        const char *name;        /**< dotted path, as in the file and --set */
        enum tg_option_type type;
        size_t offset;           /**< into struct tg_config */
        int64_t min, max;        /**< INT and DURATION bounds */
        const char *def;         /**< default, as text */
        const char *enum_values; /**< ENUM: values separated by '|' */
        const char *doc;
        int flags;               /**< TG_OPT_SECRET, TG_OPT_LIST */
};

#define TG_OPT_SECRET 1 /**< never printed */
#define TG_OPT_LIST 2   /**< a YAML list of values is accepted, joined by ',' */
#define TG_OPT_FILE 4   /**< names a file the gateway reads: checked to be readable */
#define TG_OPT_TOPIC_FILTER 8 /**< an MQTT topic filter: checked as MQTT 3.1.1 4.7 says */

/** @brief The option table, @p cnt rows. */
const struct tg_option *tg_config_options(size_t *cnt);

/**
 * @brief A config holding every default.
 * @return the config, or NULL when out of memory.
 */
struct tg_config *tg_config_new(void);

/** @brief Free @p cfg and its strings. NULL is accepted. */
void tg_config_destroy(struct tg_config *cfg);

/**
 * @brief Set one option from text. Keys under "kafka." that are not options
 *        of ours are kept for librdkafka.
 * @param origin where the value came from, for messages ("gw.yaml:12", "--set").
 * @return 0, or -EINVAL with "origin: key: what is wrong" in @p errstr.
 */
int tg_config_set(struct tg_config *cfg, const char *key, const char *value,
                  const char *origin, char *errstr, size_t errstr_size);

/**
 * @brief Apply a YAML file: nested mappings name options by path
 *        (window: {size: 10s} sets window.size). In values, ${NAME} is
 *        replaced by the environment variable NAME (an unset one is an
 *        error) and $${ stands for a literal ${.
 * @return 0, or -errno / -EINVAL with "file:line: what is wrong" in @p errstr.
 */
int tg_config_load_file(struct tg_config *cfg, const char *path, char *errstr,
                        size_t errstr_size);

/**
 * @brief Checks that involve more than one option (hop divides size, ...).
 * @return 0 or -EINVAL with the reason in @p errstr.
 */
int tg_config_validate(const struct tg_config *cfg, char *errstr,
                       size_t errstr_size);

/**
 * @brief Check what the options name on this machine: every file option
 *        (TG_OPT_FILE, and kafka.*.location passthrough keys) is a readable
 *        file, log.file can be appended to, state.dir is or can be made a
 *        writable directory. Creates nothing.
 * @return 0, or -errno with "option: path: reason" in @p errstr.
 */
int tg_config_check_files(const struct tg_config *cfg, char *errstr,
                          size_t errstr_size);

/**
 * @brief Split a host:port listen address ("127.0.0.1:9740", "[::1]:9740",
 *        ":9740" for every address). @p host gets "" for any address.
 * @return 0 or -EINVAL.
 */
int tg_parse_listen(const char *s, char *host, size_t host_size, int *port);

/**
 * @brief The subscriptions: those listed under subscriptions, or, when none
 *        is, one made of the top-level mqtt.* and input.* options.
 * @return how many were written to @p out (at most TG_SUBSCRIPTIONS_MAX).
 */
/**
 * @brief mqtt.receive_maximum as a number: auto worked out from the spool's
 *        size (spool.max_bytes, limits.payload). @return 1..65535, or
 *        -EINVAL when the option is neither auto nor such a number.
 */
int tg_config_receive_maximum(const struct tg_config *cfg);

size_t tg_config_subscriptions(const struct tg_config *cfg,
                               struct tg_subscription *out);

/** @brief The top-level option a subscription key inherits from. */
const char *tg_config_sub_option(enum tg_sub_key k);

/** @brief Print the effective configuration as YAML; secrets masked. */
void tg_config_dump(const struct tg_config *cfg, FILE *out);

/** @brief Print the option reference (Markdown table) from the table. */
void tg_config_reference(FILE *out);

/**
 * @brief Parse a duration: a number with ms, s, m or h, or plain ms.
 * @return 0 or -EINVAL.
 */
int tg_parse_duration_ms(const char *s, int64_t *out);

#endif
