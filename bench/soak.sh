#!/usr/bin/env bash
# bench/soak.sh - tumblegate's footprint over a long run: RSS and CPU every 10 s, steady ids and churning ids.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/soak.sh [--minutes N] [--gateway BIN] [--png FILE] [--replot]
#   --minutes N      minutes of load per variant (default 10; 1 or 2 to try the script,
#                    not to record figures)
#   --gateway BIN    the tumblegate binary to measure (default build/gateway/tumblegate,
#                    built RelWithDebInfo if missing)
#   --png FILE       where to draw the chart (default bench/soak.png)
#   --replot         no runs: the table, the verdict and the chart again, from the last
#                    run's build-bench/soak/*.tsv
#
# What runs. The gateway with its default configuration - only the MQTT
# broker, Kafka, its own topics and client id, a state dir under build-bench
# and an ephemeral metrics port are set - takes 10 000 sensors x 3 fields at
# 1 reading/s each (10 000 messages/s at QoS 1, JSON of about 135 bytes) from
# two tumblegate-sim processes of 5 000 sensors, through the real mosquitto
# and Kafka of deploy/stack.sh, in two variants, one gateway process each:
#   steady   the same 10 000 ids for the whole run: the sensor table (default
#            window.max_sensors 10000) is exactly full, windows close every 10 s.
#   churn    new ids every minute: the simulators are restarted with a new
#            --id-prefix, so 10 000 ids the gateway has never seen arrive each
#            minute and the previous 10 000 fall silent. The table is full from
#            the first minute on, so each new id is first refused (counted in
#            tumblegate_sensors_rejected_total, the engine's table_full) and,
#            once the least recently active sensor has been silent for
#            window.evict_after, takes its place (tumblegate_sensors_evicted_total,
#            its open windows emitted first). This variant sets one option,
#            window.evict_after=30s: with the default (1h) a run of minutes would
#            only ever count table_full and never exercise eviction. Each minute
#            thus has about 30 s of refusals, then the table turns over; the
#            silent sensors' windows close by window.idle_timeout (30 s).
#
# Per sample, every 10 s from the gateway's subscription to the end of the
# load: VmRSS (with RssAnon and RssFile: the file-backed part, shared
# libraries and the spool's mapped segments, whose pages come and go) from
# /proc/PID/status, CPU as utime + stime from /proc/PID/stat over the
# interval, in % of one core, and from /metrics:
# messages received, confirmed by Kafka on the raw topic, in flight, windows
# emitted, sensors active, readings refused for a full table, sensors evicted.
# After the load the gateway gets up to 60 s to have everything confirmed.
# Loss: readings the simulators had confirmed (acknowledged by mosquitto) that
# Kafka did not confirm on the raw topic.
#
# The verdict (issue 13): RSS after warm-up may not drift more than 2 %. The
# warm-up is the first 2 minutes (half the run when it is shorter than 4
# minutes); drift is the median VmRSS of the load's last minute against the
# median of the minute after the warm-up, in either direction (RSS breathes by
# about a MiB from one sample to the next with the bursts of aggregates that
# 10 000 windows closing together send, so single samples would measure that,
# not drift). A variant passes when |drift| <= 2 %
# and nothing is lost; the exit status is 1 if any variant fails.
#
# Results: the table on stdout (paste it into bench/RESULTS.md with the chart),
# every sample in build-bench/soak/<variant>.tsv, /proc/PID/smaps_rollup at
# the warm-up and at the end beside it, the chart in --png. The local stack is
# started if needed (ports from TG_MQTT_PORT, TG_KAFKA_PORT... as
# deploy/stack.sh reads them) and left running: deploy/stack.sh stop. Each run
# leaves its topics (soak-<time>.raw/.agg/.dlq, about 2 GB for two 10-minute
# variants) in Kafka.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
source "$repo_dir/deploy/lib.sh"
log() { printf 'bench/soak.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

minutes=10 gateway="" png=$repo_dir/bench/soak.png replot=0
while (($#)); do
	case $1 in
	--minutes) minutes=$2 && shift ;;
	--gateway) gateway=$(realpath "$2") && shift ;;
	--png) png=$(realpath -m "$2") && shift ;;
	--replot) replot=1 ;;
	-h | --help)
		sed -n '5,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[[ $minutes =~ ^[1-9][0-9]*$ ]] || die "--minutes wants a whole number of minutes, got '$minutes'"
sample_s=10 sensors=10000 npub=2 drain_s=60
out=$repo_dir/build-bench/soak
mkdir -p "$out"
variants=(steady churn)

if ! command -v gnuplot >/dev/null 2>&1; then
	log "installing gnuplot-nox for the chart (a benchmark-only dependency)"
	tg_sudo_init
	"${sudo_cmd[@]}" apt-get install -y -qq gnuplot-nox >/dev/null
fi

# --- the table, the verdict and the chart ------------------------------------

# report: the table and the verdict from build-bench/soak/*.tsv on stdout, and
# the chart; returns 1 if a variant fails.
report() {
	local v plot_rss="" plot_cpu="" ls=0 warm_s fail=0
	[[ -s $out/head.txt ]] || die "nothing measured yet in $out"
	for v in "${variants[@]}"; do
		[[ -s $out/$v.tsv && -s $out/$v.sum ]] || die "no complete $v run in $out"
	done
	warm_s=$(sed -n 's/^warm_s=//p' "$out/head.txt")
	sed '/^warm_s=/d' "$out/head.txt"
	printf '%-7s %9s %9s %9s %6s %9s %8s %8s %7s %7s %6s %8s %8s %8s  %s\n' variant published "Kafka ok" \
		loss "CPU %" "warm MiB" "last MiB" "max MiB" drift "(anon)" windows "sensors" table_full evicted verdict
	for v in "${variants[@]}"; do
		# <variant>.sum: published received forwarded
		read -r pub _ fwd <"$out/$v.sum"
		awk -F'\t' -v v="$v" -v warm_s="$warm_s" -v pub="$pub" -v fwd="$fwd" '
			# median of the n values in a[1..n]
			function median(a, n,    i, j, t) {
				for (i = 2; i <= n; i++)
					for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
				return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			}
			NR == 1 { next }
			{
				if ($1 > 0) { cpu += $5; ncpu++ }
				if ($1 >= warm_s) { n++; t[n] = $1; rss[n] = $2; an[n] = $3; if ($2 > max) max = $2 }
				win = $8; act = $9; full = $10; ev = $11
			}
			END {
				loss = pub - fwd; if (loss < 0) loss = 0
				if (!n) { printf "%-7s no sample after the warm-up\n", v; exit 1 }
				# a minute of samples at each end: RSS breathes with the
				# bursts of aggregates (a MiB from one sample to the next)
				for (i = 1; i <= n; i++) {
					if (t[i] < warm_s + 60) { nw++; w[nw] = rss[i]; wa[nw] = an[i] }
					if (t[i] > t[n] - 60) { nl++; l[nl] = rss[i]; la[nl] = an[i] }
				}
				warm = median(w, nw); warm_anon = median(wa, nw)
				last = median(l, nl); last_anon = median(la, nl)
				drift = 100 * (last - warm) / warm
				anon = 100 * (last_anon - warm_anon) / warm_anon
				ok = (drift <= 2 && drift >= -2 && loss == 0)
				printf "%-7s %9d %9d %9s %6.1f %9.1f %8.1f %8.1f %+6.2f%% %+6.2f%% %6d %8d %8d %8d  %s\n", v, pub, fwd,
				       loss ? sprintf("%d", loss) : "0", ncpu ? cpu / ncpu : 0, warm / 1024, last / 1024, max / 1024,
				       drift, anon, win, act, full, ev, ok ? "PASS" : "FAIL" (loss ? " (loss)" : "")
				exit !ok
			}' "$out/$v.tsv" || fail=1
	done
	echo "# warm-up: the first $warm_s s; warm MiB: median VmRSS of the minute from then, last: of the load's last minute,"
	echo "# max: the highest after the warm-up; drift: last against warm (PASS within 2 % and no loss);"
	echo "# (anon): the same drift of RssAnon alone, without file pages (libraries, the spool's mapped segment);"
	echo "# CPU %: of one core, mean over the 10 s samples; published: readings mosquitto acknowledged;"
	echo "# Kafka ok: messages Kafka confirmed on the raw topic; windows, table_full, evicted: totals at the end"

	for v in "${variants[@]}"; do
		ls=$((ls + 1))
		plot_rss+="${plot_rss:+, }'$out/$v.tsv' using (\$1/60):(\$2/1024) with lines ls $ls title '$v VmRSS', "
		plot_rss+="'$out/$v.tsv' using (\$1/60):(\$3/1024) with lines ls $ls dt 3 title '$v RssAnon'"
		plot_cpu+="${plot_cpu:+, }'$out/$v.tsv' using (\$1/60):(\$1 > 0 ? \$5 : 1/0) with lines ls $ls title '$v'"
	done
	gnuplot <<EOF
set terminal pngcairo size 1200,820 font ",10" noenhanced
set output '$png'
set multiplot layout 2,1 title "$(sed -n 2p "$out/head.txt" | sed 's/^## //; s/"//g')\\n$(sed -n 1p "$out/head.txt" | sed 's/^# //')"
set grid
set key below horizontal
set datafile separator "\t"
set style line 1 lc rgb '#1f77b4' lw 2
set style line 2 lc rgb '#d62728' lw 2
set xlabel 'minutes since the gateway subscribed'
set arrow from $warm_s/60.0, graph 0 to $warm_s/60.0, graph 1 nohead dt 2 lc rgb '#7f7f7f'
set label 'end of warm-up' at $warm_s/60.0, graph 0.95 offset 0.5,0
set title 'resident memory (MiB): VmRSS, and its anonymous part dotted; the rest is file pages (libraries, spool)'
set yrange [0:*]
plot $plot_rss
set title 'CPU (% of one core, utime + stime over each 10 s)'
plot $plot_cpu
unset multiplot
EOF
	log "chart: $png; every sample: $out/<variant>.tsv"
	return $fail
}

if ((replot)); then
	report
	exit
fi

# --- builds -------------------------------------------------------------------

build=$repo_dir/build
if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
	cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=(tumblegate-sim)
[[ -z $gateway ]] && targets+=(tumblegate)
cmake --build "$build" --target "${targets[@]}" >/dev/null
gateway=${gateway:-$build/gateway/tumblegate}
# The revision now, as it was built: the tree may move on during the run.
built_rev=$(git -C "$repo_dir" describe --always --dirty 2>/dev/null || echo '?')
sim=$build/firmware-sim/tumblegate-sim
[[ -x $gateway ]] || die "no gateway binary at $gateway"

# --- the stack ----------------------------------------------------------------

"$repo_dir/deploy/stack.sh" start >/dev/null || die "deploy/stack.sh start failed; see $repo_dir/.stack"
eval "$("$repo_dir/deploy/stack.sh" env)"
mqtt_hostport=${TG_MQTT_URI#*://}
mqtt_host=${mqtt_hostport%:*} mqtt_port=${mqtt_hostport##*:}
stamp=$(date +%s)
topic_base=soak-$stamp

# Ours to stop on exit: the current variant's gateway, sampler and simulators
# (emptied after each variant, whose processes have been waited for, so that
# no pid that may since belong to someone else is ever signalled).
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clk=$(getconf CLK_TCK)

# metric NAME FILE: the sum of a metric's samples in a /metrics scrape.
metric() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }' "$2"; }

# sampler PID PORT TSV: a line every sample_s seconds until killed.
sampler() {
	local pid=$1 port=$2 tsv=$3 scrape=$3.metrics t0 next now ticks prev_ticks prev_t rss anon file cpu
	printf 't_s\tvmrss_kib\trss_anon_kib\trss_file_kib\tcpu_pct\treceived\tforwarded\twindows_emitted\tsensors_active\ttable_full\tevicted\tin_flight\n' >"$tsv"
	t0=$EPOCHREALTIME next=0 prev_ticks="" prev_t=""
	while :; do
		now=$EPOCHREALTIME
		ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") || return 0
		read -r rss anon file < <(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
			END { print r, a, f }' "/proc/$pid/status") || return 0
		cpu=0
		[[ -n $prev_t ]] && cpu=$(awk -v d=$((ticks - prev_ticks)) -v clk="$clk" -v a="$prev_t" -v b="$now" \
			'BEGIN { printf "%.1f", 100 * d / clk / (b - a) }')
		curl -s --max-time 2 "http://127.0.0.1:$port/metrics" >"$scrape" || true
		printf '%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n' "$next" "$rss" "$anon" "$file" "$cpu" \
			"$(metric tumblegate_messages_received_total "$scrape")" \
			"$(metric tumblegate_messages_forwarded_total "$scrape")" \
			"$(metric tumblegate_windows_emitted_total "$scrape")" \
			"$(metric tumblegate_sensors_active "$scrape")" \
			"$(metric tumblegate_sensors_rejected_total "$scrape")" \
			"$(metric tumblegate_sensors_evicted_total "$scrape")" \
			"$(metric tumblegate_messages_in_flight "$scrape")" >>"$tsv"
		if ((next == warm_s)); then
			cp "/proc/$pid/smaps_rollup" "${tsv%.tsv}-smaps-warm.txt" 2>/dev/null || true
		fi
		prev_ticks=$ticks prev_t=$now next=$((next + sample_s))
		sleep "$(awk -v t0="$t0" -v n="$next" -v now="$EPOCHREALTIME" \
			'BEGIN { d = t0 + n - now; printf "%.3f", (d > 0 ? d : 0) }')"
	done
}

# publishers PHASE PREFIX SECONDS: starts npub simulators of sensors/npub ids
# each in the background, their pids in pub_pids, their logs in dir.
publishers() {
	local phase=$1 prefix=$2 secs=$3 p
	pub_pids=()
	for ((p = 0; p < npub; p++)); do
		"$sim" --uri "$TG_MQTT_URI" --client-id "$id-pub$p" --topic-prefix "$id" \
			--id-prefix "$prefix-p$p-" --sensors $((sensors / npub)) --rate 1 --duration "$secs" \
			--qos 1 --format json --fields 3 --seed $((p + 1)) --quiet \
			>"$dir/pub-$phase-$p.log" 2>&1 &
		pub_pids+=($!)
		pids+=($!)
	done
}

# published: readings the simulators of this variant had confirmed.
published() {
	cat "$dir"/pub-*.log | sed -n 's/.* summary: published=[0-9]* confirmed=\([0-9]*\).*/\1/p' |
		awk '{ s += $1 } END { print s + 0 }'
}

# run VARIANT: one gateway under one variant's load; writes VARIANT.tsv and VARIANT.sum.
run() {
	local variant=$1 pid port sampler_pid phase sent r f infl last_change seen_f deadline extra=()
	id=$topic_base-$variant
	dir=$out/runs/$id
	rm -rf "$dir"
	mkdir -p "$dir"
	[[ $variant == churn ]] && extra=(--set window.evict_after=30s)
	"$gateway" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$id" \
		--set "mqtt.topic=$id/+/telemetry" \
		--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" --set "topics.raw=$topic_base.raw" \
		--set "topics.agg=$topic_base.agg" --set "topics.dlq=$topic_base.dlq" \
		--set "state.dir=$dir/state" --set "metrics.listen=127.0.0.1:0" \
		"${extra[@]}" >"$dir/gw.log" 2>&1 &
	pid=$!
	pids+=($pid)
	gateway_wait "$variant" "$dir"
	log "$variant: gateway pid $pid, metrics on port $port, $minutes min of load; samples in $out/$variant.tsv"

	sampler "$pid" "$port" "$out/$variant.tsv" &
	sampler_pid=$!
	pids+=($sampler_pid)
	if [[ $variant == steady ]]; then
		publishers 0 sensor "$((minutes * 60))"
		wait "${pub_pids[@]}" || log "$variant: a simulator failed; see $dir/pub-0-*.log"
	else
		for ((phase = 0; phase < minutes; phase++)); do
			publishers "$phase" "$(printf 'c%02d' "$phase")" 60
			wait "${pub_pids[@]}" || log "$variant: a simulator failed; see $dir/pub-$phase-*.log"
			kill -0 "$pid" 2>/dev/null || die "$variant: the gateway exited: $(tail -n 5 "$dir/gw.log")"
		done
	fi
	kill -TERM "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	cp "/proc/$pid/smaps_rollup" "$out/$variant-smaps-end.txt" 2>/dev/null || true
	kill -0 "$pid" 2>/dev/null || die "$variant: the gateway exited: $(tail -n 5 "$dir/gw.log")"

	# Everything the simulators had acknowledged, received and confirmed?
	sent=$(published)
	seen_f=-1 last_change=$SECONDS deadline=$((SECONDS + drain_s))
	while ((SECONDS < deadline)); do
		curl -s --max-time 2 "http://127.0.0.1:$port/metrics" >"$dir/metrics" || true
		r=$(metric tumblegate_messages_received_total "$dir/metrics")
		f=$(metric tumblegate_messages_forwarded_total "$dir/metrics")
		infl=$(metric tumblegate_messages_in_flight "$dir/metrics")
		((r >= sent && f >= sent && infl == 0)) && break
		if ((f != seen_f)); then
			seen_f=$f last_change=$SECONDS
		elif ((SECONDS - last_change >= 10)); then
			break
		fi
		sleep 0.5
	done
	printf '%d %d %d\n' "$sent" "$r" "$f" >"$out/$variant.sum"
	((f >= sent)) || log "$variant: LOSS: $((sent - f)) of $sent readings not confirmed by Kafka; see $dir"
	kill -TERM "$pid"
	wait "$pid" || log "$variant: the gateway exited $? on SIGTERM; see $dir/gw.log"
	# The gateway's persistent session would stay in mosquitto for good: a
	# clean-session connect with its client id ends it.
	mosquitto_sub -h "$mqtt_host" -p "$mqtt_port" -i "$id" -t "$id/end" -E -W 5 >/dev/null 2>&1 ||
		log "$variant: could not end the MQTT session"
	tail -n 1 "$out/$variant.tsv" | awk -F'\t' -v v="$variant" -v s="$sent" -v f="$f" \
		'{ printf "bench/soak.sh: %s: %d/%d readings confirmed, VmRSS %.1f MiB at the end, %d windows, %d table_full, %d evicted\n",
			v, f, s, $2 / 1024, $8, $10, $11 }' >&2
	rm -rf "$dir/state"
	pids=()
}

# --- the variants ---------------------------------------------------------------

warm_s=120
((minutes * 60 / 2 < warm_s)) && warm_s=$((minutes * 60 / 2 / sample_s * sample_s))
rm -f "$out"/*.tsv "$out"/*.sum "$out"/*.metrics "$out"/*-smaps-*.txt
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
began=$SECONDS
for v in "${variants[@]}"; do
	run "$v"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

command=bench/soak.sh
((minutes != 10)) && command+=" --minutes $minutes"
[[ $gateway != "$build/gateway/tumblegate" ]] && command+=" --gateway $gateway"
{
	bench_machine
	echo "## footprint soak, 10 000 sensors x 3 fields at 1/s, QoS 1 JSON: $command"
	echo "# gateway ${gateway#"$repo_dir"/} ($built_rev), default configuration (churn: window.evict_after=30s); Kafka: real broker (deploy/stack.sh)"
	echo "# $minutes min per variant, $((SECONDS - began)) s in all; load average (1, 5, 15 min) at start $load_start, at end $load_end"
	echo "warm_s=$warm_s"
} >"$out/head.txt"
report
