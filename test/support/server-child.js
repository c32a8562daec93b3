'use strict';
// An LwM2M server in a process of its own, for attack tests: its memory is
// measured apart from the attacker's, and it may run with a small heap
// (--max-old-space-size) as a small Node-RED host would.
const { fork } = require('node:child_process');

if (require.main === module) {
  const { Lwm2mServer } = require('../../dist/lib/lwm2m/server');
  const { ReadRequest } = require('../../dist/lib/lwm2m/requests/read');
  const { Lwm2mPath } = require('../../dist/lib/model/path');
  let server;
  let sampler;
  let peakRss = 0;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));
  const settle = async () => {
    global.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 300));
    global.gc?.();
  };
  process.on('message', async ({ id, command, options, endpoint, path: target }) => {
    const reply = (message) => process.send({ id, ...message });
    try {
      if (command === 'start') {
        server = new Lwm2mServer({ address: '127.0.0.1', port: 0, ...options });
        const [bound] = await server.start();
        await settle();
        sample();
        sampler = setInterval(sample, 20);
        reply({ port: bound.port });
      } else if (command === 'usage') {
        sample();
        const peak = peakRss;
        await settle();
        const { rss, heapUsed } = process.memoryUsage();
        reply({ rss, heapUsed, peakRss: peak, endpoint: server.coap.plain.usage, registrations: server.registrations.size });
      } else if (command === 'read') {
        const response = await server.send(endpoint, new ReadRequest(Lwm2mPath.parse(target)), { timeoutMs: 10_000 });
        reply({ code: response.code, payload: response.records.map((record) => record.value) });
      } else if (command === 'stop') {
        clearInterval(sampler);
        await server.stop();
        reply({});
        process.exit(0);
      }
    } catch (error) {
      reply({ error: error.message });
    }
  });
} else {
  /** Starts the server process; `heapMb` limits its old space. */
  module.exports.startServerProcess = async function startServerProcess(options = {}, heapMb) {
    const child = fork(__filename, [], { execArgv: ['--expose-gc', ...(heapMb ? [`--max-old-space-size=${heapMb}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let next = 0;
    const pending = new Map();
    child.on('message', (message) => {
      pending.get(message.id)?.(message);
      pending.delete(message.id);
    });
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const ask = (message) =>
      new Promise((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) return reject(new Error('the server process has exited'));
        const id = next++;
        pending.set(id, (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply)));
        child.send({ id, ...message });
        exited.then(({ code, signal }) => {
          if (pending.delete(id)) reject(new Error(`the server process exited (${signal ?? code})`));
        });
      });
    const { port } = await ask({ command: 'start', options });
    return {
      port,
      exited,
      alive: () => child.exitCode === null && child.signalCode === null,
      usage: () => ask({ command: 'usage' }),
      read: (endpoint, target) => ask({ command: 'read', endpoint, path: target }),
      async stop() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        await ask({ command: 'stop' }).catch(() => child.kill());
        await exited;
      },
    };
  };
}
