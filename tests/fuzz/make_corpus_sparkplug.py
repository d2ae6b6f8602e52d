#!/usr/bin/env python3
# make_corpus_sparkplug.py - writes the Sparkplug fuzzer's seed sessions (tests/fuzz/corpus/sparkplug).
# SPDX-License-Identifier: Apache-2.0
#
# The payloads are encoded here by hand from the protobuf wire format and
# the Sparkplug B field numbers (sparkplug_b.proto), so the seeds do not
# depend on the decoder's own generated code. A session's layout is
# fuzz_sparkplug.c's: a configuration byte, then (selector, u16 length,
# payload) per message.
import os
import struct
import sys

NBIRTH, NDATA, NDEATH, DBIRTH, DDATA, DDEATH, STATE, BAD = range(8)
N2, D2, LONG_GROUP = 8, 16, 32


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def vfield(field, v):
    return key(field, 0) + varint(v)


def lfield(field, data):
    return key(field, 2) + varint(len(data)) + data


def metric(name=None, alias=None, ts=None, dt=None, hist=False, null=False, **value):
    m = b""
    if name is not None:
        m += lfield(1, name.encode())
    if alias is not None:
        m += vfield(2, alias)
    if ts is not None:
        m += vfield(3, ts)
    if dt is not None:
        m += vfield(4, dt)
    if hist:
        m += vfield(5, 1)
    if null:
        m += vfield(7, 1)
    for k, v in value.items():
        if k == "i":
            m += vfield(10, v & 0xFFFFFFFF)
        elif k == "l":
            m += vfield(11, v & 0xFFFFFFFFFFFFFFFF)
        elif k == "f":
            m += key(12, 5) + struct.pack("<f", v)
        elif k == "d":
            m += key(13, 1) + struct.pack("<d", v)
        elif k == "b":
            m += vfield(14, 1 if v else 0)
        elif k == "s":
            m += lfield(15, v.encode())
        elif k == "by":
            m += lfield(16, v)
        elif k == "ds":
            m += lfield(17, v)
    return lfield(2, m)


def payload(ts=None, seq=None, metrics=()):
    p = b""
    if ts is not None:
        p += vfield(1, ts)
    for m in metrics:
        p += m
    if seq is not None:
        p += vfield(3, seq)
    return p


def msg(sel, body):
    return bytes([sel]) + struct.pack("<H", len(body)) + body


T = 1732700000000
ALL_TYPES = [
    metric("i8", 1, dt=1, i=-5), metric("i16", 2, dt=2, i=-300), metric("i32", 3, dt=3, i=-70000),
    metric("i64", 4, dt=4, l=-(1 << 40)), metric("u8", 5, dt=5, i=200), metric("u16", 6, dt=6, i=60000),
    metric("u32", 7, dt=7, i=4000000000), metric("u64", 8, dt=8, l=(1 << 63) + 5),
    metric("f", 9, dt=9, f=1.5), metric("d", 10, dt=10, d=2.25), metric("b", 11, dt=11, b=True),
    metric("s", 12, dt=12, s="auto"), metric("dt", 13, dt=13, l=T), metric("t", 14, dt=14, s="text"),
    metric("uuid", 15, dt=15, s="8c2e"), metric("ds", 16, dt=16, ds=vfield(1, 1)),
    metric("by", 17, dt=17, by=b"\x00\x01\xff"), metric("nul", 18, dt=10, null=True),
]
BIRTH = payload(T, 0, [metric("bdSeq", dt=4, l=3), metric("Node Control/Rebirth", dt=11, b=False),
                       metric("Temp", 1, dt=9, f=21.5), metric("Mode", 2, dt=12, s="auto")])
DBIRTH_P = payload(T, 1, ALL_TYPES)
DATA = lambda seq, ts=T + 1000: payload(ts, seq, [metric(alias=1, f=22.0), metric(alias=2, s="x"),
                                                  metric(alias=1, ts=ts - 500, hist=True, f=20.0)])

sessions = {
    "lifecycle": b"\0" + msg(NBIRTH, BIRTH) + msg(DBIRTH, DBIRTH_P)
    + msg(DDATA, payload(T + 1, 2, [metric(alias=9, f=1.0), metric(alias=10, d=2.0)]))
    + msg(NDATA, DATA(3)) + msg(DDEATH, payload(T + 2, 4))
    + msg(NDEATH, payload(T + 3, None, [metric("bdSeq", dt=4, l=3)])),
    "metric_mode": b"\1" + msg(NBIRTH, BIRTH) + msg(DBIRTH, DBIRTH_P) + msg(NDATA, DATA(2)),
    "data_before_birth": b"\0" + msg(NDATA, DATA(0)) + msg(DDATA | D2, DATA(1))
    + msg(NBIRTH, BIRTH) + msg(DDATA, DATA(1)),
    "seq_gap": b"\0" + msg(NBIRTH, BIRTH) + msg(NDATA, DATA(1)) + msg(NDATA, DATA(5))
    + msg(NDATA, DATA(6)) + msg(NDATA, DATA(300)),
    "wrap": b"\2" + msg(NBIRTH, BIRTH) + b"".join(msg(NDATA, DATA(s & 255)) for s in range(1, 260)),
    "unknown_alias": b"\0" + msg(NBIRTH, BIRTH) + msg(NDATA, payload(T, 1, [metric(alias=77, f=1.0)])),
    "bdseq_mismatch": b"\0" + msg(NBIRTH, BIRTH) + msg(NDEATH, payload(None, None, [metric("bdSeq", dt=4, l=2)]))
    + msg(NDATA, DATA(1)),
    "table_full": b"\0" + b"".join(msg(NBIRTH | n, BIRTH) + msg(DBIRTH | n | d, DBIRTH_P)
                                   for n in (0, N2) for d in (0, D2)),
    "topics": b"\0" + msg(STATE, b'{"online":true}') + msg(BAD, BIRTH) + msg(BAD | 64, BIRTH)
    + msg(NBIRTH | LONG_GROUP, BIRTH) + msg(DBIRTH | LONG_GROUP, DBIRTH_P),
    "not_decodable": b"\0" + msg(NBIRTH, b"\xff\xff\xff") + msg(NBIRTH, BIRTH[:-3]),
    # What the fuzzer's first minute found: a numeric metric with an empty
    # name became a field with an empty name (fixed: raw only).
    "empty_name": b"\0" + msg(NBIRTH, payload(T, 0, [metric("", 1, dt=10, d=1.0)]))
    + b"\1" + msg(NBIRTH | N2, payload(T, 0, [metric("", 1, dt=10, d=1.0)])),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "sparkplug")
os.makedirs(out, exist_ok=True)
for name, data in sessions.items():
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(data)
