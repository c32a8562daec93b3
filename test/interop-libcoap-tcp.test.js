'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { registrationToJson } = require('../dist/lib/lwm2m/registration');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { ecPrivateKey, parseCertificates } = require('../dist/lib/dtls/credentials');
const { StreamEndpoint } = require('../dist/lib/coap/stream-endpoint');
const { StreamClientTransport } = require('../dist/lib/coap/stream-transport');
const { requestBlockwise } = require('../dist/lib/coap/block-transfer');
const { requireTool } = require('./support/tools');
const { makePki, runPeer } = require('./support/dtls');
const { freePort, once } = require('./support/udp');

const KEY = 'tcp-psk-key';
const P = (text) => Lwm2mPath.parse(text);

async function until(predicate, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('interop: libcoap coap-client as an LwM2M device over TCP and TLS (RFC 8323)', function () {
  this.timeout(30000);
  let server;
  let pki;
  let security;
  let reads;

  before(function () {
    requireTool(this, 'coap-client-notls', 'libcoap3-bin');
    requireTool(this, 'coap-client-openssl', 'libcoap3-bin');
    requireTool(this, 'coap-client-gnutls', 'libcoap3-bin');
    requireTool(this, 'openssl', 'openssl');
    pki = makePki(['dev-x509', 'other-x509']);
  });
  after(() => pki?.cleanup());

  beforeEach(async () => {
    security = new SecurityRegistry();
    security.set('psk-dev', { mode: 'psk', identity: 'psk-dev-id', key: Buffer.from(KEY) });
    server = new Lwm2mServer({
      address: '127.0.0.1',
      tcp: { port: 0 },
      tls: {
        port: 0,
        privateKey: ecPrivateKey(pki.read('server.key')),
        certificateChain: parseCertificates(pki.read('server.pem')).map((c) => c.raw),
        certificateAuthorities: parseCertificates(pki.read('ca.pem')),
      },
      security,
    });
    server.refusals = [];
    server.failures = [];
    server.on('refused', (_endpoint, _peer, reason) => server.refusals.push(reason));
    server.on('handshakeFailed', (_peer, reason) => server.failures.push(reason));
    // A read sent as soon as a device registers, over its connection, before our 2.01 (the client ends after that).
    reads = [];
    server.on('registered', (registration) => reads.push(server.send(registration.endpoint, new ReadRequest(P('/3/0/0')), { timeoutMs: 3000 }).catch((error) => error)));
    await server.start();
  });

  afterEach(() => server.stop());

  const tcp = () => `coap+tcp://127.0.0.1:${server.coap.tcp.address.port}`;
  const tls = () => `coaps+tcp://127.0.0.1:${server.coap.tls.address.port}`;
  const register = (tool, base, endpoint, extra = [], links = '</1/0>,</3/0>') =>
    runPeer(tool, ['-v', '7', '-B', '3', '-m', 'post', '-t', '40', '-e', links, ...extra, `${base}/rd?ep=${endpoint}&b=T&lwm2m=1.1&lt=300`], { timeoutMs: 10_000 });

  /** The read the server sent when the device registered reached it: libcoap has no /3/0/0 and answers 4.04. */
  async function readReachedIt(output) {
    const [answer] = await Promise.all(reads.splice(0));
    assert.equal(answer.kind, 'device-error', String(answer));
    assert.equal(answer.code, '4.04');
    assert.match(output, /c:GET .*Uri-Path:3, Uri-Path:0, Uri-Path:0/);
  }

  it('registers over coap+tcp with binding T (CSMs both ways), is read over its connection, updates and de-registers', async () => {
    const registered = once(server, 'registered', 10000);
    const { output } = await register('coap-client-notls', tcp(), 'tcp-dev');
    const [registration] = await registered;
    assert.deepEqual([registration.transport, registration.binding, registration.objects.map((o) => o.id)], ['tcp', 'T', [1, 3]]);
    assert.match(output, /c:CSM .*Max-Message-Size:8192, Block-Wise-Transfer/, 'our CSM as libcoap read it');
    await readReachedIt(output);
    assert.match(output, new RegExp(`c:2\\.01 .*Location-Path:rd, Location-Path:${registration.id}`));
    // Update and de-register come over new connections (new ports): the registration follows.
    const updated = once(server, 'updated', 10000);
    await runPeer('coap-client-notls', ['-m', 'post', `${tcp()}/rd/${registration.id}?lt=90`]);
    const [, changes] = await updated;
    assert.deepEqual(changes, ['lifetime', 'address']);
    const deregistered = once(server, 'deregistered', 10000);
    await runPeer('coap-client-notls', ['-m', 'delete', `${tcp()}/rd/${registration.id}`]);
    await deregistered;
  });

  it('takes a large registration in BERT Block1 blocks (RFC 8323 section 6)', async () => {
    const links = [];
    for (let i = 0; i < 1500; i++) links.push(`</${20000 + i}/0>`);
    const registered = once(server, 'registered', 10000);
    const { output } = await register('coap-client-notls', tcp(), 'bert-dev', [], links.join(','));
    const [registration] = await registered;
    assert.equal(registration.objects.length, 1500);
    // libcoap chose BERT for our Block-Wise-Transfer and Max-Message-Size 8192: blocks of seven 1024-byte units.
    assert.match(output, /Block1:0\/M\/BERT\(7168\)/);
    assert.match(output, /Block1:7\/M\/BERT\(7168\)/);
    assert.match(output, /c:2\.01 .*Block1:14\/_\/BERT/);
  });

  for (const tool of ['coap-client-openssl', 'coap-client-gnutls']) {
    it(`registers over coaps+tcp with a PSK (${tool}), is read, and is refused with another identity or a wrong key`, async () => {
      const registered = once(server, 'registered', 10000);
      const { output } = await register(tool, tls(), 'psk-dev', ['-u', 'psk-dev-id', '-k', KEY]);
      const [registration] = await registered;
      const json = registrationToJson(registration);
      assert.deepEqual([json.transport, json.security, json.identity], ['tls', 'PSK', 'psk-dev-id']);
      await readReachedIt(output);

      const refused = await register(tool, tls(), 'someone-else', ['-u', 'psk-dev-id', '-k', KEY]);
      assert.match(refused.output, /4\.03/);
      assert.deepEqual(server.refusals, ['PSK identity "psk-dev-id" is not bound to endpoint someone-else']);
      await register(tool, tls(), 'psk-dev', ['-u', 'psk-dev-id', '-k', 'not-the-key']);
      await until(() => server.failures.length > 0);
      assert.deepEqual(server.failures, ['wrong key for PSK identity "psk-dev-id"']);
      assert.equal(server.registrations.size, 1);
    });

    it(`registers over coaps+tcp with an X.509 certificate as its CN (${tool}), and refuses it as anyone else or from an untrusted CA`, async () => {
      const certificate = (name) => ['-c', pki.file(`${name}.pem`), '-j', pki.file(`${name}.key`), '-C', pki.file('ca.pem')];
      const registered = once(server, 'registered', 10000);
      const { output } = await register(tool, tls(), 'dev-x509', certificate('dev-x509'));
      const [registration] = await registered;
      assert.deepEqual([registration.transport, registration.identity.kind, registration.identity.commonName], ['tls', 'x509', 'dev-x509']);
      await readReachedIt(output);
      const refused = await register(tool, tls(), 'other-x509', certificate('dev-x509'));
      assert.match(refused.output, /4\.03/);
      assert.deepEqual(server.refusals, ['certificate CN="dev-x509" is not bound to endpoint other-x509']);
      // A certificate with the right CN from another CA (libcoap checks our certificate with -C; we check its).
      await register(tool, tls(), 'dev-x509', ['-c', pki.file('rogue.pem'), '-j', pki.file('rogue.key'), '-C', pki.file('ca.pem')]);
      await until(() => server.failures.length > 0);
      // OpenSSL's client sends it and we refuse it; GnuTLS's sends none, as it is from none of the authorities we named.
      assert.equal(server.failures.length, 1);
      assert.match(server.failures[0], /^(certificate not issued by a trusted authority|the client authenticated with neither a PSK nor a certificate from a trusted authority)$/);
      assert.equal(server.registrations.size, 1);
    });
  }
});

describe('interop: the block-wise engine and observations over TCP against libcoap coap-server', function () {
  this.timeout(20000);
  let serverProcess;
  let output;
  let client;
  let port;
  const peer = () => ({ address: '127.0.0.1', port });
  const path = [{ number: 11, value: Buffer.from('big') }];

  before(function () {
    requireTool(this, 'coap-server-notls', 'libcoap3-bin');
  });

  beforeEach(async () => {
    port = await freePort();
    output = '';
    // Its TCP listener on the same port; messages of at most 4,096 bytes (-X); -v 7 logs every message.
    serverProcess = spawn('stdbuf', ['-oL', '-eL', 'coap-server-notls', '-A', '127.0.0.1', '-p', String(port), '-d', '4', '-v', '7', '-X', '4096'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serverProcess.stdout.on('data', (chunk) => (output += chunk));
    serverProcess.stderr.on('data', (chunk) => (output += chunk));
    await until(() => output.includes('created TCP'), 5000);
    client = new StreamEndpoint({ transport: new StreamClientTransport(peer()) }, () => ({ code: 132 }));
    await client.listen();
    await until(() => client.blockLimits(peer()).bertBytes > 0, 3000);
  });

  afterEach(async () => {
    await client.close();
    serverProcess.kill();
  });

  it('sends a body in BERT Block1 blocks that fit the peer\'s Max-Message-Size, and reads it back in BERT Block2 blocks', async () => {
    assert.deepEqual(client.blockLimits(peer()), { singleMessageBytes: 4096 - 128, bertBytes: 3072 });
    const body = Buffer.alloc(30000, 'abcdefghij');
    assert.equal((await requestBlockwise(client, peer(), { code: 3, options: path, payload: body }, { timeoutMs: 5000 })).code, 65);
    const blocks = output.split('\n').filter((line) => / c:PUT .*Block1:/.test(line));
    assert.ok(blocks.some((line) => line.includes('Block1:0/M/BERT(3072)')), blocks.join('\n'));
    assert.ok(blocks.some((line) => line.includes('Block1:27/_/BERT(2352)')), blocks.join('\n'));
    const read = await requestBlockwise(client, peer(), { code: 1, options: path }, { timeoutMs: 5000 });
    assert.equal(read.code, 69);
    assert.deepEqual(read.payload, body);
    assert.match(output, /Block2:0\/M\/BERT\(7168\)/, 'libcoap answers in blocks of seven units: our Max-Message-Size is 8,192');
  });

  it('observes a resource: notifications come on the connection (RFC 8323 section 7.2)', async () => {
    const put = (text) => requestBlockwise(client, peer(), { code: 3, options: path, payload: Buffer.from(text) }, { timeoutMs: 5000 });
    await put('one');
    const notifications = [];
    const handler = { notified: (message) => notifications.push(message.payload.toString()), refused: () => undefined };
    const answer = await client.request(peer(), { code: 1, options: [{ number: 6, value: Buffer.alloc(0) }, ...path] }, { timeoutMs: 5000, onNotification: handler });
    assert.equal(answer.payload.toString(), 'one');
    await put('two');
    await put('three');
    await until(() => notifications.length === 2);
    assert.deepEqual(notifications, ['two', 'three']);
  });
});
