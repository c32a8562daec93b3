'use strict';
// nginx (Debian's, with libnginx-mod-stream) as the UDP load balancer in front of server instances: started by the
// test on free loopback ports with its own configuration under test-artifacts/, in the foreground, stopped by the test.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { serverPort } = require('./ports');

const root = path.resolve(__dirname, '..', '..');
const MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/**
 * Listeners that balance UDP over the upstream ports by client address (`hash $remote_addr consistent`), each with
 * its own proxy_timeout: how long nginx keeps a client's session (and so the way back to it) without traffic.
 */
async function startNginx({ upstreams, listeners }) {
  const dir = path.join(root, 'test-artifacts', `nginx-${process.pid}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true });
  const bound = [];
  for (const listener of listeners) bound.push({ ...listener, address: '127.0.0.1', port: await serverPort('udp') });
  const servers = bound.map((listener) => `    server { listen 127.0.0.1:${listener.port} udp; proxy_pass lwm2m; proxy_timeout ${listener.proxyTimeout}; }`).join('\n');
  const config = `load_module ${MODULE};
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} info;
daemon off;
events { worker_connections 1024; }
stream {
  upstream lwm2m {
    hash $remote_addr consistent;
${upstreams.map((upstream) => `    server 127.0.0.1:${upstream.port} max_fails=1 fail_timeout=30s;`).join('\n')}
  }
${servers}
}
`;
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, config);
  const child = spawn('nginx', ['-p', dir, '-c', file, '-e', path.join(dir, 'startup.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  // Up once it wrote its pid file (nginx has no readiness signal of its own in the foreground).
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(path.join(dir, 'nginx.pid'))) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${output}`);
    if (Date.now() > deadline) throw new Error(`nginx did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    listeners: bound,
    log: () => (fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : ''),
    async stop() {
      if (child.exitCode === null && !child.signalCode) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startNginx };
