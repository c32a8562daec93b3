import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ContentType, DTLS_1_2 } from './constants';
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
const CCM_TAG = 8;
const MAC_LENGTH = 32;
const BLOCK = 16;

export function keyBlockLength(suite: CipherSuite): number {
  return suite.cipher === 'ccm8' ? 2 * (KEY_LENGTH + CCM_FIXED_IV) : 2 * (MAC_LENGTH + KEY_LENGTH);
}

/** Protection of the records one side writes in one epoch. */
export class RecordCipher {
  private constructor(
    private readonly suite: CipherSuite,
    private readonly key: Buffer,
    private readonly fixedIv: Buffer,
    private readonly macKey: Buffer,
  ) {}

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

  /** Encrypts a record's content; with a cid, as a tls12_cid record (RFC 9146). */
  seal(type: number, epoch: number, sequence: number, content: Buffer, cid?: Buffer): { type: number; fragment: Buffer } {
    const inner = cid ? Buffer.concat([content, Buffer.from([type])]) : content;
    const outerType = cid ? ContentType.Tls12Cid : type;
    const aad = additionalData(outerType, epoch, sequence, cid);
    return { type: outerType, fragment: this.suite.cipher === 'ccm8' ? this.sealCcm(aad, epoch, sequence, inner) : this.sealCbc(aad, inner) };
  }

  /** Decrypts and authenticates a record; undefined when it does not (such records are dropped silently). */
  open(record: DtlsRecord): { type: number; content: Buffer } | undefined {
    const inner = this.suite.cipher === 'ccm8' ? this.openCcm(record) : this.openCbc(record);
    if (!inner) return undefined;
    if (record.type !== ContentType.Tls12Cid) return { type: record.type, content: inner };
    let end = inner.length;
    while (end > 0 && inner[end - 1] === 0) end--;
    if (end === 0) return undefined;
    return { type: inner[end - 1], content: inner.subarray(0, end - 1) };
  }

  private nonce(explicit: Buffer): Buffer {
    return Buffer.concat([this.fixedIv, explicit]);
  }

  private sealCcm(aad: (length: number) => Buffer, epoch: number, sequence: number, plaintext: Buffer): Buffer {
    const explicit = Buffer.allocUnsafe(8);
    explicit.writeUInt16BE(epoch, 0);
    explicit.writeUIntBE(sequence, 2, 6);
    const cipher = createCipheriv('aes-128-ccm', this.key, this.nonce(explicit), { authTagLength: CCM_TAG });
    cipher.setAAD(aad(plaintext.length), { plaintextLength: plaintext.length });
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([explicit, ciphertext, cipher.getAuthTag()]);
  }

  private openCcm(record: DtlsRecord): Buffer | undefined {
    const fragment = record.fragment;
    if (fragment.length < 8 + CCM_TAG) return undefined;
    const plaintextLength = fragment.length - 8 - CCM_TAG;
    const aad = additionalData(record.type, record.epoch, record.sequence, record.cid)(plaintextLength);
    try {
      const decipher = createDecipheriv('aes-128-ccm', this.key, this.nonce(fragment.subarray(0, 8)), { authTagLength: CCM_TAG });
      decipher.setAuthTag(fragment.subarray(fragment.length - CCM_TAG));
      decipher.setAAD(aad, { plaintextLength });
      const plaintext = decipher.update(fragment.subarray(8, fragment.length - CCM_TAG));
      decipher.final();
      return plaintext;
    } catch {
      return undefined;
    }
  }

  /** MAC-then-encrypt with an explicit random IV (RFC 5246 6.2.3.2). */
  private sealCbc(aad: (length: number) => Buffer, plaintext: Buffer): Buffer {
    const mac = createHmac('sha256', this.macKey).update(aad(plaintext.length)).update(plaintext).digest();
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
    const aad = additionalData(record.type, record.epoch, record.sequence, record.cid)(contentLength);
    const expected = createHmac('sha256', this.macKey).update(aad).update(content).digest();
    return timingSafeEqual(expected, received) && paddingGood ? content : undefined;
  }
}

/**
 * The authenticated header fields: seq_num + type + version + length, or for
 * tls12_cid records the RFC 9146 section 5 layout (placeholder, type, cid length, type, version, epoch, seq, cid, length).
 */
function additionalData(type: number, epoch: number, sequence: number, cid?: Buffer): (length: number) => Buffer {
  return (length: number) => {
    if (!cid) {
      const aad = Buffer.allocUnsafe(13);
      aad.writeUInt16BE(epoch, 0);
      aad.writeUIntBE(sequence, 2, 6);
      aad[8] = type;
      aad.writeUInt16BE(DTLS_1_2, 9);
      aad.writeUInt16BE(length, 11);
      return aad;
    }
    const aad = Buffer.allocUnsafe(8 + 3 + 2 + 8 + cid.length + 2);
    aad.fill(0xff, 0, 8);
    aad[8] = ContentType.Tls12Cid;
    aad[9] = cid.length;
    aad[10] = ContentType.Tls12Cid;
    aad.writeUInt16BE(DTLS_1_2, 11);
    aad.writeUInt16BE(epoch, 13);
    aad.writeUIntBE(sequence, 15, 6);
    cid.copy(aad, 21);
    aad.writeUInt16BE(length, 21 + cid.length);
    return aad;
  };
}
