#!/usr/bin/env bash
# test_sparkplug.sh - Sparkplug B edge nodes made with Eclipse Tahu's client publish through mosquitto; every value, window, death and anomaly must be right in Kafka.
# SPDX-License-Identifier: Apache-2.0
#
# The edge nodes are no one's here: Tahu's sparkplug-client (npm, pinned in
# tests/integration/sparkplug/package-lock.json), driven by
# sparkplug/edge_node.js, which says what each sends: births with aliases,
# DDATA by alias of seven datatypes, historical metrics (one late), a
# message on a bad topic and the seq gap it leaves, an unknown alias, data
# before a birth, a DDEATH, a clean NDEATH and a stale one (the will of a
# session the node has already replaced). The gateway reads them with
# format sparkplug; sparkplug/check_kafka.js then holds the raw, aggregate,
# late and dead-letter topics to what was sent, windows computed on its own,
# and the rebirth requests mosquitto_sub saw to the anomalies that ask for
# them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sparkplug_tools
sp=$repo_dir/tests/integration/sparkplug
group=$run_id
mkdir -p "$work/state-sp"
: >"$work/expect.jsonl"
# Event time ten minutes back, on a window boundary: windows of 10 s.
t0=$((($(date +%s) - 600) / 10 * 10000))

mqtt_hostport=${TG_MQTT_URI#tcp://}
mosquitto_sub -h "${mqtt_hostport%:*}" -p "${mqtt_hostport##*:}" -i "$run_id-ncmd" \
	-t "spBv1.0/$group/NCMD/#" -F '%t %x' >"$work/ncmd.txt" 2>"$work/ncmd.err" &
ncmd_pid=$!
plc1_pid= plc1b_pid=
# Whatever this test started goes with it, however it ends.
trap 'kill -KILL $ncmd_pid $plc1_pid $plc1b_pid 2>/dev/null || true; cleanup' EXIT

gateway_start --set mqtt.format=sparkplug --set "mqtt.topic=spBv1.0/$group/#" \
	--set "topics.late=$run_id.late" --set window.size=10s --set window.grace=2s

# edge ROLE: the command line of one edge node (run directly, not in a
# function, so that a background one's $! is node's own pid).
edge() {
	edge_cmd=(node "$sp/edge_node.js" "$1" "$TG_MQTT_URI" "$group" "$t0" "$work/expect.jsonl"
		"$work/state-sp")
}
wait_file() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ -f $work/state-sp/$1 ]] && return 0
		sleep 0.1
	done
	cat "$work/edge.log" >&2
	fail "the edge nodes did not get to $1 in $2 s"
}

edge plc1
"${edge_cmd[@]}" 2>>"$work/edge.log" &
plc1_pid=$!
wait_file plc1.done 40
edge plc2
"${edge_cmd[@]}" 2>>"$work/edge.log" || { cat "$work/edge.log" >&2; fail "edge node plc2 failed"; }
edge plc1b
"${edge_cmd[@]}" 2>>"$work/edge.log" &
plc1b_pid=$!
wait_file plc1b.born 20
# plc1's first session dies without a word: the broker sends its will.
kill -KILL "$plc1_pid"
wait "$plc1_pid" 2>/dev/null || true
touch "$work/state-sp/plc1.killed"
wait "$plc1b_pid" || { cat "$work/edge.log" >&2; fail "edge node plc1b failed"; }

rc=0
node "$sp/check_kafka.js" "$work/expect.jsonl" "$TG_KAFKA_BROKERS" "$run_id" "$work/ncmd.txt" \
	10000 40 2>"$work/check.log" || rc=$?
kill "$ncmd_pid" 2>/dev/null || true
cat "$work/check.log" >&2
((rc == 0)) || { cat "$work/edge.log" >&2; fail "Kafka does not hold what the edge nodes sent"; }

# The metrics count what happened, one series per reason.
[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
check_accounting "$work/metrics"
gateway_stop
log "PASS: $(grep 'check_kafka: raw' "$work/check.log" | sed 's/^check_kafka: //')"
