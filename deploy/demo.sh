#!/usr/bin/env bash
# deploy/demo.sh - the README's first command: the whole pipeline locally, with aggregates shown live.
# SPDX-License-Identifier: Apache-2.0
#
# Installs what is missing, builds, starts mosquitto and Kafka (deploy/stack.sh),
# then simulated sensors and the gateway, and shows the closed windows as they
# arrive in Kafka until Ctrl-C. Everything it started is stopped on the way out
# (a stack that was already running is left running).
#
# Environment:
#   DEMO_SENSORS   simulated sensors (default 10)
#   DEMO_RATE      readings per second per sensor (default 10)
#   DEMO_SECONDS   run this long without a terminal table, printing one line per
#                  aggregate, then stop and exit 0 if any arrived (for scripts/CI)
#   DEMO_FIELD     1: the sensors behave as a real fleet does (tumblegate-sim's
#                  field conditions): readings out of order and some late,
#                  skewed clocks, outages with a backlog, abrupt disconnects
#                  with a will, duplicates; late readings also go to sensors.late
#   DEMO_FORMAT    sparkplug: the sensors are the devices of one Sparkplug B edge
#                  node (group "tumblegate", node "demo-edge"; sensor ids
#                  tumblegate/demo-edge/node-0000 ...) on spBv1.0/#, read by the
#                  gateway with format sparkplug; default cbor, the flat map.
#                  With DEMO_FIELD=1 its devices share the node's connection,
#                  so there are no abrupt per-sensor disconnects
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_dir"
build=build
state=.stack/demo
sensors=${DEMO_SENSORS:-10}
rate=${DEMO_RATE:-10}
seconds=${DEMO_SECONDS:-}
format=${DEMO_FORMAT:-cbor}
field=()
late_topic=()
if [[ ${DEMO_FIELD:-0} == 1 ]]; then
	field=(--reorder 500 --late 0.02 --late-ms 5000 --skew 2000 --drift 200
		--offline 0.2 --offline-ms 40000 --duplicate 0.01)
	# A Sparkplug device has no MQTT connection of its own to drop.
	[[ $format == sparkplug ]] || field+=(--disconnect 0.2 --disconnect-ms 15000)
	late_topic=(--set topics.late=sensors.late)
fi
sim_format=(--format "$format")
gateway_format=()
case $format in
cbor) ;;
sparkplug)
	# The edge node's session counter (bdSeq) grows with each demo run.
	sim_format+=(--group tumblegate --node demo-edge --bdseq-file "$state/bdseq")
	gateway_format=(--set mqtt.format=sparkplug)
	;;
*)
	echo "demo: DEMO_FORMAT must be cbor or sparkplug, not '$format'" >&2
	exit 2
	;;
esac
pids=()
stack_started=0

say() { printf 'demo: %s\n' "$*"; }

cleanup() {
	trap - EXIT INT TERM
	say "stopping"
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if ((stack_started)); then deploy/stack.sh stop || true; fi
	say "logs are in $state/"
}

say "installing what is missing"
bash deploy/install-deps.sh
say "building"
cmake -S . -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" \
	--target tumblegate tumblegate-sim tumblegate-watch | tail -n 1

if ! deploy/stack.sh status >/dev/null 2>&1; then
	stack_started=1
fi
trap cleanup EXIT
trap 'exit 0' INT TERM
deploy/stack.sh start
eval "$(deploy/stack.sh env)"
mkdir -p "$state"

"$build/gateway/tumblegate" \
	--set "mqtt.uri=$TG_MQTT_URI" \
	--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" \
	--set "state.dir=$repo_dir/$state" \
	--set window.size=10s --set window.grace=2s "${late_topic[@]}" "${gateway_format[@]}" \
	>>"$state/gateway.log" 2>&1 &
pids+=($!)
"$build/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --sensors "$sensors" \
	--rate "$rate" --qos 1 "${sim_format[@]}" --quiet "${field[@]}" >>"$state/sim.log" 2>&1 &
pids+=($!)
((${#field[@]})) && say "field conditions on: ${field[*]}"
[[ $format == sparkplug ]] &&
	say "Sparkplug B: edge node tumblegate/demo-edge, its devices on spBv1.0/tumblegate/+/demo-edge/#"
say "gateway and $sensors simulated sensors at $rate Hz running; 10 s windows, 2 s grace"
say "raw readings go to topic sensors.raw, aggregates to sensors.agg"
say "status page: http://127.0.0.1:9740/ (metrics: /metrics, /readyz)"

if [[ -n $seconds ]]; then
	timeout --signal=INT "$seconds" "$build/gateway/tumblegate-watch" \
		-b "$TG_KAFKA_BROKERS" --lines | tee "$state/watch.out" || true
	n=$(wc -l <"$state/watch.out")
	say "$n aggregate line(s) in $seconds s"
	((n > 0)) || { say "no aggregates arrived"; exit 1; }
else
	say "first windows close about 12 s after start; Ctrl-C to stop"
	sleep 1
	"$build/gateway/tumblegate-watch" -b "$TG_KAFKA_BROKERS" || true
fi
