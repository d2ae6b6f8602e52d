#!/usr/bin/env bash
# test_status_page.sh - the status page at / in a real browser (Debian's headless Chromium), with Kafka up and down, and its authentication.
# SPDX-License-Identifier: Apache-2.0
#
# 12 sensors under field conditions through the real stack. Chromium loads
# the page, runs its scripts (the live refresh must have swapped the page
# in at least once) and dumps the DOM: one row per sensor, each with a
# chart, and every number the page marks with data-metric equal to
# /metrics. Then Kafka is stopped and more readings arrive: the page must
# say Kafka is unreachable and still show the new readings; its screenshot
# then is docs/status-page.png's source (TG_UPDATE_SCREENSHOT=1 copies it
# there). Last, bound to 0.0.0.0 the page is refused without
# status.password, and asks for it (basic authentication) with one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT

command -v chromium >/dev/null || fail "chromium is not installed (deploy/install-deps.sh)"
browser() {
	# --no-sandbox: tests run as root in CI containers, where Chromium's
	# sandbox cannot start. The page is ours and local.
	timeout 60 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--user-data-dir="$work/chromium" --virtual-time-budget=4500 "$@" 2>>"$work/chromium.log"
}

# The page's number for metric $2 in DOM file $1.
page_number() {
	grep -o "data-metric=\"$2\">[0-9]*" "$1" | head -n 1 | sed 's/.*>//'
}

check_page() { # DOM METRICS SENSORS
	local dom=$1 n name want got
	grep -q '<body data-refreshes="[1-9]' "$dom" || fail "the page's refresh script did not run: $(head -c 300 "$dom")"
	n=$(grep -c '<tr class="sensor"' "$dom" || true)
	((n == $3)) || fail "$n sensor rows, want $3"
	n=$(grep -c '<tr class="sensor".*<polyline' "$dom" || true)
	((n == $3)) || fail "$n sensor rows with a chart, want $3"
	for name in $(grep -o 'data-metric="[a-z_]*"' "$dom" | sed 's/.*="\(.*\)"/\1/' | sort -u); do
		want=$(metric "$2" "$name")
		got=$(page_number "$dom" "$name")
		[[ $got == "$want" ]] || fail "page shows $name=$got, /metrics $want"
	done
}

gateway_start --set window.size=5s --set window.grace=1s --set window.idle_timeout=2s \
	--set status.windows=12
start_ms=$(( ($(date +%s) - 600) * 1000 ))
sim --sensors 12 --rate 10 --duration 90 --fast --qos 1 --seed 4 --start-ms "$start_ms" \
	--reorder 300 --late 0.02 --late-ms 3000 --duplicate 0.01 --quiet ||
	fail "simulator failed"
sleep 4 # idle close of the last windows (2 s), and a published copy
scrape "$work/metrics-up" >/dev/null
browser --dump-dom "$(metrics_url /)" >"$work/dom-up.html" || fail "chromium failed: $(tail "$work/chromium.log")"
check_page "$work/dom-up.html" "$work/metrics-up" 12
grep -q 'id="kafka" class="ok">reachable' "$work/dom-up.html" || fail "Kafka not shown reachable"
log "Kafka up: 12 sensor rows with charts, every number equal to /metrics"

# The uplink goes down: the page is for exactly this.
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
sim --sensors 12 --rate 10 --duration 20 --fast --qos 1 --seed 5 \
	--start-ms "$((start_ms + 200000))" --quiet || fail "simulator failed with Kafka down"
for ((i = 0; i < 100; i++)); do
	scrape "$work/metrics-down" >/dev/null
	(($(metric "$work/metrics-down" tumblegate_kafka_reachable) == 0)) &&
		(($(metric "$work/metrics-down" tumblegate_readings_decoded_total) >= 12 * 1100)) && break
	sleep 0.3
done
sleep 3
scrape "$work/metrics-down" >/dev/null
browser --dump-dom "$(metrics_url /)" >"$work/dom-down.html" || fail "chromium failed"
check_page "$work/dom-down.html" "$work/metrics-down" 12
grep -q 'id="kafka" class="bad">unreachable' "$work/dom-down.html" || fail "Kafka not shown unreachable"
grep -q 'id="backlog-age">oldest at least' "$work/dom-down.html" || fail "no backlog age with Kafka down"
browser --screenshot="$work/status-page.png" --window-size=1500,1000 "$(metrics_url /)" ||
	fail "chromium took no screenshot"
[[ -s $work/status-page.png ]] || fail "empty screenshot"
if [[ ${TG_UPDATE_SCREENSHOT:-0} == 1 ]]; then cp "$work/status-page.png" "$repo_dir/docs/status-page.png"; fi
log "Kafka down: the page says so and still shows every reading taken"
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
gateway_stop

# Bound to every address: no page without a password ...
any_url() { # PATH: the endpoint bound to 0.0.0.0, as logged
	local port
	port=$(grep -oE 'metrics: serving http://0\.0\.0\.0:[0-9]+' "$work/gateway.log" | tail -n 1 | sed 's/.*://')
	printf 'http://127.0.0.1:%s%s' "$port" "$1"
}
gateway_start --set metrics.listen=0.0.0.0:0
code=$(curl -s -o "$work/body" -w '%{http_code}' "$(any_url /)")
[[ $code == 403 ]] && grep -q status.password "$work/body" || fail "page on 0.0.0.0 without a password: $code"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$(any_url /metrics)") == 200 ]] || fail "/metrics refused"
gateway_stop
# ... and with one, basic authentication.
gateway_start --set metrics.listen=0.0.0.0:0 --set status.password=s3cret-pw
code=$(curl -s -o /dev/null -D "$work/headers" -w '%{http_code}' "$(any_url /)")
[[ $code == 401 ]] && grep -qi '^WWW-Authenticate: Basic realm="tumblegate"' "$work/headers" ||
	fail "no password: $code $(cat "$work/headers")"
[[ $(curl -s -o /dev/null -w '%{http_code}' -u tumblegate:wrong "$(any_url /)") == 401 ]] ||
	fail "a wrong password was taken"
[[ $(curl -s -o "$work/page" -w '%{http_code}' -u tumblegate:s3cret-pw "$(any_url /)") == 200 ]] ||
	fail "the right password was refused"
grep -q '<main>' "$work/page" || fail "no page with the right password"
gateway_stop
log "PASS: the page in Chromium equals /metrics with Kafka up and down; 403 without and basic authentication with status.password off loopback"
