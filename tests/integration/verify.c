/* verify.c - tg-verify: checks Kafka's raw and aggregate topics against a simulator truth file. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The expected results are computed here, independently of the gateway's
 * window engine: plain arrays, sorted, grouped by (sensor, window start).
 * Every truth reading must be on the raw topic exactly once with the same
 * values; every window computed from the truth must be on the aggregate
 * topic exactly once with the same count, min, max, first, last, and a sum
 * and mean equal within 1e-9 relative; nothing else may be there. Every
 * record's Kafka timestamp must be the time the README promises, and so
 * never 0 or less (librdkafka would have made 0 "now", Kafka reads -1 as
 * none): a raw record's is its reading's ts, an aggregate's its window
 * start, or 1 ms for a window that starts at or before the epoch.
 *
 * Sparkplug records that carry no reading (deaths; births whose metrics
 * have no values) are set aside and counted: the truth has only readings.
 *
 * With -G (a grace) the truth is one the simulator wrote under field
 * conditions: its readings carry "seq", the order they were sent, and the
 * expected windows come from reference_windows(), a plain reading of
 * docs/windows.md (hopping windows, watermarks, close marks, late readings
 * and their counts) over the truth in that order. Late readings must then
 * also be on the late topic (-l) exactly once.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "codec.h"
#include "verify_downsample.h"

#define MAXF 8

struct rec {                   /* one reading: truth or raw topic */
        char sensor[TG_SENSOR_ID_MAX + 1];
        int64_t ts;
        int nf;
        char name[MAXF][TG_FIELD_NAME_MAX + 1];
        double v[MAXF];
        long long seq;         /* truth under field conditions: the order sent */
};

struct fstat {
        char name[TG_FIELD_NAME_MAX + 1];
        long long count;
        double min, max, sum, mean, first, last;
        int64_t first_ts, last_ts;
};

struct agg {                   /* one window: expected or from the topic */
        char sensor[TG_SENSOR_ID_MAX + 1];
        int64_t start, end;
        long long count;
        long long late;        /* compared with -G only */
        int final;             /* running results (update mode) are not compared */
        int nf;
        struct fstat f[MAXF];
};

struct vec {
        void *p;
        size_t n, cap, size;
};

static void *vec_push(struct vec *v) {
        if (v->n == v->cap) {
                v->cap = v->cap ? v->cap * 2 : 1024;
                v->p = realloc(v->p, v->cap * v->size);
                if (!v->p) {
                        perror("realloc");
                        exit(2);
                }
        }
        return memset((char *)v->p + v->n++ * v->size, 0, v->size);
}

static int rec_cmp(const void *a, const void *b) {
        const struct rec *x = a, *y = b;
        int c = strcmp(x->sensor, y->sensor);

        return c ? c : (x->ts > y->ts) - (x->ts < y->ts);
}

static int agg_cmp(const void *a, const void *b) {
        const struct agg *x = a, *y = b;
        int c = strcmp(x->sensor, y->sensor);

        return c ? c : (x->start > y->start) - (x->start < y->start);
}

static int64_t floor_div(int64_t a, int64_t b) {
        int64_t q = a / b;

        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* {"sensor":..,"ts":..,<fields>} (truth) or {"sensor":..,"ts":..,"fields":{..}} (raw) */
static int parse_rec(const char *text, size_t len, struct rec *r) {
        cJSON *root = cJSON_ParseWithLength(text, len), *it, *fields;
        const cJSON *s, *ts;

        if (!root)
                return -1;
        s = cJSON_GetObjectItemCaseSensitive(root, "sensor");
        ts = cJSON_GetObjectItemCaseSensitive(root, "ts");
        fields = cJSON_GetObjectItemCaseSensitive(root, "fields");
        if (!cJSON_IsString(s) || !cJSON_IsNumber(ts)) {
                cJSON_Delete(root);
                return -1;
        }
        snprintf(r->sensor, sizeof(r->sensor), "%s", s->valuestring);
        r->ts = (int64_t)ts->valuedouble;
        if (!fields)
                fields = root; /* truth lines are flat */
        it = cJSON_GetObjectItemCaseSensitive(root, "seq");
        r->seq = cJSON_IsNumber(it) ? (long long)it->valuedouble : -1;
        cJSON_ArrayForEach(it, fields) {
                if (!cJSON_IsNumber(it) || !strcmp(it->string, "ts") ||
                    (fields == root && !strcmp(it->string, "seq")) || r->nf == MAXF)
                        continue;
                snprintf(r->name[r->nf], sizeof(r->name[0]), "%s", it->string);
                r->v[r->nf++] = it->valuedouble;
        }
        cJSON_Delete(root);
        return 0;
}

/* A Sparkplug record that carries no reading: an NDEATH or DDEATH (no
 * "fields"), or a birth or data message whose metrics at that time are all
 * non-numeric, null or of an unknown alias ("fields":{}). It is context, not a value, and is
 * set aside. */
static int sparkplug_context(const char *text, size_t len) {
        cJSON *root = cJSON_ParseWithLength(text, len);
        const cJSON *fields;
        int yes;

        if (!root)
                return 0;
        fields = cJSON_GetObjectItemCaseSensitive(root, "fields");
        yes = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "sparkplug")) &&
              (!fields || (cJSON_IsObject(fields) && !fields->child));
        cJSON_Delete(root);
        return yes;
}

static long sparkplug_set_aside;

static int parse_agg(const char *text, size_t len, struct agg *a) {
        cJSON *root = cJSON_ParseWithLength(text, len), *it;
        const cJSON *s;

        if (!root)
                return -1;
        s = cJSON_GetObjectItemCaseSensitive(root, "sensor");
        if (!cJSON_IsString(s)) {
                cJSON_Delete(root);
                return -1;
        }
        snprintf(a->sensor, sizeof(a->sensor), "%s", s->valuestring);
        a->final = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "final"));
        a->start = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "window_start"));
        a->end = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "window_end"));
        a->count = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "count"));
        it = cJSON_GetObjectItemCaseSensitive(root, "late");
        a->late = cJSON_IsNumber(it) ? (long long)it->valuedouble : -1;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "fields")) {
                struct fstat *f;

                if (a->nf == MAXF)
                        break;
                f = &a->f[a->nf++];
                snprintf(f->name, sizeof(f->name), "%s", it->string);
                f->count = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "count"));
                f->min = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "min"));
                f->max = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "max"));
                f->sum = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "sum"));
                f->mean = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "mean"));
                f->first = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "first"));
                f->last = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "last"));
        }
        cJSON_Delete(root);
        return 0;
}

static void expected_aggregates(const struct rec *t, size_t n, int64_t W,
                                struct vec *out) {
        size_t i;
        struct agg *a = NULL;

        for (i = 0; i < n; i++) {
                int64_t start = floor_div(t[i].ts, W) * W;
                int k, j;

                if (!a || strcmp(a->sensor, t[i].sensor) || a->start != start) {
                        a = vec_push(out);
                        snprintf(a->sensor, sizeof(a->sensor), "%s", t[i].sensor);
                        a->start = start;
                        a->end = start + W;
                }
                a->count++;
                for (k = 0; k < t[i].nf; k++) {
                        struct fstat *f = NULL;

                        for (j = 0; j < a->nf; j++)
                                if (!strcmp(a->f[j].name, t[i].name[k]))
                                        f = &a->f[j];
                        if (!f) {
                                f = &a->f[a->nf++];
                                snprintf(f->name, sizeof(f->name), "%s", t[i].name[k]);
                                f->min = f->max = f->first = f->last = t[i].v[k];
                                f->first_ts = f->last_ts = t[i].ts;
                        }
                        f->count++;
                        f->sum += t[i].v[k];
                        if (t[i].v[k] < f->min)
                                f->min = t[i].v[k];
                        if (t[i].v[k] > f->max)
                                f->max = t[i].v[k];
                        if (t[i].ts < f->first_ts) {
                                f->first_ts = t[i].ts;
                                f->first = t[i].v[k];
                        }
                        if (t[i].ts >= f->last_ts) {
                                f->last_ts = t[i].ts;
                                f->last = t[i].v[k];
                        }
                }
        }
        for (i = 0; i < out->n; i++) {
                struct agg *x = (struct agg *)out->p + i;
                int j;

                for (j = 0; j < x->nf; j++)
                        x->f[j].mean = x->f[j].sum / (double)x->f[j].count;
        }
}

/* --- the reference of docs/windows.md, for truths in arrival order ---- */

struct ref_conf {
        int64_t W, H, G;       /* window size, hop, grace (2.1) */
        int global;            /* window.close: global (3.2) */
};

struct ref_sensor {
        char id[TG_SENSOR_ID_MAX + 1];
        int64_t wm, cm;        /* watermark WM_s (3.1), close mark CM_s (3.3) */
        long long late;        /* late readings since the previous final result (6.3) */
        struct vec open;       /* struct agg, in increasing start order */
};

/* Emit @p s's open windows whose end is <= @p upto, in start order (3.4). */
static void ref_close(struct ref_sensor *s, int64_t upto, struct vec *out) {
        struct agg *w = s->open.p;
        size_t i = 0, k;

        while (i < s->open.n && w[i].end <= upto) {
                struct agg *a = vec_push(out);

                *a = w[i++];
                a->final = 1;
                a->late = s->late;     /* 6.3: since the previous final result */
                s->late = 0;
                for (k = 0; k < (size_t)a->nf; k++)
                        a->f[k].mean = a->f[k].sum / (double)a->f[k].count;
        }
        memmove(w, w + i, (s->open.n - i) * sizeof(*w));
        s->open.n -= i;
}

/* Add @p r to @p s's window starting at @p start, opening it (kept sorted). */
static void ref_add(struct ref_sensor *s, const struct ref_conf *c, int64_t start,
                    const struct rec *r) {
        struct agg *w = s->open.p, *a = NULL;
        size_t i, k;
        int j;

        for (i = 0; i < s->open.n && w[i].start <= start; i++)
                if (w[i].start == start)
                        a = &w[i];
        if (!a) {
                vec_push(&s->open);
                w = s->open.p;
                memmove(&w[i + 1], &w[i], (s->open.n - 1 - i) * sizeof(*w));
                a = memset(&w[i], 0, sizeof(*w));
                snprintf(a->sensor, sizeof(a->sensor), "%s", s->id);
                a->start = start;
                a->end = start + c->W;
        }
        a->count++;
        for (k = 0; k < (size_t)r->nf; k++) {
                struct fstat *f = NULL;

                for (j = 0; j < a->nf; j++)
                        if (!strcmp(a->f[j].name, r->name[k]))
                                f = &a->f[j];
                if (!f) {              /* 6.5: fields in order of first appearance */
                        f = &a->f[a->nf++];
                        snprintf(f->name, sizeof(f->name), "%s", r->name[k]);
                        f->min = f->max = f->first = f->last = r->v[k];
                        f->first_ts = f->last_ts = r->ts;
                }
                f->count++;
                f->sum += r->v[k];
                f->min = fmin(f->min, r->v[k]);
                f->max = fmax(f->max, r->v[k]);
                if (r->ts < f->first_ts) {   /* 6.2: a tie keeps the earliest added */
                        f->first_ts = r->ts;
                        f->first = r->v[k];
                }
                if (r->ts >= f->last_ts) {   /* ... and the latest added */
                        f->last_ts = r->ts;
                        f->last = r->v[k];
                }
        }
}

/*
 * Every final window, and every late reading, of the readings @p t in
 * arrival order (4.1): watermarks, the close mark, windows emitted before
 * the reading is added, the reading added to each of its W/H windows that
 * is still open and late for the others. What is open at the end is
 * emitted as the idle timeout does (5.2), in start order.
 */
static void reference_windows(const struct ref_conf *c, const struct rec *t, size_t n,
                              struct vec *aggs, struct vec *late) {
        struct vec sensors = {.size = sizeof(struct ref_sensor)};
        int64_t wm_g = INT64_MIN;
        size_t i, k;

        for (i = 0; i < n; i++) {
                const struct rec *r = &t[i];
                struct ref_sensor *s = NULL;
                int64_t a = floor_div(r->ts, c->H) * c->H, wm, start;
                int is_late = 0;

                for (k = 0; k < sensors.n && !s; k++)
                        if (!strcmp(((struct ref_sensor *)sensors.p)[k].id, r->sensor))
                                s = (struct ref_sensor *)sensors.p + k;
                if (!s) {                       /* 7.2: a new sensor */
                        s = vec_push(&sensors);
                        snprintf(s->id, sizeof(s->id), "%s", r->sensor);
                        s->wm = s->cm = INT64_MIN;
                        s->open.size = sizeof(struct agg);
                }
                s->wm = r->ts > s->wm ? r->ts : s->wm;          /* 3.1 */
                wm_g = r->ts > wm_g ? r->ts : wm_g;
                wm = c->global ? wm_g : s->wm;                  /* 3.2 */
                if (floor_div(wm - c->G, c->H) * c->H > s->cm)  /* 3.4 */
                        s->cm = floor_div(wm - c->G, c->H) * c->H;
                ref_close(s, s->cm, aggs);
                for (start = a - c->W + c->H; start <= a; start += c->H) {  /* 2.3, 4.1 */
                        if (start + c->W <= s->cm)
                                is_late = 1;
                        else
                                ref_add(s, c, start, r);
                }
                if (is_late) {                                  /* 4.2 */
                        s->late++;
                        *(struct rec *)vec_push(late) = *r;
                }
        }
        for (k = 0; k < sensors.n; k++) {
                struct ref_sensor *s = (struct ref_sensor *)sensors.p + k;

                ref_close(s, INT64_MAX, aggs);
                free(s->open.p);
        }
        free(sensors.p);
        qsort(aggs->p, aggs->n, aggs->size, agg_cmp);
}

static int seq_cmp(const void *a, const void *b) {
        const struct rec *x = a, *y = b;

        return (x->seq > y->seq) - (x->seq < y->seq);
}

static int close_rel(double a, double b) {
        return fabs(a - b) <= 1e-9 * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static int errors;

#define MISMATCH(...)                                                          \
        do {                                                                   \
                if (errors++ < 20)                                             \
                        fprintf(stderr, "tg-verify: " __VA_ARGS__);            \
        } while (0)

/* A dead letter, from the topic (headers) or from the simulator's garbage
 * truth: compared as a multiset of (MQTT topic, reason, payload bytes). */
struct dead {
        char topic[160];
        char reason[40];
        long bytes;
};

static int dead_cmp(const void *a, const void *b) {
        const struct dead *x = a, *y = b;
        int c = strcmp(x->topic, y->topic);

        if (!c)
                c = strcmp(x->reason, y->reason);
        return c ? c : (x->bytes > y->bytes) - (x->bytes < y->bytes);
}

static int header_str(rd_kafka_headers_t *h, const char *name, char *out, size_t size) {
        const void *v;
        size_t n;

        if (!h || rd_kafka_header_get_last(h, name, &v, &n))
                return -1;
        snprintf(out, size, "%.*s", (int)n, (const char *)v);
        return 0;
}

static long timestamps_bad;

/* The record's Kafka timestamp is @p want (positive). */
static void check_timestamp(const rd_kafka_message_t *m, const char *topic, const char *sensor,
                            int64_t at, int64_t want) {
        rd_kafka_timestamp_type_t type;
        int64_t ts = rd_kafka_message_timestamp(m, &type);

        if (ts != want || ts <= 0) {
                timestamps_bad++;
                MISMATCH("%s: %s@%lld has Kafka timestamp %lld (type %d), want %lld\n", topic,
                         sensor, (long long)at, (long long)ts, (int)type, (long long)want);
        }
}

/* A duplicate_member dead letter's tg.error names the member (or SenML
 * label) given twice. */
static void check_duplicate_error(rd_kafka_headers_t *h, const struct dead *d) {
        char error[256] = "";

        if (strcmp(d->reason, "duplicate_member"))
                return;
        if (header_str(h, "tg.error", error, sizeof(error)) ||
            (strncmp(error, "member \"", 8) && strncmp(error, "SenML label \"", 13)) ||
            !strstr(error, "\" given more than once"))
                MISMATCH("dlq: duplicate_member from %s with tg.error '%s', which names no member\n",
                         d->topic, error);
}

static long allow_missing;   /* -M: readings the gateway may not have had (set-aside spool records) */
static int allow_duplicates; /* -d: identical repeats tolerated (replay after a crash), counted */
static long missing_seen, raw_duplicates, agg_duplicates;

static int rec_same(const struct rec *a, const struct rec *b) {
        int k;

        if (rec_cmp(a, b) || a->nf != b->nf)
                return 0;
        for (k = 0; k < a->nf; k++)
                if (strcmp(a->name[k], b->name[k]) || a->v[k] != b->v[k])
                        return 0;
        return 1;
}

/* With -M, drop from the truth the readings the raw topic lacks (at most
 * allow_missing), so the expected windows are computed without them. */
static size_t drop_missing(struct rec *want, size_t nw, struct rec *got, size_t ng) {
        size_t i = 0, j = 0, o = 0;

        qsort(got, ng, sizeof(*got), rec_cmp);
        for (; i < nw; i++) {
                while (j < ng && rec_cmp(&got[j], &want[i]) < 0)
                        j++;
                if (j < ng && !rec_cmp(&got[j], &want[i])) {
                        want[o++] = want[i];
                } else if (missing_seen < allow_missing) {
                        missing_seen++;
                        fprintf(stderr, "tg-verify: allowed missing reading %s@%lld\n",
                                want[i].sensor, (long long)want[i].ts);
                } else {
                        want[o++] = want[i]; /* reported as missing below */
                }
        }
        return o;
}

static void compare_raw(const char *what, struct rec *want, size_t nw, struct rec *got,
                        size_t ng) {
        size_t i = 0, j = 0;
        int k;

        qsort(got, ng, sizeof(*got), rec_cmp);
        while (i < nw || j < ng) {
                int c = i == nw ? 1 : j == ng ? -1 : rec_cmp(&want[i], &got[j]);

                if (c > 0 && allow_duplicates && j > 0 && rec_same(&got[j], &got[j - 1])) {
                        raw_duplicates++;
                        j++;
                        continue;
                }
                if (c < 0) {
                        MISMATCH("%s: missing reading %s@%lld\n", what, want[i].sensor,
                                 (long long)want[i].ts);
                        i++;
                } else if (c > 0) {
                        MISMATCH("%s: unexpected or duplicate reading %s@%lld\n", what,
                                 got[j].sensor, (long long)got[j].ts);
                        j++;
                } else {
                        if (want[i].nf != got[j].nf)
                                MISMATCH("raw: %s@%lld has %d fields, want %d\n",
                                         got[j].sensor, (long long)got[j].ts, got[j].nf,
                                         want[i].nf);
                        for (k = 0; k < want[i].nf && k < got[j].nf; k++)
                                if (strcmp(want[i].name[k], got[j].name[k]) ||
                                    want[i].v[k] != got[j].v[k])
                                        MISMATCH("raw: %s@%lld field %s=%.17g, want %s=%.17g\n",
                                                 got[j].sensor, (long long)got[j].ts,
                                                 got[j].name[k], got[j].v[k],
                                                 want[i].name[k], want[i].v[k]);
                        i++;
                        j++;
                }
        }
}

static int check_late; /* -G: the windows' late counts come from the reference too */

static void compare_agg(struct agg *want, size_t nw, struct agg *got, size_t ng) {
        size_t i = 0, j = 0;
        int k, m;

        qsort(got, ng, sizeof(*got), agg_cmp);
        while (i < nw || j < ng) {
                int c = i == nw ? 1 : j == ng ? -1 : agg_cmp(&want[i], &got[j]);

                if (c < 0) {
                        MISMATCH("agg: missing window %s/%lld\n", want[i].sensor,
                                 (long long)want[i].start);
                        i++;
                        continue;
                }
                if (c > 0 && allow_duplicates && j > 0 && !agg_cmp(&got[j], &got[j - 1]) &&
                    !memcmp(&got[j].end, &got[j - 1].end,
                            sizeof(got[j]) - offsetof(struct agg, end))) {
                        agg_duplicates++; /* identical, as a replay must make it */
                        j++;
                        continue;
                }
                if (c > 0) {
                        MISMATCH("agg: unexpected or duplicate window %s/%lld\n",
                                 got[j].sensor, (long long)got[j].start);
                        j++;
                        continue;
                }
                if (check_late && got[j].late != want[i].late)
                        MISMATCH("agg: %s/%lld late %lld, want %lld\n", got[j].sensor,
                                 (long long)got[j].start, got[j].late, want[i].late);
                if (got[j].end != want[i].end || got[j].count != want[i].count ||
                    got[j].nf != want[i].nf)
                        MISMATCH("agg: %s/%lld end %lld count %lld nf %d, want %lld %lld %d\n",
                                 got[j].sensor, (long long)got[j].start,
                                 (long long)got[j].end, got[j].count, got[j].nf,
                                 (long long)want[i].end, want[i].count, want[i].nf);
                for (k = 0; k < want[i].nf; k++) {
                        const struct fstat *w = &want[i].f[k], *g = NULL;

                        for (m = 0; m < got[j].nf; m++)
                                if (!strcmp(got[j].f[m].name, w->name))
                                        g = &got[j].f[m];
                        if (!g) {
                                MISMATCH("agg: %s/%lld lacks field %s\n", got[j].sensor,
                                         (long long)got[j].start, w->name);
                                continue;
                        }
                        if (g->count != w->count || g->min != w->min || g->max != w->max ||
                            g->first != w->first || g->last != w->last ||
                            !close_rel(g->sum, w->sum) || !close_rel(g->mean, w->mean))
                                MISMATCH("agg: %s/%lld %s: count %lld min %.17g max %.17g "
                                         "mean %.17g sum %.17g; want %lld %.17g %.17g %.17g %.17g\n",
                                         got[j].sensor, (long long)got[j].start, w->name,
                                         g->count, g->min, g->max, g->mean, g->sum,
                                         w->count, w->min, w->max, w->mean, w->sum);
                }
                i++;
                j++;
        }
}

int main(int argc, char **argv) {
        const char *brokers = "127.0.0.1:9092", *raw_topic = NULL, *agg_topic = NULL;
        const char *truth_path = NULL, *dlq_topic = NULL, *garbage_path = NULL;
        const char *compressed_topic = NULL, *compressed_rule = NULL;
        struct vd_point *cpts = NULL;
        size_t ncpts = 0, cap_cpts = 0;
        struct vec dead_want = {.size = sizeof(struct dead)}, dead_got = {.size = sizeof(struct dead)};
        int64_t W = 10000, timeout_ms = 120000, settle_ms = 3000;
        struct vec truth = {.size = sizeof(struct rec)}, raw = {.size = sizeof(struct rec)};
        struct vec want_agg = {.size = sizeof(struct agg)}, agg = {.size = sizeof(struct agg)};
        struct vec want_late = {.size = sizeof(struct rec)}, late_got = {.size = sizeof(struct rec)};
        struct ref_conf ref = {.H = 0, .G = -1};
        const char *late_topic = NULL;
        char line[8192], errstr[512], group[64];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *subs;
        int64_t deadline, last_msg;
        FILE *f;
        int opt;

        while ((opt = getopt(argc, argv, "b:r:a:t:w:T:s:M:dq:g:G:H:Ol:c:C:")) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 'r': raw_topic = optarg; break;
                case 'a': agg_topic = optarg; break;
                case 't': truth_path = optarg; break;
                case 'w': W = atoll(optarg); break;
                case 'T': timeout_ms = atoll(optarg) * 1000; break;
                case 's': settle_ms = atoll(optarg) * 1000; break;
                case 'M': allow_missing = atol(optarg); break;
                case 'd': allow_duplicates = 1; break;
                case 'q': dlq_topic = optarg; break;
                case 'g': garbage_path = optarg; break;
                case 'G': ref.G = atoll(optarg); break;
                case 'H': ref.H = atoll(optarg); break;
                case 'O': ref.global = 1; break;
                case 'l': late_topic = optarg; break;
                case 'c': compressed_topic = optarg; break;
                case 'C': compressed_rule = optarg; break;
                default:
                        fprintf(stderr, "usage: tg-verify -r RAW_TOPIC -a AGG_TOPIC -t TRUTH "
                                        "[-b BROKERS] [-w WINDOW_MS] [-T TIMEOUT_S] [-s SETTLE_S]\n"
                                        "  -M N  up to N truth readings may be absent (set aside as corrupt);\n"
                                        "        the expected windows are computed without them\n"
                                        "  -d    identical duplicates (a replay after a crash) are allowed, counted\n"
                                        "  -q DLQ_TOPIC -g GARBAGE_TRUTH  every garbage message is a dead\n"
                                        "        letter with the reason and size the simulator recorded\n"
                                        "  -G GRACE_MS [-H HOP_MS] [-O] [-l LATE_TOPIC]  a truth in arrival order\n"
                                        "        (field conditions): windows from docs/windows.md's reference,\n"
                                        "        late counts compared, late readings on LATE_TOPIC; -O: close global\n"
                                        "  -c TOPIC -C MODE,DEVIATION,MAX_SILENCE_MS  topics.compressed holds\n"
                                        "        exactly the series forward.mode promises for the truth\n");
                        return 2;
                }
        }
        if (!raw_topic || !agg_topic || !truth_path || W <= 0) {
                fprintf(stderr, "tg-verify: -r, -a and -t are required\n");
                return 2;
        }
        if (!(f = fopen(truth_path, "r"))) {
                perror(truth_path);
                return 2;
        }
        while (fgets(line, sizeof(line), f)) {
                struct rec *r;

                /* Field conditions: the options and the outages, not readings. */
                if (!strncmp(line, "{\"sim\":", 7) || !strncmp(line, "{\"event\":", 9))
                        continue;
                r = vec_push(&truth);
                if (parse_rec(line, strlen(line), r)) {
                        fprintf(stderr, "tg-verify: %s: bad line: %s", truth_path, line);
                        return 2;
                }
        }
        fclose(f);
        if (garbage_path) {
                if (!(f = fopen(garbage_path, "r"))) {
                        perror(garbage_path);
                        return 2;
                }
                while (fgets(line, sizeof(line), f)) {
                        cJSON *j = cJSON_Parse(line);
                        struct dead *d = vec_push(&dead_want);
                        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "topic");
                        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "reason");
                        const cJSON *by = cJSON_GetObjectItemCaseSensitive(j, "bytes");

                        if (!cJSON_IsString(tp) || !cJSON_IsString(rs) || !cJSON_IsNumber(by)) {
                                fprintf(stderr, "tg-verify: %s: bad line: %s", garbage_path, line);
                                return 2;
                        }
                        snprintf(d->topic, sizeof(d->topic), "%s", tp->valuestring);
                        snprintf(d->reason, sizeof(d->reason), "%s", rs->valuestring);
                        /* the gateway keeps the first 64 KiB + 1 of a larger payload */
                        d->bytes = (long)by->valuedouble > TG_PAYLOAD_MAX + 1
                                           ? TG_PAYLOAD_MAX + 1
                                           : (long)by->valuedouble;
                        cJSON_Delete(j);
                }
                fclose(f);
        }
        if (ref.G >= 0) {
                ref.W = W;
                ref.H = ref.H > 0 ? ref.H : W;
                check_late = 1;
                qsort(truth.p, truth.n, truth.size, seq_cmp);
                reference_windows(&ref, truth.p, truth.n, &want_agg, &want_late);
                qsort(want_late.p, want_late.n, want_late.size, rec_cmp);
                qsort(truth.p, truth.n, truth.size, rec_cmp);
        } else {
                qsort(truth.p, truth.n, truth.size, rec_cmp);
                expected_aggregates(truth.p, truth.n, W, &want_agg);
        }
        fprintf(stderr, "tg-verify: truth has %zu readings in %zu windows\n", truth.n,
                want_agg.n);

        conf = rd_kafka_conf_new();
        snprintf(group, sizeof(group), "tg-verify-%d", (int)getpid());
        if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "1000", errstr,
                              sizeof(errstr)) ||
            !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
                fprintf(stderr, "tg-verify: %s\n", errstr);
                return 2;
        }
        rd_kafka_poll_set_consumer(rk);
        subs = rd_kafka_topic_partition_list_new(2);
        rd_kafka_topic_partition_list_add(subs, raw_topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_topic_partition_list_add(subs, agg_topic, RD_KAFKA_PARTITION_UA);
        if (dlq_topic)
                rd_kafka_topic_partition_list_add(subs, dlq_topic, RD_KAFKA_PARTITION_UA);
        if (late_topic)
                rd_kafka_topic_partition_list_add(subs, late_topic, RD_KAFKA_PARTITION_UA);
        if (compressed_topic)
                rd_kafka_topic_partition_list_add(subs, compressed_topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, subs);
        rd_kafka_topic_partition_list_destroy(subs);

        /* Read until both topics hold at least what is expected and nothing
         * more has come for settle_ms (so duplicates get their chance to
         * show), or until the timeout. */
        deadline = tg_monotonic_ms() + timeout_ms;
        last_msg = tg_monotonic_ms();
        while (tg_monotonic_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

                if (m) {
                        if (!m->err) {
                                const char *t = rd_kafka_topic_name(m->rkt);

                                if (dlq_topic && !strcmp(t, dlq_topic)) {
                                        struct dead *d = vec_push(&dead_got);
                                        rd_kafka_headers_t *h = NULL;

                                        rd_kafka_message_headers(m, &h);
                                        if (header_str(h, "tg.mqtt_topic", d->topic, sizeof(d->topic)) ||
                                            header_str(h, "tg.reason", d->reason, sizeof(d->reason)))
                                                MISMATCH("dlq: record without tg.mqtt_topic/tg.reason\n");
                                        d->bytes = (long)m->len;
                                        check_duplicate_error(h, d);
                                } else if (late_topic && !strcmp(t, late_topic)) {
                                        if (parse_rec(m->payload, m->len, vec_push(&late_got)))
                                                MISMATCH("late: unparsable record\n");
                                } else if (compressed_topic && !strcmp(t, compressed_topic)) {
                                        size_t before = ncpts;

                                        if (vd_parse(m->payload, m->len, &cpts, &ncpts, &cap_cpts))
                                                MISMATCH("compressed: unparsable record\n");
                                        else if (ncpts > before)
                                                check_timestamp(m, "compressed", cpts[before].sensor,
                                                                cpts[before].ts, cpts[before].ts);
                                } else if (!strcmp(t, raw_topic) &&
                                           sparkplug_context(m->payload, m->len)) {
                                        sparkplug_set_aside++;
                                } else if (!strcmp(t, raw_topic)) {
                                        struct rec *r = vec_push(&raw);

                                        if (parse_rec(m->payload, m->len, r))
                                                MISMATCH("raw: unparsable record\n");
                                        else
                                                check_timestamp(m, "raw", r->sensor, r->ts, r->ts);
                                } else {
                                        struct agg *a = vec_push(&agg);

                                        if (parse_agg(m->payload, m->len, a)) {
                                                MISMATCH("agg: unparsable record\n");
                                        } else {
                                                check_timestamp(m, "agg", a->sensor, a->start,
                                                                a->start > 0 ? a->start : 1);
                                                if (!a->final)
                                                        agg.n--; /* a running result */
                                        }
                                }
                                last_msg = tg_monotonic_ms();
                        }
                        rd_kafka_message_destroy(m);
                        continue;
                }
                /* With -M, fewer raw records (and so fewer or other windows)
                 * may be right: wait for the settle time to end it. */
                if (raw.n + (size_t)allow_missing >= truth.n && dead_got.n >= dead_want.n &&
                    late_got.n >= want_late.n &&
                    (allow_missing || agg.n >= want_agg.n) &&
                    tg_monotonic_ms() - last_msg >= settle_ms)
                        break;
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);

        if (allow_missing) {
                truth.n = drop_missing(truth.p, truth.n, raw.p, raw.n);
                want_agg.n = 0;
                expected_aggregates(truth.p, truth.n, W, &want_agg);
        }
        fprintf(stderr, "tg-verify: raw topic %zu records (want %zu), aggregates %zu (want %zu), "
                        "%ld with a wrong Kafka timestamp\n",
                raw.n, truth.n, agg.n, want_agg.n, timestamps_bad);
        if (sparkplug_set_aside)
                fprintf(stderr, "tg-verify: %ld Sparkplug record(s) without a reading (deaths, "
                                "unknown aliases, births without values) set aside\n",
                        sparkplug_set_aside);
        compare_raw("raw", truth.p, truth.n, raw.p, raw.n);
        if (ref.G >= 0) {
                fprintf(stderr, "tg-verify: reference: %zu late readings, late topic %zu\n",
                        want_late.n, late_got.n);
                compare_raw("late", want_late.p, want_late.n, late_got.p, late_got.n);
        }
        compare_agg(want_agg.p, want_agg.n, agg.p, agg.n);
        if (dlq_topic) {
                struct dead *w = dead_want.p, *g = dead_got.p;
                size_t i;

                qsort(w, dead_want.n, sizeof(*w), dead_cmp);
                qsort(g, dead_got.n, sizeof(*g), dead_cmp);
                fprintf(stderr, "tg-verify: dead letters %zu (want %zu)\n", dead_got.n,
                        dead_want.n);
                if (dead_got.n != dead_want.n)
                        MISMATCH("dlq: %zu dead letters, want %zu\n", dead_got.n, dead_want.n);
                for (i = 0; i < dead_want.n && i < dead_got.n; i++)
                        if (dead_cmp(&w[i], &g[i]))
                                MISMATCH("dlq: got %s %s %ld bytes, want %s %s %ld bytes\n",
                                         g[i].topic, g[i].reason, g[i].bytes, w[i].topic,
                                         w[i].reason, w[i].bytes);
        }
        if (compressed_topic) {
                struct tg_reading *tr = calloc(truth.n + 1, sizeof(*tr));
                const struct rec *t = truth.p;
                size_t i;
                int k;

                if (!tr || !compressed_rule) {
                        fprintf(stderr, "tg-verify: -c wants -C\n");
                        return 2;
                }
                for (i = 0; i < truth.n; i++) {
                        tg_reading_set_sensor(&tr[i], t[i].sensor, strlen(t[i].sensor));
                        tr[i].ts_ms = t[i].ts;
                        for (k = 0; k < t[i].nf; k++)
                                tg_reading_add_field(&tr[i], t[i].name[k], strlen(t[i].name[k]),
                                                     t[i].v[k]);
                }
                errors += vd_check(compressed_rule, tr, truth.n, cpts, ncpts);
                free(tr);
                free(cpts);
        }
        if (errors) {
                fprintf(stderr, "tg-verify: FAILED with %d mismatch(es)\n", errors);
                return 1;
        }
        if (allow_duplicates || allow_missing)
                fprintf(stderr, "tg-verify: OK: duplicates raw=%ld agg=%ld, missing allowed=%ld\n",
                        raw_duplicates, agg_duplicates, missing_seen);
        else
                fprintf(stderr, "tg-verify: OK: every reading exactly once, every aggregate equal\n");
        return 0;
}
