#!/usr/bin/env bash
# test_cluster_two_down.sh - 3-broker cluster: two brokers killed at once: writes stall, nothing lost, /readyz says so; they resume when one returns.
# SPDX-License-Identifier: Apache-2.0
#
# With min.insync.replicas=2 a write with acks=all cannot be confirmed by
# one broker alone, and with two of three KRaft voters gone there is no
# controller either. The gateway must keep taking readings into its spool
# (MQTT acknowledged, messages in flight growing, none confirmed), say on
# /readyz that Kafka confirms nothing although a broker answers, and deliver
# everything once, in order, when a second broker is back.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster_lib.sh"

stalled="not ready: kafka: nothing confirmed for 10 s (too few in-sync replicas or no partition leader)"
gateway_start --set window.idle_timeout=3s
sim_live 23 "$work/truth.jsonl"
sleep 5
check_replication "$run_id.raw" "$run_id.agg"
expect_readyz 200 ready
stack kill broker2
stack kill broker3
log "brokers 2 and 3 killed"

# The stall shows once records have waited 10 s (statistics every 2 s).
expect_readyz 503 "$stalled" 20
scrape "$work/m1" >/dev/null
check_accounting "$work/m1"
sleep 3
scrape "$work/m2" >/dev/null
check_accounting "$work/m2"
for f in m1 m2; do
	(($(metric "$work/$f" tumblegate_kafka_stalled) == 1)) || fail "$f: tumblegate_kafka_stalled is not 1"
	(($(metric "$work/$f" tumblegate_kafka_reachable) == 1)) || fail "$f: broker 1 answers, yet unreachable"
done
f1=$(metric "$work/m1" tumblegate_messages_forwarded_total)
f2=$(metric "$work/m2" tumblegate_messages_forwarded_total)
r1=$(metric "$work/m1" tumblegate_messages_received_total)
r2=$(metric "$work/m2" tumblegate_messages_received_total)
((f2 == f1)) || fail "confirmed $f1 -> $f2 with one broker of three: writes did not stall"
((r2 > r1)) || fail "readings not taken during the stall ($r1 -> $r2)"
in_flight=$(metric "$work/m2" tumblegate_messages_in_flight)
log "stalled: $f2 confirmed, $in_flight in flight, /readyz: $(cat "$work/readyz")"

stack start broker2
expect_readyz 200 ready 60
log "broker 2 back: writes resumed"
stack start broker3
wait_in_sync 60 "$run_id.raw" "$run_id.agg"
sleep 2
sim_end
verify_exact "$work/truth.jsonl"
gateway_stop
log "PASS: $(wc -l <"$work/truth.jsonl") readings through two brokers down ($in_flight held in the spool), each once, aggregates exact"
