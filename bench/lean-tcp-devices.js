'use strict';
// Child process: lean devices over CoAP over TCP (RFC 8323), one connection each, from this process's own
// loopback address. Each sends its CSM and a Register (binding T), then answers the server's GETs with
// 2.05 text/plain "100", written byte by byte: the load must cost far less than the server it measures.
const net = require('node:net');
const { FrameReader, encodeFrame } = require('../dist/lib/coap/tcp-framing');

const CSM = Buffer.from('50e12380010020', 'hex'); // libcoap's own: Max-Message-Size 8388864, Block-Wise-Transfer
const devices = [];

function registerFrame(endpoint, lifetime) {
  return encodeFrame({
    code: 2,
    token: Buffer.from([1]),
    options: [
      { number: 11, value: Buffer.from('rd') },
      { number: 12, value: Buffer.from([40]) },
      { number: 15, value: Buffer.from(`ep=${endpoint}`) },
      { number: 15, value: Buffer.from(`lt=${lifetime}`) },
      { number: 15, value: Buffer.from('lwm2m=1.1') },
      { number: 15, value: Buffer.from('b=T') },
    ],
    payload: Buffer.from('</1/0>,</3/0>,</3303/0>'),
  });
}

/** 2.05, Content-Format 0 (text/plain), "100" under the request's token: Len 5 = option, marker, payload. */
function answer(frame) {
  const tokenLength = frame[0] & 0x0f;
  const nibble = frame[0] >> 4;
  const codeAt = nibble < 13 ? 1 : nibble === 13 ? 2 : nibble === 14 ? 3 : 5;
  const code = frame[codeAt];
  if (code === 0xe2) return Buffer.from([0x00 | tokenLength, 0xe3, ...frame.subarray(codeAt + 1, codeAt + 1 + tokenLength)]); // Ping: Pong
  if (code !== 1) return undefined;
  const out = Buffer.allocUnsafe(2 + tokenLength + 5);
  out[0] = (5 << 4) | tokenLength;
  out[1] = 0x45;
  frame.copy(out, 2, codeAt + 1, codeAt + 1 + tokenLength);
  let at = 2 + tokenLength;
  out[at++] = 0xc0; // option 12 (Content-Format), empty: 0
  out[at++] = 0xff;
  out.write('100', at, 'latin1');
  return out;
}

process.on('message', async (message) => {
  if (message.command === 'open') {
    const { count, prefix, address, server, lifetime } = message;
    let registered = 0;
    await new Promise((resolve, reject) => {
      for (let i = 0; i < count; i++) {
        const socket = net.connect({ host: server.address, port: server.port, localAddress: address, noDelay: true });
        const device = { socket, endpoint: `${prefix}-${i}`, registered: false };
        devices.push(device);
        const reader = new FrameReader(1 << 20, (frame) => {
          const code = frame[(frame[0] >> 4) < 13 ? 1 : (frame[0] >> 4) === 13 ? 2 : (frame[0] >> 4) === 14 ? 3 : 5];
          if (!device.registered && code === 0x41) {
            device.registered = true;
            if (++registered === count) resolve();
            return;
          }
          const reply = answer(frame);
          if (reply) socket.write(reply);
        });
        socket.on('data', (chunk) => reader.push(chunk));
        socket.once('error', reject);
        socket.once('connect', () => socket.write(Buffer.concat([CSM, registerFrame(device.endpoint, lifetime)])));
      }
    }).then(
      () => process.send({ registered }),
      (error) => process.send({ error: error.message }),
    );
    return;
  }
  if (message.command === 'close') {
    for (const device of devices.splice(0)) device.socket.destroy();
    process.send({ closed: true });
  }
});
