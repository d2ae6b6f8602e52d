#!/usr/bin/env bash
# test_spool_full.sh - the spool bound reached during a Kafka outage: acks stop, nothing is lost, it recovers by itself.
# SPDX-License-Identifier: Apache-2.0
#
# With a 1 MiB spool and Kafka down, 12 000 readings (about 2.5 MB spooled)
# cannot all be taken: the gateway stops acknowledging (policy block), says
# so once in its log and counts it, and the broker keeps the rest in the
# persistent session. When Kafka returns the spool drains, the gateway takes
# the backlog, and every reading arrives.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
gateway_start --set window.idle_timeout=3s --set spool.max_bytes=1048576 \
	--set spool.segment_bytes=65536 --set checkpoint.interval=500ms
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
sim --sensors 30 --rate 10 --duration 40 --fast --qos 1 --seed 31 --quiet \
	--start-ms "$start_ms" --truth "$work/truth.jsonl" || fail "simulator failed"
wait_log "spool full .*not acknowledging" 30
spool_kb=$(du -sk "$work/state/spool" | cut -f1)
((spool_kb <= 1024 + 128)) || fail "spool grew to $spool_kb KiB past its 1 MiB bound"
log "spool full at $spool_kb KiB; starting kafka"
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
wait_log "spool has room again" 120

verify -t "$work/truth.jsonl" -w 10000 -T 240 -s 4 || fail "Kafka does not match the truth"
gateway_stop
log "PASS: 12000 readings through a full 1 MiB spool: blocked, recovered, all delivered once"
