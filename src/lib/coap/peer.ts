import type { CoapMessage } from './message';

export interface Peer {
  address: string;
  port: number;
}

/** A map key for a remote address and port: a number for IPv4, so no string is built and hashed per datagram; text otherwise. */
export type PeerKey = number | string;

export function peerKey(address: string, port: number): PeerKey {
  const ipv4 = ipv4Number(address);
  return ipv4 === undefined ? `${address}:${port}` : ipv4 * 65536 + port;
}

/** "a.b.c.d" as a 32-bit number; undefined for anything else (IPv6, names). */
function ipv4Number(address: string): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255 || ++dots > 3) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
    } else return undefined;
  }
  return dots === 3 && digits > 0 && part <= 255 ? value * 256 + part : undefined;
}

/** Where an endpoint keeps a peer's state. */
export const enum PeerTable {
  /** Forgotten (evicted or swept) while something still held it. */
  Detached,
  /** An address that only sent us requests: kept in a bounded table, the oldest forgotten first (unless registered). */
  Newcomer,
  /** A peer we sent requests to, or a registered device newcomers pressed on: never crowded out by newcomers. */
  Main,
}

const TABLE_BITS = 3;
const VERIFIED = 4;

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
  /** When the exchange gives up even if acknowledged (Infinity: only retransmissions limit it). */
  deadline: number;
  timeoutMs: number;
  /** When the endpoint's clock next looks at it: a retransmission or the deadline, whichever comes first. */
  dueAt: number;
  /** The current retransmission timeout, doubled at each retransmission. */
  ackTimeoutMs: number;
  /** Its place in the endpoint's list of exchanges waiting for the clock. */
  dueNext: Exchange | undefined;
  duePrev: Exchange | undefined;
  resolve(response: CoapMessage): void;
  reject(error: Error): void;
  /** Set for an Observe request: later responses with this token go here. */
  onNotification?: NotificationHandler;
}

/** Receives the notifications of one observation (RFC 7641), matched by peer and token. An object, not a closure: one per observed device adds up. */
export interface NotificationHandler {
  notified(notification: CoapMessage): void;
  /** A notification was rejected (and the observation cancelled at the peer with a Reset): the reason. */
  refused(reason: string): void;
}

/** A Block1 transfer being reassembled (RFC 7959 section 2.5). */
export interface BlockTransfer {
  key: string;
  parts: Buffer[];
  received: number;
  nextNum: number;
  szx: number;
  /** When its last block came: a transfer left unfinished for EXCHANGE_LIFETIME is dropped. */
  lastAt: number;
}

/** What one remembered answer costs besides its bytes (the string and its table entry), for the dedup memory budgets. */
const DEDUP_ENTRY_OVERHEAD = 48;

/**
 * The message ids of one deduplication generation with their answers. Most
 * peers send one or two requests in a generation (a Register and its first
 * Update, an Update and a Send), so two ids are kept inline and a map only
 * comes with a third.
 */
class DedupGeneration {
  private firstId = -1;
  // Answers are kept as latin1 text: a short string costs less than a Buffer object, and is only turned back into bytes for a duplicate.
  private firstAnswer: string | null = null;
  private secondId = -1;
  private secondAnswer: string | null = null;
  private more: Map<number, string | null> | undefined = undefined;
  /** What its answers cost, roughly: their bytes and a fixed overhead per entry. */
  bytes = 0;

  get size(): number {
    return (this.firstId >= 0 ? 1 : 0) + (this.secondId >= 0 ? 1 : 0) + (this.more?.size ?? 0);
  }

  get(messageId: number): Buffer | null | undefined {
    const answer = messageId === this.firstId ? this.firstAnswer : messageId === this.secondId ? this.secondAnswer : this.more?.get(messageId);
    return typeof answer === 'string' ? Buffer.from(answer, 'latin1') : answer;
  }

  has(messageId: number): boolean {
    return messageId === this.firstId || messageId === this.secondId || (this.more?.has(messageId) ?? false);
  }

  /**
   * Returns the change in bytes. An id comes first without its answer
   * (PENDING: it pays the entry), then its answer replaces that: counting
   * so needs no lookup of what was there.
   */
  set(messageId: number, answer: Buffer | null): number {
    const text = answer === null ? null : answer.toString('latin1');
    if (this.firstId < 0 || messageId === this.firstId) {
      this.firstId = messageId;
      this.firstAnswer = text;
    } else if (this.secondId < 0 || messageId === this.secondId) {
      this.secondId = messageId;
      this.secondAnswer = text;
    } else {
      (this.more ??= new Map()).set(messageId, text);
    }
    const change = text === null ? DEDUP_ENTRY_OVERHEAD : text.length;
    this.bytes += change;
    return change;
  }
}

/**
 * What the endpoint keeps per remote address and port: message ids for
 * deduplication, its own message id counter, and the exchanges in flight.
 * Matching by peer first is what keeps one device's ids and tokens from
 * ever completing another device's exchange.
 */
export class PeerState {
  // Message ids only need to differ between exchanges, not to be unguessable (tokens are): no CSPRNG call per peer.
  private nextMessageId = Math.floor(Math.random() * 0x10000);
  /** Received message id -> the datagram sent in answer (PENDING while the handler runs). */
  private recent = new DedupGeneration();
  // Fields set later are initialised here all the same, so they live inside the object rather than in a property array added on first use.
  private older: DedupGeneration | undefined = undefined;
  // A device mostly has one exchange in flight (NSTART = 1): it is kept inline, maps only come with a second.
  private firstById: Exchange | undefined = undefined;
  private moreById: Map<number, Exchange> | undefined = undefined;
  private firstByToken: Exchange | undefined = undefined;
  private moreByToken: Map<string, Exchange> | undefined = undefined;
  // Most observed devices have one observation: it is kept inline, a map only comes with a second.
  private firstObserverToken: string | undefined = undefined;
  private firstObserver: NotificationHandler | undefined = undefined;
  private moreObservers: Map<string, NotificationHandler> | undefined = undefined;
  blockTransfer: BlockTransfer | undefined = undefined;
  /** The table that holds it (PeerTable) and VERIFIED, in one small integer: a fleet has a PeerState per device. */
  private flags: number = PeerTable.Detached | VERIFIED;
  /** Bytes received from an unverified address minus the bytes sent to it. */
  credit = 0;
  /** The DTLS session the peer's latest datagram came in (undefined over plain UDP). */
  session: object | undefined = undefined;

  /** The exchange whose acknowledgement (or Reset) carries this message id. */
  exchangeById(messageId: number): Exchange | undefined {
    return this.firstById?.messageId === messageId ? this.firstById : this.moreById?.get(messageId);
  }

  /** The exchange waiting for a response with this token. */
  exchangeByToken(tokenKey: string): Exchange | undefined {
    return this.firstByToken?.tokenKey === tokenKey ? this.firstByToken : this.moreByToken?.get(tokenKey);
  }

  /** Tracks an exchange by message id, and by token unless it waits for an acknowledgement only. */
  track(exchange: Exchange, byToken: boolean): void {
    if (this.firstById === undefined || this.firstById.messageId === exchange.messageId) this.firstById = exchange;
    else (this.moreById ??= new Map()).set(exchange.messageId, exchange);
    if (!byToken) return;
    if (this.firstByToken === undefined || this.firstByToken.tokenKey === exchange.tokenKey) this.firstByToken = exchange;
    else (this.moreByToken ??= new Map()).set(exchange.tokenKey, exchange);
  }

  /** Stops matching acknowledgements to the exchange (acknowledged, or over). */
  untrackId(exchange: Exchange): void {
    if (this.firstById === exchange) this.firstById = undefined;
    else if (this.moreById?.get(exchange.messageId) === exchange) {
      this.moreById.delete(exchange.messageId);
      if (this.moreById.size === 0) this.moreById = undefined;
    }
  }

  /** Stops tracking the exchange at all. */
  untrack(exchange: Exchange): void {
    this.untrackId(exchange);
    if (this.firstByToken === exchange) this.firstByToken = undefined;
    else if (this.moreByToken?.get(exchange.tokenKey) === exchange) {
      this.moreByToken.delete(exchange.tokenKey);
      if (this.moreByToken.size === 0) this.moreByToken = undefined;
    }
  }

  /** Every exchange in flight, each once. */
  exchanges(): Exchange[] {
    const all = new Set<Exchange>([...(this.moreById?.values() ?? []), ...(this.moreByToken?.values() ?? [])]);
    if (this.firstById) all.add(this.firstById);
    if (this.firstByToken) all.add(this.firstByToken);
    return [...all];
  }

  /** Who takes this peer's notifications under a token (hex); anything else it sends as a notification gets a Reset. */
  observer(tokenKey: string): NotificationHandler | undefined {
    return tokenKey === this.firstObserverToken ? this.firstObserver : this.moreObservers?.get(tokenKey);
  }

  addObserver(tokenKey: string, handler: NotificationHandler): void {
    if (this.firstObserverToken === undefined || this.firstObserverToken === tokenKey) {
      this.firstObserverToken = tokenKey;
      this.firstObserver = handler;
    } else {
      (this.moreObservers ??= new Map()).set(tokenKey, handler);
    }
  }

  removeObserver(tokenKey: string): NotificationHandler | undefined {
    if (tokenKey === this.firstObserverToken) {
      const handler = this.firstObserver;
      this.firstObserverToken = undefined;
      this.firstObserver = undefined;
      return handler;
    }
    const handler = this.moreObservers?.get(tokenKey);
    this.moreObservers?.delete(tokenKey);
    if (this.moreObservers?.size === 0) this.moreObservers = undefined;
    return handler;
  }

  constructor(
    readonly address: string,
    readonly port: number,
  ) {}

  /** Which table of the endpoint holds it; Detached once forgotten. */
  get table(): PeerTable {
    return this.flags & TABLE_BITS;
  }

  set table(table: PeerTable) {
    this.flags = (this.flags & ~TABLE_BITS) | table;
  }

  /**
   * Whether the address has shown it is real: it came over DTLS (the cookie
   * exchange), or answered a message we sent. Until then the endpoint sends
   * it no request, and no more bytes than it received (credit).
   */
  get verified(): boolean {
    return (this.flags & VERIFIED) !== 0;
  }

  set verified(verified: boolean) {
    this.flags = verified ? this.flags | VERIFIED : this.flags & ~VERIFIED;
  }

  /** "address:port", for messages. */
  get label(): string {
    return `${this.address}:${this.port}`;
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

  /**
   * Keeps at most `capacity` ids and about `maxBytes` per generation (the
   * endpoint's settings, not fields each peer carries). Returns the change
   * in remembered bytes, for the endpoint's total.
   */
  remember(messageId: number, answer: Buffer | null, capacity: number, maxBytes: number): number {
    let change = 0;
    if ((this.recent.size >= capacity || this.recent.bytes >= maxBytes) && !this.recent.has(messageId)) change = this.rotate();
    return change + this.recent.set(messageId, answer);
  }

  /**
   * The address now speaks in another DTLS session (a new handshake, another
   * identity perhaps): message ids start over there, so what was remembered
   * for deduplication stays with the old session (and a Block1 transfer,
   * which the endpoint drops first). Returns the change in remembered bytes.
   */
  enterSession(session: object | undefined): number {
    const dropped = this.dedupBytes;
    this.session = session;
    this.recent = new DedupGeneration();
    this.older = undefined;
    return -dropped;
  }

  /** Ages the dedup generations (entries survive one to two rotations); returns the change in remembered bytes. */
  rotate(): number {
    const dropped = this.older?.bytes ?? 0;
    this.older = this.recent;
    this.recent = new DedupGeneration();
    return -dropped;
  }

  /** What its dedup memory costs, roughly. */
  get dedupBytes(): number {
    return this.recent.bytes + (this.older?.bytes ?? 0);
  }

  isIdle(): boolean {
    return (
      this.recent.size === 0 &&
      !this.older?.size &&
      this.firstById === undefined &&
      this.moreById === undefined &&
      this.firstByToken === undefined &&
      this.moreByToken === undefined &&
      this.firstObserverToken === undefined &&
      !this.moreObservers?.size &&
      this.blockTransfer === undefined
    );
  }
}
