'use strict';
// Node settings as Node-RED users expect them: one source of defaults, settings that cannot
// work refused (never replaced), one precedence rule between the node and the msg, device
// and path as typed settings, and what flows set kept across redeploys and restarts.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { helper, load, nextMessage, firstMessage, statusMatching } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { NODE_DEFAULTS, settingsOf } = require('../dist/nodes/node-defaults');
const { freePort } = require('./support/udp');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };

/** The last status a node showed (the test helper spies on every node's status at once). */
function lastStatus(node) {
  const calls = node.status.getCalls().filter((call) => call.thisValue === node);
  return calls.length ? calls[calls.length - 1].args[0] : undefined;
}
const examplesDir = path.join(__dirname, '..', 'examples');

describe('node settings', function () {
  this.timeout(30000);
  let port;
  const devices = [];

  async function device(endpoint, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port }, transmission: FAST, ...options });
    await d.start();
    devices.push(d);
    return d;
  }

  beforeEach(async () => {
    port = await freePort();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
  });

  describe('defaults', () => {
    it('every example node states every property, and a missing property means its default', () => {
      for (const file of fs.readdirSync(examplesDir)) {
        for (const node of JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'))) {
          const defaults = NODE_DEFAULTS[node.type];
          if (!defaults) continue;
          for (const key of Object.keys(defaults)) assert.ok(key in node, `${file}: ${node.type} ${node.id} states ${key}`);
        }
      }
      const server = settingsOf('lwm2m-server', { id: 'x', type: 'lwm2m-server', port: '1234' });
      assert.deepEqual([server.port, server.persist, server.reobserve, server.awakeTime, server.queueTtl], ['1234', true, true, 93, 300]);
    });
  });

  describe('settings that cannot work are refused, not replaced', () => {
    for (const [name, settings, reason] of [
      ['a UDP port of 70000', { port: '70000' }, /UDP port "70000" is not a port \(0\.\.65535\)/],
      ['a DTLS port of 70000', { dtlsPort: 70000 }, /DTLS port 70000 is not a port/],
      ['a port that is not a number', { port: 'http' }, /UDP port "http" is not a port/],
      ['an awake time that is not a number', { awakeTime: 'soon' }, /awake time "soon" is not a positive number of seconds/],
    ]) {
      it(`refuses ${name}: the server starts nothing and its users fail every msg with the reason`, async () => {
        await load([
          { id: 'tab', type: 'tab' },
          { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, ...settings },
          { id: 'ev', z: 'tab', type: 'lwm2m-events', server: 'srv', wires: [[]] },
          { id: 'rd', z: 'tab', type: 'lwm2m-read', server: 'srv', endpoint: 'x', path: '/3/0/0', wires: [[]] },
          { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
          { id: 'caught', z: 'tab', type: 'helper' },
        ]);
        const srv = helper.getNode('srv');
        assert.equal(srv.host, undefined, 'no socket bound');
        assert.ok(srv.error.args.some(([text]) => text === 'lwm2m-server.errors.settings'));
        assert.deepEqual(lastStatus(helper.getNode('ev')), { fill: 'red', shape: 'ring', text: 'lwm2m-events.status.serverSettings' });
        helper.getNode('rd').receive({ marker: 1 });
        const caught = await nextMessage(helper.getNode('caught'));
        assert.equal(caught.marker, 1);
        assert.match(caught.error.message, /lwm2m-operations\.errors\.serverSettings$/);
        assert.match(helper.getNode('srv').refused, reason);
      });
    }

    it('says in the status when listed devices have no DTLS port to register on', async () => {
      await load([
        { id: 'tab', type: 'tab' },
        { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, security: [{ endpoint: 'meter-1', mode: 'x509' }] },
        { id: 'ev', z: 'tab', type: 'lwm2m-events', server: 'srv', wires: [[]] },
      ]);
      const status = await statusMatching(helper.getNode('ev'), (s) => /noDtlsPort/.test(s.text));
      assert.deepEqual(status, { fill: 'yellow', shape: 'dot', text: 'lwm2m-server.status.listening · lwm2m-server.status.noDtlsPort' });
      assert.ok(helper.getNode('srv').warn.args.some(([text]) => text === 'lwm2m-server.errors.noDtlsPort'));
    });
  });

  describe('one precedence rule: the node wins where set, the msg fills what it leaves empty', () => {
    function flow(read) {
      return [
        { id: 'tab', type: 'tab' },
        { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
        { id: 'rd', z: 'tab', type: 'lwm2m-read', server: 'srv', wires: [['out']], ...read },
        { id: 'out', z: 'tab', type: 'helper' },
        { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
        { id: 'caught', z: 'tab', type: 'helper' },
      ];
    }
    const outcome = () => firstMessage([helper.getNode('out'), helper.getNode('caught')], 5000);

    it('the node\'s timeout wins over msg.timeout; msg.timeout applies when the node leaves it empty', async () => {
      await load(flow({ endpoint: 'mute', path: '/3/0/0', timeout: '0.3' }));
      const d = await device('mute');
      await d.register();
      await d.stop();
      let started = Date.now();
      helper.getNode('rd').receive({ timeout: 20 });
      assert.equal((await outcome()).node.id, 'caught');
      assert.ok(Date.now() - started < 3000, 'the node\'s 0.3 s applied');
      await helper.unload();
      await load(flow({ endpoint: 'mute', path: '/3/0/0', timeout: '' }));
      started = Date.now();
      helper.getNode('rd').receive({ timeout: 0.3 });
      assert.match((await outcome()).msg.error.message, /not registered|no (response|acknowledgement)/);
    });

    it('the node\'s device and path win over msg.endpoint and msg.path', async () => {
      await load(flow({ endpoint: 'one', path: '/3/0/0' }));
      await (await device('one')).register();
      await (await device('two')).register();
      helper.getNode('rd').receive({ endpoint: 'two', path: '/3/0/9' });
      const { msg } = await outcome();
      assert.deepEqual([msg.endpoint, msg.path, msg.payload], ['one', '/3/0/0', 'Node-RED LwM2M']);
    });

    it('reads the device and path from msg, flow, global or env properties when set so', async () => {
      process.env.LWM2M_TEST_DEVICE = 'env-device';
      try {
        await load(flow({ endpoint: 'target.device', endpointType: 'msg', path: 'paths.battery', pathType: 'flow' }));
        await (await device('msg-device')).register();
        helper.getNode('rd').context().flow.set('paths', { battery: '/3/0/9' });
        helper.getNode('rd').receive({ target: { device: 'msg-device' } });
        const { msg } = await outcome();
        assert.deepEqual([msg.endpoint, msg.path, msg.payload], ['msg-device', '/3/0/9', 100]);
        helper.getNode('rd').receive({ endpoint: 'ignored' });
        assert.match((await outcome()).msg.error.message, /msg\.target\.device is not set/);

        await helper.unload();
        await load(flow({ endpoint: 'LWM2M_TEST_DEVICE', endpointType: 'env', path: '/3/0/2' }));
        await (await device('env-device')).register();
        helper.getNode('rd').receive({});
        assert.equal((await outcome()).msg.payload, 'env-device');
      } finally {
        delete process.env.LWM2M_TEST_DEVICE;
      }
    });
  });

  describe('what flows set survives redeploys and restarts', () => {
    let userDir;

    beforeEach(() => {
      userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-settings-'));
    });

    afterEach(() => {
      helper.settings({});
      fs.rmSync(userDir, { recursive: true, force: true });
    });

    it('keeps msg.observation ids across a restart', async () => {
      helper.settings({ userDir });
      const flow = [
        { id: 'tab', type: 'tab' },
        { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
        { id: 'obs', z: 'tab', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', start: 'register', wires: [['temps']] },
        { id: 'temps', z: 'tab', type: 'helper' },
      ];
      await load(flow);
      const d = await device('thermo');
      await d.register();
      const first = await nextMessage(helper.getNode('temps'));
      await helper.unload();
      await load(flow);
      await helper.getNode('srv').host.service.ready;
      await d.setResource('/3303/0/5700', 30);
      const after = await nextMessage(helper.getNode('temps'), 5000);
      assert.deepEqual([after.payload, after.observation], [30, first.observation]);
    });

    it('keeps bootstrap configurations set by msgs across redeploys and restarts, sealed under the node\'s state key', async () => {
      helper.settings({ userDir, credentialSecret: 'a secret of this installation' });
      const bsPort = await freePort();
      const KEY = '0f0e0d0c0b0a09080706050403020100';
      const flow = (name) => [
        { id: 'tab', type: 'tab' },
        // Keys over plain UDP allowed: the test device bootstraps without DTLS.
        { id: 'bs', type: 'lwm2m-bootstrap-server', name, bindAddress: '127.0.0.1', port: bsPort, allowKeysInClear: true },
        { id: 'provision', z: 'tab', type: 'lwm2m-bootstrap', server: 'bs', wires: [['provisioned']] },
        { id: 'provisioned', z: 'tab', type: 'helper' },
      ];
      // The state key the editor makes for the node; without one a key derived from credentialSecret is used, which this test harness does not give nodes.
      const credentials = { bs: { stateKey: 'a2'.repeat(32) } };
      const configured = () => helper.getNode('bs').host.service.getConfig('from-db');
      // The kept configurations come back while the sockets bind.
      const restored = () => until(() => configured() !== undefined, 5000, 'the configuration kept before');
      await load(flow('before'), credentials);
      helper.getNode('provision').receive({ endpoint: 'from-db', payload: { uri: 'coaps://127.0.0.1:5684', shortServerId: 5, securityMode: 'psk', pskIdentity: 'db-id', pskKey: KEY } });
      await nextMessage(helper.getNode('provisioned'));

      await helper.setFlows(flow('redeployed'), 'full', credentials);
      await restored();
      assert.deepEqual(configured().servers[0].secretKey, Buffer.from(KEY, 'hex'), 'kept across a full redeploy');

      await helper.unload();
      const file = path.join(userDir, 'lwm2m-state', 'bs.json');
      const stored = fs.readFileSync(file, 'utf8');
      for (const secret of [KEY, Buffer.from(KEY, 'hex').toString('base64'), 'db-id']) assert.equal(stored.includes(secret), false, 'nothing readable in the file');

      await load(flow('restarted'), credentials);
      await restored();
      assert.deepEqual(configured().servers[0].secretKey, Buffer.from(KEY, 'hex'), 'kept across a restart');
      await statusMatching(helper.getNode('provision'), (s) => /listening/.test(s.text));
      const d = new SimulatedDevice({
        endpoint: 'from-db',
        server: { address: '127.0.0.1', port: 1 },
        bootstrapServer: { address: '127.0.0.1', port: bsPort },
        objects: buildObjectTree({ 1: { 0: { 0: 1, 1: 60, 9: () => undefined } }, 3: { 0: { 0: 'Acme' } } }),
        transmission: FAST,
      });
      await d.start();
      devices.push(d);
      await d.bootstrap();
      assert.deepEqual(d.getResource('/0/0/5'), Buffer.from(KEY, 'hex'));

      // Removed by a msg: gone after a restart too.
      helper.getNode('provision').receive({ endpoint: 'from-db', payload: null });
      await nextMessage(helper.getNode('provisioned'));
      await helper.unload();
      await load(flow('restarted again'), credentials);
      await statusMatching(helper.getNode('provision'), (s) => /listening/.test(s.text));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(configured(), undefined);
    });
  });
});
