#!/usr/bin/env bash
# test_pipeline.sh - sim -> mosquitto -> tumblegate -> Kafka, checked reading by reading against the sim's truth.
# SPDX-License-Identifier: Apache-2.0
#
# 60 sensors (30 publishing CBOR, 30 JSON) x 40 s of event time at 10 Hz,
# published as fast as the stack allows at QoS 1. tg-verify computes the
# expected windows from the truth files on its own and compares both topics.
# The same verifier is then shown a truth with one reading missing and one
# with one value changed: it must fail on each, or this test proves nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gateway_start --set window.size=10s --set window.grace=2s --set window.idle_timeout=3s

start_ms=$(( ($(date +%s) - 3600) * 1000 ))
sim --id-prefix cbor- --format cbor --sensors 30 --rate 10 --duration 40 --fast \
	--qos 1 --seed 7 --start-ms "$start_ms" --truth "$work/truth-cbor.jsonl" &
cbor_pid=$!
sim --id-prefix json- --format json --sensors 30 --rate 10 --duration 40 --fast \
	--qos 1 --seed 8 --start-ms "$((start_ms + 123))" --truth "$work/truth-json.jsonl" ||
	fail "json simulator failed"
wait "$cbor_pid" || fail "cbor simulator failed"
cat "$work/truth-cbor.jsonl" "$work/truth-json.jsonl" >"$work/truth.jsonl"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 24000)) || fail "simulators confirmed $readings readings, want 24000"

# The last windows close by the idle timeout (3 s) once the sims stop.
verify -t "$work/truth.jsonl" -w 10000 -T 180 -s 4 || fail "Kafka does not match the truth"

# The verifier must be able to fail.
sed '1d' "$work/truth.jsonl" >"$work/truth-missing.jsonl"
if verify -t "$work/truth-missing.jsonl" -w 10000 -T 60 -s 2 2>"$work/neg1.log"; then
	fail "verifier passed with one reading missing from the truth"
fi
grep -q "unexpected or duplicate reading" "$work/neg1.log" || fail "wrong failure: $(cat "$work/neg1.log")"
awk 'NR == 100 { sub(/"temperature":[-0-9.e]+/, "\"temperature\":1000.5") } { print }' \
	"$work/truth.jsonl" >"$work/truth-mean.jsonl"
cmp -s "$work/truth.jsonl" "$work/truth-mean.jsonl" && fail "could not alter the truth"
if verify -t "$work/truth-mean.jsonl" -w 10000 -T 60 -s 2 2>"$work/neg2.log"; then
	fail "verifier passed with one value changed in the truth"
fi
grep -q "agg: .* temperature: count" "$work/neg2.log" || fail "wrong failure: $(cat "$work/neg2.log")"

# One late reading (its window closed long ago) with no late topic set: it
# is forwarded, and must not hold back the final checkpoint.
mosquitto_pub -h 127.0.0.1 -p "${TG_MQTT_URI##*:}" -q 1 -t "$run_id/json-0000/telemetry" \
	-m "{\"sensor\":\"json-0000\",\"ts\":$start_ms,\"temperature\":1}"
wait_log "late=1 " 15
gateway_stop
grep -qE "checkpoint at spool position [0-9]+: nothing to replay" "$work/gateway.log" ||
	fail "no final checkpoint at shutdown"
grep -E "stats: received=24000 decoded=24000 refused=0 dead_lettered=0" "$work/gateway.log" >/dev/null ||
	fail "gateway counters do not show 24000 readings taken"
log "PASS: 24000 readings, every one on the raw topic once, every aggregate equal to the truth"
