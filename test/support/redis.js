'use strict';
// A redis-server of the test's own: a free loopback port, its own directory under test-artifacts/, no persistence
// (a restart loses everything, the hardest case for the servers that must bring it up to date), stopped by the test.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { serverPort } = require('./ports');

const root = path.resolve(__dirname, '..', '..');

/** Resolves once a TCP connection to the port is accepted, or rejects after timeoutMs. */
async function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A started redis-server: url, port, stop(), restart() (same port, empty again), kill() (SIGKILL). */
async function startRedis(options = {}) {
  const port = options.port ?? (await serverPort('tcp'));
  const dir = path.join(root, 'test-artifacts', `redis-${process.pid}-${port}`);
  fs.mkdirSync(dir, { recursive: true });
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: undefined,
    log: '',
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes'];
      if (options.password) args.push('--requirepass', options.password);
      const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (chunk) => (redis.log = (redis.log + chunk).slice(-20_000)));
      child.stderr.on('data', (chunk) => (redis.log = (redis.log + chunk).slice(-20_000)));
      redis.child = child;
      await waitForPort(port);
    },
    async stop() {
      const child = redis.child;
      redis.child = undefined;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
    async restart(downMs = 0) {
      await redis.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await redis.start();
    },
    async close() {
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await redis.start();
  return redis;
}

module.exports = { startRedis, waitForPort };
