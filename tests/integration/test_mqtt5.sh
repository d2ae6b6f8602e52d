#!/usr/bin/env bash
# test_mqtt5.sh - MQTT 5 against mosquitto with clients no one here wrote: headers, event time, expiry, sessions, Receive Maximum.
# SPDX-License-Identifier: Apache-2.0
#
# Publishers are mosquitto_pub -V 5 (-D publish ...) and Python paho-mqtt 2.x
# (pinned, installed into a cache directory on first use) for what
# mosquitto_pub cannot send: binary correlation data. Every assertion reads
# what reached Kafka (kcat) or the gateway's metrics.
#   1. user properties (order and repeats), content type, response topic and
#      correlation data as mqtt.* headers on the raw and dead-letter records;
#      the timestamp.property user property as the record's time when the
#      payload has none, the payload's time when it has one;
#   2. message expiry: with Kafka stopped and the producer's queue full, a
#      2 s message waits in the spool past its expiry: not forwarded,
#      counted; a 600 s one is forwarded;
#   3. session expiry: QoS 1 messages published while the gateway is stopped
#      arrive after its restart (session resumed; a retained message is not
#      sent again: Retain Handling 1); with mqtt.session_expiry 1s and a
#      longer stop they do not (a new session);
#   4. Receive Maximum: with the spool full and acknowledgements held, under
#      MQTT 5 (receive maximum 1) the broker keeps the backlog: nothing waits
#      in the gateway's socket; under 3.1.1 the broker pushes its whole
#      in-flight window (max_inflight_messages) into it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

trap 'cleanup; "$repo_dir/deploy/stack.sh" start kafka >/dev/null' EXIT
mqtt_port=${TG_MQTT_URI##*:}
mqtt_host=${TG_MQTT_URI#tcp://}
mqtt_host=${mqtt_host%:*}
pub() { mosquitto_pub -V 5 -h "$mqtt_host" -p "$mqtt_port" -q 1 "$@"; }

# Python paho-mqtt, pinned, in a cache shared by runs.
paho_version=2.1.0
pydeps=${TG_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tumblegate-tests}/paho-mqtt-$paho_version
if [[ ! -f $pydeps/paho/mqtt/client.py ]]; then
	python3 -m pip install --quiet --disable-pip-version-check --target "$pydeps" \
		"paho-mqtt==$paho_version" >&2 || fail "cannot install paho-mqtt $paho_version"
fi

# records TOPIC: every record of TOPIC as "ts<TAB>headers<TAB>value", headers
# as kcat prints them (name=value,...).
records() {
	kcat -C -b "$TG_KAFKA_BROKERS" -t "$1" -o beginning -e -q -f '%T\t%h\t%s\n' 2>/dev/null || true
}
# wait_record TOPIC TEXT [SECONDS]: a record of TOPIC contains TEXT.
wait_record() {
	local i
	for ((i = 0; i < ${3:-20} * 4; i++)); do
		records "$1" | grep -qF -- "$2" && return 0
		sleep 0.25
	done
	fail "no record with '$2' on $1 after ${3:-20} s"
}
record_of() { records "$1" | grep -F -- "$2" | head -n 1; }

# A producer queue of 10 records: during the Kafka outage below, messages
# beyond it wait in the spool, where their expiry is checked.
gateway_start --set input.timestamp.property=captured --set input.timestamp.missing=reject \
	--set kafka.queue.buffering.max.messages=10
grep -q "MQTT 5 session started (session expiry 604800 s" "$work/gateway.log" ||
	fail "the gateway did not start an MQTT 5 session with the default expiry of a week"

# ---- 1. headers and event time ---------------------------------------------
now=$(date +%s%3N)
captured=$((now - 90000))
pub -t "$run_id/h1/telemetry" -m '{"sensor":"h1","t":1.5}' \
	-D publish user-property line L7 -D publish content-type application/json \
	-D publish user-property captured "$captured" -D publish response-topic "reply/$run_id" \
	-D publish correlation-data req-42 -D publish user-property line L8 \
	-D publish message-expiry-interval 600
pub -t "$run_id/h2/telemetry" -m "{\"sensor\":\"h2\",\"ts\":$((now - 1000)),\"t\":2}" \
	-D publish user-property captured "$captured"
pub -t "$run_id/h3/telemetry" -m '{"sensor":"h3","t":3}' -D publish user-property line L9
# retained: sent once (Retain Handling 1), not again at each resubscription
pub -r -t "$run_id/rt/telemetry" -m "{\"sensor\":\"rt\",\"ts\":$now,\"t\":1}"
PYTHONPATH=$pydeps python3 - "$mqtt_host" "$mqtt_port" "$run_id/h4/telemetry" <<'EOF' ||
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
c.connect(host, port)
c.loop_start()
p = Properties(PacketTypes.PUBLISH)
p.CorrelationData = b"\x00\x01\xfe\xff"
p.UserProperty = [("zone", "Halle 3 \u00b0C"), ("zone", "2")]
c.publish(topic, b'{"sensor":"h4","ts":1700000000123,"t":4}', qos=1, properties=p).wait_for_publish(10)
c.disconnect()
c.loop_stop()
EOF
	fail "paho-mqtt could not publish"

wait_record "$run_id.raw" '"sensor":"h4"'
wait_record "$run_id.dlq" '"sensor":"h3"'
rec=$(record_of "$run_id.raw" '"sensor":"h1"')
[[ -n $rec ]] || fail "h1 not on the raw topic"
[[ ${rec%%$'\t'*} == "$captured" ]] ||
	fail "h1: record time ${rec%%$'\t'*}, want the captured property's $captured"
want="mqtt.user.line=L7,mqtt.content_type=application/json,mqtt.user.captured=$captured,"
want+="mqtt.response_topic=reply/$run_id,mqtt.correlation_data=req-42,mqtt.user.line=L8"
hdrs=$(cut -f2 <<<"$rec")
[[ $hdrs == "$want" ]] || fail "h1 headers: '$hdrs', want '$want'"
rec=$(record_of "$run_id.raw" '"sensor":"h2"')
[[ ${rec%%$'\t'*} == "$((now - 1000))" ]] || fail "h2: the payload's time must win: $rec"
rec=$(record_of "$run_id.dlq" '"sensor":"h3"')
[[ $rec == *"tg.reason=missing_timestamp"*"mqtt.user.line=L9"* ]] ||
	fail "h3: dead letter without its reason and property headers: $rec"
# h4: UTF-8 values and binary correlation data, byte for byte (kcat's JSON
# envelope escapes control bytes and passes the others through unchanged)
kcat -C -b "$TG_KAFKA_BROKERS" -t "$run_id.raw" -o beginning -e -q -J 2>/dev/null >"$work/raw.json" || true
python3 -c '
import sys
want = (b"\"headers\":[\"mqtt.correlation_data\",\"\\u0000\\u0001\xfe\xff\","
        + "\"mqtt.user.zone\",\"Halle 3 \u00b0C\",\"mqtt.user.zone\",\"2\"]".encode())
lines = [l for l in open(sys.argv[1], "rb") if b"\"key\":\"h4\"" in l]
sys.exit(0 if lines and want in lines[0] else 1)
' "$work/raw.json" || fail "h4: binary correlation data or UTF-8 properties changed on their way"
log "1: headers in order with repeats, binary and UTF-8 values, event time from the property"

# ---- 2. message expiry in the spool ----------------------------------------
"$repo_dir/deploy/stack.sh" stop kafka >/dev/null
for ((i = 0; i < 12; i++)); do # fill the producer's queue
	pub -t "$run_id/f/telemetry" -m "{\"sensor\":\"f\",\"ts\":$(date +%s%3N),\"t\":$i}"
done
pub -t "$run_id/e1/telemetry" -m "{\"sensor\":\"e1\",\"ts\":$(date +%s%3N),\"t\":1}" \
	-D publish message-expiry-interval 2
pub -t "$run_id/e2/telemetry" -m "{\"sensor\":\"e2\",\"ts\":$(date +%s%3N),\"t\":2}" \
	-D publish message-expiry-interval 600
sleep 3
"$repo_dir/deploy/stack.sh" start kafka >/dev/null
wait_record "$run_id.raw" '"sensor":"e2"' 40
[[ $(scrape "$work/m") == 200 ]] || fail "no metrics"
for ((i = 0; i < 20; i++)); do
	(($(metric "$work/m" tumblegate_messages_expired_total) >= 1)) && break
	sleep 0.25
	scrape "$work/m" >/dev/null
done
(($(metric "$work/m" tumblegate_messages_expired_total) == 1)) ||
	fail "expired: $(metric "$work/m" tumblegate_messages_expired_total), want 1"
records "$run_id.raw" | grep -qF '"sensor":"e1"' && fail "e1 expired in the spool but was forwarded"
grep -q "message expired in the spool (Message Expiry Interval 2 s" "$work/gateway.log" ||
	fail "the expiry was not logged"
check_accounting "$work/m"
log "2: expired in the spool: not forwarded, counted, logged"

# ---- 3. session expiry -----------------------------------------------------
gateway_stop
for s in s1 s2 s3; do
	pub -t "$run_id/$s/telemetry" -m "{\"sensor\":\"$s\",\"ts\":$(date +%s%3N),\"t\":1}"
done
gateway_start
grep -q "MQTT 5 session resumed" "$work/gateway.log" || fail "the session was not resumed"
for s in s1 s2 s3; do wait_record "$run_id.raw" "\"sensor\":\"$s\""; done
# a marker behind anything the resubscription made the broker send
pub -t "$run_id/m1/telemetry" -m "{\"sensor\":\"m1\",\"ts\":$(date +%s%3N),\"t\":1}"
wait_record "$run_id.raw" '"sensor":"m1"'
n=$(records "$run_id.raw" | grep -cF '"sensor":"rt"' || true)
((n == 1)) || fail "the retained message arrived $n times: resubscribing sent it again"
pub -r -n -t "$run_id/rt/telemetry" # clear it
gateway_stop
gateway_start --set mqtt.session_expiry=1s
gateway_stop
pub -t "$run_id/x1/telemetry" -m "{\"sensor\":\"x1\",\"ts\":$(date +%s%3N),\"t\":1}"
sleep 3
gateway_start
(($(grep -c "MQTT 5 session started" "$work/gateway.log") == 2)) ||
	fail "after the short session expiry the broker should have started a new session"
pub -t "$run_id/x2/telemetry" -m "{\"sensor\":\"x2\",\"ts\":$(date +%s%3N),\"t\":1}"
wait_record "$run_id.raw" '"sensor":"x2"'
records "$run_id.raw" | grep -qF '"sensor":"x1"' &&
	fail "x1 arrived although the session had expired"
gateway_stop
log "3: the session outlived a stop (retained message not sent again); with a 1 s expiry it did not"

# ---- 4. Receive Maximum with the spool full --------------------------------
# A gateway whose Kafka is not there (port 1), a 1 MiB spool, and 3000
# messages of 500 bytes: the spool fills, the message callback waits, no
# acknowledgements go out. What sits unread in the gateway's socket is
# what the broker pushed ahead of its acknowledgements.
pad=$(head -c 420 /dev/zero | tr '\0' x)
for ((i = 0; i < 3000; i++)); do
	printf '{"sensor":"r%d","ts":%s,"t":%d,"pad":"%s"}\n' $((i % 10)) "$now" "$i" "$pad"
done >"$work/burst"
# unread_bytes VERSION RECEIVE_MAXIMUM: the gateway's MQTT socket's Recv-Q
# once the spool is full and acknowledging has stopped.
unread_bytes() {
	local id=$run_id-rm-$1 q i
	rm -rf "$work/rm"
	: >"$work/rm.log"
	"$build_dir/gateway/tumblegate" --set "mqtt.uri=$TG_MQTT_URI" --set "mqtt.client_id=$id" \
		--set "mqtt.topic=$id/+" --set kafka.bootstrap.servers=127.0.0.1:1 \
		--set topics.create=no --set "state.dir=$work/rm" --set metrics.listen=127.0.0.1:0 \
		--set spool.max_bytes=1048576 --set spool.segment_bytes=65536 \
		--set "mqtt.version=$1" --set "mqtt.receive_maximum=$2" >"$work/rm.log" 2>&1 &
	local pid=$!
	for ((i = 0; i < 100; i++)); do
		grep -q "mqtt: subscribed" "$work/rm.log" && break
		sleep 0.1
	done
	mosquitto_pub -h "$mqtt_host" -p "$mqtt_port" -q 1 -t "$id/b" -l <"$work/burst" &
	local publisher=$!
	for ((i = 0; i < 150; i++)); do
		grep -q "spool full" "$work/rm.log" && break
		sleep 0.1
	done
	grep -q "spool full" "$work/rm.log" || fail "$1: the spool did not fill"
	sleep 2 # the broker sends what it may
	q=$(ss -tnp | grep "pid=$pid," | grep ":$mqtt_port " | awk '{print $2}' | head -n 1)
	kill -KILL "$pid" "$publisher" 2>/dev/null || true
	wait "$pid" "$publisher" 2>/dev/null || true
	[[ -n $q ]] || fail "$1: no MQTT socket of the gateway found"
	echo "$q"
}
q5=$(unread_bytes 5 1)
q3=$(unread_bytes 3.1.1 auto)
log "4: unread in the gateway's socket with the spool full: MQTT 5 (receive maximum 1) $q5 bytes, 3.1.1 $q3 bytes"
# 5: at most the one message Paho has not read yet; 3.1.1: the broker's window.
((q5 <= 600)) || fail "MQTT 5, receive maximum 1: $q5 bytes unread, the broker did not hold back"
((q3 > 50 * 500)) || fail "MQTT 3.1.1: only $q3 bytes unread: the contrast shows nothing"

log "PASS: MQTT 5 headers, event time, message and session expiry, receive maximum"
