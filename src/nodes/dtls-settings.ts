import type { Node, NodeAPI } from 'node-red';
import { ecPrivateKey, parseCertificates } from '../lib/dtls/credentials';
import type { SecureListenerOptions } from '../lib/lwm2m/listeners';

/** The DTLS fields a server config node shares with the bootstrap server node. */
export interface DtlsNodeDef {
  /** DTLS port; empty for none. */
  dtlsPort?: string | number;
  /** The server's certificate chain (PEM), for devices in X.509 mode. */
  serverCertificate?: string;
  /** Authorities (PEM) whose device certificates are accepted. */
  trustedCertificates?: string;
}

export interface DtlsCredentialsDef {
  /** The server's ECDSA P-256 private key (PEM), for RPK and X.509 devices. */
  privateKey?: string;
}

/** A port from the editor: undefined when left empty, the fallback when not a valid port. */
export function portOf(value: string | number | undefined, fallback: number): number | undefined {
  if (value === undefined || value === null || String(value).trim() === '') return undefined;
  const number = Number(value);
  return Number.isInteger(number) && number >= 0 && number <= 65535 ? number : fallback;
}

/** The DTLS listener a node asks for, or undefined; an unusable key or certificate is reported (never shown) and left out. */
export function secureListener(
  RED: NodeAPI,
  node: Node<DtlsCredentialsDef>,
  def: DtlsNodeDef,
  address: string,
  defaultPort: number,
  messages: string,
): SecureListenerOptions | undefined {
  const port = portOf(def.dtlsPort, defaultPort);
  if (port === undefined) return undefined;
  const secure: SecureListenerOptions = { address, port };
  try {
    if (node.credentials?.privateKey) secure.privateKey = ecPrivateKey(node.credentials.privateKey);
    if (def.serverCertificate?.trim()) secure.certificateChain = parseCertificates(def.serverCertificate).map((certificate) => certificate.raw);
    if (def.trustedCertificates?.trim()) secure.certificateAuthorities = parseCertificates(def.trustedCertificates);
  } catch (error) {
    node.error(RED._(`${messages}.errors.serverKey`, { reason: (error as Error).message }));
  }
  return secure;
}

/** What SocketHost reports on a bind error. */
export function configuredListeners(address: string, port: number | undefined, secure: SecureListenerOptions | undefined) {
  return [
    ...(port !== undefined ? [{ scheme: 'coap' as const, address, port }] : []),
    ...(secure ? [{ scheme: 'coaps' as const, address, port: secure.port }] : []),
  ];
}
