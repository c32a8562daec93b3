'use strict';
const assert = require('node:assert/strict');
const http = require('node:http');
const cbor = require('cbor');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { Lwm2mIpe, parseCommand } = require('../dist/lib/onem2m/ipe');
const { lwm2mCodeFor, describeOutcome } = require('../dist/lib/onem2m/response-codes');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { FakeCse, createCommand } = require('./support/fake-cse');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };

/** An HTTP endpoint for the CSE's notifications, answering what the IPE says. */
async function notificationReceiver(ipe) {
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const rsc = ipe.current.handleNotification(body);
      response.writeHead(200, { 'X-M2M-RSC': String(rsc) });
      response.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/notify` };
}

describe('oneM2M interworking (IPE, TS-0014)', function () {
  this.timeout(20_000);
  let cse;
  let server;
  let ipe;
  let receiver;
  const holder = {};
  const devices = [];
  const events = [];

  async function start(options = {}) {
    cse = await FakeCse.start();
    server = new Lwm2mServer({ address: '127.0.0.1', port: 0, transmission: FAST });
    await server.start();
    receiver = await notificationReceiver(holder);
    ipe = new Lwm2mIpe(server, { cseUrl: cse.url, originator: 'CAdmin', notificationUrl: receiver.url, ...options });
    holder.current = ipe;
    for (const event of ['mirrored', 'failed', 'command', 'reachability']) ipe.on(event, (...args) => events.push([event, ...args]));
    ipe.start();
  }

  async function device(endpoint, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: server.coap.plain.address.port }, transmission: FAST, lifetime: 300, ...options });
    await d.start();
    devices.push(d);
    return d;
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    ipe?.stop();
    await server?.stop();
    await cse?.stop().catch(() => undefined);
    await new Promise((resolve) => receiver?.server.close(resolve));
    events.length = 0;
  });

  it('mirrors a registration as <node>, <AE> and a labelled <container> per object and instance, over the HTTP binding', async () => {
    await start();
    const meter = await device('urn:dev:meter-7');
    await meter.register();
    await ipe.idle();
    const node = cse.get('cse-in/dev:meter-7-node');
    const ae = cse.get('cse-in/dev:meter-7');
    assert.equal(node.ni, 'dev:meter-7');
    assert.deepEqual([ae.aei, ae.rn, ae.nl, ae.lbl[0]], ['Cdev:meter-7', 'dev:meter-7', node.ri, 'LWM2M Client: 1.1']);
    assert.match(ae.et, /^\d{8}T\d{6}$/);
    const device3 = cse.get('cse-in/dev:meter-7/3/0');
    assert.deepEqual(device3.lbl, ['LWM2MRT:urn:oma:lwm2m:oma:3', 'LWM2MPTH:/', 'LWM2MURI:/3/0', device3.lbl[3]]);
    assert.match(device3.lbl[3], /^LWM2MCT:.*application\/vnd\.oma\.lwm2m\+tlv/);
    assert.ok(cse.get('cse-in/dev:meter-7/3'));
    assert.ok(cse.get('cse-in/dev:meter-7/3303/0'));
    assert.ok(cse.get('cse-in/dev:meter-7/commands/lwm2m-ipe'), 'subscribed to its command container');
    // The binding's headers on every request.
    const creates = cse.requests.filter((r) => r.method === 'POST');
    assert.ok(creates.every((r) => r.rsc === 2001 && r.contentType === `application/json;ty=${r.ty}` && r.rvi === '3' && r.ri));
    assert.equal(new Set(cse.requests.map((r) => r.ri)).size, cse.requests.length, 'a request id per request');
    assert.equal(creates.find((r) => r.ty === 2).origin, 'Cdev:meter-7');
    assert.equal(creates.find((r) => r.ty === 14).origin, 'CAdmin');
  });

  it('follows updates (expiration, added and removed objects) and removes everything on de-registration and expiry', async () => {
    await start();
    const meter = await device('meter-8');
    await meter.register();
    await ipe.idle();
    const before = cse.get('cse-in/meter-8').et;
    meter.objects.get(3303).delete(0);
    meter.objects.set(3311, new Map([[0, new Map([[5850, true]])]]));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await meter.update({ lt: 600 }, true);
    await ipe.idle();
    assert.ok(cse.get('cse-in/meter-8').et > before);
    assert.equal(cse.get('cse-in/meter-8/3303/0'), undefined);
    assert.ok(cse.get('cse-in/meter-8/3311/0'));
    await meter.deregister();
    await ipe.idle();
    assert.equal(cse.get('cse-in/meter-8'), undefined);
    assert.equal(cse.get('cse-in/meter-8-node'), undefined);
    assert.deepEqual([...cse.resources.keys()], ['cse-in']);

    const brief = await device('brief', { lifetime: 1 });
    await brief.register();
    await ipe.idle();
    assert.ok(cse.get('cse-in/brief'));
    await until(() => events.some(([event, endpoint, what]) => event === 'mirrored' && endpoint === 'brief' && what === 'expire'));
    assert.equal(cse.get('cse-in/brief'), undefined);
    assert.equal(cse.get('cse-in/brief-node'), undefined);
  });

  it('re-creates an AE the CSE already has (4105), as a De-register before the Register', async () => {
    await start();
    const first = await device('again');
    await first.register();
    await ipe.idle();
    ipe.stop();
    // A new IPE (a restart) meets the AE and node left in the CSE.
    ipe = new Lwm2mIpe(server, { cseUrl: cse.url, originator: 'CAdmin', notificationUrl: receiver.url });
    holder.current = ipe;
    cse.requests.length = 0;
    ipe.start();
    await ipe.idle();
    const trail = cse.requests.filter((r) => (r.method === 'DELETE' && r.path === 'cse-in/again') || (r.method === 'POST' && r.ty === 2)).map((r) => `${r.method} ${r.rsc}`);
    assert.deepEqual(trail, ['POST 4105', 'DELETE 2002', 'POST 2001']);
    assert.ok(cse.get('cse-in/again/3/0'));
  });

  it('stores Send data and notifications as encapsulated contentInstances (transparent mode)', async () => {
    await start({ observe: ['/3303/0/5700'] });
    const sensor = await device('sensor-1');
    await sensor.register();
    await until(() => server.observations.list('sensor-1').length === 1);
    await sensor.setResource('/3303/0/5700', 23.5);
    await sensor.sendValues(['/3303/0/5700'], 112);
    await until(async () => {
      await ipe.idle();
      return cse.children('cse-in/sensor-1/send').length === 1 && cse.children('cse-in/sensor-1/3303/0').filter((r) => r.ty === 4).length >= 2;
    });
    const sent = cse.children('cse-in/sensor-1/send')[0];
    assert.equal(sent.cnf, 'application/senml+cbor:1');
    assert.deepEqual(sent.lbl, ['LWM2M-Object-Encapsulation', 'LWM2MURI:/3303/0/5700']);
    const decoded = cbor.decodeFirstSync(Buffer.from(sent.con, 'base64'));
    assert.equal(decoded[0].get(2), 23.5, 'SenML CBOR value (key 2) as the device sent it');
    const notified = cse.children('cse-in/sensor-1/3303/0').filter((r) => r.ty === 4).at(-1);
    assert.deepEqual(notified.lbl, ['LWM2M-Object-Encapsulation', 'LWM2MURI:/3303/0/5700']);
    assert.equal(notified.cnf, 'text/plain:0');
    assert.equal(notified.con, '23.5');
  });

  it('keeps a container per resource with decoded values (semantic mode)', async () => {
    await start({ mode: 'semantic', observe: ['/3303/0'] });
    const sensor = await device('sensor-2');
    await sensor.register();
    await until(() => server.observations.list('sensor-2').length === 1);
    await sensor.setResource('/3303/0/5700', 19.25);
    await until(async () => {
      await ipe.idle();
      return cse.children('cse-in/sensor-2/3303/0/5700').some((r) => r.con === '19.25');
    });
    const container = cse.get('cse-in/sensor-2/3303/0/5700');
    assert.deepEqual(container.lbl, ['LWM2MURI:/3303/0/5700', 'LWM2MRN:Sensor Value']);
    const value = cse.children('cse-in/sensor-2/3303/0/5700').at(-1);
    assert.deepEqual(value.lbl, ['LWM2MURI:/3303/0/5700', 'LWM2MTYPE:float']);
    assert.equal(cse.children('cse-in/sensor-2/3303/0').some((r) => r.ty === 4 && r.lbl.includes('LWM2M-Object-Encapsulation')), false, 'no encapsulated copies in semantic mode');
  });

  it('turns commands written by a oneM2M application into read, write and execute, and writes the results back', async () => {
    await start({ mode: 'both' });
    const meter = await device('meter-9');
    await meter.register();
    await ipe.idle();
    const results = () => cse.children('cse-in/meter-9/results').map((r) => JSON.parse(r.con));
    assert.equal(await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'r1', operation: 'read', path: '/3/0/0' }), 2001);
    await until(() => results().length === 1);
    assert.deepEqual(results()[0], { id: 'r1', operation: 'read', path: '/3/0/0', code: '2.05', value: 'Node-RED LwM2M' });
    await until(async () => {
      await ipe.idle();
      return cse.children('cse-in/meter-9/3/0/0').some((r) => r.con === 'Node-RED LwM2M');
    });
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'w1', operation: 'write', path: '/1/0/1', value: 120 });
    await until(() => results().length === 2);
    assert.deepEqual(results()[1], { id: 'w1', operation: 'write', path: '/1/0/1', code: '2.04' });
    assert.equal(meter.getResource('/1/0/1'), 120);
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'x1', operation: 'execute', path: '/3/0/4' });
    await until(() => results().length === 3);
    assert.equal(results()[2].code, '2.04');
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'bad', operation: 'read', path: '/3/0/77' });
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { operation: 'reboot', path: '/3/0/4' });
    await until(() => results().length === 5);
    assert.deepEqual([results()[3].id, results()[3].code], ['bad', '4.04']);
    assert.match(results()[4].error, /operation must be read, write or execute/);
    assert.equal(events.filter(([event]) => event === 'command').length, 5);
  });

  it('queues everything while the CSE is unreachable, retries, and mirrors it in order once it answers', async () => {
    await start();
    await cse.stop();
    const first = await device('offline-1');
    await first.register();
    const second = await device('offline-2');
    await second.register();
    await second.deregister();
    await until(() => events.some(([event, reachable]) => event === 'reachability' && reachable === false));
    assert.ok(ipe.queued >= 3);
    assert.equal(ipe.reachable, false);
    await cse.restart();
    await until(() => ipe.queued === 0, 10_000);
    await ipe.idle();
    assert.ok(events.some(([event, reachable]) => event === 'reachability' && reachable === true));
    assert.ok(cse.get('cse-in/offline-1/3/0'));
    assert.equal(cse.get('cse-in/offline-2'), undefined, 'registered then removed, in that order');
    assert.deepEqual(events.filter(([event]) => event === 'failed'), []);
  });

  it('reports what the CSE refuses, with the oneM2M code and the LwM2M code it maps to', async () => {
    await start();
    // The application's own AE took the name: the IPE's originator may not delete it (4103) to re-create it.
    await createAe(cse, 'Cother', 'taken');
    const d = await device('taken');
    await d.register();
    await ipe.idle();
    const failure = events.find(([event]) => event === 'failed');
    assert.deepEqual(failure.slice(1, 3), ['taken', 'register']);
    assert.match(failure[3], /4103 Originator Has No Privilege \(LwM2M 4\.00 Bad Request\)/);
    assert.equal(lwm2mCodeFor('register', 2001), '2.01 Created');
    assert.equal(lwm2mCodeFor('register', 4105), '4.03 Forbidden');
    assert.equal(lwm2mCodeFor('update', 4004), '4.04 Not Found');
    assert.equal(lwm2mCodeFor('deregister', 2002), '2.02 Deleted');
    assert.equal(describeOutcome(4105), '4105 Conflict');
  });

  it('reads commands strictly', () => {
    assert.deepEqual(parseCommand('{"operation":"write","path":"/1/0/1","value":5,"id":7}'), { operation: 'write', path: '/1/0/1', id: '7', value: 5 });
    for (const bad of ['nope', '[]', '{"operation":"read"}', '{"operation":"delete","path":"/3"}', { operation: 'read', path: 3 }, null]) {
      assert.throws(() => parseCommand(bad), { name: 'ContentError' });
    }
  });
});

function createAe(cse, originator, rn) {
  const payload = Buffer.from(JSON.stringify({ 'm2m:ae': { rn, api: 'Napp', rr: false, srv: ['3'] } }));
  return new Promise((resolve, reject) => {
    const request = http.request(`http://127.0.0.1:${cse.port}/cse-in`, {
      method: 'POST',
      headers: { 'X-M2M-Origin': originator, 'X-M2M-RI': 'x', 'X-M2M-RVI': '3', 'Content-Type': 'application/json;ty=2', 'Content-Length': payload.length },
    }, (response) => {
      response.resume();
      response.on('end', () => resolve(Number(response.headers['x-m2m-rsc'])));
    });
    request.on('error', reject);
    request.end(payload);
  });
}
