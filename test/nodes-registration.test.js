'use strict';
const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const { helper, load, nextMessage, received, statusMatching } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort, RawPeer } = require('./support/udp');
const { decode } = require('../dist/lib/coap/message');
const { formatCode } = require('../dist/lib/coap/codes');

const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };

function flow(port, extra = {}) {
  return [
    { id: 'srv', type: 'lwm2m-server', name: 'test server', bindAddress: '127.0.0.1', port },
    { id: 'events', type: 'lwm2m-events', server: 'srv', wires: [['out']], ...extra },
    { id: 'out', type: 'helper' },
  ];
}

describe('Node-RED: lwm2m-server and lwm2m-events', () => {
  const devices = [];
  let port;

  async function device(endpoint, options = {}, serverPort = port) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: serverPort }, transmission: FAST, ...options });
    await d.start();
    devices.push(d);
    return d;
  }

  beforeEach(async () => {
    port = await freePort();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
  });

  it('emits registered, updated and deregistered messages', async () => {
    await load(flow(port));
    const out = helper.getNode('out');
    const d = await device('flow-device', { lifetime: 120 });

    let message = nextMessage(out);
    await d.register();
    let msg = await message;
    assert.equal(msg.topic, 'registered');
    assert.equal(msg.event, 'registered');
    assert.equal(msg.endpoint, 'flow-device');
    assert.equal(msg.payload.endpoint, 'flow-device');
    assert.equal(msg.payload.lifetime, 120);
    assert.equal(msg.payload.lwm2mVersion, '1.1');
    assert.equal(msg.payload.binding, 'U');
    assert.equal(msg.payload.address, '127.0.0.1');
    assert.deepEqual(msg.payload.objects.map((o) => o.id), [1, 3, 3303, 3308]);
    assert.equal(msg.payload.location, d.registrationLocation);
    assert.ok(!Number.isNaN(Date.parse(msg.payload.expiresAt)));
    assert.doesNotThrow(() => JSON.stringify(msg));

    message = nextMessage(out);
    await d.update({ lt: 300 });
    msg = await message;
    assert.equal(msg.topic, 'updated');
    assert.deepEqual(msg.changes, ['lifetime']);
    assert.equal(msg.payload.lifetime, 300);

    message = nextMessage(out);
    await d.deregister();
    msg = await message;
    assert.equal(msg.topic, 'deregistered');
    assert.equal(msg.endpoint, 'flow-device');
  });

  it('removes a registration when the events node gets msg.action "remove", and reports an unknown one to Catch', async () => {
    await load([
      ...flow(port),
      { id: 'catcher', type: 'catch', scope: ['events'], wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ]);
    const out = helper.getNode('out');
    const d = await device('forged-looking', { lifetime: 4294967295 });
    let message = nextMessage(out);
    await d.register();
    assert.equal((await message).payload.lifetime, 604800, 'the shortened lifetime is what the event shows');
    message = nextMessage(out);
    helper.getNode('events').receive({ action: 'remove', endpoint: 'forged-looking' });
    const msg = await message;
    assert.deepEqual([msg.topic, msg.endpoint, msg.removedBy], ['deregistered', 'forged-looking', 'flow']);
    assert.equal(helper.getNode('srv').host.service.registrations.size, 0);
    helper.getNode('events').receive({ action: 'remove', endpoint: 'forged-looking' });
    assert.match((await nextMessage(helper.getNode('caught'))).error.message, /device "forged-looking" is not registered/);
    helper.getNode('events').receive({ action: 'drop', endpoint: 'x' });
    assert.match((await nextMessage(helper.getNode('caught'))).error.message, /msg\.action must be "remove"/);
  });

  it('emits expired when a lifetime runs out', async () => {
    await load(flow(port));
    const out = helper.getNode('out');
    const d = await device('mayfly', { lifetime: 1 });
    const registered = nextMessage(out);
    await d.register();
    await registered;
    const msg = await nextMessage(out, 3000);
    assert.equal(msg.topic, 'expired');
    assert.equal(msg.endpoint, 'mayfly');
  });

  it('emits registered with the replaced registration on re-register', async () => {
    await load(flow(port));
    const out = helper.getNode('out');
    const d = await device('again');
    let message = nextMessage(out);
    const first = await d.register();
    await message;
    message = nextMessage(out);
    await d.register();
    const msg = await message;
    assert.equal(msg.topic, 'registered');
    assert.equal(msg.replaced.location, first);
    assert.notEqual(msg.payload.location, first);
  });

  it('sends only the events chosen, and rejected requests when asked', async () => {
    await load(flow(port, { registered: false, updated: true, deregistered: false, expired: false, rejected: true }));
    const out = helper.getNode('out');
    const d = await device('picky');
    await d.register();
    await d.update();
    await d.send(1 + 1, '/rd', { query: { lt: 60 } }); // POST /rd without ep
    await d.deregister();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(received(out).map((m) => m.topic), ['updated', 'rejected']);
    assert.match(received(out)[1].payload.reason, /^4\.00 missing endpoint client name/);
    assert.equal(received(out)[1].payload.address, '127.0.0.1');
  });

  it('shows listening and the device count on the user nodes', async () => {
    await load(flow(port));
    const events = helper.getNode('events');
    await statusMatching(events, (s) => s.fill === 'green' && s.text === 'lwm2m-server.status.listening');
    const d = await device('counted');
    await d.register();
    // The count is pushed at most twice a second.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const host = helper.getNode('srv').host;
    assert.equal(host.service.registrations.size, 1);
    assert.ok(events.status.callCount >= 2, 'status refreshed after the registration');
  });

  it('answers malformed registrations with CoAP errors and keeps serving', async () => {
    await load(flow(port));
    const out = helper.getNode('out');
    const raw = await RawPeer.open();
    try {
      const rst = decode(await raw.exchange(Buffer.from([0x40, 0x02, 0x00, 0x09, 0xff]), port));
      assert.equal(rst.type, 3);
      const d = await device('probe');
      assert.equal(formatCode((await d.send(2, '/rd', { query: { ep: 'x', lt: 'soon' } })).code), '4.00');
      assert.equal(formatCode((await d.send(2, '/rd', { query: { ep: 'x', lwm2m: '9.9' } })).code), '4.12');
      assert.equal(formatCode((await d.send(2, '/rd', { query: { ep: 'x' }, payload: Buffer.from('</1/0') })).code), '4.00');
      const message = nextMessage(out);
      await d.register();
      assert.equal((await message).endpoint, 'probe');
    } finally {
      await raw.close();
    }
  });

  it('releases the port on redeploy and on delete', async () => {
    await load(flow(port));
    const d = await device('before');
    await d.register();
    await helper.unload();

    // Port free: a plain socket can take it.
    const socket = dgram.createSocket('udp4');
    await new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => socket.close(resolve));

    await load(flow(port));
    const out = helper.getNode('out');
    const message = nextMessage(out);
    const after = await device('after');
    await after.register();
    assert.equal((await message).endpoint, 'after');
  });

  it('closes quickly when stopped', async () => {
    await load(flow(port));
    const d = await device('busy');
    await d.register();
    const started = Date.now();
    await helper.unload();
    assert.ok(Date.now() - started < 15000);
  });

  it('runs two server config nodes on two ports side by side', async () => {
    const port2 = await freePort();
    await load([
      { id: 'srv1', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
      { id: 'srv2', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: port2 },
      { id: 'ev1', type: 'lwm2m-events', server: 'srv1', wires: [['out1']] },
      { id: 'ev2', type: 'lwm2m-events', server: 'srv2', wires: [['out2']] },
      { id: 'out1', type: 'helper' },
      { id: 'out2', type: 'helper' },
    ]);
    const out1 = helper.getNode('out1');
    const out2 = helper.getNode('out2');
    const m1 = nextMessage(out1);
    await (await device('one', {}, port)).register();
    assert.equal((await m1).endpoint, 'one');
    const m2 = nextMessage(out2);
    await (await device('two', {}, port2)).register();
    assert.equal((await m2).endpoint, 'two');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(received(out2), [], 'server 2 saw only its own device');
    assert.equal(helper.getNode('srv1').host.service.registrations.size, 1);
    assert.equal(helper.getNode('srv2').host.service.registrations.size, 1);
  });

  it('reports a port already in use through status and node.error, without throwing', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise((resolve) => blocker.bind(port, '127.0.0.1', resolve));
    try {
      await load(flow(port));
      const events = helper.getNode('events');
      const status = await statusMatching(events, (s) => s.fill === 'red');
      assert.equal(status.text, 'lwm2m-server.status.failed');
      const srv = helper.getNode('srv');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(srv.error.called, 'node.error called');
      assert.equal(srv.error.firstCall.args[0], 'lwm2m-server.errors.bind');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('reports a missing server config on the events node', async () => {
    await load([{ id: 'events', type: 'lwm2m-events', server: 'nowhere', wires: [] }]);
    const events = helper.getNode('events');
    assert.equal(events.status.lastCall.args[0].fill, 'red');
    assert.ok(events.error.called);
  });

  it('listens on IPv6', async () => {
    const port6 = await freePort('::1');
    await load([
      { id: 'srv', type: 'lwm2m-server', bindAddress: '::1', port: port6 },
      { id: 'events', type: 'lwm2m-events', server: 'srv', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const out = helper.getNode('out');
    const d = new SimulatedDevice({ endpoint: 'six', server: { address: '::1', port: port6 }, transmission: FAST });
    await d.start();
    devices.push(d);
    const message = nextMessage(out);
    await d.register();
    const msg = await message;
    assert.equal(msg.payload.address, '::1');
  });
});
