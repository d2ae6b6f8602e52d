#!/usr/bin/env bash
# bench/cluster.sh - the gateway into a replicated 3-broker cluster (acks=all, min.insync.replicas=2) against the single broker: readings/s and CPU per reading, as ratios.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/cluster.sh [-n ROUNDS] [-r READINGS]
#   -n ROUNDS    rounds (default 5); each runs both targets, single first
#   -r READINGS  readings per run (default 200000)
#
# A warm-up run of 20 000 readings on each target comes first, not recorded
# (the brokers' JIT). Each run: a fresh gateway (durability disk, the defaults, topics created with
# the broker's defaults: 3 partitions; replication factor 1 on the single
# broker, 3 with min.insync.replicas=2 on the cluster; the producer always
# acks=all) subscribed to its own topics; 4 publishers of 25 sensors each
# (tumblegate-sim --fast --qos 1 --format json --fields 1) publish READINGS in
# all. Timed from the publishers' start until every reading is confirmed by
# Kafka (forwarded = READINGS, in flight 0, /metrics polled every 0.1 s).
#   readings/s     READINGS over that time
#   gw us/reading  the gateway's CPU (user + system, /proc/PID/stat) over the run
#                  per reading
#   kafka us/rdg   the brokers' JVMs' CPU over the run per reading (one JVM, or
#                  the sum of three)
# The ratio is cluster over single of the same round; the table shows medians
# over rounds. Everything (publishers, mosquitto, the JVMs, the gateway) shares
# the machine's cores, so readings/s is what is left of a busy machine.
#
# The stack (mosquitto, the single broker) and the cluster are started if
# needed (ports from TG_MQTT_PORT, TG_KAFKA_PORT, TG_CLUSTER_PORT... as
# deploy/stack.sh reads them) and left running: deploy/stack.sh stop; deploy/stack.sh stop cluster.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
log() { printf 'bench/cluster.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

rounds=5 readings=200000
while getopts n:r: opt; do
	case $opt in
	n) rounds=$OPTARG ;;
	r) readings=$OPTARG ;;
	*) exit 2 ;;
	esac
done
((readings % 100 == 0)) || die "-r: a multiple of 100 (4 publishers of 25 sensors)"

build=$repo_dir/build
[[ -f $build/build.ninja ]] || cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target tumblegate tumblegate-sim >/dev/null
"$repo_dir/deploy/stack.sh" start >&2
"$repo_dir/deploy/stack.sh" start cluster >&2
eval "$("$repo_dir/deploy/stack.sh" env)"
stack_dir=${TG_STACK_DIR:-$repo_dir/.stack}

out=$repo_dir/build-bench/cluster
mkdir -p "$out"
: >"$out/runs.tsv"
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done' EXIT

clk=$(getconf CLK_TCK)
cpu_us() { # PID...: user + system CPU of these processes, in us
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk -v clk="$clk" '{ printf "%.0f", ($14 + $15) * 1e6 / clk }' "/proc/$p/stat")))
	done
	echo "$t"
}
jvm_pids() { # TARGET: the broker JVMs' pids
	if [[ $1 == single ]]; then
		cat "$stack_dir/kafka/kafka.pid"
	else
		cat "$stack_dir"/cluster/broker[123]/kafka.pid
	fi
}
series() { awk -v m="$1" '$1 == m { print $2 }' "$2"; }

# run ROUND TARGET: one run; appends "round target rate gw_us kafka_us" to runs.tsv.
run() {
	local round=$1 target=$2 id brokers dir pid port t0 t1 c0 k0 p f infl i
	local jvms=()
	id=bc$(date +%s)$round$target
	dir=$out/$id
	mkdir -p "$dir"
	brokers=$TG_KAFKA_BROKERS
	[[ $target == cluster ]] && brokers=$TG_CLUSTER_BROKERS
	mapfile -t jvms < <(jvm_pids "$target")
	"$build/gateway/tumblegate" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$id-gw" \
		--set "mqtt.topic=$id/+/telemetry" --set "kafka.bootstrap.servers=$brokers" \
		--set "topics.raw=$id.raw" --set "topics.agg=$id.agg" --set "topics.dlq=$id.dlq" \
		--set "state.dir=$dir/state" --set metrics.listen=127.0.0.1:0 >"$dir/gw.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	gateway_wait "$target" "$dir"
	sleep 2 # topics created, metadata known
	t0=$(date +%s%N) c0=$(cpu_us "$pid") k0=$(cpu_us "${jvms[@]}")
	for ((p = 0; p < 4; p++)); do
		"$build/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --client-id "$id-pub$p" \
			--topic-prefix "$id" --id-prefix "sensor-p$p-" --sensors 25 --rate 10 \
			--duration "$((readings / 4 / 25 / 10))" --qos 1 --format json --fields 1 \
			--seed $((p + 1)) --quiet --fast >"$dir/pub$p.log" 2>&1 &
		pids+=($!)
	done
	for ((i = 0; i < 6000; i++)); do
		curl -s -m 2 -o "$dir/m" "http://127.0.0.1:$port/metrics" || true
		f=$(series tumblegate_messages_forwarded_total "$dir/m")
		infl=$(series tumblegate_messages_in_flight "$dir/m")
		[[ ${f:-0} == "$readings" && ${infl:-1} == 0 ]] && break
		sleep 0.1
	done
	t1=$(date +%s%N)
	[[ ${f:-0} == "$readings" ]] || die "$target: $f of $readings confirmed after 600 s"
	awk -v r="$round" -v t="$target" -v n="$readings" -v ns=$((t1 - t0)) \
		-v c=$(($(cpu_us "$pid") - c0)) -v k=$(($(cpu_us "${jvms[@]}") - k0)) \
		'BEGIN { printf "%s\t%s\t%.0f\t%.2f\t%.2f\n", r, t, n / (ns / 1e9), c / n, k / n }' >>"$out/runs.tsv"
	kill -TERM "$pid"
	wait "$pid" || true
	log "round $round, $target: $(tail -n 1 "$out/runs.tsv" | cut -f 3-)"
}

bench_machine
# A short run on each first, not recorded: the JVMs compile their hot paths.
full=$readings readings=20000
run 0 single
run 0 cluster
readings=$full
: >"$out/runs.tsv"
for ((r = 1; r <= rounds; r++)); do
	run "$r" single
	run "$r" cluster
done

# The table: medians over rounds, ratios of the same round's runs.
awk -F '\t' -v rounds="$rounds" -v n="$readings" '
	function median(s,   a, k, i, j, t) {
		k = split(s, a, " ")
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	{ rate[$2] = rate[$2] " " $3; gw[$2] = gw[$2] " " $4; kf[$2] = kf[$2] " " $5
	  R[$1, $2] = $3; G[$1, $2] = $4; K[$1, $2] = $5 }
	END {
		for (r = 1; r <= rounds; r++) {
			rr = rr " " R[r, "cluster"] / R[r, "single"]
			gr = gr " " G[r, "cluster"] / G[r, "single"]
			kr = kr " " K[r, "cluster"] / K[r, "single"]
		}
		printf "\n%d readings per run, 4 publishers x 25 sensors, QoS 1, durability disk, acks=all; median of %d rounds\n\n", n, rounds
		printf "| target | readings/s | gateway CPU us/reading | Kafka CPU us/reading |\n|---|---:|---:|---:|\n"
		printf "| single broker (RF 1) | %.0f | %.2f | %.2f |\n", median(rate["single"]), median(gw["single"]), median(kf["single"])
		printf "| 3-broker cluster (RF 3, min.insync.replicas=2) | %.0f | %.2f | %.2f |\n", median(rate["cluster"]), median(gw["cluster"]), median(kf["cluster"])
		printf "| ratio cluster / single | %.2f | %.2f | %.2f |\n", median(rr), median(gr), median(kr)
	}' "$out/runs.tsv"
