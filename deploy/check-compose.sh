#!/usr/bin/env bash
# Checks the Docker demo stack without Docker: deploy/docker-compose.yml parses, its services and files are there, the gateway accepts its config.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: deploy/check-compose.sh [PATH/TO/tumblegate]
#
#   1. `docker-compose config -q` (or `docker compose config -q`) accepts
#      deploy/docker-compose.yml; neither needs a Docker engine.
#   2. The services redpanda, console, mosquitto, tumblegate and sim exist,
#      and the console publishes port 8080 on the host.
#   3. Every file the compose file bind-mounts (./...) and every file
#      deploy/Dockerfile COPYs from the build context exists in the repository.
#   4. With a tumblegate binary given, it accepts the configuration baked into
#      the image: `tumblegate --check-config -c deploy/compose/tumblegate.yaml`.
#
# Runs from any directory. Exit status: 0 all checks pass, 1 a check failed,
# 2 usage error. A missing compose tool is a failure (deploy/install-deps.sh installs it), never a skip.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)
compose_file=$repo_dir/deploy/docker-compose.yml
dockerfile=$repo_dir/deploy/Dockerfile
gateway_config=$repo_dir/deploy/compose/tumblegate.yaml
readonly required_services=(redpanda console mosquitto tumblegate sim)

failures=0
fail() {
	echo "check-compose: FAIL: $*" >&2
	failures=$((failures + 1))
}
ok() {
	echo "check-compose: ok: $*"
}

if [[ $# -gt 1 || ${1:-} == -h || ${1:-} == --help ]]; then
	echo "usage: $0 [PATH/TO/tumblegate]" >&2
	exit 2
fi
tumblegate_bin=${1:-}

# --- 1. The compose tool accepts the file ----------------------------------
if command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
else
	echo "check-compose: FAIL: neither docker-compose nor the docker compose plugin is installed" \
		"(Debian: apt-get install docker-compose)" >&2
	exit 1
fi

# Relative paths in the file (./compose/..., context ..) resolve against
# deploy/, wherever this runs from.
if ! errors=$(cd "$repo_dir" && "${compose[@]}" -f "$compose_file" config -q 2>&1); then
	echo "check-compose: FAIL: ${compose[*]} rejects $compose_file:" >&2
	printf '%s\n' "$errors" | sed 's/^/    /' >&2
	exit 1
fi
ok "${compose[*]} config accepts deploy/docker-compose.yml"

# --- 2. Services and the console's port ------------------------------------
services=$(cd "$repo_dir" && "${compose[@]}" -f "$compose_file" config --services)
for s in "${required_services[@]}"; do
	if grep -qx -- "$s" <<<"$services"; then
		ok "service $s"
	else
		fail "service '$s' missing from deploy/docker-compose.yml (has: ${services//$'\n'/ })"
	fi
done

# The lines of one service's block in the compose file: from "  NAME:" to the
# next line indented two spaces or less (the next service or top-level key).
service_block() {
	awk -v name="$1" '
		$0 ~ "^  " name ":[[:space:]]*(#.*)?$" { inside = 1; next }
		inside && (/^[^ #]/ || /^ [^ #]/ || /^  [^ #]/) { exit }
		inside { print }
	' "$compose_file"
}

# Short syntax, optionally with a host address or /tcp: "8080:8080",
# "127.0.0.1:8080:8080", 8080:8080/tcp; or long syntax "published: 8080".
if service_block console | grep -Eq \
	-e "^[[:space:]]*-[[:space:]]*[\"']?([0-9.]+:)?8080:8080(/tcp)?[\"']?[[:space:]]*(#.*)?$" \
	-e "^[[:space:]]*(-[[:space:]]*)?published:[[:space:]]*[\"']?8080[\"']?[[:space:]]*$"; then
	ok "console publishes port 8080"
else
	fail "the console service does not publish 8080:8080 (the README sends users to http://localhost:8080)"
fi

# --- 3. Files the stack takes from the repository ---------------------------
# Bind mounts in short syntax, "- ./path:/target[:ro]", relative to deploy/.
mounts=$(grep -Eo "^[[:space:]]*-[[:space:]]*[\"']?\./[^:\"' ]+" "$compose_file" |
	sed -E "s/^[[:space:]]*-[[:space:]]*[\"']?//" || true)
for m in $mounts; do
	if [[ -e $repo_dir/deploy/$m ]]; then
		ok "bind mount deploy/${m#./} exists"
	else
		fail "deploy/docker-compose.yml mounts $m, but deploy/${m#./} does not exist"
	fi
done

# COPY sources from the build context (the repository root); COPY --from=stage
# copies from another stage and is not checked.
if [[ ! -f $dockerfile ]]; then
	fail "deploy/Dockerfile does not exist (the tumblegate and sim services build it)"
else
	copies=$(awk '
		toupper($1) == "COPY" {
			line = $0
			while (line ~ /\\[[:space:]]*$/ && (getline cont) > 0) {
				sub(/\\[[:space:]]*$/, " ", line)
				line = line cont
			}
			n = split(line, w, /[[:space:]]+/)
			if (w[2] ~ /^--from=/) next
			for (i = 2; i < n; i++) if (w[i] !~ /^--/) print w[i]
		}' "$dockerfile")
	for c in $copies; do
		[[ $c == . ]] && continue
		if [[ -e $repo_dir/$c ]]; then
			ok "Dockerfile COPY source $c exists"
		else
			fail "deploy/Dockerfile copies $c, which does not exist in the repository"
		fi
	done
	if ! grep -Eq '^COPY[[:space:]]+deploy/compose/tumblegate\.yaml[[:space:]]' "$dockerfile"; then
		fail "deploy/Dockerfile does not copy deploy/compose/tumblegate.yaml into the image"
	fi
fi
[[ -f $gateway_config ]] || fail "deploy/compose/tumblegate.yaml does not exist"

# --- 4. The gateway accepts the configuration the image runs with -----------
if [[ -n $tumblegate_bin ]]; then
	if [[ ! -x $tumblegate_bin ]]; then
		fail "$tumblegate_bin is not an executable tumblegate binary"
	elif out=$("$tumblegate_bin" --check-config -c "$gateway_config" 2>&1) &&
		grep -q 'configuration OK' <<<"$out"; then
		ok "tumblegate --check-config accepts deploy/compose/tumblegate.yaml"
	else
		fail "tumblegate rejects deploy/compose/tumblegate.yaml:"
		printf '%s\n' "$out" | sed 's/^/    /' >&2
	fi
else
	echo "check-compose: note: no tumblegate binary given; deploy/compose/tumblegate.yaml not validated"
fi

if ((failures)); then
	echo "check-compose: $failures check(s) failed" >&2
	exit 1
fi
echo "check-compose: all checks passed"
