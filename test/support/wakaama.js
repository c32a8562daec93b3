'use strict';
// Eclipse Wakaama's example programs, built by scripts/peers/wakaama.sh, as independent LwM2M peers:
// spawned on loopback with ephemeral ports, driven through their stdin console, always killed.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const BIN = path.resolve(__dirname, '..', '..', '.peers', 'wakaama', 'bin');
const PROGRAMS = ['lwm2mclient', 'lwm2mclient_tinydtls', 'lightclient', 'bootstrap_server', 'lwm2mserver'];
/** Output kept per process: the clients print every datagram. */
const MAX_LOG = 512 * 1024;
const QUIT_TIMEOUT_MS = 2000;

const running = new Set();
// Mocha exits with process.exit: nothing of ours outlives the test process.
process.on('exit', () => {
  for (const peer of running) peer.child.kill('SIGKILL');
});

/**
 * Marks the tests pending when the peers were never built; under CI, whose
 * .ci/run builds them, a missing peer is a failure.
 */
function requireWakaama(context) {
  const missing = PROGRAMS.filter((program) => !fs.existsSync(path.join(BIN, program)));
  if (missing.length === 0) return;
  const message = `Wakaama peers not built (${missing.join(', ')} missing in .peers/wakaama/bin): run bash scripts/peers/wakaama.sh`;
  if (process.env.CI) throw new Error(message);
  // eslint-disable-next-line no-console
  console.log(`      (skipped: ${message})`);
  context.skip();
}

/** One running Wakaama program: its output so far, its console, and a bounded stop. */
class WakaamaProcess {
  constructor(program, args) {
    this.program = program;
    this.args = args;
    /** The output kept, and how many characters before it were dropped. */
    this.log = '';
    this.dropped = 0;
    /** Where the next expect() starts looking, counted from the first character ever printed. */
    this.cursor = 0;
    this.waiters = new Set();
    // stdbuf: the examples print with stdio, fully buffered on a pipe.
    this.child = spawn('stdbuf', ['-oL', '-eL', path.join(BIN, program), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then(() => running.delete(this));
    running.add(this);
    const append = (chunk) => {
      this.log += chunk.toString('latin1');
      if (this.log.length > MAX_LOG) {
        const cut = this.log.length - MAX_LOG / 2;
        this.log = this.log.slice(cut);
        this.dropped += cut;
      }
      for (const waiter of this.waiters) waiter();
    };
    this.child.stdout.on('data', append);
    this.child.stderr.on('data', append);
    this.child.stdin.on('error', () => undefined);
    this.console = Promise.resolve();
    this.started = this.waitFor(/started on port/, 0, 5000);
    this.started.catch(() => undefined);
  }

  get pid() {
    return this.child.pid;
  }

  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The output from an absolute position on. */
  since(position) {
    return this.log.slice(Math.max(0, position - this.dropped));
  }

  /** Resolves with the first match of regex printed from position on, and the position after it. */
  waitFor(regex, position, timeoutMs) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const from = Math.max(0, position - this.dropped);
        const match = regex.exec(this.log.slice(from));
        return match && { match, end: this.dropped + from + match.index + match[0].length };
      };
      const found = check();
      if (found) return resolve(found);
      const waiter = () => {
        const result = check();
        if (!result) return;
        this.waiters.delete(waiter);
        clearTimeout(timer);
        resolve(result);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.program} did not print ${regex} within ${timeoutMs} ms; its last output:\n${this.log.slice(-3000)}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /**
   * Types a line at the program's console and resolves once it has handled it
   * (its next prompt). One line at a time: it reads stdin with getline after
   * select(), so a second line already buffered would wait for more input.
   */
  command(line, timeoutMs = 5000) {
    this.console = this.console.catch(() => undefined).then(async () => {
      await this.started;
      const position = this.dropped + this.log.length;
      this.child.stdin.write(`${line}\n`);
      await this.waitFor(/\r\n> /, position, timeoutMs);
    });
    return this.console;
  }

  /** Forgets the output so far: the next expect() only looks at what comes after. */
  mark() {
    this.cursor = this.dropped + this.log.length;
  }

  /** Resolves with the match once the output after the cursor matches; the cursor moves past it. */
  async expect(pattern, timeoutMs = 5000) {
    const regex = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    const { match, end } = await this.waitFor(regex, this.cursor, timeoutMs);
    this.cursor = end;
    return match;
  }

  /** What it printed after the cursor. */
  get output() {
    return this.since(this.cursor);
  }

  /** SIGKILL: no de-registration, as a device that loses power. */
  async kill() {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** The console's quit (lightclient: SIGINT), so the client de-registers; SIGKILL if it has not exited in time. */
  async quit() {
    if (!this.alive) return this.exited;
    if (this.program === 'lightclient') this.child.kill('SIGINT');
    else this.child.stdin.write('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), QUIT_TIMEOUT_MS);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

/**
 * Wakaama's lwm2mclient (LwM2M 1.1): plain UDP, or the tinydtls build when
 * psk is given ({identity, key} with key a Buffer or hex). With bootstrap it
 * asks the server at port for a bootstrap first. Objects: 0, 1, 2, 3, 4, 5,
 * 6, 7 and the test object 31024 (instances 10, 11, 12).
 */
function lwm2mClient({ endpoint, port, lifetime = 300, psk, bootstrap = false, queueMode = false, blockSize }) {
  const args = ['-4', '-h', '127.0.0.1', '-p', String(port), '-l', '0', '-n', endpoint, '-t', String(lifetime)];
  if (bootstrap) args.push('-b');
  if (queueMode) args.push('-q');
  if (blockSize) args.push('-S', String(blockSize));
  if (psk) args.push('-i', psk.identity, '-s', Buffer.isBuffer(psk.key) ? psk.key.toString('hex') : psk.key);
  return new WakaamaProcess(psk ? 'lwm2mclient_tinydtls' : 'lwm2mclient', args);
}

/**
 * Wakaama's lightclient built as LwM2M 1.0: objects 0, 1, 3 and 31024; no
 * console (SIGINT quits and de-registers); it updates at half its lifetime.
 */
function lightClient({ endpoint, port, lifetime = 300, queueMode = false }) {
  const args = ['-4', '-h', '127.0.0.1', '-p', String(port), '-l', '0', '-n', endpoint, '-t', String(lifetime)];
  if (queueMode) args.push('-q');
  return new WakaamaProcess('lightclient', args);
}

/**
 * The CoAP messages a Wakaama client printed as received ("N bytes received from ..." and a hex dump of
 * 16 bytes a line), decoded: what the server really sent it.
 */
function receivedByClient(output) {
  const { decode } = require('../../dist/lib/coap/message');
  const messages = [];
  const lines = output.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const header = /^(\d+) bytes received from/.exec(lines[i]);
    if (!header) continue;
    const bytes = [];
    for (let j = i + 1; j < lines.length && bytes.length < Number(header[1]); j++) {
      const hex = /^((?:[0-9A-F]{2} {1,2}){0,15}[0-9A-F]{2})/.exec(lines[j]);
      if (!hex) break;
      bytes.push(...hex[1].trim().split(/ +/).map((byte) => parseInt(byte, 16)));
    }
    // The client's output may end in the middle of a dump: that message is not complete yet.
    if (bytes.length < Number(header[1])) continue;
    messages.push(decode(Buffer.from(bytes.slice(0, Number(header[1])))));
  }
  return messages;
}

/** Kills every Wakaama process still running; for afterEach/after hooks. */
async function stopAllWakaama() {
  await Promise.all([...running].map((peer) => peer.kill()));
}

module.exports = { requireWakaama, lwm2mClient, lightClient, stopAllWakaama, receivedByClient, WakaamaProcess };
