#!/usr/bin/env bash
# test_mqtt_topic.sh - topics end to end: a bad filter stops --check-config; long topics arrive whole.
# SPDX-License-Identifier: Apache-2.0
#
# A topic is up to 65535 bytes (MQTT 3.1.1 1.5.3). The gateway must hand the
# whole of it to the pipeline: here the sensor id is the topic's third level,
# after a long second one, so a topic cut short anywhere yields no id and the
# reading is refused (missing_id) instead of forwarded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gw="$build_dir/gateway/tumblegate"
mqtt_port=${TG_MQTT_URI##*:}

# --- a filter the broker would refuse: refused at once, naming the option ---
rc=0
"$gw" --check-config --set 'mqtt.topic=sensors/#/x' --set "state.dir=$work/state" \
	>"$work/check.out" 2>&1 || rc=$?
((rc == 2)) || fail "--check-config with mqtt.topic=sensors/#/x exited $rc, want 2"
grep -q -- "--set: mqtt.topic: not a valid MQTT topic filter: '#' must be the last level" \
	"$work/check.out" || fail "the bad filter is not explained: $(cat "$work/check.out")"

# --- long topics -------------------------------------------------------------
gateway_start --set "mqtt.topic=$run_id/+/+/telemetry" \
	--set "input.sensor_id=topic:$run_id/+/{sensor}/telemetry"
lengths=(600 60000)
for len in "${lengths[@]}"; do
	level=$(head -c "$len" /dev/zero | tr '\0' 'x')
	mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "$run_id/$level/s-$len/telemetry" \
		-m "{\"ts\":$(date +%s%3N),\"t\":$len}" || fail "mosquitto_pub of a $len-byte level failed"
done
for ((i = 0; i < 100; i++)); do
	[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
	(($(metric "$work/metrics" tumblegate_messages_received_total) >= ${#lengths[@]})) &&
		(($(metric "$work/metrics" tumblegate_messages_in_flight) == 0)) && break
	sleep 0.1
done
check_accounting "$work/metrics"
received=$(metric "$work/metrics" tumblegate_messages_received_total)
((received == ${#lengths[@]})) || fail "$received messages received, want ${#lengths[@]}"
refused=$(metric "$work/metrics" tumblegate_refused_total 'reason="missing_id"')
((refused == 0)) || fail "$refused long-topic readings refused as missing_id: the topic was cut short"
decoded=$(metric "$work/metrics" tumblegate_readings_decoded_total)
((decoded == ${#lengths[@]})) || fail "$decoded readings decoded, want ${#lengths[@]}"
gateway_stop
log "PASS: a bad filter refused by --check-config; topics with ${lengths[*]}-byte levels arrived whole"
