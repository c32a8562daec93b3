'use strict';
// Content as real LwM2M clients put it on the wire (issue 15): bytes quoted from the
// issue and from RFCs, or written by the independent cbor package, sent from a raw
// UDP socket as the device's answers, notifications and Sends to a running server.
const assert = require('node:assert/strict');
const cbor = require('cbor');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { ObserveRequest, ObserveCompositeRequest } = require('../dist/lib/lwm2m/requests/observe');
const { ReadCompositeRequest } = require('../dist/lib/lwm2m/requests/composite');
const { WriteAttributesRequest } = require('../dist/lib/lwm2m/requests/write-attributes');
const { CreateRequest } = require('../dist/lib/lwm2m/requests/create');
const { ExecuteRequest } = require('../dist/lib/lwm2m/requests/execute');
const { recordsToPayload } = require('../dist/lib/content/payload');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encode, decode } = require('../dist/lib/coap/message');
const { freePort, RawPeer, once } = require('./support/udp');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };
const P = (text) => Lwm2mPath.parse(text);
const CF = 12;
const OBSERVE = 6;
const LOCATION_PATH = 8;
const URI_PATH = 11;
const URI_QUERY = 15;
const ACCEPT = 17;
const optionValue = (message, number) => message.options.find((o) => o.number === number)?.value;
const optionUint = (message, number) => {
  const value = optionValue(message, number);
  return value === undefined ? undefined : value.length === 0 ? 0 : value.readUIntBE(0, value.length);
};
const uint = (n) => (n === 0 ? Buffer.alloc(0) : n < 256 ? Buffer.from([n]) : Buffer.from([n >> 8, n & 0xff]));
/** {_ [3, 0, 0]: "hello"}: how a LwM2M 1.2 client answers a read of /3/0/0 (issue 15). */
const INDEFINITE_HELLO = Buffer.from('bf830300006568656c6c6fff', 'hex');

describe('content from real clients, on a real socket', () => {
  let server;
  let port;
  let raw;
  let messageId;

  /** A raw socket registered as endpoint with the given ct and version. */
  async function registerRaw(endpoint, { ct = '0 60 110 112 11542 11543 11544', version = '1.2', links = '</3/0>,</3303/0>' } = {}) {
    raw = await RawPeer.open();
    messageId = 100;
    const register = encode({
      type: 0, code: 2, messageId: messageId++, token: Buffer.from([1]),
      options: [{ number: URI_PATH, value: Buffer.from('rd') }, { number: 15, value: Buffer.from(`ep=${endpoint}`) }, { number: 15, value: Buffer.from(`lwm2m=${version}`) }],
      payload: Buffer.from(ct === null ? links : `</>;ct="${ct}",${links}`),
    });
    assert.equal(decode(await raw.exchange(register, port)).code, 65);
  }

  /** The server's next request to the raw device, answered by build(request) in a piggybacked ACK. */
  async function answerNext(build) {
    const request = decode(await raw.next(2000));
    await raw.send(encode({ type: 2, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0), ...build(request) }), port);
    return request;
  }

  beforeEach(async () => {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST, client: { defaultTimeoutMs: 2000 } });
    await server.start();
  });

  afterEach(async () => {
    if (raw) await raw.close();
    raw = undefined;
    await server.stop();
  });

  describe('LwM2M CBOR with indefinite lengths (RFC 8949 section 3.2.2)', () => {
    it('reads {_ [3,0,0]: "hello"} as the answer to a read of /3/0/0', async () => {
      await registerRaw('cbor-read');
      const pending = server.send('cbor-read', new ReadRequest(P('/3/0/0')));
      await answerNext(() => ({ code: 69, options: [{ number: CF, value: uint(11544) }], payload: INDEFINITE_HELLO }));
      const response = await pending;
      assert.equal(response.contentFormat, 11544);
      assert.equal(recordsToPayload(response.records, P('/3/0/0')), 'hello');
    });

    it('observes with an indefinite first answer and indefinite notifications written by the cbor package', async () => {
      await registerRaw('cbor-observe');
      const notifications = [];
      const errors = [];
      const listener = { notify: (event) => notifications.push(event), error: (error) => errors.push(error), ended: () => {} };
      const pending = server.observe('cbor-observe', new ObserveRequest(P('/3/0')), listener);
      const request = await answerNext(() => ({ code: 69, options: [{ number: OBSERVE, value: uint(1) }, { number: CF, value: uint(11544) }], payload: INDEFINITE_HELLO }));
      const { first } = await pending;
      assert.deepEqual(recordsToPayload(first.records, P('/3/0')), { 0: 'hello' });
      // {_ [3, 0]: {_ 0: (_ "wor", "ld"), 9: 42}} as the cbor package writes it with indefinite lengths.
      const inner = new Map([[0, { encodeCBOR: (gen) => cbor.Encoder.encodeIndefinite(gen, 'world', { chunkSize: 3 }) }], [9, 42]]);
      inner.encodeCBOR = cbor.Encoder.encodeIndefinite;
      const outer = new Map([[[3, 0], inner]]);
      outer.encodeCBOR = cbor.Encoder.encodeIndefinite;
      const payload = cbor.encode(outer);
      assert.equal(payload.toString('hex'), 'bf8203 00bf007f63776f72626c64ff09182aff ff'.replace(/ /g, ''));
      await raw.send(encode({ type: 1, code: 69, messageId: messageId++, token: request.token, options: [{ number: OBSERVE, value: uint(2) }, { number: CF, value: uint(11544) }], payload }), port);
      const deadline = Date.now() + 2000;
      while (notifications.length === 0 && errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(errors, []);
      assert.deepEqual(recordsToPayload(notifications[0].records, P('/3/0')), { 0: 'world', 9: 42 });
    });

    it('takes a Send of indefinite LwM2M CBOR, and refuses one without its break with 4.00 and the reason', async () => {
      await registerRaw('cbor-send');
      const send = (mid, payload) =>
        raw.exchange(encode({ type: 0, code: 2, messageId: mid, token: Buffer.from([mid & 0xff]), options: [{ number: URI_PATH, value: Buffer.from('dp') }, { number: CF, value: uint(11544) }], payload }), port);
      const sent = once(server, 'send');
      const answer = decode(await send(500, INDEFINITE_HELLO));
      assert.equal(answer.code, 68);
      const [registration, records, format] = await sent;
      assert.equal(registration.endpoint, 'cbor-send');
      assert.equal(format, 11544);
      assert.deepEqual(recordsToPayload(records, Lwm2mPath.ROOT), { 3: { 0: { 0: 'hello' } } });
      const refused = decode(await send(501, INDEFINITE_HELLO.subarray(0, -1)));
      assert.equal(refused.code, 128);
      assert.match(refused.payload.toString(), /ends before the break of an indefinite-length map/);
    });
  });

  describe('SenML base fields (RFC 8428 section 4.1)', () => {
    it('gives both values of the Send in the issue the base time of the first record', async () => {
      await registerRaw('senml-send');
      const sent = once(server, 'send');
      const payload = Buffer.from('[{"n":"/3/0/0","bt":1795769114.53,"vs":"x"},{"n":"/3/0/9","v":0}]');
      const answer = decode(await raw.exchange(encode({ type: 0, code: 2, messageId: 600, token: Buffer.from([6]), options: [{ number: URI_PATH, value: Buffer.from('dp') }, { number: CF, value: uint(110) }], payload }), port));
      assert.equal(answer.code, 68);
      const [, records] = await sent;
      assert.deepEqual(records.map((r) => [r.path.toString(), r.value, r.timestamp]), [
        ['/3/0/0', 'x', 1795769114.53],
        ['/3/0/9', 0, 1795769114.53],
      ]);
    });
  });

  describe('Execute arguments by the LwM2M ABNF', () => {
    it("sends 0='a,b' as it is, a comma inside the quotes, and refuses 0='a b' without sending anything", async () => {
      await registerRaw('exec');
      assert.throws(() => new ExecuteRequest(P('/3/0/4'), "0='a b'"), /" " at character 4 is not allowed in a value/);
      const pending = server.send('exec', new ExecuteRequest(P('/3/0/4'), "0='a,b',1"));
      const request = await answerNext(() => ({ code: 68 }));
      assert.equal(request.payload.toString('latin1'), "0='a,b',1");
      assert.equal((await pending).code, '2.04');
      assert.equal(await raw.next(200), undefined);
    });
  });

  describe('formats (issue 15 item 14, issue 21 items 1 and 2)', () => {
    const SENML_ANSWER = '[{"n":"/3/0/9","v":88},{"n":"/3303/0/5700","v":21.5}]';
    /** The answer in the format asked for, SenML CBOR and LwM2M CBOR written by the cbor package (LwM2M CBOR keys as one id and as an array of ids). */
    const answerIn = (format) =>
      format === 110
        ? Buffer.from(SENML_ANSWER)
        : format === 112
          ? cbor.encode([new Map([[0, '/3/0/9'], [2, 88]]), new Map([[0, '/3303/0/5700'], [2, 21.5]])])
          : cbor.encode(new Map([[[3, 0, 9], 88], [3303, new Map([[0, new Map([[5700, 21.5]])]])]]));
    for (const [ct, body, accept] of [
      ['0 110 11542', 110, 110],
      ['0 60 110 112 11542 11543 11544', 112, 11544],
      ['0 11542', 110, 110],
      [null, 110, 110],
      ['0 110 320 11542', 320, 110],
      ['0 112 322 11542 11544', 322, 11544],
    ]) {
      it(`asks a device with ${ct === null ? 'no ct' : `ct="${ct}"`} for Observe-Composite and Read-Composite with the paths in ${body}, the values in ${accept}`, async () => {
        await registerRaw('composite', { ct });
        const answer = (request) => ({
          code: 69,
          options: [...(request.options.some((o) => o.number === OBSERVE) ? [{ number: OBSERVE, value: uint(1) }] : []), { number: CF, value: uint(accept) }],
          payload: answerIn(accept),
        });
        const paths = [P('/3/0/9'), P('/3303/0/5700')];
        const observing = server.observe('composite', new ObserveCompositeRequest(paths), { notify() {}, error() {}, ended() {} });
        const fetch = await answerNext(answer);
        const reading = server.send('composite', new ReadCompositeRequest(paths));
        const fetch2 = await answerNext(answer);
        for (const request of [fetch, fetch2]) {
          assert.equal(request.code, 5);
          assert.deepEqual([optionUint(request, CF), optionUint(request, ACCEPT)], [body, accept]);
        }
        // A Fetch Pack (RFC 8790 section 4) is records with names and no values, as a SenML pack of names.
        const names = body === 110 || body === 320 ? JSON.parse(fetch.payload.toString()).map((r) => r.n) : cbor.decodeFirstSync(fetch.payload).map((r) => r.get(0));
        assert.deepEqual(names, ['/3/0/9', '/3303/0/5700']);
        const { first } = await observing;
        assert.deepEqual(recordsToPayload(first.records, Lwm2mPath.ROOT), { 3: { 0: { 9: 88 } }, 3303: { 0: { 5700: 21.5 } } });
        assert.deepEqual(recordsToPayload((await reading).records, Lwm2mPath.ROOT), { 3: { 0: { 9: 88 } }, 3303: { 0: { 5700: 21.5 } } });
      });
    }

    it('writes attribute numbers in plain decimal, never in exponent form', async () => {
      await registerRaw('attributes');
      const pending = server.send('attributes', new WriteAttributesRequest(P('/3303/0/5700'), { gt: 1e21, lt: -1e21, st: 1e-7 }));
      const request = await answerNext(() => ({ code: 68 }));
      assert.deepEqual(request.options.filter((o) => o.number === URI_QUERY).map((o) => o.value.toString()), ['gt=1000000000000000000000', 'lt=-1000000000000000000000', 'st=0.0000001']);
      await pending;
    });

    for (const [name, target, payload, expected] of [
      ['opaque bytes for an opaque resource', '/5/0/0', Buffer.from([0x00, 0xff, 0x3d, 0x41]), Buffer.from([0x00, 0xff, 0x3d, 0x41])],
      ['TLV for an instance', '/3/0', Buffer.from('c800144f70656e204d6f62696c6520416c6c69616e6365c10964', 'hex'), { 0: 'Open Mobile Alliance', 9: 100 }],
      ['TLV for an integer', '/3/0/9', Buffer.from('c10964', 'hex'), 100],
      ['text for an integer', '/3/0/9', Buffer.from('100'), 100],
    ]) {
      it(`reads an answer without Content-Format by the path and the model: ${name}`, async () => {
        await registerRaw('no-format');
        const pending = server.send('no-format', new ReadRequest(P(target)));
        await answerNext(() => ({ code: 69, payload }));
        const response = await pending;
        assert.equal(response.contentFormat, undefined);
        assert.deepEqual(recordsToPayload(response.records, P(target)), expected);
      });
    }
  });

  describe('objects outside the model (issue 15 item 17)', () => {
    it('asks for a format that carries types, so a value of an unknown object comes out a number', async () => {
      await registerRaw('vendor', { ct: '0 110 11542', links: '</30000/0>' });
      const pending = server.send('vendor', new ReadRequest(P('/30000/0/1')));
      const request = await answerNext((r) => ({ code: 69, options: [{ number: CF, value: uint(optionUint(r, ACCEPT)) }], payload: Buffer.from('[{"n":"/30000/0/1","v":21.5}]') }));
      assert.equal(optionUint(request, ACCEPT), 110);
      const response = await pending;
      assert.deepEqual(response.records.map((r) => [r.path.toString(), r.type, r.value]), [['/30000/0/1', 'float', 21.5]]);
    });

    it('lets a device without a typed format choose, and hands over what it sent', async () => {
      await registerRaw('vendor-tlv', { ct: '0 11542', links: '</30000/0>' });
      const pending = server.send('vendor-tlv', new ReadRequest(P('/30000/0/1')));
      const request = await answerNext(() => ({ code: 69, payload: Buffer.from('21.5') }));
      assert.equal(optionUint(request, ACCEPT), undefined);
      assert.deepEqual((await pending).records.map((r) => [r.type, r.value]), [['string', '21.5']]);
    });
  });

  describe('Create with an empty payload', () => {
    it('sends POST /3303 with no payload and no Content-Format, and takes the id from Location-Path', async () => {
      await registerRaw('create-empty');
      const pending = server.send('create-empty', new CreateRequest(P('/3303'), []));
      const request = await answerNext(() => ({ code: 65, options: [{ number: LOCATION_PATH, value: Buffer.from('3303') }, { number: LOCATION_PATH, value: Buffer.from('7') }] }));
      assert.equal(request.code, 2);
      assert.deepEqual(request.options.filter((o) => o.number === URI_PATH).map((o) => o.value.toString()), ['3303']);
      assert.equal(request.options.find((o) => o.number === CF), undefined);
      assert.equal(request.payload.length, 0);
      const created = await pending;
      assert.equal(created.code, '2.01');
      assert.deepEqual([created.instanceId, created.location], [7, '/3303/7']);
    });

    it('reports a device that creates without saying which instance', async () => {
      await registerRaw('create-silent');
      const pending = server.send('create-silent', new CreateRequest(P('/3303'), []));
      await answerNext(() => ({ code: 65 }));
      await assert.rejects(pending, (error) => error.kind === 'invalid-response' && /without saying which \(no Location-Path\)/.test(error.message));
    });
  });
});
