#!/usr/bin/env bash
# test_kafka_sasl.sh - the gateway produces through the stack's SASL_SSL listener; a wrong password fails with a message that names the options, and no password is printed.
# SPDX-License-Identifier: Apache-2.0
#
# The stack's broker has a SASL_SSL listener (SASL PLAIN over TLS, see
# deploy/stack.sh). The gateway is configured the documented way: kafka.*
# keys passed to librdkafka, the password taken from the environment by
# ${...} in the YAML file. The readings are checked on the plaintext
# listener. SCRAM is not tested: against Kafka 4 it needs librdkafka 2.6.1
# or later, and Debian 12 ships 2.0.2.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ -n ${TG_KAFKA_SASL_PASSWORD:-} && -r ${TG_KAFKA_CA:-} ]] ||
	fail "deploy/stack.sh env gives no SASL_SSL listener (TG_KAFKA_SASL_PASSWORD, TG_KAFKA_CA)"
wrong_pass="wrong-$(openssl rand -hex 12)"
export TG_TEST_KAFKA_PASSWORD=$TG_KAFKA_SASL_PASSWORD
cat >"$work/sasl.yaml" <<EOF
kafka:
  security.protocol: SASL_SSL
  sasl.mechanism: PLAIN
  sasl.username: $TG_KAFKA_SASL_USER
  sasl.password: \${TG_TEST_KAFKA_PASSWORD}
  ssl.ca.location: $TG_KAFKA_CA
EOF

# --- delivery through the SASL_SSL listener ----------------------------------

# (lib.sh's gateway_start sets kafka.bootstrap.servers after the file.)
gateway_start --config "$work/sasl.yaml" --set "kafka.bootstrap.servers=$TG_KAFKA_SASL_BROKERS" \
	--set window.idle_timeout=3s
grep -q "starting: mqtt .* -> kafka $TG_KAFKA_SASL_BROKERS " "$work/gateway.log" ||
	fail "the gateway does not produce to the SASL_SSL listener $TG_KAFKA_SASL_BROKERS"
start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
sim --id-prefix sasl- --format json --sensors 5 --rate 10 --duration 10 --fast --qos 1 \
	--seed 31 --start-ms "$start_ms" --truth "$work/truth.jsonl" --quiet || fail "simulator failed"
verify -t "$work/truth.jsonl" -w 10000 -T 120 -s 2 || fail "Kafka does not match the truth"
gateway_stop
grep -E "kafka: (authentication failed|TLS error)" "$work/gateway.log" &&
	fail "authentication or TLS errors with the right settings"
log "delivered $(wc -l <"$work/truth.jsonl") readings through SASL_SSL at $TG_KAFKA_SASL_BROKERS"

# --- a wrong password: a clear message, and nothing produced ----------------

run_id=$run_id-wrong
export TG_TEST_KAFKA_PASSWORD=$wrong_pass
gateway_start --config "$work/sasl.yaml" --set "kafka.bootstrap.servers=$TG_KAFKA_SASL_BROKERS" \
	--set "state.dir=$work/state-wrong" --set shutdown.timeout=1s
wait_log "error: kafka: authentication failed: .*SASL authentication error.*; check kafka\.sasl\.username, kafka\.sasl\.password and kafka\.sasl\.mechanism" 30
sim --id-prefix wrong- --format json --sensors 2 --rate 10 --duration 2 --fast --qos 1 \
	--seed 32 --start-ms "$start_ms" --quiet || fail "simulator failed"
wait_log "stats: received=40 " 15
sleep 3
gateway_kill
grep "stats:" "$work/gateway.log" | tail -n 1 | grep -q "delivered_raw=0 " ||
	fail "records delivered with a wrong password: $(grep 'stats:' "$work/gateway.log" | tail -n 1)"
n=$({ kcat -C -b "$TG_KAFKA_BROKERS" -t "$run_id.raw" -o beginning -e -q 2>/dev/null || true; } | wc -l)
((n == 0)) || fail "$n records in $run_id.raw with a wrong password"
log "wrong password refused: $(grep -m 1 -o 'kafka: authentication failed.*' "$work/gateway.log" | cut -c 1-200)"

# --- secrets: in no log, nor in --check-config ------------------------------

export TG_TEST_KAFKA_PASSWORD=$TG_KAFKA_SASL_PASSWORD
"$build_dir/gateway/tumblegate" --config "$work/sasl.yaml" --set "state.dir=$work/state-check" \
	--check-config >"$work/check-config.out" 2>&1 || fail "--check-config failed: $(cat "$work/check-config.out")"
grep -qx 'kafka.sasl.password: "\*\*\*"' "$work/check-config.out" ||
	fail "--check-config does not mask kafka.sasl.password"
for f in "$work/gateway.log" "$work/check-config.out"; do
	for secret in "$TG_KAFKA_SASL_PASSWORD" "$wrong_pass"; do
		if grep -qF -- "$secret" "$f"; then
			fail "a secret is printed in $(basename "$f"): $(grep -F -- "$secret" "$f" | head -n 1 | cut -c 1-200)"
		fi
	done
done
log "PASS: SASL_SSL delivery exact; wrong password refused with a clear message; no password printed"
