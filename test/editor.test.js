'use strict';
// The LwM2M sidebar in a real browser (Debian's Chromium driven by playwright-core) against
// Node-RED started the way `npm start` starts it: the devices list and every operation of the
// device console, against a simulated device on a real UDP socket.
const assert = require('node:assert/strict');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree, defaultObjectTree } = require('../dist/sim/object-tree');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { startEditor, stopEditor, launchBrowser, openEditor, showPanel, screenshotPath } = require('./support/browser');

function flow(lwm2mPort) {
  return [
    { id: 'tab1', type: 'tab', label: 'LwM2M' },
    { id: 'srv1', type: 'lwm2m-server', name: 'browser test server', bindAddress: '127.0.0.1', port: String(lwm2mPort), persist: false },
    { id: 'ev1', z: 'tab1', type: 'lwm2m-events', server: 'srv1', x: 150, y: 100, wires: [[]] },
    { id: 'rd1', z: 'tab1', type: 'lwm2m-read', server: 'srv1', endpoint: '', path: '', x: 350, y: 100, wires: [[]] },
  ];
}

/** Waits until a text appears in an element of the page; fails with the texts there are. */
async function textIn(page, selector, pattern, timeout = 10000) {
  try {
    await page.waitForFunction(
      ([css, source, flags]) => [...document.querySelectorAll(css)].some((element) => new RegExp(source, flags).test(element.textContent)),
      [selector, pattern.source, pattern.flags],
      { timeout },
    );
  } catch (error) {
    const texts = await page.evaluate((css) => [...document.querySelectorAll(css)].map((element) => element.textContent).slice(-5), selector);
    throw new Error(`no ${pattern} in ${selector}: ${JSON.stringify(texts)}`);
  }
}

describe('editor: the LwM2M devices panel and device console in Chromium', function () {
  this.timeout(180000);
  let editor;
  let browser;
  let device;
  let page;
  let lwm2mPort;
  const executed = [];

  before(async function () {
    requireTool(this, 'chromium', 'chromium');
    lwm2mPort = await freePort();
    editor = await startEditor(flow(lwm2mPort));
    const objects = defaultObjectTree('panel-device', (args) => executed.push(args));
    // A writable resource with several instances: Supported Server Versions of the Server object.
    objects.get(1).get(0).set(25, buildObjectTree({ 1: { 0: { 25: ['1.0', '1.1'] } } }).get(1).get(0).get(25));
    // Announced versions type its values: Supported Server Versions (/1/x/25) is in Server 1.2, Application Type (/3303/x/5750) in Temperature 1.1.
    device = new SimulatedDevice({ endpoint: 'panel-device', server: { address: '127.0.0.1', port: lwm2mPort }, lifetime: 300, objects, objectVersions: { 1: '1.2', 3303: '1.1' } });
    await device.start();
    await device.register();
    browser = await launchBrowser();
    page = await openEditor(browser, editor.base);
  });

  after(async () => {
    if (browser) await browser.close();
    if (device) await device.stop();
    await stopEditor(editor);
  });

  afterEach(() => assert.deepEqual(page ? page.errors : [], []));

  const row = (path) => page.locator(`.lwm2m-console [data-path="${path}"]`).first();
  const act = (path, action) => row(path).locator(`> .lwm2m-row-head .lwm2m-do-${action}`).click();
  const valueOf = (path) => row(path).locator('> .lwm2m-value');
  const expand = async (path) => {
    await row(path).locator('> .lwm2m-row-head .lwm2m-name').click();
  };

  it('lists the device, finds it by search and updates the list when another registers', async () => {
    await showPanel(page);
    const listed = page.locator('.lwm2m-device[data-endpoint="panel-device"]');
    await listed.waitFor({ timeout: 10000 });
    assert.match(await listed.innerText(), /127\.0\.0\.1:\d+ · NoSec · U · LwM2M 1\.1/);
    assert.match(await page.locator('.lwm2m-page-text').innerText(), /^1-1 of 1 device$/);

    // A second device appears without reloading: the runtime sends a delta over comms.
    const second = new SimulatedDevice({ endpoint: 'late-device', server: { address: '127.0.0.1', port: lwm2mPort } });
    await second.start();
    try {
      await second.register();
      await page.locator('.lwm2m-device[data-endpoint="late-device"]').waitFor({ timeout: 10000 });
      assert.match(await page.locator('.lwm2m-page-text').innerText(), /^1-2 of 2 devices$/);
      await page.locator('.lwm2m-match').selectOption('substring');
      await page.locator('.lwm2m-search').fill('nel-dev');
      await page.waitForFunction(() => $('.lwm2m-device').length === 1 && $('.lwm2m-device').attr('data-endpoint') === 'panel-device', null, { timeout: 10000 });
      await second.deregister();
    } finally {
      await second.stop();
    }
    await page.screenshot({ path: screenshotPath('lwm2m-devices-panel.png') });
  });

  it('opens a device console with its registration details', async () => {
    await page.locator('.lwm2m-device[data-endpoint="panel-device"]').click();
    await page.locator('.lwm2m-console .lwm2m-details').waitFor({ timeout: 10000 });
    const detail = async (key) => page.locator(`.lwm2m-detail[data-key="${key}"] td`).innerText();
    assert.match(await detail('lastSeen'), /seconds? ago/);
    assert.match(await detail('lifetime'), /^300 s, expires /);
    assert.equal(await detail('binding'), 'U');
    assert.equal(await detail('queued'), '0');
    assert.match(await detail('address'), /^127\.0\.0\.1:\d+ \(udp\)$/);
    assert.equal(await detail('security'), 'NoSec');
    assert.match(await detail('objectVersions'), /1@1\.2 .*3@1\.1\* .*3303@1\.1/);
    assert.match(await page.locator('.lwm2m-log-state').innerText(), /recording/);
  });

  it('reads at every level, in the chosen format, with the messages in the log', async () => {
    await expand('/3');
    await expand('/3/0');
    await row('/3/0/9').waitFor({ timeout: 10000 });
    // Discover says what the device has: no resource 20 in /3/0.
    await page.waitForFunction(() => $('.lwm2m-console [data-path="/3/0/2"]').length === 1 && $('.lwm2m-console [data-path="/3/0/20"]').length === 0, null, { timeout: 10000 });

    await page.locator('.lwm2m-format').selectOption('senml-json');
    await act('/3', 'read');
    await textIn(page, '.lwm2m-console [data-path="/3/0/0"] > .lwm2m-value', /^Node-RED LwM2M$/);
    await textIn(page, '.lwm2m-log-line', /→ CON GET \/3$/);
    await textIn(page, '.lwm2m-log-entry .lwm2m-meta', /accept=application\/senml\+json/);

    await page.locator('.lwm2m-format').selectOption('tlv');
    await act('/3/0', 'read');
    await textIn(page, '.lwm2m-log-entry .lwm2m-meta', /accept=application\/vnd\.oma\.lwm2m\+tlv/);
    await page.locator('.lwm2m-format').selectOption('auto');
    await act('/3/0/9', 'read');
    await textIn(page, '.lwm2m-console [data-path="/3/0/9"] > .lwm2m-value', /^100$/);
    // A multiple resource lists its instances, each readable on its own.
    await act('/3/0/7', 'read');
    await row('/3/0/7/1').waitFor({ timeout: 10000 });
    await act('/3/0/7/1', 'read');
    await textIn(page, '.lwm2m-result', /2\.05 read \/3\/0\/7\/1/);
    assert.equal(await valueOf('/3/0/7/1').innerText(), '5000');
    // The log shows the exchange decoded, with how long the device took.
    await textIn(page, '.lwm2m-log-line', /← ACK 2\.05 \+\d+ ms$/);
    await textIn(page, '.lwm2m-log-payload', /^5000$/);
  });

  it('writes single and multiple-instance resources with typed inputs', async () => {
    await expand('/1');
    await expand('/1/0');
    await row('/1/0/1').waitFor({ timeout: 10000 });
    await act('/1/0/1', 'write');
    const lifetime = page.locator('.lwm2m-form .lwm2m-input[data-path="/1/0/1"]');
    assert.equal(await lifetime.getAttribute('type'), 'number');
    await lifetime.fill('120');
    await page.locator('.lwm2m-form .lwm2m-submit').click();
    await textIn(page, '.lwm2m-result', /2\.04 written to \/1\/0\/1/);
    assert.equal(device.getResource('/1/0/1'), 120);

    await act('/1/0/25', 'read');
    await textIn(page, '.lwm2m-console [data-path="/1/0/25"] > .lwm2m-value', /"1\.1"/);
    await act('/1/0/25', 'write');
    assert.equal(await page.locator('.lwm2m-form .lwm2m-multi-row').count(), 2);
    await page.locator('.lwm2m-form .lwm2m-do-add-instance').click();
    await page.locator('.lwm2m-form .lwm2m-multi-row').nth(2).locator('.lwm2m-input').fill('1.2');
    await page.locator('.lwm2m-form .lwm2m-submit').click();
    await textIn(page, '.lwm2m-result', /2\.04 written to \/1\/0\/25/);
    assert.deepEqual([...device.getResource('/1/0/25').entries()], [[0, '1.0'], [1, '1.1'], [2, '1.2']]);
  });

  it('executes with arguments', async () => {
    await act('/3/0/4', 'execute');
    await page.locator('.lwm2m-form .lwm2m-args').fill("0='now'");
    await page.locator('.lwm2m-form .lwm2m-submit').click();
    await textIn(page, '.lwm2m-result', /2\.04 executed \/3\/0\/4/);
    assert.deepEqual(executed, ["0='now'"]);
  });

  it('observes with the live value in place, and cancels', async () => {
    await expand('/3303');
    await expand('/3303/0');
    await row('/3303/0/5700').waitFor({ timeout: 10000 });
    await act('/3303/0/5700', 'observe');
    await textIn(page, '.lwm2m-result', /observing \/3303\/0\/5700/);
    await page.locator('.lwm2m-observation').waitFor({ timeout: 10000 });
    await device.setResource('/3303/0/5700', 23.75);
    await textIn(page, '.lwm2m-console [data-path="/3303/0/5700"] > .lwm2m-value', /^23\.75$/);
    await textIn(page, '.lwm2m-observation-value', /^23\.75$/);
    await page.locator('.lwm2m-section-observations').scrollIntoViewIfNeeded();
    await page.locator('#red-ui-sidebar').screenshot({ path: screenshotPath('lwm2m-device-console.png') });
    await page.locator('.lwm2m-observation .lwm2m-do-cancel').click();
    await page.waitForFunction(() => $('.lwm2m-observation').length === 0, null, { timeout: 10000 });
    assert.deepEqual(device.observations, []);
  });

  it('writes attributes and discovers them', async () => {
    await act('/3303/0/5700', 'attributes');
    const fields = await page.locator('.lwm2m-form .lwm2m-attribute').evaluateAll((inputs) => inputs.map((input) => input.dataset.name));
    assert.deepEqual(fields, ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax']);
    await page.locator('.lwm2m-form .lwm2m-attribute[data-name="pmin"]').fill('5');
    await page.locator('.lwm2m-form .lwm2m-attribute[data-name="pmax"]').fill('60');
    await page.locator('.lwm2m-form .lwm2m-submit').click();
    await textIn(page, '.lwm2m-console [data-path="/3303/0/5700"] > .lwm2m-value', /<\/3303\/0\/5700>;pmin=5;pmax=60/);
    assert.deepEqual(device.attributes.get('/3303/0/5700'), { pmin: '5', pmax: '60' });
  });

  it('creates and deletes instances', async () => {
    await act('/3303', 'create');
    await page.locator('.lwm2m-form .lwm2m-new-instance').fill('1');
    await page.locator('.lwm2m-form .lwm2m-input[data-path="/3303/0/5750"]').fill('kitchen');
    await page.locator('.lwm2m-form .lwm2m-submit').click();
    await textIn(page, '.lwm2m-result', /2\.01 created \/3303\/1/);
    assert.equal(device.getResource('/3303/1/5750'), 'kitchen');
    // The device announces the new instance in an Update; the console follows.
    await device.update({}, true);
    await row('/3303/1').waitFor({ timeout: 10000 });
    await act('/3303/1', 'delete');
    await textIn(page, '.lwm2m-result', /2\.02 deleted \/3303\/1/);
    assert.equal(device.objects.get(3303).has(1), false);
  });

  it('fits the default sidebar width', async () => {
    const sidebar = await page.locator('#red-ui-sidebar').boundingBox();
    const outside = await page.evaluate((right) => [...document.querySelectorAll('.lwm2m-console button:not([disabled])')]
      .filter((b) => $(b).is(':visible') && b.getBoundingClientRect().right > right + 0.5)
      .map((b) => b.className), sidebar.x + sidebar.width);
    assert.deepEqual(outside, []);
  });

  it('stops recording when the console closes', async () => {
    await page.locator('.lwm2m-console .lwm2m-do-back').click();
    await page.locator('.lwm2m-device[data-endpoint="panel-device"]').waitFor();
    await page.waitForFunction(async () => {
      const answer = await $.getJSON('lwm2m-red/servers/srv1/devices/panel-device/log');
      return answer.recording === false;
    }, null, { timeout: 10000, polling: 500 });
  });

  it('completes endpoints and paths in the operation node editors, as typed inputs', async () => {
    await page.evaluate(() => RED.editor.edit(RED.nodes.node('rd1')));
    await page.locator('#node-input-path').waitFor({ state: 'attached' });
    const endpointInput = page.locator('#node-input-endpoint + .red-ui-typedInput-container .red-ui-typedInput-input');
    await endpointInput.pressSequentially('panel');
    // One more keystroke once typing is done: on a busy machine the answers to earlier keystrokes may come last.
    await page.waitForTimeout(300);
    await endpointInput.press('End');
    await page.locator('.red-ui-autoComplete-container', { hasText: 'panel-device' }).first().waitFor({ timeout: 20000 });
    await page.keyboard.press('Escape');
    await page.evaluate(() => $('#node-input-endpoint').typedInput('value', 'panel-device'));
    const pathInput = page.locator('#node-input-path + .red-ui-typedInput-container .red-ui-typedInput-input');
    await pathInput.pressSequentially('battery');
    await page.waitForTimeout(300);
    await pathInput.press('End');
    await page.locator('.red-ui-autoComplete-container', { hasText: '/3/0/9 Battery Level' }).first().waitFor({ timeout: 20000 });
    await page.screenshot({ path: screenshotPath('lwm2m-path-completion.png') });
    await page.keyboard.press('Escape');
    await page.locator('#node-dialog-cancel').click();
  });

  it('de-registers a device from its console, asking first', async () => {
    await showPanel(page);
    await page.locator('.lwm2m-device[data-endpoint="panel-device"]').click();
    await page.locator('.lwm2m-console .lwm2m-do-remove').click();
    assert.match(await page.locator('.lwm2m-remove-form').innerText(), /Remove the registration of panel-device\?/);
    await page.locator('.lwm2m-remove-form .lwm2m-confirm-remove').click();
    await page.locator('.lwm2m-list-view').waitFor({ state: 'visible' });
    await page.waitForFunction(() => $('.lwm2m-device[data-endpoint="panel-device"]').length === 0, null, { timeout: 10000 });
    const page1 = await fetch(`${editor.base}/lwm2m-red/servers/srv1/devices`).then((r) => r.json());
    assert.equal(page1.total, 0);
    // The device registers again at its next update, as the confirmation says.
    await device.register();
    await page.locator('.lwm2m-device[data-endpoint="panel-device"]').waitFor({ timeout: 10000 });
  });
});

describe('editor: admin endpoints and the editor permissions', function () {
  this.timeout(60000);
  let editor;

  afterEach(() => stopEditor(editor));

  it('lets a read-only login look but not change anything', async () => {
    const bcrypt = require('bcryptjs');
    const hash = bcrypt.hashSync('secret-password', 8);
    editor = await startEditor(flow(await freePort()), { settings: `adminAuth: { type: 'credentials', users: [{ username: 'viewer', password: '${hash}', permissions: 'read' }] }` });
    const { base } = editor;
    assert.equal((await fetch(`${base}/lwm2m-red/servers`)).status, 401);
    const token = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: 'read', username: 'viewer', password: 'secret-password' }),
    }).then((r) => r.json());
    const headers = { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' };
    const servers = await fetch(`${base}/lwm2m-red/servers`, { headers }).then((r) => r.json());
    assert.equal(servers[0].name, 'browser test server');
    assert.equal((await fetch(`${base}/lwm2m-red/servers/srv1/devices`, { headers })).status, 200);
    assert.equal((await fetch(`${base}/lwm2m-red/servers/srv1/complete/endpoints?q=a`, { headers })).status, 200);
    assert.equal((await fetch(`${base}/lwm2m-red/servers/srv1/devices/x`, { method: 'DELETE', headers })).status, 401, 'a read-only login cannot de-register');
    for (const action of ['write', 'execute', 'create', 'delete', 'attributes', 'observe', 'cancel']) {
      const response = await fetch(`${base}/lwm2m-red/servers/srv1/devices/x/${action}`, { method: 'POST', headers, body: '{"path":"/1/0/1","value":1}' });
      assert.equal(response.status, 401, `a read-only login cannot ${action}`);
    }
  });
});
