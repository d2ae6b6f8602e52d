/* clock.h - injectable clocks, so window logic is tested without sleeping. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CLOCK_H
#define TG_CLOCK_H

#include <stdint.h>

/** A source of wall-clock time in ms since the Unix epoch. */
struct tg_clock {
        int64_t (*now_ms)(void *opaque);
        void *opaque;
};

static inline int64_t tg_clock_now(const struct tg_clock *c) {
        return c->now_ms(c->opaque);
}

/** @brief The system's real-time clock. */
extern const struct tg_clock tg_clock_realtime;

/** @brief Monotonic ms, for timeouts and rates (never for event time). */
int64_t tg_monotonic_ms(void);

/** @brief The ms left until the monotonic @p deadline, 0 once it has passed. */
static inline int tg_ms_until(int64_t deadline) {
        int64_t left = deadline - tg_monotonic_ms();

        return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

#endif
