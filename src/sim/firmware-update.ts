import { ResponseCode } from '../lib/coap/codes';
import type { ResourceValue } from '../lib/content/values';
import type { DeviceRefusal, Resource } from './object-tree';
import type { SimulatedDevice } from './simulated-device';

export interface SimulatedFirmwareOptions {
  /** /5/0/9: 0 pull only, 1 push only, 2 both (default). */
  deliveryMethod?: 0 | 1 | 2;
  /** /5/0/8: 0 CoAP, 1 CoAPs, 2 HTTP, 3 HTTPS, 4 CoAP over TCP, 5 CoAP over TLS (default the first four). */
  protocols?: number[];
  /** The Update Result to fail with (2-9): a download failure during the download, 8 on Update. */
  failWith?: number;
  /** How long each step takes (checking the package, installing it, rebooting): default 50 ms. */
  stepMs?: number;
  /** Registers again after the update, as a device that reboots into its new firmware (default true). */
  reboot?: boolean;
  /** Defers the update this long (Update Result 11) before installing it. */
  deferMs?: number;
  /** The version the update installs when the package does not name one (a package that starts "LWM2M-SIM-FW <version>\n" does). */
  nextVersion?: string;
  /** Block2 size a pull asks for: 2^(szx+4) bytes (default 6: 1024). */
  pullSzx?: number;
}

const STATE = '/5/0/3';
const RESULT = '/5/0/5';
const FIRMWARE_VERSION = '/3/0/3';
const HEADER = /^LWM2M-SIM-FW (\S+)\n/;

/**
 * The Firmware Update object (/5) of a simulated device, as LwM2M 1.0-1.2
 * describe its state machine: Idle (0) → Downloading (1) as the package
 * comes (pushed to /5/0/0 in Block1 blocks, or fetched from the URI written
 * to /5/0/1 over CoAP, CoAPs, CoAP over TCP or TLS, HTTP or HTTPS) → Downloaded (2) → Updating
 * (3) on Update (/5/0/2, executable in Downloaded only) → Idle with Update
 * Result 1 and the new Firmware Version (/3/0/3), registering again as a
 * rebooted device does. An empty URI or a one-zero-byte package resets it;
 * Cancel (/5/0/10) too. A failure code (failWith) is reported where the
 * specification puts it, returning to Idle (download failures) or
 * Downloaded (update failed).
 */
export class SimulatedFirmware {
  /** The package as received, until it is installed. */
  received?: Buffer;
  /** URIs the device was told, in order. */
  readonly uris: string[] = [];
  private timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly device: SimulatedDevice,
    readonly options: SimulatedFirmwareOptions = {},
  ) {
    const protocols = options.protocols ?? [0, 1, 2, 3];
    const resources = new Map<number, Resource>([
      [1, ''],
      [2, () => this.update()],
      [3, 0],
      [5, 0],
      [6, 'sim-firmware'],
      [7, ''],
      [8, new Map(protocols.map((protocol, i) => [i, protocol]))],
      [9, options.deliveryMethod ?? 2],
      [10, () => this.cancel()],
    ]);
    device.objects.set(5, new Map([[0, resources]]));
    device.writeHandlers.set('/5/0/0', (value) => this.pushed(value));
    device.writeHandlers.set('/5/0/1', (value) => this.uriWritten(value));
    device.onBlock1((path, _received, more) => {
      if (path.endsWith('/5/0/0') && more && this.state !== 1) this.set(1, 0);
    });
  }

  get state(): number {
    return this.device.getResource(STATE) as number;
  }

  get result(): number {
    return this.device.getResource(RESULT) as number;
  }

  private get step(): number {
    return this.options.stepMs ?? 50;
  }

  /** A write of /5/0/0: a reset (one zero byte), or the whole package (its blocks announced Downloading). */
  private pushed(value: ResourceValue): void | DeviceRefusal {
    const data = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
    if (data.length === 0 || (data.length === 1 && data[0] === 0)) return this.reset(0);
    if (this.state === 3) return { code: ResponseCode.MethodNotAllowed, reason: 'updating' };
    if (this.options.deliveryMethod === 0) return { code: ResponseCode.MethodNotAllowed, reason: 'this device fetches its firmware (pull only)' };
    const fail = this.options.failWith;
    if (fail === 2) {
      this.set(0, 2);
      return { code: ResponseCode.RequestEntityTooLarge, reason: 'not enough flash' };
    }
    if (fail === 3) {
      this.set(0, 3);
      return { code: ResponseCode.InternalServerError, reason: 'out of RAM' };
    }
    this.set(1, 0);
    this.received = data;
    this.later(() => this.checked());
  }

  /** A write of /5/0/1: a reset (empty), or a URI to fetch the package from. */
  private uriWritten(value: ResourceValue): void | DeviceRefusal {
    const uri = String(value);
    if (this.state === 3) return { code: ResponseCode.MethodNotAllowed, reason: 'updating' };
    if (uri === '') {
      this.device.objects.get(5)!.get(0)!.set(1, '');
      return this.reset(0);
    }
    if (this.options.deliveryMethod === 1) return { code: ResponseCode.MethodNotAllowed, reason: 'this device takes its firmware pushed (push only)' };
    this.device.objects.get(5)!.get(0)!.set(1, uri);
    this.uris.push(uri);
    this.set(1, 0);
    this.later(() => void this.fetch(uri));
  }

  private async fetch(uri: string): Promise<void> {
    const fail = this.options.failWith;
    let scheme: string;
    try {
      scheme = new URL(uri).protocol.slice(0, -1);
    } catch {
      return this.set(0, 7);
    }
    if (fail === 7) return this.set(0, 7);
    const protocol = ({ coap: 0, coaps: 1, http: 2, https: 3, 'coap+tcp': 4, 'coaps+tcp': 5 } as Record<string, number>)[scheme];
    if (fail === 9 || protocol === undefined || !(this.options.protocols ?? [0, 1, 2, 3]).includes(protocol)) return this.set(0, 9);
    let data: Buffer;
    try {
      data = await this.device.download(uri, { szx: this.options.pullSzx });
    } catch (error) {
      // Refused (4.03, 4.04: the URI is not one to fetch) or no answer.
      return this.set(0, /\b4\.0[34]\b|HTTP 40[34]/.test((error as Error).message) ? 7 : 4);
    }
    if (this.state !== 1) return; // reset meanwhile
    if (fail === 2 || fail === 3 || fail === 4) return this.set(0, fail);
    this.received = data;
    this.later(() => this.checked());
  }

  /** The whole package is in: its check passes (Downloaded) or fails as injected. */
  private checked(): void {
    if (this.state !== 1) return;
    const fail = this.options.failWith;
    if (fail === 4 || fail === 5 || fail === 6) {
      this.received = undefined;
      return this.set(0, fail);
    }
    this.set(2, 0);
  }

  /** Update (/5/0/2): installs the downloaded package. */
  private update(): void | DeviceRefusal {
    if (this.state !== 2) return { code: ResponseCode.MethodNotAllowed, reason: `State is ${this.state}, not Downloaded` };
    if (this.options.deferMs !== undefined && this.result !== 11) {
      this.set(2, 11);
      this.later(() => this.install(), this.options.deferMs);
      return;
    }
    this.install();
  }

  private install(): void {
    this.set(3, 0);
    this.later(() => {
      if (this.options.failWith === 8) return this.set(2, 8);
      const version = HEADER.exec(this.received?.toString('latin1', 0, 64) ?? '')?.[1] ?? this.options.nextVersion;
      this.received = undefined;
      const resources = this.device.objects.get(5)!.get(0)!;
      resources.set(3, 0);
      resources.set(5, 1);
      resources.set(1, '');
      if (version !== undefined) this.device.objects.get(3)!.get(0)!.set(3, version);
      if (this.options.reboot === false) {
        void this.device.notifyPaths([STATE, RESULT, FIRMWARE_VERSION]);
        return;
      }
      // Rebooted into the new firmware: a new registration, no observations.
      this.later(() => void this.device.register().catch(() => undefined));
    });
  }

  /** Cancel (/5/0/10, object version 1.1): only before Updating. */
  private cancel(): void | DeviceRefusal {
    if (this.state === 3) return { code: ResponseCode.MethodNotAllowed, reason: 'updating' };
    this.reset(10);
  }

  private reset(result: number): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.received = undefined;
    this.set(0, result);
  }

  /** Sets State and Update Result, then notifies their observers. */
  private set(state: number, result: number): void {
    const resources = this.device.objects.get(5)!.get(0)!;
    resources.set(3, state);
    resources.set(5, result);
    void this.device.notifyPaths([STATE, RESULT]);
  }

  private later(step: () => void, ms = this.step): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      step();
    }, ms);
    this.timers.add(timer);
  }
}
