'use strict';
// Child process: a DTLS PSK echo server alone, so its RSS under an attack is measured without the attacker's sockets.
const { DtlsServer } = require('../../dist/lib/dtls/dtls-server');

const keys = JSON.parse(process.env.DTLS_PSK_KEYS);
const server = new DtlsServer({ address: '0.0.0.0', port: 0, credentials: { pskKey: (identity) => (keys[identity] ? Buffer.from(keys[identity], 'hex') : undefined) } });
const counts = { established: 0, failed: 0 };
server.on('established', () => counts.established++);
server.on('handshakeFailed', () => counts.failed++);

server
  .listen((data, peer) => server.send(Buffer.concat([Buffer.from('echo:'), data]), peer), () => undefined)
  .then((bound) => process.send({ port: bound.port }));

process.on('message', (message) => {
  if (message === 'stats') {
    global.gc?.();
    process.send({ rss: process.memoryUsage().rss, handshakes: server.handshakeCount, connections: server.connectionCount, ...counts });
  }
});
