/* rng.h - the simulator's seeded generators (splitmix64, xoshiro256**), shared by the signal model and the field conditions. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_SIM_RNG_H
#define TG_SIM_RNG_H

#include <math.h>
#include <stdint.h>

/* splitmix64 only expands seeds; xoshiro256** draws the values. Both are
 * fixed algorithms, so a seed means the same series on every libc. */
static inline uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

struct sim_rng {
        uint64_t s[4];
        double spare;
        int has_spare;
};

static inline uint64_t rng_next(struct sim_rng *r) {
        uint64_t *s = r->s;
        uint64_t result = rotl64(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl64(s[3], 45);
        return result;
}

/* Uniform in [0, 1) with the full 53-bit mantissa. */
static inline double rng_uniform(struct sim_rng *r) {
        return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal by Box-Muller; the second value of each pair is kept. */
static inline double rng_gauss(struct sim_rng *r) {
        double u1, u2, mag;

        if (r->has_spare) {
                r->has_spare = 0;
                return r->spare;
        }
        u1 = 1.0 - rng_uniform(r); /* (0, 1]: log() stays finite */
        u2 = rng_uniform(r);
        mag = sqrt(-2.0 * log(u1));
        r->spare = mag * sin(2.0 * M_PI * u2);
        r->has_spare = 1;
        return mag * cos(2.0 * M_PI * u2);
}

/* Each (sensor, field) pair has its own stream, so a sensor's series does
 * not change when --sensors or --fields does. */
static inline void rng_seed(struct sim_rng *r, uint64_t seed, unsigned sensor, unsigned field) {
        uint64_t x = seed ^ ((uint64_t)sensor + 1) * 0xd1b54a32d192ed03ULL ^
                     ((uint64_t)field + 1) * 0x8cb92ba72f3d8dd7ULL;
        int i;

        for (i = 0; i < 4; i++)
                r->s[i] = splitmix64(&x);
        r->has_spare = 0;
}

#endif
