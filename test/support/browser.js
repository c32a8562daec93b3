'use strict';
// The editor in a real browser: Debian's Chromium driven by playwright-core, against Node-RED
// started the way `npm start` starts it.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./node-red-process');

const root = path.resolve(__dirname, '..', '..');
/** Screenshots land here; the README shows the ones under docs/. */
const artifacts = path.join(root, 'test-artifacts');

/** Writes settings and a flow into a fresh user directory and starts Node-RED on it. */
async function startEditor(flow, { settings = '' } = {}) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-editor-'));
  const httpPort = await freeTcpPort();
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow));
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = { uiHost: '127.0.0.1', uiPort: ${httpPort}, flowFile: 'flows.json', logging: { console: { level: 'info' } }, telemetry: { enabled: false }, editorTheme: { tours: false }, ${settings} };\n`,
  );
  const child = await startNodeRed(userDir, httpPort);
  return { child, userDir, httpPort, base: `http://127.0.0.1:${httpPort}` };
}

async function stopEditor(editor) {
  if (!editor) return;
  await stopNodeRed(editor.child);
  fs.rmSync(editor.userDir, { recursive: true, force: true });
}

async function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Opens the editor and waits until the flows are loaded; page errors are collected in page.errors. */
async function openEditor(browser, base, viewport = { width: 1400, height: 900 }) {
  const page = await browser.newPage({ viewport });
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  await page.goto(`${base}/`);
  await waitForEditor(page);
  return page;
}

async function waitForEditor(page) {
  await page.waitForFunction(() => window.RED && RED.lwm2m && RED.nodes && RED.nodes.version && RED.nodes.version(), null, { timeout: 30000 });
  // The editor picks its own sidebar tab while the flows load.
  await page.waitForTimeout(500);
}

/** Closes the welcome tour a fresh user directory starts with, as a new user would. */
async function dismissTour(page) {
  const shade = page.locator('.red-ui-tourGuide-shade');
  try {
    await shade.waitFor({ timeout: 5000 });
  } catch {
    return;
  }
  await page.locator('.red-ui-popover button:has(.fa-times)').first().click();
  await shade.waitFor({ state: 'detached' });
}

/** Shows the LwM2M sidebar tab (asking again until the editor settles on it). */
async function showPanel(page) {
  await page.waitForFunction(() => {
    RED.sidebar.show('lwm2m-devices');
    return $('.lwm2m-panel').is(':visible');
  }, null, { timeout: 20000, polling: 300 });
}

/** Full deploy of a flow through the admin API, as the editor's Deploy does. */
async function deployFlow(base, flow) {
  const response = await fetch(`${base}/flows`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v2' },
    body: JSON.stringify({ flows: flow }),
  });
  if (!response.ok) throw new Error(`deploy failed: ${response.status} ${await response.text()}`);
}

async function deployedFlow(base) {
  const response = await fetch(`${base}/flows`, { headers: { 'node-red-api-version': 'v2' } });
  return (await response.json()).flows;
}

function screenshotPath(name) {
  fs.mkdirSync(artifacts, { recursive: true });
  return path.join(artifacts, name);
}

module.exports = { startEditor, stopEditor, launchBrowser, openEditor, waitForEditor, dismissTour, showPanel, deployFlow, deployedFlow, screenshotPath, freeTcpPort };
