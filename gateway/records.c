/* records.c - the aggregate record's JSON, written into a caller's buffer with no allocation. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "records.h"

#include <stdio.h>
#include <string.h>

#include "codec.h"

size_t tg_record_aggregate(const tg_window_engine_t *engine, const struct tg_window_result *w,
                           char *buf, size_t cap) {
        struct tg_jw j;
        char num[32];
        uint32_t i;

        tg_jw_init(&j, buf, cap);
        tg_jw_raw(&j, "{\"id\":");
        snprintf(num, sizeof(num), "/%lld", (long long)w->start);
        {
                char id[TG_SENSOR_ID_MAX + 32];
                int n = snprintf(id, sizeof(id), "%.*s%s", (int)w->sensor_len,
                                 w->sensor, num);

                tg_jw_string(&j, id, (size_t)n);
        }
        tg_jw_raw(&j, ",\"sensor\":");
        tg_jw_string(&j, w->sensor, w->sensor_len);
        tg_jw_raw(&j, ",\"window_start\":");
        tg_jw_int(&j, w->start);
        tg_jw_raw(&j, ",\"window_end\":");
        tg_jw_int(&j, w->end);
        tg_jw_raw(&j, ",\"count\":");
        tg_jw_int(&j, w->count);
        if (w->final) {
                tg_jw_raw(&j, ",\"final\":true,\"late\":");
                tg_jw_int(&j, (int64_t)w->late);
        } else {
                tg_jw_raw(&j, ",\"final\":false");
        }
        tg_jw_raw(&j, ",\"fields\":{");
        for (i = 0; i < w->nfields; i++) {
                const struct tg_field_stats *f = &w->fields[i];
                const char *name = tg_window_field_name(engine, f->field);

                if (i)
                        tg_jw_raw(&j, ",");
                tg_jw_string(&j, name, strlen(name));
                tg_jw_raw(&j, ":");
                tg_jw_field_stats(&j, f); /* {"count":..,...}, "overflow":true if any is null */
        }
        tg_jw_raw(&j, "}}");
        return tg_jw_finish(&j);
}

size_t tg_record_downsampled(const struct tg_reading *r, const struct tg_raw_point *p, size_t n,
                             char *buf, size_t cap) {
        struct tg_jw j;
        size_t i;

        tg_jw_init(&j, buf, cap);
        tg_jw_raw(&j, "{\"sensor\":");
        tg_jw_string(&j, r->sensor, r->sensor_len);
        tg_jw_raw(&j, ",\"ts\":");
        tg_jw_int(&j, n ? p[0].ts : r->ts_ms);
        tg_jw_raw(&j, ",\"mode\":\"");
        tg_jw_raw(&j, tg_raw_mode_name(n ? p[0].mode : TG_RAW_ALL));
        tg_jw_raw(&j, n && p[0].out_of_order ? "\",\"out_of_order\":true,\"fields\":{"
                                             : "\",\"fields\":{");
        for (i = 0; i < n; i++) {
                const struct tg_field *f = &r->fields[p[i].field];

                if (i)
                        tg_jw_raw(&j, ",");
                tg_jw_string(&j, f->name, f->name_len);
                tg_jw_raw(&j, ":");
                tg_jw_double(&j, p[i].value);
        }
        tg_jw_raw(&j, "}}");
        return tg_jw_finish(&j);
}
