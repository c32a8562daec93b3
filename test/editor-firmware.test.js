'use strict';
// The lwm2m firmware node's dialog in a real browser (Debian's Chromium driven by playwright-core), against Node-RED
// started the way `npm start` starts it: its labels come from the message catalogue, the actions follow the object.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');

const artifacts = path.join(__dirname, '..', 'test-artifacts');

describe('editor: the lwm2m firmware dialog in Chromium', function () {
  this.timeout(120_000);
  let child;
  let browser;
  let userDir;

  before(function () {
    requireTool(this, 'chromium', 'chromium');
  });

  after(async () => {
    if (browser) await browser.close();
    await stopNodeRed(child);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('offers the actions of the object chosen, shows the /9 fields only for /9, marks the counts the runtime refuses, and saves what was chosen', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-editor-fw-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    fs.writeFileSync(
      path.join(userDir, 'flows.json'),
      JSON.stringify([
        { id: 'tab1', type: 'tab', label: 'firmware' },
        { id: 'srv1', type: 'lwm2m-server', name: 'browser test server', bindAddress: '127.0.0.1', port: String(lwm2mPort) },
        { id: 'fw1', z: 'tab1', type: 'lwm2m-firmware', server: 'srv1', object: '5', action: 'update', x: 200, y: 100, wires: [[], [], []] },
      ]),
    );
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = { uiHost: '127.0.0.1', uiPort: ${httpPort}, flowFile: 'flows.json', logging: { console: { level: 'info' } }, telemetry: { enabled: false }, editorTheme: { tours: false } };\n`,
    );
    child = await startNodeRed(userDir, httpPort);
    const { chromium } = require('playwright-core');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    await page.waitForFunction(() => window.RED && RED.nodes && RED.nodes.node('fw1'), null, { timeout: 30000 });

    const options = () => page.locator('#node-input-action option').evaluateAll((list) => list.map((option) => [option.value, option.textContent]));
    await page.evaluate(() => RED.editor.edit(RED.nodes.node('fw1')));
    await page.locator('#node-input-action').waitFor();
    assert.deepEqual(await options(), [['update', 'update']]);
    assert.equal(await page.locator('.lwm2m-firmware-software').first().isVisible(), false);
    assert.equal((await page.locator('label[for="node-input-delivery"]').innerText()).trim(), 'Delivery');
    assert.match(await page.locator('#node-input-delivery option[value="auto"]').innerText(), /automatic/);
    assert.match(await page.locator('#node-input-endpoint').getAttribute('placeholder'), /msg\.endpoint/);

    await page.locator('#node-input-object').selectOption('9');
    assert.deepEqual((await options()).map(([value]) => value), ['install', 'activate', 'deactivate', 'uninstall', '']);
    assert.equal((await options()).at(-1)[1], 'msg.action');
    assert.equal(await page.locator('.lwm2m-firmware-software').first().isVisible(), true);
    await page.locator('#node-input-action').selectOption('activate');
    // What the runtime refuses is marked in the dialog; the endpoint is a typed input like the operation nodes'.
    assert.equal(await page.locator('#node-input-endpoint').evaluate((input) => $(input).next('.red-ui-typedInput-container').length), 1);
    const marked = (id) => page.locator(`#node-input-${id}`).evaluate((input) => $(input).hasClass('input-error'));
    for (const [id, bad, good] of [['instanceId', '65535', '2'], ['concurrency', '0', '5'], ['retries', '101', '3'], ['pollInterval', '-1', '0.5']]) {
      await page.locator(`#node-input-${id}`).fill(bad);
      await page.locator(`#node-input-${id}`).dispatchEvent('change');
      await page.waitForFunction((name) => $(`#node-input-${name}`).hasClass('input-error'), id, { timeout: 5000 });
      await page.locator(`#node-input-${id}`).fill(good);
      await page.locator(`#node-input-${id}`).dispatchEvent('change');
      await page.waitForFunction((name) => !$(`#node-input-${name}`).hasClass('input-error'), id, { timeout: 5000 });
      assert.equal(await marked(id), false);
    }
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'lwm2m-firmware-dialog.png') });
    await page.locator('#node-dialog-ok').click();
    const saved = await page.evaluate(() => {
      const node = RED.nodes.node('fw1');
      return [node.object, node.action, node.instanceId, node.concurrency, node.retries, node.endpointType, node.outputs];
    });
    assert.deepEqual(saved, ['9', 'activate', '2', '5', '3', 'str', 3]);
    assert.equal(await page.evaluate(() => RED.nodes.node('fw1')._def.outputLabels.call(RED.nodes.node('fw1'), 1)), 'progress');
    assert.deepEqual(errors, []);
  });
});
