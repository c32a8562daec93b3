'use strict';
// The cluster workload: 1, 2 and 3 server instances (each a process of its own, bench/servers/cluster-instance.js)
// on one redis-server, and one instance on the file store (the baseline), in interleaved rounds. The C fleet
// (a process per instance, on its own loopback network) registers and updates at its instance; instance 1 reads
// every device (the others' through their instances). Measured: rates, all instances' CPU per 1,000 operations,
// Redis commands per operation (INFO's total_commands_processed), and, with 2 and 3 instances, the time from an
// instance's kill -9 to all its devices' Updates answered by another (as if the balancer moved them at once).
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { RedisLink } = require('../../dist/lib/cluster/redis-link');
const { Fleet } = require('../lib/fleet');
const { ask, cpuNs, loadAverage } = require('../lib/processes');
const { startRedis } = require('../../test/support/redis');

const DEVICES = Number(process.env.BENCH_CLUSTER_DEVICES || 3000);
const READ_CONCURRENCY = 64;
const BASELINE = '1 instance, file store';
const CONFIGURATIONS = [
  { subject: BASELINE, store: 'file', count: 1 },
  { subject: '1 instance, Redis', store: 'redis', count: 1 },
  { subject: '2 instances, Redis', store: 'redis', count: 2 },
  { subject: '3 instances, Redis', store: 'redis', count: 3 },
];

const share = (total, parts, p) => Math.floor(total / parts) + (p < total % parts ? 1 : 0);

/** Redis commands per operation, and the fail-over times, beside the medians. */
function describe(_subject, samples) {
  const notes = [];
  const commands = samples.map((s) => s.redisCommandsPerOperation).filter((v) => v !== undefined);
  if (commands.length) notes.push(`${(commands.reduce((a, b) => a + b, 0) / commands.length).toFixed(1)} Redis commands per operation`);
  const failovers = samples.map((s) => s.failoverMs).filter((v) => v !== undefined);
  if (failovers.length) notes.push(`kill -9 to served again: ${failovers.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(' / ')} for ${samples[0].failoverDevices} devices`);
  return notes.join('; ');
}

/** One round of one configuration; adds its register, update and read samples. */
async function measureConfiguration(results, names, round, { subject, store, count }, redis, redisLink, run) {
  const prefix = `bench${run}:srv:`;
  const file = path.join(os.tmpdir(), `lwm2m-bench-cluster-${process.pid}-${run}.json`);
  const instances = [];
  const fleets = [];
  try {
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(__dirname, '..', 'servers', 'cluster-instance.js'));
      const { port } = await ask(child, { command: 'start', store, url: redis.url, prefix, file, instance: `i${i + 1}` });
      instances.push({ child, port });
    }
    for (let i = 0; i < count; i++) fleets.push(await Fleet.open(instances[i].port, share(DEVICES, count, i), { prefix: `c${run}i${i}`, network: 20 + i, pinned: false }));
    const commands = async () => (store === 'redis' ? Number(/total_commands_processed:(\d+)/.exec(await redisLink.command(['INFO', 'stats']))[1]) : 0);
    const phase = async (body) => {
      const load = loadAverage();
      const [cpuBefore, commandsBefore] = [instances.reduce((sum, instance) => sum + cpuNs(instance.child.pid), 0), await commands()];
      const outcome = await body();
      const cpu = instances.reduce((sum, instance) => sum + cpuNs(instance.child.pid), 0) - cpuBefore;
      const commandsUsed = (await commands()) - commandsBefore;
      return {
        ...outcome,
        rate: (outcome.ok / outcome.ms) * 1000,
        cpuMsPer1k: cpu / 1e3 / outcome.ok,
        load,
        ...(store === 'redis' ? { redisCommandsPerOperation: commandsUsed / outcome.ok } : {}),
      };
    };
    const everyFleet = (command) => async () => {
      const answers = await Promise.all(fleets.map((fleet) => fleet.all(command)));
      return { ok: answers.reduce((sum, a) => sum + (a.ok ?? 0), 0), lost: answers.reduce((sum, a) => sum + (a.lost ?? 0), 0), bad: answers.reduce((sum, a) => sum + (a.bad ?? 0), 0), ms: Math.max(...answers.map((a) => a.ms)) };
    };
    const registered = await phase(everyFleet('register'));
    const updated = await phase(everyFleet('update'));
    const endpoints = fleets.flatMap((_, i) => Array.from({ length: share(DEVICES, count, i) }, (__, j) => `c${run}i${i}-${j}`));
    const read = await phase(async () => {
      const reply = await ask(instances[0].child, { command: 'reads', endpoints, concurrency: READ_CONCURRENCY });
      return { ok: endpoints.length - reply.failed, bad: reply.failed, ms: reply.elapsedMs };
    });
    if (count > 1) {
      // kill -9 of the last instance; its devices talk to the first from now on, as the balancer re-hashes them.
      const dead = instances.pop();
      const moved = fleets[count - 1];
      const killed = performance.now();
      const exited = new Promise((resolve) => dead.child.once('exit', resolve));
      dead.child.kill('SIGKILL');
      await exited;
      await moved.all(`server ${instances[0].port}`);
      const answer = await moved.all('update');
      if (answer.lost || answer.bad) throw new Error(`fail-over: ${answer.lost} lost, ${answer.bad} bad`);
      updated.failoverMs = performance.now() - killed;
      updated.failoverDevices = share(DEVICES, count, count - 1);
    }
    results.add(names.register, subject, round, registered);
    results.add(names.update, subject, round, updated);
    results.add(names.read, subject, round, read);
  } finally {
    await Promise.all(fleets.map((fleet) => fleet.close()));
    for (const instance of instances) await ask(instance.child, { command: 'exit', file }).catch(() => instance.child.kill());
    fs.rmSync(file, { force: true });
  }
}

async function run({ runs, results }) {
  const names = {
    register: `cluster: register ${DEVICES.toLocaleString('en')}`,
    update: `cluster: update ${DEVICES.toLocaleString('en')}`,
    read: `cluster: read ${DEVICES.toLocaleString('en')} from instance 1`,
  };
  for (const name of Object.values(names)) results.workload(name, { baseline: BASELINE, describe });
  const redis = await startRedis();
  const redisLink = new RedisLink({ url: redis.url });
  await redisLink.open();
  let counter = 0;
  try {
    for (let round = 0; round < runs; round++) {
      for (const configuration of CONFIGURATIONS) await measureConfiguration(results, names, round, configuration, redis, redisLink, ++counter);
    }
  } finally {
    redisLink.close();
    await redis.close();
  }
}

module.exports = { name: 'cluster', run };
