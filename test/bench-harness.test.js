'use strict';
// The benchmark's own parts (npm run bench): the C load generator checks every answer, drives the pack and
// answers its reads, the C echo echoes, and the report pairs each run with its baseline and shows every loss.
const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const { Fleet } = require('../bench/lib/fleet');
const { Results } = require('../bench/lib/results');
const { pooled } = require('../bench/lib/stats');
const servers = require('../bench/lib/servers');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { decode, encode } = require('../dist/lib/coap/message');

/** 3,000 datagrams from 100 devices to an echo server: every one back, byte for byte; the server stopped after. */
async function assertEchoes(echo) {
  const fleet = await Fleet.open(echo.port, 100, { prefix: 'e' });
  try {
    const outcome = await fleet.echo(3000);
    assert.deepEqual([outcome.ok, outcome.bad, outcome.lost], [3000, 0, 0]);
  } finally {
    await fleet.close();
    await echo.stop();
  }
}

describe('benchmark harness', function () {
  this.timeout(60000);

  it('the C fleet registers and updates against the pack; distinct link lists give each device its own objects, made of shared entries; it answers reads', async () => {
    const server = new Lwm2mServer({ address: '127.0.0.1', port: 0 });
    const [bound] = await server.start();
    const fleet = await Fleet.open(bound.port, 300, { prefix: 't', distinct: true });
    try {
      const registered = await fleet.all('register');
      assert.deepEqual([registered.ok, registered.bad, registered.lost], [300, 0, 0]);
      assert.equal(server.registrations.size, 300);
      const lists = new Set([...server.registrations.all()].map((registration) => JSON.stringify(registration.objects)));
      assert.equal(lists.size, 300, 'every device announced its own list');
      const first = server.registrations.getByEndpoint('t-0');
      assert.deepEqual(first.objects.map((object) => [object.id, [...object.instances]]), [[1, [0]], [3, [0]], [3300, [0]], [3400, [0]]]);
      // Different lists, the same entries: each device keeps only its array of shared object descriptions.
      const other = server.registrations.getByEndpoint('t-1'); // </1/0>,</3/0>,</3301/0>,</3400/0>
      assert.notEqual(other.objects, first.objects);
      assert.equal(other.objects[0], first.objects[0], '</1/0> is one entry for all devices');
      assert.equal(other.objects[3], first.objects[3], '</3400/0> too');
      const updated = await fleet.all('update');
      assert.deepEqual([updated.ok, updated.bad, updated.lost], [300, 0, 0]);
      const read = await server.send('t-7', new ReadRequest(Lwm2mPath.parse('/3/0/9')));
      assert.equal(read.code, '2.05');
      assert.equal(read.records[0].value, 20);
    } finally {
      await fleet.close();
      await server.stop();
    }
  });

  it('the C fleet fetches firmware files block by block from the file service, counting the bytes; a revoked file gets 4.04 and counts bad', async () => {
    const { FirmwareService } = require('../dist/lib/firmware/firmware-service');
    const { packageOf } = require('../dist/lib/firmware/packages');
    const server = new Lwm2mServer({ address: '127.0.0.1', port: 0 });
    const firmware = new FirmwareService(server);
    const [bound] = await server.start();
    const fleet = await Fleet.open(bound.port, 10, { prefix: 'fw', window: 10 });
    try {
      assert.equal((await fleet.all('register')).ok, 10);
      const pkg = packageOf(Buffer.alloc(5000, 7));
      for (let i = 0; i < 10; i++) firmware.files.grant(`fw-${i}`, pkg, `fw-${i}`);
      // 5 blocks of 1,024 bytes (the last of 904) for each of 10 devices: the whole file, twice over.
      const fetched = await fleet.all('fetch 100 5 6');
      assert.deepEqual([fetched.ok, fetched.bad, fetched.lost, fetched.bytes], [100, 0, 0, 10 * 2 * 5000]);
      firmware.files.revoke('fw-3');
      const refused = await fleet.all('fetch 10 5 6');
      assert.deepEqual([refused.ok, refused.bad, refused.firstBadCode], [9, 1, 132]);
    } finally {
      await fleet.close();
      await server.stop();
    }
  });

  it('counts every answer whose code is not the expected one as bad, with the code', async () => {
    // A server that refuses everything with 4.00: a generator that did not check codes would count 200 registrations.
    const socket = dgram.createSocket('udp4');
    socket.on('message', (datagram, remote) => {
      const request = decode(datagram);
      socket.send(encode({ type: 2, code: 128, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0) }), remote.port, remote.address);
    });
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const fleet = await Fleet.open(socket.address().port, 200, { prefix: 'b' });
    try {
      const outcome = await fleet.all('register');
      assert.deepEqual([outcome.ok, outcome.bad, outcome.firstBadCode], [0, 200, 128]);
    } finally {
      await fleet.close();
      socket.close();
    }
  });

  it('the C echo returns every datagram, checked byte for byte, and counts as a sink', async () => {
    await assertEchoes(await servers.cEcho());
    const sink = await servers.cEcho({ sink: true });
    const blaster = await Fleet.open(sink.port, 100, { prefix: 's' });
    try {
      await blaster.all('blast 1');
      let received = 0;
      for (let i = 0; i < 100 && received < 100; i++) {
        received = await sink.count();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(received, 100);
    } finally {
      await blaster.close();
      await sink.stop();
    }
  });

  it('the Node.js echo returns every datagram, its look-up answers address literals at once; the pack\'s server promotes its young generation when asked', async () => {
    await assertEchoes(await servers.nodeEcho());
    // The baselines' look-up answers an address literal at once (dns.lookup answers in the next tick).
    const { literalFirst } = require('../bench/lib/udp-socket');
    let answered;
    literalFirst('127.0.0.1', { family: 4 }, (error, address, family) => (answered = [error, address, family]));
    assert.deepEqual(answered, [null, '127.0.0.1', 4]);
    const pack = await servers.pack();
    try {
      await pack.promote();
    } finally {
      await pack.stop();
    }
  });

  it('pairs every run with its baseline of the same round, and shows the loss of every run and the worst', () => {
    const results = new Results({});
    results.workload('w', { baseline: 'echo' });
    const sample = (rate, cpuMsPer1k, lost = 0) => ({ ok: 1000, lost, bad: 0, rate, cpuMsPer1k, load: 1 });
    const quiet = process.stderr.write;
    process.stderr.write = () => true;
    try {
      results.add('w', 'echo', 0, sample(100, 10));
      results.add('w', 'pack', 0, sample(50, 20));
      results.add('w', 'echo', 1, sample(50, 20));
      results.add('w', 'pack', 1, sample(40, 30, 250));
      results.add('w', 'echo', 2, sample(100, 10));
      results.add('w', 'pack', 2, sample(60, 18));
    } finally {
      process.stderr.write = quiet;
    }
    const pack = results.rows().find((row) => row.server === 'pack');
    // Pairs 2.0, 1.5, 1.8: their median, not the ratio of the medians (20 / 10).
    assert.deepEqual(pack.cpuVsBaseline.runs, [2, 1.5, 1.8]);
    assert.equal(pack.cpuVsBaseline.median, 1.8);
    assert.deepEqual(pack.lostPerRun, [0, 250, 0]);
    assert.equal(pack.worstLostOf, 0.2);
    assert.match(results.markdown(), /0 \/ 250 \/ 0 \(20\.00 %\)/);
  });

  it('pools the samples of every run for percentiles, never a median of per-run percentiles', () => {
    const fast = Array.from({ length: 100 }, () => 1);
    const slow = Array.from({ length: 100 }, (_, i) => (i < 50 ? 1 : 100));
    // Per-run p99s are 1, 1 and 100: their median is 1; pooled, the slow run's tail is 50 of 300 samples.
    const { p50, p99, count } = pooled([fast, fast, slow]);
    assert.deepEqual([count, p50, p99], [300, 1, 100]);
  });
});
