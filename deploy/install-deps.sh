#!/usr/bin/env bash
# Installs every Debian 12 package tumblegate needs to build, test and run its local stack; idempotent.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: deploy/install-deps.sh
#
# Quick no-op when everything is already installed: each package is checked
# with dpkg-query first, and `apt-get update` runs only when something is
# missing. Uses sudo when not run as root. Safe to run non-interactively (CI).
set -euo pipefail

# Build toolchain and libraries the C code links, the brokers of the local test
# stack (mosquitto; Kafka runs from Maven Central jars on the JRE), and the
# clients the scripts and tests use to talk to them. The last line builds and
# checks the .deb: dpkg-shlibdeps (CPack computes the package's dependencies
# with it), systemd-analyze (checks the unit; no running systemd needed), and
# what the package's maintainer scripts call. Chromium, headless, is the real
# browser integration.status_page loads the status page in. Node.js and npm run
# the third-party Sparkplug B implementation (Eclipse Tahu's, from npm) that
# integration.sparkplug and integration.sparkplug_sim check tumblegate against.
packages=(
	build-essential cmake ninja-build pkg-config clang
	libpaho-mqtt-dev librdkafka-dev libcbor-dev libcunit1-dev libcjson-dev
	libyaml-dev libmicrohttpd-dev zlib1g-dev libisal-dev libsodium-dev
	libprotobuf-c-dev protobuf-c-compiler
	mosquitto mosquitto-clients kcat
	docker-compose maven openjdk-17-jre-headless
	curl ca-certificates openssl
	dpkg-dev systemd adduser init-system-helpers
	chromium
	nodejs
)

log() { printf 'install-deps: %s\n' "$*"; }

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tg_sudo_init

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done
# Debian's npm is a package of its own; NodeSource's nodejs carries npm and
# conflicts with it, so ask only for what is not there.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if ((${#missing[@]} > 0)); then
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# sudo resets the environment, so pass DEBIAN_FRONTEND through env(1).
	apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get)
	"${apt[@]}" update -qq
	# --no-install-recommends: docker-compose would otherwise pull in the whole
	# docker.io engine, which the project does not need to run its stack.
	"${apt[@]}" install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}"
	log "done"
else
	log "all ${#packages[@]} packages already installed"
fi

# The mosquitto package starts a system-wide broker on port 1883, which would
# collide with the one deploy/stack.sh runs. Only systemd hosts start it that
# way; without systemd there is nothing to do.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
	if systemctl is-active --quiet mosquitto.service; then
		log "stopping the system mosquitto.service (the test stack runs its own broker)"
		"${sudo_cmd[@]}" systemctl stop mosquitto.service
	fi
	if systemctl is-enabled --quiet mosquitto.service 2>/dev/null; then
		log "disabling the system mosquitto.service"
		"${sudo_cmd[@]}" systemctl disable --quiet mosquitto.service
	fi
fi
