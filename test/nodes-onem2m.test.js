'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { helper, load, nextMessage, statusMatching } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { FakeCse, createCommand } = require('./support/fake-cse');
const { until } = require('./support/wait');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };

describe('Node-RED: oneM2M interworking nodes', function () {
  this.timeout(60_000);
  let cse;
  let port;
  const devices = [];

  async function device(endpoint) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port }, transmission: FAST, lifetime: 300 });
    await d.start();
    devices.push(d);
    return d;
  }

  beforeEach(async () => {
    cse = await FakeCse.start();
    port = await freePort();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
    await cse.stop().catch(() => undefined);
  });

  /** The next msg of the events node that satisfies the predicate (earlier ones skipped). */
  async function nextOut(predicate) {
    for (;;) {
      const msg = await nextMessage(helper.getNode('out'));
      if (predicate(msg)) return msg;
    }
  }

  function flow(ipe = {}) {
    return [
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
      { id: 'ipe', type: 'lwm2m-onem2m', server: 'srv', cseUrl: cse.url, originator: 'CAdmin', mode: 'both', observe: '/3303/0/5700', ...ipe },
      { id: 'events', z: 'tab', type: 'lwm2m-onem2m-events', ipe: 'ipe', mirrored: true, wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
    ];
  }

  it('mirrors a registering device, shows the status, and reports an unreachable CSE without losing anything', async () => {
    await load(flow());
    const events = helper.getNode('events');
    const meter = await device('flow-meter');
    await meter.register();
    const mirrored = await nextMessage(helper.getNode('out'));
    assert.deepEqual([mirrored.topic, mirrored.endpoint, mirrored.payload.what], ['mirrored', 'flow-meter', 'register']);
    assert.ok(cse.get('cse-in/flow-meter/3/0'));
    await until(() => cse.children('cse-in/flow-meter/3303/0/5700').length > 0);
    await until(() => events.status.args.some((a) => a[0].text === 'lwm2m-onem2m.status.mirroring'));

    await cse.stop();
    await meter.deregister();
    let msg;
    do msg = await nextMessage(helper.getNode('out'));
    while (msg.topic !== 'reachability');
    assert.equal(msg.payload.reachable, false);
    assert.match(msg.payload.reason, /ECONNREFUSED|ECONNRESET|socket hang up/);
    assert.ok(events.status.args.some((a) => a[0].text === 'lwm2m-onem2m.status.unreachable' && a[0].fill === 'red'));
    // While the CSE is away the status keeps showing how much waits.
    const shown = events.status.callCount;
    await new Promise((resolve) => setTimeout(resolve, 2200));
    assert.ok(events.status.callCount >= shown + 2, 'refreshed during the outage');
    await cse.restart();
    do msg = await nextMessage(helper.getNode('out'), 10_000);
    while (msg.topic !== 'reachability');
    assert.equal(msg.payload.reachable, true);
    await until(() => cse.get('cse-in/flow-meter') === undefined, 10_000, 'the de-registration that waited');
  });

  it('reports a missing server and invalid settings on the config node', async () => {
    await load([
      ...flow({ observe: '/not/a/path' }),
      { id: 'orphan', type: 'lwm2m-onem2m', server: 'nowhere', cseUrl: cse.url, originator: 'CAdmin' },
    ]);
    assert.ok(helper.getNode('ipe').error.args.some((a) => a[0] === 'lwm2m-onem2m.errors.config'));
    assert.ok(helper.getNode('orphan').error.args.some((a) => a[0] === 'lwm2m-onem2m.errors.noServer'));
    assert.ok(helper.getNode('events').error.args.some((a) => a[0] === 'lwm2m-onem2m-events.errors.noIpe'));
  });

  it('sends the CSE\'s refusals to the flow with the oneM2M and LwM2M codes, and shows them in red', async () => {
    await load(flow({ cseUrl: `${cse.url}/missing-parent` }));
    const events = helper.getNode('events');
    const meter = await device('refused');
    await meter.register();
    const failed = await nextOut((msg) => msg.endpoint === 'refused');
    assert.deepEqual([failed.topic, failed.payload.what, failed.payload.source], ['failed', 'register', 'cse']);
    assert.match(failed.payload.reason, /4004 Not Found \(LwM2M 4\.00 Bad Request\)/);
    const warnings = helper.getNode('ipe').warn.args.map((a) => a[0]);
    assert.ok(warnings.includes('lwm2m-onem2m.errors.failed'));
    assert.ok(warnings.includes('lwm2m-onem2m.errors.cseFailed'), 'the CSE base itself');
    await statusMatching(events, (s) => s.text === 'lwm2m-onem2m.status.refused' && s.fill === 'red');
    const shown = events.status.args.map((a) => a[0].text);
    assert.equal(shown.slice(shown.indexOf('lwm2m-onem2m.status.refused')).includes('lwm2m-onem2m.status.mirroring'), false, 'never green again');
  });

  it('names what a device fails as the device\'s, not as a refusal of the CSE', async () => {
    await load(flow({ observe: '/3/0/77' }));
    const meter = await device('no-77');
    await meter.register();
    const failed = await nextOut((msg) => msg.topic === 'failed');
    assert.deepEqual([failed.endpoint, failed.payload.what, failed.payload.source], ['no-77', 'observe /3/0/77', 'device']);
    assert.ok(helper.getNode('ipe').warn.args.some((a) => a[0] === 'lwm2m-onem2m.errors.deviceFailed'));
    assert.equal(helper.getNode('ipe').warn.args.some((a) => a[0] === 'lwm2m-onem2m.errors.failed'), false);
  });

  it('takes commands from oneM2M applications through Node-RED\'s HTTP server (real Node-RED)', async () => {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-onem2m-'));
    const httpPort = await freeTcpPort();
    fs.writeFileSync(
      path.join(userDir, 'flows.json'),
      JSON.stringify([
        { id: 'tab1', type: 'tab', label: 'oneM2M' },
        { id: 'srv1', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: String(port) },
        { id: 'ipe1', type: 'lwm2m-onem2m', server: 'srv1', cseUrl: cse.url, originator: 'CAdmin', mode: 'transparent', notificationBase: `http://127.0.0.1:${httpPort}` },
        { id: 'ev1', z: 'tab1', type: 'lwm2m-onem2m-events', ipe: 'ipe1', x: 150, y: 100, wires: [] },
      ]),
    );
    const child = await startNodeRed(userDir, httpPort);
    try {
      const meter = await device('remote-meter');
      await meter.register();
      await until(() => cse.get('cse-in/remote-meter/commands/lwm2m-ipe') !== undefined);
      const url = cse.get('cse-in/remote-meter/commands/lwm2m-ipe').nu[0];
      assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/lwm2m-onem2m/ipe1/notify/[A-Za-z0-9_-]{22}$`));
      assert.ok(cse.notifications.some((n) => n.body['m2m:sgn'].vrq === true && n.url === url), 'the verification request answered');
      assert.equal(await createCommand(cse, 'cse-in/remote-meter', 'CAdmin', { id: 'c1', operation: 'read', path: '/3/0/9' }), 2001);
      await until(() => cse.children('cse-in/remote-meter/results').length === 1);
      assert.deepEqual(JSON.parse(cse.children('cse-in/remote-meter/results')[0].con), { id: 'c1', operation: 'read', path: '/3/0/9', code: '2.05', value: 100 });
    } finally {
      await stopNodeRed(child);
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });
});
