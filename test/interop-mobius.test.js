'use strict';
// The IPE in a real Node-RED (a process of its own, as `npm start` runs it) against a real oneM2M CSE:
// IoTKETI Mobius on MariaDB (scripts/peers/mobius.sh, test/support/mobius.js). What Mobius cannot show
// is tested against test/support/fake-cse.js in onem2m.test.js: contents kept as JSON numbers (Mobius
// stores every number as text), a busy CSE (HTTP 503), subscription verification requests.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const cbor = require('cbor');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { freePort } = require('./support/udp');
const { until } = require('./support/wait');
const { freeTcpPort, startNodeRed, stopNodeRed } = require('./support/node-red-process');
const { requireMobius, startMobius } = require('./support/mobius');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };
const IMEI = 'urn:imei:490154203237518';
/** TS-0014's own example endpoint, as the name mapping writes it. */
const IMEI_NAME = 'imei_3A490154203237518';

/** Collects what the flow posts: the events node's msgs and its status. */
async function collector() {
  const received = [];
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      try {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        // not JSON: not ours
      }
      response.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { received, server, url: `http://127.0.0.1:${server.address().port}/collect` };
}

/**
 * A Node-RED process with an LwM2M server and the IPE pointed at Mobius;
 * the events node and its status are posted to a collector.
 */
class Rig {
  static async start(cse, ipe = {}) {
    const rig = new Rig(cse);
    rig.userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-mobius-nr-'));
    rig.httpPort = await freeTcpPort();
    rig.lwm2mPort = await freePort();
    rig.collector = await collector();
    // Each rig's IPE its own: AEs are labelled with its id, and a start deletes those of gone endpoints.
    rig.ipe = { id: `ipe${++Rig.count}`, type: 'lwm2m-onem2m', server: 'srv', cseUrl: cse.url, originator: cse.superuser, mode: 'transparent', notificationBase: `http://127.0.0.1:${rig.httpPort}`, ...ipe };
    rig.writeFlows();
    await rig.startNodeRed();
    return rig;
  }

  static count = 0;

  constructor(cse) {
    this.cse = cse;
    this.devices = [];
  }

  writeFlows(withIpe = true) {
    const flows = [
      { id: 'tab', type: 'tab', label: 'oneM2M' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: String(this.lwm2mPort) },
    ];
    if (withIpe) {
      flows.push(
        this.ipe,
        { id: 'ev', z: 'tab', type: 'lwm2m-onem2m-events', ipe: this.ipe.id, mirrored: true, failed: true, command: true, reachability: true, x: 100, y: 100, wires: [['wrap']] },
        { id: 'st', z: 'tab', type: 'status', scope: ['ev'], x: 100, y: 200, wires: [['wrap']] },
        {
          id: 'wrap',
          z: 'tab',
          type: 'function',
          func: 'msg.payload = { topic: msg.topic, endpoint: msg.endpoint, payload: msg.payload, status: msg.status && msg.status.text, fill: msg.status && msg.status.fill }; msg.headers = { "content-type": "application/json" }; return msg;',
          outputs: 1,
          x: 300,
          y: 150,
          wires: [['post']],
        },
        { id: 'post', z: 'tab', type: 'http request', method: 'POST', url: this.collector.url, ret: 'txt', paytoqs: 'ignore', x: 500, y: 150, wires: [] },
      );
    }
    fs.writeFileSync(path.join(this.userDir, 'flows.json'), JSON.stringify(flows));
  }

  async startNodeRed() {
    this.collector.received.length = 0;
    this.child = await startNodeRed(this.userDir, this.httpPort);
  }

  async restartNodeRed(withIpe = true) {
    await stopNodeRed(this.child);
    this.writeFlows(withIpe);
    await this.startNodeRed();
  }

  get events() {
    return this.collector.received.filter((m) => m.topic);
  }

  get statuses() {
    return this.collector.received.filter((m) => m.status).map((m) => ({ text: m.status, fill: m.fill }));
  }

  event(predicate, what, timeoutMs = 15_000) {
    return until(() => this.events.some(predicate), timeoutMs, what).then(() => this.events.find(predicate));
  }

  /** Waits for a status (among those shown from the index since on). */
  status(predicate, what, timeoutMs = 15_000, since = 0) {
    return until(() => this.statuses.slice(since).some(predicate), timeoutMs, what).then(() => this.statuses.slice(since).find(predicate));
  }

  mirrored(endpoint, what = 'register', timeoutMs) {
    return this.event((m) => m.topic === 'mirrored' && m.endpoint === endpoint && m.payload.what === what, `${what} of ${endpoint} mirrored`, timeoutMs);
  }

  async device(endpoint, options = {}) {
    const device = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: this.lwm2mPort }, transmission: FAST, lifetime: 300, ...options });
    await device.start();
    this.devices.push(device);
    return device;
  }

  /** The secret notification URL Mobius has for a device's command subscription (read as its superuser). */
  async notificationUrl(name) {
    const sub = await this.cse.request('GET', `/Mobius/${name}/commands/lwm2m-ipe`);
    return sub.body['m2m:sub'].nu[0];
  }

  async stop() {
    await Promise.all(this.devices.splice(0).map((d) => d.stop()));
    await stopNodeRed(this.child);
    await new Promise((resolve) => this.collector.server.close(resolve));
    fs.rmSync(this.userDir, { recursive: true, force: true });
  }
}

/** A contentInstance's resource, as Mobius answers it. */
const cin = (answer) => answer.body?.['m2m:cin'];

/** The contentInstances of a container, oldest first (Mobius answers rcn=4 with the children in m2m:rsp). */
async function instances(cse, container) {
  const answer = await cse.request('GET', `${container}?rcn=4`);
  return (answer.body?.['m2m:rsp']?.['m2m:cin'] ?? []).sort((a, b) => a.st - b.st);
}

/** POSTs to Node-RED's notification route as an attacker would. */
function postNotification(url, headers, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const request = http.request(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length, ...headers } }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode, rsc: response.headers['x-m2m-rsc'], ri: response.headers['x-m2m-ri'] }));
    });
    request.on('error', reject);
    request.end(payload);
  });
}

describe('interop: the IPE in Node-RED against IoTKETI Mobius (a real oneM2M CSE)', function () {
  this.timeout(90_000);
  let cse;
  let rig;

  before(async function () {
    requireMobius(this);
    this.timeout(120_000);
    cse = await startMobius();
  });

  after(async () => {
    await cse?.stop();
  });

  afterEach(async function () {
    if (this.currentTest.state === 'failed' && rig) {
      // eslint-disable-next-line no-console
      console.log(`Node-RED:\n${rig.child?.log?.slice(-3000)}\nMobius:\n${cse.log()}`);
    }
    await rig?.stop();
    rig = undefined;
  });

  it('mirrors a URN endpoint under its mapped name: <node>, <AE>, labelled containers with the lifetime, values in both modes; de-registration removes it', async () => {
    rig = await Rig.start(cse, { mode: 'both', observe: '/3/0' });
    const meter = await rig.device(IMEI);
    // An object link with a resource type (rt): the container's ontologyRef (TS-0014 6.3.2).
    const links = meter.objectLinks.bind(meter);
    meter.objectLinks = () => links().replace('</3303/0>', '</3303/0>;rt="urn:oma:lwm2m:ext:3303"');
    await meter.register();
    await rig.mirrored(IMEI);
    await rig.mirrored(IMEI, 'notification');
    await rig.status((s) => s.text === '1 device mirrored · 0 waiting' && s.fill === 'green', 'a green status');

    const ae = (await cse.request('GET', `/Mobius/${IMEI_NAME}`)).body['m2m:ae'];
    assert.equal(ae.aei, `C${IMEI_NAME}`);
    assert.ok(ae.lbl.includes(`LWM2M-Endpoint:${IMEI}`));
    const node = (await cse.request('GET', `/Mobius/${IMEI_NAME}_n`)).body['m2m:nod'];
    assert.equal(node.ni, 'imei:490154203237518', 'M2M-Node-ID: the URN without urn: (TS-0014 6.2.2.1)');
    const device = (await cse.request('GET', `/Mobius/${IMEI_NAME}/3/0`)).body['m2m:cnt'];
    // All eight content formats in a label Mobius keeps (its labels column holds 200 characters).
    assert.deepEqual(device.lbl, ['LWM2MRT:urn:oma:lwm2m:oma:3', 'LWM2MPTH:/', 'LWM2MURI:/3/0', 'LWM2MCT:TEXT,OPAQUE,CBOR,SENML+JSON,SENML+CBOR,LWM2M+TLV,LWM2M+JSON,LWM2M+CBOR']);
    assert.equal(device.et, ae.et, 'the container expires with the registration (TS-0014 table 6.3.2.2-3)');
    assert.equal((await cse.request('GET', `/Mobius/${IMEI_NAME}/3303/0`)).body['m2m:cnt'].or, 'urn:oma:lwm2m:ext:3303');

    // Transparent: the observed instance's payload as it came; binary in base64, contentInfo ":2".
    const encapsulated = cin(await cse.request('GET', `/Mobius/${IMEI_NAME}/3/0/la`));
    assert.match(encapsulated.cnf, /^application\/(vnd\.oma\.lwm2m\+tlv|senml\+cbor|vnd\.oma\.lwm2m\+cbor):2$/);
    assert.ok(Buffer.from(encapsulated.con, 'base64').length > 20);
    // Semantic: a time without extra quotes, a multi-instance resource as a container per instance.
    const time = cin(await cse.request('GET', `/Mobius/${IMEI_NAME}/3/0/13/la`));
    assert.match(time.con, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(Date.parse(time.con), meter.getResource('/3/0/13').getTime());
    assert.equal(cin(await cse.request('GET', `/Mobius/${IMEI_NAME}/3/0/7/0/la`)).con, '3800');
    assert.equal(cin(await cse.request('GET', `/Mobius/${IMEI_NAME}/3/0/7/1/la`)).con, '5000');

    await meter.sendValues(['/3303/0/5700']);
    await rig.mirrored(IMEI, 'send');
    const sent = cin(await cse.request('GET', `/Mobius/${IMEI_NAME}/send/la`));
    assert.equal(sent.cnf, 'application/senml+cbor:2');
    assert.equal(cbor.decodeFirstSync(Buffer.from(sent.con, 'base64'))[0].get(2), 21.5);

    const shown = rig.statuses.length;
    await meter.deregister();
    await rig.mirrored(IMEI, 'deregister');
    assert.equal((await cse.request('GET', `/Mobius/${IMEI_NAME}`)).rsc, 4004);
    assert.equal((await cse.request('GET', `/Mobius/${IMEI_NAME}_n`)).rsc, 4004);
    await rig.status((s) => s.text === '0 devices mirrored · 0 waiting', 'the count going down', 15_000, shown);
  });

  it('follows updates (containers, lifetime, a <node> deleted in the CSE) and removes the AE and node when the lifetime expires', async () => {
    rig = await Rig.start(cse);
    const lamp = await rig.device('urn:dev:lamp-1', { lifetime: 120 });
    await lamp.register();
    await rig.mirrored('urn:dev:lamp-1');
    const before = (await cse.request('GET', '/Mobius/dev_3Alamp-1/3/0')).body['m2m:cnt'].et;
    // Someone deletes the device's <node> in the CSE: the next Update makes it again.
    assert.equal((await cse.request('DELETE', '/Mobius/dev_3Alamp-1_n')).rsc, 2002);
    lamp.objects.get(3303).delete(0);
    lamp.objects.set(3311, new Map([[0, new Map([[5850, true]])]]));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await lamp.update({ lt: 600 }, true);
    await rig.mirrored('urn:dev:lamp-1', 'update');
    assert.equal((await cse.request('GET', '/Mobius/dev_3Alamp-1_n')).rsc, 2000, 'the <node> made again');
    assert.equal((await cse.request('GET', '/Mobius/dev_3Alamp-1/3303/0')).rsc, 4004);
    assert.equal((await cse.request('GET', '/Mobius/dev_3Alamp-1/3311/0')).rsc, 2000);
    const after = (await cse.request('GET', '/Mobius/dev_3Alamp-1/3/0')).body['m2m:cnt'].et;
    assert.ok(after > before, `the container's expirationTime follows the new lifetime (${before} → ${after})`);

    const brief = await rig.device('brief', { lifetime: 1 });
    await brief.register();
    await rig.mirrored('brief');
    assert.equal((await cse.request('GET', '/Mobius/brief')).rsc, 2000);
    await rig.mirrored('brief', 'expire', 20_000);
    assert.equal((await cse.request('GET', '/Mobius/brief')).rsc, 4004);
    assert.equal((await cse.request('GET', '/Mobius/brief_n')).rsc, 4004);
  });

  it('runs commands a oneM2M application writes into Mobius, writes the results back, keeps the id of a refused one and names device failures as such', async () => {
    rig = await Rig.start(cse, { observe: '/3/0/77' });
    const meter = await rig.device('meter-9');
    await meter.register();
    await rig.mirrored('meter-9');
    // An LwM2M-side failure is the device's, not a refusal of the CSE.
    const observeFailed = await rig.event((m) => m.topic === 'failed' && m.endpoint === 'meter-9', 'the failed observation');
    assert.deepEqual([observeFailed.payload.what, observeFailed.payload.source], ['observe /3/0/77', 'device']);
    await until(() => /Device meter-9 failed observe \/3\/0\/77/.test(rig.child.log), 5000, 'the warning naming the device');
    assert.doesNotMatch(rig.child.log, /CSE refused observe/);

    const command = async (content) => {
      const created = await cse.request('POST', '/Mobius/meter-9/commands', { origin: 'Capp', ty: 4, body: { 'm2m:cin': { con: JSON.stringify(content) } } });
      assert.equal(created.rsc, 2001);
    };
    // Mobius keeps JSON text as the object it holds.
    const results = async () => (await instances(cse, '/Mobius/meter-9/results')).map((r) => (typeof r.con === 'string' ? JSON.parse(r.con) : r.con));
    await command({ id: 'r1', operation: 'read', path: '/3/0/0' });
    await until(async () => (await results()).length === 1, 15_000, 'the read result');
    assert.deepEqual((await results())[0], { id: 'r1', operation: 'read', path: '/3/0/0', code: '2.05', value: 'Node-RED LwM2M' });
    await command({ id: 'w1', operation: 'write', path: '/1/0/1', value: 120 });
    await until(async () => (await results()).length === 2, 15_000, 'the write result');
    assert.equal(meter.getResource('/1/0/1'), 120);
    await command({ id: 'missing', operation: 'read', path: '/3/0/77' });
    await command({ id: 'reboot-1', operation: 'reboot', path: '/3/0/4' });
    await until(async () => (await results()).length === 4, 15_000, 'the refused commands\' results');
    // Run side by side: the refused one is answered at once, the read waits for the device.
    const missing = (await results()).find((r) => r.id === 'missing');
    const refused = (await results()).find((r) => r.id === 'reboot-1');
    assert.deepEqual([missing.id, missing.code], ['missing', '4.04']);
    assert.equal(refused.id, 'reboot-1', 'a refused command keeps its id');
    assert.match(refused.error, /operation must be read, write or execute/);
    const ran = rig.events.filter((m) => m.topic === 'command').map((m) => m.payload.id);
    assert.deepEqual(ran.sort(), ['missing', 'r1', 'reboot-1', 'w1']);
  });

  it('refuses forged notifications with the oneM2M code and its HTTP status, and runs only commands Mobius has', async () => {
    rig = await Rig.start(cse);
    const meter = await rig.device('victim');
    await meter.register();
    await rig.mirrored('victim');
    const base = `http://127.0.0.1:${rig.httpPort}/lwm2m-onem2m/${rig.ipe.id}/notify`;
    const secretUrl = await rig.notificationUrl('victim');
    assert.ok(secretUrl.startsWith(`${base}/`), secretUrl);
    const forged = (rn) => ({ 'm2m:sgn': { sur: 'Mobius/victim/commands/lwm2m-ipe', nev: { net: 3, rep: { 'm2m:cin': { rn, con: JSON.stringify({ operation: 'write', path: '/1/0/1', value: 1 }) } } } } });

    // As the issue found it: no originator, no request id, the URL every subscription shared.
    assert.deepEqual(await postNotification(base, {}, forged('x')), { status: 400, rsc: '4000', ri: undefined });
    // A request id comes back in X-M2M-RI (TS-0009 6.4.8); no secret: no such notification target.
    assert.deepEqual(await postNotification(base, { 'X-M2M-Origin': '/Mobius2', 'X-M2M-RI': 'evil-1' }, forged('x')), { status: 404, rsc: '4004', ri: 'evil-1' });
    assert.deepEqual(await postNotification(`${base}/AAAAAAAAAAAAAAAAAAAAAA`, { 'X-M2M-Origin': '/Mobius2', 'X-M2M-RI': 'evil-2' }, forged('x')), { status: 404, rsc: '4004', ri: 'evil-2' });
    // The secret leaked: the originator must still be the CSE.
    assert.deepEqual(await postNotification(secretUrl, { 'X-M2M-Origin': 'Cevil', 'X-M2M-RI': 'evil-3' }, forged('x')), { status: 403, rsc: '4103', ri: 'evil-3' });
    // The secret leaked and the CSE-ID spoofed: the command is read back from Mobius, which has no such one.
    assert.deepEqual(await postNotification(secretUrl, { 'X-M2M-Origin': '/Mobius2', 'X-M2M-RI': 'evil-4' }, forged('4-20991231000000000')), { status: 200, rsc: '2000', ri: 'evil-4' });
    const notRun = await rig.event((m) => m.topic === 'failed' && m.endpoint === 'victim' && m.payload.what === 'command', 'the refused read-back');
    assert.match(notRun.payload.reason, /4004/);
    assert.equal(meter.getResource('/1/0/1'), 60, 'nothing written to the device');

    // The real thing still works.
    await cse.request('POST', '/Mobius/victim/commands', { origin: 'Capp', ty: 4, body: { 'm2m:cin': { con: JSON.stringify({ id: 'ok', operation: 'write', path: '/1/0/1', value: 90 }) } } });
    await rig.event((m) => m.topic === 'command' && m.payload.id === 'ok', 'the command');
    assert.equal(meter.getResource('/1/0/1'), 90);
    assert.equal(rig.events.filter((m) => m.topic === 'command').length, 1);
  });

  it('keeps devices apart: one Mobius keeps refusing (5000) is given up and reported while the others are mirrored', async () => {
    rig = await Rig.start(cse);
    // 46 characters: more than the 45 Mobius stores for a resource name, so every create of its resources fails with 5000.
    const long = 'streetlight-0123456789-0123456789-0123456789-x';
    const refused = await rig.device(long);
    await refused.register();
    const others = [];
    for (let i = 0; i < 3; i++) {
      others.push(await rig.device(`lamp-${i}`));
      await others[i].register();
    }
    // (That they are mirrored while it waits to be tried again is shown against the fake CSE, where the timing is the test's.)
    for (let i = 0; i < 3; i++) await rig.mirrored(`lamp-${i}`);
    const failed = await rig.event((m) => m.topic === 'failed' && m.endpoint === long, 'the given-up registration');
    assert.equal(failed.payload.what, 'register');
    assert.match(failed.payload.reason, /5000 Internal Server Error/);
    assert.equal(rig.events.filter((m) => m.topic === 'failed').length, 1, 'reported once');
    await rig.status((s) => s.fill === 'red' && s.text === '1 refused: 5000 Internal Server Error · 3 mirrored · 0 waiting', 'the refusal on the status');
    // Its later values wait for nothing: the others' go on.
    await others[0].sendValues(['/3303/0/5700']);
    await rig.mirrored('lamp-0', 'send');
  });

  it('takes over what is in Mobius after a restart and deletes only the AEs of endpoints that are gone', async () => {
    rig = await Rig.start(cse, { observe: '/3303/0/5700' });
    const stays = await rig.device('stays');
    const goes = await rig.device('goes');
    await stays.register();
    await goes.register();
    await rig.mirrored('stays');
    await rig.mirrored('goes');
    await until(async () => (await cse.request('GET', '/Mobius/stays/3303/0/la')).rsc === 2000, 10_000, 'the first value');
    const ae = (await cse.request('GET', '/Mobius/stays')).body['m2m:ae'];
    const container = (await cse.request('GET', '/Mobius/stays/3303/0')).body['m2m:cnt'];
    const value = cin(await cse.request('GET', '/Mobius/stays/3303/0/la'));
    // An application's subscription, another IPE's AE and an application's AE: none of this IPE's business.
    const appNotify = await collector();
    assert.equal((await cse.request('POST', '/Mobius/stays/3303/0', { ty: 23, body: { 'm2m:sub': { rn: 'app-sub', nu: [appNotify.url], enc: { net: [3] } } } })).rsc, 2001);
    assert.equal((await cse.request('POST', '/Mobius', { origin: 'Cother-ipe', ty: 2, body: { 'm2m:ae': { rn: 'other-ipe', api: 'Nx', rr: false, srv: ['3'], lbl: ['LWM2M-IPE:elsewhere'] } } })).rsc, 2001);
    assert.equal((await cse.request('POST', '/Mobius', { origin: 'Capp-ae', ty: 2, body: { 'm2m:ae': { rn: 'app-ae', api: 'Nx', rr: false, srv: ['3'] } } })).rsc, 2001);

    // oneM2M off for a while (flows without the IPE): "goes" de-registers meanwhile.
    await rig.restartNodeRed(false);
    await goes.deregister();
    await rig.restartNodeRed(true);
    await rig.event((m) => m.topic === 'mirrored' && m.endpoint === 'stays' && m.payload.what === 'adopt', 'the AE taken over');
    await rig.event((m) => m.topic === 'mirrored' && m.endpoint === 'goes' && m.payload.what === 'delete stale', 'the stale AE deleted');
    assert.equal((await cse.request('GET', '/Mobius/goes')).rsc, 4004);
    assert.equal((await cse.request('GET', '/Mobius/goes_n')).rsc, 4004);
    assert.equal((await cse.request('GET', '/Mobius/other-ipe')).rsc, 2000);
    assert.equal((await cse.request('GET', '/Mobius/app-ae')).rsc, 2000);
    const adopted = (await cse.request('GET', '/Mobius/stays')).body['m2m:ae'];
    assert.equal(adopted.ct, ae.ct, 'the same AE, not one made again');
    assert.equal((await cse.request('GET', '/Mobius/stays/3303/0')).body['m2m:cnt'].ri, container.ri);
    assert.equal((await cse.request('GET', `/Mobius/stays/3303/0/${value.rn}`)).rsc, 2000, 'the values stored before are kept');
    assert.equal((await cse.request('GET', '/Mobius/stays/3303/0/app-sub')).rsc, 2000, 'the application\'s subscription is kept');
    assert.equal(rig.events.some((m) => m.topic === 'failed'), false, JSON.stringify(rig.events.filter((m) => m.topic === 'failed')));
    // Commands reach the adopted device (the subscription taken over with its secret).
    await cse.request('POST', '/Mobius/stays/commands', { origin: 'Capp', ty: 4, body: { 'm2m:cin': { con: JSON.stringify({ id: 'after', operation: 'read', path: '/3/0/9' }) } } });
    await rig.event((m) => m.topic === 'command' && m.payload.id === 'after', 'the command after the restart');

    // A device that registers again is deleted and created anew (TS-0014 6.2.2.4).
    await stays.register();
    await rig.mirrored('stays', 'register');
    assert.notEqual((await cse.request('GET', '/Mobius/stays/3303/0')).body['m2m:cnt'].ri, container.ri);
    await new Promise((resolve) => appNotify.server.close(resolve));
  });

  it('shows the truth on its status: a wrong CSE base, an originator without rights', async () => {
    rig = await Rig.start(cse, { cseUrl: `${cse.url.replace(/\/Mobius$/, '')}/NoSuchBase` });
    const lost = await rig.device('lost');
    await lost.register();
    const failed = await rig.event((m) => m.topic === 'failed' && m.endpoint === 'lost', 'the refused registration');
    assert.match(failed.payload.reason, /4004 Not Found/);
    await rig.status((s) => s.fill === 'red' && /refused: 4004 Not Found · 0 mirrored/.test(s.text), 'red with the reason');
    assert.equal(rig.statuses.some((s) => s.fill === 'green' && /^[1-9]/.test(s.text)), false, 'never counted as mirrored');
    assert.match(rig.child.log, /CSE refused to check the CSE base: retrieve the CSE base \/NoSuchBase: the CSE answered 4004 Not Found/);
    await rig.stop();

    // An originator that is not Mobius's superuser may create a <node> but never change it (Mobius keeps no creator for nodes).
    rig = await Rig.start(cse, { originator: 'CAdmin' });
    const meter = await rig.device('rights');
    await meter.register();
    await rig.mirrored('rights');
    await meter.update({ lt: 500 });
    const refused = await rig.event((m) => m.topic === 'failed' && m.endpoint === 'rights', 'the refused update');
    assert.match(refused.payload.reason, /update <node>: the CSE answered 4103 Originator Has No Privilege/);
    await rig.status((s) => s.fill === 'red' && s.text === '1 refused: 4103 Originator Has No Privilege · 1 mirrored · 0 waiting', `red with 4103 (${JSON.stringify(rig.collector.received)})`);
    // Clean up what this IPE may not delete itself.
    await meter.deregister();
    await rig.event((m) => m.topic === 'failed' && m.endpoint === 'rights' && m.payload.what === 'deregister', 'the refused node deletion');
    await cse.request('DELETE', '/Mobius/rights_n');
  });

  it('holds everything while Mobius is down, keeps the waiting count current, and mirrors it in order once Mobius is back', async () => {
    rig = await Rig.start(cse, { observe: '/3303/0/5700', maxInstances: 50 });
    const sensor = await rig.device('outage-sensor');
    await sensor.register();
    await rig.mirrored('outage-sensor');
    await until(async () => (await cse.request('GET', '/Mobius/outage-sensor/3303/0/la')).rsc === 2000, 10_000, 'the first value');
    await rig.status((s) => s.text === '1 device mirrored · 0 waiting', 'the start done');
    await cse.stopCse();
    const values = [];
    for (let i = 1; i <= 12; i++) {
      values.push(20 + i / 4);
      await sensor.setResource('/3303/0/5700', values.at(-1));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await rig.status((s) => s.text === 'CSE unreachable · 12 waiting', `the waiting count of all twelve (${JSON.stringify(rig.statuses)})`);
    const counts = rig.statuses.map((s) => /^CSE unreachable · (\d+) waiting$/.exec(s.text)?.[1]).filter(Boolean).map(Number);
    assert.ok(new Set(counts).size >= 3, `the count followed the queue: ${counts}`);
    const shown = rig.statuses.length;
    await cse.startCse();
    await rig.event((m) => m.topic === 'reachability' && m.payload.reachable === true, 'Mobius back', 40_000);
    await rig.status((s) => s.text === '1 device mirrored · 0 waiting', 'nothing waiting', 20_000, shown);
    const contents = (await instances(cse, '/Mobius/outage-sensor/3303/0')).map((r) => Number(r.con));
    assert.deepEqual(contents.slice(-12), values, 'every value, in order');
  });
});
