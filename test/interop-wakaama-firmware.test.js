'use strict';
// Eclipse Wakaama's lwm2mclient (scripts/peers/wakaama.sh) judges the firmware update of the protocol core: its /5
// object (examples/client/common/object_firmware.c) announces push only (/5/0/9 = 1) and CoAP/CoAPs (/5/0/8), takes
// the package through its library's Block1 reassembly in the block size it is started with, and, being an example, never
// leaves State 1 (Downloading): the campaign shows the transfer, the stuck state, the timeout and the reset.
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FirmwareService } = require('../dist/lib/firmware/firmware-service');
const { OptionNumber } = require('../dist/lib/coap/codes');
const { decodeBlock } = require('../dist/lib/coap/block');
const { decodeUint, findOption, uriPath } = require('../dist/lib/coap/options');
const { once } = require('./support/udp');
const { until } = require('./support/wait');
const { recorder, settings, firmwarePackage } = require('./support/firmware');
const { requireWakaama, lwm2mClient, stopAllWakaama, receivedByClient } = require('./support/wakaama');

const TRANSMISSION = { ackTimeoutMs: 500, maxRetransmit: 3 };
const PUT = 3;

describe('interop: Eclipse Wakaama lwm2mclient\'s Firmware Update object (/5)', function () {
  this.timeout(40_000);
  let server;
  let firmware;

  before(function () {
    requireWakaama(this);
  });

  beforeEach(async () => {
    server = new Lwm2mServer({ address: '127.0.0.1', port: 0, transmission: TRANSMISSION, client: { defaultTimeoutMs: 5000 } });
    firmware = new FirmwareService(server);
    await server.start();
  });

  afterEach(async () => {
    await stopAllWakaama();
    await server.stop();
  });

  async function registeredClient(endpoint, options = {}) {
    const registered = once(server, 'registered', 10_000);
    const client = lwm2mClient({ endpoint, port: server.coap.plain.address.port, ...options });
    await registered;
    return client;
  }

  async function campaign(request) {
    const record = recorder();
    await firmware.start({ concurrency: 1, ...request }, 'interop', record.listener);
    await record.ended;
    return record;
  }

  it('pushes a package in the 64-byte Block1 blocks the client asks for (after its 4.13), byte for byte; its State stays Downloading, so the download phase times out and the device is reset', async () => {
    const client = await registeredClient('wk-fw', { blockSize: 64 });
    const pkg = firmwarePackage('2.0.0', 3000);
    client.mark();
    const { results, progress } = await campaign({ package: pkg, settings: settings({ requestTimeoutMs: 3000, downloadTimeoutMs: 3000, version: '2.0.0' }) });
    const [result] = results;
    // What the client reported: Firmware Version 1.0 (/3/0/3), push only, State 1 from the start.
    assert.deepEqual([result.status, result.code, result.delivery, result.previousVersion, result.state], ['failed', 'timeout', 'push', '1.0', 1]);
    assert.match(result.reason, /did not reach Downloaded within 3 s \(State 1 Downloading\)/);
    assert.ok(progress.some((event) => event.phase === 'resetting' && /stayed Downloading/.test(event.detail)), 'its reset left it Downloading');
    const bytes = progress.filter((event) => event.bytes !== undefined);
    assert.deepEqual(bytes.at(-1).bytes, pkg.length);

    // The client's own log of what it received (it may trail the answers): the package in Block1 blocks on /5/0/0, and a reset before and after.
    const putsNow = () => receivedByClient(client.output).filter((message) => message.code === PUT && uriPath(message.options) === '/5/0/0');
    await until(() => putsNow().filter((message) => !findOption(message.options, OptionNumber.Block1)).length === 2, 5000, 'the second reset in the client\'s log');
    const puts = putsNow();
    const blocks = puts.filter((message) => findOption(message.options, OptionNumber.Block1)).map((message) => ({
      block: decodeBlock(decodeUint(findOption(message.options, OptionNumber.Block1).value)),
      payload: message.payload,
    }));
    const first512 = blocks.findIndex((b) => b.block.szx === 5);
    assert.equal(first512, 0, 'the first block in 512 bytes, which it refuses with 4.13');
    const small = blocks.filter((b) => b.block.szx === 2 && b.payload.length > 1);
    assert.deepEqual(small.map((b) => b.block.num), Array.from({ length: Math.ceil(pkg.length / 64) }, (_, i) => i), 'then every 64-byte block once, in order');
    assert.deepEqual(Buffer.concat(small.map((b) => b.payload)), pkg);
    assert.equal(small.at(-1).block.more, false);
    // The resets: a Package of one zero byte (it takes packages only by push).
    const resets = puts.filter((message) => !findOption(message.options, OptionNumber.Block1));
    assert.deepEqual(resets.map((message) => [...message.payload]), [[0], [0]]);
    assert.ok(puts.indexOf(resets[0]) < puts.indexOf(puts.find((message) => findOption(message.options, OptionNumber.Block1))));
  });

  it('refuses to pull from a client that takes packages only by push, and writes nothing to it (not even a reset)', async () => {
    const client = await registeredClient('wk-pull');
    client.mark();
    const { results } = await campaign({ package: firmwarePackage('2.0.0', 500), settings: settings({ delivery: 'pull' }) });
    assert.deepEqual([results[0].status, results[0].code], ['failed', 'unsupported-delivery']);
    assert.match(results[0].reason, /only by push \(\/5\/0\/9 = 1\)/);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(receivedByClient(client.output).filter((message) => message.code === PUT), [], 'not even a reset: it was left as it was');
  });

  it('refuses a URI of a protocol the client does not list in /5/0/8 (it lists CoAP and CoAPs)', async () => {
    await registeredClient('wk-url');
    const { results } = await campaign({ url: 'https://example.org/fw.bin', settings: settings() });
    assert.deepEqual([results[0].status, results[0].code], ['failed', 'unsupported-delivery']);
  });
});
