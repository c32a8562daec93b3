'use strict';
// Several Node-RED processes with the same flows and one Redis, as a cluster is deployed: each its own user
// directory (under test-artifacts/), its own CoAP ports and instance name through environment variables, the same
// flows.json and flows_cred.json (with the same state key, as copied flow files carry it).
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { serverPort } = require('./ports');

const root = path.resolve(__dirname, '..', '..');

/**
 * The flow every instance runs: a server on Redis; events and notifications counted per kind in global context;
 * POST /read {endpoints, ttl?} reads /3/0/0 of each; GET /stats answers the counts.
 */
function clusterFlow({ redisUrl, psk = {} }) {
  const count = (id, body) => ({ id, type: 'function', z: 'tab', func: body, outputs: 0, wires: [] });
  const bump = `
const stats = global.get('stats') || {};
const add = (key) => (stats[key] = (stats[key] || 0) + 1);
`;
  return [
    { id: 'tab', type: 'tab', label: 'cluster' },
    {
      id: 'srv',
      type: 'lwm2m-server',
      bindAddress: '127.0.0.1',
      port: '${LWM2M_PORT}',
      dtlsPort: '${LWM2M_DTLS_PORT}',
      security: Object.entries(psk).map(([endpoint, { identity }]) => ({ endpoint, mode: 'psk', identity })),
      awakeTime: 2,
      queueTtl: 120,
      reobserve: true,
      store: 'redis',
      redisUrl,
      redisPrefix: 'cluster-test:',
    },
    { id: 'events', type: 'lwm2m-events', z: 'tab', server: 'srv', registered: true, updated: true, deregistered: true, expired: true, send: true, wires: [['count-events']] },
    count('count-events', `${bump}add(msg.event); add('instance ' + msg.instance); global.set('stats', stats);`),
    { id: 'observe', type: 'lwm2m-observe', z: 'tab', server: 'srv', path: '/3303/0/5700', start: 'register', timeout: '10', wires: [['count-notifications']] },
    count('count-notifications', `${bump}if (msg.first) add('observed'); else { add('notifications'); add('value ' + (msg.payload % 1000)); } add('notified at ' + msg.instance); global.set('stats', stats);`),
    { id: 'read-in', type: 'http in', z: 'tab', url: '/read', method: 'post', wires: [['fan-out']] },
    {
      id: 'fan-out',
      type: 'function',
      z: 'tab',
      func: `for (const endpoint of msg.payload.endpoints) node.send({ endpoint, ...(msg.payload.ttl ? { ttl: msg.payload.ttl } : {}), timeout: msg.payload.timeout || 20 });
msg.payload = 'ok';
node.send([null, msg]);`,
      outputs: 2,
      wires: [['read'], ['read-out']],
    },
    { id: 'read-out', type: 'http response', z: 'tab', statusCode: '202', wires: [] },
    // Its timeout left empty: each msg gives one (a node setting would win over the msg's).
    { id: 'read', type: 'lwm2m-read', z: 'tab', server: 'srv', path: '/3/0/0', timeout: '', wires: [['count-reads']] },
    count('count-reads', `${bump}add('read'); add('read ' + msg.endpoint); global.set('stats', stats);`),
    { id: 'read-errors', type: 'catch', z: 'tab', scope: ['read'], uncaught: false, wires: [['count-read-errors']] },
    count('count-read-errors', `${bump}add('read failed'); add('read failed: ' + String(msg.error && msg.error.message).slice(0, 160)); global.set('stats', stats);`),
    { id: 'stats-in', type: 'http in', z: 'tab', url: '/stats', method: 'get', wires: [['stats']] },
    { id: 'stats', type: 'function', z: 'tab', func: `msg.payload = global.get('stats') || {}; return msg;`, outputs: 1, wires: [['stats-out']] },
    { id: 'stats-out', type: 'http response', z: 'tab', wires: [] },
  ];
}

/** One Node-RED instance of the cluster: started like `npm start`, in a user directory of its own. */
async function startInstance(dir, name, { flow, credentials, env = {} }) {
  const userDir = path.join(dir, name);
  fs.mkdirSync(userDir, { recursive: true });
  const httpPort = await serverPort('tcp');
  const udpPort = env.LWM2M_PORT ?? (await serverPort('udp'));
  const dtlsPort = env.LWM2M_DTLS_PORT ?? (await serverPort('udp'));
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = { uiHost: '127.0.0.1', uiPort: Number(process.env.PORT), flowFile: 'flows.json', credentialSecret: false, logging: { console: { level: 'warn' } }, telemetry: { enabled: false } };\n`,
  );
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow));
  fs.writeFileSync(path.join(userDir, 'flows_cred.json'), JSON.stringify(credentials));
  const child = spawn(process.execPath, [path.join(root, 'scripts', 'start.js')], {
    env: { ...process.env, NODE_RED_USER_DIR: userDir, PORT: String(httpPort), LWM2M_INSTANCE: name, LWM2M_PORT: String(udpPort), LWM2M_DTLS_PORT: String(dtlsPort), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own: scripts/start.js runs Node-RED as its child, and a kill must reach both.
    detached: true,
  });
  const instance = { name, child, httpPort, udp: { address: '127.0.0.1', port: udpPort }, dtls: { address: '127.0.0.1', port: dtlsPort }, log: '' };
  child.stdout.on('data', (chunk) => (instance.log = (instance.log + chunk).slice(-50_000)));
  child.stderr.on('data', (chunk) => (instance.log = (instance.log + chunk).slice(-50_000)));
  await waitForHttp(instance, 30_000);
  return instance;
}

/** Resolves once the instance's flows answer GET /stats. */
async function waitForHttp(instance, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (instance.child.exitCode !== null) throw new Error(`${instance.name} exited ${instance.child.exitCode}\n${instance.log}`);
    const ok = await request(instance, 'GET', '/stats').then(
      () => true,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${instance.name} did not start within ${timeoutMs} ms\n${instance.log}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function request(instance, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      { host: '127.0.0.1', port: instance.httpPort, method, path: urlPath, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} },
      (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => (res.statusCode >= 400 ? reject(new Error(`${res.statusCode} ${text}`)) : resolve(/^[[{]/.test(text) ? JSON.parse(text) : text)));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(data);
  });
}

/** The instance's counts (see clusterFlow); {} for one that is gone. */
function stats(instance) {
  if (instance.child.exitCode !== null || instance.child.signalCode) return Promise.resolve({});
  return request(instance, 'GET', '/stats');
}

/** As Ctrl-C stops it (nodes close and save). */
async function stopInstance(instance) {
  const child = instance.child;
  if (child.exitCode !== null || child.signalCode) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await exited;
}

/** Signals the instance's process group: the start script and Node-RED under it. */
function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** kill -9: no close, no save, sockets and the Redis connection dropped by the kernel. */
async function killInstance(instance) {
  const child = instance.child;
  if (child.exitCode !== null || child.signalCode) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  signalGroup(child, 'SIGKILL');
  await exited;
}

module.exports = { clusterFlow, startInstance, stopInstance, killInstance, request, stats };
