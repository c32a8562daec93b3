'use strict';
// Registrations, observations and waiting requests survive every kind of redeploy.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { helper, load, nextMessage } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort, once } = require('./support/udp');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };

describe('Node-RED: redeploys keep the server state', () => {
  let port;
  let userDir;
  let device;

  function flow(label = 'LwM2M', readName = 'read') {
    return [
      { id: 'tab', type: 'tab', label },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, awakeTime: 0.3 },
      { id: 'obs', z: 'tab', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', start: 'register', wires: [['temps']] },
      { id: 'temps', z: 'tab', type: 'helper' },
      { id: 'rd', z: 'tab', type: 'lwm2m-read', name: readName, server: 'srv', endpoint: 'sleepy', path: '/3/0/9', wires: [['battery']] },
      { id: 'battery', z: 'tab', type: 'helper' },
    ];
  }

  beforeEach(async () => {
    port = await freePort();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-redeploy-'));
    helper.settings({ userDir });
    await load(flow());
    device = new SimulatedDevice({ endpoint: 'sleepy', server: { address: '127.0.0.1', port }, queueMode: true, transmission: FAST });
    await device.start();
    await device.register();
    assert.equal((await nextMessage(helper.getNode('temps'))).first, true);
  });

  afterEach(async () => {
    await device.stop();
    await helper.unload();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  for (const [type, change] of [
    ['full', () => flow()],
    ['flows', () => flow('LwM2M renamed')],
    ['nodes', () => flow('LwM2M', 'battery reader')],
  ]) {
    it(`a ${type} redeploy keeps registrations, observations and a request waiting for a sleeping device`, async () => {
      const server = () => helper.getNode('srv').host.service;
      await once(server(), 'sleeping', 2000);
      const location = device.registrationLocation;
      helper.getNode('rd').receive({ marker: 'waiting' });
      await new Promise((resolve) => setTimeout(resolve, 100));

      await helper.setFlows(change(), type);
      await server().ready;
      assert.equal(server().registrations.getByEndpoint('sleepy').id, location.split('/')[2], 'same registration');

      // The device wakes up: the waiting read goes out from the new read node, with its msg.
      await device.update();
      const answered = await nextMessage(helper.getNode('battery'), 5000);
      assert.deepEqual([answered.payload, answered.marker], [100, 'waiting']);

      // The observation still reaches the (possibly new) observe node, without a second one at the device.
      await device.setResource('/3303/0/5700', 18.5);
      assert.equal((await nextMessage(helper.getNode('temps'), 5000)).payload, 18.5);
      assert.equal(device.observations.length, 1);
    });
  }
});

describe('Node-RED: DTLS sessions survive redeploys, and a deleted server leaves no state', function () {
  this.timeout(20_000);
  const KEY = '6c776d326d2d6b65792d6f662d6d65746572';
  let port;
  let dtlsPort;
  let userDir;
  let device;

  function flow(label = 'LwM2M') {
    return [
      { id: 'tab', type: 'tab', label },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, dtlsPort, security: [{ endpoint: 'meter-1', mode: 'psk', identity: 'meter-1-id' }] },
      { id: 'rd', z: 'tab', type: 'lwm2m-read', server: 'srv', endpoint: 'meter-1', path: '/3/0/0', wires: [['answer']] },
      { id: 'answer', z: 'tab', type: 'helper' },
    ];
  }

  beforeEach(async () => {
    [port, dtlsPort] = [await freePort(), await freePort()];
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-redeploy-dtls-'));
    helper.settings({ userDir });
    // No stateKey credential, as in a flow file written by hand: the node makes one.
    await load(flow(), { srv: { pskKeys: JSON.stringify({ 'meter-1': KEY }) } });
    device = new SimulatedDevice({ endpoint: 'meter-1', server: { address: '127.0.0.1', port: dtlsPort }, dtls: { identity: 'meter-1-id', key: Buffer.from(KEY, 'hex') }, transmission: FAST });
    await device.start();
    await device.register();
  });

  afterEach(async () => {
    await device.stop();
    await helper.unload();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  for (const [type, change] of [
    ['full', () => flow()],
    ['flows', () => flow('LwM2M renamed')],
  ]) {
    it(`a ${type} redeploy keeps the device's DTLS session: a read reaches it and its Update decrypts, with no new handshake`, async () => {
      assert.match(helper.getNode('srv').credentials.stateKey, /^[0-9a-f]{64}$/, 'a state key was made');
      await helper.setFlows(change(), type);
      const server = helper.getNode('srv').host.service;
      await server.ready;
      let handshakes = 0;
      server.coap.dtls.on('established', () => handshakes++);
      helper.getNode('rd').receive({});
      const answer = await nextMessage(helper.getNode('answer'), 5000);
      assert.equal(answer.code, '2.05');
      await device.update();
      assert.equal(handshakes, 0);
    });
  }

  it('removes the state file of a server node that is deleted', async () => {
    const file = path.join(userDir, 'lwm2m-state', 'srv.json');
    await until(() => fs.existsSync(file), 5000, 'the state file');
    await helper.setFlows([{ id: 'tab', type: 'tab', label: 'LwM2M' }], 'full');
    assert.equal(fs.existsSync(file), false);
  });
});
