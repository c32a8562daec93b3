'use strict';
const assert = require('node:assert/strict');
const { helper, load, nextMessage } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { freePort } = require('./support/udp');
const { describeListeners } = require('../dist/nodes/socket-host');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };
const KEY = '6c776d326d2d6b65792d6f662d6d65746572';
const BS_KEY = '0a0b0c0d0e0f10111213';

describe('Node-RED: DTLS on the server and bootstrap server nodes', function () {
  this.timeout(20_000);
  let port;
  let dtlsPort;
  let bsDtlsPort;
  const devices = [];

  function flow(server = {}) {
    return [
      { id: 'tab', type: 'tab' },
      {
        id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, dtlsPort,
        security: [
          { endpoint: 'meter-1', mode: 'psk', identity: 'meter-1-id' },
          { endpoint: 'no-key', mode: 'psk', identity: 'no-key-id' },
          { endpoint: 'bad-rpk', mode: 'rpk', publicKey: 'not a key' },
        ],
        ...server,
      },
      { id: 'events', z: 'tab', type: 'lwm2m-events', server: 'srv', security: true, wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'read', z: 'tab', type: 'lwm2m-read', server: 'srv', path: '/3/0/0', wires: [['answer']] },
      { id: 'answer', z: 'tab', type: 'helper' },
      {
        id: 'bs', type: 'lwm2m-bootstrap-server', bindAddress: '127.0.0.1', port: '', dtlsPort: bsDtlsPort,
        endpoints: [{ endpoint: 'meter-1', uri: `coaps://127.0.0.1:${dtlsPort}`, securityMode: 'psk', pskIdentity: 'meter-1-id', shortServerId: '1', lifetime: '300', binding: 'U', bootstrapIdentity: 'bs-meter-1' }],
      },
      { id: 'bsevents', z: 'tab', type: 'lwm2m-bootstrap-events', server: 'bs', wires: [['bsout']] },
      { id: 'bsout', z: 'tab', type: 'helper' },
    ];
  }

  const credentials = {
    srv: { pskKeys: JSON.stringify({ 'meter-1': KEY }) },
    bs: { endpointKeys: JSON.stringify({ 'meter-1': KEY }), bootstrapKeys: JSON.stringify({ 'meter-1': BS_KEY }) },
  };

  async function device(endpoint, identity, key, peerPort = dtlsPort, options = {}) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: peerPort }, dtls: { identity, key: Buffer.from(key, 'hex') }, transmission: FAST, ...options });
    devices.push(d);
    await d.start();
    return d;
  }

  function logged(node) {
    return JSON.stringify([...node.error.args, ...node.warn.args, ...node.log.args, ...(node.debug?.args ?? [])]);
  }

  beforeEach(async () => {
    [port, dtlsPort, bsDtlsPort] = [await freePort(), await freePort(), await freePort()];
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
  });

  it('registers a PSK device over DTLS and reads it from a flow; the key is in no msg and no log', async () => {
    await load(flow(), credentials);
    const meter = await device('meter-1', 'meter-1-id', KEY);
    await meter.register();
    const registered = await nextMessage(helper.getNode('out'));
    assert.deepEqual([registered.topic, registered.payload.transport, registered.payload.security, registered.payload.identity], ['registered', 'dtls', 'PSK', 'meter-1-id']);
    helper.getNode('read').receive({ endpoint: 'meter-1' });
    const answer = await nextMessage(helper.getNode('answer'));
    assert.equal(answer.code, '2.05');
    const server = helper.getNode('srv');
    assert.equal(describeListeners(server.host['phase'].bound), `udp :${port} · dtls :${dtlsPort}`);
    assert.equal(logged(server).includes(KEY), false);
    assert.equal(JSON.stringify([registered, answer]).includes(KEY), false);
  });

  it('reports unusable security entries by endpoint, sends refusals and failed handshakes to the flow', async () => {
    await load(flow(), credentials);
    const server = helper.getNode('srv');
    const errors = server.error.args.map((a) => a[0]);
    assert.deepEqual(errors.filter((e) => e === 'lwm2m-server.errors.security').length, 2);
    const impostor = await device('no-key', 'meter-1-id', KEY);
    await assert.rejects(impostor.register(), (error) => error.responseCode === '4.03');
    const refused = await nextMessage(helper.getNode('out'));
    assert.deepEqual([refused.topic, refused.payload.endpoint, refused.payload.reason], ['refused', 'no-key', 'PSK identity "meter-1-id" is not bound to endpoint no-key']);
    assert.ok(server.warn.args.some((a) => a[0] === 'lwm2m-server.errors.refused'));
    await assert.rejects(device('meter-1', 'meter-1-id', 'ffff'), /alert DecryptError/);
    const failed = await nextMessage(helper.getNode('out'));
    assert.deepEqual([failed.topic, failed.payload.reason], ['handshakeFailed', 'wrong key for PSK identity "meter-1-id"']);
    assert.equal(logged(server).includes(KEY), false);
  });

  it('listens on DTLS only when the UDP port is empty, and reports an unusable server key', async () => {
    await load(flow({ port: '', serverCertificate: 'garbage' }), { srv: { ...credentials.srv, privateKey: 'not a pem key' } });
    const server = helper.getNode('srv');
    assert.ok(server.error.args.some((a) => a[0] === 'lwm2m-server.errors.serverKey'));
    assert.equal(logged(server).includes('not a pem key'), false);
    const meter = await device('meter-1', 'meter-1-id', KEY);
    await meter.register();
    assert.equal(describeListeners(server.host['phase'].bound), `dtls :${dtlsPort}`);
  });

  it('applies the editor\'s key changes to the stored keys: replaced, added, cleared, removed rows dropped, applied once', async () => {
    const NEW_KEY = '0102030405060708';
    const ADDED_KEY = 'a1a2a3a4';
    const security = [
      { endpoint: 'meter-1', mode: 'psk', identity: 'meter-1-id' },
      { endpoint: 'meter-2', keyId: 'row-2', mode: 'psk', identity: 'meter-2-id' },
      { endpoint: 'meter-3', keyId: 'row-3', mode: 'psk', identity: 'meter-3-id' },
    ];
    const stored = { 'meter-1': KEY, 'row-3': 'deadbeef', 'removed-row': 'cafe' };
    const changes = { 'meter-1': NEW_KEY, 'row-2': ADDED_KEY, 'row-3': '' };
    await load(flow({ security }), { srv: { pskKeys: JSON.stringify(stored), pskKeyChanges: JSON.stringify(changes) } });
    const kept = { pskKeys: JSON.stringify({ 'meter-1': NEW_KEY, 'row-2': ADDED_KEY }) };
    assert.deepEqual(helper.credentials.get('srv'), kept, 'the result is stored and the changes dropped');
    const srv = helper.getNode('srv');
    assert.equal(srv.error.args.filter((a) => a[0] === 'lwm2m-server.errors.security').length, 1, 'a cleared key leaves its row (meter-3) without one');
    assert.equal(srv.host.service.security.get('meter-3'), undefined);
    await (await device('meter-1', 'meter-1-id', NEW_KEY)).register();
    await (await device('meter-2', 'meter-2-id', ADDED_KEY)).register();
    await assert.rejects(device('meter-1', 'meter-1-id', KEY), /alert DecryptError/, 'the replaced key no longer works');
    // The same changes again (a restart before the next deploy saved the result) give the same keys.
    await helper.unload();
    await load(flow({ security }), { srv: { ...kept, pskKeyChanges: JSON.stringify(changes) } });
    assert.deepEqual(helper.credentials.get('srv'), kept);
  });

  it('bootstraps a device over DTLS with its bootstrap PSK, which then registers over DTLS', async () => {
    await load(flow(), credentials);
    const bsPeer = { address: '127.0.0.1', port: bsDtlsPort };
    const objects = buildObjectTree({ 1: { 0: { 0: 1, 1: 60 } }, 3: { 0: { 0: 'Acme' } } });
    const fresh = await device('meter-1', 'bs-meter-1', BS_KEY, bsDtlsPort, { bootstrapServer: bsPeer, objects });
    await fresh.bootstrap();
    const started = await nextMessage(helper.getNode('bsout'));
    assert.equal(started.topic, 'started');
    assert.equal(fresh.getResource('/0/0/3').toString(), 'meter-1-id');
    const meter = await device('meter-1', 'meter-1-id', fresh.getResource('/0/0/5').toString('hex'), dtlsPort, { objects });
    await meter.register();
    assert.ok(helper.getNode('srv').host.service.registrations.getByEndpoint('meter-1'));
    const bs = helper.getNode('bs');
    assert.equal(logged(bs).includes(BS_KEY) || logged(bs).includes(KEY), false);
  });
});
