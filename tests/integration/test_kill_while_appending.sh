#!/usr/bin/env bash
# test_kill_while_appending.sh - tumblegate SIGKILLed six times while it appends at a high rate: nothing acknowledged lost, aggregates exact.
# SPDX-License-Identifier: Apache-2.0
#
# 100 sensors publish 50 readings/s each (5 000/s) in real time at QoS 1 for
# 40 s. The gateway is killed with SIGKILL six times. Three kills come at
# random moments of the steady stream and are followed by 3 s down, so the
# broker keeps some 15 000 readings for the gateway; the next three come
# within about 1 s of the restart, while the gateway takes that backlog as
# fast as it can: its MQTT callback appends to the spool back to back, and
# what it spooled without the broker seeing the PUBACK comes again after the
# restart (DUP), to be recognised, not spooled and windowed twice. Before
# each kill the gateway must be seen taking messages, or the kill proves
# little.
#
# Same rules as test_gateway_crash.sh: every reading on the raw topic, repeats
# allowed only as identical copies and counted; every aggregate equal to the
# truth, identical repeats counted. The log says how many restarts cut a torn
# record off the spool's tail (a kill inside an append); that depends on
# timing and is reported, not required.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

opts=(--set window.idle_timeout=4s --set checkpoint.interval=2s)
gateway_start "${opts[@]}"
sim --sensors 100 --rate 50 --duration 40 --qos 1 --seed 71 --quiet \
	--start-ms "$(($(date +%s) * 1000))" --truth "$work/truth.jsonl" &
sim_pid=$!

# taking: the gateway's received counter rises within 0.3 s; prints how
# much, and what this process has taken and recognised as redelivered.
taking() {
	local a b
	[[ $(scrape "$work/k1") == 200 ]] || fail "/metrics did not answer before a kill"
	sleep 0.3
	[[ $(scrape "$work/k2") == 200 ]] || fail "/metrics did not answer before a kill"
	a=$(metric "$work/k1" tumblegate_messages_received_total)
	b=$(metric "$work/k2" tumblegate_messages_received_total)
	((b > a)) || fail "the gateway took no message in 0.3 s before a kill (received $a)"
	echo "$((b - a)) messages taken in the 0.3 s before; since its start received $b," \
		"redelivered $(metric "$work/k2" tumblegate_messages_redelivered_total)," \
		"recovered $(metric "$work/k2" tumblegate_messages_recovered_total)"
}

for kill in 1 2 3 4 5 6; do
	if ((kill % 2)); then
		sleep "$((2 + RANDOM % 4)).$((RANDOM % 10))"
	else
		sleep "0.$((2 + RANDOM % 8))"
	fi
	seen=$(taking)
	gateway_kill
	log "gateway killed ($kill), $seen"
	# Down 3 s before a kill in the backlog (15 000 readings kept for it), else 1-2 s.
	if ((kill % 2)); then sleep 3; else sleep "$((1 + RANDOM % 2))"; fi
	gateway_start "${opts[@]}"
done
wait "$sim_pid" || fail "simulator failed"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 200000)) || fail "simulator confirmed $readings readings, want 200000"

ok=1
verify -t "$work/truth.jsonl" -w 10000 -T 240 -s 6 -d 2>&1 | tee "$work/verify.log" >&2 || ok=0
[[ $(scrape "$work/final") == 200 ]] || fail "/metrics did not answer at the end"
log "the last process: received $(metric "$work/final" tumblegate_messages_received_total)," \
	"redelivered $(metric "$work/final" tumblegate_messages_redelivered_total)," \
	"recovered $(metric "$work/final" tumblegate_messages_recovered_total)," \
	"spooled up to $(grep -o 'next seq [0-9]*' "$work/gateway.log" | tail -n 1) at its start"
((ok)) || fail "Kafka does not match the truth"
check_accounting "$work/final"
gateway_stop
torn=$(grep -c 'cut a torn tail' "$work/gateway.log" || true)
replays=$(grep -c 'replaying messages' "$work/gateway.log" || true)
log "PASS: $readings readings through 6 SIGKILLs while appending; $(grep -o 'duplicates raw=[0-9]* agg=[0-9]*' "$work/verify.log");" \
	"$torn restart(s) cut a torn record, $replays replayed the spool"
