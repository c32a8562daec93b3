import { ECDH, KeyObject, createECDH, sign } from 'node:crypto';
import { ByteReader, DtlsDecodeError, uint16, uint16Vector, uint24Vector, uint8Vector } from './bytes';
import { AlertDescription, CertificateType, ECDSA_SECP256R1_SHA256, ECDSA_SIGN, SECP256R1 } from './constants';
import { DtlsAlertError } from './credentials';

/** Our ephemeral P-256 key and the signed parameters of the ServerKeyExchange (RFC 8422 5.4). */
export function ecdheServerKeyExchange(clientRandom: Buffer, serverRandom: Buffer, privateKey: KeyObject): { ecdh: ECDH; body: Buffer } {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const params = Buffer.concat([Buffer.from([3]), uint16(SECP256R1), uint8Vector(ecdh.getPublicKey())]);
  const signature = sign('sha256', Buffer.concat([clientRandom, serverRandom, params]), privateKey);
  return { ecdh, body: Buffer.concat([params, uint16(ECDSA_SECP256R1_SHA256), uint16Vector(signature)]) };
}

/** Asks for an ECDSA client certificate (or raw public key), with no CA names. */
export function certificateRequest(): Buffer {
  return Buffer.concat([uint8Vector(Buffer.from([ECDSA_SIGN])), uint16Vector(uint16(ECDSA_SECP256R1_SHA256)), uint16(0)]);
}

export function certificateMessage(type: number, spki: Buffer, chain: Buffer[] | undefined): Buffer {
  if (type === CertificateType.RawPublicKey) return uint24Vector(spki);
  return uint24Vector(Buffer.concat((chain ?? []).map((der) => uint24Vector(der))));
}

/** A client Certificate message: one raw public key, or a chain of DER certificates. */
export function parseCertificateMessage(body: Buffer, type: number): Buffer[] {
  const reader = new ByteReader(body);
  const content = reader.vector24();
  reader.end('Certificate');
  if (content.length === 0) return [];
  if (type === CertificateType.RawPublicKey) return [content];
  const list = new ByteReader(content);
  const chain: Buffer[] = [];
  while (list.remaining > 0) chain.push(list.vector24());
  return chain;
}

export function parsePskIdentity(body: Buffer): string {
  const reader = new ByteReader(body);
  const identity = reader.vector16();
  reader.end('ClientKeyExchange');
  if (identity.length === 0) throw new DtlsDecodeError('empty PSK identity');
  return identity.toString('utf8');
}

export function ecdhePreMaster(body: Buffer, ecdh: ECDH): Buffer {
  const reader = new ByteReader(body);
  const point = reader.vector8();
  reader.end('ClientKeyExchange');
  try {
    return ecdh.computeSecret(point);
  } catch {
    throw new DtlsAlertError(AlertDescription.IllegalParameter, 'client ECDH point is not on P-256');
  }
}

export function parseCertificateVerify(body: Buffer): Buffer {
  const reader = new ByteReader(body);
  const algorithm = reader.uint16();
  const signature = reader.vector16();
  reader.end('CertificateVerify');
  if (algorithm !== ECDSA_SECP256R1_SHA256) throw new DtlsAlertError(AlertDescription.IllegalParameter, `signature algorithm 0x${algorithm.toString(16)}`);
  return signature;
}
