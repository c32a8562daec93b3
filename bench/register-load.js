'use strict';
// Child process: a lean registration load. One UDP socket per device (as separate devices have),
// each sending its Register (then its Update) once, with a bounded number in flight; retransmits
// after 2 s as a CoAP client would. Lean on purpose: it must not be the bottleneck the server is
// measured against.
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

process.on('message', async (message) => {
  if (message.command === 'open') {
    const { count, prefix } = message;
    for (let i = 0; i < count; i++) {
      const socket = dgram.createSocket('udp4');
      await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
      devices.push({ socket, endpoint: `${prefix}-${i}`, location: undefined, messageId: (i * 7919) & 0xffff });
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
        device.socket.once('message', (reply) => {
          clearInterval(timer);
          const response = decode(reply);
          if (kind === 'register') device.location = '/' + response.options.filter((o) => o.number === 8).map((o) => o.value.toString()).join('/');
          done++;
          if (done === devices.length) resolve();
          else launch();
        });
        device.socket.send(datagram, server.port, server.address);
      };
      for (let i = 0; i < Math.min(window, devices.length); i++) launch();
    });
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    process.send({ done, elapsedMs, retransmissions });
    return;
  }
  if (message.command === 'close') {
    for (const device of devices) device.socket.close();
    process.send({ closed: true });
  }
});
