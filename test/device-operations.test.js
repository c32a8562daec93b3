'use strict';
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { WriteRequest } = require('../dist/lib/lwm2m/requests/write');
const { ExecuteRequest } = require('../dist/lib/lwm2m/requests/execute');
const { CreateRequest } = require('../dist/lib/lwm2m/requests/create');
const { DeleteRequest } = require('../dist/lib/lwm2m/requests/delete');
const { DiscoverRequest } = require('../dist/lib/lwm2m/requests/discover');
const { WriteAttributesRequest } = require('../dist/lib/lwm2m/requests/write-attributes');
const { ReadCompositeRequest, WriteCompositeRequest } = require('../dist/lib/lwm2m/requests/composite');
const { DeviceRequestError } = require('../dist/lib/lwm2m/device-client');
const { recordsToPayload, payloadToRecords } = require('../dist/lib/content/payload');
const { ObjectModel } = require('../dist/lib/model/object-model');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encode, decode } = require('../dist/lib/coap/message');
const { freePort, RawPeer } = require('./support/udp');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };
const P = (text) => Lwm2mPath.parse(text);
const model = ObjectModel.builtIn();
const FORMATS = { tlv: 11542, 'lwm2m-json': 11543, 'senml-json': 110, 'senml-cbor': 112, 'lwm2m-cbor': 11544 };

describe('LwM2M operations against a simulated device', () => {
  let server;
  let device;
  let rebooted;

  async function start(options = {}) {
    const port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST, client: { defaultTimeoutMs: 2000 } });
    await server.start();
    device = new SimulatedDevice({ endpoint: 'dev', server: { address: '127.0.0.1', port }, transmission: FAST, ...options });
    await device.start();
    await device.register();
  }

  beforeEach(async () => {
    rebooted = [];
    await start();
    device.objects.get(3).get(0).set(4, (args) => rebooted.push(args));
  });

  afterEach(async () => {
    await device.stop();
    await server.stop();
  });

  it('reads a single resource as text and types it by the model', async () => {
    const response = await server.send('dev', new ReadRequest(P('/3/0/9')));
    assert.equal(response.code, '2.05');
    assert.equal(response.contentFormat, 0);
    assert.equal(recordsToPayload(response.records, P('/3/0/9')), 100);
    assert.equal(response.raw.toString(), '100');
  });

  for (const [name, format] of Object.entries(FORMATS)) {
    it(`reads an instance, an object and a multiple resource in ${name}`, async () => {
      let response = await server.send('dev', new ReadRequest(P('/3/0'), format));
      assert.equal(response.contentFormat, format);
      const instance = recordsToPayload(response.records, P('/3/0'));
      assert.equal(instance[0], 'Node-RED LwM2M');
      assert.deepEqual(instance[6], { 0: 1, 1: 5 });
      assert.ok(instance[13] instanceof Date);
      response = await server.send('dev', new ReadRequest(P('/3303'), format));
      assert.deepEqual(recordsToPayload(response.records, P('/3303')), { 0: { 5700: 21.5, 5701: 'Cel', 5601: 18.25, 5602: 24.75 } });
      response = await server.send('dev', new ReadRequest(P('/3/0/7'), format));
      assert.deepEqual(recordsToPayload(response.records, P('/3/0/7')), { 0: 3800, 1: 5000 });
    });

    it(`writes (replace and partial update) in ${name}`, async () => {
      await server.send('dev', new WriteRequest(P('/1/0'), payloadToRecords({ Lifetime: 300, 7: 'UQ' }, P('/1/0'), model), 'update', format));
      assert.equal(device.getResource('/1/0/1'), 300);
      assert.equal(device.getResource('/1/0/7'), 'UQ');
      await server.send('dev', new WriteRequest(P('/3308/0/5900'), payloadToRecords(-3.5, P('/3308/0/5900'), model), 'replace', format));
      assert.equal(device.getResource('/3308/0/5900'), -3.5);
    });
  }

  it('writes a single resource as text by default and opaque as octet-stream', async () => {
    await server.send('dev', new WriteRequest(P('/1/0/1'), payloadToRecords(120, P('/1/0/1'), model)));
    assert.equal(device.received.at(-1).contentFormat, 0);
    assert.equal(device.getResource('/1/0/1'), 120);
    device.objects.set(5, new Map([[0, new Map([[0, Buffer.alloc(0)]])]]));
    await server.send('dev', new WriteRequest(P('/5/0/0'), payloadToRecords(Buffer.from([1, 2, 3]), P('/5/0/0'), model)));
    assert.equal(device.received.at(-1).contentFormat, 42);
    assert.deepEqual(device.getResource('/5/0/0'), Buffer.from([1, 2, 3]));
  });

  it('asks for the best format the device advertised when reading several values', async () => {
    const response = await server.send('dev', new ReadRequest(P('/3/0')));
    assert.equal(response.contentFormat, 11544);
    assert.equal((await server.send('dev', new ReadRequest(P('/3/0/7')))).contentFormat, 11544, 'a multiple resource');
    assert.equal((await server.send('dev', new ReadRequest(P('/3/0/9')))).contentFormat, 0, 'one value: the device chooses');
    await device.stop();
    await start({ lwm2mVersion: '1.0', contentFormats: [0, 42, 11542, 11543] });
    assert.equal((await server.send('dev', new ReadRequest(P('/3303/0')))).contentFormat, 11542);
  });

  it('picks the best format the device advertised for several values', async () => {
    await server.send('dev', new WriteRequest(P('/1/0'), payloadToRecords({ 1: 90 }, P('/1/0'), model), 'update'));
    assert.equal(device.received.at(-1).contentFormat, 11544);
    await device.stop();
    await start({ lwm2mVersion: '1.0', contentFormats: [0, 42, 11542] });
    await server.send('dev', new WriteRequest(P('/1/0'), payloadToRecords({ 1: 90 }, P('/1/0'), model), 'update'));
    assert.equal(device.received.at(-1).contentFormat, 11542);
  });

  it('executes with and without arguments', async () => {
    await server.send('dev', new ExecuteRequest(P('/3/0/4')));
    await server.send('dev', new ExecuteRequest(P('/3/0/4'), { 0: 'now', 1: null }));
    assert.deepEqual(rebooted, ['', "0='now',1"]);
  });

  it('creates and deletes an instance, choosing a free instance id', async () => {
    const created = await server.send('dev', new CreateRequest(P('/3303'), payloadToRecords({ 5700: 30, 5701: 'Cel' }, P('/3303/1'), model)));
    assert.equal(created.code, '2.01');
    assert.equal(created.instanceId, 1);
    assert.equal(device.getResource('/3303/1/5700'), 30);
    assert.equal(CreateRequest.instanceFor(3303, undefined, { registration: server.registrations.getByEndpoint('dev') }), 1);
    await server.send('dev', new DeleteRequest(P('/3303/1')));
    assert.equal(device.objects.get(3303).has(1), false);
  });

  it('discovers with attributes and depth', async () => {
    await server.send('dev', new WriteAttributesRequest(P('/3303/0/5700'), { pmin: 5, pmax: 60, gt: 30, lt: 10, st: 1 }));
    let response = await server.send('dev', new DiscoverRequest(P('/3303')));
    const paths = response.links.map((l) => l.path);
    assert.deepEqual(paths, ['/3303', '/3303/0', '/3303/0/5601', '/3303/0/5602', '/3303/0/5700', '/3303/0/5701']);
    const sensor = response.links.find((l) => l.path === '/3303/0/5700');
    assert.deepEqual({ ...sensor.attributes }, { pmin: '5', pmax: '60', gt: '30', lt: '10', st: '1' });
    response = await server.send('dev', new DiscoverRequest(P('/3'), 1));
    assert.deepEqual(response.links.map((l) => l.path), ['/3', '/3/0']);
    await server.send('dev', new WriteAttributesRequest(P('/3303/0/5700'), { pmin: null }));
    assert.equal(device.attributes.get('/3303/0/5700').pmin, undefined);
  });

  for (const format of [110, 112]) {
    it(`reads and writes composite in ${format}`, async () => {
      const read = await server.send('dev', new ReadCompositeRequest([P('/3/0/0'), P('/3303/0/5700'), P('/1/0')], format));
      assert.deepEqual(recordsToPayload(read.records, Lwm2mPath.ROOT)[3], { 0: { 0: 'Node-RED LwM2M' } });
      assert.equal(recordsToPayload(read.records, Lwm2mPath.ROOT)[3303][0][5700], 21.5);
      assert.equal(recordsToPayload(read.records, Lwm2mPath.ROOT)[1][0][1], 60);
      const records = [...payloadToRecords(45, P('/1/0/1'), model), ...payloadToRecords(0.5, P('/3308/0/5900'), model)];
      await server.send('dev', new WriteCompositeRequest(records, format));
      assert.equal(device.getResource('/1/0/1'), 45);
      assert.equal(device.getResource('/3308/0/5900'), 0.5);
    });
  }

  it('fetches a large answer in Block2 blocks and sends a large write in Block1 blocks', async () => {
    const long = 'x'.repeat(3000);
    device.setResource('/3/0/0', long);
    const read = await server.send('dev', new ReadRequest(P('/3/0/0')));
    assert.equal(recordsToPayload(read.records, P('/3/0/0')), long);
    assert.ok(device.received.filter((r) => r.message.options.some((o) => o.number === 23)).length >= 2, 'Block2 used');

    device.objects.get(3).get(0).set(15, '');
    await server.send('dev', new WriteRequest(P('/3/0/14'), payloadToRecords('+'.repeat(2000), P('/3/0/14'), model)));
    assert.equal(device.getResource('/3/0/14'), '+'.repeat(2000));
  });

  it('follows the alternate root path', async () => {
    await device.stop();
    await start({ rootPath: '/lwm2m' });
    const response = await server.send('dev', new ReadRequest(P('/3303/0/5700')));
    assert.equal(recordsToPayload(response.records, P('/3303/0/5700')), 21.5);
    assert.equal(device.received.at(-1).path, '/lwm2m/3303/0/5700');
  });

  describe('errors', () => {
    const rejects = (promise, kind, pattern) =>
      assert.rejects(promise, (error) => {
        assert.ok(error instanceof DeviceRequestError, String(error));
        assert.equal(error.kind, kind);
        assert.match(error.message, pattern);
        return true;
      });

    it('an unknown endpoint', () => rejects(server.send('ghost', new ReadRequest(P('/3/0/0'))), 'unknown-endpoint', /"ghost" is not registered/));

    it('a device error code with its diagnostic', async () => {
      await rejects(server.send('dev', new ReadRequest(P('/3/0/99'))), 'device-error', /4\.04 Not Found: no resource \/3\/0\/99/);
      await rejects(server.send('dev', new ReadRequest(P('/3303/0'), 60)), 'device-error', /4\.06/);
    });

    it('a value of the wrong type or a read-only resource, before anything is sent', async () => {
      const before = device.received.length;
      await rejects(server.send('dev', new WriteRequest(P('/3/0/0'), [{ path: P('/3/0/0'), type: 'string', value: 'x' }])), 'invalid-request', /Manufacturer\) is not writable/);
      await rejects(server.send('dev', new ExecuteRequest(P('/3/0/9'))), 'invalid-request', /not executable/);
      assert.equal(device.received.length, before);
    });

    it('a device that does not answer', async () => {
      await device.stop();
      const started = Date.now();
      await rejects(server.send('dev', new ReadRequest(P('/3/0/0')), { timeoutMs: 500 }), 'timeout', /no (response|acknowledgement)/);
      assert.ok(Date.now() - started < 1500);
    });

    it('runs one request at a time per device, in order', async () => {
      const results = await Promise.all([0, 1, 2, 3].map((i) => server.send('dev', new WriteRequest(P('/1/0/1'), payloadToRecords(100 + i, P('/1/0/1'), model)))));
      assert.equal(results.length, 4);
      assert.equal(device.getResource('/1/0/1'), 103);
    });
  });

  describe('a misbehaving device', () => {
    let raw;
    let location;

    beforeEach(async () => {
      raw = await RawPeer.open();
      const register = encode({
        type: 0, code: 2, messageId: 1, token: Buffer.from([1]),
        options: [{ number: 11, value: Buffer.from('rd') }, { number: 15, value: Buffer.from('ep=bad') }, { number: 15, value: Buffer.from('lwm2m=1.1') }],
        payload: Buffer.from('</>;ct="0 11542",</3/0>'),
      });
      const reply = decode(await raw.exchange(register, server.coap.plain.address.port));
      location = reply.options.map((o) => o.value.toString()).join('/');
      assert.match(location, /^rd\//);
    });

    afterEach(() => raw.close());

    async function answerNext(build) {
      const request = decode(await raw.next(2000));
      await raw.send(encode({ type: 2, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0), ...build(request) }), server.coap.plain.address.port);
    }

    for (const [name, response, pattern] of [
      ['TLV that runs past its end', { code: 69, options: [{ number: 12, value: Buffer.from([0x2d, 0x16]) }], payload: Buffer.from('c8001441', 'hex') }, /runs past the end/],
      ['text that is not a number for an integer', { code: 69, payload: Buffer.from('lots') }, /is not an integer/],
      ['a content format nobody knows', { code: 69, options: [{ number: 12, value: Buffer.from([0x30, 0x39]) }], payload: Buffer.from('?') }, /content format 12345/],
      ['a success code that does not fit', { code: 68 }, /2\.04 where 2\.05 was expected/],
    ]) {
      it(`answers a clear error for ${name}`, async () => {
        const pending = server.send('bad', new ReadRequest(P('/3/0/9')));
        await answerNext(() => response);
        await assert.rejects(pending, (error) => error.kind === 'invalid-response' && pattern.test(error.message));
      });
    }

    it('rejects an answer with the wrong token and waits for the right one', async () => {
      const pending = server.send('bad', new ReadRequest(P('/3/0/9')), { timeoutMs: 1500 });
      const request = decode(await raw.next(2000));
      await raw.send(encode({ type: 2, code: 69, messageId: request.messageId, token: Buffer.from([9, 9]), options: [], payload: Buffer.from('1') }), server.coap.plain.address.port);
      await raw.send(encode({ type: 2, code: 69, messageId: request.messageId, token: request.token, options: [], payload: Buffer.from('7') }), server.coap.plain.address.port);
      assert.equal(recordsToPayload((await pending).records, P('/3/0/9')), 7);
    });
  });
});
