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

/** The DTLS listener a node asks for, or undefined; an unusable key or certificate is reported (never shown) and left out. */
export function secureListener(
  RED: NodeAPI,
  node: Node<DtlsCredentialsDef>,
  def: DtlsNodeDef,
  address: string,
  messages: string,
): SecureListenerOptions | undefined {
  const port = portOf(def.dtlsPort, 'DTLS port');
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
