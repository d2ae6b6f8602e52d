/* worker.c - one message's way: decoded per subscription, windowed, and produced as raw, aggregate or dead-letter records. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec_senml.h"
#include "downsample.h"
#include "log.h"
#include "msgprops.h"
#include "records.h"
#include "sparkplug.h"

#define RAW_JSON_MAX 4096
#define KEEP_MAX TG_READING_FIELDS_MAX
#define READINGS_MAX 64          /* readings one SenML pack may hold */
/* The direct path (a thread that must not block) tries this many times,
 * a millisecond apart, when the sink is full. */
#define NO_WAIT_TRIES 100

/* How one subscription's payloads become readings. */
struct sub_state {
        char *filter;                  /* the MQTT topic filter */
        enum tg_format format;
        struct tg_decode_opts opts;    /* arrival_ms and sensor set per message */
        struct tg_senml_opts senml;
        const char *topic_pattern;     /* sensor_id = topic:<pattern>, or NULL */
        char *strings;                 /* copies the options point into */
        const char *keep[KEEP_MAX];
        struct tg_raw_rules raw;       /* forward.*: what of the raw stream is sent */
        int raw_all;                   /* every field under "all": raw records as ever */
        const char *ts_property;       /* MQTT 5 user property with the event time, or NULL */
        size_t ts_property_len;
};

struct tg_worker {
        struct sub_state subs[TG_SUBSCRIPTIONS_MAX];
        /* Sparkplug B (docs/sparkplug.md): one decoder for every subscription
         * of that format, NULL when none is; its records, which carry every
         * metric, are built in their own larger buffer. */
        tg_sparkplug_t *sp;
        char *sp_json;
        size_t sp_json_size;
        /* Where rebirth requests go: set and cleared by another thread
         * (tg_worker_set_publish()), under a lock of its own, which is held
         * only for the call, one that never blocks: never the worker's
         * lock, which a forwarder waiting for Kafka may hold for long. */
        pthread_mutex_t publish_lock;
        tg_worker_publish_fn *publish;
        void *publish_opaque;
        size_t nsubs;
        const struct tg_sink *sink;
        int has[TG_SINK__COUNT];       /* the sink's configured topics */
        tg_ledger_t *ledger;
        const _Atomic int *stop;
        tg_window_engine_t *engine;
        tg_status_t *status;           /* the status page's rows, or NULL */
        tg_downsample_t *ds;           /* NULL when every subscription forwards all */
        char sensor_prefix[TG_SENSOR_ID_MAX]; /* input.sensor_prefix */
        size_t sensor_prefix_len;

        _Atomic int64_t next_tick;     /* the engine's periodic work is due */

        /* the message in work */
        uint64_t tag;
        unsigned outcome;
        int may_wait;
        /* its MQTT 5 properties as Kafka headers, built once per message
         * that has a block, in storage of their own */
        struct tg_sink_header hdrs[4 + TG_MSGPROPS_HEADERS_MAX];
        size_t nhdrs;
        char hdr_names[TG_MSGPROPS_NAMES_MAX];
        const struct tg_clock *clock;  /* message expiry */

        struct tg_worker_counters c;
        struct tg_reading readings[READINGS_MAX];
        char raw_json[RAW_JSON_MAX];
        char agg_json[TG_RECORD_AGG_MAX];
        struct tg_raw_rule rules[TG_READING_FIELDS_MAX];
        struct tg_raw_point points[TG_DOWNSAMPLE_POINTS_MAX];

        pthread_mutex_t pub_lock;      /* the published copy of c */
        struct tg_worker_counters pub;
};

/* --- producing, with delivery tracking ------------------------------- */

static int emit(struct tg_worker *w, enum tg_sink_topic topic, const char *key,
                size_t key_len, const void *value, size_t len, int64_t ts,
                const struct tg_sink_header *h, size_t nh) {
        const struct tg_sink *s = w->sink;
        int r, tries = 0;

        /* An optional topic that is not configured: nothing is produced,
         * so nothing may be waited for either. */
        if (!w->has[topic])
                return 0;
        if (w->tag)
                tg_ledger_produced(w->ledger, w->tag);
        /* The sink is full while Kafka is slow or down. The forwarder waits
         * here, serving deliveries; it holds nothing another thread waits
         * for (the spool goes on taking messages, metrics read published
         * copies). Before reading the next message it checks for room, so
         * it waits here only for a burst of aggregates. */
        while ((r = s->produce(s->ctx, topic, key, key_len, value, len, ts, h, nh, w->tag)) ==
               -ENOBUFS) {
                if (!tries++)
                        w->c.sink_full_waits++;
                if (atomic_load(w->stop) || (!w->may_wait && tries > NO_WAIT_TRIES))
                        break;
                if (w->may_wait)
                        s->poll(s->ctx, 10);
                else
                        usleep(1000);
        }
        if (r) {
                if (w->tag)
                        tg_ledger_unproduced(w->ledger, w->tag);
                w->outcome |= TG_OUTCOME_FAILED;
        }
        return r;
}

/* Which mode produced a record (README, topics): aggregates are of every
 * reading, whatever forward.mode sends raw. */
static const struct tg_sink_header agg_mode = {"tg.mode", "window", 6};

/* Called by the engine for each window that closes. */
static void on_window(void *opaque, const struct tg_window_result *win) {
        struct tg_worker *w = opaque;
        size_t n = tg_record_aggregate(w->engine, win, w->agg_json, sizeof(w->agg_json));

        if (!n) {
                tg_err_limited("window %.*s/%lld: aggregate record too large, not sent",
                       (int)win->sensor_len, win->sensor, (long long)win->start);
                w->c.forward_failed++;
                w->outcome |= TG_OUTCOME_FAILED;
                return;
        }
        /* Kafka cannot carry a time <= 0 (docs/windows.md 1.2): a window
         * starting at or before the epoch is stamped TG_TS_MIN, its earliest reading's. */
        if (win->final)
                tg_status_window(w->status, win,
                                 win->nfields ? tg_window_field_name(w->engine,
                                                                     win->fields[0].field)
                                              : NULL);
        if (emit(w, TG_SINK_AGG, win->sensor, win->sensor_len, w->agg_json, n,
                 win->start > TG_TS_MIN ? win->start : TG_TS_MIN, &agg_mode, 1) == 0)
                w->c.aggregates++;
        else
                w->c.forward_failed++;
}

/* Everything that cannot become a valid reading goes to the dead-letter
 * topic with its bytes unchanged and the reason in headers. */
static void dead_letter(struct tg_worker *w, const char *mqtt_topic,
                        const void *payload, size_t len, const char *reason,
                        const char *message, int64_t arrival_ms) {
        char arrival[24];
        /* the tg.* headers before the message's own mqtt.* ones (hdrs[4..]) */
        struct tg_sink_header *h = w->hdrs;

        if (!w->has[TG_SINK_DLQ])
                return; /* topics.dlq unset: logged and counted per reason only */
        h[0] = (struct tg_sink_header){"tg.reason", reason, strlen(reason)};
        h[1] = (struct tg_sink_header){"tg.error", message, strlen(message)};
        h[2] = (struct tg_sink_header){"tg.mqtt_topic", mqtt_topic, strlen(mqtt_topic)};
        h[3] = (struct tg_sink_header){"tg.arrival_ms", arrival, 0};
        h[3].len = (size_t)snprintf(arrival, sizeof(arrival), "%lld",
                                    (long long)arrival_ms);
        if (emit(w, TG_SINK_DLQ, mqtt_topic, strlen(mqtt_topic), payload, len,
                 arrival_ms, h, 4 + w->nhdrs) == 0)
                w->c.dead_lettered++;
        else
                w->c.forward_failed++;
}

/* A subscription's forward.max_silence, validated when it was set. */
static int64_t max_silence_of(const char *text) {
        int64_t ms = 0;

        tg_parse_duration_ms(text, &ms);
        return ms;
}

static int sub_init(struct sub_state *st, const struct tg_config *cfg,
                    const struct tg_subscription *sub, char *errstr,
                    size_t errstr_size) {
        const char *id = sub->value[TG_SUB_SENSOR_ID];
        size_t lt = strlen(sub->value[TG_SUB_TOPIC]) + 1, li = strlen(id) + 1,
               lf = strlen(sub->value[TG_SUB_TS_FIELD]) + 1,
               lk = strlen(sub->value[TG_SUB_FIELDS]) + 1,
               lp = strlen(sub->value[TG_SUB_TS_PROPERTY]) + 1;
        struct tg_decode_opts *o = &st->opts;
        char *save = NULL, *tok, *idc, *keep;

        if (!(st->strings = malloc(lt + li + lf + lk + lp))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -ENOMEM;
        }
        st->filter = memcpy(st->strings, sub->value[TG_SUB_TOPIC], lt);
        idc = memcpy(st->strings + lt, id, li);
        *o = tg_decode_defaults;
        o->ts_key = memcpy(st->strings + lt + li, sub->value[TG_SUB_TS_FIELD], lf);
        keep = memcpy(st->strings + lt + li + lf, sub->value[TG_SUB_FIELDS], lk);
        if (lp > 1) {
                st->ts_property = memcpy(st->strings + lt + li + lf + lk,
                                         sub->value[TG_SUB_TS_PROPERTY], lp);
                st->ts_property_len = lp - 1;
        }
        if (!strncmp(idc, "topic:", 6)) {
                st->topic_pattern = idc + 6;
                o->id_key = NULL;
        } else {
                o->id_key = idc + 8; /* payload: */
        }
        tg_format_parse(sub->value[TG_SUB_FORMAT], &st->format);
        tg_ts_unit_parse(sub->value[TG_SUB_TS_UNIT], &o->ts_unit);
        o->ts_from_arrival = !strcmp(sub->value[TG_SUB_TS_MISSING], "arrival");
        st->senml.names = strcmp(sub->value[TG_SUB_SENML_NAMES], "sensor")
                                  ? TG_SENML_NAME_IS_FIELD
                                  : TG_SENML_NAME_IS_SENSOR;
        st->senml.max_string = (size_t)cfg->limit_string;
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
        if (tg_raw_rules_parse(&st->raw, sub->value[TG_SUB_FWD_MODE],
                               sub->value[TG_SUB_FWD_DEVIATION], sub->value[TG_SUB_FWD_SPAN],
                               sub->value[TG_SUB_FWD_MAX_SILENCE]
                                       ? max_silence_of(sub->value[TG_SUB_FWD_MAX_SILENCE])
                                       : cfg->fwd_max_silence_ms,
                               sub->value[TG_SUB_FWD_FIELDS], errstr, errstr_size))
                return -EINVAL;
        st->raw_all = tg_raw_rules_all(&st->raw);
        return 0;
}

size_t tg_worker_sub_index(const tg_worker_t *w, const char *topic) {
        size_t i;

        if (w->nsubs == 1) /* the usual case: nothing to match */
                return 0;
        for (i = 0; i < w->nsubs; i++)
                if (tg_topic_filter_match(w->subs[i].filter, topic))
                        return i;
        return 0;
}

size_t tg_worker_nsubs(const tg_worker_t *w) {
        return w->nsubs;
}

const char *tg_worker_sub_filter(const tg_worker_t *w, size_t i) {
        return i < w->nsubs ? w->subs[i].filter : NULL;
}

/* --- the work on one message ------------------------------------------ */

static enum tg_decode_err decode(struct tg_worker *w, struct sub_state *sub,
                                 const char *topic, const void *payload,
                                 size_t len, int64_t arrival_ms, size_t *n) {
        enum tg_format fmt = tg_format_detect(sub->format, payload, len);

        *n = 0;
        sub->opts.arrival_ms = arrival_ms;
        sub->senml.now_ms = arrival_ms;
        if (fmt == TG_FORMAT_SENML_JSON)
                return tg_decode_senml_json(payload, len, &sub->senml, w->readings,
                                            READINGS_MAX, n);
        if (fmt == TG_FORMAT_SENML_CBOR)
                return tg_decode_senml_cbor(payload, len, &sub->senml, w->readings,
                                            READINGS_MAX, n);
        if (sub->topic_pattern &&
            tg_topic_sensor(sub->topic_pattern, topic, &sub->opts.sensor,
                            &sub->opts.sensor_len))
                return TG_DECODE_MISSING_ID; /* the topic has no {sensor} level */
        *n = 1;
        return tg_decode_ex(fmt, payload, len, &sub->opts, &w->readings[0]);
}

/* The reading's values as forward.mode selects: the compressor's points,
 * those of one time and mode in one record, to topics.compressed if set,
 * else to topics.raw. */
static void forward_downsampled(struct tg_worker *w, struct sub_state *sub,
                                const struct tg_reading *r) {
        enum tg_sink_topic to = w->has[TG_SINK_COMPRESSED] ? TG_SINK_COMPRESSED : TG_SINK_RAW;
        size_t np, i, j, k, n;
        struct tg_raw_point group[TG_DOWNSAMPLE_POINTS_MAX];
        unsigned char done[TG_DOWNSAMPLE_POINTS_MAX] = {0};

        tg_raw_rules_for(&sub->raw, r, w->rules);
        np = tg_downsample_add(w->ds, r, w->rules, w->points);
        for (i = 0; i < np; i++) {
                const struct tg_raw_point *p = &w->points[i];

                if (done[i])
                        continue;
                if (p->mode == TG_RAW_ALL && w->rules[p->field].mode != TG_RAW_ALL)
                        tg_warn_limited("sensor %s: field %s has no room in the compressors' "
                                        "table (window.max_sensors, forward.max_fields): sent "
                                        "whole", r->sensor, r->fields[p->field].name);
                for (j = i, k = 0; j < np; j++)
                        if (!done[j] && w->points[j].ts == p->ts &&
                            w->points[j].mode == p->mode &&
                            w->points[j].out_of_order == p->out_of_order) {
                                group[k++] = w->points[j];
                                done[j] = 1;
                        }
                n = tg_record_downsampled(r, group, k, w->raw_json, sizeof(w->raw_json));
                if (!n) {
                        w->c.forward_failed++;
                        w->outcome |= TG_OUTCOME_FAILED;
                        tg_err_limited("sensor %s: record too large", r->sensor);
                        continue;
                }
                /* the record names its mode; no header repeats it */
                if (emit(w, to, r->sensor, r->sensor_len, w->raw_json, n, p->ts, NULL, 0) == 0)
                        w->c.downsampled++;
                else
                        w->c.forward_failed++;
        }
}

/* One reading the engine has taken, with its verdict @p v. */
static void forward_reading(struct tg_worker *w, struct sub_state *sub, const char *topic,
                            const void *payload, size_t len,
                            struct tg_reading *r, enum tg_window_verdict v,
                            int64_t arrival_ms, size_t sp_index) {
        char *json = w->raw_json;
        size_t n;
        int raw;

        w->c.decoded++;
        if (r->ts_from_arrival)
                w->c.ts_from_arrival++;
        switch (v) {
        case TG_WINDOW_FUTURE:
                tg_warn_limited("sensor %s: timestamp %lld is in the future: refused",
                        r->sensor, (long long)r->ts_ms);
                dead_letter(w, topic, payload, len, "future_timestamp",
                            "the timestamp is further ahead of the gateway's clock "
                            "than window.max_future", arrival_ms);
                return;
        case TG_WINDOW_OUT_OF_RANGE:
                tg_warn_limited("sensor %s: timestamp %lld out of range: refused",
                        r->sensor, (long long)r->ts_ms);
                dead_letter(w, topic, payload, len, "timestamp_out_of_range",
                            "the timestamp lies outside the range windows can hold",
                            arrival_ms);
                return;
        case TG_WINDOW_TABLE_FULL:
                tg_warn_limited("sensor %s: sensor table full (window.max_sensors): "
                        "reading forwarded but not windowed", r->sensor);
                break;
        case TG_WINDOW_LATE:
                tg_dbg("sensor %s: late reading at %lld", r->sensor,
                       (long long)r->ts_ms);
                break;
        case TG_WINDOW_ACCEPTED:
                break;
        }

        /* Every valid reading is forwarded, late ones included: whole to
         * the raw topic, or as forward.mode selects (docs/downsample.md).
         * The raw record is built only for a topic that takes it. */
        raw = sub->raw_all || w->has[TG_SINK_COMPRESSED];
        if (raw || (v == TG_WINDOW_LATE && w->has[TG_SINK_LATE])) {
                if (sp_index == SIZE_MAX) {
                        n = tg_encode_raw_record(r, json, sizeof(w->raw_json));
                } else { /* Sparkplug: the record names every metric (7) */
                        json = w->sp_json;
                        n = tg_sparkplug_raw_record(w->sp, sp_index, r, json, w->sp_json_size);
                }
                if (!n) {
                        w->c.forward_failed++;
                        w->outcome |= TG_OUTCOME_FAILED;
                        tg_err_limited("sensor %s: raw record too large", r->sensor);
                        return;
                }
                if (raw) {
                        if (emit(w, TG_SINK_RAW, r->sensor, r->sensor_len, json, n,
                                 r->ts_ms, w->hdrs + 4, w->nhdrs) == 0)
                                w->c.forwarded++;
                        else
                                w->c.forward_failed++;
                }
                if (v == TG_WINDOW_LATE)
                        emit(w, TG_SINK_LATE, r->sensor, r->sensor_len, json, n,
                             r->ts_ms, w->hdrs + 4, w->nhdrs);
        }
        /* After the raw record's last use: its buffer is reused. */
        if (!sub->raw_all && r->nfields)
                forward_downsampled(w, sub, r);
        /* Taken, whether or not forward.mode sent its values (yet); a
         * record that failed marks the message failed, which prevails. */
        w->outcome |= TG_OUTCOME_FORWARDED;
}

/*
 * Message Expiry (MQTT 5 3.3.2.3.3): the broker hands the message on with
 * what is left of its interval; once that has passed in the spool (Kafka
 * down, a backlog) it is not forwarded, as a broker would not deliver it.
 * Past means strictly after arrival + interval, on the clock arrival was
 * read from, so a message handled at once is never expired. Counted and
 * logged; the ledger counts it with the skipped messages.
 */
static int expired(struct tg_worker *w, const char *topic, const void *props,
                   size_t props_len, int64_t arrival_ms) {
        uint32_t s;
        int64_t now;

        if (!tg_msgprops_expiry(props, props_len, &s))
                return 0;
        now = tg_clock_now(w->clock);
        if (now <= arrival_ms + (int64_t)s * 1000)
                return 0;
        w->c.expired++;
        tg_warn_limited("mqtt %s: message expired in the spool (Message Expiry Interval %u s, "
                        "arrived %lld ms ago): not forwarded", topic, s,
                        (long long)(now - arrival_ms));
        return 1;
}

/* The event time a subscription's timestamp.property gives: 1 with *ts;
 * 0 when the message has no such property; a decode error when it is no
 * time in the subscription's unit. */
static int property_ts(const struct sub_state *sub, const void *props, size_t props_len,
                       int64_t *ts, enum tg_decode_err *err) {
        const char *v;
        size_t vlen;
        char text[48], *end;

        if (!sub->ts_property || !props_len ||
            !tg_msgprops_user(props, props_len, sub->ts_property, sub->ts_property_len, &v,
                              &vlen))
                return 0;
        if (sub->opts.ts_unit == TG_TS_UNIT_RFC3339) {
                *err = tg_ts_from_rfc3339(v, vlen, ts);
                return *err == TG_DECODE_OK;
        }
        *err = TG_DECODE_INVALID_TS;
        if (!vlen || vlen >= sizeof(text) || (*v != '-' && (*v < '0' || *v > '9')))
                return -1;
        memcpy(text, v, vlen);
        text[vlen] = '\0';
        if (!strpbrk(text, ".eE")) {
                long long i;

                errno = 0;
                i = strtoll(text, &end, 10);
                if (*end || errno)
                        return -1;
                *err = tg_ts_from_int(i, sub->opts.ts_unit, ts);
        } else {
                double d = strtod(text, &end);

                if (*end)
                        return -1;
                *err = tg_ts_from_double(d, sub->opts.ts_unit, ts);
        }
        return *err == TG_DECODE_OK ? 1 : -1;
}

/* --- Sparkplug B (docs/sparkplug.md) ------------------------------------ */

/* A death certificate: its sensors' windows closed now, and its record. */
static void sparkplug_death(struct tg_worker *w, const struct tg_sp_message *m) {
        char id[TG_SENSOR_ID_MAX + 1];
        size_t n, len = w->sensor_prefix_len + m->death_id_len;

        if (len > TG_SENSOR_ID_MAX) {
                /* No sensor of it has an id this long: its readings were refused (bad_id). */
                tg_warn_limited("sparkplug: death of %s: too long with input.sensor_prefix: "
                                "no windows to close, no record", m->death_id);
                return;
        }
        memcpy(id, w->sensor_prefix, w->sensor_prefix_len);
        memcpy(id + w->sensor_prefix_len, m->death_id, m->death_id_len);
        id[len] = '\0';
        /* The node's own sensor and every one under it (its devices, or its
         * metrics with sparkplug.sensor: metric). */
        tg_window_engine_close_sensors(w->engine, id, len, 1);
        n = tg_sparkplug_death_record(w->sp, id, len, w->sp_json, w->sp_json_size);
        if (!n || !w->has[TG_SINK_RAW]) {
                if (!n)
                        w->c.forward_failed++;
                return;
        }
        if (emit(w, TG_SINK_RAW, id, len, w->sp_json, n, m->ts_ms > TG_TS_MIN ? m->ts_ms
                                                                               : TG_TS_MIN,
                 w->hdrs + 4, w->nhdrs) == 0)
                w->c.sp_deaths++;
        else
                w->c.forward_failed++;
        w->outcome |= TG_OUTCOME_FORWARDED;
}

static unsigned process_sparkplug(struct tg_worker *w, struct sub_state *sub,
                                  const char *topic, const void *payload, size_t len,
                                  int64_t arrival_ms) {
        enum tg_window_verdict verdicts[READINGS_MAX];
        struct tg_sp_message m;
        enum tg_sp_reason r = tg_sparkplug_decode(w->sp, topic, payload, len, arrival_ms, &m);
        size_t n, i, first;

        if (m.rebirth) {
                uint8_t req[TG_SP_REBIRTH_MAX];
                size_t k = tg_sparkplug_rebirth_payload(arrival_ms, req, sizeof(req));
                int sent;

                pthread_mutex_lock(&w->publish_lock);
                sent = w->publish && !w->publish(w->publish_opaque, m.rebirth_topic, req, k);
                pthread_mutex_unlock(&w->publish_lock);
                if (!sent)
                        w->c.sp_rebirths_failed++;
                else
                        tg_info_limited("sparkplug: asked %s for a rebirth (%s)",
                                        m.rebirth_topic, tg_sp_reason_name(r));
        }
        if (r != TG_SP_OK) {
                if (r == TG_SP_NOT_DECODABLE)
                        w->c.decode_failed[TG_DECODE_NOT_DECODABLE]++;
                else if (r == TG_SP_TOO_LARGE)
                        w->c.decode_failed[TG_DECODE_TOO_LARGE]++;
                tg_warn_limited("mqtt %s: %s: %s", topic, tg_sp_reason_name(r), m.detail);
                dead_letter(w, topic, payload, len, tg_sp_reason_name(r), m.detail, arrival_ms);
        }
        if (m.refused || m.type == TG_SP_STATE || m.type == TG_SP_NCMD || m.type == TG_SP_DCMD) {
                /* Ignored messages carry no reading either: refused in the
                 * accounting (pipeline.h), without a dead letter. */
                w->outcome |= TG_OUTCOME_REFUSED;
                return w->outcome;
        }
        if (m.death)
                sparkplug_death(w, &m);
        while ((n = tg_sparkplug_readings(w->sp, w->readings, READINGS_MAX, &first))) {
                for (i = 0; i < n; i++) {
                        struct tg_reading *rd = &w->readings[i];

                        verdicts[i] = TG_WINDOW_ACCEPTED;
                        if (w->sensor_prefix_len &&
                            tg_reading_prefix_sensor(rd, w->sensor_prefix, w->sensor_prefix_len)) {
                                w->c.decode_failed[TG_DECODE_BAD_ID]++;
                                tg_warn_limited("sparkplug: sensor %s: too long with "
                                                "input.sensor_prefix: refused", rd->sensor);
                                rd->sensor_len = 0; /* skipped below */
                                continue;
                        }
                        /* Only metrics for the raw record: nothing to window. */
                        if (rd->nfields)
                                verdicts[i] = tg_window_engine_add(w->engine, rd);
                }
                for (i = 0; i < n; i++)
                        if (w->readings[i].sensor_len)
                                forward_reading(w, sub, topic, payload, len, &w->readings[i],
                                                verdicts[i], arrival_ms, first + i);
        }
        if (!(w->outcome & TG_OUTCOME_FORWARDED))
                w->outcome |= TG_OUTCOME_REFUSED;
        return w->outcome;
}

void tg_worker_set_publish(tg_worker_t *w, tg_worker_publish_fn *fn, void *opaque) {
        pthread_mutex_lock(&w->publish_lock);
        w->publish = fn;
        w->publish_opaque = opaque;
        pthread_mutex_unlock(&w->publish_lock);
}

unsigned tg_worker_process(tg_worker_t *w, size_t sub_index, const char *topic,
                           const void *props, size_t props_len, const void *payload,
                           size_t len, int64_t arrival_ms, uint64_t tag, int may_wait) {
        struct sub_state *sub = &w->subs[sub_index < w->nsubs ? sub_index : 0];
        enum tg_window_verdict verdicts[READINGS_MAX];
        enum tg_decode_err derr, perr = TG_DECODE_OK;
        int64_t fallback_ms = arrival_ms;
        int from_arrival = 0, prop = 0;
        size_t n, i;

        w->c.received++;
        w->c.last_arrival_ms = arrival_ms;
        w->outcome = 0;
        w->tag = tag;
        w->may_wait = may_wait;
        w->nhdrs = 0;
        /* MQTT 5 properties: nothing to do for a message without (3.1.1). */
        if (props_len) {
                if (expired(w, topic, props, props_len, arrival_ms))
                        return w->outcome;
                w->nhdrs = tg_msgprops_headers(props, props_len, w->hdrs + 4,
                                               TG_MSGPROPS_HEADERS_MAX, w->hdr_names,
                                               sizeof(w->hdr_names));
                /* Event time: the payload's, else the property's, else
                 * arrival if timestamp.missing allows: the decoders' stand-in
                 * for a missing time becomes the property's (for SenML, the
                 * time relative times count from). */
                prop = property_ts(sub, props, props_len, &fallback_ms, &perr);
                if (prop) {
                        from_arrival = sub->opts.ts_from_arrival;
                        sub->opts.ts_from_arrival = prop > 0;
                }
        }
        /* Sparkplug metrics carry their own times (docs/sparkplug.md). */
        if (sub->format == TG_FORMAT_SPARKPLUG) {
                if (prop)
                        sub->opts.ts_from_arrival = from_arrival;
                return process_sparkplug(w, sub, topic, payload, len, arrival_ms);
        }
        derr = decode(w, sub, topic, payload, len, fallback_ms, &n);
        if (prop) {
                sub->opts.ts_from_arrival = from_arrival;
                if (prop < 0 && derr == TG_DECODE_MISSING_TS)
                        derr = perr; /* no time in the payload, a bad one in the property */
                for (i = 0; prop > 0 && !derr && i < n; i++)
                        if (w->readings[i].ts_from_arrival) {
                                w->readings[i].ts_from_arrival = 0;
                                w->c.ts_from_property++;
                        }
        }
        for (i = 0; !derr && w->sensor_prefix_len && i < n; i++)
                if (tg_reading_prefix_sensor(&w->readings[i], w->sensor_prefix,
                                             w->sensor_prefix_len))
                        derr = TG_DECODE_BAD_ID; /* too long with the prefix */
        if (derr) {
                w->c.decode_failed[derr]++;
                tg_warn_limited("mqtt %s: payload of %zu bytes refused: %s", topic, len,
                        tg_decode_err_name(derr));
                dead_letter(w, topic, payload, len, tg_decode_err_name(derr),
                            tg_decode_err_detail(derr), arrival_ms);
                w->outcome |= TG_OUTCOME_REFUSED;
                return w->outcome;
        }
        /* A SenML pack's readings (often of many sensors) go to the engine
         * together, which fetches the next ones' memory while adding one;
         * windows they close are produced before their raw records, which
         * go to another topic. */
        tg_window_engine_add_batch(w->engine, w->readings, n, verdicts);
        for (i = 0; i < n; i++)
                forward_reading(w, sub, topic, payload, len, &w->readings[i], verdicts[i],
                                arrival_ms, SIZE_MAX);
        if (!(w->outcome & TG_OUTCOME_FORWARDED))
                w->outcome |= TG_OUTCOME_REFUSED; /* every reading refused */
        return w->outcome;
}

int tg_worker_tick(tg_worker_t *w, int64_t now_ms, int may_wait) {
        if (now_ms < atomic_load_explicit(&w->next_tick, memory_order_relaxed))
                return 0;
        atomic_store_explicit(&w->next_tick, now_ms + TG_WORKER_TICK_MS, memory_order_relaxed);
        /* Windows closed by the clock belong to no message. */
        w->tag = 0;
        w->outcome = 0;
        w->may_wait = may_wait;
        tg_window_engine_tick(w->engine);
        /* The status rows read the engine: once a tick, not per batch. */
        tg_status_publish(w->status, w->engine);
        tg_worker_publish(w);
        return 1;
}

int tg_worker_tick_overdue(const tg_worker_t *w, int64_t now_ms, int64_t late_ms) {
        return now_ms >= atomic_load_explicit(&((tg_worker_t *)w)->next_tick,
                                              memory_order_relaxed) + late_ms;
}

void tg_worker_touch_all(tg_worker_t *w) {
        tg_window_engine_touch_all(w->engine);
}

tg_window_engine_t *tg_worker_engine(tg_worker_t *w) {
        return w->engine;
}

tg_status_t *tg_worker_status(tg_worker_t *w) {
        return w->status;
}

tg_downsample_t *tg_worker_downsample(tg_worker_t *w) {
        return w->ds;
}

tg_sparkplug_t *tg_worker_sparkplug(tg_worker_t *w) {
        return w->sp;
}

void tg_worker_publish(tg_worker_t *w) {
        tg_window_engine_counters(w->engine, &w->c.window);
        if (w->ds)
                tg_downsample_counters(w->ds, &w->c.raw_values);
        if (w->sp)
                tg_sparkplug_counters(w->sp, &w->c.sparkplug);
        pthread_mutex_lock(&w->pub_lock);
        w->pub = w->c;
        pthread_mutex_unlock(&w->pub_lock);
}

void tg_worker_counters(tg_worker_t *w, struct tg_worker_counters *out) {
        pthread_mutex_lock(&w->pub_lock);
        *out = w->pub;
        pthread_mutex_unlock(&w->pub_lock);
}

tg_worker_t *tg_worker_new(const struct tg_config *cfg, const struct tg_sink *sink,
                           tg_ledger_t *ledger, const struct tg_clock *clock,
                           const _Atomic int *stop, char *errstr, size_t errstr_size) {
        struct tg_window_conf wc = {
                .size_ms = cfg->window_size_ms,
                .hop_ms = cfg->window_hop_ms ? cfg->window_hop_ms : cfg->window_size_ms,
                .grace_ms = cfg->window_grace_ms,
                .idle_timeout_ms = cfg->window_idle_timeout_ms,
                .max_future_ms = cfg->window_max_future_ms,
                .max_sensors = (uint32_t)cfg->window_max_sensors,
                .max_fields = (uint32_t)cfg->window_max_fields,
                .reserved_fields = (uint32_t)cfg->window_reserved_fields,
                .wide_windows = (uint32_t)cfg->window_wide_windows,
                .max_field_names = (uint32_t)cfg->window_max_field_names,
                .close = strcmp(cfg->window_close, "global") ? TG_CLOSE_PER_SENSOR
                                                             : TG_CLOSE_GLOBAL,
                .evict_after_ms = cfg->window_evict_after_ms,
                .update_interval_ms = strcmp(cfg->window_emit, "update")
                                              ? 0
                                              : cfg->window_update_interval_ms,
        };
        struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
        tg_worker_t *w = calloc(1, sizeof(*w));
        size_t i;
        int t;

        if (!w) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        pthread_mutex_init(&w->pub_lock, NULL);
        pthread_mutex_init(&w->publish_lock, NULL);
        w->sink = sink;
        w->ledger = ledger;
        w->stop = stop;
        w->clock = clock;
        /* tg_config_validate() keeps it shorter than a sensor id. */
        w->sensor_prefix_len = strlen(cfg->input_sensor_prefix);
        if (w->sensor_prefix_len >= sizeof(w->sensor_prefix))
                w->sensor_prefix_len = sizeof(w->sensor_prefix) - 1;
        memcpy(w->sensor_prefix, cfg->input_sensor_prefix, w->sensor_prefix_len);
        for (t = 0; t < TG_SINK__COUNT; t++)
                w->has[t] = sink->has_topic(sink->ctx, (enum tg_sink_topic)t);
        w->nsubs = tg_config_subscriptions(cfg, subs);
        for (i = 0; i < w->nsubs; i++)
                if (sub_init(&w->subs[i], cfg, &subs[i], errstr, errstr_size))
                        goto fail;
        if (!(w->engine = tg_window_engine_new(&wc, clock, on_window, w, errstr, errstr_size)))
                goto fail;
        for (i = 0; i < w->nsubs && w->subs[i].format != TG_FORMAT_SPARKPLUG; i++)
                ;
        if (i < w->nsubs) { /* memory for Sparkplug only when a subscription reads it */
                struct tg_sparkplug_conf spc = {
                        .max_nodes = (uint32_t)cfg->sp_max_nodes,
                        .max_metrics = (uint32_t)cfg->sp_max_metrics,
                        .name_bytes = (size_t)cfg->sp_name_bytes,
                        .sensor_per_metric = !strcmp(cfg->sp_sensor, "metric"),
                        .max_payload = (size_t)cfg->limit_payload,
                        .rebirth_interval_ms = strcmp(cfg->sp_rebirth, "yes")
                                                       ? -1
                                                       : cfg->sp_rebirth_interval_ms,
                };

                if (!(w->sp = tg_sparkplug_new(&spc, errstr, errstr_size)))
                        goto fail;
                /* Every metric of a payload, each string escaped at worst 6 to 1. */
                w->sp_json_size = 6 * (size_t)cfg->limit_payload + 65536;
                if (!(w->sp_json = malloc(w->sp_json_size))) {
                        snprintf(errstr, errstr_size, "out of memory");
                        goto fail;
                }
                tg_info("sparkplug: %zu bytes for %lld edge nodes and devices, %lld metrics "
                        "(names: %zu bytes)",
                        tg_sparkplug_memory(w->sp) + w->sp_json_size,
                        (long long)cfg->sp_max_nodes, (long long)cfg->sp_max_metrics,
                        tg_sparkplug_name_bytes(w->sp));
        }
        if (cfg->status_sensors &&
            !(w->status = tg_status_new((uint32_t)cfg->status_sensors,
                                        (uint32_t)cfg->status_windows, errstr, errstr_size)))
                goto fail;
        if (w->status)
                tg_info("status page: %zu bytes for %lld sensors of %lld windows, %zu bytes per "
                        "sensor", tg_status_memory(w->status), (long long)cfg->status_sensors,
                        (long long)cfg->status_windows, tg_status_sensor_bytes(w->status));
        for (i = 0, t = 0; i < w->nsubs; i++)
                if (!w->subs[i].raw_all)
                        t |= 1 + tg_raw_rules_stateful(&w->subs[i].raw);
        /* Series only for exception and swinging-door; "none" and per-field
         * "all" need the compressor but no room. */
        if (t && !(w->ds = t & 2 ? tg_downsample_new(wc.max_sensors, (uint32_t)cfg->fwd_max_fields,
                                                     errstr, errstr_size)
                                 : tg_downsample_new(1, 1, errstr, errstr_size)))
                goto fail;
        if (t & 2)
                tg_info("raw forwarding: %zu bytes for %u sensors of %lld fields",
                        tg_downsample_memory(w->ds), wc.max_sensors,
                        (long long)cfg->fwd_max_fields);
        tg_info("window engine: %zu bytes for %u sensors, %zu bytes per sensor (%u fields "
                "reserved per window, %u wide windows of up to %u)",
                tg_window_engine_memory(w->engine), wc.max_sensors,
                tg_window_engine_sensor_bytes(w->engine),
                wc.reserved_fields < wc.max_fields ? wc.reserved_fields : wc.max_fields,
                wc.reserved_fields < wc.max_fields ? wc.wide_windows : 0, wc.max_fields);
        return w;
fail:
        tg_worker_destroy(w);
        return NULL;
}

void tg_worker_destroy(tg_worker_t *w) {
        size_t i;

        if (!w)
                return;
        tg_window_engine_destroy(w->engine);
        tg_status_destroy(w->status);
        tg_downsample_destroy(w->ds);
        tg_sparkplug_destroy(w->sp);
        free(w->sp_json);
        for (i = 0; i < TG_SUBSCRIPTIONS_MAX; i++)
                free(w->subs[i].strings);
        pthread_mutex_destroy(&w->pub_lock);
        pthread_mutex_destroy(&w->publish_lock);
        free(w);
}
