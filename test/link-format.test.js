'use strict';
const assert = require('node:assert/strict');
const fc = require('fast-check');
const { parseLinkFormat, formatLinkFormat, LinkFormatError } = require('../dist/lib/lwm2m/link-format');

describe('CoRE link format', () => {
  it('parses a LwM2M 1.1 registration payload', () => {
    const links = parseLinkFormat('</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</1/0>,</3>;ver=1.1,</3/0>,</5/0>');
    assert.deepEqual(links.map((l) => l.path), ['/', '/1/0', '/3', '/3/0', '/5/0']);
    assert.equal(links[0].attributes.rt, 'oma.lwm2m');
    assert.equal(links[0].attributes.ct, '60 110 112 11542 11543');
    assert.equal(links[2].attributes.ver, '1.1');
  });

  it('keeps commas and semicolons inside quoted strings, and bare attributes', () => {
    const [link] = parseLinkFormat('</a>;title="x, y; \\"z\\"";obs');
    assert.equal(link.attributes.title, 'x, y; "z"');
    assert.equal(link.attributes.obs, true);
  });

  it('accepts white space after commas and an empty payload', () => {
    assert.equal(parseLinkFormat('</1/0>, </3/0>').length, 2);
    assert.deepEqual(parseLinkFormat(''), []);
  });

  for (const bad of ['</1/0', '1/0>', '</1/0>,', '</1/0>;', '</1/0>;ver=', '</1/0>;t="open', '</1/0> </3/0>', '<>;a=b c']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseLinkFormat(bad), LinkFormatError));
  }

  it('round-trips formatted links', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/);
    const link = fc.record({
      path: fc.stringMatching(/^\/[a-z0-9/]{0,12}$/),
      attributes: fc.dictionary(name, fc.oneof(fc.constant(true), fc.string({ maxLength: 12 }))),
    });
    fc.assert(
      fc.property(fc.array(link, { maxLength: 6 }), (links) => {
        const parsed = parseLinkFormat(formatLinkFormat(links));
        assert.deepEqual(parsed.map((l) => ({ path: l.path, attributes: { ...l.attributes } })), links);
      }),
    );
  });
});
