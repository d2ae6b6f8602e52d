#!/usr/bin/env bash
# bench/downsample.sh - records and bytes on Kafka per 1 000 readings for each forward.mode on the simulator's signal shapes, as a table and a chart.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/downsample.sh [--png FILE] [--sensors N] [--duration S] [--scales "K ..."]
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
# Deviations, per field, K times the order of the simulator's noise
# (temperature 0.1 degC, humidity 0.5 %RH, pressure 0.1 hPa) for each K of
# --scales ("1 3"), one panel of the chart each; maximum silence 5 min. --sensors sensors (5) at 1 Hz for --duration s (3600) of event time
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

png=$repo_dir/bench/downsample.png sensors=5 duration=3600 scales="1 3"
while (($#)); do
	case $1 in
	--png) png=$(realpath -m "$2") && shift ;;
	--sensors) sensors=$2 && shift ;;
	--duration) duration=$2 && shift ;;
	--scales) scales=$2 && shift ;;
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
dev() { awk -v k="$1" -v d="$2" 'BEGIN { printf "%g", d * k }'; }

{
	bench_machine
	echo "## bench/downsample.sh --sensors $sensors --duration $duration --scales '$scales': $readings readings per mode and shape at 1 Hz"
} >"$out/head.txt"

# measure SCALE SHAPE: one gateway, four subscriptions, four simulators.
measure() {
	local scale=$1 shape=$2 dir=$out/$2-x$1 topic=$run.$2.x$1 i m p got want args=()

	rm -rf "$dir" && mkdir -p "$dir"
	for i in "${!modes[@]}"; do
		m=${modes[$i]} p=${prefixes[$i]}
		args+=(--set "subscriptions.$i.topic=$run-$shape-$scale-$p/+/telemetry"
			--set "subscriptions.$i.forward.mode=$m")
		if [[ $m == exception || $m == swinging-door ]]; then
			args+=(--set "subscriptions.$i.forward.fields=temperature=$m:$(dev "$scale" 0.1),humidity=$m:$(dev "$scale" 0.5),pressure=$m:$(dev "$scale" 0.1)")
		fi
	done
	"$build/gateway/tumblegate" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$topic" \
		--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" --set "topics.raw=$topic.raw" \
		--set "topics.agg=$topic.agg" --set "topics.dlq=" --set "state.dir=$dir/state" \
		--set "metrics.listen=127.0.0.1:0" --set window.idle_timeout=0 "${args[@]}" \
		>"$dir/gw.log" 2>&1 &
	pid=$!
	gateway_wait "$shape" "$dir"
	for i in "${!prefixes[@]}"; do
		"$build/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" --client-id "$topic-sim-$i" \
			--topic-prefix "$run-$shape-$scale-${prefixes[$i]}" --id-prefix "${prefixes[$i]}-" \
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
	kcat -C -b "$TG_KAFKA_BROKERS" -t "$topic.raw" -e -q -f '%k\t%S\t%h\n' >"$dir/records.tsv" ||
		die "$shape: kcat failed"
	for i in "${!prefixes[@]}"; do
		# key + value + each header's name and value
		awk -F'\t' -v p="${prefixes[$i]}-" -v n="$readings" -v k="$scale" -v shape="$shape" \
			-v mode="${modes[$i]}" '
			index($1, p) == 1 {
				r++
				h = $3; gsub(/[=,]/, "", h)
				b += length($1) + $2 + length(h)
			}
			END { printf "%s\t%s\t%s\t%d\t%d\t%.1f\t%.0f\n", k, shape, mode, r, b, 1000 * r / n, 1000 * b / n }' \
			"$dir/records.tsv" >>"$out/figures.tsv"
	done
	log "$shape, deviations x$scale: done"
}

for scale in $scales; do
	for shape in "${shapes[@]}"; do
		measure "$scale" "$shape"
	done
done

# the table
{
	cat "$out/head.txt"
	echo
	echo "| deviations | shape | mode | records | bytes | records / 1 000 readings | bytes / 1 000 readings |"
	echo "|---|---|---|---:|---:|---:|---:|"
	awk -F'\t' '{ printf "| x%s | %s | %s | %d | %d | %.1f | %d |\n", $1, $2, $3, $4, $5, $6, $7 }' \
		"$out/figures.tsv"
} | tee "$out/table.md"

# the chart: bytes per 1 000 readings, a group of bars per shape, a panel per scale
plots=
for scale in $scales; do
	awk -F'\t' -v k="$scale" '$1 == k { v[$2, $3] = $7 } END {
		n = split("natural stepped noisy spiky", order, " ")
		for (i = 1; i <= n; i++)
			printf "%s\t%s\t%s\t%s\n", order[i], v[order[i], "all"], v[order[i], "exception"],
				v[order[i], "swinging-door"]
	}' "$out/figures.tsv" >"$out/chart-x$scale.tsv"
	plots+="set title 'deviations x$scale: $(dev "$scale" 0.1) degC, $(dev "$scale" 0.5) %RH, $(dev "$scale" 0.1) hPa (none: 0 bytes)'
plot '$out/chart-x$scale.tsv' using 2:xtic(1) title 'all', '' using 3 title 'exception', '' using 4 title 'swinging-door'
"
done
panels=$(wc -w <<<"$scales")
gnuplot <<GNUPLOT
set terminal pngcairo size 1000,$((120 + 330 * panels)) font ",10" noenhanced
set output '$png'
set multiplot layout $panels,1 title "$(sed -n 2p "$out/head.txt" | sed 's/^## //; s/"//g')\\n$(sed -n 1p "$out/head.txt" | sed 's/^# //')"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set datafile separator "\t"
set key top right
set grid ytics
set ylabel 'bytes on topics.raw / 1 000 readings'
set logscale y
set yrange [1000:400000]
$plots
unset multiplot
GNUPLOT
log "chart: $png; figures: $out/figures.tsv"
