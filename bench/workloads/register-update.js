'use strict';
// Register and Update of N devices (one socket each, 64 requests outstanding, every answer checked),
// against the pack, the Node.js and C echoes (the same datagrams, echoed) and the peers, interleaved
// round by round. The pack runs twice: every device with the same link list, and each with its own.
const { Fleet } = require('../lib/fleet');
const { ask, rssBytes } = require('../lib/processes');
const { measure } = require('../lib/results');
const servers = require('../lib/servers');

/**
 * The peers' registrations cost more the more devices are registered (Wakaama keeps lists, lwm2m-node-lib
 * looks names up across all devices and checks every lifetime each second: 20k took it 1-2 minutes): each
 * is measured up to its size limit, in every round up to PEER_ALL_ROUNDS_MAX devices and in the first
 * round only above it, so that npm run bench stays near 15 minutes.
 */
const PEERS = [
  { name: 'lwm2m-node-lib', start: servers.lwm2mNodeLib, maxDevices: Number(process.env.BENCH_NODE_LIB_MAX_DEVICES || 20000) },
  { name: 'Eclipse Wakaama', start: servers.wakaama, maxDevices: Number(process.env.BENCH_WAKAAMA_MAX_DEVICES || 50000) },
];
const PEER_ALL_ROUNDS_MAX = 1000;
/** An echo run does at least this many round trips, so that a small fleet still gives a steady figure. */
const MIN_ECHO_OPERATIONS = 20000;
/**
 * Every server first gets this many devices registered and updated (an echo, as many round trips), not
 * measured: a Node.js server compiles its hot code during its first thousands of requests, a one-time
 * cost, not one per operation. Fleets no larger than the warm-up are measured cold instead (a fresh
 * process: what a restart costs), and named so.
 */
const WARM_UP_DEVICES = 2000;
const NODE_ECHO = 'Node.js echo';

/** BENCH_SERVERS=pack,echo measures only the subjects whose names contain one of these words (while developing). */
const SERVERS = process.env.BENCH_SERVERS?.toLowerCase().split(',');
const wanted = (subject) => !SERVERS || SERVERS.some((word) => subject.toLowerCase().includes(word));

const kb = (bytes) => `${(bytes / 1024).toFixed(2)} KB`;

/** The pack's notes: RSS per device (identical or distinct lists), with one observation, time for all. */
function describe(subject, samples) {
  const notes = [];
  const mid = (key) => {
    const values = samples.map((s) => s[key]).filter((v) => v !== undefined).sort((a, b) => a - b);
    return values.length ? values[values.length >> 1] : undefined;
  };
  if (mid('rssPerDevice') !== undefined) notes.push(`RSS ${kb(mid('rssPerDevice'))}/device`);
  if (mid('rssPerObservedDevice') !== undefined) notes.push(`${kb(mid('rssPerObservedDevice'))} with one observation`);
  if (mid('seconds') !== undefined) notes.push(`all in ${mid('seconds').toFixed(2)} s`);
  if (samples.some((s) => s.retransmissions)) notes.push(`${samples.reduce((sum, s) => sum + (s.retransmissions ?? 0), 0)} retransmissions`);
  if (samples.some((s) => s.firstBadCode >= 0)) notes.push(`bad answer code ${samples.find((s) => s.firstBadCode >= 0).firstBadCode}`);
  return notes.join('; ');
}

/** The warm-up fleet, from addresses of its own (127.0.9.x). */
async function warmUp(server, distinct, registering, cold) {
  if (cold) return { close: async () => undefined };
  const warm = await Fleet.open(server.port, WARM_UP_DEVICES, { prefix: 'w', distinct, network: 9 });
  if (registering) {
    await warm.all('register');
    await warm.all('update');
  } else await warm.echo(2 * WARM_UP_DEVICES);
  return warm;
}

/**
 * The warm-up fleet registers and updates once more, after the forced collection that settles the heap for
 * the RSS reading: that collection frees objects the optimized code was specialised for (V8 then discards
 * that code), and the measured phase would pay its recompilation. Its devices re-register under the same
 * names, replacing their registrations: the RSS per device is unchanged by it.
 */
async function rewarm(warm) {
  if (!warm.all) return;
  await warm.all('register');
  await warm.all('update');
}

/**
 * A phase's outcome once a Node.js server has promoted what the phase left in its young generation
 * (bench/lib/promote.js), inside the phase's measurement: the Update phase otherwise paid the copying of
 * the registrations just made (in process, 0.7 us of an Update's 4 us of JavaScript).
 */
async function promoted(server, phase) {
  const outcome = await phase;
  await server.promote?.();
  return outcome;
}

async function echo(results, names, round, size, subject, start, cold) {
  if (!wanted(subject)) return;
  const server = await start();
  const warm = await warmUp(server, false, false, cold);
  const fleet = await Fleet.open(server.port, size, { prefix: 'e' });
  try {
    const sample = await measure(server.pid, () => fleet.echo(Math.max(size, MIN_ECHO_OPERATIONS)));
    for (const workload of names) results.add(workload, subject, round, sample);
  } finally {
    await fleet.close();
    await warm.close();
    await server.stop();
  }
}

/** Registers then updates size devices on an LwM2M server; RSS per device after settling (a forced collection for Node.js servers). */
async function lwm2m(results, [register, update], round, size, subject, start, { distinct = false, observe = false, cold = false } = {}) {
  if (!wanted(subject)) return;
  const server = await start();
  if (!server) return;
  const warm = await warmUp(server, distinct, true, cold);
  const fleet = await Fleet.open(server.port, size, { prefix: `r${round}`, distinct });
  try {
    await server.settle();
    const before = rssBytes(server.pid);
    await rewarm(warm);
    const registered = await measure(server.pid, () => promoted(server, fleet.all('register')));
    await server.settle();
    registered.rssPerDevice = (rssBytes(server.pid) - before) / size;
    registered.seconds = registered.ms / 1000;
    const updated = await measure(server.pid, () => promoted(server, fleet.all('update')));
    if (observe) {
      const { observations } = await ask(server.child, { command: 'observeAll', path: '/3303/0/5700', prefix: `r${round}-` });
      if (observations !== size) throw new Error(`${observations} of ${size} devices observed`);
      await server.settle();
      registered.rssPerObservedDevice = (rssBytes(server.pid) - before) / size;
    }
    results.add(register, subject, round, registered);
    results.add(update, subject, round, updated);
  } finally {
    await fleet.close();
    await warm.close();
    await server.stop();
  }
}

async function run({ runs, sizes, results }) {
  for (const size of sizes) {
    const cold = size <= WARM_UP_DEVICES;
    const suffix = cold ? ', cold start' : '';
    const names = [`register ${size.toLocaleString('en')}${suffix}`, `update ${size.toLocaleString('en')}${suffix}`];
    for (const name of names) results.workload(name, { baseline: NODE_ECHO, describe });
    for (let round = 0; round < runs; round++) {
      await echo(results, names, round, size, NODE_ECHO, servers.nodeEcho, cold);
      await echo(results, names, round, size, 'C echo', servers.cEcho, cold);
      await lwm2m(results, names, round, size, 'pack', servers.pack, { observe: true, cold });
      await lwm2m(results, names, round, size, 'pack, distinct link lists', servers.pack, { distinct: true, cold });
      for (const peer of PEERS) {
        if (size <= peer.maxDevices && (round === 0 || size <= PEER_ALL_ROUNDS_MAX)) await lwm2m(results, names, round, size, peer.name, peer.start, { cold });
      }
    }
  }
}

module.exports = { name: 'register', run };
