#!/usr/bin/env bash
# test_sparkplug_rebirth.sh - Sparkplug B through mosquitto: data before a birth dead-lettered and answered by one NCMD rebirth request; a flood of made-up nodes does not keep the real one out.
# SPDX-License-Identifier: Apache-2.0
#
# The payloads are written here from the protobuf wire format and the
# specification's field numbers (python3, no protobuf library), the rebirth
# request is read by mosquitto_sub, the records by kcat: nothing of ours
# reads or writes the bytes we check. docs/sparkplug.md 5.3, 5.5, 7, 8.2
# (a table of 4 entries, flooded by 10 made-up edge nodes before the birth).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mqtt_port=${TG_MQTT_URI##*:}
group=$run_id
node=node1

# sp_payload FILE SEQ ALIAS VALUE [NAME]: a payload with the current time and
# one Float metric (by alias, and by name when NAME is given).
sp_payload() {
	python3 - "$@" <<'EOF'
import struct, sys, time
out, seq, alias, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
name = sys.argv[5] if len(sys.argv) > 5 else None
def varint(v):
    b = bytearray()
    while True:
        if v < 0x80:
            b.append(v); return bytes(b)
        b.append(v & 0x7f | 0x80); v >>= 7
def ld(field, data): return varint(field << 3 | 2) + varint(len(data)) + data
m = b""
if name: m += ld(1, name.encode())                         # name
m += varint(2 << 3) + varint(alias)                          # alias
if name: m += varint(4 << 3) + varint(9)                     # datatype Float
m += varint(12 << 3 | 5) + struct.pack("<f", value)          # float_value
p = varint(1 << 3) + varint(int(time.time() * 1000))         # timestamp
p += ld(2, m) + varint(3 << 3) + varint(seq)                 # metrics, seq
open(out, "wb").write(p)
EOF
}

gateway_start --set mqtt.format=sparkplug --set "mqtt.topic=spBv1.0/$group/#" \
	--set sparkplug.rebirth_interval=60s --set sparkplug.max_nodes=4

# Whoever listens on the node's command topic, as the edge node would.
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t "spBv1.0/$group/NCMD/+" -C 2 -W 5 \
	-F '%t %x' >"$work/ncmd" 2>/dev/null &
sub_pid=$!
sleep 0.5

# --- data before any birth: two NDATA within the interval -------------------
sp_payload "$work/before.bin" 7 1 20.0
for i in 1 2; do
	mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "spBv1.0/$group/NDATA/$node" \
		-f "$work/before.bin" || fail "mosquitto_pub failed"
done
# The request leaves at once (mqtt_source's sending thread); a real node keeps
# sending meanwhile, so the test does too until it is seen (nudges, usually 0).
nudges=0
while ((nudges < 12)) && ! [[ -s $work/ncmd ]]; do
	sleep 0.3
	[[ -s $work/ncmd ]] && break
	mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "spBv1.0/$group/NDATA/$node" \
		-f "$work/before.bin" || fail "mosquitto_pub failed"
	nudges=$((nudges + 1))
done
# mosquitto_sub waits for a second request that must not come (rate limit).
wait "$sub_pid" || true
lines=$(wc -l <"$work/ncmd")
((lines == 1)) || fail "$lines rebirth requests seen on spBv1.0/$group/NCMD/+, want 1: $(cat "$work/ncmd")"
read -r topic hex <"$work/ncmd"
[[ $topic == "spBv1.0/$group/NCMD/$node" ]] || fail "rebirth request on $topic"
# metric { name "Node Control/Rebirth", datatype 11 Boolean, boolean_value true }
want_metric="0a144e6f646520436f6e74726f6c2f52656269727468200b7001"
[[ $hex == *"$want_metric"* ]] || fail "rebirth request payload $hex lacks $want_metric"

# --- a flood of made-up edge nodes: 11 ids for 4 entries (node1's taken too) ---
for i in $(seq 0 9); do
	mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "spBv1.0/$group/NDATA/fake-$i" \
		-f "$work/before.bin" || fail "mosquitto_pub failed"
done

# --- the birth, then data by alias ---------------------------------------------
sp_payload "$work/birth.bin" 0 1 21.5 Temp
sp_payload "$work/data.bin" 1 1 22.0
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "spBv1.0/$group/NBIRTH/$node" \
	-f "$work/birth.bin" || fail "mosquitto_pub failed"
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "spBv1.0/$group/NDATA/$node" \
	-f "$work/data.bin" || fail "mosquitto_pub failed"

want_ignored=0
[[ ${TG_TEST_MQTT_VERSION:-5} == 5 ]] || want_ignored=11
for ((i = 0; i < 150; i++)); do
	[[ $(scrape "$work/metrics") == 200 ]] || fail "/metrics did not answer"
	(($(metric "$work/metrics" tumblegate_readings_decoded_total) >= 2)) &&
		(($(metric "$work/metrics" tumblegate_messages_in_flight) == 0)) &&
		(($(metric "$work/metrics" tumblegate_sparkplug_ignored_total 'type="NCMD"') >= \
			want_ignored)) && break
	sleep 0.1
done
check_accounting "$work/metrics"
no_birth=$(metric "$work/metrics" tumblegate_refused_total 'reason="sparkplug_no_birth"')
want_no_birth=$((12 + nudges))
((no_birth == want_no_birth)) ||
	fail "$no_birth messages refused as sparkplug_no_birth, want $want_no_birth"
asked=$(metric "$work/metrics" tumblegate_sparkplug_rebirths_requested_total)
((asked == 11)) || fail "$asked rebirth requests counted, want 11 (node1 once, each fake)"
# Our own requests come back through spBv1.0/<group>/# with MQTT 3.1.1 (ignored,
# counted), not with MQTT 5, whose subscription says No Local.
ignored=$(metric "$work/metrics" tumblegate_sparkplug_ignored_total 'type="NCMD"')
((ignored == want_ignored)) || fail "$ignored NCMD ignored, want $want_ignored"
# 11 ids into 4 entries: 7 taken by the fakes, 1 by node1's birth; node1
# and the 3 last fakes hold the table.
evicted=$(metric "$work/metrics" tumblegate_sparkplug_evictions_total)
((evicted == 8)) || fail "$evicted entries reclaimed, want 8"
full=$(metric "$work/metrics" tumblegate_refused_total 'reason="sparkplug_table_full"')
((full == 0)) || fail "$full messages refused as sparkplug_table_full, want 0"
nodes=$(metric "$work/metrics" tumblegate_sparkplug_nodes)
((nodes == 4)) || fail "$nodes entries in use, want 4"

# --- what Kafka holds ------------------------------------------------------------
kcat -C -b "$TG_KAFKA_BROKERS" -t "$run_id.dlq" -o beginning -c "$want_no_birth" -e -q \
	-f '%h\n' >"$work/dlq" 2>/dev/null || true
n=$(grep -c 'tg.reason=sparkplug_no_birth' "$work/dlq" || true)
((n == want_no_birth)) ||
	fail "$n dead letters with tg.reason=sparkplug_no_birth, want $want_no_birth: $(cat "$work/dlq")"
kcat -C -b "$TG_KAFKA_BROKERS" -t "$run_id.raw" -o beginning -c 2 -e -q -f '%k %s\n' \
	>"$work/raw" 2>/dev/null || true
grep -q "^$group/$node {\"sensor\":\"$group/$node\",\"ts\":[0-9]*,\"fields\":{\"Temp\":22},\"sparkplug\":{\"group\":\"$group\",\"node\":\"$node\",\"message\":\"NDATA\",\"seq\":1,\"metrics\":\[{\"name\":\"Temp\",\"alias\":1,\"datatype\":\"Float\",\"value\":22}\]}}$" \
	"$work/raw" || fail "no NDATA raw record named by its birth: $(cat "$work/raw")"
gateway_stop
log "PASS: data before birth dead-lettered twice, one rebirth NCMD through mosquitto, a flood of 10 made-up nodes reclaimed, then data by alias named"
