/* log.c - the log sink: timestamped single lines to stderr or a file, and per-site rate limits. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

volatile int tg_log_threshold = TG_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL: stderr */
static const char *log_ident = "tumblegate";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int tg_log_level_parse(const char *s, enum tg_log_level *out) {
        size_t i;

        for (i = 0; i < sizeof(level_names) / sizeof(*level_names); i++) {
                if (!strcmp(s, level_names[i])) {
                        *out = (enum tg_log_level)i;
                        return 0;
                }
        }
        return -EINVAL;
}

void tg_log_set_level(enum tg_log_level level) {
        tg_log_threshold = (int)level;
}

void tg_log_set_ident(const char *ident) {
        log_ident = ident;
}

int tg_log_open(const char *path) {
        FILE *f = NULL;

        if (path && !(f = fopen(path, "a")))
                return -errno;
        if (f)
                setvbuf(f, NULL, _IOLBF, 0);
        pthread_mutex_lock(&log_lock);
        if (log_file)
                fclose(log_file);
        log_file = f;
        pthread_mutex_unlock(&log_lock);
        return 0;
}

void tg_log_write(enum tg_log_level level, const char *fmt, ...) {
        char line[2048];
        struct timeval tv;
        struct tm tm;
        size_t n;
        va_list ap;

        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ %s %s: ",
                              (int)(tv.tv_usec / 1000), log_ident,
                              level_names[(unsigned)level < 4 ? level : 0]);
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);

        /* One line per event: fold any embedded newline from a library. */
        for (char *c = line; *c; c++)
                if (*c == '\n' || *c == '\r')
                        *c = ' ';

        pthread_mutex_lock(&log_lock);
        fprintf(log_file ? log_file : stderr, "%s\n", line);
        pthread_mutex_unlock(&log_lock);
}

/* ---- rate-limited lines (TG_LOG_LIMITED) --------------------------------
 *
 * A limit's window word holds the window's start (ms on the limits' clock)
 * shifted past PASSED_BITS, and the lines written in it below: one
 * compare-and-swap both opens a window and counts its first line, so no
 * thread can count a line against a window another thread has just closed
 * and more than TG_LOG_LIMIT_BURST lines are never written in one window.
 * The suppressed count is separate: whoever takes it with an exchange (the
 * thread that opens the next window, or a flush) writes the summary, so
 * each counted line is in exactly one summary.
 *
 * Limits that have suppressed a line are pushed once on a list that flush
 * walks. They are static (one per call site) and never leave it, so the
 * list needs no lock and has no ABA problem: a node's next is written
 * before the push publishes it and never changes after.
 */
#define PASSED_BITS 8
#define PASSED_MASK ((UINT64_C(1) << PASSED_BITS) - 1)
_Static_assert(TG_LOG_LIMIT_BURST >= 1 && TG_LOG_LIMIT_BURST < PASSED_MASK,
               "the burst fits the window word's count");

static int64_t monotonic_now(void *opaque) {
        (void)opaque;
        return tg_monotonic_ms();
}

static const struct tg_clock monotonic_clock = {.now_ms = monotonic_now};
static const struct tg_clock *_Atomic limit_clock = &monotonic_clock;
static struct tg_log_limit *_Atomic limits_listed;

void tg_log_set_clock(const struct tg_clock *clock) {
        atomic_store(&limit_clock, clock ? clock : &monotonic_clock);
}

static int64_t limit_now(void) {
        return tg_clock_now(atomic_load(&limit_clock));
}

/* @p n lines counted at @p l in the @p ms since its window opened. */
static void limit_summary(const struct tg_log_limit *l, uint64_t n, int64_t ms) {
        long long s = (long long)((ms + 500) / 1000);

        tg_log_write((enum tg_log_level)l->level,
                     "%llu more like this in the last %lld s: \"%s\"",
                     (unsigned long long)n, s < 1 ? 1 : s, l->fmt);
}

int tg_log_limit_admit(struct tg_log_limit *l) {
        int64_t now = limit_now();
        uint64_t w = atomic_load(&l->window), n;

        for (;;) {
                int64_t start = (int64_t)(w >> PASSED_BITS);

                if (!w || now - start >= TG_LOG_LIMIT_INTERVAL_MS) {
                        /* This line opens a window; whoever opens it sums
                         * up the last one (unless a flush did). */
                        if (!atomic_compare_exchange_weak(
                                    &l->window, &w, (uint64_t)now << PASSED_BITS | 1))
                                continue;
                        if (w && (n = atomic_exchange(&l->suppressed, 0)))
                                limit_summary(l, n, now - start);
                        return 1;
                }
                if ((w & PASSED_MASK) >= TG_LOG_LIMIT_BURST)
                        break;
                if (atomic_compare_exchange_weak(&l->window, &w, w + 1))
                        return 1;
        }
        atomic_fetch_add(&l->suppressed, 1);
        if (!atomic_load_explicit(&l->listed, memory_order_relaxed) &&
            !atomic_exchange(&l->listed, 1)) {
                l->next = atomic_load(&limits_listed);
                while (!atomic_compare_exchange_weak(&limits_listed, &l->next, l))
                        ;
        }
        return 0;
}

static void limits_flush(int expired_only) {
        int64_t now = limit_now();
        struct tg_log_limit *l;

        for (l = atomic_load(&limits_listed); l; l = l->next) {
                uint64_t w = atomic_load(&l->window), n;
                int64_t start = (int64_t)(w >> PASSED_BITS);

                if (!atomic_load_explicit(&l->suppressed, memory_order_relaxed) ||
                    (expired_only && now - start < TG_LOG_LIMIT_INTERVAL_MS))
                        continue;
                /* The window stays as it is: the next line opens a new one. */
                if ((n = atomic_exchange(&l->suppressed, 0)))
                        limit_summary(l, n, now - start);
        }
}

void tg_log_limited_flush(void) {
        limits_flush(1);
}

void tg_log_limited_flush_all(void) {
        limits_flush(0);
}
