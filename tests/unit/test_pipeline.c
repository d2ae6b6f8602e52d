/* test_pipeline.c - the data path against a fake sink: delivery ledger, outages the spool absorbs, checkpoints and replay. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pipeline runs whole (intake, spool in a temporary directory, the
 * forwarder thread, worker, ledger, checkpoints) and produces into a sink
 * of this file's own that keeps every record, holds at most `capacity` of
 * them and confirms them only while `up` is set: Kafka, slow or down, on
 * demand. The integration tests run the same paths against the real broker.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "ledger.h"
#include "msgprops.h"
#include "log.h"
#include "pipeline.h"
#include "sparkplug_b.pb-c.h"
#include "tg_test.h"

/* ---- a fake sink -------------------------------------------------------- */

#define REC_MAX 200000

struct rec {
        enum tg_sink_topic topic;
        uint64_t tag;
        char key[80];
        char reason[48];      /* a dead letter's tg.reason */
        char *value;
        char *headers;        /* "name=value\n" each, values' NULs as \0 */
        int64_t ts;
        int delivered;
};

static struct fake {
        pthread_mutex_t lock;
        struct rec recs[REC_MAX];
        size_t n, held_from;  /* records [held_from, n) await delivery */
        int held, capacity, max_held;
        int up;               /* confirm records in poll */
        int late_topic;       /* topics.late is configured */
        tg_sink_delivery_fn *fn;
        void *opaque;
} fk = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int fake_produce(void *ctx, enum tg_sink_topic topic, const char *key, size_t key_len,
                        const void *value, size_t len, int64_t ts,
                        const struct tg_sink_header *h, size_t nh, uint64_t tag) {
        struct rec *r;

        (void)ctx;
        pthread_mutex_lock(&fk.lock);
        if (fk.held >= fk.capacity) {
                pthread_mutex_unlock(&fk.lock);
                return -ENOBUFS;
        }
        if (fk.n == REC_MAX) { /* the forwarder's thread: no CUnit here */
                pthread_mutex_unlock(&fk.lock);
                return -EIO;
        }
        r = &fk.recs[fk.n++];
        r->topic = topic;
        r->tag = tag;
        snprintf(r->key, sizeof(r->key), "%.*s", (int)key_len, key);
        r->value = strndup(value, len);
        r->ts = ts;
        r->headers = NULL;
        if (nh) {
                size_t i, j, k = 0, cap = 1;

                for (i = 0; i < nh; i++)
                        cap += strlen(h[i].name) + 2 * h[i].len + 2;
                r->headers = malloc(cap);
                for (i = 0; r->headers && i < nh; i++) {
                        const char *v = h[i].value;

                        k += (size_t)sprintf(r->headers + k, "%s=", h[i].name);
                        for (j = 0; j < h[i].len; j++)
                                if (v[j])
                                        r->headers[k++] = v[j];
                                else
                                        r->headers[k++] = '\\', r->headers[k++] = '0';
                        r->headers[k++] = '\n';
                }
                if (r->headers)
                        r->headers[k] = '\0';
        }
        r->reason[0] = '\0';
        if (nh && !strcmp(h[0].name, "tg.reason"))
                snprintf(r->reason, sizeof(r->reason), "%.*s", (int)h[0].len,
                         (const char *)h[0].value);
        r->delivered = 0;
        if (++fk.held > fk.max_held)
                fk.max_held = fk.held;
        pthread_mutex_unlock(&fk.lock);
        return 0;
}

/* Confirms, in order, everything held while up; else just sleeps. */
static void fake_poll(void *ctx, int timeout_ms) {
        (void)ctx;
        pthread_mutex_lock(&fk.lock);
        if (fk.up) {
                for (; fk.held_from < fk.n; fk.held_from++) {
                        struct rec *r = &fk.recs[fk.held_from];

                        r->delivered = 1;
                        fk.held--;
                        fk.fn(fk.opaque, r->topic, r->tag, 1);
                }
        }
        pthread_mutex_unlock(&fk.lock);
        if (timeout_ms > 0)
                usleep((useconds_t)timeout_ms * 1000);
}

static int fake_in_flight(void *ctx) {
        int v;

        (void)ctx;
        pthread_mutex_lock(&fk.lock);
        v = fk.held;
        pthread_mutex_unlock(&fk.lock);
        return v;
}

static int fake_has_topic(void *ctx, enum tg_sink_topic t) {
        (void)ctx;
        return t == TG_SINK_RAW || t == TG_SINK_AGG || t == TG_SINK_DLQ ||
               (t == TG_SINK_LATE && fk.late_topic);
}

static void fake_on_delivery(void *ctx, tg_sink_delivery_fn *fn, void *opaque) {
        (void)ctx;
        fk.fn = fn;
        fk.opaque = opaque;
}

static const struct tg_sink *fake_reset(int capacity, int up) {
        static struct tg_sink s = {
                .produce = fake_produce,
                .poll = fake_poll,
                .in_flight = fake_in_flight,
                .has_topic = fake_has_topic,
                .on_delivery = fake_on_delivery,
        };
        size_t i;

        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < fk.n; i++) {
                free(fk.recs[i].value);
                free(fk.recs[i].headers);
        }
        fk.n = fk.held_from = 0;
        fk.held = fk.max_held = 0;
        fk.capacity = capacity;
        fk.up = up;
        fk.late_topic = 0;
        pthread_mutex_unlock(&fk.lock);
        s.capacity = capacity;
        return &s;
}

static void fake_up(int up) {
        pthread_mutex_lock(&fk.lock);
        fk.up = up;
        pthread_mutex_unlock(&fk.lock);
}

/* ---- helpers ------------------------------------------------------------ */

/* Event times a few days back from this fixed "now", so nothing is in the future. */
#define NOW_MS INT64_C(1764000000000)

/* A test may move the clock on (message expiry). */
static _Atomic int64_t clock_ahead_ms;

static int64_t fixed_now(void *opaque) {
        (void)opaque;
        return NOW_MS + clock_ahead_ms;
}

static const struct tg_clock fixed_clock = {.now_ms = fixed_now};
static volatile int stop_flag;
static char state_dir[64];

static struct tg_config *config(const char *durability) {
        struct tg_config *cfg = tg_config_new();
        char err[256];
        const char *kv[][2] = {
                {"state.dir", state_dir},
                {"durability", durability},
                {"checkpoint.interval", "100ms"},
                {"window.idle_timeout", "0"},
                {"topics.dlq", "dlq"},
        };
        size_t i;

        CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
        for (i = 0; i < sizeof(kv) / sizeof(*kv); i++) {
                int r = tg_config_set(cfg, kv[i][0], kv[i][1], "test", err, sizeof(err));

                if (r)
                        fprintf(stderr, "\n%s\n", err);
                CU_ASSERT_EQUAL_FATAL(r, 0);
        }
        return cfg;
}

/* Options a test sets beyond config()'s, as key, value pairs. */
static void config_set(struct tg_config *cfg, const char *const kv[][2], size_t n) {
        char err[256];
        size_t i;

        for (i = 0; i < n; i++)
                CU_ASSERT_EQUAL_FATAL(tg_config_set(cfg, kv[i][0], kv[i][1], "t", err,
                                                    sizeof(err)), 0);
}

static tg_pipeline_t *start(const struct tg_config *cfg, const struct tg_sink *s) {
        char err[512] = "";
        tg_pipeline_t *p = tg_pipeline_new(cfg, s, &fixed_clock, &stop_flag, err, sizeof(err));

        if (!p)
                fprintf(stderr, "\npipeline: %s\n", err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        return p;
}

/* Message i: sensor s<i % 5>, one reading every 100 ms of event time per
 * sensor; @p dup the MQTT DUP flag. */
static int ingest_dup(tg_pipeline_t *p, int i, int dup) {
        char topic[32], payload[128];
        int tl = snprintf(topic, sizeof(topic), "sensors/s%d/telemetry", i % 5);
        int n = snprintf(payload, sizeof(payload),
                         "{\"sensor\":\"s%d\",\"ts\":%" PRId64 ",\"temperature\":%d.25}", i % 5,
                         NOW_MS - 3600000 + (int64_t)(i / 5) * 100, i % 37);

        return tg_pipeline_ingest(p, topic, (size_t)tl, payload, (size_t)n, 1, dup);
}

static int ingest(tg_pipeline_t *p, int i) {
        return ingest_dup(p, i, 0);
}

static struct tg_pipeline_messages messages(tg_pipeline_t *p) {
        struct tg_pipeline_messages m;

        tg_pipeline_messages(p, &m);
        return m;
}

/* The accounting equation of pipeline.h holds. */
static void check_accounting(tg_pipeline_t *p) {
        struct tg_pipeline_messages m = messages(p);
        uint64_t taken = m.recovered - m.redeliveries - m.lost;
        size_t i;

        for (i = 0; i < m.nsubs; i++)
                taken += m.received[i];
        tg_check(taken == m.forwarded + m.dead_lettered + m.failed + m.skipped + m.in_flight,
                 __LINE__, "accounting: taken %" PRIu64 " != %" PRIu64 " forwarded + %" PRIu64
                 " dead + %" PRIu64 " failed + %" PRIu64 " skipped + %" PRIu64 " in flight",
                 taken, m.forwarded, m.dead_lettered, m.failed, m.skipped, m.in_flight);
}

/* Wait up to 20 s for @p n messages to be forwarded and confirmed. */
static int wait_forwarded(tg_pipeline_t *p, uint64_t n) {
        int64_t end = tg_monotonic_ms() + 20000;

        while (tg_monotonic_ms() < end) {
                struct tg_pipeline_messages m = messages(p);

                if (m.forwarded >= n && m.in_flight == 0)
                        return 1;
                usleep(10000);
        }
        return 0;
}

static size_t count(enum tg_sink_topic topic) {
        size_t i, c = 0;

        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < fk.n; i++)
                c += fk.recs[i].topic == topic;
        pthread_mutex_unlock(&fk.lock);
        return c;
}

static int remove_state(void) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
        return system(cmd);
}

static void fresh_state(void) {
        CU_ASSERT_EQUAL(remove_state(), 0);
}

/* ---- tests -------------------------------------------------------------- */

/* Every message once, confirmed, checkpointed; the spool is released and a
 * restart replays nothing. */
static void test_forwarded_once(void) {
        enum { N = 3000 };
        struct tg_config *cfg = config("disk");
        const struct tg_sink *s = fake_reset(100000, 1);
        struct tg_pipeline_counters c;
        tg_pipeline_t *p;
        size_t i;
        static char seen[N + 1];

        fresh_state();
        p = start(cfg, s);
        for (i = 0; i < N; i++)
                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, N));
        check_accounting(p);
        CU_ASSERT_EQUAL(count(TG_SINK_RAW), N);
        CU_ASSERT(count(TG_SINK_AGG) > 0);
        /* Each raw record carries its message's spool sequence, once. */
        memset(seen, 0, sizeof(seen));
        for (i = 0; i < fk.n; i++)
                if (fk.recs[i].topic == TG_SINK_RAW) {
                        CU_ASSERT(fk.recs[i].tag >= 1 && fk.recs[i].tag <= N);
                        if (fk.recs[i].tag >= 1 && fk.recs[i].tag <= N)
                                seen[fk.recs[i].tag]++;
                }
        for (i = 1; i <= N; i++)
                tg_check(seen[i] == 1, __LINE__, "message %zu forwarded %d times", i, seen[i]);
        /* A checkpoint covers everything soon and releases the spool. */
        {
                int64_t end = tg_monotonic_ms() + 5000;

                do {
                        usleep(20000);
                        tg_pipeline_counters(p, &c);
                } while (c.spool_records && tg_monotonic_ms() < end);
                CU_ASSERT(c.checkpoints >= 1);
                CU_ASSERT_EQUAL(c.spool_records, 0);
        }
        CU_ASSERT_EQUAL(tg_pipeline_destroy(p, tg_monotonic_ms() + 5000), 0);

        /* Restarted: nothing to replay. */
        p = start(cfg, fake_reset(100000, 1));
        CU_ASSERT_EQUAL(messages(p).recovered, 0);
        usleep(200000);
        CU_ASSERT_EQUAL(count(TG_SINK_RAW), 0);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* Issue 15 (docs/downsample.md 1.4): with forward.mode exception and no
 * topics.compressed, topics.raw carries the values the mode selects, in
 * records that name it; every message still counts as forwarded. */
static void test_forward_mode_on_raw(void) {
        enum { N = 2000 };
        struct tg_config *cfg = config("disk");
        const struct tg_sink *s;
        tg_pipeline_t *p;
        size_t i, raw = 0;

        static const char *const kv[][2] = {
                {"forward.mode", "exception"},
                {"forward.deviation", "40"},
                {"forward.max_silence", "1s"},
        };

        config_set(cfg, kv, sizeof(kv) / sizeof(*kv));
        s = fake_reset(100000, 1);
        fresh_state();
        p = start(cfg, s);
        for (i = 0; i < N; i++)
                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, N));
        check_accounting(p);
        for (i = 0; i < fk.n; i++) {
                if (fk.recs[i].topic != TG_SINK_RAW)
                        continue;
                raw++;
                tg_check(strstr(fk.recs[i].value, "\"mode\":\"exception\",\"fields\":{") != NULL,
                         __LINE__, "record %s", fk.recs[i].value);
        }
        /* values 0.25..36.25 never leave a deadband of 40: only the maximum
         * silence sends, every 10th reading of each sensor (100 ms apart) */
        tg_check(raw == N / 10, __LINE__, "%zu raw records for %d readings", raw, N);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* A late reading under forward.mode goes to topics.late as its raw record,
 * whatever the compressor sends for it (an out-of-order point, built in the
 * same buffer). */
static void test_late_record_under_forward_mode(void) {
        enum { N = 1000 };
        struct tg_config *cfg = config("disk");
        const struct tg_sink *s;
        tg_pipeline_t *p;
        char payload[128];
        size_t i, late = 0;
        int n;

        static const char *const kv[][2] = {
                {"forward.mode", "exception"},
                {"forward.deviation", "40"},
                {"topics.late", "late"},
        };

        config_set(cfg, kv, sizeof(kv) / sizeof(*kv));
        s = fake_reset(100000, 1);
        fk.late_topic = 1;
        fresh_state();
        p = start(cfg, s);
        /* 20 s of event time per sensor: the first windows have closed */
        for (i = 0; i < N; i++)
                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
        n = snprintf(payload, sizeof(payload),
                     "{\"sensor\":\"s0\",\"ts\":%" PRId64 ",\"temperature\":7.5}",
                     NOW_MS - 3600000 + 50);
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "sensors/s0/telemetry", 20, payload, (size_t)n, 1,
                                           0), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, N + 1));
        for (i = 0; i < fk.n; i++) {
                if (fk.recs[i].topic != TG_SINK_LATE)
                        continue;
                late++;
                tg_check(strstr(fk.recs[i].value, "\"temperature\":7.5") != NULL &&
                                 !strstr(fk.recs[i].value, "\"mode\""),
                         __LINE__, "late record %s is not the reading's raw record",
                         fk.recs[i].value);
        }
        tg_check(late == 1, __LINE__, "%zu late records, want 1", late);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* Kafka down for longer than the sink holds: taking messages never waits,
 * the accounting answers at once, the sink never holds more than it can,
 * and when Kafka is back everything arrives once, in order. */
static void test_outage_longer_than_the_sink(void) {
        enum { N = 6000, CAPACITY = 200 };
        struct tg_config *cfg = config("disk");
        const struct tg_sink *s = fake_reset(CAPACITY, 0);
        int64_t worst = 0, t0;
        uint64_t last = 0;
        tg_pipeline_t *p;
        size_t i;
        int in_order = 1;

        fresh_state();
        p = start(cfg, s);
        for (i = 0; i < N; i++) {
                int64_t t = tg_monotonic_ms();

                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
                t = tg_monotonic_ms() - t;
                if (t > worst)
                        worst = t;
        }
        tg_check(worst < 100, __LINE__, "an ingest waited %" PRId64 " ms during the outage", worst);
        usleep(300000);
        t0 = tg_monotonic_ms();
        check_accounting(p);
        tg_check(tg_monotonic_ms() - t0 < 100, __LINE__, "the accounting took %" PRId64 " ms",
                 tg_monotonic_ms() - t0);
        CU_ASSERT_EQUAL(messages(p).in_flight, N);
        CU_ASSERT(fk.max_held <= CAPACITY);
        /* The spool, not the sink, holds the outage. */
        CU_ASSERT(count(TG_SINK_RAW) < N);

        fake_up(1);
        CU_ASSERT_FATAL(wait_forwarded(p, N));
        check_accounting(p);
        CU_ASSERT_EQUAL(count(TG_SINK_RAW), N);
        for (i = 0; i < fk.n; i++)
                if (fk.recs[i].topic == TG_SINK_RAW) {
                        in_order &= fk.recs[i].tag == last + 1;
                        last = fk.recs[i].tag;
                }
        CU_ASSERT(in_order);
        CU_ASSERT(fk.max_held <= CAPACITY);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* The closed windows' aggregates of one run, by record id, as text. */
struct aggs {
        size_t n;
        char *id[4096], *text[4096];
};

static void collect_aggs(struct aggs *a, int check_dups) {
        size_t i, j;

        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < fk.n; i++) {
                const char *v = fk.recs[i].value, *q;
                char id[96];

                if (fk.recs[i].topic != TG_SINK_AGG || !fk.recs[i].delivered)
                        continue;
                q = strstr(v, "\"id\":\"");
                CU_ASSERT_PTR_NOT_NULL_FATAL(q);
                snprintf(id, sizeof(id), "%.*s", (int)strcspn(q + 6, "\""), q + 6);
                for (j = 0; j < a->n && strcmp(a->id[j], id); j++)
                        ;
                if (j < a->n) {
                        /* Sent again after a crash: identical. */
                        if (check_dups)
                                tg_check(!strcmp(a->text[j], v), __LINE__, "window %s differs:\n%s\n%s", id,
                                         a->text[j], v);
                        continue;
                }
                CU_ASSERT_FATAL(a->n < 4096);
                a->id[a->n] = strdup(id);
                a->text[a->n++] = strdup(v);
        }
        pthread_mutex_unlock(&fk.lock);
}

/* Mark message i of ingest() for each raw record delivered. */
static void collect_raw(char *seen, size_t n) {
        size_t i;

        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < fk.n; i++) {
                const struct rec *r = &fk.recs[i];
                int64_t ts;
                size_t k;

                if (r->topic != TG_SINK_RAW || !r->delivered)
                        continue;
                ts = strtoll(strstr(r->value, "\"ts\":") + 5, NULL, 10);
                k = (size_t)((ts - (NOW_MS - 3600000)) / 100 * 5 + (r->key[1] - '0'));
                if (k < n)
                        seen[k] = 1;
        }
        pthread_mutex_unlock(&fk.lock);
}

static void free_aggs(struct aggs *a) {
        size_t i;

        for (i = 0; i < a->n; i++) {
                free(a->id[i]);
                free(a->text[i]);
        }
        a->n = 0;
}

/* Stopped with Kafka down after half the messages, then restarted: the
 * last checkpoint is restored and the spool after it replayed, and every
 * window comes out exactly as in a run that was never interrupted. */
static void test_replay_after_checkpoint(void) {
        enum { N = 8000 }; /* 5 sensors, 160 s of event time: 15 closed windows each */
        struct tg_config *cfg = config("disk");
        static struct aggs whole, parts;
        static char seen[N];
        tg_pipeline_t *p;
        size_t i, j;
        int i2;

        /* The uninterrupted run. */
        fresh_state();
        p = start(cfg, fake_reset(100000, 1));
        for (i2 = 0; i2 < N; i2++)
                CU_ASSERT_EQUAL(ingest(p, i2), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, N));
        collect_aggs(&whole, 1);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        CU_ASSERT_FATAL(whole.n >= 75);

        /* Interrupted: a first half confirmed and checkpointed, then Kafka
         * goes down, more messages are taken, and the gateway stops with
         * them unconfirmed. */
        fresh_state();
        p = start(cfg, fake_reset(100000, 1));
        for (i2 = 0; i2 < N / 2; i2++)
                CU_ASSERT_EQUAL(ingest(p, i2), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, N / 2));
        usleep(300000); /* a checkpoint */
        fake_up(0);
        for (; i2 < 3 * N / 4; i2++)
                CU_ASSERT_EQUAL(ingest(p, i2), 0);
        usleep(200000);
        collect_aggs(&parts, 1);
        memset(seen, 0, sizeof(seen));
        collect_raw(seen, N);
        CU_ASSERT(tg_pipeline_destroy(p, tg_monotonic_ms() + 300) > 0);

        /* Restarted with Kafka up: what was unconfirmed is replayed. */
        p = start(cfg, fake_reset(100000, 1));
        CU_ASSERT(messages(p).recovered >= N / 4);
        for (; i2 < N; i2++)
                CU_ASSERT_EQUAL(ingest(p, i2), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, messages(p).recovered + N / 4));
        check_accounting(p);
        collect_aggs(&parts, 1);
        collect_raw(seen, N);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);

        /* Every reading delivered (some twice: replayed), every window. */
        for (i = 0; i < N; i++)
                tg_check(seen[i], __LINE__, "reading %zu never delivered", i);
        CU_ASSERT_EQUAL(parts.n, whole.n);
        for (i = 0; i < whole.n; i++) {
                for (j = 0; j < parts.n && strcmp(parts.id[j], whole.id[i]); j++)
                        ;
                tg_check(j < parts.n, __LINE__, "window %s missing after the restart", whole.id[i]);
                if (j < parts.n)
                        tg_check(!strcmp(parts.text[j], whole.text[i]), __LINE__,
                                 "window %s differs after the restart:\n%s\n%s", whole.id[i],
                                 parts.text[j], whole.text[i]);
        }
        free_aggs(&whole);
        free_aggs(&parts);
        tg_config_destroy(cfg);
}

/* durability memory: handled on the caller's thread while the sink keeps
 * up, spooled while it does not, and nothing lost or reordered between. */
static void test_memory_mode(void) {
        enum { N = 3000, CAPACITY = 400 };
        struct tg_config *cfg = config("memory");
        tg_pipeline_t *p;
        size_t i;
        uint64_t last[5] = {0};
        int in_order = 1;

        fresh_state();
        p = start(cfg, fake_reset(CAPACITY, 1));
        for (i = 0; i < N / 3; i++)
                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, N / 3));
        fake_up(0);
        for (; i < N; i++)
                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
        CU_ASSERT(fk.max_held <= CAPACITY);
        fake_up(1);
        CU_ASSERT_FATAL(wait_forwarded(p, N));
        check_accounting(p);
        CU_ASSERT_EQUAL(count(TG_SINK_RAW), N);
        /* Per sensor, raw records in event-time order. */
        for (i = 0; i < fk.n; i++) {
                const struct rec *r = &fk.recs[i];
                uint64_t ts;
                int sensor;

                if (r->topic != TG_SINK_RAW)
                        continue;
                sensor = r->key[1] - '0';
                ts = strtoull(strstr(r->value, "\"ts\":") + 5, NULL, 10);
                in_order &= ts > last[sensor];
                last[sensor] = ts;
        }
        CU_ASSERT(in_order);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* After a crash the broker resends, flagged DUP, what it saw no PUBACK for:
 * thousands of messages already spooled are recognised and not taken twice,
 * while a DUP message never seen is taken. */
static void test_redeliveries(void) {
        enum { N = 20000 };
        struct tg_config *cfg = config("disk");
        tg_pipeline_t *p;
        int i;

        fresh_state();
        p = start(cfg, fake_reset(100000, 1));
        for (i = 0; i < N; i++)
                CU_ASSERT_EQUAL(ingest(p, i), 0);
        for (i = 0; i < N; i++)
                CU_ASSERT_EQUAL(ingest_dup(p, i, 1), 0);
        CU_ASSERT_EQUAL(ingest_dup(p, N, 1), 0); /* DUP, but new */
        CU_ASSERT_FATAL(wait_forwarded(p, N + 1));
        check_accounting(p);
        CU_ASSERT_EQUAL(messages(p).redeliveries, N);
        CU_ASSERT_EQUAL(count(TG_SINK_RAW), N + 1);
        /* Past what is remembered (the last 65 536): the newest 60 000
         * still are, after 5 000 were forgotten to make room. */
        for (i = N + 1; i < 4 * N; i++)
                CU_ASSERT_EQUAL(ingest(p, i), 0);
        for (i = N; i < 4 * N; i++)
                CU_ASSERT_EQUAL(ingest_dup(p, i, 1), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, 4 * N));
        CU_ASSERT_EQUAL(messages(p).redeliveries, 4 * N);
        CU_ASSERT_EQUAL(count(TG_SINK_RAW), 4 * N);
        check_accounting(p);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* input.sensor_prefix (issue 17): the id is prefixed before the windows,
 * so keys, raw values and aggregates all carry it; an id too long with the
 * prefix is dead-lettered as bad_id, and a SenML pack is prefixed too. */
static void test_sensor_prefix(void) {
        static const char prefix[] = "site-a/";
        static const char senml[] = "[{\"bn\":\"pack:\",\"bt\":1763990000,\"n\":\"t\",\"v\":1}]";
        struct tg_config *cfg = config("disk");
        char err[256], payload[160], id[65];
        tg_pipeline_t *p;
        size_t i, raw = 0, agg = 0, dead = 0, pack = 0;
        int n;

        CU_ASSERT_EQUAL_FATAL(tg_config_set(cfg, "input.sensor_prefix", prefix, "test", err,
                                            sizeof(err)), 0);
        fresh_state();
        p = start(cfg, fake_reset(100000, 1));
        for (i = 0; i < 1500; i++)
                CU_ASSERT_EQUAL(ingest(p, (int)i), 0);
        /* 57 bytes: 64 with the prefix, the most an id may be */
        memset(id, 'x', 57), id[57] = '\0';
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"%s\",\"ts\":%" PRId64 ",\"t\":1}",
                     id, NOW_MS - 1000);
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "x", 1, payload, (size_t)n, 1, 0), 0);
        id[57] = 'y', id[58] = '\0'; /* 65 with it: refused */
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"%s\",\"ts\":%" PRId64 ",\"t\":1}",
                     id, NOW_MS - 1000);
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "x", 1, payload, (size_t)n, 1, 0), 0);
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "x", 1, senml, strlen(senml), 1, 0), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, 1502));
        check_accounting(p);
        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < fk.n; i++) {
                const struct rec *r = &fk.recs[i];

                if (r->topic == TG_SINK_DLQ) {
                        dead++;
                        continue;
                }
                tg_check(!strncmp(r->key, prefix, strlen(prefix)), __LINE__,
                         "key %s lacks the prefix", r->key);
                tg_check(strstr(r->value, "\"sensor\":\"site-a/") != NULL, __LINE__,
                         "record %s lacks the prefixed id", r->value);
                raw += r->topic == TG_SINK_RAW;
                agg += r->topic == TG_SINK_AGG;
                pack += !strcmp(r->key, "site-a/pack");
        }
        pthread_mutex_unlock(&fk.lock);
        CU_ASSERT_EQUAL(raw, 1502);
        CU_ASSERT(agg > 0);
        CU_ASSERT_EQUAL(dead, 1);
        CU_ASSERT_EQUAL(pack, 1);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);

        /* A prefix that leaves no room for an id is a config error. */
        memset(id, 'p', 64), id[64] = '\0';
        CU_ASSERT_EQUAL(tg_config_set(cfg, "input.sensor_prefix", id, "test", err, sizeof(err)), 0);
        CU_ASSERT_NOT_EQUAL(tg_config_validate(cfg, err, sizeof(err)), 0);
        id[63] = '\0';
        CU_ASSERT_EQUAL(tg_config_set(cfg, "input.sensor_prefix", id, "test", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_validate(cfg, err, sizeof(err)), 0);
        tg_config_destroy(cfg);
}

/* The record of fk's that is @p topic with @p key and value containing
 * @p text, or NULL. */
static const struct rec *find_rec(enum tg_sink_topic topic, const char *text) {
        size_t i;

        for (i = 0; i < fk.n; i++)
                if (fk.recs[i].topic == topic && strstr(fk.recs[i].value, text))
                        return &fk.recs[i];
        return NULL;
}

/* One MQTT 5 message's properties block, as mqtt_source builds it. */
static size_t props_block(unsigned char *buf, uint32_t expiry_s, const char *captured) {
        struct tg_msgprops_builder b;

        tg_msgprops_begin(&b, buf);
        if (expiry_s)
                CU_ASSERT_EQUAL(tg_msgprops_add_expiry(&b, expiry_s), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "a", 1, "1", 1), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_CONTENT_TYPE, "application/json", 16,
                                        NULL, 0), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "b", 1, "2", 1), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_RESPONSE_TOPIC, "reply/to", 8, NULL, 0),
                        0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_CORRELATION_DATA, "c\0d", 3, NULL, 0), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "a", 1, "3", 1), 0);
        if (captured)
                CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "captured", 8, captured,
                                                strlen(captured)), 0);
        return b.len;
}

/*
 * Issue 14: an MQTT 5 message's properties reach its raw and dead-letter
 * records as headers, in their order, repeats kept; timestamp.property
 * times a payload without a time (payload > property > arrival); a message
 * whose expiry passes in the spool is not forwarded, counted, and the
 * accounting holds. Both durabilities: the spool and the direct path.
 */
static void check_properties(const char *durability) {
        static const char want[] = "mqtt.user.a=1\nmqtt.content_type=application/json\n"
                                   "mqtt.user.b=2\nmqtt.response_topic=reply/to\n"
                                   "mqtt.correlation_data=c\\0d\nmqtt.user.a=3\n";
        struct tg_config *cfg = config(durability);
        unsigned char props[TG_MSGPROPS_MAX];
        char captured[32], payload[160], headers[512];
        struct tg_pipeline_counters c;
        const struct rec *r;
        tg_pipeline_t *p;
        size_t plen;
        int n, i;
        const char *const kv[][2] = {{"input.timestamp.property", "captured"},
                                     {"input.timestamp.missing", "reject"}};

        config_set(cfg, kv, 2);
        fresh_state();
        clock_ahead_ms = 0;
        p = start(cfg, fake_reset(1000, 1));
        snprintf(captured, sizeof(captured), "%" PRId64, NOW_MS - 7000);
        /* no time in the payload: the property's */
        plen = props_block(props, 0, captured);
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"p1\",\"t\":1}");
        CU_ASSERT_EQUAL(tg_pipeline_ingest_props(p, "m/p1", 4, props, plen, payload, (size_t)n,
                                                 1, 0), 0);
        /* a time in the payload wins over the property */
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"p2\",\"ts\":%" PRId64 ",\"t\":2}",
                     NOW_MS - 5000);
        CU_ASSERT_EQUAL(tg_pipeline_ingest_props(p, "m/p2", 4, props, plen, payload, (size_t)n,
                                                 1, 0), 0);
        /* no time anywhere: refused (timestamp.missing reject), headers on the dead letter */
        plen = props_block(props, 0, NULL);
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"p3\",\"t\":3}");
        CU_ASSERT_EQUAL(tg_pipeline_ingest_props(p, "m/p3", 4, props, plen, payload, (size_t)n,
                                                 1, 0), 0);
        /* a property that is no time, the payload without one: invalid_timestamp */
        plen = props_block(props, 0, "yesterday");
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"p4\",\"t\":4}");
        CU_ASSERT_EQUAL(tg_pipeline_ingest_props(p, "m/p4", 4, props, plen, payload, (size_t)n,
                                                 1, 0), 0);
        /* no properties: no headers, as under MQTT 3.1.1 */
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"p5\",\"ts\":%" PRId64 ",\"t\":5}",
                     NOW_MS - 5000);
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "m/p5", 4, payload, (size_t)n, 1, 0), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, 3));
        pthread_mutex_lock(&fk.lock);
        r = find_rec(TG_SINK_RAW, "\"p1\"");
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_EQUAL(r->ts, NOW_MS - 7000);
        snprintf(headers, sizeof(headers), "%smqtt.user.captured=%s\n", want, captured);
        tg_check(r->headers && !strcmp(r->headers, headers), __LINE__, "p1 headers:\n%s",
                 r->headers ? r->headers : "(none)");
        r = find_rec(TG_SINK_RAW, "\"p2\"");
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_EQUAL(r->ts, NOW_MS - 5000);
        r = find_rec(TG_SINK_DLQ, "\"p3\"");
        CU_ASSERT_FATAL(r != NULL);
        tg_check(r->headers && strstr(r->headers, "tg.reason=missing_timestamp\n") ==
                                       r->headers &&
                         strstr(r->headers, want) && !strcmp(strstr(r->headers, want), want),
                 __LINE__, "p3 headers:\n%s", r->headers ? r->headers : "(none)");
        r = find_rec(TG_SINK_DLQ, "\"p4\"");
        CU_ASSERT(r && r->headers && strstr(r->headers, "tg.reason=invalid_timestamp\n"));
        r = find_rec(TG_SINK_RAW, "\"p5\"");
        CU_ASSERT(r && r->headers == NULL);
        pthread_mutex_unlock(&fk.lock);
        /* The worker publishes its counters at its ticks (100 ms; later
         * under qemu): wait for the one after the records. */
        for (i = 0; i < 100; i++) {
                tg_pipeline_counters(p, &c);
                if (c.ts_from_property)
                        break;
                usleep(50 * 1000);
        }
        CU_ASSERT_EQUAL(c.ts_from_property, 1);
        CU_ASSERT_EQUAL(c.ts_from_arrival, 0);

        /* Expiry: Kafka holds one record and confirms nothing, so what comes
         * next waits in the spool; 10 s later the 5 s message is past its
         * expiry, the 60 s one not. (The direct path handles a message at
         * its arrival, before any expiry; what memory mode spools takes the
         * forwarder's path, tested here with disk.) */
        if (!strcmp(durability, "memory")) {
                check_accounting(p);
                tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
                tg_config_destroy(cfg);
                return;
        }
        fake_up(0);
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"e0\",\"ts\":%" PRId64 ",\"t\":0}",
                     NOW_MS - 4000);
        pthread_mutex_lock(&fk.lock);
        fk.capacity = (int)fk.held + 1;
        pthread_mutex_unlock(&fk.lock);
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "m/e0", 4, payload, (size_t)n, 1, 0), 0);
        usleep(300 * 1000);
        plen = props_block(props, 5, NULL);
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"e1\",\"ts\":%" PRId64 ",\"t\":1}",
                     NOW_MS - 3000);
        CU_ASSERT_EQUAL(tg_pipeline_ingest_props(p, "m/e1", 4, props, plen, payload, (size_t)n,
                                                 1, 0), 0);
        plen = props_block(props, 60, NULL);
        n = snprintf(payload, sizeof(payload), "{\"sensor\":\"e2\",\"ts\":%" PRId64 ",\"t\":2}",
                     NOW_MS - 3000);
        CU_ASSERT_EQUAL(tg_pipeline_ingest_props(p, "m/e2", 4, props, plen, payload, (size_t)n,
                                                 1, 0), 0);
        clock_ahead_ms = 10000;
        pthread_mutex_lock(&fk.lock);
        fk.capacity = 1000;
        pthread_mutex_unlock(&fk.lock);
        fake_up(1);
        CU_ASSERT_FATAL(wait_forwarded(p, 5));
        usleep(300 * 1000);
        pthread_mutex_lock(&fk.lock);
        CU_ASSERT(find_rec(TG_SINK_RAW, "\"e1\"") == NULL);
        CU_ASSERT(find_rec(TG_SINK_RAW, "\"e2\"") != NULL);
        pthread_mutex_unlock(&fk.lock);
        for (i = 0; i < 100; i++) { /* published at the worker's next tick */
                tg_pipeline_counters(p, &c);
                if (c.expired)
                        break;
                usleep(50 * 1000);
        }
        tg_check(c.expired == 1, __LINE__, "%s: expired %" PRIu64, durability, c.expired);
        check_accounting(p);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        clock_ahead_ms = 0;
        tg_config_destroy(cfg);
}

static void test_properties_disk(void) {
        check_properties("disk");
}

static void test_properties_memory(void) {
        check_properties("memory");
}

/* ---- the rebirth publisher is cleared without waiting for Kafka -------------- */

static int null_publish(void *opaque, const char *topic, const void *payload, size_t len) {
        (void)opaque, (void)topic, (void)payload, (void)len;
        return 0;
}

struct clear_call {
        tg_pipeline_t *p;
        _Atomic int done;
};

static void *clear_publish(void *arg) {
        struct clear_call *c = arg;

        tg_pipeline_set_publish(c->p, NULL, NULL);
        atomic_store(&c->done, 1);
        return NULL;
}

/* Kafka down and a burst of records bigger than the sink: the forwarder
 * waits for room holding the worker. Shutting down clears the publisher
 * first (main.c); that must not wait for Kafka. */
static void test_clear_publish_while_kafka_waits(void) {
        struct tg_config *cfg = config("disk");
        struct clear_call call = {0};
        char pack[1024];
        size_t n, i;
        pthread_t t;
        tg_pipeline_t *p;

        fresh_state();
        clock_ahead_ms = 0;
        p = start(cfg, fake_reset(10, 0));
        call.p = p;
        tg_pipeline_set_publish(p, null_publish, NULL);
        /* five sensors' first windows, five records in flight */
        for (int k = 0; k < 2; k++) {
                n = (size_t)snprintf(pack, sizeof(pack), "[");
                for (i = 0; i < 5; i++)
                        n += (size_t)snprintf(pack + n, sizeof(pack) - n,
                                              "%s{\"bn\":\"c%zu\",\"bt\":%.3f,\"n\":\"t\",\"v\":%zu}",
                                              i ? "," : "",
                                              i, (double)(NOW_MS - (k ? 30000 : 60000)) / 1000, i);
                n += (size_t)snprintf(pack + n, sizeof(pack) - n, "]");
                CU_ASSERT_EQUAL(tg_pipeline_ingest(p, "m/c", 3, pack, n, 1, 0), 0);
                usleep(200 * 1000);
        }
        /* the second pack closes five windows: ten records for five places */
        pthread_mutex_lock(&fk.lock);
        CU_ASSERT(fk.held == 10);
        pthread_mutex_unlock(&fk.lock);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, clear_publish, &call), 0);
        for (i = 0; i < 100 && !atomic_load(&call.done); i++)
                usleep(10 * 1000);
        tg_check(atomic_load(&call.done), __LINE__,
                 "clearing the publisher waited for the forwarder, which waits for Kafka");
        fake_up(1);
        pthread_join(t, NULL);
        CU_ASSERT(wait_forwarded(p, 2));
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* ---- Sparkplug B through the whole path ----------------------------------- */

typedef Tumblegate__Sparkplug__Payload SpPayload;
typedef Tumblegate__Sparkplug__Payload__Metric SpMetric;

static struct {
        pthread_mutex_t lock;
        int n;
        char topic[128];
        size_t len;
} published = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int capture_publish(void *opaque, const char *topic, const void *payload, size_t len) {
        (void)opaque, (void)payload;
        pthread_mutex_lock(&published.lock);
        published.n++;
        snprintf(published.topic, sizeof(published.topic), "%s", topic);
        published.len = len;
        pthread_mutex_unlock(&published.lock);
        return 0;
}

/* A Sparkplug payload of @p n metrics (name or NULL, alias or -1, datatype
 * or -1, a double value) packed by protobuf-c; seq < 0: none. */
static size_t sp_pack(uint8_t *buf, int64_t ts, int seq, size_t n, const char *const *names,
                      const int *aliases, const int *dts, const double *values) {
        SpPayload p = TUMBLEGATE__SPARKPLUG__PAYLOAD__INIT;
        SpMetric m[8], *mp[8];
        size_t i;

        for (i = 0; i < n; i++) {
                tumblegate__sparkplug__payload__metric__init(&m[i]);
                mp[i] = &m[i];
                m[i].name = (char *)names[i];
                m[i].has_alias = aliases[i] >= 0;
                m[i].alias = (uint64_t)(aliases[i] >= 0 ? aliases[i] : 0);
                m[i].has_datatype = dts[i] >= 0;
                m[i].datatype = (uint32_t)(dts[i] >= 0 ? dts[i] : 0);
                if (dts[i] == 4) { /* Int64: bdSeq */
                        m[i].value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_LONG_VALUE;
                        m[i].long_value = (uint64_t)values[i];
                } else {
                        m[i].value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
                        m[i].double_value = values[i];
                }
        }
        p.has_timestamp = 1;
        p.timestamp = (uint64_t)ts;
        p.has_seq = seq >= 0;
        p.seq = (uint64_t)(seq >= 0 ? seq : 0);
        p.n_metrics = n;
        p.metrics = mp;
        return tumblegate__sparkplug__payload__pack(&p, buf);
}

static void sp_ingest(tg_pipeline_t *p, const char *topic, const uint8_t *buf, size_t n) {
        CU_ASSERT_EQUAL(tg_pipeline_ingest(p, topic, strlen(topic), buf, n, 1, 0), 0);
}

/* Wait up to 20 s for every message taken to be confirmed. */
static int wait_settled(tg_pipeline_t *p, uint64_t taken) {
        int64_t end = tg_monotonic_ms() + 20000;

        while (tg_monotonic_ms() < end) {
                struct tg_pipeline_messages m = messages(p);

                if (m.in_flight == 0 && m.forwarded + m.dead_lettered >= taken)
                        return 1;
                usleep(10000);
        }
        return 0;
}

/* The first record on @p topic whose key is @p key and whose value holds
 * @p needle (NULL: any), or -1. */
static long sp_find_rec(enum tg_sink_topic topic, const char *key, const char *needle) {
        long i, found = -1;

        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < (long)fk.n && found < 0; i++)
                if (fk.recs[i].topic == topic && (!key || !strcmp(fk.recs[i].key, key)) &&
                    (!needle || strstr(fk.recs[i].value, needle)))
                        found = i;
        pthread_mutex_unlock(&fk.lock);
        return found;
}

static size_t count_reason(const char *reason) {
        size_t i, c = 0;

        pthread_mutex_lock(&fk.lock);
        for (i = 0; i < fk.n; i++)
                c += fk.recs[i].topic == TG_SINK_DLQ && !strcmp(fk.recs[i].reason, reason);
        pthread_mutex_unlock(&fk.lock);
        return c;
}

/* Births, aliases, anomalies, rebirth requests, a crash that replays from
 * the checkpoint (the aliases and seq must come back with the windows), and
 * deaths that close windows. */
static void test_sparkplug(void) {
        static const char *const birth_names[] = {"bdSeq", "Temp"};
        static const int birth_aliases[] = {-1, 1}, birth_dts[] = {4, 10};
        static const char *const dev_names[] = {"Speed"};
        static const int dev_aliases[] = {10}, dev_dts[] = {10};
        static const char *const none[] = {NULL};
        static const int by_alias[] = {10}, no_dt[] = {-1};
        struct tg_config *cfg = config("disk");
        const char *const kv[][2] = {{"mqtt.format", "sparkplug"}, {"window.grace", "0"}};
        struct tg_pipeline_counters c;
        const int64_t t = NOW_MS - 3600000;
        uint8_t buf[512];
        double v;
        size_t n;
        long i;
        tg_pipeline_t *p;

        config_set(cfg, kv, 2);
        fresh_state();
        p = start(cfg, fake_reset(100000, 1));
        tg_pipeline_set_publish(p, capture_publish, NULL);

        /* Data before any birth: dead-lettered, a rebirth asked of the node. */
        v = 1.0;
        n = sp_pack(buf, t, 5, 1, none, by_alias, no_dt, &v);
        sp_ingest(p, "spBv1.0/G/DDATA/N/D", buf, n);
        /* The birth, the device's birth, data by alias. */
        {
                const double bv[] = {3, 20.5};

                n = sp_pack(buf, t, 0, 2, birth_names, birth_aliases, birth_dts, bv);
                sp_ingest(p, "spBv1.0/G/NBIRTH/N", buf, n);
        }
        v = 1.5;
        n = sp_pack(buf, t, 1, 1, dev_names, dev_aliases, dev_dts, &v);
        sp_ingest(p, "spBv1.0/G/DBIRTH/N/D", buf, n);
        v = 2.5;
        n = sp_pack(buf, t + 1000, 2, 1, none, by_alias, no_dt, &v);
        sp_ingest(p, "spBv1.0/G/DDATA/N/D", buf, n);
        CU_ASSERT_FATAL(wait_settled(p, 4));
        CU_ASSERT_EQUAL(count_reason("sparkplug_no_birth"), 1);
        pthread_mutex_lock(&published.lock);
        CU_ASSERT_EQUAL(published.n, 1);
        CU_ASSERT_STRING_EQUAL(published.topic, "spBv1.0/G/NCMD/N");
        pthread_mutex_unlock(&published.lock);
        CU_ASSERT(sp_find_rec(TG_SINK_RAW, "G/N", "\"fields\":{\"Temp\":20.5}") >= 0);
        i = sp_find_rec(TG_SINK_RAW, "G/N/D", "\"Speed\":2.5");
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(fk.recs[i].value,
                                      "\"sparkplug\":{\"group\":\"G\",\"node\":\"N\",\"device\":"
                                      "\"D\",\"message\":\"DDATA\",\"seq\":2,\"metrics\":[{\"name\":"
                                      "\"Speed\",\"alias\":10,\"datatype\":\"Double\",\"value\":2.5}]"));
        CU_ASSERT_EQUAL(count(TG_SINK_AGG), 0);
        check_accounting(p);

        /* A checkpoint, then Kafka goes away, one more DDATA (seq 3) is
         * taken, and the gateway stops with it unconfirmed: a crash as far
         * as that message is concerned. */
        usleep(300000);
        fake_up(0);
        v = 3.5;
        n = sp_pack(buf, t + 2000, 3, 1, none, by_alias, no_dt, &v);
        sp_ingest(p, "spBv1.0/G/DDATA/N/D", buf, n);
        usleep(200000);
        CU_ASSERT(tg_pipeline_destroy(p, tg_monotonic_ms() + 300) > 0);

        /* Restarted: the replay of seq 3 meets the births the checkpoint
         * held: no gap, no unknown alias, no missing birth. */
        p = start(cfg, fake_reset(100000, 1));
        tg_pipeline_set_publish(p, capture_publish, NULL);
        CU_ASSERT(messages(p).recovered >= 1);
        CU_ASSERT_FATAL(wait_settled(p, messages(p).recovered));
        CU_ASSERT(sp_find_rec(TG_SINK_RAW, "G/N/D", "\"Speed\":3.5") >= 0);
        CU_ASSERT_EQUAL(sp_find_rec(TG_SINK_DLQ, NULL, NULL), -1);

        /* DDEATH: the device's window closes now, and is recorded. */
        n = sp_pack(buf, t + 3000, 4, 0, NULL, NULL, NULL, NULL);
        sp_ingest(p, "spBv1.0/G/DDEATH/N/D", buf, n);
        /* A stale will: another session's bdSeq closes nothing. */
        {
                static const char *const bd[] = {"bdSeq"};
                static const int bda[] = {-1}, bdt[] = {4};
                double bv = 2;

                n = sp_pack(buf, t + 4000, -1, 1, bd, bda, bdt, &bv);
                sp_ingest(p, "spBv1.0/G/NDEATH/N", buf, n);
                bv = 3;
                n = sp_pack(buf, t + 5000, -1, 1, bd, bda, bdt, &bv);
                sp_ingest(p, "spBv1.0/G/NDEATH/N", buf, n);
        }
        CU_ASSERT_FATAL(wait_settled(p, messages(p).recovered + 3));
        i = sp_find_rec(TG_SINK_AGG, "G/N/D", NULL);
        CU_ASSERT(i >= 0); /* closed by the death, not by time */
        if (i >= 0)
                CU_ASSERT_PTR_NOT_NULL(strstr(fk.recs[i].value, "\"count\":3"));
        CU_ASSERT(sp_find_rec(TG_SINK_RAW, "G/N/D", "\"message\":\"DDEATH\"") >= 0);
        CU_ASSERT_EQUAL(count_reason("sparkplug_bdseq_mismatch"), 1);
        CU_ASSERT(sp_find_rec(TG_SINK_RAW, "G/N", "\"message\":\"NDEATH\",\"bdSeq\":3") >= 0);
        CU_ASSERT(sp_find_rec(TG_SINK_AGG, "G/N", NULL) >= 0); /* the node's window too */
        check_accounting(p);
        tg_pipeline_counters(p, &c);
        CU_ASSERT(c.sparkplug);
        CU_ASSERT_EQUAL(c.sp_deaths, 2);
        CU_ASSERT_EQUAL(c.sp.anomalies[TG_SP_BDSEQ_MISMATCH], 1);
        CU_ASSERT_EQUAL(c.sp.messages[TG_SP_DDATA], 1); /* the replayed one: counters start at 0 */
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

/* Whether the window state file holds @p magic somewhere. */
static int state_file_holds(const char *magic) {
        char path[128], buf[1 << 16];
        size_t n, i, k = strlen(magic);
        FILE *f;

        snprintf(path, sizeof(path), "%s/windows.state", state_dir);
        if (!(f = fopen(path, "rb")))
                return 0;
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        for (i = 0; i + k <= n; i++)
                if (!memcmp(buf + i, magic, k))
                        return 1;
        return 0;
}

/* A state file an older gateway wrote (the compressors' bytes alone as the
 * attachment) is read by one with a Sparkplug subscription, and the other
 * way round the container carries both. */
static void test_sparkplug_old_state_file(void) {
        struct tg_config *cfg = config("disk");
        const char *const plain[][2] = {{"forward.mode", "exception"},
                                        {"forward.deviation", "1"}};
        const char *const with_sp[][2] = {{"forward.mode", "exception"},
                                          {"forward.deviation", "1"},
                                          {"subscriptions.0.topic", "sensors/+/telemetry"},
                                          {"subscriptions.1.format", "sparkplug"}};
        struct tg_pipeline_counters c;
        tg_pipeline_t *p;
        int i;

        fresh_state();
        config_set(cfg, plain, 2);
        p = start(cfg, fake_reset(100000, 1));
        for (i = 0; i < 50; i++)
                CU_ASSERT_EQUAL(ingest(p, i), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, 50));
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
        CU_ASSERT(state_file_holds("TGDSTATE"));
        CU_ASSERT_FALSE(state_file_holds("TGATTACH"));

        cfg = config("disk");
        config_set(cfg, with_sp, 4);
        p = start(cfg, fake_reset(100000, 1));
        tg_pipeline_counters(p, &c);
        CU_ASSERT_EQUAL(c.state_rejected, 0);
        CU_ASSERT(c.sparkplug);
        for (i = 50; i < 100; i++)
                CU_ASSERT_EQUAL(ingest(p, i), 0);
        CU_ASSERT_FATAL(wait_forwarded(p, 50));
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        /* Now a container of both; read again. */
        CU_ASSERT(state_file_holds("TGATTACH"));
        CU_ASSERT(state_file_holds("TGDSTATE"));
        CU_ASSERT(state_file_holds("TGSPSTAT"));
        p = start(cfg, fake_reset(100000, 1));
        tg_pipeline_counters(p, &c);
        CU_ASSERT_EQUAL(c.state_rejected, 0);
        tg_pipeline_destroy(p, tg_monotonic_ms() + 5000);
        tg_config_destroy(cfg);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"issue 15: forward.mode exception on topics.raw", test_forward_mode_on_raw},
                {"issue 15: a late reading's record under forward.mode",
                 test_late_record_under_forward_mode},
                {"every message forwarded once, checkpointed, released", test_forwarded_once},
                {"an outage longer than the sink holds: the spool absorbs it",
                 test_outage_longer_than_the_sink},
                {"a restart replays after the checkpoint: windows identical",
                 test_replay_after_checkpoint},
                {"durability memory: direct, spooled while the sink is full, in order",
                 test_memory_mode},
                {"60 000 redeliveries after a crash recognised, a new DUP taken",
                 test_redeliveries},
                {"input.sensor_prefix on every record; too long refused", test_sensor_prefix},
                {"issue 14: MQTT 5 properties through the spool: headers, time, expiry",
                 test_properties_disk},
                {"issue 14: MQTT 5 properties on the direct path (durability memory)",
                 test_properties_memory},
                {"sparkplug: births, anomalies, rebirths, replay from the checkpoint, deaths",
                 test_sparkplug},
                {"the rebirth publisher cleared while the forwarder waits for Kafka",
                 test_clear_publish_while_kafka_waits},
                {"sparkplug: state files with and without its state read both ways",
                 test_sparkplug_old_state_file},
        };
        int rc;

        snprintf(state_dir, sizeof(state_dir), "/tmp/tg-test-pipeline-%d", (int)getpid());
        tg_log_set_level(TG_LOG_ERROR);
        rc = TG_TEST_RUN("pipeline", tests);
        remove_state();
        fake_reset(0, 0);
        return rc;
}
