'use strict';
// Storms: every device re-registering at once, duplicates and retransmissions,
// a flood of garbage from one address. Nothing registered may be lost, other
// devices keep working, and memory stays bounded.
const assert = require('node:assert/strict');
const fc = require('fast-check');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FleetProcess } = require('../dist/sim/fleet-client');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encode, decode } = require('../dist/lib/coap/message');
const { peerKey } = require('../dist/lib/coap/peer');
const { formatCode } = require('../dist/lib/coap/codes');
const { freePort, RawPeer } = require('./support/udp');

const heapMb = () => {
  global.gc?.();
  return process.memoryUsage().heapUsed / 1e6;
};

describe('storms', function () {
  this.timeout(120000);
  let server;
  let port;

  beforeEach(async () => {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: { ackTimeoutMs: 1000 } });
    await server.start();
  });

  afterEach(() => server.stop());

  it('absorbs 10,000 devices re-registering at once and loses none', async () => {
    const fleet = new FleetProcess();
    try {
      await fleet.start({ server: { address: '127.0.0.1', port }, count: 10000, prefix: 'storm-', ackTimeoutMs: 1000 });
      await fleet.run({ command: 'register' });
      assert.equal(server.registrations.size, 10000);
      const firstIds = new Set([...server.registrations.all()].map((r) => r.id));
      let replaced = 0;
      server.on('registered', (_registration, previous) => previous && replaced++);
      const before = heapMb();
      const started = Date.now();
      await fleet.run({ command: 'register', concurrency: 10000 });
      const elapsed = Date.now() - started;
      assert.equal(server.registrations.size, 10000, 'one registration per device');
      assert.equal(replaced, 10000, 'every re-registration replaced the old one');
      assert.ok([...server.registrations.all()].every((r) => !firstIds.has(r.id)), 'all registrations are new');
      const growth = heapMb() - before;
      assert.ok(growth < 40, `heap grew ${growth.toFixed(1)} MB`);
      console.log(`      10,000 re-registrations at once in ${elapsed} ms, heap ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`);
    } finally {
      await fleet.close();
    }
  });

  it('answers duplicates and retransmissions from the cache, with bounded memory per device', async () => {
    const raw = await RawPeer.open();
    try {
      let registrations = 0;
      server.on('registered', () => registrations++);
      const register = encode({ type: 0, code: 2, messageId: 7, token: Buffer.from([7]), options: [{ number: 11, value: Buffer.from('rd') }, { number: 15, value: Buffer.from('ep=echo') }], payload: Buffer.from('</3/0>') });
      const first = await raw.exchange(register, port);
      for (let i = 0; i < 500; i++) assert.deepEqual(await raw.exchange(register, port), first);
      assert.equal(registrations, 1);
      // A long run of distinct requests keeps only the newest message ids per device.
      for (let mid = 1000; mid < 3000; mid++) {
        const update = encode({ type: 0, code: 2, messageId: mid, token: Buffer.from([1]), options: [{ number: 11, value: Buffer.from('rd') }, { number: 11, value: Buffer.from(decode(first).options[1].value) }], payload: Buffer.alloc(0) });
        raw.send(update, port);
        if (mid % 100 === 0) await raw.next(1000);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      const key = peerKey('127.0.0.1', raw.socket.address().port);
      const peer = server.coap.plain['peers'].get(key) ?? server.coap.plain['newcomers'].get(key);
      assert.ok(peer['recent'].size + peer['older'].size <= 128, 'dedup memory per peer is capped');
      assert.equal(server.registrations.size, 1);
    } finally {
      await raw.close();
    }
  });

  it('keeps serving other devices through a flood of garbage from one address', async () => {
    const devices = [];
    for (let i = 0; i < 20; i++) {
      const d = new SimulatedDevice({ endpoint: `calm-${i}`, server: { address: '127.0.0.1', port }, transmission: { ackTimeoutMs: 500 } });
      await d.start();
      await d.register();
      devices.push(d);
    }
    const raw = await RawPeer.open();
    try {
      const before = heapMb();
      const garbage = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 300 }), { numRuns: 2000, seed: 42 }).map((bytes) => Buffer.from(bytes));
      let sent = 0;
      const work = [];
      for (let round = 0; round < 25; round++) {
        for (const datagram of garbage) {
          raw.send(datagram, port);
          sent++;
        }
        // Meanwhile the calm devices are read and update as usual.
        work.push(server.send(`calm-${round % 20}`, new ReadRequest(Lwm2mPath.parse('/3/0/9'))), devices[round % 20].update());
        await new Promise((resolve) => setImmediate(resolve));
      }
      const results = await Promise.all(work);
      assert.equal(results.filter((r) => r && r.code === '2.05').length, 25);
      assert.equal(server.registrations.size, 20, 'nothing registered was lost');
      assert.ok(server.coap.plain.peerCount <= 25, `peer table bounded: ${server.coap.plain.peerCount}`);
      const growth = heapMb() - before;
      assert.ok(growth < 30, `heap grew ${growth.toFixed(1)} MB after ${sent} datagrams`);
      console.log(`      ${sent} garbage datagrams, heap ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`);
    } finally {
      await raw.close();
      await Promise.all(devices.map((d) => d.stop()));
    }
  });

  it('refuses new endpoints beyond the registration limit with 5.03, and lets known ones re-register', async () => {
    await server.stop();
    server = new Lwm2mServer({ address: '127.0.0.1', port, maxRegistrations: 3 });
    await server.start();
    const devices = [];
    try {
      for (let i = 0; i < 4; i++) {
        const d = new SimulatedDevice({ endpoint: `limited-${i}`, server: { address: '127.0.0.1', port }, transmission: { ackTimeoutMs: 200 } });
        await d.start();
        devices.push(d);
      }
      for (const d of devices.slice(0, 3)) await d.register();
      await assert.rejects(devices[3].register(), (error) => error.responseCode === '5.03' && /limit of 3 registrations/.test(error.message));
      await devices[0].register();
      assert.equal(server.registrations.size, 3);
    } finally {
      await Promise.all(devices.map((d) => d.stop()));
    }
  });

  it('forgets the oldest addresses that only sent requests once their table is full, never a registered device', async () => {
    await server.stop();
    server = new Lwm2mServer({ address: '127.0.0.1', port, maxPeers: 2 });
    await server.start();
    const device = new SimulatedDevice({ endpoint: 'kept', server: { address: '127.0.0.1', port } });
    await device.start();
    const peers = [await RawPeer.open(), await RawPeer.open(), await RawPeer.open()];
    try {
      await device.register();
      const ping = (mid) => Buffer.from([0x40, 0x01, 0, mid]);
      for (const [i, peer] of peers.entries()) assert.ok(await peer.exchange(ping(i), port), 'every new address is answered');
      assert.deepEqual([server.coap.plain.usage.peers, server.coap.plain.usage.newcomers], [1, 2], 'the registered device apart, two newcomers');
      assert.ok(await peers[0].exchange(ping(9), port), 'a forgotten address is a newcomer again');
      assert.equal(formatCode(decode(await peers[0].exchange(ping(10), port)).code), '4.04');
      assert.equal((await server.send('kept', new ReadRequest(Lwm2mPath.parse('/3/0/9')))).code, '2.05');
    } finally {
      await Promise.all(peers.map((p) => p.close()));
      await device.stop();
    }
  });
});
