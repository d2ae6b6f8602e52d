/* field.c - the simulator's field conditions: per-sensor clocks, outage schedules and the queue of readings held back. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "field.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Streams of their own, apart from the (sensor, field) signal streams
 * (field < SIM_FIELD_VALUES) and the garbage streams (UINT32_MAX). */
#define FIELD_STREAM 0x7f1e1d00u

struct sensor_sched {
        struct sim_rng rng;
        double skew_ms, drift;          /* ts = start + at + skew + drift * at */
        int64_t off_from, off_to;       /* outage, -1 when none */
        int64_t dis_from, dis_to;       /* disconnect, -1 when none */
        struct sim_held *q;             /* sorted by (send_at, order) */
        size_t n;
};

struct sim_field {
        struct sim_field_opts o;
        unsigned nsensors, step_ms;
        size_t cap;                     /* queue room per sensor */
        uint64_t order;
        struct sensor_sched *s;
        struct sim_held *pool;
};

int sim_field_active(const struct sim_field_opts *o) {
        return o->reorder_ms || o->late > 0 || o->skew_ms || o->drift_ppm > 0 || o->offline > 0 ||
               o->disconnect > 0 || o->duplicate > 0;
}

/* A span of @p len ms starting on a step, drawn within the run's middle
 * (10 % to 60 %), or in the first minute of an unbounded run. */
static void draw_span(struct sim_rng *r, unsigned step_ms, int64_t run_ms, int64_t len,
                      int64_t *from, int64_t *to) {
        int64_t lo = run_ms ? run_ms / 10 : 5000, hi = run_ms ? run_ms * 6 / 10 : 60000;
        int64_t at = lo + (int64_t)(rng_uniform(r) * (double)(hi - lo));

        *from = at - at % step_ms;
        *to = *from + len;
}

sim_field_t *sim_field_new(const struct sim_field_opts *o, unsigned nsensors, unsigned step_ms,
                           int64_t run_ms, uint64_t seed) {
        struct sim_field *f = calloc(1, sizeof(*f));
        uint64_t delay = (uint64_t)o->reorder_ms + o->late_ms + o->offline_ms + o->disconnect_ms;
        unsigned i;

        if (!f)
                return NULL;
        f->o = *o;
        f->nsensors = nsensors;
        f->step_ms = step_ms ? step_ms : 1;
        /* Everything held at once: what the longest delays keep back, twice
         * over for duplicates, and the steps between. */
        f->cap = 2 * (size_t)(delay / f->step_ms + 4);
        f->s = calloc(nsensors, sizeof(*f->s));
        f->pool = calloc((size_t)nsensors * f->cap, sizeof(*f->pool));
        if (!f->s || !f->pool) {
                sim_field_destroy(f);
                return NULL;
        }
        for (i = 0; i < nsensors; i++) {
                struct sensor_sched *s = &f->s[i];

                rng_seed(&s->rng, seed, i, FIELD_STREAM);
                s->q = f->pool + (size_t)i * f->cap;
                s->skew_ms = (2.0 * rng_uniform(&s->rng) - 1.0) * o->skew_ms;
                s->drift = (2.0 * rng_uniform(&s->rng) - 1.0) * o->drift_ppm * 1e-6;
                s->off_from = s->off_to = s->dis_from = s->dis_to = -1;
                /* Both draws are taken whatever the options, so that turning
                 * one condition on does not move another's schedule. */
                if (rng_uniform(&s->rng) < o->offline)
                        draw_span(&s->rng, f->step_ms, run_ms, o->offline_ms, &s->off_from,
                                  &s->off_to);
                else
                        rng_uniform(&s->rng);
                if (rng_uniform(&s->rng) < o->disconnect)
                        draw_span(&s->rng, f->step_ms, run_ms, o->disconnect_ms, &s->dis_from,
                                  &s->dis_to);
                else
                        rng_uniform(&s->rng);
                /* A sensor has one or the other, not both at once. */
                if (s->dis_from >= 0 && s->off_from >= 0 && s->dis_from < s->off_to &&
                    s->off_from < s->dis_to)
                        s->dis_from = s->dis_to = -1;
        }
        return f;
}

void sim_field_destroy(sim_field_t *f) {
        if (!f)
                return;
        free(f->pool);
        free(f->s);
        free(f);
}

int64_t sim_field_ts(const sim_field_t *f, unsigned i, int64_t start_ms, int64_t at_ms) {
        const struct sensor_sched *s = &f->s[i];
        int64_t ts = start_ms + at_ms + (int64_t)llround(s->skew_ms + s->drift * (double)at_ms);

        return ts < 1 ? 1 : ts;
}

int sim_field_disconnected(const sim_field_t *f, unsigned i, int64_t at_ms) {
        const struct sensor_sched *s = &f->s[i];

        return s->dis_from >= 0 && at_ms >= s->dis_from && at_ms < s->dis_to;
}

int sim_field_disconnect_span(const sim_field_t *f, unsigned i, int64_t *from, int64_t *to) {
        *from = f->s[i].dis_from;
        *to = f->s[i].dis_to;
        return *from >= 0;
}

int sim_field_offline_span(const sim_field_t *f, unsigned i, int64_t *from, int64_t *to) {
        *from = f->s[i].off_from;
        *to = f->s[i].off_to;
        return *from >= 0;
}

static int enqueue(struct sim_field *f, struct sensor_sched *s, const struct sim_held *h) {
        size_t k = s->n;

        if (s->n == f->cap)
                return -ENOBUFS;
        /* Insertion from the back: most readings leave in the order taken. */
        while (k > 0 && (s->q[k - 1].send_at > h->send_at ||
                         (s->q[k - 1].send_at == h->send_at && s->q[k - 1].order > h->order)))
                k--;
        memmove(&s->q[k + 1], &s->q[k], (s->n - k) * sizeof(*s->q));
        s->q[k] = *h;
        s->n++;
        return 0;
}

int sim_field_take(sim_field_t *f, unsigned i, int64_t at_ms, int64_t ts,
                   const double v[SIM_FIELD_VALUES]) {
        struct sensor_sched *s = &f->s[i];
        struct sim_held h = {.send_at = at_ms, .ts = ts};
        /* Every reading takes the same draws, used or not, so that each
         * condition's choices stay put when another is turned on. */
        double u_late = rng_uniform(&s->rng), u_delay = rng_uniform(&s->rng),
               u_dup = rng_uniform(&s->rng);
        int rc;

        memcpy(h.v, v, sizeof(h.v));
        if (s->off_from >= 0 && at_ms >= s->off_from && at_ms < s->off_to)
                /* The backlog leaves one step after the first reading past
                 * the outage, which is sent first. */
                h.send_at = s->off_to + f->step_ms;
        else if (u_late < f->o.late)
                h.send_at = at_ms + f->o.late_ms;
        else if (f->o.reorder_ms)
                h.send_at = at_ms + (int64_t)(u_delay * f->o.reorder_ms);
        h.order = f->order++;
        if ((rc = enqueue(f, s, &h)))
                return rc;
        if (u_dup < f->o.duplicate) {
                h.order = f->order++;
                rc = enqueue(f, s, &h);
        }
        return rc;
}

int sim_field_next_due(sim_field_t *f, unsigned i, int64_t now_ms, struct sim_held *out) {
        struct sensor_sched *s = &f->s[i];

        if (!s->n || s->q[0].send_at > now_ms || sim_field_disconnected(f, i, now_ms))
                return 0;
        *out = s->q[0];
        memmove(&s->q[0], &s->q[1], --s->n * sizeof(*s->q));
        return 1;
}

size_t sim_field_held(const sim_field_t *f, unsigned i) {
        return f->s[i].n;
}

size_t sim_field_describe(const struct sim_field_opts *o, uint64_t seed, char *buf, size_t cap) {
        int n = snprintf(buf, cap,
                         "{\"sim\":{\"seed\":%llu,\"reorder_ms\":%u,\"late\":%g,\"late_ms\":%u,"
                         "\"skew_ms\":%u,\"drift_ppm\":%g,\"offline\":%g,\"offline_ms\":%u,"
                         "\"disconnect\":%g,\"disconnect_ms\":%u,\"duplicate\":%g}}",
                         (unsigned long long)seed, o->reorder_ms, o->late, o->late_ms,
                         o->skew_ms, o->drift_ppm, o->offline, o->offline_ms, o->disconnect,
                         o->disconnect_ms, o->duplicate);

        return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
