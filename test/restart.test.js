'use strict';
// A real Node-RED, started as `npm start` starts it, stopped and started again:
// registrations and observations survive, devices notice nothing.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');
const { until } = require('./support/wait');

describe('Node-RED restart', function () {
  this.timeout(90000);
  let child;
  let device;
  let userDir;

  afterEach(async () => {
    await stopNodeRed(child);
    if (device) await device.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('keeps registrations and observations: the device goes on without registering again', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-restart-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    fs.writeFileSync(
      path.join(userDir, 'flows.json'),
      JSON.stringify([
        { id: 'tab1', type: 'tab', label: 'LwM2M' },
        { id: 'srv1', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: String(lwm2mPort) },
        { id: 'obs1', z: 'tab1', type: 'lwm2m-observe', server: 'srv1', path: '/3303/0/5700', start: 'register', x: 150, y: 100, wires: [['dbg1']] },
        { id: 'dbg1', z: 'tab1', type: 'debug', name: 'temps', active: true, tosidebar: true, complete: 'payload', targetType: 'msg', x: 350, y: 100, wires: [] },
      ]),
    );
    child = await startNodeRed(userDir, httpPort);
    device = new SimulatedDevice({ endpoint: 'survivor', server: { address: '127.0.0.1', port: lwm2mPort }, lifetime: 300 });
    await device.start();
    const location = await device.register();
    await until(() => device.observations.length === 1, 10_000, 'the observation');

    await stopNodeRed(child);
    const saved = JSON.parse(fs.readFileSync(path.join(userDir, 'lwm2m-state', 'srv1.json'), 'utf8'));
    assert.deepEqual(Object.keys(saved.collections.registrations), ['survivor']);
    assert.equal(Object.keys(saved.collections.observations).length, 1);

    child = await startNodeRed(userDir, httpPort);
    // Addressable at once, without a new registration.
    const read = await fetch(`http://127.0.0.1:${httpPort}/lwm2m-red/servers/srv1/devices/survivor/read?path=/3/0/9`).then((r) => r.json());
    assert.equal(read.payload, 100, JSON.stringify(read));
    const details = await fetch(`http://127.0.0.1:${httpPort}/lwm2m-red/servers/srv1/devices/survivor`).then((r) => r.json());
    assert.equal(details.location, location);

    // Notifications of the old observation reach the observe node, which did not observe twice.
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/comms`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ subscribe: 'debug' }));
    const debug = [];
    ws.on('message', (data) => {
      for (const event of [].concat(JSON.parse(data.toString()))) if (event.topic === 'debug') debug.push(event.data);
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await device.setResource('/3303/0/5700', 23.5);
    await until(() => debug.some((m) => m.msg === '23.5'), 10_000, 'the notification in the debug sidebar');
    assert.equal(device.observations.length, 1, 'one observation, accepted after the restart');
    await device.update();
    ws.close();
  });

  it('keeps DTLS sessions, sealed under the state key: a read reaches the device over its old session and its Update decrypts', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-restart-dtls-'));
    const [httpPort, dtlsPort] = [await freeTcpPort(), await freePort()];
    const key = '6c776d326d2d6b65792d6f662d6d65746572';
    const stateKey = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = { uiHost: '127.0.0.1', uiPort: ${httpPort}, flowFile: 'flows.json', credentialSecret: false, logging: { console: { level: 'info' } }, telemetry: { enabled: false } };\n`,
    );
    fs.writeFileSync(
      path.join(userDir, 'flows.json'),
      JSON.stringify([
        { id: 'tab1', type: 'tab', label: 'LwM2M' },
        { id: 'srv1', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: '', dtlsPort: String(dtlsPort), security: [{ endpoint: 'meter-1', mode: 'psk', identity: 'meter-1-id' }] },
      ]),
    );
    fs.writeFileSync(path.join(userDir, 'flows_cred.json'), JSON.stringify({ srv1: { pskKeys: JSON.stringify({ 'meter-1': key }), stateKey } }));
    child = await startNodeRed(userDir, httpPort);
    device = new SimulatedDevice({ endpoint: 'meter-1', server: { address: '127.0.0.1', port: dtlsPort }, dtls: { identity: 'meter-1-id', key: Buffer.from(key, 'hex') }, lifetime: 300 });
    await device.start();
    await device.register();

    await stopNodeRed(child);
    const text = fs.readFileSync(path.join(userDir, 'lwm2m-state', 'srv1.json'), 'utf8');
    const saved = JSON.parse(text);
    assert.equal(Object.keys(saved.collections.dtlsConnections).length, 1);
    assert.ok(!text.includes(key) && !text.includes(stateKey) && !text.includes(Buffer.from(key, 'hex').toString('base64')), 'no key in the state file');

    child = await startNodeRed(userDir, httpPort);
    const read = await fetch(`http://127.0.0.1:${httpPort}/lwm2m-red/servers/srv1/devices/meter-1/read?path=/3/0/9`).then((r) => r.json());
    assert.equal(read.payload, 100, JSON.stringify(read));
    await device.update();
    assert.ok(!child.log.includes('handshake'), child.log);
  });
});

