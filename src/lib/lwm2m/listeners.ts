import type { KeyObject, X509Certificate } from 'node:crypto';
import { CoapEndpoint, EndpointOptions, IncomingRequest, MalformedDatagram, OutgoingResponse } from '../coap/endpoint';
import type { MessageLayer, Scheme } from '../coap/message-layer';
import type { Peer } from '../coap/peer';
import { StreamEndpoint, StreamEndpointOptions } from '../coap/stream-endpoint';
import { TcpServerTransport, TlsServerTransport } from '../coap/stream-transport';
import { DtlsServer, DtlsServerOptions } from '../dtls/dtls-server';
import type { Transport } from './registration';
import type { SecurityRegistry } from './security';

/** The server's own credentials for certificate and raw-public-key devices, shared by its DTLS and TLS listeners. */
export interface ServerCredentials {
  /** The server's ECDSA P-256 key, for devices in RPK or X.509 mode. */
  privateKey?: KeyObject;
  /** The server's certificate chain (DER, leaf first), for X.509 mode. */
  certificateChain?: Buffer[];
  /** Authorities whose device certificates are accepted (the CN is the endpoint name). */
  certificateAuthorities?: X509Certificate[];
}

/** The DTLS listener (coaps), next to or instead of plain UDP. */
export interface SecureListenerOptions extends ServerCredentials {
  /** Defaults to the plain listener's address. */
  address?: string;
  port: number;
  dtls?: Omit<DtlsServerOptions, 'address' | 'port' | 'credentials'>;
}

/** A CoAP over TCP listener (coap+tcp, RFC 8323) with its bounds. */
export interface StreamListenerOptions extends Omit<StreamEndpointOptions, 'transport'> {
  /** Defaults to the plain listener's address. */
  address?: string;
  port: number;
}

/** A CoAP over TLS listener (coaps+tcp): PSKs from the security registry, like DTLS, and the server's certificate. */
export interface TlsListenerOptions extends StreamListenerOptions, ServerCredentials {}

export interface ListenerOptions extends Omit<EndpointOptions, 'port' | 'transport' | 'unmatched'> {
  /** Plain UDP (NoSec) port; no plain listener when absent. */
  port?: number;
  secure?: SecureListenerOptions;
  tcp?: StreamListenerOptions;
  tls?: TlsListenerOptions;
  /** A response or notification that matches nothing on the endpoint of a datagram transport (see EndpointOptions.unmatched). */
  unmatchedOn?: (transport: Transport, ...args: Parameters<NonNullable<EndpointOptions['unmatched']>>) => boolean;
}

export interface BoundListener extends Peer {
  scheme: Scheme;
}

/** Answers a request, knowing which transport it came over. */
export type TransportHandler = (request: IncomingRequest, transport: Transport) => OutgoingResponse | Promise<OutgoingResponse>;

/** Where a server's events go: rejected datagrams and faults. */
interface ListenerEvents {
  emit(event: 'malformed', detail: MalformedDatagram): unknown;
  emit(event: 'warning', error: Error): unknown;
  emit(event: 'handshakeFailed', peer: Peer, reason: string): unknown;
}

/**
 * The CoAP endpoints of a server: plain UDP, DTLS, TCP and TLS, any of
 * them, one handler for all. The DTLS and TLS listeners take their PSKs and
 * trusted raw public keys from the security registry.
 */
export class Listeners {
  readonly plain?: CoapEndpoint;
  readonly secure?: CoapEndpoint;
  readonly dtls?: DtlsServer;
  readonly tcp?: StreamEndpoint;
  readonly tls?: StreamEndpoint;

  /** retain: whether a peer is a registered device, whose state the endpoint keeps while it is idle. */
  constructor(options: ListenerOptions, security: SecurityRegistry, handler: TransportHandler, events: ListenerEvents, retain?: (transport: Transport, peer: Peer) => boolean) {
    if (options.port === undefined && !options.secure && !options.tcp && !options.tls) throw new Error('the server needs a UDP, DTLS, TCP or TLS port');
    const over = (transport: Transport) => (request: IncomingRequest) => handler(request, transport);
    // A server sends nothing to an address that has not shown it is real beyond what that address sent it.
    const serverRole = (transport: Transport) => ({ verifyPeers: options.verifyPeers ?? true, retainPeer: retain && ((peer: Peer) => retain(transport, peer)) });
    const unmatched = (transport: Transport): EndpointOptions['unmatched'] =>
      options.unmatchedOn && ((peer, message, retry) => (options.unmatchedOn as NonNullable<ListenerOptions['unmatchedOn']>)(transport, peer, message, retry));
    if (options.port !== undefined) this.plain = new CoapEndpoint({ ...options, ...serverRole('udp'), port: options.port, unmatched: unmatched('udp') }, over('udp'));
    const secure = options.secure;
    if (secure) {
      const address = secure.address ?? options.address;
      this.dtls = new DtlsServer({
        ...secure.dtls,
        address,
        port: secure.port,
        credentials: {
          pskKey: (identity) => security.pskKey(identity),
          trustsRawPublicKey: (spki) => security.trustsRawPublicKey(spki),
          privateKey: secure.privateKey,
          certificateChain: secure.certificateChain,
          certificateAuthorities: secure.certificateAuthorities,
        },
      });
      this.secure = new CoapEndpoint({ ...options, ...serverRole('dtls'), address, port: secure.port, transport: this.dtls, unmatched: unmatched('dtls') }, over('dtls'));
      this.dtls.on('handshakeFailed', (peer, reason) => events.emit('handshakeFailed', peer, reason));
    }
    if (options.tcp) {
      const { address = options.address, port, ...bounds } = options.tcp;
      this.tcp = new StreamEndpoint({ maxRequestBodyBytes: options.maxRequestBodyBytes, ...bounds, transport: new TcpServerTransport(address, port) }, over('tcp'));
    }
    if (options.tls) {
      const { address = options.address, port, privateKey, certificateChain, certificateAuthorities, ...bounds } = options.tls;
      const credentials = { pskKey: (identity: string) => security.pskKey(identity), privateKey, certificateChain, certificateAuthorities };
      // The handshake has the time a message has (frameTimeoutMs): slow handshakes are slow senders too.
      const transport = new TlsServerTransport(address, port, credentials, bounds.frameTimeoutMs);
      this.tls = new StreamEndpoint({ maxRequestBodyBytes: options.maxRequestBodyBytes, ...bounds, transport }, over('tls'));
      this.tls.on('handshakeFailed', (peer: Peer, reason: string) => events.emit('handshakeFailed', peer, reason));
    }
    for (const endpoint of this.all()) {
      endpoint.on('malformed', (detail: MalformedDatagram) => events.emit('malformed', detail));
      endpoint.on('socketError', (error: Error) => events.emit('warning', error));
      endpoint.on('handlerError', (error: Error) => events.emit('warning', error));
    }
  }

  /** UDP, DTLS, TCP, TLS: those the server has. */
  all(): MessageLayer[] {
    return [this.plain, this.secure, this.tcp, this.tls].filter((endpoint): endpoint is NonNullable<typeof endpoint> => endpoint !== undefined);
  }

  /** The stream endpoints (TCP, TLS) with their transport. */
  streams(): [Transport, StreamEndpoint][] {
    return [this.tcp && (['tcp', this.tcp] as [Transport, StreamEndpoint]), this.tls && (['tls', this.tls] as [Transport, StreamEndpoint])].filter(
      (entry): entry is [Transport, StreamEndpoint] => entry !== undefined,
    );
  }

  for(transport: Transport): MessageLayer | undefined {
    switch (transport) {
      case 'udp':
        return this.plain;
      case 'dtls':
        return this.secure;
      case 'tcp':
        return this.tcp;
      case 'tls':
        return this.tls;
    }
  }

  /** Binds every socket; on a bind error closes the others and rejects with it. */
  async start(): Promise<BoundListener[]> {
    const bound: BoundListener[] = [];
    try {
      for (const endpoint of this.all()) bound.push({ ...(await endpoint.listen()), scheme: endpoint.scheme });
    } catch (error) {
      await this.stop();
      throw error;
    }
    return bound;
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((endpoint) => endpoint.close()));
  }
}
