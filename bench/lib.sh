# bench/lib.sh - sourced by the bench scripts: the line every result starts with, the A/B scripts' arguments and builds.
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it

# The date and the machine, so a pasted result says where and when it ran.
bench_machine() {
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

# ab_args USAGE ARG...: [-n RUNS] [-r READINGS] REV [MORE...] into runs
# (default 5), readings (default 4000000), rev and the array ab_more; a
# missing REV prints "usage: USAGE" and exits 2.
ab_args() {
	local usage=$1 opt OPTIND=1

	shift
	runs=5 readings=4000000
	while getopts n:r: opt; do
		case $opt in
		n) runs=$OPTARG ;;
		r) readings=$OPTARG ;;
		*) exit 2 ;;
		esac
	done
	shift $((OPTIND - 1))
	if (($# == 0)); then
		echo "usage: $usage" >&2
		exit 2
	fi
	rev=$1
	shift
	ab_more=("$@")
}

# ab_build NAME: bench/window_bench.c built twice into build-bench/ab (set as
# out), as NAME_old with revision $rev's common/window.c and as NAME_new with
# the working tree's. Both link the working tree's helpers; an engine that
# does not call one (keyed_hash.c before issue 13) just leaves it unused.
ab_build() {
	local name=$1 cc=(cc -O3 -DNDEBUG -std=gnu11 -Wall)
	local helpers=("$repo_dir/common/reading.c" "$repo_dir/common/clock.c"
		"$repo_dir/common/keyed_hash.c")

	out=$repo_dir/build-bench/ab
	mkdir -p "$out"
	git -C "$repo_dir" show "$rev:common/window.c" >"$out/window_old.c"
	git -C "$repo_dir" show "$rev:common/window.h" >"$out/window.h"
	"${cc[@]}" -I"$out" -I"$repo_dir/common" "$repo_dir/bench/window_bench.c" "$out/window_old.c" \
		"${helpers[@]}" -lz -lisal -lsodium -o "$out/${name}_old"
	"${cc[@]}" -I"$repo_dir/common" "$repo_dir/bench/window_bench.c" "$repo_dir/common/window.c" \
		"${helpers[@]}" -lz -lisal -lsodium -o "$out/${name}_new"
}

# gateway_wait LABEL DIR: after a gateway was started in the background as
# $pid, logging to DIR/gw.log with metrics.listen 127.0.0.1:0, wait up to
# 30 s for its MQTT subscription and set port to its metrics port; the
# caller's die() if it exits, does not subscribe or names no port.
gateway_wait() {
	local label=$1 dir=$2 i

	for ((i = 0; i < 600; i++)); do
		grep -qs 'mqtt: subscribed' "$dir/gw.log" && break
		kill -0 "$pid" 2>/dev/null || die "$label: the gateway exited: $(tail -n 5 "$dir/gw.log")"
		sleep 0.05
	done
	grep -qs 'mqtt: subscribed' "$dir/gw.log" ||
		die "$label: the gateway did not subscribe within 30 s: $(tail -n 5 "$dir/gw.log")"
	port=$(sed -n 's|.*metrics: serving http://[^ ]*:\([0-9]*\)/metrics.*|\1|p' "$dir/gw.log")
	[[ -n $port ]] || die "$label: no metrics port in $dir/gw.log"
}
