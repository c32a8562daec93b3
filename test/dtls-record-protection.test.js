'use strict';
// The CCM_8 record protection checked against OpenSSL's own AES-CCM (node:crypto's aes-128-ccm): records we seal
// must open there and records sealed there must open here, whatever the length, the order of sequence numbers, a
// busy or idle cipher (keystream made ahead or not), the explicit nonce the sender picked, and a forged byte.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { RecordCipher, CIPHER_SUITES } = require('../dist/lib/dtls/record-protection');
const { parseRecords } = require('../dist/lib/dtls/record');

const CCM8 = CIPHER_SUITES.find((suite) => suite.name === 'TLS_PSK_WITH_AES_128_CCM_8');
const APPLICATION_DATA = 23;

/** The key block's CCM parts (RFC 5246 6.3: client key, server key, client IV, server IV; no MAC keys). */
function keys(block) {
  return { clientKey: block.subarray(0, 16), serverKey: block.subarray(16, 32), clientIv: block.subarray(32, 36), serverIv: block.subarray(36, 40) };
}

function additionalData(type, epoch, sequence, length) {
  const aad = Buffer.alloc(13);
  aad.writeUInt16BE(epoch, 0);
  aad.writeUIntBE(sequence, 2, 6);
  aad[8] = type;
  aad.writeUInt16BE(0xfefd, 9);
  aad.writeUInt16BE(length, 11);
  return aad;
}

/** Opens one of our records with OpenSSL's CCM; throws when it does not authenticate. */
function openWithOpenssl(record, key, iv) {
  const [parsed] = parseRecords(record, 0).records;
  const fragment = parsed.fragment;
  const nonce = Buffer.concat([iv, fragment.subarray(0, 8)]);
  const ciphertext = fragment.subarray(8, fragment.length - 8);
  const decipher = crypto.createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
  decipher.setAuthTag(fragment.subarray(fragment.length - 8));
  decipher.setAAD(additionalData(parsed.type, parsed.epoch, parsed.sequence, ciphertext.length), { plaintextLength: ciphertext.length });
  const plaintext = decipher.update(ciphertext);
  decipher.final();
  return plaintext;
}

/** A record sealed by OpenSSL's CCM with the explicit nonce given (normally epoch and sequence number). */
function sealWithOpenssl(content, key, iv, epoch, sequence, explicitNonce) {
  const cipher = crypto.createCipheriv('aes-128-ccm', key, Buffer.concat([iv, explicitNonce]), { authTagLength: 8 });
  cipher.setAAD(additionalData(APPLICATION_DATA, epoch, sequence, content.length), { plaintextLength: content.length });
  const ciphertext = Buffer.concat([cipher.update(content), cipher.final()]);
  const fragment = Buffer.concat([explicitNonce, ciphertext, cipher.getAuthTag()]);
  const header = Buffer.alloc(13);
  header[0] = APPLICATION_DATA;
  header.writeUInt16BE(0xfefd, 1);
  header.writeUInt16BE(epoch, 3);
  header.writeUIntBE(sequence, 5, 6);
  header.writeUInt16BE(fragment.length, 11);
  return Buffer.concat([header, fragment]);
}

function explicit(epoch, sequence) {
  const nonce = Buffer.alloc(8);
  nonce.writeUInt16BE(epoch, 0);
  nonce.writeUIntBE(sequence, 2, 6);
  return nonce;
}

const LENGTHS = [0, 1, 15, 16, 17, 33, 48, 63, 64, 65, 200, 1200];

describe('DTLS CCM_8 record protection against OpenSSL AES-CCM', function () {
  const block = crypto.randomBytes(40);
  const { clientKey, serverKey, clientIv, serverIv } = keys(block);

  it('seals records OpenSSL opens: every length, consecutive and skipped sequence numbers, two epochs', function () {
    const { server } = RecordCipher.fromKeyBlock(CCM8, block);
    // Consecutive numbers (a busy cipher serves them from keystream made ahead), jumps forward and back, a new epoch.
    const sequences = [...Array(40).keys(), 41, 100, 99, 7, 2 ** 32 + 5, 2 ** 32 + 6, 2 ** 47 + 3];
    let n = 0;
    for (const epoch of [1, 2]) {
      for (const sequence of sequences) {
        const content = crypto.randomBytes(LENGTHS[n++ % LENGTHS.length]);
        const record = server.sealRecord(APPLICATION_DATA, epoch, sequence, content);
        assert.deepEqual(openWithOpenssl(record, serverKey, serverIv), content, `epoch ${epoch} sequence ${sequence} length ${content.length}`);
      }
    }
  });

  it('opens records OpenSSL sealed, whatever explicit nonce the sender picked, and refuses any changed byte', function () {
    const { client } = RecordCipher.fromKeyBlock(CCM8, block);
    // OpenSSL's CCM does not seal an empty plaintext through node:crypto (no tag), so lengths start at 1 here.
    const lengths = LENGTHS.filter((length) => length > 0);
    let n = 0;
    for (let sequence = 1; sequence < 60; sequence++) {
      const content = crypto.randomBytes(lengths[n++ % lengths.length]);
      // Nonces that count up (opened from keystream made ahead), then every third one random (RFC 6655 allows any unique one), as pion sends.
      const nonce = sequence > 30 && sequence % 3 === 0 ? crypto.randomBytes(8) : explicit(1, sequence);
      const record = sealWithOpenssl(content, clientKey, clientIv, 1, sequence, nonce);
      const [parsed] = parseRecords(record, 0).records;
      assert.deepEqual(client.open(parsed)?.content, content, `sequence ${sequence} length ${content.length}`);
      const forged = Buffer.from(record);
      forged[13 + ((sequence * 7) % (forged.length - 13))] ^= 1 << sequence % 8;
      assert.equal(client.open(parseRecords(forged, 0).records[0]), undefined, `forged record ${sequence} was accepted`);
      // A record whose header was changed (its sequence number is authenticated) does not open either.
      const moved = Buffer.from(record);
      moved[10] ^= 0x80;
      assert.equal(client.open(parseRecords(moved, 0).records[0]), undefined);
    }
  });

  it('an idle cipher (no record for over a second) makes keystream for one record, and both directions still agree with OpenSSL', async function () {
    this.timeout(5000);
    const { client, server } = RecordCipher.fromKeyBlock(CCM8, block);
    for (let round = 0; round < 2; round++) {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      for (let i = 0; i < 3; i++) {
        const sequence = 500 + round * 10 + i;
        const content = crypto.randomBytes(20 + i);
        assert.deepEqual(openWithOpenssl(server.sealRecord(APPLICATION_DATA, 1, sequence, content), serverKey, serverIv), content);
        const incoming = parseRecords(sealWithOpenssl(content, clientKey, clientIv, 1, sequence, explicit(1, sequence)), 0).records[0];
        assert.deepEqual(client.open(incoming)?.content, content);
      }
    }
  });
});
