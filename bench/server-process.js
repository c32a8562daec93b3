'use strict';
// Child process: the LwM2M server alone, so its RSS per registered device is measured without
// what earlier workloads left in the benchmark's own heap.
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { Lwm2mPath } = require('../dist/lib/model/path');

let server;

function usage() {
  global.gc?.();
  return { cpu: process.cpuUsage(), rss: process.memoryUsage().rss };
}

process.on('message', async (message) => {
  try {
    if (message.command === 'start') {
      server = new Lwm2mServer({ address: '127.0.0.1', port: message.port });
      await server.start();
      process.send({ started: true });
    } else if (message.command === 'usage') {
      process.send({ ...usage(), registrations: server.registrations.size, observations: server.observations.size });
    } else if (message.command === 'observeAll') {
      // One observation per device, a few hundred at a time.
      const endpoints = [...server.registrations.all()].map((registration) => registration.endpoint);
      const listener = { notify() {}, error() {}, ended() {} };
      for (let i = 0; i < endpoints.length; i += 256) {
        await Promise.all(endpoints.slice(i, i + 256).map((endpoint) => server.observe(endpoint, new ObserveRequest(Lwm2mPath.parse(message.path)), listener)));
      }
      process.send({ observations: server.observations.size });
    } else if (message.command === 'stop') {
      await server.stop();
      process.send({ stopped: true });
    }
  } catch (error) {
    process.send({ error: error.message });
  }
});
