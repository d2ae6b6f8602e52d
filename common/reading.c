/* reading.c - filling the reading model with bounds checks. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "reading.h"

#include <errno.h>
#include <string.h>

void tg_reading_clear(struct tg_reading *r) {
        r->sensor[0] = '\0';
        r->sensor_len = 0;
        r->ts_ms = 0;
        r->ts_from_arrival = 0;
        r->nfields = 0;
}

int tg_reading_set_sensor(struct tg_reading *r, const char *id, size_t len) {
        /* A NUL inside would make the id a different string to every
         * strlen-based consumer (logs, topic patterns, tools). */
        if (len == 0 || memchr(id, '\0', len))
                return -EINVAL;
        if (len > TG_SENSOR_ID_MAX)
                return -ENAMETOOLONG;
        memcpy(r->sensor, id, len);
        r->sensor[len] = '\0';
        r->sensor_len = (uint16_t)len;
        return 0;
}

int tg_reading_add_field(struct tg_reading *r, const char *name, size_t len,
                         double value) {
        uint16_t i;

        if (len == 0 || memchr(name, '\0', len))
                return -EINVAL;
        if (len > TG_FIELD_NAME_MAX)
                return -ENAMETOOLONG;
        for (i = 0; i < r->nfields; i++) {
                if (r->fields[i].name_len == len &&
                    !memcmp(r->fields[i].name, name, len)) {
                        r->fields[i].value = value;
                        return 0;
                }
        }
        if (r->nfields >= TG_READING_FIELDS_MAX)
                return -ENOSPC;
        memcpy(r->fields[i].name, name, len);
        r->fields[i].name[len] = '\0';
        r->fields[i].name_len = (uint8_t)len;
        r->fields[i].unit[0] = '\0';
        r->fields[i].value = value;
        r->nfields++;
        return 0;
}

int tg_reading_set_unit(struct tg_reading *r, uint16_t i, const char *unit,
                        size_t len) {
        if (i >= r->nfields)
                return -EINVAL;
        if (len > TG_UNIT_MAX)
                return -ENAMETOOLONG;
        if (memchr(unit, '\0', len))
                return -EINVAL;
        memcpy(r->fields[i].unit, unit, len);
        r->fields[i].unit[len] = '\0';
        return 0;
}
