'use strict';
// Reads of /3/0/9 from 200 devices (the C generator answers 2.05 text/plain), issued two ways: through
// the library in the server's own process (bench/servers/pack.js), and by a flow in Node-RED (inject ->
// lwm2m read -> silent debug node, errors to a catch node; bench/servers/node-red.js). Closed loop (one
// read in flight per device), beside echoes driven with the same concurrency; then paced at 10,000/s.
// Latency percentiles pool every sample of every run.
const { fork } = require('node:child_process');
const path = require('node:path');
const { Fleet } = require('../lib/fleet');
const { ask } = require('../lib/processes');
const { measure } = require('../lib/results');
const { pooled } = require('../lib/stats');
const servers = require('../lib/servers');

const DEVICES = 200;
const PER_DEVICE = 50;
const PACED = 10000;
const PACED_MS = 3000;
const LIBRARY = 'pack, reads from the library';
const FLOW = 'pack, reads from a flow';

/** Pooled latency percentiles of a subject's runs, for the notes. */
function describe(_subject, samples) {
  if (!samples[0]?.latencies) return '';
  const { count, p50, p99, p999, max } = pooled(samples.map((s) => s.latencies));
  return `pooled over ${count.toLocaleString('en')} reads: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, p99.9 ${p999.toFixed(2)} ms, max ${max.toFixed(1)} ms`;
}

/** Reads issued by target (the pack's process or Node-RED's) to DEVICES registered devices; a warm-up of the same kind first. */
async function reads(target, port, query) {
  const fleet = await Fleet.open(port, DEVICES, { prefix: 'rd' });
  try {
    const registered = await fleet.all('register');
    if (registered.ok !== DEVICES) throw new Error(`reads: ${registered.ok} of ${DEVICES} registered`);
    await ask(target, query.perSecond ? { ...query, durationMs: 1000 } : { ...query, perDevice: Math.ceil(query.perDevice / 5) });
    return await measure(target.pid, async () => {
      const run = await ask(target, query);
      return { ok: run.answered, lost: run.issued - run.answered, latencies: run.latencies };
    });
  } finally {
    await fleet.close();
  }
}

async function echo(results, workload, round, subject, start) {
  const server = await start();
  const fleet = await Fleet.open(server.port, DEVICES, { prefix: 'e', window: DEVICES });
  try {
    results.add(workload, subject, round, await measure(server.pid, () => fleet.echo(DEVICES * PER_DEVICE)));
  } finally {
    await fleet.close();
    await server.stop();
  }
}

async function library(query) {
  const server = await servers.pack();
  try {
    return await reads(server.child, server.port, query);
  } finally {
    await server.stop();
  }
}

async function run({ runs, results }) {
  const closed = `reads, ${DEVICES} devices, 1 in flight each`;
  const paced = `reads paced at ${PACED.toLocaleString('en')}/s`;
  results.workload(closed, { baseline: 'Node.js echo', describe });
  results.workload(paced, { baseline: LIBRARY, describe });
  const red = fork(path.join(__dirname, '..', 'servers', 'node-red.js'), { execArgv: ['--expose-gc'] });
  const fromFlow = async (query) => reads(red, (await ask(red, { command: 'read' })).port, query);
  try {
    await ask(red, { command: 'start' });
    for (let round = 0; round < runs; round++) {
      await echo(results, closed, round, 'Node.js echo', servers.nodeEcho);
      await echo(results, closed, round, 'C echo', servers.cEcho);
      results.add(closed, LIBRARY, round, await library({ command: 'reads', path: '/3/0/9', perDevice: PER_DEVICE }));
      results.add(closed, FLOW, round, await fromFlow({ command: 'reads', perDevice: PER_DEVICE }));
      results.add(paced, LIBRARY, round, await library({ command: 'reads', path: '/3/0/9', perSecond: PACED, durationMs: PACED_MS }));
      results.add(paced, FLOW, round, await fromFlow({ command: 'reads', perSecond: PACED, durationMs: PACED_MS }));
    }
    await ask(red, { command: 'stop' });
  } finally {
    red.kill();
  }
}

module.exports = { name: 'reads', run };
