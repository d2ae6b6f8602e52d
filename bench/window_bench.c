/* window_bench.c - readings per second per core through the window engine alone. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * N sensors x 3 fields, 10 Hz each, event time advancing in step, visited
 * round-robin: once with every reading in order, once with 5 % of the
 * readings late (30 s old: past their window's end + grace). The engine is
 * ticked every 100 ms of this thread's CPU time, as the gateway ticks it
 * (idle close off: the compressed event time would make every sensor look
 * idle). Time is CPU time of this thread, so the figure is per core; each
 * line is the best of R runs (-r), each a fresh engine.
 *
 * The input is what the gateway hands the engine: a reading its decoder has
 * just filled, hot in the cache. Per reading the loop copies the sensor id
 * (from a compact table of ids), the timestamp and three values into one
 * reading buffer, as a decoder would. That fill is not the engine's work: it
 * is timed on its own, the same loop without the engine (the "fill" column),
 * and "engine" is the rate with it subtracted; "loop" is the rate with it.
 * (Before 2026-11-25 the bench kept a prepared 1.1 KB reading per sensor,
 * 11 MB at 10 000 sensors, and streamed through that array: at 10 000
 * sensors the bench's own cache misses were a large part of what it timed.)
 *
 * With -b the readings go through tg_window_engine_add_batch() in batches of
 * B (the fill then prepares B reading buffers before each call).
 *
 * With -d the engine is ticked at every step (100 ms of event time: the
 * gateway's rate of ticks when the sensors send in real time) instead of every
 * 100 ms of CPU time, so that instruction counts under callgrind repeat.
 *
 * With -F (hash flooding, issue 13) the bench instead times the sensor
 * table alone against ids a device could choose: SENSORS ids of 8 printable
 * bytes that all share one 32-bit hash under the unkeyed hash the engine
 * used before issue 13 (flood_ids.h keeps a copy of it only to craft
 * them), so under that hash every one lands in the same bucket and its probe
 * compares ids with all those before it. It prints, for the crafted ids and
 * for as many ordinary ones ("n-000042"), the rate of adds (the first
 * reading of each id: a new sensor) and of readings of known ids (lookups),
 * READINGS in all, round-robin, one reading of 3 fields each.
 *
 * With -R MODE (exception, swinging-door, all, none: forward.mode, issue 15)
 * every reading also goes through the raw-forwarding compressors after the
 * engine, as the worker does (deviation 0.05, maximum silence 60 s, on the
 * three fields); the "engine" column is then both, and the difference with a
 * run without -R is the compressors' cost per reading. (An older engine of
 * bench/window_ab.sh has no compressors: -R is refused there.)
 *
 * Usage: window_bench [-n READINGS] [-r RUNS] [-b BATCH] [-d] [-F] [-R MODE] [SENSORS...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flood_ids.h"
#include "window.h"
#if __has_include("downsample.h")
#include "downsample.h"
#define HAVE_DOWNSAMPLE 1
#endif

#define SENSORS_MAX 100000
#define BATCH_MAX 64
#define ID_SIZE 16

static int64_t bench_now;
static uint64_t emitted;

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

/* Sensor ids, fixed-size records: what the fill copies from. */
static char (*ids)[ID_SIZE];
static uint8_t *id_lens;
/* -d: tick at every step (100 ms of event time) instead of every 100 ms of
 * CPU time, so that instruction counts (callgrind) repeat exactly. */
static int tick_every_step;
/* -F: time crafted ids against ordinary ones (issue 13). */
static int flood;
/* -R: the raw-forwarding mode every reading also goes through; -1: none. */
static int raw_mode = -1;

struct outcome {
        double cpu_s;
        uint64_t n, late, windows, ticks;
        size_t memory;
};

/* Fill reading @p x as the decoder would for sensor @p s at step @p step. */
static inline void fill(struct tg_reading *x, int s, int step, int steps, int late_every,
                        uint64_t n) {
        int64_t ts = 1700000000000LL + (int64_t)step * 100;

        (void)steps;
        memcpy(x->sensor, ids[s], ID_SIZE);
        x->sensor_len = id_lens[s];
        /* 5 %: a reading 30 s old, whose window has closed (from the
         * second round on: the first reading of a sensor is never late) */
        x->ts_ms = late_every && (s + step) % late_every == 0 && step > 0 ? ts - 30000 : ts;
        x->fields[0].value = 20.0 + (double)(n & 63) * 0.01;
        x->fields[1].value = 50.0 - (double)(n & 31) * 0.02;
        x->fields[2].value = 1013.0 + (double)(n & 15) * 0.1;
}

/* The engine both runs use: the gateway's window defaults (10 s, 2 s grace),
 * every field reserved in every slot (the members of tg_window_conf that an
 * older engine of bench/window_ab.sh also has). */
static struct tg_window_conf bench_conf(int sensors) {
        struct tg_window_conf conf = {
                .size_ms = 10000, .hop_ms = 10000, .grace_ms = 2000,
                .idle_timeout_ms = 0, .max_future_ms = 86400000, .evict_after_ms = 3600000,
                .max_sensors = (uint32_t)sensors, .max_fields = 8, .max_field_names = 64,
        };

        return conf;
}

/* One pass over the stream; @p engine 0 times the fill alone. */
static struct outcome run(int sensors, uint64_t readings, int late_every, int batch,
                          int engine) {
        static struct tg_reading r[BATCH_MAX];
        const struct tg_clock clock = {.now_ms = fixed_now};
        struct tg_window_conf conf = bench_conf(sensors);
        struct tg_window_counters c;
        struct outcome o = {0};
        tg_window_engine_t *e;
        char err[256];
        double t0, t1, next_tick;
        int s, b, step, steps = (int)(readings / (uint64_t)sensors);
        /* Look at the clock every ~10 000 readings, not at every step: a
         * system call per 100 readings would be counted as the engine's. */
        int clock_every = sensors >= 10000 ? 1 : 10000 / sensors;
        volatile int64_t sink = 0;
#ifdef HAVE_DOWNSAMPLE
        tg_downsample_t *ds = NULL;
        struct tg_raw_rule rules[3];
        struct tg_raw_point pts[TG_DOWNSAMPLE_POINTS_MAX];

        for (b = 0; b < 3; b++)
                rules[b] = (struct tg_raw_rule){(enum tg_raw_mode)(raw_mode < 0 ? 0 : raw_mode),
                                                0.05, 60000};
        if (engine && raw_mode >= 0 &&
            !(ds = tg_downsample_new((uint32_t)sensors, 3, err, sizeof(err)))) {
                fprintf(stderr, "%s\n", err);
                exit(1);
        }
#define RAW_FORWARD(x) (ds ? (void)(sink += (int64_t)tg_downsample_add(ds, (x), rules, pts)) : (void)0)
#else
#define RAW_FORWARD(x) ((void)0)
#endif

        bench_now = 1700000000000LL;
        e = tg_window_engine_new(&conf, &clock, count_emit, NULL, err, sizeof(err));
        if (!e) {
                fprintf(stderr, "%s\n", err);
                exit(1);
        }
        for (b = 0; b < BATCH_MAX; b++) {
                tg_reading_clear(&r[b]);
                tg_reading_set_sensor(&r[b], ids[0], id_lens[0]);
                tg_reading_add_field(&r[b], "temperature", 11, 20.0);
                tg_reading_add_field(&r[b], "humidity", 8, 50.0);
                tg_reading_add_field(&r[b], "pressure", 8, 1013.0);
        }
        emitted = 0;
        t0 = thread_cpu_s();
        next_tick = t0;
        for (step = 0; step < steps; step++) {
                /* The gateway ticks every 100 ms of wall time, whatever the
                 * rate: tick as often here, measured in this thread's CPU
                 * time, with the clock at the current event time. */
                if (engine && (tick_every_step ||
                               (step % clock_every == 0 && thread_cpu_s() >= next_tick))) {
                        bench_now = 1700000000000LL + (int64_t)step * 100;
                        tg_window_engine_tick(e);
                        next_tick += 0.1;
                        o.ticks++;
                }
                if (batch <= 1) {
                        for (s = 0; s < sensors; s++, o.n++) {
                                fill(&r[0], s, step, steps, late_every, o.n);
                                if (engine) {
                                        tg_window_engine_add(e, &r[0]);
                                        RAW_FORWARD(&r[0]);
                                } else
                                        sink += r[0].ts_ms + r[0].sensor[0];
                        }
                        continue;
                }
                for (s = 0; s < sensors;) {
                        int nb = sensors - s < batch ? sensors - s : batch;

                        for (b = 0; b < nb; b++, o.n++)
                                fill(&r[b], s + b, step, steps, late_every, o.n);
#ifdef TG_WINDOW_HAVE_BATCH
                        if (engine) {
                                tg_window_engine_add_batch(e, r, (size_t)nb, NULL);
                                for (b = 0; b < nb; b++)
                                        RAW_FORWARD(&r[b]);
                        } else
#endif
                                sink += r[nb - 1].ts_ms + r[0].sensor[0];
                        s += nb;
                }
        }
        t1 = thread_cpu_s();
        (void)sink;
        tg_window_engine_counters(e, &c);
        o.cpu_s = t1 - t0;
        o.late = c.late;
        o.windows = c.windows_emitted;
        o.memory = tg_window_engine_memory(e);
#ifdef HAVE_DOWNSAMPLE
        if (ds)
                o.memory += tg_downsample_memory(ds);
        tg_downsample_destroy(ds);
#endif
        tg_window_engine_destroy(e);
        return o;
}

static const char *const raw_mode_names[] = {"all", "exception", "swinging-door", "none"};

static struct outcome best_of(int runs, int sensors, uint64_t readings, int late_every,
                              int batch, int engine) {
        struct outcome best = {0}, o;
        int i;

        for (i = 0; i < runs; i++) {
                o = run(sensors, readings, late_every, batch, engine);
                if (i == 0 || o.cpu_s < best.cpu_s)
                        best = o;
        }
        return best;
}

static void report(int sensors, uint64_t readings, int late_every, int batch, int runs) {
        struct outcome o = best_of(runs, sensors, readings, late_every, batch, 1);
        struct outcome f = best_of(runs, sensors, readings, late_every, batch, 0);
        double net = o.cpu_s - f.cpu_s;
        char name[64];

        snprintf(name, sizeof(name), "%d sensors, %s%s%s", sensors,
                 late_every ? "5 % late" : "in order", raw_mode < 0 ? "" : ", raw ",
                 raw_mode < 0 ? "" : raw_mode_names[raw_mode]);
        printf("%-24s %9llu readings  loop %6.2f M/s  fill %5.1f ns  engine %6.2f M readings/s/core"
               "  %5.1f ns  late %5.2f %%  windows %llu  ticks %llu  memory %zu B/sensor\n",
               name, (unsigned long long)o.n, (double)o.n / o.cpu_s / 1e6,
               f.cpu_s / (double)f.n * 1e9, (double)o.n / net / 1e6,
               net / (double)o.n * 1e9, 100.0 * (double)o.late / (double)o.n,
               (unsigned long long)o.windows, (unsigned long long)o.ticks,
               o.memory / (size_t)sensors);
        fflush(stdout);
}

/* --- -F: hash flooding ------------------------------------------------- */

/* Fill ids[0..n) with the crafted ids (flood_ids.h). */
static void craft_ids(int n) {
        int s;

        if (flood_craft_ids(ids[0], ID_SIZE, n) < n) {
                fprintf(stderr, "window_bench: could not craft %d ids\n", n);
                exit(1);
        }
        for (s = 0; s < n; s++)
                id_lens[s] = FLOOD_ID_LEN;
}

/* One engine: an add for each id, then lookups to @p readings in all. */
static void flood_run(int sensors, uint64_t readings, double *add_s, double *look_s) {
        const struct tg_clock clock = {.now_ms = fixed_now};
        struct tg_window_conf conf = bench_conf(sensors);
        struct tg_window_counters c;
        struct tg_reading r;
        tg_window_engine_t *e;
        char err[256];
        double t0, t1 = 0, t2;
        uint64_t n = 0;
        int s, step;

        bench_now = 1700000000000LL;
        if (!(e = tg_window_engine_new(&conf, &clock, count_emit, NULL, err, sizeof(err)))) {
                fprintf(stderr, "%s\n", err);
                exit(1);
        }
        tg_reading_clear(&r);
        tg_reading_set_sensor(&r, ids[0], id_lens[0]);
        tg_reading_add_field(&r, "temperature", 11, 20.0);
        tg_reading_add_field(&r, "humidity", 8, 50.0);
        tg_reading_add_field(&r, "pressure", 8, 1013.0);
        t0 = thread_cpu_s();
        for (step = 0; n < readings; step++) {
                if (step == 1)
                        t1 = thread_cpu_s();
                for (s = 0; s < sensors && n < readings; s++, n++) {
                        fill(&r, s, step, 0, 0, n);
                        tg_window_engine_add(e, &r);
                }
        }
        t2 = thread_cpu_s();
        if (step == 1)
                t1 = t2;
        tg_window_engine_counters(e, &c);
        if (c.sensors_active != (uint64_t)sensors || c.accepted != n) {
                fprintf(stderr, "window_bench: %llu sensors, %llu accepted\n",
                        (unsigned long long)c.sensors_active, (unsigned long long)c.accepted);
                exit(1);
        }
        tg_window_engine_destroy(e);
        *add_s = (t1 - t0) / sensors;
        *look_s = n > (uint64_t)sensors ? (t2 - t1) / (double)(n - (uint64_t)sensors) : 0;
}

static void flood_report(int sensors, uint64_t readings, int runs, int crafted) {
        double add_s, look_s, best_add = 0, best_look = 0;
        int i, s;

        if (crafted)
                craft_ids(sensors);
        else
                for (s = 0; s < sensors; s++)
                        id_lens[s] = (uint8_t)snprintf(ids[s], ID_SIZE, "n-%06d", s);
        for (i = 0; i < runs; i++) {
                flood_run(sensors, readings, &add_s, &look_s);
                if (i == 0 || add_s < best_add)
                        best_add = add_s;
                if (i == 0 || look_s < best_look)
                        best_look = look_s;
        }
        printf("%d ids, %-8s  adds %10.4f M/s  %10.1f ns  lookups %10.4f M readings/s  %10.1f ns\n",
               sensors, crafted ? "crafted" : "ordinary", 1e-6 / best_add, best_add * 1e9,
               best_look > 0 ? 1e-6 / best_look : 0.0, best_look * 1e9);
        fflush(stdout);
}

int main(int argc, char **argv) {
        uint64_t readings = 10000000;
        int runs = 3, batch = 1, opt, i, sensors = 10000, s;

        while ((opt = getopt(argc, argv, "n:r:b:dFR:")) != -1) {
                switch (opt) {
                case 'n':
                        readings = strtoull(optarg, NULL, 10);
                        break;
                case 'r':
                        runs = atoi(optarg);
                        break;
                case 'b':
                        batch = atoi(optarg);
                        break;
                case 'd':
                        tick_every_step = 1;
                        break;
                case 'F':
                        flood = 1;
                        break;
                case 'R':
                        for (raw_mode = 3; raw_mode >= 0; raw_mode--)
                                if (!strcmp(optarg, raw_mode_names[raw_mode]))
                                        break;
#ifndef HAVE_DOWNSAMPLE
                        raw_mode = -1;
#endif
                        if (raw_mode < 0)
                                goto usage;
                        break;
                default:
                        goto usage;
                }
        }
        if (readings < 1 || runs < 1 || batch < 1 || batch > BATCH_MAX)
                goto usage;
#ifndef TG_WINDOW_HAVE_BATCH
        if (batch > 1) {
                fprintf(stderr, "window_bench: this engine has no batch API\n");
                return 2;
        }
#endif
        ids = calloc(SENSORS_MAX, ID_SIZE);
        id_lens = calloc(SENSORS_MAX, 1);
        if (!ids || !id_lens)
                return 1;
        for (s = 0; s < SENSORS_MAX; s++)
                id_lens[s] = (uint8_t)snprintf(ids[s], ID_SIZE, "node-%05d", s);
        for (i = optind; i < argc || i == optind; i++) {
                if (i < argc)
                        sensors = atoi(argv[i]);
                if (sensors < 1 || sensors > SENSORS_MAX)
                        goto usage;
                if (flood) {
                        flood_report(sensors, readings, runs, 1);
                        flood_report(sensors, readings, runs, 0);
                        continue;
                }
                report(sensors, readings, 0, batch, runs);
                report(sensors, readings, 20, batch, runs);
        }
        return 0;
usage:
        fprintf(stderr, "usage: window_bench [-n READINGS] [-r RUNS] [-b BATCH 1..%d] [-d] [-F] [-R MODE] "
                        "[SENSORS 1..%d ...]\n", BATCH_MAX, SENSORS_MAX);
        return 2;
}
