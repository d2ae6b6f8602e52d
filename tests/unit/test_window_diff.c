/* test_window_diff.c - randomized differential test of the window engine against a plain reading of docs/windows.md. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "window.h"
#include "tg_test.h"

/*
 * The reference below is written from docs/windows.md alone, as plainly as
 * the text reads: a sensor is the entry of an array indexed by the number in
 * its id ("s17" is sensors[17]), its open windows a small array kept in start
 * order, every search linear. It shares nothing with window.c but the public
 * types. The engine and the reference are fed the same readings and ticks;
 * after every operation their verdicts, emitted results (per sensor, in
 * order; across sensors in any order) and counters must be identical,
 * doubles bit for bit; every 64 ticks, and at the end, so must every
 * sensor's late count.
 *
 * The stream, from a seeded generator: mostly in order with jitter, out of
 * order within grace, late beyond grace (~5 %), exact duplicates, sensors
 * falling silent past the idle timeout and coming back with or without a
 * backlog, device clocks behind and ahead, timestamps in the future and out
 * of range, everyone quiet at once now and then; the fake wall clock moves
 * at every reading but the engine may look at it only when ticked.
 *
 * Where the text leaves a choice open, the reference takes the reading noted
 * at that spot (search for "Reading:").
 *
 * TG_DIFF_READINGS=n runs every configuration with at most n readings (the
 * sanitizer build uses it to stay quick). At their full length (1,000,000
 * for the main configurations) the runs also check that the stream
 * exercised what the configuration is about.
 */

#define DEFAULT_READINGS 1000000u
#define REF_MAX_FIELDS 8          /* configurations below keep max_fields <= this */
#define TRACE_LEN 16              /* readings remembered per sensor for reports */
#define MAX_MISMATCH_OPS 5        /* stop a configuration after this many bad operations */
#define MAX_MISMATCH_LINES 12

/* Names that share a prefix, and one of TG_FIELD_NAME_MAX bytes. */
static const char *const field_names[] = {"temp", "hum", "pres", "co2", "volt", "rssi", "t",
                                          "temperature_of_the_inlet_air_32c"};
#define NNAMES ((int)(sizeof(field_names) / sizeof(*field_names)))

/* Values whose sums, deviations or squares overflow a double (6.2). */
static const double huge_values[] = {DBL_MAX, -DBL_MAX, 1e300, -1e300, 1e200, -1.5e154};

/* ---------------------------------------------------------------- helpers */

/* splitmix64: small, fast, and the same stream on every machine. */
struct rng {
        uint64_t s;
};

static uint64_t rng_next(struct rng *g) {
        return tg_splitmix64(&g->s);
}

static uint64_t rng_below(struct rng *g, uint64_t n) {
        return rng_next(g) % n;
}

static int name_index(const char *name, size_t len) {
        int i;

        for (i = 0; i < NNAMES; i++)
                if (strlen(field_names[i]) == len && !memcmp(field_names[i], name, len))
                        return i;
        return -1;
}

/* "s17" (or "s00017") -> 17; UINT32_MAX for anything the generator would
 * not have made. */
static uint32_t sensor_number(const char *id, size_t len) {
        uint64_t n = 0;
        size_t i;

        if (len < 2 || len > TG_SENSOR_ID_MAX || id[0] != 's')
                return UINT32_MAX;
        for (i = 1; i < len; i++) {
                if (id[i] < '0' || id[i] > '9' || n >= UINT32_MAX)
                        return UINT32_MAX;
                n = n * 10 + (uint64_t)(id[i] - '0');
        }
        return n < UINT32_MAX ? (uint32_t)n : UINT32_MAX;
}

static const char *verdict_name(int v) {
        static const char *const n[] = {"accepted", "late", "future", "out_of_range",
                                        "table_full"};

        return v >= 0 && v < 5 ? n[v] : "?";
}

/* --------------------------------------------------------------- results */

/* One field's statistics; the reference keeps its windows in the same form. */
struct field_result {
        int name;                 /* index into field_names[]; -1: unknown name */
        uint32_t count;
        double min, max, sum, mean, m2, first, last;
        int64_t first_ts, last_ts;
};

struct result {
        uint32_t sensor;          /* the number in the id */
        uint32_t order;           /* emission order within one operation */
        int64_t start, end;
        uint32_t count;
        int final;
        uint64_t late;
        uint32_t nfields;
        struct field_result fields[REF_MAX_FIELDS];
};

struct results {
        struct result *v;
        size_t n, cap;
};

static struct result *results_push(struct results *b) {
        struct result *x;

        if (b->n == b->cap) {
                size_t cap = b->cap ? 2 * b->cap : 256;
                struct result *v = realloc(b->v, cap * sizeof(*v));

                if (!v) {
                        fprintf(stderr, "test_window_diff: out of memory\n");
                        abort();
                }
                b->v = v;
                b->cap = cap;
        }
        x = &b->v[b->n];
        memset(x, 0, sizeof(*x));
        x->order = (uint32_t)b->n++;
        return x;
}

/* ------------------------------------------------------------- reference */

struct ref_window {
        int64_t start;
        uint32_t count;
        uint32_t nfields;
        struct field_result fields[REF_MAX_FIELDS]; /* in order of first appearance */
        int had_update;           /* update mode: a running result was emitted */
        int64_t last_update;      /* the engine's now at that running result */
        uint32_t count_at_update;
};

struct ref_sensor {
        int in_table;
        int64_t watermark;        /* INT64_MIN: no reading yet */
        int64_t close_mark;       /* INT64_MIN: minus infinity */
        int64_t last_arrival;     /* the engine's now at its last reading */
        uint64_t arrival_since;   /* arrival order when last_arrival took its value */
        uint64_t late_total;      /* late readings since it entered the table */
        uint64_t late_unreported; /* late readings since its previous final result */
        uint32_t nopen, cap;
        struct ref_window *open;  /* open windows in increasing start order */
};

struct ref {
        struct tg_window_conf conf;
        int64_t now;              /* read at creation and at each tick (1.3) */
        int64_t global_watermark; /* INT64_MIN: no reading yet */
        struct ref_sensor *sensors;
        uint32_t nsensors;        /* ids s0 .. s<nsensors - 1> */
        uint32_t in_table;
        int interned[16];         /* names interned, in order */
        uint32_t ninterned;
        uint64_t arrivals;
        uint64_t late_partial;    /* late readings still added to an open window */
        struct tg_window_counters counters;
        struct results *out;
};

static void ref_init(struct ref *ref, const struct tg_window_conf *conf,
                     uint32_t nsensors, int64_t now, struct results *out) {
        memset(ref, 0, sizeof(*ref));
        ref->conf = *conf;
        ref->now = now;
        ref->global_watermark = INT64_MIN;
        ref->nsensors = nsensors;
        ref->sensors = calloc(nsensors, sizeof(*ref->sensors));
        ref->out = out;
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref->sensors);
        CU_ASSERT_FATAL(conf->max_fields <= REF_MAX_FIELDS);
        CU_ASSERT_FATAL(conf->max_field_names <= 16);
}

static void ref_free(struct ref *ref) {
        uint32_t i;

        for (i = 0; i < ref->nsensors; i++)
                free(ref->sensors[i].open);
        free(ref->sensors);
}

/* 2.2: boundaries round toward minus infinity. */
static int64_t ref_floor(int64_t t, int64_t step) {
        int64_t q = t / step;

        if (t % step < 0)
                q--;
        return q * step;
}

/* 3.4: the close mark a watermark gives. */
static int64_t ref_mark_for(const struct ref *ref, int64_t watermark) {
        return ref_floor(watermark - ref->conf.grace_ms, ref->conf.hop_ms);
}

/* Section 6: hand a window to the output. */
static void ref_emit(struct ref *ref, uint32_t id, const struct ref_window *w, int final) {
        struct ref_sensor *s = &ref->sensors[id];
        struct result *o = results_push(ref->out);

        o->sensor = id;
        o->start = w->start;
        o->end = w->start + ref->conf.size_ms;
        o->count = w->count;
        o->final = final;
        o->nfields = w->nfields;
        memcpy(o->fields, w->fields, w->nfields * sizeof(*w->fields));
        if (final) {
                /* 6.3: late readings since the sensor's previous final result. */
                o->late = s->late_unreported;
                s->late_unreported = 0;
                ref->counters.windows_emitted++;
        } else {
                ref->counters.updates_emitted++;
        }
}

/* Forget the @p n oldest open windows (emitted already). */
static void ref_drop_oldest(struct ref_sensor *s, uint32_t n) {
        if (!n)
                return;
        memmove(&s->open[0], &s->open[n], (s->nopen - n) * sizeof(*s->open));
        s->nopen -= n;
}

/* 3.3-3.4: raise the close mark and emit, in start order, every open
 * window that ends at or before it. */
static void ref_close_until(struct ref *ref, uint32_t id, int64_t mark) {
        struct ref_sensor *s = &ref->sensors[id];
        uint32_t n = 0;

        if (mark > s->close_mark)
                s->close_mark = mark;
        while (n < s->nopen && s->open[n].start + ref->conf.size_ms <= s->close_mark)
                ref_emit(ref, id, &s->open[n++], 1);
        ref_drop_oldest(s, n);
}

/* Emit every open window in start order; the close mark becomes at least
 * the largest end among them (5.2). */
static void ref_close_all(struct ref *ref, uint32_t id) {
        struct ref_sensor *s = &ref->sensors[id];
        uint32_t n;

        for (n = 0; n < s->nopen; n++) {
                int64_t end = s->open[n].start + ref->conf.size_ms;

                ref_emit(ref, id, &s->open[n], 1);
                if (end > s->close_mark)
                        s->close_mark = end;
        }
        ref_drop_oldest(s, n);
}

/* 7.2: evict the least recently active sensor if it has been silent for
 * evict_after. Returns 1 if an entry was freed. */
static int ref_evict_one(struct ref *ref) {
        struct ref_sensor *lru = NULL;
        uint32_t i, lru_id = 0;

        for (i = 0; i < ref->nsensors; i++) {
                struct ref_sensor *s = &ref->sensors[i];

                if (!s->in_table)
                        continue;
                /* The last in activity order: the sensor whose
                 * last_arrival last changed longest ago (7.2). Not the
                 * smallest last_arrival: after the wall clock steps back
                 * the two differ, and arrival order is what is meant. */
                if (!lru || s->arrival_since < lru->arrival_since) {
                        lru = s;
                        lru_id = i;
                }
        }
        if (!lru || ref->conf.evict_after_ms == 0 ||
            ref->now - lru->last_arrival < ref->conf.evict_after_ms)
                return 0;
        ref_close_all(ref, lru_id);
        /* Forgotten: watermark, close mark and late count. */
        lru->in_table = 0;
        lru->watermark = INT64_MIN;
        lru->close_mark = INT64_MIN;
        lru->late_total = 0;
        lru->late_unreported = 0;
        ref->in_table--;
        ref->counters.sensors_active--;
        ref->counters.evicted++;
        return 1;
}

static struct ref_window *ref_window_at(struct ref_sensor *s, int64_t start) {
        uint32_t i;

        for (i = 0; i < s->nopen && s->open[i].start < start; i++)
                ;
        if (i < s->nopen && s->open[i].start == start)
                return &s->open[i];
        if (s->nopen == s->cap) {
                uint32_t cap = s->cap ? 2 * s->cap : 4;
                struct ref_window *v = realloc(s->open, cap * sizeof(*v));

                if (!v) {
                        fprintf(stderr, "test_window_diff: out of memory\n");
                        abort();
                }
                s->open = v;
                s->cap = cap;
        }
        memmove(&s->open[i + 1], &s->open[i], (s->nopen - i) * sizeof(*s->open));
        memset(&s->open[i], 0, sizeof(s->open[i]));
        s->open[i].start = start;
        s->nopen++;
        return &s->open[i];
}

static int ref_is_interned(const struct ref *ref, int name) {
        uint32_t i;

        for (i = 0; i < ref->ninterned; i++)
                if (ref->interned[i] == name)
                        return 1;
        return 0;
}

/* 6.2: Welford in the order added; first/last by ts with the tie rules.
 * Where a double overflows, the mean as mean + (x/n - mean/n), and M2
 * scaled by 2^-1100 from then on, kept negated as window.h says of
 * tg_field_stats.m2. */
static void ref_stats_add(struct field_result *f, int64_t ts, double x) {
        double delta, mean, m2, scaled, xs;

        if (f->count == 0) {
                f->count = 1;
                f->min = f->max = f->sum = f->mean = f->first = f->last = x;
                f->m2 = 0;
                f->first_ts = f->last_ts = ts;
                return;
        }
        f->count++;
        if (x < f->min)
                f->min = x;
        if (x > f->max)
                f->max = x;
        f->sum += x;
        delta = x - f->mean;
        if (isfinite(delta))
                mean = f->mean + delta / f->count;
        else
                mean = f->mean + (x / f->count - f->mean / f->count);
        m2 = f->m2 + delta * (x - mean); /* if M2 is not scaled yet */
        if (f->m2 >= 0 && m2 >= 0 && m2 <= DBL_MAX) {
                f->m2 = m2;
        } else {
                scaled = f->m2 >= 0 ? ldexp(f->m2, -1100) : -f->m2;
                xs = ldexp(x, -550);
                f->m2 = -(scaled + (xs - ldexp(f->mean, -550)) * (xs - ldexp(mean, -550)));
        }
        f->mean = mean;
        if (ts < f->first_ts) {   /* tie: the earliest added stays first */
                f->first = x;
                f->first_ts = ts;
        }
        if (ts >= f->last_ts) {   /* tie: the latest added becomes last */
                f->last = x;
                f->last_ts = ts;
        }
}

/* 6.5, the engine's limit. Reading: the name limit belongs to the engine,
 * not to a window, so the engine meets a reading's names when the reading
 * reaches the sensor table (refused readings change nothing, 1.4), late or
 * not, interning them in field order while there is room. A value whose name
 * finds no room is one value dropped, counted once, whatever the number of
 * windows it would have gone to. Sets @p named[i] to the name of field i,
 * or -1 for a value so dropped. */
static void ref_intern_names(struct ref *ref, const struct tg_reading *r, int *named) {
        uint16_t i;

        for (i = 0; i < r->nfields; i++) {
                int name = name_index(r->fields[i].name, r->fields[i].name_len);

                named[i] = name;
                if (ref_is_interned(ref, name))
                        continue;
                if (ref->ninterned < ref->conf.max_field_names) {
                        ref->interned[ref->ninterned++] = name;
                        continue;
                }
                named[i] = -1;
                ref->counters.fields_dropped++;
        }
}

/* 4.1 "added to w"; 6.5, the window's limit: a value that finds the window
 * holding max_fields other fields is dropped from that window and counted. */
static void ref_window_add(struct ref *ref, struct ref_window *w, const struct tg_reading *r,
                           const int *named) {
        uint16_t i;

        w->count++;
        for (i = 0; i < r->nfields; i++) {
                int name = named[i];
                uint32_t j;

                if (name < 0)
                        continue; /* counted once by ref_intern_names() */
                for (j = 0; j < w->nfields && w->fields[j].name != name; j++)
                        ;
                if (j == w->nfields) {
                        if (w->nfields == ref->conf.max_fields) {
                                ref->counters.fields_dropped++;
                                continue;
                        }
                        memset(&w->fields[j], 0, sizeof(w->fields[j]));
                        w->fields[j].name = name;
                        w->nfields++;
                }
                ref_stats_add(&w->fields[j], r->ts_ms, r->fields[i].value);
        }
}

/* Section 4, in the order of 4.1. */
static enum tg_window_verdict ref_add(struct ref *ref, const struct tg_reading *r) {
        const struct tg_window_conf *c = &ref->conf;
        uint32_t id = sensor_number(r->sensor, r->sensor_len);
        int64_t ts = r->ts_ms, a, start;
        struct ref_sensor *s;
        int late = 0, added = 0, named[TG_READING_FIELDS_MAX];

        /* 1.2 */
        if (ts < TG_TS_MIN || ts > TG_TS_MAX) {
                ref->counters.out_of_range++;
                return TG_WINDOW_OUT_OF_RANGE;
        }
        /* 1.3: now as read at creation or at the last tick. */
        if (ts > ref->now + c->max_future_ms) {
                ref->counters.future++;
                return TG_WINDOW_FUTURE;
        }
        /* 7.2 */
        s = &ref->sensors[id];
        if (!s->in_table) {
                if (ref->in_table == c->max_sensors && !ref_evict_one(ref)) {
                        ref->counters.table_full++;
                        return TG_WINDOW_TABLE_FULL;
                }
                s->in_table = 1;
                s->watermark = INT64_MIN;
                s->close_mark = INT64_MIN;
                s->late_total = 0;
                s->late_unreported = 0;
                s->nopen = 0;
                s->arrival_since = 0;
                ref->in_table++;
                ref->counters.sensors_active++;
        }
        ref->arrivals++;
        if (!s->arrival_since || s->last_arrival != ref->now)
                s->arrival_since = ref->arrivals;
        s->last_arrival = ref->now;
        /* 3.1 */
        if (ts > s->watermark)
                s->watermark = ts;
        /* Reading: the global watermark is the largest ts of every reading
         * that reached the table, evicted sensors' included: a watermark
         * only moves forward ("a refused reading does not move" it). */
        if (ts > ref->global_watermark)
                ref->global_watermark = ts;
        /* 3.2, 3.4 */
        ref_close_until(ref, id, ref_mark_for(ref, c->close == TG_CLOSE_GLOBAL
                                                           ? ref->global_watermark
                                                           : s->watermark));
        ref_intern_names(ref, r, named);
        /* 2.3, 4.1: the reading's windows, oldest first. */
        a = ref_floor(ts, c->hop_ms);
        for (start = a - c->size_ms + c->hop_ms; start <= a; start += c->hop_ms) {
                if (start + c->size_ms <= s->close_mark) {
                        late = 1;
                        continue;
                }
                ref_window_add(ref, ref_window_at(s, start), r, named);
                added = 1;
        }
        /* 4.2, 4.3 */
        if (late) {
                ref->counters.late++;
                s->late_total++;
                s->late_unreported++;
                ref->late_partial += (uint64_t)added;
                return TG_WINDOW_LATE;
        }
        ref->counters.accepted++;
        return TG_WINDOW_ACCEPTED;
}

/* Section 5. */
static void ref_tick(struct ref *ref, int64_t now) {
        const struct tg_window_conf *c = &ref->conf;
        uint32_t id, k;

        ref->now = now;
        for (id = 0; id < ref->nsensors; id++) {
                struct ref_sensor *s = &ref->sensors[id];

                if (!s->in_table || !s->nopen)
                        continue;
                /* 5.3, before 5.2 */
                if (c->close == TG_CLOSE_GLOBAL)
                        ref_close_until(ref, id, ref_mark_for(ref, ref->global_watermark));
                /* 5.2. Reading: a sensor counts as idle-closed when the idle
                 * rule itself closed at least one window. */
                if (c->idle_timeout_ms > 0 && s->nopen &&
                    now - s->last_arrival >= c->idle_timeout_ms) {
                        ref_close_all(ref, id);
                        ref->counters.idle_closes++;
                }
                /* 5.4 */
                if (c->update_interval_ms <= 0)
                        continue;
                for (k = 0; k < s->nopen; k++) {
                        struct ref_window *w = &s->open[k];

                        if (w->had_update && (w->count == w->count_at_update ||
                                              now - w->last_update < c->update_interval_ms))
                                continue;
                        ref_emit(ref, id, w, 0);
                        w->had_update = 1;
                        w->last_update = now;
                        w->count_at_update = w->count;
                }
        }
}

/* tg_window_engine_flush(): every open window, final, in start order. */
static void ref_flush(struct ref *ref) {
        uint32_t id;

        for (id = 0; id < ref->nsensors; id++)
                if (ref->sensors[id].in_table)
                        ref_close_all(ref, id);
}

static int64_t ref_sensor_late(const struct ref *ref, uint32_t id) {
        return ref->sensors[id].in_table ? (int64_t)ref->sensors[id].late_total : -1;
}

/* ---------------------------------------------------------------- driver */

struct diff_config {
        const char *name;
        struct tg_window_conf conf;
        uint32_t nsensors;        /* ids s0 .. s<nsensors - 1> */
        uint32_t nhot;            /* > 0: 90 % of readings come from s0 .. s<nhot - 1> */
        int64_t wall0;            /* the fake clock at the start */
        int64_t clock_back_ms;    /* > 0: now and then the wall clock steps back up to this */
        uint64_t readings;        /* 0: DEFAULT_READINGS */
        uint64_t seed;
        /* How the engine is fed, which the reference does not see: */
        uint32_t batch;           /* > 0: tg_window_engine_add_batch() with 1..batch readings */
        int id_width;             /* > 0: ids zero-padded to this many bytes ("s0017") */
};

#define BATCH_MAX 64

struct gen_sensor {
        int64_t offset;           /* device clock error */
        int64_t lag;              /* backlog still to upload */
        int64_t silent_from, silent_until; /* silent_until 0: talking */
        int64_t max_ts;           /* INT64_MIN: nothing sent yet */
        int names[3];
        double base[3];
        int has_last;
        struct tg_reading last;
};

struct trace_event {
        uint64_t op;
        int64_t ts, now;
        int verdict_engine, verdict_ref;
};

struct sensor_trace {
        struct trace_event ev[TRACE_LEN];
        unsigned n;
};

struct diff {
        const struct diff_config *cfg;
        struct rng rng;
        int64_t wall;             /* the fake clock */
        int64_t tick_now;         /* what the engine read at creation / last tick */
        struct tg_clock clock;    /* the fake clock: reads `wall` */
        int in_add;
        uint64_t clock_reads_in_add;
        tg_window_engine_t *engine;
        struct ref ref;
        struct results got, want;
        struct gen_sensor *gs;
        struct sensor_trace *trace;
        uint64_t op, ticks, readings;
        const char *op_kind;      /* "reading", "tick", "flush", "eviction" */
        const struct tg_reading *op_reading;
        unsigned mismatch_ops, mismatch_lines;
        int64_t counter_gap[11];  /* engine - reference, per counter */
        int op_bad;
        uint64_t kinds[8];        /* generated reading kinds, for the summary */
};

/* The id of sensor @p i in @p id (TG_SENSOR_ID_MAX + 1 bytes); its length. */
static size_t sensor_id(const struct diff_config *cfg, uint32_t i, char *id) {
        int width = cfg->id_width > 1 ? cfg->id_width - 1 : 0;

        return (size_t)snprintf(id, TG_SENSOR_ID_MAX + 1, "s%0*u", width, i);
}

static int64_t fake_clock_now(void *opaque) {
        struct diff *d = opaque;

        if (d->in_add)
                d->clock_reads_in_add++;
        return d->wall;
}

static void engine_emit(void *opaque, const struct tg_window_result *w) {
        struct diff *d = opaque;
        struct result *o = results_push(&d->got);
        uint32_t i;

        o->sensor = sensor_number(w->sensor, w->sensor_len);
        o->start = w->start;
        o->end = w->end;
        o->count = w->count;
        o->final = w->final;
        o->late = w->late;
        o->nfields = w->nfields;
        for (i = 0; i < w->nfields && i < REF_MAX_FIELDS; i++) {
                const struct tg_field_stats *f = &w->fields[i];
                const char *name = tg_window_field_name(d->engine, f->field);

                o->fields[i] = (struct field_result){
                        .name = name_index(name, strlen(name)),
                        .count = f->count,
                        .min = f->min, .max = f->max, .sum = f->sum,
                        .mean = f->mean, .m2 = f->m2,
                        .first = f->first, .last = f->last,
                        .first_ts = f->first_ts, .last_ts = f->last_ts,
                };
        }
}

static void print_reading(const struct tg_reading *r) {
        uint16_t i;

        printf("%.*s ts=%" PRId64 " {", (int)r->sensor_len, r->sensor, r->ts_ms);
        for (i = 0; i < r->nfields; i++)
                printf("%s%s: %.17g", i ? ", " : "", r->fields[i].name, r->fields[i].value);
        printf("}");
}

static void print_result(const char *who, const struct result *x) {
        uint32_t i;

        printf("      %-9s s%u [%" PRId64 ", %" PRId64 ") count %u %s late %" PRIu64
               " nfields %u\n", who, x->sensor, x->start, x->end, x->count,
               x->final ? "final" : "running", x->late, x->nfields);
        for (i = 0; i < x->nfields && i < REF_MAX_FIELDS; i++) {
                const struct field_result *f = &x->fields[i];

                printf("        %s: count %u min %.17g max %.17g sum %a mean %a m2 %a"
                       " first %.17g@%" PRId64 " last %.17g@%" PRId64 "\n",
                       f->name >= 0 ? field_names[f->name] : "?", f->count, f->min, f->max,
                       f->sum, f->mean, f->m2, f->first, f->first_ts, f->last, f->last_ts);
        }
}

static void print_sensor(const struct diff *d, uint32_t id) {
        const struct ref_sensor *s;
        const struct sensor_trace *t;
        unsigned i, n;

        if (id >= d->ref.nsensors)
                return;
        s = &d->ref.sensors[id];
        printf("      reference s%u: %s watermark %" PRId64 " close mark %" PRId64
               " last arrival %" PRId64 " late %" PRIu64 "/%" PRIu64 " open:",
               id, s->in_table ? "in table," : "not in table,", s->watermark, s->close_mark,
               s->last_arrival, s->late_total, s->late_unreported);
        for (i = 0; i < s->nopen; i++)
                printf(" %" PRId64 "(%u)", s->open[i].start, s->open[i].count);
        printf("\n      global watermark %" PRId64 ", now %" PRId64 " (fake clock %" PRId64
               "); last readings of s%u (op: ts now engine/reference):\n",
               d->ref.global_watermark, d->ref.now, d->wall, id);
        t = &d->trace[id];
        n = t->n < TRACE_LEN ? t->n : TRACE_LEN;
        for (i = t->n - n; i < t->n; i++) {
                const struct trace_event *e = &t->ev[i % TRACE_LEN];

                printf("        op %" PRIu64 ": ts %" PRId64 " now %" PRId64 " %s/%s\n", e->op,
                       e->ts, e->now, verdict_name(e->verdict_engine),
                       verdict_name(e->verdict_ref));
        }
}

/* Called once per bad line; prints the operation header the first time. */
static int mismatch(struct diff *d) {
        if (!d->op_bad) {
                d->op_bad = 1;
                d->mismatch_ops++;
                printf("\n    MISMATCH [%s] op %" PRIu64 " (%s", d->cfg->name, d->op, d->op_kind);
                if (d->op_reading) {
                        printf(" #%" PRIu64 ": ", d->readings);
                        print_reading(d->op_reading);
                }
                printf(", now %" PRId64 ")\n", d->ref.now);
        }
        return d->mismatch_lines++ < MAX_MISMATCH_LINES;
}

static int same_double(double a, double b) {
        return !memcmp(&a, &b, sizeof(a));
}

/* First difference between two results, or NULL. */
static const char *result_difference(const struct result *a, const struct result *b) {
        uint32_t i;

        if (a->start != b->start || a->end != b->end)
                return "start/end";
        if (a->final != b->final)
                return "final";
        if (a->count != b->count)
                return "count";
        if (a->final && a->late != b->late)
                return "late";
        if (a->nfields != b->nfields)
                return "nfields";
        for (i = 0; i < a->nfields && i < REF_MAX_FIELDS; i++) {
                const struct field_result *x = &a->fields[i], *y = &b->fields[i];

                if (x->name != y->name)
                        return "field name/order";
                if (x->count != y->count)
                        return "field count";
                if (!same_double(x->min, y->min) || !same_double(x->max, y->max))
                        return "min/max";
                if (!same_double(x->sum, y->sum))
                        return "sum";
                if (!same_double(x->mean, y->mean))
                        return "mean";
                if (!same_double(x->m2, y->m2))
                        return "m2";
                if (!same_double(x->first, y->first) || x->first_ts != y->first_ts)
                        return "first";
                if (!same_double(x->last, y->last) || x->last_ts != y->last_ts)
                        return "last";
        }
        return NULL;
}

static int by_sensor_then_order(const void *pa, const void *pb) {
        const struct result *a = pa, *b = pb;

        if (a->sensor != b->sensor)
                return a->sensor < b->sensor ? -1 : 1;
        return a->order < b->order ? -1 : a->order > b->order;
}

/* Group by sensor keeping each sensor's order. Running results of one tick
 * have no order in the text: sort each sensor's run of them by start. */
static void normalize(struct results *b) {
        size_t i, j, k;

        if (b->n > 1)
                qsort(b->v, b->n, sizeof(*b->v), by_sensor_then_order);
        for (i = 0; i < b->n; i = j) {
                for (j = i; j < b->n && b->v[j].sensor == b->v[i].sensor &&
                            b->v[j].final == b->v[i].final; j++)
                        ;
                if (b->v[i].final)
                        continue;
                for (k = i + 1; k < j; k++) {
                        struct result x = b->v[k];
                        size_t m = k;

                        for (; m > i && b->v[m - 1].start > x.start; m--)
                                b->v[m] = b->v[m - 1];
                        b->v[m] = x;
                }
        }
}

/* What the engine emitted during the operation against what the reference did. */
static void compare_results(struct diff *d) {
        size_t i = 0, j = 0;

        if (!d->got.n && !d->want.n)
                return;
        normalize(&d->got);
        normalize(&d->want);
        while (i < d->got.n || j < d->want.n) {
                const struct result *g = i < d->got.n ? &d->got.v[i] : NULL;
                const struct result *w = j < d->want.n ? &d->want.v[j] : NULL;
                const char *why;

                if (g && w && g->sensor == w->sensor) {
                        if ((why = result_difference(g, w)) && mismatch(d)) {
                                printf("    s%u: results differ in %s\n", w->sensor, why);
                                print_result("engine", g);
                                print_result("reference", w);
                                print_sensor(d, w->sensor);
                        }
                        i++;
                        j++;
                } else if (g && (!w || g->sensor < w->sensor)) {
                        if (mismatch(d)) {
                                printf("    s%u: engine emitted a result the reference did not\n",
                                       g->sensor);
                                print_result("engine", g);
                                print_sensor(d, g->sensor);
                        }
                        i++;
                } else {
                        if (mismatch(d)) {
                                printf("    s%u: reference emitted a result the engine did not\n",
                                       w->sensor);
                                print_result("reference", w);
                                print_sensor(d, w->sensor);
                        }
                        j++;
                }
        }
        d->got.n = d->want.n = 0;
}

/* Counters after every operation. A gap is reported when it opens or
 * changes, so one divergence is not reported again at every operation. */
static void compare_counters(struct diff *d) {
        static const struct {
                const char *name;
                size_t off;
        } fields[] = {
#define COUNTER(f) {#f, offsetof(struct tg_window_counters, f)}
                COUNTER(accepted), COUNTER(late), COUNTER(future), COUNTER(out_of_range),
                COUNTER(table_full), COUNTER(fields_dropped), COUNTER(windows_emitted),
                COUNTER(updates_emitted), COUNTER(idle_closes), COUNTER(evicted),
                COUNTER(sensors_active),
#undef COUNTER
        };
        struct tg_window_counters k;
        size_t i;

        tg_window_engine_counters(d->engine, &k);
        for (i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
                uint64_t got, want;
                int64_t gap;

                memcpy(&got, (const char *)&k + fields[i].off, sizeof(got));
                memcpy(&want, (const char *)&d->ref.counters + fields[i].off, sizeof(want));
                gap = (int64_t)(got - want);
                if (gap != d->counter_gap[i] && mismatch(d))
                        printf("    counter %s: engine %" PRIu64 ", reference %" PRIu64 "\n",
                               fields[i].name, got, want);
                d->counter_gap[i] = gap;
        }
}

static void compare_sensor_late(struct diff *d) {
        char id[TG_SENSOR_ID_MAX + 1];
        uint32_t i;

        for (i = 0; i < d->ref.nsensors; i++) {
                size_t len = sensor_id(d->cfg, i, id);
                int64_t got = tg_window_engine_sensor_late(d->engine, id, len);
                int64_t want = ref_sensor_late(&d->ref, i);

                if (got != want && mismatch(d)) {
                        printf("    tg_window_engine_sensor_late(s%u): engine %" PRId64
                               ", reference %" PRId64 "\n", i, got, want);
                        print_sensor(d, i);
                }
        }
}

static void begin_op(struct diff *d, const char *kind, const struct tg_reading *r) {
        d->op++;
        d->op_kind = kind;
        d->op_reading = r;
        d->op_bad = 0;
}

static void feed(struct diff *d, const struct tg_reading *r) {
        enum tg_window_verdict want, got;
        uint32_t id = sensor_number(r->sensor, r->sensor_len);
        struct sensor_trace *t = &d->trace[id];
        struct trace_event *ev;

        d->readings++;
        begin_op(d, "reading", r);
        want = ref_add(&d->ref, r);
        d->in_add = 1;
        got = tg_window_engine_add(d->engine, r);
        d->in_add = 0;
        ev = &t->ev[t->n++ % TRACE_LEN];
        *ev = (struct trace_event){.op = d->op, .ts = r->ts_ms, .now = d->ref.now,
                                   .verdict_engine = (int)got, .verdict_ref = (int)want};
        if (got != want && mismatch(d)) {
                printf("    verdict: engine %s, reference %s\n", verdict_name((int)got),
                       verdict_name((int)want));
                print_sensor(d, id);
        }
        compare_results(d);
        compare_counters(d);
}

/* The engine takes the readings in one tg_window_engine_add_batch() call,
 * the reference one by one: verdicts are compared one by one, results (per
 * sensor in order) and counters after the batch. */
static void feed_batch(struct diff *d, const struct tg_reading *rs, size_t n) {
        enum tg_window_verdict want[BATCH_MAX], got[BATCH_MAX];
        size_t k;

        begin_op(d, "batch", &rs[n - 1]);
        for (k = 0; k < n; k++) {
                d->readings++;
                want[k] = ref_add(&d->ref, &rs[k]);
        }
        d->in_add = 1;
        tg_window_engine_add_batch(d->engine, rs, n, got);
        d->in_add = 0;
        for (k = 0; k < n; k++) {
                uint32_t id = sensor_number(rs[k].sensor, rs[k].sensor_len);
                struct sensor_trace *t = &d->trace[id];

                t->ev[t->n++ % TRACE_LEN] = (struct trace_event){
                        .op = d->op, .ts = rs[k].ts_ms, .now = d->ref.now,
                        .verdict_engine = (int)got[k], .verdict_ref = (int)want[k]};
                if (got[k] != want[k] && mismatch(d)) {
                        printf("    verdict of reading %zu of %zu: engine %s, reference %s\n",
                               k + 1, n, verdict_name((int)got[k]), verdict_name((int)want[k]));
                        print_sensor(d, id);
                }
        }
        compare_results(d);
        compare_counters(d);
}

static void tick(struct diff *d) {
        begin_op(d, "tick", NULL);
        d->ticks++;
        d->tick_now = d->wall;
        ref_tick(&d->ref, d->wall);
        tg_window_engine_tick(d->engine);
        compare_results(d);
        compare_counters(d);
        if (d->ticks % 64 == 0)
                compare_sensor_late(d);
}

/* -------------------------------------------------------------- generator */

static void gen_init_sensor(struct diff *d, uint32_t i) {
        struct gen_sensor *g = &d->gs[i];
        int64_t max_future = d->cfg->conf.max_future_ms;
        uint64_t r = rng_below(&d->rng, 100);
        int k, m;

        memset(g, 0, sizeof(*g));
        g->max_ts = INT64_MIN;
        if (r < 92)
                g->offset = 0;
        else if (r < 96)          /* slow device clock: behind by up to an hour */
                g->offset = -(int64_t)(1 + rng_below(&d->rng, 3600)) * 1000;
        else if (r < 99)          /* fast, within max_future */
                g->offset = 1 + (int64_t)rng_below(&d->rng, (uint64_t)max_future / 2 + 1);
        else                      /* beyond max_future: mostly refused */
                g->offset = max_future + 1 + (int64_t)rng_below(&d->rng, 60000);
        for (k = 0; k < 3; k++) {
                do {
                        g->names[k] = (int)rng_below(&d->rng, NNAMES);
                        for (m = 0; m < k && g->names[m] != g->names[k]; m++)
                                ;
                } while (m < k);
                g->base[k] = (double)((int64_t)rng_below(&d->rng, 105000) - 5000) / 100.0;
                if (rng_below(&d->rng, 100) == 0)
                        g->base[k] += 1e9; /* Welford's reason to exist */
        }
}

enum {
        KIND_NORMAL, KIND_DUPLICATE, KIND_DISORDER, KIND_LATE, KIND_FUTURE, KIND_FUTURE_EDGE,
        KIND_RANGE, KIND_BACKLOG,
};

static void gen_reading(struct diff *d, struct tg_reading *r) {
        const struct diff_config *cfg = d->cfg;
        const int64_t G = cfg->conf.grace_ms, W = cfg->conf.size_ms;
        const int64_t idle = cfg->conf.idle_timeout_ms ? cfg->conf.idle_timeout_ms : 30000;
        static const int64_t out_of_range[] = {INT64_MIN, TG_TS_MIN - 1, TG_TS_MAX + 1,
                                               INT64_MAX};
        struct gen_sensor *g;
        char id[TG_SENSOR_ID_MAX + 1];
        uint32_t i = 0;
        int tries, kind, k, nf;
        size_t len;
        uint64_t dice;

        /* Now and then a sensor falls silent for longer than the idle timeout. */
        if (rng_below(&d->rng, 2000) == 0) {
                g = &d->gs[rng_below(&d->rng, cfg->nsensors)];
                if (!g->silent_until) {
                        g->silent_from = d->wall;
                        g->silent_until = d->wall + idle + (int64_t)rng_below(&d->rng,
                                                                        (uint64_t)(2 * idle));
                }
        }
        for (tries = 0; tries < 8; tries++) {
                if (cfg->nhot && rng_below(&d->rng, 10) < 9)
                        i = (uint32_t)rng_below(&d->rng, cfg->nhot);
                else
                        i = (uint32_t)rng_below(&d->rng, cfg->nsensors);
                g = &d->gs[i];
                if (!g->silent_until || d->wall >= g->silent_until)
                        break;
        }
        g = &d->gs[i];
        if (g->silent_until && d->wall >= g->silent_until) {
                /* Back: half of them upload what they measured meanwhile. */
                if (rng_below(&d->rng, 2))
                        g->lag = d->wall - g->silent_from;
                g->silent_until = 0;
        }

        if (g->has_last && rng_below(&d->rng, 100) == 0) {
                *r = g->last; /* exact duplicate: same ts, same values */
                d->kinds[KIND_DUPLICATE]++;
                return;
        }
        tg_reading_clear(r);
        len = sensor_id(cfg, i, id);
        tg_reading_set_sensor(r, id, len);

        dice = rng_below(&d->rng, 100000);
        if (dice < 5000 && g->max_ts != INT64_MIN) {
                kind = KIND_LATE;     /* beyond grace */
                r->ts_ms = g->max_ts - G - 1 - (int64_t)rng_below(&d->rng, (uint64_t)(2 * W));
        } else if (dice < 15000 && g->max_ts != INT64_MIN) {
                kind = KIND_DISORDER; /* out of order within grace */
                r->ts_ms = g->max_ts - (int64_t)rng_below(&d->rng, (uint64_t)G + 1);
        } else if (dice < 15400) {
                kind = KIND_FUTURE;   /* refused: one ms and more past the cached now */
                r->ts_ms = d->tick_now + cfg->conf.max_future_ms + 1 +
                           (int64_t)rng_below(&d->rng, 10000);
        } else if (dice < 15405) {
                kind = KIND_FUTURE_EDGE; /* exactly now + max_future: accepted */
                r->ts_ms = d->tick_now + cfg->conf.max_future_ms;
        } else if (dice < 15605) {
                kind = KIND_RANGE;
                r->ts_ms = out_of_range[rng_below(&d->rng, 4)];
        } else if (dice < 15607) {
                kind = KIND_RANGE;    /* the very edges of the range: in range */
                r->ts_ms = rng_below(&d->rng, 2) ? TG_TS_MIN : TG_TS_MAX;
        } else {
                kind = g->lag ? KIND_BACKLOG : KIND_NORMAL;
                r->ts_ms = d->wall + g->offset - g->lag - (int64_t)rng_below(&d->rng, 301);
                if (g->lag) {
                        g->lag -= 1000 + (int64_t)rng_below(&d->rng, 3000);
                        if (g->lag < 0)
                                g->lag = 0;
                }
        }
        d->kinds[kind]++;
        if (kind != KIND_FUTURE && kind != KIND_RANGE && r->ts_ms > g->max_ts)
                g->max_ts = r->ts_ms;

        /* 1-3 fields from the sensor's three; now and then a stranger. */
        nf = 1 + (int)rng_below(&d->rng, 3);
        for (k = 0; k < nf; k++) {
                int slot = (int)rng_below(&d->rng, 3);
                int name = g->names[slot];
                double v = g->base[slot] +
                           (double)((int64_t)rng_below(&d->rng, 200001) - 100000) / 1237.0;

                /* Now and then a value near the largest double, where the
                 * sum overflows and the mean and M2 take their wide steps. */
                if (rng_below(&d->rng, 400) == 0)
                        v = huge_values[rng_below(&d->rng, sizeof(huge_values) /
                                                                sizeof(*huge_values))];

                if (rng_below(&d->rng, 50) == 0)
                        name = (int)rng_below(&d->rng, NNAMES);
                tg_reading_add_field(r, field_names[name], strlen(field_names[name]), v);
        }
        g->last = *r;
        g->has_last = 1;
}

static uint64_t readings_default(const struct diff_config *cfg) {
        return cfg->readings ? cfg->readings : DEFAULT_READINGS;
}

/* TG_DIFF_READINGS caps the count. */
static uint64_t readings_wanted(const struct diff_config *cfg) {
        const char *s = getenv("TG_DIFF_READINGS");
        unsigned long long cap = s ? strtoull(s, NULL, 10) : 0;

        return cap && cap < readings_default(cfg) ? cap : readings_default(cfg);
}

static double seconds_since(const struct timespec *t0) {
        struct timespec t1;

        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* An engine and a reference side by side, the fake clock at cfg->wall0. */
static struct diff *diff_open(const struct diff_config *cfg) {
        struct diff *d = calloc(1, sizeof(*d));
        char err[256];
        uint32_t s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        d->cfg = cfg;
        d->rng.s = cfg->seed;
        d->wall = d->tick_now = cfg->wall0;
        d->gs = calloc(cfg->nsensors, sizeof(*d->gs));
        d->trace = calloc(cfg->nsensors, sizeof(*d->trace));
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->gs);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->trace);
        for (s = 0; s < cfg->nsensors; s++)
                gen_init_sensor(d, s);
        d->clock = (struct tg_clock){.now_ms = fake_clock_now, .opaque = d};
        d->engine = tg_window_engine_new(&cfg->conf, &d->clock, engine_emit, d, err,
                                         sizeof(err));
        if (!d->engine)
                printf("\n    tg_window_engine_new: %s\n", err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->engine);
        ref_init(&d->ref, &cfg->conf, cfg->nsensors, cfg->wall0, &d->want);
        return d;
}

static void diff_close(struct diff *d) {
        tg_window_engine_destroy(d->engine);
        ref_free(&d->ref);
        free(d->got.v);
        free(d->want.v);
        free(d->gs);
        free(d->trace);
        free(d);
}

static void run_config(const struct diff_config *cfg) {
        const uint64_t n = readings_wanted(cfg);
        const int64_t idle = cfg->conf.idle_timeout_ms ? cfg->conf.idle_timeout_ms : 30000;
        static struct tg_reading rs[BATCH_MAX];
        struct tg_window_counters k;
        struct timespec t0;
        struct diff *d;
        uint64_t i, until_tick;
        size_t nb = 0, batch = 0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        d = diff_open(cfg);
        until_tick = 50 + rng_below(&d->rng, 101);
        for (i = 0; i < n && d->mismatch_ops < MAX_MISMATCH_OPS; i++) {
                /* Batches end before a tick, at their chosen size, or at
                 * the end of the stream; the clock moves in between as
                 * ever (the engine reads it at ticks only). */
                if (cfg->batch && nb == 0)
                        batch = 1 + (size_t)rng_below(&d->rng, cfg->batch);
                gen_reading(d, &rs[nb]);
                if (cfg->batch) {
                        if (++nb == batch || until_tick == 1 || i + 1 == n) {
                                feed_batch(d, rs, nb);
                                nb = 0;
                        }
                } else {
                        feed(d, &rs[0]);
                }
                d->wall += (int64_t)rng_below(&d->rng, 4);
                if (rng_below(&d->rng, 50000) == 0) /* everyone quiet for a while */
                        d->wall += idle + (int64_t)rng_below(&d->rng, (uint64_t)idle);
                if (cfg->clock_back_ms && rng_below(&d->rng, 20000) == 0)
                        d->wall -= 1 + (int64_t)rng_below(&d->rng, (uint64_t)cfg->clock_back_ms);
                if (--until_tick == 0) {
                        tick(d);
                        until_tick = 50 + rng_below(&d->rng, 101);
                }
        }
        if (d->mismatch_ops < MAX_MISMATCH_OPS) {
                tick(d);
                begin_op(d, "end of stream", NULL);
                compare_sensor_late(d);
                compare_counters(d);
                begin_op(d, "flush", NULL);
                ref_flush(&d->ref);
                tg_window_engine_flush(d->engine);
                compare_results(d);
                compare_counters(d);
        }
        CU_ASSERT_EQUAL(d->clock_reads_in_add, 0); /* 1.3: now is read at tick only */
        if (d->clock_reads_in_add)
                printf("\n    [%s] the engine read the clock %" PRIu64 " times inside add\n",
                       cfg->name, d->clock_reads_in_add);

        tg_window_engine_counters(d->engine, &k);
        printf("\n    [%s] %" PRIu64 " readings, %u sensors, %" PRIu64 " ticks in %.2f s: "
               "accepted %" PRIu64 " late %" PRIu64 " (%" PRIu64 " partly counted) future %"
               PRIu64 " out_of_range %" PRIu64 " table_full %" PRIu64 " fields_dropped %"
               PRIu64 " finals %" PRIu64 " updates %" PRIu64 " idle_closes %" PRIu64
               " evicted %" PRIu64 "; duplicates %" PRIu64 ", backlog %" PRIu64 "\n",
               cfg->name, d->readings, cfg->nsensors, d->ticks, seconds_since(&t0),
               k.accepted, k.late, d->ref.late_partial, k.future, k.out_of_range,
               k.table_full, k.fields_dropped, k.windows_emitted, k.updates_emitted,
               k.idle_closes, k.evicted, d->kinds[KIND_DUPLICATE], d->kinds[KIND_BACKLOG]);

        CU_ASSERT_EQUAL(d->mismatch_ops, 0);
        /* The stream must exercise what the configuration is about (checked
         * at full length; shorter runs are for the sanitizer build). */
        if (!d->mismatch_ops && n >= readings_default(cfg)) {
                const struct tg_window_counters *c = &d->ref.counters;

                CU_ASSERT(c->late > 0);
                if (cfg->wall0 + cfg->conf.max_future_ms < TG_TS_MAX)
                        CU_ASSERT(c->future > 0);
                CU_ASSERT(c->out_of_range > 0);
                CU_ASSERT(c->fields_dropped > 0);
                CU_ASSERT(c->windows_emitted > 0);
                CU_ASSERT(d->kinds[KIND_DUPLICATE] > 0);
                if (cfg->conf.idle_timeout_ms)
                        CU_ASSERT(c->idle_closes > 0);
                if (cfg->conf.hop_ms < cfg->conf.size_ms)
                        CU_ASSERT(d->ref.late_partial > 0);
                if (cfg->conf.update_interval_ms)
                        CU_ASSERT(c->updates_emitted > 0);
                if (cfg->conf.max_sensors < cfg->nsensors) {
                        CU_ASSERT(c->table_full > 0);
                        if (cfg->conf.evict_after_ms)
                                CU_ASSERT(c->evicted > 0);
                }
        }
        diff_close(d);
}

/* ---------------------------------------------------------------- configs */

#define WALL_2025 INT64_C(1764000000000)

static const struct diff_config configs[] = {
        {
                .name = "tumbling per-sensor",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR},
                .nsensors = 1200, .wall0 = WALL_2025, .seed = 1,
        },
        {
                /* Starts a minute after the epoch: the first windows start
                 * before it, and old readings fall before TG_TS_MIN. */
                .name = "hopping W 10 s H 2 s per-sensor",
                .conf = {.size_ms = 10000, .hop_ms = 2000, .grace_ms = 2000,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR},
                .nsensors = 1000, .wall0 = 60000, .seed = 2,
        },
        {
                /* 2 fields in the slot, the other 2 in wide blocks, with a
                 * block for every window that can be open (W/H + G/H = 2
                 * per sensor): the split must not show in any result. */
                .name = "tumbling per-sensor, 2 of 4 fields in wide blocks",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .reserved_fields = 2, .wide_windows = 2 * 2048,
                         .close = TG_CLOSE_PER_SENSOR},
                .nsensors = 1200, .wall0 = WALL_2025, .seed = 9,
        },
        {
                .name = "tumbling global",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 3000,
                         .idle_timeout_ms = 30000, .max_future_ms = 2000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_GLOBAL},
                .nsensors = 1000, .wall0 = WALL_2025, .seed = 3,
        },
        {
                .name = "update mode (hopping W 10 s H 5 s, U 1 s)",
                .conf = {.size_ms = 10000, .hop_ms = 5000, .grace_ms = 1000,
                         .idle_timeout_ms = 30000, .max_future_ms = 60000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR, .update_interval_ms = 1000},
                .nsensors = 1000, .wall0 = WALL_2025, .seed = 4,
        },
        {
                .name = "small table: 200 sensors, room for 150, eviction",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                         .idle_timeout_ms = 10000, .max_future_ms = 300000,
                         .max_sensors = 150, .max_fields = 2, .max_field_names = 4,
                         .close = TG_CLOSE_PER_SENSOR, .evict_after_ms = 3500},
                .nsensors = 200, .nhot = 100, .wall0 = WALL_2025, .seed = 5,
        },
        {
                .name = "mixed: hopping, global, update, eviction",
                .conf = {.size_ms = 6000, .hop_ms = 2000, .grace_ms = 1500,
                         .idle_timeout_ms = 8000, .max_future_ms = 2000,
                         .max_sensors = 250, .max_fields = 3, .max_field_names = 4,
                         .close = TG_CLOSE_GLOBAL, .evict_after_ms = 10000,
                         .update_interval_ms = 500},
                .nsensors = 300, .nhot = 150, .wall0 = 30000, .seed = 6,
        },
        {
                /* 64 windows per reading; grace not a multiple of the hop. */
                .name = "low end of the range, W/H 64, grace 3.5 hops",
                .conf = {.size_ms = 6400, .hop_ms = 100, .grace_ms = 350,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR},
                .nsensors = 1000, .wall0 = TG_TS_MIN + 600000, .readings = 100000, .seed = 7,
        },
        {
                /* now + max_future is past TG_TS_MAX: the range check decides. */
                .name = "high end of the range, grace 0, no idle close",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 0,
                         .idle_timeout_ms = 0, .max_future_ms = 2500000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR},
                .nsensors = 1000, .wall0 = TG_TS_MAX - 2000000, .readings = 200000, .seed = 8,
        },
        {
                /* Thousands of evictions in a table two thirds of its index. */
                .name = "churn: 3000 sensors, room for 2000",
                .conf = {.size_ms = 10000, .hop_ms = 5000, .grace_ms = 2000,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2000, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR, .evict_after_ms = 20000},
                .nsensors = 3000, .nhot = 1500, .wall0 = WALL_2025, .readings = 300000,
                .seed = 10,
        },
        {
                /* The gateway's clock is the real-time clock: NTP may step it back. */
                .name = "wall clock stepping back: eviction, idle, update",
                .conf = {.size_ms = 10000, .hop_ms = 5000, .grace_ms = 2000,
                         .idle_timeout_ms = 10000, .max_future_ms = 300000,
                         .max_sensors = 150, .max_fields = 3, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR, .evict_after_ms = 3500,
                         .update_interval_ms = 1000},
                .nsensors = 200, .nhot = 100, .wall0 = WALL_2025, .clock_back_ms = 20000,
                .readings = 300000, .seed = 9,
        },
        {
                /* The engine is fed in batches; ids longer than the part of
                 * them the sensor's hot line holds, differing at the end. */
                .name = "batches of 1..16, 40-byte ids",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2048, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR},
                .nsensors = 1200, .wall0 = WALL_2025, .readings = 300000, .seed = 11,
                .batch = 16, .id_width = 40,
        },
        {
                /* Batches through insertions, evictions and refusals. */
                .name = "batches of 1..64 with eviction, hopping, global, update, 12-byte ids",
                .conf = {.size_ms = 6000, .hop_ms = 2000, .grace_ms = 1500,
                         .idle_timeout_ms = 8000, .max_future_ms = 2000,
                         .max_sensors = 250, .max_fields = 3, .max_field_names = 4,
                         .close = TG_CLOSE_GLOBAL, .evict_after_ms = 10000,
                         .update_interval_ms = 500},
                .nsensors = 300, .nhot = 150, .wall0 = 30000, .readings = 300000,
                .seed = 12, .batch = BATCH_MAX, .id_width = 12,
        },
        {
                /* Ids exactly as long as the hot line's part, and churn. */
                .name = "batches of 1..8, churn, 28-byte ids",
                .conf = {.size_ms = 10000, .hop_ms = 5000, .grace_ms = 2000,
                         .idle_timeout_ms = 30000, .max_future_ms = 300000,
                         .max_sensors = 2000, .max_fields = 4, .max_field_names = 16,
                         .close = TG_CLOSE_PER_SENSOR, .evict_after_ms = 20000},
                .nsensors = 3000, .nhot = 1500, .wall0 = WALL_2025, .readings = 300000,
                .seed = 13, .batch = 8, .id_width = 28,
        },
};

static void test_tumbling(void) { run_config(&configs[0]); }
static void test_hopping(void) { run_config(&configs[1]); }
static void test_global(void) { run_config(&configs[2]); }
static void test_update(void) { run_config(&configs[3]); }
static void test_eviction(void) { run_config(&configs[4]); }
static void test_mixed(void) { run_config(&configs[5]); }
static void test_range_low(void) { run_config(&configs[6]); }
static void test_range_high(void) { run_config(&configs[7]); }
static void test_churn(void) { run_config(&configs[8]); }
static void test_clock_back(void) { run_config(&configs[9]); }
static void test_batch_long_ids(void) { run_config(&configs[10]); }
static void test_batch_mixed(void) { run_config(&configs[11]); }
static void test_batch_churn(void) { run_config(&configs[12]); }

/* ------------------------------------------- reproductions, kept as tests */

static void feed_one(struct diff *d, uint32_t sensor, int64_t ts, double v) {
        struct tg_reading r;
        char id[16];
        int len = snprintf(id, sizeof(id), "s%u", sensor);

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, id, (size_t)len);
        r.ts_ms = ts;
        tg_reading_add_field(&r, "temp", 4, v);
        feed(d, &r);
}

static void tick_at(struct diff *d, int64_t now) {
        d->wall = now;
        tick(d);
}

/* 7.2 once the wall clock has stepped back (the gateway's clock is the
 * real-time clock): the eviction candidate is the last in activity order,
 * which is then no longer the sensor with the smallest last_arrival. Found
 * by the "wall clock stepping back" configuration, which first read 7.2 as
 * "smallest last_arrival"; the specification now says activity order. */
static void test_eviction_after_clock_steps_back(void) {
        static const struct diff_config cfg = {
                .name = "7.2 after the clock steps back",
                .conf = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                         .max_future_ms = 300000, .max_sensors = 2, .max_fields = 1,
                         .max_field_names = 1, .close = TG_CLOSE_PER_SENSOR,
                         .evict_after_ms = 1000},
                .nsensors = 3, .wall0 = 20000, .seed = 1,
        };
        struct diff *d = diff_open(&cfg);

        feed_one(d, 0, 10000, 1);  /* s0: last_arrival 20000 */
        tick_at(d, 25000);
        feed_one(d, 1, 10000, 2);  /* s1: last_arrival 25000 */
        tick_at(d, 15000);         /* the clock steps back 10 s */
        feed_one(d, 0, 10001, 3);  /* s0: last_arrival 15000 */
        tick_at(d, 25500);
        /* s0 became active again after s1 (at 15000), so s1 is the last
         * in activity order; silent only 500 ms, it stays, and s2 is
         * refused although s0's last_arrival is the smallest. */
        feed_one(d, 2, 10000, 4);
        CU_ASSERT_EQUAL(d->mismatch_ops, 0);
        diff_close(d);
}

/* ------------------------------------------------- the reference, by hand */

/* A few cases worked out on paper from docs/windows.md, so a wrong
 * reference cannot agree with a wrong engine unnoticed. */
static struct results self_out;

static enum tg_window_verdict self_add(struct ref *ref, const char *id, int64_t ts, double v) {
        struct tg_reading r;

        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, id, strlen(id));
        r.ts_ms = ts;
        tg_reading_add_field(&r, "temp", 4, v);
        return ref_add(ref, &r);
}

static void test_reference_by_hand(void) {
        struct tg_window_conf c = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                                   .max_future_ms = 300000, .max_sensors = 4,
                                   .max_fields = 4, .max_field_names = 8};
        struct ref ref;

        /* 3.4: [0, 10000) closes when the watermark reaches 12000. */
        ref_init(&ref, &c, 4, 100000, &self_out);
        self_out.n = 0;
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 5000, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 11999, 2), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 9999, 3), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(self_out.n, 0);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 12000, 4), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 1);
        CU_ASSERT_EQUAL(self_out.v[0].start, 0);
        CU_ASSERT_EQUAL(self_out.v[0].count, 2);
        CU_ASSERT_EQUAL(self_out.v[0].fields[0].last, 3.0);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 9999, 5), TG_WINDOW_LATE);
        CU_ASSERT_EQUAL(self_out.n, 1);
        /* 1.3 */
        CU_ASSERT_EQUAL(self_add(&ref, "s1", 400000, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(self_add(&ref, "s1", 400001, 1), TG_WINDOW_FUTURE);
        /* 6.3: s0's late reading is reported with its next final result. */
        ref_flush(&ref);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 3);
        CU_ASSERT_EQUAL(self_out.v[1].sensor, 0);
        CU_ASSERT_EQUAL(self_out.v[1].late, 1);
        CU_ASSERT_EQUAL(self_out.v[2].late, 0);
        ref_free(&ref);

        /* 1.2: 0 and -1 are out of range; 2.2: 1 and 9999 lie in
         * [0, 10000); 6.2: first/last ties. */
        c.grace_ms = 0;
        ref_init(&ref, &c, 4, 0, &self_out);
        self_out.n = 0;
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 0, 9), TG_WINDOW_OUT_OF_RANGE);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", -1, 9), TG_WINDOW_OUT_OF_RANGE);
        self_add(&ref, "s0", 1, 1);
        self_add(&ref, "s0", 1, 2);
        self_add(&ref, "s0", 9999, 3);
        self_add(&ref, "s0", 9999, 4);
        self_add(&ref, "s0", 10000, 5);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 1);
        CU_ASSERT_EQUAL(self_out.v[0].start, 0);
        CU_ASSERT_EQUAL(self_out.v[0].count, 4);
        CU_ASSERT_EQUAL(self_out.v[0].fields[0].first, 1.0);
        CU_ASSERT_EQUAL(self_out.v[0].fields[0].last, 4.0);
        CU_ASSERT_EQUAL(self_out.v[0].fields[0].mean, 2.5);
        CU_ASSERT_EQUAL(self_out.v[0].fields[0].m2, 5.0);
        ref_free(&ref);

        /* 2.3, 4.2: hopping; a reading late for one window still counts in
         * the other, and is a late reading. */
        c.hop_ms = 5000;
        ref_init(&ref, &c, 4, 100000, &self_out);
        self_out.n = 0;
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 7000, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 12000, 2), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 1);
        CU_ASSERT_EQUAL(self_out.v[0].start, 0);
        CU_ASSERT_EQUAL(self_add(&ref, "s0", 8000, 3), TG_WINDOW_LATE);
        ref_flush(&ref);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 3);
        CU_ASSERT_EQUAL(self_out.v[1].start, 5000);
        CU_ASSERT_EQUAL(self_out.v[1].count, 3);
        CU_ASSERT_EQUAL(self_out.v[1].late, 1);
        CU_ASSERT_EQUAL(self_out.v[2].start, 10000);
        CU_ASSERT_EQUAL(self_out.v[2].count, 1);
        ref_free(&ref);

        /* 5.2, 5.4, 7.2 */
        c.hop_ms = 10000;
        c.idle_timeout_ms = 30000;
        c.update_interval_ms = 1000;
        c.max_sensors = 1;
        c.evict_after_ms = 5000;
        ref_init(&ref, &c, 4, 100000, &self_out);
        self_out.n = 0;
        self_add(&ref, "s0", 95000, 1);
        ref_tick(&ref, 100500);          /* never updated: running result */
        CU_ASSERT_EQUAL_FATAL(self_out.n, 1);
        CU_ASSERT_EQUAL(self_out.v[0].final, 0);
        self_add(&ref, "s0", 96000, 1);
        ref_tick(&ref, 101000);          /* gained one, but only 500 ms ago */
        CU_ASSERT_EQUAL(self_out.n, 1);
        ref_tick(&ref, 101500);          /* 1000 ms since the last: again */
        CU_ASSERT_EQUAL(self_out.n, 2);
        ref_tick(&ref, 103000);          /* nothing new */
        CU_ASSERT_EQUAL(self_out.n, 2);
        CU_ASSERT_EQUAL(self_add(&ref, "s1", 96000, 1), TG_WINDOW_TABLE_FULL);
        ref_tick(&ref, 105500);          /* s0 silent 5000 ms since 100500 */
        CU_ASSERT_EQUAL(self_add(&ref, "s1", 96000, 1), TG_WINDOW_ACCEPTED);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 3);
        CU_ASSERT_EQUAL(self_out.v[2].sensor, 0);
        CU_ASSERT_EQUAL(self_out.v[2].final, 1);
        CU_ASSERT_EQUAL(self_out.v[2].count, 2);
        CU_ASSERT_EQUAL(ref_sensor_late(&ref, 0), -1);
        CU_ASSERT_EQUAL(ref.counters.evicted, 1);
        ref_tick(&ref, 105500 + 29999);
        CU_ASSERT_EQUAL(self_out.n, 4); /* s1's running result, no idle close yet */
        ref_tick(&ref, 105500 + 30000);
        CU_ASSERT_EQUAL_FATAL(self_out.n, 5);
        CU_ASSERT_EQUAL(self_out.v[4].final, 1);
        CU_ASSERT_EQUAL(ref.counters.idle_closes, 1);
        CU_ASSERT_EQUAL(self_add(&ref, "s1", 99999, 1), TG_WINDOW_LATE);
        ref_free(&ref);
        free(self_out.v);
        self_out = (struct results){0};
}

int main(void) {
        static const struct tg_test tests[] = {
                {"reference agrees with hand-worked cases", test_reference_by_hand},
                {"differential: tumbling, per-sensor watermark", test_tumbling},
                {"differential: hopping W 10 s H 2 s, per-sensor", test_hopping},
                {"differential: tumbling, global watermark", test_global},
                {"differential: update mode", test_update},
                {"differential: small table, eviction and table full", test_eviction},
                {"differential: hopping, global, update, eviction together", test_mixed},
                {"differential: low end of the range, 64 windows per reading", test_range_low},
                {"differential: high end of the range, grace 0", test_range_high},
                {"differential: eviction churn in a large table", test_churn},
                {"differential: wall clock stepping back", test_clock_back},
                {"differential: batches, 40-byte ids", test_batch_long_ids},
                {"differential: batches with eviction, hopping, global, update",
                 test_batch_mixed},
                {"differential: batches, churn, 28-byte ids", test_batch_churn},
                {"7.2 reproduction: eviction after the clock steps back",
                 test_eviction_after_clock_steps_back},
        };

        return TG_TEST_RUN("window differential", tests);
}
