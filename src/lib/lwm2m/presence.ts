import type { Registration } from './registration';

/** A request waited longer than its time to live for a sleeping device. */
export class SleepTimeoutError extends Error {
  constructor(endpoint: string, ttlMs: number) {
    super(`${endpoint} did not wake up within the request's time to live of ${Math.round(ttlMs / 1000)} s`);
    this.name = 'SleepTimeoutError';
  }
}

/** The device de-registered or expired while a request waited for it. */
export class DeviceGoneError extends Error {
  constructor(endpoint: string) {
    super(`${endpoint} is no longer registered`);
    this.name = 'DeviceGoneError';
  }
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface State {
  awake: boolean;
  timer?: NodeJS.Timeout;
  waiters: Set<Waiter>;
}

/**
 * Awake or sleeping, for devices in queue mode (binding Q or the Q
 * parameter): a device is awake for awakeTimeMs after it last talked
 * (register, update, notification, send, a response), asleep otherwise.
 * Devices not in queue mode are always awake.
 */
export class PresenceTracker {
  private readonly states = new Map<string, State>();

  constructor(
    private readonly awakeTimeMs: number,
    private readonly onChange: (registration: Registration, awake: boolean) => void,
  ) {}

  /** The device just talked: awake now, and for awakeTimeMs more. */
  seen(registration: Registration): void {
    if (!registration.queueMode) {
      this.forget(registration.endpoint);
      return;
    }
    let state = this.states.get(registration.endpoint);
    if (!state) {
      state = { awake: false, waiters: new Set() };
      this.states.set(registration.endpoint, state);
    }
    clearTimeout(state.timer);
    const current = state;
    current.timer = setTimeout(() => {
      current.awake = false;
      this.onChange(registration, false);
    }, this.awakeTimeMs);
    current.timer.unref();
    if (!current.awake) {
      current.awake = true;
      this.onChange(registration, true);
    }
    for (const waiter of current.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    current.waiters.clear();
  }

  /** A queue-mode device known from before a restart: asleep until it talks. */
  asleep(registration: Registration): void {
    if (registration.queueMode && !this.states.has(registration.endpoint)) this.states.set(registration.endpoint, { awake: false, waiters: new Set() });
  }

  isAwake(endpoint: string): boolean {
    return this.states.get(endpoint)?.awake ?? true;
  }

  /** Resolves when the device is awake; rejects with SleepTimeoutError at the deadline. */
  waitAwake(endpoint: string, deadline: number, ttlMs: number, signal?: AbortSignal): Promise<void> {
    const state = this.states.get(endpoint);
    if (!state || state.awake) return Promise.resolve();
    return new Promise((resolve, reject) => {
      signal?.addEventListener(
        'abort',
        () => {
          if (!state.waiters.delete(waiter)) return;
          clearTimeout(waiter.timer);
          reject(signal.reason as Error);
        },
        { once: true },
      );
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          state.waiters.delete(waiter);
          reject(new SleepTimeoutError(endpoint, ttlMs));
        }, Math.max(0, deadline - Date.now())),
      };
      state.waiters.add(waiter);
    });
  }

  /** The device is gone (de-registered, expired): requests waiting for it fail, and it has no state any more. */
  forget(endpoint: string): void {
    const state = this.states.get(endpoint);
    if (!state) return;
    clearTimeout(state.timer);
    for (const waiter of state.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new DeviceGoneError(endpoint));
    }
    this.states.delete(endpoint);
  }

  clear(): void {
    for (const endpoint of [...this.states.keys()]) this.forget(endpoint);
  }
}
