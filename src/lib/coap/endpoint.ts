import { EventEmitter } from 'node:events';
import {
  DEFAULT_TRANSMISSION,
  EMPTY_CODE,
  MessageType,
  OptionNumber,
  ResponseCode,
  TransmissionParameters,
  codeClass,
  formatCode,
} from './codes';
import { CoapClosedError, CoapRequestError, CoapResetError, CoapResponseError, CoapTimeoutError, CoapUnverifiedPeerError } from './errors';
import { CoapMessage, CoapOption, CoapFormatError, decode, encode, peekConfirmableMessageId } from './message';
import { findOption, unrecognizedCriticalOption, uriPath } from './options';
import { handleRequest, incomingRequest } from './incoming';
import { Exchange, NotificationHandler, PENDING, Peer, PeerKey, PeerState, PeerTable, peerKey } from './peer';
import { Block1Budget, assembleBlock1 } from './block1-assembly';
import { DEFAULT_RECEIVE_BUFFER, DatagramTransport, UdpTransport } from './transport';
import type { MessageLayer } from './message-layer';
import type { PeerIdentity } from '../dtls/credentials';
import { randomText } from '../random-text';
import { DueList } from './due-list';

export interface IncomingRequest {
  peer: Peer;
  message: CoapMessage;
  method: number;
  /** "/rd/abc" */
  path: string;
  /** Uri-Query options, in order. */
  queries: string[];
  /** The whole body, reassembled when it came in Block1 blocks. */
  payload: Buffer;
  contentFormat?: number;
  /** Who the peer authenticated as, over a secure transport. */
  identity?: PeerIdentity;
}

export interface OutgoingResponse {
  code: number;
  options?: CoapOption[];
  payload?: Buffer;
}

export type RequestHandler = (request: IncomingRequest) => OutgoingResponse | Promise<OutgoingResponse>;

export interface OutgoingRequest {
  code: number;
  options?: CoapOption[];
  payload?: Buffer;
}

export interface RequestOptions {
  /** Confirmable (retransmitted until acknowledged) unless false. */
  confirmable?: boolean;
  /** Gives up after this long even if the peer acknowledged but has not answered yet. */
  timeoutMs?: number;
  /** Reuses a token (in hex), as cancelling an observation with GET Observe=1 requires (RFC 7641 section 3.6). */
  token?: string;
  /**
   * Makes the request an observation: when the first response carries the
   * Observe option, later responses with the same token from the same peer
   * go to this handler until the observation is forgotten.
   */
  onNotification?: NotificationHandler;
}

export interface EndpointOptions {
  address: string;
  port: number;
  transmission?: Partial<TransmissionParameters>;
  /** Message ids remembered per peer before the oldest generation is dropped early. */
  dedupCapacityPerPeer?: number;
  /** Bytes of answers remembered per peer and generation before the oldest generation is dropped early (default 4 KiB). */
  dedupBytesPerPeer?: number;
  /** Bytes of answers remembered for all peers (default 32 MiB): beyond, the addresses that only sent requests are forgotten, oldest first, then answers are no longer kept. */
  dedupBytes?: number;
  /** Largest request body accepted through Block1. */
  maxRequestBodyBytes?: number;
  /** Bytes all unfinished Block1 transfers may hold together (default 16 MiB); blocks beyond get 4.13. */
  block1Bytes?: number;
  /** Socket receive buffer, so bursts from many devices wait in the kernel instead of being dropped (default 4 MiB; the system may cap it). */
  receiveBufferBytes?: number;
  /**
   * Addresses that only sent requests (not registered, no request of ours in
   * flight) tracked at once; beyond, the oldest is forgotten (default 50,000).
   * Registered devices and peers we talk to are kept apart and never crowded out.
   */
  maxPeers?: number;
  /**
   * Server role: send no request to an address before it has shown it is
   * real (a CoAP ping first, answered), and no more bytes than it sent us
   * until then, so forged source addresses cannot turn the server into a reflector.
   */
  verifyPeers?: boolean;
  /** Whether a peer's state is worth keeping while it is idle (a registered device): it is never forgotten for a newcomer, and never swept. */
  retainPeer?: (peer: Peer) => boolean;
  /** What to talk over; plain UDP on address:port unless given. */
  transport?: DatagramTransport;
  /**
   * A response or notification whose token matches nothing here: return
   * true to look it up elsewhere (another server instance's observation, in
   * a cluster) and call retry() once it may match; false (or no hook) resets it.
   */
  unmatched?: (peer: Peer, message: CoapMessage, retry: () => void) => boolean;
}

/**
 * Sees the messages exchanged with chosen peers (the editor's message log of
 * a device). While none is set the endpoint pays one check per datagram.
 */
export interface MessageTap {
  received(message: CoapMessage, address: string, port: number): void;
  sent(datagram: Buffer, address: string, port: number): void;
}

/** Emitted as 'malformed' for every datagram that is dropped or rejected. */
export interface MalformedDatagram {
  peer: Peer;
  reason: string;
}

/** ticks count milliseconds modulo 2^30: they stay small integers. */
export const TICK_MASK = 0x3fffffff;

const DEFAULT_DEDUP_CAPACITY = 64;
const DEFAULT_DEDUP_BYTES_PER_PEER = 4 * 1024;
const DEFAULT_DEDUP_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_BODY = 64 * 1024;
const DEFAULT_BLOCK1_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_PEERS = 50_000;
/** A diagnostic payload is a short reason (RFC 7252 section 5.5.2): never an echo of unbounded input. */
const MAX_REASON_CHARS = 160;
/** What two pings cost: a diagnostic reason to an unverified address leaves at least this much of its credit. */
const PROBE_RESERVE = 8;
const EMPTY = Buffer.alloc(0);

/**
 * One CoAP endpoint on one transport (UDP or DTLS), acting as server (incoming requests,
 * deduplicated per peer, Block1 reassembled) and as client (confirmable
 * requests with retransmission, responses matched per peer by token).
 */
export class CoapEndpoint extends EventEmitter implements MessageLayer {
  readonly transport: DatagramTransport;
  readonly reliable = false;
  private listening = false;
  /** The peers we sent requests to, and registered devices once newcomers pressed on them. */
  private readonly peers = new Map<PeerKey, PeerState>();
  /** Addresses that only sent requests, oldest first: a flood of forged sources churns these; registered devices among them move to the peers above instead of being forgotten. */
  private readonly newcomers = new Map<PeerKey, PeerState>();
  private readonly maxNewcomers: number;
  private readonly transmission: TransmissionParameters;
  private readonly dedupCapacity: number;
  private readonly dedupBytesPerPeer: number;
  private readonly dedupBudget: number;
  /** Bytes of answers remembered by the peers in the tables. */
  private dedupBytes = 0;
  private readonly block1: Block1Budget;
  /** Whether new peers start verified: DTLS peers are (the cookie exchange), and so are all when the endpoint is a client. */
  private readonly startVerified: boolean;
  /** Requests to unverified peers waiting for the answer to a CoAP ping: one inline, an array from the second. */
  private readonly unproven = new Map<PeerState, Exchange | Exchange[]>();
  private sweepTimer?: NodeJS.Timeout;
  /**
   * Exchanges waiting for a retransmission or their deadline, checked by one
   * clock: an intrusive list, not a Set. A Set's table lives long and is
   * rebuilt as entries come and go; the tables it leaves behind still point
   * at finished exchanges, which the young-generation collector then keeps
   * (with their messages and promises) until a full collection.
   */
  private readonly due = new DueList<Exchange>();
  private clock?: NodeJS.Timeout;
  private readonly clockMs: number;
  /**
   * Milliseconds modulo 2^30 at the clock's last tick (at most clockMs ago):
   * a small integer, so a request can note when it started without the boxed
   * number a Date.now() per request would leave behind.
   */
  ticks = Date.now() & TICK_MASK;
  private closed = false;
  /** Settles when a bind in progress has finished, so close() releases a socket that was still being bound. */
  private binding: Promise<void> = Promise.resolve();
  /** Set only while someone watches a device's messages. */
  tap: MessageTap | undefined = undefined;

  constructor(
    private readonly options: EndpointOptions,
    private readonly handler: RequestHandler,
  ) {
    super();
    this.transmission = { ...DEFAULT_TRANSMISSION, ...options.transmission };
    this.dedupCapacity = options.dedupCapacityPerPeer ?? DEFAULT_DEDUP_CAPACITY;
    this.clockMs = Math.max(1, Math.min(20, Math.floor(this.transmission.ackTimeoutMs / 8)));
    this.dedupBytesPerPeer = options.dedupBytesPerPeer ?? DEFAULT_DEDUP_BYTES_PER_PEER;
    this.dedupBudget = options.dedupBytes ?? DEFAULT_DEDUP_BYTES;
    this.block1 = new Block1Budget(options.maxRequestBodyBytes ?? DEFAULT_MAX_BODY, options.block1Bytes ?? DEFAULT_BLOCK1_BYTES);
    this.maxNewcomers = options.maxPeers ?? DEFAULT_MAX_PEERS;
    this.transport = options.transport ?? new UdpTransport(options.address, options.port, options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER);
    this.startVerified = options.verifyPeers !== true || this.transport.scheme === 'coaps';
  }

  /** Binds the transport; rejects with the bind error (EADDRINUSE, EADDRNOTAVAIL...) instead of throwing later. */
  async listen(): Promise<Peer> {
    const listening = this.transport.listen(
      (datagram, peer, session) => this.receive(datagram, peer.address, peer.port, session),
      (error) => this.emit('socketError', error),
    );
    this.binding = listening.then(
      () => undefined,
      () => undefined,
    );
    const bound = await listening;
    // Closed while binding (a redeploy right after a deploy): close() releases the socket once bound.
    if (this.closed) return bound;
    this.listening = true;
    this.ticks = Date.now() & TICK_MASK;
    this.sweepTimer = setInterval(() => this.sweep(), this.transmission.exchangeLifetimeMs).unref();
    this.clock = setInterval(() => this.tick(), this.clockMs).unref();
    return bound;
  }

  get address(): Peer | undefined {
    return this.transport.address;
  }

  get scheme(): 'coap' | 'coaps' {
    return this.transport.scheme;
  }

  identityOf(peer: Peer): PeerIdentity | undefined {
    return this.transport.identityOf(peer);
  }

  /** Datagrams: the RFC 7959 block sizes the request asks for. */
  blockLimits(): undefined {
    return undefined;
  }

  /** Peers tracked: registered devices and those we talk to, and newcomers. */
  get peerCount(): number {
    return this.peers.size + this.newcomers.size;
  }

  /** What the endpoint's bounded memories hold now, for tests and the README's figures. */
  get usage(): { peers: number; newcomers: number; dedupBytes: number; block1Bytes: number } {
    return { peers: this.peers.size, newcomers: this.newcomers.size, dedupBytes: this.dedupBytes, block1Bytes: this.block1.used };
  }

  /** Whether an address has shown it is real (see EndpointOptions.verifyPeers). */
  isVerified(peer: Peer): boolean {
    const state = this.peers.get(peerKey(peer.address, peer.port)) ?? this.newcomers.get(peerKey(peer.address, peer.port));
    return state ? state.verified : this.startVerified;
  }

  /** Takes an address as verified without a ping: one that had answered before a restart. */
  markVerified(peer: Peer): void {
    this.peerState(peer.address, peer.port).verified = true;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const peer of this.peers.values()) {
      for (const exchange of peer.exchanges()) this.finish(exchange, new CoapClosedError());
    }
    clearInterval(this.clock);
    while (this.due.head) this.due.remove(this.due.head);
    this.unproven.clear();
    this.peers.clear();
    this.newcomers.clear();
    this.dedupBytes = 0;
    this.block1.used = 0;
    this.listening = false;
    return this.binding.then(() => this.transport.close());
  }

  /** Stops taking an observation's notifications (token in hex); the next one is answered with a Reset. */
  forgetObservation(peer: Peer, tokenKey: string): void {
    this.peers.get(peerKey(peer.address, peer.port))?.removeObserver(tokenKey);
  }

  /** Takes notifications for a token (hex) from a saved state, as if the observation had been made by this socket. */
  adoptObservation(peer: Peer, tokenKey: string, handler: NotificationHandler): void {
    this.peerState(peer.address, peer.port).addObserver(tokenKey, handler);
  }

  /** Follows an observed peer to a new address (NAT rebinding reported by a registration update). */
  moveObservation(from: Peer, to: Peer, tokenKey: string): void {
    const handler = this.peers.get(peerKey(from.address, from.port))?.removeObserver(tokenKey);
    if (handler) this.peerState(to.address, to.port).addObserver(tokenKey, handler);
  }

  /** Sends a request and resolves with the peer's response, whatever its code. */
  request(peer: Peer, request: OutgoingRequest, options: RequestOptions = {}): Promise<CoapMessage> {
    if (this.closed || !this.listening) return Promise.reject(new CoapClosedError());
    const state = this.peerState(peer.address, peer.port);
    const confirmable = options.confirmable !== false;
    const tokenKey = options.token ?? randomText(8, 'hex');
    const token = Buffer.from(tokenKey, 'hex');
    const messageId = state.allocateMessageId();
    const datagram = encode({
      type: confirmable ? MessageType.Confirmable : MessageType.NonConfirmable,
      code: request.code,
      messageId,
      token,
      options: request.options ?? [],
      payload: request.payload ?? Buffer.alloc(0),
    });
    const timeoutMs = options.timeoutMs ?? this.maxTransmitWaitMs();
    return new Promise((resolve, reject) => {
      const exchange: Exchange = {
        peer: state,
        messageId,
        tokenKey,
        datagram,
        confirmable,
        acknowledged: !confirmable,
        finished: false,
        ackOnly: false,
        transmissions: 0,
        deadline: Date.now() + timeoutMs,
        timeoutMs,
        dueAt: Infinity,
        ackTimeoutMs: 0,
        dueNext: undefined,
        duePrev: undefined,
        resolve,
        reject,
        onNotification: options.onNotification,
      };
      state.track(exchange, true);
      this.dispatch(exchange);
    });
  }

  /**
   * Sends a notification of an observation we serve (RFC 7641): a response
   * message under the observer's token. A confirmable one resolves when
   * acknowledged and rejects with CoapResetError when the observer refuses it.
   * Resolves with the message id, by which a Reset for a non-confirmable one
   * shows up as a 'reset' event.
   */
  notify(peer: Peer, notification: OutgoingResponse & { token: Buffer; confirmable: boolean }): Promise<number> {
    if (this.closed || !this.listening) return Promise.reject(new CoapClosedError());
    const state = this.peerState(peer.address, peer.port);
    const messageId = state.allocateMessageId();
    const datagram = encode({
      type: notification.confirmable ? MessageType.Confirmable : MessageType.NonConfirmable,
      code: notification.code,
      messageId,
      token: notification.token,
      options: notification.options ?? [],
      payload: notification.payload ?? Buffer.alloc(0),
    });
    if (!notification.confirmable) {
      this.send(datagram, state);
      return Promise.resolve(messageId);
    }
    return new Promise((resolve, reject) => {
      const exchange = acknowledgedExchange(state, messageId, notification.token.toString('hex'), datagram, () => resolve(messageId), reject);
      state.track(exchange, false);
      this.dispatch(exchange);
    });
  }

  /** Sends a new exchange, or holds it until its peer has shown it is real. */
  private dispatch(exchange: Exchange): void {
    const peer = exchange.peer;
    if (peer.verified) {
      this.transmit(exchange, this.initialAckTimeoutMs());
      return;
    }
    // Only its deadline runs while it waits.
    this.arm(exchange, Infinity);
    const waiting = this.unproven.get(peer);
    if (waiting) {
      if (Array.isArray(waiting)) waiting.push(exchange);
      else this.unproven.set(peer, [waiting, exchange]);
      return;
    }
    this.unproven.set(peer, exchange);
    if (peer.credit < 4) {
      this.unprovable(peer, new CoapUnverifiedPeerError(`${peer.label} has not shown it is a real address (it sent too little to answer with a ping): no request is sent to it`));
      return;
    }
    this.probe(peer);
  }

  /**
   * A CoAP ping (an empty confirmable message, RFC 7252 section 4.3) to an
   * address that has not shown it is real: whatever it answers (a Reset, an
   * empty or piggybacked Acknowledgement) proves the address, and the requests
   * waiting for it go out (see settleProbe). Four bytes, within what the
   * address sent us, retransmitted as any confirmable message while a request
   * still waits for it. No closures: a fleet's first requests each bring one.
   */
  private probe(peer: PeerState): void {
    const messageId = peer.allocateMessageId();
    const exchange = acknowledgedExchange(peer, messageId, '', emptyMessage(MessageType.Confirmable, messageId), PROBE, PROBE);
    peer.track(exchange, false);
    this.transmit(exchange, this.initialAckTimeoutMs());
  }

  /** What a ping's answer (or silence) means for the requests waiting on it. */
  private settleProbe(peer: PeerState, outcome: CoapMessage | Error): void {
    if (!(outcome instanceof Error) || outcome instanceof CoapResetError) {
      peer.verified = true;
      this.emit('verified', { address: peer.address, port: peer.port } satisfies Peer);
      const waiting = this.unproven.get(peer);
      this.unproven.delete(peer);
      for (const exchange of Array.isArray(waiting) ? waiting : waiting ? [waiting] : []) if (!exchange.finished) this.transmit(exchange, this.initialAckTimeoutMs());
    } else this.unprovable(peer, outcome);
  }

  /** Whether a request still waits for the peer's ping to be answered. */
  private awaitsProof(peer: PeerState): boolean {
    const waiting = this.unproven.get(peer);
    return Array.isArray(waiting) ? waiting.some((exchange) => !exchange.finished) : waiting !== undefined && !waiting.finished;
  }

  private unprovable(peer: PeerState, error: Error): void {
    const waiting = this.unproven.get(peer);
    this.unproven.delete(peer);
    // Silence is a timeout like any other; having sent too little to be pinged is its own failure.
    const failure = error instanceof CoapUnverifiedPeerError || error instanceof CoapClosedError ? error : new CoapTimeoutError(`no acknowledgement of a CoAP ping from ${peer.label}, and no request goes to an address before it answers one`);
    for (const exchange of Array.isArray(waiting) ? waiting : waiting ? [waiting] : []) this.finish(exchange, failure);
  }

  private transmit(exchange: Exchange, ackTimeoutMs: number): void {
    exchange.transmissions++;
    exchange.ackTimeoutMs = ackTimeoutMs;
    this.send(exchange.datagram, exchange.peer);
    this.arm(exchange, exchange.confirmable ? ackTimeoutMs : Infinity);
  }

  /** Schedules the exchange's next retransmission or its deadline, whichever is sooner, on the endpoint's clock. */
  private arm(exchange: Exchange, untilRetransmissionMs: number): void {
    exchange.dueAt = Math.min(Date.now() + untilRetransmissionMs, exchange.deadline);
    if (exchange.dueAt === Infinity) this.due.remove(exchange);
    else this.due.add(exchange);
  }

  /**
   * One interval for all exchanges instead of a timer each: a timer per
   * request costs allocations and timer-list work on every read. It runs
   * while the endpoint is open (starting and stopping it with the traffic
   * would churn timers just the same); its period is a small part of ACK_TIMEOUT.
   */
  private tick(): void {
    const now = Date.now();
    this.ticks = now & TICK_MASK;
    let exchange = this.due.head;
    while (exchange) {
      const next: Exchange | undefined = exchange.dueNext;
      if (exchange.dueAt <= now) {
        // Re-armed exchanges go to the head of the list, behind this walk.
        this.due.remove(exchange);
        this.onDue(exchange);
      }
      exchange = next;
    }
  }

  private onDue(exchange: Exchange): void {
    if (exchange.finished) return;
    // A ping goes on only while a request waits for it.
    if (exchange.resolve === PROBE && !this.awaitsProof(exchange.peer)) {
      this.finish(exchange, new CoapTimeoutError('no request waits for the ping any more'));
      return;
    }
    if (Date.now() >= exchange.deadline) {
      this.finish(exchange, new CoapTimeoutError(`no response from ${exchange.peer.label} within ${exchange.timeoutMs} ms`));
    } else if (exchange.acknowledged) {
      this.arm(exchange, Infinity);
    } else if (exchange.transmissions > this.transmission.maxRetransmit) {
      this.finish(exchange, new CoapTimeoutError(`no acknowledgement from ${exchange.peer.label} after ${exchange.transmissions} transmissions`));
    } else {
      this.transmit(exchange, exchange.ackTimeoutMs * 2);
    }
  }

  private finish(exchange: Exchange, outcome: CoapMessage | Error): void {
    if (exchange.finished) return;
    exchange.finished = true;
    this.due.remove(exchange);
    const peer = exchange.peer;
    peer.untrack(exchange);
    if (exchange.resolve === PROBE) {
      this.settleProbe(peer, outcome);
      return;
    }
    if (outcome instanceof Error) {
      exchange.reject(outcome);
      return;
    }
    if (exchange.onNotification && codeClass(outcome.code) === 2 && findOption(outcome.options, OptionNumber.Observe)) {
      peer.addObserver(exchange.tokenKey, exchange.onNotification);
    }
    exchange.resolve(outcome);
  }

  private receive(datagram: Buffer, address: string, port: number, session: object | undefined): void {
    let message: CoapMessage;
    try {
      message = decode(datagram);
    } catch (error) {
      this.rejectMalformed(datagram, address, port, (error as CoapFormatError).message);
      return;
    }
    if (this.tap !== undefined) this.tap.received(message, address, port);
    const peer = this.knownPeer(address, port);
    if (!peer.verified) peer.credit += datagram.length;
    if (peer.session !== session) this.enterSession(peer, session);
    if (message.code === EMPTY_CODE) this.receiveEmpty(peer, message);
    else if (codeClass(message.code) === 0) this.receiveRequest(peer, message);
    else this.receiveResponse(peer, message);
  }

  private rejectMalformed(datagram: Buffer, address: string, port: number, reason: string): void {
    const messageId = peekConfirmableMessageId(datagram);
    // No state for garbage: its Reset (4 bytes) is never larger than what came.
    if (messageId !== undefined) this.transport.send(emptyMessage(MessageType.Reset, messageId), { address, port });
    this.emit('malformed', { peer: { address, port }, reason } satisfies MalformedDatagram);
  }

  private receiveEmpty(peer: PeerState, message: CoapMessage): void {
    if (message.type === MessageType.Confirmable) {
      this.sendEmpty(MessageType.Reset, message.messageId, peer); // CoAP ping
      return;
    }
    const exchange = peer.exchangeById(message.messageId);
    if (!exchange) {
      if (message.type === MessageType.Reset) this.emit('reset', { address: peer.address, port: peer.port }, message.messageId);
      return;
    }
    if (message.type === MessageType.Acknowledgement && exchange.ackOnly) {
      this.finish(exchange, message);
    } else if (message.type === MessageType.Acknowledgement) {
      // A separate response follows (RFC 7252 section 5.2.2): no more retransmissions, only the deadline.
      exchange.acknowledged = true;
      this.arm(exchange, Infinity);
      peer.untrackId(exchange);
    } else if (message.type === MessageType.Reset) {
      this.finish(exchange, new CoapResetError(`${peer.label} rejected the request with a Reset`));
    }
  }

  private receiveResponse(peer: PeerState, message: CoapMessage, retried = false): void {
    const critical = unrecognizedCriticalOption(message.options);
    if (critical !== undefined) {
      this.rejectResponse(peer, message, critical);
      return;
    }
    if (message.type === MessageType.Acknowledgement) {
      const exchange = peer.exchangeById(message.messageId);
      if (exchange && exchange.tokenKey === message.token.toString('hex')) this.finish(exchange, message);
      return;
    }
    if (message.type === MessageType.Reset) return;
    const previous = peer.seen(message.messageId);
    if (previous !== undefined) {
      if (previous) this.send(previous, peer);
      return;
    }
    const tokenKey = message.token.toString('hex');
    const exchange = peer.exchangeByToken(tokenKey);
    const observer = exchange ? undefined : peer.observer(tokenKey);
    if (!exchange && !observer) {
      if (!retried && this.options.unmatched?.(peer, message, () => this.receiveResponse(peer, message, true))) return;
      // Not ours (or an observation we forgot): a Reset cancels it at the peer (RFC 7641 section 3.6).
      this.sendEmpty(MessageType.Reset, message.messageId, peer);
      return;
    }
    const ack = message.type === MessageType.Confirmable ? this.sendEmpty(MessageType.Acknowledgement, message.messageId, peer) : undefined;
    if (observer) {
      // Not remembered for deduplication: a repeated notification is acknowledged again and dropped by its Observe sequence number (RFC 7641 section 3.4).
      observer.notified(message);
      return;
    }
    this.remember(peer, message.messageId, ack ?? EMPTY);
    this.finish(exchange!, message);
  }

  /**
   * A response with a critical option we do not understand is rejected
   * (RFC 7252 section 5.4.1): a Reset for a confirmable or non-confirmable
   * one, nothing for a piggybacked one. Whoever waited for it is told at once
   * rather than left to time out; an observation it belonged to ends.
   */
  private rejectResponse(peer: PeerState, message: CoapMessage, critical: number): void {
    const reason = `response carries the unrecognized critical option ${critical}`;
    this.emit('malformed', { peer: { address: peer.address, port: peer.port }, reason } satisfies MalformedDatagram);
    if (message.type === MessageType.Reset) return;
    if (message.type !== MessageType.Acknowledgement) this.sendEmpty(MessageType.Reset, message.messageId, peer);
    const tokenKey = message.token.toString('hex');
    const exchange = message.type === MessageType.Acknowledgement ? peer.exchangeById(message.messageId) : peer.exchangeByToken(tokenKey);
    if (exchange && exchange.tokenKey === tokenKey) {
      this.finish(exchange, new CoapResponseError(`${peer.label}: ${reason}`));
      return;
    }
    const observer = message.type === MessageType.Acknowledgement ? undefined : peer.removeObserver(tokenKey);
    observer?.refused(reason);
  }

  private receiveRequest(peer: PeerState, message: CoapMessage): void {
    if (message.type === MessageType.Acknowledgement || message.type === MessageType.Reset) {
      const reason = `request code in a ${message.type === MessageType.Reset ? 'Reset' : 'Acknowledgement'}`;
      this.emit('malformed', { peer: { address: peer.address, port: peer.port }, reason } satisfies MalformedDatagram);
      return;
    }
    const previous = peer.seen(message.messageId);
    if (previous !== undefined) {
      if (previous) this.send(previous, peer);
      return;
    }
    this.remember(peer, message.messageId, PENDING);
    // An answer belongs to the session its request came in: once another session has the address, it is not sent.
    const session = peer.session;
    const answer = (response: OutgoingResponse) => {
      if (peer.session === session) this.respond(peer, message, response);
    };

    const critical = unrecognizedCriticalOption(message.options);
    if (critical !== undefined) {
      answer(this.errorResponse(new CoapRequestError(ResponseCode.BadOption, `unrecognized critical option ${critical}`), peer));
      return;
    }
    const assembly = assembleBlock1(peer, message, this.block1);
    // Progress of a body coming in blocks, for whoever follows it (the simulator's firmware download): only when someone listens.
    if ((assembly.block1Option !== undefined || assembly.response?.code === ResponseCode.Continue) && this.listenerCount('block1') > 0) {
      const received = assembly.response ? (peer.blockTransfer?.received ?? 0) : assembly.payload.length;
      this.emit('block1', { address: peer.address, port: peer.port } satisfies Peer, uriPath(message.options), received, assembly.response !== undefined);
    }
    if (assembly.response) {
      answer(assembly.response);
      return;
    }
    const request = incomingRequest(peer, message, assembly.payload, this.transport.identityOf(peer));
    handleRequest(this.handler, request, assembly.block1Option, answer, (error) => this.errorResponse(error, peer));
  }

  private errorResponse(error: unknown, peer: Peer): OutgoingResponse {
    if (error instanceof CoapRequestError) {
      const reason = shortReason(error.message);
      this.emit('malformed', { peer: { address: peer.address, port: peer.port }, reason: `${formatCode(error.responseCode)} ${reason}` } satisfies MalformedDatagram);
      return diagnostic(error.responseCode, reason);
    }
    this.emit('handlerError', error);
    return diagnostic(ResponseCode.InternalServerError, 'internal server error');
  }

  private respond(peer: PeerState, request: CoapMessage, response: OutgoingResponse): void {
    if (this.closed) return;
    const confirmable = request.type === MessageType.Confirmable;
    const message: CoapMessage = {
      type: confirmable ? MessageType.Acknowledgement : MessageType.NonConfirmable,
      code: response.code,
      messageId: confirmable ? request.messageId : peer.allocateMessageId(),
      token: request.token,
      options: response.options ?? [],
      payload: response.payload ?? EMPTY,
    };
    let datagram = encode(message);
    if (!peer.verified && datagram.length > peer.credit - PROBE_RESERVE) {
      // To an address that has not shown it is real, no more than it sent (leaving room for the pings that would verify it).
      if (codeClass(response.code) < 4 || message.payload.length === 0) {
        this.respondWhenProven(peer, request.messageId, datagram);
        return;
      }
      // An error's reason is cut to fit (payload marker included).
      message.payload = utf8Prefix(message.payload, peer.credit - PROBE_RESERVE - (datagram.length - message.payload.length));
      datagram = encode(message);
    }
    this.remember(peer, request.messageId, datagram);
    this.send(datagram, peer);
  }

  /**
   * An answer larger than what an unverified address sent (a Bootstrap-Pack,
   * a 2.01 to a tiny Register) waits until the address has answered a ping,
   * then goes as it is (piggybacked: the client sees it a round trip later),
   * so that a forged request is never answered in bulk to someone else.
   */
  private respondWhenProven(peer: PeerState, requestId: number, datagram: Buffer): void {
    // Duplicates get it too, once the address is verified (send holds it back until then).
    this.remember(peer, requestId, datagram);
    const state = this.peerState(peer.address, peer.port);
    this.dispatch(deferredAnswer(state, datagram, Date.now() + this.transmission.exchangeLifetimeMs));
  }

  /** Remembers an answer for duplicates, within the peer's and the endpoint's byte budgets. */
  private remember(peer: PeerState, messageId: number, answer: Buffer | null): void {
    if (answer !== null && this.dedupBytes + answer.length > this.dedupBudget && !this.relieve(answer.length)) answer = PENDING;
    const change = peer.remember(messageId, answer, this.dedupCapacity, this.dedupBytesPerPeer);
    if (peer.table !== PeerTable.Detached) this.dedupBytes += change;
  }

  /** Forgets newcomers, oldest first, until an answer of this size fits the dedup budget; false when it still does not. */
  private relieve(bytes: number): boolean {
    while (this.dedupBytes + bytes > this.dedupBudget) if (!this.evictNewcomer()) return false;
    return true;
  }

  /**
   * Makes room among the newcomers: forgets the oldest that is not a
   * registered device; registered ones met on the way move to the table
   * newcomers never reach. They move only then, so that a registration costs
   * no more than before until the newcomers' table fills. False when no
   * newcomer was left to forget.
   */
  private evictNewcomer(): boolean {
    for (const peer of this.newcomers.values()) {
      if (!this.options.retainPeer?.(peer)) {
        this.forget(peer);
        return true;
      }
      this.promote(peer);
    }
    return false;
  }

  private sendEmpty(type: MessageType, messageId: number, peer: PeerState): Buffer {
    const datagram = emptyMessage(type, messageId);
    this.send(datagram, peer);
    return datagram;
  }

  /** Sends, but to an address that has not shown it is real never more bytes than it sent us. */
  private send(datagram: Buffer, peer: PeerState): void {
    if (!peer.verified) {
      if (datagram.length > peer.credit) return;
      peer.credit -= datagram.length;
    }
    if (this.tap !== undefined) this.tap.sent(datagram, peer.address, peer.port);
    this.transport.send(datagram, peer);
  }

  /** The state of a peer that sent us something: a newcomer (in a bounded table) unless it is known. */
  private knownPeer(address: string, port: number): PeerState {
    const key = peerKey(address, port);
    const state = this.peers.get(key) ?? this.newcomers.get(key);
    if (state) return state;
    if (this.newcomers.size >= this.maxNewcomers) this.evictNewcomer();
    const newcomer = this.newPeer(address, port, PeerTable.Newcomer);
    this.newcomers.set(key, newcomer);
    return newcomer;
  }

  /** The state of a peer we talk to or keep: a newcomer moves over. */
  private peerState(address: string, port: number): PeerState {
    const key = peerKey(address, port);
    let state = this.peers.get(key);
    if (state) return state;
    state = this.newcomers.get(key);
    if (state) return this.promote(state);
    state = this.newPeer(address, port, PeerTable.Main);
    this.peers.set(key, state);
    return state;
  }

  private newPeer(address: string, port: number, table: PeerTable): PeerState {
    const state = new PeerState(address, port);
    state.table = table;
    state.verified = this.startVerified;
    return state;
  }

  private promote(peer: PeerState): PeerState {
    const key = peerKey(peer.address, peer.port);
    this.newcomers.delete(key);
    peer.table = PeerTable.Main;
    this.peers.set(key, peer);
    return peer;
  }

  /** The address speaks in a new DTLS session: what was remembered for the old one is dropped. */
  private enterSession(peer: PeerState, session: object | undefined): void {
    this.block1.drop(peer);
    const change = peer.enterSession(session);
    if (peer.table !== PeerTable.Detached) this.dedupBytes += change;
  }

  /** Drops a peer's state (no exchange of ours is in flight with a newcomer or an idle peer). */
  private forget(peer: PeerState): void {
    const key = peerKey(peer.address, peer.port);
    if (peer.table === PeerTable.Newcomer) this.newcomers.delete(key);
    else if (peer.table === PeerTable.Main) this.peers.delete(key);
    else return;
    this.dedupBytes -= peer.dedupBytes;
    this.block1.drop(peer);
    peer.table = PeerTable.Detached;
  }

  /**
   * Once per exchange lifetime: ages every peer's dedup memory, drops
   * Block1 transfers left unfinished that long, and forgets idle peers
   * (registered devices excepted: an idle newcomer that is one moves to the
   * table newcomers never reach).
   */
  private sweep(): void {
    const stale = Date.now() - this.transmission.exchangeLifetimeMs;
    for (const table of [this.peers, this.newcomers]) {
      for (const peer of table.values()) {
        this.dedupBytes += peer.rotate();
        if (peer.blockTransfer && peer.blockTransfer.lastAt <= stale) this.block1.drop(peer);
        if (!peer.isIdle()) continue;
        if (!this.options.retainPeer?.(peer)) this.forget(peer);
        else if (table === this.newcomers) this.promote(peer);
      }
    }
  }

  private initialAckTimeoutMs(): number {
    const { ackTimeoutMs, ackRandomFactor } = this.transmission;
    return ackTimeoutMs * (1 + Math.random() * (ackRandomFactor - 1));
  }

  /** MAX_TRANSMIT_WAIT of RFC 7252 section 4.8.2. */
  private maxTransmitWaitMs(): number {
    const { ackTimeoutMs, ackRandomFactor, maxRetransmit } = this.transmission;
    return ackTimeoutMs * (2 ** (maxRetransmit + 1) - 1) * ackRandomFactor;
  }
}

/** A response whose payload is a short human-readable reason (RFC 7252 section 5.5.2). */
export function diagnostic(responseCode: number, reason: string): OutgoingResponse {
  return { code: responseCode, payload: Buffer.from(shortReason(reason), 'utf8') };
}

/** A reason cut to a few lines' worth, so that no error echoes unbounded input (a 60 KB path) to a peer, a flow or a log. */
function shortReason(reason: string): string {
  if (reason.length <= MAX_REASON_CHARS) return reason;
  // Not between the two halves of a surrogate pair.
  const cut = MAX_REASON_CHARS - (/[\ud800-\udbff]/.test(reason[MAX_REASON_CHARS - 2]) ? 2 : 1);
  return `${reason.slice(0, cut)}…`;
}

/** At most `bytes` bytes of UTF-8 text, not cut inside a character. */
function utf8Prefix(text: Buffer, bytes: number): Buffer {
  if (bytes <= 0) return EMPTY;
  if (bytes >= text.length) return text;
  let end = bytes;
  while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
  return text.subarray(0, end);
}

/** An answer held back until its address is verified: sent once then (the client retransmits its request if it is lost), dropped at the deadline. */
function deferredAnswer(peer: PeerState, datagram: Buffer, deadline: number): Exchange {
  const exchange = acknowledgedExchange(peer, -1, '', datagram, IGNORED, IGNORED);
  exchange.confirmable = false;
  exchange.acknowledged = true;
  exchange.deadline = deadline;
  return exchange;
}

/** The resolve and reject of a ping's exchange: its outcome is handled by the endpoint (settleProbe), without a closure per ping. */
const PROBE = (): void => undefined;
/** Those of an answer held back until its address is verified: nobody waits for them. */
const IGNORED = (): void => undefined;

/** A confirmable message that is done when acknowledged, with no response to wait for: a notification we send, a ping. */
function acknowledgedExchange(peer: PeerState, messageId: number, tokenKey: string, datagram: Buffer, resolve: () => void, reject: (error: Error) => void): Exchange {
  return {
    peer,
    messageId,
    tokenKey,
    datagram,
    confirmable: true,
    acknowledged: false,
    finished: false,
    ackOnly: true,
    transmissions: 0,
    deadline: Infinity,
    timeoutMs: Infinity,
    dueAt: Infinity,
    ackTimeoutMs: 0,
    dueNext: undefined,
    duePrev: undefined,
    resolve,
    reject,
  };
}

function emptyMessage(type: MessageType, messageId: number): Buffer {
  return Buffer.from([0x40 | (type << 4), EMPTY_CODE, messageId >> 8, messageId & 0xff]);
}

export function describeResponse(message: CoapMessage): string {
  const reason = message.payload.length > 0 && codeClass(message.code) >= 4 ? ` ${message.payload.toString('utf8')}` : '';
  return `${formatCode(message.code)}${reason}`;
}
