#!/usr/bin/env bash
# bench/window_ab.sh - the window engine of a git revision against the working tree's, runs interleaved, best of N.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/window_ab.sh [-n RUNS] [-r READINGS] REV [SENSORS...]   (default: 100 1000 10000)
# Both engines are driven by the working tree's bench/window_bench.c (an old
# engine runs only the one-reading-at-a-time lines; the new one also runs
# -b 16, tg_window_engine_add_batch in batches of 16). On a shared machine
# only figures of one run compare: runs alternate between the two engines,
# and each line is the best of RUNS, with new/old as a ratio.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
ab_args "bench/window_ab.sh [-n RUNS] [-r READINGS] REV [SENSORS...]" "$@"
sensors=("${ab_more[@]}")
((${#sensors[@]})) || sensors=(100 1000 10000)

ab_build window_bench

bench_machine
echo "## window engine, $rev (old) against the working tree (new): bench/window_ab.sh -n $runs -r $readings $rev ${sensors[*]}"
for s in "${sensors[@]}"; do
	for ((i = 0; i < runs; i++)); do
		"$out/window_bench_old" -r 1 -n "$readings" "$s" | sed 's/^/old /'
		"$out/window_bench_new" -r 1 -n "$readings" "$s" | sed 's/^/new /'
		"$out/window_bench_new" -r 1 -n "$readings" -b 16 "$s" | sed 's/^/new-b16 /'
	done
done | awk '
	{
		v = $0; sub(/.*engine +/, "", v); split(v, a, " ")
		m = $0; sub(/.*memory +/, "", m); split(m, b, " ")
		c = $2 " sensors, " ($4 == "in" ? "in order" : "5 % late")
		k = $1 SUBSEP c
		if (!(c in seen)) { seen[c] = 1; order[++n] = c }
		if (a[1] + 0 > best[k]) best[k] = a[1] + 0
		mem[k] = b[1]
	}
	END {
		printf "%-24s %10s %10s %10s %8s %8s  %s\n", "M readings/s/core", "old", "new", "new -b16",
		       "new/old", "b16/old", "B/sensor old, new"
		for (i = 1; i <= n; i++) {
			c = order[i]; o = best["old" SUBSEP c]; w = best["new" SUBSEP c]
			bb = best["new-b16" SUBSEP c]
			printf "%-24s %10.2f %10.2f %10.2f %7.2fx %7.2fx  %s, %s\n", c, o, w, bb, w / o, bb / o,
			       mem["old" SUBSEP c], mem["new" SUBSEP c]
		}
	}'
