#!/usr/bin/env bash
# bench/run.sh - builds the benchmarks in Release and runs them; paste the output into bench/RESULTS.md.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/run.sh [window|codec|json|crc|downsample] ...   (default: window codec)
# These machines are noisy: compare figures from one run with each other,
# not with another day's.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
source "$repo_dir/deploy/lib.sh"
log() { printf 'bench/run.sh: %s\n' "$*"; }
build=$repo_dir/build-bench
cmake -S "$repo_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

what=("$@")
((${#what[@]})) || what=(window codec)
bench_machine
for w in "${what[@]}"; do
	case $w in
	window)
		echo "## window engine alone: bench/run.sh window"
		"$build/bench/window_bench" 100 1000 10000
		echo "## the same in batches of 16 (tg_window_engine_add_batch)"
		"$build/bench/window_bench" -b 16 100 1000 10000
		;;
	downsample)
		# issue 15: what forward.mode adds per reading to the engine's work
		echo "## the engine, then the engine and the raw-forwarding compressors: bench/run.sh downsample"
		for mode in "" exception swinging-door; do
			"$build/bench/window_bench" -n 4000000 ${mode:+-R "$mode"} 1000 10000
		done
		;;
	codec)
		echo "## decoders and encoders: bench/run.sh codec"
		"$build/bench/codec_bench"
		;;
	crc)
		echo "## the spool's CRC-32, zlib against ISA-L: bench/run.sh crc"
		"$build/bench/crc_bench"
		;;
	json)
		# jansson and json-c are needed for this comparison only
		if (($(dpkg-query -W -f='${Status}\n' libjansson-dev libjson-c-dev 2>/dev/null |
			grep -c 'install ok installed') < 2)); then
			tg_sudo_init
			"${sudo_cmd[@]}" apt-get install -y -qq libjansson-dev libjson-c-dev >/dev/null
		fi
		cmake "$build" >/dev/null && cmake --build "$build" --target json_libs >/dev/null
		echo "## JSON libraries on the simulator's payload: bench/run.sh json"
		"$build/bench/json_libs"
		;;
	*)
		echo "bench/run.sh: unknown benchmark '$w'" >&2
		exit 2
		;;
	esac
done
