#!/usr/bin/env bash
# test_mqtt_client_id.sh - two gateways with one mqtt.client_id: each says once, clearly, what is wrong.
# SPDX-License-Identifier: Apache-2.0
#
# The broker hands a client id's session to whichever client connected last,
# so two gateways sharing mqtt.client_id take it from each other at every
# reconnection, about once a second. Paho reports only "connection lost";
# the gateway must recognise the pattern, name the cause and the option in
# one line (not one per loss, at most once a minute) and count it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

diagnosis="mqtt: [0-9]+ connections in a row lost within [0-9]+ s of connecting .*: most likely another client.* with the same client id '$run_id-gw'.*give each gateway its own mqtt.client_id"
count_in() { grep -cE "$1" "$2" || true; }

gateway_start
# The second gateway: the same client id and topic, its own state and port.
"${gateway_cmd[@]}" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$run_id-gw" \
	--set "mqtt.topic=$run_id/+/telemetry" --set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" \
	--set "topics.raw=$run_id.raw" --set "topics.agg=$run_id.agg" --set "topics.dlq=$run_id.dlq" \
	--set "state.dir=$work/state-b" --set metrics.listen= >"$work/gateway-b.log" 2>&1 &
second_pid=$!
trap 'kill -KILL "$second_pid" 2>/dev/null || true; cleanup' EXIT

for ((i = 0; i < 400; i++)); do
	(($(count_in "$diagnosis" "$work/gateway.log") >= 1 &&
		$(count_in "$diagnosis" "$work/gateway-b.log") >= 1)) && break
	kill -0 "$second_pid" 2>/dev/null || fail "the second gateway exited"
	sleep 0.1
done
(($(count_in "$diagnosis" "$work/gateway.log") >= 1)) ||
	fail "no line naming the shared client id after 40 s ($(count_in "connection lost" "$work/gateway.log") connections lost)"
(($(count_in "$diagnosis" "$work/gateway-b.log") >= 1)) ||
	fail "the second gateway logged no line naming the shared client id after 40 s"
log "both gateways named the shared client id"

# They keep taking the session from each other; the explanation is not repeated.
lost_before=$(count_in "connection lost" "$work/gateway.log")
sleep 20
lost=$(count_in "connection lost" "$work/gateway.log")
((lost >= lost_before + 3)) ||
	fail "the gateways stopped flapping ($lost_before then $lost connections lost): the test proves nothing"
for f in "$work/gateway.log" "$work/gateway-b.log"; do
	lines=$(count_in "$diagnosis" "$f")
	((lines == 1)) || fail "$(basename "$f"): the explanation was logged $lines times in about 30 s, want once"
done
[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
suspected=$(metric "$work/metrics" tumblegate_mqtt_session_takeovers_suspected_total)
((suspected >= 3)) || fail "tumblegate_mqtt_session_takeovers_suspected_total is $suspected after $lost losses"

# With the other gateway gone the first one keeps its connection.
kill -TERM "$second_pid"
wait "$second_pid" || fail "the second gateway exited with status $? after SIGTERM"
for ((i = 0; i < 200; i++)); do
	[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
	[[ $(metric "$work/metrics" tumblegate_mqtt_connected) == 1 ]] && break
	sleep 0.1
done
[[ $(metric "$work/metrics" tumblegate_mqtt_connected) == 1 ]] ||
	fail "alone again, the gateway did not reconnect"
sleep 6 # longer than a short-lived connection
[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
[[ $(metric "$work/metrics" tumblegate_mqtt_connected) == 1 ]] ||
	fail "alone again, the gateway still loses its connection"
gateway_stop
log "PASS: $lost connections lost, $suspected suspected takeovers, one explanation per gateway"
