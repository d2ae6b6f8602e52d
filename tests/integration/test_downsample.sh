#!/usr/bin/env bash
# test_downsample.sh - swinging-door compression through three SIGKILLs: topics.compressed holds exactly the uninterrupted series, within the deviation of every reading.
# SPDX-License-Identifier: Apache-2.0
#
# forward.mode swinging-door (deviation 0.1, maximum silence 5 s) with
# topics.compressed set: topics.raw must still carry every reading, and the
# compressed topic the kept points (docs/downsample.md). 20 sensors publish
# in real time at 10 Hz, QoS 1, for 30 s while the gateway is SIGKILLed
# three times and restarted; each restart restores the compressors' state
# from the window checkpoint (5.1) and replays the spool after it. tg-verify
# then requires the compressed topic to hold exactly the points one
# uninterrupted compressor gives for the truth (repeats from replays
# allowed), and every reading within 0.1 of the line through them. A lost
# or stale state would keep points an uninterrupted run does not. The
# verifier must also fail when told another deviation.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

opts=(--set forward.mode=swinging-door --set forward.deviation=0.1 --set forward.max_silence=5s
	--set "topics.compressed=$run_id.compressed" --set checkpoint.interval=2s
	--set window.idle_timeout=4s)
gateway_start "${opts[@]}"
grep -q "raw forwarding: [0-9]* bytes for 10000 sensors of 4 fields" "$work/gateway.log" ||
	fail "no start-up line with the compressors' memory"
sim --sensors 20 --rate 10 --duration 30 --qos 1 --seed 15 --quiet \
	--start-ms "$(($(date +%s) * 1000))" --truth "$work/truth.jsonl" &
sim_pid=$!
crash_restarts 3 4 1 "${opts[@]}"
wait "$sim_pid" || fail "simulator failed"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 6000)) || fail "simulator confirmed $readings readings, want 6000"
restored=$(grep -c "restored open windows" "$work/gateway.log" || true)
((restored >= 2)) || fail "only $restored restart(s) restored a checkpoint"

verify -t "$work/truth.jsonl" -w 10000 -T 120 -s 4 -d -c "$run_id.compressed" \
	-C swinging-door,0.1,5000 2>&1 | tee "$work/verify.log" >&2 ||
	fail "Kafka does not match the truth"
points=$(sed -n 's/.*compressed: \([0-9]*\) points (want \1).*/\1/p' "$work/verify.log")
[[ -n $points ]] || fail "no compressed point count from the verifier"
((points > 1000 && points < 3 * readings / 2)) ||
	fail "$points points for $readings readings of 3 fields: not compressing?"

scrape "$work/final" >/dev/null
check_accounting "$work/final"
held=$(metric "$work/final" tumblegate_raw_values_total 'outcome="held_back"')
((held > 0)) || fail "no values held back according to the metrics"

# The verifier must be able to fail: the same topic against another deviation.
if verify -t "$work/truth.jsonl" -w 10000 -T 60 -s 2 -d -c "$run_id.compressed" \
	-C swinging-door,0.2,5000 2>"$work/neg.log"; then
	fail "verifier passed with the deviation changed"
fi
grep -q "compressed: .*\(missing\|unexpected\)" "$work/neg.log" || fail "wrong failure: $(tail -n 3 "$work/neg.log")"
gateway_stop
log "PASS: $readings readings through 3 SIGKILLs; $points kept points, exactly the uninterrupted series"
