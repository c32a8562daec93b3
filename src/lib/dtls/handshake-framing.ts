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

/**
 * Puts handshake messages back together and hands them out in message_seq
 * order, whatever order and fragmentation they arrived in. Bounded: messages
 * too far ahead or too large are refused.
 */
export class HandshakeReassembler {
  private readonly pending = new Map<number, { type: number; body: Buffer; received: boolean[]; missing: number }>();
  private buffered = 0;

  constructor(
    public nextSeq: number,
    private readonly maxBytes = 32 * 1024,
    private readonly maxAhead = 8,
  ) {}

  /** Adds fragments; returns the messages now complete in order. Old (already delivered) fragments give back 'old'. */
  add(fragments: Fragment[]): { messages: HandshakeMessage[]; sawOld: boolean } {
    let sawOld = false;
    for (const fragment of fragments) {
      if (fragment.messageSeq < this.nextSeq) {
        sawOld = true;
        continue;
      }
      if (fragment.messageSeq >= this.nextSeq + this.maxAhead) continue;
      let entry = this.pending.get(fragment.messageSeq);
      if (!entry) {
        if (this.buffered + fragment.length > this.maxBytes) throw new DtlsDecodeError(`handshake messages over ${this.maxBytes} bytes`);
        this.buffered += fragment.length;
        entry = { type: fragment.type, body: Buffer.alloc(fragment.length), received: new Array<boolean>(fragment.length).fill(false), missing: fragment.length };
        this.pending.set(fragment.messageSeq, entry);
      } else if (entry.type !== fragment.type || entry.body.length !== fragment.length) {
        throw new DtlsDecodeError('handshake fragments of one message disagree');
      }
      fragment.data.copy(entry.body, fragment.offset);
      for (let i = fragment.offset; i < fragment.offset + fragment.data.length; i++) {
        if (!entry.received[i]) {
          entry.received[i] = true;
          entry.missing--;
        }
      }
    }
    const messages: HandshakeMessage[] = [];
    for (let entry = this.pending.get(this.nextSeq); entry && entry.missing === 0; entry = this.pending.get(this.nextSeq)) {
      this.pending.delete(this.nextSeq);
      this.buffered -= entry.body.length;
      messages.push({ type: entry.type, messageSeq: this.nextSeq, body: entry.body });
      this.nextSeq++;
    }
    return { messages, sawOld };
  }
}
