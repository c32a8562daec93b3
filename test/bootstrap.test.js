'use strict';
const assert = require('node:assert/strict');
const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
const { parseBootstrapConfig, describeConfig, BootstrapConfigError } = require('../dist/lib/bootstrap/bootstrap-config');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ExecuteRequest } = require('../dist/lib/lwm2m/requests/execute');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encode, decode } = require('../dist/lib/coap/message');
const { formatCode } = require('../dist/lib/coap/codes');
const { freePort, RawPeer, once } = require('./support/udp');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };

describe('bootstrap server', () => {
  let bootstrap;
  let lwm2m;
  let bsPort;
  let port;
  const devices = [];

  async function device(endpoint, options = {}) {
    const d = new SimulatedDevice({
      endpoint,
      server: { address: '127.0.0.1', port: 1 },
      bootstrapServer: { address: '127.0.0.1', port: bsPort },
      objects: buildObjectTree({ 1: { 0: { 0: 99, 1: 10, 9: () => undefined } }, 3: { 0: { 0: 'Acme' } } }),
      transmission: FAST,
      ...options,
    });
    await d.start();
    devices.push(d);
    return d;
  }

  beforeEach(async () => {
    [bsPort, port] = [await freePort(), await freePort()];
    bootstrap = new BootstrapServer({ address: '127.0.0.1', port: bsPort, transmission: FAST, requestTimeoutMs: 1000 });
    await bootstrap.start();
    lwm2m = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST });
    await lwm2m.start();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await bootstrap.stop();
    await lwm2m.stop();
  });

  it('provisions a device with no server, which then registers to the LwM2M server', async () => {
    bootstrap.setConfig('fresh', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, shortServerId: 7, lifetime: 120, binding: 'U' }));
    const d = await device('fresh');
    const started = once(bootstrap, 'started');
    const finished = once(bootstrap, 'finished');
    const target = await d.bootstrap();
    assert.deepEqual(target, { address: '127.0.0.1', port });
    assert.equal((await started)[0], 'fresh');
    const [, summary] = await finished;
    assert.deepEqual(summary.servers, [{ uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec', shortServerId: 7, lifetime: 120, binding: 'U' }]);
    // Bootstrap-Discover and Bootstrap-Read came first, and told what the device had.
    assert.deepEqual(d.received.slice(0, 3).map((r) => `${r.method} ${r.path}`), ['1 /', '1 /1', '4 /']);
    assert.deepEqual(summary.device, {
      lwm2mVersion: '1.1',
      objects: [1, 3],
      instances: ['/1/0', '/3/0'],
      previousServers: [99],
      format: 'application/vnd.oma.lwm2m+tlv',
      written: ['/0/0', '/1/0'],
      notes: [],
    });
    // What the device holds now: the old Server instance is gone, the new accounts are in.
    assert.equal(d.getResource('/0/0/0'), `coap://127.0.0.1:${port}`);
    assert.equal(d.getResource('/0/0/2'), 3);
    assert.equal(d.getResource('/0/0/10'), 7);
    assert.equal(d.getResource('/1/0/0'), 7);
    assert.equal(d.getResource('/1/0/1'), 120);
    assert.equal(d.getResource('/3/0/0'), 'Acme', 'the Device object stays');
    const registered = once(lwm2m, 'registered');
    await d.register();
    assert.equal((await registered)[0].endpoint, 'fresh');
  });

  it('never hands key material to a device that did not authenticate over DTLS: 4.03 and a failed event', async () => {
    bootstrap.setConfig('meter-9', parseBootstrapConfig({ uri: 'coaps://127.0.0.1:5684', securityMode: 'psk', pskIdentity: 'meter-9-id', pskKey: '6b65796b65796b6579' }));
    const failed = once(bootstrap, 'failed');
    // Anyone can send POST /bs?ep=meter-9 over plain UDP.
    const raw = await RawPeer.open();
    try {
      const request = encode({ type: 0, code: 2, messageId: 9, token: Buffer.from([9]), options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from('ep=meter-9') }], payload: Buffer.alloc(0) });
      const answer = decode(await raw.exchange(request, bsPort));
      assert.equal(formatCode(answer.code), '4.03');
      const [endpoint, reason] = await failed;
      assert.equal(endpoint, 'meter-9');
      assert.match(reason, /secret keys \(PSK key of server 1\).*only to a device that authenticated \(DTLS or TLS\)/);
      assert.equal(reason.includes('6b6579'), false);
      // Nothing else came: no Bootstrap-Write of /0/0/5.
      assert.equal(await raw.next(300), undefined);
      // Nor in one answer (LwM2M 1.2 Bootstrap-Pack-Request).
      const pack = encode({ type: 0, code: 1, messageId: 10, token: Buffer.from([10]), options: [{ number: 11, value: Buffer.from('bspack') }, { number: 15, value: Buffer.from('ep=meter-9') }], payload: Buffer.alloc(0) });
      const packAnswer = decode(await raw.exchange(pack, bsPort));
      assert.equal(formatCode(packAnswer.code), '4.03');
      assert.equal(packAnswer.payload.toString('hex').includes('6b6579'), false);
    } finally {
      await raw.close();
    }
  });

  it('runs a bounded number of sessions at once: 5.03 beyond, as forged requests would pile up', async () => {
    await bootstrap.stop();
    bootstrap = new BootstrapServer({ address: '127.0.0.1', port: bsPort, transmission: FAST, requestTimeoutMs: 1000, maxSessions: 2 });
    bootstrap.setDefaultConfig(parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}` }));
    await bootstrap.start();
    // Devices that ask and then never answer (not even the ping) hold their sessions.
    const silent = await Promise.all([0, 1, 2].map(() => RawPeer.open()));
    const failures = [];
    bootstrap.on('failed', (endpoint) => failures.push(endpoint));
    try {
      for (const peer of silent) peer.socket.removeAllListeners('message');
      const request = (i) => encode({ type: 0, code: 2, messageId: i, token: Buffer.from([i]), options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from(`ep=silent-${i}`) }], payload: Buffer.alloc(0) });
      await silent[0].send(request(0), bsPort);
      await silent[1].send(request(1), bsPort);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const third = new Promise((resolve) => silent[2].socket.once('message', resolve));
      await silent[2].send(request(2), bsPort);
      assert.equal(formatCode(decode(await third).code), '5.03');
      // A real device gets its turn once the silent ones have given up.
      await until(() => failures.length === 2, 5000, 'the silent sessions to fail');
      await (await device('patient')).bootstrap();
    } finally {
      await Promise.all(silent.map((p) => p.close()));
    }
  });

  it('writes PSK accounts, the bootstrap account and ACLs over plain UDP when allowed, and keeps keys out of events', async () => {
    await bootstrap.stop();
    bootstrap = new BootstrapServer({ address: '127.0.0.1', port: bsPort, transmission: FAST, requestTimeoutMs: 1000, allowKeysInClear: true });
    await bootstrap.start();
    const withAcl = (d) => d.objects.set(2, new Map());
    bootstrap.setConfig('secure', parseBootstrapConfig({
      servers: [{ uri: 'coaps://127.0.0.1:5684', securityMode: 'psk', pskIdentity: 'secure-id', pskKey: '000102030405060708090a0b0c0d0e0f', shortServerId: 2 }],
      bootstrapServer: { uri: `coap://127.0.0.1:${bsPort}` },
      acl: [{ objectId: 3, instanceId: 0, rights: { 2: 1 }, owner: 2 }],
    }));
    const d = await device('secure');
    withAcl(d);
    const finished = once(bootstrap, 'finished');
    assert.deepEqual(await d.bootstrap(), { address: '127.0.0.1', port: 5684 });
    const [, summary] = await finished;
    assert.equal(d.getResource('/0/0/1'), true, 'bootstrap account first');
    assert.equal(d.getResource('/0/1/2'), 0, 'PSK mode');
    assert.deepEqual(d.getResource('/0/1/3'), Buffer.from('secure-id'));
    assert.deepEqual(d.getResource('/0/1/5'), Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'));
    assert.equal(d.getResource('/2/0/0'), 3);
    assert.deepEqual([...d.getResource('/2/0/2')], [[2, 1]]);
    assert.equal(JSON.stringify(summary).includes('0001020304'), false);
    assert.equal(summary.servers[0].pskIdentity, 'secure-id');
  });

  it('writes the accounts in TLV to 1.0 and 1.1 devices whatever their pct, in pct to a 1.2 device, and in TLV when that is refused', async () => {
    const writeFormats = (d) => [...new Set(d.received.filter((r) => r.method === 3).map((w) => w.contentFormat))];
    for (const [name, options, formats, format, notes] of [
      ['mandatory-tlv', { lwm2mVersion: '1.1', preferredFormat: 110 }, [11542], 'application/vnd.oma.lwm2m+tlv', []],
      ['modern', { lwm2mVersion: '1.2', preferredFormat: 110 }, [110], 'application/senml+json', []],
      ['picky', { lwm2mVersion: '1.2', preferredFormat: 110, contentFormats: [0, 42, 11542] }, [110, 11542], 'application/vnd.oma.lwm2m+tlv', [/Bootstrap-Write \/0\/0 in application\/senml\+json: device answered 4\.15; written in TLV/]],
    ]) {
      bootstrap.setConfig(name, parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec' }));
      const d = await device(name, options);
      const finished = once(bootstrap, 'finished');
      await d.bootstrap();
      const [, summary] = await finished;
      assert.deepEqual(writeFormats(d), formats, name);
      assert.equal(summary.device.format, format, name);
      const fallbacks = summary.device.notes.filter((note) => note.startsWith('Bootstrap-Write'));
      assert.equal(fallbacks.length, notes.length, name);
      notes.forEach((pattern, i) => assert.match(fallbacks[i], pattern));
      assert.equal(d.getResource('/0/0/0'), `coap://127.0.0.1:${port}`, name);
    }
  });

  it('keeps the device\'s own bootstrap account: the new accounts take the ids around it', async () => {
    bootstrap.setConfig('keeper', parseBootstrapConfig({ servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 1 }, { uri: 'coap://127.0.0.1:5999', shortServerId: 2 }] }));
    const objects = buildObjectTree({
      0: { 0: { 0: 'coap://127.0.0.1:5999', 1: false, 2: 3, 10: 9 }, 1: { 0: `coap://127.0.0.1:${bsPort}`, 1: true, 2: 3 } },
      1: { 0: { 0: 9, 1: 10 } },
      3: { 0: { 0: 'Acme' } },
    });
    const d = await device('keeper', { objects });
    const finished = once(bootstrap, 'finished');
    await d.bootstrap();
    const [, summary] = await finished;
    assert.equal(summary.device.bootstrapAccount, '/0/1');
    assert.deepEqual(summary.device.written, ['/0/0', '/1/0', '/0/2', '/1/1']);
    assert.equal(d.getResource('/0/1/1'), true, 'the bootstrap account is still there');
    assert.equal(d.getResource('/0/1/0'), `coap://127.0.0.1:${bsPort}`);
    assert.equal(d.getResource('/0/0/10'), 1);
    assert.equal(d.getResource('/0/2/10'), 2);
  });

  /**
   * A device played byte by byte: asks for bootstrap as `endpoint`, answers
   * each request with answer(step) (a CoAP code, or {code, payload, options}),
   * and resolves with the steps ("GET /", "PUT /0/1 11542"...) once Bootstrap-Finish came.
   */
  async function rawBootstrap(endpoint, answer, query = []) {
    const raw = await RawPeer.open();
    try {
      const ask = encode({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), options: [{ number: 11, value: Buffer.from('bs') }, ...[`ep=${endpoint}`, ...query].map((q) => ({ number: 15, value: Buffer.from(q) }))], payload: Buffer.alloc(0) });
      assert.equal(formatCode(decode(await raw.exchange(ask, bsPort)).code), '2.04');
      const steps = [];
      for (;;) {
        const request = decode(await raw.next(3000));
        const method = ['', 'GET', 'POST', 'PUT', 'DELETE'][request.code];
        const format = request.options.find((o) => o.number === 12);
        const step = `${method} /${request.options.filter((o) => o.number === 11).map((o) => o.value.toString()).join('/')}${format ? ` ${[...format.value].reduce((a, b) => a * 256 + b, 0)}` : ''}`;
        steps.push(step);
        const reply = answer(step, request);
        const response = typeof reply === 'number' ? { code: reply } : reply;
        await raw.send(encode({ type: 2, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0), ...response }), bsPort);
        if (step.startsWith('POST /bs')) return steps;
      }
    } finally {
      await raw.close();
    }
  }

  const linkAnswer = (text) => ({ code: 69, options: [{ number: 12, value: Buffer.from([40]) }], payload: Buffer.from(text) });

  it('spares the bootstrap account the device lists in Bootstrap-Discover, also when deleting instance by instance', async () => {
    bootstrap.setConfig('spare', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, shortServerId: 7 }));
    const finished = once(bootstrap, 'finished', 5000);
    // As the issue's device answers: its bootstrap account /0/0 has a uri and no ssid; it refuses Bootstrap-Delete of "/".
    const discover = '</>;lwm2m=1.1,</0/0>;uri="coap://127.0.0.1:5685",</0/1>;ssid=7;uri="coap://old.example:5683",</1/0>;ssid=7,</3/0>';
    const steps = await rawBootstrap('spare', (step) => (step === 'GET /' ? linkAnswer(discover) : step === 'GET /1' ? 133 : step === 'DELETE /' ? 133 : step.startsWith('DELETE') ? 66 : step.startsWith('PUT') ? 68 : 68));
    assert.deepEqual(steps, ['GET /', 'GET /1', 'DELETE /', 'DELETE /0/1', 'DELETE /1', 'DELETE /2', 'PUT /0/1 11542', 'PUT /1/0 11542', 'POST /bs']);
    const [, summary] = await finished;
    assert.equal(summary.device.bootstrapAccount, '/0/0');
    assert.deepEqual(summary.device.written, ['/0/1', '/1/0']);
  });

  for (const [name, discover] of [
    ['quoted, as the device of the issue writes it', 'lwm2m="1.0",</0/0>,</0/1>;ssid=3,</1/0>;ssid=3,</3/0>'],
    ['unquoted, as Wakaama 1.0 writes it', 'lwm2m=1.0,</0/0>,</0/1>;ssid=3,</1/0>;ssid=3,</3/0>'],
  ]) {
    it(`reads an LwM2M 1.0 Bootstrap-Discover answer that starts with its version (${name})`, async () => {
      bootstrap.setConfig('old-timer', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, shortServerId: 3 }));
      const finished = once(bootstrap, 'finished', 5000);
      const steps = await rawBootstrap('old-timer', (step) => (step === 'GET /' ? linkAnswer(discover) : step === 'GET /1' ? 133 : step.startsWith('DELETE') ? 66 : 68));
      const [, summary] = await finished;
      assert.deepEqual(summary.device.notes, ['Bootstrap-Read /1: device answered 4.05']);
      assert.equal(summary.device.lwm2mVersion, '1.0');
      assert.deepEqual(summary.device.objects, [0, 1, 3]);
      assert.equal(summary.device.bootstrapAccount, '/0/0');
      assert.deepEqual(steps.filter((step) => step.startsWith('PUT')), ['PUT /0/1 11542', 'PUT /1/0 11542']);
    });
  }

  it('uses the default configuration for unknown endpoints when there is one', async () => {
    bootstrap.setDefaultConfig(parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}` }));
    const d = await device('anyone');
    await d.bootstrap();
    assert.equal(d.getResource('/1/0/0'), 1);
  });

  it('refuses an unknown endpoint with 4.00 and a failed event', async () => {
    const d = await device('stranger');
    const failed = once(bootstrap, 'failed');
    // The device (an address the server has not heard back from) gets the reason cut to the size of its request; the event has it whole.
    await assert.rejects(d.bootstrap(), (error) => error.responseCode === '4.00' && /server answered 4\.00 no b/.test(error.message));
    assert.match((await failed)[1], /no bootstrap configuration for "stranger"/);
  });

  it('answers malformed bootstrap requests with clear errors', async () => {
    const d = await device('probe');
    const ask = (query) => d.send(2, '/bs', { query });
    d.options.server = { address: '127.0.0.1', port: bsPort };
    const rejected = once(bootstrap, 'malformed');
    assert.equal(formatCode((await ask({})).code), '4.00');
    assert.match((await rejected)[0].reason, /missing endpoint client name/);
    assert.equal(formatCode((await ask({ ep: 'x', pct: 'json' })).code), '4.00');
    assert.equal(formatCode((await d.send(1, '/bs', {})).code), '4.05');
    assert.equal(formatCode((await d.send(2, '/rd', {})).code), '4.04');
  });

  it('skips ACLs for a device without an Access Control object', async () => {
    bootstrap.setConfig('no-acl', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, acl: [{ objectId: 3, instanceId: 0, rights: { 1: 1 } }] }));
    const d = await device('no-acl');
    const finished = once(bootstrap, 'finished');
    await d.bootstrap();
    assert.deepEqual((await finished)[1].device.notes, ['the device has no Access Control object (/2): ACL not written']);
    assert.equal(d.objects.has(2), false);
  });

  it('provisions a device that refuses Bootstrap-Discover, writing everything configured', async () => {
    bootstrap.setConfig('old', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, acl: [{ objectId: 3, instanceId: 0, rights: { 1: 1 } }] }));
    const raw = await RawPeer.open();
    try {
      const finished = once(bootstrap, 'finished', 5000);
      const request = encode({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from('ep=old') }], payload: Buffer.alloc(0) });
      await raw.exchange(request, bsPort);
      const answer = async (code) => {
        const next = decode(await raw.next());
        await raw.send(encode({ type: 2, code, messageId: next.messageId, token: next.token, options: [], payload: Buffer.alloc(0) }), bsPort);
        return `${formatCode(next.code)} ${next.options.filter((o) => o.number === 11).map((o) => o.value.toString()).join('/')}`;
      };
      const steps = [];
      steps.push(await answer(133)); // Discover: 4.05
      steps.push(await answer(66)); // Delete /
      steps.push(await answer(68)); // Write /0/0
      steps.push(await answer(68)); // Write /1/0
      steps.push(await answer(68)); // Write /2/0: nothing said the device lacks it
      steps.push(await answer(68)); // Finish
      assert.deepEqual(steps, ['0.01 ', '0.04 ', '0.03 0/0', '0.03 1/0', '0.03 2/0', '0.02 bs']);
      const [, summary] = await finished;
      assert.deepEqual(summary.device.notes, ['Bootstrap-Discover: device answered 4.05']);
    } finally {
      await raw.close();
    }
  });

  it('fails the session with the reason when the device refuses a write', async () => {
    bootstrap.setConfig('refuser', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}` }));
    const raw = await RawPeer.open();
    try {
      const failed = once(bootstrap, 'failed', 5000);
      const request = encode({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from('ep=refuser') }], payload: Buffer.alloc(0) });
      assert.equal(formatCode(decode(await raw.exchange(request, bsPort)).code), '2.04');
      const discover = decode(await raw.next());
      await raw.send(encode({ type: 2, code: 133, messageId: discover.messageId, token: discover.token, options: [], payload: Buffer.alloc(0) }), bsPort);
      const del = decode(await raw.next());
      await raw.send(encode({ type: 2, code: 66, messageId: del.messageId, token: del.token, options: [], payload: Buffer.alloc(0) }), bsPort);
      const write = decode(await raw.next());
      await raw.send(encode({ type: 2, code: 133, messageId: write.messageId, token: write.token, options: [], payload: Buffer.from('read-only') }), bsPort);
      const [endpoint, reason] = await failed;
      assert.equal(endpoint, 'refuser');
      assert.match(reason, /Bootstrap-Write \/0\/0: device answered 4\.05 Method Not Allowed: read-only/);
    } finally {
      await raw.close();
    }
  });

  it('fails the session when the device stops answering', async () => {
    bootstrap.setConfig('vanisher', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}` }));
    const raw = await RawPeer.open();
    try {
      const failed = once(bootstrap, 'failed', 5000);
      const request = encode({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from('ep=vanisher') }], payload: Buffer.alloc(0) });
      await raw.exchange(request, bsPort);
      assert.match((await failed)[1], /Bootstrap-Discover \/: no (acknowledgement|response)/);
    } finally {
      await raw.close();
    }
  });

  it('bootstraps again when the LwM2M server executes the Bootstrap-Request Trigger (/1/0/9)', async () => {
    bootstrap.setConfig('rebooted', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, lifetime: 300 }));
    const d = await device('rebooted');
    await d.bootstrap();
    await d.register();
    bootstrap.setConfig('rebooted', parseBootstrapConfig({ uri: `coap://127.0.0.1:${port}`, lifetime: 600 }));
    const reRegistered = once(lwm2m, 'registered', 5000);
    await lwm2m.send('rebooted', new ExecuteRequest(Lwm2mPath.parse('/1/0/9')));
    const [registration, replaced] = await reRegistered;
    assert.ok(replaced);
    assert.equal(registration.lifetime, 60, 'the simulator registers with its own lifetime');
    assert.equal(d.getResource('/1/0/1'), 600, 'the new configuration was written');
  });

  describe('configuration', () => {
    for (const [name, input, pattern] of [
      ['no server', {}, /at least one server/],
      ['a bad uri', { uri: 'http://x' }, /uri must look like coap/],
      ['psk without a key', { uri: 'coaps://h:5684', securityMode: 'psk', pskIdentity: 'a' }, /needs pskIdentity and pskKey/],
      ['psk on coap://', { uri: 'coap://h', securityMode: 'psk', pskIdentity: 'a', pskKey: '00' }, /needs a coaps/],
      ['nosec on coaps://', { uri: 'coaps://h' }, /needs securityMode/],
      ['a key that is not hex', { uri: 'coaps://h', securityMode: 'psk', pskIdentity: 'a', pskKey: 'xyz' }, /must be hex/],
      ['an unknown mode', { uri: 'coap://h', securityMode: 'magic' }, /securityMode must be/],
      ['a bad short server id', { uri: 'coap://h', shortServerId: 0 }, /shortServerId/],
      ['a bad binding', { uri: 'coap://h', binding: 'X' }, /binding/],
      ['duplicate short ids', { servers: [{ uri: 'coap://a' }, { uri: 'coap://b' }] }, /share a shortServerId/],
      ['a string', 'coap://h', /is an object/],
    ]) {
      it(`refuses ${name}`, () => assert.throws(() => parseBootstrapConfig(input), (error) => error instanceof BootstrapConfigError && pattern.test(error.message)));
    }

    it('describes a configuration without its secrets', () => {
      const config = parseBootstrapConfig({ uri: 'coaps://h:5684', securityMode: 'psk', pskIdentity: 'id', pskKey: 'deadbeef' });
      assert.equal(JSON.stringify(describeConfig(config)).includes('deadbeef'), false);
    });
  });
});
