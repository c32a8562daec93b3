'use strict';
const net = require('node:net');
const { FrameReader, decodeFrame, encodeFrame } = require('../../dist/lib/coap/tcp-framing');

/** A raw TCP peer, for sending bytes our own stream endpoint would never write, and reading what comes back as frames. */
class RawStream {
  static connect(port, localAddress = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(new RawStream(socket)));
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.messages = [];
    this.closed = false;
    this.waiters = [];
    socket.on('error', () => undefined);
    const reader = new FrameReader(1 << 24, (frame) => {
      this.messages.push(decodeFrame(Buffer.from(frame)));
      this.wake();
    });
    socket.on('data', (chunk) => reader.push(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  wake() {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  write(bytes) {
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  send(message) {
    return this.write(encodeFrame({ token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0), ...message }));
  }

  /** Resolves once predicate(messages, closed) holds; rejects after timeoutMs. */
  async until(predicate, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages, this.closed)) {
      if (Date.now() > deadline) throw new Error(`condition not met: ${this.messages.length} messages (codes ${this.messages.map((m) => m.code).join(', ')}), closed ${this.closed}`);
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  /** The next message with this code. */
  async next(code, timeoutMs) {
    await this.until((messages) => messages.some((m) => m.code === code), timeoutMs);
    const index = this.messages.findIndex((m) => m.code === code);
    return this.messages.splice(index, 1)[0];
  }

  close() {
    this.socket.destroy();
  }
}

/** A TCP port that was free a moment ago on the loopback address. */
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

module.exports = { RawStream, freeTcpPort };
