/* clock.c - the real clocks behind clock.h. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "clock.h"

#include <time.h>

static int64_t realtime_now(void *opaque) {
        struct timespec ts;

        (void)opaque;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const struct tg_clock tg_clock_realtime = {.now_ms = realtime_now};

int64_t tg_monotonic_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
