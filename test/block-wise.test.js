'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { CoapEndpoint } = require('../dist/lib/coap/endpoint');
const { requestBlockwise, completeBlock2, hasMoreBlocks } = require('../dist/lib/coap/block-transfer');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { WriteRequest } = require('../dist/lib/lwm2m/requests/write');
const { ReadCompositeRequest } = require('../dist/lib/lwm2m/requests/composite');
const { ObserveRequest, ObserveCompositeRequest } = require('../dist/lib/lwm2m/requests/observe');
const { recordsToPayload, payloadToRecords } = require('../dist/lib/content/payload');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { ObjectModel } = require('../dist/lib/model/object-model');
const { FAST } = require('./support/devices');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { RawDevice, OPT, blockValue, blockOf, optionValue, uint, uintOf } = require('./support/raw-device');

const P = (text) => Lwm2mPath.parse(text);
const model = ObjectModel.builtIn();

/** SenML JSON of /3/0 as a device writes it by hand (RFC 8428 section 5), long enough for several blocks. */
const DEVICE_SENML = Buffer.from(
  '[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"9","v":100}]',
);
const NEWER_SENML = Buffer.from(
  '[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"9","v":42}]',
);

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

async function until(predicate, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Answers the block a request asks for (block 0 when it names none) from a
 * body in blocks of 2^(szx+4) bytes, as a device does (RFC 7959 section 2.4).
 */
function blockAnswer(request, body, { szx = 0, etag, observe, contentFormat = 110, code = 69 } = {}) {
  const num = blockOf(request, OPT.Block2)?.num ?? 0;
  const size = 1 << (szx + 4);
  const options = [];
  if (etag) options.push({ number: OPT.ETag, value: Buffer.from(etag) });
  if (observe !== undefined) options.push({ number: OPT.Observe, value: uint(observe) });
  options.push({ number: OPT.ContentFormat, value: uint(contentFormat) });
  options.push({ number: OPT.Block2, value: blockValue(num, (num + 1) * size < body.length, szx) });
  return { code, options, payload: body.subarray(num * size, (num + 1) * size) };
}

describe('block-wise transfers (RFC 7959) with devices played byte by byte', () => {
  let server;
  let port;
  let device;

  beforeEach(async () => {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST, client: { defaultTimeoutMs: 2000 } });
    await server.start();
  });

  afterEach(async () => {
    await device?.close();
    device = undefined;
    await server.stop();
  });

  /** Serves every request of a block-wise answer until the body is out; returns the requests. */
  async function serve(body, options = {}, first) {
    const requests = [];
    let request = first ?? (await device.next());
    for (;;) {
      assert.ok(request, 'the server asked for the next block');
      requests.push(request);
      const answer = blockAnswer(request, body, { ...options, observe: requests.length === 1 ? options.observe : undefined });
      await device.reply(request, answer);
      if (!blockOf(answer, OPT.Block2).more) return requests;
      request = await device.next();
    }
  }

  it('reads a Read-Composite answer that comes in Block2 blocks: every block request repeats the FETCH body (RFC 8132, RFC 7959 section 2.4)', async () => {
    device = await RawDevice.register(port, 'fetcher');
    const pending = server.send('fetcher', new ReadCompositeRequest([P('/3/0')], 110));
    const requests = await serve(DEVICE_SENML, { etag: 'v1' });
    const result = await pending;
    assert.equal(recordsToPayload(result.records, Lwm2mPath.ROOT)[3][0][1], 'Lightweight M2M Client');
    assert.ok(requests.length > 5);
    for (const request of requests) {
      assert.equal(request.code, 5, 'FETCH');
      assert.deepEqual(JSON.parse(request.payload.toString()), [{ n: '/3/0' }]);
      assert.equal(uintOf(optionValue(request, OPT.ContentFormat)), 110);
    }
    assert.deepEqual(requests.slice(1).map((request) => blockOf(request, OPT.Block2).num), requests.slice(1).map((_, i) => i + 1));
  });

  it('observes with a Block2 answer: Observe from the first block, later blocks without Observe, block-wise notifications completed (RFC 7959 section 2.6)', async () => {
    device = await RawDevice.register(port, 'observed');
    const listener = collector();
    const pending = server.observe('observed', new ObserveRequest(P('/3/0'), 110), listener);
    const requests = await serve(DEVICE_SENML, { etag: 'a', observe: 7 });
    const { established, first, observation } = await pending;
    assert.equal(established, true, 'the Observe option of the first block counts');
    assert.equal(first.sequence, 7);
    assert.equal(recordsToPayload(first.records, P('/3/0'))[9], 100);
    assert.equal(uintOf(optionValue(requests[0], OPT.Observe)), 0);
    for (const later of requests.slice(1)) assert.equal(optionValue(later, OPT.Observe), undefined, 'a follow-up block request is no new observation');
    assert.equal(server.observations.size, 1);

    // A notification too large for one message: its first block with Observe, the rest fetched with GET (no Observe), same ETag.
    const token = requests[0].token;
    const head = blockAnswer({ options: [] }, NEWER_SENML, { etag: 'b', observe: 8 });
    await device.send({ type: 1, messageId: 0x7000, token, ...head });
    const followUps = await serve(NEWER_SENML, { etag: 'b' });
    await until(() => listener.events.notifications.length === 1);
    const [notification] = listener.events.notifications;
    assert.equal(notification.sequence, 8);
    assert.deepEqual(notification.raw, NEWER_SENML);
    assert.equal(recordsToPayload(notification.records, P('/3/0'))[9], 42);
    assert.equal(followUps[0].code, 1);
    assert.equal(blockOf(followUps[0], OPT.Block2).num, 1);
    for (const request of followUps) assert.equal(optionValue(request, OPT.Observe), undefined);
    assert.notDeepEqual(followUps[0].token, token, 'follow-ups have tokens of their own');
    assert.equal(observation.id, notification.observation.id);
  });

  it('observes composite with a Block2 answer: later blocks are FETCHes with the body and without Observe', async () => {
    device = await RawDevice.register(port, 'composite');
    const pending = server.observe('composite', new ObserveCompositeRequest([P('/3/0')], 110), collector());
    const requests = await serve(DEVICE_SENML, { observe: 3 });
    const { established, first } = await pending;
    assert.equal(established, true);
    assert.equal(recordsToPayload(first.records, Lwm2mPath.ROOT)[3][0][2], '345000123');
    for (const later of requests.slice(1)) {
      assert.equal(later.code, 5);
      assert.equal(optionValue(later, OPT.Observe), undefined);
      assert.deepEqual(JSON.parse(later.payload.toString()), [{ n: '/3/0' }]);
    }
  });

  it('starts a Block2 read over when the ETag changes, and fails clearly when it keeps changing', async () => {
    device = await RawDevice.register(port, 'changing');
    let pending = server.send('changing', new ReadRequest(P('/3/0'), 110));
    let request = await device.next();
    await device.reply(request, blockAnswer(request, DEVICE_SENML, { etag: 'old' }));
    request = await device.next();
    assert.equal(blockOf(request, OPT.Block2).num, 1);
    // The value changed between the blocks: block 1 is of another representation.
    await device.reply(request, blockAnswer(request, NEWER_SENML, { etag: 'new' }));
    request = await device.next();
    assert.equal(blockOf(request, OPT.Block2).num, 0, 'the transfer starts over');
    await serve(NEWER_SENML, { etag: 'new' }, request);
    assert.equal(recordsToPayload((await pending).records, P('/3/0'))[9], 42);

    pending = server.send('changing', new ReadRequest(P('/3/0'), 110));
    let version = 0;
    for (let i = 0; i < 6; i++) {
      request = await device.next(500);
      if (!request) break;
      await device.reply(request, blockAnswer(request, DEVICE_SENML, { etag: `v${version++}` }));
    }
    await assert.rejects(pending, (error) => error.kind === 'invalid-response' && /changed \(ETag\)/.test(error.message));
  });

  it('refuses an answer or a notification with a critical option it does not understand (RFC 7252 section 5.4.1)', async () => {
    device = await RawDevice.register(port, 'critical');
    // Option 9 is critical (odd) and unknown here.
    const refused = assert.rejects(server.send('critical', new ReadRequest(P('/3/0/9')), { timeoutMs: 5000 }), (error) => error.kind === 'invalid-response' && /unrecognized critical option 9/.test(error.message));
    let request = await device.next();
    const startedAt = Date.now();
    await device.reply(request, { code: 69, options: [{ number: 9, value: Buffer.from([1]) }], payload: Buffer.from('100') });
    await refused;
    assert.ok(Date.now() - startedAt < 1000, 'told at once, not after the timeout');

    // A separate confirmable response with it gets a Reset.
    const separate = assert.rejects(server.send('critical', new ReadRequest(P('/3/0/9')), { timeoutMs: 5000 }), /unrecognized critical option 9/);
    request = await device.next();
    await device.send({ type: 2, code: 0, messageId: request.messageId, token: Buffer.alloc(0) });
    await device.send({ type: 0, code: 69, messageId: 0x5123, token: request.token, options: [{ number: 9, value: Buffer.from([1]) }], payload: Buffer.from('100') });
    const reset = await device.next();
    assert.deepEqual([reset.type, reset.code, reset.messageId], [3, 0, 0x5123]);
    await separate;

    // A notification with it is reset and its observation ends.
    const listener = collector();
    const observing = server.observe('critical', new ObserveRequest(P('/3/0/9')), listener);
    request = await device.next();
    await device.reply(request, { code: 69, options: [{ number: OPT.Observe, value: uint(1) }], payload: Buffer.from('100') });
    await observing;
    await device.send({ type: 1, code: 69, messageId: 0x5124, token: request.token, options: [{ number: OPT.Observe, value: uint(2) }, { number: 9, value: Buffer.from([1]) }], payload: Buffer.from('99') });
    const notificationReset = await device.next();
    assert.deepEqual([notificationReset.type, notificationReset.messageId], [3, 0x5124]);
    await until(() => listener.events.ended.length === 1);
    assert.match(listener.events.ended[0], /unrecognized critical option 9/);
    assert.equal(listener.events.notifications.length, 0);
    assert.equal(server.observations.size, 0);
  });

  it('sends a write again in the smaller blocks a device asks for with 4.13 (RFC 7959 section 2.9.3)', async () => {
    device = await RawDevice.register(port, 'small');
    const value = Buffer.from('0123456789abcdef'.repeat(40));
    const pending = server.send('small', new WriteRequest(P('/3/0/14'), payloadToRecords(value.toString(), P('/3/0/14'), model)));
    let request = await device.next();
    assert.deepEqual(blockOf(request, OPT.Block1), { num: 0, more: true, szx: 5 });
    // As Wakaama with 16-byte blocks answers a 512-byte block: 4.13 with its own size in Block1.
    await device.reply(request, { code: 141, options: [{ number: OPT.Block1, value: blockValue(0, true, 0) }] });
    const received = [];
    for (;;) {
      request = await device.next();
      const block = blockOf(request, OPT.Block1);
      assert.equal(block.szx, 0);
      assert.equal(block.num, received.length);
      received.push(request.payload);
      if (!block.more) {
        await device.reply(request, { code: 68, options: [{ number: OPT.Block1, value: blockValue(block.num, false, 0) }] });
        break;
      }
      assert.equal(request.payload.length, 16);
      await device.reply(request, { code: 95, options: [{ number: OPT.Block1, value: blockValue(block.num, true, 0) }] });
    }
    assert.equal((await pending).code, '2.04');
    assert.deepEqual(Buffer.concat(received), value);

    // A device that gives only Size1 gets blocks that fit it.
    const again = server.send('small', new WriteRequest(P('/3/0/14'), payloadToRecords(value.toString(), P('/3/0/14'), model)));
    request = await device.next();
    await device.reply(request, { code: 141, options: [{ number: OPT.Size1, value: uint(100) }] });
    request = await device.next();
    assert.deepEqual(blockOf(request, OPT.Block1), { num: 0, more: true, szx: 2 });
    await device.reply(request, { code: 141, options: [{ number: OPT.Size1, value: uint(100) }] });
    await assert.rejects(again, (error) => error.code === '4.13', 'no smaller size asked for: the 4.13 is the answer');
  });

  it('bounds a Block2 read by its timeout, every block included', async () => {
    device = await RawDevice.register(port, 'slow');
    const body = Buffer.from(`[{"bn":"/3/0/","n":"0","vs":"${'x'.repeat(400)}"}]`);
    const startedAt = Date.now();
    const pending = server.send('slow', new ReadRequest(P('/3/0'), 110), { timeoutMs: 800 });
    const outcome = pending.then(() => 'read', (error) => error);
    // Each 16-byte block after 100 ms: the whole would take over 2.5 s.
    let served = 0;
    for (let request = await device.next(); request; request = await device.next(300)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await device.reply(request, blockAnswer(request, body));
      served++;
    }
    const result = await outcome;
    assert.ok(result instanceof Error, `the read failed (${result})`);
    assert.equal(result.kind, 'timeout');
    assert.match(result.message, /within 800 ms/);
    assert.ok(served < 12, `stopped asking after the time limit (${served} blocks)`);
    assert.ok(Date.now() - startedAt < 2000);
  });
});

describe('interop: libcoap coap-server serving a large observable resource in Block2 blocks', () => {
  let serverProcess;
  let output = '';
  let port;
  let client;
  const peer = () => ({ address: '127.0.0.1', port });
  const path = [{ number: OPT.UriPath, value: Buffer.from('big') }];

  before(function () {
    requireTool(this, 'coap-server-notls', 'libcoap3-bin');
  });

  beforeEach(async () => {
    port = await freePort();
    output = '';
    // -d: resources created by PUT (observable); -v 7 logs every message it receives.
    // stdbuf: its log lines as they are written, not when a pipe buffer fills.
    serverProcess = spawn('stdbuf', ['-oL', '-eL', 'coap-server-notls', '-A', '127.0.0.1', '-p', String(port), '-d', '4', '-v', '7'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serverProcess.stdout.on('data', (chunk) => (output += chunk));
    serverProcess.stderr.on('data', (chunk) => (output += chunk));
    await until(() => output.includes('created UDP'), 5000);
    client = new CoapEndpoint({ address: '127.0.0.1', port: 0, transmission: FAST }, () => ({ code: 132 }));
    await client.listen();
  });

  afterEach(async () => {
    await client.close();
    serverProcess.kill();
  });

  /** The GET requests for the resource that libcoap logged as received. */
  const gets = () => output.split('\n').filter((line) => / c:GET /.test(line) && line.includes('Uri-Path:big'));
  const put = (body) => requestBlockwise(client, peer(), { code: 3, options: path, payload: body }, { timeoutMs: 5000 });

  it('observes it: Observe from the first block, later blocks without Observe, a block-wise notification completed', async () => {
    const original = Buffer.from('first version '.repeat(300));
    assert.equal((await put(original)).code, 65);
    const notifications = [];
    const handler = { notified: (message) => notifications.push(message), refused: () => undefined };
    const answer = await requestBlockwise(client, peer(), { code: 1, options: [{ number: OPT.Observe, value: Buffer.alloc(0) }, ...path] }, { timeoutMs: 5000, onNotification: handler });
    assert.equal(answer.code, 69);
    assert.notEqual(optionValue(answer, OPT.Observe), undefined, 'libcoap puts Observe in the first block only; it is kept');
    assert.deepEqual(answer.payload, original);
    // What libcoap received (its log): one GET with Observe (block 0), the other four without.
    await until(() => gets().length === 5, 3000).catch(() => assert.fail(gets().join('\n')));
    assert.deepEqual(gets().map((line) => line.includes('Observe:0')), [true, false, false, false, false]);

    const changed = Buffer.from('second version '.repeat(300));
    await put(changed);
    await until(() => notifications.length > 0, 5000);
    const [head] = notifications;
    assert.ok(hasMoreBlocks(head), 'libcoap notifies with the first block');
    const whole = await completeBlock2(client, peer(), { code: 1, options: [{ number: OPT.Observe, value: Buffer.alloc(0) }, ...path] }, head, { timeoutMs: 5000 });
    assert.deepEqual(whole.payload, changed);
    assert.ok(uintOf(optionValue(whole, OPT.Observe)) > uintOf(optionValue(answer, OPT.Observe)));
    // libcoap logs its notification as a replay of the observing GET (same token); every other GET is a plain block request.
    await until(() => gets().length === 10, 3000).catch(() => assert.fail(gets().join('\n')));
    const observeToken = /\{([0-9a-f]+)\}/.exec(gets()[0])[1];
    assert.deepEqual(gets().filter((line) => line.includes('Observe')).map((line) => line.includes(`{${observeToken}}`)), [true, true], 'no second observation was made');
  });

  it('bounds a Block2 read by its timeout when libcoap loses its answers', async () => {
    serverProcess.kill();
    // A server that drops eight of the datagrams it sends once the resource is in place (20 answers to 20 Block1
    // blocks): Block2 blocks 1 to 8 each need a retransmission, and the 20 blocks take about 3 s.
    port = await freePort();
    const lost = Array.from({ length: 8 }, (_, i) => 22 + 2 * i).join(',');
    serverProcess = spawn('coap-server-notls', ['-A', '127.0.0.1', '-p', String(port), '-d', '4', '-l', lost], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const patient = new CoapEndpoint({ address: '127.0.0.1', port: 0, transmission: { ackTimeoutMs: 300, maxRetransmit: 2 } }, () => ({ code: 132 }));
    await patient.listen();
    try {
      const body = Buffer.alloc(20 * 1024, 'slow ');
      assert.equal((await requestBlockwise(patient, peer(), { code: 3, options: path, payload: body }, { timeoutMs: 5000, block1Szx: 6 })).code, 65);
      const startedAt = Date.now();
      await assert.rejects(
        requestBlockwise(patient, peer(), { code: 1, options: path }, { timeoutMs: 1000 }),
        (error) => error.name === 'CoapTimeoutError' && /within 1000 ms/.test(error.message),
      );
      const elapsed = Date.now() - startedAt;
      assert.ok(elapsed >= 900 && elapsed < 1500, `gave up after ${elapsed} ms`);
    } finally {
      await patient.close();
    }
  });
;
});

describe('serving Block2 blocks (serveBlock2)', () => {
  const { serveBlock2 } = require('../dist/lib/coap/block2-serving');
  const { encodeBlock } = require('../dist/lib/coap/block');
  const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i & 0xff));
  const asking = (num, szx) => ({ options: [{ number: OPT.Block2, value: uint(encodeBlock({ num, more: false, szx })) }] });
  const answer = { code: 69, options: [], payload: body };

  it('answers from the offset the client asked for when our blocks are smaller than its: block 1 of 1,024 bytes is block 4 of 256', () => {
    const response = serveBlock2(asking(1, 6), answer, 256);
    assert.deepEqual(blockOf(response, OPT.Block2), { num: 4, more: true, szx: 4 });
    assert.deepEqual(response.payload, body.subarray(1024, 1280));
  });

  it('keeps the ETag the handler gave (a file hashed once) instead of hashing the answer again, and sends Size2 with the first block', () => {
    const etag = Buffer.from('0102030405060708', 'hex');
    const first = serveBlock2(asking(0, 5), { ...answer, options: [{ number: OPT.ETag, value: etag }] });
    assert.deepEqual(first.options.filter((o) => o.number === OPT.ETag).map((o) => o.value), [etag]);
    assert.equal(uintOf(optionValue(first, OPT.Size2)), 3000);
    const later = serveBlock2(asking(2, 5), answer);
    assert.equal(later.options.filter((o) => o.number === OPT.ETag).length, 1, 'a hash of the answer when the handler gave none');
    assert.equal(optionValue(later, OPT.Size2), undefined);
  });

  it('refuses a block past the end with 4.02, and passes small answers and errors as they are', () => {
    assert.equal(serveBlock2(asking(3, 6), answer).code, (4 << 5) | 2);
    const small = { code: 69, payload: Buffer.from('x') };
    assert.equal(serveBlock2({ options: [] }, small), small);
    const error = { code: 132, payload: body };
    assert.equal(serveBlock2(asking(1, 6), error), error);
  });
});
