/* status_page.c - the status page's HTML: what the operator at the box sees when the uplink is down. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "status_page.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"

#ifndef TG_VERSION
#define TG_VERSION "dev"
#endif

#define CHART_W 180
#define CHART_H 40

/* The box may have no internet: styles and the refresh script are inline,
 * and the script only re-fetches this page and swaps its <main>. */
static const char page_head[] =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>tumblegate status</title><style>"
        "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}"
        "h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.2em 0 .4em}"
        "table{border-collapse:collapse}td,th{padding:3px 10px;white-space:nowrap;border-bottom:1px solid #ddd;"
        "text-align:right;vertical-align:middle}th{background:#eee}td.l,th.l{text-align:left}"
        ".ok{color:#0a7a2f;font-weight:bold}.bad{color:#b3261e;font-weight:bold}"
        ".cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ddd;"
        "border-radius:6px;padding:8px 12px;min-width:170px}.card b{display:block;font-size:1.3em}"
        ".muted{color:#777;font-size:.9em}svg{display:block}"
        "</style></head><body>\n";

static const char page_tail[] =
        "<script>\n"
        "/* Live refresh: fetch this page again and swap its <main>. */\n"
        "setInterval(function () {\n"
        "  fetch(location.href, {cache: 'no-store', credentials: 'same-origin'})\n"
        "    .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })\n"
        "    .then(function (t) {\n"
        "      var d = new DOMParser().parseFromString(t, 'text/html');\n"
        "      document.querySelector('main').replaceWith(d.querySelector('main'));\n"
        "      document.body.dataset.refreshes = (+document.body.dataset.refreshes || 0) + 1;\n"
        "    }).catch(function () {\n"
        "      document.getElementById('stale').textContent = ' (gateway not answering)';\n"
        "    });\n"
        "}, 2000);\n"
        "</script></body></html>\n";

/* Text for HTML: & < > " escaped. */
static void esc(FILE *out, const char *s) {
        for (; *s; s++) {
                switch (*s) {
                case '&': fputs("&amp;", out); break;
                case '<': fputs("&lt;", out); break;
                case '>': fputs("&gt;", out); break;
                case '"': fputs("&quot;", out); break;
                default: fputc(*s, out);
                }
        }
}

static void utc(char *buf, size_t size, int64_t ms) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* A card whose number /metrics also has: data-metric names it, so a test
 * can compare the two. */
static void card(FILE *out, const char *label, const char *metric, uint64_t v) {
        fprintf(out, "<div class=\"card\">%s<b data-metric=\"%s\">%llu</b></div>", label,
                metric, (unsigned long long)v);
}

/* Mean as a line over a min..max band, oldest window on the left. */
static void chart(FILE *out, const struct tg_status_row *r) {
        double lo = INFINITY, hi = -INFINITY, dx;
        uint32_t k;

        for (k = 0; k < r->nwindows; k++) {
                lo = fmin(lo, r->windows[k].min);
                hi = fmax(hi, r->windows[k].max);
        }
        fprintf(out, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "role=\"img\" aria-label=\"mean, min and max of the last %u windows\">",
                CHART_W, CHART_H, CHART_W, CHART_H, r->nwindows);
        if (r->nwindows >= 1) {
                double span = hi > lo ? hi - lo : 1.0;
#define Y(v) (CHART_H - 3 - ((v) - lo) / span * (CHART_H - 6))
                dx = r->nwindows > 1 ? (double)(CHART_W - 6) / (r->nwindows - 1) : 0;
                fputs("<polygon fill=\"#cfe0f5\" points=\"", out);
                for (k = 0; k < r->nwindows; k++)
                        fprintf(out, "%.1f,%.1f ", 3 + k * dx, Y(r->windows[k].max));
                for (k = r->nwindows; k-- > 0;)
                        fprintf(out, "%.1f,%.1f ", 3 + k * dx, Y(r->windows[k].min));
                fputs("\"/><polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\" "
                      "points=\"", out);
                for (k = 0; k < r->nwindows; k++)
                        fprintf(out, "%.1f,%.1f ", 3 + k * dx, Y(r->windows[k].mean));
                fputs("\"/>", out);
#undef Y
        }
        fputs("</svg>", out);
}

static void sensor_rows(FILE *out, tg_status_t *st, int64_t now_ms) {
        struct tg_status_row r;
        uint64_t untracked = 0;
        uint32_t n = tg_status_rows(st, &untracked), i;
        char when[32];

        r.windows = calloc(tg_status_windows_max(st), sizeof(*r.windows));
        if (!r.windows)
                return;
        fprintf(out, "<h2>Sensors <span class=\"muted\">(%u tracked, status.sensors; %llu "
                "windows of others not shown)</span></h2>\n"
                "<table id=\"sensors\"><tr><th class=\"l\">sensor</th><th class=\"l\">last "
                "reading</th><th>event time (UTC)</th><th>age</th><th>windows</th><th>late</th>"
                "<th class=\"l\">last closed window (UTC)</th><th>count</th><th>mean</th>"
                "<th>min</th><th>max</th><th class=\"l\">last %u windows: mean, min&ndash;max"
                "</th></tr>\n", n, (unsigned long long)untracked, tg_status_windows_max(st));
        for (i = 0; i < n && !tg_status_row(st, i, &r); i++) {
                fputs("<tr class=\"sensor\" data-sensor=\"", out);
                esc(out, r.id);
                fputs("\"><td class=\"l id\">", out);
                esc(out, r.id);
                fputs("</td><td class=\"l\">", out);
                esc(out, r.last_field);
                utc(when, sizeof(when), r.last_ts);
                fprintf(out, " = <span class=\"last-value\">%.6g</span></td><td>%s</td>"
                        "<td>%.1f s</td><td class=\"windows\">%llu</td><td class=\"late\">%llu</td>",
                        r.last_value, when, (double)(now_ms - r.last_arrival_ms) / 1000.0,
                        (unsigned long long)r.windows_closed, (unsigned long long)r.late);
                if (r.nwindows) {
                        const struct tg_status_window *w = &r.windows[r.nwindows - 1];

                        utc(when, sizeof(when), w->start);
                        fprintf(out, "<td class=\"l\">%s <span class=\"muted\">", when);
                        esc(out, r.field);
                        fprintf(out, "</span></td><td class=\"count\">%u</td><td class=\"mean\">"
                                "%.6g</td><td>%.6g</td><td>%.6g</td><td class=\"l\">",
                                w->count, w->mean, w->min, w->max);
                } else {
                        fputs("<td class=\"l muted\">none closed yet</td><td></td><td></td>"
                              "<td></td><td></td><td class=\"l\">", out);
                }
                chart(out, &r);
                fputs("</td></tr>\n", out);
        }
        fputs("</table>\n", out);
        free(r.windows);
}

void tg_status_page_render(FILE *out, tg_pipeline_t *pipeline, tg_kafka_sink_t *sink,
                           tg_mqtt_source_t *mqtt, struct tg_page_rates *rates,
                           int64_t spool_max_bytes) {
        struct tg_pipeline_counters c;
        struct tg_pipeline_messages m;
        int64_t now = tg_clock_now(&tg_clock_realtime), mono = tg_monotonic_ms();
        uint64_t refused = 0;
        int mqtt_ok = mqtt && tg_mqtt_source_ready(mqtt), kafka_ok = tg_kafka_sink_reachable(sink);
        tg_status_t *st = tg_pipeline_status(pipeline);
        char when[32];
        size_t i;

        tg_pipeline_counters(pipeline, &c);
        tg_pipeline_messages(pipeline, &m);
        for (i = 1; i < TG_DECODE__COUNT; i++)
                if (i != TG_DECODE_TS_OUT_OF_RANGE)
                        refused += c.decode_failed[i];
        refused += c.window.future + c.window.out_of_range +
                   c.decode_failed[TG_DECODE_TS_OUT_OF_RANGE];
        if (rates->at_ms && mono - rates->at_ms >= 500) {
                double s = (double)(mono - rates->at_ms) / 1000.0;

                rates->decoded_per_s = (double)(c.decoded - rates->decoded) / s;
                rates->refused_per_s = (double)(refused - rates->refused) / s;
        }
        if (!rates->at_ms || mono - rates->at_ms >= 500) {
                rates->at_ms = mono;
                rates->decoded = c.decoded;
                rates->refused = refused;
        }

        utc(when, sizeof(when), now);
        fputs(page_head, out);
        fprintf(out, "<h1>tumblegate %s <span class=\"muted\">status at %s UTC"
                "<span id=\"stale\"></span></span></h1>\n<main>\n", TG_VERSION, when);
        fputs("<div class=\"cards\">", out);
        fprintf(out, "<div class=\"card\">MQTT<b id=\"mqtt\" class=\"%s\">%s</b></div>",
                mqtt_ok ? "ok" : "bad", mqtt_ok ? "connected" : "disconnected");
        fprintf(out, "<div class=\"card\">Kafka<b id=\"kafka\" class=\"%s\">%s</b></div>",
                kafka_ok ? "ok" : "bad", kafka_ok ? "reachable" : "unreachable");
        fprintf(out, "<div class=\"card\">spool fill<b id=\"spool-fill\">%.1f %%</b>"
                "<span class=\"muted\"><span data-metric=\"tumblegate_spool_bytes\">%llu</span> "
                "of %lld bytes</span></div>",
                spool_max_bytes > 0 ? 100.0 * (double)c.spool_bytes / (double)spool_max_bytes : 0,
                (unsigned long long)c.spool_bytes, (long long)spool_max_bytes);
        /* Messages taken but not confirmed by Kafka: how far behind the
         * uplink is, and the arrival time of the last one processed. */
        fprintf(out, "<div class=\"card\">backlog<b id=\"backlog\">"
                "<span data-metric=\"tumblegate_messages_in_flight\">%llu</span> msgs</b>"
                "<span class=\"muted\" id=\"backlog-age\">", (unsigned long long)m.in_flight);
        if (m.in_flight && c.last_arrival_ms)
                fprintf(out, "oldest at least %.1f s old", (double)(now - c.last_arrival_ms) / 1000.0);
        else
                fputs(m.in_flight ? "age unknown" : "none", out);
        fputs("</span></div>", out);
        fprintf(out, "<div class=\"card\">readings / s<b id=\"rate\">%.1f</b></div>"
                "<div class=\"card\">refusals / s<b id=\"refusal-rate\">%.1f</b></div>",
                rates->decoded_per_s, rates->refused_per_s);
        fputs("</div>\n<h2>Totals since start</h2><div class=\"cards\">", out);
        card(out, "readings decoded", "tumblegate_readings_decoded_total", c.decoded);
        card(out, "late readings", "tumblegate_readings_late_total", c.window.late);
        card(out, "windows emitted", "tumblegate_windows_emitted_total",
             c.window.windows_emitted);
        card(out, "sensors active", "tumblegate_sensors_active", c.window.sensors_active);
        card(out, "dead letters", "tumblegate_dead_letters_total", c.dead_lettered);
        card(out, "messages forwarded", "tumblegate_messages_forwarded_total", m.forwarded);
        fputs("</div>\n", out);
        if (st)
                sensor_rows(out, st, now);
        fputs("</main>\n", out);
        fputs(page_tail, out);
}
