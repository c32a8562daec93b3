'use strict';
const assert = require('node:assert/strict');
const fc = require('fast-check');
const coapPacket = require('coap-packet');
const { decode, encode, CoapFormatError } = require('../dist/lib/coap/message');
const { formatCode } = require('../dist/lib/coap/codes');

const optionArbitrary = fc.record({
  number: fc.integer({ min: 1, max: 2000 }),
  value: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
});

const messageArbitrary = fc.record({
  type: fc.integer({ min: 0, max: 3 }),
  code: fc.oneof(fc.integer({ min: 1, max: 31 }), fc.integer({ min: 64, max: 191 })),
  messageId: fc.integer({ min: 0, max: 0xffff }),
  token: fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
  options: fc.array(optionArbitrary, { maxLength: 8 }).map((options) => [...options].sort((a, b) => a.number - b.number)),
  payload: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
});

describe('CoAP message codec', () => {
  it('round-trips any message', () => {
    fc.assert(
      fc.property(messageArbitrary, (message) => {
        assert.deepEqual(decode(encode(message)), message);
      }),
    );
  });

  it('encodes what the independent coap-packet library decodes', () => {
    fc.assert(
      fc.property(messageArbitrary.filter((m) => m.type !== 3 || m.code !== 0), (message) => {
        const parsed = coapPacket.parse(encode(message));
        assert.equal(parsed.messageId, message.messageId);
        assert.equal(parsed.code, formatCode(message.code));
        assert.deepEqual(parsed.token, message.token);
        assert.deepEqual(parsed.payload, message.payload);
        assert.deepEqual(
          parsed.options.map((o) => Number.isNaN(Number(o.name)) ? o.name : Number(o.name)).length,
          message.options.length,
        );
      }),
    );
  });

  it('decodes what coap-packet encodes', () => {
    const datagram = coapPacket.generate({
      code: 'POST',
      confirmable: true,
      messageId: 4242,
      token: Buffer.from([1, 2, 3, 4]),
      options: [
        { name: 'Uri-Path', value: Buffer.from('rd') },
        { name: 'Content-Format', value: Buffer.from([40]) },
        { name: 'Uri-Query', value: Buffer.from('ep=node1') },
        { name: 'Uri-Query', value: Buffer.from('lt=300') },
      ],
      payload: Buffer.from('</1/0>,</3/0>'),
    });
    const message = decode(datagram);
    assert.equal(message.type, 0);
    assert.equal(formatCode(message.code), '0.02');
    assert.equal(message.messageId, 4242);
    assert.deepEqual(
      message.options.map((o) => [o.number, o.value.toString()]),
      [[11, 'rd'], [12, '\x28'], [15, 'ep=node1'], [15, 'lt=300']],
    );
    assert.equal(message.payload.toString(), '</1/0>,</3/0>');
  });

  const malformed = {
    'shorter than a header': Buffer.from([0x40, 0x01, 0x00]),
    'version 2': Buffer.from([0x80, 0x01, 0x00, 0x01]),
    'reserved token length': Buffer.from([0x49, 0x01, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    'token past the end': Buffer.from([0x44, 0x01, 0x00, 0x01, 1, 2]),
    'empty message with bytes after the header': Buffer.from([0x40, 0x00, 0x00, 0x01, 0xff]),
    'reserved code class 1': Buffer.from([0x40, 0x20, 0x00, 0x01]),
    'option delta 15': Buffer.from([0x40, 0x01, 0x00, 0x01, 0xf1, 0x00]),
    'option length 15': Buffer.from([0x40, 0x01, 0x00, 0x01, 0x1f]),
    'truncated extended delta': Buffer.from([0x40, 0x01, 0x00, 0x01, 0xd0]),
    'option value past the end': Buffer.from([0x40, 0x01, 0x00, 0x01, 0xb5, 0x72, 0x64]),
    'payload marker with no payload': Buffer.from([0x40, 0x01, 0x00, 0x01, 0xff]),
  };
  for (const [name, datagram] of Object.entries(malformed)) {
    it(`rejects a datagram with ${name}`, () => {
      assert.throws(() => decode(datagram), CoapFormatError);
    });
  }

  it('throws only CoapFormatError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decode(Buffer.from(bytes));
        } catch (error) {
          assert.ok(error instanceof CoapFormatError, String(error));
        }
      }),
      { numRuns: 5000 },
    );
  });
});
