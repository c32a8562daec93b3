'use strict';
// Reads of /3/0/9 over CoAP over TCP (RFC 8323) beside the same reads over UDP, in the same round: the pack
// in a process of its own with only a TCP listener, 200 devices over one connection each (bench/c/tcp-fleet.c,
// CSM and Register with binding T, then 2.05 text/plain answers), reads issued through the library in the
// pack's process (bench/servers/pack.js). Closed loop (one read in flight per device), then paced at 10,000/s.
// The baseline of each round is the pack over UDP with the UDP fleet (bench/c/fleet.c).
const { Fleet } = require('../lib/fleet');
const { LineProcess, ask, onLoadCpu } = require('../lib/processes');
const { measure } = require('../lib/results');
const { pooled } = require('../lib/stats');
const { cTool } = require('../lib/tools');
const servers = require('../lib/servers');

const DEVICES = 200;
const PER_DEVICE = 50;
const PACED = 10000;
const PACED_MS = 3000;
const UDP = 'pack over UDP';
const TCP = 'pack over TCP';

function describe(_subject, samples) {
  if (!samples[0]?.latencies) return '';
  const { count, p50, p99, p999 } = pooled(samples.map((s) => s.latencies));
  return `pooled over ${count.toLocaleString('en')} reads: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, p99.9 ${p999.toFixed(2)} ms`;
}

/** DEVICES devices over TCP, connected and registered to the pack on port. */
async function tcpFleet(port) {
  const fleet = new LineProcess(...onLoadCpu(cTool('tcp-fleet'), ['--server', `127.0.0.1:${port}`, '--bind', '127.0.4.1', '--count', String(DEVICES), '--prefix', 'tr']));
  await fleet.next();
  const registered = await fleet.command('register');
  if (registered.ok !== DEVICES) throw new Error(`TCP reads: ${registered.ok} of ${DEVICES} registered`);
  return fleet;
}

async function udpFleet(port) {
  const fleet = await Fleet.open(port, DEVICES, { prefix: 'ur' });
  const registered = await fleet.all('register');
  if (registered.ok !== DEVICES) throw new Error(`UDP reads: ${registered.ok} of ${DEVICES} registered`);
  return { stop: () => fleet.close() };
}

/** The reads of query from the pack's process (a warm-up of the same kind first), with the load the fleet makes. */
async function reads(options, openFleet, query) {
  const server = await servers.pack(options);
  const fleet = await openFleet(server.port);
  try {
    await ask(server.child, query.perSecond ? { ...query, durationMs: 1000 } : { ...query, perDevice: Math.ceil(query.perDevice / 5) });
    return await measure(server.pid, async () => {
      const run = await ask(server.child, query);
      return { ok: run.answered, lost: run.issued - run.answered, latencies: run.latencies };
    });
  } finally {
    await fleet.stop();
    await server.stop();
  }
}

async function run({ runs, results }) {
  const closed = `reads, ${DEVICES} devices, 1 in flight each: TCP beside UDP`;
  const paced = `reads paced at ${PACED.toLocaleString('en')}/s: TCP beside UDP`;
  results.workload(closed, { baseline: UDP, describe });
  results.workload(paced, { baseline: UDP, describe });
  const tcp = { tcp: { port: 0 } };
  const closedQuery = { command: 'reads', path: '/3/0/9', perDevice: PER_DEVICE };
  const pacedQuery = { command: 'reads', path: '/3/0/9', perSecond: PACED, durationMs: PACED_MS };
  for (let round = 0; round < runs; round++) {
    results.add(closed, UDP, round, await reads(undefined, udpFleet, closedQuery));
    results.add(closed, TCP, round, await reads(tcp, tcpFleet, closedQuery));
    results.add(paced, UDP, round, await reads(undefined, udpFleet, pacedQuery));
    results.add(paced, TCP, round, await reads(tcp, tcpFleet, pacedQuery));
  }
}

module.exports = { name: 'tcp', run };
