'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fc = require('fast-check');
const { dtls: dtlsClient } = require('node-dtls-client');
const { DtlsServer } = require('../dist/lib/dtls/dtls-server');
const { DtlsClient } = require('../dist/lib/dtls/dtls-client');
const { ecPrivateKey, parseCertificates, parsePublicKey } = require('../dist/lib/dtls/credentials');
const { RawPeer, once } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { makePki, runPeer, UnreliableRelay } = require('./support/dtls');
const { holdsWithin } = require('./support/wait');

const PSK = { dev1: Buffer.from('secret-key-of-dev1'), dev2: Buffer.from('0123456789abcdef') };
const pskKey = (identity) => PSK[identity];

/** A DTLS server that answers every datagram with "echo:" and the datagram. */
async function echoServer(options = {}) {
  const server = new DtlsServer({ address: '127.0.0.1', port: 0, credentials: { pskKey }, ...options });
  server.failures = [];
  server.dropped = [];
  server.received = [];
  server.on('handshakeFailed', (peer, reason) => server.failures.push(reason));
  server.on('dropped', (peer, reason) => server.dropped.push(reason));
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

/** Our PSK client (the simulator's), connected; collects what it receives. */
async function connect(port, options = {}) {
  const client = new DtlsClient({ address: '127.0.0.1', port, identity: 'dev1', key: PSK.dev1, handshakeTimeoutMs: 4000, ...options });
  client.inbox = [];
  await client.listen((data) => client.inbox.push(data.toString()), () => undefined);
  return client;
}

async function roundTrip(client, text) {
  const before = client.inbox.length;
  client.send(Buffer.from(text));
  return (await holdsWithin(() => client.inbox.length > before, 1500)) ? client.inbox[client.inbox.length - 1] : undefined;
}

/** ClientHello bytes in a record, built by hand so tests can send what no client library would. */
function clientHelloRecord({ cookie = Buffer.alloc(0), random = crypto.randomBytes(32), suites = [0xc0a8], messageSeq = 0, recordSeq = 0 } = {}) {
  const suiteBytes = Buffer.alloc(suites.length * 2);
  suites.forEach((suite, i) => suiteBytes.writeUInt16BE(suite, i * 2));
  const body = Buffer.concat([
    Buffer.from([0xfe, 0xfd]),
    random,
    Buffer.from([0]),
    Buffer.from([cookie.length]),
    cookie,
    Buffer.from([suiteBytes.length >> 8, suiteBytes.length & 0xff]),
    suiteBytes,
    Buffer.from([1, 0]),
  ]);
  const handshake = Buffer.alloc(12);
  handshake[0] = 1;
  handshake.writeUIntBE(body.length, 1, 3);
  handshake.writeUInt16BE(messageSeq, 4);
  handshake.writeUIntBE(body.length, 9, 3);
  const fragment = Buffer.concat([handshake, body]);
  const header = Buffer.alloc(13);
  header[0] = 22;
  header.writeUInt16BE(0xfefd, 1);
  header.writeUIntBE(recordSeq, 5, 6);
  header.writeUInt16BE(fragment.length, 11);
  return Buffer.concat([header, fragment]);
}

/** The cookie of a HelloVerifyRequest datagram. */
function cookieOf(datagram) {
  assert.equal(datagram[0], 22, 'a handshake record');
  assert.equal(datagram[13], 3, 'a HelloVerifyRequest');
  const length = datagram[13 + 12 + 2];
  return datagram.subarray(13 + 12 + 3, 13 + 12 + 3 + length);
}

describe('DTLS 1.2 server', function () {
  this.timeout(30_000);
  let server;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  describe('PSK with independent clients', () => {
    for (const [cipher, name] of [
      ['PSK-AES128-CCM8', 'TLS_PSK_WITH_AES_128_CCM_8'],
      ['PSK-AES128-CBC-SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'],
    ]) {
      it(`openssl s_client -dtls1_2 completes ${name} and exchanges data both ways`, async function () {
        requireTool(this, 'openssl', 'openssl');
        server = await echoServer();
        const established = once(server, 'established');
        const result = await runPeer('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', cipher], { input: 'hello from openssl\n' });
        const [session] = await established;
        assert.equal(session.cipherSuite, name);
        assert.deepEqual(session.identity, { kind: 'psk', identity: 'dev1' });
        assert.match(result.output, /echo:hello from openssl/);
        assert.match(result.output, /Extended master secret: yes|Cipher is PSK/);
      });

      it(`node-dtls-client completes ${name}`, async () => {
        server = await echoServer();
        const socket = dtlsClient.createSocket({ type: 'udp4', address: '127.0.0.1', port: server.port, psk: { dev2: PSK.dev2.toString() }, ciphers: [name], timeout: 1000 });
        const answer = new Promise((resolve, reject) => {
          socket.on('connected', () => socket.send(Buffer.from('hello from node-dtls-client')));
          socket.on('message', (message) => resolve(message.toString()));
          socket.on('error', reject);
        });
        assert.equal(await answer, 'echo:hello from node-dtls-client');
        socket.close();
        assert.deepEqual(server.received, ['hello from node-dtls-client']);
      });
    }

    it('refuses a wrong key and an unknown identity with decrypt_error, saying which in its own event only', async function () {
      requireTool(this, 'openssl', 'openssl');
      server = await echoServer();
      const wrong = await runPeer('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'dev1', '-psk', 'aabbccdd', '-cipher', 'PSK-AES128-CCM8'], { input: 'x\n' });
      assert.match(wrong.output, /alert decrypt error/);
      const unknown = await runPeer('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'nobody', '-psk', 'aabbccdd', '-cipher', 'PSK-AES128-CCM8'], { input: 'x\n' });
      // RFC 4279: the client cannot tell an unknown identity from a wrong key.
      assert.match(unknown.output, /alert decrypt error/);
      assert.deepEqual(server.failures, ['wrong key for PSK identity "dev1"', 'unknown PSK identity "nobody"']);
      assert.ok(!server.failures.join().includes('aabbccdd') && !server.failures.join().includes(PSK.dev1.toString('hex')));
      assert.equal(server.connectionCount, 0);
    });

    it('answers a ClientHello it cannot serve with handshake_failure', async () => {
      server = await echoServer();
      const raw = await RawPeer.open();
      const random = crypto.randomBytes(32);
      const verify = await raw.exchange(clientHelloRecord({ suites: [0x002f], random }), server.port);
      const cookie = cookieOf(verify);
      const alert = await raw.exchange(clientHelloRecord({ suites: [0x002f], random, cookie, messageSeq: 1, recordSeq: 1 }), server.port);
      assert.deepEqual([...alert.subarray(0, 1), ...alert.subarray(13)], [21, 2, 40]);
      assert.match(server.failures[0], /no cipher suite in common/);
      await raw.close();
    });
  });

  describe('certificates and raw public keys', () => {
    let pki;
    before(function () {
      requireTool(this, 'openssl', 'openssl');
      pki = makePki(['dev-x509']);
    });
    after(() => pki?.cleanup());

    async function pkiServer() {
      const trusted = parsePublicKey(pki.read('rpk.pub'));
      return echoServer({
        credentials: {
          privateKey: ecPrivateKey(pki.read('server.key')),
          certificateChain: parseCertificates(pki.read('server.pem')).map((c) => c.raw),
          certificateAuthorities: parseCertificates(pki.read('ca.pem')),
          trustsRawPublicKey: (spki) => spki.equals(trusted),
        },
      });
    }

    it('completes ECDHE_ECDSA with X.509 both ways against openssl s_client (which checks our chain)', async () => {
      server = await pkiServer();
      const established = once(server, 'established');
      const result = await runPeer(
        'openssl',
        ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-cert', pki.file('dev-x509.pem'), '-key', pki.file('dev-x509.key'), '-CAfile', pki.file('ca.pem'), '-verify_return_error', '-cipher', 'ECDHE-ECDSA-AES128-CCM8'],
        { input: 'certified\n' },
      );
      const [session] = await established;
      assert.equal(session.cipherSuite, 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8');
      assert.deepEqual(session.identity, { kind: 'x509', commonName: 'dev-x509', subject: 'CN=dev-x509' });
      assert.match(result.output, /Verify return code: 0 \(ok\)/);
      assert.match(result.output, /echo:certified/);
    });

    it('refuses a missing client certificate and one from an unknown CA', async () => {
      server = await pkiServer();
      const none = await runPeer('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-cipher', 'ECDHE-ECDSA-AES128-CCM8'], { input: 'x\n' });
      assert.match(none.output, /alert handshake failure/);
      const rogue = await runPeer('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-cert', pki.file('rogue.pem'), '-key', pki.file('rogue.key'), '-cipher', 'ECDHE-ECDSA-AES128-CCM8'], { input: 'x\n' });
      assert.match(rogue.output, /alert unknown ca/);
      assert.deepEqual(server.failures, ['client sent no certificate', 'certificate not issued by a trusted authority']);
    });

    it('completes X.509 and raw public key handshakes with libcoap (coap-client-gnutls, coap-client-openssl)', async function () {
      requireTool(this, 'coap-client-gnutls', 'libcoap3-bin');
      server = await pkiServer();
      const sessions = [];
      server.on('established', (session) => sessions.push(session));
      const uri = `coaps://127.0.0.1:${server.port}/x`;
      await runPeer('coap-client-gnutls', ['-B', '2', '-M', pki.file('rpk.key'), uri]);
      await runPeer('coap-client-gnutls', ['-B', '2', '-c', pki.file('dev-x509.pem'), '-j', pki.file('dev-x509.key'), '-C', pki.file('ca.pem'), uri]);
      await runPeer('coap-client-openssl', ['-B', '2', '-c', pki.file('dev-x509.pem'), '-j', pki.file('dev-x509.key'), '-C', pki.file('ca.pem'), uri]);
      assert.deepEqual(sessions.map((s) => s.identity.kind), ['rpk', 'x509', 'x509']);
      assert.equal(sessions[0].identity.publicKey, parsePublicKey(pki.read('rpk.pub')).toString('base64'));
      // Each sent its CoAP GET through the session.
      assert.equal(server.received.length >= 3, true);
      const untrusted = await runPeer('coap-client-gnutls', ['-B', '2', '-M', pki.file('other-rpk.key'), uri]);
      assert.match(untrusted.output, /Access was denied|alert/i);
      assert.ok(server.failures.includes('raw public key not trusted'));
    });
  });

  describe('connection ids, limits and eviction', () => {
    it('keeps a session across an address change with a connection id, and only with one', async () => {
      server = await echoServer();
      const moves = [];
      server.on('moved', (from, to) => moves.push([from.port, to.port]));
      const mobile = await connect(server.port, { connectionId: true });
      assert.equal(await roundTrip(mobile, 'before'), 'echo:before');
      const before = mobile.address.port;
      const after = (await mobile.rebind(() => undefined)).port;
      assert.equal(await roundTrip(mobile, 'after'), 'echo:after');
      assert.deepEqual(moves, [[before, after]]);
      assert.equal(server.connectionCount, 1);

      const fixed = await connect(server.port, { connectionId: false });
      assert.equal(await roundTrip(fixed, 'before'), 'echo:before');
      await fixed.rebind(() => undefined);
      assert.equal(await roundTrip(fixed, 'after'), undefined, 'without a connection id the new address has no session');
      await mobile.close();
      await fixed.close();
    });

    it('forgets idle connections, and when full gives the longest-idle place to a newcomer', async () => {
      server = await echoServer({ maxConnections: 2, evictIdleAfterMs: 300, idleTimeoutMs: 1500 });
      const first = await connect(server.port);
      const second = await connect(server.port);
      await assert.rejects(connect(server.port, { handshakeTimeoutMs: 1000 }), /timed out/);
      assert.match(server.failures.at(-1), /connection table full/);
      await new Promise((resolve) => setTimeout(resolve, 350));
      assert.equal(await roundTrip(second, 'still here'), 'echo:still here');
      const third = await connect(server.port);
      assert.equal(await roundTrip(third, 'in'), 'echo:in');
      assert.equal(await roundTrip(first, 'evicted?'), undefined, 'the idlest connection made room');
      assert.equal(await roundTrip(second, 'kept'), 'echo:kept');
      assert.ok(await holdsWithin(() => server.connectionCount === 0, 3000), 'idle connections are forgotten');
      for (const client of [first, second, third]) await client.close();
    });

    it('replaces the connection of a client that handshakes again from the same address (a device that rebooted)', async () => {
      server = await echoServer();
      const closed = [];
      server.on('closed', (peer, identity, reason) => closed.push(reason));
      const before = await connect(server.port);
      const port = before.address.port;
      // The device reboots: its socket is gone without a close_notify.
      await new Promise((resolve) => before['socket'].close(resolve));
      const after = await connect(server.port, { localPort: port, identity: 'dev2', key: PSK.dev2 });
      assert.equal(await roundTrip(after, 'rebooted'), 'echo:rebooted');
      assert.equal(server.connectionCount, 1);
      assert.equal(server.identityOf({ address: '127.0.0.1', port }).identity, 'dev2');
      assert.deepEqual(closed, ['replaced by a new handshake from the same address']);
      await after.close();
    });
  });

  describe('attacks and bad input', () => {
    it('answers a flood of ClientHellos without cookies statelessly, while an established client goes on', async () => {
      server = await echoServer();
      const client = await connect(server.port);
      const flooders = await Promise.all([1, 2, 3, 4].map(() => RawPeer.open()));
      if (global.gc) global.gc();
      const heapBefore = process.memoryUsage().heapUsed;
      for (let round = 0; round < 500; round++) {
        for (const flooder of flooders) await flooder.send(clientHelloRecord({ recordSeq: round }), server.port);
        if (round % 100 === 0) assert.equal(await roundTrip(client, `during ${round}`), `echo:during ${round}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      if (global.gc) global.gc();
      const growth = process.memoryUsage().heapUsed - heapBefore;
      assert.equal(server.handshakeCount, 0, 'no state for ClientHellos without a cookie');
      assert.equal(server.connectionCount, 1);
      assert.ok(growth < 4 * 1024 * 1024, `heap grew ${growth} bytes`);
      assert.ok(flooders[0].inbox.length > 0 && flooders[0].inbox.every((datagram) => datagram[13] === 3), 'only HelloVerifyRequests went back');
      for (const flooder of flooders) await flooder.close();
      await client.close();
    });

    it('bounds handshakes in progress: the least advanced make room, so a prompt client gets through', async () => {
      server = await echoServer({ maxHandshakes: 3 });
      const peers = await Promise.all([1, 2, 3, 4, 5].map(() => RawPeer.open()));
      for (const peer of peers) {
        const random = crypto.randomBytes(32);
        const cookie = cookieOf(await peer.exchange(clientHelloRecord({ random }), server.port));
        await peer.send(clientHelloRecord({ random, cookie, messageSeq: 1, recordSeq: 1 }), server.port);
      }
      await holdsWithin(() => server.failures.length >= 2);
      assert.equal(server.handshakeCount, 3);
      assert.deepEqual(server.failures, ['evicted: over 3 handshakes in progress', 'evicted: over 3 handshakes in progress']);
      const client = await connect(server.port, { handshakeTimeoutMs: 2000 });
      assert.equal(await roundTrip(client, 'through'), 'echo:through', 'a parked handshake made room for it');
      assert.equal(server.handshakeCount, 2);
      await client.close();
      for (const peer of peers) await peer.close();
    });

    it('completes handshakes through a network that duplicates and reorders every datagram, delivering each record once', async () => {
      server = await echoServer();
      for (const [cipherSuite, connectionId] of [
        ['TLS_PSK_WITH_AES_128_CCM_8', true],
        ['TLS_PSK_WITH_AES_128_CBC_SHA256', false],
      ]) {
        const relay = await UnreliableRelay.open(server.port);
        server.received = [];
        const client = await connect(relay.port, { cipherSuite, connectionId });
        for (let i = 0; i < 10; i++) client.send(Buffer.from(`m${i}`));
        await holdsWithin(() => server.received.length >= 10);
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.deepEqual([...server.received].sort(), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9'], 'each once, duplicates dropped by the replay window');
        await client.close();
        await relay.close();
      }
    });

    it('recovers lost flights: the server repeats its flight when the client repeats its own, and on its timer', async () => {
      server = await echoServer();
      // Server datagrams: 0 HelloVerifyRequest, 1 ServerHello flight, 2 the final ChangeCipherSpec and Finished.
      for (const dropFromServer of [[1], [2], [1, 2]]) {
        const relay = await UnreliableRelay.open(server.port, { duplicate: false, reorder: false, dropFromServer });
        const client = await connect(relay.port);
        assert.equal(await roundTrip(client, 'through'), 'echo:through');
        assert.equal(relay.dropped, dropFromServer.length);
        await client.close();
        await relay.close();
      }
      assert.deepEqual(server.failures, []);
    });

    it('drops replayed, tampered, truncated and oversized records without harm to the session', async () => {
      server = await echoServer();
      const client = await connect(server.port);
      const raw = await RawPeer.open();
      // Capture what the client sends by sending from the client's own socket is not possible; instead replay through its socket.
      const socket = client['socket'];
      const sent = [];
      const originalSend = socket.send.bind(socket);
      socket.send = (datagram, ...rest) => {
        sent.push(Buffer.from(datagram));
        return originalSend(datagram, ...rest);
      };
      assert.equal(await roundTrip(client, 'original'), 'echo:original');
      const record = sent.at(-1);
      server.received = [];
      for (let i = 0; i < 3; i++) originalSend(record, server.port, '127.0.0.1');
      const tampered = Buffer.from(record);
      tampered[tampered.length - 1] ^= 1;
      originalSend(tampered, server.port, '127.0.0.1');
      originalSend(record.subarray(0, 20), server.port, '127.0.0.1');
      const oversized = Buffer.from(record);
      oversized.writeUInt16BE(40_000, 11);
      originalSend(oversized, server.port, '127.0.0.1');
      originalSend(Buffer.concat([record.subarray(0, 13), Buffer.alloc(3)]), server.port, '127.0.0.1');
      await raw.send(crypto.randomBytes(200), server.port);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(server.received, [], 'replays and forgeries never reach the application');
      assert.ok(server.dropped.some((reason) => /record of 40000 bytes|truncated/.test(reason)));
      assert.equal(await roundTrip(client, 'still fine'), 'echo:still fine');
      await raw.close();
      await client.close();
    });

    it('survives random and mutated datagrams (fuzzing), answering each as the protocol says', async () => {
      server = await echoServer();
      const client = await connect(server.port);
      const raw = await RawPeer.open();
      const hello = clientHelloRecord();
      const runs = Number(process.env.FUZZ_RUNS || 300);
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
            fc.tuple(fc.nat(hello.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
              const mutated = Buffer.from(hello);
              mutated[at] ^= xor;
              return mutated;
            }),
            fc.nat(hello.length).map((length) => hello.subarray(0, length)),
          ),
          async (datagram) => {
            await raw.send(datagram, server.port);
          },
        ),
        { numRuns: runs },
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(await roundTrip(client, 'after fuzzing'), 'echo:after fuzzing');
      assert.ok(server.handshakeCount <= 1);
      await raw.close();
      await client.close();
    });
  });
});
