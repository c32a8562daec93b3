'use strict';
// Ports for servers that other processes start (Node-RED, redis-server, nginx): chosen below the kernel's ephemeral
// range, so that no socket anyone binds to port 0 (another test's simulated devices, on a shared machine) can take
// one between the choice and the bind, which a port picked by binding port 0 and letting go is open to.
const dgram = require('node:dgram');
const fs = require('node:fs');
const net = require('node:net');

function ephemeralStart() {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32768;
  }
}

const LOW = 20000;
const handedOut = new Set();

function bindable(kind, port) {
  return new Promise((resolve) => {
    const done = (ok, close) => (close ? close(() => resolve(ok)) : resolve(ok));
    if (kind === 'udp') {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => done(false));
      socket.bind(port, '127.0.0.1', () => done(true, (cb) => socket.close(cb)));
    } else {
      const server = net.createServer();
      server.once('error', () => done(false));
      server.listen(port, '127.0.0.1', () => done(true, (cb) => server.close(cb)));
    }
  });
}

/** A port free on 127.0.0.1 for kind ('udp' or 'tcp'), below the ephemeral range, not handed out before by this process. */
async function serverPort(kind) {
  const high = Math.max(ephemeralStart(), LOW + 1000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (high - LOW));
    if (handedOut.has(port)) continue;
    if (await bindable(kind, port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range');
}

module.exports = { serverPort };
