#!/usr/bin/env bash
# test_operations.sh - what an operator meets: --check-config, secrets kept out, /readyz, a taken port, refused topics, SIGHUP.
# SPDX-License-Identifier: Apache-2.0
#
# Each step runs the real gateway against the real stack and checks what it
# says: the exit status and the message an operator would read.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

gw="$build_dir/gateway/tumblegate"

# --- --check-config: files the options name, ${ENV} secrets ------------------
cat >"$work/gw.yaml" <<EOF
mqtt:
  uri: ssl://127.0.0.1:8883
  username: gateway-1
  password: \${TG_IT_MQTT_PASSWORD}
  tls:
    ca_file: $work/no-such-ca.pem
kafka:
  sasl.username: gateway-1
  sasl.password: \${TG_IT_KAFKA_PASSWORD}
state:
  dir: $work/state
EOF
rc=0
TG_IT_MQTT_PASSWORD=mqtt-s3cret TG_IT_KAFKA_PASSWORD=kafka-s3cret \
	"$gw" -c "$work/gw.yaml" --check-config >"$work/check.out" 2>&1 || rc=$?
((rc == 2)) || fail "--check-config with a missing CA file exited $rc, want 2"
grep -q "mqtt.tls.ca_file: $work/no-such-ca.pem: No such file or directory" "$work/check.out" ||
	fail "--check-config did not name the missing file: $(cat "$work/check.out")"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" \
	-subj /CN=tumblegate-test-ca -days 1 2>/dev/null
sed -i "s#$work/no-such-ca.pem#$work/ca.pem#" "$work/gw.yaml"
rc=0
TG_IT_MQTT_PASSWORD=mqtt-s3cret "$gw" -c "$work/gw.yaml" --check-config >"$work/check.out" 2>&1 ||
	rc=$?
((rc == 2)) || fail "--check-config with an unset variable exited $rc, want 2"
grep -q "gw.yaml:9: kafka.sasl.password: environment variable TG_IT_KAFKA_PASSWORD is not set" \
	"$work/check.out" || fail "unset variable not reported: $(cat "$work/check.out")"

TG_IT_MQTT_PASSWORD=mqtt-s3cret TG_IT_KAFKA_PASSWORD=kafka-s3cret \
	"$gw" -c "$work/gw.yaml" --check-config >"$work/check.out" 2>&1 ||
	fail "--check-config refused a valid file: $(cat "$work/check.out")"
grep -q '^mqtt.password: "\*\*\*"$' "$work/check.out" || fail "mqtt.password not masked"
grep -q '^kafka.sasl.password: "\*\*\*"$' "$work/check.out" || fail "kafka.sasl.password not masked"
grep -q "s3cret" "$work/check.out" && fail "--check-config printed a secret"
"$gw" --help-config | grep -q "s3cret" && fail "--help-config printed a secret"

# --- /healthz and /readyz with no MQTT broker; the metrics port taken -------
# A port nothing listens on: the gateway runs, but is not ready.
"$gw" --set mqtt.uri=tcp://127.0.0.1:9 --set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" \
	--set "state.dir=$work/state2" --set metrics.listen=127.0.0.1:0 \
	--set "mqtt.client_id=$run_id-nomqtt" --set "topics.raw=$run_id.raw" \
	--set "topics.agg=$run_id.agg" --set topics.dlq= \
	--set mqtt.username=gw --set mqtt.password=mqtt-s3cret --set log.level=debug \
	--set kafka.sasl.password=kafka-s3cret >"$work/gateway.log" 2>&1 &
gateway_pid=$!
wait_log "metrics: serving" 10
[[ $(scrape "$work/healthz" /healthz) == 200 ]] || fail "/healthz is not 200 without MQTT"
expect_readyz 503 "not ready: mqtt: not connected" # Kafka reachable within 2 s; MQTT never
[[ $(scrape "$work/nf" /nothing) == 404 ]] || fail "an unknown path is not 404"
[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics is not 200"
grep -q "s3cret" "$work/metrics" && fail "/metrics shows a secret"
grep -q "s3cret" "$work/gateway.log" && fail "the debug log shows a secret"

taken=$(metrics_url / | sed 's#.*:\([0-9]*\)/#\1#')
rc=0
"$gw" --set "metrics.listen=127.0.0.1:$taken" --set "state.dir=$work/state3" \
	--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" >"$work/taken.log" 2>&1 || rc=$?
((rc != 0)) || fail "a second gateway started on a taken metrics port"
grep -q "cannot start: metrics.listen 127.0.0.1:$taken: cannot listen there" "$work/taken.log" ||
	fail "no clear message for a taken port: $(cat "$work/taken.log")"
gateway_stop

# --- topics: refused by the broker (one broker cannot hold 3 replicas) ------
gateway_start --set topics.replication_factor=3 --set "topics.late=$run_id.late3"
wait_log "the broker refused to create topic $run_id.late3: INVALID_REPLICATION_FACTOR" 30
grep -q "grant this client CreateTopics, or set topics.create: no" "$work/gateway.log" ||
	fail "the refusal does not say what to do"
gateway_stop

# --- SIGHUP reopens log.file (logrotate moves it away first) ----------------
"$gw" --set "log.file=$work/gw-file.log" --set "state.dir=$work/state4" \
	--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" --set "mqtt.uri=$TG_MQTT_URI" \
	--set "mqtt.client_id=$run_id-hup" --set metrics.listen= --set topics.dlq= \
	--set "topics.raw=$run_id.raw" --set "topics.agg=$run_id.agg" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for ((i = 0; i < 100; i++)); do
	grep -q "mqtt: subscribed" "$work/gw-file.log" 2>/dev/null && break
	sleep 0.1
done
grep -q "mqtt: subscribed" "$work/gw-file.log" || fail "nothing logged to log.file"
[[ -s $work/gateway.log ]] && fail "with log.file set the gateway wrote to stderr"
mv "$work/gw-file.log" "$work/gw-file.log.1"
kill -HUP "$gateway_pid"
sleep 0.5
gateway_stop
grep -q "stopped" "$work/gw-file.log" || fail "after SIGHUP the gateway did not write to a new log.file"
grep -q "stopped" "$work/gw-file.log.1" && fail "the gateway kept writing to the rotated log.file"

log "PASS: --check-config, secrets masked, /healthz /readyz, taken port, topic refusal, SIGHUP"
