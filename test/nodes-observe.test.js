'use strict';
const assert = require('node:assert/strict');
const { helper, load, nextMessage, firstMessage, received } = require('./support/flow');
const { devicePool, FAST } = require('./support/devices');
const { freePort } = require('./support/udp');


describe('Node-RED: lwm2m observe and the information-reporting events', () => {
  let port;

  const pool = devicePool(() => port);
  const device = pool.device;

  function flow(observe, serverOptions = {}) {
    return [
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, ...serverOptions },
      { id: 'obs', z: 'tab', type: 'lwm2m-observe', server: 'srv', timeout: 2, wires: [['out']], ...observe },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'events', z: 'tab', type: 'lwm2m-events', server: 'srv', registered: false, updated: false, deregistered: false, expired: false, awake: true, sleeping: true, send: true, wires: [['evt']] },
      { id: 'evt', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
  }

  const loadFlow = (observe, serverOptions) => load(flow(observe, serverOptions));

  beforeEach(async () => {
    port = await freePort();
  });

  afterEach(async () => {
    await pool.stopAll();
    await helper.unload();
  });

  it('observes on msg, sends the current value and each notification, and cancels on msg.cancel', async () => {
    await loadFlow({ endpoint: 'thermo', path: '/3303/0/5700' });
    const d = await device('thermo');
    await d.register();
    const out = helper.getNode('out');
    helper.getNode('obs').receive({ marker: 1 });
    const first = await nextMessage(out);
    assert.deepEqual([first.payload, first.first, first.marker, first.endpoint, first.path, first.code], [21.5, true, 1, 'thermo', '/3303/0/5700', '2.05']);
    assert.equal(first.resources[0].name, 'Sensor Value');
    await d.setResource('/3303/0/5700', 25);
    const notification = await nextMessage(out);
    assert.equal(notification.payload, 25);
    assert.equal(notification.first, undefined);
    assert.equal(notification.observation, first.observation);
    assert.equal(helper.getNode('obs').status.lastCall.args[0].text, 'lwm2m-observe.status.observing');
    helper.getNode('obs').receive({ cancel: true });
    // The cancel is a msg too, naming the observation that ended.
    const cancelled = await nextMessage(out);
    assert.deepEqual([cancelled.topic, cancelled.endpoint, cancelled.path, cancelled.observation, cancelled.reason], ['cancelled', 'thermo', '/3303/0/5700', first.observation, 'cancelled']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(d.observations, [], 'cancelled at the device');
    await d.setResource('/3303/0/5700', 26);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(received(out).length, 0);
  });

  it('observes every device that registers, writing attributes first, and survives re-registration', async () => {
    await loadFlow({ path: '/3303/0/5700', start: 'register', pmin: '1', pmax: '30' });
    const a = await device('a');
    const b = await device('b');
    const out = helper.getNode('out');
    await a.register();
    await b.register();
    const firsts = [await nextMessage(out), await nextMessage(out)];
    assert.deepEqual(firsts.map((m) => m.endpoint).sort(), ['a', 'b']);
    assert.deepEqual(a.attributes.get('/3303/0/5700'), { pmin: '1', pmax: '30' });
    await a.register();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(a.observations.length, 1, 're-observed once, not twice');
    await a.setResource('/3303/0/5700', 30);
    const msg = await nextMessage(out);
    assert.deepEqual([msg.endpoint, msg.payload], ['a', 30]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(received(out).length, 0, 'one msg per notification');
  });

  it('coalesces its status updates while a fleet registers', async () => {
    await loadFlow({ path: '/3303/0/5700', start: 'register' });
    const devices = await Promise.all(Array.from({ length: 25 }, (_, i) => device(`fleet-${i}`)));
    const observe = helper.getNode('obs');
    const before = observe.status.callCount;
    await Promise.all(devices.map((d) => d.register()));
    const out = helper.getNode('out');
    for (let i = 0; i < devices.length; i++) await nextMessage(out);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const updates = observe.status.callCount - before;
    assert.ok(updates >= 1 && updates <= 6, `${updates} status updates for 25 observations`);
    const server = helper.getNode('srv').host.service;
    assert.equal(server.observations.size, 25);
    assert.equal(observe.status.lastCall.args[0].text, 'lwm2m-observe.status.observing');
  });

  it('observes composite in the SenML format the device announced, and warns when it announced none', async () => {
    await loadFlow({ composite: true, path: '/3303/0/5700,/3/0/9' });
    const out = helper.getNode('out');
    const json = await device('senml-json', { contentFormats: [0, 110, 11542] });
    await json.register();
    helper.getNode('obs').receive({ endpoint: 'senml-json' });
    const first = await nextMessage(out);
    assert.deepEqual(first.payload, { 3: { 0: { 9: 100 } }, 3303: { 0: { 5700: 21.5 } } });
    assert.equal(first.contentFormat, 110);
    assert.equal(helper.getNode('obs').warn.callCount, 0);
    const none = await device('tlv-only', { contentFormats: [0, 11542] });
    await none.register();
    helper.getNode('obs').receive({ endpoint: 'tlv-only' });
    const caught = await nextMessage(helper.getNode('caught'));
    assert.match(helper.getNode('obs').warn.lastCall.args[0], /tlv-only announced ct="0 11542", no SenML format: composite operations ask it in SenML JSON/);
    assert.match(caught.error.message, /4\.(06|15)/);
  });

  it('skips devices without the observed object', async () => {
    await loadFlow({ path: '/3442/0/110', start: 'register' });
    const d = await device('plain');
    await d.register();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(received(helper.getNode('out')).length, 0);
    assert.equal(received(helper.getNode('caught')).length, 0);
  });

  it('cancels its observations when the node is removed, keeps them across a redeploy', async () => {
    await loadFlow({ endpoint: 'closing', path: '/3303/0/5700' });
    const d = await device('closing');
    await d.register();
    helper.getNode('obs').receive({});
    await nextMessage(helper.getNode('out'));
    assert.equal(d.observations.length, 1);
    // Redeploying the modified node: the new instance takes the observation over.
    const modified = flow({ endpoint: 'closing', path: '/3303/0/5700', name: 'renamed' });
    await helper.setFlows(modified, 'nodes');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(d.observations.length, 1, 'not cancelled by a redeploy');
    await d.setResource('/3303/0/5700', 31);
    assert.equal((await nextMessage(helper.getNode('out'))).payload, 31);
    // Removing the node cancels at the device.
    const started = Date.now();
    await helper.setFlows(modified.filter((node) => node.id !== 'obs'), 'nodes');
    assert.ok(Date.now() - started < 15000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(d.observations, []);
  });

  for (const [name, msg, pattern] of [
    ['an unknown device', { endpoint: 'ghost', path: '/3/0/9' }, /"ghost" is not registered/],
    ['a path the device lacks', { endpoint: 'x', path: '/3303/9/5700' }, /4\.04/],
    ['a malformed path', { endpoint: 'x', path: 'temperature' }, /where a number is expected/],
  ]) {
    it(`reports ${name} to Catch nodes`, async () => {
      await loadFlow({});
      await (await device('x')).register();
      const caught = nextMessage(helper.getNode('caught'));
      helper.getNode('obs').receive(msg);
      assert.match((await caught).error.message, pattern);
    });
  }

  it('sends Send reports, awake and sleeping through the events node', async () => {
    await loadFlow({}, { awakeTime: 0.3 });
    const evt = helper.getNode('evt');
    const d = await device('q', { queueMode: true });
    await d.register();
    assert.equal((await nextMessage(evt)).topic, 'awake');
    assert.equal((await nextMessage(evt)).topic, 'sleeping');
    await d.sendValues(['/3303/0/5700', '/3/0/9'], 110);
    const [awake, send] = [await nextMessage(evt), await nextMessage(evt)];
    assert.equal(awake.topic, 'awake');
    assert.equal(send.topic, 'send');
    assert.equal(send.endpoint, 'q');
    assert.deepEqual(send.payload, { 3: { 0: { 9: 100 } }, 3303: { 0: { 5700: 21.5 } } });
    assert.equal(send.contentFormat, 110);
    assert.ok(send.resources.some((r) => r.name === 'Battery Level'));
  });

  it('holds a read for a sleeping device until it wakes (msg.ttl)', async () => {
    await load(
      [
        { id: 'tab', type: 'tab' },
        { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, awakeTime: 0.2 },
        { id: 'op', z: 'tab', type: 'lwm2m-read', server: 'srv', endpoint: 'nap', path: '/3/0/9', wires: [['out']] },
        { id: 'out', z: 'tab', type: 'helper' },
        { id: 'catcher', z: 'tab', type: 'catch', scope: null, wires: [['caught']] },
        { id: 'caught', z: 'tab', type: 'helper' },
      ],
      {},
    );
    const d = await device('nap', { queueMode: true });
    await d.register();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const out = helper.getNode('out');
    const caught = helper.getNode('caught');
    let outcome = firstMessage([out, caught], 3000);
    helper.getNode('op').receive({ ttl: 0.3 });
    let arrived = await outcome;
    assert.equal(arrived.node, caught);
    assert.match(arrived.msg.error.message, /did not wake up within the request's time to live/);
    outcome = firstMessage([out, caught], 3000);
    helper.getNode('op').receive({});
    await new Promise((resolve) => setTimeout(resolve, 200));
    await d.update();
    arrived = await outcome;
    assert.equal(arrived.node, out);
    assert.equal(arrived.msg.payload, 100);
  });
});
