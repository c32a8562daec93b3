'use strict';
const assert = require('node:assert/strict');
const { helper, load, nextMessage, firstMessage } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { RawDevice, OPT, blockOf, blockValue, uint } = require('./support/raw-device');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };

describe('Node-RED: operation nodes', () => {
  let port;
  let device;
  let rebootArgs;

  function flow(node) {
    return [
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
      { id: 'op', z: 'tab', server: 'srv', wires: [['out']], timeout: 2, ...node },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
  }

  /** Sends msg into the operation node and waits for its output or for what the Catch node receives. */
  async function run(node, msg, { expectError = false } = {}) {
    const out = helper.getNode('out');
    const first = firstMessage([out, helper.getNode('caught')], 5000);
    helper.getNode('op').receive(msg);
    const arrived = await first;
    const outcome = arrived.node === out ? { ok: arrived.msg } : { error: arrived.msg };
    if (expectError) {
      assert.ok(outcome.error, `expected an error, got ${JSON.stringify(outcome.ok && outcome.ok.payload)}`);
      return outcome.error;
    }
    assert.ok(outcome.ok, `expected output, got error ${outcome.error && outcome.error.error.message}`);
    return outcome.ok;
  }

  async function loadWithDevice(node, deviceOptions = {}) {
    await load(flow(node));
    device = new SimulatedDevice({ endpoint: 'lamp-1', server: { address: '127.0.0.1', port }, transmission: FAST, ...deviceOptions });
    await device.start();
    rebootArgs = [];
    device.objects.get(3).get(0).set(4, (args) => rebootArgs.push(args));
    await device.register();
  }

  beforeEach(async () => {
    port = await freePort();
  });

  afterEach(async () => {
    if (device) await device.stop();
    device = undefined;
    await helper.unload();
  });

  describe('lwm2m read', () => {
    it('reads a resource with endpoint and path from msg', async () => {
      await loadWithDevice({ type: 'lwm2m-read' });
      const msg = await run({}, { endpoint: 'lamp-1', path: '/3303/0/5700' });
      assert.equal(msg.payload, 21.5);
      assert.equal(msg.code, '2.05');
      assert.equal(msg.contentFormat, 0);
      assert.deepEqual(msg.resources, [{ path: '/3303/0/5700', name: 'Sensor Value', type: 'float', value: 21.5 }]);
      assert.equal(msg.raw, undefined);
    });

    it('reads an instance in the format asked for, with raw bytes', async () => {
      await loadWithDevice({ type: 'lwm2m-read', endpoint: 'lamp-1', path: '/3/0', format: 'senml-json', raw: true });
      const msg = await run({}, { endpoint: 'ignored', path: '/1/0', topic: '/x' });
      assert.equal(msg.contentFormat, 110);
      assert.equal(msg.path, '/3/0');
      assert.equal(msg.payload[0], 'Node-RED LwM2M');
      assert.deepEqual(msg.payload[6], { 0: 1, 1: 5 });
      assert.ok(Buffer.isBuffer(msg.raw));
      assert.ok(msg.resources.some((r) => r.name === 'Battery Level' && r.value === 100));
    });

    it('takes the path from msg.topic and the format from msg.contentFormat', async () => {
      await loadWithDevice({ type: 'lwm2m-read', endpoint: 'lamp-1' });
      const msg = await run({}, { topic: '/3303/0', contentFormat: 'tlv' });
      assert.equal(msg.contentFormat, 11542);
      assert.equal(msg.payload[5701], 'Cel');
    });

    it('reads composite from msg.paths', async () => {
      await loadWithDevice({ type: 'lwm2m-read', endpoint: 'lamp-1', composite: true });
      const msg = await run({}, { paths: ['/3/0/0', '/3303/0/5700'] });
      assert.equal(msg.payload[3][0][0], 'Node-RED LwM2M');
      assert.equal(msg.payload[3303][0][5700], 21.5);
    });

    it('warns when a device announced no SenML format and Read-Composite asks in SenML JSON', async () => {
      await loadWithDevice({ type: 'lwm2m-read', endpoint: 'lamp-1', composite: true }, { contentFormats: [0, 110, 11542] });
      await run({}, { paths: ['/3/0/0'] });
      assert.equal(helper.getNode('op').warn.callCount, 0);
      await device.stop();
      device = new SimulatedDevice({ endpoint: 'lamp-1', server: { address: '127.0.0.1', port }, transmission: FAST, contentFormats: [0, 11542] });
      await device.start();
      await device.register();
      const caught = await run({}, { paths: ['/3/0/0'] }, { expectError: true });
      assert.match(helper.getNode('op').warn.lastCall.args[0], /lamp-1 announced ct="0 11542", no SenML format: composite operations ask it in SenML JSON/);
      assert.match(caught.code, /^4\.(06|15)$/);
    });

    for (const [name, msg, pattern] of [
      ['an unknown device', { endpoint: 'nobody', path: '/3/0/0' }, /"nobody" is not registered/],
      ['a missing endpoint', { path: '/3/0/0' }, /no device/],
      ['a missing path', { endpoint: 'lamp-1' }, /no path/],
      ['a malformed path', { endpoint: 'lamp-1', path: '/3/x' }, /"x" where a number is expected/],
      ['a path too deep', { endpoint: 'lamp-1', path: '/3/0/0/0/0' }, /deeper than a resource instance/],
      ['a resource the device lacks', { endpoint: 'lamp-1', path: '/3/0/99' }, /4\.04 Not Found/],
      ['an unknown content format', { endpoint: 'lamp-1', path: '/3/0', contentFormat: 'xml' }, /unknown content format "xml"/],
      ['a bad timeout', { endpoint: 'lamp-1', path: '/3/0/0', timeout: -1 }, /timeout must be/],
    ]) {
      it(`reports ${name} to Catch nodes with the msg`, async () => {
        // No timeout in the node, so msg.timeout applies.
        await loadWithDevice({ type: 'lwm2m-read', timeout: '' });
        const caught = await run({}, { ...msg, marker: 42 }, { expectError: true });
        assert.equal(caught.marker, 42);
        assert.match(caught.error.message, pattern);
        assert.equal(helper.getNode('op').status.lastCall.args[0].fill, 'red');
      });
    }

    it('sets msg.code and msg.error for a device error', async () => {
      await loadWithDevice({ type: 'lwm2m-read' });
      const caught = await run({}, { endpoint: 'lamp-1', path: '/3/0/99' }, { expectError: true });
      assert.equal(caught.code, '4.04');
      assert.equal(caught.error.code, '4.04');
      assert.equal(helper.getNode('op').status.lastCall.args[0].text, '4.04');
    });

    it('reports a device that stopped answering as a timeout', async () => {
      await loadWithDevice({ type: 'lwm2m-read', timeout: 0.5 });
      await device.stop();
      const caught = await run({}, { endpoint: 'lamp-1', path: '/3/0/0' }, { expectError: true });
      assert.match(caught.error.message, /no (response|acknowledgement)/);
      // The test runtime has no message catalogues: the status names its catalogue entry.
      assert.equal(helper.getNode('op').status.lastCall.args[0].text, 'lwm2m-operations.failure.timeout');
      assert.equal(require('../src/nodes/locales/en-US/lwm2m-operations.json')['lwm2m-operations'].failure.timeout, 'timeout');
    });
  });

  it('lwm2m read: msg.timeout bounds a read that comes in Block2 blocks, every block included', async () => {
    // The node leaves the timeout empty, so msg.timeout applies.
    await load(flow({ type: 'lwm2m-read', timeout: '' }));
    const raw = await RawDevice.register(port, 'slow-blocks');
    try {
      const startedAt = Date.now();
      const caught = run({}, { endpoint: 'slow-blocks', path: '/3/0', timeout: 0.8, contentFormat: 'senml-json' }, { expectError: true });
      const body = Buffer.from(`[{"bn":"/3/0/","n":"0","vs":"${'x'.repeat(400)}"}]`);
      // Each 16-byte block after 100 ms, as the slow device of the issue: the whole would take over 2.5 s.
      for (let request = await raw.next(); request; request = await raw.next(300)) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const num = blockOf(request, OPT.Block2)?.num ?? 0;
        await raw.reply(request, { code: 69, options: [{ number: OPT.ContentFormat, value: uint(110) }, { number: OPT.Block2, value: blockValue(num, (num + 1) * 16 < body.length, 0) }], payload: body.subarray(num * 16, num * 16 + 16) });
      }
      const msg = await caught;
      assert.match(msg.error.message, /within 800 ms/);
      assert.equal(helper.getNode('op').status.lastCall.args[0].text, 'lwm2m-operations.failure.timeout');
      assert.ok(Date.now() - startedAt < 2000);
    } finally {
      await raw.close();
    }
  });

  describe('lwm2m write', () => {
    it('writes an instance by resource names (partial update)', async () => {
      await loadWithDevice({ type: 'lwm2m-write', endpoint: 'lamp-1', path: '/1/0', mode: 'update' });
      const msg = await run({}, { payload: { Lifetime: 300, Binding: 'UQ' } });
      assert.equal(msg.code, '2.04');
      assert.equal(device.getResource('/1/0/1'), 300);
      assert.equal(device.getResource('/1/0/7'), 'UQ');
    });

    it('replaces a resource as text', async () => {
      await loadWithDevice({ type: 'lwm2m-write', path: '/3308/0/5900' });
      await run({}, { endpoint: 'lamp-1', payload: 22.5 });
      assert.equal(device.getResource('/3308/0/5900'), 22.5);
      assert.equal(device.received.at(-1).contentFormat, 0);
    });

    it('writes composite', async () => {
      await loadWithDevice({ type: 'lwm2m-write', endpoint: 'lamp-1', mode: 'composite', format: 'senml-json' });
      await run({}, { payload: { '/1/0/1': 120, '/3308/0/5900': 19 } });
      assert.equal(device.getResource('/1/0/1'), 120);
      assert.equal(device.getResource('/3308/0/5900'), 19);
      assert.equal(device.received.at(-1).contentFormat, 110);
    });

    for (const [name, msg, pattern] of [
      ['a value of the wrong type', { path: '/1/0/1', payload: 'soon' }, /Lifetime\) is integer: "soon" is not an integer/],
      ['a read-only resource', { path: '/3/0/0', payload: 'x' }, /Manufacturer\) is not writable/],
      ['an unknown resource name', { path: '/1/0', payload: { Colour: 'red' } }, /no resource named "Colour"/],
      ['no payload', { path: '/1/0/1' }, /msg.payload is empty/],
      ['an object path', { path: '/1', payload: { 1: 5 } }, /not to \/1/],
    ]) {
      it(`refuses ${name} before sending anything`, async () => {
        await loadWithDevice({ type: 'lwm2m-write', endpoint: 'lamp-1' });
        const before = device.received.length;
        const caught = await run({}, msg, { expectError: true });
        assert.match(caught.error.message, pattern);
        assert.equal(device.received.length, before);
      });
    }
  });

  describe('lwm2m execute, create, delete, discover, write-attributes', () => {
    it('executes Reboot with arguments from msg.payload', async () => {
      await loadWithDevice({ type: 'lwm2m-execute', endpoint: 'lamp-1', path: '/3/0/4' });
      await run({}, { payload: "0='soon'" });
      await run({}, { payload: '' });
      await run({}, { payload: "0='a,b',1" });
      assert.deepEqual(rebootArgs, ["0='soon'", '', "0='a,b',1"]);
    });

    it('refuses malformed execute arguments', async () => {
      await loadWithDevice({ type: 'lwm2m-execute', endpoint: 'lamp-1', path: '/3/0/4' });
      const caught = await run({}, { payload: "x='y'" }, { expectError: true });
      assert.match(caught.error.message, /invalid execute argument/);
      const spaced = await run({}, { payload: "0='a b'" }, { expectError: true });
      assert.match(spaced.error.message, /" " at character 4 is not allowed in a value/);
      assert.deepEqual(rebootArgs, []);
    });

    it('creates an instance with the first free id', async () => {
      await loadWithDevice({ type: 'lwm2m-create', endpoint: 'lamp-1', path: '/3303' });
      const created = await run({}, { payload: { 'Sensor Value': 30, 5701: 'Cel' } });
      assert.deepEqual(created.payload, { instanceId: 1, location: '/3303/1' });
      assert.equal(created.code, '2.01');
      assert.equal(device.getResource('/3303/1/5700'), 30);
    });

    for (const payload of [undefined, '', {}]) {
      it(`creates an instance with the device's defaults from ${JSON.stringify(payload) ?? 'no payload'}: no payload sent, the device picks the id`, async () => {
        await loadWithDevice({ type: 'lwm2m-create', endpoint: 'lamp-1', path: '/3303' });
        const created = await run({}, { payload });
        assert.deepEqual(created.payload, { instanceId: 1, location: '/3303/1' });
        assert.equal(created.code, '2.01');
        assert.ok(device.objects.get(3303).has(1));
      });
    }

    it('refuses an instance id without values to carry it, before sending', async () => {
      await loadWithDevice({ type: 'lwm2m-create', endpoint: 'lamp-1', path: '/3303' });
      const caught = await run({}, { payload: {}, instanceId: 4 }, { expectError: true });
      assert.match(caught.error.message, /instance id \(4\) travels with resource values/);
      assert.equal(device.objects.get(3303).has(4), false);
    });

    it('deletes an instance', async () => {
      await loadWithDevice({ type: 'lwm2m-delete', endpoint: 'lamp-1' });
      device.objects.get(3303).set(1, new Map());
      const deleted = await run({}, { path: '/3303/1' });
      assert.equal(deleted.code, '2.02');
      assert.equal(device.objects.get(3303).has(1), false);
    });

    it('discovers with names', async () => {
      await loadWithDevice({ type: 'lwm2m-discover', endpoint: 'lamp-1', path: '/3303/0' });
      const msg = await run({}, {});
      assert.deepEqual(msg.payload.find((l) => l.path === '/3303/0/5700'), { path: '/3303/0/5700', name: 'Sensor Value', attributes: {} });
      assert.equal(msg.payload[0].name, 'Temperature');
    });

    it('writes attributes from the node', async () => {
      await loadWithDevice({ type: 'lwm2m-write-attributes', endpoint: 'lamp-1', path: '/3303/0/5700', pmin: '5', pmax: '60', st: '' });
      const msg = await run({}, {});
      assert.deepEqual(msg.payload, { pmin: 5, pmax: 60 });
      assert.deepEqual(device.attributes.get('/3303/0/5700'), { pmin: '5', pmax: '60' });
    });

    it('writes attributes from msg.payload and refuses impossible ones', async () => {
      await loadWithDevice({ type: 'lwm2m-write-attributes', endpoint: 'lamp-1', path: '/3303/0/5700' });
      await run({}, { payload: { gt: 30, lt: 10, st: 2 } });
      assert.deepEqual(device.attributes.get('/3303/0/5700'), { gt: '30', lt: '10', st: '2' });
      const caught = await run({}, { payload: { gt: 10, lt: 30 } }, { expectError: true });
      assert.match(caught.error.message, /lt \(30\) must be less than gt \(10\)/);
    });
  });

  it('types custom objects from the server node\'s object definitions folder', async () => {
    const { buildObjectTree } = require('../dist/sim/object-tree');
    await load([
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, modelFolder: require('node:path').join(__dirname, 'fixtures', 'objects') },
      { id: 'op', z: 'tab', type: 'lwm2m-write', server: 'srv', endpoint: 'lamp-1', path: '/32769/0', mode: 'update', wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ]);
    // The broken fixture is reported, once (the test runtime leaves message keys untranslated).
    assert.equal(helper.getNode('srv').warn.args.filter((a) => a[0] === 'lwm2m-server.errors.model').length, 1);
    device = new SimulatedDevice({ endpoint: 'lamp-1', server: { address: '127.0.0.1', port }, transmission: FAST, objects: buildObjectTree({ 32769: { 0: { 0: 50, 1: false, 2: 1200 } } }) });
    await device.start();
    await device.register();
    await run({}, { payload: { 'Dim Level': '80', 'lamp on': 1 } });
    assert.equal(device.getResource('/32769/0/0'), 80);
    assert.equal(device.getResource('/32769/0/1'), true);
    const caught = await run({}, { payload: { 'Burn Hours': 5 } }, { expectError: true });
    assert.match(caught.error.message, /Burn Hours\) is not writable/);
  });

  it('reports a missing server on every operation node', async () => {
    await load([
      { id: 'tab', type: 'tab' },
      { id: 'op', z: 'tab', type: 'lwm2m-read', server: 'none', wires: [] },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ]);
    const caught = nextMessage(helper.getNode('caught'));
    helper.getNode('op').receive({ payload: 1 });
    assert.match((await caught).error.message, /lwm2m-operations.errors.noServer/);
  });
});
