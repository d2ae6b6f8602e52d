/* crc32.h - the CRC-32 of the spool's records and the state file, by ISA-L. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CRC32_H
#define TG_CRC32_H

#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

/**
 * @brief zlib's crc32(): the gzip polynomial, reflected, continued from
 *        @p crc (0 to start), computed with ISA-L's carry-less multiply
 *        kernels (x86-64 PCLMULQDQ, Arm PMULL). The same values as zlib, so
 *        files written before are read unchanged; 4-6 times faster on the
 *        spool's 100-200-byte records (bench/RESULTS.md, "CRC-32").
 */
static inline uint32_t tg_crc32(uint32_t crc, const void *p, size_t n) {
        return n ? crc32_gzip_refl(crc, (const unsigned char *)p, n) : crc;
}

#endif
