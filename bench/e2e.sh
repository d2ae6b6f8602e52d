#!/usr/bin/env bash
# bench/e2e.sh - tumblegate end to end against a bare Paho subscriber: CPU per reading, ratio, RSS, loss, highest rate.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/e2e.sh [-n REPS] [--quick] [--mock] [--before BIN | --before-rev REV]
#                     [--png FILE] [--replot] [--perf] [GATEWAY]
#   GATEWAY          the tumblegate binary to measure (default build/gateway/tumblegate,
#                    built RelWithDebInfo if missing)
#   -n REPS          rounds (default 5, or 3 with --before): each figure is a median over them
#   --quick          1 round of shorter runs (about 1 minute): to try the script,
#                    not to record figures
#   --mock           Kafka is a librdkafka mock cluster (bench/mock_kafka) in a process of
#                    its own, instead of the real broker of deploy/stack.sh
#   --before BIN     also measure BIN, an older gateway, in the same rounds ("before" rows)
#   --before-rev REV build revision REV (git archive, RelWithDebInfo) and use it as --before
#   --png FILE       where to draw the chart (default bench/e2e.png)
#   --replot         no runs: the table and the chart again, from the last run's
#                    build-bench/e2e/runs.tsv
#   --perf           no table: one run of GATEWAY, durability disk, QoS 1 at 10 000/s,
#                    under perf record; prints where its CPU went (threads, libraries,
#                    functions). PERF_SCENARIO (q0-paced, q1-paced, q0-max, q1-max) and
#                    PERF_SUBJECT (disk, memory) choose another run
#
# What runs. The subjects take the same load from the same mosquitto, one at a
# time: the bare subscriber (bench/bare_sub.c: the gateway's Paho library and
# session settings, receives and discards), tumblegate with durability: disk
# (the default) and with durability: memory, and the --before binary's two
# modes. Runs are interleaved - round 1: bare, disk, memory, [before disk,
# before memory], round 2: the same... - so that each round's ratios compare
# minutes of the same machine load. The ratio is a gateway's CPU per reading
# over the bare subscriber's of the same round, and the table shows the median
# of those ratios; the CPU per reading shown is the median over rounds.
#
# The load: 100 sensors, tumblegate-sim --format json --fields 1 (payloads of
# 77-79 bytes, e.g. {"sensor":"sensor-p0-0007","ts":1796266759618,"temperature":19.238617251941058}),
# each on its own MQTT topic, in four scenarios:
#   QoS 0 paced   25 000 readings/s (2 publishers of 50 sensors at 250/s each), 10 s
#   QoS 1 paced   10 000 readings/s (2 publishers of 50 sensors at 100/s each), 10 s
#   QoS 0 max     200 000 readings, 4 publishers of 25 sensors, --fast
#   QoS 1 max     200 000 readings, 4 publishers of 25 sensors, --fast
# The highest rate with no loss is found by publishing as fast as the
# publishers can (not by stepping the rate): the rate shown is readings over
# the time from the publishers' start to the subject being done, and it
# counts as "no loss" only where the loss column says 0. mosquitto queues up
# to 1 000 000 messages per client (deploy/stack.sh), so a subject slower than
# the publishers loses nothing here: it drains a backlog at its own best rate,
# which is what this measures. Four publishers out-publish every subject
# (about 28 000/s at QoS 1, 90 000/s at QoS 0 on the 2-core CI machine), but
# they share the cores with mosquitto, the subject and Kafka, so the rate is
# what is left of a busy machine, not a property of the subject alone.
#
# Per run. CPU is the subject's process user + system time (all threads) from
# its granted subscription until it is done: the bare subscriber has every
# reading (its own getrusage; the time of that reading's arrival ends the
# run); the gateway has every reading received and confirmed by Kafka,
# in_flight 0 (/proc/PID/stat, polled with /metrics every 0.1 s once the
# publishers have finished). Start-up and shutdown are outside.
# Divided by readings received (bare) or confirmed on the raw topic (gateway).
# RSS is the peak (VmHWM / ru_maxrss) over the process's life. Loss is
# readings the publishers had confirmed and the subject did not get (the
# gateway: did not get confirmed by Kafka) within 5 s of the last arrival.
# The publishers' CPU is not measured. Kafka (the real broker's JVM, or the
# mock) runs on the same two cores: it is load, not part of the figure.
#
# Results: the table on stdout (paste it into bench/RESULTS.md with the chart),
# every run's figures in build-bench/e2e/runs.tsv, the chart in --png.
# The local stack is started if needed (ports from TG_MQTT_PORT,
# TG_KAFKA_PORT... as deploy/stack.sh reads them) and left running:
# deploy/stack.sh stop.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
source "$repo_dir/deploy/lib.sh"
log() { printf 'bench/e2e.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

reps="" quick=0 mock=0 before="" before_rev="" png=$repo_dir/bench/e2e.png gateway="" replot=0 perf=0
while (($#)); do
	case $1 in
	-n) reps=$2 && shift ;;
	--replot) replot=1 ;;
	--perf) perf=1 ;;
	--quick) quick=1 ;;
	--mock) mock=1 ;;
	--before) before=$(realpath "$2") && shift ;;
	--before-rev) before_rev=$2 && shift ;;
	--png) png=$(realpath -m "$2") && shift ;;
	-h | --help)
		sed -n '5,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*) gateway=$(realpath "$1") ;;
	esac
	shift
done
# Five rounds take about 10 minutes; with --before's two more subjects, three
# rounds about as long.
default_reps=5
[[ -n $before || -n $before_rev ]] && default_reps=3
reps=${reps:-$default_reps}
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "-n wants a number of rounds, got '$reps'"
paced_s=10 max_readings=200000 idle_s=5
if ((quick)); then
	reps=1 paced_s=4 max_readings=100000
fi
out=$repo_dir/build-bench/e2e
mkdir -p "$out"

if ! command -v gnuplot >/dev/null 2>&1; then
	log "installing gnuplot-nox for the chart (a benchmark-only dependency)"
	tg_sudo_init
	"${sudo_cmd[@]}" apt-get install -y -qq gnuplot-nox >/dev/null
fi

# --- the table and the chart --------------------------------------------------

# report: the table from build-bench/e2e/runs.tsv on stdout, and the chart.
report() {
	local c tic j nsubj cpu_plot="" ratio_plot="" rate_plot="" subj
	[[ -s $out/runs.tsv && -s $out/head.txt ]] || die "nothing measured yet in $out"
	cat "$out/head.txt"
	awk -F'\t' -v dat="$out/e2e.dat" '
		function median(list,    n, a, i, j, t) {
			n = split(list, a, " ")
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		{
			k = $2 SUBSEP $3
			if (!($2 in sseen)) { sseen[$2] = 1; scen[++ns] = $2 }
			if (!($3 in jseen)) { jseen[$3] = 1; subj[++nj] = $3 }
			us = $6 ? $7 / $6 : 0
			uspr[$1 SUBSEP k] = us
			ratepr[$1 SUBSEP k] = $6 / $8
			cpu[k] = cpu[k] " " us
			rate[k] = rate[k] " " ($6 / $8)
			rss[k] = rss[k] " " $9
			lost = $5 - $6; if (lost < 0) lost = 0
			if (lost > maxlost[k]) maxlost[k] = lost
			if ($5 && lost / $5 > maxlossp[k]) maxlossp[k] = lost / $5
			round[k] = round[k] " " $1
		}
		END {
			name["q0-paced"] = "QoS 0, 25 000/s"; name["q1-paced"] = "QoS 1, 10 000/s"
			name["q0-max"] = "QoS 0, max no loss"; name["q1-max"] = "QoS 1, max no loss"
			printf "%-20s %-14s %11s %7s %11s %10s %9s %9s  %s\n", "load", "subject", "CPU us/read",
			       "ratio", "(range)", "readings/s", "rate/bare", "RSS MiB", "loss (worst round)"
			for (s = 1; s <= ns; s++) {
				sc = scen[s]; line = "\"" name[sc] "\""
				for (j = 1; j <= nj; j++) {
					k = sc SUBSEP subj[j]
					ratios = rates = ""; lo = hi = 0
					n = split(round[k], rr, " ")
					for (i = 1; i <= n; i++) {
						b = uspr[rr[i] SUBSEP sc SUBSEP "bare"]
						if (b <= 0) continue
						x = uspr[rr[i] SUBSEP k] / b
						ratios = ratios " " x
						if (lo == 0 || x < lo) lo = x
						if (x > hi) hi = x
						rates = rates " " ratepr[rr[i] SUBSEP k] / ratepr[rr[i] SUBSEP sc SUBSEP "bare"]
					}
					m = median(cpu[k]); q = ratios == "" ? 0 : median(ratios); rt = median(rate[k])
					printf "%-20s %-14s %11.1f %6.2fx %11s %10.0f %8.0f%% %9.1f  %s\n", j == 1 ? name[sc] : "",
					       subj[j], m, q, sprintf("%.2f-%.2f", lo, hi), rt,
					       rates == "" ? 0 : 100 * median(rates), median(rss[k]) / 1024,
					       maxlost[k] ? sprintf("%d (%.2f %%)", maxlost[k], 100 * maxlossp[k]) : "0"
					line = line sprintf(" %.2f %.3f %.0f", m, q, rt)
				}
				print line > dat
			}
			printf "# subjects:" > dat
			for (j = 1; j <= nj; j++) printf " \"%s\"", subj[j] > dat
			print "" > dat
		}' "$out/runs.tsv"
	echo "# ratio: CPU per reading over the bare subscriber's in the same round, median (and range) over rounds;"
	echo "# rate/bare: readings/s over the bare subscriber's in the same round, median (the paced rows: all at the publishers' pace)"

	# The chart: CPU per reading, ratio to the bare subscriber (with the issue's
	# targets), and the highest rate with no loss, one cluster per load.
	grep 'max no loss' "$out/e2e.dat" >"$out/e2e-max.dat"
	mapfile -t subj < <(sed -n 's/^# subjects: //p' "$out/e2e.dat" | grep -o '"[^"]*"' | tr -d '"')
	nsubj=${#subj[@]}
	for ((j = 0; j < nsubj; j++)); do
		c=$((2 + 3 * j)) tic=""
		if ((j == 0)); then tic=:xtic\(1\); fi
		cpu_plot+="${cpu_plot:+, }'$out/e2e.dat' using $c$tic title '${subj[j]}' ls $((j + 1))"
		rate_plot+="${rate_plot:+, }'$out/e2e-max.dat' using (\$$((c + 2))/1000)$tic title '${subj[j]}' ls $((j + 1))"
		if ((j > 0)); then
			tic=""
			if ((j == 1)); then tic=:xtic\(1\); fi
			ratio_plot+="${ratio_plot:+, }'$out/e2e.dat' using $((c + 1))$tic title '${subj[j]}' ls $((j + 1))"
		fi
	done
	gnuplot <<EOF
set terminal pngcairo size 1500,560 font ",10" noenhanced
set output '$png'
set multiplot layout 1,3 title "$(sed -n 2p "$out/head.txt" | sed 's/^## //; s/"//g')\\n$(sed -n 1p "$out/head.txt" | sed 's/^# //'); $(sed -n 4p "$out/head.txt" | sed 's/^# //; s/ (1, 5, 15 min)//')"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key below horizontal width 2
set xtics rotate by -20
set yrange [0:*]
set style line 1 lc rgb '#7f7f7f'
set style line 2 lc rgb '#1f77b4'
set style line 3 lc rgb '#2ca02c'
set style line 4 lc rgb '#aec7e8'
set style line 5 lc rgb '#98df8a'
set xrange [-0.6:3.6]
set title 'CPU per reading (us, median)'
plot $cpu_plot
set title 'ratio to the bare subscriber (median); targets 1.3 disk, 1.15 memory'
plot $ratio_plot, 1.3 with lines lc rgb '#1f77b4' dt 2 notitle, 1.15 with lines lc rgb '#2ca02c' dt 2 notitle
set xrange [-0.6:1.6]
set title 'highest rate with no loss (k readings/s, median)'
plot $rate_plot
unset multiplot
EOF
	log "chart: $png; every run: $out/runs.tsv"
}

if ((replot)); then
	report
	exit 0
fi

# --- builds -----------------------------------------------------------------

build=$repo_dir/build
if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
	cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=(tumblegate-sim bare_sub)
((mock)) && targets+=(mock_kafka)
[[ -z $gateway ]] && targets+=(tumblegate)
cmake --build "$build" --target "${targets[@]}" >/dev/null
gateway=${gateway:-$build/gateway/tumblegate}
sim=$build/firmware-sim/tumblegate-sim
bare_sub=$build/bench/bare_sub
[[ -x $gateway ]] || die "no gateway binary at $gateway"

# A revision built whole from git archive, the way bench/codec_ab.sh does, in
# the same build type as the default gateway so that the two compare.
if [[ -n $before_rev ]]; then
	[[ -z $before ]] || die "--before and --before-rev: one or the other"
	sha=$(git -C "$repo_dir" rev-parse --short "$before_rev^{commit}") || die "no revision '$before_rev'"
	rev_dir=$repo_dir/build-bench/e2e-rev-$sha
	if [[ ! -x $rev_dir/build/gateway/tumblegate ]]; then
		log "building $before_rev ($sha) in $rev_dir"
		rm -rf "$rev_dir"
		mkdir -p "$rev_dir/src"
		git -C "$repo_dir" archive "$sha" | tar -x -C "$rev_dir/src"
		cmake -S "$rev_dir/src" -B "$rev_dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
			-DBUILD_TESTING=OFF >/dev/null
		cmake --build "$rev_dir/build" --target tumblegate >/dev/null
	fi
	before=$rev_dir/build/gateway/tumblegate
fi
[[ -z $before || -x $before ]] || die "no gateway binary at $before"

# --- the stack --------------------------------------------------------------

stamp=$(date +%s)
topic_base=e2e-$stamp
if ((mock)); then
	"$repo_dir/deploy/stack.sh" start mqtt >/dev/null
else
	"$repo_dir/deploy/stack.sh" start >/dev/null
fi
eval "$("$repo_dir/deploy/stack.sh" env)"

# Ours to stop on exit: the mock cluster, and the current run's subject and
# publishers (emptied after each run, whose processes have been waited for, so
# that no pid that may since belong to someone else is ever signalled).
mock_pid="" pids=()
cleanup() {
	local p
	for p in "${pids[@]}" $mock_pid; do
		kill -TERM "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kafka=$TG_KAFKA_BROKERS
mqtt_hostport=${TG_MQTT_URI#*://}
mqtt_host=${mqtt_hostport%:*} mqtt_port=${mqtt_hostport##*:}
gw_extra=()
if ((mock)); then
	# Not a previous run's address: the check below may come before the
	# child has opened (and emptied) the file.
	rm -f "$out/mock.out" "$out/mock.err"
	"$build/bench/mock_kafka" "$topic_base.raw" "$topic_base.agg" "$topic_base.dlq" \
		>"$out/mock.out" 2>"$out/mock.err" &
	mock_pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -s $out/mock.out ]] && break
		sleep 0.1
	done
	kafka=$(head -n 1 "$out/mock.out")
	[[ -n $kafka ]] || die "mock_kafka printed no bootstrap servers: $(cat "$out/mock.err")"
	# The mock broker does not take CreateTopics; mock_kafka made them.
	gw_extra=(--set topics.create=no)
fi

# --- one run ----------------------------------------------------------------

clk=$(getconf CLK_TCK)
proc_cpu_us() { awk -v clk="$clk" '{ printf "%.0f\n", ($14 + $15) * 1e6 / clk }' "/proc/$1/stat"; }

# metric NAME FILE: the sum of a metric's samples in a /metrics scrape.
metric() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }' "$2"; }

# publishers N SENSORS_EACH QOS RATE DURATION FAST PREFIX DIR: starts N
# simulators in the background, their pids in pub_pids.
publishers() {
	local n=$1 each=$2 qos=$3 rate=$4 dur=$5 fast=$6 prefix=$7 dir=$8 p
	pub_pids=()
	for ((p = 0; p < n; p++)); do
		"$sim" --uri "$TG_MQTT_URI" --client-id "$prefix-pub$p" --topic-prefix "$prefix" \
			--id-prefix "sensor-p$p-" --sensors "$each" --rate "$rate" --duration "$dur" \
			--qos "$qos" --format json --fields 1 --seed $((p + 1)) --quiet $fast \
			>"$dir/pub$p.log" 2>&1 &
		pub_pids+=($!)
		pids+=($!)
	done
}

# published DIR: readings the publishers had confirmed (QoS 1: acknowledged by
# mosquitto; QoS 0: written to the connection).
published() { cat "$1"/pub*.log | sed -n 's/.* summary: published=[0-9]* confirmed=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'; }

# run ROUND SCENARIO SUBJECT: one subject under one scenario; appends a line to runs.tsv.
run() {
	local round=$1 scen=$2 subject=$3 qos npub each rate dur fast expect id dir bin mode
	local pid t0 t1 cpu0 cpu1 got rss port last_change seen_r seen_f now sent r f infl rc

	case $scen in
	q0-paced) qos=0 npub=2 each=50 rate=250 dur=$paced_s fast="" ;;
	q1-paced) qos=1 npub=2 each=50 rate=100 dur=$paced_s fast="" ;;
	q0-max) qos=0 npub=4 each=25 rate=100 dur=$((max_readings / 10000)) fast=--fast ;;
	q1-max) qos=1 npub=4 each=25 rate=100 dur=$((max_readings / 10000)) fast=--fast ;;
	esac
	expect=$((npub * each * rate * dur))
	if [[ -n $mock_pid ]] && ! kill -0 "$mock_pid" 2>/dev/null; then
		die "mock_kafka has exited: $(cat "$out/mock.err")"
	fi
	id=$topic_base-$round-$scen-${subject/ /-}
	dir=$out/runs/$id
	mkdir -p "$dir"

	if [[ $subject == bare ]]; then
		"$bare_sub" "$TG_MQTT_URI" "$id" "$id/+/telemetry" "$qos" "$expect" "$idle_s" \
			>"$dir/sub.out" 2>"$dir/sub.err" &
		pid=$!
		pids+=($pid)
		for ((i = 0; i < 300; i++)); do
			grep -qs '^subscribed' "$dir/sub.out" && break
			kill -0 "$pid" 2>/dev/null || die "bare_sub failed: $(cat "$dir/sub.err")"
			sleep 0.05
		done
		t0=$EPOCHREALTIME
		publishers "$npub" "$each" "$qos" "$rate" "$dur" "$fast" "$id" "$dir"
		wait "${pub_pids[@]}" || true
		rc=0
		wait "$pid" || rc=$?
		((rc == 0)) || log "$id: bare_sub exited $rc: $(cat "$dir/sub.err")"
		# The end: the last reading's arrival, as bare_sub saw it, not its
		# exit, which waits for the MQTT disconnect.
		read -r _ got _ cpu1 _ rss _ t1 < <(grep '^received' "$dir/sub.out")
		cpu0=0
	else
		bin=$gateway
		[[ $subject == before* ]] && bin=$before
		mode=${subject#before }
		"$bin" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$id" \
			--set "mqtt.topic=$id/+/telemetry" --set "mqtt.qos=$qos" \
			--set "kafka.bootstrap.servers=$kafka" --set "topics.raw=$topic_base.raw" \
			--set "topics.agg=$topic_base.agg" --set "topics.dlq=$topic_base.dlq" \
			--set "state.dir=$dir/state" --set "durability=$mode" \
			--set "metrics.listen=127.0.0.1:0" --set "shutdown.timeout=10s" \
			"${gw_extra[@]}" >"$dir/gw.log" 2>&1 &
		pid=$!
		pids+=($pid)
		gateway_wait "$id" "$dir"
		if ((perf)); then
			perf record -F 997 -g -p "$pid" -o "$dir/perf.data" >"$dir/perf.log" 2>&1 &
			perf_pid=$!
			pids+=($perf_pid)
			sleep 0.5 # perf attaches to every thread
		fi
		cpu0=$(proc_cpu_us "$pid")
		t0=$EPOCHREALTIME
		publishers "$npub" "$each" "$qos" "$rate" "$dur" "$fast" "$id" "$dir"
		wait "${pub_pids[@]}" || true
		sent=$(published "$dir")
		seen_r=-1 seen_f=-1 last_change=$SECONDS
		while :; do
			curl -s --max-time 2 "http://127.0.0.1:$port/metrics" >"$dir/metrics" || true
			r=$(metric tumblegate_messages_received_total "$dir/metrics")
			f=$(metric tumblegate_messages_forwarded_total "$dir/metrics")
			infl=$(metric tumblegate_messages_in_flight "$dir/metrics")
			now=$EPOCHREALTIME
			((r >= sent && infl == 0 && f > 0)) && break
			if ((r != seen_r || f != seen_f)); then
				seen_r=$r seen_f=$f last_change=$SECONDS
			elif ((SECONDS - last_change >= idle_s)); then
				break
			fi
			sleep 0.1
		done
		cpu1=$(proc_cpu_us "$pid")
		t1=$now
		got=$f
		rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
		if ((perf)); then
			kill -INT "$perf_pid"
			wait "$perf_pid" || true
			perf_data=$dir/perf.data
		fi
		kill -TERM "$pid"
		wait "$pid" || log "$id: the gateway exited $? on SIGTERM; see $dir/gw.log"
	fi
	sent=$(published "$dir")
	# The subject's persistent session would stay in mosquitto (and its
	# database) for good: a clean-session connect with its client id ends it.
	mosquitto_sub -h "$mqtt_host" -p "$mqtt_port" -i "$id" -t "$id/end" -E -W 5 >/dev/null 2>&1 ||
		log "$id: could not end the MQTT session"
	printf '%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.6f\t%d\t%s\n' "$round" "$scen" "$subject" "$expect" \
		"$sent" "$got" $((cpu1 - cpu0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$rss" \
		"$(cut -d' ' -f1 /proc/loadavg)" >>"$runs_tsv"
	tail -n 1 "$runs_tsv" | awk -F'\t' -v dir="$dir" '{ printf "bench/e2e.sh: round %s %-8s %-13s %7d/%-7d readings %6.1f us/reading %7.0f/s  %5.1f MiB  load %s%s\n",
		$1, $2, $3, $6, $5, $6 ? $7 / $6 : 0, $6 / $8, $9 / 1024, $10, $6 < $5 ? "  LOSS: see " dir : "" }' >&2
	rm -rf "$dir/state"
	pids=()
}

# --- a profile --------------------------------------------------------------

# perf_top SORT N: the first N lines of a flat perf report sorted by SORT.
perf_top() {
	perf report -i "$perf_data" --stdio --no-children -g none --percent-limit 0.5 --sort "$1" 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -n "$2"
}

if ((perf)); then
	command -v perf >/dev/null 2>&1 || die "--perf needs perf (apt-get install linux-perf)"
	runs_tsv=$out/perf-run.tsv
	rm -f "$runs_tsv"
	perf_data=""
	perf_scen=${PERF_SCENARIO:-q1-paced} perf_subject=${PERF_SUBJECT:-disk}
	run 1 "$perf_scen" "$perf_subject"
	[[ -s $perf_data ]] || die "perf recorded nothing; see $out/runs/*/perf.log"
	bench_machine
	echo "## where the gateway's CPU goes, durability $perf_subject, $perf_scen: bench/e2e.sh --perf"
	echo "# load average $(cut -d' ' -f1-3 /proc/loadavg); samples of the gateway's process, every thread, user and kernel"
	echo "### by thread"
	perf_top comm 12
	echo "### by library (kernel: [kernel.kallsyms])"
	perf_top dso 12
	echo "### by function"
	perf_top dso,sym 30
	exit 0
fi

# --- the rounds -------------------------------------------------------------

subjects=(bare disk memory)
[[ -n $before ]] && subjects+=("before disk" "before memory")
scenarios=(q0-paced q1-paced q0-max q1-max)
runs_tsv=$out/runs.tsv
rm -f "$runs_tsv"
rm -rf "$out/runs"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
began=$SECONDS
for ((round = 1; round <= reps; round++)); do
	for scen in "${scenarios[@]}"; do
		for subject in "${subjects[@]}"; do
			run "$round" "$scen" "$subject"
		done
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

command=bench/e2e.sh
((reps != default_reps && !quick)) && command+=" -n $reps"
((quick)) && command+=" --quick"
((mock)) && command+=" --mock"
[[ -n $before_rev ]] && command+=" --before-rev $before_rev"
[[ -n $before && -z $before_rev ]] && command+=" --before $before"
kafka_kind="real broker (deploy/stack.sh)"
((mock)) && kafka_kind="librdkafka mock cluster (own process)"
{
	bench_machine
	echo "## end to end against a bare Paho subscriber: $command"
	echo "# gateway ${gateway#"$repo_dir"/}${before:+, before ${before#"$repo_dir"/}}; Kafka: $kafka_kind"
	echo "# $reps round(s) in $((SECONDS - began)) s; load average (1, 5, 15 min) at start $load_start, at end $load_end"
} >"$out/head.txt"
report
