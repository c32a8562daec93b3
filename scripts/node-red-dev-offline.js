'use strict';
// Preloaded into node-red-dev (npm run validate, and its test): answers its look-ups on the
// network offline, so the checks run the same on a machine without internet. The flows
// catalogue is answered empty; the npm registry's entry for node-red lists the Node-RED
// versions this pack is tested with (the devDependency, and Node-RED 5 when
// scripts/peers/node-red-5.sh installed it), with their engines.
const fs = require('node:fs');
const path = require('node:path');

const axios = require(require.resolve('axios', { paths: [require.resolve('node-red-dev/src/libs/checkpackage.js')] }));

function installed(packageJson) {
  try {
    const { version, engines } = JSON.parse(fs.readFileSync(packageJson, 'utf8'));
    return { version, engines };
  } catch {
    return undefined;
  }
}

const root = path.resolve(__dirname, '..');
const tested = [installed(require.resolve('node-red/package.json')), installed(path.join(root, '.peers', 'nr5', 'node_modules', 'node-red', 'package.json'))].filter(Boolean);
const latest = tested[tested.length - 1];
const nodeRed = {
  'dist-tags': { latest: latest.version, ...(tested.length > 1 ? { 'maintenance-v4': tested[0].version } : {}) },
  versions: Object.fromEntries(tested.map((entry) => [entry.version, entry])),
};

const originalGet = axios.get.bind(axios);
axios.get = (url, ...rest) => {
  const address = String(url);
  if (address.startsWith('https://catalogue.nodered.org/')) return Promise.resolve({ data: { modules: [] } });
  if (address === 'https://registry.npmjs.org/node-red') return Promise.resolve({ data: nodeRed });
  return originalGet(url, ...rest);
};
