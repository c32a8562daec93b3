'use strict';
// Eclipse Wakaama's example client (scripts/peers/wakaama.sh) judges, at the protocol core, what
// test/interop-wakaama.test.js cannot see from a flow: that an Observe answered in 16-byte blocks makes one
// observation (the client's own log of what it received), and that its bootstrap account survives a bootstrap.
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
const { parseBootstrapConfig } = require('../dist/lib/bootstrap/bootstrap-config');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { recordsToPayload } = require('../dist/lib/content/payload');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { once } = require('./support/udp');
const { until } = require('./support/wait');
const { requireWakaama, lwm2mClient, stopAllWakaama, receivedByClient } = require('./support/wakaama');

const P = (text) => Lwm2mPath.parse(text);
const TRANSMISSION = { ackTimeoutMs: 500, maxRetransmit: 3 };

describe('interop: Eclipse Wakaama lwm2mclient judges Observe with Block2 and the bootstrap account', function () {
  this.timeout(30_000);
  let server;
  let bootstrap;

  before(function () {
    requireWakaama(this);
  });

  beforeEach(async () => {
    server = new Lwm2mServer({ address: '127.0.0.1', port: 0, transmission: TRANSMISSION, client: { defaultTimeoutMs: 5000 } });
    await server.start();
    bootstrap = new BootstrapServer({ address: '127.0.0.1', port: 0, transmission: TRANSMISSION, requestTimeoutMs: 5000 });
    await bootstrap.start();
  });

  afterEach(async () => {
    await stopAllWakaama();
    await bootstrap.stop();
    await server.stop();
  });

  const lwm2mPort = () => server.coap.plain.address.port;
  const bootstrapPort = () => bootstrap.coap.plain.address.port;

  async function registeredClient(endpoint, options = {}) {
    const registered = once(server, 'registered', 10_000);
    const client = lwm2mClient({ endpoint, port: lwm2mPort(), ...options });
    await registered;
    return client;
  }

  it('observes /3/0 of a client with 16-byte blocks in TLV, SenML JSON and SenML CBOR: one observation each, its notification delivered', async () => {
    const client = await registeredClient('wk-blocks', { blockSize: 16 });
    for (const format of [11542, 110, 112]) {
      client.mark();
      const events = [];
      const listener = { notify: (event) => events.push(event), error: (error) => events.push(error), ended: () => undefined };
      const { observation, established, first } = await server.observe('wk-blocks', new ObserveRequest(P('/3/0'), format), listener);
      assert.equal(established, true, `${format}: Observe is in the first block`);
      assert.equal(recordsToPayload(first.records, P('/3/0'))[0], 'Open Mobile Alliance');
      // What the client received: one GET with Observe, every later block request without it.
      const gets = () => receivedByClient(client.output).filter((message) => message.code === 1);
      const blocks = Math.ceil(first.raw.length / 16);
      assert.ok(blocks > 5);
      await until(() => gets().length >= blocks, 3000, `the client's log of ${blocks} block requests`);
      assert.equal(gets().filter((message) => message.options.some((option) => option.number === 6)).length, 1, `${format}: one observation, not one per block`);
      await client.command('change /3/0/13 1700000000');
      await until(() => events.length > 0, 5000, `the ${format} notification`);
      assert.ok(!(events[0] instanceof Error), String(events[0]));
      assert.equal(recordsToPayload(events[0].records, P('/3/0'))[13].getTime(), 1700000000 * 1000);
      await server.observations.cancel(observation);
    }
  });

  it('keeps the bootstrap account of a client it provisions: the client can bootstrap again', async () => {
    bootstrap.setConfig('wk-again', parseBootstrapConfig({ uri: `coap://127.0.0.1:${lwm2mPort()}`, shortServerId: 7, lifetime: 60 }));
    const finished = once(bootstrap, 'finished', 10_000);
    const registered = once(server, 'registered', 10_000);
    const client = lwm2mClient({ endpoint: 'wk-again', port: bootstrapPort(), bootstrap: true });
    const [, summary] = await finished;
    assert.equal(summary.device.bootstrapAccount, '/0/0');
    assert.deepEqual(summary.device.written, ['/0/1', '/1/0']);
    await registered;
    // Its bootstrap account is still there: asked to, it bootstraps again and registers again.
    const again = once(bootstrap, 'finished', 10_000);
    const reRegistered = once(server, 'registered', 10_000);
    await client.command('bootstrap');
    assert.equal((await again)[1].device.bootstrapAccount, '/0/0');
    await reRegistered;
  });
});
