'use strict';
const dgram = require('node:dgram');

/** A UDP port that was free a moment ago on the loopback address. */
async function freePort(address = '127.0.0.1') {
  const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  await new Promise((resolve) => socket.bind(0, address, resolve));
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

/**
 * A raw UDP socket, for sending bytes our own encoder would never produce.
 * Like any CoAP endpoint it answers a CoAP ping (an empty confirmable
 * message) with a Reset, which a server sends before its first request to a
 * new address; the ping does not show up in the inbox.
 */
class RawPeer {
  static async open(address = '127.0.0.1') {
    const peer = new RawPeer(dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4'));
    await new Promise((resolve) => peer.socket.bind(0, address, resolve));
    return peer;
  }

  constructor(socket) {
    this.socket = socket;
    this.inbox = [];
    this.waiters = [];
    socket.on('message', (datagram, from) => {
      if (datagram.length === 4 && datagram[0] === 0x40 && datagram[1] === 0) {
        socket.send(Buffer.from([0x70, 0, datagram[2], datagram[3]]), from.port, from.address);
        return;
      }
      const waiter = this.waiters.shift();
      if (waiter) waiter(datagram);
      else this.inbox.push(datagram);
    });
  }

  send(datagram, port, address = '127.0.0.1') {
    return new Promise((resolve, reject) => this.socket.send(datagram, port, address, (error) => (error ? reject(error) : resolve())));
  }

  /** The next datagram, or undefined after timeoutMs. */
  next(timeoutMs = 1000) {
    if (this.inbox.length > 0) return Promise.resolve(this.inbox.shift());
    return new Promise((resolve) => {
      const waiter = (datagram) => {
        clearTimeout(timer);
        resolve(datagram);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async exchange(datagram, port, address, timeoutMs) {
    await this.send(datagram, port, address);
    return this.next(timeoutMs);
  }

  close() {
    return new Promise((resolve) => this.socket.close(resolve));
  }
}

function once(emitter, event, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

module.exports = { freePort, RawPeer, once };
