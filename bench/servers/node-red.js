'use strict';
// Child process: Node-RED with this pack (bench/lib/embedded-node-red.js), measured from outside like
// every server under test. Flows are deployed on command; msgs are counted where a flow gets them.
//   {command:'observe'}   an lwm2m observe node (start on registration) -> a silent debug node; {port}
//   {command:'read'}      inject -> lwm2m read (msg.endpoint) -> a silent debug node, errors to a catch node; {port}
//   {command:'count'}     {delivered, failed, registrations, observations}
//   {command:'reads', perDevice | perSecond+durationMs}   reads issued by injecting msgs; {issued, answered, failed, latencies, rate}
const { startNodeRed } = require('../lib/embedded-node-red');

let red;
let delivered = 0;
let failed = 0;
/** Latencies of the reads of the current run (ms), written by the sink. */
let latencies = [];
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function deploy(nodes) {
  await red.deploy([{ id: 't', type: 'tab' }, { id: 's', type: 'lwm2m-server', bindAddress: '127.0.0.1', port: '0', persist: false }, ...nodes.map((node) => ({ z: 't', ...node }))]);
  const server = red.node('s').host.service;
  while (!server.coap.plain.address) await sleep(10);
  delivered = 0;
  failed = 0;
  red.node('sink').on('input', (msg, _send, done) => {
    delivered++;
    if (msg.t !== undefined) latencies.push(now() - msg.t);
    done?.();
  });
  red.node('failures')?.on('input', (_msg, _send, done) => {
    failed++;
    done?.();
  });
  return server.coap.plain.address.port;
}

const sink = { id: 'sink', type: 'debug', active: false, tosidebar: false, wires: [] };

/** Reads issued by a flow: an inject node given msg.endpoint (and the time, msg.t), closed loop or paced. */
async function reads({ perDevice, perSecond, durationMs }) {
  const server = red.node('s').host.service;
  const endpoints = [...server.registrations.all()].map((registration) => registration.endpoint);
  const inject = red.node('trigger');
  latencies = [];
  delivered = 0;
  failed = 0;
  let issued = 0;
  const started = now();
  const settled = () => delivered + failed;
  if (perSecond) {
    while (now() - started < durationMs) {
      const due = Math.floor(((now() - started) / 1000) * perSecond);
      for (; issued < due; issued++) inject.receive({ endpoint: endpoints[issued % endpoints.length], t: now() });
      await sleep(1);
    }
  } else {
    // One in flight per device: the next read of a device goes once the sink (or the catch node) has the last.
    const total = endpoints.length * perDevice;
    const sinkNode = red.node('sink');
    const next = (msg) => {
      if (issued >= total) return;
      issued++;
      inject.receive({ endpoint: msg.endpoint, t: now() });
    };
    sinkNode.on('input', next);
    red.node('failures').on('input', next);
    for (const endpoint of endpoints) {
      issued++;
      inject.receive({ endpoint, t: now() });
    }
    while (settled() < total && now() - started < 60000) await sleep(2);
    sinkNode.removeListener('input', next);
    red.node('failures').removeListener('input', next);
  }
  while (settled() < issued && now() - started < (durationMs ?? 0) + 15000) await sleep(5);
  return { issued, answered: delivered, failed, rate: (delivered / (now() - started)) * 1000, latencies };
}

process.on('message', async (message) => {
  try {
    if (message.command === 'start') {
      red = await startNodeRed();
      process.send({ started: true });
    } else if (message.command === 'observe') {
      const port = await deploy([{ id: 'o', type: 'lwm2m-observe', server: 's', path: '/3303/0/5700', start: 'register', wires: [['sink']] }, sink]);
      process.send({ port });
    } else if (message.command === 'read') {
      const port = await deploy([
        { id: 'trigger', type: 'inject', props: [], repeat: '', once: false, wires: [['read']] },
        { id: 'read', type: 'lwm2m-read', server: 's', path: '/3/0/9', wires: [['sink']] },
        { id: 'catcher', type: 'catch', scope: ['read'], wires: [['failures']] },
        { id: 'failures', type: 'debug', active: false, tosidebar: false, wires: [] },
        sink,
      ]);
      process.send({ port });
    } else if (message.command === 'count') {
      const server = red.node('s').host.service;
      process.send({ delivered, failed, registrations: server.registrations.size, observations: server.observations.size });
    } else if (message.command === 'reads') {
      process.send(await reads(message));
    } else if (message.command === 'settle') {
      global.gc?.();
      process.send({ settled: true });
    } else if (message.command === 'stop') {
      await red.stop();
      process.send({ stopped: true });
    }
  } catch (error) {
    process.send({ error: error.stack });
  }
});
process.on('disconnect', () => process.exit(0));
