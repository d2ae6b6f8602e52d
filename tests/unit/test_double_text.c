/* test_double_text.c - CUnit tests of the shortest double printer and the exact JSON number reader, against glibc's printf and strtod. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * glibc's printf and strtod are correctly rounded, so they are the
 * reference: every printed double must read back (strtod) to the same bits,
 * be no longer than "%.17g", and be exactly the text of "%.15g" or "%.16g"
 * when that reads back, else of "%.17g" (or shorter: a 16-digit decimal
 * that is not the nearest one can still read back next to a power of two).
 * Every number read must equal strtod's double bit for bit.
 *
 * TG_DOUBLE_TEXT_SCALE (default 1) multiplies the number of random values;
 * a soak may raise it.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "double_text.h"
#include "tg_test.h"

static uint64_t rng_state = 0x646f75626c65ULL;

static uint64_t rng(void) {
        return tg_splitmix64(&rng_state);
}

static double from_bits(uint64_t b) {
        double d;

        memcpy(&d, &b, sizeof(d));
        return d;
}

static uint64_t to_bits(double d) {
        uint64_t b;

        memcpy(&b, &d, sizeof(b));
        return b;
}

static unsigned long scale(void) {
        const char *s = getenv("TG_DOUBLE_TEXT_SCALE");
        unsigned long n = s ? strtoul(s, NULL, 10) : 1;

        return n ? n : 1;
}

struct format_stats {
        unsigned long tested, bad, shorter_than_printf;
};

/* The significant digits of a decimal number text, and the exponent of
 * the first: "0.0120" -> "12", -2. */
static int canon(const char *s, char *digits, int *x) {
        int n = 0, point = -1, pos = 0, lead = 1;

        if (*s == '-')
                s++;
        for (; (*s >= '0' && *s <= '9') || *s == '.'; s++) {
                if (*s == '.') {
                        point = pos;
                        continue;
                }
                if (lead && *s == '0') {
                        pos++;
                        continue;
                }
                if (lead)
                        *x = -pos - 1; /* so far: relative to the point below */
                lead = 0;
                digits[n++] = *s;
                pos++;
        }
        if (lead) { /* zero */
                digits[0] = '\0';
                *x = 0;
                return 0;
        }
        if (point < 0)
                point = pos;
        *x += point;
        if (*s == 'e' || *s == 'E')
                *x += atoi(s + 1);
        while (n > 1 && digits[n - 1] == '0')
                n--;
        digits[n] = '\0';
        return n;
}

/* Print @p v and check it: it reads back, it is a JSON number, it has no
 * more digits than "%.17g", the digits are those of the shortest printf
 * precision that reads back (one fewer at most, next to a power of two),
 * and the layout is "%.15g"'s for up to 15 digits, else "%.17g"'s. */
static void format_one(double v, struct format_stats *st, int line) {
        char got[TG_DOUBLE_TEXT_MAX + 8], ref[40], gd[40], rd[40];
        size_t n;
        int p, ok, gn = 0, rn = 0, gx = 0, rx = 0;

        memset(got, 0x5a, sizeof(got));
        n = tg_double_format(v, got);
        st->tested++;
        if (!isfinite(v)) {
                ok = n == 0;
                goto out;
        }
        ok = n > 0 && n <= TG_DOUBLE_TEXT_MAX && n == strlen(got) && tg_is_json_number(got) &&
             to_bits(strtod(got, NULL)) == to_bits(v);
        if (!ok)
                goto out;
        /* the shortest printf precision that reads back; from 15 for
         * normal doubles, where "%.15g" is shortest whenever it reads back */
        for (p = fabs(v) < DBL_MIN ? 1 : 15; p <= 17; p++) {
                snprintf(ref, sizeof(ref), "%.*e", p - 1, v);
                if (to_bits(strtod(ref, NULL)) == to_bits(v))
                        break;
        }
        gn = canon(got, gd, &gx);
        rn = canon(ref, rd, &rx);
        if (gn == rn)
                ok = gx == rx && !strcmp(gd, rd);
        else
                ok = gn < rn && (st->shorter_than_printf++, 1);
        if (ok && v != 0) {
                char want[40];

                snprintf(want, sizeof(want), "%.*g", gn <= 15 ? 15 : 17, v);
                if (gn <= 15 || gn == 17)
                        ok = !strcmp(got, want) || fabs(v) < DBL_MIN;
                else /* 16 digits: "%.17g"'s choice of layout */
                        ok = !strchr(got, 'e') == !strchr(want, 'e');
        }
out:
        if (!ok && st->bad++ < 10)
                tg_check(0, line, "%a (%.17g) printed as '%s' (n %zu; %d digits, printf %d)", v, v,
                         got, n, gn, rn);
}

static void test_format_special(void) {
        static const struct {
                double v;
                const char *text;
        } cases[] = {
                {0.0, "0"},
                {-0.0, "-0"},
                {1.0, "1"},
                {-1.0, "-1"},
                {1.5, "1.5"},
                {21.5, "21.5"},
                {1013.25, "1013.25"},
                {0.1, "0.1"},
                {0.3, "0.3"},
                {0.30000000000000004, "0.30000000000000004"},
                {1e21, "1e+21"},
                {1e15, "1e+15"},
                {1e14, "100000000000000"},
                {123456789012345.0, "123456789012345"},
                {1234567890123456.0, "1234567890123456"},
                {0.0001, "0.0001"},
                {0.00001, "1e-05"},
                {5e-324, "5e-324"},
                {1.7976931348623157e308, "1.7976931348623157e+308"},
                {-2.2250738585072014e-308, "-2.2250738585072014e-308"},
                {9007199254740993.0, "9007199254740992"},
                {23.279673932846379, "23.27967393284638"},
                {23.986689941072912e15, "23986689941072910"},
                {48.603254968945954, "48.603254968945954"},
                {2.0 / 3.0, "0.6666666666666666"},
                {1e-14, "1e-14"},
                {1e17, "1e+17"},
        };
        char buf[TG_DOUBLE_TEXT_MAX + 1];
        size_t i, n;

        for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                n = tg_double_format(cases[i].v, buf);
                tg_check(n == strlen(cases[i].text) && !strcmp(buf, cases[i].text), __LINE__,
                         "%a printed as '%s', want '%s'", cases[i].v, buf, cases[i].text);
        }
        CU_ASSERT_EQUAL(tg_double_format(NAN, buf), 0);
        CU_ASSERT_EQUAL(tg_double_format(-INFINITY, buf), 0);
        CU_ASSERT_EQUAL(tg_double_format(INFINITY, buf), 0);
}

/* Every bit pattern class: uniform bits (mostly huge or tiny, the printf
 * fallback), log-uniform magnitudes across and around the exact range,
 * subnormals, integers, powers of ten and two with their neighbours
 * (the asymmetric interval below a power of two), and sensor-like values. */
static void test_format_random(void) {
        struct format_stats st = {0};
        unsigned long i, n = 400000 * scale();
        int e;

        for (i = 0; i < n; i++) {
                format_one(from_bits(rng()), &st, __LINE__);
                /* magnitudes 1e-20 .. 1e20: across both ends of the exact range */
                format_one(from_bits(((uint64_t)(1023 - 67 + rng() % 134) << 52) |
                                     (rng() >> 12)) * (rng() & 1 ? 1 : -1),
                           &st, __LINE__);
                format_one(from_bits(rng() % (1ULL << 52)), &st, __LINE__); /* subnormal */
                format_one((double)(int64_t)(rng() >> (rng() % 64)), &st, __LINE__);
                /* sensor-like: 2 to 17 significant digits around 1e-3 .. 1e5 */
                {
                        int digits = 2 + (int)(rng() % 16), x = -3 + (int)(rng() % 9);
                        char text[64];

                        snprintf(text, sizeof(text), "%.*e",
                                 digits - 1, (double)(rng() >> 11) / 9007199254740992.0 *
                                                     pow(10, x));
                        format_one(strtod(text, NULL), &st, __LINE__);
                }
        }
        for (e = -325; e <= 309; e++) {
                char text[16];
                double p;

                snprintf(text, sizeof(text), "1e%d", e);
                p = strtod(text, NULL);
                format_one(p, &st, __LINE__);
                format_one(nextafter(p, 0), &st, __LINE__);
                format_one(nextafter(p, INFINITY), &st, __LINE__);
        }
        for (e = -1074; e <= 1023; e++) {
                double p = ldexp(1.0, e);

                format_one(p, &st, __LINE__);
                format_one(nextafter(p, 0), &st, __LINE__);
                format_one(nextafter(p, INFINITY), &st, __LINE__);
                format_one(-p, &st, __LINE__);
        }
        format_one(DBL_MAX, &st, __LINE__);
        format_one(DBL_MIN, &st, __LINE__);
        format_one(DBL_TRUE_MIN, &st, __LINE__);
        tg_check(st.bad == 0, __LINE__, "%lu of %lu doubles printed wrongly", st.bad, st.tested);
        printf("\n    %lu doubles, %lu shorter than printf's %%.17g fallback ", st.tested,
               st.shorter_than_printf);
}

struct scan_stats {
        unsigned long tested, exact, bad;
};

/* Read @p text (a JSON number) both ways. */
static void scan_one(const char *text, struct scan_stats *st, int line) {
        double got = 0, want;
        char *end;
        int exact = -1;
        size_t n = tg_json_number_scan(text, strlen(text), &got, &exact);

        want = strtod(text, &end);
        st->tested++;
        if (n != (size_t)(end - text) || n != strlen(text) || exact < 0 ||
            (exact && to_bits(got) != to_bits(want))) {
                if (st->bad++ < 10)
                        tg_check(0, line, "'%s': scanned %zu of %zu bytes, exact %d, %a; strtod %a",
                                 text, n, strlen(text), exact, got, want);
                return;
        }
        st->exact += exact == 1;
}

static void test_scan_random(void) {
        struct scan_stats st = {0}, sensor = {0};
        unsigned long i, n = 200000 * scale();
        char text[96];
        int p;

        for (i = 0; i < n; i++) {
                double v = from_bits(rng());
                int digits, k, point, x;
                char *o;

                if (isfinite(v)) {
                        /* every precision of a double's decimal expansion */
                        snprintf(text, sizeof(text), "%.*e", (int)(rng() % 20), v);
                        scan_one(text, &st, __LINE__);
                }
                /* sensor-like values as a simulator prints them: 17 digits,
                 * magnitudes 0.01 .. 1e6 (below 0.01, 17 digits put the
                 * exponent past what the exact path covers) */
                v = (1 + (double)(rng() >> 11) / 9007199254740992.0 * 9) *
                    pow(10, (int)(rng() % 8) - 2) * (rng() & 1 ? 1 : -1);
                snprintf(text, sizeof(text), "%.17g", v);
                scan_one(text, &sensor, __LINE__);
                for (p = 1; p <= 16; p += 5) {
                        snprintf(text, sizeof(text), "%.*g", p, v);
                        scan_one(text, &st, __LINE__);
                }
                /* random digit strings: 1..24 digits, a point anywhere, an
                 * exponent sometimes, leading zeros sometimes */
                digits = 1 + (int)(rng() % 24);
                point = (int)(rng() % (unsigned)(digits + 1));
                o = text;
                if (rng() & 1)
                        *o++ = '-';
                if (point == 0) {
                        *o++ = '0';
                        *o++ = '.';
                        for (k = (int)(rng() % 6); k > 0; k--)
                                *o++ = '0';
                }
                for (k = 0; k < digits; k++) {
                        if (k == point && k)
                                *o++ = '.';
                        *o++ = (char)('0' + (k == 0 && point ? 1 + rng() % 9 : rng() % 10));
                }
                if (rng() % 3 == 0) {
                        x = (int)(rng() % 700) - 350;
                        o += sprintf(o, "%s%d", rng() & 1 ? "e" : "E", x);
                } else if (rng() % 3 == 0) {
                        o += sprintf(o, "e+%d", (int)(rng() % 30));
                }
                *o = '\0';
                scan_one(text, &st, __LINE__);
                /* ties: odd integers between 2^53 and 2^64 lie half-way
                 * between two doubles or nearly so */
                snprintf(text, sizeof(text), "%llu",
                         (unsigned long long)((rng() | (1ULL << 53)) >> (rng() % 11) | 1));
                scan_one(text, &st, __LINE__);
                snprintf(text, sizeof(text), "%llue-%d", (unsigned long long)(rng() >> (rng() % 40)),
                         (int)(rng() % 25));
                scan_one(text, &st, __LINE__);
        }
        tg_check(st.bad == 0 && sensor.bad == 0, __LINE__, "%lu + %lu of %lu numbers read wrongly",
                 st.bad, sensor.bad, st.tested + sensor.tested);
        /* the simulator's values must all take the exact path */
        tg_check(sensor.exact == sensor.tested, __LINE__, "only %lu of %lu sensor values exact",
                 sensor.exact, sensor.tested);
        printf("\n    %lu numbers, %lu read here, the rest left to strtod ",
               st.tested + sensor.tested, st.exact + sensor.exact);
}

static void test_scan_grammar(void) {
        static const struct {
                const char *text;
                size_t len; /* bytes of the number; 0: none */
        } cases[] = {
                {"0", 1}, {"-0", 2}, {"12", 2}, {"1.5", 3}, {"1e5", 3}, {"1E+5", 4},
                {"1e-5", 4}, {"-0.0e0", 6}, {"01", 1}, {"0x10", 1}, {"1.5e3x", 5},
                {"1,", 1}, {"1}", 1}, {"", 0}, {"-", 0}, {".5", 0}, {"1.", 0}, {"1.e5", 0},
                {"1e", 0}, {"1e+", 0}, {"+1", 0}, {"-a", 0}, {"Infinity", 0}, {"NaN", 0},
                {"- 1", 0},
        };
        size_t i;

        for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                double d = 0;
                int exact = -1;
                size_t n = tg_json_number_scan(cases[i].text, strlen(cases[i].text), &d, &exact);

                tg_check(n == cases[i].len, __LINE__, "'%s': %zu bytes, want %zu", cases[i].text,
                         n, cases[i].len);
        }
}

static void test_scan_edges(void) {
        static const char *const texts[] = {
                "0", "-0", "0e99999", "-0.000e-99999", "1e22", "1e23", "9007199254740993",
                "9007199254740992", "9007199254740994", "9007199254740995",
                "18446744073709551615", "18446744073709551616", "9999999999999999999",
                "1.7976931348623157e308", "1.7976931348623159e308", "1e309", "-1e400",
                "4.9406564584124654e-324", "2.4703282292062327e-324", "1e-400",
                "2.2250738585072011e-308", "2.2250738585072014e-308",
                "0.1", "0.2", "0.3", "23.279673932846379", "1013.25", "1730000000700",
                "1e-19", "1e19", "123456789012345678e-19", "1234567890123456789e19",
                "0.000000000000000000001", "100000000000000000000000",
                "1.00000000000000000000000000001", "2.5e-5", "8.98846567431158e307",
        };
        struct scan_stats st = {0};
        size_t i;

        for (i = 0; i < sizeof(texts) / sizeof(*texts); i++)
                scan_one(texts[i], &st, __LINE__);
        CU_ASSERT_EQUAL(st.bad, 0);
}

/* Printing and reading back with this module alone is the identity. */
static void test_round_trip_here(void) {
        unsigned long i, n = 200000 * scale(), bad = 0, exact = 0;

        for (i = 0; i < n; i++) {
                double v = i & 1 ? from_bits(rng())
                                 : ((double)(rng() >> 11) / 9007199254740992.0) * 2000 - 1000,
                       back = 0;
                char buf[TG_DOUBLE_TEXT_MAX + 1];
                int ex = 0;
                size_t len;

                if (!isfinite(v))
                        continue;
                len = tg_double_format(v, buf);
                if (tg_json_number_scan(buf, len, &back, &ex) != len ||
                    (ex && to_bits(back) != to_bits(v))) {
                        if (bad++ < 5)
                                tg_check(0, __LINE__, "%a -> '%s' -> %a", v, buf, back);
                }
                exact += ex;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(exact > n / 2 * 9 / 10); /* the sensor-like half */
}

int main(void) {
        static const struct tg_test tests[] = {
                {"format: special values and their text", test_format_special},
                {"format: millions of doubles against printf/strtod", test_format_random},
                {"scan: the JSON number grammar", test_scan_grammar},
                {"scan: edge values against strtod", test_scan_edges},
                {"scan: random numbers against strtod", test_scan_random},
                {"format then scan: identity", test_round_trip_here},
        };

        return TG_TEST_RUN("double_text", tests);
}
