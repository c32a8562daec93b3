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

interface Lane {
  running: boolean;
  waiting: Waiting[];
}

/** A request that gives up waiting in line at a deadline (its time to live). */
export interface Expiry {
  at: number;
  error(): Error;
}

/**
 * Runs the requests for each device one at a time (NSTART = 1, RFC 7252
 * section 4.7): constrained devices handle one exchange at a time, and
 * queued requests keep their order.
 */
export class DeviceQueue {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly maxWaiting = 64) {}

  run<T>(key: string, task: () => Promise<T>, expiry?: Expiry, signal?: AbortSignal): Promise<T> {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { running: false, waiting: [] };
      this.lanes.set(key, lane);
    }
    if (lane.waiting.length >= this.maxWaiting) return Promise.reject(new QueueFullError(key, this.maxWaiting));
    const current = lane;
    if (!current.running) {
      // The usual case, nothing ahead in the lane: the task's own promise, with the lane moving on when it settles.
      current.running = true;
      const running = task();
      const next = () => this.next(key, current);
      running.then(next, next);
      return running;
    }
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        current.running = true;
        task()
          .then(resolve, reject)
          .finally(() => this.next(key, current));
      };
      const entry: Waiting = { start };
      const leave = (error: Error) => {
        const at = current.waiting.indexOf(entry);
        if (at < 0) return;
        current.waiting.splice(at, 1);
        clearTimeout(entry.expire);
        reject(error);
      };
      if (expiry) entry.expire = setTimeout(() => leave(expiry.error()), Math.max(0, expiry.at - Date.now()));
      signal?.addEventListener('abort', () => leave(signal.reason as Error), { once: true });
      current.waiting.push(entry);
    });
  }

  pending(key: string): number {
    const lane = this.lanes.get(key);
    return lane ? lane.waiting.length + (lane.running ? 1 : 0) : 0;
  }

  private next(key: string, lane: Lane): void {
    lane.running = false;
    const next = lane.waiting.shift();
    if (next) {
      clearTimeout(next.expire);
      next.start();
    } else if (this.lanes.get(key) === lane) this.lanes.delete(key);
  }
}
