#!/usr/bin/env bash
# test_kafka_outage.sh - Kafka stopped for over 60 s mid-stream, the gateway restarted in it: every reading arrives, aggregates exact.
# SPDX-License-Identifier: Apache-2.0
#
# The simulators publish a third of the stream, Kafka stops, the second third
# is published into the outage (the gateway spools it and keeps acking), the
# broker stays down for 65 s, comes back, and the last third follows. Every
# reading must be on the raw topic once and every window equal to the truth.
#
# During the outage /readyz must say Kafka is unreachable and the metrics
# must add up with the second third in flight; then the gateway gets SIGTERM
# and must give up draining after shutdown.timeout (3 s), leave the
# unconfirmed messages in the spool, and forward them after its restart.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
opts=(--set window.idle_timeout=3s --set checkpoint.interval=1s --set shutdown.timeout=3s)
gateway_start "${opts[@]}"

# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
part() { # part N: 20 s of event time for 30 sensors, contiguous with the previous part
	sim --sensors 30 --rate 10 --duration 20 --fast --qos 1 --seed "$1" --quiet \
		--start-ms "$((start_ms + ($1 - 1) * 20000))" --truth "$work/truth-$1.jsonl" ||
		fail "simulator part $1 failed"
}

part 1
# Part 1 confirmed before Kafka stops, so nothing can reach Kafka twice.
for ((i = 0; i < 300; i++)); do
	scrape "$work/m1" >/dev/null
	(($(metric "$work/m1" tumblegate_messages_forwarded_total) == 6000)) && break
	sleep 0.1
done
check_accounting "$work/m1"
(($(metric "$work/m1" tumblegate_messages_in_flight) == 0)) || fail "part 1 not confirmed"
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
down_at=$(date +%s)
log "kafka stopped"
part 2

expect_readyz 503 "not ready: kafka: no broker reachable"
sleep 1 # the forwarder has read part 2 from the spool
scrape "$work/m2" >/dev/null
check_accounting "$work/m2"
in_flight=$(metric "$work/m2" tumblegate_messages_in_flight)
((in_flight == 6000)) || fail "in flight during the outage: $in_flight, want 6000"
(($(metric "$work/m2" tumblegate_kafka_reachable) == 0)) || fail "kafka_reachable is not 0"

# SIGTERM: the drain cannot finish; it must stop after shutdown.timeout.
t0=$(date +%s%N)
gateway_stop
stop_ms=$((($(date +%s%N) - t0) / 1000000))
log "stopped in $stop_ms ms with Kafka down (shutdown.timeout 3 s)"
((stop_ms < 8000)) || fail "stopping took $stop_ms ms"
grep -q "stay on disk and are forwarded at the next start" "$work/gateway.log" ||
	fail "no word of the unconfirmed messages kept in the spool"
gateway_start "${opts[@]}"
scrape "$work/m3" >/dev/null
check_accounting "$work/m3"
recovered=$(metric "$work/m3" tumblegate_messages_recovered_total)
((recovered == 6000)) || fail "recovered $recovered spooled messages, want 6000"

while (($(date +%s) - down_at < 65)); do sleep 1; done
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
log "kafka started after $(($(date +%s) - down_at)) s"
part 3
cat "$work"/truth-{1,2,3}.jsonl >"$work/truth.jsonl"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 18000)) || fail "simulators confirmed $readings readings, want 18000"

verify -t "$work/truth.jsonl" -w 10000 -T 240 -s 4 || fail "Kafka does not match the truth"
[[ $(scrape "$work/readyz" /readyz) == 200 ]] || fail "/readyz after the outage: $(cat "$work/readyz")"
sleep 2
scrape "$work/m4" >/dev/null
check_accounting "$work/m4"
(($(metric "$work/m4" tumblegate_messages_forwarded_total) == 12000)) ||
	fail "forwarded since the restart: $(metric "$work/m4" tumblegate_messages_forwarded_total), want 12000"
gateway_stop
# The restarted gateway processed part 2 (replayed from the spool) and part 3.
grep -q "stats: received=12000 decoded=12000 refused=0" "$work/gateway.log" ||
	fail "gateway counters do not show 12000 readings after the restart"
log "PASS: 18000 readings through a $((65))+ s Kafka outage and a restart in it, all delivered once, aggregates exact"
