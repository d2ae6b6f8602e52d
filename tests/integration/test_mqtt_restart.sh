#!/usr/bin/env bash
# test_mqtt_restart.sh - mosquitto restarted mid-stream: nothing published with QoS 1 is lost.
# SPDX-License-Identifier: Apache-2.0
#
# The broker is restarted while it still holds a backlog for the gateway's
# persistent session; the gateway reconnects by itself, resubscribes, and
# receives the backlog (mosquitto persists the session across its restart).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gateway_start --set window.idle_timeout=10s
# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
sim --sensors 30 --rate 10 --duration 30 --fast --qos 1 --seed 21 --quiet \
	--start-ms "$start_ms" --truth "$work/truth-1.jsonl" || fail "simulator part 1 failed"
"$repo_dir/deploy/stack.sh" restart mqtt >/dev/null
log "mosquitto restarted"
for ((i = 0; i < 300; i++)); do
	(($(grep -c "mqtt: subscribed" "$work/gateway.log") >= 2)) && break
	sleep 0.1
done
(($(grep -c "mqtt: subscribed" "$work/gateway.log") >= 2)) || fail "gateway did not resubscribe"
sim --sensors 30 --rate 10 --duration 10 --fast --qos 1 --seed 22 --quiet \
	--start-ms "$((start_ms + 30000))" --truth "$work/truth-2.jsonl" || fail "simulator part 2 failed"
cat "$work"/truth-{1,2}.jsonl >"$work/truth.jsonl"

verify -t "$work/truth.jsonl" -w 10000 -T 180 -s 4 -d 2>&1 | tee "$work/verify.log" >&2 ||
	fail "Kafka does not match the truth"
gateway_stop
log "PASS: $(wc -l <"$work/truth.jsonl") readings across a broker restart; $(grep -o 'duplicates raw=[0-9]* agg=[0-9]*' "$work/verify.log")"
