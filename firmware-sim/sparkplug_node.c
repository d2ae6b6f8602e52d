/* sparkplug_node.c - the simulator as a Sparkplug B edge node: payloads built with protobuf-c from common/sparkplug_b.proto. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every payload is built from protobuf-c structs on the stack and packed
 * into the caller's buffer: nothing is allocated per message. The layout
 * of what is sent is described in sparkplug_node.h; the specification's
 * rules it follows are cited where they decide something:
 *
 *   - NBIRTH carries seq 0 and "bdSeq"; the will (NDEATH) carries the same
 *     bdSeq and no seq (Sparkplug 3.0, 7.1 and 6.4.17 "seq").
 *   - Aliases are unique over the edge node and its devices (6.4.6).
 *   - DATA messages send the alias alone and no datatype, which a host knows
 *     from the BIRTH (6.4.6, 6.4.16: "SHOULD NOT be included" in DATA).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sparkplug_b.pb-c.h"
#include "sparkplug_node.h"

typedef Tumblegate__Sparkplug__Payload sp_payload;
typedef Tumblegate__Sparkplug__Payload__Metric sp_metric;

#define SP_METRIC_INIT TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__INIT
#define SP_PAYLOAD_INIT TUMBLEGATE__SPARKPLUG__PAYLOAD__INIT
#define SP_DOUBLE TUMBLEGATE__SPARKPLUG__DATA_TYPE__DOUBLE
#define SP_FLOAT TUMBLEGATE__SPARKPLUG__DATA_TYPE__FLOAT
#define SP_INT64 TUMBLEGATE__SPARKPLUG__DATA_TYPE__INT64
#define SP_BOOLEAN TUMBLEGATE__SPARKPLUG__DATA_TYPE__BOOLEAN

struct sim_spn {
        const char *group, *node;
        uint64_t bdseq;
        uint64_t seq;           /* the next message's */
        unsigned nfields;
        const char *names[SIM_SPN_FIELDS_MAX];
        int is_float[SIM_SPN_FIELDS_MAX];
};

static const char *const sim_spn_type_names[] = {
        [SIM_SPN_NBIRTH] = "NBIRTH", [SIM_SPN_NDEATH] = "NDEATH", [SIM_SPN_NCMD] = "NCMD",
        [SIM_SPN_DBIRTH] = "DBIRTH", [SIM_SPN_DDATA] = "DDATA",
};

sim_spn_t *sim_spn_new(const char *group, const char *node, uint64_t bdseq, unsigned nfields,
                       const char *const *names, const int *is_float) {
        sim_spn_t *n;
        unsigned f;

        if (nfields > SIM_SPN_FIELDS_MAX)
                return NULL;
        n = calloc(1, sizeof(*n));
        if (!n)
                return NULL;
        n->group = group;
        n->node = node;
        n->bdseq = bdseq;
        n->nfields = nfields;
        for (f = 0; f < nfields; f++) {
                n->names[f] = names[f];
                n->is_float[f] = is_float ? is_float[f] : 0;
        }
        return n;
}

void sim_spn_destroy(sim_spn_t *n) {
        free(n);
}

uint64_t sim_spn_bdseq(const sim_spn_t *n) {
        return n->bdseq;
}

size_t sim_spn_topic(const sim_spn_t *n, enum sim_spn_type type, const char *device, char *buf,
                     size_t cap) {
        int len = device ? snprintf(buf, cap, "spBv1.0/%s/%s/%s/%s", n->group,
                                    sim_spn_type_names[type], n->node, device)
                         : snprintf(buf, cap, "spBv1.0/%s/%s/%s", n->group,
                                    sim_spn_type_names[type], n->node);

        return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}

double sim_spn_wire_value(const sim_spn_t *n, unsigned f, double v) {
        return f < n->nfields && n->is_float[f] ? (double)(float)v : v;
}

/* The next seq, 0..255 and round again. */
static uint64_t spn_take_seq(sim_spn_t *n) {
        uint64_t seq = n->seq;

        n->seq = (n->seq + 1) & 0xff;
        return seq;
}

static uint64_t spn_alias(const sim_spn_t *n, unsigned dev, unsigned f) {
        return 1 + (uint64_t)dev * n->nfields + f;
}

static void spn_set_value(const sim_spn_t *n, sp_metric *m, unsigned f, double v) {
        if (n->is_float[f]) {
                m->value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_FLOAT_VALUE;
                m->float_value = (float)v;
        } else {
                m->value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
                m->double_value = v;
        }
}

/* A payload of @p nm metrics stamped @p ts_ms, with @p seq (none when
 * negative: NDEATH), packed into @p buf. @return its length, 0 if @p cap is
 * too small. */
static size_t spn_pack(int64_t ts_ms, int seq, sp_metric **metrics, size_t nm, uint8_t *buf,
                       size_t cap) {
        sp_payload p = SP_PAYLOAD_INIT;
        size_t need;

        p.has_timestamp = 1;
        p.timestamp = (uint64_t)ts_ms;
        if (seq >= 0) {
                p.has_seq = 1;
                p.seq = (uint64_t)seq;
        }
        p.n_metrics = nm;
        p.metrics = metrics;
        need = tumblegate__sparkplug__payload__get_packed_size(&p);
        if (need > cap)
                return 0;
        return tumblegate__sparkplug__payload__pack(&p, buf);
}

/* A metric of the node itself (bdSeq, Node Control/Rebirth): no alias. */
static void spn_bdseq_metric(const sim_spn_t *n, sp_metric *m) {
        m->name = "bdSeq";
        m->has_datatype = 1;
        m->datatype = SP_INT64;
        m->value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_LONG_VALUE;
        m->long_value = n->bdseq;
}

size_t sim_spn_nbirth(sim_spn_t *n, int64_t ts_ms, uint8_t *buf, size_t cap) {
        sp_metric bdseq = SP_METRIC_INIT, rebirth = SP_METRIC_INIT;
        sp_metric *metrics[2] = {&bdseq, &rebirth};

        n->seq = 0;
        spn_bdseq_metric(n, &bdseq);
        rebirth.name = SIM_SPN_REBIRTH;
        rebirth.has_datatype = 1;
        rebirth.datatype = SP_BOOLEAN;
        rebirth.value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE;
        rebirth.boolean_value = 0;
        return spn_pack(ts_ms, (int)spn_take_seq(n), metrics, 2, buf, cap);
}

size_t sim_spn_ndeath(const sim_spn_t *n, int64_t ts_ms, uint8_t *buf, size_t cap) {
        sp_metric bdseq = SP_METRIC_INIT;
        sp_metric *metrics[1] = {&bdseq};

        spn_bdseq_metric(n, &bdseq);
        return spn_pack(ts_ms, -1, metrics, 1, buf, cap);
}

/* A device's metrics: a DBIRTH names each with its datatype (and, with
 * @p v NULL, carries null values); a DDATA gives the alias alone. */
static size_t spn_device_message(sim_spn_t *n, unsigned dev, int64_t ts_ms, const double *v,
                                 int birth, uint8_t *buf, size_t cap) {
        sp_metric m[SIM_SPN_FIELDS_MAX], *metrics[SIM_SPN_FIELDS_MAX];
        unsigned f;

        for (f = 0; f < n->nfields; f++) {
                sp_metric init = SP_METRIC_INIT;

                m[f] = init;
                if (birth) {
                        m[f].name = (char *)n->names[f];
                        m[f].has_datatype = 1;
                        m[f].datatype = n->is_float[f] ? SP_FLOAT : SP_DOUBLE;
                }
                m[f].has_alias = 1;
                m[f].alias = spn_alias(n, dev, f);
                m[f].has_timestamp = 1;
                m[f].timestamp = (uint64_t)ts_ms;
                if (v) {
                        spn_set_value(n, &m[f], f, v[f]);
                } else {
                        m[f].has_is_null = 1;
                        m[f].is_null = 1;
                }
                metrics[f] = &m[f];
        }
        return spn_pack(ts_ms, (int)spn_take_seq(n), metrics, n->nfields, buf, cap);
}

size_t sim_spn_dbirth(sim_spn_t *n, unsigned dev, int64_t ts_ms, const double *v, uint8_t *buf,
                      size_t cap) {
        return spn_device_message(n, dev, ts_ms, v, 1, buf, cap);
}

size_t sim_spn_ddata(sim_spn_t *n, unsigned dev, int64_t ts_ms, const double *v, uint8_t *buf,
                     size_t cap) {
        return spn_device_message(n, dev, ts_ms, v, 0, buf, cap);
}

size_t sim_spn_ddata_unknown_alias(sim_spn_t *n, unsigned dev, int64_t ts_ms, uint8_t *buf,
                                   size_t cap) {
        sp_metric m = SP_METRIC_INIT, *metrics[1] = {&m};

        (void)dev;
        /* Beyond every alias a node of SIM_SPN_FIELDS_MAX metrics per
         * device can give (aliases start at 1, devices number < 2^32). */
        m.has_alias = 1;
        m.alias = UINT64_C(1) << 40;
        m.has_timestamp = 1;
        m.timestamp = (uint64_t)ts_ms;
        m.value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
        m.double_value = 0.0;
        return spn_pack(ts_ms, (int)spn_take_seq(n), metrics, 1, buf, cap);
}

int sim_spn_is_rebirth(const void *payload, size_t len) {
        sp_payload *p = tumblegate__sparkplug__payload__unpack(NULL, len, payload);
        size_t i;
        int yes = 0;

        if (!p)
                return -EBADMSG;
        for (i = 0; i < p->n_metrics; i++) {
                const sp_metric *m = p->metrics[i];

                if (m->name && !strcmp(m->name, SIM_SPN_REBIRTH) &&
                    m->value_case == TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE &&
                    m->boolean_value)
                        yes = 1;
        }
        tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        return yes;
}

int sim_spn_bdseq_next(const char *path, uint64_t *out) {
        unsigned long long prev;
        FILE *f;
        int have = 0;

        if (!path) {
                *out = (uint64_t)time(NULL) & 0xff;
                return 0;
        }
        f = fopen(path, "r");
        if (f) {
                have = fscanf(f, "%llu", &prev) == 1;
                fclose(f);
        } else if (errno != ENOENT) {
                return -errno;
        }
        *out = have ? (prev + 1) & 0xff : 0;
        f = fopen(path, "w");
        if (!f)
                return -errno;
        fprintf(f, "%" PRIu64 "\n", *out);
        if (fclose(f))
                return -errno;
        return 0;
}
