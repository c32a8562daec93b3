'use strict';
// The load: N lean devices, one UDP socket each, in C (bench/c/fleet.c). A process holds at most
// DEVICES_PER_PROCESS sockets (the file-descriptor limit is per process) on a loopback address of its own
// (one address has about 28k ephemeral ports); the window of 64 outstanding requests is shared among them.
const { cTool } = require('./tools');
const { LineProcess, onLoadCpu } = require('./processes');

const DEVICES_PER_PROCESS = 16000;
const WINDOW = 64;

const share = (total, parts, p) => Math.floor(total / parts) + (p < total % parts ? 1 : 0);

class Fleet {
  /**
   * count devices named prefix-0 .. prefix-(count-1), sending to port on 127.0.0.1, from 127.0.NETWORK.1, .2, ...;
   * on the load generator's CPU unless pinned is false (see processes.js).
   */
  static async open(port, count, { prefix = 'd', distinct = false, window = WINDOW, network = 1, pinned = true } = {}) {
    const binary = cTool('fleet');
    const processes = Math.max(Math.ceil(count / DEVICES_PER_PROCESS), 1);
    const fleet = new Fleet();
    let first = 0;
    for (let p = 0; p < processes; p++) {
      const devices = share(count, processes, p);
      const args = ['--server', `127.0.0.1:${port}`, '--bind', `127.0.${network}.${p + 1}`, '--first', String(first), '--count', String(devices), '--prefix', prefix, '--window', String(Math.max(share(window, processes, p), 1))];
      if (distinct) args.push('--distinct');
      fleet.parts.push(pinned ? new LineProcess(...onLoadCpu(binary, args)) : new LineProcess(binary, args));
      first += devices;
    }
    await Promise.all(fleet.parts.map((part) => part.next()));
    return fleet;
  }

  constructor() {
    this.parts = [];
  }

  /** Sends command (or command(p) for process p) to every process; resolves with their answers added up (ms: the longest). */
  async all(command) {
    const answers = await Promise.all(this.parts.map((part, p) => part.command(typeof command === 'function' ? command(p) : command)));
    const sum = {};
    for (const answer of answers) {
      if (answer.error) throw new Error(answer.error);
      for (const [key, value] of Object.entries(answer)) {
        if (key === 'ms') sum.ms = Math.max(sum.ms ?? 0, value);
        else if (key === 'firstBadCode') sum.firstBadCode = value >= 0 ? value : sum.firstBadCode ?? -1;
        else sum[key] = (sum[key] ?? 0) + value;
      }
    }
    return sum;
  }

  /** Echo operations, split among the processes. */
  echo(operations) {
    return this.all((p) => `echo ${share(operations, this.parts.length, p)}`);
  }

  close() {
    return Promise.all(this.parts.map((part) => part.stop()));
  }
}

module.exports = { Fleet };
