#!/usr/bin/env bash
# test_cluster_rolling_restart.sh - 3-broker cluster: every broker restarted in turn mid-stream: every reading once, aggregates exact, /readyz ready throughout.
# SPDX-License-Identifier: Apache-2.0
#
# A rolling restart as operators do it: one broker at a time gets SIGTERM
# (controlled shutdown: its leaderships move first), starts again, and the
# next waits until every replica is back in sync. Readings flow the whole
# time; with two of three brokers up the cluster takes writes, so /readyz
# must say ready and deliveries must go on while each broker is away.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster_lib.sh"

gateway_start --set window.idle_timeout=3s
sim_live 22 "$work/truth.jsonl"
sleep 4
check_replication "$run_id.raw" "$run_id.agg"
for n in 1 2 3; do
	stack stop "broker$n"
	before=$(forwarded "$work/m-$n-a")
	sleep 2
	expect_readyz 200 ready
	after=$(forwarded "$work/m-$n-b")
	((after > before)) || fail "nothing confirmed while broker $n was stopped ($before, $after)"
	stack start "broker$n"
	wait_in_sync 60 "$run_id.raw" "$run_id.agg"
	log "broker $n restarted and in sync ($before -> $after confirmed while it was away)"
done
sleep 2
sim_end
verify_exact "$work/truth.jsonl"
gateway_stop
log "PASS: $(wc -l <"$work/truth.jsonl") readings through a rolling restart of 3 brokers, each once, aggregates exact"
