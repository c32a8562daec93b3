/**
 * A small CBOR (RFC 8949) codec for the LwM2M content formats: SenML CBOR,
 * LwM2M CBOR and plain CBOR. Decoding is strict and bounded, since the
 * bytes come from devices.
 */
import { decodeUtf8 } from './utf8';

export class CborError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CborError';
  }
}

/** A CBOR tag around a value (only tag 1, epoch time, has meaning for LwM2M). */
export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

/** A number that must be written as a CBOR float even when it is integral (a float resource holding 21). */
export class CborFloat {
  constructor(readonly value: number) {}
}

export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Buffer
  | CborValue[]
  | Map<CborValue, CborValue>
  | CborTag
  | CborFloat;

const MAX_DEPTH = 32;
const MAX_ITEMS = 100_000;
/** Additional information 31: an indefinite length (RFC 8949 section 3.2), or the break that ends one. */
const INDEFINITE = 31;
const BREAK = 0xff;
const MAJOR_NAMES = ['unsigned integer', 'negative integer', 'byte string', 'text string', 'array', 'map', 'tag', 'simple value'];

/**
 * Decodes one CBOR item, definite or indefinite length (RFC 8949 sections
 * 3.2.2 and 3.2.3), within MAX_DEPTH levels and MAX_ITEMS items (string
 * chunks and breaks count as items); anything else throws CborError.
 */
export function decodeCbor(bytes: Buffer): CborValue {
  const reader = new Reader(bytes);
  const value = reader.item(0);
  if (reader.offset !== bytes.length) throw new CborError(`${bytes.length - reader.offset} bytes after the CBOR item`);
  return value;
}

class Reader {
  offset = 0;
  private items = 0;
  constructor(private readonly bytes: Buffer) {}

  private need(count: number): void {
    if (this.offset + count > this.bytes.length) throw new CborError('CBOR data ends in the middle of an item');
  }

  private count(): void {
    if (++this.items > MAX_ITEMS) throw new CborError(`more than ${MAX_ITEMS} CBOR items`);
  }

  /** The argument of a head; callers that allow an indefinite length (31) check for it first. */
  private argument(major: number, info: number): number | bigint {
    if (info < 24) return info;
    switch (info) {
      case 24:
        this.need(1);
        return this.bytes[this.offset++];
      case 25:
        this.need(2);
        this.offset += 2;
        return this.bytes.readUInt16BE(this.offset - 2);
      case 26:
        this.need(4);
        this.offset += 4;
        return this.bytes.readUInt32BE(this.offset - 4);
      case 27: {
        this.need(8);
        this.offset += 8;
        const big = this.bytes.readBigUInt64BE(this.offset - 8);
        return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
      case INDEFINITE:
        throw new CborError(`a CBOR ${MAJOR_NAMES[major]} cannot have an indefinite length`);
      default:
        throw new CborError(`reserved CBOR additional information ${info}`);
    }
  }

  private length(major: number, info: number): number {
    const length = this.argument(major, info);
    if (typeof length === 'bigint' || length > this.bytes.length) throw new CborError('CBOR length larger than the data');
    return length;
  }

  /** True, past the break, when the next byte ends an indefinite-length item. */
  private atBreak(what: number): boolean {
    if (this.offset >= this.bytes.length) throw new CborError(`CBOR data ends before the break of an indefinite-length ${MAJOR_NAMES[what]}`);
    if (this.bytes[this.offset] !== BREAK) return false;
    this.offset++;
    this.count();
    return true;
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw new CborError(`CBOR nested deeper than ${MAX_DEPTH}`);
    this.count();
    this.need(1);
    const initial = this.bytes[this.offset++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case 0:
        return this.argument(major, info);
      case 1: {
        const n = this.argument(major, info);
        return typeof n === 'bigint' ? -1n - n : -1 - n;
      }
      case 2:
        if (info === INDEFINITE) return Buffer.concat(this.chunks(major));
        return Buffer.from(this.take(this.length(major, info)));
      case 3:
        if (info === INDEFINITE) return this.chunks(major).map(utf8).join('');
        return utf8(this.take(this.length(major, info)));
      case 4: {
        const array: CborValue[] = [];
        if (info === INDEFINITE) {
          while (!this.atBreak(major)) array.push(this.item(depth + 1));
          return array;
        }
        const length = this.length(major, info);
        for (let i = 0; i < length; i++) array.push(this.item(depth + 1));
        return array;
      }
      case 5: {
        const map = new Map<CborValue, CborValue>();
        if (info === INDEFINITE) {
          while (!this.atBreak(major)) {
            const key = this.item(depth + 1);
            // A break may end the map only where a key would start.
            if (this.bytes[this.offset] === BREAK) throw new CborError('CBOR break between a map key and its value');
            map.set(key, this.item(depth + 1));
          }
          return map;
        }
        const length = this.length(major, info);
        for (let i = 0; i < length; i++) {
          const key = this.item(depth + 1);
          map.set(key, this.item(depth + 1));
        }
        return map;
      }
      case 6: {
        const tag = this.argument(major, info);
        return new CborTag(Number(tag), this.item(depth + 1));
      }
      default:
        return this.simple(info);
    }
  }

  private take(length: number): Buffer {
    this.need(length);
    this.offset += length;
    return this.bytes.subarray(this.offset - length, this.offset);
  }

  /**
   * The chunks of an indefinite-length byte or text string up to its break:
   * definite-length strings of the same major type only (RFC 8949 section 3.2.3).
   */
  private chunks(major: number): Buffer[] {
    const name = MAJOR_NAMES[major];
    const chunks: Buffer[] = [];
    while (!this.atBreak(major)) {
      this.count();
      const initial = this.bytes[this.offset++];
      if (initial >> 5 !== major) throw new CborError(`a chunk of an indefinite-length ${name} must be a ${name}, not a ${MAJOR_NAMES[initial >> 5]}`);
      if ((initial & 0x1f) === INDEFINITE) throw new CborError(`a chunk of an indefinite-length ${name} cannot be indefinite itself`);
      chunks.push(this.take(this.length(major, initial & 0x1f)));
    }
    return chunks;
  }

  private simple(info: number): CborValue {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25: {
        this.need(2);
        this.offset += 2;
        return halfToNumber(this.bytes.readUInt16BE(this.offset - 2));
      }
      case 26:
        this.need(4);
        this.offset += 4;
        return this.bytes.readFloatBE(this.offset - 4);
      case 27:
        this.need(8);
        this.offset += 8;
        return this.bytes.readDoubleBE(this.offset - 8);
      case INDEFINITE:
        throw new CborError('CBOR break (0xff) where no indefinite-length item is open');
      default:
        throw new CborError(`unsupported CBOR simple value ${info}`);
    }
  }
}

/** A text string or one chunk of one: each chunk is UTF-8 on its own, so a character never spans two. */
function utf8(bytes: Buffer): string {
  try {
    return decodeUtf8(bytes);
  } catch {
    throw new CborError('CBOR text string is not valid UTF-8');
  }
}

function halfToNumber(half: number): number {
  const exponent = (half >> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  const sign = half & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * 2 ** -14 * (mantissa / 1024);
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
}

export function encodeCbor(value: CborValue): Buffer {
  const chunks: Buffer[] = [];
  write(value, chunks);
  return Buffer.concat(chunks);
}

function head(major: number, argument: number | bigint, chunks: Buffer[]): void {
  const n = typeof argument === 'bigint' ? argument : BigInt(argument);
  if (n < 24n) chunks.push(Buffer.from([(major << 5) | Number(n)]));
  else if (n < 0x100n) chunks.push(Buffer.from([(major << 5) | 24, Number(n)]));
  else if (n < 0x10000n) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(Number(n), 1);
    chunks.push(b);
  } else if (n < 0x100000000n) {
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(Number(n), 1);
    chunks.push(b);
  } else {
    const b = Buffer.alloc(9);
    b[0] = (major << 5) | 27;
    b.writeBigUInt64BE(n, 1);
    chunks.push(b);
  }
}

function write(value: CborValue, chunks: Buffer[]): void {
  if (value === false) chunks.push(Buffer.from([0xf4]));
  else if (value === true) chunks.push(Buffer.from([0xf5]));
  else if (value === null) chunks.push(Buffer.from([0xf6]));
  else if (value === undefined) chunks.push(Buffer.from([0xf7]));
  else if (typeof value === 'bigint') {
    if (value >= 0n) head(0, value, chunks);
    else head(1, -1n - value, chunks);
  } else if (typeof value === 'number') writeNumber(value, chunks);
  else if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    head(3, bytes.length, chunks);
    chunks.push(bytes);
  } else if (Buffer.isBuffer(value)) {
    head(2, value.length, chunks);
    chunks.push(value);
  } else if (Array.isArray(value)) {
    head(4, value.length, chunks);
    for (const item of value) write(item, chunks);
  } else if (value instanceof Map) {
    head(5, value.size, chunks);
    for (const [key, item] of value) {
      write(key, chunks);
      write(item, chunks);
    }
  } else if (value instanceof CborFloat) {
    writeFloat(value.value, chunks);
  } else if (value instanceof CborTag) {
    head(6, value.tag, chunks);
    write(value.value, chunks);
  } else throw new CborError(`cannot encode ${typeof value} as CBOR`);
}

/** Integers as CBOR integers; other numbers in the shortest float that keeps them exact. */
function writeNumber(value: number, chunks: Buffer[]): void {
  if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
    if (value >= 0) head(0, value, chunks);
    else head(1, -1 - value, chunks);
    return;
  }
  writeFloat(value, chunks);
}

function writeFloat(value: number, chunks: Buffer[]): void {
  const single = Buffer.alloc(5);
  single[0] = 0xfa;
  single.writeFloatBE(value, 1);
  if (single.readFloatBE(1) === value || Number.isNaN(value)) {
    chunks.push(single);
    return;
  }
  const double = Buffer.alloc(9);
  double[0] = 0xfb;
  double.writeDoubleBE(value, 1);
  chunks.push(double);
}
