import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate, constants } from 'node:crypto';
import { DtlsCredentials, PeerIdentity, authenticateCertificateChain, printable } from '../dtls/credentials';
import type { Peer } from './peer';

/** Where a stream transport hands its connections. */
export interface StreamHost {
  /** A TCP connection arrived, before any TLS handshake: false refuses it (it is destroyed at once). */
  admit(socket: net.Socket): boolean;
  /** A connection ready for CoAP (over TLS: handshake done), with who the peer proved to be. */
  ready(socket: net.Socket, peer: Peer, identity: PeerIdentity | undefined): void;
  /** A TLS handshake that failed or was refused, with the reason (never a key; peer text escaped). */
  handshakeFailed(peer: Peer, reason: string): void;
  /** A listening socket's error (after it was bound). */
  error(error: Error): void;
}

/** What a stream endpoint talks over: TCP or TLS, as a server (listening) or a client (one connection). */
export interface StreamTransport {
  readonly scheme: 'coap+tcp' | 'coaps+tcp';
  /** Listens (server) or connects (client); resolves with the local address, rejects with the bind or connect error. */
  open(host: StreamHost): Promise<Peer>;
  readonly address: Peer | undefined;
  close(): Promise<void>;
}

/** What OpenSSL says when the client's key differs from ours (TLS 1.3 binder, TLS 1.2 Finished that does not decrypt). */
const KEY_MISMATCH = /binder does not verify|bad record mac|decrypt|cipher operation failed/i;


/**
 * TLS 1.2 suites: the LwM2M PSK ones and AES-GCM for PSK, ECDHE-ECDSA for
 * certificates; TLS 1.3 suites where the client offers 1.3 (certificates or
 * PSK). No NULL, export or non-AEAD-or-SHA256 suites.
 */
const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_CCM_8_SHA256',
  'PSK-AES128-CCM8',
  'PSK-AES128-CBC-SHA256',
  'PSK-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES128-CCM8',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
].join(':');

/** The peer's address and port as the socket gives them (an IPv4-mapped IPv6 address on a :: listener, as UDP gives it too). */
function remoteOf(socket: net.Socket): Peer {
  return { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
}

function listening(server: net.Server, address: string, port: number): Promise<Peer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off('error', reject);
      const bound = server.address() as net.AddressInfo;
      resolve({ address: bound.address, port: bound.port });
    });
  });
}

/** Where a server listens; undefined once it is closed (or before it listens). */
function boundTo(server: net.Server | undefined): Peer | undefined {
  const bound = server?.listening ? (server.address() as net.AddressInfo) : undefined;
  return bound && { address: bound.address, port: bound.port };
}

function closing(server: net.Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** CoAP over TCP (RFC 8323), listening on one port: `coap+tcp://`. */
export class TcpServerTransport implements StreamTransport {
  readonly scheme = 'coap+tcp';
  private server?: net.Server;

  constructor(
    private readonly bindAddress: string,
    private readonly port: number,
  ) {}

  async open(host: StreamHost): Promise<Peer> {
    const server = net.createServer({ noDelay: true });
    server.on('connection', (socket) => {
      if (!host.admit(socket)) {
        socket.destroy();
        return;
      }
      host.ready(socket, remoteOf(socket), undefined);
    });
    const bound = await listening(server, this.bindAddress, this.port);
    server.on('error', (error) => host.error(error));
    this.server = server;
    return bound;
  }

  get address(): Peer | undefined {
    return boundTo(this.server);
  }

  close(): Promise<void> {
    return closing(this.server);
  }
}

/** What a TLS listener authenticates with and whom it trusts: the DTLS listener's credentials (raw public keys aside: TLS in Node has none). */
export type TlsCredentials = Pick<DtlsCredentials, 'pskKey' | 'privateKey' | 'certificateChain' | 'certificateAuthorities'>;

/** The certificates a peer sent, leaf first, as DER (with the issuer the trust store found last). */
function peerChain(socket: tls.TLSSocket): Buffer[] {
  const chain: Buffer[] = [];
  let certificate = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  while (certificate?.raw && chain.length < 10) {
    chain.push(certificate.raw);
    if (certificate.issuerCertificate === certificate || !certificate.issuerCertificate?.raw || certificate.issuerCertificate.raw.equals(certificate.raw)) break;
    certificate = certificate.issuerCertificate;
  }
  return chain;
}

/**
 * CoAP over TLS (RFC 8323), `coaps+tcp://`, on Node's TLS: TLS 1.2 and 1.3,
 * PSK (the identity the client gives, its key from the credentials) or
 * X.509 both ways (the client's chain checked against the trusted
 * authorities by the same rules as DTLS, its CN the endpoint name). Every
 * client authenticates; no session tickets or session cache, so every
 * connection proves its identity again.
 */
export class TlsServerTransport implements StreamTransport {
  readonly scheme = 'coaps+tcp';
  private server?: tls.Server;

  constructor(
    private readonly bindAddress: string,
    private readonly port: number,
    private readonly credentials: TlsCredentials,
    /** A handshake not complete in this long is dropped. */
    private readonly handshakeTimeoutMs = 10_000,
  ) {}

  async open(host: StreamHost): Promise<Peer> {
    const credentials = this.credentials;
    /** The PSK identity each socket's handshake gave, and why one failed. */
    const pskIdentities = new WeakMap<tls.TLSSocket, string>();
    const refusals = new WeakMap<tls.TLSSocket, string>();
    const options: tls.TlsOptions = {
      ciphers: CIPHERS,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['coap'],
      handshakeTimeout: this.handshakeTimeoutMs,
      requestCert: Boolean(credentials.certificateAuthorities?.length),
      rejectUnauthorized: false,
      secureOptions: constants.SSL_OP_NO_TICKET,
      pskCallback: (socket: tls.TLSSocket, identity: string) => {
        const key = credentials.pskKey?.(identity);
        if (!key) {
          refusals.set(socket, `unknown PSK identity ${printable(identity)}`);
          return null;
        }
        pskIdentities.set(socket, identity);
        return key;
      },
    };
    if (credentials.privateKey && credentials.certificateChain?.length) {
      options.key = credentials.privateKey.export({ format: 'pem', type: 'pkcs8' });
      options.cert = credentials.certificateChain.map((der) => new X509Certificate(der).toString()).join('');
    }
    if (credentials.certificateAuthorities?.length) options.ca = credentials.certificateAuthorities.map((authority) => authority.toString());
    const server = tls.createServer(options);
    server.on('connection', (socket: net.Socket) => {
      if (!host.admit(socket)) socket.destroy();
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const peer = remoteOf(socket);
      const identity = this.identityOf(socket, pskIdentities.get(socket));
      if (typeof identity === 'string') {
        host.handshakeFailed(peer, identity);
        socket.destroy();
        return;
      }
      host.ready(socket, peer, identity);
    });
    server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
      // OpenSSL's reason ("binder does not verify"), without its codes and source file.
      const detail = /routines:[^:]*:([^:]+)/.exec(error.message)?.[1] ?? error.message;
      const identity = pskIdentities.get(socket);
      const reason = refusals.get(socket) ?? (identity !== undefined && KEY_MISMATCH.test(detail) ? `wrong key for PSK identity ${printable(identity)}` : detail);
      host.handshakeFailed(remoteOf(socket), reason);
    });
    const bound = await listening(server, this.bindAddress, this.port);
    server.on('error', (error) => host.error(error));
    this.server = server;
    return bound;
  }

  /** Who the client proved to be: its PSK identity, or its certificate; a reason when neither holds. */
  private identityOf(socket: tls.TLSSocket, pskIdentity: string | undefined): PeerIdentity | string {
    if (pskIdentity !== undefined) return { kind: 'psk', identity: pskIdentity };
    const chain = peerChain(socket);
    // A client whose certificate is from none of the authorities our CertificateRequest names may send none.
    if (chain.length === 0) return 'the client authenticated with neither a PSK nor a certificate from a trusted authority';
    try {
      return authenticateCertificateChain(chain, this.credentials).identity;
    } catch (error) {
      return (error as Error).message;
    }
  }

  get address(): Peer | undefined {
    return boundTo(this.server);
  }

  close(): Promise<void> {
    return closing(this.server);
  }
}

/** One connection to a server over TCP, or over TLS with a PSK: the client side, for the simulated device. */
export class StreamClientTransport implements StreamTransport {
  readonly scheme: 'coap+tcp' | 'coaps+tcp';
  private socket?: net.Socket;

  constructor(
    private readonly server: Peer,
    private readonly psk?: { identity: string; key: Buffer },
    private readonly localAddress?: string,
  ) {
    this.scheme = psk ? 'coaps+tcp' : 'coap+tcp';
  }

  open(host: StreamHost): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const { address: host_, port } = this.server;
      // TLS over a socket made here, so that it binds the local address asked for.
      const psk = this.psk;
      const raw = net.connect({ host: host_, port, localAddress: this.localAddress, noDelay: true });
      const socket = psk
        ? tls.connect({
            socket: raw,
            ciphers: CIPHERS,
            minVersion: 'TLSv1.2',
            ALPNProtocols: ['coap'],
            pskCallback: () => ({ psk: psk.key, identity: psk.identity }),
            checkServerIdentity: () => undefined,
          })
        : raw;
      this.socket = socket;
      const failed = (error: Error) => reject(error);
      socket.once('error', failed);
      socket.once(psk ? 'secureConnect' : 'connect', () => {
        socket.off('error', failed);
        socket.setNoDelay(true);
        const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
        host.ready(socket, { ...this.server }, psk ? { kind: 'psk', identity: psk.identity } : undefined);
        resolve(local);
      });
    });
  }

  get address(): Peer | undefined {
    const socket = this.socket;
    return socket && !socket.destroyed && socket.localPort !== undefined ? { address: socket.localAddress ?? '', port: socket.localPort } : undefined;
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }
}
