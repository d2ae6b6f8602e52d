#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the decoder fuzzers with clang and runs one or more for a while, keeping the corpus outside the tree.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: tests/fuzz/run.sh [-t SECONDS] [TARGET...]
#        (default: 600 s each; json cbor auto senml_json senml_cbor sparkplug)
#
# Targets run one after another (the CI machines have 2 cores, shared), each
# with one job, starting from the seed corpus in tests/fuzz/corpus/<target>/
# and growing a work corpus in $TG_FUZZ_WORK (default /tmp/tg-fuzz/<target>).
# Crashes land in that directory as crash-*, reproduced with
#   build-fuzz/tests/fuzz/fuzz_<target> CRASH
# and minimized with -minimize_crash=1; keep the minimized one as
# tests/fuzz/corpus/<target>/crash-<what>. To keep at most 30 new inputs:
#   mkdir FRESH && cp tests/fuzz/corpus/<target>/* FRESH/
#   build-fuzz/tests/fuzz/fuzz_<target> -merge=1 -merge_control_file=CTL FRESH WORK_DIR
#   tests/fuzz/pick_inputs.py CTL 30   # paths; copy each as corpus/<target>/found-<sha1:16>
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$repo_dir/build-fuzz
work=${TG_FUZZ_WORK:-/tmp/tg-fuzz}
seconds=600

while getopts t: opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	*)
		echo "usage: $0 [-t SECONDS] [TARGET...]" >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
targets=("$@")
((${#targets[@]})) || targets=(json cbor auto senml_json senml_cbor sparkplug)

CC=clang cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTG_FUZZ=ON -DTG_INTEGRATION_TESTS=OFF -DTG_BENCH=OFF >/dev/null
cmake --build "$build" --target "${targets[@]/#/fuzz_}" >/dev/null

for t in "${targets[@]}"; do
	mkdir -p "$work/$t"
	echo "==> fuzz_$t for $seconds s (work corpus $work/$t)"
	# The JSON seed that exhausts the parse arena is 20 KB; longer inputs
	# than 4 KB only slow the search down.
	"$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
		-artifact_prefix="$work/$t/" "$work/$t" "$repo_dir/tests/fuzz/corpus/$t" \
		2>"$work/$t.log" || echo "fuzz_$t stopped on a finding: see $work/$t.log"
	grep -E '^(stat::|#[0-9]+ +DONE)' "$work/$t.log" || true
done
