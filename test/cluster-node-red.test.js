'use strict';
// Three Node-RED processes with the same flows on one redis-server (Debian's), serving 2,000 simulated devices spread
// over them as a balancer would: a flow on instance 1 reads every device; one instance is killed (kill -9) and its
// devices moved to another, which serves them without a new registration (observations go on, a waiting request is
// delivered, DTLS devices go on in their sessions); Redis restarts (empty) in the middle.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FleetProcess } = require('../dist/sim/fleet-client');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { RedisLink } = require('../dist/lib/cluster/redis-link');
const { startRedis } = require('./support/redis');
const { clusterFlow, startInstance, stopInstance, killInstance, request, stats } = require('./support/cluster');
const { until } = require('./support/wait');

const DEVICES = 2000;
const FAST = { ackTimeoutMs: 500, maxRetransmit: 3 };
const PSK = { 'sec-0': { identity: 'sec-0-id', key: '736563726574302d6b6579' }, 'sec-1': { identity: 'sec-1-id', key: '736563726574312d6b6579' } };

describe('a cluster of three Node-RED instances on Redis', function () {
  this.timeout(240_000);
  const dir = path.join(__dirname, '..', 'test-artifacts', `cluster-${process.pid}`);
  let redis;
  let redisLink;
  let fleet;
  let instances = [];
  const extra = [];

  before(async function () {
    this.timeout(90_000);
    fs.rmSync(dir, { recursive: true, force: true });
    redis = await startRedis();
    redisLink = new RedisLink({ url: redis.url });
    await redisLink.open();
    const flow = clusterFlow({ redisUrl: redis.url, psk: PSK });
    const credentials = { srv: { stateKey: 'the same state key on every instance', pskKeys: JSON.stringify(Object.fromEntries(Object.entries(PSK).map(([endpoint, { key }]) => [endpoint, key]))) } };
    instances = await Promise.all(['n1', 'n2', 'n3'].map((name) => startInstance(dir, name, { flow, credentials })));
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.all(extra.map((device) => device.stop()));
    await fleet?.close();
    await Promise.all(instances.map(stopInstance));
    redisLink?.close();
    await redis?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const total = async (key) => (await Promise.all(instances.map(stats))).reduce((sum, counts) => sum + (counts[key] ?? 0), 0);
  const waitFor = async (what, predicate, timeoutMs = 60_000) => {
    try {
      await until(predicate, timeoutMs, what);
    } catch (error) {
      const counts = await Promise.all(instances.map((instance) => stats(instance).catch(() => ({}))));
      throw new Error(`${error.message}\n${JSON.stringify(counts.map((c) => Object.fromEntries(Object.entries(c).filter(([key]) => !key.startsWith('read ')))))}\n${instances.map((i) => i.log.slice(-3000)).join('\n---\n')}`);
    }
  };
  const keysInRedis = (pattern) => redisLink.command(['KEYS', `cluster-test:srv:${pattern}`]).then((keys) => keys.length, () => -1);
  const registrationsInRedis = () => keysInRedis('e:registrations:*');

  it('serves 2,000 devices spread over three instances, a flow on one reaches every device, and a killed instance\'s devices are served by another without registering again, through a Redis restart', async () => {
    const [n1, n2, n3] = instances;
    fleet = new FleetProcess();
    await fleet.start({ server: n1.udp, servers: instances.map((instance) => instance.udp), count: DEVICES, prefix: 'dev-', lifetime: 600, ackTimeoutMs: 1000 });
    await fleet.run({ command: 'register', concurrency: 200 });
    await waitFor('every device registered once, each at its own instance', async () => (await total('registered')) === DEVICES);
    const registeredAt = await Promise.all(instances.map((instance) => stats(instance).then((counts) => counts[`instance ${instance.name}`] ?? 0)));
    for (const count of registeredAt) assert.ok(Math.abs(count - DEVICES / 3) <= 1, `each instance has its third of the fleet: ${registeredAt}`);
    await waitFor('every device observed by the observe node of its instance', async () => (await total('observed')) === DEVICES);

    // DTLS devices and a sleeping device, all at n3, the instance to be killed.
    const secure = await Promise.all(
      Object.entries(PSK).map(async ([endpoint, { identity, key }]) => {
        const device = new SimulatedDevice({ endpoint, server: n3.dtls, dtls: { identity, key: Buffer.from(key, 'hex') }, transmission: FAST, lifetime: 600 });
        extra.push(device);
        await device.start();
        await device.register();
        return device;
      }),
    );
    const sleepy = new SimulatedDevice({ endpoint: 'sleepy', server: n3.udp, transmission: FAST, lifetime: 600, queueMode: true });
    extra.push(sleepy);
    await sleepy.start();
    await sleepy.register();

    // A flow on n1 reads every device: a third here, the rest through the instances serving them.
    const everyone = [...Array.from({ length: DEVICES }, (_, i) => `dev-${i}`), ...Object.keys(PSK)];
    let started = Date.now();
    await request(n1, 'POST', '/read', { endpoints: everyone });
    await waitFor('every read answered at n1', async () => ((await stats(n1)).read ?? 0) === everyone.length);
    const firstReads = Date.now() - started;
    assert.equal((await stats(n1))['read failed'], undefined);

    // Redis restarts empty: the instances write all they serve again.
    await redis.restart(300);
    await waitFor('the fleet back in Redis after its restart', async () => (await registrationsInRedis()) === DEVICES + Object.keys(PSK).length + 1, 30_000);

    // A request for the sleeping device waits at n3 (and in Redis).
    await new Promise((resolve) => setTimeout(resolve, 2500)); // asleep after the awake time (2 s)
    await request(n3, 'POST', '/read', { endpoints: ['sleepy'], ttl: 120 });
    await waitFor('the waiting request in Redis', async () => (await keysInRedis('e:parked:*')) === 1, 10_000);

    // n3 dies; the balancer sends its devices to n2.
    const before = await Promise.all([n1, n2].map(stats));
    await killInstance(n3);
    started = Date.now();
    const moved = await fleet.run({ command: 'move', from: n3.udp, to: n2.udp });
    assert.ok(Math.abs(moved - DEVICES / 3) <= 1);
    for (const device of secure) device.moveTo(n2.dtls);
    sleepy.moveTo(n2.udp);
    await fleet.run({ command: 'update' });
    const takeOverMs = Date.now() - started;
    await Promise.all(secure.map((device) => device.update()));
    const after = await Promise.all([n1, n2].map(stats));
    assert.equal(after[0].registered + after[1].registered, before[0].registered + before[1].registered, 'nobody registered again');
    assert.ok(after[1].updated - (before[1].updated ?? 0) >= moved + DEVICES / 3 - 1, 'n2 answered the Updates of its own and of n3\'s devices');

    // Observations go on: every device notifies, each notification delivered once, at the instance serving it.
    await fleet.run({ command: 'burst', round: 7, confirmable: false });
    await waitFor('a notification of every device', async () => (await total('value 7')) === DEVICES, 30_000);

    // The waiting request is delivered when the sleeping device wakes up at n2.
    await sleepy.update();
    await waitFor('the parked read answered at n2', async () => ((await stats(n2))['read sleepy'] ?? 0) === 1, 15_000);

    // n1 still reaches every device, the DTLS ones over their old sessions.
    const readsBefore = (await stats(n1)).read;
    started = Date.now();
    await request(n1, 'POST', '/read', { endpoints: everyone });
    await waitFor('every device read again from n1', async () => ((await stats(n1)).read ?? 0) === readsBefore + everyone.length);
    assert.equal((await stats(n1))['read failed'], undefined);
    process.stderr.write(`      ${everyone.length} reads from n1 in ${firstReads} ms (2/3 routed); ${moved} devices taken over by their Update in ${takeOverMs} ms; reads after the fail-over ${Date.now() - started} ms\n`);
  });
});
