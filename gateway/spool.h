/* spool.h - durable append-only log of raw MQTT messages, written before the PUBACK, read by the forwarder. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_SPOOL_H
#define TG_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"

/*
 * One writer (the MQTT message callback) appends; one reader (the
 * forwarder) reads in sequence order and, once Kafka has confirmed records
 * and a window checkpoint covers them, releases them. Records live in
 * segment files dir/NNNNNNNNNNNNNNNNNNNN.seg, each named by the first
 * sequence number it may hold; the record format is described at the top
 * of spool.c.
 */

#define TG_SPOOL_TOPIC_MAX 65535u          /**< longest topic an append takes */
#define TG_SPOOL_PAYLOAD_MAX (16u << 20)   /**< largest payload an append takes */
#define TG_SPOOL_RECORD_HEADER 40u         /**< bytes of header before topic and payload */
#define TG_SPOOL_PROPS_MAX 65535u          /**< largest properties block an append takes */

typedef struct tg_spool tg_spool_t;

enum tg_spool_fsync {
        TG_SPOOL_FSYNC_NEVER = 0, /**< leave write-back to the kernel */
        TG_SPOOL_FSYNC_INTERVAL,  /**< fdatasync at most every fsync_interval_ms */
        TG_SPOOL_FSYNC_ALWAYS,    /**< fdatasync before each append returns */
};

struct tg_spool_conf {
        /** Spool directory, created if missing (mkdir -p). Holds the segments
         *  and corrupt/, where damaged bytes are set aside. */
        const char *dir;
        /** Size of a segment, allocated whole (posix_fallocate) when it
         *  starts, less when max_bytes or the file system leaves less room;
         *  a record larger than this gets a segment alone. 4 KiB to 1 GiB. */
        size_t segment_bytes;
        /** Bound on the space all segments take on disk (>= segment_bytes):
         *  an append that needs a new segment and finds no room under it
         *  fails with -ENOSPC and writes nothing. Set-aside damage under
         *  corrupt/ is not counted. */
        uint64_t max_bytes;
        /** When records reach the disk. In every mode append copies the
         *  record into the segment's shared mapping, the kernel's page cache,
         *  before it returns, so a crash of the process loses nothing
         *  appended; the mode decides what a power loss can take. INTERVAL
         *  syncs happen in tg_spool_tick(), which the caller must therefore
         *  call regularly (appends never wait for them); under INTERVAL and
         *  ALWAYS a segment is also synced when it is sealed, and a new
         *  segment's directory entry is synced when it is created. close()
         *  syncs in every mode. */
        enum tg_spool_fsync fsync;
        int64_t fsync_interval_ms;
        /** Free space on the file system that segments leave to others
         *  (see tg_spool_set_reserve()), from the first segment on. */
        uint64_t reserve_bytes;
        /** Time source for the fsync interval; NULL: the monotonic clock. */
        const struct tg_clock *clock;
        /** 0, or the lowest sequence number the next append may get. Without
         *  fsync ALWAYS a power loss can take records Kafka has already
         *  confirmed; passing (highest seq known to be confirmed or
         *  checkpointed) + 1 here keeps such numbers from being given to
         *  other messages after the restart. */
        uint64_t seq_floor;
};

/** One record as read; topic and payload point into the caller's buffer. */
struct tg_spool_record {
        uint64_t seq;            /**< 1, 2, 3, ... never reused, continues across reopen */
        int64_t arrival_ms;
        const char *topic;       /**< not NUL-terminated */
        size_t topic_len;
        const void *payload;
        size_t len;
        /** The message's properties block (MQTT 5, msgprops.h), opaque to
         *  the spool; NULL and 0 when the message had none (every version 1
         *  record). */
        const void *props;
        size_t props_len;
};

/** What the spool did; monotonic except bytes and records_pending. */
struct tg_spool_counters {
        uint64_t appended;         /**< records appended */
        uint64_t appended_bytes;   /**< bytes appended, headers included */
        uint64_t read;             /**< records returned by tg_spool_read() */
        uint64_t fsyncs;           /**< fdatasync calls on segment data */
        uint64_t segments_created;
        uint64_t segments_deleted;
        uint64_t corrupt_records;  /**< damaged regions skipped by read and set aside */
        uint64_t corrupt_bytes;
        uint64_t torn_tail_bytes;  /**< cut off the last segment at open */
        uint64_t full_refusals;    /**< appends refused because of max_bytes */
        uint64_t bytes;            /**< bytes of records in all segments */
        uint64_t allocated_bytes;  /**< bytes allocated on disk: the segments' sizes */
        uint64_t records_pending;  /**< seq numbers after the release point up to the end
                                        (exact unless corruption or seq_floor left gaps) */
        uint64_t torn_tails;       /**< opens that found and cut a torn tail */
        uint64_t dir_fsyncs;       /**< fsyncs of the directory after creating a segment */
        uint64_t write_errors;     /**< appends refused because a segment could not start
                                        for another reason than room */
        uint64_t fsync_errors;     /**< failed fdatasync calls */
};

/**
 * @brief Open (or create) the spool in conf->dir: scan every segment in
 *        sequence order, check every record's CRC, cut a torn tail off the
 *        last segment (set aside under corrupt/ and counted), and continue
 *        numbering after the highest valid seq. Damage elsewhere is left in
 *        place for tg_spool_read() to skip. Takes an exclusive lock on the
 *        directory, so two processes cannot share a spool.
 * @param conf copied; conf->dir and conf->clock are borrowed (clock must
 *        outlive the spool).
 * @return the spool, or NULL with the reason in @p errstr.
 */
tg_spool_t *tg_spool_open(const struct tg_spool_conf *conf, char *errstr,
                          size_t errstr_size);

/** @brief fdatasync what is unsynced, close and free. NULL is accepted. */
void tg_spool_close(tg_spool_t *sp);

/**
 * @brief Append one message as one record: a copy into the mapped segment
 *        and an atomic store that publishes it. No system call and no
 *        wake-up of another thread, except when a segment starts (once per
 *        segment_bytes) or under fsync ALWAYS. Thread-safe against a
 *        concurrent reader (and other appenders); allocation-free.
 * @param topic @p topic_len bytes, need not be NUL-terminated.
 * @param seq set to the record's sequence number on success (may be NULL).
 * @return 0; -EMSGSIZE if topic_len > TG_SPOOL_TOPIC_MAX or len >
 *         TG_SPOOL_PAYLOAD_MAX; -EINVAL for a NULL pointer with a length;
 *         -ENOSPC when the record needs a new segment and neither max_bytes
 *         nor the file system (less the reserve) has room for it: nothing
 *         is written, and the full segment is sealed so that releasing it
 *         frees its space; another -errno when a segment cannot be created
 *         or, under ALWAYS, synced (then nothing is written either).
 */
int tg_spool_append(tg_spool_t *sp, const char *topic, size_t topic_len,
                    const void *payload, size_t len, int64_t arrival_ms,
                    uint64_t *seq);

/**
 * @brief tg_spool_append() with a properties block stored between topic
 *        and payload (a version 2 record, covered by the record's CRC).
 *        With @p props_len 0 it writes exactly what tg_spool_append() does.
 * @return as tg_spool_append(); -EMSGSIZE also when props_len >
 *         TG_SPOOL_PROPS_MAX.
 */
int tg_spool_append_props(tg_spool_t *sp, const char *topic, size_t topic_len,
                          const void *props, size_t props_len, const void *payload,
                          size_t len, int64_t arrival_ms, uint64_t *seq);

/**
 * @brief Free space on the spool's file system that segments leave to
 *        others (e.g. the window checkpoint, which must be writable to
 *        release anything), in bytes. Thread-safe; default 0.
 */
void tg_spool_set_reserve(tg_spool_t *sp, uint64_t bytes);

/**
 * @brief Whether a segment is open for appends: 0 after a segment could not
 *        start for want of room, until an append finds room again.
 */
int tg_spool_writable(const tg_spool_t *sp);

/**
 * @brief Read the first valid record with seq >= *cursor. Never reads past
 *        what appends have completed. Damaged data (bad header, CRC
 *        mismatch) is skipped: counted, its bytes copied to
 *        dir/corrupt/<segment>-<offset>.bin, logged once, and reading
 *        resynchronises on the next header whose CRC verifies.
 *        Allocation-free; thread-safe against the appender (readers are
 *        serialised).
 * @param buf receives topic, properties and payload: @p cap >= topic_len +
 *        props_len + len is enough (TG_SPOOL_TOPIC_MAX + TG_SPOOL_PROPS_MAX +
 *        TG_SPOOL_PAYLOAD_MAX for any record).
 * @return 0 with @p rec filled and *cursor = rec->seq + 1; -EAGAIN when no
 *         such record exists yet; -ENOBUFS when @p cap is too small
 *         (*cursor unchanged; rec->seq, topic_len and len tell the size
 *         needed, its pointers are NULL); -EIO or another -errno when the
 *         segment cannot be read.
 */
int tg_spool_read(tg_spool_t *sp, uint64_t *cursor, struct tg_spool_record *rec,
                  void *buf, size_t cap);

/**
 * @brief Wait up to @p timeout_ms for a record with seq >= @p cursor to
 *        exist. Appends signal nobody, so this looks every millisecond: for
 *        tests and tools; a reader on the data path polls
 *        tg_spool_next_seq() at its own pace.
 * @return 1 if one exists, 0 on timeout.
 */
int tg_spool_wait(tg_spool_t *sp, uint64_t cursor, int timeout_ms);

/**
 * @brief Everything with seq <= @p upto is no longer needed: delete every
 *        segment whose records all have seq <= upto, never the segment
 *        being written (but a last segment sealed for want of room, yes).
 *        Thread-safe; needs no free space.
 */
void tg_spool_release(tg_spool_t *sp, uint64_t upto);

/** @brief Periodic work: the interval fdatasync when it is due. Thread-safe. */
void tg_spool_tick(tg_spool_t *sp);

/**
 * @brief fdatasync the segment being written now, whatever the policy
 *        (e.g. before a checkpoint that relies on it).
 * @return 0 or -errno.
 */
int tg_spool_sync(tg_spool_t *sp);

/** @brief The seq the next append gets: one atomic load, for polling. */
uint64_t tg_spool_next_seq(const tg_spool_t *sp);

/**
 * @brief The last sequence in the oldest segment, when it is not the one
 *        being written: releasing up to it frees that segment. @return it,
 *        or 0 when the only segment is being written.
 */
uint64_t tg_spool_oldest_end(tg_spool_t *sp);

/** @brief The lowest seq that may still be on disk (== next_seq when empty). */
uint64_t tg_spool_first_seq(const tg_spool_t *sp);

/** @brief A consistent snapshot of the counters. */
void tg_spool_counters(tg_spool_t *sp, struct tg_spool_counters *out);

#endif
