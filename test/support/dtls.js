'use strict';
const { execFileSync, spawn } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/**
 * Keys and certificates made by the openssl command line, as an operator
 * would: a CA, a server certificate, device certificates (CN = endpoint),
 * and a device key pair for raw public keys.
 */
function makePki(devices = ['dev-x509']) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-pki-'));
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ecKey = (name) => run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const signed = (name, cn, ca) => {
    ecKey(name);
    run('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.pem`);
  };
  const authority = (name) => {
    ecKey(name);
    run('req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', `${name}.pem`);
  };
  authority('ca');
  authority('rogue-ca');
  signed('server', 'localhost', 'ca');
  for (const device of devices) signed(device, device, 'ca');
  signed('rogue', devices[0], 'rogue-ca');
  // libcoap reads raw public keys from an "EC PRIVATE KEY" file.
  const rpkKey = (name) => run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  rpkKey('rpk');
  run('pkey', '-in', 'rpk.key', '-pubout', '-out', 'rpk.pub');
  rpkKey('other-rpk');
  const file = (name) => path.join(dir, name);
  const read = (name) => fs.readFileSync(file(name), 'utf8');
  return { dir, file, read, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a command line peer to its end (or a time limit); resolves with its exit code and output. */
function runPeer(command, args, { input, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    if (input !== undefined) child.stdin.write(input);
    // s_client ends after its input; keep stdin open briefly so the answer arrives first.
    setTimeout(() => child.stdin.end(), input !== undefined ? 1500 : 0);
  });
}

/**
 * A UDP relay between one client and a server that misbehaves the way
 * networks do: every datagram duplicated, pairs swapped in order, and the
 * server's datagrams whose numbers (from 0) are in dropFromServer lost.
 */
class UnreliableRelay {
  static async open(serverPort, { duplicate = true, reorder = true, dropFromServer = [] } = {}) {
    const relay = new UnreliableRelay(serverPort, duplicate, reorder);
    relay.dropFromServer = new Set(dropFromServer);
    await new Promise((resolve) => relay.socket.bind(0, '127.0.0.1', resolve));
    relay.port = relay.socket.address().port;
    return relay;
  }

  constructor(serverPort, duplicate, reorder) {
    this.serverPort = serverPort;
    this.duplicate = duplicate;
    this.reorder = reorder;
    this.socket = dgram.createSocket('udp4');
    this.held = undefined;
    this.forwarded = 0;
    this.fromServer = 0;
    this.dropped = 0;
    this.socket.on('message', (datagram, rinfo) => {
      const toServer = rinfo.port !== this.serverPort;
      if (toServer) this.client = rinfo.port;
      const target = toServer ? this.serverPort : this.client;
      if (!toServer && this.dropFromServer.has(this.fromServer++)) {
        this.dropped++;
        return;
      }
      this.pass(datagram, target);
    });
  }

  pass(datagram, target) {
    const copies = this.duplicate ? 2 : 1;
    const out = () => {
      for (let i = 0; i < copies; i++) this.socket.send(datagram, target, '127.0.0.1');
      this.forwarded++;
    };
    if (!this.reorder) return out();
    // Holds each odd datagram until the next one has gone (or 30 ms passed).
    if (this.held) {
      out();
      const held = this.held;
      this.held = undefined;
      clearTimeout(held.timer);
      held.send();
      return;
    }
    this.held = { send: out, timer: setTimeout(() => { const held = this.held; this.held = undefined; held?.send(); }, 30) };
  }

  close() {
    return new Promise((resolve) => this.socket.close(resolve));
  }
}

module.exports = { makePki, runPeer, UnreliableRelay };
