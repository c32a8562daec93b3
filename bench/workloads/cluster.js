'use strict';
// The cluster workload of npm run bench: 1, 2 and 3 server instances (each a process of its own) on one
// redis-server, against one instance on the file store in the same run. Lean devices (bench/lean-devices.js,
// a process per instance on its own loopback address) register and update at their instance; instance 1 reads
// every device (the others' through their instances). Measured: rates, the instances' CPU per 1,000 operations,
// Redis commands per operation (INFO's total_commands_processed), and, with 2 and 3 instances, the time from an
// instance's kill -9 to its devices' Updates all answered by another.
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { RedisLink } = require('../../dist/lib/cluster/redis-link');
const { startRedis } = require('../../test/support/redis');

const DEVICES = Number(process.env.BENCH_CLUSTER_DEVICES || 3000);
const WINDOW = 128;
const READ_CONCURRENCY = 64;

const ask = (child, message) =>
  new Promise((resolve, reject) => {
    child.once('message', (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply)));
    child.send(message);
  });

const cpuMs = (usage) => (usage.user + usage.system) / 1000;

/** One configuration: `count` instances on `store`, the fleet spread over them. */
async function measureConfiguration({ store, count, redis, redisLink, run }) {
  const prefix = `bench${run}:srv:`;
  const file = path.join(os.tmpdir(), `lwm2m-bench-cluster-${process.pid}-${run}.json`);
  const instances = [];
  const loads = [];
  try {
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(__dirname, '..', 'servers', 'cluster-instance.js'));
      const { port } = await ask(child, { command: 'start', store, url: redis?.url, prefix, file, instance: `i${i + 1}` });
      instances.push({ child, port });
    }
    const share = (i) => Math.floor(DEVICES / count) + (i < DEVICES % count ? 1 : 0);
    for (let i = 0; i < count; i++) {
      const load = fork(path.join(__dirname, '..', 'lean-devices.js'));
      await ask(load, { command: 'open', count: share(i), prefix: `c${run}-${i}`, address: `127.0.2.${i + 1}` });
      loads.push(load);
    }
    const commands = async () => (redisLink ? Number(/total_commands_processed:(\d+)/.exec(await redisLink.command(['INFO', 'stats']))[1]) : 0);
    const cpu = async () => (await Promise.all(instances.map((instance) => ask(instance.child, { command: 'cpu' })))).reduce((sum, reply) => sum + cpuMs(reply.cpu), 0);

    const phase = async (kind, body) => {
      const [cpuBefore, commandsBefore] = await Promise.all([cpu(), commands()]);
      const elapsedMs = await body();
      const [cpuAfter, commandsAfter] = await Promise.all([cpu(), commands()]);
      return { kind, rate: (DEVICES / elapsedMs) * 1000, cpuMsPer1k: ((cpuAfter - cpuBefore) / DEVICES) * 1000, redisCommandsPerOperation: redisLink ? (commandsAfter - commandsBefore) / DEVICES : undefined };
    };
    const everyLoad = (kind) => async () => {
      const replies = await Promise.all(loads.map((load, i) => ask(load, { command: 'run', kind, server: { address: '127.0.0.1', port: instances[i].port }, window: WINDOW, lifetime: 3600 })));
      return Math.max(...replies.map((reply) => reply.elapsedMs));
    };
    const endpoints = loads.flatMap((_, i) => Array.from({ length: share(i) }, (__, j) => `c${run}-${i}-${j}`));
    const figures = [await phase('register', everyLoad('register')), await phase('update', everyLoad('update'))];
    figures.push(
      await phase('read', async () => {
        const reply = await ask(instances[0].child, { command: 'reads', endpoints, concurrency: READ_CONCURRENCY });
        if (reply.failed > 0) throw new Error(`${reply.failed} reads failed: ${reply.firstError}`);
        return reply.elapsedMs;
      }),
    );
    let failoverMs;
    if (count > 1) {
      // kill -9 of the last instance; its devices' next datagrams go to the first (as a balancer re-hashes them).
      const dead = instances.pop();
      const killed = Date.now();
      dead.child.kill('SIGKILL');
      const reply = await ask(loads[count - 1], { command: 'run', kind: 'update', server: { address: '127.0.0.1', port: instances[0].port }, window: WINDOW, lifetime: 3600 });
      failoverMs = Date.now() - killed;
      if (reply.retransmissions > 0) failoverMs = `${failoverMs} (${reply.retransmissions} retransmissions)`;
    }
    return { figures, failoverMs };
  } finally {
    for (const load of loads) load.kill();
    for (const instance of instances) await ask(instance.child, { command: 'exit', file }).catch(() => instance.child.kill());
    fs.rmSync(file, { force: true });
  }
}

/**
 * Runs the workload `runs` times per configuration and reports each figure (median of the runs) through
 * report(name, samples), samples being [{rate, cpuMsPer1k, ...}] per run.
 */
async function run({ runs, report }) {
  const redis = await startRedis();
  const redisLink = new RedisLink({ url: redis.url });
  await redisLink.open();
  let counter = 0;
  try {
    const configurations = [{ store: 'file', count: 1 }, { store: 'redis', count: 1 }, { store: 'redis', count: 2 }, { store: 'redis', count: 3 }];
    for (const configuration of configurations) {
      const samples = {};
      for (let i = 0; i < runs; i++) {
        const { figures, failoverMs } = await measureConfiguration({ ...configuration, redis: configuration.store === 'redis' ? redis : undefined, redisLink: configuration.store === 'redis' ? redisLink : undefined, run: ++counter });
        for (const figure of figures) (samples[figure.kind] ??= []).push({ ...figure, failoverMs });
      }
      const label = configuration.store === 'file' ? '1 instance, file store' : `${configuration.count} instance${configuration.count > 1 ? 's' : ''}, Redis`;
      for (const [kind, list] of Object.entries(samples)) report(`cluster ${label}: ${kind} ${DEVICES}`, list);
    }
  } finally {
    redisLink.close();
    await redis.close();
  }
}

module.exports = { name: 'cluster', run };
