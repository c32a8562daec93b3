'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FileStateStore } = require('../dist/lib/lwm2m/state');
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

  it('writes the state file atomically and reads Buffers and Dates back', async () => {
    const store = new FileStateStore(path.join(dir, 'nested', 'state.json'));
    const state = { version: 1, savedAt: 1, registrations: [], observations: [], parked: [{ owner: 'n', endpoint: 'e', deadline: 5, msg: { payload: Buffer.from([1, 2]), at: new Date(1000), nested: { $buffer: 'x', other: 1 } } }] };
    await store.save(state);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'nested')), ['state.json'], 'no temporary file left');
    assert.deepEqual(await store.load(), state);
    assert.equal(await new FileStateStore(path.join(dir, 'missing.json')).load(), undefined);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"version": 2}');
    await assert.rejects(new FileStateStore(path.join(dir, 'bad.json')).load(), /not an LwM2M server state file/);
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
