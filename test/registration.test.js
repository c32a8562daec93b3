'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FileStateStore } = require('../dist/lib/lwm2m/state');
const { ServerRejectedError } = require('../dist/sim/simulated-device');
const { encode, decode } = require('../dist/lib/coap/message');
const { Method, OptionNumber, ResponseCode, formatCode } = require('../dist/lib/coap/codes');
const { registrationToJson } = require('../dist/lib/lwm2m/registration');
const { devicePool, FAST } = require('./support/devices');
const { freePort, RawPeer, once } = require('./support/udp');


describe('LwM2M registration interface', () => {
  let server;
  let port;

  const pool = devicePool(() => port);
  const device = pool.device;

  beforeEach(async () => {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port });
    await server.start();
  });

  afterEach(async () => {
    await pool.stopAll();
    await server.stop();
  });

  it('registers a client with its objects, version, binding and content formats', async () => {
    const d = await device('sensor-1', { lifetime: 300, lwm2mVersion: '1.1', binding: 'U', queueMode: true });
    const registered = once(server, 'registered');
    const location = await d.register({ sms: '+4912345' });
    const [registration, replaced] = await registered;
    assert.match(location, /^\/rd\/[A-Za-z0-9_-]+$/);
    assert.equal(replaced, undefined);
    assert.equal(registration.endpoint, 'sensor-1');
    assert.equal(registration.lifetime, 300);
    assert.equal(registration.lwm2mVersion, '1.1');
    assert.equal(registration.binding, 'U');
    assert.equal(registration.queueMode, true);
    assert.equal(registration.smsNumber, '+4912345');
    assert.equal(registration.address, '127.0.0.1');
    assert.equal(registration.port, d.localAddress.port);
    assert.deepEqual(registration.contentFormats, [0, 42, 60, 110, 112, 11542, 11543, 11544]);
    assert.deepEqual(registration.objects, [
      { id: 1, instances: [0] },
      { id: 3, instances: [0] },
      { id: 3303, instances: [0] },
      { id: 3308, instances: [0] },
    ]);
    assert.equal(`/rd/${registration.id}`, location);
    assert.equal(server.registrations.getByEndpoint('sensor-1'), registration);
  });

  /** Registers endpoint (LwM2M 1.1) announcing links, answered 2.01; the registration the server made. */
  async function registerWithLinks(endpoint, links) {
    const d = await device(endpoint);
    const registered = once(server, 'registered');
    const response = await d.send(Method.POST, '/rd', { query: { ep: endpoint, lwm2m: '1.1' }, payload: Buffer.from(links), contentFormat: 40 });
    assert.equal(formatCode(response.code), '2.01');
    const [registration] = await registered;
    return registration;
  }

  it('understands an alternate root path and object versions', async () => {
    const registration = await registerWithLinks('alt-root', '</lwm2m>;rt="oma.lwm2m";ct=11543,</lwm2m/1/0>,</lwm2m/3>;ver=1.1,</lwm2m/3/0>,</lwm2m/3442>');
    assert.equal(registration.rootPath, '/lwm2m');
    assert.deepEqual(registration.contentFormats, [11543]);
    assert.deepEqual(registration.objects, [
      { id: 1, instances: [0] },
      { id: 3, version: '1.1', instances: [0] },
      { id: 3442, instances: [] },
    ]);
    assert.equal(registration.lifetime, 86400, 'default lifetime');
    assert.equal(registration.binding, 'U', 'default binding');
  });

  it('lists objects and their instances in order whatever order the client links them in, each instance once', async () => {
    const registration = await registerWithLinks('shuffled', '</3303/2>,</3/0>,</3303/0>,</1/1>,</3303/1>,</1/0>,</3303/0>,</5>');
    assert.deepEqual(registration.objects, [
      { id: 1, instances: [0, 1] },
      { id: 3, instances: [0] },
      { id: 5, instances: [] },
      { id: 3303, instances: [0, 1, 2] },
    ]);
  });

  it('updates lifetime, binding and objects, with and without payload', async () => {
    const d = await device('updater', { lifetime: 60, lwm2mVersion: '1.0' });
    await d.register();
    const updated = once(server, 'updated');
    await d.update();
    let [registration, changes] = await updated;
    assert.deepEqual(changes, []);
    const firstSeen = registration.lastUpdate;

    const updatedAgain = once(server, 'updated');
    d.objects.set(3304, new Map([[0, new Map([[5700, 40]])]]));
    await d.update({ lt: 120, b: 'UQ' }, true);
    [registration, changes] = await updatedAgain;
    assert.deepEqual(changes.sort(), ['binding', 'lifetime', 'objects', 'queueMode']);
    assert.equal(registration.lifetime, 120);
    assert.equal(registration.queueMode, true);
    assert.ok(registration.objects.some((o) => o.id === 3304));
    assert.ok(registration.lastUpdate >= firstSeen);
  });

  it('keeps queue mode across an Update in LwM2M 1.1 and 1.2 (an Update has no Q); in 1.0 the binding decides', async () => {
    for (const lwm2mVersion of ['1.1', '1.2']) {
      const d = await device(`queued-${lwm2mVersion}`, { lwm2mVersion, binding: 'U', queueMode: true });
      await d.register();
      const updated = once(server, 'updated');
      await d.update({ b: 'U', lt: 90 });
      const [registration, changes] = await updated;
      assert.equal(registration.queueMode, true, `LwM2M ${lwm2mVersion}`);
      assert.deepEqual(changes, ['lifetime']);
    }
    const old = await device('queued-1.0', { lwm2mVersion: '1.0', binding: 'UQ' });
    await old.register();
    assert.equal(server.registrations.getByEndpoint('queued-1.0').queueMode, true);
    const updated = once(server, 'updated');
    await old.update({ b: 'U' });
    const [registration, changes] = await updated;
    assert.equal(registration.queueMode, false);
    assert.deepEqual(changes.sort(), ['binding', 'queueMode']);
  });

  it('takes the binding letters of each LwM2M version, and keeps the profile ID of 1.2', async () => {
    for (const [lwm2mVersion, binding] of [['1.0', 'UQS'], ['1.0', 'SQ'], ['1.1', 'UT'], ['1.1', 'NS'], ['1.2', 'UMH']]) {
      const d = await device(`bound-${lwm2mVersion}-${binding}`, { lwm2mVersion, binding });
      await d.register();
      assert.equal(server.registrations.getByEndpoint(`bound-${lwm2mVersion}-${binding}`).binding, binding);
    }
    const d = await device('profiled', { lwm2mVersion: '1.2' });
    const registered = once(server, 'registered');
    await d.register({ pid: 'street-light-v2' });
    const [registration] = await registered;
    assert.equal(registration.profileId, 'street-light-v2');
    assert.equal(registrationToJson(registration).profileId, 'street-light-v2');
    const updated = once(server, 'updated');
    await d.update({ pid: 'street-light-v3' });
    const [, changes] = await updated;
    assert.deepEqual(changes, ['profileId']);
    assert.equal(server.registrations.getByEndpoint('profiled').profileId, 'street-light-v3');
  });

  it('shares one frozen object description between devices that announce the same links, and replaces it on update', async () => {
    const a = await device('twin-a');
    const b = await device('twin-b');
    await a.register();
    await b.register();
    const [first, second] = ['twin-a', 'twin-b'].map((endpoint) => server.registrations.getByEndpoint(endpoint));
    assert.equal(first.objects, second.objects);
    assert.ok(Object.isFrozen(first.objects) && first.objects.every((object) => Object.isFrozen(object) && Object.isFrozen(object.instances)));
    assert.throws(() => first.objects[0].instances.push(9), TypeError);
    b.objects.set(3304, new Map([[0, new Map([[5700, 40]])]]));
    const updated = once(server, 'updated');
    await b.update({}, true);
    await updated;
    assert.notEqual(server.registrations.getByEndpoint('twin-b').objects, first.objects);
    assert.ok(!first.objects.some((object) => object.id === 3304), 'the other device keeps its description');
  });

  it('follows a client whose address changes (NAT rebinding)', async () => {
    const first = await device('roamer');
    const location = await first.register();
    const second = await device('roamer-new-socket');
    const updated = once(server, 'updated');
    const response = await second.send(Method.POST, location, {});
    assert.equal(formatCode(response.code), '2.04');
    const [registration, changes] = await updated;
    assert.deepEqual(changes, ['address']);
    assert.equal(registration.port, second.localAddress.port);
  });

  it('de-registers', async () => {
    const d = await device('leaver');
    const location = await d.register();
    const deregistered = once(server, 'deregistered');
    await d.deregister();
    const [registration] = await deregistered;
    assert.equal(registration.endpoint, 'leaver');
    assert.equal(server.registrations.size, 0);
    const again = await d.send(Method.DELETE, location, {});
    assert.equal(formatCode(again.code), '4.04');
  });

  it('expires a registration whose lifetime runs out', async () => {
    const d = await device('short-lived', { lifetime: 1 });
    await d.register();
    const started = Date.now();
    const [registration] = await once(server, 'expired', 3000);
    assert.equal(registration.endpoint, 'short-lived');
    assert.ok(Date.now() - started >= 900, 'not before the lifetime');
    assert.equal(server.registrations.size, 0);
    await assert.rejects(d.update(), (error) => error instanceof ServerRejectedError && error.responseCode === '4.04');
  });

  it('an update restarts the lifetime', async () => {
    const d = await device('kept-alive', { lifetime: 1 });
    await d.register();
    let expired = false;
    server.on('expired', () => (expired = true));
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 600));
      await d.update();
    }
    assert.equal(expired, false);
    assert.equal(server.registrations.size, 1);
  });

  it('an update that shortens the lifetime expires the registration at the shorter one', async () => {
    const d = await device('shortened', { lifetime: 60 });
    await d.register();
    await d.update({ lt: 1 });
    const started = Date.now();
    const [registration] = await once(server, 'expired', 3000);
    assert.equal(registration.endpoint, 'shortened');
    assert.ok(Date.now() - started >= 850, 'not before the new lifetime');
  });

  it('an update that lengthens the lifetime keeps the registration past its first expiry, until the longer one runs out', async () => {
    const d = await device('lengthened', { lifetime: 1 });
    await d.register();
    let expiredAt;
    server.on('expired', (registration) => registration.endpoint === 'lengthened' && (expiredAt = Date.now()));
    await d.update({ lt: 2 });
    const updatedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(expiredAt, undefined, 'alive after the first lifetime');
    assert.ok(server.registrations.getByEndpoint('lengthened'));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(expiredAt !== undefined && expiredAt - updatedAt >= 1900 && expiredAt - updatedAt < 2500, `expired ${expiredAt - updatedAt} ms after the update`);
  });

  it('shortens lifetimes beyond the maximum (7 days by default), in the event and in the saved state', async () => {
    const d = await device('forever', { lifetime: 4294967295 });
    const registered = once(server, 'registered');
    await d.register();
    const [registration] = await registered;
    assert.equal(registration.lifetime, 604800);
    assert.equal(new Date(registration.lastUpdate + 604800 * 1000).toISOString(), registrationToJson(registration).expiresAt);
    const updated = once(server, 'updated');
    await d.update({ lt: 4000000000 });
    assert.equal((await updated)[0].lifetime, 604800);
    await d.update({ lt: 3600 });
    assert.equal(server.registrations.getByEndpoint('forever').lifetime, 3600, 'shorter ones are kept');
    // A registration saved before the limit (or under a higher one) is shortened when restored.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-lifetime-'));
    try {
      const file = path.join(dir, 'state.json');
      const registration = { ...server.registrations.getByEndpoint('forever'), lifetime: 4294967295 };
      fs.writeFileSync(file, JSON.stringify({ version: 2, savedAt: Date.now(), collections: { registrations: { forever: { value: registration } } } }));
      const restored = new Lwm2mServer({ address: '127.0.0.1', port: 0, maxLifetime: 600, stateStore: new FileStateStore(file) });
      await restored.start();
      try {
        assert.equal(restored.registrations.getByEndpoint('forever').lifetime, 600);
      } finally {
        await restored.stop();
      }
      // What it saves is the shortened lifetime.
      assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).collections.registrations.forever.value.lifetime, 600);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removes a registration on request as a de-registration would, and the device registers again', async () => {
    const d = await device('stale');
    const location = await d.register();
    const deregistered = once(server, 'deregistered');
    const { removed } = server.remove('stale', 'flow');
    assert.equal(removed.endpoint, 'stale');
    const [registration, removedBy] = await deregistered;
    assert.deepEqual([registration.endpoint, removedBy], ['stale', 'flow']);
    assert.equal(server.registrations.size, 0);
    assert.deepEqual(server.remove('stale', 'flow'), { removed: undefined, unbound: false });
    const stale = await d.send(Method.POST, location, {});
    assert.equal(formatCode(stale.code), '4.04');
    await d.register();
    assert.ok(server.registrations.getByEndpoint('stale'));
  });

  it('a re-registration of a known endpoint replaces the old one', async () => {
    const d = await device('phoenix');
    const oldLocation = await d.register();
    const registered = once(server, 'registered');
    const newLocation = await d.register();
    const [registration, replaced] = await registered;
    assert.notEqual(newLocation, oldLocation);
    assert.equal(replaced.id, oldLocation.split('/')[2]);
    assert.equal(server.registrations.size, 1);
    assert.equal(server.registrations.getById(replaced.id), undefined);
    assert.equal(server.registrations.getById(registration.id), registration);
    const stale = await d.send(Method.POST, oldLocation, {});
    assert.equal(formatCode(stale.code), '4.04');
  });

  describe('malformed registrations', () => {
    const cases = [
      ['missing ep', { lt: 60 }, '</1/0>', '4.00', /missing endpoint client name/],
      ['empty ep', { ep: '' }, '</1/0>', '4.00', /missing endpoint client name/],
      ['ep as a flag', { ep: true }, '</1/0>', '4.00', /needs a value/],
      ['non-numeric lifetime', { ep: 'x', lt: 'abc' }, '</1/0>', '4.00', /invalid lifetime/],
      ['negative lifetime', { ep: 'x', lt: '-5' }, '</1/0>', '4.00', /invalid lifetime/],
      ['zero lifetime', { ep: 'x', lt: 0 }, '</1/0>', '4.00', /out of range/],
      ['fractional lifetime', { ep: 'x', lt: '1.5' }, '</1/0>', '4.00', /invalid lifetime/],
      ['bad binding', { ep: 'x', b: 'XYZ' }, '</1/0>', '4.00', /invalid binding/],
      ['Q in the binding of a 1.1 client', { ep: 'x', lwm2m: '1.1', b: 'UQ' }, '</1/0>', '4.00', /queue mode is the Q parameter/],
      ['a 1.1 binding from a 1.0 client', { ep: 'x', lwm2m: '1.0', b: 'T' }, '</1/0>', '4.00', /LwM2M 1\.0 knows U, UQ, S, SQ, US and UQS/],
      ['a 1.0 binding in another order', { ep: 'x', lwm2m: '1.0', b: 'QU' }, '</1/0>', '4.00', /LwM2M 1\.0 knows/],
      ['a 1.2 binding from a 1.1 client', { ep: 'x', lwm2m: '1.1', b: 'UM' }, '</1/0>', '4.00', /LwM2M 1\.1 knows each of U, S, N, T/],
      ['a binding letter twice', { ep: 'x', lwm2m: '1.2', b: 'UU' }, '</1/0>', '4.00', /at most once/],
      ['an empty profile ID', { ep: 'x', lwm2m: '1.2', pid: '' }, '</1/0>', '4.00', /profile ID/],
      ['unsupported version', { ep: 'x', lwm2m: '2.0' }, '</1/0>', '4.12', /not supported/],
      ['malformed version', { ep: 'x', lwm2m: 'one' }, '</1/0>', '4.00', /invalid LwM2M version/],
      ['unterminated link', { ep: 'x' }, '</1/0', '4.00', /invalid link format/],
      ['link without brackets', { ep: 'x' }, '1/0', '4.00', /invalid link format/],
      ['non-numeric object id', { ep: 'x' }, '</abc/0>', '4.00', /invalid object link/],
      ['resource-level link', { ep: 'x' }, '</3/0/1>', '4.00', /names a resource/],
      ['object id out of range', { ep: 'x' }, '</70000/0>', '4.00', /invalid object link/],
      ['link outside the root path', { ep: 'x' }, '</lwm2m>;rt="oma.lwm2m",</3/0>', '4.00', /outside the root path/],
      ['duplicate parameter', { ep: 'x' }, '</1/0>', '4.00', /given twice/, ['ep=y']],
      ['an unknown parameter given twice', { ep: 'x' }, '</1/0>', '4.00', /"vendor" given twice/, ['vendor=a', 'vendor=b']],
      ['a flag given twice', { ep: 'x', Q: true }, '</1/0>', '4.00', /"Q" given twice/, ['Q=1']],
      ['a query without a name', { ep: 'x' }, '</1/0>', '4.00', /invalid query parameter "=1"/, ['=1']],
    ];
    for (const [name, query, payload, code, reason, extraQueries] of cases) {
      it(`answers ${code} for ${name}`, async () => {
        const d = await device('probe');
        let registered = false;
        server.on('registered', () => (registered = true));
        const rejected = once(server, 'malformed');
        const extra = extraQueries ? Object.fromEntries(extraQueries.map((q) => [q, true])) : {};
        const response = await d.send(Method.POST, '/rd', { query: { ...query, ...extra }, payload: Buffer.from(payload), contentFormat: 40 });
        assert.equal(formatCode(response.code), code);
        const [detail] = await rejected;
        assert.match(detail.reason, reason);
        // An address that has not answered the server yet gets no more bytes than it sent: the reason, cut to fit.
        assert.ok(detail.reason.startsWith(`${code} ${response.payload.toString()}`), `${response.payload} is the start of ${detail.reason}`);
        assert.equal(registered, false);
        assert.equal(server.registrations.size, 0);
      });
    }

    it('answers 4.15 for a payload that is not link format', async () => {
      const d = await device('probe');
      const response = await d.send(Method.POST, '/rd', { query: { ep: 'x' }, payload: Buffer.from('{}'), contentFormat: 50 });
      assert.equal(formatCode(response.code), '4.15');
    });

    it('answers 4.00 for a payload that is not UTF-8', async () => {
      const d = await device('probe');
      const rejected = once(server, 'malformed');
      const response = await d.send(Method.POST, '/rd', { query: { ep: 'x' }, payload: Buffer.from([0xff, 0xfe, 0x3c]) });
      assert.equal(formatCode(response.code), '4.00');
      assert.match((await rejected)[0].reason, /UTF-8/);
    });

    it('answers 4.05 for GET /rd and 4.04 for unknown paths', async () => {
      const d = await device('probe');
      assert.equal(formatCode((await d.send(Method.GET, '/rd', {})).code), '4.05');
      assert.equal(formatCode((await d.send(Method.PUT, '/rd/abc', {})).code), '4.05');
      assert.equal(formatCode((await d.send(Method.POST, '/nothing', {})).code), '4.04');
      assert.equal(formatCode((await d.send(Method.POST, '/rd/a/b', {})).code), '4.04');
    });

    it('answers 4.00 for an update with a bad lifetime and keeps the registration', async () => {
      const d = await device('keeper');
      const location = await d.register();
      const response = await d.send(Method.POST, location, { query: { lt: 'x' } });
      assert.equal(formatCode(response.code), '4.00');
      assert.equal(server.registrations.getByEndpoint('keeper').lifetime, 60);
    });
  });

  describe('garbage and protocol errors', () => {
    let raw;
    beforeEach(async () => (raw = await RawPeer.open()));
    afterEach(() => raw.close());

    it('rejects an unparsable confirmable datagram with a Reset of its message id', async () => {
      const reply = await raw.exchange(Buffer.from([0x40, 0x02, 0x12, 0x34, 0xff]), port);
      assert.ok(reply, 'a reply');
      const message = decode(reply);
      assert.equal(message.type, 3);
      assert.equal(message.messageId, 0x1234);
    });

    it('drops garbage that has no confirmable header, silently', async () => {
      for (const bytes of [[0xde, 0xad, 0xbe, 0xef, 1, 2, 3], [0x01], [], [0x50, 0x02, 0, 1, 0xff]]) {
        assert.equal(await raw.exchange(Buffer.from(bytes), port, '127.0.0.1', 150), undefined);
      }
    });

    it('answers a CoAP ping with a Reset', async () => {
      const reply = decode(await raw.exchange(Buffer.from([0x40, 0x00, 0xab, 0xcd]), port));
      assert.equal(reply.type, 3);
      assert.equal(reply.messageId, 0xabcd);
    });

    it('answers 4.02 for an unrecognized critical option', async () => {
      const request = encode({
        type: 0, code: Method.POST, messageId: 7, token: Buffer.from([9]),
        options: [{ number: OptionNumber.UriPath, value: Buffer.from('rd') }, { number: 2049 + 0, value: Buffer.from('x') }],
        payload: Buffer.alloc(0),
      });
      const reply = decode(await raw.exchange(request, port));
      assert.equal(formatCode(reply.code), '4.02');
      assert.deepEqual(reply.token, Buffer.from([9]));
    });

    it('answers a duplicated request once and repeats the same answer', async () => {
      const request = encode({
        type: 0, code: Method.POST, messageId: 99, token: Buffer.from([1, 2]),
        options: [{ number: OptionNumber.UriPath, value: Buffer.from('rd') }, { number: OptionNumber.UriQuery, value: Buffer.from('ep=dup') }],
        payload: Buffer.from('</3/0>'),
      });
      let registrations = 0;
      server.on('registered', () => registrations++);
      const first = await raw.exchange(request, port);
      const second = await raw.exchange(request, port);
      assert.deepEqual(second, first);
      assert.equal(registrations, 1);
      assert.equal(formatCode(decode(first).code), '2.01');
    });

    it('answers a non-confirmable request with a non-confirmable response', async () => {
      const request = encode({
        type: 1, code: Method.POST, messageId: 5, token: Buffer.from([3]),
        options: [{ number: OptionNumber.UriPath, value: Buffer.from('rd') }, { number: OptionNumber.UriQuery, value: Buffer.from('ep=non') }],
        payload: Buffer.from('</3/0>'),
      });
      const reply = decode(await raw.exchange(request, port));
      assert.equal(reply.type, 1);
      assert.equal(formatCode(reply.code), '2.01');
      assert.deepEqual(reply.token, Buffer.from([3]));
    });

    it('keeps serving other devices through a burst of garbage', async () => {
      const d = await device('steady');
      await d.register();
      for (let i = 0; i < 2000; i++) {
        const bytes = Buffer.alloc(1 + (i % 40));
        for (let j = 0; j < bytes.length; j++) bytes[j] = (i * 31 + j * 17) & 0xff;
        raw.send(bytes, port);
      }
      await d.update();
      const other = await device('newcomer');
      await other.register();
      assert.equal(server.registrations.size, 2);
    });

    it('reassembles a registration sent in Block1 blocks', async () => {
      const d = await device('big');
      for (let i = 0; i < 120; i++) d.objects.set(10000 + i, new Map([[0, new Map()]]));
      const payload = Buffer.from(d.objectLinks());
      assert.ok(payload.length > 1024);
      const registered = once(server, 'registered');
      let num = 0;
      let response;
      for (let offset = 0; offset < payload.length; offset += 256, num++) {
        const chunk = payload.subarray(offset, offset + 256);
        const more = offset + 256 < payload.length;
        const block1 = num * 16 + (more ? 8 : 0) + 4;
        const datagram = encode({
          type: 0, code: Method.POST, messageId: 1000 + num, token: Buffer.from([num]),
          options: [
            { number: OptionNumber.UriPath, value: Buffer.from('rd') },
            { number: OptionNumber.UriQuery, value: Buffer.from('ep=big') },
            { number: OptionNumber.Block1, value: block1 < 256 ? Buffer.from([block1]) : Buffer.from([block1 >> 8, block1 & 0xff]) },
          ],
          payload: chunk,
        });
        response = decode(await raw.exchange(datagram, port));
        assert.equal(formatCode(response.code), more ? '2.31' : '2.01');
      }
      const [registration] = await registered;
      assert.equal(registration.objects.length, 124);
    });

    it('answers 4.08 for a Block1 block that continues nothing', async () => {
      const datagram = encode({
        type: 0, code: Method.POST, messageId: 77, token: Buffer.from([7]),
        options: [{ number: OptionNumber.UriPath, value: Buffer.from('rd') }, { number: OptionNumber.Block1, value: Buffer.from([0x3c]) }],
        payload: Buffer.alloc(256, 0x41),
      });
      assert.equal(formatCode(decode(await raw.exchange(datagram, port)).code), '4.08');
    });
  });

  it('works over IPv6', async function () {
    const port6 = await freePort('::1');
    const server6 = new Lwm2mServer({ address: '::1', port: port6 });
    try {
      await server6.start();
      const d = await device('v6', { server: { address: '::1', port: port6 } });
      const registered = once(server6, 'registered');
      await d.register();
      const [registration] = await registered;
      assert.equal(registration.address, '::1');
    } finally {
      await server6.stop();
    }
  });

  it('reports a bind error instead of throwing', async () => {
    const clash = new Lwm2mServer({ address: '127.0.0.1', port });
    await assert.rejects(clash.start(), /EADDRINUSE/);
    await clash.stop();
  });
});
