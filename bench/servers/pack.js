'use strict';
// Child process: the pack's LwM2M server alone (no Node-RED), on 127.0.0.1 and port 0, so its CPU,
// its RSS per registered device and its read latencies are measured without what other workloads
// left in a heap. Its reads are issued through the library, in this process, as a flow's would be.
const { Lwm2mServer } = require('../../dist/lib/lwm2m/server');
const { ObserveRequest } = require('../../dist/lib/lwm2m/requests/observe');
const { ReadRequest } = require('../../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../../dist/lib/model/path');
const { promote } = require('../lib/promote');

let server;
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads from this process, as a flow would issue them: closed loop (perDevice reads in a row per device), or paced at perSecond for durationMs. */
async function reads({ path, perDevice, perSecond, durationMs }) {
  const endpoints = [...server.registrations.all()].map((registration) => registration.endpoint);
  const target = Lwm2mPath.parse(path);
  // The loop keeps no promise per read and no growing array: its own garbage would show in the server's collector pauses.
  const latencies = new Float64Array(perSecond ? Math.ceil((perSecond * durationMs) / 1000) + perSecond : endpoints.length * perDevice);
  let answered = 0;
  let failed = 0;
  let issued = 0;
  const started = now();
  if (perSecond) {
    while (now() - started < durationMs) {
      const due = Math.floor(((now() - started) / 1000) * perSecond);
      for (; issued < due; issued++) {
        const t = now();
        server.send(endpoints[issued % endpoints.length], new ReadRequest(target)).then(
          () => (latencies[answered++] = now() - t),
          () => failed++,
        );
      }
      await sleep(1);
    }
    while (answered + failed < issued && now() - started < durationMs + 15000) await sleep(5);
  } else {
    await Promise.all(
      endpoints.map(async (endpoint) => {
        for (let j = 0; j < perDevice; j++) {
          const t = now();
          issued++;
          await server.send(endpoint, new ReadRequest(target)).then(
            () => (latencies[answered++] = now() - t),
            () => failed++,
          );
        }
      }),
    );
  }
  const elapsed = now() - started;
  return {
    rate: (answered / elapsed) * 1000,
    issued,
    answered,
    failed,
    latencies: Array.from(latencies.subarray(0, answered)),
  };
}

/** Garbage collected and the freed pages given back (V8 releases them after the collection, not during it), for a clean RSS. */
async function settle() {
  global.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 500));
  global.gc?.();
}

process.on('message', async (message) => {
  try {
    if (message.command === 'start') {
      // options: other listeners instead of UDP (a TCP-only server: {tcp: {port: 0}}); the first is the port reported.
      server = new Lwm2mServer({ address: '127.0.0.1', ...(message.options ?? { port: 0 }) });
      const [bound] = await server.start();
      process.send({ port: bound.port });
    } else if (message.command === 'settle') {
      await settle();
      process.send({ registrations: server.registrations.size, observations: server.observations.size });
    } else if (message.command === 'promote') {
      promote();
      process.send({});
    } else if (message.command === 'observeAll') {
      // One observation per device whose name starts with the prefix (not the warm-up's), a few hundred at a time.
      const endpoints = [...server.registrations.all()].map((registration) => registration.endpoint).filter((endpoint) => endpoint.startsWith(message.prefix));
      const listener = { notify() {}, error() {}, ended() {} };
      // One request for all, as an observe node that starts on registration has.
      const request = new ObserveRequest(Lwm2mPath.parse(message.path));
      for (let i = 0; i < endpoints.length; i += 256) {
        await Promise.all(endpoints.slice(i, i + 256).map((endpoint) => server.observe(endpoint, request, listener)));
      }
      process.send({ observations: server.observations.size });
    } else if (message.command === 'reads') {
      // A warm-up of the same kind first, not measured: a fresh process runs its first reads before the JIT has compiled them.
      await reads(message.perSecond ? { ...message, durationMs: 1000 } : { ...message, perDevice: Math.ceil(message.perDevice / 5) });
      process.send(await reads(message));
    } else if (message.command === 'exit') {
      await server?.stop();
      process.exit(0);
    }
  } catch (error) {
    process.send({ error: error.message });
  }
});
process.on('disconnect', () => process.exit(0));
