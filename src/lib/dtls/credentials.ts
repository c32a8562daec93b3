import { KeyObject, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { AlertDescription } from './constants';

/** Who the peer proved to be in the handshake. */
export type PeerIdentity =
  | { kind: 'psk'; identity: string }
  /** The client's SubjectPublicKeyInfo, DER in base64. */
  | { kind: 'rpk'; publicKey: string }
  | { kind: 'x509'; commonName: string; subject: string };

/** A fatal handshake failure with the alert the peer is sent. */
export class DtlsAlertError extends Error {
  constructor(
    readonly alert: number,
    message: string,
  ) {
    super(message);
    this.name = 'DtlsAlertError';
  }
}

/** What the server authenticates with and whom it trusts. Keys never leave this object in messages or logs. */
export interface DtlsCredentials {
  /** The pre-shared key for a PSK identity, or undefined when the identity is unknown. */
  pskKey?(identity: string): Buffer | undefined;
  /** The server's ECDSA P-256 key, for ECDHE_ECDSA suites. */
  privateKey?: KeyObject;
  /** The server's certificate chain (DER, leaf first), for clients that want X.509. */
  certificateChain?: Buffer[];
  /** True for client raw public keys (SPKI DER) that are allowed in. */
  trustsRawPublicKey?(spki: Buffer): boolean;
  /** Trust anchors for client certificates. */
  certificateAuthorities?: X509Certificate[];
}

/** Reads a PEM or DER private key and checks it is an ECDSA P-256 key. */
export function ecPrivateKey(pem: string | Buffer): KeyObject {
  const key = createPrivateKey(typeof pem === 'string' && !pem.includes('-----BEGIN') ? { key: Buffer.from(pem, 'base64'), format: 'der', type: 'pkcs8' } : pem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('the key is not an ECDSA P-256 (secp256r1) key');
  return key;
}

/** SubjectPublicKeyInfo DER of a key, the form raw public keys travel in (RFC 7250). */
export function spkiOf(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ format: 'der', type: 'spki' });
}

/** Reads a public key given as PEM, base64 SPKI DER or hex SPKI DER; returns its SPKI DER. */
export function parsePublicKey(text: string): Buffer {
  const trimmed = text.trim();
  let key: KeyObject;
  if (trimmed.includes('-----BEGIN')) key = createPublicKey(trimmed);
  else {
    const der = /^[0-9a-fA-F]+$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
    key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('the public key is not an ECDSA P-256 (secp256r1) key');
  return spkiOf(key);
}

/** Splits a PEM bundle into certificates. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}

export function commonNameOf(certificate: X509Certificate): string | undefined {
  for (const line of certificate.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** Checks a client's raw public key against the trusted ones. */
export function authenticateRawPublicKey(spki: Buffer, credentials: DtlsCredentials): { identity: PeerIdentity; publicKey: KeyObject } {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new DtlsAlertError(AlertDescription.BadCertificate, 'raw public key does not parse');
  }
  if (publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new DtlsAlertError(AlertDescription.UnsupportedCertificate, 'raw public key is not P-256');
  const normalized = spkiOf(publicKey);
  if (!credentials.trustsRawPublicKey?.(normalized)) throw new DtlsAlertError(AlertDescription.AccessDenied, 'raw public key not trusted');
  return { identity: { kind: 'rpk', publicKey: normalized.toString('base64') }, publicKey };
}

/** Verifies a client certificate chain (leaf first) up to a trust anchor. */
export function authenticateCertificateChain(
  ders: Buffer[],
  credentials: DtlsCredentials,
  now = new Date(),
): { identity: PeerIdentity; publicKey: KeyObject } {
  if (ders.length === 0) throw new DtlsAlertError(AlertDescription.HandshakeFailure, 'no client certificate');
  let chain: X509Certificate[];
  try {
    chain = ders.map((der) => new X509Certificate(der));
  } catch {
    throw new DtlsAlertError(AlertDescription.BadCertificate, 'certificate does not parse');
  }
  for (const certificate of chain) {
    if (new Date(certificate.validFrom) > now || new Date(certificate.validTo) < now) {
      throw new DtlsAlertError(AlertDescription.CertificateExpired, `certificate ${certificate.subject.replace(/\n/g, ', ')} is outside its validity`);
    }
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i + 1].ca || !chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey)) {
      throw new DtlsAlertError(AlertDescription.BadCertificate, 'certificate chain does not link up');
    }
  }
  const last = chain[chain.length - 1];
  const anchored = (credentials.certificateAuthorities ?? []).some(
    (anchor) => anchor.fingerprint256 === last.fingerprint256 || (anchor.ca && last.checkIssued(anchor) && last.verify(anchor.publicKey)),
  );
  if (!anchored) throw new DtlsAlertError(AlertDescription.UnknownCa, 'certificate not issued by a trusted authority');
  const leaf = chain[0];
  if (leaf.publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new DtlsAlertError(AlertDescription.UnsupportedCertificate, 'certificate key is not P-256');
  const commonName = commonNameOf(leaf);
  if (!commonName) throw new DtlsAlertError(AlertDescription.BadCertificate, 'certificate has no common name');
  return { identity: { kind: 'x509', commonName, subject: leaf.subject.replace(/\n/g, ', ') }, publicKey: leaf.publicKey };
}

/** Characters of unauthenticated text shown at most in logs and events. */
const SHOWN_CHARACTERS = 64;

/**
 * Text a peer chose (a PSK identity before it is authenticated, a certificate
 * name) as logs and events show it: quoted, control and non-ASCII characters
 * escaped, cut after 64 characters with the full length said, so it cannot
 * forge log lines, drive a terminal or fill a log.
 */
export function printable(text: string): string {
  const shown = text.length > SHOWN_CHARACTERS ? text.slice(0, SHOWN_CHARACTERS) : text;
  const escaped = JSON.stringify(shown).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length > SHOWN_CHARACTERS ? `${escaped}... (${Buffer.byteLength(text)} bytes)` : escaped;
}

/** How an identity is shown in logs and msgs: never a key, never raw peer text. */
export function describeIdentity(identity: PeerIdentity): string {
  switch (identity.kind) {
    case 'psk':
      return `PSK identity ${printable(identity.identity)}`;
    case 'rpk':
      return `raw public key ${identity.publicKey.slice(-16)}`;
    case 'x509':
      return `certificate CN=${printable(identity.commonName)}`;
  }
}
