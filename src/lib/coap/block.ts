/** Block1/Block2 option values of RFC 7959 section 2.2. */
export interface BlockValue {
  num: number;
  more: boolean;
  /** Block size exponent: the block holds 2^(szx + 4) bytes. */
  szx: number;
}

/** SZX 7 is reserved, except where BERT is agreed (RFC 8323 section 6): then it stands for blocks of any number of 1024-byte units. */
export function decodeBlock(value: number, bert = false): BlockValue | undefined {
  const szx = value & 0x7;
  if (szx === 7 && !bert) return undefined;
  return { num: Math.floor(value / 16), more: (value & 0x8) !== 0, szx };
}

export function encodeBlock(block: BlockValue): number {
  return block.num * 16 + (block.more ? 8 : 0) + block.szx;
}

/** The block size of an SZX; for BERT (7), its unit of 1024 bytes. */
export function blockSize(szx: number): number {
  return szx === 7 ? 1024 : 1 << (szx + 4);
}
