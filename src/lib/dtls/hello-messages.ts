import { ByteReader, DtlsDecodeError, uint16, uint16Vector, uint8Vector } from './bytes';
import { DTLS_1_2, ExtensionType } from './constants';

export interface ClientHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  cipherSuites: number[];
  compressionMethods: Buffer;
  extensions: Map<number, Buffer>;
  /** The bytes the cookie is computed over: everything but the cookie itself. */
  cookieInput: Buffer;
}

export function parseClientHello(body: Buffer): ClientHello {
  const reader = new ByteReader(body);
  const version = reader.uint16();
  const random = reader.bytes(32);
  const sessionId = reader.vector8();
  if (sessionId.length > 32) throw new DtlsDecodeError('session id over 32 bytes');
  const cookieStart = 2 + 32 + 1 + sessionId.length;
  const cookie = reader.vector8();
  const suitesBytes = reader.vector16();
  if (suitesBytes.length % 2 !== 0 || suitesBytes.length === 0) throw new DtlsDecodeError('cipher suite list');
  const cipherSuites: number[] = [];
  for (let i = 0; i < suitesBytes.length; i += 2) cipherSuites.push(suitesBytes.readUInt16BE(i));
  const compressionMethods = reader.vector8();
  const extensions = new Map<number, Buffer>();
  if (reader.remaining > 0) {
    const list = new ByteReader(reader.vector16());
    while (list.remaining > 0) {
      const type = list.uint16();
      const data = list.vector16();
      if (extensions.has(type)) throw new DtlsDecodeError(`extension ${type} twice`);
      extensions.set(type, data);
    }
  }
  reader.end('ClientHello');
  const cookieInput = Buffer.concat([body.subarray(0, cookieStart), body.subarray(cookieStart + 1 + cookie.length)]);
  return { version, random, sessionId, cookie, cipherSuites, compressionMethods, extensions, cookieInput };
}

export function helloVerifyRequest(cookie: Buffer): Buffer {
  // RFC 6347 4.2.1: the version here is DTLS 1.0 whatever the version negotiated later.
  return Buffer.concat([uint16(0xfeff), uint8Vector(cookie)]);
}

export function serverHello(random: Buffer, sessionId: Buffer, cipherSuite: number, extensions: [number, Buffer][]): Buffer {
  const parts = [uint16(DTLS_1_2), random, uint8Vector(sessionId), uint16(cipherSuite), Buffer.from([0])];
  if (extensions.length > 0) parts.push(uint16Vector(Buffer.concat(extensions.map(([type, data]) => Buffer.concat([uint16(type), uint16Vector(data)])))));
  return Buffer.concat(parts);
}

/** uint16 lists (supported_groups, signature_algorithms) inside an extension. */
export function uint16List(data: Buffer | undefined, lengthBytes: 1 | 2 = 2): number[] | undefined {
  if (!data) return undefined;
  const reader = new ByteReader(data);
  const list = lengthBytes === 2 ? reader.vector16() : reader.vector8();
  reader.end('extension');
  if (list.length % 2 !== 0) throw new DtlsDecodeError('odd list length');
  const values: number[] = [];
  for (let i = 0; i < list.length; i += 2) values.push(list.readUInt16BE(i));
  return values;
}

/** uint8 lists (ec_point_formats, certificate types) inside an extension. */
export function uint8List(data: Buffer | undefined): number[] | undefined {
  if (!data) return undefined;
  const reader = new ByteReader(data);
  const list = reader.vector8();
  reader.end('extension');
  return [...list];
}

/** The connection id a client asks us to put on records we send it (may be empty). */
export function connectionIdOf(extensions: Map<number, Buffer>): Buffer | undefined {
  const data = extensions.get(ExtensionType.ConnectionId);
  if (!data) return undefined;
  const reader = new ByteReader(data);
  const cid = reader.vector8();
  reader.end('connection_id');
  return cid;
}
