#!/usr/bin/env bash
# bench/codec_ab.sh - the codecs of a git revision against the working tree's, runs interleaved, best of N.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/codec_ab.sh [-n RUNS] [-r READINGS] REV [LINE...]
#        (default lines: decode cbor, decode json, decode auto (cbor), decode auto (json))
# Each side is built whole from its own sources (REV's from git archive),
# with its own bench/codec_bench.c, which must take READINGS and a line
# name (it does from aced460 on). On a shared machine only figures of one
# run compare: runs alternate between the two builds, and each line is the
# best of RUNS, with new/old as a ratio.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
ab_args "bench/codec_ab.sh [-n RUNS] [-r READINGS] REV [LINE...]" "$@"
lines=("${ab_more[@]}")
((${#lines[@]})) || lines=("decode cbor" "decode json" "decode auto (cbor)" "decode auto (json)")

out=$repo_dir/build-bench/codec-ab
rm -rf "$out/src"
mkdir -p "$out/src"
git -C "$repo_dir" archive "$rev" | tar -x -C "$out/src"
for side in old new; do
	src=$out/src
	[[ $side == new ]] && src=$repo_dir
	cmake -S "$src" -B "$out/$side" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
	cmake --build "$out/$side" --target codec_bench >/dev/null
done

bench_machine
echo "## codecs, $rev (old) against the working tree (new): bench/codec_ab.sh -n $runs -r $readings $rev$(printf ' "%s"' "${lines[@]}")"
for line in "${lines[@]}"; do
	for ((i = 0; i < runs; i++)); do
		for side in old new; do
			"$out/$side/bench/codec_bench" "$readings" "$line" | grep -F "$line " | sed "s/^/$side|/"
		done
	done
done | sed -E 's/^([a-z]+)\|(.*[^ ]) +[0-9]+ readings +[0-9.]+ s CPU +([0-9.]+) M readings.*/\1|\2|\3/' |
	awk -F'|' '
	{
		if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
		if ($3 + 0 > best[$1 SUBSEP $2]) best[$1 SUBSEP $2] = $3 + 0
	}
	END {
		printf "%-24s %8s %8s %8s\n", "M readings/s/core", "old", "new", "new/old"
		for (i = 1; i <= n; i++) {
			c = order[i]; o = best["old" SUBSEP c]; w = best["new" SUBSEP c]
			printf "%-24s %8.2f %8.2f %7.2fx\n", c, o, w, w / o
		}
	}'
rm -rf "$out/src"
