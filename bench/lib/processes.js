'use strict';
// Processes of the bench, measured from outside the same way whatever they are written in:
// CPU time of all their threads (/proc/PID/task/*/schedstat, in ns), RSS (/proc/PID/status).
const { execFileSync, spawn } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const os = require('node:os');
const readline = require('node:readline');

/** CPU time (user + system) of every thread of process pid, in ns. */
function cpuNs(pid) {
  let total = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return total;
}

function rssBytes(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
  return Number(match[1]) * 1024;
}

/** The machine's 1-minute load average, kept beside every run: a loaded machine is why rates move. */
const loadAverage = () => Number(os.loadavg()[0].toFixed(2));

/** A free UDP port on 127.0.0.1, for the servers that cannot bind port 0 and tell which port they got. */
async function freePort() {
  const socket = dgram.createSocket('udp4');
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

/**
 * The server under test runs on CPU 0, the load generator on CPU 1
 * (taskset), for every server alike: left to the scheduler they share both
 * cores, and what a server costs per datagram moves with where each lands
 * (a real fleet is not on the server's machine at all). Nothing is pinned
 * on a single-CPU machine.
 */
const PINNED = os.availableParallelism() >= 2;
const SERVER_CPU = 0;
const LOAD_CPU = 1;

/** The command and arguments that run file on the load generator's CPU. */
const onLoadCpu = (file, args) => (PINNED ? ['taskset', ['-c', String(LOAD_CPU), file, ...args]] : [file, args]);

/** Moves every thread of process pid (and those it starts later) to the server's CPU; BENCH_PIN_SERVER=0 leaves the server to the scheduler. */
function pinServer(pid) {
  if (PINNED && process.env.BENCH_PIN_SERVER !== '0') execFileSync('taskset', ['-a', '-pc', String(SERVER_CPU), String(pid)], { stdio: 'ignore' });
}

/** A child that takes one command a line on stdin and answers each with one JSON line on stdout. */
class LineProcess {
  constructor(file, args, options = {}) {
    this.child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'], ...options });
    this.pid = this.child.pid;
    this.waiting = [];
    this.lines = [];
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then(({ code, signal }) => {
      for (const waiter of this.waiting.splice(0)) waiter.reject(new Error(`${file} exited (${code ?? signal})`));
    });
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
      let value;
      try {
        value = JSON.parse(line);
      } catch {
        return; // a peer's own output (Wakaama prints what it does)
      }
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(value);
      else this.lines.push(value);
    });
  }

  /** The next JSON line. */
  next() {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  command(line) {
    this.child.stdin.write(`${line}\n`);
    return this.next();
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin.end();
      const polite = setTimeout(() => this.child.kill('SIGTERM'), 1000);
      const forced = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(polite);
      clearTimeout(forced);
    }
  }
}

/** One request and its answer over a forked child's IPC channel. */
const ask = (child, message) =>
  new Promise((resolve, reject) => {
    child.once('message', (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply)));
    child.send(message);
  });

module.exports = { cpuNs, rssBytes, loadAverage, freePort, LineProcess, ask, onLoadCpu, pinServer };
