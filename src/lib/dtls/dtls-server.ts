import type dgram from 'node:dgram';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TypedEmitter } from '../typed-emitter';
import { Peer, PeerKey, peerKey } from '../coap/peer';
import { DEFAULT_RECEIVE_BUFFER, DatagramReceiver, DatagramTransport, bindUdp, boundAddress } from '../coap/transport';
import { DtlsDecodeError } from './bytes';
import { AlertDescription, AlertLevel, ContentType, HandshakeType } from './constants';
import { DtlsAlertError, DtlsCredentials, PeerIdentity } from './credentials';
import { encodeHandshake, parseFragments } from './handshake-framing';
import { ClientHello, helloVerifyRequest, parseClientHello } from './hello-messages';
import { DtlsRecord, encodeRecord, parseRecords } from './record';
import { CIPHER_SUITES, CipherSuite } from './record-protection';
import { ConnectionHost, ServerConnection } from './server-connection';

export interface DtlsServerOptions {
  address: string;
  port: number;
  credentials: DtlsCredentials;
  /** Cipher suite names allowed, in the server's order of preference; all that the credentials can serve by default. */
  cipherSuites?: string[];
  /** Hand out connection ids (RFC 9146) to clients that ask, so they keep their session when their address changes (default true). */
  connectionIds?: boolean;
  /** Established connections kept at most; beyond, the longest idle one makes room (default 100,000). */
  maxConnections?: number;
  /** Handshakes in progress at most (after the cookie exchange); further ClientHellos are dropped (default 1,000). */
  maxHandshakes?: number;
  /** Connections silent this long are forgotten (default 24 h; queue-mode devices sleep long). */
  idleTimeoutMs?: number;
  /** When the table is full, a connection silent this long gives its place to a new client (default 60 s). */
  evictIdleAfterMs?: number;
  /** Refuse clients without the extended_master_secret extension (RFC 7627; default false, as many devices lack it). */
  requireExtendedMasterSecret?: boolean;
  receiveBufferBytes?: number;
}

export interface DtlsSessionInfo {
  peer: Peer;
  identity: PeerIdentity;
  cipherSuite: string;
  connectionId: boolean;
}

export type DtlsServerEvents = {
  established: [session: DtlsSessionInfo];
  /** A handshake that did not complete, with the reason (never a key). */
  handshakeFailed: [peer: Peer, reason: string];
  closed: [peer: Peer, identity: PeerIdentity | undefined, reason: string];
  /** A connection followed its client to a new address by connection id. */
  moved: [from: Peer, to: Peer, identity: PeerIdentity];
  /** Datagrams dropped before any connection: malformed, unknown connection id, over a limit. */
  dropped: [peer: Peer, reason: string];
};

const CID_LENGTH = 8;
const COOKIE_LENGTH = 16;
const COOKIE_SECRET_LIFETIME_MS = 5 * 60_000;
const SWEEP_INTERVAL_MS = 30_000;

/**
 * A DTLS 1.2 server on one UDP socket: stateless cookie exchange, then one
 * ServerConnection per client address (or connection id), limited in number
 * and evicted when idle.
 */
export class DtlsServer extends TypedEmitter<DtlsServerEvents> implements ConnectionHost, DatagramTransport {
  readonly scheme = 'coaps';
  readonly credentials: DtlsCredentials;
  readonly suites: readonly CipherSuite[];
  readonly requireExtendedMasterSecret: boolean;
  private socket?: dgram.Socket;
  private readonly connections = new Map<PeerKey, ServerConnection>();
  private readonly handshakes = new Map<PeerKey, ServerConnection>();
  private readonly byCid = new Map<string, ServerConnection>();
  private cookieSecrets = [randomBytes(32), randomBytes(32)];
  private cookieRotated = Date.now();
  private sweepTimer?: NodeJS.Timeout;
  private receiveData?: DatagramReceiver;
  private readonly maxConnections: number;
  private readonly maxHandshakes: number;
  private readonly idleTimeoutMs: number;
  private readonly evictIdleAfterMs: number;
  private readonly cidLength: number;

  constructor(private readonly options: DtlsServerOptions) {
    super();
    this.credentials = options.credentials;
    this.requireExtendedMasterSecret = options.requireExtendedMasterSecret ?? false;
    this.maxConnections = options.maxConnections ?? 100_000;
    this.maxHandshakes = options.maxHandshakes ?? 1_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 24 * 3600_000;
    this.evictIdleAfterMs = options.evictIdleAfterMs ?? 60_000;
    this.cidLength = options.connectionIds === false ? 0 : CID_LENGTH;
    const allowed = options.cipherSuites ?? CIPHER_SUITES.map((suite) => suite.name);
    for (const name of allowed) if (!CIPHER_SUITES.some((suite) => suite.name === name)) throw new Error(`unsupported cipher suite ${name}`);
    this.suites = CIPHER_SUITES.filter(
      (suite) =>
        allowed.includes(suite.name) && (suite.keyExchange === 'psk' ? Boolean(this.credentials.pskKey) : Boolean(this.credentials.privateKey)),
    );
  }

  /** Binds the socket; application data of every connection goes to receive. */
  async listen(receive: DatagramReceiver, fail: (error: Error) => void): Promise<Peer> {
    const socket = await bindUdp(this.options.address, this.options.port, this.options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER);
    this.socket = socket;
    this.receiveData = receive;
    socket.on('error', fail);
    socket.on('message', (datagram, rinfo) => this.receive(datagram, { address: rinfo.address, port: rinfo.port }));
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(SWEEP_INTERVAL_MS, this.idleTimeoutMs / 2)).unref();
    return boundAddress(socket) as Peer;
  }

  get address(): Peer | undefined {
    return boundAddress(this.socket);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get handshakeCount(): number {
    return this.handshakes.size;
  }

  /** Encrypts and sends application data over the peer's established connection; false when there is none. */
  send(data: Buffer, peer: Peer): boolean {
    return this.connections.get(peerKey(peer.address, peer.port))?.send(data) ?? false;
  }

  identityOf(peer: Peer): PeerIdentity | undefined {
    return this.connections.get(peerKey(peer.address, peer.port))?.identity;
  }

  /** Sends close_notify to every client, then closes the socket. */
  close(): Promise<void> {
    clearInterval(this.sweepTimer);
    for (const connection of [...this.connections.values(), ...this.handshakes.values()]) connection.close('server closing');
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  // ConnectionHost

  transmit(datagram: Buffer, peer: Peer): void {
    this.socket?.send(datagram, peer.port, peer.address);
  }

  established(connection: ServerConnection): void {
    const key = peerKey(connection.peer.address, connection.peer.port);
    if (this.handshakes.get(key) === connection) this.handshakes.delete(key);
    const previous = this.connections.get(key);
    // A client that handshakes again from the same address has lost its old connection (RFC 6347 4.2.8).
    if (previous && previous !== connection) this.discard(previous, 'replaced by a new handshake from the same address');
    this.connections.set(key, connection);
    this.emit('established', {
      peer: connection.peer,
      identity: connection.identity as PeerIdentity,
      cipherSuite: connection.suite.name,
      connectionId: connection.cid !== undefined,
    });
  }

  failed(connection: ServerConnection, reason: string): void {
    this.forget(connection);
    this.emit('handshakeFailed', connection.peer, reason);
  }

  data(connection: ServerConnection, data: Buffer): void {
    this.receiveData?.(data, connection.peer);
  }

  closed(connection: ServerConnection, reason: string): void {
    this.forget(connection);
    this.emit('closed', connection.peer, connection.identity, reason);
  }

  moved(connection: ServerConnection, from: Peer): void {
    const oldKey = peerKey(from.address, from.port);
    const newKey = peerKey(connection.peer.address, connection.peer.port);
    const table = connection.phase === 'established' ? this.connections : this.handshakes;
    if (table.get(oldKey) === connection) table.delete(oldKey);
    const displaced = table.get(newKey);
    if (displaced && displaced !== connection) this.discard(displaced, 'its address was taken over by another connection');
    table.set(newKey, connection);
    if (connection.phase === 'established') this.emit('moved', from, connection.peer, connection.identity as PeerIdentity);
  }

  private receive(datagram: Buffer, peer: Peer): void {
    const { records, error } = parseRecords(datagram, this.cidLength);
    if (error) this.emit('dropped', peer, error);
    const key = peerKey(peer.address, peer.port);
    for (const record of records) {
      if (record.type === ContentType.Tls12Cid) {
        const connection = this.byCid.get((record.cid as Buffer).toString('hex'));
        if (connection) connection.handleRecord(record, peer);
        else this.emit('dropped', peer, 'unknown connection id');
        continue;
      }
      if (record.epoch === 0 && record.type === ContentType.Handshake && record.fragment[0] === HandshakeType.ClientHello) {
        this.clientHello(record, peer, key);
        continue;
      }
      const handshake = this.handshakes.get(key);
      const connection = this.connections.get(key);
      const target = record.epoch === 0 ? (handshake ?? connection) : handshake?.expectsEpochOne ? handshake : (connection ?? handshake);
      target?.handleRecord(record, peer);
    }
  }

  /** RFC 6347 4.2.1: no state until the client proves its address with our cookie. */
  private clientHello(record: DtlsRecord, peer: Peer, key: PeerKey): void {
    const handshake = this.handshakes.get(key);
    let fragment;
    let hello: ClientHello;
    try {
      const fragments = parseFragments(record.fragment);
      if (fragments.length !== 1) throw new DtlsDecodeError('ClientHello split over several fragments');
      fragment = fragments[0];
      if (fragment.offset !== 0 || fragment.data.length !== fragment.length) throw new DtlsDecodeError('fragmented ClientHello');
      hello = parseClientHello(fragment.data);
    } catch (error) {
      this.emit('dropped', peer, `malformed ClientHello: ${(error as Error).message}`);
      return;
    }
    // The client repeating the ClientHello of a handshake in progress: our flight was lost.
    if (handshake?.isHelloOf(hello)) {
      handshake.handleRecord(record, peer);
      return;
    }
    if (!this.cookieValid(hello, peer)) {
      const verify = encodeHandshake({ type: HandshakeType.HelloVerifyRequest, messageSeq: fragment.messageSeq, body: helloVerifyRequest(this.cookie(hello, peer, 0)) });
      // The HelloVerifyRequest reuses the ClientHello's record sequence number, so the server keeps no state (RFC 6347 4.2.1).
      this.transmit(encodeRecord(ContentType.Handshake, 0, record.sequence, verify), peer);
      return;
    }
    if (this.handshakes.size >= this.maxHandshakes && !handshake) {
      this.emit('dropped', peer, `over ${this.maxHandshakes} handshakes in progress`);
      return;
    }
    if (this.connections.size + this.handshakes.size >= this.maxConnections && !this.connections.has(key) && !handshake && !this.evictIdlest()) {
      this.emit('dropped', peer, `connection table full (${this.maxConnections}) and no connection idle for ${this.evictIdleAfterMs} ms`);
      return;
    }
    if (handshake) this.discard(handshake, 'the client started over');
    const cid = this.cidLength > 0 ? this.newCid() : undefined;
    try {
      const connection = new ServerConnection(this, peer, hello, { type: HandshakeType.ClientHello, messageSeq: fragment.messageSeq, body: fragment.data }, record.sequence, cid);
      this.handshakes.set(key, connection);
      if (connection.cid) this.byCid.set(connection.cid.toString('hex'), connection);
    } catch (error) {
      const alert = error instanceof DtlsAlertError ? error.alert : AlertDescription.DecodeError;
      this.transmit(encodeRecord(ContentType.Alert, 0, record.sequence, Buffer.from([AlertLevel.Fatal, alert])), peer);
      this.emit('handshakeFailed', peer, (error as Error).message);
    }
  }

  /** Bound to the client's address and port (RFC 6347 section 4.2.1). */
  private cookie(hello: ClientHello, peer: Peer, generation: number): Buffer {
    return createHmac('sha256', this.cookieSecrets[generation]).update(`${peer.address}:${peer.port}`).update(hello.cookieInput).digest().subarray(0, COOKIE_LENGTH);
  }

  private cookieValid(hello: ClientHello, peer: Peer): boolean {
    if (hello.cookie.length !== COOKIE_LENGTH) return false;
    return [0, 1].some((generation) => timingSafeEqual(hello.cookie, this.cookie(hello, peer, generation)));
  }

  private newCid(): Buffer {
    for (;;) {
      const cid = randomBytes(this.cidLength);
      if (!this.byCid.has(cid.toString('hex'))) return cid;
    }
  }

  private forget(connection: ServerConnection): void {
    const key = peerKey(connection.peer.address, connection.peer.port);
    if (this.handshakes.get(key) === connection) this.handshakes.delete(key);
    if (this.connections.get(key) === connection) this.connections.delete(key);
    if (connection.cid && this.byCid.get(connection.cid.toString('hex')) === connection) this.byCid.delete(connection.cid.toString('hex'));
  }

  /** Drops a connection without telling the client (it has moved on). */
  private discard(connection: ServerConnection, reason: string): void {
    const identity = connection.identity;
    const wasEstablished = connection.phase === 'established';
    connection.abandon();
    this.forget(connection);
    if (wasEstablished) this.emit('closed', connection.peer, identity, reason);
  }

  /** Makes room by forgetting the longest-silent connection, if it has been silent long enough; true when it did. */
  private evictIdlest(): boolean {
    let idlest: ServerConnection | undefined;
    for (const connection of this.connections.values()) if (!idlest || connection.lastActivity < idlest.lastActivity) idlest = connection;
    if (!idlest || Date.now() - idlest.lastActivity < this.evictIdleAfterMs) return false;
    this.discard(idlest, 'evicted to make room (connection table full)');
    return true;
  }

  private sweep(): void {
    const now = Date.now();
    if (now - this.cookieRotated >= COOKIE_SECRET_LIFETIME_MS) {
      this.cookieSecrets = [randomBytes(32), this.cookieSecrets[0]];
      this.cookieRotated = now;
    }
    for (const connection of this.connections.values()) {
      if (now - connection.lastActivity >= this.idleTimeoutMs) this.discard(connection, 'idle timeout');
    }
  }
}
