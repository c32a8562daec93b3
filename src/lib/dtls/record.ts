import { ByteReader, DtlsDecodeError } from './bytes';
import { ContentType, DTLS_1_0, DTLS_1_2, MAX_CIPHERTEXT_LENGTH } from './constants';

export interface DtlsRecord {
  type: number;
  version: number;
  epoch: number;
  sequence: number;
  /** The connection id a tls12_cid record carries (RFC 9146). */
  cid?: Buffer;
  fragment: Buffer;
}

/**
 * Splits a datagram into its records. cidLength is the length of the
 * connection ids this side hands out: tls12_cid records do not say it.
 * A malformed record ends the datagram (RFC 6347 4.1.2.7: invalid records are dropped).
 */
export function parseRecords(datagram: Buffer, cidLength: number): { records: DtlsRecord[]; error?: string } {
  const records: DtlsRecord[] = [];
  const reader = new ByteReader(datagram);
  try {
    while (reader.remaining > 0) {
      const type = reader.uint8();
      const version = reader.uint16();
      if (version !== DTLS_1_2 && version !== DTLS_1_0) return { records, error: `record version 0x${version.toString(16)}` };
      const epoch = reader.uint16();
      const sequence = reader.uint48();
      let cid: Buffer | undefined;
      if (type === ContentType.Tls12Cid) {
        if (cidLength === 0) return { records, error: 'tls12_cid record without connection ids' };
        cid = reader.bytes(cidLength);
      } else if (type < ContentType.ChangeCipherSpec || type > ContentType.ApplicationData) {
        return { records, error: `record content type ${type}` };
      }
      const length = reader.uint16();
      if (length > MAX_CIPHERTEXT_LENGTH) return { records, error: `record of ${length} bytes` };
      records.push({ type, version, epoch, sequence, cid, fragment: reader.bytes(length) });
    }
  } catch (error) {
    if (error instanceof DtlsDecodeError) return { records, error: 'truncated record' };
    throw error;
  }
  return { records };
}

/** Record header fields in wire order, as the header and as MAC/AEAD input share them. */
export function recordHeader(type: number, epoch: number, sequence: number, length: number, cid?: Buffer): Buffer {
  const cidLength = cid ? cid.length : 0;
  const header = Buffer.allocUnsafe(13 + cidLength);
  header[0] = type;
  header.writeUInt16BE(DTLS_1_2, 1);
  header.writeUInt16BE(epoch, 3);
  header.writeUIntBE(sequence, 5, 6);
  if (cid) cid.copy(header, 11);
  header.writeUInt16BE(length, 11 + cidLength);
  return header;
}

export function encodeRecord(type: number, epoch: number, sequence: number, fragment: Buffer, cid?: Buffer): Buffer {
  return Buffer.concat([recordHeader(type, epoch, sequence, fragment.length, cid), fragment]);
}
