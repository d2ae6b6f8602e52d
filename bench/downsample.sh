#!/usr/bin/env bash
# bench/downsample.sh - records and bytes on Kafka per 1 000 readings for each forward.mode on the simulator's signal shapes, as a table and a chart.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/downsample.sh [--png FILE] [--sensors N] [--duration S]
#
# For each --shape of tumblegate-sim (natural, stepped, noisy, spiky) one
# gateway runs four subscriptions, one per forward.mode (all, exception,
# swinging-door, none), and the simulator publishes the same seeded readings
# four times, once to each (ids all-*, exc-*, sdt-*, none-*: the values
# depend on the seed and the sensor's index, not on its id). topics.compressed
# is unset, so topics.raw carries what each mode selects. Once every
# reading is confirmed, the raw topic is read back with kcat and its records
# counted per mode: records, and bytes of key + value + headers as the
# broker stores them (Kafka's own batch overhead and compression aside).
#
# Deviations, per field, of the same order as the simulator's noise:
# temperature 0.1 degC, humidity 0.5 %RH, pressure 0.1 hPa; maximum silence
# 5 min. --sensors sensors (5) at 1 Hz for --duration s (3600) of event time
# each, published as fast as the stack takes them.
#
# The real stack of deploy/stack.sh (mosquitto + Kafka) with the caller's
# TG_*_PORT variables, started if it is not running and left running.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
log() { printf 'bench/downsample.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

png=$repo_dir/bench/downsample.png sensors=5 duration=3600
while (($#)); do
	case $1 in
	--png) png=$(realpath -m "$2") && shift ;;
	--sensors) sensors=$2 && shift ;;
	--duration) duration=$2 && shift ;;
	*) die "unknown argument $1" ;;
	esac
	shift
done
build=$repo_dir/build
[[ -x $build/gateway/tumblegate && -x $build/firmware-sim/tumblegate-sim ]] ||
	die "build first: cmake -S . -B build && cmake --build build"
command -v kcat >/dev/null || die "kcat is needed to read the topic back"
"$repo_dir/deploy/stack.sh" start >/dev/null
eval "$("$repo_dir/deploy/stack.sh" env)"

out=$repo_dir/build-bench/downsample
mkdir -p "$out"
rm -f "$out"/*.tsv
modes=(all exception swinging-door none)
prefixes=(all exc sdt none)
shapes=(natural stepped noisy spiky)
run=ds$(date +%s)$$
readings=$((sensors * duration))
start_ms=$((($(date +%s) - 2 * duration) * 1000))

{
	bench_machine
	echo "## bench/downsample.sh --sensors $sensors --duration $duration: $readings readings per mode and shape, 1 Hz"
} >"$out/head.txt"

for shape in "${shapes[@]}"; do
	dir=$out/$shape
	rm -rf "$dir" && mkdir -p "$dir"
	args=()
	for i in "${!modes[@]}"; do
		m=${modes[$i]} p=${prefixes[$i]}
		args+=(--set "subscriptions.$i.topic=$run-$shape-$p/+/telemetry"
			--set "subscriptions.$i.forward.mode=$m")
		if [[ $m == exception || $m == swinging-door ]]; then
			args+=(--set "subscriptions.$i.forward.fields=temperature=$m:0.1,humidity=$m:0.5,pressure=$m:0.1")
		fi
	done
	"$build/gateway/tumblegate" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$run-$shape" \
		--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" --set "topics.raw=$run.$shape.raw" \
		--set "topics.agg=$run.$shape.agg" --set "topics.dlq=" --set "state.dir=$dir/state" \
		--set "metrics.listen=127.0.0.1:0" --set window.idle_timeout=0 "${args[@]}" \
		>"$dir/gw.log" 2>&1 &
	pid=$!
	gateway_wait "$shape" "$dir"
	for i in "${!prefixes[@]}"; do
		"$build/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --client-id "$run-sim-$i" \
			--topic-prefix "$run-$shape-${prefixes[$i]}" --id-prefix "${prefixes[$i]}-" \
			--sensors "$sensors" --rate 1 --duration "$duration" --fast --qos 1 --seed 15 \
			--shape "$shape" --start-ms "$start_ms" --quiet >"$dir/sim-$i.log" 2>&1 ||
			die "$shape: the simulator failed: $(tail -n 3 "$dir/sim-$i.log")"
	done
	# every message confirmed: the metrics say so
	want=$((4 * readings))
	for ((i = 0; i < 600; i++)); do
		got=$(curl -s "http://127.0.0.1:$port/metrics" |
			awk '$1 == "tumblegate_messages_forwarded_total" { print $2 }')
		[[ ${got:-0} -ge $want ]] && break
		sleep 0.2
	done
	((${got:-0} >= want)) || die "$shape: $got of $want messages confirmed"
	kill -TERM "$pid" && wait "$pid" || die "$shape: the gateway did not stop cleanly"
	kcat -C -b "$TG_KAFKA_BROKERS" -t "$run.$shape.raw" -e -q -f '%k\t%S\t%h\n' >"$dir/records.tsv" ||
		die "$shape: kcat failed"
	for i in "${!prefixes[@]}"; do
		# key + value + each header's name and value
		awk -F'\t' -v p="${prefixes[$i]}-" -v n="$readings" -v shape="$shape" -v mode="${modes[$i]}" '
			index($1, p) == 1 {
				r++
				h = $3; gsub(/[=,]/, "", h)
				b += length($1) + $2 + length(h)
			}
			END { printf "%s\t%s\t%d\t%d\t%.1f\t%.0f\n", shape, mode, r, b, 1000 * r / n, 1000 * b / n }' \
			"$dir/records.tsv" >>"$out/figures.tsv"
	done
	log "$shape: done"
done

# the table
{
	cat "$out/head.txt"
	echo
	echo "| shape | mode | records | bytes | records / 1 000 readings | bytes / 1 000 readings |"
	echo "|---|---|---:|---:|---:|---:|"
	awk -F'\t' '{ printf "| %s | %s | %d | %d | %.1f | %d |\n", $1, $2, $3, $4, $5, $6 }' "$out/figures.tsv"
} | tee "$out/table.md"

# the chart: bytes per 1 000 readings, one group of bars per shape
awk -F'\t' '{ v[$1, $2] = $6; s[$1] = 1 } END {
	print "shape\tall\texception\tswinging-door\tnone"
	n = split("natural stepped noisy spiky", order, " ")
	for (i = 1; i <= n; i++) {
		k = order[i]
		printf "%s\t%s\t%s\t%s\t%s\n", k, v[k, "all"], v[k, "exception"], v[k, "swinging-door"], v[k, "none"]
	}
}' "$out/figures.tsv" >"$out/chart.tsv"
gnuplot <<EOF
set terminal pngcairo size 1000,560 font ",10" noenhanced
set output '$png'
set title "$(sed -n 2p "$out/head.txt" | sed 's/^## //; s/"//g')\\n$(sed -n 1p "$out/head.txt" | sed 's/^# //')"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set datafile separator "\t"
set key top right
set grid ytics
set ylabel 'bytes on topics.raw per 1 000 readings (key + value + headers; none: 0)'
set logscale y
set yrange [100:*]
plot '$out/chart.tsv' using 2:xtic(1) title 'all', '' using 3 title 'exception', '' using 4 title 'swinging-door'
EOF
log "chart: $png; figures: $out/figures.tsv"
