import { Cipher, createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ContentType, DTLS_1_2, RECORD_HEADER_LENGTH } from './constants';
import type { DtlsRecord } from './record';

export type KeyExchange = 'psk' | 'ecdhe_ecdsa';

export interface CipherSuite {
  id: number;
  name: string;
  keyExchange: KeyExchange;
  cipher: 'ccm8' | 'cbc_sha256';
}

/** In the server's order of preference. */
export const CIPHER_SUITES: readonly CipherSuite[] = [
  { id: 0xc0a8, name: 'TLS_PSK_WITH_AES_128_CCM_8', keyExchange: 'psk', cipher: 'ccm8' },
  { id: 0x00ae, name: 'TLS_PSK_WITH_AES_128_CBC_SHA256', keyExchange: 'psk', cipher: 'cbc_sha256' },
  { id: 0xc0ae, name: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', keyExchange: 'ecdhe_ecdsa', cipher: 'ccm8' },
];

const KEY_LENGTH = 16;
const CCM_FIXED_IV = 4;
const CCM_EXPLICIT_NONCE = 8;
const CCM_TAG = 8;
const MAC_LENGTH = 32;
const BLOCK = 16;

export function keyBlockLength(suite: CipherSuite): number {
  return suite.cipher === 'ccm8' ? 2 * (KEY_LENGTH + CCM_FIXED_IV) : 2 * (MAC_LENGTH + KEY_LENGTH);
}

/** Work space for CCM's blocks, reused by every record (the record path is synchronous); grown when a larger record comes. */
let scratch = Buffer.alloc(4096);

function scratchOf(length: number): Buffer {
  if (scratch.length < length) scratch = Buffer.alloc(Math.max(length, scratch.length * 2));
  return scratch;
}

/**
 * AES-128-CCM with 8-byte tags (RFC 3610, RFC 6655) on two AES objects made
 * once per key: CBC-MAC on a CBC cipher whose chaining carries over between
 * records (each message's first block is XORed with the last output block,
 * which restarts the chain from a zero IV), and the counter blocks on ECB.
 * Node's aes-128-ccm needs a new cipher object, a nonce, an AAD call and a
 * tag call per record: about twice the time of this on DTLS-sized records.
 */
class Ccm8 {
  private readonly mac: Cipher;
  private readonly ctr: Cipher;
  private chain = Buffer.alloc(BLOCK);

  constructor(key: Buffer) {
    this.mac = createCipheriv('aes-128-cbc', key, Buffer.alloc(BLOCK)).setAutoPadding(false);
    this.ctr = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  }

  /** Encrypts `plaintext` into out at `at`, followed by the 8-byte tag. */
  seal(nonce: Buffer, aad: Buffer, aadLength: number, plaintext: Buffer, out: Buffer, at: number): void {
    const keystream = this.keystream(nonce, plaintext.length);
    const tag = this.tag(nonce, aad, aadLength, plaintext);
    const length = plaintext.length;
    for (let i = 0; i < length; i++) out[at + i] = plaintext[i] ^ keystream[BLOCK + i];
    for (let i = 0; i < CCM_TAG; i++) out[at + length + i] = tag[i] ^ keystream[i];
  }

  /** Decrypts and authenticates; undefined when the tag does not match. */
  open(nonce: Buffer, aad: Buffer, aadLength: number, ciphertext: Buffer, receivedTag: Buffer): Buffer | undefined {
    const length = ciphertext.length;
    const keystream = this.keystream(nonce, length);
    const plaintext = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) plaintext[i] = ciphertext[i] ^ keystream[BLOCK + i];
    const tag = this.tag(nonce, aad, aadLength, plaintext);
    let difference = 0;
    for (let i = 0; i < CCM_TAG; i++) difference |= (tag[i] ^ keystream[i]) ^ receivedTag[i];
    return difference === 0 ? plaintext : undefined;
  }

  /** A0 (for the tag) then A1.. (for the payload), encrypted. */
  private keystream(nonce: Buffer, length: number): Buffer {
    const blocks = 1 + Math.ceil(length / BLOCK);
    const counters = scratchOf(blocks * BLOCK);
    for (let i = 0; i < blocks; i++) {
      const at = i * BLOCK;
      counters[at] = 2; // L - 1, with L = 3 bytes of counter (15 - 12-byte nonce)
      nonce.copy(counters, at + 1);
      counters[at + 13] = 0;
      counters[at + 14] = i >> 8;
      counters[at + 15] = i & 0xff;
    }
    return this.ctr.update(counters.subarray(0, blocks * BLOCK));
  }

  /** The CBC-MAC of B0, the AAD and the payload (RFC 3610 2.2), before its encryption with A0. */
  private tag(nonce: Buffer, aad: Buffer, aadLength: number, plaintext: Buffer): Buffer {
    const length = plaintext.length;
    const aadBlocks = Math.ceil((2 + aadLength) / BLOCK);
    const total = BLOCK + aadBlocks * BLOCK + Math.ceil(length / BLOCK) * BLOCK;
    const input = scratchOf(total);
    input.fill(0, 0, total);
    input[0] = 0x40 | (((CCM_TAG - 2) / 2) << 3) | 2; // Adata, M' and L' (RFC 3610 2.2)
    nonce.copy(input, 1);
    input[14] = length >> 8;
    input[15] = length & 0xff;
    input[16] = aadLength >> 8;
    input[17] = aadLength & 0xff;
    aad.copy(input, 18, 0, aadLength);
    plaintext.copy(input, BLOCK + aadBlocks * BLOCK);
    const chain = this.chain;
    for (let i = 0; i < BLOCK; i++) input[i] ^= chain[i];
    const output = this.mac.update(input.subarray(0, total));
    this.chain = output.subarray(total - BLOCK);
    return this.chain;
  }
}

/** Header fields the record MAC or AEAD covers; one buffer reused, filled per record. */
const additional = Buffer.alloc(8 + 3 + 2 + 8 + 255 + 2);

/**
 * The authenticated header fields: seq_num + type + version + length, or for
 * tls12_cid records the RFC 9146 section 5 layout (placeholder, type, cid
 * length, type, version, epoch, seq, cid, length). Returns its length.
 */
function fillAdditionalData(type: number, epoch: number, sequence: number, length: number, cid?: Buffer): number {
  const aad = additional;
  if (!cid) {
    aad.writeUInt16BE(epoch, 0);
    aad.writeUIntBE(sequence, 2, 6);
    aad[8] = type;
    aad.writeUInt16BE(DTLS_1_2, 9);
    aad.writeUInt16BE(length, 11);
    return 13;
  }
  aad.fill(0xff, 0, 8);
  aad[8] = ContentType.Tls12Cid;
  aad[9] = cid.length;
  aad[10] = ContentType.Tls12Cid;
  aad.writeUInt16BE(DTLS_1_2, 11);
  aad.writeUInt16BE(epoch, 13);
  aad.writeUIntBE(sequence, 15, 6);
  cid.copy(aad, 21);
  aad.writeUInt16BE(length, 21 + cid.length);
  return 23 + cid.length;
}

/** Protection of the records one side writes in one epoch. */
export class RecordCipher {
  private readonly ccm?: Ccm8;
  private readonly nonce = Buffer.alloc(CCM_FIXED_IV + CCM_EXPLICIT_NONCE);

  private constructor(
    suite: CipherSuite,
    private readonly key: Buffer,
    fixedIv: Buffer,
    private readonly macKey: Buffer,
  ) {
    if (suite.cipher === 'ccm8') this.ccm = new Ccm8(key);
    fixedIv.copy(this.nonce);
  }

  /** Splits a key block (RFC 5246 6.3) into the client's and the server's write ciphers. */
  static fromKeyBlock(suite: CipherSuite, block: Buffer): { client: RecordCipher; server: RecordCipher } {
    const macLength = suite.cipher === 'ccm8' ? 0 : MAC_LENGTH;
    const ivLength = suite.cipher === 'ccm8' ? CCM_FIXED_IV : 0;
    let offset = 0;
    const take = (length: number) => block.subarray(offset, (offset += length));
    const clientMac = take(macLength);
    const serverMac = take(macLength);
    const clientKey = take(KEY_LENGTH);
    const serverKey = take(KEY_LENGTH);
    const clientIv = take(ivLength);
    const serverIv = take(ivLength);
    return {
      client: new RecordCipher(suite, clientKey, clientIv, clientMac),
      server: new RecordCipher(suite, serverKey, serverIv, serverMac),
    };
  }

  /** A whole protected record, header included, in one buffer; with a cid, as a tls12_cid record (RFC 9146). */
  sealRecord(type: number, epoch: number, sequence: number, content: Buffer, cid?: Buffer): Buffer {
    const inner = cid ? Buffer.concat([content, Buffer.from([type])]) : content;
    const outerType = cid ? ContentType.Tls12Cid : type;
    const headerLength = RECORD_HEADER_LENGTH + (cid ? cid.length : 0);
    if (!this.ccm) {
      const fragment = this.sealCbc(outerType, epoch, sequence, inner, cid);
      const record = Buffer.allocUnsafe(headerLength + fragment.length);
      writeHeader(record, outerType, epoch, sequence, fragment.length, cid);
      fragment.copy(record, headerLength);
      return record;
    }
    const fragmentLength = CCM_EXPLICIT_NONCE + inner.length + CCM_TAG;
    const record = Buffer.allocUnsafe(headerLength + fragmentLength);
    writeHeader(record, outerType, epoch, sequence, fragmentLength, cid);
    // The explicit nonce is the epoch and sequence number (RFC 6655 3), as in the header.
    record.copy(record, headerLength, 3, 11);
    record.copy(this.nonce, CCM_FIXED_IV, 3, 11);
    const aadLength = fillAdditionalData(outerType, epoch, sequence, inner.length, cid);
    this.ccm.seal(this.nonce, additional, aadLength, inner, record, headerLength + CCM_EXPLICIT_NONCE);
    return record;
  }

  /** Decrypts and authenticates a record; undefined when it does not (such records are dropped silently). */
  open(record: DtlsRecord): { type: number; content: Buffer } | undefined {
    const inner = this.ccm ? this.openCcm(record) : this.openCbc(record);
    if (!inner) return undefined;
    if (record.type !== ContentType.Tls12Cid) return { type: record.type, content: inner };
    let end = inner.length;
    while (end > 0 && inner[end - 1] === 0) end--;
    if (end === 0) return undefined;
    return { type: inner[end - 1], content: inner.subarray(0, end - 1) };
  }

  private openCcm(record: DtlsRecord): Buffer | undefined {
    const fragment = record.fragment;
    if (fragment.length < CCM_EXPLICIT_NONCE + CCM_TAG) return undefined;
    const plaintextLength = fragment.length - CCM_EXPLICIT_NONCE - CCM_TAG;
    fragment.copy(this.nonce, CCM_FIXED_IV, 0, CCM_EXPLICIT_NONCE);
    const aadLength = fillAdditionalData(record.type, record.epoch, record.sequence, plaintextLength, record.cid);
    return (this.ccm as Ccm8).open(
      this.nonce,
      additional,
      aadLength,
      fragment.subarray(CCM_EXPLICIT_NONCE, fragment.length - CCM_TAG),
      fragment.subarray(fragment.length - CCM_TAG),
    );
  }

  /** MAC-then-encrypt with an explicit random IV (RFC 5246 6.2.3.2). */
  private sealCbc(type: number, epoch: number, sequence: number, plaintext: Buffer, cid?: Buffer): Buffer {
    const aadLength = fillAdditionalData(type, epoch, sequence, plaintext.length, cid);
    const mac = createHmac('sha256', this.macKey).update(additional.subarray(0, aadLength)).update(plaintext).digest();
    const unpadded = plaintext.length + MAC_LENGTH;
    const padLength = BLOCK - 1 - (unpadded % BLOCK);
    const padding = Buffer.alloc(padLength + 1, padLength);
    const iv = randomBytes(BLOCK);
    const cipher = createCipheriv('aes-128-cbc', this.key, iv).setAutoPadding(false);
    return Buffer.concat([iv, cipher.update(Buffer.concat([plaintext, mac, padding])), cipher.final()]);
  }

  private openCbc(record: DtlsRecord): Buffer | undefined {
    const fragment = record.fragment;
    if (fragment.length < 2 * BLOCK + BLOCK * 2 || fragment.length % BLOCK !== 0) return undefined;
    let decrypted: Buffer;
    try {
      const decipher = createDecipheriv('aes-128-cbc', this.key, fragment.subarray(0, BLOCK)).setAutoPadding(false);
      decrypted = Buffer.concat([decipher.update(fragment.subarray(BLOCK)), decipher.final()]);
    } catch {
      return undefined;
    }
    const padLength = decrypted[decrypted.length - 1];
    let paddingGood = padLength + 1 + MAC_LENGTH <= decrypted.length;
    for (let i = 0; paddingGood && i <= padLength; i++) paddingGood = decrypted[decrypted.length - 1 - i] === padLength;
    // With bad padding the MAC is still computed (as if there were none), so timing tells less (RFC 5246 6.2.3.2 note).
    const contentLength = decrypted.length - MAC_LENGTH - (paddingGood ? padLength + 1 : 0);
    const content = decrypted.subarray(0, contentLength);
    const received = decrypted.subarray(contentLength, contentLength + MAC_LENGTH);
    const aadLength = fillAdditionalData(record.type, record.epoch, record.sequence, contentLength, record.cid);
    const expected = createHmac('sha256', this.macKey).update(additional.subarray(0, aadLength)).update(content).digest();
    return timingSafeEqual(expected, received) && paddingGood ? content : undefined;
  }
}

/** The record header (RFC 6347 4.1, RFC 9146 for the cid) written into the start of `out`. */
function writeHeader(out: Buffer, type: number, epoch: number, sequence: number, length: number, cid?: Buffer): void {
  out[0] = type;
  out.writeUInt16BE(DTLS_1_2, 1);
  out.writeUInt16BE(epoch, 3);
  out.writeUIntBE(sequence, 5, 6);
  const cidLength = cid ? cid.length : 0;
  if (cid) cid.copy(out, 11);
  out.writeUInt16BE(length, 11 + cidLength);
}
