'use strict';
const assert = require('node:assert/strict');
const fc = require('fast-check');
const lwm2mCodec = require('lwm2m-codec');
const cbor = require('cbor');
const { decodeContent, encodeContent } = require('../dist/lib/content/formats');
const { recordsToPayload, payloadToRecords, namedRecords } = require('../dist/lib/content/payload');
const { ContentError } = require('../dist/lib/content/values');
const { ObjectModel } = require('../dist/lib/model/object-model');
const { Lwm2mPath } = require('../dist/lib/model/path');
const { encodeSenmlPaths, decodeSenmlPaths } = require('../dist/lib/content/senml');
const { decodeCbor, encodeCbor } = require('../dist/lib/content/cbor');

const model = ObjectModel.builtIn();
const P = (text) => Lwm2mPath.parse(text);
const F = { text: 0, opaque: 42, cbor: 60, senmlJson: 110, senmlCbor: 112, senmlEtchJson: 320, senmlEtchCbor: 322, tlv: 11542, json: 11543, lwm2mCbor: 11544 };
const plain = (records) => records.map((r) => ({ path: r.path.toString(), type: r.type, value: r.value }));

// LwM2M 1.0 TS, TLV example: Device object instance 0 read as /3/0.
const SPEC_DEVICE_TLV = Buffer.from(
  'c800144f70656e204d6f62696c6520416c6c69616e6365' + // 0 Manufacturer "Open Mobile Alliance"
    'c801164c696768747765696768742d4d324d2d436c69656e74' + // 1 Model "Lightweight-M2M-Client"
    'c80209333435303030313233' + // 2 Serial "345000123"
    'c303312e30' + // 3 Firmware "1.0"
    '8606' + '410001' + '410105' + // 6 Available power sources {0: 1, 1: 5}
    '88070842000ed842011388' + // 7 Power source voltage {0: 3800, 1: 5000}
    '8708' + '41007d' + '42010384' + // 8 Power source current {0: 125, 1: 900}
    'c10964' + // 9 Battery level 100
    'c10a0f' + // 10 Memory free 15
    '830b' + '410000' + // 11 Error code {0: 0}
    'c40d5182428f' + // 13 Current time 1367491215
    'c60e2b30323a3030' + // 14 UTC offset "+02:00"
    'c11055', // 16 Binding "U"
  'hex',
);

describe('content formats', () => {
  describe('TLV', () => {
    it('decodes the Device object example of the LwM2M specification', () => {
      const records = decodeContent(SPEC_DEVICE_TLV, F.tlv, P('/3/0'), model);
      const payload = recordsToPayload(records, P('/3/0'));
      assert.equal(payload[0], 'Open Mobile Alliance');
      assert.equal(payload[1], 'Lightweight-M2M-Client');
      assert.equal(payload[3], '1.0');
      assert.deepEqual(payload[6], { 0: 1, 1: 5 });
      assert.deepEqual(payload[7], { 0: 3800, 1: 5000 });
      assert.deepEqual(payload[8], { 0: 125, 1: 900 });
      assert.equal(payload[9], 100);
      assert.deepEqual(payload[11], { 0: 0 });
      assert.deepEqual(payload[13], new Date(1367491215 * 1000));
      assert.equal(payload[14], '+02:00');
      assert.equal(payload[16], 'U');
      const named = namedRecords(records, model);
      assert.deepEqual(named[0], { path: '/3/0/0', name: 'Manufacturer', type: 'string', value: 'Open Mobile Alliance' });
      assert.equal(namedRecords(decodeContent(Buffer.from('300'), 0, P('/1/0/1'), model), model)[0].units, 's');
      // And encodes it back to the same bytes.
      assert.deepEqual(encodeContent(records, F.tlv, P('/3/0'), model), SPEC_DEVICE_TLV);
    });

    it('decodes what lwm2m-codec encodes (instance wrapper, floats, object level)', () => {
      let records = decodeContent(lwm2mCodec.encode('tlv', '/3303/0', { 5700: 31.5, 5701: 'Cel' }), F.tlv, P('/3303/0'), model);
      assert.deepEqual(plain(records), [
        { path: '/3303/0/5700', type: 'float', value: 31.5 },
        { path: '/3303/0/5701', type: 'string', value: 'Cel' },
      ]);
      records = decodeContent(lwm2mCodec.encode('tlv', '/3303', { 0: { 5700: 1 }, 1: { 5700: 2.5 } }), F.tlv, P('/3303'), model);
      assert.deepEqual(recordsToPayload(records, P('/3303')), { 0: { 5700: 1 }, 1: { 5700: 2.5 } });
      records = decodeContent(lwm2mCodec.encode('tlv', '/3/0', { 9: 77, 13: 1367491215 }), F.tlv, P('/3/0'), model);
      assert.deepEqual(recordsToPayload(records, P('/3/0')), { 9: 77, 13: new Date(1367491215000) });
    });

    it('encodes what lwm2m-codec decodes', () => {
      const records = payloadToRecords({ 5700: 21.25, 5701: 'Cel' }, P('/3303/0'), model);
      const bytes = encodeContent(records, F.tlv, P('/3303/0'), model);
      assert.deepEqual(lwm2mCodec.decode('tlv', '/3303/0', bytes), { sensorValue: 21.25, units: 'Cel' });
    });

    it('hands over bytes for resources the model does not know', () => {
      const records = decodeContent(Buffer.from('c10105', 'hex'), F.tlv, P('/40000/0'), model);
      assert.deepEqual(plain(records), [{ path: '/40000/0/1', type: 'opaque', value: Buffer.from([5]) }]);
    });

    for (const [name, hex, target] of [
      ['a truncated header', 'c8', '/3/0'],
      ['a value past the end', 'c8001441', '/3/0'],
      ['an integer of 3 bytes', 'c3090102 03'.replace(' ', ''), '/3/0'],
      ['a boolean of value 2', 'e116da02', '/3311/0'],
      ['a resource where instances are expected', 'c10964', '/3'],
      ['invalid UTF-8 in a string', 'c200c328', '/3/0'],
    ]) {
      it(`rejects ${name}`, () => {
        assert.throws(() => decodeContent(Buffer.from(hex, 'hex'), F.tlv, P(target), model), ContentError);
      });
    }
  });

  describe('LwM2M JSON', () => {
    it('decodes the specification style with a trailing slash and lwm2m-codec style without', () => {
      const spec = Buffer.from('{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"13","v":1367491215}]}');
      const records = decodeContent(spec, F.json, P('/3/0'), model);
      assert.deepEqual(recordsToPayload(records, P('/3/0')), { 0: 'Open Mobile Alliance', 6: { 0: 1, 1: 5 }, 13: new Date(1367491215000) });
      const other = decodeContent(lwm2mCodec.encode('json', '/3303/0', { 5700: 31.5, 5701: 'Cel' }), F.json, P('/3303/0'), model);
      assert.deepEqual(recordsToPayload(other, P('/3303/0')), { 5700: 31.5, 5701: 'Cel' });
    });

    it('encodes what lwm2m-codec decodes', () => {
      const bytes = encodeContent(payloadToRecords({ 5700: 20, 5701: 'Cel' }, P('/3303/0'), model), F.json, P('/3303/0'), model);
      assert.deepEqual(lwm2mCodec.decode('json', '/3303/0', bytes), { sensorValue: 20, units: 'Cel' });
    });

    for (const bad of ['{', '[]', '{"e":{}}', '{"e":[{"n":"0","v":1,"sv":"x"}]}', '{"bn":"/3/0/","e":[{"n":"x","v":1}]}', '{"bn":"/3/0/","e":[{"n":"9","sv":"full"}]}']) {
      it(`rejects ${bad}`, () => assert.throws(() => decodeContent(Buffer.from(bad), F.json, P('/3/0'), model), ContentError));
    }
  });

  describe('SenML JSON and SenML CBOR', () => {
    const senml = [
      { bn: '/3/0/', n: '0', vs: 'Open Mobile Alliance' },
      { n: '9', v: 95 },
      { n: '6/0', v: 1 },
      { n: '16', vs: 'U' },
    ];

    it('decodes SenML JSON from the specification', () => {
      const records = decodeContent(Buffer.from(JSON.stringify(senml)), F.senmlJson, P('/3/0'), model);
      assert.deepEqual(recordsToPayload(records, P('/3/0')), { 0: 'Open Mobile Alliance', 9: 95, 6: { 0: 1 }, 16: 'U' });
    });

    it('decodes SenML CBOR encoded by the cbor package (labels -2, 0, 2, 3, 4, 8, "vlo")', () => {
      const items = [
        new Map([[-2, '/3/0/'], [0, '0'], [3, 'Open Mobile Alliance']]),
        new Map([[0, '9'], [2, 95]]),
        new Map([[-2, '/1/0/'], [0, '6'], [4, true]]),
        new Map([[-2, '/3/0/'], [0, '17'], [3, 'sensor']]),
        new Map([[-2, '/2/0/'], [0, '0'], [2, 3]]),
        new Map([[-2, '/3311/0/'], [0, '5750'], [3, 'lamp']]),
      ];
      const records = decodeContent(cbor.encode(items), F.senmlCbor, Lwm2mPath.ROOT, model);
      assert.deepEqual(plain(records), [
        { path: '/3/0/0', type: 'string', value: 'Open Mobile Alliance' },
        { path: '/3/0/9', type: 'integer', value: 95 },
        { path: '/1/0/6', type: 'boolean', value: true },
        { path: '/3/0/17', type: 'string', value: 'sensor' },
        { path: '/2/0/0', type: 'integer', value: 3 },
        { path: '/3311/0/5750', type: 'string', value: 'lamp' },
      ]);
    });

    it('encodes SenML CBOR that the cbor package reads, with opaque as bytes and links as vlo', () => {
      const records = [
        { path: P('/3/0/0'), type: 'string', value: 'Acme' },
        { path: P('/3303/0/5700'), type: 'float', value: 21 },
        { path: P('/5/0/0'), type: 'opaque', value: Buffer.from([1, 2, 3]) },
        { path: P('/16/0/0/0'), type: 'objlnk', value: '3:0' },
      ];
      const decoded = cbor.decodeFirstSync(encodeContent(records, F.senmlCbor, Lwm2mPath.ROOT, model));
      assert.deepEqual(decoded.map((m) => Object.fromEntries(m)), [
        { 0: '/3/0/0', 3: 'Acme' },
        { 0: '/5/0/0', 8: Buffer.from([1, 2, 3]) },
        { 0: '/16/0/0/0', vlo: '3:0' },
        { 0: '/3303/0/5700', 2: 21 },
      ]);
    });

    it('reads opaque values from SenML JSON as base64url', () => {
      const records = decodeContent(Buffer.from('[{"n":"/5/0/0","vd":"AQID_w"}]'), F.senmlJson, Lwm2mPath.ROOT, model);
      assert.deepEqual(records[0].value, Buffer.from([1, 2, 3, 255]));
    });

    it('writes opaque values in base64url (RFC 8428 section 4.3) and reads base64 as well', () => {
      const bytes = Buffer.from([0xfb, 0xff, 0xbf]);
      const written = JSON.parse(encodeContent([{ path: P('/5/0/0'), type: 'opaque', value: bytes }], F.senmlJson, Lwm2mPath.ROOT, model).toString());
      assert.equal(written[0].vd, '-_-_');
      for (const text of ['-_-_', '+/+/', '-_8', '+/8=']) {
        const [record] = decodeContent(Buffer.from(`[{"n":"/5/0/0","vd":"${text}"}]`), F.senmlJson, Lwm2mPath.ROOT, model);
        assert.deepEqual(record.value, text.length === 4 && !text.endsWith('=') ? bytes : Buffer.from([0xfb, 0xff]), text);
      }
      assert.throws(() => decodeContent(Buffer.from('[{"n":"/5/0/0","vd":"-/"}]'), F.senmlJson, Lwm2mPath.ROOT, model), /"vd" must be base64url/);
    });

    it('resolves relative times against now and keeps absolute ones', () => {
      const records = decodeContent(Buffer.from('[{"bn":"/3303/0/5700","bt":1700000000,"v":20},{"t":-10,"bt":-10,"v":21}]'), F.senmlJson, P('/3303/0/5700'), model);
      assert.equal(records[0].timestamp, 1700000000);
      assert.ok(Math.abs(records[1].timestamp - (Date.now() / 1000 - 20)) < 5);
    });

    describe('resolution of base fields (RFC 8428 sections 4.1, 4.5, 4.6), one resolver for SenML JSON, SenML CBOR and LwM2M JSON', () => {
      const LABELS = { bver: -1, bn: -2, bt: -3, bu: -4, bv: -5, bs: -6, n: 0, u: 1, v: 2, vs: 3, vb: 4, s: 5, t: 6, ut: 7, vd: 8 };
      /** The same pack in SenML CBOR, written by the cbor package with the labels of RFC 8428 section 6. */
      const senmlCbor = (pack) => cbor.encode(pack.map((record) => new Map(Object.entries(record).map(([key, value]) => [LABELS[key] ?? key, value]))));
      const timed = (records) => records.map((r) => ({ path: r.path.toString(), value: r.value, timestamp: r.timestamp }));
      const decodeAll = (pack, target = Lwm2mPath.ROOT) => [
        decodeContent(Buffer.from(JSON.stringify(pack)), F.senmlJson, target, model),
        decodeContent(senmlCbor(pack), F.senmlCbor, target, model),
      ];

      it('gives every record of the Send in the issue the base time of the first', () => {
        const pack = [{ n: '/3/0/0', bt: 1795769114.53, vs: 'x' }, { n: '/3/0/9', v: 0 }];
        const lwm2mJson = { bn: '/', bt: 1795769114.53, e: [{ n: '3/0/0', sv: 'x' }, { n: '3/0/9', v: 0 }] };
        for (const records of [...decodeAll(pack), decodeContent(Buffer.from(JSON.stringify(lwm2mJson)), F.json, Lwm2mPath.ROOT, model)]) {
          assert.deepEqual(timed(records), [
            { path: '/3/0/0', value: 'x', timestamp: 1795769114.53 },
            { path: '/3/0/9', value: 0, timestamp: 1795769114.53 },
          ]);
        }
      });

      it('resolves the RFC 8428 section 5.1.2 example (bt, bu, bver 5, times relative to bt), its names made LwM2M paths', () => {
        const pack = [
          { bn: '/3303/0/', bt: 1.276020076001e9, bu: 'A', bver: 5, n: '5601', u: 'V', v: 120.1 },
          { n: '5700', t: -5, v: 1.2 },
          { n: '5700', t: -4, v: 1.3 },
          { n: '5700', t: -3, v: 1.4 },
          { n: '5700', t: -2, v: 1.5 },
          { n: '5700', t: -1, v: 1.6 },
          { n: '5700', v: 1.7 },
        ];
        const expected = [['/3303/0/5601', 120.1, 0], ...[1.2, 1.3, 1.4, 1.5, 1.6, 1.7].map((v, i) => ['/3303/0/5700', v, i - 5])].map(([path, value, t]) => ({ path, value, timestamp: 1.276020076001e9 + t }));
        for (const records of decodeAll(pack, P('/3303/0'))) assert.deepEqual(timed(records), expected);
      });

      it('keeps each base field until a record changes it (RFC 8428 section 5.1.6: a later bn with the first bt)', () => {
        const pack = [
          { bn: '/3303/0/', bt: 1320078429, n: '5700', v: 27.2 },
          { n: '5701', vs: 'Cel' },
          { bn: '/3304/0/', bt: 1320078430, n: '5700', v: 25.2 },
          { bn: '/3303/1/', n: '5700', v: 24.3 },
        ];
        for (const records of decodeAll(pack)) {
          assert.deepEqual(timed(records), [
            { path: '/3303/0/5700', value: 27.2, timestamp: 1320078429 },
            { path: '/3303/0/5701', value: 'Cel', timestamp: 1320078429 },
            { path: '/3304/0/5700', value: 25.2, timestamp: 1320078430 },
            { path: '/3303/1/5700', value: 24.3, timestamp: 1320078430 },
          ]);
        }
      });

      it('adds the base value to every following numeric value, and the base sum to sums', () => {
        const pack = [{ bn: '/3303/0/', bv: 20, n: '5700', v: 1.5 }, { n: '5601', v: -2 }, { n: '5701', vs: 'Cel' }, { bv: 0, n: '5602', v: 3 }, { bn: '/3331/0/', bs: 1000, n: '5805', s: 5 }, { n: '5700', v: 7 }];
        for (const records of decodeAll(pack)) {
          assert.deepEqual(plain(records).map((r) => [r.path, r.value]), [
            ['/3303/0/5700', 21.5],
            ['/3303/0/5601', 18],
            ['/3303/0/5701', 'Cel'],
            ['/3303/0/5602', 3],
            ['/3331/0/5805', 1005],
            ['/3331/0/5700', 7],
          ]);
        }
      });

      it('counts times below 2^28 from now (RFC 8428 section 4.5.3) and leaves records without any time untimed', () => {
        const now = Date.now() / 1000;
        const pack = [{ bn: '/3303/0/', n: '5700', v: 1 }, { n: '5601', t: 0, v: 2 }, { n: '5602', t: -60, v: 3 }, { bt: -10, n: '5603', t: -10, v: 4 }, { n: '5604', v: 5 }];
        for (const records of decodeAll(pack)) {
          const times = records.map((r) => (r.timestamp === undefined ? undefined : Math.round(r.timestamp - now)));
          assert.deepEqual(times, [undefined, 0, -60, -20, -10]);
        }
      });

      it('resolves random packs in SenML JSON and SenML CBOR as a reference resolution of RFC 8428 does', () => {
        const record = fc.record(
          { bn: fc.constantFrom('/3303/0/', '/3304/1/', '/3303/0'), bt: fc.integer({ min: 1.5e9, max: 2e9 }), bv: fc.integer({ min: -50, max: 50 }), n: fc.constantFrom('5700', '5601', '5602'), t: fc.integer({ min: -1000, max: 1000 }), v: fc.integer({ min: -100, max: 100 }) },
          { requiredKeys: ['n', 'v'] },
        );
        fc.assert(
          fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), (tail) => {
            const pack = [{ bn: '/3303/0/', ...tail[0] }, ...tail.slice(1)];
            let bn;
            let bt;
            let bv;
            const expected = pack.map((r) => {
              bn = r.bn ?? bn;
              bt = r.bt ?? bt;
              bv = r.bv ?? bv;
              const timestamp = bt === undefined && r.t === undefined ? undefined : (bt ?? 0) + (r.t ?? 0);
              return { path: `${bn.replace(/\/$/, '')}/${r.n}`, value: (bv ?? 0) + r.v, timestamp };
            });
            const absolute = expected.every((r) => r.timestamp === undefined || r.timestamp > 2 ** 28);
            fc.pre(absolute);
            for (const records of decodeAll(pack)) assert.deepEqual(timed(records), expected);
          }),
          { numRuns: 300 },
        );
      });

      for (const [name, pack, pattern] of [
        ['a newer SenML version', [{ bver: 11, n: '/3/0/9', v: 1 }], /SenML version 11; this server reads version 10 and older/],
        ['a version that is not a positive integer', [{ bver: 0, n: '/3/0/9', v: 1 }], /"bver" must be a positive integer/],
        ['a base value that is not a number', [{ bv: '1', n: '/3/0/9', v: 1 }], /"bv" must be a number/],
        ['an unknown mandatory field', [{ n: '/3/0/9', v: 1, x_: 1 }], /unsupported mandatory field "x_"/],
      ]) {
        it(`refuses ${name} in SenML JSON and SenML CBOR`, () => {
          assert.throws(() => decodeContent(Buffer.from(JSON.stringify(pack)), F.senmlJson, Lwm2mPath.ROOT, model), (error) => error instanceof ContentError && pattern.test(error.message));
          assert.throws(() => decodeContent(senmlCbor(pack), F.senmlCbor, Lwm2mPath.ROOT, model), (error) => error instanceof ContentError && pattern.test(error.message));
        });
      }
    });

    it('carries Read-Composite paths', () => {
      for (const format of [F.senmlJson, F.senmlCbor]) {
        const paths = [P('/3/0/0'), P('/3303/0/5700'), P('/1')];
        assert.deepEqual(decodeSenmlPaths(encodeSenmlPaths(paths, format), format).map(String), ['/3/0/0', '/3303/0/5700', '/1']);
      }
    });

    for (const bad of ['{}', '[1]', '[{"n":"/3/0/9"}]', '[{"n":"/3/0/9","v":"x"}]', '[{"n":"/3/0/9","v":1,"vs":"1"}]', '[{"n":"/3/0","v":1}]', '[{"n":"/a","v":1}]', '[{"n":"/3/0/9","v":1,"x_":1}]', '[{"n":"/3/0/0","v":5}]']) {
      it(`rejects SenML JSON ${bad}`, () => assert.throws(() => decodeContent(Buffer.from(bad), F.senmlJson, Lwm2mPath.ROOT, model), ContentError));
    }
  });

  describe('LwM2M CBOR and CBOR', () => {
    it('decodes nested maps and array keys', () => {
      const encoded = cbor.encode(new Map([[3, new Map([[0, new Map([[0, 'Acme'], [6, new Map([[0, 1], [1, 5]])]])]])], [[3303, 0], new Map([[5700, 21.5]])]]));
      const records = decodeContent(encoded, F.lwm2mCbor, Lwm2mPath.ROOT, model);
      assert.deepEqual(plain(records), [
        { path: '/3/0/0', type: 'string', value: 'Acme' },
        { path: '/3/0/6/0', type: 'integer', value: 1 },
        { path: '/3/0/6/1', type: 'integer', value: 5 },
        { path: '/3303/0/5700', type: 'float', value: 21.5 },
      ]);
    });

    it('encodes what the cbor package reads', () => {
      const records = payloadToRecords({ 0: 'Acme', 6: [1, 5] }, P('/3/0'), model);
      const decoded = cbor.decodeFirstSync(encodeContent(records, F.lwm2mCbor, P('/3/0'), model));
      assert.deepEqual(decoded, new Map([[[3, 0], new Map([[0, 'Acme'], [6, new Map([[0, 1], [1, 5]])]])]]));
    });

    it('reads a single CBOR value, tagged time included', () => {
      const tagged = cbor.encode(new cbor.Tagged(1, 1700000000));
      assert.deepEqual(decodeContent(tagged, F.cbor, P('/3/0/13'), model)[0].value, new Date(1700000000000));
      assert.equal(decodeContent(cbor.encode(3.25), F.cbor, P('/3303/0/5700'), model)[0].value, 3.25);
      assert.throws(() => decodeContent(cbor.encode('hot'), F.cbor, P('/3303/0/5700'), model), ContentError);
    });

    it('keeps integral floats floats on the wire', () => {
      const bytes = encodeContent([{ path: P('/3303/0/5700'), type: 'float', value: 21 }], F.cbor, P('/3303/0/5700'), model);
      assert.equal(bytes[0], 0xfa);
    });

    it('round-trips CBOR items with the cbor package both ways', () => {
      const item = fc.letrec((tie) => ({
        value: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.double({ noNaN: true }), fc.string(), fc.boolean(), fc.uint8Array().map((b) => Buffer.from(b)), fc.array(tie('value'), { maxLength: 4 })),
      })).value;
      fc.assert(
        fc.property(item, (value) => {
          assert.deepEqual(decodeCbor(cbor.encode(value)), value);
          assert.deepEqual(cbor.decodeFirstSync(encodeCbor(value)), value);
        }),
      );
    });

    for (const [name, hex] of [['truncated', 'a1'], ['indefinite length without its break', 'bf'], ['trailing bytes', 'a0a0'], ['a non-map', '01'], ['a text key', 'a16161 01'.replace(' ', '')], ['too deep', 'a1'.repeat(40) + '01']]) {
      it(`rejects ${name} LwM2M CBOR`, () => assert.throws(() => decodeContent(Buffer.from(hex, 'hex'), F.lwm2mCbor, Lwm2mPath.ROOT, model), ContentError));
    }
  });

  describe('CBOR with indefinite lengths (RFC 8949 sections 3.2.2, 3.2.3)', () => {
    /** The value as the cbor package encodes it with an indefinite length wherever choose() says, strings in chunks of size. */
    function indefinite(value, choose, size) {
      if (Array.isArray(value)) {
        const copy = value.map((item) => indefinite(item, choose, size));
        if (choose()) copy.encodeCBOR = cbor.Encoder.encodeIndefinite;
        return copy;
      }
      if (value instanceof Map) {
        const copy = new Map([...value].map(([key, item]) => [key, indefinite(item, choose, size)]));
        if (choose()) copy.encodeCBOR = cbor.Encoder.encodeIndefinite;
        return copy;
      }
      if ((typeof value === 'string' || Buffer.isBuffer(value)) && choose()) return { encodeCBOR: (gen) => cbor.Encoder.encodeIndefinite(gen, value, { chunkSize: size }) };
      return value;
    }
    const always = () => true;

    it('reads the LwM2M 1.2 client answer {_ [3,0,0]: "hello"} of the issue', () => {
      const records = decodeContent(Buffer.from('bf830300006568656c6c6fff', 'hex'), F.lwm2mCbor, P('/3/0/0'), model);
      assert.deepEqual(plain(records), [{ path: '/3/0/0', type: 'string', value: 'hello' }]);
    });

    it('reads LwM2M CBOR, SenML CBOR and CBOR that the cbor package encodes with indefinite lengths and chunked strings', () => {
      const tree = new Map([[3, new Map([[0, new Map([[0, 'Open Mobile Alliance'], [6, new Map([[0, 1], [1, 5]])]])]])], [[3303, 0], new Map([[5700, 21.5]])]]);
      const lwm2m = cbor.encode(indefinite(tree, always, 4));
      assert.equal(lwm2m[0], 0xbf);
      assert.deepEqual(plain(decodeContent(lwm2m, F.lwm2mCbor, Lwm2mPath.ROOT, model)), [
        { path: '/3/0/0', type: 'string', value: 'Open Mobile Alliance' },
        { path: '/3/0/6/0', type: 'integer', value: 1 },
        { path: '/3/0/6/1', type: 'integer', value: 5 },
        { path: '/3303/0/5700', type: 'float', value: 21.5 },
      ]);
      const senml = [new Map([[-2, '/3/0/'], [0, '0'], [3, 'Open Mobile Alliance']]), new Map([[-2, '/5/0/'], [0, '0'], [8, Buffer.from('firmware-image')]])];
      const records = decodeContent(cbor.encode(indefinite(senml, always, 3)), F.senmlCbor, Lwm2mPath.ROOT, model);
      assert.deepEqual(plain(records), [
        { path: '/3/0/0', type: 'string', value: 'Open Mobile Alliance' },
        { path: '/5/0/0', type: 'opaque', value: Buffer.from('firmware-image') },
      ]);
      assert.equal(decodeContent(cbor.encode(indefinite('Acme Corp', always, 2)), F.cbor, P('/3/0/0'), model)[0].value, 'Acme Corp');
    });

    it('decodes whatever mix of definite and indefinite lengths the cbor package writes, as the same value', () => {
      const item = fc.letrec((tie) => ({
        value: fc.oneof(
          { depthSize: 'small' },
          fc.integer(),
          fc.double({ noNaN: true }),
          fc.string(),
          fc.boolean(),
          fc.uint8Array().map((b) => Buffer.from(b)),
          fc.array(tie('value'), { maxLength: 4 }),
          fc.array(fc.tuple(fc.integer(), tie('value')), { maxLength: 4 }).map((entries) => new Map(entries)),
        ),
      })).value;
      fc.assert(
        fc.property(item, fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }), fc.integer({ min: 1, max: 5 }), (value, flags, size) => {
          let i = 0;
          const bytes = cbor.encode(indefinite(value, () => flags[i++ % flags.length], size));
          assert.deepEqual(decodeCbor(bytes), value);
        }),
        { numRuns: 500 },
      );
    });

    it('never throws anything but its own error on random mixes of indefinite heads, chunks and breaks', () => {
      const bytes = fc.array(fc.constantFrom(0x9f, 0xbf, 0x5f, 0x7f, 0xff, 0x40, 0x41, 0x60, 0x61, 0x62, 0x00, 0x01, 0x18, 0x80, 0x82, 0xa0, 0xa1, 0xc1, 0xf4, 0xf6, 0xfb, 0xc3, 0x83), { maxLength: 40 });
      fc.assert(
        fc.property(bytes, fc.constantFrom([F.cbor, P('/3/0/0')], [F.senmlCbor, Lwm2mPath.ROOT], [F.lwm2mCbor, Lwm2mPath.ROOT]), (array, [format, target]) => {
          const payload = Buffer.from(array);
          try {
            decodeCbor(payload);
          } catch (error) {
            assert.equal(error.name, 'CborError', error.stack);
          }
          try {
            decodeContent(payload, format, target, model);
          } catch (error) {
            assert.ok(error instanceof ContentError, error.stack);
          }
        }),
        { numRuns: 5000 },
      );
    });

    for (const [name, hex, pattern] of [
      ['an array without its break', '9f0102', /ends before the break of an indefinite-length array/],
      ['a map without its break', 'bf0102', /ends before the break of an indefinite-length map/],
      ['a byte string without its break', '5f4101', /ends before the break of an indefinite-length byte string/],
      ['a break in a definite array', '830102ff', /break \(0xff\) where no indefinite-length item is open/],
      ['a break in a definite map', 'a201ff', /break \(0xff\) where no indefinite-length item is open/],
      ['a break between a key and its value', 'bf01ff', /break between a map key and its value/],
      ['a break on its own', 'ff', /break \(0xff\) where no indefinite-length item is open/],
      ['a text chunk in a byte string', '5f41016161ff', /chunk of an indefinite-length byte string must be a byte string, not a text string/],
      ['a byte chunk in a text string', '7f61614101ff', /chunk of an indefinite-length text string must be a text string, not a byte string/],
      ['an integer chunk in a text string', '7f01ff', /must be a text string, not a unsigned integer/],
      ['an indefinite chunk inside an indefinite string', '7f7f6161ffff', /cannot be indefinite itself/],
      ['a chunk split inside a character', '7f61c361a9ff', /not valid UTF-8/],
      ['an indefinite integer', '1f', /integer cannot have an indefinite length/],
      ['an indefinite tag', 'df00', /tag cannot have an indefinite length/],
      ['indefinite arrays nested too deep', '9f'.repeat(40) + 'ff'.repeat(40), /nested deeper than 32/],
      ['too many items in an indefinite array', '9f' + '00'.repeat(100_001) + 'ff', /more than 100000 CBOR items/],
      ['too many chunks in an indefinite string', '5f' + '40'.repeat(100_001) + 'ff', /more than 100000 CBOR items/],
    ]) {
      it(`refuses ${name} with the reader's error, in every CBOR format`, () => {
        const bytes = Buffer.from(hex, 'hex');
        assert.throws(() => decodeCbor(bytes), (error) => error.name === 'CborError' && pattern.test(error.message));
        for (const [format, target] of [[F.cbor, P('/3/0/0')], [F.senmlCbor, Lwm2mPath.ROOT], [F.lwm2mCbor, Lwm2mPath.ROOT]]) {
          assert.throws(() => decodeContent(bytes, format, target, model), (error) => error instanceof ContentError && pattern.test(error.message));
        }
      });
    }
  });

  describe('a payload without Content-Format, read by the path and the object model', () => {
    const none = (bytes, target) => decodeContent(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), undefined, P(target), model);

    it('reads one value as text/plain, typed by the model', () => {
      assert.deepEqual(plain(none('100', '/3/0/9')), [{ path: '/3/0/9', type: 'integer', value: 100 }]);
      assert.deepEqual(plain(none('Acme', '/3/0/0')), [{ path: '/3/0/0', type: 'string', value: 'Acme' }]);
    });

    it('reads an opaque resource as its bytes, not as base64 text', () => {
      const image = Buffer.from([0x00, 0xff, 0x41, 0x42, 0x3d]);
      assert.deepEqual(plain(none(image, '/5/0/0')), [{ path: '/5/0/0', type: 'opaque', value: image }]);
      assert.deepEqual(plain(none('QUJD', '/5/0/0')), [{ path: '/5/0/0', type: 'opaque', value: Buffer.from('QUJD') }]);
    });

    it('reads one value sent as TLV when it is not text of the resource type', () => {
      assert.deepEqual(plain(none(Buffer.from('c10964', 'hex'), '/3/0/9')), [{ path: '/3/0/9', type: 'integer', value: 100 }]);
    });

    it('reads several values as TLV, SenML JSON, LwM2M JSON or CBOR, never as text', () => {
      const expected = [{ path: '/3/0/0', type: 'string', value: 'Open Mobile Alliance' }, { path: '/3/0/9', type: 'integer', value: 100 }];
      assert.deepEqual(plain(none(Buffer.from('c800144f70656e204d6f62696c6520416c6c69616e6365c10964', 'hex'), '/3/0')), expected);
      assert.deepEqual(plain(none(' [{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"9","v":100}]', '/3/0')), expected);
      assert.deepEqual(plain(none('{"e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"9","v":100}]}', '/3/0')), expected);
      assert.deepEqual(plain(none(cbor.encode([new Map([[0, '/3/0/0'], [3, 'Open Mobile Alliance']]), new Map([[0, '/3/0/9'], [2, 100]])]), '/3/0')), expected);
      assert.deepEqual(plain(none(cbor.encode(new Map([[[3, 0], new Map([[0, 'Open Mobile Alliance'], [9, 100]])]])), '/3/0')), expected);
      assert.deepEqual(plain(none(Buffer.from('88070842000ed842011388', 'hex'), '/3/0/7')), [
        { path: '/3/0/7/0', type: 'integer', value: 3800 },
        { path: '/3/0/7/1', type: 'integer', value: 5000 },
      ]);
    });

    it('says it had no Content-Format and what it tried when nothing reads', () => {
      assert.throws(() => none('hot', '/3303/0/5700'), /without a Content-Format, read as text\/plain for \/3303\/0\/5700: .*is not a number/);
      assert.throws(() => none('soup', '/3/0'), /without a Content-Format, read as application\/vnd\.oma\.lwm2m\+tlv for \/3\/0/);
    });
  });

  describe('values of objects outside the model', () => {
    // /30000/0/1 is in no object definition: the format alone says what its value is.
    const target = P('/30000/0/1');
    const one = (bytes, format) => plain(decodeContent(bytes, format, target, model));

    it('keeps the type a self-describing format gives a number, in every one of them', () => {
      const expected = [{ path: '/30000/0/1', type: 'float', value: 21.5 }];
      assert.deepEqual(one(Buffer.from('[{"n":"/30000/0/1","v":21.5}]'), F.senmlJson), expected);
      assert.deepEqual(one(cbor.encode([new Map([[0, '/30000/0/1'], [2, 21.5]])]), F.senmlCbor), expected);
      assert.deepEqual(one(Buffer.from('{"bn":"/30000/0/","e":[{"n":"1","v":21.5}]}'), F.json), expected);
      assert.deepEqual(one(cbor.encode(new Map([[[30000, 0, 1], 21.5]])), F.lwm2mCbor), expected);
      assert.deepEqual(one(cbor.encode(21.5), F.cbor), expected);
    });

    it('keeps text, booleans, bytes and object links as the format marks them', () => {
      const senml = Buffer.from('[{"bn":"/30000/0/","n":"1","vs":"on"},{"n":"2","vb":true},{"n":"3","vd":"AQI"},{"n":"4","vlo":"3:0"}]');
      assert.deepEqual(plain(decodeContent(senml, F.senmlJson, P('/30000/0'), model)), [
        { path: '/30000/0/1', type: 'string', value: 'on' },
        { path: '/30000/0/2', type: 'boolean', value: true },
        { path: '/30000/0/3', type: 'opaque', value: Buffer.from([1, 2]) },
        { path: '/30000/0/4', type: 'objlnk', value: '3:0' },
      ]);
      assert.deepEqual(plain(decodeContent(Buffer.from('{"bn":"/30000/0/","e":[{"n":"4","ov":"3:0"}]}'), F.json, P('/30000/0'), model)), [{ path: '/30000/0/4', type: 'objlnk', value: '3:0' }]);
      assert.throws(() => decodeContent(Buffer.from('[{"n":"/30000/0/4","vlo":"three"}]'), F.senmlJson, Lwm2mPath.ROOT, model), /object link "three" is not like "3:0"/);
    });

    it('hands over bytes from TLV and text from text/plain, which carry no type', () => {
      assert.deepEqual(one(Buffer.from('c1010a', 'hex'), F.tlv), [{ path: '/30000/0/1', type: 'opaque', value: Buffer.from([10]) }]);
      assert.deepEqual(one(Buffer.from('21.5'), F.text), [{ path: '/30000/0/1', type: 'string', value: '21.5' }]);
    });
  });

  describe('text/plain and opaque', () => {
    it('types text by the model', () => {
      assert.equal(decodeContent(Buffer.from('95'), F.text, P('/3/0/9'), model)[0].value, 95);
      assert.equal(decodeContent(Buffer.from('21.5'), F.text, P('/3303/0/5700'), model)[0].value, 21.5);
      assert.equal(decodeContent(Buffer.from('1'), F.text, P('/1/0/6'), model)[0].value, true);
      assert.deepEqual(decodeContent(Buffer.from('1700000000'), F.text, P('/3/0/13'), model)[0].value, new Date(1700000000000));
      assert.deepEqual(decodeContent(Buffer.from('AQI='), F.text, P('/5/0/0'), model)[0].value, Buffer.from([1, 2]));
      assert.equal(decodeContent(Buffer.from('hello'), undefined, P('/3/0/0'), model)[0].value, 'hello');
    });

    for (const [text, path] of [['abc', '/3/0/9'], ['2', '/1/0/6'], ['1.5', '/3/0/9'], ['x', '/3303/0/5700'], ['**', '/5/0/0']]) {
      it(`rejects text ${JSON.stringify(text)} for ${path}`, () => assert.throws(() => decodeContent(Buffer.from(text), F.text, P(path), model), ContentError));
    }

    it('writes numbers in plain decimal, never in exponent form, and floats with a point', () => {
      const text = (value, type = 'float') => encodeContent([{ path: P('/3303/0/5700'), type, value }], F.text, P('/3303/0/5700'), model).toString();
      assert.deepEqual([1e21, 1e-7, -2.5e-5, 21, 21.5].map((v) => text(v)), ['1000000000000000000000.0', '0.0000001', '-0.000025', '21.0', '21.5']);
      assert.equal(text(2 ** 53, 'integer'), '9007199254740992');
    });

    it('refuses text for more than one value', () => {
      assert.throws(() => decodeContent(Buffer.from('x'), F.text, P('/3/0'), model), ContentError);
    });
  });

  describe('every format round-trips what it can carry', () => {
    // Values of every type, at real registry resources of that type.
    const leaves = {
      string: ['/3/0/0', fc.string({ maxLength: 30 })],
      integer: ['/3/0/9', fc.integer({ min: -2147483648, max: 2147483647 })],
      float: ['/3303/0/5700', fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 }).filter((v) => !Object.is(v, -0))],
      boolean: ['/1/0/6', fc.boolean()],
      time: ['/3/0/13', fc.integer({ min: 0, max: 4102444800 }).map((s) => new Date(s * 1000))],
      opaque: ['/5/0/0', fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b))],
    };
    const multi = ['/3/0/6', fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 5 })];

    for (const [name, format] of Object.entries(F).filter(([n]) => !['text', 'opaque', 'cbor'].includes(n))) {
      it(`${name} (${format}) for instances and multiple resources`, () => {
        fc.assert(
          fc.property(fc.record(Object.fromEntries(Object.entries(leaves).map(([type, [, arb]]) => [type, arb]))), multi[1], (values, instances) => {
            const records = [
              ...Object.entries(values).map(([type, value]) => ({ path: P(leaves[type][0]), type, value })),
              ...instances.map((value, i) => ({ path: P(`${multi[0]}/${i}`), type: 'integer', value })),
            ];
            // TLV and LwM2M JSON carry one object instance at a time.
            const groups = ['tlv', 'json'].includes(name) ? groupByInstance(records) : [[Lwm2mPath.ROOT, records]];
            for (const [target, group] of groups) {
              const decoded = decodeContent(encodeContent(group, format, target, model), format, target, model);
              assert.deepEqual(plain(sortByPath(decoded)), plain(sortByPath(group)));
            }
          }),
          { numRuns: 150 },
        );
      });
    }

    it('opaque (42) for bytes', () => {
      fc.assert(
        fc.property(leaves.opaque[1], (value) => {
          const records = [{ path: P('/5/0/0'), type: 'opaque', value }];
          assert.deepEqual(plain(decodeContent(encodeContent(records, F.opaque, P('/5/0/0'), model), F.opaque, P('/5/0/0'), model)), plain(records));
        }),
      );
    });

    for (const [name, format] of [['text', F.text], ['cbor', F.cbor]]) {
      it(`${name} (${format}) for single values of every type`, () => {
        for (const [type, [path, arb]] of Object.entries(leaves)) {
          fc.assert(
            fc.property(arb, (value) => {
              const records = [{ path: P(path), type, value }];
              assert.deepEqual(plain(decodeContent(encodeContent(records, format, P(path), model), format, P(path), model)), plain(records));
            }),
            { numRuns: 50 },
          );
        }
      });
    }
  });

  it('never throws anything but ContentError on random Fetch and Patch Packs (RFC 8790)', () => {
    const { decodeSenmlPaths, decodeSenmlPatch } = require('../dist/lib/content/senml');
    const cbor = require('cbor');
    const record = fc.record({ n: fc.constantFrom('/3/0/0', '/3/0/7/1', '3/0', '', '/x', '/3/0/7/1/2'), v: fc.oneof(fc.constant(null), fc.integer(), fc.string({ maxLength: 3 })), bn: fc.constantFrom('/3/0/', '', '/'), vb: fc.boolean() }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.constantFrom(110, 112, 320, 322), fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), fc.array(record, { maxLength: 4 }).map((records) => Buffer.from(JSON.stringify(records))), fc.array(record, { maxLength: 4 }).map((records) => cbor.encode(records.map((r) => new Map(Object.entries(r).map(([k, v]) => [{ n: 0, v: 2, bn: -2, vb: 4 }[k], v])))))), (format, bytes) => {
        for (const decode of [() => decodeSenmlPaths(bytes, format), () => decodeSenmlPatch(bytes, format, model)]) {
          try {
            decode();
          } catch (error) {
            assert.ok(error instanceof ContentError, `${error.name}: ${error.message}`);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws anything but ContentError on random bytes', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(F), undefined), fc.constantFrom('/3/0', '/3', '/3/0/6', '/3/0/0', '/5/0/0', '/'), fc.uint8Array({ maxLength: 64 }), (format, target, bytes) => {
        try {
          decodeContent(Buffer.from(bytes), format, P(target), model);
        } catch (error) {
          assert.ok(error instanceof ContentError, `${error.name}: ${error.message}`);
        }
      }),
      { numRuns: 5000 },
    );
  });

  describe('msg.payload to records', () => {
    it('accepts resource names and ids, and arrays for multiple resources', () => {
      const records = payloadToRecords({ Lifetime: 300, 'notification storing when disabled or offline': true, 7: 'UQ' }, P('/1/0'), model);
      assert.deepEqual(plain(records), [
        { path: '/1/0/1', type: 'integer', value: 300 },
        { path: '/1/0/6', type: 'boolean', value: true },
        { path: '/1/0/7', type: 'string', value: 'UQ' },
      ]);
      assert.deepEqual(plain(payloadToRecords([1, 5], P('/3/0/6'), model)).map((r) => r.path), ['/3/0/6/0', '/3/0/6/1']);
    });

    for (const [payload, path, reason] of [
      ['soon', '/1/0/1', /integer/],
      [{ Lifetime: 'x' }, '/1/0', /integer/],
      [{ Nonsense: 1 }, '/1/0', /no resource named "Nonsense"/],
      [5, '/3/0/6', /multiple instances/],
      [{ a: 1 }, '/3/0/6', /not a number/],
      [null, '/1/0/1', /empty/],
      [3, '/1/0', /object of resources/],
      [1, '/3/0/4', /executable/],
      [{ deep: { er: 1 } }, '/40000/0/1', /not a number/],
    ]) {
      it(`rejects ${JSON.stringify(payload)} for ${path}`, () => {
        assert.throws(() => payloadToRecords(payload, P(path), model), (error) => error instanceof ContentError && reason.test(error.message));
      });
    }
  });
});

function groupByInstance(records) {
  const groups = new Map();
  for (const record of records) {
    const key = `/${record.path.objectId}/${record.path.instanceId}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(record);
  }
  return [...groups].map(([key, group]) => [P(key), group]);
}

function sortByPath(records) {
  return [...records].sort((a, b) => (a.path.toString() < b.path.toString() ? -1 : 1));
}
