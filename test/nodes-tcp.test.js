'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { helper, load, nextMessage } = require('./support/flow');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const { buildObjectTree } = require('../dist/sim/object-tree');
const { describeListeners } = require('../dist/nodes/socket-host');
const { freePort, once } = require('./support/udp');
const { freeTcpPort } = require('./support/tcp');
const { until } = require('./support/wait');

const KEY = '6c776d326d2d7463702d6b6579';

describe('Node-RED: TCP and TLS ports on the server and bootstrap server nodes', function () {
  this.timeout(20_000);
  let port;
  let tcpPort;
  let tlsPort;
  let bsTcpPort;
  let userDir;
  const devices = [];

  function flow(server = {}) {
    return [
      { id: 'tab', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port, dtlsPort: '', tcpPort, tlsPort, security: [{ endpoint: 'meter-1', mode: 'psk', identity: 'meter-1-id' }], ...server },
      { id: 'events', z: 'tab', type: 'lwm2m-events', server: 'srv', security: true, wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'read', z: 'tab', type: 'lwm2m-read', server: 'srv', path: '/3/0/9', wires: [['answer']] },
      { id: 'answer', z: 'tab', type: 'helper' },
      { id: 'obs', z: 'tab', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', start: 'register', wires: [['temps']] },
      { id: 'temps', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: ['read'], wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
      {
        id: 'bs', type: 'lwm2m-bootstrap-server', bindAddress: '127.0.0.1', port: '', tcpPort: bsTcpPort,
        endpoints: [{ endpoint: 'boot-1', uri: `coap+tcp://127.0.0.1:${tcpPort}`, securityMode: 'nosec', shortServerId: '1', lifetime: '300', binding: 'T' }],
      },
      { id: 'bsevents', z: 'tab', type: 'lwm2m-bootstrap-events', server: 'bs', wires: [['bsout']] },
      { id: 'bsout', z: 'tab', type: 'helper' },
    ];
  }
  const credentials = { srv: { pskKeys: JSON.stringify({ 'meter-1': KEY }) } };

  async function device(endpoint, options) {
    const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: tcpPort }, binding: 'T', ...options });
    devices.push(d);
    await d.start();
    return d;
  }

  /** Loads the flow and waits for the server's sockets. */
  async function loadFlow() {
    await load(flow(), credentials);
    await until(() => helper.getNode('srv').host['phase'].name === 'listening' && helper.getNode('bs').host['phase'].name === 'listening');
  }

  /** The next msg of the events node with this topic. */
  async function event(topic) {
    for (;;) {
      const msg = await nextMessage(helper.getNode('out'));
      if (msg.topic === topic) return msg;
    }
  }

  beforeEach(async () => {
    [port, tcpPort, tlsPort, bsTcpPort] = [await freePort(), await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-tcp-nodes-'));
    helper.settings({ userDir });
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.stop()));
    await helper.unload();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('listens on the TCP and TLS ports (the status says so); events carry transport tcp and tls; flows read both; no key in msgs or logs', async () => {
    await loadFlow();
    const server = helper.getNode('srv');
    assert.equal(describeListeners(server.host['phase'].bound), `udp :${port} · tcp :${tcpPort} · tls :${tlsPort}`);

    const plain = await device('plain-1', { tcp: true });
    await plain.register();
    const tcpEvent = await event('registered');
    assert.deepEqual([tcpEvent.payload.endpoint, tcpEvent.payload.transport, tcpEvent.payload.binding, tcpEvent.payload.security], ['plain-1', 'tcp', 'T', 'NoSec']);
    helper.getNode('read').receive({ endpoint: 'plain-1' });
    assert.equal((await nextMessage(helper.getNode('answer'))).payload, 100);

    const meter = await device('meter-1', { server: { address: '127.0.0.1', port: tlsPort }, tls: { identity: 'meter-1-id', key: Buffer.from(KEY, 'hex') } });
    await meter.register();
    const tlsEvent = await event('registered');
    assert.deepEqual([tlsEvent.payload.transport, tlsEvent.payload.security, tlsEvent.payload.identity], ['tls', 'PSK', 'meter-1-id']);
    helper.getNode('read').receive({ endpoint: 'meter-1' });
    assert.equal((await nextMessage(helper.getNode('answer'))).payload, 100);

    const logged = JSON.stringify([...server.error.args, ...server.warn.args, ...server.log.args, ...(server.debug?.args ?? [])]);
    assert.equal(logged.includes(KEY), false);
    assert.equal(JSON.stringify([tcpEvent, tlsEvent]).includes(KEY), false);
  });

  it('fails a read at once with no-connection when the device\'s connection has closed; it stays registered', async () => {
    await loadFlow();
    const d = await device('plain-2', { tcp: true });
    await d.register();
    await event('registered');
    await d.stop();
    await until(() => helper.getNode('srv').host.service.coap.tcp.connectionCount === 0);
    helper.getNode('read').receive({ endpoint: 'plain-2', marker: 'gone' });
    const caught = await nextMessage(helper.getNode('caught'));
    assert.equal(caught.marker, 'gone');
    assert.match(caught.error.message, /no connection with 127\.0\.0\.1:\d+ \(the device must connect again/);
    assert.equal(helper.getNode('read').status.lastCall.args[0].text, 'lwm2m-operations.failure.no-connection');
    assert.ok(helper.getNode('srv').host.service.registrations.getByEndpoint('plain-2'));
  });

  it('bootstraps a device over TCP, which then registers over TCP with the coap+tcp:// account it was given', async () => {
    await loadFlow();
    const objects = buildObjectTree({ 1: { 0: { 0: 1, 1: 60 } }, 3: { 0: { 0: 'Acme' } }, 3303: { 0: { 5700: 20 } } });
    const bsPeer = { address: '127.0.0.1', port: bsTcpPort };
    const fresh = await device('boot-1', { server: bsPeer, bootstrapServer: bsPeer, tcp: true, objects });
    await fresh.bootstrap();
    const finished = await nextMessage(helper.getNode('bsout'));
    assert.equal(finished.topic, 'started');
    assert.equal((await nextMessage(helper.getNode('bsout'))).topic, 'finished');
    assert.equal(fresh.getResource('/0/0/0'), `coap+tcp://127.0.0.1:${tcpPort}`);
    await fresh.register();
    const registered = await event('registered');
    assert.deepEqual([registered.payload.endpoint, registered.payload.transport], ['boot-1', 'tcp']);
  });

  it('a full redeploy keeps the TCP device registered; once it reconnects and updates, its observation is made again and reads reach it', async () => {
    await loadFlow();
    const d = await device('plain-3', { tcp: true });
    await d.register();
    assert.equal((await nextMessage(helper.getNode('temps'))).first, true);
    await helper.setFlows(flow(), 'full');
    const server = helper.getNode('srv').host.service;
    await server.ready;
    assert.equal(server.registrations.getByEndpoint('plain-3').transport, 'tcp');
    // The old server released the connection: the device connects again and updates, as a device does.
    await d.reconnect();
    await d.update();
    await until(() => d.observations.length === 1, 5000, 'the observation made again on the new connection');
    await d.setResource('/3303/0/5700', 17.5);
    let temperature;
    do temperature = await nextMessage(helper.getNode('temps'), 5000);
    while (temperature.payload !== 17.5);
    helper.getNode('read').receive({ endpoint: 'plain-3' });
    assert.equal((await nextMessage(helper.getNode('answer'))).payload, 100);
  });
});
