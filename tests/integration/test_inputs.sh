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
for pid in "${pids[@]}"; do wait "$pid" || fail "a simulator failed"; done
cat "$work"/truth-*.jsonl >"$work/truth.jsonl"
cat "$work"/garbage-*.jsonl >"$work/garbage.jsonl"
readings=$(wc -l <"$work/truth.jsonl")
garbage=$(wc -l <"$work/garbage.jsonl")
((readings == 12000)) || fail "simulators confirmed $readings readings, want 12000"
((garbage > 800)) || fail "only $garbage garbage messages confirmed"

verify -t "$work/truth.jsonl" -w 10000 -T 180 -s 4 -q "$run_id.dlq" -g "$work/garbage.jsonl" \
	2>&1 | tee "$work/verify.log" >&2 || fail "Kafka does not match the truth"
gateway_stop
grep -qE "stats: received=$((readings + garbage)) decoded=[0-9]+ refused=[0-9]+ dead_lettered=$garbage " \
	"$work/gateway.log" || fail "gateway counters do not add up: $(grep 'stats:' "$work/gateway.log" | tail -n 1)"
reasons=$(sed 's/.*"reason":"\([a-z_]*\)".*/\1/' "$work/garbage.jsonl" | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
log "PASS: $readings readings in 4 formats exact; $garbage dead letters with the right reason: $reasons"
