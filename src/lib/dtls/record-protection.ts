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

/** Records of keystream a busy cipher makes ahead in one call, and the blocks of each: A0 and four of payload (64 bytes). */
const AHEAD_RECORDS = 8;
const AHEAD_BLOCKS = 5;
/** A cipher that had to make keystream this recently is busy: it makes the next records' too. */
const BUSY_MS = 1000;
const TWO_32 = 0x100000000;
/** B0 and the longest additional data with its length (a tls12_cid record's, with a 255-byte cid: 2 + 23 + 255 bytes), in blocks. */
const MAC_HEADER_MAX = BLOCK + Math.ceil((2 + 23 + 255) / BLOCK) * BLOCK;

/**
 * AES-128-CCM with 8-byte tags (RFC 3610, RFC 6655) on two AES objects made
 * once per key: CBC-MAC on a CBC cipher whose chaining carries over between
 * records (each message's first block is XORed with the last output block,
 * which restarts the chain from a zero IV), and the counter blocks on ECB.
 * Node's aes-128-ccm needs a new cipher object, a nonce, an AAD call and a
 * tag call per record: several times the time of this on DTLS-sized records,
 * where each call into OpenSSL costs more than the AES it does. So a busy
 * cipher whose nonces count up (the epoch and sequence number, as RFC 6655
 * has them) encrypts the counter blocks of its next 8 records in one call,
 * and bytes are moved by loops rather than by Buffer methods.
 */
class Ccm8 {
  private readonly mac: Cipher;
  private readonly ctr: Cipher;
  /** The CBC chain's last output block (at chainAt), where the next MAC restarts from; its first 8 bytes are the last tag. */
  private chain: Buffer = Buffer.alloc(BLOCK);
  private chainAt = 0;
  /** Keystream of consecutive nonces (AHEAD_BLOCKS blocks each) from aheadSequence in aheadEpoch. */
  private ahead?: Buffer;
  private aheadEpoch = -1;
  private aheadSequence = 0;
  private lastMade = -Infinity;
  /** The nonce asked for last, as an epoch and sequence number. */
  private lastEpoch = -1;
  private lastSequence = -1;
  /** Where keystream() put the asked-for keystream. */
  private stream: Buffer = this.chain;

  constructor(
    key: Buffer,
    private readonly fixedIv: Buffer,
  ) {
    this.mac = createCipheriv('aes-128-cbc', key, Buffer.alloc(BLOCK)).setAutoPadding(false);
    this.ctr = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  }

  /**
   * Encrypts content into out at `at`: the explicit nonce (epoch and
   * sequence number, RFC 6655 3), the ciphertext, the 8-byte tag. The record
   * header fields are authenticated as additional data (RFC 5246 6.2.3.3).
   */
  seal(out: Buffer, at: number, type: number, epoch: number, sequence: number, content: Buffer, cid: Buffer | undefined): void {
    const length = content.length;
    writeEpochAndSequence(out, at, epoch, sequence);
    const streamAt = this.keystream(epoch, sequence, 1 + Math.ceil(length / BLOCK));
    const stream = this.stream;
    const input = scratchOf(MAC_HEADER_MAX + Math.ceil(length / BLOCK) * BLOCK);
    const payloadAt = this.macHeader(input, epoch, sequence, length, type, epoch, sequence, cid);
    for (let i = 0; i < length; i++) input[payloadAt + i] = content[i];
    this.authenticate(input, payloadAt, length);
    const textAt = at + CCM_EXPLICIT_NONCE;
    for (let i = 0; i < length; i++) out[textAt + i] = content[i] ^ stream[streamAt + BLOCK + i];
    const chain = this.chain;
    const tagAt = this.chainAt;
    for (let i = 0; i < CCM_TAG; i++) out[textAt + length + i] = chain[tagAt + i] ^ stream[streamAt + i];
  }

  /** The plaintext of a fragment (explicit nonce, ciphertext, tag); undefined when it does not authenticate. */
  open(fragment: Buffer, type: number, epoch: number, sequence: number, cid: Buffer | undefined): Buffer | undefined {
    const length = fragment.length - CCM_EXPLICIT_NONCE - CCM_TAG;
    if (length < 0) return undefined;
    // The sender's explicit nonce, read as the epoch and sequence number it normally is.
    const nonceEpoch = (fragment[0] << 8) | fragment[1];
    const nonceSequence = ((fragment[2] << 8) | fragment[3]) * TWO_32 + (((fragment[4] << 24) | (fragment[5] << 16) | (fragment[6] << 8) | fragment[7]) >>> 0);
    const streamAt = this.keystream(nonceEpoch, nonceSequence, 1 + Math.ceil(length / BLOCK));
    const stream = this.stream;
    const input = scratchOf(MAC_HEADER_MAX + Math.ceil(length / BLOCK) * BLOCK);
    const payloadAt = this.macHeader(input, nonceEpoch, nonceSequence, length, type, epoch, sequence, cid);
    for (let i = 0; i < length; i++) input[payloadAt + i] = fragment[CCM_EXPLICIT_NONCE + i] ^ stream[streamAt + BLOCK + i];
    this.authenticate(input, payloadAt, length);
    const chain = this.chain;
    const tagAt = this.chainAt;
    const receivedAt = CCM_EXPLICIT_NONCE + length;
    let difference = 0;
    for (let i = 0; i < CCM_TAG; i++) difference |= chain[tagAt + i] ^ stream[streamAt + i] ^ fragment[receivedAt + i];
    if (difference !== 0) return undefined;
    const plaintext = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) plaintext[i] = input[payloadAt + i];
    return plaintext;
  }

  /**
   * The encrypted counter blocks A0, A1.. of a nonce into this.stream,
   * returning where they start: from the keystream made ahead when it has
   * them, else made now (and for the next records too while busy).
   */
  private keystream(epoch: number, sequence: number, blocks: number): number {
    // Nonces that count up (ours, and most peers'; pion picks random ones, which gain nothing from keystream made ahead).
    const follows = epoch === this.lastEpoch && sequence === this.lastSequence + 1;
    this.lastEpoch = epoch;
    this.lastSequence = sequence;
    if (this.ahead !== undefined && blocks <= AHEAD_BLOCKS && epoch === this.aheadEpoch) {
      const index = sequence - this.aheadSequence;
      if (index >= 0 && index < AHEAD_RECORDS) {
        this.stream = this.ahead;
        return index * AHEAD_BLOCKS * BLOCK;
      }
    }
    const now = Date.now();
    const busy = now - this.lastMade < BUSY_MS;
    this.lastMade = now;
    if (busy && follows && blocks <= AHEAD_BLOCKS) {
      this.ahead = this.stream = this.encryptCounters(epoch, sequence, AHEAD_RECORDS, AHEAD_BLOCKS);
      this.aheadEpoch = epoch;
      this.aheadSequence = sequence;
    } else {
      // An idle cipher holds no keystream: a fleet of quiet connections costs no memory for it.
      if (!busy) this.ahead = undefined;
      this.stream = this.encryptCounters(epoch, sequence, 1, blocks);
    }
    return 0;
  }

  private encryptCounters(epoch: number, sequence: number, records: number, blocks: number): Buffer {
    const length = records * blocks * BLOCK;
    const counters = scratchOf(length);
    const iv = this.fixedIv;
    for (let record = 0; record < records; record++) {
      for (let block = 0; block < blocks; block++) {
        const at = (record * blocks + block) * BLOCK;
        counters[at] = 2; // L - 1, with L = 3 bytes of counter (15 - 12-byte nonce)
        counters[at + 1] = iv[0];
        counters[at + 2] = iv[1];
        counters[at + 3] = iv[2];
        counters[at + 4] = iv[3];
        writeEpochAndSequence(counters, at + 5, epoch, sequence + record);
        counters[at + 13] = 0;
        counters[at + 14] = block >> 8;
        counters[at + 15] = block & 0xff;
      }
    }
    return this.ctr.update(counters.subarray(0, length));
  }

  /** B0 and the additional data blocks of the CBC-MAC (RFC 3610 2.2); returns where the payload goes. */
  private macHeader(input: Buffer, nonceEpoch: number, nonceSequence: number, length: number, type: number, epoch: number, sequence: number, cid: Buffer | undefined): number {
    input[0] = 0x40 | (((CCM_TAG - 2) / 2) << 3) | 2; // Adata, M' and L' (RFC 3610 2.2)
    const iv = this.fixedIv;
    input[1] = iv[0];
    input[2] = iv[1];
    input[3] = iv[2];
    input[4] = iv[3];
    writeEpochAndSequence(input, 5, nonceEpoch, nonceSequence);
    input[13] = 0;
    input[14] = length >> 8;
    input[15] = length & 0xff;
    const aadLength = writeAdditionalData(input, BLOCK + 2, type, epoch, sequence, length, cid);
    input[BLOCK] = aadLength >> 8;
    input[BLOCK + 1] = aadLength & 0xff;
    const payloadAt = BLOCK + Math.ceil((2 + aadLength) / BLOCK) * BLOCK;
    for (let i = BLOCK + 2 + aadLength; i < payloadAt; i++) input[i] = 0;
    return payloadAt;
  }

  /** Runs the CBC-MAC over the input (the payload padded here); the tag is then at this.chain[this.chainAt]. */
  private authenticate(input: Buffer, payloadAt: number, length: number): void {
    const total = payloadAt + Math.ceil(length / BLOCK) * BLOCK;
    for (let i = payloadAt + length; i < total; i++) input[i] = 0;
    const chain = this.chain;
    const chainAt = this.chainAt;
    for (let i = 0; i < BLOCK; i++) input[i] ^= chain[chainAt + i];
    this.chain = this.mac.update(input.subarray(0, total));
    this.chainAt = total - BLOCK;
  }
}

function writeEpochAndSequence(out: Buffer, at: number, epoch: number, sequence: number): void {
  const high = Math.floor(sequence / TWO_32);
  const low = sequence >>> 0;
  out[at] = epoch >> 8;
  out[at + 1] = epoch & 0xff;
  out[at + 2] = (high >> 8) & 0xff;
  out[at + 3] = high & 0xff;
  out[at + 4] = low >>> 24;
  out[at + 5] = (low >> 16) & 0xff;
  out[at + 6] = (low >> 8) & 0xff;
  out[at + 7] = low & 0xff;
}

/**
 * Writes the authenticated header fields at `at`: seq_num + type + version +
 * length, or for tls12_cid records the RFC 9146 section 5 layout
 * (placeholder, type, cid length, type, version, epoch, seq, cid, length).
 * Returns their length.
 */
function writeAdditionalData(out: Buffer, at: number, type: number, epoch: number, sequence: number, length: number, cid: Buffer | undefined): number {
  if (!cid) {
    writeEpochAndSequence(out, at, epoch, sequence);
    out[at + 8] = type;
    out[at + 9] = DTLS_1_2 >> 8;
    out[at + 10] = DTLS_1_2 & 0xff;
    out[at + 11] = length >> 8;
    out[at + 12] = length & 0xff;
    return 13;
  }
  out.fill(0xff, at, at + 8);
  out[at + 8] = ContentType.Tls12Cid;
  out[at + 9] = cid.length;
  out[at + 10] = ContentType.Tls12Cid;
  out.writeUInt16BE(DTLS_1_2, at + 11);
  writeEpochAndSequence(out, at + 13, epoch, sequence);
  cid.copy(out, at + 21);
  out.writeUInt16BE(length, at + 21 + cid.length);
  return 23 + cid.length;
}

/** The CBC suite's MAC input (its header fields); one buffer reused, filled per record. */
const additional = Buffer.alloc(8 + 3 + 2 + 8 + 255 + 2);

/** Protection of the records one side writes in one epoch. */
export class RecordCipher {
  private readonly ccm?: Ccm8;

  private constructor(
    suite: CipherSuite,
    private readonly key: Buffer,
    fixedIv: Buffer,
    private readonly macKey: Buffer,
  ) {
    if (suite.cipher === 'ccm8') this.ccm = new Ccm8(key, Buffer.from(fixedIv));
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
    this.ccm.seal(record, headerLength, outerType, epoch, sequence, inner, cid);
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
    return (this.ccm as Ccm8).open(record.fragment, record.type, record.epoch, record.sequence, record.cid);
  }

  /** MAC-then-encrypt with an explicit random IV (RFC 5246 6.2.3.2). */
  private sealCbc(type: number, epoch: number, sequence: number, plaintext: Buffer, cid?: Buffer): Buffer {
    const aadLength = writeAdditionalData(additional, 0, type, epoch, sequence, plaintext.length, cid);
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
    const aadLength = writeAdditionalData(additional, 0, record.type, record.epoch, record.sequence, contentLength, record.cid);
    const expected = createHmac('sha256', this.macKey).update(additional.subarray(0, aadLength)).update(content).digest();
    return timingSafeEqual(expected, received) && paddingGood ? content : undefined;
  }
}

/** The record header (RFC 6347 4.1, RFC 9146 for the cid) written into the start of `out`. */
function writeHeader(out: Buffer, type: number, epoch: number, sequence: number, length: number, cid?: Buffer): void {
  out[0] = type;
  out[1] = DTLS_1_2 >> 8;
  out[2] = DTLS_1_2 & 0xff;
  writeEpochAndSequence(out, 3, epoch, sequence);
  const cidLength = cid ? cid.length : 0;
  if (cid) cid.copy(out, 11);
  out[11 + cidLength] = length >> 8;
  out[12 + cidLength] = length & 0xff;
}
