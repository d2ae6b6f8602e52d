#!/usr/bin/env bash
# Checks tumblegate's systemd unit without systemd running: it parses cleanly, stays sandboxed, and outlasts the gateway's drain.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: deploy/check-systemd-unit.sh UNIT_FILE [TUMBLEGATE_BIN CONFIG_FILE]
#
#   1. `systemd-analyze verify` prints nothing: it warns about unknown keys
#      and bad values on stderr yet exits 0, so any output is a failure.
#   2. `systemd-analyze security --offline` rates the unit's exposure at
#      $max_exposure or below (0 is fully sandboxed, 10 not at all).
#   3. With a tumblegate binary and configuration: the binary accepts the
#      configuration, and the unit's TimeoutStopSec is above the
#      configuration's shutdown.timeout, so systemd never SIGKILLs a drain.
#
# Given a binary, the unit is checked as a copy whose ExecStart runs that
# binary (verify fails on a command that does not exist, and a build tree
# configured for /usr/local has nothing in /usr/local/bin); without one, as it
# is. systemd-analyze comes with the systemd package (deploy/install-deps.sh
# installs it); it works without systemd as PID 1. Exit status: 0 all checks
# pass, 1 a check failed, 2 usage error.
set -euo pipefail

readonly max_exposure=2.0

if [[ $# -ne 1 && $# -ne 3 ]]; then
	echo "usage: $0 UNIT_FILE [TUMBLEGATE_BIN CONFIG_FILE]" >&2
	exit 2
fi
unit=$1 bin=${2:-} config=${3:-}

failures=0
fail() {
	echo "check-systemd-unit: FAIL: $*" >&2
	failures=$((failures + 1))
}
ok() { echo "check-systemd-unit: ok: $*"; }

command -v systemd-analyze >/dev/null 2>&1 ||
	{ echo "check-systemd-unit: FAIL: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
[[ -f $unit ]] || { echo "check-systemd-unit: FAIL: $unit does not exist" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The copy keeps the unit's name: verify derives the unit type from it.
checked=$work/$(basename "$unit")
if [[ -n $bin ]]; then
	bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
	sed -E "s|^ExecStart=[^ ]*/tumblegate |ExecStart=$bin |" "$unit" >"$checked"
	grep -q "^ExecStart=$bin " "$checked" || fail "no 'ExecStart=.../tumblegate ...' line in $unit"
else
	cp "$unit" "$checked"
fi

# --- 1. verify ---------------------------------------------------------------
if out=$(systemd-analyze verify "$checked" 2>&1) && [[ -z $out ]]; then
	ok "systemd-analyze verify: no warnings"
else
	fail "systemd-analyze verify $unit:"
	printf '%s\n' "$out" | sed 's/^/    /' >&2
fi

# --- 2. exposure -------------------------------------------------------------
out=$(systemd-analyze security --offline=yes --no-pager "$checked" 2>&1 || true)
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
if [[ -z $exposure ]]; then
	fail "systemd-analyze security gave no exposure level:"
	printf '%s\n' "$out" | sed 's/^/    /' >&2
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
	ok "systemd-analyze security: exposure $exposure (at most $max_exposure)"
else
	fail "systemd-analyze security: exposure $exposure, above $max_exposure; what is exposed:"
	grep '✗' <<<"$out" | sed 's/^/    /' >&2
fi

# --- 3. the configuration, and the stop timeout against the drain -------------
if [[ -n $bin ]]; then
	# systemd's TimeoutStopSec: plain seconds, or a time span such as 1min 30s.
	stop=$(sed -n 's/^TimeoutStopSec=//p' "$unit" | tail -n 1)
	if ! dump=$("$bin" --check-config -c "$config" 2>&1); then
		fail "$bin --check-config rejects $config:"
		printf '%s\n' "$dump" | sed 's/^/    /' >&2
	elif [[ -z $stop ]]; then
		fail "$unit sets no TimeoutStopSec (the default, 90 s, is not tied to shutdown.timeout)"
	else
		ok "tumblegate --check-config accepts $(basename "$config")"
		drain_ms=$(sed -n 's/^shutdown\.timeout: \([0-9]*\)ms$/\1/p' <<<"$dump")
		stop_ms=$(awk -v t="$stop" 'BEGIN {
			n = split(t, w, / +/); ms = 0
			for (i = 1; i <= n; i++) {
				if (!match(w[i], /^[0-9]+/)) { print "bad"; exit }
				v = substr(w[i], 1, RLENGTH); u = substr(w[i], RLENGTH + 1)
				if (u == "" || u == "s" || u == "sec") ms += v * 1000
				else if (u == "min" || u == "m") ms += v * 60000
				else if (u == "ms" || u == "msec") ms += v
				else { print "bad"; exit }
			}
			print ms }')
		if [[ -z $drain_ms || $stop_ms == bad ]]; then
			fail "cannot compare TimeoutStopSec=$stop with shutdown.timeout (${drain_ms:-not in the --check-config output})"
		elif ((stop_ms > drain_ms)); then
			ok "TimeoutStopSec=$stop is above shutdown.timeout (${drain_ms} ms)"
		else
			fail "TimeoutStopSec=$stop is not above shutdown.timeout (${drain_ms} ms): systemd would SIGKILL the drain"
		fi
	fi
fi

if ((failures)); then
	echo "check-systemd-unit: $failures check(s) failed" >&2
	exit 1
fi
echo "check-systemd-unit: all checks passed"
