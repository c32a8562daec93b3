import type { Node, NodeAPI } from 'node-red';
import { ecPrivateKey, parseCertificates } from '../lib/dtls/credentials';
import type { Scheme } from '../lib/coap/message-layer';
import type { SecureListenerOptions, ServerCredentials, StreamListenerOptions, TlsListenerOptions } from '../lib/lwm2m/listeners';

/** The secure and stream listener fields a server config node shares with the bootstrap server node. */
export interface DtlsNodeDef {
  /** DTLS port; empty for none. */
  dtlsPort?: string | number;
  /** CoAP over TCP port (coap+tcp); empty for none. */
  tcpPort?: string | number;
  /** CoAP over TLS port (coaps+tcp); empty for none. */
  tlsPort?: string | number;
  /** The server's certificate chain (PEM), for devices in X.509 mode. */
  serverCertificate?: string;
  /** Authorities (PEM) whose device certificates are accepted. */
  trustedCertificates?: string;
}

export interface DtlsCredentialsDef {
  /** The server's ECDSA P-256 private key (PEM), for RPK and X.509 devices. */
  privateKey?: string;
}

/** A setting a config node cannot start with (its users fail every msg with the reason). */
export class SettingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingError';
  }
}

/** A port from the editor: undefined when left empty; anything but a whole number 0..65535 is refused, never replaced. */
export function portOf(value: string | number | undefined, field: string): number | undefined {
  if (value === undefined || value === null || String(value).trim() === '') return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 65535) throw new SettingError(`${field} ${JSON.stringify(value)} is not a port (0..65535)`);
  return number;
}

/** A positive number of seconds from the editor, in milliseconds; anything else is refused. */
export function secondsOf(value: string | number, field: string): number {
  const number = Number(value);
  if (String(value).trim() === '' || !Number.isFinite(number) || number <= 0) throw new SettingError(`${field} ${JSON.stringify(value)} is not a positive number of seconds`);
  return number * 1000;
}

/** The DTLS, TCP and TLS listeners a node asks for. */
export interface ExtraListeners {
  secure?: SecureListenerOptions;
  tcp?: StreamListenerOptions;
  tls?: TlsListenerOptions;
}

/**
 * The DTLS, TCP and TLS listeners a node asks for (each undefined when its
 * port is empty), the DTLS and TLS ones with the server's key and
 * certificates; an unusable key or certificate is reported (never shown) and
 * left out; a port that is not one throws SettingError.
 */
export function extraListeners(RED: NodeAPI, node: Node<DtlsCredentialsDef>, def: DtlsNodeDef, address: string, messages: string): ExtraListeners {
  const dtlsPort = portOf(def.dtlsPort, 'DTLS port');
  const tcpPort = portOf(def.tcpPort, 'TCP port');
  const tlsPort = portOf(def.tlsPort, 'TLS port');
  const credentials: ServerCredentials = {};
  if (dtlsPort !== undefined || tlsPort !== undefined) {
    try {
      if (node.credentials?.privateKey) credentials.privateKey = ecPrivateKey(node.credentials.privateKey);
      if (def.serverCertificate?.trim()) credentials.certificateChain = parseCertificates(def.serverCertificate).map((certificate) => certificate.raw);
      if (def.trustedCertificates?.trim()) credentials.certificateAuthorities = parseCertificates(def.trustedCertificates);
    } catch (error) {
      node.error(RED._(`${messages}.errors.serverKey`, { reason: (error as Error).message }));
    }
  }
  return {
    secure: dtlsPort === undefined ? undefined : { address, port: dtlsPort, ...credentials },
    tcp: tcpPort === undefined ? undefined : { address, port: tcpPort },
    tls: tlsPort === undefined ? undefined : { address, port: tlsPort, ...credentials },
  };
}

/** What SocketHost reports on a bind error. */
export function configuredListeners(address: string, port: number | undefined, extra: ExtraListeners): { scheme: Scheme; address: string; port: number }[] {
  return [
    ...(port !== undefined ? [{ scheme: 'coap' as const, address, port }] : []),
    ...(extra.secure ? [{ scheme: 'coaps' as const, address, port: extra.secure.port }] : []),
    ...(extra.tcp ? [{ scheme: 'coap+tcp' as const, address, port: extra.tcp.port }] : []),
    ...(extra.tls ? [{ scheme: 'coaps+tcp' as const, address, port: extra.tls.port }] : []),
  ];
}
