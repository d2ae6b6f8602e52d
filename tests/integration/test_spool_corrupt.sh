#!/usr/bin/env bash
# test_spool_corrupt.sh - bytes flipped in a spool segment: CRC catches it, damaged records set aside, the rest delivered.
# SPDX-License-Identifier: Apache-2.0
#
# Kafka is down while 3 000 readings are spooled; the gateway is killed, two
# places in the segment are overwritten, and everything is started again. The
# replay must set the damaged records aside (counted, copied under
# spool/corrupt/), deliver every other reading once, and compute the windows
# from exactly the readings that survived.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
opts=(--set window.idle_timeout=3s --set checkpoint.interval=1h)
gateway_start "${opts[@]}"
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
# Whole windows per part: an idle close between parts then changes nothing.
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
sim --sensors 30 --rate 10 --duration 10 --fast --qos 1 --seed 41 --quiet \
	--start-ms "$start_ms" --truth "$work/truth.jsonl" || fail "simulator failed"
sleep 3
gateway_kill
seg=$(ls "$work"/state/spool/*.seg | head -n 1)
# A segment is allocated whole and the records fill it from the start; the
# rest is zeros. Its non-zero bytes number fewer than the records' bytes, so
# a third and two thirds of that count fall among the records.
size=$(tr -d '\000' <"$seg" | wc -c)
((size > 100000)) || fail "spool segment holds only $size non-zero bytes"
for at in $((size / 3)) $((2 * size / 3)); do
	printf '\xff\xff\xff\xff\xff\xff\xff\xff' |
		dd of="$seg" bs=1 seek="$at" conv=notrunc status=none
done
log "flipped 2 x 8 bytes in $(basename "$seg") ($size non-zero bytes)"
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
gateway_start "${opts[@]}"

verify -t "$work/truth.jsonl" -w 10000 -T 240 -s 4 -M 4 2>&1 | tee "$work/verify.log" >&2 ||
	fail "Kafka does not match the surviving readings"
missing=$(grep -c "allowed missing reading" "$work/verify.log" || true)
((missing >= 1)) || fail "no reading missing: the damage went unnoticed?"
set_aside=$(ls "$work/state/spool/corrupt" | wc -l)
((set_aside >= 1)) || fail "nothing set aside under spool/corrupt"
gateway_stop
log "PASS: $missing damaged reading(s) set aside ($set_aside file(s)), the other $(( $(wc -l <"$work/truth.jsonl") - missing )) delivered, windows exact"
