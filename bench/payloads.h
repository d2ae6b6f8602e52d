/* payloads.h - the simulator-shaped readings the codec benchmarks decode: the same ones in every benchmark and run. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_BENCH_PAYLOADS_H
#define TG_BENCH_PAYLOADS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "reading.h"

/* Three fields around tumblegate-sim's values, ids node-0000.., 100 ms apart. */
static const char *const bench_field_names[] = {"temperature", "humidity", "pressure"};
static const double bench_field_centers[] = {22.5, 50.0, 1013.25};
static const double bench_field_spreads[] = {5.0, 12.0, 4.0};

/* splitmix64 as a uniform double in [0, 1): the same payloads on every run. */
static double bench_uniform(uint64_t *state) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        return (double)(z >> 11) / 9007199254740992.0;
}

/** Fill @p readings[0..n) with the benchmarks' readings. */
static void bench_readings_make(struct tg_reading *readings, unsigned n) {
        uint64_t state = 0x636f646563ULL;
        unsigned i, f;

        for (i = 0; i < n; i++) {
                struct tg_reading *r = &readings[i];
                char id[16];

                tg_reading_clear(r);
                snprintf(id, sizeof(id), "node-%04u", i);
                tg_reading_set_sensor(r, id, strlen(id));
                r->ts_ms = 1730000000000LL + 100LL * i;
                for (f = 0; f < 3; f++) {
                        double v = bench_field_centers[f] +
                                   bench_field_spreads[f] * (2.0 * bench_uniform(&state) - 1.0);

                        tg_reading_add_field(r, bench_field_names[f],
                                             strlen(bench_field_names[f]), v);
                }
        }
}

#endif
