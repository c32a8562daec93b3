import { MessageType, codeClass } from './codes';
import { CoapFormatError, CoapMessage, CoapOption, bodySize, decodeBody, sortedOptions, writeBody } from './message';

/**
 * The message format of CoAP over TCP and TLS (RFC 8323 section 3.2):
 *
 *   Len (4 bits) | TKL (4 bits) | Extended Length (0, 1, 2 or 4 bytes) | Code | Token | Options | 0xFF Payload
 *
 * Len is the length of the options and payload (with its marker): up to 12
 * in the nibble, 13 + one byte, 269 + two bytes, 65805 + four bytes. There is
 * no version, type or message id: the stream is reliable and ordered.
 */

const MAX_TOKEN_LENGTH = 8;
const EMPTY = Buffer.alloc(0);
/** How many bytes of a frame tell its length: the first byte and up to four of extended length. */
const LENGTH_HEADER_MAX = 5;

/** A frame the connection cannot go on after: bad header, or larger than what we take. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** A message to write over a stream: what CoapMessage has, without type and message id. */
export interface StreamMessage {
  code: number;
  token: Buffer;
  options: CoapOption[];
  payload: Buffer;
}

export function encodeFrame(message: StreamMessage): Buffer {
  const { token, payload } = message;
  if (token.length > MAX_TOKEN_LENGTH) throw new RangeError(`token of ${token.length} bytes is longer than 8`);
  const options = sortedOptions(message.options);
  const length = bodySize(options, payload);
  const extended = length < 13 ? 0 : length < 269 ? 1 : length < 65805 ? 2 : 4;
  const out = Buffer.allocUnsafe(1 + extended + 1 + token.length + length);
  let index = 1;
  if (extended === 0) out[0] = (length << 4) | token.length;
  else if (extended === 1) {
    out[0] = (13 << 4) | token.length;
    out[index++] = length - 13;
  } else if (extended === 2) {
    out[0] = (14 << 4) | token.length;
    out.writeUInt16BE(length - 269, index);
    index += 2;
  } else {
    out[0] = (15 << 4) | token.length;
    out.writeUInt32BE(length - 65805, index);
    index += 4;
  }
  out[index++] = message.code;
  index += token.copy(out, index);
  writeBody(out, index, options, payload);
  return out;
}

/**
 * The whole length of the frame starting at offset, or undefined while too
 * few bytes are there to tell; throws FrameError for a reserved token length.
 */
export function frameLength(bytes: Buffer, offset: number): number | undefined {
  const available = bytes.length - offset;
  if (available < 1) return undefined;
  const first = bytes[offset];
  const tokenLength = first & 0x0f;
  if (tokenLength > MAX_TOKEN_LENGTH) throw new FrameError(`reserved token length ${tokenLength}`);
  const nibble = first >> 4;
  if (nibble < 13) return 2 + tokenLength + nibble;
  if (nibble === 13) return available < 2 ? undefined : 3 + tokenLength + bytes[offset + 1] + 13;
  if (nibble === 14) return available < 3 ? undefined : 4 + tokenLength + bytes.readUInt16BE(offset + 1) + 269;
  return available < 5 ? undefined : 6 + tokenLength + bytes.readUInt32BE(offset + 1) + 65805;
}

/** Decodes exactly one frame (as frameLength measured it). Type and message id are set to what no stream message has: non-confirmable, 0. */
export function decodeFrame(frame: Buffer): CoapMessage {
  const first = frame[0];
  const tokenLength = first & 0x0f;
  const nibble = first >> 4;
  const codeAt = nibble < 13 ? 1 : nibble === 13 ? 2 : nibble === 14 ? 3 : 5;
  if (codeAt + 1 + tokenLength > frame.length) throw new CoapFormatError('token runs past the end of the frame');
  const code = frame[codeAt];
  const cls = codeClass(code);
  if (cls === 1 || cls === 6) throw new CoapFormatError(`reserved code class ${cls}`);
  const token = tokenLength === 0 ? EMPTY : frame.subarray(codeAt + 1, codeAt + 1 + tokenLength);
  return decodeBody(frame, codeAt + 1 + tokenLength, MessageType.NonConfirmable, code, 0, token);
}

/**
 * Cuts a byte stream into frames, holding at most one incomplete frame: it
 * is copied once into a buffer of its announced size (never re-concatenated
 * per chunk), and a frame announced larger than maxFrameBytes is refused
 * before anything of it is kept.
 */
export class FrameReader {
  /** The incomplete frame: its header bytes until the length is known, then the whole frame being filled. */
  private partial: Buffer | undefined = undefined;
  private filled = 0;
  private lengthKnown = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (frame: Buffer) => void,
  ) {}

  /** Bytes held for an incomplete frame (0 between frames). */
  get held(): number {
    return this.partial === undefined ? 0 : this.partial.length;
  }

  /** Whether an incomplete frame is waiting for more bytes. */
  get midFrame(): boolean {
    return this.partial !== undefined;
  }

  /** Takes the next bytes; calls onFrame for every complete frame; throws FrameError when the stream cannot go on. */
  push(chunk: Buffer): void {
    let offset = 0;
    if (this.partial !== undefined) {
      offset = this.fill(chunk);
      if (this.partial !== undefined) return;
    }
    while (offset < chunk.length) {
      const length = frameLength(chunk, offset);
      if (length !== undefined) this.check(length);
      if (length !== undefined && offset + length <= chunk.length) {
        // The common case: a whole frame inside the chunk, handed over without a copy.
        this.onFrame(chunk.subarray(offset, offset + length));
        offset += length;
        continue;
      }
      // Keep what there is of the next frame.
      if (length === undefined) {
        this.partial = Buffer.allocUnsafe(LENGTH_HEADER_MAX);
        this.lengthKnown = false;
      } else {
        this.partial = Buffer.allocUnsafe(length);
        this.lengthKnown = true;
      }
      this.filled = 0;
      this.fill(chunk.subarray(offset));
      return;
    }
  }

  /** Copies into the incomplete frame; returns how much of chunk it took. Hands the frame over once complete. */
  private fill(chunk: Buffer): number {
    let taken = 0;
    let partial = this.partial as Buffer;
    if (!this.lengthKnown) {
      // Header bytes, one at a time until the length can be read (at most five).
      while (taken < chunk.length) {
        partial[this.filled++] = chunk[taken++];
        const length = frameLength(partial.subarray(0, this.filled), 0);
        if (length === undefined) continue;
        this.check(length);
        const frame = Buffer.allocUnsafe(length);
        partial.copy(frame, 0, 0, this.filled);
        this.partial = partial = frame;
        this.lengthKnown = true;
        break;
      }
      if (!this.lengthKnown) return taken;
    }
    const copied = chunk.copy(partial, this.filled, taken, Math.min(chunk.length, taken + partial.length - this.filled));
    this.filled += copied;
    taken += copied;
    if (this.filled === partial.length) {
      this.partial = undefined;
      this.onFrame(partial);
    }
    return taken;
  }

  private check(length: number): void {
    if (length > this.maxFrameBytes) throw new FrameError(`message of ${length} bytes is larger than the ${this.maxFrameBytes} bytes this endpoint takes (Max-Message-Size)`);
  }
}
