#!/usr/bin/env bash
# test_inputs.sh - CBOR, JSON and SenML (JSON and CBOR) with 10 % garbage: every good reading forwarded, every bad one dead-lettered with its reason.
# SPDX-License-Identifier: Apache-2.0
#
# Four simulators share one subscription (format auto): each sends 15 sensors
# x 20 s at 10 Hz in its format, with one message in ten replaced by a bad
# payload of a kind it records with the reason the gateway must give. The
# raw and aggregate topics must match the readings exactly, and the
# dead-letter topic must hold exactly the garbage: same MQTT topic, same
# reason, same size (a payload over 64 KiB keeps its first 64 KiB + 1).
#
# Issue 12: among the garbage, readings at ts 0 and ts -1 (which Kafka
# cannot carry: librdkafka makes 0 "now", Kafka reads -1 as none) must be
# dead letters with reason timestamp_out_of_range, and payloads giving a
# member twice with duplicate_member (tg.error naming the member), in every
# format. A fifth simulator sends one sensor's first second after the
# epoch: valid readings whose window starts at 0, so its aggregate must be
# stamped 1 ms. tg-verify checks every raw and aggregate record's Kafka
# timestamp (never <= 0), and the metrics must count each reason once, in
# one series.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gateway_start --set window.idle_timeout=3s
# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
pids=()
for fmt in cbor json senml-json senml-cbor; do
	sim --id-prefix "$fmt-" --format "$fmt" --sensors 15 --rate 10 --duration 20 --fast \
		--qos 1 --seed 61 --garbage 0.1 --quiet --start-ms "$start_ms" \
		--truth "$work/truth-$fmt.jsonl" --garbage-truth "$work/garbage-$fmt.jsonl" &
	pids+=($!)
done
sim --id-prefix epoch- --format json --sensors 1 --rate 10 --duration 1 --fast --qos 1 \
	--seed 62 --quiet --start-ms 1 --truth "$work/truth-epoch.jsonl" &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || fail "a simulator failed"; done
cat "$work"/truth-*.jsonl >"$work/truth.jsonl"
cat "$work"/garbage-*.jsonl >"$work/garbage.jsonl"
readings=$(wc -l <"$work/truth.jsonl")
garbage=$(wc -l <"$work/garbage.jsonl")
((readings == 12010)) || fail "simulators confirmed $readings readings, want 12010"
((garbage > 800)) || fail "only $garbage garbage messages confirmed"
# What this test is about was sent: by kind, in every format.
for fmt in cbor json senml-json senml-cbor; do
	for kind in ts_zero ts_negative duplicate_member; do
		grep -q "\"kind\":\"$kind\"" "$work/garbage-$fmt.jsonl" ||
			fail "the $fmt simulator sent no $kind garbage"
	done
done
if grep -E '"kind":"(ts_zero|ts_negative)"' "$work/garbage.jsonl" |
	grep -v '"reason":"timestamp_out_of_range"' >&2; then
	fail "garbage at ts 0 or -1 recorded with another reason"
fi

verify -t "$work/truth.jsonl" -w 10000 -T 180 -s 4 -q "$run_id.dlq" -g "$work/garbage.jsonl" \
	2>&1 | tee "$work/verify.log" >&2 || fail "Kafka does not match the truth"
grep -q "aggregates [0-9]* (want [0-9]*), 0 with a wrong Kafka timestamp" "$work/verify.log" ||
	fail "records with a wrong Kafka timestamp"

# Each refusal reason in one series, counting every dead letter of its kind.
[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
dups=$(grep -v '^#' "$work/metrics" | sed 's/ [^ ]*$//' | sort | uniq -d)
[[ -z $dups ]] || fail "metric series given twice: $dups"
for reason in timestamp_out_of_range duplicate_member; do
	want=$(grep -c "\"reason\":\"$reason\"" "$work/garbage.jsonl")
	got=$(metric "$work/metrics" tumblegate_refused_total "reason=\"$reason\"")
	((got == want)) || fail "tumblegate_refused_total{reason=\"$reason\"} is $got, want $want"
done
gateway_stop
grep -qE "stats: received=$((readings + garbage)) decoded=[0-9]+ refused=[0-9]+ dead_lettered=$garbage " \
	"$work/gateway.log" || fail "gateway counters do not add up: $(grep 'stats:' "$work/gateway.log" | tail -n 1)"
reasons=$(sed 's/.*"reason":"\([a-z_]*\)".*/\1/' "$work/garbage.jsonl" | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
log "PASS: $readings readings in 4 formats exact, Kafka timestamps as promised; $garbage dead letters with the right reason: $reasons"
