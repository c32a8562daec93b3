'use strict';
// Firmware Update (/5) and Software Management (/9) campaigns of the protocol core against simulated devices:
// push and pull, every Update Result, cancel, stuck devices, devices that refuse Observe, sleeping devices.
const assert = require('node:assert/strict');
const { FirmwareBench, firmwarePackage, softwarePackage, settings, recorder } = require('./support/firmware');
const { CampaignError } = require('../dist/lib/firmware/firmware-service');
const { Method } = require('../dist/lib/coap/codes');
const { until } = require('./support/wait');

describe('firmware update (/5) campaigns', function () {
  this.timeout(20_000);
  const bench = new FirmwareBench();

  beforeEach(() => bench.startServer());
  afterEach(() => bench.stop());

  const writesOf = (device, path) => device.received.filter((request) => request.path === path && request.method === Method.PUT);

  it('pushes a package to /5/0/0 in Block1 blocks with progress, executes Update once Downloaded, and checks the new version after the device registers again', async () => {
    const device = await bench.device('push-1', { fw: { deliveryMethod: 1 } });
    const pkg = firmwarePackage('2.0.0');
    const registered = [];
    bench.server.on('registered', (registration, replaced) => registered.push(Boolean(replaced)));
    const { results, progress, summary } = await bench.run({ package: pkg, settings: { version: '2.0.0' } });
    assert.deepEqual(
      results.map((r) => [r.endpoint, r.status, r.delivery, r.previousVersion, r.version, r.updateResult]),
      [['push-1', 'success', 'push', '1.0.0', '2.0.0', 1]],
    );
    assert.equal(device.getResource('/3/0/3'), '2.0.0');
    // Every block in the size asked for (512 bytes): the device reassembled exactly the package.
    const blocks = device.received.filter((request) => request.path === '/5/0/0');
    assert.equal(blocks.length, 1, 'the device handler sees the whole body once');
    const phases = progress.map((event) => event.phase);
    for (const phase of ['checking', 'downloading', 'downloaded', 'updating']) assert.ok(phases.includes(phase), `${phase} in ${phases}`);
    const bytes = progress.filter((event) => event.bytes !== undefined);
    assert.ok(bytes.length >= 2, 'progress while the blocks go');
    assert.deepEqual(bytes.at(-1), { ...bytes.at(-1), bytes: pkg.length, totalBytes: pkg.length, percent: 100 });
    assert.ok(bytes.every((event, i) => i === 0 || event.bytes >= bytes[i - 1].bytes), 'bytes only grow');
    assert.deepEqual([summary.total, summary.success, summary.failed], [1, 1, 0]);
    await until(() => registered.includes(true), 3000, 'the device registering again after its reboot');
  });

  it('has the device pull over CoAP from the server\'s own file service, in Block2 blocks of the size the device asks for', async () => {
    const device = await bench.device('pull-1', { fw: { deliveryMethod: 0, pullSzx: 2 } });
    const pkg = firmwarePackage('3.1.0', 5000);
    const { results, progress } = await bench.run({ package: pkg, settings: { version: '3.1.0' } });
    assert.deepEqual(results.map((r) => [r.status, r.delivery, r.scheme, r.version]), [['success', 'pull', 'coap', '3.1.0']]);
    const [uri] = device.firmware.uris;
    assert.match(uri, new RegExp(`^coap://127\\.0\\.0\\.1:${bench.port}/fw/[A-Za-z0-9_-]{22}$`));
    assert.equal(writesOf(device, '/5/0/1')[0].payload.toString(), uri);
    // 64-byte blocks (SZX 2): 79 of them, each counted as progress from the file service.
    assert.ok(progress.filter((event) => event.bytes !== undefined).length >= 2);
    assert.equal(progress.filter((event) => event.bytes !== undefined).at(-1).percent, 100);
    assert.equal(bench.firmware.files.size, 0, 'the grant is gone once the device has the package');
  });

  it('lets only the device the URI was made for fetch it: another address gets 4.03, an unknown token 4.04, a write 4.05', async () => {
    const device = await bench.device('owner', { fw: { deliveryMethod: 0, stepMs: 20 } });
    const other = await bench.device('other', { address: '127.0.0.2' });
    const record = recorder();
    await bench.firmware.start({ concurrency: 1, package: firmwarePackage('9.9.9', 3000), settings: settings({ downloadTimeoutMs: 3000 }) }, 'n', record.listener);
    await until(() => device.firmware.uris.length === 1, 3000, 'the URI');
    const uri = device.firmware.uris[0];
    await assert.rejects(other.download(uri), /4\.03/);
    await assert.rejects(other.download(uri.replace(/fw\/.*/, 'fw/AAAAAAAAAAAAAAAAAAAAAA')), /4\.04/);
    const put = await other.send(Method.PUT, new URL(uri).pathname, { payload: Buffer.from('x') });
    assert.equal(put.code, (4 << 5) | 5);
    await record.ended;
    assert.equal(record.results[0].status, 'success');
    await assert.rejects(device.download(uri), /4\.04/, 'the grant ends with the update');
  });

  it('prefers push where the device takes both, pulls where asked, and refuses what the device cannot do before sending anything', async () => {
    await bench.device('both', { fw: {} });
    await bench.device('push-only', { fw: { deliveryMethod: 1 } });
    await bench.device('coap-less', { fw: { deliveryMethod: 0, protocols: [3] } });
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 3000), settings: { delivery: 'pull' } });
    const by = Object.fromEntries(results.map((r) => [r.endpoint, r]));
    assert.deepEqual([by.both.status, by.both.delivery], ['success', 'pull']);
    assert.deepEqual([by['push-only'].status, by['push-only'].code], ['failed', 'unsupported-delivery']);
    assert.match(by['push-only'].reason, /only by push/);
    // It fetches over HTTPS only, and this server has no HTTPS base URL.
    assert.deepEqual([by['coap-less'].status, by['coap-less'].code], ['failed', 'unsupported-protocol']);
    assert.match(by['coap-less'].reason, /https/);
    const auto = await bench.run({ package: firmwarePackage('3.0.0', 3000), endpoints: ['both'] });
    assert.equal(auto.results[0].delivery, 'push');
  });

  it('gives a device a URI of elsewhere (msg.url) only over a protocol it lists in /5/0/8', async () => {
    const device = await bench.device('ext', { fw: { deliveryMethod: 2, protocols: [0, 1] } });
    const refused = await bench.run({ url: 'https://example.org/fw.bin' });
    assert.deepEqual([refused.results[0].status, refused.results[0].code], ['failed', 'unsupported-protocol']);
    assert.equal(writesOf(device, '/5/0/1').length, 0, 'no URI written');
    await assert.rejects(bench.run({ url: 'ftp://example.org/fw.bin' }), CampaignError);
    await assert.rejects(bench.run({ url: 'http://user:secret@example.org/fw.bin' }), /user name or password/);
    await assert.rejects(bench.run({ url: `coap://example.org/${'x'.repeat(250)}` }), /255 characters/);
  });

  const downloadFailures = [
    [2, 'push', 'not-enough-flash'],
    [3, 'push', 'out-of-ram'],
    [4, 'pull', 'connection-lost'],
    [5, 'push', 'integrity-check-failure'],
    [6, 'pull', 'unsupported-package-type'],
    [7, 'pull', 'invalid-uri'],
    [9, 'pull', 'unsupported-protocol'],
  ];
  for (const [result, delivery, code] of downloadFailures) {
    it(`reports Update Result ${result} during a ${delivery} as ${code}, and leaves the device Idle`, async () => {
      const device = await bench.device(`fail-${result}`, { fw: { failWith: result } });
      const { results } = await bench.run({ package: firmwarePackage('2.0.0', 3000), settings: { delivery } });
      assert.deepEqual([results[0].status, results[0].code, results[0].updateResult], ['failed', code, result]);
      assert.match(results[0].reason, new RegExp(`^[a-z][^:]+ \\(Update Result ${result}\\)$`));
      assert.equal(device.firmware.state, 0);
    });
  }

  it('reports Update Result 8 after Update as update-failed, and sets the device back to Idle', async () => {
    const device = await bench.device('fail-8', { fw: { failWith: 8 } });
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 3000) });
    assert.deepEqual([results[0].status, results[0].code, results[0].updateResult, results[0].state], ['failed', 'update-failed', 8, 2]);
    await until(() => device.firmware.state === 0, 2000, 'the reset to Idle');
    assert.equal(device.getResource('/3/0/3'), '1.0.0');
  });

  it('retries failures that may pass, from the start, and counts the attempts', async () => {
    const device = await bench.device('flaky', { fw: { failWith: 4 } });
    const record = recorder();
    await bench.firmware.start({ concurrency: 1, package: firmwarePackage('2.0.0', 3000), settings: settings({ retries: 2, delivery: 'pull', retryDelayMs: 300 }) }, 'owner', record.listener);
    // The connection comes back after the first failure.
    await until(() => record.progress.some((event) => event.phase === 'retrying'), 3000, 'the first failure');
    device.firmware.options.failWith = undefined;
    const { results, progress } = await record.ended.then(() => record);
    assert.deepEqual([results[0].status, results[0].attempts], ['success', 2]);
    assert.ok(progress.some((event) => event.phase === 'retrying' && /connection lost/.test(event.detail)));
  });

  it('does not retry what cannot pass (not enough flash)', async () => {
    await bench.device('full', { fw: { failWith: 2 } });
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 3000), settings: { retries: 3, delivery: 'push' } });
    assert.deepEqual([results[0].code, results[0].attempts], ['not-enough-flash', 1]);
  });

  it('resets a device stuck downloading when the download phase times out (empty /5/0/1)', async () => {
    const device = await bench.device('stuck', { fw: { stepMs: 60_000 } });
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 3000), settings: { downloadTimeoutMs: 800 } });
    assert.deepEqual([results[0].status, results[0].code, results[0].state], ['failed', 'timeout', 1]);
    assert.match(results[0].reason, /did not reach Downloaded within 0.8 s \(State 1 Downloading\)/);
    const resets = writesOf(device, '/5/0/1').filter((request) => request.payload.length === 0);
    assert.equal(resets.length, 1, 'an empty Package URI');
    assert.equal(device.firmware.state, 0);
  });

  it('resets a push-only device with a Package of one zero byte', async () => {
    const device = await bench.device('stuck-push', { fw: { deliveryMethod: 1, stepMs: 60_000 } });
    await bench.run({ package: firmwarePackage('2.0.0', 3000), settings: { downloadTimeoutMs: 800 } });
    const last = writesOf(device, '/5/0/0').at(-1);
    assert.deepEqual([...last.payload], [0]);
    assert.equal(device.firmware.state, 0);
  });

  it('sets a device left Downloaded by an earlier update back to Idle before delivering', async () => {
    const device = await bench.device('left', { fw: {} });
    device.objects.get(5).get(0).set(3, 2);
    const { results, progress } = await bench.run({ package: firmwarePackage('2.0.0', 3000) });
    assert.equal(results[0].status, 'success');
    assert.ok(progress.some((event) => event.phase === 'resetting'));
  });

  it('cancels a device during its download (msg.cancel): the device is reset and the result says cancelled', async () => {
    const device = await bench.device('slow', { fw: { stepMs: 60_000 } });
    const record = recorder();
    await bench.firmware.start({ concurrency: 1, package: firmwarePackage('2.0.0', 3000), settings: settings() }, 'owner', record.listener);
    await until(() => device.firmware.state === 1, 3000, 'the download');
    assert.deepEqual(bench.firmware.cancel('owner', { endpoints: ['slow'] }), { cancelled: 1, refusals: [] });
    await record.ended;
    assert.deepEqual([record.results[0].status, record.summary.cancelled], ['cancelled', 1]);
    assert.equal(device.firmware.state, 0);
  });

  it('does not cancel a device that is installing, and says why', async () => {
    await bench.device('installing', { fw: { stepMs: 500 } });
    const record = recorder();
    await bench.firmware.start({ concurrency: 1, package: firmwarePackage('2.0.0', 1000), settings: settings() }, 'owner', record.listener);
    await until(() => record.progress.some((event) => event.phase === 'updating'), 5000, 'Updating');
    const { cancelled, refusals } = bench.firmware.cancel('owner');
    assert.equal(cancelled, 0);
    assert.match(refusals[0], /installing the update, which cannot be cancelled/);
    await record.ended;
    assert.equal(record.results[0].status, 'success');
  });

  it('polls State and Update Result of a device that refuses to be observed', async () => {
    const device = await bench.device('no-observe', { fw: {}, unobservable: ['/5'] });
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 3000), settings: { pollIntervalMs: 100 } });
    assert.equal(results[0].status, 'success');
    assert.ok(device.received.filter((request) => request.path === '/5/0/3').length >= 3, 'State read again and again');
    assert.equal(device.observations.length, 0);
  });

  it('reads again State and Update Result of a device that accepted the observation but never notifies, after six poll intervals without news', async () => {
    const device = await bench.device('mute', { fw: {} });
    device.notifyPaths = async () => undefined;
    const started = Date.now();
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 2000), settings: { pollIntervalMs: 100, downloadTimeoutMs: 15_000, updateTimeoutMs: 15_000 } });
    assert.equal(results[0].status, 'success');
    assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms, not the phase timeouts`);
  });

  it('waits out a deferred update (Update Result 11) and reports it', async () => {
    await bench.device('deferring', { fw: { deferMs: 300 } });
    const { results, progress } = await bench.run({ package: firmwarePackage('2.0.0', 2000) });
    assert.equal(results[0].status, 'success');
    assert.ok(progress.some((event) => event.phase === 'deferred' && event.updateResult === 11));
  });

  it('skips devices that run the version already, and devices of another model', async () => {
    const current = await bench.device('current', { fw: {} });
    current.objects.get(3).get(0).set(3, '2.0.0');
    const lamp = await bench.device('lamp', { fw: {} });
    lamp.objects.get(3).get(0).set(1, 'lamp-x');
    const meter = await bench.device('meter', { fw: {} });
    meter.objects.get(3).get(0).set(1, 'meter-m');
    const { results, summary } = await bench.run({ package: firmwarePackage('2.0.0', 2000), settings: { version: '2.0.0', model: 'lamp-x' } });
    const by = Object.fromEntries(results.map((r) => [r.endpoint, [r.status, r.code]]));
    assert.deepEqual(by, { current: ['skipped', 'other-model'], lamp: ['success', undefined], meter: ['skipped', 'other-model'] });
    assert.deepEqual([summary.success, summary.skipped], [1, 2]);
    const again = await bench.run({ package: firmwarePackage('2.0.0', 2000), endpoints: ['lamp'], settings: { version: '2.0.0' } });
    assert.deepEqual([again.results[0].status, again.results[0].code], ['skipped', 'current']);
  });

  it('fails a device that reports another version after the update (version-mismatch)', async () => {
    await bench.device('wrong', { fw: {} });
    const { results } = await bench.run({ package: firmwarePackage('2.0.1', 2000), settings: { version: '2.0.0', updateTimeoutMs: 1000, pollIntervalMs: 100 } });
    assert.deepEqual([results[0].status, results[0].code], ['failed', 'version-mismatch']);
    assert.match(results[0].reason, /reports firmware 2\.0\.1 after the update, not 2\.0\.0/);
  });

  it('fails at once devices that are not registered, have no /5, or are in another campaign', async () => {
    await bench.device('no-fw');
    await bench.device('shared', { fw: { stepMs: 300 } });
    const first = recorder();
    await bench.firmware.start({ concurrency: 1, package: firmwarePackage('2.0.0', 1000), endpoints: ['shared'], settings: settings() }, 'a', first.listener);
    const { results } = await bench.run({ package: firmwarePackage('2.0.0', 1000), endpoints: ['ghost', 'no-fw', 'shared'] });
    const by = Object.fromEntries(results.map((r) => [r.endpoint, r.code]));
    assert.deepEqual(by, { ghost: 'not-registered', 'no-fw': 'no-firmware-object', shared: 'busy' });
    await first.ended;
  });

  it('refuses requests that cannot be a campaign, with the reason', async () => {
    const run = (request) => bench.firmware.start({ concurrency: 1, settings: settings(), ...request }, 'x', recorder().listener);
    await assert.rejects(run({}), /msg\.payload \(a Buffer\) or its URI as msg\.url/);
    await assert.rejects(run({ package: Buffer.alloc(0) }), /non-empty Buffer/);
    await assert.rejects(run({ package: Buffer.from('x'), url: 'coap://a/b' }), /one of the two/);
    await assert.rejects(run({ package: Buffer.from('x'), concurrency: 0 }), /concurrency/);
    await assert.rejects(run({ package: Buffer.from('x'), endpoints: ['a', 'a'] }), /twice/);
    await assert.rejects(run({ package: Buffer.from('x'), settings: settings({ action: 'install' }) }), /object 5 has no action "install"/);
  });
});

describe('software management (/9) campaigns', function () {
  this.timeout(20_000);
  const bench = new FirmwareBench();

  beforeEach(() => bench.startServer());
  afterEach(() => bench.stop());

  const software = (overrides) => ({ object: 9, action: 'install', ...overrides });

  it('installs by push: DOWNLOAD STARTED, DOWNLOADED, DELIVERED, Install, INSTALLED, the version checked, then activates', async () => {
    const device = await bench.device('sw-push', { sw: {} });
    const { results, progress } = await bench.run({ package: softwarePackage('app', '1.4.2'), settings: software({ version: '1.4.2', activate: true }) });
    assert.deepEqual(results.map((r) => [r.status, r.delivery, r.instanceId, r.version, r.updateResult, r.state]), [['success', 'push', 0, '1.4.2', 2, 4]]);
    assert.equal(device.getResource('/9/0/0'), 'app');
    assert.equal(device.getResource('/9/0/12'), true);
    assert.ok(progress.some((event) => event.phase === 'activating'));
  });

  it('installs by pull from the file service, in a new instance when none is INITIAL', async () => {
    const device = await bench.device('sw-pull', { sw: {} });
    device.objects.get(9).get(0).set(7, 4);
    const { results } = await bench.run({ package: softwarePackage('db', '2.0'), settings: software({ delivery: 'pull' }) });
    assert.deepEqual(results.map((r) => [r.status, r.delivery, r.scheme, r.instanceId]), [['success', 'pull', 'coap', 1]]);
    assert.equal(device.getResource('/9/1/1'), '2.0');
  });

  it('updates an installed package: Uninstall with argument 1 (ForUpdate) first, then install', async () => {
    const device = await bench.device('sw-update', { sw: {} });
    await bench.run({ package: softwarePackage('app', '1.0'), settings: software({ instanceId: 0 }) });
    const { results, progress } = await bench.run({ package: softwarePackage('app', '1.1'), settings: software({ instanceId: 0, version: '1.1' }) });
    assert.deepEqual([results[0].status, results[0].previousVersion, results[0].version], ['success', '1.0', '1.1']);
    assert.ok(progress.some((event) => event.phase === 'resetting'));
    const uninstall = device.received.filter((request) => request.path === '/9/0/6');
    assert.equal(uninstall.at(-1).payload.toString(), '1');
  });

  it('activates, deactivates and uninstalls an instance, following its Activation State and Update State', async () => {
    const device = await bench.device('sw-ops', { sw: {} });
    await bench.run({ package: softwarePackage('app', '1.0'), settings: software() });
    for (const action of ['activate', 'deactivate']) {
      const { results } = await bench.run({ settings: software({ action }) });
      assert.equal(results[0].status, 'success', action);
      assert.equal(device.getResource('/9/0/12'), action === 'activate');
    }
    const { results } = await bench.run({ settings: software({ action: 'uninstall' }) });
    assert.deepEqual([results[0].status, results[0].state], ['success', 0]);
    const refused = await bench.run({ settings: software({ action: 'activate' }) });
    assert.deepEqual([refused.results[0].status, refused.results[0].code], ['failed', 'not-installed']);
  });

  const failures = [
    [50, 'push', 'not-enough-storage'],
    [51, 'push', 'out-of-memory'],
    [52, 'push', 'connection-lost'],
    [53, 'push', 'integrity-check-failure'],
    [54, 'pull', 'unsupported-package-type'],
    [56, 'pull', 'invalid-uri'],
    [57, 'push', 'device-error'],
    [58, 'push', 'installation-failure'],
  ];
  for (const [result, delivery, code] of failures) {
    it(`reports Update Result ${result} as ${code}`, async () => {
      await bench.device(`sw-${result}`, { sw: { failWith: result } });
      const { results } = await bench.run({ package: softwarePackage('app', '1.0', 2000), settings: software({ delivery }) });
      assert.deepEqual([results[0].status, results[0].code, results[0].updateResult], ['failed', code, result]);
    });
  }

  it('reports Update Result 59 on Uninstall as uninstallation-failure', async () => {
    const device = await bench.device('sw-59', { sw: {} });
    await bench.run({ package: softwarePackage('app', '1.0', 2000), settings: software() });
    device.software.options.failWith = 59;
    const { results } = await bench.run({ settings: software({ action: 'uninstall' }) });
    assert.deepEqual([results[0].code, results[0].updateResult], ['uninstallation-failure', 59]);
  });
});
