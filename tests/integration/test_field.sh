#!/usr/bin/env bash
# test_field.sh - field conditions end to end: reordering, late sends, skewed clocks, outages with a backlog, abrupt disconnects with a will, duplicates.
# SPDX-License-Identifier: Apache-2.0
#
# 24 sensors x 60 s of event time at 10 Hz with every condition of
# tumblegate-sim on, through mosquitto, the gateway (hopping windows of
# 10 s every 5 s, grace 2 s, a late topic) and Kafka. tg-verify -G computes
# every window from the truth in the order it was sent, by its reading of
# docs/windows.md alone, and checks: every reading (duplicates included) on
# the raw topic once, every aggregate equal with its late count, exactly the
# late readings on the late topic; the gateway's late counter equals the
# reference's. The wills of the dropped sensors must have been published.
# The checker must fail on the same truth in event-time order, or this test
# proves nothing about the order.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gateway_start --set window.size=10s --set window.hop=5s --set window.grace=2s \
	--set window.idle_timeout=3s --set "topics.late=$run_id.late"

mosquitto_sub -h 127.0.0.1 -p "${TG_MQTT_URI##*:}" -t "$run_id/+/status" -v >"$work/wills.txt" &
sub_pid=$!
sleep 0.5

start_ms=$(( ($(date +%s) - 3600) * 1000 ))
sim --sensors 24 --rate 10 --duration 60 --fast --qos 1 --seed 16 --start-ms "$start_ms" \
	--format json --reorder 400 --late 0.02 --late-ms 6000 --skew 1500 --drift 300 \
	--offline 0.25 --offline-ms 9000 --disconnect 0.25 --disconnect-ms 4000 \
	--duplicate 0.01 --truth "$work/truth.jsonl" || fail "simulator failed"
readings=$(grep -c '"seq":' "$work/truth.jsonl")
offline=$(grep -c '"event":"offline"' "$work/truth.jsonl" || true)
dropped=$(grep -c '"event":"disconnect"' "$work/truth.jsonl" || true)
((offline > 0 && dropped > 0)) || fail "the seed gave $offline outages and $dropped disconnects"
log "truth: $readings readings, $offline outages, $dropped abrupt disconnects"

verify -t "$work/truth.jsonl" -w 10000 -H 5000 -G 2000 -l "$run_id.late" -T 180 -s 5 \
	2>"$work/verify.log" || fail "Kafka does not match the reference: $(tail -n 25 "$work/verify.log")"
cat "$work/verify.log" >&2
late=$(sed -n 's/.*reference: \([0-9]*\) late readings.*/\1/p' "$work/verify.log")
((late > 0)) || fail "the reference found no late reading: the conditions proved nothing"

# The gateway counted what the reference did.
sleep 1
scrape "$work/final" >/dev/null
check_accounting "$work/final"
for want in "tumblegate_readings_decoded_total $readings" \
	"tumblegate_messages_forwarded_total $readings" \
	"tumblegate_readings_late_total $late"; do
	read -r name value <<<"$want"
	got=$(metric "$work/final" "$name")
	((got == value)) || fail "$name is $got, want $value"
done
got=$(metric "$work/final" tumblegate_kafka_delivered_total 'topic="late"')
((got == late)) || fail "delivered to the late topic $got, want $late"

# The broker published a will for every sensor that dropped its connection.
kill "$sub_pid" 2>/dev/null || true
wait "$sub_pid" 2>/dev/null || true
for id in $(sed -n 's/.*"event":"disconnect","sensor":"\([^"]*\)".*/\1/p' "$work/truth.jsonl"); do
	grep -qx "$run_id/$id/status offline" "$work/wills.txt" ||
		fail "no will from $id: $(cat "$work/wills.txt")"
done

# In event-time order the same readings hold no late one: the checker must fail.
grep '"seq":' "$work/truth.jsonl" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
rows.sort(key=lambda r: (r["ts"], r["seq"]))
for i, r in enumerate(rows):
    r["seq"] = i
    print(json.dumps(r))' >"$work/truth-ts-order.jsonl"
if verify -t "$work/truth-ts-order.jsonl" -w 10000 -H 5000 -G 2000 -l "$run_id.late" -T 60 -s 2 \
	2>"$work/neg.log"; then
	fail "the checker passed a truth in event-time order"
fi
grep -q "late: unexpected or duplicate reading" "$work/neg.log" || fail "wrong failure: $(tail "$work/neg.log")"
gateway_stop
log "PASS: $readings readings under field conditions; every aggregate and all $late late readings as docs/windows.md says"
