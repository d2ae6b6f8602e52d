#!/usr/bin/env bash
# bench/footprint.sh - tumblegate's resident memory against what its libraries alone cost: idle, and at 10 000 sensors.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/footprint.sh [--seconds N] [--sensors N] [--rate R] [--config FILE]
#   --seconds N    how long the load runs (default 60); its highest VmRSS,
#                  sampled every second, is reported
#   --sensors N    sensors in the load (default 10000), from two simulators
#   --rate R       readings per second per sensor (default 1)
#   --config FILE  the gateway's configuration file (default: none, the
#                  built-in defaults), e.g. deploy/tumblegate-small.yaml
#
# Three programs, one after another, against the real mosquitto and Kafka of
# deploy/stack.sh (started if needed, left running):
#   bare_sub    a Paho subscriber that only counts (bench/bare_sub.c): the
#               floor bench/e2e.sh measures CPU against
#   floor_sub   the same, with the gateway's other libraries loaded and
#               started idle: a librdkafka producer configured as the
#               gateway's, connected to Kafka, a libmicrohttpd daemon, and
#               libsodium, ISA-L, libcbor, cJSON, libyaml linked in. What the
#               dependencies cost before any code of ours runs.
#   tumblegate  the gateway with its default configuration (only the broker,
#               Kafka, its topics, client id, state dir and an ephemeral
#               metrics port set), idle, then under 10 000 sensors x 3 fields
#               at 1 reading/s each (QoS 1, JSON) from two tumblegate-sim
#               (--sensors, --rate and --config change that).
# Idle is sampled 5 s after each subscribed. VmRSS counts a shared
# library's pages that the process touched (relocations, symbol tables, code
# run), RssAnon the process's own memory (heap, stacks, the window engine).
#
# Results: the table on stdout, then resident kB per library and for anonymous
# memory, side by side; every /proc/PID/smaps in build-bench/footprint/.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
log() { printf 'bench/footprint.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

seconds=60 sensors=10000 rate=1 config=()
while (($#)); do
	case $1 in
	--seconds) seconds=$2 && shift ;;
	--sensors) sensors=$2 && shift ;;
	--rate) rate=$2 && shift ;;
	--config) config=(-c "$(realpath "$2")") && shift ;;
	-h | --help)
		sed -n '5,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds wants a whole number, got '$seconds'"
[[ $sensors =~ ^[1-9][0-9]*$ && $sensors -ge 2 ]] || die "--sensors wants a whole number >= 2, got '$sensors'"

build=$repo_dir/build
if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
	cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target tumblegate tumblegate-sim bare_sub floor_sub >/dev/null
out=$repo_dir/build-bench/footprint
rm -rf "$out" && mkdir -p "$out"

"$repo_dir/deploy/stack.sh" start >/dev/null || die "deploy/stack.sh start failed; see $repo_dir/.stack"
eval "$("$repo_dir/deploy/stack.sh" env)"
id=fp-$(date +%s)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# status NAME PID: VmRSS, RssAnon and RssFile in kB; smaps kept as NAME.smaps.
status() {
	cp "/proc/$2/smaps" "$out/$1.smaps"
	awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s ", $2 }' "/proc/$2/status"
}

# A subscriber (bare_sub or floor_sub), idle.
subscriber_idle() {
	local name=$1 i
	TG_FLOOR_KAFKA=$TG_KAFKA_BROKERS "$build/bench/$name" "$TG_MQTT_URI" "$id-$name" \
		"$id-$name/+/telemetry" 1 1000000 30 >"$out/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for ((i = 0; i < 300; i++)); do
		grep -qs subscribed "$out/$name.log" && break
		kill -0 "$pid" 2>/dev/null || die "$name exited: $(cat "$out/$name.log")"
		sleep 0.1
	done
	sleep 5
	rss[$name]=$(status "$name" "$pid")
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

declare -A rss
subscriber_idle bare_sub
subscriber_idle floor_sub

dir=$out/gateway
mkdir -p "$dir"
"$build/gateway/tumblegate" "${config[@]}" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$id" \
	--set "mqtt.topic=$id/+/telemetry" \
	--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" --set "topics.raw=$id.raw" \
	--set "topics.agg=$id.agg" --set "topics.dlq=$id.dlq" \
	--set "state.dir=$dir/state" --set "metrics.listen=127.0.0.1:0" >"$dir/gw.log" 2>&1 &
pid=$!
pids+=("$pid")
gateway_wait gateway "$dir"
sleep 5
rss[idle]=$(status gateway-idle "$pid")

for p in 0 1; do
	"$build/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --client-id "$id-pub$p" \
		--topic-prefix "$id" --id-prefix "s-p$p-" --sensors $((sensors / 2)) --rate "$rate" \
		--duration "$seconds" --qos 1 --format json --fields 3 --seed $((p + 1)) --quiet \
		>"$dir/pub$p.log" 2>&1 &
	pids+=($!)
done
max=0
for ((t = 0; t < seconds; t++)); do
	sleep 1
	r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
	if ((r > max)); then
		max=$r
		rss[load]=$(status gateway-load "$pid")
	fi
done
active=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^tumblegate_sensors_active /{ print $2 }')
kill -TERM "$pid"
wait "$pid" || die "the gateway exited with status $? after SIGTERM"
engine=$(sed -n 's/.*window engine: \([0-9]*\) bytes for.*/\1/p' "$dir/gw.log")

bench_machine
echo "## bench/footprint.sh --seconds $seconds --sensors $sensors --rate $rate${config:+ --config ${config[1]#"$repo_dir/"}}: resident memory (MiB)"
printf '%-34s %8s %8s %8s\n' program VmRSS RssAnon RssFile
row() {
	local a
	read -ra a <<<"$2"
	printf '%-34s %8.1f %8.1f %8.1f\n' "$1" "$(bc -l <<<"${a[0]}/1024")" \
		"$(bc -l <<<"${a[1]}/1024")" "$(bc -l <<<"${a[2]}/1024")"
}
row "bare_sub, idle" "${rss[bare_sub]}"
row "floor_sub (the libraries), idle" "${rss[floor_sub]}"
row "tumblegate, idle" "${rss[idle]}"
row "tumblegate, ${active:-?} sensors (highest)" "${rss[load]}"
echo "# the window engine allocates $engine bytes at start-up (its pages count once touched)"

echo "## resident kB by mapping (libraries, and anonymous: heap, stacks, thread arenas, engine)"
by_mapping() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { n = (NF >= 6) ? $6 : "[anon]"; if (n ~ /^\//) { sub(/.*\//, "", n); sub(/\.so.*/, "", n) }
	                                if (n ~ /^\[(heap|stack)/) n = "[anon]"; next }
	     /^Rss:/ { r[n] += $2 } END { for (k in r) print k, r[k] }' "$1"
}
join_all() {
	local f
	for f in bare_sub floor_sub gateway-idle gateway-load; do
		by_mapping "$out/$f.smaps" | sort >"$out/$f.by"
	done
	join -a1 -a2 -e0 -o auto "$out/bare_sub.by" "$out/floor_sub.by" |
		join -a1 -a2 -e0 -o auto - "$out/gateway-idle.by" |
		join -a1 -a2 -e0 -o auto - "$out/gateway-load.by"
}
printf '%-22s %9s %9s %9s %9s\n' mapping bare_sub floor_sub gw-idle gw-load
join_all | sort -k5 -nr | awk '$5 >= 100 || $4 >= 100 { printf "%-22s %9d %9d %9d %9d\n", $1, $2, $3, $4, $5 }'
