/** CoAP constants from RFC 7252, RFC 7959 and RFC 7641. */

export const enum MessageType {
  Confirmable = 0,
  NonConfirmable = 1,
  Acknowledgement = 2,
  Reset = 3,
}

/** Encodes a code "c.dd" as the single byte of the header. */
export function code(codeClass: number, detail: number): number {
  return (codeClass << 5) | detail;
}

export function codeClass(value: number): number {
  return value >> 5;
}

/** Formats a code byte as "2.05". */
/** "2.05" for every code byte, made once: each response and notification is described by it. */
const CODE_TEXTS = Array.from({ length: 256 }, (_, value) => {
  const detail = value & 0x1f;
  return `${value >> 5}.${detail < 10 ? '0' : ''}${detail}`;
});

export function formatCode(value: number): string {
  return CODE_TEXTS[value & 0xff];
}

export const Method = {
  GET: code(0, 1),
  POST: code(0, 2),
  PUT: code(0, 3),
  DELETE: code(0, 4),
  FETCH: code(0, 5),
  PATCH: code(0, 6),
  IPATCH: code(0, 7),
} as const;

export const MethodName: Record<number, string> = Object.fromEntries(
  Object.entries(Method).map(([name, value]) => [value, name]),
);

export const EMPTY_CODE = 0;

export const ResponseCode = {
  Created: code(2, 1),
  Deleted: code(2, 2),
  Valid: code(2, 3),
  Changed: code(2, 4),
  Content: code(2, 5),
  Continue: code(2, 31),
  BadRequest: code(4, 0),
  Unauthorized: code(4, 1),
  BadOption: code(4, 2),
  Forbidden: code(4, 3),
  NotFound: code(4, 4),
  MethodNotAllowed: code(4, 5),
  NotAcceptable: code(4, 6),
  RequestEntityIncomplete: code(4, 8),
  PreconditionFailed: code(4, 12),
  RequestEntityTooLarge: code(4, 13),
  UnsupportedContentFormat: code(4, 15),
  InternalServerError: code(5, 0),
  NotImplemented: code(5, 1),
  ServiceUnavailable: code(5, 3),
  ProxyingNotSupported: code(5, 5),
} as const;

export const OptionNumber = {
  IfMatch: 1,
  UriHost: 3,
  ETag: 4,
  IfNoneMatch: 5,
  Observe: 6,
  UriPort: 7,
  LocationPath: 8,
  UriPath: 11,
  ContentFormat: 12,
  MaxAge: 14,
  UriQuery: 15,
  Accept: 17,
  LocationQuery: 20,
  Block2: 23,
  Block1: 27,
  Size2: 28,
  ProxyUri: 35,
  ProxyScheme: 39,
  Size1: 60,
  NoResponse: 258,
} as const;

export const ContentFormat = {
  TextPlain: 0,
  LinkFormat: 40,
  OctetStream: 42,
  Cbor: 60,
  SenmlJson: 110,
  SenmlCbor: 112,
  /** SenML FETCH and (i)PATCH packs (RFC 8790). */
  SenmlEtchJson: 320,
  SenmlEtchCbor: 322,
  Tlv: 11542,
  Lwm2mJson: 11543,
  Lwm2mCbor: 11544,
} as const;

/** Transmission parameters of RFC 7252 section 4.8, in milliseconds. */
export interface TransmissionParameters {
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
  /** How long a received message id is remembered for deduplication (EXCHANGE_LIFETIME). */
  exchangeLifetimeMs: number;
}

export const DEFAULT_TRANSMISSION: TransmissionParameters = {
  ackTimeoutMs: 2000,
  ackRandomFactor: 1.5,
  maxRetransmit: 4,
  exchangeLifetimeMs: 247_000,
};
