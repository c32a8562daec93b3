'use strict';
// Helpers of the firmware tests: a server with its firmware service, simulated devices with /5 or /9, and campaigns run to their end.
const { Lwm2mServer } = require('../../dist/lib/lwm2m/server');
const { FirmwareService } = require('../../dist/lib/firmware/firmware-service');
const { SimulatedDevice } = require('../../dist/sim/simulated-device');
const { SimulatedFirmware } = require('../../dist/sim/firmware-update');
const { SimulatedSoftware } = require('../../dist/sim/software-management');

const FAST = { ackTimeoutMs: 200, maxRetransmit: 2 };

/** A package the simulator installs as `version` (it reads the first line), padded to `size` bytes. */
function firmwarePackage(version, size = 20_000) {
  const header = Buffer.from(`LWM2M-SIM-FW ${version}\n`);
  const body = Buffer.alloc(Math.max(0, size - header.length));
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
  return Buffer.concat([header, body]);
}

function softwarePackage(name, version, size = 6000) {
  const header = Buffer.from(`LWM2M-SIM-SW ${name} ${version}\n`);
  return Buffer.concat([header, Buffer.alloc(Math.max(0, size - header.length), 0x5a)]);
}

/** Settings of a campaign, short timeouts for tests. */
function settings(overrides = {}) {
  return {
    object: 5,
    action: 'update',
    delivery: 'auto',
    retries: 0,
    retryDelayMs: 50,
    requestTimeoutMs: 2000,
    downloadTimeoutMs: 5000,
    updateTimeoutMs: 5000,
    pollIntervalMs: 200,
    publicUris: {},
    ...overrides,
  };
}

/** Collects what a campaign reports; `ended` resolves with the summary. */
function recorder() {
  const record = { progress: [], results: [] };
  record.ended = new Promise((resolve) => {
    record.listener = {
      progress: (event) => record.progress.push(event),
      result: (result) => record.results.push(result),
      finished: (summary) => {
        record.summary = summary;
        resolve(summary);
      },
    };
  });
  return record;
}

class FirmwareBench {
  constructor() {
    this.devices = [];
  }

  async startServer(options = {}, firmwareOptions = {}) {
    this.server = new Lwm2mServer({ address: '127.0.0.1', port: 0, transmission: FAST, client: { defaultTimeoutMs: 3000, ...(options.client ?? {}) }, ...options });
    this.firmware = new FirmwareService(this.server, firmwareOptions);
    await this.server.start();
    return this.server;
  }

  get port() {
    return this.server.coap.plain.address.port;
  }

  /** A registered simulated device with a Firmware Update object (fw options) and/or a Software Management object (sw options). */
  async device(endpoint, { fw, sw, register = true, ...options } = {}) {
    const device = new SimulatedDevice({ endpoint, server: options.server ?? { address: '127.0.0.1', port: this.port }, transmission: FAST, maxRequestBodyBytes: 16 << 20, ...options });
    if (fw !== undefined) device.firmware = new SimulatedFirmware(device, { stepMs: 20, ...fw });
    if (sw !== undefined) device.software = new SimulatedSoftware(device, { stepMs: 20, ...sw });
    await device.start();
    this.devices.push(device);
    if (register) await device.register();
    return device;
  }

  /** Runs a campaign to its summary. */
  async run(request, owner = 'test-node') {
    const record = recorder();
    record.campaign = await this.firmware.start({ concurrency: 5, ...request, settings: settings(request.settings) }, owner, record.listener);
    await record.ended;
    return record;
  }

  async stop() {
    await Promise.all(this.devices.splice(0).map((device) => device.stop()));
    await this.server?.stop();
    this.server = undefined;
  }
}

module.exports = { FirmwareBench, firmwarePackage, softwarePackage, settings, recorder, FAST };
