import { randomText } from '../random-text';
import { entryJson, parseEntry } from '../lwm2m/state';
import type { RedisLink } from './redis-link';

/** A call that no instance answered: its instance is gone, or did not answer in time. */
export class NoAnswerError extends Error {
  constructor(
    message: string,
    /** True when nobody listens on the instance's channel (it stopped or died): the caller may serve the device itself. */
    readonly gone: boolean,
  ) {
    super(message);
    this.name = 'NoAnswerError';
  }
}

/** An error as it travels back to the caller: its class name and fields, rebuilt there (see ClusterBus.onCall). */
export interface ErrorJson {
  name: string;
  message: string;
  fields?: Record<string, unknown>;
}

type Message =
  | { t: 'call'; id: string; from: string; body: unknown }
  | { t: 'reply'; id: string; ok: true; body: unknown }
  | { t: 'reply'; id: string; ok: false; error: ErrorJson };

interface Pending {
  resolve(body: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * The instances of one server node talking through Redis pub/sub: a channel
 * per instance (`<prefix>i:<instance>`) for calls and their replies, and the
 * owner of each device (`<prefix>o:<endpoint>`), written only when it changes.
 * PUBLISH says how many listened: none means the instance is gone (Redis
 * drops a subscription as soon as its connection closes, so at once for a
 * killed process).
 */
export class ClusterBus {
  private readonly pending = new Map<string, Pending>();
  private handler?: (body: unknown, from: string) => Promise<unknown>;

  constructor(
    private readonly link: RedisLink,
    private readonly prefix: string,
    readonly instance: string,
    private readonly errorToJson: (error: Error) => ErrorJson,
    private readonly errorFromJson: (json: ErrorJson) => Error,
  ) {}

  async start(): Promise<void> {
    await this.link.listen(this.channel(this.instance), (text) => this.receive(text));
  }

  stop(): void {
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new NoAnswerError('the server was stopped', false));
      this.pending.delete(id);
    }
  }

  /** Serves calls from other instances. */
  onCall(handler: (body: unknown, from: string) => Promise<unknown>): void {
    this.handler = handler;
  }

  /** Calls another instance; rejects with NoAnswerError when it is gone or silent for timeoutMs, or with the error it answered. */
  async call(instance: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const id = randomText(9, 'base64url');
    const answered = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new NoAnswerError(`instance ${instance} did not answer within ${Math.round(timeoutMs / 1000)} s`, false));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    answered.catch(() => undefined);
    let listeners: number;
    try {
      listeners = (await this.link.command(['PUBLISH', this.channel(instance), entryJson({ t: 'call', id, from: this.instance, body } satisfies Message, [])])) as number;
    } catch (error) {
      this.settle(id)?.reject(error as Error);
      return answered;
    }
    if (listeners === 0) this.settle(id)?.reject(new NoAnswerError(`instance ${instance} is gone`, true));
    return answered;
  }

  /** The instance that owns a device, if any. */
  async ownerOf(endpoint: string): Promise<string | undefined> {
    return ((await this.link.command(['GET', this.ownerKey(endpoint)])) as string | null) ?? undefined;
  }

  /** Takes a device over until expiresAt: resolves with the owner it had (undefined for none). */
  async claim(endpoint: string, expiresAt: number): Promise<string | undefined> {
    const previous = (await this.link.command(['SET', this.ownerKey(endpoint), this.instance, 'GET', 'PXAT', String(Math.ceil(expiresAt))])) as string | null;
    return previous ?? undefined;
  }

  /** Keeps the ownership as long as the registration (an Update moved its expiry). */
  touch(endpoint: string, expiresAt: number): void {
    this.link.command(['PEXPIREAT', this.ownerKey(endpoint), String(Math.ceil(expiresAt))]).catch(() => undefined);
  }

  /** Gives a device up (it de-registered or expired here). */
  release(endpoint: string): void {
    this.link.command(['DEL', this.ownerKey(endpoint)]).catch(() => undefined);
  }

  private channel(instance: string): string {
    return `${this.prefix}i:${instance}`;
  }

  private ownerKey(endpoint: string): string {
    return `${this.prefix}o:${endpoint}`;
  }

  private settle(id: string): Pending | undefined {
    const waiter = this.pending.get(id);
    if (!waiter) return undefined;
    this.pending.delete(id);
    clearTimeout(waiter.timer);
    return waiter;
  }

  private receive(text: string): void {
    let message: Message;
    try {
      message = parseEntry<Message>(text);
    } catch {
      return; // not ours
    }
    if (message.t === 'reply') {
      const waiter = this.settle(message.id);
      if (!waiter) return;
      if (message.ok) waiter.resolve(message.body);
      else waiter.reject(this.errorFromJson(message.error));
      return;
    }
    if (message.t !== 'call' || !this.handler) return;
    const reply = (answer: Message) => this.link.command(['PUBLISH', this.channel(message.from), entryJson(answer, [])]).catch(() => undefined);
    this.handler(message.body, message.from).then(
      (body) => reply({ t: 'reply', id: message.id, ok: true, body }),
      (error: Error) => reply({ t: 'reply', id: message.id, ok: false, error: this.errorToJson(error) }),
    );
  }
}
