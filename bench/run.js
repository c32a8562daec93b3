'use strict';
// npm run bench: the LwM2M server against a plain UDP echo on loopback, measured in the same run.
// The server under test runs in this process; the simulated devices run in a separate one.
// Rates are medians of RUNS runs; every LwM2M figure is also given as a fraction of the echo.
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');
const { fork } = require('node:child_process');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FleetProcess } = require('../dist/sim/fleet-client');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');

const RUNS = Number(process.env.BENCH_RUNS || 3);
const SIZES = (process.env.BENCH_DEVICES || '1000,10000').split(',').map(Number);
const results = { date: new Date().toISOString(), node: process.version, runs: RUNS, workloads: {} };

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e6;
let nextPort = 47600;

function record(name, runs, extra = {}) {
  const rate = median(runs.map((r) => r.rate));
  process.stderr.write(`  ${name}: ${Math.round(rate)}/s\n`);
  results.workloads[name] = { rate: Math.round(rate), runs: runs.map((r) => Math.round(r.rate)), ...extra };
}

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

async function withFleet(count, body, serverOptions = {}) {
  const port = nextPort++;
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const server = new Lwm2mServer({ address: '127.0.0.1', port, ...serverOptions });
  await server.start();
  const fleet = new FleetProcess();
  try {
    await fleet.start({ server: { address: '127.0.0.1', port }, count, prefix: 'b', sensorsPerDevice: 1, lifetime: 3600 });
    return await body(server, fleet, rssBefore);
  } finally {
    await fleet.close();
    await server.stop();
  }
}

async function registrations(count) {
  const register = [];
  const update = [];
  const rss = [];
  for (let i = 0; i < RUNS; i++) {
    await withFleet(count, async (server, fleet, rssBefore) => {
      let started = now();
      await fleet.run({ command: 'register' });
      register.push({ rate: (count / (now() - started)) * 1000 });
      global.gc?.();
      rss.push((process.memoryUsage().rss - rssBefore) / count);
      started = now();
      await fleet.run({ command: 'update' });
      update.push({ rate: (count / (now() - started)) * 1000 });
      if (server.registrations.size !== count) throw new Error(`only ${server.registrations.size} of ${count} registered`);
    });
  }
  record(`register ${count}`, register, { rssBytesPerDevice: Math.round(median(rss)) });
  record(`update ${count}`, update);
}

async function notifications(confirmable) {
  const devices = 200;
  const rounds = 3;
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    await withFleet(devices, async (server, fleet) => {
      await fleet.run({ command: 'register' });
      let delivered = 0;
      const listener = { notify: () => delivered++, error() {}, ended() {} };
      await Promise.all([...server.registrations.all()].map((r) => server.observe(r.endpoint, new ObserveRequest(Lwm2mPath.parse('/3303/0/5700')), listener)));
      const expected = devices * rounds * 25;
      const started = now();
      for (let round = 1; round <= rounds * 25; round++) await fleet.run({ command: 'burst', round, confirmable });
      while (delivered < expected && now() - started < 30000) await new Promise((resolve) => setTimeout(resolve, 5));
      runs.push({ rate: (delivered / (now() - started)) * 1000, lost: expected - delivered });
    });
  }
  record(`notifications ${confirmable ? 'CON' : 'NON'}`, runs, { lost: runs.reduce((sum, r) => sum + r.lost, 0) });
}

async function reads() {
  const devices = 200;
  const perDevice = 50;
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    await withFleet(devices, async (server, fleet) => {
      await fleet.run({ command: 'register' });
      const latencies = [];
      const started = now();
      await Promise.all(
        [...server.registrations.all()].map(async (registration) => {
          for (let j = 0; j < perDevice; j++) {
            const t = now();
            await server.send(registration.endpoint, new ReadRequest(Lwm2mPath.parse('/3/0/9')));
            latencies.push(now() - t);
          }
        }),
      );
      latencies.sort((a, b) => a - b);
      runs.push({ rate: ((devices * perDevice) / (now() - started)) * 1000, p50: latencies[Math.floor(latencies.length / 2)], p99: latencies[Math.floor(latencies.length * 0.99)] });
    });
  }
  record('reads (200 devices, 1 in flight each)', runs, { p50Ms: median(runs.map((r) => r.p50)), p99Ms: median(runs.map((r) => r.p99)) });
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
    const fleet = new FleetProcess();
    try {
      await fleet.start({ server: { address: '127.0.0.1', port }, count, prefix: 'p', sensorsPerDevice: 1, lifetime: 3600 });
      let started = now();
      await fleet.run({ command: 'register' });
      register.push({ rate: (count / (now() - started)) * 1000 });
      started = now();
      await fleet.run({ command: 'update' });
      update.push({ rate: (count / (now() - started)) * 1000 });
      const devices = (await new Promise((resolve) => lib.listDevices((error, list) => resolve(list)))).slice(0, 200);
      const latencies = [];
      let failed = 0;
      started = now();
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
      read.push({ rate: (latencies.length / (now() - started)) * 1000, p50: latencies[Math.floor(latencies.length / 2)], p99: latencies[Math.floor(latencies.length * 0.99)], failed });
    } finally {
      await fleet.close();
      await new Promise((resolve) => lib.stop(info, resolve));
    }
  }
  record(`peer lwm2m-node-lib: register ${count}`, register);
  record(`peer lwm2m-node-lib: update ${count}`, update);
  record('peer lwm2m-node-lib: reads (200 devices, 1 in flight each)', read, { p50Ms: median(read.map((r) => r.p50)), p99Ms: median(read.map((r) => r.p99)), lost: read.reduce((sum, r) => sum + r.failed, 0) });
}

async function main() {
  const ceiling = await echoBaseline();
  for (const size of SIZES) await registrations(size);
  await notifications(false);
  await notifications(true);
  await reads();
  await lwm2mNodeLib();
  const rows = Object.entries(results.workloads).map(([name, w]) => ({
    workload: name,
    'per s (median)': w.rate,
    'of echo': `${((w.rate / ceiling) * 100).toFixed(1)} %`,
    runs: w.runs.join(' / '),
    ...(w.p50Ms !== undefined ? { 'p50 ms': w.p50Ms.toFixed(2), 'p99 ms': w.p99Ms.toFixed(2) } : {}),
    ...(w.rssBytesPerDevice !== undefined ? { 'RSS B/device': w.rssBytesPerDevice } : {}),
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
