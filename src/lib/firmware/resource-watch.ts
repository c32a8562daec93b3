import type { ContentRecord, ResourceValue } from '../content/values';
import { DeviceRequestError } from '../lwm2m/device-client';
import type { NotificationEvent, Observation, ObservationListener } from '../lwm2m/observations';
import { ObserveRequest } from '../lwm2m/requests/observe';
import { ReadRequest } from '../lwm2m/requests/read';
import type { Lwm2mServer } from '../lwm2m/server';
import type { Lwm2mPath } from '../model/path';

/** A wait ran past its deadline. */
export class WatchTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WatchTimeoutError';
  }
}

export interface WatchOptions {
  /** Owner of its observations (kept across restarts and adopted again by the same owner). */
  owner: string;
  /** Reads of the resources a device would not let us observe. */
  pollIntervalMs: number;
  /** Observed resources are read again after this long without news (a device that forgets to notify). */
  staleMs: number;
  /** Timeout of each request. */
  timeoutMs: number;
  /** Takes back the observations the owner left before a restart instead of observing again. */
  adopt: boolean;
}

/**
 * The current values of a few resources of one device (the state and result
 * of an update), followed by observation, or by polling where the device
 * refuses to be observed; waits until they satisfy a test.
 */
export class ResourceWatch implements ObservationListener {
  private readonly values = new Map<string, ResourceValue>();
  private readonly observations = new Set<Observation>();
  private readonly polled = new Set<string>();
  private readonly waiters = new Set<() => void>();
  private pollTimer?: NodeJS.Timeout;
  private staleTimer?: NodeJS.Timeout;
  private lastNews = Date.now();
  private polling = false;
  private closed = false;

  constructor(
    private readonly server: Lwm2mServer,
    readonly endpoint: string,
    readonly paths: Lwm2mPath[],
    private readonly options: WatchOptions,
  ) {}

  /** Observes each path (or takes back the observations kept for the owner); the ones the device refuses are polled. */
  async start(): Promise<void> {
    const covered = new Set<string>();
    if (this.options.adopt) {
      for (const observation of this.server.observations.adopt(this.options.owner, this)) {
        this.observations.add(observation);
        for (const path of observation.paths) covered.add(path);
      }
    }
    for (const path of this.paths) {
      const text = path.toString();
      if (covered.has(text)) continue;
      try {
        const { observation, first, established } = await this.server.observe(this.endpoint, new ObserveRequest(path), this, { timeoutMs: this.options.timeoutMs }, this.options.owner);
        this.apply(first.records);
        if (established) this.observations.add(observation);
        else this.polled.add(text);
      } catch (error) {
        // A device that refuses Observe (4.05, 5.01...) is read instead; a device that does not answer is a failure of the caller's phase.
        if (!(error instanceof DeviceRequestError) || error.kind !== 'device-error') throw error;
        this.polled.add(text);
      }
      if (this.closed) return;
    }
    if (covered.size > 0) await this.refresh();
    this.schedulePoll();
    this.staleTimer = setInterval(() => {
      if (Date.now() - this.lastNews >= this.options.staleMs) void this.refresh();
    }, this.options.staleMs);
    this.staleTimer.unref();
  }

  /** Whether every path is observed (none polled). */
  get observed(): boolean {
    return this.polled.size === 0;
  }

  /** What the device last reported at a path ("/5/0/3"). */
  value(path: string): ResourceValue | undefined {
    return this.values.get(path);
  }

  /** Forgets what is known of a path, so only what the device reports from now on counts. */
  forget(path: string): void {
    this.values.delete(path);
  }

  /** Reads every path now (after a re-registration, before giving up on a deadline); failed reads are left for later. */
  async refresh(): Promise<void> {
    for (const path of this.paths) {
      if (this.closed) return;
      try {
        const { records } = await this.server.send(this.endpoint, new ReadRequest(path), { timeoutMs: this.options.timeoutMs });
        this.apply(records);
      } catch {
        // The device may be rebooting: what it reports next counts.
      }
    }
  }

  /**
   * Resolves with test()'s first defined answer, tested now and after every
   * change; rejects with WatchTimeoutError at the deadline, or with the
   * signal's reason when it aborts.
   */
  until<T>(test: () => T | undefined, deadline: number, signal: AbortSignal, describe: () => string): Promise<T> {
    const now = test();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const settle = () => {
        this.waiters.delete(check);
        clearTimeout(timer);
        signal.removeEventListener('abort', aborted);
      };
      const check = () => {
        const answer = test();
        if (answer === undefined) return;
        settle();
        resolve(answer);
      };
      const aborted = () => {
        settle();
        reject(signal.reason as Error);
      };
      const timer = setTimeout(() => {
        settle();
        reject(new WatchTimeoutError(describe()));
      }, Math.max(0, deadline - Date.now()));
      if (signal.aborted) return aborted();
      signal.addEventListener('abort', aborted, { once: true });
      this.waiters.add(check);
    });
  }

  notify(event: NotificationEvent): void {
    this.apply(event.records);
  }

  error(): void {
    // A notification that did not decode: the next one, or a poll, will say.
  }

  /** The device ended an observation (or it could not be re-established after a re-registration): its path is polled from now on. */
  ended(observation: Observation): void {
    if (!this.observations.delete(observation) || this.closed) return;
    for (const path of observation.paths) this.polled.add(path);
    this.schedulePoll();
  }

  /** Stops following without a word to the device: its observations stay with the server, for the next start to take back. */
  detach(): void {
    this.closed = true;
    clearTimeout(this.pollTimer);
    clearInterval(this.staleTimer);
    this.waiters.clear();
  }

  /** Ends the observations (the device is told when it is awake) and the polling. */
  close(): void {
    if (this.closed) return;
    this.detach();
    const registration = this.server.registrations.getByEndpoint(this.endpoint);
    const active = registration !== undefined && !registration.queueMode;
    for (const observation of this.observations) void this.server.observations.cancel(observation, { active, timeoutMs: 2000 });
    this.observations.clear();
  }

  private apply(records: ContentRecord[]): void {
    if (this.closed) return;
    this.lastNews = Date.now();
    let changed = false;
    for (const record of records) {
      const key = record.path.toString();
      if (this.values.get(key) !== record.value) changed = true;
      this.values.set(key, record.value);
    }
    if (changed) for (const waiter of [...this.waiters]) waiter();
  }

  private schedulePoll(): void {
    if (this.closed || this.polled.size === 0 || this.pollTimer) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.poll();
    }, this.options.pollIntervalMs);
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const path of this.paths) {
        if (this.closed || !this.polled.has(path.toString())) continue;
        try {
          const { records } = await this.server.send(this.endpoint, new ReadRequest(path), { timeoutMs: this.options.timeoutMs });
          this.apply(records);
        } catch {
          // Not there now (rebooting, asleep past its time to live): polled again.
        }
      }
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }
}
