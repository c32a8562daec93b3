'use strict';
const assert = require('node:assert/strict');
const fc = require('fast-check');
const { encodeFrame, decodeFrame, frameLength, FrameReader, FrameError } = require('../dist/lib/coap/tcp-framing');
const { Signal, csmSignal, readCsm, checkSignalOptions, abortSignal, SignalError, BASE_MAX_MESSAGE_SIZE } = require('../dist/lib/coap/signals');

const RUNS = Number(process.env.FUZZ_RUNS || 300);
const hex = (text) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** Frames libcoap 4.3.1's coap-client-notls wrote to a TCP socket (captured on loopback). */
const LIBCOAP = {
  // CSM: Len 5, TKL 0, 7.01, Max-Message-Size (2) = 0x800100 (8,388,864, its default), Block-Wise-Transfer (4).
  csm: hex('50 e1 23800100 20'),
  // POST /rd?ep=cap&lt=60 with </1/0>,</3/0>: Len 13 + 0x16 = 35, token "2b", Uri-Port 44727 (it adds one), link format.
  register: hex('d2 16 02 3262 72aeb7 427264 1128 3665703d636170 056c743d3630 ff 3c2f312f303e2c3c2f332f303e'),
  // PUT /big with 300 bytes of text: Len 14 + 0x0028 = 309.
  put: Buffer.concat([hex('e2 0028 03 3263 729b83 43626967 10 ff'), Buffer.alloc(300, 'x')]),
};

describe('CoAP over TCP framing (RFC 8323 section 3.2)', () => {
  it('decodes the frames libcoap sends: lengths in the nibble, in one extended byte and in two', () => {
    const csm = decodeFrame(LIBCOAP.csm);
    assert.equal(frameLength(LIBCOAP.csm, 0), LIBCOAP.csm.length);
    assert.equal(csm.code, Signal.Csm);
    assert.deepEqual(readCsm(csm, { maxMessageSize: BASE_MAX_MESSAGE_SIZE, bert: false }), { maxMessageSize: 8388864, bert: true });

    const register = decodeFrame(LIBCOAP.register);
    assert.equal(frameLength(LIBCOAP.register, 0), LIBCOAP.register.length);
    assert.equal(register.code, 2);
    assert.equal(register.token.toString(), '2b');
    assert.deepEqual(
      register.options.map((o) => [o.number, o.number === 7 || o.number === 12 ? o.value.readUIntBE(0, o.value.length) : o.value.toString()]),
      [[7, 44727], [11, 'rd'], [12, 40], [15, 'ep=cap'], [15, 'lt=60']],
    );
    assert.equal(register.payload.toString(), '</1/0>,</3/0>');

    const put = decodeFrame(LIBCOAP.put);
    assert.equal(frameLength(LIBCOAP.put, 0), LIBCOAP.put.length);
    assert.equal(put.code, 3);
    assert.equal(put.payload.length, 300);
  });

  it('encodes those frames byte for byte', () => {
    for (const frame of Object.values(LIBCOAP)) {
      const message = decodeFrame(frame);
      assert.deepEqual(encodeFrame(message), frame);
    }
    assert.deepEqual(encodeFrame(csmSignal({ maxMessageSize: 8388864, bert: true })), LIBCOAP.csm);
  });

  it('switches the length form exactly at 13, 269 and 65805 bytes (nibbles 13, 14, 15)', () => {
    const cases = [
      [12, 0xc0, 0],
      [13, 0xd0, 1],
      [268, 0xd0, 1],
      [269, 0xe0, 2],
      [65804, 0xe0, 2],
      [65805, 0xf0, 4],
      [70000, 0xf0, 4],
    ];
    for (const [length, first, extended] of cases) {
      // Options and payload of exactly `length` bytes: the marker and length - 1 bytes of payload.
      const frame = encodeFrame({ code: 69, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(length - 1, 7) });
      assert.equal(frame[0], first, `first byte for ${length}`);
      assert.equal(frame.length, 1 + extended + 1 + length);
      const stored = extended === 1 ? frame[1] + 13 : extended === 2 ? frame.readUInt16BE(1) + 269 : extended === 4 ? frame.readUInt32BE(1) + 65805 : frame[0] >> 4;
      assert.equal(stored, length);
      assert.equal(frameLength(frame, 0), frame.length);
      assert.equal(decodeFrame(frame).payload.length, length - 1);
    }
  });

  it('refuses a reserved token length and reserved code classes', () => {
    assert.throws(() => frameLength(hex('09 45'), 0), FrameError);
    assert.throws(() => decodeFrame(hex('00 20')), /reserved code class 1/);
    assert.throws(() => decodeFrame(hex('00 c0')), /reserved code class 6/);
    assert.throws(() => decodeFrame(hex('02 45 01')), /token runs past/);
    assert.throws(() => decodeFrame(hex('10 45 ff')), /payload marker followed by an empty payload/);
  });

  it('cuts a stream into the same frames however it is split, and holds one incomplete frame', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ code: fc.constantFrom(1, 2, 69, 132, 0xe2), token: fc.uint8Array({ maxLength: 8 }), payload: fc.uint8Array({ maxLength: 2000 }) }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 40 }),
        (messages, cuts) => {
          const frames = messages.map((m) => encodeFrame({ code: m.code, token: Buffer.from(m.token), options: [{ number: 11, value: Buffer.from('x') }], payload: Buffer.from(m.payload) }));
          const stream = Buffer.concat(frames);
          const got = [];
          const reader = new FrameReader(4096, (frame) => got.push(Buffer.from(frame)));
          let offset = 0;
          for (let i = 0; offset < stream.length; i++) {
            const size = cuts[i % cuts.length];
            reader.push(stream.subarray(offset, offset + size));
            offset += size;
            assert.ok(reader.held <= 4096);
          }
          assert.deepEqual(got, frames);
          assert.equal(reader.midFrame, false);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('refuses a frame announced larger than it takes before keeping any of it', () => {
    const frames = [];
    const reader = new FrameReader(1024, (frame) => frames.push(frame));
    // Len 15 with a 4-byte length: 65805 + 2^32 - 1 bytes announced, one byte of it sent.
    assert.throws(() => reader.push(hex('f0 ffffffff 45')), (error) => error instanceof FrameError && /larger than the 1024 bytes/.test(error.message));
    assert.equal(reader.held, 0);
    // Announced one byte at a time.
    const slow = new FrameReader(1024, (frame) => frames.push(frame));
    slow.push(hex('e0'));
    slow.push(hex('ff'));
    assert.equal(slow.held, 5, 'only the header bytes so far');
    assert.throws(() => slow.push(hex('ff')), FrameError);
    assert.equal(frames.length, 0);
  });

  it('never throws anything but FrameError on random bytes, and keeps at most one frame', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 10 }), (chunks) => {
        const reader = new FrameReader(512, (frame) => {
          try {
            decodeFrame(frame);
          } catch (error) {
            assert.equal(error.name, 'CoapFormatError');
          }
        });
        try {
          for (const chunk of chunks) reader.push(Buffer.from(chunk));
        } catch (error) {
          assert.ok(error instanceof FrameError, error.stack);
        }
        assert.ok(reader.held <= 512);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('CoAP signals (RFC 8323 section 5)', () => {
  const base = { maxMessageSize: BASE_MAX_MESSAGE_SIZE, bert: false };

  it('a CSM without options keeps the settings; later ones change only what they carry', () => {
    const empty = decodeFrame(hex('00 e1'));
    assert.deepEqual(readCsm(empty, base), base);
    const bigger = decodeFrame(encodeFrame(csmSignal({ maxMessageSize: 4096, bert: false })));
    const settings = readCsm(bigger, base);
    assert.deepEqual(settings, { maxMessageSize: 4096, bert: false });
    assert.deepEqual(readCsm(decodeFrame(hex('10 e1 40')), settings), { maxMessageSize: 4096, bert: true });
  });

  it('a CSM with an unknown critical option, or a Max-Message-Size longer than four bytes, is a reason to abort', () => {
    assert.throws(() => readCsm(decodeFrame(hex('10 e1 90')), base), (error) => error instanceof SignalError && error.badOption === 9);
    assert.throws(() => readCsm(decodeFrame(hex('60 e1 25 0102030405')), base), (error) => error instanceof SignalError && error.badOption === 2);
    // Unknown elective options are ignored.
    assert.deepEqual(readCsm(decodeFrame(hex('10 e1 a0')), base), base);
  });

  it('other signals abort on critical options only', () => {
    assert.doesNotThrow(() => checkSignalOptions(decodeFrame(hex('10 e2 20')))); // Ping with Custody (2)
    assert.throws(() => checkSignalOptions(decodeFrame(hex('10 e2 30'))), SignalError);
  });

  it('Abort carries its reason and the bad CSM option', () => {
    const abort = decodeFrame(encodeFrame(abortSignal('bad CSM', 9)));
    assert.equal(abort.code, Signal.Abort);
    assert.deepEqual(abort.options.map((o) => [o.number, o.value[0]]), [[2, 9]]);
    assert.equal(abort.payload.toString(), 'bad CSM');
  });
});
