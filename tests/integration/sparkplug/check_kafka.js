// check_kafka.js - integration.sparkplug's judge: Kafka's raw, aggregate, late and dead-letter topics and the NCMDs seen, against what the Tahu edge nodes sent.
// SPDX-License-Identifier: Apache-2.0
//
// Usage: node check_kafka.js EXPECT_FILE BROKERS PREFIX NCMD_CAPTURE WINDOW_MS TIMEOUT_S
//
// Reads PREFIX.raw, PREFIX.agg, PREFIX.late and PREFIX.dlq with kcat until
// they hold at least what is expected (then 2 s more, for duplicates), and
// checks, from EXPECT_FILE (edge_node.js) alone:
//   raw   one record per expected reading: sensor, time (also the Kafka
//         timestamp), numeric fields exactly, and the Sparkplug context
//         (group, node, device, message, seq; every metric by name with its
//         datatype, its alias when it was sent with one, historical, the
//         value of strings); the NDEATH/DDEATH records; nothing else;
//   late  exactly the late readings;
//   agg   exactly the final windows computed here from the readings that
//         are not late (tumbling, WINDOW_MS): count, and per field count,
//         min, max, first, last (by time) exactly, sum and mean to 1e-9;
//   dlq   exactly the expected dead letters, by tg.reason and tg.mqtt_topic;
//   NCMD  a "Node Control/Rebirth" true, decoded by Tahu's decoder, sent to
//         every node expected to be asked (mosquitto_sub's capture, hex).
'use strict';
const fs = require('fs');
const { execFileSync } = require('child_process');
const sparkplug = require('sparkplug-payload').get('spBv1.0');

const [expectFile, brokers, prefix, ncmdFile, windowArg, timeoutArg] = process.argv.slice(2);
const W = Number(windowArg);
let failures = 0;
function fail(msg) {
  failures++;
  if (failures <= 40) console.error(`check_kafka: FAIL: ${msg}`);
}

const exp = fs.readFileSync(expectFile, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
const readings = exp.filter((e) => e.kind === 'reading');
const deaths = exp.filter((e) => e.kind === 'death');
const dlqWant = exp.filter((e) => e.kind === 'dlq');
const ncmdWant = exp.filter((e) => e.kind === 'ncmd');
const lateWant = readings.filter((r) => r.late);

// The windows, computed from the readings that are not late.
function windows() {
  const out = new Map();
  // A time whose metrics are all raw-only is no reading (docs/sparkplug.md 4.5).
  for (const r of readings.filter((x) => !x.late && Object.keys(x.fields).length)) {
    const start = Math.floor(r.ts / W) * W;
    const key = `${r.sensor}|${start}`;
    if (!out.has(key)) out.set(key, { sensor: r.sensor, start, count: 0, fields: {} });
    const w = out.get(key);
    w.count++;
    for (const [name, v] of Object.entries(r.fields)) {
      let f = w.fields[name];
      if (!f) f = w.fields[name] = { count: 0, min: v, max: v, sum: 0, first: v, firstTs: r.ts,
                                     last: v, lastTs: r.ts };
      f.count++;
      f.sum += v;
      f.min = Math.min(f.min, v);
      f.max = Math.max(f.max, v);
      if (r.ts < f.firstTs) { f.first = v; f.firstTs = r.ts; }
      if (r.ts >= f.lastTs) { f.last = v; f.lastTs = r.ts; }
    }
  }
  for (const w of out.values()) for (const f of Object.values(w.fields)) f.mean = f.sum / f.count;
  return out;
}
const aggWant = windows();

function consume(topic, format) {
  try {
    return execFileSync('kcat', ['-C', '-b', brokers, '-t', topic, '-o', 'beginning', '-e', '-q',
                                 '-f', format], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
                                                  timeout: 20000 })
      .split('\n').filter((l) => l);
  } catch (e) {
    return (e.stdout || '').split('\n').filter((l) => l); // a topic not made yet
  }
}

function read() {
  return {
    raw: consume(`${prefix}.raw`, '%T\t%s\n'),
    agg: consume(`${prefix}.agg`, '%T\t%s\n'),
    late: consume(`${prefix}.late`, '%T\t%s\n'),
    dlq: consume(`${prefix}.dlq`, '%t\t%h\n'),
  };
}

function finals(lines) {
  return lines.map((l) => JSON.parse(l.slice(l.indexOf('\t') + 1))).filter((a) => a.final !== false);
}

// Poll until everything expected is there and nothing more came for 2 s.
const deadline = Date.now() + Number(timeoutArg) * 1000;
let got = read(), stableSince = Date.now(), lastCounts = '';
for (;;) {
  const counts = `${got.raw.length}/${got.agg.length}/${got.late.length}/${got.dlq.length}`;
  if (counts !== lastCounts) { lastCounts = counts; stableSince = Date.now(); }
  const complete = got.raw.length >= readings.length + deaths.length &&
                   finals(got.agg).length >= aggWant.size && got.late.length >= lateWant.length &&
                   got.dlq.length >= dlqWant.length;
  if ((complete && Date.now() - stableSince >= 2000) || Date.now() > deadline) {
    if (!complete) fail(`timed out: raw ${got.raw.length} (want ${readings.length + deaths.length}), ` +
                        `agg ${finals(got.agg).length} (want ${aggWant.size}), late ` +
                        `${got.late.length} (want ${lateWant.length}), dlq ${got.dlq.length} ` +
                        `(want ${dlqWant.length})`);
    break;
  }
  execFileSync('sleep', ['0.5']);
  got = read();
}

// raw
const rawWant = new Map(readings.map((r) => [`${r.sensor}|${r.ts}`, r]));
const rawSeen = new Set();
const deathsSeen = [];
for (const line of got.raw) {
  const kts = Number(line.slice(0, line.indexOf('\t')));
  const rec = JSON.parse(line.slice(line.indexOf('\t') + 1));
  const sp = rec.sparkplug || {};
  if (!rec.fields || Object.keys(rec.fields).length === 0) {
    if (sp.message === 'NDEATH' || sp.message === 'DDEATH') { deathsSeen.push(rec); continue; }
  }
  const key = `${rec.sensor}|${rec.ts}`;
  const want = rawWant.get(key);
  if (!want) { fail(`raw: unexpected record ${JSON.stringify(rec)}`); continue; }
  if (rawSeen.has(key)) { fail(`raw: ${key} twice`); continue; }
  rawSeen.add(key);
  if (kts !== rec.ts) fail(`raw: ${key}: Kafka timestamp ${kts}`);
  const wantF = JSON.stringify(Object.entries(want.fields).sort());
  const gotF = JSON.stringify(Object.entries(rec.fields || {}).sort());
  if (wantF !== gotF) fail(`raw: ${key}: fields ${gotF}, want ${wantF}`);
  if (sp.group !== want.group || sp.node !== want.node || sp.device !== (want.device || undefined) ||
      sp.message !== want.message || sp.seq !== want.seq)
    fail(`raw: ${key}: sparkplug ${JSON.stringify({ ...sp, metrics: undefined })}, want ` +
         `${want.group}/${want.node}/${want.device || ''} ${want.message} seq ${want.seq}`);
  const metrics = sp.metrics || [];
  if (metrics.length !== want.metrics.length)
    fail(`raw: ${key}: ${metrics.length} metrics, want ${want.metrics.length}`);
  for (const wm of want.metrics) {
    if (wm.unknown_alias) {
      if (!metrics.some((x) => x.alias === wm.alias && x.unknown_alias === true && x.name === undefined))
        fail(`raw: ${key}: no metric of alias ${wm.alias} marked unknown_alias`);
      continue;
    }
    const m = metrics.find((x) => x.name === wm.name);
    if (!m) { fail(`raw: ${key}: no metric ${wm.name}`); continue; }
    if (m.datatype !== wm.datatype) fail(`raw: ${key}: ${wm.name} datatype ${m.datatype}, want ${wm.datatype}`);
    if (m.alias !== wm.alias) fail(`raw: ${key}: ${wm.name} alias ${m.alias}, want ${wm.alias}`);
    if (!!m.historical !== !!wm.historical)
      fail(`raw: ${key}: ${wm.name} historical ${m.historical}, want ${!!wm.historical}`);
    if (wm.value !== undefined && m.value !== wm.value)
      fail(`raw: ${key}: ${wm.name} value ${JSON.stringify(m.value)}, want ${JSON.stringify(wm.value)}`);
  }
}
for (const key of rawWant.keys()) if (!rawSeen.has(key)) fail(`raw: missing ${key}`);
for (const d of deaths) {
  const i = deathsSeen.findIndex((r) => r.sensor === d.sensor && r.sparkplug.message === d.message &&
    (d.bdSeq === undefined || r.sparkplug.bdSeq === d.bdSeq) && (d.ts === undefined || r.ts === d.ts));
  if (i < 0) fail(`raw: no ${d.message} record for ${d.sensor} ${JSON.stringify(d)}`);
  else deathsSeen.splice(i, 1);
}
for (const r of deathsSeen) fail(`raw: unexpected death record ${JSON.stringify(r)}`);

// late
const lateGot = got.late.map((l) => JSON.parse(l.slice(l.indexOf('\t') + 1)));
for (const w of lateWant) {
  const n = lateGot.filter((r) => r.sensor === w.sensor && r.ts === w.ts &&
    JSON.stringify(Object.entries(r.fields || {}).sort()) === JSON.stringify(Object.entries(w.fields).sort())).length;
  if (n !== 1) fail(`late: ${w.sensor}|${w.ts} ${n} times, want once`);
}
if (lateGot.length !== lateWant.length) fail(`late: ${lateGot.length} records, want ${lateWant.length}`);

// agg
const close = (a, b) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
const aggSeen = new Set();
for (const a of finals(got.agg)) {
  const key = `${a.sensor}|${a.window_start}`;
  const w = aggWant.get(key);
  if (!w) { fail(`agg: unexpected window ${JSON.stringify(a)}`); continue; }
  if (aggSeen.has(key)) { fail(`agg: ${key} twice`); continue; }
  aggSeen.add(key);
  if (a.window_end !== w.start + W) fail(`agg: ${key}: window_end ${a.window_end}`);
  if (a.count !== w.count) fail(`agg: ${key}: count ${a.count}, want ${w.count}`);
  const names = Object.keys(a.fields || {}).sort(), wantNames = Object.keys(w.fields).sort();
  if (JSON.stringify(names) !== JSON.stringify(wantNames)) fail(`agg: ${key}: fields ${names}, want ${wantNames}`);
  for (const n of wantNames) {
    const g = (a.fields || {})[n], f = w.fields[n];
    if (!g) continue;
    for (const s of ['count', 'min', 'max', 'first', 'last'])
      if (g[s] !== f[s]) fail(`agg: ${key}: ${n}.${s} ${g[s]}, want ${f[s]}`);
    for (const s of ['sum', 'mean'])
      if (!close(g[s], f[s])) fail(`agg: ${key}: ${n}.${s} ${g[s]}, want ${f[s]}`);
  }
}
for (const key of aggWant.keys()) if (!aggSeen.has(key)) fail(`agg: missing window ${key}`);

// dlq
const header = (h, name) => {
  const m = h.split(',').map((kv) => kv.split('=')).find(([k]) => k === name);
  return m ? m.slice(1).join('=') : undefined;
};
const dlqGot = got.dlq.map((l) => {
  const h = l.slice(l.indexOf('\t') + 1);
  return `${header(h, 'tg.reason')} ${header(h, 'tg.mqtt_topic')}`;
}).sort();
const dlqW = dlqWant.map((d) => `${d.reason} ${d.topic}`).sort();
if (JSON.stringify(dlqGot) !== JSON.stringify(dlqW))
  fail(`dlq: ${JSON.stringify(dlqGot)}, want ${JSON.stringify(dlqW)}`);

// NCMD
const ncmds = fs.readFileSync(ncmdFile, 'utf8').split('\n').filter((l) => l).map((l) => {
  const [topic, hex] = l.split(' ');
  let rebirth = false;
  try {
    const p = sparkplug.decodePayload(Buffer.from(hex || '', 'hex'));
    rebirth = (p.metrics || []).some((m) => m.name === 'Node Control/Rebirth' && m.type === 'Boolean' && m.value === true);
  } catch (e) {
    fail(`NCMD on ${topic}: Tahu cannot decode it: ${e.message}`);
  }
  return { node: topic.split('/')[3], rebirth };
});
for (const w of ncmdWant)
  if (!ncmds.some((c) => c.node === w.node && c.rebirth))
    fail(`no NCMD "Node Control/Rebirth" true to ${w.node}`);

console.error(`check_kafka: raw ${got.raw.length} records (${readings.length} readings, ` +
              `${deaths.length} deaths), ${aggSeen.size}/${aggWant.size} windows, late ` +
              `${lateGot.length}, dead letters ${dlqGot.length}: ` +
              `${[...new Set(dlqWant.map((d) => d.reason))].join(' ')}; NCMDs ${ncmds.length} ` +
              `(${[...new Set(ncmds.map((c) => c.node))].join(' ')})`);
console.error(failures ? `check_kafka: ${failures} failure(s)` : 'check_kafka: OK');
process.exit(failures ? 1 : 0);
