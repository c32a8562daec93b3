'use strict';
const { SimulatedDevice } = require('../../dist/sim/simulated-device');

/** Fast CoAP retransmission for tests on loopback. */
const FAST = { ackTimeoutMs: 100, maxRetransmit: 2 };

/**
 * Started simulated devices for one test file, registering with the server on
 * port() (read when each device is made), all stopped by stopAll().
 */
function devicePool(port) {
  const devices = [];
  return {
    async device(endpoint, options = {}) {
      const d = new SimulatedDevice({ endpoint, server: { address: '127.0.0.1', port: port() }, transmission: FAST, ...options });
      await d.start();
      devices.push(d);
      return d;
    },
    stopAll: () => Promise.all(devices.splice(0).map((d) => d.stop())),
  };
}

module.exports = { devicePool, FAST };
