#!/usr/bin/env bash
# test_mqtt_tls.sh - the gateway at a broker over TLS, mutual TLS and user/password; wrong settings fail with a message that names the fix.
# SPDX-License-Identifier: Apache-2.0
#
# A CA, a server certificate for 127.0.0.1 and a client certificate (its key
# encrypted) are made here with openssl, and this test starts its own
# mosquitto with four listeners on free ports: plaintext (the simulator
# publishes there), TLS, TLS requiring a client certificate, and TLS with a
# password file. The gateway must deliver every reading to Kafka through
# each secured listener, must fail clearly (and keep retrying, without
# flooding the log) with a wrong CA, without a client certificate and with
# a wrong password, and must never print a password or key passphrase.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mosquitto_pid=
stop_mosquitto() {
	if [[ -n $mosquitto_pid ]] && kill -0 "$mosquitto_pid" 2>/dev/null; then
		kill -TERM "$mosquitto_pid" 2>/dev/null || true
		wait "$mosquitto_pid" 2>/dev/null || true
	fi
	mosquitto_pid=
}
trap 'stop_mosquitto; cleanup' EXIT

port_open() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a port in 20000..29999 nobody listens on and not handed out yet.
taken_ports=" "
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 10000))
		[[ $taken_ports == *" $p "* ]] && continue
		if ! port_open "$p"; then
			taken_ports+="$p "
			echo "$p"
			return 0
		fi
	done
	fail "no free TCP port found in 20000..29999"
}

# --- certificates and secrets, made for this run only ------------------------

pki=$work/pki
mkdir -p "$pki"
key_pass="kp-$(openssl rand -hex 12)"   # passphrase of the client key
mqtt_pass="mp-$(openssl rand -hex 12)"  # the gateway's MQTT password
wrong_pass="wp-$(openssl rand -hex 12)" # a wrong one, which must not leak either

x509() { openssl "$@" 2>>"$pki/openssl.log" || fail "openssl $1 failed: $(tail -n 5 "$pki/openssl.log")"; }
x509 req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tumblegate test CA" \
	-keyout "$pki/ca.key" -out "$pki/ca.pem"
x509 req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=some other CA" \
	-keyout "$pki/other-ca.key" -out "$pki/other-ca.pem"
x509 req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$pki/server.key" -out "$pki/server.csr"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$pki/server.ext"
x509 x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
	-CAcreateserial -days 2 -extfile "$pki/server.ext" -out "$pki/server.pem"
x509 req -newkey rsa:2048 -subj "/CN=tumblegate-gw" -passout "pass:$key_pass" \
	-keyout "$pki/client.key" -out "$pki/client.csr"
printf 'extendedKeyUsage=clientAuth\n' >"$pki/client.ext"
x509 x509 -req -in "$pki/client.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
	-CAcreateserial -days 2 -extfile "$pki/client.ext" -out "$pki/client.pem"
grep -q "ENCRYPTED PRIVATE KEY" "$pki/client.key" || fail "the client key is not encrypted"

# --- this test's own mosquitto ----------------------------------------------

plain_port=$(free_port)
tls_port=$(free_port)
mtls_port=$(free_port)
user_port=$(free_port)
mosquitto_passwd -c -b "$work/passwd" gw-user "$mqtt_pass" >/dev/null ||
	fail "mosquitto_passwd failed"
tls_files="cafile $pki/ca.pem
certfile $pki/server.pem
keyfile $pki/server.key"
cat >"$work/mosquitto.conf" <<EOF
# Each listener has its own authentication settings.
per_listener_settings true
user $(id -un)
log_dest file $work/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages true

listener $plain_port 127.0.0.1
allow_anonymous true

listener $tls_port 127.0.0.1
allow_anonymous true
$tls_files

listener $mtls_port 127.0.0.1
allow_anonymous true
$tls_files
require_certificate true

listener $user_port 127.0.0.1
allow_anonymous false
password_file $work/passwd
$tls_files
EOF
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
mosquitto_pid=$!
for ((i = 0; i < 100; i++)); do
	mosquitto_sub -h 127.0.0.1 -p "$plain_port" -t tg/probe -E -W 2 >/dev/null 2>&1 && break
	kill -0 "$mosquitto_pid" 2>/dev/null || fail "mosquitto exited: $(cat "$work/mosquitto.out" "$work/mosquitto.log" 2>/dev/null)"
	sleep 0.1
done
for p in "$tls_port" "$mtls_port" "$user_port"; do
	port_open "$p" || fail "mosquitto is not listening on $p"
done
log "mosquitto: plain $plain_port, tls $tls_port, mtls $mtls_port, user/password $user_port"

# The simulator (lib.sh's sim) publishes at the plaintext listener.
TG_MQTT_URI=tcp://127.0.0.1:$plain_port
base_id=$run_id
export TG_TEST_MQTT_PASSWORD=$mqtt_pass TG_TEST_KEY_PASSWORD=$key_pass

# --- positive cases: every reading through each secured listener -------------

# deliver NAME SEED ARGS...: gateway with ARGS, 5 sensors x 10 s at 10 Hz,
# every reading and window checked in Kafka.
deliver() {
	local name=$1 seed=$2 start_ms
	shift 2
	run_id=$base_id-$name
	gateway_start --set "state.dir=$work/state-$name" --set window.idle_timeout=3s "$@"
	start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
	sim --id-prefix "$name-" --format json --sensors 5 --rate 10 --duration 10 --fast \
		--qos 1 --seed "$seed" --start-ms "$start_ms" --truth "$work/truth-$name.jsonl" --quiet ||
		fail "$name: simulator failed"
	verify -t "$work/truth-$name.jsonl" -w 10000 -T 120 -s 2 || fail "$name: Kafka does not match the truth"
	gateway_stop
	log "$name: $(wc -l <"$work/truth-$name.jsonl") readings delivered"
}

deliver tls 11 --set "mqtt.uri=ssl://127.0.0.1:$tls_port" --set "mqtt.tls.ca_file=$pki/ca.pem"

# Mutual TLS with the encrypted key, its passphrase from the environment
# through ${...} in the YAML file, as the documentation recommends.
cat >"$work/mtls.yaml" <<EOF
mqtt:
  uri: ssl://127.0.0.1:$mtls_port
  tls:
    ca_file: $pki/ca.pem
    cert_file: $pki/client.pem
    key_file: $pki/client.key
    key_password: \${TG_TEST_KEY_PASSWORD}
EOF
# (lib.sh's gateway_start sets mqtt.uri after the file, so it is set again.)
deliver mtls 12 --config "$work/mtls.yaml" --set "mqtt.uri=ssl://127.0.0.1:$mtls_port"

cat >"$work/user.yaml" <<EOF
mqtt:
  uri: ssl://127.0.0.1:$user_port
  username: gw-user
  password: \${TG_TEST_MQTT_PASSWORD}
  tls:
    ca_file: $pki/ca.pem
EOF
deliver user 13 --config "$work/user.yaml" --set "mqtt.uri=ssl://127.0.0.1:$user_port"

# --- negative cases: a clear message, retries at the backoff's pace, nothing delivered

# refused NAME PATTERN ARGS...: the gateway never connects; PATTERN (an ERE)
# is logged for each attempt, at least twice (it retries) and at most 6 times
# in 8 s (the backoff: 1 s doubling, +-50 %); nothing it could have taken
# reaches Kafka.
refused() {
	local name=$1 pattern=$2 glog pid n i start_ms
	glog=$work/gw-$name.log
	shift 2
	run_id=$base_id-$name
	"$build_dir/gateway/tumblegate" \
		--set "mqtt.client_id=$run_id-gw" --set "mqtt.topic=$run_id/+/telemetry" \
		--set "kafka.bootstrap.servers=$TG_KAFKA_BROKERS" \
		--set "topics.raw=$run_id.raw" --set "topics.agg=$run_id.agg" \
		--set "topics.dlq=$run_id.dlq" --set "state.dir=$work/state-$name" \
		--set metrics.listen=127.0.0.1:0 --set "mqtt.version=${TG_TEST_MQTT_VERSION:-5}" \
		"$@" >"$glog" 2>&1 &
	pid=$!
	for ((i = 0; i < 150; i++)); do
		(($(grep -cE "$pattern" "$glog") >= 2)) && break
		kill -0 "$pid" 2>/dev/null || fail "$name: gateway exited: $(tail -n 5 "$glog")"
		sleep 0.1
	done
	(($(grep -cE "$pattern" "$glog") >= 2)) || {
		tail -n 20 "$glog" >&2
		fail "$name: no two log lines matching '$pattern' in 15 s"
	}
	start_ms=$(( ($(date +%s) - 3600) / 10 * 10000 ))
	sim --id-prefix "$name-" --format json --sensors 2 --rate 10 --duration 2 --fast \
		--qos 1 --seed 20 --start-ms "$start_ms" --quiet || fail "$name: simulator failed"
	sleep 5
	kill -TERM "$pid"
	wait "$pid" || fail "$name: gateway exited with status $? after SIGTERM"
	n=$(grep -cE "$pattern" "$glog")
	((n <= 6)) || fail "$name: $n failure lines in about 8 s: the backoff is not respected"
	grep -q "mqtt: connected" "$glog" && fail "$name: the gateway connected"
	grep -qE "stats: received=0 .* mqtt_connects=0 " "$glog" ||
		fail "$name: the gateway took messages: $(grep 'stats:' "$glog" | tail -n 1)"
	n=$({ kcat -C -b "$TG_KAFKA_BROKERS" -t "$run_id.raw" -o beginning -e -q 2>/dev/null || true; } | wc -l)
	((n == 0)) || fail "$name: $n records in $run_id.raw"
	log "$name: refused as expected: $(grep -m 1 -oE "$pattern.*" "$glog" | cut -c 1-160)"
}

refused wrong_ca "mqtt: connect to ssl://127\.0\.0\.1:$tls_port failed: certificate verify failed: .*mqtt\.tls\.ca_file" \
	--set "mqtt.uri=ssl://127.0.0.1:$tls_port" --set "mqtt.tls.ca_file=$pki/other-ca.pem"
grep -q "certificate verify failed: the broker's certificate is not signed by a CA in mqtt.tls.ca_file ($pki/other-ca.pem)" \
	"$work/gw-wrong_ca.log" || fail "wrong_ca: the message does not name mqtt.tls.ca_file"

refused no_client_cert "mqtt: connect to ssl://127\.0\.0\.1:$mtls_port failed: the broker requires a client certificate .*set mqtt\.tls\.cert_file and mqtt\.tls\.key_file" \
	--set "mqtt.uri=ssl://127.0.0.1:$mtls_port" --set "mqtt.tls.ca_file=$pki/ca.pem"

# At debug level too, so that no library trace (Paho's protocol trace
# included) prints the password either.
# MQTT 3.1.1 says CONNACK 5; MQTT 5 a reason code (mosquitto: 0x87).
if [[ ${TG_TEST_MQTT_VERSION:-5} == 3.1.1 ]]; then
	refusal="not authorized \(CONNACK 5\)"
else
	refusal="(not authorized \(CONNACK reason code 0x87\)|bad user name or password \(CONNACK reason code 0x86\))"
fi
refused wrong_password "mqtt: connect to ssl://127\.0\.0\.1:$user_port refused by the broker: $refusal; check mqtt\.username and mqtt\.password" \
	--set "mqtt.uri=ssl://127.0.0.1:$user_port" --set "mqtt.tls.ca_file=$pki/ca.pem" \
	--set mqtt.username=gw-user --set "mqtt.password=$wrong_pass" --set log.level=debug
grep -q "paho: .* -> CONNECT" "$work/gw-wrong_password.log" ||
	fail "wrong_password: no protocol trace at debug level, so the secret check below proves less"

# --- secrets: in no log, nor in --check-config ------------------------------

"$build_dir/gateway/tumblegate" --config "$work/user.yaml" \
	--set "mqtt.tls.cert_file=$pki/client.pem" --set "mqtt.tls.key_file=$pki/client.key" \
	--set "mqtt.tls.key_password=$key_pass" --set "state.dir=$work/state-check" \
	--check-config >"$work/check-config.out" 2>&1 || fail "--check-config failed: $(cat "$work/check-config.out")"
grep -qx 'mqtt.password: "\*\*\*"' "$work/check-config.out" || fail "--check-config does not mask mqtt.password"
grep -qx 'mqtt.tls.key_password: "\*\*\*"' "$work/check-config.out" || fail "--check-config does not mask mqtt.tls.key_password"
for f in "$work/gateway.log" "$work"/gw-*.log "$work/check-config.out"; do
	for secret in "$key_pass" "$mqtt_pass" "$wrong_pass"; do
		if grep -qF -- "$secret" "$f"; then
			fail "a secret is printed in $(basename "$f"): $(grep -F -- "$secret" "$f" | head -n 1 | cut -c 1-200)"
		fi
	done
done
log "PASS: TLS, mutual TLS (encrypted key) and user/password deliver every reading; wrong CA, missing client certificate and wrong password fail clearly; no secret printed"
