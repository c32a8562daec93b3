'use strict';
// Workload "firmware": pull throughput of the firmware file service. 100 devices (bench/firmware-load.js, a process of
// their own) each fetch a 256 KiB package block by block (GET /fw/<token>, Block2, 1,024-byte blocks, one request in
// flight each, closed loop) from the pack's server (bench/firmware-server-process.js, a process of its own) for 3 s:
// MB/s served and the server's CPU per MB. Beside it, in the same round and with the same load, the blob echo: a plain
// Node.js UDP socket answering each GET with a prepared 1,024-byte datagram (the ceiling of serving blocks from Node).
const { fork } = require('node:child_process');
const dgram = require('node:dgram');
const path = require('node:path');

const DEVICES = 100;
const PACKAGE_BYTES = 256 * 1024;
const SZX = 6;
const BLOCK_BYTES = 1024;
const DURATION_MS = 3000;
const LOAD_ADDRESS = '127.0.1.50';

const ask = (child, message) =>
  new Promise((resolve, reject) => {
    child.once('message', (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply)));
    child.send(message);
  });

async function freePort() {
  const socket = dgram.createSocket('udp4');
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

/** One round against one server kind: the bytes, blocks and the server's CPU over the fetch. */
async function round(kind) {
  const port = await freePort();
  const server = fork(path.join(__dirname, 'firmware-server-process.js'));
  const load = fork(path.join(__dirname, 'firmware-load.js'));
  try {
    await ask(server, { command: 'start', kind, port, blockBytes: BLOCK_BYTES });
    const serverPeer = { address: '127.0.0.1', port };
    // The pack's devices register, and get a token each; the echo answers anything, so its devices only need sockets.
    const { endpoints } = await ask(load, { command: 'open', count: DEVICES, address: LOAD_ADDRESS, prefix: 'fw', server: serverPeer, register: kind === 'pack' });
    const tokens = kind === 'pack' ? (await ask(server, { command: 'offer', endpoints, size: PACKAGE_BYTES })).tokens : endpoints;
    const blocks = Math.ceil(PACKAGE_BYTES / BLOCK_BYTES);
    // Warm-up, not measured.
    await ask(load, { command: 'fetch', tokens, blocks, szx: SZX, durationMs: 500, server: serverPeer });
    const before = await ask(server, { command: 'usage' });
    const started = performance.now();
    const stats = await ask(load, { command: 'fetch', tokens, blocks, szx: SZX, durationMs: DURATION_MS, server: serverPeer });
    const seconds = (performance.now() - started) / 1000;
    const after = await ask(server, { command: 'usage' });
    const cpuMs = (after.cpu.user - before.cpu.user + after.cpu.system - before.cpu.system) / 1000;
    const megabytes = stats.bytes / 1e6;
    if (stats.errors > 0) throw new Error(`${kind}: ${stats.errors} answers were not 2.05`);
    return { rate: stats.blocks / seconds, megabytesPerSecond: megabytes / seconds, cpuMsPerMB: cpuMs / megabytes, cpuMsPer1k: (cpuMs / stats.blocks) * 1000, retransmissions: stats.retransmissions, rssMB: after.rss / 1e6 };
  } finally {
    await ask(load, { command: 'close' }).catch(() => undefined);
    await ask(server, { command: 'stop' }).catch(() => undefined);
    load.kill();
    server.kill();
  }
}

/**
 * Runs `runs` rounds, each the blob echo then the pack, and hands both to
 * record(name, runs, extra) as the other workloads of npm run bench do.
 */
async function run({ runs, record, median }) {
  const echo = [];
  const pack = [];
  for (let i = 0; i < runs; i++) {
    echo.push(await round('blob echo'));
    pack.push(await round('pack'));
  }
  const extra = (samples) => ({
    megabytesPerSecond: Number(median(samples.map((s) => s.megabytesPerSecond)).toFixed(1)),
    cpuMsPerMB: Number(median(samples.map((s) => s.cpuMsPerMB)).toFixed(1)),
    retransmissions: samples.reduce((sum, s) => sum + s.retransmissions, 0),
  });
  record(`firmware pull: blob echo, ${DEVICES} devices (1 KiB answers)`, echo, extra(echo));
  const ofEcho = median(pack.map((s, i) => s.megabytesPerSecond / echo[i].megabytesPerSecond));
  record(`firmware pull: file service, ${DEVICES} devices (1 KiB blocks)`, pack, { ...extra(pack), ofBlobEcho: Number(ofEcho.toFixed(3)) });
}

module.exports = { name: 'firmware', run };
