import dgram from 'node:dgram';
import { LookupOneOptions, lookup as dnsLookup } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';
import type { PeerIdentity } from '../dtls/credentials';
import type { Peer } from './peer';

/**
 * Receives a datagram; over DTLS with the session it came in (an object that
 * is the same for every datagram of one session), so that what is
 * remembered per peer (deduplication) never crosses from one session to the
 * next on the same address (RFC 7252 9.1.1).
 */
export type DatagramReceiver = (datagram: Buffer, peer: Peer, session?: object) => void;

/** What a CoAP endpoint sends and receives over: plain UDP, or a DTLS server's connections. */
export interface DatagramTransport {
  /** 'coap' or 'coaps': what the peers are reached by. */
  readonly scheme: 'coap' | 'coaps';
  /** Binds; resolves with the bound address, rejects with the bind error. */
  listen(receive: DatagramReceiver, fail: (error: Error) => void): Promise<Peer>;
  readonly address: Peer | undefined;
  send(datagram: Buffer, peer: Peer): void;
  close(): Promise<void>;
  /** Who the peer authenticated as (secure transports only). */
  identityOf(peer: Peer): PeerIdentity | undefined;
}

/**
 * A socket's name look-up: an address literal (every peer a server answers)
 * is passed on at once; dns.lookup, Node's default, defers even those to the
 * next tick, a cost on every datagram sent.
 */
function literalFirst(host: string, options: LookupOneOptions, callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const literal = isIP(host);
  if (literal) callback(null, host, literal);
  else dnsLookup(host, options, callback);
}

/** Binds a UDP socket; rejects with the bind error (EADDRINUSE, EADDRNOTAVAIL...) instead of throwing later. */
export function bindUdp(address: string, port: number, receiveBufferBytes: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', lookup: literalFirst });
  return new Promise((resolve, reject) => {
    const onBindError = (error: Error) => {
      socket.close();
      reject(error);
    };
    socket.once('error', onBindError);
    socket.bind(port, address, () => {
      socket.off('error', onBindError);
      try {
        socket.setRecvBufferSize(receiveBufferBytes);
      } catch {
        // Best effort: the system keeps its own size when it refuses.
      }
      resolve(socket);
    });
  });
}

export const DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024;

/** Where a socket is bound; undefined once it is closed (or before it is bound). */
export function boundAddress(socket: dgram.Socket | undefined): Peer | undefined {
  if (!socket) return undefined;
  const bound = socket.address();
  return { address: bound.address, port: bound.port };
}

/** Plain CoAP over one UDP socket (NoSec). */
export class UdpTransport implements DatagramTransport {
  readonly scheme = 'coap';
  private socket?: dgram.Socket;

  constructor(
    private readonly bindAddress: string,
    private readonly port: number,
    private readonly receiveBufferBytes = DEFAULT_RECEIVE_BUFFER,
  ) {}

  async listen(receive: DatagramReceiver, fail: (error: Error) => void): Promise<Peer> {
    const socket = await bindUdp(this.bindAddress, this.port, this.receiveBufferBytes);
    this.socket = socket;
    socket.on('error', fail);
    socket.on('message', receive);
    return boundAddress(socket) as Peer;
  }

  get address(): Peer | undefined {
    return boundAddress(this.socket);
  }

  /** Send errors arrive as the socket's 'error' event, not through a callback per datagram. */
  send(datagram: Buffer, peer: Peer): void {
    this.socket?.send(datagram, peer.port, peer.address);
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  identityOf(): undefined {
    return undefined;
  }
}
