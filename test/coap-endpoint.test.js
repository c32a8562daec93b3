'use strict';
const assert = require('node:assert/strict');
const { CoapEndpoint } = require('../dist/lib/coap/endpoint');
const { CoapTimeoutError, CoapResetError, CoapClosedError } = require('../dist/lib/coap/errors');
const { encode, decode } = require('../dist/lib/coap/message');
const { Method, ResponseCode, OptionNumber, formatCode } = require('../dist/lib/coap/codes');
const { RawPeer } = require('./support/udp');

const FAST = { ackTimeoutMs: 60, ackRandomFactor: 1, maxRetransmit: 3 };

function answer(request, fields) {
  return encode({ type: 2, code: ResponseCode.Content, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0), ...fields });
}

describe('CoAP endpoint as a client', () => {
  let client;
  let raw;

  beforeEach(async () => {
    client = new CoapEndpoint({ address: '127.0.0.1', port: 0, transmission: FAST }, () => ({ code: ResponseCode.NotFound }));
    await client.listen();
    raw = await RawPeer.open();
  });

  afterEach(async () => {
    await client.close();
    await raw.close();
  });

  const rawPeer = () => ({ address: '127.0.0.1', port: raw.socket.address().port });
  const get = (path = '/3/0/0') => ({ code: Method.GET, options: [{ number: OptionNumber.UriPath, value: Buffer.from(path.split('/')[1]) }] });

  it('matches a piggybacked response by message id and token', async () => {
    const pending = client.request(rawPeer(), get());
    const request = decode(await raw.next());
    assert.equal(request.type, 0);
    assert.equal(request.token.length, 8);
    await raw.send(answer(request, { payload: Buffer.from('hello') }), client.address.port);
    const response = await pending;
    assert.equal(formatCode(response.code), '2.05');
    assert.equal(response.payload.toString(), 'hello');
  });

  it('retransmits a confirmable request with doubling timeouts until acknowledged', async () => {
    const pending = client.request(rawPeer(), get());
    const times = [];
    let request;
    for (let i = 0; i < 3; i++) {
      request = decode(await raw.next(2000));
      times.push(Date.now());
    }
    assert.ok(times[2] - times[1] >= (times[1] - times[0]) * 1.5, `backoff doubles: ${times}`);
    await raw.send(answer(request), client.address.port);
    assert.equal(formatCode((await pending).code), '2.05');
  });

  it('gives up with a timeout error after MAX_RETRANSMIT retransmissions', async () => {
    const started = Date.now();
    await assert.rejects(client.request(rawPeer(), get()), CoapTimeoutError);
    const copies = [];
    for (let datagram; (datagram = await raw.next(50)); ) copies.push(datagram);
    assert.equal(copies.length, 1 + FAST.maxRetransmit);
    assert.ok(Date.now() - started >= 60 * (1 + 2 + 4 + 8) - 20);
  });

  it('rejects on a Reset', async () => {
    const pending = client.request(rawPeer(), get());
    const request = decode(await raw.next());
    await raw.send(Buffer.from([0x70, 0x00, request.messageId >> 8, request.messageId & 0xff]), client.address.port);
    await assert.rejects(pending, CoapResetError);
  });

  it('waits for a separate response after an empty ACK, and acknowledges it', async () => {
    const pending = client.request(rawPeer(), get(), { timeoutMs: 3000 });
    const request = decode(await raw.next());
    await raw.send(Buffer.from([0x60, 0x00, request.messageId >> 8, request.messageId & 0xff]), client.address.port);
    // No retransmission once acknowledged.
    assert.equal(await raw.next(300), undefined);
    const separate = encode({ type: 0, code: ResponseCode.Content, messageId: 0x4242, token: request.token, options: [], payload: Buffer.from('later') });
    await raw.send(separate, client.address.port);
    const ack = decode(await raw.next());
    assert.equal(ack.type, 2);
    assert.equal(ack.messageId, 0x4242);
    assert.equal((await pending).payload.toString(), 'later');
    // A retransmitted separate response is acknowledged again, not delivered twice.
    await raw.send(separate, client.address.port);
    assert.equal(decode(await raw.next()).messageId, 0x4242);
  });

  it('times out an acknowledged request whose separate response never comes', async () => {
    const pending = client.request(rawPeer(), get(), { timeoutMs: 300 });
    const request = decode(await raw.next());
    await raw.send(Buffer.from([0x60, 0x00, request.messageId >> 8, request.messageId & 0xff]), client.address.port);
    await assert.rejects(pending, /within 300 ms/);
  });

  it('never completes one peer’s request with another peer’s response', async () => {
    const other = await RawPeer.open();
    try {
      const toRaw = client.request(rawPeer(), get(), { timeoutMs: 1500 });
      const toOther = client.request({ address: '127.0.0.1', port: other.socket.address().port }, get(), { timeoutMs: 1500 });
      const requestToRaw = decode(await raw.next());
      const requestToOther = decode(await other.next());
      // Each peer answers with the other's message id and token.
      await other.send(answer(requestToRaw, { payload: Buffer.from('wrong') }), client.address.port);
      await raw.send(answer(requestToOther, { payload: Buffer.from('wrong') }), client.address.port);
      const separateForged = encode({ type: 1, code: ResponseCode.Content, messageId: 9, token: requestToRaw.token, options: [], payload: Buffer.from('forged') });
      await other.send(separateForged, client.address.port);
      // The forger gets a Reset for a token it does not own.
      assert.equal(decode(await other.next()).type, 3);
      await raw.send(answer(requestToRaw, { payload: Buffer.from('right') }), client.address.port);
      await other.send(answer(requestToOther, { payload: Buffer.from('right') }), client.address.port);
      assert.equal((await toRaw).payload.toString(), 'right');
      assert.equal((await toOther).payload.toString(), 'right');
    } finally {
      await other.close();
    }
  });

  it('resets a response for an unknown token', async () => {
    const stray = encode({ type: 0, code: ResponseCode.Content, messageId: 1234, token: Buffer.from([1, 2, 3]), options: [], payload: Buffer.from('?') });
    const reply = decode(await raw.exchange(stray, client.address.port));
    assert.equal(reply.type, 3);
    assert.equal(reply.messageId, 1234);
  });

  it('sends non-confirmable requests once', async () => {
    const pending = client.request(rawPeer(), get(), { confirmable: false, timeoutMs: 500 });
    const request = decode(await raw.next());
    assert.equal(request.type, 1);
    assert.equal(await raw.next(200), undefined);
    await raw.send(encode({ type: 1, code: ResponseCode.Content, messageId: 5, token: request.token, options: [], payload: Buffer.from('non') }), client.address.port);
    assert.equal((await pending).payload.toString(), 'non');
  });

  it('uses distinct message ids and tokens for concurrent requests to one peer', async () => {
    const pendings = [];
    for (let i = 0; i < 50; i++) pendings.push(client.request(rawPeer(), get(), { timeoutMs: 2000 }));
    const requests = [];
    for (let i = 0; i < 50; i++) requests.push(decode(await raw.next()));
    assert.equal(new Set(requests.map((r) => r.messageId)).size, 50);
    assert.equal(new Set(requests.map((r) => r.token.toString('hex'))).size, 50);
    for (const request of requests.reverse()) await raw.send(answer(request, { payload: Buffer.from(request.token) }), client.address.port);
    const responses = await Promise.all(pendings);
    responses.forEach((response, i) => assert.deepEqual(response.payload, requests[requests.length - 1 - i].token));
  });

  it('fails outstanding requests when closed', async () => {
    const pending = client.request(rawPeer(), get());
    await raw.next();
    await client.close();
    await assert.rejects(pending, CoapClosedError);
    await assert.rejects(client.request(rawPeer(), get()), CoapClosedError);
  });
});

describe('CoAP endpoint as a server', () => {
  it('answers 5.00 when a handler throws, and goes on serving', async () => {
    let calls = 0;
    const server = new CoapEndpoint({ address: '127.0.0.1', port: 0 }, () => {
      calls++;
      if (calls === 1) throw new Error('bug');
      return { code: ResponseCode.Content, payload: Buffer.from('ok') };
    });
    const warnings = [];
    server.on('handlerError', (error) => warnings.push(error.message));
    await server.listen();
    const raw = await RawPeer.open();
    try {
      const request = (mid) => encode({ type: 0, code: Method.GET, messageId: mid, token: Buffer.from([mid]), options: [], payload: Buffer.alloc(0) });
      assert.equal(formatCode(decode(await raw.exchange(request(1), server.address.port)).code), '5.00');
      assert.equal(decode(await raw.exchange(request(2), server.address.port)).payload.toString(), 'ok');
      assert.deepEqual(warnings, ['bug']);
    } finally {
      await raw.close();
      await server.close();
    }
  });

  it('answers an asynchronous handler and deduplicates while it runs', async () => {
    let calls = 0;
    const server = new CoapEndpoint({ address: '127.0.0.1', port: 0 }, async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return { code: ResponseCode.Changed };
    });
    await server.listen();
    const raw = await RawPeer.open();
    try {
      const request = encode({ type: 0, code: Method.POST, messageId: 77, token: Buffer.from([7]), options: [], payload: Buffer.alloc(0) });
      await raw.send(request, server.address.port);
      await raw.send(request, server.address.port);
      const reply = decode(await raw.next());
      assert.equal(formatCode(reply.code), '2.04');
      assert.equal(await raw.next(200), undefined, 'the duplicate got no second answer while pending');
      assert.equal(calls, 1);
    } finally {
      await raw.close();
      await server.close();
    }
  });

  it('keeps answers within its byte budget: newcomers are forgotten first, then answers are no longer kept', async () => {
    const reason = 'x'.repeat(150);
    const server = new CoapEndpoint({ address: '127.0.0.1', port: 0, dedupBytes: 4000, retainPeer: (peer) => peer.port === kept.socket.address().port }, () => ({ code: ResponseCode.NotFound, payload: Buffer.from(reason) }));
    await server.listen();
    const kept = await RawPeer.open();
    const others = await Promise.all(Array.from({ length: 40 }, () => RawPeer.open()));
    try {
      const request = (messageId) => encode({ type: 0, code: Method.GET, messageId, token: Buffer.from([1]), options: [], payload: Buffer.alloc(200) });
      const first = await kept.exchange(request(1), server.address.port);
      assert.deepEqual(server.usage, { peers: 0, newcomers: 1, dedupBytes: first.length + 48, block1Bytes: 0 });
      for (const [i, other] of others.entries()) await other.exchange(request(i), server.address.port);
      assert.ok(server.usage.dedupBytes <= 4000, `within budget: ${server.usage.dedupBytes}`);
      assert.ok(server.usage.newcomers < 40, `the oldest newcomers were forgotten: ${server.usage.newcomers} left`);
      assert.equal(server.usage.peers, 1, 'the retained one moved to the table newcomers never reach instead');
      assert.deepEqual(await kept.exchange(request(1), server.address.port), first, 'the retained peer still gets its answer repeated');
      assert.deepEqual(await others[39].exchange(request(39), server.address.port), await others[39].exchange(request(39), server.address.port));
    } finally {
      await Promise.all([kept, ...others].map((p) => p.close()));
      await server.close();
    }
  });

  it('sends an unverified address no request before it answers a CoAP ping, and no more bytes than it sent', async () => {
    const server = new CoapEndpoint({ address: '127.0.0.1', port: 0, verifyPeers: true, transmission: FAST }, () => ({ code: ResponseCode.NotFound, payload: Buffer.from('no resource with a long explanation of why not') }));
    await server.listen();
    const raw = await RawPeer.open();
    const silent = await RawPeer.open();
    // A raw peer answers pings; this one stays silent, as a forged address does.
    silent.socket.removeAllListeners('message');
    const toSilent = [];
    silent.socket.on('message', (datagram) => toSilent.push(datagram));
    try {
      const peer = (p) => ({ address: '127.0.0.1', port: p.socket.address().port });
      const get = () => ({ code: Method.GET, options: [{ number: OptionNumber.UriPath, value: Buffer.from('3') }] });
      // An address that sent nothing gets nothing, not even the ping.
      await assert.rejects(server.request(peer(silent), get()), /has not shown it is a real address/);
      assert.equal(toSilent.length, 0);
      // One that sent 20 bytes gets a 4.04 whose reason is cut to leave room for two pings, then the pings, and no request.
      await silent.send(encode({ type: 0, code: Method.GET, messageId: 5, token: Buffer.from([5, 5, 5, 5]), options: [{ number: OptionNumber.UriPath, value: Buffer.from('abcdefghijk') }], payload: Buffer.alloc(0) }), server.address.port);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // The request gives up at its deadline, or with the ping when that gives up first: a timeout either way.
      await assert.rejects(server.request(peer(silent), get()), CoapTimeoutError);
      assert.deepEqual(toSilent.map((d) => d.length), [12, 4, 4]);
      assert.equal(decode(toSilent[0]).payload.toString(), 'no ');
      assert.deepEqual(toSilent.slice(1).map((d) => [d[0], d[1]]), [[0x40, 0], [0x40, 0]], 'CoAP pings');
      // An address that answers the ping gets the request, and from then on everything.
      await raw.send(encode({ type: 0, code: Method.POST, messageId: 6, token: Buffer.from([6]), options: [], payload: Buffer.alloc(20) }), server.address.port);
      await raw.next();
      const pending = server.request(peer(raw), get());
      const request = decode(await raw.next());
      assert.equal(formatCode(request.code), '0.01');
      await raw.send(answer(request), server.address.port);
      assert.equal(formatCode((await pending).code), '2.05');
      assert.equal(server.isVerified(peer(raw)), true);
      const reply = decode(await raw.exchange(encode({ type: 0, code: Method.GET, messageId: 7, token: Buffer.from([7]), options: [], payload: Buffer.alloc(0) }), server.address.port));
      assert.equal(reply.payload.toString(), 'no resource with a long explanation of why not');
    } finally {
      await raw.close();
      await silent.close();
      await server.close();
    }
  });
});

describe('CoAP endpoint lifecycle', () => {
  it('releases its port when closed while still binding (a redeploy right after a deploy)', async () => {
    const { freePort } = require('./support/udp');
    const port = await freePort();
    const first = new CoapEndpoint({ address: '127.0.0.1', port }, () => ({ code: ResponseCode.NotFound }));
    const binding = first.listen();
    await first.close();
    await binding;
    const second = new CoapEndpoint({ address: '127.0.0.1', port }, () => ({ code: ResponseCode.NotFound }));
    await second.listen();
    await second.close();
  });
});
