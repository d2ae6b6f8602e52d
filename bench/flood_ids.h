/* flood_ids.h - sensor ids crafted to share one bucket under the unkeyed hash the engine used before issue 13. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_FLOOD_IDS_H
#define TG_FLOOD_IDS_H

/*
 * For bench/window_bench.c -F and tests/unit/test_window_hash.c: what a
 * device could send to flood the sensor table before its hash was keyed.
 * Nothing in the gateway uses this.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FLOOD_HASH 0x13131313u /* the old hash every crafted id has */
#define FLOOD_ID_LEN 8

static inline uint64_t flood_load64(const char *p) {
        uint64_t v;

        memcpy(&v, p, 8);
        return v;
}

static inline uint64_t flood_load32(const char *p) {
        uint32_t v;

        memcpy(&v, p, 4);
        return v;
}

/* The sensor table's hash before issue 13 (common/window.c hash_id() at
 * 8b436e3), copied unchanged: unkeyed, so anyone can invert it. */
static inline uint32_t flood_old_hash_id(const char *s, size_t len) {
        const uint64_t k = 0x9e3779b97f4a7c15ULL;
        uint64_t h = len * k;
        size_t i;

        if (len >= 8) {
                for (i = 0; i + 8 < len; i += 8) {
                        h = (h ^ flood_load64(s + i)) * k;
                        h ^= h >> 32;
                }
                h ^= flood_load64(s + len - 8);
        } else if (len >= 4) {
                h ^= flood_load32(s) | flood_load32(s + len - 4) << 32;
        } else if (len) {
                h ^= (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[len / 2] << 8 |
                     (uint64_t)(unsigned char)s[len - 1] << 16;
        }
        h *= 0xd6e8feb86659fd93ULL;
        h ^= h >> 32;
        h *= 0xd6e8feb86659fd93ULL;
        return (uint32_t)(h ^ (h >> 32));
}

/* Bytes a device can put in an id whatever the format: printable ASCII but
 * the JSON string's and the MQTT topic level's special characters. */
static inline int flood_id_byte_ok(unsigned char c) {
        return c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '/' && c != '+' &&
               c != '#';
}

/*
 * Write @p n distinct ids of FLOOD_ID_LEN bytes whose old hash is
 * FLOOD_HASH, the i-th at @p out + i * @p stride (not NUL-terminated).
 * For 8 bytes the old hash is y = fin(8k ^ id) folded to 32 bits as
 * y ^ y >> 32, fin a bijection of 64-bit words (an odd multiplication, a
 * xor-shift by 32, an odd multiplication). So every y = hi << 32 |
 * (hi ^ FLOOD_HASH), hi = 0, 1, ..., folds to FLOOD_HASH: invert fin and
 * keep the ids that are printable (about 1 in 4 800; 10 000 ids in ~0.1 s).
 * @return how many were written: @p n, or fewer if an id failed to collide.
 */
static inline int flood_craft_ids(char *out, size_t stride, int n) {
        const uint64_t m = 0xd6e8feb86659fd93ULL, k8 = 8 * 0x9e3779b97f4a7c15ULL;
        uint64_t minv = m, hi;
        int found = 0, i;

        for (i = 0; i < 6; i++)
                minv *= 2 - m * minv; /* Newton: m * minv = 1 mod 2^64 */
        for (hi = 0; found < n && hi < ((uint64_t)1 << 32); hi++) {
                uint64_t x = hi << 32 | (uint32_t)(hi ^ FLOOD_HASH);
                char id[FLOOD_ID_LEN];

                x *= minv;
                x ^= x >> 32;
                x *= minv;
                x ^= k8;
                memcpy(id, &x, 8);
                for (i = 0; i < 8 && flood_id_byte_ok((unsigned char)id[i]); i++)
                        ;
                if (i < 8)
                        continue;
                if (flood_old_hash_id(id, 8) != FLOOD_HASH)
                        break;
                memcpy(out + (size_t)found++ * stride, id, 8);
        }
        return found;
}

#endif
