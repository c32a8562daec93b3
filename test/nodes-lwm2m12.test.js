'use strict';
// The LwM2M 1.2 features (issue 21) as flows use them, in the test helper's real Node-RED:
// attributes of the observe node and its msgs, Write-Composite removals, composite formats by
// name, and the object versions the editor's admin API reports.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const cbor = require('cbor');
const { helper, load, firstMessage } = require('./support/flow');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { ATTRIBUTE_NAMES } = require('../dist/lib/lwm2m/requests/write-attributes');
const { freePort } = require('./support/udp');
const { devicePool } = require('./support/devices');

const [GET, PUT, IPATCH] = [1, 3, 7];

describe('Node-RED: LwM2M 1.2 in flows (issue 21)', () => {
  let port;
  const pool = devicePool(() => port);

  function flow(node) {
    return [
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
      { id: 'op', z: 'tab', server: 'srv', wires: [['out']], timeout: 2, ...node },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
  }

  /** A simulated device, started and registered. */
  async function device(endpoint, options = {}) {
    const d = await pool.device(endpoint, options);
    await d.register();
    return d;
  }

  /** msg into the node under test: its output, or {error} with what the Catch node got. */
  async function run(msg) {
    const out = helper.getNode('out');
    const arrived = firstMessage([out, helper.getNode('caught')], 5000);
    helper.getNode('op').receive(msg);
    const { node, msg: answer } = await arrived;
    return node === out ? answer : { error: answer.error };
  }

  beforeEach(async () => {
    port = await freePort();
  });

  afterEach(async () => {
    await pool.stopAll();
    await helper.unload();
  });

  describe('lwm2m observe: notification attributes (item 3)', () => {
    it('sends the node\'s attributes in the Observe query of a 1.2 device, and writes them first to a 1.1 device', async () => {
      await load(flow({ type: 'lwm2m-observe', path: '/3303/0/5700', pmin: '5', gt: '30', hqmax: '' }));
      const modern = await device('modern', { lwm2mVersion: '1.2' });
      const first = await run({ endpoint: 'modern' });
      assert.deepEqual([first.payload, first.first], [21.5, true]);
      assert.deepEqual(modern.received.map((r) => [r.method, r.path, r.queries.join('&')]), [[GET, '/3303/0/5700', 'pmin=5&gt=30']]);
      const older = await device('older', { lwm2mVersion: '1.1' });
      await run({ endpoint: 'older' });
      assert.deepEqual(older.received.map((r) => [r.method, r.path, r.queries.join('&')]), [[PUT, '/3303/0/5700', 'pmin=5&gt=30'], [GET, '/3303/0/5700', '']]);
    });

    it('takes msg.attributes, the node\'s settings winning where both name one, 1.2 attributes included', async () => {
      await load(flow({ type: 'lwm2m-observe', path: '/1/0/6', pmin: '7' }));
      const d = await device('flags', { lwm2mVersion: '1.2' });
      await run({ endpoint: 'flags', attributes: { pmin: 2, edge: 1, con: true } });
      assert.deepEqual(d.received.at(-1).queries, ['pmin=7', 'edge=1', 'con=1']);
      assert.deepEqual(d.observationAttributes, [{ pmin: '7', edge: '1', con: '1' }]);
    });

    it('reports attributes that cannot be used to the Catch node, and sends nothing', async () => {
      await load(flow({ type: 'lwm2m-observe', path: '/3303/0/5700' }));
      const d = await device('picky', { lwm2mVersion: '1.2' });
      const sent = d.received.length;
      for (const [attributes, pattern] of [
        [['pmin', 5], /msg.attributes must be an object/],
        [{ edge: 1 }, /edge applies to a boolean resource; \/3303\/0\/5700 \(Sensor Value\) is float/],
        [{ hqmax: 'many' }, /attribute hqmax must be a number/],
      ]) {
        const answer = await run({ endpoint: 'picky', attributes });
        assert.match(answer.error.message, pattern);
      }
      assert.equal(d.received.length, sent);
    });

    it('offers every attribute the runtime accepts in the observe node\'s editor', () => {
      // The build writes the runtime's list into the editor code (test/editor-dialogs.test.js opens the dialog).
      const html = fs.readFileSync(path.join(__dirname, '..', 'dist', 'nodes', 'lwm2m-observe.html'), 'utf8');
      const listed = JSON.parse(/var ATTRIBUTES = (\[[^\]]*\]);/.exec(html)[1].replace(/'/g, '"'));
      assert.deepEqual(listed, [...ATTRIBUTE_NAMES]);
    });
  });

  describe('lwm2m write and read: composite formats (items 1 and 2)', () => {
    it('removes a resource instance with null in a Write-Composite, in the Patch Pack the device announced', async () => {
      await load(flow({ type: 'lwm2m-write', endpoint: 'etch', mode: 'composite' }));
      const d = await device('etch', { lwm2mVersion: '1.2', contentFormats: [0, 110, 112, 320, 322, 11542] });
      const answer = await run({ payload: { '/1/0/1': 90, '/3/0/7/1': null } });
      assert.equal(answer.code, '2.04');
      const ipatch = d.received.at(-1);
      assert.deepEqual([ipatch.method, ipatch.contentFormat], [IPATCH, 322]);
      assert.deepEqual(cbor.decodeFirstSync(ipatch.payload), [new Map([[0, '/1/0/1'], [2, 90]]), new Map([[0, '/3/0/7/1'], [2, null]])]);
      assert.deepEqual([d.getResource('/1/0/1'), [...d.getResource('/3/0/7').keys()]], [90, [0]]);
    });

    it('reads composite in the formats named in msg.contentFormat', async () => {
      await load(flow({ type: 'lwm2m-read', endpoint: 'named', composite: true }));
      const d = await device('named', { lwm2mVersion: '1.2' });
      for (const [contentFormat, body, accept] of [['senml-etch-json', 320, 110], ['senml-etch-cbor', 322, 112], ['lwm2m-cbor', 322, 11544]]) {
        const answer = await run({ paths: ['/3/0/9', '/3303/0/5700'], contentFormat });
        assert.deepEqual(answer.payload, { 3: { 0: { 9: 100 } }, 3303: { 0: { 5700: 21.5 } } }, contentFormat);
        assert.deepEqual([d.received.at(-1).contentFormat, answer.contentFormat], [body, accept], contentFormat);
      }
      const refused = await run({ paths: ['/3/0/9'], contentFormat: 'tlv' });
      assert.match(refused.error.message, /Read-Composite and Observe-Composite use/);
    });
  });

  describe('object versions in the admin API (item 7)', () => {
    it('lists each object of a device with the version it announced and the version of the definition its values are typed by', async () => {
      await load(flow({ type: 'lwm2m-read', endpoint: 'lamp' }));
      const objects = buildObjectTree({ 1: { 0: { 0: 1, 1: 60 } }, 3: { 0: { 0: 'Acme' } }, 3416: { 0: { 15: 100, 39: 'warm' } } });
      const d = await device('lamp', { lwm2mVersion: '1.1', objectVersions: { 3416: '1.0' }, objects });
      await d.update({ pid: 'lamp-profile' });
      // The list pages summaries; the device's details list its objects, each definition comes once per id and version.
      const page = await helper.request().get('/lwm2m-red/servers/srv/devices').expect(200);
      assert.deepEqual(page.body.items.map((item) => item.endpoint), ['lamp']);
      const details = (await helper.request().get('/lwm2m-red/servers/srv/devices/lamp').expect(200)).body;
      assert.equal(details.profileId, 'lamp-profile');
      const byId = Object.fromEntries(details.objects.map((object) => [object.id, object]));
      assert.deepEqual([byId[3416].version, byId[3416].modelVersion], ['1.0', '1.0']);
      assert.deepEqual([byId[1].version, byId[1].modelVersion, byId[3].modelVersion], [undefined, '1.1', '1.1']);
      const lampObject = (await helper.request().get('/lwm2m-red/servers/srv/objects/3416').query({ version: byId[3416].modelVersion }).expect(200)).body;
      assert.equal(lampObject.resources.find((r) => r.id === 39).type, 'string');
      assert.deepEqual(lampObject.versions, ['1.0', '2.0']);
      const read = await run({ path: '/3416/0/39' });
      assert.deepEqual([read.payload, read.resources[0].name, read.resources[0].type], ['warm', 'Light color temperature command', 'string']);
    });
  });
});

