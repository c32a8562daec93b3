'use strict';
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const fc = require('fast-check');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { StreamEndpoint } = require('../dist/lib/coap/stream-endpoint');
const { encodeFrame } = require('../dist/lib/coap/tcp-framing');
const { Signal, csmSignal } = require('../dist/lib/coap/signals');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { RawStream } = require('./support/tcp');

const RUNS = Math.min(Number(process.env.FUZZ_RUNS || 100), 2000);
const hex = (text) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const CSM = encodeFrame(csmSignal({ maxMessageSize: 1 << 20, bert: true }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A register request as a frame: POST /rd?ep=... with a link-format body of `bytes` bytes. */
function registerFrame(endpoint, bytes = 13) {
  const payload = Buffer.from('</1/0>,</3/0>'.padEnd(bytes, ' '));
  return encodeFrame({
    code: 2,
    token: Buffer.from([1, 2]),
    options: [
      { number: 11, value: Buffer.from('rd') },
      { number: 12, value: Buffer.from([40]) },
      { number: 15, value: Buffer.from(`ep=${endpoint}`) },
    ],
    payload,
  });
}

describe('CoAP over TCP under attack: every bound holds and other devices go on', function () {
  this.timeout(30000);
  let server;
  let events;
  const raws = [];
  const devices = [];

  async function startServer(tcp = {}, options = {}) {
    server = new Lwm2mServer({ address: '127.0.0.1', tcp: { port: 0, frameTimeoutMs: 300, ...tcp }, client: { defaultTimeoutMs: 2000 }, ...options });
    events = { malformed: [], warnings: [] };
    server.on('malformed', (detail) => events.malformed.push(detail.reason));
    server.on('warning', (error) => events.warnings.push(error.message));
    await server.start();
  }

  const port = () => server.coap.tcp.address.port;

  async function raw(localAddress) {
    const stream = await RawStream.connect(port(), localAddress);
    raws.push(stream);
    return stream;
  }

  /** A well-behaved device from another loopback address, registered and read. */
  async function goodDevice(endpoint = 'good', address = '127.0.0.2') {
    const device = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: port() }, tcp: true, address });
    devices.push(device);
    await device.start();
    await device.register();
    const read = await server.send(endpoint, new ReadRequest(Lwm2mPath.parse('/3/0/9')));
    assert.equal(read.records[0].value, 100);
    return device;
  }

  afterEach(async () => {
    for (const stream of raws.splice(0)) stream.close();
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await server?.stop();
    server = undefined;
  });

  it('aborts a connection whose first message is not a CSM (RFC 8323 section 5.3)', async () => {
    await startServer();
    const stream = await raw();
    await stream.write(registerFrame('early'));
    const abort = await stream.next(Signal.Abort);
    assert.match(abort.payload.toString(), /a CSM must come first, not 0\.02/);
    await stream.until((_m, closed) => closed);
    assert.equal(server.registrations.size, 0);
  });

  it('aborts a connection that sends no CSM, and one that leaves a message half sent (slow loris), while a device is served', async () => {
    await startServer();
    const silent = await raw();
    const slow = await raw();
    await slow.write(CSM);
    const frame = registerFrame('slow', 1000);
    await slow.write(frame.subarray(0, 10));
    await goodDevice();
    const [noCsm, incomplete] = await Promise.all([silent.next(Signal.Abort, 3000), slow.next(Signal.Abort, 3000)]);
    assert.match(noCsm.payload.toString(), /no CSM within 300 ms/);
    assert.match(incomplete.payload.toString(), /a message begun 300 ms ago is still incomplete/);
    await Promise.all([silent.until((_m, closed) => closed), slow.until((_m, closed) => closed)]);
    assert.equal(server.coap.tcp.usage.heldBytes, 0);
    assert.equal(server.registrations.size, 1);
  });

  it('aborts at once a message announced larger than its Max-Message-Size, keeping none of it', async () => {
    await startServer({ maxMessageSize: 4096 });
    const stream = await raw();
    const csm = await stream.next(Signal.Csm);
    assert.equal(csm.options.find((o) => o.number === 2).value.readUIntBE(0, 2), 4096, 'our CSM announces it');
    await stream.write(CSM);
    // Len 15: 65805 + 2^32 - 1 bytes announced, five bytes sent.
    await stream.write(hex('f0 ffffffff 02'));
    const abort = await stream.next(Signal.Abort);
    assert.match(abort.payload.toString(), /larger than the 4096 bytes/);
    assert.equal(server.coap.tcp.usage.heldBytes, 0);
  });

  it('answers Ping with Pong, ignores unknown signals and empty messages, and aborts a CSM with an unknown critical option', async () => {
    await startServer();
    const stream = await raw();
    await stream.write(CSM);
    await stream.write(encodeFrame({ code: Signal.Ping, token: Buffer.from('ab'), options: [{ number: 2, value: Buffer.alloc(0) }], payload: Buffer.alloc(0) }));
    const pong = await stream.next(Signal.Pong);
    assert.equal(pong.token.toString(), 'ab');
    await stream.write(hex('00 00')); // an empty message: a keep-alive
    await stream.write(hex('00 e9')); // 7.09: no such signal
    await stream.write(hex('00 e2'));
    await stream.next(Signal.Pong);
    assert.ok(events.malformed.some((reason) => /unknown signal 7\.09 ignored/.test(reason)));
    // A later CSM with critical option 9.
    await stream.write(hex('10 e1 90'));
    const abort = await stream.next(Signal.Abort);
    assert.deepEqual(abort.options.map((o) => [o.number, o.value[0]]), [[2, 9]], 'Bad-CSM-Option');
  });

  it('answers a request it cannot decode with 4.00, and one with an unknown critical option with 4.02, on a connection that goes on', async () => {
    await startServer();
    const stream = await raw();
    await stream.write(CSM);
    // A POST whose option runs past the end of the message: the framing holds, the message does not.
    await stream.write(hex('31 02 77 b56162'));
    const bad = await stream.next(128);
    assert.deepEqual(bad.token, Buffer.from([0x77]));
    assert.match(bad.payload.toString(), /runs past the end/);
    await stream.write(encodeFrame({ code: 2, token: Buffer.from([5]), options: [{ number: 11, value: Buffer.from('rd') }, { number: 2049, value: Buffer.alloc(0) }], payload: Buffer.alloc(0) }));
    assert.match((await stream.next(130)).payload.toString(), /unrecognized critical option 2049/);
    await stream.write(registerFrame('after'));
    assert.equal((await stream.next(65)).token.toString('hex'), '0102');
  });

  it('closes a connection the peer releases or aborts', async () => {
    await startServer();
    for (const signal of [Signal.Release, Signal.Abort]) {
      const stream = await raw();
      await stream.write(CSM);
      await stream.write(registerFrame(`s${signal}`));
      await stream.next(65);
      await stream.write(encodeFrame({ code: signal, token: Buffer.alloc(0), options: [], payload: Buffer.from('bye') }));
      await stream.until((_m, closed) => closed);
    }
    await sleep(50);
    assert.equal(server.coap.tcp.connectionCount, 0);
    assert.equal(server.registrations.size, 2, 'registrations stay when connections go');
  });

  it('bounds the connections one address keeps opening; other addresses get in', async () => {
    await startServer({ maxOpeningPerAddress: 20, frameTimeoutMs: 5000 });
    const streams = [];
    for (let i = 0; i < 30; i++) streams.push(await raw('127.0.0.3'));
    await sleep(200);
    assert.equal(streams.filter((s) => s.closed).length, 10, 'beyond 20 still opening, connections are refused');
    assert.ok(events.malformed.some((reason) => /20 connections from 127\.0\.0\.3 are still opening/.test(reason)));
    await goodDevice();
    // Once one has sent its CSM it no longer counts as opening: a new one from that address gets in.
    await streams[0].write(CSM);
    await sleep(100);
    const late = await raw('127.0.0.3');
    await sleep(100);
    assert.equal(late.closed, false);
  });

  it('when full, evicts only a connection silent long enough: a new one is refused, then gets in', async () => {
    await startServer({ maxConnections: 10, evictIdleAfterMs: 600, frameTimeoutMs: 5000 });
    const streams = [];
    for (let i = 0; i < 10; i++) {
      const stream = await raw(`127.0.1.${i + 1}`);
      await stream.write(CSM);
      streams.push(stream);
    }
    await sleep(100);
    const refused = await raw('127.0.2.1');
    await refused.until((_m, closed) => closed);
    assert.ok(events.malformed.some((reason) => /10 connections are open: connection refused/.test(reason)));
    // All but the first keep talking; the first stays silent.
    await sleep(400);
    for (const stream of streams.slice(1)) await stream.write(hex('00 00'));
    await sleep(300);
    const admitted = await raw('127.0.2.2');
    await streams[0].next(Signal.Release);
    await streams[0].until((_m, closed) => closed);
    await sleep(100);
    assert.equal(admitted.closed, false);
    assert.equal(streams.slice(1).filter((s) => s.closed).length, 0);
  });

  it('bounds the bytes all connections hold in unfinished messages', async () => {
    await startServer({ maxHeldBytes: 20000, frameTimeoutMs: 5000 });
    const streams = [];
    for (let i = 0; i < 4; i++) {
      const stream = await raw();
      await stream.write(CSM);
      // An 8,000-byte message announced, its first bytes sent.
      await stream.write(registerFrame(`h${i}`, 8000).subarray(0, 100));
      streams.push(stream);
      await sleep(50);
    }
    const aborted = streams.filter((s) => s.messages.some((m) => m.code === Signal.Abort));
    assert.equal(aborted.length, 2, 'the connections that went beyond 20,000 bytes');
    assert.match(aborted[0].messages.find((m) => m.code === Signal.Abort).payload.toString(), /holds its limit of 20000 bytes/);
    assert.ok(server.coap.tcp.usage.heldBytes <= 20000);
    await goodDevice();
  });

  it('survives random frames and bytes after a CSM: never a crash or a handler fault, other devices still served', async () => {
    await startServer({ frameTimeoutMs: 2000 });
    const good = await goodDevice();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 200 }),
          fc.record({ code: fc.integer({ min: 0, max: 255 }), token: fc.uint8Array({ maxLength: 8 }), payload: fc.uint8Array({ maxLength: 100 }) }).map((m) =>
            encodeFrame({ code: m.code, token: Buffer.from(m.token), options: [{ number: 11, value: Buffer.from('rd') }], payload: Buffer.from(m.payload) }),
          ),
        ),
        async (bytes) => {
          const stream = await RawStream.connect(port());
          try {
            await stream.write(Buffer.concat([CSM, Buffer.from(bytes)]));
            await sleep(2);
          } finally {
            stream.close();
          }
        },
      ),
      { numRuns: RUNS },
    );
    await sleep(100);
    assert.deepEqual(events.warnings, []);
    assert.equal((await server.send('good', new ReadRequest(Lwm2mPath.parse('/3/0/9')))).records[0].value, 100);
    await good.update();
  });
});

describe('CoAP over TLS under attack', function () {
  this.timeout(30000);
  let server;

  afterEach(() => server?.stop());

  it('bounds TCP connections that never start their TLS handshake, drops them after the handshake time, and lets a device from elsewhere in', async () => {
    const security = new SecurityRegistry();
    security.set('good', { mode: 'psk', identity: 'good-id', key: Buffer.from('k') });
    server = new Lwm2mServer({ address: '127.0.0.1', tls: { port: 0, maxOpeningPerAddress: 5, frameTimeoutMs: 500 }, security });
    await server.start();
    const port = server.coap.tls.address.port;
    const streams = [];
    for (let i = 0; i < 8; i++) streams.push(await RawStream.connect(port, '127.0.0.4'));
    await sleep(100);
    assert.equal(streams.filter((s) => s.closed).length, 3);
    const device = new SimulatedDevice({ endpoint: 'good', server: { address: '127.0.0.1', port }, tls: { identity: 'good-id', key: Buffer.from('k') }, address: '127.0.0.2' });
    await device.start();
    await device.register();
    await Promise.all(streams.map((s) => s.until((_m, closed) => closed, 3000)));
    await device.stop();
  });
});

describe('CoAP over TCP: a peer that does not read its answers', () => {
  it('is dropped once more than the write backlog waits for it', async () => {
    // A socket whose peer never reads: everything written stays in its backlog.
    const socket = Object.assign(new EventEmitter(), {
      writableLength: 0,
      destroyed: false,
      write(bytes) {
        this.writableLength += bytes.length;
        return false;
      },
      setNoDelay() {},
      end() {},
      destroy() {
        this.destroyed = true;
        this.emit('close');
      },
    });
    const endpoint = new StreamEndpoint({ transport: { scheme: 'coap+tcp', open: async () => ({ address: '127.0.0.1', port: 1 }), address: undefined, close: async () => undefined }, maxWriteBacklogBytes: 4096 }, (request) => ({
      code: 69,
      payload: Buffer.alloc(1000, request.path.length),
    }));
    await endpoint.listen();
    const disconnected = [];
    endpoint.on('disconnected', (_peer, _identity, reason) => disconnected.push(reason));
    endpoint.ready(socket, { address: '127.0.0.9', port: 9 }, undefined);
    socket.emit('data', CSM);
    for (let i = 0; i < 10 && !socket.destroyed; i++) socket.emit('data', encodeFrame({ code: 1, token: Buffer.from([i]), options: [{ number: 11, value: Buffer.from('x') }], payload: Buffer.alloc(0) }));
    assert.equal(socket.destroyed, true);
    assert.ok(socket.writableLength > 4096 && socket.writableLength < 4096 + 2000);
    assert.match(disconnected[0], /bytes wait to be written: the peer does not read/);
    await endpoint.close();
  });
});
