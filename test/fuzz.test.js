'use strict';
// Property-based fuzzing of every parser a remote peer or a flow reaches.
// Bounded here; FUZZ_RUNS=200000 npm test runs them longer.
const assert = require('node:assert/strict');
const fc = require('fast-check');
const { parseLinkFormat, LinkFormatError } = require('../dist/lib/lwm2m/link-format');
const { parseRegisterRequest, parseUpdateRequest } = require('../dist/lib/lwm2m/registration-request');
const { CoapRequestError } = require('../dist/lib/coap/errors');
const { Lwm2mPath, PathError } = require('../dist/lib/model/path');
const { parseBootstrapConfig, BootstrapConfigError } = require('../dist/lib/bootstrap/bootstrap-config');
const { payloadToRecords } = require('../dist/lib/content/payload');
const { ContentError } = require('../dist/lib/content/values');
const { decodeSenmlPaths } = require('../dist/lib/content/senml');
const { formatArguments } = require('../dist/lib/lwm2m/requests/execute');
const { parseAttributes } = require('../dist/lib/lwm2m/requests/write-attributes');
const { ObjectModel } = require('../dist/lib/model/object-model');
const { Lwm2mServer } = require('../dist/lib/lwm2m/server');
const { BootstrapServer } = require('../dist/lib/bootstrap/bootstrap-server');
const { encode, decode } = require('../dist/lib/coap/message');
const { codeClass } = require('../dist/lib/coap/codes');
const { freePort, RawPeer } = require('./support/udp');
const { parseRecords } = require('../dist/lib/dtls/record');
const { parseClientHello } = require('../dist/lib/dtls/hello-messages');
const { parseFragments, HandshakeReassembler } = require('../dist/lib/dtls/handshake-framing');
const { parseCertificateMessage, parsePskIdentity, parseCertificateVerify } = require('../dist/lib/dtls/key-exchange');
const { RecordCipher, CIPHER_SUITES } = require('../dist/lib/dtls/record-protection');
const { DtlsDecodeError } = require('../dist/lib/dtls/bytes');
const { DtlsAlertError } = require('../dist/lib/dtls/credentials');

const RUNS = Number(process.env.FUZZ_RUNS || 2000);
/** For parsers that must not throw at all. */
class NeverThrown extends Error {}
const model = ObjectModel.builtIn();

/** Runs parse on every generated input; only the expected error class may escape. */
function onlyThrows(arbitrary, parse, ErrorClass, runs = RUNS) {
  fc.assert(
    fc.property(arbitrary, (input) => {
      try {
        parse(input);
      } catch (error) {
        if (!(error instanceof ErrorClass)) throw new Error(`${error && error.name}: ${error && error.message} for ${JSON.stringify(input).slice(0, 200)}`);
      }
    }),
    { numRuns: runs },
  );
}

const linkish = fc.array(fc.constantFrom('<', '>', '/', '3', '0', '1', ';', ',', '"', '=', 'rt', 'ct', 'ver', 'oma.lwm2m', ' ', '\\', 'a'), { maxLength: 40 }).map((parts) => parts.join(''));
const query = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('ep=a', 'lt=60', 'lt=-1', 'lt=99999999999', 'lwm2m=1.1', 'lwm2m=x', 'b=UQ', 'b=ZZ', 'b=UT', 'b=MH', 'Q', 'sms=1', 'pid=x', 'pid', 'ep', 'ep=', '=x'));
const json = fc.jsonValue({ maxDepth: 4 });

describe('fuzzing the parsers', function () {
  this.timeout(120000);

  it('link format: only LinkFormatError', () => onlyThrows(fc.oneof(fc.string({ maxLength: 60 }), linkish), parseLinkFormat, LinkFormatError));

  it('Register and Update requests: only CoapRequestError', () => {
    const request = fc.record({ queries: fc.array(query, { maxLength: 6 }), payload: fc.oneof(linkish, fc.string()).map((t) => Buffer.from(t)), cf: fc.constantFrom(undefined, 40, 0, 50), version: fc.constantFrom('1.0', '1.1', '1.2') });
    onlyThrows(request, ({ queries, payload, cf }) => parseRegisterRequest(queries, payload, cf), CoapRequestError);
    onlyThrows(request, ({ queries, payload, cf, version }) => parseUpdateRequest(queries, payload, cf, version), CoapRequestError);
  });

  it('paths: only PathError', () => onlyThrows(fc.oneof(fc.string({ maxLength: 20 }), fc.array(fc.oneof(fc.nat(70000), fc.constant('x')), { maxLength: 6 }).map((ids) => '/' + ids.join('/'))), Lwm2mPath.parse, PathError));

  it('bootstrap configurations from msgs: only BootstrapConfigError', () => {
    const config = fc.oneof(json, fc.record({ uri: fc.oneof(fc.string(), fc.constantFrom('coap://h', 'coaps://h:5684', 'coap://[::1]:5683')), securityMode: fc.constantFrom('nosec', 'psk', 'rpk', 'x509', 'x'), pskIdentity: fc.string(), pskKey: fc.oneof(fc.string(), fc.constant('00ff')), shortServerId: json, lifetime: json, binding: fc.string({ maxLength: 3 }), acl: json }, { requiredKeys: [] }));
    onlyThrows(config, parseBootstrapConfig, BootstrapConfigError);
  });

  it('msg.payload for writes: only ContentError', () => {
    const target = fc.constantFrom('/1/0', '/1/0/1', '/3/0/6', '/3/0/6/0', '/3303/0/5700', '/40000/0', '/40000/0/1', '/5/0/0', '/3/0/13');
    onlyThrows(fc.tuple(json, target), ([payload, path]) => payloadToRecords(payload, Lwm2mPath.parse(path), model), ContentError);
  });

  it('execute arguments and notification attributes: only ContentError', () => {
    onlyThrows(fc.oneof(fc.string({ maxLength: 20 }), json), formatArguments, ContentError);
    onlyThrows(json, parseAttributes, ContentError);
  });

  it('Read-Composite paths: only ContentError', () => {
    onlyThrows(fc.tuple(fc.uint8Array({ maxLength: 60 }), fc.constantFrom(110, 112)), ([bytes, format]) => decodeSenmlPaths(Buffer.from(bytes), format), ContentError);
  });

  it('DTLS records, handshake messages and protected records: only DtlsDecodeError (or an alert), never a crash', () => {
    const bytes = fc.uint8Array({ maxLength: 200 }).map((array) => Buffer.from(array));
    for (const cidLength of [0, 8]) onlyThrows(bytes, (datagram) => parseRecords(datagram, cidLength), DtlsDecodeError);
    for (const parse of [parseClientHello, parseFragments, parsePskIdentity]) onlyThrows(bytes, parse, DtlsDecodeError);
    onlyThrows(bytes, (body) => parseCertificateMessage(body, 0), DtlsDecodeError);
    onlyThrows(bytes, (body) => {
      try {
        parseCertificateVerify(body);
      } catch (error) {
        if (!(error instanceof DtlsAlertError)) throw error; // an unknown signature algorithm gets illegal_parameter
      }
    }, DtlsDecodeError);
    onlyThrows(bytes, (fragment) => new HandshakeReassembler(0, 1024).add(parseFragments(fragment)), DtlsDecodeError);
    for (const suite of CIPHER_SUITES) {
      const { client } = RecordCipher.fromKeyBlock(suite, Buffer.alloc(96, 7));
      onlyThrows(fc.tuple(bytes, fc.boolean()), ([fragment, cid]) => {
        const opened = client.open({ type: cid ? 25 : 23, version: 0xfefd, epoch: 1, sequence: 1, cid: cid ? Buffer.alloc(8) : undefined, fragment });
        assert.equal(opened, undefined, 'random bytes never authenticate');
      }, NeverThrown);
    }
  });

  describe('random msgs into every LwM2M node', () => {
    const { helper, load, firstMessage } = require('./support/flow');
    const { SimulatedDevice } = require('../dist/sim/simulated-device');
    const value = fc.oneof(json, fc.constantFrom('/3/0/9', '/1/0/1', '/3303/0', '/3303', '/x', 'dev', 'tlv', 'senml-cbor', 'remove', 'cancel', -1, 0, 0.5, 70000));
    const msg = fc.record({ endpoint: fc.oneof(fc.constant('dev'), value), path: value, topic: value, payload: value, paths: value, contentFormat: value, timeout: fc.oneof(fc.constant(1), value), ttl: value, instanceId: value, depth: value, cancel: value, action: value, mode: value }, { requiredKeys: [] });

    after(() => helper.unload());

    for (const type of ['lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-create', 'lwm2m-delete', 'lwm2m-discover', 'lwm2m-write-attributes', 'lwm2m-observe', 'lwm2m-bootstrap']) {
      it(`${type}: each msg ends in an output or a caught error`, async function () {
        this.timeout(60000);
        const port = await freePort();
        await helper.unload();
        await load([
          { id: 'tab', type: 'tab' },
          { id: 'srv', type: 'lwm2m-server', bindAddress: '127.0.0.1', port },
          { id: 'bs', type: 'lwm2m-bootstrap-server', bindAddress: '127.0.0.1', port: await freePort(), endpoints: [] },
          { id: 'node', z: 'tab', type, server: type === 'lwm2m-bootstrap' ? 'bs' : 'srv', timeout: 1, wires: [['out']] },
          { id: 'out', z: 'tab', type: 'helper' },
          { id: 'catcher', z: 'tab', type: 'catch', scope: ['node'], wires: [['caught']] },
          { id: 'caught', z: 'tab', type: 'helper' },
        ]);
        const device = new SimulatedDevice({ endpoint: 'dev', server: { address: '127.0.0.1', port }, transmission: { ackTimeoutMs: 100, maxRetransmit: 1 } });
        await device.start();
        try {
          await device.register();
          const node = helper.getNode('node');
          let outputs = 0;
          for (const sample of fc.sample(msg, { numRuns: Math.min(RUNS, 150) })) {
            const outcome = firstMessage([helper.getNode('out'), helper.getNode('caught')], 5000).catch(() => undefined);
            node.receive(sample);
            // The observe node answers a cancel with neither; everything else must answer.
            const result = await outcome;
            if (result) outputs++;
            else assert.ok(type === 'lwm2m-observe' && (sample.cancel === true || sample.action === 'cancel'), `no answer to ${JSON.stringify(sample).slice(0, 300)}`);
          }
          assert.ok(outputs > 0);
        } finally {
          await device.stop();
        }
      });
    }
  });

  describe('whole requests against running servers', () => {
    /** Well-formed CoAP requests with random paths, queries, options and payloads. */
    const request = fc.record({
      type: fc.constantFrom(0, 1),
      code: fc.integer({ min: 1, max: 7 }),
      messageId: fc.integer({ min: 0, max: 0xffff }),
      token: fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
      path: fc.array(fc.oneof(fc.constantFrom('rd', 'dp', 'bs', 'bspack', '3', '0'), fc.string({ maxLength: 6 })), { maxLength: 3 }),
      queries: fc.array(query, { maxLength: 4 }),
      extra: fc.array(fc.record({ number: fc.constantFrom(4, 12, 17, 23, 27, 28, 60, 258, 2048), value: fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b)) }), { maxLength: 2 }),
      payload: fc.oneof(fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)), linkish.map((t) => Buffer.from(t))),
    });
    const toDatagram = (r) =>
      encode({
        type: r.type,
        code: r.code,
        messageId: r.messageId,
        token: r.token,
        options: [...r.path.map((p) => ({ number: 11, value: Buffer.from(p) })), ...r.queries.map((q) => ({ number: 15, value: Buffer.from(q) })), ...r.extra].sort((a, b) => a.number - b.number),
        payload: r.payload,
      });

    for (const [name, make] of [
      ['the LwM2M server', (port) => new Lwm2mServer({ address: '127.0.0.1', port })],
      ['the bootstrap server', (port) => new BootstrapServer({ address: '127.0.0.1', port, requestTimeoutMs: 200 })],
    ]) {
      it(`${name} answers every request with a 4.xx or 2.xx, never a 5.00, and keeps running`, async () => {
        const port = await freePort();
        const server = make(port);
        const warnings = [];
        server.on('warning', (error) => warnings.push(error.message));
        await server.start();
        const raw = await RawPeer.open();
        try {
          const samples = fc.sample(request, { numRuns: Math.min(RUNS, 3000), seed: 7 });
          const codes = {};
          for (const sample of samples) {
            await raw.send(toDatagram(sample), port);
            const answer = await raw.next(300);
            if (!answer) continue; // a duplicate of an earlier message id or a NON answered NON
            const message = decode(answer);
            const cls = codeClass(message.code);
            codes[cls] = (codes[cls] ?? 0) + 1;
            assert.ok(cls === 2 || cls === 4 || (cls === 5 && message.code !== 160), `answer ${message.code} to ${JSON.stringify(sample.path)}`);
          }
          assert.deepEqual(warnings, []);
          assert.ok(codes[4] > 0, 'malformed requests got 4.xx');
          // Still serving: a ping gets its Reset.
          assert.ok(await raw.exchange(Buffer.from([0x40, 0, 0xfe, 0xed]), port));
        } finally {
          await raw.close();
          await server.stop();
        }
      });
    }
  });
});
