/** Block1/Block2 option values of RFC 7959 section 2.2. */
export interface BlockValue {
  num: number;
  more: boolean;
  /** Block size exponent: the block holds 2^(szx + 4) bytes. */
  szx: number;
}

export function decodeBlock(value: number): BlockValue | undefined {
  const szx = value & 0x7;
  if (szx === 7) return undefined;
  return { num: Math.floor(value / 16), more: (value & 0x8) !== 0, szx };
}

export function encodeBlock(block: BlockValue): number {
  return block.num * 16 + (block.more ? 8 : 0) + block.szx;
}

export function blockSize(szx: number): number {
  return 1 << (szx + 4);
}
