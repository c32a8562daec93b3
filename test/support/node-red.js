'use strict';
// Which Node-RED the tests run against: the devDependency (4.x), or the one NODE_RED_DIR
// points at (scripts/peers/node-red-5.sh installs Node-RED 5 for the second run, on Node 22).
const path = require('node:path');

const nodeRedDir = process.env.NODE_RED_DIR ? path.resolve(process.env.NODE_RED_DIR) : path.dirname(require.resolve('node-red/package.json'));

/** A module of that Node-RED installation, such as '@node-red/nodes/core/common/25-catch.js'. */
function nodeRedModule(name) {
  return require(require.resolve(name, { paths: [nodeRedDir] }));
}

module.exports = { nodeRedDir, nodeRedMain: require.resolve(nodeRedDir), nodeRedModule, nodeRedVersion: require(path.join(nodeRedDir, 'package.json')).version };
