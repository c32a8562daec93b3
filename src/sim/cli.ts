#!/usr/bin/env node
/** Registers simulated LwM2M devices to a server until interrupted: `lwm2m-sim-device --endpoint my-sensor`. */
import { parseArgs } from 'node:util';
import { SimulatedDevice } from './simulated-device';
import { SimulatedFirmware } from './firmware-update';

const USAGE = `usage: lwm2m-sim-device [--server coap://127.0.0.1:5683 | --bootstrap coap://127.0.0.1:5685] [--endpoint sim-device] [--count 1]
                        [--lifetime 60] [--lwm2m 1.1] [--binding U] [--queue] [--wander]
                        [--firmware] [--model name]
                        [--server coaps://127.0.0.1:5684 --psk-identity id --psk-key hex]
                        [--server coap+tcp://127.0.0.1:5683 | coaps+tcp://127.0.0.1:5684 --psk-identity id --psk-key hex]
                        [--bootstrap-pack] [--object-version 3303=1.0 ...]
  --wander           change the temperature /3303/0/5700 every 5 s, notifying observers
  --firmware         a Firmware Update object /5 (push and pull over CoAP, CoAPs, HTTP, HTTPS):
                     a package whose first line is "LWM2M-SIM-FW <version>" installs that version
  --model            the Model Number /3/0/1
  coaps://           DTLS with the PSK given (one device: --count 1)
  coap+tcp://        CoAP over TCP (RFC 8323), binding T
  coaps+tcp://       CoAP over TLS with the PSK given (one device: --count 1)
  --bootstrap-pack   with --bootstrap: one Bootstrap-Pack-Request (GET /bspack, LwM2M 1.2) instead of a bootstrap session
  --object-version   announce an object in a version (</3303>;ver=1.0); repeatable`;

type Scheme = 'coap' | 'coaps' | 'coap+tcp' | 'coaps+tcp';

/** The address, port (plainPort by default, the next one for a secure scheme) and scheme of a URI; the scheme must be one of those allowed. */
function coapPeer(uri: string, allowed: Scheme[], plainPort = 5683): { address: string; port: number; scheme: Scheme } {
  const url = new URL(uri);
  const scheme = url.protocol.slice(0, -1) as Scheme;
  if (!allowed.includes(scheme)) throw new Error(`${allowed.map((s) => `${s}://`).join(' or ')} expected here, not ${url.protocol}//`);
  const secure = scheme === 'coaps' || scheme === 'coaps+tcp';
  return { address: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (secure ? plainPort + 1 : plainPort)), scheme };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      server: { type: 'string', default: 'coap://127.0.0.1:5683' },
      bootstrap: { type: 'string' },
      endpoint: { type: 'string', default: 'sim-device' },
      count: { type: 'string', default: '1' },
      lifetime: { type: 'string', default: '60' },
      lwm2m: { type: 'string', default: '1.1' },
      binding: { type: 'string', default: 'U' },
      queue: { type: 'boolean', default: false },
      wander: { type: 'boolean', default: false },
      firmware: { type: 'boolean', default: false },
      model: { type: 'string' },
      'bootstrap-pack': { type: 'boolean', default: false },
      'object-version': { type: 'string', multiple: true, default: [] },
      'psk-identity': { type: 'string' },
      'psk-key': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const { scheme, ...server } = coapPeer(values.server!, ['coap', 'coaps', 'coap+tcp', 'coaps+tcp']);
  const secure = scheme === 'coaps' || scheme === 'coaps+tcp';
  if (secure && (!values['psk-identity'] || !/^([0-9a-fA-F]{2})+$/.test(values['psk-key'] ?? ''))) throw new Error(`${scheme}:// needs --psk-identity and --psk-key (hex)`);
  const psk = secure ? { identity: values['psk-identity']!, key: Buffer.from(values['psk-key']!, 'hex') } : undefined;
  const bootstrapServer = values.bootstrap ? coapPeer(values.bootstrap, ['coap'], 5685) : undefined;
  const objectVersions: Record<number, string> = {};
  for (const given of values['object-version'] ?? []) {
    const match = /^(\d{1,5})=(\d+\.\d+)$/.exec(given);
    if (!match) throw new Error(`--object-version takes id=major.minor, such as 3303=1.0, not ${given}`);
    objectVersions[Number(match[1])] = match[2];
  }
  const count = Number(values.count);
  const devices: SimulatedDevice[] = [];
  for (let i = 0; i < count; i++) {
    const endpoint = count === 1 ? values.endpoint! : `${values.endpoint}-${i}`;
    const device = new SimulatedDevice({
      endpoint,
      server,
      lifetime: Number(values.lifetime),
      lwm2mVersion: values.lwm2m,
      binding: values.binding,
      queueMode: values.queue,
      autoUpdate: true,
      bootstrapServer,
      // With a bootstrap server, the account it writes says how to reach the LwM2M server.
      dtls: !bootstrapServer && scheme === 'coaps' ? psk : undefined,
      tcp: !bootstrapServer && scheme === 'coap+tcp',
      tls: !bootstrapServer && scheme === 'coaps+tcp' ? psk : undefined,
      maxRequestBodyBytes: values.firmware ? 64 * 1024 * 1024 : undefined,
      objectVersions,
    });
    if (values.model !== undefined) device.objects.get(3)?.get(0)?.set(1, values.model);
    if (values.firmware) new SimulatedFirmware(device, { stepMs: 1000 });
    await device.start();
    devices.push(device);
    if (bootstrapServer) {
      const provisioned = values['bootstrap-pack'] ? await device.bootstrapPack() : await device.bootstrap();
      console.log(`${endpoint} bootstrapped: LwM2M server ${provisioned.address}:${provisioned.port}`);
    }
    const location = await device.register();
    console.log(`${endpoint} registered at ${device.options.server.address}:${device.options.server.port}${location}`);
  }
  if (values.wander) {
    setInterval(() => {
      for (const device of devices) {
        const current = Number(device.getResource('/3303/0/5700') ?? 20);
        device.setResource('/3303/0/5700', Math.round((current + (Math.random() - 0.5)) * 10) / 10).catch(() => undefined);
      }
    }, 5000);
  }
  const stop = async () => {
    await Promise.all(
      devices.map(async (device) => {
        await device.deregister().catch((error: Error) => console.error(`${device.options.endpoint}: ${error.message}`));
        await device.stop();
      }),
    );
    console.log('de-registered');
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  setInterval(() => undefined, 1 << 30);
}

main().catch((error: Error) => {
  console.error(error.message);
  console.error(USAGE);
  process.exit(1);
});
