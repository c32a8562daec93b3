import type dgram from 'node:dgram';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Peer } from '../coap/peer';
import { DEFAULT_RECEIVE_BUFFER, DatagramReceiver, DatagramTransport, bindUdp, boundAddress } from '../coap/transport';
import { ByteReader, DtlsDecodeError, uint16, uint16Vector, uint8Vector } from './bytes';
import { AlertDescription, AlertLevel, ContentType, DTLS_1_2, ExtensionType, HandshakeType, alertName } from './constants';
import { HandshakeMessage, HandshakeReassembler, encodeHandshake, parseFragments } from './handshake-framing';
import { connectionIdOf } from './hello-messages';
import { keyBlock, masterSecret, pskPreMaster, verifyData } from './prf';
import { DtlsRecord, encodeRecord, parseRecords } from './record';
import { CIPHER_SUITES, CipherSuite, RecordCipher, keyBlockLength } from './record-protection';
import { ReplayWindow } from './replay-window';

export interface DtlsClientOptions {
  /** The server. */
  address: string;
  port: number;
  identity: string;
  key: Buffer;
  cipherSuite?: 'TLS_PSK_WITH_AES_128_CCM_8' | 'TLS_PSK_WITH_AES_128_CBC_SHA256';
  /** Ask for connection ids (RFC 9146) both ways (default false). */
  connectionId?: boolean;
  /** Local address to bind (default: loopback, after the server's family). */
  localAddress?: string;
  /** Local port (default: any free one). */
  localPort?: number;
  handshakeTimeoutMs?: number;
}

const CLIENT_CID_LENGTH = 4;

/**
 * A DTLS 1.2 PSK client, for simulated devices: one connection to one
 * server, used as the CoAP transport of the device.
 */
export class DtlsClient implements DatagramTransport {
  readonly scheme = 'coaps';
  private socket?: dgram.Socket;
  private readonly suite: CipherSuite;
  private readonly ownCid?: Buffer;
  private serverCid?: Buffer;
  private readonly clientRandom = randomBytes(32);
  private serverRandom: Buffer = Buffer.alloc(0);
  private readonly transcript: Buffer[] = [];
  private readonly reassembler = new HandshakeReassembler(0);
  private sendSeq = 0;
  private readonly writeSequence: [number, number] = [0, 0];
  private ciphers?: { client: RecordCipher; server: RecordCipher };
  private readEpoch = 0;
  private readonly replay = new ReplayWindow();
  private master?: Buffer;
  private extendedMasterSecret = false;
  private flight: Buffer[] = [];
  private established = false;
  private receiveData?: DatagramReceiver;
  private handshakeDone?: { resolve(): void; reject(error: Error): void };
  private retransmitTimer?: NodeJS.Timeout;

  constructor(private readonly options: DtlsClientOptions) {
    const name = options.cipherSuite ?? 'TLS_PSK_WITH_AES_128_CCM_8';
    this.suite = CIPHER_SUITES.find((suite) => suite.name === name) as CipherSuite;
    if (options.connectionId) this.ownCid = randomBytes(CLIENT_CID_LENGTH);
  }

  get server(): Peer {
    return { address: this.options.address, port: this.options.port };
  }

  /** Binds a socket and completes the handshake; rejects on a fatal alert or timeout. */
  async listen(receive: DatagramReceiver, fail: (error: Error) => void): Promise<Peer> {
    this.receiveData = receive;
    await this.bind(fail);
    await new Promise<void>((resolve, reject) => {
      this.handshakeDone = { resolve, reject };
      this.sendClientHello(Buffer.alloc(0));
      const timeout = setTimeout(() => this.abort(new Error('DTLS handshake timed out')), this.options.handshakeTimeoutMs ?? 10_000);
      timeout.unref();
    }).finally(() => clearInterval(this.retransmitTimer));
    return this.address as Peer;
  }

  /** Moves to a new local port, as a device behind a NAT that rebinds: only a connection id keeps the session. */
  async rebind(fail: (error: Error) => void): Promise<Peer> {
    const old = this.socket;
    await this.bind(fail);
    old?.close();
    return this.address as Peer;
  }

  get address(): Peer | undefined {
    return boundAddress(this.socket);
  }

  /** Sends to another server address in the same session (a load balancer moved the device to another server instance). */
  moveTo(server: Peer): void {
    this.options.address = server.address;
    this.options.port = server.port;
  }

  send(datagram: Buffer): void {
    if (this.established) this.transmit(this.record(ContentType.ApplicationData, datagram, 1));
  }

  identityOf(): undefined {
    return undefined;
  }

  /** Tells the server with close_notify (sent before the socket closes), then closes the socket. */
  async close(): Promise<void> {
    clearInterval(this.retransmitTimer);
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return;
    if (this.established) {
      const alert = this.record(ContentType.Alert, Buffer.from([AlertLevel.Warning, AlertDescription.CloseNotify]), 1);
      await new Promise<void>((resolve) => socket.send(alert, this.options.port, this.options.address, () => resolve()));
    }
    this.established = false;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private async bind(fail: (error: Error) => void): Promise<void> {
    const local = this.options.localAddress ?? (isIPv6(this.options.address) ? '::1' : '127.0.0.1');
    const socket = await bindUdp(local, this.socket ? 0 : (this.options.localPort ?? 0), DEFAULT_RECEIVE_BUFFER);
    socket.on('error', fail);
    socket.on('message', (datagram) => this.receive(datagram));
    this.socket = socket;
  }

  private sendClientHello(cookie: Buffer): void {
    const extensions: [number, Buffer][] = [
      [ExtensionType.ExtendedMasterSecret, Buffer.alloc(0)],
      [ExtensionType.RenegotiationInfo, Buffer.from([0])],
    ];
    if (this.ownCid) extensions.push([ExtensionType.ConnectionId, uint8Vector(this.ownCid)]);
    const body = Buffer.concat([
      uint16(DTLS_1_2),
      this.clientRandom,
      uint8Vector(Buffer.alloc(0)),
      uint8Vector(cookie),
      uint16Vector(uint16(this.suite.id)),
      uint8Vector(Buffer.from([0])),
      uint16Vector(Buffer.concat(extensions.map(([type, data]) => Buffer.concat([uint16(type), uint16Vector(data)])))),
    ]);
    const hello = { type: HandshakeType.ClientHello, messageSeq: this.sendSeq++, body };
    // RFC 6347 4.2.6: only the ClientHello that carries the cookie starts the handshake hash.
    this.transcript.length = 0;
    this.transcript.push(encodeHandshake(hello));
    this.sendFlight([this.record(ContentType.Handshake, encodeHandshake(hello), 0)]);
  }

  private sendFlight(records: Buffer[]): void {
    this.flight = records;
    clearInterval(this.retransmitTimer);
    this.transmit(Buffer.concat(records));
    this.retransmitTimer = setInterval(() => this.transmit(Buffer.concat(this.flight)), 1000);
    this.retransmitTimer.unref();
  }

  private receive(datagram: Buffer): void {
    const { records } = parseRecords(datagram, this.ownCid?.length ?? 0);
    for (const record of records) {
      try {
        this.receiveRecord(record);
      } catch (error) {
        this.abort(error as Error);
        return;
      }
    }
  }

  private receiveRecord(record: DtlsRecord): void {
    let type = record.type;
    let content = record.fragment;
    if (record.epoch !== this.readEpoch) return;
    if (record.epoch === 1) {
      if (!this.replay.isFresh(record.sequence)) return;
      const opened = this.ciphers?.server.open(record);
      if (!opened) return;
      this.replay.accept(record.sequence);
      type = opened.type;
      content = opened.content;
    }
    switch (type) {
      case ContentType.Handshake:
        for (const message of this.reassembler.add(parseFragments(content)).messages) this.handshakeMessage(message);
        return;
      case ContentType.ChangeCipherSpec:
        if (this.ciphers) this.readEpoch = 1;
        return;
      case ContentType.Alert:
        if (content.length === 2 && (content[0] === AlertLevel.Fatal || content[1] === AlertDescription.CloseNotify)) {
          this.established = false;
          this.abort(new Error(`server sent alert ${alertName(content[1])}`));
        }
        return;
      case ContentType.ApplicationData:
        if (this.established) this.receiveData?.(content, this.server);
        return;
    }
  }

  private handshakeMessage(message: HandshakeMessage): void {
    switch (message.type) {
      case HandshakeType.HelloVerifyRequest: {
        const reader = new ByteReader(message.body);
        reader.uint16();
        const cookie = reader.vector8();
        this.sendClientHello(cookie);
        return;
      }
      case HandshakeType.ServerHello:
        this.transcript.push(encodeHandshake(message));
        this.serverHello(message.body);
        return;
      case HandshakeType.ServerKeyExchange:
        this.transcript.push(encodeHandshake(message));
        return;
      case HandshakeType.ServerHelloDone:
        this.transcript.push(encodeHandshake(message));
        this.clientFlight();
        return;
      case HandshakeType.Finished: {
        const expected = verifyData(this.master as Buffer, 'server', this.hash());
        if (message.body.length !== 12 || !timingSafeEqual(message.body, expected)) throw new DtlsDecodeError('server Finished does not verify');
        clearInterval(this.retransmitTimer);
        this.established = true;
        this.handshakeDone?.resolve();
        return;
      }
      default:
        throw new DtlsDecodeError(`unexpected handshake message ${message.type}`);
    }
  }

  private serverHello(body: Buffer): void {
    const reader = new ByteReader(body);
    if (reader.uint16() !== DTLS_1_2) throw new DtlsDecodeError('server did not choose DTLS 1.2');
    this.serverRandom = reader.bytes(32);
    reader.vector8();
    if (reader.uint16() !== this.suite.id) throw new DtlsDecodeError('server chose another cipher suite');
    reader.uint8();
    const extensions = new Map<number, Buffer>();
    if (reader.remaining > 0) {
      const list = new ByteReader(reader.vector16());
      while (list.remaining > 0) extensions.set(list.uint16(), list.vector16());
    }
    this.extendedMasterSecret = extensions.has(ExtensionType.ExtendedMasterSecret);
    const cid = connectionIdOf(extensions);
    this.serverCid = cid && cid.length > 0 ? cid : undefined;
  }

  private clientFlight(): void {
    const keyExchange = { type: HandshakeType.ClientKeyExchange, messageSeq: this.sendSeq++, body: uint16Vector(Buffer.from(this.options.identity, 'utf8')) };
    this.transcript.push(encodeHandshake(keyExchange));
    this.master = masterSecret(pskPreMaster(this.options.key), this.clientRandom, this.serverRandom, this.extendedMasterSecret ? this.hash() : undefined);
    this.ciphers = RecordCipher.fromKeyBlock(this.suite, keyBlock(this.master, this.clientRandom, this.serverRandom, keyBlockLength(this.suite)));
    const finished = { type: HandshakeType.Finished, messageSeq: this.sendSeq++, body: verifyData(this.master, 'client', this.hash()) };
    this.transcript.push(encodeHandshake(finished));
    this.sendFlight([
      this.record(ContentType.Handshake, encodeHandshake(keyExchange), 0),
      this.record(ContentType.ChangeCipherSpec, Buffer.from([1]), 0),
      this.record(ContentType.Handshake, encodeHandshake(finished), 1),
    ]);
  }

  private hash(): Buffer {
    const hash = createHash('sha256');
    for (const part of this.transcript) hash.update(part);
    return hash.digest();
  }

  private record(type: number, content: Buffer, epoch: number): Buffer {
    const sequence = this.writeSequence[epoch]++;
    if (epoch === 0) return encodeRecord(type, 0, sequence, content);
    return (this.ciphers as { client: RecordCipher }).client.sealRecord(type, epoch, sequence, content, this.serverCid);
  }

  private transmit(datagram: Buffer): void {
    this.socket?.send(datagram, this.options.port, this.options.address);
  }

  private abort(error: Error): void {
    clearInterval(this.retransmitTimer);
    this.handshakeDone?.reject(error);
  }
}
