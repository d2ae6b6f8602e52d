/* sim.c - tumblegate-sim: N simulated sensor nodes publishing readings over MQTT (Paho async). */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "clock.h"
#include "codec.h"
#include "codec_senml.h"
#include "field.h"
#include "log.h"
#include "reading.h"
#include "rng.h"
#include "sparkplug_node.h"

#ifndef TG_VERSION
#define TG_VERSION "dev"
#endif

#define SIM_FIELDS_MAX 3
#define SIM_TOPIC_PREFIX_MAX 1024
/* One reading is an id of at most 64 bytes, a timestamp and three doubles:
 * a few hundred bytes in any of the four encodings, so these never truncate. */
#define SIM_PAYLOAD_MAX 1024
/* The largest garbage payload is the too_large kind: a 70 000-byte string
 * member, past the decoders' 64 KiB limit, plus a reading's worth of keys. */
#define SIM_GARBAGE_BLOB_LEN 70000
#define SIM_GARBAGE_MAX (SIM_GARBAGE_BLOB_LEN + 2 * SIM_PAYLOAD_MAX)
/* Nesting of the too_deep kind: beyond the decoders' TG_DEPTH_MAX. */
#define SIM_GARBAGE_DEPTH 20
#define SIM_GARBAGE_BAD_ID_LEN 100
#define SIM_DAY_MS (86400LL * 1000)
/* The earliest absolute time SenML can carry, 2^28 s (RFC 8428 4.5.3). */
#define SIM_SENML_MIN_MS ((1LL << 28) * 1000)
#define SIM_DRAIN_TIMEOUT_MS 10000
#define SIM_CONNECT_TIMEOUT_S 10
#define SIM_DISCONNECT_TIMEOUT_MS 2000
/* A full window with no acknowledgement for this long means the broker or
 * the client library has stopped answering; waiting longer helps nobody. */
#define SIM_STALL_MS 30000
#define SIM_PROGRESS_MS 5000
#define SIM_LAG_WARN_MS 1000
#define SIM_EXIT_USAGE 2

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* The wire formats the sim speaks: the gateway's flat object/map, or a
 * SenML pack (RFC 8428). The sim keeps its own list because SenML is a
 * separate codec (codec_senml.h) beside the flat ones of codec.h. */
/* --shape: transforms of the natural signal, each drawing from a stream of
 * its own so the natural values never change. */
enum sim_shape { SIM_SHAPE_NATURAL, SIM_SHAPE_STEPPED, SIM_SHAPE_NOISY, SIM_SHAPE_SPIKY,
                 SIM_SHAPE__COUNT };
static const char *const sim_shape_names[SIM_SHAPE__COUNT] = {"natural", "stepped", "noisy",
                                                              "spiky"};

enum sim_format {
        SIM_FORMAT_CBOR,
        SIM_FORMAT_JSON,
        SIM_FORMAT_SENML_JSON,
        SIM_FORMAT_SENML_CBOR,
        SIM_FORMAT_SPARKPLUG,
        SIM_FORMAT__COUNT
};

static const char *const sim_format_names[SIM_FORMAT__COUNT] = {
        [SIM_FORMAT_CBOR] = "cbor",
        [SIM_FORMAT_JSON] = "json",
        [SIM_FORMAT_SENML_JSON] = "senml-json",
        [SIM_FORMAT_SENML_CBOR] = "senml-cbor",
        [SIM_FORMAT_SPARKPLUG] = "sparkplug",
};

static int sim_format_is_senml(enum sim_format f) {
        return f == SIM_FORMAT_SENML_JSON || f == SIM_FORMAT_SENML_CBOR;
}

struct sim_opts {
        const char *uri;
        const char *client_id;
        char client_id_buf[64];
        unsigned sensors;
        const char *id_prefix;
        const char *topic_prefix;
        unsigned rate;
        unsigned step_ms;       /* derived: 1000 / rate, at least 1 */
        uint64_t duration_s;    /* 0: until a signal */
        int fast;
        int have_start;
        int64_t start_ms;
        int qos;
        enum sim_format format;
        uint64_t seed;
        const char *truth_path;
        double garbage;         /* fraction of messages that are garbage, 0..1 */
        const char *garbage_truth_path;
        unsigned inflight;
        unsigned nfields;
        int quiet;
        struct sim_field_opts field;    /* field conditions (field.h) */
        unsigned shape;         /* enum sim_shape */
        const char *sp_group;   /* --format sparkplug */
        const char *sp_node;
        const char *bdseq_path;
};

enum sim_opt_key {
        OPT_URI = 256,
        OPT_CLIENT_ID,
        OPT_SENSORS,
        OPT_ID_PREFIX,
        OPT_TOPIC_PREFIX,
        OPT_RATE,
        OPT_DURATION,
        OPT_FAST,
        OPT_START_MS,
        OPT_QOS,
        OPT_FORMAT,
        OPT_SEED,
        OPT_TRUTH,
        OPT_INFLIGHT,
        OPT_FIELDS,
        OPT_QUIET,
        OPT_GARBAGE,
        OPT_GARBAGE_TRUTH,
        OPT_REORDER, OPT_LATE, OPT_LATE_MS, OPT_SKEW, OPT_DRIFT, OPT_OFFLINE, OPT_OFFLINE_MS,
        OPT_DISCONNECT, OPT_DISCONNECT_MS, OPT_DUPLICATE,
        OPT_SHAPE,
        OPT_GROUP, OPT_NODE, OPT_BDSEQ_FILE,
        OPT_HELP = 'h',
        OPT_VERSION = 'V',
};

/* The one description of every option: getopt_long's table and --help are
 * both generated from it, so the help cannot drift from the parser. */
struct sim_option {
        const char *name;
        int has_arg;
        int key;
        const char *metavar;    /* NULL for flags */
        const char *doc;
};

static const struct sim_option sim_options[] = {
        {"uri", required_argument, OPT_URI, "URI",
         "broker to publish to (default tcp://127.0.0.1:1883)"},
        {"client-id", required_argument, OPT_CLIENT_ID, "ID",
         "MQTT client id (default tumblegate-sim-<pid>)"},
        {"sensors", required_argument, OPT_SENSORS, "N",
         "number of simulated sensors, 1..1000000 (default 10)"},
        {"id-prefix", required_argument, OPT_ID_PREFIX, "P",
         "sensor ids are P + 4-digit zero-padded index, e.g. node-0007 (default node-)"},
        {"topic-prefix", required_argument, OPT_TOPIC_PREFIX, "T",
         "topic is T/<id>/telemetry (default sensors)"},
        {"rate", required_argument, OPT_RATE, "R",
         "readings per second per sensor; event-time step is 1000/R ms, at least 1 (default 10)"},
        {"duration", required_argument, OPT_DURATION, "S",
         "seconds of event time per sensor; 0 runs until SIGINT/SIGTERM (default 0)"},
        {"fast", no_argument, OPT_FAST, NULL,
         "publish as fast as the broker allows, with synthetic event time, "
         "instead of pacing to the wall clock"},
        {"start-ms", required_argument, OPT_START_MS, "MS",
         "first event timestamp in ms since the epoch, 1 to 253402300799999 "
         "(default: now; with --fast, now minus the duration)"},
        {"qos", required_argument, OPT_QOS, "0|1", "MQTT QoS of every publish (default 1)"},
        {"format", required_argument, OPT_FORMAT, "F",
         "payload encoding: cbor or json (a flat map/object: sensor, ts, one member per field), "
         "senml-json or senml-cbor (a SenML pack, RFC 8428), or sparkplug: one Sparkplug B "
         "edge node whose devices are the sensors, on spBv1.0/G/<type>/N/<id> (NBIRTH with "
         "bdSeq and an NDEATH will, a DBIRTH per device carrying its first reading, DDATA by "
         "alias, seq 0..255, NBIRTH and DBIRTHs again on the NCMD Node Control/Rebirth; "
         "--topic-prefix is not used) (default cbor)"},
        {"group", required_argument, OPT_GROUP, "G",
         "sparkplug: the group id; truth sensor ids are G/N/<id> (default tumblegate)"},
        {"node", required_argument, OPT_NODE, "N",
         "sparkplug: the edge node id (default the client id)"},
        {"bdseq-file", required_argument, OPT_BDSEQ_FILE, "FILE",
         "sparkplug: keep the session counter bdSeq here, one more (mod 256) each run "
         "(default: the wall clock's seconds mod 256)"},
        {"seed", required_argument, OPT_SEED, "N",
         "seed of the signal generator; same seed and options, same values (default 1)"},
        {"truth", required_argument, OPT_TRUTH, "FILE",
         "write every successfully published reading to FILE as one JSON line "
         "(the json encoding of the reading, whatever --format is)"},
        {"inflight", required_argument, OPT_INFLIGHT, "N",
         "most publishes awaiting completion at once, 1..32767 (default 512)"},
        {"fields", required_argument, OPT_FIELDS, "N",
         "fields per reading, 1..3: temperature, humidity, pressure (default 3)"},
        {"garbage", required_argument, OPT_GARBAGE, "FRACTION",
         "make this fraction of the messages, 0..1, bad payloads instead of readings; the "
         "seeded generator picks which, and they cycle through the kinds listed below. "
         "Garbage goes to the sensor's own topic with the same QoS, takes no event-time step "
         "(the sensor's next reading keeps its timestamp) and is never written to --truth. "
         "1 sends only garbage, one message per sensor and step (default 0)"},
        {"garbage-truth", required_argument, OPT_GARBAGE_TRUTH, "FILE",
         "write every successfully published garbage message to FILE as one JSON line: "
         "{\"topic\":T,\"kind\":K,\"reason\":R,\"bytes\":N}, K the kind (listed below), "
         "R the reason code the gateway "
         "must refuse it with"},
        /* Field conditions (field.h); any of them adds "seq" (the order sent)
         * to every truth line and a first line with the options. */
        {"reorder", required_argument, OPT_REORDER, "MS",
         "field: hold each reading 0..MS ms of event time before sending it (bounded "
         "reordering) (default 0)"},
        {"late", required_argument, OPT_LATE, "FRACTION",
         "field: hold this fraction of readings --late-ms before sending them (default 0)"},
        {"late-ms", required_argument, OPT_LATE_MS, "MS",
         "field: how long --late holds a reading; past the gateway's grace to be late "
         "(default 5000)"},
        {"skew", required_argument, OPT_SKEW, "MS",
         "field: each sensor's clock is off by a seeded amount in +/- MS (default 0)"},
        {"drift", required_argument, OPT_DRIFT, "PPM",
         "field: each sensor's clock runs fast or slow by a seeded rate in +/- PPM (default 0)"},
        {"offline", required_argument, OPT_OFFLINE, "FRACTION",
         "field: this fraction of sensors goes offline once for --offline-ms, then sends its "
         "current reading and after it the backlog, oldest first (default 0)"},
        {"offline-ms", required_argument, OPT_OFFLINE_MS, "MS",
         "field: length of an outage (default 20000)"},
        {"disconnect", required_argument, OPT_DISCONNECT, "FRACTION",
         "field: this fraction of sensors publishes over a connection of its own with a will "
         "(T/<id>/status, \"offline\") and drops it once without DISCONNECT; readings taken "
         "during --disconnect-ms are lost (default 0)"},
        {"disconnect-ms", required_argument, OPT_DISCONNECT_MS, "MS",
         "field: how long a dropped sensor stays away (default 5000)"},
        {"duplicate", required_argument, OPT_DUPLICATE, "FRACTION",
         "field: send this fraction of readings twice (default 0)"},
        {"shape", required_argument, OPT_SHAPE, "S",
         "what the signals look like: natural (slow sine, drift and a little noise), "
         "stepped (a level held, jumping now and then, no noise), noisy (natural with ten "
         "times the noise) or spiky (natural with one reading in 200 a spike); seeded, "
         "and natural values are the same whatever else is chosen (default natural)"},
        {"quiet", no_argument, OPT_QUIET, NULL,
         "no start-up and progress lines; the summary is still printed"},
        {"help", no_argument, OPT_HELP, NULL, "print this help and exit"},
        {"version", no_argument, OPT_VERSION, NULL, "print the version and exit"},
};

#define SIM_NOPTIONS (sizeof(sim_options) / sizeof(*sim_options))

/* Garbage kinds, in the order --garbage cycles through them. */
enum sim_garbage_kind {
        GARBAGE_NOT_DECODABLE,
        GARBAGE_WRONG_TYPE,
        GARBAGE_MISSING_ID,
        GARBAGE_MISSING_TS,
        GARBAGE_INVALID_TS,
        GARBAGE_NON_FINITE,
        GARBAGE_TOO_LARGE,
        GARBAGE_TOO_DEEP,
        GARBAGE_FUTURE_TS,
        GARBAGE_BAD_ID,
        GARBAGE_BAD_SENML,
        GARBAGE_BAD_FIELD_NAME,
        GARBAGE_TS_ZERO,
        GARBAGE_TS_NEGATIVE,
        GARBAGE_DUPLICATE_MEMBER,
        GARBAGE_SPARKPLUG_BAD_TOPIC,
        GARBAGE_SPARKPLUG_UNKNOWN_ALIAS,
        GARBAGE__COUNT
};

/* The one description of every garbage kind: what is sent, and the reason
 * code the gateway must refuse it with in each format (NULL: the format
 * cannot express the kind, so it is skipped). The codes are the gateway's:
 * tg_decode_err_name() values, and future_timestamp from the window engine.
 * --help and the garbage truth file are both generated from this table. */
struct sim_garbage_desc {
        const char *name; /* in the garbage truth file: "kind" */
        const char *what;
        const char *reason[SIM_FORMAT__COUNT];
};

static const struct sim_garbage_desc sim_garbage_kinds[GARBAGE__COUNT] = {
        /*                      cbor, json, senml-json, senml-cbor, sparkplug */
        [GARBAGE_NOT_DECODABLE] = {"not_decodable",
                "random bytes that are neither a JSON object nor a CBOR map (Sparkplug: "
                "nor a protobuf message, on a DDATA topic)",
                {"not_decodable", "not_decodable", "not_decodable", "not_decodable",
                 "not_decodable"}},
        [GARBAGE_WRONG_TYPE] = {"wrong_type",
                "the JSON number 42 at the top level (an array would be read as "
                "a SenML pack; not in SenML, whose decoders call any pack of the "
                "wrong shape bad_senml)",
                {"wrong_type", "wrong_type", NULL, NULL}},
        [GARBAGE_MISSING_ID] = {"missing_id",
                "a payload of the format without the sensor id (SenML: without \"bn\")",
                {"missing_id", "missing_id", "missing_id", "missing_id"}},
        [GARBAGE_MISSING_TS] = {"missing_ts",
                "a payload of the format without \"ts\" (not in SenML, where a record "
                "without a time is timed \"now\")",
                {"missing_timestamp", "missing_timestamp", NULL, NULL}},
        [GARBAGE_INVALID_TS] = {"invalid_ts",
                "a payload of the format whose \"ts\" is a string (SenML, where a string "
                "is bad_senml: a base time that is NaN, which JSON cannot write)",
                {"invalid_timestamp", "invalid_timestamp", NULL, "invalid_timestamp"}},
        [GARBAGE_NON_FINITE] = {"non_finite",
                "CBOR: a field whose value is NaN; JSON, which has no NaN: "
                "\"temperature\":\"hot\" (SenML: \"vs\":\"hot\") and no numeric field",
                {"non_finite_value", "no_fields", "no_fields", "non_finite_value"}},
        [GARBAGE_TOO_LARGE] = {"too_large",
                "a JSON object over 64 KiB: a 70000-byte string member",
                {"too_large", "too_large", "too_large", "too_large"}},
        [GARBAGE_TOO_DEEP] = {"too_deep",
                "a payload of the format with a member (SenML: an unknown label) holding "
                "arrays nested 20 deep",
                {"too_deep", "too_deep", "too_deep", "too_deep"}},
        [GARBAGE_FUTURE_TS] = {"future_ts",
                "a valid reading timestamped one day ahead of the wall clock",
                {"future_timestamp", "future_timestamp", "future_timestamp",
                 "future_timestamp"}},
        [GARBAGE_BAD_ID] = {"bad_id",
                "a payload of the format whose sensor id (SenML: base name) is 100 bytes long",
                {"bad_id", "bad_id", "bad_id", "bad_id"}},
        [GARBAGE_BAD_SENML] = {"bad_senml",
                "a SenML pack of version (bver) 99",
                {NULL, NULL, "bad_senml", "bad_senml"}},
        [GARBAGE_BAD_FIELD_NAME] = {"bad_field_name",
                "a payload of the format whose first field name (SenML: \"n\") is not "
                "UTF-8: \"temp\" followed by the bytes 0xC3 0x28",
                {"bad_field_name", "bad_field_name", "bad_field_name", "bad_field_name"}},
        [GARBAGE_TS_ZERO] = {"ts_zero",
                "a reading timestamped 0, the epoch, which Kafka cannot carry (SenML, which "
                "reads any time before 1978 as relative to now: a base time of -1e10 s, "
                "317 years before now)",
                {"timestamp_out_of_range", "timestamp_out_of_range", "timestamp_out_of_range",
                 "timestamp_out_of_range"}},
        [GARBAGE_TS_NEGATIVE] = {"ts_negative",
                "a reading timestamped -1, which Kafka reads as no timestamp (SenML: a base "
                "time of 1e300 s, past the year 9999)",
                {"timestamp_out_of_range", "timestamp_out_of_range", "timestamp_out_of_range",
                 "timestamp_out_of_range"}},
        [GARBAGE_DUPLICATE_MEMBER] = {"duplicate_member",
                "a payload of the format that gives its \"ts\" member twice, with the same "
                "value (SenML: a record with \"v\" twice)",
                {"duplicate_member", "duplicate_member", "duplicate_member",
                 "duplicate_member"}},
        [GARBAGE_SPARKPLUG_BAD_TOPIC] = {"sparkplug_bad_topic",
                "the node's NDEATH payload sent to spBv1.0/G/DTAD/N/<id>, a message type "
                "Sparkplug does not have (Sparkplug only)",
                {NULL, NULL, NULL, NULL, "sparkplug_bad_topic"}},
        [GARBAGE_SPARKPLUG_UNKNOWN_ALIAS] = {"sparkplug_unknown_alias",
                "a DDATA of a born device whose one metric has an alias no birth gave; it takes "
                "the next seq, and the gateway asks for a rebirth, which the node answers "
                "(Sparkplug only)",
                {NULL, NULL, NULL, NULL, "sparkplug_unknown_alias"}},
};

/* The name of the bad_field_name kind: a cut two-byte sequence. */
static const char sim_bad_field_name[] = "temp\xc3(";

/* Print @p text word-wrapped from column @p indent to @p width, so that
 * --help reads well in an 80-column terminal. */
static void sim_usage_wrap(FILE *out, const char *text, int indent, int width) {
        int col = indent;

        while (*text) {
                int len = (int)strcspn(text, " ");

                if (col > indent && col + 1 + len > width) {
                        fprintf(out, "\n%*s", indent, "");
                        col = indent;
                }
                fprintf(out, " %.*s", len, text);
                col += 1 + len;
                text += len;
                text += strspn(text, " ");
        }
        fputc('\n', out);
}

static void sim_usage(FILE *out, const char *prog) {
        size_t i;

        fprintf(out,
                "Usage: %s [OPTION]...\n"
                "Simulate sensor nodes that publish readings (CBOR, JSON or SenML) to an MQTT\n"
                "broker. At every event-time step each sensor publishes one reading, with\n"
                "--garbage some bad payloads between them. The exit status is 0 only if every\n"
                "publish was confirmed (QoS 1: acknowledged by the broker; QoS 0: written to\n"
                "the connection).\n\n",
                prog);
        for (i = 0; i < SIM_NOPTIONS; i++) {
                const struct sim_option *o = &sim_options[i];
                char head[48];

                snprintf(head, sizeof(head), "--%s%s%s", o->name, o->metavar ? " " : "",
                         o->metavar ? o->metavar : "");
                fprintf(out, "  %-22s", head);
                sim_usage_wrap(out, o->doc, 24, 79);
        }
        fprintf(out, "\nGarbage kinds (--garbage), in the order they cycle, each with the reason "
                     "code\nthe gateway must give it:\n");
        for (i = 0; i < GARBAGE__COUNT; i++) {
                const struct sim_garbage_desc *g = &sim_garbage_kinds[i];
                char reasons[256], what[512];
                size_t len = 0;
                int f, same = g->reason[0] != NULL;

                for (f = 1; f < SIM_FORMAT__COUNT && same; f++)
                        same = g->reason[f] && !strcmp(g->reason[f], g->reason[0]);
                if (same) {
                        snprintf(reasons, sizeof(reasons), "-> %s", g->reason[0]);
                } else {
                        for (f = 0; f < SIM_FORMAT__COUNT; f++)
                                len += (size_t)snprintf(reasons + len, sizeof(reasons) - len,
                                                        "%s%s: %s", f ? ", " : "-> ",
                                                        sim_format_names[f],
                                                        g->reason[f] ? g->reason[f] : "not sent");
                }
                snprintf(what, sizeof(what), "%s: %s", g->name, g->what);
                fprintf(out, "  %2zu.", i + 1);
                sim_usage_wrap(out, what, 5, 79);
                fprintf(out, "     ");
                sim_usage_wrap(out, reasons, 8, 79);
        }
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out) {
        char *end;
        unsigned long long v;

        errno = 0;
        /* strtoull accepts "-1" and wraps it; a count is never negative. */
        if (*s == '-' || *s == '\0')
                goto bad;
        v = strtoull(s, &end, 10);
        if (errno || *end != '\0' || v < min || v > max)
                goto bad;
        *out = v;
        return 0;
bad:
        tg_err("--%s: '%s' is not an integer in %" PRIu64 "..%" PRIu64, opt, s, min, max);
        return -EINVAL;
}

static int parse_unsigned(const char *opt, const char *s, unsigned min, unsigned max,
                          unsigned *out) {
        uint64_t v;
        int rc = parse_u64(opt, s, min, max, &v);

        if (!rc)
                *out = (unsigned)v;
        return rc;
}

static int parse_fraction(const char *opt, const char *s, double *out) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        /* "v >= 0 && v <= 1" is false for NaN, so NaN is refused too. */
        if (errno || end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
                tg_err("--%s: '%s' is not a number in 0..1", opt, s);
                return -EINVAL;
        }
        *out = v;
        return 0;
}

/* Wildcards in a topic name make the broker refuse the publish and '/' in
 * an id would split it over two topic levels; refuse both up front. */
static int check_topic_text(const char *opt, const char *s, const char *forbidden) {
        const char *bad = strpbrk(s, forbidden);

        if (bad) {
                tg_err("--%s: '%s' must not contain '%c'", opt, s, *bad);
                return -EINVAL;
        }
        return 0;
}

/** @return 0 to run, 1 when --help/--version was served, or -EINVAL. */
static int sim_opts_parse(struct sim_opts *o, int argc, char **argv) {
        struct option longopts[SIM_NOPTIONS + 1];
        uint64_t v64;
        size_t i;
        int c, rc = 0;

        memset(o, 0, sizeof(*o));
        o->uri = "tcp://127.0.0.1:1883";
        o->sensors = 10;
        o->id_prefix = "node-";
        o->topic_prefix = "sensors";
        o->rate = 10;
        o->qos = 1;
        o->format = SIM_FORMAT_CBOR;
        o->seed = 1;
        o->inflight = 512;
        o->nfields = SIM_FIELDS_MAX;
        o->field.late_ms = 5000;
        o->field.offline_ms = 20000;
        o->field.disconnect_ms = 5000;

        for (i = 0; i < SIM_NOPTIONS; i++) {
                longopts[i].name = sim_options[i].name;
                longopts[i].has_arg = sim_options[i].has_arg;
                longopts[i].flag = NULL;
                longopts[i].val = sim_options[i].key;
        }
        memset(&longopts[SIM_NOPTIONS], 0, sizeof(longopts[SIM_NOPTIONS]));

        while (!rc && (c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_URI:
                        o->uri = optarg;
                        break;
                case OPT_CLIENT_ID:
                        if (!*optarg) {
                                tg_err("--client-id: must not be empty");
                                rc = -EINVAL;
                        }
                        o->client_id = optarg;
                        break;
                case OPT_SENSORS:
                        rc = parse_unsigned("sensors", optarg, 1, 1000000, &o->sensors);
                        break;
                case OPT_ID_PREFIX:
                        o->id_prefix = optarg;
                        rc = check_topic_text("id-prefix", optarg, "/+#");
                        break;
                case OPT_TOPIC_PREFIX:
                        o->topic_prefix = optarg;
                        rc = check_topic_text("topic-prefix", optarg, "+#");
                        if (!rc && (!*optarg || strlen(optarg) > SIM_TOPIC_PREFIX_MAX)) {
                                tg_err("--topic-prefix: must be 1..%d bytes", SIM_TOPIC_PREFIX_MAX);
                                rc = -EINVAL;
                        }
                        break;
                case OPT_RATE:
                        rc = parse_unsigned("rate", optarg, 1, 1000000, &o->rate);
                        break;
                case OPT_DURATION:
                        /* Bounded so that start + duration stays a valid ts. */
                        rc = parse_u64("duration", optarg, 0, 100ULL * 366 * 86400, &o->duration_s);
                        break;
                case OPT_FAST:
                        o->fast = 1;
                        break;
                case OPT_START_MS:
                        /* The gateway takes event times in [TG_TS_MIN, TG_TS_MAX]. */
                        rc = parse_u64("start-ms", optarg, TG_TS_MIN, TG_TS_MAX, &v64);
                        o->start_ms = (int64_t)v64;
                        o->have_start = 1;
                        break;
                case OPT_QOS:
                        rc = parse_u64("qos", optarg, 0, 1, &v64);
                        o->qos = (int)v64;
                        break;
                case OPT_FORMAT:
                        for (i = 0; i < SIM_FORMAT__COUNT; i++)
                                if (!strcmp(optarg, sim_format_names[i]))
                                        break;
                        if (i == SIM_FORMAT__COUNT) {
                                tg_err("--format: '%s' is none of cbor, json, senml-json, "
                                       "senml-cbor, sparkplug", optarg);
                                rc = -EINVAL;
                        }
                        o->format = (enum sim_format)i;
                        break;
                case OPT_SEED:
                        rc = parse_u64("seed", optarg, 0, UINT64_MAX, &o->seed);
                        break;
                case OPT_TRUTH:
                        o->truth_path = optarg;
                        break;
                case OPT_INFLIGHT:
                        /* Paho numbers QoS 1 messages 1..65535 and we let it
                         * hold twice the window (see sim_connect). */
                        rc = parse_unsigned("inflight", optarg, 1, 32767, &o->inflight);
                        break;
                case OPT_FIELDS:
                        rc = parse_unsigned("fields", optarg, 1, SIM_FIELDS_MAX, &o->nfields);
                        break;
                case OPT_SHAPE:
                        for (i = 0; i < SIM_SHAPE__COUNT; i++)
                                if (!strcmp(optarg, sim_shape_names[i]))
                                        break;
                        if (i == SIM_SHAPE__COUNT) {
                                tg_err("--shape: '%s' is none of natural, stepped, noisy, "
                                       "spiky", optarg);
                                rc = -EINVAL;
                        }
                        o->shape = (unsigned)i;
                        break;
                case OPT_QUIET:
                        o->quiet = 1;
                        break;
                case OPT_GROUP:
                case OPT_NODE: {
                        const char *opt = c == OPT_GROUP ? "group" : "node";

                        /* Sparkplug ids are whole topic levels. */
                        rc = check_topic_text(opt, optarg, "/+#");
                        if (!rc && !*optarg) {
                                tg_err("--%s: must not be empty", opt);
                                rc = -EINVAL;
                        }
                        *(c == OPT_GROUP ? &o->sp_group : &o->sp_node) = optarg;
                        break;
                }
                case OPT_BDSEQ_FILE:
                        o->bdseq_path = optarg;
                        break;
                case OPT_GARBAGE:
                        rc = parse_fraction("garbage", optarg, &o->garbage);
                        break;
                case OPT_GARBAGE_TRUTH:
                        o->garbage_truth_path = optarg;
                        break;
                case OPT_REORDER:
                        rc = parse_unsigned("reorder", optarg, 0, 3600000, &o->field.reorder_ms);
                        break;
                case OPT_LATE:
                        rc = parse_fraction("late", optarg, &o->field.late);
                        break;
                case OPT_LATE_MS:
                        rc = parse_unsigned("late-ms", optarg, 0, 3600000, &o->field.late_ms);
                        break;
                case OPT_SKEW:
                        rc = parse_unsigned("skew", optarg, 0, 3600000, &o->field.skew_ms);
                        break;
                case OPT_DRIFT:
                        rc = parse_u64("drift", optarg, 0, 100000, &v64);
                        o->field.drift_ppm = (double)v64;
                        break;
                case OPT_OFFLINE:
                        rc = parse_fraction("offline", optarg, &o->field.offline);
                        break;
                case OPT_OFFLINE_MS:
                        rc = parse_unsigned("offline-ms", optarg, 1, 3600000, &o->field.offline_ms);
                        break;
                case OPT_DISCONNECT:
                        rc = parse_fraction("disconnect", optarg, &o->field.disconnect);
                        break;
                case OPT_DISCONNECT_MS:
                        rc = parse_unsigned("disconnect-ms", optarg, 1, 3600000,
                                            &o->field.disconnect_ms);
                        break;
                case OPT_DUPLICATE:
                        rc = parse_fraction("duplicate", optarg, &o->field.duplicate);
                        break;
                case OPT_HELP:
                        sim_usage(stdout, argv[0]);
                        return 1;
                case OPT_VERSION:
                        printf("tumblegate-sim %s\n", TG_VERSION);
                        return 1;
                default:
                        /* getopt_long has already said what was wrong. */
                        fprintf(stderr, "Try '%s --help'.\n", argv[0]);
                        return -EINVAL;
                }
        }
        if (rc)
                return rc;
        if (optind < argc) {
                tg_err("unexpected argument '%s'", argv[optind]);
                return -EINVAL;
        }

        /* Ids are P + %04u: the widest index decides the longest id. */
        {
                char id[32];
                int n = snprintf(id, sizeof(id), "%04u", o->sensors - 1);

                if (strlen(o->id_prefix) + (size_t)n > TG_SENSOR_ID_MAX) {
                        tg_err("--id-prefix: ids would exceed %d bytes", TG_SENSOR_ID_MAX);
                        return -EINVAL;
                }
        }
        /* SenML reads a time before 2^28 s as relative to now, so the
         * encoders refuse such readings; say so now, not at the first one. */
        if (sim_format_is_senml(o->format) && o->have_start && o->start_ms < SIM_SENML_MIN_MS) {
                tg_err("--start-ms: %s cannot carry a time before %lld (2^28 s, 1978-07-04)",
                       sim_format_names[o->format], (long long)SIM_SENML_MIN_MS);
                return -EINVAL;
        }
        o->step_ms = o->rate >= 1000 ? 1 : 1000 / o->rate;
        if (!o->client_id) {
                snprintf(o->client_id_buf, sizeof(o->client_id_buf), "tumblegate-sim-%ld",
                         (long)getpid());
                o->client_id = o->client_id_buf;
        }
        if (o->format == SIM_FORMAT_SPARKPLUG) {
                char id[32];
                int n = snprintf(id, sizeof(id), "%04u", o->sensors - 1);

                if (!o->sp_group)
                        o->sp_group = "tumblegate";
                if (!o->sp_node) {
                        o->sp_node = o->client_id;
                        if ((rc = check_topic_text("client-id", o->sp_node, "/+#")))
                                return rc;
                }
                /* The truth's sensor ids are G/N/<id>. */
                if (strlen(o->sp_group) + strlen(o->sp_node) + strlen(o->id_prefix) + (size_t)n +
                    2 > TG_SENSOR_ID_MAX) {
                        tg_err("--group, --node, --id-prefix: sensor ids G/N/<id> would exceed "
                               "%d bytes", TG_SENSOR_ID_MAX);
                        return -EINVAL;
                }
                /* A device has no MQTT connection of its own to drop: the
                 * node's connection is the only one. */
                if (o->field.disconnect > 0) {
                        tg_err("--disconnect: not with --format sparkplug, where the devices "
                               "share the edge node's connection");
                        return -EINVAL;
                }
        } else if (o->sp_group || o->sp_node || o->bdseq_path) {
                tg_err("--group, --node and --bdseq-file are for --format sparkplug");
                return -EINVAL;
        }
        return 0;
}

/* ------------------------------------------------------------------------ */
/* Deterministic signal model                                                */
/* ------------------------------------------------------------------------ */

struct field_model {
        const char *name;
        double center;          /* fleet average */
        double offset_spread;   /* per-sensor base offset, uniform +/- this */
        double sine_amp;        /* slow oscillation, period 10..30 min */
        double walk_std;        /* stationary spread of the random walk */
        double noise_std;       /* per-reading measurement noise */
        double min, max;        /* physical range: never report beyond it */
};

/* Temperature 15-30 degC, humidity 30-70 %, pressure around 1013 hPa. */
static const struct field_model field_models[SIM_FIELDS_MAX] = {
        {"temperature", 22.5, 5.0, 1.5, 0.5, 0.08, -40.0, 85.0},
        {"humidity", 50.0, 12.0, 4.0, 2.0, 0.4, 0.0, 100.0},
        {"pressure", 1013.25, 4.0, 1.2, 0.8, 0.05, 870.0, 1085.0},
};

/* The walk is an Ornstein-Uhlenbeck process: a random walk pulled back to
 * the base with this time constant, so drift is visible over minutes but a
 * long run never wanders out of the plausible range. */
#define SIM_WALK_TAU_S 300.0

struct field_state {
        struct sim_rng rng;
        double base, period_s, phase, walk;
        struct sim_rng shape_rng; /* --shape's draws */
        double level;             /* stepped: the level held */
        int has_level;
};

static void field_init(struct field_state *f, const struct field_model *m, uint64_t seed,
                       unsigned sensor, unsigned field) {
        rng_seed(&f->rng, seed, sensor, field);
        f->base = m->center + m->offset_spread * (2.0 * rng_uniform(&f->rng) - 1.0);
        f->period_s = 600.0 + 1200.0 * rng_uniform(&f->rng);
        f->phase = 2.0 * M_PI * rng_uniform(&f->rng);
        f->walk = m->walk_std * rng_gauss(&f->rng); /* start in the stationary state */
        rng_seed(&f->shape_rng, ~seed, sensor, field);
        f->has_level = 0;
}

/* The natural value @p v as --shape makes it: stepped jumps to the natural
 * value, rounded to a tenth of the model's sine amplitude, one reading in
 * 300; noisy adds nine more noise; spiky a spike of 10 sine amplitudes one
 * reading in 200. */
static double field_shape(struct field_state *f, const struct field_model *m, unsigned shape,
                          double v) {
        double q = m->sine_amp / 10;

        switch (shape) {
        case SIM_SHAPE_STEPPED:
                if (!f->has_level || rng_uniform(&f->shape_rng) < 1.0 / 300) {
                        f->level = round(v / q) * q;
                        f->has_level = 1;
                }
                v = f->level;
                break;
        case SIM_SHAPE_NOISY:
                v += 9 * m->noise_std * rng_gauss(&f->shape_rng);
                break;
        case SIM_SHAPE_SPIKY:
                if (rng_uniform(&f->shape_rng) < 1.0 / 200)
                        v += 10 * m->sine_amp * (rng_uniform(&f->shape_rng) < 0.5 ? -1 : 1);
                break;
        default:
                return v;
        }
        return v < m->min ? m->min : v > m->max ? m->max : v;
}

/* @p t_s is event time since the first step; the walk advances one step
 * (decay @p walk_decay, innovation scale @p walk_kick, precomputed). */
static double field_next(struct field_state *f, const struct field_model *m, double t_s,
                         double walk_decay, double walk_kick) {
        double v;

        v = f->base + m->sine_amp * sin(2.0 * M_PI * t_s / f->period_s + f->phase) + f->walk +
            m->noise_std * rng_gauss(&f->rng);
        f->walk = f->walk * walk_decay + m->walk_std * walk_kick * rng_gauss(&f->rng);
        if (v < m->min)
                v = m->min;
        if (v > m->max)
                v = m->max;
        return v;
}

/* ------------------------------------------------------------------------ */
/* Runtime state                                                             */
/* ------------------------------------------------------------------------ */

struct sim;

/* A slot is one publish awaiting completion; the free slots bound the
 * window. A reading's truth line is encoded before the publish so the
 * completion callback only copies bytes; a garbage message keeps what its
 * (rarer) garbage truth line needs instead. */
struct sim_slot {
        struct sim *sim;
        unsigned idx;
        int in_use;
        const char *garbage_reason;     /* NULL: the slot carries a reading */
        int control;                    /* a Sparkplug birth without a reading */
        const char *garbage_kind;       /* garbage only */
        const char *topic;              /* garbage only */
        MQTTAsync client;               /* NULL: the simulator's own connection */
        size_t garbage_bytes;
        size_t truth_len;
        char truth[SIM_PAYLOAD_MAX];
};

/* A JSON-lines output file written from Paho's callback thread. */
struct sim_file {
        FILE *f;
        const char *path;
        const char *opt;        /* the option that named it, for messages */
        int err;                /* first write error; later lines are not attempted */
};

struct sim_sensor {
        char id[TG_SENSOR_ID_MAX + 1];
        uint16_t id_len;
        const char *topic;
        struct field_state fields[SIM_FIELDS_MAX];
        /* --disconnect: the sensor's own connection, with a will */
        struct sim *sim;
        MQTTAsync own;
        int own_created, own_state, own_fd; /* own_state: 0 pending, 1 up, -1 failed/down */
        /* --format sparkplug: the device's truth id G/N/<id>, its DBIRTH
         * and bad topics (topic is its DDATA topic), and whether its next
         * message must be a DBIRTH. */
        char sp_id[TG_SENSOR_ID_MAX + 1];
        uint16_t sp_id_len;
        const char *birth_topic, *bad_topic;
        int need_birth;
};

/* A Paho request the main thread waits for: state 0 pending, 1 done,
 * -1 failed; set by on_request_done()/on_request_failed() under s->lock. */
struct sim_request {
        struct sim *s;
        int state;
};

struct sim {
        const struct sim_opts *opts;
        MQTTAsync client;
        int client_created;
        struct sim_sensor *sensors;
        char *topics;
        struct sim_slot *slots;
        unsigned *free_slots;
        double walk_decay, walk_kick;
        sim_field_t *field;     /* field conditions, or NULL */
        uint64_t seq;           /* readings sent: the arrival order in the truth */

        /* Garbage, drawn and built on the publishing thread only. */
        struct sim_rng garbage_rng;             /* which messages are garbage */
        struct sim_rng garbage_bytes_rng;       /* the content of random-bytes garbage */
        unsigned garbage_cycle[GARBAGE__COUNT]; /* the kinds this format can express */
        unsigned garbage_nkinds;
        unsigned garbage_next;                   /* index into garbage_cycle */
        uint8_t *garbage_buf;                    /* SIM_GARBAGE_MAX bytes */

        /* --format sparkplug, the publishing thread's but rebirth. */
        sim_spn_t *spn;
        char sp_node_id[TG_SENSOR_ID_MAX + 1];  /* G/N, for messages */
        char sp_topic_nbirth[SIM_TOPIC_PREFIX_MAX], sp_topic_ndeath[SIM_TOPIC_PREFIX_MAX];
        char sp_topic_ncmd[SIM_TOPIC_PREFIX_MAX];
        uint8_t sp_will[SIM_SPN_PAYLOAD_MAX];
        size_t sp_will_len;
        int64_t sp_last_ts;     /* the latest event time sent, for the NDEATH */

        /* Everything below is shared with Paho's threads and the signal
         * thread, and guarded by lock. Paho is never called with lock held:
         * its callbacks run under Paho's own mutex and take ours, so the
         * reverse order could deadlock. */
        pthread_mutex_t lock;
        pthread_cond_t cond;    /* CLOCK_MONOTONIC */
        unsigned nfree;
        unsigned wake_free;     /* main wants waking when this many are free */
        int main_waiting;
        uint64_t published;     /* readings handed to Paho (or refused by it) */
        uint64_t confirmed;
        uint64_t failed;
        uint64_t garbage_published;
        uint64_t garbage_confirmed;
        uint64_t garbage_failed;
        uint64_t control_published;     /* Sparkplug births without a reading */
        uint64_t control_confirmed;
        uint64_t control_failed;
        int rebirth_requested;  /* an NCMD asked for it (MQTT thread) */
        uint64_t rebirths;
        struct sim_request sp_sub;   /* the NCMD subscription */
        struct sim_request sp_death; /* the closing NDEATH */
        int stop_signal;        /* first SIGINT/SIGTERM */
        int abort_drain;        /* a second one: stop waiting for confirmations */
        int failing;            /* a publish failed or stalled: stop publishing */
        int failure_logged;     /* one line for the first failure callback */
        int lost;               /* the connection dropped */
        int connect_state;      /* 0 pending, 1 connected, -1 failed */
        int connect_code;
        char connect_msg[160];
        int disconnected;
        struct sim_file truth;
        struct sim_file garbage_truth;
        char *garbage_line;     /* scratch for one garbage truth line */
        size_t garbage_line_cap;
};

static int sim_should_stop_locked(const struct sim *s) {
        return s->stop_signal || s->failing || s->lost;
}

static struct timespec ms_to_timespec(int64_t ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        return ts;
}

/* Wait on cond until it is signalled or the monotonic @p deadline_ms passes.
 * @return 0 or ETIMEDOUT. */
static int sim_wait_locked(struct sim *s, int64_t deadline_ms) {
        struct timespec ts = ms_to_timespec(deadline_ms);

        return pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

/* Give a slot back and wake the publisher if it waits for this many. */
static void slot_release_locked(struct sim *s, struct sim_slot *slot) {
        slot->in_use = 0;
        s->free_slots[s->nfree++] = slot->idx;
        if (s->main_waiting && s->nfree >= s->wake_free)
                pthread_cond_signal(&s->cond);
}

/* ------------------------------------------------------------------------ */
/* Paho callbacks (run on Paho's threads)                                    */
/* ------------------------------------------------------------------------ */

/* Append @p len bytes to @p f; the first error is kept for the close. */
static void sim_file_write_locked(struct sim_file *f, const void *buf, size_t len) {
        if (f->f && !f->err && fwrite(buf, 1, len, f->f) != len)
                f->err = errno ? errno : EIO;
}

/* {"topic":T,"kind":K,"reason":R,"bytes":N} for a confirmed garbage message. */
static void garbage_truth_write_locked(struct sim *s, const struct sim_slot *slot) {
        struct tg_jw w;
        size_t len;

        if (!s->garbage_truth.f)
                return;
        tg_jw_init(&w, s->garbage_line, s->garbage_line_cap);
        tg_jw_raw(&w, "{\"topic\":");
        tg_jw_string(&w, slot->topic, strlen(slot->topic));
        tg_jw_raw(&w, ",\"kind\":");
        tg_jw_string(&w, slot->garbage_kind, strlen(slot->garbage_kind));
        tg_jw_raw(&w, ",\"reason\":");
        tg_jw_string(&w, slot->garbage_reason, strlen(slot->garbage_reason));
        tg_jw_raw(&w, ",\"bytes\":");
        tg_jw_int(&w, (int64_t)slot->garbage_bytes);
        tg_jw_raw(&w, "}\n");
        len = tg_jw_finish(&w);
        if (!len && !s->garbage_truth.err)
                s->garbage_truth.err = ENOBUFS; /* sized in sim_init: cannot happen */
        else
                sim_file_write_locked(&s->garbage_truth, s->garbage_line, len);
}

static void on_publish_success(void *context, MQTTAsync_successData *response) {
        struct sim_slot *slot = context;
        struct sim *s = slot->sim;

        pthread_mutex_lock(&s->lock);
        if (slot->control) {
                s->control_confirmed++;
        } else if (slot->garbage_reason) {
                s->garbage_confirmed++;
                garbage_truth_write_locked(s, slot);
        } else {
                s->confirmed++;
                sim_file_write_locked(&s->truth, slot->truth, slot->truth_len);
        }
        slot_release_locked(s, slot);
        pthread_mutex_unlock(&s->lock);
}

static void on_publish_failure(void *context, MQTTAsync_failureData *response) {
        struct sim_slot *slot = context;
        struct sim *s = slot->sim;
        int first;

        pthread_mutex_lock(&s->lock);
        if (slot->control)
                s->control_failed++;
        else if (slot->garbage_reason)
                s->garbage_failed++;
        else
                s->failed++;
        first = !s->failure_logged;
        s->failure_logged = 1;
        s->failing = 1;
        slot_release_locked(s, slot);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (first) {
                const char *msg = response && response->message ? response->message : NULL;
                int code = response ? response->code : 0;

                tg_err("publish failed: %s (code %d%s%s)", MQTTAsync_strerror(code), code,
                       msg ? ", " : "", msg ? msg : "");
        }
}

/* A Paho callback's outcome for a thread waiting on s->cond: *state = v. */
static void sim_signal(struct sim *s, int *state, int v) {
        pthread_mutex_lock(&s->lock);
        *state = v;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void on_request_done(void *context, MQTTAsync_successData *response) {
        struct sim_request *r = context;

        sim_signal(r->s, &r->state, 1);
}

static void on_request_failed(void *context, MQTTAsync_failureData *response) {
        struct sim_request *r = context;

        sim_signal(r->s, &r->state, -1);
}

/* @p r's request handed to Paho: its callbacks and context. */
static void sim_request_start(struct sim *s, struct sim_request *r,
                              MQTTAsync_responseOptions *ro) {
        r->s = s;
        r->state = 0;
        ro->onSuccess = on_request_done;
        ro->onFailure = on_request_failed;
        ro->context = r;
}

/* Wait for @p r's outcome until @p deadline_ms (or, with @p stop_aware, a
 * stop). @return its state. */
static int sim_request_wait(struct sim *s, struct sim_request *r, int64_t deadline_ms,
                            int stop_aware) {
        int state;

        pthread_mutex_lock(&s->lock);
        while (r->state == 0 && !(stop_aware && sim_should_stop_locked(s)))
                if (sim_wait_locked(s, deadline_ms) == ETIMEDOUT)
                        break;
        state = r->state;
        pthread_mutex_unlock(&s->lock);
        return state;
}

static void on_connect_success(void *context, MQTTAsync_successData *response) {
        struct sim *s = context;

        sim_signal(s, &s->connect_state, 1);
}

static void on_connect_failure(void *context, MQTTAsync_failureData *response) {
        struct sim *s = context;

        pthread_mutex_lock(&s->lock);
        s->connect_state = -1;
        s->connect_code = response ? response->code : MQTTASYNC_FAILURE;
        snprintf(s->connect_msg, sizeof(s->connect_msg), "%s",
                 response && response->message ? response->message : "");
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void on_connection_lost(void *context, char *cause) {
        struct sim *s = context;

        pthread_mutex_lock(&s->lock);
        s->lost = 1;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        /* No automatic reconnect: with a clean session the broker forgot the
         * unacknowledged messages, so a silent reconnect would hide loss. */
        tg_err("connection to %s lost%s%s; stopping", s->opts->uri, cause ? ": " : "",
               cause ? cause : "");
}

static void on_disconnect_done(void *context, MQTTAsync_successData *response) {
        struct sim *s = context;

        sim_signal(s, &s->disconnected, 1);
}

static void on_disconnect_failed(void *context, MQTTAsync_failureData *response) {
        on_disconnect_done(context, NULL);
}

/* Paho's own diagnostics go to the same log sink as ours. */
static void on_paho_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message) {
        /* Paho prefixes its own "YYYYMMDD HHMMSS.mmm " stamp (all zeros at
         * error level); our sink stamps lines already. */
        if (strlen(message) > 20 && message[8] == ' ' && message[15] == '.' && message[19] == ' ')
                message += 20;
        if (level >= MQTTASYNC_TRACE_SEVERE)
                tg_err("paho: %s", message);
        else if (level >= MQTTASYNC_TRACE_ERROR)
                tg_warn("paho: %s", message);
        else
                tg_dbg("paho: %s", message);
}

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */
/* ------------------------------------------------------------------------ */

/* SIGINT/SIGTERM are blocked in every thread (Paho's threads inherit the
 * mask) and taken here with sigwait, so stopping is an ordinary condition
 * variable broadcast rather than async-signal-safe juggling. */
static void *sim_signal_thread(void *arg) {
        struct sim *s = arg;
        sigset_t set;
        int sig, first;

        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        for (;;) {
                if (sigwait(&set, &sig))
                        continue;
                pthread_mutex_lock(&s->lock);
                first = !s->stop_signal;
                if (first)
                        s->stop_signal = sig;
                else
                        s->abort_drain = 1;
                pthread_cond_broadcast(&s->cond);
                pthread_mutex_unlock(&s->lock);
                if (first)
                        tg_info("%s: stopping; waiting up to %d s for in-flight confirmations "
                                "(send it again to give up)",
                                sig == SIGINT ? "SIGINT" : "SIGTERM", SIM_DRAIN_TIMEOUT_MS / 1000);
                else
                        tg_warn("second signal: no longer waiting for confirmations");
        }
        return NULL;
}

/* ------------------------------------------------------------------------ */
/* Set-up and tear-down                                                      */
/* ------------------------------------------------------------------------ */

/* Create @p path for JSON lines. @return 0 or -errno, said in words. */
static int sim_file_open(struct sim_file *f, const char *opt, const char *path) {
        f->opt = opt;
        f->path = path;
        if (!path)
                return 0;
        f->f = fopen(path, "w");
        if (!f->f) {
                int err = errno;

                tg_err("--%s: cannot create %s: %s", opt, path, strerror(err));
                return -err;
        }
        /* Lines are written from Paho's callback thread; a large buffer
         * keeps that to a memcpy almost every time. */
        setvbuf(f->f, NULL, _IOFBF, 1 << 20);
        return 0;
}

/* Flush and close. @return 0 or -errno if any line was lost. */
static int sim_file_close(struct sim_file *f) {
        int err = f->err;

        if (!f->f)
                return 0;
        if (fclose(f->f) && !err)
                err = errno ? errno : EIO;
        f->f = NULL;
        if (err) {
                tg_err("--%s: writing %s failed: %s; the file is incomplete", f->opt, f->path,
                       strerror(err));
                return -err;
        }
        return 0;
}

/* The Sparkplug humidity is a Float, the other fields Doubles: a host
 * must read both datatypes. */
static const int sim_sp_is_float[SIM_FIELDS_MAX] = {0, 1, 0};

/* --format sparkplug: the edge node, its session's bdSeq, its topics and
 * the will. @return 0, or -errno said in words. */
static int sim_sp_init(struct sim *s) {
        const struct sim_opts *o = s->opts;
        const char *names[SIM_FIELDS_MAX];
        uint64_t bdseq;
        unsigned f;
        int rc;

        rc = sim_spn_bdseq_next(o->bdseq_path, &bdseq);
        if (rc) {
                tg_err("--bdseq-file: %s: %s", o->bdseq_path, strerror(-rc));
                return rc;
        }
        for (f = 0; f < o->nfields; f++)
                names[f] = field_models[f].name;
        s->spn = sim_spn_new(o->sp_group, o->sp_node, bdseq, o->nfields, names, sim_sp_is_float);
        if (!s->spn) {
                tg_err("out of memory for the Sparkplug edge node");
                return -ENOMEM;
        }
        snprintf(s->sp_node_id, sizeof(s->sp_node_id), "%s/%s", o->sp_group, o->sp_node);
        if (!sim_spn_topic(s->spn, SIM_SPN_NBIRTH, NULL, s->sp_topic_nbirth,
                           sizeof(s->sp_topic_nbirth)) ||
            !sim_spn_topic(s->spn, SIM_SPN_NDEATH, NULL, s->sp_topic_ndeath,
                           sizeof(s->sp_topic_ndeath)) ||
            !sim_spn_topic(s->spn, SIM_SPN_NCMD, NULL, s->sp_topic_ncmd,
                           sizeof(s->sp_topic_ncmd))) {
                tg_err("--group, --node: the Sparkplug topics are too long");
                return -EINVAL;
        }
        /* The will is fixed at connect: stamped with the session's start. */
        s->sp_will_len = sim_spn_ndeath(s->spn, tg_clock_now(&tg_clock_realtime), s->sp_will,
                                        sizeof(s->sp_will));
        if (!o->quiet)
                tg_info("sparkplug: edge node %s, session bdSeq %" PRIu64 ", devices %s%04u .. "
                        "%s%04u", s->sp_node_id, bdseq, o->id_prefix, 0, o->id_prefix,
                        o->sensors - 1);
        return s->sp_will_len ? 0 : -ENOBUFS;
}

static int sim_init(struct sim *s, const struct sim_opts *o) {
        pthread_condattr_t ca;
        size_t topic_stride, sp_stride = 0;
        unsigned i, f;
        double dt_s;
        int rc;

        memset(s, 0, sizeof(*s));
        s->opts = o;
        pthread_mutex_init(&s->lock, NULL);
        pthread_condattr_init(&ca);
        /* Deadlines come from tg_monotonic_ms(): a wall-clock step must not
         * stretch or cut a wait. */
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);

        /* Every table is sized here, once: the publish loop allocates
         * nothing of its own. */
        topic_stride = strlen(o->topic_prefix) + 1 + TG_SENSOR_ID_MAX + sizeof("/telemetry");
        if (o->format == SIM_FORMAT_SPARKPLUG) {
                /* spBv1.0/G/DBIRTH/N/<id>, three per sensor: DDATA, DBIRTH, DTAD. */
                sp_stride = sizeof("spBv1.0/") + strlen(o->sp_group) + sizeof("/DBIRTH/") +
                            strlen(o->sp_node) + 1 + TG_SENSOR_ID_MAX;
                topic_stride = 3 * sp_stride;
        }
        s->sensors = calloc(o->sensors, sizeof(*s->sensors));
        s->topics = calloc(o->sensors, topic_stride);
        s->slots = calloc(o->inflight, sizeof(*s->slots));
        s->free_slots = calloc(o->inflight, sizeof(*s->free_slots));
        if (o->garbage > 0)
                s->garbage_buf = malloc(SIM_GARBAGE_MAX);
        if (o->garbage_truth_path) {
                /* Room for a topic of escapes only ("\u001f" per byte). */
                s->garbage_line_cap = 6 * topic_stride + 128;
                s->garbage_line = malloc(s->garbage_line_cap);
        }
        if (!s->sensors || !s->topics || !s->slots || !s->free_slots ||
            (o->garbage > 0 && !s->garbage_buf) || (o->garbage_truth_path && !s->garbage_line)) {
                tg_err("out of memory for %u sensors and %u in-flight slots", o->sensors,
                       o->inflight);
                return -ENOMEM;
        }
        for (i = 0; i < o->sensors; i++) {
                struct sim_sensor *sn = &s->sensors[i];
                char *topic = s->topics + (size_t)i * topic_stride;
                int n = snprintf(sn->id, sizeof(sn->id), "%s%04u", o->id_prefix, i);

                sn->id_len = (uint16_t)n;
                snprintf(topic, topic_stride, "%s/%s/telemetry", o->topic_prefix, sn->id);
                sn->topic = topic;
                if (o->format == SIM_FORMAT_SPARKPLUG) {
                        /* Room checked in sim_opts_parse and sized above. */
                        n = snprintf(sn->sp_id, sizeof(sn->sp_id), "%s/%s/%s", o->sp_group,
                                     o->sp_node, sn->id);
                        sn->sp_id_len = (uint16_t)n;
                        snprintf(topic, sp_stride, "spBv1.0/%s/DDATA/%s/%s", o->sp_group,
                                 o->sp_node, sn->id);
                        snprintf(topic + sp_stride, sp_stride, "spBv1.0/%s/DBIRTH/%s/%s",
                                 o->sp_group, o->sp_node, sn->id);
                        snprintf(topic + 2 * sp_stride, sp_stride, "spBv1.0/%s/DTAD/%s/%s",
                                 o->sp_group, o->sp_node, sn->id);
                        sn->birth_topic = topic + sp_stride;
                        sn->bad_topic = topic + 2 * sp_stride;
                }
                for (f = 0; f < o->nfields; f++)
                        field_init(&sn->fields[f], &field_models[f], o->seed, i, f);
        }
        for (i = 0; i < o->inflight; i++) {
                s->slots[i].sim = s;
                s->slots[i].idx = i;
                s->free_slots[i] = o->inflight - 1 - i;
        }
        s->nfree = o->inflight;

        dt_s = o->step_ms / 1000.0;
        s->walk_decay = exp(-dt_s / SIM_WALK_TAU_S);
        s->walk_kick = sqrt(1.0 - s->walk_decay * s->walk_decay);

        /* Streams of their own, apart from every (sensor, field) stream, so
         * that --garbage changes which messages are sent but not the value
         * of any reading; and the random bytes apart from the draws, so that
         * which messages are garbage does not depend on --format. */
        rng_seed(&s->garbage_rng, o->seed, UINT32_MAX, UINT32_MAX);
        rng_seed(&s->garbage_bytes_rng, o->seed, UINT32_MAX, UINT32_MAX - 1);
        for (i = 0; i < GARBAGE__COUNT; i++)
                if (sim_garbage_kinds[i].reason[o->format])
                        s->garbage_cycle[s->garbage_nkinds++] = i;

        if (sim_field_active(&o->field)) {
                s->field = sim_field_new(&o->field, o->sensors, o->step_ms,
                                         (int64_t)o->duration_s * 1000, o->seed);
                if (!s->field) {
                        tg_err("out of memory for the field conditions' queues");
                        return -ENOMEM;
                }
        }
        if (o->format == SIM_FORMAT_SPARKPLUG && (rc = sim_sp_init(s)))
                return rc;
        rc = sim_file_open(&s->truth, "truth", o->truth_path);
        if (!rc)
                rc = sim_file_open(&s->garbage_truth, "garbage-truth", o->garbage_truth_path);
        return rc;
}

/* Close both output files. @return 0 or -errno if any line was lost. */
static int sim_files_close(struct sim *s) {
        int rc = sim_file_close(&s->truth);
        int rc2 = sim_file_close(&s->garbage_truth);

        return rc ? rc : rc2;
}

static void sim_free(struct sim *s) {
        sim_spn_destroy(s->spn);
        sim_field_destroy(s->field);
        free(s->garbage_buf);
        free(s->garbage_line);
        free(s->sensors);
        free(s->topics);
        free(s->slots);
        free(s->free_slots);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
}

static const char *connack_reason(int code) {
        switch (code) {
        case 1:
                return "unacceptable protocol version";
        case 2:
                return "client id rejected";
        case 3:
                return "server unavailable";
        case 4:
                return "bad user name or password";
        case 5:
                return "not authorized";
        default:
                return MQTTAsync_strerror(code);
        }
}

/* A message on the node's NCMD topic (the only subscription): a rebirth
 * request is handed to the publishing thread, which sends the births. */
static int on_sp_command(void *context, char *topic, int topic_len, MQTTAsync_message *m) {
        struct sim *s = context;
        int rebirth = sim_spn_is_rebirth(m->payload, (size_t)m->payloadlen);

        if (rebirth < 0)
                tg_warn("%s: a command that is no Sparkplug B payload; ignored", topic);
        else if (rebirth) {
                pthread_mutex_lock(&s->lock);
                s->rebirth_requested = 1;
                pthread_mutex_unlock(&s->lock);
        }
        MQTTAsync_freeMessage(&m);
        MQTTAsync_free(topic);
        return 1;
}

/* Subscribe to the node's NCMD topic before the NBIRTH, as an edge node
 * must, so that no rebirth request is missed. @return 0 or -EIO. */
static int sim_sp_subscribe(struct sim *s) {
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int64_t deadline = tg_monotonic_ms() + SIM_CONNECT_TIMEOUT_S * 1000;

        sim_request_start(s, &s->sp_sub, &ro);
        if (MQTTAsync_subscribe(s->client, s->sp_topic_ncmd, 0, &ro) != MQTTASYNC_SUCCESS) {
                tg_err("cannot subscribe to %s", s->sp_topic_ncmd);
                return -EIO;
        }
        if (sim_request_wait(s, &s->sp_sub, deadline, 1) != 1) {
                tg_err("the broker did not grant the subscription to %s", s->sp_topic_ncmd);
                return -EIO;
        }
        return 0;
}

static int sim_connect(struct sim *s) {
        const struct sim_opts *o = s->opts;
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
        MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
        int64_t deadline;
        int rc, state;

        /* Paho refuses a publish once this many are queued, connected or
         * not (default 100); our window is the real bound, so leave room. */
        co.sendWhileDisconnected = 0;
        co.maxBufferedMessages = (int)o->inflight * 2;
        co.MQTTVersion = MQTTVERSION_3_1_1;
        rc = MQTTAsync_createWithOptions(&s->client, o->uri, o->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
        if (rc != MQTTASYNC_SUCCESS) {
                tg_err("cannot create an MQTT client for %s: %s", o->uri, MQTTAsync_strerror(rc));
                return -EINVAL;
        }
        s->client_created = 1;
        MQTTAsync_setConnectionLostCallback(s->client, s, on_connection_lost);
        if (s->spn) {
                /* The NDEATH will, QoS 1 and not retained (Sparkplug 7.1);
                 * the node listens for its commands. */
                will.topicName = s->sp_topic_ndeath;
                will.message = NULL;
                will.payload.data = s->sp_will;
                will.payload.len = (int)s->sp_will_len;
                will.qos = 1;
                will.retained = 0;
                cn.will = &will;
                MQTTAsync_setMessageArrivedCallback(s->client, s, on_sp_command);
        }

        cn.keepAliveInterval = 30;
        cn.cleansession = 1;
        /* Paho stops sending QoS 1 publishes at maxInflight unacknowledged
         * ones. It must not be the bottleneck: our slot window is. Twice the
         * window covers acks whose callbacks have not run yet. */
        cn.maxInflight = (int)o->inflight * 2;
        cn.connectTimeout = SIM_CONNECT_TIMEOUT_S;
        cn.MQTTVersion = MQTTVERSION_3_1_1;
        cn.automaticReconnect = 0;
        cn.onSuccess = on_connect_success;
        cn.onFailure = on_connect_failure;
        cn.context = s;
        rc = MQTTAsync_connect(s->client, &cn);
        if (rc != MQTTASYNC_SUCCESS) {
                tg_err("cannot connect to %s: %s", o->uri, MQTTAsync_strerror(rc));
                return -ECONNREFUSED;
        }

        deadline = tg_monotonic_ms() + (SIM_CONNECT_TIMEOUT_S + 5) * 1000;
        pthread_mutex_lock(&s->lock);
        while (s->connect_state == 0 && !s->stop_signal)
                if (sim_wait_locked(s, deadline) == ETIMEDOUT)
                        break;
        state = s->connect_state;
        pthread_mutex_unlock(&s->lock);

        if (state == 1)
                return s->spn ? sim_sp_subscribe(s) : 0;
        if (state == 0) {
                tg_err("cannot connect to %s: %s", o->uri,
                       s->stop_signal ? "interrupted" : "timed out");
                return -ETIMEDOUT;
        }
        /* Paho's text ("TCP/TLS connect failure") says more than its
         * generic -1; a positive code is the broker's CONNACK refusal. */
        if (s->connect_code <= 0 && s->connect_msg[0])
                tg_err("cannot connect to %s: %s", o->uri, s->connect_msg);
        else
                tg_err("cannot connect to %s: %s", o->uri, connack_reason(s->connect_code));
        return -ECONNREFUSED;
}

/* An edge node that leaves on purpose says so with its NDEATH, the broker
 * sending the will only when a connection breaks. Sent outside the slot
 * window, which refuses everything once a stop was asked for; the
 * DISCONNECT below waits for it to complete. */
static void sim_sp_send_death(struct sim *s) {
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        int64_t ts = s->sp_last_ts ? s->sp_last_ts : tg_clock_now(&tg_clock_realtime);
        int64_t deadline = tg_monotonic_ms() + SIM_DISCONNECT_TIMEOUT_MS;
        size_t len = sim_spn_ndeath(s->spn, ts, buf, sizeof(buf));
        int rc;

        msg.payload = buf;
        msg.payloadlen = (int)len;
        msg.qos = 1;
        sim_request_start(s, &s->sp_death, &ro);
        rc = MQTTAsync_sendMessage(s->client, s->sp_topic_ndeath, &msg, &ro);
        if (rc != MQTTASYNC_SUCCESS) {
                tg_warn("NDEATH refused by the MQTT client: %s", MQTTAsync_strerror(rc));
                return;
        }
        if (sim_request_wait(s, &s->sp_death, deadline, 0) != 1)
                tg_warn("NDEATH not acknowledged by the broker");
        else if (!s->opts->quiet)
                tg_info("NDEATH sent (bdSeq %" PRIu64 ")", sim_spn_bdseq(s->spn));
}

static void sim_disconnect(struct sim *s) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        int64_t deadline;
        int lost;

        pthread_mutex_lock(&s->lock);
        lost = s->lost;
        pthread_mutex_unlock(&s->lock);
        if (lost || !MQTTAsync_isConnected(s->client))
                return;
        if (s->spn)
                sim_sp_send_death(s);
        d.timeout = 1000;
        d.onSuccess = on_disconnect_done;
        d.onFailure = on_disconnect_failed;
        d.context = s;
        if (MQTTAsync_disconnect(s->client, &d) != MQTTASYNC_SUCCESS)
                return;
        /* Destroying the client at once would drop the DISCONNECT packet and
         * the broker would log an unexpected close. */
        deadline = tg_monotonic_ms() + SIM_DISCONNECT_TIMEOUT_MS;
        pthread_mutex_lock(&s->lock);
        while (!s->disconnected)
                if (sim_wait_locked(s, deadline) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------------ */
/* Payloads                                                                  */
/* ------------------------------------------------------------------------ */

/* Encode @p r in the wire format. @return bytes written, or 0 if too small. */
static size_t sim_encode(enum sim_format f, const struct tg_reading *r, uint8_t *buf, size_t cap) {
        switch (f) {
        case SIM_FORMAT_JSON:
                return tg_encode_json(r, (char *)buf, cap);
        case SIM_FORMAT_SENML_JSON:
                return tg_encode_senml_json(r, (char *)buf, cap);
        case SIM_FORMAT_SENML_CBOR:
                return tg_encode_senml_cbor(r, buf, cap);
        case SIM_FORMAT_CBOR:
        default:
                return tg_encode_cbor(r, buf, cap);
        }
}


/* A bounded writer of hand-made payloads, JSON text or CBOR, for the shapes
 * the codecs' encoders refuse to produce. Any overflow poisons it, checked
 * once at the end as with tg_jw. JSON commas: a value or a closed container
 * sets need_comma, the next key, value or container consumes it. */
struct sim_wr {
        uint8_t *buf;
        size_t cap, len;
        int overflow;
        int cbor;
        int need_comma;
};

static void wr_init(struct sim_wr *w, uint8_t *buf, size_t cap, int cbor) {
        w->buf = buf;
        w->cap = cap;
        w->len = 0;
        w->overflow = 0;
        w->cbor = cbor;
        w->need_comma = 0;
}

static void wr_bytes(struct sim_wr *w, const void *p, size_t n) {
        if (w->overflow || n > w->cap - w->len) {
                w->overflow = 1;
                return;
        }
        memcpy(w->buf + w->len, p, n);
        w->len += n;
}

static void wr_fill(struct sim_wr *w, int c, size_t n) {
        if (w->overflow || n > w->cap - w->len) {
                w->overflow = 1;
                return;
        }
        memset(w->buf + w->len, c, n);
        w->len += n;
}

static void wr_str(struct sim_wr *w, const char *s) {
        wr_bytes(w, s, strlen(s));
}

/* A CBOR item head: major type and argument in the shortest form. */
static void wr_cbor_head(struct sim_wr *w, unsigned major, uint64_t v) {
        uint8_t h[9];
        size_t n, i;

        if (v < 24) {
                h[0] = (uint8_t)(major << 5 | v);
                n = 1;
        } else {
                n = v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffff ? 5 : 9;
                h[0] = (uint8_t)(major << 5 | (n == 2 ? 24 : n == 3 ? 25 : n == 5 ? 26 : 27));
        }
        for (i = 1; i < n; i++)
                h[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
        wr_bytes(w, h, n);
}

/* JSON: the comma owed before the next key, value or container. */
static void wr_json_sep(struct sim_wr *w) {
        if (!w->cbor && w->need_comma)
                wr_str(w, ",");
        w->need_comma = 0;
}

/* A map of @p n entries (CBOR needs the count up front). */
static void wr_map(struct sim_wr *w, unsigned n) {
        wr_json_sep(w);
        if (w->cbor)
                wr_cbor_head(w, 5, n);
        else
                wr_str(w, "{");
}

static void wr_array(struct sim_wr *w, unsigned n) {
        wr_json_sep(w);
        if (w->cbor)
                wr_cbor_head(w, 4, n);
        else
                wr_str(w, "[");
}

static void wr_end_map(struct sim_wr *w) {
        if (!w->cbor)
                wr_str(w, "}");
        w->need_comma = 1;
}

static void wr_end_array(struct sim_wr *w) {
        if (!w->cbor)
                wr_str(w, "]");
        w->need_comma = 1;
}

/* A text string, or @p n copies of @p fill (JSON-safe) when @p s is NULL. */
static void wr_text(struct sim_wr *w, const char *s, size_t n, int fill) {
        wr_json_sep(w);
        if (!w->cbor && s) {
                size_t k = 0;

                /* Escaped as needed; tg_json_put_string also writes a NUL,
                 * so it wants one byte of slack. */
                if (!w->overflow)
                        k = tg_json_put_string((char *)w->buf + w->len, w->cap - w->len, s, n);
                if (!k)
                        w->overflow = 1;
                w->len += k;
        } else {
                if (w->cbor)
                        wr_cbor_head(w, 3, n);
                else
                        wr_str(w, "\"");
                if (s)
                        wr_bytes(w, s, n);
                else
                        wr_fill(w, fill, n);
                if (!w->cbor)
                        wr_str(w, "\"");
        }
        w->need_comma = 1;
}

static void wr_key(struct sim_wr *w, const char *key) {
        wr_text(w, key, strlen(key), 0);
        if (!w->cbor)
                wr_str(w, ":");
        w->need_comma = 0;
}

static void wr_int(struct sim_wr *w, int64_t v) {
        wr_json_sep(w);
        if (w->cbor) {
                if (v >= 0)
                        wr_cbor_head(w, 0, (uint64_t)v);
                else
                        wr_cbor_head(w, 1, (uint64_t)(-1 - v));
        } else {
                char tmp[24];

                snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
                wr_str(w, tmp);
        }
        w->need_comma = 1;
}

/* A double; CBOR keeps NaN as it is, JSON cannot (tg_json_put_double
 * writes null for it). */
static void wr_double(struct sim_wr *w, double v) {
        wr_json_sep(w);
        if (w->cbor) {
                uint8_t b[9];
                uint64_t bits;
                int i;

                memcpy(&bits, &v, sizeof(bits));
                b[0] = 0xfb;
                for (i = 0; i < 8; i++)
                        b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
                wr_bytes(w, b, sizeof(b));
        } else {
                char tmp[32];
                size_t k = tg_json_put_double(tmp, sizeof(tmp), v);

                if (!k)
                        w->overflow = 1;
                wr_bytes(w, tmp, k);
        }
        w->need_comma = 1;
}

/* @p depth arrays, each holding the next, the innermost empty. */
static void wr_nested_arrays(struct sim_wr *w, unsigned depth) {
        unsigned i;

        for (i = 0; i < depth; i++)
                wr_array(w, i + 1 < depth ? 1 : 0);
        for (i = 0; i < depth; i++)
                wr_end_array(w);
}

static size_t wr_finish(const struct sim_wr *w) {
        return w->overflow ? 0 : w->len;
}

/* Bytes on which both decoders fail at the first byte: CBOR heads with a
 * reserved additional information (28..30) in every major type but maps
 * and tags, all of them characters no JSON text starts with. So gateways
 * reading auto, json or cbor all say not_decodable, never wrong_type. */
static const uint8_t garbage_first_bytes[] = {
        0x1c, 0x1d, 0x1e, 0x3c, 0x3d, 0x3e, 0x5c, 0x5d, 0x5e,
        0x7c, 0x7d, 0x7e, 0x9c, 0x9d, 0x9e, 0xfc, 0xfd, 0xfe,
};

static size_t garbage_random_bytes(struct sim_rng *rng, uint8_t *buf, size_t cap) {
        size_t len = 16 + (size_t)(rng_next(rng) % 48), i;

        if (len > cap)
                return 0;
        buf[0] = garbage_first_bytes[rng_next(rng) % sizeof(garbage_first_bytes)];
        for (i = 1; i < len; i++)
                buf[i] = (uint8_t)(rng_next(rng) >> 56);
        return len;
}

/* Sparkplug's not_decodable: a first byte whose wire type is 7, which no
 * protobuf encoder writes and every decoder refuses, then random bytes. */
static size_t garbage_not_protobuf(struct sim_rng *rng, uint8_t *buf, size_t cap) {
        size_t len = garbage_random_bytes(rng, buf, cap);

        if (len)
                buf[0] = (uint8_t)(((rng_next(rng) >> 60) + 1) << 3 | 7);
        return len;
}

/* The too_large kind: a flat JSON object of a reading's shape carrying a
 * string member of SIM_GARBAGE_BLOB_LEN bytes, over TG_PAYLOAD_MAX. */
static size_t garbage_too_large(const struct sim_sensor *sn, int64_t ts_ms, uint8_t *buf,
                                size_t cap) {
        struct sim_wr w;

        wr_init(&w, buf, cap, 0);
        wr_map(&w, 4);
        wr_key(&w, "sensor");
        wr_text(&w, sn->id, sn->id_len, 0);
        wr_key(&w, "ts");
        wr_int(&w, ts_ms);
        wr_key(&w, field_models[0].name);
        wr_double(&w, field_models[0].center);
        wr_key(&w, "blob");
        wr_text(&w, NULL, SIM_GARBAGE_BLOB_LEN, 'x');
        wr_end_map(&w);
        return wr_finish(&w);
}

/* The id of the bad_id kind: the sensor's own, padded to 100 bytes. */
static size_t garbage_long_id(const struct sim_sensor *sn, char *id) {
        memcpy(id, sn->id, sn->id_len);
        memset(id + sn->id_len, 'x', SIM_GARBAGE_BAD_ID_LEN - sn->id_len);
        id[SIM_GARBAGE_BAD_ID_LEN] = '\0';
        return SIM_GARBAGE_BAD_ID_LEN;
}

/* The remaining kinds in the flat formats: a map/object of a reading's
 * shape (fields at their fleet averages, so no sensor's series is drawn
 * from) with the one defect the kind names. */
static size_t garbage_flat(enum sim_format fmt, enum sim_garbage_kind kind,
                           const struct sim_sensor *sn, int64_t ts_ms, unsigned nfields,
                           uint8_t *buf, size_t cap) {
        struct sim_wr w;
        char long_id[SIM_GARBAGE_BAD_ID_LEN + 1];
        unsigned members, f;

        if (kind == GARBAGE_NON_FINITE)
                nfields = 1;
        members = 2 + nfields - (kind == GARBAGE_MISSING_ID) - (kind == GARBAGE_MISSING_TS) +
                  (kind == GARBAGE_TOO_DEEP) + (kind == GARBAGE_DUPLICATE_MEMBER);
        wr_init(&w, buf, cap, fmt == SIM_FORMAT_CBOR);
        wr_map(&w, members);
        if (kind == GARBAGE_BAD_ID) {
                wr_key(&w, "sensor");
                wr_text(&w, long_id, garbage_long_id(sn, long_id), 0);
        } else if (kind != GARBAGE_MISSING_ID) {
                wr_key(&w, "sensor");
                wr_text(&w, sn->id, sn->id_len, 0);
        }
        if (kind == GARBAGE_INVALID_TS) {
                char tmp[24];

                wr_key(&w, "ts");
                snprintf(tmp, sizeof(tmp), "%lld", (long long)ts_ms);
                wr_text(&w, tmp, strlen(tmp), 0);
        } else if (kind == GARBAGE_TS_ZERO || kind == GARBAGE_TS_NEGATIVE) {
                wr_key(&w, "ts");
                wr_int(&w, kind == GARBAGE_TS_ZERO ? 0 : -1);
        } else if (kind != GARBAGE_MISSING_TS) {
                wr_key(&w, "ts");
                wr_int(&w, ts_ms);
                if (kind == GARBAGE_DUPLICATE_MEMBER) {
                        wr_key(&w, "ts");
                        wr_int(&w, ts_ms);
                }
        }
        for (f = 0; f < nfields; f++) {
                wr_key(&w, kind == GARBAGE_BAD_FIELD_NAME && f == 0 ? sim_bad_field_name
                                                                    : field_models[f].name);
                if (kind != GARBAGE_NON_FINITE)
                        wr_double(&w, field_models[f].center);
                else if (w.cbor)
                        wr_double(&w, NAN);
                else
                        wr_text(&w, "hot", 3, 0);
        }
        if (kind == GARBAGE_TOO_DEEP) {
                wr_key(&w, "deep");
                wr_nested_arrays(&w, SIM_GARBAGE_DEPTH);
        }
        wr_end_map(&w);
        return wr_finish(&w);
}

/* A SenML label: its JSON name, or in CBOR its RFC 8428 integer label. */
static void wr_senml_label(struct sim_wr *w, const char *name, int label) {
        if (w->cbor)
                wr_int(w, label);
        else
                wr_key(w, name);
        w->need_comma = 0;
}

#define SENML_BVER "bver", -1
#define SENML_BN "bn", -2
#define SENML_BT "bt", -3
#define SENML_N "n", 0
#define SENML_V "v", 2
#define SENML_VS "vs", 3
#define SENML_T "t", 6

/* The remaining kinds in the SenML formats: a pack shaped like
 * tg_encode_senml_json()'s (bn = id + ":", bt whole seconds, one record per
 * field with n, v and t = the rest of the ms) with the one defect the kind
 * names, the base fields and any extra label in the first record. */
static size_t garbage_senml(enum sim_format fmt, enum sim_garbage_kind kind,
                            const struct sim_sensor *sn, int64_t ts_ms, unsigned nfields,
                            uint8_t *buf, size_t cap) {
        struct sim_wr w;
        char bn[SIM_GARBAGE_BAD_ID_LEN + 2];
        size_t bn_len;
        /* Floor division: SenML time is bt + t, t >= 0 here. */
        int64_t bt = ts_ms / 1000 - (ts_ms % 1000 < 0);
        double t = (double)(ts_ms - bt * 1000) / 1000.0;
        unsigned f;

        if (kind == GARBAGE_BAD_ID) {
                bn_len = garbage_long_id(sn, bn);
        } else {
                memcpy(bn, sn->id, sn->id_len);
                bn_len = sn->id_len;
        }
        bn[bn_len++] = ':';
        if (kind == GARBAGE_NON_FINITE)
                nfields = 1;

        wr_init(&w, buf, cap, fmt == SIM_FORMAT_SENML_CBOR);
        wr_array(&w, nfields);
        for (f = 0; f < nfields; f++) {
                unsigned labels = 2 + (t != 0.0) + (f == 0 && kind == GARBAGE_DUPLICATE_MEMBER);

                if (f == 0)
                        labels += (kind != GARBAGE_MISSING_ID) + 1 +
                                  (kind == GARBAGE_BAD_SENML) + (kind == GARBAGE_TOO_DEEP);
                wr_map(&w, labels);
                if (f == 0) {
                        if (kind == GARBAGE_BAD_SENML) {
                                wr_senml_label(&w, SENML_BVER);
                                wr_int(&w, 99);
                        }
                        if (kind != GARBAGE_MISSING_ID) {
                                wr_senml_label(&w, SENML_BN);
                                wr_text(&w, bn, bn_len, 0);
                        }
                        wr_senml_label(&w, SENML_BT);
                        /* A string bt is a label of the wrong type, which
                         * the SenML decoders call bad_senml; a NaN one is
                         * invalid_timestamp (CBOR only). Times outside
                         * 1970-9999 are timestamp_out_of_range: absolute
                         * SenML times start at 2^28 s, so one at or before
                         * the epoch must be relative (before now). */
                        if (kind == GARBAGE_INVALID_TS)
                                wr_double(&w, NAN);
                        else if (kind == GARBAGE_TS_ZERO)
                                wr_double(&w, -1e10);
                        else if (kind == GARBAGE_TS_NEGATIVE)
                                wr_double(&w, 1e300);
                        else
                                wr_int(&w, bt);
                        if (kind == GARBAGE_TOO_DEEP) {
                                /* An unknown label: skipped, were it not
                                 * nested past the limit. */
                                if (w.cbor)
                                        wr_text(&w, "deep", 4, 0);
                                else
                                        wr_key(&w, "deep");
                                w.need_comma = 0;
                                wr_nested_arrays(&w, SIM_GARBAGE_DEPTH);
                        }
                }
                wr_senml_label(&w, SENML_N);
                if (kind == GARBAGE_BAD_FIELD_NAME && f == 0)
                        wr_text(&w, sim_bad_field_name, strlen(sim_bad_field_name), 0);
                else
                        wr_text(&w, field_models[f].name, strlen(field_models[f].name), 0);
                if (kind != GARBAGE_NON_FINITE) {
                        wr_senml_label(&w, SENML_V);
                        wr_double(&w, field_models[f].center);
                        if (f == 0 && kind == GARBAGE_DUPLICATE_MEMBER) {
                                wr_senml_label(&w, SENML_V);
                                wr_double(&w, field_models[f].center);
                        }
                } else if (w.cbor) {
                        wr_senml_label(&w, SENML_V);
                        wr_double(&w, NAN);
                } else {
                        /* A string value is skipped: no numeric field. */
                        wr_senml_label(&w, SENML_VS);
                        wr_text(&w, "hot", 3, 0);
                }
                if (t != 0.0) {
                        wr_senml_label(&w, SENML_T);
                        wr_double(&w, t);
                }
                wr_end_map(&w);
        }
        wr_end_array(&w);
        return wr_finish(&w);
}


/* Build one garbage payload of @p kind for @p sn into @p buf.
 * @return its length, or 0 if it does not fit (a bug: buf is sized for all). */
static size_t garbage_encode(const struct sim_opts *o, struct sim_rng *rng,
                             sim_spn_t *spn, unsigned dev, enum sim_garbage_kind kind,
                             const struct sim_sensor *sn, int64_t ts_ms, uint8_t *buf,
                             size_t cap) {
        switch (kind) {
        case GARBAGE_NOT_DECODABLE:
                if (o->format == SIM_FORMAT_SPARKPLUG)
                        return garbage_not_protobuf(rng, buf, cap);
                return garbage_random_bytes(rng, buf, cap);
        case GARBAGE_SPARKPLUG_BAD_TOPIC:
                return sim_spn_ndeath(spn, ts_ms, buf, cap);
        case GARBAGE_SPARKPLUG_UNKNOWN_ALIAS:
                return sim_spn_ddata_unknown_alias(spn, dev, ts_ms, buf, cap);
        case GARBAGE_TOO_LARGE:
                return garbage_too_large(sn, ts_ms, buf, cap);
        case GARBAGE_FUTURE_TS: {
                /* Ahead of the wall clock the gateway judges by, and of the
                 * run's own event time in case that was set ahead. */
                int64_t now = tg_clock_now(&tg_clock_realtime);
                struct tg_reading r;
                unsigned f;

                tg_reading_clear(&r);
                tg_reading_set_sensor(&r, sn->id, sn->id_len);
                r.ts_ms = (now > ts_ms ? now : ts_ms) + SIM_DAY_MS;
                for (f = 0; f < o->nfields; f++)
                        tg_reading_add_field(&r, field_models[f].name,
                                             strlen(field_models[f].name),
                                             field_models[f].center);
                return sim_encode(o->format, &r, buf, cap);
        }
        default:
                break;
        }
        if (sim_format_is_senml(o->format))
                return garbage_senml(o->format, kind, sn, ts_ms, o->nfields, buf, cap);
        if (kind == GARBAGE_WRONG_TYPE) {
                if (cap < 2)
                        return 0;
                memcpy(buf, "42", 2);
                return 2;
        }
        return garbage_flat(o->format, kind, sn, ts_ms, o->nfields, buf, cap);
}

/* ------------------------------------------------------------------------ */
/* Publishing                                                                */
/* ------------------------------------------------------------------------ */

/* Take a free slot for a reading (@p garbage_reason NULL), a garbage
 * message or (@p control) a Sparkplug birth or death, waiting while the
 * window is full. @return the slot, or NULL when publishing must stop. */
static struct sim_slot *slot_acquire(struct sim *s, const char *garbage_reason, int control) {
        struct sim_slot *slot = NULL;
        /* Waking per completion would cost a context switch per message;
         * waiting for a few free slots lets the publisher run in bursts. */
        unsigned batch = s->opts->inflight >= 64 ? s->opts->inflight / 16 : 1;
        int64_t deadline = 0;

        pthread_mutex_lock(&s->lock);
        while (!sim_should_stop_locked(s) && s->nfree == 0) {
                if (!deadline)
                        deadline = tg_monotonic_ms() + SIM_STALL_MS;
                s->wake_free = batch;
                s->main_waiting = 1;
                if (sim_wait_locked(s, deadline) == ETIMEDOUT && s->nfree == 0) {
                        s->failing = 1;
                        s->main_waiting = 0;
                        pthread_mutex_unlock(&s->lock);
                        tg_err("no publish completed for %d s with %u in flight; stopping",
                               SIM_STALL_MS / 1000, s->opts->inflight);
                        return NULL;
                }
                s->main_waiting = 0;
        }
        if (!sim_should_stop_locked(s)) {
                slot = &s->slots[s->free_slots[--s->nfree]];
                slot->in_use = 1;
                slot->client = NULL;
                slot->garbage_reason = garbage_reason;
                slot->control = control;
                slot->truth_len = 0;
                if (control)
                        s->control_published++;
                else if (garbage_reason)
                        s->garbage_published++;
                else
                        s->published++;
        }
        pthread_mutex_unlock(&s->lock);
        return slot;
}

/* Hand @p slot's message to Paho. @return 0 or -EIO, the slot given back. */
static int sim_send(struct sim *s, struct sim_slot *slot, const char *topic, const void *payload,
                    size_t len) {
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int rc;

        msg.payload = (void *)payload;
        msg.payloadlen = (int)len;
        msg.qos = s->opts->qos;
        msg.retained = 0;
        ro.onSuccess = on_publish_success;
        ro.onFailure = on_publish_failure;
        ro.context = slot;
        /* Paho copies topic and payload before returning, so stack buffers
         * are fine. A refusal here means no callback will ever come. */
        rc = MQTTAsync_sendMessage(slot->client ? slot->client : s->client, topic, &msg, &ro);
        if (rc == MQTTASYNC_SUCCESS)
                return 0;
        tg_err("publish to %s refused by the MQTT client: %s (%d); stopping", topic,
               MQTTAsync_strerror(rc), rc);
        return -EIO;
}

/* Count a publish that never reached Paho as failed and stop. */
static void sim_send_refused(struct sim *s, struct sim_slot *slot) {
        pthread_mutex_lock(&s->lock);
        if (slot->control)
                s->control_failed++;
        else if (slot->garbage_reason)
                s->garbage_failed++;
        else
                s->failed++;
        s->failing = 1;
        slot_release_locked(s, slot);
        pthread_mutex_unlock(&s->lock);
}

/* {"sensor":..} -> {"sensor":..,"seq":N}. @return the new length, 0 if it does not fit. */
static size_t sim_truth_add_seq(char *line, size_t len, size_t cap, uint64_t seq) {
        int n = snprintf(line + len - 1, cap - (len - 1), ",\"seq\":%" PRIu64 "}", seq);

        return n > 0 && (size_t)n < cap - (len - 1) ? len - 1 + (size_t)n : 0;
}

static void sim_fill_reading(struct sim *s, struct sim_sensor *sn, int64_t ts_ms, double t_s,
                             struct tg_reading *r) {
        unsigned f;

        tg_reading_clear(r);
        tg_reading_set_sensor(r, sn->id, sn->id_len);
        r->ts_ms = ts_ms;
        for (f = 0; f < s->opts->nfields; f++) {
                const struct field_model *m = &field_models[f];
                double v = field_shape(&sn->fields[f], m, s->opts->shape,
                                       field_next(&sn->fields[f], m, t_s, s->walk_decay,
                                                  s->walk_kick));

                tg_reading_add_field(r, m->name, strlen(m->name), v);
        }
}

/* ------------------------------------------------------------------------ */
/* Sparkplug: births, data and the death of the edge node                    */
/* ------------------------------------------------------------------------ */

/* @p r as the node sends it: the device's truth id G/N/<id> and the values
 * as the wire carries them (a Float field rounded). */
static void sim_sp_reading(struct sim *s, struct sim_sensor *sn, struct tg_reading *r) {
        unsigned f;

        tg_reading_set_sensor(r, sn->sp_id, sn->sp_id_len);
        for (f = 0; f < r->nfields; f++)
                r->fields[f].value = sim_spn_wire_value(s->spn, f, r->fields[f].value);
        if (r->ts_ms > s->sp_last_ts)
                s->sp_last_ts = r->ts_ms;
}

/* @p r as the device's DBIRTH, when a birth is owed, else its DDATA; the
 * topic into @p topic. @return the payload's length, 0 if it does not fit. */
static size_t sim_sp_encode_reading(struct sim *s, struct sim_sensor *sn,
                                    const struct tg_reading *r, uint8_t *buf, size_t cap,
                                    const char **topic) {
        double v[SIM_FIELDS_MAX];
        unsigned f, dev = (unsigned)(sn - s->sensors);

        for (f = 0; f < r->nfields && f < SIM_FIELDS_MAX; f++)
                v[f] = r->fields[f].value;
        if (sn->need_birth) {
                sn->need_birth = 0;
                *topic = sn->birth_topic;
                return sim_spn_dbirth(s->spn, dev, r->ts_ms, v, buf, cap);
        }
        *topic = sn->topic;
        return sim_spn_ddata(s->spn, dev, r->ts_ms, v, buf, cap);
}

/* Publish a birth that carries no reading (the NBIRTH, a DBIRTH without
 * values): no truth line. @return 0, -ECANCELED when stopping, -ENOBUFS or -EIO. */
static int sim_sp_publish_control(struct sim *s, const char *topic, const uint8_t *payload,
                                  size_t len) {
        struct sim_slot *slot;
        int rc;

        slot = slot_acquire(s, NULL, 1);
        if (!slot)
                return -ECANCELED;
        if (!len) {
                tg_err("%s: Sparkplug payload does not fit", topic);
                sim_send_refused(s, slot);
                return -ENOBUFS;
        }
        rc = sim_send(s, slot, topic, payload, len);
        if (rc)
                sim_send_refused(s, slot);
        return rc;
}

/* The NBIRTH, stamped @p ts_ms, and a DBIRTH owed by every device: each
 * device's next reading goes out as its DBIRTH (sim_sp_encode_reading), or
 * a DBIRTH without values at the end of the step if it has none to send
 * (sim_sp_birth_owed). The NBIRTH holds only control metrics (bdSeq,
 * Node Control/Rebirth), which are never fields: it has no truth line.
 * @return as sim_sp_publish_control(). */
static int sim_sp_birth(struct sim *s, int64_t ts_ms) {
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        size_t len;
        unsigned i;

        len = sim_spn_nbirth(s->spn, ts_ms, buf, sizeof(buf));
        for (i = 0; i < s->opts->sensors; i++)
                s->sensors[i].need_birth = 1;
        return sim_sp_publish_control(s, s->sp_topic_nbirth, buf, len);
}

/* Device @p i's DBIRTH without values, when the step sent none of its
 * readings (held back, or only garbage): a birth must follow the NBIRTH
 * at once. @return as sim_sp_publish_control(). */
static int sim_sp_birth_owed(struct sim *s, unsigned i, int64_t ts_ms) {
        struct sim_sensor *sn = &s->sensors[i];
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        size_t len;

        if (!sn->need_birth)
                return 0;
        sn->need_birth = 0;
        len = sim_spn_dbirth(s->spn, i, ts_ms, NULL, buf, sizeof(buf));
        return sim_sp_publish_control(s, sn->birth_topic, buf, len);
}

/* Births again if a host asked for them since the last step.
 * @return as sim_sp_birth(). */
static int sim_sp_rebirth_due(struct sim *s, int64_t ts_ms) {
        int due;

        pthread_mutex_lock(&s->lock);
        due = s->rebirth_requested;
        s->rebirth_requested = 0;
        pthread_mutex_unlock(&s->lock);
        if (!due)
                return 0;
        s->rebirths++;
        if (!s->opts->quiet)
                tg_info("NCMD %s: sending NBIRTH and every DBIRTH again", SIM_SPN_REBIRTH);
        return sim_sp_birth(s, ts_ms);
}

/* Publish one reading @p r of @p sn. @return 0, -ECANCELED when stopping, or -EIO. */
static int sim_publish_reading(struct sim *s, struct sim_sensor *sn, const struct tg_reading *rp) {
        const struct sim_opts *o = s->opts;
        struct tg_reading r = *rp;
        uint8_t buf[SIM_PAYLOAD_MAX];
        const void *payload = buf;
        const char *topic = sn->topic;
        struct sim_slot *slot;
        size_t json_len = 0, len;
        int rc;

        if (s->spn)
                sim_sp_reading(s, sn, &r);
        slot = slot_acquire(s, NULL, 0);
        if (!slot)
                return -ECANCELED;

        slot->client = sn->own_created ? sn->own : NULL;
        slot->truth_len = 0;
        if (s->truth.f) {
                /* One byte kept back for the truth file's newline. */
                json_len = tg_encode_json(&r, slot->truth, sizeof(slot->truth) - 1);
                /* Field conditions: the order sent, which is the order the
                 * gateway takes a sensor's readings in. */
                if (s->field && json_len)
                        json_len = sim_truth_add_seq(slot->truth, json_len,
                                                     sizeof(slot->truth) - 1, s->seq++);
                slot->truth[json_len] = '\n';
                slot->truth_len = json_len + 1;
        }
        if (o->format == SIM_FORMAT_JSON && s->truth.f && !s->field) {
                payload = slot->truth; /* the truth line is the payload */
                len = json_len;
        } else if (s->spn) {
                len = sim_sp_encode_reading(s, sn, &r, buf, sizeof(buf), &topic);
        } else {
                len = sim_encode(o->format, &r, buf, sizeof(buf));
        }
        if (!len || (s->truth.f && !json_len)) {
                tg_err("%s: reading does not fit %d bytes", sn->id, SIM_PAYLOAD_MAX);
                sim_send_refused(s, slot);
                return -ENOBUFS;
        }
        rc = sim_send(s, slot, topic, payload, len);
        if (rc)
                sim_send_refused(s, slot);
        return rc;
}

/* Publish one reading of @p sn taken at @p ts_ms. @return as sim_publish_reading(). */
static int sim_publish(struct sim *s, struct sim_sensor *sn, int64_t ts_ms, double t_s) {
        struct tg_reading r;

        sim_fill_reading(s, sn, ts_ms, t_s, &r);
        return sim_publish_reading(s, sn, &r);
}

/* Publish the next garbage kind of the cycle on @p sn's topic.
 * @return 0, -ECANCELED when stopping, -ENOBUFS or -EIO. */
static int sim_publish_garbage(struct sim *s, struct sim_sensor *sn, int64_t ts_ms) {
        const struct sim_opts *o = s->opts;
        enum sim_garbage_kind kind = (enum sim_garbage_kind)s->garbage_cycle[s->garbage_next];
        struct sim_slot *slot;
        size_t len;
        int rc;

        s->garbage_next = (s->garbage_next + 1) % s->garbage_nkinds;
        /* An unknown alias needs a device that was born, else the gateway
         * would rightly say no_birth: the next kind stands in. */
        if (kind == GARBAGE_SPARKPLUG_UNKNOWN_ALIAS && sn->need_birth) {
                kind = (enum sim_garbage_kind)s->garbage_cycle[s->garbage_next];
                s->garbage_next = (s->garbage_next + 1) % s->garbage_nkinds;
        }
        slot = slot_acquire(s, sim_garbage_kinds[kind].reason[o->format], 0);
        if (!slot)
                return -ECANCELED;
        len = garbage_encode(o, &s->garbage_bytes_rng, s->spn, (unsigned)(sn - s->sensors), kind,
                             sn, ts_ms, s->garbage_buf, SIM_GARBAGE_MAX);
        if (!len) {
                tg_err("%s: garbage payload (%s) does not fit %d bytes", sn->id,
                       slot->garbage_reason, SIM_GARBAGE_MAX);
                sim_send_refused(s, slot);
                return -ENOBUFS;
        }
        slot->topic = kind == GARBAGE_SPARKPLUG_BAD_TOPIC ? sn->bad_topic : sn->topic;
        slot->garbage_kind = sim_garbage_kinds[kind].name;
        slot->garbage_bytes = len;
        rc = sim_send(s, slot, slot->topic, s->garbage_buf, len);
        if (rc)
                sim_send_refused(s, slot);
        return rc;
}

/* Draw the garbage messages due before @p sn's next reading and publish
 * them. Each message is garbage with probability --garbage on its own
 * draw; as garbage takes no event-time step, the draws repeat until one
 * says "reading". At 1 that would never happen: one garbage message stands
 * in for the reading instead.
 * @return 0, -ECANCELED when stopping, or -EIO. */
static int sim_publish_garbage_due(struct sim *s, struct sim_sensor *sn, int64_t ts_ms) {
        double p = s->opts->garbage;
        int rc = 0;

        if (p <= 0.0 || !s->garbage_nkinds)
                return 0;
        if (p >= 1.0)
                return sim_publish_garbage(s, sn, ts_ms);
        while (!rc && rng_uniform(&s->garbage_rng) < p)
                rc = sim_publish_garbage(s, sn, ts_ms);
        return rc;
}

/* ------------------------------------------------------------------------ */
/* Field conditions: the sensors' own connections and the held readings     */
/* ------------------------------------------------------------------------ */

static void on_own_connected(void *context, MQTTAsync_successData *response) {
        struct sim_sensor *sn = context;

        pthread_mutex_lock(&sn->sim->lock);
        sn->own_state = 1;
        pthread_cond_broadcast(&sn->sim->cond);
        pthread_mutex_unlock(&sn->sim->lock);
}

static void on_own_failed(void *context, MQTTAsync_failureData *response) {
        struct sim_sensor *sn = context;

        pthread_mutex_lock(&sn->sim->lock);
        sn->own_state = -1;
        pthread_cond_broadcast(&sn->sim->cond);
        pthread_mutex_unlock(&sn->sim->lock);
}

/* The drop is ours (sim_own_drop): nothing to stop for. */
static void on_own_lost(void *context, char *cause) {
        struct sim_sensor *sn = context;

        on_own_failed(context, NULL);
        tg_dbg("%s: connection dropped%s%s", sn->id, cause ? ": " : "", cause ? cause : "");
}

/* The process's socket descriptors, into @p fds. @return how many. */
static int sim_sockets(int *fds, int max) {
        struct stat st;
        int fd, n = 0;

        for (fd = 0; fd < 1024 && n < max; fd++)
                if (!fstat(fd, &st) && S_ISSOCK(st.st_mode))
                        fds[n++] = fd;
        return n;
}

/* (Re)connect @p sn's own client, whose will says "offline" on
 * T/<id>/status, and note its socket: Paho has no call that drops a
 * connection without DISCONNECT, so sim_own_drop() shuts the socket.
 * @return 0 or -ECONNREFUSED. */
static int sim_own_connect(struct sim *s, struct sim_sensor *sn) {
        const struct sim_opts *o = s->opts;
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
        MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
        char id[256], topic[SIM_TOPIC_PREFIX_MAX + TG_SENSOR_ID_MAX + 16];
        int before[64], after[64], nb, na, i, j, state;
        int64_t deadline = tg_monotonic_ms() + SIM_CONNECT_TIMEOUT_S * 1000;

        if (!sn->own_created) {
                snprintf(id, sizeof(id), "%s-%s", o->client_id, sn->id);
                co.maxBufferedMessages = (int)o->inflight * 2;
                co.MQTTVersion = MQTTVERSION_3_1_1;
                if (MQTTAsync_createWithOptions(&sn->own, o->uri, id, MQTTCLIENT_PERSISTENCE_NONE,
                                                NULL, &co) != MQTTASYNC_SUCCESS)
                        return -ECONNREFUSED;
                sn->own_created = 1;
                sn->sim = s;
                MQTTAsync_setConnectionLostCallback(sn->own, sn, on_own_lost);
        }
        snprintf(topic, sizeof(topic), "%s/%s/status", o->topic_prefix, sn->id);
        will.topicName = topic;
        will.message = "offline";
        will.qos = 1;
        cn.will = &will;
        cn.keepAliveInterval = 30;
        cn.cleansession = 1;
        cn.maxInflight = (int)o->inflight * 2;
        cn.connectTimeout = SIM_CONNECT_TIMEOUT_S;
        cn.MQTTVersion = MQTTVERSION_3_1_1;
        cn.onSuccess = on_own_connected;
        cn.onFailure = on_own_failed;
        cn.context = sn;
        nb = sim_sockets(before, 64);
        pthread_mutex_lock(&s->lock);
        sn->own_state = 0;
        pthread_mutex_unlock(&s->lock);
        if (MQTTAsync_connect(sn->own, &cn) != MQTTASYNC_SUCCESS)
                return -ECONNREFUSED;
        pthread_mutex_lock(&s->lock);
        while (sn->own_state == 0 && !sim_should_stop_locked(s))
                if (sim_wait_locked(s, deadline) == ETIMEDOUT)
                        break;
        state = sn->own_state;
        pthread_mutex_unlock(&s->lock);
        if (state != 1) {
                tg_err("%s: cannot connect its own client to %s", sn->id, o->uri);
                return -ECONNREFUSED;
        }
        na = sim_sockets(after, 64);
        sn->own_fd = -1;
        for (i = 0; i < na && sn->own_fd < 0; i++) {
                for (j = 0; j < nb && before[j] != after[i]; j++)
                        ;
                if (j == nb)
                        sn->own_fd = after[i];
        }
        return 0;
}

/* Drop @p sn's connection as a power cut would: once what it sent is
 * acknowledged, the socket is shut without DISCONNECT, so the broker
 * publishes the will. @return 0 or -EIO. */
static int sim_own_drop(struct sim *s, struct sim_sensor *sn) {
        int64_t deadline = tg_monotonic_ms() + SIM_DRAIN_TIMEOUT_MS;
        MQTTAsync_token *pending = NULL;

        for (;;) {
                if (MQTTAsync_getPendingTokens(sn->own, &pending) == MQTTASYNC_SUCCESS && !pending)
                        break;
                MQTTAsync_free(pending);
                pending = NULL;
                if (tg_monotonic_ms() > deadline) {
                        tg_err("%s: publishes still unacknowledged; cannot drop it cleanly", sn->id);
                        return -EIO;
                }
                usleep(1000);
        }
        if (sn->own_fd < 0 || shutdown(sn->own_fd, SHUT_RDWR)) {
                tg_err("%s: no socket of its own to drop", sn->id);
                return -EIO;
        }
        while (MQTTAsync_isConnected(sn->own) && tg_monotonic_ms() < deadline)
                usleep(1000);
        if (!s->opts->quiet)
                tg_info("%s: connection dropped without DISCONNECT", sn->id);
        return 0;
}

/* Send what sensor @p i holds that is due at step offset @p now.
 * @return 0, or as sim_publish_reading(). */
static int sim_send_due(struct sim *s, unsigned i, int64_t now) {
        struct sim_sensor *sn = &s->sensors[i];
        struct sim_held h;
        struct tg_reading r;
        unsigned f;
        int rc;

        while (sim_field_next_due(s->field, i, now, &h)) {
                tg_reading_clear(&r);
                tg_reading_set_sensor(&r, sn->id, sn->id_len);
                r.ts_ms = h.ts;
                for (f = 0; f < s->opts->nfields; f++)
                        tg_reading_add_field(&r, field_models[f].name,
                                             strlen(field_models[f].name), h.v[f]);
                if ((rc = sim_publish_reading(s, sn, &r)))
                        return rc;
        }
        return 0;
}

/* Sensor @p i's step at offset @p at under field conditions: its
 * connection drops or returns, it takes a reading on its own clock (lost
 * while disconnected), and sends what is due. @return 0, or an error. */
static int sim_field_step(struct sim *s, unsigned i, int64_t start_ms, int64_t at, double t_s) {
        struct sim_sensor *sn = &s->sensors[i];
        struct tg_reading r;
        double v[SIM_FIELD_VALUES] = {0};
        int64_t from, to;
        unsigned f;
        int rc = 0;

        if (sim_field_disconnect_span(s->field, i, &from, &to)) {
                if (at == 0 || at == to)
                        rc = sim_own_connect(s, sn);
                else if (at == from)
                        rc = sim_own_drop(s, sn);
                if (rc)
                        return rc;
        }
        /* Drawn whatever happens to it, so the series stays the same. */
        sim_fill_reading(s, sn, sim_field_ts(s->field, i, start_ms, at), t_s, &r);
        if (!sim_field_disconnected(s->field, i, at)) {
                for (f = 0; f < r.nfields && f < SIM_FIELD_VALUES; f++)
                        v[f] = r.fields[f].value;
                if (sim_field_take(s->field, i, at, r.ts_ms, v)) {
                        tg_err("%s: too many readings held", sn->id);
                        return -ENOBUFS;
                }
        }
        return sim_send_due(s, i, at);
}

/* After the last step: what is still held leaves, in order (a sensor
 * still away reconnects first). @return 0, or an error. */
static int sim_field_flush(struct sim *s) {
        unsigned i;
        int rc;

        for (i = 0; i < s->opts->sensors; i++) {
                struct sim_sensor *sn = &s->sensors[i];

                if (sn->own_created && sn->own_state != 1 && sim_field_held(s->field, i) &&
                    (rc = sim_own_connect(s, sn)))
                        return rc;
                if ((rc = sim_send_due(s, i, INT64_MAX)))
                        return rc;
        }
        return 0;
}

/* The options and every outage and disconnect (event time), as the truth
 * file's first lines. */
static void sim_field_truth_head(struct sim *s, int64_t start_ms) {
        char line[1024];
        size_t n = sim_field_describe(&s->opts->field, s->opts->seed, line, sizeof(line) - 1);
        int64_t from, to;
        unsigned i;

        if (!s->truth.f)
                return;
        line[n++] = '\n';
        sim_file_write_locked(&s->truth, line, n);
        for (i = 0; i < s->opts->sensors; i++) {
                if (sim_field_offline_span(s->field, i, &from, &to))
                        fprintf(s->truth.f, "{\"event\":\"offline\",\"sensor\":\"%s\",\"from\":%"
                                PRId64 ",\"to\":%" PRId64 "}\n", s->sensors[i].id,
                                start_ms + from, start_ms + to);
                if (sim_field_disconnect_span(s->field, i, &from, &to))
                        fprintf(s->truth.f, "{\"event\":\"disconnect\",\"sensor\":\"%s\","
                                "\"from\":%" PRId64 ",\"to\":%" PRId64 "}\n", s->sensors[i].id,
                                start_ms + from, start_ms + to);
        }
}

struct sim_progress {
        uint64_t published, confirmed, failed, garbage;
        unsigned inflight;
};

static void sim_snapshot(struct sim *s, struct sim_progress *p) {
        pthread_mutex_lock(&s->lock);
        p->published = s->published;
        p->confirmed = s->confirmed;
        p->failed = s->failed;
        p->garbage = s->garbage_published;
        p->inflight = s->opts->inflight - s->nfree;
        pthread_mutex_unlock(&s->lock);
}

/* Sleep until the monotonic @p deadline_ms unless told to stop first. */
static void sim_sleep_until(struct sim *s, int64_t deadline_ms) {
        pthread_mutex_lock(&s->lock);
        while (!sim_should_stop_locked(s) && tg_monotonic_ms() < deadline_ms)
                sim_wait_locked(s, deadline_ms);
        pthread_mutex_unlock(&s->lock);
}

/* Step through event time; at each step every sensor publishes once, in
 * index order, so each sensor's timestamps strictly increase. */
static void sim_run(struct sim *s, uint64_t steps, int64_t start_ms) {
        const struct sim_opts *o = s->opts;
        int64_t mono0 = tg_monotonic_ms(), next_progress = mono0 + SIM_PROGRESS_MS;
        int lag_warned = 0;
        struct sim_progress last = {0};
        uint64_t k;
        unsigned i;

        if (s->spn && sim_sp_birth(s, start_ms))
                return;
        for (k = 0; !steps || k < steps; k++) {
                int64_t offset_ms = (int64_t)(k * o->step_ms);
                double t_s = (double)offset_ms / 1000.0;
                int64_t now;

                if (!o->fast) {
                        int64_t due = mono0 + offset_ms;

                        now = tg_monotonic_ms();
                        if (now < due) {
                                sim_sleep_until(s, due);
                        } else if (now - due > SIM_LAG_WARN_MS && !lag_warned) {
                                /* Keep event time honest and catch up rather
                                 * than skip steps: the data stays complete. */
                                tg_warn("falling behind the wall clock by %" PRId64
                                        " ms; the broker cannot take %u readings/s",
                                        now - due, o->sensors * (1000 / o->step_ms));
                                lag_warned = 1;
                        }
                }
                if (s->spn && sim_sp_rebirth_due(s, start_ms + offset_ms))
                        return;
                for (i = 0; i < o->sensors; i++) {
                        struct sim_sensor *sn = &s->sensors[i];

                        if (sim_publish_garbage_due(s, sn, start_ms + offset_ms))
                                return;
                        if (s->field && o->garbage < 1.0) {
                                if (sim_field_step(s, i, start_ms, offset_ms, t_s))
                                        return;
                        } else if (o->garbage < 1.0 &&
                                   sim_publish(s, sn, start_ms + offset_ms, t_s)) {
                                return;
                        }
                        if (s->spn && sim_sp_birth_owed(s, i, start_ms + offset_ms))
                                return;
                }

                now = tg_monotonic_ms();
                if (!o->quiet && now >= next_progress) {
                        struct sim_progress p;

                        sim_snapshot(s, &p);
                        tg_info("progress: published=%" PRIu64 " confirmed=%" PRIu64
                                " failed=%" PRIu64 " garbage=%" PRIu64
                                " inflight=%u rate_per_s=%.0f",
                                p.published, p.confirmed, p.failed, p.garbage, p.inflight,
                                (double)(p.confirmed - last.confirmed) * 1000.0 /
                                        (double)(now - next_progress + SIM_PROGRESS_MS));
                        last = p;
                        next_progress = now + SIM_PROGRESS_MS;
                }
        }
        if (s->field)
                sim_field_flush(s);
}

/* Wait, bounded, until every publish has completed one way or the other. */
static void sim_drain(struct sim *s) {
        int64_t deadline = tg_monotonic_ms() + SIM_DRAIN_TIMEOUT_MS;

        pthread_mutex_lock(&s->lock);
        s->wake_free = s->opts->inflight;
        /* After a connection loss no acknowledgement can arrive any more. */
        while (s->nfree < s->opts->inflight && !s->abort_drain && !s->lost) {
                int rc;

                s->main_waiting = 1;
                rc = sim_wait_locked(s, deadline);
                s->main_waiting = 0;
                if (rc == ETIMEDOUT)
                        break;
        }
        pthread_mutex_unlock(&s->lock);
}

int main(int argc, char **argv) {
        struct sim_opts o;
        struct sim s;
        pthread_t sig_thread;
        sigset_t set;
        uint64_t steps = 0, unconfirmed;
        unsigned i;
        int64_t start_ms, t0, t1;
        double elapsed_s;
        int rc, status = 0;

        tg_log_set_ident("tumblegate-sim");
        rc = sim_opts_parse(&o, argc, argv);
        if (rc)
                return rc > 0 ? 0 : SIM_EXIT_USAGE;

        /* Blocked before any thread exists, so every thread inherits it and
         * only sim_signal_thread ever receives these. */
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN); /* a dead broker is an error return, not a kill */

        MQTTAsync_setTraceCallback(on_paho_trace);
        MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);

        if (sim_init(&s, &o)) {
                sim_files_close(&s);
                sim_free(&s);
                return 1;
        }
        if (pthread_create(&sig_thread, NULL, sim_signal_thread, &s)) {
                tg_err("cannot start the signal thread");
                sim_files_close(&s);
                sim_free(&s);
                return 1;
        }

        /* Readings whose ts lies in [start, start + duration). */
        if (o.duration_s)
                steps = (o.duration_s * 1000 + o.step_ms - 1) / o.step_ms;
        if (o.fast && !o.duration_s && !o.have_start)
                tg_warn("--fast without --duration: event time will run ahead of the wall clock");
        if (o.rate > 1000)
                tg_warn("--rate %u: the event-time step is 1 ms, so each sensor sends 1000/s",
                        o.rate);

        rc = sim_connect(&s);
        if (!rc) {
                /* Taken once connected, so that paced readings carry the
                 * wall-clock time at which they are sent. */
                if (o.have_start)
                        start_ms = o.start_ms;
                else if (o.fast)
                        /* The last step lands before now: nothing from the
                         * future. */
                        start_ms = tg_clock_now(&tg_clock_realtime) -
                                   (int64_t)(o.duration_s * 1000);
                else
                        start_ms = tg_clock_now(&tg_clock_realtime);
                if (!o.quiet) {
                        char dur[64];

                        if (o.duration_s)
                                snprintf(dur, sizeof(dur), "%" PRIu64 " s (%" PRIu64 " %s)",
                                         o.duration_s, steps * o.sensors,
                                         o.garbage >= 1.0 ? "garbage messages" : "readings");
                        else
                                snprintf(dur, sizeof(dur), "until stopped");
                        tg_info("connected to %s as %s: %u sensors, step %u ms, %s, %s, qos %d, "
                                "%s, garbage %g, first ts %" PRId64,
                                o.uri, o.client_id, o.sensors, o.step_ms, dur,
                                o.fast ? "fast" : "paced to the wall clock", o.qos,
                                sim_format_names[o.format], o.garbage, start_ms);
                }
                if (s.field)
                        sim_field_truth_head(&s, start_ms);
                t0 = tg_monotonic_ms();
                sim_run(&s, steps, start_ms);
                sim_drain(&s);
                t1 = tg_monotonic_ms();
                sim_disconnect(&s);
        } else {
                t0 = t1 = tg_monotonic_ms();
                status = 1;
        }
        /* Destroy first: Paho may still fail leftover publishes through
         * their callbacks, which need the slots and the truth file. */
        if (s.client_created)
                MQTTAsync_destroy(&s.client);
        for (i = 0; i < o.sensors; i++)
                if (s.sensors[i].own_created)
                        MQTTAsync_destroy(&s.sensors[i].own); /* DISCONNECT: no will */
        pthread_cancel(sig_thread);
        pthread_join(sig_thread, NULL);

        /* Whatever never completed cannot be called published. */
        unconfirmed = o.inflight - s.nfree;
        for (i = 0; i < o.inflight; i++) {
                if (!s.slots[i].in_use)
                        continue;
                if (s.slots[i].control)
                        s.control_failed++;
                else if (s.slots[i].garbage_reason)
                        s.garbage_failed++;
                else
                        s.failed++;
        }
        if (unconfirmed)
                tg_err("%" PRIu64 " publishes never completed; counted as failed", unconfirmed);
        if (sim_files_close(&s))
                status = 1;
        if (s.failed || s.garbage_failed || s.lost)
                status = 1;

        /* Readings and garbage are counted apart: published, confirmed and
         * failed are readings only, as they were before --garbage. */
        elapsed_s = (double)(t1 - t0) / 1000.0;
        if (s.spn)
                tg_info("sparkplug: node %s bdSeq %" PRIu64 ", births without a reading published=%"
                        PRIu64 " confirmed=%" PRIu64 " failed=%" PRIu64 ", rebirths asked=%" PRIu64,
                        s.sp_node_id, sim_spn_bdseq(s.spn), s.control_published,
                        s.control_confirmed, s.control_failed, s.rebirths);
        if (s.control_failed)
                status = 1;
        tg_info("summary: published=%" PRIu64 " confirmed=%" PRIu64 " failed=%" PRIu64
                " garbage_published=%" PRIu64 " garbage_confirmed=%" PRIu64
                " garbage_failed=%" PRIu64 " elapsed_s=%.3f rate_per_s=%.0f",
                s.published, s.confirmed, s.failed, s.garbage_published, s.garbage_confirmed,
                s.garbage_failed, elapsed_s,
                elapsed_s > 0 ? (double)s.confirmed / elapsed_s : 0.0);
        sim_free(&s);
        return status;
}
