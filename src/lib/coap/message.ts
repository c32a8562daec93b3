import { EMPTY_CODE, MessageType, codeClass } from './codes';

export interface CoapOption {
  number: number;
  value: Buffer;
}

export interface CoapMessage {
  type: MessageType;
  code: number;
  messageId: number;
  token: Buffer;
  /** Sorted by option number; repeated options keep their order. */
  options: CoapOption[];
  payload: Buffer;
}

/** A datagram that is not a well-formed CoAP message (RFC 7252 section 3). */
export class CoapFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CoapFormatError';
  }
}

const EMPTY = Buffer.alloc(0);
const PAYLOAD_MARKER = 0xff;
const MAX_TOKEN_LENGTH = 8;

export function decode(datagram: Buffer): CoapMessage {
  if (datagram.length < 4) throw new CoapFormatError(`datagram of ${datagram.length} bytes is shorter than a CoAP header`);
  const first = datagram[0];
  if (first >> 6 !== 1) throw new CoapFormatError(`unsupported CoAP version ${first >> 6}`);
  const type = ((first >> 4) & 0x3) as MessageType;
  const tokenLength = first & 0x0f;
  if (tokenLength > MAX_TOKEN_LENGTH) throw new CoapFormatError(`reserved token length ${tokenLength}`);
  const messageCode = datagram[1];
  const cls = codeClass(messageCode);
  if (cls === 1 || cls === 6 || cls === 7) throw new CoapFormatError(`reserved code class ${cls}`);
  const messageId = datagram.readUInt16BE(2);

  if (messageCode === EMPTY_CODE) {
    if (datagram.length !== 4 || tokenLength !== 0) throw new CoapFormatError('an empty message must be exactly 4 bytes');
    return { type, code: messageCode, messageId, token: EMPTY, options: [], payload: EMPTY };
  }
  if (4 + tokenLength > datagram.length) throw new CoapFormatError('token runs past the end of the datagram');
  return decodeBody(datagram, 4 + tokenLength, type, messageCode, messageId, datagram.subarray(4, 4 + tokenLength));
}

/**
 * The options and payload from index to the end (RFC 7252 section 3.1; the
 * same over TCP, RFC 8323 section 3.2), completing a message whose header
 * was read by the caller.
 */
export function decodeBody(bytes: Buffer, index: number, type: MessageType, code: number, messageId: number, token: Buffer): CoapMessage {
  const options: CoapOption[] = [];
  let number = 0;
  while (index < bytes.length) {
    const header = bytes[index++];
    if (header === PAYLOAD_MARKER) {
      if (index === bytes.length) throw new CoapFormatError('payload marker followed by an empty payload');
      return { type, code, messageId, token, options, payload: bytes.subarray(index) };
    }
    // Extended delta and length read inline: this runs for every option of every datagram.
    let delta = header >> 4;
    if (delta >= 13) {
      delta = readExtended(bytes, delta, index, 'delta');
      index += delta >= 269 ? 2 : 1;
    }
    let length = header & 0x0f;
    if (length >= 13) {
      length = readExtended(bytes, length, index, 'length');
      index += length >= 269 ? 2 : 1;
    }
    if (index + length > bytes.length) throw new CoapFormatError('option value runs past the end of the message');
    number += delta;
    options.push({ number, value: length === 0 ? EMPTY : bytes.subarray(index, index + length) });
    index += length;
  }
  return { type, code, messageId, token, options, payload: EMPTY };
}

/** The value of an extended option delta or length (nibble 13 or 14) at index; nibble 15 is reserved. */
function readExtended(datagram: Buffer, nibble: number, index: number, what: string): number {
  if (nibble === 15) throw new CoapFormatError(`reserved option ${what} 15`);
  if (nibble === 13) {
    if (index + 1 > datagram.length) throw new CoapFormatError(`truncated option ${what}`);
    return datagram[index] + 13;
  }
  if (index + 2 > datagram.length) throw new CoapFormatError(`truncated option ${what}`);
  return datagram.readUInt16BE(index) + 269;
}

export function encode(message: CoapMessage): Buffer {
  const { token } = message;
  if (token.length > MAX_TOKEN_LENGTH) throw new RangeError(`token of ${token.length} bytes is longer than 8`);
  const options = sortedOptions(message.options);
  const out = Buffer.allocUnsafe(4 + token.length + bodySize(options, message.payload));
  out[0] = 0x40 | (message.type << 4) | token.length;
  out[1] = message.code;
  out.writeUInt16BE(message.messageId, 2);
  writeBody(out, 4 + token.copy(out, 4), options, message.payload);
  return out;
}

/** The options in the order they are written: by number, repeated ones in their order. */
export function sortedOptions(options: CoapOption[]): CoapOption[] {
  return isSorted(options) ? options : [...options].sort((a, b) => a.number - b.number);
}

/** Bytes the options (sorted) and the payload take, with the payload marker. */
export function bodySize(options: CoapOption[], payload: Buffer): number {
  let size = payload.length > 0 ? 1 + payload.length : 0;
  let previous = 0;
  for (const option of options) {
    size += 1 + extendedSize(option.number - previous) + extendedSize(option.value.length) + option.value.length;
    previous = option.number;
  }
  return size;
}

/** Writes the options (sorted) and the payload at index; returns the index after them. */
export function writeBody(out: Buffer, index: number, options: CoapOption[], payload: Buffer): number {
  let previous = 0;
  for (const option of options) {
    const delta = option.number - previous;
    const length = option.value.length;
    const headerIndex = index++;
    index = writeExtended(out, delta, index);
    index = writeExtended(out, length, index);
    out[headerIndex] = (nibble(delta) << 4) | nibble(length);
    index += option.value.copy(out, index);
    previous = option.number;
  }
  if (payload.length > 0) {
    out[index++] = PAYLOAD_MARKER;
    index += payload.copy(out, index);
  }
  return index;
}

function isSorted(options: CoapOption[]): boolean {
  for (let i = 1; i < options.length; i++) if (options[i].number < options[i - 1].number) return false;
  return true;
}

function extendedSize(value: number): number {
  return value < 13 ? 0 : value < 269 ? 1 : 2;
}

function nibble(value: number): number {
  return value < 13 ? value : value < 269 ? 13 : 14;
}

function writeExtended(out: Buffer, value: number, index: number): number {
  if (value < 13) return index;
  if (value < 269) {
    out[index] = value - 13;
    return index + 1;
  }
  if (value > 65804) throw new RangeError(`option delta or length ${value} is too large`);
  out.writeUInt16BE(value - 269, index);
  return index + 2;
}

/** Reads the message id of a datagram too broken to decode, so a confirmable one can still be rejected with a Reset. */
export function peekConfirmableMessageId(datagram: Buffer): number | undefined {
  if (datagram.length < 4 || datagram[0] >> 6 !== 1) return undefined;
  if (((datagram[0] >> 4) & 0x3) !== MessageType.Confirmable) return undefined;
  return datagram.readUInt16BE(2);
}
