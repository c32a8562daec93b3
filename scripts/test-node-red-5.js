'use strict';
// The second run of the Node-RED tests: Node-RED 5 under Node 22, as scripts/peers/node-red-5.sh
// installs them. Node-RED-facing test files are those that load Node-RED through
// test/support/flow.js or start it through test/support/node-red-process.js (directly or via
// test/support/browser.js); the protocol core's tests do not depend on Node-RED and run once.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const peer = path.join(root, '.peers', 'nr5', 'node_modules');
const node = path.join(peer, '.bin', 'node');
if (!fs.existsSync(node)) {
  console.error('Node-RED 5 is not installed: run bash scripts/peers/node-red-5.sh first');
  process.exit(1);
}
const testDir = path.join(root, 'test');
const files = fs
  .readdirSync(testDir)
  .filter((file) => file.endsWith('.test.js'))
  .filter((file) => /require\('\.\/support\/(flow|node-red-process|browser)'\)/.test(fs.readFileSync(path.join(testDir, file), 'utf8')))
  .map((file) => path.join('test', file));
console.log(`Node-RED ${require(path.join(peer, 'node-red', 'package.json')).version} on Node ${spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()}: ${files.length} test files`);
const result = spawnSync(node, ['--expose-gc', require.resolve('mocha/bin/mocha.js'), '--no-config', '--reporter', 'test/support/reporter.js', '--timeout', '20000', '--exit', ...files], {
  cwd: root,
  stdio: 'inherit',
  // `node` in scripts run by the tests (npm start) is Node 22 too.
  env: { ...process.env, NODE_RED_DIR: path.join(peer, 'node-red'), PATH: `${path.join(peer, '.bin')}${path.delimiter}${process.env.PATH}` },
});
process.exit(result.status ?? 1);
