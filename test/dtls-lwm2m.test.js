'use strict';
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
const { parseBootstrapConfig } = require('../dist/lib/bootstrap/bootstrap-config');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { FileStateStore } = require('../dist/lib/lwm2m/state');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { registrationToJson } = require('../dist/lib/lwm2m/registration');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { ecPrivateKey, parseCertificates, parsePublicKey } = require('../dist/lib/dtls/credentials');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { once } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { makePki, runPeer } = require('./support/dtls');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };
const KEY = Buffer.from('lwm2m-psk-of-meter-1');

describe('LwM2M over DTLS', function () {
  this.timeout(30_000);
  let server;
  let security;
  const devices = [];

  async function device(endpoint, dtls, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: server.coap.secure.address.port }, dtls, transmission: FAST, ...options });
    await d.start();
    devices.push(d);
    return d;
  }

  async function startServer(options = {}) {
    security = new SecurityRegistry();
    security.set('meter-1', { mode: 'psk', identity: 'meter-1-id', key: KEY });
    security.set('meter-2', { mode: 'psk', identity: 'meter-2-id', key: Buffer.from('another-key') });
    server = new Lwm2mServer({ address: '127.0.0.1', port: 0, secure: { port: 0 }, security, transmission: FAST, ...options });
    server.refusals = [];
    server.on('refused', (endpoint, peer, reason) => server.refusals.push(reason));
    await server.start();
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await server?.stop();
    server = undefined;
  });

  it('registers a PSK device, reads and observes it over its session', async () => {
    await startServer();
    const meter = await device('meter-1', { identity: 'meter-1-id', key: KEY });
    const registered = once(server, 'registered');
    await meter.register();
    const [registration] = await registered;
    const json = registrationToJson(registration);
    assert.equal(json.transport, 'dtls');
    assert.equal(json.security, 'PSK');
    assert.equal(json.identity, 'meter-1-id');
    assert.equal(JSON.stringify(json).includes(KEY.toString('hex')), false);
    const read = await server.send('meter-1', new ReadRequest(Lwm2mPath.parse('/3/0/0')));
    assert.equal(read.code, '2.05');
    const notifications = [];
    await server.observe('meter-1', new ObserveRequest(Lwm2mPath.parse('/3303/0/5700')), {
      notify: (event) => notifications.push(event.records[0].value),
      error: () => undefined,
      ended: () => undefined,
    });
    await meter.setResource('/3303/0/5700', 31.5);
    await until(() => notifications.includes(31.5));
    await meter.deregister();
    assert.equal(server.registrations.size, 0);
  });

  it('refuses (4.03) an identity registering as another endpoint, a secured endpoint over plain UDP, and updates from another identity', async () => {
    await startServer();
    const impostor = await device('meter-2', { identity: 'meter-1-id', key: KEY });
    await assert.rejects(impostor.register(), (error) => error.responseCode === '4.03');
    const plain = new SimulatedDevice({ endpoint: 'meter-1', server: { address: '127.0.0.1', port: server.coap.plain.address.port }, transmission: FAST });
    await plain.start();
    devices.push(plain);
    await assert.rejects(plain.register(), (error) => error.responseCode === '4.03');
    const meter = await device('meter-1', { identity: 'meter-1-id', key: KEY });
    const location = await meter.register();
    const other = await device('meter-2', { identity: 'meter-2-id', key: Buffer.from('another-key') });
    await other.register();
    // meter-2 tries to update and then de-register meter-1's registration.
    other['location'] = location;
    await assert.rejects(other.update(), (error) => error.responseCode === '4.03');
    await assert.rejects(other.deregister(), (error) => error.responseCode === '4.03');
    assert.ok(server.registrations.getByEndpoint('meter-1'));
    assert.deepEqual(server.refusals, [
      'PSK identity "meter-1-id" is not bound to endpoint meter-2',
      'endpoint meter-1 must use DTLS or TLS (PSK)',
      `registration ${location.split('/').pop()} of meter-1 belongs to another identity or transport`,
      `registration ${location.split('/').pop()} of meter-1 belongs to another identity or transport`,
    ]);
    assert.equal(server.refusals.join().includes(KEY.toString()), false);
  });

  it('refuses a Send from a registered address under another identity, with a refused event', async () => {
    await startServer();
    const meter = await device('meter-1', { identity: 'meter-1-id', key: KEY });
    await meter.register();
    const registration = server.registrations.getByEndpoint('meter-1');
    // Another session now holds the address (a NAT that gave it to another device): its Send is not meter-1's.
    const send = { peer: { address: registration.address, port: registration.port }, method: 2, path: '/dp', queries: [], payload: Buffer.from('[{"n":"/3/0/9","v":1}]'), contentFormat: 110, identity: { kind: 'psk', identity: 'meter-2-id' } };
    assert.throws(() => server['sendInterface'].handle(send, 'dtls'), (error) => error.responseCode === 128 + 3 && /another identity/.test(error.message));
    assert.deepEqual(server.refusals, ['a Send from the address of meter-1 under another identity than it registered with']);
  });

  it('refuses unlisted names over plain UDP when the server requires DTLS or a listed identity, with a refused event', async () => {
    for (const unlistedEndpoints of ['dtls', 'listed']) {
      await startServer({ unlistedEndpoints });
      const plain = new SimulatedDevice({ endpoint: 'stranger', server: { address: '127.0.0.1', port: server.coap.plain.address.port }, transmission: FAST });
      await plain.start();
      devices.push(plain);
      await assert.rejects(plain.register(), (error) => error.responseCode === '4.03');
      assert.deepEqual(server.refusals, [unlistedEndpoints === 'dtls' ? 'endpoint stranger must register over DTLS or TLS (the server refuses plain UDP and TCP)' : 'endpoint stranger is not in the security list and has no certificate from a trusted CA']);
      // Listed devices come in over DTLS as before.
      await (await device('meter-1', { identity: 'meter-1-id', key: KEY })).register();
      assert.equal(server.registrations.size, 1);
      await Promise.all(devices.splice(0).map((d) => d.stop()));
      await server.stop();
    }
    // The default lets unlisted names use NoSec.
    await startServer();
    const plain = new SimulatedDevice({ endpoint: 'stranger', server: { address: '127.0.0.1', port: server.coap.plain.address.port }, transmission: FAST });
    await plain.start();
    devices.push(plain);
    await plain.register();
  });

  it('follows a device to its new address by connection id: requests still reach it', async () => {
    await startServer();
    const meter = await device('meter-1', { identity: 'meter-1-id', key: KEY, connectionId: true });
    await meter.register();
    const before = server.registrations.getByEndpoint('meter-1').port;
    await meter.rebind();
    const updated = once(server, 'updated');
    // The server learns the new address from the device's next record (RFC 9146 section 6), here an Update; the session moves before the Update is read.
    await meter.update();
    const [registration, changes] = await updated;
    assert.notEqual(registration.port, before);
    assert.deepEqual(changes, ['address']);
    const read = await server.send('meter-1', new ReadRequest(Lwm2mPath.parse('/3/0/0')));
    assert.equal(read.code, '2.05');
  });

  it('fails requests at once with no-session when the device closed its session', async () => {
    await startServer();
    const meter = await device('meter-1', { identity: 'meter-1-id', key: KEY });
    await meter.register();
    await meter.stop();
    await until(() => server.coap.dtls.connectionCount === 0);
    const started = Date.now();
    await assert.rejects(server.send('meter-1', new ReadRequest(Lwm2mPath.parse('/3/0/0'))), (error) => error.kind === 'no-session');
    assert.ok(Date.now() - started < 500);
  });

  describe('with libcoap clients and certificates', () => {
    let pki;
    before(function () {
      requireTool(this, 'coap-client-openssl', 'libcoap3-bin');
      requireTool(this, 'openssl', 'openssl');
      pki = makePki(['dev-x509', 'other-x509']);
    });
    after(() => pki?.cleanup());

    async function pkiServer() {
      await startServer({
        secure: {
          port: 0,
          privateKey: ecPrivateKey(pki.read('server.key')),
          certificateChain: parseCertificates(pki.read('server.pem')).map((c) => c.raw),
          certificateAuthorities: parseCertificates(pki.read('ca.pem')),
        },
      });
      security.set('dev-rpk', { mode: 'rpk', publicKey: parsePublicKey(pki.read('rpk.pub')) });
      return `coaps://127.0.0.1:${server.coap.secure.address.port}`;
    }

    const register = (tool, base, endpoint, credentials) =>
      runPeer(tool, ['-B', '3', '-m', 'post', '-t', '40', '-e', '</1/0>,</3/0>', ...credentials, `${base}/rd?ep=${endpoint}&lt=300`]);

    it('registers with PSK from coap-client-openssl and coap-client-gnutls', async () => {
      const base = await pkiServer();
      for (const tool of ['coap-client-openssl', 'coap-client-gnutls']) {
        const registered = once(server, 'registered');
        await register(tool, base, 'meter-1', ['-u', 'meter-1-id', '-k', KEY.toString()]);
        const [registration] = await registered;
        assert.deepEqual([registration.endpoint, registration.transport, registration.identity], ['meter-1', 'dtls', { kind: 'psk', identity: 'meter-1-id' }]);
        assert.deepEqual(registration.objects.map((o) => o.id), [1, 3]);
      }
      const refused = await register('coap-client-openssl', base, 'meter-2', ['-u', 'meter-1-id', '-k', KEY.toString()]);
      assert.match(refused.output, /4\.03|not bound/);
    });

    it('registers an X.509 device as its certificate CN, and refuses it as anyone else', async () => {
      const base = await pkiServer();
      const certificate = ['-c', pki.file('dev-x509.pem'), '-j', pki.file('dev-x509.key'), '-C', pki.file('ca.pem')];
      const registered = once(server, 'registered');
      await register('coap-client-openssl', base, 'dev-x509', certificate);
      const [registration] = await registered;
      assert.equal(registrationToJson(registration).security, 'X.509');
      const refused = await register('coap-client-openssl', base, 'other-x509', certificate);
      assert.match(refused.output, /4\.03|not bound/);
      assert.ok(server.refusals.includes('certificate CN="dev-x509" is not bound to endpoint other-x509'));
    });

    it('keeps an endpoint that registered over DTLS from being taken over, across a de-registration and a restart', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-binding-'));
      const stateStore = new FileStateStore(path.join(dir, 'state.json'));
      try {
        const base = async () => {
          await startServer({
            stateStore,
            secure: { port: 0, privateKey: ecPrivateKey(pki.read('server.key')), certificateChain: parseCertificates(pki.read('server.pem')).map((c) => c.raw), certificateAuthorities: parseCertificates(pki.read('ca.pem')) },
          });
          return `coaps://127.0.0.1:${server.coap.secure.address.port}`;
        };
        const certificate = ['-c', pki.file('dev-x509.pem'), '-j', pki.file('dev-x509.key'), '-C', pki.file('ca.pem')];
        const impostor = async () => {
          const plain = new SimulatedDevice({ endpoint: 'dev-x509', server: { address: '127.0.0.1', port: server.coap.plain.address.port }, transmission: FAST });
          await plain.start();
          devices.push(plain);
          return plain.register();
        };
        let url = await base();
        const registered = once(server, 'registered');
        await register('coap-client-openssl', url, 'dev-x509', certificate);
        assert.equal((await registered)[0].transport, 'dtls');
        // A plain-UDP Register of the same name (the server lets unlisted names use NoSec) is refused and raised.
        const refused = once(server, 'refused');
        await assert.rejects(impostor(), (error) => error.responseCode === '4.03');
        const [endpoint, , reason] = await refused;
        assert.equal(endpoint, 'dev-x509');
        assert.equal(reason, 'endpoint dev-x509 registered over DTLS as certificate CN="dev-x509": a device without DTLS may not take it over');
        assert.equal(server.registrations.getByEndpoint('dev-x509').transport, 'dtls', 'the certificate device keeps its registration');
        // Gone (removed, de-registered or expired), the name stays bound; after a restart too.
        server.remove('dev-x509', 'flow');
        await assert.rejects(impostor(), (error) => error.responseCode === '4.03');
        await server.stop();
        url = await base();
        await assert.rejects(impostor(), (error) => error.responseCode === '4.03');
        await register('coap-client-openssl', url, 'dev-x509', certificate);
        assert.equal(server.registrations.getByEndpoint('dev-x509').transport, 'dtls', 'the certificate device itself comes back');
        // Forgetting the identity on purpose (a replaced device) lets another in.
        assert.deepEqual(server.remove('dev-x509', 'flow', true).unbound, true);
        await impostor();
        assert.equal(server.registrations.getByEndpoint('dev-x509').transport, 'udp');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('registers a raw-public-key device bound to its key (coap-client-gnutls)', async () => {
      const base = await pkiServer();
      const registered = once(server, 'registered');
      await register('coap-client-gnutls', base, 'dev-rpk', ['-M', pki.file('rpk.key')]);
      const [registration] = await registered;
      assert.equal(registrationToJson(registration).security, 'RPK');
      assert.equal(registration.identity.publicKey, parsePublicKey(pki.read('rpk.pub')).toString('base64'));
    });
  });

  it('bootstraps a device over DTLS and it then registers over DTLS with the PSK it was given', async () => {
    await startServer();
    const lwm2mUri = `coaps://127.0.0.1:${server.coap.secure.address.port}`;
    const bootstrap = new BootstrapServer({ address: '127.0.0.1', secure: { port: 0 }, transmission: FAST, requestTimeoutMs: 2000 });
    const bsKey = '0a0b0c0d0e0f';
    bootstrap.setConfig(
      'meter-1',
      parseBootstrapConfig({
        servers: [{ uri: lwm2mUri, securityMode: 'psk', pskIdentity: 'meter-1-id', pskKey: KEY.toString('hex'), shortServerId: 3 }],
        bootstrapServer: { uri: 'coaps://127.0.0.1:5686', securityMode: 'psk', pskIdentity: 'bs-meter-1', pskKey: bsKey },
      }),
    );
    try {
      const [bound] = await bootstrap.start();
      assert.equal(bound.scheme, 'coaps');
      const bsPeer = { address: '127.0.0.1', port: bound.port };
      const objects = buildObjectTree({ 1: { 0: { 0: 99, 1: 10 } }, 3: { 0: { 0: 'Acme' } } });
      const fresh = new SimulatedDevice({ endpoint: 'meter-1', server: bsPeer, bootstrapServer: bsPeer, objects, transmission: FAST, dtls: { identity: 'bs-meter-1', key: Buffer.from(bsKey, 'hex') } });
      await fresh.start();
      devices.push(fresh);
      assert.deepEqual(await fresh.bootstrap(), { address: '127.0.0.1', port: server.coap.secure.address.port });
      // What the bootstrap server wrote: the LwM2M server account with its PSK.
      const account = [...fresh.objects.get(0).values()].find((instance) => instance.get(1) === false);
      assert.equal(account.get(0), lwm2mUri);
      assert.equal(account.get(3).toString('utf8'), 'meter-1-id');
      // The device registers over DTLS, with the PSK it was given, from a session of its own.
      const registered = once(server, 'registered');
      await fresh.register();
      const [registration] = await registered;
      assert.equal(registration.transport, 'dtls');
      assert.equal(registration.identity.identity, 'meter-1-id');
      assert.equal(registration.port, fresh.localAddress.port);
      const read = await server.send('meter-1', new ReadRequest(Lwm2mPath.parse('/3/0/0')));
      assert.equal(read.records[0].value, 'Acme');

      const stranger = new SimulatedDevice({ endpoint: 'meter-2', server: bsPeer, bootstrapServer: bsPeer, transmission: FAST, dtls: { identity: 'bs-meter-1', key: Buffer.from(bsKey, 'hex') } });
      await stranger.start();
      devices.push(stranger);
      await assert.rejects(stranger.bootstrap(2000), (error) => error.responseCode === '4.03');
    } finally {
      await bootstrap.stop();
    }
  });
});

