'use strict';
// Strict UTF-8 for text from devices, with its ASCII shortcut.
const assert = require('node:assert/strict');
const fc = require('fast-check');
const { decodeUtf8 } = require('../dist/lib/content/utf8');

describe('decodeUtf8', () => {
  it('decodes ASCII, multi-byte text and subarrays of a larger datagram like TextDecoder', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string(), (text, prefix) => {
        const datagram = Buffer.concat([Buffer.from(prefix), Buffer.from(text)]);
        const slice = datagram.subarray(Buffer.byteLength(prefix));
        assert.equal(decodeUtf8(slice), text);
      }),
      { numRuns: 500 },
    );
    assert.equal(decodeUtf8(Buffer.from('21.5')), '21.5');
    assert.equal(decodeUtf8(Buffer.alloc(0)), '');
  });

  it('throws TypeError for bytes that are not UTF-8, whatever ASCII comes before them', () => {
    for (const bytes of [[0xff], [0x41, 0x42, 0xc3], [0x41, 0xc3, 0x28], [0xed, 0xa0, 0x80], [0x31, 0x80]]) {
      assert.throws(() => decodeUtf8(Buffer.from(bytes)), TypeError, JSON.stringify(bytes));
    }
  });
});
