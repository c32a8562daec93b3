'use strict';
// Real clients whose first record is not DTLS 1.2, and attacks on the DTLS server: forged records on a
// session's address, handshake floods, hostile PSK identities, amplification, sessions sharing an address.
const assert = require('node:assert/strict');
const { fork, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const dgram = require('node:dgram');
const path = require('node:path');
const coapPacket = require('coap-packet');
const { dtls: dtlsClient } = require('node-dtls-client');
const { DtlsServer } = require('../dist/lib/dtls/dtls-server');
const { DtlsClient } = require('../dist/lib/dtls/dtls-client');
const { printable } = require('../dist/lib/dtls/credentials');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { RawPeer } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { UnreliableRelay, runPeer } = require('./support/dtls');
const { holdsWithin } = require('./support/wait');

const PSK = { dev1: Buffer.from('secret-key-of-dev1'), dev2: Buffer.from('0123456789abcdef') };

async function echoServer(options = {}) {
  const server = new DtlsServer({ address: '127.0.0.1', port: 0, credentials: { pskKey: (identity) => PSK[identity] }, ...options });
  server.failures = [];
  server.closedReasons = [];
  server.received = [];
  server.on('handshakeFailed', (peer, reason) => server.failures.push(reason));
  server.on('closed', (peer, identity, reason) => server.closedReasons.push(reason));
  const bound = await server.listen(
    (data, peer) => {
      server.received.push(data.toString());
      server.send(Buffer.concat([Buffer.from('echo:'), data]), peer);
    },
    (error) => {
      throw error;
    },
  );
  server.port = bound.port;
  return server;
}

function record(type, version, epoch, sequence, fragment) {
  const header = Buffer.alloc(13);
  header[0] = type;
  header.writeUInt16BE(version, 1);
  header.writeUInt16BE(epoch, 3);
  header.writeUIntBE(sequence, 5, 6);
  header.writeUInt16BE(fragment.length, 11);
  return Buffer.concat([header, fragment]);
}

function handshakeFragment(type, length, messageSeq, offset, data) {
  const header = Buffer.alloc(12);
  header[0] = type;
  header.writeUIntBE(length, 1, 3);
  header.writeUInt16BE(messageSeq, 4);
  header.writeUIntBE(offset, 6, 3);
  header.writeUIntBE(data.length, 9, 3);
  return Buffer.concat([header, data]);
}

const u16 = (value) => Buffer.from([value >> 8, value & 0xff]);
const extension = (type, data) => Buffer.concat([u16(type), u16(data.length), data]);

/**
 * The first ClientHello of an mbedTLS 2.x client with its default minimum
 * version: a record of version 0xfe00 and 220 bytes (`16 fe00 0000
 * 000000000000 00dc 01...`) whose body asks for DTLS 1.2 (0xfefd), 50
 * cipher suites, and the extensions mbedTLS sends.
 */
function mbedtlsClientHello({ random, cookie = Buffer.alloc(0), messageSeq = 0, recordSeq = 0 }) {
  const suites = [0xc0a8, 0x00ae, 0xc0ae, 0xc02c, 0xc02b, 0xc0ad, 0xc0ac, 0xc024, 0xc023, 0xc00a, 0xc009, 0x009f, 0x009e, 0xc09f, 0xc09e, 0x006b, 0x0067, 0x0039, 0x0033, 0xc0a3, 0xc0a2, 0xc0a7, 0xc0a6, 0x00a9, 0x00a8, 0xc0a9, 0xc0a5, 0xc0a4, 0x00ab, 0x00aa, 0x00b3, 0x00b2, 0x0091, 0x0090, 0xc0ab, 0xc0aa, 0x00ad, 0x00ac, 0x00b7, 0x00b6, 0x0095, 0x0094, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x008d, 0x00ff];
  const suiteBytes = Buffer.concat(suites.map(u16));
  const sigAlgs = [0x0603, 0x0601, 0x0503, 0x0501, 0x0403, 0x0401, 0x0303, 0x0301, 0x0203, 0x0201, 0x0503, 0x0402, 0x0302, 0x0202, 0x0502, 0x0602];
  const groups = [0x0017, 0x0018, 0x0019, 0x001c];
  const extensions = Buffer.concat([
    extension(0x000d, Buffer.concat([u16(sigAlgs.length * 2), ...sigAlgs.map(u16)])),
    extension(0x000a, Buffer.concat([u16(groups.length * 2), ...groups.map(u16)])),
    extension(0x000b, Buffer.from([1, 0])),
    extension(0x0016, Buffer.alloc(0)),
    extension(0x0017, Buffer.alloc(0)),
  ]);
  const body = Buffer.concat([u16(0xfefd), random, Buffer.from([0, cookie.length]), cookie, u16(suiteBytes.length), suiteBytes, Buffer.from([1, 0]), u16(extensions.length), extensions]);
  return record(22, 0xfe00, 0, recordSeq, handshakeFragment(1, body.length, messageSeq, 0, body));
}

describe('DTLS: every real client answered, attacks harmless', function () {
  this.timeout(60_000);
  let server;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  describe('record versions of a first ClientHello', () => {
    it('answers the 0xfe00 ClientHello of an mbedTLS client (capture bytes) with a HelloVerifyRequest, then its ServerHello', async () => {
      server = await echoServer();
      const raw = await RawPeer.open();
      const random = crypto.randomBytes(32);
      const first = mbedtlsClientHello({ random });
      assert.equal(first.length - 13, 0xdc, 'the record length of the capture');
      assert.equal(first.subarray(0, 13).toString('hex'), '16fe000000000000000000' + '00dc');
      const verify = await raw.exchange(first, server.port);
      assert.ok(verify, 'an answer, not silence');
      assert.equal(verify[13], 3, 'a HelloVerifyRequest');
      const cookie = verify.subarray(13 + 12 + 3, 13 + 12 + 3 + verify[13 + 12 + 2]);
      const flight = await raw.exchange(mbedtlsClientHello({ random, cookie, messageSeq: 1, recordSeq: 1 }), server.port);
      assert.equal(flight[13], 2, 'a ServerHello');
      assert.equal(flight.readUInt16BE(13 + 12), 0xfefd, 'negotiated DTLS 1.2 from the hello');
      assert.equal(server.handshakeCount, 1);
      await raw.close();
    });

    it('completes the handshake of an independent client whose ClientHello records carry version 0xfe00 (node-dtls-client)', async () => {
      server = await echoServer();
      const socket = dtlsClient.createSocket({ type: 'udp4', address: '127.0.0.1', port: server.port, psk: { dev2: PSK.dev2.toString() }, timeout: 3000 });
      // The client's UDP socket sends its ClientHello records as an mbedTLS client does, in a 0xfe00 record.
      const udp = socket.udp;
      const send = udp.send.bind(udp);
      let rewritten = 0;
      udp.send = (datagram, ...rest) => {
        if (Buffer.isBuffer(datagram) && datagram[0] === 22 && datagram.readUInt16BE(3) === 0 && datagram[13] === 1) {
          datagram = Buffer.from(datagram);
          datagram.writeUInt16BE(0xfe00, 1);
          rewritten++;
        }
        return send(datagram, ...rest);
      };
      const answer = new Promise((resolve, reject) => {
        socket.on('connected', () => socket.send(Buffer.from('hello from a 0xfe00 client')));
        socket.on('message', (message) => resolve(message.toString()));
        socket.on('error', reject);
      });
      assert.equal(await answer, 'echo:hello from a 0xfe00 client');
      assert.equal(rewritten, 2, 'both ClientHellos went in 0xfe00 records');
      socket.close();
    });

    it('raises handshakeFailed with the reason for every handshake it gives up or refuses', async () => {
      server = await echoServer();
      const raw = await RawPeer.open();
      await raw.send(record(22, 0xfefd, 0, 0, handshakeFragment(1, 10, 0, 0, Buffer.alloc(10))), server.port);
      await holdsWithin(() => server.failures.length > 0, 1000);
      assert.match(server.failures[0], /^malformed ClientHello: /);
      await raw.close();
    });
  });

  describe('forged datagrams on the address of a session (RFC 6347 4.1.2.7, 4.2.8)', () => {
    it('never end the session: truncated and malformed handshake records, bad offsets, huge claimed lengths, forged alerts and ciphertext (node-dtls-client through a relay)', async () => {
      server = await echoServer();
      const relay = await UnreliableRelay.open(server.port, { duplicate: false, reorder: false });
      const socket = dtlsClient.createSocket({ type: 'udp4', address: '127.0.0.1', port: relay.port, psk: { dev1: PSK.dev1.toString() }, timeout: 3000 });
      const inbox = [];
      await new Promise((resolve, reject) => {
        socket.on('connected', resolve);
        socket.on('error', reject);
      });
      socket.on('message', (message) => inbox.push(message.toString()));
      const roundTrip = async (text) => {
        const before = inbox.length;
        socket.send(Buffer.from(text));
        return (await holdsWithin(() => inbox.length > before, 2000)) ? inbox.at(-1) : undefined;
      };
      assert.equal(await roundTrip('before'), 'echo:before');
      // From the relay's socket: the address and port the server knows the client by.
      const forge = (datagram) => new Promise((resolve) => relay.socket.send(datagram, server.port, '127.0.0.1', resolve));
      const sixteenBytes = Buffer.from('16' + 'fefd' + '0000' + '000000000063' + '0003' + '0b0000', 'hex');
      assert.equal(sixteenBytes.length, 16);
      await forge(sixteenBytes);
      await forge(record(22, 0xfefd, 0, 100, handshakeFragment(16, 10, 5, 8, Buffer.alloc(6))));
      await forge(record(22, 0xfefd, 0, 101, handshakeFragment(16, 0xffffff, 3, 0, Buffer.alloc(100))));
      await forge(record(22, 0xfefd, 0, 102, handshakeFragment(20, 12, 9, 0, Buffer.alloc(12))));
      await forge(record(20, 0xfefd, 0, 103, Buffer.from([7, 7])));
      await forge(record(21, 0xfefd, 0, 104, Buffer.from([2, 40])));
      await forge(record(23, 0xfefd, 1, 9999, crypto.randomBytes(40)));
      await forge(record(21, 0xfefd, 1, 10000, crypto.randomBytes(26)));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(server.closedReasons, [], 'the session was not closed');
      assert.equal(await roundTrip('after the forgeries'), 'echo:after the forgeries');

      // A new ClientHello from the same address starts a handshake; the session goes on beside it until that completes.
      const random = crypto.randomBytes(32);
      const hello = (cookie, seq) => {
        const body = Buffer.concat([u16(0xfefd), random, Buffer.from([0, cookie.length]), cookie, u16(2), u16(0xc0a8), Buffer.from([1, 0])]);
        return record(22, 0xfefd, 0, seq, handshakeFragment(1, body.length, seq, 0, body));
      };
      const replies = [];
      const tap = (datagram, rinfo) => rinfo.port === server.port && datagram[0] === 22 && replies.push(datagram);
      relay.socket.prependListener('message', tap);
      await forge(hello(Buffer.alloc(0), 0));
      await holdsWithin(() => replies.some((datagram) => datagram[13] === 3), 1000);
      const verify = replies.find((datagram) => datagram[13] === 3);
      await forge(hello(verify.subarray(28, 28 + verify[27]), 1));
      await holdsWithin(() => server.handshakeCount === 1, 1000);
      relay.socket.off('message', tap);
      assert.equal(server.handshakeCount, 1, 'a handshake in progress from the same address');
      assert.equal(await roundTrip('beside a new handshake'), 'echo:beside a new handshake');
      assert.deepEqual(server.closedReasons, []);
      socket.close();
      await relay.close();
    });
  });

  describe('handshake floods', () => {
    let child;
    afterEach(() => child?.kill());

    /** Cookie exchange, then a ClientKeyExchange fragment that claims 30,000 bytes and never completes: a parked half-open handshake. */
    async function parkHandshake(socket, port) {
      const random = crypto.randomBytes(32);
      const hello = (cookie, seq) => {
        const body = Buffer.concat([u16(0xfefd), random, Buffer.from([0, cookie.length]), cookie, u16(2), u16(0xc0a8), Buffer.from([1, 0])]);
        return record(22, 0xfefd, 0, seq, handshakeFragment(1, body.length, seq, 0, body));
      };
      const next = () => new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 2000);
        socket.once('message', (datagram) => {
          clearTimeout(timer);
          resolve(datagram);
        });
      });
      let answer = next();
      socket.send(hello(Buffer.alloc(0), 0), port, '127.0.0.1');
      const verify = await answer;
      if (!verify || verify[13] !== 3) return false;
      answer = next();
      socket.send(hello(verify.subarray(28, 28 + verify[27]), 1), port, '127.0.0.1');
      if (!(await answer)) return false;
      socket.send(record(22, 0xfefd, 0, 2, handshakeFragment(16, 30_000, 2, 0, crypto.randomBytes(1000))), port, '127.0.0.1');
      return true;
    }

    async function openSockets(address, count) {
      return Promise.all(
        Array.from({ length: count }, () => new Promise((resolve) => {
          const socket = dgram.createSocket('udp4');
          socket.bind(0, address, () => resolve(socket));
        })),
      );
    }

    it('half-open handshakes from 1,000 ports of one address and 1,000 more from ten others: a client from elsewhere completes within seconds, RSS stays within 100 MB', async function () {
      requireTool(this, 'openssl', 'openssl');
      child = fork(path.join(__dirname, 'support', 'dtls-echo-process.js'), [], { env: { ...process.env, DTLS_PSK_KEYS: JSON.stringify({ dev1: PSK.dev1.toString('hex') }) }, execArgv: ['--expose-gc'] });
      const ask = (message) => new Promise((resolve) => {
        child.once('message', resolve);
        if (message) child.send(message);
      });
      const { port } = await ask();
      const before = await ask('stats');
      const sockets = [...(await openSockets('127.0.0.1', 1000))];
      for (let i = 3; i < 13; i++) sockets.push(...(await openSockets(`127.0.0.${i}`, 100)));
      let parked = 0;
      const flood = (async () => {
        for (let i = 0; i < sockets.length; i += 100) {
          const results = await Promise.all(sockets.slice(i, i + 100).map((socket) => parkHandshake(socket, port)));
          parked += results.filter(Boolean).length;
        }
      })();
      // A well-behaved client from another address, in the middle of the flood.
      await holdsWithin(() => parked >= 600, 30_000);
      const started = Date.now();
      const honest = spawn('openssl', ['s_client', '-dtls1_2', '-bind', '127.0.0.2:0', '-connect', `127.0.0.1:${port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', 'PSK-AES128-CCM8', '-quiet']);
      honest.output = '';
      honest.stdout.on('data', (chunk) => (honest.output += chunk));
      honest.stderr.on('data', (chunk) => (honest.output += chunk));
      honest.stdin.write('honest\n');
      await holdsWithin(() => honest.output.includes('echo:honest'), 10_000);
      const took = Date.now() - started;
      honest.kill();
      await flood;
      const during = await ask('stats');
      for (const socket of sockets) socket.close();
      assert.match(honest.output, /echo:honest/, honest.output);
      assert.ok(took < 3000, `the honest client took ${took} ms`);
      assert.ok(parked >= 1500, `${parked} half-open handshakes were parked`);
      assert.ok(during.handshakes <= 1000, `${during.handshakes} handshakes in progress`);
      assert.ok(during.failed >= parked - 1000, 'the evicted handshakes were reported');
      const growth = during.rss - before.rss;
      assert.ok(growth < 100 * 1024 * 1024, `RSS grew ${Math.round(growth / 1048576)} MB`);
      this.test.title += ` (RSS +${Math.round(growth / 1048576)} MB, honest client ${took} ms)`;
    });
  });

  it('keeps unauthenticated text inert: a 1 KB PSK identity with newlines and ANSI escapes is escaped and cut in events', async () => {
    server = await echoServer();
    const identity = `evil\n[INFO] forged log line\u001b[2J\u001b[31m${'A'.repeat(1_100)}`;
    const socket = dtlsClient.createSocket({ type: 'udp4', address: '127.0.0.1', port: server.port, psk: { [identity]: 'whatever' }, timeout: 2000 });
    socket.on('error', () => undefined);
    await holdsWithin(() => server.failures.length > 0, 5000);
    try {
      socket.close();
    } catch {
      // already closed by the failed handshake
    }
    const reason = server.failures[0];
    assert.match(reason, /^unknown PSK identity "evil\\n\[INFO\] forged log line\\u001b\[2J\\u001b\[31mA+"\.\.\. \(11\d\d bytes\)$/);
    assert.ok(reason.length < 200 && !/[\n\u001b]/.test(reason), reason);
    assert.equal(printable('plain-id'), '"plain-id"');
  });

  it('answers at most one HelloVerifyRequest per datagram (100 ClientHellos in one datagram)', async () => {
    server = await echoServer();
    const raw = await RawPeer.open();
    const hellos = Array.from({ length: 100 }, (_, i) => {
      const body = Buffer.concat([u16(0xfefd), crypto.randomBytes(32), Buffer.from([0, 0]), u16(2), u16(0xc0a8), Buffer.from([1, 0])]);
      return record(22, 0xfefd, 0, i, handshakeFragment(1, body.length, 0, 0, body));
    });
    const datagram = Buffer.concat(hellos);
    await raw.send(datagram, server.port);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(raw.inbox.length, 1);
    assert.ok(raw.inbox[0].length <= hellos[0].length, 'no larger than the ClientHello it answers');
    await raw.close();
  });

  it('resumes a cached session without the cookie exchange only within bounds: 3 bytes per byte to an address that never answers, then cookies again', async function () {
    requireTool(this, 'openssl', 'openssl');
    server = await echoServer({ cookielessResumptions: 2 });
    const first = await runPeer('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', 'PSK-AES128-CCM8'], { input: 'x\n' });
    assert.match(first.output, /New, /);
    const [session] = server.takeChanges().sessions;
    // A ClientHello naming that session (as an on-path observer could copy it), with the extended master secret openssl used.
    const resumption = () => {
      const body = Buffer.concat([u16(0xfefd), crypto.randomBytes(32), Buffer.from([session.id.length]), session.id, Buffer.from([0]), u16(2), u16(0xc0a8), Buffer.from([1, 0]), u16(4), extension(0x0017, Buffer.alloc(0))]);
      return record(22, 0xfefd, 0, 0, handshakeFragment(1, body.length, 0, 0, body));
    };
    const forged = await Promise.all([RawPeer.open(), RawPeer.open(), RawPeer.open()]);
    try {
      const hello = resumption();
      await forged[0].send(hello, server.port);
      const answer = await forged[0].next(1000);
      assert.equal(answer?.[13], 2, 'a ServerHello at once, no HelloVerifyRequest');
      // The flight is retransmitted after 1 s and 3 s unless it would exceed three times the ClientHello's bytes.
      await new Promise((resolve) => setTimeout(resolve, 3500));
      const received = [answer, ...forged[0].inbox].reduce((sum, datagram) => sum + datagram.length, 0);
      assert.ok(received <= 3 * hello.length, `${received} bytes back for a ${hello.length}-byte ClientHello`);
      assert.equal(forged[0].inbox.length, 0, 'no retransmission the budget does not cover');
      assert.equal((await forged[1].exchange(resumption(), server.port, '127.0.0.1', 1000))?.[13], 2);
      // Two such handshakes in progress: the next resumption has to prove its address first.
      assert.equal((await forged[2].exchange(resumption(), server.port, '127.0.0.1', 1000))?.[13], 3, 'a HelloVerifyRequest beyond cookielessResumptions');
    } finally {
      await Promise.all(forged.map((peer) => peer.close()));
    }
  });

  it('keeps deduplication per session: a new session on the same address and port never gets another session\'s cached answer (RFC 7252 9.1.1)', async () => {
    const security = new SecurityRegistry();
    security.set('meter-1', { mode: 'psk', identity: 'meter-1-id', key: PSK.dev1 });
    security.set('meter-2', { mode: 'psk', identity: 'meter-2-id', key: PSK.dev2 });
    const lwm2m = new Lwm2mServer({ address: '127.0.0.1', port: 0, secure: { port: 0 }, security });
    await lwm2m.start();
    const dtlsPort = lwm2m.coap.secure.address.port;
    const register = async (client, endpoint) => {
      const inbox = [];
      await client.listen((data) => inbox.push(coapPacket.parse(data)), () => undefined);
      // The same message id from both: an independent encoder builds the Register.
      client.send(coapPacket.generate({ messageId: 4242, token: Buffer.from([1, 2, 3, 4]), code: '0.02', confirmable: true, options: [{ name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Uri-Query', value: Buffer.from(`ep=${endpoint}`) }], payload: Buffer.from('</3/0>') }));
      await holdsWithin(() => inbox.length > 0, 3000);
      return inbox[0];
    };
    try {
      const first = new DtlsClient({ address: '127.0.0.1', port: dtlsPort, identity: 'meter-1-id', key: PSK.dev1 });
      const one = await register(first, 'meter-1');
      const localPort = first.address.port;
      await new Promise((resolve) => first['socket'].close(resolve)); // gone without close_notify
      const second = new DtlsClient({ address: '127.0.0.1', port: dtlsPort, identity: 'meter-2-id', key: PSK.dev2, localPort });
      const two = await register(second, 'meter-2');
      await second.close();
      const location = (answer) => answer.options.filter((option) => option.name === 'Location-Path').map((option) => option.value.toString()).join('/');
      assert.equal(one.code, '2.01');
      assert.equal(two.code, '2.01');
      assert.notEqual(location(two), location(one), 'meter-2 got its own registration, not meter-1\'s cached answer');
      assert.equal(location(two), `rd/${lwm2m.registrations.getByEndpoint('meter-2').id}`);
    } finally {
      await lwm2m.stop();
    }
  });
});
