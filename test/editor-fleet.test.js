'use strict';
// The devices panel at fleet scale: 100,000 registered devices in a Node-RED process, the panel
// in Chromium. Every answer the editor gets stays small and quick, whatever the fleet.
const assert = require('node:assert/strict');
const os = require('node:os');
const { freePort } = require('./support/udp');
const { requireTool } = require('./support/tools');
const { registerFleet } = require('./support/lean-fleet');
const { startEditor, stopEditor, launchBrowser, openEditor, showPanel, screenshotPath } = require('./support/browser');

const FLEET = 100000;
const PAGE_BYTES = 50 * 1024;
const PAGE_MS = 50;
const COMPLETION_MS = 20;

const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * The size of a GET and its time over a few runs after a warm-up: the median
 * as the client sees it, and the CPU time the Node-RED process spent on it
 * (its Server-Timing header), which other work on a shared machine inflates
 * far less.
 */
async function measure(url, runs = 25) {
  const wall = [];
  const cpu = [];
  let bytes = 0;
  for (let i = 0; i <= runs; i++) {
    const started = process.hrtime.bigint();
    const response = await fetch(url);
    const body = await response.arrayBuffer();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(response.status, 200, url);
    bytes = body.byteLength;
    if (i === 0) continue;
    wall.push(elapsed);
    cpu.push(Number(/cpu;dur=([\d.]+)/.exec(response.headers.get('server-timing') ?? '')?.[1] ?? NaN));
  }
  // The least CPU time a run took is what the request costs: process.cpuUsage counts every thread, so the collector's
  // background work after 100,000 registrations, and contention on a shared machine, only add to it.
  return { ms: median(wall), cpuMs: Math.min(...cpu), bytes };
}

describe('editor: the devices panel with 100,000 devices', function () {
  this.timeout(300000);
  let editor;
  let browser;

  before(async function () {
    requireTool(this, 'chromium', 'chromium');
    const port = await freePort();
    editor = await startEditor([
      { id: 'tab1', type: 'tab', label: 'LwM2M' },
      { id: 'srv1', type: 'lwm2m-server', name: 'fleet', bindAddress: '127.0.0.1', port: String(port), persist: false },
    ]);
    const started = Date.now();
    await registerFleet({ port, count: FLEET, sockets: 32, window: 2048 });
    console.log(`      ${FLEET} devices registered in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    if (browser) await browser.close();
    await stopEditor(editor);
  });

  it('answers pages under 50 KB and 50 ms of CPU and completions under 20 ms of CPU', async () => {
    const api = `${editor.base}/lwm2m-red/servers/srv1`;
    const first = await (await fetch(`${api}/devices`)).json();
    assert.equal(first.total, FLEET);
    assert.equal(first.items.length, 50);
    const middle = `device-${String(FLEET / 2).padStart(6, '0')}`;
    const figures = {
      'first page': await measure(`${api}/devices`),
      'page deep in the fleet': await measure(`${api}/devices?after=${middle}`),
      'last page, newest first by last message': await measure(`${api}/devices?sort=lastSeen&order=desc`),
      'search by prefix': await measure(`${api}/devices?search=device-0999`),
      'search by substring': await measure(`${api}/devices?search=99&match=substring`),
      'endpoint completion': await measure(`${api}/complete/endpoints?q=device-04`),
      'endpoint completion, substring fallback': await measure(`${api}/complete/endpoints?q=7777`),
      'path completion': await measure(`${api}/complete/paths?endpoint=${middle}&q=battery`),
      'device details': await measure(`${api}/devices/${middle}`),
    };
    // The CPU time Node-RED reports is held to the targets (three times them on an oversubscribed machine, whose
    // shared cores and busy caches inflate it too), which catches any work that grows with the fleet. The client's
    // time is printed, not held: it is the scheduling of two processes on a shared machine as much as the answer
    // (a CI run at load 1.4 saw a completion's median go from 17 to 26 ms at the same 13 ms of CPU).
    const load = os.loadavg()[0];
    const quiet = load < os.cpus().length * 1.5;
    const slack = quiet ? 1 : 3;
    console.log(`      load average ${load.toFixed(1)} on ${os.cpus().length} cores: ${quiet ? 'CPU time held to the targets' : 'CPU time held to 3x the targets (machine oversubscribed)'}`);
    for (const [name, { ms, cpuMs, bytes }] of Object.entries(figures)) console.log(`      ${name}: ${bytes} bytes, ${ms.toFixed(1)} ms at the client (median), ${cpuMs.toFixed(1)} ms CPU in Node-RED (least of 25)`);
    for (const [name, { cpuMs, bytes }] of Object.entries(figures)) {
      assert.ok(bytes < PAGE_BYTES, `${name}: ${bytes} bytes`);
      const limit = name.includes('completion') ? COMPLETION_MS : PAGE_MS;
      if (!name.includes('details')) assert.ok(cpuMs < limit * slack, `${name}: ${cpuMs} ms CPU (limit ${limit * slack} ms)`);
    }
  });

  it('shows the fleet in the panel, where no answer grows with it', async () => {
    browser = await launchBrowser();
    const page = await openEditor(browser, editor.base);
    const answers = [];
    page.on('response', async (response) => {
      if (!response.url().includes('/lwm2m-red/')) return;
      answers.push({ url: response.url(), bytes: (await response.body()).length });
    });
    await showPanel(page);
    await page.waitForFunction(() => /^1-50 of 100000 devices$/.test($('.lwm2m-page-text').text()), null, { timeout: 20000 });
    await page.locator('.lwm2m-do-next').click();
    await page.waitForFunction(() => /^51-100 of 100000 devices$/.test($('.lwm2m-page-text').text()), null, { timeout: 10000 });
    await page.locator('.lwm2m-search').fill('device-0424');
    await page.waitForFunction(() => /^1-50 of 100 devices$/.test($('.lwm2m-page-text').text()), null, { timeout: 10000 });
    await page.locator('.lwm2m-device[data-endpoint="device-042417"]').click();
    await page.locator('.lwm2m-console .lwm2m-details').waitFor({ timeout: 10000 });
    await page.screenshot({ path: screenshotPath('lwm2m-fleet.png') });
    assert.ok(answers.length >= 4);
    const largest = answers.reduce((a, b) => (a.bytes > b.bytes ? a : b));
    assert.ok(largest.bytes < PAGE_BYTES, `${largest.url}: ${largest.bytes} bytes`);
    assert.deepEqual(page.errors, []);
  });
});
