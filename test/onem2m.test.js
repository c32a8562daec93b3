'use strict';
// The IPE against test/support/fake-cse.js, for what IoTKETI Mobius (test/interop-mobius.test.js)
// cannot show or only slowly: the exact requests, contents kept as JSON numbers (Mobius stores
// every number as text), a busy CSE (HTTP 503), chosen 5xxx and 4xxx answers, subscription
// verification, every branch of the notification check, and the name mapping over any text.
const assert = require('node:assert/strict');
const http = require('node:http');
const cbor = require('cbor');
const fc = require('fast-check');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { Lwm2mIpe } = require('../dist/lib/onem2m/ipe');
const { parseCommand, commandId } = require('../dist/lib/onem2m/commands');
const { aeIdOf, endpointOf, nodeIdOf, nodeNameOf, resourceNameOf } = require('../dist/lib/onem2m/names');
const { lwm2mCodeFor, describeOutcome, httpStatusFor } = require('../dist/lib/onem2m/response-codes');
const { valueInstance } = require('../dist/lib/onem2m/resources');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { FakeCse, createCommand } = require('./support/fake-cse');
const { until } = require('./support/wait');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };
const RETRY = { firstMs: 50, maxMs: 400, answerMs: 50 };
/** TS-0004 unreserved characters: all a resource name may hold. */
const UNRESERVED = /^[A-Za-z0-9._~-]+$/;

/** An HTTP endpoint for the CSE's notifications, answering what the IPE says. */
async function notificationReceiver(holder) {
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
      const secret = request.url.split('/').at(-1);
      const rsc = holder.current.handleNotification({ secret, originator: request.headers['x-m2m-origin'], requestId: request.headers['x-m2m-ri'], body });
      response.writeHead(httpStatusFor(rsc), { 'X-M2M-RSC': String(rsc) });
      response.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/notify` };
}

describe('oneM2M names: endpoint names as resource names and AE-IDs', () => {
  it('maps TS-0014\'s URN case and other names to unreserved names, and back', () => {
    assert.equal(resourceNameOf('urn:imei:490154203237518'), 'imei_3A490154203237518');
    assert.equal(aeIdOf('urn:imei:490154203237518'), 'Cimei_3A490154203237518');
    assert.equal(nodeNameOf('urn:imei:490154203237518'), 'imei_3A490154203237518_n');
    assert.equal(nodeIdOf('urn:imei:490154203237518'), 'imei:490154203237518');
    assert.equal(resourceNameOf('meter-7.b'), 'meter-7.b');
    assert.equal(resourceNameOf('dev:1'), 'dev_3a1', 'a colon outside a URN in lower case');
    assert.equal(resourceNameOf('urn:dev:1'), 'dev_3A1');
    assert.equal(resourceNameOf('a_b~c/d é'), 'a_5fb_7ec_2fd_20_c3_a9');
    assert.equal(resourceNameOf('urn:nonsense'), 'urn_3anonsense', 'no NSS: not a URN');
    for (const name of ['urn:imei:490154203237518', 'dev:1', 'urn:dev:1', 'a_b~c/d é', 'Cmeter', 'meter', 'x_n']) assert.equal(endpointOf(resourceNameOf(name)), name);
    for (const foreign of ['x_n', 'a_zz', 'a_3A_3a', 'a_', '', 'a/b', 'dev_3a1_3A']) assert.equal(endpointOf(foreign), undefined, foreign);
  });

  it('keeps any two names apart, and the names of nodes apart from those of AEs (property)', () => {
    const name = fc.oneof(fc.fullUnicodeString({ minLength: 1, maxLength: 20 }), fc.fullUnicodeString({ maxLength: 12 }).map((s) => `urn:${s}`), fc.stringOf(fc.constantFrom('u', 'r', 'n', ':', '_', '3', 'A', 'a', 'C'), { minLength: 1, maxLength: 10 }));
    fc.assert(
      fc.property(name, name, (a, b) => {
        for (const n of [a, b]) {
          assert.match(resourceNameOf(n), UNRESERVED);
          assert.match(aeIdOf(n), UNRESERVED);
          assert.equal(endpointOf(resourceNameOf(n)), n);
          assert.equal(endpointOf(nodeNameOf(n)), undefined);
        }
        if (a !== b) {
          assert.notEqual(resourceNameOf(a), resourceNameOf(b));
          assert.notEqual(aeIdOf(a), aeIdOf(b));
        }
        assert.notEqual(nodeNameOf(a), resourceNameOf(b));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('oneM2M interworking (IPE, TS-0014) against the fake CSE', function () {
  this.timeout(20_000);
  let cse;
  let server;
  let ipe;
  let receiver;
  const holder = {};
  const devices = [];
  const events = [];

  function newIpe(options = {}) {
    ipe = new Lwm2mIpe(server, { cseUrl: cse.url, originator: 'CAdmin', notificationUrl: receiver.url, retry: RETRY, ...options });
    holder.current = ipe;
    for (const event of ['mirrored', 'failed', 'command', 'reachability']) ipe.on(event, (...args) => events.push([event, ...args]));
    return ipe;
  }

  async function start(options = {}) {
    cse = cse ?? (await FakeCse.start());
    server = new Lwm2mServer({ address: '127.0.0.1', port: 0, transmission: FAST });
    await server.start();
    receiver = await notificationReceiver(holder);
    newIpe(options).start();
  }

  async function device(endpoint, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: server.coap.plain.address.port }, transmission: FAST, lifetime: 300, ...options });
    await d.start();
    devices.push(d);
    return d;
  }

  async function registered(endpoint, options) {
    const d = await device(endpoint, options);
    await d.register();
    await until(() => events.some(([event, ep, what]) => event !== 'command' && ep === endpoint && (what === 'register' || what === 'adopt')), 5000, `${endpoint} handled`);
    await ipe.idle();
    return d;
  }

  const failures = () => events.filter(([event]) => event === 'failed');

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    ipe?.stop();
    await server?.stop();
    await cse?.stop().catch(() => undefined);
    cse = undefined;
    await new Promise((resolve) => receiver?.server.close(resolve));
    events.length = 0;
  });

  it('mirrors a registration as <node>, <AE> and containers labelled as TS-0014 6.3.2 says, over the HTTP binding', async () => {
    await start();
    const meter = await device('urn:dev:meter-7');
    const links = meter.objectLinks.bind(meter);
    meter.objectLinks = () => links().replace('</3303/0>', '</3303/0>;rt="urn:oma:lwm2m:ext:3303"');
    await meter.register();
    await until(() => cse.get('cse-in/dev_3Ameter-7/commands/lwm2m-ipe') !== undefined);
    await ipe.idle();
    const node = cse.get('cse-in/dev_3Ameter-7_n');
    const ae = cse.get('cse-in/dev_3Ameter-7');
    assert.equal(node.ni, 'dev:meter-7');
    assert.deepEqual([ae.aei, ae.rn, ae.nl, ae.lbl], ['Cdev_3Ameter-7', 'dev_3Ameter-7', node.ri, ['LWM2M Client: 1.1', 'LWM2M-Endpoint:urn:dev:meter-7', 'LWM2M-IPE:CAdmin']]);
    assert.match(ae.et, /^\d{8}T\d{6}$/);
    const device3 = cse.get('cse-in/dev_3Ameter-7/3/0');
    const labels = ['LWM2MRT:urn:oma:lwm2m:oma:3', 'LWM2MPTH:/', 'LWM2MURI:/3/0', 'LWM2MCT:TEXT,OPAQUE,CBOR,SENML+JSON,SENML+CBOR,LWM2M+TLV,LWM2M+JSON,LWM2M+CBOR'];
    assert.deepEqual(device3.lbl, labels);
    // Mobius keeps a resource's labels as indented JSON in 200 characters.
    assert.ok(JSON.stringify(labels, null, 4).length <= 200);
    assert.equal(device3.et, ae.et, 'the lifetime is the container\'s expirationTime (table 6.3.2.2-3)');
    assert.equal(cse.get('cse-in/dev_3Ameter-7/3303/0').or, 'urn:oma:lwm2m:ext:3303', 'ontologyRef from the link\'s rt');
    assert.equal(cse.get('cse-in/dev_3Ameter-7/3/0').or, undefined);
    assert.ok(cse.get('cse-in/dev_3Ameter-7/3'));
    // The binding's headers on every request.
    const creates = cse.requests.filter((r) => r.method === 'POST');
    assert.ok(creates.every((r) => r.rsc === 2001 && r.contentType === `application/json;ty=${r.ty}` && r.rvi === '3' && r.ri));
    assert.equal(new Set(cse.requests.map((r) => r.ri)).size, cse.requests.length, 'a request id per request');
    assert.equal(creates.find((r) => r.ty === 2).origin, 'Cdev_3Ameter-7');
    assert.equal(creates.find((r) => r.ty === 14).origin, 'CAdmin');
    assert.match(cse.get('cse-in/dev_3Ameter-7/commands/lwm2m-ipe').nu[0], new RegExp(`^${receiver.url}/[A-Za-z0-9_-]{22}$`), 'a secret per subscription');
    assert.equal(ipe.health().mirrored, 1);
  });

  it('follows updates: the AE, a <node> the CSE lost, the containers\' lifetime and objects; removes everything on de-registration and expiry', async () => {
    await start();
    const meter = await registered('meter-8');
    const before = cse.get('cse-in/meter-8/3/0').et;
    cse.resources.delete('cse-in/meter-8_n');
    meter.objects.get(3303).delete(0);
    meter.objects.set(3311, new Map([[0, new Map([[5850, true]])]]));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await meter.update({ lt: 600 }, true);
    await until(() => events.some(([event, , what]) => event === 'mirrored' && what === 'update'));
    const node = cse.get('cse-in/meter-8_n');
    assert.ok(node, 'the <node> made again');
    assert.equal(cse.get('cse-in/meter-8').nl, node.ri, 'and the AE linked to it');
    assert.ok(cse.get('cse-in/meter-8/3/0').et > before, 'the container\'s expirationTime moved with the lifetime');
    assert.equal(cse.get('cse-in/meter-8/3/0').et, cse.get('cse-in/meter-8').et);
    assert.equal(cse.get('cse-in/meter-8/3303/0'), undefined);
    assert.ok(cse.get('cse-in/meter-8/3311/0'));
    await meter.deregister();
    await until(() => cse.get('cse-in/meter-8') === undefined);
    await ipe.idle();
    assert.equal(cse.get('cse-in/meter-8_n'), undefined);
    assert.deepEqual([...cse.resources.keys()], ['cse-in']);
    assert.equal(ipe.health().mirrored, 0);

    await registered('brief', { lifetime: 1 });
    assert.ok(cse.get('cse-in/brief'));
    await until(() => events.some(([event, endpoint, what]) => event === 'mirrored' && endpoint === 'brief' && what === 'expire'));
    assert.equal(cse.get('cse-in/brief'), undefined);
    assert.equal(cse.get('cse-in/brief_n'), undefined);
  });

  it('deletes and creates a device that registers again (TS-0014 6.2.2.4)', async () => {
    await start();
    const again = await registered('again');
    const container = cse.get('cse-in/again/3/0').ri;
    cse.requests.length = 0;
    await again.register();
    await until(() => events.filter(([event, endpoint, what]) => event === 'mirrored' && endpoint === 'again' && what === 'register').length === 2);
    await ipe.idle();
    const trail = cse.requests.filter((r) => (r.method === 'DELETE' && r.path === 'cse-in/again') || (r.method === 'POST' && r.ty === 2)).map((r) => `${r.method} ${r.rsc}`);
    assert.deepEqual(trail, ['POST 4105', 'DELETE 2002', 'POST 2001']);
    assert.notEqual(cse.get('cse-in/again/3/0').ri, container);
  });

  it('takes over what the CSE has after a restart: no AE deleted or made again, values and subscriptions kept; only the AEs of gone endpoints are deleted', async () => {
    await start({ observe: ['/3303/0/5700'] });
    await registered('stays');
    await until(() => cse.children('cse-in/stays/3303/0').some((r) => r.ty === 4));
    const value = cse.children('cse-in/stays/3303/0').find((r) => r.ty === 4);
    const ae = cse.get('cse-in/stays');
    const subscription = cse.get('cse-in/stays/commands/lwm2m-ipe');
    // Left by this IPE (its label) for an endpoint no longer registered; one of another IPE; an application's AE.
    cse.resources.set('cse-in/gone', { ty: 2, attrs: { rn: 'gone', ri: 'Cgone', aei: 'Cgone', ty: 2, lbl: ['LWM2M-IPE:CAdmin'] }, owner: 'Cgone' });
    cse.resources.set('cse-in/gone_n', { ty: 14, attrs: { rn: 'gone_n', ri: '14gone', ty: 14, lbl: ['LWM2M-IPE:CAdmin'] }, owner: 'CAdmin' });
    cse.resources.set('cse-in/theirs', { ty: 2, attrs: { rn: 'theirs', ri: 'Ctheirs', aei: 'Ctheirs', ty: 2, lbl: ['LWM2M-IPE:elsewhere'] }, owner: 'Ctheirs' });
    cse.resources.set('cse-in/app', { ty: 2, attrs: { rn: 'app', ri: 'Capp', aei: 'Capp', ty: 2 }, owner: 'Capp' });
    ipe.stop();
    cse.requests.length = 0;
    events.length = 0;
    newIpe({ observe: ['/3303/0/5700'] }).start();
    await until(() => events.some(([event, endpoint, what]) => event === 'mirrored' && endpoint === 'stays' && what === 'adopt'));
    await until(() => events.some(([event, endpoint, what]) => event === 'mirrored' && endpoint === 'gone' && what === 'delete stale'));
    await ipe.idle();
    assert.deepEqual(failures(), []);
    assert.equal(cse.requests.some((r) => r.rsc === 4105), false, 'nothing created twice');
    assert.deepEqual(cse.requests.filter((r) => r.method === 'DELETE').map((r) => r.path).sort(), ['cse-in/gone', 'cse-in/gone_n']);
    assert.equal(cse.get('cse-in/stays'), ae);
    assert.ok(cse.get(`cse-in/stays/3303/0/${value.rn}`), 'the stored value is kept');
    assert.equal(cse.get('cse-in/stays/commands/lwm2m-ipe'), subscription, 'the subscription taken over, with its secret');
    assert.ok(cse.get('cse-in/theirs') && cse.get('cse-in/app'));
    assert.equal(ipe.health().mirrored, 1);
    // Its commands still arrive.
    await createCommand(cse, 'cse-in/stays', 'CAdmin', { id: 'after', operation: 'read', path: '/3/0/9' });
    await until(() => events.some(([event, , result]) => event === 'command' && result.id === 'after'));
  });

  it('stores Send data and notifications as they came (transparent mode), base64 with contentInfo ":2"', async () => {
    await start({ observe: ['/3303/0/5700'] });
    const sensor = await registered('sensor-1');
    await until(() => server.observations.list('sensor-1').length === 1);
    await sensor.setResource('/3303/0/5700', 23.5);
    await sensor.sendValues(['/3303/0/5700'], 112);
    await until(() => cse.children('cse-in/sensor-1/send').length === 1 && cse.children('cse-in/sensor-1/3303/0').filter((r) => r.ty === 4).length >= 2);
    const sent = cse.children('cse-in/sensor-1/send')[0];
    assert.equal(sent.cnf, 'application/senml+cbor:2', 'base64 of binary data: TS-0004 6.3.4.2.28 encoding 2');
    assert.deepEqual(sent.lbl, ['LWM2M-Object-Encapsulation', 'LWM2MURI:/3303/0/5700']);
    assert.equal(cbor.decodeFirstSync(Buffer.from(sent.con, 'base64'))[0].get(2), 23.5, 'SenML CBOR value (key 2) as the device sent it');
    const notified = cse.children('cse-in/sensor-1/3303/0').filter((r) => r.ty === 4).at(-1);
    assert.deepEqual([notified.cnf, notified.con], ['text/plain:0', '23.5']);
  });

  it('keeps a container per resource and resource instance with typed values (semantic mode): numbers and booleans as JSON, times as ISO 8601, opaque in base64', async () => {
    await start({ mode: 'semantic', observe: ['/3/0', '/3311/0'] });
    const sensor = await device('sensor-2');
    sensor.objects.set(3311, new Map([[0, new Map([[5850, true]])]]));
    await sensor.register();
    await until(() => cse.children('cse-in/sensor-2/3/0/7/1').length > 0 && cse.children('cse-in/sensor-2/3311/0/5850').length > 0);
    const value = (path) => cse.children(`cse-in/sensor-2/${path}`).at(-1);
    // JSON types kept (Mobius would store "3800": it turns every number into text).
    assert.deepEqual([value('3/0/9').con, value('3/0/9').cnf], [100, 'application/json:0']);
    assert.deepEqual([value('3/0/7/0').con, value('3/0/7/1').con], [3800, 5000], 'a container per resource instance');
    assert.deepEqual(cse.get('cse-in/sensor-2/3/0/7/1').lbl, ['LWM2MURI:/3/0/7/1']);
    assert.deepEqual(value('3/0/7/1').lbl, ['LWM2MURI:/3/0/7/1', 'LWM2MTYPE:integer']);
    assert.equal(value('3/0/13').con, sensor.getResource('/3/0/13').toISOString(), 'a time without extra quotes');
    assert.equal(value('3/0/0').con, 'Node-RED LwM2M');
    assert.equal(value('3311/0/5850').con, true);
    assert.deepEqual(cse.get('cse-in/sensor-2/3/0/9').lbl, ['LWM2MURI:/3/0/9', 'LWM2MRN:Battery Level']);
    assert.equal(cse.children('cse-in/sensor-2/3/0').some((r) => r.ty === 4), false, 'no encapsulated copies in semantic mode');
    await sensor.setResource('/3/0/9', 22.0);
    await until(() => value('3/0/9').con === 22);
    const opaque = valueInstance({ path: Lwm2mPath.parse('/5/0/0'), value: Buffer.from([1, 2, 250]), type: 'opaque' })['m2m:cin'];
    assert.deepEqual([opaque.con, opaque.cnf], ['AQL6', 'application/octet-stream:2']);
  });

  it('runs commands written by a oneM2M application, writes the results back; a refused one keeps its id, a device\'s failure its code', async () => {
    await start({ mode: 'both' });
    const meter = await registered('meter-9');
    const results = () => cse.children('cse-in/meter-9/results').map((r) => JSON.parse(r.con));
    assert.equal(await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'r1', operation: 'read', path: '/3/0/0' }), 2001);
    await until(() => results().length === 1);
    assert.deepEqual(results()[0], { id: 'r1', operation: 'read', path: '/3/0/0', code: '2.05', value: 'Node-RED LwM2M' });
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'w1', operation: 'write', path: '/1/0/1', value: 120 });
    await until(() => results().length === 2);
    assert.deepEqual(results()[1], { id: 'w1', operation: 'write', path: '/1/0/1', code: '2.04' });
    assert.equal(meter.getResource('/1/0/1'), 120);
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'x1', operation: 'execute', path: '/3/0/4' });
    await until(() => results().length === 3);
    assert.equal(results()[2].code, '2.04');
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 'bad', operation: 'read', path: '/3/0/77' });
    await until(() => results().length === 4);
    await createCommand(cse, 'cse-in/meter-9', 'CAdmin', { id: 7, operation: 'reboot', path: '/3/0/4' });
    await until(() => results().length === 5);
    assert.deepEqual([results()[3].id, results()[3].code], ['bad', '4.04']);
    assert.deepEqual(results()[4], { id: '7', error: 'the command\'s operation must be read, write or execute, not "reboot"' });
    assert.equal(events.filter(([event]) => event === 'command').length, 5);
  });

  it('runs a command the CSE notifies twice once', async () => {
    await start();
    await registered('twice');
    const subscription = cse.get('cse-in/twice/commands/lwm2m-ipe');
    await createCommand(cse, 'cse-in/twice', 'CAdmin', { id: 'once', operation: 'execute', path: '/3/0/4' });
    await until(() => cse.children('cse-in/twice/results').length === 1);
    const command = cse.children('cse-in/twice/commands').find((r) => r.ty === 4);
    assert.equal(await cse.notify(subscription.nu[0], { 'm2m:sgn': { nev: { rep: { 'm2m:cin': command }, net: 3 }, sur: '/cse-in/twice/commands/lwm2m-ipe' } }), 2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await ipe.idle();
    assert.equal(cse.children('cse-in/twice/results').length, 1);
  });

  it('accepts only notifications that prove they come from the CSE, and runs commands as the CSE has them', async () => {
    await start();
    const victim = await registered('victim');
    const secret = cse.get('cse-in/victim/commands/lwm2m-ipe').nu[0].split('/').at(-1);
    const write = (rn, value) => ({ 'm2m:sgn': { sur: '/cse-in/victim/commands/lwm2m-ipe', nev: { net: 3, rep: { 'm2m:cin': { rn, con: JSON.stringify({ operation: 'write', path: '/1/0/1', value }) } } } } });
    const notify = (request) => ipe.handleNotification({ originator: '/id-in', requestId: 'n1', body: write('cin_x', 1), ...request });
    assert.equal(notify({ originator: undefined, secret }), 4000, 'no X-M2M-Origin');
    assert.equal(notify({ requestId: undefined, secret }), 4000, 'no X-M2M-RI');
    assert.equal(notify({}), 4004, 'no secret: no such notification target');
    assert.equal(notify({ secret: 'A'.repeat(22) }), 4004, 'a wrong secret');
    assert.equal(notify({ secret, originator: 'Cevil' }), 4103, 'the secret, but not from the CSE');
    assert.equal(notify({ secret, originator: '//sp.example/id-in', body: { 'm2m:sgn': { vrq: true, sur: '/x' } } }), 2000, 'verification, SP-relative CSE-ID');
    assert.equal(notify({ secret, body: { nonsense: true } }), 4000);
    // The secret and the CSE-ID both forged: the command is read back from the CSE, which has no such one.
    assert.equal(notify({ secret }), 2000);
    await until(() => failures().some(([, endpoint, what]) => endpoint === 'victim' && what === 'command'));
    assert.match(failures().at(-1)[3], /read back command cin_x \(not run\): the CSE answered 4004 Not Found/);
    // The CSE's copy is what runs, whatever the notification says.
    await createCommand(cse, 'cse-in/victim', 'CAdmin', { id: 'real', operation: 'write', path: '/1/0/1', value: 90 });
    await until(() => victim.getResource('/1/0/1') === 90);
    const real = cse.children('cse-in/victim/commands').find((r) => r.ty === 4);
    assert.equal(notify({ secret, body: write(real.rn, 5) }), 2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await ipe.idle();
    assert.equal(victim.getResource('/1/0/1'), 90, 'already run, and never with the forged value');
    // A notification URL is answered with the status TS-0009 maps.
    assert.deepEqual([4004, 4103, 4000, 2001, 2000, 5000].map(httpStatusFor), [404, 403, 400, 201, 200, 500]);
  });

  it('retries while the CSE does not answer or is busy, and mirrors everything in order once it answers', async () => {
    await start();
    await cse.stop();
    const first = await device('offline-1');
    await first.register();
    const second = await device('offline-2');
    await second.register();
    await second.deregister();
    await until(() => events.some(([event, reachable]) => event === 'reachability' && reachable === false));
    assert.ok(ipe.queued >= 3);
    assert.deepEqual(ipe.health(), { reachable: false, mirrored: 0, queued: ipe.queued, refused: 0, reason: undefined });
    await cse.restart();
    await until(() => ipe.queued === 0, 10_000);
    await ipe.idle();
    assert.ok(events.some(([event, reachable]) => event === 'reachability' && reachable === true));
    assert.ok(cse.get('cse-in/offline-1/3/0'));
    assert.equal(cse.get('cse-in/offline-2'), undefined, 'registered then removed, in that order');
    assert.deepEqual(failures(), []);

    // Busy (HTTP 503): waited for like an outage, never given up.
    let busy = 3;
    cse.override = () => (busy-- > 0 ? 'busy' : undefined);
    await registered('busy-1');
    assert.ok(cse.get('cse-in/busy-1/3/0'));
    assert.equal(cse.requests.filter((r) => r.rsc === 'busy').length, 3);
    assert.deepEqual(failures(), []);
  });

  it('keeps devices apart: a device the CSE answers 5000 is tried three times and given up while the others go on; a 4xxx is given up at once', async () => {
    await start({ retry: { ...RETRY, answerMs: 500 } });
    cse.override = ({ method, ty, origin }) => (method === 'POST' && ty === 2 && origin === 'Csick' && cse.answering5000 ? 5000 : undefined);
    cse.answering5000 = true;
    const sick = await device('sick');
    await sick.register();
    for (let i = 0; i < 3; i++) await (await device(`well-${i}`)).register();
    await until(() => [0, 1, 2].every((i) => events.some(([event, endpoint]) => event === 'mirrored' && endpoint === `well-${i}`)));
    assert.deepEqual(failures(), [], 'the others mirrored while it waits to be tried again');
    await until(() => failures().some(([, endpoint]) => endpoint === 'sick'), 5000);
    const aeCreates = cse.requests.filter((r) => r.method === 'POST' && r.ty === 2 && r.origin === 'Csick');
    assert.equal(aeCreates.length, 3);
    assert.match(failures()[0][3], /5000 Internal Server Error/);
    assert.deepEqual(ipe.health(), { reachable: true, mirrored: 3, queued: 0, refused: 1, reason: '5000 Internal Server Error' });
    // An Update tries again; now it works and the refusal is over.
    cse.answering5000 = false;
    await sick.update();
    await until(() => cse.get('cse-in/sick/3/0'));
    await ipe.idle();
    assert.deepEqual(ipe.health(), { reachable: true, mirrored: 4, queued: 0, refused: 0, reason: undefined });

    // 4103 (the application's own AE took the name; the IPE may not delete it): given up at once, with the LwM2M code.
    await createAe(cse, 'Cother', 'taken');
    cse.requests.length = 0;
    await registered('taken');
    const failure = failures().find(([, endpoint]) => endpoint === 'taken');
    assert.deepEqual(failure.slice(2, 5), ['register', 'replace taken: the CSE answered 4103 Originator Has No Privilege (LwM2M 4.00 Bad Request)', 'cse']);
    assert.equal(cse.requests.filter((r) => r.method === 'DELETE' && r.path === 'cse-in/taken').length, 1, 'not tried again');
    assert.equal(ipe.health().reason, '4103 Originator Has No Privilege');
    assert.equal(lwm2mCodeFor('register', 2001), '2.01 Created');
    assert.equal(lwm2mCodeFor('register', 4105), '4.03 Forbidden');
    assert.equal(lwm2mCodeFor('update', 4004), '4.04 Not Found');
    assert.equal(lwm2mCodeFor('deregister', 2002), '2.02 Deleted');
    assert.equal(describeOutcome(4105), '4105 Conflict');
  });

  it('counts only devices whose AE exists, and reports a wrong CSE base on the CSE and on each device', async () => {
    cse = await FakeCse.start();
    await start({ cseUrl: `http://127.0.0.1:${cse.port}/no-such-base` });
    await device('lost').then((d) => d.register());
    await until(() => failures().some(([, endpoint]) => endpoint === 'lost'));
    await ipe.idle();
    const cseFailure = failures().find(([, endpoint]) => endpoint === '');
    assert.deepEqual(cseFailure.slice(2), ['check the CSE base', 'retrieve the CSE base /no-such-base: the CSE answered 4004 Not Found', 'cse']);
    assert.deepEqual(ipe.health(), { reachable: true, mirrored: 0, queued: 0, refused: 2, reason: '4004 Not Found' });
  });

  it('reports what fails on the LwM2M side as the device\'s', async () => {
    await start({ observe: ['/3/0/77'] });
    await registered('no-77');
    await until(() => failures().length > 0);
    assert.deepEqual(failures()[0].slice(1, 3), ['no-77', 'observe /3/0/77']);
    assert.equal(failures()[0][4], 'device');
    assert.equal(ipe.health().refused, 0, 'not a refusal of the CSE');
  });

  it('reads commands strictly, and finds the id of a refused one', () => {
    assert.deepEqual(parseCommand('{"operation":"write","path":"/1/0/1","value":5,"id":7}'), { operation: 'write', path: '/1/0/1', id: '7', value: 5 });
    for (const bad of ['nope', '[]', '{"operation":"read"}', '{"operation":"delete","path":"/3"}', { operation: 'read', path: 3 }, null]) {
      assert.throws(() => parseCommand(bad), { name: 'ContentError' });
    }
    assert.equal(commandId('{"id":"c9","operation":"delete"}'), 'c9');
    assert.equal(commandId({ id: 4 }), '4');
    assert.equal(commandId('nope'), undefined);
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
