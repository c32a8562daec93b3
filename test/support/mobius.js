'use strict';
// IoTKETI Mobius (set up by scripts/peers/mobius.sh) on a MariaDB of its own, for the interop tests:
// both on loopback, on free ports, with a fresh database each start; every step bounded in time.
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { freeTcpPort } = require('./node-red-process');

const root = path.resolve(__dirname, '..', '..');
const MOBIUS_DIR = path.join(root, '.peers', 'mobius', 'src');
/** Where Debian puts MariaDB's programs; /usr/sbin is not on every user's PATH. */
const SEARCH_PATH = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin'];
const running = new Set();
const directories = new Set();

// A test run that ends without stopping them (a crash, Ctrl-C) leaves no database or CSE behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of directories) fs.rmSync(dir, { recursive: true, force: true });
});

function which(program) {
  for (const dir of SEARCH_PATH) {
    const candidate = path.join(dir, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What is missing to run Mobius here, with how to get it; undefined when nothing is. */
function missing() {
  for (const program of ['mariadbd', 'mariadb-install-db', 'mariadb']) {
    if (!which(program)) return `${program} is not installed (apt-get install mariadb-server)`;
  }
  if (!fs.existsSync(path.join(MOBIUS_DIR, '.setup-stamp'))) return 'Mobius is not set up (bash scripts/peers/mobius.sh)';
  return undefined;
}

/** As the other interop tests decide: locally a missing peer marks the tests pending; under CI, which sets it up, it fails. */
function requireMobius(context) {
  const what = missing();
  if (!what) return;
  if (process.env.CI) throw new Error(`${what}: .ci/run must set it up`);
  // eslint-disable-next-line no-console
  console.log(`      (skipped: ${what})`);
  context.skip();
}

function run(program, args, { input, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(which(program), args, { timeout: timeoutMs }, (error, stdout, stderr) =>
      error ? reject(new Error(`${program} ${args.join(' ')}: ${error.message}\n${stderr}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin.end(input);
  });
}

async function until(what, deadline, attempt) {
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} within the time allowed: ${error.message}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

function stopProcess(child, timeoutMs) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      running.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * One oneM2M request over HTTP, written here rather than with the IPE's own
 * client so that the tests look at Mobius with their own eyes.
 */
function request(port, method, target, { origin = 'Sponde', body, ty, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const all = { 'X-M2M-Origin': origin, 'X-M2M-RI': `test-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, 'X-M2M-RVI': '3', Accept: 'application/json', ...headers };
    if (payload) Object.assign(all, { 'Content-Type': `application/json${ty ? `;ty=${ty}` : ''}`, 'Content-Length': payload.length });
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers: all, timeout: 10_000 }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = text;
        }
        resolve({ status: response.statusCode, rsc: Number(response.headers['x-m2m-rsc']), body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target}: no answer`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Starts MariaDB with a new data directory and Mobius's schema, then Mobius
 * on it; resolves once Mobius answers. Mobius's CSE base is /Mobius, its
 * CSE-ID /Mobius2, its superuser originator Sponde.
 */
async function startMobius({ timeoutMs = 60_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-mobius-'));
  directories.add(dir);
  const socket = path.join(dir, 'mariadb.sock');
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  const [dbPort, csePort, mqttPort] = [await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
  const cse = {
    url: `http://127.0.0.1:${csePort}/Mobius`,
    port: csePort,
    base: 'Mobius',
    cseId: '/Mobius2',
    superuser: 'Sponde',
    dir,
    request: (method, target, options) => request(csePort, method, target, options),
    /** The end of Mobius's log, for failure messages. */
    log: () => {
      try {
        return fs.readFileSync(path.join(dir, 'mobius.log'), 'utf8').split('\n').slice(-40).join('\n');
      } catch {
        return '';
      }
    },
  };
  let database;
  let mobius;

  const startCse = async () => {
    const log = fs.openSync(path.join(dir, 'mobius.log'), 'a');
    mobius = spawn(process.execPath, ['mobius.js'], {
      cwd: MOBIUS_DIR,
      env: { ...process.env, MOBIUS_PORT: String(csePort), MOBIUS_DB_PORT: String(dbPort), MOBIUS_DB_PASSWORD: '', MOBIUS_MQTT_PORT: String(mqttPort) },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    running.add(mobius);
    await until('Mobius answering', Date.now() + 20_000, async () => {
      if (mobius.exitCode !== null) throw new Error(`Mobius exited ${mobius.exitCode}\n${cse.log()}`);
      const answer = await cse.request('GET', '/Mobius');
      if (answer.rsc !== 2000) throw new Error(`answered ${answer.rsc}`);
    });
  };

  try {
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${path.join(dir, 'data')}`, ...asRoot, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', '--innodb-log-file-size=8M', '--innodb-flush-method=nosync']);
    database = spawn(
      which('mariadbd'),
      [
        '--no-defaults',
        `--datadir=${path.join(dir, 'data')}`,
        ...asRoot,
        '--bind-address=127.0.0.1',
        `--port=${dbPort}`,
        `--socket=${socket}`,
        `--pid-file=${path.join(dir, 'mariadb.pid')}`,
        `--log-error=${path.join(dir, 'mariadb.err')}`,
        '--skip-name-resolve',
        '--innodb-log-file-size=8M',
        '--innodb-buffer-pool-size=32M',
        // A test database: durability traded for speed.
        '--innodb-flush-log-at-trx-commit=0',
        '--innodb-flush-method=nosync',
        '--skip-innodb-doublewrite',
      ],
      { stdio: 'ignore' },
    );
    running.add(database);
    const client = ['--no-defaults', `--socket=${socket}`, '--user=root'];
    await until('MariaDB accepting connections', deadline, () => run('mariadb', [...client, '-e', 'SELECT 1'], { timeoutMs: 5000 }));
    await run('mariadb', [...client, '-e', 'CREATE DATABASE mobiusdb']);
    await run('mariadb', [...client, 'mobiusdb'], { input: fs.readFileSync(path.join(MOBIUS_DIR, 'mobius', 'mobiusdb.sql')) });
    await startCse();
  } catch (error) {
    await stopProcess(mobius, 3000);
    await stopProcess(database, 10_000);
    fs.rmSync(dir, { recursive: true, force: true });
    directories.delete(dir);
    throw error;
  }

  /** Stops Mobius, keeping its database: the CSE is unreachable. */
  cse.stopCse = () => stopProcess(mobius, 3000);
  /** Starts Mobius again on the same port and database. */
  cse.startCse = startCse;
  cse.stop = async () => {
    await stopProcess(mobius, 3000);
    await stopProcess(database, 10_000);
    fs.rmSync(dir, { recursive: true, force: true });
    directories.delete(dir);
  };
  return cse;
}

module.exports = { requireMobius, startMobius };
