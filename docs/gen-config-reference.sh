#!/usr/bin/env bash
# docs/gen-config-reference.sh - rewrites the option table in docs/configuration.md from the gateway's own table.
# SPDX-License-Identifier: Apache-2.0
# Usage: docs/gen-config-reference.sh [BUILD_DIR]   (default: build)
set -euo pipefail
repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
doc=$repo_dir/docs/configuration.md
gateway=${1:-$repo_dir/build}/gateway/tumblegate
{
	sed '/^| option |/,$d' "$doc"
	"$gateway" --help-config
} >"$doc.tmp"
mv "$doc.tmp" "$doc"
