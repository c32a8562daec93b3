'use strict';
// A firmware campaign in a real Node-RED, started as `npm start` starts it and restarted in the middle of the update:
// the campaign is in the state file, the packages beside it, and after the restart each device goes on where it was.
// One device pulls its package over HTTP from Node-RED's own HTTP server, the other takes it pushed.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { SimulatedFirmware } = require('../dist/sim/firmware-update');
const { firmwarePackage } = require('./support/firmware');
const { freePort } = require('./support/udp');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');
const { until } = require('./support/wait');

describe('Node-RED restart in the middle of a firmware campaign', function () {
  this.timeout(90_000);
  let child;
  let userDir;
  const devices = [];

  afterEach(async () => {
    await stopNodeRed(child);
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  /** The debug sidebar's msgs, as the editor receives them. */
  async function sidebar(httpPort) {
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/comms`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ subscribe: 'debug' }));
    const messages = [];
    ws.on('message', (data) => {
      for (const event of [].concat(JSON.parse(data.toString()))) if (event.topic === 'debug') messages.push(event.data);
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    return { messages, close: () => ws.close() };
  }

  it('goes on after the restart: the HTTP pull and the push both end updated, the results reach the flow, the state is emptied', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-fw-restart-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    const packageFile = path.join(userDir, 'firmware-2.0.0.bin');
    fs.writeFileSync(packageFile, firmwarePackage('2.0.0', 200_000));
    fs.writeFileSync(
      path.join(userDir, 'flows.json'),
      JSON.stringify([
        { id: 'tab1', type: 'tab', label: 'firmware' },
        { id: 'srv1', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: String(lwm2mPort) },
        { id: 'go', z: 'tab1', type: 'inject', props: [], x: 100, y: 100, wires: [['file']] },
        { id: 'file', z: 'tab1', type: 'file in', filename: packageFile, filenameType: 'str', format: '', chunk: false, x: 250, y: 100, wires: [['fw']] },
        { id: 'fw', z: 'tab1', type: 'lwm2m-firmware', server: 'srv1', version: '2.0.0', timeout: '3', downloadTimeout: '30', updateTimeout: '30', pollInterval: '1', x: 400, y: 100, wires: [['results'], [], ['summary']] },
        { id: 'results', z: 'tab1', type: 'debug', name: 'results', active: true, tosidebar: true, complete: 'payload', targetType: 'msg', x: 600, y: 80, wires: [] },
        { id: 'summary', z: 'tab1', type: 'debug', name: 'summary', active: true, tosidebar: true, complete: 'payload', targetType: 'msg', x: 600, y: 120, wires: [] },
      ]),
    );
    child = await startNodeRed(userDir, httpPort);
    const device = async (endpoint, fw) => {
      const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: lwm2mPort }, lifetime: 300, maxRequestBodyBytes: 1 << 20, transmission: { ackTimeoutMs: 300 } });
      d.firmware = new SimulatedFirmware(d, { stepMs: 3000, ...fw });
      await d.start();
      await d.register();
      devices.push(d);
      return d;
    };
    const pulling = await device('http-dev', { deliveryMethod: 0, protocols: [2] });
    const pushed = await device('push-dev', { deliveryMethod: 1 });

    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/inject/go`, { method: 'POST' })).status, 200);
    // Both have the whole package and are checking it (State 1 for 3 s) when Node-RED stops.
    await until(() => pulling.firmware.received && pushed.firmware.received, 20_000, 'both downloads');
    assert.match(pulling.firmware.uris[0], new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/lwm2m-firmware/[\\w-]{22}$`));
    await stopNodeRed(child);
    const saved = JSON.parse(fs.readFileSync(path.join(userDir, 'lwm2m-state', 'srv1.json'), 'utf8')).collections.firmware;
    const phases = Object.entries(saved).filter(([id]) => id.includes('/')).map(([id, entry]) => [id.split('/')[1], entry.value.phase, entry.value.delivery]);
    assert.deepEqual(phases.sort(), [['http-dev', 'downloading', 'pull'], ['push-dev', 'downloading', 'push']]);
    assert.ok(Object.values(saved).every((entry) => entry.expiresAt > Date.now()), 'every entry has its expiry');
    const packages = path.join(userDir, 'lwm2m-state', 'srv1.packages');
    assert.equal(fs.readdirSync(packages).length, 1, 'the package beside the state');

    child = await startNodeRed(userDir, httpPort);
    const { messages, close } = await sidebar(httpPort);
    try {
      await until(() => messages.some((m) => m.name === 'summary'), 40_000, 'the summary after the restart');
      const results = messages.filter((m) => m.name === 'results').map((m) => JSON.parse(m.msg));
      assert.deepEqual(results.map((r) => [r.endpoint, r.status, r.version, r.attempts]).sort(), [
        ['http-dev', 'success', '2.0.0', 1],
        ['push-dev', 'success', '2.0.0', 1],
      ]);
      assert.equal(pulling.firmware.uris.length, 1, 'the pull was not started again');
      assert.equal(pushed.received.filter((request) => request.path === '/5/0/0').length, 1, 'the package was not pushed again');
      assert.deepEqual(devices.map((d) => d.getResource('/3/0/3')), ['2.0.0', '2.0.0']);
    } finally {
      close();
    }
    await stopNodeRed(child);
    child = undefined;
    const after = JSON.parse(fs.readFileSync(path.join(userDir, 'lwm2m-state', 'srv1.json'), 'utf8')).collections.firmware;
    assert.deepEqual(after, {}, 'nothing left in the state');
    assert.deepEqual(fs.readdirSync(packages), [], 'the package removed');
  });
});
