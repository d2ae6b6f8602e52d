/* log.h - one leveled log sink for the gateway, its libraries and its tools. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_LOG_H
#define TG_LOG_H

#include <stdatomic.h>
#include <stdint.h>

struct tg_clock;

enum tg_log_level {
        TG_LOG_ERROR = 0,
        TG_LOG_WARN,
        TG_LOG_INFO,
        TG_LOG_DEBUG,
};

extern volatile int tg_log_threshold;

/**
 * Log one line at @p level. The level is checked before the arguments are
 * evaluated, so a disabled debug line costs one comparison.
 */
#define TG_LOG(level, ...)                                                     \
        do {                                                                   \
                if ((int)(level) <= tg_log_threshold)                          \
                        tg_log_write((level), __VA_ARGS__);                    \
        } while (0)

#define tg_err(...) TG_LOG(TG_LOG_ERROR, __VA_ARGS__)
#define tg_warn(...) TG_LOG(TG_LOG_WARN, __VA_ARGS__)
#define tg_info(...) TG_LOG(TG_LOG_INFO, __VA_ARGS__)
#define tg_dbg(...) TG_LOG(TG_LOG_DEBUG, __VA_ARGS__)

/*
 * Rate-limited lines, for events an outside party can repeat at message rate
 * (refused payloads, a full sensor table, failed deliveries): a log that
 * grows with the input fills a disk that memory limits do not protect.
 *
 * Each call site owns one budget (a static struct tg_log_limit the macro
 * declares there), so each kind of event is limited on its own and nothing
 * is registered or allocated. A window opens at the site's first line; its
 * first TG_LOG_LIMIT_BURST lines are written in full, the rest only counted.
 * The first line after TG_LOG_LIMIT_INTERVAL_MS opens the next window, and a
 * window that counted lines ends with one summary at the site's level:
 *
 *   1234 more like this in the last 60 s: "mqtt %s: payload of %zu bytes refused: %s"
 *
 * naming the site by its format. tg_log_limited_flush(), called from the main
 * loop, writes the summary of a window that has expired with no line since,
 * so a burst that stops is summed up too. Each site thus writes at most
 * BURST + 1 lines per interval, and its lines in full plus the counts of its
 * summaries are exactly the calls that passed the level check: the caller's
 * counters and the log can be reconciled.
 *
 * Lock-free: any thread may log through a limit. A line suppressed while
 * another thread closes the window is counted in the next window's summary,
 * never lost nor counted twice.
 */
#define TG_LOG_LIMIT_BURST 10
#define TG_LOG_LIMIT_INTERVAL_MS 60000

/** One call site's budget; declared by TG_LOG_LIMITED, not by hand. */
struct tg_log_limit {
        /* (window start ms << 8) | lines written in it; 0: no window open. */
        _Atomic uint64_t window;
        _Atomic uint64_t suppressed;     /* lines counted, not written */
        atomic_int listed;               /* on the list flush walks */
        struct tg_log_limit *next;       /* that list, push-only */
        int level;
        const char *fmt;
};

/**
 * Log one line at level @p lvl through the call site's own limit. As with
 * TG_LOG, the level is checked first, and the arguments are evaluated only
 * for a line that is written. @p lvl must be a constant. (Not "level": a
 * macro parameter would replace the designator .level.)
 */
#define TG_LOG_LIMITED(lvl, ...)                                               \
        do {                                                                   \
                static struct tg_log_limit tg_log_limit_ = {                   \
                        .level = (lvl),                                        \
                        .fmt = TG_LOG_FIRST_(__VA_ARGS__, 0)};                 \
                if ((int)(lvl) <= tg_log_threshold &&                          \
                    tg_log_limit_admit(&tg_log_limit_))                        \
                        tg_log_write((lvl), __VA_ARGS__);                      \
        } while (0)
#define TG_LOG_FIRST_(first, ...) first

#define tg_err_limited(...) TG_LOG_LIMITED(TG_LOG_ERROR, __VA_ARGS__)
#define tg_warn_limited(...) TG_LOG_LIMITED(TG_LOG_WARN, __VA_ARGS__)
#define tg_info_limited(...) TG_LOG_LIMITED(TG_LOG_INFO, __VA_ARGS__)

/**
 * @brief Count one line against @p limit; use TG_LOG_LIMITED instead.
 *        Writes the summary of the window this line closes, if any.
 * @return 1 to write the line, 0 if it is only counted.
 */
int tg_log_limit_admit(struct tg_log_limit *limit);

/**
 * @brief Write the summary of every window that has expired with lines
 *        counted and no line since. Call it now and then (the main loop's
 *        tick); cheap when nothing was suppressed.
 */
void tg_log_limited_flush(void);

/** @brief Write every pending summary, expired or not: at exit. */
void tg_log_limited_flush_all(void);

/**
 * @brief Take the limits' time from @p clock (ms, never going back), or from
 *        the monotonic clock when NULL (the default). For tests. The clock
 *        must stay valid while it is set and read no earlier than 0.
 */
void tg_log_set_clock(const struct tg_clock *clock);

/** @brief Write one line, prefixed with time and level; use TG_LOG instead. */
void tg_log_write(enum tg_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/** @brief Parse "error", "warn", "info" or "debug". @return 0 or -EINVAL. */
int tg_log_level_parse(const char *s, enum tg_log_level *out);

/** @brief Set the threshold. */
void tg_log_set_level(enum tg_log_level level);

/**
 * @brief Send output to @p path (appending), or to stderr when NULL.
 *        Called again with the same path it reopens the file (log rotation).
 * @return 0 or -errno; the previous destination is kept on failure.
 */
int tg_log_open(const char *path);

/** @brief Name the program in each line ("tumblegate", "tumblegate-sim"). */
void tg_log_set_ident(const char *ident);

#endif
