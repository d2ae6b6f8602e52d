#!/usr/bin/env bash
# bench/flood_ab.sh - hash flooding (issue 13): the sensor table of a git revision against the working tree's, with crafted and ordinary ids.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: bench/flood_ab.sh [-n RUNS] [-r READINGS] REV [IDS...]   (default: 1000 10000)
# Builds both engines as bench/window_ab.sh does and runs window_bench -F on
# each, alternating, RUNS times (each run is the best of 1): IDS ids crafted
# to share one hash under the unkeyed hash before issue 13, then as many
# ordinary ids. Each line is the best of RUNS; "crafted/ordinary" is how much
# slower the crafted ids are. READINGS defaults to 200 000 here: the old
# engine takes microseconds per crafted reading.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_dir/bench/lib.sh"
ab_args "bench/flood_ab.sh [-n RUNS] [-r READINGS] REV [IDS...]" "$@"
[[ " $* " == *" -r "* ]] || readings=200000
ids=("${ab_more[@]}")
((${#ids[@]})) || ids=(1000 10000)

ab_build flood_bench

bench_machine
echo "## sensor table under crafted ids, $rev (old) against the working tree (new): bench/flood_ab.sh -n $runs -r $readings $rev ${ids[*]}"
for n in "${ids[@]}"; do
	for ((i = 0; i < runs; i++)); do
		"$out/flood_bench_old" -F -r 1 -n "$readings" "$n" | sed 's/^/old /'
		"$out/flood_bench_new" -F -r 1 -n "$readings" "$n" | sed 's/^/new /'
	done
done | awk '
	# old 1000 ids, crafted  adds X M/s Y ns  lookups Z M readings/s W ns
	{
		k = $1 SUBSEP $2 SUBSEP $4
		if (!(($2) in seen)) { seen[$2] = 1; order[++n] = $2 }
		if (!(k in add) || $8 < add[k]) add[k] = $8
		if (!(k in look) || $14 < look[k]) look[k] = $14
	}
	END {
		printf "%-8s %-4s %14s %14s %9s %14s %14s %9s\n", "ids", "", "add crafted", "add ordinary",
		       "ratio", "look crafted", "look ordinary", "ratio"
		for (i = 1; i <= n; i++) {
			for (v = 0; v < 2; v++) {
				e = v ? "new" : "old"
				ac = add[e SUBSEP order[i] SUBSEP "crafted"]; ao = add[e SUBSEP order[i] SUBSEP "ordinary"]
				lc = look[e SUBSEP order[i] SUBSEP "crafted"]; lo = look[e SUBSEP order[i] SUBSEP "ordinary"]
				printf "%-8s %-4s %11.1f ns %11.1f ns %8.1fx %11.1f ns %11.1f ns %8.1fx\n", order[i], e,
				       ac, ao, ac / ao, lc, lo, lc / lo
			}
		}
	}'
