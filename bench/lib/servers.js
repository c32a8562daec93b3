'use strict';
// The servers under test, each a process of its own on 127.0.0.1, started the same way and measured
// from outside (lib/processes.js): the pack, the Node.js and C echoes (and one-way sinks), and the peers.
const { fork, spawn } = require('node:child_process');
const path = require('node:path');
const { cTool, wakaamaServer } = require('./tools');
const { ask, freePort, LineProcess } = require('./processes');

const serversDir = path.join(__dirname, '..', 'servers');

/** A forked Node.js server that sends {port} once listening (after the first message, when there is one). */
async function forkServer(file, args, first, execArgv = []) {
  const child = fork(path.join(serversDir, file), args, { execArgv: ['--expose-gc', ...execArgv] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const listening = first ? ask(child, first) : new Promise((resolve, reject) => child.once('message', (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply))));
  const { port } = await listening;
  return {
    port,
    pid: child.pid,
    child,
    /** Collects garbage, so that RSS is what is live. */
    settle: () => ask(child, { command: 'settle' }),
    async stop() {
      // Asked to exit rather than killed, so that a CPU profile is written.
      child.send({ command: 'exit' });
      const timer = setTimeout(() => child.kill(), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** BENCH_PROFILE=DIR writes a V8 CPU profile of each pack process into DIR (node --cpu-prof). */
const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-interval', process.env.BENCH_PROFILE_INTERVAL ?? '1000', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
/** A Node.js LwM2M server that promotes what its young generation holds when asked (bench/lib/promote.js). */
const promoting = (server) => Object.assign(server, { promote: () => ask(server.child, { command: 'promote' }) });
const pack = async (options) => promoting(await forkServer('pack.js', [], { command: 'start', options }, profile));
// Its dependencies warn of circular requires on start: not the bench's output.
const lwm2mNodeLib = async () => promoting(await forkServer('lwm2m-node-lib.js', [], undefined, ['--no-warnings']));

/** The Node.js echo, or with sink a one-way sink ({received} on count()). */
async function nodeEcho({ sink = false } = {}) {
  const server = await forkServer('node-echo.js', sink ? ['--sink'] : [], undefined);
  server.count = async () => (await ask(server.child, { command: 'count' })).received;
  return server;
}

/** The C echo, or with sink a one-way sink. */
async function cEcho({ sink = false } = {}) {
  const process = new LineProcess(cTool('echo'), ['127.0.0.1', ...(sink ? ['--sink'] : [])]);
  const { port } = await process.next();
  return {
    port,
    pid: process.pid,
    settle: async () => undefined,
    count: async () => (await process.command('count')).received,
    stop: () => process.stop(),
  };
}

let wakaamaBinary;
/** Eclipse Wakaama's example server (its console on a pipe kept open, its logs of every datagram to /dev/null). */
async function wakaama() {
  wakaamaBinary ??= wakaamaServer() ?? null;
  if (!wakaamaBinary) return undefined;
  const port = await freePort();
  // Through setpriv (util-linux), so that it dies with the bench: with its console closed it would spin.
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', wakaamaBinary, '-4', '-l', String(port)], { stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (child.exitCode !== null) throw new Error(`Wakaama's server exited (${child.exitCode}) on port ${port}`);
  return {
    port,
    pid: child.pid,
    settle: async () => undefined,
    async stop() {
      child.kill();
      await exited;
    },
  };
}

/** The pack with its firmware file service (bench/servers/firmware-pack.js), and the blob echo beside it. */
const firmwarePack = () => forkServer('firmware-pack.js', [], { command: 'start' }, profile);
const blobEcho = () => forkServer('blob-echo.js', [], undefined);

module.exports = { pack, lwm2mNodeLib, nodeEcho, cEcho, wakaama, firmwarePack, blobEcho };
