#!/usr/bin/env bash
# test_cluster_two_sites.sh - two sites, each its own mosquitto and gateway, into one 3-broker cluster: site-prefixed ids never collide, windows exact on both.
# SPDX-License-Identifier: Apache-2.0
#
# Both sites' sensors have the same ids (node-0000...), publish different
# values, and both gateways write the same raw and aggregate topics. With
# input.sensor_prefix site-a/ and site-b/ every id is distinct on Kafka:
# the truth, prefixed the same way, must match the topics reading by
# reading and window by window, and one consumer of the aggregate topic
# sees both sites' sensors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster_lib.sh"

# Site B's broker: a mosquitto of its own next to the stack's, on
# TG_SITE_B_MQTT_PORT or the first free port after the stack's.
port_b=${TG_SITE_B_MQTT_PORT:-}
if [[ -z $port_b ]]; then
	for ((port_b = ${TG_MQTT_URI##*:} + 1; port_b < ${TG_MQTT_URI##*:} + 20; port_b++)); do
		(: <>"/dev/tcp/127.0.0.1/$port_b") 2>/dev/null || break
	done
fi
mkdir -p "$work/b"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n' "$port_b" "$(id -un)" >"$work/b/mosquitto.conf"
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$work/b/mosquitto.conf" >"$work/b/mosquitto.log" 2>&1 &
mosquitto_b=$!
gateway_b=
site_b_end() {
	if [[ -n $gateway_b ]]; then kill -KILL "$gateway_b" 2>/dev/null || true; fi
	kill "$mosquitto_b" 2>/dev/null || true
	cluster_restore
}
trap site_b_end EXIT
uri_b=tcp://127.0.0.1:$port_b
for ((i = 0; i < 50; i++)); do
	mosquitto_sub -h 127.0.0.1 -p "$port_b" -t probe -E -W 2 >/dev/null 2>&1 && break
	kill -0 "$mosquitto_b" 2>/dev/null || fail "site B's mosquitto exited: $(cat "$work/b/mosquitto.log")"
	sleep 0.1
done

opts=(--set window.idle_timeout=3s --set window.size=10s)
gateway_start "${opts[@]}" --set input.sensor_prefix=site-a/
gateway_a=$gateway_pid
work=$work/b TG_MQTT_URI=$uri_b gateway_start "${opts[@]}" --set input.sensor_prefix=site-b/
gateway_b=$gateway_pid
gateway_pid=$gateway_a

start_ms=$((($(date +%s) - 3600) / 10 * 10000))
sim --sensors 20 --rate 10 --duration 30 --fast --qos 1 --seed 31 --quiet \
	--start-ms "$start_ms" --truth "$work/truth-a.jsonl" &
sim_a=$!
TG_MQTT_URI=$uri_b sim --sensors 20 --rate 10 --duration 30 --fast --qos 1 --seed 32 --quiet \
	--start-ms "$start_ms" --truth "$work/truth-b.jsonl" || fail "site B's simulator failed"
wait "$sim_a" || fail "site A's simulator failed"
# Same ids at both sites: only the prefix tells them apart.
cmp -s <(grep -o '"sensor":"[^"]*"' "$work/truth-a.jsonl" | sort -u) \
	<(grep -o '"sensor":"[^"]*"' "$work/truth-b.jsonl" | sort -u) ||
	fail "the two sites' simulators do not share sensor ids"
{
	sed 's/"sensor":"/"sensor":"site-a\//' "$work/truth-a.jsonl"
	sed 's/"sensor":"/"sensor":"site-b\//' "$work/truth-b.jsonl"
} >"$work/truth.jsonl"

verify -t "$work/truth.jsonl" -w 10000 -T 180 -s 4 2>"$work/verify.log" ||
	fail "Kafka does not match both sites' truth: $(tail -n 5 "$work/verify.log")"
log "$(grep -o 'truth has.*' "$work/verify.log" | head -n 1)"

# One consumer of the aggregate topic: both sites' 20 sensors each.
kcat -C -b "$TG_KAFKA_BROKERS" -t "$run_id.agg" -e -q -f '%k\n' >"$work/agg-keys" 2>/dev/null ||
	fail "could not consume $run_id.agg"
for site in site-a site-b; do
	sensors=$(grep "^$site/node-" "$work/agg-keys" | sort -u | wc -l)
	((sensors == 20)) || fail "the aggregate topic has $sensors sensors of $site, want 20"
done
(($(grep -cv '^site-[ab]/node-' "$work/agg-keys") == 0)) || fail "aggregate keys without a site prefix"

for site in a b; do
	w=$work
	[[ $site == b ]] && w=$work/b
	work=$w scrape "$w/final" >/dev/null
	check_accounting "$w/final"
	(($(metric "$w/final" tumblegate_messages_forwarded_total) == 6000)) ||
		fail "site $site forwarded $(metric "$w/final" tumblegate_messages_forwarded_total), want 6000"
done
kill -TERM "$gateway_b"
wait "$gateway_b" || fail "site B's gateway exited with status $? after SIGTERM"
gateway_b=
gateway_stop
log "PASS: two sites of 20 same-named sensors into one cluster: 12000 readings, ids kept apart by their prefix, every window exact"
