#!/usr/bin/env bash
# test_package.sh - the .deb end to end: build, install, run the installed gateway as its user, remove, purge.
# SPDX-License-Identifier: Apache-2.0
#
# Builds the Debian package with CPack from its own build tree under the
# build dir (configured for prefix /usr, as a package must be), installs it
# with dpkg and checks what landed: binaries, conffile, unit (through
# deploy/check-systemd-unit.sh), enable link, user, state directory. Then
# runs the INSTALLED gateway the way the unit would, minus systemd (not
# running here): as user tumblegate, no capabilities, no_new_privs, with the
# installed configuration and state.dir /var/lib/tumblegate, pointed at the
# test stack with --set. Readings from the simulator must all reach Kafka
# (tg-verify), and SIGTERM must end it cleanly. `dpkg -r` must take the
# binaries and unit and keep the conffile; `dpkg -P` the rest, user included.
#
# Needs root: it installs a package (CI runs as root). It refuses to run on a
# machine where tumblegate is installed or its user or directories exist,
# and purges what it installed on any exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

readonly pkg=tumblegate user=tumblegate
readonly conffile=/etc/tumblegate/tumblegate.yaml state_dir=/var/lib/tumblegate
readonly unit=/usr/lib/systemd/system/tumblegate.service
readonly wants=/etc/systemd/system/multi-user.target.wants/tumblegate.service
readonly binaries=(/usr/bin/tumblegate /usr/bin/tumblegate-sim /usr/bin/tumblegate-watch)

[[ $(id -u) -eq 0 ]] || fail "needs root: it installs, removes and purges the package"

pkg_status() { dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true; }

# dpkg waits for no one: retry while another apt/dpkg (another engineer's
# install-deps.sh) holds its lock.
dpkg_run() {
	local i out
	for ((i = 0; i < 60; i++)); do
		if out=$(dpkg "$@" 2>&1); then
			printf '%s\n' "$out" >>"$work/dpkg.log"
			return 0
		fi
		printf '%s\n' "$out" >>"$work/dpkg.log"
		[[ $out == *"dpkg frontend lock"* || $out == *"/var/lib/dpkg/lock"* ]] || break
		sleep 5
	done
	printf '%s\n' "$out" >&2
	return 1
}

# On any exit: stop the gateway (lib.sh's cleanup), then purge the package
# if this run installed it, so the machine is as it was.
installed=0
package_cleanup() {
	local rc=$?
	trap - EXIT
	if [[ -n $gateway_pid ]] && kill -0 "$gateway_pid" 2>/dev/null; then
		kill -KILL "$gateway_pid" 2>/dev/null || true
		wait "$gateway_pid" 2>/dev/null || true
		gateway_pid=
	fi
	if ((installed)) && [[ -n $(pkg_status) ]]; then
		log "cleanup: purging $pkg"
		dpkg -P "$pkg" >/dev/null 2>&1 ||
			log "cleanup: dpkg -P $pkg failed; remove it by hand"
	fi
	cleanup
	exit "$rc"
}
trap package_cleanup EXIT

# --- the machine must not have it already -------------------------------------
[[ $(pkg_status) != *installed* && $(pkg_status) != *config-files* ]] ||
	fail "package $pkg is already on this machine ($(pkg_status)); this test installs and purges it: remove it first"
! getent passwd "$user" >/dev/null || fail "user $user exists; the package's purge would delete it"
[[ ! -e /etc/tumblegate && ! -e $state_dir ]] ||
	fail "/etc/tumblegate or $state_dir exists; this test would install over and then delete it"

# --- build the .deb -------------------------------------------------------------
deb_build=$build_dir/deb
started=$SECONDS
cmake -S "$repo_dir" -B "$deb_build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF -DTG_BENCH=OFF >"$work/cmake.log" 2>&1 ||
	{ cat "$work/cmake.log" >&2; fail "configuring $deb_build failed"; }
cmake --build "$deb_build" -j 2 >>"$work/cmake.log" 2>&1 ||
	{ tail -n 30 "$work/cmake.log" >&2; fail "building $deb_build failed"; }
rm -f "$deb_build"/"$pkg"_*.deb
(cd "$deb_build" && cpack -G DEB) >"$work/cpack.log" 2>&1 ||
	{ cat "$work/cpack.log" >&2; fail "cpack -G DEB failed"; }
debs=("$deb_build"/"$pkg"_*_"$(dpkg --print-architecture)".deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "cpack made no single .deb: ${debs[*]}"
deb=${debs[0]}
version=$(dpkg-deb -f "$deb" Version)
project_version=$(sed -n 's/^project(tumblegate VERSION \([0-9.]*\).*/\1/p' "$repo_dir/CMakeLists.txt")
[[ $version == "$project_version" ]] || fail "package version $version, project version $project_version"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in librdkafka1 libpaho-mqtt1.3 libcbor0.8 libcjson1 libyaml-0-2 libisal2 libsodium23 adduser; do
	[[ $depends == *"$lib"* ]] || fail "Depends lacks $lib (dpkg-shlibdeps not run?): $depends"
done
log "built $(basename "$deb") in $((SECONDS - started)) s; Depends: $depends"

# --- install ----------------------------------------------------------------
installed=1
if ! dpkg_run -i "$deb"; then
	# Runtime libraries missing: let apt fetch them (CI has the -dev
	# packages, which pull them in, so this is for other machines).
	env DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq \
		-o DPkg::Lock::Timeout=300 >>"$work/dpkg.log" 2>&1 || fail "apt-get -f install failed"
fi
[[ $(pkg_status) == "install ok installed" ]] || fail "$pkg not installed: $(pkg_status)"
# Installing the same version again reruns the maintainer scripts as an
# upgrade does: they must find the user and directory there and go on.
dpkg_run -i "$deb" || fail "reinstalling the package failed (maintainer scripts not idempotent?)"

for f in "${binaries[@]}"; do [[ -x $f ]] || fail "$f not installed"; done
[[ -f $conffile ]] || fail "$conffile not installed"
dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q "^ $conffile " || fail "$conffile is not a conffile"
[[ -f $unit ]] || fail "$unit not installed"
[[ -f /usr/share/doc/tumblegate/configuration.md ]] || fail "docs not installed"
# deb-systemd-helper links /lib/..., the same file on a merged-/usr system.
[[ $(readlink -f "$wants") == "$(readlink -f "$unit")" ]] ||
	fail "unit not enabled: $wants -> $(readlink "$wants" || true)"
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd "$user") || fail "user $user not created"
[[ $home == "$state_dir" && $shell == /usr/sbin/nologin ]] || fail "user $user: home $home, shell $shell"
[[ $(stat -c '%U:%G %a' "$state_dir") == "$user:$user 750" ]] ||
	fail "$state_dir is $(stat -c '%U:%G %a' "$state_dir"), want $user:$user 750"
bash "$repo_dir/deploy/check-systemd-unit.sh" "$unit" /usr/bin/tumblegate "$conffile" ||
	fail "the installed unit fails its checks"
/usr/bin/tumblegate --check-config -c "$conffile" >"$work/check.out" 2>&1 ||
	fail "installed tumblegate rejects $conffile: $(cat "$work/check.out")"

# --- run the installed gateway as the service would -----------------------------
# What the unit gives it that setpriv can: its user and group, no
# capabilities, no_new_privs, a clean environment.
as_service=(setpriv --reuid="$user" --regid="$user" --init-groups
	--no-new-privs --bounding-set=-all --inh-caps=-all --reset-env)
"${as_service[@]}" /usr/bin/tumblegate --check-config -c "$conffile" >"$work/check-user.out" 2>&1 ||
	fail "as $user, tumblegate rejects $conffile: $(cat "$work/check-user.out")"
gateway_cmd=("${as_service[@]}" /usr/bin/tumblegate --config "$conffile")
gateway_start --set "state.dir=$state_dir" --set window.idle_timeout=3s
[[ $(ps -o user= -p "$gateway_pid") == "$user" ]] ||
	fail "the gateway does not run as $user"

start_ms=$((($(date +%s) - 3600) * 1000))
sim --id-prefix pkg- --format cbor --sensors 20 --rate 10 --duration 20 --fast --quiet \
	--qos 1 --seed 17 --start-ms "$start_ms" --truth "$work/truth.jsonl" || fail "simulator failed"
readings=$(wc -l <"$work/truth.jsonl")
((readings == 4000)) || fail "simulator confirmed $readings readings, want 4000"
verify -t "$work/truth.jsonl" -w 10000 -T 120 -s 2 || fail "Kafka does not match the truth"
gateway_stop
grep -qE "checkpoint at spool position [0-9]+: nothing to replay" "$work/gateway.log" ||
	fail "no final checkpoint at shutdown"
[[ -n $(find "$state_dir" -mindepth 1 -user "$user" -print -quit) ]] ||
	fail "the gateway wrote nothing of its own into $state_dir"

# --- remove: binaries and unit go, configuration and state stay ------------------
dpkg_run -r "$pkg" || fail "dpkg -r $pkg failed"
for f in "${binaries[@]}" "$unit"; do [[ ! -e $f ]] || fail "$f still there after dpkg -r"; done
[[ -f $conffile ]] || fail "dpkg -r removed the conffile $conffile"
[[ $(pkg_status) == "deinstall ok config-files" ]] || fail "after dpkg -r: $(pkg_status)"
getent passwd "$user" >/dev/null || fail "dpkg -r removed user $user (only a purge should)"

# --- purge: nothing left -------------------------------------------------------------
dpkg_run -P "$pkg" || fail "dpkg -P $pkg failed"
installed=0
[[ -z $(pkg_status) || $(pkg_status) == *not-installed* ]] || fail "after dpkg -P: $(pkg_status)"
for f in "$conffile" /etc/tumblegate "$state_dir" "$wants"; do
	[[ ! -e $f && ! -L $f ]] || fail "$f still there after dpkg -P"
done
! getent passwd "$user" >/dev/null || fail "user $user still there after dpkg -P"
! getent group "$user" >/dev/null || fail "group $user still there after dpkg -P"
log "PASS: $(basename "$deb") installed, 4000 readings through the installed gateway as $user, removed and purged clean"
