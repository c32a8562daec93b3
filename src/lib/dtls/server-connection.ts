import { ECDH, KeyObject, createHash, randomBytes, timingSafeEqual, verify } from 'node:crypto';
import type { Peer } from '../coap/peer';
import { DtlsDecodeError } from './bytes';
import {
  AlertDescription,
  AlertLevel,
  CertificateType,
  ContentType,
  DTLS_1_2,
  ECDSA_SECP256R1_SHA256,
  EMPTY_RENEGOTIATION_SCSV,
  ExtensionType,
  HandshakeType,
  RECORD_HEADER_LENGTH,
  SECP256R1,
  alertName,
} from './constants';
import { DtlsAlertError, DtlsCredentials, PeerIdentity, authenticateCertificateChain, authenticateRawPublicKey, printable, spkiOf } from './credentials';
import { HandshakeMessage, HandshakeReassembler, encodeHandshake, fragmentHandshake, parseFragments } from './handshake-framing';
import { ClientHello, connectionIdOf, serverHello, uint16List, uint8List } from './hello-messages';
import {
  certificateMessage,
  certificateRequest,
  ecdhePreMaster,
  ecdheServerKeyExchange,
  parseCertificateMessage,
  parseCertificateVerify,
  parsePskIdentity,
} from './key-exchange';
import { keyBlock, masterSecret, pskPreMaster, verifyData } from './prf';
import { DtlsRecord, encodeRecord } from './record';
import { CipherSuite, RecordCipher, keyBlockLength } from './record-protection';
import { ReplayWindow } from './replay-window';
import { ConnectionRecord, DtlsSession, pskKeyCheck } from './session';

/** What a connection needs from the server that owns it. */
export interface ConnectionHost {
  readonly credentials: DtlsCredentials;
  readonly suites: readonly CipherSuite[];
  readonly requireExtendedMasterSecret: boolean;
  transmit(datagram: Buffer, peer: Peer): void;
  established(connection: ServerConnection): void;
  failed(connection: ServerConnection, reason: string): void;
  data(connection: ServerConnection, data: Buffer): void;
  closed(connection: ServerConnection, reason: string): void;
  moved(connection: ServerConnection, from: Peer): void;
}

const FIRST_FLIGHT_TIMEOUT_MS = 1000;
/** 1 + 2 + 4 + 8 + 16 s: a handshake that stalls is given up after about 31 s. */
const MAX_FLIGHT_TRANSMISSIONS = 5;
const MAX_DATAGRAM = 1400;
/** Protected records that arrive before the ChangeCipherSpec they follow (reordering): a few, copied. */
const MAX_EARLY_RECORDS = 4;
const MAX_EARLY_BYTES = 4096;
const MIN_RETRANSMIT_INTERVAL_MS = 250;
/**
 * Sequence numbers a saved connection reserves ahead of the last one used:
 * after a crash, the restored connection starts past anything it may have
 * sent since the save (a save is due again at half of it).
 */
const SEQUENCE_RESERVE = 1_000_000;

/** A handshake's start: the connection id offered, a new session's id, or the session it resumes; unprovenBytes when no cookie proved the address (the bytes of its ClientHello). */
interface AcceptOptions {
  offeredCid?: Buffer;
  sessionId?: Buffer;
  resume?: DtlsSession;
  unprovenBytes?: number;
}

const UNPROVEN_BYTES_FACTOR = 3;

type Awaiting = 'certificate' | 'keyExchange' | 'certificateVerify' | 'changeCipherSpec' | 'finished' | 'nothing';
type FlightItem = { epoch: number; type: number; content: Buffer };

/** How far a handshake got: the least advanced make room first when too many are in progress. */
const PROGRESS: Record<Awaiting, number> = { certificate: 1, keyExchange: 1, certificateVerify: 2, changeCipherSpec: 3, finished: 4, nothing: 5 };

/**
 * The server side of one DTLS 1.2 connection: the handshake after a
 * cookie-verified ClientHello (RFC 6347), full or resumed (RFC 5246 7.3; a
 * resumption may start without the cookie, see unprovenBudget),
 * then the protected records. Once established, nothing that fails to parse,
 * authenticate or fit ends it (RFC 6347 4.1.2.7): only authenticated alerts.
 */
export class ServerConnection {
  phase: 'handshake' | 'established' | 'closed' = 'handshake';
  identity?: PeerIdentity;
  suite!: CipherSuite;
  lastActivity = Date.now();
  readonly startedAt = Date.now();
  /** True for an abbreviated handshake from a cached session. */
  resumed = false;
  /** True when the handshake started without the cookie exchange (a resumption, see DtlsServerOptions.cookielessResumptions). */
  cookieless = false;
  /** The session this connection belongs to, once established: what a client resumes. */
  session?: DtlsSession;
  private peerCid?: Buffer;
  /** Our connection id, when the client asked for connection ids (RFC 9146). */
  cid?: Buffer;
  private readonly transcript: Buffer[] = [];
  private reassembler!: HandshakeReassembler;
  private nextSendSeq = 0;
  private readonly writeSequence: [number, number] = [0, 0];
  private writeEpoch = 0;
  private writeCipher?: RecordCipher;
  private readCipher?: RecordCipher;
  private readonly replay = new ReplayWindow();
  private pending?: { read: RecordCipher; write: RecordCipher };
  private earlyRecords: DtlsRecord[] = [];
  private flight: FlightItem[] = [];
  private flightTimer?: NodeJS.Timeout;
  private flightTransmissions = 0;
  private lastRetransmit = 0;
  private awaiting: Awaiting = 'nothing';
  private clientRandom!: Buffer;
  private serverRandom: Buffer = randomBytes(32);
  private extendedMasterSecret = false;
  private clientCertificateType?: number;
  private ecdh?: ECDH;
  private master?: Buffer;
  private clientPublicKey?: KeyObject;
  private unknownPskIdentity?: string;
  /** Until the handshake ends: the session keeps only a check of it. */
  private pskKey?: Buffer;
  private sessionId: Buffer = Buffer.alloc(0);
  /**
   * For a resumption started without the cookie exchange, until the client's
   * Finished proves its address: the bytes we may still send it (3 for each
   * byte received, as QUIC bounds an unvalidated address, RFC 9000 8.1).
   */
  private unprovenBudget?: number;
  /** The write sequence number and replay state last saved (see needsSaving). */
  private savedReservation = -1;
  private savedHighest = -2;
  private savedPeer?: Peer;

  private constructor(
    private readonly host: ConnectionHost,
    public peer: Peer,
  ) {}

  /**
   * Starts the handshake of a ClientHello (cookie-verified, or resuming without it): resumes `session`
   * when given (the server checked it may be), else a full handshake.
   */
  static accept(
    host: ConnectionHost,
    peer: Peer,
    hello: ClientHello,
    helloMessage: HandshakeMessage,
    helloRecordSequence: number,
    options: AcceptOptions,
  ): ServerConnection {
    const connection = new ServerConnection(host, peer);
    connection.start(hello, helloMessage, helloRecordSequence, options);
    return connection;
  }

  /** An established connection brought back from a saved record. */
  static restore(host: ConnectionHost, record: ConnectionRecord, suite: CipherSuite): ServerConnection {
    const connection = new ServerConnection(host, record.peer);
    connection.suite = suite;
    connection.phase = 'established';
    connection.session = record.session;
    connection.identity = record.session.identity;
    connection.clientRandom = record.clientRandom;
    connection.serverRandom = record.serverRandom;
    connection.cid = record.cid;
    connection.peerCid = record.peerCid;
    connection.lastActivity = record.lastActivity;
    const ciphers = RecordCipher.fromKeyBlock(suite, keyBlock(record.session.master, record.clientRandom, record.serverRandom, keyBlockLength(suite)));
    connection.readCipher = ciphers.client;
    connection.writeCipher = ciphers.server;
    connection.writeEpoch = 1;
    connection.writeSequence[1] = record.writeSequence;
    connection.replay.restore(record.readHighest);
    connection.savedReservation = record.writeSequence;
    connection.savedHighest = record.readHighest;
    connection.savedPeer = record.peer;
    return connection;
  }

  private start(
    hello: ClientHello,
    helloMessage: HandshakeMessage,
    helloRecordSequence: number,
    options: AcceptOptions,
  ): void {
    const host = this.host;
    if (options.unprovenBytes !== undefined) {
      this.cookieless = true;
      this.unprovenBudget = UNPROVEN_BYTES_FACTOR * options.unprovenBytes;
    }
    // Copies: a half-open handshake keeps nothing of the datagram it came in.
    this.clientRandom = Buffer.from(hello.random);
    // RFC 6347 4.2.1: after a stateless HelloVerifyRequest the server continues the client's numbering.
    this.reassembler = new HandshakeReassembler(helloMessage.messageSeq + 1);
    this.nextSendSeq = helloMessage.messageSeq;
    this.writeSequence[0] = helloRecordSequence;
    this.transcript.push(encodeHandshake(helloMessage));

    if (hello.version > DTLS_1_2) throw new DtlsAlertError(AlertDescription.ProtocolVersion, 'client does not offer DTLS 1.2');
    if (!hello.compressionMethods.includes(0)) throw new DtlsAlertError(AlertDescription.HandshakeFailure, 'client offers no null compression');
    const extensions = hello.extensions;
    this.extendedMasterSecret = extensions.has(ExtensionType.ExtendedMasterSecret);
    if (host.requireExtendedMasterSecret && !this.extendedMasterSecret) {
      throw new DtlsAlertError(AlertDescription.HandshakeFailure, 'client does not support extended_master_secret');
    }
    const clientCid = connectionIdOf(extensions);
    this.peerCid = clientCid && clientCid.length > 0 ? Buffer.from(clientCid) : undefined;
    const replyExtensions: [number, Buffer][] = [];
    if (extensions.has(ExtensionType.RenegotiationInfo) || hello.cipherSuites.includes(EMPTY_RENEGOTIATION_SCSV)) {
      replyExtensions.push([ExtensionType.RenegotiationInfo, Buffer.from([0])]);
    }
    if (this.extendedMasterSecret) replyExtensions.push([ExtensionType.ExtendedMasterSecret, Buffer.alloc(0)]);
    if (clientCid && options.offeredCid) {
      this.cid = options.offeredCid;
      replyExtensions.push([ExtensionType.ConnectionId, Buffer.concat([Buffer.from([options.offeredCid.length]), options.offeredCid])]);
    }
    if (options.resume) {
      this.resume(options.resume, replyExtensions);
      return;
    }
    this.sessionId = options.sessionId ?? Buffer.alloc(0);

    const ecdheOk = this.ecdheAcceptable(extensions);
    this.clientCertificateType = this.pick(uint8List(extensions.get(ExtensionType.ClientCertificateType)), [
      ...(host.credentials.trustsRawPublicKey ? [CertificateType.RawPublicKey] : []),
      ...(host.credentials.certificateAuthorities?.length ? [CertificateType.X509] : []),
    ]);
    // A client that proves itself with a raw public key most likely verifies us by one too (and has no CA to check a certificate).
    const serverTypes: number[] = [CertificateType.RawPublicKey, ...(host.credentials.certificateChain?.length ? [CertificateType.X509] : [])];
    const serverTypesOffered = uint8List(extensions.get(ExtensionType.ServerCertificateType));
    const serverCertificateType =
      this.clientCertificateType !== undefined && serverTypesOffered?.includes(this.clientCertificateType) && serverTypes.includes(this.clientCertificateType)
        ? this.clientCertificateType
        : this.pick(serverTypesOffered, serverTypes);
    const suite = host.suites.find(
      (candidate) =>
        hello.cipherSuites.includes(candidate.id) &&
        (candidate.keyExchange === 'psk' || (ecdheOk && serverCertificateType !== undefined && this.clientCertificateType !== undefined)),
    );
    if (!suite) throw new DtlsAlertError(AlertDescription.HandshakeFailure, 'no cipher suite in common');
    this.suite = suite;

    const messages: { type: number; body: Buffer }[] = [];
    if (suite.keyExchange === 'psk') {
      this.awaiting = 'keyExchange';
      messages.push({ type: HandshakeType.ServerHello, body: serverHello(this.serverRandom, this.sessionId, suite.id, replyExtensions) });
    } else {
      const privateKey = host.credentials.privateKey as KeyObject;
      if (extensions.has(ExtensionType.EcPointFormats)) replyExtensions.push([ExtensionType.EcPointFormats, Buffer.from([1, 0])]);
      if (extensions.has(ExtensionType.ServerCertificateType)) replyExtensions.push([ExtensionType.ServerCertificateType, Buffer.from([serverCertificateType as number])]);
      if (extensions.has(ExtensionType.ClientCertificateType)) replyExtensions.push([ExtensionType.ClientCertificateType, Buffer.from([this.clientCertificateType as number])]);
      const keyExchange = ecdheServerKeyExchange(this.clientRandom, this.serverRandom, privateKey);
      this.ecdh = keyExchange.ecdh;
      this.awaiting = 'certificate';
      messages.push(
        { type: HandshakeType.ServerHello, body: serverHello(this.serverRandom, this.sessionId, suite.id, replyExtensions) },
        { type: HandshakeType.Certificate, body: certificateMessage(serverCertificateType as number, spkiOf(privateKey), host.credentials.certificateChain) },
        { type: HandshakeType.ServerKeyExchange, body: keyExchange.body },
        { type: HandshakeType.CertificateRequest, body: certificateRequest() },
      );
    }
    messages.push({ type: HandshakeType.ServerHelloDone, body: Buffer.alloc(0) });
    this.flight = messages.flatMap((message) => this.handshakeItems(0, message));
    this.transmitFlight(true);
  }

  /** RFC 5246 7.3 abbreviated handshake: ServerHello with the session's id, then at once ChangeCipherSpec and Finished. */
  private resume(session: DtlsSession, replyExtensions: [number, Buffer][]): void {
    this.resumed = true;
    this.suite = session.suite;
    this.session = session;
    this.sessionId = session.id;
    this.identity = session.identity;
    this.master = session.master;
    const ciphers = RecordCipher.fromKeyBlock(this.suite, keyBlock(session.master, this.clientRandom, this.serverRandom, keyBlockLength(this.suite)));
    this.pending = { read: ciphers.client, write: ciphers.server };
    const hello = this.handshakeItems(0, { type: HandshakeType.ServerHello, body: serverHello(this.serverRandom, session.id, this.suite.id, replyExtensions) });
    const finished = { type: HandshakeType.Finished, body: verifyData(session.master, 'server', this.transcriptHash()) };
    this.flight = [...hello, { epoch: 0, type: ContentType.ChangeCipherSpec, content: Buffer.from([1]) }, ...this.handshakeItems(1, finished)];
    this.writeCipher = ciphers.server;
    this.awaiting = 'changeCipherSpec';
    this.transmitFlight(true);
  }

  /**
   * Handles one record routed to this connection (by address, or by
   * connection id from `from`); true when it authenticated under this
   * connection's keys.
   */
  handleRecord(record: DtlsRecord, from: Peer): boolean {
    if (this.phase === 'closed') return false;
    if (this.unprovenBudget !== undefined) this.unprovenBudget += UNPROVEN_BYTES_FACTOR * (RECORD_HEADER_LENGTH + record.fragment.length);
    try {
      if (record.epoch === 0) this.handlePlaintext(record);
      else if (record.epoch === 1) return this.handleProtected(record, from);
    } catch (error) {
      this.fail(error as Error);
    }
    return false;
  }

  /** Sends application data; false when the connection cannot carry it. */
  send(data: Buffer): boolean {
    if (this.phase !== 'established') return false;
    this.host.transmit(this.record(ContentType.ApplicationData, data), this.peer);
    return true;
  }

  /** Ends the connection, telling the peer with close_notify when it was established. */
  close(reason: string): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'established') this.sendAlert(AlertLevel.Warning, AlertDescription.CloseNotify);
    const wasHandshake = this.phase === 'handshake';
    this.end();
    if (wasHandshake) this.host.failed(this, reason);
    else this.host.closed(this, reason);
  }

  /** Ends the connection without a word to the peer (it has started over or moved on). */
  abandon(): void {
    this.end();
  }

  /** True for the ClientHello this handshake started from, repeated because our flight was lost. */
  isHelloOf(hello: ClientHello): boolean {
    return this.phase === 'handshake' && hello.random.equals(this.clientRandom);
  }

  /** True while this connection waits for the client's ChangeCipherSpec or Finished (epoch 1 records go here). */
  get expectsEpochOne(): boolean {
    return this.phase === 'handshake' && (this.pending !== undefined || this.readCipher !== undefined);
  }

  /** The id a state store keeps this connection under: stable across address changes. */
  get storeId(): string {
    return this.serverRandom.toString('hex', 0, 16);
  }

  /** How far the handshake got (higher is further). */
  get progress(): number {
    return PROGRESS[this.awaiting];
  }

  /** True when the saved record of this connection is out of date: new, moved, its reserve of sequence numbers half used, or records received since. */
  get needsSaving(): boolean {
    return (
      this.phase === 'established' &&
      (this.writeSequence[1] + SEQUENCE_RESERVE / 2 > this.savedReservation || this.replay.highest !== this.savedHighest || this.peer !== this.savedPeer)
    );
  }

  /** Makes the connection due for saving again (the store lost what it had). */
  forgetSaved(): void {
    this.savedReservation = -1;
    this.savedHighest = -2;
    this.savedPeer = undefined;
  }

  /** What a restart needs to carry on the connection, reserving sequence numbers ahead (see SEQUENCE_RESERVE). */
  save(): ConnectionRecord | undefined {
    if (this.phase !== 'established' || !this.session) return undefined;
    this.savedReservation = this.writeSequence[1] + SEQUENCE_RESERVE;
    this.savedHighest = this.replay.highest;
    this.savedPeer = this.peer;
    return {
      peer: this.peer,
      session: this.session,
      clientRandom: this.clientRandom,
      serverRandom: this.serverRandom,
      cid: this.cid,
      peerCid: this.peerCid,
      writeSequence: this.savedReservation,
      readHighest: this.replay.highest,
      lastActivity: this.lastActivity,
    };
  }

  private handlePlaintext(record: DtlsRecord): void {
    switch (record.type) {
      case ContentType.Handshake:
        this.handleHandshakeFragments(record.fragment, 0);
        return;
      case ContentType.ChangeCipherSpec:
        this.handleChangeCipherSpec(record.fragment);
        return;
      case ContentType.Alert:
        if (this.phase === 'handshake') this.handleAlert(record.fragment);
        return;
      default:
        return; // application data is never accepted unprotected
    }
  }

  private handleProtected(record: DtlsRecord, from: Peer): boolean {
    if (!this.readCipher) {
      if (this.pending && this.earlyRecords.length < MAX_EARLY_RECORDS && record.fragment.length <= MAX_EARLY_BYTES / MAX_EARLY_RECORDS) {
        this.earlyRecords.push({ ...record, fragment: Buffer.from(record.fragment), cid: record.cid && Buffer.from(record.cid) });
      }
      return false;
    }
    if (!this.replay.isFresh(record.sequence)) return false;
    const opened = this.readCipher.open(record);
    if (!opened) {
      // During the handshake the only protected record is the client's Finished: one that fails means a different key.
      if (this.phase === 'handshake') throw new DtlsAlertError(AlertDescription.DecryptError, this.keyMismatchReason());
      return false;
    }
    const newest = this.replay.accept(record.sequence);
    this.lastActivity = Date.now();
    // RFC 9146 section 6: only the newest authenticated record may move a connection to a new address.
    if (newest && record.cid && (from.address !== this.peer.address || from.port !== this.peer.port)) {
      const previous = this.peer;
      this.peer = from;
      this.host.moved(this, previous);
    }
    switch (opened.type) {
      case ContentType.ApplicationData:
        if (this.phase === 'established') this.host.data(this, opened.content);
        break;
      case ContentType.Handshake:
        this.handleHandshakeFragments(opened.content, 1);
        break;
      case ContentType.Alert:
        this.handleAlert(opened.content);
        break;
    }
    return true;
  }

  private handleHandshakeFragments(content: Buffer, epoch: number): void {
    let fragments;
    try {
      fragments = parseFragments(content);
    } catch {
      return; // an invalid record is dropped (RFC 6347 4.1.2.7), whoever sent it
    }
    const { messages, sawOld } = this.reassembler.add(fragments);
    if (sawOld && messages.length === 0) {
      this.retransmitOnDemand();
      return;
    }
    for (const message of messages) {
      if (this.phase === 'established') {
        // A new handshake inside the session: renegotiation, which we do not do. Unprotected ones prove nothing and get no answer.
        if (epoch === 1) this.sendAlert(AlertLevel.Warning, AlertDescription.NoRenegotiation);
        continue;
      }
      this.handleHandshakeMessage(message, epoch);
      if (this.phase !== 'handshake') return;
    }
  }

  private handleHandshakeMessage(message: HandshakeMessage, epoch: number): void {
    const expectedType = {
      certificate: HandshakeType.Certificate,
      keyExchange: HandshakeType.ClientKeyExchange,
      certificateVerify: HandshakeType.CertificateVerify,
      changeCipherSpec: -1,
      finished: HandshakeType.Finished,
      nothing: -1,
    }[this.awaiting];
    if (message.type !== expectedType || (message.type === HandshakeType.Finished) !== (epoch === 1)) {
      throw new DtlsAlertError(AlertDescription.UnexpectedMessage, `unexpected handshake message ${message.type} while waiting for ${this.awaiting}`);
    }
    switch (this.awaiting) {
      case 'certificate':
        this.onCertificate(message);
        break;
      case 'keyExchange':
        this.onClientKeyExchange(message);
        break;
      case 'certificateVerify':
        this.onCertificateVerify(message);
        break;
      case 'finished':
        this.onFinished(message);
        break;
    }
  }

  private onCertificate(message: HandshakeMessage): void {
    const type = this.clientCertificateType as number;
    const certificates = parseCertificateMessage(message.body, type);
    if (certificates.length === 0) throw new DtlsAlertError(AlertDescription.HandshakeFailure, 'client sent no certificate');
    const authenticated =
      type === CertificateType.RawPublicKey
        ? authenticateRawPublicKey(certificates[0], this.host.credentials)
        : authenticateCertificateChain(certificates, this.host.credentials);
    this.identity = authenticated.identity;
    this.clientPublicKey = authenticated.publicKey;
    this.transcript.push(encodeHandshake(message));
    this.awaiting = 'keyExchange';
  }

  private onClientKeyExchange(message: HandshakeMessage): void {
    let preMaster: Buffer;
    if (this.suite.keyExchange === 'psk') {
      const identity = parsePskIdentity(message.body);
      const key = this.host.credentials.pskKey?.(identity);
      // RFC 4279 section 2: go on with a random key so an unknown identity looks like a wrong key (decrypt_error).
      if (!key) this.unknownPskIdentity = identity;
      else {
        this.identity = { kind: 'psk', identity };
        this.pskKey = key;
      }
      preMaster = pskPreMaster(key ?? randomBytes(16));
    } else {
      preMaster = ecdhePreMaster(message.body, this.ecdh as ECDH);
    }
    this.transcript.push(encodeHandshake(message));
    this.master = masterSecret(preMaster, this.clientRandom, this.serverRandom, this.extendedMasterSecret ? this.transcriptHash() : undefined);
    const ciphers = RecordCipher.fromKeyBlock(this.suite, keyBlock(this.master, this.clientRandom, this.serverRandom, keyBlockLength(this.suite)));
    this.pending = { read: ciphers.client, write: ciphers.server };
    this.awaiting = this.suite.keyExchange === 'psk' ? 'changeCipherSpec' : 'certificateVerify';
  }

  private onCertificateVerify(message: HandshakeMessage): void {
    const signature = parseCertificateVerify(message.body);
    if (!verify('sha256', Buffer.concat(this.transcript), this.clientPublicKey as KeyObject, signature)) {
      throw new DtlsAlertError(AlertDescription.DecryptError, 'client CertificateVerify signature does not verify');
    }
    this.transcript.push(encodeHandshake(message));
    this.awaiting = 'changeCipherSpec';
  }

  private handleChangeCipherSpec(content: Buffer): void {
    if (this.phase === 'established' || this.awaiting === 'finished') {
      // A repeated client flight: ours (if any) was lost.
      this.retransmitOnDemand();
      return;
    }
    if (this.awaiting !== 'changeCipherSpec' || !this.pending) {
      throw new DtlsAlertError(AlertDescription.UnexpectedMessage, `ChangeCipherSpec while waiting for ${this.awaiting}`);
    }
    if (content.length !== 1 || content[0] !== 1) throw new DtlsDecodeError('ChangeCipherSpec body');
    this.readCipher = this.pending.read;
    this.awaiting = 'finished';
    const early = this.earlyRecords;
    this.earlyRecords = [];
    for (const record of early) this.handleProtected(record, this.peer);
  }

  private onFinished(message: HandshakeMessage): void {
    const master = this.master as Buffer;
    const expected = verifyData(master, 'client', this.transcriptHash());
    const matches = message.body.length === expected.length && timingSafeEqual(message.body, expected);
    if (this.unknownPskIdentity !== undefined || !matches) throw new DtlsAlertError(AlertDescription.DecryptError, this.keyMismatchReason());
    clearTimeout(this.flightTimer);
    if (this.resumed) {
      // The client's Finished ends an abbreviated handshake: our flight went first, and there is nothing to answer.
      this.flight = [];
    } else {
      this.transcript.push(encodeHandshake(message));
      const finished = { type: HandshakeType.Finished, body: verifyData(master, 'server', this.transcriptHash()) };
      this.flight = [{ epoch: 0, type: ContentType.ChangeCipherSpec, content: Buffer.from([1]) }, ...this.handshakeItems(1, finished)];
      this.writeCipher = this.pending?.write;
    }
    this.pending = undefined;
    this.awaiting = 'nothing';
    this.phase = 'established';
    this.unprovenBudget = undefined;
    this.writeEpoch = 1;
    if (this.flight.length > 0) this.transmitFlight(false);
    this.transcript.length = 0;
    this.ecdh = undefined;
    this.clientPublicKey = undefined;
    if (!this.resumed && this.identity) {
      this.session = {
        id: this.sessionId,
        master,
        suite: this.suite,
        identity: this.identity,
        extendedMasterSecret: this.extendedMasterSecret,
        createdAt: Date.now(),
        keyCheck: this.pskKey && pskKeyCheck(master, this.pskKey),
      };
      this.pskKey = undefined;
    }
    this.master = undefined;
    this.host.established(this);
  }

  private keyMismatchReason(): string {
    if (this.unknownPskIdentity !== undefined) return `unknown PSK identity ${printable(this.unknownPskIdentity)}`;
    if (this.resumed) return 'client Finished of a resumed session does not verify';
    return this.identity?.kind === 'psk' ? `wrong key for PSK identity ${printable(this.identity.identity)}` : 'client Finished does not verify';
  }

  private handleAlert(content: Buffer): void {
    if (content.length !== 2) return;
    const [level, description] = content;
    if (description === AlertDescription.CloseNotify) {
      const wasHandshake = this.phase === 'handshake';
      this.end();
      if (wasHandshake) this.host.failed(this, 'peer sent close_notify');
      else this.host.closed(this, 'peer sent close_notify');
    } else if (level === AlertLevel.Fatal) {
      const wasEstablished = this.phase === 'established';
      this.end();
      if (wasEstablished) this.host.closed(this, `peer sent fatal alert ${alertName(description)}`);
      else this.host.failed(this, `peer sent fatal alert ${alertName(description)}`);
    }
  }

  /** A handshake that cannot go on: fatal alert, then the reason to the server. Established connections never come here (see handleRecord). */
  private fail(error: Error): void {
    if (this.phase !== 'handshake') return;
    const alert = error instanceof DtlsAlertError ? error.alert : error instanceof DtlsDecodeError ? AlertDescription.DecodeError : AlertDescription.InternalError;
    this.sendAlert(AlertLevel.Fatal, alert);
    this.end();
    this.host.failed(this, error.message);
  }

  private end(): void {
    this.phase = 'closed';
    clearTimeout(this.flightTimer);
    this.flight = [];
    this.earlyRecords = [];
  }

  private sendAlert(level: number, description: number): void {
    this.host.transmit(this.record(ContentType.Alert, Buffer.from([level, description])), this.peer);
  }

  private transcriptHash(): Buffer {
    const hash = createHash('sha256');
    for (const part of this.transcript) hash.update(part);
    return hash.digest();
  }

  private handshakeItems(epoch: number, message: { type: number; body: Buffer }): FlightItem[] {
    const numbered = { ...message, messageSeq: this.nextSendSeq++ };
    this.transcript.push(encodeHandshake(numbered));
    return fragmentHandshake(numbered).map((content) => ({ epoch, type: ContentType.Handshake, content }));
  }

  /** Sends the current flight, records re-numbered each time (RFC 6347 4.2.4), packed into datagrams. */
  private transmitFlight(timed: boolean): void {
    this.flightTransmissions++;
    const datagrams: Buffer[] = [];
    let datagram: Buffer[] = [];
    let size = 0;
    let total = 0;
    for (const item of this.flight) {
      const record = this.record(item.type, item.content, item.epoch);
      if (size + record.length > MAX_DATAGRAM && datagram.length > 0) {
        datagrams.push(Buffer.concat(datagram));
        datagram = [];
        size = 0;
      }
      datagram.push(record);
      size += record.length;
      total += record.length;
    }
    if (datagram.length > 0) datagrams.push(datagram.length === 1 ? datagram[0] : Buffer.concat(datagram));
    // To an address no cookie proved, only what its own datagrams pay for: the rest waits for it to ask again (or the handshake times out).
    if (this.unprovenBudget === undefined || total <= this.unprovenBudget) {
      if (this.unprovenBudget !== undefined) this.unprovenBudget -= total;
      for (const each of datagrams) this.host.transmit(each, this.peer);
    }
    if (!timed) return;
    clearTimeout(this.flightTimer);
    this.flightTimer = setTimeout(() => {
      if (this.phase !== 'handshake') return;
      if (this.flightTransmissions >= MAX_FLIGHT_TRANSMISSIONS) this.fail(new Error('handshake timed out: the client stopped answering'));
      else this.transmitFlight(true);
    }, FIRST_FLIGHT_TIMEOUT_MS * 2 ** (this.flightTransmissions - 1));
  }

  /** The peer repeated messages we already had: our answer to them was lost, so it goes again (at most every 250 ms). */
  private retransmitOnDemand(): void {
    const now = Date.now();
    if (this.flight.length === 0 || now - this.lastRetransmit < MIN_RETRANSMIT_INTERVAL_MS) return;
    this.lastRetransmit = now;
    this.transmitFlight(this.phase === 'handshake');
  }

  private record(type: number, content: Buffer, epoch = this.writeEpoch): Buffer {
    const sequence = this.writeSequence[epoch]++;
    if (epoch === 0) return encodeRecord(type, 0, sequence, content);
    const cipher = (this.writeCipher ?? this.pending?.write) as RecordCipher;
    return cipher.sealRecord(type, epoch, sequence, content, this.peerCid);
  }

  private ecdheAcceptable(extensions: Map<number, Buffer>): boolean {
    if (!this.host.credentials.privateKey) return false;
    const groups = uint16List(extensions.get(ExtensionType.SupportedGroups));
    const algorithms = uint16List(extensions.get(ExtensionType.SignatureAlgorithms));
    const formats = uint8List(extensions.get(ExtensionType.EcPointFormats));
    return (!groups || groups.includes(SECP256R1)) && (!algorithms || algorithms.includes(ECDSA_SECP256R1_SHA256)) && (!formats || formats.includes(0));
  }

  /** The first of the peer's certificate types we can do; X.509 alone when it did not say (RFC 7250). */
  private pick(offered: number[] | undefined, supported: number[]): number | undefined {
    return (offered ?? [CertificateType.X509]).find((type) => supported.includes(type));
  }
}
