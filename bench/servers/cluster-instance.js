'use strict';
// Child process: one server instance of the cluster workload (bench/workloads/cluster.js), with a Redis or a file
// state store; reports its CPU time and reads devices (its own, and others' through their instances) on request.
const fs = require('node:fs');
const { Lwm2mServer } = require('../../dist/lib/lwm2m/server');
const { RedisLink } = require('../../dist/lib/cluster/redis-link');
const { RedisStateStore } = require('../../dist/lib/lwm2m/redis-store');
const { FileStateStore } = require('../../dist/lib/lwm2m/state');
const { ReadRequest } = require('../../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../../dist/lib/model/path');

let server;

async function start({ store, url, prefix, file, instance }) {
  const stateStore = store === 'redis' ? new RedisStateStore(new RedisLink({ url }), prefix) : new FileStateStore(file);
  server = new Lwm2mServer({ address: '127.0.0.1', port: 0, stateStore, instance, client: { defaultTimeoutMs: 10_000 } });
  await server.start();
  while (server.storeProblem) await new Promise((resolve) => setTimeout(resolve, 20));
  return { port: server.coap.plain.address.port };
}

/** Reads /3/0/0 of every endpoint, `concurrency` in flight: from here, through whichever instance serves each. */
async function reads({ endpoints, concurrency }) {
  const target = Lwm2mPath.parse('/3/0/0');
  let next = 0;
  let failed = 0;
  let firstError;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < endpoints.length) {
        const endpoint = endpoints[next++];
        await server.send(endpoint, new ReadRequest(target)).catch((error) => {
          failed++;
          firstError ??= error.message;
        });
      }
    }),
  );
  return { elapsedMs: performance.now() - started, failed, firstError };
}

process.on('message', async (message) => {
  try {
    switch (message.command) {
      case 'start':
        process.send(await start(message));
        return;
      case 'cpu':
        process.send({ cpu: process.cpuUsage(), registrations: server.registrations.size });
        return;
      case 'reads':
        process.send(await reads(message));
        return;
      case 'exit':
        await server.stop();
        server.cluster?.store.link.close();
        if (message.file) fs.rmSync(message.file, { force: true });
        process.send({ stopped: true });
        process.exit(0);
    }
  } catch (error) {
    process.send({ error: error.message });
  }
});
