'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');

const root = path.resolve(__dirname, '..');

describe('npm start: Node-RED with the example flow', function () {
  this.timeout(60000);
  let child;
  let userDir;

  afterEach(async () => {
    await stopNodeRed(child);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('shows a registering device in the debug sidebar', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-red-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    // The start script deploys the example on first start; pre-seed it with a free LwM2M port.
    const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'log-registrations.json'), 'utf8'));
    example.filter((n) => n.type === 'lwm2m-server').forEach((n) => (n.port = String(lwm2mPort)));
    const tab = example.find((n) => n.z).z;
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify([{ id: tab, type: 'tab', label: 'LwM2M' }, ...example]));

    child = await startNodeRed(userDir, httpPort);
    assert.match(child.log, new RegExp(`Server now running at http://127.0.0.1:${httpPort}/`));

    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/comms`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ subscribe: 'debug' }));
    const debugMessages = [];
    ws.on('message', (data) => {
      for (const event of [].concat(JSON.parse(data.toString()))) if (event.topic === 'debug') debugMessages.push(event.data);
    });

    const device = new SimulatedDevice({ endpoint: 'my-sensor', server: { address: '127.0.0.1', port: lwm2mPort } });
    await device.start();
    try {
      await device.register();
      const deadline = Date.now() + 10000;
      while (!debugMessages.some((m) => m.topic === 'registered') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const shown = debugMessages.find((m) => m.topic === 'registered');
      assert.ok(shown, `a debug message; got ${JSON.stringify(debugMessages)}`);
      assert.equal(shown.name, 'registration events');
      assert.match(shown.msg, /"endpoint":"my-sensor"/);
      await device.deregister();
    } finally {
      await device.stop();
      ws.close();
    }
  });
});
