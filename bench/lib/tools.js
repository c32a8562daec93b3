'use strict';
// The C programs of the bench (bench/c/*.c), built with the system compiler into .peers/bench/ and
// rebuilt when their source changes; and Eclipse Wakaama's example server, built by scripts/peers/wakaama.sh.
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const out = path.join(root, '.peers', 'bench');

/** Path of the binary built from bench/c/NAME.c, compiling it first when missing or stale. */
function cTool(name) {
  const source = path.join(root, 'bench', 'c', `${name}.c`);
  const key = crypto.createHash('sha256').update(fs.readFileSync(source)).digest('hex').slice(0, 16);
  const binary = path.join(out, `${name}-${key}`);
  if (!fs.existsSync(binary)) {
    fs.mkdirSync(out, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', binary, source], { stdio: 'inherit' });
  }
  return binary;
}

/** Wakaama's lwm2mserver, or undefined (with the reason on stderr) when it cannot be built here. */
function wakaamaServer() {
  try {
    execFileSync('bash', [path.join(root, 'scripts', 'peers', 'wakaama.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
    return path.join(root, '.peers', 'wakaama', 'bin', 'lwm2mserver');
  } catch (error) {
    process.stderr.write(`Wakaama's server not built (${error.message}): its rows are left out\n`);
    return undefined;
  }
}

module.exports = { cTool, wakaamaServer };
