#!/usr/bin/env bash
# deploy/cross-arm64.sh - cross-builds every target for 64-bit Arm (Raspberry Pi OS 64-bit, Debian arm64) and runs the unit tests under qemu.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: deploy/cross-arm64.sh [CMAKE_OPTION...]     e.g. -DTG_EDGE=ON
#        deploy/cross-arm64.sh --prepare              install and make the sysroot, no build
#
# On a Debian 12 amd64 host it installs what is missing: the arm64 architecture
# in dpkg (for apt's package lists), crossbuild-essential-arm64 and
# qemu-user-static; `apt-get update` runs only when something is missing.
#
# The arm64 libraries are NOT installed on the host. Co-installing a
# Multi-Arch: same :arm64 package pins its amd64 twin to the very same
# version: on a host not fully upgraded apt upgrades host libraries to match
# (OpenSSL, GnuTLS, Kerberos, ...), where the two cannot match it would remove
# the host's, and every later host upgrade waits for the arm64 build. Instead
# apt resolves the arm64 packages against an empty package database, they are
# downloaded into $TG_CACHE_DIR/debs-arm64, and dpkg -x unpacks them into
# build-arm64/sysroot, which deploy/cmake/aarch64-linux-gnu.cmake points the
# compiler, pkg-config and qemu at. Nothing is removed from the host: apt-get
# runs with --no-remove.
#
# Then it builds every target into build-arm64 (integration tests off: they
# need the local stack; libFuzzer targets off: they need clang) and runs the
# unit tests and the fuzz corpus replays through qemu-aarch64-static: ctest
# runs them via CMAKE_CROSSCOMPILING_EMULATOR. The replays are built without
# ASan/UBSan here: the native builds run them sanitized; this run checks the
# decoders on arm64 (where, for one, plain char is unsigned).
#
# Environment: TG_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/tumblegate),
# TG_ARM64_JOBS (parallel build and test jobs, default: the number of cores).
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo_dir/build-arm64
sysroot=$build/sysroot
cache_dir=${TG_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-$(cd ~ && pwd)}/.cache}/tumblegate}
debs=$cache_dir/debs-arm64
jobs=${TG_ARM64_JOBS:-$(nproc 2>/dev/null || echo 2)}
prepare_only=
if [[ ${1:-} == --prepare ]]; then
	prepare_only=1
	shift
fi

# Installed on the host (amd64 or all).
host_packages=(crossbuild-essential-arm64 qemu-user-static protobuf-c-compiler)
# Unpacked into the sysroot with their dependencies: every library the project
# links (deploy/install-deps.sh, CMakeLists.txt), libmicrohttpd included.
arm64_packages=(
	libc6-dev
	libpaho-mqtt-dev librdkafka-dev libcbor-dev libcunit1-dev libcjson-dev
	libyaml-dev libmicrohttpd-dev zlib1g-dev libisal-dev libsodium-dev
	libprotobuf-c-dev
)

log() { printf 'cross-arm64: %s\n' "$*"; }

host_arch=$(dpkg --print-architecture)
if [[ $host_arch != amd64 ]]; then
	log "this script cross-builds on Debian amd64; on $host_arch build natively (README.md)" >&2
	exit 1
fi

source "$repo_dir/deploy/lib.sh"
tg_sudo_init
apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)

# --- host: arm64 package lists, cross compiler, qemu ---------------------------

need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	log "adding the arm64 architecture to dpkg (package lists only)"
	"${sudo_cmd[@]}" dpkg --add-architecture arm64
	need_update=1
elif ! apt-cache show libc6:arm64 >/dev/null 2>&1; then
	need_update=1 # added, but the lists were not fetched since
fi
missing=()
for pkg in "${host_packages[@]}"; do
	if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done
((${#missing[@]} == 0)) || need_update=1
if ((need_update)); then
	log "apt-get update"
	"${apt[@]}" update -qq
fi
if ((${#missing[@]} > 0)); then
	log "installing: ${missing[*]}"
	# --no-remove: abort rather than remove any host package.
	"${apt[@]}" install -y -qq --no-install-recommends --no-remove \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}"
fi

# --- sysroot: the arm64 packages and their dependencies, unpacked ----------------

# apt as if on an empty arm64 machine: it resolves the whole dependency closure,
# installs nothing, and leaves the host's package cache alone.
arm64_apt() {
	apt-get -o APT::Architecture=arm64 -o Dir::State::status=/dev/null \
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
		-o APT::Install-Recommends=false "$@"
}

# Prints "name version arch" for every package of the closure.
resolve() {
	arm64_apt -s install "${arm64_packages[@]}" |
		sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\([a-z0-9]*\)\]).*/\1 \2 \3/p' | sort
}

deb_file() { printf '%s_%s_%s.deb' "$1" "${2//:/%3a}" "$3"; }

# Downloads what $manifest lists and the cache does not hold yet.
fetch() {
	local name version arch want=() tmp
	while read -r name version arch; do
		[[ -f $debs/$(deb_file "$name" "$version" "$arch") ]] && continue
		if [[ $arch == all ]]; then want+=("$name=$version"); else want+=("$name:$arch=$version"); fi
	done <<<"$manifest"
	((${#want[@]} > 0)) || return 0
	log "downloading ${#want[@]} arm64 packages into $debs"
	mkdir -p "$debs"
	tmp=$(mktemp -d "$debs/.fetch.XXXXXX")
	local sandbox=()
	# apt-get download run as root drops to the _apt user, who may not write here.
	[[ $(id -u) -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
	if (cd "$tmp" && apt-get -qq "${sandbox[@]}" download "${want[@]}"); then
		mv "$tmp"/*.deb "$debs/"
		rmdir "$tmp"
	else
		rm -rf "$tmp"
		return 1
	fi
}

manifest=$(resolve)
if [[ -z $manifest ]]; then
	log "apt could not resolve the arm64 packages: ${arm64_packages[*]}" >&2
	exit 1
fi
if ! fetch; then
	# Package lists older than the archive name files it no longer holds.
	log "download failed; refreshing the package lists once"
	"${apt[@]}" update -qq
	manifest=$(resolve)
	fetch
fi

if [[ ! -f $sysroot/.packages || $(<"$sysroot/.packages") != "$manifest" ]]; then
	log "unpacking $(wc -l <<<"$manifest") arm64 packages into $sysroot"
	mkdir -p "$build"
	rm -rf "$sysroot.new"
	mkdir "$sysroot.new"
	while read -r name version arch; do
		dpkg -x "$debs/$(deb_file "$name" "$version" "$arch")" "$sysroot.new"
	done <<<"$manifest"
	# Some -dev symlinks are absolute (libz.so -> /lib/aarch64-linux-gnu/...):
	# they would point at the host. Make them relative, inside the sysroot.
	while IFS= read -r -d '' link; do
		target=$(readlink "$link")
		ln -sfn "$(realpath -m -s --relative-to="$(dirname "$link")" "$sysroot.new$target")" "$link"
	done < <(find "$sysroot.new" -type l -lname '/*' -print0)
	printf '%s\n' "$manifest" >"$sysroot.new/.packages"
	rm -rf "$sysroot"
	mv "$sysroot.new" "$sysroot"
	# Keep in the cache only what this sysroot was made of.
	declare -A keep=()
	while read -r name version arch; do
		keep[$(deb_file "$name" "$version" "$arch")]=1
	done <<<"$manifest"
	for deb in "$debs"/*.deb; do
		if [[ -z ${keep[${deb##*/}]:-} ]]; then rm -f "$deb"; fi
	done
else
	log "sysroot up to date ($(wc -l <<<"$manifest") packages)"
fi
if [[ -n $prepare_only ]]; then
	exit 0
fi

# --- build and test --------------------------------------------------------------

cmake -S "$repo_dir" -B "$build" -G Ninja \
	-DCMAKE_TOOLCHAIN_FILE="$repo_dir/deploy/cmake/aarch64-linux-gnu.cmake" \
	-DTG_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTG_INTEGRATION_TESTS=OFF -DTG_FUZZ=OFF -DTG_FUZZ_REPLAY_SANITIZE=OFF "$@" >/dev/null
cmake --build "$build" -j "$jobs"

for program in gateway/tumblegate gateway/tumblegate-watch firmware-sim/tumblegate-sim; do
	machine=$(readelf -h "$build/$program" | sed -n 's/^ *Machine: *//p')
	if [[ $machine != AArch64 ]]; then
		log "$program is built for '$machine', not AArch64" >&2
		exit 1
	fi
done
log "programs in $build: gateway/tumblegate gateway/tumblegate-watch firmware-sim/tumblegate-sim (AArch64)"

# Unit tests and corpus replays only: the docs and deploy checks run the
# gateway from a shell command, which would need binfmt_misc.
ctest --test-dir "$build" -L '^(unit|fuzz)$' -j "$jobs" --output-on-failure
