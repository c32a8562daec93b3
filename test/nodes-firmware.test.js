'use strict';
// The lwm2m firmware node in a real Node-RED runtime: its outputs, status, Catch, cancel, redeploys mid-update,
// sleeping devices, and a campaign of 200 simulated devices (in a fleet process of their own) 20 at a time.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { helper, load, nextMessage, received, statusMatching } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { SimulatedFirmware } = require('../dist/sim/firmware-update');
const { FleetProcess } = require('../dist/sim/fleet-client');
const { firmwarePackage, FAST } = require('./support/firmware');
const { freePort } = require('./support/udp');
const { until } = require('./support/wait');

describe('Node-RED: lwm2m firmware', function () {
  this.timeout(30_000);
  let port;
  let userDir;
  const devices = [];

  function flow(node = {}, server = {}) {
    return [
      { id: 'tab', type: 'tab', label: 'firmware' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, ...server },
      { id: 'fw', z: 'tab', type: 'lwm2m-firmware', server: 'srv', timeout: '2', downloadTimeout: '5', updateTimeout: '5', pollInterval: '0.2', retries: '0', ...node, wires: [['results'], ['progress'], ['summary']] },
      { id: 'results', z: 'tab', type: 'helper' },
      { id: 'progress', z: 'tab', type: 'helper' },
      { id: 'summary', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: ['fw'], uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
  }

  async function device(endpoint, fw = {}, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port }, transmission: FAST, maxRequestBodyBytes: 1 << 20, ...options });
    d.firmware = new SimulatedFirmware(d, { stepMs: 20, ...fw });
    await d.start();
    devices.push(d);
    await d.register();
    return d;
  }

  beforeEach(async () => {
    port = await freePort();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-fw-nodes-'));
    helper.settings({ userDir });
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  const node = (id) => helper.getNode(id);
  // The test runtime has no message catalogues: the status names its entries ("2/2 updated · 0 failed" in English).
  const words = (text) => text.replace(/[a-z]+/g, (word) => `lwm2m-firmware.status.${word}`);

  it('updates the devices of msg.endpoints: progress, one result each, a summary, and the status "2/2 updated · 0 failed"', async () => {
    await load(flow());
    await device('a');
    await device('b', { deliveryMethod: 0 });
    node('fw').receive({ payload: firmwarePackage('2.0.0', 4000), endpoints: ['a', 'b'], version: '2.0.0' });
    const summary = await nextMessage(node('summary'), 10_000);
    assert.deepEqual([summary.topic, summary.payload.total, summary.payload.success, summary.payload.failed], ['summary', 2, 2, 0]);
    const results = received(node('results')).splice(0);
    assert.deepEqual(results.map((msg) => [msg.topic, msg.endpoint, msg.payload.status, msg.payload.delivery, msg.payload.version]).sort(), [
      ['result', 'a', 'success', 'push', '2.0.0'],
      ['result', 'b', 'success', 'pull', '2.0.0'],
    ]);
    const progress = received(node('progress')).splice(0);
    assert.ok(progress.some((msg) => msg.endpoint === 'a' && msg.payload.phase === 'downloading' && msg.payload.percent === 100));
    assert.ok(progress.every((msg) => msg.topic === 'progress' && msg.campaign === summary.campaign));
    await statusMatching(node('fw'), (status) => status.text === words('2/2 updated · 0 failed') && status.fill === 'green');
  });

  it('updates every registered device that has /5 when the msg names none, and sends each failure to Catch with the device and the reason', async () => {
    await load(flow());
    await device('good');
    await device('full', { failWith: 2 });
    const plain = new SimulatedDevice({ endpoint: 'no-fw', server: { address: '127.0.0.1', port }, transmission: FAST });
    await plain.start();
    devices.push(plain);
    await plain.register();
    node('fw').receive({ payload: firmwarePackage('2.0.0', 3000) });
    const summary = await nextMessage(node('summary'), 10_000);
    assert.deepEqual([summary.payload.total, summary.payload.success, summary.payload.failed], [2, 1, 1]);
    const caught = await nextMessage(node('caught'));
    assert.equal(caught.endpoint, 'full');
    assert.equal(caught.payload.code, 'not-enough-flash');
    assert.match(caught.error.message, /^full: not enough flash memory for the new firmware package \(Update Result 2\)$/);
    await statusMatching(node('fw'), (status) => status.text === words('1/2 updated · 1 failed'));
  });

  it('takes its device from a msg property when its endpoint is set so, and fails the msg when that property is not set', async () => {
    await load(flow({ endpoint: 'target', endpointType: 'msg' }));
    await device('a');
    await device('b');
    node('fw').receive({ payload: firmwarePackage('2.0.0', 2000), target: 'b', version: '2.0.0' });
    const summary = await nextMessage(node('summary'), 10_000);
    assert.deepEqual([summary.payload.total, summary.payload.success], [1, 1]);
    assert.deepEqual(received(node('results')).splice(0).map((msg) => msg.endpoint), ['b']);
    node('fw').receive({ payload: firmwarePackage('3.0.0', 2000) });
    assert.match((await nextMessage(node('caught'))).error.message, /msg\.target is not set/);
  });

  it('sends a msg that cannot start a campaign to Catch with the reason, and says "invalid input" in the status', async () => {
    await load(flow());
    // The server's own status comes once it listens: the failure's must come after it.
    await statusMatching(node('fw'), (status) => status.text === 'lwm2m-server.status.ready');
    node('fw').receive({ payload: 'not a buffer', endpoint: 'x' });
    assert.match((await nextMessage(node('caught'))).error.message, /msg\.payload must be a Buffer/);
    await statusMatching(node('fw'), (status) => status.text === 'lwm2m-firmware.failure.invalid-input' && status.fill === 'red');
    node('fw').receive({ payload: Buffer.from('x'), endpoints: 'x' });
    assert.match((await nextMessage(node('caught'))).error.message, /msg\.endpoints must be an array/);
    // Refused by the firmware service, not the node: still the msg's fault.
    node('fw').status.resetHistory();
    node('fw').receive({ url: 'http://u:p@example.org/f', endpoint: 'x' });
    assert.match((await nextMessage(node('caught'))).error.message, /user name or password/);
    await statusMatching(node('fw'), (status) => status.text === 'lwm2m-firmware.failure.invalid-input');
    node('fw').receive({ payload: Buffer.from('x'), concurrency: 'many' });
    assert.match((await nextMessage(node('caught'))).error.message, /concurrency/);
  });

  it('cancels a device with msg.cancel', async () => {
    await load(flow());
    const slow = await device('slow', { stepMs: 60_000 });
    node('fw').receive({ payload: firmwarePackage('2.0.0', 1000), endpoint: 'slow' });
    await until(() => slow.firmware.state === 1, 5000, 'the download');
    node('fw').receive({ cancel: true, endpoint: 'slow' });
    const result = await nextMessage(node('results'), 5000);
    assert.deepEqual([result.endpoint, result.payload.status], ['slow', 'cancelled']);
    assert.equal(slow.firmware.state, 0);
    await statusMatching(node('fw'), (status) => status.text === words('0/1 updated · 0 failed · 1 cancelled'));
  });

  for (const type of ['nodes', 'full']) {
    it(`goes on with an update in progress through a ${type} redeploy, and reports to the redeployed node`, async () => {
      await load(flow());
      const fetching = await device('mid', { deliveryMethod: 0, stepMs: 400, pullSzx: 0 });
      node('fw').receive({ payload: firmwarePackage('4.0.0', 3000), endpoint: 'mid', version: '4.0.0' });
      await until(() => fetching.firmware.state === 1, 5000, 'the download');
      await helper.setFlows(flow({ name: 'renamed' }), type);
      received(node('results'));
      const summary = await nextMessage(node('summary'), 15_000);
      assert.deepEqual([summary.payload.success, summary.payload.failed], [1, 0]);
      const [result] = received(node('results'));
      assert.deepEqual([result.endpoint, result.payload.status, result.payload.version], ['mid', 'success', '4.0.0']);
      assert.equal(fetching.firmware.uris.length, 1, 'delivered once: the device went on fetching');
      assert.equal(fetching.getResource('/3/0/3'), '4.0.0');
    });
  }

  it('waits for a sleeping device to wake up, and fails one that stays asleep past the queue time to live', async () => {
    await load(flow({}, { awakeTime: 0.3, queueTtl: 2 }));
    const sleepy = await device('sleepy', {}, { queueMode: true });
    const asleep = await device('asleep', {}, { queueMode: true });
    await until(() => !node('srv').host.service.presence.isAwake('sleepy') && !node('srv').host.service.presence.isAwake('asleep'), 3000, 'both asleep');
    node('fw').receive({ payload: firmwarePackage('2.0.0', 2000), endpoints: ['sleepy', 'asleep'] });
    const waiting = await nextMessage(node('progress'));
    assert.equal(waiting.payload.phase, 'waiting');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await sleepy.update();
    const summary = await nextMessage(node('summary'), 10_000);
    const results = Object.fromEntries(received(node('results')).map((msg) => [msg.endpoint, [msg.payload.status, msg.payload.code]]));
    assert.deepEqual(results, { sleepy: ['success', undefined], asleep: ['failed', 'did-not-wake'] });
    assert.deepEqual([summary.payload.success, summary.payload.failed], [1, 1]);
    assert.equal(asleep.firmware.state, 0, 'nothing was sent to the device that slept');
  });

  it('updates 200 simulated devices (a fleet process) at most 20 at a time, push and pull mixed, every one reporting its new version', async function () {
    this.timeout(120_000);
    await load(flow({ concurrency: '20', downloadTimeout: '30', updateTimeout: '30', timeout: '5' }));
    const fleet = new FleetProcess();
    try {
      await fleet.start({ server: { address: '127.0.0.1', port }, count: 200, prefix: 'fleet-', lifetime: 600, ackTimeoutMs: 500, firmware: [{ deliveryMethod: 1, stepMs: 20 }, { deliveryMethod: 0, stepMs: 20 }] });
      await fleet.run({ command: 'register', concurrency: 50 });
      await until(() => node('srv').host.service.registrations.size === 200, 10_000, '200 registrations');
      const running = new Set();
      let most = 0;
      const progress = node('progress');
      progress.on('input', (msg) => {
        if (msg.payload.phase === 'checking') running.add(msg.endpoint);
        most = Math.max(most, running.size);
      });
      node('results').on('input', (msg) => running.delete(msg.endpoint));
      const started = Date.now();
      node('fw').receive({ payload: firmwarePackage('2.0.0', 8192), version: '2.0.0' });
      const summary = await nextMessage(node('summary'), 100_000);
      const seconds = (Date.now() - started) / 1000;
      assert.deepEqual([summary.payload.total, summary.payload.success, summary.payload.failed], [200, 200, 0], JSON.stringify(summary.payload.failures.slice(0, 3)));
      assert.ok(most <= 20 && most >= 15, `at most 20 at once (${most})`);
      const reports = await fleet.run({ command: 'firmware' });
      assert.ok(reports.every((report) => report.version === '2.0.0' && report.state === 0 && report.result === 1 && report.registrations === 2), JSON.stringify(reports.find((r) => r.version !== '2.0.0')));
      const deliveries = received(node('results')).map((msg) => msg.payload.delivery);
      assert.deepEqual([deliveries.filter((d) => d === 'push').length, deliveries.filter((d) => d === 'pull').length], [100, 100]);
      await statusMatching(node('fw'), (status) => status.text === words('200/200 updated · 0 failed'));
      // eslint-disable-next-line no-console
      console.log(`      200 devices in ${seconds.toFixed(1)} s, at most ${most} at once`);
    } finally {
      await fleet.close();
    }
  });
});
