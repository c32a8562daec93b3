'use strict';
// Content-format behaviour of issue 15 (items 14 and 17) against Eclipse Wakaama's lwm2mclient,
// an LwM2M 1.1 client nobody here wrote, built by scripts/peers/wakaama.sh into .peers/wakaama.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { WriteAttributesRequest } = require('../dist/lib/lwm2m/requests/write-attributes');
const { WriteRequest } = require('../dist/lib/lwm2m/requests/write');
const { recordsToPayload } = require('../dist/lib/content/payload');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { freePort, once } = require('./support/udp');

const CLIENT = path.join(__dirname, '..', '.peers', 'wakaama', 'bin', 'lwm2mclient');
const P = (text) => Lwm2mPath.parse(text);
const typed = (records) => records.map((r) => [r.path.toString(), r.type, Buffer.isBuffer(r.value) ? r.value.toString('hex') : r.value]);

describe('content formats against Eclipse Wakaama lwm2mclient', function () {
  this.timeout(30000);
  let server;
  let client;

  before(function () {
    if (fs.existsSync(CLIENT)) return;
    if (process.env.CI) throw new Error(`${CLIENT} is missing: .ci/run must run scripts/peers/wakaama.sh`);
    // eslint-disable-next-line no-console
    console.log('      (skipped: Wakaama not built; bash scripts/peers/wakaama.sh)');
    this.skip();
  });

  beforeEach(async () => {
    const port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, client: { defaultTimeoutMs: 5000 } });
    await server.start();
    const registered = once(server, 'registered', 15000);
    client = spawn(CLIENT, ['-4', '-h', '127.0.0.1', '-p', String(port), '-l', String(await freePort()), '-n', 'wakaama-content', '-t', '60'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await registered;
  });

  afterEach(async () => {
    if (client && client.exitCode === null) {
      const exited = new Promise((resolve) => client.once('exit', resolve));
      client.kill('SIGINT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
      if (client.exitCode === null) client.kill('SIGKILL');
    }
    await server.stop();
  });

  it('writes attribute numbers that Wakaama reads: plain decimal, never 1e+21 or 1e-7', async () => {
    // Wakaama refuses exponent form in gt, lt and st (utils_textToFloat(..., false)) with 4.00.
    const response = await server.send('wakaama-content', new WriteAttributesRequest(P('/3/0/9'), { gt: 1e21, lt: -1e21, st: 1e-7 }));
    assert.equal(response.code, '2.04');
  });

  it('writes text/plain floats that Wakaama reads: plain decimal, never 1e-7', async () => {
    // Wakaama reads text floats without exponent (lwm2m_data_decode_float: utils_textToFloat(..., false)).
    for (const value of [1e-7, -2.5e-5, 1e21]) {
      const response = await server.send('wakaama-content', new WriteRequest(P('/31024/10/3'), [{ path: P('/31024/10/3'), type: 'float', value }], 'replace', 0));
      assert.equal(response.code, '2.04', `writing ${value}`);
      // Read back as text: Wakaama keeps a 32-bit float, and its SenML JSON drops exponents (it writes 1e-7 as 1.0).
      const back = await server.send('wakaama-content', new ReadRequest(P('/31024/10/3'), 0));
      assert.ok(Math.abs(Number(back.records[0].value) - value) <= Math.abs(value) * 1e-6, `wrote ${value}, read ${back.records[0].value}`);
    }
  });

  it('reads values of an object outside the model (31024) typed by the format, the same whatever format Wakaama answers in', async () => {
    const registration = server.registrations.getByEndpoint('wakaama-content');
    assert.ok(registration.contentFormats.some((f) => f === 110 || f === 112), `Wakaama announced ct=${registration.contentFormats}`);
    const expected = [
      ['/31024/11/1', 'integer', 21],
      ['/31024/11/3', 'float', -28.99],
      ['/31024/11/5', 'string', 'I'],
    ];
    for (const format of [undefined, 110, 112]) {
      const response = await server.send('wakaama-content', new ReadRequest(P('/31024/11'), format));
      assert.deepEqual(typed(response.records).filter(([p]) => /\/(1|3|5)$/.test(p)), expected, `instance read in ${response.contentFormat}`);
    }
    // One resource: the server asks for a typed format itself, so the float comes out a number, not the text "-28.99".
    const one = await server.send('wakaama-content', new ReadRequest(P('/31024/11/3')));
    assert.ok([110, 112].includes(one.contentFormat), `answered in ${one.contentFormat}`);
    assert.deepEqual(typed(one.records), [['/31024/11/3', 'float', -28.99]]);
  });

  it('hands over the bytes of TLV, which carries no type, for the same object', async () => {
    const response = await server.send('wakaama-content', new ReadRequest(P('/31024/11/1'), 11542));
    assert.equal(response.contentFormat, 11542);
    assert.deepEqual(typed(response.records), [['/31024/11/1', 'opaque', '15']]);
  });

  it('takes a Send from Wakaama of an object outside the model with typed values', async () => {
    const sent = once(server, 'send', 10000);
    const registration = server.registrations.getByEndpoint('wakaama-content');
    assert.ok(registration);
    client.stdin.write('send 123 /31024/12 /3/0/9\n');
    const [, records, format] = await sent;
    assert.ok([110, 112].includes(format));
    const payload = recordsToPayload(records, Lwm2mPath.ROOT);
    assert.deepEqual([payload[31024][12][1], payload[31024][12][5], typeof payload[3][0][9]], [22, 'II', 'number']);
  });
});
