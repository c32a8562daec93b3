import type { Lwm2mServer } from '../lwm2m/server';
import type { FileService } from './file-service';
import { FirmwareJob } from './firmware-job';
import { DeviceRecord, DeviceResult, Job, JobEnvironment, JobSettings, JobStopped, ProgressEvent } from './job';
import type { FirmwarePackage } from './packages';
import { SoftwareJob } from './software-job';

/** What a campaign tells its node. */
export interface CampaignListener {
  progress(event: ProgressEvent): void;
  result(result: DeviceResult): void;
  finished(summary: CampaignSummary): void;
}

export interface CampaignCounts {
  total: number;
  success: number;
  failed: number;
  skipped: number;
  cancelled: number;
}

export interface CampaignSummary extends CampaignCounts {
  campaign: string;
  object: 5 | 9;
  action: JobSettings['action'];
  durationMs: number;
  /** The devices that failed, with why (the first 1,000). */
  failures: { endpoint: string; code?: string; reason?: string }[];
}

/** A campaign as kept in the state store (entry `<id>`); each device is an entry `<id>/<endpoint>` (a DeviceRecord). */
export interface CampaignRecord {
  id: string;
  owner: string;
  settings: JobSettings;
  concurrency: number;
  /** The package (in the package store), by SHA-256. */
  sha256?: string;
  url?: string;
  createdAt: number;
  /** Every entry of the campaign expires then: an upper bound of its length, with every attempt of every device timing out. */
  expiresAt: number;
  counts: CampaignCounts;
  failures: CampaignSummary['failures'];
}

/** How a campaign reaches the rest of the service. */
export interface CampaignHost {
  server: Lwm2mServer;
  files: FileService;
  /** Keeps (or with undefined, removes) an entry of the firmware collection; one of a device (endpoint) goes with the device to another instance. */
  keep(id: string, value: unknown, expiresAt?: number, endpoint?: string): void;
  /** Whether another campaign has the device now; takes it for this one if not. */
  claim(endpoint: string, campaign: Campaign): boolean;
  release(endpoint: string, campaign: Campaign): void;
  ended(campaign: Campaign): void;
  /** Calls back when the device registers (again); returns the function that stops it. */
  onRegistered(endpoint: string, callback: () => void): () => void;
}

const MAX_FAILURES_KEPT = 1000;
/** How often devices waiting for a sleeping device to wake are looked at for their time to live. */
const SLEEP_CHECK_MS = 1000;

/**
 * Many devices, at most `concurrency` at once, each through its object's
 * state machine with its retries. A device in queue mode that sleeps takes
 * no place while it sleeps: it goes first when it wakes, and fails when it
 * has not woken within the server's queue time to live. Every device's
 * place is kept in the server's state store, so the campaign goes on after
 * a redeploy or a restart. In a cluster a device goes on at the instance
 * serving it: a campaign hands a device over to the instance taking it, and
 * a campaign of devices taken over (takenOver) runs their part only: the
 * campaign's own entry and summary stay with the instance that started it.
 */
export class Campaign {
  private readonly pending: DeviceRecord[] = [];
  /** Devices found asleep, and since when: insertion order is the order their time to live runs out. */
  private readonly sleeping = new Map<string, { record: DeviceRecord; since: number }>();
  private readonly running = new Map<string, Job>();
  private sleepTimer?: NodeJS.Timeout;
  private stopped = false;
  private finished = false;
  /** Some devices went on at other instances. */
  private handedOver = false;
  private readonly started = Date.now();

  constructor(
    private readonly host: CampaignHost,
    readonly record: CampaignRecord,
    private readonly pkg: FirmwarePackage | undefined,
    devices: DeviceRecord[],
    public listener: CampaignListener,
    readonly takenOver = false,
  ) {
    // Devices that were under way before a restart go first.
    for (const device of devices) if (device.phase !== 'pending') this.pending.push(device);
    for (const device of devices) if (device.phase === 'pending') this.pending.push(device);
  }

  get id(): string {
    return this.record.id;
  }

  get owner(): string {
    return this.record.owner;
  }

  get counts(): CampaignCounts & { running: number; waiting: number } {
    return { ...this.record.counts, running: this.running.size, waiting: this.pending.length + this.sleeping.size };
  }

  get done(): boolean {
    return this.finished;
  }

  /** Devices of the campaign run at other instances too: its entry and package stay for them (until the entry expires). */
  get spread(): boolean {
    return this.takenOver || this.handedOver;
  }

  /** Every device of the campaign that has no outcome yet. */
  get endpoints(): string[] {
    return [...this.running.keys(), ...this.pending.map((device) => device.endpoint), ...this.sleeping.keys()];
  }

  /** Keeps the campaign and its devices, then starts as many as it may. */
  start(keepAll: boolean): void {
    if (keepAll) {
      this.keepHeader();
      for (const device of this.pending) this.keepDevice(device);
    }
    this.pump();
  }

  /** Cancels devices (all without a list); returns why some could not be (installing already). */
  cancel(endpoints?: string[]): string[] {
    const wanted = endpoints ? new Set(endpoints) : undefined;
    const refusals: string[] = [];
    for (const [endpoint, job] of this.running) {
      if (wanted && !wanted.has(endpoint)) continue;
      const refusal = job.cancel();
      if (refusal) refusals.push(refusal);
    }
    for (const device of [...this.pending]) {
      if (wanted && !wanted.has(device.endpoint)) continue;
      this.pending.splice(this.pending.indexOf(device), 1);
      this.conclude(device, { status: 'cancelled', code: 'cancelled', reason: 'cancelled by the flow before it started' });
    }
    for (const [endpoint, { record }] of [...this.sleeping]) {
      if (wanted && !wanted.has(endpoint)) continue;
      this.sleeping.delete(endpoint);
      this.conclude(record, { status: 'cancelled', code: 'cancelled', reason: 'cancelled by the flow while the device slept' });
    }
    this.pump();
    return refusals;
  }

  /** Stops without a word to the devices (the server stops): every entry stays as it is for the next start. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.sleepTimer);
    for (const job of this.running.values()) job.stop();
  }

  /** Stops and forgets the campaign (its node was removed). */
  abandon(): void {
    this.stop();
    for (const endpoint of this.endpoints) {
      this.forgetDevice(endpoint);
      this.host.release(endpoint, this);
    }
    for (const job of this.running.values()) if (job.record.token !== undefined) this.host.files.revoke(job.record.token);
    this.host.keep(this.id, undefined);
    this.finished = true;
    this.host.ended(this);
  }

  /** A device taken over from another instance joins where it was (unless the campaign has it already). */
  add(device: DeviceRecord): void {
    if (this.endpoints.includes(device.endpoint)) return this.woke(device.endpoint);
    this.pending.unshift(device);
    this.pump();
  }

  /** Another instance serves the device now and goes on with it from its entry (kept here now): no outcome here. */
  handOver(endpoint: string): void {
    const job = this.running.get(endpoint);
    const waiting = this.pending.findIndex((device) => device.endpoint === endpoint);
    const record = job?.record ?? (waiting >= 0 ? this.pending[waiting] : undefined) ?? this.sleeping.get(endpoint)?.record;
    if (!record) return;
    this.handedOver = true;
    if (waiting >= 0) this.pending.splice(waiting, 1);
    this.sleeping.delete(endpoint);
    if (job) {
      // Its run ends with JobStopped, which leaves the record as it is; the device fetches from the other instance now.
      job.stop();
      if (record.token !== undefined) this.host.files.revoke(record.token);
    }
    this.keepDevice(record);
    if (!job) this.pump();
  }

  /** A device talked after sleeping, or registered: one waiting for it goes first. */
  woke(endpoint: string): void {
    const waiting = this.sleeping.get(endpoint);
    if (!waiting || this.stopped) return;
    this.sleeping.delete(endpoint);
    this.pending.unshift(waiting.record);
    this.pump();
  }

  /** Starts waiting devices while there is room: devices that are awake, in order. */
  private pump(): void {
    const { server } = this.host;
    while (!this.stopped && this.running.size < this.record.concurrency && this.pending.length > 0) {
      const device = this.pending.shift() as DeviceRecord;
      if (this.record.sha256 !== undefined && !this.pkg) {
        this.conclude(device, { status: 'failed', code: 'package-missing', reason: 'the package of this campaign is no longer in the package store' });
        continue;
      }
      const registration = server.registrations.getByEndpoint(device.endpoint);
      // A device that was updating may be rebooting into its new firmware: it is waited for like a sleeping one.
      if (!registration && device.phase === 'pending') {
        this.conclude(device, { status: 'failed', code: 'not-registered', reason: `${device.endpoint} is not registered` });
        continue;
      }
      if (!registration || !server.presence.isAwake(device.endpoint)) {
        this.sleeping.set(device.endpoint, { record: device, since: Date.now() });
        this.listener.progress({ campaign: this.id, endpoint: device.endpoint, phase: 'waiting', attempt: device.attempt, detail: `${device.endpoint} is asleep: waiting for it to wake up (queue time to live ${server.queueTtlMs / 1000} s)` });
        continue;
      }
      if (!this.host.claim(device.endpoint, this)) {
        this.conclude(device, { status: 'failed', code: 'busy', reason: `${device.endpoint} is being updated by another campaign` });
        continue;
      }
      this.launch(device);
    }
    this.watchSleepers();
    this.finishIfDone();
  }

  private launch(device: DeviceRecord): void {
    if (device.phase === 'pending') device.attempt = 1;
    const env: JobEnvironment = {
      server: this.host.server,
      files: this.host.files,
      campaign: this.id,
      settings: this.record.settings,
      pkg: this.pkg,
      url: this.record.url,
      progress: (event) => this.listener.progress({ ...event, campaign: this.id, endpoint: device.endpoint, attempt: device.attempt }),
      persist: () => this.keepDevice(device),
      onRegistered: (callback) => this.host.onRegistered(device.endpoint, callback),
    };
    const job = this.record.settings.object === 5 ? new FirmwareJob(env, device) : new SoftwareJob(env, device);
    this.running.set(device.endpoint, job);
    job.run().then(
      (result) => {
        this.running.delete(device.endpoint);
        this.host.release(device.endpoint, this);
        this.report(device, result);
        this.pump();
      },
      (error: Error) => {
        this.running.delete(device.endpoint);
        this.host.release(device.endpoint, this);
        // Stopped with the server (nothing more starts), or handed over to another instance (the others go on).
        if (error instanceof JobStopped) return this.pump();
        this.conclude(device, { status: 'failed', code: 'error', reason: `unexpected failure: ${error.message}` });
        this.pump();
      },
    );
  }

  /** A device that never ran (not registered, cancelled, asleep past its time to live) gets its outcome. */
  private conclude(device: DeviceRecord, outcome: Pick<DeviceResult, 'status' | 'code' | 'reason'>): void {
    const { settings } = this.record;
    this.report(device, { campaign: this.id, endpoint: device.endpoint, object: settings.object, action: settings.action, ...outcome, attempts: device.attempt, durationMs: 0 });
  }

  private report(device: DeviceRecord, result: DeviceResult): void {
    const counts = this.record.counts;
    counts[result.status]++;
    if (result.status === 'failed' && this.record.failures.length < MAX_FAILURES_KEPT) this.record.failures.push({ endpoint: result.endpoint, code: result.code, reason: result.reason });
    this.forgetDevice(device.endpoint);
    this.keepHeader();
    this.listener.result(result);
  }

  private finishIfDone(): void {
    if (this.finished || this.stopped || this.running.size > 0 || this.pending.length > 0 || this.sleeping.size > 0) return;
    this.finished = true;
    clearInterval(this.sleepTimer);
    if (this.takenOver) return this.host.ended(this);
    if (!this.spread) this.host.keep(this.id, undefined);
    const { settings } = this.record;
    this.listener.finished({ campaign: this.id, object: settings.object, action: settings.action, ...this.record.counts, durationMs: Date.now() - this.started, failures: this.record.failures });
    this.host.ended(this);
  }

  /** Devices asleep past the queue time to live fail. */
  private watchSleepers(): void {
    if (this.sleeping.size === 0 || this.stopped) {
      clearInterval(this.sleepTimer);
      this.sleepTimer = undefined;
      return;
    }
    this.sleepTimer ??= setInterval(() => {
      const ttl = this.host.server.queueTtlMs;
      const now = Date.now();
      for (const [endpoint, { record, since }] of this.sleeping) {
        if (since + ttl > now) break;
        this.sleeping.delete(endpoint);
        this.conclude(record, { status: 'failed', code: 'did-not-wake', reason: `${endpoint} did not wake up within the queue time to live (${ttl / 1000} s)` });
      }
      this.pump();
    }, Math.min(SLEEP_CHECK_MS, this.host.server.queueTtlMs)).unref();
  }

  private keepHeader(): void {
    if (!this.takenOver) this.host.keep(this.id, this.record, this.record.expiresAt);
  }

  private keepDevice(device: DeviceRecord): void {
    this.host.keep(`${this.id}/${device.endpoint}`, device, this.record.expiresAt, device.endpoint);
  }

  private forgetDevice(endpoint: string): void {
    this.host.keep(`${this.id}/${endpoint}`, undefined, undefined, endpoint);
  }
}
