import type dgram from 'node:dgram';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TypedEmitter } from '../typed-emitter';
import { Peer, PeerKey, peerKey } from '../coap/peer';
import { DEFAULT_RECEIVE_BUFFER, DatagramReceiver, DatagramTransport, bindUdp, boundAddress } from '../coap/transport';
import { DtlsDecodeError } from './bytes';
import { AlertDescription, AlertLevel, ContentType, DTLS_1_0, DTLS_1_2, ExtensionType, HandshakeType, RECORD_HEADER_LENGTH } from './constants';
import { DtlsAlertError, DtlsCredentials, PeerIdentity } from './credentials';
import { encodeHandshake, parseFragments } from './handshake-framing';
import { ClientHello, helloVerifyRequest, parseClientHello } from './hello-messages';
import { DtlsRecord, encodeRecord, parseRecords } from './record';
import { CIPHER_SUITES, CipherSuite } from './record-protection';
import { ConnectionHost, ServerConnection } from './server-connection';
import { ConnectionRecord, DtlsSession, SessionCache, stillTrusted } from './session';

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
  /** Handshakes in progress at most (after the cookie exchange); beyond, the least advanced one makes room (default 1,000). */
  maxHandshakes?: number;
  /** Handshakes in progress at most from one IP address; beyond, that address's least advanced one makes room (default 100). */
  maxHandshakesPerAddress?: number;
  /** Sessions kept for resumption (RFC 5246 7.3), the oldest forgotten first (default 100,000; 0 turns resumption off). */
  maxSessions?: number;
  /** How long a session may be resumed after its full handshake (default 24 h). */
  sessionLifetimeMs?: number;
  /** Connections silent this long are forgotten (default 24 h; queue-mode devices sleep long). */
  idleTimeoutMs?: number;
  /** When the table is full, a connection silent this long gives its place to a new client (default 60 s). */
  evictIdleAfterMs?: number;
  /**
   * Resumptions of a cached session answered without the cookie exchange
   * (RFC 6347 4.2.1 allows it), a round trip less for the device, while fewer
   * than this many such handshakes are in progress (default 100; 0: every
   * handshake starts with a cookie). Only a client that names a cached session
   * gets one, and until its Finished it gets at most 3 bytes for each byte it
   * sent (no amplification from a forged address).
   */
  cookielessResumptions?: number;
  /** Refuse clients without the extended_master_secret extension (RFC 7627; default false, as many devices lack it). */
  requireExtendedMasterSecret?: boolean;
  receiveBufferBytes?: number;
  /**
   * Asked for a connection this server does not have when a protected record
   * arrives from an unknown address or with an unknown connection id (one
   * another server instance made, in a cluster): it may restore() it, and
   * the datagrams that waited are handled when the promise settles.
   */
  lookup?: (peer: Peer, cid: Buffer | undefined) => Promise<void>;
}

/** Datagrams held for a lookup per address, lookups in flight at most, and how long an address found nothing for stays unasked. */
const LOOKUP_HELD_DATAGRAMS = 4;
const MAX_LOOKUPS = 1000;
const LOOKUP_MISS_MS = 5000;

export interface DtlsSessionInfo {
  peer: Peer;
  identity: PeerIdentity;
  cipherSuite: string;
  connectionId: boolean;
  /** True for an abbreviated handshake that resumed an earlier session. */
  resumed: boolean;
}

export type DtlsServerEvents = {
  established: [session: DtlsSessionInfo];
  /** A handshake that did not complete or was refused, with the reason (never a key, peer text escaped and cut). */
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
const SESSION_ID_LENGTH = 32;

/** What changed in the connection table since the last call: to save and to delete (ids as DtlsServer.storeId gives them). */
export interface DtlsChanges {
  connections: { id: string; record: ConnectionRecord }[];
  removedConnections: string[];
  sessions: DtlsSession[];
  removedSessions: string[];
}

/**
 * A DTLS 1.2 server on one UDP socket: stateless cookie exchange, then one
 * ServerConnection per client address (or connection id), limited in number
 * and evicted when idle; sessions kept for resumption; the table can be
 * saved and restored (a redeploy, a restart) without the clients noticing.
 */
export class DtlsServer extends TypedEmitter<DtlsServerEvents> implements ConnectionHost, DatagramTransport {
  readonly scheme = 'coaps';
  readonly credentials: DtlsCredentials;
  readonly suites: readonly CipherSuite[];
  readonly requireExtendedMasterSecret: boolean;
  private socket?: dgram.Socket;
  private readonly connections = new Map<PeerKey, ServerConnection>();
  private readonly handshakes = new Map<PeerKey, ServerConnection>();
  /** Handshakes in progress per IP address. */
  private readonly handshakesByAddress = new Map<string, number>();
  private readonly byCid = new Map<string, ServerConnection>();
  private readonly sessions: SessionCache;
  /** Saved connections that ended since the last takeChanges(). */
  private readonly endedConnections = new Set<string>();
  private cookieSecrets = [randomBytes(32), randomBytes(32)];
  private cookieRotated = Date.now();
  private sweepTimer?: NodeJS.Timeout;
  private receiveData?: DatagramReceiver;
  private readonly maxConnections: number;
  private readonly maxHandshakes: number;
  private readonly maxHandshakesPerAddress: number;
  private readonly maxCookieless: number;
  /** Handshakes in progress that started without the cookie exchange. */
  private cookieless = 0;
  readonly idleTimeoutMs: number;
  private readonly evictIdleAfterMs: number;
  private readonly cidLength: number;
  /** Datagrams waiting for a lookup, by the address (or connection id) looked up. */
  private readonly lookingUp = new Map<string, { peer: Peer; datagrams: Buffer[] }>();
  /** Addresses (and connection ids) a lookup found nothing for, until when they are not asked about again. */
  private readonly notFound = new Map<string, number>();

  constructor(private readonly options: DtlsServerOptions) {
    super();
    this.credentials = options.credentials;
    this.requireExtendedMasterSecret = options.requireExtendedMasterSecret ?? false;
    this.maxConnections = options.maxConnections ?? 100_000;
    this.maxHandshakes = options.maxHandshakes ?? 1_000;
    this.maxHandshakesPerAddress = options.maxHandshakesPerAddress ?? 100;
    this.maxCookieless = options.cookielessResumptions ?? 100;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 24 * 3600_000;
    this.evictIdleAfterMs = options.evictIdleAfterMs ?? 60_000;
    this.cidLength = options.connectionIds === false ? 0 : CID_LENGTH;
    this.sessions = new SessionCache(options.maxSessions ?? 100_000, options.sessionLifetimeMs ?? 24 * 3600_000);
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

  get sessionCount(): number {
    return this.sessions.size;
  }

  get sessionLifetimeMs(): number {
    return this.sessions.lifetimeMs;
  }

  /**
   * Lets go of every established connection without a word to its client,
   * whose session goes on after a restore (a redeploy, a restart): close()
   * then has no close_notify to send.
   */
  keepSessions(): void {
    for (const connection of this.connections.values()) connection.abandon();
    this.connections.clear();
    this.byCid.clear();
  }

  /**
   * Lets go of a connection without a word to its client and without
   * reporting it ended: another server instance carries it on.
   */
  release(peer: Peer): void {
    const key = peerKey(peer.address, peer.port);
    const connection = this.connections.get(key);
    if (!connection) return;
    connection.abandon();
    this.connections.delete(key);
    if (connection.cid && this.byCid.get(connection.cid.toString('hex')) === connection) this.byCid.delete(connection.cid.toString('hex'));
  }

  /** Everything is to be saved again at the next takeChanges (the store lost it). */
  markUnsaved(): void {
    for (const connection of this.connections.values()) connection.forgetSaved();
    this.sessions.markAllChanged();
  }

  /** Encrypts and sends application data over the peer's established connection; false when there is none. */
  send(data: Buffer, peer: Peer): boolean {
    return this.connections.get(peerKey(peer.address, peer.port))?.send(data) ?? false;
  }

  identityOf(peer: Peer): PeerIdentity | undefined {
    return this.connections.get(peerKey(peer.address, peer.port))?.identity;
  }

  /**
   * Brings back saved sessions and connections (before listen): those whose
   * identity the credentials no longer admit, or whose suite is no longer
   * allowed, stay out (and are reported as removed at the next takeChanges).
   */
  restore(sessions: DtlsSession[], connections: { id: string; record: ConnectionRecord }[]): { sessions: number; connections: number; refused: number } {
    let refused = 0;
    const admitted = (session: DtlsSession) => this.suites.includes(session.suite) && stillTrusted(session, this.credentials);
    const now = Date.now();
    let restoredSessions = 0;
    for (const session of sessions) {
      if (now - session.createdAt < this.sessions.lifetimeMs && admitted(session)) {
        this.sessions.add(session);
        restoredSessions++;
      } else {
        this.sessions.remove(session.id.toString('hex'));
        refused++;
      }
    }
    let restoredConnections = 0;
    for (const { id, record } of connections) {
      const key = peerKey(record.peer.address, record.peer.port);
      if (now - record.lastActivity >= this.idleTimeoutMs || !admitted(record.session) || this.connections.has(key) || (record.cid && record.cid.length !== this.cidLength)) {
        this.endedConnections.add(id);
        refused++;
        continue;
      }
      const connection = ServerConnection.restore(this, record, record.session.suite);
      this.connections.set(key, connection);
      if (connection.cid) this.byCid.set(connection.cid.toString('hex'), connection);
      restoredConnections++;
    }
    return { sessions: restoredSessions, connections: restoredConnections, refused };
  }

  /** Connections and sessions to save or delete since the last call (a connection is saved again when new, moved, or its saved state got stale). */
  takeChanges(): DtlsChanges {
    const connections: { id: string; record: ConnectionRecord }[] = [];
    for (const connection of this.connections.values()) {
      if (!connection.needsSaving) continue;
      const record = connection.save();
      if (record) connections.push({ id: connection.storeId, record });
    }
    const removedConnections = [...this.endedConnections];
    this.endedConnections.clear();
    const { saved, removed } = this.sessions.takeChanges();
    return { connections, removedConnections, sessions: saved, removedSessions: removed };
  }

  /** Sends close_notify to every client (see keepSessions), then closes the socket. */
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
    this.forgetHandshake(connection);
    const previous = this.connections.get(key);
    // A new handshake from the address of a session, once complete, replaces it (RFC 6347 4.2.8); until then both went on.
    if (previous && previous !== connection) this.discard(previous, 'replaced by a new handshake from the same address');
    this.connections.set(key, connection);
    if (connection.session && !connection.resumed) this.sessions.add(connection.session);
    this.emit('established', {
      peer: connection.peer,
      identity: connection.identity as PeerIdentity,
      cipherSuite: connection.suite.name,
      connectionId: connection.cid !== undefined,
      resumed: connection.resumed,
    });
  }

  failed(connection: ServerConnection, reason: string): void {
    this.forget(connection);
    this.emit('handshakeFailed', connection.peer, reason);
  }

  data(connection: ServerConnection, data: Buffer): void {
    this.receiveData?.(data, connection.peer, connection);
  }

  closed(connection: ServerConnection, reason: string): void {
    this.forget(connection);
    this.emit('closed', connection.peer, connection.identity, reason);
  }

  moved(connection: ServerConnection, from: Peer): void {
    const oldKey = peerKey(from.address, from.port);
    const newKey = peerKey(connection.peer.address, connection.peer.port);
    if (connection.phase !== 'established') {
      // A handshake in progress follows its client by connection id too; its address count moves with it.
      if (this.handshakes.get(oldKey) === connection) {
        this.handshakes.delete(oldKey);
        this.countHandshake(from.address, -1);
      }
      const displaced = this.handshakes.get(newKey);
      if (displaced && displaced !== connection) this.discard(displaced, 'its address was taken over by another connection');
      this.handshakes.set(newKey, connection);
      this.countHandshake(connection.peer.address, 1);
      return;
    }
    if (this.connections.get(oldKey) === connection) this.connections.delete(oldKey);
    const displaced = this.connections.get(newKey);
    if (displaced && displaced !== connection) this.discard(displaced, 'its address was taken over by another connection');
    this.connections.set(newKey, connection);
    this.emit('moved', from, connection.peer, connection.identity as PeerIdentity);
  }

  private receive(datagram: Buffer, peer: Peer, lookedUp = false): void {
    const { records, error } = parseRecords(datagram, this.cidLength);
    if (error) this.emit('dropped', peer, error);
    const key = peerKey(peer.address, peer.port);
    if (this.options.lookup && !lookedUp && this.needsLookup(records, key)) {
      this.lookUp(datagram, peer, key, records);
      return;
    }
    let sawHello = false;
    for (const record of records) {
      if (record.type === ContentType.Tls12Cid) {
        const connection = this.byCid.get((record.cid as Buffer).toString('hex'));
        if (connection) connection.handleRecord(record, peer);
        else this.emit('dropped', peer, 'unknown connection id');
        continue;
      }
      if (record.epoch === 0 && record.type === ContentType.Handshake && record.fragment[0] === HandshakeType.ClientHello) {
        // One ClientHello per datagram is all a client sends: the rest get no HelloVerifyRequest (amplification).
        if (sawHello) this.emit('dropped', peer, 'another ClientHello in the same datagram');
        else this.clientHello(record, peer, key);
        sawHello = true;
        continue;
      }
      if (record.version !== DTLS_1_2 && record.version !== DTLS_1_0) {
        this.emit('dropped', peer, `record version 0x${record.version.toString(16)}`);
        continue;
      }
      const handshake = this.handshakes.get(key);
      const connection = this.connections.get(key);
      if (record.epoch === 0) (handshake ?? connection)?.handleRecord(record, peer);
      // A new handshake runs alongside the session from the same address: records the session authenticates stay its own.
      else if (handshake?.expectsEpochOne) {
        if (!connection?.handleRecord(record, peer)) handshake.handleRecord(record, peer);
      } else (connection ?? handshake)?.handleRecord(record, peer);
    }
  }

  /** True when the datagram's protected records belong to a connection this server does not have (see DtlsServerOptions.lookup). */
  private needsLookup(records: DtlsRecord[], key: PeerKey): boolean {
    for (const record of records) {
      if (record.type === ContentType.Tls12Cid) {
        if (!this.byCid.has((record.cid as Buffer).toString('hex'))) return true;
      } else if (record.epoch > 0 && !this.connections.has(key) && !this.handshakes.has(key)) return true;
    }
    return false;
  }

  /** Holds the datagram while the lookup for its address (or connection id) runs, then handles what waited. */
  private lookUp(datagram: Buffer, peer: Peer, key: PeerKey, records: DtlsRecord[]): void {
    const cid = records.find((record) => record.type === ContentType.Tls12Cid)?.cid;
    const name = cid ? `cid ${cid.toString('hex')}` : `peer ${key}`;
    const now = Date.now();
    const missedUntil = this.notFound.get(name);
    if (missedUntil !== undefined && missedUntil > now) {
      this.emit('dropped', peer, cid ? 'unknown connection id' : 'protected record without a connection');
      return;
    }
    const waiting = this.lookingUp.get(name);
    if (waiting) {
      if (waiting.datagrams.length < LOOKUP_HELD_DATAGRAMS) waiting.datagrams.push(datagram);
      return;
    }
    if (this.lookingUp.size >= MAX_LOOKUPS) {
      this.emit('dropped', peer, 'too many connection lookups in progress');
      return;
    }
    const held = { peer, datagrams: [datagram] };
    this.lookingUp.set(name, held);
    const lookup = this.options.lookup as NonNullable<DtlsServerOptions['lookup']>;
    lookup(peer, cid)
      .catch(() => undefined)
      .then(() => {
        this.lookingUp.delete(name);
        if (!this.socket) return;
        const found = cid ? this.byCid.has(cid.toString('hex')) : this.connections.has(key);
        if (!found) {
          if (this.notFound.size >= MAX_LOOKUPS) this.notFound.clear();
          this.notFound.set(name, Date.now() + LOOKUP_MISS_MS);
        }
        for (const each of held.datagrams) this.receive(each, held.peer, true);
      });
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
      this.emit('handshakeFailed', peer, `malformed ClientHello: ${(error as Error).message}`);
      return;
    }
    // The client repeating the ClientHello of a handshake in progress: our flight was lost.
    if (handshake?.isHelloOf(hello)) {
      handshake.handleRecord(record, peer);
      return;
    }
    const resume = this.resumable(hello);
    const addressProven = this.cookieValid(hello, peer);
    const cookieless = !addressProven && resume !== undefined && hello.cookie.length === 0 && this.cookieless < this.maxCookieless;
    if (!addressProven && !cookieless) {
      const verify = encodeHandshake({ type: HandshakeType.HelloVerifyRequest, messageSeq: fragment.messageSeq, body: helloVerifyRequest(this.cookie(hello, peer, 0)) });
      // The HelloVerifyRequest reuses the ClientHello's record sequence number, so the server keeps no state (RFC 6347 4.2.1).
      this.transmit(encodeRecord(ContentType.Handshake, 0, record.sequence, verify), peer);
      return;
    }
    if (handshake) this.discard(handshake, 'the client started over');
    if (!this.makeRoomForHandshake(peer)) return;
    if (this.connections.size + this.handshakes.size >= this.maxConnections && !this.connections.has(key) && !this.evictIdlest()) {
      this.emit('handshakeFailed', peer, `connection table full (${this.maxConnections}) and no connection idle for ${this.evictIdleAfterMs} ms`);
      return;
    }
    const cid = this.cidLength > 0 ? this.newCid() : undefined;
    try {
      const connection = ServerConnection.accept(this, peer, hello, { type: HandshakeType.ClientHello, messageSeq: fragment.messageSeq, body: fragment.data }, record.sequence, {
        offeredCid: cid,
        resume,
        sessionId: randomBytes(SESSION_ID_LENGTH),
        unprovenBytes: cookieless ? RECORD_HEADER_LENGTH + record.fragment.length : undefined,
      });
      this.handshakes.set(key, connection);
      if (cookieless) this.cookieless++;
      this.countHandshake(peer.address, 1);
      if (connection.cid) this.byCid.set(connection.cid.toString('hex'), connection);
    } catch (error) {
      const alert = error instanceof DtlsAlertError ? error.alert : AlertDescription.DecodeError;
      this.transmit(encodeRecord(ContentType.Alert, 0, record.sequence, Buffer.from([AlertLevel.Fatal, alert])), peer);
      this.emit('handshakeFailed', peer, (error as Error).message);
    }
  }

  /** The cached session a ClientHello asks to resume, when it may: same suite offered, same extended master secret use, identity still admitted. */
  private resumable(hello: ClientHello): DtlsSession | undefined {
    const session = this.sessions.get(hello.sessionId);
    if (!session) return undefined;
    const ok =
      hello.cipherSuites.includes(session.suite.id) &&
      this.suites.includes(session.suite) &&
      // RFC 7627 5.3: a session is resumed only with the extended master secret use it was made with.
      hello.extensions.has(ExtensionType.ExtendedMasterSecret) === session.extendedMasterSecret &&
      stillTrusted(session, this.credentials);
    return ok ? session : undefined;
  }

  /**
   * Bounds handshakes in progress per IP address and in total: over a bound,
   * the least advanced (then oldest) one makes room, so a flood of half-open
   * handshakes only ever displaces its own kind and a client that answers
   * promptly gets through.
   */
  private makeRoomForHandshake(peer: Peer): boolean {
    if ((this.handshakesByAddress.get(peer.address) ?? 0) >= this.maxHandshakesPerAddress) {
      const victim = this.leastAdvanced((connection) => connection.peer.address === peer.address);
      if (!victim) return false;
      this.discard(victim, `evicted: over ${this.maxHandshakesPerAddress} handshakes in progress from ${peer.address}`);
    }
    if (this.handshakes.size >= this.maxHandshakes) {
      const victim = this.leastAdvanced(() => true);
      if (!victim) return false;
      this.discard(victim, `evicted: over ${this.maxHandshakes} handshakes in progress`);
    }
    return true;
  }

  private leastAdvanced(among: (connection: ServerConnection) => boolean): ServerConnection | undefined {
    let victim: ServerConnection | undefined;
    // The map is in order of arrival: the first of the least progress is the oldest.
    for (const connection of this.handshakes.values()) {
      if (among(connection) && (!victim || connection.progress < victim.progress)) victim = connection;
    }
    return victim;
  }

  private countHandshake(address: string, delta: number): void {
    const count = (this.handshakesByAddress.get(address) ?? 0) + delta;
    if (count > 0) this.handshakesByAddress.set(address, count);
    else this.handshakesByAddress.delete(address);
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

  private forgetHandshake(connection: ServerConnection): void {
    const key = peerKey(connection.peer.address, connection.peer.port);
    if (this.handshakes.get(key) !== connection) return;
    this.handshakes.delete(key);
    this.countHandshake(connection.peer.address, -1);
    if (connection.cookieless) this.cookieless--;
  }

  private forget(connection: ServerConnection): void {
    const key = peerKey(connection.peer.address, connection.peer.port);
    this.forgetHandshake(connection);
    if (this.connections.get(key) === connection) {
      this.connections.delete(key);
      this.endedConnections.add(connection.storeId);
    }
    if (connection.cid && this.byCid.get(connection.cid.toString('hex')) === connection) this.byCid.delete(connection.cid.toString('hex'));
  }

  /** Drops a connection or handshake without telling the client (it has moved on, or room was needed), saying so in an event. */
  private discard(connection: ServerConnection, reason: string): void {
    const identity = connection.identity;
    const wasEstablished = connection.phase === 'established';
    connection.abandon();
    this.forget(connection);
    if (wasEstablished) this.emit('closed', connection.peer, identity, reason);
    else this.emit('handshakeFailed', connection.peer, reason);
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
    this.sessions.sweep(now);
  }
}
