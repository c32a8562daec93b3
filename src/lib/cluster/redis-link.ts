import { TypedEmitter } from '../typed-emitter';

export interface RedisOptions {
  /** redis://host:port/db or rediss:// for TLS. */
  url: string;
  /** AUTH password (a credential); the URL's own is used when absent. */
  password?: string;
  /** ACL user name, with password. */
  username?: string;
}

/** The part of a node-redis client this pack uses: raw commands and pub/sub. */
interface Client {
  connect(): Promise<unknown>;
  destroy(): void;
  duplicate(): Client;
  sendCommand(args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  on(event: 'ready' | 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  readonly isReady: boolean;
}

type ClientFactory = (options: Record<string, unknown>) => Client;

export type RedisLinkEvents = {
  /** Connected (again): what was written while it was away must be written again. */
  up: [];
  /** Lost or not reachable, with the reason. */
  down: [reason: string];
};

/** Requests that need Redis fail with this while it cannot be reached. */
export class RedisUnavailableError extends Error {
  constructor(reason: string) {
    super(`Redis is unreachable (${reason})`);
    this.name = 'RedisUnavailableError';
  }
}

/** Reconnects after 50 ms, doubling up to 2 s, for as long as the link is open. */
const reconnectDelay = (attempt: number) => Math.min(50 * 2 ** attempt, 2000);

/**
 * A connection to Redis for commands and one for subscriptions, through
 * node-redis (`@redis/client`, loaded only when a Redis store is chosen).
 * Commands fail at once while Redis is away (no offline queue): the server
 * serves its own devices from memory meanwhile and writes everything again
 * when the link is up.
 */
export class RedisLink extends TypedEmitter<RedisLinkEvents> {
  private readonly commands: Client;
  private readonly subscriber: Client;
  private closed = false;
  private wasUp = false;
  private reason = 'connecting';

  constructor(options: RedisOptions) {
    super();
    const createClient = loadClientFactory();
    this.commands = createClient({
      url: options.url,
      ...(options.password ? { password: options.password } : {}),
      ...(options.username ? { username: options.username } : {}),
      disableOfflineQueue: true,
      socket: { reconnectStrategy: reconnectDelay, connectTimeout: 5000 },
    });
    this.subscriber = this.commands.duplicate();
    this.commands.on('ready', () => this.changed());
    this.commands.on('end', () => this.changed());
    this.commands.on('error', (error) => {
      this.reason = describe(error);
      this.changed();
    });
    // The subscriber's own errors are the same outage; node-redis subscribes again when it is back.
    this.subscriber.on('error', () => undefined);
  }

  /** Connects both clients; rejects (and goes on trying in the background) when Redis cannot be reached now. */
  async open(): Promise<void> {
    await Promise.all([this.commands.connect(), this.subscriber.connect()]);
  }

  get isUp(): boolean {
    return this.commands.isReady;
  }

  /** Why the link is down, for statuses and errors. */
  get downReason(): string {
    return this.reason;
  }

  /** One command; several issued in the same tick go out as one pipeline. */
  command(args: string[]): Promise<unknown> {
    if (!this.commands.isReady) return Promise.reject(new RedisUnavailableError(this.reason));
    return this.commands.sendCommand(args);
  }

  listen(channel: string, listener: (message: string) => void): Promise<unknown> {
    return this.subscriber.subscribe(channel, listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.commands.destroy();
    this.subscriber.destroy();
  }

  private changed(): void {
    if (this.closed) return;
    const up = this.commands.isReady;
    if (up === this.wasUp) return;
    this.wasUp = up;
    if (up) {
      this.reason = '';
      this.emit('up');
    } else this.emit('down', this.reason || 'connection closed');
  }
}

function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code ? `${code}: ${error.message}` : error.message;
}

/** node-redis, required only here: flows with the file store never load it. */
function loadClientFactory(): ClientFactory {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('@redis/client') as { createClient: ClientFactory }).createClient;
  } catch (error) {
    throw new Error(`the Redis store needs the @redis/client package (npm install @redis/client): ${(error as Error).message}`);
  }
}
