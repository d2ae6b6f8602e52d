#!/usr/bin/env bash
# test_memory_outage.sh - durability memory through a Kafka outage: direct while Kafka keeps up, spooled while it does not.
# SPDX-License-Identifier: Apache-2.0
#
# With durability memory the gateway writes nothing per reading while Kafka
# keeps up. During an outage librdkafka's queue fills to its high-water mark
# (50 000 records), then messages go to the spool (no fsync) until Kafka is
# back and the spool is drained, and the gateway returns to the direct path.
# Every reading must arrive once and every window be exact.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
gateway_start --set durability=memory --set window.idle_timeout=5s
# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 7200) / 10 * 10000 ))
part() { # part N SECONDS: N-th stretch of event time for 30 sensors at 10 Hz
	sim --sensors 30 --rate 10 --duration "$2" --fast --qos 1 --seed "$1" --quiet \
		--start-ms "$((start_ms + offset))" --truth "$work/truth-$1.jsonl" ||
		fail "simulator part $1 failed"
	offset=$((offset + $2 * 1000))
}
offset=0
part 1 20
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
part 2 200
wait_log "spooling messages until" 30
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
wait_log "delivered_raw=66000 " 180
part 3 20
wait_log "spool drained" 30
cat "$work"/truth-{1,2,3}.jsonl >"$work/truth.jsonl"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 72000)) || fail "simulators confirmed $readings readings, want 72000"
verify -t "$work/truth.jsonl" -w 10000 -T 240 -s 4 || fail "Kafka does not match the truth"
gateway_stop
log "PASS: $readings readings with durability memory through an outage: spooled past 50 000 queued, drained, exact"
