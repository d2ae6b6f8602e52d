/* double_text.h - doubles to their shortest exact decimal text, and JSON number text to doubles, both without the C library's slow paths. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_DOUBLE_TEXT_H
#define TG_DOUBLE_TEXT_H

#include <stddef.h>

/** Longest text tg_double_format() writes, excluding the NUL
 *  ("-2.2250738585072014e-308" is 24 bytes). */
#define TG_DOUBLE_TEXT_MAX 32

/**
 * @brief Write finite @p v as the shortest decimal that reads back (strtod)
 *        to the same double; of several, the nearest. Laid out as printf's
 *        "%.15g" for up to 15 digits and as "%.17g" for 16 or 17, so the text
 *        is "%.15g"'s whenever that reads back ("21.5", "1e+21", "-0") and
 *        never longer than "%.17g"'s.
 *
 * Between about 1e-14 and 1e17 in magnitude the digits are found with exact
 * integer arithmetic (no printf); outside that range, and on targets
 * without 128-bit integers, "%.15g", "%.16g" and "%.17g" are tried in
 * turn and the first that reads back is kept.
 *
 * @return bytes written to @p out (NUL-terminated), or 0 if @p v is not finite.
 */
size_t tg_double_format(double v, char out[TG_DOUBLE_TEXT_MAX + 1]);

/**
 * @brief Scan the JSON number (RFC 8259 grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?)
 *        at the start of @p s and convert it, correctly rounded as strtod does.
 *
 * @param exact set to 1 when *out holds the value; 0 when the number is
 *        well-formed but beyond this converter (more than 19 significant
 *        digits, or a decimal exponent the fast methods do not cover): the
 *        caller then converts the same text with strtod.
 * @return bytes of the number (the scan stops at the first byte that cannot
 *         continue it), or 0 if @p s does not start with a JSON number.
 */
size_t tg_json_number_scan(const char *s, size_t len, double *out, int *exact);

#endif
