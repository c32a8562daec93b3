import { CseRefusedError, CseUnreachableError } from './http-binding';

export interface MirrorTask {
  /** The device it concerns: its tasks run in order, one at a time. */
  endpoint: string;
  /** What it does, for reports: "register", "update", "values"... */
  what: string;
  run(): Promise<void>;
}

export interface MirrorQueueEvents {
  /** A task given up (refused, or failing for another reason), with the reason. */
  failed(task: MirrorTask, error: Error): void;
  done(task: MirrorTask): void;
  /** The CSE stopped or started answering; every device's tasks wait meanwhile. */
  reachability(reachable: boolean, reason?: string): void;
}

export interface RetryTimes {
  /** First wait after the CSE did not answer, doubled up to maxMs. */
  firstMs: number;
  maxMs: number;
  /** Wait before a task the CSE answered 5xxx is tried again, times the attempt. */
  answerMs: number;
}

const DEFAULT_RETRY: RetryTimes = { firstMs: 500, maxMs: 30_000, answerMs: 1000 };
/** A 5xxx answer is tried this often in all before the task is given up. */
const ANSWER_ATTEMPTS = 3;
/** Devices whose tasks run at the same time. */
const CONCURRENCY = 4;

/** One device's tasks. */
interface Lane {
  endpoint: string;
  tasks: MirrorTask[];
  /** Answers 5xxx the head task got so far. */
  attempts: number;
  running: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * The CSE operations of each device in the order its LwM2M events happened,
 * one at a time per device and a few devices at a time, so that a device
 * whose operations fail does not hold up the others.
 *
 * What happens to a task that fails depends on why: when the CSE does not
 * answer or is busy, every device waits (nothing is lost or reordered, up to
 * maxQueued tasks) and the task is tried again with exponential back-off; a
 * 5xxx answer is tried again for that device alone, and given up after
 * ANSWER_ATTEMPTS; any other refusal is given up at once. Given-up tasks are
 * reported and the device's next task runs.
 */
export class MirrorQueue {
  private readonly lanes = new Map<string, Lane>();
  /** Lanes with a task to run, in turn. */
  private readonly ready: Lane[] = [];
  private active = 0;
  private count = 0;
  private stopped = false;
  private outageTimer?: NodeJS.Timeout;
  private outageRetryMs: number;
  private idleWaiters: (() => void)[] = [];
  reachable = true;

  constructor(
    private readonly events: MirrorQueueEvents,
    private readonly maxQueued = 100_000,
    private readonly retry: RetryTimes = DEFAULT_RETRY,
  ) {
    this.outageRetryMs = retry.firstMs;
  }

  /** Tasks waiting or running. */
  get length(): number {
    return this.count;
  }

  /** Queues a task; false (and a failed report) when the queue is full. */
  push(task: MirrorTask): boolean {
    if (this.stopped) return false;
    if (this.count >= this.maxQueued) {
      this.events.failed(task, new Error(`${this.maxQueued} CSE operations are waiting already`));
      return false;
    }
    let lane = this.lanes.get(task.endpoint);
    if (!lane) {
      lane = { endpoint: task.endpoint, tasks: [], attempts: 0, running: false };
      this.lanes.set(task.endpoint, lane);
    }
    lane.tasks.push(task);
    this.count++;
    if (lane.tasks.length === 1 && !lane.running && !lane.timer) this.ready.push(lane);
    this.pump();
    return true;
  }

  /** Resolves when every queued task is done (or the queue stopped). */
  idle(): Promise<void> {
    if (this.count === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.outageTimer);
    for (const lane of this.lanes.values()) clearTimeout(lane.timer);
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Starts tasks while there are free slots: one at a time to find out whether the CSE is back after an outage. */
  private pump(): void {
    const slots = this.reachable ? CONCURRENCY : this.outageTimer ? 0 : 1;
    while (!this.stopped && this.active < slots && this.ready.length > 0) void this.runHead(this.ready.shift() as Lane);
  }

  private async runHead(lane: Lane): Promise<void> {
    const task = lane.tasks[0];
    lane.running = true;
    this.active++;
    let error: unknown;
    try {
      await task.run();
    } catch (caught) {
      error = caught ?? new Error('failed');
    }
    lane.running = false;
    this.active--;
    if (this.stopped) return;
    if (error instanceof CseUnreachableError) {
      this.ready.unshift(lane);
      this.outage(error);
      return;
    }
    if (this.reachable === false) this.backOnline();
    if (error instanceof CseRefusedError && error.rsc >= 5000 && ++lane.attempts < ANSWER_ATTEMPTS) {
      lane.timer = setTimeout(() => {
        lane.timer = undefined;
        this.ready.push(lane);
        this.pump();
      }, this.retry.answerMs * lane.attempts);
      return;
    }
    lane.tasks.shift();
    lane.attempts = 0;
    this.count--;
    if (error === undefined) this.events.done(task);
    else this.events.failed(task, error instanceof Error ? error : new Error(String(error)));
    if (lane.tasks.length > 0) this.ready.push(lane);
    else this.lanes.delete(lane.endpoint);
    if (this.count === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    this.pump();
  }

  private outage(error: CseUnreachableError): void {
    if (this.reachable) {
      this.reachable = false;
      this.events.reachability(false, error.message);
    }
    if (this.outageTimer || this.active > 0) return;
    this.outageTimer = setTimeout(() => {
      this.outageTimer = undefined;
      this.pump();
    }, this.outageRetryMs);
    this.outageRetryMs = Math.min(this.outageRetryMs * 2, this.retry.maxMs);
  }

  private backOnline(): void {
    this.reachable = true;
    this.outageRetryMs = this.retry.firstMs;
    clearTimeout(this.outageTimer);
    this.outageTimer = undefined;
    this.events.reachability(true);
  }
}
