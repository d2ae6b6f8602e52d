# deploy/lib.sh - sourced by the scripts that install packages: how to run a command as root.
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
#
# tg_sudo_init: sets sudo_cmd to the prefix that runs a command as root,
# nothing when already root and (sudo) otherwise; when neither can work it
# says so through the caller's log() and exits 1.
tg_sudo_init() {
	sudo_cmd=()
	if [[ $(id -u) -ne 0 ]]; then
		if ! command -v sudo >/dev/null 2>&1; then
			log "not root and sudo is not installed; run this script as root" >&2
			exit 1
		fi
		sudo_cmd=(sudo)
	fi
}
