'use strict';
// DTLS workloads of npm run bench: one client, pion/dtls (scripts/peers/pion), against the pack's DTLS server
// (in a process of its own, bench/servers/dtls-pack.js) and against libcoap's coap-server-openssl (OpenSSL
// underneath), interleaved round by round, both measured from outside (CPU of all threads).
const { execFileSync, fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { freePort, onLoadCpu } = require('../lib/processes');
const { measure } = require('../lib/results');

const ROOT = path.join(__dirname, '..', '..');
const OPENSSL = 'libcoap coap-server-openssl';
const IDENTITY = 'bench';
const KEY = Buffer.from('bench-psk-key').toString('hex');

function makePki(dir) {
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ecKey = (name) => run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  ecKey('ca');
  run('req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=bench-ca', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', 'ca.pem');
  for (const name of ['server', 'client']) {
    ecKey(name);
    run('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'bench'}`, '-out', `${name}.csr`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.pem`);
  }
  // pion reads PKCS#8 or SEC1 keys; openssl genpkey wrote PKCS#8.
  const file = (name) => path.join(dir, name);
  return { ca: file('ca.pem'), serverCert: file('server.pem'), serverKey: file('server.key'), clientCert: file('client.pem'), clientKey: file('client.key') };
}

function pion(binary, port, args, seconds) {
  const output = execFileSync(...onLoadCpu(binary, ['-addr', `127.0.0.1:${port}`, '-identity', IDENTITY, '-key', KEY, '-duration', `${seconds}s`, ...args]), { timeout: (seconds + 60) * 1000 });
  return JSON.parse(output.toString());
}

/**
 * Handshakes per second, one after the other (full PSK, full ECDHE-ECDSA
 * with client certificates, resumed PSK: coap-server-openssl stalls on
 * concurrent handshakes from pion, which would measure its stalls), and CoAP requests per second over 64 PSK/CCM_8 sessions with
 * one request in flight each; coap-server-openssl, driven by the same client, is the baseline of each.
 */
async function run({ runs, results }) {
  let binary;
  try {
    binary = execFileSync('bash', [path.join(ROOT, 'scripts', 'peers', 'pion.sh')], { stdio: ['ignore', 'pipe', 'inherit'] }).toString().trim();
    execFileSync('which', ['coap-server-openssl']);
  } catch {
    process.stderr.write('  DTLS workloads skipped: they need golang-go, golang-github-pion-dtls.v2-dev and libcoap3-bin (bash .ci/run installs them)\n');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-bench-dtls-'));
  const pki = makePki(dir);
  const ours = fork(path.join(__dirname, '..', 'servers', 'dtls-pack.js'), [], { env: { ...process.env, BENCH_DTLS: JSON.stringify({ identity: IDENTITY, key: KEY, pki }) } });
  const { port: ourPort } = await new Promise((resolve) => ours.once('message', resolve));
  const libcoapPort = await freePort();
  // coap-server listens for DTLS on the port after its CoAP port.
  const libcoap = spawn('coap-server-openssl', ['-A', '127.0.0.1', '-p', String(libcoapPort - 1), '-k', Buffer.from(KEY, 'hex').toString(), '-c', pki.serverCert, '-j', pki.serverKey, '-C', pki.ca, '-v', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const workloads = [
    ['handshakes, full PSK (CCM_8)', ['-mode', 'handshake', '-suite', 'psk', '-workers', '1']],
    ['handshakes, full ECDHE-ECDSA (X.509 both ways)', ['-mode', 'handshake', '-suite', 'ecdsa', '-cert', pki.clientCert, '-certkey', pki.clientKey, '-workers', '1']],
    ['handshakes, resumed PSK (session id)', ['-mode', 'handshake', '-suite', 'psk', '-resume', '-workers', '1']],
    ['requests over 64 PSK/CCM_8 sessions, 1 in flight each', ['-mode', 'requests', '-suite', 'psk', '-sessions', '64']],
  ];
  /** One pion run against port, measured on pid: its own count and rate (the time of its handshakes or requests, not of its start). */
  const measured = (pid, port, args) =>
    measure(pid, async () => {
      const outcome = pion(binary, port, args, 3);
      return { ok: outcome.count, lost: outcome.failed, ms: (outcome.count / outcome.rate) * 1000 };
    });
  try {
    for (const [name, args] of workloads) {
      const workload = `DTLS ${name}`;
      results.workload(workload, { baseline: OPENSSL });
      for (let round = 0; round < runs; round++) {
        try {
          results.add(workload, OPENSSL, round, await measured(libcoap.pid, libcoapPort, args));
        } catch (error) {
          process.stderr.write(`  ${OPENSSL}: ${String(error.message).split('\n')[0]}\n`);
        }
        results.add(workload, 'pack', round, await measured(ours.pid, ourPort, args));
      }
    }
  } finally {
    ours.kill();
    libcoap.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { name: 'dtls', run };
