'use strict';
// The file service that devices pull packages from, judged by independent clients: libcoap's coap-client fetching
// in Block2 blocks over CoAP and over DTLS with a device's PSK, curl over HTTP (ranges included), and the simulated
// device's pulls over CoAPs and HTTP in whole campaigns.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const express = require('express');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { packageOf } = require('../dist/lib/firmware/packages');
const { routeFirmwareFiles, addFirmwareService, removeFirmwareService } = require('../dist/nodes/firmware-http');
const { FirmwareBench, firmwarePackage } = require('./support/firmware');
const { requireTool } = require('./support/tools');

const KEY = Buffer.from('firmware-psk-key');

function run(command, args) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 20000, encoding: 'latin1' }, (error, stdout, stderr) => resolve({ error, stdout, stderr, output: stdout + stderr }));
  });
}

const sha = (data) => crypto.createHash('sha256').update(data).digest('hex');

describe('firmware file service against independent clients', function () {
  this.timeout(30_000);
  const bench = new FirmwareBench();
  let dir;

  beforeEach(async () => {
    const security = new SecurityRegistry();
    security.set('dtls-dev', { mode: 'psk', identity: 'dtls-dev-id', key: KEY });
    security.set('dtls-other', { mode: 'psk', identity: 'dtls-other-id', key: Buffer.from('other-key') });
    await bench.startServer({ secure: { port: 0 }, security });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-fw-'));
  });

  afterEach(async () => {
    await bench.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const dtlsPort = () => bench.server.coap.secure.address.port;

  async function dtlsDevice(endpoint, identity, key, fw) {
    return bench.device(endpoint, { fw, server: { address: '127.0.0.1', port: dtlsPort() }, dtls: { identity, key } });
  }

  it('libcoap coap-client fetches a file in 64-byte Block2 blocks over CoAP, byte for byte, from the device\'s address', async function () {
    const client = requireTool(this, 'coap-client-notls', 'libcoap3-bin');
    await bench.device('plain-dev');
    const pkg = packageOf(firmwarePackage('1.2.3', 20_000));
    const grant = bench.firmware.files.grant('plain-dev', pkg);
    const uri = bench.firmware.files.uri(grant.token, 'coap', {});
    const out = path.join(dir, 'fw.bin');
    const { output } = await run(client, ['-v', '7', '-b', '64', '-o', out, uri]);
    assert.equal(sha(fs.readFileSync(out)), pkg.sha256, output.slice(-2000));
    // libcoap asked for 64-byte blocks and got them, all 313, each with the file's ETag, the first with its size.
    const answers = output.match(/t:ACK c:2\.05 [^\n]*/g) ?? [];
    assert.equal(new Set(answers.map((answer) => /Block2:(\d+)\/[M_]\/64\b/.exec(answer)?.[1])).size, Math.ceil(20_000 / 64), output.slice(0, 2000));
    assert.ok(answers.every((answer) => answer.includes(`ETag:0x${pkg.etag.toString('hex')}`)));
    assert.ok(answers.find((answer) => answer.includes('Block2:0/M/64')).includes('Size2:20000'));
    assert.equal(grant.served, pkg.data.length, 'the last block counted as served');
  });

  it('libcoap coap-client-openssl fetches over DTLS under the device\'s PSK identity; another device\'s identity gets 4.03', async function () {
    const client = requireTool(this, 'coap-client-openssl', 'libcoap3-bin');
    await dtlsDevice('dtls-dev', 'dtls-dev-id', KEY);
    const pkg = packageOf(firmwarePackage('1.2.3', 8000));
    const grant = bench.firmware.files.grant('dtls-dev', pkg);
    const uri = bench.firmware.files.uri(grant.token, 'coaps', {});
    assert.match(uri, new RegExp(`^coaps://127\\.0\\.0\\.1:${dtlsPort()}/fw/`));
    const out = path.join(dir, 'fw.bin');
    const ok = await run(client, ['-u', 'dtls-dev-id', '-k', KEY.toString(), '-b', '256', '-o', out, uri]);
    assert.equal(sha(fs.readFileSync(out)), pkg.sha256, ok.output.slice(-2000));
    const refused = await run(client, ['-v', '6', '-u', 'dtls-other-id', '-k', 'other-key', uri]);
    assert.match(refused.output, /4\.03/);
    assert.match(refused.output, /this file is for another device/);
  });

  it('a device that registered over DTLS is never served over plain CoAP, even from its address', async function () {
    const client = requireTool(this, 'coap-client-notls', 'libcoap3-bin');
    await dtlsDevice('dtls-dev', 'dtls-dev-id', KEY);
    const grant = bench.firmware.files.grant('dtls-dev', packageOf(Buffer.from('secret firmware')));
    const uri = bench.firmware.files.uri(grant.token, 'coap', {});
    const { output } = await run(client, ['-v', '6', uri]);
    assert.match(output, /4\.03/);
  });

  it('a DTLS device pulls its update over CoAPs on the server\'s DTLS socket, over its own session', async () => {
    const device = await dtlsDevice('dtls-dev', 'dtls-dev-id', KEY, { deliveryMethod: 0, protocols: [1], pullSzx: 4 });
    const { results } = await bench.run({ package: firmwarePackage('5.0.0', 10_000), settings: { version: '5.0.0' } });
    assert.deepEqual(results.map((r) => [r.status, r.delivery, r.scheme, r.version]), [['success', 'pull', 'coaps', '5.0.0']]);
    assert.match(device.firmware.uris[0], new RegExp(`^coaps://127\\.0\\.0\\.1:${dtlsPort()}/fw/`));
  });

  for (const transport of ['tcp', 'tls']) {
    it(`a device registered over ${transport.toUpperCase()} pulls its update over ${transport === 'tcp' ? 'coap+tcp' : 'coaps+tcp'} on the server's ${transport.toUpperCase()} listener, its own connection`, async () => {
      await bench.server.stop();
      const security = new SecurityRegistry();
      security.set('stream-dev', { mode: 'psk', identity: 'stream-dev-id', key: KEY });
      await bench.startServer({ port: undefined, [transport]: { port: 0 }, security });
      const scheme = transport === 'tcp' ? 'coap+tcp' : 'coaps+tcp';
      const listener = bench.server.coap[transport].address;
      const device = await bench.device(transport === 'tcp' ? 'tcp-dev' : 'stream-dev', {
        fw: { deliveryMethod: 0, protocols: [transport === 'tcp' ? 4 : 5] },
        server: { address: '127.0.0.1', port: listener.port },
        binding: 'T',
        ...(transport === 'tcp' ? { tcp: true } : { tls: { identity: 'stream-dev-id', key: KEY } }),
      });
      const { results, progress } = await bench.run({ package: firmwarePackage('8.0.0', 30_000), settings: { version: '8.0.0' } });
      assert.deepEqual(results.map((r) => [r.status, r.delivery, r.scheme, r.version]), [['success', 'pull', scheme, '8.0.0']]);
      assert.match(device.firmware.uris[0], new RegExp(`^${scheme.replace('+', '\\+')}://127\\.0\\.0\\.1:${listener.port}/fw/`));
      assert.equal(progress.filter((event) => event.bytes !== undefined).at(-1).percent, 100);
    });
  }

  it('uses the public URIs given for NAT in what it writes to the device', async () => {
    const device = await bench.device('natted', { fw: { deliveryMethod: 0, stepMs: 60_000 } });
    const record = bench.run({ package: firmwarePackage('2.0.0', 1000), settings: { publicUris: { coap: 'coap://203.0.113.5:15683' }, downloadTimeoutMs: 300 } });
    await record;
    assert.match(device.firmware.uris[0], /^coap:\/\/203\.0\.113\.5:15683\/fw\/[\w-]{22}$/);
  });

  it('gives devices a URI of elsewhere (msg.url) to fetch their package from, and follows them to the end', async () => {
    const pkg = firmwarePackage('6.0.0', 50_000);
    const files = http.createServer((req, res) => (req.url === '/fw/6.0.0.bin' ? res.end(pkg) : res.writeHead(404).end()));
    await new Promise((resolve) => files.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${files.address().port}/fw/6.0.0.bin`;
      const device = await bench.device('external', { fw: { deliveryMethod: 0, protocols: [0, 2] } });
      const { results } = await bench.run({ url, settings: { version: '6.0.0' } });
      assert.deepEqual(results.map((r) => [r.status, r.delivery, r.scheme, r.version]), [['success', 'pull', 'http', '6.0.0']]);
      assert.deepEqual(device.firmware.uris, [url]);
      const missing = await bench.run({ url: url.replace('6.0.0.bin', 'gone.bin'), endpoints: ['external'] });
      assert.deepEqual([missing.results[0].code, missing.results[0].updateResult], ['invalid-uri', 7]);
    } finally {
      await new Promise((resolve) => files.close(resolve));
    }
  });

  describe('over HTTP (the node\'s route on Node-RED\'s HTTP server)', () => {
    let server;
    let base;

    beforeEach(async () => {
      const app = express();
      routeFirmwareFiles({ httpNode: app, log: { debug() {} } });
      addFirmwareService(bench.firmware);
      server = http.createServer(app);
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${server.address().port}/`;
    });

    afterEach(async () => {
      removeFirmwareService(bench.firmware);
      await new Promise((resolve) => server.close(resolve));
    });

    it('curl fetches the whole file, a byte range (206), and is refused from another address (403)', async function () {
      const curl = requireTool(this, 'curl', 'curl');
      await bench.device('http-dev');
      const pkg = packageOf(firmwarePackage('1.0.0', 100_000));
      const grant = bench.firmware.files.grant('http-dev', pkg);
      const uri = bench.firmware.files.uri(grant.token, 'http', { http: base });
      assert.match(uri, /\/lwm2m-firmware\/[\w-]{22}$/);
      const out = path.join(dir, 'fw.bin');
      const whole = await run(curl, ['-sS', '-D', '-', '-o', out, uri]);
      assert.match(whole.stdout, /^HTTP\/1\.1 200/);
      assert.match(whole.stdout, new RegExp(`ETag: "${pkg.etag.toString('hex')}"`, 'i'));
      assert.equal(sha(fs.readFileSync(out)), pkg.sha256);
      const range = await run(curl, ['-sS', '-D', '-', '-o', out, '-r', '1000-1999', uri]);
      assert.match(range.stdout, /^HTTP\/1\.1 206/);
      assert.match(range.stdout, /Content-Range: bytes 1000-1999\/100000/i);
      assert.deepEqual(fs.readFileSync(out), pkg.data.subarray(1000, 2000));
      const beyond = await run(curl, ['-sS', '-D', '-', '-o', '/dev/null', '-r', '200000-', uri]);
      assert.match(beyond.stdout, /^HTTP\/1\.1 416/);
      const other = await run(curl, ['-sS', '-D', '-', '-o', '/dev/null', '--interface', '127.0.0.2', uri.replace('127.0.0.1', '127.0.0.1')]);
      assert.match(other.stdout, /^HTTP\/1\.1 403/);
      const unknown = await run(curl, ['-sS', '-D', '-', '-o', '/dev/null', `${base}lwm2m-firmware/nope`]);
      assert.match(unknown.stdout, /^HTTP\/1\.1 404/);
    });

    it('a device that fetches over HTTP only pulls its update from Node-RED, with progress from the bytes written', async () => {
      const device = await bench.device('http-only', { fw: { deliveryMethod: 0, protocols: [2] } });
      const pkg = firmwarePackage('7.0.0', 300_000);
      const { results, progress } = await bench.run({ package: pkg, settings: { version: '7.0.0', publicUris: { http: base } } });
      assert.deepEqual(results.map((r) => [r.status, r.delivery, r.scheme, r.version]), [['success', 'pull', 'http', '7.0.0']]);
      assert.match(device.firmware.uris[0], new RegExp(`^${base}lwm2m-firmware/`));
      const bytes = progress.filter((event) => event.bytes !== undefined);
      assert.ok(bytes.length >= 2 && bytes.at(-1).bytes === pkg.length, JSON.stringify(bytes));
    });
  });
});
