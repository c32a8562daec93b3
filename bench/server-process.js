'use strict';
// Child process: the LwM2M server alone, so its RSS per registered device is measured without
// what earlier workloads left in the benchmark's own heap.
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { Lwm2mPath } = require('../dist/lib/model/path');

let server;

/** CPU time, and RSS once garbage is collected and the freed pages are given back (V8 releases them after the collection, not during it). */
async function usage() {
  const cpu = process.cpuUsage(); // before the forced collections, which are not part of the workload
  global.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 500));
  global.gc?.();
  return { cpu, rss: process.memoryUsage().rss };
}

process.on('message', async (message) => {
  try {
    if (message.command === 'start') {
      server = new Lwm2mServer({ address: '127.0.0.1', port: message.port });
      await server.start();
      process.send({ started: true });
    } else if (message.command === 'usage') {
      process.send({ ...(await usage()), registrations: server.registrations.size, observations: server.observations.size });
    } else if (message.command === 'observeAll') {
      // One observation per device, a few hundred at a time.
      const endpoints = [...server.registrations.all()].map((registration) => registration.endpoint);
      const listener = { notify() {}, error() {}, ended() {} };
      // One request for all, as an observe node that starts on registration has.
      const request = new ObserveRequest(Lwm2mPath.parse(message.path));
      for (let i = 0; i < endpoints.length; i += 256) {
        await Promise.all(endpoints.slice(i, i + 256).map((endpoint) => server.observe(endpoint, request, listener)));
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
