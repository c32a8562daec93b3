'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { execFileSync } = require('node:child_process');
const http = require('node:http');
const { FileStateStore, entryJson, parseEntry } = require('../dist/lib/lwm2m/state');
const { holdsWithin } = require('./support/wait');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { devicePool, FAST } = require('./support/devices');
const { freePort, once } = require('./support/udp');

const P = (text) => Lwm2mPath.parse(text);

describe('state across restarts', () => {
  let dir;
  let port;
  let server;

  const newServer = async (options = {}) => {
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST, stateStore: new FileStateStore(path.join(dir, 'state.json')), ...options });
    await server.start();
    return server;
  };

  const pool = devicePool(() => port);
  const device = pool.device;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-state-'));
    port = await freePort();
  });

  afterEach(async () => {
    await pool.stopAll();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps entries per collection with expiries in one file written atomically, Buffers and Dates included', async () => {
    const file = path.join(dir, 'nested', 'state.json');
    const store = new FileStateStore(file);
    assert.deepEqual(await store.load(), {}, 'nothing yet: no collection');
    const msg = { payload: Buffer.from([1, 2]), at: new Date(1000), nested: { $buffer: 'x', other: 1 } };
    store.put('parked', 'p1', entryJson({ owner: 'n', endpoint: 'e', deadline: Date.now() + 60_000, msg }, []), Date.now() + 60_000);
    store.put('parked', 'gone-soon', entryJson({ owner: 'n' }, []), Date.now() + 50);
    store.put('registrations', 'ep', entryJson({ endpoint: 'ep' }, []));
    await store.flush();
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['state.json'], 'no temporary file left');
    store.delete('registrations', 'ep');
    await new Promise((resolve) => setTimeout(resolve, 60));
    await store.flush();
    const loaded = await new FileStateStore(file).load();
    assert.deepEqual([...loaded.parked.keys()], ['p1'], 'expired entries are not loaded');
    assert.equal(loaded.registrations.size, 0);
    // Any collection name is kept, a new kind of entry needs no change in the store.
    store.put('firmware', 'campaign-1', entryJson({ state: 'running' }, []));
    await store.flush();
    assert.deepEqual(parseEntry((await new FileStateStore(file).load()).firmware.get('campaign-1').json), { state: 'running' });
    assert.deepEqual(parseEntry(loaded.parked.get('p1').json).msg, msg);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"version": 3}');
    await assert.rejects(new FileStateStore(path.join(dir, 'bad.json')).load(), /not an LwM2M server state file/);
  });

  it('reads a state file of the earlier format (one snapshot) and writes it back per entry', async () => {
    const now = Date.now();
    const registration = { endpoint: 'old-timer', id: 'abc', address: '127.0.0.1', port: 5, transport: 'udp', lifetime: 300, lwm2mVersion: '1.1', binding: 'U', queueMode: false, rootPath: '/', objects: [{ id: 3, instances: [0] }], contentFormats: [], registeredAt: now, lastUpdate: now };
    fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ version: 1, savedAt: now, registrations: [registration], observations: [], parked: [{ owner: 'n1', endpoint: 'old-timer', deadline: now + 60_000, msg: { payload: { $buffer: 'AQI=' } } }] }));
    await newServer();
    assert.equal(server.registrations.getByEndpoint('old-timer').id, 'abc');
    assert.deepEqual(server.takeParked('n1').map((request) => request.msg.payload), [Buffer.from([1, 2])]);
    await server.stop();
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
    assert.equal(saved.version, 2);
    assert.deepEqual(Object.keys(saved.collections.registrations), ['old-timer']);
    assert.deepEqual(Object.keys(saved.collections.parked), [], 'the request was taken');
  });

  it('saves each waiting request on its own: a msg that cannot be serialised loses only what cannot be kept, with a warning', async () => {
    await newServer({ awakeTimeMs: 200 });
    const warnings = [];
    server.on('warning', (error) => warnings.push(error.message));
    const d = await device('dozy', { queueMode: true });
    await d.register();
    await once(server, 'sleeping', 2000);
    // An http-in msg: req and res of a live request, circular through their socket.
    const web = http.createServer();
    await new Promise((resolve) => web.listen(0, '127.0.0.1', resolve));
    const exchange = new Promise((resolve) => web.once('request', (req, res) => resolve({ req, res })));
    const client = http.get(`http://127.0.0.1:${web.address().port}/`).on('error', () => undefined);
    const { req, res } = await exchange;
    const httpMsg = { payload: 'from http', _msgid: 'h1', req, res };
    const waiting = [
      server.send('dozy', new ReadRequest(P('/3/0/9')), { ttlMs: 60000, park: { owner: 'http-node', msg: httpMsg } }),
      server.send('dozy', new ReadRequest(P('/3/0/0')), { ttlMs: 60000, park: { owner: 'read-node', msg: { payload: 'plain', _msgid: 'm2' } } }),
    ];
    const settled = Promise.allSettled(waiting);
    await server.stop();
    await settled;
    res.end();
    client.destroy();
    web.close();
    assert.ok(warnings.some((text) => /waiting for dozy: msg\.req, msg\.res cannot be kept across a restart and is left out$/.test(text)), warnings.join('\n'));
    await newServer({ awakeTimeMs: 200 });
    const [fromHttp] = server.takeParked('http-node');
    assert.equal(fromHttp.msg.payload, 'from http');
    assert.deepEqual(server.takeParked('read-node').map((request) => request.msg), [{ payload: 'plain', _msgid: 'm2' }]);
  });

  it('removes temporary files a crash left behind, the one of a failed write at once, and the file of a deleted server', async () => {
    const file = path.join(dir, 'state.json');
    fs.writeFileSync(`${file}.4242.tmp`, 'half a state from a process killed while writing');
    fs.writeFileSync(path.join(dir, 'other.json.4242.tmp'), 'not ours');
    await newServer();
    assert.deepEqual(fs.readdirSync(dir).sort(), ['other.json.4242.tmp'], 'stale temporary file removed at start');
    await (await device('kept')).register();
    const warnings = [];
    server.on('warning', (error) => warnings.push(error.message));
    // The rename over the state file fails (a directory is in the way): the temporary file goes at once.
    fs.mkdirSync(file);
    fs.writeFileSync(path.join(file, 'x'), '');
    server.scheduleSave();
    await holdsWithin(() => warnings.length > 0, 3000);
    assert.match(warnings[0], /state not saved/);
    assert.deepEqual(fs.readdirSync(dir).filter((name) => name.startsWith('state.json.')), [], 'no temporary file after a failed write');
    fs.rmSync(file, { recursive: true });
    await server.stop({ forget: true });
    assert.equal(fs.existsSync(file), false, 'the state of a deleted server is removed');
    server = undefined;
  });

  it('removes the temporary file of a write that fills the disk', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const small = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small]);
    } catch {
      fs.rmSync(small, { recursive: true, force: true });
      this.skip();
    }
    try {
      const store = new FileStateStore(path.join(small, 'state.json'));
      await store.load();
      for (let i = 0; i < 200; i++) store.put('registrations', `ep-${i}`, JSON.stringify({ filler: 'x'.repeat(1000) }));
      await assert.rejects(store.flush(), /ENOSPC/);
      assert.deepEqual(fs.readdirSync(small), [], 'the partial temporary file is gone');
    } finally {
      execFileSync('umount', [small]);
      fs.rmSync(small, { recursive: true, force: true });
    }
  });

  it('keeps registrations across a restart: same location, addressable, lifetimes still counting', async () => {
    await newServer();
    const d = await device('keeper', { lifetime: 300 });
    const location = await d.register();
    const short = await device('short', { lifetime: 2 });
    await short.register();
    const before = server.registrations.getByEndpoint('keeper');
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await newServer();
    const after = server.registrations.getByEndpoint('keeper');
    assert.deepEqual(JSON.parse(JSON.stringify(after)), JSON.parse(JSON.stringify(before)));
    // The device knows nothing of the restart: its update and the server's read just work.
    await d.update();
    assert.equal((await server.send('keeper', new ReadRequest(P('/3/0/9')))).records[0].value, 100);
    assert.equal(d.registrationLocation, location);
    // The 2 s lifetime had 1 s left: it expires about a second after the restart, not two.
    const started = Date.now();
    const [expired] = await once(server, 'expired', 3000);
    assert.equal(expired.endpoint, 'short');
    assert.ok(Date.now() - started < 1500, `expired after ${Date.now() - started} ms`);
  });

  it('forgets registrations whose lifetime ran out while the server was down', async () => {
    await newServer();
    await (await device('gone', { lifetime: 1 })).register();
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await newServer();
    assert.equal(server.registrations.size, 0);
  });

  it('keeps observations: notifications after a restart reach the node that adopts them', async () => {
    await newServer();
    const d = await device('observed');
    await d.register();
    const events = [];
    await server.observe('observed', new ObserveRequest(P('/3303/0/5700')), { notify: (e) => events.push(['old', e.records[0].value]), error() {}, ended() {} }, {}, 'node-1');
    await server.stop();
    await newServer();
    assert.equal(server.observations.size, 1);
    // A notification that arrives before the node is back waits for it.
    await d.setResource('/3303/0/5700', 30);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(d.observations.length, 1, 'accepted, not reset');
    const adopted = server.observations.adopt('node-1', { notify: (e) => events.push(['new', e.records[0].value]), error() {}, ended() {} });
    assert.equal(adopted.length, 1);
    await d.setResource('/3303/0/5700', 31);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(events, [['new', 30], ['new', 31]]);
  });

  it('keeps requests waiting for sleeping devices, for their owner to send again', async () => {
    await newServer({ awakeTimeMs: 200 });
    const d = await device('dozy', { queueMode: true });
    await d.register();
    await once(server, 'sleeping', 2000);
    const pending = server.send('dozy', new ReadRequest(P('/3/0/9')), { ttlMs: 60000, park: { owner: 'read-node', msg: { payload: 'x', _msgid: 'm1' } } });
    const failed = assert.rejects(pending, (error) => error.kind === 'parked');
    await server.stop();
    await failed;
    await newServer({ awakeTimeMs: 200 });
    assert.equal(server.presence.isAwake('dozy'), false, 'a queue-mode device counts as asleep after a restart');
    const parked = server.takeParked('read-node');
    assert.equal(parked.length, 1);
    assert.deepEqual(parked[0].msg, { payload: 'x', _msgid: 'm1' });
    assert.ok(parked[0].deadline > Date.now() + 50000);
    assert.deepEqual(server.takeParked('read-node'), [], 'handed over once');
  });

  it('starts empty, with a warning, from a state file it cannot read', async () => {
    fs.writeFileSync(path.join(dir, 'state.json'), 'not json');
    server = new Lwm2mServer({ address: '127.0.0.1', port, stateStore: new FileStateStore(path.join(dir, 'state.json')) });
    const warnings = [];
    server.on('warning', (error) => warnings.push(error.message));
    await server.start();
    assert.match(warnings[0], /saved state not restored/);
    assert.equal(server.registrations.size, 0);
  });
});
