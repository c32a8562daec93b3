'use strict';
// Notifications counted where a flow gets them: msgs at a silent debug node wired to an lwm2m observe
// node that observes every registering device (Node-RED in a process of its own, bench/servers/node-red.js).
// NON notifications are one-way, so their baseline is a one-way sink; a CON notification and its ACK are
// a round trip, so theirs is an echo. Every subject gets the same rounds: 1,000 devices notify once each,
// a new round once at most AHEAD rounds are undelivered (UDP drops an unbounded backlog: this maximum
// throttles itself, so its loss is low by design); the pack is then paced at 80 % of its maximum (the
// generator spreads the notifications evenly), where none may be lost. Loss is counted per run.
const { fork } = require('node:child_process');
const path = require('node:path');
const { Fleet } = require('../lib/fleet');
const { ask } = require('../lib/processes');
const { measure } = require('../lib/results');
const servers = require('../lib/servers');

const DEVICES = 1000;
const WARM_UP_ROUNDS = 10;
const ROUNDS = 40;
const AHEAD = 2;
const PACED_SECONDS = 3;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

/** Waits until expected more than base are delivered, or none arrived for a second; ms up to the last delivery. */
async function drain(delivered, base, expected, started) {
  let count = (await delivered()) - base;
  let lastProgress = now();
  let lastCount = count;
  while (count < expected && now() - lastProgress < 1000) {
    await sleep(2);
    count = (await delivered()) - base;
    if (count > lastCount) [lastProgress, lastCount] = [now(), count];
  }
  return { ok: count, lost: expected - count, ms: lastProgress - started };
}

/** As fast as delivered: rounds (send(n) makes every device notify once), a new one once at most AHEAD are undelivered. */
async function drive({ send, delivered, rounds, firstRound }) {
  const base = await delivered();
  const started = now();
  for (let r = 0; r < rounds; r++) {
    while (r * DEVICES - ((await delivered()) - base) > AHEAD * DEVICES && now() - started < 30000) await sleep(1);
    await send(firstRound + r);
  }
  return drain(delivered, base, rounds * DEVICES, started);
}

/** A baseline: the Node.js or C sink or echo, every device sending one datagram a round. */
async function baseline(results, workload, round, subject, start) {
  const server = await start();
  const fleet = await Fleet.open(server.port, DEVICES, { prefix: 'b' });
  try {
    const send = (n) => fleet.all(`blast ${n}`);
    await drive({ send, delivered: server.count, rounds: WARM_UP_ROUNDS, firstRound: 1 });
    results.add(workload, subject, round, await measure(server.pid, () => drive({ send, delivered: server.count, rounds: ROUNDS, firstRound: 100 })));
  } finally {
    await fleet.close();
    await server.stop();
  }
}

/** The pack in Node-RED: max, then paced at 80 % of it. */
async function pack(results, workload, round, red, confirmable) {
  const { port } = await ask(red, { command: 'observe' });
  const fleet = await Fleet.open(port, DEVICES, { prefix: `n${round}` });
  const delivered = async () => (await ask(red, { command: 'count' })).delivered;
  try {
    const registered = await fleet.all('register');
    if (registered.ok !== DEVICES) throw new Error(`notifications: ${registered.ok} of ${DEVICES} registered`);
    const waitStart = now();
    while ((await ask(red, { command: 'count' })).observations < DEVICES && now() - waitStart < 30000) await sleep(20);
    const send = (n) => fleet.all(`burst ${n} ${confirmable ? 'con' : 'non'}`);
    await drive({ send, delivered, rounds: WARM_UP_ROUNDS, firstRound: 1 });
    const max = await measure(red.pid, () => drive({ send, delivered, rounds: ROUNDS, firstRound: 100 }));
    results.add(workload, 'pack at a Node-RED node, max', round, max);
    const paced = await measure(red.pid, async () => {
      const base = await delivered();
      const started = now();
      // Spread evenly by the generator itself, as independent devices would send them.
      const { sent } = await fleet.all(`pace 1000 ${confirmable ? 'con' : 'non'} ${Math.round(0.8 * max.rate)} ${PACED_SECONDS}`);
      return drain(delivered, base, sent, started);
    });
    results.add(workload, 'pack at a Node-RED node, paced at 80 % of max', round, paced);
  } finally {
    await fleet.close();
  }
}

async function run({ runs, results }) {
  const non = `notifications NON, ${DEVICES.toLocaleString('en')} devices`;
  const con = `notifications CON, ${DEVICES.toLocaleString('en')} devices`;
  results.workload(non, { baseline: 'Node.js one-way sink' });
  results.workload(con, { baseline: 'Node.js echo' });
  const red = fork(path.join(__dirname, '..', 'servers', 'node-red.js'), { execArgv: ['--expose-gc'] });
  try {
    await ask(red, { command: 'start' });
    for (let round = 0; round < runs; round++) {
      await baseline(results, non, round, 'Node.js one-way sink', () => servers.nodeEcho({ sink: true }));
      await baseline(results, non, round, 'C one-way sink', () => servers.cEcho({ sink: true }));
      await pack(results, non, round, red, false);
      await baseline(results, con, round, 'Node.js echo', servers.nodeEcho);
      await baseline(results, con, round, 'C echo', servers.cEcho);
      await pack(results, con, round, red, true);
    }
    await ask(red, { command: 'stop' });
  } finally {
    red.kill();
  }
}

module.exports = { name: 'notifications', run };
