'use strict';
// Keys as an editor user sees them: a real Node-RED with adminAuth (a
// read-only and a full user), its admin API, and the editor in Chromium.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');
const { until } = require('./support/wait');

const KEY = '6b65792d6f662d7073682d6465762d31'; // "key-of-psk-dev-1"
const ENDPOINT_KEY = '6d657465722d392d6c776d326d2d6b6579';
const BOOTSTRAP_KEY = '6d657465722d392d62732d6b6579';
const NEW_KEY = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const SECOND_KEY = 'c0ffee00c0ffee00';
const ALL_KEYS = [KEY, ENDPOINT_KEY, BOOTSTRAP_KEY, NEW_KEY, SECOND_KEY];
const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };

describe('keys: password credentials, never read back', function () {
  this.timeout(120_000);
  let child;
  let userDir;
  let base;
  let ports;
  const devices = [];

  /** A flow saved by the earlier version of the pack: keys in text credentials, rows without keyIds. */
  async function start() {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-keys-'));
    const httpPort = await freeTcpPort();
    ports = { udp: await freePort(), dtls: await freePort(), bsDtls: await freePort() };
    fs.writeFileSync(
      path.join(userDir, 'flows.json'),
      JSON.stringify([
        { id: 'tab1', type: 'tab', label: 'LwM2M' },
        {
          id: 'srv1', type: 'lwm2m-server', name: 'keys server', bindAddress: '127.0.0.1', port: String(ports.udp), dtlsPort: String(ports.dtls),
          security: [{ endpoint: 'psk-dev-1', mode: 'psk', identity: 'psk-dev-1-id' }],
        },
        {
          id: 'bs1', type: 'lwm2m-bootstrap-server', bindAddress: '127.0.0.1', port: '', dtlsPort: String(ports.bsDtls),
          endpoints: [{ endpoint: 'meter-9', uri: `coaps://127.0.0.1:${ports.dtls}`, securityMode: 'psk', pskIdentity: 'meter-9-id', shortServerId: '1', lifetime: '300', binding: 'U', bootstrapIdentity: 'bs-meter-9' }],
        },
        { id: 'ev1', z: 'tab1', type: 'lwm2m-events', server: 'srv1', x: 150, y: 100, wires: [[]] },
        { id: 'bsev1', z: 'tab1', type: 'lwm2m-bootstrap-events', server: 'bs1', x: 150, y: 200, wires: [[]] },
      ]),
    );
    // Credentials in clear (credentialSecret false), so that the test can write the old format and read what is kept.
    fs.writeFileSync(
      path.join(userDir, 'flows_cred.json'),
      JSON.stringify({
        srv1: { pskKeys: JSON.stringify({ 'psk-dev-1': KEY }) },
        bs1: { endpointKeys: JSON.stringify({ 'meter-9': ENDPOINT_KEY }), bootstrapKeys: JSON.stringify({ 'meter-9': BOOTSTRAP_KEY }) },
      }),
    );
    const bcrypt = require('bcryptjs');
    const hash = bcrypt.hashSync('secret-password', 8);
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = { uiHost: '127.0.0.1', uiPort: ${httpPort}, flowFile: 'flows.json', credentialSecret: false, logging: { console: { level: 'info' } }, telemetry: { enabled: false }, editorTheme: { tours: false },
  adminAuth: { type: 'credentials', users: [{ username: 'viewer', password: '${hash}', permissions: 'read' }, { username: 'admin', password: '${hash}', permissions: '*' }] } };\n`,
    );
    child = await startNodeRed(userDir, httpPort);
    base = `http://127.0.0.1:${httpPort}`;
  }

  async function token(username, scope) {
    const response = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password: 'secret-password' }),
    });
    return (await response.json()).access_token;
  }

  async function pskDevice(endpoint, identity, key, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: ports.dtls }, dtls: { identity, key: Buffer.from(key, 'hex') }, transmission: FAST, ...options });
    devices.push(d);
    await d.start();
    return d;
  }

  /** Registers over DTLS with this key: resolves when it worked, rejects with the handshake or registration failure. */
  async function registers(endpoint, identity, key) {
    const d = await pskDevice(endpoint, identity, key);
    await d.register();
    await d.stop();
  }

  const storedCredentials = () => JSON.parse(fs.readFileSync(path.join(userDir, 'flows_cred.json'), 'utf8'));

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await stopNodeRed(child);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    child = userDir = undefined;
  });

  it('never returns key material from the admin API, to a read-only or a full user; keys of flows saved before keep working', async () => {
    await start();
    const tokens = { viewer: await token('viewer', 'read'), admin: await token('admin', '*') };
    // Every node type this runtime knows: GET /credentials/<type>/<id> answers by the type named in the URL.
    const nodeSets = await fetch(`${base}/nodes`, { headers: { accept: 'application/json', authorization: `Bearer ${tokens.admin}` } }).then((r) => r.json());
    const types = [...new Set(nodeSets.flatMap((set) => set.types)), 'tab', 'subflow', 'group'];
    assert.ok(types.includes('lwm2m-server') && types.includes('tls-config'));
    for (const [user, bearer] of Object.entries(tokens)) {
      const headers = { authorization: `Bearer ${bearer}` };
      for (const type of types) {
        for (const id of ['srv1', 'bs1']) {
          const text = await fetch(`${base}/credentials/${type}/${id}`, { headers }).then((r) => r.text());
          for (const key of ALL_KEYS) assert.equal(text.includes(key), false, `${user}: GET /credentials/${type}/${id} returned a key: ${text}`);
        }
      }
      // has_stateKey too: the key DTLS sessions are sealed under, which the node made at its start.
      assert.deepEqual(await fetch(`${base}/credentials/lwm2m-server/srv1`, { headers }).then((r) => r.json()), { has_pskKeys: true, has_pskKeyChanges: false, has_privateKey: false, has_stateKey: true, has_redisPassword: false });
      assert.deepEqual(await fetch(`${base}/credentials/lwm2m-bootstrap-server/bs1`, { headers }).then((r) => r.json()), {
        has_defaultPskKey: false, has_endpointKeys: true, has_endpointKeyChanges: false, has_bootstrapKeys: true, has_bootstrapKeyChanges: false, has_privateKey: false, has_stateKey: true, has_redisPassword: false,
      });
      const flows = await fetch(`${base}/flows`, { headers }).then((r) => r.text());
      for (const key of ALL_KEYS) assert.equal(flows.includes(key), false);
    }
    // The keys saved as text credentials still authenticate: the server's...
    await registers('psk-dev-1', 'psk-dev-1-id', KEY);
    // ...and both of the bootstrap server's: the device's bootstrap key, and the account key it is given.
    const objects = buildObjectTree({ 1: { 0: { 0: 1, 1: 60 } }, 3: { 0: { 0: 'Acme' } } });
    const fresh = await pskDevice('meter-9', 'bs-meter-9', BOOTSTRAP_KEY, { server: { address: '127.0.0.1', port: ports.bsDtls }, bootstrapServer: { address: '127.0.0.1', port: ports.bsDtls }, objects });
    await fresh.bootstrap();
    assert.equal(fresh.getResource('/0/0/5').toString('hex'), ENDPOINT_KEY);

    // Removing a registration from the devices panel takes write permission.
    const remove = (bearer) => fetch(`${base}/lwm2m-red/servers/srv1/devices/psk-dev-1`, { method: 'DELETE', headers: { authorization: `Bearer ${bearer}` } });
    assert.equal((await remove(tokens.viewer)).status, 401);
    assert.deepEqual(await (await remove(tokens.admin)).json(), { removed: true, unbound: false });
    assert.equal((await remove(tokens.admin)).status, 404);
    assert.ok(!child.log.includes(KEY), 'no key in the log');
  });

  it('keeps keys when the editor dialog is saved without touching them, replaces, adds and clears them (Chromium)', async function () {
    requireTool(this, 'chromium', 'chromium');
    await start();
    const adminToken = await token('admin', '*');
    const { chromium } = require('playwright-core');
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors = [];
      page.on('pageerror', (error) => errors.push(error.message));
      // Node-RED reports an exception in oneditsave as a console warning, then goes on as if nothing had changed.
      page.on('console', (message) => /oneditsave|oneditprepare/.test(message.text()) && errors.push(message.text()));
      await page.goto(`${base}/?access_token=${adminToken}`);
      await page.waitForFunction(() => window.RED && RED.nodes && RED.nodes.node('srv1'), null, { timeout: 30000 });
      const openServer = async () => {
        await page.evaluate(() => RED.editor.editConfig('', 'lwm2m-server', 'srv1'));
        await page.locator('#node-config-security .sec-endpoint').first().waitFor();
      };
      // The row of an endpoint (jQuery sets the inputs' values, not their attributes).
      const row = async (endpoint) => {
        const index = await page.$$eval('#node-config-security li', (items, name) => items.findIndex((li) => li.querySelector('.sec-endpoint').value === name), endpoint);
        assert.ok(index >= 0, `a row for ${endpoint}`);
        return page.locator('#node-config-security li').nth(index);
      };
      const done = async () => {
        await page.locator('#node-config-dialog-ok').click();
        // The tray slides away: the next dialog's rows are not this one's.
        await page.locator('#node-config-security').waitFor({ state: 'detached' });
      };
      const started = () => (child.log.match(/Started (flows|modified nodes|modified flows)/g) ?? []).length;
      const deploy = async () => {
        const before = started();
        await page.locator('#red-ui-header-button-deploy').click();
        await page.waitForFunction(() => !RED.nodes.dirty(), null, { timeout: 20000 });
        // The server node restarts with the deployed flow.
        await until(() => started() > before, 10000, 'the deploy');
      };

      // 1. The dialog shows that a key is set, never the key, and saving it untouched keeps it.
      await openServer();
      const key = (await row('psk-dev-1')).locator('input.sec-key');
      assert.equal(await key.inputValue(), '');
      assert.equal(await key.getAttribute('placeholder'), 'set (type to replace)');
      assert.equal(await key.getAttribute('type'), 'password');
      const html = await page.content();
      for (const secret of ALL_KEYS) assert.equal(html.includes(secret), false, 'no key in the page');
      await page.locator('#node-config-input-name').fill('keys server, renamed');
      await done();
      await deploy();
      await registers('psk-dev-1', 'psk-dev-1-id', KEY);
      assert.equal(JSON.parse(storedCredentials().srv1.pskKeys)['psk-dev-1'], KEY);

      // 2. Replace one key, add a row with its own key.
      await openServer();
      await (await row('psk-dev-1')).locator('input.sec-key').fill(NEW_KEY);
      await page.locator('#node-config-security').locator('xpath=ancestor::div[contains(@class,"red-ui-editableList")]').locator('.red-ui-editableList-addButton').click();
      const added = page.locator('#node-config-security li').last();
      await added.locator('.sec-endpoint').fill('psk-dev-2');
      await added.locator('.sec-identity').fill('psk-dev-2-id');
      await added.locator('input.sec-key').fill(SECOND_KEY);
      await done();
      await deploy();
      await registers('psk-dev-1', 'psk-dev-1-id', NEW_KEY);
      await registers('psk-dev-2', 'psk-dev-2-id', SECOND_KEY);
      await assert.rejects(registers('psk-dev-1', 'psk-dev-1-id', KEY), /DecryptError/, 'the replaced key is gone');
      assert.equal(await page.evaluate(() => JSON.stringify(RED.nodes.node('srv1').credentials || {}).includes('c0ffee')), false, 'the editor keeps no key after the deploy');

      // 3. Reopened: both keys show as set; clear the second one.
      await openServer();
      assert.equal(await (await row('psk-dev-2')).locator('input.sec-key').getAttribute('placeholder'), 'set (type to replace)');
      assert.equal(await (await row('psk-dev-2')).locator('input.sec-key').inputValue(), '');
      await (await row('psk-dev-2')).locator('.lwm2m-secret-clear').click();
      await done();
      await deploy();
      await registers('psk-dev-1', 'psk-dev-1-id', NEW_KEY);
      await assert.rejects(registers('psk-dev-2', 'psk-dev-2-id', SECOND_KEY), /DecryptError/, 'the cleared key is gone');

      // 4. The bootstrap server's dialog: both keys of its row set, saved untouched, still there.
      await page.evaluate(() => RED.editor.editConfig('', 'lwm2m-bootstrap-server', 'bs1'));
      const bsRow = page.locator('#node-config-bootstrap-endpoints li').first();
      await bsRow.locator('input.bs-key').waitFor();
      for (const field of ['input.bs-key', 'input.bs-bootstrap-key']) {
        assert.equal(await bsRow.locator(field).inputValue(), '');
        assert.equal(await bsRow.locator(field).getAttribute('placeholder'), 'set (type to replace)');
      }
      assert.equal(await page.locator('#node-config-bootstrap-default input.bs-key').getAttribute('placeholder'), 'PSK key (hex)', 'no default key was ever set');
      for (const secret of ALL_KEYS) assert.equal((await page.content()).includes(secret), false, 'no key in the page');
      await page.locator('#node-config-input-name').fill('bootstrap, renamed');
      await page.locator('#node-config-dialog-ok').click();
      await page.locator('#node-config-bootstrap-endpoints').waitFor({ state: 'detached' });
      await deploy();
      const objects = buildObjectTree({ 1: { 0: { 0: 1, 1: 60 } }, 3: { 0: { 0: 'Acme' } } });
      const fresh = await pskDevice('meter-9', 'bs-meter-9', BOOTSTRAP_KEY, { server: { address: '127.0.0.1', port: ports.bsDtls }, bootstrapServer: { address: '127.0.0.1', port: ports.bsDtls }, objects });
      await fresh.bootstrap();
      assert.equal(fresh.getResource('/0/0/5').toString('hex'), ENDPOINT_KEY);

      // What the admin API and the flow file hold now.
      const headers = { authorization: `Bearer ${await token('viewer', 'read')}` };
      const text = await fetch(`${base}/credentials/lwm2m-server/srv1`, { headers }).then((r) => r.text());
      for (const secret of ALL_KEYS) assert.equal(text.includes(secret), false);
      const flows = fs.readFileSync(path.join(userDir, 'flows.json'), 'utf8');
      for (const secret of ALL_KEYS) assert.equal(flows.includes(secret), false, 'no key in flows.json');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
