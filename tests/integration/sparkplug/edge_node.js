// edge_node.js - Sparkplug B edge nodes made with Eclipse Tahu's sparkplug-client, for integration.sparkplug; writes down everything they send.
// SPDX-License-Identifier: Apache-2.0
//
// Usage: node edge_node.js ROLE MQTT_URL GROUP T0 EXPECT_FILE STATE_DIR
//
// Each role is one edge node process; test_sparkplug.sh runs them in turn:
//   plc1   NBIRTH, DBIRTH "press" (Double, UInt32, Boolean, String, Float,
//          Int16 by alias) and "oven", DDATA by alias over three windows,
//          historical metrics (in an open window, and one for a closed window:
//          late), a DDATA on a topic with a level too many (bad topic; its
//          seq is lost to the gateway, so the next DDATA shows a seq gap and
//          a rebirth is asked: answered), an unknown alias, a DDEATH of
//          "oven"; then stays connected, idle, until the test kills it.
//   plc2   DDATA before any birth (no birth: a rebirth is asked, answered),
//          then DDATA by alias, and a clean stop with its NDEATH.
//   plc1b  plc1's next session (bdSeq 1): births and data; once the test has
//          killed plc1 (so that the broker sends plc1's will, an NDEATH with
//          the old bdSeq 0: stale) more data in the same window, then its
//          own NDEATH.
// Every message is written to EXPECT_FILE as JSON lines, as the gateway
// must show it (docs: the issue-14 contract): readings (sensor, ts, numeric
// fields, the message's metrics at that time), dead letters (reason, MQTT
// topic), deaths and rebirth requests. Event times start at T0 (ms) and
// advance 250 ms per message, so no two of a sensor's readings share a time.
//
// Tahu's client 3.2.4 keeps bdSeq at 0 for ever (it has no setter, and the
// specification wants it to grow with each session); plc1b sets the
// client's own bdSeq field, the one thing done here behind its API.
'use strict';
const fs = require('fs');
const path = require('path');
const sparkplugClient = require('sparkplug-client');

const [role, url, group, t0Arg, expectFile, stateDir] = process.argv.slice(2);
const T0 = Number(t0Arg);
const STEP = 250;
const REBIRTH = 'Node Control/Rebirth';
// A Sparkplug BIRTH gives the current value of every metric: its numeric
// values are readings like those of DATA messages.
const BIRTH_VALUES_ARE_READINGS = true;

// Event time: one clock per role, each role its own range of T0 + 40 s.
const roleBase = { plc1: 0, plc2: 40000, plc1b: 60000 }[role];
let tickN = 0;
const tick = () => T0 + roleBase + STEP * tickN++;

function expect(o) {
  fs.appendFileSync(expectFile, JSON.stringify(o) + '\n');
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function log(msg) {
  process.stderr.write(`edge_node ${role}: ${msg}\n`);
}

// Control metrics (bdSeq, Node Control/..., Device Control/...) are never
// fields (docs/sparkplug.md 4.2).
const isControl = (name) => name === 'bdSeq' || /^(Node|Device) Control\//.test(name);
const NUMERIC = new Set(['Int8', 'Int16', 'Int32', 'Int64', 'UInt8', 'UInt16', 'UInt32',
                         'UInt64', 'Float', 'Double', 'Boolean']);

// What the gateway must show for one message: a reading per distinct time
// (metric timestamp, else the payload's), with its numeric fields and all
// its metrics. @p defs: alias -> {name, type}, for metrics sent by alias.
function expectMessage(node, device, message, payload, defs, { late = false } = {}) {
  const sensor = device ? `${group}/${node}/${device}` : `${group}/${node}`;
  const byTs = new Map();
  for (const m of payload.metrics) {
    const ts = m.timestamp !== undefined ? m.timestamp : payload.timestamp;
    const def = m.name ? { name: m.name, type: m.type } : defs.get(m.alias);
    if (!byTs.has(ts)) byTs.set(ts, { fields: {}, metrics: [] });
    const r = byTs.get(ts);
    if (!def) { // an alias the birth did not give: raw only, marked
      r.metrics.push({ alias: m.alias, datatype: m.type, unknown_alias: true });
      continue;
    }
    let value = m.value;
    if (def.type === 'Float') value = Math.fround(value);
    if (NUMERIC.has(def.type) && value !== null && !isControl(def.name))
      r.fields[def.name] = def.type === 'Boolean' ? (value ? 1 : 0) : value;
    const em = { name: def.name, datatype: def.type };
    if (m.alias !== undefined) em.alias = m.alias;
    if (def.type === 'String') em.value = value;
    if (m.isHistorical) em.historical = true;
    r.metrics.push(em);
  }
  for (const [ts, r] of byTs) {
    if (!BIRTH_VALUES_ARE_READINGS && message.endsWith('BIRTH')) continue;
    expect({ kind: 'reading', sensor, ts, fields: r.fields, metrics: r.metrics, message,
             group, node, device, seq: payload.seq, late });
  }
}

function newNode(node, clientId, publishDeath) {
  return sparkplugClient.newClient({
    serverUrl: url, username: '', password: '', groupId: group, edgeNode: node,
    clientId, publishDeath, version: 'spBv1.0',
  });
}

const once = (emitter, event, ms) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
  emitter.once(event, (...a) => { clearTimeout(t); resolve(a); });
});

// The metrics of each device, by alias: the edge node's own table.
const PRESS = [
  { name: 'Pressure', alias: 1, type: 'Double' },
  { name: 'Count', alias: 2, type: 'UInt32' },
  { name: 'Running', alias: 3, type: 'Boolean' },
  { name: 'Mode', alias: 4, type: 'String' },
  { name: 'Temp', alias: 5, type: 'Float' },
  { name: 'Level', alias: 6, type: 'Int16' },
];
const OVEN = [
  { name: 'OvenTemp', alias: 10, type: 'Double' },
  { name: 'Door', alias: 11, type: 'Boolean' },
  { name: 'Recipe', alias: 12, type: 'String' },
];
const PUMP = [{ name: 'Flow', alias: 1, type: 'Double' }];
const defsOf = (list) => new Map(list.map((d) => [d.alias, d]));

// Values: a slow ramp with a wobble, different per metric and per k.
function value(d, k) {
  switch (d.type) {
    case 'Double': return 100 + d.alias * 7.25 + k * 0.5 + Math.sin(k + d.alias) * 3.1;
    case 'Float': return 20 + k * 0.37 + d.alias;
    case 'UInt32': return 1000 + 3 * k;
    case 'Int16': return -5 - k;
    case 'Boolean': return k % 2 === 0;
    case 'String': return k % 2 ? 'auto' : 'manual';
    default: throw new Error(d.type);
  }
}

function nbirth(client, node, extra) {
  const ts = tick();
  const payload = {
    timestamp: ts,
    metrics: [
      { name: 'Uptime', type: 'Int64', value: 1000 + tickN, timestamp: ts },
      { name: 'Firmware', type: 'String', value: 'v1.2', timestamp: ts },
      { name: REBIRTH, type: 'Boolean', value: false, timestamp: ts },
      ...(extra || []),
    ],
  };
  client.publishNodeBirth(payload); // appends bdSeq (UInt64, no timestamp) and seq 0
  expectMessage(node, null, 'NBIRTH', payload, new Map());
}

function dbirth(client, node, device, list, k) {
  const ts = tick();
  const payload = {
    timestamp: ts,
    metrics: list.map((d) => ({ name: d.name, alias: d.alias, type: d.type,
                                value: value(d, k), timestamp: ts })),
  };
  client.publishDeviceBirth(device, payload);
  expectMessage(node, device, 'DBIRTH', payload, new Map());
}

// DDATA by alias only (Tahu's encoder needs the type, and sends it).
function ddata(client, node, device, list, k, opts = {}) {
  const ts = opts.ts !== undefined ? opts.ts : tick();
  const payload = {
    timestamp: ts,
    metrics: list.map((d) => {
      const m = { alias: d.alias, type: d.type, value: value(d, k), timestamp: ts };
      if (opts.historical) m.isHistorical = true;
      return m;
    }),
  };
  client.publishDeviceData(device, payload);
  expectMessage(node, device, 'DDATA', payload, defsOf(list), opts);
  return ts;
}

// Answer "Node Control/Rebirth" with every birth, as an edge node must.
function onRebirth(client, node, births) {
  let answering = true;
  client.on('ncmd', (payload) => {
    const m = (payload.metrics || []).find((x) => x.name === REBIRTH);
    if (!m || m.value !== true) return;
    if (!answering) return log('rebirth request after the scenario: not answered');
    log('rebirth requested: NBIRTH and DBIRTHs again');
    births();
    client.emit('rebirthed');
  });
  return () => { answering = false; };
}

async function plc1() {
  const c = newNode('plc1', `${group}-plc1`, false);
  await once(c, 'birth', 10000);
  const births = () => {
    nbirth(c, 'plc1');
    dbirth(c, 'plc1', 'press', PRESS, 0);
    dbirth(c, 'plc1', 'oven', OVEN, 0);
  };
  births();
  const stopAnswering = onRebirth(c, 'plc1', births);
  const pressData = PRESS.filter((d) => d.type !== 'String');
  let last = 0;
  for (let k = 1; k <= 45; k++) {
    last = ddata(c, 'plc1', 'press', k % 5 ? [PRESS[0], PRESS[1], PRESS[4]] : pressData, k);
    ddata(c, 'plc1', 'oven', k % 3 ? [OVEN[0]] : OVEN, k);
    await sleep(5);
  }
  // Historical values for the press, in its open window and within the
  // grace: windowed as any reading.
  for (const back of [170, 110, 50]) {
    const ts = last - back;
    if (Math.floor(ts / 10000) !== Math.floor(last / 10000)) throw new Error('window edge');
    ddata(c, 'plc1', 'press', [PRESS[4]], 100 + back, { ts, historical: true });
  }
  // And one for a window closed long ago: late.
  ddata(c, 'plc1', 'press', [PRESS[0]], 200, { ts: T0 + 1111, historical: true, late: true });
  await sleep(300);

  // A topic with a level too many: refused as a bad topic, and its seq is
  // lost to the gateway, so the next DDATA is a seq gap (its values still
  // count) and the gateway asks for a rebirth.
  const bad = { timestamp: tick(), metrics: [{ alias: 1, type: 'Double', value: 1.5 }] };
  c.publishDeviceData('press/extra', bad);
  expect({ kind: 'dlq', reason: 'sparkplug_bad_topic',
           topic: `spBv1.0/${group}/DDATA/plc1/press/extra` });
  await sleep(300);
  const rebirthed = once(c, 'rebirthed', 8000);
  ddata(c, 'plc1', 'press', [PRESS[0], PRESS[1]], 46);
  expect({ kind: 'dlq', reason: 'sparkplug_seq_gap', topic: `spBv1.0/${group}/DDATA/plc1/press` });
  expect({ kind: 'ncmd', node: 'plc1' });
  await rebirthed;
  await sleep(300);

  // An alias the DBIRTH never gave: refused, nothing of it used.
  // (docs/sparkplug.md 5.4: it is in the raw record, marked unknown_alias.)
  const unknown = { timestamp: tick(), metrics: [{ alias: 99, type: 'Double', value: 9.5 }] };
  c.publishDeviceData('press', unknown);
  expectMessage('plc1', 'press', 'DDATA', unknown, defsOf(PRESS));
  expect({ kind: 'dlq', reason: 'sparkplug_unknown_alias',
           topic: `spBv1.0/${group}/DDATA/plc1/press` });
  await sleep(300);
  for (let k = 47; k <= 50; k++) ddata(c, 'plc1', 'press', [PRESS[0], PRESS[4]], k);

  // The oven goes away: its windows close at once.
  const dd = { timestamp: tick() };
  c.publishDeviceDeath('oven', dd);
  expect({ kind: 'death', sensor: `${group}/plc1/oven`, message: 'DDEATH', ts: dd.timestamp });
  await sleep(500);
  stopAnswering();
  fs.writeFileSync(path.join(stateDir, 'plc1.done'), 'done\n');
  log('done; connected until killed');
  await new Promise(() => {}); // SIGKILL ends it: the broker sends the will
}

async function plc2() {
  const c = newNode('plc2', `${group}-plc2`, true);
  await once(c, 'birth', 10000);
  // Data before any birth: refused; the gateway asks for a rebirth.
  const births = () => {
    nbirth(c, 'plc2');
    dbirth(c, 'plc2', 'pump', PUMP, 0);
  };
  onRebirth(c, 'plc2', births);
  const rebirthed = once(c, 'rebirthed', 8000);
  const early = { timestamp: tick(), metrics: [{ name: 'Flow', type: 'Double', value: 3.5 }] };
  c.publishDeviceData('pump', early);
  expect({ kind: 'dlq', reason: 'sparkplug_no_birth', topic: `spBv1.0/${group}/DDATA/plc2/pump` });
  expect({ kind: 'ncmd', node: 'plc2' });
  await rebirthed;
  for (let k = 1; k <= 12; k++) {
    ddata(c, 'plc2', 'pump', PUMP, k);
    await sleep(5);
  }
  await sleep(200);
  c.stop(); // publishDeath: its NDEATH, bdSeq 0 as its NBIRTH's
  expect({ kind: 'death', sensor: `${group}/plc2`, message: 'NDEATH', bdSeq: 0 });
  await sleep(500);
}

async function plc1b() {
  const c = newNode('plc1', `${group}-plc1b`, true);
  await once(c, 'birth', 10000);
  c.bdSeq = 1; // see the file head
  nbirth(c, 'plc1');
  dbirth(c, 'plc1', 'press', PRESS, 0);
  for (let k = 1; k <= 6; k++) ddata(c, 'plc1', 'press', [PRESS[0], PRESS[4]], k);
  await sleep(300); // at the broker before plc1's will
  fs.writeFileSync(path.join(stateDir, 'plc1b.born'), 'born\n');
  // The test now kills plc1: its will, an NDEATH of bdSeq 0, is stale.
  expect({ kind: 'dlq', reason: 'sparkplug_bdseq_mismatch',
           topic: `spBv1.0/${group}/NDEATH/plc1` });
  const deadline = Date.now() + 10000;
  while (!fs.existsSync(path.join(stateDir, 'plc1.killed'))) {
    if (Date.now() > deadline) throw new Error('plc1 was not killed');
    await sleep(50);
  }
  await sleep(1000);
  // Still the same windows: the stale NDEATH closed nothing.
  for (let k = 7; k <= 12; k++) ddata(c, 'plc1', 'press', [PRESS[0], PRESS[4]], k);
  await sleep(200);
  c.stop(); // its NDEATH, bdSeq 1: closes every plc1 window
  expect({ kind: 'death', sensor: `${group}/plc1`, message: 'NDEATH', bdSeq: 1 });
  await sleep(500);
}

({ plc1, plc2, plc1b })[role]().then(() => process.exit(0), (e) => {
  log(`FAIL: ${e.message}`);
  process.exit(1);
});
