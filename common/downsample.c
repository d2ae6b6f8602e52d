/* downsample.c - report by exception and swinging-door compression per (sensor, field), in a table fixed at start-up. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "downsample.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "keyed_hash.h"

/*
 * The specification is docs/downsample.md; clause numbers below refer to it.
 *
 * Memory, all allocated in tg_downsample_new():
 *
 *   index[]    open-addressing hash of sensor ids: (hash, position), a
 *              power of two at least twice max_sensors; nothing is ever
 *              removed (2.5), so probing needs no tombstones
 *   sensors[]  max_sensors ids
 *   series[]   max_fields series per sensor, each 112 bytes: the field's
 *              name, the rule it was built under and its state (4.1)
 *
 * Only fields under exception or swinging-door take a series; "all" and
 * "none" keep no state.
 */

#define EMPTY UINT32_MAX

/* Swinging door works to a deviation this much smaller than the one
 * configured, so that a consumer's own rounding when it interpolates
 * between kept points (a few units in the last place of the values) stays
 * inside the bound for values up to ~1e6 times the deviation (4.4). */
#define DOOR_SHRINK (1.0 - 0x1p-30)

struct bucket {
        uint32_t hash;
        uint32_t pos;            /* EMPTY: free */
};

struct sensor {
        uint8_t id_len;
        uint8_t nseries;
        char id[TG_SENSOR_ID_MAX + 1];
};

/* One (sensor, field) series. Exception mode uses the anchor only: the
 * last value sent. */
struct series {
        char name[TG_FIELD_NAME_MAX + 1];
        uint8_t name_len;
        uint8_t mode;            /* the rule it was built under (4.3) */
        uint8_t has_held;
        double deviation;
        int64_t max_silence_ms;
        int64_t newest_ts;       /* the newest reading it took (2.2) */
        int64_t anchor_ts;       /* the last point sent or kept */
        double anchor_v;
        int64_t held_ts;         /* swinging door: the newest reading since the anchor */
        double held_v;
        double lo, hi;           /* the doors: slopes from the anchor every held-back reading allows */
};

_Static_assert(sizeof(struct series) == 112, "a series is 112 bytes");

struct tg_downsample {
        uint32_t max_sensors, max_fields;
        uint32_t nsensors;
        uint32_t index_mask;
        struct bucket *index;
        struct sensor *sensors;
        struct series *series;
        size_t memory;
        struct tg_downsample_counters c;
        unsigned char hash_key[TG_HASH_KEY_BYTES];
};

static const char *const mode_names[TG_RAW__COUNT] = {
        [TG_RAW_ALL] = "all",
        [TG_RAW_EXCEPTION] = "exception",
        [TG_RAW_SWINGING_DOOR] = "swinging-door",
        [TG_RAW_NONE] = "none",
};

const char *tg_raw_mode_name(enum tg_raw_mode m) {
        return (unsigned)m < TG_RAW__COUNT ? mode_names[m] : "?";
}

int tg_raw_mode_parse(const char *s, enum tg_raw_mode *out) {
        int m;

        for (m = 0; m < TG_RAW__COUNT; m++)
                if (!strcmp(s, mode_names[m])) {
                        *out = (enum tg_raw_mode)m;
                        return 0;
                }
        return -EINVAL;
}

int tg_raw_deviation_parse(const char *s, double span, double *out) {
        char *end;
        double v = strtod(s, &end);

        if (end == s || !isfinite(v) || v < 0)
                return -EINVAL;
        if (*end == '%') {
                if (!(span > 0) || !isfinite(span) || end[1])
                        return -EINVAL;
                v = v / 100.0 * span;
        } else if (*end) {
                return -EINVAL;
        }
        *out = v;
        return 0;
}

/* One rule from its parts; @p what names the option for messages. */
static int rule_parse(struct tg_raw_rule *out, const char *mode, const char *deviation,
                      const char *span, int64_t max_silence_ms, const char *what,
                      char *errstr, size_t errstr_size) {
        enum tg_raw_mode m;
        double sp = 0, dev = 0;
        char *end;

        if (tg_raw_mode_parse(mode, &m)) {
                tg_errstr(errstr, errstr_size, "%s: mode '%s' is not all, exception, "
                          "swinging-door or none", what, mode);
                return -EINVAL;
        }
        if (span && *span && (sp = strtod(span, &end), *end || !(sp > 0) || !isfinite(sp))) {
                tg_errstr(errstr, errstr_size, "%s: span '%s' is not a number > 0", what, span);
                return -EINVAL;
        }
        if (deviation && *deviation && tg_raw_deviation_parse(deviation, sp, &dev)) {
                tg_errstr(errstr, errstr_size, "%s: deviation '%s' is neither a number >= 0 "
                          "nor a percentage of a span > 0 (forward.span)", what, deviation);
                return -EINVAL;
        }
        *out = (struct tg_raw_rule){m, dev, max_silence_ms};
        return 0;
}

int tg_raw_rules_parse(struct tg_raw_rules *out, const char *mode, const char *deviation,
                       const char *span, int64_t max_silence_ms, const char *fields,
                       char *errstr, size_t errstr_size) {
        char buf[1024], *save = NULL, *tok;

        memset(out, 0, sizeof(*out));
        if (rule_parse(&out->def, mode, deviation, span, max_silence_ms, "forward", errstr,
                       errstr_size))
                return -EINVAL;
        if (strlen(fields) >= sizeof(buf)) {
                tg_errstr(errstr, errstr_size, "forward.fields: longer than %zu bytes",
                          sizeof(buf) - 1);
                return -EINVAL;
        }
        strcpy(buf, fields);
        for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                char *eq = strchr(tok, '='), *dev, *sp;
                size_t k;

                if (!eq || eq == tok || (size_t)(eq - tok) > TG_FIELD_NAME_MAX) {
                        tg_errstr(errstr, errstr_size, "forward.fields: '%s' is not "
                                  "NAME=MODE[:DEVIATION[:SPAN]]", tok);
                        return -EINVAL;
                }
                if (out->n == TG_READING_FIELDS_MAX) {
                        tg_errstr(errstr, errstr_size, "forward.fields: more than %d fields",
                                  TG_READING_FIELDS_MAX);
                        return -EINVAL;
                }
                *eq = 0;
                for (k = 0; k < out->n; k++)
                        if (!strcmp(out->field[k].name, tok)) {
                                tg_errstr(errstr, errstr_size, "forward.fields: %s twice", tok);
                                return -EINVAL;
                        }
                if ((dev = strchr(eq + 1, ':')))
                        *dev++ = 0;
                if (dev && (sp = strchr(dev, ':')))
                        *sp++ = 0;
                else
                        sp = NULL;
                if (rule_parse(&out->field[out->n].rule, eq + 1, dev, sp ? sp : span,
                               max_silence_ms, tok, errstr, errstr_size))
                        return -EINVAL;
                strcpy(out->field[out->n].name, tok);
                out->field[out->n].len = strlen(tok);
                out->n++;
        }
        return 0;
}

void tg_raw_rules_for(const struct tg_raw_rules *rules, const struct tg_reading *r,
                      struct tg_raw_rule *out) {
        uint16_t i;
        size_t k;

        for (i = 0; i < r->nfields; i++) {
                out[i] = rules->def;
                for (k = 0; k < rules->n; k++)
                        if (rules->field[k].len == r->fields[i].name_len &&
                            !memcmp(rules->field[k].name, r->fields[i].name, rules->field[k].len)) {
                                out[i] = rules->field[k].rule;
                                break;
                        }
        }
}

static int rules_any(const struct tg_raw_rules *rules, int (*pred)(enum tg_raw_mode)) {
        size_t k;

        if (pred(rules->def.mode))
                return 1;
        for (k = 0; k < rules->n; k++)
                if (pred(rules->field[k].rule.mode))
                        return 1;
        return 0;
}

static int stateful(enum tg_raw_mode m) {
        return m == TG_RAW_EXCEPTION || m == TG_RAW_SWINGING_DOOR;
}

static int not_all(enum tg_raw_mode m) {
        return m != TG_RAW_ALL;
}

int tg_raw_rules_stateful(const struct tg_raw_rules *rules) {
        return rules_any(rules, stateful);
}

int tg_raw_rules_all(const struct tg_raw_rules *rules) {
        return !rules_any(rules, not_all);
}

tg_downsample_t *tg_downsample_new(uint32_t max_sensors, uint32_t max_fields, char *errstr,
                                   size_t errstr_size) {
        tg_downsample_t *d;
        uint32_t cap = 2, i;
        int r;

        if (!max_sensors || !max_fields || max_fields > TG_READING_FIELDS_MAX ||
            max_sensors > (UINT32_C(1) << 28)) {
                tg_errstr(errstr, errstr_size, "downsample: %u sensors of %u fields: out of range",
                          max_sensors, max_fields);
                return NULL;
        }
        while (cap < 2 * max_sensors)
                cap *= 2;
        if (!(d = calloc(1, sizeof(*d))) || !(d->index = malloc(cap * sizeof(*d->index))) ||
            !(d->sensors = calloc(max_sensors, sizeof(*d->sensors))) ||
            !(d->series = calloc((size_t)max_sensors * max_fields, sizeof(*d->series)))) {
                tg_errstr(errstr, errstr_size, "downsample: out of memory for %u sensors",
                          max_sensors);
                tg_downsample_destroy(d);
                return NULL;
        }
        if ((r = tg_hash_key_random(d->hash_key)) < 0) {
                tg_errstr(errstr, errstr_size, "downsample: no random hash key: %s",
                          strerror(-r));
                tg_downsample_destroy(d);
                return NULL;
        }
        for (i = 0; i < cap; i++)
                d->index[i].pos = EMPTY;
        d->index_mask = cap - 1;
        d->max_sensors = max_sensors;
        d->max_fields = max_fields;
        d->memory = sizeof(*d) + cap * sizeof(*d->index) + max_sensors * sizeof(*d->sensors) +
                    (size_t)max_sensors * max_fields * sizeof(*d->series);
        return d;
}

void tg_downsample_destroy(tg_downsample_t *d) {
        if (!d)
                return;
        free(d->index);
        free(d->sensors);
        free(d->series);
        free(d);
}

size_t tg_downsample_memory(const tg_downsample_t *d) {
        return d->memory;
}

void tg_downsample_counters(const tg_downsample_t *d, struct tg_downsample_counters *out) {
        *out = d->c;
        out->sensors = d->nsensors;
}

/* The sensor's position, placing it when @p create and there is room; EMPTY otherwise. */
static uint32_t sensor_find(tg_downsample_t *d, const char *id, size_t len, int create) {
        uint32_t h = (uint32_t)tg_hash_keyed(d->hash_key, id, len), i;

        for (i = h & d->index_mask;; i = (i + 1) & d->index_mask) {
                struct bucket *b = &d->index[i];

                if (b->pos == EMPTY)
                        break;
                if (b->hash == h && d->sensors[b->pos].id_len == len &&
                    !memcmp(d->sensors[b->pos].id, id, len))
                        return b->pos;
        }
        if (!create || d->nsensors == d->max_sensors)
                return EMPTY;
        d->index[i] = (struct bucket){h, d->nsensors};
        d->sensors[d->nsensors].id_len = (uint8_t)len;
        memcpy(d->sensors[d->nsensors].id, id, len);
        return d->nsensors++;
}

/* The sensor's series for field @p f, taking a free one when there is room. */
static struct series *series_find(tg_downsample_t *d, uint32_t pos, const struct tg_field *f) {
        struct sensor *s = &d->sensors[pos];
        struct series *base = &d->series[(size_t)pos * d->max_fields], *x;
        uint32_t i;

        for (i = 0; i < s->nseries; i++)
                if (base[i].name_len == f->name_len && !memcmp(base[i].name, f->name, f->name_len))
                        return &base[i];
        if (s->nseries == d->max_fields)
                return NULL;
        x = &base[s->nseries++];
        memset(x, 0, sizeof(*x));
        memcpy(x->name, f->name, f->name_len);
        x->name_len = f->name_len;
        x->mode = TG_RAW__COUNT; /* built under no rule yet: the first value starts it (4.3) */
        return x;
}

static void put(tg_downsample_t *d, struct tg_raw_point *out, size_t *n, uint16_t field,
                enum tg_raw_mode mode, int64_t ts, double v, int out_of_order) {
        out[(*n)++] = (struct tg_raw_point){.field = field, .mode = (uint8_t)mode,
                                            .out_of_order = (uint8_t)out_of_order,
                                            .ts = ts, .value = v};
        d->c.points++;
}

/* The first point of a series, or the one after its rule changed (2.1, 4.3). */
static void series_start(struct series *x, const struct tg_raw_rule *rule, int64_t t, double v) {
        x->mode = (uint8_t)rule->mode;
        x->deviation = rule->deviation;
        x->max_silence_ms = rule->max_silence_ms;
        x->newest_ts = x->anchor_ts = t;
        x->anchor_v = v;
        x->has_held = 0;
}

/* 4.3: keep the held point, on the line from the anchor with a slope the
 * doors allow: its own value when that slope is allowed, else the nearest
 * value that is. */
static void door_keep_held(tg_downsample_t *d, struct series *x, uint16_t field,
                           struct tg_raw_point *out, size_t *n) {
        double dt = (double)(x->held_ts - x->anchor_ts);
        double slope = (x->held_v - x->anchor_v) / dt, v = x->held_v;

        if (!(slope >= x->lo && slope <= x->hi))
                v = x->anchor_v + (slope < x->lo ? x->lo : x->hi) * dt;
        put(d, out, n, field, TG_RAW_SWINGING_DOOR, x->held_ts, v, 0);
        x->anchor_ts = x->held_ts;
        x->anchor_v = v;
        x->has_held = 0;
}

/* 4.2 */
static void door_add(tg_downsample_t *d, struct series *x, uint16_t field, int64_t t, double v,
                     struct tg_raw_point *out, size_t *n) {
        double e = x->deviation * DOOR_SHRINK, dt, lo, hi;

        if (x->has_held && x->max_silence_ms && t - x->anchor_ts >= x->max_silence_ms)
                door_keep_held(d, x, field, out, n); /* 4.5 */
        if (x->has_held) {
                dt = (double)(t - x->anchor_ts);
                lo = fmax(x->lo, (v - e - x->anchor_v) / dt);
                hi = fmin(x->hi, (v + e - x->anchor_v) / dt);
                if (lo <= hi) { /* the doors still leave a line: hold this one back too */
                        x->lo = lo;
                        x->hi = hi;
                        x->held_ts = t;
                        x->held_v = v;
                        d->c.suppressed++;
                        return;
                }
                door_keep_held(d, x, field, out, n);
        }
        if (x->max_silence_ms && t - x->anchor_ts >= x->max_silence_ms) {
                put(d, out, n, field, TG_RAW_SWINGING_DOOR, t, v, 0); /* 4.5 */
                x->anchor_ts = t;
                x->anchor_v = v;
                return;
        }
        dt = (double)(t - x->anchor_ts);
        x->lo = (v - e - x->anchor_v) / dt;
        x->hi = (v + e - x->anchor_v) / dt;
        x->held_ts = t;
        x->held_v = v;
        x->has_held = 1;
        d->c.suppressed++;
}

/* 3.1 */
static void exception_add(tg_downsample_t *d, struct series *x, uint16_t field, int64_t t,
                          double v, struct tg_raw_point *out, size_t *n) {
        if (fabs(v - x->anchor_v) > x->deviation ||
            (x->max_silence_ms && t - x->anchor_ts >= x->max_silence_ms)) {
                put(d, out, n, field, TG_RAW_EXCEPTION, t, v, 0);
                x->anchor_ts = t;
                x->anchor_v = v;
        } else {
                d->c.suppressed++;
        }
}

static int rule_same(const struct series *x, const struct tg_raw_rule *rule) {
        return x->mode == rule->mode && x->deviation == rule->deviation &&
               x->max_silence_ms == rule->max_silence_ms;
}

size_t tg_downsample_add(tg_downsample_t *d, const struct tg_reading *r,
                         const struct tg_raw_rule *rules, struct tg_raw_point *out) {
        uint32_t pos = EMPTY;
        int looked = 0;
        size_t n = 0;
        uint16_t i;

        for (i = 0; i < r->nfields; i++) {
                const struct tg_raw_rule *rule = &rules[i];
                double v = r->fields[i].value;
                int64_t t = r->ts_ms;
                struct series *x;

                if (rule->mode == TG_RAW_NONE) {
                        d->c.suppressed++;
                        continue;
                }
                if (rule->mode == TG_RAW_ALL) {
                        put(d, out, &n, i, TG_RAW_ALL, t, v, 0);
                        continue;
                }
                if (!looked++)
                        pos = sensor_find(d, r->sensor, r->sensor_len, 1);
                if (pos == EMPTY || !(x = series_find(d, pos, &r->fields[i]))) {
                        d->c.untracked++; /* 2.5 */
                        put(d, out, &n, i, TG_RAW_ALL, t, v, 0);
                        continue;
                }
                if (x->mode == TG_RAW__COUNT) { /* 2.1 */
                        series_start(x, rule, t, v);
                        put(d, out, &n, i, rule->mode, t, v, 0);
                        continue;
                }
                if (t <= x->newest_ts) { /* 2.3 */
                        d->c.out_of_order++;
                        put(d, out, &n, i, rule->mode, t, v, 1);
                        continue;
                }
                if (!rule_same(x, rule)) { /* 4.3 */
                        if (x->mode == TG_RAW_SWINGING_DOOR && x->has_held)
                                door_keep_held(d, x, i, out, &n);
                        d->c.rule_changes++;
                        series_start(x, rule, t, v);
                        put(d, out, &n, i, rule->mode, t, v, 0);
                        continue;
                }
                x->newest_ts = t;
                if (rule->mode == TG_RAW_EXCEPTION)
                        exception_add(d, x, i, t, v, out, &n);
                else
                        door_add(d, x, i, t, v, out, &n);
        }
        return n;
}

/*
 * Snapshot, native byte order (it never leaves the machine), carried inside
 * the window state file:
 *
 *   "TGDSTATE" u32 version (1), u32 nsensors,
 *   nsensors x (u8 id_len, id bytes, u8 nseries, nseries x struct series)
 */
#define SNAP_MAGIC "TGDSTATE"
#define SNAP_VERSION 1u

int tg_downsample_snapshot(const tg_downsample_t *d, void **buf, size_t *len) {
        size_t size = 16, off = 0;
        uint32_t i, u32;
        unsigned char *p;

        for (i = 0; i < d->nsensors; i++)
                size += 2 + d->sensors[i].id_len + d->sensors[i].nseries * sizeof(struct series);
        if (!(p = malloc(size)))
                return -ENOMEM;
#define PUT(src, k) (memcpy(p + off, (src), (k)), off += (k))
        PUT(SNAP_MAGIC, 8);
        u32 = SNAP_VERSION;
        PUT(&u32, 4);
        PUT(&d->nsensors, 4);
        for (i = 0; i < d->nsensors; i++) {
                const struct sensor *s = &d->sensors[i];

                PUT(&s->id_len, 1);
                PUT(s->id, s->id_len);
                PUT(&s->nseries, 1);
                PUT(&d->series[(size_t)i * d->max_fields], s->nseries * sizeof(struct series));
        }
#undef PUT
        *buf = p;
        *len = off;
        return 0;
}

static void reset(tg_downsample_t *d) {
        uint32_t i;

        for (i = 0; i <= d->index_mask; i++)
                d->index[i].pos = EMPTY;
        memset(d->sensors, 0, d->max_sensors * sizeof(*d->sensors));
        d->nsensors = 0;
}

static int restore_fail(tg_downsample_t *d, char *errstr, size_t size, const char *why) {
        tg_errstr(errstr, size, "raw-forwarding state: %s", why);
        reset(d);
        return -EINVAL;
}

int tg_downsample_restore(tg_downsample_t *d, const void *buf, size_t len, char *errstr,
                          size_t errstr_size) {
        const unsigned char *p = buf;
        uint32_t version, nsensors, i, k;
        size_t off = 16;

        reset(d);
        if (!len)
                return 0;
        if (len < 16 || memcmp(p, SNAP_MAGIC, 8))
                return restore_fail(d, errstr, errstr_size, "not a snapshot");
        memcpy(&version, p + 8, 4);
        memcpy(&nsensors, p + 12, 4);
        if (version != SNAP_VERSION)
                return restore_fail(d, errstr, errstr_size, "of another version");
        if (nsensors > d->max_sensors)
                return restore_fail(d, errstr, errstr_size,
                                    "more sensors than window.max_sensors holds");
        for (i = 0; i < nsensors; i++) {
                uint8_t id_len, nseries;
                uint32_t pos;
                struct series *base;

                if (off + 1 > len || !(id_len = p[off]) || id_len > TG_SENSOR_ID_MAX ||
                    off + 2u + id_len > len)
                        return restore_fail(d, errstr, errstr_size, "bad sensor id");
                if (sensor_find(d, (const char *)p + off + 1, id_len, 0) != EMPTY)
                        return restore_fail(d, errstr, errstr_size, "sensor twice");
                pos = sensor_find(d, (const char *)p + off + 1, id_len, 1);
                off += 1u + id_len;
                nseries = p[off++];
                if (nseries > d->max_fields ||
                    off + (size_t)nseries * sizeof(struct series) > len)
                        return restore_fail(d, errstr, errstr_size,
                                            "more fields than forward.max_fields holds");
                base = &d->series[(size_t)pos * d->max_fields];
                memcpy(base, p + off, (size_t)nseries * sizeof(struct series));
                off += (size_t)nseries * sizeof(struct series);
                for (k = 0; k < nseries; k++)
                        if (!base[k].name_len || base[k].name_len > TG_FIELD_NAME_MAX ||
                            base[k].mode > TG_RAW__COUNT)
                                return restore_fail(d, errstr, errstr_size, "bad field");
                d->sensors[pos].nseries = nseries;
        }
        if (off != len)
                return restore_fail(d, errstr, errstr_size, "length mismatch");
        return 0;
}
