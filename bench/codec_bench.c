/* codec_bench.c - readings per second per core through the payload decoders and encoders alone. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The payloads are the firmware simulator's (firmware-sim/sim.c): ids
 * node-0000..node-1023, ts around 1.73e12 ms in 100 ms steps, and the three
 * fields temperature, humidity and pressure drawn around the simulator's
 * centres, so most values need 17 significant digits in JSON as they do
 * there. They are encoded once with tg_encode_cbor() / tg_encode_json(), as
 * the simulator does, and decoded round-robin (1024 distinct payloads, so
 * the branch predictor cannot learn one payload), each checked to decode.
 * Encoding re-encodes the 1024 prepared readings round-robin. The same
 * readings also go through the SenML codecs, encoded as the simulator's
 * --format senml-json / senml-cbor does (tg_encode_senml_json/cbor) and
 * decoded as the gateway does (field mapping, room for 64 readings).
 * "decode sparkplug" reads them as Sparkplug B DDATA of devices G/N/node-XXXX,
 * each metric by alias alone with the payload's timestamp, packed with
 * protobuf-c after one NBIRTH and a DBIRTH per device: the stateful decoder
 * as the gateway runs it (protobuf-c unpacking into its arena, the alias
 * lookups, the grouping into a reading). They carry no seq, which the
 * round-robin replay would otherwise turn into gaps.
 *
 * Time is CPU time of this thread, so the figure is per core.
 * Usage: codec_bench [READINGS [ONLY]]   (default 5 000 000 per line; ONLY:
 * run the lines whose name contains it, e.g. "decode json", for callgrind)
 * Targets (issue): >= 5 M CBOR and >= 2 M JSON decodes/s/core.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "codec_senml.h"
#include "payloads.h"
#include "reading.h"
#include "sparkplug.h"
#include "sparkplug_b.pb-c.h"

#define PAYLOADS 1024
#define PAYLOAD_CAP 512

static struct tg_reading readings[PAYLOADS];
static uint8_t cbor[PAYLOADS][PAYLOAD_CAP];
static size_t cbor_len[PAYLOADS];
static char json[PAYLOADS][PAYLOAD_CAP];
static size_t json_len[PAYLOADS];
static uint8_t senml_cbor[PAYLOADS][PAYLOAD_CAP];
static size_t senml_cbor_len[PAYLOADS];
static char senml_json[PAYLOADS][PAYLOAD_CAP];
static size_t senml_json_len[PAYLOADS];
static uint8_t sp_data[PAYLOADS][PAYLOAD_CAP];
static size_t sp_data_len[PAYLOADS];
static char sp_topic[PAYLOADS][TG_SENSOR_ID_MAX + 32];

#define SENML_READINGS 64 /* what the gateway passes (gateway/pipeline.c) */

static double thread_cpu_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void payloads_make(void) {
        unsigned i;

        bench_readings_make(readings, PAYLOADS);
        for (i = 0; i < PAYLOADS; i++) {
                struct tg_reading *r = &readings[i];

                cbor_len[i] = tg_encode_cbor(r, cbor[i], sizeof(cbor[i]));
                json_len[i] = tg_encode_json(r, json[i], sizeof(json[i]));
                senml_cbor_len[i] = tg_encode_senml_cbor(r, senml_cbor[i], sizeof(senml_cbor[i]));
                senml_json_len[i] = tg_encode_senml_json(r, senml_json[i], sizeof(senml_json[i]));
                if (!cbor_len[i] || !json_len[i] || !senml_cbor_len[i] || !senml_json_len[i]) {
                        fprintf(stderr, "codec_bench: payload %u does not fit\n", i);
                        exit(1);
                }
        }
}

static double mean_len(const size_t *len) {
        double sum = 0;
        unsigned i;

        for (i = 0; i < PAYLOADS; i++)
                sum += (double)len[i];
        return sum / PAYLOADS;
}

static const char *only; /* run only the lines whose name contains this */

static int skip(const char *name) {
        return only && !strstr(name, only);
}

static void report(const char *name, uint64_t n, double cpu_s, double bytes,
                   double target) {
        double rate = n / cpu_s / 1e6;

        printf("%-22s %9" PRIu64 " readings  %7.3f s CPU  %6.2f M readings/s/core  %5.0f ns/reading  %4.0f B/payload",
               name, n, cpu_s, rate, cpu_s / n * 1e9, bytes);
        if (target > 0)
                printf("  target %.0f M: %s", target, rate >= target ? "met" : "NOT met");
        putchar('\n');
        fflush(stdout);
}

/* Sums what was decoded, so the compiler cannot drop the work. */
static volatile double sink;

static void bench_decode(const char *name, enum tg_format fmt, int use_cbor,
                         uint64_t n, double target) {
        struct tg_reading r;
        double t0, t1, sum = 0;
        uint64_t k;

        if (skip(name))
                return;
        for (k = 0; k < PAYLOADS; k++) /* warm-up: first JSON call sets up the arena */
                tg_decode(fmt, use_cbor ? (const void *)cbor[k] : json[k],
                          use_cbor ? cbor_len[k] : json_len[k], &r);
        t0 = thread_cpu_s();
        for (k = 0; k < n; k++) {
                unsigned i = (unsigned)(k % PAYLOADS);
                enum tg_decode_err err;

                err = tg_decode(fmt, use_cbor ? (const void *)cbor[i] : json[i],
                                use_cbor ? cbor_len[i] : json_len[i], &r);
                if (err != TG_DECODE_OK || r.nfields != 3) {
                        fprintf(stderr, "codec_bench: %s: payload %u: %s\n", name, i,
                                tg_decode_err_name(err));
                        exit(1);
                }
                sum += r.fields[2].value + (double)r.ts_ms;
        }
        t1 = thread_cpu_s();
        sink = sum;
        report(name, n, t1 - t0, mean_len(use_cbor ? cbor_len : json_len), target);
}

enum senml_kind { SENML_CBOR, SENML_JSON };

static enum tg_decode_err decode_senml(enum senml_kind kind, unsigned i,
                                       struct tg_reading *r, size_t *got) {
        if (kind == SENML_CBOR)
                return tg_decode_senml_cbor(senml_cbor[i], senml_cbor_len[i], NULL, r,
                                            SENML_READINGS, got);
        return tg_decode_senml_json(senml_json[i], senml_json_len[i], NULL, r,
                                    SENML_READINGS, got);
}

static void bench_decode_senml(const char *name, enum senml_kind kind, uint64_t n) {
        static struct tg_reading r[SENML_READINGS];
        double t0, t1, sum = 0;
        uint64_t k;
        size_t got;

        if (skip(name))
                return;
        for (k = 0; k < PAYLOADS; k++) /* warm-up */
                decode_senml(kind, (unsigned)k, r, &got);
        t0 = thread_cpu_s();
        for (k = 0; k < n; k++) {
                unsigned i = (unsigned)(k % PAYLOADS);
                enum tg_decode_err err = decode_senml(kind, i, r, &got);

                if (err != TG_DECODE_OK || got != 1 || r[0].nfields != 3) {
                        fprintf(stderr, "codec_bench: %s: payload %u: %s\n", name, i,
                                tg_decode_err_name(err));
                        exit(1);
                }
                sum += r[0].fields[2].value + (double)r[0].ts_ms;
        }
        t1 = thread_cpu_s();
        sink = sum;
        report(name, n, t1 - t0,
               mean_len(kind == SENML_CBOR ? senml_cbor_len : senml_json_len), 0);
}

enum encoder { ENC_CBOR, ENC_JSON, ENC_RAW_RECORD, ENC_SENML_CBOR, ENC_SENML_JSON };

static void bench_encode(const char *name, enum encoder enc, uint64_t n) {
        static char out[PAYLOAD_CAP];
        double t0, t1, bytes = 0;
        uint64_t k;

        if (skip(name))
                return;
        t0 = thread_cpu_s();
        for (k = 0; k < n; k++) {
                const struct tg_reading *r = &readings[k % PAYLOADS];
                size_t len;

                if (enc == ENC_CBOR)
                        len = tg_encode_cbor(r, (uint8_t *)out, sizeof(out));
                else if (enc == ENC_JSON)
                        len = tg_encode_json(r, out, sizeof(out));
                else if (enc == ENC_RAW_RECORD)
                        len = tg_encode_raw_record(r, out, sizeof(out));
                else if (enc == ENC_SENML_CBOR)
                        len = tg_encode_senml_cbor(r, (uint8_t *)out, sizeof(out));
                else
                        len = tg_encode_senml_json(r, out, sizeof(out));
                if (!len) {
                        fprintf(stderr, "codec_bench: %s: reading does not fit\n", name);
                        exit(1);
                }
                bytes += (double)len;
        }
        t1 = thread_cpu_s();
        sink = bytes;
        report(name, n, t1 - t0, bytes / n, 0);
}

/* --- Sparkplug B ----------------------------------------------------------- */

typedef Tumblegate__Sparkplug__Payload SpPayload;
typedef Tumblegate__Sparkplug__Payload__Metric SpMetric;

/* Device i's NBIRTH (i < 0) or DBIRTH (names, aliases 3i+1.., Double) or
 * DDATA (aliases alone, values of reading i), packed into @p buf. */
static size_t sp_pack(int i, int birth, uint8_t *buf, size_t cap) {
        SpPayload p = TUMBLEGATE__SPARKPLUG__PAYLOAD__INIT;
        SpMetric m[3], *mp[3];
        const struct tg_reading *r = &readings[i < 0 ? 0 : i];
        unsigned f;

        p.has_timestamp = 1;
        p.timestamp = (uint64_t)r->ts_ms;
        for (f = 0; i >= 0 && f < 3; f++) {
                tumblegate__sparkplug__payload__metric__init(&m[f]);
                if (birth) {
                        m[f].name = (char *)r->fields[f].name;
                        m[f].has_datatype = 1;
                        m[f].datatype = TUMBLEGATE__SPARKPLUG__DATA_TYPE__DOUBLE;
                }
                m[f].has_alias = 1;
                m[f].alias = 3 * (uint64_t)i + f + 1;
                m[f].value_case = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
                m[f].double_value = r->fields[f].value;
                mp[f] = &m[f];
        }
        p.n_metrics = i < 0 ? 0 : 3;
        p.metrics = mp;
        if (tumblegate__sparkplug__payload__get_packed_size(&p) > cap)
                return 0;
        return tumblegate__sparkplug__payload__pack(&p, buf);
}

static void bench_decode_sparkplug(const char *name, uint64_t n) {
        static struct tg_reading r[SENML_READINGS];
        struct tg_sparkplug_conf conf = {.max_nodes = 2 * PAYLOADS, .max_metrics = 4 * PAYLOADS,
                                         .max_payload = 64 * 1024, .rebirth_interval_ms = -1};
        struct tg_sp_message m;
        char errstr[256], topic[TG_SENSOR_ID_MAX + 32];
        uint8_t buf[PAYLOAD_CAP];
        tg_sparkplug_t *sp;
        double t0, t1, sum = 0;
        size_t len, got, first;
        uint64_t k;
        int i;

        if (skip(name))
                return;
        if (!(sp = tg_sparkplug_new(&conf, errstr, sizeof(errstr)))) {
                fprintf(stderr, "codec_bench: %s\n", errstr);
                exit(1);
        }
        for (i = -1; i < PAYLOADS; i++) { /* the births, then the data */
                len = sp_pack(i, 1, buf, sizeof(buf));
                if (i < 0)
                        snprintf(topic, sizeof(topic), "spBv1.0/G/NBIRTH/N");
                else
                        snprintf(topic, sizeof(topic), "spBv1.0/G/DBIRTH/N/%s",
                                 readings[i].sensor);
                if (!len || tg_sparkplug_decode(sp, topic, buf, len, 1, &m) != TG_SP_OK) {
                        fprintf(stderr, "codec_bench: %s: birth %d refused\n", name, i);
                        exit(1);
                }
                if (i >= 0 && !(sp_data_len[i] = sp_pack(i, 0, sp_data[i], PAYLOAD_CAP)))
                        exit(1);
                if (i >= 0)
                        snprintf(sp_topic[i], sizeof(sp_topic[i]), "spBv1.0/G/DDATA/N/%s",
                                 readings[i].sensor);
        }
        t0 = thread_cpu_s();
        for (k = 0; k < n; k++) {
                unsigned j = (unsigned)(k % PAYLOADS);
                enum tg_sp_reason err;

                err = tg_sparkplug_decode(sp, sp_topic[j], sp_data[j], sp_data_len[j], 1, &m);
                got = tg_sparkplug_readings(sp, r, SENML_READINGS, &first);
                if (err != TG_SP_OK || got != 1 || r[0].nfields != 3) {
                        fprintf(stderr, "codec_bench: %s: payload %u: %s\n", name, j,
                                tg_sp_reason_name(err));
                        exit(1);
                }
                sum += r[0].fields[2].value + (double)r[0].ts_ms;
        }
        t1 = thread_cpu_s();
        sink = sum;
        report(name, n, t1 - t0, mean_len(sp_data_len), 0);
        tg_sparkplug_destroy(sp);
}

int main(int argc, char **argv) {
        uint64_t n = 5000000;

        if (argc > 1) {
                char *end;

                n = strtoull(argv[1], &end, 10);
                if (*end || n == 0 || argv[1][0] == '-') {
                        fprintf(stderr, "usage: %s [READINGS [ONLY]]\n", argv[0]);
                        return 2;
                }
        }
        if (argc > 2)
                only = argv[2];
        payloads_make();
        printf("# payloads: %d simulator readings (3 fields), e.g. %.*s\n", PAYLOADS,
               (int)json_len[7], json[7]);
        bench_decode("decode cbor", TG_FORMAT_CBOR, 1, n, 5.0);
        bench_decode("decode json", TG_FORMAT_JSON, 0, n, 2.0);
        bench_decode("decode auto (cbor)", TG_FORMAT_AUTO, 1, n, 5.0);
        bench_decode("decode auto (json)", TG_FORMAT_AUTO, 0, n, 2.0);
        bench_decode_senml("decode senml-cbor", SENML_CBOR, n);
        bench_decode_senml("decode senml-json", SENML_JSON, n);
        bench_decode_sparkplug("decode sparkplug", n);
        bench_encode("encode cbor", ENC_CBOR, n);
        bench_encode("encode json", ENC_JSON, n);
        bench_encode("encode raw record", ENC_RAW_RECORD, n);
        bench_encode("encode senml-cbor", ENC_SENML_CBOR, n);
        bench_encode("encode senml-json", ENC_SENML_JSON, n);
        return 0;
}
