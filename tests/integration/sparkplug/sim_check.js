// sim_check.js - reads tumblegate-sim's Sparkplug B through Eclipse Tahu's decoder and checks it is what the specification asks.
// SPDX-License-Identifier: Apache-2.0
//
// Usage: node sim_check.js MQTT_URL GROUP NODE DEVICES READY_FILE TRUTH1 TRUTH2
//
// Subscribes to spBv1.0/GROUP/# (the `mqtt` package), decodes every message
// with Tahu's sparkplug-payload, and follows edge node NODE over two
// sessions: the first ends with the node's own NDEATH, the second when the
// simulator is killed and the broker sends its will. It checks:
//   - each session opens with an NBIRTH of seq 0 carrying bdSeq (Int64) and
//     "Node Control/Rebirth" (Boolean false); session 2's bdSeq is session
//     1's plus one (mod 256);
//   - a DBIRTH per device before its first DDATA, naming every metric with
//     an alias (unique over the node) and a datatype, Double or Float;
//   - DDATA by alias only: no name, no datatype, a timestamp, an alias of the
//     device's DBIRTH, a value of the DBIRTH's datatype;
//   - seq counts every message but NDEATH, 0..255 and round again (the wrap
//     must be seen);
//   - an NCMD "Node Control/Rebirth" (encoded with Tahu's encoder) is
//     answered with an NBIRTH of seq 0 and the same bdSeq, then every DBIRTH;
//   - NDEATH (the node's own, and the will) carries the session's bdSeq and
//     no seq;
//   - the values decoded are the simulator's truth: exactly, for session 1;
//     for the killed session, every truth reading was received.
// Prints one line per failure and exits 1 if any, else 0.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');
const sparkplug = require('sparkplug-payload').get('spBv1.0');
const proto = require('sparkplug-payload/lib/sparkplugPayloadProto').org.eclipse.tahu.protobuf;

const [url, group, node, devicesArg, readyFile, truth1, truth2] = process.argv.slice(2);
const ndevices = Number(devicesArg);
const REBIRTH = 'Node Control/Rebirth';
const REBIRTH_AFTER = 600; // messages into session 1: seq has wrapped twice
const TIMEOUT_MS = 45000;
const FIELDS = ['humidity', 'pressure', 'temperature'];

let failures = 0;
function fail(msg) {
  failures++;
  if (failures <= 30) console.error(`sim_check: FAIL: ${msg}`);
}
const num = (v) => (v && typeof v.toNumber === 'function' ? v.toNumber() : Number(v));

const sessions = []; // {bdSeq, messages, wrapped, rebirthSent, rebirthSeen, readings, ended}
let session = null;
let expectSeq = null;
let lastSeq = null;
let births = {}; // device -> Map alias -> {name, type}
let aliasesOfNode = new Set();
let awaitingRebirth = false;
let rebirthBirthsOwed = null; // devices still owing a DBIRTH after a rebirth NBIRTH

function addReading(sensor, ts, fields) {
  session.readings.push(JSON.stringify({ sensor, ts, fields: sortFields(fields) }));
}
function sortFields(f) {
  const o = {};
  for (const k of Object.keys(f).sort()) o[k] = f[k];
  return o;
}

function checkSeq(topic, p) {
  if (p.seq === undefined) return fail(`${topic}: no seq`);
  const seq = num(p.seq);
  if (seq < 0 || seq > 255) fail(`${topic}: seq ${seq} outside 0..255`);
  if (expectSeq !== null && seq !== expectSeq)
    fail(`${topic}: seq ${seq}, want ${expectSeq}`);
  if (seq === 0 && lastSeq === 255) session.wrapped = true;
  lastSeq = seq;
  expectSeq = (seq + 1) % 256;
}

function onNbirth(topic, p) {
  const bd = (p.metrics || []).find((m) => m.name === 'bdSeq');
  const rb = (p.metrics || []).find((m) => m.name === REBIRTH);
  if (!bd || bd.type !== 'Int64') fail(`${topic}: no Int64 bdSeq metric`);
  if (!rb || rb.type !== 'Boolean' || rb.value !== false)
    fail(`${topic}: no "${REBIRTH}" Boolean false metric`);
  if (p.seq === undefined || num(p.seq) !== 0) fail(`${topic}: NBIRTH seq ${p.seq}, want 0`);
  const bdSeq = bd ? num(bd.value) : -1;
  if (session && !session.ended) {
    // A birth within a session: only as the answer to our rebirth request.
    if (!awaitingRebirth) fail(`${topic}: NBIRTH within a session, no rebirth was asked`);
    if (bdSeq !== session.bdSeq) fail(`${topic}: rebirth bdSeq ${bdSeq}, want ${session.bdSeq}`);
    awaitingRebirth = false;
    session.rebirthSeen = true;
    rebirthBirthsOwed = new Set();
    for (const d of Object.keys(births)) rebirthBirthsOwed.add(d);
  } else {
    session = { bdSeq, messages: 1, wrapped: false, rebirthSent: false, rebirthSeen: false,
                readings: [], ended: false };
    sessions.push(session);
    rebirthBirthsOwed = null;
  }
  births = {};
  aliasesOfNode = new Set();
  expectSeq = 0;
  lastSeq = null;
  checkSeq(topic, p);
}

function onDbirth(topic, device, p, raw) {
  checkSeq(topic, p);
  if (births[device]) fail(`${topic}: a second DBIRTH in one birth`);
  const table = new Map();
  const fields = {};
  let ts = null;
  (p.metrics || []).forEach((m, i) => {
    if (!m.name) fail(`${topic}: metric ${i} has no name`);
    if (m.alias === undefined) return fail(`${topic}: ${m.name} has no alias`);
    const alias = num(m.alias);
    if (aliasesOfNode.has(alias))
      fail(`${topic}: alias ${alias} used twice in the node`);
    aliasesOfNode.add(alias);
    if (m.type !== 'Double' && m.type !== 'Float') fail(`${topic}: ${m.name} is a ${m.type}`);
    if (m.timestamp === undefined) fail(`${topic}: ${m.name} has no timestamp`);
    table.set(alias, { name: m.name, type: m.type });
    if (m.value !== null && m.value !== undefined) {
      fields[m.name] = m.value;
      ts = num(m.timestamp);
    }
  });
  const names = [...table.values()].map((x) => x.name).sort();
  if (JSON.stringify(names) !== JSON.stringify(FIELDS))
    fail(`${topic}: metrics ${names}, want ${FIELDS}`);
  births[device] = table;
  if (rebirthBirthsOwed) rebirthBirthsOwed.delete(device);
  if (ts !== null) addReading(`${group}/${node}/${device}`, ts, fields);
}

function onDdata(topic, device, p, raw) {
  checkSeq(topic, p);
  const table = births[device];
  if (!table) return fail(`${topic}: DDATA before the device's DBIRTH`);
  if (rebirthBirthsOwed && rebirthBirthsOwed.has(device))
    fail(`${topic}: DDATA after the rebirth NBIRTH before the device's DBIRTH`);
  const fields = {};
  let ts = null;
  raw.metrics.forEach((rm, i) => {
    if (rm.hasOwnProperty('name')) fail(`${topic}: metric ${i} sent with its name`);
    if (rm.hasOwnProperty('datatype')) fail(`${topic}: metric ${i} sent with a datatype`);
    if (!rm.hasOwnProperty('alias')) return fail(`${topic}: metric ${i} has no alias`);
    if (!rm.hasOwnProperty('timestamp')) fail(`${topic}: metric ${i} has no timestamp`);
    const def = table.get(num(rm.alias));
    if (!def) return fail(`${topic}: alias ${num(rm.alias)} not in the DBIRTH`);
    const key = def.type === 'Float' ? 'floatValue' : 'doubleValue';
    if (!rm.hasOwnProperty(key)) return fail(`${topic}: ${def.name} has no ${key}`);
    fields[def.name] = rm[key];
    ts = num(rm.timestamp);
  });
  addReading(`${group}/${node}/${device}`, ts, fields);
}

function onNdeath(topic, p) {
  if (p.seq !== undefined) fail(`${topic}: NDEATH with a seq`);
  const bd = (p.metrics || []).find((m) => m.name === 'bdSeq');
  if (!session || session.ended) return fail(`${topic}: NDEATH outside a session`);
  if (!bd || num(bd.value) !== session.bdSeq)
    fail(`${topic}: NDEATH bdSeq ${bd && num(bd.value)}, want ${session.bdSeq}`);
  session.ended = true;
  expectSeq = null;
}

const client = mqtt.connect(url, { clientId: `sim-check-${process.pid}`, clean: true });
const timer = setTimeout(() => { fail('timed out'); finish(); }, TIMEOUT_MS);

client.on('connect', () => {
  client.subscribe(`spBv1.0/${group}/#`, { qos: 1 }, (err) => {
    if (err) { fail(`subscribe: ${err}`); return finish(); }
    fs.writeFileSync(readyFile, 'ready\n');
  });
});
client.on('error', (e) => { fail(`mqtt: ${e.message}`); finish(); });

client.on('message', (topic, buf) => {
  const parts = topic.split('/');
  if (parts[3] !== node) return;
  const type = parts[2];
  if (type === 'NCMD') return; // our own request, echoed
  let p, raw;
  try {
    p = sparkplug.decodePayload(buf);
    raw = proto.Payload.decode(buf);
  } catch (e) {
    return fail(`${topic}: Tahu cannot decode it: ${e.message}`);
  }
  if (!session && type !== 'NBIRTH') return fail(`${topic}: before any NBIRTH`);
  if (session) session.messages++;
  switch (type) {
    case 'NBIRTH': onNbirth(topic, p); break;
    case 'DBIRTH': onDbirth(topic, parts[4], p, raw); break;
    case 'DDATA': onDdata(topic, parts[4], p, raw); break;
    case 'NDEATH': onNdeath(topic, p); break;
    default: fail(`${topic}: a message type the simulator does not send`);
  }
  if (sessions.length === 1 && !session.rebirthSent && session.messages >= REBIRTH_AFTER) {
    session.rebirthSent = true;
    awaitingRebirth = true;
    const cmd = sparkplug.encodePayload({
      timestamp: Date.now(),
      metrics: [{ name: REBIRTH, type: 'Boolean', value: true }],
    });
    client.publish(`spBv1.0/${group}/NCMD/${node}`, Buffer.from(cmd), { qos: 0 });
  }
  if (sessions.length === 2 && session.ended) finish();
});

// A killed simulator may leave its last truth line cut: @p partial allows it.
function readTruth(path, partial) {
  let text = fs.readFileSync(path, 'utf8');
  if (partial && !text.endsWith('\n')) text = text.slice(0, text.lastIndexOf('\n') + 1);
  return text.split('\n').filter((l) => l).map((l) => {
    const o = JSON.parse(l);
    const fields = {};
    for (const k of Object.keys(o)) if (k !== 'sensor' && k !== 'ts' && k !== 'seq') fields[k] = o[k];
    return JSON.stringify({ sensor: o.sensor, ts: o.ts, fields: sortFields(fields) });
  });
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  client.end(true);
  if (sessions.length !== 2) fail(`${sessions.length} sessions seen, want 2`);
  else {
    const [s1, s2] = sessions;
    if (s2.bdSeq !== (s1.bdSeq + 1) % 256) fail(`bdSeq ${s1.bdSeq} then ${s2.bdSeq}`);
    if (!s1.wrapped) fail('session 1: seq never wrapped from 255 to 0');
    if (!s1.rebirthSent || !s1.rebirthSeen) fail('session 1: no rebirth after the NCMD');
    if (rebirthBirthsOwed && rebirthBirthsOwed.size) fail('DBIRTHs missing after the rebirth');
    // Session 1 ended cleanly: what was decoded is the truth, exactly.
    const want1 = readTruth(truth1).sort(), got1 = [...s1.readings].sort();
    if (JSON.stringify(want1) !== JSON.stringify(got1)) {
      const w = new Set(want1), g = new Set(got1);
      const missing = want1.filter((x) => !g.has(x)), extra = got1.filter((x) => !w.has(x));
      fail(`session 1: ${got1.length} readings decoded, truth ${want1.length}; ` +
           `missing ${missing.length} (${missing[0] || ''}), extra ${extra.length} (${extra[0] || ''})`);
    }
    // Session 2 was killed: a publish the broker took but never confirmed
    // is not in the truth; every truth line must have arrived.
    const g2 = new Set(s2.readings);
    const lost = readTruth(truth2, true).filter((x) => !g2.has(x));
    if (lost.length) fail(`session 2: ${lost.length} truth readings never arrived: ${lost[0]}`);
    console.error(`sim_check: sessions bdSeq ${s1.bdSeq}, ${s2.bdSeq}; session 1 ${s1.messages} ` +
                  `messages, ${s1.readings.length} readings, rebirth answered; session 2 ` +
                  `${s2.messages} messages, ended by the will`);
  }
  console.error(failures ? `sim_check: ${failures} failure(s)` : 'sim_check: OK');
  process.exit(failures ? 1 : 0);
}
