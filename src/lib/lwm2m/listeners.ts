import type { KeyObject, X509Certificate } from 'node:crypto';
import { CoapEndpoint, EndpointOptions, MalformedDatagram, RequestHandler } from '../coap/endpoint';
import type { Peer } from '../coap/peer';
import { DtlsServer, DtlsServerOptions } from '../dtls/dtls-server';
import type { PeerIdentity } from '../dtls/credentials';
import type { Transport } from './registration';
import type { SecurityRegistry } from './security';

/** The DTLS listener (coaps), next to or instead of plain UDP. */
export interface SecureListenerOptions {
  /** Defaults to the plain listener's address. */
  address?: string;
  port: number;
  /** The server's ECDSA P-256 key, for devices in RPK or X.509 mode. */
  privateKey?: KeyObject;
  /** The server's certificate chain (DER, leaf first), for X.509 mode. */
  certificateChain?: Buffer[];
  /** Authorities whose device certificates are accepted (the CN is the endpoint name). */
  certificateAuthorities?: X509Certificate[];
  dtls?: Omit<DtlsServerOptions, 'address' | 'port' | 'credentials'>;
}

export interface ListenerOptions extends Omit<EndpointOptions, 'port' | 'transport'> {
  /** Plain UDP (NoSec) port; no plain listener when absent. */
  port?: number;
  secure?: SecureListenerOptions;
}

export interface BoundListener extends Peer {
  scheme: 'coap' | 'coaps';
}

/** Where a server's events go: rejected datagrams and faults. */
interface ListenerEvents {
  emit(event: 'malformed', detail: MalformedDatagram): unknown;
  emit(event: 'warning', error: Error): unknown;
  emit(event: 'handshakeFailed', peer: Peer, reason: string): unknown;
}

/**
 * The CoAP endpoints of a server: plain UDP and/or DTLS, one handler for
 * both. The DTLS server takes its PSKs and trusted raw public keys from the
 * security registry.
 */
export class Listeners {
  readonly plain?: CoapEndpoint;
  readonly secure?: CoapEndpoint;
  readonly dtls?: DtlsServer;

  /** retain: whether a peer is a registered device, whose state the endpoint keeps while it is idle. */
  constructor(options: ListenerOptions, security: SecurityRegistry, handler: RequestHandler, events: ListenerEvents, retain?: (transport: Transport, peer: Peer) => boolean) {
    if (options.port === undefined && !options.secure) throw new Error('the server needs a UDP port, a DTLS port or both');
    // A server sends nothing to an address that has not shown it is real beyond what that address sent it.
    const serverRole = (transport: Transport) => ({ verifyPeers: options.verifyPeers ?? true, retainPeer: retain && ((peer: Peer) => retain(transport, peer)) });
    if (options.port !== undefined) this.plain = new CoapEndpoint({ ...options, ...serverRole('udp'), port: options.port }, handler);
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
      this.secure = new CoapEndpoint({ ...options, ...serverRole('dtls'), address, port: secure.port, transport: this.dtls }, handler);
      this.dtls.on('handshakeFailed', (peer, reason) => events.emit('handshakeFailed', peer, reason));
    }
    for (const endpoint of this.all()) {
      endpoint.on('malformed', (detail: MalformedDatagram) => events.emit('malformed', detail));
      endpoint.on('socketError', (error: Error) => events.emit('warning', error));
      endpoint.on('handlerError', (error: Error) => events.emit('warning', error));
    }
  }

  /** Plain UDP first, then DTLS. */
  all(): CoapEndpoint[] {
    return [this.plain, this.secure].filter((endpoint): endpoint is CoapEndpoint => endpoint !== undefined);
  }

  for(transport: Transport): CoapEndpoint | undefined {
    return transport === 'dtls' ? this.secure : this.plain;
  }

  /** The endpoint a request with this identity came in on (DTLS requests always have one). */
  of(identity: PeerIdentity | undefined): CoapEndpoint {
    return (identity ? this.secure : this.plain) as CoapEndpoint;
  }

  /** Binds every socket; on a bind error closes the others and rejects with it. */
  async start(): Promise<BoundListener[]> {
    const bound: BoundListener[] = [];
    try {
      for (const endpoint of this.all()) bound.push({ ...(await endpoint.listen()), scheme: endpoint.transport.scheme });
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
