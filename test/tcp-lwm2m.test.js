'use strict';
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { registrationToJson } = require('../dist/lib/lwm2m/registration');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { WriteRequest } = require('../dist/lib/lwm2m/requests/write');
const { ExecuteRequest } = require('../dist/lib/lwm2m/requests/execute');
const { CreateRequest } = require('../dist/lib/lwm2m/requests/create');
const { DeleteRequest } = require('../dist/lib/lwm2m/requests/delete');
const { DiscoverRequest } = require('../dist/lib/lwm2m/requests/discover');
const { WriteAttributesRequest } = require('../dist/lib/lwm2m/requests/write-attributes');
const { ReadCompositeRequest, WriteCompositeRequest } = require('../dist/lib/lwm2m/requests/composite');
const { ObserveRequest, ObserveCompositeRequest } = require('../dist/lib/lwm2m/requests/observe');
const { recordsToPayload, payloadToRecords } = require('../dist/lib/content/payload');
const { ObjectModel } = require('../dist/lib/model/object-model');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { decodeBlock } = require('../dist/lib/coap/block');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { FileStateStore } = require('../dist/lib/lwm2m/state');
const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
const { parseBootstrapConfig } = require('../dist/lib/bootstrap/bootstrap-config');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { once } = require('./support/udp');

const P = (text) => Lwm2mPath.parse(text);
const model = ObjectModel.builtIn();
const KEY = Buffer.from('tcp-secret-key');
const FORMATS = { tlv: 11542, 'lwm2m-json': 11543, 'senml-json': 110, 'senml-cbor': 112, 'lwm2m-cbor': 11544 };

/** Collects an observation's events. */
function collector() {
  const events = { notifications: [], errors: [], ended: [] };
  return {
    events,
    notify: (event) => events.notifications.push(event),
    error: (error) => events.errors.push(error),
    ended: (_observation, reason) => events.ended.push(reason),
  };
}

async function until(predicate, timeoutMs = 3000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} not met in time`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The Block1 or Block2 option of a request the device received. */
function blockOf(request, number) {
  const option = request.message.options.find((o) => o.number === number);
  return option && decodeBlock(option.value.reduce((acc, byte) => acc * 256 + byte, 0), true);
}

for (const transport of ['tcp', 'tls']) {
  describe(`LwM2M over ${transport.toUpperCase()} (RFC 8323) with the simulated device`, () => {
    let server;
    let security;
    const devices = [];

    async function startServer(options = {}) {
      security = new SecurityRegistry();
      // Over TLS the devices are listed with their PSKs; over TCP only one, which plain TCP must not reach.
      const listed = transport === 'tls' ? ['dev', 'sleepy', 'other'] : ['listed'];
      for (const name of listed) security.set(name, { mode: 'psk', identity: `${name}-id`, key: KEY });
      server = new Lwm2mServer({ address: '127.0.0.1', [transport]: { port: 0 }, security, client: { defaultTimeoutMs: 2000 }, ...options });
      await server.start();
      server.refusals = [];
      server.on('refused', (_endpoint, _peer, reason) => server.refusals.push(reason));
    }

    const listenerPort = () => server.coap[transport].address.port;

    async function device(endpoint = 'dev', options = {}) {
      const d = new SimulatedDevice({
        endpoint,
        server: { address: '127.0.0.1', port: listenerPort() },
        binding: 'T',
        ...(transport === 'tcp' ? { tcp: true } : { tls: { identity: `${endpoint}-id`, key: KEY } }),
        ...options,
      });
      await d.start();
      devices.push(d);
      return d;
    }

    beforeEach(() => startServer());

    afterEach(async () => {
      await Promise.all(devices.splice(0).map((d) => d.stop()));
      await server.stop();
    });

    it(`registers with binding T and transport ${transport}, updates and de-registers`, async () => {
      const d = await device();
      const registered = once(server, 'registered');
      await d.register();
      const [registration] = await registered;
      const json = registrationToJson(registration);
      assert.deepEqual([json.transport, json.binding, json.security], [transport, 'T', transport === 'tls' ? 'PSK' : 'NoSec']);
      if (transport === 'tls') assert.equal(json.identity, 'dev-id');
      assert.equal(json.port, d.localAddress.port);
      const updated = once(server, 'updated');
      await d.update({ lt: 120 });
      assert.deepEqual((await updated)[1], ['lifetime']);
      await d.deregister();
      assert.equal(server.registrations.size, 0);
    });

    it('reads a resource, an instance and an object in every format', async () => {
      const d = await device();
      await d.register();
      const single = await server.send('dev', new ReadRequest(P('/3/0/9')));
      assert.equal(recordsToPayload(single.records, P('/3/0/9')), 100);
      for (const format of Object.values(FORMATS)) {
        const response = await server.send('dev', new ReadRequest(P('/3/0'), format));
        assert.equal(response.contentFormat, format);
        assert.equal(recordsToPayload(response.records, P('/3/0'))[0], 'Node-RED LwM2M');
        assert.ok(recordsToPayload((await server.send('dev', new ReadRequest(P('/3303'), format))).records, P('/3303'))[0]);
      }
    });

    it('writes, executes, creates, deletes, discovers and writes attributes', async () => {
      const d = await device();
      const rebooted = [];
      d.objects.get(3).get(0).set(4, (args) => rebooted.push(args));
      await d.register();
      await server.send('dev', new WriteRequest(P('/3/0/14'), payloadToRecords('+02:00', P('/3/0/14'), model)));
      assert.equal(d.getResource('/3/0/14'), '+02:00');
      await server.send('dev', new WriteRequest(P('/1/0'), payloadToRecords({ Lifetime: 300, 7: 'T' }, P('/1/0'), model), 'update', FORMATS['senml-cbor']));
      assert.equal(d.getResource('/1/0/1'), 300);
      await server.send('dev', new ExecuteRequest(P('/3/0/4'), { 0: 'now' }));
      assert.deepEqual(rebooted, ["0='now'"]);
      const created = await server.send('dev', new CreateRequest(P('/3303'), payloadToRecords({ 5700: 30, 5701: 'Cel' }, P('/3303/1'), model)));
      assert.equal(created.instanceId, 1);
      assert.equal(d.getResource('/3303/1/5700'), 30);
      assert.equal((await server.send('dev', new DeleteRequest(P('/3303/1')))).code, '2.02');
      assert.equal(d.objects.get(3303).has(1), false);
      await server.send('dev', new WriteAttributesRequest(P('/3303/0/5700'), { pmin: 5, gt: 30 }));
      const discovered = await server.send('dev', new DiscoverRequest(P('/3303/0')));
      const link = discovered.links.find((l) => l.path === '/3303/0/5700');
      assert.deepEqual([link.attributes.pmin, link.attributes.gt], ['5', '30']);
    });

    it('reads and writes composite, and observes composite', async () => {
      const d = await device();
      await d.register();
      const read = await server.send('dev', new ReadCompositeRequest([P('/3/0/9'), P('/3303/0/5700')], FORMATS['senml-cbor']));
      assert.deepEqual(recordsToPayload(read.records, Lwm2mPath.ROOT), { 3: { 0: { 9: 100 } }, 3303: { 0: { 5700: 21.5 } } });
      await server.send('dev', new WriteCompositeRequest([...payloadToRecords(45, P('/1/0/1'), model), ...payloadToRecords(0.5, P('/3308/0/5900'), model)], FORMATS['senml-json']));
      assert.deepEqual([d.getResource('/1/0/1'), d.getResource('/3308/0/5900')], [45, 0.5]);
      const listener = collector();
      const { established } = await server.observe('dev', new ObserveCompositeRequest([P('/3303/0/5700'), P('/3/0/9')], FORMATS['senml-json']), listener);
      assert.equal(established, true);
      await d.setResource('/3303/0/5700', 30);
      await until(() => listener.events.notifications.length === 1);
      assert.equal(recordsToPayload(listener.events.notifications[0].records, Lwm2mPath.ROOT)[3303][0][5700], 30);
    });

    it('delivers notifications in the order they come, whatever their Observe values (RFC 8323 section 7.2), and cancels actively', async () => {
      const d = await device();
      await d.register();
      const listener = collector();
      const { observation } = await server.observe('dev', new ObserveRequest(P('/3303/0/5700')), listener);
      await d.setResource('/3303/0/5700', 22);
      await until(() => listener.events.notifications.length === 1);
      // Over UDP a smaller sequence number is an older notification and is dropped (RFC 7641 section 3.4); over a stream there is no reordering.
      for (const observer of d['observers'].values()) observer.sequence = 0;
      await d.setResource('/3303/0/5700', 23);
      await d.setResource('/3303/0/5700', 24);
      await until(() => listener.events.notifications.length === 3, 3000, 'notifications with smaller Observe values');
      assert.deepEqual(listener.events.notifications.map((n) => recordsToPayload(n.records, P('/3303/0/5700'))), [22, 23, 24]);
      await server.observations.cancel(observation);
      assert.deepEqual(d.observations, []);
    });

    it('takes values a device sends (Send) over its connection', async () => {
      const d = await device();
      await d.register();
      const sent = once(server, 'send');
      assert.equal((await d.sendValues(['/3303/0/5700'], 112)).code, 68);
      const [registration, records] = await sent;
      assert.equal(registration.endpoint, 'dev');
      assert.equal(records[0].value, 21.5);
    });

    it('fetches a large answer in BERT blocks and sends a large write in BERT blocks (RFC 8323 section 6)', async () => {
      const d = await device('dev', { maxBlockBytes: 3072 });
      await d.register();
      const big = 'x'.repeat(20000);
      d.objects.get(3).get(0).set(0, big);
      const before = d.received.length;
      const read = await server.send('dev', new ReadRequest(P('/3/0/0')));
      assert.equal(read.records[0].value, big);
      const reads = d.received.slice(before);
      assert.deepEqual(reads.slice(1).map((r) => [blockOf(r, 23).szx, blockOf(r, 23).num]), [1, 2, 3, 4, 5, 6].map((i) => [7, i * 3]), 'BERT Block2 requests by 1024-byte unit');

      // The device takes up to 8,192 bytes a message: a body of 6,000 bytes goes whole, one of 20,000 in BERT Block1 blocks of 7 KiB.
      d.objects.get(3).get(0).set(15, '');
      const writes = d.received.length;
      await server.send('dev', new WriteRequest(P('/3/0/15'), payloadToRecords('y'.repeat(6000), P('/3/0/15'), model)));
      assert.equal(d.received.length - writes, 1);
      assert.equal(blockOf(d.received[writes], 27), undefined);
      await server.send('dev', new WriteRequest(P('/3/0/15'), payloadToRecords('z'.repeat(20000), P('/3/0/15'), model)));
      assert.equal(d.getResource('/3/0/15'), 'z'.repeat(20000));
      // The device's handler sees the request once whole, with the last block's message: number 14 in 1024-byte units, after two blocks of 7 units.
      const last = d.received.at(-1);
      assert.deepEqual([blockOf(last, 27).num, blockOf(last, 27).szx, blockOf(last, 27).more, last.message.payload.length, last.payload.length], [14, 7, false, 20000 - 14336, 20000]);
    });

    it('keeps the registration when the connection drops: requests fail at once with no-connection, and work again after the device reconnects and updates', async () => {
      const d = await device();
      await d.register();
      const listener = collector();
      await server.observe('dev', new ObserveRequest(P('/3303/0/5700')), listener);
      const disconnected = once(server.coap[transport], 'disconnected');
      await d.stop();
      await disconnected;
      assert.ok(server.registrations.getByEndpoint('dev'), 'the registration stays');
      const started = Date.now();
      await assert.rejects(server.send('dev', new ReadRequest(P('/3/0/9'))), (error) => error.kind === 'no-connection' && /no connection with/.test(error.message));
      assert.ok(Date.now() - started < 200, 'fails fast');
      assert.deepEqual(listener.events.ended, [], 'with Re-observe the observation waits for the device');

      // The same device, its state kept, on a new connection (a new port).
      const again = new SimulatedDevice({ ...d.options, objects: d.objects });
      devices.push(again);
      await again.start();
      again['location'] = d.registrationLocation;
      await again.update();
      assert.equal(server.registrations.getByEndpoint('dev').port, again.localAddress.port);
      assert.equal((await server.send('dev', new ReadRequest(P('/3/0/9')))).records[0].value, 100);
      await until(() => again.observations.length === 1, 3000, 're-observation on the new connection');
      await again.setResource('/3303/0/5700', 40);
      await until(() => listener.events.notifications.some((n) => n.records[0].value === 40));
    });

    it('ends observations with their connection when Re-observe is off', async () => {
      await server.stop();
      await startServer({ reobserve: false });
      const d = await device();
      await d.register();
      const listener = collector();
      await server.observe('dev', new ObserveRequest(P('/3303/0/5700')), listener);
      await d.reconnect();
      await until(() => listener.events.ended.length === 1);
      assert.deepEqual(listener.events.ended, ['the connection closed']);
      assert.equal(server.observations.size, 0);
    });

    it('queue mode: holds requests while the device sleeps without a connection and sends them over its next one', async () => {
      await server.stop();
      await startServer({ awakeTimeMs: 300 });
      const d = await device('sleepy', { queueMode: true });
      await d.register();
      await once(server, 'sleeping', 2000);
      // The device sleeps with its connection closed.
      await d['endpoint'].close();
      const read = server.send('sleepy', new ReadRequest(P('/3/0/9')));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = d.received.length;
      const woke = once(server, 'awake');
      await d.reconnect();
      await d.update();
      await woke;
      assert.equal((await read).records[0].value, 100);
      assert.deepEqual(d.received.slice(before).map((r) => r.path), ['/3/0/9']);
    });

    if (transport === 'tls') {
      it('follows a reconnecting device by its TLS identity at once: a read reaches it before its Update', async () => {
        const d = await device();
        await d.register();
        const updated = once(server, 'updated');
        await d.reconnect();
        const [registration, changes] = await updated;
        assert.deepEqual(changes, ['address']);
        assert.equal(registration.port, d.localAddress.port);
        assert.equal((await server.send('dev', new ReadRequest(P('/3/0/9')))).records[0].value, 100);
      });

      it('binds identities to endpoints: another endpoint name is refused, a wrong key fails the handshake', async () => {
        const impostor = await device('other', { endpoint: 'dev', tls: { identity: 'other-id', key: KEY } });
        await assert.rejects(impostor.register(), (error) => error.responseCode === '4.03');
        assert.deepEqual(server.refusals, ['PSK identity "other-id" is not bound to endpoint dev']);
        const failed = once(server, 'handshakeFailed');
        const wrong = new SimulatedDevice({ endpoint: 'dev', server: { address: '127.0.0.1', port: listenerPort() }, tls: { identity: 'dev-id', key: Buffer.from('wrong') } });
        await assert.rejects(wrong.start());
        assert.equal((await failed)[1], 'wrong key for PSK identity "dev-id"');
        const unknown = once(server, 'handshakeFailed');
        await assert.rejects(new SimulatedDevice({ endpoint: 'x', server: { address: '127.0.0.1', port: listenerPort() }, tls: { identity: 'nobody', key: KEY } }).start());
        assert.equal((await unknown)[1], 'unknown PSK identity "nobody"');
        assert.equal(server.registrations.size, 0);
      });
    } else {
      it('refuses a listed (PSK) endpoint over plain TCP', async () => {
        const d = await device('listed');
        await assert.rejects(d.register(), (error) => error.responseCode === '4.03');
        assert.deepEqual(server.refusals, ['endpoint listed must use DTLS or TLS (PSK)']);
      });
    }

    it('after a restart the registration is back, and the observation is made again once the device has reconnected (Re-observe)', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-tcp-state-'));
      try {
        await server.stop();
        await startServer({ stateStore: new FileStateStore(path.join(dir, 'state.json')) });
        const tcpPort = listenerPort();
        const d = await device();
        await d.register();
        const before = collector();
        await server.observe('dev', new ObserveRequest(P('/3303/0/5700')), before, {}, 'observe-node');
        await server.stop(); // the connection is released: the device's observation ended with it
        await startServer({ stateStore: new FileStateStore(path.join(dir, 'state.json')), [transport]: { port: tcpPort } });
        const registration = server.registrations.getByEndpoint('dev');
        assert.equal(registration.transport, transport);
        await assert.rejects(server.send('dev', new ReadRequest(P('/3/0/9'))), (error) => error.kind === 'no-connection');
        const after = collector();
        assert.equal(server.observations.adopt('observe-node', after).length, 1);
        await d.reconnect();
        await d.update();
        await until(() => d.observations.length === 1, 3000, 're-observation after the restart');
        await d.setResource('/3303/0/5700', 19);
        await until(() => after.events.notifications.some((n) => n.records[0].value === 19));
        assert.deepEqual(after.events.ended, []);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`bootstraps over ${transport.toUpperCase()} and registers with the ${transport === 'tls' ? 'coaps+tcp' : 'coap+tcp'}:// account it was given`, async () => {
      const scheme = transport === 'tls' ? 'coaps+tcp' : 'coap+tcp';
      const bsKey = '0a0b0c0d0e0f';
      const account = transport === 'tls' ? { securityMode: 'psk', pskIdentity: 'dev-id', pskKey: KEY.toString('hex') } : {};
      const bootstrapAccount = transport === 'tls' ? { uri: `${scheme}://127.0.0.1:5686`, securityMode: 'psk', pskIdentity: 'bs-dev', pskKey: bsKey } : undefined;
      const bootstrap = new BootstrapServer({ address: '127.0.0.1', [transport]: { port: 0 }, requestTimeoutMs: 2000 });
      bootstrap.setConfig('dev', parseBootstrapConfig({ servers: [{ uri: `${scheme}://127.0.0.1:${listenerPort()}`, shortServerId: 3, binding: 'T', ...account }], bootstrapServer: bootstrapAccount }));
      try {
        const [bound] = await bootstrap.start();
        assert.equal(bound.scheme, scheme);
        const bsPeer = { address: '127.0.0.1', port: bound.port };
        const objects = buildObjectTree({ 1: { 0: { 0: 99, 1: 10 } }, 3: { 0: { 0: 'Acme' } } });
        const fresh = await device('dev', { server: bsPeer, bootstrapServer: bsPeer, objects, ...(transport === 'tls' ? { tls: { identity: 'bs-dev', key: Buffer.from(bsKey, 'hex') } } : {}) });
        const started = once(bootstrap, 'started');
        assert.deepEqual(await fresh.bootstrap(), { address: '127.0.0.1', port: listenerPort() });
        assert.equal((await started)[0], 'dev');
        const registered = once(server, 'registered');
        await fresh.register();
        const [registration] = await registered;
        assert.deepEqual([registration.transport, registration.binding], [transport, 'T']);
        if (transport === 'tls') assert.equal(registration.identity.identity, 'dev-id');
        assert.equal((await server.send('dev', new ReadRequest(P('/3/0/0')))).records[0].value, 'Acme');
      } finally {
        await bootstrap.stop();
      }
    });

    it('answers Ping with Pong both ways (RFC 8323 section 5.4)', async () => {
      const d = await device();
      await d.register();
      const registration = server.registrations.getByEndpoint('dev');
      await server.coap[transport].ping(registration, 1000);
      await d['endpoint'].ping({ address: '127.0.0.1', port: listenerPort() }, 1000);
    });
  });
}

describe('the simulator command line with --server coap+tcp:// and coaps+tcp://', function () {
  this.timeout(15000);
  const { spawn } = require('node:child_process');
  let server;

  afterEach(() => server?.stop());

  for (const scheme of ['coap+tcp', 'coaps+tcp']) {
    it(`registers, is read and de-registers on Ctrl-C (${scheme}://)`, async () => {
      const security = new SecurityRegistry();
      security.set('cli-tls', { mode: 'psk', identity: 'cli-id', key: Buffer.from('6b6579', 'hex') });
      server = new Lwm2mServer({ address: '127.0.0.1', tcp: { port: 0 }, tls: { port: 0 }, security });
      await server.start();
      const port = (scheme === 'coap+tcp' ? server.coap.tcp : server.coap.tls).address.port;
      const endpoint = scheme === 'coap+tcp' ? 'cli-tcp' : 'cli-tls';
      const psk = scheme === 'coaps+tcp' ? ['--psk-identity', 'cli-id', '--psk-key', '6b6579'] : [];
      const registered = once(server, 'registered', 10000);
      const child = spawn(process.execPath, ['dist/sim/cli.js', '--server', `${scheme}://127.0.0.1:${port}`, '--endpoint', endpoint, '--binding', 'T', ...psk], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      try {
        const [registration] = await registered;
        assert.deepEqual([registration.endpoint, registration.transport, registration.binding], [endpoint, scheme === 'coap+tcp' ? 'tcp' : 'tls', 'T']);
        assert.equal((await server.send(endpoint, new ReadRequest(P('/3/0/9')))).records[0].value, 100);
        // Its Ctrl-C handler is in place once it has said where it registered.
        await until(() => new RegExp(`${endpoint} registered at 127\\.0\\.0\\.1:${port}/rd/`).test(output), 5000, 'the simulator\'s report');
        const deregistered = once(server, 'deregistered', 5000);
        child.kill('SIGINT');
        await deregistered;
        await new Promise((resolve) => child.once('exit', resolve));
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
