'use strict';
// Child process: the LwM2M server alone, so its RSS per registered device and its read latencies
// are measured without what earlier workloads (Node-RED among them) left in the benchmark's own heap.
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { ReadRequest } = require('../dist/lib/lwm2m/requests/read');
const { Lwm2mPath } = require('../dist/lib/model/path');

let server;
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted, count, fraction) {
  return sorted[Math.min(count - 1, Math.floor(count * fraction))];
}

/** Reads from this process, as a flow would issue them: closed loop (perDevice reads in a row per device), or paced at perSecond for durationMs. */
async function reads({ path, perDevice, perSecond, durationMs }) {
  const endpoints = [...server.registrations.all()].map((registration) => registration.endpoint);
  const target = Lwm2mPath.parse(path);
  // The loop keeps no promise per read and no growing array: its own garbage would show in the server's collector pauses.
  const latencies = new Float64Array(perSecond ? Math.ceil((perSecond * durationMs) / 1000) + perSecond : endpoints.length * perDevice);
  let answered = 0;
  let failed = 0;
  let issued = 0;
  const mark = process.cpuUsage();
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
  const used = process.cpuUsage(mark);
  const sorted = latencies.subarray(0, answered).sort();
  return {
    rate: (answered / elapsed) * 1000,
    issued,
    answered,
    p50: percentile(sorted, answered, 0.5),
    p99: percentile(sorted, answered, 0.99),
    cpuMsPer1k: ((used.user + used.system) / 1000 / issued) * 1000,
  };
}

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
      // options: other listeners (a TCP-only server: {tcp: {port}}).
      server = new Lwm2mServer({ address: '127.0.0.1', port: message.port, ...message.options });
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
    } else if (message.command === 'reads') {
      // A warm-up of the same kind first, not measured: a fresh process runs its first reads before the JIT has compiled them.
      await reads(message.perSecond ? { ...message, durationMs: 1000 } : { ...message, perDevice: Math.ceil(message.perDevice / 5) });
      process.send(await reads(message));
    } else if (message.command === 'stop') {
      await server.stop();
      process.send({ stopped: true });
    }
  } catch (error) {
    process.send({ error: error.message });
  }
});
