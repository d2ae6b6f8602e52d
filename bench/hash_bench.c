/* hash_bench.c - ns per SipHash-2-4 of a sensor id: libsodium's call against keyed_hash.h's inline copy (issue 13). */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hashes N ids of LEN bytes ("node-00042" style, LEN 10 by default) round-
 * robin, each function in turn, best of R runs; the sum of the hashes is kept
 * so the loop is not optimised away. Usage: hash_bench [-n HASHES] [-r RUNS] [LEN...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "keyed_hash.h"

static double cpu_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        static char ids[1024][64];
        unsigned char key[TG_HASH_KEY_BYTES];
        long n = 20000000, i;
        int runs = 5, opt, r, a, len = 10;
        volatile uint64_t sink = 0;

        while ((opt = getopt(argc, argv, "n:r:")) != -1) {
                if (opt == 'n')
                        n = atol(optarg);
                else if (opt == 'r')
                        runs = atoi(optarg);
                else
                        return 2;
        }
        if (tg_hash_key_random(key) < 0)
                return 1;
        for (a = optind; a < argc || a == optind; a++) {
                double best[2] = {1e9, 1e9};

                if (a < argc)
                        len = atoi(argv[a]);
                if (len < 1 || len > 64)
                        return 2;
                for (i = 0; i < 1024; i++)
                        snprintf(ids[i], sizeof(ids[i]), "node-%058ld", i * 7919 % 100000);
                for (i = 0; i < 1024; i++) /* the last len bytes vary */
                        memmove(ids[i], ids[i] + 64 - 1 - len, (size_t)len);
                for (r = 0; r < runs; r++) {
                        double t0 = cpu_s(), t1, t2;
                        uint64_t s = 0;

                        for (i = 0; i < n; i++)
                                s += tg_hash_keyed(key, ids[i & 1023], (size_t)len);
                        t1 = cpu_s();
                        for (i = 0; i < n; i++)
                                s += tg_hash_keyed_short(key, ids[i & 1023], (size_t)len);
                        t2 = cpu_s();
                        sink += s;
                        if (t1 - t0 < best[0])
                                best[0] = t1 - t0;
                        if (t2 - t1 < best[1])
                                best[1] = t2 - t1;
                }
                printf("%2d-byte ids  libsodium %6.2f ns  inline %6.2f ns  libsodium/inline %5.2fx\n",
                       len, best[0] / n * 1e9, best[1] / n * 1e9, best[0] / best[1]);
        }
        (void)sink;
        return 0;
}
