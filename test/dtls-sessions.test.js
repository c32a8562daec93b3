'use strict';
// DTLS sessions that outlive the server: kept across restarts and redeploys, resumable (RFC 5246 7.3), sealed at rest.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { DtlsServer } = require('../dist/lib/dtls/dtls-server');
const { connectionFromJson, connectionToJson, sessionFromJson, sessionToJson } = require('../dist/lib/dtls/session');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FileStateStore } = require('../dist/lib/lwm2m/state');
const { SecurityRegistry } = require('../dist/lib/lwm2m/security');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { SimulatedDevice } = require('../dist/sim/simulated-device');
const execFile = require('node:util').promisify(require('node:child_process').execFile);
const { requirePion, requireTool } = require('./support/tools');
const { runPeer } = require('./support/dtls');
const { holdsWithin } = require('./support/wait');

const PSK = { dev1: Buffer.from('secret-key-of-dev1') };

/** A DTLS echo server on a port (0: any), collecting its events. */
async function echoServer(port = 0, options = {}) {
  const server = new DtlsServer({ address: '127.0.0.1', port, credentials: { pskKey: (identity) => PSK[identity] }, ...options });
  server.events = [];
  server.on('established', (session) => server.events.push(session.resumed ? 'resumed' : 'full'));
  server.on('handshakeFailed', (peer, reason) => server.events.push(`failed: ${reason}`));
  server.received = [];
  const bound = await server.listen(
    (data, peer) => {
      server.received.push(data.toString().trim());
      server.send(Buffer.concat([Buffer.from('echo:'), data]), peer);
    },
    (error) => {
      throw error;
    },
  );
  server.port = bound.port;
  return server;
}

/** What a restart carries over: the saved records through their JSON form, as a store keeps them. */
function carryOver(server) {
  const changes = server.takeChanges();
  return {
    sessions: changes.sessions.map((session) => sessionFromJson(JSON.parse(JSON.stringify(sessionToJson(session))))),
    connections: changes.connections.map(({ id, record }) => ({ id, record: connectionFromJson(JSON.parse(JSON.stringify(connectionToJson(record)))) })),
  };
}

async function restart(server, options) {
  const saved = carryOver(server);
  server.keepSessions();
  await server.close();
  const next = new DtlsServer({ address: '127.0.0.1', port: server.port, credentials: { pskKey: (identity) => PSK[identity] }, ...options });
  const restored = next.restore(saved.sessions, saved.connections);
  const again = await echoServerFrom(next);
  again.restored = restored;
  return again;
}

async function echoServerFrom(server) {
  server.events = [];
  server.received = [];
  server.on('established', (session) => server.events.push(session.resumed ? 'resumed' : 'full'));
  server.on('handshakeFailed', (peer, reason) => server.events.push(`failed: ${reason}`));
  const bound = await server.listen(
    (data, peer) => {
      server.received.push(data.toString().trim());
      server.send(Buffer.concat([Buffer.from('echo:'), data]), peer);
    },
    (error) => {
      throw error;
    },
  );
  server.port = bound.port;
  return server;
}

/** openssl s_client kept open: lines go in on stdin, what it prints is collected. */
function interactiveClient(port, extra = []) {
  const child = spawn('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', 'PSK-AES128-CCM8', '-quiet', ...extra]);
  child.output = '';
  child.stdout.on('data', (chunk) => (child.output += chunk));
  child.stderr.on('data', (chunk) => (child.output += chunk));
  return child;
}

describe('DTLS sessions across restarts and resumption', function () {
  this.timeout(30_000);
  let server;
  let child;
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-dtls-state-'));
  });
  afterEach(async () => {
    child?.kill('SIGKILL');
    child = undefined;
    await server?.close();
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('openssl s_client goes on in its session after a server restart: no new handshake, answers in both directions', async function () {
    requireTool(this, 'openssl', 'openssl');
    server = await echoServer();
    child = interactiveClient(server.port);
    child.stdin.write('before the restart\n');
    assert.ok(await holdsWithin(() => child.output.includes('echo:before the restart'), 5000), child.output);
    server = await restart(server);
    assert.deepEqual(server.restored, { sessions: 1, connections: 1, refused: 0 });
    child.stdin.write('after the restart\n');
    assert.ok(await holdsWithin(() => child.output.includes('echo:after the restart'), 5000), child.output);
    assert.deepEqual(server.received, ['after the restart']);
    assert.deepEqual(server.events, [], 'no handshake on the restarted server');
  });

  it('resumes sessions (openssl -sess_out / -sess_in) with one round trip, also after a restart', async function () {
    requireTool(this, 'openssl', 'openssl');
    server = await echoServer();
    const sessionFile = path.join(dir, 'session.pem');
    const args = (extra) => ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', 'PSK-AES128-CCM8', ...extra];
    const first = await runPeer('openssl', args(['-sess_out', sessionFile]), { input: 'first\n' });
    assert.match(first.output, /New, /);
    const second = await runPeer('openssl', args(['-sess_in', sessionFile]), { input: 'second\n' });
    assert.match(second.output, /Reused, /);
    assert.match(second.output, /echo:second/);
    assert.deepEqual(server.events, ['full', 'resumed']);
    server = await restart(server);
    const third = await runPeer('openssl', args(['-sess_in', sessionFile]), { input: 'third\n' });
    assert.match(third.output, /Reused, /, 'resumed on the restarted server');
    assert.match(third.output, /echo:third/);
    assert.deepEqual(server.events, ['resumed']);
  });

  it('resumes without the cookie exchange, one round trip less (openssl -msg: one ClientHello), where a full handshake starts with it', async function () {
    requireTool(this, 'openssl', 'openssl');
    server = await echoServer();
    const sessionFile = path.join(dir, 'session.pem');
    const args = (extra) => ['s_client', '-dtls1_2', '-msg', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', 'PSK-AES128-CCM8', ...extra];
    // openssl -msg prints a line per record it sends: its handshake records tell how many ClientHellos it needed.
    const handshakeRecordsSent = (output) => (output.match(/^>>> (DTLS 1\.2, Handshake|.*content_type=22\))/gm) ?? []).length;
    const full = await runPeer('openssl', args(['-sess_out', sessionFile]), { input: 'full\n' });
    assert.equal(handshakeRecordsSent(full.output), 4, 'ClientHello, ClientHello with the cookie, ClientKeyExchange, Finished');
    const resumed = await runPeer('openssl', args(['-sess_in', sessionFile]), { input: 'resumed\n' });
    assert.match(resumed.output, /Reused, /);
    assert.match(resumed.output, /echo:resumed/);
    assert.equal(handshakeRecordsSent(resumed.output), 2, 'ClientHello and Finished: no cookie round trip');
    // The same sessions on a server that takes no resumption without a cookie.
    server = await restart(server, { cookielessResumptions: 0 });
    const withCookie = await runPeer('openssl', args(['-sess_in', sessionFile]), { input: 'x\n' });
    assert.match(withCookie.output, /Reused, /);
    assert.equal(handshakeRecordsSent(withCookie.output), 3, 'cookielessResumptions 0: the cookie exchange first');
  });

  it('pion/dtls completes full and resumed handshakes and exchanges data', async function () {
    const pion = requirePion(this);
    server = await echoServer();
    // Run beside this process's event loop, which serves the handshakes.
    const peer = async (...args) => JSON.parse((await execFile(pion, ['-addr', `127.0.0.1:${server.port}`, '-identity', 'dev1', '-key', PSK.dev1.toString('hex'), ...args], { timeout: 20_000 })).stdout);
    assert.deepEqual(await peer('-mode', 'echo', '-message', 'hello from pion'), { answer: 'echo:hello from pion' });
    const resumed = await peer('-mode', 'handshake', '-resume', '-workers', '1', '-duration', '500ms');
    assert.ok(resumed.count > 0 && resumed.failed === 0, JSON.stringify(resumed));
    assert.equal(server.events.filter((event) => event === 'full').length, 2, 'the echo and the session every resumption reuses');
    assert.equal(server.events.filter((event) => event === 'resumed').length, resumed.count);
  });

  it('resumes only what may be resumed: not after the key changed, not past the session lifetime, not with another suite', async function () {
    requireTool(this, 'openssl', 'openssl');
    server = await echoServer(0, { sessionLifetimeMs: 1500 });
    const sessionFile = path.join(dir, 'session.pem');
    const args = (extra, cipher = 'PSK-AES128-CCM8') => ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${server.port}`, '-psk_identity', 'dev1', '-psk', PSK.dev1.toString('hex'), '-cipher', cipher, ...extra];
    await runPeer('openssl', args(['-sess_out', sessionFile]), { input: 'x\n' });
    const otherSuite = await runPeer('openssl', args(['-sess_in', sessionFile], 'PSK-AES128-CBC-SHA256'), { input: 'x\n' });
    assert.match(otherSuite.output, /New, /);
    const original = PSK.dev1;
    PSK.dev1 = Buffer.from('a-new-key-for-dev1');
    try {
      const changedKey = await runPeer('openssl', args(['-sess_in', sessionFile]), { input: 'x\n' });
      assert.doesNotMatch(changedKey.output, /Reused/, 'a session of the old key is not resumed');
    } finally {
      PSK.dev1 = original;
    }
    await runPeer('openssl', args(['-sess_out', sessionFile]), { input: 'x\n' });
    await new Promise((resolve) => setTimeout(resolve, 1600));
    const expired = await runPeer('openssl', args(['-sess_in', sessionFile]), { input: 'x\n' });
    assert.match(expired.output, /New, /, 'past its lifetime a session is not resumed');
  });

  it('a restarted LwM2M server keeps a PSK device in its session (sealed in the state file): its next Update decrypts and a read reaches it without a handshake', async () => {
    const key = Buffer.from('lwm2m-psk-of-meter-1');
    const security = new SecurityRegistry();
    security.set('meter-1', { mode: 'psk', identity: 'meter-1-id', key });
    const file = path.join(dir, 'state.json');
    const stateKey = 'a state key from the node credentials';
    const start = async (port = 0, options = {}) => {
      const lwm2m = new Lwm2mServer({ address: '127.0.0.1', port: 0, secure: { port }, security, stateStore: new FileStateStore(file), stateKey, transmission: { ackTimeoutMs: 200, maxRetransmit: 2 }, ...options });
      lwm2m.handshakes = 0;
      lwm2m.coap.dtls.on('established', () => lwm2m.handshakes++);
      lwm2m.warnings = [];
      lwm2m.on('warning', (error) => lwm2m.warnings.push(error.message));
      await lwm2m.start();
      return lwm2m;
    };
    let lwm2m = await start();
    const dtlsPort = lwm2m.coap.secure.address.port;
    const device = new SimulatedDevice({ endpoint: 'meter-1', server: { address: '127.0.0.1', port: dtlsPort }, dtls: { identity: 'meter-1-id', key }, transmission: { ackTimeoutMs: 200, maxRetransmit: 2 } });
    await device.start();
    try {
      await device.register();
      assert.equal(lwm2m.handshakes, 1);
      await lwm2m.stop();
      const text = fs.readFileSync(file, 'utf8');
      const saved = JSON.parse(text);
      assert.equal(Object.keys(saved.collections.dtlsConnections).length, 1);
      assert.equal(Object.keys(saved.collections.dtlsSessions).length, 1);
      assert.ok(!text.includes(key.toString('hex')) && !text.includes(key.toString('base64')) && !text.includes('master'), 'no key material in clear');

      lwm2m = await start(dtlsPort);
      assert.equal(lwm2m.registrations.getByEndpoint('meter-1').transport, 'dtls');
      const read = await lwm2m.send('meter-1', new ReadRequest(Lwm2mPath.parse('/3/0/0')));
      assert.equal(read.code, '2.05', 'a read reaches the device over its old session');
      await device.update();
      assert.equal(lwm2m.handshakes, 0, 'no new handshake');
      await lwm2m.stop();

      // Under another state key the sealed sessions cannot be opened: they are dropped, with a warning.
      lwm2m = await start(dtlsPort, { stateKey: 'another key' });
      assert.match(lwm2m.warnings.join('\n'), /2 saved DTLS sessions could not be opened/);
      const refused = await lwm2m.send('meter-1', new ReadRequest(Lwm2mPath.parse('/3/0/0'))).catch((error) => error);
      assert.equal(refused.kind, 'no-session');
    } finally {
      await device.stop();
      await lwm2m.stop();
    }
  });
});
