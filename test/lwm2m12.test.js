'use strict';
// LwM2M 1.2 end to end (issue 21 items 1-5 and 7), over real UDP (and DTLS) sockets against
// the simulator, with the bytes checked by the independent cbor package, the Fetch Pack of
// RFC 8790 section 4 and the Patch Pack form AVSystem Anjay's own Write-Composite tests use.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const cbor = require('cbor');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
const { parseBootstrapConfig } = require('../dist/lib/bootstrap/bootstrap-config');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { WriteRequest } = require('../dist/lib/lwm2m/requests/write');
const { ReadCompositeRequest, WriteCompositeRequest } = require('../dist/lib/lwm2m/requests/composite');
const { ObserveRequest, ObserveCompositeRequest } = require('../dist/lib/lwm2m/requests/observe');
const { WriteAttributesRequest } = require('../dist/lib/lwm2m/requests/write-attributes');
const { DeviceRequestError } = require('../dist/lib/lwm2m/device-client');
const { recordsToPayload, payloadToRecords, namedRecords } = require('../dist/lib/content/payload');
const { ObjectModel } = require('../dist/lib/model/object-model');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encode, decode } = require('../dist/lib/coap/message');
const { formatCode } = require('../dist/lib/coap/codes');
const { registrationToJson } = require('../dist/lib/lwm2m/registration');
const { freePort, RawPeer, once } = require('./support/udp');
const { devicePool } = require('./support/devices');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };
const P = (text) => Lwm2mPath.parse(text);
const ROOT = Lwm2mPath.ROOT;
const model = ObjectModel.builtIn();
const [FETCH, IPATCH] = [5, 7];
const [ETAG, OBSERVE, URI_PATH, CF, URI_QUERY, ACCEPT, BLOCK2, SIZE2] = [4, 6, 11, 12, 15, 17, 23, 28];
const optionValue = (message, number) => message.options.find((o) => o.number === number)?.value;
const optionUint = (message, number) => {
  const value = optionValue(message, number);
  return value === undefined ? undefined : value.length === 0 ? 0 : value.readUIntBE(0, value.length);
};
const uint = (n) => (n === 0 ? Buffer.alloc(0) : n < 256 ? Buffer.from([n]) : Buffer.from([n >> 8, n & 0xff]));
const listener = (events = []) => ({ notify: (event) => events.push(event), error() {}, ended() {} });

describe('LwM2M 1.2 (issue 21)', () => {
  let server;
  let port;
  const devices = [];
  const pool = devicePool(() => port);

  /** A simulated device, started and registered. */
  async function device(endpoint, options = {}) {
    const d = await pool.device(endpoint, options);
    await d.register();
    return d;
  }

  /** The requests a device got since the count given, for "nothing was sent" checks. */
  const since = (d, count) => d.received.slice(count);

  beforeEach(async () => {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST, client: { defaultTimeoutMs: 2000 } });
    await server.start();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await pool.stopAll();
    await server.stop();
  });

  describe('composite operations in LwM2M CBOR and SenML-ETCH (items 1 and 2)', () => {
    it('reads composite from a 1.2 device: the paths in a SenML-ETCH CBOR Fetch Pack, the values in LwM2M CBOR', async () => {
      const d = await device('modern', { lwm2mVersion: '1.2' });
      const read = await server.send('modern', new ReadCompositeRequest([P('/3/0/0'), P('/3/0/7'), P('/3303/0/5700')]));
      const fetch = d.received.at(-1);
      assert.deepEqual([fetch.method, fetch.contentFormat, optionUint(fetch.message, ACCEPT)], [FETCH, 322, 11544]);
      assert.deepEqual(cbor.decodeFirstSync(fetch.payload), [new Map([[0, '/3/0/0']]), new Map([[0, '/3/0/7']]), new Map([[0, '/3303/0/5700']])]);
      assert.equal(read.contentFormat, 11544);
      // The answer as the cbor package reads it: maps keyed by object, instance, resource and resource instance ids.
      const tree = cbor.decodeFirstSync(read.raw);
      assert.equal(tree.get(3).get(0).get(0), 'Node-RED LwM2M');
      assert.deepEqual([...tree.get(3).get(0).get(7)], [[0, 3800], [1, 5000]]);
      assert.equal(tree.get(3303).get(0).get(5700), 21.5);
      assert.deepEqual(recordsToPayload(read.records, ROOT), { 3: { 0: { 0: 'Node-RED LwM2M', 7: { 0: 3800, 1: 5000 } } }, 3303: { 0: { 5700: 21.5 } } });
    });

    it('observes composite in LwM2M CBOR: the first answer and each notification', async () => {
      const d = await device('observed', { lwm2mVersion: '1.2' });
      const events = [];
      const { first, established } = await server.observe('observed', new ObserveCompositeRequest([P('/3303/0/5700'), P('/3/0/9')]), listener(events));
      assert.equal(established, true);
      assert.deepEqual([d.received.at(-1).contentFormat, optionUint(d.received.at(-1).message, ACCEPT)], [322, 11544]);
      assert.equal(first.contentFormat, 11544);
      assert.deepEqual(recordsToPayload(first.records, ROOT), { 3: { 0: { 9: 100 } }, 3303: { 0: { 5700: 21.5 } } });
      await d.setResource('/3303/0/5700', 30.25);
      await until(() => events.length === 1, 2000, 'the notification');
      assert.equal(events[0].contentFormat, 11544);
      assert.equal(cbor.decodeFirstSync(events[0].raw).get(3303).get(0).get(5700), 30.25);
      assert.equal(recordsToPayload(events[0].records, ROOT)[3303][0][5700], 30.25);
    });

    it('writes composite to a 1.2 device in LwM2M CBOR', async () => {
      const d = await device('written', { lwm2mVersion: '1.2' });
      const records = [...payloadToRecords(45, P('/1/0/1'), model), ...payloadToRecords(0.5, P('/3308/0/5900'), model), ...payloadToRecords('+02:00', P('/3/0/14'), model)];
      await server.send('written', new WriteCompositeRequest(records));
      const ipatch = d.received.at(-1);
      assert.deepEqual([ipatch.method, ipatch.contentFormat], [IPATCH, 11544]);
      const body = cbor.decodeFirstSync(ipatch.payload);
      assert.deepEqual(body, new Map([[1, new Map([[0, new Map([[1, 45]])]])], [3, new Map([[0, new Map([[14, '+02:00']])]])], [3308, new Map([[0, new Map([[5900, 0.5]])]])]]));
      assert.deepEqual([d.getResource('/1/0/1'), d.getResource('/3308/0/5900'), d.getResource('/3/0/14')], [45, 0.5, '+02:00']);
    });

    it('writes composite in a SenML-ETCH CBOR Patch Pack, a null value removing a resource instance', async () => {
      const d = await device('etch-cbor', { lwm2mVersion: '1.2', contentFormats: [0, 42, 110, 112, 320, 322, 11542] });
      await server.send('etch-cbor', new WriteCompositeRequest(payloadToRecords(46, P('/1/0/1'), model), undefined, [P('/3/0/7/1')]));
      const ipatch = d.received.at(-1);
      assert.equal(ipatch.contentFormat, 322);
      assert.deepEqual(cbor.decodeFirstSync(ipatch.payload), [new Map([[0, '/1/0/1'], [2, 46]]), new Map([[0, '/3/0/7/1'], [2, null]])]);
      assert.equal(d.getResource('/1/0/1'), 46);
      assert.deepEqual([...d.getResource('/3/0/7')], [[0, 3800]]);
    });

    it('writes composite in a SenML-ETCH JSON Patch Pack, removals as {"n": path, "v": null} (the form Anjay\'s Write-Composite tests send)', async () => {
      const d = await device('etch-json', { lwm2mVersion: '1.2', contentFormats: [0, 110, 320, 11542] });
      await server.send('etch-json', new WriteCompositeRequest(payloadToRecords(47, P('/1/0/1'), model), undefined, [P('/3/0/7/0')]));
      const ipatch = d.received.at(-1);
      assert.equal(ipatch.contentFormat, 320);
      assert.deepEqual(JSON.parse(ipatch.payload.toString()), [{ n: '/1/0/1', v: 47 }, { n: '/3/0/7/0', v: null }]);
      assert.deepEqual([...d.getResource('/3/0/7')], [[1, 5000]]);
    });

    it('refuses a removal where no Patch Pack can carry it, and formats a composite operation cannot use, before sending', async () => {
      const d = await device('plain-senml', { lwm2mVersion: '1.1', contentFormats: [0, 110, 112, 11542] });
      const sent = d.received.length;
      await assert.rejects(server.send('plain-senml', new WriteCompositeRequest([], undefined, [P('/3/0/7/1')])), (error) => {
        assert.ok(error instanceof DeviceRequestError && error.kind === 'invalid-request');
        assert.match(error.message, /removing \/3\/0\/7\/1 needs SenML-ETCH \(320 or 322\), which plain-senml did not announce \(ct="0 110 112 11542"\)/);
        return true;
      });
      assert.throws(() => new WriteCompositeRequest([], 110, [P('/3/0/7')]), /removes resource instances \(such as \/3\/0\/7\/1\), not \/3\/0\/7/);
      await assert.rejects(server.send('plain-senml', new WriteCompositeRequest([], 112, [P('/3/0/7/1')])), /needs SenML-ETCH \(320 or 322\), not application\/senml\+cbor/);
      assert.throws(() => new ReadCompositeRequest([P('/3/0/0')], 11542), /Read-Composite and Observe-Composite use .*\(322\).*\(11544\), not application\/vnd\.oma\.lwm2m\+tlv/);
      assert.throws(() => new WriteCompositeRequest(payloadToRecords(1, P('/1/0/1'), model), 11543), /Write-Composite use .*, not application\/vnd\.oma\.lwm2m\+json/);
      assert.deepEqual(since(d, sent), [], 'nothing was sent');
    });

    it('asks in the format given: LwM2M CBOR for the values (paths in what the device announced), SenML-ETCH for the paths (values in its plain SenML)', async () => {
      const d = await device('chosen', { lwm2mVersion: '1.2' });
      await server.send('chosen', new ReadCompositeRequest([P('/3/0/9')], 11544));
      assert.deepEqual([d.received.at(-1).contentFormat, optionUint(d.received.at(-1).message, ACCEPT)], [322, 11544]);
      const read = await server.send('chosen', new ReadCompositeRequest([P('/3/0/9')], 320));
      assert.deepEqual([d.received.at(-1).contentFormat, optionUint(d.received.at(-1).message, ACCEPT)], [320, 110]);
      assert.deepEqual(JSON.parse(read.raw.toString()), [{ n: '/3/0/9', v: 100 }]);
      await server.send('chosen', new WriteCompositeRequest(payloadToRecords(50, P('/1/0/1'), model), 322));
      assert.equal(d.received.at(-1).contentFormat, 322);
    });

    it('serves the Fetch Pack of RFC 8790 section 4 (base name and names) from the simulator, answered in plain SenML JSON', async () => {
      const objects = buildObjectTree({ 3311: { 0: { 5850: true, 5851: 42 } } });
      const d = await device('light', { lwm2mVersion: '1.2', objects });
      const raw = await RawPeer.open();
      try {
        // The RFC's example, its base name the LwM2M path (an LwM2M name leaves out the device address the RFC puts before it).
        const body = Buffer.from('[{"bn":"/3311/0/", "n":"5850"}, {"n":"5851"}]');
        const request = encode({ type: 0, code: FETCH, messageId: 7, token: Buffer.from([7]), options: [{ number: CF, value: uint(320) }], payload: body });
        const answer = decode(await raw.exchange(request, d.localAddress.port));
        assert.equal(formatCode(answer.code), '2.05');
        assert.equal(optionUint(answer, CF), 110);
        assert.deepEqual(JSON.parse(answer.payload.toString()), [{ n: '/3311/0/5850', vb: true }, { n: '/3311/0/5851', v: 42 }]);
      } finally {
        await raw.close();
      }
    });
  });

  describe('notification attributes of LwM2M 1.2 (item 3)', () => {
    it('writes edge, con and hqmax to a 1.2 device: flags 0/1 (true and false too), a whole queue length', async () => {
      const d = await device('attrs', { lwm2mVersion: '1.2' });
      await server.send('attrs', new WriteAttributesRequest(P('/1/0/6'), { edge: 1, con: true }));
      assert.deepEqual(d.received.at(-1).queries, ['edge=1', 'con=1']);
      await server.send('attrs', new WriteAttributesRequest(P('/3303/0'), { hqmax: 10, con: false, pmax: 60 }));
      assert.deepEqual(d.received.at(-1).queries, ['hqmax=10', 'con=0', 'pmax=60']);
      assert.deepEqual(d.attributes.get('/1/0/6'), { edge: '1', con: '1' });
      assert.deepEqual(d.attributes.get('/3303/0'), { hqmax: '10', con: '0', pmax: '60' });
      await server.send('attrs', new WriteAttributesRequest(P('/1/0/6'), { edge: null }));
      assert.deepEqual(d.attributes.get('/1/0/6'), { con: '1' });
    });

    it('refuses what the 1.2 TS does not allow, before sending: edge off a boolean resource, flags other than 0/1, a broken hqmax, 1.2 attributes to older devices', async () => {
      const d = await device('strict', { lwm2mVersion: '1.2' });
      const old = await device('old', { lwm2mVersion: '1.1' });
      const older = await device('older', { lwm2mVersion: '1.0', binding: 'U' });
      const counts = [d, old, older].map((x) => x.received.length);
      for (const [attributes, pattern] of [
        [{ edge: 2 }, /edge must be 0 or 1, not 2/],
        [{ con: 'yes' }, /con must be a number/],
        [{ hqmax: -1 }, /hqmax must be a whole number of notifications ≥ 0/],
        [{ hqmax: 1.5 }, /hqmax must be a whole number/],
        [{ colour: 1 }, /unknown attribute "colour": use pmin, pmax, gt, lt, st, epmin, epmax, edge, con, hqmax/],
      ]) {
        assert.throws(() => new WriteAttributesRequest(P('/1/0/6'), attributes), pattern);
      }
      assert.throws(() => new WriteAttributesRequest(P('/1/0'), { edge: 1 }), /edge apply to a resource, not to \/1\/0/);
      const refused = async (endpoint, target, attributes, pattern) =>
        assert.rejects(server.send(endpoint, new WriteAttributesRequest(P(target), attributes)), (error) => error.kind === 'invalid-request' && pattern.test(error.message));
      await refused('strict', '/3303/0/5700', { edge: 0 }, /edge applies to a boolean resource; \/3303\/0\/5700 \(Sensor Value\) is float/);
      await refused('strict', '/3/0/0', { gt: 3 }, /gt apply to a numeric resource; \/3\/0\/0 \(Manufacturer\) is string/);
      await refused('old', '/3303/0', { con: 1, hqmax: 5 }, /con, hqmax are attributes of LwM2M 1\.2; old registered with LwM2M 1\.1/);
      await refused('older', '/3303/0/5700', { epmin: 5 }, /epmin is an attribute of LwM2M 1\.1; older registered with LwM2M 1\.0/);
      assert.deepEqual([d, old, older].map((x, i) => since(x, counts[i])), [[], [], []], 'nothing was sent');
    });

    it('puts the attributes of an Observe of a 1.2 device in its query (GET /3303/0/5700?pmin=5&gt=30, Observe 0), and cancels with the same request', async () => {
      const d = await device('query', { lwm2mVersion: '1.2' });
      const { first, observation } = await server.observe('query', new ObserveRequest(P('/3303/0/5700'), undefined, { pmin: 5, gt: 30 }), listener());
      assert.equal(first.records[0].value, 21.5);
      const get = d.received.at(-1);
      assert.deepEqual([get.method, get.path, get.queries, optionUint(get.message, OBSERVE)], [1, '/3303/0/5700', ['pmin=5', 'gt=30'], 0]);
      assert.equal(d.received.filter((r) => r.method === 3).length, 0, 'no Write-Attributes');
      assert.deepEqual(d.observationAttributes, [{ pmin: '5', gt: '30' }]);
      assert.deepEqual(server.observations.persisted()[0].attributes, { pmin: 5, gt: 30 });
      await server.observations.cancel(observation);
      const cancel = d.received.at(-1);
      assert.deepEqual([cancel.queries, optionUint(cancel.message, OBSERVE)], [['pmin=5', 'gt=30'], 1]);
      assert.deepEqual(d.observations, []);
      // Observe-Composite carries them the same way.
      await server.observe('query', new ObserveCompositeRequest([P('/3303/0/5700'), P('/3/0/9')], undefined, { pmax: 20, con: 1 }), listener());
      assert.deepEqual([d.received.at(-1).method, d.received.at(-1).queries], [FETCH, ['pmax=20', 'con=1']]);
    });

    it('sends an Observe of an older device without a query, refuses attributes an Observe cannot carry', async () => {
      const d = await device('older-observe', { lwm2mVersion: '1.1' });
      await server.observe('older-observe', new ObserveRequest(P('/3303/0/5700'), undefined, { pmin: 5 }), listener());
      assert.deepEqual(d.received.at(-1).queries, []);
      assert.throws(() => new ObserveRequest(P('/3303/0'), undefined, { gt: 3 }), /gt apply to a resource, not to \/3303\/0/);
      assert.throws(() => new ObserveRequest(P('/3303/0/5700'), undefined, { pmin: null }), /removing one \(null\) is for Write-Attributes/);
    });
  });

  describe('Bootstrap-Pack-Request (item 4)', () => {
    let bootstrap;
    let bsPort;

    beforeEach(async () => {
      bsPort = await freePort();
      bootstrap = new BootstrapServer({ address: '127.0.0.1', port: bsPort, transmission: FAST, requestTimeoutMs: 1000 });
      await bootstrap.start();
    });

    afterEach(() => bootstrap.stop());

    async function fresh(endpoint, options = {}) {
      const objects = buildObjectTree({ 1: { 0: { 0: 99, 1: 10 } }, 3: { 0: { 0: 'Acme' } } });
      const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: 1 }, bootstrapServer: { address: '127.0.0.1', port: bsPort }, objects, transmission: FAST, lwm2mVersion: '1.2', ...options });
      await d.start();
      devices.push(d);
      return d;
    }

    /** GET /bspack?ep= from a raw socket, with the Accept and Block2 option given. */
    async function rawPack(raw, endpoint, accept, block2) {
      const options = [{ number: URI_PATH, value: Buffer.from('bspack') }, { number: URI_QUERY, value: Buffer.from(`ep=${endpoint}`) }];
      if (accept !== undefined) options.push({ number: ACCEPT, value: uint(accept) });
      if (block2 !== undefined) options.push({ number: BLOCK2, value: uint(block2) });
      return decode(await raw.exchange(encode({ type: 0, code: 1, messageId: Math.floor(Math.random() * 60000), token: Buffer.from([9]), options, payload: Buffer.alloc(0) }), bsPort));
    }

    it('provisions a device in one SenML CBOR answer with the accounts a bootstrap session writes; it then registers', async () => {
      const config = { uri: `coap://127.0.0.1:${port}`, shortServerId: 7, lifetime: 120, binding: 'U' };
      bootstrap.setConfig('packed', parseBootstrapConfig(config));
      bootstrap.setConfig('sessioned', parseBootstrapConfig(config));
      const packed = await fresh('packed');
      const started = once(bootstrap, 'started');
      const finished = once(bootstrap, 'finished');
      assert.deepEqual(await packed.bootstrapPack(), { address: '127.0.0.1', port });
      assert.equal((await started)[0], 'packed');
      const [, summary] = await finished;
      assert.deepEqual(summary.device, { format: 'application/senml+cbor', written: ['/0/1', '/1/0'], notes: ['Bootstrap-Pack-Request'] });
      assert.deepEqual(summary.servers, [{ uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec', shortServerId: 7, lifetime: 120, binding: 'U' }]);
      const sessioned = await fresh('sessioned');
      await sessioned.bootstrap();
      // The same accounts as a session writes (the session found no bootstrap account, so its Security instance is /0/0).
      assert.deepEqual([...packed.objects.get(0).get(1)], [...sessioned.objects.get(0).get(0)]);
      assert.deepEqual([...packed.objects.get(1).get(0)].filter(([id]) => typeof id === 'number' && ![8, 9].includes(id)), [...sessioned.objects.get(1).get(0)].filter(([id]) => ![8, 9].includes(id)));
      assert.equal(packed.getResource('/1/0/0'), 7);
      assert.equal(packed.getResource('/3/0/0'), 'Acme', 'the Device object stays');
      const registered = once(server, 'registered');
      await packed.register();
      assert.equal((await registered)[0].endpoint, 'packed');
    });

    it('answers in SenML CBOR, SenML JSON or LwM2M CBOR as asked (read here by the cbor package), and 4.06 for another format', async () => {
      bootstrap.setConfig('formats', parseBootstrapConfig({ servers: [{ uri: 'coap://127.0.0.1:5683', shortServerId: 3 }], bootstrapServer: { uri: `coap://127.0.0.1:${bsPort}` } }));
      const raw = await RawPeer.open();
      try {
        const senmlCbor = await rawPack(raw, 'formats');
        assert.deepEqual([formatCode(senmlCbor.code), optionUint(senmlCbor, CF)], ['2.05', 112]);
        const records = cbor.decodeFirstSync(senmlCbor.payload);
        assert.deepEqual(records.slice(0, 3).map((r) => [r.get(0), r.get(3) ?? r.get(4) ?? r.get(2)]), [['/0/0/0', `coap://127.0.0.1:${bsPort}`], ['/0/0/1', true], ['/0/0/2', 3]]);
        assert.ok(records.some((r) => r.get(0) === '/0/1/10' && r.get(2) === 3), 'the server account in /0/1 with its short server id');
        const json = await rawPack(raw, 'formats', 110);
        assert.equal(optionUint(json, CF), 110);
        assert.ok(JSON.parse(json.payload.toString()).some((r) => r.n === '/1/0/0' && r.v === 3));
        const lwm2mCbor = await rawPack(raw, 'formats', 11544);
        assert.equal(optionUint(lwm2mCbor, CF), 11544);
        const tree = cbor.decodeFirstSync(lwm2mCbor.payload);
        assert.deepEqual([tree.get(0).get(0).get(1), tree.get(0).get(1).get(10), tree.get(1).get(0).get(0)], [true, 3, 3]);
        const refused = await rawPack(raw, 'formats', 11542);
        assert.equal(formatCode(refused.code), '4.06');
        assert.match(refused.payload.toString(), /SenML CBOR \(112\), SenML JSON \(110\) or LwM2M CBOR \(11544\)/);
      } finally {
        await raw.close();
      }
      const d = await fresh('formats');
      await d.bootstrapPack(11544);
      assert.equal(d.getResource('/0/1/0'), 'coap://127.0.0.1:5683');
    });

    it('sends a large configuration in Block2 blocks with an ETag that changes with the configuration', async () => {
      const servers = Array.from({ length: 12 }, (_, i) => ({ uri: `coap://server-number-${i}.streetlights.example.com:5683`, shortServerId: i + 1 }));
      bootstrap.setConfig('large', parseBootstrapConfig({ servers }));
      const raw = await RawPeer.open();
      let etag;
      try {
        const first = await rawPack(raw, 'large');
        const block = optionUint(first, BLOCK2);
        assert.deepEqual([block >> 4, (block >> 3) & 1, block & 7], [0, 1, 6], 'block 0 of 1024 bytes, more to come');
        assert.ok(optionUint(first, SIZE2) > 1024);
        etag = optionValue(first, ETAG);
        assert.equal(etag.length, 8);
        const second = await rawPack(raw, 'large', undefined, (1 << 4) | 6);
        assert.deepEqual(optionValue(second, ETAG), etag, 'the same representation');
        bootstrap.setConfig('large', parseBootstrapConfig({ servers: servers.slice(0, 11) }));
        const changed = await rawPack(raw, 'large', undefined, (1 << 4) | 6);
        assert.notDeepEqual(optionValue(changed, ETAG), etag, 'a new ETag for a new configuration');
      } finally {
        await raw.close();
      }
      const finished = [];
      bootstrap.on('finished', (endpoint) => finished.push(endpoint));
      const d = await fresh('large');
      await d.bootstrapPack(112);
      assert.equal([...d.objects.get(0).keys()].length, 11);
      assert.equal(d.getResource('/0/11/0'), 'coap://server-number-10.streetlights.example.com:5683');
      assert.deepEqual(finished, ['large'], 'reported once, not per block');
    });

    it('refuses as a Bootstrap-Request would: an unknown endpoint (4.00), an endpoint whose bootstrap account needs DTLS over plain UDP (4.03), POST (4.05)', async () => {
      bootstrap.setConfig('secured', parseBootstrapConfig({
        uri: 'coap://127.0.0.1:5683',
        bootstrapServer: { uri: 'coaps://127.0.0.1:5686', securityMode: 'psk', pskIdentity: 'secured-bs', pskKey: '0102030405060708' },
      }));
      const failed = [];
      bootstrap.on('failed', (endpoint, reason) => failed.push([endpoint, reason]));
      await assert.rejects((await fresh('stranger')).bootstrapPack(), (error) => error.responseCode === '4.00');
      await assert.rejects((await fresh('secured')).bootstrapPack(), (error) => error.responseCode === '4.03');
      assert.deepEqual(failed.map(([endpoint]) => endpoint), ['stranger', 'secured']);
      assert.match(failed[0][1], /no bootstrap configuration for "stranger"/);
      const raw = await RawPeer.open();
      try {
        const post = decode(await raw.exchange(encode({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), options: [{ number: URI_PATH, value: Buffer.from('bspack') }], payload: Buffer.alloc(0) }), bsPort));
        assert.equal(formatCode(post.code), '4.05');
      } finally {
        await raw.close();
      }
    });

    it('provisions over DTLS the device its bootstrap account names, which then registers over DTLS', async () => {
      const lwm2m = new Lwm2mServer({ address: '127.0.0.1', secure: { port: 0 }, transmission: FAST });
      const [bound] = await lwm2m.start();
      const secureBootstrap = new BootstrapServer({ address: '127.0.0.1', secure: { port: 0 }, transmission: FAST });
      const key = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
      lwm2m.security.set('meter-9', { mode: 'psk', identity: 'meter-9-id', key });
      secureBootstrap.setConfig('meter-9', parseBootstrapConfig({
        servers: [{ uri: `coaps://127.0.0.1:${bound.port}`, securityMode: 'psk', pskIdentity: 'meter-9-id', pskKey: key.toString('hex'), shortServerId: 4 }],
        bootstrapServer: { uri: 'coaps://127.0.0.1:5686', securityMode: 'psk', pskIdentity: 'bs-meter-9', pskKey: '0a0b0c0d' },
      }));
      try {
        const [bsBound] = await secureBootstrap.start();
        const bsPeer = { address: '127.0.0.1', port: bsBound.port };
        const d = new SimulatedDevice({ endpoint: 'meter-9', server: bsPeer, bootstrapServer: bsPeer, transmission: FAST, lwm2mVersion: '1.2', dtls: { identity: 'bs-meter-9', key: Buffer.from('0a0b0c0d', 'hex') } });
        await d.start();
        devices.push(d);
        assert.deepEqual(await d.bootstrapPack(), { address: '127.0.0.1', port: bound.port });
        assert.deepEqual(d.getResource('/0/1/5'), key, 'the key, to the device that proved its identity');
        const registered = once(lwm2m, 'registered');
        await d.register();
        const [registration] = await registered;
        assert.deepEqual([registration.transport, registration.identity.identity], ['dtls', 'meter-9-id']);
      } finally {
        await secureBootstrap.stop();
        await lwm2m.stop();
      }
    });
  });

  describe('Register parameters of LwM2M 1.2 (item 5)', () => {
    const register = (d, query) => d.send(2, '/rd', { query: { ep: d.options.endpoint, ...query }, payload: Buffer.from('</1/0>,</3/0>'), contentFormat: 40 });

    it('records the TCP binding T (and UT) of 1.1 and 1.2 clients, the 1.2 letters M and H, and keeps pid', async () => {
      for (const [lwm2m, b] of [['1.1', 'T'], ['1.1', 'UT'], ['1.2', 'T'], ['1.2', 'UT'], ['1.2', 'MH']]) {
        const d = await device(`bind-${lwm2m}-${b}`, { lwm2mVersion: lwm2m, binding: b });
        const registration = server.registrations.getByEndpoint(d.options.endpoint);
        assert.equal(registration.binding, b, `${lwm2m} ${b}`);
        assert.equal(registrationToJson(registration).binding, b);
      }
      const profiled = await device('profiled-1.2', { lwm2mVersion: '1.2' });
      await profiled.update({ pid: 'lamp-v2' });
      assert.equal(registrationToJson(server.registrations.getByEndpoint('profiled-1.2')).profileId, 'lamp-v2');
    });

    it('refuses bindings a version does not define (4.00) and versions other than 1.0-1.2 (4.12), with the reason', async () => {
      const d = new SimulatedDevice({ endpoint: 'x', server: { address: '127.0.0.1', port }, transmission: FAST });
      await d.start();
      devices.push(d);
      for (const [query, code, pattern] of [
        [{ lwm2m: '1.0', b: 'T' }, '4.00', /LwM2M 1\.0 knows U, UQ, S, SQ, US and UQS/],
        [{ lwm2m: '1.1', b: 'M' }, '4.00', /LwM2M 1\.1 knows each of U, S, N, T at most once/],
        [{ lwm2m: '1.2', b: 'UQ' }, '4.00', /queue mode is the Q parameter/],
        [{ lwm2m: '1.3' }, '4.12', /LwM2M version 1\.3 is not supported \(supported: 1\.0, 1\.1, 1\.2\)/],
        [{ lwm2m: '2.0' }, '4.12', /LwM2M version 2\.0 is not supported/],
      ]) {
        const rejected = once(server, 'malformed');
        const answer = await register(d, query);
        assert.equal(formatCode(answer.code), code, JSON.stringify(query));
        // The reason in full in the event; to the device (an address the server has not heard back from) cut to the size of its request.
        const [{ reason }] = await rejected;
        assert.match(reason, pattern);
        assert.ok(reason.startsWith(`${code} ${answer.payload.toString()}`), `${answer.payload} starts ${reason}`);
      }
    });
  });

  describe('object versions (item 7)', () => {
    const lamp = (values) => buildObjectTree({ 3: { 0: { 0: 'Acme' } }, 3416: { 0: values } });

    it('holds every version of the registry\'s objects, sharing identical resource definitions between them', () => {
      assert.deepEqual(model.versionsOf(3).map((o) => o.version), ['1.0', '1.1', '1.2']);
      assert.deepEqual(model.versionsOf(21).map((o) => o.version), ['1.0', '1.1', '2.0']);
      assert.deepEqual([model.getObject(21, '1.0').resources[0].type, model.getObject(21).resources[0].type], ['string', 'opaque']);
      assert.equal(model.getObject(3, '1.0').resources[0], model.getObject(3, '1.2').resources[0], 'one object for an identical definition');
      // A version the model lacks: the newest of the same major version, else the newest.
      assert.deepEqual([model.getObject(3, '1.5').version, model.getObject(21, '3.0').version, model.getObject(3416, '1.9').version], ['1.2', '2.0', '1.0']);
      const size = fs.statSync(path.join(__dirname, '..', 'dist', 'lib', 'model', 'oma-registry.json')).size;
      assert.ok(size < 985_000, `the registry with every version (${size} bytes) is smaller than the newest versions were alone`);
    });

    it('types and names values by the version a device announced: </3416>;ver=1.0 and ver=2.0 read in TLV', async () => {
      const v1 = await device('lamp-v1', { lwm2mVersion: '1.1', objectVersions: { 3416: '1.0' }, objects: lamp({ 15: 1200, 39: 'warm' }) });
      const v2 = await device('lamp-v2', { lwm2mVersion: '1.1', objectVersions: { 3416: '2.0' }, objects: lamp({ 15: 1200.5, 39: 3000 }) });
      assert.match(v1.objectLinks(), /<\/3416>;ver=1\.0/);
      // TLV carries no types: "warm" read as the integer of version 2.0 would be 2003923565.
      const old = await server.send('lamp-v1', new ReadRequest(P('/3416/0'), 11542));
      assert.deepEqual(recordsToPayload(old.records, P('/3416/0')), { 15: 1200, 39: 'warm' });
      assert.deepEqual(namedRecords(old.records, server.modelFor('lamp-v1')).map((r) => [r.name, r.type]), [['Lamp operating hours', 'integer'], ['Light color temperature command', 'string']]);
      const current = await server.send('lamp-v2', new ReadRequest(P('/3416/0'), 11542));
      assert.deepEqual(recordsToPayload(current.records, P('/3416/0')), { 15: 1200.5, 39: 3000 });
      // Writes are checked against the device's version.
      await server.send('lamp-v1', new WriteRequest(P('/3416/0/39'), payloadToRecords('cold', P('/3416/0/39'), server.modelFor('lamp-v1'))));
      assert.equal(v1.getResource('/3416/0/39'), 'cold');
      assert.throws(() => payloadToRecords('cold', P('/3416/0/39'), server.modelFor('lamp-v2')), /is integer: "cold" is not an integer/);
      await server.send('lamp-v2', new WriteRequest(P('/3416/0/39'), payloadToRecords(2700, P('/3416/0/39'), server.modelFor('lamp-v2')), 'replace', 11542));
      assert.equal(v2.getResource('/3416/0/39'), 2700);
    });

    it('types observations and Send by the device\'s version too', async () => {
      const d = await device('lamp-obs', { lwm2mVersion: '1.1', objectVersions: { 3416: '1.0' }, objects: lamp({ 15: 10, 39: 'warm' }) });
      const events = [];
      await server.observe('lamp-obs', new ObserveRequest(P('/3416/0'), 11542), listener(events));
      await d.setResource('/3416/0/39', 'neutral');
      await until(() => events.length === 1, 2000, 'the notification');
      assert.deepEqual(recordsToPayload(events[0].records, P('/3416/0')), { 15: 10, 39: 'neutral' });
      assert.equal(events[0].model.getObject(3416).version, '1.0');
      const sent = once(server, 'send');
      await d.sendValues(['/3416/0/39'], 112);
      const [, records] = await sent;
      assert.deepEqual(records.map((r) => [r.path.toString(), r.value, r.type]), [['/3416/0/39', 'neutral', 'string']]);
    });

    it('takes what a client\'s LwM2M version implies for objects without ver, and shares one view between devices that select the same versions', async () => {
      await device('v10', { lwm2mVersion: '1.0', binding: 'U' });
      await device('v11', { lwm2mVersion: '1.1' });
      await device('v12', { lwm2mVersion: '1.2' });
      assert.deepEqual(['v10', 'v11', 'v12'].map((e) => server.modelFor(e).getObject(1).version), ['1.0', '1.1', '1.2']);
      assert.deepEqual(['v10', 'v11', 'v12'].map((e) => server.modelFor(e).getObject(3).version), ['1.0', '1.1', '1.1']);
      await device('twin-a', { objectVersions: { 3416: '1.0' }, objects: lamp({ 15: 1 }) });
      await device('twin-b', { objectVersions: { 3416: '1.0' }, objects: lamp({ 15: 2 }) });
      assert.equal(server.modelFor('twin-a'), server.modelFor('twin-b'));
      const newest = await device('newest', { lwm2mVersion: '1.2', objectVersions: { 1: '1.2', 3: '1.2' }, objects: buildObjectTree({ 3: { 0: { 0: 'x' } } }) });
      assert.ok(newest);
      assert.equal(server.modelFor('newest'), server.model, 'newest versions: the model itself');
      assert.equal(server.modelFor('nobody'), server.model);
    });

    it('reads several versions of one object from a folder of DDF files, and reports a version defined twice', () => {
      const folder = path.join(__dirname, 'fixtures', 'versioned-objects');
      const { model: custom, problems } = ObjectModel.fromFolder(folder);
      assert.deepEqual(problems, []);
      assert.deepEqual(custom.versionsOf(31024).map((o) => o.version), ['1.0', '2.0']);
      const v1 = custom.forDevice({ objects: [{ id: 31024, version: '1.0' }], lwm2mVersion: '1.1' });
      assert.deepEqual([v1.getResource(31024, 1).name, v1.getResource(31024, 1).type, custom.getResource(31024, 1).type], ['Test', 'integer', 'string']);
      const twice = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ddf-twice-'));
      try {
        fs.copyFileSync(path.join(folder, '31024-1_0.xml'), path.join(twice, 'a.xml'));
        fs.copyFileSync(path.join(folder, '31024-1_0.xml'), path.join(twice, 'b.xml'));
        assert.deepEqual(ObjectModel.fromFolder(twice).problems, ['b.xml: object 31024 version 1.0 is defined in a.xml too; b.xml is used']);
      } finally {
        fs.rmSync(twice, { recursive: true, force: true });
      }
    });
  });
});
