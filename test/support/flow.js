'use strict';
const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

const serverNode = require('../../dist/nodes/lwm2m-server.js');
const eventsNode = require('../../dist/nodes/lwm2m-events.js');

const NODES = [serverNode, eventsNode];

/** Loads a flow into the real Node-RED runtime of the test helper. */
function load(flow, credentials = {}) {
  return helper.load(NODES, flow, credentials);
}

/** Resolves with the next msg a helper node receives. */
function nextMessage(node, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message at ${node.id} within ${timeoutMs} ms`)), timeoutMs);
    node.once('input', (msg) => {
      clearTimeout(timer);
      resolve(msg);
    });
  });
}

/** Resolves when a node's status satisfies the predicate. */
function statusMatching(node, predicate, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const last = node.status.lastCall && node.status.lastCall.args[0];
    if (last && predicate(last)) return resolve(last);
    const timer = setTimeout(() => reject(new Error(`status of ${node.id} never matched; last ${JSON.stringify(node.status.lastCall && node.status.lastCall.args[0])}`)), timeoutMs);
    const listener = (call) => {
      if (!predicate(call.args[0])) return;
      clearTimeout(timer);
      node.removeListener('call:status', listener);
      resolve(call.args[0]);
    };
    node.on('call:status', listener);
  });
}

module.exports = { helper, load, nextMessage, statusMatching };
