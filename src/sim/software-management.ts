import { ResponseCode } from '../lib/coap/codes';
import type { ResourceValue } from '../lib/content/values';
import type { DeviceRefusal, Resource } from './object-tree';
import type { SimulatedDevice } from './simulated-device';

export interface SimulatedSoftwareOptions {
  /** Instances at start (default one, /9/0); Create /9 makes more. */
  instances?: number[];
  /** The Update Result to fail with (50-59): download failures during the delivery, 58 on Install, 59 on Uninstall. */
  failWith?: number;
  /** How long each step takes (checking, installing): default 50 ms. */
  stepMs?: number;
}

const HEADER = /^LWM2M-SIM-SW (\S+) (\S+)\n/;

/**
 * The Software Management object (/9) of a simulated device, each instance
 * with the state machines of LwM2M 1.0-1.2: INITIAL (0) → DOWNLOAD STARTED
 * (1) as the package comes (pushed to /9/x/2 in Block1 blocks, or fetched
 * from the URI written to /9/x/3) → DOWNLOADED (2) → DELIVERED (3) once its
 * integrity is checked → INSTALLED (4) on Install (/9/x/4); Activate and
 * Deactivate (/9/x/10, 11) set the Activation State (/9/x/12) of an
 * installed package; Uninstall (/9/x/6) goes back to INITIAL, with argument
 * 1 ("ForUpdate") keeping the package for an update. Update Result (/9/x/9)
 * follows; failWith injects a failure code where the specification puts it.
 */
export class SimulatedSoftware {
  private readonly received = new Map<number, Buffer>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly device: SimulatedDevice,
    readonly options: SimulatedSoftwareOptions = {},
  ) {
    device.objects.set(9, new Map((options.instances ?? [0]).map((id) => [id, this.instance(id)])));
    device.instanceFactories.set(9, (id) => this.instance(id));
    device.onBlock1((path, _received, more) => {
      const match = /\/9\/(\d+)\/2$/.exec(path);
      if (match && more && this.state(Number(match[1])) !== 1) this.set(Number(match[1]), 1, 1);
    });
  }

  state(id: number): number {
    return this.device.getResource(`/9/${id}/7`) as number;
  }

  result(id: number): number {
    return this.device.getResource(`/9/${id}/9`) as number;
  }

  private get step(): number {
    return this.options.stepMs ?? 50;
  }

  private instance(id: number): Map<number, Resource> {
    this.device.writeHandlers.set(`/9/${id}/2`, (value) => this.pushed(id, value));
    this.device.writeHandlers.set(`/9/${id}/3`, (value) => this.uriWritten(id, value));
    return new Map<number, Resource>([
      [0, ''],
      [1, ''],
      [4, () => this.install(id)],
      [6, (args) => this.uninstall(id, args)],
      [7, 0],
      [8, false],
      [9, 0],
      [10, () => this.activate(id, true)],
      [11, () => this.activate(id, false)],
      [12, false],
    ]);
  }

  private pushed(id: number, value: ResourceValue): void | DeviceRefusal {
    const state = this.state(id);
    if (state !== 0 && state !== 1) return { code: ResponseCode.MethodNotAllowed, reason: `Update State is ${state}: uninstall first` };
    const fail = this.options.failWith;
    if (fail === 50) {
      this.set(id, 0, 50);
      return { code: ResponseCode.RequestEntityTooLarge, reason: 'not enough storage' };
    }
    if (fail === 51) {
      this.set(id, 0, 51);
      return { code: ResponseCode.InternalServerError, reason: 'out of memory' };
    }
    this.received.set(id, Buffer.isBuffer(value) ? value : Buffer.from(String(value)));
    this.set(id, 2, 1);
    this.later(() => this.delivered(id));
  }

  private uriWritten(id: number, value: ResourceValue): void | DeviceRefusal {
    const state = this.state(id);
    if (state !== 0) return { code: ResponseCode.MethodNotAllowed, reason: `Update State is ${state}: uninstall first` };
    const uri = String(value);
    this.set(id, 1, 1);
    this.later(async () => {
      if (this.options.failWith === 56) return this.set(id, 0, 56);
      let data: Buffer;
      try {
        data = await this.device.download(uri);
      } catch (error) {
        return this.set(id, 0, /\b4\.0[34]\b|HTTP 40[34]|unsupported protocol|Invalid URL/.test((error as Error).message) ? 56 : 52);
      }
      if (this.state(id) !== 1) return;
      this.received.set(id, data);
      this.set(id, 2, 1);
      this.later(() => this.delivered(id));
    });
  }

  /** The integrity check of a downloaded package: DELIVERED, or the injected download failure. */
  private delivered(id: number): void {
    const fail = this.options.failWith;
    if (fail !== undefined && fail >= 52 && fail <= 57) {
      this.received.delete(id);
      return this.set(id, 0, fail);
    }
    this.set(id, 3, 3);
  }

  private install(id: number): void | DeviceRefusal {
    if (this.state(id) !== 3) return { code: ResponseCode.MethodNotAllowed, reason: `Update State is ${this.state(id)}, not DELIVERED` };
    this.later(() => {
      if (this.options.failWith === 58) return this.set(id, 3, 58);
      const header = HEADER.exec(this.received.get(id)?.toString('latin1', 0, 128) ?? '');
      const resources = this.device.objects.get(9)!.get(id)!;
      resources.set(0, header?.[1] ?? 'sim-software');
      resources.set(1, header?.[2] ?? '1.0');
      this.received.delete(id);
      this.set(id, 4, 2);
    });
  }

  private activate(id: number, active: boolean): void | DeviceRefusal {
    if (this.state(id) !== 4) return { code: ResponseCode.MethodNotAllowed, reason: 'not installed' };
    this.device.objects.get(9)!.get(id)!.set(12, active);
    void this.device.notifyPaths([`/9/${id}/12`]);
  }

  private uninstall(id: number, args: string): void | DeviceRefusal {
    const forUpdate = args.trim() === '1';
    if (this.options.failWith === 59 && !forUpdate) {
      this.set(id, this.state(id), 59);
      return;
    }
    const resources = this.device.objects.get(9)!.get(id)!;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.received.delete(id);
    resources.set(12, false);
    if (!forUpdate) {
      resources.set(0, '');
      resources.set(1, '');
    }
    this.set(id, 0, 0);
    void this.device.notifyPaths([`/9/${id}/12`]);
  }

  private set(id: number, state: number, result: number): void {
    const resources = this.device.objects.get(9)!.get(id)!;
    resources.set(7, state);
    resources.set(9, result);
    void this.device.notifyPaths([`/9/${id}/7`, `/9/${id}/9`]);
  }

  private later(step: () => void | Promise<void>, ms = this.step): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void step();
    }, ms);
    this.timers.add(timer);
  }
}
