import type { PeerIdentity } from '../dtls/credentials';
import type { MalformedDatagram, OutgoingRequest, RequestOptions } from './endpoint';
import type { CoapMessage } from './message';
import type { NotificationHandler, Peer } from './peer';

/** How peers reach a message layer: CoAP over UDP, DTLS, TCP or TLS (RFC 7252, RFC 8323). */
export type Scheme = 'coap' | 'coaps' | 'coap+tcp' | 'coaps+tcp';

/** How large request bodies may be sent to a peer over a stream (RFC 8323 sections 5.3.1 and 6). */
export interface StreamBlockLimits {
  /** The largest body that fits in one message to this peer (its Max-Message-Size less headroom for the header and options). */
  readonly singleMessageBytes: number;
  /** BERT blocks (SZX 7) of this many bytes, a multiple of 1024; 0 when the peer did not announce Block-Wise-Transfer. */
  readonly bertBytes: number;
}

/**
 * What the LwM2M layer talks to devices through, whatever carries the
 * messages: the datagram endpoint (UDP, DTLS; `CoapEndpoint`) and the stream
 * endpoint (TCP, TLS; `StreamEndpoint`) both implement it. Incoming requests
 * go to the handler each was made with; requests to devices, their
 * responses, and the notifications of observations go through here.
 */
export interface MessageLayer {
  readonly scheme: Scheme;
  /**
   * Ordered and reliable delivery (TCP, TLS): notifications need no Observe
   * sequence check, and observations end with the connection (RFC 8323 section 7.2).
   */
  readonly reliable: boolean;
  /** Milliseconds modulo 2^30 at the endpoint clock's last tick: a small integer a request notes its start with. */
  readonly ticks: number;
  readonly address: Peer | undefined;
  /** Binds (or connects); rejects with the socket error. */
  listen(): Promise<Peer>;
  close(): Promise<void>;
  /** Sends a request and resolves with the peer's response, whatever its code. */
  request(peer: Peer, request: OutgoingRequest, options?: RequestOptions): Promise<CoapMessage>;
  /** Stops taking an observation's notifications (token in hex). */
  forgetObservation(peer: Peer, tokenKey: string): void;
  /** Takes notifications for a token (hex) from a saved state. */
  adoptObservation(peer: Peer, tokenKey: string, handler: NotificationHandler): void;
  /** Follows an observed peer to a new address. */
  moveObservation(from: Peer, to: Peer, tokenKey: string): void;
  /** Who the peer authenticated as (secure transports only). */
  identityOf(peer: Peer): PeerIdentity | undefined;
  /** Body sizes for a stream peer; undefined where RFC 7959 block sizes apply (datagrams). */
  blockLimits(peer: Peer): StreamBlockLimits | undefined;
  on(event: 'malformed', listener: (detail: MalformedDatagram) => void): unknown;
  on(event: 'socketError' | 'handlerError', listener: (error: Error) => void): unknown;
}
