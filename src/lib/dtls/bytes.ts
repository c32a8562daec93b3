/** Thrown for any DTLS structure that does not parse; the record or message is dropped or answered with decode_error. */
export class DtlsDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DtlsDecodeError';
  }
}

/** Bounds-checked reading of TLS vectors. */
export class ByteReader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}

  get remaining(): number {
    return this.buffer.length - this.offset;
  }

  uint8(): number {
    this.need(1);
    return this.buffer[this.offset++];
  }

  uint16(): number {
    this.need(2);
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  uint24(): number {
    this.need(3);
    const value = this.buffer.readUIntBE(this.offset, 3);
    this.offset += 3;
    return value;
  }

  uint48(): number {
    this.need(6);
    const value = this.buffer.readUIntBE(this.offset, 6);
    this.offset += 6;
    return value;
  }

  bytes(length: number): Buffer {
    this.need(length);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  vector8(): Buffer {
    return this.bytes(this.uint8());
  }

  vector16(): Buffer {
    return this.bytes(this.uint16());
  }

  vector24(): Buffer {
    return this.bytes(this.uint24());
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  end(what: string): void {
    if (this.remaining !== 0) throw new DtlsDecodeError(`${this.remaining} bytes after the end of ${what}`);
  }

  private need(length: number): void {
    if (this.offset + length > this.buffer.length) throw new DtlsDecodeError('truncated');
  }
}

export function uint8Vector(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([data.length]), data]);
}

export function uint16Vector(data: Buffer): Buffer {
  const header = Buffer.alloc(2);
  header.writeUInt16BE(data.length);
  return Buffer.concat([header, data]);
}

export function uint24Vector(data: Buffer): Buffer {
  const header = Buffer.alloc(3);
  header.writeUIntBE(data.length, 0, 3);
  return Buffer.concat([header, data]);
}

export function uint16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}
