'use strict';
// The node dialogs in Chromium: every example's nodes survive opening and saving their dialogs
// unchanged (one source of defaults for runtime, editor and examples), the DTLS warning, the
// palette, typed inputs, validators and placeholders from the message catalogues.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { startEditor, stopEditor, launchBrowser, openEditor, waitForEditor, showPanel, deployFlow, deployedFlow, screenshotPath } = require('./support/browser');
const { NODE_DEFAULTS } = require('../dist/nodes/node-defaults');
const { ATTRIBUTE_NAMES } = require('../dist/lib/lwm2m/requests/write-attributes');

const examplesDir = path.join(__dirname, '..', 'examples');
const EXAMPLES = fs.readdirSync(examplesDir).filter((file) => file.endsWith('.json'));
const OURS = new Set(Object.keys(NODE_DEFAULTS));

/** An example on a tab of its own, on ports nobody else uses. */
async function exampleFlow(file) {
  const nodes = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
  const tab = nodes.find((node) => node.z).z;
  const ports = { 'lwm2m-server': [await freePort(), await freePort()], 'lwm2m-bootstrap-server': [await freePort(), ''] };
  return [
    { id: tab, type: 'tab', label: file, disabled: false, info: '', env: [] },
    ...nodes.map((node) => (ports[node.type] ? { ...node, port: String(ports[node.type][0]), dtlsPort: node.dtlsPort ? String(ports[node.type][1]) : '' } : node)),
  ];
}

/** Opens a node's dialog and presses Done. */
async function openAndSave(page, node) {
  const config = NODE_DEFAULTS[node.type] && ['lwm2m-server', 'lwm2m-bootstrap-server', 'lwm2m-onem2m'].includes(node.type);
  await page.evaluate(([id, type, isConfig]) => (isConfig ? RED.editor.editConfig('', type, id) : RED.editor.edit(RED.nodes.node(id))), [node.id, node.type, config]);
  const done = page.locator(config ? '#node-config-dialog-ok' : '#node-dialog-ok');
  await done.waitFor({ timeout: 10000 });
  await page.waitForTimeout(200);
  const placeholders = await page.evaluate(() => $('.red-ui-tray input[placeholder], .red-ui-tray textarea[placeholder]').map((_, el) => el.getAttribute('placeholder')).get());
  const typed = await page.evaluate(() => ['endpoint', 'path'].filter((name) => $(`#node-input-${name}`).next('.red-ui-typedInput-container').length === 1));
  const attributes = await page.evaluate((names) => names.filter((name) => $(`#node-input-${name}`).length === 1), ATTRIBUTE_NAMES);
  await done.click();
  await page.waitForFunction(() => $('.red-ui-tray').length === 0, null, { timeout: 10000 });
  return { placeholders, typed, attributes };
}

const comparable = (flow) => flow.filter((node) => node.type !== 'tab').sort((a, b) => (a.id < b.id ? -1 : 1));

describe('editor: node dialogs, examples and the palette in Chromium', function () {
  this.timeout(300000);
  let editor;
  let browser;
  let page;

  before(async function () {
    requireTool(this, 'chromium', 'chromium');
    editor = await startEditor([{ id: 'empty', type: 'tab', label: 'empty' }]);
    browser = await launchBrowser();
    page = await openEditor(browser, editor.base);
  });

  after(async () => {
    if (browser) await browser.close();
    await stopEditor(editor);
  });

  afterEach(() => assert.deepEqual(page ? page.errors : [], []));

  /** Deploys a flow, opens the editor on it, and the dialog of its server node. */
  async function openServerDialog(flow) {
    await deployFlow(editor.base, flow);
    await page.reload();
    await waitForEditor(page);
    const server = flow.find((n) => n.type === 'lwm2m-server');
    await page.evaluate((id) => RED.editor.editConfig('', 'lwm2m-server', id), server.id);
    await page.locator('#node-config-dialog-ok').waitFor();
    // The tray shows its buttons before the dialog's fields are filled (oneditprepare runs once it is open): typing earlier is overwritten.
    await page.locator('#node-config-privateKey-field .lwm2m-private-key').waitFor();
    await page.waitForFunction((port) => $('#node-config-input-port').val() === port, String(server.port ?? ''));
  }

  for (const file of EXAMPLES) {
    it(`${file}: opening and saving every LwM2M node's dialog changes nothing`, async () => {
      await deployFlow(editor.base, await exampleFlow(file));
      const before = await deployedFlow(editor.base);
      await page.reload();
      await waitForEditor(page);
      if (file === 'observe-temperature.json') {
        await showPanel(page);
        await page.screenshot({ path: screenshotPath('lwm2m-example-flow.png') });
      }
      for (const node of before.filter((n) => OURS.has(n.type))) {
        const { placeholders, typed, attributes } = await openAndSave(page, node);
        // Placeholders come from the message catalogues: none is left as a key.
        for (const text of placeholders) assert.doesNotMatch(text, /^[\w@/-]*lwm2m[\w-]*[.:][\w.]+$/, `${node.type}: placeholder ${text}`);
        if ('endpointType' in NODE_DEFAULTS[node.type]) assert.ok(typed.includes('endpoint'), `${node.type}: endpoint as a typed input`);
        if ('pathType' in NODE_DEFAULTS[node.type]) assert.ok(typed.includes('path'), `${node.type}: path as a typed input`);
        if (node.type === 'lwm2m-observe' || node.type === 'lwm2m-write-attributes') assert.deepEqual(attributes, ATTRIBUTE_NAMES, 'every attribute the runtime accepts');
      }
      // Deploy what the editor holds now, as its Deploy button would, and compare.
      const edited = await page.evaluate(() => RED.nodes.createCompleteNodeSet({ credentials: false }));
      await deployFlow(editor.base, edited);
      assert.deepEqual(comparable(await deployedFlow(editor.base)), comparable(before));
    });
  }

  it('gives a node saved before a property existed the runtime default, so saving it keeps the behaviour', async () => {
    const flow = await exampleFlow('log-registrations.json');
    // As in flows written before persist, reobserve, awakeTime and queueTtl were settings.
    for (const node of flow.filter((n) => n.type === 'lwm2m-server')) for (const key of ['persist', 'reobserve', 'awakeTime', 'queueTtl', 'security']) delete node[key];
    await openServerDialog(flow);
    assert.equal(await page.locator('#node-config-input-persist').isChecked(), true);
    assert.equal(await page.locator('#node-config-input-reobserve').isChecked(), true);
    assert.equal(await page.locator('#node-config-input-awakeTime').inputValue(), '93');
    await page.locator('#node-config-dialog-ok').click();
    await page.waitForFunction(() => $('.red-ui-tray').length === 0);
    const saved = (await page.evaluate(() => RED.nodes.createCompleteNodeSet({ credentials: false }))).find((n) => n.type === 'lwm2m-server');
    assert.deepEqual([saved.persist, saved.reobserve, Number(saved.awakeTime), Number(saved.queueTtl)], [true, true, 93, 300]);
  });

  it('warns in the dialog and in the status when devices need DTLS and no DTLS port is set', async () => {
    const flow = await exampleFlow('log-registrations.json');
    await openServerDialog(flow);
    const warning = page.locator('#node-config-dtls-warning');
    assert.equal(await warning.isVisible(), false);
    await page.locator('#node-config-input-dtlsPort').fill('');
    assert.equal(await warning.isVisible(), false, 'no warning without secured devices');
    const rows = page.locator('#node-config-security .sec-endpoint');
    const before = await rows.count();
    await page.locator('.red-ui-editableList:has(#node-config-security) .red-ui-editableList-addButton').click();
    await page.waitForFunction((n) => $('#node-config-security .sec-endpoint').length === n + 1, before);
    await rows.last().pressSequentially('meter-1');
    await warning.waitFor({ state: 'visible', timeout: 10000 });
    assert.match(await warning.innerText(), /neither port is set/);
    // A TLS port serves listed devices too.
    await page.locator('#node-config-input-tlsPort').fill('5684');
    await warning.waitFor({ state: 'hidden' });
    await page.locator('#node-config-input-tlsPort').fill('');
    await warning.waitFor({ state: 'visible' });
    await page.locator('#node-config-input-dtlsPort').fill('5684');
    await warning.waitFor({ state: 'hidden' });
    await page.locator('#node-config-dialog-cancel').click();
    await page.waitForFunction(() => $('.red-ui-tray').length === 0);

    // Deployed that way, the nodes using the server say so.
    const secured = flow.map((n) => (n.type === 'lwm2m-server' ? { ...n, dtlsPort: '', security: [{ endpoint: 'meter-1', mode: 'x509' }] } : n));
    await deployFlow(editor.base, secured);
    await page.reload();
    await waitForEditor(page);
    const events = secured.find((n) => n.type === 'lwm2m-events');
    await page.waitForFunction((id) => {
      const status = RED.nodes.node(id).status;
      return status && status.fill === 'yellow' && /· no DTLS port$/.test(status.text);
    }, events.id, { timeout: 10000 });
  });

  it('refuses a port of 70000 in the dialog', async () => {
    await openServerDialog(await exampleFlow('log-registrations.json'));
    // Entered at once (the dialog may move the focus while it settles, which would take keys typed one by one), then the events Node-RED validates on.
    const type = async (text) => {
      await page.locator('#node-config-input-port').fill(text);
      await page.locator('#node-config-input-port').dispatchEvent('keyup');
      await page.locator('#node-config-input-port').dispatchEvent('change');
      assert.equal(await page.locator('#node-config-input-port').inputValue(), text);
    };
    await type('70000');
    await page.waitForFunction(() => $('#node-config-input-port').hasClass('input-error'), null, { timeout: 10000 });
    await type('5683');
    await page.waitForFunction(() => !$('#node-config-input-port').hasClass('input-error'), null, { timeout: 10000 });
    await page.locator('#node-config-dialog-cancel').click();
  });

  it('refuses in the observe dialog the attribute values the runtime refuses', async () => {
    const flow = await exampleFlow('observe-temperature.json');
    await deployFlow(editor.base, flow);
    await page.reload();
    await waitForEditor(page);
    await page.evaluate((id) => RED.editor.edit(RED.nodes.node(id)), flow.find((n) => n.type === 'lwm2m-observe').id);
    await page.locator('#node-dialog-ok').waitFor();
    const errorOf = (name) => page.evaluate((n) => $(`#node-input-${n}`).hasClass('input-error'), name);
    for (const [name, bad, good] of [['edge', '2', '1'], ['con', '0.5', '0'], ['hqmax', '1.5', '3'], ['pmin', '-1', '5']]) {
      await page.locator(`#node-input-${name}`).fill(bad);
      await page.locator(`#node-input-${name}`).dispatchEvent('change');
      await page.waitForFunction((n) => $(`#node-input-${n}`).hasClass('input-error'), name, { timeout: 5000 });
      await page.locator(`#node-input-${name}`).fill(good);
      await page.locator(`#node-input-${name}`).dispatchEvent('change');
      await page.waitForFunction((n) => !$(`#node-input-${n}`).hasClass('input-error'), name, { timeout: 5000 });
      assert.equal(await errorOf(name), false);
    }
    await page.locator('#node-dialog-cancel').click();
    await page.waitForFunction(() => $('.red-ui-tray').length === 0);
  });

  it('lists the nodes under LwM2M with short labels that do not wrap and an icon per family', async () => {
    const palette = await page.evaluate(() => {
      const nodes = $('#red-ui-palette-container-LwM2M .red-ui-palette-node');
      return nodes.map((_, el) => ({
        type: $(el).attr('data-palette-type'),
        label: $(el).find('.red-ui-palette-label').text(),
        lines: Math.round($(el).find('.red-ui-palette-label').height() / parseFloat(getComputedStyle($(el).find('.red-ui-palette-label')[0]).lineHeight)),
        icon: $(el).find('.red-ui-palette-icon').css('background-image'),
      })).get();
    });
    const types = palette.map((entry) => entry.type).sort();
    assert.deepEqual(types, Object.keys(NODE_DEFAULTS).filter((type) => !['lwm2m-server', 'lwm2m-bootstrap-server', 'lwm2m-onem2m'].includes(type)).sort());
    for (const entry of palette) assert.equal(entry.lines, 1, `${entry.label} fits on one line`);
    const iconOf = (type) => palette.find((entry) => entry.type === type).icon;
    const families = [['lwm2m-events'], ['lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-create', 'lwm2m-delete', 'lwm2m-discover', 'lwm2m-write-attributes'], ['lwm2m-observe'], ['lwm2m-firmware'], ['lwm2m-bootstrap', 'lwm2m-bootstrap-events'], ['lwm2m-onem2m-events']];
    for (const family of families) assert.equal(new Set(family.map(iconOf)).size, 1, `one icon for ${family.join(', ')}`);
    assert.equal(new Set(families.map((family) => iconOf(family[0]))).size, families.length, 'each family its own icon');
    for (const family of families) {
      const url = /url\("?([^")]+)"?\)/.exec(iconOf(family[0]))[1];
      const response = await page.request.get(url);
      assert.equal(response.status(), 200);
      assert.match(response.headers()['content-type'], /svg/);
    }
    await page.locator('#red-ui-palette-container-LwM2M').screenshot({ path: screenshotPath('lwm2m-palette.png') });
  });
});
