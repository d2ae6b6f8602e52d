#!/usr/bin/env bash
# tests/run.sh - installs what is missing, builds, and runs every test: unit (also under ASan+UBSan, and for arm64 under qemu) and integration.
# SPDX-License-Identifier: Apache-2.0
#
# This is the README's test command and the only thing CI runs. Integration
# tests start the local stack (mosquitto + Kafka) themselves through ctest
# fixtures and stop it afterwards.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_dir"
jobs=$(nproc 2>/dev/null || echo 2)

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
bash deploy/install-deps.sh

step "build (RelWithDebInfo, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

step "build (ASan + UBSan) and unit tests under it"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON \
	-DTG_INTEGRATION_TESTS=OFF >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan -L unit --output-on-failure

# The arm64 cross-build and its emulated unit tests take minutes of one core;
# the integration tests mostly wait on brokers and simulators. So the first
# runs beside the second, on one core, once the installs (which take dpkg's
# lock, as the package test does) are done.
arm64_pid=
step "arm64 cross-build (Raspberry Pi), unit tests under qemu: in the background"
host_arch=$(dpkg --print-architecture)
if [[ $host_arch == amd64 ]]; then
	bash deploy/cross-arm64.sh --prepare
	TG_ARM64_JOBS=1 bash deploy/cross-arm64.sh >build/arm64.log 2>&1 &
	arm64_pid=$!
	echo "log: build/arm64.log"
else
	echo "not run: deploy/cross-arm64.sh cross-builds from amd64; this $host_arch host built natively above"
fi

step "all tests (unit, deploy checks, integration against the real stack)"
rc=0
ctest --test-dir build --output-on-failure || rc=$?

if [[ -n $arm64_pid ]]; then
	step "arm64 cross-build and unit tests under qemu"
	if wait "$arm64_pid"; then
		grep -E "tests passed|AArch64" build/arm64.log
	else
		tail -n 60 build/arm64.log
		echo "arm64: FAILED (all of it in build/arm64.log)"
		rc=1
	fi
fi
exit "$rc"
