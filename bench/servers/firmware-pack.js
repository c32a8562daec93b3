'use strict';
// Child process: the pack's LwM2M server with its firmware file service (no Node-RED), on 127.0.0.1 and
// port 0. IPC: {command:'start'} -> {port}; {command:'offer', endpoints, size} grants each registered device
// a package of size random bytes under its own name as the token (what bench/c/fleet.c asks for) -> {granted}.
const { randomBytes } = require('node:crypto');
const { Lwm2mServer } = require('../../dist/lib/lwm2m/server');
const { FirmwareService } = require('../../dist/lib/firmware/firmware-service');
const { packageOf } = require('../../dist/lib/firmware/packages');

let server;
let firmware;

process.on('message', async (message) => {
  try {
    switch (message.command) {
      case 'start':
        server = new Lwm2mServer({ address: '127.0.0.1', port: 0 });
        firmware = new FirmwareService(server);
        await server.start();
        return process.send({ port: server.coap.plain.address.port });
      case 'offer': {
        const pkg = packageOf(randomBytes(message.size));
        const registered = message.endpoints.filter((endpoint) => server.registrations.getByEndpoint(endpoint));
        for (const endpoint of registered) firmware.files.grant(endpoint, pkg, endpoint);
        return process.send({ granted: registered.length });
      }
      case 'settle':
        global.gc?.();
        return process.send({});
      case 'exit':
        await server?.stop();
        return process.exit(0);
    }
  } catch (error) {
    process.send({ error: error.message });
  }
});
process.on('disconnect', () => process.exit(0));
