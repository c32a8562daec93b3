'use strict';
// Compiles src/ with tsc and copies the editor files (HTML, locales, icons) next to the compiled nodes.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });

// The object model's data and its license notice.
for (const file of ['oma-registry.json', 'OMA-REGISTRY-LICENSE']) {
  fs.copyFileSync(path.join(root, 'src', 'lib', 'model', file), path.join(dist, 'lib', 'model', file));
}

const sourceNodes = path.join(root, 'src', 'nodes');
const targetNodes = path.join(dist, 'nodes');
for (const entry of fs.readdirSync(sourceNodes, { withFileTypes: true })) {
  if (entry.isDirectory() || entry.name.endsWith('.html')) {
    fs.cpSync(path.join(sourceNodes, entry.name), path.join(targetNodes, entry.name), { recursive: true });
  }
}
