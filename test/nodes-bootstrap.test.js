'use strict';
const assert = require('node:assert/strict');
const { helper, load, nextMessage, received } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { freePort } = require('./support/udp');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };
const KEY = '000102030405060708090a0b0c0d0e0f';

describe('Node-RED: bootstrap server, lwm2m bootstrap and bootstrap events', () => {
  let port;
  let bsPort;
  const devices = [];

  async function device(endpoint) {
    const d = new SimulatedDevice({
      endpoint,
      server: { address: '127.0.0.1', port: 1 },
      bootstrapServer: { address: '127.0.0.1', port: bsPort },
      objects: buildObjectTree({ 1: { 0: { 0: 1, 1: 60, 9: () => undefined } }, 3: { 0: { 0: 'Acme' } } }),
      transmission: FAST,
    });
    await d.start();
    devices.push(d);
    return d;
  }

  function flow(bootstrapServer = {}) {
    return [
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
      {
        id: 'bs', type: 'lwm2m-bootstrap-server', bindAddress: '127.0.0.1', port: bsPort, allowDefault: false,
        endpoints: [
          { endpoint: 'fresh', uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec', shortServerId: '3', lifetime: '120', binding: 'U' },
          { endpoint: 'secure', uri: 'coaps://127.0.0.1:5684', securityMode: 'psk', shortServerId: '1', lifetime: '300', binding: 'U', pskIdentity: 'secure-id' },
          { endpoint: 'broken', uri: 'http://nowhere', securityMode: 'nosec' },
        ],
        ...bootstrapServer,
      },
      { id: 'bsevents', z: 'tab', type: 'lwm2m-bootstrap-events', server: 'bs', wires: [['bsout']] },
      { id: 'bsout', z: 'tab', type: 'helper' },
      { id: 'provision', z: 'tab', type: 'lwm2m-bootstrap', server: 'bs', wires: [['provisioned']] },
      { id: 'provisioned', z: 'tab', type: 'helper' },
      { id: 'events', z: 'tab', type: 'lwm2m-events', server: 'srv', wires: [['registered']] },
      { id: 'registered', z: 'tab', type: 'helper' },
      { id: 'exec', z: 'tab', type: 'lwm2m-execute', server: 'srv', path: '/1/0/9', wires: [[]] },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
  }

  const credentials = { bs: { endpointKeys: JSON.stringify({ secure: KEY }) } };

  beforeEach(async () => {
    [port, bsPort] = [await freePort(), await freePort()];
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
  });

  it('bootstraps a device with no server configured, which then registers to the lwm2m-server node', async () => {
    await load(flow(), credentials);
    const d = await device('fresh');
    await d.bootstrap();
    const started = await nextMessage(helper.getNode('bsout'));
    assert.deepEqual([started.topic, started.endpoint, started.payload.address], ['started', 'fresh', '127.0.0.1']);
    const finished = await nextMessage(helper.getNode('bsout'));
    assert.equal(finished.topic, 'finished');
    assert.deepEqual(finished.payload.servers[0], { uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec', shortServerId: 3, lifetime: 120, binding: 'U' });
    await d.register();
    const registered = await nextMessage(helper.getNode('registered'));
    assert.deepEqual([registered.topic, registered.endpoint], ['registered', 'fresh']);
  });

  it('refuses to send the PSK key over plain UDP unless the node allows it', async () => {
    await load(flow(), credentials);
    const d = await device('secure');
    await assert.rejects(d.bootstrap(), (error) => error.responseCode === '4.03');
    const failed = await nextMessage(helper.getNode('bsout'));
    assert.deepEqual([failed.topic, failed.endpoint], ['failed', 'secure']);
    assert.match(failed.payload.reason, /secret keys .* only to a device that authenticated \(DTLS or TLS\)/);
    assert.equal(JSON.stringify(failed).includes(KEY), false);
  });

  it('writes the PSK key from the credentials when keys over UDP are allowed, and never shows it', async () => {
    await load(flow({ allowKeysInClear: true }), credentials);
    const d = await device('secure');
    await d.bootstrap();
    assert.deepEqual(d.getResource('/0/0/3'), Buffer.from('secure-id'));
    assert.deepEqual(d.getResource('/0/0/5'), Buffer.from(KEY, 'hex'));
    await nextMessage(helper.getNode('bsout'));
    const finished = await nextMessage(helper.getNode('bsout'));
    assert.equal(JSON.stringify(finished).includes(KEY), false);
    const bs = helper.getNode('bs');
    assert.equal(JSON.stringify(bs.error.args.concat(bs.warn.args, bs.log.args)).includes(KEY), false);
  });

  it('reports a configuration from the editor that cannot be used', async () => {
    await load(flow(), credentials);
    assert.ok(helper.getNode('bs').error.args.some((a) => a[0] === 'lwm2m-bootstrap-server.errors.config'));
    const d = await device('broken');
    await assert.rejects(d.bootstrap(), (error) => error.responseCode === '4.00');
  });

  it('refuses an unknown device with a failed event that says why', async () => {
    await load(flow(), credentials);
    const d = await device('stranger');
    await assert.rejects(d.bootstrap(), /4\.00 no b/);
    const failed = await nextMessage(helper.getNode('bsout'));
    assert.equal(failed.topic, 'failed');
    assert.match(failed.payload.reason, /no bootstrap configuration for "stranger"/);
  });

  it('provisions unknown devices with the default account when allowed', async () => {
    await load(flow({ allowDefault: true, defaultAccount: { uri: `coap://127.0.0.1:${port}`, securityMode: 'nosec', shortServerId: 9, lifetime: 60, binding: 'U' } }), credentials);
    const d = await device('anyone');
    await d.bootstrap();
    assert.equal(d.getResource('/1/0/0'), 9);
  });

  it('sets and removes a configuration from a msg', async () => {
    await load(flow(), credentials);
    helper.getNode('provision').receive({ endpoint: 'from-db', payload: { uri: 'coaps://127.0.0.1:5684', shortServerId: 5, securityMode: 'psk', pskIdentity: 'x', pskKey: KEY } });
    let msg = await nextMessage(helper.getNode('provisioned'));
    assert.equal(msg.topic, 'set');
    assert.equal(JSON.stringify(msg.payload).includes(KEY), false);
    helper.getNode('provision').receive({ endpoint: 'from-db', payload: { uri: `coap://127.0.0.1:${port}`, shortServerId: 5 } });
    await nextMessage(helper.getNode('provisioned'));
    const d = await device('from-db');
    await d.bootstrap();
    assert.equal(d.getResource('/1/0/0'), 5);
    helper.getNode('provision').receive({ endpoint: 'from-db', payload: null });
    msg = await nextMessage(helper.getNode('provisioned'));
    assert.deepEqual([msg.topic, msg.payload], ['removed', { removed: true }]);
    await assert.rejects(d.bootstrap(), /no bootstrap configuration/);
  });

  for (const [name, msg, pattern] of [
    ['a configuration without a server', { endpoint: 'x', payload: { lifetime: 5 } }, /at least one server/],
    ['a key that is not hex', { endpoint: 'x', payload: { uri: 'coaps://h:5684', securityMode: 'psk', pskIdentity: 'i', pskKey: 'secret' } }, /must be hex/],
    ['no endpoint', { payload: { uri: 'coap://h' } }, /no device/],
    ['a string payload', { endpoint: 'x', payload: 'coap://h' }, /is an object/],
  ]) {
    it(`reports ${name} to Catch nodes`, async () => {
      await load(flow(), credentials);
      helper.getNode('provision').receive(msg);
      const caught = await nextMessage(helper.getNode('caught'));
      assert.match(caught.error.message, pattern);
      assert.deepEqual(caught.payload, msg.payload, 'the msg itself comes with the error');
    });
  }

  it('bootstraps a registered device again when a flow executes /1/0/9', async () => {
    await load(flow(), credentials);
    const d = await device('fresh');
    await d.bootstrap();
    await d.register();
    await nextMessage(helper.getNode('registered'));
    helper.getNode('exec').receive({ endpoint: 'fresh' });
    const again = await nextMessage(helper.getNode('registered'), 5000);
    assert.equal(again.topic, 'registered');
    assert.ok(again.replaced, 'the new registration replaced the old one');
    assert.ok(received(helper.getNode('bsout')).filter((m) => m.topic === 'finished').length >= 1);
  });
});
