'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { spawn } = require('node:child_process');
const { requireTool } = require('./support/tools');
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
    example.filter((n) => n.type === 'lwm2m-server').forEach((n) => Object.assign(n, { port: String(lwm2mPort), dtlsPort: '' }));
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

describe('npm start: stopping and the README steps', function () {
  this.timeout(180000);
  let userDir;
  let browser;
  let child;
  /** Processes a test started, ended here whatever happened to it. */
  const started = new Set();

  afterEach(async () => {
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    started.clear();
    if (browser) await browser.close();
    await stopNodeRed(child);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    browser = child = userDir = undefined;
  });

  it('stops Node-RED when npm receives SIGTERM, as from a service manager, and leaves no orphan', async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-start-'));
    const [httpPort, lwm2mPort] = [await freeTcpPort(), await freePort()];
    const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'log-registrations.json'), 'utf8'));
    example.filter((n) => n.type === 'lwm2m-server').forEach((n) => Object.assign(n, { port: String(lwm2mPort), dtlsPort: '' }));
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify([{ id: example.find((n) => n.z).z, type: 'tab', label: 'LwM2M' }, ...example]));
    const npm = spawn('npm', ['start'], { cwd: root, env: { ...process.env, NODE_RED_USER_DIR: userDir, PORT: String(httpPort) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    await new Promise((resolve, reject) => {
      npm.stdout.on('data', (chunk) => {
        log += chunk;
        if (log.includes('Started flows')) resolve();
      });
      npm.stderr.on('data', (chunk) => (log += chunk));
      npm.once('exit', (code) => reject(new Error(`npm start exited ${code}\n${log}`)));
    });
    const nodeRedPids = require('node:child_process')
      .execFileSync('ps', ['-eo', 'pid,ppid,args'], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter(([pid]) => pid && /^\d+$/.test(pid))
      .map(([pid, ppid]) => [Number(pid), Number(ppid)]);
    // The processes under npm: the shell, scripts/start.js and Node-RED.
    const descendants = new Set([npm.pid]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [pid, ppid] of nodeRedPids) if (descendants.has(ppid) && !descendants.has(pid)) grew = descendants.add(pid) && true;
    }
    assert.ok(descendants.size >= 3, `npm, start.js and Node-RED: ${[...descendants]}`);
    for (const pid of descendants) started.add(pid);
    npm.kill('SIGTERM');
    const alive = (pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 15000;
    while ([...descendants].some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual([...descendants].filter(alive), [], 'no process left behind');
    await assert.rejects(fetch(`http://127.0.0.1:${httpPort}/`), 'the editor port is released');
    // Node-RED stopped as on Ctrl-C: its nodes closed (and saved their state).
    assert.match(log, /Stopped flows/);
  });

  it('follows the README: DTLS "Try it" on the npm start flow, device security added in the editor', async function () {
    requireTool(this, 'chromium', 'chromium');
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const steps = /Try it with the simulated device[^(]*\(add `([^`]+)` with identity `([^`]+)`\s+and key `([^`]+)` to the server node's \*Device security\*[^)]*\):\s+```sh\n(npm run device -- [^\n]+)\n```/.exec(readme);
    assert.ok(steps, 'the README shows the DTLS steps');
    const [, endpoint, identity, key, command] = steps;
    assert.match(command, /coaps:\/\/127\.0\.0\.1:5684/);

    // The flow npm start seeds, on ports of this test instead of 5683 and 5684.
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-readme-'));
    const [httpPort, udpPort, dtlsPort] = [await freeTcpPort(), await freePort(), await freePort()];
    const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'log-registrations.json'), 'utf8'));
    const server = example.find((n) => n.type === 'lwm2m-server');
    assert.equal(server.dtlsPort, '5684', 'the npm start flow listens for DTLS on 5684');
    Object.assign(server, { port: String(udpPort), dtlsPort: String(dtlsPort) });
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify([{ id: example.find((n) => n.z).z, type: 'tab', label: 'LwM2M' }, ...example]));
    child = await startNodeRed(userDir, httpPort);

    // In the editor: the server node's Device security gets the device, then Deploy.
    const { launchBrowser, openEditor, dismissTour } = require('./support/browser');
    browser = await launchBrowser();
    const page = await openEditor(browser, `http://127.0.0.1:${httpPort}`);
    await dismissTour(page);
    await page.evaluate((id) => RED.editor.editConfig('', 'lwm2m-server', id), server.id);
    await page.locator('.red-ui-editableList:has(#node-config-security) .red-ui-editableList-addButton').click();
    const row = page.locator('#node-config-security .sec-endpoint').last().locator('xpath=..');
    await row.locator('.sec-endpoint').fill(endpoint);
    await row.locator('.sec-identity').fill(identity);
    await row.locator('.sec-key').fill(key);
    await page.locator('#node-config-dialog-ok').click();
    await page.waitForFunction(() => $('.red-ui-tray').length === 0);
    await page.locator('#red-ui-header-button-deploy').click();
    await page.waitForFunction(() => !RED.nodes.dirty(), null, { timeout: 15000 });

    // The README's command, on this test's DTLS port.
    const args = command.replace('npm run device -- ', '').replace('5684', String(dtlsPort)).split(' ');
    // In a process group of its own, so Ctrl-C can be sent to it as a terminal sends it.
    const device = spawn('npm', ['run', 'device', '--', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    device.stdout.on('data', (chunk) => (output += chunk));
    device.stderr.on('data', (chunk) => (output += chunk));
    try {
      const deadline = Date.now() + 30000;
      let found;
      let last;
      while (!found && Date.now() < deadline) {
        // Right after a deploy the server node may still be starting (Node-RED 5 answers the deploy first): the API says so until it runs.
        const response = await fetch(`http://127.0.0.1:${httpPort}/lwm2m-red/servers/${server.id}/devices?search=${endpoint}`);
        last = `${response.status} ${await response.clone().text()}`;
        found = response.ok ? (await response.json()).items.find((item) => item.endpoint === endpoint) : undefined;
        if (!found) await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.ok(found, `${endpoint} registered over DTLS; last answer ${last}; device output:\n${output}`);
      assert.deepEqual([found.transport, found.security], ['dtls', 'PSK']);
    } finally {
      process.kill(-device.pid, 'SIGINT');
      await new Promise((resolve) => device.once('exit', resolve));
    }
  });
});
