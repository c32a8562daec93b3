'use strict';
// Compiles src/ with tsc and puts the editor files (HTML with the shared editor code, locales, icons) next to the compiled nodes.
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
const editorFile = (name) => fs.readFileSync(path.join(sourceNodes, 'editor', name), 'utf8').trimEnd();

// One source for the defaults: the runtime's, written into the editor code as data.
const { NODE_DEFAULTS } = require(path.join(targetNodes, 'node-defaults.js'));
const { ATTRIBUTE_NAMES, ATTRIBUTE_SINCE } = require(path.join(dist, 'lib', 'lwm2m', 'requests', 'write-attributes.js'));
const shared = editorFile('lwm2m-editor.js')
  .replace("'@defaults'", () => JSON.stringify(NODE_DEFAULTS))
  .replace("'@attributes'", () => JSON.stringify(ATTRIBUTE_NAMES))
  .replace("'@attributeSince'", () => JSON.stringify(ATTRIBUTE_SINCE));
const includes = {
  '/* @lwm2m-editor */': () => shared,
  '/* @devices-panel */': () => editorFile('devices-panel.js'),
  '/* @devices-panel-css */': () => editorFile('devices-panel.css'),
};

for (const entry of fs.readdirSync(sourceNodes, { withFileTypes: true })) {
  if (entry.isDirectory() && entry.name !== 'editor') {
    fs.cpSync(path.join(sourceNodes, entry.name), path.join(targetNodes, entry.name), { recursive: true });
  } else if (entry.name.endsWith('.html')) {
    let html = fs.readFileSync(path.join(sourceNodes, entry.name), 'utf8');
    if (!html.includes('/* @lwm2m-editor */')) throw new Error(`${entry.name} lacks the /* @lwm2m-editor */ include`);
    for (const [marker, content] of Object.entries(includes)) html = html.split(marker).join(content());
    fs.writeFileSync(path.join(targetNodes, entry.name), html);
  }
}
