'use strict';
// The admin API behind the devices panel and the device console, in a real Node-RED runtime:
// pages that match a plain sort of the fleet, bounded completion, deltas over comms only while an
// editor watches, and a message log recorded only for a device someone looks at.
const assert = require('node:assert/strict');
const { events } = require('./support/node-red').nodeRedModule('@node-red/util');
const { helper, load } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { registerFleet } = require('./support/lean-fleet');
const { freeTcpPort } = require('./support/node-red-process');

describe('admin API of the devices panel and device console', function () {
  this.timeout(60000);
  let port;
  let tcpPort;
  let device;
  const published = [];
  const onComms = (message) => published.push(message);

  const server = () => helper.getNode('srv').host.service;
  const get = async (path) => {
    const response = await helper.request().get(`/lwm2m-red/servers/srv${path}`);
    assert.equal(response.status, 200, `${path}: ${JSON.stringify(response.body)}`);
    return response.body;
  };
  const post = (path, body) => helper.request().post(`/lwm2m-red/servers/srv${path}`).send(body);

  // Mixed case on purpose: search ignores case, sorting does not.
  const NAMES = Array.from({ length: 230 }, (_, i) => (i % 7 === 0 ? `Lamp-${String(i).padStart(4, '0')}` : `meter-${String((i * 37) % 1000).padStart(4, '0')}`));

  before(async () => {
    port = await freePort();
    tcpPort = await freeTcpPort();
    await load([{ id: 'tab', type: 'tab' }, { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, tcpPort, persist: false }]);
    await registerFleet({ port, count: NAMES.length, name: (i) => NAMES[i], sockets: 4, window: 64 });
    device = new SimulatedDevice({ endpoint: 'meter-live', server: { address: '127.0.0.1', port }, transmission: { ackTimeoutMs: 100 } });
    await device.start();
    await device.register();
    events.on('comms', onComms);
  });

  after(async () => {
    events.off('comms', onComms);
    await device.stop();
    await helper.unload();
  });

  const all = () => [...NAMES, 'meter-live'];

  it('walks the fleet page by page in each sort order, as a full sort would list it', async () => {
    for (const order of ['asc', 'desc']) {
      const expected = all().sort();
      if (order === 'desc') expected.reverse();
      const seen = [];
      let page = await get(`/devices?limit=50&order=${order}`);
      assert.equal(page.total, expected.length);
      for (;;) {
        assert.equal(page.offset, seen.length);
        seen.push(...page.items.map((item) => item.endpoint));
        if (!page.next) break;
        page = await get(`/devices?limit=50&order=${order}&after=${encodeURIComponent(page.next)}`);
      }
      assert.deepEqual(seen, expected);
      // And back again.
      const back = await get(`/devices?limit=50&order=${order}&before=${encodeURIComponent(page.previous)}`);
      assert.deepEqual(back.items.map((item) => item.endpoint), expected.slice(page.offset - 50, page.offset));
      assert.equal(back.offset, page.offset - 50);
    }
    const byRegistration = [...server().registrations.all()].sort((a, b) => b.registeredAt - a.registeredAt || (a.endpoint < b.endpoint ? 1 : -1)).map((r) => r.endpoint);
    const first = await get('/devices?sort=registeredAt&order=desc&limit=20');
    const second = await get(`/devices?sort=registeredAt&order=desc&limit=20&after=${encodeURIComponent(first.next)}`);
    assert.deepEqual([...first.items, ...second.items].map((item) => item.endpoint), byRegistration.slice(0, 40));
  });

  it('searches endpoint names by prefix or substring, ignoring case', async () => {
    const lamps = await get('/devices?search=lamp&limit=50');
    assert.equal(lamps.total, NAMES.filter((name) => name.startsWith('Lamp')).length);
    assert.ok(lamps.items.every((item) => item.endpoint.startsWith('Lamp-')));
    const containing = await get('/devices?search=00&match=substring&limit=50');
    assert.equal(containing.total, all().filter((name) => name.toLowerCase().includes('00')).length);
    assert.equal((await get('/devices?search=nobody')).total, 0);
    assert.equal((await helper.request().get('/lwm2m-red/servers/srv/devices?sort=size')).status, 400);
  });

  it('completes endpoints (prefix first) and paths, with bounded answers', async () => {
    const names = await get('/complete/endpoints?q=meter-00');
    assert.ok(names.length > 0 && names.length <= 20);
    assert.ok(names.every((name) => name.startsWith('meter-00')));
    const mixed = await get('/complete/endpoints?q=live');
    assert.deepEqual(mixed, ['meter-live']);
    assert.equal((await get('/complete/endpoints?q=')).length, 20);

    const paths = await get('/complete/paths?endpoint=meter-live&q=battery');
    assert.deepEqual(paths.map((p) => p.label), ['/3/0/9 Battery Level', '/3/0/20 Battery Status']);
    const fromModel = await get('/complete/paths?q=/3303/0/57');
    assert.ok(fromModel.some((p) => p.value === '/3303/0/5700'));
    assert.ok((await get('/complete/paths?q=')).length <= 50);
  });

  it('serves object definitions one by one, for the editor to keep', async () => {
    const response = await helper.request().get('/lwm2m-red/servers/srv/objects/3?version=1.0');
    assert.equal(response.status, 200);
    assert.match(response.headers['cache-control'], /max-age/);
    assert.equal(response.body.name, 'Device');
    assert.ok(response.body.resources.some((r) => r.id === 4 && r.operations === 'E'), 'executable resources are listed');
    assert.equal((await helper.request().get('/lwm2m-red/servers/srv/objects/99999')).status, 404);
  });

  it('attaches nothing to the server and publishes nothing while no editor watches', async () => {
    const before = server().listenerCount('registered');
    published.length = 0;
    await registerFleet({ port, count: 20, name: (i) => `quiet-${i}`, sockets: 2, window: 20 });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(server().listenerCount('registered'), before);
    assert.deepEqual(published.filter((m) => m.topic.startsWith('lwm2m-red/')), []);
    assert.equal(server().coap.plain.tap, undefined);
  });

  it('sends small coalesced deltas to a watching editor: the rows it shows and that the list changed', async () => {
    published.length = 0;
    assert.equal((await post('/watch', { client: 'tab-1', endpoints: ['meter-live'] })).status, 200);
    const listeners = server().listenerCount('registered');
    await registerFleet({ port, count: 300, name: (i) => `storm-${i}`, sockets: 4, window: 100 });
    await device.update({ lt: 600 });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const deltas = published.filter((m) => m.topic === 'lwm2m-red/devices/srv').map((m) => m.data);
    assert.ok(deltas.length >= 1 && deltas.length <= 6, `${deltas.length} deltas for 301 changes`);
    assert.ok(deltas.some((delta) => delta.listChanged));
    const changed = deltas.flatMap((delta) => delta.changed);
    assert.deepEqual([...new Set(changed.map((d) => d.endpoint))], ['meter-live'], 'only the watched rows');
    assert.equal(changed.at(-1).lifetime, 600);
    assert.ok(JSON.stringify(deltas).length < 10000, 'deltas stay small');
    await post('/watch', { client: 'tab-1', endpoints: null });
    assert.equal(server().listenerCount('registered'), listeners - 1, 'detached when the editor leaves');
  });

  it('records the messages of a device only while its console is open, decoded and timed', async () => {
    assert.equal(server().coap.plain.tap, undefined);
    await post('/watch', { client: 'tab-2', endpoints: [], device: 'meter-live' });
    assert.notEqual(server().coap.plain.tap, undefined);
    published.length = 0;
    const read = await get('/devices/meter-live/read?path=/3/0/9');
    assert.equal(read.payload, 100);
    const { recording, entries } = await get('/devices/meter-live/log');
    assert.equal(recording, true);
    const request = entries.find((entry) => entry.direction === 'out' && entry.path === '/3/0/9');
    const answer = entries.find((entry) => entry.direction === 'in' && entry.token === request.token);
    assert.deepEqual([request.type, request.code], ['CON', 'GET']);
    assert.deepEqual([answer.type, answer.code, answer.payload, answer.contentFormat], ['ACK', '2.05', '100', 'text/plain']);
    assert.ok(answer.elapsedMs >= 0);
    await new Promise((resolve) => setTimeout(resolve, 700));
    const consoleDeltas = published.filter((m) => m.topic === 'lwm2m-red/console/srv').map((m) => m.data);
    assert.ok(consoleDeltas.some((delta) => delta.endpoint === 'meter-live' && delta.log.some((entry) => entry.code === '2.05')));
    // Other devices are not recorded.
    assert.deepEqual((await get('/devices/storm-1/log')).entries, []);
    await post('/watch', { client: 'tab-2', endpoints: null });
    assert.equal(server().coap.plain.tap, undefined);
    assert.equal((await get('/devices/meter-live/log')).recording, false);
  });

  it('records a device over TCP too: frames have no type nor message id (RFC 8323)', async () => {
    const tcpDevice = new SimulatedDevice({ endpoint: 'meter-tcp', server: { address: '127.0.0.1', port: tcpPort }, binding: 'T', tcp: true });
    await tcpDevice.start();
    try {
      await tcpDevice.register();
      const [tcp] = server().coap.streams().map(([, endpoint]) => endpoint);
      assert.equal(tcp.tap, undefined);
      await post('/watch', { client: 'tab-3', endpoints: [], device: 'meter-tcp' });
      assert.notEqual(tcp.tap, undefined);
      assert.equal((await get('/devices/meter-tcp/read?path=/3/0/9')).payload, 100);
      const { entries } = await get('/devices/meter-tcp/log');
      const request = entries.find((entry) => entry.direction === 'out' && entry.path === '/3/0/9');
      const answer = entries.find((entry) => entry.direction === 'in' && entry.token === request.token);
      assert.deepEqual([request.code, request.type, request.messageId], ['GET', undefined, undefined]);
      assert.deepEqual([answer.code, answer.payload, answer.type], ['2.05', '100', undefined]);
      assert.ok(answer.elapsedMs >= 0);
      await post('/watch', { client: 'tab-3', endpoints: null });
      assert.equal(tcp.tap, undefined);
    } finally {
      await tcpDevice.stop();
    }
  });

  it('runs every operation of the console, with clear errors', async () => {
    assert.equal((await post('/devices/meter-live/write', { path: '/1/0/1', value: 90 })).body.code, '2.04');
    assert.equal(device.getResource('/1/0/1'), 90);
    const bad = await post('/devices/meter-live/write', { path: '/1/0/1', value: 'soon' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /integer/);
    assert.equal((await post('/devices/meter-live/write', { path: '/1/0/x', value: 1 })).status, 400);
    assert.equal((await post('/devices/nobody/write', { path: '/1/0/1', value: 1 })).status, 404);
    assert.equal((await post('/devices/meter-live/execute', { path: '/3/0/4', args: "0='x'" })).body.code, '2.04');
    const created = await post('/devices/meter-live/create', { path: '/3303', value: { 5700: 19.5 } });
    assert.deepEqual([created.body.code, created.body.location], ['2.01', '/3303/1']);
    assert.equal((await post('/devices/meter-live/delete', { path: '/3303/1' })).body.code, '2.02');
    assert.equal((await post('/devices/meter-live/attributes', { path: '/3303/0/5700', attributes: { pmin: 1, pmax: 9 } })).body.code, '2.04');
    assert.equal((await post('/devices/meter-live/attributes', { path: '/3303/0/5700', attributes: { pmin: 9, pmax: 1 } })).status, 400);
    const discovered = await get('/devices/meter-live/discover?path=/3303/0');
    assert.ok(discovered.links.some((link) => link.path === '/3303/0/5700' && link.attributes.pmin === '1'));
    const observed = await post('/devices/meter-live/observe', { path: '/3303/0/5700' });
    assert.equal(observed.body.payload, 21.5);
    const details = await get('/devices/meter-live');
    const observation = details.observations.find((o) => o.id === observed.body.observation);
    assert.deepEqual([observation.byConsole, observation.value], [true, 21.5]);
    assert.equal((await post('/devices/meter-live/cancel', { observation: observed.body.observation })).status, 200);
    assert.deepEqual(device.observations, []);
    assert.equal((await post('/devices/meter-live/cancel', { observation: observed.body.observation })).status, 404);
  });
});
