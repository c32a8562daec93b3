'use strict';
// 10,000 observations over 200 devices, each on its own socket in a separate
// process, then bursts of notifications: every one must reach the observation
// of its own device, in order, exactly once.
const assert = require('node:assert/strict');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { FleetProcess } = require('../dist/sim/fleet-client');
const { ObserveRequest } = require('../dist/lib/lwm2m/requests/observe');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { freePort } = require('./support/udp');

const DEVICES = 200;
const SENSORS = 50;
const BURSTS = 3;

describe('10,000 observations under bursts of notifications', function () {
  this.timeout(120000);
  let server;
  let fleet;

  before(async () => {
    const port = await freePort();
    server = new Lwm2mServer({ address: '127.0.0.1', port, transmission: { ackTimeoutMs: 1000 }, client: { defaultTimeoutMs: 20000 } });
    await server.start();
    fleet = new FleetProcess();
    await fleet.start({ server: { address: '127.0.0.1', port }, count: DEVICES, prefix: 'dev-', sensorsPerDevice: SENSORS, ackTimeoutMs: 1000 });
    await fleet.run({ command: 'register' });
    assert.equal(server.registrations.size, DEVICES);
  });

  after(async () => {
    await fleet.close();
    await server.stop();
  });

  for (const confirmable of [false, true]) {
    it(`delivers every ${confirmable ? 'confirmable' : 'non-confirmable'} notification to the right observation`, async () => {
      // The previous test's observations end at the devices too (GET Observe=1), so every burst counts exactly.
      await Promise.all(server.observations.list().map((observation) => server.observations.cancel(observation)));
      const received = Array.from({ length: DEVICES }, () => Array.from({ length: SENSORS }, () => []));
      let wrong = 0;
      await Promise.all(
        Array.from({ length: DEVICES }, async (_, i) => {
          for (let j = 0; j < SENSORS; j++) {
            await server.observe(`dev-${i}`, new ObserveRequest(Lwm2mPath.of(3303, j, 5700)), {
              notify: ({ observation, records: [record] }) => {
                const fromRightDevice = observation.endpoint === `dev-${i}` && Math.floor(record.value / 1e6) === i;
                const forRightSensor = record.path.instanceId === j && Math.floor(record.value / 1e3) % 1e3 === j;
                if (fromRightDevice && forRightSensor) received[i][j].push(record.value % 1e3);
                else wrong++;
              },
              error: () => wrong++,
              ended: () => undefined,
            });
          }
        }),
      );
      assert.equal(server.observations.size, DEVICES * SENSORS);

      const started = Date.now();
      let sent = 0;
      for (let round = 1; round <= BURSTS; round++) sent += await fleet.run({ command: 'burst', round, confirmable });
      const expected = DEVICES * SENSORS * BURSTS;
      assert.equal(sent, expected);
      const count = () => received.reduce((sum, sensors) => sum + sensors.reduce((s, values) => s + values.length, 0), 0);
      const deadline = Date.now() + 30000;
      while (count() < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const elapsed = Date.now() - started;
      assert.equal(wrong, 0, 'no notification reached another observation');
      assert.equal(count(), expected, `lost ${expected - count()} of ${expected}`);
      for (const sensors of received) for (const values of sensors) assert.deepEqual(values, [1, 2, 3], 'in order, none twice');
      console.log(`      ${expected} ${confirmable ? 'CON' : 'NON'} notifications in ${elapsed} ms`);
    });
  }
});
