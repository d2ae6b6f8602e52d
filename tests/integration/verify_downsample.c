/* verify_downsample.c - tg-verify's check of topics.compressed against the truth: the series forward.mode promises, and nothing else. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two checks. Exact: the gateway's compressor, restored from checkpoints and
 * replaying its spool across crashes, must have sent what one uninterrupted
 * compressor sends for the truth's readings of each sensor in time order
 * (the simulator publishes each sensor's readings in time order, so that is
 * the order the gateway took them in). Repeats of a point are replays and
 * allowed; a point sent twice with different values, a missing one or an
 * extra one is a mismatch. Independent (docs/downsample.md 3.2, 4.4): every
 * truth reading up to the series' last point is within the deviation of the
 * value last sent before it (exception), or of the line through the kept
 * points (swinging door).
 */
#include "verify_downsample.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "downsample.h"

#define FAIL(...)                                                              \
        do {                                                                   \
                if (bad++ < 20)                                                \
                        fprintf(stderr, "tg-verify: compressed: " __VA_ARGS__); \
        } while (0)

int vd_parse(const char *text, size_t len, struct vd_point **pts, size_t *n, size_t *cap) {
        cJSON *root = cJSON_ParseWithLength(text, len), *it;
        const cJSON *s, *ts, *mode, *ooo, *fields;

        if (!root)
                return -1;
        s = cJSON_GetObjectItemCaseSensitive(root, "sensor");
        ts = cJSON_GetObjectItemCaseSensitive(root, "ts");
        mode = cJSON_GetObjectItemCaseSensitive(root, "mode");
        ooo = cJSON_GetObjectItemCaseSensitive(root, "out_of_order");
        fields = cJSON_GetObjectItemCaseSensitive(root, "fields");
        if (!cJSON_IsString(s) || !cJSON_IsNumber(ts) || !cJSON_IsString(mode) ||
            !cJSON_IsObject(fields)) {
                cJSON_Delete(root);
                return -1;
        }
        cJSON_ArrayForEach(it, fields) {
                struct vd_point *p;

                if (*n == *cap) {
                        *cap = *cap ? *cap * 2 : 4096;
                        if (!(*pts = realloc(*pts, *cap * sizeof(**pts)))) {
                                perror("realloc");
                                exit(2);
                        }
                }
                p = &(*pts)[(*n)++];
                memset(p, 0, sizeof(*p));
                snprintf(p->sensor, sizeof(p->sensor), "%s", s->valuestring);
                snprintf(p->field, sizeof(p->field), "%s", it->string);
                snprintf(p->mode, sizeof(p->mode), "%s", mode->valuestring);
                p->out_of_order = cJSON_IsTrue(ooo);
                p->ts = (int64_t)ts->valuedouble;
                p->v = it->valuedouble;
        }
        cJSON_Delete(root);
        return 0;
}

static int point_cmp(const void *a, const void *b) {
        const struct vd_point *x = a, *y = b;
        int c = strcmp(x->sensor, y->sensor);

        if (!c)
                c = strcmp(x->field, y->field);
        if (!c)
                c = (x->ts > y->ts) - (x->ts < y->ts);
        if (!c)
                c = (x->v > y->v) - (x->v < y->v);
        return c;
}

/* Sort, drop identical repeats (counted) and out-of-order points (which
 * must repeat a truth reading: counted, checked by the caller). */
static size_t dedupe(struct vd_point *p, size_t n, size_t *repeats) {
        size_t i, m = 0;

        qsort(p, n, sizeof(*p), point_cmp);
        for (i = 0; i < n; i++) {
                if (m && !point_cmp(&p[m - 1], &p[i]) && !strcmp(p[m - 1].mode, p[i].mode) &&
                    p[m - 1].out_of_order == p[i].out_of_order) {
                        (*repeats)++;
                        continue;
                }
                p[m++] = p[i];
        }
        return m;
}

/* Within the deviation of the series (3.2, 4.4), from the points alone. */
static int check_bound(const struct tg_reading *t, size_t n, const struct vd_point *k, size_t nk,
                       int door, double E) {
        size_t i, j;
        int bad = 0;

        for (i = 0; i < n; i++) {
                for (j = 0; j < t[i].nfields; j++) {
                        const struct vd_point *a = NULL, *b = NULL;
                        double v = t[i].fields[j].value, want;
                        size_t x;

                        /* the series' points around ts (few: a linear scan from a bisection
                         * would be faster; a few thousand points per series are fine) */
                        for (x = 0; x < nk; x++) {
                                if (strcmp(k[x].sensor, t[i].sensor) ||
                                    strcmp(k[x].field, t[i].fields[j].name) || k[x].out_of_order)
                                        continue;
                                if (k[x].ts <= t[i].ts_ms)
                                        a = &k[x];
                                else if (!b)
                                        b = &k[x];
                        }
                        if (!a || (door && !b && a->ts != t[i].ts_ms))
                                continue; /* before the first point, or still held (4.7) */
                        want = !door || a->ts == t[i].ts_ms
                                       ? a->v
                                       : a->v + (b->v - a->v) * (double)(t[i].ts_ms - a->ts) /
                                                        (double)(b->ts - a->ts);
                        if (!(fabs(want - v) <= E))
                                FAIL("%s.%s at %lld is %.17g, the series %.17g: more than %g away\n",
                                     t[i].sensor, t[i].fields[j].name, (long long)t[i].ts_ms, v,
                                     want, E);
                }
        }
        return bad;
}

int vd_check(const char *rule_text, const struct tg_reading *truth, size_t n,
             struct vd_point *got, size_t ngot) {
        struct tg_raw_rule rules[TG_READING_FIELDS_MAX], rule;
        struct tg_raw_point pts[TG_DOWNSAMPLE_POINTS_MAX];
        struct vd_point *want = malloc((2 * n * TG_READING_FIELDS_MAX + 1) * sizeof(*want));
        char mode[32], err[200];
        size_t i, j, nwant = 0, repeats = 0, ooo = 0;
        tg_downsample_t *d = tg_downsample_new(100000, TG_READING_FIELDS_MAX, err, sizeof(err));
        long long silence;
        int bad = 0;

        if (!want || !d || sscanf(rule_text, "%31[^,],%lf,%lld", mode, &rule.deviation, &silence) != 3 ||
            tg_raw_mode_parse(mode, &rule.mode)) {
                fprintf(stderr, "tg-verify: -c: want MODE,DEVIATION,MAX_SILENCE_MS, got '%s'\n",
                        rule_text);
                exit(2);
        }
        rule.max_silence_ms = silence;
        for (i = 0; i < TG_READING_FIELDS_MAX; i++)
                rules[i] = rule;
        for (i = 0; i < n; i++) {
                size_t k = tg_downsample_add(d, &truth[i], rules, pts);

                for (j = 0; j < k; j++) {
                        struct vd_point *p = &want[nwant++];

                        memset(p, 0, sizeof(*p));
                        snprintf(p->sensor, sizeof(p->sensor), "%s", truth[i].sensor);
                        snprintf(p->field, sizeof(p->field), "%s",
                                 truth[i].fields[pts[j].field].name);
                        snprintf(p->mode, sizeof(p->mode), "%s", tg_raw_mode_name(pts[j].mode));
                        p->out_of_order = pts[j].out_of_order;
                        p->ts = pts[j].ts;
                        p->v = pts[j].value;
                }
        }
        tg_downsample_destroy(d);
        ngot = dedupe(got, ngot, &repeats);
        /* out-of-order points: a reading taken twice (a replay the spool did
         * not recognise) repeats a truth value; anything else is wrong */
        for (i = j = 0; i < ngot; i++) {
                if (got[i].out_of_order) {
                        ooo++;
                        continue;
                }
                got[j++] = got[i];
        }
        ngot = j;
        nwant = dedupe(want, nwant, &repeats);
        for (i = j = 0; i < nwant || j < ngot;) {
                int c = i == nwant ? 1 : j == ngot ? -1 : point_cmp(&want[i], &got[j]);

                if (!c && strcmp(want[i].mode, got[j].mode))
                        FAIL("%s.%s at %lld: mode %s, want %s\n", got[j].sensor, got[j].field,
                             (long long)got[j].ts, got[j].mode, want[i].mode);
                if (c < 0)
                        FAIL("%s.%s at %lld: %.17g missing\n", want[i].sensor, want[i].field,
                             (long long)want[i].ts, want[i].v);
                else if (c > 0)
                        FAIL("%s.%s at %lld: %.17g unexpected or conflicting\n", got[j].sensor,
                             got[j].field, (long long)got[j].ts, got[j].v);
                i += c <= 0;
                j += c >= 0;
        }
        bad += check_bound(truth, n, got, ngot, rule.mode == TG_RAW_SWINGING_DOOR,
                           rule.deviation);
        fprintf(stderr, "tg-verify: compressed: %zu points (want %zu) for %zu readings, "
                        "%zu repeats, %zu out of order\n", ngot, nwant, n, repeats, ooo);
        free(want);
        return bad + (ooo ? (fprintf(stderr, "tg-verify: compressed: %zu out-of-order points "
                                             "in an in-order stream\n", ooo), 1) : 0);
}
