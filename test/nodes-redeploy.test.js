'use strict';
// Registrations, observations and waiting requests survive every kind of redeploy.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { helper, load, nextMessage } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort, once } = require('./support/udp');

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
