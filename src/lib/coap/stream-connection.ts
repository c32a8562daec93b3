import type net from 'node:net';
import type { CoapMessage } from './message';
import type { BlockTransfer, NotificationHandler, Peer, PeerKey } from './peer';
import type { Block1Holder } from './block1-assembly';
import type { StreamBlockLimits } from './message-layer';
import type { FrameReader } from './tcp-framing';
import { BASE_MAX_MESSAGE_SIZE, PeerSettings } from './signals';
import type { PeerIdentity } from '../dtls/credentials';

/** Room left in a message to the peer for the header, token and options beside the body. */
const HEADROOM_BYTES = 128;

/** An exchange we started: waiting for the response with its token. */
export interface StreamExchange {
  connection: StreamConnection;
  tokenKey: string;
  deadline: number;
  timeoutMs: number;
  finished: boolean;
  dueNext: StreamExchange | undefined;
  duePrev: StreamExchange | undefined;
  resolve(response: CoapMessage): void;
  reject(error: Error): void;
  onNotification: NotificationHandler | undefined;
}

/** One connection (TCP or TLS) and what CoAP keeps for it. */
export class StreamConnection implements Block1Holder {
  /** The peer's settings from its CSMs (RFC 8323 section 5.3): the base values until the first arrives. */
  settings: PeerSettings = { maxMessageSize: BASE_MAX_MESSAGE_SIZE, bert: false };
  /** The peer's first CSM arrived: the connection is open for requests. */
  established = false;
  closed = false;
  limits: StreamBlockLimits = limitsOf(this.settings);
  blockTransfer: BlockTransfer | undefined = undefined;
  /** We announce Block-Wise-Transfer: the peer may send BERT blocks. */
  readonly bert = true;
  /** Endpoint ticks when the peer last sent anything, and when the incomplete message it is sending began. */
  lastActivity: number;
  frameStartedAt: number;
  frames = 0;
  /** Bytes counted against the endpoint's budget for this connection. */
  held = 0;
  /** Takes the connection out of the opening ones of its address (at its first CSM); undefined once done, and for a client's connection. */
  settleOpening: (() => void) | undefined;
  private firstExchange: StreamExchange | undefined = undefined;
  private moreExchanges: Map<string, StreamExchange> | undefined = undefined;
  private observers: Map<string, NotificationHandler> | undefined = undefined;
  /** Our Pings waiting for their Pong, by token: called with nothing for the Pong, with an error when the connection ends. */
  pings: Map<string, (error?: Error) => void> | undefined = undefined;
  reader!: FrameReader;

  constructor(
    readonly socket: net.Socket,
    readonly peer: Peer,
    readonly key: PeerKey,
    readonly identity: PeerIdentity | undefined,
    now: number,
    settleOpening: (() => void) | undefined,
  ) {
    this.lastActivity = now;
    this.frameStartedAt = now;
    this.settleOpening = settleOpening;
  }

  get label(): string {
    return `${this.peer.address}:${this.peer.port}`;
  }

  exchange(tokenKey: string): StreamExchange | undefined {
    return this.firstExchange?.tokenKey === tokenKey ? this.firstExchange : this.moreExchanges?.get(tokenKey);
  }

  track(exchange: StreamExchange): void {
    if (this.firstExchange === undefined) this.firstExchange = exchange;
    else (this.moreExchanges ??= new Map()).set(exchange.tokenKey, exchange);
  }

  untrack(exchange: StreamExchange): void {
    if (this.firstExchange === exchange) this.firstExchange = undefined;
    else if (this.moreExchanges?.get(exchange.tokenKey) === exchange) {
      this.moreExchanges.delete(exchange.tokenKey);
      if (this.moreExchanges.size === 0) this.moreExchanges = undefined;
    }
  }

  exchanges(): StreamExchange[] {
    return [...(this.firstExchange ? [this.firstExchange] : []), ...(this.moreExchanges?.values() ?? [])];
  }

  observer(tokenKey: string): NotificationHandler | undefined {
    return this.observers?.get(tokenKey);
  }

  addObserver(tokenKey: string, handler: NotificationHandler): void {
    (this.observers ??= new Map()).set(tokenKey, handler);
  }

  removeObserver(tokenKey: string): NotificationHandler | undefined {
    const handler = this.observers?.get(tokenKey);
    this.observers?.delete(tokenKey);
    return handler;
  }

  dropObservers(): void {
    this.observers = undefined;
  }

  heldBytes(): number {
    return this.reader.held + (this.blockTransfer?.received ?? 0);
  }
}

export function limitsOf(settings: PeerSettings): StreamBlockLimits {
  const singleMessageBytes = Math.max(16, settings.maxMessageSize - HEADROOM_BYTES);
  return { singleMessageBytes, bertBytes: settings.bert ? Math.max(1024, Math.floor(singleMessageBytes / 1024) * 1024) : 0 };
}

