/** Record content types (RFC 5246 6.2.1, RFC 9146 for tls12_cid). */
export const ContentType = {
  ChangeCipherSpec: 20,
  Alert: 21,
  Handshake: 22,
  ApplicationData: 23,
  Tls12Cid: 25,
} as const;

export const HandshakeType = {
  HelloRequest: 0,
  ClientHello: 1,
  ServerHello: 2,
  HelloVerifyRequest: 3,
  Certificate: 11,
  ServerKeyExchange: 12,
  CertificateRequest: 13,
  ServerHelloDone: 14,
  CertificateVerify: 15,
  ClientKeyExchange: 16,
  Finished: 20,
} as const;

export const AlertLevel = { Warning: 1, Fatal: 2 } as const;

export const AlertDescription = {
  CloseNotify: 0,
  UnexpectedMessage: 10,
  BadRecordMac: 20,
  HandshakeFailure: 40,
  BadCertificate: 42,
  UnsupportedCertificate: 43,
  CertificateExpired: 45,
  CertificateUnknown: 46,
  IllegalParameter: 47,
  UnknownCa: 48,
  AccessDenied: 49,
  DecodeError: 50,
  DecryptError: 51,
  ProtocolVersion: 70,
  InsufficientSecurity: 71,
  InternalError: 80,
  NoRenegotiation: 100,
  UnsupportedExtension: 110,
  UnknownPskIdentity: 115,
} as const;

export const ExtensionType = {
  SupportedGroups: 10,
  EcPointFormats: 11,
  SignatureAlgorithms: 13,
  ClientCertificateType: 19,
  ServerCertificateType: 20,
  ExtendedMasterSecret: 23,
  ConnectionId: 54,
  RenegotiationInfo: 0xff01,
} as const;

/** Certificate types of RFC 7250. */
export const CertificateType = { X509: 0, RawPublicKey: 2 } as const;

export const DTLS_1_2 = 0xfefd;
export const DTLS_1_0 = 0xfeff;
export const SECP256R1 = 23;
export const ECDSA_SECP256R1_SHA256 = 0x0403;
export const ECDSA_SIGN = 64;
export const EMPTY_RENEGOTIATION_SCSV = 0x00ff;

export const RECORD_HEADER_LENGTH = 13;
export const HANDSHAKE_HEADER_LENGTH = 12;
/** Largest plaintext fragment (2^14) plus the expansion allowed for ciphertext (RFC 5246 6.2.3). */
export const MAX_CIPHERTEXT_LENGTH = 16384 + 2048;

export function alertName(description: number): string {
  for (const [name, value] of Object.entries(AlertDescription)) if (value === description) return name;
  return `alert ${description}`;
}
