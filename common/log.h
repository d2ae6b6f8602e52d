/* log.h - one leveled log sink for the gateway, its libraries and its tools. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_LOG_H
#define TG_LOG_H

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
