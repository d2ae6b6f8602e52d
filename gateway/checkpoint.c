/* checkpoint.c - window snapshots written only behind Kafka's confirmations, and the spool released behind them. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "checkpoint.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Free space segments leave on the state disk: twice the last state (a
 * new one is written beside the old, then renamed over it) and a margin. */
#define RESERVE_MARGIN ((uint64_t)256 << 10)

struct tg_checkpoint {
        char path[4200];
        char next_path[4200];     /* a snapshot waiting for its confirmations */
        int64_t interval_ms, next_ms;
        int memory;
        int pending;              /* next_path holds the state at snap_pos */
        uint64_t snap_pos;
        uint64_t pos;             /* the last checkpoint covers messages up to here */
        _Atomic uint64_t written, rejected;
};

tg_checkpoint_t *tg_checkpoint_new(const char *state_dir, int64_t interval_ms, int memory) {
        tg_checkpoint_t *cp = calloc(1, sizeof(*cp));

        if (!cp)
                return NULL;
        snprintf(cp->path, sizeof(cp->path), "%s/windows.state", state_dir);
        snprintf(cp->next_path, sizeof(cp->next_path), "%s/windows.state.next", state_dir);
        cp->interval_ms = interval_ms;
        cp->memory = memory;
        return cp;
}

void tg_checkpoint_destroy(tg_checkpoint_t *cp) {
        free(cp);
}

/*
 * The window state file's attachment: the other modules' state at the same
 * spool position (docs/sparkplug.md 7). With the compressors alone it is
 * their bytes as ever (so a file an older gateway wrote reads, and one this
 * gateway writes without Sparkplug reads in an older one); with Sparkplug
 * it is a small tagged container:
 *
 *   "TGATTACH" u32 count, then per entry: 4-byte tag, u64 length, bytes
 *   tags: "DSMP" the compressors (tg_downsample_snapshot),
 *         "SPKP" the Sparkplug decoder (tg_sparkplug_snapshot)
 *
 * The compressors' own bytes start "TGDSTATE", so the two never mix up.
 * Unknown tags are skipped; a module with no entry starts empty.
 */
#define ATTACH_MAGIC "TGATTACH"

struct modules {
        tg_downsample_t *ds;
        tg_sparkplug_t *sp;
};

static int restore_modules(void *opaque, const void *att, size_t len, char *errstr,
                           size_t errstr_size) {
        const struct modules *m = opaque;
        const unsigned char *p = att;
        const void *dsb = NULL, *spb = NULL;
        size_t dsl = 0, spl = 0, off = 12;
        uint32_t count, i;
        int r;

        if (len >= 12 && !memcmp(p, ATTACH_MAGIC, 8)) {
                memcpy(&count, p + 8, 4);
                for (i = 0; i < count; i++) {
                        uint64_t n;

                        if (len - off < 12) {
                                snprintf(errstr, errstr_size, "attachment truncated");
                                return -EINVAL;
                        }
                        memcpy(&n, p + off + 4, 8);
                        if (n > len - off - 12) {
                                snprintf(errstr, errstr_size, "attachment truncated");
                                return -EINVAL;
                        }
                        if (!memcmp(p + off, "DSMP", 4)) {
                                dsb = p + off + 12;
                                dsl = (size_t)n;
                        } else if (!memcmp(p + off, "SPKP", 4)) {
                                spb = p + off + 12;
                                spl = (size_t)n;
                        }
                        off += 12 + (size_t)n;
                }
        } else { /* the compressors' bytes alone, or none */
                dsb = att;
                dsl = len;
        }
        if (m->ds && (r = tg_downsample_restore(m->ds, dsb, dsl, errstr, errstr_size)))
                return r;
        if (m->sp && (r = tg_sparkplug_restore(m->sp, spb, spl, errstr, errstr_size)))
                return r;
        return 0;
}

/* The attachment for the modules there are, in a buffer the caller frees. */
static int snapshot_modules(tg_downsample_t *ds, tg_sparkplug_t *sp, void **out,
                            size_t *out_len) {
        void *dsb = NULL, *spb = NULL;
        size_t dsl = 0, spl = 0, off = 0;
        unsigned char *p;
        uint32_t count;
        uint64_t n;
        int r;

        *out = NULL;
        *out_len = 0;
        if (ds && (r = tg_downsample_snapshot(ds, &dsb, &dsl)))
                return r;
        if (!sp) { /* the compressors' bytes, as an older gateway wrote them */
                *out = dsb;
                *out_len = dsl;
                return 0;
        }
        if ((r = tg_sparkplug_snapshot(sp, &spb, &spl))) {
                free(dsb);
                return r;
        }
        if (!(p = malloc(12 + (dsb ? 12 + dsl : 0) + 12 + spl))) {
                free(dsb);
                free(spb);
                return -ENOMEM;
        }
#define PUT(src, k) (memcpy(p + off, (src), (k)), off += (k))
        PUT(ATTACH_MAGIC, 8);
        count = dsb ? 2 : 1;
        PUT(&count, 4);
        if (dsb) {
                n = dsl;
                PUT("DSMP", 4);
                PUT(&n, 8);
                PUT(dsb, dsl);
        }
        n = spl;
        PUT("SPKP", 4);
        PUT(&n, 8);
        PUT(spb, spl);
#undef PUT
        free(dsb);
        free(spb);
        *out = p;
        *out_len = off;
        return 0;
}

/* Windows, compressors and Sparkplug state to @p path, as one snapshot:
 * one file, one rename. The attachment (only when there is such state) is
 * copied to a buffer first; the windows' is streamed. With @p spool,
 * segments are first made to leave room for this file and the next, so
 * that a full disk never keeps the spool from being released. */
static int save(const char *path, tg_window_engine_t *engine, tg_downsample_t *ds,
                tg_sparkplug_t *sp, uint64_t position, tg_spool_t *spool) {
        void *att = NULL;
        size_t att_len = 0;
        int r;

        if ((r = snapshot_modules(ds, sp, &att, &att_len)))
                return r;
        if (spool)
                tg_spool_set_reserve(spool, 2 * (tg_window_engine_state_bytes(engine) +
                                                 (att ? 4 + att_len : 0)) +
                                                    RESERVE_MARGIN);
        r = tg_window_engine_save_with(engine, path, position, att, att_len, NULL);
        free(att);
        return r;
}

uint64_t tg_checkpoint_restore(tg_checkpoint_t *cp, tg_window_engine_t *engine,
                               tg_downsample_t *ds, tg_sparkplug_t *sp) {
        struct modules m = {ds, sp};
        uint64_t position = 0;
        char err[256];
        int r = tg_window_engine_load_with(engine, cp->path, &position, restore_modules, &m,
                                           err, sizeof(err));

        if (r == 0)
                tg_info("restored open windows from %s (spool position %llu)", cp->path,
                        (unsigned long long)position);
        else if (r == -ENOENT)
                tg_info("no window state at %s: starting with no open windows", cp->path);
        else if (r == -EINVAL)
                tg_warn("window state %s not used (%s): starting with no open windows",
                        cp->path, err);
        else
                tg_warn("window state %s not readable (%s): starting with no open windows",
                        cp->path, strerror(-r));
        if (r && r != -ENOENT)
                atomic_fetch_add(&cp->rejected, 1);
        /* A state file saved at a clean stop in memory mode covers no spool. */
        if (r || cp->memory)
                position = 0;
        /* A snapshot Kafka had not confirmed before a crash is never used. */
        unlink(cp->next_path);
        cp->pos = position;
        return position;
}

/* A snapshot goes to disk at once, as windows.state.next, and becomes
 * windows.state by a rename once Kafka has confirmed everything it covers:
 * it is never held in memory, which for 10 000 sensors would be 3 MB more
 * resident memory every interval. A crash in between leaves the previous
 * windows.state, consistent with the spool that is still kept. */
void tg_checkpoint_step(tg_checkpoint_t *cp, tg_window_engine_t *engine, tg_downsample_t *ds,
                        tg_sparkplug_t *sp, tg_spool_t *spool,
                        uint64_t processed_next, uint64_t confirmed_next, int force,
                        int64_t now_ms) {
        int r;

        if (cp->memory) {
                /* No checkpoints: confirmed messages simply leave the spool. */
                if (confirmed_next - 1 > cp->pos) {
                        cp->pos = confirmed_next - 1;
                        tg_spool_release(spool, cp->pos);
                }
                return;
        }
        if (!cp->pending && processed_next - 1 > cp->pos && (force || now_ms >= cp->next_ms)) {
                cp->snap_pos = processed_next - 1;
                cp->next_ms = now_ms + cp->interval_ms;
                r = save(cp->next_path, engine, ds, sp, cp->snap_pos, spool);
                if (r) {
                        tg_err("checkpoint %s: %s; the spool is kept", cp->next_path,
                               strerror(-r));
                        return;
                }
                cp->pending = 1;
        }
        if (!cp->pending || confirmed_next <= cp->snap_pos)
                return;
        cp->pending = 0;
        r = tg_window_state_rename(cp->next_path, cp->path);
        if (r) {
                tg_err("checkpoint %s: %s; the spool is kept", cp->path, strerror(-r));
                return;
        }
        cp->pos = cp->snap_pos;
        atomic_fetch_add(&cp->written, 1);
        tg_spool_release(spool, cp->pos);
}

void tg_checkpoint_final(tg_checkpoint_t *cp, tg_window_engine_t *engine, tg_downsample_t *ds,
                         tg_sparkplug_t *sp, tg_spool_t *spool,
                         uint64_t processed_next, uint64_t confirmed_next, int unconfirmed) {
        int r;

        /* A snapshot Kafka has not confirmed yet is dropped: the final
         * one covers more. Then twice: the first snapshots everything
         * processed, the second makes it the state if Kafka confirmed all
         * of it. */
        cp->pending = 0;
        tg_checkpoint_step(cp, engine, ds, sp, spool, processed_next, confirmed_next, 1, 0);
        tg_checkpoint_step(cp, engine, ds, sp, spool, processed_next, confirmed_next, 1, 0);
        if (cp->memory) {
                if ((r = save(cp->path, engine, ds, sp, 0, NULL)))
                        tg_err("cannot save open windows to %s: %s; they are lost", cp->path,
                               strerror(-r));
                else
                        tg_info("saved open windows to %s", cp->path);
        } else if (cp->pos + 1 == processed_next) {
                tg_info("checkpoint at spool position %llu: nothing to replay",
                        (unsigned long long)cp->pos);
        } else {
                tg_warn("%d Kafka record(s) unconfirmed: spool messages after %llu stay on "
                        "disk and are forwarded at the next start",
                        unconfirmed, (unsigned long long)cp->pos);
        }
}

uint64_t tg_checkpoint_position(const tg_checkpoint_t *cp) {
        return cp->pos;
}

void tg_checkpoint_counts(const tg_checkpoint_t *cp, uint64_t *written, uint64_t *rejected) {
        *written = atomic_load(&((tg_checkpoint_t *)cp)->written);
        *rejected = atomic_load(&((tg_checkpoint_t *)cp)->rejected);
}
