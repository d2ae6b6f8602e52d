/* test_downsample.c - report by exception and swinging door against docs/downsample.md, clause by clause and over a million readings. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "downsample.h"
#include "window.h"
#include "tg_test.h"

/*
 * Two kinds of reference, both written from docs/downsample.md alone:
 *
 *  - checkers of the guarantees (3.2, 4.4, 4.5): given the readings and
 *    what was sent, is every reading within the deviation of the value
 *    last sent (exception), of the line through the kept points (swinging
 *    door), and is no silence longer than allowed? They know nothing of
 *    doors or anchors.
 *  - plain re-implementations of 3.1 and 4.2/4.3 that keep every held-back
 *    reading in an array and recompute the doors from scratch each time,
 *    compared point for point with the compressor.
 *
 * The streams (noise, ramps, steps, spikes, sine) come from a seeded
 * generator, with irregular gaps and now and then a silence longer than M.
 */

#define SHAPE_READINGS 250000 /* x 5 shapes: 1.25 M readings per mode */

/* --------------------------------------------------------------- streams */

struct rng {
        uint64_t s;
};

static double uniform(struct rng *r) {
        return (double)(tg_splitmix64(&r->s) >> 11) * 0x1.0p-53;
}

static double gauss(struct rng *r) {
        double u = 1.0 - uniform(r), w = uniform(r);

        return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * w);
}

enum shape { NOISE, RAMPS, STEPS, SPIKES, SINE, NSHAPES };
static const char *const shape_names[NSHAPES] = {"noise", "ramps", "steps", "spikes", "sine"};

struct pt {
        int64_t t;
        double v;
};

/* @p n readings of one series: gaps of 50..150 ms, and one in 2000 a
 * silence of 1..5 min. */
static struct pt *stream(enum shape s, size_t n, uint64_t seed) {
        struct pt *p = malloc(n * sizeof(*p));
        struct rng r = {seed};
        double level = 50, slope = 0;
        int64_t t = 1700000000000;
        size_t i, seg = 0;

        for (i = 0; i < n; i++) {
                double v;

                t += 50 + (int64_t)(uniform(&r) * 100);
                if (uniform(&r) < 0.0005)
                        t += 60000 + (int64_t)(uniform(&r) * 240000);
                switch (s) {
                case NOISE:
                        v = 20 + gauss(&r);
                        break;
                case RAMPS:
                        if (!seg--) {
                                seg = 100 + (size_t)(uniform(&r) * 5000);
                                slope = (uniform(&r) - 0.5) * 0.2;
                        }
                        level += slope;
                        v = level + 0.01 * gauss(&r);
                        break;
                case STEPS:
                        if (uniform(&r) < 0.002)
                                level = uniform(&r) * 100;
                        v = level + 0.05 * gauss(&r);
                        break;
                case SPIKES:
                        v = 50 + 0.02 * gauss(&r) + (uniform(&r) < 0.005 ? 30 * gauss(&r) : 0);
                        break;
                default:
                        v = 10 * sin(2 * M_PI * (double)(t % 600000) / 600000.0) +
                            0.05 * gauss(&r);
                        break;
                }
                p[i] = (struct pt){t, v};
        }
        return p;
}

/* ------------------------------------------------------ the compressor */

static tg_downsample_t *table(uint32_t sensors, uint32_t fields) {
        char err[128];
        tg_downsample_t *d = tg_downsample_new(sensors, fields, err, sizeof(err));

        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        return d;
}

static void reading(struct tg_reading *r, const char *sensor, int64_t t, const char *field,
                    double v) {
        tg_reading_clear(r);
        tg_reading_set_sensor(r, sensor, strlen(sensor));
        r->ts_ms = t;
        tg_reading_add_field(r, field, strlen(field), v);
}

/* Feed one series; what was sent goes to @p out (room for n + 1). */
static size_t run_series(tg_downsample_t *d, const struct pt *in, size_t n,
                         const struct tg_raw_rule *rule, struct pt *out) {
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        struct tg_reading r;
        size_t i, k, m = 0;

        for (i = 0; i < n; i++) {
                reading(&r, "s", in[i].t, "v", in[i].v);
                k = tg_downsample_add(d, &r, rule, p);
                for (size_t j = 0; j < k; j++) {
                        CU_ASSERT(p[j].mode == rule->mode && !p[j].out_of_order);
                        out[m++] = (struct pt){p[j].ts, p[j].value};
                }
        }
        return m;
}

/* ------------------------------------------ checkers of the guarantees */

/* Violations found; reported as failures unless a test expects them. */
static unsigned violations;
static int expect_violations;

#define violation(...)                                                              \
        do {                                                                        \
                violations++;                                                       \
                if (!expect_violations)                                             \
                        tg_check(0, __LINE__, __VA_ARGS__);                         \
        } while (0)

/* 4.4/4.5: every reading up to the last kept point within E of the line;
 * kept times strictly increasing, each a reading's; a gap longer than M
 * has no reading inside. Returns the readings checked. */
static size_t check_line(const struct pt *in, size_t n, const struct pt *kept, size_t nk,
                         double E, int64_t M, const char *what) {
        size_t i, k = 0, checked = 0, bad = 0;

        if (!(nk > 0 && kept[0].t == in[0].t && kept[0].v == in[0].v))
                violation("%s: the first reading is not kept as it is (2.1)", what);
        for (i = 0; i < n && bad < 5; i++) {
                double line;

                if (in[i].t > kept[nk - 1].t)
                        break;
                while (kept[k].t < in[i].t)
                        k++;
                if (kept[k].t == in[i].t) {
                        line = kept[k].v;
                } else {
                        const struct pt *a = &kept[k - 1], *b = &kept[k];

                        line = a->v + (b->v - a->v) * (double)(in[i].t - a->t) /
                                              (double)(b->t - a->t);
                        if (M && b->t - a->t > M) {
                                bad++;
                                violation("%s: reading at %lld inside a silence "
                                         "of %lld ms > M (4.5)", what, (long long)in[i].t,
                                         (long long)(b->t - a->t));
                        }
                }
                checked++;
                if (!(fabs(line - in[i].v) <= E)) {
                        bad++;
                        violation("%s: reading %zu at %lld is %.17g, the line %.17g: "
                                 "%.3g > E = %g (4.4)", what, i, (long long)in[i].t, in[i].v,
                                 line, fabs(line - in[i].v), E);
                }
        }
        for (k = 1; k < nk; k++)
                if (kept[k].t <= kept[k - 1].t) {
                        violation("%s: kept times not increasing", what);
                        break;
                }
        return checked;
}

/* 3.2: every reading not sent is within E of the value last sent and less
 * than M after it; everything sent is a reading, unchanged. */
static void check_exception(const struct pt *in, size_t n, const struct pt *sent, size_t ns,
                            double E, int64_t M, const char *what) {
        size_t i, k = 0, bad = 0;

        for (i = 0; i < n && bad < 5; i++) {
                if (k < ns && sent[k].t == in[i].t) {
                        if (sent[k].v != in[i].v) {
                                bad++;
                                violation("%s: sent value changed", what);
                        }
                        k++;
                        continue;
                }
                if (!k || fabs(in[i].v - sent[k - 1].v) > E ||
                    (M && in[i].t - sent[k - 1].t >= M)) {
                        bad++;
                        violation("%s: reading %zu (%.17g at %lld) not sent, "
                                 "last sent %.17g at %lld (3.2)", what, i, in[i].v,
                                 (long long)in[i].t, k ? sent[k - 1].v : 0.0,
                                 k ? (long long)sent[k - 1].t : 0LL);
                }
        }
        if (k != ns)
                violation("%s: %zu sent, %zu matched readings", what, ns, k);
}

/* ------------------------------------------------ plain re-implementations */

/* 3.1, as the text reads. */
static size_t ref_exception(const struct pt *in, size_t n, double E, int64_t M, struct pt *out) {
        size_t i, m = 0;

        for (i = 0; i < n; i++)
                if (!m || fabs(in[i].v - out[m - 1].v) > E ||
                    (M && in[i].t - out[m - 1].t >= M))
                        out[m++] = in[i];
        return m;
}

/* 4.2/4.3, keeping every reading held back since the anchor and computing
 * the doors from them each time. */
struct ref_door {
        struct pt anchor;
        struct pt *held;          /* held back since the anchor; the last is the held point */
        size_t nheld;
        double E;
        int64_t M;
};

static void ref_doors(const struct ref_door *s, const struct pt *extra, double *lo, double *hi) {
        double e = s->E * (1.0 - 0x1p-30);
        size_t i;

        *lo = -INFINITY;
        *hi = INFINITY;
        for (i = 0; i <= s->nheld; i++) {
                const struct pt *p = i < s->nheld ? &s->held[i] : extra;
                double dt;

                if (!p)
                        break;
                dt = (double)(p->t - s->anchor.t);
                *lo = fmax(*lo, (p->v - e - s->anchor.v) / dt);
                *hi = fmin(*hi, (p->v + e - s->anchor.v) / dt);
        }
}

static void ref_keep_held(struct ref_door *s, struct pt *out, size_t *m) {
        const struct pt *h = &s->held[s->nheld - 1];
        double lo, hi, dt = (double)(h->t - s->anchor.t), slope = (h->v - s->anchor.v) / dt;
        struct pt k = *h;

        ref_doors(s, NULL, &lo, &hi);
        if (!(slope >= lo && slope <= hi))
                k.v = s->anchor.v + (slope < lo ? lo : hi) * dt;
        out[(*m)++] = k;
        s->anchor = k;
        s->nheld = 0;
}

static size_t ref_swinging_door(const struct pt *in, size_t n, double E, int64_t M,
                                struct pt *out) {
        struct ref_door s = {.held = malloc(n * sizeof(struct pt)), .E = E, .M = M};
        size_t i, m = 0;

        for (i = 0; i < n; i++) {
                const struct pt *p = &in[i];
                double lo, hi;

                if (!i) {
                        s.anchor = out[m++] = *p;
                        continue;
                }
                if (s.nheld && M && p->t - s.anchor.t >= M)
                        ref_keep_held(&s, out, &m);
                if (s.nheld) {
                        ref_doors(&s, p, &lo, &hi);
                        if (lo <= hi) {
                                s.held[s.nheld++] = *p;
                                continue;
                        }
                        ref_keep_held(&s, out, &m);
                }
                if (M && p->t - s.anchor.t >= M)
                        s.anchor = out[m++] = *p;
                else
                        s.held[s.nheld++] = *p;
        }
        free(s.held);
        return m;
}

static void same_points(const struct pt *a, size_t na, const struct pt *b, size_t nb,
                        const char *what) {
        size_t i;

        tg_check(na == nb, __LINE__, "%s: %zu points, the reference %zu", what, na, nb);
        for (i = 0; i < na && i < nb; i++)
                if (a[i].t != b[i].t || !tg_same_bits(a[i].v, b[i].v)) {
                        tg_check(0, __LINE__, "%s: point %zu is %.17g at %lld, the "
                                 "reference's %.17g at %lld", what, i, a[i].v, (long long)a[i].t,
                                 b[i].v, (long long)b[i].t);
                        return;
                }
}

/* ------------------------------------------------------------- the tests */

static const double shape_E[NSHAPES] = {0.5, 0.5, 0.5, 0.5, 0.5};
#define M_MS 60000

static void test_guarantee_swinging_door(void) {
        size_t total = 0, kept_total = 0;
        int s;

        for (s = 0; s < NSHAPES; s++) {
                struct pt *in = stream((enum shape)s, SHAPE_READINGS, 100 + (uint64_t)s);
                struct pt *kept = malloc((SHAPE_READINGS + 1) * sizeof(*kept));
                struct pt *ref = malloc((SHAPE_READINGS + 1) * sizeof(*ref));
                struct tg_raw_rule rule = {TG_RAW_SWINGING_DOOR, shape_E[s], M_MS};
                tg_downsample_t *d = table(1, 1);
                size_t nk = run_series(d, in, SHAPE_READINGS, &rule, kept), checked, nr;

                checked = check_line(in, SHAPE_READINGS, kept, nk, shape_E[s], M_MS,
                                     shape_names[s]);
                /* only the readings after the last kept point are unchecked (4.7) */
                tg_check(checked + 700 > SHAPE_READINGS, __LINE__, "%s: %zu readings checked",
                         shape_names[s], checked);
                nr = ref_swinging_door(in, SHAPE_READINGS, shape_E[s], M_MS, ref);
                same_points(kept, nk, ref, nr, shape_names[s]);
                total += checked;
                kept_total += nk;
                /* it compresses: smooth shapes to a few per cent */
                if (s != NOISE && s != SPIKES)
                        tg_check(nk < SHAPE_READINGS / 20, __LINE__, "%s: kept %zu of %d",
                                 shape_names[s], nk, SHAPE_READINGS);
                tg_downsample_destroy(d);
                free(in);
                free(kept);
                free(ref);
        }
        CU_ASSERT(total >= 1000000);
        printf("\n    swinging door: %zu readings within E of the line, %zu kept ", total,
               kept_total);
}

static void test_guarantee_exception(void) {
        size_t total = 0;
        int s;

        for (s = 0; s < NSHAPES; s++) {
                struct pt *in = stream((enum shape)s, SHAPE_READINGS, 200 + (uint64_t)s);
                struct pt *sent = malloc(SHAPE_READINGS * sizeof(*sent));
                struct pt *ref = malloc(SHAPE_READINGS * sizeof(*ref));
                struct tg_raw_rule rule = {TG_RAW_EXCEPTION, shape_E[s], M_MS};
                tg_downsample_t *d = table(1, 1);
                size_t ns = run_series(d, in, SHAPE_READINGS, &rule, sent);

                check_exception(in, SHAPE_READINGS, sent, ns, shape_E[s], M_MS, shape_names[s]);
                same_points(sent, ns, ref, ref_exception(in, SHAPE_READINGS, shape_E[s], M_MS, ref),
                            shape_names[s]);
                total += SHAPE_READINGS;
                tg_downsample_destroy(d);
                free(in);
                free(sent);
                free(ref);
        }
        CU_ASSERT(total >= 1000000);
}

/* The checkers must be able to fail: a kept point moved by 2E, a sent
 * value dropped. */
static void test_checkers_fail(void) {
        struct pt *in = stream(SINE, 5000, 7), *kept = malloc(5001 * sizeof(*kept));
        struct tg_raw_rule rule = {TG_RAW_SWINGING_DOOR, 0.5, M_MS};
        tg_downsample_t *d = table(1, 1);
        size_t nk = run_series(d, in, 5000, &rule, kept);
        struct pt *sent = malloc(5000 * sizeof(*sent));
        struct tg_raw_rule exc = {TG_RAW_EXCEPTION, 0.5, M_MS};
        size_t ns;

        expect_violations = 1;
        violations = 0;
        check_line(in, 5000, kept, nk, 0.5, M_MS, "as kept");
        CU_ASSERT_EQUAL(violations, 0);
        kept[nk / 2].v += 1.0;
        check_line(in, 5000, kept, nk, 0.5, M_MS, "moved");
        CU_ASSERT(violations > 0);
        violations = 0;
        tg_downsample_destroy(d);
        d = table(1, 1);
        ns = run_series(d, in, 5000, &exc, sent);
        check_exception(in, 5000, sent, ns, 0.5, M_MS, "as sent");
        CU_ASSERT_EQUAL(violations, 0);
        memmove(&sent[1], &sent[2], (ns - 2) * sizeof(*sent));
        check_exception(in, 5000, sent, ns - 1, 0.5, M_MS, "dropped");
        CU_ASSERT(violations > 0);
        expect_violations = 0;
        free(sent);
        tg_downsample_destroy(d);
        free(in);
        free(kept);
}

static void test_first_value_sent(void) { /* 2.1 */
        struct tg_raw_rule rules[2] = {{TG_RAW_SWINGING_DOOR, 1, 0}, {TG_RAW_EXCEPTION, 1, 0}};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        tg_downsample_t *d = table(4, 2);
        struct tg_reading r;

        reading(&r, "a", 1000, "x", 5);
        tg_reading_add_field(&r, "y", 1, 7);
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, rules, p), 2);
        CU_ASSERT(p[0].field == 0 && p[0].mode == TG_RAW_SWINGING_DOOR && p[0].ts == 1000 &&
                  p[0].value == 5);
        CU_ASSERT(p[1].field == 1 && p[1].mode == TG_RAW_EXCEPTION && p[1].value == 7);
        /* in the band: nothing */
        reading(&r, "a", 2000, "x", 5.5);
        tg_reading_add_field(&r, "y", 1, 7.5);
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, rules, p), 0);
        tg_downsample_destroy(d);
}

static void test_out_of_order(void) { /* 2.2, 2.3 */
        struct tg_raw_rule rule = {TG_RAW_SWINGING_DOOR, 1, 0};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        tg_downsample_t *d = table(1, 1);
        struct tg_downsample_counters c;
        struct tg_reading r;

        reading(&r, "a", 1000, "x", 0);
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, &rule, p), 1);
        reading(&r, "a", 2000, "x", 0.5);
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, &rule, p), 0); /* held */
        /* before the newest, and at the same ms: sent as they are, marked */
        reading(&r, "a", 1500, "x", 100);
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, &rule, p), 1);
        CU_ASSERT(p[0].out_of_order && p[0].ts == 1500 && p[0].value == 100);
        reading(&r, "a", 2000, "x", -100);
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, &rule, p), 1);
        CU_ASSERT(p[0].out_of_order && p[0].ts == 2000 && p[0].value == -100);
        /* and changed nothing: the next in-order reading sees the old doors */
        reading(&r, "a", 3000, "x", 1.0);
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, &rule, p), 0);
        reading(&r, "a", 4000, "x", 10.0); /* breaks the doors: keeps (3000, 1.0) */
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, &rule, p), 1);
        CU_ASSERT(!p[0].out_of_order && p[0].ts == 3000 && p[0].value == 1.0);
        tg_downsample_counters(d, &c);
        CU_ASSERT_EQUAL(c.out_of_order, 2);
        tg_downsample_destroy(d);
}

static void test_absent_field(void) { /* 2.4 */
        struct tg_raw_rule rules[2] = {{TG_RAW_EXCEPTION, 1, 0}, {TG_RAW_EXCEPTION, 1, 0}};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        tg_downsample_t *d = table(1, 2);
        struct tg_reading r;

        reading(&r, "a", 1000, "x", 0);
        tg_reading_add_field(&r, "y", 1, 0);
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, rules, p), 2);
        reading(&r, "a", 2000, "y", 5); /* y alone, as field 0 of this reading */
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, rules, p), 1);
        CU_ASSERT(p[0].field == 0 && p[0].value == 5);
        reading(&r, "a", 3000, "x", 0.5); /* x's series still anchored at 0 */
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, rules, p), 0);
        tg_downsample_destroy(d);
}

static void test_no_room(void) { /* 2.5 */
        struct tg_raw_rule rules[2] = {{TG_RAW_EXCEPTION, 1, 0}, {TG_RAW_EXCEPTION, 1, 0}};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        tg_downsample_t *d = table(1, 1);
        struct tg_downsample_counters c;
        struct tg_reading r;

        reading(&r, "a", 1000, "x", 0);
        tg_reading_add_field(&r, "y", 1, 0);
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, rules, p), 2);
        CU_ASSERT(p[0].mode == TG_RAW_EXCEPTION && p[1].mode == TG_RAW_ALL);
        reading(&r, "b", 1000, "x", 0); /* a second sensor: no room */
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, rules, p), 1);
        CU_ASSERT(p[0].mode == TG_RAW_ALL);
        reading(&r, "b", 2000, "x", 0); /* every value of it, sent whole */
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, rules, p), 1);
        tg_downsample_counters(d, &c);
        CU_ASSERT_EQUAL(c.untracked, 3);
        CU_ASSERT_EQUAL(c.sensors, 1);
        tg_downsample_destroy(d);
}

static void test_all_and_none(void) { /* 1.2 */
        struct tg_raw_rule rules[2] = {{TG_RAW_ALL, 0, 0}, {TG_RAW_NONE, 0, 0}};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        tg_downsample_t *d = table(1, 1);
        struct tg_reading r;
        int i;

        for (i = 0; i < 3; i++) {
                reading(&r, "a", 1000 + i, "x", 1);
                tg_reading_add_field(&r, "y", 1, 2);
                CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, rules, p), 1);
                CU_ASSERT(p[0].field == 0 && p[0].mode == TG_RAW_ALL);
        }
        tg_downsample_destroy(d);
}

static void test_exception_edges(void) { /* 3.1 */
        static const struct pt in[] = {{1000, 10}, {2000, 11}, {3000, 11.0000001}, {4000, 9},
                                       {5000, 8.999999}, {64000, 9}, {65000, 9}, {124000, 9}};
        /* 11 is exactly E from 10: not sent; 11.0000001 is further: sent; 9 is 2 from it:
         * sent; 8.999999 is within E; 9 at 64000 is M after the 9 sent at 4000: sent;
         * 9 at 124000 is M after that one: sent. */
        struct pt out[8];
        struct tg_raw_rule rule = {TG_RAW_EXCEPTION, 1, 60000};
        tg_downsample_t *d = table(1, 1);
        size_t n = run_series(d, in, 8, &rule, out);

        CU_ASSERT_EQUAL_FATAL(n, 5);
        CU_ASSERT(out[0].t == 1000 && out[1].t == 3000 && out[2].t == 4000 && out[3].t == 64000 &&
                  out[4].t == 124000);
        tg_downsample_destroy(d);
}

static void test_clamped_keep(void) { /* 4.3: the example in the text */
        static const struct pt in[] = {{0 + 1, 0}, {1000 + 1, 1}, {10000 + 1, -0.5}, {11000 + 1, 50}};
        struct pt out[4];
        struct tg_raw_rule rule = {TG_RAW_SWINGING_DOOR, 1, 0};
        tg_downsample_t *d = table(1, 1);
        size_t n = run_series(d, in, 4, &rule, out);

        CU_ASSERT_EQUAL_FATAL(n, 2);
        /* the held -0.5 at 10001 is kept on the door lo = 0: value 0, not -0.5 */
        CU_ASSERT_EQUAL(out[1].t, 10001);
        CU_ASSERT(fabs(out[1].v - 0.0) < 1e-6); /* lo is (1 - E')/1000, a hair above 0 */
        CU_ASSERT(fabs(out[1].v - -0.5) <= 1.0);
        check_line(in, 3, out, n, 1.0, 0, "4.3 example");
        tg_downsample_destroy(d);
}

static void test_max_silence(void) { /* 4.5 */
        struct pt in[2000], out[2001];
        struct tg_raw_rule rule = {TG_RAW_SWINGING_DOOR, 1, 10000};
        tg_downsample_t *d = table(1, 1);
        size_t i, n;

        for (i = 0; i < 2000; i++) /* constant, a reading a second, one gap of 100 s */
                in[i] = (struct pt){1000 * (int64_t)i + 1 + (i >= 1000 ? 100000 : 0), 3};
        n = run_series(d, in, 2000, &rule, out);
        for (i = 1; i < n; i++)
                tg_check(out[i].t - out[i - 1].t <= 10000 ||
                                 (out[i - 1].t == 999001 && out[i].t == 1100001),
                         __LINE__, "gap %lld..%lld", (long long)out[i - 1].t, (long long)out[i].t);
        CU_ASSERT(n >= 190 && n <= 230);
        check_line(in, 2000, out, n, 1, 10000, "constant");
        tg_downsample_destroy(d);
}

/* A stream of 3 sensors x 3 fields under mixed rules, with out-of-order
 * readings, fed reading by reading; what comes out, flattened. */
struct out_rec {
        char sensor[4];
        struct tg_raw_point p;
};

static const struct tg_raw_rule mixed[3] = {
        {TG_RAW_SWINGING_DOOR, 0.3, 20000}, {TG_RAW_EXCEPTION, 0.5, 30000}, {TG_RAW_ALL, 0, 0}};

static void mixed_reading(struct tg_reading *r, size_t i) {
        static const char *const f[3] = {"t", "h", "p"};
        char id[4] = {'s', (char)('0' + i % 3), 0};
        uint64_t st = i * 7919;
        double noise = (double)(tg_splitmix64(&st) % 1000) / 1000.0;
        int64_t t = 1700000000000 + (int64_t)(i / 3) * 500 - (i % 17 == 0 ? 3000 : 0);
        int k;

        tg_reading_clear(r);
        tg_reading_set_sensor(r, id, 2);
        r->ts_ms = t;
        for (k = 0; k < 3; k++)
                tg_reading_add_field(r, f[k], strlen(f[k]),
                                     sin((double)i / 50.0 + k) * 5 + noise);
}

static size_t feed(tg_downsample_t *d, size_t from, size_t to, struct out_rec *out) {
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        struct tg_reading r;
        size_t i, k, n = 0;

        for (i = from; i < to; i++) {
                mixed_reading(&r, i);
                k = tg_downsample_add(d, &r, mixed, p);
                for (size_t j = 0; j < k; j++) {
                        memset(&out[n], 0, sizeof(out[n]));
                        memcpy(out[n].sensor, r.sensor, 2);
                        out[n++].p = p[j];
                }
        }
        return n;
}

static int same_out(const struct out_rec *a, const struct out_rec *b, size_t n) {
        size_t i;

        for (i = 0; i < n; i++)
                if (strcmp(a[i].sensor, b[i].sensor) || a[i].p.ts != b[i].p.ts ||
                    a[i].p.field != b[i].p.field || a[i].p.mode != b[i].p.mode ||
                    a[i].p.out_of_order != b[i].p.out_of_order ||
                    !tg_same_bits(a[i].p.value, b[i].p.value))
                        return 0;
        return 1;
}

#define MIXED 30000

static void test_restart_same_output(void) { /* 5.1 */
        struct out_rec *a = malloc(MIXED * 6 * sizeof(*a)), *b = malloc(MIXED * 6 * sizeof(*b));
        size_t na, nb, cut;
        char err[128];

        {
                tg_downsample_t *d = table(8, 3);

                na = feed(d, 0, MIXED, a);
                tg_downsample_destroy(d);
        }
        for (cut = 1; cut < MIXED; cut = cut * 3 + 7) {
                tg_downsample_t *d = table(8, 3), *d2 = table(8, 3);
                void *snap;
                size_t len;

                nb = feed(d, 0, cut, b);
                CU_ASSERT_EQUAL_FATAL(tg_downsample_snapshot(d, &snap, &len), 0);
                tg_downsample_destroy(d);
                CU_ASSERT_EQUAL_FATAL(tg_downsample_restore(d2, snap, len, err, sizeof(err)), 0);
                free(snap);
                nb += feed(d2, cut, MIXED, b + nb);
                tg_check(nb == na && same_out(a, b, na), __LINE__,
                         "cut at %zu: %zu points, uninterrupted %zu", cut, nb, na);
                tg_downsample_destroy(d2);
        }
        CU_ASSERT(na > 1000 && na < MIXED * 3);
        free(a);
        free(b);
}

static int64_t fixed_now(void *opaque) {
        (void)opaque;
        return 1700000000000;
}

static void no_emit(void *opaque, const struct tg_window_result *w) {
        (void)opaque;
        (void)w;
}

static int attach(void *opaque, const void *p, size_t len, char *errstr, size_t size) {
        return tg_downsample_restore(opaque, p, len, errstr, size);
}

/* 5.1/5.2: through the window state file, as the checkpoint does it. */
static void test_state_file(void) {
        struct tg_window_conf wc = {.size_ms = 10000, .hop_ms = 10000, .grace_ms = 0,
                                    .max_future_ms = INT64_C(1) << 40, .max_sensors = 8,
                                    .max_fields = 3, .max_field_names = 8};
        struct tg_clock clock = {fixed_now, NULL};
        char path[] = "/tmp/tg-downsample-XXXXXX", err[128];
        struct out_rec *a = malloc(MIXED * 6 * sizeof(*a)), *b = malloc(MIXED * 6 * sizeof(*b));
        tg_window_engine_t *e = tg_window_engine_new(&wc, &clock, no_emit, NULL, err, sizeof(err));
        tg_downsample_t *d = table(8, 3);
        size_t na, nb;
        uint64_t pos = 0;
        void *snap;
        size_t len;
        int fd = mkstemp(path);
        FILE *f;
        long size;
        unsigned char byte;

        CU_ASSERT_FATAL(fd >= 0 && e);
        close(fd);
        na = feed(d, 0, MIXED, a);
        tg_downsample_destroy(d);

        d = table(8, 3);
        nb = feed(d, 0, MIXED / 2, b);
        CU_ASSERT_EQUAL_FATAL(tg_downsample_snapshot(d, &snap, &len), 0);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save_with(e, path, 42, snap, len, NULL), 0);
        free(snap);
        tg_downsample_destroy(d);
        d = table(8, 3);
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_load_with(e, path, &pos, attach, d, err,
                                                         sizeof(err)), 0);
        CU_ASSERT_EQUAL(pos, 42);
        nb += feed(d, MIXED / 2, MIXED, b + nb);
        CU_ASSERT(nb == na && same_out(a, b, na));

        /* 5.2: one byte of the attachment changed fails the file's CRC */
        f = fopen(path, "r+b");
        CU_ASSERT_FATAL(f != NULL);
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fseek(f, size - 20, SEEK_SET);
        CU_ASSERT_EQUAL(fread(&byte, 1, 1, f), 1);
        byte ^= 0x40;
        fseek(f, size - 20, SEEK_SET);
        fwrite(&byte, 1, 1, f);
        fclose(f);
        CU_ASSERT_EQUAL(tg_window_engine_load_with(e, path, &pos, attach, d, err, sizeof(err)),
                        -EINVAL);
        /* 5.2: a file without an attachment empties the table */
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save(e, path, 7, NULL), 0);
        feed(d, 0, 10, b);
        CU_ASSERT_EQUAL(tg_window_engine_load_with(e, path, &pos, attach, d, err, sizeof(err)), 0);
        {
                struct tg_downsample_counters c;

                tg_downsample_counters(d, &c);
                CU_ASSERT_EQUAL(c.sensors, 0);
        }
        /* an attachment that is not a snapshot rejects the file */
        CU_ASSERT_EQUAL_FATAL(tg_window_engine_save_with(e, path, 7, "garbage!", 8, NULL), 0);
        CU_ASSERT_EQUAL(tg_window_engine_load_with(e, path, &pos, attach, d, err, sizeof(err)),
                        -EINVAL);
        unlink(path);
        tg_downsample_destroy(d);
        tg_window_engine_destroy(e);
        free(a);
        free(b);
}

static void test_rule_change(void) { /* 5.3 */
        struct tg_raw_rule old = {TG_RAW_SWINGING_DOOR, 1, 0}, new = {TG_RAW_SWINGING_DOOR, 2, 0};
        struct tg_raw_point p[TG_DOWNSAMPLE_POINTS_MAX];
        tg_downsample_t *d = table(1, 1);
        struct tg_downsample_counters c;
        struct tg_reading r;

        reading(&r, "a", 1000, "x", 0);
        tg_downsample_add(d, &r, &old, p);
        reading(&r, "a", 2000, "x", 0.5);
        CU_ASSERT_EQUAL(tg_downsample_add(d, &r, &old, p), 0);
        reading(&r, "a", 3000, "x", 0.6);
        CU_ASSERT_EQUAL_FATAL(tg_downsample_add(d, &r, &new, p), 2);
        CU_ASSERT(p[0].ts == 2000 && p[0].value == 0.5); /* the held point, under the old rule */
        CU_ASSERT(p[1].ts == 3000 && p[1].value == 0.6); /* and a new start */
        tg_downsample_counters(d, &c);
        CU_ASSERT_EQUAL(c.rule_changes, 1);
        tg_downsample_destroy(d);
}

static void test_rules_parse(void) { /* 1.1, 1.3 */
        struct tg_raw_rules rules;
        struct tg_raw_rule out[3];
        struct tg_reading r;
        char err[200];
        double v;

        CU_ASSERT_EQUAL(tg_raw_deviation_parse("0.25", 0, &v), 0);
        CU_ASSERT_EQUAL(v, 0.25);
        CU_ASSERT_EQUAL(tg_raw_deviation_parse("2%", 50, &v), 0);
        CU_ASSERT_EQUAL(v, 1.0);
        CU_ASSERT_EQUAL(tg_raw_deviation_parse("2%", 0, &v), -EINVAL);
        CU_ASSERT_EQUAL(tg_raw_deviation_parse("-1", 0, &v), -EINVAL);
        CU_ASSERT_EQUAL(tg_raw_deviation_parse("1x", 0, &v), -EINVAL);
        CU_ASSERT_EQUAL(tg_raw_deviation_parse("inf", 0, &v), -EINVAL);
        CU_ASSERT_EQUAL_FATAL(tg_raw_rules_parse(&rules, "swinging-door", "0.5", "", 60000,
                                                 "humidity=exception:2%:100, status=none",
                                                 err, sizeof(err)), 0);
        reading(&r, "a", 1, "temperature", 1);
        tg_reading_add_field(&r, "humidity", 8, 1);
        tg_reading_add_field(&r, "status", 6, 1);
        tg_raw_rules_for(&rules, &r, out);
        CU_ASSERT(out[0].mode == TG_RAW_SWINGING_DOOR && out[0].deviation == 0.5 &&
                  out[0].max_silence_ms == 60000);
        CU_ASSERT(out[1].mode == TG_RAW_EXCEPTION && out[1].deviation == 2.0);
        CU_ASSERT(out[2].mode == TG_RAW_NONE);
        CU_ASSERT(tg_raw_rules_stateful(&rules) && !tg_raw_rules_all(&rules));
        CU_ASSERT_EQUAL(tg_raw_rules_parse(&rules, "all", "0", "", 0, "x=sometimes", err,
                                           sizeof(err)), -EINVAL);
        CU_ASSERT(strstr(err, "x: mode 'sometimes'") != NULL);
        CU_ASSERT_EQUAL(tg_raw_rules_parse(&rules, "all", "0", "", 0, "x=all,x=none", err,
                                           sizeof(err)), -EINVAL);
        CU_ASSERT_EQUAL(tg_raw_rules_parse(&rules, "exception", "5%", "", 0, "", err,
                                           sizeof(err)), -EINVAL);
        CU_ASSERT(strstr(err, "forward.span") != NULL);
        CU_ASSERT_EQUAL(tg_raw_rules_parse(&rules, "all", "0", "", 0, "", err, sizeof(err)), 0);
        CU_ASSERT(tg_raw_rules_all(&rules) && !tg_raw_rules_stateful(&rules));
}

int main(void) {
        static const struct tg_test tests[] = {
                {"1.1/1.3 rules and deviations parsed", test_rules_parse},
                {"1.2 all and none", test_all_and_none},
                {"2.1 the first value is sent", test_first_value_sent},
                {"2.2/2.3 out of order: sent as is, marked, nothing changed", test_out_of_order},
                {"2.4 a field a reading lacks", test_absent_field},
                {"2.5 no room: sent whole, counted", test_no_room},
                {"3.1 exception: at the deadband and at M", test_exception_edges},
                {"3.1/3.2 exception over 1.25 M readings, 5 shapes", test_guarantee_exception},
                {"4.3 the held point kept on the nearest door", test_clamped_keep},
                {"4.5 maximum silence", test_max_silence},
                {"4.2-4.5 swinging door over 1.25 M readings, 5 shapes", test_guarantee_swinging_door},
                {"the guarantee checkers can fail", test_checkers_fail},
                {"5.1 restart anywhere, same output", test_restart_same_output},
                {"5.1/5.2 state in the window state file", test_state_file},
                {"5.3 a changed rule", test_rule_change},
        };

        return TG_TEST_RUN("downsample", tests);
}
