'use strict';
const { encode, decode } = require('../../dist/lib/coap/message');
const { RawPeer } = require('./udp');

/** Option numbers of RFC 7252, 7641 and 7959, for readable tests. */
const OPT = { ETag: 4, Observe: 6, UriPath: 11, ContentFormat: 12, UriQuery: 15, Accept: 17, Block2: 23, Block1: 27, Size2: 28, Size1: 60 };

/** A Block option value (RFC 7959 section 2.2) as the bytes of a uint option. */
function blockValue(num, more, szx) {
  const value = num * 16 + (more ? 8 : 0) + szx;
  if (value === 0) return Buffer.alloc(0);
  const bytes = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from(bytes);
}

function uint(value) {
  const bytes = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from(bytes);
}

function optionValue(message, number) {
  return message.options.find((option) => option.number === number)?.value;
}

function uintOf(buffer) {
  return buffer === undefined ? undefined : [...buffer].reduce((acc, byte) => acc * 256 + byte, 0);
}

/** The Block1/Block2 option of a message as {num, more, szx}, or undefined. */
function blockOf(message, number) {
  const value = uintOf(optionValue(message, number));
  return value === undefined ? undefined : { num: Math.floor(value / 16), more: (value & 8) !== 0, szx: value & 7 };
}

/**
 * An LwM2M device played by the test byte by byte on a raw UDP socket: it
 * registers, then the test reads each request the server sends and writes
 * the answer, as a device the project did not write would.
 */
class RawDevice {
  static async register(serverPort, endpoint, { lwm2m = '1.1', links = '</>;ct="0 11542 110 112",</3/0>,</3303/0>' } = {}) {
    const device = new RawDevice(await RawPeer.open(), serverPort);
    const answer = await device.request({ code: 2, options: [
      { number: OPT.UriPath, value: Buffer.from('rd') },
      { number: OPT.ContentFormat, value: uint(40) },
      { number: OPT.UriQuery, value: Buffer.from(`ep=${endpoint}`) },
      { number: OPT.UriQuery, value: Buffer.from(`lwm2m=${lwm2m}`) },
    ], payload: Buffer.from(links) });
    if (answer.code !== 65) throw new Error(`registration answered ${answer.code}`);
    return device;
  }

  constructor(raw, serverPort) {
    this.raw = raw;
    this.serverPort = serverPort;
    this.nextId = 0x4000;
  }

  /** Sends a confirmable request and resolves with the piggybacked answer. */
  async request(message) {
    const messageId = this.nextId++;
    const reply = await this.raw.exchange(encode({ type: 0, messageId, token: Buffer.from([messageId & 0xff]), payload: Buffer.alloc(0), ...message }), this.serverPort, '127.0.0.1', 2000);
    if (!reply) throw new Error('the server did not answer');
    return decode(reply);
  }

  /** The next datagram from the server, decoded; undefined after timeoutMs. */
  async next(timeoutMs = 2000) {
    const datagram = await this.raw.next(timeoutMs);
    return datagram && decode(datagram);
  }

  /** Answers a confirmable request with a piggybacked response. */
  reply(request, response) {
    return this.raw.send(encode({ type: 2, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0), ...response }), this.serverPort);
  }

  /** Sends a notification (or any response message) of its own. */
  send(message) {
    return this.raw.send(encode({ options: [], payload: Buffer.alloc(0), ...message }), this.serverPort);
  }

  close() {
    return this.raw.close();
  }
}

module.exports = { RawDevice, OPT, blockValue, blockOf, optionValue, uint, uintOf };
