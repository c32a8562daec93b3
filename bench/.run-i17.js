'use strict';
// npm run bench: the LwM2M server against a plain UDP echo on loopback, measured in the same run.
// The server under test runs in this process; lean simulated devices (bench/lean-devices.js) run in others.
// Rates are medians of RUNS runs; every LwM2M figure is also given as a fraction of the echo.
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');
const { fork } = require('node:child_process');
const { startNodeRed } = require('./embedded-node-red');

const RUNS = Number(process.env.BENCH_RUNS || 3);
const SIZES = (process.env.BENCH_DEVICES || '1000,10000,100000').split(',').map(Number);
/** Sockets per load process: the file-descriptor limit is per process. */
const SOCKETS_PER_PROCESS = 15000;
const results = { date: new Date().toISOString(), node: process.version, runs: RUNS, workloads: {} };

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e6;
let nextPort = 24100;

function record(name, runs, extra = {}) {
  const rate = median(runs.map((r) => r.rate));
  const cpu = runs.every((r) => r.cpuMsPer1k !== undefined) ? { cpuMsPer1k: Number(median(runs.map((r) => r.cpuMsPer1k)).toFixed(1)) } : {};
  process.stderr.write(`  ${name}: ${Math.round(rate)}/s${cpu.cpuMsPer1k !== undefined ? `, ${cpu.cpuMsPer1k} ms CPU per 1k` : ''}\n`);
  results.workloads[name] = { rate: Math.round(rate), runs: runs.map((r) => Math.round(r.rate)), ...cpu, ...extra };
}

/** Server (this process) CPU time per 1,000 operations since a process.cpuUsage() mark. */
function cpuPer1k(mark, operations) {
  const used = process.cpuUsage(mark);
  return ((used.user + used.system) / 1000 / operations) * 1000;
}

const ask = (child, message) =>
  new Promise((resolve, reject) => {
    child.once('message', (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply)));
    child.send(message);
  });

/** Load process p's own loopback address (127.0.0.0/8 is all loopback on Linux). */
const loadAddress = (p) => `127.0.1.${p + 1}`;

async function echoBaseline() {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const port = nextPort++;
    const server = dgram.createSocket('udp4');
    server.on('message', (message, remote) => server.send(message, remote.port, remote.address));
    await new Promise((resolve) => server.bind(port, '127.0.0.1', resolve));
    const child = fork(path.join(__dirname, 'echo-load.js'));
    const outcome = await new Promise((resolve) => {
      child.once('message', resolve);
      child.send({ port, sockets: 64, durationMs: 2000 });
    });
    child.kill();
    await new Promise((resolve) => server.close(resolve));
    runs.push({ rate: outcome.count / 2, p50: outcome.p50, p99: outcome.p99 });
  }
  record('udp echo (ceiling)', runs, { p50Ms: median(runs.map((r) => r.p50)), p99Ms: median(runs.map((r) => r.p99)) });
  return results.workloads['udp echo (ceiling)'].rate;
}

/** Lean devices (bench/lean-devices.js) in processes of their own, registered to the server on port, for the duration of body. */
async function withLeanDevices(port, count, body) {
  const processes = Math.ceil(count / SOCKETS_PER_PROCESS);
  const loads = Array.from({ length: processes }, () => fork(path.join(__dirname, 'lean-devices.js')));
  try {
    await Promise.all(loads.map((load, p) => ask(load, { command: 'open', count: Math.floor(count / processes) + (p < count % processes ? 1 : 0), prefix: `d${p}`, address: loadAddress(p) })));
    await Promise.all(loads.map((load) => ask(load, { command: 'run', kind: 'register', server: { address: '127.0.0.1', port }, window: 128, lifetime: 3600 })));
    return await body(loads);
  } finally {
    await Promise.all(loads.map((load) => ask(load, { command: 'close' })));
    for (const load of loads) load.kill();
  }
}

/**
 * N devices, each its own socket, in load processes of their own
 * (bench/lean-devices.js), register and then update once against the server
 * on port; meter() reports the server's {cpu, rss}. Returns both rates with
 * the server's CPU per 1k, and its RSS per device after registering.
 */
async function registerAndUpdate(port, count, meter, afterRegister = async () => undefined) {
  const processes = Math.ceil(count / SOCKETS_PER_PROCESS);
  const loads = Array.from({ length: processes }, () => fork(path.join(__dirname, 'lean-devices.js')));
  const outcome = {};
  try {
    await Promise.all(loads.map((load, p) => ask(load, { command: 'open', count: Math.floor(count / processes) + (p < count % processes ? 1 : 0), prefix: `r${p}`, address: loadAddress(p) })));
    const before = await meter();
    for (const kind of ['register', 'update']) {
      const mark = await meter();
      const started = now();
      const runs = await Promise.all(loads.map((load) => ask(load, { command: 'run', kind, server: { address: '127.0.0.1', port }, window: 256, lifetime: 3600 })));
      const elapsed = now() - started;
      const done = runs.reduce((sum, run) => sum + run.done, 0);
      const after = await meter();
      const cpuMs = (after.cpu.user - mark.cpu.user + after.cpu.system - mark.cpu.system) / 1000;
      outcome[kind] = { rate: (done / elapsed) * 1000, cpuMsPer1k: (cpuMs / done) * 1000, seconds: elapsed / 1000, retransmissions: runs.reduce((sum, run) => sum + run.retransmissions, 0) };
      if (kind === 'register') {
        outcome.rssPerDevice = (after.rss - before.rss) / count;
        const observed = await afterRegister();
        if (observed) outcome.rssPerObservedDevice = ((await meter()).rss - before.rss) / count;
      }
    }
  } finally {
    await Promise.all(loads.map((load) => ask(load, { command: 'close' })));
    for (const load of loads) load.kill();
  }
  return outcome;
}

/** The in-process meter, for servers that run in this process (lwm2m-node-lib's). */
async function meterHere() {
  global.gc?.();
  return { cpu: process.cpuUsage(), rss: process.memoryUsage().rss };
}

async function registrations(count) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const port = nextPort++;
    const server = fork(path.join(__dirname, 'server-process.js'), { execArgv: ['--expose-gc'] });
    try {
      await ask(server, { command: 'start', port });
      // Then one observation per device, for the memory a typical device costs.
      const observeAll = async () => (await ask(server, { command: 'observeAll', path: '/3303/0/5700' })).observations === count;
      runs.push(await registerAndUpdate(port, count, () => ask(server, { command: 'usage' }), observeAll));
      const { registrations: registered } = await ask(server, { command: 'usage' });
      if (registered !== count) throw new Error(`only ${registered} of ${count} registered`);
      await ask(server, { command: 'stop' });
    } finally {
      server.kill();
    }
  }
  const register = runs.map((run) => run.register);
  record(`register ${count}`, register, {
    rssBytesPerDevice: Math.round(median(runs.map((run) => run.rssPerDevice))),
    rssBytesPerObservedDevice: Math.round(median(runs.map((run) => run.rssPerObservedDevice))),
    secondsForAll: Number(median(register.map((r) => r.seconds)).toFixed(2)),
    retransmissions: register.reduce((sum, r) => sum + r.retransmissions, 0),
  });
  record(`update ${count}`, runs.map((run) => run.update));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Notifications counted where a flow gets them: msgs arriving at a (silent)
 * debug node wired to an lwm2m observe node that observes every registering
 * device, in Node-RED itself embedded in this process. First as fast as the
 * devices can send, then paced at 80 % of that rate, where none may be lost.
 */
async function notificationsAtNode(red, confirmable) {
  const devices = 1000;
  const processes = 2;
  const kind = confirmable ? 'CON' : 'NON';
  const max = [];
  const paced = [];
  for (let i = 0; i < RUNS; i++) {
    const port = nextPort++;
    await red.deploy([
      { id: 't', type: 'tab' },
      { id: 's', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: String(port), persist: false },
      { id: 'o', z: 't', type: 'lwm2m-observe', server: 's', path: '/3303/0/5700', start: 'register', wires: [['d']] },
      { id: 'd', z: 't', type: 'debug', active: false, tosidebar: false, wires: [] },
    ]);
    let delivered = 0;
    red.node('d').on('input', (_msg, _send, done) => {
      delivered++;
      done?.();
    });
    const server = red.node('s').host.service;
    const loads = Array.from({ length: processes }, () => fork(path.join(__dirname, 'lean-devices.js')));
    let round = 0;
    const burst = async () => {
      round++;
      await Promise.all(loads.map((load) => ask(load, { command: 'burst', round, confirmable })));
    };
    const drain = async (expected, started) => {
      while (delivered < expected && now() - started < 30000) await sleep(5);
    };
    try {
      while (!server.coap.plain.address) await sleep(10);
      await Promise.all(loads.map((load, p) => ask(load, { command: 'open', count: devices / processes, prefix: `n${p}`, address: loadAddress(p) })));
      await Promise.all(loads.map((load) => ask(load, { command: 'run', kind: 'register', server: { address: '127.0.0.1', port }, window: 128, lifetime: 3600 })));
      while (server.observations.size < devices) await sleep(10);
      // Warm-up, not measured: 10 rounds, so the JIT has compiled the notification path before the clock starts.
      for (let r = 0; r < 10; r++) {
        await burst();
        await drain(devices * (r + 1), now());
      }
      await sleep(300);
      delivered = 0;
      let mark = process.cpuUsage();
      let started = now();
      // As fast as the server takes them: a new round once most of the last ones arrived (UDP would drop an unbounded backlog).
      const rounds = 40;
      for (let r = 0; r < rounds; r++) {
        while (r * devices - delivered > 3 * devices && now() - started < 30000) await sleep(1);
        await burst();
      }
      await drain(devices * rounds, started);
      const maxRate = (delivered / (now() - started)) * 1000;
      max.push({ rate: maxRate, lost: devices * rounds - delivered, cpuMsPer1k: cpuPer1k(mark, delivered) });

      // 80 % of the maximum for 3 s, rounds spread evenly.
      const target = 0.8 * maxRate;
      const intervalMs = (devices / target) * 1000;
      const pacedRounds = Math.ceil((target * 3) / devices);
      delivered = 0;
      mark = process.cpuUsage();
      started = now();
      for (let r = 0; r < pacedRounds; r++) {
        const due = started + r * intervalMs;
        if (due > now()) await sleep(due - now());
        await burst();
      }
      await drain(devices * pacedRounds, started);
      paced.push({ rate: (delivered / (now() - started)) * 1000, lost: devices * pacedRounds - delivered, cpuMsPer1k: cpuPer1k(mark, delivered) });
    } finally {
      await Promise.all(loads.map((load) => ask(load, { command: 'close' })));
      for (const load of loads) load.kill();
      await red.deploy([]);
    }
  }
  record(`notifications ${kind} at a Node-RED node (max)`, max, { lost: max.reduce((sum, r) => sum + r.lost, 0) });
  record(`notifications ${kind} at a Node-RED node (80 % of max, paced)`, paced, { lost: paced.reduce((sum, r) => sum + r.lost, 0) });
}

/** The server in a process of its own with 200 lean devices registered, for the duration of body(server process). */
async function withServerProcess(devices, body) {
  const port = nextPort++;
  const server = fork(path.join(__dirname, 'server-process.js'));
  try {
    await ask(server, { command: 'start', port });
    return await withLeanDevices(port, devices, () => body(server));
  } finally {
    await ask(server, { command: 'stop' }).catch(() => undefined);
    server.kill();
  }
}

/** Reads from the server's own process to 200 devices, one in flight per device (closed loop). */
async function reads() {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const run = await withServerProcess(200, (server) => ask(server, { command: 'reads', path: '/3/0/9', perDevice: 50 }));
    if (run.answered < run.issued) throw new Error(`reads: ${run.issued - run.answered} of ${run.issued} failed`);
    runs.push(run);
  }
  record('reads (200 devices, 1 in flight each)', runs, { p50Ms: median(runs.map((r) => r.p50)), p99Ms: median(runs.map((r) => r.p99)) });
}

/** Reads issued at a fixed rate (open loop, spread over 200 devices): latency when the server is not saturated. */
async function pacedReads(perSecond) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const run = await withServerProcess(200, (server) => ask(server, { command: 'reads', path: '/3/0/9', perSecond, durationMs: 3000 }));
    if (run.answered < run.issued) throw new Error(`paced reads: ${run.issued - run.answered} of ${run.issued} failed or unanswered`);
    runs.push(run);
  }
  record(`reads paced at ${perSecond}/s`, runs, { p50Ms: median(runs.map((r) => r.p50)), p99Ms: median(runs.map((r) => r.p99)), p99MsRuns: runs.map((r) => Number(r.p99.toFixed(2))) });
}

/** The same registration, update and read workloads against lwm2m-node-lib's server (npm), the Node.js peer. */
async function lwm2mNodeLib() {
  const logger = require('logops');
  logger.setLevel('FATAL');
  const lib = require('lwm2m-node-lib').server;
  const config = (port) => ({ port, lifetimeCheckInterval: 1000, udpWindow: 100, defaultType: 'Device', types: [], logLevel: 'FATAL', ipProtocol: 'udp4', serverProtocol: 'udp4', formats: [{ name: 'application-vnd-oma-lwm2m/text', value: 1541 }], writeFormat: 'application-vnd-oma-lwm2m/text' });
  const count = Math.min(...SIZES);
  const register = [];
  const update = [];
  const read = [];
  for (let i = 0; i < RUNS; i++) {
    const port = nextPort++;
    const info = await new Promise((resolve, reject) => lib.start(config(port), (error, started) => (error ? reject(error) : resolve(started))));
    try {
      const lean = await registerAndUpdate(port, count, meterHere);
      register.push(lean.register);
      update.push(lean.update);
      // Reads need devices that answer: 200 lean ones.
      await withLeanDevices(port, 200, async () => {
        const devices = (await new Promise((resolve) => lib.listDevices((error, list) => resolve(list)))).filter((device) => device.name.startsWith('d'));
        const latencies = [];
        let failed = 0;
        const mark = process.cpuUsage();
        const started = now();
        await Promise.all(
          devices.map(async (device) => {
            for (let j = 0; j < 50; j++) {
              const t = now();
              // Failures are counted, not fatal: this is the peer's behaviour under load, part of the comparison.
              const ok = await new Promise((resolve) => lib.read(device.id, '3', '0', '9', (error) => resolve(!error)));
              if (ok) latencies.push(now() - t);
              else failed++;
            }
          }),
        );
        latencies.sort((a, b) => a - b);
        read.push({ rate: (latencies.length / (now() - started)) * 1000, cpuMsPer1k: cpuPer1k(mark, devices.length * 50), p50: latencies[Math.floor(latencies.length / 2)], p99: latencies[Math.floor(latencies.length * 0.99)], failed });
      });
    } finally {
      await new Promise((resolve) => lib.stop(info, resolve));
    }
  }
  record(`peer lwm2m-node-lib: register ${count}`, register);
  record(`peer lwm2m-node-lib: update ${count}`, update);
  record('peer lwm2m-node-lib: reads (200 devices, 1 in flight each)', read, { p50Ms: median(read.map((r) => r.p50)), p99Ms: median(read.map((r) => r.p99)), lost: read.reduce((sum, r) => sum + r.failed, 0) });
}

/** BENCH_ONLY=register,notifications runs a subset (the echo ceiling always runs). */
const ONLY = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',') : undefined;
const wanted = (name) => !ONLY || ONLY.includes(name);

async function main() {
  const ceiling = await echoBaseline();
  if (wanted('register')) for (const size of SIZES) await registrations(size);
  if (wanted('notifications')) {
    const red = await startNodeRed();
    try {
      await notificationsAtNode(red, false);
      await notificationsAtNode(red, true);
    } finally {
      await red.stop();
    }
  }
  if (wanted('reads')) {
    await reads();
    await pacedReads(10000);
  }
  if (wanted('peer')) await lwm2mNodeLib();
  const rows = Object.entries(results.workloads).map(([name, w]) => ({
    workload: name,
    'per s (median)': w.rate,
    'of echo': `${((w.rate / ceiling) * 100).toFixed(1)} %`,
    runs: w.runs.join(' / '),
    ...(w.p50Ms !== undefined ? { 'p50 ms': w.p50Ms.toFixed(2), 'p99 ms': w.p99Ms.toFixed(2) } : {}),
    ...(w.cpuMsPer1k !== undefined ? { 'CPU ms/1k': w.cpuMsPer1k } : {}),
    ...(w.rssBytesPerDevice !== undefined ? { 'RSS B/device': w.rssBytesPerDevice, 'observed': w.rssBytesPerObservedDevice } : {}),
    ...(w.secondsForAll !== undefined ? { 's for all': w.secondsForAll } : {}),
    ...(w.lost !== undefined ? { lost: w.lost } : {}),
  }));
  for (const w of Object.values(results.workloads)) w.fractionOfEcho = Number((w.rate / ceiling).toFixed(4));
  console.table(rows);
  const out = path.join(__dirname, 'results', `bench-${results.date.replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(results, null, 2));
  console.log(`results written to ${path.relative(process.cwd(), out)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
