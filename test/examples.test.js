'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { helper } = require('./support/flow');
const { nodeRedModule } = require('./support/node-red');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { load, nextMessage } = require('./support/flow');
const { FakeCse } = require('./support/fake-cse');
const os = require('node:os');
const { SimulatedFirmware } = require('../dist/sim/firmware-update');
const { firmwarePackage } = require('./support/firmware');

const NODES = [
  require('../dist/nodes/lwm2m-server.js'),
  require('../dist/nodes/lwm2m-events.js'),
  require('../dist/nodes/lwm2m-operations.js'),
  require('../dist/nodes/lwm2m-observe.js'),
  require('../dist/nodes/lwm2m-bootstrap-server.js'),
  require('../dist/nodes/lwm2m-bootstrap.js'),
  require('../dist/nodes/lwm2m-onem2m.js'),
  require('../dist/nodes/lwm2m-firmware.js'),
  nodeRedModule('@node-red/nodes/core/storage/10-file.js'),
  nodeRedModule('@node-red/nodes/core/common/25-catch.js'),
  nodeRedModule('@node-red/nodes/core/common/20-inject.js'),
  nodeRedModule('@node-red/nodes/core/common/90-comment.js'),
];

const examplesDir = path.join(__dirname, '..', 'examples');

/** Loads an example as Node-RED would import it, on a free port, with debug and function nodes as test probes. */
async function loadExample(file, port, bsPort, cseUrl, files = {}) {
  const flow = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
  const tab = flow.find((n) => n.z).z;
  const nodes = flow.map((node) => {
    if (node.type === 'lwm2m-server') return { ...node, port: String(port), dtlsPort: '' };
    if (node.type === 'lwm2m-bootstrap-server') {
      const endpoints = node.endpoints.map((entry) => ({ ...entry, uri: entry.uri.replace(':5683', `:${port}`) }));
      return { ...node, port: String(bsPort), endpoints };
    }
    if (node.type === 'lwm2m-onem2m') return { ...node, cseUrl };
    if (node.type === 'file in') return { ...node, filename: files[node.filename] ?? node.filename };
    if (node.type === 'debug' || node.type === 'function') return { id: node.id, z: node.z, type: 'helper', name: node.name, wires: [] };
    return node;
  });
  await load([{ id: tab, type: 'tab' }, ...nodes], {}, NODES);
  return flow;
}

function probe(flow, name) {
  const node = flow.find((n) => n.name === name);
  assert.ok(node, `example has a node named ${name}`);
  return helper.getNode(node.id);
}

const next = (node) => nextMessage(node, 5000);

describe('example flows', () => {
  let port;
  let device;

  beforeEach(async () => {
    port = await freePort();
    device = new SimulatedDevice({ endpoint: 'my-sensor', server: { address: '127.0.0.1', port }, transmission: { ackTimeoutMs: 100 } });
    await device.start();
  });

  afterEach(async () => {
    await device.stop();
    await helper.unload();
  });

  const triggered = [
    ['reboot-device.json', 'reboot my-sensor', 'rebooted', (msg) => assert.equal(msg.code, '2.04')],
    ['write-server-lifetime.json', 'lifetime 300 s', 'written', (msg) => {
      assert.equal(msg.code, '2.04');
      assert.equal(device.getResource('/1/0/1'), 300);
    }],
    ['create-instance.json', 'new sensor', 'created', (msg) => {
      assert.deepEqual(msg.payload, { instanceId: 1, location: '/3303/1' });
      assert.equal(device.getResource('/3303/1/5700'), 19.5);
    }],
    ['delete-instance.json', 'delete /3303/1', 'deleted', (msg) => assert.equal(msg.code, '2.02'), () => device.objects.get(3303).set(1, new Map())],
    ['discover-device.json', 'discover /3', 'links', (msg) => assert.ok(msg.payload.some((l) => l.path === '/3/0/0' && l.name === 'Manufacturer'))],
    ['write-attributes.json', 'attributes', 'attributes written', (msg) => {
      assert.deepEqual(msg.payload, { pmin: 5, pmax: 60, st: 0.5 });
      assert.deepEqual(device.attributes.get('/3303/0/5700'), { pmin: '5', pmax: '60', st: '0.5' });
    }],
  ];
  for (const [file, injectName, outputName, check, prepare] of triggered) {
    it(`${file} works against a device`, async () => {
      const flow = await loadExample(file, port);
      await device.register();
      if (prepare) prepare();
      const output = next(probe(flow, outputName));
      probe(flow, injectName).receive({});
      check(await output);
    });
  }

  it('write-server-lifetime.json reports a device that is not there to its catch node', async () => {
    const flow = await loadExample('write-server-lifetime.json', port);
    const errors = next(probe(flow, 'write errors'));
    probe(flow, 'lifetime 300 s').receive({});
    assert.match((await errors).error.message, /"my-sensor" is not registered/);
  });

  it('read-device-on-register.json reads the Device object of a device that registers', async () => {
    const flow = await loadExample('read-device-on-register.json', port);
    const output = next(probe(flow, 'device information'));
    await device.register();
    const msg = await output;
    assert.equal(msg.endpoint, 'my-sensor');
    assert.equal(msg.payload[0], 'Node-RED LwM2M');
    assert.ok(msg.resources.some((r) => r.name === 'Firmware Version'));
  });

  it('observe-temperature.json observes every device that registers and passes on each notification', async () => {
    const flow = await loadExample('observe-temperature.json', port);
    const temperatures = probe(flow, 'temperatures');
    await device.register();
    const first = await next(temperatures);
    assert.deepEqual([first.payload, first.first, first.endpoint], [21.5, true, 'my-sensor']);
    assert.deepEqual(device.attributes.get('/3303/0/5700'), { pmin: '2', pmax: '30' });
    await device.setResource('/3303/0/5700', 22.25);
    assert.equal((await next(temperatures)).payload, 22.25);
  });

  it('bootstrap-then-register.json provisions my-sensor, which then registers', async () => {
    const bsPort = await freePort();
    const flow = await loadExample('bootstrap-then-register.json', port, bsPort);
    device.options.bootstrapServer = { address: '127.0.0.1', port: bsPort };
    await device.bootstrap();
    const events = probe(flow, 'bootstrap');
    assert.equal((await next(events)).topic, 'started');
    assert.equal((await next(events)).topic, 'finished');
    await device.register();
    assert.equal((await next(probe(flow, 'registration'))).endpoint, 'my-sensor');
  });

  it('provision-device.json stores and removes a configuration without echoing the key', async () => {
    const flow = await loadExample('provision-device.json', port, await freePort());
    probe(flow, 'provision streetlight-42').receive({});
    const stored = await next(probe(flow, 'stored'));
    assert.equal(stored.topic, 'set');
    assert.equal(stored.payload.servers[0].pskIdentity, 'streetlight-42');
    assert.equal(JSON.stringify(stored).includes('000102030405'), false);
    probe(flow, 'remove streetlight-42').receive({});
    assert.deepEqual((await next(probe(flow, 'stored'))).payload, { removed: true });
  });

  it('mirror-to-onem2m.json mirrors a registering device and its temperature into the CSE', async () => {
    const cse = await FakeCse.start();
    try {
      const flow = await loadExample('mirror-to-onem2m.json', port, undefined, cse.url);
      const output = next(probe(flow, 'interworking'));
      await device.register();
      const msg = await output;
      assert.deepEqual([msg.topic, msg.endpoint], ['mirrored', 'my-sensor']);
      assert.ok(cse.get('cse-in/my-sensor/3303/0'));
      const stored = () => cse.children('cse-in/my-sensor/3303/0/5700').some((r) => r.con === 21.5) || cse.children('cse-in/my-sensor/3303/0').some((r) => r.con === '21.5');
      const deadline = Date.now() + 5000;
      while (!stored() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(stored(), 'the observed temperature is stored');
    } finally {
      await cse.stop();
    }
  });

  it('update-firmware.json reads the package file and updates every streetlight, skipping other models', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-example-')), 'streetlight-2.1.0.bin');
    fs.writeFileSync(file, firmwarePackage('2.1.0', 50_000));
    const flow = await loadExample('update-firmware.json', port, undefined, undefined, { '/tmp/streetlight-2.1.0.bin': file });
    const lights = [];
    for (const [endpoint, model] of [['light-1', 'streetlight'], ['light-2', 'streetlight'], ['meter-1', 'meter']]) {
      const light = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port }, transmission: { ackTimeoutMs: 100 }, maxRequestBodyBytes: 1 << 20 });
      light.objects.get(3).get(0).set(1, model);
      new SimulatedFirmware(light, { stepMs: 20 });
      await light.start();
      await light.register();
      lights.push(light);
    }
    try {
      const summary = next(probe(flow, 'summary'));
      probe(flow, 'update all streetlights').receive({});
      const done = await summary;
      assert.deepEqual([done.payload.total, done.payload.success, done.payload.skipped, done.payload.failed], [3, 2, 1, 0]);
      assert.deepEqual(lights.map((light) => light.getResource('/3/0/3')), ['2.1.0', '2.1.0', '1.0.0']);
    } finally {
      await Promise.all(lights.map((light) => light.stop()));
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('log-registrations.json sends every registration event', async () => {
    const flow = await loadExample('log-registrations.json', port);
    const output = next(probe(flow, 'registration events'));
    await device.register();
    assert.equal((await output).topic, 'registered');
  });
});
