'use strict';
// Devices that pull a package (bench/firmware-pull.js), in a process of their own: one UDP socket each, each registers,
// then fetches its file block by block (GET /fw/<token> with Block2, one request in flight, 8-byte tokens), starting
// over at the end, until the time is up. Counts the payload bytes received and the retransmissions (500 ms timeout).
const dgram = require('node:dgram');
const { encode, decode } = require('../dist/lib/coap/message');

const GET = 1;
const POST = 2;
const CREATED = 0x41;
const CONTENT = 0x45;
const URI_PATH = 11;
const URI_QUERY = 15;
const BLOCK2 = 23;
const RETRY_MS = 500;

let devices = [];

function uint(value) {
  const bytes = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from(bytes);
}

function request(code, messageId, token, options, payload = Buffer.alloc(0)) {
  return encode({ type: 0, code, messageId, token, options, payload });
}

/** One device: its socket, its message ids, the request in flight. */
class Device {
  constructor(endpoint, socket) {
    this.endpoint = endpoint;
    this.socket = socket;
    this.messageId = Math.floor(Math.random() * 0x10000);
    this.token = Buffer.alloc(8);
    this.waiting = undefined;
    socket.on('message', (datagram) => {
      const waiting = this.waiting;
      if (!waiting) return;
      let message;
      try {
        message = decode(datagram);
      } catch {
        return;
      }
      if (message.messageId !== waiting.messageId || !message.token.equals(this.token)) return;
      clearTimeout(waiting.timer);
      this.waiting = undefined;
      waiting.resolve(message);
    });
  }

  /** Sends until answered (a lost datagram is sent again after 500 ms); counts the retransmissions. */
  exchange(code, options, payload, stats) {
    this.messageId = (this.messageId + 1) & 0xffff;
    this.token.writeUInt32BE(this.messageId, 0);
    const datagram = request(code, this.messageId, this.token, options, payload);
    return new Promise((resolve) => {
      const send = () => {
        this.socket.send(datagram, this.server.port, this.server.address);
        this.waiting.timer = setTimeout(() => {
          if (stats) stats.retransmissions++;
          send();
        }, RETRY_MS);
      };
      this.waiting = { messageId: this.messageId, resolve, timer: undefined };
      send();
    });
  }
}

async function open({ count, address, prefix, server, register }) {
  devices = [];
  for (let i = 0; i < count; i++) {
    const socket = dgram.createSocket('udp4');
    await new Promise((resolve) => socket.bind(0, address, resolve));
    const device = new Device(`${prefix}${i}`, socket);
    device.server = server;
    devices.push(device);
  }
  if (!register) return { endpoints: devices.map((device) => device.endpoint) };
  await Promise.all(
    devices.map(async (device) => {
      const options = [{ number: URI_PATH, value: Buffer.from('rd') }, { number: URI_QUERY, value: Buffer.from(`ep=${device.endpoint}`) }, { number: URI_QUERY, value: Buffer.from('lt=3600') }];
      const answer = await device.exchange(POST, options, Buffer.from('</5/0>'));
      if (answer.code !== CREATED) throw new Error(`${device.endpoint} not registered (${answer.code})`);
    }),
  );
  return { endpoints: devices.map((device) => device.endpoint) };
}

async function fetchFor({ tokens, blocks, szx, durationMs, server }) {
  const stats = { bytes: 0, blocks: 0, retransmissions: 0, errors: 0 };
  const until = Date.now() + durationMs;
  await Promise.all(
    devices.map(async (device, i) => {
      device.server = server;
      const path = [{ number: URI_PATH, value: Buffer.from('fw') }, { number: URI_PATH, value: Buffer.from(tokens[i]) }];
      for (let num = 0; Date.now() < until; num = (num + 1) % blocks) {
        const answer = await device.exchange(GET, [...path, { number: BLOCK2, value: uint(num * 16 + szx) }], undefined, stats);
        if (answer.code !== CONTENT) stats.errors++;
        stats.bytes += answer.payload.length;
        stats.blocks++;
      }
    }),
  );
  return stats;
}

process.on('message', async (message) => {
  try {
    if (message.command === 'open') process.send(await open(message));
    else if (message.command === 'fetch') process.send(await fetchFor(message));
    else if (message.command === 'close') {
      for (const device of devices) device.socket.close();
      devices = [];
      process.send({ closed: true });
    }
  } catch (error) {
    process.send({ error: error.message });
  }
});
