#!/usr/bin/env bash
# test_mqtt_reconnect.sh - the broker drops the gateway again and again: it reconnects and resubscribes every time.
# SPDX-License-Identifier: Apache-2.0
#
# Two ways to lose the connection: the broker stays up and closes it (a client
# taking over the gateway's client id, as mosquitto does for any protocol
# error too), and the broker restarts. After each the gateway must connect and
# subscribe again by itself, and a reading published at the end must arrive:
# a gateway that stops retrying is a dead gateway.
#
# At log.level debug Paho traces every packet through our log sink; those
# lines must carry the sink's timestamp only, not Paho's own (which reads
# 19700101 000000.000 until Paho first reads the clock).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mqtt_port=${TG_MQTT_URI##*:}
subscriptions() { grep -c "mqtt: subscribed to" "$work/gateway.log" || true; }

# wait_subscriptions N WHAT: the gateway has subscribed N times, within 20 s.
wait_subscriptions() {
	local i
	for ((i = 0; i < 200; i++)); do
		(($(subscriptions) >= $1)) && return 0
		sleep 0.1
	done
	fail "$2: the gateway did not subscribe again ($(subscriptions) subscriptions, want $1)"
}

gateway_start --set log.level=debug
n=1

# The session taken away while the broker stays up: mosquitto closes the
# gateway's connection when another client connects with its id (same
# filter and QoS, clean session off: the session stays as it was).
for ((round = 1; round <= 5; round++)); do
	timeout 10 mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -i "$run_id-gw" -c -q 1 \
		-t "$run_id/+/telemetry" -E ||
		fail "takeover $round: mosquitto_sub could not take the session"
	wait_subscriptions $((++n)) "takeover $round"
done
log "reconnected after 5 takeovers"

for ((round = 1; round <= 3; round++)); do
	"$repo_dir/deploy/stack.sh" restart mqtt >/dev/null
	wait_subscriptions $((++n)) "broker restart $round"
done
log "reconnected after 3 broker restarts"

# Still subscribed, and taking readings.
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "$run_id/s1/telemetry" \
	-m "{\"sensor\":\"s1\",\"ts\":$(date +%s%3N),\"t\":1}"
for ((i = 0; i < 100; i++)); do
	[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
	(($(metric "$work/metrics" tumblegate_messages_received_total) >= 1)) && break
	sleep 0.1
done
(($(metric "$work/metrics" tumblegate_messages_received_total) == 1)) ||
	fail "the reading published after the reconnections was not received"
[[ $(metric "$work/metrics" tumblegate_mqtt_connected) == 1 ]] || fail "tumblegate_mqtt_connected is not 1"
lost=$(metric "$work/metrics" tumblegate_mqtt_connection_lost_total)
((lost >= 8)) || fail "tumblegate_mqtt_connection_lost_total is $lost, want at least 8"
gateway_stop

paho=$(grep -c " paho: " "$work/gateway.log" || true)
((paho >= 10)) || fail "only $paho Paho trace lines at log.level debug"
grep -n "19700101" "$work/gateway.log" && fail "a log line carries the date 19700101"
grep -nE " paho: [0-9]{8} [0-9]{6}\.[0-9]{3} " "$work/gateway.log" &&
	fail "Paho trace lines carry Paho's own timestamp"
log "PASS: $lost connections lost, each followed by a new connection and subscription;" \
	"$paho Paho lines with our timestamps only"
