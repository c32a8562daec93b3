import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { DEFAULT_TRANSMISSION, EMPTY_CODE, OptionNumber, ResponseCode, codeClass, formatCode } from './codes';
import { CoapClosedError, CoapNoConnectionError, CoapRequestError, CoapResponseError, CoapTimeoutError } from './errors';
import type { CoapMessage } from './message';
import { findOption, unrecognizedCriticalOption } from './options';
import { handleRequest, incomingRequest } from './incoming';
import { NotificationHandler, Peer, PeerKey, peerKey } from './peer';
import { Block1Budget, assembleBlock1 } from './block1-assembly';
import { StreamConnection, StreamExchange, limitsOf } from './stream-connection';
import { MalformedDatagram, MessageTap, OutgoingRequest, OutgoingResponse, RequestHandler, RequestOptions, TICK_MASK, diagnostic } from './endpoint';
import type { MessageLayer, StreamBlockLimits } from './message-layer';
import { FrameError, FrameReader, StreamMessage, decodeFrame, encodeFrame } from './tcp-framing';
import { Signal, SignalError, abortSignal, checkSignalOptions, csmSignal, pingSignal, pongSignal, readCsm, releaseSignal } from './signals';
import type { StreamHost, StreamTransport } from './stream-transport';
import type { PeerIdentity } from '../dtls/credentials';
import { randomText } from '../random-text';
import { DueList } from './due-list';

export interface StreamEndpointOptions {
  transport: StreamTransport;
  /** The largest message taken, announced as Max-Message-Size in our CSM (default 8,192 bytes); a larger one aborts the connection. */
  maxMessageSize?: number;
  /** Largest request body accepted through Block1 (default 64 KiB). */
  maxRequestBodyBytes?: number;
  /** Connections open at once (default 10,000): when full, the one silent longest, if for evictIdleAfterMs, makes room; otherwise a new one is refused. */
  maxConnections?: number;
  /** Connections from one IP address that have not completed their TLS handshake and CSM (default 100); further ones are refused. */
  maxOpeningPerAddress?: number;
  /** Connections silent this long are released (default 24 h: queue-mode devices sleep long). */
  idleTimeoutMs?: number;
  /** When the table is full, a connection silent this long gives its place to a new one (default 60 s). */
  evictIdleAfterMs?: number;
  /** A message begun, and the peer's first CSM (and over TLS the handshake), must be complete within this (default 10 s): slow senders are aborted. */
  frameTimeoutMs?: number;
  /** Bytes all connections may hold in unfinished messages and Block1 transfers together (default 64 MiB); the connection that goes beyond is aborted. */
  maxHeldBytes?: number;
  /** Bytes waiting to be written to one peer (default 1 MiB): a peer that does not read its answers is aborted. */
  maxWriteBacklogBytes?: number;
  /** A request's time limit when it gives none (default 93 s, as MAX_TRANSMIT_WAIT over UDP). */
  requestTimeoutMs?: number;
}

const DEFAULT_MAX_MESSAGE_SIZE = 8192;
const DEFAULT_MAX_BODY = 64 * 1024;
const DEFAULT_MAX_CONNECTIONS = 10_000;
const DEFAULT_MAX_OPENING_PER_ADDRESS = 100;
const DEFAULT_IDLE_TIMEOUT_MS = 24 * 3600_000;
const DEFAULT_EVICT_IDLE_AFTER_MS = 60_000;
const DEFAULT_FRAME_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_WRITE_BACKLOG = 1024 * 1024;
const CLOCK_MS = 20;
/** Connections are looked at for their time limits this often. */
const SWEEP_MS = 1000;

/** Milliseconds between two values of ticks (right for spans shorter than 12 days). */
function ticksSince(since: number, now: number): number {
  return (now - since) & TICK_MASK;
}

/** Counts the connections of one address still opening (TLS handshake, first CSM). */
interface Opening {
  count: number;
}


/**
 * CoAP over TCP or TLS (RFC 8323) on one listening socket (or, as a client,
 * one connection): framing with lengths, CSM, Ping/Pong, Release and Abort
 * signals, requests matched by token per connection (no message ids,
 * acknowledgements or deduplication: the stream is reliable), notifications
 * on the connection of their observation, and BERT. Bounded: connections in
 * all and opening per address, message size, time to complete a message,
 * bytes held in unfinished messages and Block1 transfers, bytes waiting to
 * be written, idle time.
 */
export class StreamEndpoint extends EventEmitter implements MessageLayer, StreamHost {
  readonly transport: StreamTransport;
  readonly reliable = true;
  ticks = Date.now() & TICK_MASK;
  private readonly connections = new Map<PeerKey, StreamConnection>();
  private readonly openingByAddress = new Map<string, Opening>();
  /** Admitted sockets not yet ready (over TLS: handshaking), by remote address and port: what takes each out of its address's opening count, and its deadline. */
  private readonly openings = new Map<PeerKey, { socket: net.Socket; settle: () => void; timer: NodeJS.Timeout }>();
  /** Sockets admitted and not closed, connections or handshakes. */
  private open = 0;
  private held = 0;
  private readonly due = new DueList<StreamExchange>();
  private clock?: NodeJS.Timeout;
  private sinceSweep = 0;
  private listening = false;
  private closed = false;
  /** Sees every frame in and out while set (the console's message log); one check per frame otherwise. */
  tap: MessageTap | undefined = undefined;
  private readonly maxMessageSize: number;
  /** Bodies through Block1 (or BERT), each at most maxRequestBodyBytes; what they hold together is in the connections' held bytes. */
  private readonly block1: Block1Budget;
  private readonly maxConnections: number;
  private readonly maxOpeningPerAddress: number;
  private readonly idleTimeoutMs: number;
  private readonly evictIdleAfterMs: number;
  private readonly frameTimeoutMs: number;
  private readonly maxHeldBytes: number;
  private readonly maxWriteBacklog: number;
  private readonly requestTimeoutMs: number;

  constructor(
    options: StreamEndpointOptions,
    private readonly handler: RequestHandler,
  ) {
    super();
    this.transport = options.transport;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.block1 = new Block1Budget(options.maxRequestBodyBytes ?? DEFAULT_MAX_BODY, Infinity);
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxOpeningPerAddress = options.maxOpeningPerAddress ?? DEFAULT_MAX_OPENING_PER_ADDRESS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.evictIdleAfterMs = options.evictIdleAfterMs ?? DEFAULT_EVICT_IDLE_AFTER_MS;
    this.frameTimeoutMs = options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS;
    this.maxHeldBytes = options.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    this.maxWriteBacklog = options.maxWriteBacklogBytes ?? DEFAULT_MAX_WRITE_BACKLOG;
    const { ackTimeoutMs, ackRandomFactor, maxRetransmit } = DEFAULT_TRANSMISSION;
    this.requestTimeoutMs = options.requestTimeoutMs ?? ackTimeoutMs * (2 ** (maxRetransmit + 1) - 1) * ackRandomFactor;
  }

  get scheme(): 'coap+tcp' | 'coaps+tcp' {
    return this.transport.scheme;
  }

  get address(): Peer | undefined {
    return this.transport.address;
  }

  /** Open connections (established or not). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** What the endpoint's bounded memories hold now, for tests and the README's figures. */
  get usage(): { connections: number; open: number; heldBytes: number } {
    return { connections: this.connections.size, open: this.open, heldBytes: this.held };
  }

  async listen(): Promise<Peer> {
    const bound = await this.transport.open(this);
    this.listening = true;
    this.ticks = Date.now() & TICK_MASK;
    this.clock = setInterval(() => this.tick(), CLOCK_MS).unref();
    return bound;
  }

  /** Releases every connection (RFC 8323 section 5.5) and stops listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.clock);
    for (const connection of [...this.connections.values()]) this.release(connection, 'the endpoint was closed', new CoapClosedError());
    for (const opening of this.openings.values()) opening.socket.destroy();
    this.listening = false;
    await this.transport.close();
  }

  // StreamHost: what the transport hands over.

  admit(socket: net.Socket): boolean {
    if (this.closed) return false;
    const address = socket.remoteAddress ?? '';
    const opening = this.openingByAddress.get(address);
    if (opening && opening.count >= this.maxOpeningPerAddress) {
      this.emit('malformed', { peer: { address, port: socket.remotePort ?? 0 }, reason: `${this.maxOpeningPerAddress} connections from ${address} are still opening: connection refused` } satisfies MalformedDatagram);
      return false;
    }
    if (this.open >= this.maxConnections && !this.evictIdle()) {
      this.emit('malformed', { peer: { address, port: socket.remotePort ?? 0 }, reason: `${this.maxConnections} connections are open: connection refused` } satisfies MalformedDatagram);
      return false;
    }
    this.open++;
    const counter = opening ?? { count: 0 };
    counter.count++;
    if (!opening) this.openingByAddress.set(address, counter);
    let counted = true;
    const settle = () => {
      if (!counted) return;
      counted = false;
      if (--counter.count === 0 && this.openingByAddress.get(address) === counter) this.openingByAddress.delete(address);
    };
    // Until it is ready (over TLS: its handshake done) it has the time a message has, whether or not it sends anything.
    const timer = setTimeout(() => socket.destroy(), this.frameTimeoutMs).unref();
    // Settled at its first CSM (see establish) or when it closes, whichever comes first; found again by address and port, as a TLS socket wraps this one.
    const key = peerKey(address, socket.remotePort ?? 0);
    const entry = { socket, settle, timer };
    this.openings.set(key, entry);
    socket.once('close', () => {
      this.open--;
      settle();
      clearTimeout(timer);
      if (this.openings.get(key) === entry) this.openings.delete(key);
    });
    return true;
  }

  ready(socket: net.Socket, peer: Peer, identity: PeerIdentity | undefined): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const key = peerKey(peer.address, peer.port);
    this.connections.get(key)?.socket.destroy();
    const opening = this.openings.get(key);
    this.openings.delete(key);
    if (opening) clearTimeout(opening.timer);
    const connection = new StreamConnection(socket, peer, key, identity, this.ticks, opening?.settle);
    connection.reader = new FrameReader(this.maxMessageSize, (frame) => this.receiveFrame(connection, frame));
    this.connections.set(key, connection);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receiveBytes(connection, chunk));
    socket.on('error', (error: Error) => this.drop(connection, error.message));
    socket.on('close', () => this.drop(connection, 'the connection closed'));
    // Our CSM goes first (RFC 8323 section 5.3): the largest message we take, and BERT.
    this.write(connection, csmSignal({ maxMessageSize: this.maxMessageSize, bert: true }));
  }

  handshakeFailed(peer: Peer, reason: string): void {
    this.emit('handshakeFailed', peer, reason);
  }

  error(error: Error): void {
    this.emit('socketError', error);
  }

  // MessageLayer.

  identityOf(peer: Peer): PeerIdentity | undefined {
    return this.connections.get(peerKey(peer.address, peer.port))?.identity;
  }

  blockLimits(peer: Peer): StreamBlockLimits | undefined {
    return this.connections.get(peerKey(peer.address, peer.port))?.limits;
  }

  /** Whether a connection with the peer is open. */
  isConnected(peer: Peer): boolean {
    const connection = this.connections.get(peerKey(peer.address, peer.port));
    return connection !== undefined && !connection.closed;
  }

  request(peer: Peer, request: OutgoingRequest, options: RequestOptions = {}): Promise<CoapMessage> {
    if (this.closed || !this.listening) return Promise.reject(new CoapClosedError());
    const connection = this.connections.get(peerKey(peer.address, peer.port));
    if (!connection || connection.closed) return Promise.reject(new CoapNoConnectionError(`no connection with ${peer.address}:${peer.port}`));
    const tokenKey = options.token ?? randomText(8, 'hex');
    const frame = encodeFrame({ code: request.code, token: Buffer.from(tokenKey, 'hex'), options: request.options ?? [], payload: request.payload ?? EMPTY });
    if (frame.length > connection.settings.maxMessageSize) {
      return Promise.reject(new CoapRequestError(ResponseCode.RequestEntityTooLarge, `a request of ${frame.length} bytes is larger than the ${connection.settings.maxMessageSize} bytes ${connection.label} takes`));
    }
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const exchange: StreamExchange = {
        connection,
        tokenKey,
        deadline: Date.now() + timeoutMs,
        timeoutMs,
        finished: false,
        dueNext: undefined,
        duePrev: undefined,
        resolve,
        reject,
        onNotification: options.onNotification,
      };
      connection.track(exchange);
      this.due.add(exchange);
      this.send(connection, frame);
    });
  }

  /**
   * Sends a notification of an observation we serve (as a device does): a
   * response under the observer's token on the connection. There is nothing
   * to acknowledge over a stream; resolves at once.
   */
  notify(peer: Peer, notification: OutgoingResponse & { token: Buffer }): Promise<number> {
    const connection = this.connections.get(peerKey(peer.address, peer.port));
    if (!connection || connection.closed) return Promise.reject(new CoapNoConnectionError(`no connection with ${peer.address}:${peer.port}`));
    this.write(connection, { code: notification.code, token: notification.token, options: notification.options ?? [], payload: notification.payload ?? EMPTY });
    return Promise.resolve(0);
  }

  /** A Ping (RFC 8323 section 5.4): resolves when the peer's Pong arrives, rejects after timeoutMs. */
  ping(peer: Peer, timeoutMs = 5000): Promise<void> {
    const connection = this.connections.get(peerKey(peer.address, peer.port));
    if (!connection || connection.closed) return Promise.reject(new CoapNoConnectionError(`no connection with ${peer.address}:${peer.port}`));
    const tokenKey = randomText(4, 'hex');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        connection.pings?.delete(tokenKey);
        reject(new CoapTimeoutError(`no Pong from ${connection.label} within ${timeoutMs} ms`));
      }, timeoutMs);
      (connection.pings ??= new Map()).set(tokenKey, (error?: Error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
      this.write(connection, pingSignal(Buffer.from(tokenKey, 'hex')));
    });
  }

  forgetObservation(peer: Peer, tokenKey: string): void {
    this.connections.get(peerKey(peer.address, peer.port))?.removeObserver(tokenKey);
  }

  /** Over a stream, an observation lives on its connection: adopted only while that connection is open. */
  adoptObservation(peer: Peer, tokenKey: string, handler: NotificationHandler): void {
    this.connections.get(peerKey(peer.address, peer.port))?.addObserver(tokenKey, handler);
  }

  moveObservation(from: Peer, to: Peer, tokenKey: string): void {
    const handler = this.connections.get(peerKey(from.address, from.port))?.removeObserver(tokenKey);
    if (handler) this.connections.get(peerKey(to.address, to.port))?.addObserver(tokenKey, handler);
  }

  // Receiving.

  private receiveBytes(connection: StreamConnection, chunk: Buffer): void {
    if (connection.closed) return;
    connection.lastActivity = this.ticks;
    const reader = connection.reader;
    const wasMidFrame = reader.midFrame;
    const frames = connection.frames;
    try {
      reader.push(chunk);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.abort(connection, error.message);
      return;
    }
    if (connection.closed) return;
    if (reader.midFrame && (!wasMidFrame || connection.frames !== frames)) connection.frameStartedAt = this.ticks;
    const held = connection.heldBytes();
    this.held += held - connection.held;
    connection.held = held;
    if (this.held > this.maxHeldBytes) this.abort(connection, `the server holds its limit of ${this.maxHeldBytes} bytes of unfinished messages`);
  }

  private receiveFrame(connection: StreamConnection, frame: Buffer): void {
    if (connection.closed) return;
    connection.frames++;
    let message: CoapMessage;
    try {
      message = decodeFrame(frame);
    } catch (error) {
      this.rejectMalformed(connection, frame, (error as Error).message);
      return;
    }
    if (this.tap !== undefined) this.tap.received(message, connection.peer.address, connection.peer.port);
    const cls = codeClass(message.code);
    if (!connection.established && message.code !== Signal.Csm) {
      this.abort(connection, `a CSM must come first, not ${formatCode(message.code)} (RFC 8323 section 5.3)`);
      return;
    }
    if (message.code === EMPTY_CODE) return; // keep-alive, ignored (RFC 8323 section 3.4)
    if (cls === 7) this.receiveSignal(connection, message);
    else if (cls === 0) this.receiveRequest(connection, message);
    else this.receiveResponse(connection, message);
  }

  /** A message that does not decode but whose framing held: a request with a readable token gets 4.00, anything else is dropped. */
  private rejectMalformed(connection: StreamConnection, frame: Buffer, reason: string): void {
    this.emit('malformed', { peer: { ...connection.peer }, reason } satisfies MalformedDatagram);
    if (!connection.established) {
      this.abort(connection, `a CSM must come first: ${reason}`);
      return;
    }
    const first = frame[0];
    const nibble = first >> 4;
    const codeAt = nibble < 13 ? 1 : nibble === 13 ? 2 : nibble === 14 ? 3 : 5;
    const tokenLength = first & 0x0f;
    if (codeClass(frame[codeAt]) !== 0 || frame[codeAt] === EMPTY_CODE || codeAt + 1 + tokenLength > frame.length) return;
    this.write(connection, { code: ResponseCode.BadRequest, token: frame.subarray(codeAt + 1, codeAt + 1 + tokenLength), options: [], payload: Buffer.from(reason.slice(0, 160), 'utf8') });
  }

  private receiveSignal(connection: StreamConnection, message: CoapMessage): void {
    try {
      switch (message.code) {
        case Signal.Csm:
          connection.settings = readCsm(message, connection.settings);
          connection.limits = limitsOf(connection.settings);
          if (!connection.established) this.establish(connection);
          return;
        case Signal.Ping:
          checkSignalOptions(message);
          this.write(connection, pongSignal(message));
          return;
        case Signal.Pong: {
          checkSignalOptions(message);
          const tokenKey = message.token.toString('hex');
          const waiter = connection.pings?.get(tokenKey);
          connection.pings?.delete(tokenKey);
          waiter?.();
          return;
        }
        case Signal.Release:
          checkSignalOptions(message);
          this.release(connection, 'the peer released the connection');
          return;
        case Signal.Abort:
          this.drop(connection, `the peer aborted the connection${message.payload.length > 0 ? `: ${message.payload.toString('utf8').slice(0, 160)}` : ''}`);
          connection.socket.destroy();
          return;
        default:
          this.emit('malformed', { peer: { ...connection.peer }, reason: `unknown signal ${formatCode(message.code)} ignored` } satisfies MalformedDatagram);
      }
    } catch (error) {
      if (!(error instanceof SignalError)) throw error;
      this.abort(connection, error.message, error.badOption);
    }
  }

  private establish(connection: StreamConnection): void {
    connection.established = true;
    connection.settleOpening?.();
    connection.settleOpening = undefined;
    this.emit('connected', { ...connection.peer }, connection.identity);
  }

  private receiveResponse(connection: StreamConnection, message: CoapMessage): void {
    const tokenKey = message.token.toString('hex');
    const critical = unrecognizedCriticalOption(message.options);
    if (critical !== undefined) {
      // No Reset over a stream: whoever waits is told, an observation it belonged to ends (RFC 7252 section 5.4.1).
      const reason = `response carries the unrecognized critical option ${critical}`;
      this.emit('malformed', { peer: { ...connection.peer }, reason } satisfies MalformedDatagram);
      const exchange = connection.exchange(tokenKey);
      if (exchange) this.finish(exchange, new CoapResponseError(`${connection.label}: ${reason}`));
      else connection.removeObserver(tokenKey)?.refused(reason);
      return;
    }
    const exchange = connection.exchange(tokenKey);
    if (exchange) {
      this.finish(exchange, message);
      return;
    }
    const observer = connection.observer(tokenKey);
    if (observer) {
      observer.notified(message);
      return;
    }
    this.emit('malformed', { peer: { ...connection.peer }, reason: `response ${formatCode(message.code)} to no request of ours (token ${tokenKey || 'empty'}) dropped` } satisfies MalformedDatagram);
  }

  private receiveRequest(connection: StreamConnection, message: CoapMessage): void {
    const answer = (response: OutgoingResponse) => this.respond(connection, message, response);
    const critical = unrecognizedCriticalOption(message.options);
    if (critical !== undefined) {
      answer(this.errorResponse(new CoapRequestError(ResponseCode.BadOption, `unrecognized critical option ${critical}`), connection));
      return;
    }
    const assembly = assembleBlock1(connection, message, this.block1);
    if (assembly.response) {
      answer(assembly.response);
      return;
    }
    const request = incomingRequest(connection.peer, message, assembly.payload, connection.identity);
    handleRequest(this.handler, request, assembly.block1Option, answer, (error) => this.errorResponse(error, connection));
  }

  private errorResponse(error: unknown, connection: StreamConnection): OutgoingResponse {
    if (error instanceof CoapRequestError) {
      this.emit('malformed', { peer: { ...connection.peer }, reason: `${error}` } satisfies MalformedDatagram);
      return diagnostic(error.responseCode, error.message);
    }
    this.emit('handlerError', error);
    return diagnostic(ResponseCode.InternalServerError, 'internal server error');
  }

  /** Answers on the connection the request came in, if it is still open; never more than the peer takes. */
  private respond(connection: StreamConnection, request: CoapMessage, response: OutgoingResponse): void {
    if (connection.closed) return;
    let frame = encodeFrame({ code: response.code, token: request.token, options: response.options ?? [], payload: response.payload ?? EMPTY });
    if (frame.length > connection.settings.maxMessageSize) {
      const reason = `the answer of ${frame.length} bytes is larger than your Max-Message-Size of ${connection.settings.maxMessageSize}`;
      frame = encodeFrame({ code: ResponseCode.InternalServerError, token: request.token, options: [], payload: Buffer.from(reason, 'utf8') });
    }
    this.send(connection, frame);
  }

  // Sending and closing.

  private write(connection: StreamConnection, message: StreamMessage): void {
    this.send(connection, encodeFrame(message));
  }

  private send(connection: StreamConnection, frame: Buffer): void {
    if (connection.closed) return;
    connection.socket.write(frame);
    if (this.tap !== undefined) this.tap.sent(frame, connection.peer.address, connection.peer.port);
    if (connection.socket.writableLength > this.maxWriteBacklog) {
      this.drop(connection, `${connection.socket.writableLength} bytes wait to be written: the peer does not read`);
      connection.socket.destroy();
    }
  }

  /** Ends a connection with Abort and its reason (RFC 8323 section 5.6). */
  private abort(connection: StreamConnection, reason: string, badOption?: number): void {
    if (connection.closed) return;
    this.emit('malformed', { peer: { ...connection.peer }, reason: `connection aborted: ${reason}` } satisfies MalformedDatagram);
    this.write(connection, abortSignal(reason, badOption));
    this.drop(connection, reason);
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), 1000).unref();
  }

  /** Ends a connection in order: Release (RFC 8323 section 5.5), then the socket's end. */
  private release(connection: StreamConnection, reason: string, error?: Error): void {
    if (connection.closed) return;
    this.write(connection, releaseSignal());
    this.drop(connection, reason, error);
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), 1000).unref();
  }

  /**
   * Forgets a connection: its requests fail now, its observations end with
   * it (RFC 8323 section 7.2), its bytes leave the budget.
   */
  private drop(connection: StreamConnection, reason: string, error?: Error): void {
    if (connection.closed) return;
    connection.closed = true;
    if (this.connections.get(connection.key) === connection) this.connections.delete(connection.key);
    this.held -= connection.held;
    connection.held = 0;
    this.block1.drop(connection);
    connection.dropObservers();
    const failure = () => error ?? new CoapNoConnectionError(`the connection with ${connection.label} closed: ${reason}`);
    for (const exchange of connection.exchanges()) this.finish(exchange, failure());
    for (const waiter of connection.pings?.values() ?? []) waiter(failure());
    connection.pings = undefined;
    if (connection.established) this.emit('disconnected', { ...connection.peer }, connection.identity, reason);
  }

  private finish(exchange: StreamExchange, outcome: CoapMessage | Error): void {
    if (exchange.finished) return;
    exchange.finished = true;
    this.due.remove(exchange);
    const connection = exchange.connection;
    connection.untrack(exchange);
    if (outcome instanceof Error) {
      exchange.reject(outcome);
      return;
    }
    if (exchange.onNotification && codeClass(outcome.code) === 2 && findOption(outcome.options, OptionNumber.Observe)) {
      connection.addObserver(exchange.tokenKey, exchange.onNotification);
    }
    exchange.resolve(outcome);
  }

  /** When full: the connection silent longest makes room, if it has been silent long enough. */
  private evictIdle(): boolean {
    let oldest: StreamConnection | undefined;
    let oldestIdle = -1;
    for (const connection of this.connections.values()) {
      const idle = ticksSince(connection.lastActivity, this.ticks);
      if (idle > oldestIdle) {
        oldest = connection;
        oldestIdle = idle;
      }
    }
    if (!oldest || oldestIdle < this.evictIdleAfterMs) return false;
    this.release(oldest, `silent for ${Math.round(oldestIdle / 1000)} s, its place taken by a new connection`);
    oldest.socket.destroy();
    return true;
  }

  // The clock: deadlines of exchanges, and the connections' time limits.

  private tick(): void {
    const now = Date.now();
    this.ticks = now & TICK_MASK;
    let exchange = this.due.head;
    while (exchange) {
      const next: StreamExchange | undefined = exchange.dueNext;
      if (exchange.deadline <= now) this.finish(exchange, new CoapTimeoutError(`no response from ${exchange.connection.label} within ${exchange.timeoutMs} ms`));
      exchange = next;
    }
    this.sinceSweep += CLOCK_MS;
    if (this.sinceSweep >= SWEEP_MS) {
      this.sinceSweep = 0;
      this.sweep();
    }
  }

  /** Slow or silent connections: a first CSM or a message that takes too long is aborted, an idle connection released. */
  private sweep(): void {
    for (const connection of [...this.connections.values()]) {
      if (!connection.established && ticksSince(connection.frameStartedAt, this.ticks) > this.frameTimeoutMs) {
        this.abort(connection, `no CSM within ${this.frameTimeoutMs} ms`);
      } else if (connection.reader.midFrame && ticksSince(connection.frameStartedAt, this.ticks) > this.frameTimeoutMs) {
        this.abort(connection, `a message begun ${this.frameTimeoutMs} ms ago is still incomplete`);
      } else if (ticksSince(connection.lastActivity, this.ticks) > this.idleTimeoutMs) {
        this.release(connection, `silent for ${Math.round(this.idleTimeoutMs / 1000)} s`);
      }
    }
  }
}

const EMPTY = Buffer.alloc(0);
