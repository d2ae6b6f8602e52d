/* errstr.h - filling a caller's errstr buffer, the way every constructor and loader here reports what went wrong. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_ERRSTR_H
#define TG_ERRSTR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/** @brief Format into @p errstr; a NULL or empty buffer is accepted and left alone. */
__attribute__((format(printf, 3, 4))) static inline void
tg_errstr(char *errstr, size_t size, const char *fmt, ...) {
        va_list ap;

        if (!errstr || !size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, size, fmt, ap);
        va_end(ap);
}

#endif
