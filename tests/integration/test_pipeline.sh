#!/usr/bin/env bash
# test_pipeline.sh - sim -> mosquitto -> tumblegate -> Kafka, checked reading by reading against the sim's truth.
# SPDX-License-Identifier: Apache-2.0
#
# 60 sensors (30 publishing CBOR, 30 JSON) x 40 s of event time at 10 Hz,
# published as fast as the stack allows at QoS 1. tg-verify computes the
# expected windows from the truth files on its own and compares both topics.
# The same verifier is then shown a truth with one reading missing and one
# with one value changed: it must fail on each, or this test proves nothing.
# Meanwhile the metrics endpoint is scraped: every scrape must add up.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gateway_start --set window.size=10s --set window.grace=2s --set window.idle_timeout=3s \
	--set topics.partitions=2
[[ $(scrape "$work/healthz" /healthz) == 200 ]] || fail "/healthz did not answer 200"
expect_readyz 200 ready

# Scrape throughout the run; each scrape must add up on its own.
scraper() {
	local n=0
	while :; do
		[[ $(scrape "$work/scrape.$n") == 200 ]] || fail "/metrics did not answer 200"
		(check_accounting "$work/scrape.$n") 2>"$work/scraper.err" || exit 1
		n=$((n + 1))
		sleep 0.05 # the stream lasts a couple of seconds: scrape it often
	done
}
scraper &
scraper_pid=$!

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
verify -t "$work/truth.jsonl" -w 10000 -T 180 -s 4 2>"$work/verify.log" ||
	fail "Kafka does not match the truth: $(cat "$work/verify.log")"
cat "$work/verify.log" >&2
# 270 or 300: the windows 40 s of event time span depend on where they start.
windows=$(sed -n 's/.*truth has 24000 readings in \([0-9]*\) windows.*/\1/p' "$work/verify.log")
[[ -n $windows ]] || fail "no window count from the verifier"
kill -0 "$scraper_pid" 2>/dev/null || fail "scraping failed: $(head -n 1 "$work/scraper.err")"
kill "$scraper_pid"
wait "$scraper_pid" 2>/dev/null || true
# Scrapes must have caught the stream half-way, or they proved little. The
# simulators publish for well under a second and a scrape (curl and the
# accounting check) takes tens of ms, so 3-4 land mid-stream; at least 2.
midway=0
scrapes=("$work"/scrape.[0-9]*)
for f in "${scrapes[@]}"; do
	taken=$(metric "$f" tumblegate_messages_received_total)
	((taken > 0 && taken < 24000)) && midway=$((midway + 1))
done
((midway >= 2)) || fail "only $midway scrapes during the stream"
log "${#scrapes[@]} scrapes added up, $midway of them mid-stream"

# Everything is done now: exact figures.
sleep 3 # the forwarder counts confirmations every 100 ms; checkpoints every 5 s
scrape "$work/final" >/dev/null
check_accounting "$work/final"
for want in "tumblegate_messages_received_total 24000" \
	"tumblegate_messages_forwarded_total 24000" \
	"tumblegate_messages_dead_lettered_total 0" \
	"tumblegate_messages_in_flight 0" \
	"tumblegate_readings_decoded_total 24000" \
	"tumblegate_event_to_delivery_seconds_count 24000" \
	"tumblegate_windows_emitted_total $windows" \
	"tumblegate_sensors_active 60" \
	"tumblegate_mqtt_connected 1" \
	"tumblegate_kafka_reachable 1"; do
	read -r name value <<<"$want"
	got=$(metric "$work/final" "$name")
	((got == value)) || fail "$name is $got, want $value"
done
got=$(metric "$work/final" tumblegate_kafka_delivered_total 'topic="raw"')
((got == 24000)) || fail "delivered raw $got, want 24000"
got=$(metric "$work/final" tumblegate_kafka_delivered_total 'topic="agg"')
((got == windows)) || fail "delivered agg $got, want $windows"
# Event time to delivery: --fast publishes an hour-old event time.
got=$(metric "$work/final" tumblegate_event_to_delivery_seconds_bucket 'le="300"')
((got == 0)) || fail "$got readings in the <= 300 s bucket; event time is an hour old"

# topics.create made the topics with topics.partitions, not the broker's 3.
grep -q "kafka: created topic $run_id.raw (2 partitions" "$work/gateway.log" ||
	fail "no 'created topic' line for $run_id.raw"
kcat -L -b "$TG_KAFKA_BROKERS" -t "$run_id.raw" | grep -q "topic \"$run_id.raw\" with 2 partitions" ||
	fail "$run_id.raw does not have 2 partitions: $(kcat -L -b "$TG_KAFKA_BROKERS" -t "$run_id.raw")"

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
