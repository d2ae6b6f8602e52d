/* log.c - the log sink: timestamped single lines to stderr or a file. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

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
