#!/usr/bin/env bash
# test_kafka_long_outage.sh - a Kafka outage longer than librdkafka's queue holds: intake, /metrics and the spool keep going, every reading arrives.
# SPDX-License-Identifier: Apache-2.0
#
# librdkafka's queue is cut to 1 000 records (kafka.queue.buffering.max.messages)
# and Kafka is stopped. Then 20 sensors publish 100 readings/s each (2 000/s)
# at QoS 1 for 25 s in real time, 50 times what that queue holds, through the
# project's own mosquitto configuration. The spool, not librdkafka's queue,
# must absorb the outage (README, durability table: "Kafka down for hours"):
#
#  - /metrics is scraped every 0.5 s with a 1 s limit from Kafka's stop to its
#    return; every scrape must answer 200 in time, and add up;
#  - the gateway keeps taking messages: `received` never stands still for 3 s
#    while the simulator publishes, and reaches every reading published before
#    Kafka returns;
#  - the spool keeps being written and synced: its appended counter and its
#    bytes rise with `received`, and its fsyncs (spool.fsync: interval, 1 s)
#    rise at least once every 3 s of the outage;
#  - mosquitto drops nothing for the gateway's session;
#  - once Kafka is back every reading is on the raw topic exactly once and every
#    aggregate equals the truth. window.idle_timeout is 3 s, so readings that
#    wait in the spool while their sensors' windows are idle-closed would come
#    out late: the wait is the gateway's silence, not the sensors' (as for
#    held input, docs/windows.md 5.2).
#
# The checks during the outage are collected and reported together after
# Kafka's return and the verification, so one run shows every broken promise.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
mosquitto_log=${TG_STACK_DIR:-$repo_dir/.stack}/mosquitto/mosquitto.log
mosquitto_from=$(wc -l <"$mosquitto_log" 2>/dev/null || echo 0)

gateway_start --set kafka.queue.buffering.max.messages=1000 --set window.idle_timeout=3s
expect_readyz 200 ready
url=$(metrics_url)

"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
down_at=$(date +%s)
log "kafka stopped"

# One line per scrape: number, start (ms since the epoch), HTTP status, seconds taken.
scraper() {
	local n=0 t code
	while :; do
		t=$(($(date +%s%N) / 1000000))
		code=$(curl -s --max-time 1 -o "$work/s.$n" -w '%{http_code}' "$url") || code=000
		printf '%d %d %s\n' "$n" "$t" "$code" >>"$work/scrapes"
		n=$((n + 1))
		sleep 0.5
	done
}
scraper &
scraper_pid=$!

sim_from=$(($(date +%s%N) / 1000000))
sim --sensors 20 --rate 100 --duration 25 --qos 1 --seed 51 --quiet \
	--start-ms "$(($(date +%s) * 1000))" --truth "$work/truth.jsonl" || fail "simulator failed"
sim_to=$(($(date +%s%N) / 1000000))
readings=$(wc -l <"$work/truth.jsonl")
((readings == 50000)) || fail "simulator confirmed $readings readings, want 50000"
log "simulator published $readings readings in $(((sim_to - sim_from) / 1000)) s into the outage"

# Everything published was taken before Kafka returns (15 s to catch up).
taken=
for ((deadline = SECONDS + 15; SECONDS < deadline; )); do
	if [[ $(curl -s --max-time 1 -o "$work/caught-up" -w '%{http_code}' "$url" || true) == 200 ]]; then
		taken=$(metric "$work/caught-up" tumblegate_messages_received_total)
		((taken >= readings)) && break
	fi
	sleep 0.5
done
kill "$scraper_pid"
wait "$scraper_pid" 2>/dev/null || true
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
log "kafka started after $(($(date +%s) - down_at)) s"

# The outage, scrape by scrape.
problems=()
scrapes=0 failed=0 unbalanced=0 prev_t=0 prev_taken=-1 still_since=0 longest_still=0 stall_at=
last_taken=0 first_taken=-1 first_appended=0 first_bytes=0 last_appended=0 last_bytes=0
first_fsyncs=0 last_fsyncs=0 first_t=0 last_t=0
while read -r n t code; do
	scrapes=$((scrapes + 1))
	if [[ $code != 200 ]]; then
		failed=$((failed + 1))
		continue
	fi
	(check_accounting "$work/s.$n") 2>>"$work/accounting.err" || unbalanced=$((unbalanced + 1))
	got=$(metric "$work/s.$n" tumblegate_messages_received_total)
	appended=$(metric "$work/s.$n" tumblegate_spool_appended_total)
	bytes=$(metric "$work/s.$n" tumblegate_spool_bytes)
	fsyncs=$(metric "$work/s.$n" tumblegate_spool_fsyncs_total)
	if ((first_taken < 0)); then
		first_taken=$got first_appended=$appended first_bytes=$bytes
		first_fsyncs=$fsyncs first_t=$t
	fi
	last_taken=$got last_appended=$appended last_bytes=$bytes last_fsyncs=$fsyncs last_t=$t
	# Standing still while the simulator publishes (and has published more).
	if ((t > sim_from + 2000 && t < sim_to && got == prev_taken)); then
		((still_since)) || still_since=$prev_t
		if ((t - still_since > longest_still)); then
			longest_still=$((t - still_since))
			stall_at=$got
		fi
	else
		still_since=0
	fi
	prev_t=$t prev_taken=$got
done <"$work/scrapes"
log "$scrapes scrapes in the outage, $failed without a 200 within 1 s; received $first_taken -> $last_taken," \
	"spool appended $first_appended -> $last_appended, bytes $first_bytes -> $last_bytes"
((scrapes >= 20)) || problems+=("only $scrapes scrapes in the outage")
((failed == 0)) || problems+=("/metrics did not answer within 1 s in $failed of $scrapes scrapes")
((unbalanced == 0)) || problems+=("$unbalanced scrapes did not add up: $(head -n 1 "$work/accounting.err")")
((longest_still < 3000)) ||
	problems+=("received stood still at $stall_at for $longest_still ms while the simulator published")
[[ -n $taken && $taken -ge $readings ]] ||
	problems+=("received ${taken:-unknown (no scrape answered)} of $readings readings before Kafka returned")
((last_appended - first_appended >= readings * 9 / 10)) ||
	problems+=("spool appended $((last_appended - first_appended)) messages in the outage, want >= $((readings * 9 / 10)) of $readings")
((last_bytes > first_bytes)) || problems+=("spool bytes did not grow in the outage ($first_bytes -> $last_bytes)")
log "spool fsyncs $first_fsyncs -> $last_fsyncs in $((last_t - first_t)) ms"
((last_fsyncs - first_fsyncs >= (last_t - first_t) / 3000)) ||
	problems+=("the spool was synced $((last_fsyncs - first_fsyncs)) times in $((last_t - first_t)) ms of outage")

verify -t "$work/truth.jsonl" -w 10000 -T 150 -s 4 2>"$work/verify.log" ||
	problems+=("Kafka does not match the truth: $(grep -m 3 -E 'missing|unexpected|raw topic|FAILED' "$work/verify.log" | tr '\n' ';')")
cat "$work/verify.log" >&2

dropped=$(tail -n +"$((mosquitto_from + 1))" "$mosquitto_log" |
	grep -c "Outgoing messages are being dropped for client $run_id-gw" || true)
((dropped == 0)) || problems+=("mosquitto logged $dropped line(s) of messages dropped for $run_id-gw")

if ((${#problems[@]})); then
	for p in "${problems[@]}"; do log "problem: $p"; done
	fail "${#problems[@]} problem(s) with Kafka down longer than librdkafka's queue holds; first: ${problems[0]}"
fi
gateway_stop
log "PASS: $readings readings through an outage 50x librdkafka's queue; $scrapes scrapes all answered; all delivered once, aggregates exact"
