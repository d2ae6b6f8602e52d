#!/usr/bin/env bash
# test_log_flood.sh - a flood of made-up sensor ids and one of garbage leave a log under a bound, and the log's counts add up to the metrics.
# SPDX-License-Identifier: Apache-2.0
#
# Issue 12, item 1: one log line per refused payload and per reading of a
# sensor the table has no room for let two million made-up ids write 266 MB
# of log. Here 100 100 ids meet a table of 100 sensors (100 000 readings
# forwarded but not windowed) and 12 000 garbage payloads are refused; the
# whole log, start-up and stop included, must stay under LOG_MAX_LINES
# lines and LOG_MAX_BYTES bytes. Each rate-limited kind of line, in full
# plus the counts of its "N more like this" summaries, must equal its
# counter in /metrics, which counts every event; and every valid reading
# must be on the raw topic, every garbage message on the dead-letter topic
# with its reason.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LOG_MAX_LINES=500
LOG_MAX_BYTES=100000
IDS=100100
TABLE=100
GARBAGE_SENSORS=1000 # x 12 steps of garbage, one kind per message

gateway_start --set window.max_sensors=$TABLE
start_ms=$(( ($(date +%s) - 3600) * 1000 ))
sim --id-prefix "made-up-" --sensors $IDS --rate 1 --duration 1 --fast --qos 1 --seed 12 \
	--quiet --start-ms "$start_ms" --truth "$work/truth.jsonl" ||
	fail "the id flood's simulator failed"
sim --id-prefix "garbage-" --format json --sensors $GARBAGE_SENSORS --rate 1 --duration 12 \
	--fast --qos 1 --seed 12 --garbage 1 --quiet --start-ms "$start_ms" \
	--truth "$work/garbage-readings.jsonl" --garbage-truth "$work/garbage.jsonl" ||
	fail "the garbage flood's simulator failed"
readings=$(wc -l <"$work/truth.jsonl")
garbage=$(wc -l <"$work/garbage.jsonl")
((readings == IDS)) || fail "the simulator confirmed $readings readings, want $IDS"
(($(wc -l <"$work/garbage-readings.jsonl") == 0)) || fail "--garbage 1 sent readings"
((garbage >= 11 * GARBAGE_SENSORS)) || fail "only $garbage garbage messages confirmed"
future=$(grep -c '"reason":"future_timestamp"' "$work/garbage.jsonl" || true)

# Wait until every message is accounted for and nothing is in flight.
for ((i = 0; i < 1800; i++)); do
	scrape "$work/metrics" >/dev/null
	if [[ -s $work/metrics ]] &&
		(($(metric "$work/metrics" tumblegate_messages_received_total) == readings + garbage &&
			$(metric "$work/metrics" tumblegate_messages_in_flight) == 0)); then
		break
	fi
	sleep 0.1
done
check_accounting "$work/metrics"
(($(metric "$work/metrics" tumblegate_messages_forwarded_total) == readings)) ||
	fail "forwarded $(metric "$work/metrics" tumblegate_messages_forwarded_total) messages, want $readings"
(($(metric "$work/metrics" tumblegate_messages_dead_lettered_total) == garbage)) ||
	fail "dead-lettered $(metric "$work/metrics" tumblegate_messages_dead_lettered_total), want $garbage"
table_full=$(metric "$work/metrics" tumblegate_sensors_rejected_total)
refused_future=$(metric "$work/metrics" tumblegate_refused_total 'reason="future_timestamp"')
refused_all=$(metric "$work/metrics" tumblegate_refused_total)
# timestamp_out_of_range is a decoder's refusal (a payload refused, logged as
# one) since event times must lie in [1 ms, 9999]; the future is the engine's.
refused_payload=$((refused_all - refused_future))
((table_full == IDS - TABLE)) || fail "sensors_rejected_total $table_full, want $((IDS - TABLE))"
((refused_future == future)) || fail "future_timestamp refused $refused_future, want $future"
((refused_payload == garbage - future)) ||
	fail "payloads refused $refused_payload, want $((garbage - future))"

# Kafka: every reading on the raw topic (key and event time), exactly once;
# every garbage message a dead letter with the reason the simulator recorded.
# (tg-verify also checks aggregates, which readings the full table refused
# have none of.)
kafka_dump() { # TOPIC FORMAT COUNT: the topic's records, once COUNT are there
	local out=$work/dump-$1 n i
	for ((i = 0; i < 60; i++)); do
		{ kcat -C -b "$TG_KAFKA_BROKERS" -t "$1" -o beginning -e -q -f "$2" 2>/dev/null ||
			true; } >"$out"
		n=$(wc -l <"$out")
		((n >= $3)) && break
		sleep 1
	done
	sort "$out"
}
diff <(sed -E 's/^\{"sensor":"([^"]*)","ts":([0-9]+).*/\1 \2/' "$work/truth.jsonl" | sort) \
	<(kafka_dump "$run_id.raw" '%k %T\n' "$readings") >"$work/raw.diff" ||
	fail "the raw topic differs from the readings: $(head -n 5 "$work/raw.diff")"
diff <(sed -E 's/.*"topic":"([^"]*)".*"reason":"([a-z_]*)".*/\1 \2/' "$work/garbage.jsonl" | sort) \
	<(kafka_dump "$run_id.dlq" '%k %h\n' "$garbage" |
		sed -E 's/^([^ ]*) .*tg\.reason=([a-z_]*).*/\1 \2/' | sort) >"$work/dlq.diff" ||
	fail "the dead-letter topic differs from the garbage: $(head -n 5 "$work/dlq.diff")"

# The summaries of what is left are written at exit.
gateway_stop
lines=$(wc -l <"$work/gateway.log")
bytes=$(wc -c <"$work/gateway.log")
((lines < LOG_MAX_LINES && bytes < LOG_MAX_BYTES)) ||
	fail "the log has $lines lines, $bytes bytes; the bound is $LOG_MAX_LINES lines, $LOG_MAX_BYTES bytes"

# logged REGEX FORMAT: the lines matching REGEX in full plus the counts of
# the summaries that name FORMAT.
logged() {
	local full summed summaries
	full=$(grep -vF "more like this in the last" "$work/gateway.log" | grep -cE "$1" || true)
	summaries=$(grep -cF "more like this in the last" "$work/gateway.log" || true)
	summed=$(grep -F "more like this in the last" "$work/gateway.log" | grep -F "\"$2\"" |
		sed -E 's/.* (warn|error|info): ([0-9]+) more like this .*/\2/' |
		awk '{ s += $1 } END { print s + 0 }')
	((summaries > 0)) || fail "no summary line at all"
	echo $((full + summed))
}
n=$(logged 'sensor [^ ]+: sensor table full \(window\.max_sensors\)' \
	'sensor %s: sensor table full (window.max_sensors): reading forwarded but not windowed')
((n == table_full)) || fail "the log tells of $n readings refused by the full table, the metrics of $table_full"
n=$(logged 'mqtt [^ ]+: payload of [0-9]+ bytes refused: ' 'mqtt %s: payload of %zu bytes refused: %s')
((n == refused_payload)) || fail "the log tells of $n payloads refused, the metrics of $refused_payload"
n=$(logged 'sensor [^ ]+: timestamp -?[0-9]+ is in the future: refused' \
	'sensor %s: timestamp %lld is in the future: refused')
((n == refused_future)) || fail "the log tells of $n future timestamps, the metrics of $refused_future"

log "PASS: $readings readings ($table_full beyond a table of $TABLE) and $garbage garbage" \
	"messages: log $lines lines, $bytes bytes (bound $LOG_MAX_LINES, $LOG_MAX_BYTES);" \
	"its counts match the metrics; Kafka holds every reading and dead letter"
