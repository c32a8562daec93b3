'use strict';
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ObserveRequest, ObserveCompositeRequest } = require('../dist/lib/lwm2m/requests/observe');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { recordsToPayload } = require('../dist/lib/content/payload');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encode, decode } = require('../dist/lib/coap/message');
const { devicePool, FAST } = require('./support/devices');
const { freePort, RawPeer, once } = require('./support/udp');
const { RawDevice, OPT, optionValue, uint, uintOf } = require('./support/raw-device');

const P = (text) => Lwm2mPath.parse(text);

/** Collects an observation's events. */
function collector() {
  const events = { notifications: [], errors: [], ended: [] };
  const waiters = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  return {
    events,
    notify: (event) => {
      events.notifications.push(event);
      wake();
    },
    error: (error) => {
      events.errors.push(error);
      wake();
    },
    ended: (_observation, reason) => {
      events.ended.push(reason);
      wake();
    },
    async until(predicate, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(events)) {
        if (Date.now() > deadline) throw new Error(`condition not met: ${JSON.stringify({ n: events.notifications.length, errors: events.errors.map(String), ended: events.ended })}`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
  };
}

describe('observations, Send and queue mode', () => {
  let server;
  let port;

  const pool = devicePool(() => port);
  const device = pool.device;

  async function startServer(options = {}) {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: FAST, client: { defaultTimeoutMs: 2000 }, ...options });
    await server.start();
  }

  beforeEach(() => startServer());

  afterEach(async () => {
    await pool.stopAll();
    await server.stop();
  });

  it('observes a resource, delivers each notification, and cancels actively', async () => {
    const d = await device('thermo');
    await d.register();
    const listener = collector();
    const { observation, first, established } = await server.observe('thermo', new ObserveRequest(P('/3303/0/5700')), listener);
    assert.equal(established, true);
    assert.equal(recordsToPayload(first.records, P('/3303/0/5700')), 21.5);
    assert.equal(server.observations.size, 1);
    for (const value of [22, 22.5, 23]) await d.setResource('/3303/0/5700', value);
    await listener.until((e) => e.notifications.length === 3);
    assert.deepEqual(listener.events.notifications.map((n) => recordsToPayload(n.records, P('/3303/0/5700'))), [22, 22.5, 23]);
    assert.deepEqual(listener.events.notifications.map((n) => n.sequence), [2, 3, 4]);
    await server.observations.cancel(observation);
    assert.deepEqual(listener.events.ended, ['cancelled']);
    assert.equal(server.observations.size, 0);
    assert.deepEqual(d.observations, [], 'the device got GET with Observe=1');
    const last = d.received.at(-1);
    assert.equal(last.message.options.find((o) => o.number === 6).value.length, 1);
  });

  it('cancels passively: a notification after forgetting gets a Reset and the device stops', async () => {
    const d = await device('passive');
    await d.register();
    const listener = collector();
    const { observation } = await server.observe('passive', new ObserveRequest(P('/3303/0')), listener);
    await server.observations.cancel(observation, { active: false });
    await d.setResource('/3303/0/5700', 30);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(d.observations, [], 'the Reset removed the observer');
    assert.equal(listener.events.notifications.length, 0);
  });

  it('observes with confirmable notifications, acknowledged', async () => {
    const d = await device('con', { confirmableNotifications: true });
    await d.register();
    const listener = collector();
    await server.observe('con', new ObserveRequest(P('/3303/0/5700')), listener);
    await d.setResource('/3303/0/5700', 1.5);
    await listener.until((e) => e.notifications.length === 1);
    assert.equal(d.observations.length, 1);
  });

  it('observes composite', async () => {
    const d = await device('composite');
    await d.register();
    const listener = collector();
    const { first } = await server.observe('composite', new ObserveCompositeRequest([P('/3303/0/5700'), P('/3/0/9')]), listener);
    assert.equal(recordsToPayload(first.records, Lwm2mPath.ROOT)[3][0][9], 100);
    await d.setResource('/3/0/9', 55);
    await listener.until((e) => e.notifications.length === 1);
    assert.equal(recordsToPayload(listener.events.notifications[0].records, Lwm2mPath.ROOT)[3][0][9], 55);
  });

  /**
   * A raw socket registered as endpoint, observed at /3303/0/5700 and answering
   * with Observe 1; body gets it with the listener and a notification encoder.
   */
  async function withRawObserved(endpoint, body) {
    const raw = await RawPeer.open();
    try {
      const register = encode({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), options: [{ number: 11, value: Buffer.from('rd') }, { number: 15, value: Buffer.from(`ep=${endpoint}`) }], payload: Buffer.from('</3303/0>') });
      await raw.exchange(register, port);
      const listener = collector();
      const pending = server.observe(endpoint, new ObserveRequest(P('/3303/0/5700')), listener);
      const request = decode(await raw.next());
      const notification = (type, messageId, sequence, value) =>
        encode({ type, code: 69, messageId, token: request.token, options: [{ number: 6, value: Buffer.from([sequence]) }], payload: Buffer.from(String(value)) });
      await raw.send(notification(2, request.messageId, 1, 20), port);
      await pending;
      await body({ raw, listener, notification });
    } finally {
      await raw.close();
    }
  }

  it('drops notifications that arrive out of order', () =>
    withRawObserved('raw', async ({ raw, listener, notification }) => {
      await raw.send(notification(1, 500, 12, 2), port);
      await raw.send(notification(1, 501, 11, 99), port); // older than 12: dropped
      await raw.send(notification(1, 502, 13, 3), port);
      await listener.until((e) => e.notifications.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(listener.events.notifications.map((n) => n.records[0].value), [2, 3]);
    }));

  it('acknowledges a repeated confirmable notification again and delivers it once', () =>
    withRawObserved('repeater', async ({ raw, listener, notification }) => {
      // The same CON notification three times, as a device sends it when our acknowledgements are lost.
      const repeated = notification(0, 900, 2, 21);
      for (let i = 0; i < 3; i++) {
        const ack = decode(await raw.exchange(repeated, port));
        assert.deepEqual([ack.type, ack.code, ack.messageId], [2, 0, 900]);
      }
      await listener.until((e) => e.notifications.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(listener.events.notifications.map((n) => n.records[0].value), [21]);
    }));

  it('re-establishes observations when the device registers again', async () => {
    const d = await device('phoenix');
    await d.register();
    const listener = collector();
    await server.observe('phoenix', new ObserveRequest(P('/3303/0/5700')), listener);
    await d.stop();
    const again = await device('phoenix');
    await again.register();
    await listener.until(() => again.observations.length === 1);
    await again.setResource('/3303/0/5700', 40);
    await listener.until((e) => e.notifications.some((n) => n.records[0].value === 40));
    assert.equal(server.observations.size, 1);
  });

  it('ends observations on re-registration when re-observing is off', async () => {
    await server.stop();
    await startServer({ reobserve: false });
    const d = await device('once');
    await d.register();
    const listener = collector();
    await server.observe('once', new ObserveRequest(P('/3303/0/5700')), listener);
    await d.register();
    await listener.until((e) => e.ended.length === 1);
    assert.deepEqual(listener.events.ended, ['re-registered']);
    assert.equal(server.observations.size, 0);
  });

  it('cleans up observations on de-registration and expiry', async () => {
    const a = await device('leaves');
    const b = await device('expires', { lifetime: 1 });
    await a.register();
    await b.register();
    const la = collector();
    const lb = collector();
    await server.observe('leaves', new ObserveRequest(P('/3303/0/5700')), la);
    await server.observe('expires', new ObserveRequest(P('/3303/0/5700')), lb);
    await a.deregister();
    await la.until((e) => e.ended.length === 1);
    await lb.until((e) => e.ended.length === 1, 3000);
    assert.deepEqual([la.events.ended, lb.events.ended], [['deregistered'], ['expired']]);
    assert.equal(server.observations.size, 0);
    await b.setResource('/3303/0/5700', 1);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.deepEqual(b.observations, [], 'the expired device got a Reset');
  });

  it('follows a device to its new address after an Update', async () => {
    const d = await device('mover');
    const location = await d.register();
    const listener = collector();
    await server.observe('mover', new ObserveRequest(P('/3303/0/5700')), listener);
    // The same device now talks from another socket (NAT rebinding): its update and notifications come from there.
    const moved = await device('mover-socket');
    moved.objects.get(3303).get(0).set(5700, 0);
    await moved.send(2, location, {});
    const observer = [...d['observers'].values()][0];
    moved['observers'].set(observer.token.toString('hex'), { ...observer, sequence: 5 });
    await moved.setResource('/3303/0/5700', 77);
    await listener.until((e) => e.notifications.some((n) => n.records[0].value === 77));
  });

  it('ends an observation the device answers with an error', async () => {
    const d = await device('refuser');
    await d.register();
    await assert.rejects(server.observe('refuser', new ObserveRequest(P('/3303/0/9999')), collector()), /4\.04/);
    assert.equal(server.observations.size, 0);
  });

  it('leaves nothing behind when the first answer does not decode: the device is told to cancel, later notifications get a Reset', async () => {
    const raw = await RawDevice.register(port, 'undecodable');
    try {
      const pending = server.observe('undecodable', new ObserveRequest(P('/3/0')), collector());
      const request = await raw.next();
      // The device accepts the observation (Observe 5), but its TLV runs past its end.
      await raw.reply(request, { code: 69, options: [{ number: OPT.Observe, value: uint(5) }, { number: OPT.ContentFormat, value: uint(11542) }], payload: Buffer.from('c8001441', 'hex') });
      await assert.rejects(pending, (error) => error.kind === 'invalid-response' && /runs past the end/.test(error.message) && /observation was not kept and is cancelled at the device/.test(error.message));
      assert.equal(server.observations.size, 0);
      assert.deepEqual(server.observations.persisted(), []);
      // GET with Observe=1 and the same token (RFC 7641 section 3.6).
      const cancel = await raw.next();
      assert.equal(cancel.code, 1);
      assert.equal(uintOf(optionValue(cancel, OPT.Observe)), 1);
      assert.deepEqual(cancel.token, request.token);
      await raw.reply(cancel, { code: 69, payload: Buffer.from('x') });
      // A notification sent before the device saw the cancel: a Reset.
      await raw.send({ type: 1, code: 69, messageId: 0x6001, token: request.token, options: [{ number: OPT.Observe, value: uint(6) }], payload: Buffer.from('x') });
      const reset = await raw.next();
      assert.deepEqual([reset.type, reset.messageId], [3, 0x6001]);
    } finally {
      await raw.close();
    }
  });

  it('counts the sequence number of the answer that established the observation (RFC 7641 section 3.4)', async () => {
    const raw = await RawDevice.register(port, 'sequenced');
    try {
      const listener = collector();
      const pending = server.observe('sequenced', new ObserveRequest(P('/3303/0/5700')), listener);
      const request = await raw.next();
      await raw.reply(request, { code: 69, options: [{ number: OPT.Observe, value: uint(20) }], payload: Buffer.from('20') });
      const { first } = await pending;
      assert.equal(first.sequence, 20);
      const notify = (messageId, sequence, value) => raw.send({ type: 1, code: 69, messageId, token: request.token, options: [{ number: OPT.Observe, value: uint(sequence) }], payload: Buffer.from(String(value)) });
      await notify(0x6100, 12, 12); // older than the first answer: dropped
      await notify(0x6101, 21, 21);
      await listener.until((e) => e.notifications.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(listener.events.notifications.map((n) => n.sequence), [21]);
    } finally {
      await raw.close();
    }
  });

  it('reports a notification that does not decode, and keeps observing', async () => {
    const d = await device('garbled');
    await d.register();
    const listener = collector();
    await server.observe('garbled', new ObserveRequest(P('/3303/0/5700')), listener);
    d.objects.get(3303).get(0).set(5700, 'hot');
    await d.notify(P('/3303/0/5700'));
    await listener.until((e) => e.errors.length === 1);
    assert.match(String(listener.events.errors[0]), /notification of \/3303\/0\/5700 from garbled: .*not a number/);
    await d.setResource('/3303/0/5700', 5);
    await listener.until((e) => e.notifications.length === 1);
  });

  describe('Send', () => {
    for (const format of [110, 112, 11544]) {
      it(`delivers values a device sends in ${format}`, async () => {
        const d = await device('sender');
        await d.register();
        const sent = once(server, 'send');
        const response = await d.sendValues(['/3303/0/5700', '/3/0/9'], format);
        assert.equal(response.code, 68);
        const [registration, records, contentFormat] = await sent;
        assert.equal(registration.endpoint, 'sender');
        assert.equal(contentFormat, format);
        assert.deepEqual(recordsToPayload(records, Lwm2mPath.ROOT), { 3: { 0: { 9: 100 } }, 3303: { 0: { 5700: 21.5 } } });
      });
    }

    it('refuses Send from an unregistered device, in another format, or with bad content', async () => {
      const d = await device('stranger');
      assert.equal((await d.sendValues(['/3/0/9'])).code, 131); // 4.03
      await d.register();
      assert.equal((await d.send(2, '/dp', { payload: Buffer.from('21'), contentFormat: 0 })).code, 143); // 4.15
      const bad = await d.send(2, '/dp', { payload: Buffer.from('[{"n":"/3/0/9","v":"x"}]'), contentFormat: 110 });
      assert.equal(bad.code, 128); // 4.00
      assert.match(bad.payload.toString(), /must be a number/);
      assert.equal((await d.send(1, '/dp', {})).code, 133); // 4.05
    });
  });

  describe('queue mode', () => {
    beforeEach(async () => {
      await server.stop();
      await startServer({ awakeTimeMs: 300 });
    });

    it('tracks awake and sleeping, holds requests while asleep and sends them in order on wake-up', async () => {
      const d = await device('sleepy', { binding: 'U', queueMode: true });
      const awake = once(server, 'awake');
      await d.register();
      await awake;
      const [sleeping] = await once(server, 'sleeping', 2000);
      assert.equal(sleeping.endpoint, 'sleepy');
      assert.equal(server.presence.isAwake('sleepy'), false);
      const before = d.received.length;
      const reads = [server.send('sleepy', new ReadRequest(P('/3/0/9'))), server.send('sleepy', new ReadRequest(P('/3303/0/5700')))];
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(d.received.length, before, 'nothing is sent to a sleeping device');
      const woke = once(server, 'awake');
      await d.update();
      await woke;
      const [battery, temperature] = await Promise.all(reads);
      assert.equal(battery.records[0].value, 100);
      assert.equal(temperature.records[0].value, 21.5);
      assert.deepEqual(d.received.slice(before).map((r) => r.path), ['/3/0/9', '/3303/0/5700']);
    });

    it('fails a request whose time to live runs out while the device sleeps', async () => {
      const d = await device('deep-sleeper', { queueMode: true });
      await d.register();
      await once(server, 'sleeping', 2000);
      const started = Date.now();
      const first = assert.rejects(server.send('deep-sleeper', new ReadRequest(P('/3/0/9')), { ttlMs: 400 }), (error) => error.kind === 'timeout');
      const second = assert.rejects(server.send('deep-sleeper', new ReadRequest(P('/3/0/9')), { ttlMs: 200 }), (error) => error.kind === 'timeout' && /did not wake up/.test(error.message));
      await Promise.all([first, second]);
      assert.ok(Date.now() - started < 1000);
      assert.equal(d.received.length, 0);
    });

    it('wakes on a notification and on Send', async () => {
      const d = await device('notifier', { queueMode: true });
      await d.register();
      const listener = collector();
      await server.observe('notifier', new ObserveRequest(P('/3303/0/5700')), listener);
      await once(server, 'sleeping', 2000);
      let woke = once(server, 'awake');
      await d.setResource('/3303/0/5700', 9);
      await woke;
      await once(server, 'sleeping', 2000);
      woke = once(server, 'awake');
      await d.sendValues(['/3/0/9']);
      await woke;
    });

    it('fails waiting requests when the device de-registers', async () => {
      const d = await device('quitter', { queueMode: true });
      await d.register();
      await once(server, 'sleeping', 2000);
      const pending = assert.rejects(server.send('quitter', new ReadRequest(P('/3/0/9'))), (error) => error.kind === 'unknown-endpoint');
      await new Promise((resolve) => setTimeout(resolve, 50));
      await d.send(4, d.registrationLocation, {});
      await pending;
    });
  });
});
