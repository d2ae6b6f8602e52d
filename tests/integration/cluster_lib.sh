# cluster_lib.sh - helpers for the tests against the 3-broker cluster (deploy/stack.sh start cluster), sourced after lib.sh.
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash

# The gateway, tg-verify and these helpers talk to the cluster.
TG_KAFKA_BROKERS=$TG_CLUSTER_BROKERS
stack() { "$repo_dir/deploy/stack.sh" "$@" >>"$work/stack.log" 2>&1 || fail "deploy/stack.sh $*: $(tail -n 3 "$work/stack.log")"; }

# A test must leave the cluster whole for the next: every broker started
# again, whatever failed.
sim_pid=
cluster_restore() {
	# Under set -e a failed kill here would end the trap before cleanup.
	if [[ -n $sim_pid ]]; then pkill -KILL -P "$sim_pid" || true; fi
	cleanup
	"$repo_dir/deploy/stack.sh" start cluster >/dev/null 2>&1 || true
}
trap cluster_restore EXIT

# partitions TOPIC: one line per partition, "PARTITION LEADER ISR_COUNT
# REPLICA_COUNT", from the cluster's metadata (kcat -L).
partitions() {
	local md
	md=$(kcat -L -b "$TG_KAFKA_BROKERS" -t "$1" -m 5 2>/dev/null) || return 1
	awk '/partition [0-9]+, leader/ {
		p = $2; l = $4; sub(",", "", p); sub(",", "", l)
		r = $0; sub(/.*replicas: /, "", r); sub(/, isrs:.*/, "", r)
		s = $0; sub(/.*isrs: /, "", s); sub(/[^0-9,].*/, "", s)
		print p, l, split(s, a, ","), split(r, b, ",")
	}' <<<"$md"
}

# wait_in_sync SECONDS TOPIC...: every partition of every TOPIC has all 3
# replicas in sync, so the next fault starts from a whole cluster.
wait_in_sync() {
	local seconds=$1 topic i whole
	shift
	for ((i = 0; i < seconds * 2; i++)); do
		whole=1
		for topic in "$@"; do
			[[ -n $(partitions "$topic") && -z $(partitions "$topic" | awk '$3 != 3') ]] || whole=0
		done
		((whole)) && return 0
		sleep 0.5
	done
	fail "replicas of $* not all in sync after $seconds s: $(for t in "$@"; do partitions "$t"; done | tr '\n' ';')"
}

# leader_of TOPIC PARTITION: the broker id leading it.
leader_of() {
	partitions "$1" | awk -v p="$2" '$1 == p { print $2 }'
}

# forwarded [FILE]: scrape /metrics into FILE and check it adds up; prints
# messages forwarded (confirmed by Kafka).
forwarded() {
	local f=${1:-$work/m.$RANDOM}
	[[ $(scrape "$f") == 200 ]] || fail "/metrics did not answer"
	check_accounting "$f"
	metric "$f" tumblegate_messages_forwarded_total
}

# The cluster's topics: replication factor 3, min.insync.replicas=2, as
# deploy/stack.sh configures them; checked on the brokers' real state.
check_replication() {
	local topic n
	for topic in "$@"; do
		[[ -z $(partitions "$topic" | awk '$4 != 3') && -n $(partitions "$topic") ]] ||
			fail "$topic: not 3 replicas per partition: $(partitions "$topic" | tr '\n' ';')"
	done
	for n in 1 2 3; do
		grep -q '^	min.insync.replicas = 2$' "$repo_dir/.stack/cluster/broker$n/logs/server.log" ||
			fail "broker $n does not run with min.insync.replicas = 2"
	done
}

# sim_live SEED TRUTH: 30 sensors at 10 readings/s in real time, QoS 1,
# until SIGTERM; sets sim_pid (the subshell running lib.sh's sim; the
# signals go to the simulator, its child).
sim_live() {
	sim --sensors 30 --rate 10 --duration 0 --qos 1 --seed "$1" --quiet --truth "$2" &
	sim_pid=$!
}

# sim_end: stop the simulator; it waits for the broker's acknowledgements.
sim_end() {
	pkill -TERM -P "$sim_pid"
	wait "$sim_pid" || fail "simulator failed"
	sim_pid=
}

# verify_exact TRUTH: every reading on the raw topic exactly once, every
# aggregate exact and once (the gateway never crashed, so nothing may be
# repeated: README, "What it guarantees"), and the counters final.
verify_exact() {
	local readings
	readings=$(wc -l <"$1")
	verify -t "$1" -w 10000 -T 180 -s 4 2>"$work/verify.log" ||
		fail "Kafka does not match the truth: $(tail -n 5 "$work/verify.log")"
	scrape "$work/final" >/dev/null
	check_accounting "$work/final"
	(($(metric "$work/final" tumblegate_messages_forwarded_total) == readings)) ||
		fail "forwarded $(metric "$work/final" tumblegate_messages_forwarded_total), want $readings"
	(($(metric "$work/final" tumblegate_messages_in_flight) == 0)) || fail "messages still in flight"
	log "$(grep -o 'truth has.*' "$work/verify.log" | head -n 1)"
}
