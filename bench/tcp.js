'use strict';
// Reads over CoAP over TCP (RFC 8323), beside the UDP reads: the server in a process of its own
// (bench/server-process.js) with only a TCP listener, 200 lean devices over one connection each
// (bench/lean-tcp-devices.js, a process of their own), reads issued in the server's process as a flow
// issues them: closed loop (one in flight per device), then paced at 10,000/s (open loop, 3 s).
const path = require('node:path');
const net = require('node:net');
const { fork } = require('node:child_process');

const DEVICES = 200;
const PER_DEVICE = 50;
const PACED = 10000;

const ask = (child, message) =>
  new Promise((resolve, reject) => {
    child.once('message', (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply)));
    child.send(message);
  });

function freeTcpPort() {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** The TCP server process with DEVICES lean devices connected and registered, for the duration of body(server). */
async function withTcpServer(body) {
  const port = await freeTcpPort();
  const server = fork(path.join(__dirname, 'server-process.js'));
  const devices = fork(path.join(__dirname, 'lean-tcp-devices.js'));
  try {
    await ask(server, { command: 'start', options: { tcp: { port } } });
    await ask(devices, { command: 'open', count: DEVICES, prefix: 't', address: '127.0.3.1', server: { address: '127.0.0.1', port }, lifetime: 3600 });
    return await body(server);
  } finally {
    await ask(devices, { command: 'close' }).catch(() => undefined);
    devices.kill();
    await ask(server, { command: 'stop' }).catch(() => undefined);
    server.kill();
  }
}

/** The TCP read workloads, recorded as the UDP ones are (record(name, runs, extra)). */
async function tcpWorkloads(record, runs, median) {
  const closed = [];
  const paced = [];
  for (let i = 0; i < runs; i++) {
    const run = await withTcpServer((server) => ask(server, { command: 'reads', path: '/3/0/9', perDevice: PER_DEVICE }));
    if (run.answered < run.issued) throw new Error(`TCP reads: ${run.issued - run.answered} of ${run.issued} failed`);
    closed.push(run);
    const open = await withTcpServer((server) => ask(server, { command: 'reads', path: '/3/0/9', perSecond: PACED, durationMs: 3000 }));
    if (open.answered < open.issued) throw new Error(`TCP paced reads: ${open.issued - open.answered} of ${open.issued} failed or unanswered`);
    paced.push(open);
  }
  record(`reads over TCP (${DEVICES} devices, 1 in flight each)`, closed, { p50Ms: median(closed.map((r) => r.p50)), p99Ms: median(closed.map((r) => r.p99)) });
  record(`reads over TCP paced at ${PACED}/s`, paced, { p50Ms: median(paced.map((r) => r.p50)), p99Ms: median(paced.map((r) => r.p99)), p99MsRuns: paced.map((r) => Number(r.p99.toFixed(2))) });
}

module.exports = { tcpWorkloads };
