#!/usr/bin/env bash
# test_sparkplug_sim.sh - tumblegate-sim --format sparkplug read through the real mosquitto by Eclipse Tahu's Sparkplug B decoder (births, aliases, seq, bdSeq, rebirth, will), then through the gateway against its truth.
# SPDX-License-Identifier: Apache-2.0
#
# The decoder is no one's here: Tahu's sparkplug-payload (npm, pinned in
# tests/integration/sparkplug/package-lock.json) in sparkplug/sim_check.js,
# which says what it checks. Two sessions of one edge node share a bdSeq
# file: the first (3 devices at 40 Hz for 8 s, ~960 messages, so seq wraps
# three times) is asked for a rebirth by an NCMD Tahu encodes and ends with
# the node's own NDEATH; the second is killed with SIGKILL, so that the
# broker publishes the NDEATH will. Then a third session goes through the
# gateway (format sparkplug) under field conditions with garbage, and
# tg-verify holds Kafka to its truth file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sparkplug_tools
group=$run_id
node=edge1
node "$repo_dir/tests/integration/sparkplug/sim_check.js" "$TG_MQTT_URI" "$group" "$node" 3 \
	"$work/ready" "$work/truth1.jsonl" "$work/truth2.jsonl" 2>"$work/check.log" &
check_pid=$!
sim_pid=
trap 'kill -KILL $check_pid $sim_pid 2>/dev/null || true; cleanup' EXIT
for ((i = 0; i < 100; i++)); do
	[[ -f $work/ready ]] && break
	kill -0 "$check_pid" 2>/dev/null || { cat "$work/check.log" >&2; fail "the checker exited"; }
	sleep 0.1
done
[[ -f $work/ready ]] || fail "the checker did not subscribe within 10 s"

sp_sim=("$build_dir/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --client-id "$run_id-sim"
	--format sparkplug --group "$group" --node "$node" --bdseq-file "$work/bdseq"
	--sensors 3 --rate 40 --qos 1 --seed 14)
"${sp_sim[@]}" --duration 8 --truth "$work/truth1.jsonl" 2>"$work/sim1.log" ||
	{ cat "$work/sim1.log" >&2; fail "the first session failed"; }
grep -q "rebirths asked=1" "$work/sim1.log" ||
	{ cat "$work/sim1.log" >&2; fail "the simulator did not take the rebirth request"; }
"${sp_sim[@]}" --truth "$work/truth2.jsonl" 2>"$work/sim2.log" &
sim_pid=$!
sleep 2
kill -KILL "$sim_pid"
wait "$sim_pid" 2>/dev/null || true

rc=0
wait "$check_pid" || rc=$?
cat "$work/check.log" >&2
((rc == 0)) || fail "Tahu's decoder found the simulator's Sparkplug wrong"
log "Tahu: $(tail -n 2 "$work/check.log" | head -n 1 | sed 's/^sim_check: //')"

# Then through the gateway, as the demo runs it: the truth file lets
# tg-verify check every reading and window, under field conditions (hopping
# windows, the reference's late readings) and with 2 % garbage (bad
# protobuf, a bad topic, an unknown alias) dead-lettered with its reason.
# The unknown alias makes the gateway ask the node for a rebirth: its new
# births, values included, must fit the truth as well.
gateway_start --set mqtt.format=sparkplug --set "mqtt.topic=spBv1.0/$group-gw/#" \
	--set window.size=10s --set window.hop=5s --set window.grace=2s \
	--set window.idle_timeout=3s --set "topics.late=$run_id.late"
start_ms=$((($(date +%s) - 3600) * 1000))
"$build_dir/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --client-id "$run_id-sim-gw" \
	--format sparkplug --group "$group-gw" --node "$node" --sensors 24 --rate 10 --duration 60 \
	--fast --qos 1 --seed 16 --start-ms "$start_ms" --reorder 400 --late 0.02 --late-ms 6000 \
	--skew 1500 --drift 300 --offline 0.25 --offline-ms 9000 --duplicate 0.01 --garbage 0.02 \
	--truth "$work/truth-gw.jsonl" --garbage-truth "$work/garbage-gw.jsonl" \
	2>"$work/sim-gw.log" || { cat "$work/sim-gw.log" >&2; fail "the simulator failed"; }
grep -qE "rebirths asked=[1-9]" "$work/sim-gw.log" ||
	{ cat "$work/sim-gw.log" >&2; fail "the gateway's rebirth request did not reach the simulator"; }
for kind in not_decodable sparkplug_bad_topic sparkplug_unknown_alias; do
	grep -q "\"reason\":\"$kind\"" "$work/garbage-gw.jsonl" || fail "no $kind garbage was sent"
done
verify -t "$work/truth-gw.jsonl" -w 10000 -H 5000 -G 2000 -l "$run_id.late" -T 60 -s 3 \
	-q "$run_id.dlq" -g "$work/garbage-gw.jsonl" 2>"$work/verify.log" ||
	fail "Kafka does not match the simulator's truth: $(tail -n 25 "$work/verify.log")"
cat "$work/verify.log" >&2
gateway_stop
log "PASS: $(grep -o 'truth has .*' "$work/verify.log"), through the gateway"
