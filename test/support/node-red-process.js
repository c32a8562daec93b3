'use strict';
// Node-RED in a process of its own, started the way `npm start` starts it.
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const { nodeRedDir } = require('./node-red');

const root = path.resolve(__dirname, '..', '..');

/** A TCP port that was free a moment ago on loopback. */
function freeTcpPort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Runs scripts/start.js on a user directory and resolves once the flows are started. */
async function startNodeRed(userDir, httpPort) {
  const child = spawn(process.execPath, [path.join(root, 'scripts', 'start.js')], {
    env: { ...process.env, NODE_RED_USER_DIR: userDir, PORT: String(httpPort), NODE_RED_DIR: nodeRedDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.log = '';
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      child.log += chunk;
      if (child.log.includes('Started flows')) resolve();
    });
    child.stderr.on('data', (chunk) => (child.log += chunk));
    child.once('exit', (code) => reject(new Error(`Node-RED exited ${code}\n${child.log}`)));
  });
  return child;
}

/** Stops it as Ctrl-C does, so nodes close and save their state. */
async function stopNodeRed(child) {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await exited;
}

module.exports = { freeTcpPort, startNodeRed, stopNodeRed };
