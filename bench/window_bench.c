/* window_bench.c - readings per second per core through the window engine alone. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * 10 000 sensors x 3 fields, 10 Hz each, event time advancing in step:
 * once with every reading in order, once with 5 % of the readings late
 * (older than their window's end + grace). The readings are prepared in
 * caller storage, as the gateway's decoder leaves them; only the timestamp
 * and values change per reading, which is part of the measured loop, and
 * the engine is ticked every 100 ms as the gateway does (idle close off:
 * the compressed event time would make every sensor look idle). Time is CPU time
 * of this thread, so the figure is per core. Usage: window_bench [SENSORS...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "window.h"

#define SENSORS_MAX 100000
#define READINGS 10000000

static int SENSORS = 10000;

static uint64_t emitted;

static int64_t bench_now;

static int64_t fixed_now(void *opaque) {
        (void)opaque;
        return bench_now;
}

static void count_emit(void *opaque, const struct tg_window_result *w) {
        (void)opaque;
        emitted += w->count;
}

static double thread_cpu_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(const char *name, int late_every) {
        static struct tg_reading r[SENSORS_MAX];
        const struct tg_clock clock = {.now_ms = fixed_now};
        struct tg_window_conf conf = {
                .size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                .idle_timeout_ms = 0, .max_future_ms = 86400000, .evict_after_ms = 3600000,
                .max_sensors = (uint32_t)SENSORS, .max_fields = 8, .max_field_names = 64,
        };
        struct tg_window_counters c;
        tg_window_engine_t *e;
        char err[256];
        double t0, t1, next_tick;
        uint64_t n = 0, ticks = 0;
        int s, step, steps = READINGS / SENSORS;

        bench_now = 1700000000000LL;
        e = tg_window_engine_new(&conf, &clock, count_emit, NULL, err, sizeof(err));
        if (!e) {
                fprintf(stderr, "%s\n", err);
                exit(1);
        }
        for (s = 0; s < SENSORS; s++) {
                char id[32];

                tg_reading_clear(&r[s]);
                snprintf(id, sizeof(id), "node-%05d", s);
                tg_reading_set_sensor(&r[s], id, strlen(id));
                tg_reading_add_field(&r[s], "temperature", 11, 20.0);
                tg_reading_add_field(&r[s], "humidity", 8, 50.0);
                tg_reading_add_field(&r[s], "pressure", 8, 1013.0);
        }
        emitted = 0;
        t0 = thread_cpu_s();
        next_tick = t0;
        for (step = 0; step < steps; step++) {
                int64_t ts = 1700000000000LL + (int64_t)step * 100;

                /* The gateway ticks every 100 ms of wall time, whatever the
                 * rate: tick as often here, measured in this thread's CPU
                 * time, with the clock at the current event time. */
                if (thread_cpu_s() >= next_tick) {
                        bench_now = ts;
                        tg_window_engine_tick(e);
                        next_tick += 0.1;
                        ticks++;
                }

                for (s = 0; s < SENSORS; s++, n++) {
                        struct tg_reading *x = &r[s];

                        /* 5 %: a reading 30 s old, whose window has closed */
                        x->ts_ms = late_every && (s + step) % late_every == 0 && step > steps / 10
                                           ? ts - 30000
                                           : ts;
                        x->fields[0].value = 20.0 + (double)(n & 63) * 0.01;
                        x->fields[1].value = 50.0 - (double)(n & 31) * 0.02;
                        x->fields[2].value = 1013.0 + (double)(n & 15) * 0.1;
                        tg_window_engine_add(e, x);
                }
        }
        t1 = thread_cpu_s();
        tg_window_engine_counters(e, &c);
        printf("%-22s %10llu readings  %6.3f s CPU  %7.2f M readings/s/core  "
               "late %5.2f %%  windows %llu  ticks %llu  memory %zu B/sensor\n",
               name, (unsigned long long)n, t1 - t0, (double)n / (t1 - t0) / 1e6,
               100.0 * (double)c.late / (double)n,
               (unsigned long long)c.windows_emitted, (unsigned long long)ticks,
               tg_window_engine_memory(e) / SENSORS);
        tg_window_engine_destroy(e);
}

int main(int argc, char **argv) {
        char name[64];
        int i;

        for (i = 1; i < argc || i == 1; i++) {
                if (argc > 1)
                        SENSORS = atoi(argv[i]);
                if (SENSORS < 1 || SENSORS > SENSORS_MAX) {
                        fprintf(stderr, "usage: window_bench [SENSORS...] (1..%d)\n", SENSORS_MAX);
                        return 2;
                }
                snprintf(name, sizeof(name), "%d sensors, in order", SENSORS);
                run(name, 0);
                snprintf(name, sizeof(name), "%d sensors, 5 %% late", SENSORS);
                run(name, 20);
        }
        return 0;
}
