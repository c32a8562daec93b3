'use strict';
// An independent LwM2M client (Telefonica's lwm2m-node-lib, on the npm coap package)
// driven through the Node-RED nodes of this pack.
const assert = require('node:assert/strict');
const logger = require('logops');
const client = require('lwm2m-node-lib').client;
const { helper, load, nextMessage, firstMessage } = require('./support/flow');
const { freePort } = require('./support/udp');

logger.setLevel('FATAL');
const call = (fn, ...args) => new Promise((resolve, reject) => fn(...args, (error, result) => (error ? reject(error) : resolve(result))));

describe('interop: lwm2m-node-lib client through the Node-RED nodes', function () {
  this.timeout(20000);
  let port;
  let deviceInfo;
  let executed;

  before(() => {
    client.init({
      client: {
        lifetime: '60',
        version: '1.0',
        logLevel: 'FATAL',
        observe: { period: 3000 },
        ipProtocol: 'udp4',
        serverProtocol: 'udp4',
        formats: [{ name: 'lightweightm2m/text', value: 1541 }],
        writeFormat: 'lightweightm2m/text',
      },
    });
  });

  beforeEach(async () => {
    port = await freePort();
    await call(client.registry.reset);
    await call(client.registry.create, '/3303/0');
    await call(client.registry.setResource, '/3303/0', '5700', 21.5);
    await call(client.registry.setResource, '/3303/0', '5701', 'Cel');
    await call(client.registry.create, '/3308/0');
    await call(client.registry.setResource, '/3308/0', '5900', 20);
    await call(client.registry.create, '/3/0');
    await call(client.registry.setResource, '/3/0', '0', 'Telefonica');
  });

  afterEach(async () => {
    if (deviceInfo) await call(client.unregister, deviceInfo).catch(() => undefined);
    deviceInfo = undefined;
    await helper.unload();
  });

  async function start(operation) {
    await load([
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
      { id: 'events', z: 'tab', type: 'lwm2m-events', server: 'srv', wires: [['registered']] },
      { id: 'registered', z: 'tab', type: 'helper' },
      { id: 'op', z: 'tab', server: 'srv', endpoint: 'node-lib-device', timeout: 5, wires: [['out']], ...operation },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ]);
    const registered = nextMessage(helper.getNode('registered'), 5000);
    deviceInfo = await call(client.register, '127.0.0.1', port, null, 'node-lib-device');
    executed = [];
    client.setHandler(deviceInfo.serverInfo, 'execute', (objectType, objectId, resourceId, args, callback) => {
      executed.push(`/${objectType}/${objectId}/${resourceId} ${args}`);
      callback(null);
    });
    return (await registered).payload;
  }

  async function run(msg) {
    const out = helper.getNode('out');
    const first = firstMessage([out, helper.getNode('caught')], 8000);
    helper.getNode('op').receive(msg);
    const arrived = await first;
    assert.equal(arrived.node, out, `operation failed: ${arrived.msg.error && arrived.msg.error.message}`);
    return arrived.msg;
  }

  it('registers as an LwM2M 1.0 device with its objects', async () => {
    const registration = await start({ type: 'lwm2m-read', path: '/3303/0/5700' });
    assert.equal(registration.lwm2mVersion, '1.0');
    assert.deepEqual(registration.objects.map((o) => o.id).sort((a, b) => a - b), [3, 3303, 3308]);
  });

  it('reads text values without a Content-Format, typed by the model', async () => {
    await start({ type: 'lwm2m-read', path: '/3303/0/5700' });
    const msg = await run({});
    assert.equal(msg.payload, 21.5);
    assert.equal(msg.contentFormat, undefined);
    assert.deepEqual(msg.resources[0], { path: '/3303/0/5700', name: 'Sensor Value', type: 'float', value: 21.5 });
  });

  it('writes a value it then reads back', async () => {
    await start({ type: 'lwm2m-write', path: '/3308/0/5900' });
    await run({ payload: 23.5 });
    const stored = await call(client.registry.get, '/3308/0');
    assert.equal(Number(stored.attributes['5900']), 23.5);
  });

  it('executes with arguments', async () => {
    await start({ type: 'lwm2m-execute', path: '/3/0/4' });
    await run({ payload: "0='x'" });
    assert.deepEqual(executed, ["/3/0/4 0='x'"]);
  });

  it('writes attributes it keeps', async () => {
    await start({ type: 'lwm2m-write-attributes', path: '/3303/0/5700', pmin: '10', pmax: '120' });
    await run({});
    const attributes = await call(client.registry.getAttributes, '/3303/0/5700');
    assert.deepEqual(attributes, { pmin: '10', pmax: '120' });
  });

  it('lists links through discover', async () => {
    await start({ type: 'lwm2m-discover', path: '/3303/0' });
    const msg = await run({});
    assert.deepEqual(msg.payload.map((l) => l.path), ['/3303/0', '/3303/0/5700', '/3303/0/5701']);
    assert.equal(msg.payload[1].name, 'Sensor Value');
  });

  it('answers 4.04 for what it does not have, caught with the msg', async () => {
    await start({ type: 'lwm2m-read', path: '/3303/7/5700' });
    const caught = nextMessage(helper.getNode('caught'), 8000);
    helper.getNode('op').receive({ marker: 'm' });
    const msg = await caught;
    assert.equal(msg.code, '4.04');
    assert.equal(msg.marker, 'm');
  });
});
