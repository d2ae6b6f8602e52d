/* config.c - the option table, its validating setter and the YAML loader (libyaml). */
/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "downsample.h"

#define OPT(field) offsetof(struct tg_config, field)
#define SEC(n) ((int64_t)(n) * 1000)
#define DAY SEC(86400)

/*
 * Every option the gateway has. The README's reference, --help-config,
 * the defaults and all validation come from this one table.
 */
static const struct tg_option options[] = {
        {"mqtt.uri", TG_OPT_STRING, OPT(mqtt_uri), 0, 0, "tcp://127.0.0.1:1883", NULL,
         "MQTT broker to subscribe at (tcp://host:port or ssl://host:port).", 0},
        {"mqtt.client_id", TG_OPT_STRING, OPT(mqtt_client_id), 0, 0, "tumblegate", NULL,
         "MQTT client id. Keep it stable: the broker holds this persistent "
         "session's queue while the gateway is away. One per gateway: two "
         "clients with one id take the session from each other.", 0},
        {"mqtt.topic", TG_OPT_STRING, OPT(mqtt_topic), 0, 0, "sensors/+/telemetry", NULL,
         "Topic filter to subscribe to (MQTT 3.1.1: + is a whole level, # the "
         "last level alone; checked at start, as the broker would drop the "
         "connection).", TG_OPT_TOPIC_FILTER},
        {"mqtt.qos", TG_OPT_INT, OPT(mqtt_qos), 0, 1, "1", NULL,
         "Subscription QoS. 1: the broker redelivers until the gateway has "
         "taken the reading.", 0},
        {"mqtt.format", TG_OPT_ENUM, OPT(mqtt_format), 0, 0, "auto",
         "auto|json|cbor|senml-json|senml-cbor|sparkplug",
         "Payload format. auto tells them apart by the first byte: a JSON object "
         "or CBOR map is one reading, a JSON or CBOR array a SenML pack (RFC 8428). "
         "sparkplug: Sparkplug B edge nodes (docs/sparkplug.md); the topic filter "
         "is then spBv1.0/# unless one is given.", 0},
        {"mqtt.keepalive", TG_OPT_DURATION, OPT(mqtt_keepalive_ms), SEC(1), SEC(3600), "30s", NULL,
         "MQTT keep-alive interval.", 0},
        {"mqtt.username", TG_OPT_STRING, OPT(mqtt_username), 0, 0, "", NULL,
         "MQTT user name; empty: connect without one.", 0},
        {"mqtt.password", TG_OPT_STRING, OPT(mqtt_password), 0, 0, "", NULL,
         "MQTT password (write ${VAR} to take it from the environment). Never "
         "logged or printed.", TG_OPT_SECRET},
        {"mqtt.tls.ca_file", TG_OPT_STRING, OPT(mqtt_tls_ca_file), 0, 0, "", NULL,
         "PEM file of the CA(s) that sign the broker's certificate (with an "
         "ssl:// or mqtts:// mqtt.uri). Empty: the system's CAs.", TG_OPT_FILE},
        {"mqtt.tls.cert_file", TG_OPT_STRING, OPT(mqtt_tls_cert_file), 0, 0, "", NULL,
         "PEM client certificate for mutual TLS (may also hold the key).", TG_OPT_FILE},
        {"mqtt.tls.key_file", TG_OPT_STRING, OPT(mqtt_tls_key_file), 0, 0, "", NULL,
         "PEM private key of mqtt.tls.cert_file, when not in that file.", TG_OPT_FILE},
        {"mqtt.tls.key_password", TG_OPT_STRING, OPT(mqtt_tls_key_password), 0, 0, "", NULL,
         "Passphrase of an encrypted mqtt.tls.key_file.", TG_OPT_SECRET},
        {"mqtt.tls.verify", TG_OPT_ENUM, OPT(mqtt_tls_verify), 0, 0, "yes", "yes|no",
         "Verify the broker's certificate and host name. no is for tests only: "
         "anyone on the path can read and forge the traffic.", 0},

        {"mqtt.version", TG_OPT_ENUM, OPT(mqtt_version), 0, 0, "5", "5|3.1.1",
         "MQTT protocol version. 5: session expiry, flow control (Receive "
         "Maximum), and each message's user properties, content type, response "
         "topic and correlation data as Kafka headers (mqtt.*); 3.1.1 for "
         "brokers without MQTT 5.", 0},
        {"mqtt.session_expiry", TG_OPT_DURATION, OPT(mqtt_session_expiry_ms), 0,
         SEC(4294967294LL), "168h", NULL,
         "MQTT 5: how long the broker keeps the gateway's session, and the QoS 1 "
         "messages queued in it, after the connection ends. A week outlasts any "
         "outage of hours, a weekend unattended and a slow restore, yet a "
         "gateway taken out of service does not leave a queue growing for ever "
         "(the broker may cap it: mosquitto's max_session_expiry_interval). "
         "0: the session ends with the connection.", 0},
        {"mqtt.receive_maximum", TG_OPT_STRING, OPT(mqtt_receive_maximum), 0, 0, "auto", NULL,
         "MQTT 5: QoS 1 messages the broker may send before the gateway has "
         "acknowledged them (1..65535). The gateway acknowledges a message once "
         "it is in the spool, so while the spool is full at most this many wait "
         "unacknowledged in buffers and the broker keeps the rest. auto: as many "
         "largest payloads (limits.payload) as fit in 1/64 of spool.max_bytes, "
         "16 to 1024.", 0},

        {"input.sensor_id", TG_OPT_STRING, OPT(input_sensor_id), 0, 0, "payload:sensor", NULL,
         "Where the sensor id comes from: payload:<member> (a text member of "
         "the payload) or topic:<pattern>, a topic with one level written "
         "{sensor}, e.g. topic:sensors/{sensor}/telemetry.", 0},
        {"input.sensor_prefix", TG_OPT_STRING, OPT(input_sensor_prefix), 0, 0, "", NULL,
         "Put before every sensor id, on both topics and in the windows: a site "
         "name and a separator (site-a/), so gateways of several sites can share "
         "topics without ids colliding. A prefixed id longer than 64 bytes is "
         "refused (bad_id).", 0},
        {"input.timestamp.field", TG_OPT_STRING, OPT(input_ts_field), 0, 0, "ts", NULL,
         "Payload member holding the event time.", 0},
        {"input.timestamp.unit", TG_OPT_ENUM, OPT(input_ts_unit), 0, 0, "ms", "ms|s|us|rfc3339",
         "Unit of the event time: ms, s (fractions allowed) or us since the "
         "epoch, or an RFC 3339 text.", 0},
        {"input.timestamp.missing", TG_OPT_ENUM, OPT(input_ts_missing), 0, 0, "reject",
         "reject|arrival",
         "A payload without event time: dead-lettered (reject) or stamped with "
         "its arrival time and counted (arrival).", 0},
        {"input.timestamp.property", TG_OPT_STRING, OPT(input_ts_property), 0, 0, "", NULL,
         "MQTT 5: a user property holding the event time, in "
         "input.timestamp.unit, used when the payload has none (before "
         "input.timestamp.missing applies). Empty: none.", 0},
        {"input.senml_names", TG_OPT_ENUM, OPT(input_senml_names), 0, 0, "field",
         "field|sensor",
         "SenML: field: the base name is the sensor and each record's name a "
         "field; sensor: each resolved name is a sensor with one field, value.", 0},
        {"sparkplug.sensor", TG_OPT_ENUM, OPT(sp_sensor), 0, 0, "device", "device|metric",
         "Sparkplug B: device: the sensor is group/edge_node[/device] and each numeric "
         "metric a field named by the metric; metric: each metric is its own sensor, "
         "group/edge_node[/device]/<metric>, with one field, value.", 0},
        {"sparkplug.rebirth", TG_OPT_ENUM, OPT(sp_rebirth), 0, 0, "yes", "yes|no",
         "Sparkplug B: on data before a birth, an unknown alias or a seq gap, publish a "
         "rebirth request (NCMD Node Control/Rebirth) to the edge node.", 0},
        {"sparkplug.rebirth_interval", TG_OPT_DURATION, OPT(sp_rebirth_interval_ms), 0, DAY,
         "5s", NULL, "Sparkplug B: at most one rebirth request per edge node this often.", 0},
        {"sparkplug.max_nodes", TG_OPT_INT, OPT(sp_max_nodes), 1, 1 << 24, "1000", NULL,
         "Sparkplug B: edge nodes and devices remembered (births, seq, bdSeq), in memory "
         "fixed at start (about 150 bytes each). When full, the least recently seen entry "
         "that is not alive (dead, or never born) is reused; when every entry is alive, "
         "a new one is refused (sparkplug_table_full).", 0},
        {"sparkplug.max_metrics", TG_OPT_INT, OPT(sp_max_metrics), 1, 1 << 26, "50000", NULL,
         "Sparkplug B: metrics named by births (alias, datatype, name) remembered in all, "
         "in memory fixed at start (about 40 bytes each, their names apart); more are "
         "counted (sparkplug_table_full).", 0},
        {"sparkplug.name_bytes", TG_OPT_INT, OPT(sp_name_bytes), 0, 1LL << 32, "0", NULL,
         "Sparkplug B: bytes for the names of those metrics, fixed at start; a name of up "
         "to 16 bytes takes 16, up to 32 takes 32, up to 64 takes 64, up to 127 takes 128. "
         "0: 32 bytes per sparkplug.max_metrics. Names with no room are counted "
         "(sparkplug_table_full).", 0},
        {"input.fields", TG_OPT_STRING, OPT(input_fields), 0, 0, "", NULL,
         "Numeric fields to keep, a list or comma-separated; empty: every "
         "numeric member.", TG_OPT_LIST},
        {"limits.payload", TG_OPT_INT, OPT(limit_payload), 1, 65536, "65536", NULL,
         "Largest payload in bytes; larger ones are dead-lettered unread (too_large).", 0},
        {"limits.depth", TG_OPT_INT, OPT(limit_depth), 1, 16, "16", NULL,
         "Deepest nesting of objects/arrays (too_deep).", 0},
        {"limits.fields", TG_OPT_INT, OPT(limit_fields), 1, 16, "16", NULL,
         "Most numeric fields in one payload (too_many_fields).", 0},
        {"limits.id", TG_OPT_INT, OPT(limit_id), 1, 64, "64", NULL,
         "Longest sensor id in bytes (bad_id).", 0},
        {"limits.string", TG_OPT_INT, OPT(limit_string), 1, 65536, "4096", NULL,
         "Longest string anywhere in a payload, in bytes (string_too_long).", 0},

        {"kafka.bootstrap.servers", TG_OPT_STRING, OPT(kafka_bootstrap_servers), 0, 0,
         "127.0.0.1:9092", NULL,
         "Kafka or Redpanda brokers, host:port[,host:port...]. Any other "
         "kafka.* key is passed to librdkafka as is.", 0},
        {"kafka.compression.type", TG_OPT_ENUM, OPT(kafka_compression), 0, 0, "lz4",
         "none|gzip|snappy|lz4|zstd", "Compression of produced batches.", 0},
        {"topics.raw", TG_OPT_STRING, OPT(topic_raw), 0, 0, "sensors.raw", NULL,
         "Topic for every valid reading (JSON, key = sensor id, timestamp = event time).", 0},
        {"topics.agg", TG_OPT_STRING, OPT(topic_agg), 0, 0, "sensors.agg", NULL,
         "Topic for closed-window aggregates (JSON, key = sensor id).", 0},
        {"topics.dlq", TG_OPT_STRING, OPT(topic_dlq), 0, 0, "sensors.dlq", NULL,
         "Dead letters: every payload that cannot become a valid reading, its "
         "bytes unchanged, with headers tg.reason, tg.error, tg.mqtt_topic and "
         "tg.arrival_ms. Empty: refused payloads are only logged and counted.", 0},
        {"topics.late", TG_OPT_STRING, OPT(topic_late), 0, 0, "", NULL,
         "Also send late readings (their window had closed) here, as raw "
         "records. Empty: only to topics.raw.", 0},
        {"topics.create", TG_OPT_ENUM, OPT(topics_create), 0, 0, "yes", "yes|no",
         "At start, create the configured topics that do not exist (Kafka "
         "Admin API). A broker that refuses is reported; the gateway goes on "
         "and produces once the topics exist.", 0},
        {"topics.partitions", TG_OPT_INT, OPT(topics_partitions), -1, 1 << 20, "-1", NULL,
         "Partitions of topics the gateway creates; -1: the broker's default "
         "(num.partitions).", 0},
        {"topics.replication_factor", TG_OPT_INT, OPT(topics_replication), -1, 32767, "-1",
         NULL, "Replication factor of topics the gateway creates; -1: the "
         "broker's default (default.replication.factor).", 0},

        {"window.size", TG_OPT_DURATION, OPT(window_size_ms), 1, DAY, "10s", NULL,
         "Window length; windows are aligned to the Unix epoch, [start, end).", 0},
        {"window.hop", TG_OPT_DURATION, OPT(window_hop_ms), 0, DAY, "0", NULL,
         "Hop of hopping windows; must divide window.size. 0: tumbling (hop = size).", 0},
        {"window.grace", TG_OPT_DURATION, OPT(window_grace_ms), 0, DAY, "2s", NULL,
         "A window closes when the watermark reaches its end plus this grace.", 0},
        {"window.idle_timeout", TG_OPT_DURATION, OPT(window_idle_timeout_ms), 0, DAY, "30s", NULL,
         "Close a sensor's open windows once nothing has arrived from it for "
         "this long (wall clock). 0: never.", 0},
        {"window.max_future", TG_OPT_DURATION, OPT(window_max_future_ms), 0, DAY, "5m", NULL,
         "Refuse readings whose timestamp is further than this ahead of the "
         "gateway's clock.", 0},
        {"window.close", TG_OPT_ENUM, OPT(window_close), 0, 0, "per-sensor",
         "per-sensor|global",
         "Watermark: each sensor's own max event time, or the max over all sensors.", 0},
        {"window.emit", TG_OPT_ENUM, OPT(window_emit), 0, 0, "final", "final|update",
         "final: one record per window when it closes. update: also running "
         "results of open windows, at most every window.update_interval.", 0},
        {"window.update_interval", TG_OPT_DURATION, OPT(window_update_interval_ms), 100, DAY,
         "1s", NULL, "How often an open window's running result may be sent in update mode.", 0},
        {"window.evict_after", TG_OPT_DURATION, OPT(window_evict_after_ms), 0, DAY * 365, "1h",
         NULL, "When the sensor table is full, the least recently active sensor "
         "is evicted (its windows emitted) if silent this long. 0: never evict.", 0},
        {"window.max_sensors", TG_OPT_INT, OPT(window_max_sensors), 1, 1 << 24, "10000", NULL,
         "Sensor table capacity, allocated at start-up.", 0},
        {"window.max_fields", TG_OPT_INT, OPT(window_max_fields), 1, 16, "8", NULL,
         "Distinct numeric fields kept per sensor window.", 0},
        {"window.reserved_fields", TG_OPT_INT, OPT(window_reserved_fields), 1, 16, "3", NULL,
         "Fields every window has room for, reserved at start-up for every sensor: what a "
         "sensor costs in memory. Fields past it, up to window.max_fields, take room from "
         "the window.wide_windows pool.", 0},
        {"window.wide_windows", TG_OPT_INT, OPT(window_wide_windows), 0, 1 << 24, "1000", NULL,
         "Windows open at once that may hold more than window.reserved_fields fields, "
         "shared by all sensors; beyond it such fields are dropped and counted "
         "(tumblegate_window_fields_dropped_total{reason=\"wide_windows\"}).", 0},
        {"window.max_field_names", TG_OPT_INT, OPT(window_max_field_names), 1, 4096, "64", NULL,
         "Distinct field names over the gateway's life.", 0},

        {"forward.mode", TG_OPT_ENUM, OPT(fwd_mode), 0, 0, "all",
         "all|exception|swinging-door|none",
         "What of the raw stream is forwarded (docs/downsample.md): all: every "
         "reading; exception: a value further than forward.deviation from the last "
         "one sent; swinging-door: the kept points of swinging-door compression, a "
         "line through which is within forward.deviation of every reading; none: "
         "aggregates only. Windows see every reading whatever the mode.", 0},
        {"forward.deviation", TG_OPT_STRING, OPT(fwd_deviation), 0, 0, "0", NULL,
         "The deadband (exception) or compression deviation (swinging-door): a "
         "number in the field's unit, or a percentage of forward.span (\"2%\").", 0},
        {"forward.span", TG_OPT_STRING, OPT(fwd_span), 0, 0, "", NULL,
         "The measuring range a percentage in forward.deviation refers to, e.g. 100.", 0},
        {"forward.max_silence", TG_OPT_DURATION, OPT(fwd_max_silence_ms), 0, DAY, "5m", NULL,
         "Exception and swinging-door: a value is sent at least this often (event "
         "time) while readings come; 0: no limit.", 0},
        {"forward.fields", TG_OPT_STRING, OPT(fwd_fields), 0, 0, "", NULL,
         "Per-field rules, a list or comma-separated: NAME=MODE[:DEVIATION[:SPAN]], "
         "e.g. humidity=exception:2%:100. Other fields follow forward.mode.",
         TG_OPT_LIST},
        {"forward.max_fields", TG_OPT_INT, OPT(fwd_max_fields), 1, 16, "4", NULL,
         "Fields per sensor under exception or swinging-door with state kept (112 "
         "bytes each, for window.max_sensors sensors, allocated at start); further "
         "fields are forwarded whole and counted.", 0},
        {"topics.compressed", TG_OPT_STRING, OPT(topic_compressed), 0, 0, "", NULL,
         "Empty: topics.raw carries what forward.mode selects. Set: topics.raw "
         "carries every reading and this topic what forward.mode selects.", 0},

        {"durability", TG_OPT_ENUM, OPT(durability), 0, 0, "disk", "disk|memory",
         "disk: every MQTT message is in the spool on local disk before it is "
         "acknowledged. memory: acknowledged once handed to the Kafka producer; "
         "a crash loses what it still held.", 0},
        {"spool.max_bytes", TG_OPT_INT, OPT(spool_max_bytes), 1 << 20, INT64_MAX / 2,
         "1073741824", NULL,
         "Bound on the spool's size on disk (store-and-forward through Kafka outages).", 0},
        {"spool.segment_bytes", TG_OPT_INT, OPT(spool_segment_bytes), 64 << 10, 1 << 30,
         "8388608", NULL,
         "Size of one spool segment file, allocated whole when it starts (less when the "
         "disk has less free).", 0},
        {"spool.fsync", TG_OPT_ENUM, OPT(spool_fsync), 0, 0, "interval",
         "interval|always|never",
         "When spooled messages reach the disk: always (before each ack), every "
         "spool.fsync_interval, or when the kernel decides. A process crash loses "
         "nothing in any mode; a power loss up to one interval.", 0},
        {"spool.fsync_interval", TG_OPT_DURATION, OPT(spool_fsync_interval_ms), 10, SEC(60),
         "1s", NULL, "The interval of spool.fsync: interval.", 0},
        {"spool.full", TG_OPT_ENUM, OPT(spool_full), 0, 0, "block", "block|drop-oldest",
         "The spool at spool.max_bytes: block (stop acknowledging; the MQTT "
         "broker keeps the session's queue) or drop-oldest (delete the oldest "
         "segment, counted and logged).", 0},
        {"checkpoint.interval", TG_OPT_DURATION, OPT(checkpoint_interval_ms), 100, SEC(3600),
         "5s", NULL,
         "How often window state is checkpointed with the spool position it "
         "covers; after a crash at most this much is replayed.", 0},

        {"state.dir", TG_OPT_STRING, OPT(state_dir), 0, 0, "/var/lib/tumblegate", NULL,
         "Directory for the spool and the window checkpoint.", 0},
        {"log.level", TG_OPT_ENUM, OPT(log_level), 0, 0, "info", "error|warn|info|debug",
         "Log threshold.", 0},
        {"log.file", TG_OPT_STRING, OPT(log_file), 0, 0, "", NULL,
         "Log to this file instead of stderr (empty: stderr, which journald "
         "collects under systemd). SIGHUP reopens it (log rotation).", 0},
        {"shutdown.timeout", TG_OPT_DURATION, OPT(shutdown_timeout_ms), 0, SEC(3600), "30s",
         NULL, "On SIGTERM or SIGINT, how long to drain: forward what the spool "
         "holds, wait for Kafka to confirm, checkpoint. What is unconfirmed "
         "then stays in the spool (durability: disk) for the next start. "
         "Keep systemd's TimeoutStopSec above it.", 0},
        {"metrics.listen", TG_OPT_STRING, OPT(metrics_listen), 0, 0, "127.0.0.1:9740", NULL,
         "host:port of the HTTP endpoint serving /metrics (Prometheus text), "
         "/healthz and /readyz. Port 0: any free port (logged). Empty: off.", 0},
        {"status.sensors", TG_OPT_INT, OPT(status_sensors), 0, 1 << 20, "64", NULL,
         "Sensors the status page at / tracks (the first whose windows close), in memory "
         "fixed at start "
         "(logged, per sensor); 0: no per-sensor rows.", 0},
        {"status.windows", TG_OPT_INT, OPT(status_windows), 1, 1024, "12", NULL,
         "Closed windows per sensor the status page keeps for its chart.", 0},
        {"status.user", TG_OPT_STRING, OPT(status_user), 0, 0, "tumblegate", NULL,
         "User name of the status page's HTTP basic authentication.", 0},
        {"status.password", TG_OPT_STRING, OPT(status_password), 0, 0, "", NULL,
         "Password of the status page (write ${VAR} to take it from the environment). "
         "Required when metrics.listen is not a loopback address: without it the page "
         "answers 403 there (docs/security.md).", 0},
};

#define NOPTIONS (sizeof(options) / sizeof(*options))

const struct tg_option *tg_config_options(size_t *cnt) {
        *cnt = NOPTIONS;
        return options;
}

static const struct tg_option *option_find(const char *name) {
        size_t i;

        for (i = 0; i < NOPTIONS; i++)
                if (!strcmp(options[i].name, name))
                        return &options[i];
        return NULL;
}

int tg_parse_duration_ms(const char *s, int64_t *out) {
        static const struct {
                const char *suffix;
                int64_t ms;
        } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1}};
        char *end;
        long long v;
        size_t i;

        if (*s < '0' || *s > '9') /* strtoll would take " 5" and "+5" */
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0)
                return -EINVAL;
        for (i = 0; i < sizeof(units) / sizeof(*units); i++) {
                if (!strcmp(end, units[i].suffix)) {
                        if (v > INT64_MAX / units[i].ms)
                                return -EINVAL;
                        *out = v * units[i].ms;
                        return 0;
                }
        }
        return -EINVAL;
}

static int enum_has(const char *values, const char *v) {
        size_t n = strlen(v);
        const char *p = values;

        while (p) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);

                if (len == n && !memcmp(p, v, n))
                        return 1;
                p = bar ? bar + 1 : NULL;
        }
        return 0;
}

#define FAIL(...)                                                              \
        do {                                                                   \
                if (errstr && errstr_size)                                     \
                        snprintf(errstr, errstr_size, __VA_ARGS__);            \
                return -EINVAL;                                                \
        } while (0)

static int set_passthrough(struct tg_config *cfg, const char *key,
                           const char *value, const char *origin,
                           char *errstr, size_t errstr_size) {
        size_t i;
        char *k, *v;

        if (!key[0])
                FAIL("%s: kafka.: empty librdkafka property name", origin);
        for (i = 0; i < cfg->kafka_passthrough_cnt; i++)
                if (!strcmp(cfg->kafka_passthrough[i].key, key))
                        break;
        if (i == TG_CONFIG_PASSTHROUGH_MAX)
                FAIL("%s: kafka.%s: more than %d librdkafka properties", origin,
                     key, TG_CONFIG_PASSTHROUGH_MAX);
        if (!(v = strdup(value)) || !(k = strdup(key))) {
                free(v);
                return -ENOMEM;
        }
        if (i == cfg->kafka_passthrough_cnt) {
                cfg->kafka_passthrough_cnt++;
        } else {
                free(cfg->kafka_passthrough[i].key);
                free(cfg->kafka_passthrough[i].value);
        }
        cfg->kafka_passthrough[i].key = k;
        cfg->kafka_passthrough[i].value = v;
        snprintf(cfg->kafka_passthrough[i].origin,
                 sizeof(cfg->kafka_passthrough[i].origin), "%s", origin);
        return 0;
}

/* subscriptions.N.<key> -> the top-level option it overrides. */
static const struct {
        const char *key, *option;
} sub_keys[TG_SUB__COUNT] = {
        [TG_SUB_TOPIC] = {"topic", "mqtt.topic"},
        [TG_SUB_QOS] = {"qos", "mqtt.qos"},
        [TG_SUB_FORMAT] = {"format", "mqtt.format"},
        [TG_SUB_SENSOR_ID] = {"sensor_id", "input.sensor_id"},
        [TG_SUB_TS_FIELD] = {"timestamp.field", "input.timestamp.field"},
        [TG_SUB_TS_UNIT] = {"timestamp.unit", "input.timestamp.unit"},
        [TG_SUB_TS_MISSING] = {"timestamp.missing", "input.timestamp.missing"},
        [TG_SUB_FIELDS] = {"fields", "input.fields"},
        [TG_SUB_SENML_NAMES] = {"senml_names", "input.senml_names"},
        [TG_SUB_FWD_MODE] = {"forward.mode", "forward.mode"},
        [TG_SUB_FWD_DEVIATION] = {"forward.deviation", "forward.deviation"},
        [TG_SUB_FWD_SPAN] = {"forward.span", "forward.span"},
        [TG_SUB_FWD_MAX_SILENCE] = {"forward.max_silence", "forward.max_silence"},
        [TG_SUB_FWD_FIELDS] = {"forward.fields", "forward.fields"},
        [TG_SUB_TS_PROPERTY] = {"timestamp.property", "input.timestamp.property"},
};

const char *tg_config_sub_option(enum tg_sub_key k) {
        return (unsigned)k < TG_SUB__COUNT ? sub_keys[k].option : NULL;
}

static int option_store(struct tg_config *cfg, const struct tg_option *o,
                        const char *key, const char *value, const char *origin,
                        char *errstr, size_t errstr_size);

/* subscriptions.N.<key>: validated as the option it overrides would be,
 * kept as text. */
static int set_subscription(struct tg_config *cfg, const char *key,
                            const char *value, const char *origin,
                            char *errstr, size_t errstr_size) {
        const char *rest = key + strlen("subscriptions.");
        struct tg_config *scratch;
        unsigned long n;
        char *end, *copy;
        int k, r;

        errno = 0;
        n = strtoul(rest, &end, 10);
        if (end == rest || *end != '.' || errno || n >= TG_SUBSCRIPTIONS_MAX)
                FAIL("%s: %s: subscriptions are numbered 0..%d", origin, key,
                     TG_SUBSCRIPTIONS_MAX - 1);
        for (k = 0; k < TG_SUB__COUNT; k++)
                if (!strcmp(end + 1, sub_keys[k].key))
                        break;
        if (k == TG_SUB__COUNT)
                FAIL("%s: unknown option '%s' (a subscription takes topic, qos, format, "
                     "sensor_id, timestamp.field, timestamp.unit, timestamp.missing, timestamp.property, "
                     "fields, senml_names, forward.*)", origin, key);
        if (!(scratch = calloc(1, sizeof(*scratch))))
                return -ENOMEM;
        r = option_store(scratch, option_find(sub_keys[k].option), key, value, origin,
                         errstr, errstr_size);
        tg_config_destroy(scratch);
        if (r)
                return r;
        if (!(copy = strdup(value)))
                return -ENOMEM;
        free(cfg->subs[n][k]);
        cfg->subs[n][k] = copy;
        if (n + 1 > cfg->nsubs)
                cfg->nsubs = n + 1;
        return 0;
}

int tg_config_set(struct tg_config *cfg, const char *key, const char *value,
                  const char *origin, char *errstr, size_t errstr_size) {
        const struct tg_option *o = option_find(key);

        if (!o) {
                if (!strncmp(key, "kafka.", 6))
                        return set_passthrough(cfg, key + 6, value, origin,
                                               errstr, errstr_size);
                if (!strncmp(key, "subscriptions.", 14))
                        return set_subscription(cfg, key, value, origin, errstr,
                                                errstr_size);
                FAIL("%s: unknown option '%s' (tumblegate --help-config lists them)",
                     origin, key);
        }
        if (!strcmp(key, "mqtt.topic"))
                cfg->mqtt_topic_set = 1; /* the format's default filter no longer applies */
        return option_store(cfg, o, key, value, origin, errstr, errstr_size);
}

/*
 * What keeps @p s from being an MQTT UTF-8 string (MQTT 3.1.1 1.5.3), or
 * NULL: well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), at most 65535 bytes, no U+0000; and, since the
 * spec says a receiver may close the connection over them and mosquitto
 * does, no control characters (U+0001..U+001F, U+007F..U+009F) and no
 * non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF).
 */
static const char *mqtt_string_problem(const char *s) {
        const unsigned char *p = (const unsigned char *)s;
        size_t len = strlen(s);

        if (len > 65535)
                return "longer than 65535 bytes, the most MQTT can carry";
        while (*p) {
                unsigned c = *p, n, i;
                uint32_t cp;

                if (c < 0x80) {
                        cp = c;
                        n = 0;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        cp = c & 0x1f;
                        n = 1;
                } else if (c >= 0xe0 && c <= 0xef) {
                        cp = c & 0x0f;
                        n = 2;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        cp = c & 0x07;
                        n = 3;
                } else {
                        return "not valid UTF-8";
                }
                for (i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
                                return "not valid UTF-8";
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return "not valid UTF-8";
                if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
                        return "contains a control character";
                if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
                        return "contains a Unicode non-character";
                p += n + 1;
        }
        return NULL;
}

/*
 * What keeps @p f from being a topic filter (MQTT 3.1.1 4.7), or NULL:
 * at least one character, '#' only as the last level and alone in it,
 * '+' alone in its level, and an MQTT UTF-8 string.
 */
static const char *topic_filter_problem(const char *f) {
        const char *level = f, *p;

        if (!f[0])
                return "empty: a filter has at least one character (MQTT 3.1.1, 4.7.3)";
        for (p = f;; p++) {
                if (*p == '/' || !*p) {
                        size_t n = (size_t)(p - level);

                        if (memchr(level, '#', n) && (n != 1 || *p))
                                return "'#' must be the last level and alone in it, as in "
                                       "sensors/# (MQTT 3.1.1, 4.7.1.2)";
                        if (memchr(level, '+', n) && n != 1)
                                return "'+' must be a whole level, as in "
                                       "sensors/+/telemetry (MQTT 3.1.1, 4.7.1.3)";
                        if (!*p)
                                break;
                        level = p + 1;
                }
        }
        return mqtt_string_problem(f);
}

static int option_store(struct tg_config *cfg, const struct tg_option *o,
                        const char *key, const char *value, const char *origin,
                        char *errstr, size_t errstr_size) {
        void *field = (char *)cfg + o->offset;
        const char *why;
        int64_t v;
        char *end;

        switch (o->type) {
        case TG_OPT_ENUM:
                if (!enum_has(o->enum_values, value))
                        FAIL("%s: %s: '%s' is not one of %s", origin, key, value,
                             o->enum_values);
                /* fall through */
        case TG_OPT_STRING: {
                char *copy;

                /* The broker would refuse it only once the gateway runs, by
                 * dropping the connection without a word. */
                if ((o->flags & TG_OPT_TOPIC_FILTER) && (why = topic_filter_problem(value)))
                        FAIL("%s: %s: not a valid MQTT topic filter: %s ('%.80s%s')", origin,
                             key, why, value, strlen(value) > 80 ? "..." : "");
                if (!(copy = strdup(value)))
                        return -ENOMEM;

                free(*(char **)field);
                *(char **)field = copy;
                return 0;
        }
        case TG_OPT_INT:
                errno = 0;
                v = strtoll(value, &end, 10);
                if (end == value || *end || errno ||
                    !(value[0] == '-' || (value[0] >= '0' && value[0] <= '9')))
                        FAIL("%s: %s: '%s' is not an integer", origin, key, value);
                break;
        case TG_OPT_DURATION:
                if (tg_parse_duration_ms(value, &v))
                        FAIL("%s: %s: '%s' is not a duration (e.g. 500ms, 10s, 5m, 1h)",
                             origin, key, value);
                break;
        default:
                FAIL("%s: %s: option of unknown type", origin, key);
        }
        if (v < o->min || v > o->max)
                FAIL("%s: %s: %s is out of range [%lld, %lld]%s", origin, key, value,
                     (long long)o->min, (long long)o->max,
                     o->type == TG_OPT_DURATION ? " ms" : "");
        *(int64_t *)field = v;
        return 0;
}

struct tg_config *tg_config_new(void) {
        struct tg_config *cfg = calloc(1, sizeof(*cfg));
        size_t i;

        if (!cfg)
                return NULL;
        for (i = 0; i < NOPTIONS; i++) {
                /* The table's own defaults must pass its own validation. */
                if (tg_config_set(cfg, options[i].name, options[i].def, "default",
                                  NULL, 0)) {
                        tg_config_destroy(cfg);
                        return NULL;
                }
        }
        cfg->mqtt_topic_set = 0; /* the default is no choice of the user's */
        return cfg;
}

void tg_config_destroy(struct tg_config *cfg) {
        size_t i;

        if (!cfg)
                return;
        for (i = 0; i < NOPTIONS; i++)
                if (options[i].type == TG_OPT_STRING || options[i].type == TG_OPT_ENUM)
                        free(*(char **)((char *)cfg + options[i].offset));
        for (i = 0; i < cfg->kafka_passthrough_cnt; i++) {
                free(cfg->kafka_passthrough[i].key);
                free(cfg->kafka_passthrough[i].value);
        }
        for (i = 0; i < TG_SUBSCRIPTIONS_MAX; i++)
                for (int k = 0; k < TG_SUB__COUNT; k++)
                        free(cfg->subs[i][k]);
        free(cfg);
}

size_t tg_config_subscriptions(const struct tg_config *cfg,
                               struct tg_subscription *out) {
        size_t n = cfg->nsubs ? cfg->nsubs : 1, i;
        int k;

        for (i = 0; i < n; i++) {
                for (k = 0; k < TG_SUB__COUNT; k++) {
                        const struct tg_option *o = option_find(sub_keys[k].option);

                        out[i].value[k] = cfg->subs[i][k];
                        if (!out[i].value[k] && o->type != TG_OPT_INT &&
                            o->type != TG_OPT_DURATION)
                                out[i].value[k] = *(char *const *)((const char *)cfg +
                                                                   o->offset);
                }
                out[i].qos = cfg->subs[i][TG_SUB_QOS] ? atoi(cfg->subs[i][TG_SUB_QOS])
                                                      : (int)cfg->mqtt_qos;
                if (!out[i].value[TG_SUB_QOS])
                        out[i].value[TG_SUB_QOS] = out[i].qos ? "1" : "0";
                /* Sparkplug's namespace when no topic was given for it. */
                if (!strcmp(out[i].value[TG_SUB_FORMAT], "sparkplug") &&
                    !cfg->subs[i][TG_SUB_TOPIC] && (cfg->nsubs || !cfg->mqtt_topic_set))
                        out[i].value[TG_SUB_TOPIC] = "spBv1.0/#";
        }
        return n;
}

/* The length of the topic level at @p s (up to '/' or the end). */
static size_t level_len(const char *s) {
        return strcspn(s, "/");
}

/* @p s, @p n is one level: the whole level @p name? */
static int level_is(const char *s, size_t n, const char *name) {
        return n == strlen(name) && !memcmp(s, name, n);
}

/*
 * Whether some topic matches both the filter @p f and the pattern @p p of
 * input.sensor_id (levels: text, + or {sensor}, either of which matches
 * any one level; see tg_topic_sensor()). Wildcards at the start of a filter
 * match no topic beginning with '$' (MQTT 3.1.1 4.7.2).
 */
static int filter_meets_pattern(const char *f, const char *p) {
        if (p[0] == '$' && (f[0] == '+' || f[0] == '#'))
                return 0;
        for (;;) {
                size_t fn = level_len(f), pn = level_len(p);

                if (level_is(f, fn, "#"))
                        return 1; /* the rest of the pattern, whatever it is */
                if (!level_is(f, fn, "+") && !level_is(p, pn, "+") &&
                    !level_is(p, pn, "{sensor}") && (fn != pn || memcmp(f, p, fn)))
                        return 0;
                f += fn;
                p += pn;
                if (!*f || !*p) /* "a/#" also matches "a" */
                        return !*f && !*p ? 1 : !*p && !strcmp(f, "/#");
                f++;
                p++;
        }
}

/* Whether the pattern @p p has a level that is exactly {sensor}. */
static int pattern_has_sensor_level(const char *p) {
        for (;;) {
                size_t n = level_len(p);

                if (level_is(p, n, "{sensor}"))
                        return 1;
                if (!p[n])
                        return 0;
                p += n + 1;
        }
}

int tg_config_receive_maximum(const struct tg_config *cfg) {
        int64_t n;
        char *end;

        if (!strcmp(cfg->mqtt_receive_maximum, "auto")) {
                /* What may wait unacknowledged while the spool is full: a
                 * 64th of the spool in the largest payloads; at least 16,
                 * which keeps a broker's stream going at full speed (an
                 * append takes microseconds), at most 1024 socket buffers'
                 * worth. */
                n = cfg->spool_max_bytes / 64 / (cfg->limit_payload + 40 + 256);
                return n < 16 ? 16 : n > 1024 ? 1024 : (int)n;
        }
        errno = 0;
        n = strtoll(cfg->mqtt_receive_maximum, &end, 10);
        if (end == cfg->mqtt_receive_maximum || *end || errno || n < 1 || n > 65535 ||
            cfg->mqtt_receive_maximum[0] < '0' || cfg->mqtt_receive_maximum[0] > '9')
                return -EINVAL;
        return (int)n;
}

int tg_config_validate(const struct tg_config *cfg, char *errstr,
                       size_t errstr_size) {
        int64_t hop = cfg->window_hop_ms ? cfg->window_hop_ms : cfg->window_size_ms;
        struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
        size_t nsubs = tg_config_subscriptions(cfg, subs), i;
        char host[256];
        int tls, port;

        if (cfg->window_size_ms % hop)
                FAIL("window.hop: %lld ms does not divide window.size (%lld ms)",
                     (long long)hop, (long long)cfg->window_size_ms);
        if (cfg->window_size_ms / hop > 64)
                FAIL("window.hop: at most 64 hops per window (window.size / window.hop)");
        if (cfg->window_max_field_names < cfg->window_max_fields)
                FAIL("window.max_field_names (%lld) must be at least window.max_fields (%lld)",
                     (long long)cfg->window_max_field_names,
                     (long long)cfg->window_max_fields);
        if (strlen(cfg->input_sensor_prefix) >= 64)
                FAIL("input.sensor_prefix: longer than a sensor id may be (64 bytes) "
                     "leaves no room for the id");
        if (tg_config_receive_maximum(cfg) < 0)
                FAIL("mqtt.receive_maximum: '%s' is neither auto nor a number from 1 to 65535",
                     cfg->mqtt_receive_maximum);
        if (!cfg->mqtt_uri[0] || !cfg->kafka_bootstrap_servers[0])
                FAIL("mqtt.uri and kafka.bootstrap.servers must not be empty");
        for (i = 0; i < nsubs; i++) {
                const char *id = subs[i].value[TG_SUB_SENSOR_ID];
                char where[48];

                if (cfg->nsubs)
                        snprintf(where, sizeof(where), "subscriptions.%zu.", i);
                else
                        snprintf(where, sizeof(where), "input.");
                if (cfg->nsubs && !cfg->subs[i][TG_SUB_TOPIC] &&
                    strcmp(subs[i].value[TG_SUB_FORMAT], "sparkplug"))
                        FAIL("subscriptions.%zu: no topic (every listed subscription "
                             "needs one, but for format sparkplug)", i);
                if (!subs[i].value[TG_SUB_TOPIC][0])
                        FAIL("%stopic: must not be empty", cfg->nsubs ? where : "mqtt.");
                if (strncmp(id, "payload:", 8) && strncmp(id, "topic:", 6))
                        FAIL("%ssensor_id: '%s' is neither payload:<member> nor "
                             "topic:<pattern>", where, id);
                if (!strncmp(id, "topic:", 6) && !pattern_has_sensor_level(id + 6))
                        FAIL("%ssensor_id: the topic pattern needs a {sensor} level (a "
                             "whole level, as in topic:sensors/{sensor}/telemetry)", where);
                if (!strncmp(id, "topic:", 6) &&
                    !filter_meets_pattern(subs[i].value[TG_SUB_TOPIC], id + 6))
                        FAIL("%ssensor_id: the pattern '%s' matches no topic of %stopic "
                             "'%s': every message would be refused (missing_id)", where,
                             id + 6, cfg->nsubs ? where : "mqtt.",
                             subs[i].value[TG_SUB_TOPIC]);
                if (!strcmp(id, "payload:") || !subs[i].value[TG_SUB_TS_FIELD][0])
                        FAIL("%ssensor_id and timestamp.field name a member: not empty",
                             where);
                {
                        struct tg_raw_rules rules;
                        char why[200];

                        if (tg_raw_rules_parse(&rules, subs[i].value[TG_SUB_FWD_MODE],
                                               subs[i].value[TG_SUB_FWD_DEVIATION],
                                               subs[i].value[TG_SUB_FWD_SPAN], 0,
                                               subs[i].value[TG_SUB_FWD_FIELDS], why,
                                               sizeof(why)))
                                FAIL("%s%s", cfg->nsubs ? where : "", why);
                }
        }
        if (!cfg->mqtt_client_id[0])
                FAIL("mqtt.client_id: must not be empty (a persistent session needs a stable id)");
        if (!cfg->topic_raw[0] || !cfg->topic_agg[0])
                FAIL("topics.raw and topics.agg must not be empty");
        tls = !strncmp(cfg->mqtt_uri, "ssl://", 6) || !strncmp(cfg->mqtt_uri, "mqtts://", 8);
        if (!tls && (cfg->mqtt_tls_ca_file[0] || cfg->mqtt_tls_cert_file[0] ||
                     cfg->mqtt_tls_key_file[0]))
                FAIL("mqtt.tls.*: set, but mqtt.uri '%s' is not ssl://host:port or "
                     "mqtts://host:port", cfg->mqtt_uri);
        if (cfg->mqtt_tls_key_file[0] && !cfg->mqtt_tls_cert_file[0])
                FAIL("mqtt.tls.key_file: set without mqtt.tls.cert_file");
        if (cfg->mqtt_password[0] && !cfg->mqtt_username[0])
                FAIL("mqtt.password: set without mqtt.username");
        if (cfg->metrics_listen[0] &&
            tg_parse_listen(cfg->metrics_listen, host, sizeof(host), &port))
                FAIL("metrics.listen: '%s' is not host:port (e.g. 127.0.0.1:9740)",
                     cfg->metrics_listen);
        return 0;
}

int tg_parse_listen(const char *s, char *host, size_t host_size, int *port) {
        const char *colon = strrchr(s, ':');
        const char *h = s;
        size_t hlen;
        char *end;
        long v;

        if (!colon || !colon[1])
                return -EINVAL;
        hlen = (size_t)(colon - s);
        if (hlen && s[0] == '[') { /* [v6]:port */
                if (s[hlen - 1] != ']')
                        return -EINVAL;
                h = s + 1;
                hlen -= 2;
        } else if (memchr(s, ':', hlen)) {
                return -EINVAL; /* a bare IPv6 address needs brackets */
        }
        if (hlen >= host_size)
                return -EINVAL;
        errno = 0;
        v = strtol(colon + 1, &end, 10);
        if (*end || errno || v < 0 || v > 65535 || colon[1] < '0' || colon[1] > '9')
                return -EINVAL;
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        *port = (int)v;
        return 0;
}

/* --- what the options name on this machine ------------------------------ */

static int check_readable(const char *what, const char *path, char *errstr,
                          size_t errstr_size) {
        struct stat st;
        int fd;

        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
                int e = errno;

                snprintf(errstr, errstr_size, "%s: %s: %s", what, path, strerror(e));
                return -e;
        }
        if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
                close(fd);
                snprintf(errstr, errstr_size, "%s: %s: not a regular file", what, path);
                return -EINVAL;
        }
        close(fd);
        return 0;
}

/* @p path, in place, becomes the directory it is in: "a/b" "a", "/a" "/",
 * "a" ".". */
static void to_parent_dir(char *path, size_t size) {
        char *slash = strrchr(path, '/');

        if (!slash)
                snprintf(path, size, ".");
        else
                slash[slash == path] = '\0';
}

/* The directory @p path is in, or would be made in, exists and is writable. */
static int check_dir_writable(const char *what, const char *path, char *errstr,
                              size_t errstr_size) {
        char dir[4096];
        struct stat st;

        snprintf(dir, sizeof(dir), "%s", path);
        /* The nearest existing ancestor decides whether it can be made. */
        for (;;) {
                if (!stat(dir, &st)) {
                        if (!S_ISDIR(st.st_mode)) {
                                snprintf(errstr, errstr_size, "%s: %s: not a directory",
                                         what, dir);
                                return -ENOTDIR;
                        }
                        break;
                }
                if (errno != ENOENT) {
                        int e = errno;

                        snprintf(errstr, errstr_size, "%s: %s: %s", what, path,
                                 strerror(e));
                        return -e;
                }
                to_parent_dir(dir, sizeof(dir)); /* relative: ends at the cwd */
        }
        if (access(dir, W_OK | X_OK)) {
                int e = errno;

                snprintf(errstr, errstr_size, "%s: %s: %s", what, dir, strerror(e));
                return -e;
        }
        return 0;
}

int tg_config_check_files(const struct tg_config *cfg, char *errstr,
                          size_t errstr_size) {
        size_t i, n;
        int r;

        for (i = 0; i < NOPTIONS; i++) {
                const char *v;

                if (!(options[i].flags & TG_OPT_FILE))
                        continue;
                v = *(char *const *)((const char *)cfg + options[i].offset);
                if (v[0] && (r = check_readable(options[i].name, v, errstr, errstr_size)))
                        return r;
        }
        for (i = 0; i < cfg->kafka_passthrough_cnt; i++) {
                const char *k = cfg->kafka_passthrough[i].key;
                const char *v = cfg->kafka_passthrough[i].value;
                char what[300];

                n = strlen(k);
                /* ssl.ca.location may also be "probe" (the system's CAs). */
                if (!((n > 9 && !strcmp(k + n - 9, ".location")) ||
                      !strcmp(k, "sasl.kerberos.keytab")) ||
                    !v[0] || !strcmp(v, "probe"))
                        continue;
                snprintf(what, sizeof(what), "kafka.%s", k);
                if ((r = check_readable(what, v, errstr, errstr_size)))
                        return r;
        }
        if (cfg->log_file[0]) {
                if (!access(cfg->log_file, F_OK)) {
                        if (access(cfg->log_file, W_OK)) {
                                r = -errno;
                                snprintf(errstr, errstr_size, "log.file: %s: %s",
                                         cfg->log_file, strerror(-r));
                                return r;
                        }
                } else {
                        /* fopen(3) makes the file, not its directory. */
                        char dir[4096];

                        snprintf(dir, sizeof(dir), "%s", cfg->log_file);
                        to_parent_dir(dir, sizeof(dir));
                        if (access(dir, W_OK | X_OK)) {
                                r = -errno;
                                snprintf(errstr, errstr_size, "log.file: %s: %s",
                                         cfg->log_file, strerror(-r));
                                return r;
                        }
                }
        }
        return check_dir_writable("state.dir", cfg->state_dir, errstr, errstr_size);
}

/* --- YAML ------------------------------------------------------------- */

#define PATH_DEPTH 8
#define KEY_MAX 128

/* One open YAML container while walking the event stream. */
struct yframe {
        int is_seq;
        char prefix[KEY_MAX];   /* dotted path of this container */
        char key[KEY_MAX];      /* mapping: full path of the key awaiting a value */
        int have_key;
        size_t key_line;
        unsigned index;         /* sequence: next item's index */
        char joined[1024];      /* sequence of scalars: items joined by ',' */
        size_t joined_len;
        int has_scalars, has_maps;
        size_t line;
};

static int option_takes_list(const char *key) {
        const struct tg_option *o = option_find(key);
        const char *dot;
        int k;

        /* subscriptions.N.<key> takes what the option it overrides takes */
        if (!o && !strncmp(key, "subscriptions.", 14) &&
            (dot = strchr(key + 14, '.'))) {
                for (k = 0; k < TG_SUB__COUNT; k++)
                        if (!strcmp(dot + 1, sub_keys[k].key))
                                o = option_find(sub_keys[k].option);
        }
        return o && (o->flags & TG_OPT_LIST);
}

#define VALUE_MAX 4096

/*
 * ${NAME} in a value becomes the environment variable NAME, so secrets
 * need not be written into the file (as in Telegraf and Fluent Bit);
 * $${ is a literal ${. An unset variable is an error rather than an empty
 * password.
 * @return 0, or -EINVAL with what is wrong in @p why.
 */
static int expand_env(const char *in, char *out, size_t size, char *why,
                      size_t why_size) {
        size_t n = 0;

        while (*in) {
                const char *add = in, *val;
                size_t len = 1;

                if (in[0] == '$' && in[1] == '$' && in[2] == '{') {
                        add = in + 1;
                        len = 2;
                        in += 3;
                } else if (in[0] == '$' && in[1] == '{') {
                        const char *end = strchr(in + 2, '}');
                        char name[128];
                        size_t nlen;

                        if (!end) {
                                snprintf(why, why_size, "'${' without a closing '}'");
                                return -EINVAL;
                        }
                        nlen = (size_t)(end - in - 2);
                        if (!nlen || nlen >= sizeof(name)) {
                                snprintf(why, why_size, "bad variable name in '%.*s'",
                                         (int)(end - in + 1), in);
                                return -EINVAL;
                        }
                        memcpy(name, in + 2, nlen);
                        name[nlen] = '\0';
                        if (!(val = getenv(name))) {
                                snprintf(why, why_size, "environment variable %s is not set",
                                         name);
                                return -EINVAL;
                        }
                        add = val;
                        len = strlen(val);
                        in = end + 1;
                } else {
                        in++;
                }
                if (n + len >= size) {
                        snprintf(why, why_size, "value longer than %zu bytes", size - 1);
                        return -EINVAL;
                }
                memcpy(out + n, add, len);
                n += len;
        }
        out[n] = '\0';
        return 0;
}

/* Every key the file has given so far, by full path, with its line. */
struct yseen {
        struct {
                char path[KEY_MAX];
                size_t line;
        } *keys;
        size_t n, cap;
};

/* Record @p path, given at @p line. @return 0, -EEXIST with the line of the
 * earlier one in @p first, or -ENOMEM. */
static int seen_add(struct yseen *seen, const char *path, size_t line, size_t *first) {
        size_t i;

        for (i = 0; i < seen->n; i++) {
                if (!strcmp(seen->keys[i].path, path)) {
                        *first = seen->keys[i].line;
                        return -EEXIST;
                }
        }
        if (seen->n == seen->cap) {
                size_t cap = seen->cap ? seen->cap * 2 : 64;
                void *keys = realloc(seen->keys, cap * sizeof(*seen->keys));

                if (!keys)
                        return -ENOMEM;
                seen->keys = keys;
                seen->cap = cap;
        }
        memcpy(seen->keys[seen->n].path, path, KEY_MAX);
        seen->keys[seen->n++].line = line;
        return 0;
}

static int path_join(char *dst, const char *prefix, const char *name) {
        int n = prefix[0] ? snprintf(dst, KEY_MAX, "%s.%s", prefix, name)
                          : snprintf(dst, KEY_MAX, "%s", name);

        return n < 0 || n >= KEY_MAX ? -1 : 0;
}

/*
 * Nested mappings name options by path (window: {size: 10s} sets
 * window.size); a sequence of mappings numbers its items
 * (subscriptions: [{topic: a}] sets subscriptions.0.topic); a sequence of
 * scalars becomes one comma-separated value (fields: [a, b]).
 *
 * A key may appear once: libyaml, like most YAML parsers, would let the
 * last of two win in silence. Keys are compared by their full path, so
 * window.size given once nested and once dotted is a duplicate too.
 */
int tg_config_load_file(struct tg_config *cfg, const char *path, char *errstr,
                        size_t errstr_size) {
        yaml_parser_t parser;
        yaml_event_t ev;
        FILE *f;
        struct yframe *st, *top, *child;
        struct yseen seen = {0};
        int depth = 0, r = 0, done = 0;
        char *value;

        if (!(f = fopen(path, "r"))) {
                r = -errno;
                if (errstr && errstr_size)
                        snprintf(errstr, errstr_size, "%s: cannot open: %s", path,
                                 strerror(-r));
                return r;
        }
        if (!(st = calloc(PATH_DEPTH, sizeof(*st))) || !(value = malloc(VALUE_MAX))) {
                free(st);
                fclose(f);
                return -ENOMEM;
        }
        if (!yaml_parser_initialize(&parser)) {
                free(value);
                free(st);
                fclose(f);
                return -ENOMEM;
        }
        yaml_parser_set_input_file(&parser, f);

#define YFAIL(line, ...)                                                       \
        do {                                                                   \
                int n_ = snprintf(errstr, errstr_size, "%s:%zu: ", path,       \
                                  (size_t)(line) + 1);                         \
                if (n_ > 0 && (size_t)n_ < errstr_size)                        \
                        snprintf(errstr + n_, errstr_size - (size_t)n_,        \
                                 __VA_ARGS__);                                 \
                r = -EINVAL;                                                   \
                yaml_event_delete(&ev);                                        \
                goto out;                                                      \
        } while (0)

/* The key awaiting a value in @p top gets one: refused if given before. */
#define YKEY_TAKEN(top)                                                        \
        do {                                                                   \
                size_t first_;                                                 \
                int r_ = seen_add(&seen, (top)->key, (top)->key_line, &first_); \
                if (r_ == -EEXIST)                                             \
                        YFAIL((top)->key_line, "%s: given twice, first at %s:%zu",  \
                              (top)->key, path, first_ + 1);                   \
                if (r_) {                                                      \
                        r = r_;                                                \
                        yaml_event_delete(&ev);                                \
                        goto out;                                              \
                }                                                              \
        } while (0)

        while (!done) {
                size_t line;

                if (!yaml_parser_parse(&parser, &ev)) {
                        snprintf(errstr, errstr_size, "%s:%zu: YAML syntax: %s", path,
                                 (size_t)parser.problem_mark.line + 1,
                                 parser.problem ? parser.problem : "error");
                        r = -EINVAL;
                        goto out;
                }
                line = ev.start_mark.line;
                top = depth ? &st[depth - 1] : NULL;

                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = 1;
                        break;
                case YAML_MAPPING_START_EVENT:
                case YAML_SEQUENCE_START_EVENT: {
                        int is_seq = ev.type == YAML_SEQUENCE_START_EVENT;

                        if (depth == PATH_DEPTH)
                                YFAIL(line, "nested too deeply");
                        if (!top && is_seq)
                                YFAIL(line, "the top level must be a mapping of options");
                        child = &st[depth];
                        memset(child, 0, sizeof(*child));
                        child->is_seq = is_seq;
                        child->line = line;
                        if (top && !top->is_seq) {
                                if (!top->have_key)
                                        YFAIL(line, is_seq ? "a list cannot be a key"
                                                           : "a mapping cannot be a key");
                                YKEY_TAKEN(top);
                                memcpy(child->prefix, top->key, KEY_MAX);
                                top->have_key = 0;
                        } else if (top) {
                                char idx[16];

                                if (is_seq)
                                        YFAIL(line, "%s: lists of lists are not accepted",
                                              top->prefix);
                                if (top->has_scalars)
                                        YFAIL(line, "%s: a list mixes values and mappings",
                                              top->prefix);
                                snprintf(idx, sizeof(idx), "%u", top->index++);
                                top->has_maps = 1;
                                if (path_join(child->prefix, top->prefix, idx))
                                        YFAIL(line, "key too long");
                        }
                        depth++;
                        break;
                }
                case YAML_MAPPING_END_EVENT:
                        depth--;
                        break;
                case YAML_SEQUENCE_END_EVENT:
                        if (top->has_scalars) {
                                char origin[4200];

                                if (!option_takes_list(top->prefix))
                                        YFAIL(top->line, "%s: lists are not accepted here",
                                              top->prefix);

                                snprintf(origin, sizeof(origin), "%s:%zu", path,
                                         top->line + 1);
                                if ((r = tg_config_set(cfg, top->prefix, top->joined, origin,
                                                       errstr, errstr_size))) {
                                        yaml_event_delete(&ev);
                                        goto out;
                                }
                        }
                        depth--;
                        break;
                case YAML_ALIAS_EVENT:
                        YFAIL(line, "aliases are not accepted");
                case YAML_SCALAR_EVENT: {
                        const char *text = (const char *)ev.data.scalar.value;
                        size_t len = ev.data.scalar.length;
                        char why[200];

                        if (!top) {
                                /* An empty file parses as one empty scalar. */
                                if (len == 0)
                                        break;
                                YFAIL(line, "the top level must be a mapping of options");
                        }
                        if (strlen(text) != len) /* a "\0" escape */
                                YFAIL(line, "%s: contains a NUL character",
                                      top->is_seq ? top->prefix
                                      : top->have_key ? top->key : "a key");
                        if (top->is_seq || top->have_key) {
                                if (expand_env(text, value, VALUE_MAX, why, sizeof(why)))
                                        YFAIL(line, "%s: %s",
                                              top->is_seq ? top->prefix : top->key, why);
                                text = value;
                                len = strlen(value);
                        }
                        if (top->is_seq) {
                                if (top->has_maps)
                                        YFAIL(line, "%s: a list mixes values and mappings",
                                              top->prefix);
                                if (top->joined_len + len + 2 > sizeof(top->joined))
                                        YFAIL(line, "%s: list too long", top->prefix);
                                if (top->joined_len)
                                        top->joined[top->joined_len++] = ',';
                                memcpy(top->joined + top->joined_len, text, len + 1);
                                top->joined_len += len;
                                top->has_scalars = 1;
                        } else if (!top->have_key) {
                                if (path_join(top->key, top->prefix, text))
                                        YFAIL(line, "key too long");
                                top->have_key = 1;
                                top->key_line = line;
                        } else {
                                char origin[4200];

                                YKEY_TAKEN(top);
                                snprintf(origin, sizeof(origin), "%s:%zu", path, line + 1);
                                if ((r = tg_config_set(cfg, top->key, text, origin,
                                                       errstr, errstr_size))) {
                                        yaml_event_delete(&ev);
                                        goto out;
                                }
                                top->have_key = 0;
                        }
                        break;
                }
                default:
                        break;
                }
                yaml_event_delete(&ev);
        }
out:
#undef YKEY_TAKEN
#undef YFAIL
        free(seen.keys);
        yaml_parser_delete(&parser);
        free(value);
        free(st);
        fclose(f);
        return r;
}

/* --- output ------------------------------------------------------------ */

/* A YAML double-quoted scalar, so that the dump loads back as it was. */
static void put_quoted(FILE *out, const char *v) {
        fputc('"', out);
        for (; *v; v++) {
                unsigned char c = (unsigned char)*v;

                if (c == '"' || c == '\\')
                        fprintf(out, "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(out, "\\x%02x", c);
                else
                        fputc(c, out);
        }
        fputc('"', out);
}

void tg_config_dump(const struct tg_config *cfg, FILE *out) {
        size_t i;

        for (i = 0; i < NOPTIONS; i++) {
                const struct tg_option *o = &options[i];
                const void *field = (const char *)cfg + o->offset;

                if ((o->flags & TG_OPT_SECRET) && (*(char *const *)field)[0])
                        fprintf(out, "%s: \"***\"\n", o->name);
                else if (o->type == TG_OPT_STRING || o->type == TG_OPT_ENUM) {
                        const char *v = *(char *const *)field;

                        /* the filter in effect, so that the dump loads back as it ran */
                        if (field == (const void *)&cfg->mqtt_topic && !cfg->nsubs &&
                            !cfg->mqtt_topic_set && !strcmp(cfg->mqtt_format, "sparkplug"))
                                v = "spBv1.0/#";
                        fprintf(out, "%s: ", o->name);
                        put_quoted(out, v);
                        fputc('\n', out);
                }
                else if (o->type == TG_OPT_DURATION)
                        fprintf(out, "%s: %lldms\n", o->name,
                                (long long)*(const int64_t *)field);
                else
                        fprintf(out, "%s: %lld\n", o->name,
                                (long long)*(const int64_t *)field);
        }
        for (i = 0; i < cfg->nsubs; i++) {
                int k;

                for (k = 0; k < TG_SUB__COUNT; k++) {
                        if (!cfg->subs[i][k])
                                continue;
                        fprintf(out, "subscriptions.%zu.%s: ", i, sub_keys[k].key);
                        put_quoted(out, cfg->subs[i][k]);
                        fputc('\n', out);
                }
        }
        for (i = 0; i < cfg->kafka_passthrough_cnt; i++) {
                const char *k = cfg->kafka_passthrough[i].key;
                int secret = strstr(k, "password") || strstr(k, "secret") ||
                             strstr(k, ".pem");

                fprintf(out, "kafka.%s: ", k);
                put_quoted(out, secret ? "***" : cfg->kafka_passthrough[i].value);
                fputc('\n', out);
        }
}

void tg_config_reference(FILE *out) {
        size_t i;

        fprintf(out, "| option | type | default | description |\n"
                     "|---|---|---|---|\n");
        for (i = 0; i < NOPTIONS; i++) {
                const struct tg_option *o = &options[i];
                const char *type = o->type == TG_OPT_STRING     ? "string"
                                   : o->type == TG_OPT_INT      ? "integer"
                                   : o->type == TG_OPT_DURATION ? "duration"
                                                                : "enum";

                fprintf(out, "| `%s` | %s", o->name, type);
                if (o->type == TG_OPT_ENUM) {
                        const char *p;

                        fputs(": ", out);
                        for (p = o->enum_values; *p; p++)
                                if (*p == '|')
                                        fputs(", ", out);
                                else
                                        fputc(*p, out);
                } else if (o->type == TG_OPT_INT) {
                        fprintf(out, " %lld..%lld", (long long)o->min, (long long)o->max);
                }
                fprintf(out, " | `%s` | %s |\n", o->def[0] ? o->def : "\"\"", o->doc);
        }
        for (i = 0; i < TG_SUB__COUNT; i++)
                fprintf(out, "| `subscriptions[].%s` | as `%s` | `%s`'s value | "
                             "This subscription's own %s (a list of at most %d "
                             "subscriptions; each key not given inherits the option "
                             "named). |\n",
                        sub_keys[i].key, sub_keys[i].option, sub_keys[i].option,
                        sub_keys[i].key, TG_SUBSCRIPTIONS_MAX);
}
