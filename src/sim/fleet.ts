import type { Peer } from '../lib/coap/peer';
import { Lwm2mPath } from '../lib/model/path';
import { ObjectTreeInit, buildObjectTree } from './object-tree';
import { SimulatedDevice } from './simulated-device';
import { SimulatedFirmware, SimulatedFirmwareOptions } from './firmware-update';

export interface FleetOptions {
  server: Peer;
  /** Servers to spread the devices over (device i talks to servers[i % n]), as a load balancer would; server alone otherwise. */
  servers?: Peer[];
  count: number;
  /** Endpoint names are `${prefix}${index}`. */
  prefix: string;
  /** Temperature instances per device (/3303/0 .. /3303/n-1), whose 5700 values the bursts change. */
  sensorsPerDevice?: number;
  lifetime?: number;
  queueMode?: boolean;
  ackTimeoutMs?: number;
  /** A Firmware Update object (/5) on every device, device i with the options [i % length] (firmware 1.0.0, model number from modelOf). */
  firmware?: SimulatedFirmwareOptions[];
  /** Model Number (/3/0/1) of device i (default "sim"). */
  models?: string[];
}

/** What a device of the fleet reports about its firmware. */
export interface FirmwareReport {
  endpoint: string;
  version: unknown;
  state: number;
  result: number;
  /** Registrations it made (an update that reboots the device makes one more). */
  registrations: number;
}

/** Devices that send their notifications back to back before the fleet yields to its event loop. */
const BURST_GROUP = 20;

/** Commands a fleet accepts, in its own process or in this one. */
export type FleetCommand =
  | { command: 'start'; options: FleetOptions }
  | { command: 'register'; concurrency?: number }
  | { command: 'update' }
  | { command: 'burst'; round: number; confirmable: boolean }
  /** The devices that talk to `from` talk to `to` from now on (a load balancer re-hashing a dead instance's devices); resolves with how many. */
  | { command: 'move'; from: Peer; to: Peer }
  | { command: 'firmware' }
  | { command: 'stop' };

/**
 * Many simulated devices, each on its own UDP socket: the load side of the
 * scale tests and the benchmark, meant to run in a process of its own so the
 * server under test has its core to itself.
 */
export class SimulatedFleet {
  readonly devices: SimulatedDevice[] = [];
  private options?: FleetOptions;

  async run(message: FleetCommand): Promise<unknown> {
    switch (message.command) {
      case 'start':
        return this.start(message.options);
      case 'register':
        await this.inBatches((device) => device.register(), message.concurrency);
        return this.devices.length;
      case 'update':
        await this.inBatches((device) => device.update());
        return this.devices.length;
      case 'burst':
        return this.burst(message.round, message.confirmable);
      case 'move': {
        const moving = this.devices.filter((device) => device.options.server.address === message.from.address && device.options.server.port === message.from.port);
        for (const device of moving) device.moveTo(message.to);
        return moving.length;
      }
      case 'firmware':
        return this.devices.map((device): FirmwareReport => ({
          endpoint: device.options.endpoint,
          version: device.getResource('/3/0/3'),
          state: device.getResource('/5/0/3') as number,
          result: device.getResource('/5/0/5') as number,
          registrations: device.registrations,
        }));
      case 'stop':
        await Promise.all(this.devices.map((device) => device.stop()));
        this.devices.length = 0;
        return 0;
    }
  }

  private async start(options: FleetOptions): Promise<number> {
    this.options = options;
    const sensors = options.sensorsPerDevice ?? 1;
    for (let i = 0; i < options.count; i++) {
      const instances: ObjectTreeInit[number] = {};
      for (let j = 0; j < sensors; j++) instances[j] = { 5700: 0, 5701: 'Cel' };
      const device = new SimulatedDevice({
        endpoint: `${options.prefix}${i}`,
        server: options.servers?.[i % options.servers.length] ?? options.server,
        lifetime: options.lifetime ?? 300,
        queueMode: options.queueMode,
        objects: buildObjectTree({ 3: { 0: { 0: 'Node-RED LwM2M', 1: options.models?.[i % options.models.length] ?? 'sim', 3: '1.0.0', 9: 100 } }, 3303: instances }),
        transmission: { ackTimeoutMs: options.ackTimeoutMs ?? 2000 },
        maxRequestBodyBytes: options.firmware ? 16 * 1024 * 1024 : undefined,
      });
      if (options.firmware) new SimulatedFirmware(device, options.firmware[i % options.firmware.length]);
      await device.start();
      this.devices.push(device);
    }
    return this.devices.length;
  }

  /**
   * Every device sets every sensor to deviceIndex·10⁶ + sensor·10³ + round,
   * so the receiver can tell where each notification came from.
   */
  private async burst(round: number, confirmable: boolean): Promise<number> {
    const sensors = this.options?.sensorsPerDevice ?? 1;
    let sent = 0;
    const deliveries: Promise<void>[] = [];
    for (const [i, device] of this.devices.entries()) {
      device.options.confirmableNotifications = confirmable;
      const resources = device.objects.get(3303)!;
      for (let j = 0; j < sensors; j++) resources.get(j)!.set(5700, i * 1e6 + j * 1e3 + round);
      sent += device.observations.length;
      deliveries.push(device.notify(Lwm2mPath.of(3303)));
      // Devices are separate machines: let the sockets drain between groups instead of queueing the whole fleet's burst in one go.
      if (i % BURST_GROUP === BURST_GROUP - 1) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(deliveries);
    return sent;
  }

  /** Bounded concurrency: a few hundred exchanges in flight, not the whole fleet at once. */
  private async inBatches(task: (device: SimulatedDevice) => Promise<unknown>, batch = 256): Promise<void> {
    for (let i = 0; i < this.devices.length; i += batch) await Promise.all(this.devices.slice(i, i + batch).map(task));
  }
}
