/* crc_bench.c - the spool's CRC-32 by zlib and by ISA-L (common/crc32.h) on records of the spool's sizes. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A spool record is a 40-byte header, the topic and the payload; the
 * gateway computes header_crc over 32 bytes and record_crc over the rest,
 * on append and again when the forwarder reads it, and the redelivery key
 * of a QoS 1 message is the CRC of its topic and its payload. The lengths
 * below are those pieces for the e2e benchmark's load (topic of 24 bytes,
 * JSON payload of 79) and for larger payloads. Each line runs both on the
 * same buffers, checks that they agree, and prints ns per CRC (thread CPU
 * time). Usage: crc_bench [ROUNDS] (default 4 000 000 per length)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

#include "crc32.h"

static double thread_cpu_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        static const size_t lens[] = {4, 24, 32, 79, 107, 256, 1024};
        long rounds = argc > 1 ? atol(argv[1]) : 4000000;
        static unsigned char buf[4096];
        uint32_t seed = 12345;
        size_t i, k;

        if (rounds < 1)
                return 2;
        for (i = 0; i < sizeof(buf); i++) {
                seed = seed * 1103515245u + 12345u;
                buf[i] = (unsigned char)(seed >> 16);
        }
        printf("%-6s %12s %12s %8s\n", "bytes", "zlib ns", "isa-l ns", "speed-up");
        for (k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
                size_t len = lens[k];
                uint32_t a = 0, b = 0;
                double t0, tz, ti;
                long r;

                t0 = thread_cpu_s();
                for (r = 0; r < rounds; r++)
                        a += (uint32_t)crc32(a, buf + (r & 1023), (uInt)len);
                tz = thread_cpu_s() - t0;
                t0 = thread_cpu_s();
                for (r = 0; r < rounds; r++)
                        b += tg_crc32(b, buf + (r & 1023), len);
                ti = thread_cpu_s() - t0;
                if (a != b) {
                        fprintf(stderr, "crc_bench: zlib and ISA-L disagree at %zu bytes\n", len);
                        return 1;
                }
                printf("%-6zu %12.1f %12.1f %7.1fx\n", len, tz / rounds * 1e9, ti / rounds * 1e9,
                       tz / ti);
        }
        return 0;
}
