/* test_sim_sparkplug.c - the simulator's Sparkplug B edge node (firmware-sim/sparkplug_node.c): what each payload holds, unpacked again by protobuf-c. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's wire bytes are read here with protobuf-c's generated unpacker,
 * field by field: the layout sparkplug_node.h promises (and the Sparkplug
 * rules it cites) is checked on what would go over MQTT. The integration
 * test integration.sparkplug_sim reads the same bytes with Eclipse Tahu's
 * decoder through a real broker.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sparkplug_b.pb-c.h"
#include "sparkplug_node.h"
#include "tg_test.h"

typedef Tumblegate__Sparkplug__Payload sp_payload;
typedef Tumblegate__Sparkplug__Payload__Metric sp_metric;

static const char *const names[3] = {"temperature", "humidity", "pressure"};
static const int is_float[3] = {0, 1, 0};

static sp_payload *unpack(const uint8_t *buf, size_t len) {
        sp_payload *p = tumblegate__sparkplug__payload__unpack(NULL, len, buf);

        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        return p;
}

static const sp_metric *metric_named(const sp_payload *p, const char *name) {
        size_t i;

        for (i = 0; i < p->n_metrics; i++)
                if (p->metrics[i]->name && !strcmp(p->metrics[i]->name, name))
                        return p->metrics[i];
        return NULL;
}

static void test_topics(void) {
        sim_spn_t *n = sim_spn_new("G", "N", 7, 3, names, is_float);
        char buf[64];

        CU_ASSERT_EQUAL(sim_spn_topic(n, SIM_SPN_NBIRTH, NULL, buf, sizeof(buf)), 18);
        CU_ASSERT_STRING_EQUAL(buf, "spBv1.0/G/NBIRTH/N");
        sim_spn_topic(n, SIM_SPN_DDATA, "node-0001", buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "spBv1.0/G/DDATA/N/node-0001");
        sim_spn_topic(n, SIM_SPN_NCMD, NULL, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, "spBv1.0/G/NCMD/N");
        CU_ASSERT_EQUAL(sim_spn_topic(n, SIM_SPN_DBIRTH, "node-0001", buf, 10), 0);
        sim_spn_destroy(n);
        sim_spn_destroy(NULL);
}

/* NBIRTH: seq 0, bdSeq Int64, Node Control/Rebirth Boolean false; NDEATH:
 * the same bdSeq and no seq. */
static void test_nbirth_ndeath(void) {
        sim_spn_t *n = sim_spn_new("G", "N", 200, 3, names, is_float);
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        size_t len = sim_spn_nbirth(n, 1700000000000, buf, sizeof(buf));
        sp_payload *p = unpack(buf, len);
        const sp_metric *bd = metric_named(p, "bdSeq"), *rb = metric_named(p, SIM_SPN_REBIRTH);

        CU_ASSERT(p->has_seq && p->seq == 0);
        CU_ASSERT(p->has_timestamp && p->timestamp == 1700000000000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bd);
        CU_ASSERT_EQUAL(bd->datatype, TUMBLEGATE__SPARKPLUG__DATA_TYPE__INT64);
        CU_ASSERT_EQUAL(bd->value_case, TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_LONG_VALUE);
        CU_ASSERT_EQUAL(bd->long_value, 200);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rb);
        CU_ASSERT_EQUAL(rb->datatype, TUMBLEGATE__SPARKPLUG__DATA_TYPE__BOOLEAN);
        CU_ASSERT(rb->value_case == TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE &&
                  !rb->boolean_value);
        CU_ASSERT(!bd->has_alias && !rb->has_alias);
        tumblegate__sparkplug__payload__free_unpacked(p, NULL);

        len = sim_spn_ndeath(n, 1700000000500, buf, sizeof(buf));
        p = unpack(buf, len);
        CU_ASSERT(!p->has_seq);
        CU_ASSERT_EQUAL(p->n_metrics, 1);
        bd = metric_named(p, "bdSeq");
        CU_ASSERT(bd && bd->long_value == 200);
        tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        CU_ASSERT_EQUAL(sim_spn_nbirth(n, 1, buf, 4), 0); /* too small: refused */
        sim_spn_destroy(n);
}

/* DBIRTH names each metric with an alias unique over the node and its
 * datatype; DDATA sends the alias alone, with each metric's timestamp. */
static void test_dbirth_ddata(void) {
        sim_spn_t *n = sim_spn_new("G", "N", 1, 3, names, is_float);
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        const double v[3] = {21.123456789, 48.7654321, 1013.25};
        uint64_t seen[2][3];
        unsigned d, f;

        sim_spn_nbirth(n, 1000, buf, sizeof(buf));
        for (d = 0; d < 2; d++) {
                size_t len = sim_spn_dbirth(n, d, 2000 + d, v, buf, sizeof(buf));
                sp_payload *p = unpack(buf, len);

                CU_ASSERT(p->has_seq && p->seq == 1 + d);
                CU_ASSERT_EQUAL_FATAL(p->n_metrics, 3);
                for (f = 0; f < 3; f++) {
                        const sp_metric *m = p->metrics[f];

                        CU_ASSERT_STRING_EQUAL(m->name, names[f]);
                        CU_ASSERT(m->has_alias && m->has_datatype && m->has_timestamp);
                        CU_ASSERT_EQUAL(m->timestamp, 2000 + d);
                        seen[d][f] = m->alias;
                        if (is_float[f]) {
                                CU_ASSERT_EQUAL(m->datatype,
                                                TUMBLEGATE__SPARKPLUG__DATA_TYPE__FLOAT);
                                CU_ASSERT_EQUAL(m->float_value, (float)v[f]);
                        } else {
                                CU_ASSERT_EQUAL(m->datatype,
                                                TUMBLEGATE__SPARKPLUG__DATA_TYPE__DOUBLE);
                                CU_ASSERT_EQUAL(m->double_value, v[f]);
                        }
                }
                tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        }
        for (d = 0; d < 6; d++)
                for (f = d + 1; f < 6; f++)
                        CU_ASSERT_NOT_EQUAL(seen[d / 3][d % 3], seen[f / 3][f % 3]);

        {
                size_t len = sim_spn_ddata(n, 1, 3000, v, buf, sizeof(buf));
                sp_payload *p = unpack(buf, len);

                CU_ASSERT(p->has_seq && p->seq == 3);
                CU_ASSERT_EQUAL_FATAL(p->n_metrics, 3);
                for (f = 0; f < 3; f++) {
                        const sp_metric *m = p->metrics[f];

                        CU_ASSERT_PTR_NULL(m->name);
                        CU_ASSERT(!m->has_datatype);
                        CU_ASSERT(m->has_alias && m->alias == seen[1][f]);
                        CU_ASSERT(m->has_timestamp && m->timestamp == 3000);
                }
                CU_ASSERT_EQUAL(p->metrics[1]->float_value, (float)v[1]);
                CU_ASSERT_EQUAL(p->metrics[2]->double_value, v[2]);
                tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        }
        /* What the truth file records is what the wire carries. */
        CU_ASSERT_EQUAL(sim_spn_wire_value(n, 1, v[1]), (double)(float)v[1]);
        CU_ASSERT_EQUAL(sim_spn_wire_value(n, 0, v[0]), v[0]);
        sim_spn_destroy(n);
}

/* A DBIRTH without values marks each metric null. */
static void test_dbirth_null(void) {
        sim_spn_t *n = sim_spn_new("G", "N", 1, 2, names, is_float);
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        size_t len;
        sp_payload *p;

        sim_spn_nbirth(n, 1000, buf, sizeof(buf));
        len = sim_spn_dbirth(n, 0, 1000, NULL, buf, sizeof(buf));
        p = unpack(buf, len);
        CU_ASSERT_EQUAL_FATAL(p->n_metrics, 2);
        CU_ASSERT(p->metrics[0]->has_is_null && p->metrics[0]->is_null);
        CU_ASSERT_EQUAL(p->metrics[0]->value_case,
                        TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE__NOT_SET);
        tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        sim_spn_destroy(n);
}

/* seq: 0..255 and round again; an NBIRTH starts it over at 0. */
static void test_seq_wraps(void) {
        sim_spn_t *n = sim_spn_new("G", "N", 1, 1, names, is_float);
        uint8_t buf[SIM_SPN_PAYLOAD_MAX];
        const double v[1] = {1};
        unsigned i;

        sim_spn_nbirth(n, 1, buf, sizeof(buf));
        for (i = 1; i < 600; i++) {
                size_t len = sim_spn_ddata(n, 0, 1 + i, v, buf, sizeof(buf));
                sp_payload *p = unpack(buf, len);

                CU_ASSERT_EQUAL(p->seq, i % 256);
                tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        }
        {
                size_t len = sim_spn_nbirth(n, 9, buf, sizeof(buf));
                sp_payload *p = unpack(buf, len);

                CU_ASSERT_EQUAL(p->seq, 0);
                tumblegate__sparkplug__payload__free_unpacked(p, NULL);
                len = sim_spn_ddata(n, 0, 10, v, buf, sizeof(buf));
                p = unpack(buf, len);
                CU_ASSERT_EQUAL(p->seq, 1);
                tumblegate__sparkplug__payload__free_unpacked(p, NULL);
        }
        sim_spn_destroy(n);
}

/* An NCMD asks for a rebirth with "Node Control/Rebirth" true, and only so. */
static void test_rebirth_command(void) {
        sp_payload p = TUMBLEGATE__SPARKPLUG__PAYLOAD__INIT;
        sp_metric m = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__INIT, *ms[1] = {&m};
        uint8_t buf[128];
        size_t len;

        m.name = SIM_SPN_REBIRTH;
        m.has_datatype = 1;
        m.datatype = TUMBLEGATE__SPARKPLUG__DATA_TYPE__BOOLEAN;
        m.value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE;
        m.boolean_value = 1;
        p.n_metrics = 1;
        p.metrics = ms;
        len = tumblegate__sparkplug__payload__pack(&p, buf);
        CU_ASSERT_EQUAL(sim_spn_is_rebirth(buf, len), 1);
        m.boolean_value = 0;
        len = tumblegate__sparkplug__payload__pack(&p, buf);
        CU_ASSERT_EQUAL(sim_spn_is_rebirth(buf, len), 0);
        m.boolean_value = 1;
        m.name = "Node Control/Reboot";
        len = tumblegate__sparkplug__payload__pack(&p, buf);
        CU_ASSERT_EQUAL(sim_spn_is_rebirth(buf, len), 0);
        buf[0] = 0x0f; /* wire type 7: no protobuf */
        CU_ASSERT_EQUAL(sim_spn_is_rebirth(buf, len), -EBADMSG);
}

/* bdSeq: 0 for a new file, then one more per session, mod 256. */
static void test_bdseq_file(void) {
        char dir[] = "/tmp/test_sim_sparkplug.XXXXXX", path[64];
        uint64_t v = 99;
        FILE *f;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/bdseq", dir);
        CU_ASSERT_EQUAL(sim_spn_bdseq_next(path, &v), 0);
        CU_ASSERT_EQUAL(v, 0);
        CU_ASSERT_EQUAL(sim_spn_bdseq_next(path, &v), 0);
        CU_ASSERT_EQUAL(v, 1);
        f = fopen(path, "w");
        fprintf(f, "255\n");
        fclose(f);
        CU_ASSERT_EQUAL(sim_spn_bdseq_next(path, &v), 0);
        CU_ASSERT_EQUAL(v, 0);
        CU_ASSERT_EQUAL(sim_spn_bdseq_next(NULL, &v), 0);
        CU_ASSERT(v <= 255);
        snprintf(path, sizeof(path), "%s/no/such/dir", dir);
        CU_ASSERT(sim_spn_bdseq_next(path, &v) < 0);
        snprintf(path, sizeof(path), "%s/bdseq", dir);
        unlink(path);
        rmdir(dir);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"topics: spBv1.0/G/<type>/N[/D], refused when too long", test_topics},
                {"NBIRTH: seq 0, bdSeq, Node Control/Rebirth; NDEATH: bdSeq, no seq",
                 test_nbirth_ndeath},
                {"DBIRTH names, aliases unique over the node, datatypes; DDATA by alias",
                 test_dbirth_ddata},
                {"DBIRTH without values: every metric null", test_dbirth_null},
                {"seq wraps at 256 and restarts with an NBIRTH", test_seq_wraps},
                {"NCMD: a rebirth only for Node Control/Rebirth true", test_rebirth_command},
                {"bdSeq file: 0, then +1 mod 256 per session", test_bdseq_file},
        };

        return TG_TEST_RUN("sim_sparkplug", tests);
}
