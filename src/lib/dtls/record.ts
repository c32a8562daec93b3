import { ByteReader, DtlsDecodeError } from './bytes';
import { ContentType, DTLS_1_2, MAX_CIPHERTEXT_LENGTH } from './constants';

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
 * Any DTLS version (0xfeXX) parses: a first ClientHello may come in a record
 * of another version than it asks for (mbedTLS sends 0xfe00), which the
 * server negotiates from the hello itself; it checks the version of the rest.
 */
export function parseRecords(datagram: Buffer, cidLength: number): { records: DtlsRecord[]; error?: string } {
  const records: DtlsRecord[] = [];
  const reader = new ByteReader(datagram);
  try {
    while (reader.remaining > 0) {
      const type = reader.uint8();
      const version = reader.uint16();
      if (version >> 8 !== 0xfe) return { records, error: `record version 0x${version.toString(16)}` };
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

/** An unprotected record (epoch 0: handshake, alerts, ChangeCipherSpec). */
export function encodeRecord(type: number, epoch: number, sequence: number, fragment: Buffer): Buffer {
  const record = Buffer.allocUnsafe(13 + fragment.length);
  record[0] = type;
  record.writeUInt16BE(DTLS_1_2, 1);
  record.writeUInt16BE(epoch, 3);
  record.writeUIntBE(sequence, 5, 6);
  record.writeUInt16BE(fragment.length, 11);
  fragment.copy(record, 13);
  return record;
}
