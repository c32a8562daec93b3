'use strict';
// Attacks on loopback, bounded in count and time: what a flood of forged or
// oversized requests may cost the server, and that a real device keeps
// working through each. The server runs in a process of its own where its
// memory is measured (the figures go to the README's threat model).
const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { helper, load, nextMessage, statusMatching } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { encode, decode } = require('../dist/lib/coap/message');
const { formatCode } = require('../dist/lib/coap/codes');
const { RawPeer, freePort } = require('./support/udp');
const { startServerProcess } = require('./support/server-child');

const MB = 1024 * 1024;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes) => `${(bytes / MB).toFixed(0)} MB`;

/** A UDP socket on a loopback address that counts what it is sent and never answers: a forged source address. */
async function silentSocket(address = '127.0.0.1') {
  const socket = dgram.createSocket('udp4');
  socket.received = { datagrams: 0, bytes: 0, requests: 0 };
  socket.sent = { datagrams: 0, bytes: 0 };
  socket.on('message', (datagram) => {
    socket.received.datagrams++;
    socket.received.bytes += datagram.length;
    // A request: a code in class 0 other than the empty message (a CoAP ping).
    if (datagram.length >= 2 && datagram[1] !== 0 && datagram[1] >> 5 === 0) socket.received.requests++;
  });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.bind(0, address, resolve));
  socket.transmit = (datagram, port) => {
    socket.sent.datagrams++;
    socket.sent.bytes += datagram.length;
    return new Promise((resolve) => socket.send(datagram, port, '127.0.0.1', resolve));
  };
  return socket;
}

const close = (socket) => new Promise((resolve) => socket.close(resolve));

/** A Block1 option value of 1 KiB blocks (SZX 6). */
function block1(num, more) {
  const value = (num << 4) | (more ? 8 : 0) | 6;
  return value < 0x100 ? Buffer.from([value]) : Buffer.from([value >> 8, value & 0xff]);
}

function registerDatagram(endpoint, messageId) {
  return encode({
    type: 0, code: 2, messageId, token: Buffer.from([1, 2, 3, 4]),
    options: [{ number: 11, value: Buffer.from('rd') }, { number: 15, value: Buffer.from(`ep=${endpoint}`) }, { number: 15, value: Buffer.from('lt=86400') }, { number: 15, value: Buffer.from('lwm2m=1.1') }],
    payload: Buffer.from('</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</3303/0>'),
  });
}

describe('abuse: floods and forged sources', function () {
  this.timeout(180000);
  const cleanup = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('keeps the deduplication memory bounded: 64 ports x 128 CON GETs with a 60 KB path, at a 256 MB heap', async () => {
    const server = await startServerProcess({}, 256);
    cleanup.push(() => server.stop());
    const before = await server.usage();
    const device = new SimulatedDevice({ endpoint: 'meter-under-flood', server: { address: '127.0.0.1', port: server.port }, lifetime: 300 });
    await device.start();
    cleanup.push(() => device.stop());
    await device.register();

    const path = Buffer.alloc(60 * 1024, 'a');
    let answered = 0;
    let largest = 0;
    const flood = async (port) => {
      const socket = await silentSocket();
      let wake = () => undefined;
      socket.on('message', (datagram) => {
        answered++;
        largest = Math.max(largest, datagram.length);
        wake();
      });
      try {
        // Eight at a time per port, each batch answered (or given up after a second): the kernel's receive buffer holds them, so the server sees them all.
        for (let batch = 0; batch < 16; batch++) {
          const target = socket.received.datagrams + 8;
          const done = new Promise((resolve) => (wake = () => socket.received.datagrams >= target && resolve()));
          for (let mid = batch * 8; mid < batch * 8 + 8; mid++) {
            await socket.transmit(encode({ type: 0, code: 1, messageId: mid, token: Buffer.from([mid]), options: [{ number: 11, value: path }], payload: Buffer.alloc(0) }), port);
          }
          await Promise.race([done, sleep(1000)]);
        }
      } finally {
        await close(socket);
      }
    };
    for (let round = 0; round < 16; round++) {
      await Promise.all([0, 1, 2, 3].map(() => flood(server.port)));
      assert.ok(server.alive(), `the server process died in round ${round}`);
      if (round === 8) assert.equal((await server.read('meter-under-flood', '/3/0/9')).payload[0], 100, 'a registered device is read during the flood');
    }
    const after = await server.usage();
    assert.ok(answered > 64 * 128 * 0.9, `answered ${answered} of ${64 * 128}`);
    assert.ok(largest < 300, `an error answer is short whatever the request echoes: ${largest} bytes`);
    assert.equal((await server.read('meter-under-flood', '/3/0/9')).payload[0], 100);
    assert.ok(after.endpoint.dedupBytes <= 32 * MB, `dedup memory ${after.endpoint.dedupBytes}`);
    const growth = after.rss - before.rss;
    assert.ok(growth < 64 * MB, `RSS grew ${mb(growth)}`);
    console.log(`      8,192 GETs of 60 KB from 64 ports: RSS ${mb(before.rss)} -> ${mb(after.rss)} (peak ${mb(after.peakRss)}), dedup ${(after.endpoint.dedupBytes / 1024).toFixed(0)} KB`);
  });

  it('never lets forged sources crowd out a device: a fresh Register succeeds during 200,000 forged GETs from 20,000 addresses', async () => {
    const server = await startServerProcess({ maxPeers: 5000 });
    cleanup.push(() => server.stop());
    const before = await server.usage();
    // 34-byte GETs of a path that does not exist, as the forged flood sent them.
    const get = (mid) => encode({ type: 1, code: 1, messageId: mid, token: Buffer.from([1, 2, 3, 4]), options: [{ number: 11, value: Buffer.from('not-here-at-all-xxxxxx') }, { number: 11, value: Buffer.from('y') }], payload: Buffer.alloc(0) });
    assert.equal(get(1).length, 34);
    let sent = 0;
    let flooding = true;
    const flood = (async () => {
      // 20 loopback addresses x 1,000 ports, 10 datagrams each, at about 25,000 a second.
      for (let address = 2; address < 22 && flooding; address++) {
        const sockets = await Promise.all(Array.from({ length: 1000 }, () => silentSocket(`127.0.0.${address}`)));
        for (let round = 0; round < 10; round++) {
          const started = Date.now();
          await Promise.all(sockets.map((socket, i) => socket.transmit(get(round * 1000 + i), server.port)));
          sent += sockets.length;
          await sleep(Math.max(0, 40 - (Date.now() - started)));
        }
        await Promise.all(sockets.map(close));
      }
    })();
    cleanup.push(async () => {
      flooding = false;
      await flood;
    });
    while (sent < 60_000) await sleep(50);
    const device = new SimulatedDevice({ endpoint: 'fresh-during-flood', server: { address: '127.0.0.1', port: server.port } });
    await device.start();
    cleanup.push(() => device.stop());
    const registeredAt = sent;
    await device.register();
    assert.ok(sent < 200_000, 'registered while the flood went on');
    assert.equal((await server.read('fresh-during-flood', '/3/0/9')).payload[0], 100);
    await flood;
    const after = await server.usage();
    assert.equal(after.registrations, 1);
    assert.ok(after.endpoint.newcomers <= 5000, `newcomers ${after.endpoint.newcomers}`);
    const growth = after.peakRss - before.rss;
    assert.ok(growth < 100 * MB, `RSS grew ${mb(growth)}`);
    console.log(`      registered after ${registeredAt.toLocaleString('en')} of ${sent.toLocaleString('en')} forged GETs; RSS ${mb(before.rss)} -> peak ${mb(after.peakRss)}`);
  });

  it('expires unfinished Block1 uploads and bounds what they hold: 4.13 beyond the budget, 4.08 after EXCHANGE_LIFETIME', async () => {
    const port = await freePort();
    const server = new Lwm2mServer({ address: '127.0.0.1', port, block1Bytes: 256 * 1024, transmission: { exchangeLifetimeMs: 1000 } });
    await server.start();
    cleanup.push(() => server.stop());
    const block = (peer, num, more, messageId) =>
      peer.exchange(encode({
        type: 0, code: 2, messageId, token: Buffer.from([num & 0xff]),
        options: [{ number: 11, value: Buffer.from('rd') }, { number: 15, value: Buffer.from(`ep=upload-${peer.socket.address().port}`) }, { number: 27, value: block1(num, more) }],
        payload: Buffer.alloc(1024, 0x20),
      }), port);
    // Eight uploads of 63 KiB each, never finished: four fit in 256 KiB.
    const peers = await Promise.all(Array.from({ length: 8 }, () => RawPeer.open()));
    cleanup.push(() => Promise.all(peers.map((p) => p.close())));
    const codes = [];
    for (const peer of peers) {
      let code;
      for (let num = 0; num < 63; num++) {
        code = formatCode(decode(await block(peer, num, true, num + 1)).code);
        if (code !== '2.31') break;
      }
      codes.push(code);
    }
    assert.deepEqual(codes, ['2.31', '2.31', '2.31', '2.31', '4.13', '4.13', '4.13', '4.13']);
    assert.ok(server.coap.plain.usage.block1Bytes <= 256 * 1024);
    // Left alone longer than EXCHANGE_LIFETIME (swept once per lifetime), they are gone...
    await sleep(2200);
    assert.equal(server.coap.plain.usage.block1Bytes, 0);
    assert.equal(formatCode(decode(await block(peers[0], 63, false, 100)).code), '4.08');
    // ...and a device's large registration goes through.
    const links = ['</>;rt="oma.lwm2m"'];
    for (let i = 0; i < 400; i++) links.push(`</${20000 + i}/0>`);
    const registered = new Promise((resolve) => server.once('registered', resolve));
    const big = await RawPeer.open();
    cleanup.push(() => big.close());
    const payload = Buffer.from(links.join(','));
    for (let num = 0; num * 1024 < payload.length; num++) {
      const more = (num + 1) * 1024 < payload.length;
      const answer = decode(await big.exchange(encode({
        type: 0, code: 2, messageId: 500 + num, token: Buffer.from([7]),
        options: [{ number: 11, value: Buffer.from('rd') }, { number: 15, value: Buffer.from('ep=big') }, { number: 27, value: block1(num, more) }],
        payload: payload.subarray(num * 1024, (num + 1) * 1024),
      }), port));
      assert.equal(formatCode(answer.code), more ? '2.31' : '2.01');
    }
    assert.equal((await registered).objects.length, 400);
  });

  it('reflects nothing to forged addresses when an observe node starts on every registration: no request, no more bytes than received', async () => {
    const [port, bsPort] = [await freePort(), await freePort()];
    // Node-RED as a user would set it up: an observe node that starts on every registration, a bootstrap server with a default (NoSec) account.
    await load([
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, dtlsPort: '' },
      { id: 'obs', z: 'tab', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', start: 'register', wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'bs', type: 'lwm2m-bootstrap-server', bindAddress: '127.0.0.1', port: bsPort, dtlsPort: '', allowDefault: true, defaultAccount: { uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec', shortServerId: 1, lifetime: 300, binding: 'U' } },
    ]);
    cleanup.push(() => helper.unload());
    await statusMatching(helper.getNode('obs'), (status) => status.fill === 'green', 5000);

    const forged = await Promise.all(Array.from({ length: 400 }, (_, i) => silentSocket(`127.0.0.${2 + (i % 4)}`)));
    cleanup.push(() => Promise.all(forged.map(close)));
    const device = new SimulatedDevice({ endpoint: 'real-one', server: { address: '127.0.0.1', port } });
    await device.start();
    cleanup.push(() => device.stop());
    await Promise.all(forged.map((socket, i) => (i % 2 === 0 ? socket.transmit(registerDatagram(`forged-${i}`, i), port) : socket.transmit(encode({ type: 0, code: 2, messageId: i, token: Buffer.from([5, 6]), options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from(`ep=forged-${i}`) }], payload: Buffer.alloc(0) }), bsPort))));
    await device.register();
    const first = await nextMessage(helper.getNode('out'), 10_000);
    assert.deepEqual([first.endpoint, first.first], ['real-one', true], 'the real device is observed');
    // Long enough for the observations' 10 s timeout, the pings' retransmissions (2 s, doubling) and the bootstrap sessions to give up.
    await sleep(12_000);
    assert.equal(device.observations.length, 1);
    const sent = forged.reduce((sum, socket) => sum + socket.sent.bytes, 0);
    const received = forged.reduce((sum, socket) => sum + socket.received.bytes, 0);
    const datagrams = forged.reduce((sum, socket) => sum + socket.received.datagrams, 0);
    assert.equal(forged.reduce((sum, socket) => sum + socket.received.requests, 0), 0, 'no request reached a forged address');
    for (const socket of forged) assert.ok(socket.received.bytes <= socket.sent.bytes, `${socket.received.bytes} bytes back for ${socket.sent.bytes}`);
    // The answer, and 4-byte pings on the CoAP schedule while a request waits for them (at ACK_TIMEOUT 2 s and a 10 s timeout: three).
    assert.ok(datagrams <= forged.length * 4, `${datagrams} datagrams to ${forged.length} forged addresses`);
    console.log(`      400 forged Registers and Bootstrap-Requests (${sent} bytes): ${datagrams} datagrams, ${received} bytes back (${(received / sent).toFixed(2)}x)`);
  });
});
