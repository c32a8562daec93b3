import type { CoapMessage } from './message';

export interface Peer {
  address: string;
  port: number;
}

export function peerKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** Marks a message id as seen while its handler has not answered yet. */
export const PENDING = null;

/** A request we sent and whose response we are waiting for. */
export interface Exchange {
  peer: PeerState;
  messageId: number;
  tokenKey: string;
  datagram: Buffer;
  confirmable: boolean;
  acknowledged: boolean;
  finished: boolean;
  /** A notification we send: done when acknowledged, with no response to wait for. */
  ackOnly: boolean;
  transmissions: number;
  retransmitTimer?: NodeJS.Timeout;
  deadlineTimer?: NodeJS.Timeout;
  resolve(response: CoapMessage): void;
  reject(error: Error): void;
  /** Set for an Observe request: later responses with this token go here. */
  onNotification?: NotificationHandler;
}

/** Receives the notifications of one observation (RFC 7641), matched by peer and token. */
export type NotificationHandler = (notification: CoapMessage) => void;

/** A Block1 transfer being reassembled (RFC 7959 section 2.5). */
export interface BlockTransfer {
  key: string;
  parts: Buffer[];
  received: number;
  nextNum: number;
  szx: number;
}

/**
 * The message ids of one deduplication generation with their answers. Most
 * peers send one request at a time, so the first id is kept inline and a map
 * only comes with a second one.
 */
class DedupGeneration {
  private firstId = -1;
  private firstAnswer: Buffer | null = null;
  private more?: Map<number, Buffer | null>;

  get size(): number {
    return (this.firstId >= 0 ? 1 : 0) + (this.more?.size ?? 0);
  }

  get(messageId: number): Buffer | null | undefined {
    return messageId === this.firstId ? this.firstAnswer : this.more?.get(messageId);
  }

  has(messageId: number): boolean {
    return messageId === this.firstId || (this.more?.has(messageId) ?? false);
  }

  set(messageId: number, answer: Buffer | null): void {
    if (this.firstId < 0 || messageId === this.firstId) {
      this.firstId = messageId;
      this.firstAnswer = answer;
    } else {
      (this.more ??= new Map()).set(messageId, answer);
    }
  }
}

/**
 * What the endpoint keeps per remote address and port: message ids for
 * deduplication, its own message id counter, and the exchanges in flight.
 * Matching by peer first is what keeps one device's ids and tokens from
 * ever completing another device's exchange.
 */
export class PeerState {
  readonly key: string;
  // Message ids only need to differ between exchanges, not to be unguessable (tokens are): no CSPRNG call per peer.
  private nextMessageId = Math.floor(Math.random() * 0x10000);
  /** Received message id -> the datagram sent in answer (PENDING while the handler runs). */
  private recent = new DedupGeneration();
  private older?: DedupGeneration;
  // Most peers are devices that only register and update: the maps for exchanges and observations come with first use.
  private byMessageId?: Map<number, Exchange>;
  private byToken?: Map<string, Exchange>;
  private observed?: Map<string, NotificationHandler>;
  blockTransfer?: BlockTransfer;

  get exchangesByMessageId(): Map<number, Exchange> {
    return (this.byMessageId ??= new Map());
  }

  get exchangesByToken(): Map<string, Exchange> {
    return (this.byToken ??= new Map());
  }

  /** Tokens of the observations this peer notifies; anything else it sends as a notification gets a Reset. */
  get observations(): Map<string, NotificationHandler> {
    return (this.observed ??= new Map());
  }

  constructor(
    readonly address: string,
    readonly port: number,
    private readonly dedupCapacity: number,
  ) {
    this.key = peerKey(address, port);
  }

  /** Lets go of the exchange maps once nothing is in flight: a device that was read once should not keep them. */
  releaseIdleExchanges(): void {
    if (this.byMessageId?.size === 0) this.byMessageId = undefined;
    if (this.byToken?.size === 0) this.byToken = undefined;
  }

  allocateMessageId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = (id + 1) & 0xffff;
    return id;
  }

  /** undefined: never seen; PENDING: seen, no answer yet; Buffer: the answer to repeat. */
  seen(messageId: number): Buffer | null | undefined {
    const answer = this.recent.get(messageId);
    return answer !== undefined ? answer : this.older?.get(messageId);
  }

  remember(messageId: number, answer: Buffer | null): void {
    if (this.recent.size >= this.dedupCapacity && !this.recent.has(messageId)) this.rotate();
    this.recent.set(messageId, answer);
  }

  /** Ages the dedup generations; entries survive one to two rotations. */
  rotate(): void {
    this.older = this.recent;
    this.recent = new DedupGeneration();
  }

  isIdle(): boolean {
    return (
      this.recent.size === 0 &&
      !this.older?.size &&
      !this.byMessageId?.size &&
      !this.byToken?.size &&
      !this.observed?.size &&
      this.blockTransfer === undefined
    );
  }
}
