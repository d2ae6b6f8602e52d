#!/usr/bin/env bash
# bench/durability.sh - the cost of durability: readings/s, gateway CPU per reading and disk bytes per reading, per mode.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/durability.sh [READINGS]   (default 60000)
# For each mode (disk with fsync interval, always and never; memory) a fresh
# gateway takes READINGS readings from two simulators publishing as fast as
# QoS 1 allows, through the real local stack, until Kafka has confirmed every
# raw record. Reported: readings/s end to end, the gateway's CPU time per
# reading (utime + stime from /proc), and bytes it wrote to disk per reading
# (/proc/PID/io write_bytes). Compare the modes with each other within one run.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readings=${1:-60000}
build=$repo_dir/build-bench
cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
"$repo_dir/deploy/stack.sh" start >/dev/null
eval "$("$repo_dir/deploy/stack.sh" env)"
clk=$(getconf CLK_TCK)
per_sim=$((readings / 2))
sensors=50
seconds=$((per_sim / sensors / 10))

printf '%-18s %10s %12s %14s %14s\n' mode readings readings/s "CPU us/reading" "disk B/reading"
for mode in "disk interval" "disk always" "disk never" "memory -"; do
	set -- $mode
	id=bench$(date +%s%N)
	work=$(mktemp -d)
	"$build/gateway/tumblegate" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$id" \
		--set "mqtt.topic=$id/+/telemetry" --set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" \
		--set "topics.raw=$id.raw" --set "topics.agg=$id.agg" --set "topics.dlq=$id.dlq" \
		--set "state.dir=$work" --set "durability=$1" \
		$([[ $2 != - ]] && echo --set "spool.fsync=$2") >"$work/gw.log" 2>&1 &
	gw=$!
	until grep -qs "mqtt: subscribed" "$work/gw.log"; do sleep 0.1; done
	t0=$(date +%s.%N)
	start_ms=$(( ($(date +%s) - 7200) * 1000 ))
	for s in 1 2; do
		"$build/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --topic-prefix "$id" \
			--id-prefix "s$s-" --sensors "$sensors" --rate 10 --duration "$seconds" --fast \
			--qos 1 --seed "$s" --quiet --start-ms "$start_ms" 2>/dev/null &
	done
	wait %2 %3 2>/dev/null || true
	# delivered: every raw record readable in Kafka
	until (($(kcat -C -b "$TG_KAFKA_BROKERS" -t "$id.raw" -e -o beginning -q 2>/dev/null | wc -l) >= readings)); do
		sleep 0.5
	done
	t1=$(date +%s.%N)
	read -r ut st < <(awk '{ print $14, $15 }' "/proc/$gw/stat")
	wb=$(awk '/^write_bytes/ { print $2 }' "/proc/$gw/io")
	kill -TERM "$gw"
	wait "$gw" || true
	awk -v m="$1 $2" -v n="$readings" -v t0="$t0" -v t1="$t1" -v ut="$ut" -v st="$st" -v clk="$clk" -v wb="$wb" \
		'BEGIN { printf "%-18s %10d %12.0f %14.1f %14.1f\n", m, n, n / (t1 - t0), (ut + st) / clk * 1e6 / n, wb / n }'
	rm -rf "$work"
done
