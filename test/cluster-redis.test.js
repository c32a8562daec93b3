'use strict';
// Servers sharing a real redis-server (Debian's, started here on a free loopback port): the Redis store, devices taken
// over from instance to instance, requests routed to the instance serving a device, a crashed instance's devices
// served again without registering, and Redis going away and coming back empty.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { RedisLink } = require('../dist/lib/cluster/redis-link');
const { RedisStateStore } = require('../dist/lib/lwm2m/redis-store');
const { entryJson, parseEntry } = require('../dist/lib/lwm2m/state');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { SimulatedFirmware } = require('../dist/sim/firmware-update');
const { FirmwareService } = require('../dist/lib/firmware/firmware-service');
const { FilePackageStore } = require('../dist/lib/firmware/packages');
const { firmwarePackage, settings, recorder } = require('./support/firmware');
const { startRedis } = require('./support/redis');
const { until } = require('./support/wait');

const P = (text) => Lwm2mPath.parse(text);
const FAST = { ackTimeoutMs: 150, maxRetransmit: 2 };
const KEY = Buffer.from('lwm2m-psk-of-meter-7');

describe('servers sharing a Redis store', function () {
  this.timeout(30_000);
  let redis;
  let run = 0;
  const servers = [];
  const devices = [];
  const links = [];
  let packageFolder;

  before(async () => {
    redis = await startRedis();
    packageFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-cluster-packages-'));
  });

  after(async () => {
    await redis?.close();
    fs.rmSync(packageFolder, { recursive: true, force: true });
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    for (const server of servers.splice(0)) {
      if (!server.crashed) await server.stop().catch(() => undefined);
      server.cluster.store.link.close();
    }
    for (const link of links.splice(0)) link.close();
  });

  const linkTo = () => {
    const link = new RedisLink({ url: redis.url });
    links.push(link);
    return link;
  };

  /**
   * An instance of the same server node (same key prefix), named, with a plain and a DTLS port; with `firmware`, its
   * firmware service, whose package folder all instances share (as a shared volume would).
   */
  const instance = async (name, { firmware, ...options } = {}) => {
    const security = new SecurityRegistry();
    security.set('meter-7', { mode: 'psk', identity: 'meter-7-id', key: KEY });
    const store = new RedisStateStore(new RedisLink({ url: redis.url }), `test${run}:node:`);
    const server = new Lwm2mServer({
      address: '127.0.0.1',
      port: 0,
      secure: { port: 0 },
      security,
      transmission: FAST,
      stateStore: store,
      stateKey: 'the node state key',
      instance: name,
      client: { defaultTtlMs: 20_000 },
      awakeTimeMs: 400,
      ...options,
    });
    server.events = [];
    for (const event of ['registered', 'updated', 'deregistered', 'released']) server.on(event, (registration) => server.events.push(`${event} ${registration.endpoint}`));
    server.warnings = [];
    server.on('warning', (error) => server.warnings.push(error.message));
    server.handshakes = 0;
    server.coap.dtls.on('established', () => server.handshakes++);
    if (firmware) server.firmware = new FirmwareService(server, { packages: new FilePackageStore(packageFolder) });
    await server.start();
    await until(() => server.storeProblem === undefined, 5000, `${name} connected to Redis`);
    servers.push(server);
    return server;
  };

  const plainPort = (server) => ({ address: '127.0.0.1', port: server.coap.plain.address.port });
  const dtlsPort = (server) => ({ address: '127.0.0.1', port: server.coap.secure.address.port });

  const device = async (endpoint, server, options = {}) => {
    const d = new SimulatedDevice({ endpoint, server, transmission: FAST, lifetime: 300, ...options });
    await d.start();
    devices.push(d);
    return d;
  };

  /** What kill -9 leaves: sockets and the Redis connection gone, nothing saved, no close_notify, no campaign going on. */
  const crash = async (server) => {
    server.crashed = true;
    // The firmware service's jobs die with the process (they stop as at a stop, writing nothing: the link is closed).
    if (server.firmware) server.emit('stopping');
    server.cluster.store.link.close();
    server.coap.dtls?.keepSessions();
    await server.coap.stop();
  };

  beforeEach(() => {
    run++;
  });

  it('keeps entries under any collection name with their expiries, finds them by alias and by device, and removes them all with the node', async () => {
    const store = new RedisStateStore(linkTo(), `test${run}:store:`);
    await store.link.open();
    const soon = Date.now() + 300;
    store.put('registrations', 'ep-1', entryJson({ endpoint: 'ep-1', at: new Date(5), raw: Buffer.from([1, 2]) }, []), Date.now() + 60_000, { group: 'ep-1', aliases: ['rid:abc'] });
    store.put('observations', 'tok1', entryJson({ endpoint: 'ep-1' }, []), undefined, { group: 'ep-1' });
    store.put('parked', 'p1', entryJson({ endpoint: 'ep-1' }, []), soon, { group: 'ep-1' });
    store.put('firmware', 'campaign-1', entryJson({ state: 'running' }, []));
    await store.flush();
    assert.deepEqual(parseEntry(await store.get('registrations', 'ep-1')), { endpoint: 'ep-1', at: new Date(5), raw: Buffer.from([1, 2]) });
    assert.equal((await store.resolve('rid:abc')).id, 'ep-1');
    assert.equal(await store.resolve('rid:nothing'), undefined);
    assert.deepEqual((await store.group('ep-1')).map((entry) => `${entry.collection}/${entry.id}`).sort(), ['observations/tok1', 'parked/p1', 'registrations/ep-1']);
    const loaded = await store.load();
    assert.deepEqual(Object.keys(loaded).sort(), ['firmware', 'observations', 'parked', 'registrations']);
    assert.ok(Math.abs(loaded.parked.get('p1').expiresAt - soon) < 50, 'the expiry comes back');
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal(await store.get('parked', 'p1'), undefined, 'expired with its key');
    assert.deepEqual((await store.group('ep-1')).map((entry) => entry.id).sort(), ['ep-1', 'tok1']);
    store.delete('registrations', 'ep-1', { group: 'ep-1', aliases: ['rid:abc'] });
    await store.flush();
    assert.equal(await store.resolve('rid:abc'), undefined);
    await store.destroy();
    assert.deepEqual(await store.load(), {});
    assert.deepEqual(await store.link.command(['KEYS', `test${run}:store:*`]), []);
  });

  it('serves a device from the instance it talks to: requests from another instance go there, events come once, and a move takes it over without a new registration', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const d = await device('dev-1', plainPort(a));
    await d.register();
    assert.deepEqual(a.events, ['registered dev-1']);
    assert.equal(b.registrations.size, 0, 'b holds nothing of a device it never heard from');

    const read = await b.send('dev-1', new ReadRequest(P('/3/0/0')));
    assert.equal(read.code, '2.05');
    assert.equal(read.records[0].value, d.objects.get(3).get(0).get(0));
    assert.equal(b.registrations.size, 0, 'the read went through a');

    const notifications = [];
    const listener = { notify: (event) => notifications.push(event), error: () => undefined, ended: () => undefined };
    b.observations.adopt('observe-node', listener);
    a.observations.adopt('observe-node', listener);
    const { first, established } = await b.observe('dev-1', new ObserveRequest(P('/3/0/9')), listener, { timeoutMs: 3000 }, 'observe-node');
    assert.ok(established);
    assert.equal(first.code, '2.05');
    assert.equal(a.observations.size, 1, 'held where the device is served');
    await d.setResource('/3/0/9', 55);
    await until(() => notifications.length === 1, 3000, 'a notification at a');

    // The balancer moves the device to b: its next Update is answered there, nobody registers again.
    d.moveTo(plainPort(b));
    await d.update();
    assert.equal(`/rd/${b.registrations.getByEndpoint('dev-1').id}`, d.registrationLocation, 'the same registration');
    assert.deepEqual(b.events, ['updated dev-1']);
    assert.deepEqual(a.events, ['registered dev-1', 'released dev-1']);
    assert.equal(a.registrations.size, 0);
    assert.equal(b.observations.size, 1, 'the observation came along');
    await d.setResource('/3/0/9', 44);
    await until(() => notifications.length === 2, 3000, 'the notification at b');
    assert.equal(notifications[1].records[0].value, 44);
    const again = await a.send('dev-1', new ReadRequest(P('/3/0/9')));
    assert.equal(again.records[0].value, 44, 'a reaches it through b now');
  });

  it('takes over a crashed instance\'s devices from Redis: Updates answered, observations go on, waiting requests delivered, a DTLS device in its session', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const plain = await device('dev-2', plainPort(a));
    const sleepy = await device('dev-q', plainPort(a), { queueMode: true });
    const secure = await device('meter-7', dtlsPort(a), { dtls: { identity: 'meter-7-id', key: KEY } });
    await plain.register();
    await sleepy.register();
    await secure.register();
    assert.equal(a.handshakes, 1);
    const notifications = [];
    const listener = { notify: (event) => notifications.push(event), error: () => undefined, ended: () => undefined };
    a.observations.adopt('observe-node', listener);
    b.observations.adopt('observe-node', listener);
    await a.observe('dev-2', new ObserveRequest(P('/3/0/9')), listener, {}, 'observe-node');
    await a.observe('meter-7', new ObserveRequest(P('/3/0/9')), listener, {}, 'observe-node');
    // A flow's request for the sleeping device waits at a, and is in Redis at once.
    await until(() => !a.presence.isAwake('dev-q'), 3000, 'dev-q asleep');
    const waiting = a.send('dev-q', new ReadRequest(P('/3/0/0')), { park: { owner: 'read-node', msg: { payload: 'x', _msgid: 'm1' } } });
    waiting.catch(() => undefined);
    await until(async () => (await b.cluster.store.group('dev-q')).some((entry) => entry.collection === 'parked'), 3000, 'the waiting request in Redis');
    await new Promise((resolve) => setTimeout(resolve, 100));

    await crash(a);
    const handed = [];
    b.on('parked', (owners) => handed.push(...owners));
    for (const d of [plain, sleepy, secure]) d.moveTo(d === secure ? dtlsPort(b) : plainPort(b));

    await plain.update();
    await secure.update();
    assert.equal(b.handshakes, 0, 'the DTLS device goes on in its session: no handshake');
    assert.deepEqual(b.events.sort(), ['updated dev-2', 'updated meter-7']);
    await plain.setResource('/3/0/9', 10);
    await secure.setResource('/3/0/9', 11);
    await until(() => notifications.length === 2, 3000, 'notifications of both observations at b');
    assert.deepEqual(notifications.map((event) => event.records[0].value).sort(), [10, 11]);
    const read = await b.send('meter-7', new ReadRequest(P('/3/0/0')));
    assert.equal(read.code, '2.05', 'a read reaches the DTLS device over its old session');

    await sleepy.update();
    await until(() => handed.includes('read-node'), 3000, 'the waiting request handed to its node at b');
    const [parked] = b.takeParked('read-node');
    assert.deepEqual(parked.msg, { payload: 'x', _msgid: 'm1' });
    assert.equal(parked.endpoint, 'dev-q');
  });

  it('goes on with a crashed instance\'s firmware campaign where its devices are served now: the update finished and reported once, there', async () => {
    const a = await instance('a', { firmware: true });
    const b = await instance('b', { firmware: true });
    const fwDevice = async (endpoint, fw) => {
      const d = await device(endpoint, plainPort(a), { maxRequestBodyBytes: 1 << 20 });
      d.firmware = new SimulatedFirmware(d, fw);
      await d.register();
      return d;
    };
    // Each step (checking the package, installing it, rebooting) long enough for the crash to find the pushed device
    // installing (Update executed by a) and the pulling one checking the package it fetched from a (Update not yet).
    const pushed = await fwDevice('fw-push', { deliveryMethod: 1, stepMs: 2500 });
    const pulling = await fwDevice('fw-pull', { deliveryMethod: 0, protocols: [0], stepMs: 3000 });
    // The same firmware node (same id) on both instances, as identical flows make it.
    const atA = recorder();
    const atB = recorder();
    await a.firmware.adopt('fw-node', atA.listener);
    await b.firmware.adopt('fw-node', atB.listener);
    const campaign = await a.firmware.start({ concurrency: 2, package: firmwarePackage('2.0.0', 8000), settings: settings({ version: '2.0.0', updateTimeoutMs: 15_000, downloadTimeoutMs: 15_000 }) }, 'fw-node', atA.listener);

    // When a dies their places are in Redis, beside their registrations (the pushed one's perhaps a save behind).
    await until(() => pushed.firmware.state === 3 && pulling.firmware.received, 10_000, 'one installing, one checking');
    assert.match(pulling.firmware.uris[0], new RegExp(`^coap://127\\.0\\.0\\.1:${a.coap.plain.address.port}/fw/`));
    const places = async (endpoint) => (await b.cluster.store.group(endpoint)).filter((entry) => entry.collection === 'firmware').map((entry) => parseEntry(entry.json));
    await until(async () => (await places('fw-push')).length === 1 && (await places('fw-pull'))[0]?.phase === 'downloading', 5000, 'the devices\' places in Redis');
    assert.equal(pulling.firmware.state, 1, 'the pulling device still checks its package');
    await crash(a);
    assert.deepEqual(atA.results, []);

    // The balancer sends their next datagrams to b, which takes them over and goes on: Update executed when Downloaded.
    for (const d of [pushed, pulling]) {
      d.moveTo(plainPort(b));
      await d.update();
    }
    await until(() => atB.results.length === 2, 20_000, 'both results at b');
    assert.deepEqual(
      atB.results.map((r) => [r.campaign, r.endpoint, r.status, r.delivery, r.previousVersion, r.version]).sort(),
      [[campaign.id, 'fw-pull', 'success', 'pull', '1.0.0', '2.0.0'], [campaign.id, 'fw-push', 'success', 'push', '1.0.0', '2.0.0']],
    );
    for (const d of [pushed, pulling]) assert.equal(d.getResource('/3/0/3'), '2.0.0');
    assert.ok(atB.progress.some((event) => event.phase === 'updating'), 'progress from b');
    // The devices registered again after their reboot, at b; nothing is left of them in the campaign (with b's next save).
    assert.equal(b.registrations.size, 2);
    await until(async () => (await places('fw-push')).length + (await places('fw-pull')).length === 0, 3000, 'the places gone from Redis');
    for (const endpoint of ['fw-push', 'fw-pull']) assert.equal(await b.cluster.store.get('firmware', `${campaign.id}/${endpoint}`), undefined);
    assert.equal(atB.results.length, 2, 'reported once');
    assert.deepEqual(atA.results, [], 'nothing from the dead instance');
  });

  it('hands a device\'s firmware update over with the device: a live instance stops driving it, the one serving it now goes on and reports', async () => {
    const a = await instance('a', { firmware: true });
    const b = await instance('b', { firmware: true });
    const d = await device('fw-moving', plainPort(a), { maxRequestBodyBytes: 1 << 20 });
    d.firmware = new SimulatedFirmware(d, { deliveryMethod: 0, protocols: [0], stepMs: 2000 });
    await d.register();
    const atA = recorder();
    const atB = recorder();
    await a.firmware.adopt('fw-node', atA.listener);
    await b.firmware.adopt('fw-node', atB.listener);
    const campaign = await a.firmware.start({ concurrency: 1, package: firmwarePackage('3.0.0', 8000), settings: settings({ version: '3.0.0', updateTimeoutMs: 15_000, downloadTimeoutMs: 15_000 }) }, 'fw-node', atA.listener);
    await until(() => d.firmware.received, 10_000, 'the package fetched from a');

    // The balancer moves the device while a lives: a hands it over, with its place in the campaign, and lets go of it.
    d.moveTo(plainPort(b));
    await d.update();
    assert.deepEqual(a.events.slice(-1), ['released fw-moving']);
    assert.equal(a.firmware.list('fw-node')[0]?.endpoints.length ?? 0, 0, 'a no longer drives it');
    await until(() => atB.results.length === 1, 20_000, 'the result at b');
    assert.deepEqual(atB.results.map((r) => [r.campaign, r.status, r.version]), [[campaign.id, 'success', '3.0.0']]);
    assert.ok(atB.progress.some((event) => event.phase === 'updating'), 'b executed Update');
    assert.deepEqual(atA.results, [], 'a reports no outcome for a device it let go');
    assert.equal(atA.summary?.success ?? 0, 0);
  });

  it('keeps a name bound to the DTLS identity it registered with on every instance: a NoSec Register of it elsewhere is refused', async () => {
    const a = await instance('a');
    const b = await instance('b');
    // What a's server writes when a certificate device registers over DTLS (tested with openssl in dtls-lwm2m.test.js).
    a.cluster.store.put('bindings', 'dev-x509', JSON.stringify({ kind: 'x509', commonName: 'dev-x509', subject: 'CN=dev-x509' }));
    await a.cluster.store.flush();
    const refused = [];
    b.on('refused', (endpoint, peer, reason) => refused.push(reason));
    const impostor = await device('dev-x509', plainPort(b));
    await assert.rejects(impostor.register(), (error) => error.responseCode === '4.03');
    assert.deepEqual(refused, ['endpoint dev-x509 registered over DTLS as certificate CN="dev-x509": a device without DTLS may not take it over']);
    assert.equal(b.registrations.size, 0);
    const other = await device('free-name', plainPort(b));
    await other.register();
    assert.equal(b.registrations.getByEndpoint('free-name').transport, 'udp', 'an unbound name still registers over NoSec (the default policy)');
  });

  it('goes on from memory while Redis is down, says so, fails what needs Redis clearly, and writes everything again when Redis is back empty', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const d = await device('dev-3', plainPort(a));
    await d.register();
    const problems = [];
    a.on('storeProblem', (problem) => problems.push(problem));

    await redis.stop();
    await until(() => a.storeProblem && b.storeProblem, 5000, 'both instances to notice');
    assert.match(a.storeProblem, /Redis unreachable/);
    await d.update();
    assert.equal((await a.send('dev-3', new ReadRequest(P('/3/0/0')))).code, '2.05', 'a serves its device from memory');
    const failed = await b.send('dev-3', new ReadRequest(P('/3/0/0'))).catch((error) => error);
    assert.equal(failed.kind, 'unavailable');
    assert.match(failed.message, /state store is unreachable/);

    await redis.start();
    await until(() => a.storeProblem === undefined && b.storeProblem === undefined, 10_000, 'both instances back');
    await until(async () => (await a.cluster.store.get('registrations', 'dev-3')) !== undefined, 5000, 'the registration written again');
    const read = await b.send('dev-3', new ReadRequest(P('/3/0/0')));
    assert.equal(read.code, '2.05', 'b reaches a\'s device again');
    assert.deepEqual(problems.map((problem) => problem === undefined ? 'up' : 'down'), ['down', 'up']);
  });
});
