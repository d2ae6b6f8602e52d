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
#include <unistd.h>

#include <MQTTAsync.h>

#include "clock.h"
#include "codec.h"
#include "log.h"
#include "reading.h"

#ifndef TG_VERSION
#define TG_VERSION "dev"
#endif

#define SIM_FIELDS_MAX 3
#define SIM_TOPIC_PREFIX_MAX 1024
/* One reading is an id of at most 64 bytes, a timestamp and three doubles:
 * a few hundred bytes in either encoding, so these never truncate. */
#define SIM_PAYLOAD_MAX 1024
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
        enum tg_format format;
        uint64_t seed;
        const char *truth_path;
        unsigned inflight;
        unsigned nfields;
        int quiet;
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
         "first event timestamp in ms since the epoch "
         "(default: now; with --fast, now minus the duration)"},
        {"qos", required_argument, OPT_QOS, "0|1", "MQTT QoS of every publish (default 1)"},
        {"format", required_argument, OPT_FORMAT, "cbor|json", "payload encoding (default cbor)"},
        {"seed", required_argument, OPT_SEED, "N",
         "seed of the signal generator; same seed and options, same values (default 1)"},
        {"truth", required_argument, OPT_TRUTH, "FILE",
         "write every successfully published reading to FILE as one JSON line"},
        {"inflight", required_argument, OPT_INFLIGHT, "N",
         "most publishes awaiting completion at once, 1..32767 (default 512)"},
        {"fields", required_argument, OPT_FIELDS, "N",
         "fields per reading, 1..3: temperature, humidity, pressure (default 3)"},
        {"quiet", no_argument, OPT_QUIET, NULL,
         "no start-up and progress lines; the summary is still printed"},
        {"help", no_argument, OPT_HELP, NULL, "print this help and exit"},
        {"version", no_argument, OPT_VERSION, NULL, "print the version and exit"},
};

#define SIM_NOPTIONS (sizeof(sim_options) / sizeof(*sim_options))

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
                "Simulate sensor nodes that publish readings (CBOR or JSON) to an MQTT broker.\n"
                "At every event-time step each sensor publishes one reading. The exit status\n"
                "is 0 only if every publish was confirmed (QoS 1: acknowledged by the broker;\n"
                "QoS 0: written to the connection).\n\n",
                prog);
        for (i = 0; i < SIM_NOPTIONS; i++) {
                const struct sim_option *o = &sim_options[i];
                char head[48];

                snprintf(head, sizeof(head), "--%s%s%s", o->name, o->metavar ? " " : "",
                         o->metavar ? o->metavar : "");
                fprintf(out, "  %-22s", head);
                sim_usage_wrap(out, o->doc, 24, 79);
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
        o->format = TG_FORMAT_CBOR;
        o->seed = 1;
        o->inflight = 512;
        o->nfields = SIM_FIELDS_MAX;

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
                        /* The decoders take ts below 2^53 ms; keep well clear. */
                        rc = parse_u64("start-ms", optarg, 0, 1ULL << 52, &v64);
                        o->start_ms = (int64_t)v64;
                        o->have_start = 1;
                        break;
                case OPT_QOS:
                        rc = parse_u64("qos", optarg, 0, 1, &v64);
                        o->qos = (int)v64;
                        break;
                case OPT_FORMAT:
                        if (tg_format_parse(optarg, &o->format) || o->format == TG_FORMAT_AUTO) {
                                tg_err("--format: '%s' is neither cbor nor json", optarg);
                                rc = -EINVAL;
                        }
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
                case OPT_QUIET:
                        o->quiet = 1;
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
        o->step_ms = o->rate >= 1000 ? 1 : 1000 / o->rate;
        if (!o->client_id) {
                snprintf(o->client_id_buf, sizeof(o->client_id_buf), "tumblegate-sim-%ld",
                         (long)getpid());
                o->client_id = o->client_id_buf;
        }
        return 0;
}

/* ------------------------------------------------------------------------ */
/* Deterministic signal model                                                */
/* ------------------------------------------------------------------------ */

/* splitmix64 only expands seeds; xoshiro256** draws the values. Both are
 * fixed algorithms, so a seed means the same series on every libc. */
static uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

struct sim_rng {
        uint64_t s[4];
        double spare;
        int has_spare;
};

static uint64_t rng_next(struct sim_rng *r) {
        uint64_t *s = r->s;
        uint64_t result = rotl64(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl64(s[3], 45);
        return result;
}

/* Uniform in [0, 1) with the full 53-bit mantissa. */
static double rng_uniform(struct sim_rng *r) {
        return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal by Box-Muller; the second value of each pair is kept. */
static double rng_gauss(struct sim_rng *r) {
        double u1, u2, mag;

        if (r->has_spare) {
                r->has_spare = 0;
                return r->spare;
        }
        u1 = 1.0 - rng_uniform(r); /* (0, 1]: log() stays finite */
        u2 = rng_uniform(r);
        mag = sqrt(-2.0 * log(u1));
        r->spare = mag * sin(2.0 * M_PI * u2);
        r->has_spare = 1;
        return mag * cos(2.0 * M_PI * u2);
}

/* Each (sensor, field) pair has its own stream, so a sensor's series does
 * not change when --sensors or --fields does. */
static void rng_seed(struct sim_rng *r, uint64_t seed, unsigned sensor, unsigned field) {
        uint64_t x = seed ^ ((uint64_t)sensor + 1) * 0xd1b54a32d192ed03ULL ^
                     ((uint64_t)field + 1) * 0x8cb92ba72f3d8dd7ULL;
        int i;

        for (i = 0; i < 4; i++)
                r->s[i] = splitmix64(&x);
        r->has_spare = 0;
}

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
};

static void field_init(struct field_state *f, const struct field_model *m, uint64_t seed,
                       unsigned sensor, unsigned field) {
        rng_seed(&f->rng, seed, sensor, field);
        f->base = m->center + m->offset_spread * (2.0 * rng_uniform(&f->rng) - 1.0);
        f->period_s = 600.0 + 1200.0 * rng_uniform(&f->rng);
        f->phase = 2.0 * M_PI * rng_uniform(&f->rng);
        f->walk = m->walk_std * rng_gauss(&f->rng); /* start in the stationary state */
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
 * window. The truth line is encoded before the publish so the completion
 * callback only copies bytes. */
struct sim_slot {
        struct sim *sim;
        unsigned idx;
        size_t truth_len;
        char truth[SIM_PAYLOAD_MAX];
};

struct sim_sensor {
        char id[TG_SENSOR_ID_MAX + 1];
        uint16_t id_len;
        const char *topic;
        struct field_state fields[SIM_FIELDS_MAX];
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

        /* Everything below is shared with Paho's threads and the signal
         * thread, and guarded by lock. Paho is never called with lock held:
         * its callbacks run under Paho's own mutex and take ours, so the
         * reverse order could deadlock. */
        pthread_mutex_t lock;
        pthread_cond_t cond;    /* CLOCK_MONOTONIC */
        unsigned nfree;
        unsigned wake_free;     /* main wants waking when this many are free */
        int main_waiting;
        uint64_t published;     /* handed to Paho (or refused by it) */
        uint64_t confirmed;
        uint64_t failed;
        int stop_signal;        /* first SIGINT/SIGTERM */
        int abort_drain;        /* a second one: stop waiting for confirmations */
        int failing;            /* a publish failed or stalled: stop publishing */
        int failure_logged;     /* one line for the first failure callback */
        int lost;               /* the connection dropped */
        int connect_state;      /* 0 pending, 1 connected, -1 failed */
        int connect_code;
        char connect_msg[160];
        int disconnected;
        FILE *truth;
        int truth_errno;
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
        s->free_slots[s->nfree++] = slot->idx;
        if (s->main_waiting && s->nfree >= s->wake_free)
                pthread_cond_signal(&s->cond);
}

/* ------------------------------------------------------------------------ */
/* Paho callbacks (run on Paho's threads)                                    */
/* ------------------------------------------------------------------------ */

static void on_publish_success(void *context, MQTTAsync_successData *response) {
        struct sim_slot *slot = context;
        struct sim *s = slot->sim;

        pthread_mutex_lock(&s->lock);
        s->confirmed++;
        if (s->truth && !s->truth_errno &&
            fwrite(slot->truth, 1, slot->truth_len, s->truth) != slot->truth_len)
                s->truth_errno = errno ? errno : EIO;
        slot_release_locked(s, slot);
        pthread_mutex_unlock(&s->lock);
}

static void on_publish_failure(void *context, MQTTAsync_failureData *response) {
        struct sim_slot *slot = context;
        struct sim *s = slot->sim;
        int first;

        pthread_mutex_lock(&s->lock);
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

static void on_connect_success(void *context, MQTTAsync_successData *response) {
        struct sim *s = context;

        pthread_mutex_lock(&s->lock);
        s->connect_state = 1;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
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

        pthread_mutex_lock(&s->lock);
        s->disconnected = 1;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
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

static int sim_init(struct sim *s, const struct sim_opts *o) {
        pthread_condattr_t ca;
        size_t topic_stride;
        unsigned i, f;
        double dt_s;

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
        s->sensors = calloc(o->sensors, sizeof(*s->sensors));
        s->topics = calloc(o->sensors, topic_stride);
        s->slots = calloc(o->inflight, sizeof(*s->slots));
        s->free_slots = calloc(o->inflight, sizeof(*s->free_slots));
        if (!s->sensors || !s->topics || !s->slots || !s->free_slots) {
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

        if (o->truth_path) {
                s->truth = fopen(o->truth_path, "w");
                if (!s->truth) {
                        int err = errno;

                        tg_err("--truth: cannot create %s: %s", o->truth_path, strerror(err));
                        return -err;
                }
                /* Lines are written from Paho's callback thread; a large
                 * buffer keeps that to a memcpy almost every time. */
                setvbuf(s->truth, NULL, _IOFBF, 1 << 20);
        }
        return 0;
}

/* Flush and close the truth file. @return 0 or -errno if any line was lost. */
static int sim_truth_close(struct sim *s) {
        int err = s->truth_errno;

        if (!s->truth)
                return 0;
        if (fclose(s->truth) && !err)
                err = errno ? errno : EIO;
        s->truth = NULL;
        if (err) {
                tg_err("--truth: writing %s failed: %s; the file is incomplete",
                       s->opts->truth_path, strerror(err));
                return -err;
        }
        return 0;
}

static void sim_free(struct sim *s) {
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

static int sim_connect(struct sim *s) {
        const struct sim_opts *o = s->opts;
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
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
                return 0;
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

static void sim_disconnect(struct sim *s) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        int64_t deadline;
        int lost;

        pthread_mutex_lock(&s->lock);
        lost = s->lost;
        pthread_mutex_unlock(&s->lock);
        if (lost || !MQTTAsync_isConnected(s->client))
                return;
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
/* Publishing                                                                */
/* ------------------------------------------------------------------------ */

/* Take a free slot, waiting while the window is full.
 * @return the slot, or NULL when publishing must stop. */
static struct sim_slot *slot_acquire(struct sim *s) {
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
                s->published++;
        }
        pthread_mutex_unlock(&s->lock);
        return slot;
}

static void sim_fill_reading(struct sim *s, struct sim_sensor *sn, int64_t ts_ms, double t_s,
                             struct tg_reading *r) {
        unsigned f;

        tg_reading_clear(r);
        tg_reading_set_sensor(r, sn->id, sn->id_len);
        r->ts_ms = ts_ms;
        for (f = 0; f < s->opts->nfields; f++) {
                const struct field_model *m = &field_models[f];
                double v = field_next(&sn->fields[f], m, t_s, s->walk_decay, s->walk_kick);

                tg_reading_add_field(r, m->name, strlen(m->name), v);
        }
}

/* Publish one reading. @return 0, -ECANCELED when stopping, or -EIO. */
static int sim_publish(struct sim *s, struct sim_sensor *sn, int64_t ts_ms, double t_s) {
        const struct sim_opts *o = s->opts;
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        struct tg_reading r;
        uint8_t cbor[SIM_PAYLOAD_MAX];
        struct sim_slot *slot;
        size_t json_len = 0, len;
        int rc;

        sim_fill_reading(s, sn, ts_ms, t_s, &r);
        slot = slot_acquire(s);
        if (!slot)
                return -ECANCELED;

        slot->truth_len = 0;
        if (s->truth || o->format == TG_FORMAT_JSON) {
                /* One byte kept back for the truth file's newline. */
                json_len = tg_encode_json(&r, slot->truth, sizeof(slot->truth) - 1);
                slot->truth[json_len] = '\n';
                slot->truth_len = json_len + 1;
        }
        if (o->format == TG_FORMAT_JSON) {
                msg.payload = slot->truth;
                len = json_len;
        } else {
                msg.payload = cbor;
                len = tg_encode_cbor(&r, cbor, sizeof(cbor));
        }
        if (!len || ((s->truth || o->format == TG_FORMAT_JSON) && !json_len)) {
                rc = -ENOBUFS;
                tg_err("%s: reading does not fit %d bytes", sn->id, SIM_PAYLOAD_MAX);
                goto refused;
        }
        msg.payloadlen = (int)len;
        msg.qos = o->qos;
        msg.retained = 0;
        ro.onSuccess = on_publish_success;
        ro.onFailure = on_publish_failure;
        ro.context = slot;
        /* Paho copies topic and payload before returning, so stack buffers
         * are fine. A refusal here means no callback will ever come. */
        rc = MQTTAsync_sendMessage(s->client, sn->topic, &msg, &ro);
        if (rc == MQTTASYNC_SUCCESS)
                return 0;
        tg_err("publish to %s refused by the MQTT client: %s (%d); stopping", sn->topic,
               MQTTAsync_strerror(rc), rc);
        rc = -EIO;
refused:
        pthread_mutex_lock(&s->lock);
        s->failed++;
        s->failing = 1;
        slot_release_locked(s, slot);
        pthread_mutex_unlock(&s->lock);
        return rc;
}

struct sim_progress {
        uint64_t published, confirmed, failed;
        unsigned inflight;
};

static void sim_snapshot(struct sim *s, struct sim_progress *p) {
        pthread_mutex_lock(&s->lock);
        p->published = s->published;
        p->confirmed = s->confirmed;
        p->failed = s->failed;
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
                for (i = 0; i < o->sensors; i++)
                        if (sim_publish(s, &s->sensors[i], start_ms + offset_ms, t_s))
                                return;

                now = tg_monotonic_ms();
                if (!o->quiet && now >= next_progress) {
                        struct sim_progress p;

                        sim_snapshot(s, &p);
                        tg_info("progress: published=%" PRIu64 " confirmed=%" PRIu64
                                " failed=%" PRIu64 " inflight=%u rate_per_s=%.0f",
                                p.published, p.confirmed, p.failed, p.inflight,
                                (double)(p.confirmed - last.confirmed) * 1000.0 /
                                        (double)(now - next_progress + SIM_PROGRESS_MS));
                        last = p;
                        next_progress = now + SIM_PROGRESS_MS;
                }
        }
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
                sim_truth_close(&s);
                sim_free(&s);
                return 1;
        }
        if (pthread_create(&sig_thread, NULL, sim_signal_thread, &s)) {
                tg_err("cannot start the signal thread");
                sim_truth_close(&s);
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
                                snprintf(dur, sizeof(dur), "%" PRIu64 " s (%" PRIu64 " readings)",
                                         o.duration_s, steps * o.sensors);
                        else
                                snprintf(dur, sizeof(dur), "until stopped");
                        tg_info("connected to %s as %s: %u sensors, step %u ms, %s, %s, qos %d, "
                                "%s, first ts %" PRId64,
                                o.uri, o.client_id, o.sensors, o.step_ms, dur,
                                o.fast ? "fast" : "paced to the wall clock", o.qos,
                                tg_format_name(o.format), start_ms);
                }
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
        pthread_cancel(sig_thread);
        pthread_join(sig_thread, NULL);

        /* Whatever never completed cannot be called published. */
        unconfirmed = o.inflight - s.nfree;
        s.failed += unconfirmed;
        if (unconfirmed)
                tg_err("%" PRIu64 " publishes never completed; counted as failed", unconfirmed);
        if (sim_truth_close(&s))
                status = 1;
        if (s.failed || s.lost)
                status = 1;

        elapsed_s = (double)(t1 - t0) / 1000.0;
        tg_info("summary: published=%" PRIu64 " confirmed=%" PRIu64 " failed=%" PRIu64
                " elapsed_s=%.3f rate_per_s=%.0f",
                s.published, s.confirmed, s.failed, elapsed_s,
                elapsed_s > 0 ? (double)s.confirmed / elapsed_s : 0.0);
        sim_free(&s);
        return status;
}
