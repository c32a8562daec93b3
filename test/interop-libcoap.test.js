'use strict';
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { freePort, once } = require('./support/udp');
const { requireTool } = require('./support/tools');

function run(command, args) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 15000 }, (error, stdout, stderr) => resolve({ error, stdout, stderr, output: stdout + stderr }));
  });
}

describe('interop: libcoap coap-client as an LwM2M device', () => {
  let coapClient;
  let server;
  let port;

  before(function () {
    coapClient = requireTool(this, 'coap-client-notls', 'libcoap3-bin');
  });

  beforeEach(async () => {
    port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port });
    await server.start();
  });

  afterEach(() => server.stop());

  it('registers and gets the location in Location-Path', async () => {
    const registered = once(server, 'registered', 10000);
    const { output } = await run(coapClient, [
      '-v', '6', '-m', 'post', '-t', '40', '-e', '</>;rt="oma.lwm2m";ct=11542,</1/0>,</3/0>,</3303/0>',
      `coap://127.0.0.1:${port}/rd?ep=libcoap-device&lt=120&lwm2m=1.1&b=U`,
    ]);
    const [registration] = await registered;
    assert.equal(registration.endpoint, 'libcoap-device');
    assert.equal(registration.lifetime, 120);
    assert.deepEqual(registration.contentFormats, [11542]);
    assert.deepEqual(registration.objects.map((o) => o.id), [1, 3, 3303]);
    assert.match(output, /c:2\.01/);
    assert.match(output, new RegExp(`Location-Path:rd, Location-Path:${registration.id}`));
  });

  it('updates and de-registers through the location', async () => {
    const registered = once(server, 'registered', 10000);
    await run(coapClient, ['-m', 'post', '-e', '</3/0>', `coap://127.0.0.1:${port}/rd?ep=short&lt=60`]);
    const [registration] = await registered;
    const updated = once(server, 'updated', 10000);
    await run(coapClient, ['-m', 'post', `coap://127.0.0.1:${port}/rd/${registration.id}?lt=90`]);
    const [, changes] = await updated;
    assert.deepEqual(changes.filter((c) => c !== 'address'), ['lifetime']);
    const deregistered = once(server, 'deregistered', 10000);
    await run(coapClient, ['-m', 'delete', `coap://127.0.0.1:${port}/rd/${registration.id}`]);
    await deregistered;
    assert.equal(server.registrations.size, 0);
  });

  it('shows the reason of a rejected registration, cut to the size of the request', async () => {
    const reasons = [];
    server.on('malformed', (detail) => reasons.push(detail.reason));
    let result = await run(coapClient, ['-m', 'post', '-e', '</3/0>', `coap://127.0.0.1:${port}/rd?lt=60`]);
    // The request weighed 20 bytes: an address that never answered the server gets no more back (no amplification),
    // less 8 bytes kept for the pings that would verify it.
    assert.match(result.output, /4\.00 missing en\n/);
    result = await run(coapClient, ['-m', 'post', '-e', '</3/0>', `coap://127.0.0.1:${port}/rd?ep=old&lwm2m=0.9&padding-to-make-room-for-the-reason`]);
    assert.match(result.output, /4\.12 LwM2M version 0\.9 is not supported/);
    assert.equal(reasons.length, 2);
    assert.match(reasons[0], /^4\.00 missing endpoint client name \(ep\)/);
    assert.match(reasons[1], /^4\.12 LwM2M version 0\.9 is not supported/);
    assert.equal(server.registrations.size, 0);
  });

  it('sends a large registration in Block1 blocks', async () => {
    const links = ['</>;rt="oma.lwm2m"'];
    for (let i = 0; i < 150; i++) links.push(`</${20000 + i}/0>`);
    const registered = once(server, 'registered', 10000);
    await run(coapClient, ['-b', '64', '-m', 'post', '-t', '40', '-e', links.join(','), `coap://127.0.0.1:${port}/rd?ep=blocky`]);
    const [registration] = await registered;
    assert.equal(registration.objects.length, 150);
  });
});

describe('interop: libcoap coap-client asks for a Bootstrap-Pack (issue 21 item 4)', () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const cbor = require('cbor');
  const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
  const { parseBootstrapConfig } = require('../dist/lib/bootstrap/bootstrap-config');
  let coapClient;
  let bootstrap;
  let port;
  let dir;

  before(function () {
    coapClient = requireTool(this, 'coap-client-notls', 'libcoap3-bin');
  });

  beforeEach(async () => {
    port = await freePort();
    bootstrap = new BootstrapServer({ address: '127.0.0.1', port });
    await bootstrap.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bspack-'));
  });

  afterEach(async () => {
    await bootstrap.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves GET /bspack in 64-byte Block2 blocks that libcoap reassembles into the SenML CBOR pack', async () => {
    const servers = Array.from({ length: 6 }, (_, i) => ({ uri: `coap://lamp-server-${i}.example.com:5683`, shortServerId: i + 1, lifetime: 300 + i }));
    bootstrap.setConfig('libcoap-lamp', parseBootstrapConfig({ servers }));
    const finished = once(bootstrap, 'finished', 10000);
    const out = path.join(dir, 'pack.cbor');
    const { output } = await run(coapClient, ['-v', '6', '-m', 'get', '-A', '112', '-b', '64', '-o', out, `coap://127.0.0.1:${port}/bspack?ep=libcoap-lamp`]);
    const records = cbor.decodeFirstSync(fs.readFileSync(out));
    const value = (name) => records.find((record) => record.get(0) === name);
    assert.equal(value('/0/6/0').get(3), 'coap://lamp-server-5.example.com:5683');
    assert.deepEqual(servers.map((_, i) => value(`/1/${i}/1`).get(2)), [300, 301, 302, 303, 304, 305]);
    assert.ok((output.match(/Block2/g) ?? []).length > 10, 'fetched in many blocks');
    const [endpoint, summary] = await finished;
    assert.equal(endpoint, 'libcoap-lamp');
    assert.equal(summary.device.written.length, 12);
  });
});
