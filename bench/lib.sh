# bench/lib.sh - sourced by the bench scripts: the line every result starts with, and the A/B scripts' arguments.
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
