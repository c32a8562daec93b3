'use strict';
// A server for the pull workload (bench/firmware-pull.js), in a process of its own so its CPU is its own: the pack's
// LwM2M server with its firmware file service ("pack"), or the baseline ("blob echo"): a plain Node.js UDP socket that
// answers every datagram with one 1,024-byte CoAP answer (its header copied from the request), no lookup, no slicing.
const dgram = require('node:dgram');
const { randomBytes } = require('node:crypto');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FirmwareService } = require('../dist/lib/firmware/firmware-service');
const { packageOf } = require('../dist/lib/firmware/packages');

let server;
let firmware;
let echo;

const reply = (message) => process.send(message);

/** Answers each GET (8-byte tokens, as the load sends) with a 2.05 of blockBytes: header and token copied into one prepared datagram. */
async function startBlobEcho(port, blockBytes) {
  const answer = Buffer.concat([Buffer.from([0x68, 0x45, 0, 0]), Buffer.alloc(8), Buffer.from([0xc1, 42, 0xff]), randomBytes(blockBytes)]);
  echo = dgram.createSocket('udp4');
  echo.on('message', (datagram, remote) => {
    answer[2] = datagram[2];
    answer[3] = datagram[3];
    datagram.copy(answer, 4, 4, 12);
    echo.send(answer, remote.port, remote.address);
  });
  await new Promise((resolve) => echo.bind(port, '127.0.0.1', resolve));
}

process.on('message', async (message) => {
  try {
    switch (message.command) {
      case 'start':
        if (message.kind === 'blob echo') await startBlobEcho(message.port, message.blockBytes);
        else {
          server = new Lwm2mServer({ address: '127.0.0.1', port: message.port });
          firmware = new FirmwareService(server);
          await server.start();
        }
        return reply({ started: true });
      case 'offer': {
        const pkg = packageOf(randomBytes(message.size));
        return reply({ tokens: message.endpoints.map((endpoint) => firmware.files.grant(endpoint, pkg).token), registered: server.registrations.size });
      }
      case 'usage':
        return reply({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss });
      case 'stop':
        if (server) await server.stop();
        if (echo) await new Promise((resolve) => echo.close(resolve));
        return reply({ stopped: true });
    }
  } catch (error) {
    reply({ error: error.message });
  }
});
