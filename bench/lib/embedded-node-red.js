'use strict';
// Node-RED itself, embedded in the benchmark's process (no editor, no HTTP), with this pack
// installed in a throwaway user directory: msgs counted at a node are msgs a real flow gets.
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');

async function startNodeRed() {
  const RED = require('node-red');
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-bench-red-'));
  const link = path.join(userDir, 'node_modules', ...require(path.join(root, 'package.json')).name.split('/'));
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(root, link, 'dir');
  fs.writeFileSync(path.join(userDir, 'flows.json'), '[]');
  RED.init(http.createServer(), {
    userDir,
    flowFile: 'flows.json',
    httpAdminRoot: false,
    httpNodeRoot: false,
    logging: { console: { level: process.env.BENCH_RED_LOG || 'error' } },
    telemetry: { enabled: false },
    // The bench deploys no credentials: no key to generate, nothing to warn about.
    credentialSecret: false,
  });
  // The first (empty) flows start after start() resolves: a deploy must come after them, not race them.
  const firstStart = new Promise((resolve) => RED.events.once('flows:started', resolve));
  await RED.start();
  await firstStart;
  return {
    RED,
    /** Replaces the flows (a full deploy) and resolves once they run. */
    async deploy(flows) {
      const started = new Promise((resolve) => RED.events.once('flows:started', resolve));
      await RED.runtime._.nodes.setFlows(flows, {}, 'full');
      await started;
    },
    node(id) {
      return RED.runtime._.nodes.getNode(id);
    },
    async stop() {
      await RED.stop();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

module.exports = { startNodeRed };
