'use strict';
// Child process: lean simulated devices, one UDP socket each (as separate devices have). They
// register and update (a bounded number in flight, retransmitting after 2 s as a CoAP client
// would), answer reads and observations of a numeric resource with text/plain, and send
// notifications on command. Lean on purpose: the load must not be the bottleneck the server is
// measured against (the full SimulatedDevice is, beyond about 30k messages/s).
const dgram = require('node:dgram');
const { encode, decode } = require('../dist/lib/coap/message');

const LINKS = Buffer.from('</1/0>,</3/0>,</3303/0>');

function uriOptions(number, path) {
  return path.split('/').filter(Boolean).map((segment) => ({ number, value: Buffer.from(segment) }));
}

function registerDatagram(endpoint, lifetime, messageId) {
  return encode({
    type: 0,
    code: 2, // POST
    messageId,
    token: Buffer.from([messageId >> 8, messageId & 0xff, 1]),
    options: [
      ...uriOptions(11, '/rd'),
      { number: 12, value: Buffer.from([40]) },
      { number: 15, value: Buffer.from(`ep=${endpoint}`) },
      { number: 15, value: Buffer.from(`lt=${lifetime}`) },
      { number: 15, value: Buffer.from('lwm2m=1.1') },
    ],
    payload: LINKS,
  });
}

function updateDatagram(location, messageId) {
  return encode({ type: 0, code: 2, messageId, token: Buffer.from([messageId >> 8, messageId & 0xff, 2]), options: uriOptions(11, location), payload: Buffer.alloc(0) });
}

const devices = [];
let confirmableAcks = 0;

function uintBytes(value) {
  if (value === 0) return Buffer.alloc(0);
  const bytes = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from(bytes);
}

/**
 * A 2.05 notification with Observe and Content-Format (text/plain), written
 * byte by byte: the load must cost far less than the server it measures.
 */
function notification(confirmable, messageId, token, sequence, text) {
  const observeLength = sequence > 0xffff ? 3 : sequence > 0xff ? 2 : sequence > 0 ? 1 : 0;
  const datagram = Buffer.allocUnsafe(4 + token.length + 1 + observeLength + 1 + 1 + text.length);
  datagram[0] = 0x40 | ((confirmable ? 0 : 1) << 4) | token.length;
  datagram[1] = 69;
  datagram.writeUInt16BE(messageId, 2);
  let at = 4 + token.copy(datagram, 4);
  datagram[at++] = (6 << 4) | observeLength; // Observe (6)
  for (let shift = (observeLength - 1) * 8; shift >= 0; shift -= 8) datagram[at++] = (sequence >> shift) & 0xff;
  datagram[at++] = 6 << 4; // Content-Format (12) = 0, text/plain
  datagram[at++] = 0xff;
  datagram.write(text, at, 'latin1');
  return datagram;
}

/** Answers the server's GETs: the value as text/plain, and an observation when Observe=0 is asked. */
function serve(device, datagram, rinfo) {
  let request;
  try {
    request = decode(datagram);
  } catch {
    return;
  }
  if (request.code === 0) {
    if (request.type === 2) confirmableAcks++;
    // A CoAP ping, which the server sends before its first request to an address: a Reset answers it (RFC 7252 section 4.3).
    else if (request.type === 0) device.socket.send(Buffer.from([0x70, 0, datagram[2], datagram[3]]), rinfo.port, rinfo.address);
    return;
  }
  if (request.code !== 1) return;
  const observe = request.options.find((o) => o.number === 6);
  const options = [];
  if (observe && observe.value.length === 0) {
    device.observer = { token: request.token, address: rinfo.address, port: rinfo.port };
    options.push({ number: 6, value: uintBytes(device.sequence) });
  }
  options.push({ number: 12, value: Buffer.alloc(0) });
  device.socket.send(encode({ type: 2, code: 69, messageId: request.messageId, token: request.token, options, payload: Buffer.from(String(device.value)) }), rinfo.port, rinfo.address);
}

process.on('message', async (message) => {
  if (message.command === 'open') {
    // Each process binds its own loopback address: one address has only about 28k ephemeral ports.
    const { count, prefix, address = '127.0.0.1' } = message;
    for (let i = 0; i < count; i++) {
      const socket = dgram.createSocket('udp4');
      const failed = await new Promise((resolve) => {
        socket.once('error', resolve);
        socket.bind(0, address, () => resolve(undefined));
      });
      if (failed) {
        process.send({ error: `socket ${i} of ${count} on ${address}: ${failed.message}` });
        return;
      }
      const device = { socket, endpoint: `${prefix}-${i}`, location: undefined, messageId: (i * 7919) & 0xffff, value: 20, sequence: 1, observer: undefined };
      socket.on('message', (datagram, rinfo) => {
        if (device.pending) device.pending(datagram);
        else serve(device, datagram, rinfo);
      });
      devices.push(device);
    }
    process.send({ opened: devices.length });
    return;
  }
  if (message.command === 'run') {
    const { server, window, lifetime, kind } = message;
    let next = 0;
    let done = 0;
    let retransmissions = 0;
    const started = process.hrtime.bigint();
    await new Promise((resolve) => {
      const launch = () => {
        if (next >= devices.length) return;
        const device = devices[next++];
        device.messageId = (device.messageId + 1) & 0xffff;
        const datagram = kind === 'register' ? registerDatagram(device.endpoint, lifetime, device.messageId) : updateDatagram(device.location, device.messageId);
        const timer = setInterval(() => {
          retransmissions++;
          device.socket.send(datagram, server.port, server.address);
        }, 2000);
        device.pending = (reply) => {
          device.pending = undefined;
          clearInterval(timer);
          const response = decode(reply);
          if (kind === 'register') device.location = '/' + response.options.filter((o) => o.number === 8).map((o) => o.value.toString()).join('/');
          done++;
          if (done === devices.length) resolve();
          else launch();
        };
        device.socket.send(datagram, server.port, server.address);
      };
      for (let i = 0; i < Math.min(window, devices.length); i++) launch();
    });
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    process.send({ done, elapsedMs, retransmissions });
    return;
  }
  if (message.command === 'burst') {
    // Every observed device notifies once (value = round), yielding between groups as separate machines would.
    const { round, confirmable } = message;
    let sent = 0;
    for (let i = 0; i < devices.length; i++) {
      const device = devices[i];
      if (!device.observer) continue;
      device.value = round;
      device.sequence = (device.sequence + 1) & 0xffffff;
      device.messageId = (device.messageId + 1) & 0xffff;
      const { token, address, port } = device.observer;
      device.socket.send(notification(confirmable, device.messageId, token, device.sequence, String(round)), port, address);
      sent++;
      if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    process.send({ sent, confirmableAcks });
    return;
  }
  if (message.command === 'close') {
    for (const device of devices) device.socket.close();
    process.send({ closed: true });
  }
});
