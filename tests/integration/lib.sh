# lib.sh - helpers shared by the integration test scripts: gateway start/stop, waits, unique names.
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${1:?usage: $0 BUILD_DIR}
build_dir=$(cd "$build_dir" && pwd)
eval "$("$repo_dir/deploy/stack.sh" env)"

# Names no earlier run used, so topics and MQTT sessions start empty.
run_id=it$(date +%s)$$
work=$(mktemp -d "/tmp/tumblegate-$run_id.XXXX")
gateway_pid=
# The command gateway_start runs; a test may set another (an installed binary,
# a wrapper that changes user) before calling it.
gateway_cmd=("$build_dir/gateway/tumblegate")

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
fail() {
	log "FAIL: $*"
	if [[ -f $work/gateway.log ]]; then
		log "last gateway log lines:"
		tail -n 30 "$work/gateway.log" >&2
	fi
	exit 1
}

cleanup() {
	if [[ -n $gateway_pid ]] && kill -0 "$gateway_pid" 2>/dev/null; then
		kill -KILL "$gateway_pid" 2>/dev/null || true
	fi
	if [[ ${KEEP_WORK:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# gateway_start [--set k=v ...]: the gateway on this run's topics, logging to
# $work/gateway.log; returns once it is subscribed. TG_TEST_MQTT_VERSION=3.1.1
# runs a test under MQTT 3.1.1 (default: 5, the gateway's own default).
gateway_start() {
	local from=0
	[[ -f $work/gateway.log ]] && from=$(wc -l <"$work/gateway.log")
	"${gateway_cmd[@]}" \
		--set "mqtt.uri=$TG_MQTT_URI" \
		--set "mqtt.client_id=$run_id-gw" \
		--set "mqtt.topic=$run_id/+/telemetry" \
		--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" \
		--set "topics.raw=$run_id.raw" \
		--set "topics.agg=$run_id.agg" \
		--set "topics.dlq=$run_id.dlq" \
		--set "state.dir=$work/state" \
		--set "metrics.listen=127.0.0.1:0" \
		--set "mqtt.version=${TG_TEST_MQTT_VERSION:-5}" \
		"$@" >>"$work/gateway.log" 2>&1 &
	gateway_pid=$!
	local i
	for ((i = 0; i < 300; i++)); do
		if tail -n +"$((from + 1))" "$work/gateway.log" | grep -q "mqtt: subscribed"; then
			return 0
		fi
		kill -0 "$gateway_pid" 2>/dev/null || fail "gateway exited during start-up"
		sleep 0.1
	done
	fail "gateway not subscribed after 30 s"
}

# gateway_stop: SIGTERM, and the exit status must be 0.
gateway_stop() {
	local rc=0
	kill -TERM "$gateway_pid"
	wait "$gateway_pid" || rc=$?
	gateway_pid=
	((rc == 0)) || fail "gateway exited with status $rc after SIGTERM"
}

# gateway_kill: SIGKILL, as a crash or power cut would stop it.
gateway_kill() {
	kill -KILL "$gateway_pid"
	wait "$gateway_pid" 2>/dev/null || true
	gateway_pid=
}

# crash_restarts N WAIT PAUSE [--set k=v ...]: N times, after 4 + RANDOM % WAIT
# seconds, SIGKILL the gateway and, 1 + RANDOM % PAUSE seconds later, start it
# again with the options given.
crash_restarts() {
	local n=$1 wait=$2 pause=$3 i
	shift 3
	for ((i = 1; i <= n; i++)); do
		sleep "$((4 + RANDOM % wait))"
		gateway_kill
		log "gateway killed ($i)"
		sleep "$((1 + RANDOM % pause))"
		gateway_start "$@"
	done
}

# wait_log PATTERN SECONDS: wait for a gateway log line.
wait_log() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if grep -qE "$1" "$work/gateway.log"; then return 0; fi
		sleep 0.1
	done
	fail "no log line matching '$1' after $2 s"
}

# sim ARGS...: the simulator on this run's topic prefix.
sim() {
	"$build_dir/firmware-sim/tumblegate-sim" --uri "$TG_MQTT_URI" \
		--topic-prefix "$run_id" --client-id "$run_id-sim-$RANDOM" "$@"
}

verify() {
	"$build_dir/tests/integration/tg-verify" -b "$TG_KAFKA_BROKERS" \
		-r "$run_id.raw" -a "$run_id.agg" "$@"
}

# metrics_url [PATH]: the gateway's endpoint (metrics.listen=127.0.0.1:0 picks
# a free port, which the gateway logs).
metrics_url() {
	local port
	port=$(grep -oE 'metrics: serving http://127\.0\.0\.1:[0-9]+' "$work/gateway.log" |
		tail -n 1 | sed 's/.*://')
	[[ -n $port ]] || fail "the gateway logged no metrics endpoint"
	printf 'http://127.0.0.1:%s%s' "$port" "${1:-/metrics}"
}

# scrape FILE [PATH]: GET PATH (default /metrics) into FILE; prints the
# HTTP status.
scrape() {
	curl -s -m 5 -o "$1" -w '%{http_code}' "$(metrics_url "${2:-/metrics}")" || echo 000
}

# expect_readyz STATUS TEXT [SECONDS]: /readyz answers STATUS with body TEXT
# within SECONDS (default 10: readiness follows librdkafka's statistics,
# every 2 s).
expect_readyz() {
	local i
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		[[ $(scrape "$work/readyz" /readyz) == "$1" && $(cat "$work/readyz") == "$2" ]] &&
			return 0
		sleep 0.1
	done
	fail "/readyz: $(cat "$work/readyz"), want $1 '$2'"
}

# metric FILE NAME [LABELS]: the value of one series, or the sum of all
# series of NAME whose labels contain LABELS ('topic="raw"').
metric() {
	awk -v name="$2" -v want="${3:-}" '
		$0 ~ /^#/ { next }
		{
			series = $1; labels = ""
			i = index(series, "{")
			if (i) { labels = substr(series, i); series = substr(series, 1, i - 1) }
			if (series == name && index(labels, want)) { sum += $2; found = 1 }
		}
		END { if (!found) exit 1; printf "%.0f\n", sum }' "$1" ||
		fail "no metric $2${3:+{$3\}} in $1"
}

# check_accounting FILE: the message equation holds in one scrape:
#   received - redelivered - lost + recovered
#     = forwarded + dead_lettered + failed + skipped + in_flight
check_accounting() {
	local in out
	in=$(($(metric "$1" tumblegate_messages_received_total) -
		$(metric "$1" tumblegate_messages_redelivered_total) -
		$(metric "$1" tumblegate_messages_lost_total) +
		$(metric "$1" tumblegate_messages_recovered_total)))
	out=$(($(metric "$1" tumblegate_messages_forwarded_total) +
		$(metric "$1" tumblegate_messages_dead_lettered_total) +
		$(metric "$1" tumblegate_messages_failed_total) +
		$(metric "$1" tumblegate_messages_skipped_total) +
		$(metric "$1" tumblegate_messages_in_flight)))
	((in == out)) || fail "metrics do not add up: taken $in, accounted for $out ($1)"
}

# assert_log_lines_below N [FILE]: FILE (default the gateway log) has fewer
# than N lines, for tests that bound how much a flood of events may log.
assert_log_lines_below() {
	local file=${2:-$work/gateway.log} lines
	[[ -f $file ]] || fail "no log $file to count"
	lines=$(wc -l <"$file")
	((lines < $1)) || fail "$file has $lines lines, want fewer than $1"
	log "$file: $lines lines (bound $1)"
}

# sparkplug_tools: Eclipse Tahu's JavaScript Sparkplug B client and payload
# codec (npm, versions pinned by tests/integration/sparkplug/package-lock.json)
# installed once under the build tree; exports NODE_PATH for the test scripts
# in tests/integration/sparkplug/. No install scripts are run.
sparkplug_tools() {
	local src=$repo_dir/tests/integration/sparkplug dst=$build_dir/tests/integration/sparkplug-npm
	command -v node >/dev/null && command -v npm >/dev/null ||
		fail "node and npm are needed (deploy/install-deps.sh installs them)"
	if ! cmp -s "$src/package-lock.json" "$dst/package-lock.json" ||
		[[ ! -d $dst/node_modules/sparkplug-client ]]; then
		log "installing the Sparkplug test tools from npm into $dst"
		mkdir -p "$dst"
		cp "$src/package.json" "$src/package-lock.json" "$dst/"
		(cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) ||
			fail "npm ci of the Sparkplug test tools failed"
	fi
	export NODE_PATH=$dst/node_modules
}
