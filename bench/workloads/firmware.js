'use strict';
// Pull throughput of the firmware file service: 100 devices of the C generator (bench/c/fleet.c) register, then
// each fetches its 256 KiB package from the pack (bench/servers/firmware-pack.js) block by block (GET /fw/<its
// name> with Block2, 1,024-byte blocks, one request in flight each, the blocks over and over): MB/s served and the
// server's CPU per MB. The baseline, in the same round with the same load, is the blob echo
// (bench/servers/blob-echo.js): a Node.js UDP socket answering each GET with a prepared 1,024-byte 2.05.
const { Fleet } = require('../lib/fleet');
const { ask } = require('../lib/processes');
const { measure } = require('../lib/results');
const servers = require('../lib/servers');

const DEVICES = 100;
const PACKAGE_BYTES = 256 * 1024;
const SZX = 6;
const BLOCKS = Math.ceil(PACKAGE_BYTES / 1024);
const FETCHES = 60_000;
const WARM_UP = 10_000;
const BASELINE = 'blob echo (Node.js)';
const SUBJECT = 'pack, file service';

/** The notes of a row: the bytes, per second and per CPU. */
function describe(_subject, samples) {
  const perSecond = samples.map((s) => s.megabytes / (s.ms / 1000)).sort((a, b) => a - b);
  const cpu = samples.filter((s) => s.cpuMsPerMB !== undefined).map((s) => s.cpuMsPerMB).sort((a, b) => a - b);
  const median = (list) => list[Math.floor(list.length / 2)];
  return `${median(perSecond).toFixed(1)} MB/s (${perSecond.map((v) => v.toFixed(1)).join(' / ')}), ${median(cpu).toFixed(1)} ms CPU per MB`;
}

/** One run against a started server: the devices (registered when the server wants them), a warm-up, then the measured fetches. */
async function pull(server, { register }) {
  const fleet = await Fleet.open(server.port, DEVICES, { prefix: 'fw', window: DEVICES });
  try {
    if (register) {
      const registered = await fleet.all('register');
      if (registered.ok !== DEVICES) throw new Error(`firmware: ${registered.ok} of ${DEVICES} registered`);
      const endpoints = Array.from({ length: DEVICES }, (_, i) => `fw-${i}`);
      const { granted } = await register(endpoints);
      if (granted !== DEVICES) throw new Error(`firmware: ${granted} of ${DEVICES} granted a package`);
    }
    await fleet.all(`fetch ${WARM_UP} ${BLOCKS} ${SZX}`);
    const sample = await measure(server.pid, async () => {
      const run = await fleet.all(`fetch ${FETCHES} ${BLOCKS} ${SZX}`);
      return { ok: run.ok, bad: run.bad, lost: run.lost, retransmissions: run.retransmissions, ms: run.ms, megabytes: run.bytes / 1e6 };
    });
    return { ...sample, cpuMsPerMB: sample.cpuMsPer1k === undefined ? undefined : (sample.cpuMsPer1k * sample.ok) / 1000 / sample.megabytes };
  } finally {
    await fleet.close();
  }
}

async function run({ runs, results }) {
  const workload = `firmware pull, ${DEVICES} devices, 1 KiB blocks`;
  results.workload(workload, { baseline: BASELINE, describe });
  for (let round = 0; round < runs; round++) {
    const echo = await servers.blobEcho();
    try {
      results.add(workload, BASELINE, round, await pull(echo, { register: undefined }));
    } finally {
      await echo.stop();
    }
    const pack = await servers.firmwarePack();
    try {
      results.add(workload, SUBJECT, round, await pull(pack, { register: (endpoints) => ask(pack.child, { command: 'offer', endpoints, size: PACKAGE_BYTES }) }));
    } finally {
      await pack.stop();
    }
  }
}

module.exports = { name: 'firmware', run };
