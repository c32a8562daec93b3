'use strict';
// Child process: lwm2m-node-lib's server (npm), the Node.js LwM2M peer, on 127.0.0.1 and port 0.
// The library listens on every address (its coap server's listen(port) without an address); the
// harness gives that listen() the loopback address, nothing else of the library is changed.
const path = require('node:path');

const libraryDir = path.dirname(require.resolve('lwm2m-node-lib/package.json'));
const CoAPServer = require(require.resolve('coap/lib/server', { paths: [libraryDir] }));
const listen = CoAPServer.prototype.listen;
CoAPServer.prototype.listen = function (port, done) {
  return listen.call(this, port, '127.0.0.1', done);
};
require('logops').setLevel('FATAL');
const lib = require('lwm2m-node-lib').server;

const config = {
  port: 0,
  lifetimeCheckInterval: 1000,
  udpWindow: 100,
  defaultType: 'Device',
  types: [],
  logLevel: 'FATAL',
  ipProtocol: 'udp4',
  serverProtocol: 'udp4',
  formats: [{ name: 'application-vnd-oma-lwm2m/text', value: 1541 }],
  writeFormat: 'application-vnd-oma-lwm2m/text',
};
lib.start(config, (error, info) => {
  if (error) {
    process.send({ error: error.message });
    return;
  }
  process.send({ port: info.server._sock.address().port });
});
const { promote } = require('../lib/promote');
process.on('message', (message) => {
  if (message.command === 'settle') {
    global.gc?.();
    process.send({ settled: true });
  }
  if (message.command === 'promote') {
    promote();
    process.send({});
  }
  if (message.command === 'exit') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
