#!/usr/bin/env python3
# make_corpus.py - writes the fuzzers' seed corpora (tests/fuzz/corpus/<target>/seed-*) deterministically.
# SPDX-License-Identifier: Apache-2.0
"""Seed corpora for tests/fuzz/fuzz_decode.c.

Usage: tests/fuzz/make_corpus.py [OUTDIR]   (default: tests/fuzz/corpus next to this script)

Writes only files named seed-*: inputs found by fuzzing and kept afterwards
(found-<SHA-1 prefix>, picked with pick_inputs.py) and crash reproducers
(crash-*) are left alone, and stale seed-* files are removed first. Python 3 standard library only; the
same run always writes the same bytes.

The valid seeds mimic the firmware simulator (firmware-sim/sim.c): sensor
"node-0007", ts around 1.73e12 ms, fields temperature, humidity and pressure,
encoded exactly as tg_encode_json() (%.15g, %.17g when needed) and
tg_encode_cbor() (definite map, uint ts, float64 values) write them.
"""
import os
import random
import struct
import sys

# --- a small CBOR writer (RFC 8949), enough to write odd items on purpose ---


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 1 << 8:
        return bytes([major << 5 | 24, n])
    if n < 1 << 16:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n < 1 << 32:
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


def c_int(v):
    return head(0, v) if v >= 0 else head(1, -1 - v)


def c_text(s):
    b = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
    return head(3, len(b)) + b


def c_bytes(b):
    return head(2, len(b)) + b


def c_f64(v):
    return b"\xfb" + struct.pack(">d", v)


def c_f32(v):
    return b"\xfa" + struct.pack(">f", v)


def c_f16_raw(bits):
    return b"\xf9" + struct.pack(">H", bits)


def c_map(pairs):
    return head(5, len(pairs)) + b"".join(k + v for k, v in pairs)


def c_map_indef(pairs):
    return b"\xbf" + b"".join(k + v for k, v in pairs) + b"\xff"


def c_array(items):
    return head(4, len(items)) + b"".join(items)


def c_tag(tag, item):
    return head(6, tag) + item


C_FALSE, C_TRUE, C_NULL, C_UNDEF, C_BREAK = b"\xf4", b"\xf5", b"\xf6", b"\xf7", b"\xff"

# --- the simulator's readings ---

SENSOR = "node-0007"
TS = 1730000000000
FIELDS = ("temperature", "humidity", "pressure")
CENTERS = (22.5, 50.0, 1013.25)


def sim_values(seed, nfields=3):
    rnd = random.Random(seed)
    return [(FIELDS[i], CENTERS[i] + rnd.gauss(0.0, 2.0)) for i in range(nfields)]


def json_number(v):
    """What tg_json_put_double() prints: %.15g, or %.17g when that is not exact."""
    s = "%.15g" % v
    if float(s) != v:
        s = "%.17g" % v
    return s


def json_string(s):
    """What tg_json_put_string() prints (bytes >= 0x20 verbatim)."""
    b = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
    out = bytearray(b'"')
    for c in b:
        if c in (0x22, 0x5C):
            out += bytes([0x5C, c])
        elif c < 0x20:
            out += b"\\u%04x" % c
        else:
            out.append(c)
    return bytes(out + b'"')


def sim_json(sensor=SENSOR, ts=TS, fields=None):
    fields = sim_values(1) if fields is None else fields
    parts = [b'"sensor":' + json_string(sensor), b'"ts":' + str(ts).encode()]
    parts += [json_string(n) + b":" + json_number(v).encode() for n, v in fields]
    return b"{" + b",".join(parts) + b"}"


def sim_cbor_pairs(sensor=SENSOR, ts=TS, fields=None):
    fields = sim_values(1) if fields is None else fields
    pairs = [(c_text("sensor"), c_text(sensor)), (c_text("ts"), c_int(ts))]
    pairs += [(c_text(n), c_f64(v)) for n, v in fields]
    return pairs


def sim_cbor(sensor=SENSOR, ts=TS, fields=None):
    return c_map(sim_cbor_pairs(sensor, ts, fields))


def many_fields(n):
    return [("f%02d" % i, float(i) + 0.5) for i in range(n)]


# --- JSON seeds ---


def json_seeds():
    s = {}
    s["sim-3fields"] = sim_json()
    s["sim-3fields-b"] = sim_json("node-0123", TS + 100, sim_values(2))
    s["sim-1field"] = sim_json(fields=sim_values(3, 1))
    s["pretty-whitespace"] = b'\r\n {\n\t"sensor" : "node-0007" ,\n\t"ts" : 1730000000000 ,\n\t"temperature" : 21.5\n}\n\t '
    s["ts-exponent"] = b'{"sensor":"node-0007","ts":1.73e12,"temperature":21.5}'
    s["ts-fraction"] = b'{"sensor":"node-0007","ts":1730000000000.5,"temperature":21.5}'
    s["ts-negative"] = b'{"sensor":"node-0007","ts":-1,"temperature":21.5}'
    s["ts-2p53-minus-1"] = b'{"sensor":"node-0007","ts":9007199254740991,"temperature":21.5}'
    s["ts-2p53"] = b'{"sensor":"node-0007","ts":9007199254740992,"temperature":21.5}'
    s["ts-string"] = b'{"sensor":"node-0007","ts":"1730000000000","temperature":21.5}'
    # The range [1, 253402300799999] ms (issue 12): its edges and one past each.
    s["ts-zero"] = b'{"sensor":"node-0007","ts":0,"temperature":21.5}'
    s["ts-one"] = b'{"sensor":"node-0007","ts":1,"temperature":21.5}'
    s["ts-max"] = b'{"sensor":"node-0007","ts":253402300799999,"temperature":21.5}'
    s["ts-max-plus-one"] = b'{"sensor":"node-0007","ts":253402300800000,"temperature":21.5}'
    s["ts-huge-float"] = b'{"sensor":"node-0007","ts":1.7976931348623157e308,"temperature":21.5}'
    s["ts-missing"] = b'{"sensor":"node-0007","temperature":21.5}'
    s["id-missing"] = b'{"ts":1730000000000,"temperature":21.5}'
    s["id-number"] = b'{"sensor":7,"ts":1730000000000,"temperature":21.5}'
    s["id-empty"] = b'{"sensor":"","ts":1730000000000,"temperature":21.5}'
    s["id-64"] = sim_json("n" * 64)
    s["id-65"] = sim_json("n" * 65)
    s["id-escapes"] = b'{"sensor":"n\\u006fde-\\"7\\"\\\\\\/\\b\\f\\n\\r\\t","ts":1730000000000,"temperature":21.5}'
    s["id-nul-escape"] = b'{"sensor":"node\\u0000-0007","ts":1730000000000,"temperature":21.5}'
    s["id-raw-nul"] = b'{"sensor":"node\x00-0007","ts":1730000000000,"temperature":21.5}'
    s["utf8-surrogate-pair"] = b'{"sensor":"\\ud83c\\udf21-7","ts":1730000000000,"t\\u00e9mp\\u20ac":21.5}'
    s["utf8-lone-surrogate"] = b'{"sensor":"\\udc00x","ts":1730000000000,"\\ud800":21.5}'
    s["utf8-invalid-bytes"] = b'{"sensor":"\xff\xfe\xc0\x80","ts":1730000000000,"\xed\xa0\x80":21.5}'
    s["utf8-bom"] = b"\xef\xbb\xbf" + sim_json()
    s["name-32"] = sim_json(fields=[("n" * 32, 1.0)])
    s["name-33"] = sim_json(fields=[("n" * 33, 1.0)])
    s["name-empty"] = b'{"sensor":"node-0007","ts":1730000000000,"":21.5}'
    s["fields-16"] = sim_json(fields=many_fields(16))
    s["fields-17"] = sim_json(fields=many_fields(17))
    s["fields-none"] = b'{"sensor":"node-0007","ts":1730000000000,"on":true,"x":null,"s":"21.5"}'
    s["duplicate-keys"] = b'{"sensor":"a","ts":1,"sensor":"node-0007","t":1,"t":2,"ts":1730000000000,"t":3}'
    s["duplicate-id-then-object"] = b'{"sensor":"node-0007","ts":1730000000000,"t":1,"sensor":{"a":1}}'
    s["duplicate-field-escaped"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":21.5,"temp\\u0065rature":1}'
    s["duplicate-ignored"] = b'{"sensor":"node-0007","ts":1730000000000,"t":1,"n":"a","n":"b","t":"x"}'
    s["ignored-members"] = b'{"sensor":"node-0007","ts":1730000000000,"a":[1,[2,{"b":3}]],"o":{"v":1},"temperature":21.5,"f":false}'
    s["nesting-16"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":21.5,"d":' + b"[" * 15 + b"]" * 15 + b"}"
    s["nesting-17"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":21.5,"d":' + b"[" * 16 + b"]" * 16 + b"}"
    s["nesting-deep"] = b"[" * 3000
    s["brackets-in-strings"] = b'{"sensor":"[[[[{{{{","ts":1730000000000,"\\"[{":21.5,"x":"\\\\"}'
    s["nan-literal"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":NaN}'
    s["inf-literal"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":-Infinity}'
    s["overflow-1e400"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":1e400}'
    s["number-edges"] = b'{"sensor":"node-0007","ts":0,"z":-0,"d":5e-324,"m":1.7976931348623157e308,"e":-1E-7,"i":123456789012345678901234567890}'
    s["number-70-digits"] = b'{"sensor":"node-0007","ts":1730000000000,"temperature":' + b"1" * 70 + b"}"
    s["number-bad-forms"] = b'{"sensor":"node-0007","ts":01730000000000,"temperature":+.5e}'
    s["trailing-garbage"] = sim_json() + b"x"
    s["two-objects"] = sim_json() + sim_json()
    s["trailing-nul"] = sim_json() + b"\x00"
    s["top-array"] = b"[" + sim_json() + b"]"
    s["truncated-half"] = sim_json()[: len(sim_json()) // 2]
    s["truncated-in-string"] = b'{"sensor":"node-00'
    # For the decoders' other configurations (see configs[] in fuzz_decode.c).
    s["cfg-seconds"] = b'{"id":"node-0007","time":1730000000.1235,"temperature":21.5,"humidity":50}'
    s["cfg-seconds-limits"] = (b'{"id":"node-0007","time":1730000000,"temperature":21.5,"humidity":50.5,'
                               b'"pressure":1013,"t":1,"note":"' + b"x" * 41 + b'"}')
    s["cfg-us-no-id"] = b'{"ts":1730000000000123,"temperature":21.5}'
    s["cfg-us-negative"] = b'{"ts":-1,"temperature":21.5}'
    s["cfg-no-ts"] = b'{"sensor":"node-0007","temperature":21.5}'
    s["cfg-rfc3339"] = b'{"sensor":"node-0007","ts":"2024-10-27T03:33:20.123Z","temperature":21.5}'
    s["cfg-rfc3339-offset-leap"] = b'{"sensor":"node-0007","ts":"2016-12-31T23:59:60.999+05:30","t":1}'
    s["cfg-rfc3339-bad-date"] = b'{"sensor":"node-0007","ts":"2023-02-29T00:00:00Z","t":1}'
    s["cfg-rfc3339-lower-nanos"] = b'{"sensor":"node-0007","ts":"0000-01-01t00:00:00.123456789z","t":1}'
    # About 10 000 cJSON nodes: more than the 512 KiB parse arena holds.
    s["arena-exhausted"] = (b'{"sensor":"node-0007","ts":1730000000000,"temperature":21.5,"a":['
                            + b"0," * 10000 + b"0]}")
    s["empty"] = b""
    s["one-byte"] = b"{"
    s["only-whitespace"] = b" \n\t\r"
    return s


# --- CBOR seeds ---


def cbor_seeds():
    s = {}
    sim = sim_cbor()
    s["sim-3fields"] = sim
    s["sim-1field"] = sim_cbor(fields=sim_values(3, 1))
    s["self-described-tag"] = c_tag(55799, sim)
    s["tags-everywhere"] = c_tag(55799, c_tag(1, c_map([
        (c_tag(32, c_text("sensor")), c_tag(0, c_text(SENSOR))),
        (c_text("ts"), c_tag(1, c_int(TS))),
        (c_text("temperature"), c_tag(4, c_f64(21.5)))])))
    s["indefinite-map"] = c_map_indef(sim_cbor_pairs())
    s["indefinite-strings"] = c_map([
        (c_text("sensor"), b"\x7f" + c_text("node-") + c_text("0007") + C_BREAK),
        (c_text("ts"), c_int(TS)), (c_text("temperature"), c_f64(21.5))])
    s["indefinite-key"] = c_map([(b"\x7f" + c_text("sens") + c_text("or") + C_BREAK, c_text(SENSOR)),
                                (c_text("ts"), c_int(TS)), (c_text("t"), c_f64(1.0))])
    s["indefinite-value-ignored"] = c_map(sim_cbor_pairs() + [
        (c_text("blob"), b"\x5f" + c_bytes(b"ab") + c_bytes(b"") + C_BREAK),
        (c_text("text"), b"\x7f" + c_text("x") + C_BREAK),
        (c_text("list"), b"\x9f" + c_int(1) + b"\xbf" + c_int(1) + c_int(2) + C_BREAK + C_BREAK)])
    s["indefinite-mixed-chunks"] = c_map(sim_cbor_pairs() + [
        (c_text("x"), b"\x7f" + c_bytes(b"ab") + C_BREAK)])
    s["break-at-top"] = C_BREAK
    s["break-after-key"] = b"\xbf" + c_text("sensor") + C_BREAK
    s["half-float"] = c_map(sim_cbor_pairs(fields=[]) + [(c_text("h"), c_f16_raw(0x3c00)),
                                                        (c_text("sub"), c_f16_raw(0x0001)),
                                                        (c_text("f"), c_f32(21.5))])
    s["half-nan"] = c_map(sim_cbor_pairs(fields=[]) + [(c_text("h"), c_f16_raw(0x7e00))])
    s["f64-nan"] = c_map(sim_cbor_pairs(fields=[("t", float("nan"))]))
    s["f64-edges"] = c_map(sim_cbor_pairs(fields=[("z", -0.0), ("d", 5e-324), ("m", 1.7976931348623157e308)]))
    s["int-values"] = c_map(sim_cbor_pairs(fields=[]) + [(c_text("u"), c_int(2**64 - 1)),
                                                        (c_text("n"), c_int(-2**64)),
                                                        (c_text("z"), c_int(0))])
    s["ts-negint"] = sim_cbor(ts=-1)
    s["ts-int64-min"] = sim_cbor(ts=-2**63)
    s["ts-below-int64"] = sim_cbor(ts=-2**63 - 1)
    s["ts-uint64-max"] = sim_cbor(ts=2**64 - 1)
    s["ts-2p53"] = sim_cbor(ts=2**53)
    s["ts-zero"] = sim_cbor(ts=0)
    s["ts-one"] = sim_cbor(ts=1)
    s["ts-max"] = sim_cbor(ts=253402300799999)
    s["ts-max-plus-one"] = sim_cbor(ts=253402300800000)
    s["ts-f64-max"] = c_map([(c_text("sensor"), c_text(SENSOR)), (c_text("ts"), c_f64(1.7976931348623157e308)),
                            (c_text("t"), c_f64(1.0))])
    s["ts-float"] = c_map([(c_text("sensor"), c_text(SENSOR)), (c_text("ts"), c_f64(1.73e12)),
                          (c_text("t"), c_f64(1.0))])
    s["ts-bytes"] = c_map([(c_text("sensor"), c_text(SENSOR)), (c_text("ts"), c_bytes(b"\x01")),
                          (c_text("t"), c_f64(1.0))])
    s["ts-array"] = c_map([(c_text("sensor"), c_text(SENSOR)), (c_text("ts"), c_array([c_int(1)])),
                          (c_text("t"), c_f64(1.0))])
    s["id-bytes"] = c_map([(c_text("sensor"), c_bytes(b"node-0007")), (c_text("ts"), c_int(TS)),
                          (c_text("t"), c_f64(1.0))])
    s["id-64"] = sim_cbor("n" * 64)
    s["id-65"] = sim_cbor("n" * 65)
    s["id-empty"] = sim_cbor("")
    s["id-nul"] = sim_cbor("node\x00-0007")
    s["id-invalid-utf8"] = sim_cbor(b"\xff\xfe\xc0\x80\xed\xa0\x80")
    s["id-quote-backslash-ctl"] = sim_cbor('no"de\\7\n\x01\x7f')
    s["name-32"] = sim_cbor(fields=[("n" * 32, 1.0)])
    s["name-33"] = sim_cbor(fields=[("n" * 33, 1.0)])
    s["name-empty"] = sim_cbor(fields=[("", 1.0)])
    s["key-int"] = c_map([(c_int(0), c_text(SENSOR))] + sim_cbor_pairs())
    s["fields-16"] = sim_cbor(fields=many_fields(16))
    s["fields-17"] = sim_cbor(fields=many_fields(17))
    s["duplicate-keys"] = c_map([(c_text("sensor"), c_text("a")), (c_text("ts"), c_int(1)),
                                (c_text("sensor"), c_text(SENSOR)), (c_text("t"), c_f64(1.0)),
                                (c_text("t"), c_f64(2.0)), (c_text("ts"), c_int(TS))])
    s["duplicate-id-then-array"] = c_map(sim_cbor_pairs() + [(c_text("sensor"), c_array([c_int(1)]))])
    s["duplicate-ts-then-tag"] = c_map(sim_cbor_pairs() + [(c_text("ts"), c_tag(1, c_map([])))])
    s["duplicate-field-indefinite"] = c_map_indef(sim_cbor_pairs() + [(c_text("temperature"), c_int(1))])
    s["simple-values"] = c_map(sim_cbor_pairs() + [(c_text("a"), C_TRUE), (c_text("b"), C_FALSE),
                                                  (c_text("c"), C_NULL), (c_text("d"), C_UNDEF)])
    s["simple-unassigned"] = c_map(sim_cbor_pairs() + [(c_text("e"), b"\xf8\x20"), (c_text("f"), b"\xe0")])
    deep = c_int(1)
    for _ in range(15):
        deep = c_array([deep])
    s["nesting-16"] = c_map(sim_cbor_pairs() + [(c_text("d"), deep)])
    s["nesting-17"] = c_map(sim_cbor_pairs() + [(c_text("d"), c_array([deep]))])
    s["nesting-indef-deep"] = b"\xbf" + c_text("d") + b"\x9f" * 200
    s["huge-map-count"] = b"\xbb" + b"\xff" * 8 + c_text("sensor") + c_text(SENSOR)
    s["huge-array-count"] = b"\xa3" + c_text("sensor") + c_text(SENSOR) + c_text("a") + b"\x9b" + b"\xff" * 8
    s["huge-string-length"] = b"\xa1" + c_text("sensor") + b"\x7b" + b"\x7f" + b"\xff" * 7
    s["reserved-additional-info"] = b"\xa1" + c_text("sensor") + b"\x1c"
    s["cfg-seconds"] = c_map([(c_text("id"), c_text(SENSOR)), (c_text("time"), c_f64(1730000000.1235)),
                             (c_text("temperature"), c_f64(21.5)), (c_text("humidity"), c_int(50)),
                             (c_text("pressure"), c_int(1013))])
    s["cfg-seconds-int"] = c_map([(c_text("id"), c_text(SENSOR)), (c_text("time"), c_int(-2**62)),
                                 (c_text("t"), c_int(1))])
    s["cfg-us-no-id"] = c_map([(c_text("ts"), c_int(1730000000000123)), (c_text("t"), c_f64(21.5))])
    s["cfg-us-int64-min"] = c_map([(c_text("ts"), c_int(-2**63)), (c_text("t"), c_f64(21.5))])
    s["cfg-rfc3339"] = c_map([(c_text("sensor"), c_text(SENSOR)), (c_text("ts"), c_text("2024-10-27T03:33:20.123Z")),
                             (c_text("t"), c_f64(21.5))])
    s["cfg-rfc3339-offset"] = c_map([(c_text("sensor"), c_text(SENSOR)),
                                    (c_text("ts"), c_text("9999-12-31 23:59:59.9-23:59")), (c_text("t"), c_f64(1))])
    s["map-empty"] = b"\xa0"
    s["top-array"] = c_array([sim])
    s["trailing-byte"] = sim + b"\x00"
    s["two-maps"] = sim + sim
    s["truncated-half"] = sim[: len(sim) // 2]
    s["empty"] = b""
    s["one-byte"] = b"\xa5"
    return s


# --- AUTO: both formats and the bytes that decide between them ---


def auto_seeds():
    j, c = json_seeds(), cbor_seeds()
    s = {}
    for name in ("sim-3fields", "sim-1field", "pretty-whitespace", "ts-exponent", "id-nul-escape",
                 "utf8-invalid-bytes", "utf8-bom", "fields-17", "duplicate-keys", "nesting-17",
                 "nan-literal", "trailing-garbage", "truncated-half", "empty", "one-byte"):
        s["json-" + name] = j[name]
    for name in ("sim-3fields", "self-described-tag", "indefinite-map", "indefinite-strings",
                 "half-nan", "ts-uint64-max", "id-nul", "id-invalid-utf8", "fields-17",
                 "duplicate-keys", "nesting-17", "huge-map-count", "trailing-byte", "truncated-half",
                 "top-array", "break-at-top"):
        s["cbor-" + name] = c[name]
    for name in ("cfg-seconds", "cfg-us-no-id", "cfg-rfc3339"):
        s["json-" + name] = j[name]
        s["cbor-" + name] = c[name]
    s["first-byte-0x9f"] = b"\x9f" + sim_json()       # just below the CBOR map range: JSON
    s["first-byte-0xa0"] = b"\xa0"                    # lowest CBOR map byte
    s["first-byte-0xdb"] = b"\xdb" + b"\x00" * 8 + sim_cbor()  # highest tag byte
    s["first-byte-0xdc"] = b"\xdc" + sim_cbor()       # reserved: goes to the JSON decoder
    s["first-byte-0xff"] = b"\xff"
    s["cbor-looks-like-json"] = c_map([(c_text("{"), c_text("}"))])
    s["json-after-space-cbor"] = b" " + sim_cbor()
    return s


# --- SenML (RFC 8428) packs, for the SenML decoders being written ---

SENML_LABELS = {"bver": -1, "bn": -2, "bt": -3, "bu": -4, "bv": -5, "bs": -6,
                "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4, "s": 5, "t": 6, "ut": 7, "vd": 8}
SENML_UNITS = ("Cel", "%RH", "hPa")


def senml_pack(fields=None, bn=SENSOR + ":", bt=TS / 1000.0):
    fields = sim_values(1) if fields is None else fields
    recs = []
    for i, (n, v) in enumerate(fields):
        r = {"n": n, "v": v}
        if i < len(SENML_UNITS):
            r["u"] = SENML_UNITS[i]
        if i == 0:
            r = dict({"bn": bn, "bt": bt}, **r)
        recs.append(r)
    return recs


def senml_json_value(v):
    if isinstance(v, bool):
        return b"true" if v else b"false"
    if isinstance(v, (int, float)):
        return json_number(float(v)).encode() if isinstance(v, float) else str(v).encode()
    if isinstance(v, (str, bytes)):
        return json_string(v)
    if isinstance(v, list):
        return b"[" + b",".join(senml_json_value(x) for x in v) + b"]"
    if isinstance(v, dict):
        return b"{" + b",".join(json_string(k) + b":" + senml_json_value(x) for k, x in v.items()) + b"}"
    raise TypeError(v)


def senml_cbor_value(v, labels=True):
    if isinstance(v, bool):
        return C_TRUE if v else C_FALSE
    if isinstance(v, int):
        return c_int(v)
    if isinstance(v, float):
        return c_f64(v)
    if isinstance(v, (str, bytes)):
        return c_text(v)
    if isinstance(v, list):
        return c_array([senml_cbor_value(x) for x in v])
    if isinstance(v, dict):
        return c_map([(c_int(SENML_LABELS[k]) if labels and k in SENML_LABELS else c_text(k),
                       senml_cbor_value(x)) for k, x in v.items()])
    raise TypeError(v)


def senml_variants():
    """(name, pack or raw bytes) shared by both SenML encodings."""
    p = senml_pack()
    v = [("sim-3fields", p),
         ("sim-1field", senml_pack(sim_values(3, 1))),
         ("bver-10", [dict({"bver": 10}, **p[0])] + p[1:]),
         ("bver-99", [dict({"bver": 99}, **p[0])] + p[1:]),
         ("no-bn", [{"n": SENSOR + ":temperature", "t": TS / 1000.0, "v": 21.5}]),
         ("relative-t", [dict(p[0], t=-1.5)] + p[1:]),
         ("bu-bv-bs", [dict(p[0], bu="Cel", bv=1.0, bs=0.0)] + p[1:]),
         ("string-bool-data", p + [{"n": "s", "vs": "x"}, {"n": "b", "vb": True}, {"n": "d", "vd": "AQ"}]),
         ("sum-only", [{"bn": SENSOR + ":", "bt": TS / 1000.0, "n": "e", "s": 5.0}]),
         ("two-times", p + [{"n": "temperature", "t": 10.0, "v": 22.0}]),
         ("name-duplicate", p + [{"n": "temperature", "v": 99.0}]),
         ("unit-long", [dict(p[0], u="u" * 16)] + p[1:]),
         ("name-bad-chars", [dict(p[0], n="temp erature/\u00e9")] + p[1:]),
         ("fields-17", senml_pack(many_fields(17))),
         ("value-huge", [dict(p[0], v=1.7976931348623157e308)] + p[1:]),
         ("t-huge", [dict(p[0], bt=1e300)] + p[1:]),
         ("t-negative", [dict(p[0], bt=-1.0)] + p[1:]),
         ("ut", [dict(p[0], ut=60.0)] + p[1:]),
         ("unknown-label", [dict(p[0], xyz_=1)] + p[1:]),
         ("empty-pack", []),
         ("empty-record", [{}]),
         ("not-array", p[0])]
    return v


def senml_json_seeds():
    s = {name: senml_json_value(pack) for name, pack in senml_variants()}
    s["nan-literal"] = b'[{"bn":"node-0007:","bt":1730000000,"n":"t","v":NaN}]'
    s["trailing-garbage"] = senml_json_value(senml_pack()) + b"]"
    s["truncated"] = senml_json_value(senml_pack())[:40]
    s["nesting-17"] = b"[" * 17 + b"]" * 17
    s["empty"] = b""
    s["one-byte"] = b"["
    return s


def senml_cbor_seeds():
    s = {name: senml_cbor_value(pack) for name, pack in senml_variants()}
    s["text-labels"] = senml_cbor_value(senml_pack(), labels=False)
    s["indefinite-array"] = b"\x9f" + b"".join(senml_cbor_value(r) for r in senml_pack()) + C_BREAK
    s["tagged"] = c_tag(55799, senml_cbor_value(senml_pack()))
    s["nan"] = c_array([c_map([(c_int(-2), c_text("n:")), (c_int(0), c_text("t")), (c_int(2), c_f16_raw(0x7e00))])])
    s["huge-count"] = b"\x9b" + b"\xff" * 8
    s["trailing-byte"] = senml_cbor_value(senml_pack()) + b"\x00"
    s["truncated"] = senml_cbor_value(senml_pack())[:30]
    s["empty"] = b""
    s["one-byte"] = b"\x81"
    return s


TARGETS = {"json": json_seeds, "cbor": cbor_seeds, "auto": auto_seeds,
           "senml_json": senml_json_seeds, "senml_cbor": senml_cbor_seeds}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    for target, make in TARGETS.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            if old.startswith("seed-"):
                os.remove(os.path.join(d, old))
        seeds = make()
        for name, data in sorted(seeds.items()):
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
        print("%-11s %3d seeds in %s" % (target, len(seeds), os.path.relpath(d)))


if __name__ == "__main__":
    main()
