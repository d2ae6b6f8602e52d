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

/** @brief SipHash-2-4 of @p len bytes at @p p under @p key: libsodium's
 *  crypto_shorthash_siphash24. (An inline copy saved 1-3 ns of its 12-18 ns
 *  on sensor ids, below what the engine's benchmark can tell: not kept,
 *  bench/RESULTS.md "Keyed hashes (issue 13)".) */
static inline uint64_t tg_hash_keyed(const unsigned char key[TG_HASH_KEY_BYTES], const void *p,
                                     size_t len) {
        unsigned char out[crypto_shorthash_siphash24_BYTES];
        uint64_t h;

        crypto_shorthash_siphash24(out, (const unsigned char *)p, len, key);
        memcpy(&h, out, sizeof(h));
        return le64toh(h); /* SipHash's output is little-endian */
}

#endif
