'use strict';
// Registers many endpoints cheaply: raw CoAP Register requests from a few UDP sockets, a
// bounded number in flight, retransmitted after a second. A fleet for the console to show,
// not devices that answer.
const dgram = require('node:dgram');
const { encode, decode } = require('../../dist/lib/coap/message');

function registerDatagram(endpoint, messageId, lifetime) {
  return encode({
    type: 0,
    code: 2, // POST
    messageId,
    token: Buffer.from([messageId >> 8, messageId & 0xff]),
    options: [
      { number: 11, value: Buffer.from('rd') },
      { number: 12, value: Buffer.from([40]) },
      { number: 15, value: Buffer.from(`ep=${endpoint}`) },
      { number: 15, value: Buffer.from(`lt=${lifetime}`) },
      { number: 15, value: Buffer.from('lwm2m=1.1') },
    ],
    payload: Buffer.from('</1/0>,</3/0>,</3303/0>'),
  });
}

/** Registers endpoints name(0) .. name(count - 1) at 127.0.0.1:port; resolves when every one got 2.01. */
async function registerFleet({ port, count, name = (i) => `device-${String(i).padStart(6, '0')}`, sockets = 16, window = 512, lifetime = 3600 }) {
  const open = await Promise.all(
    Array.from({ length: sockets }, async () => {
      const socket = dgram.createSocket('udp4');
      await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
      return { socket, nextId: 1, pending: new Map() };
    }),
  );
  let next = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => finish(new Error(`registered ${done} of ${count} endpoints in time`)), 120000);
    const retransmit = setInterval(() => {
      const now = Date.now();
      for (const lane of open) for (const [id, entry] of lane.pending) if (now - entry.sent > 1000) send(lane, id, entry);
    }, 250);
    function finish(error) {
      clearTimeout(deadline);
      clearInterval(retransmit);
      for (const { socket } of open) socket.close();
      if (error) reject(error);
      else resolve(done);
    }
    function send(lane, id, entry) {
      entry.sent = Date.now();
      lane.socket.send(entry.datagram, port, '127.0.0.1');
    }
    const inFlight = () => open.reduce((sum, lane) => sum + lane.pending.size, 0);
    function fill() {
      while (next < count && inFlight() < window) {
        const lane = open[next % sockets];
        const id = lane.nextId;
        lane.nextId = (lane.nextId % 0xfffe) + 1;
        const entry = { datagram: registerDatagram(name(next), id, lifetime), sent: 0 };
        lane.pending.set(id, entry);
        send(lane, id, entry);
        next++;
      }
    }
    for (const lane of open) {
      lane.socket.on('message', (datagram) => {
        let message;
        try {
          message = decode(datagram);
        } catch {
          return;
        }
        if (!lane.pending.delete(message.messageId)) return;
        if (message.code !== 65) return finish(new Error(`a registration was answered ${message.code >> 5}.${String(message.code & 31).padStart(2, '0')}`));
        done++;
        if (done === count) finish();
        else fill();
      });
    }
    fill();
  });
}

module.exports = { registerFleet };
