import type { ContentRecord, ResourceValue } from '../content/values';
import { DeviceRequestError } from '../lwm2m/device-client';
import type { Registration } from '../lwm2m/registration';
import { ExecuteRequest } from '../lwm2m/requests/execute';
import { ReadRequest } from '../lwm2m/requests/read';
import { WriteRequest } from '../lwm2m/requests/write';
import type { Lwm2mServer } from '../lwm2m/server';
import { Lwm2mPath } from '../model/path';
import type { FileService, Grant, PublicUris } from './file-service';
import type { FirmwarePackage } from './packages';
import { ResourceWatch, WatchTimeoutError } from './resource-watch';

/** What a campaign does to each device: Object 5 update, or an Object 9 operation. */
export type FirmwareAction = 'update' | 'install' | 'activate' | 'deactivate' | 'uninstall';

export type Delivery = 'auto' | 'push' | 'pull';

/** How a campaign treats every device; the node's settings and the msg's options. */
export interface JobSettings {
  object: 5 | 9;
  action: FirmwareAction;
  delivery: Delivery;
  /** The version the device must report afterwards (/3/0/3 for /5, /9/x/1 for /9). */
  version?: string;
  /** Only devices whose Model Number (/3/0/1) is this; the others are skipped. */
  model?: string;
  /** The /9 instance; for install without one, a free instance (INITIAL) or a new one. */
  instanceId?: number;
  /** /9 install: activate the software once installed. */
  activate?: boolean;
  /** Attempts after the first, for failures that may pass (timeouts, a lost connection). */
  retries: number;
  retryDelayMs: number;
  /** Each request (reads, writes of a URI, executes). */
  requestTimeoutMs: number;
  /** From the start of the delivery to Downloaded (/5) or DELIVERED (/9), the push's whole Block1 transfer included. */
  downloadTimeoutMs: number;
  /** From Update (/5/0/2) or Install (/9/x/4) to the result. */
  updateTimeoutMs: number;
  /** How often resources a device would not let us observe are read. */
  pollIntervalMs: number;
  publicUris: PublicUris;
}

/** A device's place in a campaign, as kept in the state store: enough to go on after a restart. */
export interface DeviceRecord {
  endpoint: string;
  phase: Phase;
  attempt: number;
  /** When the phase began. */
  since: number;
  delivery?: 'push' | 'pull';
  scheme?: string;
  /** The file service's token of a pulled package. */
  token?: string;
  /** The device took the whole pushed package (the write succeeded): after a restart it is not sent again. */
  written?: boolean;
  previousVersion?: string;
  instanceId?: number;
  /** /5/0/9 as the device reported it (for the way to cancel). */
  method?: number;
}

export type Phase = 'pending' | 'checking' | 'resetting' | 'downloading' | 'downloaded' | 'updating' | 'activating' | 'deactivating' | 'uninstalling' | 'verifying';

export type DeviceStatus = 'success' | 'failed' | 'skipped' | 'cancelled';

/** The outcome for one device, as the campaign reports it. */
export interface DeviceResult {
  campaign: string;
  endpoint: string;
  object: 5 | 9;
  action: FirmwareAction;
  instanceId?: number;
  status: DeviceStatus;
  /** Why, as a stable name: not-enough-flash, timeout, version-mismatch, current, other-model... */
  code?: string;
  reason?: string;
  /** The last Update Result (/5/0/5 or /9/x/9) and state (/5/0/3 or /9/x/7) the device reported. */
  updateResult?: number;
  state?: number;
  delivery?: 'push' | 'pull';
  /** The protocol of a pulled package: coap, coaps, http, https (the URI itself is the device's secret). */
  scheme?: string;
  previousVersion?: string;
  version?: string;
  expectedVersion?: string;
  attempts: number;
  durationMs: number;
}

/** What a device is doing now, for progress msgs. */
export interface ProgressEvent {
  campaign: string;
  endpoint: string;
  phase: Phase | 'retrying' | 'deferred' | 'waiting';
  attempt: number;
  /** Bytes of the package the device took (push) or fetched from the file service (pull). */
  bytes?: number;
  totalBytes?: number;
  percent?: number;
  state?: number;
  updateResult?: number;
  detail?: string;
}

/** An instance's values by resource id; multiple resources as lists. */
export interface InstanceValues {
  single: Map<number, ResourceValue>;
  lists: Map<number, ResourceValue[]>;
}

/** A device's update failed for a reason with a name. */
export class JobFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly details: { updateResult?: number; state?: number } = {},
  ) {
    super(message);
    this.name = 'JobFailure';
  }
}

/** The device does not need this campaign (already at the version, another model). */
export class JobSkip extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'JobSkip';
  }
}

/** The job was stopped with its server: its record stays for the next start. */
export class JobStopped extends Error {
  constructor() {
    super('stopped with the server');
    this.name = 'JobStopped';
  }
}

/** Cancelled by the flow. */
class JobCancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'JobCancelled';
  }
}

/** What a job needs from its campaign. */
export interface JobEnvironment {
  server: Lwm2mServer;
  files: FileService;
  campaign: string;
  settings: JobSettings;
  pkg?: FirmwarePackage;
  url?: string;
  progress(event: Omit<ProgressEvent, 'campaign' | 'endpoint' | 'attempt'>): void;
  /** Keeps the record (its phase changed). */
  persist(): void;
  /** Calls back when the device registers again (it rebooted); returns the function that stops it. */
  onRegistered(callback: () => void): () => void;
}

/** Phases in which the device has been given something to undo. */
const TOUCHED: readonly Phase[] = ['resetting', 'downloading', 'downloaded', 'updating', 'verifying'];

/** How often a device's byte count becomes a progress msg at most. */
const PROGRESS_INTERVAL_MS = 250;

/**
 * One device's update: the steps of an object's state machine (FirmwareJob,
 * SoftwareJob), the requests and waits they share, retries, cancel and stop.
 */
export abstract class Job {
  /** Aborts the waits and requests of the job: a cancel or a stop. */
  protected controller = new AbortController();
  protected watch?: ResourceWatch;
  /** The file service's grant of the package the device pulls from the server. */
  protected grant?: Grant;
  /** Undone after each attempt (listeners an attempt added). */
  protected readonly afterRun: (() => void)[] = [];
  private cancelled = false;
  private stopped = false;
  private lastBytesAt = 0;
  protected lastPercent = -1;
  protected readonly started = Date.now();

  constructor(
    protected readonly env: JobEnvironment,
    readonly record: DeviceRecord,
  ) {}

  get endpoint(): string {
    return this.record.endpoint;
  }

  /** Runs to an outcome; rejects only with JobStopped (the server stopped; the record stays for the next start). */
  async run(): Promise<DeviceResult> {
    const { settings } = this.env;
    for (;;) {
      try {
        const outcome = await this.attempt();
        return this.result(outcome.status, outcome);
      } catch (error) {
        this.closeWatch();
        if (this.stopped) throw new JobStopped();
        // A device left in the middle (stuck downloading, cancelled) is set back to its start; one not yet touched is left alone.
        const touched = TOUCHED.includes(this.record.phase);
        if (this.cancelled) {
          this.controller = new AbortController();
          if (touched) await this.resetDevice().catch(() => undefined);
          return this.result('cancelled', { code: 'cancelled', reason: 'cancelled by the flow' });
        }
        if (error instanceof JobSkip) return this.result('skipped', { code: error.code, reason: error.message });
        const failure = asFailure(error);
        if (touched) await this.resetDevice().catch(() => undefined);
        if (failure.retryable && this.record.attempt <= settings.retries) {
          this.env.progress({ phase: 'retrying', detail: failure.message, ...failure.details });
          await this.pause(settings.retryDelayMs).catch(() => undefined);
          if (this.stopped) throw new JobStopped();
          if (this.cancelled) return this.result('cancelled', { code: 'cancelled', reason: 'cancelled by the flow' });
          this.record.attempt++;
          this.enter('checking');
          continue;
        }
        return this.result('failed', { code: failure.code, reason: failure.message, ...failure.details });
      } finally {
        this.closeWatch();
        for (const undo of this.afterRun.splice(0)) undo();
        if (!this.stopped) this.release();
      }
    }
  }

  /** Gives up the file service's grant of a pulled package, once the device no longer needs it. */
  protected release(): void {
    if (this.record.token !== undefined) this.env.files.revoke(this.record.token);
    this.record.token = undefined;
    this.grant = undefined;
  }

  /** Follows a pulled package's download: its bytes fetched become progress. */
  protected attach(grant: Grant): void {
    this.grant = grant;
    grant.onServed = (bytes, total) => this.bytes(bytes, total);
  }

  /** Cancels the update, unless the device is already installing it; returns why not. */
  cancel(): string | undefined {
    if (this.record.phase === 'updating') return `${this.endpoint} is installing the update, which cannot be cancelled`;
    this.cancelled = true;
    this.controller.abort(new JobCancelled());
    return undefined;
  }

  /** Stops without a word to the device (the server stops): the record says where to go on. */
  stop(): void {
    this.stopped = true;
    this.watch?.detach();
    this.controller.abort(new JobStopped());
  }

  /** One attempt, from the phase the record is in. */
  protected abstract attempt(): Promise<{ status: 'success' | 'skipped' } & Partial<DeviceResult>>;

  /** Sets the device's state machine back to its start (best effort). */
  protected abstract resetDevice(): Promise<void>;

  protected enter(phase: Phase): void {
    this.record.phase = phase;
    this.record.since = Date.now();
    this.env.persist();
    this.env.progress({ phase });
  }

  /** The registration, or a failure: the device is gone. */
  protected registration(): Registration {
    const registration = this.env.server.registrations.getByEndpoint(this.endpoint);
    if (!registration) throw new JobFailure('not-registered', `${this.endpoint} is not registered`, true);
    return registration;
  }

  protected hasObject(objectId: number): boolean {
    return this.registration().objects.some((object) => object.id === objectId);
  }

  protected guard<T>(promise: Promise<T>): Promise<T> {
    const signal = this.controller.signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const aborted = () => reject(signal.reason);
      signal.addEventListener('abort', aborted, { once: true });
      promise.then(
        (value) => {
          signal.removeEventListener('abort', aborted);
          resolve(value);
        },
        (error) => {
          signal.removeEventListener('abort', aborted);
          reject(error);
        },
      );
    });
  }

  protected pause(ms: number): Promise<void> {
    return this.guard(new Promise((resolve) => setTimeout(resolve, ms).unref()));
  }

  /** A resource's value, or undefined when the device has no such resource (4.04). */
  protected async read(path: string): Promise<ResourceValue | undefined> {
    return (await this.readRecords(path))?.[0]?.value;
  }

  /** The records of a path, or undefined when the device has no such resource (4.04). */
  private async readRecords(path: string): Promise<ContentRecord[] | undefined> {
    try {
      const { records } = await this.guard(this.env.server.send(this.endpoint, new ReadRequest(Lwm2mPath.parse(path)), { timeoutMs: this.env.settings.requestTimeoutMs }));
      return records;
    } catch (error) {
      if (error instanceof DeviceRequestError && error.code === '4.04') return undefined;
      throw error;
    }
  }

  /**
   * The readable values of an instance by resource id (multiple resources as
   * lists), read whole, or resource by resource when the device refuses that.
   */
  protected async readInstance(path: string, resources: number[]): Promise<InstanceValues> {
    let records: ContentRecord[] = [];
    try {
      records = (await this.readRecords(path)) ?? [];
    } catch (error) {
      if (!(error instanceof DeviceRequestError) || error.kind !== 'device-error') throw error;
      for (const id of resources) {
        const some = await this.readRecords(`${path}/${id}`).catch((failure: unknown) => {
          if (failure instanceof DeviceRequestError && failure.kind === 'device-error') return undefined;
          throw failure;
        });
        records.push(...(some ?? []));
      }
    }
    const values: InstanceValues = { single: new Map(), lists: new Map() };
    for (const record of records) {
      const id = record.path.resourceId as number;
      if (record.path.resourceInstanceId === undefined) values.single.set(id, record.value);
      else values.lists.set(id, [...(values.lists.get(id) ?? []), record.value]);
    }
    return values;
  }

  protected async write(path: string, value: ResourceValue, timeoutMs = this.env.settings.requestTimeoutMs, onProgress?: (sent: number, total: number) => void): Promise<void> {
    const target = Lwm2mPath.parse(path);
    const record = { path: target, value, type: Buffer.isBuffer(value) ? ('opaque' as const) : ('string' as const) };
    await this.guard(this.env.server.send(this.endpoint, new WriteRequest(target, [record]), { timeoutMs, onProgress }));
  }

  protected async execute(path: string, args = ''): Promise<void> {
    await this.guard(this.env.server.send(this.endpoint, new ExecuteRequest(Lwm2mPath.parse(path), args), { timeoutMs: this.env.settings.requestTimeoutMs }));
  }

  /** Observes (or polls) the resources the state machine is followed by. */
  protected async openWatch(paths: string[], resumed: boolean): Promise<ResourceWatch> {
    this.closeWatch();
    const { server, settings, campaign } = this.env;
    const watch = new ResourceWatch(server, this.endpoint, paths.map((path) => Lwm2mPath.parse(path)), {
      owner: `lwm2m-firmware:${campaign}:${this.endpoint}`,
      pollIntervalMs: settings.pollIntervalMs,
      staleMs: settings.pollIntervalMs * 6,
      timeoutMs: settings.requestTimeoutMs,
      adopt: resumed,
    });
    this.watch = watch;
    await this.guard(watch.start());
    return watch;
  }

  protected closeWatch(): void {
    this.watch?.close();
    this.watch = undefined;
  }

  /**
   * Waits until test() answers, within the phase's deadline; at the deadline
   * the resources are read once more (a notification may have been lost)
   * before it fails as a timeout with what the device last said.
   */
  protected async waitFor<T>(watch: ResourceWatch, test: () => T | undefined, deadline: number, timeout: () => JobFailure): Promise<T> {
    try {
      return await watch.until(test, deadline, this.controller.signal, () => timeout().message);
    } catch (error) {
      if (!(error instanceof WatchTimeoutError)) throw error;
    }
    await this.guard(watch.refresh());
    const last = test();
    if (last !== undefined) return last;
    throw timeout();
  }

  /** A progress msg for bytes delivered, at most every 250 ms, and always at the end. */
  protected bytes(sent: number, total: number): void {
    const now = Date.now();
    const percent = total > 0 ? Math.floor((sent / total) * 100) : 100;
    if (percent === this.lastPercent || (sent < total && now - this.lastBytesAt < PROGRESS_INTERVAL_MS)) return;
    this.lastBytesAt = now;
    this.lastPercent = percent;
    this.env.progress({ phase: 'downloading', bytes: sent, totalBytes: total, percent });
  }

  private result(status: DeviceStatus, details: Partial<DeviceResult>): DeviceResult {
    const { settings, campaign } = this.env;
    return {
      campaign,
      endpoint: this.endpoint,
      object: settings.object,
      action: settings.action,
      ...(this.record.instanceId !== undefined ? { instanceId: this.record.instanceId } : {}),
      ...(this.record.delivery ? { delivery: this.record.delivery } : {}),
      ...(this.record.scheme ? { scheme: this.record.scheme } : {}),
      ...(this.record.previousVersion !== undefined ? { previousVersion: this.record.previousVersion } : {}),
      ...(settings.version !== undefined ? { expectedVersion: settings.version } : {}),
      ...details,
      status,
      attempts: this.record.attempt,
      durationMs: Date.now() - this.started,
    };
  }
}

/** Any error of a step as a named failure. */
function asFailure(error: unknown): JobFailure {
  if (error instanceof JobFailure) return error;
  if (error instanceof DeviceRequestError) {
    switch (error.kind) {
      case 'timeout':
        return new JobFailure('timeout', error.message, true);
      case 'unknown-endpoint':
        return new JobFailure('not-registered', error.message, true);
      case 'no-session':
        return new JobFailure('no-session', error.message, true);
      case 'device-error':
        return new JobFailure('device-error', error.message, false);
      case 'closed':
        return new JobFailure('closed', error.message, false);
      default:
        return new JobFailure(error.kind, error.message, false);
    }
  }
  return new JobFailure('error', (error as Error).message ?? String(error), false);
}

export function asNumber(value: ResourceValue | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return undefined;
}

export function asText(value: ResourceValue | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  return String(value);
}
