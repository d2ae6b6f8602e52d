#!/usr/bin/env bash
# test_cluster_leader_kill.sh - 3-broker cluster: the raw topic's partition leader SIGKILLed mid-stream, then restarted: every reading once, aggregates exact.
# SPDX-License-Identifier: Apache-2.0
#
# 30 sensors publish in real time at QoS 1. The broker leading partition 0 of
# the raw topic is SIGKILLed; the cluster (replication factor 3,
# min.insync.replicas=2) elects new leaders among the two left, and the
# gateway's idempotent producer goes on: /readyz must stay honest - ready,
# and readings confirmed while the broker is away. It comes back, catches up,
# and the stream ends. The gateway never crashed, so nothing may be on Kafka
# twice: every reading once, every window once and exact.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster_lib.sh"

gateway_start --set window.idle_timeout=3s
sim_live 21 "$work/truth.jsonl"
sleep 6
check_replication "$run_id.raw" "$run_id.agg"
expect_readyz 200 ready
victim=$(leader_of "$run_id.raw" 0)
[[ $victim =~ ^[123]$ ]] || fail "no leader for $run_id.raw partition 0"
before=$(forwarded "$work/m-before")
stack kill "broker$victim"
log "broker $victim (leader of $run_id.raw/0) killed after $before messages"

# A new leader once the controller fences the dead broker (3 s without a
# heartbeat; longer when it was the active controller too, as a new one is
# elected first); then the gateway delivers with one broker away.
for ((i = 0; i < 60; i++)); do
	leader=$(leader_of "$run_id.raw" 0)
	[[ $leader =~ ^[123]$ && $leader != "$victim" ]] && break
	sleep 0.5
done
[[ $leader != "$victim" ]] || fail "partition 0 has no new leader after 30 s: $(partitions "$run_id.raw" | tr '\n' ';')"
log "broker $leader leads $run_id.raw/0 now"
expect_readyz 200 ready
during=$(forwarded "$work/m-during")
sleep 3
during2=$(forwarded "$work/m-during2")
((during2 > during)) || fail "nothing confirmed with broker $victim away: $during, then $during2"
log "with broker $victim away: $during -> $during2 confirmed, /readyz ready"

stack start "broker$victim"
wait_in_sync 60 "$run_id.raw" "$run_id.agg"
log "broker $victim back and in sync"
sleep 3
sim_end
verify_exact "$work/truth.jsonl"
gateway_stop
log "PASS: $(wc -l <"$work/truth.jsonl") readings through the leader's SIGKILL and restart, each once, aggregates exact"
