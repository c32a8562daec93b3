import { CseUnreachableError } from './http-binding';

export interface MirrorTask {
  /** The device it concerns, for reports. */
  endpoint: string;
  /** What it does, for reports: "register", "update", "values"... */
  what: string;
  run(): Promise<void>;
}

export interface MirrorQueueEvents {
  /** A task the CSE refused for good (not retried), with the reason. */
  failed(task: MirrorTask, error: Error): void;
  done(task: MirrorTask): void;
  /** The CSE stopped or started answering; queued tasks wait meanwhile. */
  reachability(reachable: boolean, reason?: string): void;
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/**
 * The CSE operations in the order their LwM2M events happened, one at a
 * time. While the CSE is unreachable the head task is retried with
 * exponential back-off and everything behind it waits: nothing is lost or
 * reordered, up to maxQueued tasks.
 */
export class MirrorQueue {
  private readonly tasks: MirrorTask[] = [];
  private running = false;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private retryMs = FIRST_RETRY_MS;
  reachable = true;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly events: MirrorQueueEvents,
    private readonly maxQueued = 100_000,
  ) {}

  get length(): number {
    return this.tasks.length;
  }

  /** Queues a task; false (and a failed report) when the queue is full. */
  push(task: MirrorTask): boolean {
    if (this.stopped) return false;
    if (this.tasks.length >= this.maxQueued) {
      this.events.failed(task, new Error(`${this.maxQueued} CSE operations are waiting already`));
      return false;
    }
    this.tasks.push(task);
    void this.drain();
    return true;
  }

  /** Resolves when every queued task is done (for tests and orderly shutdown). */
  idle(): Promise<void> {
    if (this.tasks.length === 0 && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private async drain(): Promise<void> {
    if (this.running || this.retryTimer || this.stopped) return;
    this.running = true;
    while (this.tasks.length > 0 && !this.stopped) {
      const task = this.tasks[0];
      try {
        await task.run();
        this.tasks.shift();
        this.retryMs = FIRST_RETRY_MS;
        if (!this.reachable) {
          this.reachable = true;
          this.events.reachability(true);
        }
        this.events.done(task);
      } catch (error) {
        if (error instanceof CseUnreachableError) {
          if (this.reachable) {
            this.reachable = false;
            this.events.reachability(false, error.message);
          }
          this.running = false;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            void this.drain();
          }, this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
          return;
        }
        this.tasks.shift();
        this.events.failed(task, error as Error);
      }
    }
    this.running = false;
    if (this.tasks.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
