#!/usr/bin/env bash
# test_spool_drop.sh - spool.full: drop-oldest during a Kafka outage: acks never stop, the oldest segments go, counted.
# SPDX-License-Identifier: Apache-2.0
#
# The same 1 MiB spool and outage as test_spool_full.sh, with the other
# policy: the gateway keeps acknowledging, deletes its oldest segments with
# an error line each, and at most the messages it reports dropped may be
# missing from Kafka afterwards (those it had already handed to the producer
# still arrive).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
gateway_start --set window.idle_timeout=3s --set spool.max_bytes=1048576 \
	--set spool.segment_bytes=65536 --set checkpoint.interval=500ms --set spool.full=drop-oldest
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
sim --sensors 30 --rate 10 --duration 40 --fast --qos 1 --seed 51 --quiet \
	--start-ms "$start_ms" --truth "$work/truth.jsonl" || fail "simulator failed"
wait_log "dropped spooled messages" 30
grep -q "not acknowledging" "$work/gateway.log" && fail "acks stopped under drop-oldest"
dropped=$(grep -o 'dropped spooled messages [0-9]*\.\.[0-9]*' "$work/gateway.log" |
	awk -F'[ .]+' '{ n += $5 - $4 + 1 } END { print n + 0 }')
((dropped > 0)) || fail "no messages reported dropped"
spool_kb=$(du -sk "$work/state/spool" | cut -f1)
((spool_kb <= 1024 + 128)) || fail "spool grew to $spool_kb KiB past its 1 MiB bound"
"$repo_dir/deploy/stack.sh" start kafka >/dev/null

verify -t "$work/truth.jsonl" -w 10000 -T 240 -s 4 -M "$dropped" 2>&1 | tee "$work/verify.log" >&2 ||
	fail "Kafka does not match the truth less what was dropped"
gateway_stop
log "PASS: drop-oldest dropped $dropped spooled message(s) (spool at $spool_kb KiB); $(grep -c 'allowed missing' "$work/verify.log" || true) reading(s) missing in Kafka"
