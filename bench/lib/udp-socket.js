'use strict';
// The UDP socket of the Node.js baselines: 127.0.0.1, the 4 MiB receive buffer the pack asks for, and
// address literals passed straight to the send, as the pack's sockets do (dgram's default dns.lookup
// defers every send of a datagram to the next tick: ~1.5 us per round trip the baseline would pay
// and the pack not).
const dgram = require('node:dgram');
const { isIP } = require('node:net');
const { lookup } = require('node:dns');

function literalFirst(host, options, callback) {
  const family = isIP(host);
  if (family) callback(null, host, family);
  else lookup(host, options, callback);
}

const udpSocket = () => dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024, lookup: literalFirst });

module.exports = { literalFirst, udpSocket };
