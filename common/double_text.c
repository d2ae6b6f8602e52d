/* double_text.c - doubles to their shortest exact decimal text, and JSON number text to doubles, both without the C library's slow paths. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Why our own: glibc prints a double with "%.17g" and reads one back with
 * strtod through multi-precision arithmetic, about 1 us each for the
 * 17-digit values sensors produce, and Debian packages no C library for
 * either job (double-conversion, dragonbox and fast_float are C++). Both
 * directions here are plain exact integer arithmetic over a range that
 * covers sensor values, with the C library as the fallback outside it:
 *
 * Printing: v = m * 2^e. Every decimal strictly inside the half-way points
 * to v's neighbours (on them too when m is even: strtod rounds ties to
 * even) reads back as v. Scaled by 10^k so that v becomes an integer of 17
 * or 18 digits, v and both half-way points are exact fractions with a power
 * of two as denominator, computed in 128 bits. The shortest decimal is the
 * integer in that interval with the most trailing zeros; of several, the
 * one nearest v (ties to even), which is what "%.Ng" prints whenever N
 * digits are enough.
 *
 * Reading: a number of at most 19 significant digits w with decimal
 * exponent q is w * 10^q. For w < 2^53 and |q| <= 22 both factors are exact
 * doubles and one IEEE multiplication or division rounds correctly
 * (Clinger's fast path). Otherwise, for |q| <= 19, the product w * 10^q is
 * an exact 128-bit integer, and the quotient w * 2^n / 10^-q with its
 * remainder gives 64 exact bits and a sticky bit: rounding those to 53 bits
 * by hand is correct rounding.
 */
#include "double_text.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t pow10_u64[20] = {
        1ULL,
        10ULL,
        100ULL,
        1000ULL,
        10000ULL,
        100000ULL,
        1000000ULL,
        10000000ULL,
        100000000ULL,
        1000000000ULL,
        10000000000ULL,
        100000000000ULL,
        1000000000000ULL,
        10000000000000ULL,
        100000000000000ULL,
        1000000000000000ULL,
        10000000000000000ULL,
        100000000000000000ULL,
        1000000000000000000ULL,
        10000000000000000000ULL,
};

/* Lay out digits d[0..n) times 10^(x - n + 1) (x: the exponent of the first
 * digit) as printf's "%.15g" does for up to 15 digits and "%.17g" beyond
 * (so never longer than "%.17g"); sign prefixed. */
static size_t layout(char *out, int negative, const char *d, int n, int x) {
        int precision = n > 15 ? 17 : 15, i;
        char *o = out;

        if (negative)
                *o++ = '-';
        if (x < -4 || x >= precision) {
                unsigned ax = (unsigned)(x < 0 ? -x : x);

                *o++ = d[0];
                if (n > 1) {
                        *o++ = '.';
                        memcpy(o, d + 1, (size_t)n - 1);
                        o += n - 1;
                }
                *o++ = 'e';
                *o++ = x < 0 ? '-' : '+';
                if (ax >= 100)
                        *o++ = (char)('0' + ax / 100);
                *o++ = (char)('0' + ax / 10 % 10);
                *o++ = (char)('0' + ax % 10);
        } else if (x < 0) {
                *o++ = '0';
                *o++ = '.';
                for (i = -1; i > x; i--)
                        *o++ = '0';
                memcpy(o, d, (size_t)n);
                o += n;
        } else if (n <= x + 1) {
                memcpy(o, d, (size_t)n);
                o += n;
                for (i = n; i <= x; i++)
                        *o++ = '0';
        } else {
                memcpy(o, d, (size_t)x + 1);
                o += x + 1;
                *o++ = '.';
                memcpy(o, d + x + 1, (size_t)(n - x - 1));
                o += n - x - 1;
        }
        *o = '\0';
        return (size_t)(o - out);
}

/* The C library, for what the exact path does not cover: the first of
 * 15, 16 and 17 digits that reads back; from 1 digit for subnormals, whose
 * coarser spacing lets fewer than 15 digits read back without being what
 * "%.15g" prints. Every value here prints in exponent form either way. */
static size_t format_printf(double v, char *out) {
        int p = fabs(v) < DBL_MIN ? 1 : 15, n = 0;

        for (; p <= 17; p++) {
                n = snprintf(out, TG_DOUBLE_TEXT_MAX + 1, "%.*g", p, v);
                if (strtod(out, NULL) == v)
                        break;
        }
        return n > 0 ? (size_t)n : 0;
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

/* The shortest digits of v > 0 (normal, 1e-14 <= v < 2e17), or -1. */
static int shortest_digits(uint64_t bits, char *d, int *x_out) {
        int be = (int)(bits >> 52), e, e2, x0, k, s, t = 0, n, i;
        uint64_t m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
        uint64_t lo_w, a, b, vi, c, q, r, h;
        u128 p5, num;
        unsigned sh;
        int inclusive = !(m & 1), frac_zero, lo_exact, hi_exact;
        int frac_cmp; /* the fraction of v against 1/2: -1, 0, 1 */
        char tmp[20];

        if (be == 0)
                return -1; /* subnormal */
        e = be - 1075;   /* v = m * 2^e */
        e2 = be - 1023;  /* 2^e2 <= v < 2^(e2 + 1) */
        /* floor(e2 * log10(2)), exact for |e2| <= 1650 */
        x0 = (int)(((int64_t)e2 * 78913) >> 18);
        k = 16 - x0; /* v * 10^k in [10^16, 2 * 10^18) */
        if (k < 0 || k > 30)
                return -1;

        /* In units of 2^(e-2): v = 4m, its neighbours' half-way points 4m + 2
         * and 4m - 2, or 4m - 1 below a power of two (the next lower
         * neighbour is half as far). Times 10^k = 5^k * 2^k: */
        lo_w = (bits & ((1ULL << 52) - 1)) == 0 && be > 1 ? 4 * m - 1 : 4 * m - 2;
        p5 = 1;
        for (i = k; i >= 13; i -= 13)
                p5 *= 1220703125ULL; /* 5^13 */
        p5 *= (uint64_t)(pow10_u64[i] >> i); /* 5^i = 10^i / 2^i */
        s = e - 2 + k;
        if (s >= 0) {
                /* already integers: v * 10^k < 2^61, so nothing overflows */
                vi = (uint64_t)((p5 * (4 * m)) << s);
                a = (uint64_t)((p5 * lo_w) << s);
                b = (uint64_t)((p5 * (4 * m + 2)) << s);
                lo_exact = hi_exact = frac_zero = 1;
                frac_cmp = -1;
        } else {
                u128 mask, half;

                sh = (unsigned)-s; /* <= 71 in this range */
                mask = ((u128)1 << sh) - 1;
                half = (u128)1 << (sh - 1);
                num = p5 * (4 * m);
                vi = (uint64_t)(num >> sh);
                frac_zero = (num & mask) == 0;
                frac_cmp = (num & mask) < half ? -1 : (num & mask) > half;
                num = p5 * lo_w;
                a = (uint64_t)(num >> sh);
                lo_exact = (num & mask) == 0;
                num = p5 * (4 * m + 2);
                b = (uint64_t)(num >> sh);
                hi_exact = (num & mask) == 0;
        }
        /* The integers that read back: [a, b]. */
        if (!lo_exact || !inclusive)
                a++;
        if (hi_exact && !inclusive)
                b--;
        /* The most trailing zeros: ceil(a / 10^t) <= floor(b / 10^t). */
        for (;;) {
                uint64_t a10 = a / 10 + (a % 10 != 0), b10 = b / 10;

                if (a10 > b10)
                        break;
                a = a10;
                b = b10;
                t++;
        }
        /* Of the candidates a..b (units of 10^t), the nearest to v. */
        if (t == 0) {
                c = vi + (frac_cmp > 0 || (frac_cmp == 0 && (vi & 1)));
        } else {
                q = vi / pow10_u64[t];
                r = vi % pow10_u64[t];
                h = pow10_u64[t] / 2;
                c = q + (r > h || (r == h && (!frac_zero || (q & 1))));
        }
        if (c < a)
                c = a;
        if (c > b)
                c = b;

        for (n = 0; c; c /= 10)
                tmp[n++] = (char)('0' + c % 10);
        for (i = 0; i < n; i++)
                d[i] = tmp[n - 1 - i];
        *x_out = n - 1 + t - k;
        return n;
}
#endif

size_t tg_double_format(double v, char out[TG_DOUBLE_TEXT_MAX + 1]) {
        uint64_t bits;

        if (!isfinite(v))
                return 0;
        memcpy(&bits, &v, sizeof(bits));
        if ((bits << 1) == 0)
                return layout(out, (int)(bits >> 63), "0", 1, 0);
#ifdef __SIZEOF_INT128__
        {
                char d[20];
                int x, n = shortest_digits(bits & ~(1ULL << 63), d, &x);

                if (n > 0)
                        return layout(out, (int)(bits >> 63), d, n, x);
        }
#endif
        return format_printf(v, out);
}

/* 10^0 .. 10^22: exact doubles. */
static const double pow10_exact[23] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* w * 10^q correctly rounded, or 0 with *ok = 0 beyond what is exact here. */
static double decimal_to_double(uint64_t w, int q, int *ok) {
        *ok = 1;
        if (w == 0)
                return 0.0;
#if FLT_EVAL_METHOD == 0
        /* Clinger: two exact doubles, one correctly rounded operation. */
        if (w < (1ULL << 53) && q >= -22 && q <= 22)
                return q >= 0 ? (double)w * pow10_exact[q] : (double)w / pow10_exact[-q];
#endif
#ifdef __SIZEOF_INT128__
        if (q >= -19 && q <= 19) {
                u128 big;
                uint64_t mant, rem, half;
                int bexp, sticky = 0, len, sh;
                double d;

                if (q >= 0) {
                        big = (u128)w * pow10_u64[q]; /* < 2^128: exact */
                        bexp = 0;
                } else {
                        /* w * 2^(64 + lz) / 10^-q: a quotient of >= 64 bits */
                        int lz = __builtin_clzll(w);
                        u128 numer = (u128)(w << lz) << 64;

                        big = numer / pow10_u64[-q];
                        sticky = numer % pow10_u64[-q] != 0;
                        bexp = -(64 + lz);
                }
                len = big >> 64 ? 128 - __builtin_clzll((uint64_t)(big >> 64))
                                : 64 - __builtin_clzll((uint64_t)big);
                if (len <= 53)
                        return (double)(uint64_t)big; /* q >= 0 only: exact */
                sh = len - 53;
                mant = (uint64_t)(big >> sh);
                if (sh <= 64) {
                        rem = (uint64_t)(big & (((u128)1 << sh) - 1));
                        half = 1ULL << (sh - 1);
                } else {
                        /* the top 64 dropped bits; the rest join the sticky bit */
                        rem = (uint64_t)(big >> (sh - 64));
                        half = 1ULL << 63;
                        sticky |= (big & (((u128)1 << (sh - 64)) - 1)) != 0;
                }
                if (rem > half || (rem == half && (sticky || (mant & 1))))
                        mant++;
                if (mant >> 53) {
                        mant >>= 1;
                        sh++;
                }
                /* a normal double: 1e-19 <= w * 10^q < 2^128 */
                {
                        uint64_t bits = ((uint64_t)(bexp + sh + 52 + 1023) << 52) |
                                        (mant & ((1ULL << 52) - 1));

                        memcpy(&d, &bits, sizeof(d));
                }
                return d;
        }
#endif
        *ok = 0;
        return 0.0;
}

size_t tg_json_number_scan(const char *s, size_t len, double *out, int *exact) {
        size_t i = 0, start, ndigits = 0;
        uint64_t w = 0; /* the significant digits; wraps past 19, then unused */
        int q = 0, negative = 0, ok;
        long exp10 = 0;
        double d;

#define DIGIT(j) ((j) < len && (unsigned)(s[j] - '0') < 10)
        if (i < len && s[i] == '-') {
                negative = 1;
                i++;
        }
        if (!DIGIT(i))
                return 0;
        if (s[i] == '0') {
                i++;
        } else {
                for (start = i; DIGIT(i); i++)
                        w = w * 10 + (uint64_t)(s[i] - '0');
                ndigits = i - start;
        }
        if (i < len && s[i] == '.') {
                i++;
                if (!DIGIT(i))
                        return 0;
                if (w == 0) /* leading zeros of 0.00ddd are not significant */
                        for (; i < len && s[i] == '0'; i++)
                                q--;
                for (start = i; DIGIT(i); i++)
                        w = w * 10 + (uint64_t)(s[i] - '0');
                ndigits += i - start;
                q -= (int)(i - start < 100000 ? i - start : 100000);
        }
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                int eneg = 0;

                i++;
                if (i < len && (s[i] == '+' || s[i] == '-'))
                        eneg = s[i++] == '-';
                if (!DIGIT(i))
                        return 0;
                for (; DIGIT(i); i++)
                        if (exp10 < 100000)
                                exp10 = exp10 * 10 + (s[i] - '0');
                q += (int)(eneg ? -exp10 : exp10);
        }
#undef DIGIT
        if (ndigits > 19) {
                *exact = 0; /* more significant digits than 64 bits hold */
                *out = 0.0;
                return i;
        }
        d = decimal_to_double(w, q, &ok);
        *exact = ok;
        *out = negative ? -d : d;
        return i;
}
