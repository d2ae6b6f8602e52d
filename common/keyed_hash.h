/* keyed_hash.h - SipHash-2-4 (libsodium) under a per-process random key, for tables that device-chosen bytes fill. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_KEYED_HASH_H
#define TG_KEYED_HASH_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

/*
 * A table indexed by a fixed, public hash of what a device sends (a sensor id,
 * a topic and payload) can be flooded: whoever knows the function can pick
 * thousands of inputs that share a bucket, and every lookup then walks all of
 * them. SipHash is a pseudorandom function of a secret key: without the key,
 * which never leaves the process, no input is likelier than another to
 * collide with a given one, whatever the attacker computes offline.
 */

#define TG_HASH_KEY_BYTES crypto_shorthash_siphash24_KEYBYTES /**< 16 */

/**
 * @brief Fill @p key with fresh random bytes from getrandom(2) (which waits,
 *        once after boot, until the kernel's generator is seeded).
 * @return 0, or a negative errno (-ENOSYS: a kernel before 3.17).
 */
int tg_hash_key_random(unsigned char key[TG_HASH_KEY_BYTES]);

/** @brief SipHash-2-4 of @p len bytes at @p p under @p key (libsodium's). */
static inline uint64_t tg_hash_keyed(const unsigned char key[TG_HASH_KEY_BYTES], const void *p,
                                     size_t len) {
        unsigned char out[crypto_shorthash_siphash24_BYTES];
        uint64_t h;

        crypto_shorthash_siphash24(out, (const unsigned char *)p, len, key);
        memcpy(&h, out, sizeof(h));
        return le64toh(h);
}

static inline uint64_t tg_siphash_rotl(uint64_t x, int b) {
        return (x << b) | (x >> (64 - b));
}

#define TG_SIPROUND(v0, v1, v2, v3)                                            \
        do {                                                                   \
                v0 += v1; v1 = tg_siphash_rotl(v1, 13); v1 ^= v0;               \
                v0 = tg_siphash_rotl(v0, 32);                                   \
                v2 += v3; v3 = tg_siphash_rotl(v3, 16); v3 ^= v2;               \
                v0 += v3; v3 = tg_siphash_rotl(v3, 21); v3 ^= v0;               \
                v2 += v1; v1 = tg_siphash_rotl(v1, 17); v1 ^= v2;               \
                v2 = tg_siphash_rotl(v2, 32);                                   \
        } while (0)

/**
 * @brief The same function as tg_hash_keyed(), written out here so that it
 *        inlines into the window engine, which hashes the sensor id of every
 *        reading (an experiment: bench/hash_bench.c measures whether it
 *        pays, bench/RESULTS.md "Keyed hashes (issue 13)").
 *        tests/unit/test_window_hash.c checks it against libsodium's for
 *        every length up to 80 bytes under random keys. For short input
 *        (sensor ids: up to 64 bytes); anything longer goes to
 *        tg_hash_keyed().
 */
static inline uint64_t tg_hash_keyed_short(const unsigned char key[TG_HASH_KEY_BYTES],
                                           const void *p, size_t len) {
        const unsigned char *in = (const unsigned char *)p;
        uint64_t k0, k1, v0, v1, v2, v3, m, b = (uint64_t)len << 56;
        size_t i, tail = len & 7;

        memcpy(&k0, key, 8);
        memcpy(&k1, key + 8, 8);
        k0 = le64toh(k0);
        k1 = le64toh(k1);
        v0 = k0 ^ 0x736f6d6570736575ULL;
        v1 = k1 ^ 0x646f72616e646f6dULL;
        v2 = k0 ^ 0x6c7967656e657261ULL;
        v3 = k1 ^ 0x7465646279746573ULL;
        for (i = 0; i + 8 <= len; i += 8) {
                memcpy(&m, in + i, 8);
                m = le64toh(m);
                v3 ^= m;
                TG_SIPROUND(v0, v1, v2, v3);
                TG_SIPROUND(v0, v1, v2, v3);
                v0 ^= m;
        }
        for (i = 0; i < tail; i++)
                b |= (uint64_t)in[len - tail + i] << (8 * i);
        v3 ^= b;
        TG_SIPROUND(v0, v1, v2, v3);
        TG_SIPROUND(v0, v1, v2, v3);
        v0 ^= b;
        v2 ^= 0xff;
        TG_SIPROUND(v0, v1, v2, v3);
        TG_SIPROUND(v0, v1, v2, v3);
        TG_SIPROUND(v0, v1, v2, v3);
        TG_SIPROUND(v0, v1, v2, v3);
        return v0 ^ v1 ^ v2 ^ v3;
}

#endif
