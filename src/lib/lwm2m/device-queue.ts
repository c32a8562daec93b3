/** Too many requests are already waiting for one device. */
export class QueueFullError extends Error {
  constructor(key: string, limit: number) {
    super(`${limit} requests are already waiting for ${key}`);
    this.name = 'QueueFullError';
  }
}

interface Waiting {
  start(): void;
  expire?: NodeJS.Timeout;
}

/** A request that gives up waiting in line at a deadline (its time to live). */
export interface Expiry {
  at: number;
  error(): Error;
}

/**
 * Runs the requests for each device one at a time (NSTART = 1, RFC 7252
 * section 4.7): constrained devices handle one exchange at a time, and
 * queued requests keep their order. A device with nothing waiting costs an
 * entry in a set of names, no object per request.
 */
export class DeviceQueue {
  /** Devices with a request running. */
  private readonly running = new Set<string>();
  /** Requests waiting behind the running one, for the devices that have any. */
  private readonly lines = new Map<string, Waiting[]>();

  constructor(private readonly maxWaiting = 64) {}

  run<T>(key: string, task: () => Promise<T>, expiry?: Expiry, signal?: AbortSignal): Promise<T> {
    if (!this.running.has(key)) {
      this.running.add(key);
      return this.start(key, task);
    }
    let line = this.lines.get(key);
    if (!line) {
      line = [];
      this.lines.set(key, line);
    }
    if (line.length >= this.maxWaiting) return Promise.reject(new QueueFullError(key, this.maxWaiting));
    const waitingIn = line;
    return new Promise<T>((resolve, reject) => {
      const entry: Waiting = { start: () => this.start(key, task).then(resolve, reject) };
      const leave = (error: Error) => {
        const at = waitingIn.indexOf(entry);
        if (at < 0) return;
        waitingIn.splice(at, 1);
        if (waitingIn.length === 0 && this.lines.get(key) === waitingIn) this.lines.delete(key);
        clearTimeout(entry.expire);
        reject(error);
      };
      if (expiry) entry.expire = setTimeout(() => leave(expiry.error()), Math.max(0, expiry.at - Date.now()));
      signal?.addEventListener('abort', () => leave(signal.reason as Error), { once: true });
      waitingIn.push(entry);
    });
  }

  pending(key: string): number {
    return (this.lines.get(key)?.length ?? 0) + (this.running.has(key) ? 1 : 0);
  }

  /** Runs a task and hands the device to the next in line when it settles. */
  private start<T>(key: string, task: () => Promise<T>): Promise<T> {
    const started = task();
    const next = () => this.next(key);
    started.then(next, next);
    return started;
  }

  private next(key: string): void {
    const line = this.lines.get(key);
    const entry = line?.shift();
    if (line?.length === 0) this.lines.delete(key);
    if (!entry) {
      this.running.delete(key);
      return;
    }
    clearTimeout(entry.expire);
    entry.start();
  }
}
