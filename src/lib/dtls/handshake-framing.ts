import { ByteReader, DtlsDecodeError } from './bytes';
import { HANDSHAKE_HEADER_LENGTH } from './constants';

export interface HandshakeMessage {
  type: number;
  messageSeq: number;
  body: Buffer;
}

interface Fragment {
  type: number;
  length: number;
  messageSeq: number;
  offset: number;
  data: Buffer;
}

/** Largest handshake fragment we send, so a flight fits datagrams under a typical 1280-byte IPv6 MTU. */
export const MAX_FRAGMENT = 1024;

/** The whole message with an unfragmented header: the form that goes into the handshake hash (RFC 6347 4.2.6). */
export function encodeHandshake(message: HandshakeMessage): Buffer {
  return fragmentBytes(message, 0, message.body.length);
}

/** A message as one or more fragments, each at most MAX_FRAGMENT long. */
export function fragmentHandshake(message: HandshakeMessage): Buffer[] {
  if (message.body.length <= MAX_FRAGMENT) return [encodeHandshake(message)];
  const fragments: Buffer[] = [];
  for (let offset = 0; offset < message.body.length; offset += MAX_FRAGMENT) {
    fragments.push(fragmentBytes(message, offset, Math.min(MAX_FRAGMENT, message.body.length - offset)));
  }
  return fragments;
}

function fragmentBytes(message: HandshakeMessage, offset: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HANDSHAKE_HEADER_LENGTH);
  header[0] = message.type;
  header.writeUIntBE(message.body.length, 1, 3);
  header.writeUInt16BE(message.messageSeq, 4);
  header.writeUIntBE(offset, 6, 3);
  header.writeUIntBE(length, 9, 3);
  return Buffer.concat([header, message.body.subarray(offset, offset + length)]);
}

export function parseFragments(record: Buffer): Fragment[] {
  const reader = new ByteReader(record);
  const fragments: Fragment[] = [];
  while (reader.remaining > 0) {
    const type = reader.uint8();
    const length = reader.uint24();
    const messageSeq = reader.uint16();
    const offset = reader.uint24();
    const data = reader.vector24();
    if (offset + data.length > length) throw new DtlsDecodeError('handshake fragment beyond its message');
    fragments.push({ type, length, messageSeq, offset, data });
  }
  return fragments;
}

/** A handshake message being put back together: copies of the byte ranges received so far, sorted and never overlapping. */
interface Partial {
  type: number;
  length: number;
  ranges: { start: number; data: Buffer }[];
  missing: number;
}

/**
 * Puts handshake messages back together and hands them out in message_seq
 * order, whatever order and fragmentation they arrived in. Keeps what it
 * received, no more (copies, so no datagram stays alive behind it), within a
 * byte budget and a few messages ahead; fragments that do not fit are
 * dropped (RFC 6347 4.1.2.7), never an error: a forged one costs nothing.
 */
export class HandshakeReassembler {
  private readonly pending = new Map<number, Partial>();
  private buffered = 0;

  constructor(
    public nextSeq: number,
    private readonly maxBytes = 32 * 1024,
    private readonly maxAhead = 8,
  ) {}

  /** Bytes held for messages not complete yet. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Adds fragments; returns the messages now complete in order, and whether any fragment was of an already delivered message. */
  add(fragments: Fragment[]): { messages: HandshakeMessage[]; sawOld: boolean } {
    let sawOld = false;
    for (const fragment of fragments) {
      if (fragment.messageSeq < this.nextSeq) {
        sawOld = true;
        continue;
      }
      if (fragment.messageSeq >= this.nextSeq + this.maxAhead || fragment.length > this.maxBytes) continue;
      let entry = this.pending.get(fragment.messageSeq);
      if (!entry) {
        entry = { type: fragment.type, length: fragment.length, ranges: [], missing: fragment.length };
        this.pending.set(fragment.messageSeq, entry);
      } else if (entry.type !== fragment.type || entry.length !== fragment.length) continue;
      this.insert(entry, fragment.offset, fragment.data);
    }
    const messages: HandshakeMessage[] = [];
    for (let entry = this.pending.get(this.nextSeq); entry && entry.missing === 0; entry = this.pending.get(this.nextSeq)) {
      this.pending.delete(this.nextSeq);
      const body = entry.ranges.length === 1 ? entry.ranges[0].data : Buffer.concat(entry.ranges.map((range) => range.data), entry.length);
      this.buffered -= entry.length;
      messages.push({ type: entry.type, messageSeq: this.nextSeq, body });
      this.nextSeq++;
    }
    return { messages, sawOld };
  }

  /** Copies in the parts of [offset, offset + data.length) not held yet, if the budget allows. */
  private insert(entry: Partial, offset: number, data: Buffer): void {
    let at = offset;
    const end = offset + data.length;
    const added: { start: number; data: Buffer }[] = [];
    for (const range of entry.ranges) {
      if (at >= end) break;
      const rangeEnd = range.start + range.data.length;
      if (rangeEnd <= at) continue;
      if (range.start > at) added.push({ start: at, data: data.subarray(at - offset, Math.min(range.start, end) - offset) });
      at = Math.max(at, rangeEnd);
    }
    if (at < end) added.push({ start: at, data: data.subarray(at - offset) });
    const newBytes = added.reduce((sum, range) => sum + range.data.length, 0);
    if (newBytes === 0 || this.buffered + newBytes > this.maxBytes) return;
    this.buffered += newBytes;
    entry.missing -= newBytes;
    for (const range of added) entry.ranges.push({ start: range.start, data: Buffer.from(range.data) });
    entry.ranges.sort((a, b) => a.start - b.start);
  }
}
