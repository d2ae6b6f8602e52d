#!/usr/bin/env bash
# test_state_disk_full.sh - state.dir on a 3 MiB disk, smaller than one spool segment: input never stalls for good, and readiness says when it is held.
# SPDX-License-Identifier: Apache-2.0
#
# The state directory is a 3 MiB tmpfs; spool.segment_bytes keeps its default
# (8 MiB), so the first segment can never fill up and be released the usual
# way. 50 000 readings at QoS 1, as fast as the stack allows, with Kafka up:
# everything spooled is soon confirmed, so the spool must free its own space
# (issue 12 item 2) and nobody frees any for it. Checked:
#
#  - every reading is on the raw topic exactly once (no duplicates, none
#    missing) and every aggregate equals the truth, within 120 s of the last
#    publish;
#  - /readyz and /metrics are polled every 0.5 s throughout. Every scrape has
#    the gauge tumblegate_input_held. Wherever input is held, seen from the
#    outside as `received` standing still for 3 s or more while readings wait
#    in the broker, /readyz answers 503 with a reason naming the spool or
#    the disk, and tumblegate_input_held is 1 (the edge samples of such a
#    stretch are not judged: the gateway may change its mind between two
#    requests);
#  - at the end input is not held and /readyz says ready.
#
# The checks are collected and reported together after the verification.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

teardown() {
	if [[ -n ${poller_pid:-} ]]; then kill "$poller_pid" 2>/dev/null || true; fi
	if [[ -n $gateway_pid ]]; then
		kill -KILL "$gateway_pid" 2>/dev/null || true
		wait "$gateway_pid" 2>/dev/null || true
		gateway_pid=
	fi
	if mountpoint -q "$work/state"; then umount "$work/state" || log "could not unmount $work/state"; fi
	cleanup
}
trap teardown EXIT

mkdir -p "$work/state"
mount -t tmpfs -o size=3m tmpfs "$work/state" || fail "cannot mount a 3 MiB tmpfs on $work/state (run as root)"
log "state.dir on a $(df -k --output=size "$work/state" | tail -n 1 | tr -d ' ') KiB tmpfs"

gateway_start --set window.idle_timeout=3s
expect_readyz 200 ready
metrics=$(metrics_url) readyz=$(metrics_url /readyz)

# One line per sample: number, time (ms since the epoch), /readyz status,
# /metrics status; the bodies in r.N and m.N.
poller() {
	local n=0 t rc mc
	while :; do
		t=$(($(date +%s%N) / 1000000))
		rc=$(curl -s --max-time 1 -o "$work/r.$n" -w '%{http_code}' "$readyz") || rc=000
		mc=$(curl -s --max-time 1 -o "$work/m.$n" -w '%{http_code}' "$metrics") || mc=000
		printf '%d %d %s %s\n' "$n" "$t" "$rc" "$mc" >>"$work/samples"
		n=$((n + 1))
		sleep 0.5
	done
}
poller &
poller_pid=$!

# Whole windows: 50 sensors x 100 s of event time at 10 Hz, an hour ago.
start_ms=$((($(date +%s) - 3600) / 10 * 10000))
sim --sensors 50 --rate 10 --duration 100 --fast --qos 1 --seed 61 --quiet \
	--start-ms "$start_ms" --truth "$work/truth.jsonl" || fail "simulator failed"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 50000)) || fail "simulator confirmed $readings readings, want 50000"
log "simulator done: $readings readings published"

problems=()
verify -t "$work/truth.jsonl" -w 10000 -T 120 -s 4 2>"$work/verify.log" ||
	problems+=("Kafka does not match the truth 120 s after the last publish: $(grep -m 1 'raw topic' "$work/verify.log")")
cat "$work/verify.log" >&2
kill "$poller_pid"
wait "$poller_pid" 2>/dev/null || true
poller_pid=

# The samples: value of received (-1 when /metrics did not answer), of
# tumblegate_input_held (-1 when absent), /readyz status and body.
no_gauge=0 answered=0
declare -a taken held rstat rbody
while read -r n t rc mc; do
	rstat[n]=$rc
	rbody[n]=$(head -c 200 "$work/r.$n" 2>/dev/null | tr '\n' ' ')
	taken[n]=-1 held[n]=-1
	[[ $mc == 200 ]] || continue
	answered=$((answered + 1))
	taken[n]=$(metric "$work/m.$n" tumblegate_messages_received_total)
	held[n]=$( (metric "$work/m.$n" tumblegate_input_held) 2>/dev/null) || {
		held[n]=-1
		no_gauge=$((no_gauge + 1))
	}
done <"$work/samples"
samples=${#rstat[@]}
((answered >= samples * 9 / 10)) || problems+=("/metrics answered $answered of $samples polls")
((no_gauge == 0)) || problems+=("no tumblegate_input_held gauge in $no_gauge of $answered scrapes")

# Stretches where received stands still (>= 3 s, below the total, after the
# first message): input held, whatever the gateway says.
stretches=0 judged=0 wrong=0 first_wrong=
n=0
while ((n < samples)); do
	v=${taken[n]}
	if ((v <= 0 || v >= readings)); then
		n=$((n + 1))
		continue
	fi
	e=$n
	while ((e + 1 < samples)) && [[ ${taken[e + 1]} == "$v" ]]; do e=$((e + 1)); done
	t0=$(sed -n "$((n + 1))p" "$work/samples" | cut -d' ' -f2)
	t1=$(sed -n "$((e + 1))p" "$work/samples" | cut -d' ' -f2)
	if ((t1 - t0 >= 3000)); then
		stretches=$((stretches + 1))
		log "received stood still at $v for $((t1 - t0)) ms (samples $n..$e)"
		for ((i = n + 1; i < e; i++)); do
			judged=$((judged + 1))
			if [[ ${rstat[i]} != 503 || ! ${rbody[i]} =~ (spool|disk) || ${held[i]} != 1 ]]; then
				wrong=$((wrong + 1))
				[[ -n $first_wrong ]] ||
					first_wrong="sample $i, received $v: /readyz ${rstat[i]} '${rbody[i]}', tumblegate_input_held ${held[i]}"
			fi
		done
	fi
	n=$((e + 1))
done
log "$samples polls; $stretches stretch(es) of input held, $judged sample(s) judged, $wrong wrong"
((wrong == 0)) ||
	problems+=("input held but not said so in $wrong of $judged samples; first: $first_wrong")

last=$((samples - 1))
[[ ${rstat[last]} == 200 && ${held[last]} == 0 ]] ||
	problems+=("at the end: /readyz ${rstat[last]} '${rbody[last]}', tumblegate_input_held ${held[last]}, want 200 and 0")
# 50 000 readings take about 8 MiB of spool: the disk must have filled.
holds=$(grep -c 'spool full (No space left on device): not acknowledging' "$work/gateway.log" || true)
((holds >= 1)) || problems+=("the spool never found the disk full: the test did not test it")
resumes=$(grep -c 'spool has room again' "$work/gateway.log" || true)
((resumes == holds)) || problems+=("input held $holds time(s) but resumed $resumes time(s)")
nospace=$(grep -c 'No space left on device' "$work/gateway.log" || true)
log "gateway log: $nospace line(s) with 'No space left on device'; last stats: $(grep -o 'stats: received=[0-9]*.*in_flight=[0-9]*' "$work/gateway.log" | tail -n 1)"

if ((${#problems[@]})); then
	for p in "${problems[@]}"; do log "problem: $p"; done
	fail "${#problems[@]} problem(s) with the state disk smaller than a segment; first: ${problems[0]}"
fi
gateway_stop
log "PASS: $readings readings through a 3 MiB state disk, all delivered once, aggregates exact; the disk full $holds time(s), input resumed by itself each time; $stretches hold(s) of 3 s or more seen outside, each reported"
