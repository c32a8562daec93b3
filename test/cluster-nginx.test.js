'use strict';
// End to end through a real UDP load balancer: nginx's stream proxy (hash $remote_addr consistent) in front of two
// Node-RED instances on one redis-server. A server-initiated read reaches a device long after it registered only while
// nginx keeps the device's session (a long proxy_timeout); when the instance serving a device is killed, nginx sends
// the device's next datagram to the other, which serves it without a new registration.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { startRedis } = require('./support/redis');
const { startNginx } = require('./support/nginx');
const { clusterFlow, startInstance, stopInstance, killInstance, request, stats } = require('./support/cluster');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 500, maxRetransmit: 4 };

describe('a cluster behind nginx (UDP stream proxy)', function () {
  this.timeout(120_000);
  const dir = path.join(__dirname, '..', 'test-artifacts', `nginx-cluster-${process.pid}`);
  let redis;
  let nginx;
  let instances = [];
  const devices = [];

  before(async function () {
    this.timeout(60_000);
    redis = await startRedis();
    const flow = clusterFlow({ redisUrl: redis.url });
    const credentials = { srv: { stateKey: 'the same state key on every instance' } };
    instances = await Promise.all(['n1', 'n2'].map((name) => startInstance(dir, name, { flow, credentials })));
    nginx = await startNginx({ upstreams: instances.map((instance) => instance.udp), listeners: [{ proxyTimeout: '1h' }, { proxyTimeout: '2s' }] });
  });

  after(async function () {
    this.timeout(30_000);
    await Promise.all(devices.map((device) => device.stop()));
    await nginx?.stop();
    await Promise.all(instances.map(stopInstance));
    await redis?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reaches a device long after it registered (long proxy_timeout, not a short one), and after its instance dies serves it from the other without a new registration', async () => {
    const [long, short] = nginx.listeners;
    const device = async (endpoint, server) => {
      const d = new SimulatedDevice({ endpoint, server, transmission: FAST, lifetime: 600 });
      devices.push(d);
      await d.start();
      await d.register();
      return d;
    };
    const kept = await device('through-long', long);
    await device('through-short', short);
    await until(async () => (await Promise.all(instances.map(stats))).reduce((sum, counts) => sum + (counts.registered ?? 0), 0) === 2, 10_000, 'both registered');
    // Both devices come from 127.0.0.1: the same hash, the same instance.
    const all = await Promise.all(instances.map(stats));
    const serving = instances[all.findIndex((counts) => counts.registered === 2)];
    assert.ok(serving, 'one instance serves both');
    const other = instances.find((instance) => instance !== serving);

    // Until nginx says the short listener's session timed out (its proxy_timeout after the device's last exchange): nginx has forgotten that device's session, not the other's.
    const sessionOf = (port) => new RegExp(`\\*(\\d+) udp client \\S+ connected to 127\\.0\\.0\\.1:${port}\\b`).exec(nginx.log())?.[1];
    await until(() => {
      const id = sessionOf(short.port);
      return id !== undefined && nginx.log().includes(`*${id} udp timed out`);
    }, 20_000, 'nginx to time the short session out');
    assert.ok(!nginx.log().includes(`*${sessionOf(long.port)} udp timed out`), 'the long session is kept');
    await request(other, 'POST', '/read', { endpoints: ['through-long', 'through-short'], timeout: 4 });
    await until(async () => (((await stats(other)).read ?? 0) + ((await stats(other))['read failed'] ?? 0)) === 2, 20_000, 'both reads to end');
    const counts = await stats(other);
    assert.equal(counts['read through-long'], 1, 'the read through the long session reaches the device (routed through the instance serving it)');
    assert.equal(counts['read failed'], 1, `the read through the short one is lost: nginx closed the session\n${nginx.log().slice(-3000)}`);
    assert.match(Object.keys(counts).find((key) => key.startsWith('read failed: ')), /no response|timeout/);

    // The instance serving the device dies: nginx sends its next datagram (a retransmission) to the other.
    await killInstance(serving);
    await kept.update().catch((error) => {
      throw new Error(`${error.message}\n${nginx.log().slice(-4000)}`);
    });
    const after = await stats(other);
    assert.equal(after.registered ?? 0, (counts.registered ?? 0), 'no new registration');
    assert.ok((after.updated ?? 0) >= 1, `the Update answered by the other instance: ${JSON.stringify(after)}
${other.log}`);
    await request(other, 'POST', '/read', { endpoints: ['through-long'], timeout: 4 });
    await until(async () => ((await stats(other))['read through-long'] ?? 0) === 2, 10_000, 'the read after the fail-over');
    assert.ok(/upstream|Connection refused|recv\(\) failed/.test(nginx.log()), 'nginx saw the dead upstream');
  });
});
