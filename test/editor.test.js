'use strict';
// The editor in a real browser: Debian's Chromium driven by playwright-core,
// against Node-RED started the way `npm start` starts it.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');

const root = path.resolve(__dirname, '..');
const artifacts = path.join(root, 'test-artifacts');

/** Starts Node-RED with a flow holding one lwm2m-server, and settings written by the test. */
async function startWithFlow(userDir, httpPort, lwm2mPort, settings = '') {
  fs.writeFileSync(
    path.join(userDir, 'flows.json'),
    JSON.stringify([
      { id: 'tab1', type: 'tab', label: 'LwM2M' },
      { id: 'srv1', type: 'lwm2m-server', name: 'browser test server', bindAddress: '127.0.0.1', port: String(lwm2mPort) },
      { id: 'ev1', z: 'tab1', type: 'lwm2m-events', server: 'srv1', x: 150, y: 100, wires: [[]] },
      { id: 'rd1', z: 'tab1', type: 'lwm2m-read', server: 'srv1', endpoint: '', path: '', x: 350, y: 100, wires: [[]] },
      { id: 'ob1', z: 'tab1', type: 'lwm2m-observe', server: 'srv1', endpoint: '', path: '/3303/0/5700', hqmax: '3', x: 550, y: 100, wires: [[]] },
    ]),
  );
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = { uiHost: '127.0.0.1', uiPort: ${httpPort}, flowFile: 'flows.json', logging: { console: { level: 'info' } }, telemetry: { enabled: false }, editorTheme: { tours: false }, ${settings} };\n`,
  );
  return startNodeRed(userDir, httpPort);
}

describe('editor: the LwM2M devices panel in Chromium', function () {
  this.timeout(120000);
  let child;
  let browser;
  let device;
  let userDir;

  before(function () {
    requireTool(this, 'chromium', 'chromium');
  });

  afterEach(async () => {
    if (browser) await browser.close();
    if (device) await device.stop();
    await stopNodeRed(child);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    browser = device = child = userDir = undefined;
  });

  it('lists a registered device with its object tree, reads and writes from the panel', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-editor-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    child = await startWithFlow(userDir, httpPort, lwm2mPort);
    device = new SimulatedDevice({ endpoint: 'panel-device', server: { address: '127.0.0.1', port: lwm2mPort }, lifetime: 300 });
    await device.start();
    await device.register();

    const { chromium } = require('playwright-core');
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    await page.waitForFunction(() => window.RED && RED.sidebar && RED.lwm2m, null, { timeout: 30000 });
    await page.evaluate(() => RED.sidebar.show('lwm2m-devices'));
    // The editor picks its own sidebar tab while the flows load: ask for ours until it shows the device.
    await page.waitForFunction(() => {
      RED.sidebar.show('lwm2m-devices');
      return $('.lwm2m-device[data-endpoint="panel-device"]').is(':visible');
    }, null, { timeout: 20000, polling: 500 });
    const deviceRow = page.locator('.lwm2m-device[data-endpoint="panel-device"]');
    assert.match(await deviceRow.innerText(), /127\.0\.0\.1:\d+ · NoSec · U · LwM2M 1\.1/);

    await deviceRow.locator('.lwm2m-endpoint').click();
    assert.match(await deviceRow.locator('.lwm2m-object[data-path="/3303"]').innerText(), /\/3303 Temperature/);
    await deviceRow.locator('.lwm2m-instance[data-path="/3/0"] > div').first().click();
    const battery = deviceRow.locator('.lwm2m-resource[data-path="/3/0/9"]');
    await battery.waitFor({ timeout: 10000 });
    // Only what the device has: Discover says /3/0 has no resource 20.
    assert.equal(await deviceRow.locator('.lwm2m-resource[data-path="/3/0/20"]').count(), 0);
    assert.match(await battery.innerText(), /Battery Level/);
    await battery.locator('.lwm2m-read').click();
    await page.waitForFunction(() => document.querySelector('.lwm2m-resource[data-path="/3/0/9"] .lwm2m-value').textContent === '100', null, { timeout: 10000 });

    await deviceRow.locator('.lwm2m-instance[data-path="/1/0"] > div').first().click();
    const lifetime = deviceRow.locator('.lwm2m-resource[data-path="/1/0/1"]');
    await lifetime.waitFor({ timeout: 10000 });
    await lifetime.locator('.lwm2m-write-value').fill('120');
    await lifetime.locator('.lwm2m-write').click();
    await page.waitForFunction(() => document.querySelector('.lwm2m-resource[data-path="/1/0/1"] .lwm2m-value').textContent === '2.04', null, { timeout: 10000 });
    assert.equal(device.getResource('/1/0/1'), 120);

    // A second device appears without reloading: the runtime tells the panel.
    const second = new SimulatedDevice({ endpoint: 'late-device', server: { address: '127.0.0.1', port: lwm2mPort } });
    await second.start();
    try {
      await second.register();
      await page.locator('.lwm2m-device[data-endpoint="late-device"]').waitFor({ timeout: 10000 });
    } finally {
      await second.stop();
    }

    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'lwm2m-devices-panel.png') });

    // The read node's editor completes endpoints and paths from the registered devices and the object model.
    await page.evaluate(() => RED.editor.edit(RED.nodes.node('rd1')));
    await page.locator('#node-input-path').waitFor();
    await page.locator('#node-input-endpoint').pressSequentially('panel');
    const completion = page.locator('.red-ui-autoComplete-container', { hasText: 'panel-device' });
    await completion.first().waitFor({ timeout: 10000 });
    await page.locator('#node-input-endpoint').fill('panel-device');
    await page.locator('#node-input-path').pressSequentially('battery');
    await page.locator('.red-ui-autoComplete-container', { hasText: '/3/0/9 Battery Level' }).first().waitFor({ timeout: 10000 });
    await page.screenshot({ path: path.join(artifacts, 'lwm2m-path-completion.png') });
    await page.evaluate(() => RED.tray.close());
    // The tray slides away: until it is gone its Done button is a second one.
    await page.locator('#node-input-path').waitFor({ state: 'detached' });

    // The observe node's editor has a field for every notification attribute, and keeps what is typed in them.
    await page.evaluate(() => RED.editor.edit(RED.nodes.node('ob1')));
    await page.locator('#node-input-hqmax').waitFor();
    assert.deepEqual(await page.locator('#node-input-attributes input').evaluateAll((inputs) => inputs.map((input) => input.placeholder)), ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax', 'edge', 'con', 'hqmax']);
    assert.equal(await page.locator('#node-input-hqmax').inputValue(), '3');
    await page.locator('#node-input-edge').fill('1');
    await page.locator('#node-dialog-ok').click();
    await page.waitForFunction(() => RED.nodes.node('ob1').edge === '1', null, { timeout: 5000 });
    assert.equal(await page.evaluate(() => RED.nodes.node('ob1').hqmax), '3');

    // A stale registration goes with the device's remove button (after a confirmation).
    const stale = new SimulatedDevice({ endpoint: 'stale-device', server: { address: '127.0.0.1', port: lwm2mPort } });
    await stale.start();
    try {
      await stale.register();
      const staleRow = page.locator('.lwm2m-device[data-endpoint="stale-device"]');
      await staleRow.waitFor({ timeout: 10000 });
      page.once('dialog', (dialog) => dialog.accept());
      await staleRow.locator('.lwm2m-remove').click();
      await staleRow.waitFor({ state: 'detached', timeout: 10000 });
      assert.equal(await page.locator('.lwm2m-device[data-endpoint="panel-device"]').count(), 1, 'the other devices stay');
    } finally {
      await stale.stop();
    }
    assert.deepEqual(errors, []);
  });

  it('protects the admin endpoints with the editor permissions', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-editor-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    const bcrypt = require('bcryptjs');
    const hash = bcrypt.hashSync('secret-password', 8);
    child = await startWithFlow(userDir, httpPort, lwm2mPort, `adminAuth: { type: 'credentials', users: [{ username: 'viewer', password: '${hash}', permissions: 'read' }] }`);
    const base = `http://127.0.0.1:${httpPort}`;
    assert.equal((await fetch(`${base}/lwm2m-red/servers`)).status, 401);
    const token = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: 'read', username: 'viewer', password: 'secret-password' }),
    }).then((r) => r.json());
    const headers = { authorization: `Bearer ${token.access_token}` };
    const servers = await fetch(`${base}/lwm2m-red/servers`, { headers }).then((r) => r.json());
    assert.equal(servers[0].name, 'browser test server');
    const write = await fetch(`${base}/lwm2m-red/servers/srv1/devices/x/write`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{"path":"/1/0/1","value":1}' });
    assert.equal(write.status, 401, 'a read-only login cannot write');
    const remove = await fetch(`${base}/lwm2m-red/servers/srv1/devices/x`, { method: 'DELETE', headers });
    assert.equal(remove.status, 401, 'nor remove a registration');
  });
});
