/* pipeline.c - decode, forward raw, window, emit aggregates: the gateway's data path. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "pipeline.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Big enough for a window of TG_READING_FIELDS_MAX fields with the longest
 * names and ids; larger would mean a bug, and is counted as a failure. */
#define AGG_JSON_MAX 8192
#define RAW_JSON_MAX 4096

#define KEEP_MAX TG_READING_FIELDS_MAX

/* How one subscription's payloads become readings. */
struct sub_state {
        char *filter;                  /* the MQTT topic filter */
        enum tg_format format;
        struct tg_decode_opts opts;    /* arrival_ms and sensor set per message */
        const char *topic_pattern;     /* sensor_id = topic:<pattern>, or NULL */
        char *strings;                 /* copies the options point into */
        const char *keep[KEEP_MAX];
};

struct tg_pipeline {
        struct sub_state subs[TG_SUBSCRIPTIONS_MAX];
        size_t nsubs;
        tg_kafka_sink_t *sink;
        const struct tg_clock *clock;
        tg_window_engine_t *engine;
        const volatile int *stop;
        char state_path[4096];

        /* One MQTT delivery thread and the ticking main thread share the
         * engine; the lock is uncontended almost always. */
        pthread_mutex_t lock;
        struct tg_pipeline_counters c;
        struct tg_reading reading;     /* scratch, under lock */
        char raw_json[RAW_JSON_MAX];   /* scratch, under lock */
        char agg_json[AGG_JSON_MAX];   /* scratch, under lock */
};

/* Aggregate record, the format Redpanda Console shows as JSON:
 * {"id":"<sensor>/<start>","sensor":..,"window_start":ms,"window_end":ms,
 *  "count":n,"final":true,"late":n,"fields":{"<name>":{"count":..,"min":..,
 *  "max":..,"mean":..,"sum":..,"stddev":..,"first":..,"last":..}}}
 * Running results (update mode) carry "final":false and no "late". */
static size_t aggregate_json(tg_pipeline_t *p, const struct tg_window_result *w) {
        struct tg_jw j;
        char num[32];
        uint32_t i;

        tg_jw_init(&j, p->agg_json, sizeof(p->agg_json));
        tg_jw_raw(&j, "{\"id\":");
        snprintf(num, sizeof(num), "/%lld", (long long)w->start);
        {
                char id[TG_SENSOR_ID_MAX + 32];
                int n = snprintf(id, sizeof(id), "%.*s%s", (int)w->sensor_len,
                                 w->sensor, num);

                tg_jw_string(&j, id, (size_t)n);
        }
        tg_jw_raw(&j, ",\"sensor\":");
        tg_jw_string(&j, w->sensor, w->sensor_len);
        tg_jw_raw(&j, ",\"window_start\":");
        tg_jw_int(&j, w->start);
        tg_jw_raw(&j, ",\"window_end\":");
        tg_jw_int(&j, w->end);
        tg_jw_raw(&j, ",\"count\":");
        tg_jw_int(&j, w->count);
        if (w->final) {
                tg_jw_raw(&j, ",\"final\":true,\"late\":");
                tg_jw_int(&j, (int64_t)w->late);
        } else {
                tg_jw_raw(&j, ",\"final\":false");
        }
        tg_jw_raw(&j, ",\"fields\":{");
        for (i = 0; i < w->nfields; i++) {
                const struct tg_field_stats *f = &w->fields[i];
                const char *name = tg_window_field_name(p->engine, f->field);

                if (i)
                        tg_jw_raw(&j, ",");
                tg_jw_string(&j, name, strlen(name));
                tg_jw_raw(&j, ":{\"count\":");
                tg_jw_int(&j, f->count);
                tg_jw_raw(&j, ",\"min\":");
                tg_jw_double(&j, f->min);
                tg_jw_raw(&j, ",\"max\":");
                tg_jw_double(&j, f->max);
                tg_jw_raw(&j, ",\"mean\":");
                tg_jw_double(&j, f->mean);
                tg_jw_raw(&j, ",\"sum\":");
                tg_jw_double(&j, f->sum);
                tg_jw_raw(&j, ",\"stddev\":");
                tg_jw_double(&j, f->count ? sqrt(f->m2 / f->count) : 0.0);
                tg_jw_raw(&j, ",\"first\":");
                tg_jw_double(&j, f->first);
                tg_jw_raw(&j, ",\"last\":");
                tg_jw_double(&j, f->last);
                tg_jw_raw(&j, "}");
        }
        tg_jw_raw(&j, "}}");
        return tg_jw_finish(&j);
}

/* Called by the engine, under p->lock, for each window that closes. */
static void on_window(void *opaque, const struct tg_window_result *w) {
        tg_pipeline_t *p = opaque;
        size_t n = aggregate_json(p, w);

        if (!n) {
                tg_err("window %.*s/%lld: aggregate record too large, not sent",
                       (int)w->sensor_len, w->sensor, (long long)w->start);
                p->c.forward_failed++;
                return;
        }
        if (tg_kafka_sink_produce(p->sink, TG_SINK_AGG, w->sensor, w->sensor_len,
                                  p->agg_json, n, w->start, p->stop) == 0)
                p->c.aggregates++;
        else
                p->c.forward_failed++;
}

/* Everything that cannot become a valid reading goes to the dead-letter
 * topic with its bytes unchanged and the reason in headers. */
static void dead_letter(tg_pipeline_t *p, const char *mqtt_topic,
                        const void *payload, size_t len, const char *reason,
                        const char *message, int64_t arrival_ms) {
        char arrival[24];
        struct tg_sink_header h[4] = {
                {"tg.reason", reason, strlen(reason)},
                {"tg.error", message, strlen(message)},
                {"tg.mqtt_topic", mqtt_topic, strlen(mqtt_topic)},
                {"tg.arrival_ms", arrival, 0},
        };

        h[3].len = (size_t)snprintf(arrival, sizeof(arrival), "%lld",
                                    (long long)arrival_ms);
        if (tg_kafka_sink_produce_headers(p->sink, TG_SINK_DLQ, mqtt_topic,
                                          strlen(mqtt_topic), payload, len,
                                          arrival_ms, h, 4, p->stop) == 0)
                p->c.dead_lettered++;
        else
                p->c.forward_failed++;
}

/* One allocation holds the filter, the id and timestamp member names and
 * the kept field names, split in place. */
static int sub_init(struct sub_state *st, const struct tg_config *cfg,
                    const struct tg_subscription *sub, char *errstr,
                    size_t errstr_size) {
        const char *id = sub->value[TG_SUB_SENSOR_ID];
        size_t lt = strlen(sub->value[TG_SUB_TOPIC]) + 1, li = strlen(id) + 1,
               lf = strlen(sub->value[TG_SUB_TS_FIELD]) + 1,
               lk = strlen(sub->value[TG_SUB_FIELDS]) + 1;
        struct tg_decode_opts *o = &st->opts;
        char *save = NULL, *tok, *idc, *keep;

        if (!(st->strings = malloc(lt + li + lf + lk))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -ENOMEM;
        }
        st->filter = memcpy(st->strings, sub->value[TG_SUB_TOPIC], lt);
        idc = memcpy(st->strings + lt, id, li);
        *o = tg_decode_defaults;
        o->ts_key = memcpy(st->strings + lt + li, sub->value[TG_SUB_TS_FIELD], lf);
        keep = memcpy(st->strings + lt + li + lf, sub->value[TG_SUB_FIELDS], lk);
        if (!strncmp(idc, "topic:", 6)) {
                st->topic_pattern = idc + 6;
                o->id_key = NULL;
        } else {
                o->id_key = idc + 8; /* payload: */
        }
        tg_format_parse(sub->value[TG_SUB_FORMAT], &st->format);
        tg_ts_unit_parse(sub->value[TG_SUB_TS_UNIT], &o->ts_unit);
        o->ts_from_arrival = !strcmp(sub->value[TG_SUB_TS_MISSING], "arrival");
        o->max_payload = (size_t)cfg->limit_payload;
        o->max_depth = (size_t)cfg->limit_depth;
        o->max_fields = (size_t)cfg->limit_fields;
        o->max_id = (size_t)cfg->limit_id;
        o->max_string = (size_t)cfg->limit_string;
        for (tok = strtok_r(keep, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                if (o->nkeep == KEEP_MAX) {
                        snprintf(errstr, errstr_size, "fields: more than %d names",
                                 KEEP_MAX);
                        return -EINVAL;
                }
                st->keep[o->nkeep++] = tok;
        }
        if (o->nkeep)
                o->keep = st->keep;
        return 0;
}

static void subs_free(tg_pipeline_t *p) {
        size_t i;

        for (i = 0; i < TG_SUBSCRIPTIONS_MAX; i++)
                free(p->subs[i].strings);
}

/* The subscription a message came through: the first whose filter
 * matches its topic (the broker does not say). */
static struct sub_state *sub_for(tg_pipeline_t *p, const char *topic) {
        size_t i;

        for (i = 0; i < p->nsubs; i++)
                if (tg_topic_filter_match(p->subs[i].filter, topic))
                        return &p->subs[i];
        return &p->subs[0];
}

static void state_load(tg_pipeline_t *p) {
        char err[256];
        int r = tg_window_engine_load(p->engine, p->state_path, err, sizeof(err));

        if (r == 0)
                tg_info("restored open windows from %s", p->state_path);
        else if (r == -ENOENT)
                tg_info("no window state at %s: starting with no open windows",
                        p->state_path);
        else if (r == -EINVAL)
                tg_warn("window state %s not used (%s): starting with no open windows",
                        p->state_path, err);
        else
                tg_warn("window state %s not readable (%s): starting with no open windows",
                        p->state_path, strerror(-r));
        if (r && r != -ENOENT)
                p->c.state_rejected++;
}

tg_pipeline_t *tg_pipeline_new(const struct tg_config *cfg,
                               tg_kafka_sink_t *sink, const struct tg_clock *clock,
                               const volatile int *stop, char *errstr,
                               size_t errstr_size) {
        struct tg_window_conf wc = {
                .size_ms = cfg->window_size_ms,
                .hop_ms = cfg->window_hop_ms ? cfg->window_hop_ms : cfg->window_size_ms,
                .grace_ms = cfg->window_grace_ms,
                .idle_timeout_ms = cfg->window_idle_timeout_ms,
                .max_future_ms = cfg->window_max_future_ms,
                .max_sensors = (uint32_t)cfg->window_max_sensors,
                .max_fields = (uint32_t)cfg->window_max_fields,
                .max_field_names = (uint32_t)cfg->window_max_field_names,
                .close = strcmp(cfg->window_close, "global") ? TG_CLOSE_PER_SENSOR
                                                             : TG_CLOSE_GLOBAL,
                .evict_after_ms = cfg->window_evict_after_ms,
                .update_interval_ms = strcmp(cfg->window_emit, "update")
                                              ? 0
                                              : cfg->window_update_interval_ms,
        };
        tg_pipeline_t *p = calloc(1, sizeof(*p));

        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        {
                struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
                size_t i;

                p->nsubs = tg_config_subscriptions(cfg, subs);
                for (i = 0; i < p->nsubs; i++) {
                        if (sub_init(&p->subs[i], cfg, &subs[i], errstr, errstr_size)) {
                                subs_free(p);
                                free(p);
                                return NULL;
                        }
                }
        }
        p->sink = sink;
        p->clock = clock;
        p->stop = stop;
        pthread_mutex_init(&p->lock, NULL);
        snprintf(p->state_path, sizeof(p->state_path), "%s/windows.state",
                 cfg->state_dir);
        if (!(p->engine = tg_window_engine_new(&wc, clock, on_window, p, errstr,
                                               errstr_size))) {
                pthread_mutex_destroy(&p->lock);
                subs_free(p);
                free(p);
                return NULL;
        }
        tg_info("window engine: %zu bytes for %u sensors",
                tg_window_engine_memory(p->engine), wc.max_sensors);
        state_load(p);
        return p;
}

void tg_pipeline_destroy(tg_pipeline_t *p) {
        int r;

        if (!p)
                return;
        r = tg_window_engine_save(p->engine, p->state_path);
        if (r)
                tg_err("cannot save open windows to %s: %s; they are lost",
                       p->state_path, strerror(-r));
        else
                tg_info("saved open windows to %s", p->state_path);
        tg_window_engine_destroy(p->engine);
        pthread_mutex_destroy(&p->lock);
        subs_free(p);
        free(p);
}

int tg_pipeline_ingest(tg_pipeline_t *p, const char *mqtt_topic,
                       const void *payload, size_t len) {
        struct tg_reading *r = &p->reading;
        enum tg_decode_err derr;
        enum tg_window_verdict v;
        int64_t arrival_ms = tg_clock_now(p->clock);
        struct sub_state *sub;
        size_t n;
        int rc = 0;

        pthread_mutex_lock(&p->lock);
        p->c.received++;
        sub = sub_for(p, mqtt_topic);
        sub->opts.arrival_ms = arrival_ms;
        if (sub->topic_pattern &&
            tg_topic_sensor(sub->topic_pattern, mqtt_topic, &sub->opts.sensor,
                            &sub->opts.sensor_len))
                derr = TG_DECODE_MISSING_ID; /* the topic has no {sensor} level */
        else
                derr = tg_decode_ex(sub->format, payload, len, &sub->opts, r);
        if (derr) {
                p->c.decode_failed[derr]++;
                tg_warn("mqtt %s: payload of %zu bytes refused: %s", mqtt_topic,
                        len, tg_decode_err_name(derr));
                dead_letter(p, mqtt_topic, payload, len, tg_decode_err_name(derr),
                            tg_decode_err_message(derr), arrival_ms);
                goto out;
        }
        p->c.decoded++;
        if (r->ts_from_arrival)
                p->c.ts_from_arrival++;

        v = tg_window_engine_add(p->engine, r);
        switch (v) {
        case TG_WINDOW_FUTURE:
                tg_warn("sensor %s: timestamp %lld is in the future: refused",
                        r->sensor, (long long)r->ts_ms);
                dead_letter(p, mqtt_topic, payload, len, "future_timestamp",
                            "the timestamp is further ahead of the gateway's clock "
                            "than window.max_future", arrival_ms);
                goto out;
        case TG_WINDOW_OUT_OF_RANGE:
                tg_warn("sensor %s: timestamp %lld out of range: refused",
                        r->sensor, (long long)r->ts_ms);
                dead_letter(p, mqtt_topic, payload, len, "timestamp_out_of_range",
                            "the timestamp lies outside the range windows can hold",
                            arrival_ms);
                goto out;
        case TG_WINDOW_TABLE_FULL:
                tg_warn("sensor %s: sensor table full (window.max_sensors): "
                        "reading forwarded but not windowed", r->sensor);
                break;
        case TG_WINDOW_LATE:
                tg_dbg("sensor %s: late reading at %lld", r->sensor,
                       (long long)r->ts_ms);
                break;
        case TG_WINDOW_ACCEPTED:
                break;
        }

        /* Every valid reading is forwarded, late ones included. */
        n = tg_encode_raw_record(r, p->raw_json, sizeof(p->raw_json));
        if (!n) {
                p->c.forward_failed++;
                tg_err("sensor %s: raw record too large", r->sensor);
                goto out;
        }
        rc = tg_kafka_sink_produce(p->sink, TG_SINK_RAW, r->sensor, r->sensor_len,
                                   p->raw_json, n, r->ts_ms, p->stop);
        if (rc == 0)
                p->c.forwarded++;
        else
                p->c.forward_failed++;
        if (rc == 0 && v == TG_WINDOW_LATE)
                rc = tg_kafka_sink_produce(p->sink, TG_SINK_LATE, r->sensor,
                                           r->sensor_len, p->raw_json, n, r->ts_ms,
                                           p->stop);
out:
        pthread_mutex_unlock(&p->lock);
        return rc == -ECANCELED ? rc : 0;
}

void tg_pipeline_tick(tg_pipeline_t *p) {
        pthread_mutex_lock(&p->lock);
        tg_window_engine_tick(p->engine);
        pthread_mutex_unlock(&p->lock);
}

void tg_pipeline_counters(tg_pipeline_t *p, struct tg_pipeline_counters *out) {
        pthread_mutex_lock(&p->lock);
        *out = p->c;
        tg_window_engine_counters(p->engine, &out->window);
        pthread_mutex_unlock(&p->lock);
}
