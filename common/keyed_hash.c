/* keyed_hash.c - the per-process hash keys, from getrandom(2). */
/* SPDX-License-Identifier: Apache-2.0 */
#include "keyed_hash.h"

#include <errno.h>
#include <sys/random.h>

int tg_hash_key_random(unsigned char key[TG_HASH_KEY_BYTES]) {
        size_t got = 0;

        /* Documented as needed before any other libsodium call; idempotent
         * and thread-safe. SipHash itself uses no state of it. */
        if (sodium_init() < 0)
                return -EIO;
        while (got < TG_HASH_KEY_BYTES) {
                ssize_t n = getrandom(key + got, TG_HASH_KEY_BYTES - got, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)n;
        }
        return 0;
}
