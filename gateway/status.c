/* status.c - the status page's per-sensor rows: written by the worker, published at its ticks, read by the HTTP side. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "status.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyed_hash.h"

/* A row without its windows, which live in a ring beside it. */
struct row {
        char id[TG_SENSOR_ID_MAX + 1];
        char field[TG_FIELD_NAME_MAX + 1];
        char last_field[TG_FIELD_NAME_MAX + 1];
        uint8_t id_len, dirty;
        uint32_t nwin, head;            /* ring: head is the oldest */
        int64_t last_ts, last_arrival_ms;
        double last_value;
        uint64_t windows, late;
};

struct tg_status {
        uint32_t cap, nwin, nrows, mask;
        uint32_t *slots;                /* open addressing: row index + 1, 0 empty */
        unsigned char key[TG_HASH_KEY_BYTES];
        struct row *rows;               /* the worker's */
        struct tg_status_window *win;   /* cap * nwin */
        uint64_t untracked;

        pthread_mutex_t lock;           /* the published copy */
        struct row *pub_rows;
        struct tg_status_window *pub_win;
        uint32_t pub_nrows;
        uint64_t pub_untracked;
};

tg_status_t *tg_status_new(uint32_t sensors, uint32_t windows, char *errstr, size_t errstr_size) {
        struct tg_status *st = calloc(1, sizeof(*st));
        uint32_t nslots = 2;

        if (!st)
                goto oom;
        while (nslots < 2 * sensors)
                nslots <<= 1;
        st->cap = sensors;
        st->nwin = windows;
        st->mask = nslots - 1;
        pthread_mutex_init(&st->lock, NULL);
        st->slots = calloc(nslots, sizeof(*st->slots));
        st->rows = calloc(sensors ? sensors : 1, sizeof(*st->rows));
        st->pub_rows = calloc(sensors ? sensors : 1, sizeof(*st->pub_rows));
        st->win = calloc((size_t)sensors * windows + 1, sizeof(*st->win));
        st->pub_win = calloc((size_t)sensors * windows + 1, sizeof(*st->pub_win));
        if (!st->slots || !st->rows || !st->pub_rows || !st->win || !st->pub_win ||
            tg_hash_key_random(st->key)) {
                tg_status_destroy(st);
                goto oom;
        }
        return st;
oom:
        snprintf(errstr, errstr_size, "status page: no memory for %u sensors of %u windows",
                 sensors, windows);
        return NULL;
}

void tg_status_destroy(tg_status_t *st) {
        if (!st)
                return;
        free(st->slots);
        free(st->rows);
        free(st->pub_rows);
        free(st->win);
        free(st->pub_win);
        pthread_mutex_destroy(&st->lock);
        free(st);
}

size_t tg_status_sensor_bytes(const tg_status_t *st) {
        /* two copies of a row and its windows, and two hash slots */
        return 2 * (sizeof(struct row) + st->nwin * sizeof(struct tg_status_window)) +
               2 * sizeof(uint32_t);
}

size_t tg_status_memory(const tg_status_t *st) {
        return sizeof(*st) + (st->mask + 1) * sizeof(uint32_t) +
               2 * (st->cap * sizeof(struct row) +
                    ((size_t)st->cap * st->nwin + 1) * sizeof(struct tg_status_window));
}

/* The row of @p id, taking a free one for a new sensor; NULL when the
 * table is full (counted: windows of sensors not shown). */
static struct row *row_of(struct tg_status *st, const char *id, size_t len) {
        uint32_t i = (uint32_t)tg_hash_keyed(st->key, id, len) & st->mask, n;

        for (n = 0; n <= st->mask; n++, i = (i + 1) & st->mask) {
                struct row *r;

                if (!st->slots[i]) {
                        if (st->nrows == st->cap || len > TG_SENSOR_ID_MAX)
                                break;
                        r = &st->rows[st->nrows++];
                        st->slots[i] = st->nrows;
                        memcpy(r->id, id, len);
                        r->id[len] = '\0';
                        r->id_len = (uint8_t)len;
                        return r;
                }
                r = &st->rows[st->slots[i] - 1];
                if (r->id_len == len && !memcmp(r->id, id, len))
                        return r;
        }
        st->untracked++;
        return NULL;
}

void tg_status_window(tg_status_t *st, const struct tg_window_result *w, const char *field) {
        struct row *r;
        struct tg_status_window *slot;

        if (!st || !st->cap || !st->nwin || !(r = row_of(st, w->sensor, w->sensor_len)))
                return;
        if (r->nwin < st->nwin) {
                slot = &st->win[(size_t)(r - st->rows) * st->nwin + (r->head + r->nwin++) % st->nwin];
        } else {
                slot = &st->win[(size_t)(r - st->rows) * st->nwin + r->head];
                r->head = (r->head + 1) % st->nwin;
        }
        r->windows++;
        slot->start = w->start;
        slot->count = w->count;
        slot->late = (uint32_t)w->late;
        if (w->nfields && field) {
                slot->mean = (float)w->fields[0].mean;
                slot->min = (float)w->fields[0].min;
                slot->max = (float)w->fields[0].max;
                snprintf(r->field, sizeof(r->field), "%s", field);
        } else {
                slot->mean = slot->min = slot->max = 0.0f;
        }
        r->dirty = 1;
}

/* The row's last reading and late count, from the engine: read here, at
 * the worker's ticks, so that a reading costs the status page nothing. */
static void row_refresh(struct row *r, const tg_window_engine_t *e) {
        struct tg_window_sensor_info in;

        if (tg_window_engine_sensor_info(e, r->id, r->id_len, &in) ||
            (in.last_arrival_ms == r->last_arrival_ms && in.late == r->late &&
             in.watermark == r->last_ts && (!in.has_value || in.value == r->last_value)))
                return;
        r->last_ts = in.watermark;
        r->last_arrival_ms = in.last_arrival_ms;
        r->late = in.late;
        if (in.has_value) {
                r->last_value = in.value;
                snprintf(r->last_field, sizeof(r->last_field), "%s",
                         tg_window_field_name(e, in.field));
        }
        r->dirty = 1;
}

void tg_status_publish(tg_status_t *st, const tg_window_engine_t *e) {
        uint32_t i;

        if (!st)
                return;
        for (i = 0; i < st->nrows; i++)
                row_refresh(&st->rows[i], e);
        pthread_mutex_lock(&st->lock);
        for (i = 0; i < st->nrows; i++) {
                struct row *r = &st->rows[i];
                size_t w = (size_t)i * st->nwin;

                if (!r->dirty)
                        continue;
                r->dirty = 0;
                st->pub_rows[i] = *r;
                memcpy(&st->pub_win[w], &st->win[w], st->nwin * sizeof(*st->win));
        }
        st->pub_nrows = st->nrows;
        st->pub_untracked = st->untracked;
        pthread_mutex_unlock(&st->lock);
}

uint32_t tg_status_rows(tg_status_t *st, uint64_t *untracked) {
        uint32_t n;

        pthread_mutex_lock(&st->lock);
        n = st->pub_nrows;
        if (untracked)
                *untracked = st->pub_untracked;
        pthread_mutex_unlock(&st->lock);
        return n;
}

uint32_t tg_status_windows_max(const tg_status_t *st) {
        return st->nwin;
}

int tg_status_row(tg_status_t *st, uint32_t i, struct tg_status_row *out) {
        const struct row *r;
        uint32_t k;

        pthread_mutex_lock(&st->lock);
        if (i >= st->pub_nrows) {
                pthread_mutex_unlock(&st->lock);
                return -ENOENT;
        }
        r = &st->pub_rows[i];
        memcpy(out->id, r->id, sizeof(out->id));
        memcpy(out->field, r->field, sizeof(out->field));
        memcpy(out->last_field, r->last_field, sizeof(out->last_field));
        out->last_ts = r->last_ts;
        out->last_arrival_ms = r->last_arrival_ms;
        out->last_value = r->last_value;
        out->windows_closed = r->windows;
        out->late = r->late;
        out->nwindows = r->nwin;
        for (k = 0; k < r->nwin; k++) /* oldest first */
                out->windows[k] = st->pub_win[(size_t)i * st->nwin + (r->head + k) % st->nwin];
        pthread_mutex_unlock(&st->lock);
        return 0;
}
