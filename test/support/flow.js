'use strict';
const helper = require('node-red-node-test-helper');
const { nodeRedMain, nodeRedModule } = require('./node-red');
helper.init(nodeRedMain);

const serverNode = require('../../dist/nodes/lwm2m-server.js');
const eventsNode = require('../../dist/nodes/lwm2m-events.js');
const operationNodes = require('../../dist/nodes/lwm2m-operations.js');
const observeNode = require('../../dist/nodes/lwm2m-observe.js');
const bootstrapServerNode = require('../../dist/nodes/lwm2m-bootstrap-server.js');
const bootstrapNodes = require('../../dist/nodes/lwm2m-bootstrap.js');
const onem2mNodes = require('../../dist/nodes/lwm2m-onem2m.js');
const firmwareNode = require('../../dist/nodes/lwm2m-firmware.js');
const catchNode = nodeRedModule('@node-red/nodes/core/common/25-catch.js');

const NODES = [serverNode, eventsNode, operationNodes, observeNode, bootstrapServerNode, bootstrapNodes, onem2mNodes, firmwareNode, catchNode];

/** Loads a flow into the real Node-RED runtime of the test helper; helper nodes start collecting msgs at once. */
async function load(flow, credentials = {}, nodes = NODES) {
  await helper.load(nodes, flow, credentials);
  for (const node of flow) if (node.type === 'helper') inbox(helper.getNode(node.id));
}

const inboxes = new WeakMap();

/**
 * The msgs a helper node receives, in order. Node-RED keeps 'input' listeners
 * in its own list, where once() does not remove itself, so each node gets one
 * permanent listener feeding a queue.
 */
function inbox(node) {
  let box = inboxes.get(node);
  if (!box) {
    box = { queue: [], waiters: [] };
    node.on('input', (msg) => {
      const waiter = box.waiters.shift();
      if (waiter) waiter(msg);
      else box.queue.push(msg);
    });
    inboxes.set(node, box);
  }
  return box;
}

/** Resolves with the next msg a helper node receives. */
async function nextMessage(node, timeoutMs = 3000) {
  return (await firstMessage([node], timeoutMs)).msg;
}

/** Resolves with the first msg any of the helper nodes receives, as {node, msg}; the others stop waiting. */
function firstMessage(nodes, timeoutMs = 3000) {
  const boxes = nodes.map(inbox);
  const ready = boxes.findIndex((box) => box.queue.length > 0);
  if (ready >= 0) return Promise.resolve({ node: nodes[ready], msg: boxes[ready].queue.shift() });
  return new Promise((resolve, reject) => {
    const waiters = boxes.map((box, index) => (msg) => {
      settle();
      resolve({ node: nodes[index], msg });
    });
    const settle = () => {
      clearTimeout(timer);
      boxes.forEach((box, index) => {
        const at = box.waiters.indexOf(waiters[index]);
        if (at >= 0) box.waiters.splice(at, 1);
      });
    };
    const timer = setTimeout(() => {
      settle();
      reject(new Error(`no message at ${nodes.map((node) => node.name || node.id).join(' or ')} within ${timeoutMs} ms`));
    }, timeoutMs);
    boxes.forEach((box, index) => box.waiters.push(waiters[index]));
  });
}

/** The msgs received so far, without waiting. */
function received(node) {
  return inbox(node).queue;
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

module.exports = { helper, load, nextMessage, firstMessage, received, statusMatching, NODES };
